//! Settings: the tenant's settings tree (`GET /api/v1/settings`,
//! `GET|PUT|PATCH /api/v1/settings/{path…}`), compatible with the original's
//! generic tree and its three typed paths (`api_keys`, `proxy`,
//! `notifications/events`).
//!
//! Every typed path of the original is its own documented operation with its
//! own request schema; a catch-all route serves the rest of the tree (free
//! sub-paths such as `vmgenerator/task_logs`, deeper paths inside typed
//! documents, the original's `settings/` prefix) through the same service.

pub mod routes;
pub mod schema;
pub mod service;
pub mod store;

use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthError;
use crate::db::StoreError;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::validate::FieldErrors;

pub use service::SettingsService;

pub fn routes() -> OpenApiRouter<AppState> {
    use routes as r;
    OpenApiRouter::new()
        .routes(routes!(r::get_tree))
        .routes(routes!(r::alerts::get, r::alerts::put, r::alerts::patch))
        .routes(routes!(
            r::api_keys::get,
            r::api_keys::put,
            r::api_keys::patch
        ))
        .routes(routes!(r::proxy::get, r::proxy::put, r::proxy::patch))
        .routes(routes!(
            r::notification_events::get,
            r::notification_events::put,
            r::notification_events::patch
        ))
        .routes(routes!(
            r::storage_policy::get,
            r::storage_policy::put,
            r::storage_policy::patch
        ))
        .routes(routes!(
            r::projects::get,
            r::projects::put,
            r::projects::patch
        ))
        .routes(routes!(r::project::get, r::project::put, r::project::patch))
        .routes(routes!(
            r::project_gold_price::get,
            r::project_gold_price::put,
            r::project_gold_price::patch
        ))
        .routes(routes!(r::theme::get, r::theme::put, r::theme::patch))
        .routes(routes!(
            r::finance_chart_config::get,
            r::finance_chart_config::put,
            r::finance_chart_config::patch
        ))
        .routes(routes!(
            r::ui_resource_tree::get,
            r::ui_resource_tree::put,
            r::ui_resource_tree::patch
        ))
        .routes(routes!(
            r::schedule_last_params::get,
            r::schedule_last_params::put,
            r::schedule_last_params::patch
        ))
        .routes(routes!(
            r::schedule_templates::get,
            r::schedule_templates::put,
            r::schedule_templates::patch
        ))
        .routes(routes!(
            r::schedule_template::get,
            r::schedule_template::put,
            r::schedule_template::patch
        ))
        .routes(routes!(
            r::vmgenerator::get,
            r::vmgenerator::put,
            r::vmgenerator::patch
        ))
        .routes(routes!(
            r::vm_profiles::get,
            r::vm_profiles::put,
            r::vm_profiles::patch
        ))
        .routes(routes!(
            r::vm_profile::get,
            r::vm_profile::put,
            r::vm_profile::patch
        ))
        .routes(routes!(
            r::account_last_settings::get,
            r::account_last_settings::put,
            r::account_last_settings::patch
        ))
        .routes(routes!(
            r::account_default_template::get,
            r::account_default_template::put,
            r::account_default_template::patch
        ))
        .routes(routes!(
            r::account_templates::get,
            r::account_templates::put,
            r::account_templates::patch
        ))
        .routes(routes!(
            r::account_template::get,
            r::account_template::put,
            r::account_template::patch
        ))
        // The rest of the tree (not in the OpenAPI document: see docs/api.md).
        .route(
            "/api/v1/settings/{*path}",
            get(r::get_any).put(r::write_any).patch(r::write_any),
        )
}

/// Which of the original's codes a rejected body answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    ApiKeys,
    Proxy,
    NotificationEvents,
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid settings path `{path}`: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("invalid settings body: {fields}")]
    InvalidBody { kind: BodyKind, fields: FieldErrors },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SettingsError> for ApiError {
    fn from(e: SettingsError) -> Self {
        match e {
            SettingsError::InvalidPath { path, reason } => {
                ApiError::bad_request(codes::BAD_REQUEST, "Invalid settings path")
                    .with_details(serde_json::json!({ "path": path, "reason": reason }))
            }
            SettingsError::InvalidBody { kind, fields } => {
                let (code, message) = match kind {
                    BodyKind::ApiKeys => (
                        codes::SETTINGS_INVALID_API_KEYS_BODY,
                        "Invalid settings api_keys payload",
                    ),
                    BodyKind::Proxy => (
                        codes::SETTINGS_INVALID_PROXY_BODY,
                        "Invalid settings proxy payload",
                    ),
                    BodyKind::NotificationEvents => (
                        codes::SETTINGS_INVALID_NOTIFICATION_EVENTS_BODY,
                        "Invalid settings notification events payload",
                    ),
                    BodyKind::Other => return ApiError::validation(fields),
                };
                let mut e = ApiError::validation(fields);
                e.code = code;
                e.message = format!("{message}: {}", e.message);
                e
            }
            SettingsError::Auth(a) => a.into(),
            SettingsError::Store(s) => s.into(),
        }
    }
}
