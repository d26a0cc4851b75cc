//! Library-level errors.

use thiserror::Error;

/// Errors starting or configuring the simulator.
#[derive(Debug, Error)]
pub enum SimError {
    #[error("schema error: {0}")]
    Schema(String),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid simulator configuration: {0}")]
    Config(String),
}
