//! HTTP error answers in PVE's JSON shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::schema::ParamErrors;
use crate::state::StateError;

/// An error answer of the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `Parameter verification failed.` with per-parameter messages.
    #[error("Parameter verification failed.")]
    Params(ParamErrors),
    /// 401.
    #[error("{0}")]
    Unauthorized(String),
    /// 501 for paths/methods PVE does not have (or that are not simulated).
    #[error("{0}")]
    NotImplemented(String),
    /// Any other status with a message (500 for PVE `die`s).
    #[error("{message}")]
    Status { status: u16, message: String },
}

impl ApiError {
    pub fn failed(message: impl Into<String>) -> Self {
        ApiError::Status {
            status: 500,
            message: message.into(),
        }
    }

    pub fn param(name: &str, message: impl Into<String>) -> Self {
        let mut errors = ParamErrors::new();
        errors.insert(name.to_string(), message.into());
        ApiError::Params(errors)
    }

    pub fn status_code(&self) -> StatusCode {
        let code = match self {
            ApiError::Params(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::NotImplemented(_) => 501,
            ApiError::Status { status, .. } => *status,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Param { param, message } => ApiError::param(&param, message),
            StateError::Failed(message) => ApiError::failed(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = match &self {
            ApiError::Params(errors) => json!({
                "data": null,
                "errors": errors,
                "message": "Parameter verification failed.\n",
            }),
            other => json!({ "data": null, "message": format!("{other}\n") }),
        };
        let mut resp = (status, Json(body)).into_response();
        // pveproxy puts the message into the HTTP/1.1 status line as well.
        let reason = self.to_string();
        let reason = reason.lines().next().unwrap_or_default().to_string();
        if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason) {
            resp.extensions_mut().insert(phrase);
        }
        resp
    }
}

/// `{"data": ...}` success envelope.
pub fn data<T: serde::Serialize>(value: T) -> Response {
    Json(json!({ "data": value })).into_response()
}

pub type ApiResult = Result<Response, ApiError>;
