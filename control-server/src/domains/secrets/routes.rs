//! HTTP handlers and request documents of the secrets vault, and the
//! agents' delivery route. Bodies are parsed by the service (the original's
//! `SECRETS_INVALID_*` codes); the structs here document them.

use axum::extract::{RawQuery, State};
use botmox_protocol::AgentSecret;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::service::{SecretBinding, SecretMeta};
use super::store::{BINDING_LIST, SECRET_LIST};
use super::SecretError;
use crate::auth::Identity;
use crate::db::ids::SecretId;
use crate::domains::agents::AgentIdentity;
use crate::http::codes;
use crate::http::envelope::{created, ok, paged, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::{list_query_doc, ApiJson, ApiPath};
use crate::state::AppState;

/// `client`, `server` or `agent`.
pub fn kind_schema() -> utoipa::openapi::Object {
    crate::domains::vms::routes::text_enum_schema(&["client", "server", "agent"], false)
}

/// `bot`, `vm`, `vm_settings`, `agent` or `tenant`.
pub fn scope_type_schema() -> utoipa::openapi::Object {
    crate::domains::vms::routes::text_enum_schema(
        &["bot", "vm", "vm_settings", "agent", "tenant"],
        false,
    )
}

/// Client-encrypted material (the original's vault): the server stores it
/// and can never open it, so it is never delivered to agents.
#[allow(dead_code)] // documents the body; the service parses it
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCiphertext {
    /// Optional client-chosen id (else a UUIDv7); unique in the tenant.
    #[schema(nullable = false, pattern = "^[A-Za-z0-9_-]{1,100}$")]
    id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    label: String,
    /// base64 (standard or URL alphabet), ciphertext with its tag.
    #[schema(
        min_length = 1,
        max_length = 262144,
        pattern = "^[A-Za-z0-9+/_-]+={0,2}$"
    )]
    ciphertext: String,
    /// Default `AES-256-GCM`. `X25519-HKDF-SHA256-AES-256-GCM` means an
    /// agent envelope (then `agent_id` is required).
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 50,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    alg: Option<String>,
    /// The client's key id.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    key_id: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    nonce: String,
    /// What the client bound the ciphertext to (at most 16 KiB of JSON).
    #[schema(nullable = false, value_type = Option<Object>)]
    aad_meta: Option<Value>,
}

/// A secret envelope sealed to one agent's public key (`botmox_protocol::
/// envelope`, see docs/protocol.md): only that agent can open it. The
/// envelope binds the secret id, so the id must be chosen before sealing.
#[allow(dead_code)] // documents the body; the service parses it
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentEnvelope {
    /// The secret id the envelope is bound to.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,100}$")]
    id: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    label: String,
    /// The envelope, base64url without padding.
    #[schema(min_length = 1, max_length = 87464, pattern = "^[A-Za-z0-9_-]+$")]
    ciphertext: String,
    #[schema(pattern = "^X25519-HKDF-SHA256-AES-256-GCM$")]
    alg: String,
    /// The agent the envelope is sealed to (an agent of the caller; admins: any).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    agent_id: String,
    /// The agent's current `public_key_id` (`GET /api/v1/agents/{id}`).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    key_id: String,
    /// Optional: must be the envelope's own nonce.
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    nonce: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    aad_meta: Option<Value>,
}

/// A plaintext value the server seals with its data key (AES-256-GCM).
/// The server can open it: use it for secrets it must hand to agents that
/// are bound to them later (each receives it sealed to its own key).
#[allow(dead_code)] // documents the body; the service parses it
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerValue {
    #[schema(nullable = false, pattern = "^[A-Za-z0-9_-]{1,100}$")]
    id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    label: String,
    /// The plaintext (at most 65536 bytes). Never returned, never logged.
    #[schema(min_length = 1, max_length = 65536)]
    value: String,
    #[schema(nullable = false, value_type = Option<Object>)]
    aad_meta: Option<Value>,
}

/// A new secret: one of the three kinds of material.
#[allow(dead_code)] // documents the body; the service parses it
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum CreateSecret {
    Client(ClientCiphertext),
    Agent(AgentEnvelope),
    Server(ServerValue),
}

/// New client-encrypted material.
#[allow(dead_code)] // documents the body; the service parses it
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateClient {
    #[schema(
        min_length = 1,
        max_length = 262144,
        pattern = "^[A-Za-z0-9+/_-]+={0,2}$"
    )]
    ciphertext: String,
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 50,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    alg: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    key_id: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    nonce: String,
    /// Replaces the stored `aad_meta` (kept when left out).
    #[schema(nullable = false, value_type = Option<Object>)]
    aad_meta: Option<Value>,
}

/// A new envelope, bound to this secret's id and the agent.
#[allow(dead_code)] // documents the body; the service parses it
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateAgent {
    #[schema(min_length = 1, max_length = 87464, pattern = "^[A-Za-z0-9_-]+$")]
    ciphertext: String,
    #[schema(pattern = "^X25519-HKDF-SHA256-AES-256-GCM$")]
    alg: String,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    agent_id: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    key_id: String,
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    nonce: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    aad_meta: Option<Value>,
}

/// A new plaintext value for the server to seal.
#[allow(dead_code)] // documents the body; the service parses it
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateServer {
    #[schema(min_length = 1, max_length = 65536)]
    value: String,
    #[schema(nullable = false, value_type = Option<Object>)]
    aad_meta: Option<Value>,
}

/// New material for a secret (its id and label stay).
#[allow(dead_code)] // documents the body; the service parses it
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RotateSecret {
    Client(RotateClient),
    Agent(RotateAgent),
    Server(RotateServer),
}

/// Bind a secret to a scope's field (upsert on tenant, scope and field).
#[allow(dead_code)] // documents the body; the service parses it
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBinding {
    #[schema(schema_with = scope_type_schema)]
    scope_type: String,
    /// For `agent`: the agent's id (an agent of the caller; admins: any).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    scope_id: String,
    /// The secret's id (a secret of the caller; admins: any).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,100}$")]
    secret_ref: String,
    /// Default empty.
    #[schema(
        nullable = false,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$"
    )]
    field_name: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SecretPath {
    /// The secret's id.
    #[param(pattern = "^[A-Za-z0-9_-]{1,100}$")]
    pub id: String,
}

list_query_doc!(BindingListQuery, BINDING_LIST);
list_query_doc!(SecretListQuery, SECRET_LIST);

/// The secrets the caller created (admins: the tenant's), newest first:
/// metadata only, never ciphertext, nonce or value. List kit: filter on
/// id, label, kind, agent_id, material_version, created_at, updated_at,
/// rotated_at; `q` searches id and label.
#[utoipa::path(get, path = "/api/v1/secrets", tag = "secrets", security(("bearer" = [])),
    params(SecretListQuery),
    responses((status = 200, body = Envelope<Vec<SecretMeta>>),
              (status = 400, description = "SECRETS_INVALID_LIST_QUERY", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_secrets(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<SecretMeta>>, ApiError> {
    let raw = q.as_deref().unwrap_or("");
    let (params, _) = SECRET_LIST
        .parse(raw, &[])
        .map_err(SecretError::InvalidSecretListQuery)?;
    Ok(paged(state.secrets.list(&identity, &params).await?))
}

/// Store a secret (operator+): client-encrypted ciphertext (the original's
/// body), an envelope sealed to an agent, or a plaintext `value` the server
/// seals with its data key. The answer is metadata only: ciphertext, nonce
/// and value are never returned.
#[utoipa::path(post, path = "/api/v1/secrets", tag = "secrets", security(("bearer" = [])),
    request_body = CreateSecret,
    responses((status = 201, body = Envelope<SecretMeta>),
              (status = 400, description = "SECRETS_INVALID_CREATE_BODY (`details.fields`), MALFORMED_JSON", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope),
              (status = 403, description = "FORBIDDEN, AGENT_REVOKED, AGENT_OWNER_MISMATCH, AGENT_OWNER_UNASSIGNED (agent envelope)", body = ErrorEnvelope),
              (status = 404, description = "AGENT_NOT_FOUND (agent envelope)", body = ErrorEnvelope),
              (status = 409, description = "CONFLICT (id taken), AGENT_PUBLIC_KEY_MISSING, AGENT_PUBLIC_KEY_MISMATCH", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn create_secret(
    State(state): State<AppState>,
    identity: Identity,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Reply<SecretMeta>, ApiError> {
    let ApiJson(body) =
        body.map_err(|e| e.recode_validation(codes::SECRETS_INVALID_CREATE_BODY))?;
    Ok(created(state.secrets.create(&identity, &body).await?))
}

/// A secret's metadata (its creator; admins: the tenant's). Never the
/// ciphertext or nonce.
#[utoipa::path(get, path = "/api/v1/secrets/{id}/meta", tag = "secrets", security(("bearer" = [])),
    params(SecretPath),
    responses((status = 200, body = Envelope<SecretMeta>),
              (status = 400, description = "SECRETS_INVALID_ID", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "SECRET_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_meta(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<SecretPath>,
) -> Result<Reply<SecretMeta>, ApiError> {
    Ok(ok(state
        .secrets
        .meta(&identity, &SecretId::from(p.id))
        .await?))
}

/// Replace a secret's material (operator+; its creator, admins: any):
/// `material_version` + 1, `rotated_at` now.
#[utoipa::path(post, path = "/api/v1/secrets/{id}/rotate", tag = "secrets", security(("bearer" = [])),
    params(SecretPath), request_body = RotateSecret,
    responses((status = 200, body = Envelope<SecretMeta>),
              (status = 400, description = "SECRETS_INVALID_ID, SECRETS_INVALID_ROTATE_BODY (`details.fields`), MALFORMED_JSON", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope),
              (status = 403, description = "FORBIDDEN, AGENT_REVOKED, AGENT_OWNER_MISMATCH, AGENT_OWNER_UNASSIGNED", body = ErrorEnvelope),
              (status = 404, description = "SECRET_NOT_FOUND, AGENT_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "AGENT_PUBLIC_KEY_MISSING, AGENT_PUBLIC_KEY_MISMATCH", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<SecretPath>,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Reply<SecretMeta>, ApiError> {
    let ApiJson(body) =
        body.map_err(|e| e.recode_validation(codes::SECRETS_INVALID_ROTATE_BODY))?;
    Ok(ok(state
        .secrets
        .rotate(&identity, &SecretId::from(p.id), &body)
        .await?))
}

/// Bind a secret to a scope's field (operator+). Upsert on (scope_type,
/// scope_id, field_name): replaces the caller's own binding of that field
/// (admins: anyone's). `agent` bindings deliver the secret to that agent.
#[utoipa::path(post, path = "/api/v1/secrets/bindings", tag = "secrets", security(("bearer" = [])),
    request_body = CreateBinding,
    responses((status = 201, body = Envelope<SecretBinding>),
              (status = 400, description = "SECRETS_INVALID_BINDING_CREATE_BODY (`details.fields`), MALFORMED_JSON", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope),
              (status = 403, description = "FORBIDDEN, AGENT_REVOKED, AGENT_OWNER_MISMATCH, AGENT_OWNER_UNASSIGNED", body = ErrorEnvelope),
              (status = 404, description = "SECRET_NOT_FOUND, AGENT_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "SECRET_NOT_DELIVERABLE (agent scope), CONFLICT (bound by another user)", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn create_binding(
    State(state): State<AppState>,
    identity: Identity,
    body: Result<ApiJson<Value>, ApiError>,
) -> Result<Reply<SecretBinding>, ApiError> {
    let ApiJson(body) =
        body.map_err(|e| e.recode_validation(codes::SECRETS_INVALID_BINDING_CREATE_BODY))?;
    Ok(created(state.secrets.bind(&identity, &body).await?))
}

/// Bindings the caller created (admins: the tenant's), newest first. List
/// kit: filter on scope_type, scope_id, secret_ref, field_name, created_at,
/// updated_at; `q` searches scope_id and field_name.
#[utoipa::path(get, path = "/api/v1/secrets/bindings", tag = "secrets", security(("bearer" = [])),
    params(BindingListQuery),
    responses((status = 200, body = Envelope<Vec<SecretBinding>>),
              (status = 400, description = "SECRETS_INVALID_BINDINGS_LIST_QUERY", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_bindings(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<SecretBinding>>, ApiError> {
    let raw = q.as_deref().unwrap_or("");
    let (params, _) = BINDING_LIST
        .parse(raw, &[])
        .map_err(SecretError::InvalidListQuery)?;
    Ok(paged(
        state.secrets.list_bindings(&identity, &params).await?,
    ))
}

/// A secret bound to the calling agent (agent token), as an envelope
/// sealed to the agent's registered public key; open it with the private
/// key and `Binding { secret_id, agent_id }`. Secrets not bound to this
/// agent are 404.
#[utoipa::path(get, path = "/api/v1/agents/me/secrets/{id}", tag = "agents", security(("bearer" = [])),
    params(SecretPath),
    responses((status = 200, body = Envelope<AgentSecret>),
              (status = 400, description = "SECRETS_INVALID_ID", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope),
              (status = 403, description = "AGENT_REVOKED, FORBIDDEN (not an agent token)", body = ErrorEnvelope),
              (status = 404, description = "SECRET_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "SECRET_NOT_DELIVERABLE, AGENT_PUBLIC_KEY_MISSING", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(agent_id = %agent.agent_id))]
pub async fn agent_secret(
    State(state): State<AppState>,
    agent: AgentIdentity,
    ApiPath(p): ApiPath<SecretPath>,
) -> Result<Reply<AgentSecret>, ApiError> {
    Ok(ok(state
        .secrets
        .deliver(&agent, &SecretId::from(p.id))
        .await?))
}
