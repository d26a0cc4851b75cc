//! `tenants`: the unit of isolation. Every other table carries `tenant_id`.

use sqlx::{AnyPool, FromRow};

use super::{now_ms, StoreError, StoreResult};

#[derive(Debug, Clone, FromRow)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

pub async fn create(pool: &AnyPool, id: &str, name: &str) -> StoreResult<TenantRow> {
    sqlx::query_as::<_, TenantRow>(
        "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)
         RETURNING id, name, created_at, disabled_at",
    )
    .bind(id)
    .bind(name)
    .bind(now_ms())
    .fetch_one(pool)
    .await
    .map_err(|e| StoreError::unique_or(e, format!("tenant `{id}` already exists")))
}

pub async fn get(pool: &AnyPool, id: &str) -> StoreResult<Option<TenantRow>> {
    Ok(sqlx::query_as::<_, TenantRow>(
        "SELECT id, name, created_at, disabled_at FROM tenants WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub async fn list(pool: &AnyPool) -> StoreResult<Vec<TenantRow>> {
    Ok(sqlx::query_as::<_, TenantRow>(
        "SELECT id, name, created_at, disabled_at FROM tenants ORDER BY id",
    )
    .fetch_all(pool)
    .await?)
}

pub async fn count(pool: &AnyPool) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tenants")
        .fetch_one(pool)
        .await?;
    Ok(n)
}
