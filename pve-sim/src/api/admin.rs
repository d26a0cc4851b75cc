//! Hidden admin routes (`/_sim/...`, outside `/api2`) so users of the
//! binary can read violations and state and inject faults. They require the
//! simulator's API token.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::error::{data, ApiError, ApiResult};
use super::AppState;
use crate::faults::{FaultRule, TaskOutcomeRule};

pub fn router(app: AppState) -> Router<AppState> {
    Router::new()
        .route("/_sim/violations", get(violations).delete(clear_violations))
        .route("/_sim/state", get(state))
        .route("/_sim/faults", post(add_fault).delete(clear_faults))
        .route("/_sim/task-outcome", post(add_task_outcome))
        .route("/_sim/latency", post(set_latency))
        .route("/_sim/expire-tickets", post(expire_tickets))
        .route("/_sim/hold-tasks", post(hold_tasks))
        .route("/_sim/task-duration", post(set_task_duration))
        .route("/_sim/lock-timeout", post(set_lock_timeout))
        .layer(axum::middleware::from_fn_with_state(app, require_token))
}

/// Token check for admin routes.
pub async fn require_token(State(app): State<AppState>, req: Request, next: Next) -> Response {
    match app.auth.authenticate(req.headers(), &Method::GET, true) {
        Ok(user) if user.tokenid.is_some() => next.run(req).await,
        _ => ApiError::Unauthorized("admin routes need the API token".into()).into_response(),
    }
}

async fn violations(State(app): State<AppState>) -> ApiResult {
    Ok(data(app.violations.snapshot()))
}

async fn clear_violations(State(app): State<AppState>) -> ApiResult {
    app.violations.clear();
    Ok(data(serde_json::Value::Null))
}

async fn state(State(app): State<AppState>) -> ApiResult {
    let st = app.state.lock();
    let storages: serde_json::Map<String, serde_json::Value> = st
        .storages
        .values()
        .map(|s| (s.id.clone(), json!(s.list(None, None).unwrap_or_default())))
        .collect();
    Ok(data(json!({
        "node": st.node,
        "vms": st.vms.values().collect::<Vec<_>>(),
        "tasks": st.tasks.values().collect::<Vec<_>>(),
        "volumes": storages,
    })))
}

async fn add_fault(State(app): State<AppState>, Json(rule): Json<FaultRule>) -> ApiResult {
    app.faults.add_rule(rule);
    Ok(data(serde_json::Value::Null))
}

async fn clear_faults(State(app): State<AppState>) -> ApiResult {
    app.faults.clear();
    Ok(data(serde_json::Value::Null))
}

async fn add_task_outcome(
    State(app): State<AppState>,
    Json(rule): Json<TaskOutcomeRule>,
) -> ApiResult {
    app.faults.add_task_rule(rule);
    Ok(data(serde_json::Value::Null))
}

#[derive(Deserialize)]
struct Latency {
    ms: u64,
}

async fn set_latency(State(app): State<AppState>, Json(l): Json<Latency>) -> ApiResult {
    app.faults.set_latency(Duration::from_millis(l.ms));
    Ok(data(serde_json::Value::Null))
}

async fn expire_tickets(State(app): State<AppState>) -> ApiResult {
    app.auth.expire_tickets();
    Ok(data(serde_json::Value::Null))
}

#[derive(Deserialize)]
struct Hold {
    hold: bool,
}

async fn hold_tasks(State(app): State<AppState>, Json(h): Json<Hold>) -> ApiResult {
    app.state.hold_tasks(h.hold);
    Ok(data(serde_json::Value::Null))
}

#[derive(Deserialize)]
struct TaskDuration {
    /// `qmclone`, `imgcopy`, …; absent: every task without its own.
    #[serde(default)]
    task_type: Option<String>,
    ms: u64,
}

async fn set_task_duration(State(app): State<AppState>, Json(d): Json<TaskDuration>) -> ApiResult {
    app.state
        .set_task_duration(d.task_type.as_deref(), Duration::from_millis(d.ms));
    Ok(data(serde_json::Value::Null))
}

async fn set_lock_timeout(State(app): State<AppState>, Json(l): Json<Latency>) -> ApiResult {
    app.state.lock().lock_timeout = Duration::from_millis(l.ms);
    Ok(data(serde_json::Value::Null))
}
