//! Client-side pacing: one token bucket per call class (writes, single reads, page reads) and a
//! bound on calls in flight. Buckets run on tokio's clock, so tests drive them on paused time.
//!
//! Each acquisition reserves a token immediately (the balance may go negative) and then sleeps
//! until its token would have accrued; reservations are therefore served in arrival order and a
//! burst never exceeds the bucket's capacity.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::PacingConfig;

/// The rate-limit class of a call (Duo counts these separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallClass {
    /// Create, modify, delete, membership, bulk.
    Write,
    /// A read of one object.
    SingleRead,
    /// A read of one list page.
    PageRead,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    last: Instant,
}

/// A token bucket: `per_minute` tokens per minute, at most `burst` stored.
#[derive(Debug)]
pub struct TokenBucket {
    per_sec: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            per_sec: f64::from(per_minute) / 60.0,
            burst,
            state: Mutex::new(BucketState { tokens: burst, last: Instant::now() }),
        }
    }

    /// Takes one token, waiting until it is available.
    pub async fn acquire(&self) {
        let wait = {
            let mut s = self.state.lock().await;
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
            s.tokens = (s.tokens + elapsed * self.per_sec).min(self.burst);
            s.last = now;
            s.tokens -= 1.0;
            if s.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-s.tokens / self.per_sec) }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The buckets of one client plus its concurrency bound.
#[derive(Debug)]
pub struct Pacer {
    write: Option<TokenBucket>,
    single: Option<TokenBucket>,
    page: Option<TokenBucket>,
    in_flight: Arc<Semaphore>,
}

impl Pacer {
    /// Builds the buckets from `cfg` (a zero rate disables that bucket) and a concurrency bound
    /// of `max_concurrency` (at least 1).
    pub fn new(cfg: &PacingConfig, max_concurrency: usize) -> Self {
        let mk = |rate: u32| (rate > 0).then(|| TokenBucket::new(rate, cfg.burst));
        Pacer {
            write: mk(cfg.writes_per_minute),
            single: mk(cfg.single_reads_per_minute),
            page: mk(cfg.page_reads_per_minute),
            in_flight: Arc::new(Semaphore::new(max_concurrency.max(1))),
        }
    }

    /// Waits for a slot in flight (held for the whole call, retries included).
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.in_flight.clone().acquire_owned().await.ok()
    }

    /// Waits for a token of `class` (taken before every attempt, retries included).
    pub async fn token(&self, class: CallClass) {
        let b = match class {
            CallClass::Write => &self.write,
            CallClass::SingleRead => &self.single,
            CallClass::PageRead => &self.page,
        };
        if let Some(b) = b {
            b.acquire().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_burst_then_paces() {
        let b = TokenBucket::new(60, 3); // one per second
        let start = Instant::now();
        for _ in 0..3 {
            b.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        for _ in 0..5 {
            b.acquire().await;
        }
        // Five more tokens at one per second.
        let e = start.elapsed().as_secs_f64();
        assert!((4.99..=5.01).contains(&e), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_refills_to_burst_only() {
        let b = TokenBucket::new(60, 2);
        tokio::time::sleep(Duration::from_secs(100)).await;
        let start = Instant::now();
        for _ in 0..4 {
            b.acquire().await;
        }
        let e = start.elapsed().as_secs_f64();
        assert!((1.99..=2.01).contains(&e), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn classes_are_independent_and_zero_disables() {
        let p = Pacer::new(&PacingConfig { writes_per_minute: 60, single_reads_per_minute: 0, page_reads_per_minute: 60, burst: 1 }, 2);
        let start = Instant::now();
        p.token(CallClass::Write).await;
        p.token(CallClass::PageRead).await;
        for _ in 0..100 {
            p.token(CallClass::SingleRead).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        p.token(CallClass::Write).await;
        assert_eq!(start.elapsed().as_secs(), 1);
        let a = p.slot().await;
        let b = p.slot().await;
        assert!(a.is_some() && b.is_some());
        assert_eq!(p.in_flight.available_permits(), 0);
    }
}
