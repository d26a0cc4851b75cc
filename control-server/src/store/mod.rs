//! The data layer: one module per table family, each function taking the
//! pool and (for tenant data) a [`TenantScope`], so no query can forget the
//! tenant filter.

pub mod agents;
pub mod commands;
pub mod events;
pub mod tenants;
pub mod tokens;
pub mod users;

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Map a unique-constraint violation to `Conflict(message)`.
    pub fn unique_or(e: sqlx::Error, message: impl Into<String>) -> StoreError {
        if let sqlx::Error::Database(db) = &e {
            let msg = db.message().to_ascii_lowercase();
            if db.is_unique_violation() || msg.contains("unique") || msg.contains("duplicate") {
                return StoreError::Conflict(message.into());
            }
        }
        StoreError::Database(e)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The tenant every query of a request is confined to. Only the auth layer
/// (from a verified caller) and the admin CLI construct it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantScope {
    tenant_id: String,
}

impl TenantScope {
    pub(crate) fn new(tenant_id: impl Into<String>) -> TenantScope {
        TenantScope {
            tenant_id: tenant_id.into(),
        }
    }
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }
}

/// Current time as Unix epoch milliseconds (the storage format).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Render stored epoch milliseconds as RFC 3339 for the API.
pub fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
