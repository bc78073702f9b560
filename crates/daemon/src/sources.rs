//! Sources in the daemon: each configured source with a schedule is read in full on that schedule
//! (an interval or a cron expression in UTC, and once at start), and a source that can tell
//! cheaply whether it changed (an LDAP directory's `modifyTimestamp`) is asked every
//! `poll_interval` and read in full when it did. Deletions are visible only to a full read, which
//! is why the schedule stays. What a run does is behind [`SourceJob`] (the CLI reads the source
//! and mirrors it); this loop keeps the schedule, takes the `source:NAME` lock so two daemons on
//! one registry do not run the same source at once, and reports each run on `/readyz` and in
//! `/metrics`. A refused or failed run changes nothing, is retried on the schedule, and never
//! stops the provisioners.
//!
//! A source with a change feed (an LDAP directory offering syncrepl, RFC 4533) is followed
//! instead of polled: a watcher task keeps the feed connected (reconnecting with backoff), and
//! each change it reports makes a full read due once the changes pause for [`FEED_QUIET`] (or at
//! most [`FEED_MAX`] after the first); a full read stays the one path that writes the registry.
//! Connecting (and reconnecting) counts as a change, since changes made before may have been
//! missed. While the feed is not connected the source is polled (if it has a `poll_interval`).
//!
//! Sources run first: while a source's read is due or under way, the [`SourceGate`] holds the
//! provisioners' next runs back (up to [`GATE_WAIT`]), so a provisioner due at the same moment
//! provisions what the source just wrote.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use duoprov_registry::Store;
use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::http::Shared;
use crate::schedule::{FullSyncSchedule, failure_backoff};

/// How a source run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRan {
    Applied,
    Unchanged,
    /// The safety rules refused it; nothing changed. The text says what and how to approve.
    Refused(String),
}

impl SourceRan {
    fn result(&self) -> &'static str {
        match self {
            SourceRan::Applied => "applied",
            SourceRan::Unchanged => "unchanged",
            SourceRan::Refused(_) => "refused",
        }
    }
}

/// What the daemon asks of one source.
#[async_trait::async_trait]
pub trait SourceJob: Send + Sync + 'static {
    /// Reads the whole source and mirrors it into the registry.
    async fn run(&self) -> Result<SourceRan>;
    /// Whether the source changed at or after `since_ms` (milliseconds since the epoch); `None`
    /// when the source cannot tell without a full read.
    async fn changed_since(&self, since_ms: i64) -> Result<Option<bool>>;
    /// The source's live feed of changes (LDAP syncrepl), if it may have one.
    fn feed(&self) -> Option<Arc<dyn ChangeFeed>> {
        None
    }
}

/// A live feed of a source's changes.
#[async_trait::async_trait]
pub trait ChangeFeed: Send + Sync + 'static {
    /// Connects and returns once the feed reports every change from now on; `Ok(None)` when
    /// the source does not offer a feed (the daemon polls instead, and asks again after
    /// [`FEED_RECHECK`]).
    async fn connect(&self) -> Result<Option<Box<dyn ChangeStream>>>;
}

/// A connected feed.
#[async_trait::async_trait]
pub trait ChangeStream: Send {
    /// Waits for the next change and returns what it names (a DN); `Err` when the feed ended
    /// (the daemon reconnects).
    async fn next_change(&mut self) -> Result<String>;
}

/// How long a feed's changes must pause before the full read they call for.
pub const FEED_QUIET: Duration = Duration::from_millis(500);
/// The longest a burst of changes delays the full read after its first change.
pub const FEED_MAX: Duration = Duration::from_secs(5);
/// How long after a source said it offers no feed it is asked again.
pub const FEED_RECHECK: Duration = Duration::from_secs(600);


/// Changes a feed reported that no full read has covered yet.
#[derive(Debug, Default)]
struct FeedState {
    /// The first and the last uncovered change (milliseconds since the epoch).
    pending: Mutex<Option<(i64, i64)>>,
    connected: AtomicBool,
    wake: Notify,
    /// When the feed last reported a change (connecting is not one), milliseconds since the
    /// epoch; 0 before the first.
    last_reported: std::sync::atomic::AtomicI64,
}

impl FeedState {
    fn changed(&self, at_ms: i64) {
        if let Ok(mut p) = self.pending.lock() {
            *p = Some(p.map_or((at_ms, at_ms), |(first, _)| (first, at_ms)));
        }
        self.wake.notify_waiters();
    }

    /// When the full read the pending changes call for is due.
    fn due(&self) -> Option<i64> {
        let p = self.pending.lock().ok().and_then(|p| *p)?;
        Some((p.1 + FEED_QUIET.as_millis() as i64).min(p.0 + FEED_MAX.as_millis() as i64))
    }

    /// A full read starts now: it covers every change reported so far.
    fn covered(&self) {
        if let Ok(mut p) = self.pending.lock() {
            *p = None;
        }
    }
}

/// When a source runs.
#[derive(Debug, Clone)]
pub struct SourceSchedule {
    /// Full reads.
    pub read: FullSyncSchedule,
    /// How often to ask the source whether it changed (LDAP `modifyTimestamp`); `None` for no
    /// polling.
    pub poll_interval: Option<Duration>,
}

/// The longest a provisioner run waits for the sources due before it.
pub const GATE_WAIT: Duration = Duration::from_secs(600);

/// When each source's next read is due; provisioner runs wait while one is due.
#[derive(Debug, Default)]
pub struct SourceGate {
    due: Mutex<BTreeMap<String, i64>>,
    changed: Notify,
}

impl SourceGate {
    /// Records when `source`'s next read is due (`i64::MAX`: not before a change is seen).
    pub fn set(&self, source: &str, due_ms: i64) {
        if let Ok(mut d) = self.due.lock() {
            d.insert(source.to_owned(), due_ms);
        }
        self.changed.notify_waiters();
    }

    /// When `source`'s next read is due, if recorded.
    pub fn due(&self, source: &str) -> Option<i64> {
        self.due.lock().ok().and_then(|d| d.get(source).copied())
    }

    fn blocking(&self, now_ms: i64) -> Vec<String> {
        self.due.lock().map(|d| d.iter().filter(|(_, t)| **t <= now_ms).map(|(n, _)| n.clone()).collect()).unwrap_or_default()
    }

    /// Waits until no source read is due at `now_ms` (run first what is due now), at most
    /// `limit`; false when it gave up waiting.
    pub async fn wait_for_sources(&self, now_ms: i64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if self.blocking(now_ms).is_empty() {
                return true;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(sources = %self.blocking(now_ms).join(", "), "Sources due before this run are still reading; running the provisioner without waiting longer.");
                    return false;
                }
            }
        }
    }
}

/// One source's loop.
pub struct SourceLoop {
    pub name: String,
    pub job: Arc<dyn SourceJob>,
    pub schedule: SourceSchedule,
    pub store: Arc<dyn Store>,
    pub shared: Arc<Shared>,
    pub clock: Arc<dyn Clock>,
}

/// How far back a `modifyTimestamp` poll looks past the start of the last read: the directory's
/// clock and this machine's may differ, and the timestamps have whole seconds.
const POLL_OVERLAP_MS: i64 = 2_000;

impl SourceLoop {
    /// Runs the source on its schedule until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(source = %self.name, read = %self.schedule.read.describe(), poll_ms = self.schedule.poll_interval.map(|d| d.as_millis() as u64), "Running this source.");
        // The read at start is due from the moment the daemon registered this source, so a
        // provisioner starting alongside waits for it.
        let mut next_read = self.shared.source_gate.due(&self.name).unwrap_or_else(|| self.clock.now_ms()).min(self.clock.now_ms());
        let mut next_poll: Option<i64> = None;
        // When the last successful read started: a change after it needs another read.
        let mut read_from: Option<i64> = None;
        let mut failures = 0u32;
        let feed_state = Arc::new(FeedState::default());
        let feed = self.job.feed();
        let polling = if self.schedule.poll_interval.is_some() { "polling" } else { "schedule" };
        self.shared.update_source(&self.name, |s| {
            s.mode = Some(if feed.is_some() { "syncrepl" } else { polling }.into());
            s.connected = feed.as_ref().map(|_| false);
        });
        let mut watcher = None;
        if let Some(feed) = feed {
            let w = Watcher {
                name: self.name.clone(),
                feed,
                state: feed_state.clone(),
                shared: self.shared.clone(),
                clock: self.clock.clone(),
                polling,
                store: self.store.clone(),
                recorded: Mutex::new(None),
            };
            watcher = Some(tokio::spawn(w.run(stop.clone())));
        }
        // The last reported change recorded in the registry.
        let mut change_recorded = 0;
        loop {
            if *stop.borrow() {
                break;
            }
            let now = self.clock.now_ms();
            let mut due = now >= next_read;
            if !due && feed_state.due().is_some_and(|t| now >= t) {
                tracing::info!(source = %self.name, "The source's feed reported changes; reading it now.");
                due = true;
            }
            let following = feed_state.connected.load(Ordering::SeqCst);
            if !due
                && !following
                && let (Some(at), Some(from)) = (next_poll, read_from)
                && now >= at
            {
                next_poll = self.schedule.poll_interval.map(|p| now + p.as_millis() as i64);
                match self.job.changed_since(from - POLL_OVERLAP_MS).await {
                    Ok(Some(true)) => {
                        tracing::info!(source = %self.name, "The source changed since its last read; reading it now.");
                        due = true;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(source = %self.name, error = format!("{e:#}"), "Asking the source for changes failed; its next full read is on schedule."),
                }
            }
            if due {
                // Held back from the moment the read fell due (never later): a provisioner run due
                // in between waits for it.
                self.shared.source_gate.set(&self.name, if now >= next_read { next_read } else { now });
                let started = now;
                feed_state.covered();
                // The read covers the changes reported so far: the last of them goes to the
                // registry for `duoprov source status` (once per read, not once per change).
                let last = feed_state.last_reported.load(Ordering::SeqCst);
                if last > change_recorded {
                    change_recorded = last;
                    if let Err(e) = self.store.record_source_feed_change(&self.name, last).await {
                        tracing::warn!(source = %self.name, error = %e, "Cannot record the feed's last change in the registry; `duoprov source status` shows an older one.");
                    }
                }
                match self.once().await {
                    Ok(true) => {
                        failures = 0;
                        read_from = Some(started);
                        if now >= next_read {
                            next_read = self.schedule.read.next_after(self.clock.now_ms());
                        }
                    }
                    // Busy (another daemon runs it) or refused: retried on schedule.
                    Ok(false) => {
                        failures = 0;
                        if now >= next_read {
                            next_read = self.schedule.read.next_after(self.clock.now_ms());
                        }
                    }
                    Err(()) => {
                        failures = failures.saturating_add(1);
                        next_read = self.clock.now_ms() + failure_backoff(failures).as_millis() as i64;
                    }
                }
                next_poll = self.schedule.poll_interval.map(|p| self.clock.now_ms() + p.as_millis() as i64);
                // Provisioners wait for a read due now, not for one due later.
                self.shared.source_gate.set(&self.name, next_read);
                self.shared.update_source(&self.name, |s| s.next_read_at_ms = Some(next_read));
            }
            let now = self.clock.now_ms();
            let woken = feed_state.wake.notified();
            let following = feed_state.connected.load(Ordering::SeqCst);
            let until = next_poll.filter(|_| read_from.is_some() && !following).map_or(next_read, |p| p.min(next_read));
            let until = feed_state.due().map_or(until, |t| t.min(until));
            let wait = Duration::from_millis((until - now).clamp(0, 3_600_000) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = woken => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        // The watcher records that the daemon no longer follows the feed before it ends.
        if let Some(w) = watcher {
            let _ = w.await;
        }
    }

    /// One run under the `source:NAME` lock: `Ok(true)` when it applied or found nothing to do,
    /// `Ok(false)` when it was refused or another process held the lock, `Err` when it failed.
    async fn once(&self) -> Result<bool, ()> {
        let lock = match self.store.try_lock_runner(&format!("source:{}", self.name)).await {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                tracing::info!(source = %self.name, "Another process is running this source; skipping this turn.");
                return Ok(false);
            }
            Err(e) => {
                self.failed(&format!("cannot take the source's lock in the registry: {e}"));
                return Err(());
            }
        };
        let result = self.job.run().await;
        drop(lock);
        let at = self.clock.now_ms();
        match result {
            Ok(ran) => {
                self.shared.metrics.source_run(&self.name, ran.result());
                let detail = match &ran {
                    SourceRan::Refused(why) => {
                        tracing::warn!(source = %self.name, "Source run refused by its safety rules; nothing changed, the provisioners go on: {why}");
                        Some(why.clone())
                    }
                    _ => {
                        tracing::info!(source = %self.name, result = ran.result(), "Source run finished.");
                        None
                    }
                };
                self.shared.update_source(&self.name, |s| {
                    s.last_result = Some(ran.result().into());
                    s.last_run_at_ms = Some(at);
                    s.detail = detail;
                });
                Ok(!matches!(ran, SourceRan::Refused(_)))
            }
            Err(e) => {
                self.failed(&format!("{e:#}"));
                Err(())
            }
        }
    }

    fn failed(&self, message: &str) {
        tracing::error!(source = %self.name, error = message, "Source run failed; nothing changed, the provisioners go on.");
        self.shared.metrics.source_run(&self.name, "failed");
        let at = self.clock.now_ms();
        self.shared.update_source(&self.name, |s| {
            s.last_result = Some("failed".into());
            s.last_run_at_ms = Some(at);
            s.detail = Some(message.to_owned());
        });
    }
}

/// A feed state as last written to the registry: mode, connected, error, since (ms).
type Recorded = (String, Option<bool>, Option<String>, i64);

/// Keeps a source's change feed connected and records what it reports, on `/readyz`, in
/// `/metrics` and in the registry (`source_feed`, for `duoprov source status`).
struct Watcher {
    name: String,
    feed: Arc<dyn ChangeFeed>,
    state: Arc<FeedState>,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    /// The mode shown when the source offers no feed.
    polling: &'static str,
    store: Arc<dyn Store>,
    /// The state last written to the registry.
    recorded: Mutex<Option<Recorded>>,
}

impl Watcher {
    async fn run(self, stop: watch::Receiver<bool>) {
        self.follow(stop).await;
        self.record("stopped", None, Some("the daemon stopped; nothing follows the source's changes until it runs again".into())).await;
    }

    /// Writes the feed's state to the registry when it differs from the last one written; the
    /// time it began is kept while the mode and the connection stay the same (repeated failed
    /// reconnections keep "down since" at the first).
    async fn record(&self, mode: &str, connected: Option<bool>, error: Option<String>) {
        let now = self.clock.now_ms();
        let since = {
            let Ok(last) = self.recorded.lock() else { return };
            match &*last {
                Some((m, c, e, _)) if m == mode && *c == connected && *e == error => return,
                Some((m, c, _, since)) if m == mode && *c == connected => *since,
                _ => now,
            }
        };
        let state = duoprov_registry::SourceFeedState {
            source: self.name.clone(),
            mode: mode.to_owned(),
            connected,
            since_ms: since,
            last_change_ms: None,
            error: error.clone(),
            updated_at_ms: now,
        };
        match self.store.record_source_feed(&state).await {
            Ok(()) => {
                if let Ok(mut last) = self.recorded.lock() {
                    *last = Some((mode.to_owned(), connected, error, since));
                }
            }
            Err(e) => tracing::warn!(source = %self.name, error = %e, "Cannot record the change feed's state in the registry; `duoprov source status` shows an older one."),
        }
    }

    async fn follow(&self, mut stop: watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let wait = match self.feed.connect().await {
                Ok(Some(mut stream)) => {
                    tracing::info!(source = %self.name, "Following the source's changes (syncrepl); reading it in full now, since changes made before may have been missed.");
                    // Recorded first: once `/readyz` says connected, the stream is being read.
                    self.record("syncrepl", Some(true), None).await;
                    self.connected(true, None);
                    self.state.changed(self.clock.now_ms());
                    let error = loop {
                        tokio::select! {
                            change = stream.next_change() => match change {
                                Ok(what) => {
                                    tracing::debug!(source = %self.name, entry = %what, "The source reported a change.");
                                    self.shared.metrics.source_change_seen(&self.name);
                                    let now = self.clock.now_ms();
                                    self.state.last_reported.store(now, Ordering::SeqCst);
                                    self.state.changed(now);
                                }
                                Err(e) => break format!("{e:#}"),
                            },
                            _ = stop.wait_for(|s| *s) => return,
                        }
                    };
                    drop(stream);
                    failures = 1;
                    tracing::warn!(source = %self.name, error = %error, "The source's change feed dropped; reconnecting (it is polled meanwhile if it has a poll_interval).");
                    self.record("syncrepl", Some(false), Some(error.clone())).await;
                    self.connected(false, Some(error));
                    failure_backoff(failures)
                }
                Ok(None) => {
                    tracing::info!(source = %self.name, "The source offers no change feed (syncrepl); polling it instead.");
                    self.state.connected.store(false, Ordering::SeqCst);
                    self.shared.update_source(&self.name, |s| {
                        s.mode = Some(self.polling.into());
                        s.connected = None;
                        s.feed_error = None;
                    });
                    self.record(self.polling, None, None).await;
                    FEED_RECHECK
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let error = format!("{e:#}");
                    tracing::warn!(source = %self.name, error = %error, "Cannot follow the source's changes; retrying (it is polled meanwhile if it has a poll_interval).");
                    self.record("syncrepl", Some(false), Some(error.clone())).await;
                    self.connected(false, Some(error));
                    failure_backoff(failures)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    fn connected(&self, connected: bool, error: Option<String>) {
        self.state.connected.store(connected, Ordering::SeqCst);
        self.shared.metrics.source_feed(&self.name, connected);
        self.shared.update_source(&self.name, |s| {
            s.mode = Some("syncrepl".into());
            s.connected = Some(connected);
            s.feed_error = error;
        });
        self.state.wake.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    //! The source loop against a stand-in source and an in-memory registry, in real time with
    //! short intervals; every wait polls for its condition with a deadline.

    use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering::SeqCst};

    use super::*;
    use crate::clock::SystemClock;

    #[derive(Default)]
    struct Fake {
        runs: AtomicUsize,
        /// Whether `changed_since` finds a change (cleared by a run).
        changed: AtomicBool,
        last_since: AtomicI64,
        refuse: AtomicBool,
        /// While set, a run waits for `release`.
        hold: AtomicBool,
        started: AtomicBool,
        release: Notify,
    }

    #[async_trait::async_trait]
    impl SourceJob for Fake {
        async fn run(&self) -> Result<SourceRan> {
            self.started.store(true, SeqCst);
            if self.hold.load(SeqCst) {
                self.release.notified().await;
            }
            self.changed.store(false, SeqCst);
            self.runs.fetch_add(1, SeqCst);
            Ok(if self.refuse.load(SeqCst) { SourceRan::Refused("answered empty; approve with --approve abc".into()) } else { SourceRan::Applied })
        }
        async fn changed_since(&self, since_ms: i64) -> Result<Option<bool>> {
            self.last_since.store(since_ms, SeqCst);
            Ok(Some(self.changed.load(SeqCst)))
        }
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "{what}: not within 10 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn start(fake: Arc<Fake>, shared: Arc<Shared>) -> watch::Sender<bool> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        shared.source_gate.set("s", clock.now_ms());
        start_registered(fake, shared).await
    }

    /// Starts the loop for a source the daemon already registered on the gate.
    async fn start_registered(job: Arc<dyn SourceJob>, shared: Arc<Shared>) -> watch::Sender<bool> {
        let store: Arc<dyn Store> = Arc::from(duoprov_registry::open("sqlite::memory:", &Default::default()).await.unwrap());
        start_on(job, shared, store).await.0
    }

    /// Starts the loop on `store`; also returns the loop's task.
    async fn start_on(job: Arc<dyn SourceJob>, shared: Arc<Shared>, store: Arc<dyn Store>) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let l = SourceLoop {
            name: "s".into(),
            job,
            schedule: SourceSchedule { read: FullSyncSchedule::Every(Duration::from_secs(3600)), poll_interval: Some(Duration::from_millis(20)) },
            store,
            shared,
            clock,
        };
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(l.run(rx));
        (tx, task)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_seen_by_polling_triggers_a_full_read_between_scheduled_reads() {
        let fake = Arc::new(Fake::default());
        let shared = Arc::new(Shared::default());
        let before = SystemClock.now_ms();
        let stop = start(fake.clone(), shared.clone()).await;
        until("the read at start", || fake.runs.load(SeqCst) == 1).await;
        // Polls find nothing: no further read (the next scheduled one is an hour away).
        until("a poll", || fake.last_since.load(SeqCst) != 0).await;
        assert!(fake.last_since.load(SeqCst) >= before - POLL_OVERLAP_MS, "polls ask from the start of the last read");
        assert_eq!(fake.runs.load(SeqCst), 1);
        fake.changed.store(true, SeqCst);
        until("the read after the change", || fake.runs.load(SeqCst) == 2).await;
        assert_eq!(shared.sources.lock().unwrap()["s"].last_result.as_deref(), Some("applied"));
        let _ = stop.send(true);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_provisioner_run_due_with_a_source_read_waits_for_it_and_a_refusal_is_reported() {
        let fake = Arc::new(Fake { hold: AtomicBool::new(true), refuse: AtomicBool::new(true), ..Default::default() });
        let shared = Arc::new(Shared::default());
        let stop = start(fake.clone(), shared.clone()).await;
        let now = SystemClock.now_ms();
        let gate = shared.clone();
        let provisioner = tokio::spawn(async move { gate.source_gate.wait_for_sources(now, Duration::from_secs(10)).await });
        until("the source read under way", || fake.started.load(SeqCst)).await;
        assert!(!provisioner.is_finished(), "the provisioner ran while the source was reading");
        fake.release.notify_one();
        assert!(provisioner.await.unwrap(), "the provisioner waited for the source, not for its deadline");
        assert_eq!(fake.runs.load(SeqCst), 1);
        until("the refusal on the status page", || shared.sources.lock().unwrap().get("s").and_then(|s| s.last_result.clone()).as_deref() == Some("refused")).await;
        let detail = shared.sources.lock().unwrap()["s"].detail.clone().unwrap_or_default();
        assert!(detail.contains("--approve"), "{detail}");
        assert!(shared.metrics.encode().contains("duoprov_source_refused{source=\"s\"} 1"));
        // A source due later holds nothing back.
        assert!(shared.source_gate.wait_for_sources(SystemClock.now_ms(), Duration::from_millis(1)).await);
        let _ = stop.send(true);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_provisioner_due_between_registration_and_the_loops_first_step_still_waits() {
        // The daemon registers the source, and its loop takes its first step a little later; a
        // provisioner run due in between waits for the read at start.
        let fake = Arc::new(Fake { hold: AtomicBool::new(true), ..Default::default() });
        let shared = Arc::new(Shared::default());
        let registered = SystemClock.now_ms();
        shared.source_gate.set("s", registered);
        let provisioner_due = registered + 1;
        tokio::time::sleep(Duration::from_millis(30)).await;
        let stop = start_registered(fake.clone(), shared.clone()).await;
        until("the source read under way", || fake.started.load(SeqCst)).await;
        let gate = shared.clone();
        let provisioner = tokio::spawn(async move { gate.source_gate.wait_for_sources(provisioner_due, Duration::from_secs(10)).await });
        // The provisioner is still waiting once the read is under way and the gate is settled.
        assert!(shared.source_gate.due("s").is_some_and(|t| t <= provisioner_due), "the read at start is recorded as due at registration");
        assert!(!provisioner.is_finished(), "the provisioner ran while the source was reading");
        fake.release.notify_one();
        assert!(provisioner.await.unwrap(), "the provisioner waited for the source, not for its deadline");
        assert_eq!(fake.runs.load(SeqCst), 1);
        let _ = stop.send(true);
    }

    /// A stand-in feed: `connect` answers `offer` (refusing while `down`), and each connected
    /// stream reports the changes sent on `changes` until `drop_feed` is notified.
    struct FakeFeed {
        offer: AtomicBool,
        /// When (on tokio's clock) each connect was asked.
        asked: Mutex<Vec<tokio::time::Instant>>,
        down: AtomicBool,
        connects: AtomicUsize,
        changes: tokio::sync::broadcast::Sender<String>,
        drop_feed: Arc<Notify>,
    }

    struct FakeStream(tokio::sync::broadcast::Receiver<String>, Arc<Notify>);

    #[async_trait::async_trait]
    impl ChangeStream for FakeStream {
        async fn next_change(&mut self) -> Result<String> {
            tokio::select! {
                c = self.0.recv() => Ok(c?),
                _ = self.1.notified() => anyhow::bail!("connection to ldap://127.0.0.1:1 dropped"),
            }
        }
    }

    #[async_trait::async_trait]
    impl ChangeFeed for FakeFeed {
        async fn connect(&self) -> Result<Option<Box<dyn ChangeStream>>> {
            if self.down.load(SeqCst) {
                anyhow::bail!("cannot connect to LDAP server ldap://127.0.0.1:1");
            }
            self.connects.fetch_add(1, SeqCst);
            self.asked.lock().unwrap().push(tokio::time::Instant::now());
            Ok(self.offer.load(SeqCst).then(|| Box::new(FakeStream(self.changes.subscribe(), self.drop_feed.clone())) as Box<dyn ChangeStream>))
        }
    }

    struct Fed(Arc<Fake>, Arc<FakeFeed>);

    #[async_trait::async_trait]
    impl SourceJob for Fed {
        async fn run(&self) -> Result<SourceRan> {
            self.0.run().await
        }
        async fn changed_since(&self, since_ms: i64) -> Result<Option<bool>> {
            self.0.changed_since(since_ms).await
        }
        fn feed(&self) -> Option<Arc<dyn ChangeFeed>> {
            Some(self.1.clone())
        }
    }

    fn fake_feed(offer: bool) -> Arc<FakeFeed> {
        Arc::new(FakeFeed { offer: AtomicBool::new(offer), asked: Mutex::default(), down: AtomicBool::new(false), connects: AtomicUsize::new(0), changes: tokio::sync::broadcast::channel(16).0, drop_feed: Arc::new(Notify::new()) })
    }

    async fn start_fed(fake: Arc<Fake>, feed: Arc<FakeFeed>, shared: Arc<Shared>) -> watch::Sender<bool> {
        shared.source_gate.set("s", SystemClock.now_ms());
        start_registered(Arc::new(Fed(fake, feed)), shared).await
    }

    fn status(shared: &Shared) -> crate::http::SourceStatus {
        shared.sources.lock().unwrap().get("s").cloned().unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_feed_changes_makes_one_full_read_and_polling_stops_while_the_feed_is_connected() {
        let fake = Arc::new(Fake::default());
        let feed = fake_feed(true);
        let shared = Arc::new(Shared::default());
        let stop = start_fed(fake.clone(), feed.clone(), shared.clone()).await;
        until("the feed connected", || status(&shared).connected == Some(true)).await;
        assert_eq!(status(&shared).mode.as_deref(), Some("syncrepl"));
        // The read at start, and the read connecting calls for (it may be the same one).
        until("the reads after connecting", || fake.runs.load(SeqCst) >= 1 && fake_feed_settled(&shared)).await;
        tokio::time::sleep(FEED_QUIET * 2).await;
        let settled = fake.runs.load(SeqCst);
        fake.last_since.store(0, SeqCst);
        fake.changed.store(true, SeqCst);
        // Three changes in a burst: one read once they pause.
        for dn in ["uid=a", "uid=b", "uid=c"] {
            feed.changes.send(dn.into()).unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        until("the read the changes call for", || fake.runs.load(SeqCst) == settled + 1).await;
        let t = tokio::time::Instant::now();
        until("the burst settled", || t.elapsed() > FEED_QUIET * 2).await;
        assert_eq!(fake.runs.load(SeqCst), settled + 1, "a burst of changes makes one read");
        assert_eq!(fake.last_since.load(SeqCst), 0, "a source whose feed is connected is not polled");
        assert!(shared.metrics.encode().contains("duoprov_source_changes_seen_total{source=\"s\"} 3"), "{}", shared.metrics.encode());
        assert!(shared.metrics.encode().contains("duoprov_source_feed_connected{source=\"s\"} 1"));
        let _ = stop.send(true);
    }

    fn fake_feed_settled(shared: &Shared) -> bool {
        shared.source_gate.due("s").is_some_and(|t| t > SystemClock.now_ms())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_feed_is_polled_meanwhile_reconnected_with_backoff_and_read_in_full_after_reconnecting() {
        let fake = Arc::new(Fake::default());
        let feed = fake_feed(true);
        let shared = Arc::new(Shared::default());
        let stop = start_fed(fake.clone(), feed.clone(), shared.clone()).await;
        until("the feed connected", || status(&shared).connected == Some(true)).await;
        until("the reads after connecting", || fake.runs.load(SeqCst) >= 1 && fake_feed_settled(&shared)).await;
        feed.down.store(true, SeqCst);
        feed.drop_feed.notify_waiters();
        until("the drop on the status page", || status(&shared).connected == Some(false)).await;
        let s = status(&shared);
        assert!(s.feed_error.as_deref().unwrap_or_default().contains("ldap://127.0.0.1:1"), "{s:?}");
        assert!(shared.metrics.encode().contains("duoprov_source_feed_connected{source=\"s\"} 0"));
        // Polled while the feed is down.
        fake.last_since.store(0, SeqCst);
        until("a poll while the feed is down", || fake.last_since.load(SeqCst) != 0).await;
        let before = fake.runs.load(SeqCst);
        feed.down.store(false, SeqCst);
        until("the feed reconnected", || status(&shared).connected == Some(true)).await;
        assert!(status(&shared).feed_error.is_none());
        until("the read after reconnecting", || fake.runs.load(SeqCst) > before).await;
        assert_eq!(feed.connects.load(SeqCst), 2);
        let _ = stop.send(true);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_source_offering_no_feed_is_polled_and_shown_as_polling() {
        let fake = Arc::new(Fake::default());
        let shared = Arc::new(Shared::default());
        let stop = start_fed(fake.clone(), fake_feed(false), shared.clone()).await;
        until("the fallback on the status page", || status(&shared).mode.as_deref() == Some("polling")).await;
        assert_eq!(status(&shared).connected, None);
        until("the read at start", || fake.runs.load(SeqCst) == 1).await;
        fake.changed.store(true, SeqCst);
        until("the read after the change polling saw", || fake.runs.load(SeqCst) == 2).await;
        let _ = stop.send(true);
    }

    fn feed_row(store: &Arc<dyn Store>) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<duoprov_registry::SourceFeedState>> + Send>> {
        let store = store.clone();
        move || {
            let store = store.clone();
            Box::pin(async move { store.source_feeds().await.unwrap().into_iter().find(|f| f.source == "s") })
        }
    }

    async fn until_row(what: &str, row: &impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<duoprov_registry::SourceFeedState>> + Send>>, f: impl Fn(&duoprov_registry::SourceFeedState) -> bool) -> duoprov_registry::SourceFeedState {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = row().await.filter(|r| f(r)) {
                return r;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: not within 10 s (row: {:?})", row().await);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_feeds_state_down_since_and_last_change_are_recorded_in_the_registry_and_a_stop_marks_it_stopped() {
        let fake = Arc::new(Fake::default());
        let feed = fake_feed(true);
        let shared = Arc::new(Shared::default());
        let store: Arc<dyn Store> = Arc::from(duoprov_registry::open("sqlite::memory:", &Default::default()).await.unwrap());
        shared.source_gate.set("s", SystemClock.now_ms());
        let (stop, task) = start_on(Arc::new(Fed(fake.clone(), feed.clone())), shared.clone(), store.clone()).await;
        let row = feed_row(&store);
        let up = until_row("connected in the registry", &row, |r| r.mode == "syncrepl" && r.connected == Some(true)).await;
        assert_eq!((up.error.as_deref(), up.last_change_ms), (None, None), "connecting is no change: {up:?}");
        until("the reads after connecting", || fake.runs.load(SeqCst) >= 1 && fake_feed_settled(&shared)).await;

        // A change: recorded once the read it calls for starts.
        let before = SystemClock.now_ms();
        let runs = fake.runs.load(SeqCst);
        feed.changes.send("uid=a".into()).unwrap();
        until("the read the change calls for", || fake.runs.load(SeqCst) > runs).await;
        let changed = until_row("the last change in the registry", &row, |r| r.last_change_ms.is_some()).await;
        assert!(changed.last_change_ms.unwrap() >= before && changed.since_ms == up.since_ms, "{changed:?}");

        // Down: since when and why; the last change is kept.
        feed.down.store(true, SeqCst);
        let dropped_at = SystemClock.now_ms();
        feed.drop_feed.notify_waiters();
        let down = until_row("down in the registry", &row, |r| r.connected == Some(false)).await;
        assert!(down.since_ms >= dropped_at && down.error.as_deref().unwrap_or_default().contains("ldap://127.0.0.1:1"), "{down:?}");
        assert_eq!(down.last_change_ms, changed.last_change_ms);
        // The reconnection attempts that fail meanwhile keep "down since" at the drop.
        until("a failed reconnection", || status(&shared).feed_error.as_deref().is_some_and(|e| e.contains("cannot connect"))).await;
        let still = until_row("the failed reconnection in the registry", &row, |r| r.error.as_deref().is_some_and(|e| e.contains("cannot connect"))).await;
        assert_eq!(still.since_ms, down.since_ms, "{still:?}");

        // The daemon stops: the row says nothing follows the source now.
        let _ = stop.send(true);
        task.await.unwrap();
        let stopped = row().await.unwrap();
        assert!(stopped.mode == "stopped" && stopped.error.as_deref().unwrap_or_default().contains("the daemon stopped"), "{stopped:?}");
    }

    #[tokio::test]
    async fn a_source_offering_no_feed_is_asked_again_after_ten_minutes_and_followed_once_it_offers_one() {
        let fake = Arc::new(Fake::default());
        let feed = fake_feed(false);
        let shared = Arc::new(Shared::default());
        let store: Arc<dyn Store> = Arc::from(duoprov_registry::open("sqlite::memory:", &Default::default()).await.unwrap());
        // Paused from here (the registry is open): tokio's clock jumps to the next timer whenever
        // every task waits, so the ten minutes pass at once and are measured on that clock.
        tokio::time::pause();
        shared.source_gate.set("s", SystemClock.now_ms());
        let (stop, _task) = start_on(Arc::new(Fed(fake.clone(), feed.clone())), shared.clone(), store).await;
        until("the fallback to polling", || status(&shared).mode.as_deref() == Some("polling")).await;
        feed.offer.store(true, SeqCst);
        let deadline = tokio::time::Instant::now() + FEED_RECHECK * 3;
        while status(&shared).connected != Some(true) {
            assert!(tokio::time::Instant::now() < deadline, "the feed was not asked again within {} s", (FEED_RECHECK * 3).as_secs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status(&shared).mode.as_deref(), Some("syncrepl"));
        let asked = feed.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 2, "asked once at start and once at the re-check");
        let gap = asked[1] - asked[0];
        // Never before the ten minutes, and at the first re-check, not a later one. (The paused
        // clock also jumps to other tasks' timers while the registry write before the wait is
        // under way — real I/O — so the gap is 600 s plus a few seconds to a few tens.)
        assert!(gap >= FEED_RECHECK && gap < FEED_RECHECK * 2, "asked again after {gap:?}, not after {FEED_RECHECK:?}");
        let _ = stop.send(true);
    }
}
