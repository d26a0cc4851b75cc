//! Sign-in, sign-out, token introspection and self-service API tokens.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts;
use crate::auth::{Identity, IdentitySource, Role};
use crate::error::{ApiError, ErrorEnvelope};
use crate::http::envelope::{created, list, ok, Envelope, Reply};
use crate::http::extract::{ApiJson, ClientIp};
use crate::state::AppState;
use crate::store::tokens::{self, TokenRow};
use crate::store::{ms_to_rfc3339, users, StoreError};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    pub uid: String,
    pub email: String,
    /// Effective roles: the tenant role, plus `infra` for server operators.
    pub roles: Vec<&'static str>,
    pub tenant_id: String,
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
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Reply<LoginResponse>, ApiError> {
    state
        .limits
        .check_public(&ip)
        .map_err(ApiError::rate_limited)?;
    let out = state.auth.login(&req.email, &req.password, &ip).await?;
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
pub async fn logout(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Reply<LoggedOut>, ApiError> {
    if identity.source == IdentitySource::ExternalJwt {
        return Err(ApiError::bad_request(
            "NOT_REVOCABLE",
            "External JWTs expire on their own; sign out at the identity provider",
        ));
    }
    let revoked = state.auth.logout(&identity).await?;
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
    pub id: String,
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
    pub name: String,
    /// Lifetime in days (1..3650, default 90).
    pub ttl_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiToken {
    /// The token (`bmxk_…`). Shown once; store it now.
    pub token: String,
    pub info: ApiTokenView,
}

fn require_local_user(identity: &Identity) -> Result<(), ApiError> {
    if identity.source == IdentitySource::ExternalJwt {
        return Err(ApiError::forbidden(
            "API tokens belong to local users; external JWT users cannot manage them",
        ));
    }
    Ok(())
}

/// The caller's API tokens.
#[utoipa::path(get, path = "/api/v1/auth/api-tokens", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<ApiTokenView>>), (status = 401, body = ErrorEnvelope)))]
pub async fn list_api_tokens(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Reply<Vec<ApiTokenView>>, ApiError> {
    require_local_user(&identity)?;
    let scope = identity.scope();
    let rows = tokens::list_for_user(state.db.pool(), &scope, &identity.user_id, "api").await?;
    Ok(list(rows.into_iter().map(ApiTokenView::from).collect()))
}

/// Create an API token for automation (operator or higher).
#[utoipa::path(post, path = "/api/v1/auth/api-tokens", tag = "auth", security(("bearer" = [])),
    request_body = CreateApiToken,
    responses((status = 201, body = Envelope<CreatedApiToken>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn create_api_token(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<CreateApiToken>,
) -> Result<Reply<CreatedApiToken>, ApiError> {
    let scope = identity.require(Role::Operator)?;
    require_local_user(&identity)?;
    let user = users::get(state.db.pool(), &scope, &identity.user_id)
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    let (token, row) =
        accounts::create_api_token(&state.db, &user, &req.name, req.ttl_days).await?;
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
pub async fn revoke_api_token(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Reply<ApiTokenView>, ApiError> {
    let scope = identity.scope();
    let pool = state.db.pool();
    let not_found = || ApiError::not_found("TOKEN_NOT_FOUND", "No such API token");
    let row = tokens::get(pool, &scope, &id)
        .await?
        .ok_or_else(not_found)?;
    if row.kind != "api" || (row.user_id != identity.user_id && !identity.has(Role::Admin)) {
        return Err(not_found());
    }
    if !tokens::revoke(state.db.writer(), &scope, &id).await? {
        return Err(ApiError::conflict(
            "ALREADY_REVOKED",
            "This token was already revoked",
        ));
    }
    let row = tokens::get(pool, &scope, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(ok(row.into()))
}
