//! SQL of the VM jobs domain: `vm_jobs`, `vm_job_items` (one persisted
//! state machine per VM) and `vm_job_artifacts`. Item and job changes are
//! compare-and-set on a `version` column, so two orchestrators (two server
//! processes on one PostgreSQL) never both advance the same step.

use sqlx::FromRow;

use crate::db::ids::{AgentId, TenantId, UserId, VmJobId};
use crate::db::list::{self, Fixed, ListParams, ListSpec, Page};
use crate::db::text_enum::text_enum;
use crate::db::{Backend, Read, Reader, StoreError, StoreResult, TenantScope, Write};
use crate::domains::provisioning::GuestOs;

text_enum!(
    /// A job's status (as the pipeline-jobs seed has it).
    JobStatus, "vm job status" {
        Pending => "pending",
        Running => "running",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

impl JobStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

text_enum!(
    /// Where one VM of a job is, in order. `done`, `failed` and
    /// `cancelled` are final.
    ItemStep, "vm job step" {
        Pending => "pending",
        Cloning => "cloning",
        CloneWait => "clone_wait",
        Configuring => "configuring",
        IsoBuilding => "iso_building",
        IsoAttaching => "iso_attaching",
        Registering => "registering",
        Starting => "starting",
        Installing => "installing",
        Detaching => "detaching",
        Done => "done",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

impl ItemStep {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ItemStep::Done | ItemStep::Failed | ItemStep::Cancelled
        )
    }

    /// Steps that count against the job's `parallelism` on its node.
    pub fn is_heavy(self) -> bool {
        matches!(
            self,
            ItemStep::Cloning | ItemStep::CloneWait | ItemStep::Configuring
        )
    }

    /// The VM exists on Proxmox once the item got past the clone dispatch.
    pub fn vm_created(self) -> bool {
        !matches!(self, ItemStep::Pending | ItemStep::Cloning)
    }
}

pub const JOB_COLUMNS: &str = "id, tenant_id, created_by, agent_id, node, status, spec, spec_digest, \
    idempotency_key, api_endpoint, server_cert_sha256, item_count, plan_command_id, plan_attempt, \
    error_code, error_message, version, created_at, updated_at, started_at, finished_at, cancelled_by";

#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: VmJobId,
    pub tenant_id: TenantId,
    pub created_by: UserId,
    pub agent_id: AgentId,
    pub node: String,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub spec: String,
    pub spec_digest: String,
    pub idempotency_key: Option<String>,
    pub api_endpoint: String,
    pub server_cert_sha256: Option<String>,
    pub item_count: i64,
    pub plan_command_id: Option<String>,
    pub plan_attempt: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub cancelled_by: Option<String>,
}

pub const ITEM_COLUMNS: &str = "job_id, idx, tenant_id, agent_id, node, name, os, vmid, vm_uuid, \
    ip_address, mac_address, step, phase, step_attempt, attempts, lock_retries, infra_retries, \
    command_id, command_type, task_upid, clone_existed, token_id, iso_volid, progress_step, \
    step_started_at, next_attempt_at, waiting_since, failed_step, error_code, error_message, \
    version, created_at, updated_at, finished_at";

#[derive(Debug, Clone, FromRow)]
pub struct ItemRow {
    pub job_id: VmJobId,
    pub idx: i64,
    pub tenant_id: TenantId,
    pub agent_id: AgentId,
    pub node: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub os: GuestOs,
    pub vmid: Option<i64>,
    pub vm_uuid: String,
    pub ip_address: Option<String>,
    pub mac_address: Option<String>,
    #[sqlx(try_from = "String")]
    pub step: ItemStep,
    /// Sub-step (e.g. `starting`: 0 = start, 1 = wait for the task).
    pub phase: i64,
    /// Attempt of the current step (part of its commands' keys).
    pub step_attempt: i64,
    /// `{step: attempts}` as JSON.
    pub attempts: String,
    pub lock_retries: i64,
    pub infra_retries: i64,
    /// The command in flight for this step (stored before it is dispatched).
    pub command_id: Option<String>,
    pub command_type: Option<String>,
    pub task_upid: Option<String>,
    pub clone_existed: i64,
    pub token_id: Option<String>,
    pub iso_volid: Option<String>,
    pub progress_step: Option<String>,
    pub step_started_at: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub waiting_since: Option<i64>,
    pub failed_step: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

pub const ARTIFACT_COLUMNS: &str = "id, tenant_id, job_id, item_idx, kind, volid, sha256, size, \
    created_at, deleted_at, cleanup_command_id, cleanup_attempts";

#[derive(Debug, Clone, FromRow)]
pub struct ArtifactRow {
    pub id: String,
    pub tenant_id: TenantId,
    pub job_id: VmJobId,
    pub item_idx: i64,
    pub kind: String,
    pub volid: String,
    pub sha256: String,
    pub size: i64,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
    pub cleanup_command_id: Option<String>,
    pub cleanup_attempts: i64,
}

// ---------------------------------------------------------------- jobs

pub struct NewJob<'a> {
    pub id: &'a VmJobId,
    pub created_by: &'a UserId,
    pub agent_id: &'a AgentId,
    pub node: &'a str,
    pub spec: &'a str,
    pub spec_digest: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub api_endpoint: &'a str,
    pub server_cert_sha256: Option<&'a str>,
    pub item_count: i64,
    pub now: i64,
}

/// Insert a pending job. A reused idempotency key is a `Conflict`.
pub async fn insert_job(
    mut w: impl Write,
    scope: &TenantScope,
    j: NewJob<'_>,
) -> StoreResult<JobRow> {
    sqlx::query_as::<_, JobRow>(&format!(
        "INSERT INTO vm_jobs (id, tenant_id, created_by, agent_id, node, status, spec, spec_digest,
            idempotency_key, api_endpoint, server_cert_sha256, item_count, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10, $11, $12, $12)
         RETURNING {JOB_COLUMNS}"
    ))
    .bind(j.id.as_str())
    .bind(scope.tenant())
    .bind(j.created_by.as_str())
    .bind(j.agent_id.as_str())
    .bind(j.node)
    .bind(j.spec)
    .bind(j.spec_digest)
    .bind(j.idempotency_key)
    .bind(j.api_endpoint)
    .bind(j.server_cert_sha256)
    .bind(j.item_count)
    .bind(j.now)
    .fetch_one(w.exec())
    .await
    .map_err(|e| StoreError::unique_or(e, "idempotency key already used"))
}

pub async fn get_job(
    mut r: impl Read,
    scope: &TenantScope,
    id: &VmJobId,
) -> StoreResult<Option<JobRow>> {
    Ok(sqlx::query_as::<_, JobRow>(&format!(
        "SELECT {JOB_COLUMNS} FROM vm_jobs WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

pub async fn job_by_key(
    mut r: impl Read,
    scope: &TenantScope,
    key: &str,
) -> StoreResult<Option<JobRow>> {
    Ok(sqlx::query_as::<_, JobRow>(&format!(
        "SELECT {JOB_COLUMNS} FROM vm_jobs WHERE tenant_id = $1 AND idempotency_key = $2"
    ))
    .bind(scope.tenant())
    .bind(key)
    .fetch_optional(r.exec())
    .await?)
}

/// Jobs the orchestrator works on (every tenant): pending and running.
pub async fn active_jobs(mut r: impl Read) -> StoreResult<Vec<JobRow>> {
    Ok(sqlx::query_as::<_, JobRow>(&format!(
        "SELECT {JOB_COLUMNS} FROM vm_jobs WHERE status IN ('pending', 'running')
         ORDER BY created_at, id"
    ))
    .fetch_all(r.exec())
    .await?)
}

/// Write back a job read at `row.version` (compare-and-set). `None` when
/// someone else changed it meanwhile.
pub async fn save_job(mut w: impl Write, row: &JobRow, now: i64) -> StoreResult<Option<JobRow>> {
    Ok(sqlx::query_as::<_, JobRow>(&format!(
        "UPDATE vm_jobs SET status = $1, plan_command_id = $2, plan_attempt = $3, error_code = $4,
            error_message = $5, started_at = $6, finished_at = $7, cancelled_by = $8,
            updated_at = $9, version = version + 1
         WHERE tenant_id = $10 AND id = $11 AND version = $12
         RETURNING {JOB_COLUMNS}"
    ))
    .bind(row.status.as_str())
    .bind(row.plan_command_id.as_deref())
    .bind(row.plan_attempt)
    .bind(row.error_code.as_deref())
    .bind(row.error_message.as_deref())
    .bind(row.started_at)
    .bind(row.finished_at)
    .bind(row.cancelled_by.as_deref())
    .bind(now)
    .bind(row.tenant_id.as_str())
    .bind(row.id.as_str())
    .bind(row.version)
    .fetch_optional(w.exec())
    .await?)
}

/// Jobs as the list kit pages them (newest first).
pub static JOB_LIST: ListSpec = ListSpec {
    table: "vm_jobs",
    select: JOB_COLUMNS,
    columns: &[
        list::Column::new("created_at", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("updated_at", "updated_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("finished_at", "finished_at", list::Kind::Timestamp)
            .nullable()
            .sortable()
            .filterable(),
        list::Column::new(
            "status",
            "status",
            list::Kind::Enum(&["pending", "running", "completed", "failed", "cancelled"]),
        )
        .sortable()
        .filterable(),
        list::Column::new("agent_id", "agent_id", list::Kind::Text).filterable(),
        list::Column::new("node", "node", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("item_count", "item_count", list::Kind::Integer)
            .sortable()
            .filterable(),
        list::Column::new("created_by", "created_by", list::Kind::Text).filterable(),
        list::Column::new("error_code", "error_code", list::Kind::Text)
            .nullable()
            .filterable()
            .searchable(),
    ],
    default_sort: "created_at",
    default_order: list::Order::Desc,
    id_column: "id",
};

pub async fn list_jobs(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    fixed: &[Fixed],
    params: &ListParams,
) -> StoreResult<Page<JobRow>> {
    list::fetch(reader, backend, &JOB_LIST, scope, fixed, params).await
}

// ---------------------------------------------------------------- items

pub struct NewItem<'a> {
    pub idx: i64,
    pub name: &'a str,
    pub os: GuestOs,
    pub vmid: Option<i64>,
    pub vm_uuid: &'a str,
    pub ip_address: Option<&'a str>,
    pub mac_address: Option<&'a str>,
}

pub async fn insert_item(mut w: impl Write, job: &JobRow, i: NewItem<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO vm_job_items (job_id, idx, tenant_id, agent_id, node, name, os, vmid, vm_uuid,
            ip_address, mac_address, step, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $12)",
    )
    .bind(job.id.as_str())
    .bind(i.idx)
    .bind(job.tenant_id.as_str())
    .bind(job.agent_id.as_str())
    .bind(job.node.as_str())
    .bind(i.name)
    .bind(i.os.as_str())
    .bind(i.vmid)
    .bind(i.vm_uuid)
    .bind(i.ip_address)
    .bind(i.mac_address)
    .bind(job.created_at)
    .execute(w.exec())
    .await
    .map_err(|e| StoreError::unique_or(e, "a VMID or an address is taken"))?;
    Ok(())
}

pub async fn items(mut r: impl Read, job: &VmJobId) -> StoreResult<Vec<ItemRow>> {
    Ok(sqlx::query_as::<_, ItemRow>(&format!(
        "SELECT {ITEM_COLUMNS} FROM vm_job_items WHERE job_id = $1 ORDER BY idx"
    ))
    .bind(job.as_str())
    .fetch_all(r.exec())
    .await?)
}

pub async fn item(mut r: impl Read, job: &VmJobId, idx: i64) -> StoreResult<Option<ItemRow>> {
    Ok(sqlx::query_as::<_, ItemRow>(&format!(
        "SELECT {ITEM_COLUMNS} FROM vm_job_items WHERE job_id = $1 AND idx = $2"
    ))
    .bind(job.as_str())
    .bind(idx)
    .fetch_optional(r.exec())
    .await?)
}

/// Write back an item read at `row.version` (compare-and-set). `None`
/// when someone else changed it meanwhile.
pub async fn save_item(mut w: impl Write, row: &ItemRow, now: i64) -> StoreResult<Option<ItemRow>> {
    sqlx::query_as::<_, ItemRow>(&format!(
        "UPDATE vm_job_items SET vmid = $1, ip_address = $2, mac_address = $3, step = $4, phase = $5,
            step_attempt = $6, attempts = $7, lock_retries = $8, infra_retries = $9, command_id = $10,
            command_type = $11, task_upid = $12, clone_existed = $13, token_id = $14, iso_volid = $15,
            progress_step = $16, step_started_at = $17, next_attempt_at = $18, waiting_since = $19,
            failed_step = $20, error_code = $21, error_message = $22, finished_at = $23,
            updated_at = $24, version = version + 1
         WHERE job_id = $25 AND idx = $26 AND version = $27
         RETURNING {ITEM_COLUMNS}"
    ))
    .bind(row.vmid)
    .bind(row.ip_address.as_deref())
    .bind(row.mac_address.as_deref())
    .bind(row.step.as_str())
    .bind(row.phase)
    .bind(row.step_attempt)
    .bind(row.attempts.as_str())
    .bind(row.lock_retries)
    .bind(row.infra_retries)
    .bind(row.command_id.as_deref())
    .bind(row.command_type.as_deref())
    .bind(row.task_upid.as_deref())
    .bind(row.clone_existed)
    .bind(row.token_id.as_deref())
    .bind(row.iso_volid.as_deref())
    .bind(row.progress_step.as_deref())
    .bind(row.step_started_at)
    .bind(row.next_attempt_at)
    .bind(row.waiting_since)
    .bind(row.failed_step.as_deref())
    .bind(row.error_code.as_deref())
    .bind(row.error_message.as_deref())
    .bind(row.finished_at)
    .bind(now)
    .bind(row.job_id.as_str())
    .bind(row.idx)
    .bind(row.version)
    .fetch_optional(w.exec())
    .await
    .map_err(|e| StoreError::unique_or(e, "a VMID or an address is taken"))
}

/// Items of the tenant on this agent and node in a clone/configure step
/// (the parallelism gate counts them across the tenant's jobs).
pub async fn heavy_on_node(
    mut r: impl Read,
    tenant: &TenantId,
    agent: &AgentId,
    node: &str,
) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM vm_job_items
         WHERE tenant_id = $1 AND agent_id = $2 AND node = $3
           AND step IN ('cloning', 'clone_wait', 'configuring')",
    )
    .bind(tenant.as_str())
    .bind(agent.as_str())
    .bind(node)
    .fetch_one(r.exec())
    .await?;
    Ok(n)
}

/// VMIDs held by unfinished items of the tenant on this agent.
pub async fn held_vmids(
    mut r: impl Read,
    scope: &TenantScope,
    agent: &AgentId,
) -> StoreResult<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT vmid FROM vm_job_items
         WHERE tenant_id = $1 AND agent_id = $2 AND vmid IS NOT NULL
           AND step NOT IN ('done', 'failed', 'cancelled')",
    )
    .bind(scope.tenant())
    .bind(agent.as_str())
    .fetch_all(r.exec())
    .await?;
    Ok(rows.into_iter().map(|(v,)| v).collect())
}

/// Pool addresses the tenant's jobs hold, within `[first, last]` as text.
pub async fn used_addresses(mut r: impl Read, scope: &TenantScope) -> StoreResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT ip_address FROM vm_job_items WHERE tenant_id = $1 AND ip_address IS NOT NULL",
    )
    .bind(scope.tenant())
    .fetch_all(r.exec())
    .await?;
    Ok(rows.into_iter().map(|(v,)| v).collect())
}

// ---------------------------------------------------------------- artifacts

pub struct NewArtifact<'a> {
    pub id: &'a str,
    pub job_id: &'a VmJobId,
    pub item_idx: i64,
    pub volid: &'a str,
    pub sha256: &'a str,
    pub size: i64,
    pub now: i64,
}

/// Record an ISO (a re-upload of the same volume updates its checksum).
pub async fn upsert_artifact(
    mut w: impl Write,
    tenant: &TenantId,
    a: NewArtifact<'_>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO vm_job_artifacts (id, tenant_id, job_id, item_idx, kind, volid, sha256, size, created_at)
         VALUES ($1, $2, $3, $4, 'provision_iso', $5, $6, $7, $8)
         ON CONFLICT (job_id, item_idx, volid) DO UPDATE
            SET sha256 = excluded.sha256, size = excluded.size, created_at = excluded.created_at,
                deleted_at = NULL",
    )
    .bind(a.id)
    .bind(tenant.as_str())
    .bind(a.job_id.as_str())
    .bind(a.item_idx)
    .bind(a.volid)
    .bind(a.sha256)
    .bind(a.size)
    .bind(a.now)
    .execute(w.exec())
    .await?;
    Ok(())
}

pub async fn artifacts(mut r: impl Read, job: &VmJobId) -> StoreResult<Vec<ArtifactRow>> {
    Ok(sqlx::query_as::<_, ArtifactRow>(&format!(
        "SELECT {ARTIFACT_COLUMNS} FROM vm_job_artifacts WHERE job_id = $1 ORDER BY item_idx, created_at"
    ))
    .bind(job.as_str())
    .fetch_all(r.exec())
    .await?)
}

/// Mark a job's ISO deleted from storage.
pub async fn artifact_deleted(
    mut w: impl Write,
    job: &VmJobId,
    item_idx: i64,
    volid: &str,
    now: i64,
) -> StoreResult<bool> {
    Ok(sqlx::query(
        "UPDATE vm_job_artifacts SET deleted_at = $1
         WHERE job_id = $2 AND item_idx = $3 AND volid = $4 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(job.as_str())
    .bind(item_idx)
    .bind(volid)
    .execute(w.exec())
    .await?
    .rows_affected()
        == 1)
}

/// ISOs still on storage whose item ended (`done`, or `failed`/`cancelled`
/// when the job cleans up after failures): the orphan sweep's work.
pub async fn orphaned_artifacts(mut r: impl Read, limit: i64) -> StoreResult<Vec<ArtifactRow>> {
    Ok(sqlx::query_as::<_, ArtifactRow>(&format!(
        "SELECT a.id, a.tenant_id, a.job_id, a.item_idx, a.kind, a.volid, a.sha256, a.size,
                a.created_at, a.deleted_at, a.cleanup_command_id, a.cleanup_attempts
         FROM vm_job_artifacts a
         JOIN vm_job_items i ON i.job_id = a.job_id AND i.idx = a.item_idx
         WHERE a.deleted_at IS NULL AND i.step IN ('done', 'failed', 'cancelled')
         ORDER BY a.created_at LIMIT {}",
        limit.clamp(1, 1000)
    ))
    .fetch_all(r.exec())
    .await?)
}

pub async fn set_artifact_cleanup(
    mut w: impl Write,
    id: &str,
    command_id: Option<&str>,
    attempts: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE vm_job_artifacts SET cleanup_command_id = $1, cleanup_attempts = $2 WHERE id = $3",
    )
    .bind(command_id)
    .bind(attempts)
    .bind(id)
    .execute(w.exec())
    .await?;
    Ok(())
}
