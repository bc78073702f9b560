//! A faithful Duo Admin API server for tests, demos and integration work: it verifies signatures
//! the way Duo does (v2 with HMAC-SHA1 or -SHA512, v4, v5, through `duoprov-duo-wire`), keeps
//! users, groups, memberships and administrators in memory (optionally in a JSON state file),
//! answers in Duo's shapes and error envelopes, rate-limits like Duo, and injects faults on demand.
//! Introspection routes under `/_emulator/` show what clients did.
//!
//! In-process use (tests of other crates):
//!
//! ```no_run
//! # async fn demo() -> Result<(), duoprov_emulator::Error> {
//! use duoprov_emulator::{Emulator, Integration};
//! let emu = Emulator::builder()
//!     .integration(Integration::new("DIXXXXXXXXXXXXXXXXXX", "a-40-character-secret-key-0000000000000"))
//!     .spawn_on("127.0.0.1:0")
//!     .await?;
//! println!("Duo is at {}", emu.base_url());
//! let calls = emu.handle().counts();
//! emu.shutdown().await;
//! # let _ = calls; Ok(()) }
//! ```
//!
//! Layout: `app` (request pipeline), `auth`, `routes/*` (one module per endpoint family),
//! `state` (tenant model), `views` (JSON shapes), `params`, `paging`, `faults`, `ratelimit`,
//! `recorder`, `persist`, `introspect`, `conn` (resettable listener), `cli`.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod conn;
pub mod error;
pub mod faults;
pub mod id;
pub mod introspect;
pub mod paging;
pub mod params;
pub mod persist;
pub mod ratelimit;
pub mod recorder;
pub mod routes;
pub mod state;
pub mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{
    BulkRemovePost, BulkReplyShape, DuplicateGroupNameError, GroupLimitError, Grants, Integration, PageLimit, PageLimits, Profile,
    RateLimits, SecretKey, Settings, StatusCase, UsernameComparison, UsernameStorage,
};
pub use error::{ApiError, Error};
pub use faults::Faults;
pub use recorder::{CallRecord, Counts};
pub use state::TenantDump;

use app::{Shared, World};
use auth::Integrations;
use conn::{Peer, ResettableListener};
use id::IdGen;
use ratelimit::Limiter;
use recorder::Recorder;
use state::Tenant;

/// Builds an [`Emulator`].
#[derive(Debug, Default)]
pub struct EmulatorBuilder {
    settings: Settings,
    integrations: Vec<Integration>,
    faults: Option<String>,
    state_file: Option<PathBuf>,
    initial: Option<TenantDump>,
}

impl EmulatorBuilder {
    /// Adds an accepted integration (ikey, skey, grants).
    pub fn integration(mut self, i: Integration) -> Self {
        self.integrations.push(i);
        self
    }

    /// Replaces the settings.
    pub fn settings(mut self, s: Settings) -> Self {
        self.settings = s;
        self
    }

    /// Changes the settings in place.
    pub fn configure(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(&mut self.settings);
        self
    }

    /// Sets the fault spec (see [`faults`]).
    pub fn faults(mut self, spec: impl Into<String>) -> Self {
        self.faults = Some(spec.into());
        self
    }

    /// Loads the tenant from this file when it exists, and saves it there.
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// Starts from this tenant (when there is no state file, or it does not exist yet).
    pub fn initial_state(mut self, dump: TenantDump) -> Self {
        self.initial = Some(dump);
        self
    }

    /// Validates everything and loads the state.
    pub fn build(self) -> Result<Emulator, Error> {
        self.settings.validate().map_err(Error::Setting)?;
        if self.integrations.is_empty() {
            return Err(Error::Setting(
                "at least one integration (ikey and skey) is needed".into(),
            ));
        }
        let faults = match &self.faults {
            Some(spec) => Faults::parse(spec)?,
            None => Faults::default(),
        };
        let loaded = match &self.state_file {
            Some(p) => persist::load(p)?,
            None => None,
        };
        let source = self
            .state_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<initial state>".into());
        let tenant = match loaded.or(self.initial) {
            Some(dump) => {
                Tenant::from_dump(dump, &self.settings).map_err(|message| Error::StateFormat {
                    path: source,
                    message,
                })?
            }
            None => Tenant::new(&self.settings),
        };
        let shared = Shared {
            integrations: Integrations::new(self.integrations),
            world: RwLock::new(World {
                tenant,
                ids: IdGen::new(self.settings.id_seed),
            }),
            recorder: Mutex::new(Recorder::new(self.settings.call_log_capacity)),
            signatures: Mutex::new(auth::SignatureLog::new(self.settings.call_log_capacity)),
            faults: Mutex::new(faults),
            limiter: Limiter::new(&self.settings.rate_limits),
            state_file: self.state_file,
            dirty: AtomicBool::new(false),
            save_lock: Mutex::new(crate::app::SaveGeneration::default()),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            settings: self.settings,
        };
        Ok(Emulator {
            shared: Arc::new(shared),
        })
    }

    /// Builds and serves on `addr` (e.g. `127.0.0.1:0`) in a background task.
    pub async fn spawn_on(self, addr: &str) -> Result<RunningEmulator, Error> {
        self.build()?.spawn_on(addr).await
    }
}

/// A configured emulator, not yet serving.
#[derive(Debug, Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

/// The axum router for `shared`: Duo's API plus (when enabled) the introspection routes.
pub fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new().fallback(app::api).with_state(shared.clone());
    if shared.settings.introspection {
        introspect::router(shared)
            .layer(DefaultBodyLimit::max(1 << 30))
            .merge(api)
    } else {
        api
    }
}

impl Emulator {
    /// Starts building.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// A handle for inspecting and changing the running state.
    pub fn handle(&self) -> EmulatorHandle {
        EmulatorHandle {
            shared: self.shared.clone(),
        }
    }

    /// The router (serve it with connect info of type [`conn::Peer`] to enable resets and the
    /// loopback check, or drive it in-process).
    pub fn router(&self) -> Router {
        router(self.shared.clone())
    }

    /// Binds `addr` and serves in a background task until [`RunningEmulator::shutdown`].
    pub async fn spawn_on(self, addr: &str) -> Result<RunningEmulator, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|cause| Error::Bind {
                addr: addr.to_owned(),
                cause,
            })?;
        let local = listener.local_addr().map_err(|cause| Error::Bind {
            addr: addr.to_owned(),
            cause,
        })?;
        let (tx, mut rx) = watch::channel(false);
        let handle = self.handle();
        let task = tokio::spawn(async move {
            self.serve(listener, async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await
        });
        Ok(RunningEmulator {
            addr: local,
            handle,
            stop: tx,
            task: Some(task),
        })
    }

    /// Serves on `listener` until `shutdown` completes, saving the state file periodically when
    /// it changed and once more at the end.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let shared = self.shared.clone();
        let saver = shared.state_file.as_ref().map(|_| {
            let s = shared.clone();
            let every = Duration::from_secs(s.settings.save_interval_secs.max(1));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    if s.dirty.load(Ordering::SeqCst)
                        && let Err(e) = introspect::save_now(&s).await
                    {
                        tracing::error!(error = %e, "Saving the state file failed.");
                    }
                }
            })
        });
        let idle = Duration::from_secs(shared.settings.idle_timeout_secs.max(1));
        let app = self.router().into_make_service_with_connect_info::<Peer>();
        let result = axum::serve(ResettableListener::new(listener, idle), app)
            .with_graceful_shutdown(shutdown)
            .await;
        if let Some(t) = saver {
            t.abort();
            let _ = t.await;
        }
        if shared.state_file.is_some() {
            introspect::save_now(&shared).await?;
        }
        result.map_err(Error::Serve)
    }
}

/// A handle on a (possibly running) emulator's state, call log and faults.
#[derive(Debug, Clone)]
pub struct EmulatorHandle {
    shared: Arc<Shared>,
}

impl EmulatorHandle {
    /// Call counters.
    pub fn counts(&self) -> Counts {
        self.shared.recorder().counts()
    }

    /// Recorded calls with `seq > since`.
    pub fn calls_since(&self, since: u64) -> Vec<CallRecord> {
        self.shared.recorder().since(since)
    }

    /// How many Duo API requests the emulator is handling now (a request held by a latency fault
    /// counts until it is answered, or dropped with its connection).
    pub fn requests_in_flight(&self) -> usize {
        self.shared.in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// All recorded calls still in the log.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.calls_since(0)
    }

    /// Forgets calls and counters (and the received signatures).
    pub fn clear_calls(&self) {
        self.shared.recorder().clear();
        self.shared.signatures().clear();
    }

    /// The hex signatures of every `Authorization` header received that parsed as
    /// `Basic base64(ikey:hexsig)` (verified or not), oldest first, at most
    /// `call_log_capacity` of them. For tests that scan a client's logs and files for leaked
    /// signatures; kept in memory only (never logged, saved or served over HTTP).
    pub fn received_signatures(&self) -> Vec<String> {
        self.shared.signatures().all()
    }

    /// The tenant as a dump.
    pub fn state(&self) -> TenantDump {
        self.shared.read().tenant.dump()
    }

    /// Replaces the tenant.
    pub fn load_state(&self, dump: TenantDump) -> Result<(), Error> {
        let t = Tenant::from_dump(dump, &self.shared.settings).map_err(|message| {
            Error::StateFormat {
                path: "<handle>".into(),
                message,
            }
        })?;
        self.shared.write().tenant = t;
        self.shared.mark_dirty();
        Ok(())
    }

    /// Replaces the fault rules.
    pub fn set_faults(&self, spec: &str) -> Result<(), Error> {
        *self.shared.faults() = Faults::parse(spec)?;
        Ok(())
    }

    /// Saves the state file now; `Ok(false)` when none is configured.
    pub async fn save(&self) -> Result<bool, Error> {
        introspect::save_now(&self.shared).await
    }

    /// Runs `f` with read access to the tenant (for cheap assertions on big states).
    pub fn with_tenant<R>(&self, f: impl FnOnce(&Tenant) -> R) -> R {
        f(&self.shared.read().tenant)
    }

    /// Runs `f` with write access to the tenant and its id generator (seeding big states).
    pub fn with_tenant_mut<R>(&self, f: impl FnOnce(&mut Tenant, &mut IdGen) -> R) -> R {
        let mut w = self.shared.write();
        let world = &mut *w;
        let r = f(&mut world.tenant, &mut world.ids);
        self.shared.mark_dirty();
        r
    }
}

/// An emulator serving in the background.
#[derive(Debug)]
pub struct RunningEmulator {
    addr: SocketAddr,
    handle: EmulatorHandle,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl RunningEmulator {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://IP:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The state/calls/faults handle.
    pub fn handle(&self) -> &EmulatorHandle {
        &self.handle
    }

    /// Stops serving (after in-flight requests) and saves the state file if it changed.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        match self.task.take() {
            Some(t) => t
                .await
                .map_err(|e| Error::Serve(std::io::Error::other(e.to_string())))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
