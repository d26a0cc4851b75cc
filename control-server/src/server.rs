//! `control-server serve`: open the database, prepare TLS, serve until a
//! signal, then drain in-flight requests and close the pool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;

use crate::config::{Config, MetricsMode, TlsMode};
use crate::db::Db;
use crate::domains::agents::AgentsService;
use crate::http::ratelimit::RateLimits;
use crate::notify::Notifier;
use crate::state::{AppState, AppStateFields, Services};
use crate::{bootstrap, http, sweeper, telemetry, tls};

/// A started server.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// `https` or `http`.
    pub scheme: &'static str,
    pub tls_sha256: Option<String>,
    pub initial_password_file: Option<std::path::PathBuf>,
    pub handle: Handle<SocketAddr>,
    pub db: Db,
    /// The agents service (its heartbeat write-behind is flushed on shutdown).
    pub agents: Arc<AgentsService>,
    /// Told to drain parked waits on shutdown.
    notifier: Arc<Notifier>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Sweeper, heartbeat flusher, LISTEN task, limiter pruning: stopped
    /// with the server.
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Stop accepting, let in-flight requests finish (up to `grace`), close the pool.
    pub async fn shutdown(self, grace: Duration) -> anyhow::Result<()> {
        begin_shutdown(&self.handle, &self.notifier, grace);
        self.wait().await
    }

    /// Wait until the server stops (after a shutdown was requested), then
    /// store the buffered heartbeats and close the pool.
    pub async fn wait(self) -> anyhow::Result<()> {
        let result = self.task.await;
        for t in &self.background {
            t.abort();
        }
        match self.agents.flush_heartbeats().await {
            Ok(n) => tracing::info!(agents = n, "stored buffered heartbeats"),
            Err(e) => tracing::warn!(error = %e, "could not store buffered heartbeats"),
        }
        self.db.close().await;
        result??;
        Ok(())
    }

    /// Stop at once as a crash would: no draining, buffered heartbeats are
    /// not stored (tests of the write-behind's crash semantics).
    #[doc(hidden)]
    pub async fn crash(self) {
        self.handle.shutdown();
        self.task.abort();
        for t in &self.background {
            t.abort();
        }
        let _ = self.task.await;
        self.db.close().await;
    }
}

/// Install the process-wide rustls crypto provider (aws-lc-rs) once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Open the database, migrate, bootstrap, bind and start serving.
pub async fn start(cfg: Config) -> anyhow::Result<RunningServer> {
    start_with(cfg, axum::Router::new()).await
}

/// [`start`] with extra routes mounted under the same middleware (tests).
#[doc(hidden)]
pub async fn start_with(
    cfg: Config,
    extra: axum::Router<AppState>,
) -> anyhow::Result<RunningServer> {
    install_crypto_provider();
    raise_nofile_limit();
    let db = Db::connect(&cfg.database_url).await?;
    db.migrate().await?;
    tracing::info!(backend = db.backend().as_str(), "database ready");
    let services = Services::new(&db, &cfg)?;
    let initial_password_file =
        bootstrap::ensure_initial_admin(&services.accounts, &cfg.data_dir).await?;
    if let Some(path) = &initial_password_file {
        tracing::warn!(
            email = bootstrap::INITIAL_ADMIN_EMAIL,
            password_file = %path.display(),
            "created the initial admin; its password is in the file (sign in, then delete the file)"
        );
    }

    let material = match &cfg.tls {
        TlsMode::Off => None,
        TlsMode::SelfSigned => Some(tls::self_signed(&cfg.data_dir, &cfg.tls_san)?),
        TlsMode::Files { cert, key } => Some(tls::from_files(cert, key)?),
    };
    if let Some(m) = &material {
        tracing::info!(
            cert = %m.cert_path.display(),
            generated = m.generated,
            sha256 = %tls::colon_hex(&m.sha256),
            "TLS certificate SHA-256 fingerprint (agents pin this)"
        );
    }

    let limits = Arc::new(RateLimits::new(
        cfg.api_rate_limit_per_minute,
        cfg.public_rate_limit_per_minute,
    ));
    let mut background = vec![sweeper::spawn(
        services.commands.clone(),
        services.agents.clone(),
        services.provisioning.clone(),
        Duration::from_secs(cfg.bus.sweep_interval_s),
    )];
    // Heartbeat write-behind: starts from the stored presence (a restart's
    // reconnecting fleet is buffered, not written agent by agent), stores
    // buffered last-seen times every `heartbeat_flush_interval_ms` (and
    // `wait` once more at shutdown).
    let loaded = services.agents.load_presence().await?;
    tracing::info!(
        agents = loaded,
        "loaded the agents' presence for heartbeat write-behind"
    );
    background.push(services.agents.clone().spawn_write_behind());
    // The VM jobs' orchestrator: resumes every unfinished job from the
    // database, then advances them as commands and guests report.
    background.push(
        services
            .vm_orchestrator
            .clone()
            .spawn(services.notifier.subscribe_events()),
    );
    if let Some(listener) = services
        .notifier
        .spawn_pg_listener(cfg.database_url.clone())
    {
        background.push(listener);
    }
    let agents = services.agents.clone();
    let state = AppState::new(AppStateFields {
        accounts: services.accounts,
        agents: services.agents,
        commands: services.commands,
        events: services.events,
        provisioning: services.provisioning.clone(),
        settings: services.settings,
        bots: services.bots,
        finance: services.finance,
        resources: services.resources,
        workspace: services.workspace,
        unattend: services.unattend,
        vms: services.vms,
        vm_jobs: services.vm_jobs,
        licensing: services.licensing,
        objects: services.objects,
        artifacts: services.artifacts,
        theme: services.theme,
        secrets: services.secrets,
        notifier: services.notifier.clone(),
        metrics: if cfg.metrics == MetricsMode::Off {
            None
        } else {
            telemetry::prometheus()
        },
        cfg: Arc::new(cfg.clone()),
        db: db.clone(),
        limits: limits.clone(),
        admission: Arc::new(crate::http::admission::Admission::new(
            cfg.api_max_in_flight,
            cfg.agent_max_in_flight,
            Duration::from_millis(cfg.busy_queue_ms),
            cfg.busy_retry_spread_seconds,
        )),
        tls_sha256: material.as_ref().map(|m| Arc::from(m.sha256.as_str())),
    });
    let app = http::router_with(state, extra).into_make_service_with_connect_info::<SocketAddr>();

    let handle = Handle::new();
    let listener = std::net::TcpListener::bind(cfg.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let scheme = if material.is_some() { "https" } else { "http" };
    let task = match &material {
        Some(m) => {
            let rustls = RustlsConfig::from_pem_file(&m.cert_path, &m.key_path)
                .await
                .map_err(|e| anyhow::anyhow!("cannot load TLS certificate/key: {e}"))?;
            let server = axum_server::from_tcp_rustls(listener, rustls)?.handle(handle.clone());
            tokio::spawn(async move { server.serve(app).await })
        }
        None => {
            let server = axum_server::from_tcp(listener)?.handle(handle.clone());
            tokio::spawn(async move { server.serve(app).await })
        }
    };
    background.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limits.prune();
        }
    }));
    tracing::info!("listening on {scheme}://{addr}");
    tracing::info!("web console: {scheme}://{addr}/console");
    Ok(RunningServer {
        addr,
        scheme,
        tls_sha256: material.map(|m| m.sha256),
        initial_password_file,
        handle,
        db,
        agents,
        notifier: services.notifier,
        task,
        background,
    })
}

/// Raise the soft open-file limit to the hard one: every agent's long poll
/// holds a connection, and the default soft limit (often 1024) would refuse
/// connections long before the machine runs out of anything. Logged either
/// way; systemd's `LimitNOFILE` sets the hard limit (docs/operations.md).
fn raise_nofile_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let before = getrlimit(Resource::Nofile);
        let (soft, hard) = (before.current, before.maximum);
        // `None` is unlimited; the soft limit never exceeds the hard one.
        if soft != hard {
            let raised = rustix::process::Rlimit {
                current: hard,
                maximum: hard,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => tracing::info!(
                    from = ?soft,
                    to = ?hard,
                    "raised the open-file limit (RLIMIT_NOFILE) to its hard limit"
                ),
                Err(e) => tracing::warn!(
                    soft = ?soft,
                    hard = ?hard,
                    error = %e,
                    "could not raise the open-file limit (RLIMIT_NOFILE)"
                ),
            }
        } else {
            tracing::info!(limit = ?soft, "open-file limit (RLIMIT_NOFILE) is already at its hard limit");
        }
    }
}

/// Stop accepting and drain: parked long polls and event streams end at
/// once (they do no work; waiting for them would hold every restart for the
/// whole grace), other requests get up to `grace` to finish.
fn begin_shutdown(handle: &Handle<SocketAddr>, notifier: &Notifier, grace: Duration) {
    notifier.drain();
    handle.graceful_shutdown(Some(grace));
}

/// Serve until SIGINT/SIGTERM, then shut down gracefully.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let grace = Duration::from_secs(cfg.shutdown_grace_seconds);
    // Register the handlers before anything is announced, so a signal that
    // arrives right after "listening on" is handled, not fatal.
    let signals = ShutdownSignals::register()?;
    let server = start(cfg).await?;
    let (handle, notifier) = (server.handle.clone(), server.notifier.clone());
    tokio::spawn(async move {
        signals.recv().await;
        tracing::info!(
            grace_s = grace.as_secs(),
            "shutting down: draining in-flight requests"
        );
        begin_shutdown(&handle, &notifier, grace);
    });
    server.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

struct ShutdownSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn recv(mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
