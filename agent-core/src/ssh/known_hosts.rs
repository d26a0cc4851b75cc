//! Trust-on-first-use SSH host keys, recorded per target in
//! `<config-dir>/known_hosts.json` as `{"<target>|<host>:<port>": "SHA256:…"}`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::config::write_private;

/// The known-hosts store (cheap to clone).
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: Option<PathBuf>,
    map: Arc<Mutex<BTreeMap<String, String>>>,
}

impl KnownHosts {
    /// Backed by a JSON file (created on first trust).
    pub fn new(path: PathBuf) -> Self {
        let map = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        KnownHosts {
            path: Some(path),
            map: Arc::new(Mutex::new(map)),
        }
    }

    /// Kept in memory only.
    pub fn in_memory() -> Self {
        KnownHosts {
            path: None,
            map: Arc::default(),
        }
    }

    pub fn key(target: &str, host: &str, port: u16) -> String {
        format!("{target}|{host}:{port}")
    }

    pub fn get(&self, target: &str, host: &str, port: u16) -> Option<String> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&Self::key(target, host, port))
            .cloned()
    }

    /// Forgets a host key (after a legitimate reinstall).
    pub fn forget(&self, target: &str, host: &str, port: u16) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(&Self::key(target, host, port));
        self.persist(&m);
    }

    fn persist(&self, m: &BTreeMap<String, String>) {
        if let Some(p) = &self.path {
            match serde_json::to_vec_pretty(m) {
                Ok(bytes) => {
                    if let Err(e) = write_private(p, &bytes) {
                        tracing::warn!(error = %e, "cannot save SSH known hosts");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot encode SSH known hosts"),
            }
        }
    }

    /// A checker for one connection.
    pub fn check_for(&self, target: &str, host: &str, port: u16) -> HostKeyCheck {
        HostKeyCheck {
            store: self.clone(),
            key: Self::key(target, host, port),
            mismatch: Arc::default(),
        }
    }
}

/// Verifies the key a server offers: unknown keys are trusted and recorded,
/// a different key than the recorded one is refused (and remembered in
/// [`HostKeyCheck::mismatch_slot`] so the caller can say why).
#[derive(Debug)]
pub struct HostKeyCheck {
    store: KnownHosts,
    key: String,
    mismatch: Arc<Mutex<Option<(String, String)>>>,
}

impl HostKeyCheck {
    pub fn mismatch_slot(&self) -> Arc<Mutex<Option<(String, String)>>> {
        self.mismatch.clone()
    }

    /// `fingerprint` like `SHA256:…`. Returns whether to continue.
    pub fn verify(&self, fingerprint: &str) -> bool {
        let mut m = self.store.map.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(&self.key) {
            Some(known) if known == fingerprint => true,
            Some(known) => {
                tracing::error!(
                    event_name = "agent.ssh.host_key_mismatch",
                    host = %self.key, expected = %known, got = %fingerprint,
                    "SSH host key changed; refusing to connect"
                );
                *self.mismatch.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((known.clone(), fingerprint.to_string()));
                false
            }
            None => {
                tracing::info!(
                    event_name = "agent.ssh.host_key_trusted",
                    host = %self.key, fingerprint = %fingerprint,
                    "trusting SSH host key on first use"
                );
                m.insert(self.key.clone(), fingerprint.to_string());
                self.store.persist(&m);
                true
            }
        }
    }
}
