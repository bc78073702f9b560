//! The outcome of a run: what was created, updated, deleted and failed per object type, how many
//! Duo calls it took and how long each phase took.

use serde::Serialize;

/// Counts for one object type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub failed: usize,
}

/// One failed object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub object: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub provisioner: String,
    /// `full` or `incremental`.
    pub kind: String,
    pub run_id: i64,
    pub dry_run: bool,
    pub groups: Counts,
    pub users: Counts,
    /// Memberships: `created` = added, `deleted` = removed.
    pub memberships: Counts,
    pub adopted: usize,
    /// Objects held back by plan errors (not attempted).
    pub held: usize,
    pub failures: Vec<Failure>,
    /// Duo calls: page reads, then writes.
    pub read_calls: usize,
    pub write_calls: usize,
    /// Milliseconds per phase.
    pub timings_ms: Vec<(String, u64)>,
    /// What refreshing the Duo users table changed, when the provisioner asks for it.
    pub duo_users_loaded: Option<duoprov_registry::duo_users::ReplaceCounts>,
    /// What an incremental run covered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<crate::incremental::ScopeSummary>,
    /// Why an incremental sync gave way to this full sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalated: Option<String>,
    /// Failed objects put on the retry list.
    pub retries_scheduled: usize,
}

impl RunReport {
    pub fn failed(&self) -> usize {
        self.groups.failed + self.users.failed + self.memberships.failed
    }

    /// The run's status for the run log.
    pub fn status(&self) -> &'static str {
        if self.failed() > 0 { "partial" } else { "succeeded" }
    }

    /// A one-paragraph summary for people.
    pub fn summary(&self) -> String {
        let total_ms: u64 = self.timings_ms.iter().map(|(_, ms)| ms).sum();
        format!(
            "{} {}{}: groups {} created, {} updated, {} deleted, {} failed; users {} created, {} updated, {} deleted, {} failed; \
             memberships {} added, {} removed, {} failed; {} adopted; {} held by errors; Duo calls {} reads + {} writes; {:.1} s",
            self.provisioner,
            if self.kind.is_empty() { "full" } else { &self.kind },
            if self.dry_run { " (dry run)" } else { "" },
            self.groups.created,
            self.groups.updated,
            self.groups.deleted,
            self.groups.failed,
            self.users.created,
            self.users.updated,
            self.users.deleted,
            self.users.failed,
            self.memberships.created,
            self.memberships.deleted,
            self.memberships.failed,
            self.adopted,
            self.held,
            self.read_calls,
            self.write_calls,
            total_ms as f64 / 1000.0
        )
    }
}
