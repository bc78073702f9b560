//! The registry's side of sources: what a source owns as the registry holds it, the source's
//! changes applied in one transaction (one change-log entry and one audit entry per mutation,
//! all or nothing, only if the registry still holds what the changes were computed from), and the
//! last run of each source.

use async_trait::async_trait;
use duoprov_model::{MirrorChanges, MirrorScope, OwnedState, SourceRun};

use crate::audit::AuditTrigger;
use crate::error::Result;

#[async_trait]
pub trait MirrorStore: Send + Sync {
    /// The subjects, groups (with the keys this source recorded) and memberships in `scope`, read
    /// in one snapshot.
    async fn mirror_owned(&self, scope: &MirrorScope) -> Result<OwnedState>;
    /// Applies `changes` in one write transaction, with one change-log entry and one audit entry
    /// (by `trigger`) per mutation, after checking under the write lock that the registry still
    /// holds `expected` in the scope; `Refused` (nothing written, audit entries included) when it
    /// does not, or when any change fails.
    async fn apply_mirror(&self, scope: &MirrorScope, expected: &OwnedState, changes: &MirrorChanges, trigger: &AuditTrigger) -> Result<()>;
    /// Records the source's last run, replacing the one before.
    async fn record_source_run(&self, run: &SourceRun) -> Result<()>;
    /// The last run of every source that ran, by source name.
    async fn source_runs(&self) -> Result<Vec<SourceRun>>;
}
