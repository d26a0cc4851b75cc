//! The durable orchestrator: a background loop that advances every
//! unfinished job's items through their state machine.
//!
//! Everything it knows is in the database, so a restart resumes every job
//! where it was: a step's command gets its id and a deterministic
//! idempotency key (`vmjob:<job>:<item>:<step>:<phase>:<attempt>`) stored
//! on the item *before* it is dispatched; after a crash the item still
//! names that command and the loop either finds it or dispatches it again
//! with the same id and key — never a second clone. Item and job writes
//! are compare-and-set on a version, so two servers on one PostgreSQL do
//! not both advance a step.
//!
//! A command's outcome decides the next move:
//! * succeeded → the step's next phase or the next step;
//! * lost to infrastructure (`AGENT_RESTARTED`, `AGENT_SHUTDOWN`,
//!   `DEAD_LETTERED`, `LEASE_EXPIRED`, expired, cancelled by someone else,
//!   Proxmox unreachable) → the same step again with a new attempt (every
//!   step is idempotent: clone checks an existing VM carries this item's
//!   tag, config and attach are sets, uploads replace);
//! * Proxmox lock contention (`can't lock file … got timeout`, `VM is
//!   locked`) → the same step after an exponential backoff, counted;
//! * anything else (Proxmox refused, template missing) → the item fails at
//!   that step, with the command's code and message.
//!
//! Deadlines: the clone steps `vm_jobs_clone_timeout_seconds`, the guest's
//! installation the job's `install_timeout_minutes`, every other step
//! `vm_jobs_step_timeout_seconds` — time spent waiting for an offline
//! agent does not count; waiting longer than `vm_jobs_agent_wait_seconds`
//! fails the item.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use botmox_protocol::{Command, CommandStatus};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::service::{item_data, record};
use super::spec::{owner_tag, JobSpec, OnFailure};
use super::store::{self, ItemRow, ItemStep, JobRow, JobStatus, NewArtifact};
use crate::auth::Identity;
use crate::config::{BusConfig, VmJobsConfig};
use crate::db::ids::CommandId;
use crate::db::{now_ms, Db, StoreError, StoreResult, TenantScope};
use crate::domains::accounts::AccountsService;
use crate::domains::agents::service::connection_state;
use crate::domains::agents::{AgentError, AgentsService, ConnectionState};
use crate::domains::commands::service::SystemCommand;
use crate::domains::commands::{CommandError, CommandsService};
use crate::domains::events::EventsService;
use crate::domains::provisioning::dto::{DownloadsInput, GenerateInput, IpInput, LinuxInput};
use crate::domains::provisioning::service::ServerInfo as ProvisioningServer;
use crate::domains::provisioning::{GuestOs, ProvisioningService};
use crate::domains::vms::service::RegisterInput;
use crate::domains::vms::VmsService;

/// Most lock-contention retries of one item before it fails.
pub const MAX_LOCK_RETRIES: i64 = 60;
/// Most re-dispatches after lost work of one item before it fails.
pub const MAX_INFRA_RETRIES: i64 = 30;
/// How long `detaching` waits for provisioning's auto-detach before it
/// detaches by itself.
const AUTO_DETACH_GRACE_MS: i64 = 20_000;

/// How often a clone task's status is polled.
const CLONE_POLL_MS: i64 = 250;
/// The shortest time between two orchestrator passes.
const MIN_TICK_GAP: Duration = Duration::from_millis(40);
/// The longest a clone wait's long poll holds an agent slot.
const CLONE_LONG_POLL_MS: i64 = 20_000;

/// Error codes a job or item ends with (besides the agent's own codes).
pub mod codes {
    pub const TEMPLATE_NOT_FOUND: &str = "TEMPLATE_NOT_FOUND";
    pub const NOT_A_TEMPLATE: &str = "NOT_A_TEMPLATE";
    pub const VMID_TAKEN: &str = "VMID_TAKEN";
    pub const NO_FREE_VMID: &str = "NO_FREE_VMID";
    pub const STEP_TIMEOUT: &str = "STEP_TIMEOUT";
    pub const AGENT_OFFLINE: &str = "AGENT_OFFLINE";
    pub const AGENT_REVOKED: &str = "AGENT_REVOKED";
    pub const OWNER_UNAVAILABLE: &str = "OWNER_UNAVAILABLE";
    pub const INSTALL_FAILED: &str = "INSTALL_FAILED";
    pub const RETRIES_EXHAUSTED: &str = "RETRIES_EXHAUSTED";
    pub const PROVISIONING_FAILED: &str = "PROVISIONING_FAILED";
    pub const REGISTRY_FAILED: &str = "REGISTRY_FAILED";
    pub const ITEMS_FAILED: &str = "ITEMS_FAILED";
    pub const JOB_STOPPED: &str = "JOB_STOPPED";
}

/// Codes of work lost to infrastructure: re-dispatched, never a failure.
const INFRA_CODES: &[&str] = &[
    "AGENT_RESTARTED",
    "AGENT_SHUTDOWN",
    "AGENT_STATE_ERROR",
    "DEAD_LETTERED",
    "LEASE_EXPIRED",
    "EXPIRED",
    "PROXMOX_UNREACHABLE",
    "PROXMOX_TIMEOUT",
];

/// What a finished command means for its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Lost to infrastructure: dispatch again.
    Infra,
    /// Proxmox lock contention: again after a backoff.
    Lock,
    /// The step failed on its own merits.
    Failed,
}

/// Proxmox lock contention, as PVE words it (HTTP 500 or a task error).
pub fn is_lock_contention(message: &str) -> bool {
    message.contains("can't lock file")
        || message.contains("got timeout")
        || message.contains("VM is locked")
}

pub fn classify(c: &Command) -> Outcome {
    let code = c.error_code.as_deref().unwrap_or("");
    let msg = c.error_message.as_deref().unwrap_or("");
    match c.status {
        CommandStatus::Succeeded => Outcome::Succeeded,
        CommandStatus::Expired | CommandStatus::Cancelled => Outcome::Infra,
        _ if INFRA_CODES.contains(&code) => Outcome::Infra,
        _ if is_lock_contention(msg) => Outcome::Lock,
        _ => Outcome::Failed,
    }
}

/// Backoff before lock retry `n` (1-based): 0.5 s doubling to 30 s, ±20 %.
pub fn lock_backoff_ms(n: i64, salt: u64) -> i64 {
    let base = 500i64
        .saturating_mul(1 << n.clamp(1, 16).saturating_sub(1))
        .min(30_000);
    let jitter = (salt % 41) as i64 - 20; // -20..=20 %
    base + base * jitter / 100
}

/// `provision-<vmid>-<8 hex of sha256(job:item)>.iso`.
pub fn iso_name(job: &str, idx: i64, vmid: i64) -> String {
    let h = hex::encode(Sha256::digest(format!("{job}:{idx}").as_bytes()));
    format!("provision-{vmid}-{}.iso", &h[..8])
}

pub struct Orchestrator {
    db: Db,
    cfg: VmJobsConfig,
    bus: BusConfig,
    accounts: Arc<AccountsService>,
    agents: Arc<AgentsService>,
    commands: Arc<CommandsService>,
    provisioning: Arc<ProvisioningService>,
    vms: Arc<VmsService>,
    events: EventsService,
    wake: Arc<Notify>,
    /// Next progress check per installing item (in memory: a restart
    /// simply checks at once).
    next_check: Mutex<HashMap<(String, i64), i64>>,
    last_sweep: Mutex<i64>,
}

/// Per job and tick: who the work runs as, the agent's reachability.
struct Ctx<'a> {
    job: &'a JobRow,
    spec: &'a JobSpec,
    scope: TenantScope,
    owner: Identity,
    online: bool,
    revoked: bool,
    now: i64,
    /// The agent has more command slots (`max_concurrent_commands`, from its
    /// heartbeat metadata) than the job's parallelism: a clone wait may hold
    /// one (a long poll of the task) without starving the other steps.
    spare_slots: bool,
}

/// What handling an item did.
enum Step {
    /// Changed the item; look at it again at once.
    Again(Box<ItemRow>),
    /// Nothing more to do this tick.
    Idle,
}

impl Orchestrator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        cfg: VmJobsConfig,
        bus: BusConfig,
        accounts: Arc<AccountsService>,
        agents: Arc<AgentsService>,
        commands: Arc<CommandsService>,
        provisioning: Arc<ProvisioningService>,
        vms: Arc<VmsService>,
        events: EventsService,
        wake: Arc<Notify>,
    ) -> Orchestrator {
        Orchestrator {
            db,
            cfg,
            bus,
            accounts,
            agents,
            commands,
            provisioning,
            vms,
            events,
            wake,
            next_check: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(0),
        }
    }

    /// Run [`Orchestrator::tick`] whenever something happened (a job
    /// changed, an event was recorded — command reports, guest progress)
    /// and at least every 500 ms, until the task is aborted.
    pub fn spawn(
        self: Arc<Self>,
        events_wake: tokio::sync::watch::Receiver<u64>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut events_wake = events_wake;
            loop {
                let started = tokio::time::Instant::now();
                if let Err(e) = self.tick().await {
                    tracing::warn!(error = %e, "vm jobs tick failed; retrying");
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = events_wake.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                // At most one pass per MIN_TICK_GAP: a burst of wake-ups
                // (every report records events) coalesces into one pass,
                // while a wake-up after a quiet spell runs at once.
                tokio::time::sleep_until(started + MIN_TICK_GAP).await;
            }
        })
    }

    /// One pass over every unfinished job; then (every 5 s) the orphaned ISO sweep.
    pub async fn tick(&self) -> StoreResult<()> {
        for job in store::active_jobs(self.db.reader()).await? {
            let id = job.id.clone();
            if let Err(e) = self.run_job(job).await {
                tracing::warn!(job_id = %id, error = %e, "vm job step failed; retrying next tick");
            }
        }
        let now = now_ms();
        let due = {
            let mut last = self.last_sweep.lock().unwrap_or_else(|e| e.into_inner());
            if now - *last >= 5_000 {
                *last = now;
                true
            } else {
                false
            }
        };
        if due {
            self.sweep_orphans().await?;
        }
        Ok(())
    }

    async fn run_job(&self, job: JobRow) -> StoreResult<()> {
        let scope = TenantScope::new(job.tenant_id.clone());
        let spec: JobSpec = serde_json::from_str(&job.spec)
            .map_err(|e| StoreError::Corrupt(format!("vm job spec: {e}")))?;
        let now = now_ms();
        let Some(owner) = self.accounts.acting_as(&scope, &job.created_by).await? else {
            return self
                .fail_job(
                    job,
                    codes::OWNER_UNAVAILABLE,
                    "The job's creator is disabled or gone; nothing runs on their behalf",
                )
                .await;
        };
        let agent = self
            .agents
            .get(&scope, &job.agent_id)
            .await
            .map_err(|e| match e {
                AgentError::Store(s) => s,
                other => StoreError::Invalid(other.to_string()),
            })?;
        let state = agent
            .as_ref()
            .map(|a| connection_state(a, now, &self.bus))
            .unwrap_or(ConnectionState::Revoked);
        let slots = agent
            .as_ref()
            .and_then(|a| a.metadata.as_deref())
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
            .and_then(|m| m.get("max_concurrent_commands").and_then(Value::as_u64));
        let ctx = Ctx {
            job: &job,
            spec: &spec,
            scope,
            owner,
            online: state == ConnectionState::Online,
            revoked: state == ConnectionState::Revoked,
            now,
            spare_slots: slots.is_some_and(|n| n > u64::from(spec.parallelism)),
        };
        if job.status == JobStatus::Pending {
            return self.plan(&ctx).await;
        }
        let items = store::items(self.db.reader(), &job.id).await?;
        let stop =
            spec.on_failure == OnFailure::Stop && items.iter().any(|i| i.step == ItemStep::Failed);
        let mut heavy =
            store::heavy_on_node(self.db.reader(), &job.tenant_id, &job.agent_id, &job.node)
                .await?;
        let mut recounted = false;
        for item in items.into_iter().filter(|i| !i.step.is_final()) {
            if item.step == ItemStep::Pending {
                if stop {
                    self.finish_item(
                        &ctx,
                        item,
                        ItemStep::Cancelled,
                        codes::JOB_STOPPED,
                        "Not started: the job stops after a failure (on_failure: stop)",
                    )
                    .await?;
                    continue;
                }
                if heavy >= i64::from(spec.parallelism) && !recounted {
                    // Items earlier in this pass may have left
                    // clone/configure: their places are free now, not
                    // only on the next tick.
                    recounted = true;
                    heavy = store::heavy_on_node(
                        self.db.reader(),
                        &job.tenant_id,
                        &job.agent_id,
                        &job.node,
                    )
                    .await?;
                }
                if heavy >= i64::from(spec.parallelism) {
                    continue;
                }
                heavy += 1;
            }
            let mut current = item;
            for _ in 0..12 {
                match self.advance(&ctx, current).await? {
                    Step::Again(next) if !next.step.is_final() => current = *next,
                    _ => break,
                }
            }
        }
        self.conclude(&ctx).await
    }

    /// All items final: `completed` when every VM is done, else `failed`.
    async fn conclude(&self, ctx: &Ctx<'_>) -> StoreResult<()> {
        let items = store::items(self.db.reader(), &ctx.job.id).await?;
        if items.iter().any(|i| !i.step.is_final()) {
            return Ok(());
        }
        let Some(mut job) = store::get_job(self.db.reader(), &ctx.scope, &ctx.job.id).await? else {
            return Ok(());
        };
        if job.status.is_final() {
            return Ok(());
        }
        let failed = items.iter().filter(|i| i.step != ItemStep::Done).count();
        let from = job.status;
        if failed == 0 {
            job.status = JobStatus::Completed;
        } else {
            job.status = JobStatus::Failed;
            job.error_code = Some(codes::ITEMS_FAILED.into());
            job.error_message = Some(format!("{failed} of {} VMs did not finish", items.len()));
        }
        job.finished_at = Some(ctx.now);
        let mut tx = self.db.begin().await?;
        if let Some(saved) = store::save_job(&mut tx, &job, ctx.now).await? {
            record(
                &self.events,
                &mut tx,
                &saved,
                "status",
                json!({"from": from, "done": items.len() - failed, "failed": failed}),
            )
            .await?;
            tx.commit().await?;
            self.events.notify().await;
            tracing::info!(job_id = %saved.id, status = %saved.status, "VM job finished");
        }
        Ok(())
    }

    async fn fail_job(&self, mut job: JobRow, code: &str, message: &str) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let items = store::items(&mut tx, &job.id).await?;
        let from = job.status;
        job.status = JobStatus::Failed;
        job.error_code = Some(code.into());
        job.error_message = Some(message.into());
        job.finished_at = Some(now);
        let Some(saved) = store::save_job(&mut tx, &job, now).await? else {
            return Ok(());
        };
        for mut item in items.into_iter().filter(|i| !i.step.is_final()) {
            let was = item.step;
            item.failed_step = Some(was.as_str().into());
            item.step = ItemStep::Failed;
            item.error_code = Some(code.into());
            item.error_message = Some(message.into());
            item.finished_at = Some(now);
            item.command_id = None;
            if let Some(i) = store::save_item(&mut tx, &item, now).await? {
                record(
                    &self.events,
                    &mut tx,
                    &saved,
                    "item_step",
                    json!({"item": item_data(&i), "from": was, "error_code": code}),
                )
                .await?;
            }
        }
        record(
            &self.events,
            &mut tx,
            &saved,
            "status",
            json!({"from": from, "error_code": code, "error_message": message}),
        )
        .await?;
        tx.commit().await?;
        self.events.notify().await;
        tracing::warn!(job_id = %saved.id, code, message, "VM job failed");
        Ok(())
    }

    // ------------------------------------------------------------ planning

    /// The job's first step, through the agent: the cluster's VMs say
    /// whether the template exists and is a template, and which VMIDs are
    /// free (lowest first, as `/cluster/nextid` hands them out) for the
    /// items without a `vmid_range`.
    async fn plan(&self, ctx: &Ctx<'_>) -> StoreResult<()> {
        let job = ctx.job;
        if ctx.revoked {
            return self
                .fail_job(
                    job.clone(),
                    codes::AGENT_REVOKED,
                    "The job's agent is revoked",
                )
                .await;
        }
        let key = format!("vmjob:{}:plan:{}", job.id, job.plan_attempt);
        let command = match &job.plan_command_id {
            None => {
                if !ctx.online {
                    return self.job_waits_for_agent(ctx).await;
                }
                let mut j = job.clone();
                j.plan_command_id = Some(CommandId::generate().to_string());
                let Some(saved) = store::save_job(self.db.writer(), &j, ctx.now).await? else {
                    return Ok(());
                };
                return self.dispatch_plan(ctx, &saved, &key).await;
            }
            Some(id) => self
                .commands
                .get_in_scope(&ctx.scope, &CommandId::from(id.as_str()))
                .await
                .map_err(store_err)?,
        };
        let Some(command) = command else {
            if !ctx.online {
                return self.job_waits_for_agent(ctx).await;
            }
            return self.dispatch_plan(ctx, job, &key).await;
        };
        match classify(&command) {
            _ if !command.status.is_terminal() => {
                if !ctx.online {
                    return self.job_waits_for_agent(ctx).await;
                }
                Ok(())
            }
            Outcome::Succeeded => self.apply_plan(ctx, &command).await,
            Outcome::Infra | Outcome::Lock => {
                let mut j = job.clone();
                j.plan_attempt += 1;
                j.plan_command_id = None;
                if j.plan_attempt > MAX_INFRA_RETRIES {
                    return self
                        .fail_job(
                            j,
                            codes::RETRIES_EXHAUSTED,
                            "The agent could not read the cluster's VMs",
                        )
                        .await;
                }
                store::save_job(self.db.writer(), &j, ctx.now).await?;
                Ok(())
            }
            Outcome::Failed => {
                let code = command
                    .error_code
                    .clone()
                    .unwrap_or_else(|| "EXECUTION_FAILED".into());
                let msg = format!(
                    "Reading the cluster's VMs failed: {}",
                    command.error_message.as_deref().unwrap_or("no message")
                );
                self.fail_job(job.clone(), &code, &msg).await
            }
        }
    }

    async fn dispatch_plan(&self, ctx: &Ctx<'_>, job: &JobRow, key: &str) -> StoreResult<()> {
        let Some(id) = &job.plan_command_id else {
            return Ok(());
        };
        let mut payload = json!({"type": "vm"});
        if let Some(t) = &ctx.spec.target {
            payload["target"] = Value::from(t.clone());
        }
        let r = self
            .commands
            .dispatch_system_with_id(
                &ctx.scope,
                &job.created_by,
                SystemCommand {
                    id: &CommandId::from(id.as_str()),
                    agent_id: &job.agent_id,
                    command_type: "proxmox.cluster-resources",
                    payload,
                    idempotency_key: key,
                    expires_in_s: self.cfg.agent_wait_s,
                },
            )
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(CommandError::AgentOffline) => self.job_waits_for_agent(ctx).await,
            Err(CommandError::TargetRevoked) => {
                self.fail_job(
                    job.clone(),
                    codes::AGENT_REVOKED,
                    "The job's agent is revoked",
                )
                .await
            }
            Err(e) => Err(store_err(e)),
        }
    }

    /// A pending job whose agent is away: fail once the wait limit passed.
    async fn job_waits_for_agent(&self, ctx: &Ctx<'_>) -> StoreResult<()> {
        if ctx.now - ctx.job.created_at > self.cfg.agent_wait_s as i64 * 1000 {
            return self
                .fail_job(
                    ctx.job.clone(),
                    codes::AGENT_OFFLINE,
                    &format!(
                        "The agent stayed offline for more than {} s",
                        self.cfg.agent_wait_s
                    ),
                )
                .await;
        }
        Ok(())
    }

    async fn apply_plan(&self, ctx: &Ctx<'_>, command: &Command) -> StoreResult<()> {
        let job = ctx.job;
        let list: Vec<Value> = match &command.result {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::Object(o)) => o
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let vmid_of = |v: &Value| {
            v.get("vmid").and_then(Value::as_i64).or_else(|| {
                v.get("id")
                    .and_then(Value::as_str)
                    .and_then(|s| s.rsplit('/').next())
                    .and_then(|s| s.parse().ok())
            })
        };
        let used: BTreeSet<i64> = list.iter().filter_map(vmid_of).collect();
        let template = list
            .iter()
            .find(|v| vmid_of(v) == Some(i64::from(ctx.spec.template_vmid)));
        let Some(template) = template else {
            return self
                .fail_job(
                    job.clone(),
                    codes::TEMPLATE_NOT_FOUND,
                    &format!(
                        "VM {} does not exist on the cluster",
                        ctx.spec.template_vmid
                    ),
                )
                .await;
        };
        let is_template = match template.get("template") {
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            Some(Value::Bool(b)) => *b,
            _ => false,
        };
        if !is_template {
            return self
                .fail_job(
                    job.clone(),
                    codes::NOT_A_TEMPLATE,
                    &format!(
                        "VM {} is not a template (convert it to a template first)",
                        ctx.spec.template_vmid
                    ),
                )
                .await;
        }
        let held: BTreeSet<i64> = store::held_vmids(self.db.reader(), &ctx.scope, &job.agent_id)
            .await?
            .into_iter()
            .collect();
        let mut tx = self.db.begin().await?;
        let items = store::items(&mut tx, &job.id).await?;
        let mut next = 100i64;
        let mut taken: Vec<(i64, i64)> = Vec::new();
        for mut item in items {
            match item.vmid {
                Some(v) if used.contains(&v) => taken.push((item.idx, v)),
                Some(_) => {}
                None => {
                    while used.contains(&next)
                        || held.contains(&next)
                        || next == i64::from(ctx.spec.template_vmid)
                    {
                        next += 1;
                    }
                    if next > 999_999_999 {
                        drop(tx);
                        return self
                            .fail_job(job.clone(), codes::NO_FREE_VMID, "No free VMID is left")
                            .await;
                    }
                    item.vmid = Some(next);
                    next += 1;
                    store::save_item(&mut tx, &item, ctx.now).await?;
                }
            }
        }
        let mut j = job.clone();
        j.status = JobStatus::Running;
        j.started_at = Some(ctx.now);
        let Some(saved) = store::save_job(&mut tx, &j, ctx.now).await? else {
            return Ok(());
        };
        record(
            &self.events,
            &mut tx,
            &saved,
            "status",
            json!({"from": JobStatus::Pending, "template_vmid": ctx.spec.template_vmid,
                   "vmids_in_use": used.len()}),
        )
        .await?;
        tx.commit().await?;
        self.events.notify().await;
        // VMIDs of the range that another VM already has: those items fail
        // at once (their clone would be refused).
        for (idx, vmid) in taken {
            if let Some(item) = store::item(self.db.reader(), &job.id, idx).await? {
                let c = Ctx {
                    job: &saved,
                    ..ctx.clone_ctx()
                };
                self.finish_item(
                    &c,
                    item,
                    ItemStep::Failed,
                    codes::VMID_TAKEN,
                    &format!("VMID {vmid} already belongs to another VM"),
                )
                .await?;
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ items

    /// Move one item as far as it can go now.
    async fn advance(&self, ctx: &Ctx<'_>, item: ItemRow) -> StoreResult<Step> {
        if item.next_attempt_at.is_some_and(|t| t > ctx.now) {
            return Ok(Step::Idle);
        }
        if item.next_attempt_at.is_some() {
            let mut i = item.clone();
            i.next_attempt_at = None;
            return Ok(
                match store::save_item(self.db.writer(), &i, ctx.now).await? {
                    Some(saved) => Step::Again(Box::new(saved)),
                    None => Step::Idle,
                },
            );
        }
        if let Some(id) = item.command_id.clone() {
            let command = self
                .commands
                .get_in_scope(&ctx.scope, &CommandId::from(id.as_str()))
                .await
                .map_err(store_err)?;
            return match command {
                // Stored but never dispatched (a crash in between): now.
                None => self.dispatch(ctx, item).await,
                Some(c) if !c.status.is_terminal() => self.in_flight(ctx, item).await,
                Some(c) => self.on_outcome(ctx, item, &c).await,
            };
        }
        if self.past_deadline(ctx, &item) {
            return self.timeout(ctx, item).await;
        }
        match item.step {
            ItemStep::Pending => {
                let mut i = item;
                let _ = enter(&mut i, ItemStep::Cloning, ctx.now);
                self.save_step(ctx, i, ItemStep::Pending, json!({})).await
            }
            ItemStep::Registering => self.register(ctx, item).await,
            ItemStep::Installing => self.installing(ctx, item).await,
            ItemStep::Detaching if item.phase == 0 => self.watch_auto_detach(ctx, item).await,
            _ => self.start_command(ctx, item).await,
        }
    }

    fn deadline_ms(&self, ctx: &Ctx<'_>, step: ItemStep) -> i64 {
        let s = match step {
            ItemStep::Cloning | ItemStep::CloneWait => self.cfg.clone_timeout_s,
            ItemStep::Installing => u64::from(ctx.spec.install_timeout_minutes) * 60,
            _ => self.cfg.step_timeout_s,
        };
        s as i64 * 1000
    }

    fn past_deadline(&self, ctx: &Ctx<'_>, item: &ItemRow) -> bool {
        item.waiting_since.is_none()
            && item.step != ItemStep::Pending
            && item
                .step_started_at
                .is_some_and(|t| ctx.now - t > self.deadline_ms(ctx, item.step))
    }

    async fn timeout(&self, ctx: &Ctx<'_>, item: ItemRow) -> StoreResult<Step> {
        if let Some(c) = &item.command_id {
            let _ = self
                .commands
                .cancel_system(&ctx.scope, &CommandId::from(c.as_str()))
                .await;
        }
        let secs = self.deadline_ms(ctx, item.step) / 1000;
        let msg = format!("{} did not finish within {secs} s", item.step);
        self.finish_item(ctx, item, ItemStep::Failed, codes::STEP_TIMEOUT, &msg)
            .await?;
        Ok(Step::Idle)
    }

    /// A command is queued or running: watch the agent and the deadline.
    async fn in_flight(&self, ctx: &Ctx<'_>, item: ItemRow) -> StoreResult<Step> {
        if ctx.revoked {
            return self.fail_revoked(ctx, item).await;
        }
        if !ctx.online {
            return self.wait_for_agent(ctx, item).await;
        }
        if item.waiting_since.is_some() {
            return self.agent_back(ctx, item).await;
        }
        if self.past_deadline(ctx, &item) {
            return self.timeout(ctx, item).await;
        }
        Ok(Step::Idle)
    }

    async fn fail_revoked(&self, ctx: &Ctx<'_>, item: ItemRow) -> StoreResult<Step> {
        self.finish_item(
            ctx,
            item,
            ItemStep::Failed,
            codes::AGENT_REVOKED,
            "The job's agent was revoked",
        )
        .await?;
        Ok(Step::Idle)
    }

    async fn wait_for_agent(&self, ctx: &Ctx<'_>, item: ItemRow) -> StoreResult<Step> {
        match item.waiting_since {
            Some(since) if ctx.now - since > self.cfg.agent_wait_s as i64 * 1000 => {
                if let Some(c) = &item.command_id {
                    let _ = self
                        .commands
                        .cancel_system(&ctx.scope, &CommandId::from(c.as_str()))
                        .await;
                }
                let msg = format!(
                    "The agent stayed offline for more than {} s",
                    self.cfg.agent_wait_s
                );
                self.finish_item(ctx, item, ItemStep::Failed, codes::AGENT_OFFLINE, &msg)
                    .await?;
                Ok(Step::Idle)
            }
            Some(_) => Ok(Step::Idle),
            None => {
                let mut i = item;
                i.waiting_since = Some(ctx.now);
                self.save_event(ctx, i, "item_waiting_for_agent", json!({}))
                    .await?;
                Ok(Step::Idle)
            }
        }
    }

    async fn agent_back(&self, ctx: &Ctx<'_>, item: ItemRow) -> StoreResult<Step> {
        let mut i = item;
        let waited = i.waiting_since.map(|s| ctx.now - s).unwrap_or(0);
        i.waiting_since = None;
        // Time spent waiting for the agent does not count against the deadline.
        i.step_started_at = i.step_started_at.map(|t| t + waited);
        Ok(
            match self
                .save_event(ctx, i, "item_agent_back", json!({"waited_ms": waited}))
                .await?
            {
                Some(s) => Step::Again(Box::new(s)),
                None => Step::Idle,
            },
        )
    }

    /// Build the step's command and store its id (before dispatching it).
    async fn start_command(&self, ctx: &Ctx<'_>, item: ItemRow) -> StoreResult<Step> {
        if ctx.revoked {
            return self.fail_revoked(ctx, item).await;
        }
        if !ctx.online {
            return self.wait_for_agent(ctx, item).await;
        }
        if item.waiting_since.is_some() {
            return self.agent_back(ctx, item).await;
        }
        let mut i = item;
        i.command_id = Some(CommandId::generate().to_string());
        let Some(saved) = store::save_item(self.db.writer(), &i, ctx.now).await? else {
            return Ok(Step::Idle);
        };
        self.dispatch(ctx, saved).await
    }

    /// Dispatch the command the item names (same id and key on a resume).
    async fn dispatch(&self, ctx: &Ctx<'_>, item: ItemRow) -> StoreResult<Step> {
        if !ctx.online {
            return self.wait_for_agent(ctx, item).await;
        }
        let Some(id) = item.command_id.clone() else {
            return Ok(Step::Idle);
        };
        let (command_type, mut payload) = match self.build(ctx, &item).await {
            Ok(x) => x,
            Err(BuildFailure::Fail(code, msg)) => {
                self.finish_item(ctx, item, ItemStep::Failed, &code, &msg)
                    .await?;
                return Ok(Step::Idle);
            }
            Err(BuildFailure::Store(e)) => return Err(e),
        };
        payload["node"] = Value::from(ctx.job.node.clone());
        if let Some(t) = &ctx.spec.target {
            payload["target"] = Value::from(t.clone());
        }
        let key = format!(
            "vmjob:{}:{}:{}:{}:{}",
            item.job_id, item.idx, item.step, item.phase, item.step_attempt
        );
        let expires = self
            .cfg
            .agent_wait_s
            .max(self.deadline_ms(ctx, item.step) as u64 / 1000);
        let r = self
            .commands
            .dispatch_system_with_id(
                &ctx.scope,
                &ctx.job.created_by,
                SystemCommand {
                    id: &CommandId::from(id.as_str()),
                    agent_id: &ctx.job.agent_id,
                    command_type: &command_type,
                    payload,
                    idempotency_key: &key,
                    expires_in_s: expires.min(86_400),
                },
            )
            .await;
        match r {
            Ok(c) => {
                let mut i = item;
                i.command_type = Some(c.command_type.clone());
                // Polls of a clone task are one attempt of the step.
                if !(i.step == ItemStep::CloneWait && i.phase > 0) {
                    i.attempts = bump(&i.attempts, i.step);
                }
                Ok(
                    match self
                        .save_event(
                            ctx,
                            i,
                            "item_command",
                            json!({"command_id": c.id, "command_type": c.command_type, "key": key}),
                        )
                        .await?
                    {
                        Some(_) => Step::Idle,
                        None => Step::Idle,
                    },
                )
            }
            Err(CommandError::AgentOffline) => self.wait_for_agent(ctx, item).await,
            Err(CommandError::TargetRevoked) => self.fail_revoked(ctx, item).await,
            Err(e) => Err(store_err(e)),
        }
    }

    /// The command of the item's step and phase.
    async fn build(&self, ctx: &Ctx<'_>, item: &ItemRow) -> Result<(String, Value), BuildFailure> {
        let vmid = item.vmid.ok_or_else(|| {
            BuildFailure::Fail(codes::NO_FREE_VMID.into(), "The item has no VMID".into())
        })?;
        let spec = ctx.spec;
        Ok(match (item.step, item.phase) {
            (ItemStep::Cloning, _) => {
                let tag = owner_tag(item.job_id.as_str(), item.idx);
                let mut p = json!({"vmid": spec.template_vmid, "newid": vmid, "name": item.name,
                    "full": spec.full_clone, "description": tag, "ownerTag": tag});
                if let Some(s) = &spec.storage {
                    p["storage"] = Value::from(s.clone());
                }
                ("proxmox.clone".into(), p)
            }
            (ItemStep::CloneWait, _) => {
                let left = self.remaining_ms(ctx, item).max(1_000);
                match &item.task_upid {
                    // Polled (phase = poll number). With spare agent slots
                    // each poll is a long poll (the agent answers as soon as
                    // the task stops, at the latest after
                    // CLONE_LONG_POLL_MS); without, a plain read every
                    // CLONE_POLL_MS, since a blocking wait would hold one of
                    // the agent's command slots for the whole clone.
                    Some(upid) if ctx.spare_slots => (
                        "proxmox.task-status".into(),
                        json!({"upid": upid, "waitMs": left.min(CLONE_LONG_POLL_MS), "intervalMs": 200}),
                    ),
                    Some(upid) => ("proxmox.task-status".into(), json!({"upid": upid})),
                    None => (
                        "proxmox.wait-vm-presence".into(),
                        json!({"vmid": vmid, "exists": true, "unlocked": true, "timeoutMs": left.min(600_000), "intervalMs": 500}),
                    ),
                }
            }
            (ItemStep::Configuring, 0) => {
                let mut config = json!({"smbios1": format!("uuid={}", item.vm_uuid)});
                if let Some(c) = spec.cores {
                    config["cores"] = Value::from(c);
                }
                if let Some(m) = spec.memory {
                    config["memory"] = Value::from(m);
                }
                if let Some(n) = &spec.net0 {
                    let mut v = match &item.mac_address {
                        Some(mac) => format!("{}={mac},bridge={}", n.model, n.bridge),
                        None => format!("{},bridge={}", n.model, n.bridge),
                    };
                    if let Some(tag) = n.vlan {
                        v.push_str(&format!(",tag={tag}"));
                    }
                    config["net0"] = Value::from(v);
                }
                (
                    "proxmox.update-config".into(),
                    json!({"vmid": vmid, "config": config}),
                )
            }
            (ItemStep::Configuring, 1) => {
                let (disk, size) = spec.disk_resize.clone().unwrap_or_default();
                (
                    "proxmox.resize-disk".into(),
                    json!({"vmid": vmid, "disk": disk, "size": size}),
                )
            }
            (ItemStep::Configuring, _) | (ItemStep::Starting, 1) => {
                let upid = item.task_upid.clone().unwrap_or_default();
                (
                    "proxmox.wait-task".into(),
                    json!({"upid": upid, "timeoutMs": self.remaining_ms(ctx, item).max(1_000), "intervalMs": 500}),
                )
            }
            (ItemStep::IsoBuilding, _) => return self.build_iso(ctx, item, vmid).await,
            (ItemStep::IsoAttaching, _) => {
                let iso = item.iso_volid.clone().unwrap_or_default();
                (
                    "proxmox.attach-cdrom".into(),
                    json!({"vmid": vmid, "isoPath": iso, "cdromSlot": "ide2"}),
                )
            }
            (ItemStep::Starting, _) => ("proxmox.start".into(), json!({"vmid": vmid})),
            (ItemStep::Detaching, _) | (_, _) => {
                let mut p = json!({"vmid": vmid, "cdromSlot": "ide2", "deleteIso": true});
                if let Some(iso) = &item.iso_volid {
                    p["isoPath"] = Value::from(iso.clone());
                }
                ("proxmox.detach-cdrom".into(), p)
            }
        })
    }

    fn remaining_ms(&self, ctx: &Ctx<'_>, item: &ItemRow) -> i64 {
        let started = item.step_started_at.unwrap_or(ctx.now);
        self.deadline_ms(ctx, item.step) - (ctx.now - started)
    }

    /// The provisioning payload (answer file or NoCloud seed, provision.json
    /// with a fresh token) from the provisioning service, as the job's
    /// creator, and the command that puts it on the ISO storage.
    async fn build_iso(
        &self,
        ctx: &Ctx<'_>,
        item: &ItemRow,
        vmid: i64,
    ) -> Result<(String, Value), BuildFailure> {
        let spec = ctx.spec;
        let name = iso_name(item.job_id.as_str(), item.idx, vmid);
        let ip = match (&spec.ip_pool, &item.ip_address) {
            (Some(pool), Some(addr)) => Some(IpInput {
                address: addr.clone(),
                netmask: None,
                prefix_length: Some(pool.prefix_length),
                gateway: Some(pool.gateway.clone()),
                dns: Some(pool.dns.clone()).filter(|d| !d.is_empty()),
            }),
            _ => None,
        };
        let linux = (item.os == GuestOs::Linux).then(|| {
            let l = spec.linux.clone().unwrap_or_default();
            let strings = |k: &str| {
                l.get(k).and_then(Value::as_array).map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect::<Vec<_>>()
                })
            };
            LinuxInput {
                hostname: Some(item.name.clone()),
                user: l.get("user").and_then(Value::as_str).map(str::to_string),
                ssh_authorized_keys: strings("ssh_authorized_keys"),
                packages: strings("packages"),
            }
        });
        let downloads = spec.downloads.as_ref().map(|d| DownloadsInput {
            bootstrap_url: d
                .get("bootstrap_url")
                .and_then(Value::as_str)
                .map(str::to_string),
            app_url: d.get("app_url").and_then(Value::as_str).map(str::to_string),
        });
        let input = GenerateInput {
            vm_uuid: item.vm_uuid.clone(),
            os: Some(item.os),
            profile_id: (item.os == GuestOs::Windows)
                .then(|| spec.profile_id.clone())
                .flatten(),
            playbook_id: spec.playbook_id.clone(),
            ip,
            vm_name: Some(item.name.clone()),
            batch_index: Some(item.idx as u32),
            agent_id: Some(ctx.job.agent_id.clone()),
            vmid: Some(vmid as u32),
            node: Some(ctx.job.node.clone()),
            iso_name: Some(name.clone()),
            iso_storage: spec.iso_storage.clone(),
            downloads,
            linux,
        };
        let server = ProvisioningServer {
            api_endpoint: ctx.job.api_endpoint.clone(),
            server_cert_sha256: ctx.job.server_cert_sha256.clone(),
        };
        let payload = self
            .provisioning
            .generate(&ctx.owner, input, server)
            .await
            .map_err(|e| match e {
                crate::domains::provisioning::ProvisioningError::Store(s) => BuildFailure::Store(s),
                other => BuildFailure::Fail(codes::PROVISIONING_FAILED.into(), other.to_string()),
            })?;
        Ok(match payload.os {
            GuestOs::Windows => (
                "proxmox.create-provision-iso".into(),
                with_iso_storage(
                    json!({"vmid": vmid, "files": payload.files, "isoName": name}),
                    spec,
                ),
            ),
            GuestOs::Linux => (
                "proxmox.upload-iso".into(),
                with_iso_storage(json!({"isoName": name, "data": payload.seed_iso}), spec),
            ),
        })
    }

    /// A finished command: next phase or step, a retry, or the item fails.
    async fn on_outcome(&self, ctx: &Ctx<'_>, item: ItemRow, c: &Command) -> StoreResult<Step> {
        let mut i = item;
        i.command_id = None;
        let outcome = classify(c);
        let result = c.result.clone().unwrap_or(Value::Null);
        let msg = c.error_message.clone().unwrap_or_default();
        // Steps with their own reading of a failure.
        if outcome != Outcome::Succeeded {
            if i.step == ItemStep::Starting && i.phase <= 1 && msg.contains("already running") {
                return self.next_step(ctx, i, ItemStep::Installing).await;
            }
            if i.step == ItemStep::Cloning && c.error_code.as_deref() == Some("VMID_TAKEN") {
                self.finish_item(ctx, i, ItemStep::Failed, codes::VMID_TAKEN, &msg)
                    .await?;
                return Ok(Step::Idle);
            }
        }
        match outcome {
            Outcome::Succeeded => self.succeeded(ctx, i, &result).await,
            other => self.not_succeeded(ctx, i, other, c).await,
        }
    }

    /// A command that did not succeed: retried (lost work, lock
    /// contention) or the item fails.
    async fn not_succeeded(
        &self,
        ctx: &Ctx<'_>,
        mut i: ItemRow,
        outcome: Outcome,
        c: &Command,
    ) -> StoreResult<Step> {
        let msg = c.error_message.clone().unwrap_or_default();
        match outcome {
            Outcome::Succeeded => Ok(Step::Idle),
            Outcome::Infra => {
                i.infra_retries += 1;
                i.step_attempt += 1;
                if i.infra_retries > MAX_INFRA_RETRIES {
                    self.finish_item(
                        ctx,
                        i,
                        ItemStep::Failed,
                        codes::RETRIES_EXHAUSTED,
                        &format!("Work was lost {MAX_INFRA_RETRIES} times; last: {msg}"),
                    )
                    .await?;
                    return Ok(Step::Idle);
                }
                i.next_attempt_at = Some(ctx.now + 250 * i.infra_retries.min(20));
                self.save_event(
                    ctx,
                    i,
                    "item_retry",
                    json!({"reason": "infrastructure",
                    "command_id": c.id, "command_status": c.status, "error_code": c.error_code,
                    "error_message": c.error_message}),
                )
                .await?;
                Ok(Step::Idle)
            }
            Outcome::Lock => {
                i.lock_retries += 1;
                i.step_attempt += 1;
                if i.lock_retries > MAX_LOCK_RETRIES {
                    self.finish_item(
                        ctx,
                        i,
                        ItemStep::Failed,
                        codes::RETRIES_EXHAUSTED,
                        &format!("Proxmox stayed locked after {MAX_LOCK_RETRIES} retries: {msg}"),
                    )
                    .await?;
                    return Ok(Step::Idle);
                }
                // A failed clone task removed the VM: clone again.
                if i.step == ItemStep::CloneWait {
                    let _ = enter(&mut i, ItemStep::Cloning, ctx.now);
                }
                let salt = u64::from_le_bytes(
                    Sha256::digest(c.id.as_bytes())[..8]
                        .try_into()
                        .unwrap_or([0; 8]),
                );
                let delay = lock_backoff_ms(i.lock_retries, salt);
                i.next_attempt_at = Some(ctx.now + delay);
                self.save_event(ctx, i, "item_retry", json!({"reason": "lock", "delay_ms": delay,
                    "command_id": c.id, "error_code": c.error_code, "error_message": c.error_message})).await?;
                Ok(Step::Idle)
            }
            Outcome::Failed => {
                let code = c
                    .error_code
                    .clone()
                    .unwrap_or_else(|| "EXECUTION_FAILED".into());
                self.finish_item(ctx, i, ItemStep::Failed, &code, &msg)
                    .await?;
                Ok(Step::Idle)
            }
        }
    }

    async fn succeeded(&self, ctx: &Ctx<'_>, mut i: ItemRow, result: &Value) -> StoreResult<Step> {
        match (i.step, i.phase) {
            (ItemStep::Cloning, _) => {
                i.task_upid = result
                    .get("upid")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                i.clone_existed = i64::from(
                    result
                        .get("alreadyExists")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                );
                self.next_step(ctx, i, ItemStep::CloneWait).await
            }
            (ItemStep::CloneWait, _) if i.task_upid.is_some() => {
                let running = result.get("status").and_then(Value::as_str) != Some("stopped");
                let exit = result
                    .get("exitstatus")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if running {
                    // Poll again shortly (a new phase: a new command key).
                    i.phase += 1;
                    let pause = if ctx.spare_slots { 0 } else { CLONE_POLL_MS };
                    i.next_attempt_at = Some(ctx.now + pause);
                    return Ok(
                        match store::save_item(self.db.writer(), &i, ctx.now).await? {
                            Some(_) => Step::Idle,
                            None => Step::Idle,
                        },
                    );
                }
                if exit == "OK" || exit.starts_with("WARNINGS") {
                    i.task_upid = None;
                    return self.next_step(ctx, i, ItemStep::Configuring).await;
                }
                // The clone task failed: Proxmox removed the half-made VM.
                let failed = Command {
                    status: CommandStatus::Failed,
                    error_code: Some("PROXMOX_TASK_FAILED".into()),
                    error_message: Some(format!("Proxmox clone task failed: {exit}")),
                    ..command_stub()
                };
                let outcome = classify(&failed);
                self.not_succeeded(ctx, i, outcome, &failed).await
            }
            (ItemStep::CloneWait, _) => {
                i.task_upid = None;
                self.next_step(ctx, i, ItemStep::Configuring).await
            }
            (ItemStep::Configuring, 0) if ctx.spec.disk_resize.is_some() => {
                self.next_phase(ctx, i, 1, None).await
            }
            (ItemStep::Configuring, 1) => {
                let upid = result
                    .get("upid")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                match upid {
                    Some(u) => self.next_phase(ctx, i, 2, Some(u)).await,
                    None => self.next_step(ctx, i, ItemStep::IsoBuilding).await,
                }
            }
            (ItemStep::Configuring, _) => self.next_step(ctx, i, ItemStep::IsoBuilding).await,
            (ItemStep::IsoBuilding, _) => {
                let volid = result
                    .get("isoPath")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let sha = result
                    .get("sha256")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let size = result.get("size").and_then(Value::as_i64).unwrap_or(0);
                i.iso_volid = Some(volid.clone());
                let from = i.step;
                let _ = enter(&mut i, ItemStep::IsoAttaching, ctx.now);
                let mut tx = self.db.begin().await?;
                store::upsert_artifact(
                    &mut tx,
                    &ctx.job.tenant_id,
                    NewArtifact {
                        id: &uuid::Uuid::new_v4().to_string(),
                        job_id: &i.job_id,
                        item_idx: i.idx,
                        volid: &volid,
                        sha256: &sha,
                        size,
                        now: ctx.now,
                    },
                )
                .await?;
                let Some(saved) = store::save_item(&mut tx, &i, ctx.now).await? else {
                    return Ok(Step::Idle);
                };
                record(&self.events, &mut tx, ctx.job, "artifact_recorded",
                    json!({"item": item_data(&saved), "volume": volid, "sha256": sha, "size": size})).await?;
                record(
                    &self.events,
                    &mut tx,
                    ctx.job,
                    "item_step",
                    json!({"item": item_data(&saved), "from": from}),
                )
                .await?;
                tx.commit().await?;
                self.events.notify().await;
                Ok(Step::Again(Box::new(saved)))
            }
            (ItemStep::IsoAttaching, _) => self.next_step(ctx, i, ItemStep::Registering).await,
            (ItemStep::Starting, 0) => {
                let upid = result
                    .get("upid")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                match upid {
                    Some(u) => self.next_phase(ctx, i, 1, Some(u)).await,
                    None => self.next_step(ctx, i, ItemStep::Installing).await,
                }
            }
            (ItemStep::Starting, _) => {
                i.task_upid = None;
                self.next_step(ctx, i, ItemStep::Installing).await
            }
            (ItemStep::Detaching, _) => {
                if let Some(vol) = result.get("deletedIso").and_then(Value::as_str) {
                    store::artifact_deleted(self.db.writer(), &i.job_id, i.idx, vol, ctx.now)
                        .await?;
                }
                self.finish_item(ctx, i, ItemStep::Done, "", "").await?;
                Ok(Step::Idle)
            }
            _ => Ok(Step::Idle),
        }
    }

    /// `registering`: the VM goes into the VM registry (as the job's creator).
    async fn register(&self, ctx: &Ctx<'_>, i: ItemRow) -> StoreResult<Step> {
        let input = RegisterInput {
            vm_uuid: i.vm_uuid.clone(),
            user_id: None,
            vm_name: Some(i.name.clone()),
            project_id: None,
            status: None,
            metadata: json!({"vm_job_id": i.job_id, "item": i.idx, "vmid": i.vmid,
                             "agent_id": ctx.job.agent_id, "node": ctx.job.node})
            .as_object()
            .cloned(),
        };
        match self.vms.register(&ctx.owner, input).await {
            Ok(_) => {
                let next = if ctx.spec.start {
                    ItemStep::Starting
                } else {
                    ItemStep::Done
                };
                if next == ItemStep::Done {
                    self.finish_item(ctx, i, ItemStep::Done, "", "").await?;
                    return Ok(Step::Idle);
                }
                self.next_step(ctx, i, next).await
            }
            Err(crate::domains::vms::VmError::Store(e)) => Err(e),
            Err(e) => {
                self.finish_item(
                    ctx,
                    i,
                    ItemStep::Failed,
                    codes::REGISTRY_FAILED,
                    &e.to_string(),
                )
                .await?;
                Ok(Step::Idle)
            }
        }
    }

    /// `installing`: the guest reports through the provisioning endpoints;
    /// its progress is read (at most every second per item).
    async fn installing(&self, ctx: &Ctx<'_>, i: ItemRow) -> StoreResult<Step> {
        let key = (i.job_id.to_string(), i.idx);
        {
            let mut next = self.next_check.lock().unwrap_or_else(|e| e.into_inner());
            if next.get(&key).is_some_and(|t| *t > ctx.now) {
                return Ok(Step::Idle);
            }
            next.insert(key.clone(), ctx.now + 1_000);
        }
        let progress = match self.provisioning.progress(&ctx.owner, &i.vm_uuid).await {
            Ok(p) => p,
            Err(crate::domains::provisioning::ProvisioningError::Store(e)) => return Err(e),
            Err(_) => return Ok(Step::Idle),
        };
        let current = progress.current_step.map(|s| s.to_string());
        match progress.state.as_str() {
            "completed" => {
                self.next_check
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                let mut i = i;
                i.progress_step = current;
                self.next_step(ctx, i, ItemStep::Detaching).await
            }
            "failed" => {
                let detail = progress
                    .steps
                    .iter()
                    .rev()
                    .find_map(|s| {
                        s.details
                            .as_ref()
                            .and_then(|d| d.get("error"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| "the guest reported a failure".into());
                let mut i = i;
                i.progress_step = current;
                self.finish_item(ctx, i, ItemStep::Failed, codes::INSTALL_FAILED, &detail)
                    .await?;
                Ok(Step::Idle)
            }
            _ if current != i.progress_step => {
                let mut i = i;
                i.progress_step = current.clone();
                self.save_event(
                    ctx,
                    i,
                    "item_progress",
                    json!({"progress": current, "state": progress.state}),
                )
                .await?;
                Ok(Step::Idle)
            }
            _ => Ok(Step::Idle),
        }
    }

    /// `detaching`, phase 0: provisioning's auto-detach (dispatched when the
    /// guest reported `completed`) detaches and deletes the ISO; if it
    /// could not be dispatched, failed, or did not come, the job detaches
    /// by itself (phase 1).
    async fn watch_auto_detach(&self, ctx: &Ctx<'_>, i: ItemRow) -> StoreResult<Step> {
        let progress = match self.provisioning.progress(&ctx.owner, &i.vm_uuid).await {
            Ok(p) => Some(p),
            Err(crate::domains::provisioning::ProvisioningError::Store(e)) => return Err(e),
            Err(_) => None,
        };
        let detach = progress.and_then(|p| p.detach);
        let waited = ctx.now - i.step_started_at.unwrap_or(ctx.now);
        let own = match &detach {
            Some(d) => match &d.command_id {
                Some(cid) => {
                    let c = self
                        .commands
                        .get_in_scope(&ctx.scope, &CommandId::from(cid.as_str()))
                        .await
                        .map_err(store_err)?;
                    match c {
                        Some(c) if !c.status.is_terminal() => false,
                        Some(c) if c.status == CommandStatus::Succeeded => {
                            let deleted = c
                                .result
                                .as_ref()
                                .and_then(|r| r.get("deletedIso"))
                                .and_then(Value::as_str);
                            match deleted {
                                Some(vol) if Some(vol) == i.iso_volid.as_deref() => {
                                    store::artifact_deleted(
                                        self.db.writer(),
                                        &i.job_id,
                                        i.idx,
                                        vol,
                                        ctx.now,
                                    )
                                    .await?;
                                    self.finish_item(ctx, i, ItemStep::Done, "", "").await?;
                                    return Ok(Step::Idle);
                                }
                                _ => true,
                            }
                        }
                        _ => true,
                    }
                }
                None => true,
            },
            None => waited > AUTO_DETACH_GRACE_MS,
        };
        if own {
            return self.next_phase(ctx, i, 1, None).await;
        }
        Ok(Step::Idle)
    }

    // ------------------------------------------------------------ writes

    async fn next_step(&self, ctx: &Ctx<'_>, mut i: ItemRow, to: ItemStep) -> StoreResult<Step> {
        let from = enter(&mut i, to, ctx.now);
        self.save_step(ctx, i, from, json!({})).await
    }

    async fn next_phase(
        &self,
        ctx: &Ctx<'_>,
        mut i: ItemRow,
        phase: i64,
        upid: Option<String>,
    ) -> StoreResult<Step> {
        i.phase = phase;
        i.command_id = None;
        if upid.is_some() {
            i.task_upid = upid;
        }
        Ok(
            match self.save_event(ctx, i, "item_phase", json!({})).await? {
                Some(s) => Step::Again(Box::new(s)),
                None => Step::Idle,
            },
        )
    }

    async fn save_step(
        &self,
        ctx: &Ctx<'_>,
        i: ItemRow,
        from: ItemStep,
        extra: Value,
    ) -> StoreResult<Step> {
        let mut data = json!({"from": from});
        if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
            d.extend(e);
        }
        Ok(match self.save_event(ctx, i, "item_step", data).await? {
            Some(s) => Step::Again(Box::new(s)),
            None => Step::Idle,
        })
    }

    /// Save the item and record `vm_job.<what>` in one transaction.
    async fn save_event(
        &self,
        ctx: &Ctx<'_>,
        i: ItemRow,
        what: &str,
        extra: Value,
    ) -> StoreResult<Option<ItemRow>> {
        let mut tx = self.db.begin().await?;
        let Some(saved) = store::save_item(&mut tx, &i, ctx.now).await? else {
            return Ok(None);
        };
        let mut data = json!({"item": item_data(&saved)});
        if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
            d.extend(e);
        }
        record(&self.events, &mut tx, ctx.job, what, data).await?;
        tx.commit().await?;
        self.events.notify().await;
        Ok(Some(saved))
    }

    async fn finish_item(
        &self,
        ctx: &Ctx<'_>,
        mut i: ItemRow,
        to: ItemStep,
        code: &str,
        message: &str,
    ) -> StoreResult<()> {
        let from = i.step;
        if to != ItemStep::Done {
            i.failed_step = Some(from.as_str().into());
            i.error_code = Some(code.into());
            i.error_message = Some(message.chars().take(2000).collect());
        }
        i.step = to;
        i.command_id = None;
        i.waiting_since = None;
        i.next_attempt_at = None;
        i.finished_at = Some(ctx.now);
        let extra = if to == ItemStep::Done {
            json!({"from": from})
        } else {
            json!({"from": from, "error_code": code, "error_message": message})
        };
        if self.save_event(ctx, i, "item_step", extra).await?.is_some() && to == ItemStep::Failed {
            tracing::warn!(job_id = %ctx.job.id, code, message, "VM job item failed");
        }
        Ok(())
    }

    // ------------------------------------------------------------ sweep

    /// ISOs left on storage by finished items — failed or cancelled ones
    /// (when the job cleans up after failures) and done ones whose
    /// deletion did not happen — are detached and deleted through the
    /// agent (at most 10 attempts each).
    pub async fn sweep_orphans(&self) -> StoreResult<usize> {
        let mut dispatched = 0;
        for a in store::orphaned_artifacts(self.db.reader(), 200).await? {
            if a.cleanup_attempts >= 10 {
                continue;
            }
            let scope = TenantScope::new(a.tenant_id.clone());
            let Some(job) = store::get_job(self.db.reader(), &scope, &a.job_id).await? else {
                continue;
            };
            let Ok(spec) = serde_json::from_str::<JobSpec>(&job.spec) else {
                continue;
            };
            let Some(item) = store::item(self.db.reader(), &a.job_id, a.item_idx).await? else {
                continue;
            };
            let keep = match item.step {
                ItemStep::Done => !spec.start,
                _ => !spec.cleanup_iso_on_failure,
            };
            if keep {
                store::set_artifact_cleanup(self.db.writer(), &a.id, None, 10).await?;
                continue;
            }
            if let Some(cid) = &a.cleanup_command_id {
                let c = self
                    .commands
                    .get_in_scope(&scope, &CommandId::from(cid.as_str()))
                    .await
                    .map_err(store_err)?;
                match c {
                    Some(c) if !c.status.is_terminal() => continue,
                    Some(c)
                        if c.status == CommandStatus::Succeeded
                            && c.result
                                .as_ref()
                                .and_then(|r| r.get("deletedIso"))
                                .is_some() =>
                    {
                        let mut tx = self.db.begin().await?;
                        if store::artifact_deleted(
                            &mut tx,
                            &a.job_id,
                            a.item_idx,
                            &a.volid,
                            now_ms(),
                        )
                        .await?
                        {
                            record(
                                &self.events,
                                &mut tx,
                                &job,
                                "artifact_deleted",
                                json!({"index": a.item_idx, "volume": a.volid, "by": "sweep"}),
                            )
                            .await?;
                        }
                        tx.commit().await?;
                        self.events.notify().await;
                        continue;
                    }
                    None => {}
                    Some(_) => {
                        store::set_artifact_cleanup(
                            self.db.writer(),
                            &a.id,
                            None,
                            a.cleanup_attempts + 1,
                        )
                        .await?;
                        continue;
                    }
                }
            }
            let Some(vmid) = item.vmid else { continue };
            let id = a
                .cleanup_command_id
                .clone()
                .unwrap_or_else(|| CommandId::generate().to_string());
            store::set_artifact_cleanup(self.db.writer(), &a.id, Some(&id), a.cleanup_attempts)
                .await?;
            let mut payload = json!({"vmid": vmid, "node": job.node, "cdromSlot": "ide2",
                                     "deleteIso": true, "isoPath": a.volid});
            if let Some(t) = &spec.target {
                payload["target"] = Value::from(t.clone());
            }
            let r = self
                .commands
                .dispatch_system_with_id(
                    &scope,
                    &job.created_by,
                    SystemCommand {
                        id: &CommandId::from(id.as_str()),
                        agent_id: &job.agent_id,
                        command_type: "proxmox.detach-cdrom",
                        payload,
                        idempotency_key: &format!(
                            "vmjob:{}:{}:iso-cleanup:{}",
                            a.job_id, a.item_idx, a.cleanup_attempts
                        ),
                        expires_in_s: 600,
                    },
                )
                .await;
            match r {
                Ok(_) => dispatched += 1,
                // Offline: try again on a later sweep (same id and key).
                Err(CommandError::AgentOffline) => {}
                Err(CommandError::TargetRevoked) | Err(CommandError::Agent(_)) => {
                    store::set_artifact_cleanup(self.db.writer(), &a.id, None, 10).await?;
                }
                Err(e) => return Err(store_err(e)),
            }
        }
        Ok(dispatched)
    }
}

impl Ctx<'_> {
    fn clone_ctx(&self) -> Ctx<'_> {
        Ctx {
            job: self.job,
            spec: self.spec,
            scope: self.scope.clone(),
            owner: self.owner.clone(),
            online: self.online,
            revoked: self.revoked,
            now: self.now,
            spare_slots: self.spare_slots,
        }
    }
}

enum BuildFailure {
    Fail(String, String),
    Store(StoreError),
}

/// Move the item into `to` (phase 0, no command, the step's clock starts);
/// returns the step it left.
fn enter(i: &mut ItemRow, to: ItemStep, now: i64) -> ItemStep {
    let from = i.step;
    i.step = to;
    i.phase = 0;
    i.command_id = None;
    i.step_started_at = Some(now);
    i.next_attempt_at = None;
    from
}

/// A command with nothing but what [`Orchestrator::on_outcome`] reads.
fn command_stub() -> Command {
    Command {
        id: String::new(),
        tenant_id: String::new(),
        agent_id: String::new(),
        command_type: String::new(),
        payload: Value::Null,
        status: CommandStatus::Failed,
        attempt: 0,
        max_attempts: 0,
        cancel_requested: false,
        result: None,
        error_code: None,
        error_message: None,
        progress: None,
        idempotency_key: None,
        created_by: None,
        created_at: String::new(),
        updated_at: String::new(),
        dispatched_at: None,
        started_at: None,
        finished_at: None,
        expires_at: String::new(),
        lease_expires_at: None,
    }
}

/// The ISO upload's payload with the job's `iso_storage`, or without it
/// (the agent then uses its target's ISO storage).
fn with_iso_storage(mut payload: Value, spec: &JobSpec) -> Value {
    if let Some(s) = &spec.iso_storage {
        payload["isoStorage"] = Value::from(s.clone());
    }
    payload
}

fn bump(attempts: &str, step: ItemStep) -> String {
    let mut m: serde_json::Map<String, Value> = serde_json::from_str(attempts).unwrap_or_default();
    let n = m.get(step.as_str()).and_then(Value::as_i64).unwrap_or(0) + 1;
    m.insert(step.as_str().into(), Value::from(n));
    Value::Object(m).to_string()
}

fn store_err(e: CommandError) -> StoreError {
    match e {
        CommandError::Store(s) => s,
        other => StoreError::Invalid(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(status: CommandStatus, code: Option<&str>, msg: Option<&str>) -> Command {
        serde_json::from_value(json!({
            "id": "c", "tenant_id": "t", "agent_id": "a", "command_type": "proxmox.clone",
            "payload": {}, "status": status, "attempt": 1, "max_attempts": 3,
            "cancel_requested": false, "result": null, "error_code": code, "error_message": msg,
            "progress": null, "idempotency_key": null, "created_by": null,
            "created_at": "x", "updated_at": "x", "dispatched_at": null, "started_at": null,
            "finished_at": null, "expires_at": "x", "lease_expires_at": null
        }))
        .unwrap()
    }

    #[test]
    fn outcomes_are_classified() {
        use CommandStatus as S;
        assert_eq!(classify(&cmd(S::Succeeded, None, None)), Outcome::Succeeded);
        assert_eq!(
            classify(&cmd(S::Expired, Some("EXPIRED"), None)),
            Outcome::Infra
        );
        assert_eq!(
            classify(&cmd(S::Failed, Some("AGENT_RESTARTED"), None)),
            Outcome::Infra
        );
        assert_eq!(
            classify(&cmd(S::Failed, Some("DEAD_LETTERED"), None)),
            Outcome::Infra
        );
        assert_eq!(
            classify(&cmd(S::Failed, Some("PROXMOX_API_ERROR"),
                Some("Proxmox API POST /x failed (HTTP 500): can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout"))),
            Outcome::Lock
        );
        assert_eq!(
            classify(&cmd(
                S::Failed,
                Some("PROXMOX_TASK_FAILED"),
                Some("Proxmox task U failed: can't lock file 'x' - got timeout")
            )),
            Outcome::Lock
        );
        assert_eq!(
            classify(&cmd(
                S::Failed,
                Some("PROXMOX_API_ERROR"),
                Some("you can't start a vm if it's a template")
            )),
            Outcome::Failed
        );
        assert_eq!(classify(&cmd(S::Failed, None, None)), Outcome::Failed);
    }

    #[test]
    fn lock_backoff_grows_and_is_capped() {
        assert!((400..=600).contains(&lock_backoff_ms(1, 0)));
        assert!((800..=1200).contains(&lock_backoff_ms(2, 7)));
        for n in 7..40 {
            assert!(lock_backoff_ms(n, 40) <= 36_000);
        }
    }

    #[test]
    fn iso_names_are_stable_and_per_item() {
        let a = iso_name("j1", 0, 101);
        assert_eq!(a, iso_name("j1", 0, 101));
        assert_ne!(a, iso_name("j1", 1, 101));
        assert!(
            a.starts_with("provision-101-") && a.ends_with(".iso") && a.len() == 26,
            "{a}"
        );
    }

    #[test]
    fn attempts_are_counted_per_step() {
        let a = bump("{}", ItemStep::Cloning);
        let a = bump(&a, ItemStep::Cloning);
        let a = bump(&a, ItemStep::Starting);
        let v: Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v, json!({"cloning": 2, "starting": 1}));
    }
}
