//! Client-side pacing: one adaptive token bucket per call class (writes, single reads, page
//! reads, unpaged list lookups, bulk calls), per-class call and 429 counters, and a bound on calls
//! in flight. Buckets run on tokio's clock, so tests drive them on paused time.
//!
//! An acquisition takes a token when one is stored, and otherwise sleeps until one will have
//! accrued at the current rate (or until the rate may next rise) and looks again, so a change of
//! rate applies to calls already waiting. A burst never exceeds the bucket's capacity.
//!
//! The rate of each class adapts to Duo (AIMD; Duo's 429 carries no `Retry-After`):
//! - a 429 in a class halves that class's rate and empties its bucket. Only a call whose token
//!   was taken at the current rate can cut it: 429s of calls already under way when the rate was
//!   cut say nothing about the new rate, so one overload costs one cut. The rate never goes below
//!   1/16 of the class's configured rate (its ceiling) nor below [`MIN_RATE_PER_MINUTE`]: a tenant
//!   limited more tightly than that is not plausible, and 429s that have nothing to do with this
//!   client's rate (Duo under load) must not slow a run to a crawl past its calls' deadlines;
//! - each full `recovery_interval` without a 429 raises the rate by 10 % of the ceiling, never
//!   above it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::PacingConfig;

/// The slowest an adaptive bucket paces a class, in calls per minute.
pub const MIN_RATE_PER_MINUTE: f64 = 1.0;
/// Nor does it go below this fraction of the class's ceiling.
const FLOOR_FRACTION: f64 = 1.0 / 16.0;
/// A 429 multiplies the class's rate by this.
const DECREASE_FACTOR: f64 = 0.5;
/// Each quiet recovery interval adds this fraction of the class's ceiling.
const INCREASE_FRACTION: f64 = 0.1;

/// The rate-limit class of a call (Duo counts these separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallClass {
    /// Create, modify, delete, membership change.
    Write,
    /// A read of one object.
    SingleRead,
    /// A read of one list page.
    PageRead,
    /// An unpaged list read by ids or usernames (`user_id_list`, `username_list`,
    /// `group_id_list`): possibly Duo's "get all objects (no paging)" class, 40/min per Duo staff
    /// (unverified).
    ListLookup,
    /// `/admin/v1/bulk`, `bulk_create`, `bulk_send_to_trash`, `bulk_restore` (about 50/min per a
    /// secondary source).
    Bulk,
}

impl CallClass {
    /// Every class, in reporting order.
    pub const ALL: [CallClass; 5] = [CallClass::Write, CallClass::SingleRead, CallClass::PageRead, CallClass::ListLookup, CallClass::Bulk];

    /// Stable name (`write`, `single_read`, `page_read`, `list_lookup`, `bulk`), as reports and
    /// metrics label the class.
    pub fn name(self) -> &'static str {
        match self {
            CallClass::Write => "write",
            CallClass::SingleRead => "single_read",
            CallClass::PageRead => "page_read",
            CallClass::ListLookup => "list_lookup",
            CallClass::Bulk => "bulk",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Proof of a token: which rate it was taken at (see [`Pacer::finished`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    epoch: u64,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    last: Instant,
    /// The current rate.
    per_minute: f64,
    /// The lowest rate so far.
    lowest: f64,
    /// Bumped by every cut; tokens taken before it were taken at an older rate.
    epoch: u64,
    /// The last cut or recovery step: the next step is due a recovery interval after it.
    last_change: Instant,
}

/// A token bucket: `per_minute` tokens per minute (adapting between [`MIN_RATE_PER_MINUTE`] and
/// the configured ceiling when adaptive), at most `burst` stored.
#[derive(Debug)]
pub struct TokenBucket {
    ceiling: f64,
    burst: f64,
    adaptive: bool,
    recovery: Duration,
    state: std::sync::Mutex<BucketState>,
}

impl TokenBucket {
    /// A full bucket at a fixed rate.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::with_adaptation(per_minute, burst, false, Duration::from_secs(30))
    }

    /// A full bucket starting at `per_minute`, adapting to 429s when `adaptive`.
    pub fn with_adaptation(per_minute: u32, burst: u32, adaptive: bool, recovery: Duration) -> Self {
        let burst = f64::from(burst.max(1));
        let ceiling = f64::from(per_minute.max(1));
        let now = Instant::now();
        TokenBucket {
            ceiling,
            burst,
            adaptive,
            recovery: recovery.max(Duration::from_millis(1)),
            state: std::sync::Mutex::new(BucketState { tokens: burst, last: now, per_minute: ceiling, lowest: ceiling, epoch: 0, last_change: now }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BucketState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Accrues tokens up to `now` at the current rate, then applies the recovery steps due.
    fn advance(&self, s: &mut BucketState, now: Instant) {
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        s.tokens = (s.tokens + elapsed * s.per_minute / 60.0).min(self.burst);
        s.last = now;
        if self.adaptive && s.per_minute < self.ceiling {
            let quiet = now.saturating_duration_since(s.last_change);
            let steps = (quiet.as_secs_f64() / self.recovery.as_secs_f64()).floor();
            if steps >= 1.0 {
                s.per_minute = (s.per_minute + steps * INCREASE_FRACTION * self.ceiling).min(self.ceiling);
                s.last_change += self.recovery.mul_f64(steps);
            }
        }
    }

    /// Takes one token, waiting until it is available.
    pub async fn acquire(&self) -> Ticket {
        loop {
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                self.advance(&mut s, now);
                // (A hair under one token counts: sleeps end on the timer's whole milliseconds.)
                if s.tokens >= 1.0 - 1e-9 {
                    s.tokens -= 1.0;
                    return Ticket { epoch: s.epoch };
                }
                let mut wait = Duration::from_secs_f64((1.0 - s.tokens) * 60.0 / s.per_minute);
                if self.adaptive && s.per_minute < self.ceiling {
                    // Look again when the rate may rise.
                    let step = (s.last_change + self.recovery).saturating_duration_since(now);
                    wait = wait.min(step.max(Duration::from_millis(1)));
                }
                wait
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Duo answered 429 to a call whose token is `ticket`: halve the rate and empty the bucket,
    /// unless the rate was already cut since that token was taken.
    pub fn rate_limited(&self, ticket: Ticket) {
        if !self.adaptive {
            return;
        }
        let mut s = self.lock();
        let now = Instant::now();
        self.advance(&mut s, now);
        if ticket.epoch != s.epoch {
            return;
        }
        s.per_minute = (s.per_minute * DECREASE_FACTOR).max(self.floor());
        s.lowest = s.lowest.min(s.per_minute);
        s.tokens = 0.0;
        s.epoch += 1;
        s.last_change = now;
    }

    /// The lowest rate the bucket adapts down to.
    fn floor(&self) -> f64 {
        (self.ceiling * FLOOR_FRACTION).max(MIN_RATE_PER_MINUTE).min(self.ceiling)
    }

    /// The current rate per minute (recovery steps due applied).
    pub fn rate_per_minute(&self) -> f64 {
        let mut s = self.lock();
        self.advance(&mut s, Instant::now());
        s.per_minute
    }

    /// The lowest rate per minute so far.
    pub fn lowest_per_minute(&self) -> f64 {
        self.lock().lowest
    }

    /// The configured rate: the most the bucket allows.
    pub fn ceiling_per_minute(&self) -> f64 {
        self.ceiling
    }
}

/// One class's pacing and counters.
#[derive(Debug)]
struct ClassPacer {
    bucket: Option<TokenBucket>,
    calls: std::sync::atomic::AtomicU64,
    rate_limited: std::sync::atomic::AtomicU64,
}

/// One class's counters and rates, as [`Pacer::stats`] reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassStats {
    /// The class.
    pub class: CallClass,
    /// Attempts sent (retries included).
    pub calls: u64,
    /// Attempts Duo answered with 429.
    pub rate_limited: u64,
    /// The configured rate (`None`: the class is not paced).
    pub ceiling_per_minute: Option<f64>,
    /// The rate the class is paced at now.
    pub rate_per_minute: Option<f64>,
    /// The lowest rate the class was paced at since the client started.
    pub lowest_per_minute: Option<f64>,
}

/// The buckets of one client plus its concurrency bound.
#[derive(Debug)]
pub struct Pacer {
    classes: [ClassPacer; 5],
    in_flight: Arc<Semaphore>,
}

impl Pacer {
    /// Builds the buckets from `cfg` (a zero rate disables that bucket) and a concurrency bound
    /// of `max_concurrency` (at least 1).
    pub fn new(cfg: &PacingConfig, max_concurrency: usize) -> Self {
        let mk = |rate: u32| ClassPacer {
            bucket: (rate > 0).then(|| TokenBucket::with_adaptation(rate, cfg.burst, cfg.adaptive, cfg.recovery_interval)),
            calls: Default::default(),
            rate_limited: Default::default(),
        };
        Pacer {
            // In `CallClass` order.
            classes: [
                mk(cfg.writes_per_minute),
                mk(cfg.single_reads_per_minute),
                mk(cfg.page_reads_per_minute),
                mk(cfg.list_lookups_per_minute),
                mk(cfg.bulk_per_minute),
            ],
            in_flight: Arc::new(Semaphore::new(max_concurrency.max(1))),
        }
    }

    /// Waits for a slot in flight (held for the whole call, retries included).
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.in_flight.clone().acquire_owned().await.ok()
    }

    /// Waits for a token of `class` (taken before every attempt, retries included).
    pub async fn token(&self, class: CallClass) -> Ticket {
        match &self.classes[class.index()].bucket {
            Some(b) => b.acquire().await,
            None => Ticket { epoch: 0 },
        }
    }

    /// Records an attempt of `class` sent with `ticket`'s token, and whether Duo answered 429
    /// (which slows the class down).
    pub fn finished(&self, class: CallClass, ticket: Ticket, rate_limited: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.classes[class.index()];
        c.calls.fetch_add(1, Relaxed);
        if rate_limited {
            c.rate_limited.fetch_add(1, Relaxed);
            if let Some(b) = &c.bucket {
                b.rate_limited(ticket);
            }
        }
    }

    /// Every class's counters and rates, in [`CallClass::ALL`] order.
    pub fn stats(&self) -> Vec<ClassStats> {
        use std::sync::atomic::Ordering::Relaxed;
        CallClass::ALL
            .iter()
            .map(|&class| {
                let c = &self.classes[class.index()];
                ClassStats {
                    class,
                    calls: c.calls.load(Relaxed),
                    rate_limited: c.rate_limited.load(Relaxed),
                    ceiling_per_minute: c.bucket.as_ref().map(TokenBucket::ceiling_per_minute),
                    rate_per_minute: c.bucket.as_ref().map(TokenBucket::rate_per_minute),
                    lowest_per_minute: c.bucket.as_ref().map(TokenBucket::lowest_per_minute),
                }
            })
            .collect()
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

    fn cfg(writes: u32, single: u32, page: u32, lookups: u32, bulk: u32) -> PacingConfig {
        PacingConfig {
            writes_per_minute: writes,
            single_reads_per_minute: single,
            page_reads_per_minute: page,
            list_lookups_per_minute: lookups,
            bulk_per_minute: bulk,
            burst: 1,
            ..PacingConfig::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn classes_are_independent_and_zero_disables() {
        let p = Pacer::new(&cfg(60, 0, 60, 60, 60), 2);
        let start = Instant::now();
        p.token(CallClass::Write).await;
        p.token(CallClass::PageRead).await;
        p.token(CallClass::ListLookup).await;
        p.token(CallClass::Bulk).await;
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

    /// A server that allows `limit_per_minute` calls (GCRA with a burst of `server_burst`) on
    /// tokio's clock, as Duo's per-class limits do.
    struct Server {
        interval: Duration,
        tolerance: Duration,
        tat: Option<Instant>,
        limit_per_minute: f64,
    }

    impl Server {
        fn new(limit_per_minute: f64, server_burst: u32) -> Self {
            let interval = Duration::from_secs_f64(60.0 / limit_per_minute);
            Server { interval, tolerance: interval * server_burst.saturating_sub(1), tat: None, limit_per_minute }
        }

        fn set_limit(&mut self, limit_per_minute: f64) {
            self.interval = Duration::from_secs_f64(60.0 / limit_per_minute);
            self.limit_per_minute = limit_per_minute;
        }

        /// Whether a call arriving now is allowed.
        fn admit(&mut self) -> bool {
            let now = Instant::now();
            let tat = self.tat.unwrap_or(now).max(now);
            if tat - now > self.tolerance {
                return false;
            }
            self.tat = Some(tat + self.interval);
            true
        }
    }

    /// Sends `calls` calls of one class through `p` to `server` one after another, each
    /// retried after a 429 (as the client does). Returns the 429s.
    async fn drive(p: &Pacer, class: CallClass, server: &mut Server, calls: usize) -> u64 {
        let mut limited = 0;
        for _ in 0..calls {
            loop {
                let ticket = p.token(class).await;
                let ok = server.admit();
                p.finished(class, ticket, !ok);
                if ok {
                    break;
                }
                limited += 1;
            }
        }
        limited
    }

    fn stats(p: &Pacer, class: CallClass) -> ClassStats {
        p.stats().into_iter().find(|s| s.class == class).expect("every class has stats")
    }

    #[tokio::test(start_paused = true)]
    async fn a_class_limited_below_its_ceiling_converges_under_the_limit_with_few_429s() {
        // Bulk paced at 40/min against a tenant that allows 12/min (burst 2): the sender must
        // find a rate under the limit; writes are untouched.
        let p = Pacer::new(&PacingConfig { burst: 5, ..cfg(240, 240, 160, 32, 40) }, 4);
        let mut server = Server::new(12.0, 2);
        let start = Instant::now();
        let limited = drive(&p, CallClass::Bulk, &mut server, 120).await;
        let minutes = start.elapsed().as_secs_f64() / 60.0;
        let s = stats(&p, CallClass::Bulk);
        assert_eq!(s.calls, 120 + limited);
        assert_eq!(s.rate_limited, limited);
        // Sending 120 calls at 12/min takes at least ten minutes; a sawtooth around the limit
        // costs one 429 each time the rate climbs back over it (≈ every 1–2 minutes here),
        // where a fixed 40/min pace would be refused on most calls.
        assert!(minutes >= 9.5, "{minutes} min");
        assert!(limited <= 12, "{limited} 429s in {minutes:.1} min");
        assert!(minutes <= 14.0, "converged too low: {minutes:.1} min for 120 calls at 12/min");
        assert!(s.lowest_per_minute.is_some_and(|r| r < 12.0), "{s:?}");
        assert!(s.rate_per_minute.is_some_and(|r| r <= 40.0), "{s:?}");
        let w = stats(&p, CallClass::Write);
        assert_eq!((w.calls, w.rate_limited, w.rate_per_minute), (0, 0, Some(240.0)), "writes keep their own rate");

        // The next ten minutes at the same limit: no worse than the first.
        let later = drive(&p, CallClass::Bulk, &mut server, 120).await;
        assert!(later <= limited.max(8), "{later} 429s once converged (first ten minutes: {limited})");
    }

    #[tokio::test(start_paused = true)]
    async fn without_429s_the_rate_stays_at_the_ceiling() {
        let p = Pacer::new(&PacingConfig { burst: 5, ..cfg(240, 240, 160, 32, 40) }, 4);
        // Duo's documented 40/min, with room for the client's burst of five.
        let mut server = Server::new(40.0, 5);
        let start = Instant::now();
        // At 32/min against a limit of 40/min, after the burst of five.
        let limited = drive(&p, CallClass::ListLookup, &mut server, 5 + 64).await;
        assert_eq!(limited, 0);
        let s = stats(&p, CallClass::ListLookup);
        assert_eq!((s.rate_per_minute, s.lowest_per_minute, s.ceiling_per_minute), (Some(32.0), Some(32.0), Some(32.0)));
        let e = start.elapsed().as_secs_f64();
        assert!((119.9..=120.1).contains(&e), "64 paced calls at 32/min take two minutes, took {e} s");
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_recovers_to_the_ceiling_after_the_limit_rises() {
        let p = Pacer::new(&PacingConfig { burst: 5, ..cfg(240, 240, 160, 32, 40) }, 4);
        let mut server = Server::new(10.0, 1);
        drive(&p, CallClass::Bulk, &mut server, 30).await;
        let low = stats(&p, CallClass::Bulk);
        assert!(low.rate_per_minute.is_some_and(|r| r < 20.0), "{low:?}");
        // The tenant's limit rises above the ceiling: ten quiet intervals (5 min) bring the rate
        // back to the ceiling, and no further.
        server.set_limit(60.0);
        let before = low.rate_limited;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(6 * 60) {
            drive(&p, CallClass::Bulk, &mut server, 1).await;
        }
        let s = stats(&p, CallClass::Bulk);
        assert_eq!(s.rate_per_minute, Some(40.0), "{s:?}");
        assert!(s.rate_limited - before <= 1, "{} 429s after the limit rose", s.rate_limited - before);
        assert!(server.limit_per_minute > 40.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_cuts_once_for_the_calls_that_were_already_under_way() {
        let p = Pacer::new(&PacingConfig { burst: 4, ..cfg(240, 240, 160, 32, 40) }, 4);
        let tickets = [p.token(CallClass::Write).await, p.token(CallClass::Write).await, p.token(CallClass::Write).await];
        for t in tickets {
            p.finished(CallClass::Write, t, true);
        }
        let s = stats(&p, CallClass::Write);
        assert_eq!((s.rate_limited, s.rate_per_minute), (3, Some(120.0)), "three 429s of one burst halve the rate once");
        // The bucket was emptied: the next token waits half a second (120/min).
        let start = Instant::now();
        let t = p.token(CallClass::Write).await;
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        p.finished(CallClass::Write, t, true);
        assert_eq!(stats(&p, CallClass::Write).rate_per_minute, Some(60.0), "a call at the new rate cuts again");
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_unrelated_to_the_rate_never_slow_a_class_below_a_sixteenth_of_its_ceiling() {
        // Every call refused (Duo under load, say), one after another: each cuts, down to the
        // floor of 240 / 16 = 15 a minute, and the calls keep going at that pace.
        let p = Pacer::new(&cfg(240, 240, 160, 32, 40), 4);
        let start = Instant::now();
        for _ in 0..20 {
            let t = p.token(CallClass::Write).await;
            p.finished(CallClass::Write, t, true);
        }
        let s = stats(&p, CallClass::Write);
        assert_eq!((s.rate_limited, s.rate_per_minute, s.lowest_per_minute), (20, Some(15.0), Some(15.0)));
        // 240 → 15 takes four cuts; the other sixteen calls waited at most 4 s each (15/min).
        assert!(start.elapsed() <= Duration::from_secs(16 * 4 + 4), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_waiting_at_a_low_rate_goes_sooner_when_the_rate_recovers_meanwhile() {
        let p = Pacer::new(&PacingConfig { recovery_interval: Duration::from_secs(15), ..cfg(240, 240, 160, 32, 40) }, 4);
        // Four cuts, each within 15 s of the last: 40 → 20 → 10 → 5 → 2.5 a minute.
        for _ in 0..4 {
            let t = p.token(CallClass::Bulk).await;
            p.finished(CallClass::Bulk, t, true);
        }
        assert_eq!(stats(&p, CallClass::Bulk).rate_per_minute, Some(2.5), "at the floor, 40 / 16");
        // At 2.5/min the next token is 24 s away; after a quiet 15 s the rate is 6.5/min, and
        // the waiting call takes it: 15 s (0.625 of a token) + 0.375 token at 6.5/min (3.5 s).
        let start = Instant::now();
        p.token(CallClass::Bulk).await;
        let e = start.elapsed().as_secs_f64();
        assert!((18.4..18.5).contains(&e), "{e} s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_rate_ignores_429s() {
        let p = Pacer::new(&PacingConfig { adaptive: false, ..cfg(60, 60, 60, 60, 60) }, 1);
        let t = p.token(CallClass::PageRead).await;
        p.finished(CallClass::PageRead, t, true);
        let s = stats(&p, CallClass::PageRead);
        assert_eq!((s.calls, s.rate_limited, s.rate_per_minute, s.lowest_per_minute), (1, 1, Some(60.0), Some(60.0)));
    }
}
