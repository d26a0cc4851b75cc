//! Commands: dispatch (with ownership, online check, idempotency and
//! read-only dedupe), long-poll claim with leases, the agent's reports
//! (state machine), output chunks, cancellation, reads, and the sweeps that
//! requeue, dead-letter and expire commands.

use std::sync::Arc;
use std::time::Duration;

use botmox_protocol::{Command, CommandReport, CommandStatus, OutputAppend, ReportedStatus};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::store::{self, CommandRow, NewCommand, OutputRow, ReportUpdate};
use super::CommandError;
use crate::auth::{Identity, Role};
use crate::config::BusConfig;
use crate::db::ids::{AgentId, CommandId, UserId};
use crate::db::list::{Fixed, ListParams, Page};
use crate::db::{ms_to_rfc3339, now_ms, Db, StoreError, StoreResult, TenantScope, Tx, Write};
use crate::domains::agents::service::connection_state;
use crate::domains::agents::{
    AgentError, AgentIdentity, AgentStatus, AgentsService, Caller, ConnectionState,
};
use crate::domains::events::store::NewEvent;
use crate::domains::events::EventsService;
use crate::notify::Notifier;
use crate::validate::FieldErrors;

/// Proxmox actions an agent executes (`proxmox.<action>`).
pub const PROXMOX_ACTIONS: &[&str] = &[
    "status",
    "login",
    "list",
    "list-vms",
    "list-targets",
    "vm-status",
    "get-config",
    "config.get",
    "update-config",
    "config.update",
    "start",
    "stop",
    "shutdown",
    "reset",
    "reboot",
    "suspend",
    "resume",
    "clone",
    "delete",
    "resize-disk",
    "sendkey",
    "cluster-resources",
    "task-status",
    "wait-task",
    "wait-vm-status",
    "wait-vm-presence",
    "create-provision-iso",
    "upload-iso",
    "attach-cdrom",
    "detach-cdrom",
    "ssh-status",
    "ssh-test",
    "ssh-bootstrap",
    "ssh-read-config",
    "ssh-write-config",
    "ssh-exec",
];

/// SSH actions (`ssh.<action>`).
pub const SSH_ACTIONS: &[&str] = &[
    "status",
    "test",
    "bootstrap",
    "read-config",
    "write-config",
    "exec",
];

/// Read-only command types: an identical one within 10 s is reused.
const READ_ONLY: &[&str] = &[
    "proxmox.status",
    "proxmox.list",
    "proxmox.list-vms",
    "proxmox.list-targets",
    "proxmox.vm-status",
    "proxmox.get-config",
    "proxmox.config.get",
    "proxmox.cluster-resources",
    "proxmox.task-status",
    "proxmox.ssh-status",
    "proxmox.ssh-test",
    "ssh.status",
    "ssh.test",
];
const DEDUPE_WINDOW_MS: i64 = 10_000;
const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Output limits (documented in docs/protocol.md).
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;
pub const MAX_CHUNKS_PER_REQUEST: usize = 1000;
pub const MAX_OUTPUT_BYTES: i64 = 4 * 1024 * 1024;

pub struct DispatchInput {
    pub agent_id: AgentId,
    pub command_type: String,
    pub payload: Value,
    pub expires_in_seconds: Option<u64>,
    pub idempotency_key: Option<String>,
}

/// A command the server dispatches by itself with an id chosen up front
/// ([`CommandsService::dispatch_system_with_id`]).
pub struct SystemCommand<'a> {
    pub id: &'a CommandId,
    pub agent_id: &'a AgentId,
    pub command_type: &'a str,
    pub payload: Value,
    pub idempotency_key: &'a str,
    /// Unclaimed after this many seconds: `expired`.
    pub expires_in_s: u64,
}

/// Outcome of a dispatch: a new command, or an existing one reused.
pub struct Dispatched {
    pub command: Command,
    pub reused: bool,
}

fn digest(payload: &Value) -> String {
    // serde_json maps are ordered by key, so this is a canonical form.
    hex::encode(Sha256::digest(payload.to_string().as_bytes()))
}

/// Build `proxmox.<action>` / `ssh.<action>`, refusing unknown actions.
pub fn scoped_type(family: &str, action: &str) -> Result<String, CommandError> {
    let known = match family {
        "proxmox" => PROXMOX_ACTIONS,
        "ssh" => SSH_ACTIONS,
        _ => &[][..],
    };
    if known.contains(&action) {
        Ok(format!("{family}.{action}"))
    } else {
        Err(CommandError::Validation(FieldErrors::one(
            "action",
            format!(
                "unknown {family} action `{action}`; known: {}",
                known.join(", ")
            ),
        )))
    }
}

fn valid_command_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 200
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

pub struct CommandsService {
    db: Db,
    cfg: BusConfig,
    agents: Arc<AgentsService>,
    events: EventsService,
    notifier: Arc<Notifier>,
}

/// What one sweep of the commands changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CommandSweep {
    pub requeued: usize,
    pub dead_lettered: usize,
    pub expired: usize,
}

impl CommandsService {
    pub fn new(
        db: Db,
        cfg: BusConfig,
        agents: Arc<AgentsService>,
        events: EventsService,
        notifier: Arc<Notifier>,
    ) -> CommandsService {
        CommandsService {
            db,
            cfg,
            agents,
            events,
            notifier,
        }
    }

    pub fn config(&self) -> &BusConfig {
        &self.cfg
    }

    /// Record `command.<what>` on its own and wake event streams.
    async fn event(&self, what: &str, row: &CommandRow, owner: Option<&UserId>) -> StoreResult<()> {
        record_event(&self.events, self.db.writer(), what, row, owner).await?;
        self.events.notify().await;
        Ok(())
    }

    pub async fn dispatch(
        &self,
        caller: &Identity,
        input: DispatchInput,
    ) -> Result<Dispatched, CommandError> {
        let scope = caller.require(Role::Operator)?;
        let privileged = caller.has(Role::Admin);
        let mut f = FieldErrors::default();
        f.check(
            !input.agent_id.as_str().trim().is_empty() && input.agent_id.as_str().len() <= 200,
            "agent_id",
            "must be 1-200 characters",
        );
        f.check(
            valid_command_type(&input.command_type),
            "command_type",
            "must be 1-200 characters of a-z, 0-9, '.', '_' and '-'",
        );
        f.check(
            input.payload.is_object(),
            "payload",
            "must be a JSON object",
        );
        let expires_in = input.expires_in_seconds.unwrap_or(300);
        f.check(
            (10..=3600).contains(&expires_in),
            "expires_in_seconds",
            "must be between 10 and 3600",
        );
        if let Some(k) = &input.idempotency_key {
            if k.is_empty() {
                f.add("idempotency_key", "must be 1-200 characters");
            } else {
                f.display_text("idempotency_key", k, 200);
            }
        }
        if !f.0.is_empty() {
            return Err(CommandError::Validation(f));
        }
        let reader = self.db.reader();
        let now = now_ms();
        if let Some(key) = &input.idempotency_key {
            if let Some(existing) = store::find_by_idempotency_key(reader, &scope, key).await? {
                return self.idempotent_replay(caller, privileged, &input, existing, now);
            }
        }
        let agent = self
            .agents
            .get(&scope, &input.agent_id)
            .await?
            .ok_or(CommandError::Agent(AgentError::AgentNotFound))?;
        if !privileged {
            match agent.owner_user_id.as_ref() {
                None => return Err(CommandError::OwnerUnassigned),
                Some(o) if *o != caller.user_id => return Err(CommandError::OwnerMismatch),
                _ => {}
            }
        }
        match connection_state(&agent, now, &self.cfg) {
            ConnectionState::Online => {}
            ConnectionState::Revoked => return Err(CommandError::TargetRevoked),
            _ => return Err(CommandError::AgentOffline),
        }
        let payload = input.payload.to_string();
        let payload_digest = digest(&input.payload);
        if READ_ONLY.contains(&input.command_type.as_str()) && input.idempotency_key.is_none() {
            let mine = (!privileged).then_some(&caller.user_id);
            if let Some(dup) = store::find_recent_duplicate(
                reader,
                &scope,
                &agent.id,
                &input.command_type,
                &payload_digest,
                mine,
                now - DEDUPE_WINDOW_MS,
            )
            .await?
            {
                return Ok(Dispatched {
                    command: command_view(&dup),
                    reused: true,
                });
            }
        }
        let inserted = store::insert(
            self.db.writer(),
            NewCommand {
                id: &CommandId::generate(),
                tenant_id: scope.tenant_id(),
                agent_id: &agent.id,
                command_type: &input.command_type,
                payload: &payload,
                payload_digest: &payload_digest,
                max_attempts: i64::from(self.cfg.max_attempts),
                idempotency_key: input.idempotency_key.as_deref(),
                created_by: Some(&caller.user_id),
                expires_at: now + expires_in as i64 * 1000,
                now,
            },
        )
        .await;
        let row = match inserted {
            Ok(r) => r,
            // Lost a race on the same idempotency key: answer with the winner.
            Err(StoreError::Conflict(_)) => {
                let key = input.idempotency_key.as_deref().unwrap_or_default();
                let existing = store::find_by_idempotency_key(reader, &scope, key)
                    .await?
                    .ok_or(CommandError::IdempotencyKeyReused)?;
                return self.idempotent_replay(caller, privileged, &input, existing, now);
            }
            Err(e) => return Err(e.into()),
        };
        self.event("queued", &row, agent.owner_user_id.as_ref())
            .await?;
        self.notifier.wake_agent(agent.id.as_str()).await;
        Ok(Dispatched {
            command: command_view(&row),
            reused: false,
        })
    }

    /// A command the server sends by itself on behalf of `on_behalf_of`
    /// (provisioning's auto-detach): no role gate (the server decided; the
    /// caller checked ownership when the work was set up), otherwise as
    /// [`CommandsService::dispatch`]: the agent must be online, the
    /// idempotency key makes it happen once.
    pub async fn dispatch_system(
        &self,
        scope: &TenantScope,
        on_behalf_of: &UserId,
        agent_id: &AgentId,
        command_type: &str,
        payload: Value,
        idempotency_key: &str,
    ) -> Result<Command, CommandError> {
        self.dispatch_system_with_id(
            scope,
            on_behalf_of,
            SystemCommand {
                id: &CommandId::generate(),
                agent_id,
                command_type,
                payload,
                idempotency_key,
                expires_in_s: 3600,
            },
        )
        .await
    }

    /// [`CommandsService::dispatch_system`] with an id the caller chose
    /// (and stored) before dispatching, so a crash between its own write
    /// and this call is resumed by dispatching again with the same id and
    /// key (the VM jobs' orchestrator). The key makes it happen once; a
    /// concurrent dispatch with the same key answers the winner.
    pub async fn dispatch_system_with_id(
        &self,
        scope: &TenantScope,
        on_behalf_of: &UserId,
        c: SystemCommand<'_>,
    ) -> Result<Command, CommandError> {
        let SystemCommand {
            id,
            agent_id,
            command_type,
            payload,
            idempotency_key,
            expires_in_s,
        } = c;
        let reader = self.db.reader();
        if let Some(existing) =
            store::find_by_idempotency_key(reader, scope, idempotency_key).await?
        {
            return Ok(command_view(&existing));
        }
        if let Some(existing) = store::get(reader, scope, id).await? {
            return Ok(command_view(&existing));
        }
        let now = now_ms();
        let agent = self
            .agents
            .get(scope, agent_id)
            .await?
            .ok_or(CommandError::Agent(AgentError::AgentNotFound))?;
        match connection_state(&agent, now, &self.cfg) {
            ConnectionState::Online => {}
            ConnectionState::Revoked => return Err(CommandError::TargetRevoked),
            _ => return Err(CommandError::AgentOffline),
        }
        let inserted = store::insert(
            self.db.writer(),
            NewCommand {
                id,
                tenant_id: scope.tenant_id(),
                agent_id: &agent.id,
                command_type,
                payload: &payload.to_string(),
                payload_digest: &digest(&payload),
                max_attempts: i64::from(self.cfg.max_attempts),
                idempotency_key: Some(idempotency_key),
                created_by: Some(on_behalf_of),
                expires_at: now + expires_in_s as i64 * 1000,
                now,
            },
        )
        .await;
        let row = match inserted {
            Ok(r) => r,
            // Lost a race on the same key (or id): answer with the winner.
            Err(StoreError::Conflict(_)) => {
                let existing =
                    match store::find_by_idempotency_key(reader, scope, idempotency_key).await? {
                        Some(e) => Some(e),
                        None => store::get(reader, scope, id).await?,
                    };
                return existing
                    .map(|e| command_view(&e))
                    .ok_or(CommandError::IdempotencyKeyReused);
            }
            Err(e) => return Err(e.into()),
        };
        self.event("queued", &row, agent.owner_user_id.as_ref())
            .await?;
        self.notifier.wake_agent(agent.id.as_str()).await;
        Ok(command_view(&row))
    }

    /// Cancel a command the server dispatched by itself (the VM jobs'
    /// orchestrator: job cancelled, step deadline passed): queued →
    /// `cancelled`, dispatched/running → cancel requested. A command that
    /// already ended is left as it is.
    pub async fn cancel_system(
        &self,
        scope: &TenantScope,
        id: &CommandId,
    ) -> Result<Option<Command>, CommandError> {
        let now = now_ms();
        let Some(row) = store::get(self.db.reader(), scope, id).await? else {
            return Ok(None);
        };
        let owner = self.agents.owner_of(scope, &row.agent_id).await;
        if let Some(done) = store::cancel_queued(self.db.writer(), scope, id, now).await? {
            self.event("cancelled", &done, owner.as_ref()).await?;
            return Ok(Some(command_view(&done)));
        }
        if let Some(req) = store::request_cancel(self.db.writer(), scope, id, now).await? {
            self.event("cancel_requested", &req, owner.as_ref()).await?;
            self.notifier.wake_agent(req.agent_id.as_str()).await;
            return Ok(Some(command_view(&req)));
        }
        Ok(store::get(self.db.reader(), scope, id)
            .await?
            .map(|r| command_view(&r)))
    }

    /// A command of the tenant, whoever asks (for other domains' views).
    pub async fn get_in_scope(
        &self,
        scope: &TenantScope,
        id: &CommandId,
    ) -> Result<Option<Command>, CommandError> {
        Ok(store::get(self.db.reader(), scope, id)
            .await?
            .map(|r| command_view(&r)))
    }

    fn idempotent_replay(
        &self,
        caller: &Identity,
        privileged: bool,
        input: &DispatchInput,
        existing: CommandRow,
        now: i64,
    ) -> Result<Dispatched, CommandError> {
        let same = existing.agent_id == input.agent_id
            && existing.command_type == input.command_type
            && existing.created_at >= now - IDEMPOTENCY_WINDOW_MS
            && (privileged || existing.created_by.as_ref() == Some(&caller.user_id));
        if !same {
            return Err(CommandError::IdempotencyKeyReused);
        }
        Ok(Dispatched {
            command: command_view(&existing),
            reused: true,
        })
    }

    /// Long poll: claim the oldest queued command or wait until one arrives
    /// (woken at once by a dispatch here or, on PostgreSQL, in another
    /// process), the timeout passes or the server shuts down. `busy` (the
    /// caller's share of an in-flight limit, if any) is held for the first
    /// claim attempt only and released before the poll parks: a waiting
    /// poll does no work.
    pub async fn next_command<B>(
        &self,
        agent: &AgentIdentity,
        timeout: Duration,
        busy: Option<B>,
    ) -> Result<Option<Command>, CommandError> {
        let mut busy = busy;
        let deadline = tokio::time::Instant::now() + timeout;
        let draining = self.notifier.draining();
        tokio::pin!(draining);
        let mut wake = self.notifier.subscribe_agent(agent.agent_id.as_str());
        let mut woken = false;
        loop {
            wake.borrow_and_update();
            // A wake-up may mean a revoke: the poll ends with AGENT_REVOKED.
            if woken {
                let me = self
                    .agents
                    .get(&agent.scope(), &agent.agent_id)
                    .await?
                    .ok_or(CommandError::Agent(AgentError::AgentNotFound))?;
                if me.status == AgentStatus::Revoked {
                    return Err(CommandError::Agent(AgentError::AgentRevoked));
                }
            }
            let now = now_ms();
            if store::has_claimable(self.db.reader(), &agent.agent_id, now).await? {
                let lease_until = now + self.cfg.lease_s as i64 * 1000;
                if let Some(row) =
                    store::claim_next(self.db.writer(), &agent.agent_id, lease_until, now).await?
                {
                    self.event("dispatched", &row, agent.owner_user_id.as_ref())
                        .await?;
                    return Ok(Some(command_view(&row)));
                }
            }
            woken = false;
            drop(busy.take());
            tokio::select! {
                changed = wake.changed() => {
                    woken = true;
                    if changed.is_err() {
                        wake = self.notifier.subscribe_agent(agent.agent_id.as_str());
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
                // shutting down: answer 204 now (the agent polls again, and
                // reaches the restarted server) instead of holding the drain
                _ = &mut draining => return Ok(None),
                // Safety net for a notification missed while a LISTEN
                // connection was down (a cheap read).
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
    }

    /// The owning agent reports progress or an outcome.
    pub async fn report(
        &self,
        agent: &AgentIdentity,
        id: &CommandId,
        r: CommandReport,
    ) -> Result<Command, CommandError> {
        let mut f = FieldErrors::default();
        if let Some(m) = &r.error_message {
            f.check(
                m.chars().count() <= 4000,
                "error_message",
                "must be at most 4000 characters",
            );
            f.check(!m.contains('\0'), "error_message", "must not contain NUL");
        }
        if let Some(c) = &r.error_code {
            f.display_text("error_code", c, 100);
        }
        if let Some(c) = &r.error_code {
            f.check(
                !c.is_empty() && c.len() <= 100,
                "error_code",
                "must be 1-100 characters",
            );
        }
        let result = r.result.as_ref().map(Value::to_string);
        if let Some(res) = &result {
            f.check(
                res.len() <= 1024 * 1024,
                "result",
                "must be at most 1 MiB of JSON",
            );
        }
        let progress = r.progress.as_ref().map(Value::to_string);
        if let Some(p) = &progress {
            f.check(
                p.len() <= 16 * 1024,
                "progress",
                "must be at most 16 KiB of JSON",
            );
        }
        if !f.0.is_empty() {
            return Err(CommandError::Validation(f));
        }
        let scope = agent.scope();
        let reader = self.db.reader();
        let current = self.own_command(agent, id).await?;
        let wanted = CommandStatus::from(r.status);
        let status = current.status;
        if status.is_terminal() {
            // A repeated identical final report is a no-op; anything else is not.
            return if status == wanted && i64::from(r.attempt) == current.attempt_count {
                Ok(command_view(&current))
            } else {
                Err(CommandError::InvalidTransition(format!(
                    "the command already ended as {}",
                    status.as_str()
                )))
            };
        }
        if status == CommandStatus::Queued || i64::from(r.attempt) != current.attempt_count {
            return Err(CommandError::LeaseLost);
        }
        let now = now_ms();
        let finished = wanted.is_terminal();
        let updated = store::apply_report(
            self.db.writer(),
            &agent.agent_id,
            id,
            ReportUpdate {
                status: wanted.as_str(),
                attempt: i64::from(r.attempt),
                result: result.as_deref(),
                error_code: r.error_code.as_deref().or(match r.status {
                    ReportedStatus::Failed => Some("EXECUTION_FAILED"),
                    _ => None,
                }),
                error_message: r.error_message.as_deref(),
                progress: progress.as_deref(),
                lease_until: (!finished).then_some(now + self.cfg.lease_s as i64 * 1000),
                finished,
                now,
            },
        )
        .await?;
        let row = match updated {
            Some(row) => row,
            // Something else changed it meanwhile (sweeper, another report):
            // re-evaluate against the new state.
            None => {
                let fresh = store::get(reader, &scope, id)
                    .await?
                    .ok_or(CommandError::CommandNotFound)?;
                let s = fresh.status;
                return if s.is_terminal()
                    && s == wanted
                    && i64::from(r.attempt) == fresh.attempt_count
                {
                    Ok(command_view(&fresh))
                } else if s.is_terminal() {
                    Err(CommandError::InvalidTransition(format!(
                        "the command already ended as {}",
                        s.as_str()
                    )))
                } else {
                    Err(CommandError::LeaseLost)
                };
            }
        };
        if status != wanted || r.progress.is_some() {
            let what = if status == wanted {
                "progress"
            } else {
                wanted.as_str()
            };
            self.event(what, &row, agent.owner_user_id.as_ref()).await?;
        }
        Ok(command_view(&row))
    }

    async fn own_command(
        &self,
        agent: &AgentIdentity,
        id: &CommandId,
    ) -> Result<CommandRow, CommandError> {
        let row = store::get(self.db.reader(), &agent.scope(), id)
            .await?
            .ok_or(CommandError::CommandNotFound)?;
        if row.agent_id != agent.agent_id {
            return Err(CommandError::CommandNotFound);
        }
        Ok(row)
    }

    /// A command the caller may see: agents their own, users the ones they
    /// created (admins all of the tenant).
    pub async fn visible_command(
        &self,
        caller: &Caller,
        id: &CommandId,
    ) -> Result<CommandRow, CommandError> {
        match caller {
            Caller::Agent(a) => self.own_command(a, id).await,
            Caller::User(u) => {
                let row = store::get(self.db.reader(), &u.scope(), id)
                    .await?
                    .ok_or(CommandError::CommandNotFound)?;
                if !u.has(Role::Admin) && row.created_by.as_ref() != Some(&u.user_id) {
                    return Err(CommandError::CommandNotFound);
                }
                Ok(row)
            }
        }
    }

    /// Append output chunks (duplicates by `seq` ignored). Returns (new, duplicate).
    pub async fn append_output(
        &self,
        agent: &AgentIdentity,
        id: &CommandId,
        req: OutputAppend,
    ) -> Result<(usize, usize), CommandError> {
        let row = self.own_command(agent, id).await?;
        if req.chunks.len() > MAX_CHUNKS_PER_REQUEST {
            return Err(CommandError::Validation(FieldErrors::one(
                "chunks",
                format!("at most {MAX_CHUNKS_PER_REQUEST} chunks per request"),
            )));
        }
        let mut incoming: i64 = 0;
        for (i, c) in req.chunks.iter().enumerate() {
            if c.data.contains('\0') {
                return Err(CommandError::Validation(FieldErrors::one(
                    &format!("chunks[{i}].data"),
                    "must not contain NUL (send binary output base64-encoded)",
                )));
            }
            if c.data.len() > MAX_CHUNK_BYTES {
                return Err(CommandError::Validation(FieldErrors::one(
                    &format!("chunks[{i}].data"),
                    format!("at most {MAX_CHUNK_BYTES} bytes per chunk"),
                )));
            }
            if c.seq > i64::MAX as u64 {
                return Err(CommandError::Validation(FieldErrors::one(
                    &format!("chunks[{i}].seq"),
                    "too large",
                )));
            }
            incoming += c.data.len() as i64;
        }
        if row.status.is_terminal() {
            return Err(CommandError::CommandFinished);
        }
        if incoming > MAX_OUTPUT_BYTES {
            return Err(output_limit());
        }
        let now = now_ms();
        let (mut added, mut dup, mut bytes) = (0, 0, 0i64);
        let mut tx = self.db.begin().await?;
        for c in &req.chunks {
            let stream = serde_json::to_value(c.stream)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "log".into());
            if store::append_output(&mut tx, &row.id, c.seq as i64, &stream, &c.data, now).await? {
                added += 1;
                bytes += c.data.len() as i64;
            } else {
                dup += 1;
            }
        }
        if bytes > 0 && !store::add_output_bytes(&mut tx, &row.id, bytes, MAX_OUTPUT_BYTES).await? {
            drop(tx);
            let fresh = self.own_command(agent, id).await?;
            return Err(if fresh.status.is_terminal() {
                CommandError::CommandFinished
            } else if fresh.status == CommandStatus::Queued {
                CommandError::LeaseLost
            } else {
                output_limit()
            });
        }
        tx.commit().await?;
        Ok((added, dup))
    }

    pub async fn read_output(
        &self,
        caller: &Caller,
        id: &CommandId,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<OutputRow>, CommandError> {
        let row = self.visible_command(caller, id).await?;
        Ok(store::read_output(self.db.reader(), &row.id, after_seq, limit).await?)
    }

    /// Cancel: queued → cancelled now; dispatched/running → cancel requested
    /// (the agent sees it in its next lease renewal).
    pub async fn cancel(&self, caller: &Identity, id: &CommandId) -> Result<Command, CommandError> {
        let scope = caller.require(Role::Operator)?;
        let row = self
            .visible_command(&Caller::User(caller.clone()), id)
            .await?;
        let reader = self.db.reader();
        let now = now_ms();
        let owner = self.agents.owner_of(&scope, &row.agent_id).await;
        if let Some(done) = store::cancel_queued(self.db.writer(), &scope, id, now).await? {
            self.event("cancelled", &done, owner.as_ref()).await?;
            return Ok(command_view(&done));
        }
        if let Some(req) = store::request_cancel(self.db.writer(), &scope, id, now).await? {
            self.event("cancel_requested", &req, owner.as_ref()).await?;
            self.notifier.wake_agent(req.agent_id.as_str()).await;
            return Ok(command_view(&req));
        }
        let fresh = store::get(reader, &scope, id)
            .await?
            .ok_or(CommandError::CommandNotFound)?;
        let s = fresh.status;
        if s.is_terminal() {
            return Err(CommandError::InvalidTransition(format!(
                "the command already ended as {}",
                s.as_str()
            )));
        }
        // Cancel was already requested.
        Ok(command_view(&fresh))
    }

    /// Commands the caller may see, as a page: agents their own, users
    /// those they created (admins: the whole tenant).
    pub async fn list(
        &self,
        caller: &Caller,
        params: &ListParams,
    ) -> Result<Page<CommandRow>, CommandError> {
        let fixed = match caller {
            Caller::Agent(a) => {
                let foreign = params.filters.iter().any(|f| {
                    f.column.name == "agent_id"
                        && f.values
                            .iter()
                            .any(|v| *v != crate::db::list::Value::Text(a.agent_id.to_string()))
                });
                if foreign {
                    return Err(CommandError::ForeignAgent);
                }
                vec![Fixed::eq("agent_id", a.agent_id.as_str())]
            }
            Caller::User(u) if !u.has(Role::Admin) => {
                vec![Fixed::eq("created_by", u.user_id.as_str())]
            }
            Caller::User(_) => Vec::new(),
        };
        Ok(store::list(
            self.db.reader(),
            self.db.backend(),
            &caller.scope(),
            &fixed,
            params,
        )
        .await?)
    }

    /// Requeue commands whose lease ran out (until `max_attempts`, then
    /// dead-letter them), expire queued commands nobody picked up, free old
    /// idempotency keys. Every change is recorded as an event. Safe in
    /// several processes at once: each change is a conditional UPDATE.
    pub async fn sweep(&self, now: i64) -> StoreResult<CommandSweep> {
        let mut report = CommandSweep::default();
        let w = self.db.writer();
        for row in store::requeue_expired_leases(w, now).await? {
            let owner = self
                .agents
                .owner_of(&TenantScope::new(row.tenant_id.clone()), &row.agent_id)
                .await;
            self.event("requeued", &row, owner.as_ref()).await?;
            self.notifier.wake_agent(row.agent_id.as_str()).await;
            report.requeued += 1;
        }
        for row in store::dead_letter_expired_leases(w, now).await? {
            let owner = self
                .agents
                .owner_of(&TenantScope::new(row.tenant_id.clone()), &row.agent_id)
                .await;
            self.event("failed", &row, owner.as_ref()).await?;
            report.dead_lettered += 1;
        }
        for row in store::expire_queued(w, now).await? {
            let owner = self
                .agents
                .owner_of(&TenantScope::new(row.tenant_id.clone()), &row.agent_id)
                .await;
            self.event("expired", &row, owner.as_ref()).await?;
            report.expired += 1;
        }
        store::release_idempotency_keys(w, now - IDEMPOTENCY_WINDOW_MS).await?;
        Ok(report)
    }
}

fn output_limit() -> CommandError {
    CommandError::OutputLimit(format!(
        "a command keeps at most {MAX_OUTPUT_BYTES} bytes of output"
    ))
}

fn json_or_null(text: Option<&str>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// The stored row as the API shows it.
pub fn command_view(row: &CommandRow) -> Command {
    Command {
        id: row.id.to_string(),
        tenant_id: row.tenant_id.to_string(),
        agent_id: row.agent_id.to_string(),
        command_type: row.command_type.clone(),
        payload: serde_json::from_str(&row.payload).unwrap_or(Value::Null),
        status: row.status,
        attempt: row.attempt_count as u32,
        max_attempts: row.max_attempts as u32,
        cancel_requested: row.cancel_requested != 0,
        result: json_or_null(row.result.as_deref()),
        error_code: row.error_code.clone(),
        error_message: row.error_message.clone(),
        progress: json_or_null(row.progress.as_deref()),
        idempotency_key: row.idempotency_key.clone(),
        created_by: row.created_by.as_ref().map(UserId::to_string),
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
    let mut v = serde_json::to_value(command_view(row)).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("payload");
    }
    v
}

/// Write `command.<what>` with the command summary through `w` (the
/// caller's writer or transaction). The caller wakes streams after commit.
pub async fn record_event(
    events: &EventsService,
    w: impl Write,
    what: &str,
    row: &CommandRow,
    owner: Option<&UserId>,
) -> StoreResult<()> {
    let data = json!({ "command": command_summary(row) }).to_string();
    events
        .record(
            w,
            NewEvent {
                tenant_id: row.tenant_id.as_str(),
                agent_id: Some(row.agent_id.as_str()),
                command_id: Some(row.id.as_str()),
                agent_owner_id: owner.map(UserId::as_str),
                command_created_by: row.created_by.as_ref().map(UserId::as_str),
                event_type: &format!("command.{what}"),
                data: &data,
                now: now_ms(),
            },
        )
        .await?;
    Ok(())
}

/// Cancel every queued command of an agent inside the caller's transaction
/// (agent revocation).
pub async fn cancel_queued_for_agent(
    tx: &mut Tx,
    agent_id: &AgentId,
    now: i64,
) -> StoreResult<Vec<CommandRow>> {
    store::cancel_queued_for_agent(tx, agent_id, now).await
}
