//! HTTP handlers and DTOs of agents: pairing, registration, heartbeats,
//! token rotation, reads, revoke, and the human pairing page.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use botmox_protocol::{
    Agent, AgentPublicKey, AgentPublicKeyRequest, HeartbeatRequest, HeartbeatResponse, ProxmoxHint,
    RegisterRequest, RegisterResponse, RotateTokenResponse,
};
use serde::Deserialize;
use utoipa::ToSchema;

use super::service::{Pairing, PairingInput};
use super::store::AGENT_LIST;
use super::AgentIdentity;
use crate::auth::Identity;
use crate::config::TlsMode;
use crate::db::ids::{AgentId, UserId};
use crate::http::envelope::{created, ok, paged, Deleted, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::{
    list_query_doc, opt_text, opt_trimmed_name, ApiJson, ApiPath, ClientIp,
};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePairing {
    /// Display name (the machine name is used when empty).
    #[schema(schema_with = opt_trimmed_name::<200>)]
    pub name: Option<String>,
    /// Minutes until the code expires (default 15).
    #[schema(minimum = 5, maximum = 1440)]
    pub expires_in_minutes: Option<u32>,
    /// Admins may pair an agent for another user of the tenant.
    pub owner_user_id: Option<UserId>,
    /// Non-secret Proxmox defaults the agent pre-fills.
    pub proxmox: Option<ProxmoxHint>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    #[schema(schema_with = opt_text::<0, 500>)]
    pub reason: Option<String>,
}

/// The URL agents should use: configured `public_url`, else this request's host.
fn server_url(state: &AppState, uri: &axum::http::Uri, headers: &axum::http::HeaderMap) -> String {
    if let Some(u) = &state.cfg.public_url {
        return u.clone();
    }
    let scheme = if state.tls_sha256.is_some() {
        "https"
    } else {
        "http"
    };
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| state.cfg.listen.to_string());
    format!("{scheme}://{host}")
}

/// Create a pending agent and a one-time pairing code (operator+).
#[utoipa::path(post, path = "/api/v1/agents/pairings", tag = "agents", security(("bearer" = [])),
    request_body = CreatePairing,
    responses((status = 201, body = Envelope<Pairing>,
               links(("GetAgent" = (operation_id = "get_agent", parameters(("id" = "$response.body#/data/agent/id")))),
                     ("DeletePairing" = (operation_id = "delete_pairing", parameters(("id" = "$response.body#/data/agent/id")))),
                     ("RevokeAgent" = (operation_id = "revoke_agent", parameters(("id" = "$response.body#/data/agent/id")))),
                     ("Register" = (operation_id = "register",
                                    request_body = json!({"pairing_code": "$response.body#/data/pairing_code"}))))),
              (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn create_pairing(
    State(state): State<AppState>,
    identity: Identity,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<CreatePairing>,
) -> Result<Reply<Pairing>, ApiError> {
    let url = server_url(&state, &uri, &headers);
    let pin = match state.cfg.tls {
        TlsMode::SelfSigned => state.tls_sha256.as_deref().map(str::to_string),
        _ => None,
    };
    let p = state
        .agents
        .create_pairing(
            &identity,
            PairingInput {
                name: req.name,
                expires_in_minutes: req.expires_in_minutes,
                owner_user_id: req.owner_user_id,
                proxmox: req.proxmox,
            },
            url,
            pin,
        )
        .await?;
    Ok(created(p))
}

/// Redeem a pairing code (public, rate limited per IP). Returns the agent token once.
#[utoipa::path(post, path = "/api/v1/agents/register", tag = "agents", request_body = RegisterRequest,
    responses((status = 201, body = Envelope<RegisterResponse>), (status = 400, body = ErrorEnvelope),
              (status = 404, description = "PAIRING_NOT_FOUND", body = ErrorEnvelope),
              (status = 410, description = "PAIRING_EXPIRED", body = ErrorEnvelope),
              (status = 429, body = ErrorEnvelope)))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<Reply<RegisterResponse>, ApiError> {
    state
        .limits
        .check_public(&ip)
        .map_err(ApiError::rate_limited)?;
    let registered = state.agents.register(req).await?;
    state
        .limits
        .remember_token(&crate::http::middleware::token_key(&registered.agent_token));
    Ok(created(registered))
}

/// An agent reports it is alive; the answer carries the intervals to obey.
#[utoipa::path(post, path = "/api/v1/agents/heartbeat", tag = "agents", security(("bearer" = [])),
    request_body = HeartbeatRequest,
    responses((status = 200, body = Envelope<HeartbeatResponse>), (status = 401, body = ErrorEnvelope),
              (status = 403, description = "AGENT_REVOKED", body = ErrorEnvelope)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    agent: AgentIdentity,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> Result<Reply<HeartbeatResponse>, ApiError> {
    Ok(ok(state.agents.heartbeat(&agent, req).await?))
}

/// Issue a new agent token; the old one keeps working for 10 minutes.
#[utoipa::path(post, path = "/api/v1/agents/token/rotate", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = Envelope<RotateTokenResponse>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope)))]
pub async fn rotate_token(
    State(state): State<AppState>,
    agent: AgentIdentity,
) -> Result<Reply<RotateTokenResponse>, ApiError> {
    let rotated = state.agents.rotate_token(&agent).await?;
    state
        .limits
        .remember_token(&crate::http::middleware::token_key(&rotated.agent_token));
    Ok(ok(rotated))
}

/// Register the agent's X25519 public key (agent token). Idempotent; a new
/// key replaces the previous one, and secrets sealed to the old key must be
/// put again (`SECRET_NOT_DELIVERABLE` until then).
#[utoipa::path(put, path = "/api/v1/agents/me/public-key", tag = "agents", security(("bearer" = [])),
    request_body = AgentPublicKeyRequest,
    responses((status = 200, body = Envelope<AgentPublicKey>),
              (status = 400, description = "VALIDATION_ERROR (alg, public_key)", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope),
              (status = 403, description = "AGENT_REVOKED, FORBIDDEN (not an agent token)", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(agent_id = %agent.agent_id))]
pub async fn put_public_key(
    State(state): State<AppState>,
    agent: AgentIdentity,
    ApiJson(req): ApiJson<AgentPublicKeyRequest>,
) -> Result<Reply<AgentPublicKey>, ApiError> {
    Ok(ok(state.agents.register_public_key(&agent, req).await?))
}

list_query_doc!(AgentListQuery, AGENT_LIST);

/// Agents the caller may see (own agents; admins: the whole tenant), newest
/// first. List kit: sort on created_at, name, status, last_seen_at,
/// machine_name; filter on created_at, name, status, last_seen_at,
/// owner_user_id; `q` searches name and machine_name.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", security(("bearer" = [])),
    params(AgentListQuery),
    responses((status = 200, body = Envelope<Vec<Agent>>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope)))]
pub async fn list_agents(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<Agent>>, ApiError> {
    let (params, _) = AGENT_LIST.parse(q.as_deref().unwrap_or(""), &[])?;
    Ok(paged(state.agents.list(&identity, &params).await?))
}

/// One agent, with its computed connection state.
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Agent>), (status = 404, body = ErrorEnvelope)))]
pub async fn get_agent(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<Reply<Agent>, ApiError> {
    Ok(ok(state.agents.get_view(&identity, &id).await?))
}

/// Revoke an agent (admin): its token stops working at once.
#[utoipa::path(post, path = "/api/v1/agents/{id}/revoke", tag = "agents", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = RevokeRequest,
    responses((status = 200, body = Envelope<Agent>), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 409, description = "ALREADY_REVOKED", body = ErrorEnvelope)))]
pub async fn revoke_agent(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<AgentId>,
    ApiJson(req): ApiJson<RevokeRequest>,
) -> Result<Reply<Agent>, ApiError> {
    Ok(ok(state.agents.revoke(&identity, &id, req.reason).await?))
}

/// Delete a pairing that was never redeemed.
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Deleted>), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "AGENT_NOT_PENDING", body = ErrorEnvelope)))]
pub async fn delete_pairing(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<Reply<Deleted>, ApiError> {
    state.agents.delete_pending(&identity, &id).await?;
    Ok(ok(Deleted { deleted: true }))
}

/// `GET /agent/pair?bundle=…`: a page telling a person what to do with a bundle.
pub async fn pair_page(
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> (
    StatusCode,
    [(axum::http::HeaderName, &'static str); 1],
    String,
) {
    let bundle = q
        .as_deref()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("bundle="))
        .unwrap_or("")
        .to_string();
    let html_type = [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")];
    match botmox_protocol::PairingBundle::decode(&bundle) {
        Ok(b) => {
            let esc = |s: &str| {
                s.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
                    .replace('"', "&quot;")
            };
            let pin = b
                .server_cert_sha256
                .as_deref()
                .map(|f| format!("<p>The agent will trust only the certificate with SHA-256 <code>{}</code>.</p>", esc(f)))
                .unwrap_or_default();
            (
                StatusCode::OK,
                html_type,
                format!(
                    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Pair a Bot-Mox agent</title></head>\
                     <body><h1>Pair a Bot-Mox agent</h1>\
                     <p>Open the Bot-Mox agent on the computer that can reach your Proxmox host and choose <b>Pair…</b>, \
                     or click <a href=\"botmox://pair?bundle={b64}\">open in the Bot-Mox agent</a>. \
                     For a headless agent run <code>botmox-agent pair '{b64}'</code>.</p>\
                     <p>Server: <code>{server}</code></p>{pin}\
                     <label for=\"bundle\">Pairing bundle (copy all of it)</label><br>\
                     <textarea id=\"bundle\" rows=\"6\" cols=\"80\" readonly>{b64}</textarea>\
                     <p>The code works once and expires; create a new pairing if it fails.</p></body></html>",
                    b64 = esc(&bundle),
                    server = esc(&b.server_url),
                ),
            )
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            html_type,
            format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Invalid pairing link</title></head>\
                 <body><h1>This pairing link is not valid</h1><p>{}</p><p>Ask your administrator for a new pairing link.</p></body></html>",
                e.to_string().replace('<', "&lt;")
            ),
        ),
    }
}
