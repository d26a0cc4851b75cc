//! Liveness, readiness and service identity.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::codes;
use crate::http::envelope::{ok, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;

pub const SERVICE: &str = "botmox-control-server";

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub service: &'static str,
    pub version: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    pub timestamp: String,
    /// SHA-256 of the TLS certificate this server presents (lowercase hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_sha256: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Live {
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Check {
    pub ready: bool,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    pub status: &'static str,
    pub checks: Checks,
}

#[derive(Serialize, ToSchema)]
pub struct Checks {
    pub database: Check,
}

/// Service name, version and database backend.
#[utoipa::path(get, path = "/api/v1/health", tag = "health",
    responses((status = 200, body = Envelope<Health>)))]
pub async fn health(State(state): State<AppState>) -> Reply<Health> {
    ok(Health {
        service: SERVICE,
        version: env!("CARGO_PKG_VERSION"),
        database: state.db.backend().as_str(),
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        tls_sha256: state.tls_sha256.as_deref().map(str::to_string),
    })
}

/// The process is up (no dependencies checked).
#[utoipa::path(get, path = "/api/v1/health/live", tag = "health",
    responses((status = 200, body = Envelope<Live>)))]
pub async fn live() -> Reply<Live> {
    ok(Live { status: "live" })
}

/// Ready to serve: the database answers within 2 s. When not, the answer
/// names the failing check only (the reason is in the server log).
#[utoipa::path(get, path = "/api/v1/health/ready", tag = "health",
    responses((status = 200, body = Envelope<Ready>),
              (status = 503, description = "A check failed (code NOT_READY; details name it)", body = ErrorEnvelope)))]
pub async fn ready(State(state): State<AppState>) -> Result<Reply<Ready>, ApiError> {
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await;
    let latency_ms = start.elapsed().as_millis() as u64;
    let error = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("timed out after 2 s".to_string()),
    };
    match error {
        None => Ok(ok(Ready {
            status: "ready",
            checks: Checks {
                database: Check {
                    ready: true,
                    latency_ms,
                    error: None,
                },
            },
        })),
        // The public answer names the failing check only; what failed (which
        // may describe the database) goes to the log with the request id.
        Some(error) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::NOT_READY,
            "The database check failed",
        )
        .with_details(serde_json::json!({
            "checks": { "database": { "ready": false } }
        }))
        .with_retry_after(5)
        .with_cause(format!(
            "readiness: database check failed after {latency_ms} ms: {error}"
        ))),
    }
}
