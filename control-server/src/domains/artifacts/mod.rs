//! Artifacts (inventory §2.10, issue #13): releases of a module for a
//! platform and channel (an object in the object store, registered with
//! its size and SHA-256 verified or uploaded through the server), which
//! release each user — or the tenant by default — gets, and
//! `resolve-download`: a runner holding an execution lease gets a
//! short-lived URL to its assigned release, every attempt audited.
//!
//! The lease is checked by [`crate::domains::licensing::LicensingService`];
//! users by [`crate::domains::accounts::AccountsService`]; bytes go through
//! [`crate::objects::Objects`].

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
use crate::objects::ObjectError;
use crate::state::AppState;
use crate::validate::FieldErrors;

pub use service::ArtifactsService;
pub use store::{AuditResult, ContentState, ReleaseStatus};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::list_releases, routes::create_release))
        .routes(routes!(routes::get_release, routes::patch_release))
        .routes(routes!(routes::assign))
        .routes(routes!(routes::get_assignment))
        .routes(routes!(routes::resolve_download))
        .routes(routes!(routes::list_audit))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(routes::upload_content))
                .route_layer(axum::middleware::from_fn(
                    crate::objects::routes::close_unread_uploads,
                )),
        )
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactsError {
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    #[error("no such user")]
    UserNotFound,
    #[error("release not found")]
    ReleaseNotFound,
    #[error("the release's scope differs from the assignment's")]
    ScopeMismatch,
    #[error("no assignment for the lease's user")]
    AssignmentNotFound,
    #[error("the release is not active")]
    ReleaseNotActive,
    #[error("the release's object is not in the store")]
    ObjectNotFound,
    #[error("the object's bytes differ from the release: {0}")]
    ContentMismatch(String),
    #[error("the release's content was never uploaded")]
    ContentMissing,
    #[error("the release's content is already stored")]
    ContentExists,
    #[error("the upload is larger than the release's size_bytes ({0})")]
    TooLarge(u64),
    #[error("the upload was cut short: {0}")]
    BodyRead(String),
    #[error("asking the object store for the object failed: {0}")]
    HeadFailed(String),
    #[error("object store: {0}")]
    ObjectStore(String),
    #[error("the lease token is invalid")]
    LeaseTokenInvalid,
    #[error("lease not found")]
    LeaseNotFound,
    #[error("lease is not active")]
    LeaseInactive,
    #[error("lease expired")]
    LeaseExpired,
    #[error("the lease belongs to another user")]
    LeaseOwnerMismatch,
    #[error("the lease is for another VM")]
    VmUuidMismatch,
    #[error("the lease is for another module")]
    ModuleMismatch,
    #[error("writing the download audit failed: {0}")]
    AuditWriteFailed(StoreError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ArtifactsError {
    /// The answer's status and code (what the download audit records).
    pub fn status_code(&self) -> (StatusCode, &'static str) {
        use ArtifactsError as E;
        match self {
            E::Validation(_) => (StatusCode::BAD_REQUEST, codes::VALIDATION_ERROR),
            E::UserNotFound => (StatusCode::NOT_FOUND, codes::USER_NOT_FOUND),
            E::ReleaseNotFound => (StatusCode::NOT_FOUND, codes::ARTIFACT_RELEASE_NOT_FOUND),
            E::ScopeMismatch => (StatusCode::CONFLICT, codes::ARTIFACT_SCOPE_MISMATCH),
            E::AssignmentNotFound => (StatusCode::NOT_FOUND, codes::ARTIFACT_ASSIGNMENT_NOT_FOUND),
            E::ReleaseNotActive => (StatusCode::CONFLICT, codes::ARTIFACT_RELEASE_NOT_ACTIVE),
            E::ObjectNotFound => (StatusCode::NOT_FOUND, codes::ARTIFACT_OBJECT_NOT_FOUND),
            E::ContentMismatch(_) => (StatusCode::CONFLICT, codes::ARTIFACT_CONTENT_MISMATCH),
            E::ContentMissing => (StatusCode::CONFLICT, codes::ARTIFACT_CONTENT_MISSING),
            E::ContentExists => (StatusCode::CONFLICT, codes::ARTIFACT_CONTENT_EXISTS),
            E::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, codes::PAYLOAD_TOO_LARGE),
            E::BodyRead(_) => (StatusCode::BAD_REQUEST, codes::BAD_REQUEST),
            E::HeadFailed(_) => (StatusCode::BAD_GATEWAY, codes::S3_HEAD_OBJECT_FAILED),
            E::ObjectStore(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                codes::OBJECT_STORE_UNAVAILABLE,
            ),
            E::LeaseTokenInvalid => (StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED),
            E::LeaseNotFound => (StatusCode::NOT_FOUND, codes::LEASE_NOT_FOUND),
            E::LeaseInactive => (StatusCode::CONFLICT, codes::LEASE_INACTIVE),
            E::LeaseExpired => (StatusCode::CONFLICT, codes::LEASE_EXPIRED),
            E::LeaseOwnerMismatch => (StatusCode::FORBIDDEN, codes::LEASE_OWNER_MISMATCH),
            E::VmUuidMismatch => (StatusCode::FORBIDDEN, codes::VM_UUID_MISMATCH),
            E::ModuleMismatch => (StatusCode::FORBIDDEN, codes::MODULE_MISMATCH),
            E::AuditWriteFailed(_) => (StatusCode::BAD_GATEWAY, codes::ARTIFACT_AUDIT_WRITE_FAILED),
            E::Auth(a) => {
                let api = ApiError::from(a.clone());
                (api.status, api.code)
            }
            E::Store(s) => match s {
                StoreError::NotFound(_) => (StatusCode::NOT_FOUND, codes::NOT_FOUND),
                StoreError::Conflict(_) => (StatusCode::CONFLICT, codes::CONFLICT),
                StoreError::Invalid(_) => (StatusCode::BAD_REQUEST, codes::VALIDATION_ERROR),
                StoreError::Corrupt(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL_ERROR)
                }
                StoreError::Database(_) => (StatusCode::SERVICE_UNAVAILABLE, codes::DATABASE_ERROR),
            },
        }
    }

    /// An upload or read of the object store, as this domain reports it.
    pub(crate) fn from_object(e: ObjectError) -> ArtifactsError {
        match e {
            ObjectError::NotFound => ArtifactsError::ObjectNotFound,
            ObjectError::TooLarge(n) => ArtifactsError::TooLarge(n),
            ObjectError::Empty => ArtifactsError::ContentMismatch("the upload is empty".into()),
            ObjectError::Mismatch { size, sha256 } => ArtifactsError::ContentMismatch(format!(
                "received {size} bytes with SHA-256 {sha256}"
            )),
            ObjectError::Body(b) => ArtifactsError::BodyRead(b),
            ObjectError::Backend(b) => ArtifactsError::ObjectStore(b),
        }
    }
}

impl From<ArtifactsError> for ApiError {
    fn from(e: ArtifactsError) -> Self {
        use ArtifactsError as E;
        let (status, code) = e.status_code();
        let message = match e {
            E::Validation(f) => return ApiError::validation(f),
            E::Auth(a) => return a.into(),
            E::Store(s) => return s.into(),
            E::UserNotFound => "No such user in your tenant".to_string(),
            E::ReleaseNotFound => "No such artifact release".to_string(),
            E::ScopeMismatch => {
                "The release's module, platform or channel differs from the assignment's".into()
            }
            E::AssignmentNotFound => "No release is assigned for this module, platform and channel (to the lease's user, nor as the tenant default)".into(),
            E::ReleaseNotActive => "The assigned release is not active".into(),
            E::ObjectNotFound => "The release's object is not in the object store".into(),
            E::ContentMismatch(what) => format!(
                "The object does not match the release's size_bytes and sha256: {what}"
            ),
            E::ContentMissing => {
                "Upload the release's content (PUT …/content) before activating it".into()
            }
            E::ContentExists => {
                "The release's content is already stored; create a new release".into()
            }
            E::TooLarge(n) => format!("The upload is larger than the release's size_bytes ({n})"),
            E::BodyRead(b) => format!("The upload was cut short: {b}"),
            E::HeadFailed(cause) => {
                return ApiError::new(
                    status,
                    code,
                    "The object store could not be asked for the release's object",
                )
                .with_cause(cause)
            }
            E::ObjectStore(cause) => {
                return ApiError::new(status, code, "The object store failed; try again shortly")
                    .with_retry_after(2)
                    .with_cause(cause)
            }
            E::AuditWriteFailed(cause) => {
                return ApiError::new(
                    status,
                    code,
                    "The download audit could not be written; no URL was issued",
                )
                .with_cause(cause)
            }
            E::LeaseTokenInvalid => {
                "The lease token is invalid (format, signature or token mismatch)".into()
            }
            E::LeaseNotFound => "No such lease".into(),
            E::LeaseInactive => "The lease was revoked".into(),
            E::LeaseExpired => "The lease has expired; lease again".into(),
            E::LeaseOwnerMismatch => "The lease belongs to another user".into(),
            E::VmUuidMismatch => "The lease was issued for another VM".into(),
            E::ModuleMismatch => "The lease was issued for another module".into(),
        };
        ApiError::new(status, code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit's code is the answer's code, for the variants mapped by
    /// the platform too.
    #[test]
    fn audit_code_is_the_answer_code() {
        let samples = vec![
            ArtifactsError::Auth(AuthError::Forbidden("operator")),
            ArtifactsError::Auth(AuthError::MissingToken),
            ArtifactsError::Store(StoreError::Conflict("x".into())),
            ArtifactsError::Store(StoreError::Corrupt("x".into())),
            ArtifactsError::Store(StoreError::Database(sqlx::Error::PoolTimedOut)),
            ArtifactsError::Validation(FieldErrors::one("a", "b")),
            ArtifactsError::HeadFailed("x".into()),
            ArtifactsError::LeaseExpired,
            ArtifactsError::AuditWriteFailed(StoreError::Conflict("x".into())),
        ];
        for e in samples {
            let (status, code) = e.status_code();
            let label = e.to_string();
            let api = ApiError::from(e);
            assert_eq!((api.status, api.code), (status, code), "{label}");
            assert!(
                codes::TABLE.iter().any(|(c, _, _)| *c == code),
                "{code} not in the table"
            );
        }
    }
}
