//! The VM registry (`/api/v1/vm/register`, `/api/v1/vm/{uuid}/resolve`,
//! `/api/v1/vms`): the VMs of a tenant by UUID, each owned by one user.
//! Licensing leases are issued only for registered, active VMs to their
//! owner ([`VmsService::find`]).

pub mod routes;
pub mod service;
pub mod store;

use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthError;
use crate::db::StoreError;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::validate::FieldErrors;

pub use service::{normalize_vm_uuid, VmView, VmsService};
pub use store::{VmRow, VmStatus};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::register))
        .routes(routes!(routes::resolve))
        .routes(routes!(routes::list_vms))
        .routes(routes!(routes::patch_vm))
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    #[error("VM UUID not found")]
    NotFound,
    #[error("the VM belongs to another user")]
    OwnerMismatch,
    #[error("user_id override is not allowed")]
    OwnerOverrideForbidden,
    #[error("changing a VM's status needs admin")]
    StatusForbidden,
    #[error("no such user")]
    UserNotFound,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<VmError> for ApiError {
    fn from(e: VmError) -> Self {
        match e {
            VmError::Validation(f) => ApiError::validation(f),
            VmError::NotFound => ApiError::not_found(codes::VM_UUID_NOT_FOUND, "VM UUID not found"),
            VmError::OwnerMismatch => ApiError::new(
                StatusCode::FORBIDDEN,
                codes::VM_OWNER_MISMATCH,
                "This VM is registered to another user; an admin may change it",
            ),
            VmError::OwnerOverrideForbidden => ApiError::forbidden(
                "user_id override is not allowed: role 'admin' is required to register a VM for another user",
            ),
            VmError::StatusForbidden => {
                ApiError::forbidden("Role 'admin' is required to change a VM's status")
            }
            VmError::UserNotFound => {
                ApiError::not_found(codes::USER_NOT_FOUND, "No such user in your tenant")
            }
            VmError::Auth(a) => a.into(),
            VmError::Store(s) => s.into(),
        }
    }
}
