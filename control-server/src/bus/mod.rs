//! The command bus: agents (pairing, tokens, heartbeats) and the commands
//! they claim, run and report, with durable events. Domain logic only; the
//! HTTP layer lives in `http::routes::{agents, vm_ops}`.

pub mod agents;
pub mod commands;
pub mod events;
pub mod notify;
pub mod sweeper;
pub mod views;

use std::sync::Arc;

use crate::config::BusConfig;
use crate::db::Db;
use crate::error::FieldErrors;
use crate::store::StoreError;

pub use notify::Notifier;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid input")]
    Validation(FieldErrors),
    #[error("agent not found")]
    AgentNotFound,
    #[error("agent is not online")]
    AgentOffline,
    #[error("agent is revoked")]
    AgentRevoked,
    #[error("the target agent is revoked")]
    TargetRevoked,
    #[error("agent is already revoked")]
    AlreadyRevoked,
    #[error("agent is not a pending pairing")]
    AgentNotPending,
    #[error("agent has no owner")]
    OwnerUnassigned,
    #[error("agent belongs to another user")]
    OwnerMismatch,
    #[error("only admins may choose the owner")]
    OwnerOverrideForbidden,
    #[error("agent token invalid")]
    AgentTokenInvalid,
    #[error("pairing code not found or used")]
    PairingNotFound,
    #[error("pairing code expired")]
    PairingExpired,
    #[error("command not found")]
    CommandNotFound,
    #[error("invalid transition: {0}")]
    InvalidTransition(String),
    #[error("lease lost")]
    LeaseLost,
    #[error("idempotency key reused for a different command")]
    IdempotencyKeyReused,
    #[error("output limit exceeded: {0}")]
    OutputLimit(String),
    /// The caller lacks this role.
    #[error("role {0} required")]
    RoleRequired(&'static str),
    /// Not allowed, for the reason given.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> BusError {
    let mut f = FieldErrors::default();
    f.add(field, message);
    BusError::Validation(f)
}

/// Shared state of the bus.
pub struct Bus {
    pub db: Db,
    pub cfg: BusConfig,
    pub notifier: Arc<Notifier>,
}

impl Bus {
    pub fn new(db: Db, cfg: BusConfig) -> Bus {
        let notifier = Arc::new(Notifier::new(&db));
        Bus { db, cfg, notifier }
    }

    pub fn intervals(&self) -> botmox_protocol::Intervals {
        botmox_protocol::Intervals {
            heartbeat_interval_s: self.cfg.heartbeat_interval_s,
            poll_timeout_s: self.cfg.poll_timeout_s,
            lease_s: self.cfg.lease_s,
        }
    }
}
