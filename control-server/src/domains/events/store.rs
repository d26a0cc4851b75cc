//! SQL of the events domain: `events`, the durable timeline of agents and
//! commands (the SSE source).

use sqlx::FromRow;

use crate::db::ids::{AgentId, CommandId, TenantId};
use crate::db::{Read, StoreResult, TenantScope, Write};

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub id: i64,
    pub tenant_id: TenantId,
    pub agent_id: Option<AgentId>,
    pub command_id: Option<CommandId>,
    /// The VM creation job the event belongs to (`vm_job.*` events).
    pub job_id: Option<String>,
    pub event_type: String,
    pub data: String,
    pub created_at: i64,
}

pub struct NewEvent<'a> {
    pub tenant_id: &'a str,
    pub agent_id: Option<&'a str>,
    pub command_id: Option<&'a str>,
    pub agent_owner_id: Option<&'a str>,
    pub command_created_by: Option<&'a str>,
    pub event_type: &'a str,
    pub data: &'a str,
    pub now: i64,
}

pub async fn insert(w: impl Write, e: NewEvent<'_>) -> StoreResult<i64> {
    insert_for_job(w, e, None).await
}

/// [`insert`] with the VM creation job the event belongs to.
pub async fn insert_for_job(
    mut w: impl Write,
    e: NewEvent<'_>,
    job_id: Option<&str>,
) -> StoreResult<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO events (tenant_id, agent_id, command_id, agent_owner_id, command_created_by, event_type, data, created_at, job_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(e.tenant_id)
    .bind(e.agent_id)
    .bind(e.command_id)
    .bind(e.agent_owner_id)
    .bind(e.command_created_by)
    .bind(e.event_type)
    .bind(e.data)
    .bind(e.now)
    .bind(job_id)
    .fetch_one(w.exec())
    .await?;
    Ok(id)
}

/// Who may see which events.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub agent_id: Option<String>,
    pub command_id: Option<String>,
    /// Only the events of this VM creation job.
    pub job_id: Option<String>,
    /// Non-privileged users: only events of agents they own (agent events)
    /// and of commands they created (command events).
    pub visible_to_user: Option<String>,
}

pub async fn after(
    mut r: impl Read,
    scope: &TenantScope,
    f: &EventFilter,
    after_id: i64,
    limit: i64,
) -> StoreResult<Vec<EventRow>> {
    let mut sql = String::from(
        "SELECT id, tenant_id, agent_id, command_id, job_id, event_type, data, created_at FROM events
         WHERE tenant_id = $1 AND id > $2",
    );
    let mut n = 2;
    if f.agent_id.is_some() {
        n += 1;
        sql.push_str(&format!(" AND agent_id = ${n}"));
    }
    if f.command_id.is_some() {
        n += 1;
        sql.push_str(&format!(" AND command_id = ${n}"));
    }
    if f.job_id.is_some() {
        n += 1;
        sql.push_str(&format!(" AND job_id = ${n}"));
    }
    if f.visible_to_user.is_some() {
        n += 1;
        // Agent events to the agent's owner; command events to the
        // command's creator only — exactly what a REST GET would show.
        sql.push_str(&format!(
            " AND ((command_id IS NULL AND agent_owner_id = ${n}) OR command_created_by = ${n})"
        ));
    }
    sql.push_str(&format!(" ORDER BY id LIMIT {}", limit.clamp(1, 1000)));
    let mut q = sqlx::query_as::<_, EventRow>(&sql)
        .bind(scope.tenant())
        .bind(after_id);
    for v in [&f.agent_id, &f.command_id, &f.job_id, &f.visible_to_user]
        .into_iter()
        .flatten()
    {
        q = q.bind(v.clone());
    }
    Ok(q.fetch_all(r.exec()).await?)
}
