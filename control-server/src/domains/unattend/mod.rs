//! Unattend profiles (`/api/v1/unattend-profiles`) and the Windows
//! answer-file builder ([`builder`], a library with no HTTP in it that the
//! provisioning domain calls for ISOs and this domain for previews).
//!
//! Files: `config.rs` (the typed profile configuration, legacy migrations,
//! validation), `catalog.rs` (time zones, GeoIds, visual effects, icons;
//! `data/` holds the id lists), `builder/` (the answer file),
//! `store.rs`, `service.rs`, `routes.rs`.

pub mod builder;
pub mod catalog;
pub mod config;
pub mod routes;
pub mod service;
pub mod store;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthError;
use crate::db::StoreError;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::validate::FieldErrors;

pub use builder::{
    build_answer_file, check_answer_file, vm_seed, AnswerFile, BuildError, IpPlan, VmContext,
};
pub use config::UnattendConfig;
pub use service::UnattendService;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::list_profiles, routes::create_profile))
        .routes(routes!(
            routes::get_profile,
            routes::replace_profile,
            routes::patch_profile,
            routes::delete_profile
        ))
        .routes(routes!(routes::preview_profile))
        .routes(routes!(routes::preview_config))
}

#[derive(Debug, thiserror::Error)]
pub enum UnattendError {
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    #[error("unattend profile not found")]
    NotFound,
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<UnattendError> for ApiError {
    fn from(e: UnattendError) -> Self {
        match e {
            UnattendError::Validation(f) => ApiError::validation(f),
            UnattendError::NotFound => ApiError::not_found(
                codes::UNATTEND_PROFILE_NOT_FOUND,
                "No such unattend profile",
            ),
            UnattendError::Build(BuildError::Invalid(f)) => ApiError::validation(f),
            UnattendError::Build(b @ BuildError::Malformed(_)) => {
                ApiError::internal().with_cause(b)
            }
            UnattendError::Build(b) => {
                ApiError::validation(FieldErrors::one("config", b.to_string()))
            }
            UnattendError::Store(StoreError::Conflict(_)) => ApiError::conflict(
                codes::UNATTEND_PROFILE_NAME_TAKEN,
                "A profile with this name already exists for this owner",
            ),
            UnattendError::Auth(a) => a.into(),
            UnattendError::Store(s) => s.into(),
        }
    }
}
