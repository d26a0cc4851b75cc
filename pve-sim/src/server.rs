//! Starting the simulator and the handle tests use to control it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use serde::Serialize;

use crate::api::{self, AppState};
use crate::auth::{Authenticator, Credentials};
use crate::conn::KillableAcceptor;
use crate::error::SimError;
use crate::faults::Faults;
use crate::schema::{self, ApiSchema};
use crate::state::{SharedState, SimState, Task, Vm, VolumeInfo};
use crate::tls::SimCertificate;
use crate::violations::{Violation, ViolationLog};

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where storages keep their files; a temporary directory when `None`.
    pub data_dir: Option<PathBuf>,
    /// Node name.
    pub node: String,
    /// How long every task runs before it ends.
    pub task_duration: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            node: "pve".into(),
            task_duration: Duration::from_millis(300),
        }
    }
}

/// The JSON line the binary prints on start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StartLine {
    pub url: String,
    pub fingerprint: String,
    pub token_id: String,
    pub token_secret: String,
    pub username: String,
    pub password: String,
    pub node: String,
}

/// A running simulator. Dropping it stops the server.
pub struct PveSim {
    addr: SocketAddr,
    cert: SimCertificate,
    auth: Authenticator,
    node: String,
    state: SharedState,
    faults: Faults,
    violations: ViolationLog,
    schema: Arc<ApiSchema>,
    handle: axum_server::Handle<SocketAddr>,
    data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for PveSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PveSim")
            .field("url", &self.url())
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl PveSim {
    /// Starts a simulator on 127.0.0.1 with a free port and a temp data dir.
    pub async fn start() -> Result<Self, SimError> {
        Self::start_with(SimConfig::default()).await
    }

    /// Starts a simulator with `config`. Must be called inside a tokio runtime.
    pub async fn start_with(config: SimConfig) -> Result<Self, SimError> {
        if config.node.is_empty()
            || !config
                .node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(SimError::Config(format!(
                "invalid node name '{}'",
                config.node
            )));
        }
        let schema = schema::embedded()?;
        let (data_dir, tmp) = match config.data_dir {
            Some(dir) => (dir, None),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("pve-sim-")
                    .tempdir()
                    .map_err(|source| SimError::DataDir {
                        path: std::env::temp_dir().display().to_string(),
                        source,
                    })?;
                (tmp.path().to_path_buf(), Some(tmp))
            }
        };
        let sim_state = SimState::seeded(&config.node, data_dir.clone(), config.task_duration)
            .map_err(|source| SimError::DataDir {
                path: data_dir.display().to_string(),
                source,
            })?;
        let cert = SimCertificate::generate(&config.node)?;
        let tls = RustlsConfig::from_config(cert.server_config()?);
        let faults = Faults::default();
        let state = SharedState::new(sim_state, faults.clone());
        let auth = Authenticator::new(Credentials::generate());
        let violations = ViolationLog::default();
        let app = AppState {
            schema: schema.clone(),
            auth: auth.clone(),
            state: state.clone(),
            faults: faults.clone(),
            violations: violations.clone(),
            fingerprint: cert.fingerprint(),
        };
        let bind_err = |source| SimError::Bind {
            addr: config.listen.to_string(),
            source,
        };
        let listener = std::net::TcpListener::bind(config.listen).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp(listener)
            .map_err(bind_err)?
            .acceptor(RustlsAcceptor::new(tls).acceptor(KillableAcceptor))
            .handle(handle.clone());
        let service = api::router(app).into_make_service();
        tokio::spawn(async move {
            if let Err(e) = server.serve(service).await {
                tracing::error!(error = %e, "pve-sim server stopped");
            }
        });
        Ok(PveSim {
            addr,
            cert,
            auth,
            node: config.node,
            state,
            faults,
            violations,
            schema,
            handle,
            data_dir,
            _tmp: tmp,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT/api2/json`.
    pub fn api_url(&self) -> String {
        format!("{}/api2/json", self.url())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// SHA-256 fingerprint, `AB:CD:...`.
    pub fn fingerprint(&self) -> String {
        self.cert.fingerprint()
    }

    pub fn certificate_der(&self) -> &[u8] {
        self.cert.der()
    }

    pub fn certificate_pem(&self) -> &str {
        self.cert.pem()
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn username(&self) -> &str {
        &self.auth.credentials().username
    }

    pub fn password(&self) -> &str {
        &self.auth.credentials().password
    }

    /// `root@pam!botmox`.
    pub fn token_id(&self) -> &str {
        &self.auth.credentials().token_id
    }

    pub fn token_secret(&self) -> &str {
        &self.auth.credentials().token_secret
    }

    /// Value for the `Authorization` header: `PVEAPIToken=root@pam!botmox=SECRET`.
    pub fn token_header(&self) -> String {
        format!("PVEAPIToken={}={}", self.token_id(), self.token_secret())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn schema(&self) -> &ApiSchema {
        &self.schema
    }

    /// The line the binary prints on start.
    pub fn start_line(&self) -> StartLine {
        StartLine {
            url: self.url(),
            fingerprint: self.fingerprint(),
            token_id: self.token_id().into(),
            token_secret: self.token_secret().into(),
            username: self.username().into(),
            password: self.password().into(),
            node: self.node.clone(),
        }
    }

    /// Every schema violation recorded so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.violations.snapshot()
    }

    pub fn clear_violations(&self) {
        self.violations.clear();
    }

    /// Panics listing the violations, if any were recorded.
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        if !v.is_empty() {
            let list: Vec<String> = v.iter().map(ToString::to_string).collect();
            panic!("PVE schema violations:\n  {}", list.join("\n  "));
        }
    }

    /// Fault-injection controls.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Expires every ticket issued so far (clients must log in again).
    pub fn expire_tickets(&self) {
        self.auth.expire_tickets();
    }

    /// While held, tasks stay `running` after their duration; releasing
    /// lets them finish. Useful to assert in-progress state (locks, `running`).
    pub fn hold_tasks(&self, hold: bool) {
        self.state.hold_tasks(hold);
    }

    /// How long tasks of `task_type` run (`None`: every task without its
    /// own duration), e.g. `set_task_duration(Some("qmclone"), 2 s)`.
    pub fn set_task_duration(&self, task_type: Option<&str>, d: Duration) {
        self.state.set_task_duration(task_type, d);
    }

    /// How long a request waits for a VM's config file lock (held by a
    /// running task of that VM) before PVE's lock timeout (default 10 s).
    pub fn set_lock_timeout(&self, d: Duration) {
        self.state.lock().lock_timeout = d;
    }

    /// Runs `f` with exclusive access to the state (to inspect or seed it).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        f(&mut self.state.lock())
    }

    pub fn vm(&self, vmid: u32) -> Option<Vm> {
        self.state.lock().vms.get(&vmid).cloned()
    }

    pub fn vms(&self) -> Vec<Vm> {
        self.state.lock().vms.values().cloned().collect()
    }

    pub fn task(&self, upid: &str) -> Option<Task> {
        self.state.lock().tasks.get(upid).cloned()
    }

    pub fn tasks(&self) -> Vec<Task> {
        self.state.lock().tasks.values().cloned().collect()
    }

    /// Volumes of a storage (empty if it does not exist).
    pub fn volumes(&self, storage: &str) -> Vec<VolumeInfo> {
        self.state
            .lock()
            .storages
            .get(storage)
            .and_then(|s| s.list(None, None).ok())
            .unwrap_or_default()
    }

    /// Stops the server and waits briefly for connections to close.
    pub async fn shutdown(self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(1)));
    }
}

impl Drop for PveSim {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}
