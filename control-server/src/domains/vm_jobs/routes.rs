//! HTTP handlers and DTOs of VM creation jobs.

use axum::extract::{RawQuery, State};
use serde::Deserialize;
use utoipa::IntoParams;

use super::service::{CancelView, JobEvent, JobSummary, JobView, ServerInfo};
use super::spec::CreateVmJob;
use super::store::JOB_LIST;
use crate::auth::Identity;
use crate::config::TlsMode;
use crate::db::ids::VmJobId;
use crate::domains::provisioning::routes::api_endpoint;
use crate::http::envelope::{created, ok, paged, Envelope, Reply};
use crate::http::error::{ApiError, ErrorEnvelope};
use crate::http::extract::{list_query_doc, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Create a VM creation job (operator+, for an agent the caller owns;
/// admins: any agent of the tenant). The spec is validated here (each
/// error names its field: VMID range overlaps, a pool too small for the
/// count, an unknown profile); whether the template is a template is
/// checked through the agent when the job runs (a clear job error). The
/// same `idempotency_key` answers the existing job (200, `meta.reused`).
#[utoipa::path(post, path = "/api/v1/vm-jobs", tag = "vm-jobs", security(("bearer" = [])),
    request_body = CreateVmJob,
    responses((status = 201, body = Envelope<JobView>),
              (status = 200, description = "The job of this idempotency key (meta.reused: true)", body = Envelope<JobView>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope),
              (status = 403, description = "FORBIDDEN (role), AGENT_OWNER_MISMATCH, AGENT_OWNER_UNASSIGNED", body = ErrorEnvelope),
              (status = 404, description = "AGENT_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "IDEMPOTENCY_KEY_REUSED", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn create_job(
    State(state): State<AppState>,
    identity: Identity,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<CreateVmJob>,
) -> Result<Reply<JobView>, ApiError> {
    let server = ServerInfo {
        api_endpoint: api_endpoint(&state, &uri, &headers),
        server_cert_sha256: match state.cfg.tls {
            TlsMode::SelfSigned => state.tls_sha256.as_deref().map(str::to_string),
            _ => None,
        },
    };
    let (job, reused) = state.vm_jobs.create(&identity, req, server).await?;
    Ok(if reused {
        let mut r = ok(job);
        r.1.meta = Some(serde_json::json!({"reused": true}));
        r
    } else {
        created(job)
    })
}

list_query_doc!(VmJobListQuery, JOB_LIST);

/// VM jobs the caller may see (own; admins: the tenant's), newest first.
/// List kit: sort on created_at, updated_at, finished_at, status, node,
/// item_count; filter on those and agent_id, created_by, error_code; `q`
/// searches node and error_code.
#[utoipa::path(get, path = "/api/v1/vm-jobs", tag = "vm-jobs", security(("bearer" = [])),
    params(VmJobListQuery),
    responses((status = 200, body = Envelope<Vec<JobSummary>>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    identity: Identity,
    RawQuery(q): RawQuery,
) -> Result<Reply<Vec<JobSummary>>, ApiError> {
    let (params, _) = JOB_LIST.parse(q.as_deref().unwrap_or(""), &[])?;
    Ok(paged(state.vm_jobs.list(&identity, &params).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobPath {
    /// The job id.
    pub id: VmJobId,
}

/// A job with every item's step, attempts, VMID, UUID, address, ISO and
/// progress, and its artifacts (the ISOs with checksum and size).
#[utoipa::path(get, path = "/api/v1/vm-jobs/{id}", tag = "vm-jobs", security(("bearer" = [])),
    params(JobPath),
    responses((status = 200, body = Envelope<JobView>),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "VM_JOB_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn get_job(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<JobPath>,
) -> Result<Reply<JobView>, ApiError> {
    Ok(ok(state.vm_jobs.get(&identity, &p.id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events after this id.
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// At most this many (1..1000, default 500).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The job's timeline, oldest first: `vm_job.created`, `vm_job.status`,
/// `vm_job.item_step` (every step change), `vm_job.item_command`,
/// `vm_job.item_retry` (lock contention or lost work), waiting for the
/// agent, progress, artifacts. The same events stream live on
/// `GET /api/v1/vm-ops/events?job_id=`.
#[utoipa::path(get, path = "/api/v1/vm-jobs/{id}/events", tag = "vm-jobs", security(("bearer" = [])),
    params(JobPath, EventsQuery),
    responses((status = 200, body = Envelope<Vec<JobEvent>>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "VM_JOB_NOT_FOUND", body = ErrorEnvelope)))]
pub async fn job_events(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<JobPath>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Reply<Vec<JobEvent>>, ApiError> {
    let limit = q.limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(
            crate::validate::FieldErrors::one("limit", "must be between 1 and 1000").into(),
        );
    }
    Ok(ok(state
        .vm_jobs
        .events(&identity, &p.id, q.after.unwrap_or(0), limit)
        .await?))
}

/// Cancel a job (its creator, operator+; admins): no new step starts,
/// in-flight commands are cancelled, VMs already created stay and are
/// listed in `vms_left`.
#[utoipa::path(post, path = "/api/v1/vm-jobs/{id}/cancel", tag = "vm-jobs", security(("bearer" = [])),
    params(JobPath),
    responses((status = 200, body = Envelope<CancelView>),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "VM_JOB_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "VM_JOB_FINISHED", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn cancel_job(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<JobPath>,
) -> Result<Reply<CancelView>, ApiError> {
    Ok(ok(state.vm_jobs.cancel(&identity, &p.id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ItemPath {
    /// The job id.
    pub id: VmJobId,
    /// The item's index (0-based).
    #[param(minimum = 0, maximum = 499)]
    pub n: i64,
}

/// Re-run a failed item from the step it failed in (its creator,
/// operator+; admins). The job goes back to `running`.
#[utoipa::path(post, path = "/api/v1/vm-jobs/{id}/items/{n}/retry", tag = "vm-jobs", security(("bearer" = [])),
    params(ItemPath),
    responses((status = 200, body = Envelope<JobView>),
              (status = 400, description = "VALIDATION_ERROR", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, description = "VM_JOB_NOT_FOUND, VM_JOB_ITEM_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "VM_JOB_ITEM_NOT_FAILED, VM_JOB_CANCELLED", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all)]
pub async fn retry_item(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(p): ApiPath<ItemPath>,
) -> Result<Reply<JobView>, ApiError> {
    Ok(ok(state.vm_jobs.retry(&identity, &p.id, p.n).await?))
}
