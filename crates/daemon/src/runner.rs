//! One provisioner's loop, and the daemon's rules for it: a standby tries to take the lead every
//! `lock_retry`; a leader stops work the moment its lock is lost and stands by again; while
//! leading, a tick every `poll_interval` (sooner when the registry notifies a change) runs a full
//! sync when one is due (after the interval or at the cron time), reloads the Duo users table when
//! due, and otherwise an incremental sync when the change log moved or retries are due. A failed
//! run is retried after a back-off doubling up to a minute; a run refused by the safety rules is
//! not retried until the registry changes or five minutes pass. Each tick first waits for the
//! sources whose read is due (see `sources.rs`), then reads the console's requests waiting in the
//! registry (made on any daemon's console, before or after a restart): each retry of one object
//! runs alone, and a requested full sync is due at once; a request from this daemon's console
//! also wakes the loop (`steer.rs`). A request is consumed by the run that carries it out: a
//! retry when its run ends, a full sync's when its run ends done or refused (one that fails or is
//! cut short leaves it for the next attempt, or the next leader).
//!
//! What a run does is behind [`Work`] (the registry and Duo in production, see `work.rs`) and
//! time is read from a [`Clock`] and waited for with tokio's timers, so these rules are tested in
//! tokio's paused time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use duoprov_registry::ChangeWaker;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::http::Shared;
use crate::schedule::{REFUSAL_BACKOFF, Schedule, failure_backoff};

/// What an attempted run came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// Another process holds the provisioner's run lock; nothing was done.
    Busy,
    /// Nothing to do.
    Idle,
    /// A run finished (done, or with failed or held objects); `full` when it was a full sync.
    Finished { full: bool },
    /// The safety rules refused the run and nothing changed; `seq` is the change log's position
    /// then.
    Refused { full: bool, seq: i64 },
}

impl Ran {
    fn was_full(self) -> bool {
        matches!(self, Ran::Finished { full: true } | Ran::Refused { full: true, .. })
    }
}

/// A full sync asked for from the console: the newest request it answers (earlier ones are
/// answered too), and who asked first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullRequest {
    pub up_to: i64,
    pub who: String,
}

/// A retry of one object asked for from the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryRequest {
    pub id: i64,
    pub target: duoprov_sync::ObjectTarget,
    pub who: String,
}

/// The console's requests waiting for a provisioner, as the registry holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    pub full: Option<FullRequest>,
    /// Oldest first.
    pub retries: Vec<RetryRequest>,
}

/// What the loop asks of the registry and Duo for one provisioner.
pub trait Work: Send + Sync + 'static {
    /// Proof of leading the provisioner (the `daemon:P` lock).
    type Lease: Send;
    /// Takes the lead if no other daemon holds it.
    fn try_lead(&self) -> impl Future<Output = Result<Option<Self::Lease>>> + Send;
    /// Whether the lead is still held (the registry session behind it lives).
    fn alive(&self, lease: &mut Self::Lease) -> impl Future<Output = bool> + Send;
    /// When the last full sync finished, as recorded in the registry.
    fn last_full_ms(&self) -> impl Future<Output = Result<Option<i64>>> + Send;
    /// Closes a run a killed process left `running`.
    fn close_abandoned(&self) -> impl Future<Output = ()> + Send;
    /// Wakes the loop when the change log grows, where the registry can (PostgreSQL).
    fn change_waker(&self) -> impl Future<Output = Option<ChangeWaker>> + Send;
    /// The change log's last position.
    fn last_change_seq(&self) -> impl Future<Output = Result<i64>> + Send;
    /// Whether an incremental sync has anything to do at `now_ms` (the change log moved past the
    /// checkpoint, or a retry is due). When not, the change-log lag is recorded as zero.
    fn pending(&self, now_ms: i64) -> impl Future<Output = Result<bool>> + Send;
    /// The console's requests waiting in the registry.
    fn requests(&self) -> impl Future<Output = Result<Requests>> + Send;
    /// A full sync; `trigger` says what started it (kept in the run log). With `request`, it
    /// answers the console's full-sync requests up to that one: they are taken up when the run
    /// starts and consumed when it ends done or refused (`Busy` leaves them waiting).
    fn full(&self, trigger: String, request: Option<i64>) -> impl Future<Output = Result<Ran>> + Send;
    /// Who approved the removals waiting in the registry for the next full sync, if any (an
    /// approval from the console outlives a restart: the full sync that applies it is due).
    fn approval_waiting(&self) -> impl Future<Output = Result<Option<String>>> + Send;
    /// A sync of one object alone (as `duoprov sync P --subject/--group`), asked for from the
    /// console; its outcome is recorded for the console and the request consumed with it. `Busy`
    /// (the request left waiting) when the run lock is held.
    fn object(&self, retry: &RetryRequest) -> impl Future<Output = Result<Ran>> + Send;
    /// An incremental sync at `now_ms` (it may escalate to a full sync).
    fn incremental(&self, now_ms: i64) -> impl Future<Output = Result<Ran>> + Send;
    /// A reload of the Duo users table.
    fn load_users(&self) -> impl Future<Output = Result<Ran>> + Send;
    /// After each tick: the client's pacing, and the change-log lag unless the tick knew it.
    fn after_tick(&self, lag_known: bool) -> impl Future<Output = ()> + Send;
}

/// One provisioner's loop.
pub struct Loop<W: Work> {
    pub name: String,
    pub work: W,
    pub schedule: Schedule,
    pub lock_retry: Duration,
    pub shared: Arc<Shared>,
    pub clock: Arc<dyn Clock>,
}

/// Sleeps `d`, or less when the daemon is stopping; true when stopping.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    *stop.borrow()
}

/// Like [`pause`], but also ends early when the registry notifies a change (PostgreSQL). A
/// broken notification channel is dropped and polling goes on.
/// The console's request for a full sync (`console`) ends it early too.
async fn pause_or_change(stop: &mut watch::Receiver<bool>, d: Duration, waker: &mut Option<ChangeWaker>, console: &tokio::sync::Notify) -> bool {
    if *stop.borrow() {
        return true;
    }
    let Some(w) = waker.as_mut() else {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.wait_for(|s| *s) => {}
            _ = console.notified() => {}
        }
        return *stop.borrow();
    };
    let mut woken = None;
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.wait_for(|s| *s) => {}
        _ = console.notified() => {}
        ok = w.changed() => woken = Some(ok),
    }
    match woken {
        // A short pause gathers a burst of changes into one run.
        Some(true) => tokio::time::sleep(Duration::from_millis(100).min(d)).await,
        Some(false) => {
            tracing::warn!("Change notifications stopped; polling only.");
            *waker = None;
        }
        None => {}
    }
    *stop.borrow()
}

/// What the leader remembers between ticks.
struct Timers {
    next_full_ms: i64,
    next_load_ms: Option<i64>,
    /// After a refusal: the change-log position and time until which the run is not retried.
    paused: Option<(i64, i64)>,
}

impl<W: Work> Loop<W> {
    /// Stands by and leads by turns until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.work.try_lead().await {
                Ok(Some(lease)) => {
                    self.lead(lease, &mut stop).await;
                    self.shared.metrics.holding(&self.name, false);
                }
                Ok(None) => {
                    self.shared.metrics.holding(&self.name, false);
                    let now = self.clock.now_ms();
                    self.shared.update(&self.name, |s| {
                        s.role = "standby".into();
                        s.registry_ok_at_ms = Some(now);
                        s.last_error = None;
                    });
                }
                Err(e) => {
                    tracing::error!(provisioner = %self.name, error = %e, "Cannot take the runner lock.");
                    self.shared.update(&self.name, |s| s.last_error = Some(e.to_string()));
                }
            }
            if pause(&mut stop, self.lock_retry).await {
                return;
            }
        }
    }

    /// Leads the provisioner until stopped or the lead is lost.
    async fn lead(&self, mut lease: W::Lease, stop: &mut watch::Receiver<bool>) {
        tracing::info!(provisioner = %self.name, poll_ms = self.schedule.poll_interval.as_millis() as u64, full_sync = %self.schedule.full_sync.describe(), "Leading this provisioner.");
        self.shared.metrics.holding(&self.name, true);
        self.shared.update(&self.name, |s| s.role = "holder".into());
        let now = self.clock.now_ms();
        let mut timers = Timers {
            // In the past means due now; no full sync yet (or no answer) means due now.
            next_full_ms: match self.work.last_full_ms().await {
                Ok(Some(last)) => self.schedule.full_sync.next_after(last),
                Ok(None) | Err(_) => now,
            },
            next_load_ms: self.schedule.load_users_every.map(|d| now + d.as_millis() as i64),
            paused: None,
        };
        let mut failures: u32 = 0;
        self.work.close_abandoned().await;
        // PostgreSQL wakes the loop when the change log grows; SQLite is polled.
        let mut waker = self.work.change_waker().await;
        let console = self.shared.steering.waker(&self.name);
        loop {
            if *stop.borrow() {
                return;
            }
            if !self.work.alive(&mut lease).await {
                tracing::warn!(provisioner = %self.name, "Lost the runner lock (the registry session ended); standing by.");
                self.shared.update(&self.name, |s| s.role = "standby".into());
                return;
            }
            // Sources due now run first, so this run provisions what they write.
            self.shared.source_gate.wait_for_sources(self.clock.now_ms(), crate::sources::GATE_WAIT).await;
            let started = tokio::time::Instant::now();
            let mut lag_known = false;
            let since = self.clock.now_ms();
            self.shared.update(&self.name, |s| s.running_since_ms = Some(since));
            let ticked = self.tick(&mut timers).await;
            self.shared.update(&self.name, |s| s.running_since_ms = None);
            let wait = match ticked {
                Ok(known) => {
                    lag_known = known;
                    failures = 0;
                    let now = self.clock.now_ms();
                    self.shared.update(&self.name, |s| {
                        s.registry_ok_at_ms = Some(now);
                        s.last_error = None;
                    });
                    // Ticks start every poll interval; a run that took longer is followed at once.
                    self.schedule.poll_interval.saturating_sub(started.elapsed())
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = failure_backoff(failures);
                    tracing::error!(provisioner = %self.name, error = format!("{e:#}"), retry_in_secs = wait.as_secs(), "Run failed.");
                    self.shared.update(&self.name, |s| s.last_error = Some(format!("{e:#}")));
                    wait
                }
            };
            self.work.after_tick(lag_known).await;
            self.shared.steering.set_next_full(&self.name, Some(timers.next_full_ms));
            if pause_or_change(stop, wait, &mut waker, &console).await {
                return;
            }
        }
    }

    /// After a run: a refusal holds further runs back until the registry changes or
    /// [`REFUSAL_BACKOFF`] passes.
    fn note(&self, ran: Ran, timers: &mut Timers) {
        if let Ran::Refused { seq, .. } = ran {
            timers.paused = Some((seq, self.clock.now_ms() + REFUSAL_BACKOFF.as_millis() as i64));
        }
    }

    /// One turn: a full sync when due, a Duo users reload when due, else an incremental sync.
    /// True when the turn knows the change-log lag (it found nothing to do).
    async fn tick(&self, timers: &mut Timers) -> Result<bool> {
        let requests = self.work.requests().await?;
        // Retries of single objects asked for from the console: each alone, before anything else.
        for retry in &requests.retries {
            if self.work.object(retry).await? == Ran::Busy {
                return Ok(false);
            }
        }
        let now = self.clock.now_ms();
        // A full sync asked for from the console (or an approval waiting in the registry): due
        // now, whatever held runs back.
        let request = requests.full.as_ref().map(|f| f.up_to);
        let requested = match &requests.full {
            Some(f) => Some(format!("console: full sync asked for by {}", f.who)),
            None => self.work.approval_waiting().await?.map(|who| format!("console: removals approved by {who}")),
        };
        let trigger = requested.clone().unwrap_or_else(|| "schedule".to_owned());
        let requested = requested.is_some();
        if requested {
            timers.next_full_ms = timers.next_full_ms.min(now);
            timers.paused = None;
        }
        if let Some((seq, until)) = timers.paused {
            let moved = self.work.last_change_seq().await? != seq;
            if !moved && now < until {
                return Ok(false);
            }
            timers.paused = None;
        }
        if now >= timers.next_full_ms {
            let ran = self.work.full(trigger, request).await?;
            if ran == Ran::Busy {
                return Ok(false);
            }
            self.note(ran, timers);
            timers.next_full_ms = self.schedule.full_sync.next_after(self.clock.now_ms());
            return Ok(false);
        }
        if let Some(due) = timers.next_load_ms.filter(|t| now >= *t) {
            if self.work.load_users().await? == Ran::Busy {
                return Ok(false);
            }
            let every = self.schedule.load_users_every.unwrap_or(Duration::from_secs(3600)).as_millis() as i64;
            timers.next_load_ms = Some(due.max(now - every) + every);
            return Ok(false);
        }
        // Cheap check first: nothing new and no retry due → nothing to lock or read, and the
        // change-log lag is zero.
        if !self.work.pending(now).await? {
            return Ok(true);
        }
        let ran = self.work.incremental(now).await?;
        self.note(ran, timers);
        if ran.was_full() {
            timers.next_full_ms = self.schedule.full_sync.next_after(self.clock.now_ms());
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    //! The loop's rules in tokio's paused time, against a registry and Duo stand-in that records
    //! what the loop asked of it and when (milliseconds after the test's start).

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::SeqCst};

    use super::*;
    use crate::clock::TokioClock;
    use crate::schedule::FullSyncSchedule;

    /// 2026-11-30 02:59:00 UTC.
    const START_MS: i64 = 1_796_007_540_000;

    #[derive(Debug)]
    struct Fake {
        clock: TokioClock,
        /// Whether no other daemon leads (the lead can be taken).
        lead_free: AtomicBool,
        /// Whether the lead, once taken, is still held.
        alive: AtomicBool,
        last_full_ms: Mutex<Option<i64>>,
        /// The change log's last position, and how far the runs have applied it.
        seq: AtomicI64,
        checkpoint: AtomicI64,
        refuse: AtomicBool,
        fail: AtomicBool,
        /// How long a full sync takes (in paused time).
        full_takes: Mutex<Duration>,
        /// (ms since the start, what) for each attempt to lead and each run.
        events: Mutex<Vec<(i64, &'static str)>>,
        /// What triggered each full sync, in order.
        triggers: Mutex<Vec<String>>,
        /// Who approved the removals waiting in the registry (a full sync takes it).
        approval: Mutex<Option<String>>,
        /// Whether another process holds the run lock (an object's run is `Busy`).
        run_lock_held: AtomicBool,
        /// (target, who) of each object run.
        objects: Mutex<Vec<(String, String)>>,
        /// The console's requests as the registry holds them.
        requests: Mutex<Requests>,
    }

    impl Fake {
        fn new(clock: TokioClock) -> Arc<Fake> {
            Arc::new(Fake {
                clock,
                lead_free: AtomicBool::new(true),
                alive: AtomicBool::new(true),
                last_full_ms: Mutex::new(None),
                seq: AtomicI64::new(0),
                checkpoint: AtomicI64::new(0),
                refuse: AtomicBool::new(false),
                fail: AtomicBool::new(false),
                full_takes: Mutex::new(Duration::ZERO),
                events: Mutex::new(Vec::new()),
                triggers: Mutex::new(Vec::new()),
                approval: Mutex::new(None),
                run_lock_held: AtomicBool::new(false),
                objects: Mutex::new(Vec::new()),
                requests: Mutex::new(Requests::default()),
            })
        }

        fn record(&self, what: &'static str) {
            self.events.lock().unwrap().push((self.clock.now_ms() - START_MS, what));
        }

        /// When each event `what` happened, in ms after the start.
        fn times(&self, what: &str) -> Vec<i64> {
            self.events.lock().unwrap().iter().filter(|(_, w)| *w == what).map(|(t, _)| *t).collect()
        }

        /// The runs (full, incremental, load-users) in order.
        fn runs(&self) -> Vec<(i64, &'static str)> {
            self.events.lock().unwrap().iter().filter(|(_, w)| *w != "try_lead").copied().collect()
        }

        fn outcome(&self, full: bool) -> Result<Ran> {
            if self.fail.load(SeqCst) {
                anyhow::bail!("Duo answered 500");
            }
            if self.refuse.load(SeqCst) {
                return Ok(Ran::Refused { full, seq: self.seq.load(SeqCst) });
            }
            self.checkpoint.store(self.seq.load(SeqCst), SeqCst);
            if full {
                *self.last_full_ms.lock().unwrap() = Some(self.clock.now_ms());
            }
            Ok(Ran::Finished { full })
        }
    }

    impl Work for Arc<Fake> {
        type Lease = ();

        async fn try_lead(&self) -> Result<Option<()>> {
            self.record("try_lead");
            Ok(self.lead_free.load(SeqCst).then_some(()))
        }
        async fn alive(&self, _: &mut ()) -> bool {
            self.alive.load(SeqCst)
        }
        async fn last_full_ms(&self) -> Result<Option<i64>> {
            Ok(*self.last_full_ms.lock().unwrap())
        }
        async fn close_abandoned(&self) {}
        async fn change_waker(&self) -> Option<ChangeWaker> {
            None
        }
        async fn last_change_seq(&self) -> Result<i64> {
            Ok(self.seq.load(SeqCst))
        }
        async fn pending(&self, _now_ms: i64) -> Result<bool> {
            Ok(self.seq.load(SeqCst) > self.checkpoint.load(SeqCst))
        }
        async fn requests(&self) -> Result<Requests> {
            Ok(self.requests.lock().unwrap().clone())
        }
        async fn full(&self, trigger: String, request: Option<i64>) -> Result<Ran> {
            self.record("full");
            self.triggers.lock().unwrap().push(trigger);
            self.approval.lock().unwrap().take();
            let takes = *self.full_takes.lock().unwrap();
            tokio::time::sleep(takes).await;
            let ran = self.outcome(true)?;
            // Done or refused: the requests it answered are consumed (a failure left them).
            if let Some(up_to) = request {
                let mut requests = self.requests.lock().unwrap();
                if requests.full.as_ref().is_some_and(|f| f.up_to <= up_to) {
                    requests.full = None;
                }
            }
            Ok(ran)
        }
        async fn incremental(&self, _now_ms: i64) -> Result<Ran> {
            self.record("incremental");
            self.outcome(false)
        }
        async fn load_users(&self) -> Result<Ran> {
            self.record("load_users");
            Ok(Ran::Finished { full: false })
        }
        async fn approval_waiting(&self) -> Result<Option<String>> {
            Ok(self.approval.lock().unwrap().clone())
        }
        async fn object(&self, retry: &RetryRequest) -> Result<Ran> {
            if self.run_lock_held.load(SeqCst) {
                return Ok(Ran::Busy);
            }
            self.record("object");
            self.objects.lock().unwrap().push((retry.target.to_string(), retry.who.clone()));
            self.requests.lock().unwrap().retries.retain(|r| r.id != retry.id);
            Ok(Ran::Finished { full: false })
        }
        async fn after_tick(&self, _lag_known: bool) {}
    }

    /// Starts a loop on `fake` with `schedule` (a lock retry of 1 s); the stop sender ends it.
    fn start(fake: &Arc<Fake>, schedule: Schedule) -> (Arc<Shared>, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let shared = Arc::new(Shared { stale_after_ms: 10_000, ..Shared::default() });
        let (stop_tx, stop_rx) = watch::channel(false);
        let l = Loop {
            name: "p".into(),
            work: fake.clone(),
            schedule,
            lock_retry: Duration::from_secs(1),
            shared: shared.clone(),
            clock: Arc::new(fake.clock),
        };
        (shared, stop_tx, tokio::spawn(l.run(stop_rx)))
    }

    fn every(poll_s: u64, full_s: u64) -> Schedule {
        Schedule { poll_interval: Duration::from_secs(poll_s), full_sync: FullSyncSchedule::Every(Duration::from_secs(full_s)), ..Schedule::default() }
    }

    /// Sleeps (in paused time) until `ms` after the start of `fake`'s clock.
    async fn until(fake: &Fake, ms: i64) {
        let now = fake.clock.now_ms() - START_MS;
        tokio::time::sleep(Duration::from_millis((ms - now).max(0) as u64)).await;
    }

    fn clock() -> TokioClock {
        TokioClock::starting_at(START_MS)
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_sync_is_due_again_after_the_full_sync_interval() {
        let fake = Fake::new(clock());
        // The last full sync finished 30 s before the start; one runs every minute.
        *fake.last_full_ms.lock().unwrap() = Some(START_MS - 30_000);
        let (_shared, stop, task) = start(&fake, every(2, 60));
        until(&fake, 151_000).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(fake.times("full"), [30_000, 90_000, 150_000]);
        assert_eq!(fake.times("incremental"), Vec::<i64>::new(), "nothing changed in the registry");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cron_full_sync_runs_at_the_cron_time_in_utc() {
        let fake = Fake::new(clock());
        // Started at 02:59:00 UTC; the last full sync ran yesterday at 03:00.
        *fake.last_full_ms.lock().unwrap() = Some(START_MS + 60_000 - 86_400_000);
        let cron = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Disallowed).build().parse("0 3 * * *").unwrap();
        let schedule = Schedule { full_sync: FullSyncSchedule::Cron(Arc::new(cron), "0 3 * * *".into()), ..every(2, 1) };
        let (_shared, stop, task) = start(&fake, schedule);
        until(&fake, 10 * 60_000).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(fake.times("full"), [60_000], "one full sync, at 03:00:00");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_run_waits_five_minutes_or_for_a_registry_change() {
        let fake = Fake::new(clock());
        fake.refuse.store(true, SeqCst);
        fake.seq.store(5, SeqCst);
        let (shared, stop, task) = start(&fake, every(2, 6 * 3600));
        // No full sync yet: one runs at once and is refused; nothing runs again for five
        // minutes though the change log is ahead of the checkpoint.
        until(&fake, 299_000).await;
        assert_eq!(fake.runs(), [(0, "full")]);
        assert_eq!(shared.provisioners.lock().unwrap()["p"].last_error, None, "a refusal is not an error");
        // Five minutes on, the run is tried again (incremental: the full sync is not due) and
        // refused again.
        until(&fake, 301_000).await;
        assert_eq!(fake.runs(), [(0, "full"), (300_000, "incremental")]);
        // A registry change lifts the back-off at the next poll.
        until(&fake, 401_000).await;
        fake.seq.store(6, SeqCst);
        until(&fake, 500_000).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(fake.runs(), [(0, "full"), (300_000, "incremental"), (402_000, "incremental")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_sync_asked_for_from_the_console_runs_at_once_and_lifts_a_refusal_back_off() {
        let fake = Fake::new(clock());
        fake.refuse.store(true, SeqCst);
        // A 60 s poll: only the console's request can explain a run before it.
        let (shared, stop, task) = start(&fake, every(60, 6 * 3600));
        until(&fake, 10_000).await;
        assert_eq!(fake.runs(), [(0, "full")], "the first full sync is refused");
        assert!(shared.steering.next_full("p").is_some_and(|t| t - START_MS == 6 * 3600 * 1000), "the next full sync is shown");
        // Approved from the console: the loop wakes at once, not at its next poll or after the
        // five minutes a refusal holds runs back.
        fake.refuse.store(false, SeqCst);
        fake.requests.lock().unwrap().full = Some(FullRequest { up_to: 1, who: "loopback".into() });
        shared.steering.wake("p");
        until(&fake, 10_500).await;
        assert_eq!(fake.runs(), [(0, "full"), (10_000, "full")]);
        assert_eq!(fake.requests.lock().unwrap().full, None, "the request is done");
        until(&fake, 50_000).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(fake.runs(), [(0, "full"), (10_000, "full")], "one run per request");
        assert_eq!(*fake.triggers.lock().unwrap(), ["schedule", "console: full sync asked for by loopback"], "each run says what started it");
    }

    #[tokio::test(start_paused = true)]
    async fn an_approval_waiting_in_the_registry_after_a_restart_makes_one_full_sync_due_at_once() {
        let fake = Fake::new(clock());
        // The last full sync ran a minute ago (the next is hours away); a restarted daemon finds
        // the approval the console saved before the restart.
        *fake.last_full_ms.lock().unwrap() = Some(START_MS - 60_000);
        *fake.approval.lock().unwrap() = Some("console token".into());
        let (_shared, stop, task) = start(&fake, every(2, 6 * 3600));
        until(&fake, 30_000).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(fake.runs(), [(0, "full")], "the approval is applied by one full sync, at once");
        assert_eq!(*fake.triggers.lock().unwrap(), ["console: removals approved by console token"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_sync_request_waiting_in_the_registry_after_a_restart_runs_once_at_once() {
        let fake = Fake::new(clock());
        // The last full sync ran a minute ago (the next is hours away); the request was made
        // before the restart (or on another daemon's console) and has not run.
        *fake.last_full_ms.lock().unwrap() = Some(START_MS - 60_000);
        fake.requests.lock().unwrap().full = Some(FullRequest { up_to: 7, who: "console token".into() });
        let (_shared, stop, task) = start(&fake, every(2, 6 * 3600));
        until(&fake, 30_000).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(fake.runs(), [(0, "full")], "one full sync, at once");
        assert_eq!(*fake.triggers.lock().unwrap(), ["console: full sync asked for by console token"]);
        assert_eq!(fake.requests.lock().unwrap().full, None, "consumed by that run");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_sync_request_made_on_another_daemons_console_runs_at_the_next_poll() {
        let fake = Fake::new(clock());
        *fake.last_full_ms.lock().unwrap() = Some(START_MS);
        let (_shared, stop, task) = start(&fake, every(60, 6 * 3600));
        until(&fake, 5_000).await;
        // Stored in the registry by a standby's console: nothing wakes this loop.
        fake.requests.lock().unwrap().full = Some(FullRequest { up_to: 3, who: "loopback".into() });
        until(&fake, 61_000).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(fake.runs(), [(60_000, "full")], "run at the next poll, once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_requested_full_sync_that_fails_stays_requested_until_a_run_ends() {
        let fake = Fake::new(clock());
        *fake.last_full_ms.lock().unwrap() = Some(START_MS);
        fake.fail.store(true, SeqCst);
        fake.requests.lock().unwrap().full = Some(FullRequest { up_to: 1, who: "loopback".into() });
        let (_shared, stop, task) = start(&fake, every(2, 6 * 3600));
        until(&fake, 5_000).await;
        assert_eq!(fake.times("full"), [0, 2_000], "retried after the back-off");
        assert!(fake.requests.lock().unwrap().full.is_some(), "a failed run leaves the request");
        fake.fail.store(false, SeqCst);
        until(&fake, 30_000).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(fake.times("full"), [0, 2_000, 6_000], "the run that ends consumes it; none after");
        assert_eq!(fake.requests.lock().unwrap().full, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_from_the_console_runs_alone_at_once_and_waits_while_the_run_lock_is_held() {
        let fake = Fake::new(clock());
        *fake.last_full_ms.lock().unwrap() = Some(START_MS);
        fake.run_lock_held.store(true, SeqCst);
        // A 60 s poll: only the console's request can explain a run before it.
        let (shared, stop, task) = start(&fake, every(60, 6 * 3600));
        until(&fake, 5_000).await;
        let target = duoprov_sync::ObjectTarget::Subject { reference: "local:bob".into() };
        fake.requests.lock().unwrap().retries.push(RetryRequest { id: 1, target: target.clone(), who: "console token".into() });
        shared.steering.wake("p");
        until(&fake, 6_000).await;
        assert_eq!(fake.runs(), Vec::<(i64, &str)>::new(), "another process holds the run lock: nothing runs beside it");
        assert_eq!(fake.requests.lock().unwrap().retries.len(), 1, "the retry waits in the registry");
        fake.run_lock_held.store(false, SeqCst);
        until(&fake, 66_000).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(fake.runs(), [(65_000, "object")], "run at the next tick once the lock is free");
        assert_eq!(*fake.objects.lock().unwrap(), [("subject local:bob".to_owned(), "console token".to_owned())]);
        assert!(fake.requests.lock().unwrap().retries.is_empty(), "run once, the request consumed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_run_is_retried_after_a_back_off_doubling_up_to_a_minute() {
        let fake = Fake::new(clock());
        fake.fail.store(true, SeqCst);
        let (shared, stop, task) = start(&fake, every(2, 6 * 3600));
        until(&fake, 200_000).await;
        assert!(shared.provisioners.lock().unwrap()["p"].last_error.as_deref().is_some_and(|e| e.contains("500")));
        // It recovers: the next attempt succeeds and the poll interval applies again.
        fake.fail.store(false, SeqCst);
        until(&fake, 250_000).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(fake.times("full"), [0, 2_000, 6_000, 14_000, 30_000, 62_000, 122_000, 182_000, 242_000]);
        assert_eq!(shared.provisioners.lock().unwrap()["p"].last_error, None);
    }

    #[tokio::test(start_paused = true)]
    async fn losing_the_lead_stops_work_and_the_lead_is_retried_every_lock_retry() {
        let fake = Fake::new(clock());
        fake.lead_free.store(false, SeqCst);
        let (shared, stop, task) = start(&fake, every(2, 3600));
        until(&fake, 3_500).await;
        assert_eq!(shared.provisioners.lock().unwrap()["p"].role, "standby");
        // The other daemon goes: this one leads at its next try and runs the due full sync.
        fake.lead_free.store(true, SeqCst);
        until(&fake, 10_500).await;
        assert_eq!(shared.provisioners.lock().unwrap()["p"].role, "holder");
        // The lead is lost (its registry session ended) and another daemon holds it now.
        fake.alive.store(false, SeqCst);
        fake.lead_free.store(false, SeqCst);
        until(&fake, 12_500).await;
        assert_eq!(shared.provisioners.lock().unwrap()["p"].role, "standby");
        // A registry change while standing by is not this daemon's to run.
        fake.seq.store(1, SeqCst);
        until(&fake, 20_500).await;
        assert_eq!(fake.runs(), [(4_000, "full")]);
        // The lead comes back: the change is run at once.
        fake.lead_free.store(true, SeqCst);
        fake.alive.store(true, SeqCst);
        until(&fake, 25_000).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(fake.times("try_lead"), [0, 1_000, 2_000, 3_000, 4_000, 13_000, 14_000, 15_000, 16_000, 17_000, 18_000, 19_000, 20_000, 21_000]);
        assert_eq!(fake.runs(), [(4_000, "full"), (21_000, "incremental")]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_incremental_run_follows_a_registry_change_within_one_poll_interval() {
        let fake = Fake::new(clock());
        *fake.last_full_ms.lock().unwrap() = Some(START_MS);
        let (_shared, stop, task) = start(&fake, every(2, 3600));
        for change_at in [7_300, 12_000, 15_900] {
            until(&fake, change_at).await;
            fake.seq.fetch_add(1, SeqCst);
            until(&fake, change_at + 2_000).await;
            let after: Vec<i64> = fake.times("incremental").into_iter().filter(|t| *t >= change_at).collect();
            assert_eq!(after.len(), 1, "one incremental run for the change at {change_at} ms: {:?}", fake.runs());
            assert!(after[0] - change_at <= 2_000, "the change at {change_at} ms ran at {} ms", after[0]);
        }
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(fake.times("full"), Vec::<i64>::new(), "the full sync is not due for an hour");
    }

    #[tokio::test(start_paused = true)]
    async fn the_duo_users_table_is_reloaded_on_its_schedule() {
        let fake = Fake::new(clock());
        *fake.last_full_ms.lock().unwrap() = Some(START_MS);
        let schedule = Schedule { load_users_every: Some(Duration::from_secs(600)), ..every(2, 3600) };
        let (_shared, stop, task) = start(&fake, schedule);
        until(&fake, 1_900_000).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(fake.times("load_users"), [600_000, 1_200_000, 1_800_000]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_daemon_stays_ready_through_a_long_full_sync_and_not_through_failing_runs() {
        let fake = Fake::new(clock());
        *fake.full_takes.lock().unwrap() = Duration::from_secs(600);
        let (shared, stop, task) = start(&fake, every(2, 3600));
        // Ten minutes into the first full sync: far past the 10 s staleness, still ready.
        until(&fake, 300_000).await;
        assert_eq!(fake.times("full"), [0]);
        assert!(shared.ready(fake.clock.now_ms()), "{:?}", shared.provisioners.lock().unwrap());
        until(&fake, 602_000).await;
        assert!(shared.ready(fake.clock.now_ms()));
        // Runs that fail keep the registry unheard from: not ready once 10 s have passed.
        fake.seq.store(1, SeqCst);
        fake.fail.store(true, SeqCst);
        until(&fake, 640_000).await;
        assert!(!fake.times("incremental").is_empty());
        assert!(!shared.ready(fake.clock.now_ms()), "{:?}", shared.provisioners.lock().unwrap());
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
