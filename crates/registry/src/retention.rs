//! How long the registry keeps its logs: change-log entries every provisioner has consumed and
//! finished runs are deleted once older than their retention, so a registry under a daemon that
//! syncs every two seconds does not grow without bound. An entry a provisioner's checkpoint has
//! not passed is never deleted, whatever its age (a provisioner that stays behind holds the log,
//! and says so), and the newest entry and each provisioner's last run of each kind always stay.

use async_trait::async_trait;

use crate::error::Result;

/// What one pruning removed, and what held the change log back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Change-log entries deleted.
    pub change_log_entries: u64,
    /// Finished runs deleted from the run log.
    pub runs: u64,
    /// The provisioner whose checkpoint is the oldest and its sequence number: entries after it
    /// are kept for it, however old.
    pub held_by: Option<(String, i64)>,
}

/// Deleting what the registry no longer needs.
#[async_trait]
pub trait Retention: Send + Sync {
    /// Deletes change-log entries recorded before `change_log_before_ms` that every provisioner's
    /// checkpoint has passed (never the newest entry), and runs finished before `runs_before_ms`
    /// (never one still running, nor a provisioner's latest finished run of each kind).
    async fn prune(&self, change_log_before_ms: i64, runs_before_ms: i64) -> Result<Pruned>;
}
