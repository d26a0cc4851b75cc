//! `/access/ticket`.

use axum::extract::State;
use axum::Extension;
use serde_json::json;

use super::error::{data, ApiError, ApiResult};
use super::AppState;
use crate::params::Params;

/// `POST /access/ticket`: password (or ticket renewal) login.
pub async fn create_ticket(
    State(app): State<AppState>,
    Extension(p): Extension<Params>,
) -> ApiResult {
    let username = p.get("username").unwrap_or_default();
    let password = p.get("password").unwrap_or_default();
    let login = app
        .auth
        .login(username, p.get("realm"), password)
        .ok_or_else(|| ApiError::Unauthorized("authentication failure".into()))?;
    Ok(data(json!({
        "username": login.username,
        "ticket": login.ticket,
        "CSRFPreventionToken": login.csrf,
        "cap": {
            "vms": {"VM.Allocate": 1, "VM.Config.Disk": 1, "VM.PowerMgmt": 1, "VM.Clone": 1},
            "storage": {"Datastore.AllocateSpace": 1, "Datastore.Audit": 1},
            "nodes": {"Sys.Audit": 1},
        },
    })))
}

/// `GET /access/ticket`: only exists for the login form; returns null.
pub async fn ticket_form() -> ApiResult {
    Ok(data(serde_json::Value::Null))
}
