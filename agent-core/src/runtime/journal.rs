//! The "commands in progress" records (`<config-dir>/runtime/inflight/`,
//! one file `<command>.<attempt>.json` per running command).
//!
//! A record is written durably before a claimed command starts and removed
//! only after its final report is safely in the outbox. The agent runs
//! several commands at once (`max_concurrent_commands`), so there is one
//! record per running command: each is written and removed on its own, and
//! no command's record depends on another's. If the agent finds records on
//! start, it died while running those commands; it then does **not** run any
//! of them again. The rule, per record: a record without an outbox entry for
//! the same command and attempt is reported `failed` with `AGENT_RESTARTED`
//! (through the outbox); the server's lease and requeue policy decides what
//! happens next (a `LEASE_LOST` answer means the server already requeued it,
//! and the report is dropped).
//!
//! Agents before concurrent commands kept a single record in
//! `runtime/inflight.json`; [`Journal::load_all`] still reads it (an agent
//! upgraded right after a crash) and [`Journal::end`] removes it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::durable::{self, DurableError};

/// The directory of the records, inside the runtime dir.
pub const INFLIGHT_DIR: &str = "inflight";
/// The single record of agents before concurrent commands.
pub const LEGACY_INFLIGHT_FILE: &str = "inflight.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub command_id: String,
    pub command_type: String,
    pub attempt: u32,
    pub started_at: String,
}

#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    legacy: PathBuf,
}

impl Journal {
    pub fn new(runtime_dir: &Path) -> Self {
        Journal {
            dir: runtime_dir.join(INFLIGHT_DIR),
            legacy: runtime_dir.join(LEGACY_INFLIGHT_FILE),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record's file: the id made safe for a file name (it cannot leave
    /// the directory), plus the attempt.
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

    /// Records `rec` as running (durably: temp file, fsync, rename, dir fsync).
    pub fn begin(&self, rec: &InFlight) -> Result<(), DurableError> {
        durable::write_json(&self.file(&rec.command_id, rec.attempt), rec)
    }

    /// Removes the record of one command (a missing record is fine).
    pub fn end(&self, command_id: &str, attempt: u32) -> Result<(), DurableError> {
        durable::remove(&self.file(command_id, attempt))?;
        // the legacy single record, if it was this command's
        if let Some(old) = durable::read_json::<InFlight>(&self.legacy).ok().flatten() {
            if old.command_id == command_id && old.attempt == attempt {
                durable::remove(&self.legacy)?;
            }
        }
        Ok(())
    }

    /// Every record, oldest first (by `started_at`, then id): the per-command
    /// files and a legacy `inflight.json`. An unreadable record is an error
    /// (the agent must not start without knowing what it was running).
    pub fn load_all(&self) -> Result<Vec<InFlight>, DurableError> {
        let mut out = Vec::new();
        if let Some(old) = durable::read_json::<InFlight>(&self.legacy)? {
            out.push(old);
        }
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(source) => {
                return Err(DurableError::Read {
                    path: self.dir.display().to_string(),
                    source,
                })
            }
        };
        for e in entries {
            let path = e
                .map_err(|source| DurableError::Read {
                    path: self.dir.display().to_string(),
                    source,
                })?
                .path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // temp files of an interrupted write start with '.'
            if name.starts_with('.') || path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            if let Some(rec) = durable::read_json::<InFlight>(&path)? {
                if !out
                    .iter()
                    .any(|r| r.command_id == rec.command_id && r.attempt == rec.attempt)
                {
                    out.push(rec);
                }
            }
        }
        out.sort_by(|a, b| {
            (a.started_at.as_str(), a.command_id.as_str(), a.attempt).cmp(&(
                b.started_at.as_str(),
                b.command_id.as_str(),
                b.attempt,
            ))
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, attempt: u32, at: &str) -> InFlight {
        InFlight {
            command_id: id.into(),
            command_type: "proxmox.status".into(),
            attempt,
            started_at: at.into(),
        }
    }

    #[test]
    fn begin_load_end_one_record_per_command() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        assert_eq!(j.load_all().unwrap(), vec![]);
        let a = rec("c1", 2, "2026-01-01T00:00:02Z");
        let b = rec("c2", 1, "2026-01-01T00:00:01Z");
        let c = rec("a/../x", 1, "2026-01-01T00:00:03Z");
        j.begin(&a).unwrap();
        j.begin(&b).unwrap();
        j.begin(&c).unwrap();
        // a fresh handle (a restarted agent) sees all three, oldest first
        assert_eq!(
            Journal::new(dir.path()).load_all().unwrap(),
            vec![b.clone(), a.clone(), c.clone()]
        );
        // the id cannot escape the directory
        for e in std::fs::read_dir(j.dir()).unwrap() {
            assert_eq!(e.unwrap().path().parent().unwrap(), j.dir());
        }
        // ending one leaves the others; ending twice is fine
        j.end("c1", 2).unwrap();
        j.end("c1", 2).unwrap();
        assert_eq!(j.load_all().unwrap(), vec![b.clone(), c.clone()]);
        // another attempt of the same command is another record
        j.end("c2", 7).unwrap();
        assert_eq!(j.load_all().unwrap().len(), 2);
        j.end("c2", 1).unwrap();
        j.end("a/../x", 1).unwrap();
        assert_eq!(j.load_all().unwrap(), vec![]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            j.begin(&a).unwrap();
            let f = j.dir().join("c1.2.json");
            let mode = std::fs::metadata(f).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_legacy_single_record_is_read_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let old = rec("old", 1, "2026-01-01T00:00:00Z");
        durable::write_json(&dir.path().join(LEGACY_INFLIGHT_FILE), &old).unwrap();
        let j = Journal::new(dir.path());
        let new = rec("new", 1, "2026-01-01T00:00:05Z");
        j.begin(&new).unwrap();
        assert_eq!(j.load_all().unwrap(), vec![old.clone(), new.clone()]);
        // ending another command keeps the legacy record
        j.end("new", 1).unwrap();
        assert_eq!(j.load_all().unwrap(), vec![old]);
        j.end("old", 1).unwrap();
        assert!(!dir.path().join(LEGACY_INFLIGHT_FILE).exists());
        assert_eq!(j.load_all().unwrap(), vec![]);
    }

    #[test]
    fn an_unreadable_record_is_an_error_and_temp_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        std::fs::create_dir_all(j.dir()).unwrap();
        std::fs::write(j.dir().join(".c1.1.json.tmp"), b"{half").unwrap();
        assert_eq!(j.load_all().unwrap(), vec![]);
        std::fs::write(j.dir().join("c1.1.json"), b"{half").unwrap();
        assert!(matches!(j.load_all(), Err(DurableError::Corrupt { .. })));
    }
}
