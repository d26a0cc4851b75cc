//! Admission control: at most `api_max_in_flight` requests are being worked
//! on at once. Beyond that the server sheds load at the door with 429
//! `SERVER_BUSY` and a **jittered** `Retry-After` (1 s plus a random share
//! of `busy_retry_spread_seconds`), so a crowd that arrived together — every
//! agent reconnecting after a restart — comes back spread out instead of
//! together. Agents obey `Retry-After` (agent-core `http.rs`).
//!
//! Not counted: liveness/readiness (monitoring must see a busy server as
//! alive), and a long poll once it is parked — `commands/next` holds its
//! permit only for its first claim attempt (see
//! `CommandsService::next_command`), since a parked poll does no work.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use crate::state::AppState;

/// The long poll: admitted by its handler, for the claim attempt only.
pub const LONG_POLL_PATH: &str = "/api/v1/vm-ops/commands/next";

pub struct Admission {
    permits: Arc<Semaphore>,
    spread_s: u64,
}

impl Admission {
    pub fn new(max_in_flight: usize, spread_s: u64) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight)),
            spread_s,
        }
    }

    /// A permit while one is free, else the `Retry-After` seconds to answer.
    pub fn try_enter(&self) -> Result<OwnedSemaphorePermit, u64> {
        self.permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| self.retry_after())
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
    match state.admission.try_enter() {
        Ok(permit) => {
            let resp = next.run(req).await;
            drop(permit);
            resp
        }
        Err(retry_after) => {
            metrics::counter!("botmox_requests_shed_total").increment(1);
            ApiError::server_busy(retry_after).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_run_out_and_come_back_with_jittered_retry_after() {
        let a = Admission::new(2, 10);
        let p1 = a.try_enter().unwrap();
        let _p2 = a.try_enter().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let s = a.try_enter().unwrap_err();
            assert!((1..=11).contains(&s), "{s}");
            seen.insert(s);
        }
        // spread, not one value for everyone
        assert!(seen.len() >= 8, "{seen:?}");
        drop(p1);
        assert!(a.try_enter().is_ok());
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
