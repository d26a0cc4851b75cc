//! The durable outbox (`<config-dir>/runtime/outbox/`): every final report
//! is written here (atomically, fsynced, 0600) **before** it is sent, and
//! removed only when the server has answered it: 200 (including the no-op
//! for a repeated final report), or a final "drop it" answer (`LEASE_LOST`,
//! `INVALID_TRANSITION`, 404 — the command is gone). Other final rejections
//! (a report the server will never accept) are kept as `*.rejected` for
//! diagnostics. A crash or an offline server loses nothing; redelivery is
//! harmless because a repeated final report is a no-op on the server.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use botmox_protocol::CommandReport;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::api::{AgentApi, CallError};
use super::durable::{self, DurableError};
use crate::retry::RetryPolicy;

pub const OUTBOX_DIR: &str = "outbox";

/// One final report waiting for the server's acknowledgement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub command_id: String,
    pub command_type: String,
    pub report: CommandReport,
    pub created_at: String,
}

/// The outbox directory. Clones share the set of entries being delivered
/// right now ([`Outbox::claim`]), so a flush never sends an entry that a
/// running command is delivering itself (with several commands at once, the
/// loop's flush and a command's own delivery overlap).
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
    busy: Arc<Mutex<HashSet<PathBuf>>>,
}

/// An entry being delivered; released on drop.
#[derive(Debug)]
pub struct Claim {
    busy: Arc<Mutex<HashSet<PathBuf>>>,
    path: PathBuf,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.path);
    }
}

/// What happened to one entry.
#[derive(Debug)]
pub enum Delivery {
    /// The server accepted it (or it was a no-op repeat).
    Delivered,
    /// The server says it can never apply (lease lost, already ended, gone).
    Dropped(CallError),
}

impl Outbox {
    pub fn new(runtime_dir: &Path) -> Self {
        Outbox {
            dir: runtime_dir.join(OUTBOX_DIR),
            busy: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Marks the entry at `path` as being delivered by the caller; `None`
    /// when someone else is delivering it.
    pub fn claim(&self, path: &Path) -> Option<Claim> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.insert(path.to_path_buf()).then(|| Claim {
            busy: self.busy.clone(),
            path: path.to_path_buf(),
        })
    }

    /// The path of the entry of `command_id` / `attempt`.
    pub fn path_of(&self, command_id: &str, attempt: u32) -> PathBuf {
        self.file(command_id, attempt)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, command_id: &str, attempt: u32) -> PathBuf {
        let safe: String = command_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.{attempt}.json"))
    }

    /// Stores an entry durably; returns its path.
    pub fn put(&self, entry: &OutboxEntry) -> Result<PathBuf, DurableError> {
        let path = self.file(&entry.command_id, entry.report.attempt);
        durable::write_json(&path, entry)?;
        Ok(path)
    }

    pub fn contains(&self, command_id: &str, attempt: u32) -> bool {
        self.file(command_id, attempt).is_file()
    }

    /// Pending entries, oldest first. Unreadable files are skipped (and logged).
    pub fn pending(&self) -> Vec<(PathBuf, OutboxEntry)> {
        let mut out: Vec<(PathBuf, OutboxEntry)> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension().is_some_and(|x| x == "json")
                            && !p
                                .file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| n.starts_with('.'))
                    })
                    .filter_map(|p| match durable::read_json::<OutboxEntry>(&p) {
                        Ok(Some(e)) => Some((p, e)),
                        Ok(None) => None,
                        Err(e) => {
                            tracing::error!(error = %e, "unreadable outbox entry skipped");
                            None
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at));
        out
    }

    pub fn len(&self) -> usize {
        self.pending().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn remove(&self, path: &Path) -> Result<(), DurableError> {
        durable::remove(path)
    }

    fn reject(&self, path: &Path) {
        let to = path.with_extension("rejected");
        if let Err(e) = std::fs::rename(path, &to) {
            tracing::error!(error = %e, "cannot move a rejected outbox entry aside");
        }
    }

    /// Sends one entry; the caller removes it on `Ok`.
    pub async fn deliver(
        api: &AgentApi,
        entry: &OutboxEntry,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
    ) -> Result<Delivery, CallError> {
        match api
            .report(&entry.command_id, &entry.report, policy, cancel)
            .await
        {
            Ok(_) => Ok(Delivery::Delivered),
            Err(e @ (CallError::LeaseLost(_) | CallError::InvalidTransition(_))) => {
                Ok(Delivery::Dropped(e))
            }
            Err(e @ CallError::Rejected { status: 404, .. }) => Ok(Delivery::Dropped(e)),
            Err(e) => Err(e),
        }
    }

    /// Delivers every pending entry in order, except those being delivered
    /// by someone else right now ([`Outbox::claim`]). Stops at the first
    /// transient or fatal error (the entry stays); returns how many were
    /// settled.
    pub async fn flush(
        &self,
        api: &AgentApi,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
    ) -> Result<usize, CallError> {
        let mut settled = 0;
        for (path, entry) in self.pending() {
            let Some(_claim) = self.claim(&path) else {
                continue;
            };
            if !path.exists() {
                // delivered and removed by its command meanwhile
                continue;
            }
            match Self::deliver(api, &entry, policy, cancel).await {
                Ok(d) => {
                    match &d {
                        Delivery::Delivered => tracing::info!(
                            event_name = "agent.report.delivered",
                            command_id = %entry.command_id,
                            attempt = entry.report.attempt,
                            status = ?entry.report.status,
                            "final report delivered"
                        ),
                        Delivery::Dropped(e) => tracing::warn!(
                            event_name = "agent.report.dropped",
                            command_id = %entry.command_id,
                            attempt = entry.report.attempt,
                            reason = %e,
                            "final report dropped: the server will never apply it"
                        ),
                    }
                    if let Err(e) = self.remove(&path) {
                        tracing::error!(error = %e, "cannot remove a delivered outbox entry");
                    }
                    settled += 1;
                }
                Err(e @ CallError::Rejected { .. }) => {
                    tracing::error!(
                        event_name = "agent.report.rejected",
                        command_id = %entry.command_id,
                        error = %e,
                        "final report rejected by the server; kept as .rejected"
                    );
                    self.reject(&path);
                    settled += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(settled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botmox_protocol::ReportedStatus;

    fn entry(id: &str, attempt: u32, at: &str) -> OutboxEntry {
        OutboxEntry {
            command_id: id.into(),
            command_type: "proxmox.status".into(),
            report: CommandReport {
                status: ReportedStatus::Succeeded,
                attempt,
                result: Some(serde_json::json!({"ok": true})),
                error_code: None,
                error_message: None,
                progress: None,
            },
            created_at: at.into(),
        }
    }

    #[test]
    fn a_claimed_entry_is_delivered_by_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path());
        let shared = ob.clone();
        let p = ob.path_of("c1", 1);
        let claim = ob.claim(&p).expect("first claim");
        // a clone (the loop's flush) sees it as busy
        assert!(shared.claim(&p).is_none());
        // other entries are free
        assert!(shared.claim(&ob.path_of("c1", 2)).is_some());
        drop(claim);
        assert!(shared.claim(&p).is_some());
        // a separate outbox (another process's view) shares nothing
        let other = Outbox::new(dir.path());
        let _c = ob.claim(&p).unwrap();
        assert!(other.claim(&p).is_some());
    }

    /// The loop's flush skips an entry its command is delivering itself:
    /// against a server that never answers, a flush that tried it would fail.
    #[tokio::test]
    async fn flush_skips_claimed_entries() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path());
        let path = ob.put(&entry("c1", 1, "2026-01-01")).unwrap();
        let client = crate::http::ServerClient::new(
            "http://127.0.0.1:1",
            None,
            std::time::Duration::from_secs(2),
        )
        .unwrap();
        let api = AgentApi::new(client);
        let cancel = CancellationToken::new();
        let claim = ob.claim(&path).unwrap();
        let settled = ob
            .clone()
            .flush(&api, &RetryPolicy::single(), &cancel)
            .await
            .unwrap();
        assert_eq!(settled, 0);
        assert!(path.exists(), "a skipped entry stays");
        drop(claim);
        // unclaimed, the flush tries it (and the unreachable server fails it)
        let r = ob.flush(&api, &RetryPolicy::single(), &cancel).await;
        assert!(r.is_err(), "{r:?}");
        assert!(path.exists());
    }

    #[test]
    fn entries_are_durable_private_and_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path());
        assert!(ob.is_empty());
        let p2 = ob.put(&entry("b", 1, "2026-01-02")).unwrap();
        ob.put(&entry("a/../x", 3, "2026-01-01")).unwrap();
        assert!(ob.contains("b", 1));
        assert!(!ob.contains("b", 2));
        // a fresh handle (a restarted agent) sees the same entries, oldest first
        let again = Outbox::new(dir.path());
        let ids: Vec<String> = again
            .pending()
            .into_iter()
            .map(|(_, e)| e.command_id)
            .collect();
        assert_eq!(ids, ["a/../x", "b"]);
        // the id cannot escape the outbox directory
        for (p, _) in again.pending() {
            assert_eq!(p.parent().unwrap(), ob.dir());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p2).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        ob.remove(&p2).unwrap();
        assert_eq!(ob.len(), 1);
        // no temp files are left behind
        let names: Vec<String> = std::fs::read_dir(ob.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
