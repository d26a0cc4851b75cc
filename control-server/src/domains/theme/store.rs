//! SQL of theme assets: `theme_background_assets`.

use sqlx::FromRow;

use crate::db::ids::{TenantId, ThemeAssetId, UserId};
use crate::db::text_enum::text_enum;
use crate::db::{Read, StoreError, StoreResult, TenantScope, Write};

text_enum!(
    /// A theme asset's status: `pending` until its upload is completed and
    /// checked (`ready`) or refused (`failed`); `deleted` is a soft delete.
    AssetStatus, "theme asset status" {
        Pending => "pending",
        Ready => "ready",
        Failed => "failed",
        Deleted => "deleted",
    }
);

pub const COLUMNS: &str = "id, tenant_id, created_by, object_key, filename, mime_type, \
    size_bytes, width, height, status, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct AssetRow {
    pub id: ThemeAssetId,
    pub tenant_id: TenantId,
    pub created_by: UserId,
    pub object_key: String,
    pub filename: String,
    pub mime_type: String,
    pub size_bytes: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    #[sqlx(try_from = "String")]
    pub status: AssetStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct NewAsset<'a> {
    pub id: &'a ThemeAssetId,
    pub by: &'a UserId,
    pub object_key: &'a str,
    pub filename: &'a str,
    pub mime_type: &'a str,
    pub size_bytes: i64,
    pub now: i64,
}

pub async fn insert(
    mut w: impl Write,
    scope: &TenantScope,
    a: NewAsset<'_>,
) -> StoreResult<AssetRow> {
    sqlx::query_as::<_, AssetRow>(&format!(
        "INSERT INTO theme_background_assets (id, tenant_id, created_by, object_key, filename,
            mime_type, size_bytes, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8) RETURNING {COLUMNS}"
    ))
    .bind(a.id.as_str())
    .bind(scope.tenant())
    .bind(a.by.as_str())
    .bind(a.object_key)
    .bind(a.filename)
    .bind(a.mime_type)
    .bind(a.size_bytes)
    .bind(a.now)
    .fetch_one(w.exec())
    .await
    .map_err(|e| StoreError::unique_or(e, "an asset with this object key exists"))
}

pub async fn get(
    mut r: impl Read,
    scope: &TenantScope,
    id: &ThemeAssetId,
) -> StoreResult<Option<AssetRow>> {
    Ok(sqlx::query_as::<_, AssetRow>(&format!(
        "SELECT {COLUMNS} FROM theme_background_assets WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

/// The tenant's assets that are not deleted, newest first.
pub async fn list_live(mut r: impl Read, scope: &TenantScope) -> StoreResult<Vec<AssetRow>> {
    Ok(sqlx::query_as::<_, AssetRow>(&format!(
        "SELECT {COLUMNS} FROM theme_background_assets
         WHERE tenant_id = $1 AND status <> 'deleted' ORDER BY created_at DESC, id DESC"
    ))
    .bind(scope.tenant())
    .fetch_all(r.exec())
    .await?)
}

/// Set the status (and, when given, the dimensions) unless the asset was
/// deleted meanwhile (no row).
pub async fn set_status(
    mut w: impl Write,
    scope: &TenantScope,
    id: &ThemeAssetId,
    status: AssetStatus,
    dims: (Option<i64>, Option<i64>),
    now: i64,
) -> StoreResult<Option<AssetRow>> {
    Ok(sqlx::query_as::<_, AssetRow>(&format!(
        "UPDATE theme_background_assets SET status = $1, width = COALESCE($2, width),
            height = COALESCE($3, height), updated_at = $4
         WHERE tenant_id = $5 AND id = $6 AND status <> 'deleted' RETURNING {COLUMNS}"
    ))
    .bind(status.as_str())
    .bind(dims.0)
    .bind(dims.1)
    .bind(now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

/// Soft delete (no row: absent).
pub async fn soft_delete(
    mut w: impl Write,
    scope: &TenantScope,
    id: &ThemeAssetId,
    now: i64,
) -> StoreResult<Option<AssetRow>> {
    Ok(sqlx::query_as::<_, AssetRow>(&format!(
        "UPDATE theme_background_assets SET status = 'deleted',
            updated_at = CASE WHEN status = 'deleted' THEN updated_at ELSE $1 END
         WHERE tenant_id = $2 AND id = $3 RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}
