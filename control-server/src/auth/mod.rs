//! Who is calling, and what they may do (platform, used by every domain).
//!
//! * [`Identity`] is a verified user caller (session token, API token or
//!   external JWT). The accounts domain verifies bearer tokens and provides
//!   the extractor.
//! * [`Identity::require`] is the one gate every route uses: it checks the
//!   role and hands back the [`TenantScope`] all queries must use.
//! * [`secret`], [`jwt`], [`throttle`]: token and password primitives,
//!   external JWT verification, sign-in throttling.
//! * [`cookie`]: the web console's session cookie and CSRF token.

pub mod cookie;
pub mod jwt;
pub mod secret;
pub mod throttle;

use axum::http::request::Parts;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::ids::{TenantId, TokenId, UserId};
use crate::db::text_enum::UnknownVariant;
use crate::db::TenantScope;

/// Why a caller is refused before any domain rule runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("bearer token is required")]
    MissingToken,
    #[error("token is invalid, expired or revoked")]
    InvalidToken,
    #[error("agent tokens cannot call this endpoint")]
    AgentToken,
    #[error("this endpoint is for agents")]
    NotAgentToken,
    #[error("role `{0}` is required")]
    Forbidden(&'static str),
    #[error("a cookie-authenticated write needs the session's CSRF token")]
    CsrfToken,
}

/// Tenant roles are ordered (viewer < operator < admin); `Infra` is the
/// platform role of whoever runs the server and passes every tenant gate.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
    Infra,
}

impl Role {
    pub const TENANT_ROLES: &'static [Role] = &[Role::Viewer, Role::Operator, Role::Admin];

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
        s.parse().ok().filter(|r| *r != Role::Infra)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            "infra" => Ok(Role::Infra),
            _ => Err(UnknownVariant {
                kind: "role",
                value: s.to_string(),
                expected: "viewer operator admin infra",
            }),
        }
    }
}

impl TryFrom<String> for Role {
    type Error = UnknownVariant;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
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
    pub user_id: UserId,
    pub email: String,
    pub tenant_id: TenantId,
    pub role: Role,
    pub infra: bool,
    /// The stored token behind this identity (sessions and API tokens).
    pub token_id: Option<TokenId>,
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
    bearer_from_headers(&parts.headers)
}

/// The token a request authenticates with: the bearer token, else the
/// console session cookie (see [`cookie`]).
pub fn credential_from_headers(headers: &axum::http::HeaderMap) -> Option<&str> {
    bearer_from_headers(headers).or_else(|| cookie::session_from_headers(headers))
}

/// [`bearer_token`] from a header map.
pub fn bearer_from_headers(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
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
