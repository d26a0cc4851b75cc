//! Secret storage: the OS keyring through `keyring-core` (kernel keyutils on
//! Linux, Windows Credential Manager on Windows), the freedesktop Secret
//! Service (`--secret-store secret-service`, Linux), or — only when chosen
//! explicitly with `--secret-store file` — a 0600 JSON file under
//! `<config-dir>/secrets/`, with a warning every time it is opened.
//!
//! Every value read or written is registered with [`crate::redact`], so it
//! never appears in logs or diagnostics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{ensure_private_dir, write_private};
use crate::redact::register_secret;

/// Which backend holds the secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SecretBackend {
    /// OS keyring (default): kernel keyutils on Linux (memory only, lost on
    /// reboot), Credential Manager on Windows.
    Keyring,
    /// The freedesktop Secret Service over D-Bus (GNOME Keyring, KWallet):
    /// persistent, needs a session bus. Linux only.
    SecretService,
    /// A 0600 file in the config directory (hosts without a keyring).
    File,
}

impl SecretBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretBackend::Keyring => "keyring",
            SecretBackend::SecretService => "secret-service",
            SecretBackend::File => "file",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the OS keyring is not available: {0}. Use --secret-store file on hosts without a keyring (see docs/agent.md)")]
    KeyringUnavailable(String),
    #[error("keyring error for {name}: {message}")]
    Keyring { name: String, message: String },
    #[error("secret file {path}: {message}")]
    File { path: String, message: String },
}

/// A store of named secrets.
pub trait SecretStore: Send + Sync + std::fmt::Debug {
    fn get(&self, name: &str) -> Result<Option<String>, SecretError>;
    fn set(&self, name: &str, value: &str) -> Result<(), SecretError>;
    /// Deleting a missing secret is not an error.
    fn delete(&self, name: &str) -> Result<(), SecretError>;
    fn backend(&self) -> SecretBackend;
}

/// Opens the chosen backend for the agent whose config lives in `config_dir`.
pub fn open_store(
    backend: SecretBackend,
    config_dir: &Path,
) -> Result<Arc<dyn SecretStore>, SecretError> {
    Ok(match backend {
        SecretBackend::Keyring | SecretBackend::SecretService => {
            Arc::new(KeyringStore::new(backend, config_dir)?)
        }
        SecretBackend::File => Arc::new(FileStore::open(config_dir)?),
    })
}

// ---------------------------------------------------------------- keyring

/// The OS keyring. Entries are `service = "botmox-agent"`, `user =
/// "<8 hex of the config dir hash>/<name>"`, so isolated agents
/// (different `--config-dir`) never share secrets.
pub struct KeyringStore {
    backend: SecretBackend,
    store: Arc<keyring_core::CredentialStore>,
    scope: String,
}

impl std::fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringStore")
            .field("backend", &self.backend)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

const SERVICE: &str = "botmox-agent";

fn platform_store(
    backend: SecretBackend,
) -> Result<Arc<keyring_core::CredentialStore>, SecretError> {
    let unavailable = |m: String| SecretError::KeyringUnavailable(m);
    match backend {
        #[cfg(target_os = "linux")]
        SecretBackend::Keyring => {
            let s = linux_keyutils_keyring_store::Store::new()
                .map_err(|e| unavailable(e.to_string()))?;
            Ok(s)
        }
        #[cfg(target_os = "linux")]
        SecretBackend::SecretService => {
            let s = zbus_secret_service_keyring_store::Store::new()
                .map_err(|e| unavailable(format!("Secret Service: {e}")))?;
            Ok(s)
        }
        #[cfg(windows)]
        SecretBackend::Keyring => {
            let s = windows_native_keyring_store::Store::new()
                .map_err(|e| unavailable(e.to_string()))?;
            Ok(s)
        }
        other => Err(unavailable(format!(
            "the {} store is not available on this platform",
            other.as_str()
        ))),
    }
}

/// The form of a Windows config-dir path the keyring scope is hashed from:
/// without the verbatim prefix `canonicalize` adds (`\\?\`, `\\?\UNC\`),
/// lower-cased.
#[cfg_attr(not(windows), allow(dead_code))]
fn windows_scope_path(path: &str) -> String {
    let plain = if let Some(rest) = path.strip_prefix(r"\\?\UNC\") {
        format!(r"\\{rest}")
    } else {
        path.strip_prefix(r"\\?\").unwrap_or(path).to_string()
    };
    plain.to_lowercase()
}

impl KeyringStore {
    /// Opens the keyring and checks that it can be written and read.
    pub fn new(backend: SecretBackend, config_dir: &Path) -> Result<Self, SecretError> {
        let canon = std::fs::canonicalize(config_dir).unwrap_or_else(|_| config_dir.to_path_buf());
        let canon = canon.to_string_lossy();
        // Windows: canonicalize gives `\\?\C:\…` once the dir exists but
        // the plain path before (`pair` runs first), and paths are
        // case-insensitive: one scope for both (found under Wine).
        #[cfg(windows)]
        let canon = windows_scope_path(&canon);
        let hash = Sha256::digest(canon.as_bytes());
        let store = KeyringStore {
            backend,
            store: platform_store(backend)?,
            scope: hex::encode(&hash[..4]),
        };
        // Probe: in some sandboxes the session keyring answers EACCES, and a
        // Secret Service may be locked or absent.
        let probe = "probe";
        store
            .set(probe, "ok")
            .and_then(|_| store.get(probe))
            .and_then(|_| store.delete(probe))
            .map_err(|e| SecretError::KeyringUnavailable(e.to_string()))?;
        Ok(store)
    }

    fn entry(&self, name: &str) -> Result<keyring_core::Entry, SecretError> {
        self.store
            .build(SERVICE, &format!("{}/{name}", self.scope), None)
            .map_err(|e| SecretError::Keyring {
                name: name.into(),
                message: e.to_string(),
            })
    }
}

impl SecretStore for KeyringStore {
    fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        match self.entry(name)?.get_password() {
            Ok(v) => {
                register_secret(&v);
                Ok(Some(v))
            }
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(SecretError::Keyring {
                name: name.into(),
                message: e.to_string(),
            }),
        }
    }

    fn set(&self, name: &str, value: &str) -> Result<(), SecretError> {
        register_secret(value);
        self.entry(name)?
            .set_password(value)
            .map_err(|e| SecretError::Keyring {
                name: name.into(),
                message: e.to_string(),
            })
    }

    fn delete(&self, name: &str) -> Result<(), SecretError> {
        match self.entry(name)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(SecretError::Keyring {
                name: name.into(),
                message: e.to_string(),
            }),
        }
    }

    fn backend(&self) -> SecretBackend {
        self.backend
    }
}

// ---------------------------------------------------------------- file

/// Plaintext JSON in `<config-dir>/secrets/secrets.json`, directory 0700,
/// file 0600. Only used when chosen explicitly; warns on every open.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    lock: Mutex<()>,
}

pub const SECRETS_DIR: &str = "secrets";
pub const SECRETS_FILE: &str = "secrets.json";

impl FileStore {
    pub fn open(config_dir: &Path) -> Result<Self, SecretError> {
        let dir = config_dir.join(SECRETS_DIR);
        ensure_private_dir(&dir).map_err(|e| SecretError::File {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let path = dir.join(SECRETS_FILE);
        tracing::warn!(
            event_name = "agent.secrets.file_store",
            path = %path.display(),
            "secrets are stored in a plain file protected only by file permissions (0600); \
             use the OS keyring where available"
        );
        let store = FileStore {
            path,
            lock: Mutex::new(()),
        };
        for v in store.read_all()?.values() {
            register_secret(v);
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, message: impl Into<String>) -> SecretError {
        SecretError::File {
            path: self.path.display().to_string(),
            message: message.into(),
        }
    }

    fn read_all(&self) -> Result<BTreeMap<String, String>, SecretError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(&self.path)
                        .map_err(|e| self.err(e.to_string()))?
                        .permissions()
                        .mode();
                    if mode & 0o077 != 0 {
                        return Err(self.err(format!(
                            "permissions are {:o}; must be 0600 (chmod 600 it)",
                            mode & 0o777
                        )));
                    }
                }
                serde_json::from_slice(&bytes).map_err(|e| self.err(format!("corrupt: {e}")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(self.err(e.to_string())),
        }
    }

    fn write_all(&self, map: &BTreeMap<String, String>) -> Result<(), SecretError> {
        let bytes = serde_json::to_vec_pretty(map).map_err(|e| self.err(e.to_string()))?;
        write_private(&self.path, &bytes).map_err(|e| self.err(e.to_string()))
    }
}

impl SecretStore for FileStore {
    fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        Ok(self.read_all()?.get(name).cloned())
    }

    fn set(&self, name: &str, value: &str) -> Result<(), SecretError> {
        register_secret(value);
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut map = self.read_all()?;
        map.insert(name.to_string(), value.to_string());
        self.write_all(&map)
    }

    fn delete(&self, name: &str) -> Result<(), SecretError> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut map = self.read_all()?;
        if map.remove(name).is_some() {
            self.write_all(&map)?;
        }
        Ok(())
    }

    fn backend(&self) -> SecretBackend {
        SecretBackend::File
    }
}

/// An in-memory store (for embedding and tests of code that needs a store).
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<BTreeMap<String, String>>,
}

impl SecretStore for MemoryStore {
    fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        Ok(self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned())
    }
    fn set(&self, name: &str, value: &str) -> Result<(), SecretError> {
        register_secret(value);
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.into(), value.into());
        Ok(())
    }
    fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }
    fn backend(&self) -> SecretBackend {
        SecretBackend::File
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pair` (dir not created yet) and every later command (dir exists,
    /// `canonicalize` answers `\\?\C:\…` on Windows) share one scope.
    #[test]
    fn windows_scope_path_ignores_the_verbatim_prefix_and_case() {
        let before = r"C:\Users\Ann\AppData\Roaming\botmox-agent";
        let after = r"\\?\C:\users\ann\AppData\Roaming\botmox-agent";
        assert_eq!(windows_scope_path(before), windows_scope_path(after));
        assert_eq!(
            windows_scope_path(r"\\?\UNC\srv\share\agent"),
            windows_scope_path(r"\\srv\share\agent")
        );
        assert_ne!(
            windows_scope_path(r"C:\a\botmox-agent"),
            windows_scope_path(r"C:\b\botmox-agent")
        );
    }

    #[test]
    fn file_store_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        assert_eq!(s.get("a").unwrap(), None);
        s.set("a", "value-1").unwrap();
        s.set("b", "value-2").unwrap();
        assert_eq!(s.get("a").unwrap().as_deref(), Some("value-1"));
        s.delete("a").unwrap();
        s.delete("a").unwrap();
        assert_eq!(s.get("a").unwrap(), None);
        let again = FileStore::open(dir.path()).unwrap();
        assert_eq!(again.get("b").unwrap().as_deref(), Some("value-2"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(s.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dmode = std::fs::metadata(dir.path().join(SECRETS_DIR))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dmode & 0o777, 0o700);
            std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(s.get("b").unwrap_err().to_string().contains("0600"));
        }
    }
}
