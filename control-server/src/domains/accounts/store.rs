//! SQL of the accounts domain: `tenants`, `users` and `auth_tokens`.
//!
//! Tenants are the unit of isolation. E-mail is unique across the server,
//! so a login needs no tenant; every other user read is confined to a
//! tenant. Of tokens only a SHA-256 is stored, plus a short hint.

use sqlx::FromRow;

use crate::auth::Role;
use crate::db::ids::{TenantId, TokenId, UserId};
use crate::db::list::{self, ListParams, ListSpec, Page};
use crate::db::text_enum::text_enum;
use crate::db::{now_ms, Backend, Read, Reader, StoreError, StoreResult, TenantScope, Write};

text_enum!(
    /// What a stored user token is.
    TokenKind, "token kind" {
        /// A login session (`bmxs_`).
        Session => "session",
        /// A named API token (`bmxk_`).
        Api => "api",
    }
);

// ---- tenants ----

#[derive(Debug, Clone, FromRow)]
pub struct TenantRow {
    pub id: TenantId,
    pub name: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

pub async fn insert_tenant(mut w: impl Write, id: &TenantId, name: &str) -> StoreResult<TenantRow> {
    sqlx::query_as::<_, TenantRow>(
        "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)
         RETURNING id, name, created_at, disabled_at",
    )
    .bind(id.as_str())
    .bind(name)
    .bind(now_ms())
    .fetch_one(w.exec())
    .await
    .map_err(|e| StoreError::unique_or(e, format!("tenant `{id}` already exists")))
}

pub async fn get_tenant(mut r: impl Read, id: &TenantId) -> StoreResult<Option<TenantRow>> {
    Ok(sqlx::query_as::<_, TenantRow>(
        "SELECT id, name, created_at, disabled_at FROM tenants WHERE id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

pub async fn list_tenants(mut r: impl Read) -> StoreResult<Vec<TenantRow>> {
    Ok(sqlx::query_as::<_, TenantRow>(
        "SELECT id, name, created_at, disabled_at FROM tenants ORDER BY id",
    )
    .fetch_all(r.exec())
    .await?)
}

// ---- users ----

const USER_COLUMNS: &str = "id, tenant_id, email, role, platform_role, password_hash, \
                       created_at, updated_at, disabled_at, last_login_at";

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub platform_role: Option<String>,
    pub password_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub disabled_at: Option<i64>,
    pub last_login_at: Option<i64>,
}

impl UserRow {
    pub fn is_infra(&self) -> bool {
        self.platform_role.as_deref() == Some("infra")
    }
}

pub struct NewUser<'a> {
    pub tenant_id: &'a TenantId,
    pub email: &'a str,
    pub role: Role,
    pub infra: bool,
    pub password_hash: Option<&'a str>,
}

pub async fn insert_user(mut w: impl Write, u: NewUser<'_>) -> StoreResult<UserRow> {
    let now = now_ms();
    sqlx::query_as::<_, UserRow>(&format!(
        "INSERT INTO users (id, tenant_id, email, role, platform_role, password_hash, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {USER_COLUMNS}"
    ))
    .bind(UserId::generate().as_str())
    .bind(u.tenant_id.as_str())
    .bind(u.email)
    .bind(u.role.as_str())
    .bind(u.infra.then_some("infra"))
    .bind(u.password_hash)
    .bind(now)
    .fetch_one(w.exec())
    .await
    // The same answer whichever tenant holds the address: it must not tell
    // a tenant admin that an address is registered elsewhere.
    .map_err(|e| StoreError::unique_or(e, "This e-mail address cannot be used; choose another"))
}

/// Server-wide lookup by e-mail (login and the admin CLI only).
pub async fn find_user_by_email(mut r: impl Read, email: &str) -> StoreResult<Option<UserRow>> {
    Ok(sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
    ))
    .bind(email)
    .fetch_optional(r.exec())
    .await?)
}

pub async fn get_user(
    mut r: impl Read,
    scope: &TenantScope,
    id: &UserId,
) -> StoreResult<Option<UserRow>> {
    Ok(sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

/// Users of a tenant, as the list kit pages them.
pub static USER_LIST: ListSpec = ListSpec {
    table: "users",
    select: USER_COLUMNS,
    columns: &[
        list::Column::new("email", "email", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new(
            "role",
            "role",
            list::Kind::Enum(&["viewer", "operator", "admin"]),
        )
        .sortable()
        .filterable(),
        list::Column::new("created_at", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("last_login_at", "last_login_at", list::Kind::Timestamp)
            .nullable()
            .sortable()
            .filterable(),
    ],
    default_sort: "email",
    default_order: list::Order::Asc,
    id_column: "id",
};

pub async fn list_users(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    params: &ListParams,
) -> StoreResult<Page<UserRow>> {
    list::fetch(reader, backend, &USER_LIST, scope, &[], params).await
}

/// Every user of the server, optionally of one tenant (admin CLI).
pub async fn list_all_users(
    mut r: impl Read,
    tenant: Option<&TenantId>,
) -> StoreResult<Vec<UserRow>> {
    let sql = match tenant {
        Some(_) => format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY tenant_id, email"
        ),
        None => format!("SELECT {USER_COLUMNS} FROM users ORDER BY tenant_id, email"),
    };
    let mut q = sqlx::query_as::<_, UserRow>(&sql);
    if let Some(t) = tenant {
        q = q.bind(t.as_str());
    }
    Ok(q.fetch_all(r.exec()).await?)
}

pub async fn update_roles(
    mut w: impl Write,
    scope: &TenantScope,
    id: &UserId,
    role: Role,
    infra: bool,
) -> StoreResult<UserRow> {
    sqlx::query_as::<_, UserRow>(&format!(
        "UPDATE users SET role = $1, platform_role = $2, updated_at = $3
         WHERE tenant_id = $4 AND id = $5 RETURNING {USER_COLUMNS}"
    ))
    .bind(role.as_str())
    .bind(infra.then_some("infra"))
    .bind(now_ms())
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?
    .ok_or(StoreError::NotFound("user"))
}

pub async fn set_user_disabled(
    mut w: impl Write,
    scope: &TenantScope,
    id: &UserId,
    disabled: bool,
) -> StoreResult<UserRow> {
    let now = now_ms();
    sqlx::query_as::<_, UserRow>(&format!(
        "UPDATE users SET disabled_at = $1, updated_at = $2
         WHERE tenant_id = $3 AND id = $4 RETURNING {USER_COLUMNS}"
    ))
    .bind(if disabled { Some(now) } else { None })
    .bind(now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?
    .ok_or(StoreError::NotFound("user"))
}

pub async fn set_password_hash(mut w: impl Write, id: &UserId, hash: &str) -> StoreResult<()> {
    let n = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now_ms())
        .bind(id.as_str())
        .execute(w.exec())
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound("user"));
    }
    Ok(())
}

pub async fn touch_login(mut w: impl Write, id: &UserId) -> StoreResult<()> {
    sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(id.as_str())
        .execute(w.exec())
        .await?;
    Ok(())
}

pub async fn count_users(mut r: impl Read) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(r.exec())
        .await?;
    Ok(n)
}

// ---- tokens ----

const TOKEN_COLUMNS: &str = "id, tenant_id, user_id, kind, name, token_hint, created_at, \
                       expires_at, last_used_at, revoked_at";

/// How stale `last_used_at` may get before a request refreshes it.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: TokenId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    #[sqlx(try_from = "String")]
    pub kind: TokenKind,
    pub name: Option<String>,
    pub token_hint: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub struct NewToken<'a> {
    pub tenant_id: &'a TenantId,
    pub user_id: &'a UserId,
    pub kind: TokenKind,
    pub name: Option<&'a str>,
    pub token_hash: &'a str,
    pub token_hint: &'a str,
    pub expires_at: Option<i64>,
    pub created_ip: Option<&'a str>,
}

pub async fn insert_token(mut w: impl Write, t: NewToken<'_>) -> StoreResult<TokenRow> {
    Ok(sqlx::query_as::<_, TokenRow>(&format!(
        "INSERT INTO auth_tokens (id, tenant_id, user_id, kind, name, token_hash, token_hint, created_at, expires_at, created_ip)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(TokenId::generate().as_str())
    .bind(t.tenant_id.as_str())
    .bind(t.user_id.as_str())
    .bind(t.kind.as_str())
    .bind(t.name)
    .bind(t.token_hash)
    .bind(t.token_hint)
    .bind(now_ms())
    .bind(t.expires_at)
    .bind(t.created_ip)
    .fetch_one(w.exec())
    .await?)
}

#[derive(Debug, Clone, FromRow)]
struct ActiveTokenRow {
    #[sqlx(flatten)]
    token: TokenRow,
    u_id: UserId,
    u_tenant_id: TenantId,
    u_email: String,
    u_role: String,
    u_platform_role: Option<String>,
    u_created_at: i64,
    u_updated_at: i64,
    u_last_login_at: Option<i64>,
}

/// The live token with this hash and its (enabled) user, or `None` when the
/// token is unknown, revoked, expired, or its user or tenant is disabled.
pub async fn find_active_token(
    mut r: impl Read,
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
    .fetch_optional(r.exec())
    .await?;
    row.map(|r| {
        let role = r
            .u_role
            .parse::<Role>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let user = UserRow {
            id: r.u_id,
            tenant_id: r.u_tenant_id,
            email: r.u_email,
            role,
            platform_role: r.u_platform_role,
            password_hash: None,
            created_at: r.u_created_at,
            updated_at: r.u_updated_at,
            disabled_at: None,
            last_login_at: r.u_last_login_at,
        };
        Ok((r.token, user))
    })
    .transpose()
}

/// Record use, at most once per minute per token (avoids a write per request).
pub async fn touch_token(mut w: impl Write, id: &TokenId, now: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE auth_tokens SET last_used_at = $1
         WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
    )
    .bind(now)
    .bind(id.as_str())
    .bind(now - LAST_USED_GRANULARITY_MS)
    .execute(w.exec())
    .await?;
    Ok(())
}

/// Revoke one live token of a tenant: the revoked row, or `None` when no
/// live token has this id (unknown or already revoked).
pub async fn revoke_token(
    mut w: impl Write,
    scope: &TenantScope,
    id: &TokenId,
) -> StoreResult<Option<TokenRow>> {
    Ok(sqlx::query_as::<_, TokenRow>(&format!(
        "UPDATE auth_tokens SET revoked_at = $1
         WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(now_ms())
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

/// Revoke every live token of a user (on disable or password change).
pub async fn revoke_all_tokens_of(mut w: impl Write, user_id: &UserId) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE auth_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(user_id.as_str())
    .execute(w.exec())
    .await?
    .rows_affected())
}

pub async fn get_token(
    mut r: impl Read,
    scope: &TenantScope,
    id: &TokenId,
) -> StoreResult<Option<TokenRow>> {
    Ok(sqlx::query_as::<_, TokenRow>(&format!(
        "SELECT {TOKEN_COLUMNS} FROM auth_tokens WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

/// A user's tokens of one kind, newest first.
pub async fn list_tokens_of(
    mut r: impl Read,
    scope: &TenantScope,
    user_id: &UserId,
    kind: TokenKind,
) -> StoreResult<Vec<TokenRow>> {
    Ok(sqlx::query_as::<_, TokenRow>(&format!(
        "SELECT {TOKEN_COLUMNS} FROM auth_tokens
         WHERE tenant_id = $1 AND user_id = $2 AND kind = $3 ORDER BY created_at DESC, id DESC"
    ))
    .bind(scope.tenant())
    .bind(user_id.as_str())
    .bind(kind.as_str())
    .fetch_all(r.exec())
    .await?)
}

/// The tenant of an API token, looked up server-wide (admin CLI only).
pub async fn tenant_of_api_token(mut r: impl Read, id: &TokenId) -> StoreResult<Option<TenantId>> {
    Ok(sqlx::query_as::<_, (TenantId,)>(
        "SELECT tenant_id FROM auth_tokens WHERE id = $1 AND kind = 'api'",
    )
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?
    .map(|(t,)| t))
}
