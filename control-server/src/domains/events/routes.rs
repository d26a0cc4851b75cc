//! The SSE event stream handler.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use super::service::{filter_for, StillAllowed};
use super::store::EventRow;
use crate::db::ms_to_rfc3339;
use crate::domains::accounts::AccountError;
use crate::domains::agents::{AgentError, Caller};
use crate::http::envelope::SseEvent;
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::ApiQuery;
use crate::state::AppState;
use crate::validate::FieldErrors;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    pub agent_id: Option<String>,
    pub command_id: Option<String>,
    /// Only the events of this VM creation job (`vm_job.*`).
    pub job_id: Option<String>,
    /// Resume after this event id (the `Last-Event-ID` header wins).
    #[param(minimum = 0)]
    pub last_event_id: Option<i64>,
}

/// Server-sent events of agents and commands the caller may see (agent
/// events of own agents, events of own commands; admins: the tenant).
/// Resumes from `Last-Event-ID`; a `: heartbeat` comment every 25 s. The
/// stream ends within seconds when the caller's token stops being valid or
/// their role changes; at most 8 streams per caller.
#[utoipa::path(get, path = "/api/v1/vm-ops/events", tag = "vm-ops", security(("bearer" = [])),
    params(EventsQuery),
    responses((status = 200, description = "text/event-stream; each event: id, event (e.g. command.succeeded), data JSON", content_type = "text/event-stream", body = SseEvent),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 429, description = "TOO_MANY_STREAMS: at most 8 open streams per caller", body = ErrorEnvelope)))]
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
        return Err(FieldErrors::one("last_event_id", "must be a non-negative integer").into());
    };
    let filter = filter_for(&caller, q.agent_id, q.command_id, q.job_id)?;
    let slot = state.events.open_stream(&caller)?;
    // The bearer token, or the console cookie (EventSource cannot send headers).
    let token = crate::auth::credential_from_headers(&headers)
        .unwrap_or_default()
        .to_string();
    let still_allowed = still_allowed(&state, &caller, token);
    let rows = state
        .events
        .follow(caller.scope(), filter, last, slot, still_allowed);
    let stream = futures_util::stream::once(async {
        Ok::<_, Infallible>(Event::default().comment("connected"))
    })
    .chain(rows.map(|r| Ok::<_, Infallible>(sse_event(r))));
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

/// Re-verify the stream's bearer token (or console cookie): the stream ends
/// when it no longer verifies (logout, revoke, user or tenant disabled, agent
/// revoked) or the user's role changed. A database hiccup does not end it.
fn still_allowed(state: &AppState, caller: &Caller, token: String) -> StillAllowed {
    match caller {
        Caller::User(u) => {
            let accounts = state.accounts.clone();
            let (user, role, infra) = (u.user_id.clone(), u.role, u.infra);
            Box::new(move || {
                let (accounts, token, user) = (accounts.clone(), token.clone(), user.clone());
                Box::pin(async move {
                    match accounts.verify_bearer(&token).await {
                        Ok(i) => i.user_id == user && i.role == role && i.infra == infra,
                        Err(AccountError::Store(_)) => true,
                        Err(_) => false,
                    }
                })
            })
        }
        Caller::Agent(_) => {
            let agents = state.agents.clone();
            Box::new(move || {
                let (agents, token) = (agents.clone(), token.clone());
                Box::pin(async move {
                    !matches!(
                        agents.authenticate(&token).await,
                        Err(AgentError::AgentRevoked | AgentError::AgentTokenInvalid)
                    )
                })
            })
        }
    }
}

fn sse_event(r: EventRow) -> Event {
    let data = json!({
        "event_id": r.id,
        "event_type": r.event_type,
        "tenant_id": r.tenant_id,
        "agent_id": r.agent_id,
        "command_id": r.command_id,
        "job_id": r.job_id,
        "server_time": ms_to_rfc3339(r.created_at),
        "created_at": ms_to_rfc3339(r.created_at),
        "data": serde_json::from_str::<Value>(&r.data).unwrap_or(Value::Null),
    });
    Event::default()
        .id(r.id.to_string())
        .event(r.event_type)
        .data(data.to_string())
}
