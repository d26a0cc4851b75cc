//! HTTP handlers of resources, and their OpenAPI description (one literal
//! path per kind, built from the kind declarations in `store`).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use serde_json::{json, Map, Value};

use super::service::ProxyPassword;
use super::store::{ResourceKind, LICENSES, PROXIES, SUBSCRIPTIONS};
use super::ResourceError;
use crate::auth::Identity;
use crate::db::ids::ResourceId;
use crate::http::codes;
use crate::http::envelope::{created, ok, paged, Reply};
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::records::{self, ApiShape};
use crate::state::AppState;

fn kind(k: &str) -> Result<ResourceKind, ApiError> {
    k.parse()
        .map_err(|_| ResourceError::InvalidKind(k.chars().take(64).collect()).into())
}

/// `{kind}/{id}` from the path; an undecodable path is "not found".
fn kind_and_id(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(ResourceKind, ResourceId), ApiError> {
    let Path((k, id)) = path.map_err(|_| ApiError::from(ResourceError::NotFound))?;
    Ok((kind(&k)?, ResourceId::from(id)))
}

/// `GET /api/v1/resources/{kind}`: one page (list kit).
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<Value>>, ApiError> {
    let Path(k) = path.map_err(|_| ApiError::from(ResourceError::NotFound))?;
    let kind = kind(&k)?;
    let params =
        records::parse_list_query(kind.spec(), state.db.backend(), q.as_deref().unwrap_or(""))?;
    Ok(paged(state.resources.list(&identity, kind, &params).await?))
}

/// `GET /api/v1/resources/{kind}/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Reply<Value>, ApiError> {
    let (kind, id) = kind_and_id(path)?;
    Ok(ok(state.resources.get(&identity, kind, &id).await?))
}

/// `POST /api/v1/resources/{kind}` (201).
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Reply<Value>, ApiError> {
    let Path(k) = path.map_err(|_| ApiError::from(ResourceError::NotFound))?;
    let kind = kind(&k)?;
    Ok(created(
        state.resources.create(&identity, kind, body).await?,
    ))
}

/// `PATCH` (and `PUT`, its alias) `/api/v1/resources/{kind}/{id}`.
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<(String, String)>, PathRejection>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Reply<Value>, ApiError> {
    let (kind, id) = kind_and_id(path)?;
    Ok(ok(state
        .resources
        .update(&identity, kind, &id, body)
        .await?))
}

/// `DELETE /api/v1/resources/{kind}/{id}` → `{id, deleted: true}`.
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Reply<Value>, ApiError> {
    let (kind, id) = kind_and_id(path)?;
    state.resources.delete(&identity, kind, &id).await?;
    Ok(ok(json!({"id": id, "deleted": true})))
}

/// `GET /api/v1/resources/proxies/{id}/password` (admin).
#[tracing::instrument(skip_all)]
pub async fn proxy_password(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<String>, PathRejection>,
) -> Result<Reply<ProxyPassword>, ApiError> {
    let Path(id) = path.map_err(|_| ApiError::from(ResourceError::NotFound))?;
    Ok(ok(state
        .resources
        .proxy_password(&identity, &ResourceId::from(id))
        .await?))
}

/// The OpenAPI paths of this domain.
pub fn openapi() -> utoipa::openapi::OpenApi {
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
    records::openapi(records::openapi_document(
        &ApiShape {
            base: "/api/v1/resources",
            tag: "resources",
            kinds: &[&LICENSES, &PROXIES, &SUBSCRIPTIONS],
            put: true,
            not_found_code: codes::RESOURCE_NOT_FOUND,
            invalid_kind_code: codes::RESOURCES_INVALID_KIND,
        },
        extra,
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
            "oneOf",
            "date-time",
            "ErrorEnvelope",
        ] {
            assert!(text.contains(needle), "{needle} lost");
        }
    }
}
