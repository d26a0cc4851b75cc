//! `agent_commands` and `command_output`: the queue behind the command bus.
//! State changes are conditional UPDATEs, so concurrent claims, reports and
//! sweeps on one row resolve to exactly one winner on both backends.

use sqlx::{AnyPool, FromRow};

use super::{StoreError, StoreResult, TenantScope};

pub const COLUMNS: &str =
    "id, tenant_id, agent_id, command_type, payload, payload_digest, status, \
    attempt_count, max_attempts, cancel_requested, result, error_code, error_message, progress, \
    idempotency_key, created_by, created_at, updated_at, dispatched_at, started_at, finished_at, \
    expires_at, lease_expires_at";

#[derive(Debug, Clone, FromRow)]
pub struct CommandRow {
    pub id: String,
    pub tenant_id: String,
    pub agent_id: String,
    pub command_type: String,
    pub payload: String,
    pub payload_digest: String,
    pub status: String,
    pub attempt_count: i64,
    pub max_attempts: i64,
    pub cancel_requested: i64,
    pub result: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub progress: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub dispatched_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub expires_at: i64,
    pub lease_expires_at: Option<i64>,
}

pub struct NewCommand<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub agent_id: &'a str,
    pub command_type: &'a str,
    pub payload: &'a str,
    pub payload_digest: &'a str,
    pub max_attempts: i64,
    pub idempotency_key: Option<&'a str>,
    pub created_by: Option<&'a str>,
    pub expires_at: i64,
    pub now: i64,
}

/// Insert a queued command. A reused idempotency key is a `Conflict`.
pub async fn insert(pool: &AnyPool, c: NewCommand<'_>) -> StoreResult<CommandRow> {
    sqlx::query_as::<_, CommandRow>(&format!(
        "INSERT INTO agent_commands (id, tenant_id, agent_id, command_type, payload, payload_digest,
            status, max_attempts, idempotency_key, created_by, created_at, updated_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, $10, $11) RETURNING {COLUMNS}"
    ))
    .bind(c.id)
    .bind(c.tenant_id)
    .bind(c.agent_id)
    .bind(c.command_type)
    .bind(c.payload)
    .bind(c.payload_digest)
    .bind(c.max_attempts)
    .bind(c.idempotency_key)
    .bind(c.created_by)
    .bind(c.now)
    .bind(c.expires_at)
    .fetch_one(pool)
    .await
    .map_err(|e| StoreError::unique_or(e, "idempotency key already used"))
}

pub async fn find_by_idempotency_key(
    pool: &AnyPool,
    scope: &TenantScope,
    key: &str,
) -> StoreResult<Option<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "SELECT {COLUMNS} FROM agent_commands WHERE tenant_id = $1 AND idempotency_key = $2"
    ))
    .bind(scope.tenant_id())
    .bind(key)
    .fetch_optional(pool)
    .await?)
}

/// A recent identical read-only command (same agent, type and payload):
/// still pending/running, or finished successfully after `since`.
pub async fn find_recent_duplicate(
    pool: &AnyPool,
    scope: &TenantScope,
    agent_id: &str,
    command_type: &str,
    payload_digest: &str,
    created_by: Option<&str>,
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
        .bind(scope.tenant_id())
        .bind(agent_id)
        .bind(command_type)
        .bind(payload_digest)
        .bind(since);
    if let Some(c) = created_by {
        q = q.bind(c);
    }
    Ok(q.fetch_optional(pool).await?)
}

pub async fn get(pool: &AnyPool, scope: &TenantScope, id: &str) -> StoreResult<Option<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "SELECT {COLUMNS} FROM agent_commands WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant_id())
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

#[derive(Debug, Default)]
pub struct ListFilter<'a> {
    pub agent_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub created_by: Option<&'a str>,
    /// Only rows older than this (created_at, id) cursor.
    pub before: Option<(i64, &'a str)>,
    pub limit: i64,
}

/// Newest first, keyset-paginated by (created_at, id).
pub async fn list(
    pool: &AnyPool,
    scope: &TenantScope,
    f: &ListFilter<'_>,
) -> StoreResult<Vec<CommandRow>> {
    let mut sql = format!("SELECT {COLUMNS} FROM agent_commands WHERE tenant_id = $1");
    let mut n = 1;
    for (present, column) in [
        (f.agent_id.is_some(), "agent_id"),
        (f.status.is_some(), "status"),
        (f.created_by.is_some(), "created_by"),
    ] {
        if present {
            n += 1;
            sql.push_str(&format!(" AND {column} = ${n}"));
        }
    }
    if f.before.is_some() {
        let (ts, id) = (n + 1, n + 2);
        sql.push_str(&format!(
            " AND (created_at < ${ts} OR (created_at = ${ts} AND id < ${id}))"
        ));
    }
    sql.push_str(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT {}",
        f.limit.clamp(1, 500)
    ));
    let mut q = sqlx::query_as::<_, CommandRow>(&sql).bind(scope.tenant_id());
    if let Some(a) = f.agent_id {
        q = q.bind(a);
    }
    if let Some(s) = f.status {
        q = q.bind(s);
    }
    if let Some(c) = f.created_by {
        q = q.bind(c);
    }
    if let Some((ts, id)) = f.before {
        q = q.bind(ts).bind(id);
    }
    Ok(q.fetch_all(pool).await?)
}

/// Cheap read (no write lock): is anything claimable for this agent?
pub async fn has_claimable(pool: &AnyPool, agent_id: &str, now: i64) -> StoreResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM agent_commands WHERE agent_id = $1 AND status = 'queued' AND expires_at > $2 LIMIT 1",
    )
    .bind(agent_id)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// Atomically claim the oldest queued, unexpired command of an agent.
pub async fn claim_next(
    pool: &AnyPool,
    agent_id: &str,
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
    .bind(agent_id)
    .fetch_optional(pool)
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
    pool: &AnyPool,
    agent_id: &str,
    id: &str,
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
    .bind(id)
    .bind(agent_id)
    .bind(u.attempt)
    .fetch_optional(pool)
    .await?)
}

/// Cancel a queued command at once. `None` if it was no longer queued.
pub async fn cancel_queued(
    pool: &AnyPool,
    scope: &TenantScope,
    id: &str,
    now: i64,
) -> StoreResult<Option<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET status = 'cancelled', cancel_requested = 1, error_code = 'CANCELLED',
            error_message = 'Cancelled before an agent picked it up', finished_at = $1, updated_at = $1
         WHERE tenant_id = $2 AND id = $3 AND status = 'queued' RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(scope.tenant_id())
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Cancel every queued command of an agent (on revoke).
pub async fn cancel_queued_for_agent(
    pool: &AnyPool,
    agent_id: &str,
    now: i64,
) -> StoreResult<Vec<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET status = 'cancelled', error_code = 'AGENT_REVOKED',
            error_message = 'The agent was revoked before it picked the command up', finished_at = $1, updated_at = $1
         WHERE agent_id = $2 AND status = 'queued' RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(agent_id)
    .fetch_all(pool)
    .await?)
}

/// Ask the agent to abort a dispatched/running command.
pub async fn request_cancel(
    pool: &AnyPool,
    scope: &TenantScope,
    id: &str,
    now: i64,
) -> StoreResult<Option<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET cancel_requested = 1, updated_at = $1
         WHERE tenant_id = $2 AND id = $3 AND status IN ('dispatched', 'running') AND cancel_requested = 0
         RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(scope.tenant_id())
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Leases that ran out: back to the queue while attempts remain.
pub async fn requeue_expired_leases(pool: &AnyPool, now: i64) -> StoreResult<Vec<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET status = 'queued', lease_expires_at = NULL, updated_at = $1,
            error_code = 'LEASE_EXPIRED', error_message = 'The agent stopped renewing its lease; requeued'
         WHERE status IN ('dispatched', 'running') AND lease_expires_at < $1
           AND attempt_count < max_attempts AND cancel_requested = 0 AND expires_at > $1
         RETURNING {COLUMNS}"
    ))
    .bind(now)
    .fetch_all(pool)
    .await?)
}

/// Leases that ran out with no attempts left (or cancelled/expired meanwhile).
pub async fn dead_letter_expired_leases(pool: &AnyPool, now: i64) -> StoreResult<Vec<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET status = 'failed', lease_expires_at = NULL, finished_at = $1, updated_at = $1,
            error_code = 'DEAD_LETTERED',
            error_message = 'The lease expired on the last allowed attempt (or after a cancel request); giving up'
         WHERE status IN ('dispatched', 'running') AND lease_expires_at < $1
         RETURNING {COLUMNS}"
    ))
    .bind(now)
    .fetch_all(pool)
    .await?)
}

/// Queued commands nobody picked up before `expires_at`.
pub async fn expire_queued(pool: &AnyPool, now: i64) -> StoreResult<Vec<CommandRow>> {
    Ok(sqlx::query_as::<_, CommandRow>(&format!(
        "UPDATE agent_commands SET status = 'expired', finished_at = $1, updated_at = $1,
            error_code = 'EXPIRED', error_message = 'No agent picked the command up before it expired'
         WHERE status = 'queued' AND expires_at <= $1 RETURNING {COLUMNS}"
    ))
    .bind(now)
    .fetch_all(pool)
    .await?)
}

/// Forget idempotency keys older than the window so they can be reused.
pub async fn release_idempotency_keys(pool: &AnyPool, before: i64) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE agent_commands SET idempotency_key = NULL WHERE idempotency_key IS NOT NULL AND created_at < $1",
    )
    .bind(before)
    .execute(pool)
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

pub async fn output_size(pool: &AnyPool, command_id: &str) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(LENGTH(data)), 0) AS BIGINT) FROM command_output WHERE command_id = $1",
    )
    .bind(command_id)
    .fetch_one(pool)
    .await?;
    Ok(n)
}

/// Append a chunk; a repeated `seq` is ignored. Returns whether it was new.
pub async fn append_output(
    pool: &AnyPool,
    command_id: &str,
    seq: i64,
    stream: &str,
    data: &str,
    now: i64,
) -> StoreResult<bool> {
    Ok(sqlx::query(
        "INSERT INTO command_output (command_id, seq, stream, data, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (command_id, seq) DO NOTHING",
    )
    .bind(command_id)
    .bind(seq)
    .bind(stream)
    .bind(data)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

pub async fn read_output(
    pool: &AnyPool,
    command_id: &str,
    after_seq: i64,
    limit: i64,
) -> StoreResult<Vec<OutputRow>> {
    Ok(sqlx::query_as::<_, OutputRow>(&format!(
        "SELECT seq, stream, data, created_at FROM command_output
         WHERE command_id = $1 AND seq > $2 ORDER BY seq LIMIT {}",
        limit.clamp(1, 10_000)
    ))
    .bind(command_id)
    .bind(after_seq)
    .fetch_all(pool)
    .await?)
}
