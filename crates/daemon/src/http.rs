//! The daemon's status page (the console, at `/`, is in `console/`):
//! `/healthz` (the process serves), `/readyz`
//! (every provisioner has a role and is in a run or heard from the registry recently; JSON with
//! each provisioner's role and last result, the plan of it the safety rules refused if the
//! registry keeps one, and each source's last result) and `/metrics` (Prometheus/OpenMetrics
//! text, with `duoprov_refused_plan` read from the registry at each scrape). A refused plan
//! leaves the verdict alone: the daemon works, an operator must decide (alert on the gauge).
//! With a metrics token ([`Access::token`], required off loopback) `/metrics` and `/readyz`'s
//! details need `Authorization: Bearer TOKEN`; `/healthz` and `/readyz`'s bare verdict stay open
//! for probes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use subtle::ConstantTimeEq;

use duoprov_registry::Store;

use crate::metrics::Metrics;

/// What `/readyz` reports of one provisioner.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProvisionerStatus {
    /// `starting`, `holder` (this daemon runs it) or `standby` (another process holds it).
    pub role: String,
    /// The last run's kind and result.
    pub last_run: Option<String>,
    /// Milliseconds since the epoch when the registry last answered this provisioner's loop.
    pub registry_ok_at_ms: Option<i64>,
    /// The last error, if the last attempt failed.
    pub last_error: Option<String>,
    /// Milliseconds since the epoch when the run now under way started (`None` between runs).
    pub running_since_ms: Option<i64>,
}

/// What `/readyz` reports of one source the daemon runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    /// The last run's result: `applied`, `unchanged`, `refused` (the safety rules; nothing
    /// changed) or `failed`; `None` before the first run.
    pub last_result: Option<String>,
    /// Milliseconds since the epoch when the last run ended.
    pub last_run_at_ms: Option<i64>,
    /// What the last run refused, or why it failed.
    pub detail: Option<String>,
    /// Milliseconds since the epoch when the next full read is due.
    pub next_read_at_ms: Option<i64>,
    /// How the daemon learns of the source's changes between scheduled reads: `syncrepl` (LDAP
    /// content synchronization), `polling` (LDAP `modifyTimestamp`) or `schedule` (only the
    /// scheduled reads).
    pub mode: Option<String>,
    /// With `mode` `syncrepl`: whether the persistent search is connected now (while it is
    /// not, the daemon polls if a `poll_interval` is set, and reconnects with backoff).
    pub connected: Option<bool>,
    /// Why the change feed is not connected, while it is not.
    pub feed_error: Option<String>,
}

/// Shared between the provisioner loops and the status page.
#[derive(Debug, Default)]
pub struct Shared {
    pub metrics: Metrics,
    /// The console's requests to the loops, and what the loops leave for it.
    pub steering: crate::steer::Steering,
    pub provisioners: Mutex<BTreeMap<String, ProvisionerStatus>>,
    /// The sources the daemon runs (a refused or failed source leaves readiness alone: the
    /// provisioners go on with what the registry holds).
    pub sources: Mutex<BTreeMap<String, SourceStatus>>,
    /// Holds provisioner runs back while a source run is due (sources run first).
    pub source_gate: crate::sources::SourceGate,
    /// A provisioner counts as ready while its registry check is at most this old.
    pub stale_after_ms: i64,
}

impl Shared {
    pub fn update_source(&self, source: &str, f: impl FnOnce(&mut SourceStatus)) {
        if let Ok(mut map) = self.sources.lock() {
            f(map.entry(source.to_owned()).or_default());
        }
    }

    pub fn update(&self, provisioner: &str, f: impl FnOnce(&mut ProvisionerStatus)) {
        if let Ok(mut map) = self.provisioners.lock() {
            f(map.entry(provisioner.to_owned()).or_default());
        }
    }

    /// Whether the daemon is ready at `now_ms`: it serves at least one provisioner, and each one
    /// has found its role and is either in a run (a full sync may take many minutes: it is
    /// working, not stuck) or heard from the registry within `stale_after_ms`.
    pub fn ready(&self, now_ms: i64) -> bool {
        let Ok(map) = self.provisioners.lock() else { return false };
        !map.is_empty()
            && map.values().all(|p| {
                p.role != "starting"
                    && (p.running_since_ms.is_some() || p.registry_ok_at_ms.is_some_and(|t| now_ms - t <= self.stale_after_ms))
            })
    }
}

/// Who may read the status page's details: anyone who reaches it (`Access::default()`, loopback
/// only), or whoever presents the token.
#[derive(Clone, Default)]
pub struct Access {
    token: Option<Arc<SecretString>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").field("token", &self.token.as_ref().map(|_| "[redacted]")).finish()
    }
}

impl Access {
    /// Details only for requests carrying `Authorization: Bearer TOKEN`.
    pub fn token(token: SecretString) -> Access {
        Access { token: Some(Arc::new(token)) }
    }

    /// Whether a request with `headers` may read the details (compared in constant time).
    fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else { return true };
        let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(token.expose_secret().as_bytes())))
    }
}

#[derive(Clone)]
struct Page {
    shared: Arc<Shared>,
    access: Access,
    /// Where the refused plans are kept (any daemon of the registry reads them, holder or not).
    store: Arc<dyn Store>,
}

/// How long the status page waits for the registry's refused plans: a probe must not hang on a
/// registry that does not answer (the verdict never depends on them).
const REFUSED_PLAN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A provisioner's refused plan kept in the registry, read within [`REFUSED_PLAN_WAIT`].
async fn read_refused_plan(store: &dyn Store, provisioner: &str) -> Result<Option<duoprov_registry::RefusedPlan>, String> {
    match tokio::time::timeout(REFUSED_PLAN_WAIT, store.refused_plan(provisioner)).await {
        Ok(read) => read.map_err(|e| format!("cannot read the refused plan of {provisioner} from the registry: {e}")),
        Err(_) => Err(format!("the registry did not give the refused plan of {provisioner} within {} s", REFUSED_PLAN_WAIT.as_secs())),
    }
}

/// What `/readyz`'s details say of a provisioner's refused plan kept in the registry: when, which
/// run kind, the digest to approve, how many removals, why; `null` when none; an error reading it
/// is said as such (the verdict does not depend on it).
async fn refused_plan_json(store: &dyn Store, provisioner: &str) -> serde_json::Value {
    match read_refused_plan(store, provisioner).await {
        Ok(Some(p)) => serde_json::json!({
            "at_ms": p.at_ms,
            "kind": p.kind,
            "digest": p.digest,
            "removal_count": p.removal_count,
            "reasons": p.reasons,
        }),
        Ok(None) => serde_json::Value::Null,
        Err(e) => serde_json::json!({ "error": e }),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(page): State<Page>, headers: HeaderMap) -> impl IntoResponse {
    let shared = &page.shared;
    let ready = shared.ready(duoprov_sync::now_ms());
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    if !page.access.allows(&headers) {
        // Probes need the verdict only; names and errors are for whoever holds the token.
        return (status, axum::Json(serde_json::json!({ "ready": ready })));
    }
    let map = shared.provisioners.lock().map(|m| m.clone()).unwrap_or_default();
    let sources = shared.sources.lock().map(|m| m.clone()).unwrap_or_default();
    let mut provisioners = serde_json::Map::new();
    for (name, status) in map {
        let mut details = serde_json::to_value(status).unwrap_or_default();
        if let Some(fields) = details.as_object_mut() {
            fields.insert("refused_plan".into(), refused_plan_json(page.store.as_ref(), &name).await);
        }
        provisioners.insert(name, details);
    }
    (status, axum::Json(serde_json::json!({ "ready": ready, "provisioners": provisioners, "sources": sources })))
}

async fn metrics(State(page): State<Page>, headers: HeaderMap) -> axum::response::Response {
    if !page.access.allows(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"duoprov metrics\"")],
            "/metrics needs the metrics token: send `Authorization: Bearer TOKEN` (the token in daemon.metrics_token_file)\n",
        )
            .into_response();
    }
    let names: Vec<String> = page.shared.provisioners.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    for name in names {
        match read_refused_plan(page.store.as_ref(), &name).await {
            Ok(kept) => page.shared.metrics.refused_plan(&name, kept.is_some()),
            // The gauge keeps its last reading; the registry's failure shows on /readyz.
            Err(e) => tracing::warn!(provisioner = %name, error = %e, "Cannot read the refused plan for /metrics."),
        }
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], page.shared.metrics.encode()).into_response()
}

/// The status page's routes, open to anyone who reaches them or behind `access`'s token; the
/// refused plans are read from `store`.
pub fn router(shared: Arc<Shared>, access: Access, store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Page { shared, access, store })
}
