//! HTTP handlers and DTOs of artifacts: releases, content uploads,
//! assignments, resolve-download and its audit.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use serde::Deserialize;
use utoipa::openapi::ObjectBuilder;
use utoipa::openapi::Type;
use utoipa::{IntoParams, ToSchema};

use super::service::{
    AssignInput, AssignmentLookup, AssignmentView, CreateRelease, DownloadAuditView, ReleaseView,
    ResolveInput, ResolvedDownload, SCOPE_PATTERN, SHA256_PATTERN, VERSION_PATTERN,
};
use super::store::{ReleaseStatus, AUDIT_LIST, RELEASE_LIST, RELEASE_STATUSES};
use crate::auth::Identity;
use crate::db::ids::{ArtifactReleaseId, UserId};
use crate::domains::licensing::service::MODULE_PATTERN;
use crate::domains::vms::routes::text_enum_schema;
use crate::http::envelope::{created, ok, paged, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::{list_query_doc, ApiJson, ApiPath, ApiQuery, ClientIp};
use crate::objects::routes::Binary;
use crate::objects::{BaseUrl, ObjectKey};
use crate::state::AppState;

fn pattern(p: &'static str, description: &'static str) -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(p))
        .description(Some(description))
        .build()
}

fn opt_pattern(p: &'static str, description: &'static str) -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::Array(vec![
            Type::String,
            Type::Null,
        ]))
        .pattern(Some(p))
        .description(Some(description))
        .build()
}

fn module_schema() -> utoipa::openapi::Object {
    pattern(MODULE_PATTERN, "1-200 characters of A-Z a-z 0-9 . _ : -")
}
fn platform_schema() -> utoipa::openapi::Object {
    pattern(
        SCOPE_PATTERN,
        "e.g. `windows`; 1-50 of A-Z a-z 0-9 . _ - (lower-cased)",
    )
}
fn channel_schema() -> utoipa::openapi::Object {
    opt_pattern(
        SCOPE_PATTERN,
        "Default `stable`; 1-50 of A-Z a-z 0-9 . _ - (lower-cased)",
    )
}
fn version_schema() -> utoipa::openapi::Object {
    pattern(
        VERSION_PATTERN,
        "1-100 characters of A-Z a-z 0-9 . _ + ~ : -",
    )
}
fn sha256_schema() -> utoipa::openapi::Object {
    pattern(SHA256_PATTERN, "SHA-256 of the bytes, 64 hex digits")
}
fn object_key_schema() -> utoipa::openapi::Object {
    opt_pattern(
        ObjectKey::PATTERN,
        "An object already in the store under `artifacts/<tenant>/` (its size and SHA-256 are verified); \
         leave out to upload the content through the server",
    )
}
fn vm_uuid_schema() -> utoipa::openapi::Object {
    pattern(
        crate::domains::vms::service::VM_UUID_PATTERN,
        "8-128 characters of A-Z a-z 0-9 : _ - (any case)",
    )
}

pub fn release_status_schema() -> utoipa::openapi::Object {
    text_enum_schema(RELEASE_STATUSES, false)
}
fn opt_release_status_schema() -> utoipa::openapi::Object {
    text_enum_schema(RELEASE_STATUSES, true)
}
pub fn content_state_schema() -> utoipa::openapi::Object {
    text_enum_schema(&["pending", "ready"], false)
}
pub fn audit_result_schema() -> utoipa::openapi::Object {
    text_enum_schema(&["allowed", "denied", "error"], false)
}
pub fn audit_event_schema() -> utoipa::openapi::Object {
    text_enum_schema(
        &["resolve_success", "resolve_denied", "download_url_issued"],
        false,
    )
}

// ---- releases ----

list_query_doc!(ReleaseListQuery, RELEASE_LIST);

/// The tenant's artifact releases (admin), newest first. List kit: sort on
/// created_at, updated_at, module, platform, channel, version, status,
/// size_bytes; filter on those, content and object_key; `q` searches
/// module, version and object_key.
#[utoipa::path(get, path = "/api/v1/artifacts/releases", tag = "artifacts", security(("bearer" = [])),
    params(ReleaseListQuery),
    responses((status = 200, body = Envelope<Vec<ReleaseView>>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_releases(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<ReleaseView>>, ApiError> {
    let (params, _) = RELEASE_LIST.parse(q.as_deref().unwrap_or(""), &[])?;
    Ok(paged(
        state.artifacts.list_releases(&identity, &params).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReleaseRequest {
    #[schema(schema_with = module_schema)]
    pub module: String,
    #[schema(schema_with = platform_schema)]
    pub platform: String,
    #[schema(schema_with = channel_schema)]
    pub channel: Option<String>,
    #[schema(schema_with = version_schema)]
    pub version: String,
    #[schema(schema_with = object_key_schema)]
    pub object_key: Option<String>,
    #[schema(schema_with = sha256_schema)]
    pub sha256: String,
    /// Bytes (uploads through the server: at most `artifact_max_bytes`).
    #[schema(minimum = 1)]
    pub size_bytes: i64,
    /// Default `active` for a registered object, `draft` (the only choice)
    /// for a later upload.
    #[schema(schema_with = opt_release_status_schema)]
    pub status: Option<ReleaseStatus>,
}

/// Create a release (admin). With `object_key`: the object must already
/// be in the store under `artifacts/<tenant>/`, with exactly `size_bytes`
/// and `sha256` (it is read and hashed). Without: a `draft` release whose
/// content is then uploaded with `PUT …/releases/{id}/content`.
#[utoipa::path(post, path = "/api/v1/artifacts/releases", tag = "artifacts", security(("bearer" = [])),
    request_body = CreateReleaseRequest,
    responses((status = 201, body = Envelope<ReleaseView>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "ARTIFACT_OBJECT_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "ARTIFACT_CONTENT_MISMATCH, CONFLICT (module/platform/channel/version or object_key taken)", body = ErrorEnvelope),
              (status = 503, description = "OBJECT_STORE_UNAVAILABLE, DATABASE_ERROR", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn create_release(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<CreateReleaseRequest>,
) -> Result<Reply<ReleaseView>, ApiError> {
    let input = CreateRelease {
        module: req.module,
        platform: req.platform,
        channel: req.channel,
        version: req.version,
        object_key: req.object_key,
        sha256: req.sha256,
        size_bytes: req.size_bytes,
        status: req.status,
    };
    Ok(created(
        state.artifacts.create_release(&identity, input).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ReleasePath {
    /// The release id.
    #[param(value_type = String)]
    pub id: ArtifactReleaseId,
}

/// One release (admin).
#[utoipa::path(get, path = "/api/v1/artifacts/releases/{id}", tag = "artifacts", security(("bearer" = [])),
    params(ReleasePath),
    responses((status = 200, body = Envelope<ReleaseView>),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "ARTIFACT_RELEASE_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_release(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<ReleasePath>,
) -> Result<Reply<ReleaseView>, ApiError> {
    Ok(ok(state.artifacts.get_release(&identity, &p.id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRelease {
    /// Only `active` releases are handed out by resolve-download.
    #[schema(schema_with = release_status_schema)]
    pub status: ReleaseStatus,
}

/// Change a release's status (admin): draft, active, disabled, archived.
/// A release whose content was never uploaded can only be a draft.
#[utoipa::path(patch, path = "/api/v1/artifacts/releases/{id}", tag = "artifacts", security(("bearer" = [])),
    params(ReleasePath), request_body = PatchRelease,
    responses((status = 200, body = Envelope<ReleaseView>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "ARTIFACT_RELEASE_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "ARTIFACT_CONTENT_MISSING", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn patch_release(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<ReleasePath>,
    ApiJson(req): ApiJson<PatchRelease>,
) -> Result<Reply<ReleaseView>, ApiError> {
    Ok(ok(state
        .artifacts
        .set_status(&identity, &p.id, req.status)
        .await?))
}

/// Upload a pending release's content (admin): the raw bytes, streamed
/// to the object store while their SHA-256 is computed. Refused, with
/// nothing stored, when longer than `size_bytes` (413) or when size or
/// SHA-256 differ from the release (409). The release stays a draft:
/// activate it with PATCH.
#[utoipa::path(put, path = "/api/v1/artifacts/releases/{id}/content", tag = "artifacts", security(("bearer" = [])),
    params(ReleasePath),
    request_body(content = Binary, content_type = "application/octet-stream",
                 description = "The release's bytes"),
    responses((status = 200, body = Envelope<ReleaseView>),
              (status = 400, description = "BAD_REQUEST (the upload was cut short)", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "ARTIFACT_RELEASE_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "ARTIFACT_CONTENT_MISMATCH, ARTIFACT_CONTENT_EXISTS", body = ErrorEnvelope),
              (status = 413, description = "PAYLOAD_TOO_LARGE (more than size_bytes)", body = ErrorEnvelope),
              (status = 503, description = "OBJECT_STORE_UNAVAILABLE, DATABASE_ERROR", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn upload_content(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<ReleasePath>,
    body: Body,
) -> Result<Reply<ReleaseView>, ApiError> {
    Ok(ok(state
        .artifacts
        .upload_content(&identity, &p.id, body.into_data_stream())
        .await?))
}

// ---- assignments ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// A user of the tenant; leave out for the tenant's default.
    pub user_id: Option<UserId>,
    #[schema(schema_with = module_schema)]
    pub module: String,
    #[schema(schema_with = platform_schema)]
    pub platform: String,
    #[schema(schema_with = channel_schema)]
    pub channel: Option<String>,
    /// A release of this module, platform and channel.
    #[schema(value_type = String)]
    pub release_id: ArtifactReleaseId,
}

/// Assign a release to a user, or as the tenant default (admin). The
/// scope's previous assignment is replaced in the same transaction.
#[utoipa::path(post, path = "/api/v1/artifacts/assign", tag = "artifacts", security(("bearer" = [])),
    request_body = AssignRequest,
    responses((status = 201, body = Envelope<AssignmentView>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "ARTIFACT_RELEASE_NOT_FOUND, USER_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "ARTIFACT_SCOPE_MISMATCH", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn assign(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(req): ApiJson<AssignRequest>,
) -> Result<Reply<AssignmentView>, ApiError> {
    let input = AssignInput {
        user_id: req.user_id,
        module: req.module,
        platform: req.platform,
        channel: req.channel,
        release_id: req.release_id,
    };
    Ok(created(state.artifacts.assign(&identity, input).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AssignPath {
    /// A user of the caller's tenant.
    #[param(value_type = String)]
    pub user_id: UserId,
    #[param(pattern = "^[A-Za-z0-9._:-]{1,200}$")]
    pub module: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AssignQuery {
    /// Default `windows`.
    #[param(pattern = "^[A-Za-z0-9._-]{1,50}$")]
    pub platform: Option<String>,
    /// Default `stable`.
    #[param(pattern = "^[A-Za-z0-9._-]{1,50}$")]
    pub channel: Option<String>,
}

/// A user's assignment for a module, the tenant default and the effective
/// one (admin).
#[utoipa::path(get, path = "/api/v1/artifacts/assign/{user_id}/{module}", tag = "artifacts", security(("bearer" = [])),
    params(AssignPath, AssignQuery),
    responses((status = 200, body = Envelope<AssignmentLookup>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "USER_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_assignment(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<AssignPath>,
    ApiQuery(q): ApiQuery<AssignQuery>,
) -> Result<Reply<AssignmentLookup>, ApiError> {
    Ok(ok(state
        .artifacts
        .lookup(
            &identity,
            &p.user_id,
            &p.module,
            q.platform.as_deref(),
            q.channel.as_deref(),
        )
        .await?))
}

// ---- resolve-download ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The token of `/license/lease`.
    #[schema(min_length = 1, max_length = 8192)]
    pub lease_token: String,
    /// The VM the lease was issued for.
    #[schema(schema_with = vm_uuid_schema)]
    pub vm_uuid: String,
    /// The module the lease was issued for.
    #[schema(schema_with = module_schema)]
    pub module: String,
    #[schema(schema_with = platform_schema)]
    pub platform: String,
    #[schema(schema_with = channel_schema)]
    pub channel: Option<String>,
}

/// Resolve the download of a module's assigned release for a leased VM
/// (operator+; the lease's user, whoever leased it, or an admin). The
/// chain: the lease token (401 `UNAUTHORIZED` forged/tampered, 409
/// `LEASE_EXPIRED`), the lease in the caller's tenant (404
/// `LEASE_NOT_FOUND`, 409 `LEASE_INACTIVE`, 403 `LEASE_OWNER_MISMATCH`),
/// the VM and module (403 `VM_UUID_MISMATCH`, `MODULE_MISMATCH`), the
/// lease user's assignment or the tenant default (404
/// `ARTIFACT_ASSIGNMENT_NOT_FOUND`), the release (404
/// `ARTIFACT_RELEASE_NOT_FOUND`, 409 `ARTIFACT_RELEASE_NOT_ACTIVE`), the
/// object (404 `ARTIFACT_OBJECT_NOT_FOUND`, 502 `S3_HEAD_OBJECT_FAILED`),
/// then a URL valid 60-300 s. Every outcome is audited
/// (`GET /api/v1/artifacts/audit`); without the audit row no URL is given
/// (502 `ARTIFACT_AUDIT_WRITE_FAILED`).
#[utoipa::path(post, path = "/api/v1/artifacts/resolve-download", tag = "artifacts", security(("bearer" = [])),
    request_body = ResolveRequest,
    responses((status = 200, body = Envelope<ResolvedDownload>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, description = "UNAUTHORIZED (bearer or lease token)", body = ErrorEnvelope),
              (status = 403, description = "FORBIDDEN, LEASE_OWNER_MISMATCH, VM_UUID_MISMATCH, MODULE_MISMATCH", body = ErrorEnvelope),
              (status = 404, description = "LEASE_NOT_FOUND, ARTIFACT_ASSIGNMENT_NOT_FOUND, ARTIFACT_RELEASE_NOT_FOUND, ARTIFACT_OBJECT_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "LEASE_INACTIVE, LEASE_EXPIRED, ARTIFACT_RELEASE_NOT_ACTIVE, ARTIFACT_CONTENT_MISMATCH", body = ErrorEnvelope),
              (status = 502, description = "S3_HEAD_OBJECT_FAILED, ARTIFACT_AUDIT_WRITE_FAILED", body = ErrorEnvelope),
              (status = 503, description = "OBJECT_STORE_UNAVAILABLE, DATABASE_ERROR", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn resolve_download(
    State(state): State<AppState>,
    identity: Identity,
    ClientIp(ip): ClientIp,
    base: BaseUrl,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> Result<Reply<ResolvedDownload>, ApiError> {
    let input = ResolveInput {
        lease_token: req.lease_token,
        vm_uuid: req.vm_uuid,
        module: req.module,
        platform: req.platform,
        channel: req.channel,
    };
    Ok(ok(state
        .artifacts
        .resolve_download(&identity, &ip, &base, input)
        .await?))
}

// ---- audit ----

list_query_doc!(AuditListQuery, AUDIT_LIST);

/// Every resolve-download attempt (admin), newest first. List kit: sort on
/// created_at, result, module, vm_uuid; filter on those and event_type,
/// platform, channel, user_id, actor_id, lease_id, release_id,
/// error_code, request_ip (`created_at_gte`/`_lt` for a time window); `q`
/// searches module and vm_uuid.
#[utoipa::path(get, path = "/api/v1/artifacts/audit", tag = "artifacts", security(("bearer" = [])),
    params(AuditListQuery),
    responses((status = 200, body = Envelope<Vec<DownloadAuditView>>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_audit(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<DownloadAuditView>>, ApiError> {
    let (params, _) = AUDIT_LIST.parse(q.as_deref().unwrap_or(""), &[])?;
    Ok(paged(state.artifacts.list_audit(&identity, &params).await?))
}
