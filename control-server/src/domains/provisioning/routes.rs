//! HTTP handlers of provisioning and playbooks.

use axum::extract::{RawQuery, State};
use serde::Deserialize;
use utoipa::ToSchema;

use super::dto::GenerateInput;
use super::playbook::PlaybookCheck;
use super::service::{
    GeneratedPayload, GuestPlaybook, Playbook, PlaybookInput, ProgressView, ReportAck, ReportInput,
    ServerInfo, TokenValidation, TokenView,
};
use super::store::{Step, StepStatus, PLAYBOOK_LIST};
use crate::auth::{bearer_from_headers, Identity};
use crate::config::TlsMode;
use crate::db::ids::PlaybookId;
use crate::http::envelope::{created, ok, paged, Deleted, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ClientIp, ListQueryDoc};
use crate::state::AppState;

/// Where guests reach the server: `public_url`, else this request's origin.
pub(crate) fn api_endpoint(
    state: &AppState,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
) -> String {
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

/// The per-IP and per-token budgets of the guests' public calls (the
/// `public_rate_limit_per_minute` quota, in buckets of their own).
fn guest_limits(state: &AppState, ip: &str, token: &str) -> Result<(), ApiError> {
    state
        .limits
        .check_public(&format!("provisioning-ip:{ip}"))
        .map_err(ApiError::rate_limited)?;
    state
        .limits
        .check_public(&format!(
            "provisioning-token:{}",
            crate::http::middleware::token_key(token)
        ))
        .map_err(ApiError::rate_limited)
}

/// Generate a VM's provisioning ISO payload and its token (operator+).
///
/// Windows: the answer file of the unattend profile, `provision.json`,
/// `START.ps1` (and `playbook.yml`) — pass `data.files` as the `files` of
/// `proxmox.create-provision-iso`. Linux (`os: linux`): a cloud-init NoCloud
/// seed; upload `data.seed_iso` with `proxmox.upload-iso`. A VM has one
/// active token: generating again revokes the previous one (event
/// `provisioning.token_revoked`, reason `reissued`); replacing another
/// user's token needs admin. With `agent_id` and `vmid`, the server detaches
/// and deletes the ISO through that agent when the VM reports `completed`.
#[utoipa::path(post, path = "/api/v1/provisioning/generate-iso-payload", tag = "provisioning",
    security(("bearer" = [])), request_body = GenerateInput,
    responses((status = 201, body = Envelope<GeneratedPayload>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope),
              (status = 403, description = "FORBIDDEN, AGENT_OWNER_MISMATCH", body = ErrorEnvelope),
              (status = 404, description = "AGENT_NOT_FOUND, PLAYBOOK_NOT_FOUND, or the profile's code", body = ErrorEnvelope),
              (status = 409, description = "CONFLICT (a concurrent re-issue)", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn generate_iso_payload(
    State(state): State<AppState>,
    identity: Identity,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<GenerateInput>,
) -> Result<Reply<GeneratedPayload>, ApiError> {
    let server = ServerInfo {
        api_endpoint: api_endpoint(&state, &uri, &headers),
        server_cert_sha256: match state.cfg.tls {
            TlsMode::SelfSigned => state.tls_sha256.as_deref().map(str::to_string),
            _ => None,
        },
    };
    Ok(created(
        state.provisioning.generate(&identity, req, server).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateTokenRequest {
    /// The `bmxv_…` token from provision.json.
    #[schema(max_length = 200)]
    pub token: String,
    /// The VM's UUID from provision.json.
    #[schema(max_length = 100)]
    pub vm_uuid: String,
}

/// A guest checks its provisioning token (public: the token is the
/// credential; rate limited per IP and per token). Errors: `TOKEN_INVALID`
/// (404), `VM_MISMATCH` (403), `TOKEN_USED` (409), `TOKEN_EXPIRED` and
/// `TOKEN_REVOKED` (410) — with fixed messages.
#[utoipa::path(post, path = "/api/v1/provisioning/validate-token", tag = "provisioning",
    request_body = ValidateTokenRequest,
    responses((status = 200, body = Envelope<TokenValidation>),
              (status = 400, body = ErrorEnvelope),
              (status = 404, description = "TOKEN_INVALID", body = ErrorEnvelope),
              (status = 410, description = "TOKEN_EXPIRED, TOKEN_REVOKED", body = ErrorEnvelope),
              (status = 403, description = "VM_MISMATCH", body = ErrorEnvelope),
              (status = 409, description = "TOKEN_USED", body = ErrorEnvelope),
              (status = 429, description = "RATE_LIMITED", body = ErrorEnvelope)))]
pub async fn validate_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<ValidateTokenRequest>,
) -> Result<Reply<TokenValidation>, ApiError> {
    guest_limits(&state, &ip, &req.token)?;
    Ok(ok(state
        .provisioning
        .validate_token(&req.token, &req.vm_uuid)
        .await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportProgressRequest {
    #[schema(max_length = 200)]
    pub token: String,
    #[schema(max_length = 100)]
    pub vm_uuid: String,
    pub step: Step,
    pub status: StepStatus,
    /// A JSON object of at most 8 KiB of JSON (e.g. `{"error": "…"}`).
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A guest reports a step (public, token in the body; rate limited per IP
/// and per token). Repeated and out-of-order reports are accepted: each
/// step is stored once with its first and last report time; a final status
/// is not moved back. Every report is a `provisioning.progress` event.
/// `completed`/`completed` marks the token used and detaches the ISO.
#[utoipa::path(post, path = "/api/v1/provisioning/report-progress", tag = "provisioning",
    request_body = ReportProgressRequest,
    responses((status = 200, body = Envelope<ReportAck>),
              (status = 400, body = ErrorEnvelope),
              (status = 404, description = "TOKEN_INVALID", body = ErrorEnvelope),
              (status = 410, description = "TOKEN_EXPIRED, TOKEN_REVOKED", body = ErrorEnvelope),
              (status = 403, description = "VM_MISMATCH", body = ErrorEnvelope),
              (status = 409, description = "TOKEN_USED", body = ErrorEnvelope),
              (status = 429, description = "RATE_LIMITED", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn report_progress(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<ReportProgressRequest>,
) -> Result<Reply<ReportAck>, ApiError> {
    guest_limits(&state, &ip, &req.token)?;
    Ok(ok(state
        .provisioning
        .report_progress(ReportInput {
            token: req.token,
            vm_uuid: req.vm_uuid,
            step: req.step,
            status: req.status,
            details: req.details.map(serde_json::Value::Object),
        })
        .await?))
}

/// A VM's provisioning progress: its newest token, the steps with times,
/// the overall state and the auto-detach (viewer+; the token's issuer, admins
/// the tenant).
#[utoipa::path(get, path = "/api/v1/provisioning/progress/{vm_uuid}", tag = "provisioning",
    security(("bearer" = [])), params(("vm_uuid" = String, Path)),
    responses((status = 200, body = Envelope<ProgressView>), (status = 401, body = ErrorEnvelope),
              (status = 404, description = "PROVISIONING_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_progress(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(vm_uuid): ApiPath<String>,
) -> Result<Reply<ProgressView>, ApiError> {
    Ok(ok(state.provisioning.progress(&identity, &vm_uuid).await?))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RevokeTokenRequest {
    /// Why (≤ 200 characters, no control characters; default `revoked`).
    #[schema(
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub reason: Option<String>,
}

/// Revoke a VM's active provisioning token (operator: tokens they issued;
/// admin: any of the tenant).
#[utoipa::path(post, path = "/api/v1/provisioning/tokens/{vm_uuid}/revoke", tag = "provisioning",
    security(("bearer" = [])), params(("vm_uuid" = String, Path)), request_body = RevokeTokenRequest,
    responses((status = 200, body = Envelope<TokenView>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "PROVISIONING_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "TOKEN_NOT_ACTIVE", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn revoke_token(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(vm_uuid): ApiPath<String>,
    ApiJson(req): ApiJson<RevokeTokenRequest>,
) -> Result<Reply<TokenView>, ApiError> {
    Ok(ok(state
        .provisioning
        .revoke(&identity, &vm_uuid, req.reason)
        .await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GuestPlaybookQuery {
    /// The VM's UUID from provision.json.
    #[param(max_length = 100)]
    pub vm_uuid: String,
}

/// A guest fetches its playbook (`Authorization: Bearer bmxv_…`, the
/// provisioning token; public otherwise, rate limited per IP and per token).
#[utoipa::path(get, path = "/api/v1/provisioning/playbook", tag = "provisioning",
    params(GuestPlaybookQuery),
    responses((status = 200, body = Envelope<GuestPlaybook>), (status = 400, body = ErrorEnvelope),
              (status = 404, description = "TOKEN_INVALID", body = ErrorEnvelope),
              (status = 410, description = "TOKEN_EXPIRED, TOKEN_REVOKED", body = ErrorEnvelope),
              (status = 403, description = "VM_MISMATCH", body = ErrorEnvelope),
              (status = 404, description = "PLAYBOOK_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "TOKEN_USED", body = ErrorEnvelope),
              (status = 429, description = "RATE_LIMITED", body = ErrorEnvelope)))]
pub async fn guest_playbook(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    ApiQuery(q): ApiQuery<GuestPlaybookQuery>,
) -> Result<Reply<GuestPlaybook>, ApiError> {
    let token = bearer_from_headers(&headers).unwrap_or("").to_string();
    guest_limits(&state, &ip, &token)?;
    Ok(ok(state
        .provisioning
        .guest_playbook(&token, &q.vm_uuid)
        .await?))
}

// ---------------------------------------------------------------- playbooks

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlaybook {
    /// 1..200 characters (not only spaces, no control characters), unique per owner.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub name: String,
    /// Setting it clears the owner's other default.
    pub is_default: Option<bool>,
    /// YAML: a mapping with `name` and `roles: [{role, when?, tags?, vars?}]` (≤ 64 KiB).
    #[schema(min_length = 1, max_length = 65536)]
    pub content: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchPlaybook {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069][^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"
    )]
    pub name: Option<String>,
    pub is_default: Option<bool>,
    pub content: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidatePlaybook {
    pub content: String,
}

/// Playbooks the caller may see (own; admins the tenant's), newest first.
/// List kit: sort on created_at, updated_at, name; filter on those and
/// owner_user_id, is_default (0/1); `q` searches name.
#[utoipa::path(get, path = "/api/v1/playbooks", tag = "playbooks", security(("bearer" = [])),
    params(ListQueryDoc),
    responses((status = 200, body = Envelope<Vec<Playbook>>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope)))]
pub async fn list_playbooks(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<Playbook>>, ApiError> {
    let (params, _) = PLAYBOOK_LIST.parse(q.as_deref().unwrap_or(""), &[])?;
    Ok(paged(
        state
            .provisioning
            .list_playbooks(&identity, &params)
            .await?,
    ))
}

/// Create a playbook (operator+); the YAML is validated (errors name the path).
#[utoipa::path(post, path = "/api/v1/playbooks", tag = "playbooks", security(("bearer" = [])),
    request_body = CreatePlaybook,
    responses((status = 201, body = Envelope<Playbook>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 409, description = "CONFLICT: name taken", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn create_playbook(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<CreatePlaybook>,
) -> Result<Reply<Playbook>, ApiError> {
    Ok(created(
        state
            .provisioning
            .create_playbook(
                &identity,
                PlaybookInput {
                    name: Some(req.name),
                    is_default: req.is_default,
                    content: Some(req.content),
                },
            )
            .await?,
    ))
}

/// Check a playbook's YAML without storing it.
#[utoipa::path(post, path = "/api/v1/playbooks/validate", tag = "playbooks", security(("bearer" = [])),
    request_body = ValidatePlaybook,
    responses((status = 200, body = Envelope<PlaybookCheck>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope)))]
pub async fn validate_playbook(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<ValidatePlaybook>,
) -> Result<Reply<PlaybookCheck>, ApiError> {
    Ok(ok(state
        .provisioning
        .validate_playbook(&identity, &req.content)?))
}

/// One playbook (own; admins the tenant's).
#[utoipa::path(get, path = "/api/v1/playbooks/{id}", tag = "playbooks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Playbook>), (status = 401, body = ErrorEnvelope),
              (status = 404, description = "PLAYBOOK_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_playbook(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<PlaybookId>,
) -> Result<Reply<Playbook>, ApiError> {
    Ok(ok(state.provisioning.get_playbook(&identity, &id).await?))
}

/// Replace a playbook's name and content (operator+: own; admin: any).
#[utoipa::path(put, path = "/api/v1/playbooks/{id}", tag = "playbooks", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = CreatePlaybook,
    responses((status = 200, body = Envelope<Playbook>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "PLAYBOOK_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "CONFLICT: name taken", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn replace_playbook(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<PlaybookId>,
    ApiJson(req): ApiJson<CreatePlaybook>,
) -> Result<Reply<Playbook>, ApiError> {
    Ok(ok(state
        .provisioning
        .update_playbook(
            &identity,
            &id,
            PlaybookInput {
                name: Some(req.name),
                is_default: req.is_default,
                content: Some(req.content),
            },
            true,
        )
        .await?))
}

/// Change some of a playbook's fields (operator+: own; admin: any).
#[utoipa::path(patch, path = "/api/v1/playbooks/{id}", tag = "playbooks", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = PatchPlaybook,
    responses((status = 200, body = Envelope<Playbook>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "PLAYBOOK_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "CONFLICT: name taken", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn patch_playbook(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<PlaybookId>,
    ApiJson(req): ApiJson<PatchPlaybook>,
) -> Result<Reply<Playbook>, ApiError> {
    Ok(ok(state
        .provisioning
        .update_playbook(
            &identity,
            &id,
            PlaybookInput {
                name: req.name,
                is_default: req.is_default,
                content: req.content,
            },
            false,
        )
        .await?))
}

/// Delete a playbook (operator+: own; admin: any).
#[utoipa::path(delete, path = "/api/v1/playbooks/{id}", tag = "playbooks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<Deleted>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope),
              (status = 404, description = "PLAYBOOK_NOT_FOUND", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn delete_playbook(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(id): ApiPath<PlaybookId>,
) -> Result<Reply<Deleted>, ApiError> {
    state.provisioning.delete_playbook(&identity, &id).await?;
    Ok(ok(Deleted { deleted: true }))
}
