//! HTTP handlers and DTOs of the command bus: dispatching commands to
//! agents, the agents' long poll and reports, output, cancellation, reads.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use botmox_protocol::{Command, CommandReport, OutputAppend};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};

use super::service::{
    command_view, scoped_type, DispatchInput, Dispatched, PROXMOX_ACTIONS, SSH_ACTIONS,
};
use super::store::COMMAND_LIST;
use crate::auth::{Identity, Role};
use crate::db::ids::{AgentId, CommandId};
use crate::db::ms_to_rfc3339;
use crate::domains::agents::{AgentIdentity, Caller};
use crate::http::admission::Budget;
use crate::http::envelope::{accepted, ok, paged, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::{enum_param, list_query_doc, opt_text, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::validate::FieldErrors;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopedDispatch {
    /// The target agent's id.
    #[schema(value_type = String, format = Uuid)]
    pub agent_id: AgentId,
    /// Action parameters (the command payload).
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
    /// Seconds a queued command waits for pick-up before it expires (default 300).
    #[schema(minimum = 10, maximum = 3600)]
    pub expires_in_seconds: Option<u64>,
    /// The same key within 24 h returns the existing command.
    #[schema(schema_with = opt_text::<1, 200>)]
    pub idempotency_key: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenericDispatch {
    /// The target agent's id.
    #[schema(value_type = String, format = Uuid)]
    pub agent_id: AgentId,
    /// e.g. `proxmox.start`.
    #[schema(pattern = r"^[a-z0-9._-]{1,200}$")]
    pub command_type: String,
    /// The command payload.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// Seconds a queued command waits for pick-up before it expires (default 300).
    #[schema(minimum = 10, maximum = 3600)]
    pub expires_in_seconds: Option<u64>,
    /// The same key within 24 h returns the existing command.
    #[schema(schema_with = opt_text::<1, 200>)]
    pub idempotency_key: Option<String>,
}

/// `{action}` of `/vm-ops/proxmox/{action}` (OpenAPI only).
struct ProxmoxAction;

impl IntoParams for ProxmoxAction {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![enum_param(
            "action",
            ParameterIn::Path,
            "The Proxmox action (command type `proxmox.<action>`).",
            PROXMOX_ACTIONS,
        )]
    }
}

/// `{action}` of `/vm-ops/ssh/{action}` (OpenAPI only).
struct SshAction;

impl IntoParams for SshAction {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![enum_param(
            "action",
            ParameterIn::Path,
            "The SSH action (command type `ssh.<action>`).",
            SSH_ACTIONS,
        )]
    }
}

fn dispatched(d: Dispatched) -> Reply<Command> {
    accepted(d.command, d.reused.then(|| json!({ "reused": true })))
}

async fn dispatch_scoped(
    state: &AppState,
    identity: &Identity,
    family: &str,
    action: &str,
    req: ScopedDispatch,
) -> Result<Reply<Command>, ApiError> {
    let command_type = scoped_type(family, action)?;
    let d = state
        .commands
        .dispatch(
            identity,
            DispatchInput {
                agent_id: req.agent_id,
                command_type,
                payload: req.params.unwrap_or_else(|| json!({})),
                expires_in_seconds: req.expires_in_seconds,
                idempotency_key: req.idempotency_key,
            },
        )
        .await?;
    Ok(dispatched(d))
}

/// Dispatch `proxmox.<action>` to an agent (operator+, own agents unless admin).
#[utoipa::path(post, path = "/api/v1/vm-ops/proxmox/{action}", tag = "vm-ops", security(("bearer" = [])),
    params(ProxmoxAction),
    request_body = ScopedDispatch,
    responses((status = 202, body = Envelope<Command>,
               links(("GetCommand" = (operation_id = "get_command", parameters(("id" = "$response.body#/data/id")))),
                     ("ReadOutput" = (operation_id = "read_output", parameters(("id" = "$response.body#/data/id")))),
                     ("Cancel" = (operation_id = "cancel", parameters(("id" = "$response.body#/data/id")))))),
              (status = 400, body = ErrorEnvelope),
              (status = 403, description = "FORBIDDEN, AGENT_OWNER_MISMATCH, AGENT_OWNER_UNASSIGNED", body = ErrorEnvelope),
              (status = 404, description = "AGENT_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "AGENT_OFFLINE, AGENT_REVOKED, IDEMPOTENCY_KEY_REUSED", body = ErrorEnvelope)))]
pub async fn dispatch_proxmox(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(action): ApiPath<String>,
    ApiJson(req): ApiJson<ScopedDispatch>,
) -> Result<Reply<Command>, ApiError> {
    dispatch_scoped(&state, &identity, "proxmox", &action, req).await
}

/// Dispatch `ssh.<action>` (status, test, bootstrap, read-config, write-config, exec).
#[utoipa::path(post, path = "/api/v1/vm-ops/ssh/{action}", tag = "vm-ops", security(("bearer" = [])),
    params(SshAction), request_body = ScopedDispatch,
    responses((status = 202, body = Envelope<Command>,
               links(("GetCommand" = (operation_id = "get_command", parameters(("id" = "$response.body#/data/id")))),
                     ("ReadOutput" = (operation_id = "read_output", parameters(("id" = "$response.body#/data/id")))),
                     ("Cancel" = (operation_id = "cancel", parameters(("id" = "$response.body#/data/id")))))),
              (status = 400, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn dispatch_ssh(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(action): ApiPath<String>,
    ApiJson(req): ApiJson<ScopedDispatch>,
) -> Result<Reply<Command>, ApiError> {
    dispatch_scoped(&state, &identity, "ssh", &action, req).await
}

/// Dispatch any command type (admin).
#[utoipa::path(post, path = "/api/v1/vm-ops/commands", tag = "vm-ops", security(("bearer" = [])),
    request_body = GenericDispatch,
    responses((status = 202, body = Envelope<Command>,
               links(("GetCommand" = (operation_id = "get_command", parameters(("id" = "$response.body#/data/id")))),
                     ("ReadOutput" = (operation_id = "read_output", parameters(("id" = "$response.body#/data/id")))),
                     ("Cancel" = (operation_id = "cancel", parameters(("id" = "$response.body#/data/id")))))),
              (status = 400, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn dispatch_generic(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<GenericDispatch>,
) -> Result<Reply<Command>, ApiError> {
    identity.require(Role::Admin)?;
    let d = state
        .commands
        .dispatch(
            &identity,
            DispatchInput {
                agent_id: req.agent_id,
                command_type: req.command_type,
                payload: req.payload.unwrap_or_else(|| json!({})),
                expires_in_seconds: req.expires_in_seconds,
                idempotency_key: req.idempotency_key,
            },
        )
        .await?;
    Ok(dispatched(d))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NextQuery {
    /// Milliseconds to wait for a command (default: the server's poll timeout).
    #[param(minimum = 1000, maximum = 60000)]
    pub timeout_ms: Option<u64>,
}

/// Long poll (agent token): claim the oldest queued command, or 204 at the timeout.
#[utoipa::path(get, path = "/api/v1/vm-ops/commands/next", tag = "vm-ops", security(("bearer" = [])),
    params(NextQuery),
    responses((status = 200, body = Envelope<Command>), (status = 204, description = "No command before the timeout"),
              (status = 401, body = ErrorEnvelope), (status = 403, description = "AGENT_REVOKED or not an agent token", body = ErrorEnvelope)))]
pub async fn next_command(
    State(state): State<AppState>,
    agent: AgentIdentity,
    ApiQuery(q): ApiQuery<NextQuery>,
) -> Result<Response, ApiError> {
    let timeout_ms = q
        .timeout_ms
        .unwrap_or(state.commands.config().poll_timeout_s * 1000);
    if !(1000..=60_000).contains(&timeout_ms) {
        return Err(FieldErrors::one("timeout_ms", "must be between 1000 and 60000").into());
    }
    // Admission control counts the claim attempt, not the parked wait
    // (the agents' budget: a fleet never takes the admins' places).
    let busy = state
        .admission
        .enter(Budget::Agents)
        .await
        .map_err(ApiError::server_busy)?;
    match state
        .commands
        .next_command(&agent, Duration::from_millis(timeout_ms), Some(busy))
        .await?
    {
        Some(cmd) => Ok(ok(cmd).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

list_query_doc!(CommandListQuery, COMMAND_LIST);

/// Commands the caller may see, newest first (agents: their own). List
/// kit: filter on agent_id, status, command_type, error_code, created_by,
/// attempt_count and the timestamps; sort on created_at, updated_at,
/// finished_at, status, command_type, attempt_count; `q` searches
/// command_type and error_code.
#[utoipa::path(get, path = "/api/v1/vm-ops/commands", tag = "vm-ops", security(("bearer" = [])),
    params(CommandListQuery),
    responses((status = 200, body = Envelope<Vec<Command>>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn list_commands(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<Command>>, ApiError> {
    let (params, _) = COMMAND_LIST.parse(q.as_deref().unwrap_or(""), &[])?;
    let page = state.commands.list(&caller, &params).await?;
    Ok(paged(page.map(|r| command_view(&r))))
}

/// One command (users: those they created, admins: all; agents: their own).
#[utoipa::path(get, path = "/api/v1/vm-ops/commands/{id}", tag = "vm-ops", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Command>), (status = 404, description = "COMMAND_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_command(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<CommandId>,
) -> Result<Reply<Command>, ApiError> {
    let row = state.commands.visible_command(&caller, &id).await?;
    Ok(ok(command_view(&row)))
}

/// The owning agent reports running/progress (renews the lease) or an outcome.
#[utoipa::path(patch, path = "/api/v1/vm-ops/commands/{id}", tag = "vm-ops", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = CommandReport,
    responses((status = 200, description = "Updated command; `cancel_requested` tells the agent to abort", body = Envelope<Command>),
              (status = 404, body = ErrorEnvelope),
              (status = 409, description = "INVALID_TRANSITION or LEASE_LOST", body = ErrorEnvelope)))]
pub async fn report(
    State(state): State<AppState>,
    agent: AgentIdentity,
    ApiPath(id): ApiPath<CommandId>,
    ApiJson(req): ApiJson<CommandReport>,
) -> Result<Reply<Command>, ApiError> {
    Ok(ok(state.commands.report(&agent, &id, req).await?))
}

#[derive(Serialize, ToSchema)]
pub struct OutputAccepted {
    pub accepted: usize,
    pub duplicates: usize,
}

/// Append output chunks (agent). A repeated `seq` is ignored.
#[utoipa::path(post, path = "/api/v1/vm-ops/commands/{id}/output", tag = "vm-ops", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = OutputAppend,
    responses((status = 200, body = Envelope<OutputAccepted>), (status = 404, body = ErrorEnvelope),
              (status = 413, description = "OUTPUT_LIMIT_EXCEEDED", body = ErrorEnvelope)))]
pub async fn append_output(
    State(state): State<AppState>,
    agent: AgentIdentity,
    ApiPath(id): ApiPath<CommandId>,
    ApiJson(req): ApiJson<OutputAppend>,
) -> Result<Reply<OutputAccepted>, ApiError> {
    let (accepted, duplicates) = state.commands.append_output(&agent, &id, req).await?;
    Ok(ok(OutputAccepted {
        accepted,
        duplicates,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutputQuery {
    /// Return chunks with a larger `seq` (default: from the start).
    pub after_seq: Option<i64>,
    /// Most chunks to return (default 1000); clamped to 1..10000.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct OutputChunkView {
    pub seq: i64,
    pub stream: String,
    pub data: String,
    pub created_at: String,
}

/// Read a command's output chunks in order.
#[utoipa::path(get, path = "/api/v1/vm-ops/commands/{id}/output", tag = "vm-ops", security(("bearer" = [])),
    params(("id" = String, Path), OutputQuery),
    responses((status = 200, body = Envelope<Vec<OutputChunkView>>), (status = 404, body = ErrorEnvelope)))]
pub async fn read_output(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<CommandId>,
    ApiQuery(q): ApiQuery<OutputQuery>,
) -> Result<Reply<Vec<OutputChunkView>>, ApiError> {
    let rows = state
        .commands
        .read_output(
            &caller,
            &id,
            q.after_seq.unwrap_or(-1),
            q.limit.unwrap_or(1000),
        )
        .await?;
    Ok(ok(rows
        .into_iter()
        .map(|r| OutputChunkView {
            seq: r.seq,
            stream: r.stream,
            data: r.data,
            created_at: ms_to_rfc3339(r.created_at),
        })
        .collect()))
}

/// Cancel: queued → cancelled at once; dispatched/running → cancel requested.
#[utoipa::path(post, path = "/api/v1/vm-ops/commands/{id}/cancel", tag = "vm-ops", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Command>), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "INVALID_TRANSITION (already finished)", body = ErrorEnvelope)))]
pub async fn cancel(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<CommandId>,
) -> Result<Reply<Command>, ApiError> {
    Ok(ok(state.commands.cancel(&identity, &id).await?))
}
