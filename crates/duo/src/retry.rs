//! Retry policy: the official clients' backoff schedule (wait 1 s, doubling while the wait is at
//! most 32 s, each plus uniform jitter below 1 s) and the rule of which failures may be retried
//! for which calls.
//!
//! - 429 (and a 400 whose Duo code starts with 429, as Grouper also treats it) is always retried:
//!   the request was refused, not executed.
//! - 5xx and transport errors are retried only for calls that are safe to repeat
//!   ([`Safety::Repeatable`]), or when the request certainly never left (a connect failure).
//! - Every attempt is signed afresh with a new `Date`.

use std::time::Duration;

use rand::Rng as _;

use crate::config::RetryConfig;

/// Whether repeating a call after an unknown outcome (5xx, timeout, broken connection) is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// Reads, deletes, modifies, membership changes: doing them twice equals doing them once.
    Repeatable,
    /// Creates and bulk calls: a repeat could duplicate; resolve by reading back instead.
    NotRepeatable,
}

/// One backoff sequence.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    max_jitter: Duration,
}

impl Backoff {
    /// A fresh sequence from `cfg`.
    pub fn new(cfg: &RetryConfig) -> Self {
        Backoff { next: cfg.initial_backoff, max: cfg.max_backoff, max_jitter: cfg.max_jitter }
    }

    /// The base wait (without jitter) of the next retry, or `None` when the schedule is exhausted.
    pub fn next_base(&mut self) -> Option<Duration> {
        if self.next > self.max {
            return None;
        }
        let w = self.next;
        // A zero wait (tests) allows exactly one immediate retry; otherwise double.
        self.next = if w.is_zero() { self.max.saturating_add(Duration::from_nanos(1)) } else { w.saturating_mul(2) };
        Some(w)
    }

    /// The next wait with jitter, or `None` when exhausted.
    pub fn next_wait(&mut self) -> Option<Duration> {
        let base = self.next_base()?;
        let us = u64::try_from(self.max_jitter.as_micros()).unwrap_or(u64::MAX);
        let jitter = if us == 0 { Duration::ZERO } else { Duration::from_micros(rand::rng().random_range(0..us)) };
        Some(base.saturating_add(jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_schedule() {
        let mut b = Backoff::new(&RetryConfig::default());
        let waits: Vec<u64> = std::iter::from_fn(|| b.next_base()).map(|d| d.as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32]);
    }

    #[test]
    fn jitter_is_below_bound() {
        for _ in 0..200 {
            let mut b = Backoff::new(&RetryConfig::default());
            let w = b.next_wait().unwrap_or_default();
            assert!(w >= Duration::from_secs(1) && w < Duration::from_secs(2), "{w:?}");
        }
    }

    #[test]
    fn zero_initial_gives_one_immediate_retry_per_call_then_stops() {
        let cfg = RetryConfig { initial_backoff: Duration::ZERO, max_backoff: Duration::ZERO, max_jitter: Duration::ZERO, max_server_retries: 1 };
        let mut b = Backoff::new(&cfg);
        assert_eq!(b.next_base(), Some(Duration::ZERO));
        assert_eq!(b.next_base(), None);
    }
}
