//! VM operations: dispatching commands to agents, the agents' long poll and
//! reports, output, cancellation, reads and the SSE event stream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use botmox_protocol::{Command, CommandReport, OutputAppend};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Identity, Role};
use crate::bus::agents::AgentIdentity;
use crate::bus::commands::{scoped_type, Caller, DispatchInput};
use crate::error::{ApiError, ErrorEnvelope};
use crate::http::envelope::{ok, Envelope, Reply};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::store::events::{self, EventFilter};
use crate::store::ms_to_rfc3339;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopedDispatch {
    pub agent_id: String,
    /// Action parameters (the command payload).
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
    /// 10..3600, default 300: a queued command nobody picks up expires.
    pub expires_in_seconds: Option<u64>,
    /// The same key within 24 h returns the existing command.
    pub idempotency_key: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenericDispatch {
    pub agent_id: String,
    pub command_type: String,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    pub expires_in_seconds: Option<u64>,
    pub idempotency_key: Option<String>,
}

fn accepted(d: crate::bus::commands::Dispatched) -> Response {
    let status = StatusCode::ACCEPTED;
    let meta = d.reused.then(|| json!({ "reused": true }));
    (
        status,
        axum::Json(Envelope {
            success: true,
            data: d.command,
            meta,
        }),
    )
        .into_response()
}

async fn dispatch_scoped(
    state: &AppState,
    identity: &Identity,
    family: &str,
    action: &str,
    req: ScopedDispatch,
) -> Result<Response, ApiError> {
    let command_type = scoped_type(family, action)?;
    let d = state
        .bus
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
    Ok(accepted(d))
}

/// Dispatch `proxmox.<action>` to an agent (operator+, own agents unless admin).
#[utoipa::path(post, path = "/api/v1/vm-ops/proxmox/{action}", tag = "vm-ops", security(("bearer" = [])),
    params(("action" = String, Path, description = "e.g. clone, start, wait-task, create-provision-iso")),
    request_body = ScopedDispatch,
    responses((status = 202, body = Envelope<Command>), (status = 400, body = ErrorEnvelope),
              (status = 403, description = "FORBIDDEN, AGENT_OWNER_MISMATCH, AGENT_OWNER_UNASSIGNED", body = ErrorEnvelope),
              (status = 404, description = "AGENT_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "AGENT_OFFLINE, AGENT_REVOKED, IDEMPOTENCY_KEY_REUSED", body = ErrorEnvelope)))]
pub async fn dispatch_proxmox(
    State(state): State<AppState>,
    identity: Identity,
    Path(action): Path<String>,
    ApiJson(req): ApiJson<ScopedDispatch>,
) -> Result<Response, ApiError> {
    dispatch_scoped(&state, &identity, "proxmox", &action, req).await
}

/// Dispatch `ssh.<action>` (status, test, bootstrap, read-config, write-config, exec).
#[utoipa::path(post, path = "/api/v1/vm-ops/ssh/{action}", tag = "vm-ops", security(("bearer" = [])),
    params(("action" = String, Path)), request_body = ScopedDispatch,
    responses((status = 202, body = Envelope<Command>), (status = 400, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn dispatch_ssh(
    State(state): State<AppState>,
    identity: Identity,
    Path(action): Path<String>,
    ApiJson(req): ApiJson<ScopedDispatch>,
) -> Result<Response, ApiError> {
    dispatch_scoped(&state, &identity, "ssh", &action, req).await
}

/// Dispatch any command type (admin).
#[utoipa::path(post, path = "/api/v1/vm-ops/commands", tag = "vm-ops", security(("bearer" = [])),
    request_body = GenericDispatch,
    responses((status = 202, body = Envelope<Command>), (status = 400, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn dispatch_generic(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<GenericDispatch>,
) -> Result<Response, ApiError> {
    identity.require(Role::Admin)?;
    let d = state
        .bus
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
    Ok(accepted(d))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NextQuery {
    /// 1000..60000; default: the server's poll timeout.
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
    let timeout_ms = q.timeout_ms.unwrap_or(state.bus.cfg.poll_timeout_s * 1000);
    if !(1000..=60_000).contains(&timeout_ms) {
        let mut f = crate::error::FieldErrors::default();
        f.add("timeout_ms", "must be between 1000 and 60000");
        return Err(ApiError::validation(f));
    }
    match state
        .bus
        .next_command(&agent, Duration::from_millis(timeout_ms))
        .await?
    {
        Some(cmd) => Ok(ok(cmd).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub agent_id: Option<String>,
    pub status: Option<String>,
    /// 1..200, default 50.
    pub limit: Option<i64>,
    /// `meta.next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn decode_cursor(c: &str) -> Option<(i64, String)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    let (ts, id) = raw.split_once(':')?;
    Some((ts.parse().ok()?, id.to_string()))
}

/// Commands the caller may see, newest first (agents: their own).
#[utoipa::path(get, path = "/api/v1/vm-ops/commands", tag = "vm-ops", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Envelope<Vec<Command>>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn list_commands(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(50);
    let mut f = crate::error::FieldErrors::default();
    f.check(
        (1..=200).contains(&limit),
        "limit",
        "must be between 1 and 200",
    );
    let before = match &q.cursor {
        Some(c) => {
            let d = decode_cursor(c);
            f.check(
                d.is_some(),
                "cursor",
                "is not a cursor returned by this endpoint",
            );
            d
        }
        None => None,
    };
    f.into_result()?;
    let rows = state
        .bus
        .list_commands(
            &caller,
            q.agent_id.as_deref(),
            q.status.as_deref(),
            before,
            limit,
        )
        .await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last())
        .flatten()
        .map(|r| URL_SAFE_NO_PAD.encode(format!("{}:{}", r.created_at, r.id)));
    let items: Vec<Command> = rows.iter().map(|r| state.bus.command_view(r)).collect();
    let meta = json!({ "count": items.len(), "next_cursor": next_cursor });
    Ok(axum::Json(Envelope {
        success: true,
        data: items,
        meta: Some(meta),
    })
    .into_response())
}

/// One command (users: those they created, admins: all; agents: their own).
#[utoipa::path(get, path = "/api/v1/vm-ops/commands/{id}", tag = "vm-ops", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Command>), (status = 404, description = "COMMAND_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_command(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Reply<Command>, ApiError> {
    let row = state.bus.visible_command(&caller, &id).await?;
    Ok(ok(state.bus.command_view(&row)))
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
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CommandReport>,
) -> Result<Reply<Command>, ApiError> {
    Ok(ok(state.bus.report(&agent, &id, req).await?))
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
    Path(id): Path<String>,
    ApiJson(req): ApiJson<OutputAppend>,
) -> Result<Reply<OutputAccepted>, ApiError> {
    let (accepted, duplicates) = state.bus.append_output(&agent, &id, req).await?;
    Ok(ok(OutputAccepted {
        accepted,
        duplicates,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OutputQuery {
    /// Return chunks with a larger `seq` (default: from the start).
    pub after_seq: Option<i64>,
    /// 1..10000, default 1000.
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
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<OutputQuery>,
) -> Result<Reply<Vec<OutputChunkView>>, ApiError> {
    let rows = state
        .bus
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
    Path(id): Path<String>,
) -> Result<Reply<Command>, ApiError> {
    Ok(ok(state.bus.cancel(&identity, &id).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    pub agent_id: Option<String>,
    pub command_id: Option<String>,
    /// Resume after this event id (the `Last-Event-ID` header wins).
    pub last_event_id: Option<i64>,
}

/// Server-sent events of agents and commands the caller may see. Resumes
/// from `Last-Event-ID`; a `: heartbeat` comment every 25 s.
#[utoipa::path(get, path = "/api/v1/vm-ops/events", tag = "vm-ops", security(("bearer" = [])),
    params(EventsQuery),
    responses((status = 200, description = "text/event-stream; each event: id, event (e.g. command.succeeded), data JSON", content_type = "text/event-stream", body = String),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let header_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let last = match header_id {
        Some(h) => h.trim().parse::<i64>().ok(),
        None => Some(q.last_event_id.unwrap_or(0)),
    };
    let Some(last) = last.filter(|v| *v >= 0) else {
        let mut f = crate::error::FieldErrors::default();
        f.add("last_event_id", "must be a non-negative integer");
        return Err(ApiError::validation(f));
    };
    let filter = match &caller {
        Caller::Agent(a) => {
            if q.agent_id.as_deref().is_some_and(|x| x != a.agent_id) {
                return Err(ApiError::forbidden(
                    "An agent may only follow its own events",
                ));
            }
            EventFilter {
                agent_id: Some(a.agent_id.clone()),
                command_id: q.command_id,
                visible_to_user: None,
            }
        }
        Caller::User(u) => EventFilter {
            agent_id: q.agent_id,
            command_id: q.command_id,
            visible_to_user: (!u.has(Role::Admin)).then(|| u.user_id.clone()),
        },
    };
    let stream = event_stream(state, caller.scope(), filter, last);
    let mut resp = Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(25))
                .text("heartbeat"),
        )
        .into_response();
    resp.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(resp)
}

struct StreamState {
    state: AppState,
    scope: crate::store::TenantScope,
    filter: EventFilter,
    last: i64,
    wake: tokio::sync::watch::Receiver<u64>,
    buf: VecDeque<Event>,
    greeted: bool,
}

fn event_stream(
    state: AppState,
    scope: crate::store::TenantScope,
    filter: EventFilter,
    last: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let wake = state.bus.notifier.subscribe_events();
    let init = StreamState {
        state,
        scope,
        filter,
        last,
        wake,
        buf: VecDeque::new(),
        greeted: false,
    };
    futures_util::stream::unfold(init, |mut s| async move {
        loop {
            if !s.greeted {
                s.greeted = true;
                return Some((Ok(Event::default().comment("connected")), s));
            }
            if let Some(ev) = s.buf.pop_front() {
                return Some((Ok(ev), s));
            }
            s.wake.borrow_and_update();
            match events::after(s.state.db.pool(), &s.scope, &s.filter, s.last, 200).await {
                Ok(rows) if !rows.is_empty() => {
                    for r in rows {
                        s.last = r.id;
                        let data = json!({
                            "event_id": r.id,
                            "event_type": r.event_type,
                            "tenant_id": r.tenant_id,
                            "agent_id": r.agent_id,
                            "command_id": r.command_id,
                            "server_time": ms_to_rfc3339(r.created_at),
                            "created_at": ms_to_rfc3339(r.created_at),
                            "data": serde_json::from_str::<Value>(&r.data).unwrap_or(Value::Null),
                        });
                        s.buf.push_back(
                            Event::default()
                                .id(r.id.to_string())
                                .event(r.event_type)
                                .data(data.to_string()),
                        );
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "event stream query failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            tokio::select! {
                changed = s.wake.changed() => {
                    if changed.is_err() {
                        s.wake = s.state.bus.notifier.subscribe_events();
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(15)) => {}
            }
        }
    })
}
