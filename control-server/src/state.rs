//! Explicit application state shared by every handler: configuration, the
//! database, one service per domain, rate limits.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::crypto::DataKeys;
use crate::db::Db;
use crate::domains::accounts::AccountsService;
use crate::domains::agents::AgentsService;
use crate::domains::artifacts::ArtifactsService;
use crate::domains::bots::BotsService;
use crate::domains::commands::CommandsService;
use crate::domains::events::EventsService;
use crate::domains::finance::FinanceService;
use crate::domains::licensing::LicensingService;
use crate::domains::provisioning::ProvisioningService;
use crate::domains::resources::ResourcesService;
use crate::domains::secrets::SecretsService;
use crate::domains::settings::SettingsService;
use crate::domains::theme::ThemeService;
use crate::domains::unattend::UnattendService;
use crate::domains::vm_jobs::{Orchestrator, VmJobsService};
use crate::domains::vms::VmsService;
use crate::domains::workspace::WorkspaceService;
use crate::http::ratelimit::RateLimits;
use crate::notify::Notifier;
use crate::objects::Objects;

/// Cloned for every request by every layer and extractor that takes
/// `State`, so it is one `Arc` (one reference count to touch, not thirty:
/// at 15,000 agents the per-field clones and drops were 8 % of an idle
/// server's CPU, benchmarks.md). Fields are reached through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<AppStateFields>);

impl AppState {
    pub fn new(fields: AppStateFields) -> Self {
        AppState(Arc::new(fields))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateFields;
    fn deref(&self) -> &AppStateFields {
        &self.0
    }
}

pub struct AppStateFields {
    pub cfg: Arc<Config>,
    pub db: Db,
    pub accounts: Arc<AccountsService>,
    pub agents: Arc<AgentsService>,
    pub commands: Arc<CommandsService>,
    pub events: EventsService,
    pub provisioning: Arc<ProvisioningService>,
    pub settings: Arc<SettingsService>,
    pub bots: Arc<BotsService>,
    pub finance: Arc<FinanceService>,
    pub resources: Arc<ResourcesService>,
    pub workspace: Arc<WorkspaceService>,
    pub unattend: Arc<UnattendService>,
    pub vms: Arc<VmsService>,
    pub vm_jobs: Arc<VmJobsService>,
    pub licensing: Arc<LicensingService>,
    pub objects: Arc<Objects>,
    pub artifacts: Arc<ArtifactsService>,
    pub theme: Arc<ThemeService>,
    pub secrets: Arc<SecretsService>,
    pub notifier: Arc<Notifier>,
    pub limits: Arc<RateLimits>,
    /// In-flight limit of the API (`http::admission`).
    pub admission: Arc<crate::http::admission::Admission>,
    pub metrics: Option<PrometheusHandle>,
    /// SHA-256 of the served certificate (lowercase hex), when TLS is on.
    pub tls_sha256: Option<Arc<str>>,
}

/// The domain services wired together (also used by the admin CLI and
/// benchmarks without an HTTP server).
pub struct Services {
    pub accounts: Arc<AccountsService>,
    pub agents: Arc<AgentsService>,
    pub commands: Arc<CommandsService>,
    pub events: EventsService,
    pub provisioning: Arc<ProvisioningService>,
    pub settings: Arc<SettingsService>,
    pub bots: Arc<BotsService>,
    pub finance: Arc<FinanceService>,
    pub resources: Arc<ResourcesService>,
    pub workspace: Arc<WorkspaceService>,
    pub unattend: Arc<UnattendService>,
    pub vms: Arc<VmsService>,
    /// VM creation jobs (the API side).
    pub vm_jobs: Arc<VmJobsService>,
    /// The VM jobs' orchestrator (`server` runs its loop).
    pub vm_orchestrator: Arc<Orchestrator>,
    /// Tenant licenses, entitlements, execution leases (the lease signing key).
    pub licensing: Arc<LicensingService>,
    /// The object store (local files or S3) and its URL signing.
    pub objects: Arc<Objects>,
    /// Artifact releases, assignments, resolve-download and its audit.
    pub artifacts: Arc<ArtifactsService>,
    /// Theme (background) assets.
    pub theme: Arc<ThemeService>,
    /// The secrets vault and delivery of secrets to agents.
    pub secrets: Arc<SecretsService>,
    /// The server data keys (`crate::crypto`): seal secrets at rest.
    pub data_keys: Arc<DataKeys>,
    pub notifier: Arc<Notifier>,
}

impl Services {
    pub fn new(db: &Db, cfg: &Config) -> anyhow::Result<Services> {
        let notifier = Arc::new(Notifier::new(db));
        let events = EventsService::new(db.clone(), notifier.clone());
        let accounts =
            Arc::new(AccountsService::new(db.clone(), cfg).map_err(|e| anyhow::anyhow!("{e}"))?);
        let vms = Arc::new(VmsService::new(db.clone(), accounts.clone()));
        let licensing = Arc::new(LicensingService::new(
            db.clone(),
            cfg.licensing.clone(),
            &cfg.data_dir,
            vms.clone(),
            accounts.clone(),
        )?);
        let objects = Arc::new(Objects::open(&cfg.objects, &cfg.data_dir)?);
        let artifacts = Arc::new(ArtifactsService::new(
            db.clone(),
            objects.clone(),
            licensing.clone(),
            accounts.clone(),
            cfg.objects.artifact_max_bytes,
        ));
        let theme = Arc::new(ThemeService::new(db.clone(), objects.clone()));
        let agents = Arc::new(AgentsService::new(
            db.clone(),
            cfg.bus,
            accounts.clone(),
            events.clone(),
            notifier.clone(),
        ));
        let commands = Arc::new(CommandsService::new(
            db.clone(),
            cfg.bus,
            agents.clone(),
            events.clone(),
            notifier.clone(),
        ));
        let settings = Arc::new(SettingsService::new(db.clone()));
        let bots = Arc::new(BotsService::new(db.clone()));
        let finance = Arc::new(FinanceService::new(db.clone()));
        let data_keys = Arc::new(DataKeys::load_or_create(&cfg.data_dir)?);
        let resources = Arc::new(ResourcesService::new(db.clone(), data_keys.clone()));
        let secrets = Arc::new(SecretsService::new(
            db.clone(),
            data_keys.clone(),
            agents.clone(),
        ));
        let workspace = Arc::new(WorkspaceService::new(db.clone()));
        let unattend = Arc::new(UnattendService::new(db.clone()));
        let provisioning = Arc::new(ProvisioningService::new(
            db.clone(),
            cfg.provisioning,
            agents.clone(),
            commands.clone(),
            events.clone(),
            crate::domains::provisioning::windows_answers(unattend.clone()),
            licensing.clone(),
        ));
        let vm_jobs_wake = Arc::new(tokio::sync::Notify::new());
        let vm_jobs = Arc::new(VmJobsService::new(
            db.clone(),
            cfg.vm_jobs,
            agents.clone(),
            commands.clone(),
            events.clone(),
            unattend.clone(),
            vm_jobs_wake.clone(),
        ));
        let vm_orchestrator = Arc::new(Orchestrator::new(
            db.clone(),
            cfg.vm_jobs,
            cfg.bus,
            accounts.clone(),
            agents.clone(),
            commands.clone(),
            provisioning.clone(),
            vms.clone(),
            events.clone(),
            vm_jobs_wake,
        ));
        Ok(Services {
            accounts,
            agents,
            commands,
            events,
            provisioning,
            settings,
            bots,
            finance,
            resources,
            workspace,
            unattend,
            vms,
            vm_jobs,
            vm_orchestrator,
            licensing,
            objects,
            artifacts,
            theme,
            secrets,
            data_keys,
            notifier,
        })
    }
}
