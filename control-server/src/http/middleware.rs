//! Cross-cutting request handling: request ids, logging and metrics,
//! security headers, the API rate limit, panics and unknown routes.

use std::any::Any;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::error::{ApiError, ErrorCause};
use crate::state::AppState;

pub const REQUEST_ID: &str = "x-request-id";

/// The request id of the current request (also in the response header).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_string())
}

/// Outermost layer: assigns/echoes `x-request-id`, opens the request span,
/// logs one line per request and records HTTP metrics.
pub async fn observe(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(acceptable_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!("http", %method, %path, request_id = %id);
    let start = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let elapsed = start.elapsed();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    let status = resp.status().as_u16();
    span.in_scope(|| {
        // A server error's cause is logged once, here, with the request id;
        // the client saw only the envelope.
        if let Some(c) = resp.extensions_mut().remove::<ErrorCause>() {
            tracing::error!(status, code = c.code, cause = %c.cause.escape_debug(), "request failed");
        }
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        )
    });
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    resp
}

/// Answer 404 for a path with an encoded control character (`%00`–`%1F`,
/// `%7F`) before any route sees it: no id or name may contain one, and
/// PostgreSQL cannot even compare text holding NUL.
pub async fn reject_control_characters(req: Request, next: Next) -> Response {
    if has_encoded_control(req.uri().path()) {
        // Nothing with such a name can exist: "not found", like any other
        // unknown id (and what the OpenAPI documents for every path).
        return ApiError::not_found(
            super::codes::NOT_FOUND,
            "Not found (the path contains a control character)",
        )
        .into_response();
    }
    next.run(req).await
}

fn has_encoded_control(path: &str) -> bool {
    let b = path.as_bytes();
    b.windows(3).any(|w| {
        w[0] == b'%'
            && std::str::from_utf8(&w[1..])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .is_some_and(|v| v < 0x20 || v == 0x7f)
    })
}

/// The web console's CSP: its own scripts and styles only (no inline
/// script, style or `eval`), fetches and the event stream to itself.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// Conservative headers for a JSON API; the docs UI gets a CSP that lets
/// its own scripts run, the web console (`/console`) a strict one of its
/// own (and its assets keep their `Cache-Control`).
pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let is_docs = req.uri().path().starts_with("/api/v1/docs");
    let path = req.uri().path();
    let is_console = path == "/console" || path.starts_with("/console/");
    let mut resp = next.run(req).await;
    if is_console {
        let h = resp.headers_mut();
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(CONSOLE_CSP),
        );
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        if state.tls_sha256.is_some() {
            h.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            );
        }
        return resp;
    }
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(if is_docs {
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
        } else {
            "default-src 'none'; frame-ancestors 'none'"
        }),
    );
    if !is_docs {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.tls_sha256.is_some() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

/// Budget for API calls: per bearer token once that token has passed
/// verification, else per client IP (so made-up tokens share their IP's
/// budget). Health probes and CORS preflights are exempt.
pub async fn api_rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let exempt = req.method() == Method::OPTIONS
        || !path.starts_with("/api/v1/")
        || path.starts_with("/api/v1/health");
    if !exempt {
        let (parts, body) = req.into_parts();
        // a bearer token, else the console's session cookie
        let known = crate::auth::credential_from_headers(&parts.headers)
            .map(token_key)
            .filter(|k| state.limits.is_known_token(k));
        let key = match known {
            Some(k) => format!("tok:{k}"),
            None => format!("ip:{}", super::extract::client_ip(&parts, &state.cfg)),
        };
        if let Err(retry_after) = state.limits.check_api(&key) {
            return ApiError::rate_limited(retry_after).into_response();
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    next.run(req).await
}

/// The rate-limit key of a bearer token (a hash; the token is never kept).
pub fn token_key(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes())[..16])
}

/// 500 envelope for a panicking handler; the panic text stays in the log.
pub fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = %detail.escape_debug(), "handler panicked");
    ApiError::internal().into_response()
}

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(
        "NOT_FOUND",
        format!("Unknown endpoint: {method} {}", uri.path()),
    )
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not supported on {}", uri.path()),
    )
}
