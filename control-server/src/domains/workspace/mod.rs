//! Workspace: notes, calendar events and kanban tasks under
//! `/api/v1/workspace/{kind}` (list, read, create, shallow-merge PATCH,
//! delete; no PUT, as the original). Typed fields are real columns,
//! anything else passes through as JSON (`crate::records`).

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

pub use service::WorkspaceService;
pub use store::WorkspaceKind;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(routes::openapi())
        .route(
            "/api/v1/workspace/{kind}",
            get(routes::list).post(routes::create),
        )
        .route(
            "/api/v1/workspace/{kind}/{id}",
            get(routes::get_one)
                .patch(routes::update)
                .delete(routes::delete),
        )
}

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("unknown workspace kind `{0}`")]
    InvalidKind(String),
    #[error("workspace item not found")]
    NotFound,
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WorkspaceError> for ApiError {
    fn from(e: WorkspaceError) -> Self {
        match e {
            WorkspaceError::InvalidKind(k) => ApiError::bad_request(
                codes::WORKSPACE_INVALID_KIND,
                format!("Unknown workspace kind `{k}`; expected notes, calendar or kanban"),
            ),
            WorkspaceError::NotFound | WorkspaceError::Store(StoreError::NotFound(_)) => {
                ApiError::not_found(
                    codes::WORKSPACE_ENTITY_NOT_FOUND,
                    "Workspace item not found",
                )
            }
            WorkspaceError::Validation(f) => ApiError::validation(f),
            WorkspaceError::Auth(a) => a.into(),
            WorkspaceError::Store(s) => s.into(),
        }
    }
}
