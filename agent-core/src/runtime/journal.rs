//! The "command in progress" record (`<config-dir>/runtime/inflight.json`).
//!
//! Written durably before a claimed command starts and removed only after
//! its final report is safely in the outbox. If the agent finds a record on
//! start, it died while running that command; it then does **not** run the
//! command again. The rule: a record without an outbox entry for the same
//! command and attempt is reported `failed` with `AGENT_RESTARTED` (through
//! the outbox); the server's lease and requeue policy decides what happens
//! next (a `LEASE_LOST` answer means the server already requeued it, and the
//! report is dropped).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::durable::{self, DurableError};

pub const INFLIGHT_FILE: &str = "inflight.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub command_id: String,
    pub command_type: String,
    pub attempt: u32,
    pub started_at: String,
}

#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    pub fn new(runtime_dir: &Path) -> Self {
        Journal {
            path: runtime_dir.join(INFLIGHT_FILE),
        }
    }

    pub fn begin(&self, rec: &InFlight) -> Result<(), DurableError> {
        durable::write_json(&self.path, rec)
    }

    pub fn load(&self) -> Result<Option<InFlight>, DurableError> {
        durable::read_json(&self.path)
    }

    pub fn clear(&self) -> Result<(), DurableError> {
        durable::remove(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_load_clear() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        assert_eq!(j.load().unwrap(), None);
        let rec = InFlight {
            command_id: "c1".into(),
            command_type: "proxmox.status".into(),
            attempt: 2,
            started_at: "now".into(),
        };
        j.begin(&rec).unwrap();
        assert_eq!(Journal::new(dir.path()).load().unwrap(), Some(rec));
        j.clear().unwrap();
        j.clear().unwrap();
        assert_eq!(j.load().unwrap(), None);
    }
}
