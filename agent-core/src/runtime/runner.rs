//! Runs one claimed command (the runtime runs up to `max_concurrent_commands`
//! of these at once, each in its own task): records it as in progress (its
//! own journal record), reports `running`,
//! renews the lease every `lease_s / 3` in a separate task (so a slow
//! report never stalls the executor), aborts the executor when the server
//! answers `cancel_requested` (or the lease is lost, or the agent stops),
//! posts `log` output chunks, and hands the final report to the outbox.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use botmox_protocol::{Command, CommandReport, OutputChunk, OutputStream, ReportedStatus};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::api::{AgentApi, CallError};
use super::journal::{InFlight, Journal};
use super::outbox::{Delivery, Outbox, OutboxEntry};
use super::state::{CurrentCommand, FinishedState, RecentCommand, StateHandle};
use super::Stop;
use crate::executor::{execute, ExecContext, ExecError, Targets};
use crate::http::budgets;

/// The server's limit for `error_message`.
const MAX_MESSAGE_CHARS: usize = 4000;
/// The server's limit for `result` (1 MiB of JSON).
const MAX_RESULT_BYTES: usize = 1024 * 1024;

/// What the lease renewer learned.
#[derive(Debug, Default)]
struct LeaseSignals {
    cancel_requested: bool,
    lease_lost: Option<CallError>,
    fatal: Option<CallError>,
}

pub struct Runner {
    pub api: Arc<AgentApi>,
    pub targets: Arc<Targets>,
    pub outbox: Outbox,
    pub journal: Journal,
    pub state: StateHandle,
    /// How long a running command may continue after a shutdown request
    /// before it is cancelled.
    pub shutdown_grace: Duration,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn running(attempt: u32) -> CommandReport {
    CommandReport {
        status: ReportedStatus::Running,
        attempt,
        result: None,
        error_code: None,
        error_message: None,
        progress: None,
    }
}

pub(crate) fn failed(attempt: u32, code: &str, message: &str) -> CommandReport {
    CommandReport {
        status: ReportedStatus::Failed,
        attempt,
        result: None,
        error_code: Some(code.to_string()),
        error_message: Some(truncate(
            &crate::redact::redact_text(message),
            MAX_MESSAGE_CHARS,
        )),
        progress: None,
    }
}

/// The final report for an executor outcome.
pub fn final_report(
    attempt: u32,
    outcome: &Result<Value, ExecError>,
    cancel_requested: bool,
    stopped_by_agent: bool,
) -> CommandReport {
    match outcome {
        Ok(v) => {
            let size = v.to_string().len();
            if size > MAX_RESULT_BYTES {
                return failed(
                    attempt,
                    "RESULT_TOO_LARGE",
                    &format!("the result is {size} bytes of JSON; the limit is {MAX_RESULT_BYTES}"),
                );
            }
            CommandReport {
                status: ReportedStatus::Succeeded,
                attempt,
                result: Some(v.clone()),
                error_code: None,
                error_message: None,
                progress: None,
            }
        }
        Err(e) if e.code == "CANCELLED" && cancel_requested => CommandReport {
            status: ReportedStatus::Cancelled,
            attempt,
            result: None,
            error_code: Some("CANCELLED".into()),
            error_message: Some("cancelled on request; the executor was aborted".into()),
            progress: None,
        },
        Err(e) if e.code == "CANCELLED" && stopped_by_agent => failed(
            attempt,
            "AGENT_SHUTDOWN",
            "the agent was stopped while the command was running; the executor was aborted",
        ),
        Err(e) => failed(attempt, &e.code, &e.message),
    }
}

impl Runner {
    async fn output(&self, cmd: &Command, seq: u64, text: String, cancel: &CancellationToken) {
        let chunk = OutputChunk {
            seq,
            stream: OutputStream::Log,
            data: crate::redact::redact_text(&text),
        };
        if let Err(e) = self.api.append_output(&cmd.id, vec![chunk], cancel).await {
            tracing::warn!(command_id = %cmd.id, error = %e, "cannot send output");
        }
    }

    /// Runs `cmd`. Returns `Err` only for a fatal error (revoked/unauthorized).
    pub async fn run(&self, cmd: Command, lease_s: u64, stop: &Stop) -> Result<(), CallError> {
        let attempt = cmd.attempt;
        let started = Instant::now();
        let started_at = now();
        tracing::info!(
            event_name = "agent.command.started",
            command_id = %cmd.id,
            command_type = %cmd.command_type,
            attempt,
            "command claimed"
        );
        if let Err(e) = self.journal.begin(&InFlight {
            command_id: cmd.id.clone(),
            command_type: cmd.command_type.clone(),
            attempt,
            started_at: started_at.clone(),
        }) {
            // Without the record a crash could run it twice: refuse to run.
            tracing::error!(error = %e, "cannot record the command as in progress");
            let report = failed(
                attempt,
                "AGENT_STATE_ERROR",
                &format!("the agent cannot write its state: {e}"),
            );
            return self.finish(&cmd, &started_at, report, stop).await;
        }
        self.state.command_started(CurrentCommand {
            id: cmd.id.clone(),
            command_type: cmd.command_type.clone(),
            attempt,
            started_at: started_at.clone(),
        });

        let exec_cancel = CancellationToken::new();
        let signals = Arc::new(Mutex::new(LeaseSignals::default()));
        let renew_every = Duration::from_millis((lease_s * 1000 / 3).max(1000));
        // The first `running` report: marks the start, renews the lease and
        // may already carry `cancel_requested`.
        match self
            .api
            .report(
                &cmd.id,
                &running(attempt),
                &budgets::renew(renew_every),
                &stop.token,
            )
            .await
        {
            Ok(c) if c.cancel_requested => {
                signals
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .cancel_requested = true;
                exec_cancel.cancel();
            }
            Ok(_) => {}
            Err(e @ (CallError::LeaseLost(_) | CallError::InvalidTransition(_))) => {
                tracing::warn!(command_id = %cmd.id, error = %e, "lease lost before start; not running it");
                self.record(&cmd, &started_at, FinishedState::Failed, Some(e.code()));
                self.done(&cmd);
                return Ok(());
            }
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => {
                tracing::warn!(command_id = %cmd.id, error = %e, "running report failed; the renewer retries")
            }
        }
        self.output(
            &cmd,
            0,
            format!("{} started (attempt {attempt})", cmd.command_type),
            &stop.token,
        )
        .await;

        let renewer = {
            let api = self.api.clone();
            let signals = signals.clone();
            let exec_cancel = exec_cancel.clone();
            let id = cmd.id.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(renew_every).await;
                    let r = api
                        .report(
                            &id,
                            &running(attempt),
                            &budgets::renew(renew_every),
                            &CancellationToken::new(),
                        )
                        .await;
                    let mut s = signals.lock().unwrap_or_else(|e| e.into_inner());
                    match r {
                        Ok(c) => {
                            tracing::debug!(command_id = %id, "lease renewed");
                            if c.cancel_requested && !s.cancel_requested {
                                tracing::info!(command_id = %id, "cancel requested by the server");
                                s.cancel_requested = true;
                                exec_cancel.cancel();
                            }
                        }
                        Err(e @ (CallError::LeaseLost(_) | CallError::InvalidTransition(_))) => {
                            tracing::warn!(command_id = %id, error = %e, "lease lost; aborting");
                            s.lease_lost = Some(e);
                            exec_cancel.cancel();
                            return;
                        }
                        Err(e) if e.is_fatal() => {
                            s.fatal = Some(e);
                            exec_cancel.cancel();
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(command_id = %id, error = %e, "lease renewal failed; retrying")
                        }
                    }
                }
            })
        };

        let ctx = ExecContext::new(self.targets.clone(), exec_cancel.clone());
        let fut = execute(&cmd.command_type, cmd.payload.clone(), &ctx);
        tokio::pin!(fut);
        let mut stopped_by_agent = false;
        let outcome = tokio::select! {
            r = &mut fut => r,
            _ = stop.token.cancelled() => {
                let grace = if stop.fatal().is_some() { Duration::ZERO } else { self.shutdown_grace };
                tracing::info!(command_id = %cmd.id, grace_s = grace.as_secs(), "stopping: letting the command finish");
                match tokio::time::timeout(grace, &mut fut).await {
                    Ok(r) => r,
                    Err(_) => {
                        stopped_by_agent = true;
                        exec_cancel.cancel();
                        fut.await
                    }
                }
            }
        };
        renewer.abort();
        let signals = std::mem::take(&mut *signals.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(e) = signals.fatal {
            return Err(e);
        }
        if let Some(e) = signals.lease_lost {
            tracing::warn!(command_id = %cmd.id, error = %e, "result dropped: the lease was lost");
            self.record(&cmd, &started_at, FinishedState::Failed, Some(e.code()));
            self.done(&cmd);
            return Ok(());
        }
        let report = final_report(
            attempt,
            &outcome,
            signals.cancel_requested,
            stopped_by_agent,
        );
        let summary = match &outcome {
            Ok(_) => format!(
                "{} succeeded in {:.1} s",
                cmd.command_type,
                started.elapsed().as_secs_f64()
            ),
            Err(e) => format!(
                "{} ended after {:.1} s: {e}",
                cmd.command_type,
                started.elapsed().as_secs_f64()
            ),
        };
        self.output(&cmd, 1, summary, &stop.token).await;
        tracing::info!(
            event_name = "agent.command.finished",
            command_id = %cmd.id,
            status = ?report.status,
            error_code = report.error_code.as_deref().unwrap_or(""),
            duration_ms = started.elapsed().as_millis() as u64,
            "command finished"
        );
        self.finish(&cmd, &started_at, report, stop).await
    }

    /// Adds the command to the status's `recent_commands`.
    fn record(&self, cmd: &Command, started_at: &str, state: FinishedState, code: Option<String>) {
        self.state.command_finished(RecentCommand {
            id: cmd.id.clone(),
            command_type: cmd.command_type.clone(),
            state,
            error_code: code,
            started_at: started_at.to_string(),
            finished_at: now(),
        });
    }

    /// Removes this command's in-progress record and its running entry.
    fn done(&self, cmd: &Command) {
        if let Err(e) = self.journal.end(&cmd.id, cmd.attempt) {
            tracing::error!(command_id = %cmd.id, error = %e, "cannot clear the in-progress record");
        }
        self.state.command_ended(&cmd.id, cmd.attempt);
    }

    /// Outbox first (durable), then clear the in-progress record, then send.
    async fn finish(
        &self,
        cmd: &Command,
        started_at: &str,
        report: CommandReport,
        stop: &Stop,
    ) -> Result<(), CallError> {
        let state = match report.status {
            ReportedStatus::Succeeded => FinishedState::Succeeded,
            ReportedStatus::Cancelled => FinishedState::Cancelled,
            _ => FinishedState::Failed,
        };
        self.record(cmd, started_at, state, report.error_code.clone());
        let entry = OutboxEntry {
            command_id: cmd.id.clone(),
            command_type: cmd.command_type.clone(),
            report,
            created_at: now(),
        };
        // Claimed before it is written: the loop's flush leaves it to us.
        let _claim = self
            .outbox
            .claim(&self.outbox.path_of(&entry.command_id, entry.report.attempt));
        let path = match self.outbox.put(&entry) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!(command_id = %cmd.id, error = %e, "cannot write the outbox; sending directly");
                None
            }
        };
        self.done(cmd);
        let r = Outbox::deliver(
            &self.api,
            &entry,
            &crate::http::budgets::report(),
            &stop.token,
        )
        .await;
        match r {
            Ok(d) => {
                if let Delivery::Dropped(e) = &d {
                    tracing::warn!(command_id = %cmd.id, reason = %e, "final report dropped by the server");
                }
                if let Some(p) = path {
                    if let Err(e) = self.outbox.remove(&p) {
                        tracing::error!(error = %e, "cannot remove a delivered outbox entry");
                    }
                }
                Ok(())
            }
            Err(e) if e.is_fatal() => Err(e),
            Err(e) => {
                // Stays in the outbox; the loop flushes it later.
                tracing::warn!(command_id = %cmd.id, error = %e, "final report not delivered yet; kept in the outbox");
                self.state.error(&e.code(), &e.to_string());
                Ok(())
            }
        }
    }
}
