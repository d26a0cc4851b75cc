//! The HTTP surface: router assembly, OpenAPI document, middleware order,
//! and the toolkit handlers use (error envelope, codes, extractors,
//! envelopes). Routes come from the domains (`domains::routes()`).

pub mod admission;
pub mod codes;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod ratelimit;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::{Identity, Role};
use crate::config::MetricsMode;
use crate::state::AppState;
use error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(title = "Bot-Mox control server API", description = "Multi-tenant REST API. Every response uses the envelope `{success, data, meta?}` or `{success:false, error:{code,message,details?}}`."),
    modifiers(&BearerAuth, &ErrorCodes),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "auth", description = "Sign-in, tokens and identity"),
        (name = "tenants", description = "Tenants (infra)"),
        (name = "users", description = "Users of a tenant (admin)"),
        (name = "agents", description = "Agents: pairing, registration, heartbeats, revocation"),
        (name = "vm-ops", description = "The command bus: dispatch, long poll, reports, output, events"),
    )
)]
struct ApiDoc;

struct BearerAuth;

/// Adds the error-code table to the description and as `x-error-codes`.
struct ErrorCodes;

impl Modify for ErrorCodes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let description = openapi.info.description.get_or_insert_with(String::new);
        description.push_str("\n\n## Error codes\n\n");
        description.push_str(&codes::markdown());
        let table: Vec<serde_json::Value> = codes::TABLE
            .iter()
            .map(|(code, status, meaning)| {
                serde_json::json!({ "code": code, "status": status, "meaning": meaning })
            })
            .collect();
        let ext = openapi.extensions.get_or_insert_with(Default::default);
        ext.insert("x-error-codes".into(), serde_json::Value::Array(table));
    }
}

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Session token (bmxs_), API token (bmxk_) or configured external JWT",
                    ))
                    .build(),
            ),
        );
    }
}

/// The error responses an operation can give whatever its handler does,
/// added to every operation whose annotation does not list that status
/// (handlers document only their own outcomes):
///
/// | status | code | on |
/// |---|---|---|
/// | 400 | `VALIDATION_ERROR`, `MALFORMED_JSON` | operations with a JSON body or query/path parameters |
/// | 401 | `UNAUTHORIZED` | secured operations (no, invalid, expired or revoked token) |
/// | 404 | `NOT_FOUND` | operations with path parameters (unknown id; control character in the path) |
/// | 403 | `FORBIDDEN` | secured operations (role too low, or a user token on an agent route and vice versa) |
/// | 413 | `PAYLOAD_TOO_LARGE` | operations with a JSON body (`body_limit_bytes`) |
/// | 415 | `UNSUPPORTED_MEDIA_TYPE` | operations with a JSON body |
/// | 429 | `RATE_LIMITED` or `SERVER_BUSY` + `Retry-After` | every rate-limited operation (all but `/api/v1/health*`) |
/// | 503 | `DATABASE_ERROR` + `Retry-After` | the same operations: each reads the database |
struct CommonResponses;

/// Paths the API rate limit and the database do not concern (the
/// `api_rate_limit` middleware exempts the same prefix).
const HEALTH_PREFIX: &str = "/api/v1/health";

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                add_common_responses(path, op);
            }
        }
    }
}

fn add_common_responses(path: &str, op: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::path::ParameterIn;

    let has_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    let has_params = op.parameters.as_ref().is_some_and(|p| {
        p.iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Query | ParameterIn::Path))
    });
    let has_path_params = op
        .parameters
        .as_ref()
        .is_some_and(|p| p.iter().any(|p| p.parameter_in == ParameterIn::Path));
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let limited = !path.starts_with(HEALTH_PREFIX);
    let mut add = |status: &str, description: &str, retry_after: bool| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(description, retry_after).into());
    };
    if has_body || has_params {
        add(
            "400",
            "VALIDATION_ERROR (`details.fields` names each field) or MALFORMED_JSON",
            false,
        );
    }
    if has_path_params {
        add(
            "404",
            "NOT_FOUND (or the domain's own `…_NOT_FOUND`): nothing by that name, \
             or the path holds a control character",
            false,
        );
    }
    if secured {
        add(
            "401",
            "UNAUTHORIZED: no bearer token, or it is invalid, expired or revoked",
            false,
        );
        add(
            "403",
            "FORBIDDEN: the caller's role is too low, or the token is of the wrong kind (agent vs user)",
            false,
        );
    }
    if has_body {
        add(
            "413",
            "PAYLOAD_TOO_LARGE: the body is over `body_limit_bytes`",
            false,
        );
        add(
            "415",
            "UNSUPPORTED_MEDIA_TYPE: the body is not `application/json`",
            false,
        );
    }
    if limited {
        add(
            "429",
            "RATE_LIMITED: over the caller's request budget, or SERVER_BUSY: over the server's in-flight limit; retry after `Retry-After` seconds",
            true,
        );
        add(
            "503",
            "DATABASE_ERROR: the database failed; retry after `Retry-After` seconds",
            true,
        );
    }
}

fn error_response(description: &str, retry_after: bool) -> utoipa::openapi::Response {
    use utoipa::openapi::{
        ContentBuilder, HeaderBuilder, ObjectBuilder, Ref, ResponseBuilder, Type,
    };

    let mut r = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
            .build(),
    );
    if retry_after {
        r = r.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                )
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    r.build()
}

/// All documented API routes, with their OpenAPI description.
pub fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::domains::routes())
        .split_for_parts();
    // After the merge: `modifiers(...)` run before the routes are added.
    CommonResponses.modify(&mut doc);
    (router, doc)
}

/// The OpenAPI document as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api_routes();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The OpenAPI document as JSON: what `/api/v1/openapi.json` serves.
pub fn openapi_value() -> serde_json::Value {
    let mut doc = serde_json::to_value(openapi()).unwrap_or_default();
    camel_case_links(&mut doc);
    doc
}

/// The OpenAPI document, pretty-printed (what `docs/openapi.json` holds).
pub fn openapi_json() -> String {
    serde_json::to_string_pretty(&openapi_value()).unwrap_or_default()
}

/// utoipa 5.5 writes a response link's fields in snake_case
/// (`operation_id`, `request_body`); OpenAPI spells them `operationId`,
/// `requestBody` (and `operationRef`).
fn camel_case_links(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut())
        .filter_map(|r| r.get_mut("links").and_then(|l| l.as_object_mut()))
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (from, to) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(v) = link.remove(from) {
                link.insert(to.to_string(), v);
            }
        }
    }
}

/// Build the complete application.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The application plus `extra` routes under the same middleware (tests).
#[doc(hidden)]
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let (api, _) = api_routes();
    let api = api
        .merge(extra)
        .route_layer(axum::middleware::from_fn(refuse_nul));
    let doc = openapi();
    let doc_json = openapi_value();

    let mut app = api
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc_json = doc_json.clone();
                async move { Json(doc_json) }
            }),
        )
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/api/v1/docs").url("/api/v1/docs/openapi.json", doc),
        )
        .merge(crate::console::routes());
    if state.cfg.metrics != MetricsMode::Off {
        app = app.route("/metrics", get(metrics));
    }
    let cors = cors_layer(&state.cfg.cors_allowed_origins);
    let mut app = app
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::api_rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admission::admit,
        ))
        .layer(axum::middleware::from_fn(
            middleware::reject_control_characters,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.cfg.body_limit_bytes,
        ));
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        middleware::security_headers,
    ))
    .layer(CompressionLayer::new().compress_when(compressible()))
    .layer(CatchPanicLayer::custom(middleware::panic_response))
    .layer(axum::middleware::from_fn(middleware::observe))
    .with_state(state)
}

/// gzip for text a browser asks it for (console pages, CSS, JS, JSON
/// lists), when the client sends `Accept-Encoding: gzip`. Never for the
/// event stream (`text/event-stream`: compression would hold events back in
/// the encoder's buffer), nor for artifacts, ISOs and other binary bodies
/// (already compressed or too large to be worth the CPU), nor for bodies
/// under 32 bytes (tower-http's default predicate does the first and last).
fn compressible() -> impl Predicate {
    DefaultPredicate::new().and(
        |_: axum::http::StatusCode,
         _: axum::http::Version,
         headers: &axum::http::HeaderMap,
         _: &axum::http::Extensions| {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            is_compressible_type(ct)
        },
    )
}

/// Text types worth compressing (`text/event-stream` is excluded before).
fn is_compressible_type(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence != "text/event-stream"
        && (essence.starts_with("text/")
            || essence == "application/json"
            || essence == "application/javascript"
            || essence == "image/svg+xml")
}

/// No query parameter may carry NUL (U+0000): PostgreSQL can neither bind
/// nor compare such text (the query would fail with a 503), and no value of
/// this API has one. A 400 naming the key, before any handler. (A path with
/// an encoded control character is answered 404 by
/// `middleware::reject_control_characters`.)
async fn refuse_nul(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let key = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
            .map(|(k, _)| k.into_owned())
    });
    match key {
        Some(key) => ApiError::validation(crate::validate::FieldErrors::one(
            &key,
            "must not contain NUL (U+0000)",
        ))
        .into_response(),
        None => next.run(req).await,
    }
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([header::HeaderName::from_static("x-request-id")])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Prometheus text exposition. `admin` mode needs an admin (or infra) bearer.
async fn metrics(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    if state.cfg.metrics == MetricsMode::Admin {
        let (mut parts, _) = req.into_parts();
        let identity =
            match <Identity as axum::extract::FromRequestParts<AppState>>::from_request_parts(
                &mut parts, &state,
            )
            .await
            {
                Ok(i) => i,
                Err(e) => return e.into_response(),
            };
        if let Err(e) = identity.require(Role::Admin) {
            return ApiError::from(e).into_response();
        }
    }
    let Some(handle) = &state.metrics else {
        return ApiError::not_found("NOT_FOUND", "Metrics are disabled").into_response();
    };
    let pool = state.db.stats();
    metrics::gauge!("db_pool_connections").set(pool.connections as f64);
    metrics::gauge!("db_pool_idle_connections").set(pool.idle as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
