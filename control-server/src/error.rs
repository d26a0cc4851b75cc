//! The one error type of the HTTP surface, and its JSON envelope.
//!
//! Every failure that reaches a client is an [`ApiError`]: an HTTP status, a
//! stable UPPER_SNAKE `code`, a human message and optional `details`. Library
//! errors (`StoreError`, `AuthError`, …) are mapped to it exactly once, here.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `{success:false, error:{code,message,details?}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `UNAUTHORIZED`, `VALIDATION_ERROR`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Structured details (field errors, failing checks, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header (429/503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn rate_limited(retry_after: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "Too many requests. Please try again later.",
        )
        .with_retry_after(retry_after)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "Internal server error",
        )
    }
    /// A 400 `VALIDATION_ERROR` listing every failing field.
    pub fn validation(errors: FieldErrors) -> Self {
        let message = errors
            .0
            .iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        let fields: serde_json::Map<String, Value> = errors
            .0
            .into_iter()
            .map(|(f, m)| (f, Value::String(m)))
            .collect();
        Self::bad_request("VALIDATION_ERROR", message)
            .with_details(serde_json::json!({ "fields": fields }))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(
                code = self.code,
                status = self.status.as_u16(),
                "request failed"
            );
        }
        let body = ErrorEnvelope {
            success: false,
            error: ErrorBody {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// Field-level validation errors, in the order found.
#[derive(Debug, Default)]
pub struct FieldErrors(pub Vec<(String, String)>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_string(), message.into()));
    }
    pub fn check(&mut self, ok: bool, field: &str, message: &str) {
        if !ok {
            self.add(field, message);
        }
    }
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self))
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
        match e {
            E::NotFound(what) => ApiError::not_found("NOT_FOUND", format!("{what} not found")),
            E::Conflict(what) => ApiError::conflict("CONFLICT", what),
            E::Invalid(msg) => ApiError::bad_request("VALIDATION_ERROR", msg),
            E::Database(err) => {
                tracing::error!(error = %err, "database error");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "DATABASE_ERROR",
                    "The database is not available; try again shortly",
                )
                .with_retry_after(2)
            }
        }
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError as E;
        match e {
            E::MissingToken => ApiError::unauthorized("Bearer token is required"),
            E::InvalidToken => ApiError::unauthorized("Token is invalid, expired or revoked"),
            E::AgentToken => ApiError::forbidden(
                "Agent tokens cannot call this endpoint; use a user session or API token",
            ),
            E::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "INVALID_CREDENTIALS",
                "Email or password is incorrect",
            ),
            E::Forbidden(required) => {
                ApiError::forbidden(format!("Role '{required}' is required for this action"))
            }
            E::Throttled { retry_after_s } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "Too many failed sign-in attempts. Please try again later.",
            )
            .with_retry_after(retry_after_s),
            E::Store(s) => s.into(),
            E::Internal(msg) => {
                tracing::error!(error = %msg, "auth internal error");
                ApiError::internal()
            }
        }
    }
}

impl From<crate::bus::BusError> for ApiError {
    fn from(e: crate::bus::BusError) -> Self {
        use crate::bus::BusError as E;
        use botmox_protocol::codes;
        match e {
            E::Validation(f) => ApiError::validation(f),
            E::AgentNotFound => ApiError::not_found(codes::AGENT_NOT_FOUND, "No such agent"),
            E::AgentOffline => ApiError::conflict(
                codes::AGENT_OFFLINE,
                "The agent is not online; VM operations need a connected agent (nothing was queued)",
            ),
            E::AgentRevoked => ApiError::new(
                StatusCode::FORBIDDEN,
                codes::AGENT_REVOKED,
                "This agent has been revoked; pair it again to reconnect",
            ),
            E::TargetRevoked => ApiError::conflict(
                codes::AGENT_REVOKED,
                "The agent is revoked; nothing was queued",
            ),
            E::AlreadyRevoked => ApiError::conflict("ALREADY_REVOKED", "The agent is already revoked"),
            E::AgentNotPending => ApiError::conflict(
                "AGENT_NOT_PENDING",
                "Only a pairing that was never used can be deleted; revoke an active agent instead",
            ),
            E::OwnerUnassigned => ApiError::new(
                StatusCode::FORBIDDEN,
                "AGENT_OWNER_UNASSIGNED",
                "The agent has no owner; an admin must dispatch to it",
            ),
            E::OwnerMismatch => ApiError::new(
                StatusCode::FORBIDDEN,
                "AGENT_OWNER_MISMATCH",
                "The agent belongs to another user",
            ),
            E::OwnerOverrideForbidden => ApiError::forbidden(
                "Role 'admin' is required to pair an agent for another user (owner_user_id)",
            ),
            E::AgentTokenInvalid => ApiError::unauthorized("Agent token is invalid or expired"),
            E::PairingNotFound => ApiError::not_found(
                codes::PAIRING_NOT_FOUND,
                "Pairing code not found or already used",
            ),
            E::PairingExpired => ApiError::new(
                StatusCode::GONE,
                codes::PAIRING_EXPIRED,
                "The pairing code has expired; create a new pairing",
            ),
            E::CommandNotFound => ApiError::not_found(codes::COMMAND_NOT_FOUND, "No such command"),
            E::InvalidTransition(m) => ApiError::conflict(codes::INVALID_TRANSITION, m),
            E::LeaseLost => ApiError::conflict(
                codes::LEASE_LOST,
                "The lease on this command was lost (it was requeued or claimed again); drop this result",
            ),
            E::IdempotencyKeyReused => ApiError::conflict(
                "IDEMPOTENCY_KEY_REUSED",
                "This idempotency key belongs to a different command",
            ),
            E::OutputLimit(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "OUTPUT_LIMIT_EXCEEDED", m),
            E::RoleRequired(role) => {
                ApiError::forbidden(format!("Role '{role}' is required for this action"))
            }
            E::Forbidden(why) => ApiError::forbidden(why),
            E::Store(s) => s.into(),
        }
    }
}
