//! The daemon behind `duoprov run`. Per provisioner it keeps an incremental loop (poll the change
//! log every `poll_interval`, default 2 s), full syncs on an interval or a cron expression, and
//! optional reloads of the Duo users table; sources (`sources.rs`) are read on their own schedules,
//! before the provisioner runs due at the same time; a status page serves the operator's console
//! (`console/`, steering the loops through `steer.rs`), `/healthz`, `/readyz` and `/metrics`. The
//! rules of the loop are in `runner.rs` (tested in tokio's paused time), the schedules in
//! `schedule.rs`, the runs against the registry and Duo in `work.rs`; the binary only builds a
//! [`Daemon`] from its configuration and serves it.
//!
//! One runner per provisioner across processes: a daemon leads a provisioner while it holds the
//! `daemon:P` lock (a PostgreSQL session advisory lock, or a lock file next to a SQLite
//! database), and every run — the daemon's or a `duoprov sync` by hand — holds the
//! `provisioner:P` lock while it runs ([`run_lock`]). A standby daemon retries the leader lock
//! every `lock_retry` (default 1 s) and takes over when the leader's session ends. On SQLite a
//! second daemon on the same file refuses to start. SIGTERM or SIGINT lets the run in flight
//! finish (within the shutdown grace), records it, and exits; a run cut short is marked
//! interrupted by the next run and replayed from the unchanged checkpoint.

pub mod clock;
pub mod console;
pub mod http;
pub mod metrics;
pub mod retention;
pub mod runner;
pub mod schedule;
pub mod sources;
pub mod steer;
pub mod work;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use duoprov_duo::DuoClient;
use duoprov_registry::{Backend, RunnerLock, Store};
use duoprov_sync::SyncSettings;
use tokio::sync::watch;

pub use clock::{Clock, SystemClock, TokioClock};
pub use console::{ConsoleAccess, ProvisionerInfo};
pub use http::{Access, Shared};
pub use retention::Keep;
pub use schedule::{FullSyncSchedule, Schedule};

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

/// SIGTERM and SIGINT, caught from the moment [`ShutdownSignal::listen`] returns: made before the
/// daemon says it is serving, so a supervisor's SIGTERM right after start still stops it
/// gracefully instead of killing it.
pub struct ShutdownSignal {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignal {
    /// Starts catching SIGTERM and SIGINT.
    pub fn listen() -> ShutdownSignal {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            ShutdownSignal { signals: signal(SignalKind::terminate()).ok().zip(signal(SignalKind::interrupt()).ok()) }
        }
        #[cfg(not(unix))]
        {
            ShutdownSignal {}
        }
    }

    /// Resolves on the first SIGTERM or SIGINT.
    pub async fn recv(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.signals {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Closes a run left `running` by an abandoned task.
pub(crate) async fn mark_interrupted(store: &dyn Store, provisioner: &str, why: &str) {
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

/// A daemon being put together: the registry, the state its status page shows, and the
/// provisioners it runs.
pub struct Daemon {
    store: Arc<dyn Store>,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    lock_retry: Duration,
    loops: Vec<runner::Loop<work::StoreWork>>,
    sources: Vec<sources::SourceLoop>,
    keep: Keep,
    /// What the console shows of each provisioner.
    console: std::collections::BTreeMap<String, console::ProvisionerInfo>,
    /// On SQLite, the lock that keeps a second daemon off the same registry file.
    _daemon_lock: Option<RunnerLock>,
}

impl Daemon {
    /// A daemon on `store` (named `registry` in messages, its password redacted) whose standbys
    /// retry the lead every `lock_retry`; `max_poll` is the longest poll interval of its
    /// provisioners (a provisioner is not ready while its last registry answer is older than
    /// three of them). On SQLite, fails when another daemon runs on the same file.
    pub async fn new(store: Arc<dyn Store>, registry: &str, lock_retry: Duration, max_poll: Duration) -> Result<Daemon> {
        let daemon_lock = match store.backend() {
            Backend::Sqlite => match store.try_lock_runner("daemon").await? {
                Some(lock) => Some(lock),
                None => bail!(
                    "another duoprov daemon is already running on the registry {registry}; a SQLite registry serves one daemon (use PostgreSQL for a standby)"
                ),
            },
            Backend::Postgres => None,
        };
        let shared = Arc::new(Shared {
            stale_after_ms: (max_poll.as_millis() as i64 * 3).max(10_000) + lock_retry.as_millis() as i64,
            ..Default::default()
        });
        Ok(Daemon { store, shared, clock: Arc::new(SystemClock), lock_retry, loops: Vec::new(), sources: Vec::new(), keep: Keep::default(), console: Default::default(), _daemon_lock: daemon_lock })
    }

    /// The observer a provisioner's Duo client reports its calls to (for `/metrics`).
    pub fn call_observer(&self) -> Arc<dyn duoprov_duo::CallObserver> {
        Arc::new(SharedObserver(self.shared.clone()))
    }

    /// Adds the provisioner `name`, synced with `settings` through `duo` on `schedule`.
    pub fn add(&mut self, name: &str, duo: DuoClient, settings: SyncSettings, schedule: Schedule) {
        self.shared.update(name, |s| s.role = "starting".into());
        self.console.insert(
            name.to_owned(),
            console::ProvisionerInfo {
                mapping: settings.mapping.clone(),
                rendering_fingerprint: Some(duoprov_sync::rendering_fingerprint(&settings)),
                settings: String::new(),
                schedule: schedule.full_sync.describe(),
                sync: Some((Arc::new(settings.clone()), duo.clone())),
            },
        );
        let work = work::StoreWork {
            name: name.to_owned(),
            store: self.store.clone(),
            duo,
            settings,
            shared: self.shared.clone(),
            clock: self.clock.clone(),
        };
        self.loops.push(runner::Loop {
            name: name.to_owned(),
            work,
            schedule,
            lock_retry: self.lock_retry,
            shared: self.shared.clone(),
            clock: self.clock.clone(),
        });
    }

    /// Adds the source `name`, run by `job` on `schedule`. Its first read is due at start, and
    /// the provisioners' first runs wait for it.
    pub fn add_source(&mut self, name: &str, job: Arc<dyn sources::SourceJob>, schedule: sources::SourceSchedule) {
        self.shared.source_gate.set(name, self.clock.now_ms());
        self.shared.update_source(name, |_| {});
        self.sources.push(sources::SourceLoop {
            name: name.to_owned(),
            job,
            schedule,
            store: self.store.clone(),
            shared: self.shared.clone(),
            clock: self.clock.clone(),
        });
    }

    /// Sets the settings text the console shows for provisioner `name` (as `duoprov config`
    /// shows them: no secret, only where each comes from).
    pub fn describe(&mut self, name: &str, settings: String) {
        if let Some(info) = self.console.get_mut(name) {
            info.settings = settings;
        }
    }

    /// Sets how long the registry keeps its logs (pruned hourly while serving; the default is
    /// [`Keep::default`]).
    pub fn keep(&mut self, keep: Keep) {
        self.keep = keep;
    }

    /// Serves the status page on `listen` (its details behind `access`) and runs every provisioner's loop until SIGTERM or
    /// SIGINT; then lets runs in flight finish within `shutdown_grace`, abandoning (and marking
    /// interrupted) those that do not.
    /// The console is open on a loopback address without a console token, needs the token when
    /// one is configured, and is closed off loopback without one.
    pub async fn serve(self, listen: std::net::SocketAddr, access: http::Access, console_access: ConsoleAccess, shutdown_grace: Duration) -> Result<()> {
        let names: Vec<String> = self.loops.iter().map(|l| l.name.clone()).collect();
        let shutdown = ShutdownSignal::listen();
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
                "cannot listen on {listen} for the status page: the address is already in use (another `duoprov run`, or another program, listens there); stop it, or pick a free port with daemon.listen or --listen"
            ),
            _ => anyhow::anyhow!("cannot listen on {listen} for the status page: {e}"),
        })?;
        let local = listener.local_addr()?;
        tracing::info!(address = %local, "Status page serving the console at /, /healthz, /readyz and /metrics.");
        // Machine-readable for whoever started the daemon (tests, supervisors).
        println!("duoprov daemon: status page on http://{local}, provisioners {}", names.join(", "));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut server_stop = stop_rx.clone();
        let mode = match (&console_access.token, listen.ip().is_loopback()) {
            (Some(token), _) => console::Mode::Token(token.clone()),
            (None, true) => console::Mode::Open,
            (None, false) => console::Mode::Closed,
        };
        let console = Arc::new(console::Console::new(self.store.clone(), self.shared.clone(), mode, console_access.secure_cookie, self.console));
        let app = http::router(self.shared.clone(), access, self.store.clone())
            .merge(console::router(console))
            .layer(axum::middleware::map_response(console::auth::security_headers));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = server_stop.wait_for(|s| *s).await;
                })
                .await;
        });
        let mut tasks = tokio::task::JoinSet::new();
        let housekeeping = tokio::spawn(retention::prune_loop(self.store.clone(), self.keep, self.clock.clone(), stop_rx.clone()));
        for s in self.sources {
            let stop = stop_rx.clone();
            tasks.spawn(async move { s.run(stop).await });
        }
        for l in self.loops {
            let stop = stop_rx.clone();
            tasks.spawn(async move { l.run(stop).await });
        }
        shutdown.recv().await;
        tracing::info!("Stopping: letting runs in flight finish.");
        let _ = stop_tx.send(true);
        let finished = tokio::time::timeout(shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!(grace_secs = shutdown_grace.as_secs(), "Runs still in flight after the grace period; abandoning them.");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            for name in &names {
                mark_interrupted(&*self.store, name, "abandoned at shutdown").await;
            }
        }
        let _ = server.await;
        let _ = housekeeping.await;
        tracing::info!("Stopped.");
        Ok(())
    }
}
