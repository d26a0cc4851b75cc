//! Encryption at rest for secrets the server must be able to read back
//! (proxy passwords; later the secrets vault): AES-256-GCM under a server
//! **data key**.
//!
//! The data keys live in `<data_dir>/data-key` (mode 0600), created on
//! first start with one random 256-bit key. The file holds one key per line,
//! `<key-id> <base64url key>`; the **first** line seals new values, every
//! line opens (rotation: put a new key on top, keep the old ones below).
//! An operator who keeps keys elsewhere places the file there before the
//! first start (e.g. a mounted secret). Several servers on one PostgreSQL
//! database must share the file.
//!
//! A sealed value is text: `v1.<key-id>.<nonce>.<ciphertext+tag>` (base64url,
//! 96-bit random nonce). The associated data binds it to its place
//! ([`Aad`]: purpose, tenant, row id), so a ciphertext copied to another
//! row or tenant does not open.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

/// File name of the data keys inside the data directory.
pub const DATA_KEY_FILE: &str = "data-key";
const FORMAT: &str = "v1";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("data key file {path}: {message}")]
    KeyFile { path: PathBuf, message: String },
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed with unknown key `{0}`")]
    UnknownKey(String),
    #[error("sealed value does not open (wrong key, tampered, or moved to another row)")]
    Open,
}

/// Where a sealed value belongs: it opens only with the same triple.
#[derive(Debug, Clone, Copy)]
pub struct Aad<'a> {
    /// What the value is, e.g. `resources.proxies.password`.
    pub purpose: &'a str,
    pub tenant: &'a str,
    /// The row (or object) id.
    pub id: &'a str,
}

impl Aad<'_> {
    /// Length-prefixed, so no two triples encode alike.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = b"botmox-aad-v1".to_vec();
        for part in [self.purpose, self.tenant, self.id] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

struct DataKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The server's data keys (the first seals, all open).
pub struct DataKeys {
    keys: Vec<DataKey>,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("DataKeys").field("ids", &ids).finish()
    }
}

fn key_file_error(path: &Path, message: impl Into<String>) -> CryptoError {
    CryptoError::KeyFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl DataKeys {
    /// Load `<data_dir>/data-key`, creating it (0600, one new key) when absent.
    pub fn load_or_create(data_dir: &Path) -> Result<DataKeys, CryptoError> {
        let path = data_dir.join(DATA_KEY_FILE);
        if !path.exists() {
            crate::fsutil::create_private_dir(data_dir)
                .map_err(|e| key_file_error(&path, e.to_string()))?;
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            let mut id = [0u8; 4];
            rand::rng().fill_bytes(&mut id);
            let line = format!("dk-{} {}\n", hex::encode(id), URL_SAFE_NO_PAD.encode(key));
            match create_new_private(&path, line.as_bytes()) {
                Ok(()) => tracing::info!(path = %path.display(), "created the server data key"),
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(key_file_error(&path, e.to_string())),
            }
        }
        // A concurrent creator may still be writing: retry briefly.
        let mut last = None;
        for _ in 0..20 {
            let text =
                std::fs::read_to_string(&path).map_err(|e| key_file_error(&path, e.to_string()))?;
            match Self::parse(&text) {
                Ok(k) => return Ok(k),
                Err(m) => last = Some(m),
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        Err(key_file_error(&path, last.unwrap_or_default()))
    }

    /// Parse the key file's text (`<key-id> <base64url 32 bytes>` per line;
    /// blank lines and `#` comments ignored).
    pub fn parse(text: &str) -> Result<DataKeys, String> {
        let mut keys: Vec<DataKey> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, b64) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("line {}: expected `<key-id> <base64url key>`", n + 1))?;
            if !valid_key_id(id) {
                return Err(format!(
                    "line {}: key id must be 1-32 of [A-Za-z0-9_-]",
                    n + 1
                ));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(format!("line {}: key id `{id}` repeated", n + 1));
            }
            let raw = URL_SAFE_NO_PAD
                .decode(b64.trim().trim_end_matches('='))
                .map_err(|_| format!("line {}: key is not base64url", n + 1))?;
            let key = Key::<Aes256Gcm>::try_from(raw.as_slice())
                .map_err(|_| format!("line {}: key must be 32 bytes", n + 1))?;
            keys.push(DataKey {
                id: id.to_string(),
                cipher: Aes256Gcm::new(&key),
            });
        }
        if keys.is_empty() {
            return Err("no key in the file".into());
        }
        Ok(DataKeys { keys })
    }

    /// Keys from raw bytes (tests, tools): the first seals.
    pub fn from_raw(keys: &[(&str, [u8; 32])]) -> DataKeys {
        DataKeys {
            keys: keys
                .iter()
                .map(|(id, k)| DataKey {
                    id: (*id).to_string(),
                    cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*k)),
                })
                .collect(),
        }
    }

    /// The id of the key that seals.
    pub fn active_key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Encrypt `plaintext` for the place `aad` names.
    pub fn seal(&self, aad: Aad<'_>, plaintext: &[u8]) -> String {
        let key = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let aad = aad.bytes();
        let ct = key
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        format!(
            "{FORMAT}.{}.{}.{}",
            key.id,
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ct)
        )
    }

    /// Decrypt a value [`DataKeys::seal`] made for the same `aad`.
    pub fn open(&self, aad: Aad<'_>, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let mut parts = sealed.split('.');
        let (Some(FORMAT), Some(id), Some(nonce), Some(ct), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CryptoError::Malformed);
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_string()))?;
        let nonce: [u8; 12] = URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(CryptoError::Malformed)?;
        let ct = URL_SAFE_NO_PAD
            .decode(ct)
            .map_err(|_| CryptoError::Malformed)?;
        let aad = aad.bytes();
        key.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &ct,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Open)
    }
}

/// A sealed value taken apart, for tables that keep key id, nonce and
/// ciphertext in their own columns (the secrets vault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedParts {
    pub key_id: String,
    /// base64url, 96 bits.
    pub nonce: String,
    /// base64url ciphertext and tag.
    pub ciphertext: String,
}

impl SealedParts {
    /// Split what [`DataKeys::seal`] returned.
    pub fn split(sealed: &str) -> Result<SealedParts, CryptoError> {
        let mut parts = sealed.split('.');
        match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some(FORMAT), Some(key_id), Some(nonce), Some(ct), None) => Ok(SealedParts {
                key_id: key_id.to_string(),
                nonce: nonce.to_string(),
                ciphertext: ct.to_string(),
            }),
            _ => Err(CryptoError::Malformed),
        }
    }

    /// The text [`DataKeys::open`] takes.
    pub fn join(&self) -> String {
        format!(
            "{FORMAT}.{}.{}.{}",
            self.key_id, self.nonce, self.ciphertext
        )
    }
}

/// Create `path` with mode 0600 only if it does not exist yet.
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

#[cfg(test)]
mod tests {
    use super::*;

    const AAD: Aad<'static> = Aad {
        purpose: "test.secret",
        tenant: "t1",
        id: "row-1",
    };

    #[test]
    fn seals_and_opens_only_in_place() {
        let keys = DataKeys::from_raw(&[("k1", [7u8; 32])]);
        let sealed = keys.seal(AAD, b"hunter2");
        assert!(sealed.starts_with("v1.k1."), "{sealed}");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(keys.open(AAD, &sealed).unwrap(), b"hunter2");
        // Two seals of the same value differ (random nonce).
        assert_ne!(keys.seal(AAD, b"hunter2"), sealed);
        for other in [
            Aad { id: "row-2", ..AAD },
            Aad {
                tenant: "t2",
                ..AAD
            },
            Aad {
                purpose: "other",
                ..AAD
            },
        ] {
            assert!(matches!(keys.open(other, &sealed), Err(CryptoError::Open)));
        }
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(keys
            .open(AAD, std::str::from_utf8(&tampered).unwrap())
            .is_err());
        assert!(matches!(
            keys.open(AAD, "garbage"),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn sealed_values_split_into_columns_and_back() {
        let keys = DataKeys::from_raw(&[("k1", [9u8; 32])]);
        let sealed = keys.seal(AAD, b"in columns");
        let parts = SealedParts::split(&sealed).unwrap();
        assert_eq!(parts.key_id, "k1");
        assert_eq!(parts.join(), sealed);
        assert_eq!(keys.open(AAD, &parts.join()).unwrap(), b"in columns");
        for bad in ["", "v1.k1.n", "v2.k1.n.c", "v1.k1.n.c.extra"] {
            assert!(matches!(
                SealedParts::split(bad),
                Err(CryptoError::Malformed)
            ));
        }
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = DataKeys::from_raw(&[("k1", [1u8; 32])]);
        let sealed = old.seal(AAD, b"x");
        let rotated = DataKeys::from_raw(&[("k2", [2u8; 32]), ("k1", [1u8; 32])]);
        assert_eq!(rotated.active_key_id(), "k2");
        assert_eq!(rotated.open(AAD, &sealed).unwrap(), b"x");
        assert!(rotated.seal(AAD, b"y").starts_with("v1.k2."));
        let without = DataKeys::from_raw(&[("k2", [2u8; 32])]);
        assert!(matches!(
            without.open(AAD, &sealed),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn key_file_is_created_once_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = DataKeys::load_or_create(dir.path()).unwrap();
        let sealed = a.seal(AAD, b"v");
        let b = DataKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(a.active_key_id(), b.active_key_id());
        assert_eq!(b.open(AAD, &sealed).unwrap(), b"v");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(DATA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(DataKeys::parse("k1 tooshort").is_err());
        assert!(DataKeys::parse("# only a comment\n").is_err());
        assert!(DataKeys::parse("bad id! AAAA").is_err());
    }
}
