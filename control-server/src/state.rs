//! Explicit application state shared by every handler: configuration, the
//! database, one service per domain, rate limits.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::crypto::DataKeys;
use crate::db::Db;
use crate::domains::accounts::AccountsService;
use crate::domains::agents::AgentsService;
use crate::domains::bots::BotsService;
use crate::domains::commands::CommandsService;
use crate::domains::events::EventsService;
use crate::domains::finance::FinanceService;
use crate::domains::licensing::LicensingService;
use crate::domains::provisioning::ProvisioningService;
use crate::domains::resources::ResourcesService;
use crate::domains::settings::SettingsService;
use crate::domains::unattend::UnattendService;
use crate::domains::vms::VmsService;
use crate::domains::workspace::WorkspaceService;
use crate::http::ratelimit::RateLimits;
use crate::notify::Notifier;

#[derive(Clone)]
pub struct AppState {
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
    pub licensing: Arc<LicensingService>,
    pub notifier: Arc<Notifier>,
    pub limits: Arc<RateLimits>,
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
    /// Tenant licenses, entitlements, execution leases (the lease signing key).
    pub licensing: Arc<LicensingService>,
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
        let workspace = Arc::new(WorkspaceService::new(db.clone()));
        let unattend = Arc::new(UnattendService::new(db.clone()));
        let provisioning = Arc::new(ProvisioningService::new(
            db.clone(),
            cfg.provisioning,
            agents.clone(),
            commands.clone(),
            events.clone(),
            crate::domains::provisioning::windows_answers(unattend.clone()),
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
            licensing,
            data_keys,
            notifier,
        })
    }
}
