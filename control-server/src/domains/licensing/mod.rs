//! Licensing: tenant licenses and per-user module entitlements (admin API,
//! audited in `license_audit`), and execution leases
//! (`/api/v1/license/lease|heartbeat|revoke|verify`) — the gate a runner
//! passes before it executes a module on a registered VM.
//!
//! Other domains call [`LicensingService::has_active_license`] /
//! [`LicensingService::active_license`] and
//! [`LicensingService::verify_lease_token`].

pub mod keys;
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

pub use service::{LicenseView, LicensingService};
pub use store::{LeaseStatus, LicenseStatus, LicenseType};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::list_licenses, routes::create_license))
        .routes(routes!(
            routes::get_license,
            routes::patch_license,
            routes::delete_license
        ))
        .routes(routes!(routes::get_entitlement, routes::put_entitlement))
        .routes(routes!(routes::list_audit))
        .routes(routes!(routes::lease))
        .routes(routes!(routes::heartbeat))
        .routes(routes!(routes::revoke))
        .routes(routes!(routes::verify))
}

#[derive(Debug, thiserror::Error)]
pub enum LicensingError {
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    #[error("no such user")]
    UserNotFound,
    #[error("user_id override is not allowed")]
    UserOverrideForbidden,
    #[error("license not found")]
    LicenseNotFound,
    #[error("VM not registered")]
    VmNotRegistered,
    #[error("VM is not active")]
    VmInactive,
    #[error("VM belongs to another user")]
    VmOwnerMismatch,
    #[error("no active license")]
    LicenseInactive,
    #[error("no entitlements")]
    EntitlementRequired,
    #[error("module not allowed")]
    ModuleNotAllowed,
    #[error("lease not found")]
    LeaseNotFound,
    #[error("lease belongs to another user")]
    LeaseOwnerMismatch,
    #[error("lease is not active")]
    LeaseInactive,
    #[error("lease expired")]
    LeaseExpired,
    #[error("lease token invalid")]
    LeaseTokenInvalid,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<LicensingError> for ApiError {
    fn from(e: LicensingError) -> Self {
        let forbidden = |code, msg: &str| ApiError::new(StatusCode::FORBIDDEN, code, msg);
        match e {
            LicensingError::Validation(f) => ApiError::validation(f),
            LicensingError::UserNotFound => {
                ApiError::not_found(codes::USER_NOT_FOUND, "No such user in your tenant")
            }
            LicensingError::UserOverrideForbidden => ApiError::forbidden(
                "user_id override is not allowed: role 'admin' is required to lease for another user",
            ),
            LicensingError::LicenseNotFound => {
                ApiError::not_found(codes::LICENSE_NOT_FOUND, "No such tenant license")
            }
            LicensingError::VmNotRegistered => ApiError::not_found(
                codes::VM_NOT_REGISTERED,
                "The VM is not registered; register it with POST /api/v1/vm/register",
            ),
            LicensingError::VmInactive => forbidden(codes::VM_INACTIVE, "The VM is not active"),
            LicensingError::VmOwnerMismatch => forbidden(
                codes::VM_OWNER_MISMATCH,
                "The VM is registered to another user",
            ),
            LicensingError::LicenseInactive => forbidden(
                codes::LICENSE_INACTIVE,
                "Active subscription or perpetual license is required",
            ),
            LicensingError::EntitlementRequired => forbidden(
                codes::ENTITLEMENT_REQUIRED,
                "The user has no module entitlements",
            ),
            LicensingError::ModuleNotAllowed => forbidden(
                codes::MODULE_NOT_ALLOWED,
                "The user's entitlements do not include this module",
            ),
            LicensingError::LeaseNotFound => {
                ApiError::not_found(codes::LEASE_NOT_FOUND, "No such lease")
            }
            LicensingError::LeaseOwnerMismatch => forbidden(
                codes::LEASE_OWNER_MISMATCH,
                "The lease belongs to another user",
            ),
            LicensingError::LeaseInactive => {
                ApiError::conflict(codes::LEASE_INACTIVE, "The lease was revoked")
            }
            LicensingError::LeaseExpired => ApiError::conflict(
                codes::LEASE_EXPIRED,
                "The lease has expired; lease again",
            ),
            LicensingError::LeaseTokenInvalid => {
                ApiError::unauthorized("The lease token is invalid (format, signature or token mismatch)")
            }
            LicensingError::Auth(a) => a.into(),
            LicensingError::Store(s) => s.into(),
        }
    }
}
