//! Commands: dispatch (with ownership, online check, idempotency and
//! read-only dedupe), long-poll claim with leases, the agent's reports
//! (state machine), output chunks, cancellation, reads.

use std::time::Duration;

use botmox_protocol::{Command, CommandReport, CommandStatus, OutputAppend, ReportedStatus};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::agents::AgentIdentity;
use super::{invalid, views, Bus, BusError};
use crate::auth::{Identity, Role};
use crate::error::FieldErrors;
use crate::store::commands::{self, CommandRow, ListFilter, NewCommand, OutputRow, ReportUpdate};
use crate::store::{agents, new_id, now_ms, StoreError, TenantScope};

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

/// Who is asking: a person (or automation) or an agent.
#[derive(Debug, Clone)]
pub enum Caller {
    User(Identity),
    Agent(AgentIdentity),
}

impl Caller {
    pub fn scope(&self) -> TenantScope {
        match self {
            Caller::User(u) => u.scope(),
            Caller::Agent(a) => a.scope(),
        }
    }
}

pub struct DispatchInput {
    pub agent_id: String,
    pub command_type: String,
    pub payload: Value,
    pub expires_in_seconds: Option<u64>,
    pub idempotency_key: Option<String>,
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
pub fn scoped_type(family: &str, action: &str) -> Result<String, BusError> {
    let known = match family {
        "proxmox" => PROXMOX_ACTIONS,
        "ssh" => SSH_ACTIONS,
        _ => &[][..],
    };
    if known.contains(&action) {
        Ok(format!("{family}.{action}"))
    } else {
        Err(invalid(
            "action",
            format!(
                "unknown {family} action `{action}`; known: {}",
                known.join(", ")
            ),
        ))
    }
}

fn valid_command_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 200
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

impl Bus {
    pub async fn dispatch(
        &self,
        caller: &Identity,
        input: DispatchInput,
    ) -> Result<Dispatched, BusError> {
        let scope = caller
            .require(Role::Operator)
            .map_err(|_| BusError::RoleRequired("operator"))?;
        let privileged = caller.has(Role::Admin);
        let mut f = FieldErrors::default();
        f.check(
            !input.agent_id.trim().is_empty() && input.agent_id.len() <= 200,
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
            f.check(
                !k.is_empty() && k.len() <= 200,
                "idempotency_key",
                "must be 1-200 characters",
            );
        }
        if !f.0.is_empty() {
            return Err(BusError::Validation(f));
        }
        let pool = self.db.pool();
        let now = now_ms();
        if let Some(key) = &input.idempotency_key {
            if let Some(existing) = commands::find_by_idempotency_key(pool, &scope, key).await? {
                return self.idempotent_replay(caller, privileged, &input, existing, now);
            }
        }
        let agent = agents::get(pool, &scope, &input.agent_id)
            .await?
            .ok_or(BusError::AgentNotFound)?;
        if !privileged {
            match agent.owner_user_id.as_deref() {
                None => return Err(BusError::OwnerUnassigned),
                Some(o) if o != caller.user_id => return Err(BusError::OwnerMismatch),
                _ => {}
            }
        }
        match views::connection_state(&agent, now, &self.cfg) {
            "online" => {}
            "revoked" => return Err(BusError::TargetRevoked),
            _ => return Err(BusError::AgentOffline),
        }
        let payload = input.payload.to_string();
        let payload_digest = digest(&input.payload);
        if READ_ONLY.contains(&input.command_type.as_str()) && input.idempotency_key.is_none() {
            let mine = (!privileged).then_some(caller.user_id.as_str());
            if let Some(dup) = commands::find_recent_duplicate(
                pool,
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
                    command: views::command(&dup),
                    reused: true,
                });
            }
        }
        let inserted = commands::insert(
            self.db.writer(),
            NewCommand {
                id: &new_id(),
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
                let existing = commands::find_by_idempotency_key(pool, &scope, key)
                    .await?
                    .ok_or(BusError::IdempotencyKeyReused)?;
                return self.idempotent_replay(caller, privileged, &input, existing, now);
            }
            Err(e) => return Err(e.into()),
        };
        self.command_event("queued", &row, agent.owner_user_id.as_deref())
            .await?;
        self.notifier.wake_agent(&agent.id).await;
        Ok(Dispatched {
            command: views::command(&row),
            reused: false,
        })
    }

    fn idempotent_replay(
        &self,
        caller: &Identity,
        privileged: bool,
        input: &DispatchInput,
        existing: CommandRow,
        now: i64,
    ) -> Result<Dispatched, BusError> {
        let same = existing.agent_id == input.agent_id
            && existing.command_type == input.command_type
            && existing.created_at >= now - IDEMPOTENCY_WINDOW_MS
            && (privileged || existing.created_by.as_deref() == Some(caller.user_id.as_str()));
        if !same {
            return Err(BusError::IdempotencyKeyReused);
        }
        Ok(Dispatched {
            command: views::command(&existing),
            reused: true,
        })
    }

    /// Long poll: claim the oldest queued command or wait until one arrives
    /// (woken at once by a dispatch here or, on PostgreSQL, in another
    /// process) or the timeout passes.
    pub async fn next_command(
        &self,
        agent: &AgentIdentity,
        timeout: Duration,
    ) -> Result<Option<Command>, BusError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut wake = self.notifier.subscribe_agent(&agent.agent_id);
        let mut woken = false;
        loop {
            wake.borrow_and_update();
            // A wake-up may mean a revoke: the poll ends with AGENT_REVOKED.
            if woken {
                let me = agents::get(self.db.pool(), &agent.scope(), &agent.agent_id)
                    .await?
                    .ok_or(BusError::AgentNotFound)?;
                if me.status == "revoked" {
                    return Err(BusError::AgentRevoked);
                }
            }
            let now = now_ms();
            if commands::has_claimable(self.db.pool(), &agent.agent_id, now).await? {
                let lease_until = now + self.cfg.lease_s as i64 * 1000;
                if let Some(row) =
                    commands::claim_next(self.db.writer(), &agent.agent_id, lease_until, now)
                        .await?
                {
                    self.command_event("dispatched", &row, agent.owner_user_id.as_deref())
                        .await?;
                    return Ok(Some(views::command(&row)));
                }
            }
            woken = false;
            tokio::select! {
                changed = wake.changed() => {
                    woken = true;
                    if changed.is_err() {
                        wake = self.notifier.subscribe_agent(&agent.agent_id);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
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
        id: &str,
        r: CommandReport,
    ) -> Result<Command, BusError> {
        let mut f = FieldErrors::default();
        if let Some(m) = &r.error_message {
            f.check(
                m.chars().count() <= 4000,
                "error_message",
                "must be at most 4000 characters",
            );
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
            return Err(BusError::Validation(f));
        }
        let scope = agent.scope();
        let pool = self.db.pool();
        let current = self.own_command(agent, id).await?;
        let wanted = CommandStatus::from(r.status);
        let status = views::status_of(&current);
        if status.is_terminal() {
            // A repeated identical final report is a no-op; anything else is not.
            return if status == wanted && i64::from(r.attempt) == current.attempt_count {
                Ok(views::command(&current))
            } else {
                Err(BusError::InvalidTransition(format!(
                    "the command already ended as {}",
                    status.as_str()
                )))
            };
        }
        if status == CommandStatus::Queued || i64::from(r.attempt) != current.attempt_count {
            return Err(BusError::LeaseLost);
        }
        let now = now_ms();
        let finished = wanted.is_terminal();
        let updated = commands::apply_report(
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
                let fresh = commands::get(pool, &scope, id)
                    .await?
                    .ok_or(BusError::CommandNotFound)?;
                let s = views::status_of(&fresh);
                return if s.is_terminal()
                    && s == wanted
                    && i64::from(r.attempt) == fresh.attempt_count
                {
                    Ok(views::command(&fresh))
                } else if s.is_terminal() {
                    Err(BusError::InvalidTransition(format!(
                        "the command already ended as {}",
                        s.as_str()
                    )))
                } else {
                    Err(BusError::LeaseLost)
                };
            }
        };
        if status != wanted || r.progress.is_some() {
            let what = if status == wanted {
                "progress"
            } else {
                wanted.as_str()
            };
            self.command_event(what, &row, agent.owner_user_id.as_deref())
                .await?;
        }
        Ok(views::command(&row))
    }

    async fn own_command(&self, agent: &AgentIdentity, id: &str) -> Result<CommandRow, BusError> {
        let row = commands::get(self.db.pool(), &agent.scope(), id)
            .await?
            .ok_or(BusError::CommandNotFound)?;
        if row.agent_id != agent.agent_id {
            return Err(BusError::CommandNotFound);
        }
        Ok(row)
    }

    /// A command the caller may see: agents their own, users the ones they
    /// created (admins all of the tenant).
    pub async fn visible_command(&self, caller: &Caller, id: &str) -> Result<CommandRow, BusError> {
        match caller {
            Caller::Agent(a) => self.own_command(a, id).await,
            Caller::User(u) => {
                let row = commands::get(self.db.pool(), &u.scope(), id)
                    .await?
                    .ok_or(BusError::CommandNotFound)?;
                if !u.has(Role::Admin) && row.created_by.as_deref() != Some(u.user_id.as_str()) {
                    return Err(BusError::CommandNotFound);
                }
                Ok(row)
            }
        }
    }

    pub fn command_view(&self, row: &CommandRow) -> Command {
        views::command(row)
    }

    /// Append output chunks (duplicates by `seq` ignored). Returns (new, duplicate).
    pub async fn append_output(
        &self,
        agent: &AgentIdentity,
        id: &str,
        req: OutputAppend,
    ) -> Result<(usize, usize), BusError> {
        let row = self.own_command(agent, id).await?;
        if req.chunks.len() > MAX_CHUNKS_PER_REQUEST {
            return Err(invalid(
                "chunks",
                format!("at most {MAX_CHUNKS_PER_REQUEST} chunks per request"),
            ));
        }
        let mut incoming: i64 = 0;
        for (i, c) in req.chunks.iter().enumerate() {
            if c.data.len() > MAX_CHUNK_BYTES {
                return Err(invalid(
                    &format!("chunks[{i}].data"),
                    format!("at most {MAX_CHUNK_BYTES} bytes per chunk"),
                ));
            }
            if c.seq > i64::MAX as u64 {
                return Err(invalid(&format!("chunks[{i}].seq"), "too large"));
            }
            incoming += c.data.len() as i64;
        }
        let pool = self.db.pool();
        if commands::output_size(pool, &row.id).await? + incoming > MAX_OUTPUT_BYTES {
            return Err(BusError::OutputLimit(format!(
                "a command keeps at most {MAX_OUTPUT_BYTES} bytes of output"
            )));
        }
        let now = now_ms();
        let (mut added, mut dup) = (0, 0);
        for c in &req.chunks {
            let stream = serde_json::to_value(c.stream)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "log".into());
            if commands::append_output(
                self.db.writer(),
                &row.id,
                c.seq as i64,
                &stream,
                &c.data,
                now,
            )
            .await?
            {
                added += 1;
            } else {
                dup += 1;
            }
        }
        Ok((added, dup))
    }

    pub async fn read_output(
        &self,
        caller: &Caller,
        id: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<OutputRow>, BusError> {
        let row = self.visible_command(caller, id).await?;
        Ok(commands::read_output(self.db.pool(), &row.id, after_seq, limit).await?)
    }

    /// Cancel: queued → cancelled now; dispatched/running → cancel requested
    /// (the agent sees it in its next lease renewal).
    pub async fn cancel(&self, caller: &Identity, id: &str) -> Result<Command, BusError> {
        caller
            .require(Role::Operator)
            .map_err(|_| BusError::RoleRequired("operator"))?;
        let scope = caller.scope();
        let row = self
            .visible_command(&Caller::User(caller.clone()), id)
            .await?;
        let pool = self.db.pool();
        let now = now_ms();
        let owner = self.owner_of(&row.tenant_id, &row.agent_id).await;
        if let Some(done) = commands::cancel_queued(self.db.writer(), &scope, id, now).await? {
            self.command_event("cancelled", &done, owner.as_deref())
                .await?;
            return Ok(views::command(&done));
        }
        if let Some(req) = commands::request_cancel(self.db.writer(), &scope, id, now).await? {
            self.command_event("cancel_requested", &req, owner.as_deref())
                .await?;
            self.notifier.wake_agent(&req.agent_id).await;
            return Ok(views::command(&req));
        }
        let fresh = commands::get(pool, &scope, id)
            .await?
            .ok_or(BusError::CommandNotFound)?;
        let s = views::status_of(&fresh);
        if s.is_terminal() {
            return Err(BusError::InvalidTransition(format!(
                "the command already ended as {}",
                s.as_str()
            )));
        }
        // Cancel was already requested.
        Ok(views::command(&fresh))
    }

    pub async fn list_commands(
        &self,
        caller: &Caller,
        agent_id: Option<&str>,
        status: Option<&str>,
        before: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<CommandRow>, BusError> {
        if let Some(s) = status {
            if CommandStatus::parse(s).is_none() {
                return Err(invalid(
                    "status",
                    "must be queued, dispatched, running, succeeded, failed, cancelled or expired",
                ));
            }
        }
        let (agent_filter, created_by) = match caller {
            Caller::Agent(a) => {
                if agent_id.is_some_and(|x| x != a.agent_id) {
                    return Err(BusError::Forbidden(
                        "an agent may only list its own commands",
                    ));
                }
                (Some(a.agent_id.as_str()), None)
            }
            Caller::User(u) => (
                agent_id,
                (!u.has(Role::Admin)).then_some(u.user_id.as_str()),
            ),
        };
        let filter = ListFilter {
            agent_id: agent_filter,
            status,
            created_by,
            before: before.as_ref().map(|(t, id)| (*t, id.as_str())),
            limit,
        };
        Ok(commands::list(self.db.pool(), &caller.scope(), &filter).await?)
    }
}
