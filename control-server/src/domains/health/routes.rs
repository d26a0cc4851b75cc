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
    /// The object store (`local` files or `s3`) answers a listing.
    pub object_store: Check,
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

/// Run `check` with a 2 s limit: (latency, error).
async fn timed<F, E>(check: F) -> (u64, Option<String>)
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(2), check).await;
    let latency_ms = start.elapsed().as_millis() as u64;
    let error = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("timed out after 2 s".to_string()),
    };
    (latency_ms, error)
}

/// Ready to serve: the database and the object store answer within 2 s
/// each. When not, the answer names the failing checks only (the reasons
/// are in the server log).
#[utoipa::path(get, path = "/api/v1/health/ready", tag = "health",
    responses((status = 200, body = Envelope<Ready>),
              (status = 503, description = "A check failed (code NOT_READY; details name it)", body = ErrorEnvelope)))]
pub async fn ready(State(state): State<AppState>) -> Result<Reply<Ready>, ApiError> {
    let ((db_ms, db_err), (os_ms, os_err)) =
        tokio::join!(timed(state.db.ping()), timed(state.objects.check()));
    if db_err.is_none() && os_err.is_none() {
        return Ok(ok(Ready {
            status: "ready",
            checks: Checks {
                database: Check {
                    ready: true,
                    latency_ms: db_ms,
                    error: None,
                },
                object_store: Check {
                    ready: true,
                    latency_ms: os_ms,
                    error: None,
                },
            },
        }));
    }
    // The public answer names the failing checks only; what failed (which
    // may describe the database or the bucket) goes to the log with the
    // request id.
    let failing: Vec<&str> = [("database", &db_err), ("object store", &os_err)]
        .iter()
        .filter(|(_, e)| e.is_some())
        .map(|(n, _)| *n)
        .collect();
    let mut cause = vec![];
    if let Some(e) = &db_err {
        cause.push(format!("database check failed after {db_ms} ms: {e}"));
    }
    if let Some(e) = &os_err {
        cause.push(format!(
            "object store ({}) check failed after {os_ms} ms: {e}",
            state.objects.describe()
        ));
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        codes::NOT_READY,
        format!("The {} check failed", failing.join(" and ")),
    )
    .with_details(serde_json::json!({
        "checks": {
            "database": { "ready": db_err.is_none() },
            "object_store": { "ready": os_err.is_none() },
        }
    }))
    .with_retry_after(5)
    .with_cause(format!("readiness: {}", cause.join("; "))))
}
