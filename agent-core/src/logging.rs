//! Logging: tracing + tracing-appender, JSON lines in daily rolling files
//! (`agent.YYYY-MM-DD.log`, 7 kept), secrets redacted by key and by value
//! before anything reaches the disk.

use std::io::Write;
use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::redact::redact_line;

pub const LOG_PREFIX: &str = "agent";
pub const LOG_SUFFIX: &str = "log";

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open the log directory {path}: {message}")]
    Dir { path: String, message: String },
    #[error("a global logger is already installed")]
    AlreadySet,
}

/// A writer that redacts each complete line before passing it on.
pub struct Redacting<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Redacting<W> {
    pub fn new(inner: W) -> Self {
        Redacting {
            inner,
            buf: Vec::new(),
        }
    }

    fn flush_lines(&mut self, all: bool) -> std::io::Result<()> {
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            let red = redact_line(&text);
            self.inner.write_all(red.as_bytes())?;
            self.inner.write_all(b"\n")?;
        }
        if all && !self.buf.is_empty() {
            let text = String::from_utf8_lossy(&self.buf).to_string();
            self.buf.clear();
            self.inner.write_all(redact_line(&text).as_bytes())?;
        }
        Ok(())
    }
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.flush_lines(false)?;
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_lines(true)?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for Redacting<W> {
    fn drop(&mut self) {
        let _ = self.flush_lines(true);
    }
}

/// `MakeWriter` wrapper applying [`Redacting`] to every event.
#[derive(Clone)]
pub struct RedactingMakeWriter<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingMakeWriter<M> {
    type Writer = Redacting<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        Redacting::new(self.0.make_writer())
    }
}

/// Keeps the background log writer alive; drop it last to flush.
pub struct LogGuard {
    _guard: WorkerGuard,
}

/// Installs the global subscriber: JSON lines to `<dir>/agent.<date>.log`
/// (daily, 7 files) and human-readable warnings and errors to stderr.
/// `filter` is an `EnvFilter` directive (e.g. `info`); `BOTMOX_AGENT_LOG`
/// overrides it.
pub fn init(dir: &Path, filter: &str) -> Result<LogGuard, LogError> {
    let err = |m: String| LogError::Dir {
        path: dir.display().to_string(),
        message: m,
    };
    crate::config::ensure_private_dir(dir).map_err(|e| err(e.to_string()))?;
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(LOG_PREFIX)
        .filename_suffix(LOG_SUFFIX)
        .max_log_files(7)
        .build(dir)
        .map_err(|e| err(e.to_string()))?;
    let (nb, guard) = tracing_appender::non_blocking(appender);
    let env = EnvFilter::try_from_env("BOTMOX_AGENT_LOG")
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let file_layer = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_writer(RedactingMakeWriter(nb));
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(RedactingMakeWriter(std::io::stderr))
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN);
    use tracing_subscriber::Layer;
    tracing_subscriber::registry()
        .with(env)
        .with(file_layer)
        .with(stderr_layer)
        .try_init()
        .map_err(|_| LogError::AlreadySet)?;
    tracing::info!(
        event_name = "agent.session.started",
        session_id = %uuid::Uuid::new_v4(),
        pid = std::process::id(),
        version = crate::VERSION,
        "agent session started"
    );
    Ok(LogGuard { _guard: guard })
}

/// The log files in `dir`, oldest first.
pub fn log_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(LOG_PREFIX) && n.ends_with(LOG_SUFFIX))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(d);
            Ok(d.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    /// Inventory §7 logger test: password, token and nested api_key values
    /// are replaced by [REDACTED]; the raw secrets are absent.
    #[test]
    fn json_log_lines_are_redacted() {
        let buf = Buf::default();
        let sub = tracing_subscriber::fmt()
            .json()
            .with_writer(RedactingMakeWriter(buf.clone()))
            .finish();
        crate::redact::register_secret("registered-secret-42");
        tracing::subscriber::with_default(sub, || {
            tracing::info!(
                password = "pw-secret-1",
                token = "tok-secret-2",
                details = %serde_json::json!({"nested": {"api_key": "key-secret-3"}}),
                "login with registered-secret-42 done"
            );
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(out.contains("[REDACTED]"), "{out}");
        for s in [
            "pw-secret-1",
            "tok-secret-2",
            "key-secret-3",
            "registered-secret-42",
        ] {
            assert!(!out.contains(s), "{s} leaked: {out}");
        }
        let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(line["fields"]["password"], "[REDACTED]");
    }
}
