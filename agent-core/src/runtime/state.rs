//! What the running agent tells `botmox-agent status`: connection state,
//! last heartbeat, current command, last error. Kept in
//! `<config-dir>/runtime/status.json` (no secrets: error messages are
//! redacted before they are stored).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::durable;
use super::journal::Journal;
use super::outbox::Outbox;

pub const STATUS_FILE: &str = "status.json";

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
    pub current_command: Option<CurrentCommand>,
    pub last_error: Option<LastError>,
    pub commands_finished: u64,
}

/// Shared, file-backed runtime status.
#[derive(Debug, Clone)]
pub struct StateHandle {
    path: PathBuf,
    inner: Arc<Mutex<RuntimeStatus>>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl StateHandle {
    pub fn new(runtime_dir: &Path, agent_id: Option<String>) -> Self {
        let t = now();
        let h = StateHandle {
            path: runtime_dir.join(STATUS_FILE),
            inner: Arc::new(Mutex::new(RuntimeStatus {
                connection: Connection::Starting,
                pid: std::process::id(),
                agent_id,
                started_at: t.clone(),
                updated_at: t,
                last_heartbeat_at: None,
                current_command: None,
                last_error: None,
                commands_finished: 0,
            })),
        };
        h.update(|_| {});
        h
    }

    /// Applies `f` and persists the result (a failure to persist is logged;
    /// the status file is informational).
    pub fn update(&self, f: impl FnOnce(&mut RuntimeStatus)) {
        let snapshot = {
            let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut s);
            s.updated_at = now();
            s.clone()
        };
        if let Err(e) = durable::write_json(&self.path, &snapshot) {
            tracing::warn!(error = %e, "cannot write the runtime status file");
        }
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

fn process_alive(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") {
        Some(Path::new(&format!("/proc/{pid}")).exists())
    } else {
        None
    }
}

/// The `runtime` section of `status --json`: the last status the agent
/// wrote (with `process_running`), the outbox size and the in-progress record.
pub fn snapshot(runtime_dir: &Path) -> Value {
    let status: Option<RuntimeStatus> = durable::read_json(&runtime_dir.join(STATUS_FILE))
        .ok()
        .flatten();
    let outbox = Outbox::new(runtime_dir).len();
    let inflight = Journal::new(runtime_dir).load().ok().flatten();
    match status {
        None => json!({
            "connection": "never_started",
            "process_running": false,
            "outbox_size": outbox,
            "in_progress": inflight,
        }),
        Some(s) => {
            let alive = process_alive(s.pid);
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
                "last_error": s.last_error,
                "commands_finished": s.commands_finished,
                "outbox_size": outbox,
                "in_progress": inflight,
            })
        }
    }
}
