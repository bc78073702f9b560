//! The operator's console: server-rendered pages on the daemon's status address — the overview
//! of every provisioner and source, a provisioner's links, errors, refused plan, settings and
//! actions, its run history and each run's failures, and the Duo users report with its CSV
//! download with its method filters ("not in the registry" by the usernames the provisioner's
//! runs recorded, when current), the explain page (why a subject is or is not in a Duo
//! group, as `duoprov explain`) — and the actions behind authentication (a full sync now, a retry
//! of one object in error, approving a refused plan by its digest), each recorded in the audit
//! trail and read back as the action log ([`duoprov_registry::ConsoleActions`]). The requests and
//! the refused plan are the registry's ([`duoprov_registry::ConsoleRequests`]): any daemon's
//! console (a standby's too) takes a request, the daemon leading the provisioner carries it out,
//! and both outlive a restart. No script, no
//! inline style: a stylesheet the daemon serves, so the strict Content-Security-Policy of
//! `auth.rs` holds. Pages page their lists in SQL ([`duoprov_registry::ConsoleReads`]).
//!
//! [`routes`] is the route table: a page or action added there sits behind the same gate and
//! headers.

pub mod auth;
mod explain;
pub mod html;
mod pages;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use duoprov_plan::Mapping;
use duoprov_registry::Store;

use crate::http::Shared;
pub use auth::{ConsoleAccess, Mode};

/// What the console shows of one provisioner beyond the registry and the loop.
#[derive(Debug, Clone)]
pub struct ProvisionerInfo {
    /// Its Duo username template (the Duo users report's "not in the registry").
    pub mapping: Arc<Mapping>,
    /// The fingerprint of its rendering settings ([`duoprov_sync::rendering_fingerprint`]):
    /// "not in the registry" reads the recorded usernames in SQL when they were made under it,
    /// and renders the template otherwise (`None`: always renders).
    pub rendering_fingerprint: Option<String>,
    /// Its settings as `duoprov config` shows them (no secret, only where each comes from).
    pub settings: String,
    /// Its full-sync schedule, in words.
    pub schedule: String,
    /// Its sync settings and Duo client, for the explain page (`None`: the page says it cannot
    /// explain here).
    pub sync: Option<(Arc<duoprov_sync::SyncSettings>, duoprov_duo::DuoClient)>,
}

/// The console's state.
pub struct Console {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) guard: auth::Guard,
    pub(crate) provisioners: BTreeMap<String, ProvisionerInfo>,
}

impl Console {
    pub fn new(store: Arc<dyn Store>, shared: Arc<Shared>, mode: Mode, secure_cookie: bool, provisioners: BTreeMap<String, ProvisionerInfo>) -> Console {
        Console { store, shared, guard: auth::Guard::new(mode, secure_cookie), provisioners }
    }
}

/// The console's pages and actions, behind its gate.
pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/provisioners/{name}", get(pages::provisioner))
        .route("/provisioners/{name}/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/duo-users", get(pages::duo_users))
        .route("/duo-users.csv", get(pages::duo_users_csv))
        .route("/provisioners/{name}/full-sync", post(pages::request_full))
        .route("/provisioners/{name}/approve", post(pages::approve))
        .route("/provisioners/{name}/retry", post(pages::retry))
        .route("/explain", get(explain::explain))
        .route("/logout", post(auth::logout))
}

/// The console as a router: its routes behind the gate, the sign-in form, the stylesheet and an
/// empty icon (browsers ask for one) outside it.
pub fn router(console: Arc<Console>) -> Router {
    let gated = routes().route_layer(axum::middleware::from_fn_with_state(console.clone(), auth::gate));
    Router::new()
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/console.css", get(pages::css))
        .route("/favicon.ico", get(|| async { axum::http::StatusCode::NO_CONTENT }))
        .merge(gated)
        .with_state(console)
}
