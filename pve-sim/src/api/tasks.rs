//! `/nodes/{node}/tasks/{upid}/status` and `/log`.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::error::{data, ApiError, ApiResult};
use super::AppState;
use crate::params::Params;
use crate::state::{Task, TaskState};

fn find(app: &AppState, p: &Params) -> Result<Task, ApiError> {
    let st = app.state.lock();
    st.check_node(p.get("node").unwrap_or_default())?;
    let upid = p.get("upid").unwrap_or_default();
    if !upid.starts_with("UPID:") {
        return Err(ApiError::failed(format!(
            "unable to parse worker upid '{upid}'"
        )));
    }
    st.tasks
        .get(upid)
        .cloned()
        .ok_or_else(|| ApiError::failed(format!("no such task '{upid}'")))
}

pub async fn status(State(app): State<AppState>, Extension(p): Extension<Params>) -> ApiResult {
    let task = find(&app, &p)?;
    let mut v = json!({
        "upid": task.upid,
        "node": task.node,
        "pid": task.pid,
        "pstart": task.pstart,
        "starttime": task.starttime,
        "type": task.task_type,
        "id": task.id,
        "user": task.user.split('!').next().unwrap_or(&task.user),
        "status": match task.status { TaskState::Running => "running", TaskState::Stopped => "stopped" },
    });
    if let Some((_, token)) = task.user.split_once('!') {
        v["tokenid"] = json!(token);
    }
    if let Some(exit) = &task.exitstatus {
        v["exitstatus"] = json!(exit);
    }
    Ok(data(v))
}

pub async fn log(State(app): State<AppState>, Extension(p): Extension<Params>) -> ApiResult {
    let task = find(&app, &p)?;
    let start = p.u64("start").unwrap_or(0) as usize;
    let limit = p.u64("limit").unwrap_or(50) as usize;
    let mut lines = vec![format!("task started by {}", task.user)];
    lines.extend(task.log.iter().cloned());
    let total = lines.len();
    let page: Vec<Value> = lines
        .into_iter()
        .enumerate()
        .skip(start)
        .take(limit)
        .map(|(i, t)| json!({"n": i + 1, "t": t}))
        .collect();
    Ok(Json(json!({"data": page, "total": total})).into_response())
}
