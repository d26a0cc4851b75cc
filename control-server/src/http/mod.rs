//! The HTTP surface: router assembly, OpenAPI document, middleware order,
//! and the toolkit handlers use (error envelope, codes, extractors,
//! envelopes). Routes come from the domains (`domains::routes()`).

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

/// All documented API routes, with their OpenAPI description.
pub fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::domains::routes())
        .split_for_parts()
}

/// The OpenAPI document as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api_routes();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The OpenAPI document, pretty-printed (what `docs/openapi.json` holds).
pub fn openapi_json() -> String {
    openapi().to_pretty_json().unwrap_or_default()
}

/// Build the complete application.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The application plus `extra` routes under the same middleware (tests).
#[doc(hidden)]
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let (api, _) = api_routes();
    let api = api.merge(extra);
    let doc = openapi();
    let doc_json = serde_json::to_value(&doc).unwrap_or_default();

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
        );
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
    .layer(CatchPanicLayer::custom(middleware::panic_response))
    .layer(axum::middleware::from_fn(middleware::observe))
    .with_state(state)
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
