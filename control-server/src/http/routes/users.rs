//! Users of the caller's tenant (tenant role `admin`).

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts::{self, CreateUser};
use crate::auth::{Identity, Role};
use crate::error::{ApiError, ErrorEnvelope};
use crate::http::envelope::{created, list, ok, Envelope, Reply};
use crate::http::extract::ApiJson;
use crate::state::AppState;
use crate::store::ms_to_rfc3339;
use crate::store::users::{self, UserRow};

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    /// Tenant role: viewer, operator or admin.
    pub role: String,
    /// True for server operators (platform role `infra`).
    pub infra: bool,
    pub disabled: bool,
    pub created_at: String,
    pub last_login_at: Option<String>,
}

impl From<UserRow> for UserView {
    fn from(u: UserRow) -> Self {
        UserView {
            id: u.id,
            tenant_id: u.tenant_id,
            email: u.email,
            role: u.role,
            infra: u.platform_role.as_deref() == Some("infra"),
            disabled: u.disabled_at.is_some(),
            created_at: ms_to_rfc3339(u.created_at),
            last_login_at: u.last_login_at.map(ms_to_rfc3339),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: String,
    /// viewer, operator or admin.
    pub role: String,
    /// At least 12 characters.
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub role: Option<String>,
    pub disabled: Option<bool>,
}

/// Users of the caller's tenant.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<UserView>>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope)))]
pub async fn list_users(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Reply<Vec<UserView>>, ApiError> {
    let scope = identity.require(Role::Admin)?;
    let rows = users::list(state.db.pool(), &scope).await?;
    Ok(list(rows.into_iter().map(UserView::from).collect()))
}

/// One user of the caller's tenant.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<UserView>), (status = 404, body = ErrorEnvelope)))]
pub async fn get_user(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Reply<UserView>, ApiError> {
    let scope = identity.require(Role::Admin)?;
    let row = users::get(state.db.pool(), &scope, &id)
        .await?
        .ok_or_else(user_not_found)?;
    Ok(ok(row.into()))
}

/// Add a user to the caller's tenant.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses((status = 201, body = Envelope<UserView>), (status = 400, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create_user(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<Reply<UserView>, ApiError> {
    let scope = identity.require(Role::Admin)?;
    let row = accounts::create_user(
        &state.db,
        CreateUser {
            tenant_id: scope.tenant_id(),
            email: &req.email,
            role: &req.role,
            infra: false,
            password: &req.password,
        },
    )
    .await?;
    Ok(created(row.into()))
}

/// Change a user's role or disable/enable them (disabling revokes their tokens).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateUserRequest,
    responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 409, description = "SELF_LOCKOUT", body = ErrorEnvelope)))]
pub async fn update_user(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> Result<Reply<UserView>, ApiError> {
    let scope = identity.require(Role::Admin)?;
    let pool = state.db.pool();
    let current = users::get(pool, &scope, &id)
        .await?
        .ok_or_else(user_not_found)?;
    if id == identity.user_id
        && (req.disabled == Some(true) || req.role.as_deref().is_some_and(|r| r != "admin"))
    {
        return Err(ApiError::conflict(
            "SELF_LOCKOUT",
            "You cannot disable or demote yourself; ask another admin",
        ));
    }
    let mut row = current;
    if let Some(role) = &req.role {
        let infra = row.platform_role.as_deref() == Some("infra");
        row = accounts::set_role(&state.db, &scope, &id, role, infra).await?;
    }
    if let Some(disabled) = req.disabled {
        row = accounts::set_disabled(&state.db, &scope, &id, disabled).await?;
    }
    Ok(ok(row.into()))
}

fn user_not_found() -> ApiError {
    ApiError::not_found("USER_NOT_FOUND", "No such user in your tenant")
}
