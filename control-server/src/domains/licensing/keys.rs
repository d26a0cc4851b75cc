//! The lease signing keys: HS256 keys that sign execution lease tokens.
//!
//! By default they live in `<data_dir>/lease-signing-key` (mode 0600),
//! created on first start with one random 256-bit key. The file holds one
//! key per line, `<key-id> <base64url key>` (`#` starts a comment); the
//! **first** line signs new tokens (its id is the token's `kid`), every line
//! verifies — rotation: put a new key on top, remove the old line once the
//! leases it signed are past `license_lease_max_lifetime_seconds`. With
//! `license_lease_secret` configured, that secret is the only key (id
//! `configured`) and the file is not used.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// File name of the lease signing keys inside the data directory.
pub const LEASE_KEY_FILE: &str = "lease-signing-key";
/// The `iss` of every lease token (the original's).
pub const ISSUER: &str = "bot-mox-license";

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("lease signing key file {path}: {message}")]
    File { path: PathBuf, message: String },
}

/// What a lease token says (the original's claims; `exp` is the lease's
/// maximum lifetime — whether it is still alive is the lease row's say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseClaims {
    pub iss: String,
    /// The runner.
    pub sub: String,
    /// The lease id.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub tenant_id: String,
    pub user_id: String,
    pub vm_uuid: String,
    pub agent_id: String,
    pub module: String,
    pub version: Option<String>,
    pub license_id: String,
}

/// Why a presented token is refused before its lease is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenProblem {
    /// Not a JWT, wrong algorithm, unknown key, bad signature, wrong
    /// issuer, missing claims.
    Invalid,
    /// Signed by us, but past its `exp`.
    Expired,
}

struct Key {
    id: String,
    secret: Vec<u8>,
}

pub struct LeaseKeys {
    keys: Vec<Key>,
}

impl std::fmt::Debug for LeaseKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("LeaseKeys").field("ids", &ids).finish()
    }
}

fn file_error(path: &Path, message: impl Into<String>) -> KeyFileError {
    KeyFileError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn create_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl LeaseKeys {
    /// The configured secret, else `<data_dir>/lease-signing-key` (created
    /// 0600 with one new key when absent).
    pub fn load(secret: Option<&str>, data_dir: &Path) -> Result<LeaseKeys, KeyFileError> {
        if let Some(s) = secret {
            return Ok(LeaseKeys {
                keys: vec![Key {
                    id: "configured".into(),
                    secret: s.as_bytes().to_vec(),
                }],
            });
        }
        let path = data_dir.join(LEASE_KEY_FILE);
        if !path.exists() {
            crate::fsutil::create_private_dir(data_dir)
                .map_err(|e| file_error(&path, e.to_string()))?;
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            let mut id = [0u8; 4];
            rand::rng().fill_bytes(&mut id);
            let line = format!("lk-{} {}\n", hex::encode(id), URL_SAFE_NO_PAD.encode(key));
            match create_new_private(&path, line.as_bytes()) {
                Ok(()) => tracing::info!(path = %path.display(), "created the lease signing key"),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(file_error(&path, e.to_string())),
            }
        }
        // A concurrent creator may still be writing: retry briefly.
        let mut last = String::new();
        for _ in 0..20 {
            let text =
                std::fs::read_to_string(&path).map_err(|e| file_error(&path, e.to_string()))?;
            match Self::parse(&text) {
                Ok(k) => return Ok(k),
                Err(e) => last = e,
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(file_error(&path, last))
    }

    fn parse(text: &str) -> Result<LeaseKeys, String> {
        let mut keys = vec![];
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, b64) = line
                .split_once(' ')
                .ok_or_else(|| format!("line {}: expected `<key-id> <base64url key>`", n + 1))?;
            let id = id.trim();
            if !(1..=32).contains(&id.len())
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "line {}: key id must be 1-32 of A-Z a-z 0-9 - _",
                    n + 1
                ));
            }
            let secret = URL_SAFE_NO_PAD
                .decode(b64.trim())
                .map_err(|_| format!("line {}: key is not base64url", n + 1))?;
            if secret.len() < 32 {
                return Err(format!("line {}: key must be at least 32 bytes", n + 1));
            }
            if keys.iter().any(|k: &Key| k.id == id) {
                return Err(format!("line {}: duplicate key id `{id}`", n + 1));
            }
            keys.push(Key {
                id: id.to_string(),
                secret,
            });
        }
        if keys.is_empty() {
            return Err("no key in the file".into());
        }
        Ok(LeaseKeys { keys })
    }

    /// Sign with the first key.
    pub fn sign(&self, claims: &LeaseClaims) -> String {
        let key = &self.keys[0];
        let header = Header {
            kid: Some(key.id.clone()),
            ..Header::new(Algorithm::HS256)
        };
        // HMAC over serialisable claims cannot fail.
        encode(&header, claims, &EncodingKey::from_secret(&key.secret)).unwrap_or_default()
    }

    /// Check algorithm, key, signature, issuer and expiry.
    pub fn verify(&self, token: &str) -> Result<LeaseClaims, TokenProblem> {
        if token.len() > 8192 {
            return Err(TokenProblem::Invalid);
        }
        let header = decode_header(token).map_err(|_| TokenProblem::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenProblem::Invalid);
        }
        let key = match header.kid.as_deref() {
            Some(kid) => self.keys.iter().find(|k| k.id == kid),
            None => None,
        }
        .ok_or(TokenProblem::Invalid)?;
        let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        v.validate_aud = false;
        v.leeway = 0;
        match decode::<LeaseClaims>(token, &DecodingKey::from_secret(&key.secret), &v) {
            Ok(d) => Ok(d.claims),
            Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                Err(TokenProblem::Expired)
            }
            Err(_) => Err(TokenProblem::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> LeaseClaims {
        LeaseClaims {
            iss: ISSUER.into(),
            sub: "runner".into(),
            jti: "lease".into(),
            iat: 1,
            exp,
            tenant_id: "t".into(),
            user_id: "u".into(),
            vm_uuid: "vm-00000001".into(),
            agent_id: "a".into(),
            module: "m".into(),
            version: None,
            license_id: "l".into(),
        }
    }

    #[test]
    fn key_file_is_created_owner_only_and_rotation_verifies_old_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let keys = LeaseKeys::load(None, dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(LEASE_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let far = chrono::Utc::now().timestamp() + 3600;
        let old = keys.sign(&claims(far));
        assert_eq!(keys.verify(&old).unwrap().jti, "lease");
        // Same file, loaded again: same key.
        let again = LeaseKeys::load(None, dir.path()).unwrap();
        assert!(again.verify(&old).is_ok());
        // Rotation: a new key on top signs, the old one still verifies.
        let path = dir.path().join(LEASE_KEY_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let new_line = format!("lk-new {}\n", URL_SAFE_NO_PAD.encode([7u8; 32]));
        std::fs::write(&path, format!("{new_line}{text}")).unwrap();
        let rotated = LeaseKeys::load(None, dir.path()).unwrap();
        assert!(rotated.verify(&old).is_ok());
        let fresh = rotated.sign(&claims(far));
        assert_eq!(
            decode_header(&fresh).unwrap().kid.as_deref(),
            Some("lk-new")
        );
        assert!(
            keys.verify(&fresh).is_err(),
            "the old set does not know lk-new"
        );
        // Expired and foreign tokens.
        assert_eq!(
            keys.verify(&keys.sign(&claims(10))),
            Err(TokenProblem::Expired)
        );
        let foreign = LeaseKeys::load(Some(&"x".repeat(32)), dir.path()).unwrap();
        assert_eq!(
            keys.verify(&foreign.sign(&claims(far))),
            Err(TokenProblem::Invalid)
        );
        assert_eq!(keys.verify("not-a-jwt"), Err(TokenProblem::Invalid));
    }

    #[test]
    fn bad_key_files_are_refused() {
        for bad in [
            "",
            "# only a comment\n",
            "id",
            "id !!!",
            "id AAAA",
            "bad/id AAAA",
        ] {
            assert!(LeaseKeys::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
