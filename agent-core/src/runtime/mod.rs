//! The agent runtime loop (`botmox-agent run`), after `docs/protocol.md`:
//!
//! 1. recover: every in-progress record left by a crash becomes a `failed`
//!    `AGENT_RESTARTED` report in the outbox (no command is run twice, see
//!    [`journal`]);
//! 2. first heartbeat (retried forever with capped, jittered backoff), which
//!    gives the intervals the server dictates; flush the outbox;
//! 3. a heartbeat task ([`heartbeat`]) and the poll loop: while fewer than
//!    `max_concurrent_commands` commands run, long-poll `commands/next`;
//!    each command runs in its own task ([`runner`]) with its own lease
//!    renewal and journal record, and reports through the durable [`outbox`];
//! 4. `AGENT_REVOKED` (by code) or 401 from any call stops everything
//!    ([`RuntimeError::Revoked`], [`RuntimeError::Unauthorized`]); SIGTERM/
//!    SIGINT stop polling, let every running command finish (or cancel it
//!    after a grace period), wait for all of them and flush the outbox.
//!
//! Files live in `<config-dir>/runtime/`: `status.json` ([`state`]),
//! `inflight/` ([`journal`]), `outbox/` ([`outbox`]) and `agent.lock`
//! ([`lock`]: one runtime per config dir, held for the life of [`run`]).

pub mod api;
pub mod durable;
pub mod heartbeat;
pub mod journal;
pub mod lock;
pub mod outbox;
pub mod register;
pub mod runner;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use botmox_protocol::Intervals;
use serde_json::json;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{secret_names, ConfigStore};
use crate::executor::Targets;
use crate::http::ServerClient;
use crate::retry::{Backoff, RetryPolicy};
use crate::secrets::{self, SecretBackend};
use api::{AgentApi, CallError};
use journal::Journal;
use outbox::{Outbox, OutboxEntry};
use state::{Connection, RuntimeStatus, StateHandle};

/// Exit code of `botmox-agent run` when the agent was revoked.
pub const EXIT_REVOKED: u8 = 3;
/// Exit code when the server no longer accepts the token (401).
pub const EXIT_UNAUTHORIZED: u8 = 4;

pub const RUNTIME_DIR: &str = "runtime";

/// Commands run at once when neither `--max-concurrent-commands` nor
/// `max_concurrent_commands` in `config.toml` says otherwise.
pub const DEFAULT_MAX_CONCURRENT_COMMANDS: usize = 4;
/// The highest accepted limit (each running command holds a Proxmox
/// connection, a lease renewer and a journal record).
pub const MAX_CONCURRENT_COMMANDS_LIMIT: usize = 64;

pub fn runtime_dir(config_dir: &Path) -> PathBuf {
    config_dir.join(RUNTIME_DIR)
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("this agent is not paired ({0}): run `botmox-agent pair BUNDLE_OR_URL` first")]
    NotPaired(&'static str),
    #[error("AGENT_REVOKED: an administrator revoked this agent ({0}); it has stopped. Pair it again with a new pairing bundle: botmox-agent pair BUNDLE_OR_URL")]
    Revoked(String),
    #[error("UNAUTHORIZED: the server no longer accepts this agent's token ({0}); it has stopped. Pair it again: botmox-agent pair BUNDLE_OR_URL")]
    Unauthorized(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    #[error("agent state: {0}")]
    State(#[from] durable::DurableError),
    /// Another runtime holds `<config-dir>/runtime/agent.lock`.
    #[error("AGENT_ALREADY_RUNNING: another agent runtime (the agent service or the tray app) is already running on this config dir ({path}); stop it first, or use a different --config-dir")]
    AlreadyRunning { path: String },
    #[error("cannot take the runtime lock: {0}")]
    Lock(String),
    #[error("INSECURE_SERVER_URL: {0}")]
    InsecureServer(String),
}

impl RuntimeError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RuntimeError::Revoked(_) => EXIT_REVOKED,
            RuntimeError::Unauthorized(_) => EXIT_UNAUTHORIZED,
            _ => 1,
        }
    }
}

/// Why the loop is stopping: a shutdown request (the token) or a fatal
/// answer (recorded here, and the token is cancelled).
#[derive(Debug)]
pub struct Stop {
    pub token: CancellationToken,
    fatal: Mutex<Option<CallError>>,
}

impl Stop {
    pub fn new(token: CancellationToken) -> Self {
        Stop {
            token,
            fatal: Mutex::new(None),
        }
    }

    pub fn fail(&self, e: CallError) {
        let mut f = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() {
            *f = Some(e);
        }
        self.token.cancel();
    }

    pub fn fatal(&self) -> Option<CallError> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config_dir: PathBuf,
    pub backend: SecretBackend,
    /// A running command may finish for this long after SIGTERM.
    pub shutdown_grace: Duration,
    /// Loop-level backoff when the server is unreachable (capped at 30 s).
    pub backoff: Backoff,
    /// Where every status change is also published (the tray app keeps one
    /// sender across runtime restarts); `None`: a private channel.
    pub status_tx: Option<watch::Sender<Option<RuntimeStatus>>>,
    /// How many commands may run at once (`--max-concurrent-commands`);
    /// `None`: `max_concurrent_commands` of `config.toml`, else
    /// [`DEFAULT_MAX_CONCURRENT_COMMANDS`]. Clamped to
    /// 1..=[`MAX_CONCURRENT_COMMANDS_LIMIT`].
    pub max_concurrent_commands: Option<usize>,
}

/// The effective limit: the option, else the config, else the default,
/// clamped to 1..=[`MAX_CONCURRENT_COMMANDS_LIMIT`].
pub fn concurrency_limit(option: Option<usize>, config: Option<u32>) -> usize {
    option
        .or(config.map(|c| c as usize))
        .unwrap_or(DEFAULT_MAX_CONCURRENT_COMMANDS)
        .clamp(1, MAX_CONCURRENT_COMMANDS_LIMIT)
}

impl RunOptions {
    pub fn new(config_dir: PathBuf, backend: SecretBackend) -> Self {
        RunOptions {
            config_dir,
            backend,
            shutdown_grace: Duration::from_secs(20),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 0.2),
            status_tx: None,
            max_concurrent_commands: None,
        }
    }
}

/// Turns every in-progress record a crash left behind into an
/// `AGENT_RESTARTED` report (see [`journal`]): one per record, in the outbox
/// before the record is removed. Returns the affected command ids, oldest
/// first.
pub fn recover(journal: &Journal, outbox: &Outbox) -> Result<Vec<String>, durable::DurableError> {
    let mut ids = Vec::new();
    for rec in journal.load_all()? {
        recover_one(journal, outbox, &rec)?;
        ids.push(rec.command_id);
    }
    Ok(ids)
}

fn recover_one(
    journal: &Journal,
    outbox: &Outbox,
    rec: &journal::InFlight,
) -> Result<(), durable::DurableError> {
    if !outbox.contains(&rec.command_id, rec.attempt) {
        tracing::warn!(
            event_name = "agent.command.restarted",
            command_id = %rec.command_id,
            attempt = rec.attempt,
            "the agent stopped while running this command; reporting it failed (AGENT_RESTARTED), not running it again"
        );
        outbox.put(&OutboxEntry {
            command_id: rec.command_id.clone(),
            command_type: rec.command_type.clone(),
            report: runner::failed(
                rec.attempt,
                "AGENT_RESTARTED",
                "the agent stopped (crash, kill or reboot) while running this command; it was not run again",
            ),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })?;
    }
    journal.end(&rec.command_id, rec.attempt)
}

/// A poll that worked after failures: the server is reachable again (the
/// heartbeat says so too, at its next beat).
fn back_online(state: &StateHandle) {
    if state.get().connection == Connection::Unreachable {
        state.set_connection(Connection::Online);
    }
}

/// A command task that panicked: its journal record stays, so the next
/// start reports it `AGENT_RESTARTED` (it is not run again).
fn log_task_end(r: Result<(), tokio::task::JoinError>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "a command task failed; its in-progress record stays for the next start");
    }
}

async fn sleep_or(stop: &Stop, wake: &Notify, d: Duration) {
    tokio::select! {
        _ = stop.token.cancelled() => {}
        _ = wake.notified() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Runs the agent until `shutdown` fires (Ok) or a fatal answer (Err).
pub async fn run(opts: RunOptions, shutdown: CancellationToken) -> Result<(), RuntimeError> {
    let dir = &opts.config_dir;
    // One runtime per config dir, for as long as this function runs.
    let _lock = lock::acquire(&runtime_dir(dir)).map_err(|e| match e {
        lock::LockError::Held { path } => RuntimeError::AlreadyRunning { path },
        other => RuntimeError::Lock(other.to_string()),
    })?;
    let cfg = ConfigStore::new(dir).load()?;
    let server = cfg
        .server
        .clone()
        .filter(|s| s.agent_id.is_some())
        .ok_or(RuntimeError::NotPaired("no registered agent in the config"))?;
    // A hand-edited config gets the same rule as `pair`: no cleartext
    // http:// to a non-loopback server without the recorded consent.
    crate::pairing::check_transport(&server.url, server.allow_insecure_http)
        .map_err(|e| RuntimeError::InsecureServer(e.to_string()))?;
    let secrets = secrets::open_store(opts.backend, dir)?;
    let token = secrets
        .get(secret_names::AGENT_TOKEN)?
        .ok_or(RuntimeError::NotPaired(
            "no agent token in the secret store",
        ))?;
    let mut client = ServerClient::new(
        &server.url,
        server.cert_sha256.as_deref(),
        Duration::from_secs(30),
    )?;
    client.set_token(Some(token));
    let api = Arc::new(AgentApi::new(client));
    let targets = Arc::new(Targets::load(&cfg, secrets.as_ref(), dir)?);
    let rdir = runtime_dir(dir);
    durable::ensure_dir(&rdir)?;
    let state = match &opts.status_tx {
        Some(tx) => StateHandle::with_sender(&rdir, server.agent_id.clone(), tx.clone()),
        None => StateHandle::new(&rdir, server.agent_id.clone()),
    };
    let outbox = Outbox::new(&rdir);
    let journal = Journal::new(&rdir);
    for rec in journal.load_all()? {
        // shown in the recent-commands list as well as reported
        state.command_finished(state::RecentCommand {
            id: rec.command_id.clone(),
            command_type: rec.command_type.clone(),
            state: state::FinishedState::Failed,
            error_code: Some("AGENT_RESTARTED".into()),
            started_at: rec.started_at.clone(),
            finished_at: state::now(),
        });
    }
    recover(&journal, &outbox)?;
    let max_concurrent =
        concurrency_limit(opts.max_concurrent_commands, cfg.max_concurrent_commands);
    tracing::info!(
        event_name = "agent.runtime.started",
        server = %server.url,
        agent_id = server.agent_id.as_deref().unwrap_or(""),
        pinned = server.cert_sha256.is_some(),
        outbox = outbox.len(),
        max_concurrent_commands = max_concurrent,
        "agent runtime started"
    );

    let stop = Arc::new(Stop::new(shutdown.child_token()));
    let (iv_tx, iv_rx) = watch::channel(Intervals {
        heartbeat_interval_s: 30,
        poll_timeout_s: 50,
        lease_s: 120,
    });
    let server_back = Arc::new(Notify::new());
    let meta_state = state.clone();
    let meta_outbox = outbox.clone();
    let target_ids: Vec<String> = targets.list().iter().map(|t| t.config.id.clone()).collect();
    let hb = heartbeat::Heartbeater {
        api: api.clone(),
        state: state.clone(),
        secrets: secrets.clone(),
        intervals: iv_tx,
        server_back: server_back.clone(),
        metadata: Box::new(move || {
            let s = meta_state.get();
            json!({
                "targets": target_ids,
                // the oldest running command (readers from before concurrent commands)
                "running_command": s.current_command.map(|c| c.id),
                "running_commands": s.running_commands.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
                "max_concurrent_commands": max_concurrent,
                "outbox": meta_outbox.len(),
                "platform": register::platform(),
            })
        }),
        backoff: opts.backoff,
    };

    // First heartbeat: retried forever (capped backoff) until it works.
    let mut failures = 0u32;
    loop {
        match hb
            .beat(&heartbeat::Heartbeater::budget(failures), &stop.token)
            .await
        {
            Ok(_) => break,
            Err(CallError::Cancelled) => break,
            Err(e) if e.is_fatal() => {
                stop.fail(e);
                break;
            }
            Err(e) => {
                failures += 1;
                let d = opts.backoff.delay(failures);
                state.set_connection(Connection::Unreachable);
                state.error(&e.code(), &e.to_string());
                tracing::warn!(
                    event_name = "agent.heartbeat.retry",
                    error = %e,
                    failures,
                    retry_in_ms = d.as_millis() as u64,
                    "server unreachable; backing off and retrying"
                );
                sleep_or(&stop, &server_back, d).await;
            }
        }
    }

    let hb_task = (!stop.token.is_cancelled()).then(|| tokio::spawn(hb.run(stop.clone())));
    // The public key (secrets for this agent are sealed to it).
    let key_task = (!stop.token.is_cancelled()).then(|| {
        tokio::spawn(crate::vault::register_in_background(
            api.clone(),
            secrets.clone(),
            stop.token.clone(),
            opts.backoff,
        ))
    });
    let runner = Arc::new(runner::Runner {
        api: api.clone(),
        targets,
        outbox: outbox.clone(),
        journal,
        state: state.clone(),
        shutdown_grace: opts.shutdown_grace,
    });
    // One permit per running command: the loop polls only while one is free.
    let slots = Arc::new(Semaphore::new(max_concurrent));
    let mut running: JoinSet<()> = JoinSet::new();
    let mut failures = 0u32;
    while !stop.token.is_cancelled() {
        // Wait for a free slot (a command that ends frees one).
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // the semaphore is never closed
            },
            _ = stop.token.cancelled() => break,
        };
        // Collect the tasks that ended (their outcome is already handled).
        while let Some(r) = running.try_join_next() {
            log_task_end(r);
        }
        if !outbox.is_empty() {
            // After a failure the loop's backoff is the retry: one try each.
            let budget = if failures == 0 {
                crate::http::budgets::report()
            } else {
                RetryPolicy::single()
            };
            // Entries a running command is delivering itself are skipped.
            match outbox.flush(&api, &budget, &stop.token).await {
                Ok(_) => {}
                Err(CallError::Cancelled) => break,
                Err(e) if e.is_fatal() => {
                    stop.fail(e);
                    break;
                }
                Err(e) => {
                    failures += 1;
                    let d = opts.backoff.delay(failures);
                    tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "outbox flush failed; retrying");
                    state.error(&e.code(), &e.to_string());
                    sleep_or(&stop, &server_back, d).await;
                    continue;
                }
            }
        }
        let iv = *iv_rx.borrow();
        match api
            .next_command(Duration::from_secs(iv.poll_timeout_s), &stop.token)
            .await
        {
            Ok(Some(cmd)) => {
                failures = 0;
                back_online(&state);
                let runner = runner.clone();
                let stop = stop.clone();
                running.spawn(async move {
                    // the slot is free again when this task ends
                    let _permit = permit;
                    if let Err(e) = runner.run(cmd, iv.lease_s, &stop).await {
                        stop.fail(e);
                    }
                });
            }
            Ok(None) => {
                failures = 0;
                back_online(&state);
            }
            Err(CallError::Cancelled) => break,
            Err(e) if e.is_fatal() => stop.fail(e),
            Err(e) => {
                failures += 1;
                let d = opts.backoff.delay(failures);
                // With commands running, the poll is often the first call
                // to notice an outage (before the next heartbeat).
                state.set_connection(Connection::Unreachable);
                state.error(&e.code(), &e.to_string());
                tracing::warn!(
                    event_name = "agent.poll.retry",
                    error = %e,
                    failures,
                    retry_in_ms = d.as_millis() as u64,
                    "polling for commands failed; backing off and retrying"
                );
                sleep_or(&stop, &server_back, d).await;
            }
        }
    }
    // Every running command finishes (each runner lets it run for the
    // shutdown grace, then cancels it; none after a fatal answer) and puts
    // its final report in the outbox.
    if !running.is_empty() {
        tracing::info!(
            running = running.len(),
            "stopping: waiting for the running commands"
        );
    }
    while let Some(r) = running.join_next().await {
        log_task_end(r);
    }
    if let Some(t) = hb_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    if let Some(t) = key_task {
        // It ends when `stop` fires (it is cancelled by now).
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }

    match stop.fatal() {
        Some(CallError::Revoked(m)) => {
            state.update(|s| s.connection = Connection::Revoked);
            state.error("AGENT_REVOKED", &m);
            tracing::error!(
                event_name = "agent.revoked",
                "the agent was revoked; stopping"
            );
            Err(RuntimeError::Revoked(m))
        }
        Some(e) => {
            let m = e.to_string();
            state.update(|s| s.connection = Connection::Unauthorized);
            state.error(&e.code(), &m);
            tracing::error!(event_name = "agent.unauthorized", error = %m, "token refused; stopping");
            Err(RuntimeError::Unauthorized(m))
        }
        None => {
            // Graceful stop: one short attempt to deliver what is pending.
            if !outbox.is_empty() {
                let r = tokio::time::timeout(
                    Duration::from_secs(5),
                    outbox.flush(
                        &api,
                        &crate::http::budgets::final_flush(),
                        &CancellationToken::new(),
                    ),
                )
                .await;
                if !matches!(r, Ok(Ok(_))) {
                    tracing::warn!(
                        pending = outbox.len(),
                        "outbox not empty at shutdown; it is sent at the next start"
                    );
                }
            }
            state.update(|s| s.connection = Connection::Stopped);
            tracing::info!(event_name = "agent.runtime.stopped", "agent stopped");
            Ok(())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{AgentConfig, ServerConfig};

    /// A paired config whose server never answers (port 1), file secrets.
    pub(crate) fn unreachable_agent(dir: &Path) {
        ConfigStore::new(dir)
            .save(&AgentConfig {
                version: 1,
                secret_store: Some(SecretBackend::File),
                server: Some(ServerConfig {
                    url: "http://127.0.0.1:1".into(),
                    agent_id: Some("agent-lock-test".into()),
                    ..ServerConfig::default()
                }),
                ..AgentConfig::default()
            })
            .unwrap();
        secrets::open_store(SecretBackend::File, dir)
            .unwrap()
            .set(secret_names::AGENT_TOKEN, "bmxa_locktest0123456789")
            .unwrap();
    }

    fn opts(dir: &Path) -> RunOptions {
        let mut o = RunOptions::new(dir.to_path_buf(), SecretBackend::File);
        o.backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(200), 0.0);
        o
    }

    #[test]
    fn the_concurrency_limit_comes_from_the_flag_then_the_config() {
        assert_eq!(
            concurrency_limit(None, None),
            DEFAULT_MAX_CONCURRENT_COMMANDS
        );
        assert_eq!(concurrency_limit(None, Some(2)), 2);
        assert_eq!(concurrency_limit(Some(7), Some(2)), 7);
        assert_eq!(concurrency_limit(Some(0), None), 1);
        assert_eq!(
            concurrency_limit(None, Some(1000)),
            MAX_CONCURRENT_COMMANDS_LIMIT
        );
    }

    /// A crash with several commands in flight: every record becomes one
    /// `AGENT_RESTARTED` report (an existing final report is kept), and no
    /// record is left to run or report again.
    #[test]
    fn recover_reports_every_in_flight_command_once() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        let outbox = Outbox::new(dir.path());
        let rec = |id: &str, attempt: u32, at: &str| journal::InFlight {
            command_id: id.into(),
            command_type: "proxmox.wait-task".into(),
            attempt,
            started_at: at.into(),
        };
        journal
            .begin(&rec("c1", 1, "2026-01-01T00:00:01Z"))
            .unwrap();
        journal
            .begin(&rec("c2", 2, "2026-01-01T00:00:02Z"))
            .unwrap();
        journal
            .begin(&rec("c3", 1, "2026-01-01T00:00:03Z"))
            .unwrap();
        // c3 finished and its report is in the outbox, but the crash came
        // before its record was removed
        let done = OutboxEntry {
            command_id: "c3".into(),
            command_type: "proxmox.wait-task".into(),
            report: botmox_protocol::CommandReport {
                status: botmox_protocol::ReportedStatus::Succeeded,
                attempt: 1,
                result: Some(json!({"ok": true})),
                error_code: None,
                error_message: None,
                progress: None,
            },
            created_at: "2026-01-01T00:00:04Z".into(),
        };
        outbox.put(&done).unwrap();

        assert_eq!(recover(&journal, &outbox).unwrap(), ["c1", "c2", "c3"]);
        assert!(journal.load_all().unwrap().is_empty());
        let pending = outbox.pending();
        assert_eq!(pending.len(), 3);
        for (id, attempt) in [("c1", 1), ("c2", 2)] {
            let e = &pending.iter().find(|(_, e)| e.command_id == id).unwrap().1;
            assert_eq!(e.report.status, botmox_protocol::ReportedStatus::Failed);
            assert_eq!(e.report.attempt, attempt);
            assert_eq!(e.report.error_code.as_deref(), Some("AGENT_RESTARTED"));
        }
        let c3 = &pending
            .iter()
            .find(|(_, e)| e.command_id == "c3")
            .unwrap()
            .1;
        assert_eq!(c3.report.status, botmox_protocol::ReportedStatus::Succeeded);
        // a second start finds nothing left to recover
        assert!(recover(&journal, &outbox).unwrap().is_empty());
        assert_eq!(outbox.len(), 3);
    }

    #[tokio::test]
    async fn one_runtime_per_config_dir() {
        let dir = tempfile::tempdir().unwrap();
        unreachable_agent(dir.path());
        let tx = watch::Sender::new(None);
        let mut rx = tx.subscribe();
        let mut first_opts = opts(dir.path());
        first_opts.status_tx = Some(tx);
        let stop = CancellationToken::new();
        let first = tokio::spawn(run(first_opts, stop.clone()));
        // the first runtime publishes its status on the channel: unreachable
        let seen = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                rx.changed().await.unwrap();
                let c = rx.borrow().as_ref().map(|s| s.connection);
                if c == Some(Connection::Unreachable) {
                    return c;
                }
            }
        })
        .await
        .expect("the runtime reports unreachable");
        assert_eq!(seen, Some(Connection::Unreachable));
        assert!(lock::is_held(&runtime_dir(dir.path())));

        // a second runtime on the same dir refuses to start
        let second = run(opts(dir.path()), CancellationToken::new()).await;
        match second {
            Err(RuntimeError::AlreadyRunning { path }) => {
                assert!(path.ends_with(lock::LOCK_FILE), "{path}")
            }
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }

        // once the first stops, the lock is free again
        stop.cancel();
        first.await.unwrap().unwrap();
        assert!(!lock::is_held(&runtime_dir(dir.path())));
        let third = CancellationToken::new();
        third.cancel();
        run(opts(dir.path()), third).await.unwrap();
    }
}
