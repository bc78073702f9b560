//! The request pipeline shared by every Duo endpoint: resolve the route, read the body (capped
//! and with a timeout), authenticate and check the grant, apply injected faults, parse
//! parameters by content type, take a rate-limit token (the class may depend on the parameters),
//! run the handler, record the call. Also the shared server state ([`Shared`]) and the handler context ([`Ctx`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use duoprov_duo_wire::verify::{ReceivedRequest, host_candidates};

use crate::auth::{self, Integrations, SignatureLog};
use crate::config::Settings;
use crate::conn::Peer;
use crate::error::ApiError;
use crate::faults::{Faults, Outcome};
use crate::id::IdGen;
use crate::params::{BodyKind, Params, body_kind, decode_form};
use crate::ratelimit::Limiter;
use crate::recorder::{CallRecord, Recorder};
use crate::routes::{self, Route};
use crate::state::Tenant;

/// The tenant and its id generator, behind one lock.
#[derive(Debug)]
pub struct World {
    /// The tenant.
    pub tenant: Tenant,
    /// Id generator.
    pub ids: IdGen,
}

/// Everything the server shares between requests.
#[derive(Debug)]
pub struct Shared {
    /// Behaviour settings.
    pub settings: Settings,
    /// Accepted integrations.
    pub integrations: Integrations,
    /// The tenant.
    pub world: RwLock<World>,
    /// Call log and counters.
    pub recorder: Mutex<Recorder>,
    /// Signatures received (in memory only; see [`SignatureLog`]).
    pub signatures: Mutex<SignatureLog>,
    /// Fault rules.
    pub faults: Mutex<Faults>,
    /// Rate limiters.
    pub limiter: Limiter,
    /// The state file, if any.
    pub state_file: Option<std::path::PathBuf>,
    /// Set when the tenant changed since the last save.
    pub dirty: AtomicBool,
    /// Serialises writes of the state file and orders them ([`SaveGeneration`]).
    pub save_lock: Mutex<SaveGeneration>,
    /// Duo API requests being handled now (a held one included).
    pub in_flight: AtomicUsize,
}

/// Counts a request in [`Shared::in_flight`] until dropped (answered, or abandoned with its
/// connection).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> InFlight<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    /// Read access to the tenant (a poisoned lock is recovered: the tenant is only mutated after
    /// validation, so it is consistent).
    pub fn read(&self) -> RwLockReadGuard<'_, World> {
        self.world
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Write access to the tenant.
    pub fn write(&self) -> RwLockWriteGuard<'_, World> {
        self.world
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The recorder.
    pub fn recorder(&self) -> MutexGuard<'_, Recorder> {
        self.recorder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The received-signature log.
    pub fn signatures(&self) -> MutexGuard<'_, SignatureLog> {
        self.signatures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The fault rules.
    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Unix seconds for timestamps (the fixed time when configured).
    pub fn now(&self) -> i64 {
        self.settings
            .fixed_time
            .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp())
    }

    /// Marks the tenant as changed.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }
}

/// What a handler sees.
pub struct Ctx<'a> {
    /// Shared state.
    pub shared: &'a Shared,
    /// Unix seconds "now".
    pub now: i64,
    /// Names of the objects this call created, for the call log.
    pub created: std::sync::Mutex<Vec<String>>,
}

impl Ctx<'_> {
    /// Settings.
    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// Notes that this call created the group or user `name` (shown in the call log).
    pub fn created(&self, name: &str) {
        if let Ok(mut c) = self.created.lock() {
            c.push(name.to_owned());
        }
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

struct Outcomes {
    record: CallRecord,
    started: Instant,
}

impl Outcomes {
    fn finish(mut self, shared: &Shared, status: u16, code: Option<u32>) {
        self.record.status = status;
        self.record.code = code;
        self.record.micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        tracing::debug!(
            method = %self.record.method,
            path = %self.record.path,
            endpoint = self.record.endpoint.unwrap_or("unknown"),
            status,
            code = code.unwrap_or(0),
            variant = self.record.variant.unwrap_or(""),
            "Call answered."
        );
        shared.recorder().record(self.record);
    }

    fn fail(self, shared: &Shared, e: ApiError) -> Response {
        let (status, code) = (e.status, e.code);
        self.finish(shared, status, Some(code));
        e.into_response()
    }
}

/// The Duo API handler: every request that is not an introspection route lands here.
pub async fn api(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.clone());
    let _busy = peer.as_ref().map(Peer::busy);
    let _in_flight = InFlight::enter(&shared.in_flight);
    let method = parts.method.as_str().to_owned();
    let raw_path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let mut out = Outcomes {
        record: CallRecord {
            seq: 0,
            at_ms: i64::try_from(
                time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000,
            )
            .unwrap_or(0),
            method: method.clone(),
            path: raw_path.clone(),
            endpoint: None,
            status: 0,
            code: None,
            ikey: None,
            variant: None,
            fault: None,
            params: Vec::new(),
            created: Vec::new(),
            micros: 0,
        },
        started,
    };

    // 1. Route.
    let route: Route = match routes::resolve(&method, &raw_path) {
        Ok(r) => r,
        Err(e) => return out.fail(&shared, e),
    };
    let endpoint = route.endpoint;
    out.record.endpoint = Some(endpoint.name());

    // 2. Body, capped and bounded in time.
    let limit = shared.settings.max_body_bytes;
    if let Some(len) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return out.fail(&shared, ApiError::too_large(limit));
    }
    let timeout = Duration::from_secs(shared.settings.body_timeout_secs.max(1));
    let body = match tokio::time::timeout(timeout, read_body(Body::new(body), limit)).await {
        Ok(Ok(b)) => b,
        Ok(Err(BodyError::TooLarge)) => return out.fail(&shared, ApiError::too_large(limit)),
        Ok(Err(BodyError::Broken)) => {
            return out.fail(&shared, ApiError::invalid("body (incomplete)"));
        }
        Err(_) => return out.fail(&shared, ApiError::invalid("body (timed out)")),
    };

    // 3. Authenticate.
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
        .collect();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let kind = body_kind(content_type, &body);
    let query_pairs = decode_form(query.as_bytes());
    let mut signed_params = query_pairs.clone();
    if kind == BodyKind::Form {
        signed_params.extend(decode_form(&body));
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let hosts = host_candidates(host, shared.settings.canonical_host.as_deref());
    if let Some(authorization) = duoprov_duo_wire::verify::header(&headers, "authorization") {
        shared.signatures().record(authorization);
    }
    let received = ReceivedRequest {
        method: &method,
        path: &raw_path,
        host_candidates: &hosts,
        params: &signed_params,
        body: &body,
        headers: &headers,
    };
    let authd = match auth::authenticate(
        &shared.integrations,
        &received,
        time::OffsetDateTime::now_utc(),
        shared.settings.clock_skew_secs,
    ) {
        Ok(a) => a,
        Err(f) => {
            out.record.ikey = f.ikey;
            return out.fail(&shared, f.error);
        }
    };
    out.record.ikey = Some(authd.ikey.clone());
    out.record.variant = Some(authd.variant.name());
    if let Err(e) = auth::check_grant(&authd.grants, endpoint.permission()) {
        return out.fail(&shared, e);
    }

    // 4. Faults.
    let decision = shared.faults().decide(endpoint.name());
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    if let Some(o) = decision.outcome {
        out.record.fault = Some(o.name());
        return match o {
            Outcome::TooManyRequests => out.fail(&shared, ApiError::rate_limited()),
            Outcome::InternalError => out.fail(&shared, ApiError::internal()),
            Outcome::Unavailable => out.fail(&shared, ApiError::unavailable()),
            Outcome::Reset => {
                if let Some(p) = &peer {
                    p.reset();
                }
                out.finish(&shared, 0, None);
                ApiError::unavailable().into_response()
            }
        };
    }

    // 5. Parameters (an id-list lookup has a rate class of its own).
    let params = match Params::build(
        &query_pairs,
        kind,
        &body,
        shared.settings.missing_param_code,
    ) {
        Ok(p) => p,
        Err(e) => return out.fail(&shared, e),
    };
    out.record.params = params.keys().map(str::to_owned).collect();

    // 6. Rate limit.
    if !shared
        .limiter
        .check(&authd.ikey, routes::rate_class(endpoint, &params))
    {
        return out.fail(&shared, ApiError::rate_limited());
    }

    // 7. Handler.
    let now = shared.now();
    purge_trash(&shared, now);
    let ctx = Ctx {
        shared: &shared,
        now,
        created: std::sync::Mutex::new(Vec::new()),
    };
    let result = routes::handle(&ctx, &route, &params);
    out.record.created = ctx.created.into_inner().unwrap_or_default();
    match result {
        Ok(bytes) => {
            if endpoint.mutates() {
                shared.mark_dirty();
            }
            out.finish(&shared, 200, None);
            json_response(StatusCode::OK, bytes)
        }
        Err(e) => out.fail(&shared, e),
    }
}

/// Why a request body could not be read.
enum BodyError {
    /// It grew past the cap.
    TooLarge,
    /// The connection failed or ended before the body was complete.
    Broken,
}

/// Reads the whole body, refusing more than `limit` bytes. (`axum::body::to_bytes` reports a
/// body cut short and one that is too long with the same error, which made a client that
/// half-closed mid-body get 413 instead of 400.)
async fn read_body(mut body: Body, limit: usize) -> Result<axum::body::Bytes, BodyError> {
    use axum::body::HttpBody as _;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        if let Ok(data) = frame.into_data() {
            if buf.len().saturating_add(data.len()) > limit {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.into())
}

fn purge_trash(shared: &Shared, now: i64) {
    let retention = i64::from(shared.settings.trash_retention_days) * 86_400;
    if shared.read().tenant.has_trash() {
        let n = shared.write().tenant.purge_trash(now, retention);
        if n > 0 {
            shared.mark_dirty();
        }
    }
}

/// Orders the state file's writes: each save takes the next number when it reads the state, and
/// the writer (under the save lock) skips a save older than the one already written — a
/// periodic save cancelled at shutdown must not overwrite the final one with its older state.
#[derive(Debug, Default)]
pub struct SaveGeneration {
    /// The number the next save takes.
    pub next: u64,
    /// The number of the save last written.
    pub written: Option<u64>,
}
