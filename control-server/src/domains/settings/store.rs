//! SQL of the settings domain: `settings_documents`, one JSON document per
//! tenant and root key.

use sqlx::FromRow;

use crate::db::{Read, StoreResult, TenantScope, Write};

#[derive(Debug, Clone, FromRow)]
pub struct DocumentRow {
    pub root: String,
    /// JSON text.
    pub data: String,
    pub updated_at: i64,
    pub updated_by: Option<String>,
}

/// Every document of the tenant, by root.
pub async fn all(mut r: impl Read, scope: &TenantScope) -> StoreResult<Vec<DocumentRow>> {
    Ok(sqlx::query_as(
        "SELECT root, data, updated_at, updated_by FROM settings_documents
         WHERE tenant_id = $1 ORDER BY root",
    )
    .bind(scope.tenant())
    .fetch_all(r.exec())
    .await?)
}

/// One root's document.
pub async fn get(
    mut r: impl Read,
    scope: &TenantScope,
    root: &str,
) -> StoreResult<Option<DocumentRow>> {
    Ok(sqlx::query_as(
        "SELECT root, data, updated_at, updated_by FROM settings_documents
         WHERE tenant_id = $1 AND root = $2",
    )
    .bind(scope.tenant())
    .bind(root)
    .fetch_optional(r.exec())
    .await?)
}

/// Lock one root's row for the rest of the transaction and return its JSON
/// (`"null"` when it did not exist: a placeholder row is inserted, which the
/// transaction's rollback removes again). One statement on both backends:
/// the conflicting upsert takes the row lock on PostgreSQL, so concurrent
/// writes to the same root are serialized instead of losing each other's
/// merge.
pub async fn lock(
    mut w: impl Write,
    scope: &TenantScope,
    root: &str,
    now: i64,
) -> StoreResult<String> {
    let (data,): (String,) = sqlx::query_as(
        "INSERT INTO settings_documents (tenant_id, root, data, updated_at)
         VALUES ($1, $2, 'null', $3)
         ON CONFLICT (tenant_id, root) DO UPDATE SET root = settings_documents.root
         RETURNING data",
    )
    .bind(scope.tenant())
    .bind(root)
    .bind(now)
    .fetch_one(w.exec())
    .await?;
    Ok(data)
}

/// Store a root's new document (its row is locked by [`lock`]).
pub async fn save(
    mut w: impl Write,
    scope: &TenantScope,
    root: &str,
    data: &str,
    now: i64,
    by: &str,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE settings_documents SET data = $3, updated_at = $4, updated_by = $5
         WHERE tenant_id = $1 AND root = $2",
    )
    .bind(scope.tenant())
    .bind(root)
    .bind(data)
    .bind(now)
    .bind(by)
    .execute(w.exec())
    .await?;
    Ok(())
}
