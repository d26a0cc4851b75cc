//! Heartbeats at the interval the server dictates (the first one right at
//! start), the connection state, and token rotation when the answer says
//! `rotate_token: true` (the new token is stored durably before it is used).

use std::sync::Arc;
use std::time::Duration;

use botmox_protocol::{HeartbeatRequest, HeartbeatResponse, Intervals};
use serde_json::Value;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::api::{AgentApi, CallError};
use super::state::{Connection, StateHandle};
use super::Stop;
use crate::config::secret_names;
use crate::retry::{Backoff, RetryPolicy};
use crate::secrets::SecretStore;

pub struct Heartbeater {
    pub api: Arc<AgentApi>,
    pub state: StateHandle,
    pub secrets: Arc<dyn SecretStore>,
    pub intervals: watch::Sender<Intervals>,
    /// Notified when a heartbeat succeeds after failures (wakes the poll loop).
    pub server_back: Arc<Notify>,
    pub metadata: Box<dyn Fn() -> Value + Send + Sync>,
    pub backoff: Backoff,
}

impl Heartbeater {
    /// The per-call budget of a heartbeat: the full budget while the server
    /// answers, a single try once heartbeats are failing (the caller's
    /// backoff is then the retry, so an outage sees one attempt per backoff
    /// step instead of a burst each time).
    pub fn budget(failures: u32) -> RetryPolicy {
        if failures == 0 {
            crate::http::budgets::heartbeat()
        } else {
            RetryPolicy::single()
        }
    }

    /// One heartbeat, then rotation if asked.
    pub async fn beat(
        &self,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
    ) -> Result<HeartbeatResponse, CallError> {
        let req = HeartbeatRequest {
            version: Some(crate::VERSION.to_string()),
            metadata: Some((self.metadata)()),
        };
        let resp = self.api.heartbeat(&req, policy, cancel).await?;
        let was = self.state.get().connection;
        self.state.heartbeat_ok();
        if was != Connection::Online {
            tracing::info!(
                event_name = "agent.connection.online",
                heartbeat_interval_s = resp.intervals.heartbeat_interval_s,
                poll_timeout_s = resp.intervals.poll_timeout_s,
                lease_s = resp.intervals.lease_s,
                "connected to the server"
            );
            // notify_one keeps a permit when the loop is not waiting right
            // now (e.g. inside a call), so the wake-up is never lost.
            self.server_back.notify_one();
        }
        self.intervals.send_replace(resp.intervals);
        if resp.rotate_token {
            self.rotate(cancel).await?;
        }
        Ok(resp)
    }

    /// Rotates the token. A failure to store the new token keeps the old one
    /// in use (it stays valid; the next heartbeat asks again).
    async fn rotate(&self, cancel: &CancellationToken) -> Result<(), CallError> {
        let r = match self.api.rotate_token(cancel).await {
            Ok(r) => r,
            Err(e) if e.is_fatal() || matches!(e, CallError::Cancelled) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "token rotation failed; retrying at the next heartbeat");
                return Ok(());
            }
        };
        crate::redact::register_secret(&r.agent_token);
        if let Err(e) = self.secrets.set(secret_names::AGENT_TOKEN, &r.agent_token) {
            tracing::error!(error = %e, "cannot store the rotated token; keeping the current one");
            self.state.error("SECRET_STORE_ERROR", &e.to_string());
            return Ok(());
        }
        self.api.set_token(r.agent_token);
        tracing::info!(
            event_name = "agent.token.rotated",
            expires_at = %r.agent_token_expires_at,
            "agent token rotated and stored"
        );
        Ok(())
    }

    /// Heartbeats until `stop` fires or a fatal answer comes back (which it
    /// records in `stop`). Failures back off (jittered, capped) and retry
    /// forever.
    pub async fn run(self, stop: Arc<Stop>) {
        let mut failures = 0u32;
        loop {
            let interval = Duration::from_secs(self.intervals.borrow().heartbeat_interval_s.max(1));
            let delay = match self.beat(&Self::budget(failures), &stop.token).await {
                Ok(resp) => {
                    failures = 0;
                    // the server's jittered delay (spreads a fleet that
                    // reconnected together), within the interval
                    resp.next_heartbeat_in()
                }
                Err(CallError::Cancelled) => return,
                Err(e) if e.is_fatal() => {
                    stop.fail(e);
                    return;
                }
                Err(e) => {
                    failures += 1;
                    let d = self
                        .backoff
                        .delay(failures)
                        .min(interval.max(self.backoff.base));
                    self.state.set_connection(Connection::Unreachable);
                    self.state.error(&e.code(), &e.to_string());
                    tracing::warn!(
                        event_name = "agent.heartbeat.retry",
                        error = %e,
                        failures,
                        retry_in_ms = d.as_millis() as u64,
                        "heartbeat failed; server unreachable, backing off and retrying"
                    );
                    d
                }
            };
            tokio::select! {
                _ = stop.token.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}
