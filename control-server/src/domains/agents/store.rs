//! SQL of the agents domain: `agents` and `agent_tokens`.

use sqlx::FromRow;

use crate::db::ids::{AgentId, TenantId, TokenId, UserId};
use crate::db::list::{self, Fixed, ListParams, ListSpec, Page};
use crate::db::text_enum::text_enum;
use crate::db::{new_id, Backend, Read, Reader, StoreResult, TenantScope, Write, Writer};

text_enum!(
    /// An agent's stored lifecycle.
    AgentStatus, "agent status" {
        /// Paired by a user, code not yet redeemed.
        Pending => "pending",
        Active => "active",
        Revoked => "revoked",
    }
);

text_enum!(
    /// An agent's connection as the server sees it (computed from the last
    /// heartbeat; `pending`/`revoked` from the lifecycle).
    ConnectionState, "connection state" {
        Pending => "pending",
        Online => "online",
        Unreachable => "unreachable",
        Offline => "offline",
        Revoked => "revoked",
    }
);

pub const COLUMNS: &str = "id, tenant_id, owner_user_id, name, status, pairing_expires_at, \
    proxmox_hint, machine_name, version, platform, capabilities, metadata, connection_state, \
    last_seen_at, paired_at, revoked_at, revoked_by, revoke_reason, created_by, created_at, updated_at, \
    public_key, public_key_id, public_key_at";

#[derive(Debug, Clone, FromRow)]
pub struct AgentRow {
    pub id: AgentId,
    pub tenant_id: TenantId,
    pub owner_user_id: Option<UserId>,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub status: AgentStatus,
    pub pairing_expires_at: Option<i64>,
    pub proxmox_hint: Option<String>,
    pub machine_name: Option<String>,
    pub version: Option<String>,
    pub platform: Option<String>,
    pub capabilities: String,
    pub metadata: Option<String>,
    #[sqlx(try_from = "String")]
    pub connection_state: ConnectionState,
    pub last_seen_at: Option<i64>,
    pub paired_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The agent's X25519 public key (base64url), its key id and when it
    /// was registered; `None` until the agent registers one.
    pub public_key: Option<String>,
    pub public_key_id: Option<String>,
    pub public_key_at: Option<i64>,
}

pub struct NewPairing<'a> {
    pub id: &'a AgentId,
    pub tenant_id: &'a TenantId,
    pub owner_user_id: Option<&'a UserId>,
    pub name: &'a str,
    pub pairing_code_hash: &'a str,
    pub pairing_expires_at: i64,
    pub proxmox_hint: Option<&'a str>,
    pub created_by: &'a UserId,
    pub now: i64,
}

pub async fn insert_pairing(mut w: impl Write, p: NewPairing<'_>) -> StoreResult<AgentRow> {
    Ok(sqlx::query_as::<_, AgentRow>(&format!(
        "INSERT INTO agents (id, tenant_id, owner_user_id, name, status, pairing_code_hash,
            pairing_expires_at, proxmox_hint, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $9) RETURNING {COLUMNS}"
    ))
    .bind(p.id.as_str())
    .bind(p.tenant_id.as_str())
    .bind(p.owner_user_id.map(UserId::as_str))
    .bind(p.name)
    .bind(p.pairing_code_hash)
    .bind(p.pairing_expires_at)
    .bind(p.proxmox_hint)
    .bind(p.created_by.as_str())
    .bind(p.now)
    .fetch_one(w.exec())
    .await?)
}

pub struct Registration<'a> {
    pub code_hash: &'a str,
    pub machine_name: Option<&'a str>,
    pub version: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub capabilities: &'a str,
    pub now: i64,
}

/// Consume a pairing code: exactly one caller wins, even concurrently.
/// `Ok(None)` when no pending, unexpired pairing has this code.
pub async fn activate_pairing(
    mut w: impl Write,
    r: Registration<'_>,
) -> StoreResult<Option<AgentRow>> {
    Ok(sqlx::query_as::<_, AgentRow>(&format!(
        "UPDATE agents SET status = 'active', pairing_code_hash = NULL, pairing_expires_at = NULL,
            machine_name = $1, version = $2, platform = $3, capabilities = $4,
            name = CASE WHEN name = '' AND $1 IS NOT NULL THEN $1 ELSE name END,
            connection_state = 'online', paired_at = $5, last_seen_at = $5, updated_at = $5
         WHERE pairing_code_hash = $6 AND status = 'pending' AND pairing_expires_at > $5
         RETURNING {COLUMNS}"
    ))
    .bind(r.machine_name)
    .bind(r.version)
    .bind(r.platform)
    .bind(r.capabilities)
    .bind(r.now)
    .bind(r.code_hash)
    .fetch_optional(w.exec())
    .await?)
}

/// Whether a pending pairing with this code exists but has expired.
pub async fn pairing_expired(mut r: impl Read, code_hash: &str, now: i64) -> StoreResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM agents WHERE pairing_code_hash = $1 AND status = 'pending' AND pairing_expires_at <= $2",
    )
    .bind(code_hash)
    .bind(now)
    .fetch_optional(r.exec())
    .await?;
    Ok(row.is_some())
}

pub async fn get(
    mut r: impl Read,
    scope: &TenantScope,
    id: &AgentId,
) -> StoreResult<Option<AgentRow>> {
    Ok(sqlx::query_as::<_, AgentRow>(&format!(
        "SELECT {COLUMNS} FROM agents WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

/// An agent by id in any tenant (the admin CLI, which has no tenant).
pub async fn find_anywhere(mut r: impl Read, id: &AgentId) -> StoreResult<Option<AgentRow>> {
    Ok(
        sqlx::query_as::<_, AgentRow>(&format!("SELECT {COLUMNS} FROM agents WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(r.exec())
            .await?,
    )
}

/// Record an active agent's public key. `None` if the agent is not active.
pub async fn set_public_key(
    mut w: impl Write,
    scope: &TenantScope,
    id: &AgentId,
    public_key: &str,
    key_id: &str,
    now: i64,
) -> StoreResult<Option<AgentRow>> {
    Ok(sqlx::query_as::<_, AgentRow>(&format!(
        "UPDATE agents SET public_key = $1, public_key_id = $2, public_key_at = $3, updated_at = $3
         WHERE tenant_id = $4 AND id = $5 AND status = 'active' RETURNING {COLUMNS}"
    ))
    .bind(public_key)
    .bind(key_id)
    .bind(now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

/// Agents of a tenant as the list kit pages them (newest first).
pub static AGENT_LIST: ListSpec = ListSpec {
    table: "agents",
    select: COLUMNS,
    columns: &[
        list::Column::new("created_at", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("name", "name", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new(
            "status",
            "status",
            list::Kind::Enum(&["pending", "active", "revoked"]),
        )
        .sortable()
        .filterable(),
        list::Column::new("last_seen_at", "last_seen_at", list::Kind::Timestamp)
            .nullable()
            .sortable()
            .filterable(),
        list::Column::new("machine_name", "machine_name", list::Kind::Text)
            .nullable()
            .sortable()
            .searchable(),
        list::Column::new("owner_user_id", "owner_user_id", list::Kind::Text)
            .nullable()
            .filterable(),
    ],
    default_sort: "created_at",
    default_order: list::Order::Desc,
    id_column: "id",
};

/// One page of agents; `owner` limits to one owner's agents.
pub async fn list(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    owner: Option<&UserId>,
    params: &ListParams,
) -> StoreResult<Page<AgentRow>> {
    let fixed: Vec<Fixed> = owner
        .map(|o| Fixed::eq("owner_user_id", o.as_str()))
        .into_iter()
        .collect();
    list::fetch(reader, backend, &AGENT_LIST, scope, &fixed, params).await
}

/// What writing a heartbeat did.
#[derive(Debug)]
pub enum HeartbeatWrite {
    /// The agent was not `online` before: here is its row, now online.
    CameOnline(Box<AgentRow>),
    /// Recorded; the agent was online already.
    Seen,
    /// The agent is not active (revoked meanwhile).
    NotActive,
}

/// Write a heartbeat now (the write-through path of the presence buffer).
/// `last_seen_at` never moves backwards (another process may have stored a
/// later one); absent version/metadata keep the stored ones.
pub async fn heartbeat(
    mut w: impl Write,
    agent_id: &AgentId,
    version: Option<&str>,
    metadata: Option<&str>,
    now: i64,
) -> StoreResult<HeartbeatWrite> {
    const SET: &str = "last_seen_at = CASE WHEN last_seen_at > $1 THEN last_seen_at ELSE $1 END,
            updated_at = $1, version = COALESCE($2, version), metadata = COALESCE($3, metadata)";
    let came_online = sqlx::query_as::<_, AgentRow>(&format!(
        "UPDATE agents SET {SET}, connection_state = 'online'
         WHERE id = $4 AND status = 'active' AND connection_state <> 'online' RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(version)
    .bind(metadata)
    .bind(agent_id.as_str())
    .fetch_optional(w.exec())
    .await?;
    if let Some(row) = came_online {
        return Ok(HeartbeatWrite::CameOnline(Box::new(row)));
    }
    let n = sqlx::query(&format!(
        "UPDATE agents SET {SET} WHERE id = $4 AND status = 'active'"
    ))
    .bind(now)
    .bind(version)
    .bind(metadata)
    .bind(agent_id.as_str())
    .execute(w.exec())
    .await?
    .rows_affected();
    Ok(if n == 1 {
        HeartbeatWrite::Seen
    } else {
        HeartbeatWrite::NotActive
    })
}

/// The flush on PostgreSQL: the batch unpacked once by `jsonb_to_recordset`.
pub const FLUSH_LAST_SEEN_POSTGRES: &str =
    "UPDATE agents AS a SET last_seen_at = u.seen, updated_at = GREATEST(a.updated_at, u.seen)
     FROM jsonb_to_recordset($1::jsonb) AS u(id text, seen bigint)
     WHERE a.id = u.id AND a.status = 'active'
       AND (a.last_seen_at IS NULL OR a.last_seen_at < u.seen)";

/// The flush on SQLite. The batch is unpacked once into a MATERIALIZED
/// table, then each entry finds its agent by primary key. Written as a
/// plain subquery, SQLite 3.46 without table statistics (a new database)
/// chose to walk the agents by `status` and re-read the whole JSON batch
/// for every agent: 1 s for 833 entries at 5,000 agents, holding the only
/// writer (benchmarks.md, issue #15). `flush_plan_*` tests pin the plan.
pub const FLUSH_LAST_SEEN_SQLITE: &str = "WITH u(id, seen) AS MATERIALIZED (
         SELECT json_extract(value, '$.id'), json_extract(value, '$.seen') FROM json_each($1))
     UPDATE agents SET last_seen_at = u.seen, updated_at = MAX(agents.updated_at, u.seen)
     FROM u
     WHERE agents.id = u.id AND agents.status = 'active'
       AND (agents.last_seen_at IS NULL OR agents.last_seen_at < u.seen)";

/// Store buffered last-seen times, all in one statement: the batch travels
/// as one JSON parameter (`[{"id":…,"seen":…}]`; sqlx's `Any` driver binds
/// no arrays). Active agents only; a time never moves backwards, so
/// processes flushing the same agent cannot undo each other. Returns the
/// rows changed.
pub async fn flush_last_seen(
    mut w: impl Write,
    backend: Backend,
    batch: &[(AgentId, i64)],
) -> StoreResult<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let json = serde_json::Value::Array(
        batch
            .iter()
            .map(|(id, seen)| serde_json::json!({"id": id.as_str(), "seen": seen}))
            .collect(),
    )
    .to_string();
    let sql = match backend {
        Backend::Postgres => FLUSH_LAST_SEEN_POSTGRES,
        Backend::Sqlite => FLUSH_LAST_SEEN_SQLITE,
    };
    Ok(sqlx::query(sql)
        .bind(json)
        .execute(w.exec())
        .await?
        .rows_affected())
}

/// Every active agent that has been seen: `each(id, last_seen_at, version,
/// metadata)`, streamed (metadata can be 16 KiB an agent; only what `each`
/// keeps stays in memory).
pub async fn each_active_presence(
    mut r: impl Read,
    mut each: impl FnMut(String, i64, Option<String>, Option<String>),
) -> StoreResult<usize> {
    use futures_util::TryStreamExt;
    let mut rows = sqlx::query_as::<_, (String, i64, Option<String>, Option<String>)>(
        "SELECT id, last_seen_at, version, metadata FROM agents
         WHERE status = 'active' AND last_seen_at IS NOT NULL",
    )
    .fetch(r.exec());
    let mut n = 0;
    while let Some((id, seen, version, metadata)) = rows.try_next().await? {
        each(id, seen, version, metadata);
        n += 1;
    }
    Ok(n)
}

pub async fn revoke(
    mut w: impl Write,
    scope: &TenantScope,
    id: &AgentId,
    by: &UserId,
    reason: Option<&str>,
    now: i64,
) -> StoreResult<Option<AgentRow>> {
    Ok(sqlx::query_as::<_, AgentRow>(&format!(
        "UPDATE agents SET status = 'revoked', connection_state = 'revoked', revoked_at = $1,
            revoked_by = $2, revoke_reason = $3, pairing_code_hash = NULL, updated_at = $1
         WHERE tenant_id = $4 AND id = $5 AND status <> 'revoked' RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(by.as_str())
    .bind(reason)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

/// Delete a pairing that was never used. `Ok(false)` if not pending.
pub async fn delete_pending(
    mut w: impl Write,
    scope: &TenantScope,
    id: &AgentId,
) -> StoreResult<bool> {
    Ok(
        sqlx::query("DELETE FROM agents WHERE tenant_id = $1 AND id = $2 AND status = 'pending'")
            .bind(scope.tenant())
            .bind(id.as_str())
            .execute(w.exec())
            .await?
            .rows_affected()
            == 1,
    )
}

/// Move active agents between online → unreachable → offline by last
/// heartbeat; returns the agents whose state changed (with the new state).
pub async fn sweep_connection_states(
    mut w: &Writer,
    unreachable_before: i64,
    offline_before: i64,
    now: i64,
) -> StoreResult<Vec<AgentRow>> {
    let mut changed = sqlx::query_as::<_, AgentRow>(&format!(
        "UPDATE agents SET connection_state = 'offline', updated_at = $1
         WHERE status = 'active' AND connection_state <> 'offline'
           AND (last_seen_at IS NULL OR last_seen_at < $2) RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(offline_before)
    .fetch_all(w.exec())
    .await?;
    changed.extend(
        sqlx::query_as::<_, AgentRow>(&format!(
            "UPDATE agents SET connection_state = 'unreachable', updated_at = $1
             WHERE status = 'active' AND connection_state = 'online' AND last_seen_at < $2
             RETURNING {COLUMNS}"
        ))
        .bind(now)
        .bind(unreachable_before)
        .fetch_all(w.exec())
        .await?,
    );
    Ok(changed)
}

// ---- agent tokens ----

#[derive(Debug, Clone, FromRow)]
pub struct AgentTokenRow {
    pub id: TokenId,
    pub agent_id: AgentId,
    pub tenant_id: TenantId,
    pub token_hint: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

pub async fn insert_token(
    mut w: impl Write,
    agent: &AgentRow,
    token_hash: &str,
    token_hint: &str,
    expires_at: i64,
    now: i64,
) -> StoreResult<AgentTokenRow> {
    Ok(sqlx::query_as::<_, AgentTokenRow>(
        "INSERT INTO agent_tokens (id, agent_id, tenant_id, token_hash, token_hint, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, agent_id, tenant_id, token_hint, created_at, expires_at, revoked_at",
    )
    .bind(new_id())
    .bind(agent.id.as_str())
    .bind(agent.tenant_id.as_str())
    .bind(token_hash)
    .bind(token_hint)
    .bind(now)
    .bind(expires_at)
    .fetch_one(w.exec())
    .await?)
}

/// A live token joined with what authentication needs of its agent.
#[derive(Debug, Clone, FromRow)]
pub struct TokenAgent {
    pub token_id: TokenId,
    pub token_created_at: i64,
    pub token_expires_at: i64,
    pub agent_id: AgentId,
    pub tenant_id: TenantId,
    pub owner_user_id: Option<UserId>,
    #[sqlx(try_from = "String")]
    pub status: AgentStatus,
    /// Set once the token was rotated out (it lives on for a grace period).
    pub rotated_at: Option<i64>,
}

/// A live (unexpired, unrevoked) token of an enabled tenant and its agent,
/// whatever the agent's status — the caller decides what a revoked agent
/// means. One query: this runs on every agent request.
pub async fn find_token(
    mut r: impl Read,
    token_hash: &str,
    now: i64,
) -> StoreResult<Option<TokenAgent>> {
    Ok(sqlx::query_as::<_, TokenAgent>(
        "SELECT t.id AS token_id, t.created_at AS token_created_at, t.expires_at AS token_expires_at,
                t.rotated_at, a.id AS agent_id, a.tenant_id, a.owner_user_id, a.status
         FROM agent_tokens t JOIN agents a ON a.id = t.agent_id JOIN tenants n ON n.id = a.tenant_id
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2
           AND n.disabled_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(r.exec())
    .await?)
}

/// Retire a rotated-out token: it lives until `until` and cannot rotate
/// again. `false` when it was already rotated (a concurrent rotation won).
pub async fn retire_token(
    mut w: impl Write,
    token_id: &TokenId,
    until: i64,
    now: i64,
) -> StoreResult<bool> {
    Ok(sqlx::query(
        "UPDATE agent_tokens SET expires_at = CASE WHEN expires_at > $1 THEN $1 ELSE expires_at END,
            rotated_at = $2
         WHERE id = $3 AND rotated_at IS NULL",
    )
    .bind(until)
    .bind(now)
    .bind(token_id.as_str())
    .execute(w.exec())
    .await?
    .rows_affected()
        == 1)
}
