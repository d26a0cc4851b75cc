//! Signed URLs of the local object store.
//!
//! A URL is `/api/v1/objects/<payload>.<mac>`: `payload` is the base64url
//! JSON of a [`Grant`] (object key, method, expiry in epoch seconds, and
//! for uploads the byte limit and content type), `mac` the base64url
//! HMAC-SHA256 of `botmox-object-url-v1.<payload>` under a key of
//! `<data_dir>/object-url-key`.
//!
//! That file (mode 0600) is created on first start with one random 256-bit
//! key. It holds one key per line, `<key-id> <base64url key>`; the
//! **first** line signs, every line verifies — rotation: put a new key on
//! top, remove the old line once the URLs it signed have expired (at most
//! 300 s). Servers that share one object directory must share the file.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// File name of the URL signing keys inside the data directory.
pub const URL_KEY_FILE: &str = "object-url-key";
const DOMAIN: &[u8] = b"botmox-object-url-v1.";
/// Longest token accepted (a 1024-byte key signs to about 1.5 KiB).
const MAX_TOKEN: usize = 4096;

type HmacSha256 = Hmac<Sha256>;

/// What a signed URL allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Signing key id.
    pub i: String,
    /// Object key.
    pub k: String,
    /// `GET` or `PUT`.
    pub m: String,
    /// Expiry, epoch seconds.
    pub e: i64,
    /// PUT: most bytes accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    /// GET: the content type answered; PUT: the one the upload must send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<String>,
}

impl Grant {
    pub fn get(key: &str, exp: i64, content_type: Option<String>) -> Grant {
        Grant {
            i: String::new(),
            k: key.to_string(),
            m: "GET".into(),
            e: exp,
            n: None,
            t: content_type,
        }
    }

    pub fn put(key: &str, exp: i64, max_bytes: u64, content_type: String) -> Grant {
        Grant {
            i: String::new(),
            k: key.to_string(),
            m: "PUT".into(),
            e: exp,
            n: Some(max_bytes),
            t: Some(content_type),
        }
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlProblem {
    /// Malformed, unknown key, bad signature, other method.
    Invalid,
    /// Genuine, but past its expiry.
    Expired,
}

#[derive(Debug, thiserror::Error)]
#[error("object URL key file {path}: {message}")]
pub struct KeyFileError {
    path: PathBuf,
    message: String,
}

struct Key {
    id: String,
    secret: Vec<u8>,
}

pub struct UrlSigner {
    keys: Vec<Key>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("UrlSigner").field("ids", &ids).finish()
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

impl UrlSigner {
    /// `<data_dir>/object-url-key`, created 0600 with one new key when absent.
    pub fn load(data_dir: &Path) -> Result<UrlSigner, KeyFileError> {
        let path = data_dir.join(URL_KEY_FILE);
        let fail = |message: String| KeyFileError {
            path: path.clone(),
            message,
        };
        if !path.exists() {
            crate::fsutil::create_private_dir(data_dir).map_err(|e| fail(e.to_string()))?;
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            let mut id = [0u8; 4];
            rand::rng().fill_bytes(&mut id);
            let line = format!("ok-{} {}\n", hex::encode(id), URL_SAFE_NO_PAD.encode(key));
            match create_new_private(&path, line.as_bytes()) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "created the object URL signing key")
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(fail(e.to_string())),
            }
        }
        // A concurrent creator may still be writing: retry briefly.
        let mut last = String::new();
        for _ in 0..20 {
            let text = std::fs::read_to_string(&path).map_err(|e| fail(e.to_string()))?;
            match Self::parse(&text) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(fail(last))
    }

    fn parse(text: &str) -> Result<UrlSigner, String> {
        let mut keys: Vec<Key> = vec![];
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
            if keys.iter().any(|k| k.id == id) {
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
        Ok(UrlSigner { keys })
    }

    fn mac(secret: &[u8], payload: &str) -> HmacSha256 {
        // HMAC takes keys of any length.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(DOMAIN);
        mac.update(payload.as_bytes());
        mac
    }

    /// The token for `grant`, signed with the first key.
    pub fn sign(&self, grant: &Grant) -> String {
        let key = &self.keys[0];
        let grant = Grant {
            i: key.id.clone(),
            ..grant.clone()
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&grant).unwrap_or_default());
        let tag = Self::mac(&key.secret, &payload).finalize().into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The grant of `token` if it is genuine, for `method`, and not past
    /// its expiry at `now` (epoch seconds).
    pub fn verify(&self, token: &str, method: &str, now: i64) -> Result<Grant, UrlProblem> {
        if token.len() > MAX_TOKEN {
            return Err(UrlProblem::Invalid);
        }
        let (payload, tag) = token.split_once('.').ok_or(UrlProblem::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| UrlProblem::Invalid)?;
        let raw = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| UrlProblem::Invalid)?;
        let grant: Grant = serde_json::from_slice(&raw).map_err(|_| UrlProblem::Invalid)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == grant.i)
            .ok_or(UrlProblem::Invalid)?;
        Self::mac(&key.secret, payload)
            .verify_slice(&tag)
            .map_err(|_| UrlProblem::Invalid)?;
        if grant.m != method {
            return Err(UrlProblem::Invalid);
        }
        if grant.e <= now {
            return Err(UrlProblem::Expired);
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_private_tokens_verify_and_rotation_keeps_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = UrlSigner::load(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(URL_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let g = Grant::put("a/b", 1_000, 10, "image/png".into());
        let t = s.sign(&g);
        let got = s.verify(&t, "PUT", 999).unwrap();
        assert_eq!(
            (got.k.as_str(), got.n, got.t.as_deref()),
            ("a/b", Some(10), Some("image/png"))
        );
        assert_eq!(s.verify(&t, "GET", 999), Err(UrlProblem::Invalid));
        assert_eq!(s.verify(&t, "PUT", 1_000), Err(UrlProblem::Expired));
        // Tampering with the payload (another key, a later expiry) breaks the MAC.
        let (payload, tag) = t.split_once('.').unwrap();
        let mut forged: Grant =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        forged.k = "other/key".into();
        forged.e = 9_999_999_999;
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap())
        );
        assert_eq!(s.verify(&forged, "PUT", 999), Err(UrlProblem::Invalid));
        for junk in ["", ".", "x.y", "a.b.c", &"A".repeat(5000)] {
            assert_eq!(s.verify(junk, "PUT", 0), Err(UrlProblem::Invalid), "{junk}");
        }
        // Same file again: same key. Rotation: a new first line signs, the
        // old key still verifies; a foreign key does not.
        assert!(UrlSigner::load(dir.path())
            .unwrap()
            .verify(&t, "PUT", 0)
            .is_ok());
        let path = dir.path().join(URL_KEY_FILE);
        let old = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            format!("ok-new {}\n{old}", URL_SAFE_NO_PAD.encode([9u8; 32])),
        )
        .unwrap();
        let rotated = UrlSigner::load(dir.path()).unwrap();
        assert!(rotated.verify(&t, "PUT", 0).is_ok());
        let fresh = rotated.sign(&g);
        assert!(
            s.verify(&fresh, "PUT", 0).is_err(),
            "the old set lacks ok-new"
        );
        assert!(rotated.verify(&fresh, "PUT", 0).is_ok());
    }

    #[test]
    fn bad_key_files_are_refused() {
        for bad in ["", "# c\n", "id", "id !!!", "id AAAA", "bad/id AAAA"] {
            assert!(UrlSigner::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
