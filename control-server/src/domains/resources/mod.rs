//! Resources: licenses, proxies and subscriptions under
//! `/api/v1/resources/{kind}` (list, read, create, shallow-merge update
//! with PATCH or PUT, delete), plus the admin-only
//! `GET /api/v1/resources/proxies/{id}/password`. Typed fields are real
//! columns, anything else passes through as JSON (`crate::records`).

pub mod routes;
pub mod service;
pub mod store;

use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::AuthError;
use crate::db::StoreError;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::validate::FieldErrors;

pub use service::ResourcesService;
pub use store::ResourceKind;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(routes::openapi())
        .route(
            "/api/v1/resources/{kind}",
            get(routes::list).post(routes::create),
        )
        .route(
            "/api/v1/resources/{kind}/{id}",
            get(routes::get_one)
                .patch(routes::update)
                .put(routes::update)
                .delete(routes::delete),
        )
        .route(
            "/api/v1/resources/proxies/{id}/password",
            get(routes::proxy_password),
        )
}

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("unknown resource kind `{0}`")]
    InvalidKind(String),
    #[error("resource not found")]
    NotFound,
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    #[error("stored secret cannot be opened: {0}")]
    SecretUnreadable(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ResourceError> for ApiError {
    fn from(e: ResourceError) -> Self {
        match e {
            ResourceError::InvalidKind(k) => ApiError::bad_request(
                codes::RESOURCES_INVALID_KIND,
                format!("Unknown resource kind `{k}`; expected licenses, proxies or subscriptions"),
            ),
            ResourceError::NotFound | ResourceError::Store(StoreError::NotFound(_)) => {
                ApiError::not_found(codes::RESOURCE_NOT_FOUND, "Resource not found")
            }
            ResourceError::Validation(f) => ApiError::validation(f),
            ResourceError::SecretUnreadable(cause) => ApiError::internal().with_cause(format!(
                "proxy password does not open with the data key: {cause}"
            )),
            ResourceError::Auth(a) => a.into(),
            ResourceError::Store(s) => s.into(),
        }
    }
}
