//! What the running agent tells `botmox-agent status`: connection state,
//! last heartbeat, the running commands, the last [`MAX_RECENT`] finished
//! commands, last error. Kept in `<config-dir>/runtime/status.json` (no
//! secrets: error messages are redacted before they are stored) and
//! published on a `tokio::sync::watch` channel ([`StateHandle::subscribe`])
//! so an in-process UI sees every change without polling.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::durable;
use super::journal::Journal;
use super::outbox::Outbox;

pub const STATUS_FILE: &str = "status.json";
/// How many finished commands `recent_commands` keeps (newest first).
pub const MAX_RECENT: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    Starting,
    Online,
    /// The server could not be reached; retrying with backoff.
    Unreachable,
    Revoked,
    Unauthorized,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentCommand {
    pub id: String,
    pub command_type: String,
    pub attempt: u32,
    pub started_at: String,
}

/// How a command ended, from this agent's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishedState {
    Succeeded,
    Failed,
    Cancelled,
}

/// One entry of `recent_commands`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentCommand {
    pub id: String,
    pub command_type: String,
    pub state: FinishedState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    pub code: String,
    pub message: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeStatus {
    pub connection: Connection,
    pub pid: u32,
    pub agent_id: Option<String>,
    pub started_at: String,
    pub updated_at: String,
    pub last_heartbeat_at: Option<String>,
    /// The oldest of `running_commands` (kept for readers from before
    /// concurrent commands: the tray, `status`, scripts).
    pub current_command: Option<CurrentCommand>,
    /// Every command running now, oldest first (at most the agent's
    /// `max_concurrent_commands`).
    #[serde(default)]
    pub running_commands: Vec<CurrentCommand>,
    pub last_error: Option<LastError>,
    pub commands_finished: u64,
    /// The last [`MAX_RECENT`] finished commands, newest first (kept across
    /// restarts of the runtime).
    #[serde(default)]
    pub recent_commands: Vec<RecentCommand>,
}

/// Shared, file-backed runtime status, also published on a watch channel.
#[derive(Debug, Clone)]
pub struct StateHandle {
    path: PathBuf,
    inner: Arc<Mutex<RuntimeStatus>>,
    /// Serialises writing `status.json` (one temp file name): concurrent
    /// command tasks update the status at the same time.
    write: Arc<Mutex<()>>,
    tx: watch::Sender<Option<RuntimeStatus>>,
}

/// RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl StateHandle {
    pub fn new(runtime_dir: &Path, agent_id: Option<String>) -> Self {
        Self::with_sender(runtime_dir, agent_id, watch::Sender::new(None))
    }

    /// Like [`StateHandle::new`], publishing on `tx` (which may outlive this
    /// runtime: the tray keeps one channel across pause/resume).
    pub fn with_sender(
        runtime_dir: &Path,
        agent_id: Option<String>,
        tx: watch::Sender<Option<RuntimeStatus>>,
    ) -> Self {
        let t = now();
        let path = runtime_dir.join(STATUS_FILE);
        // The recent-commands list survives restarts of the same agent.
        let recent_commands = durable::read_json::<RuntimeStatus>(&path)
            .ok()
            .flatten()
            .filter(|s| s.agent_id == agent_id)
            .map(|s| s.recent_commands)
            .unwrap_or_default();
        let h = StateHandle {
            path,
            write: Arc::new(Mutex::new(())),
            tx,
            inner: Arc::new(Mutex::new(RuntimeStatus {
                connection: Connection::Starting,
                pid: std::process::id(),
                agent_id,
                started_at: t.clone(),
                updated_at: t,
                last_heartbeat_at: None,
                current_command: None,
                running_commands: Vec::new(),
                last_error: None,
                commands_finished: 0,
                recent_commands,
            })),
        };
        h.update(|_| {});
        h
    }

    /// Applies `f` and persists the result (a failure to persist is logged;
    /// the status file is informational).
    /// Writers take turns and each writes the latest status, so the file and
    /// the channel never go back to an older one.
    pub fn update(&self, f: impl FnOnce(&mut RuntimeStatus)) {
        {
            let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut s);
            s.updated_at = now();
        }
        let _turn = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot = self.get();
        if let Err(e) = durable::write_json(&self.path, &snapshot) {
            tracing::warn!(error = %e, "cannot write the runtime status file");
        }
        self.tx.send_replace(Some(snapshot));
    }

    /// A receiver that sees every later status (the current one first).
    pub fn subscribe(&self) -> watch::Receiver<Option<RuntimeStatus>> {
        self.tx.subscribe()
    }

    /// Records a finished command in `recent_commands` (newest first,
    /// at most [`MAX_RECENT`]).
    pub fn command_finished(&self, c: RecentCommand) {
        self.update(|s| {
            s.recent_commands.retain(|x| x.id != c.id);
            s.recent_commands.insert(0, c);
            s.recent_commands.truncate(MAX_RECENT);
        });
    }

    /// Adds a running command (`current_command` stays the oldest).
    pub fn command_started(&self, c: CurrentCommand) {
        self.update(|s| {
            s.running_commands
                .retain(|x| !(x.id == c.id && x.attempt == c.attempt));
            s.running_commands.push(c);
            s.current_command = s.running_commands.first().cloned();
        });
    }

    /// Removes a running command and counts it as finished.
    pub fn command_ended(&self, id: &str, attempt: u32) {
        self.update(|s| {
            s.running_commands
                .retain(|x| !(x.id == id && x.attempt == attempt));
            s.current_command = s.running_commands.first().cloned();
            s.commands_finished += 1;
        });
    }

    pub fn get(&self) -> RuntimeStatus {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_connection(&self, c: Connection) {
        self.update(|s| s.connection = c);
    }

    pub fn heartbeat_ok(&self) {
        self.update(|s| {
            s.connection = Connection::Online;
            s.last_heartbeat_at = Some(now());
        });
    }

    pub fn error(&self, code: &str, message: &str) {
        let message = crate::redact::redact_text(message);
        self.update(|s| {
            s.last_error = Some(LastError {
                code: code.to_string(),
                message,
                at: now(),
            })
        });
    }
}

/// Whether process `pid` exists (`None`: cannot tell on this OS).
pub fn process_alive(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") {
        Some(Path::new(&format!("/proc/{pid}")).exists())
    } else {
        None
    }
}

/// The `runtime` section of `status --json`: the last status the agent
/// wrote (with `process_running`), the outbox size and the in-progress
/// records (`in_flight`, oldest first; `in_progress` is the oldest, as before
/// concurrent commands).
pub fn snapshot(runtime_dir: &Path) -> Value {
    let status: Option<RuntimeStatus> = durable::read_json(&runtime_dir.join(STATUS_FILE))
        .ok()
        .flatten();
    let outbox = Outbox::new(runtime_dir).len();
    let inflight = Journal::new(runtime_dir).load_all().unwrap_or_default();
    let first = inflight.first().cloned();
    match status {
        None => json!({
            "connection": "never_started",
            "process_running": false,
            "running_commands": [],
            "recent_commands": [],
            "outbox_size": outbox,
            "in_progress": first,
            "in_flight": inflight,
        }),
        Some(s) => {
            let alive = process_alive(s.pid);
            // Windows has no /proc: whether a runtime still holds the lock
            // (released by the OS when the process dies) says it instead.
            #[cfg(windows)]
            let alive = alive.or(Some(super::lock::is_held(runtime_dir)));
            let live_state = matches!(
                s.connection,
                Connection::Starting | Connection::Online | Connection::Unreachable
            );
            let connection = if live_state && alive == Some(false) {
                // the process died without recording it (SIGKILL, crash)
                json!("stopped")
            } else {
                json!(s.connection)
            };
            json!({
                "connection": connection,
                "recorded_connection": s.connection,
                "process_running": alive.unwrap_or(live_state) && live_state,
                "pid": s.pid,
                "agent_id": s.agent_id,
                "started_at": s.started_at,
                "updated_at": s.updated_at,
                "last_heartbeat_at": s.last_heartbeat_at,
                "current_command": s.current_command,
                "running_commands": s.running_commands,
                "last_error": s.last_error,
                "commands_finished": s.commands_finished,
                "recent_commands": s.recent_commands,
                "outbox_size": outbox,
                "in_progress": first,
                "in_flight": inflight,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(i: usize, state: FinishedState) -> RecentCommand {
        RecentCommand {
            id: format!("cmd-{i}"),
            command_type: "proxmox.status".into(),
            state,
            error_code: (state == FinishedState::Failed).then(|| "PROXMOX_UNREACHABLE".into()),
            started_at: now(),
            finished_at: now(),
        }
    }

    #[test]
    fn recent_commands_are_bounded_newest_first_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let h = StateHandle::new(dir.path(), Some("agent-1".into()));
        for i in 0..25 {
            let st = match i % 3 {
                0 => FinishedState::Succeeded,
                1 => FinishedState::Failed,
                _ => FinishedState::Cancelled,
            };
            h.command_finished(rc(i, st));
        }
        let s = h.get();
        assert_eq!(s.recent_commands.len(), MAX_RECENT);
        assert_eq!(s.recent_commands[0].id, "cmd-24");
        assert_eq!(s.recent_commands[MAX_RECENT - 1].id, "cmd-5");
        // the same id again moves to the front instead of duplicating
        h.command_finished(rc(10, FinishedState::Succeeded));
        let s = h.get();
        assert_eq!(s.recent_commands[0].id, "cmd-10");
        assert_eq!(
            s.recent_commands
                .iter()
                .filter(|c| c.id == "cmd-10")
                .count(),
            1
        );
        // written to status.json and shown by snapshot()
        let snap = snapshot(dir.path());
        assert_eq!(
            snap["recent_commands"].as_array().unwrap().len(),
            MAX_RECENT
        );
        assert_eq!(snap["recent_commands"][0]["id"], "cmd-10");
        assert_eq!(snap["recent_commands"][1]["state"], "succeeded"); // cmd-24
        assert_eq!(snap["recent_commands"][2]["state"], "cancelled"); // cmd-23
        assert_eq!(snap["recent_commands"][3]["state"], "failed"); // cmd-22
        assert_eq!(
            snap["recent_commands"][3]["error_code"],
            "PROXMOX_UNREACHABLE"
        );
        // a restart of the same agent keeps the list; another agent starts clean
        let again = StateHandle::new(dir.path(), Some("agent-1".into()));
        assert_eq!(again.get().recent_commands.len(), MAX_RECENT);
        let other = StateHandle::new(dir.path(), Some("agent-2".into()));
        assert!(other.get().recent_commands.is_empty());
    }

    fn cur(id: &str, attempt: u32) -> CurrentCommand {
        CurrentCommand {
            id: id.into(),
            command_type: "proxmox.wait-task".into(),
            attempt,
            started_at: now(),
        }
    }

    #[test]
    fn running_commands_are_all_listed_and_current_command_is_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let h = StateHandle::new(dir.path(), Some("a".into()));
        h.command_started(cur("c1", 1));
        h.command_started(cur("c2", 1));
        h.command_started(cur("c3", 1));
        let s = h.get();
        let ids: Vec<&str> = s.running_commands.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c1", "c2", "c3"]);
        assert_eq!(s.current_command.as_ref().unwrap().id, "c1");
        // the oldest ends: current_command moves to the next
        h.command_ended("c1", 1);
        let s = h.get();
        assert_eq!(s.current_command.as_ref().unwrap().id, "c2");
        assert_eq!(s.running_commands.len(), 2);
        assert_eq!(s.commands_finished, 1);
        // another attempt of a running id is not the running one
        h.command_ended("c3", 2);
        assert_eq!(h.get().running_commands.len(), 2);
        h.command_ended("c3", 1);
        h.command_ended("c2", 1);
        let s = h.get();
        assert!(s.running_commands.is_empty());
        assert_eq!(s.current_command, None);
        assert_eq!(s.commands_finished, 4);

        // status.json and snapshot(): every running command and record
        h.command_started(cur("d1", 1));
        h.command_started(cur("d2", 3));
        let j = Journal::new(dir.path());
        for (id, attempt, at) in [
            ("d2", 3, "2026-01-01T00:00:02Z"),
            ("d1", 1, "2026-01-01T00:00:01Z"),
        ] {
            j.begin(&super::super::journal::InFlight {
                command_id: id.into(),
                command_type: "proxmox.wait-task".into(),
                attempt,
                started_at: at.into(),
            })
            .unwrap();
        }
        let snap = snapshot(dir.path());
        assert_eq!(snap["running_commands"][0]["id"], "d1");
        assert_eq!(snap["running_commands"][1]["id"], "d2");
        assert_eq!(snap["current_command"]["id"], "d1");
        assert_eq!(snap["in_flight"].as_array().unwrap().len(), 2);
        assert_eq!(snap["in_progress"]["command_id"], "d1");
        assert_eq!(snap["in_flight"][1]["command_id"], "d2");
        // a status file from before concurrent commands still reads
        let mut old: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(STATUS_FILE)).unwrap())
                .unwrap();
        old.as_object_mut().unwrap().remove("running_commands");
        let parsed: RuntimeStatus = serde_json::from_value(old).unwrap();
        assert!(parsed.running_commands.is_empty());
        assert_eq!(parsed.current_command.unwrap().id, "d1");
    }

    /// Command tasks update the status at the same time: every write is
    /// whole and the file ends with the latest status.
    #[test]
    fn concurrent_updates_leave_the_latest_whole_status() {
        let dir = tempfile::tempdir().unwrap();
        let h = StateHandle::new(dir.path(), Some("a".into()));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        let id = format!("t{t}-{i}");
                        h.command_started(cur(&id, 1));
                        h.command_ended(&id, 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let on_disk: RuntimeStatus =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(STATUS_FILE)).unwrap())
                .unwrap();
        assert_eq!(on_disk.commands_finished, 160);
        assert!(on_disk.running_commands.is_empty());
        assert_eq!(on_disk, h.get());
        assert_eq!(h.subscribe().borrow().as_ref(), Some(&h.get()));
        // no temp file left behind
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, [STATUS_FILE]);
    }

    #[tokio::test]
    async fn every_change_is_published_on_the_watch_channel() {
        let dir = tempfile::tempdir().unwrap();
        let tx = watch::Sender::new(None);
        let mut rx = tx.subscribe();
        let h = StateHandle::with_sender(dir.path(), Some("a".into()), tx);
        // the initial status is already there
        assert_eq!(
            rx.borrow_and_update().as_ref().map(|s| s.connection),
            Some(Connection::Starting)
        );
        let mut rx2 = h.subscribe();
        rx2.borrow_and_update();
        let h2 = h.clone();
        let waiter = tokio::spawn(async move {
            rx2.changed().await.unwrap();
            rx2.borrow().as_ref().map(|s| s.connection)
        });
        tokio::task::yield_now().await;
        h2.heartbeat_ok();
        assert_eq!(waiter.await.unwrap(), Some(Connection::Online));
        rx.changed().await.unwrap();
        assert!(rx.borrow().as_ref().unwrap().last_heartbeat_at.is_some());
        h.error("NETWORK_ERROR", "boom");
        rx.changed().await.unwrap();
        assert_eq!(
            rx.borrow()
                .as_ref()
                .unwrap()
                .last_error
                .as_ref()
                .unwrap()
                .code,
            "NETWORK_ERROR"
        );
    }
}
