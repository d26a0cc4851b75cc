//! Runs the agent runtime inside a desktop app (the tray) and turns its
//! status into one [`AgentView`] for the UI, published on a watch channel.
//!
//! - In-process: [`crate::runtime::run`] on the app's config dir, holding
//!   the runtime lock. Pause cancels it gracefully (a running command may
//!   finish within the grace period) and records `paused = true` in the
//!   config, so the app starts paused next time; Resume starts it again.
//! - `AGENT_REVOKED` → state `revoked`, not restarted until the agent is
//!   paired again. Any other fatal exit (401, a missing token, a config or
//!   secret-store error) → state `error` and a retry with capped backoff.
//! - Mirror: when another process (the headless service) holds the runtime
//!   lock, nothing is started here; `status.json` is polled and shown, and
//!   Pause/Resume answer [`ErrorCode::ManagedByService`].
//! - [`Supervisor::reload`] (targets changed) restarts the in-process
//!   runtime once no command is running; [`Supervisor::paired`] restarts it
//!   right away with the new identity.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{url_host, Control, ControlError, ErrorCode};
use crate::config::AgentConfig;
use crate::retry::Backoff;
use crate::runtime::state::{
    self, Connection, CurrentCommand, LastError, RecentCommand, RuntimeStatus,
};
use crate::runtime::{self, lock, RuntimeError};

/// What the tray shows (the `data-state` values of the status view).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UiState {
    NotPaired,
    Connecting,
    Online,
    Unreachable,
    Revoked,
    Paused,
    Error,
}

impl UiState {
    pub const ALL: [UiState; 7] = [
        UiState::NotPaired,
        UiState::Connecting,
        UiState::Online,
        UiState::Unreachable,
        UiState::Revoked,
        UiState::Paused,
        UiState::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UiState::NotPaired => "not_paired",
            UiState::Connecting => "connecting",
            UiState::Online => "online",
            UiState::Unreachable => "unreachable",
            UiState::Revoked => "revoked",
            UiState::Paused => "paused",
            UiState::Error => "error",
        }
    }

    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            UiState::NotPaired => "Not paired",
            UiState::Connecting => "Connecting…",
            UiState::Online => "Online",
            UiState::Unreachable => "Server unreachable",
            UiState::Revoked => "Revoked",
            UiState::Paused => "Paused",
            UiState::Error => "Error",
        }
    }
}

/// In-process runtime, or mirror of a service's `status.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    InProcess,
    Mirror,
}

/// Everything the tray shows about the agent. No secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentView {
    pub state: UiState,
    /// `Online`, `Online — managed by the agent service`, …
    pub state_label: String,
    pub mode: Mode,
    pub managed_by_service: bool,
    pub paused: bool,
    pub can_pause: bool,
    pub can_resume: bool,
    pub server_url: Option<String>,
    pub server_host: Option<String>,
    pub agent_id: Option<String>,
    pub agent_name: Option<String>,
    pub last_heartbeat_at: Option<String>,
    /// The oldest running command (as before concurrent commands).
    pub current_command: Option<CurrentCommand>,
    /// Every running command, oldest first.
    pub running_commands: Vec<CurrentCommand>,
    /// Newest first, at most [`state::MAX_RECENT`].
    pub recent_commands: Vec<RecentCommand>,
    pub last_error: Option<LastError>,
    /// When the next start attempt happens (state `error`).
    pub next_retry_at: Option<String>,
    /// A hint for people, e.g. that the service picks up changes on restart.
    pub notice: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// How long a running command may finish after Pause/Quit.
    pub shutdown_grace: Duration,
    /// How often mirror mode re-reads `status.json`.
    pub mirror_poll: Duration,
    /// Backoff between restarts after an error exit (401, …).
    pub retry: Backoff,
    /// Passed to the runtime (tests use short ones).
    pub runtime_backoff: Option<Backoff>,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            shutdown_grace: Duration::from_secs(10),
            mirror_poll: Duration::from_secs(1),
            retry: Backoff::new(Duration::from_secs(5), Duration::from_secs(300), 0.2),
            runtime_backoff: None,
        }
    }
}

type Reply = oneshot::Sender<Result<(), ControlError>>;

#[derive(Debug)]
enum Cmd {
    Pause(Reply),
    Resume(Reply),
    /// Targets changed: restart once idle.
    Reload,
    /// A new identity: restart now (and leave `revoked`).
    Paired,
    Shutdown(oneshot::Sender<()>),
}

/// Handle to the supervisor task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Supervisor {
    control: Control,
    tx: mpsc::UnboundedSender<Cmd>,
    view: watch::Receiver<AgentView>,
}

/// The task's lifecycle phase (besides what the runtime reports).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    NotPaired,
    Starting,
    Running,
    Paused,
    Revoked,
    /// Waiting to retry after an error exit.
    Backoff {
        until: String,
    },
    Mirror,
    Stopped,
}

struct Task {
    control: Control,
    opts: SupervisorOptions,
    rx: mpsc::UnboundedReceiver<Cmd>,
    view_tx: watch::Sender<AgentView>,
    status_tx: watch::Sender<Option<RuntimeStatus>>,
    status_rx: watch::Receiver<Option<RuntimeStatus>>,
    phase: Phase,
    mode: Mode,
    /// An error of the supervisor itself (start failures).
    error: Option<LastError>,
    notice: Option<String>,
    failures: u32,
}

enum Wake {
    Cmd(Option<Cmd>),
    Status,
    Timer,
}

impl Supervisor {
    /// The handle and the task to spawn on a tokio runtime.
    pub fn new(
        control: Control,
        opts: SupervisorOptions,
    ) -> (Supervisor, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (status_tx, status_rx) = watch::channel(None);
        let initial = blank_view(&control);
        let (view_tx, view) = watch::channel(initial);
        let task = Task {
            control: control.clone(),
            opts,
            rx,
            view_tx,
            status_tx,
            status_rx,
            phase: Phase::Starting,
            mode: Mode::InProcess,
            error: None,
            notice: None,
            failures: 0,
        };
        (Supervisor { control, tx, view }, task.run())
    }

    pub fn control(&self) -> &Control {
        &self.control
    }

    /// The current view.
    pub fn view(&self) -> AgentView {
        self.view.borrow().clone()
    }

    /// Sees every view change.
    pub fn subscribe(&self) -> watch::Receiver<AgentView> {
        self.view.clone()
    }

    async fn ask(&self, make: impl FnOnce(Reply) -> Cmd) -> Result<AgentView, ControlError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())??;
        Ok(self.view())
    }

    /// Stops the runtime gracefully and records `paused = true`.
    pub async fn pause(&self) -> Result<AgentView, ControlError> {
        self.ask(Cmd::Pause).await
    }

    /// Records `paused = false` and starts the runtime.
    pub async fn resume(&self) -> Result<AgentView, ControlError> {
        self.ask(Cmd::Resume).await
    }

    /// Targets changed: the in-process runtime restarts once no command is
    /// running (a service is told to restart instead).
    pub fn reload(&self) {
        let _ = self.tx.send(Cmd::Reload);
    }

    /// The agent was paired (again): restart with the new identity.
    pub fn paired(&self) {
        let _ = self.tx.send(Cmd::Paired);
    }

    /// Stops the runtime gracefully and ends the task.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Waits until the view satisfies `f` (tests, scripted UIs).
    pub async fn wait_for(
        &self,
        f: impl Fn(&AgentView) -> bool,
        within: Duration,
    ) -> Result<AgentView, AgentView> {
        let mut rx = self.view.clone();
        let r = tokio::time::timeout(within, async {
            loop {
                {
                    let v = rx.borrow_and_update();
                    if f(&v) {
                        return v.clone();
                    }
                }
                if rx.changed().await.is_err() {
                    return rx.borrow().clone();
                }
            }
        })
        .await;
        match r {
            Ok(v) if f(&v) => Ok(v),
            Ok(v) => Err(v),
            Err(_) => Err(self.view()),
        }
    }
}

fn unavailable() -> ControlError {
    ControlError::new(ErrorCode::Unavailable, "the agent is shutting down")
}

fn managed() -> ControlError {
    ControlError::new(
        ErrorCode::ManagedByService,
        "the agent service on this computer runs the agent; stop or start it with the service \
         manager (systemctl / Services), not from this app",
    )
}

fn blank_view(control: &Control) -> AgentView {
    let cfg = control.load_config().unwrap_or_default();
    let server = cfg.server.clone();
    AgentView {
        state: UiState::Connecting,
        state_label: UiState::Connecting.label().into(),
        mode: Mode::InProcess,
        managed_by_service: false,
        paused: cfg.paused,
        can_pause: false,
        can_resume: false,
        server_host: server.as_ref().and_then(|s| url_host(&s.url)),
        server_url: server.as_ref().map(|s| s.url.clone()),
        agent_id: server.as_ref().and_then(|s| s.agent_id.clone()),
        agent_name: server.as_ref().and_then(|s| s.agent_name.clone()),
        last_heartbeat_at: None,
        current_command: None,
        running_commands: Vec::new(),
        recent_commands: Vec::new(),
        last_error: None,
        next_retry_at: None,
        notice: None,
    }
}

fn paired(cfg: &AgentConfig) -> bool {
    cfg.server.as_ref().is_some_and(|s| s.agent_id.is_some())
}

fn from_connection(c: Connection) -> UiState {
    match c {
        Connection::Starting | Connection::Stopped => UiState::Connecting,
        Connection::Online => UiState::Online,
        Connection::Unreachable => UiState::Unreachable,
        Connection::Revoked => UiState::Revoked,
        Connection::Unauthorized => UiState::Error,
    }
}

fn err(code: &str, message: impl Into<String>) -> LastError {
    tidy(LastError {
        code: code.into(),
        message: crate::redact::redact_text(&message.into()),
        at: state::now(),
    })
}

/// The runtime stores messages as `CODE: text` (their `Display`); the view
/// has the code separately, so `NETWORK_ERROR: NETWORK_ERROR: …` would repeat.
fn tidy(mut e: LastError) -> LastError {
    let prefix = format!("{}: ", e.code);
    while let Some(rest) = e.message.strip_prefix(&prefix) {
        e.message = rest.to_string();
    }
    e
}

impl Task {
    fn status(&self) -> Option<RuntimeStatus> {
        self.status_rx.borrow().clone()
    }

    /// Rebuilds and publishes the view (only when it changed).
    fn publish(&mut self) {
        let cfg = self.control.load_config().unwrap_or_default();
        let status = match self.mode {
            Mode::InProcess => self.status(),
            Mode::Mirror => mirror_status(&self.control),
        };
        let mut v = blank_view(&self.control);
        v.mode = self.mode;
        v.managed_by_service = self.mode == Mode::Mirror;
        v.notice = self.notice.clone();
        if let Some(s) = &status {
            v.last_heartbeat_at = s.last_heartbeat_at.clone();
            v.current_command = s.current_command.clone();
            v.running_commands = s.running_commands.clone();
            v.recent_commands = s.recent_commands.clone();
            v.last_error = s.last_error.clone().map(tidy);
        }
        if self.error.is_some() {
            v.last_error = self.error.clone();
        }
        v.state = if !paired(&cfg) {
            UiState::NotPaired
        } else {
            match (&self.phase, self.mode) {
                (_, Mode::Mirror) => match &status {
                    None => UiState::Connecting,
                    Some(s) if !state::process_alive(s.pid).unwrap_or(true) => {
                        if s.connection == Connection::Revoked {
                            UiState::Revoked
                        } else {
                            if v.last_error.is_none() {
                                v.last_error = Some(err(
                                    "AGENT_SERVICE_STOPPED",
                                    "the agent service is not running; start it, or quit the \
                                     service and restart this app to run the agent here",
                                ));
                            }
                            UiState::Error
                        }
                    }
                    Some(s) => from_connection(s.connection),
                },
                (Phase::NotPaired, _) => UiState::NotPaired,
                (Phase::Paused, _) => UiState::Paused,
                (Phase::Revoked, _) => UiState::Revoked,
                (Phase::Backoff { until }, _) => {
                    v.next_retry_at = Some(until.clone());
                    UiState::Error
                }
                (Phase::Starting, _) | (Phase::Stopped, _) | (Phase::Mirror, _) => {
                    UiState::Connecting
                }
                (Phase::Running, _) => status
                    .as_ref()
                    .map(|s| from_connection(s.connection))
                    .unwrap_or(UiState::Connecting),
            }
        };
        v.paused = cfg.paused && self.mode == Mode::InProcess;
        v.can_pause = self.mode == Mode::InProcess
            && matches!(
                v.state,
                UiState::Connecting | UiState::Online | UiState::Unreachable | UiState::Error
            )
            && self.phase != Phase::Stopped;
        v.can_resume = self.mode == Mode::InProcess && v.state == UiState::Paused;
        v.state_label = if self.mode == Mode::Mirror {
            format!("{} — managed by the agent service", v.state.label())
        } else {
            v.state.label().to_string()
        };
        self.view_tx.send_if_modified(|old| {
            if *old == v {
                false
            } else {
                *old = v;
                true
            }
        });
    }

    async fn run(mut self) {
        loop {
            match self.mode {
                Mode::Mirror => {
                    self.mirror().await;
                    break;
                }
                Mode::InProcess => {
                    if !self.step().await {
                        break;
                    }
                }
            }
        }
        self.phase = Phase::Stopped;
        self.publish();
        tracing::info!(
            event_name = "agent.supervisor.stopped",
            "agent supervisor stopped"
        );
    }

    /// Waits for a command, a status change or the timer.
    async fn wake(&mut self, timer: Option<Duration>) -> Wake {
        let sleep = tokio::time::sleep(timer.unwrap_or(Duration::from_secs(3600)));
        tokio::pin!(sleep);
        tokio::select! {
            c = self.rx.recv() => Wake::Cmd(c),
            r = self.status_rx.changed() => {
                if r.is_err() {
                    // cannot happen: the task owns a sender
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Wake::Status
            }
            _ = &mut sleep, if timer.is_some() => Wake::Timer,
        }
    }

    /// One in-process decision; false when the task should end.
    async fn step(&mut self) -> bool {
        let cfg = match self.control.load_config() {
            Ok(c) => c,
            Err(e) => {
                self.error = Some(err(e.code.as_str(), e.message));
                return self.backoff().await;
            }
        };
        if !paired(&cfg) {
            self.phase = Phase::NotPaired;
            return self.idle().await;
        }
        if cfg.paused {
            self.phase = Phase::Paused;
            return self.idle().await;
        }
        // revoked, or the token is gone: wait until paired again
        if matches!(self.phase, Phase::Revoked | Phase::NotPaired) {
            return self.idle().await;
        }
        // A service already runs this config dir: mirror it.
        if lock::is_held(&self.control.runtime_dir()) {
            self.enter_mirror();
            return true;
        }
        self.run_once().await
    }

    fn enter_mirror(&mut self) {
        tracing::info!(
            event_name = "agent.supervisor.mirror",
            "another process runs the agent on this config dir; showing its status"
        );
        self.mode = Mode::Mirror;
        self.phase = Phase::Mirror;
        self.error = None;
        self.publish();
    }

    /// Not running (not paired, paused, revoked): wait for a command.
    async fn idle(&mut self) -> bool {
        self.publish();
        loop {
            match self.wake(None).await {
                Wake::Status | Wake::Timer => self.publish(),
                Wake::Cmd(None) => return false,
                Wake::Cmd(Some(cmd)) => match cmd {
                    Cmd::Shutdown(done) => {
                        let _ = done.send(());
                        return false;
                    }
                    Cmd::Pause(reply) => {
                        let r = self.control.set_paused(true);
                        if r.is_ok() && self.phase != Phase::NotPaired {
                            self.phase = Phase::Paused;
                        }
                        let _ = reply.send(r);
                        self.publish();
                    }
                    Cmd::Resume(reply) => {
                        let r = self.control.set_paused(false);
                        let ok = r.is_ok();
                        let _ = reply.send(r);
                        if ok && self.phase == Phase::Paused {
                            self.phase = Phase::Starting;
                            return true;
                        }
                        self.publish();
                    }
                    Cmd::Reload => {
                        // config changed; paused/revoked stay as they are,
                        // a pairing made elsewhere (CLI) is picked up
                        if self.phase == Phase::NotPaired {
                            self.phase = Phase::Starting;
                            return true;
                        }
                        self.publish();
                    }
                    Cmd::Paired => {
                        self.phase = Phase::Starting;
                        self.error = None;
                        self.failures = 0;
                        return true;
                    }
                },
            }
        }
    }

    /// Waits out the retry delay after an error exit.
    async fn backoff(&mut self) -> bool {
        self.failures += 1;
        let d = self.opts.retry.delay(self.failures);
        let until = chrono::Utc::now()
            + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(5));
        self.phase = Phase::Backoff {
            until: until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        tracing::warn!(
            event_name = "agent.supervisor.retry",
            retry_in_ms = d.as_millis() as u64,
            failures = self.failures,
            "the agent stopped with an error; retrying"
        );
        self.publish();
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.wake(Some(left)).await {
                Wake::Timer => {
                    self.phase = Phase::Starting;
                    return true;
                }
                Wake::Status => self.publish(),
                Wake::Cmd(None) => return false,
                Wake::Cmd(Some(cmd)) => match cmd {
                    Cmd::Shutdown(done) => {
                        let _ = done.send(());
                        return false;
                    }
                    Cmd::Pause(reply) => {
                        let r = self.control.set_paused(true);
                        let ok = r.is_ok();
                        let _ = reply.send(r);
                        if ok {
                            self.phase = Phase::Paused;
                            self.error = None;
                            return true;
                        }
                    }
                    Cmd::Resume(reply) => {
                        let _ = reply.send(self.control.set_paused(false));
                        self.phase = Phase::Starting;
                        return true;
                    }
                    Cmd::Reload | Cmd::Paired => {
                        self.phase = Phase::Starting;
                        self.error = None;
                        return true;
                    }
                },
            }
        }
    }

    /// Runs the runtime until it ends or is stopped; false to end the task.
    async fn run_once(&mut self) -> bool {
        let token = CancellationToken::new();
        let mut opts = self.control.run_options();
        opts.status_tx = Some(self.status_tx.clone());
        opts.shutdown_grace = self.opts.shutdown_grace;
        if let Some(b) = self.opts.runtime_backoff {
            opts.backoff = b;
        }
        self.status_tx.send_replace(None);
        let mut handle: JoinHandle<Result<(), RuntimeError>> =
            tokio::spawn(runtime::run(opts, token.clone()));
        self.phase = Phase::Running;
        self.notice = None;
        self.publish();
        let mut reload_pending = false;
        let mut stop_reason: Option<Stop> = None;
        let result = loop {
            tokio::select! {
                r = &mut handle => break r,
                c = self.rx.recv() => match c {
                    None => { stop_reason = Some(Stop::Exit(None)); token.cancel(); }
                    Some(Cmd::Shutdown(done)) => { stop_reason = Some(Stop::Exit(Some(done))); token.cancel(); }
                    Some(Cmd::Pause(reply)) => match self.control.set_paused(true) {
                        Ok(()) => { stop_reason = Some(Stop::Pause(reply)); token.cancel(); }
                        Err(e) => { let _ = reply.send(Err(e)); }
                    },
                    Some(Cmd::Resume(reply)) => { let _ = reply.send(Ok(())); }
                    Some(Cmd::Paired) => { stop_reason = Some(Stop::Restart); token.cancel(); }
                    Some(Cmd::Reload) => reload_pending = true,
                },
                _ = self.status_rx.changed() => self.publish(),
            }
            if reload_pending && stop_reason.is_none() {
                let idle = self
                    .status()
                    .is_none_or(|s| s.current_command.is_none() && s.running_commands.is_empty());
                if idle {
                    stop_reason = Some(Stop::Restart);
                    token.cancel();
                } else {
                    self.notice = Some(
                        "settings changed: the agent restarts to apply them when the running command ends".into(),
                    );
                    self.publish();
                }
            }
        };
        let result = result.unwrap_or_else(|e| {
            Err(RuntimeError::Lock(format!(
                "the agent runtime task failed: {e}"
            )))
        });
        self.notice = None;
        match stop_reason {
            Some(Stop::Exit(done)) => {
                if let Some(d) = done {
                    let _ = d.send(());
                }
                return false;
            }
            Some(Stop::Pause(reply)) => {
                self.phase = Phase::Paused;
                self.error = None;
                let _ = reply.send(Ok(()));
                tracing::info!(event_name = "agent.paused", "agent paused");
                return true;
            }
            Some(Stop::Restart) => {
                self.phase = Phase::Starting;
                self.error = None;
                self.failures = 0;
                return true;
            }
            None => {}
        }
        match result {
            Ok(()) => {
                // stopped without being asked (cannot happen today): start again
                self.phase = Phase::Starting;
                true
            }
            Err(RuntimeError::Revoked(m)) => {
                tracing::error!(event_name = "agent.revoked", "agent revoked; pair it again");
                self.phase = Phase::Revoked;
                self.error = Some(err("AGENT_REVOKED", m));
                true
            }
            Err(RuntimeError::AlreadyRunning { .. }) => {
                self.enter_mirror();
                true
            }
            Err(RuntimeError::NotPaired(why)) => {
                // e.g. the token is gone from the secret store: pair again
                self.error = Some(err(
                    "NOT_PAIRED",
                    format!("the agent cannot start ({why}); pair it again"),
                ));
                self.phase = Phase::NotPaired;
                true
            }
            Err(RuntimeError::Unauthorized(m)) => {
                // not revoked: the token may be rotated or the server
                // restored from a backup; keep trying (with backoff)
                self.error = Some(err(
                    "UNAUTHORIZED",
                    format!(
                        "the server refused this agent's token ({m}); retrying. If this \
                         persists, pair the agent again"
                    ),
                ));
                self.backoff().await
            }
            Err(e) => {
                let code = match &e {
                    RuntimeError::Secret(_) => "SECRET_STORE_ERROR",
                    RuntimeError::Config(_) => "CONFIG_ERROR",
                    _ => "AGENT_ERROR",
                };
                self.error = Some(err(code, e.to_string()));
                self.backoff().await
            }
        }
    }

    /// Mirror mode: show the service's `status.json` until shutdown.
    async fn mirror(&mut self) {
        self.publish();
        loop {
            match self.wake(Some(self.opts.mirror_poll)).await {
                Wake::Timer | Wake::Status => self.publish(),
                Wake::Cmd(None) => return,
                Wake::Cmd(Some(cmd)) => match cmd {
                    Cmd::Shutdown(done) => {
                        let _ = done.send(());
                        return;
                    }
                    Cmd::Pause(reply) | Cmd::Resume(reply) => {
                        let _ = reply.send(Err(managed()));
                    }
                    Cmd::Reload | Cmd::Paired => {
                        self.notice = Some(
                            "saved: the agent service applies the change when it restarts".into(),
                        );
                        self.publish();
                    }
                },
            }
        }
    }
}

enum Stop {
    Exit(Option<oneshot::Sender<()>>),
    Pause(Reply),
    Restart,
}

/// The service's last status (mirror mode).
fn mirror_status(control: &Control) -> Option<RuntimeStatus> {
    crate::runtime::durable::read_json(&control.runtime_dir().join(state::STATUS_FILE))
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretBackend;

    fn control(dir: &std::path::Path) -> Control {
        Control::with_paths(
            dir.to_path_buf(),
            dir.join("logs"),
            Some(SecretBackend::File),
        )
    }

    fn fast() -> SupervisorOptions {
        SupervisorOptions {
            shutdown_grace: Duration::from_secs(1),
            mirror_poll: Duration::from_millis(100),
            retry: Backoff::new(Duration::from_millis(100), Duration::from_millis(200), 0.0),
            runtime_backoff: Some(Backoff::new(
                Duration::from_millis(100),
                Duration::from_millis(200),
                0.0,
            )),
        }
    }

    const WAIT: Duration = Duration::from_secs(20);

    #[test]
    fn error_codes_are_not_repeated_in_messages() {
        let e = err("NETWORK_ERROR", "NETWORK_ERROR: error sending request");
        assert_eq!(e.message, "error sending request");
        assert_eq!(err("X", "other: text").message, "other: text");
    }

    #[tokio::test]
    async fn not_paired_then_mirror_of_a_service() {
        let dir = tempfile::tempdir().unwrap();
        let (sup, task) = Supervisor::new(control(dir.path()), fast());
        let t = tokio::spawn(task);
        let v = sup
            .wait_for(|v| v.state == UiState::NotPaired, WAIT)
            .await
            .unwrap();
        assert!(!v.can_pause && !v.can_resume);
        sup.shutdown().await;
        t.await.unwrap();

        // a "service" holds the lock and writes status.json: mirror it
        crate::runtime::tests::unreachable_agent(dir.path());
        let rdir = crate::runtime::runtime_dir(dir.path());
        let _service_lock = lock::acquire(&rdir).unwrap();
        let svc = state::StateHandle::new(&rdir, Some("agent-lock-test".into()));
        svc.heartbeat_ok();
        let (sup, task) = Supervisor::new(control(dir.path()), fast());
        let t = tokio::spawn(task);
        let v = sup
            .wait_for(
                |v| v.mode == Mode::Mirror && v.state == UiState::Online,
                WAIT,
            )
            .await
            .unwrap();
        assert!(v.managed_by_service);
        assert!(
            v.state_label.contains("managed by the agent service"),
            "{v:?}"
        );
        assert!(!v.can_pause && !v.can_resume);
        assert_eq!(
            sup.pause().await.unwrap_err().code,
            ErrorCode::ManagedByService
        );
        // the service's changes show up (polled)
        svc.set_connection(Connection::Unreachable);
        sup.wait_for(|v| v.state == UiState::Unreachable, WAIT)
            .await
            .unwrap();
        sup.reload();
        let v = sup.wait_for(|v| v.notice.is_some(), WAIT).await.unwrap();
        assert!(v.notice.unwrap().contains("restarts"));
        sup.shutdown().await;
        t.await.unwrap();
    }

    #[tokio::test]
    async fn pause_is_persisted_and_resume_restarts() {
        let dir = tempfile::tempdir().unwrap();
        crate::runtime::tests::unreachable_agent(dir.path());
        let c = control(dir.path());
        let (sup, task) = Supervisor::new(c.clone(), fast());
        let t = tokio::spawn(task);
        let v = sup
            .wait_for(|v| v.state == UiState::Unreachable, WAIT)
            .await
            .unwrap();
        assert_eq!(v.mode, Mode::InProcess);
        assert!(v.can_pause);
        assert!(v.last_error.is_some());
        let v = sup.pause().await.unwrap();
        assert_eq!(v.state, UiState::Paused);
        assert!(v.can_resume && v.paused);
        assert!(c.load_config().unwrap().paused);
        // the runtime really stopped: its lock is free
        assert!(!lock::is_held(&c.runtime_dir()));
        sup.shutdown().await;
        t.await.unwrap();

        // a restart of the app starts paused
        let (sup, task) = Supervisor::new(c.clone(), fast());
        let t = tokio::spawn(task);
        sup.wait_for(|v| v.state == UiState::Paused, WAIT)
            .await
            .unwrap();
        let v = sup.resume().await.unwrap();
        assert_ne!(v.state, UiState::Paused);
        assert!(!c.load_config().unwrap().paused);
        sup.wait_for(|v| v.state == UiState::Unreachable, WAIT)
            .await
            .unwrap();
        assert!(lock::is_held(&c.runtime_dir()));
        sup.shutdown().await;
        t.await.unwrap();
        assert!(!lock::is_held(&c.runtime_dir()));
    }
}
