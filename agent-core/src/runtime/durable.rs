//! Crash-safe small files: write to a temp file, fsync it, rename it into
//! place and fsync the directory, so after a crash a file is either the old
//! or the new version, never half written. Mode 0600 on Unix.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {message}")]
    Corrupt { path: String, message: String },
}

fn werr(path: &Path) -> impl Fn(std::io::Error) -> DurableError + '_ {
    move |source| DurableError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// Creates `dir` (0700 on Unix) if needed.
pub fn ensure_dir(dir: &Path) -> Result<(), DurableError> {
    crate::config::ensure_private_dir(dir).map_err(|e| DurableError::Write {
        path: dir.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Writes `value` as JSON to `path` durably (temp + fsync + rename + dir fsync).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), DurableError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| DurableError::Corrupt {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_dir(dir)?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(werr(&tmp))?;
        f.write_all(&bytes).map_err(werr(&tmp))?;
        f.sync_all().map_err(werr(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(werr(path))?;
    sync_dir(dir)
}

/// Reads a JSON file; `None` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, DurableError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| DurableError::Corrupt {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DurableError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Removes a file (a missing file is fine) and fsyncs its directory.
pub fn remove(path: &Path) -> Result<(), DurableError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(werr(path)(e)),
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<(), DurableError> {
    #[cfg(unix)]
    {
        let d = std::fs::File::open(dir).map_err(werr(dir))?;
        d.sync_all().map_err(werr(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
