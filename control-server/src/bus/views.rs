//! Stored rows → the protocol's API shapes.

use botmox_protocol::{Agent, Command, CommandStatus};
use serde_json::Value;

use crate::config::BusConfig;
use crate::store::agents::AgentRow;
use crate::store::commands::CommandRow;
use crate::store::ms_to_rfc3339;

fn json_or_null(text: Option<&str>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// `online` within two heartbeat intervals, `unreachable` until
/// `offline_after`, then `offline`; `pending`/`revoked` from the lifecycle.
pub fn connection_state(row: &AgentRow, now: i64, cfg: &BusConfig) -> &'static str {
    match row.status.as_str() {
        "pending" => "pending",
        "revoked" => "revoked",
        _ => match row.last_seen_at {
            Some(t) if now - t <= (2 * cfg.heartbeat_interval_s as i64) * 1000 => "online",
            Some(t) if now - t <= cfg.offline_after_s as i64 * 1000 => "unreachable",
            _ => "offline",
        },
    }
}

pub fn agent(row: &AgentRow, now: i64, cfg: &BusConfig) -> Agent {
    Agent {
        id: row.id.clone(),
        tenant_id: row.tenant_id.clone(),
        owner_user_id: row.owner_user_id.clone(),
        name: row.name.clone(),
        status: row.status.clone(),
        connection: connection_state(row, now, cfg).to_string(),
        machine_name: row.machine_name.clone(),
        version: row.version.clone(),
        platform: row.platform.clone(),
        capabilities: serde_json::from_str(&row.capabilities).unwrap_or_default(),
        metadata: json_or_null(row.metadata.as_deref()),
        last_seen_at: row.last_seen_at.map(ms_to_rfc3339),
        paired_at: row.paired_at.map(ms_to_rfc3339),
        pairing_expires_at: row.pairing_expires_at.map(ms_to_rfc3339),
        revoked_at: row.revoked_at.map(ms_to_rfc3339),
        revoke_reason: row.revoke_reason.clone(),
        created_at: ms_to_rfc3339(row.created_at),
        updated_at: ms_to_rfc3339(row.updated_at),
    }
}

pub fn status_of(row: &CommandRow) -> CommandStatus {
    CommandStatus::parse(&row.status).unwrap_or(CommandStatus::Failed)
}

pub fn command(row: &CommandRow) -> Command {
    Command {
        id: row.id.clone(),
        tenant_id: row.tenant_id.clone(),
        agent_id: row.agent_id.clone(),
        command_type: row.command_type.clone(),
        payload: serde_json::from_str(&row.payload).unwrap_or(Value::Null),
        status: status_of(row),
        attempt: row.attempt_count as u32,
        max_attempts: row.max_attempts as u32,
        cancel_requested: row.cancel_requested != 0,
        result: json_or_null(row.result.as_deref()),
        error_code: row.error_code.clone(),
        error_message: row.error_message.clone(),
        progress: json_or_null(row.progress.as_deref()),
        idempotency_key: row.idempotency_key.clone(),
        created_by: row.created_by.clone(),
        created_at: ms_to_rfc3339(row.created_at),
        updated_at: ms_to_rfc3339(row.updated_at),
        dispatched_at: row.dispatched_at.map(ms_to_rfc3339),
        started_at: row.started_at.map(ms_to_rfc3339),
        finished_at: row.finished_at.map(ms_to_rfc3339),
        expires_at: ms_to_rfc3339(row.expires_at),
        lease_expires_at: row.lease_expires_at.map(ms_to_rfc3339),
    }
}

/// The command as it appears in events: everything but the payload, which
/// may carry credentials and goes only to the agent that runs it.
pub fn command_summary(row: &CommandRow) -> Value {
    let mut v = serde_json::to_value(command(row)).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("payload");
    }
    v
}
