//! Introspection routes under `/_emulator/`, answered only to loopback peers (others get Duo's
//! 404/40401, as for any unknown path), needing no signature. They let a test see what a client
//! did without trusting that client: call counters, the call log, the state, the fault rules.
//!
//! | route | does |
//! |---|---|
//! | `GET /_emulator/health` | `{"status":"ok"}` |
//! | `GET /_emulator/calls` | counters: `total`, `by_endpoint` (name → status → n), `by_variant`, `by_status` |
//! | `GET /_emulator/log?since=N` | calls with `seq > N` (all when absent) |
//! | `DELETE /_emulator/log` | forget calls and counters |
//! | `GET /_emulator/state` | the tenant, in the state-file format |
//! | `PUT /_emulator/state` | replace the tenant with the posted dump |
//! | `DELETE /_emulator/state` | empty the tenant |
//! | `POST /_emulator/save` | write the state file now (404 when none is configured) |
//! | `GET /_emulator/faults` | the fault spec and per-rule counters |
//! | `PUT /_emulator/faults` | replace the fault rules with the posted spec text |
//! | `GET /_emulator/config` | the settings and the integration keys (never secret keys) |

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::app::Shared;
use crate::conn::Peer;
use crate::error::ApiError;
use crate::faults::Faults;
use crate::persist;
use crate::state::{Tenant, TenantDump};

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => {
            let mut r = (status, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(_) => ApiError::internal().into_response(),
    }
}

fn bad(message: String) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({ "error": message }),
    )
}

async fn loopback_only(req: Request, next: Next) -> Response {
    let allowed = match req.extensions().get::<ConnectInfo<Peer>>() {
        Some(ConnectInfo(p)) => p.addr.ip().is_loopback(),
        // No connection info: driven in-process (tower `oneshot`), which is local by definition.
        None => true,
    };
    if allowed {
        next.run(req).await
    } else {
        ApiError::not_found().into_response()
    }
}

async fn health() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

async fn calls(State(s): State<Arc<Shared>>) -> Response {
    json(StatusCode::OK, &s.recorder().counts())
}

#[derive(serde::Deserialize)]
struct Since {
    since: Option<u64>,
}

async fn log(State(s): State<Arc<Shared>>, Query(q): Query<Since>) -> Response {
    json(StatusCode::OK, &s.recorder().since(q.since.unwrap_or(0)))
}

async fn clear_log(State(s): State<Arc<Shared>>) -> Response {
    s.recorder().clear();
    json(StatusCode::OK, &serde_json::json!({ "cleared": true }))
}

async fn get_state(State(s): State<Arc<Shared>>) -> Response {
    let dump = s.read().tenant.dump();
    json(StatusCode::OK, &dump)
}

async fn put_state(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let dump: TenantDump = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => return bad(format!("not a state dump: {e}")),
    };
    let tenant = match Tenant::from_dump(dump, &s.settings) {
        Ok(t) => t,
        Err(e) => return bad(e),
    };
    let (users, groups) = (tenant.user_count(), tenant.group_count());
    s.write().tenant = tenant;
    s.mark_dirty();
    json(
        StatusCode::OK,
        &serde_json::json!({ "users": users, "groups": groups }),
    )
}

async fn clear_state(State(s): State<Arc<Shared>>) -> Response {
    s.write().tenant.clear();
    s.mark_dirty();
    json(StatusCode::OK, &serde_json::json!({ "cleared": true }))
}

async fn save(State(s): State<Arc<Shared>>) -> Response {
    match save_now(&s).await {
        Ok(true) => json(StatusCode::OK, &serde_json::json!({ "saved": true })),
        Ok(false) => ApiError::not_found().into_response(),
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &serde_json::json!({ "error": e.to_string() }),
        ),
    }
}

/// Saves the state file now; `Ok(false)` when none is configured.
pub async fn save_now(s: &Arc<Shared>) -> Result<bool, crate::error::Error> {
    let Some(path) = s.state_file.clone() else {
        return Ok(false);
    };
    s.dirty.store(false, std::sync::atomic::Ordering::SeqCst);
    // The state and its save number are taken together (under the save lock), so a higher
    // number always holds a later state.
    let (generation, bytes) = {
        let mut order = s.save_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = order.next;
        order.next += 1;
        (generation, persist::to_bytes(&s.read().tenant.dump())?)
    };
    let shared = s.clone();
    // The write holds the save lock itself, so a save whose caller was cancelled still finishes
    // before the next one starts; one older than the last written is dropped.
    let result = tokio::task::spawn_blocking(move || {
        let mut order = shared
            .save_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if order.written.is_some_and(|w| w > generation) {
            return Ok(());
        }
        persist::save_bytes(&path, &bytes)?;
        order.written = Some(generation);
        Ok(())
    })
    .await
    .map_err(|e| crate::error::Error::Serve(std::io::Error::other(e.to_string())))?;
    if result.is_err() {
        s.mark_dirty();
    }
    result.map(|()| true)
}

async fn get_faults(State(s): State<Arc<Shared>>) -> Response {
    let f = s.faults().clone();
    json(StatusCode::OK, &f)
}

async fn put_faults(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    match Faults::parse(&text) {
        Ok(f) => {
            *s.faults() = f;
            json(StatusCode::OK, &serde_json::json!({ "spec": text.trim() }))
        }
        Err(e) => bad(e.to_string()),
    }
}

async fn config(State(s): State<Arc<Shared>>) -> Response {
    json(
        StatusCode::OK,
        &serde_json::json!({
            "settings": s.settings,
            "ikeys": s.integrations.ikeys(),
            "state_file": s.state_file.as_ref().map(|p| p.display().to_string()),
        }),
    )
}

/// The introspection router (to be merged into the main router).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_emulator/health", get(health))
        .route("/_emulator/calls", get(calls))
        .route("/_emulator/log", get(log).delete(clear_log))
        .route(
            "/_emulator/state",
            get(get_state).put(put_state).delete(clear_state),
        )
        .route("/_emulator/save", axum::routing::post(save))
        .route("/_emulator/faults", get(get_faults).put(put_faults))
        .route("/_emulator/config", get(config))
        .layer(middleware::from_fn(loopback_only))
        .with_state(shared)
}
