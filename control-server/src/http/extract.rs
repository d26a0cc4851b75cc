//! Request extractors that fail with the JSON error envelope.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use crate::state::AppState;
use crate::validate::FieldErrors;

/// JSON body whose errors name the offending field.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let mime = ct.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                super::codes::UNSUPPORTED_MEDIA_TYPE,
                "Expected a JSON body with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    super::codes::PAYLOAD_TOO_LARGE,
                    "Request body is larger than the server accepts",
                )
            } else {
                ApiError::bad_request(super::codes::BAD_REQUEST, rej.body_text())
            }
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(v) => Ok(ApiJson(v)),
            Err(err) => {
                let path = err.path().to_string();
                let inner = err.into_inner();
                if inner.is_syntax() || inner.is_eof() {
                    return Err(ApiError::bad_request(
                        super::codes::MALFORMED_JSON,
                        format!("Request body is not valid JSON: {inner}"),
                    ));
                }
                let field = if path == "." {
                    "body".to_string()
                } else {
                    path
                };
                let mut f = FieldErrors::default();
                f.add(&field, strip_position(&inner.to_string()));
                Err(ApiError::validation(f))
            }
        }
    }
}

/// serde_json appends " at line L column C"; drop it for field messages.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The client's IP: the TCP peer, or the left-most `X-Forwarded-For`
/// address when `trust_forwarded_for` is on.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(ClientIp(client_ip(parts, state.cfg.trust_forwarded_for)))
    }
}

pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for {
        if let Some(ip) = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            return ip.to_string();
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Query string parsed with errors in the envelope.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize::<_, T>(de)
            .map(ApiQuery)
            .map_err(|err| {
                let path = err.path().to_string();
                let mut f = FieldErrors::default();
                f.add(
                    if path == "." { "query" } else { &path },
                    err.into_inner().to_string(),
                );
                ApiError::validation(f)
            })
    }
}

/// The list-query parameters every collection endpoint accepts (for the
/// OpenAPI document; parsing is `db::list::ListSpec::parse`). Each list
/// also takes typed filters on its declared columns: `<col>=v`,
/// `<col>_in=a,b` and, on numbers and dates, `<col>_gt|_gte|_lt|_lte`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListQueryDoc {
    /// Page number, 1.. (default 1). Not with `cursor`.
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    /// Page size, 1..200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `meta.next_cursor` of the previous page (keyset pagination).
    cursor: Option<String>,
    /// Sort column (one of the list's sortable columns).
    sort: Option<String>,
    /// `asc` or `desc`.
    order: Option<String>,
    /// Case-insensitive substring search over the list's searchable columns.
    #[param(max_length = 200)]
    q: Option<String>,
}
