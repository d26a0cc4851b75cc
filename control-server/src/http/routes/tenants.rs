//! Tenants (platform role `infra`).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts;
use crate::auth::{Identity, Role};
use crate::error::{ApiError, ErrorEnvelope};
use crate::http::envelope::{created, list, Envelope, Reply};
use crate::http::extract::ApiJson;
use crate::http::routes::users::UserView;
use crate::state::AppState;
use crate::store::ms_to_rfc3339;
use crate::store::tenants::{self, TenantRow};

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
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
    /// Slug: a-z, 0-9 and '-', 1..63 characters.
    pub id: String,
    pub name: String,
    /// Optionally create the tenant's first admin in the same call.
    pub admin: Option<FirstAdmin>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FirstAdmin {
    pub email: String,
    /// At least 12 characters.
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
    identity.require(Role::Infra)?;
    let rows = tenants::list(state.db.pool()).await?;
    Ok(list(rows.into_iter().map(TenantView::from).collect()))
}

/// Create a tenant, optionally with its first admin.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", security(("bearer" = [])),
    request_body = CreateTenant,
    responses((status = 201, body = Envelope<CreatedTenant>), (status = 400, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<CreateTenant>,
) -> Result<Reply<CreatedTenant>, ApiError> {
    identity.require(Role::Infra)?;
    let (tenant, admin) = accounts::create_tenant_with_admin(
        &state.db,
        &req.id,
        &req.name,
        req.admin
            .as_ref()
            .map(|a| (a.email.as_str(), a.password.as_str())),
    )
    .await?;
    Ok(created(CreatedTenant {
        tenant: tenant.into(),
        admin: admin.map(UserView::from),
    }))
}
