//! Per-caller request budgets (GCRA via `governor`), answered with
//! 429 `RATE_LIMITED` and `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How long a verified token keeps its own budget without being seen.
const KNOWN_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Most tokens remembered at once (beyond that, new ones count per IP).
const MAX_KNOWN_TOKENS: usize = 100_000;

pub struct RateLimits {
    api: DefaultKeyedRateLimiter<String>,
    public: DefaultKeyedRateLimiter<String>,
    /// Hashes of bearer tokens that passed verification recently. Only
    /// these get a per-token budget; any other bearer string (random, made
    /// up, revoked) counts against its client IP, so sending fresh garbage
    /// tokens buys no extra requests.
    known_tokens: Mutex<HashMap<String, Instant>>,
}

fn per_minute(n: u32) -> Quota {
    let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(n).allow_burst(n)
}

impl RateLimits {
    pub fn new(api_per_minute: u32, public_per_minute: u32) -> Self {
        Self {
            api: RateLimiter::keyed(per_minute(api_per_minute)),
            public: RateLimiter::keyed(per_minute(public_per_minute)),
            known_tokens: Mutex::new(HashMap::new()),
        }
    }

    /// A bearer token (by hash) passed verification.
    pub fn remember_token(&self, token_hash: &str) {
        let mut known = self.known_tokens.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() < MAX_KNOWN_TOKENS || known.contains_key(token_hash) {
            known.insert(token_hash.to_string(), Instant::now());
        }
    }

    /// Did this token hash pass verification recently?
    pub fn is_known_token(&self, token_hash: &str) -> bool {
        let known = self.known_tokens.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(token_hash)
            .is_some_and(|seen| seen.elapsed() < KNOWN_TOKEN_TTL)
    }

    /// Authenticated API budget, keyed by token hash or client IP.
    pub fn check_api(&self, key: &str) -> Result<(), u64> {
        Self::check(&self.api, key)
    }

    /// Public-endpoint budget (login, registration), keyed by client IP.
    pub fn check_public(&self, ip: &str) -> Result<(), u64> {
        Self::check(&self.public, ip)
    }

    fn check(limiter: &DefaultKeyedRateLimiter<String>, key: &str) -> Result<(), u64> {
        limiter.check_key(&key.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs_f64().ceil().max(1.0) as u64
        })
    }

    /// Drop idle keys so memory stays bounded.
    pub fn prune(&self) {
        self.api.retain_recent();
        self.public.retain_recent();
        self.known_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, seen| seen.elapsed() < KNOWN_TOKEN_TTL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_then_retry_after() {
        let l = RateLimits::new(3, 2);
        assert!(l.check_public("1.1.1.1").is_ok());
        assert!(l.check_public("1.1.1.1").is_ok());
        let wait = l.check_public("1.1.1.1").unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(l.check_public("2.2.2.2").is_ok());
        for _ in 0..3 {
            assert!(l.check_api("tok:a").is_ok());
        }
        assert!(l.check_api("tok:a").is_err());
    }

    #[test]
    fn only_verified_tokens_are_known() {
        let l = RateLimits::new(3, 2);
        assert!(!l.is_known_token("h1"));
        l.remember_token("h1");
        assert!(l.is_known_token("h1"));
        assert!(!l.is_known_token("h2"));
    }
}
