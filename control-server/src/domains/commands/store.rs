//! `agent_commands` and `command_output`: the queue behind the command bus.
//! State changes are conditional UPDATEs, so concurrent claims, reports and
//! sweeps on one row resolve to exactly one winner on both backends.

use botmox_protocol::CommandStatus;
use sqlx::FromRow;

use crate::db::ids::{AgentId, CommandId, TenantId, UserId};
use crate::db::list::{self, Fixed, ListParams, ListSpec, Page};
use crate::db::{Backend, Read, Reader, StoreError, StoreResult, TenantScope, Write};

pub const COLUMNS: &str =
    "id, tenant_id, agent_id, command_type, payload, payload_digest, status, \
    attempt_count, max_attempts, cancel_requested, result, error_code, error_message, progress, \
    idempotency_key, created_by, created_at, updated_at, dispatched_at, started_at, finished_at, \
    expires_at, lease_expires_at";

#[derive(Debug, Clone, FromRow)]
pub struct CommandRow {
    pub id: CommandId,
    pub tenant_id: TenantId,
    pub agent_id: AgentId,
    pub command_type: String,
    pub payload: String,
    pub payload_digest: String,
    #[sqlx(try_from = "String")]
    pub status: CommandStatus,
    pub attempt_count: i64,
    pub max_attempts: i64,
    pub cancel_requested: i64,
    pub result: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub progress: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_by: Option<UserId>,
    pub created_at: i64,
    pub updated_at: i64,
    pub dispatched_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub expires_at: i64,
    pub lease_expires_at: Option<i64>,
}

pub struct NewCommand<'a> {
    pub id: &'a CommandId,
    pub tenant_id: &'a TenantId,
    pub agent_id: &'a AgentId,
    pub command_type: &'a str,
    pub payload: &'a str,
    pub payload_digest: &'a str,
    pub max_attempts: i64,
    pub idempotency_key: Option<&'a str>,
    pub created_by: Option<&'a UserId>,
    pub expires_at: i64,
    pub now: i64,
}

/// Insert a queued command. A reused idempotency key is a `Conflict`.
pub async fn insert(mut w: impl Write, c: NewCommand<'_>) -> StoreResult<CommandRow> {
    sqlx::query_as::<_, CommandRow>(&format!(
        "INSERT INTO agent_commands (id, tenant_id, agent_id, command_type, payload, payload_digest,
            status, max_attempts, idempotency_key, created_by, created_at, updated_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, $10, $11) RETURNING {COLUMNS}"
    ))
    .bind(c.id.as_str())
    .bind(c.tenant_id.as_str())
    .bind(c.agent_id.as_str())
    .bind(c.command_type)
    .bind(c.payload)
    .bind(c.payload_digest)
    .bind(c.max_attempts)
    .bind(c.idempotency_key)
    .bind(c.created_by.map(UserId::as_str))
    .bind(c.now)
    .bind(c.expires_at)
    .fetch_one(w.exec())
    .await
    .map_err(|e| StoreError::unique_or(e, "idempotency key already used"))
}

pub async fn find_by_idempotency_key(
    mut r: impl Read,
    scope: &TenantScope,
    key: &str,
) -> StoreResult<Option<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "SELECT {COLUMNS} FROM agent_commands WHERE tenant_id = $1 AND idempotency_key = $2"
    ))
    .bind(scope.tenant())
    .bind(key)
    .fetch_optional(r.exec())
    .await?)
}

/// A recent identical read-only command (same agent, type and payload):
/// still pending/running, or finished successfully after `since`.
pub async fn find_recent_duplicate(
    mut r: impl Read,
    scope: &TenantScope,
    agent_id: &AgentId,
    command_type: &str,
    payload_digest: &str,
    created_by: Option<&UserId>,
    since: i64,
) -> StoreResult<Option<CommandRow>> {
    let mut sql = format!(
        "SELECT {COLUMNS} FROM agent_commands
         WHERE tenant_id = $1 AND agent_id = $2 AND command_type = $3 AND payload_digest = $4
           AND ((status IN ('queued', 'dispatched', 'running') AND created_at >= $5)
                OR (status = 'succeeded' AND finished_at >= $5))"
    );
    if created_by.is_some() {
        sql.push_str(" AND created_by = $6");
    }
    sql.push_str(" ORDER BY created_at DESC LIMIT 1");
    let mut q = sqlx::query_as::<_, CommandRow>(&sql)
        .bind(scope.tenant())
        .bind(agent_id.as_str())
        .bind(command_type)
        .bind(payload_digest)
        .bind(since);
    if let Some(c) = created_by {
        q = q.bind(c.as_str());
    }
    Ok(q.fetch_optional(r.exec()).await?)
}

pub async fn get(
    mut r: impl Read,
    scope: &TenantScope,
    id: &CommandId,
) -> StoreResult<Option<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "SELECT {COLUMNS} FROM agent_commands WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

/// Commands of a tenant as the list kit pages them (newest first).
pub static COMMAND_LIST: ListSpec = ListSpec {
    table: "agent_commands",
    select: COLUMNS,
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
        list::Column::new("agent_id", "agent_id", list::Kind::Text).filterable(),
        list::Column::new(
            "status",
            "status",
            list::Kind::Enum(&[
                "queued",
                "dispatched",
                "running",
                "succeeded",
                "failed",
                "cancelled",
                "expired",
            ]),
        )
        .sortable()
        .filterable(),
        list::Column::new("command_type", "command_type", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("attempt_count", "attempt_count", list::Kind::Integer)
            .sortable()
            .filterable(),
        list::Column::new("error_code", "error_code", list::Kind::Text)
            .nullable()
            .filterable()
            .searchable(),
        list::Column::new("created_by", "created_by", list::Kind::Text)
            .nullable()
            .filterable(),
    ],
    default_sort: "created_at",
    default_order: list::Order::Desc,
    id_column: "id",
};

/// One page of commands under the caller's visibility conditions.
pub async fn list(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    fixed: &[Fixed],
    params: &ListParams,
) -> StoreResult<Page<CommandRow>> {
    list::fetch(reader, backend, &COMMAND_LIST, scope, fixed, params).await
}

/// Cheap read (no write lock): is anything claimable for this agent?
pub async fn has_claimable(mut r: impl Read, agent_id: &AgentId, now: i64) -> StoreResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM agent_commands WHERE agent_id = $1 AND status = 'queued' AND expires_at > $2 LIMIT 1",
    )
    .bind(agent_id.as_str())
    .bind(now)
    .fetch_optional(r.exec())
    .await?;
    Ok(row.is_some())
}

/// Atomically claim the oldest queued, unexpired command of an agent.
pub async fn claim_next(
    mut w: impl Write,
    agent_id: &AgentId,
    lease_until: i64,
    now: i64,
) -> StoreResult<Option<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET status = 'dispatched', attempt_count = attempt_count + 1,
            dispatched_at = $1, lease_expires_at = $2, updated_at = $1
         WHERE id = (SELECT id FROM agent_commands
                     WHERE agent_id = $3 AND status = 'queued' AND expires_at > $1
                     ORDER BY created_at, id LIMIT 1)
           AND status = 'queued'
         RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(lease_until)
    .bind(agent_id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

/// What an agent report changes.
pub struct ReportUpdate<'a> {
    pub status: &'a str,
    pub attempt: i64,
    pub result: Option<&'a str>,
    pub error_code: Option<&'a str>,
    pub error_message: Option<&'a str>,
    pub progress: Option<&'a str>,
    pub lease_until: Option<i64>,
    pub finished: bool,
    pub now: i64,
}

/// Apply an agent's report if the command is still in flight under the
/// same attempt. `None` when another change won the race.
pub async fn apply_report(
    mut w: impl Write,
    agent_id: &AgentId,
    id: &CommandId,
    u: ReportUpdate<'_>,
) -> StoreResult<Option<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET status = $1,
            result = COALESCE($2, result), error_code = COALESCE($3, error_code),
            error_message = COALESCE($4, error_message), progress = COALESCE($5, progress),
            lease_expires_at = CASE WHEN $6 IS NULL THEN lease_expires_at ELSE $6 END,
            started_at = COALESCE(started_at, $7),
            finished_at = CASE WHEN $8 = 1 THEN $7 ELSE finished_at END,
            updated_at = $7
         WHERE id = $9 AND agent_id = $10 AND attempt_count = $11
           AND status IN ('dispatched', 'running')
         RETURNING {COLUMNS}"
    ))
    .bind(u.status)
    .bind(u.result)
    .bind(u.error_code)
    .bind(u.error_message)
    .bind(u.progress)
    .bind(u.lease_until)
    .bind(u.now)
    .bind(i64::from(u.finished))
    .bind(id.as_str())
    .bind(agent_id.as_str())
    .bind(u.attempt)
    .fetch_optional(w.exec())
    .await?)
}

/// Cancel a queued command at once. `None` if it was no longer queued.
pub async fn cancel_queued(
    mut w: impl Write,
    scope: &TenantScope,
    id: &CommandId,
    now: i64,
) -> StoreResult<Option<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET status = 'cancelled', cancel_requested = 1, error_code = 'CANCELLED',
            error_message = 'Cancelled before an agent picked it up', finished_at = $1, updated_at = $1
         WHERE tenant_id = $2 AND id = $3 AND status = 'queued' RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

/// Cancel every queued command of an agent (on revoke).
pub async fn cancel_queued_for_agent(
    mut w: impl Write,
    agent_id: &AgentId,
    now: i64,
) -> StoreResult<Vec<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET status = 'cancelled', error_code = 'AGENT_REVOKED',
            error_message = 'The agent was revoked before it picked the command up', finished_at = $1, updated_at = $1
         WHERE agent_id = $2 AND status = 'queued' RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(agent_id.as_str())
    .fetch_all(w.exec())
    .await?)
}

/// Ask the agent to abort a dispatched/running command.
pub async fn request_cancel(
    mut w: impl Write,
    scope: &TenantScope,
    id: &CommandId,
    now: i64,
) -> StoreResult<Option<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET cancel_requested = 1, updated_at = $1
         WHERE tenant_id = $2 AND id = $3 AND status IN ('dispatched', 'running') AND cancel_requested = 0
         RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

/// Leases that ran out: back to the queue while attempts remain.
pub async fn requeue_expired_leases(mut w: impl Write, now: i64) -> StoreResult<Vec<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET status = 'queued', lease_expires_at = NULL, updated_at = $1,
            error_code = 'LEASE_EXPIRED', error_message = 'The agent stopped renewing its lease; requeued'
         WHERE status IN ('dispatched', 'running') AND lease_expires_at < $1
           AND attempt_count < max_attempts AND cancel_requested = 0 AND expires_at > $1
         RETURNING {COLUMNS}"
    ))
    .bind(now)
    .fetch_all(w.exec())
    .await?)
}

/// Leases that ran out with no attempts left (or cancelled/expired meanwhile).
pub async fn dead_letter_expired_leases(
    mut w: impl Write,
    now: i64,
) -> StoreResult<Vec<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET status = 'failed', lease_expires_at = NULL, finished_at = $1, updated_at = $1,
            error_code = 'DEAD_LETTERED',
            error_message = 'The lease expired on the last allowed attempt (or after a cancel request); giving up'
         WHERE status IN ('dispatched', 'running') AND lease_expires_at < $1
         RETURNING {COLUMNS}"
    ))
    .bind(now)
    .fetch_all(w.exec())
    .await?)
}

/// Queued commands nobody picked up before `expires_at`.
pub async fn expire_queued(mut w: impl Write, now: i64) -> StoreResult<Vec<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET status = 'expired', finished_at = $1, updated_at = $1,
            error_code = 'EXPIRED', error_message = 'No agent picked the command up before it expired'
         WHERE status = 'queued' AND expires_at <= $1 RETURNING {COLUMNS}"
    ))
    .bind(now)
    .fetch_all(w.exec())
    .await?)
}

/// Forget idempotency keys older than the window so they can be reused.
pub async fn release_idempotency_keys(mut w: impl Write, before: i64) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE agent_commands SET idempotency_key = NULL WHERE idempotency_key IS NOT NULL AND created_at < $1",
    )
    .bind(before)
    .execute(w.exec())
    .await?
    .rows_affected())
}

// ---- output ----

#[derive(Debug, Clone, FromRow)]
pub struct OutputRow {
    pub seq: i64,
    pub stream: String,
    pub data: String,
    pub created_at: i64,
}

/// Count `bytes` more output against the command's cap while it is in
/// flight. `false` (nothing changed) when the cap would be exceeded or the
/// command is no longer dispatched/running. Runs in the transaction that
/// inserts the chunks: the row lock makes concurrent appends add up exactly.
pub async fn add_output_bytes(
    mut w: impl Write,
    id: &CommandId,
    bytes: i64,
    max: i64,
) -> StoreResult<bool> {
    Ok(sqlx::query(
        "UPDATE agent_commands SET output_bytes = output_bytes + $1
         WHERE id = $2 AND output_bytes + $1 <= $3 AND status IN ('dispatched', 'running')",
    )
    .bind(bytes)
    .bind(id.as_str())
    .bind(max)
    .execute(w.exec())
    .await?
    .rows_affected()
        == 1)
}

/// Append a chunk; a repeated `seq` is ignored. Returns whether it was new.
pub async fn append_output(
    mut w: impl Write,
    command_id: &CommandId,
    seq: i64,
    stream: &str,
    data: &str,
    now: i64,
) -> StoreResult<bool> {
    Ok(sqlx::query(
        "INSERT INTO command_output (command_id, seq, stream, data, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (command_id, seq) DO NOTHING",
    )
    .bind(command_id.as_str())
    .bind(seq)
    .bind(stream)
    .bind(data)
    .bind(now)
    .execute(w.exec())
    .await?
    .rows_affected()
        == 1)
}

pub async fn read_output(
    mut r: impl Read,
    command_id: &CommandId,
    after_seq: i64,
    limit: i64,
) -> StoreResult<Vec<OutputRow>> {
    Ok(sqlx::query_as::<_, OutputRow>(&format!(
        "SELECT seq, stream, data, created_at FROM command_output
         WHERE command_id = $1 AND seq > $2 ORDER BY seq LIMIT {}",
        limit.clamp(1, 10_000)
    ))
    .bind(command_id.as_str())
    .bind(after_seq)
    .fetch_all(r.exec())
    .await?)
}
