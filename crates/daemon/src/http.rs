//! The daemon's status page on a loopback address: `/` (a plain-text index of what follows),
//! `/healthz` (the process serves), `/readyz`
//! (every provisioner has a role and is in a run or heard from the registry recently; JSON with
//! each provisioner's role and last result) and `/metrics` (Prometheus/OpenMetrics text).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

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

/// Shared between the provisioner loops and the status page.
#[derive(Debug, Default)]
pub struct Shared {
    pub metrics: Metrics,
    pub provisioners: Mutex<BTreeMap<String, ProvisionerStatus>>,
    /// A provisioner counts as ready while its registry check is at most this old.
    pub stale_after_ms: i64,
}

impl Shared {
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

/// `GET /`: what this page serves, so a browser pointed at the address finds its way.
async fn index() -> &'static str {
    "duoprov daemon status page\n\n\
     /healthz  200 while the process serves\n\
     /readyz   200 when every provisioner is running or heard from the registry recently (JSON)\n\
     /metrics  Prometheus/OpenMetrics text\n"
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let ready = shared.ready(duoprov_sync::now_ms());
    let map = shared.provisioners.lock().map(|m| m.clone()).unwrap_or_default();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(serde_json::json!({ "ready": ready, "provisioners": map })))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], shared.metrics.encode())
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().route("/", get(index)).route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics)).with_state(shared)
}
