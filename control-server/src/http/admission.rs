//! Admission control: at most `api_max_in_flight` requests of people and
//! integrations, and at most `agent_max_in_flight` requests of agents, are
//! being worked on at once. A request over its budget waits for a place, in
//! order of arrival, for up to `busy_queue_ms` (a burst that drains quickly
//! is absorbed); if none frees up in time the server sheds it with 429
//! `SERVER_BUSY` and a **jittered** `Retry-After` (1 s plus a random share
//! of `busy_retry_spread_seconds`), so a crowd that arrived together —
//! every agent reconnecting after a restart — comes back spread out instead
//! of together. Agents obey `Retry-After` (agent-core `http.rs`).
//!
//! The two budgets are separate so that a fleet of agents can never take
//! every place from the admin who is dispatching to it (a reconnect storm
//! of 15,000 agents is shed without the console noticing). A request is an
//! agent's when it carries an agent token (`bmxa_…`) or registers one.
//!
//! Not counted: liveness/readiness (monitoring must see a busy server as
//! alive), and a long poll once it is parked — `commands/next` holds its
//! permit only for its first claim attempt (see
//! `CommandsService::next_command`), since a parked poll does no work.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use crate::state::AppState;

/// The long poll: admitted by its handler, for the claim attempt only.
pub const LONG_POLL_PATH: &str = "/api/v1/vm-ops/commands/next";
/// Registration with a pairing code: the first request of a new agent.
const REGISTER_PATH: &str = "/api/v1/agents/register";

/// Whose place a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// People, API tokens, the console.
    Api,
    /// Agents: heartbeats, polls, reports, output, registration.
    Agents,
}

impl Budget {
    pub fn of(method: &Method, path: &str, headers: &HeaderMap) -> Self {
        let agent_token = crate::auth::bearer_from_headers(headers)
            .is_some_and(|t| t.starts_with(botmox_protocol::AGENT_TOKEN_PREFIX));
        if agent_token || (method == Method::POST && path == REGISTER_PATH) {
            Budget::Agents
        } else {
            Budget::Api
        }
    }
}

pub struct Admission {
    api: Arc<Semaphore>,
    agents: Arc<Semaphore>,
    queue_wait: Duration,
    spread_s: u64,
}

impl Admission {
    pub fn new(
        api_max_in_flight: usize,
        agent_max_in_flight: usize,
        queue_wait: Duration,
        spread_s: u64,
    ) -> Self {
        Self {
            api: Arc::new(Semaphore::new(api_max_in_flight)),
            agents: Arc::new(Semaphore::new(agent_max_in_flight)),
            queue_wait,
            spread_s,
        }
    }

    /// A permit of `budget`, waiting up to the queue wait for one to free
    /// up; else the `Retry-After` seconds to answer.
    pub async fn enter(&self, budget: Budget) -> Result<OwnedSemaphorePermit, u64> {
        let permits = match budget {
            Budget::Api => &self.api,
            Budget::Agents => &self.agents,
        };
        if let Ok(p) = permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        match tokio::time::timeout(self.queue_wait, permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            // timed out (the semaphore is never closed)
            _ => Err(self.retry_after()),
        }
    }

    /// 1 s plus a uniform share of the spread.
    fn retry_after(&self) -> u64 {
        1 + rand::rng().random_range(0..=self.spread_s)
    }
}

fn exempt(method: &Method, path: &str) -> bool {
    method == Method::OPTIONS
        || path.starts_with("/api/v1/health")
        || (method == Method::GET && path == LONG_POLL_PATH)
}

/// The middleware: admits or answers 429 `SERVER_BUSY`.
pub async fn admit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if exempt(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let budget = Budget::of(req.method(), req.uri().path(), req.headers());
    match state.admission.enter(budget).await {
        Ok(permit) => {
            let resp = next.run(req).await;
            drop(permit);
            resp
        }
        Err(retry_after) => {
            let label = match budget {
                Budget::Api => "api",
                Budget::Agents => "agents",
            };
            metrics::counter!("botmox_requests_shed_total", "budget" => label).increment(1);
            ApiError::server_busy(retry_after).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_run_out_and_come_back_with_jittered_retry_after() {
        let a = Admission::new(2, 1, Duration::ZERO, 10);
        let p1 = a.enter(Budget::Api).await.unwrap();
        let _p2 = a.enter(Budget::Api).await.unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let s = a.enter(Budget::Api).await.unwrap_err();
            assert!((1..=11).contains(&s), "{s}");
            seen.insert(s);
        }
        // spread, not one value for everyone
        assert!(seen.len() >= 8, "{seen:?}");
        drop(p1);
        assert!(a.enter(Budget::Api).await.is_ok());
    }

    #[tokio::test]
    async fn a_request_over_the_limit_waits_for_a_place_then_is_shed() {
        let a = Arc::new(Admission::new(1, 1, Duration::from_millis(500), 0));
        let held = a.enter(Budget::Agents).await.unwrap();
        // a place that frees up within the queue wait is taken
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.enter(Budget::Agents).await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "waits while the place is held");
        drop(held);
        assert!(waiter.await.unwrap(), "admitted once the place was free");
        // none frees up: shed after the wait, not before
        let _held = a.enter(Budget::Agents).await.unwrap();
        let t = tokio::time::Instant::now();
        assert_eq!(a.enter(Budget::Agents).await.unwrap_err(), 1);
        assert!(
            t.elapsed() >= Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn the_budgets_are_separate() {
        let a = Admission::new(1, 1, Duration::ZERO, 0);
        let _agent = a.enter(Budget::Agents).await.unwrap();
        assert_eq!(a.enter(Budget::Agents).await.unwrap_err(), 1);
        let _user = a.enter(Budget::Api).await.unwrap();
        assert!(a.enter(Budget::Api).await.is_err());
    }

    #[test]
    fn agent_requests_are_told_by_their_token_or_registration() {
        let mut h = HeaderMap::new();
        let get = Method::GET;
        assert_eq!(Budget::of(&get, "/api/v1/agents", &h), Budget::Api);
        h.insert("authorization", "Bearer bmxt_abc".parse().unwrap());
        assert_eq!(Budget::of(&get, "/api/v1/agents", &h), Budget::Api);
        let agent = format!("Bearer {}abc", botmox_protocol::AGENT_TOKEN_PREFIX);
        h.insert("authorization", agent.parse().unwrap());
        assert_eq!(
            Budget::of(&Method::POST, "/api/v1/agents/heartbeat", &h),
            Budget::Agents
        );
        let none = HeaderMap::new();
        assert_eq!(
            Budget::of(&Method::POST, REGISTER_PATH, &none),
            Budget::Agents
        );
        assert_eq!(Budget::of(&get, REGISTER_PATH, &none), Budget::Api);
    }

    #[test]
    fn health_and_the_parked_long_poll_are_exempt() {
        assert!(exempt(&Method::GET, "/api/v1/health/live"));
        assert!(exempt(&Method::GET, LONG_POLL_PATH));
        assert!(!exempt(&Method::POST, LONG_POLL_PATH));
        assert!(!exempt(&Method::POST, "/api/v1/agents/heartbeat"));
        assert!(!exempt(&Method::GET, "/console/"));
    }
}
