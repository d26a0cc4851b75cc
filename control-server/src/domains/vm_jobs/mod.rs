//! VM creation jobs (issue #17): the server turns "make me N VMs from this
//! template and profile" into clone → configure → ISO → attach → register
//! → start → install → detach, per VM, through the command bus. Every item
//! is a persisted state machine ([`store::ItemStep`]); the
//! [`orchestrator`] drives it, resumable after a restart (command ids are
//! stored before they are dispatched, keys are deterministic), lock-aware
//! (parallelism per node, lock contention retried with backoff) and
//! observable (`vm_job.*` events on the SSE stream, filterable by `job_id`).

pub mod orchestrator;
pub mod routes;
pub mod service;
pub mod spec;
pub mod store;

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

pub use orchestrator::Orchestrator;
pub use service::VmJobsService;
pub use store::{ItemStep, JobStatus};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::create_job, routes::list_jobs))
        .routes(routes!(routes::get_job))
        .routes(routes!(routes::job_events))
        .routes(routes!(routes::cancel_job))
        .routes(routes!(routes::retry_item))
}

#[derive(Debug, thiserror::Error)]
pub enum VmJobError {
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    #[error("VM job not found")]
    NotFound,
    #[error("the job has no such item")]
    ItemNotFound,
    #[error("the job already ended")]
    Finished,
    #[error("only a failed item can be retried")]
    ItemNotFailed,
    #[error("the job was cancelled")]
    Cancelled,
    #[error("idempotency key reused for a different job")]
    IdempotencyKeyReused,
    #[error("agent has no owner")]
    OwnerUnassigned,
    #[error("agent belongs to another user")]
    OwnerMismatch,
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<FieldErrors> for VmJobError {
    fn from(f: FieldErrors) -> Self {
        VmJobError::Validation(f)
    }
}

impl From<VmJobError> for ApiError {
    fn from(e: VmJobError) -> Self {
        match e {
            VmJobError::Validation(f) => ApiError::validation(f),
            VmJobError::NotFound => ApiError::not_found(codes::VM_JOB_NOT_FOUND, "No such VM job"),
            VmJobError::ItemNotFound => ApiError::not_found(
                codes::VM_JOB_ITEM_NOT_FOUND,
                "The job has no item with this index",
            ),
            VmJobError::Finished => ApiError::conflict(
                codes::VM_JOB_FINISHED,
                "The job already ended; there is nothing to cancel",
            ),
            VmJobError::ItemNotFailed => ApiError::conflict(
                codes::VM_JOB_ITEM_NOT_FAILED,
                "Only a failed item can be retried",
            ),
            VmJobError::Cancelled => ApiError::conflict(
                codes::VM_JOB_CANCELLED,
                "The job was cancelled; its items cannot be retried",
            ),
            VmJobError::IdempotencyKeyReused => ApiError::conflict(
                codes::IDEMPOTENCY_KEY_REUSED,
                "This idempotency key belongs to a different job",
            ),
            VmJobError::OwnerUnassigned => ApiError::new(
                StatusCode::FORBIDDEN,
                codes::AGENT_OWNER_UNASSIGNED,
                "The agent has no owner; an admin must create jobs for it",
            ),
            VmJobError::OwnerMismatch => ApiError::new(
                StatusCode::FORBIDDEN,
                codes::AGENT_OWNER_MISMATCH,
                "The agent belongs to another user",
            ),
            VmJobError::Agent(a) => a.into(),
            VmJobError::Auth(a) => a.into(),
            VmJobError::Store(s) => s.into(),
        }
    }
}
