//! [`DuoClient`] and its one request path: lay out the parameters for the signature variant,
//! sign with a fresh date, pace, send exactly the signed bytes, read the envelope, classify the
//! outcome (telling the pacer of every attempt and 429 in the call's class), retry what may be
//! retried within the call's deadline, and write the traffic log. A call holds a slot in flight
//! only while an attempt is under way: it releases the slot while it backs off and takes a slot
//! (then a token) again before its next attempt.
//! The typed operations (users, groups, bulk) are thin wrappers over [`DuoClient::call`].

use std::sync::Arc;
use std::time::Duration;

use duoprov_duo_wire::envelope::{self, Failure, Metadata, Outcome};
use duoprov_duo_wire::params::{Prepared, prepare, prepare_json};
use duoprov_duo_wire::sign::{Request, sign_request};
use secrecy::ExposeSecret as _;
use serde_json::Value;
use tokio::time::Instant;

use crate::config::{DuoConfig, TrafficLogMode};
use crate::error::{DuoError, ErrorKind, Result};
use crate::pace::{CallClass, Pacer};
use crate::retry::{Backoff, Safety};
use crate::traffic::{MAX_REQUEST_BODY_CHARS, MAX_RESPONSE_BODY_CHARS, TrafficEntry, loggable_body, loggable_query, mask_body, mask_headers};
use crate::transport::{FailureCause, HttpRequest, HttpResponse, ReqwestTransport, Transport, TransportError};

/// Parameters of one call.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    /// String parameters (repeated keys allowed).
    Pairs(Vec<(String, String)>),
    /// A JSON object (sent as the JSON body for v4/v5 writes).
    Json(serde_json::Map<String, Value>),
}

impl Params {
    /// No parameters.
    pub fn none() -> Self {
        Params::Pairs(Vec::new())
    }

    /// From `(key, value)` pairs.
    pub fn pairs<K: Into<String>, V: Into<String>>(it: impl IntoIterator<Item = (K, V)>) -> Self {
        Params::Pairs(it.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// One call to make.
#[derive(Debug, Clone)]
pub struct CallSpec {
    /// HTTP method.
    pub method: &'static str,
    /// Path, e.g. `/admin/v1/users/DU…`, exactly as it is signed and sent.
    pub path: String,
    /// Parameters.
    pub params: Params,
    /// Pacing class.
    pub class: CallClass,
    /// Whether an unknown outcome may be repeated.
    pub safety: Safety,
    /// Duo codes of a 5xx answer that end the call at once, unretried: Duo's answer for a
    /// condition repeating cannot change (500/50001 on a membership add: a broken group limit).
    pub final_server_codes: &'static [u32],
}

impl CallSpec {
    /// A spec.
    pub fn new(method: &'static str, path: impl Into<String>, params: Params, class: CallClass, safety: Safety) -> Self {
        CallSpec { method, path: path.into(), params, class, safety, final_server_codes: &[] }
    }

    /// The same spec, ending the call unretried on a 5xx answer carrying one of `codes`.
    pub fn final_on(mut self, codes: &'static [u32]) -> Self {
        self.final_server_codes = codes;
        self
    }

    /// `METHOD path`, the label errors carry.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A successful call's envelope content.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The `response` member.
    pub response: Value,
    /// Paging metadata, for list calls.
    pub metadata: Option<Metadata>,
}

/// Where request dates come from (the system clock in production; tests substitute one that
/// follows tokio's paused clock).
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> time::OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }
}

struct Inner {
    cfg: DuoConfig,
    base: String,
    transport: Arc<dyn Transport>,
    pacer: Pacer,
    clock: Arc<dyn Clock>,
    /// Set once `/admin/v1/bulk` proved unusable (404/405 or a reply shape not understood): from
    /// then on this client sends single calls instead (see `bulk.rs`).
    bulk_unusable: std::sync::atomic::AtomicBool,
    /// Set when a recorded probe found that bulk does not remove memberships: chunks holding a
    /// remove are sent as single calls (see `bulk.rs`).
    bulk_remove_unusable: std::sync::atomic::AtomicBool,
    /// Set when a recorded probe found that this Duo compares usernames exactly.
    /// How a recorded probe found usernames compared: 0 no reading, 1 case-insensitively, 2 exactly.
    usernames_reading: std::sync::atomic::AtomicU8,
}

/// The Duo Admin API client. Cheap to clone (shared state); safe to use from many tasks at once
/// (calls in flight are bounded by [`DuoConfig::max_concurrency`] and paced per call class).
///
/// ```no_run
/// # async fn demo() -> Result<(), duoprov_duo::DuoError> {
/// use duoprov_duo::{DuoClient, DuoConfig, NewUser};
/// let cfg = DuoConfig::new("api-xxxxxxxx.duosecurity.com", "DIXXXXXXXXXXXXXXXXXX", "secret".into());
/// let duo = DuoClient::new(cfg)?;
/// let users = duo.list_users().await?;
/// if duo.get_user_by_username("jdoe").await?.is_none() {
///     let created = duo.create_user(&NewUser::new("jdoe").realname("Jane Doe")).await?;
///     println!("created {}", created.user_id);
/// }
/// # let _ = users; Ok(()) }
/// ```
#[derive(Clone)]
pub struct DuoClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DuoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoClient").field("base", &self.inner.base).field("api_host", &self.inner.cfg.api_host).finish()
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// The scheme://host[:port] requests go to.
fn base_url(cfg: &DuoConfig) -> Result<String> {
    let host_ok = !cfg.api_host.is_empty()
        && cfg.api_host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !host_ok {
        return Err(DuoError::config(format!("api_host {:?} is not a host name", cfg.api_host)));
    }
    if cfg.integration_key.is_empty() || cfg.integration_key.contains(':') {
        return Err(DuoError::config("integration_key is empty or contains ':'"));
    }
    if cfg.secret_key.expose_secret().is_empty() {
        return Err(DuoError::config("secret_key is empty"));
    }
    match &cfg.url {
        None => Ok(format!("https://{}", cfg.api_host)),
        Some(u) => {
            let parsed = url::Url::parse(u).map_err(|e| DuoError::config(format!("url {u:?} is invalid: {e}")))?;
            let host = parsed.host().ok_or_else(|| DuoError::config(format!("url {u:?} has no host")))?;
            match parsed.scheme() {
                "https" => {}
                "http" if is_loopback(&host) => {}
                "http" => {
                    return Err(DuoError::config(format!("url {u:?}: plain http is only allowed to a loopback address")));
                }
                other => return Err(DuoError::config(format!("url {u:?}: scheme {other} is not http or https"))),
            }
            if !(parsed.path().is_empty() || parsed.path() == "/") || parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(DuoError::config(format!("url {u:?} must not have a path, query or fragment")));
            }
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(DuoError::config("url must not contain credentials"));
            }
            Ok(parsed.origin().ascii_serialization())
        }
    }
}

/// Maps a non-success status (and its FAIL body, if any) to an error kind.
pub(crate) fn classify(status: u16, failure: Option<&Failure>) -> ErrorKind {
    let code = failure.and_then(|f| f.code);
    let message = failure.map(|f| f.message.clone()).unwrap_or_default();
    match status {
        400 => ErrorKind::InvalidParameter { field: failure.and_then(|f| f.message_detail.clone()), code, message },
        401 => ErrorKind::Auth { code, message, hint: String::new() },
        403 => ErrorKind::Forbidden { code, message },
        404 => ErrorKind::NotFound { code, message },
        429 => ErrorKind::RateLimited { attempts: 1 },
        500..=599 => ErrorKind::Server { status, code, message: failure.map(|f| f.message.clone()) },
        _ => ErrorKind::UnexpectedStatus { status },
    }
}

/// What one attempt ended in.
enum Attempt {
    Done(Reply),
    Fail(ErrorKind),
    RateLimited,
    Server(ErrorKind),
    Transport(TransportError),
}

impl DuoClient {
    /// Builds a client with the production transport (reqwest + rustls).
    pub fn new(cfg: DuoConfig) -> Result<Self> {
        let transport = ReqwestTransport::new(&cfg)?;
        Self::with_transport(cfg, Arc::new(transport))
    }

    /// Builds a client over any [`Transport`] (tests, benchmarks).
    pub fn with_transport(cfg: DuoConfig, transport: Arc<dyn Transport>) -> Result<Self> {
        Self::with_transport_and_clock(cfg, transport, Arc::new(SystemClock))
    }

    /// Builds a client over any [`Transport`] with a custom [`Clock`] for request dates.
    pub fn with_transport_and_clock(cfg: DuoConfig, transport: Arc<dyn Transport>, clock: Arc<dyn Clock>) -> Result<Self> {
        let base = base_url(&cfg)?;
        let pacer = Pacer::new(&cfg.pacing, cfg.max_concurrency);
        Ok(DuoClient { inner: Arc::new(Inner { cfg, base, transport, pacer, clock, bulk_unusable: Default::default(), bulk_remove_unusable: Default::default(), usernames_reading: Default::default() }) })
    }

    /// The configuration (its `Debug` redacts the secret key).
    pub fn config(&self) -> &DuoConfig {
        &self.inner.cfg
    }

    /// Per call class: attempts sent, 429s, and the rate it is paced at now, at most and at its
    /// lowest since this client started.
    pub fn pacing_stats(&self) -> Vec<crate::pace::ClassStats> {
        self.inner.pacer.stats()
    }

    /// Per call class since this client started: time idle (no call under way), time with a
    /// call waiting for a token, and the paced rate's timeline.
    pub fn pacing_profile(&self) -> Vec<crate::pace::ClassProfile> {
        self.inner.pacer.profile()
    }

    /// Per call class, seconds idle and seconds waiting for a token since this client started.
    pub fn pacing_totals(&self) -> Vec<crate::pace::ClassTotals> {
        self.inner.pacer.totals()
    }

    /// Seconds since this client started, on the clock of [`Self::pacing_profile`].
    pub fn pacing_clock_secs(&self) -> f64 {
        self.inner.pacer.clock_secs()
    }

    /// Whether this client found `/admin/v1/bulk` unusable and now sends single calls instead.
    pub fn bulk_found_unusable(&self) -> bool {
        self.inner.bulk_unusable.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn mark_bulk_unusable(&self) {
        self.inner.bulk_unusable.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a recorded probe found that bulk does not remove memberships.
    pub fn bulk_remove_found_unusable(&self) -> bool {
        self.inner.bulk_remove_unusable.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes what a recorded probe of this Duo account found (see [`crate::probe`]): when bulk
    /// did not add a membership (its reply not understood, the endpoint absent, or the change not
    /// confirmed), `bulk = "auto"` sends single calls from the start; when only removing through
    /// bulk did not work, chunks holding a remove go as single calls; a username reading is kept
    /// ([`DuoClient::usernames_probed`], and [`DuoClient::usernames_compare_exactly`] when a
    /// lookup by the lowercase spelling missed a user). A bulk reading of "works" or "not tried"
    /// changes nothing (the client still finds out for itself).
    /// Returns whether anything changed.
    pub fn apply_probe(&self, report: &crate::probe::ProbeReport) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let mut changed = false;
        if report.bulk_add.fails() {
            self.inner.bulk_unusable.store(true, Relaxed);
            changed = true;
        } else if report.bulk_remove.fails() {
            self.inner.bulk_remove_unusable.store(true, Relaxed);
            changed = true;
        }
        if let Some(u) = &report.usernames {
            self.inner.usernames_reading.store(if u.case_sensitive() { 2 } else { 1 }, Relaxed);
            changed = true;
        }
        changed
    }

    /// Whether a recorded probe found that this Duo compares usernames exactly (a lookup by
    /// another case missed the user): syncs then match registry usernames to Duo's byte for byte.
    pub fn usernames_compare_exactly(&self) -> bool {
        self.inner.usernames_reading.load(std::sync::atomic::Ordering::Relaxed) == 2
    }

    /// Whether a recorded probe found how this Duo compares usernames (either way). Without one,
    /// syncs cannot tell a Duo user differing from a registry username only in case from that
    /// subject's user, and hold it.
    pub fn usernames_probed(&self) -> bool {
        self.inner.usernames_reading.load(std::sync::atomic::Ordering::Relaxed) != 0
    }

    /// Builds the signed request for one attempt, with a fresh date.
    fn build(&self, spec: &CallSpec, prepared: &Prepared) -> Result<HttpRequest> {
        let cfg = &self.inner.cfg;
        let date = duoprov_duo_wire::date::format_date(self.inner.clock.now());
        let req = Request {
            date: &date,
            method: spec.method,
            host: &cfg.api_host,
            path: &spec.path,
            canon_params: &prepared.canon_params,
            body: &prepared.body,
            x_duo_headers: &[],
        };
        let signed = sign_request(&cfg.integration_key, cfg.secret_key.expose_secret(), cfg.signature, &req)
            .map_err(|e| DuoError::new(spec.label(), ErrorKind::Config { detail: e.to_string() }))?;
        let mut url = format!("{}{}", self.inner.base, spec.path);
        if !prepared.query.is_empty() {
            url.push('?');
            url.push_str(&prepared.query);
        }
        let mut headers = vec![
            ("Date".to_owned(), date),
            ("Authorization".to_owned(), signed.authorization),
            ("User-Agent".to_owned(), cfg.user_agent.clone()),
        ];
        if let Some(ct) = prepared.content_type {
            headers.push(("Content-Type".to_owned(), ct.to_owned()));
        }
        Ok(HttpRequest { method: spec.method.to_owned(), url, headers, body: prepared.body.clone() })
    }

    fn interpret(resp: &HttpResponse) -> Attempt {
        let parsed = envelope::parse(&resp.body);
        if resp.status == 200 {
            return match parsed {
                Ok(Outcome::Ok { response, metadata }) => Attempt::Done(Reply { response, metadata }),
                Ok(Outcome::Fail(f)) => {
                    // A FAIL body with status 200: classify by Duo's code (its first three digits are an HTTP status).
                    let status = f.code.map(|c| (c / 100) as u16).filter(|s| (400..600).contains(s)).unwrap_or(200);
                    if status == 429 { Attempt::RateLimited } else { Attempt::Fail(classify(status, Some(&f))) }
                }
                Err(e) => {
                    let field = match &e {
                        envelope::EnvelopeError::BadField { field, .. } => (*field).to_owned(),
                        _ => "body".to_owned(),
                    };
                    Attempt::Fail(ErrorKind::Malformed { field, detail: e.to_string() })
                }
            };
        }
        let failure = match &parsed {
            Ok(Outcome::Fail(f)) => Some(f),
            _ => None,
        };
        let rate_code = failure.and_then(|f| f.code).is_some_and(|c| c / 100 == 429);
        if resp.status == 429 || (resp.status == 400 && rate_code) {
            return Attempt::RateLimited;
        }
        if (500..600).contains(&resp.status) {
            return Attempt::Server(classify(resp.status, failure));
        }
        Attempt::Fail(classify(resp.status, failure))
    }

    /// Makes one call: paced, signed per attempt, retried per the policy, within the deadline,
    /// in a `duo_call` span.
    pub async fn call(&self, spec: &CallSpec) -> Result<Reply> {
        use tracing::Instrument as _;
        let span = tracing::info_span!("duo_call", method = spec.method, path = %spec.path);
        self.call_in_span(spec).instrument(span).await
    }

    async fn call_in_span(&self, spec: &CallSpec) -> Result<Reply> {
        let cfg = &self.inner.cfg;
        let label = spec.label();
        let prepared = match &spec.params {
            Params::Pairs(p) => prepare(cfg.signature, spec.method, p),
            Params::Json(m) => prepare_json(cfg.signature, spec.method, m),
        };
        let deadline = far_add(Instant::now(), cfg.call_deadline);
        let _underway = self.inner.pacer.begin(spec.class);
        let mut rate_backoff = Backoff::new(&cfg.retry);
        let mut server_backoff = Backoff::new(&cfg.retry);
        let mut server_retries = 0u32;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // A slot in flight for this attempt only: released while the call backs off (below),
            // so a call waiting out a 429 or a 5xx does not keep another from being sent.
            let slot = self.inner.pacer.slot().await;
            let ticket = self.inner.pacer.token(spec.class).await;
            let now = Instant::now();
            if now >= deadline {
                return Err(DuoError::new(label, ErrorKind::Deadline { deadline: cfg.call_deadline }));
            }
            let req = self.build(spec, &prepared)?;
            let log_req = (cfg.traffic_log != TrafficLogMode::Off)
                .then(|| {
                    let ct = req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.as_str());
                    (req.method.clone(), req.url.clone(), mask_headers(&req.headers), mask_body(&req.body, ct))
                });
            tracing::debug!(call = %label, attempt, "Duo call attempt");
            let started = Instant::now();
            let sent = tokio::time::timeout(deadline - now, self.inner.transport.send(req)).await;
            let elapsed = started.elapsed();
            if let Some(observer) = &cfg.observer {
                let status = match &sent {
                    Ok(Ok(resp)) => Some(resp.status),
                    _ => None,
                };
                observer.attempt(spec.method, &spec.path, status, elapsed);
            }
            let server_date = match &sent {
                Ok(Ok(resp)) => resp
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("date"))
                    .and_then(|(_, v)| duoprov_duo_wire::date::parse_date(v).ok()),
                _ => None,
            };
            let outcome = match &sent {
                Err(_) => None,
                Ok(Ok(resp)) => Some(Self::interpret(resp)),
                Ok(Err(te)) => Some(Attempt::Transport(te.clone())),
            };
            self.inner.pacer.finished(spec.class, ticket, matches!(outcome, Some(Attempt::RateLimited)));
            if let Some((method, url, headers, body)) = log_req {
                let (status, response_body, failed) = match &sent {
                    Ok(Ok(resp)) => (
                        Some(resp.status),
                        loggable_body(&resp.body, cfg.traffic_bodies, MAX_RESPONSE_BODY_CHARS),
                        !matches!(outcome, Some(Attempt::Done(_))),
                    ),
                    Ok(Err(te)) => (None, format!("transport error: {}", te.detail), true),
                    Err(_) => (None, "no response within the call deadline".to_owned(), true),
                };
                TrafficEntry {
                    call: label.clone(),
                    attempt,
                    method,
                    request_headers: headers,
                    status,
                    elapsed_ms: elapsed.as_millis(),
                    // Secrets were masked above; personal data per the configured body mode.
                    request_body: loggable_body(&body, cfg.traffic_bodies, MAX_REQUEST_BODY_CHARS),
                    response_body,
                    query: loggable_query(&url, cfg.traffic_bodies),
                    url,
                }
                .emit(cfg.traffic_log, cfg.traffic_format, failed);
            }
            let Some(outcome) = outcome else {
                return Err(DuoError::new(label, ErrorKind::Deadline { deadline: cfg.call_deadline }));
            };
            let wait = match outcome {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Fail(ErrorKind::Auth { code, message, .. }) => {
                    let hint = self.auth_hint(server_date);
                    return Err(DuoError::new(label, ErrorKind::Auth { code, message, hint }));
                }
                Attempt::Fail(kind) => return Err(DuoError::new(label, kind)),
                Attempt::RateLimited => match rate_backoff.next_wait() {
                    Some(w) => (w, ErrorKind::RateLimited { attempts: attempt }),
                    None => return Err(DuoError::new(label, ErrorKind::RateLimited { attempts: attempt })),
                },
                Attempt::Server(kind) => {
                    let is_final = matches!(kind, ErrorKind::Server { code: Some(c), .. } if spec.final_server_codes.contains(&c));
                    if spec.safety == Safety::Repeatable && !is_final && server_retries < cfg.retry.max_server_retries {
                        server_retries += 1;
                        match server_backoff.next_wait() {
                            Some(w) => (w, kind),
                            None => return Err(DuoError::new(label, kind)),
                        }
                    } else {
                        return Err(DuoError::new(label, kind));
                    }
                }
                Attempt::Transport(te) if te.cause != FailureCause::Other => {
                    // Waiting cannot fix these: say what to fix now.
                    let detail = self.cannot_connect(&te);
                    return Err(DuoError::new(label, ErrorKind::Transport { detail, maybe_sent: te.maybe_sent, cause: te.cause }));
                }
                Attempt::Transport(te) => {
                    let kind = ErrorKind::Transport { detail: te.detail.clone(), maybe_sent: te.maybe_sent, cause: te.cause };
                    let may_repeat = spec.safety == Safety::Repeatable || !te.maybe_sent;
                    if may_repeat && server_retries < cfg.retry.max_server_retries {
                        server_retries += 1;
                        match server_backoff.next_wait() {
                            Some(w) => (w, kind),
                            None => return Err(DuoError::new(label, kind)),
                        }
                    } else {
                        return Err(DuoError::new(label, kind));
                    }
                }
            };
            let (wait, last) = wait;
            if far_add(Instant::now(), wait) >= deadline {
                // Waiting would pass the deadline: report the last failure.
                return Err(DuoError::new(label, last));
            }
            // One line per retry: what, why, and when the next attempt goes.
            match &last {
                ErrorKind::RateLimited { .. } => tracing::warn!("{label}: Duo asked to slow down (HTTP 429); attempt {} in {:.1} s", attempt + 1, wait.as_secs_f64()),
                _ => tracing::warn!("{label}: {last}; retry {server_retries} of {} in {:.1} s", cfg.retry.max_server_retries, wait.as_secs_f64()),
            }
            drop(slot);
            sleep(wait).await;
        }
    }
}

impl DuoClient {
    /// The setting a person fixes when the connection fails: `duo.NAME.url` when a URL is set,
    /// else `duo.NAME.api_host` (or the bare word outside a configuration file).
    fn address_setting(&self) -> String {
        let cfg = &self.inner.cfg;
        let field = if cfg.url.is_some() { "url" } else { "api_host" };
        match &cfg.section {
            Some(section) => format!("{section}.{field}"),
            None => field.to_owned(),
        }
    }

    /// The message of a connection failure waiting cannot fix: where, why, and the fix.
    fn cannot_connect(&self, te: &TransportError) -> String {
        let base = &self.inner.base;
        let setting = self.address_setting();
        let loopback = url::Url::parse(base).ok().and_then(|u| u.host().map(|h| is_loopback(&h))).unwrap_or(false);
        match te.cause {
            FailureCause::Refused => format!(
                "cannot connect to Duo at {base} ({setting}): connection refused. Nothing listens at that address and port: check {setting}{}",
                if loopback { ", and that the emulator is running there (`duoprov emulator …`, as `duoprov init --with-emulator` printed)" } else { "" }
            ),
            FailureCause::UnknownHost => format!(
                "cannot connect to Duo at {base} ({setting}): the host name does not resolve. Check {setting} for a typo (Duo's API hosts look like api-xxxxxxxx.duosecurity.com, from the Admin Panel's application page) and this machine's DNS"
            ),
            FailureCause::PlainHttp => format!(
                "cannot connect to Duo at {base} ({setting}): the server answered in plain HTTP, not HTTPS. If it is the emulator, write the URL with http:// (allowed for loopback addresses only); otherwise use the port that serves HTTPS"
            ),
            FailureCause::Other => format!("cannot connect to Duo at {base} ({setting}): {}", te.detail),
        }
    }

    /// The likely causes of a 401: the secret key, the host the request was signed for against
    /// the one it went to, and clock skew against the server's `Date` header.
    fn auth_hint(&self, server_date: Option<time::OffsetDateTime>) -> String {
        let cfg = &self.inner.cfg;
        let key_setting = match &cfg.section {
            Some(s) => format!(" ({s}.secret_key_file or secret_key_env)"),
            None => String::new(),
        };
        let mut parts = vec![format!("Check that the secret key{key_setting} is the one of integration key {}", cfg.integration_key)];
        let signed = cfg.api_host.to_ascii_lowercase();
        let api_host_setting = match &cfg.section {
            Some(s) => format!("{s}.api_host"),
            None => "api_host".to_owned(),
        };
        let reached = cfg.url.as_deref().and_then(|u| url::Url::parse(u).ok()).and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        match reached {
            Some(host) if host.trim_start_matches('[').trim_end_matches(']') != signed.trim_start_matches('[').trim_end_matches(']') => parts.push(format!(
                "requests are signed for {api_host_setting} \"{signed}\" but sent to {}, which checks the signature against the host it is reached at: with the emulator set {api_host_setting} = \"{host}\"; for Duo itself, remove the url",
                self.inner.base
            )),
            Some(_) => parts.push(format!("requests are signed for {api_host_setting} \"{signed}\", the host they are sent to")),
            None => parts.push(format!("that {api_host_setting} \"{signed}\" is the API hostname shown with this integration key in Duo's Admin Panel")),
        }
        if let Some(server) = server_date {
            let skew = self.inner.clock.now() - server;
            let secs = skew.whole_seconds();
            if secs.abs() >= 60 {
                parts.push(format!(
                    "this computer's clock is {} {} the server's (its Date header: {}); Duo refuses requests dated more than a few minutes off, so set the clock right (NTP)",
                    human_duration(secs.unsigned_abs()),
                    if secs > 0 { "ahead of" } else { "behind" },
                    duoprov_duo_wire::date::format_date(server)
                ));
            } else {
                parts.push("the clocks agree within a minute (the server's Date header), so it is not clock skew".to_owned());
            }
        }
        parts.join("; ")
    }
}

/// `3 min 20 s`, `2 h 5 min`, `4 days 3 h`.
fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} days {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `t + d`, saturating at a year ahead instead of overflowing.
fn far_add(t: Instant, d: Duration) -> Instant {
    t.checked_add(d.min(Duration::from_secs(365 * 24 * 3600))).unwrap_or(t)
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: Option<&str>) -> DuoConfig {
        let mut c = DuoConfig::new("api-x.duosecurity.com", "DIXX", "s".into());
        c.url = url.map(str::to_owned);
        c
    }

    #[test]
    fn base_url_rules() {
        assert_eq!(base_url(&cfg(None)).ok().as_deref(), Some("https://api-x.duosecurity.com"));
        assert_eq!(base_url(&cfg(Some("http://127.0.0.1:8443"))).ok().as_deref(), Some("http://127.0.0.1:8443"));
        assert_eq!(base_url(&cfg(Some("http://localhost:1/"))).ok().as_deref(), Some("http://localhost:1"));
        assert_eq!(base_url(&cfg(Some("http://[::1]:9"))).ok().as_deref(), Some("http://[::1]:9"));
        assert!(base_url(&cfg(Some("https://duo.example.edu"))).is_ok());
        for bad in ["http://10.0.0.1:80", "http://example.com", "ftp://127.0.0.1", "http://127.0.0.1/prefix", "not a url", "https://u:p@h"] {
            assert!(base_url(&cfg(Some(bad))).is_err(), "{bad}");
        }
        let mut c = cfg(None);
        c.api_host = "api-x/evil".into();
        assert!(base_url(&c).is_err());
    }

    #[test]
    fn classification() {
        let f = Failure { code: Some(40002), message: "Invalid request parameters".into(), message_detail: Some("username".into()) };
        assert_eq!(
            classify(400, Some(&f)),
            ErrorKind::InvalidParameter { field: Some("username".into()), code: Some(40002), message: "Invalid request parameters".into() }
        );
        assert!(matches!(classify(401, None), ErrorKind::Auth { .. }));
        assert!(matches!(classify(403, None), ErrorKind::Forbidden { .. }));
        assert!(matches!(classify(404, None), ErrorKind::NotFound { .. }));
        assert!(matches!(classify(503, None), ErrorKind::Server { status: 503, .. }));
        assert!(matches!(classify(302, None), ErrorKind::UnexpectedStatus { status: 302 }));
        assert!(matches!(classify(201, None), ErrorKind::UnexpectedStatus { status: 201 }));
    }
}
