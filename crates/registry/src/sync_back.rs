//! The sync-back group: a registry group duoprov creates and owns to hold a provisioner's "users
//! with Duo set up", kept equal to a rule over the loaded Duo users table. This module holds the
//! role trait over `sync_back_group`; the sync crate computes the members. duoprov writes only a
//! group it created for this (recorded here), never one it did not.

use async_trait::async_trait;
use duoprov_model::{Group, GroupName, SubjectKey};

use crate::audit::AuditTrigger;
use crate::error::Result;

/// What a sync-back write changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncBackChanges {
    pub added: usize,
    pub removed: usize,
}

#[async_trait]
pub trait SyncBackStore: Send + Sync {
    /// The registry group `provisioner` owns for its sync-back, if any (its row goes with the
    /// group when the group is removed).
    async fn sync_back_group(&self, provisioner: &str) -> Result<Option<Group>>;
    /// Creates group `name` (and missing parent folders) as `provisioner`'s sync-back group, with
    /// its change-log entry and an audit entry by `trigger`; `Refused` when a group of that name
    /// already exists (duoprov never takes over a group it did not create). A sync-back group the
    /// provisioner owned before is released (kept in the registry, no longer written).
    async fn create_sync_back_group(&self, provisioner: &str, name: &GroupName, description: &str, trigger: &AuditTrigger) -> Result<Group>;
    /// Adds and removes these subjects as immediate members of `provisioner`'s sync-back group in
    /// one write transaction, one change-log entry and one audit entry (by `trigger`, with source
    /// `sync-back`) per change; `Refused` when the provisioner owns no sync-back group.
    async fn apply_sync_back(&self, provisioner: &str, add: &[SubjectKey], remove: &[SubjectKey], trigger: &AuditTrigger) -> Result<SyncBackChanges>;
}
