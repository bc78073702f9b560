//! What the console asks of the daemons, and what their runs leave for it, kept in the registry
//! so that it outlives a restart and is seen by every daemon sharing the registry: the pending
//! requests (a full sync now, a retry of one object now; who asked, when), carried out by
//! whichever daemon leads the provisioner and consumed by exactly one run; and the last plan the
//! safety rules refused per provisioner (its removals as shown, their number, the digest, the
//! rules that refused it, when), which an approval from the console is checked against.
//!
//! A full sync's request is claimed when its run starts and deleted when the run ends (done or
//! refused): a request made while that run is under way waits for the next run, and a run cut
//! short (the process killed) leaves its request for the next leader. A retry's request is
//! deleted together with the audit entry of its outcome.

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;

/// The removals of a refused plan kept to show (the page shows as many; the count says how
/// many there were).
pub const REFUSAL_REMOVALS_KEPT: usize = 500;

/// The object a retry asks to sync alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum RequestedObject {
    /// A subject, as `SOURCE:ID`.
    Subject(String),
    /// A registry group, by its full name.
    Group(String),
}

impl std::fmt::Display for RequestedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestedObject::Subject(s) => write!(f, "subject {s}"),
            RequestedObject::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    /// A full sync now.
    FullSync,
    /// A sync of one object alone now.
    Retry(RequestedObject),
}

/// A request made from the console and not yet carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleRequest {
    pub id: i64,
    pub provisioner: String,
    pub kind: RequestKind,
    /// `loopback` or `console token`.
    pub who: String,
    pub at_ms: i64,
    /// When a run took it up (a full sync under way, or cut short).
    pub claimed_at_ms: Option<i64>,
}

/// What came of asking for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryQueued {
    /// Queued.
    Queued,
    /// A retry of the same object already waits: it is the same request.
    AlreadyWaiting,
    /// As many retries as allowed already wait; nothing was queued.
    Full,
}

/// The last plan of a provisioner the safety rules refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedPlan {
    pub provisioner: String,
    pub at_ms: i64,
    /// `full` or `incremental`.
    pub kind: String,
    /// Why the rules refused it.
    pub reasons: Vec<String>,
    /// Its first [`REFUSAL_REMOVALS_KEPT`] removals and deletions, one line each, by name.
    pub removals: Vec<String>,
    /// How many removals and deletions it had.
    pub removal_count: i64,
    pub digest: String,
}

/// The console's requests and the last refused plans.
#[async_trait]
pub trait ConsoleRequests: Send + Sync {
    /// Asks for a full sync of `provisioner` on behalf of `who` and audits the action, in one
    /// transaction. A request while one not yet taken up waits is the same request (the first
    /// asker's); false then.
    async fn request_full_sync(&self, provisioner: &str, who: &str) -> Result<bool>;
    /// Queues a retry of `object` on behalf of `who` and audits it, in one transaction; nothing
    /// is stored or audited when `limit` retries already wait.
    async fn request_retry(&self, provisioner: &str, object: &RequestedObject, who: &str, limit: usize) -> Result<RetryQueued>;
    /// The requests waiting for `provisioner`, oldest first.
    async fn console_requests(&self, provisioner: &str) -> Result<Vec<ConsoleRequest>>;
    /// A full sync's run starts: it takes up the full-sync requests up to `up_to` (a request
    /// made from now on waits for the next run).
    async fn claim_full_syncs(&self, provisioner: &str, up_to: i64) -> Result<()>;
    /// The full sync that took them up ended: the requests up to `up_to` are consumed. How many.
    async fn finish_full_syncs(&self, provisioner: &str, up_to: i64) -> Result<u64>;
    /// The retry `id` ran: deletes it and appends `outcome` to the audit trail (action
    /// `retried`, as `who`), in one transaction. False (nothing audited) when it was gone.
    async fn finish_retry(&self, provisioner: &str, id: i64, who: &str, outcome: &str) -> Result<bool>;
    /// Keeps `plan` as its provisioner's last refused plan (its removals cut to
    /// [`REFUSAL_REMOVALS_KEPT`]), replacing the one before.
    async fn save_refused_plan(&self, plan: &RefusedPlan) -> Result<()>;
    /// The last refused plan of `provisioner`, while no run has succeeded since.
    async fn refused_plan(&self, provisioner: &str) -> Result<Option<RefusedPlan>>;
    /// A run of `provisioner` succeeded: its refused plan no longer stands. Whether there was one.
    async fn clear_refused_plan(&self, provisioner: &str) -> Result<bool>;
}
