//! The kit's HTTP handlers, generic over the domain: parse the kind and id
//! from the path, call one service function, wrap the answer. An
//! undecodable path is "not found"; an unknown kind is the domain's
//! `…_INVALID_KIND`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use serde_json::{json, Map, Value};

use super::{RecordError, RecordsDomain};
use crate::auth::Identity;
use crate::http::envelope::{created, ok, paged, Reply};
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::records::{self, ApiShape, KindSpec};
use crate::state::AppState;

/// A service error as the domain answers it.
pub fn api_error<D: RecordsDomain>(e: RecordError) -> ApiError {
    e.into_api(D::api())
}

/// A body the extractor refused (a string with NUL, duplicate keys, …)
/// answers the domain's invalid-body code, as the service's own checks do
/// (malformed JSON, a wrong content type or a body over the limit keep
/// theirs).
fn invalid_body<D: RecordsDomain>(e: ApiError) -> ApiError {
    e.recode_validation(D::api().shape.invalid_body_code)
}

/// `{kind}` from the path.
fn kind<D: RecordsDomain>(
    path: Result<Path<String>, PathRejection>,
) -> Result<&'static KindSpec, ApiError> {
    let Path(k) = path.map_err(|_| api_error::<D>(RecordError::NotFound))?;
    D::api().kind(&k).map_err(api_error::<D>)
}

/// `{kind}/{id}` from the path.
fn kind_and_id<D: RecordsDomain>(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(&'static KindSpec, D::Id), ApiError> {
    let Path((k, id)) = path.map_err(|_| api_error::<D>(RecordError::NotFound))?;
    let spec = D::api().kind(&k).map_err(api_error::<D>)?;
    Ok((spec, D::Id::from(id)))
}

/// `GET {base}/{kind}`: one page (list kit).
#[tracing::instrument(skip_all)]
pub async fn list<D: RecordsDomain>(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<Value>>, ApiError> {
    let spec = kind::<D>(path)?;
    let code = D::api().shape.invalid_list_query_code;
    let params = records::parse_list_query(spec, state.db.backend(), q.as_deref().unwrap_or(""))
        .map_err(|f| ApiError::validation(f).recode_validation(code))?;
    let page = D::service(&state).list(&identity, spec, &params).await;
    Ok(paged(
        page.map_err(|e| api_error::<D>(e).recode_validation(code))?,
    ))
}

/// `GET {base}/{kind}/{id}`.
pub async fn get_one<D: RecordsDomain>(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Reply<Value>, ApiError> {
    let (spec, id) = kind_and_id::<D>(path)?;
    let record = D::service(&state).get(&identity, spec, &id).await;
    Ok(ok(record.map_err(api_error::<D>)?))
}

/// `POST {base}/{kind}` (201).
#[tracing::instrument(skip_all)]
pub async fn create<D: RecordsDomain>(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<String>, PathRejection>,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Reply<Value>, ApiError> {
    let spec = kind::<D>(path)?;
    let ApiJson(body) = body.map_err(invalid_body::<D>)?;
    let record = D::service(&state).create(&identity, spec, body).await;
    Ok(created(record.map_err(api_error::<D>)?))
}

/// `PATCH` (and `PUT`, its alias where the domain has it) `{base}/{kind}/{id}`.
#[tracing::instrument(skip_all)]
pub async fn update<D: RecordsDomain>(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Reply<Value>, ApiError> {
    let (spec, id) = kind_and_id::<D>(path)?;
    let ApiJson(body) = body.map_err(invalid_body::<D>)?;
    let record = D::service(&state).update(&identity, spec, &id, body).await;
    Ok(ok(record.map_err(api_error::<D>)?))
}

/// `DELETE {base}/{kind}/{id}` → `{id, deleted: true}`.
#[tracing::instrument(skip_all)]
pub async fn delete<D: RecordsDomain>(
    State(state): State<AppState>,
    identity: Identity,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Reply<Value>, ApiError> {
    let (spec, id) = kind_and_id::<D>(path)?;
    let done = D::service(&state).delete(&identity, spec, &id).await;
    done.map_err(api_error::<D>)?;
    Ok(ok(json!({"id": id, "deleted": true})))
}

/// The OpenAPI paths of a domain (one literal path per kind, built from
/// the kind declarations), plus the domain's own `extra_paths`.
pub fn openapi(shape: &ApiShape<'_>, extra_paths: Map<String, Value>) -> utoipa::openapi::OpenApi {
    records::openapi(records::openapi_document(shape, extra_paths))
}
