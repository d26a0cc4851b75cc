//! The secrets vault (`/api/v1/secrets*`, inventory §2.12) and delivery of
//! secrets to agents (`GET /api/v1/agents/me/secrets/{id}`).
//!
//! The server stores ciphertext only and never returns it to users. A
//! secret is client-encrypted (the original's vault), sealed by the server
//! with its data key (`crate::crypto`), or sealed to one agent's X25519
//! public key with the envelope of `botmox_protocol::envelope` — the last
//! one the server cannot open. An agent receives a secret bound to it, as
//! an envelope only it can open.

pub mod routes;
pub mod service;
pub mod store;

use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use botmox_protocol::envelope::EnvelopeError;

use crate::auth::AuthError;
use crate::crypto::CryptoError;
use crate::db::StoreError;
use crate::domains::agents::AgentError;
use crate::http::codes;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::validate::FieldErrors;

pub use service::{SecretBinding, SecretMeta, SecretsService};
pub use store::{ScopeType, SecretKind};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::list_secrets, routes::create_secret))
        .routes(routes!(routes::get_meta))
        .routes(routes!(routes::rotate_secret))
        .routes(routes!(routes::list_bindings, routes::create_binding))
        .routes(routes!(routes::agent_secret))
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret id is malformed")]
    InvalidId,
    #[error("invalid secret: {0}")]
    InvalidCreate(FieldErrors),
    #[error("invalid rotation: {0}")]
    InvalidRotate(FieldErrors),
    #[error("invalid binding: {0}")]
    InvalidBinding(FieldErrors),
    #[error("invalid bindings query: {0}")]
    InvalidListQuery(FieldErrors),
    #[error("invalid secrets query: {0}")]
    InvalidSecretListQuery(FieldErrors),
    #[error("secret not found")]
    NotFound,
    #[error("the secret id is taken")]
    IdTaken,
    #[error("the field is bound by another user")]
    BindingTaken,
    #[error("the secret is not sealed for this agent")]
    NotDeliverable,
    #[error("the agent has no public key")]
    PublicKeyMissing,
    #[error("the envelope is sealed to another key than the agent's")]
    PublicKeyMismatch,
    #[error("the agent has no owner")]
    AgentOwnerUnassigned,
    #[error("the agent belongs to another user")]
    AgentOwnerMismatch,
    #[error("sealing failed: {0}")]
    Envelope(EnvelopeError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A 400 with `code` and `details.fields`.
fn fields(code: &'static str, f: FieldErrors) -> ApiError {
    let mut e = ApiError::validation(f);
    e.code = code;
    e
}

impl From<SecretError> for ApiError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::InvalidId => ApiError::bad_request(
                codes::SECRETS_INVALID_ID,
                "The secret id must be 1-100 characters of A-Z a-z 0-9 _ -",
            ),
            SecretError::InvalidCreate(f) => fields(codes::SECRETS_INVALID_CREATE_BODY, f),
            SecretError::InvalidRotate(f) => fields(codes::SECRETS_INVALID_ROTATE_BODY, f),
            SecretError::InvalidBinding(f) => {
                fields(codes::SECRETS_INVALID_BINDING_CREATE_BODY, f)
            }
            SecretError::InvalidListQuery(f) => {
                fields(codes::SECRETS_INVALID_BINDINGS_LIST_QUERY, f)
            }
            SecretError::InvalidSecretListQuery(f) => fields(codes::SECRETS_INVALID_LIST_QUERY, f),
            SecretError::NotFound => ApiError::not_found(codes::SECRET_NOT_FOUND, "Secret not found"),
            SecretError::IdTaken => ApiError::conflict(
                codes::CONFLICT,
                "A secret with this id already exists in the tenant",
            ),
            SecretError::BindingTaken => ApiError::conflict(
                codes::CONFLICT,
                "Another user bound a secret to this scope and field; an admin may replace it",
            ),
            SecretError::NotDeliverable => ApiError::conflict(
                codes::SECRET_NOT_DELIVERABLE,
                "This secret is not sealed for this agent (client-encrypted, or sealed to another agent or to a replaced key); put it again for the agent",
            ),
            SecretError::PublicKeyMissing => ApiError::conflict(
                codes::AGENT_PUBLIC_KEY_MISSING,
                "The agent has not registered a public key yet; start the agent (a current version) once",
            ),
            SecretError::PublicKeyMismatch => ApiError::conflict(
                codes::AGENT_PUBLIC_KEY_MISMATCH,
                "The envelope's key_id is not the agent's current key; seal it again to the public_key of GET /api/v1/agents/{id}",
            ),
            SecretError::AgentOwnerUnassigned => ApiError::new(
                StatusCode::FORBIDDEN,
                codes::AGENT_OWNER_UNASSIGNED,
                "The agent has no owner; only an admin may give it secrets",
            ),
            SecretError::AgentOwnerMismatch => ApiError::new(
                StatusCode::FORBIDDEN,
                codes::AGENT_OWNER_MISMATCH,
                "The agent belongs to another user; only its owner or an admin may give it secrets",
            ),
            SecretError::Envelope(e) => ApiError::internal().with_cause(format!("secret envelope: {e}")),
            SecretError::Crypto(e) => ApiError::internal().with_cause(format!("secret sealing: {e}")),
            SecretError::Agent(a) => a.into(),
            SecretError::Auth(a) => a.into(),
            SecretError::Store(s) => s.into(),
        }
    }
}
