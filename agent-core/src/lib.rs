//! agent-core: the Bot-Mox agent runtime library (used by the headless
//! `botmox-agent` binary and the tray app `agent-tauri`).
//!
//! Module map (each boundary has its own typed error):
//! - [`pairing`]: parses every pairing input form (bundle, JSON, URLs, code);
//! - [`config`]: `config.toml` in the config dir (no secrets);
//! - [`secrets`]: OS keyring, Secret Service, or an explicit 0600 file;
//! - [`http`]: the control-server HTTPS client (pinning, retries, request ids);
//! - [`tls`]: trust modes (system, CA, pinned SHA-256, explicit insecure);
//! - [`retry`]: jittered exponential backoff and per-call budgets;
//! - [`proxmox`]: PVE API client and the `proxmox.*` actions;
//! - [`ssh`]: russh executor with allowlist and TOFU host keys;
//! - [`provision`]: in-memory provisioning ISO, API upload (SFTP fallback), cdrom attach;
//! - [`executor`]: `execute(command_type, payload, ctx)` dispatch;
//! - [`logging`], [`redact`], [`diagnostics`]: JSON logs without secrets.
//!
//! - [`runtime`]: registration and the command-bus loop (heartbeat,
//!   long poll, lease renewal, durable outbox, revocation, token rotation).
//! - [`vault`]: the agent's X25519 key pair (private half in the secret
//!   store) and secrets delivered sealed to it.
//! - [`control`]: the local-control facade (pair, status, targets, test,
//!   diagnostics, and the in-process supervisor) shared by the CLI and the
//!   tray app.

pub mod config;
pub mod control;
pub mod diagnostics;
pub mod executor;
pub mod fuzzing;
pub mod http;
pub mod logging;
pub mod pairing;
pub mod provision;
pub mod proxmox;
pub mod redact;
pub mod retry;
pub mod runtime;
pub mod secrets;
pub mod service;
pub mod ssh;
pub mod tls;
pub mod vault;

pub use executor::{execute, ExecContext, ExecError, Target, Targets};

/// The agent version reported to the server.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
