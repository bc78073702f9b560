//! Sync state: per provisioner, the links between registry objects and Duo objects (Duo id,
//! whether the object is in Duo, whether duoprov created it, first and last provisioned, the last
//! error with Grouper's code), and the run log. The sync engine reads the links before planning
//! and writes results back in batches. Incremental syncs add a checkpoint per provisioner (how far
//! into the change log Duo is in step), a retry list with a deterministic backoff, and the runner
//! lock that keeps one runner per provisioner across processes. Every time here is an
//! [`EpochMillis`].

use async_trait::async_trait;
use duoprov_model::{EpochMillis, Links, SubjectKey};
use serde::Serialize;

use crate::error::Result;

/// The last error recorded on an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateError {
    /// `ERR`, `INV`, `LEN`, `REQ`, `DNE` or `MAT`.
    pub code: String,
    pub message: String,
}

/// What to record about one group. `provisioned_at` sets the last-provisioned time, and the first one when none is recorded; `error` replaces the last error (`None` clears it).
///
/// The Duo id and the intent follow three rules: a state with `pending_name` records an intended
/// create — it clears the recorded Duo id (a re-create replaces a stale one) and records the name
/// and `pending_at`; a state with a Duo id records that id and clears any intent; a state with
/// neither keeps the recorded id and clears any intent (a refused create leaves no intent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    /// For an intended create: the Duo name it is for.
    pub pending_name: Option<String>,
    /// For an intended create: when it was recorded.
    pub pending_at: Option<EpochMillis>,
    pub group_uuid: String,
    pub duo_group_id: Option<String>,
    pub in_target: bool,
    pub created_by_us: bool,
    pub provisioned_at: Option<EpochMillis>,
    pub error: Option<StateError>,
}

/// What to record about one user (the Duo id and the intent follow the rules of [`GroupState`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    /// For an intended create: the username it is for.
    pub pending_name: Option<String>,
    /// For an intended create: when it was recorded.
    pub pending_at: Option<EpochMillis>,
    pub subject: SubjectKey,
    pub duo_user_id: Option<String>,
    pub in_target: bool,
    pub created_by_us: bool,
    pub provisioned_at: Option<EpochMillis>,
    pub error: Option<StateError>,
}

/// What to record about one membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipState {
    pub group_uuid: String,
    pub subject: SubjectKey,
    pub in_target: bool,
    pub provisioned_at: Option<EpochMillis>,
    pub error: Option<StateError>,
}

/// Which kind of run: stored in the run log as `full`, `incremental` or `object` (one group or
/// subject synced on request: it never moves the checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Full,
    Incremental,
    Object,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Full => "full",
            RunKind::Incremental => "incremental",
            RunKind::Object => "object",
        }
    }

    /// The kind a stored string names, `None` for one this version does not know.
    pub fn parse(s: &str) -> Option<Self> {
        [RunKind::Full, RunKind::Incremental, RunKind::Object].into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run ended (or that it is still running), as stored in the run log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Not finished; a `running` run that is not the current one was interrupted.
    Running,
    Succeeded,
    /// Some objects failed or were held.
    Partial,
    Failed,
    Refused,
    /// The process ended before the run finished.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Refused => "refused",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The status a stored string names, `None` for one this version does not know.
    pub fn parse(s: &str) -> Option<Self> {
        use RunStatus::*;
        [Running, Succeeded, Partial, Failed, Refused, Interrupted].into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run of the run log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub provisioner: String,
    pub kind: RunKind,
    pub dry_run: bool,
    pub started_at_ms: EpochMillis,
    pub finished_at_ms: Option<EpochMillis>,
    pub status: RunStatus,
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
    /// When the error was recorded.
    pub at_ms: EpochMillis,
}

/// What a retry row is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RetryTarget {
    Group { group_uuid: String },
    /// A group whose whole membership is reconciled (its Duo members read), not only its
    /// attributes: a failed removal of a Duo member no subject is linked to.
    WholeGroup { group_uuid: String },
    User { subject: SubjectKey },
    Membership { group_uuid: String, subject: SubjectKey },
}

impl RetryTarget {
    /// The (group uuid, source, subject id) columns, empty where not applicable. A group and its
    /// whole-group form share one row (the whole form covers the other).
    pub fn columns(&self) -> (&str, &str, &str) {
        match self {
            RetryTarget::Group { group_uuid } | RetryTarget::WholeGroup { group_uuid } => (group_uuid, "", ""),
            RetryTarget::User { subject } => ("", &subject.source, &subject.id),
            RetryTarget::Membership { group_uuid, subject } => (group_uuid, &subject.source, &subject.id),
        }
    }

    /// Whether the target asks for a group's whole membership (the `whole_group` column).
    pub fn whole_group(&self) -> bool {
        matches!(self, RetryTarget::WholeGroup { .. })
    }

    /// The group this target names, if any.
    pub fn group_uuid(&self) -> Option<&str> {
        match self {
            RetryTarget::Group { group_uuid } | RetryTarget::WholeGroup { group_uuid } | RetryTarget::Membership { group_uuid, .. } => Some(group_uuid),
            RetryTarget::User { .. } => None,
        }
    }

    /// The subject this target names, if any.
    pub fn subject(&self) -> Option<&SubjectKey> {
        match self {
            RetryTarget::User { subject } | RetryTarget::Membership { subject, .. } => Some(subject),
            RetryTarget::Group { .. } | RetryTarget::WholeGroup { .. } => None,
        }
    }

    /// The target the columns describe.
    pub fn from_columns(group_uuid: String, source: String, subject_id: String, whole_group: bool) -> RetryTarget {
        match (group_uuid.is_empty(), source.is_empty() && subject_id.is_empty()) {
            (false, true) if whole_group => RetryTarget::WholeGroup { group_uuid },
            (false, true) => RetryTarget::Group { group_uuid },
            (true, _) => RetryTarget::User { subject: SubjectKey::new(source, subject_id) },
            (false, false) => RetryTarget::Membership { group_uuid, subject: SubjectKey::new(source, subject_id) },
        }
    }
}

/// A failed object waiting for its next attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryRecord {
    pub target: RetryTarget,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_at_ms: EpochMillis,
    pub last_error: String,
}

/// The retry schedule: the n-th consecutive failure waits `base · 2^(n-1)`, at most `max`. No
/// jitter: the schedule is recorded and can be read back exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: i64,
    pub max_ms: i64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base_ms: 10_000, max_ms: 3_600_000 }
    }
}

impl Backoff {
    /// The wait after the `attempts`-th consecutive failure (1-based).
    pub fn delay_ms(&self, attempts: u32) -> i64 {
        let shift = attempts.saturating_sub(1).min(40);
        self.base_ms.max(0).saturating_mul(1i64 << shift).min(self.max_ms.max(0))
    }
}

/// How far a provisioner's changes have reached Duo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// Change-log entries up to this sequence number are in Duo, or tracked in the retry list.
    pub last_seq: i64,
    pub updated_at_ms: EpochMillis,
    /// When the last full and incremental syncs that moved it finished.
    pub last_full_ms: Option<EpochMillis>,
    pub last_incremental_ms: Option<EpochMillis>,
}

/// What a finished run settles, in one transaction: the checkpoint and the retry list.
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    pub kind: RunKind,
    /// Move the checkpoint to this sequence number (it never moves back).
    pub checkpoint: Option<i64>,
    /// A full sync re-planned everything: earlier retry rows are superseded.
    pub clear_all: bool,
    /// Objects this run attempted: their retry rows go, unless they failed again.
    pub attempted: &'a [RetryTarget],
    /// Objects that failed, with the error.
    pub failed: &'a [(RetryTarget, String)],
    pub now_ms: EpochMillis,
    pub backoff: Backoff,
}

/// Held while a process runs a provisioner (or, with key `daemon` on SQLite, while a daemon
/// serves a database file). Dropping it releases the lock; a process that dies releases it too.
pub struct RunnerLock {
    inner: Box<dyn LockHolder>,
}

impl RunnerLock {
    pub(crate) fn new(inner: Box<dyn LockHolder>) -> Self {
        RunnerLock { inner }
    }

    /// Whether the lock is still held (a PostgreSQL session that dropped has lost it).
    pub async fn alive(&mut self) -> bool {
        self.inner.alive().await
    }
}

impl std::fmt::Debug for RunnerLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunnerLock")
    }
}

/// Wakes a waiting daemon when the registry's change log grows (PostgreSQL `LISTEN`/`NOTIFY`).
pub struct ChangeWaker {
    inner: Box<dyn WakeSource>,
}

impl ChangeWaker {
    pub(crate) fn new(inner: Box<dyn WakeSource>) -> Self {
        ChangeWaker { inner }
    }

    /// Waits for the next change notification; `false` when notifications stopped working
    /// (the caller then relies on polling).
    pub async fn changed(&mut self) -> bool {
        self.inner.changed().await
    }
}

impl std::fmt::Debug for ChangeWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangeWaker")
    }
}

#[async_trait]
pub(crate) trait WakeSource: Send + Sync {
    async fn changed(&mut self) -> bool;
}

#[async_trait]
pub(crate) trait LockHolder: Send + Sync {
    async fn alive(&mut self) -> bool;
}

/// A lock that needs no holding (an in-memory registry is private to its process).
pub(crate) struct NoLock;

#[async_trait]
impl LockHolder for NoLock {
    async fn alive(&mut self) -> bool {
        true
    }
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
    async fn begin_run(&self, provisioner: &str, kind: RunKind, dry_run: bool) -> Result<i64>;
    /// Finishes a run with its status, counts and timings.
    async fn finish_run(&self, run_id: i64, status: RunStatus, counts: &serde_json::Value, timings: &serde_json::Value, message: Option<&str>) -> Result<()>;
    /// The newest runs of a provisioner (all provisioners when `None`), newest first.
    async fn runs(&self, provisioner: Option<&str>, limit: u32) -> Result<Vec<RunRecord>>;
    /// Objects whose last recorded result is an error.
    async fn object_errors(&self, provisioner: &str, limit: u32) -> Result<Vec<ObjectErrorRecord>>;
    /// The provisioner's checkpoint, `None` before its first finished sync.
    async fn checkpoint(&self, provisioner: &str) -> Result<Option<Checkpoint>>;
    /// Records what a finished run settles (checkpoint and retry list) in one transaction.
    async fn settle(&self, provisioner: &str, settlement: &Settlement<'_>) -> Result<()>;
    /// The retry list, all of it or only rows due at `due_at_ms`, soonest first.
    async fn retries(&self, provisioner: &str, due_at_ms: Option<EpochMillis>) -> Result<Vec<RetryRecord>>;
    /// Takes the runner lock named `key` (`provisioner:NAME`, or `daemon`) without waiting;
    /// `None` when another process holds it.
    async fn try_lock_runner(&self, key: &str) -> Result<Option<RunnerLock>>;
    /// Notifications of new change-log entries, where the database has them (PostgreSQL);
    /// `None` means poll.
    async fn change_waker(&self) -> Result<Option<ChangeWaker>>;
}
