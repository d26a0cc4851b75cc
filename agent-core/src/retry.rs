//! Jittered exponential backoff (the formula of the original agent's
//! reconnect policy, inventory §4.4) and per-call retry budgets.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// `exp = min(max, base·2^(attempt−1))`, `range = round(exp·jitter)`,
/// `delay = clamp(exp + round((2·rand − 1)·range), base, max)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    /// Clamped to 0..=0.5.
    pub jitter: f64,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration, jitter: f64) -> Self {
        Backoff { base, max, jitter }
    }

    /// Delay before retry number `attempt` (1-based) for a random value in 0..=1.
    pub fn delay_with(&self, attempt: u32, rand01: f64) -> Duration {
        let attempt = attempt.max(1);
        let base = (self.base.as_millis() as f64).max(100.0);
        let max = (self.max.as_millis() as f64).max(base);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 0.5)
        } else {
            0.0
        };
        let exp = (base * 2f64.powi((attempt - 1).min(60) as i32)).min(max);
        let range = (exp * jitter).round();
        let r = rand01.clamp(0.0, 1.0);
        let delay = (exp + ((2.0 * r - 1.0) * range).round()).clamp(base, max);
        Duration::from_millis(delay as u64)
    }

    /// Delay with a random jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, rand::random::<f64>())
    }
}

/// How often and how long one call may be retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts including the first one (≥ 1).
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// No new attempt starts after this much time since the first one.
    pub max_elapsed: Duration,
    /// Upper bound for a server-given `Retry-After`.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    pub const fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Backoff {
                base: Duration::from_millis(100),
                max: Duration::from_millis(100),
                jitter: 0.0,
            },
            max_elapsed: Duration::ZERO,
            max_retry_after: Duration::ZERO,
        }
    }

    /// One try, no in-call retry: for callers whose own loop already backs
    /// off (a server known to be down is not hammered by nested retries).
    pub fn single() -> Self {
        Self::exponential(
            1,
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::ZERO,
        )
    }

    /// `attempts` tries, exponential from `base` up to `max`, jitter 0.2.
    pub fn exponential(
        attempts: u32,
        base: Duration,
        max: Duration,
        max_elapsed: Duration,
    ) -> Self {
        RetryPolicy {
            max_attempts: attempts.max(1),
            backoff: Backoff::new(base, max, 0.2),
            max_elapsed,
            max_retry_after: max.max(Duration::from_secs(60)),
        }
    }
}

/// What one attempt produced.
#[derive(Debug)]
pub enum Attempt<T, E> {
    Done(T),
    /// Final failure: do not retry.
    Fail(E),
    /// Transient failure; retry after the backoff or after `after` (e.g.
    /// `Retry-After`), when the budget allows.
    Retry {
        err: E,
        after: Option<Duration>,
    },
}

/// Runs `f(attempt)` (1-based) until it is done, fails finally, the budget is
/// spent (the last error is returned) or `cancel` fires (`on_cancel()`).
pub async fn run<T, E, F, Fut>(
    policy: &RetryPolicy,
    cancel: &CancellationToken,
    on_cancel: impl Fn() -> E,
    mut f: F,
) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    let start = Instant::now();
    let mut attempt = 1u32;
    loop {
        if cancel.is_cancelled() {
            return Err(on_cancel());
        }
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return Err(on_cancel()),
            o = f(attempt) => o,
        };
        let (err, after) = match outcome {
            Attempt::Done(v) => return Ok(v),
            Attempt::Fail(e) => return Err(e),
            Attempt::Retry { err, after } => (err, after),
        };
        let delay = match after {
            Some(d) => d.min(policy.max_retry_after),
            None => policy.backoff.delay(attempt),
        };
        if attempt >= policy.max_attempts || start.elapsed() + delay > policy.max_elapsed {
            return Err(err);
        }
        tracing::debug!(attempt, delay_ms = delay.as_millis() as u64, "retrying");
        tokio::select! {
            _ = cancel.cancelled() => return Err(on_cancel()),
            _ = tokio::time::sleep(delay) => {}
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// The test vectors of the original `reconnect-policy.test.ts` (inventory §7).
    #[test]
    fn reconnect_policy_vectors() {
        let b = Backoff::new(ms(1000), ms(8000), 0.0);
        for (attempt, want) in [(1, 1000), (2, 2000), (3, 4000), (10, 8000)] {
            assert_eq!(b.delay_with(attempt, 0.5), ms(want), "attempt {attempt}");
        }
        let j = Backoff::new(ms(1000), ms(8000), 0.2);
        assert_eq!(j.delay_with(3, 0.0), ms(3200));
        assert_eq!(j.delay_with(3, 1.0), ms(4800));
        assert_eq!(b.delay_with(3, 0.0), ms(4000));
    }

    #[test]
    fn clamps() {
        // base below 100 ms is raised, jitter above 0.5 is clamped, attempt 0 is 1
        let b = Backoff::new(ms(10), ms(50), 9.0);
        assert_eq!(b.delay_with(0, 0.0), ms(100));
        let b = Backoff::new(ms(1000), ms(1500), 0.5);
        assert_eq!(b.delay_with(1, 0.0), ms(1000)); // never below base
        assert_eq!(b.delay_with(5, 1.0), ms(1500)); // never above max
        assert_eq!(b.delay_with(u32::MAX, 0.5), ms(1500));
    }

    #[tokio::test]
    async fn budget_and_cancel() {
        let policy = RetryPolicy::exponential(3, ms(100), ms(100), Duration::from_secs(5));
        let cancel = CancellationToken::new();
        let mut calls = 0;
        let r: Result<(), &str> = run(
            &policy,
            &cancel,
            || "cancelled",
            |_| {
                calls += 1;
                async {
                    Attempt::Retry {
                        err: "busy",
                        after: None,
                    }
                }
            },
        )
        .await;
        assert_eq!(r, Err("busy"));
        assert_eq!(calls, 3);
        let mut calls = 0;
        let r: Result<(), &str> = run(
            &policy,
            &cancel,
            || "cancelled",
            |_| {
                calls += 1;
                async { Attempt::Fail("final") }
            },
        )
        .await;
        assert_eq!((r, calls), (Err("final"), 1));
        cancel.cancel();
        let r: Result<(), &str> = run(
            &policy,
            &cancel,
            || "cancelled",
            |_| async { Attempt::Done(()) },
        )
        .await;
        assert_eq!(r, Err("cancelled"));
    }
}
