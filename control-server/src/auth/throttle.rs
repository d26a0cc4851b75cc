//! Slows down password guessing, per account and per client IP.
//!
//! Each key gets a few free failures; after that every further attempt must
//! wait an exponentially growing delay (capped) since the last failure. A
//! successful login clears the account's counter. State is in memory: a
//! restart forgives, which is acceptable for a delay (not a ban).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub free_failures: u32,
    pub max_delay: Duration,
    /// Failures older than this are forgotten.
    pub window: Duration,
}

#[derive(Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Debug)]
pub struct LoginThrottle {
    per_account: ThrottlePolicy,
    per_ip: ThrottlePolicy,
    entries: Mutex<HashMap<String, Failures>>,
}

const MAX_ENTRIES: usize = 100_000;

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new(
            ThrottlePolicy {
                free_failures: 5,
                max_delay: Duration::from_secs(15 * 60),
                window: Duration::from_secs(15 * 60),
            },
            ThrottlePolicy {
                free_failures: 20,
                max_delay: Duration::from_secs(15 * 60),
                window: Duration::from_secs(15 * 60),
            },
        )
    }
}

impl LoginThrottle {
    pub fn new(per_account: ThrottlePolicy, per_ip: ThrottlePolicy) -> Self {
        Self {
            per_account,
            per_ip,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(email: &str, ip: &str) -> [(String, bool); 2] {
        [(format!("acct:{email}"), true), (format!("ip:{ip}"), false)]
    }

    fn policy(&self, is_account: bool) -> ThrottlePolicy {
        if is_account {
            self.per_account
        } else {
            self.per_ip
        }
    }

    /// `Err(seconds)` when this attempt must wait.
    pub fn check(&self, email: &str, ip: &str) -> Result<(), u64> {
        self.check_at(email, ip, Instant::now())
    }

    fn check_at(&self, email: &str, ip: &str, now: Instant) -> Result<(), u64> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = Duration::ZERO;
        for (key, is_account) in Self::keys(email, ip) {
            let policy = self.policy(is_account);
            if let Some(f) = entries.get(&key) {
                if now.duration_since(f.last) > policy.window || f.count < policy.free_failures {
                    continue;
                }
                let exp = (f.count - policy.free_failures).min(20);
                let delay = Duration::from_secs(1u64 << exp).min(policy.max_delay);
                let ready = f.last + delay;
                if ready > now {
                    wait = wait.max(ready - now);
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait.as_secs_f64().ceil() as u64)
        }
    }

    pub fn record_failure(&self, email: &str, ip: &str) {
        self.record_failure_at(email, ip, Instant::now());
    }

    fn record_failure_at(&self, email: &str, ip: &str, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let window = self.per_account.window.max(self.per_ip.window);
            entries.retain(|_, f| now.duration_since(f.last) <= window);
        }
        for (key, is_account) in Self::keys(email, ip) {
            let window = self.policy(is_account).window;
            let f = entries.entry(key).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.duration_since(f.last) > window {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
        }
    }

    pub fn record_success(&self, email: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&format!("acct:{email}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_failures_then_growing_delay_then_reset() {
        let t = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..5 {
            assert!(t.check_at("a@x", "1.1.1.1", start).is_ok());
            t.record_failure_at("a@x", "1.1.1.1", start);
        }
        // 5 failures: next attempt waits 1 s.
        assert_eq!(t.check_at("a@x", "1.1.1.1", start), Err(1));
        t.record_failure_at("a@x", "1.1.1.1", start);
        assert_eq!(t.check_at("a@x", "1.1.1.1", start), Err(2));
        // The same account from another IP is still slowed.
        assert!(t.check_at("a@x", "2.2.2.2", start).is_err());
        // Another account from the same IP is not (IP budget is larger).
        assert!(t.check_at("b@x", "1.1.1.1", start).is_ok());
        // After the delay it may try again.
        assert!(t
            .check_at("a@x", "1.1.1.1", start + Duration::from_secs(3))
            .is_ok());
        t.record_success("a@x");
        assert!(t.check_at("a@x", "3.3.3.3", start).is_ok());
    }

    #[test]
    fn ip_budget_applies_across_accounts() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..20 {
            t.record_failure_at(&format!("u{i}@x"), "9.9.9.9", now);
        }
        assert!(t.check_at("fresh@x", "9.9.9.9", now).is_err());
        assert!(t.check_at("fresh@x", "8.8.8.8", now).is_ok());
    }
}
