//! The rules of VM jobs as users meet them: create (validated spec,
//! ownership of the agent, idempotency key, VMIDs and pool addresses
//! without collisions), read, the timeline, cancel and retry. The work
//! itself is the [`super::orchestrator`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Notify;
use utoipa::ToSchema;

use super::spec::{self, CreateVmJob, JobSpec, MacPolicy};
use super::store::{self, ArtifactRow, ItemRow, ItemStep, JobRow, JobStatus, NewItem, NewJob};
use super::VmJobError;
use crate::auth::{Identity, Role};
use crate::config::VmJobsConfig;
use crate::db::ids::{CommandId, UnattendProfileId, VmJobId};
use crate::db::list::{Fixed, ListParams, Page};
use crate::db::{ms_to_rfc3339, now_ms, Db, StoreError, StoreResult, Write};
use crate::domains::agents::{AgentError, AgentStatus, AgentsService};
use crate::domains::commands::CommandsService;
use crate::domains::events::store::{EventFilter, NewEvent};
use crate::domains::events::EventsService;
use crate::domains::unattend::{UnattendError, UnattendService};
use crate::validate::FieldErrors;

/// Where guests reach this server (stored with the job: the orchestrator
/// builds provision.json long after the request).
pub struct ServerInfo {
    pub api_endpoint: String,
    pub server_cert_sha256: Option<String>,
}

// ---------------------------------------------------------------- views

/// One VM of a job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemView {
    /// 0-based position in the job (`…/items/{index}/retry`).
    pub index: i64,
    pub name: String,
    #[schema(value_type = String)]
    pub os: crate::domains::provisioning::GuestOs,
    /// The state machine's step: pending → cloning → clone_wait →
    /// configuring → iso_building → iso_attaching → registering →
    /// starting → installing → detaching → done | failed | cancelled.
    #[schema(schema_with = step_schema)]
    pub step: ItemStep,
    /// `active`, `waiting_for_agent` (the agent is offline; the item
    /// waits up to `vm_jobs_agent_wait_seconds`), `backoff` (a retry is
    /// scheduled), or the final step.
    pub state: String,
    /// Attempt of the current step (1 = first).
    pub attempt: i64,
    /// Attempts per step so far (retries included).
    #[schema(value_type = Object)]
    pub attempts: Value,
    /// Proxmox lock contention retried (not failures).
    pub lock_retries: i64,
    /// Work lost to infrastructure (agent restarted, lease lost, expired) re-dispatched.
    pub infra_retries: i64,
    pub vmid: Option<i64>,
    /// SMBIOS uuid set at configure time (provision.json's `vm_uuid`).
    pub vm_uuid: String,
    pub ip: Option<String>,
    pub mac: Option<String>,
    /// The provisioning ISO (`local:iso/provision-<vmid>-<hash>.iso`).
    pub iso_volume: Option<String>,
    /// The guest's furthest reported step (`windows_installed`, …, `completed`).
    pub progress: Option<String>,
    /// The command in flight for this step.
    pub command_id: Option<String>,
    pub command_type: Option<String>,
    /// Where the item failed (or was cancelled).
    pub failed_step: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

fn step_schema() -> utoipa::openapi::Object {
    crate::domains::vms::routes::text_enum_schema(
        &ItemStep::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        false,
    )
}

fn status_schema() -> utoipa::openapi::Object {
    crate::domains::vms::routes::text_enum_schema(
        &JobStatus::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
        false,
    )
}

/// A job artifact: a per-VM provisioning ISO with its checksum.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArtifactView {
    pub index: i64,
    pub kind: String,
    pub volume: String,
    pub sha256: String,
    pub size: i64,
    pub created_at: String,
    /// When it was removed from storage (detach on completion, or the sweep).
    pub deleted_at: Option<String>,
}

/// A job without its items (lists).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobSummary {
    pub id: VmJobId,
    pub tenant_id: String,
    #[schema(schema_with = status_schema)]
    pub status: JobStatus,
    pub agent_id: String,
    pub node: String,
    pub created_by: String,
    pub item_count: i64,
    pub idempotency_key: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// A job with its items and artifacts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    pub job: JobSummary,
    pub spec: JobSpec,
    /// Items per step.
    #[schema(value_type = Object)]
    pub counts: BTreeMap<String, i64>,
    /// Items waiting for the agent to come back.
    pub waiting_for_agent: i64,
    pub items: Vec<ItemView>,
    pub artifacts: Vec<ArtifactView>,
}

/// One entry of a job's timeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobEvent {
    pub event_id: i64,
    /// `vm_job.created`, `vm_job.status`, `vm_job.item_step`, `vm_job.item_retry`, …
    pub event_type: String,
    #[schema(value_type = Object)]
    pub data: Value,
    pub created_at: String,
}

/// How often a cancel re-reads and retries when the orchestrator wrote the
/// job meanwhile.
const CANCEL_ATTEMPTS: u64 = 8;

/// A VM a cancelled job leaves behind.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeftVm {
    pub index: i64,
    pub name: String,
    pub vmid: Option<i64>,
    /// The step the item was in.
    pub step: String,
    /// `false`: the clone was dispatched and may or may not have happened.
    pub certain: bool,
}

/// The answer to a cancel.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CancelView {
    pub job: JobView,
    /// VMs that exist (or may exist) on Proxmox: cancel never deletes VMs.
    pub vms_left: Vec<LeftVm>,
    /// In-flight commands a cancel was sent to.
    pub cancelled_commands: Vec<String>,
}

pub fn summary(r: &JobRow) -> JobSummary {
    JobSummary {
        id: r.id.clone(),
        tenant_id: r.tenant_id.to_string(),
        status: r.status,
        agent_id: r.agent_id.to_string(),
        node: r.node.clone(),
        created_by: r.created_by.to_string(),
        item_count: r.item_count,
        idempotency_key: r.idempotency_key.clone(),
        error_code: r.error_code.clone(),
        error_message: r.error_message.clone(),
        created_at: ms_to_rfc3339(r.created_at),
        updated_at: ms_to_rfc3339(r.updated_at),
        started_at: r.started_at.map(ms_to_rfc3339),
        finished_at: r.finished_at.map(ms_to_rfc3339),
    }
}

pub fn item_view(r: &ItemRow, now: i64) -> ItemView {
    let state = if r.step.is_final() {
        r.step.as_str().to_string()
    } else if r.waiting_since.is_some() {
        "waiting_for_agent".into()
    } else if r.next_attempt_at.is_some_and(|t| t > now) {
        "backoff".into()
    } else {
        "active".into()
    };
    ItemView {
        index: r.idx,
        name: r.name.clone(),
        os: r.os,
        step: r.step,
        state,
        attempt: r.step_attempt + 1,
        attempts: serde_json::from_str(&r.attempts).unwrap_or_else(|_| json!({})),
        lock_retries: r.lock_retries,
        infra_retries: r.infra_retries,
        vmid: r.vmid,
        vm_uuid: r.vm_uuid.clone(),
        ip: r.ip_address.clone(),
        mac: r.mac_address.clone(),
        iso_volume: r.iso_volid.clone(),
        progress: r.progress_step.clone(),
        command_id: r.command_id.clone(),
        command_type: r.command_type.clone(),
        failed_step: r.failed_step.clone(),
        error_code: r.error_code.clone(),
        error_message: r.error_message.clone(),
        updated_at: ms_to_rfc3339(r.updated_at),
        finished_at: r.finished_at.map(ms_to_rfc3339),
    }
}

fn artifact_view(a: &ArtifactRow) -> ArtifactView {
    ArtifactView {
        index: a.item_idx,
        kind: a.kind.clone(),
        volume: a.volid.clone(),
        sha256: a.sha256.clone(),
        size: a.size,
        created_at: ms_to_rfc3339(a.created_at),
        deleted_at: a.deleted_at.map(ms_to_rfc3339),
    }
}

pub fn job_view(job: &JobRow, items: &[ItemRow], artifacts: &[ArtifactRow]) -> JobView {
    let now = now_ms();
    let mut counts = BTreeMap::new();
    for i in items {
        *counts.entry(i.step.as_str().to_string()).or_insert(0) += 1;
    }
    JobView {
        job: summary(job),
        spec: serde_json::from_str(&job.spec).unwrap_or_else(|_| JobSpec {
            agent_id: job.agent_id.clone(),
            target: None,
            node: job.node.clone(),
            template_vmid: 0,
            vms: Vec::new(),
            vmid_range: None,
            full_clone: true,
            storage: None,
            iso_storage: None,
            profile_id: None,
            linux: None,
            playbook_id: None,
            downloads: None,
            cores: None,
            memory: None,
            disk_resize: None,
            net0: None,
            ip_pool: None,
            start: true,
            parallelism: 2,
            on_failure: spec::OnFailure::Continue,
            install_timeout_minutes: 120,
            cleanup_iso_on_failure: true,
        }),
        counts,
        waiting_for_agent: items
            .iter()
            .filter(|i| !i.step.is_final() && i.waiting_since.is_some())
            .count() as i64,
        items: items.iter().map(|i| item_view(i, now)).collect(),
        artifacts: artifacts.iter().map(artifact_view).collect(),
    }
}

/// Record `vm_job.<what>` for the job (visible to its creator and the
/// tenant's admins; filterable by `job_id`). The caller wakes the streams
/// after its commit.
pub async fn record(
    events: &EventsService,
    w: impl Write,
    job: &JobRow,
    what: &str,
    data: Value,
) -> StoreResult<()> {
    let mut body = json!({"job_id": job.id, "status": job.status});
    if let (Value::Object(b), Value::Object(d)) = (&mut body, data) {
        b.extend(d);
    }
    events
        .record_for_job(
            w,
            NewEvent {
                tenant_id: job.tenant_id.as_str(),
                agent_id: Some(job.agent_id.as_str()),
                command_id: None,
                agent_owner_id: Some(job.created_by.as_str()),
                command_created_by: None,
                event_type: &format!("vm_job.{what}"),
                data: &body.to_string(),
                now: now_ms(),
            },
            job.id.as_str(),
        )
        .await?;
    Ok(())
}

/// The item's fields every item event carries.
pub fn item_data(i: &ItemRow) -> Value {
    json!({"index": i.idx, "name": i.name, "step": i.step, "vmid": i.vmid,
           "attempt": i.step_attempt + 1, "lock_retries": i.lock_retries,
           "infra_retries": i.infra_retries})
}

// ---------------------------------------------------------------- service

pub struct VmJobsService {
    db: Db,
    cfg: VmJobsConfig,
    agents: Arc<AgentsService>,
    commands: Arc<CommandsService>,
    events: EventsService,
    unattend: Arc<UnattendService>,
    wake: Arc<Notify>,
}

impl VmJobsService {
    pub fn new(
        db: Db,
        cfg: VmJobsConfig,
        agents: Arc<AgentsService>,
        commands: Arc<CommandsService>,
        events: EventsService,
        unattend: Arc<UnattendService>,
        wake: Arc<Notify>,
    ) -> VmJobsService {
        VmJobsService {
            db,
            cfg,
            agents,
            commands,
            events,
            unattend,
            wake,
        }
    }

    /// The job if the caller may see it: its creator; admins the tenant's.
    async fn visible(&self, caller: &Identity, id: &VmJobId) -> Result<JobRow, VmJobError> {
        let row = store::get_job(self.db.reader(), &caller.scope(), id)
            .await?
            .ok_or(VmJobError::NotFound)?;
        if !caller.has(Role::Admin) && row.created_by != caller.user_id {
            return Err(VmJobError::NotFound);
        }
        Ok(row)
    }

    async fn full_view(&self, job: &JobRow) -> Result<JobView, VmJobError> {
        let items = store::items(self.db.reader(), &job.id).await?;
        let artifacts = store::artifacts(self.db.reader(), &job.id).await?;
        Ok(job_view(job, &items, &artifacts))
    }

    /// `POST /vm-jobs`. Answers the job and whether an existing one was
    /// returned for the idempotency key.
    pub async fn create(
        &self,
        caller: &Identity,
        req: CreateVmJob,
        server: ServerInfo,
    ) -> Result<(JobView, bool), VmJobError> {
        let scope = caller.require(Role::Operator)?;
        let admin = caller.has(Role::Admin);
        let spec = spec::normalise(req.clone(), self.cfg.install_timeout_min as u32)?;
        let digest = spec.digest();
        if let Some(key) = &req.idempotency_key {
            if let Some(existing) = store::job_by_key(self.db.reader(), &scope, key).await? {
                return self.replay(caller, existing, &digest).await;
            }
        }
        let agent = self
            .agents
            .get(&scope, &spec.agent_id)
            .await?
            .ok_or(VmJobError::Agent(AgentError::AgentNotFound))?;
        if !admin {
            match agent.owner_user_id.as_ref() {
                None => return Err(VmJobError::OwnerUnassigned),
                Some(o) if *o != caller.user_id => return Err(VmJobError::OwnerMismatch),
                _ => {}
            }
        }
        let mut f = FieldErrors::default();
        if agent.status == AgentStatus::Revoked {
            f.add("agent_id", "the agent is revoked");
        }
        if let Some(p) = &spec.profile_id {
            match self
                .unattend
                .get(caller, &UnattendProfileId::from(p.as_str()))
                .await
            {
                Ok(_) => {}
                Err(UnattendError::NotFound) => {
                    f.add("profile_id", "no such unattend profile visible to you")
                }
                Err(UnattendError::Store(e)) => return Err(e.into()),
                Err(UnattendError::Auth(e)) => return Err(e.into()),
                Err(other) => f.add("profile_id", other.to_string()),
            }
        }
        let count = spec.vms.len();
        let vmids: Vec<Option<i64>> = match spec.vmid_range {
            Some((first, _)) => {
                let held: BTreeSet<i64> = store::held_vmids(self.db.reader(), &scope, &agent.id)
                    .await?
                    .into_iter()
                    .collect();
                let mine: Vec<i64> = (0..count as i64).map(|i| i64::from(first) + i).collect();
                let clash: Vec<String> = mine
                    .iter()
                    .filter(|v| held.contains(v))
                    .take(5)
                    .map(|v| v.to_string())
                    .collect();
                if !clash.is_empty() {
                    f.add(
                        "vmid_range",
                        format!(
                            "overlaps VMIDs held by another unfinished job on this agent ({})",
                            clash.join(", ")
                        ),
                    );
                }
                mine.into_iter().map(Some).collect()
            }
            None => vec![None; count],
        };
        let addresses = match &spec.ip_pool {
            None => vec![None; count],
            Some(pool) => {
                let used: BTreeSet<String> = store::used_addresses(self.db.reader(), &scope)
                    .await?
                    .into_iter()
                    .collect();
                let gw = pool.gateway.parse::<Ipv4Addr>().ok();
                let free: Vec<String> = pool
                    .addresses()
                    .filter(|a| Some(*a) != gw)
                    .map(|a| a.to_string())
                    .filter(|a| !used.contains(a))
                    .take(count)
                    .collect();
                if free.len() < count {
                    f.add(
                        "ip_plan",
                        format!(
                            "the pool has {} free addresses (others are held by the tenant's jobs); the job needs {count}",
                            free.len()
                        ),
                    );
                }
                free.into_iter().map(Some).collect()
            }
        };
        f.into_fields()?;

        let now = now_ms();
        let id = VmJobId::generate();
        let spec_text =
            serde_json::to_string(&spec).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut tx = self.db.begin().await?;
        let inserted = store::insert_job(
            &mut tx,
            &scope,
            NewJob {
                id: &id,
                created_by: &caller.user_id,
                agent_id: &agent.id,
                node: &spec.node,
                spec: &spec_text,
                spec_digest: &digest,
                idempotency_key: req.idempotency_key.as_deref(),
                api_endpoint: &server.api_endpoint,
                server_cert_sha256: server.server_cert_sha256.as_deref(),
                item_count: count as i64,
                now,
            },
        )
        .await;
        let job = match inserted {
            Ok(j) => j,
            Err(StoreError::Conflict(_)) => {
                drop(tx);
                let key = req.idempotency_key.as_deref().unwrap_or_default();
                let existing = store::job_by_key(self.db.reader(), &scope, key)
                    .await?
                    .ok_or(VmJobError::IdempotencyKeyReused)?;
                return self.replay(caller, existing, &digest).await;
            }
            Err(e) => return Err(e.into()),
        };
        for (i, vm) in spec.vms.iter().enumerate() {
            let vm_uuid = uuid::Uuid::new_v4().to_string();
            let mac = spec
                .net0
                .as_ref()
                .filter(|n| n.mac == MacPolicy::Derived)
                .map(|_| spec::derived_mac(&vm_uuid));
            let r = store::insert_item(
                &mut tx,
                &job,
                NewItem {
                    idx: i as i64,
                    name: &vm.name,
                    os: vm.os,
                    vmid: vmids[i],
                    vm_uuid: &vm_uuid,
                    ip_address: addresses[i].as_deref(),
                    mac_address: mac.as_deref(),
                },
            )
            .await;
            if let Err(StoreError::Conflict(_)) = r {
                // Another job took the VMID or address meanwhile.
                let field = if spec.ip_pool.is_some() {
                    "ip_plan"
                } else {
                    "vmid_range"
                };
                return Err(FieldErrors::one(
                    field,
                    "a concurrent job took one of these VMIDs or addresses; send the request again",
                )
                .into());
            }
            r?;
        }
        record(
            &self.events,
            &mut tx,
            &job,
            "created",
            json!({"item_count": count, "created_by": caller.user_id,
                   "names": spec.vms.iter().map(|v| v.name.as_str()).collect::<Vec<_>>()}),
        )
        .await?;
        tx.commit().await?;
        self.events.notify().await;
        self.wake.notify_one();
        tracing::info!(job_id = %job.id, items = count, agent_id = %agent.id, "VM job created");
        Ok((self.full_view(&job).await?, false))
    }

    async fn replay(
        &self,
        caller: &Identity,
        existing: JobRow,
        digest: &str,
    ) -> Result<(JobView, bool), VmJobError> {
        let same = existing.spec_digest == digest
            && (caller.has(Role::Admin) || existing.created_by == caller.user_id);
        if !same {
            return Err(VmJobError::IdempotencyKeyReused);
        }
        Ok((self.full_view(&existing).await?, true))
    }

    /// `GET /vm-jobs` (viewer+: own jobs; admins: the tenant's).
    pub async fn list(
        &self,
        caller: &Identity,
        params: &ListParams,
    ) -> Result<Page<JobSummary>, VmJobError> {
        let scope = caller.require(Role::Viewer)?;
        let fixed = if caller.has(Role::Admin) {
            Vec::new()
        } else {
            vec![Fixed::eq("created_by", caller.user_id.as_str())]
        };
        Ok(
            store::list_jobs(self.db.reader(), self.db.backend(), &scope, &fixed, params)
                .await?
                .map(|r| summary(&r)),
        )
    }

    /// `GET /vm-jobs/{id}`.
    pub async fn get(&self, caller: &Identity, id: &VmJobId) -> Result<JobView, VmJobError> {
        caller.require(Role::Viewer)?;
        let job = self.visible(caller, id).await?;
        self.full_view(&job).await
    }

    /// `GET /vm-jobs/{id}/events`: the job's timeline, oldest first.
    pub async fn events(
        &self,
        caller: &Identity,
        id: &VmJobId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<JobEvent>, VmJobError> {
        caller.require(Role::Viewer)?;
        let job = self.visible(caller, id).await?;
        let filter = EventFilter {
            job_id: Some(job.id.to_string()),
            ..Default::default()
        };
        let rows = self
            .events
            .after(&caller.scope(), &filter, after.max(0), limit)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| JobEvent {
                event_id: r.id,
                event_type: r.event_type,
                data: serde_json::from_str(&r.data).unwrap_or(Value::Null),
                created_at: ms_to_rfc3339(r.created_at),
            })
            .collect())
    }

    /// `POST /vm-jobs/{id}/cancel`: no new step starts, in-flight commands
    /// get a cancel, created VMs stay (and are listed).
    ///
    /// The orchestrator may write the job or an item between our read and
    /// our write (compare-and-set on `version`); a cancel is the user's
    /// intent, so it reads again and retries instead of answering 409.
    pub async fn cancel(&self, caller: &Identity, id: &VmJobId) -> Result<CancelView, VmJobError> {
        caller.require(Role::Operator)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.cancel_once(caller, id).await {
                Err(VmJobError::Store(StoreError::Conflict(_))) if attempt < CANCEL_ATTEMPTS => {
                    tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn cancel_once(&self, caller: &Identity, id: &VmJobId) -> Result<CancelView, VmJobError> {
        let mut job = self.visible(caller, id).await?;
        if job.status.is_final() {
            return Err(VmJobError::Finished);
        }
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let items = store::items(&mut tx, &job.id).await?;
        let mut left = Vec::new();
        let mut commands = Vec::new();
        let from = job.status;
        job.status = JobStatus::Cancelled;
        job.finished_at = Some(now);
        job.cancelled_by = Some(caller.user_id.to_string());
        job.error_code = Some("CANCELLED".into());
        job.error_message = Some("Cancelled by a user".into());
        if let Some(c) = job.plan_command_id.take() {
            commands.push(c);
        }
        let job = store::save_job(&mut tx, &job, now)
            .await?
            .ok_or_else(|| StoreError::Conflict("the job changed meanwhile; try again".into()))?;
        for mut item in items.into_iter().filter(|i| !i.step.is_final()) {
            let was = item.step;
            let dispatched_clone = was == ItemStep::Cloning && item.command_id.is_some();
            if was.vm_created() || dispatched_clone {
                left.push(LeftVm {
                    index: item.idx,
                    name: item.name.clone(),
                    vmid: item.vmid,
                    step: was.as_str().into(),
                    certain: was.vm_created(),
                });
            }
            if let Some(c) = item.command_id.take() {
                commands.push(c);
            }
            item.failed_step = Some(was.as_str().into());
            item.step = ItemStep::Cancelled;
            item.error_code = Some("CANCELLED".into());
            item.error_message = Some("The job was cancelled".into());
            item.finished_at = Some(now);
            item.waiting_since = None;
            item.next_attempt_at = None;
            let saved = store::save_item(&mut tx, &item, now)
                .await?
                .ok_or_else(|| {
                    StoreError::Conflict("the job changed meanwhile; try again".into())
                })?;
            record(
                &self.events,
                &mut tx,
                &job,
                "item_step",
                json!({"item": item_data(&saved), "from": was}),
            )
            .await?;
        }
        record(
            &self.events,
            &mut tx,
            &job,
            "status",
            json!({"from": from, "by": caller.user_id, "vms_left": left}),
        )
        .await?;
        tx.commit().await?;
        self.events.notify().await;
        let scope = caller.scope();
        for c in &commands {
            if let Err(e) = self
                .commands
                .cancel_system(&scope, &CommandId::from(c.as_str()))
                .await
            {
                tracing::warn!(command_id = %c, error = %e, "could not cancel a job's command");
            }
        }
        self.wake.notify_one();
        tracing::info!(job_id = %job.id, vms_left = left.len(), "VM job cancelled");
        Ok(CancelView {
            job: self.full_view(&job).await?,
            vms_left: left,
            cancelled_commands: commands,
        })
    }

    /// `POST /vm-jobs/{id}/items/{n}/retry`: a failed item runs again from
    /// the step it failed in (a failed clone wait re-clones: Proxmox
    /// removed the half-made VM), with fresh command keys.
    pub async fn retry(
        &self,
        caller: &Identity,
        id: &VmJobId,
        idx: i64,
    ) -> Result<JobView, VmJobError> {
        caller.require(Role::Operator)?;
        let mut job = self.visible(caller, id).await?;
        if job.status == JobStatus::Cancelled {
            return Err(VmJobError::Cancelled);
        }
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let mut item = store::item(&mut tx, &job.id, idx)
            .await?
            .ok_or(VmJobError::ItemNotFound)?;
        if item.step != ItemStep::Failed {
            return Err(VmJobError::ItemNotFailed);
        }
        let from: ItemStep = item
            .failed_step
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(ItemStep::Pending);
        let restart = match from {
            ItemStep::CloneWait => ItemStep::Cloning,
            s if s.is_final() => ItemStep::Pending,
            s => s,
        };
        item.step = restart;
        item.phase = 0;
        item.step_attempt += 1;
        item.command_id = None;
        item.command_type = None;
        item.error_code = None;
        item.error_message = None;
        item.finished_at = None;
        item.next_attempt_at = None;
        item.waiting_since = None;
        item.step_started_at = Some(now);
        let saved = store::save_item(&mut tx, &item, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => VmJobError::Validation(FieldErrors::one(
                    "index",
                    "another unfinished job now holds this item's VMID",
                )),
                other => other.into(),
            })?
            .ok_or_else(|| StoreError::Conflict("the item changed meanwhile; try again".into()))?;
        let was = job.status;
        // An item that failed before the job read the cluster has no VMID:
        // the job plans again (a fresh command) before it runs.
        let replan = saved.vmid.is_none();
        if job.status != JobStatus::Running || replan {
            job.status = if replan {
                JobStatus::Pending
            } else {
                JobStatus::Running
            };
            if replan {
                job.plan_command_id = None;
                job.plan_attempt += 1;
            }
            job.finished_at = None;
            job.error_code = None;
            job.error_message = None;
            job = store::save_job(&mut tx, &job, now).await?.ok_or_else(|| {
                StoreError::Conflict("the job changed meanwhile; try again".into())
            })?;
            record(&self.events, &mut tx, &job, "status", json!({"from": was})).await?;
        }
        record(
            &self.events,
            &mut tx,
            &job,
            "item_retry_requested",
            json!({"item": item_data(&saved), "from_step": from, "by": caller.user_id}),
        )
        .await?;
        tx.commit().await?;
        self.events.notify().await;
        self.wake.notify_one();
        self.full_view(&job).await
    }
}
