//! What the console's actions leave in the registry, so they outlive the daemon that took them:
//! each action (a full sync asked for, a retry of one object, an approval of a refused plan's
//! removals, and a retry's outcome) as an entry of the audit trail (`object_kind = console`,
//! actor `console:WHO`), read back as the console's action log; the approved removal digest of
//! each provisioner until the one full sync that applies it takes it; and what triggered each
//! run (a schedule, the change log, a console action and by whom, the command line), a column of
//! the run log.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;

/// The audit trail's `object_kind` of a console action.
pub const CONSOLE_KIND: &str = "console";

/// One console action, as the action log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleAction {
    pub at_ms: i64,
    pub provisioner: String,
    /// `loopback` (no authentication on a loopback address) or `console token`.
    pub who: String,
    /// `full-sync`, `retry`, `retried` (a retry's outcome) or `approve`.
    pub action: String,
    /// What was asked (or what came of it), in words.
    pub what: String,
}

/// A refused plan's removals approved from the console, not yet applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingApproval {
    pub provisioner: String,
    pub digest: String,
    pub who: String,
    pub at_ms: i64,
}

/// The console's durable state.
#[async_trait]
pub trait ConsoleActions: Send + Sync {
    /// Appends `action` to the audit trail (its time is the store's now).
    async fn record_console_action(&self, provisioner: &str, who: &str, action: &str, what: &str) -> Result<()>;
    /// The console actions on `provisioner`, newest first, at most `limit`.
    async fn console_actions(&self, provisioner: &str, limit: u32) -> Result<Vec<ConsoleAction>>;
    /// Saves `digest` as `provisioner`'s approved removals (replacing an earlier approval) and
    /// audits the approval, in one transaction.
    async fn save_approval(&self, provisioner: &str, digest: &str, who: &str) -> Result<()>;
    /// The approval waiting for `provisioner`'s next full sync.
    async fn pending_approval(&self, provisioner: &str) -> Result<Option<PendingApproval>>;
    /// Takes the waiting approval: it applies to one run.
    async fn take_approval(&self, provisioner: &str) -> Result<Option<PendingApproval>>;
    /// Records what triggered run `run_id`.
    async fn set_run_trigger(&self, run_id: i64, trigger: &str) -> Result<()>;
    /// What triggered each of these runs (those with a recorded trigger).
    async fn run_triggers(&self, run_ids: &[i64]) -> Result<HashMap<i64, String>>;
}
