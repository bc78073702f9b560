//! `duoprov run`: the daemon. Per provisioner it keeps an incremental loop (poll the change log
//! every `poll_interval`, default 2 s), full syncs on an interval or a cron expression, and
//! optional reloads of the Duo users table; a status page serves `/healthz`, `/readyz` and
//! `/metrics`.
//!
//! One runner per provisioner across processes: a daemon leads a provisioner while it holds the
//! `daemon:P` lock (a PostgreSQL session advisory lock, or a lock file next to a SQLite
//! database), and every run — the daemon's or a `duoprov sync` by hand — holds the
//! `provisioner:P` lock while it runs. A standby daemon retries the leader lock every
//! `lock_retry` (default 1 s) and takes over when the leader's session ends. On SQLite a second
//! daemon on the same file refuses to start. SIGTERM or SIGINT lets the run in flight finish
//! (within `--shutdown-grace`), records it, and exits 0; a run cut short is marked interrupted
//! by the next run and replayed from the unchanged checkpoint.

pub mod http;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use duoprov_duo::DuoClient;
use duoprov_registry::{Backend, RunnerLock, Store};
use duoprov_sync::{FenceHandle, Incremental, NoProgress, Prepared, SyncError, SyncOptions, SyncSettings};
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::commands::Context;
use crate::config::{FullSyncSchedule, Schedule};
use crate::exit;
use http::Shared;

/// What `duoprov run` was asked.
pub struct RunArgs {
    pub provisioners: Vec<String>,
    pub listen: Option<std::net::SocketAddr>,
    pub shutdown_grace: Duration,
}

/// Waits up to `wait` for the run lock of a provisioner (a daemon releases it between runs).
pub async fn run_lock(store: &dyn Store, provisioner: &str, wait: Duration) -> Result<Option<RunnerLock>> {
    let key = format!("provisioner:{provisioner}");
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(lock) = store.try_lock_runner(&key).await? {
            return Ok(Some(lock));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn run(ctx: &Context, args: RunArgs) -> Result<u8> {
    let names: Vec<String> = if args.provisioners.is_empty() {
        ctx.settings.provisioners.values().filter(|p| p.schedule.enabled).map(|p| p.name.clone()).collect()
    } else {
        for n in &args.provisioners {
            if !ctx.settings.provisioners.contains_key(n) {
                bail!("no provisioner [provisioner.{n}] in the configuration");
            }
        }
        args.provisioners.clone()
    };
    if names.is_empty() {
        bail!("no provisioner to run: the configuration has no [provisioner.NAME] with schedule.enabled = true");
    }
    let store: Arc<dyn Store> = Arc::from(ctx.store().await?);
    let _daemon_lock = match store.backend() {
        Backend::Sqlite => match store.try_lock_runner("daemon").await? {
            Some(lock) => Some(lock),
            None => bail!(
                "another duoprov daemon is already running on the registry {}; a SQLite registry serves one daemon (use PostgreSQL for a standby)",
                duoprov_registry::url::redact(&ctx.settings.registry_url)
            ),
        },
        Backend::Postgres => None,
    };
    let max_poll = names.iter().map(|n| ctx.settings.provisioners[n].schedule.poll_interval).max().unwrap_or(Duration::from_secs(2));
    let shared = Arc::new(Shared {
        stale_after_ms: (max_poll.as_millis() as i64 * 3).max(10_000) + ctx.settings.daemon.lock_retry.as_millis() as i64,
        ..Default::default()
    });
    let mut loops = Vec::new();
    for name in &names {
        let p = ctx.settings.provisioners[name].clone();
        let conn = ctx.settings.duo.get(&p.duo).with_context(|| format!("provisioner.{name}.duo: no [duo.{}]", p.duo))?;
        let mut cfg = crate::commands::duo_config(conn, p.log_http, p.log_http_bodies, p.log_http_format)?;
        let observer: Arc<dyn duoprov_duo::CallObserver> = Arc::new(SharedObserver(shared.clone()));
        cfg.observer = Some(observer);
        let duo = DuoClient::new(cfg).map_err(|e| anyhow::anyhow!("duo.{}: {e}", conn.name))?;
        crate::commands::use_recorded_probe(&*store, &duo).await;
        shared.update(name, |s| s.role = "starting".into());
        loops.push(Loop {
            name: name.clone(),
            store: store.clone(),
            duo,
            settings: crate::commands::settings_of(&p),
            schedule: p.schedule.clone(),
            lock_retry: ctx.settings.daemon.lock_retry,
            shared: shared.clone(),
        });
    }

    let listen = args.listen.unwrap_or(ctx.settings.daemon.listen);
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "cannot listen on {listen} for the status page: the address is already in use (another `duoprov run`, or another program, listens there); stop it, or pick a free port with daemon.listen or --listen"
        ),
        _ => anyhow::anyhow!("cannot listen on {listen} for the status page: {e}"),
    })?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "Status page serving /healthz, /readyz and /metrics.");
    // Machine-readable for whoever started the daemon (tests, supervisors).
    println!("duoprov daemon: status page on http://{local}, provisioners {}", names.join(", "));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let app = http::router(shared.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|s| *s).await;
            })
            .await;
    });
    let mut tasks = tokio::task::JoinSet::new();
    for l in loops {
        let stop = stop_rx.clone();
        tasks.spawn(async move { l.run(stop).await });
    }
    shutdown_signal().await;
    tracing::info!("Stopping: letting runs in flight finish.");
    let _ = stop_tx.send(true);
    let finished = tokio::time::timeout(args.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(grace_secs = args.shutdown_grace.as_secs(), "Runs still in flight after the grace period; abandoning them.");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        for name in &names {
            mark_interrupted(&*store, name, "abandoned at shutdown").await;
        }
    }
    let _ = server.await;
    tracing::info!("Stopped.");
    Ok(exit::OK)
}

/// Closes a run left `running` by an abandoned task.
async fn mark_interrupted(store: &dyn Store, provisioner: &str, why: &str) {
    if let Ok(runs) = store.runs(Some(provisioner), 1).await {
        for r in runs.into_iter().filter(|r| r.status == duoprov_registry::RunStatus::Running) {
            let _ = store.finish_run(r.id, duoprov_registry::RunStatus::Interrupted, &r.counts, &r.timings, Some(why)).await;
        }
    }
}

/// The metrics as the Duo client's observer.
#[derive(Debug)]
struct SharedObserver(Arc<Shared>);

impl duoprov_duo::CallObserver for SharedObserver {
    fn attempt(&self, method: &str, path: &str, status: Option<u16>, elapsed: Duration) {
        self.0.metrics.attempt(method, path, status, elapsed);
    }
}

/// One provisioner's loop.
struct Loop {
    name: String,
    store: Arc<dyn Store>,
    duo: DuoClient,
    settings: SyncSettings,
    schedule: Schedule,
    lock_retry: Duration,
    shared: Arc<Shared>,
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
async fn pause_or_change(stop: &mut watch::Receiver<bool>, d: Duration, waker: &mut Option<duoprov_registry::ChangeWaker>) -> bool {
    let Some(w) = waker.as_mut() else { return pause(stop, d).await };
    if *stop.borrow() {
        return true;
    }
    let mut woken = None;
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.wait_for(|s| *s) => {}
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

/// Now, as a duration since the Unix epoch.
fn now_since_epoch() -> Duration {
    Duration::from_millis(duoprov_sync::now_ms().max(0) as u64)
}

/// Whether a tick already recorded the change-log lag (an idle tick knows it is zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lag {
    Known,
    Stale,
}

/// What the holder loop remembers between ticks.
struct Timers {
    next_full_ms: i64,
    next_load_ms: Option<i64>,
    /// After a refusal: the change-log position and time until which the run is not retried.
    paused: Option<(i64, i64)>,
}

impl Loop {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let key = format!("daemon:{}", self.name);
        loop {
            if *stop.borrow() {
                return;
            }
            match self.store.try_lock_runner(&key).await {
                Ok(Some(lock)) => {
                    self.lead(lock, &mut stop).await;
                    self.shared.metrics.holding(&self.name, false);
                }
                Ok(None) => {
                    self.shared.metrics.holding(&self.name, false);
                    self.shared.update(&self.name, |s| {
                        s.role = "standby".into();
                        s.registry_ok_at_ms = Some(duoprov_sync::now_ms());
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

    async fn first_full_ms(&self) -> Result<i64> {
        let now = duoprov_sync::now_ms();
        let Some(cp) = self.store.checkpoint(&self.name).await? else { return Ok(now) };
        let Some(last) = cp.last_full_ms else { return Ok(now) };
        // In the past means due now.
        Ok(self.next_full_after(last))
    }

    fn next_full_after(&self, after_ms: i64) -> i64 {
        match &self.schedule.full_sync {
            FullSyncSchedule::Every(d) => after_ms.saturating_add(d.as_millis() as i64),
            FullSyncSchedule::Cron(cron, _) => {
                let after = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(after_ms).unwrap_or_default();
                match cron.find_next_occurrence(&after, false) {
                    Ok(t) => t.timestamp_millis(),
                    Err(_) => i64::MAX,
                }
            }
        }
    }

    /// Leads the provisioner until stopped or the lock is lost.
    async fn lead(&self, mut lock: RunnerLock, stop: &mut watch::Receiver<bool>) {
        let full = match &self.schedule.full_sync {
            FullSyncSchedule::Every(d) => format!("every {} s", d.as_secs()),
            FullSyncSchedule::Cron(_, expr) => format!("on cron {expr:?} (UTC)"),
        };
        tracing::info!(provisioner = %self.name, poll_ms = self.schedule.poll_interval.as_millis() as u64, full_sync = %full, "Leading this provisioner.");
        self.shared.metrics.holding(&self.name, true);
        self.shared.update(&self.name, |s| s.role = "holder".into());
        let mut timers = Timers {
            next_full_ms: match self.first_full_ms().await {
                Ok(t) => t,
                Err(_) => duoprov_sync::now_ms(),
            },
            next_load_ms: self.schedule.load_users_every.map(|d| duoprov_sync::now_ms() + d.as_millis() as i64),
            paused: None,
        };
        let mut failures: u32 = 0;
        // A run a killed process left `running` is closed now that this daemon leads.
        if let Ok(Some(_run)) = run_lock(&*self.store, &self.name, Duration::from_secs(30)).await {
            mark_interrupted(&*self.store, &self.name, "cut short; found running when a daemon took the lead").await;
        }
        // PostgreSQL wakes the loop when the change log grows; SQLite is polled.
        let mut waker = match self.store.change_waker().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(provisioner = %self.name, error = %e, "No change notifications; polling only.");
                None
            }
        };
        loop {
            if *stop.borrow() {
                return;
            }
            if !lock.alive().await {
                tracing::warn!(provisioner = %self.name, "Lost the runner lock (the registry session ended); standing by.");
                self.shared.update(&self.name, |s| s.role = "standby".into());
                return;
            }
            let started = std::time::Instant::now();
            let mut lag = Lag::Stale;
            let wait = match self.tick(&mut timers).await {
                Ok(known) => {
                    lag = known;
                    failures = 0;
                    self.shared.update(&self.name, |s| {
                        s.registry_ok_at_ms = Some(duoprov_sync::now_ms());
                        s.last_error = None;
                    });
                    // Ticks start every poll interval; a run that took longer is followed at once.
                    self.schedule.poll_interval.saturating_sub(started.elapsed())
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60));
                    tracing::error!(provisioner = %self.name, error = format!("{e:#}"), retry_in_secs = wait.as_secs(), "Run failed.");
                    self.shared.update(&self.name, |s| s.last_error = Some(format!("{e:#}")));
                    wait
                }
            };
            self.shared.metrics.pacing(&self.name, &self.duo.pacing_stats());
            if lag == Lag::Stale {
                self.update_lag().await;
            }
            if pause_or_change(stop, wait, &mut waker).await {
                return;
            }
        }
    }

    async fn update_lag(&self) {
        let Ok(Some(cp)) = self.store.checkpoint(&self.name).await else { return };
        let Ok(last) = self.store.last_change_seq().await else { return };
        let oldest = self.store.changes_after(cp.last_seq, 1).await.ok().and_then(|c| c.first().map(|e| e.at_ms));
        let age = oldest.map(|at| (duoprov_sync::now_ms() - at).max(0) as f64 / 1000.0).unwrap_or(0.0);
        self.shared.metrics.lag(&self.name, (last - cp.last_seq).max(0), age);
    }

    /// One turn: a full sync when due, a Duo users reload when due, else an incremental sync.
    async fn tick(&self, timers: &mut Timers) -> Result<Lag> {
        let now = duoprov_sync::now_ms();
        if let Some((seq, until)) = timers.paused {
            let moved = self.store.last_change_seq().await? != seq;
            if !moved && now < until {
                return Ok(Lag::Stale);
            }
            timers.paused = None;
        }
        if now >= timers.next_full_ms {
            let Some(run) = run_lock(&*self.store, &self.name, Duration::ZERO).await? else { return Ok(Lag::Stale) };
            let prepared = self.prepare_full().await?;
            self.execute(prepared, None, timers, run).await?;
            timers.next_full_ms = self.next_full_after(duoprov_sync::now_ms());
            return Ok(Lag::Stale);
        }
        if let Some(due) = timers.next_load_ms.filter(|t| now >= *t) {
            let Some(_run) = run_lock(&*self.store, &self.name, Duration::ZERO).await? else { return Ok(Lag::Stale) };
            let users = self.duo.list_users().await.map_err(|e| anyhow::anyhow!("reading the Duo users of {}: {e}", self.name))?;
            let outcome = duoprov_registry::duo_users::load(&*self.store, &self.name, &users).await?;
            tracing::info!(provisioner = %self.name, users = outcome.users, "Duo users table reloaded.");
            let every = self.schedule.load_users_every.unwrap_or(Duration::from_secs(3600)).as_millis() as i64;
            timers.next_load_ms = Some(due.max(now - every) + every);
            return Ok(Lag::Stale);
        }
        // Cheap check first: no new entries and no retry due → nothing to lock or read, and the
        // change-log lag is zero (no need to read it again).
        let checkpoint = self.store.checkpoint(&self.name).await?;
        if let Some(cp) = &checkpoint {
            let last = self.store.last_change_seq().await?;
            if last <= cp.last_seq && self.store.retries(&self.name, Some(now)).await?.is_empty() {
                self.shared.metrics.lag(&self.name, 0, 0.0);
                return Ok(Lag::Known);
            }
        }
        let Some(run) = run_lock(&*self.store, &self.name, Duration::ZERO).await? else { return Ok(Lag::Stale) };
        match duoprov_sync::prepare_incremental(&*self.store, &self.duo, &self.settings, now).await? {
            Incremental::Idle { .. } => Ok(Lag::Stale),
            Incremental::Planned(p) => self.execute(*p, None, timers, run).await.map(|()| Lag::Stale),
            Incremental::Escalate { reason } => {
                tracing::info!(provisioner = %self.name, %reason, "Incremental sync escalates to a full sync.");
                let prepared = self.prepare_full().await?;
                self.execute(prepared, Some(reason), timers, run).await?;
                timers.next_full_ms = self.next_full_after(duoprov_sync::now_ms());
                Ok(Lag::Stale)
            }
        }
    }

    async fn prepare_full(&self) -> Result<Prepared> {
        Ok(duoprov_sync::prepare(&*self.store, &self.duo, &self.settings).await?)
    }

    /// Runs a prepared plan under the run lock `run`, which fences every apply phase.
    async fn execute(&self, prepared: Prepared, escalated: Option<String>, timers: &mut Timers, run: RunnerLock) -> Result<()> {
        let kind = prepared.kind.as_str();
        let span = tracing::info_span!("sync_run", provisioner = %self.name, kind);
        let seq_at_start = prepared.change_seq;
        let options = SyncOptions { fence: Some(FenceHandle::lock(run)), ..SyncOptions::default() };
        let outcome = duoprov_sync::run(&*self.store, &self.duo, &self.settings, prepared, &options, &NoProgress).instrument(span.clone()).await;
        let _enter = span.enter();
        match outcome {
            Ok(mut report) => {
                report.escalated = escalated;
                let status = report.status().as_str();
                self.shared.metrics.run_finished(&self.name, kind, status, Some(&report), now_since_epoch());
                self.shared.update(&self.name, |s| s.last_run = Some(format!("{kind} {status} (run {})", report.run_id)));
                // One line per run at the default level: kind, counts, calls, duration.
                tracing::info!(run = report.run_id, status, "Run finished: {}", report.summary());
                for f in &report.failures {
                    tracing::warn!(run = report.run_id, object = %f.object, code = %f.code, message = %f.message, "Object failed; retried on its schedule.");
                }
                if report.lacks_write_grant() {
                    tracing::error!(run = report.run_id, refused = report.forbidden(), "Duo refused every write of this run with 403: {}", duoprov_sync::report::WRITE_GRANT_HINT);
                }
                if !report.held_objects.is_empty() {
                    // Once per run, all held objects in one line: they stay held until fixed.
                    let held: Vec<String> = report.held_objects.iter().map(|h| format!("{} [{}]: {}", h.object, h.code, h.message)).collect();
                    tracing::warn!(run = report.run_id, held = held.len(), objects = %held.join("; "), "Objects are held by plan errors and not provisioned until fixed.");
                }
                Ok(())
            }
            Err(SyncError::Refused { provisioner, refusal }) => {
                self.shared.metrics.run_finished(&self.name, kind, "refused", None, now_since_epoch());
                self.shared.update(&self.name, |s| s.last_run = Some(format!("{kind} refused")));
                // One readable line; the list itself (which can be long) at -v.
                tracing::warn!(
                    count = refusal.removals.len(),
                    digest = %refusal.digest,
                    "Run refused by the safety rules, nothing changed: {}. It would make {} (listed at -v, or by `duoprov plan {provisioner}`); approve exactly them with `{}`, or fix the registry.",
                    refusal.reasons.join("; "),
                    duoprov_model::counted(refusal.removals.len(), "removal", "removals"),
                    refusal.approve_command(&provisioner)
                );
                for removal in &refusal.removals {
                    tracing::info!(target: "duoprov::refusal", provisioner = %provisioner, digest = %refusal.digest, "Refused: {removal}");
                }
                // Not retried until the registry changes, or for five minutes.
                let seq = self.store.last_change_seq().await.unwrap_or(seq_at_start);
                timers.paused = Some((seq, duoprov_sync::now_ms() + 300_000));
                Ok(())
            }
            Err(e) => {
                self.shared.metrics.run_finished(&self.name, kind, "error", None, now_since_epoch());
                Err(e.into())
            }
        }
    }
}
