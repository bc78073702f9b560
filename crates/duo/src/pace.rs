//! Client-side pacing: one adaptive token bucket per call class (writes, single reads, page
//! reads, unpaged list lookups, bulk calls), per-class call and 429 counters, a profile of each
//! class's time (idle, waiting for a token, its paced rate over time), and a bound on calls in
//! flight. Buckets run on tokio's clock, so tests drive them on paused time.
//!
//! An acquisition takes a token when one is stored, and otherwise sleeps until one will have
//! accrued at the current rate (or until the rate may next rise) and looks again, so a change of
//! rate applies to calls already waiting. A burst never exceeds the bucket's capacity (its
//! configured burst, or one token once the class has learned a limit; see below).
//!
//! The rate of each class adapts to Duo, whose 429 carries no `Retry-After`, by learning the
//! highest rate Duo accepted and holding just under it:
//! - time is cut into `recovery_interval`s (Duo time: a benchmark that scales Duo's rates scales
//!   this too). An interval that ends without a 429, in which the class used at least half its
//!   tokens or had a call waiting for one, *proves* its rate: that rate becomes the class's
//!   `good` rate (the highest proven since the class last had to halve);
//! - after a proving interval the rate *probes* above `good` by a step that starts at 5 % of
//!   `good` and doubles with each further successful probe (at most 50 %), so a class climbs
//!   back to its ceiling within minutes when Duo's limit rises, and never above the ceiling;
//! - a 429 on a probe (or on the proven rate itself, when Duo's burst had hidden an excess) sets
//!   the rate to 80 % of the lower of `good` and the rate for one interval (to drain what Duo
//!   counts against the client, so that jitter in the calls' arrival does not draw a second 429
//!   and a halving), lowers `good` by 5 % when the 429 came at it, and *learns a limit*: the
//!   `good` it leaves. A failure within 10 % of the last one's `good` confirms that limit, and
//!   the hold-off before the next probe grows with each confirmation: 2, 8, 32, then at most 64
//!   intervals (32 minutes of Duo time at the default 30 s), so near a learned limit the class
//!   averages within a few per cent of it with one 429 per half hour once the limit is
//!   confirmed (`a_429_on_a_probe_at_a_confirmed_limit_holds_off_the_next_probe_longer_each_time`);
//! - while a limit is learned, a probe that held for one interval is held for 4 more (a trial;
//!   unused intervals do not count) before it counts as proven: one interval above Duo's limit
//!   can pass on Duo's burst, and a 429 in the trial is the probe failing (`good` returns to the
//!   rate before the probe). A probe proven more than 10 % above the learned limit means Duo's
//!   limit rose: the limit is forgotten and the climb goes on at full speed, so a raised limit is
//!   found within the longest hold-off (32 minutes of Duo time), two trials (5 minutes) and the
//!   climb (a few intervals): 40 minutes from 10 to 40 a minute
//!   (`a_raised_limit_is_found_within_forty_minutes_even_after_hours_at_a_learned_one`);
//! - while a limit is learned the bucket stores one token, not its burst, whenever no call waits
//!   for one: calls go evenly spaced, so an idle moment is not followed by a burst landing on
//!   Duo's refilled bucket at the limit (while calls wait, a late wake-up's excess carries over);
//! - a 429 with no `good` rate to fall back on (the first overload, or a second 429 before any
//!   quiet interval since the last cut: Duo's limit fell) halves the rate and forgets `good`
//!   and any learned limit;
//!   the climb after it starts at the largest step (50 %), so the limit is found again quickly;
//! - only a call whose token was taken at the current rate can cut it: 429s of calls already
//!   under way when the rate was cut say nothing about the new rate, so one overload costs one
//!   cut. The rate never goes below 1/16 of the class's configured rate (its ceiling) nor below
//!   [`MIN_RATE_PER_MINUTE`]: a tenant limited more tightly than that is not plausible, and
//!   429s that have nothing to do with this client's rate (Duo under load) must not slow a run
//!   to a crawl past its calls' deadlines;
//! - an interval the class did not use proves nothing: a rate below `good` returns to it, a rate
//!   with no `good` climbs as after a proof (an idle class returns to its ceiling), and a rate at
//!   `good` holds.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::PacingConfig;

/// The slowest an adaptive bucket paces a class, in calls per minute.
pub const MIN_RATE_PER_MINUTE: f64 = 1.0;
/// Nor does it go below this fraction of the class's ceiling.
const FLOOR_FRACTION: f64 = 1.0 / 16.0;
/// A 429 with no proven rate to fall back on multiplies the class's rate by this.
const DECREASE_FACTOR: f64 = 0.5;
/// A 429 with a proven rate to fall back on sets the rate to this fraction of it for one
/// interval, so that what Duo counts against the client drains before the proven rate resumes.
const DIP_FACTOR: f64 = 0.8;
/// A 429 at the proven rate itself lowers that rate to this fraction of it.
const GOOD_CUT: f64 = 0.95;
/// The first probe above a proven rate, as a fraction of it; doubled by each successful probe.
const PROBE_STEP: f64 = 0.05;
/// The largest probe step (and the climb after a halving), as a fraction of the proven rate.
const MAX_PROBE_STEP: f64 = 0.5;
/// Successful probes that make the step [`MAX_PROBE_STEP`] (0.05 × 2⁴ ≥ 0.5).
const FAST_STREAK: u32 = 4;
/// The hold-off before the next probe after the first failed probe at a limit, in intervals;
/// each further failure at the same limit multiplies it by [`HOLD_GROWTH`].
const FIRST_HOLD: u32 = 2;
/// The factor of the hold-off's growth while probes keep failing at the same limit.
const HOLD_GROWTH: u32 = 4;
/// The longest hold-off, in intervals (32 minutes of Duo time at the default 30 s interval): a
/// raised Duo limit is found at most this long, plus the probes' trials, after it rose.
const MAX_HOLD: u32 = 64;
/// Intervals a probe's rate is held, once a limit is learned, before it counts as proven: an
/// excess Duo's burst hid for one interval shows within these.
const TRIAL_INTERVALS: u32 = 4;
/// Two failures within this fraction of each other's proven rate confirm the same limit.
const SAME_LIMIT: f64 = 0.1;
/// Points of a class's rate timeline (and idle spans) kept in its profile; older ones are
/// dropped (counted only).
const MAX_TIMELINE: usize = 4096;

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
    /// The start of the current recovery interval (the last cut, or the end of the last interval).
    last_change: Instant,
    /// The highest rate proven by a quiet, used interval since the last halving.
    good: Option<f64>,
    /// Successful probes in a row (each doubles the next step).
    streak: u32,
    /// Failed probes in a row at about the same limit (each doubles the hold-off before the
    /// next); 0 while no limit is learned.
    fails: u32,
    /// The `good` rate the last failure left (the learned limit), if any.
    fail_at: Option<f64>,
    /// A probe that held for one interval and is held longer before it counts: the proven rate
    /// before it, and the end of its trial.
    trial: Option<(f64, Instant)>,
    /// No probe above `good` before this.
    next_probe: Instant,
    /// Cuts since the last quiet, used interval.
    cuts_since_quiet: u32,
    /// Tokens taken in the current interval.
    taken: u64,
    /// Callers sleeping for a token now.
    waiters: u32,
    /// `(seconds since the bucket was made, rate)` at the start and each change, the last
    /// [`MAX_TIMELINE`].
    timeline: std::collections::VecDeque<(f64, f64)>,
    /// Rate changes in all (the timeline may have dropped the oldest).
    changes: u64,
}

/// A token bucket: `per_minute` tokens per minute (adapting between [`MIN_RATE_PER_MINUTE`] and
/// the configured ceiling when adaptive), at most `burst` stored.
#[derive(Debug)]
pub struct TokenBucket {
    ceiling: f64,
    burst: f64,
    adaptive: bool,
    recovery: Duration,
    start: Instant,
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
            start: now,
            state: std::sync::Mutex::new(BucketState {
                tokens: burst,
                last: now,
                per_minute: ceiling,
                lowest: ceiling,
                epoch: 0,
                last_change: now,
                good: None,
                streak: FAST_STREAK,
                fails: 0,
                fail_at: None,
                trial: None,
                next_probe: now,
                cuts_since_quiet: 0,
                taken: 0,
                waiters: 0,
                timeline: std::collections::VecDeque::from([(0.0, ceiling)]),
                changes: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BucketState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Accrues tokens up to `to` at the current rate.
    fn accrue(&self, s: &mut BucketState, to: Instant) {
        let elapsed = to.saturating_duration_since(s.last).as_secs_f64();
        s.tokens = (s.tokens + elapsed * s.per_minute / 60.0).min(self.capacity(s));
        s.last = s.last.max(to);
    }

    fn set_rate(&self, s: &mut BucketState, at: Instant, per_minute: f64) {
        let per_minute = per_minute.clamp(self.floor(), self.ceiling);
        if per_minute == s.per_minute {
            return;
        }
        s.per_minute = per_minute;
        s.lowest = s.lowest.min(per_minute);
        s.changes += 1;
        if s.timeline.len() == MAX_TIMELINE {
            s.timeline.pop_front();
        }
        s.timeline.push_back((at.saturating_duration_since(self.start).as_secs_f64(), per_minute));
    }

    /// The most tokens stored: the burst, or, once a limit is learned and no call is waiting for
    /// a token, one (calls evenly spaced: no burst after an idle moment). While calls wait, the
    /// burst still bounds what accrues, so a waiting call that wakes late keeps the excess for
    /// the next one rather than losing it (at a fast Duo clock a millisecond of timer lateness
    /// is a tenth of the spacing).
    fn capacity(&self, s: &BucketState) -> f64 {
        if self.adaptive && s.fails > 0 && s.waiters == 0 {
            1.0
        } else {
            self.burst
        }
    }

    /// The step of the next probe above the proven rate.
    fn probe(&self, s: &BucketState, good: f64) -> f64 {
        good * (PROBE_STEP * f64::from(1u32 << s.streak.min(FAST_STREAK))).min(MAX_PROBE_STEP)
    }

    /// Accrues tokens up to `now`, ending each recovery interval due on the way (see the
    /// module's documentation).
    fn advance(&self, s: &mut BucketState, now: Instant) {
        if self.adaptive {
            loop {
                let due = s.last_change + self.recovery;
                if now < due {
                    break;
                }
                self.accrue(s, due);
                let allowed = s.per_minute * self.recovery.as_secs_f64() / 60.0;
                let used = s.waiters > 0 || s.taken as f64 >= 0.5 * allowed;
                s.taken = 0;
                s.last_change = due;
                let rate = s.per_minute;
                match (used, s.good) {
                    (true, _) => {
                        s.cuts_since_quiet = 0;
                        match s.good {
                            Some(g) if rate < g => self.set_rate(s, due, g),
                            Some(g) if rate <= g && (due < s.next_probe || s.trial.is_some_and(|(_, end)| due < end)) => {}
                            Some(g) if rate > g && s.fails > 0 => {
                                // A probe near a learned limit held one interval: Duo's burst
                                // may have hidden an excess, so hold it before it counts.
                                s.trial = Some((g, due + self.recovery * TRIAL_INTERVALS));
                                s.good = Some(rate);
                            }
                            _ => {
                                if s.trial.take().is_some() || s.good.is_some_and(|g| rate > g) {
                                    // The probe held: the next one goes further.
                                    s.streak = (s.streak + 1).min(FAST_STREAK);
                                    if s.fail_at.is_some_and(|f| rate > f * (1.0 + SAME_LIMIT)) {
                                        // Well past the learned limit: Duo's limit rose.
                                        s.fails = 0;
                                        s.fail_at = None;
                                    }
                                }
                                s.good = Some(rate);
                                let step = self.probe(s, rate);
                                self.set_rate(s, due, rate + step);
                            }
                        }
                    }
                    (false, Some(g)) => {
                        // An unused interval proves nothing: a trial lasts one more.
                        if let Some((_, end)) = &mut s.trial {
                            *end += self.recovery;
                        }
                        if rate < g {
                            self.set_rate(s, due, g);
                        }
                    }
                    (false, None) => {
                        let step = self.probe(s, rate);
                        self.set_rate(s, due, rate + step);
                    }
                }
                if s.per_minute >= self.ceiling || (!used && s.good.is_some_and(|g| s.per_minute >= g)) {
                    // Nothing changes until the class is used again (or ever, at the ceiling):
                    // skip the remaining whole intervals.
                    let behind = now.saturating_duration_since(s.last_change).as_secs_f64() / self.recovery.as_secs_f64();
                    let skip = behind.floor();
                    if skip >= 1.0 {
                        self.accrue(s, now);
                        s.last_change += self.recovery.mul_f64(skip);
                        if let Some((_, end)) = s.trial.as_mut().filter(|_| !used) {
                            *end += self.recovery.mul_f64(skip);
                        }
                    }
                }
            }
        }
        self.accrue(s, now);
    }

    /// Takes one token, waiting until it is available.
    pub async fn acquire(&self) -> Ticket {
        let mut waiting = false;
        loop {
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                self.advance(&mut s, now);
                // (A hair under one token counts: sleeps end on the timer's whole milliseconds.)
                if s.tokens >= 1.0 - 1e-9 {
                    s.tokens -= 1.0;
                    s.taken += 1;
                    if waiting {
                        s.waiters -= 1;
                    }
                    return Ticket { epoch: s.epoch };
                }
                if !waiting {
                    waiting = true;
                    s.waiters += 1;
                }
                let mut wait = Duration::from_secs_f64((1.0 - s.tokens) * 60.0 / s.per_minute);
                if self.adaptive {
                    // Look again when the rate may change.
                    let step = (s.last_change + self.recovery).saturating_duration_since(now);
                    wait = wait.min(step.max(Duration::from_millis(1)));
                }
                wait
            };
            let guard = WaiterGuard(self);
            tokio::time::sleep(wait).await;
            std::mem::forget(guard);
        }
    }

    /// Duo answered 429 to a call whose token is `ticket`: lower the rate (see the module's
    /// documentation) and empty the bucket, unless the rate was already cut since that token was
    /// taken.
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
        let rate = s.per_minute;
        match s.good {
            Some(g) if s.cuts_since_quiet == 0 => {
                // A probe failed (in its interval or its trial), or the proven rate was a hair
                // over Duo's (its burst hid it).
                let g = match s.trial.take() {
                    Some((base, _)) => base,
                    None if rate <= g => g * GOOD_CUT,
                    None => g,
                };
                s.good = Some(g);
                let same = s.fail_at.is_some_and(|f| (g - f).abs() <= SAME_LIMIT * f);
                s.fails = if same { s.fails + 1 } else { 1 };
                s.fail_at = Some(g);
                s.streak = 0;
                let hold = (1..s.fails.min(8)).fold(FIRST_HOLD, |h, _| h.saturating_mul(HOLD_GROWTH)).min(MAX_HOLD);
                s.next_probe = now + self.recovery * hold;
                self.set_rate(&mut s, now, g.min(rate) * DIP_FACTOR);
            }
            _ => {
                // Nothing proven to fall back on (or the fallback failed too): halve.
                s.good = None;
                s.fails = 0;
                s.fail_at = None;
                s.trial = None;
                s.streak = FAST_STREAK;
                s.next_probe = now;
                self.set_rate(&mut s, now, rate * DECREASE_FACTOR);
            }
        }
        s.cuts_since_quiet += 1;
        s.tokens = 0.0;
        s.epoch += 1;
        s.last_change = now;
        s.taken = 0;
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

    /// `(seconds since the bucket was made, rate per minute)` at the start and at each change
    /// (the last [`MAX_TIMELINE`]), and the number of changes in all.
    pub fn timeline(&self) -> (Vec<(f64, f64)>, u64) {
        let mut s = self.lock();
        self.advance(&mut s, Instant::now());
        (s.timeline.iter().copied().collect(), s.changes)
    }
}

/// Counts a sleeping caller out of the bucket's waiters if its sleep is cancelled.
struct WaiterGuard<'a>(&'a TokenBucket);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.waiters = s.waiters.saturating_sub(1);
    }
}

/// One class's pacing and counters.
#[derive(Debug)]
struct ClassPacer {
    bucket: Option<TokenBucket>,
    calls: std::sync::atomic::AtomicU64,
    rate_limited: std::sync::atomic::AtomicU64,
    activity: std::sync::Mutex<Activity>,
}

/// When a class had calls under way and when it waited for tokens.
#[derive(Debug)]
struct Activity {
    /// Calls of the class begun and not ended (waiting for a slot or a token, or in flight).
    calls: u32,
    /// Since when `calls` is 0 (when it is).
    idle_since: Instant,
    /// Time with no call under way, in all.
    idle: Duration,
    /// `(from, to)` seconds since the pacer was made with no call under way, the last
    /// [`MAX_TIMELINE`] spans.
    idle_spans: std::collections::VecDeque<(f64, f64)>,
    /// Callers waiting for a token of the class.
    waiting: u32,
    /// Since when `waiting` is above 0 (when it is).
    waiting_since: Instant,
    /// Time with at least one caller waiting for a token, in all.
    waited: Duration,
    /// `(from, to)` seconds since the pacer was made with a caller waiting for a token, the
    /// last [`MAX_TIMELINE`] spans.
    wait_spans: std::collections::VecDeque<(f64, f64)>,
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

/// One class's profile since the client started, as [`Pacer::profile`] reports it: cheap
/// counters kept as calls begin and end, not estimates.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassProfile {
    /// The class.
    pub class: CallClass,
    /// Seconds since the client started (the end of every span below).
    pub elapsed_secs: f64,
    /// Seconds with no call of the class under way (the caller had none to make).
    pub idle_secs: f64,
    /// `(from, to)` seconds since the client started with no call of the class under way (the
    /// last 4096 spans, and the one still open, ending at `elapsed_secs`).
    pub idle_spans: Vec<(f64, f64)>,
    /// Seconds with at least one call of the class waiting for a token (paced).
    pub token_wait_secs: f64,
    /// `(from, to)` seconds since the client started with a call of the class waiting for a
    /// token (the last 4096 spans, and the one still open).
    pub token_wait_spans: Vec<(f64, f64)>,
    /// `(seconds since the client started, rate per minute)` at the start and at each change of
    /// the class's paced rate (the last 4096); empty when the class is not paced.
    pub rate_timeline: Vec<(f64, f64)>,
    /// Changes of the paced rate in all.
    pub rate_changes: u64,
}

/// One class's cumulative idle and token-wait seconds (see [`Pacer::totals`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassTotals {
    /// The class.
    pub class: CallClass,
    /// Seconds with no call of the class under way.
    pub idle_secs: f64,
    /// Seconds with a call of the class waiting for a token.
    pub token_wait_secs: f64,
}

/// A call of one class under way: ends when dropped (see [`Pacer::begin`]).
#[derive(Debug)]
pub struct Underway<'a> {
    pacer: &'a Pacer,
    class: CallClass,
}

impl Drop for Underway<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut a = self.pacer.activity(self.class);
        a.calls = a.calls.saturating_sub(1);
        if a.calls == 0 {
            a.idle_since = now;
        }
    }
}

/// The buckets of one client plus its concurrency bound.
#[derive(Debug)]
pub struct Pacer {
    classes: [ClassPacer; 5],
    in_flight: Arc<Semaphore>,
    start: Instant,
}

impl Pacer {
    /// Builds the buckets from `cfg` (a zero rate disables that bucket) and a concurrency bound
    /// of `max_concurrency` (at least 1).
    pub fn new(cfg: &PacingConfig, max_concurrency: usize) -> Self {
        let start = Instant::now();
        let mk = |rate: u32| ClassPacer {
            bucket: (rate > 0).then(|| TokenBucket::with_adaptation(rate, cfg.burst, cfg.adaptive, cfg.recovery_interval)),
            calls: Default::default(),
            rate_limited: Default::default(),
            activity: std::sync::Mutex::new(Activity {
                calls: 0,
                idle_since: start,
                idle: Duration::ZERO,
                idle_spans: Default::default(),
                waiting: 0,
                waiting_since: start,
                waited: Duration::ZERO,
                wait_spans: Default::default(),
            }),
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
            start,
        }
    }

    fn activity(&self, class: CallClass) -> std::sync::MutexGuard<'_, Activity> {
        self.classes[class.index()].activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A call of `class` begins (before it waits for a slot): the class is not idle until the
    /// returned guard is dropped.
    pub fn begin(&self, class: CallClass) -> Underway<'_> {
        let now = Instant::now();
        let mut a = self.activity(class);
        if a.calls == 0 {
            let idle = now.saturating_duration_since(a.idle_since);
            a.idle += idle;
            if !idle.is_zero() {
                if a.idle_spans.len() == MAX_TIMELINE {
                    a.idle_spans.pop_front();
                }
                let from = a.idle_since.saturating_duration_since(self.start).as_secs_f64();
                a.idle_spans.push_back((from, now.saturating_duration_since(self.start).as_secs_f64()));
            }
        }
        a.calls += 1;
        Underway { pacer: self, class }
    }

    /// Waits for a slot in flight (held for one attempt: a call backing off between attempts
    /// releases it, and takes one again before its next attempt).
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.in_flight.clone().acquire_owned().await.ok()
    }

    /// Waits for a token of `class` (taken before every attempt, retries included).
    pub async fn token(&self, class: CallClass) -> Ticket {
        let Some(bucket) = &self.classes[class.index()].bucket else {
            return Ticket { epoch: 0 };
        };
        {
            let mut a = self.activity(class);
            if a.waiting == 0 {
                a.waiting_since = Instant::now();
            }
            a.waiting += 1;
        }
        struct Waiting<'a>(&'a Pacer, CallClass);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                let now = Instant::now();
                let mut a = self.0.activity(self.1);
                a.waiting = a.waiting.saturating_sub(1);
                if a.waiting == 0 {
                    let waited = now.saturating_duration_since(a.waiting_since);
                    a.waited += waited;
                    if !waited.is_zero() {
                        if a.wait_spans.len() == MAX_TIMELINE {
                            a.wait_spans.pop_front();
                        }
                        let start = self.0.start;
                        let span = (a.waiting_since.saturating_duration_since(start).as_secs_f64(), now.saturating_duration_since(start).as_secs_f64());
                        a.wait_spans.push_back(span);
                    }
                }
            }
        }
        let _waiting = Waiting(self, class);
        bucket.acquire().await
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

    /// Seconds since the pacer was made: the clock of [`ClassProfile`]'s spans and timelines.
    pub fn clock_secs(&self) -> f64 {
        Instant::now().saturating_duration_since(self.start).as_secs_f64()
    }

    /// Every class's seconds idle and seconds waiting for a token since the pacer was made, in
    /// [`CallClass::ALL`] order: a cheap snapshot (no spans) whose differences split a run's
    /// phases.
    pub fn totals(&self) -> Vec<ClassTotals> {
        let now = Instant::now();
        CallClass::ALL
            .iter()
            .map(|&class| {
                let a = self.activity(class);
                let mut idle = a.idle;
                if a.calls == 0 {
                    idle += now.saturating_duration_since(a.idle_since);
                }
                let mut waited = a.waited;
                if a.waiting > 0 {
                    waited += now.saturating_duration_since(a.waiting_since);
                }
                ClassTotals { class, idle_secs: idle.as_secs_f64(), token_wait_secs: waited.as_secs_f64() }
            })
            .collect()
    }

    /// Every class's profile since the pacer was made, in [`CallClass::ALL`] order.
    pub fn profile(&self) -> Vec<ClassProfile> {
        let now = Instant::now();
        let secs = |t: Instant| t.saturating_duration_since(self.start).as_secs_f64();
        CallClass::ALL
            .iter()
            .map(|&class| {
                let (rate_timeline, rate_changes) = self.classes[class.index()].bucket.as_ref().map(TokenBucket::timeline).unwrap_or_default();
                let a = self.activity(class);
                let mut idle = a.idle;
                let mut idle_spans: Vec<(f64, f64)> = a.idle_spans.iter().copied().collect();
                if a.calls == 0 {
                    idle += now.saturating_duration_since(a.idle_since);
                    if now > a.idle_since {
                        idle_spans.push((secs(a.idle_since), secs(now)));
                    }
                }
                let mut waited = a.waited;
                let mut token_wait_spans: Vec<(f64, f64)> = a.wait_spans.iter().copied().collect();
                if a.waiting > 0 {
                    waited += now.saturating_duration_since(a.waiting_since);
                    if now > a.waiting_since {
                        token_wait_spans.push((secs(a.waiting_since), secs(now)));
                    }
                }
                ClassProfile {
                    class,
                    elapsed_secs: secs(now),
                    idle_secs: idle.as_secs_f64(),
                    idle_spans,
                    token_wait_secs: waited.as_secs_f64(),
                    token_wait_spans,
                    rate_timeline,
                    rate_changes,
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

    /// Failed probes in a row at the class's learned limit (0: no limit learned).
    fn fails(p: &Pacer, class: CallClass) -> u32 {
        p.classes[class.index()].bucket.as_ref().map_or(0, |b| b.lock().fails)
    }

    #[tokio::test(start_paused = true)]
    async fn a_raised_limit_is_found_within_forty_minutes_even_after_hours_at_a_learned_one() {
        let p = Pacer::new(&PacingConfig { burst: 5, ..cfg(240, 240, 160, 32, 40) }, 4);
        let mut server = Server::new(10.0, 1);
        // Two hours at a limit of 10 a minute: the limit is learned and confirmed again and
        // again, so the probes above it are as far apart as they get (32 minutes).
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120 * 60) {
            drive(&p, CallClass::Bulk, &mut server, 1).await;
        }
        let low = stats(&p, CallClass::Bulk);
        assert!(low.rate_per_minute.is_some_and(|r| r < 12.0), "{low:?}");
        assert!(fails(&p, CallClass::Bulk) >= 4, "the hold-off is at its longest: {} failed probes", fails(&p, CallClass::Bulk));
        // The tenant's limit rises above the ceiling: within forty minutes (the longest hold-off,
        // then the probes' trials and the climb) the rate is back at the ceiling, and no further.
        server.set_limit(60.0);
        let before = low.rate_limited;
        let start = Instant::now();
        while stats(&p, CallClass::Bulk).rate_per_minute != Some(40.0) && start.elapsed() < Duration::from_secs(60 * 60) {
            drive(&p, CallClass::Bulk, &mut server, 1).await;
        }
        let took = start.elapsed().as_secs_f64() / 60.0;
        let s = stats(&p, CallClass::Bulk);
        assert_eq!(s.rate_per_minute, Some(40.0), "{s:?}");
        assert!(took <= 40.0, "back at the ceiling {took:.1} minutes after the limit rose");
        assert!(s.rate_limited - before <= 1, "{} 429s after the limit rose", s.rate_limited - before);
        assert_eq!(fails(&p, CallClass::Bulk), 0, "the old limit is forgotten");
        assert!(server.limit_per_minute > 40.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_on_a_probe_at_a_confirmed_limit_holds_off_the_next_probe_longer_each_time() {
        // Against a limit of 20 a minute (burst 1), each failed probe at the same proven rate
        // multiplies the wait before the next one: the gaps between the 429s grow to half an hour.
        let p = Pacer::new(&PacingConfig { burst: 5, ..cfg(240, 240, 160, 32, 40) }, 4);
        let mut server = Server::new(20.0, 1);
        let start = Instant::now();
        let mut at = Vec::new();
        while start.elapsed() < Duration::from_secs(180 * 60) {
            if drive(&p, CallClass::Bulk, &mut server, 1).await > 0 {
                at.push(start.elapsed().as_secs_f64() / 60.0);
            }
        }
        // Each gap at least the one before, up to the longest hold-off (32 minutes), and one 429
        // per failed probe: at most four in the last two hours (2 400 calls).
        let gaps: Vec<f64> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.len() >= 6, "429s at minutes {at:.1?}");
        for w in gaps.windows(2) {
            assert!(w[1] >= w[0] - 0.5, "429s at minutes {at:.1?}");
        }
        assert!(gaps[gaps.len() - 3..].iter().all(|g| (31.5..=33.0).contains(g)), "429s at minutes {at:.1?}");
        assert!(at.iter().filter(|m| **m >= 60.0).count() <= 4, "429s at minutes {at:.1?}");
    }

    #[tokio::test(start_paused = true)]
    async fn once_a_limit_is_learned_calls_go_evenly_spaced_with_no_burst_after_an_idle_moment() {
        // A fresh class sends its burst of five at once.
        let p = Pacer::new(&PacingConfig { burst: 5, ..cfg(240, 240, 160, 32, 40) }, 4);
        let start = Instant::now();
        for _ in 0..3 {
            p.token(CallClass::Bulk).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "a burst before any limit is learned");
        // Learn a limit of 12 a minute, then idle for a minute.
        let mut server = Server::new(12.0, 2);
        drive(&p, CallClass::Bulk, &mut server, 60).await;
        assert!(fails(&p, CallClass::Bulk) > 0, "a limit is learned");
        tokio::time::sleep(Duration::from_secs(60)).await;
        let rate = stats(&p, CallClass::Bulk).rate_per_minute.unwrap_or_default();
        assert!(rate > 6.0 && rate < 13.0, "{rate}");
        // One token was stored during the idle minute, not five: the next two wait their turn.
        let start = Instant::now();
        for _ in 0..3 {
            p.token(CallClass::Bulk).await;
        }
        let e = start.elapsed().as_secs_f64();
        let spacing = 60.0 / rate;
        assert!(e >= 2.0 * spacing - 0.01, "three calls in {e:.2} s at {rate:.2} a minute ({spacing:.2} s apart)");
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
        // At 2.5/min the next token is 24 s away; a quiet 15 s with a call waiting proves
        // 2.5/min and the rate climbs by half (nothing learned since the halving) to 3.75/min,
        // and the waiting call takes it: 15 s (0.625 of a token) + 0.375 token at 3.75/min (6 s).
        let start = Instant::now();
        p.token(CallClass::Bulk).await;
        let e = start.elapsed().as_secs_f64();
        assert!((20.9..21.1).contains(&e), "{e} s");
    }

    /// What [`drive_for`] saw: calls accepted per class (with when), and 429s (with when).
    #[derive(Default)]
    struct Drove {
        accepted: Vec<(CallClass, Instant)>,
        limited: u64,
        limited_at: Vec<Instant>,
    }

    impl Drove {
        /// Calls of `classes` accepted per minute from `from` to `to` after `start`.
        fn rate(&self, classes: &[CallClass], start: Instant, from: Duration, to: Duration) -> f64 {
            let n = self.accepted.iter().filter(|(c, t)| classes.contains(c) && *t >= start + from && *t < start + to).count();
            n as f64 * 60.0 / (to - from).as_secs_f64()
        }
    }

    /// Four callers per class in `classes` (as the client's concurrency), each sending calls
    /// one after another for `length` through `p` to one shared `server`, a 429 retried (and
    /// paced) as the client retries it.
    async fn drive_for(p: &Arc<Pacer>, classes: &[CallClass], server: &Arc<std::sync::Mutex<Server>>, length: Duration) -> Drove {
        let start = Instant::now();
        let drove = Arc::new(std::sync::Mutex::new(Drove::default()));
        let mut tasks = Vec::new();
        for &class in classes {
            for _ in 0..4 {
                let (p, server, drove) = (p.clone(), server.clone(), drove.clone());
                tasks.push(tokio::spawn(async move {
                    while start.elapsed() < length {
                        let _underway = p.begin(class);
                        let ticket = p.token(class).await;
                        let ok = server.lock().unwrap().admit();
                        // The answer comes back 50 ms later.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        p.finished(class, ticket, !ok);
                        let mut d = drove.lock().unwrap();
                        if ok {
                            d.accepted.push((class, Instant::now()));
                        } else {
                            d.limited += 1;
                            d.limited_at.push(Instant::now());
                        }
                    }
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(drove).ok().unwrap().into_inner().unwrap()
    }

    /// The default pacing (bulk and writes at 240 a minute, lookups at 160, burst 5).
    fn default_pacer() -> Arc<Pacer> {
        Arc::new(Pacer::new(&PacingConfig::default(), 4))
    }

    /// Checks the target: from the second minute on, the calls of `classes` accepted average at
    /// least 0.92 of `limit`; at most 1 % of all calls were answered 429, and once the limit is
    /// learned (from the tenth minute on) at most 0.1 % of the calls made since.
    fn assert_holds_near(drove: &Drove, classes: &[CallClass], start: Instant, minutes: u64, limit: f64) {
        let rate = drove.rate(classes, start, Duration::from_secs(60), Duration::from_secs(60 * minutes));
        let calls = drove.accepted.len() as u64 + drove.limited;
        assert!(rate >= 0.92 * limit && rate <= limit * 1.01, "accepted {rate:.1} a minute after the first minute against a limit of {limit}");
        assert!(drove.limited * 100 <= calls, "{} 429s in {calls} calls", drove.limited);
        let settled = start + Duration::from_secs(10 * 60);
        let late_limited = drove.limited_at.iter().filter(|t| **t >= settled).count();
        let late_calls = late_limited + drove.accepted.iter().filter(|(_, t)| *t >= settled).count();
        assert!(late_limited * 1000 <= late_calls, "{late_limited} 429s in the {late_calls} calls after the tenth minute (all 429s at minutes {:?})", drove.limited_at.iter().map(|t| (*t - start).as_secs() / 60).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn bulk_in_its_own_class_at_50_a_minute_is_found_from_240_and_held_near_it() {
        let p = default_pacer();
        let server = Arc::new(std::sync::Mutex::new(Server::new(50.0, 5)));
        let start = Instant::now();
        // Three hours: long enough for the probes above the learned limit to space out.
        let drove = drive_for(&p, &[CallClass::Bulk], &server, Duration::from_secs(180 * 60)).await;
        assert_holds_near(&drove, &[CallClass::Bulk], start, 180, 50.0);
        // And in every ten minutes after the first, not only on average.
        for m in (1..170).step_by(10) {
            let r = drove.rate(&[CallClass::Bulk], start, Duration::from_secs(60 * m), Duration::from_secs(60 * (m + 10)));
            assert!(r >= 0.92 * 50.0, "{r:.1} a minute in minutes {m}–{}", m + 10);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bulk_and_writes_sharing_duos_write_class_of_300_a_minute_hold_near_it_together() {
        let p = default_pacer();
        let server = Arc::new(std::sync::Mutex::new(Server::new(300.0, 5)));
        let start = Instant::now();
        let drove = drive_for(&p, &[CallClass::Write, CallClass::Bulk], &server, Duration::from_secs(20 * 60)).await;
        assert_holds_near(&drove, &[CallClass::Write, CallClass::Bulk], start, 20, 300.0);
        // Neither class starves the other.
        for class in [CallClass::Write, CallClass::Bulk] {
            let r = drove.rate(&[class], start, Duration::from_secs(60), Duration::from_secs(20 * 60));
            assert!(r >= 0.25 * 300.0, "{} got {r:.1} a minute of 300", class.name());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bulk_alone_in_the_write_class_at_300_a_minute_stays_at_its_ceiling() {
        let p = default_pacer();
        let server = Arc::new(std::sync::Mutex::new(Server::new(300.0, 5)));
        let start = Instant::now();
        let drove = drive_for(&p, &[CallClass::Bulk], &server, Duration::from_secs(10 * 60)).await;
        assert_eq!(drove.limited, 0);
        let r = drove.rate(&[CallClass::Bulk], start, Duration::from_secs(60), Duration::from_secs(10 * 60));
        assert!(r >= 0.99 * 240.0, "{r:.1} a minute, ceiling 240");
        assert_eq!(stats(&p, CallClass::Bulk).lowest_per_minute, Some(240.0));
    }

    #[tokio::test(start_paused = true)]
    async fn list_lookups_limited_to_40_a_minute_are_found_from_160_and_held_near_it() {
        let p = default_pacer();
        let server = Arc::new(std::sync::Mutex::new(Server::new(40.0, 5)));
        let start = Instant::now();
        let drove = drive_for(&p, &[CallClass::ListLookup], &server, Duration::from_secs(60 * 60)).await;
        assert_holds_near(&drove, &[CallClass::ListLookup], start, 60, 40.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_class_under_no_limit_stays_at_its_ceiling_and_is_profiled_busy() {
        let p = default_pacer();
        let server = Arc::new(std::sync::Mutex::new(Server::new(1_000_000.0, 1_000)));
        let start = Instant::now();
        let drove = drive_for(&p, &[CallClass::Bulk], &server, Duration::from_secs(5 * 60)).await;
        assert_eq!(drove.limited, 0);
        let r = drove.rate(&[CallClass::Bulk], start, Duration::ZERO, Duration::from_secs(5 * 60));
        assert!((239.0..=242.0).contains(&r), "{r:.1} a minute, ceiling 240 (burst 5 included)");
        let profile = p.profile().into_iter().find(|c| c.class == CallClass::Bulk).unwrap();
        assert_eq!(profile.rate_timeline, vec![(0.0, 240.0)], "never cut");
        assert!(profile.idle_secs < 0.1, "busy throughout: {profile:?}");
        assert!(profile.token_wait_secs > 290.0, "paced throughout: {profile:?}");
        let writes = p.profile().into_iter().find(|c| c.class == CallClass::Write).unwrap();
        assert!(writes.idle_secs >= 300.0 && writes.idle_spans.len() == 1, "{writes:?}");
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

