//! The one error type of the HTTP surface, and its JSON envelope.
//!
//! Every failure that reaches a client is an [`ApiError`]: an HTTP status, a
//! stable UPPER_SNAKE `code` (all listed in [`super::codes`]), a human
//! message and optional `details`. Platform errors (`StoreError`,
//! `AuthError`, `FieldErrors`) are mapped here; each domain maps its own
//! error type once, in its `mod.rs`. This module imports no domain.
//!
//! A server error may carry a `cause` for the operator: it is never sent to
//! the client; [`IntoResponse`] hands it to the `observe` middleware, which
//! logs it once in the request's span with the request id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::codes;
use crate::auth::AuthError;
use crate::db::StoreError;
use crate::validate::FieldErrors;

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
    /// What went wrong inside, for the log only (never sent).
    pub cause: Option<String>,
}

/// Put on the response by [`ApiError::into_response`] for a 5xx: the
/// `observe` middleware logs it with the request id.
#[derive(Debug, Clone)]
pub struct ErrorCause {
    pub code: &'static str,
    pub cause: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
            cause: None,
        }
    }
    /// Record the internal cause (logged by middleware, never sent).
    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
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
        Self::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, message)
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
            codes::RATE_LIMITED,
            "Too many requests. Please try again later.",
        )
        .with_retry_after(retry_after)
    }
    /// Load shed by admission control (`http::admission`).
    pub fn server_busy(retry_after: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::SERVER_BUSY,
            "The server is busy. Please try again after Retry-After seconds.",
        )
        .with_retry_after(retry_after)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL_ERROR,
            "Internal server error",
        )
    }
    /// A route whose original had its own code for a bad body keeps it:
    /// a `VALIDATION_ERROR` (the extractor's or the service's) becomes
    /// `code`; every other error stays as it is.
    pub fn recode_validation(mut self, code: &'static str) -> Self {
        if self.code == codes::VALIDATION_ERROR {
            self.code = code;
        }
        self
    }
    /// A 400 `VALIDATION_ERROR` listing every failing field.
    pub fn validation(errors: FieldErrors) -> Self {
        let message = errors.to_string();
        let fields: serde_json::Map<String, Value> = errors
            .0
            .into_iter()
            .map(|(f, m)| (f, Value::String(m)))
            .collect();
        Self::bad_request(codes::VALIDATION_ERROR, message)
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
        let cause = self.status.is_server_error().then(|| ErrorCause {
            code: self.code,
            cause: self.cause.unwrap_or_else(|| self.message.clone()),
        });
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
        if let Some(c) = cause {
            resp.extensions_mut().insert(c);
        }
        resp
    }
}

impl From<FieldErrors> for ApiError {
    fn from(f: FieldErrors) -> Self {
        ApiError::validation(f)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => {
                ApiError::not_found(codes::NOT_FOUND, format!("{what} not found"))
            }
            StoreError::Conflict(what) => ApiError::conflict(codes::CONFLICT, what),
            StoreError::Invalid(msg) => ApiError::bad_request(codes::VALIDATION_ERROR, msg),
            StoreError::Corrupt(what) => {
                ApiError::internal().with_cause(format!("corrupt row: {what}"))
            }
            StoreError::Database(err) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::DATABASE_ERROR,
                "The database is not available; try again shortly",
            )
            .with_retry_after(2)
            .with_cause(err),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::MissingToken => ApiError::unauthorized("Bearer token is required"),
            AuthError::InvalidToken => {
                ApiError::unauthorized("Token is invalid, expired or revoked")
            }
            AuthError::AgentToken => ApiError::forbidden(
                "Agent tokens cannot call this endpoint; use a user session or API token",
            ),
            AuthError::NotAgentToken => ApiError::forbidden(
                "This endpoint is for agents; authenticate with the agent token",
            ),
            AuthError::Forbidden(required) => {
                ApiError::forbidden(format!("Role '{required}' is required for this action"))
            }
            AuthError::CsrfToken => ApiError::new(
                StatusCode::FORBIDDEN,
                codes::CSRF_TOKEN_INVALID,
                "This request is authenticated by the console cookie and needs the \
                 X-CSRF-Token header with the session's CSRF token",
            ),
        }
    }
}
