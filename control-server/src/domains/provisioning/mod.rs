//! Provisioning: what makes each VM unique and lets it report back
//! (`/api/v1/provisioning/*`, `/api/v1/playbooks*`). The ISO payload
//! (answer file from the unattend domain, `provision.json`, `START.ps1`,
//! or a cloud-init NoCloud seed for Linux), per-VM provisioning tokens
//! (stored hashed; active → used | expired | revoked), the guests' progress
//! reports (public, token in the body, rate limited), the auto-detach of
//! the provisioning CD-ROM when a VM is done, and playbooks.

pub mod dto;
pub mod guest;
pub mod linux;
pub mod playbook;
pub mod routes;
pub mod service;
pub mod store;
mod windows;

use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthError;
use crate::db::StoreError;
use crate::domains::agents::AgentError;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::validate::FieldErrors;

pub use service::ProvisioningService;
pub use store::{GuestOs, Step, StepStatus, TokenStatus};

/// Prefix of provisioning tokens (`bmxv_` + 256 random bits).
pub const TOKEN_PREFIX: &str = "bmxv_";

/// The Windows answer-file source for [`ProvisioningService::new`].
pub fn windows_answers(
    unattend: std::sync::Arc<crate::domains::unattend::UnattendService>,
) -> windows::Windows {
    windows::Windows::new(unattend)
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::generate_iso_payload))
        .routes(routes!(routes::validate_token))
        .routes(routes!(routes::report_progress))
        .routes(routes!(routes::get_progress))
        .routes(routes!(routes::revoke_token))
        .routes(routes!(routes::guest_playbook))
        .routes(routes!(routes::list_playbooks, routes::create_playbook))
        .routes(routes!(routes::validate_playbook))
        .routes(routes!(
            routes::get_playbook,
            routes::replace_playbook,
            routes::patch_playbook,
            routes::delete_playbook
        ))
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    #[error("playbook not found")]
    PlaybookNotFound,
    #[error("no provisioning for this VM")]
    NotFound,
    #[error("the VM's token is not active")]
    TokenNotActive,
    #[error("the VM's active token belongs to another user")]
    ReissueForbidden,
    #[error("token invalid")]
    TokenInvalid,
    #[error("token expired")]
    TokenExpired,
    #[error("token revoked")]
    TokenRevoked,
    #[error("token used")]
    TokenUsed,
    #[error("token belongs to another VM")]
    VmMismatch,
    #[error("the agent belongs to another user")]
    AgentOwnerMismatch,
    #[error("no active tenant license covers the token's issuer")]
    LicenseInactive,
    #[error("name taken: {0}")]
    Conflict(String),
    #[error("could not build the payload: {0}")]
    Build(String),
    #[error(transparent)]
    Unattend(#[from] crate::domains::unattend::UnattendError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ProvisioningError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ProvisioningError::Conflict(m),
            other => ProvisioningError::Store(other),
        }
    }
}

impl From<FieldErrors> for ProvisioningError {
    fn from(f: FieldErrors) -> Self {
        ProvisioningError::Validation(f)
    }
}

impl From<ProvisioningError> for ApiError {
    fn from(e: ProvisioningError) -> Self {
        match e {
            ProvisioningError::Validation(f) => ApiError::validation(f),
            ProvisioningError::PlaybookNotFound => {
                ApiError::not_found(codes::PLAYBOOK_NOT_FOUND, "No such playbook")
            }
            ProvisioningError::NotFound => ApiError::not_found(
                codes::PROVISIONING_NOT_FOUND,
                "No provisioning token for this VM is visible to you",
            ),
            ProvisioningError::TokenNotActive => ApiError::conflict(
                codes::TOKEN_NOT_ACTIVE,
                "The VM's provisioning token is no longer active (used, expired or revoked)",
            ),
            ProvisioningError::ReissueForbidden => ApiError::forbidden(
                "The VM's active provisioning token was issued by another user; role 'admin' is required to replace it",
            ),
            // Guest-facing answers: a stable code and a fixed message, no
            // detail that would help guessing. Like a pairing code (also a
            // credential in the body): unknown 404, expired/revoked 410;
            // 401 stays reserved for a bad bearer token (UNAUTHORIZED).
            ProvisioningError::TokenInvalid => ApiError::new(
                StatusCode::NOT_FOUND,
                codes::TOKEN_INVALID,
                "The provisioning token is not valid",
            ),
            ProvisioningError::TokenExpired => ApiError::new(
                StatusCode::GONE,
                codes::TOKEN_EXPIRED,
                "The provisioning token has expired",
            ),
            ProvisioningError::TokenRevoked => ApiError::new(
                StatusCode::GONE,
                codes::TOKEN_REVOKED,
                "The provisioning token was revoked",
            ),
            ProvisioningError::TokenUsed => ApiError::conflict(
                codes::TOKEN_USED,
                "Provisioning with this token has completed",
            ),
            ProvisioningError::VmMismatch => ApiError::new(
                StatusCode::FORBIDDEN,
                codes::VM_MISMATCH,
                "The provisioning token belongs to another VM",
            ),
            ProvisioningError::LicenseInactive => ApiError::new(
                StatusCode::FORBIDDEN,
                codes::LICENSE_INACTIVE,
                "Active subscription or perpetual license is required",
            ),
            ProvisioningError::AgentOwnerMismatch => ApiError::new(
                StatusCode::FORBIDDEN,
                codes::AGENT_OWNER_MISMATCH,
                "The agent belongs to another user; only its owner or an admin may provision through it",
            ),
            ProvisioningError::Conflict(m) => ApiError::conflict(codes::CONFLICT, m),
            ProvisioningError::Build(m) => ApiError::internal().with_cause(m),
            ProvisioningError::Unattend(u) => u.into(),
            ProvisioningError::Agent(a) => a.into(),
            ProvisioningError::Auth(a) => a.into(),
            ProvisioningError::Store(s) => s.into(),
        }
    }
}
