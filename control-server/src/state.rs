//! Explicit application state shared by every handler: configuration, the
//! database, one service per domain, rate limits.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::db::Db;
use crate::domains::accounts::AccountsService;
use crate::domains::agents::AgentsService;
use crate::domains::commands::CommandsService;
use crate::domains::events::EventsService;
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
    pub notifier: Arc<Notifier>,
}

impl Services {
    pub fn new(db: &Db, cfg: &Config) -> anyhow::Result<Services> {
        let notifier = Arc::new(Notifier::new(db));
        let events = EventsService::new(db.clone(), notifier.clone());
        let accounts =
            Arc::new(AccountsService::new(db.clone(), cfg).map_err(|e| anyhow::anyhow!("{e}"))?);
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
        Ok(Services {
            accounts,
            agents,
            commands,
            events,
            notifier,
        })
    }
}
