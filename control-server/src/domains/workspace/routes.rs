//! HTTP handlers of the workspace, and their OpenAPI description (one literal
//! path per kind, built from the kind declarations in `store`).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use serde_json::{json, Map, Value};

use super::store::{WorkspaceKind, CALENDAR, KANBAN, NOTES};
use super::WorkspaceError;
use crate::auth::Identity;
use crate::db::ids::WorkspaceItemId;
use crate::http::codes;
use crate::http::envelope::{created, ok, paged, Reply};
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::records::{self, ApiShape};
use crate::state::AppState;

fn kind(k: &str) -> Result<WorkspaceKind, ApiError> {
    k.parse()
        .map_err(|_| WorkspaceError::InvalidKind(k.chars().take(64).collect()).into())
}

/// `{kind}/{id}` from the path; an undecodable path is "not found".
fn kind_and_id(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(WorkspaceKind, WorkspaceItemId), ApiError> {
    let Path((k, id)) = path.map_err(|_| ApiError::from(WorkspaceError::NotFound))?;
    Ok((kind(&k)?, WorkspaceItemId::from(id)))
}

/// `GET /api/v1/workspace/{kind}`: one page (list kit).
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<Value>>, ApiError> {
    let Path(k) = path.map_err(|_| ApiError::from(WorkspaceError::NotFound))?;
    let kind = kind(&k)?;
    let params =
        records::parse_list_query(kind.spec(), state.db.backend(), q.as_deref().unwrap_or(""))?;
    Ok(paged(state.workspace.list(&identity, kind, &params).await?))
}

/// `GET /api/v1/workspace/{kind}/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Reply<Value>, ApiError> {
    let (kind, id) = kind_and_id(path)?;
    Ok(ok(state.workspace.get(&identity, kind, &id).await?))
}

/// `POST /api/v1/workspace/{kind}` (201).
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Reply<Value>, ApiError> {
    let Path(k) = path.map_err(|_| ApiError::from(WorkspaceError::NotFound))?;
    let kind = kind(&k)?;
    Ok(created(
        state.workspace.create(&identity, kind, body).await?,
    ))
}

/// `PATCH /api/v1/workspace/{kind}/{id}`.
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<(String, String)>, PathRejection>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Reply<Value>, ApiError> {
    let (kind, id) = kind_and_id(path)?;
    Ok(ok(state
        .workspace
        .update(&identity, kind, &id, body)
        .await?))
}

/// `DELETE /api/v1/workspace/{kind}/{id}` → `{id, deleted: true}`.
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Reply<Value>, ApiError> {
    let (kind, id) = kind_and_id(path)?;
    state.workspace.delete(&identity, kind, &id).await?;
    Ok(ok(json!({"id": id, "deleted": true})))
}

/// The OpenAPI paths of this domain.
pub fn openapi() -> utoipa::openapi::OpenApi {
    records::openapi(records::openapi_document(
        &ApiShape {
            base: "/api/v1/workspace",
            tag: "workspace",
            kinds: &[&NOTES, &CALENDAR, &KANBAN],
            put: false,
            not_found_code: codes::WORKSPACE_ENTITY_NOT_FOUND,
            invalid_kind_code: codes::WORKSPACE_INVALID_KIND,
        },
        Map::new(),
    ))
}

#[cfg(test)]
mod tests {
    /// The document built as JSON survives utoipa's types unchanged (no
    /// constraint silently dropped on the way into the served OpenAPI).
    #[test]
    fn openapi_round_trips_through_utoipa() {
        let doc = serde_json::to_value(super::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 6, "{paths:?}");
        let text = doc.to_string();
        for needle in [
            "maxLength",
            "pattern",
            "minProperties",
            "additionalProperties",
            "minimum",
            "enum",
            "date-time",
            "ErrorEnvelope",
        ] {
            assert!(text.contains(needle), "{needle} lost");
        }
    }
}
