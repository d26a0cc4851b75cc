//! Who is calling, and what they may do.
//!
//! * [`Identity`] is the verified caller (from a session token, an API token
//!   or an external JWT). Handlers take it as an extractor.
//! * [`Identity::require`] is the one gate every route uses: it checks the
//!   role and hands back the [`TenantScope`] all queries must use.

pub mod jwt;
pub mod secret;
pub mod service;
pub mod throttle;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{StoreError, TenantScope};

pub use service::AuthService;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("bearer token is required")]
    MissingToken,
    #[error("token is invalid, expired or revoked")]
    InvalidToken,
    #[error("agent tokens cannot call this endpoint")]
    AgentToken,
    #[error("email or password is incorrect")]
    InvalidCredentials,
    #[error("role `{0}` is required")]
    Forbidden(&'static str),
    #[error("too many failed attempts; retry in {retry_after_s}s")]
    Throttled { retry_after_s: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// Tenant roles are ordered (viewer < operator < admin); `Infra` is the
/// platform role of whoever runs the server and passes every tenant gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
    Infra,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Infra => "infra",
        }
    }
    /// Parse one of the tenant roles (not `infra`).
    pub fn parse_tenant_role(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    Session,
    ApiToken,
    ExternalJwt,
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Identity {
    pub source: IdentitySource,
    pub user_id: String,
    pub email: String,
    pub tenant_id: String,
    pub role: Role,
    pub infra: bool,
    /// The stored token behind this identity (sessions and API tokens).
    pub token_id: Option<String>,
}

impl Identity {
    /// Effective roles, most privileged first (`["admin","infra"]` style).
    pub fn roles(&self) -> Vec<&'static str> {
        let mut roles = vec![self.role.as_str()];
        if self.infra {
            roles.push(Role::Infra.as_str());
        }
        roles
    }

    pub fn has(&self, required: Role) -> bool {
        match required {
            Role::Infra => self.infra,
            tenant_role => self.infra || self.role >= tenant_role,
        }
    }

    /// The gate: `Forbidden` naming the role, or the caller's tenant scope.
    pub fn require(&self, required: Role) -> Result<TenantScope, AuthError> {
        if self.has(required) {
            Ok(self.scope())
        } else {
            Err(AuthError::Forbidden(required.as_str()))
        }
    }

    /// The caller's tenant, for routes any authenticated caller may use.
    pub fn scope(&self) -> TenantScope {
        TenantScope::new(self.tenant_id.clone())
    }
}

/// Extract the bearer token from `Authorization: Bearer …` (scheme
/// case-insensitive).
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(id) = parts.extensions.get::<Identity>() {
            return Ok(id.clone());
        }
        let token = bearer_token(parts).ok_or(AuthError::MissingToken)?;
        let identity = state.auth.verify_bearer(token).await?;
        parts.extensions.insert(identity.clone());
        Ok(identity)
    }
}
