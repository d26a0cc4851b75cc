//! `auth_tokens`: opaque bearer tokens (login sessions and named API tokens).
//! Only a SHA-256 of each token is stored, plus a short hint for humans.

use sqlx::{AnyPool, FromRow};

use super::users::UserRow;
use super::{new_id, now_ms, StoreError, StoreResult, TenantScope};

const COLUMNS: &str = "id, tenant_id, user_id, kind, name, token_hint, created_at, \
                       expires_at, last_used_at, revoked_at";

/// How stale `last_used_at` may get before a request refreshes it.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub kind: String,
    pub name: Option<String>,
    pub token_hint: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub struct NewToken<'a> {
    pub tenant_id: &'a str,
    pub user_id: &'a str,
    pub kind: &'a str,
    pub name: Option<&'a str>,
    pub token_hash: &'a str,
    pub token_hint: &'a str,
    pub expires_at: Option<i64>,
    pub created_ip: Option<&'a str>,
}

pub async fn insert(pool: &AnyPool, t: NewToken<'_>) -> StoreResult<TokenRow> {
    Ok(sqlx::query_as::<_, TokenRow>(&format!(
        "INSERT INTO auth_tokens (id, tenant_id, user_id, kind, name, token_hash, token_hint, created_at, expires_at, created_ip)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    ))
    .bind(new_id())
    .bind(t.tenant_id)
    .bind(t.user_id)
    .bind(t.kind)
    .bind(t.name)
    .bind(t.token_hash)
    .bind(t.token_hint)
    .bind(now_ms())
    .bind(t.expires_at)
    .bind(t.created_ip)
    .fetch_one(pool)
    .await?)
}

#[derive(Debug, Clone, FromRow)]
struct ActiveTokenRow {
    #[sqlx(flatten)]
    token: TokenRow,
    u_id: String,
    u_tenant_id: String,
    u_email: String,
    u_role: String,
    u_platform_role: Option<String>,
    u_created_at: i64,
    u_updated_at: i64,
    u_last_login_at: Option<i64>,
}

/// The live token with this hash and its (enabled) user, or `None` when the
/// token is unknown, revoked, expired, or its user or tenant is disabled.
pub async fn find_active(
    pool: &AnyPool,
    token_hash: &str,
    now: i64,
) -> StoreResult<Option<(TokenRow, UserRow)>> {
    let row = sqlx::query_as::<_, ActiveTokenRow>(
        "SELECT t.id, t.tenant_id, t.user_id, t.kind, t.name, t.token_hint, t.created_at,
                t.expires_at, t.last_used_at, t.revoked_at,
                u.id AS u_id, u.tenant_id AS u_tenant_id, u.email AS u_email, u.role AS u_role,
                u.platform_role AS u_platform_role, u.created_at AS u_created_at,
                u.updated_at AS u_updated_at, u.last_login_at AS u_last_login_at
         FROM auth_tokens t
         JOIN users u ON u.id = t.user_id
         JOIN tenants n ON n.id = t.tenant_id
         WHERE t.token_hash = $1
           AND t.revoked_at IS NULL
           AND (t.expires_at IS NULL OR t.expires_at > $2)
           AND u.disabled_at IS NULL
           AND n.disabled_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| {
        let user = UserRow {
            id: r.u_id,
            tenant_id: r.u_tenant_id,
            email: r.u_email,
            role: r.u_role,
            platform_role: r.u_platform_role,
            password_hash: None,
            created_at: r.u_created_at,
            updated_at: r.u_updated_at,
            disabled_at: None,
            last_login_at: r.u_last_login_at,
        };
        (r.token, user)
    }))
}

/// Record use, at most once per minute per token (avoids a write per request).
pub async fn touch(pool: &AnyPool, id: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE auth_tokens SET last_used_at = $1
         WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
    )
    .bind(now)
    .bind(id)
    .bind(now - LAST_USED_GRANULARITY_MS)
    .execute(pool)
    .await?;
    Ok(())
}

/// Revoke one token of a tenant. `Ok(false)` when it was already revoked.
pub async fn revoke(pool: &AnyPool, scope: &TenantScope, id: &str) -> StoreResult<bool> {
    let n = sqlx::query(
        "UPDATE auth_tokens SET revoked_at = $1
         WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(scope.tenant_id())
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected();
    if n == 1 {
        return Ok(true);
    }
    match get(pool, scope, id).await? {
        Some(_) => Ok(false),
        None => Err(StoreError::NotFound("token")),
    }
}

/// Revoke every live token of a user (on disable or password change).
pub async fn revoke_all_for_user(pool: &AnyPool, user_id: &str) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE auth_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(user_id)
    .execute(pool)
    .await?
    .rows_affected())
}

pub async fn get(pool: &AnyPool, scope: &TenantScope, id: &str) -> StoreResult<Option<TokenRow>> {
    Ok(sqlx::query_as::<_, TokenRow>(&format!(
        "SELECT {COLUMNS} FROM auth_tokens WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant_id())
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// A user's tokens of one kind, newest first.
pub async fn list_for_user(
    pool: &AnyPool,
    scope: &TenantScope,
    user_id: &str,
    kind: &str,
) -> StoreResult<Vec<TokenRow>> {
    Ok(sqlx::query_as::<_, TokenRow>(&format!(
        "SELECT {COLUMNS} FROM auth_tokens
         WHERE tenant_id = $1 AND user_id = $2 AND kind = $3 ORDER BY created_at DESC, id DESC"
    ))
    .bind(scope.tenant_id())
    .bind(user_id)
    .bind(kind)
    .fetch_all(pool)
    .await?)
}

/// The tenant of an API token, looked up server-wide (admin CLI only).
pub async fn tenant_of_api_token(pool: &AnyPool, id: &str) -> StoreResult<Option<String>> {
    Ok(sqlx::query_as::<_, (String,)>(
        "SELECT tenant_id FROM auth_tokens WHERE id = $1 AND kind = 'api'",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .map(|(t,)| t))
}
