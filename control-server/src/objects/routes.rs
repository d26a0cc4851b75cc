//! `/api/v1/objects/{token}`: the local store's signed URLs (download and
//! upload), and the [`BaseUrl`] extractor the domains use to build them.
//!
//! No bearer token: the signature is the authorization. Both routes are
//! rate-limited per client address like every other public route.

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{KnownFormat, SchemaFormat};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{BaseUrl, ObjectError, UrlProblem};
use crate::config::TlsMode;
use crate::http::codes;
use crate::http::envelope::{ok, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::ApiPath;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(download, upload))
        .route_layer(axum::middleware::from_fn(close_unread_uploads))
}

/// A refused upload may leave its body unread (the refusal comes first):
/// answer it with `Connection: close`, so the client does not send its next
/// request on a connection the server is about to drop. For every route
/// that streams a request body (`route_layer` on them).
pub async fn close_unread_uploads(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let upload = req.method() == axum::http::Method::PUT;
    let mut resp = next.run(req).await;
    if upload && !resp.status().is_success() {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Raw bytes (`application/octet-stream` and images), for the OpenAPI document.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some("Raw bytes"))
            .into()
    }
}

impl ToSchema for Binary {}

/// The server's own base URL: `public_url` when configured, else the
/// scheme the server serves and the request's `Host` (when it is a plain
/// host\[:port\]), else the listen address.
impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(u) = &state.cfg.public_url {
            return Ok(BaseUrl(u.clone()));
        }
        let scheme = if state.cfg.tls == TlsMode::Off {
            "http"
        } else {
            "https"
        };
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 255
                    && h.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                    })
            })
            .map(str::to_string)
            .unwrap_or_else(|| state.cfg.listen.to_string());
        Ok(BaseUrl(format!("{scheme}://{host}")))
    }
}

fn url_error(p: UrlProblem) -> ApiError {
    match p {
        UrlProblem::Invalid => ApiError::new(
            StatusCode::FORBIDDEN,
            codes::OBJECT_URL_INVALID,
            "The object URL is not valid (malformed, tampered with, or another method)",
        ),
        UrlProblem::Expired => ApiError::new(
            StatusCode::FORBIDDEN,
            codes::OBJECT_URL_EXPIRED,
            "The object URL has expired; ask for a new one",
        ),
    }
}

fn store_error(e: ObjectError) -> ApiError {
    match e {
        ObjectError::NotFound => {
            ApiError::not_found(codes::OBJECT_NOT_FOUND, "The object is not in the store")
        }
        ObjectError::TooLarge(n) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::PAYLOAD_TOO_LARGE,
            format!("The upload is larger than this URL allows ({n} bytes)"),
        ),
        ObjectError::Empty => ApiError::bad_request(codes::BAD_REQUEST, "The upload is empty"),
        ObjectError::Body(e) => {
            ApiError::bad_request(codes::BAD_REQUEST, format!("The upload was cut short: {e}"))
        }
        e @ (ObjectError::Mismatch { .. } | ObjectError::Backend(_)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::OBJECT_STORE_UNAVAILABLE,
            "The object store failed; try again shortly",
        )
        .with_retry_after(2)
        .with_cause(e),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ObjectPath {
    /// The signed token the server issued (`<payload>.<signature>`).
    #[param(pattern = "^[A-Za-z0-9_-]{1,4000}\\.[A-Za-z0-9_-]{1,100}$")]
    pub token: String,
}

/// Download an object through a URL the server signed (local store only;
/// on S3 the URLs point at the bucket). No bearer token: the signature
/// authorizes one object for GET until the URL's expiry (60-300 s).
#[utoipa::path(get, path = "/api/v1/objects/{token}", tag = "objects",
    params(ObjectPath),
    responses((status = 200, description = "The object's bytes (`Content-Type` as the URL was issued with, else `application/octet-stream`); no schema: raw bytes, checked by their SHA-256",
               content_type = "application/octet-stream"),
              (status = 403, description = "OBJECT_URL_INVALID, OBJECT_URL_EXPIRED", body = ErrorEnvelope),
              (status = 404, description = "OBJECT_NOT_FOUND", body = ErrorEnvelope),
              (status = 503, description = "OBJECT_STORE_UNAVAILABLE", body = ErrorEnvelope)))]
pub async fn download(
    State(state): State<AppState>,
    ApiPath(p): ApiPath<ObjectPath>,
) -> Result<Response, ApiError> {
    let (grant, key) = state
        .objects
        .verify_local(&p.token, "GET")
        .map_err(url_error)?;
    let (size, stream) = state.objects.read(&key).await.map_err(store_error)?;
    let content_type = grant
        .t
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}

/// What an upload stored.
#[derive(Serialize, ToSchema)]
pub struct Uploaded {
    pub size_bytes: u64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
}

/// Upload an object through a URL the server signed (local store only).
/// No bearer token: the signature authorizes one object for PUT until
/// the URL's expiry, at most the declared size, with the `Content-Type`
/// the URL was issued for. Uploading again before expiry replaces it.
#[utoipa::path(put, path = "/api/v1/objects/{token}", tag = "objects",
    params(ObjectPath),
    request_body(content = Binary, content_type = "application/octet-stream",
                 description = "The bytes, sent with the `Content-Type` the URL was issued for"),
    responses((status = 200, body = Envelope<Uploaded>),
              (status = 400, description = "BAD_REQUEST (empty or cut-short body)", body = ErrorEnvelope),
              (status = 403, description = "OBJECT_URL_INVALID (also: another Content-Type), OBJECT_URL_EXPIRED", body = ErrorEnvelope),
              (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorEnvelope),
              (status = 503, description = "OBJECT_STORE_UNAVAILABLE", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn upload(
    State(state): State<AppState>,
    ApiPath(p): ApiPath<ObjectPath>,
    headers: HeaderMap,
    body: Body,
) -> Result<Reply<Uploaded>, ApiError> {
    let (grant, key) = state
        .objects
        .verify_local(&p.token, "PUT")
        .map_err(url_error)?;
    if let Some(want) = &grant.t {
        let sent = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !sent.eq_ignore_ascii_case(want) {
            return Err(url_error(UrlProblem::Invalid));
        }
    }
    let written = state
        .objects
        .write(&key, body.into_data_stream(), grant.n.unwrap_or(0), None)
        .await
        .map_err(store_error)?;
    tracing::info!(key = %key, size = written.size, "object uploaded through a signed URL");
    Ok(ok(Uploaded {
        size_bytes: written.size,
        sha256: written.sha256,
    }))
}
