//! HTTP handlers and DTOs of theme assets.

use axum::extract::State;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::service::{
    AssetList, AssetView, CompleteInput, DeletedAsset, PresignAnswer, PresignInput,
};
use crate::auth::Identity;
use crate::db::ids::ThemeAssetId;
use crate::domains::vms::routes::text_enum_schema;
use crate::http::envelope::{created, ok, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::{ApiJson, ApiPath};
use crate::objects::BaseUrl;
use crate::state::AppState;

/// `pending`, `ready`, `failed` or `deleted`.
pub fn asset_status_schema() -> utoipa::openapi::Object {
    text_enum_schema(&["pending", "ready", "failed", "deleted"], false)
}

fn mime_schema() -> utoipa::openapi::Object {
    text_enum_schema(super::service::MIME_TYPES, false)
}

/// The tenant's theme assets that are not deleted, newest first (viewer+);
/// ready ones carry a download URL valid 60-300 s.
#[utoipa::path(get, path = "/api/v1/theme-assets", tag = "theme-assets", security(("bearer" = [])),
    responses((status = 200, body = Envelope<AssetList>),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 503, description = "OBJECT_STORE_UNAVAILABLE, DATABASE_ERROR", body = ErrorEnvelope)))]
pub async fn list_assets(
    State(state): State<AppState>,
    identity: Identity,
    base: BaseUrl,
) -> Result<Reply<AssetList>, ApiError> {
    Ok(ok(state.theme.list(&identity, &base).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresignRequest {
    /// The image's file name (1-255 characters; sanitised into the object key).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]{1,255}$"
    )]
    pub filename: String,
    #[schema(schema_with = mime_schema)]
    pub mime_type: String,
    /// 1..20971520 (20 MiB).
    #[schema(minimum = 1, maximum = 20971520)]
    pub size_bytes: i64,
}

/// Start an upload (operator+): a pending asset and a URL to `PUT` the
/// image to (with `Content-Type: <mime_type>`, at most `size_bytes`),
/// valid 60-300 s. The object key is
/// `theme-assets/<tenant>/<asset_id>-<sanitised filename>`.
#[utoipa::path(post, path = "/api/v1/theme-assets/presign-upload", tag = "theme-assets", security(("bearer" = [])),
    request_body = PresignRequest,
    responses((status = 201, body = Envelope<PresignAnswer>),
              (status = 400, description = "THEME_ASSET_INVALID_PRESIGN_BODY (`details.fields`), VALIDATION_ERROR (wrong JSON types)", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 503, description = "OBJECT_STORE_UNAVAILABLE, DATABASE_ERROR", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn presign_upload(
    State(state): State<AppState>,
    identity: Identity,
    base: BaseUrl,
    ApiJson(req): ApiJson<PresignRequest>,
) -> Result<Reply<PresignAnswer>, ApiError> {
    let input = PresignInput {
        filename: req.filename,
        mime_type: req.mime_type,
        size_bytes: req.size_bytes,
    };
    Ok(created(
        state.theme.presign_upload(&identity, &base, input).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    #[schema(value_type = String)]
    pub asset_id: ThemeAssetId,
    #[schema(minimum = 1, maximum = 8192)]
    pub width: Option<i64>,
    #[schema(minimum = 1, maximum = 8192)]
    pub height: Option<i64>,
}

/// Finish an upload (operator+): the object must be in the store
/// (`THEME_ASSET_UPLOAD_MISSING` otherwise; the asset stays pending), have
/// the declared size and be the declared image type
/// (`THEME_ASSET_UPLOAD_INVALID` otherwise; the asset becomes `failed` —
/// upload again to its URL and complete again). Answers the ready asset
/// with its download URL.
#[utoipa::path(post, path = "/api/v1/theme-assets/complete", tag = "theme-assets", security(("bearer" = [])),
    request_body = CompleteRequest,
    responses((status = 200, body = Envelope<AssetView>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "THEME_ASSET_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "ASSET_DELETED, THEME_ASSET_UPLOAD_MISSING, THEME_ASSET_UPLOAD_INVALID", body = ErrorEnvelope),
              (status = 503, description = "OBJECT_STORE_UNAVAILABLE, DATABASE_ERROR", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn complete(
    State(state): State<AppState>,
    identity: Identity,
    base: BaseUrl,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> Result<Reply<AssetView>, ApiError> {
    let input = CompleteInput {
        asset_id: req.asset_id,
        width: req.width,
        height: req.height,
    };
    Ok(ok(state.theme.complete(&identity, &base, input).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AssetPath {
    /// The asset id.
    #[param(value_type = String)]
    pub id: ThemeAssetId,
}

/// Delete a theme asset (operator+; soft: it leaves the list, the object
/// is kept).
#[utoipa::path(delete, path = "/api/v1/theme-assets/{id}", tag = "theme-assets", security(("bearer" = [])),
    params(AssetPath),
    responses((status = 200, body = Envelope<DeletedAsset>),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "THEME_ASSET_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn delete_asset(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<AssetPath>,
) -> Result<Reply<DeletedAsset>, ApiError> {
    Ok(ok(state.theme.delete(&identity, &p.id).await?))
}
