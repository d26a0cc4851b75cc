//! `users`: people who sign in. E-mail is unique across the server, so a
//! login needs no tenant; every other read is confined to a tenant.

use sqlx::{AnyPool, FromRow};

use super::{new_id, now_ms, StoreError, StoreResult, TenantScope};

const COLUMNS: &str = "id, tenant_id, email, role, platform_role, password_hash, \
                       created_at, updated_at, disabled_at, last_login_at";

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: String,
    pub platform_role: Option<String>,
    pub password_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub disabled_at: Option<i64>,
    pub last_login_at: Option<i64>,
}

pub struct NewUser<'a> {
    pub tenant_id: &'a str,
    pub email: &'a str,
    pub role: &'a str,
    pub platform_role: Option<&'a str>,
    pub password_hash: Option<&'a str>,
}

pub async fn insert(pool: &AnyPool, u: NewUser<'_>) -> StoreResult<UserRow> {
    let now = now_ms();
    sqlx::query_as::<_, UserRow>(&format!(
        "INSERT INTO users (id, tenant_id, email, role, platform_role, password_hash, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {COLUMNS}"
    ))
    .bind(new_id())
    .bind(u.tenant_id)
    .bind(u.email)
    .bind(u.role)
    .bind(u.platform_role)
    .bind(u.password_hash)
    .bind(now)
    .fetch_one(pool)
    .await
    .map_err(|e| StoreError::unique_or(e, format!("a user with e-mail `{}` already exists", u.email)))
}

/// Server-wide lookup by e-mail (login and the admin CLI only).
pub async fn find_by_email(pool: &AnyPool, email: &str) -> StoreResult<Option<UserRow>> {
    Ok(
        sqlx::query_as::<_, UserRow>(&format!("SELECT {COLUMNS} FROM users WHERE email = $1"))
            .bind(email)
            .fetch_optional(pool)
            .await?,
    )
}

pub async fn get(pool: &AnyPool, scope: &TenantScope, id: &str) -> StoreResult<Option<UserRow>> {
    Ok(sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant_id())
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub async fn list(pool: &AnyPool, scope: &TenantScope) -> StoreResult<Vec<UserRow>> {
    Ok(sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY email"
    ))
    .bind(scope.tenant_id())
    .fetch_all(pool)
    .await?)
}

/// Every user of the server, optionally of one tenant (admin CLI).
pub async fn list_all(pool: &AnyPool, tenant: Option<&str>) -> StoreResult<Vec<UserRow>> {
    let sql = match tenant {
        Some(_) => {
            format!("SELECT {COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY tenant_id, email")
        }
        None => format!("SELECT {COLUMNS} FROM users ORDER BY tenant_id, email"),
    };
    let mut q = sqlx::query_as::<_, UserRow>(&sql);
    if let Some(t) = tenant {
        q = q.bind(t);
    }
    Ok(q.fetch_all(pool).await?)
}

pub async fn update_roles(
    pool: &AnyPool,
    scope: &TenantScope,
    id: &str,
    role: &str,
    platform_role: Option<&str>,
) -> StoreResult<UserRow> {
    sqlx::query_as::<_, UserRow>(&format!(
        "UPDATE users SET role = $1, platform_role = $2, updated_at = $3
         WHERE tenant_id = $4 AND id = $5 RETURNING {COLUMNS}"
    ))
    .bind(role)
    .bind(platform_role)
    .bind(now_ms())
    .bind(scope.tenant_id())
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("user"))
}

pub async fn set_disabled(
    pool: &AnyPool,
    scope: &TenantScope,
    id: &str,
    disabled: bool,
) -> StoreResult<UserRow> {
    let now = now_ms();
    sqlx::query_as::<_, UserRow>(&format!(
        "UPDATE users SET disabled_at = $1, updated_at = $2
         WHERE tenant_id = $3 AND id = $4 RETURNING {COLUMNS}"
    ))
    .bind(if disabled { Some(now) } else { None })
    .bind(now)
    .bind(scope.tenant_id())
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("user"))
}

pub async fn set_password_hash(pool: &AnyPool, id: &str, hash: &str) -> StoreResult<()> {
    let n = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now_ms())
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound("user"));
    }
    Ok(())
}

pub async fn touch_login(pool: &AnyPool, id: &str) -> StoreResult<()> {
    sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn count(pool: &AnyPool) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await?;
    Ok(n)
}
