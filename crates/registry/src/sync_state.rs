//! Sync state: per provisioner, the links between registry objects and Duo objects (Duo id,
//! whether the object is in Duo, whether duoprov created it, first and last provisioned, the last
//! error with Grouper's code), and the run log. The sync engine reads the links before planning
//! and writes results back in batches.

use async_trait::async_trait;
use duoprov_model::{Links, SubjectKey};
use serde::Serialize;

use crate::error::Result;

/// The last error recorded on an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateError {
    /// `ERR`, `INV`, `LEN`, `REQ`, `DNE` or `MAT`.
    pub code: String,
    pub message: String,
}

/// What to record about one group. `provisioned_at` (epoch seconds) sets the last-provisioned
/// time, and the first one when none is recorded; `error` replaces the last error (`None` clears it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub group_uuid: String,
    pub duo_group_id: Option<String>,
    pub in_target: bool,
    pub created_by_us: bool,
    pub provisioned_at: Option<i64>,
    pub error: Option<StateError>,
}

/// What to record about one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    pub subject: SubjectKey,
    pub duo_user_id: Option<String>,
    pub in_target: bool,
    pub created_by_us: bool,
    pub provisioned_at: Option<i64>,
    pub error: Option<StateError>,
}

/// What to record about one membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipState {
    pub group_uuid: String,
    pub subject: SubjectKey,
    pub in_target: bool,
    pub provisioned_at: Option<i64>,
    pub error: Option<StateError>,
}

/// One run of the run log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub provisioner: String,
    pub kind: String,
    pub dry_run: bool,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// `running`, `succeeded`, `partial`, `failed`, `refused`; a `running` run that is not the
    /// current one was interrupted.
    pub status: String,
    pub counts: serde_json::Value,
    pub timings: serde_json::Value,
    pub message: Option<String>,
}

/// An object in error, for `duoprov status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectErrorRecord {
    pub kind: String,
    pub object: String,
    pub code: String,
    pub message: String,
    pub at: i64,
}

#[async_trait]
pub trait SyncStore: Send + Sync {
    /// The provisioner's links (groups and users).
    async fn links(&self, provisioner: &str) -> Result<Links>;
    /// Records groups, users and memberships in one transaction.
    async fn record(&self, provisioner: &str, groups: &[GroupState], users: &[UserState], memberships: &[MembershipState]) -> Result<()>;
    /// Forgets group links (after their Duo groups were deleted).
    async fn forget_groups(&self, provisioner: &str, uuids: &[String]) -> Result<()>;
    /// Forgets user links (after their Duo users were deleted).
    async fn forget_users(&self, provisioner: &str, subjects: &[SubjectKey]) -> Result<()>;
    /// Starts a run; returns its id.
    async fn begin_run(&self, provisioner: &str, kind: &str, dry_run: bool) -> Result<i64>;
    /// Finishes a run with its status, counts and timings.
    async fn finish_run(&self, run_id: i64, status: &str, counts: &serde_json::Value, timings: &serde_json::Value, message: Option<&str>) -> Result<()>;
    /// The newest runs of a provisioner (all provisioners when `None`), newest first.
    async fn runs(&self, provisioner: Option<&str>, limit: u32) -> Result<Vec<RunRecord>>;
    /// Objects whose last recorded result is an error.
    async fn object_errors(&self, provisioner: &str, limit: u32) -> Result<Vec<ObjectErrorRecord>>;
}
