//! Wire types of the agent ⇄ control-server protocol (JSON over HTTPS).
//!
//! The server is authoritative: it dictates the intervals the agent uses
//! ([`Intervals`]), owns the command state machine ([`CommandStatus`]) and
//! hands out leases. See `docs/protocol.md` for the whole protocol.

pub mod envelope;
pub mod pairing;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use pairing::{PairingBundle, PairingBundleError, ProxmoxHint};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Prefix of agent bearer tokens.
pub const AGENT_TOKEN_PREFIX: &str = "bmxa_";
/// Prefix of one-time pairing codes.
pub const PAIRING_CODE_PREFIX: &str = "bmxp_";

/// Stable error codes an agent must react to (see `docs/protocol.md`).
pub mod codes {
    /// The agent was revoked: stop the loop, tell the user. Never retried.
    pub const AGENT_REVOKED: &str = "AGENT_REVOKED";
    /// Pairing code unknown or already used. Never retried.
    pub const PAIRING_NOT_FOUND: &str = "PAIRING_NOT_FOUND";
    /// Pairing code expired: ask for a new one. Never retried.
    pub const PAIRING_EXPIRED: &str = "PAIRING_EXPIRED";
    /// The lease on a command was lost (requeued or re-claimed): drop the
    /// result, do not retry the report.
    pub const LEASE_LOST: &str = "LEASE_LOST";
    /// The reported status change is not allowed from the current state.
    pub const INVALID_TRANSITION: &str = "INVALID_TRANSITION";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
    pub const AGENT_OFFLINE: &str = "AGENT_OFFLINE";
    pub const AGENT_NOT_FOUND: &str = "AGENT_NOT_FOUND";
    pub const COMMAND_NOT_FOUND: &str = "COMMAND_NOT_FOUND";
    pub const DEAD_LETTERED: &str = "DEAD_LETTERED";
}

/// `{success:true, data, meta?}`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub success: bool,
    pub data: T,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// `{success:false, error:{code,message,details?}}`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub success: bool,
    pub error: ApiErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// Timing the server dictates; the agent must obey it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Intervals {
    /// Send a heartbeat this often.
    pub heartbeat_interval_s: u64,
    /// Long-poll `commands/next` with this timeout.
    pub poll_timeout_s: u64,
    /// A claimed command's lease lasts this long; renew it (PATCH running /
    /// progress) well before it ends, e.g. every `lease_s / 3`.
    pub lease_s: u64,
}

/// `POST /api/v1/agents/register` (public; the pairing code is the credential).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The one-time code of the pairing (`bmxp_…`).
    #[cfg_attr(feature = "openapi", schema(pattern = r"^bmxp_[A-Za-z0-9_-]{43}$"))]
    pub pairing_code: String,
    /// At most 200 characters, no control characters or bidi overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[^\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]{0,200}$")
    )]
    pub machine_name: Option<String>,
    /// At most 100 characters, no control characters or bidi overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[^\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]{0,100}$")
    )]
    pub version: Option<String>,
    /// At most 100 characters, no control characters or bidi overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[^\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]{0,100}$")
    )]
    pub platform: Option<String>,
    /// At most 50 entries of 1-100 bytes, no control characters or bidi overrides.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = capabilities_schema))]
    pub capabilities: Vec<String>,
}

/// `capabilities` of [`RegisterRequest`] as the server checks them.
#[cfg(feature = "openapi")]
fn capabilities_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(
            r"^[^\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]{1,100}$",
        )))
        .max_items(Some(50))
        .description(Some(
            "At most 50 entries of 1-100 bytes, no control characters or bidi overrides.",
        ))
        .build()
}

/// An agent as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Agent {
    pub id: String,
    pub tenant_id: String,
    pub owner_user_id: Option<String>,
    pub name: String,
    /// `pending`, `active` or `revoked` (stored lifecycle).
    pub status: String,
    /// Computed: `pending`, `online`, `unreachable`, `offline`, `revoked`.
    pub connection: String,
    pub machine_name: Option<String>,
    pub version: Option<String>,
    pub platform: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
    pub last_seen_at: Option<String>,
    pub paired_at: Option<String>,
    pub pairing_expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoke_reason: Option<String>,
    /// The agent's X25519 public key (base64url), once it registered one:
    /// seal secrets for this agent to it ([`envelope`]).
    #[serde(default)]
    pub public_key: Option<String>,
    /// `x25519:` + 16 hex digits naming `public_key`.
    #[serde(default)]
    pub public_key_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RegisterResponse {
    pub agent: Agent,
    /// Bearer token for every later call (`bmxa_…`). Shown once.
    pub agent_token: String,
    pub agent_token_expires_at: String,
    pub intervals: Intervals,
}

/// `POST /api/v1/agents/heartbeat` (agent token).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Free-form, JSON object (e.g. targets, running command count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HeartbeatResponse {
    pub agent_id: String,
    pub intervals: Intervals,
    pub server_time: String,
    pub agent_token_expires_at: String,
    /// True once 75% of the token's lifetime has passed: call `token/rotate`.
    pub rotate_token: bool,
    /// Send the next heartbeat after this many milliseconds: the interval
    /// less a random share, which the server widens on an agent's first
    /// heartbeat to a process, so a fleet that reconnected together after a
    /// server restart spreads out. Absent from older servers: use
    /// [`HeartbeatResponse::next_heartbeat_in`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_heartbeat_in_ms: Option<u64>,
}

impl HeartbeatResponse {
    /// When to send the next heartbeat: the server's `next_heartbeat_in_ms`
    /// kept within 1 s ..= the heartbeat interval, else the interval.
    pub fn next_heartbeat_in(&self) -> std::time::Duration {
        let interval_ms = self.intervals.heartbeat_interval_s.max(1) * 1000;
        let ms = self
            .next_heartbeat_in_ms
            .map_or(interval_ms, |ms| ms.clamp(1000, interval_ms));
        std::time::Duration::from_millis(ms)
    }
}

/// `POST /api/v1/agents/token/rotate` (agent token).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RotateTokenResponse {
    pub agent_token: String,
    pub agent_token_expires_at: String,
    /// The previous token keeps working until this time.
    pub previous_token_valid_until: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    Queued,
    Dispatched,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
}

impl CommandStatus {
    pub const ALL: &'static [CommandStatus] = &[
        CommandStatus::Queued,
        CommandStatus::Dispatched,
        CommandStatus::Running,
        CommandStatus::Succeeded,
        CommandStatus::Failed,
        CommandStatus::Cancelled,
        CommandStatus::Expired,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Queued => "queued",
            CommandStatus::Dispatched => "dispatched",
            CommandStatus::Running => "running",
            CommandStatus::Succeeded => "succeeded",
            CommandStatus::Failed => "failed",
            CommandStatus::Cancelled => "cancelled",
            CommandStatus::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<CommandStatus> {
        Some(match s {
            "queued" => CommandStatus::Queued,
            "dispatched" => CommandStatus::Dispatched,
            "running" => CommandStatus::Running,
            "succeeded" => CommandStatus::Succeeded,
            "failed" => CommandStatus::Failed,
            "cancelled" => CommandStatus::Cancelled,
            "expired" => CommandStatus::Expired,
            _ => return None,
        })
    }
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            CommandStatus::Succeeded
                | CommandStatus::Failed
                | CommandStatus::Cancelled
                | CommandStatus::Expired
        )
    }
}

impl std::fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no command status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCommandStatus(pub String);

impl std::fmt::Display for UnknownCommandStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is not a command status (queued, dispatched, running, succeeded, failed, cancelled, expired)",
            self.0
        )
    }
}

impl std::error::Error for UnknownCommandStatus {}

impl std::str::FromStr for CommandStatus {
    type Err = UnknownCommandStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CommandStatus::parse(s).ok_or_else(|| UnknownCommandStatus(s.to_string()))
    }
}

impl TryFrom<String> for CommandStatus {
    type Error = UnknownCommandStatus;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A command as the API shows it (to users and to the agent that runs it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Command {
    pub id: String,
    pub tenant_id: String,
    pub agent_id: String,
    /// e.g. `proxmox.clone`, `ssh.exec`.
    pub command_type: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Value,
    pub status: CommandStatus,
    /// Incremented by every claim; the agent echoes it in reports.
    pub attempt: u32,
    pub max_attempts: u32,
    /// Set when someone asked to cancel a dispatched/running command.
    pub cancel_requested: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<Value>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub progress: Option<Value>,
    pub idempotency_key: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub dispatched_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub expires_at: String,
    pub lease_expires_at: Option<String>,
}

/// What an agent may report about its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReportedStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl From<ReportedStatus> for CommandStatus {
    fn from(s: ReportedStatus) -> Self {
        match s {
            ReportedStatus::Running => CommandStatus::Running,
            ReportedStatus::Succeeded => CommandStatus::Succeeded,
            ReportedStatus::Failed => CommandStatus::Failed,
            ReportedStatus::Cancelled => CommandStatus::Cancelled,
        }
    }
}

/// `PATCH /api/v1/vm-ops/commands/{id}` (the agent holding the lease).
/// `running` (with or without progress) renews the lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CommandReport {
    pub status: ReportedStatus,
    /// The `attempt` of the claim this report belongs to.
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub progress: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
    Log,
}

/// One chunk of command output; `seq` starts at 0 and is unique per command
/// (a repeated `seq` is ignored, so resending is safe).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OutputChunk {
    pub seq: u64,
    pub stream: OutputStream,
    pub data: String,
}

/// `POST /api/v1/vm-ops/commands/{id}/output`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OutputAppend {
    pub chunks: Vec<OutputChunk>,
}

/// `PUT /api/v1/agents/me/public-key` (agent token): the public half of the
/// agent's X25519 key pair, whose private half stays in its OS keyring.
/// Idempotent; a different key replaces the previous one (secrets sealed to
/// the old key must then be put again).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentPublicKeyRequest {
    /// `X25519` (the only one).
    #[cfg_attr(feature = "openapi", schema(pattern = "^X25519$"))]
    pub alg: String,
    /// 32 bytes, base64url without padding.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{43}$"))]
    pub public_key: String,
}

/// The public key the server holds for an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AgentPublicKey {
    pub agent_id: String,
    pub alg: String,
    pub public_key: String,
    /// `x25519:` + 16 hex digits of SHA-256(public key).
    pub key_id: String,
    pub registered_at: String,
    /// False when the same key was already registered.
    pub changed: bool,
}

/// `GET /api/v1/agents/me/secrets/{id}` (agent token): a secret bound to
/// this agent, sealed to its public key ([`envelope`]). Open it with
/// `envelope::Binding { secret_id, agent_id }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AgentSecret {
    pub secret_id: String,
    pub agent_id: String,
    pub label: String,
    /// [`envelope::ALG`].
    pub alg: String,
    /// The agent key the envelope is sealed to.
    pub key_id: String,
    /// The envelope (base64url): only this agent's private key opens it.
    pub envelope: String,
    /// Incremented by every rotation.
    pub material_version: i64,
    pub updated_at: String,
    pub rotated_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn heartbeat_answer(next: Option<u64>) -> HeartbeatResponse {
        let mut v = serde_json::json!({
            "agent_id": "a",
            "intervals": {"heartbeat_interval_s": 30, "poll_timeout_s": 50, "lease_s": 120},
            "server_time": "2026-11-30T00:00:00Z",
            "agent_token_expires_at": "2027-11-30T00:00:00Z",
            "rotate_token": false
        });
        if let Some(n) = next {
            v["next_heartbeat_in_ms"] = n.into();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_next_heartbeat_follows_the_server_within_bounds() {
        // an older server: the interval
        assert_eq!(
            heartbeat_answer(None).next_heartbeat_in(),
            Duration::from_secs(30)
        );
        assert_eq!(
            heartbeat_answer(Some(12_345)).next_heartbeat_in(),
            Duration::from_millis(12_345)
        );
        // never sooner than 1 s, never later than the interval
        assert_eq!(
            heartbeat_answer(Some(0)).next_heartbeat_in(),
            Duration::from_secs(1)
        );
        assert_eq!(
            heartbeat_answer(Some(3_600_000)).next_heartbeat_in(),
            Duration::from_secs(30)
        );
    }
}
