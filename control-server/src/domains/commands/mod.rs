//! Commands (the command bus, "vm-ops"): dispatch to agents, the agents'
//! long poll and reports, output chunks, cancellation and reads
//! (`/api/v1/vm-ops/*` except the event stream, which is the events
//! domain's).

pub mod routes;
pub mod service;
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

pub use service::CommandsService;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::dispatch_proxmox))
        .routes(routes!(routes::dispatch_ssh))
        .routes(routes!(routes::dispatch_generic, routes::list_commands))
        .routes(routes!(routes::next_command))
        .routes(routes!(routes::get_command, routes::report))
        .routes(routes!(routes::append_output, routes::read_output))
        .routes(routes!(routes::cancel))
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("agent is not online")]
    AgentOffline,
    #[error("the target agent is revoked")]
    TargetRevoked,
    #[error("agent has no owner")]
    OwnerUnassigned,
    #[error("agent belongs to another user")]
    OwnerMismatch,
    #[error("command not found")]
    CommandNotFound,
    #[error("invalid transition: {0}")]
    InvalidTransition(String),
    #[error("lease lost")]
    LeaseLost,
    #[error("idempotency key reused for a different command")]
    IdempotencyKeyReused,
    #[error("output limit exceeded: {0}")]
    OutputLimit(String),
    #[error("an agent may only list its own commands")]
    ForeignAgent,
    #[error("the command already ended")]
    CommandFinished,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<FieldErrors> for CommandError {
    fn from(f: FieldErrors) -> Self {
        CommandError::Validation(f)
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Validation(f) => ApiError::validation(f),
            CommandError::Agent(a) => a.into(),
            CommandError::AgentOffline => ApiError::conflict(
                codes::AGENT_OFFLINE,
                "The agent is not online; VM operations need a connected agent (nothing was queued)",
            ),
            CommandError::TargetRevoked => ApiError::conflict(
                codes::AGENT_REVOKED,
                "The agent is revoked; nothing was queued",
            ),
            CommandError::OwnerUnassigned => ApiError::new(
                StatusCode::FORBIDDEN,
                codes::AGENT_OWNER_UNASSIGNED,
                "The agent has no owner; an admin must dispatch to it",
            ),
            CommandError::OwnerMismatch => ApiError::new(
                StatusCode::FORBIDDEN,
                codes::AGENT_OWNER_MISMATCH,
                "The agent belongs to another user",
            ),
            CommandError::CommandNotFound => {
                ApiError::not_found(codes::COMMAND_NOT_FOUND, "No such command")
            }
            CommandError::InvalidTransition(m) => ApiError::conflict(codes::INVALID_TRANSITION, m),
            CommandError::LeaseLost => ApiError::conflict(
                codes::LEASE_LOST,
                "The lease on this command was lost (it was requeued or claimed again); drop this result",
            ),
            CommandError::IdempotencyKeyReused => ApiError::conflict(
                codes::IDEMPOTENCY_KEY_REUSED,
                "This idempotency key belongs to a different command",
            ),
            CommandError::OutputLimit(m) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, codes::OUTPUT_LIMIT_EXCEEDED, m)
            }
            CommandError::ForeignAgent => {
                ApiError::forbidden("An agent may only list its own commands")
            }
            CommandError::CommandFinished => ApiError::conflict(
                codes::COMMAND_FINISHED,
                "The command already ended; no more output is accepted",
            ),
            CommandError::Auth(a) => a.into(),
            CommandError::Store(s) => s.into(),
        }
    }
}
