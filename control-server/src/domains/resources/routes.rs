//! The handler resources adds to the records kit: a proxy's password
//! (admin), and its OpenAPI path.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde_json::{json, Map, Value};

use super::store::PROXIES;
use super::Resources;
use crate::auth::Identity;
use crate::db::ids::ResourceId;
use crate::domains::records_kit::routes::api_error;
use crate::domains::records_kit::RecordError;
use crate::http::envelope::{ok, Reply};
use crate::http::error::ApiError;
use crate::records;
use crate::state::AppState;

/// What `GET …/proxies/{id}/password` answers.
#[derive(Debug, serde::Serialize)]
pub struct ProxyPassword {
    pub id: ResourceId,
    /// `null` when the proxy has no password.
    pub password: Option<String>,
}

/// `GET /api/v1/resources/proxies/{id}/password` (admin).
#[tracing::instrument(skip_all)]
pub async fn proxy_password(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<String>, PathRejection>,
) -> Result<Reply<ProxyPassword>, ApiError> {
    let Path(id) = path.map_err(|_| api_error::<Resources>(RecordError::NotFound))?;
    let id = ResourceId::from(id);
    let password = state.resources.secret(&identity, &PROXIES, &id).await;
    Ok(ok(ProxyPassword {
        password: password.map_err(api_error::<Resources>)?,
        id,
    }))
}

/// The OpenAPI path of [`proxy_password`].
pub fn extra_paths() -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert(
        "/api/v1/resources/proxies/{id}/password".into(),
        json!({"get": {
            "tags": ["resources"], "operationId": "get_resources_proxy_password",
            "summary": "Read a proxy's password in clear (admin)",
            "description": "Passwords are stored encrypted (AES-256-GCM under the server data key) and never appear in lists or reads, which carry `has_password` instead.",
            "security": [{"bearer": []}],
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {
                "200": records::ok_response(json!({"type": "object", "required": ["id", "password"],
                    "properties": {"id": {"type": "string"}, "password": {"type": ["string", "null"]}}})),
                "404": records::error_response("RESOURCE_NOT_FOUND: no such proxy in the caller's tenant"),
            }
        }}),
    );
    extra
}
