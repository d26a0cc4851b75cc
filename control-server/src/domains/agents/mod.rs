//! Agents: pairing, registration, heartbeats, token rotation, reads and
//! revocation (`/api/v1/agents/*`, and the `/agent/pair` page). This module
//! also authenticates agent bearer tokens ([`AgentIdentity`]) and callers
//! that may be either ([`Caller`]).

pub mod auth_cache;
pub mod presence;
pub mod routes;
pub mod service;
pub mod store;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{bearer_token, AuthError, Identity};
use crate::db::ids::{AgentId, TenantId, TokenId, UserId};
use crate::db::{StoreError, TenantScope};
use crate::http::codes;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::validate::FieldErrors;

pub use service::AgentsService;
pub use store::{AgentStatus, ConnectionState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::create_pairing))
        .routes(routes!(routes::register))
        .routes(routes!(routes::heartbeat))
        .routes(routes!(routes::rotate_token))
        .routes(routes!(routes::put_public_key))
        .routes(routes!(routes::list_agents))
        .routes(routes!(routes::get_agent, routes::delete_pairing))
        .routes(routes!(routes::revoke_agent))
        .route("/agent/pair", axum::routing::get(routes::pair_page))
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    #[error("agent not found")]
    AgentNotFound,
    #[error("agent is revoked")]
    AgentRevoked,
    #[error("agent is already revoked")]
    AlreadyRevoked,
    #[error("agent is not a pending pairing")]
    AgentNotPending,
    #[error("only admins may choose the owner")]
    OwnerOverrideForbidden,
    #[error("agent token invalid")]
    AgentTokenInvalid,
    #[error("pairing code not found or used")]
    PairingNotFound,
    #[error("pairing code expired")]
    PairingExpired,
    #[error("this token was already rotated")]
    TokenAlreadyRotated,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Validation(f) => ApiError::validation(f),
            AgentError::AgentNotFound => {
                ApiError::not_found(codes::AGENT_NOT_FOUND, "No such agent")
            }
            AgentError::AgentRevoked => ApiError::new(
                StatusCode::FORBIDDEN,
                codes::AGENT_REVOKED,
                "This agent has been revoked; pair it again to reconnect",
            ),
            AgentError::AlreadyRevoked => {
                ApiError::conflict(codes::ALREADY_REVOKED, "The agent is already revoked")
            }
            AgentError::AgentNotPending => ApiError::conflict(
                codes::AGENT_NOT_PENDING,
                "Only a pairing that was never used can be deleted; revoke an active agent instead",
            ),
            AgentError::OwnerOverrideForbidden => ApiError::forbidden(
                "Role 'admin' is required to pair an agent for another user (owner_user_id)",
            ),
            AgentError::AgentTokenInvalid => {
                ApiError::unauthorized("Agent token is invalid or expired")
            }
            AgentError::PairingNotFound => ApiError::not_found(
                codes::PAIRING_NOT_FOUND,
                "Pairing code not found or already used",
            ),
            AgentError::PairingExpired => ApiError::new(
                StatusCode::GONE,
                codes::PAIRING_EXPIRED,
                "The pairing code has expired; create a new pairing",
            ),
            AgentError::TokenAlreadyRotated => ApiError::conflict(
                codes::TOKEN_ALREADY_ROTATED,
                "This token was already rotated; use the new token (this one works only until its grace period ends)",
            ),
            AgentError::Auth(a) => a.into(),
            AgentError::Store(s) => s.into(),
        }
    }
}

/// A verified agent (from its bearer token).
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    pub agent_id: AgentId,
    pub tenant_id: TenantId,
    pub owner_user_id: Option<UserId>,
    pub token_id: TokenId,
    pub token_created_at: i64,
    pub token_expires_at: i64,
    /// The token was rotated out (valid only for its grace period).
    pub token_rotated: bool,
}

impl AgentIdentity {
    pub fn scope(&self) -> TenantScope {
        TenantScope::new(self.tenant_id.clone())
    }
}

/// An agent authenticated by its `bmxa_` token.
impl FromRequestParts<AppState> for AgentIdentity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts).ok_or(AuthError::MissingToken)?;
        if !token.starts_with(botmox_protocol::AGENT_TOKEN_PREFIX) {
            return Err(AuthError::NotAgentToken.into());
        }
        let agent = state.agents.authenticate(token).await?;
        state
            .limits
            .remember_token(&crate::http::middleware::token_key(token));
        Ok(agent)
    }
}

/// Who is asking: a person (or automation) or an agent.
#[derive(Debug, Clone)]
pub enum Caller {
    User(Identity),
    Agent(AgentIdentity),
}

impl Caller {
    pub fn scope(&self) -> TenantScope {
        match self {
            Caller::User(u) => u.scope(),
            Caller::Agent(a) => a.scope(),
        }
    }
}

/// Either a user or an agent, chosen by the token's prefix.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let is_agent =
            bearer_token(parts).is_some_and(|t| t.starts_with(botmox_protocol::AGENT_TOKEN_PREFIX));
        if is_agent {
            Ok(Caller::Agent(
                AgentIdentity::from_request_parts(parts, state).await?,
            ))
        } else {
            Ok(Caller::User(
                Identity::from_request_parts(parts, state).await?,
            ))
        }
    }
}
