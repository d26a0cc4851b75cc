//! HTTP handlers and DTOs of accounts: sign-in, sign-out, token
//! introspection, self-service API tokens, tenants (infra), users (admin).

use axum::extract::{RawQuery, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::service::{FirstAdmin, TenantRow, TokenRow, UserChange, UserRow, USER_LIST};
use crate::auth::{Identity, IdentitySource, Role};
use crate::db::ids::{TenantId, TokenId, UserId};
use crate::db::ms_to_rfc3339;
use crate::http::envelope::{created, list, ok, paged, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::{email, list_query_doc, trimmed_name, ApiJson, ApiPath, ClientIp};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    pub uid: UserId,
    pub email: String,
    /// Effective roles: the tenant role, plus `infra` for server operators.
    pub roles: Vec<&'static str>,
    pub tenant_id: TenantId,
    pub source: IdentitySource,
}

impl From<&Identity> for WhoAmI {
    fn from(i: &Identity) -> Self {
        WhoAmI {
            uid: i.user_id.clone(),
            email: i.email.clone(),
            roles: i.roles(),
            tenant_id: i.tenant_id.clone(),
            source: i.source,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Opaque bearer token (`bmxs_…`); shown once.
    pub token: String,
    pub token_type: &'static str,
    pub expires_at: String,
    pub user: WhoAmI,
}

#[derive(Serialize, ToSchema)]
pub struct Verified {
    pub valid: bool,
}

#[derive(Serialize, ToSchema)]
pub struct LoggedOut {
    pub revoked: bool,
}

/// Exchange e-mail and password for a session token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Envelope<LoginResponse>),
              (status = 400, body = ErrorEnvelope), (status = 401, description = "INVALID_CREDENTIALS", body = ErrorEnvelope),
              (status = 429, description = "RATE_LIMITED, with Retry-After", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Reply<LoginResponse>, ApiError> {
    state
        .limits
        .check_public(&ip)
        .map_err(ApiError::rate_limited)?;
    let out = state.accounts.login(&req.email, &req.password, &ip).await?;
    // A token we just issued has its own API budget from its first call.
    state
        .limits
        .remember_token(&crate::http::middleware::token_key(&out.token));
    Ok(ok(LoginResponse {
        token: out.token,
        token_type: "Bearer",
        expires_at: ms_to_rfc3339(out.expires_at),
        user: WhoAmI::from(&out.identity),
    }))
}

/// Revoke the presented token; it stops working immediately.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Envelope<LoggedOut>), (status = 401, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Reply<LoggedOut>, ApiError> {
    let revoked = state.accounts.logout(&identity).await?;
    Ok(ok(LoggedOut { revoked }))
}

/// Is the presented token valid?
#[utoipa::path(get, path = "/api/v1/auth/verify", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Envelope<Verified>), (status = 401, body = ErrorEnvelope)))]
pub async fn verify(_identity: Identity) -> Reply<Verified> {
    ok(Verified { valid: true })
}

/// Who the presented token belongs to.
#[utoipa::path(get, path = "/api/v1/auth/whoami", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Envelope<WhoAmI>), (status = 401, body = ErrorEnvelope)))]
pub async fn whoami(identity: Identity) -> Reply<WhoAmI> {
    ok(WhoAmI::from(&identity))
}

#[derive(Serialize, ToSchema)]
pub struct ApiTokenView {
    pub id: TokenId,
    pub name: Option<String>,
    /// First characters of the token, to recognise it.
    pub hint: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<TokenRow> for ApiTokenView {
    fn from(t: TokenRow) -> Self {
        ApiTokenView {
            id: t.id,
            name: t.name,
            hint: t.token_hint,
            created_at: ms_to_rfc3339(t.created_at),
            expires_at: t.expires_at.map(ms_to_rfc3339),
            last_used_at: t.last_used_at.map(ms_to_rfc3339),
            revoked_at: t.revoked_at.map(ms_to_rfc3339),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    /// A label, e.g. "ci-pipeline".
    #[schema(schema_with = trimmed_name::<100>)]
    pub name: String,
    /// Lifetime in days (default 90).
    #[schema(minimum = 1, maximum = 3650)]
    pub ttl_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiToken {
    /// The token (`bmxk_…`). Shown once; store it now.
    pub token: String,
    pub info: ApiTokenView,
}

/// The caller's API tokens.
#[utoipa::path(get, path = "/api/v1/auth/api-tokens", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<ApiTokenView>>), (status = 401, body = ErrorEnvelope)))]
pub async fn list_api_tokens(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Reply<Vec<ApiTokenView>>, ApiError> {
    let rows = state.accounts.list_api_tokens(&identity).await?;
    Ok(list(rows.into_iter().map(ApiTokenView::from).collect()))
}

/// Create an API token for automation (operator or higher).
#[utoipa::path(post, path = "/api/v1/auth/api-tokens", tag = "auth", security(("bearer" = [])),
    request_body = CreateApiToken,
    responses((status = 201, body = Envelope<CreatedApiToken>,
               links(("RevokeToken" = (operation_id = "revoke_api_token",
                                       parameters(("id" = "$response.body#/data/info/id")))))),
              (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn create_api_token(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<CreateApiToken>,
) -> Result<Reply<CreatedApiToken>, ApiError> {
    let (token, row) = state
        .accounts
        .create_api_token(&identity, &req.name, req.ttl_days)
        .await?;
    Ok(created(CreatedApiToken {
        token,
        info: row.into(),
    }))
}

/// Revoke one of the caller's API tokens (admins: any token of the tenant).
#[utoipa::path(delete, path = "/api/v1/auth/api-tokens/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = Envelope<ApiTokenView>), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "ALREADY_REVOKED", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(token_id = %id))]
pub async fn revoke_api_token(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<TokenId>,
) -> Result<Reply<ApiTokenView>, ApiError> {
    let row = state.accounts.revoke_api_token(&identity, &id).await?;
    Ok(ok(row.into()))
}

// ---- tenants ----

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    pub id: TenantId,
    pub name: String,
    pub created_at: String,
    pub disabled_at: Option<String>,
}

impl From<TenantRow> for TenantView {
    fn from(t: TenantRow) -> Self {
        TenantView {
            id: t.id,
            name: t.name,
            created_at: ms_to_rfc3339(t.created_at),
            disabled_at: t.disabled_at.map(ms_to_rfc3339),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Slug: a-z, 0-9 and '-', 1..63 characters, not starting or ending with '-'.
    #[schema(pattern = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
    pub id: String,
    #[schema(schema_with = trimmed_name::<200>)]
    pub name: String,
    /// Optionally create the tenant's first admin in the same call (one
    /// transaction: if the admin cannot be created, neither is the tenant).
    pub admin: Option<FirstAdminRequest>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FirstAdmin)]
pub struct FirstAdminRequest {
    #[schema(schema_with = email)]
    pub email: String,
    /// 12 to 1024 characters.
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedTenant {
    pub tenant: TenantView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<UserView>,
}

/// Every tenant of the server.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<TenantView>>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Reply<Vec<TenantView>>, ApiError> {
    let rows = state.accounts.list_tenants(&identity).await?;
    Ok(list(rows.into_iter().map(TenantView::from).collect()))
}

/// Create a tenant, optionally with its first admin.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", security(("bearer" = [])),
    request_body = CreateTenant,
    responses((status = 201, body = Envelope<CreatedTenant>), (status = 400, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn create_tenant(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<CreateTenant>,
) -> Result<Reply<CreatedTenant>, ApiError> {
    identity.require(Role::Infra)?;
    let (tenant, admin) = state
        .accounts
        .create_tenant_with_admin(
            &req.id,
            &req.name,
            req.admin.as_ref().map(|a| FirstAdmin {
                email: &a.email,
                password: &a.password,
            }),
        )
        .await?;
    Ok(created(CreatedTenant {
        tenant: tenant.into(),
        admin: admin.map(UserView::from),
    }))
}

// ---- users ----

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub email: String,
    /// Tenant role.
    pub role: Role,
    /// True for server operators (platform role `infra`).
    pub infra: bool,
    pub disabled: bool,
    pub created_at: String,
    pub last_login_at: Option<String>,
}

impl From<UserRow> for UserView {
    fn from(u: UserRow) -> Self {
        UserView {
            infra: u.is_infra(),
            id: u.id,
            tenant_id: u.tenant_id,
            email: u.email,
            role: u.role,
            disabled: u.disabled_at.is_some(),
            created_at: ms_to_rfc3339(u.created_at),
            last_login_at: u.last_login_at.map(ms_to_rfc3339),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schema(schema_with = email)]
    pub email: String,
    #[schema(schema_with = tenant_role)]
    pub role: String,
    /// 12 to 1024 characters.
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[schema(schema_with = opt_tenant_role)]
    pub role: Option<String>,
    pub disabled: Option<bool>,
}

fn role_schema(nullable: bool) -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    let mut values: Vec<Option<&str>> = Role::TENANT_ROLES
        .iter()
        .map(|r| Some(r.as_str()))
        .collect();
    let ty = if nullable {
        values.push(None);
        SchemaType::Array(vec![Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(ty)
        .enum_values(Some(values))
        .description(Some("A tenant role."))
        .build()
}

fn tenant_role() -> utoipa::openapi::Object {
    role_schema(false)
}

fn opt_tenant_role() -> utoipa::openapi::Object {
    role_schema(true)
}

list_query_doc!(UserListQuery, USER_LIST);

/// Users of the caller's tenant (list kit: sort/filter on email, role,
/// created_at, last_login_at; `q` searches email).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    params(UserListQuery),
    responses((status = 200, body = Envelope<Vec<UserView>>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_users(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<UserView>>, ApiError> {
    let (params, _) = USER_LIST.parse(q.as_deref().unwrap_or(""), &[])?;
    let page = state.accounts.list_users(&identity, &params).await?;
    Ok(paged(page.map(UserView::from)))
}

/// One user of the caller's tenant.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<UserView>), (status = 404, body = ErrorEnvelope)))]
pub async fn get_user(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<UserId>,
) -> Result<Reply<UserView>, ApiError> {
    Ok(ok(state.accounts.get_user(&identity, &id).await?.into()))
}

/// Add a user to the caller's tenant.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses((status = 201, body = Envelope<UserView>,
               links(("GetUser" = (operation_id = "get_user", parameters(("id" = "$response.body#/data/id")))),
                     ("UpdateUser" = (operation_id = "update_user", parameters(("id" = "$response.body#/data/id")))))),
              (status = 400, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn create_user(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<Reply<UserView>, ApiError> {
    let row = state
        .accounts
        .add_user(&identity, &req.email, &req.role, &req.password)
        .await?;
    Ok(created(row.into()))
}

/// Change a user's role or disable/enable them (disabling revokes their tokens).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateUserRequest,
    responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 409, description = "SELF_LOCKOUT", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn update_user(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> Result<Reply<UserView>, ApiError> {
    let row = state
        .accounts
        .update_user(
            &identity,
            &id,
            UserChange {
                role: req.role,
                disabled: req.disabled,
            },
        )
        .await?;
    Ok(ok(row.into()))
}
