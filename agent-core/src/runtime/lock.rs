//! One runtime per config dir: `<config-dir>/runtime/agent.lock`, held with
//! an OS file lock (`File::try_lock`: `flock` on Unix, `LockFileEx` on
//! Windows) for the life of [`super::run`]. The OS drops the lock when the
//! process dies, so a crash never leaves a stale lock behind.
//!
//! The headless `botmox-agent run` and the tray app both take it; the tray
//! uses [`is_held`] to tell that a service owns the dir and then mirrors
//! `status.json` instead of starting a second runtime.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::durable;

pub const LOCK_FILE: &str = "agent.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another runtime (in this or another process) holds the lock.
    #[error(
        "another agent runtime (the agent service or the tray app) is already running on {path}"
    )]
    Held { path: String },
    #[error("cannot open the runtime lock {path}: {message}")]
    Io { path: String, message: String },
}

/// The held lock; released on drop.
#[derive(Debug)]
pub struct RuntimeLock {
    path: PathBuf,
    _file: File,
}

impl RuntimeLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub fn lock_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(LOCK_FILE)
}

fn open(runtime_dir: &Path) -> Result<(PathBuf, File), LockError> {
    let path = lock_path(runtime_dir);
    let io = |e: &dyn std::fmt::Display| LockError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    durable::ensure_dir(runtime_dir).map_err(|e| io(&e))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io(&e))?;
    Ok((path, file))
}

/// Takes the lock without waiting.
pub fn acquire(runtime_dir: &Path) -> Result<RuntimeLock, LockError> {
    let (path, file) = open(runtime_dir)?;
    match file.try_lock() {
        Ok(()) => Ok(RuntimeLock { path, _file: file }),
        Err(TryLockError::WouldBlock) => Err(LockError::Held {
            path: path.display().to_string(),
        }),
        Err(TryLockError::Error(e)) => Err(LockError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

/// Whether a runtime holds the lock right now (probes by taking and
/// releasing it). An unreadable lock file counts as not held.
pub fn is_held(runtime_dir: &Path) -> bool {
    if !lock_path(runtime_dir).exists() {
        return false;
    }
    matches!(acquire(runtime_dir), Err(LockError::Held { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let rdir = dir.path().join("runtime");
        assert!(!is_held(&rdir));
        let first = acquire(&rdir).unwrap();
        assert!(first.path().ends_with(LOCK_FILE));
        assert!(matches!(acquire(&rdir), Err(LockError::Held { .. })));
        assert!(is_held(&rdir));
        drop(first);
        assert!(!is_held(&rdir));
        let _again = acquire(&rdir).unwrap();
    }
}
