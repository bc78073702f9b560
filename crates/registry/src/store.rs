//! The registry's traits, independent of the database behind it: one per role (reading and
//! writing the registry, the change log; sync state, Duo users and probes live in their own
//! modules), and `Store`, their sum, for callers that need several.

use async_trait::async_trait;
use duoprov_model::{
    ChangeEntry, Folder, FolderPath, Group, GroupMember, GroupName, Marker, MarkerTarget,
    ProvisionerSelection, Subject, SubjectKey, SubjectPatch,
};
use serde::Serialize;

use crate::error::Result;
use crate::import::{ImportData, ImportSummary};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// Whether an add-or-update created the object or changed an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Upsert {
    Created,
    Updated,
    Unchanged,
}

/// Attributes of a folder or group to set: `None` keeps the value, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeAttrs {
    pub display_name: Option<Option<String>>,
    pub description: Option<Option<String>>,
}

/// An effective member with the path it is reached by (empty when immediate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveMember {
    pub subject: Subject,
    /// True when the subject is also an immediate member.
    pub immediate: bool,
}

/// Everything the registry stores, as one trait: the sum of the role traits below, for callers
/// that need several roles (the CLI's context, the daemon). A function that needs one role takes
/// just that trait (`&dyn RegistryReader`, `&dyn SyncStore`, …); a `&dyn Store` coerces to it.
pub trait Store:
    RegistryReader
    + RegistryWriter
    + ChangeLog
    + crate::sync_state::SyncStore
    + crate::duo_users::DuoUserStore
    + crate::duo_probe::DuoProbeStore
    + crate::retention::Retention
    + crate::mirror::MirrorStore
    + crate::audit::AuditLog
    + crate::console::ConsoleReads
    + crate::admins::AdminStore
    + crate::disabled_users::DisabledUserStore
    + crate::sync_back::SyncBackStore
    + crate::console_actions::ConsoleActions
    + crate::console_pages::ConsolePages
    + crate::scoped::ScopedReads
    + crate::console_requests::ConsoleRequests
    + crate::source_feed::SourceFeedStore
    + crate::rendered_report::RenderedReport
    + crate::scoped_links::ScopedLinks
    + crate::scoped_groups::ScopedGroups
    + Send
    + Sync
{
    fn backend(&self) -> Backend;
}

/// Reading the registry: subjects, folders, groups, memberships, markers, and what the sync
/// engine reads of a provisioner's selection.
#[async_trait]
pub trait RegistryReader: Send + Sync {
    async fn subject(&self, key: &SubjectKey) -> Result<Option<Subject>>;
    async fn subjects(&self, source: Option<&str>) -> Result<Vec<Subject>>;
    async fn folder(&self, path: &FolderPath) -> Result<Option<Folder>>;
    /// All folders, or those below `under` (`under` itself included).
    async fn folders(&self, under: Option<&FolderPath>) -> Result<Vec<Folder>>;
    async fn group(&self, name: &GroupName) -> Result<Option<Group>>;
    /// All groups, or those below `under`, sorted by name.
    async fn groups(&self, under: Option<&FolderPath>) -> Result<Vec<Group>>;
    /// Which of these group uuids the registry still holds.
    async fn existing_group_uuids(&self, uuids: &[String]) -> Result<std::collections::HashSet<String>>;
    /// Immediate members: subjects first (by source and id), then groups (by name).
    async fn members(&self, group: &GroupName) -> Result<Vec<GroupMember>>;
    /// Subjects reached through nesting, sorted by source and id.
    async fn effective_members(&self, group: &GroupName) -> Result<Vec<EffectiveMember>>;
    async fn markers(&self, provisioner: Option<&str>) -> Result<Vec<Marker>>;
    /// The provisioner's groups with their effective members, and those members, in one pass.
    async fn provisioner_selection(&self, provisioner: &str) -> Result<ProvisionerSelection>;
    /// The selection and the effective members of an eligible-users group, in one snapshot.
    async fn provisioner_selection_with_eligible(&self, provisioner: &str, eligible: &GroupName) -> Result<(ProvisionerSelection, Vec<EffectiveMember>)>;
}

/// Changing the registry. Every method runs in one write transaction that also appends its
/// change-log entry.
#[async_trait]
pub trait RegistryWriter: Send + Sync {
    // Subjects
    /// Adds the subject, or updates the fields the patch sets when it exists.
    async fn upsert_subject(&self, key: &SubjectKey, patch: &SubjectPatch) -> Result<(Subject, Upsert)>;
    /// Updates an existing subject; `NotFound` when there is none.
    async fn update_subject(&self, key: &SubjectKey, patch: &SubjectPatch) -> Result<(Subject, Upsert)>;
    /// Removes the subject and its memberships.
    async fn remove_subject(&self, key: &SubjectKey) -> Result<()>;

    // Folders
    /// Adds the folder (its parent must exist unless `create_parents`), or updates its attributes.
    async fn add_folder(&self, path: &FolderPath, attrs: &NodeAttrs, create_parents: bool) -> Result<(Folder, Upsert)>;
    /// Renames or moves a folder (its subtree follows, uuids and memberships kept) and sets attributes.
    async fn update_folder(&self, path: &FolderPath, rename_to: Option<&FolderPath>, attrs: &NodeAttrs) -> Result<Folder>;
    /// Removes a folder; with `recursive`, its subfolders and groups too, else it must be empty.
    async fn remove_folder(&self, path: &FolderPath, recursive: bool) -> Result<()>;

    // Groups
    /// Adds the group (its folder must exist unless `create_parents`), or updates its attributes.
    async fn add_group(&self, name: &GroupName, attrs: &NodeAttrs, create_parents: bool) -> Result<(Group, Upsert)>;
    /// Renames or moves a group, keeping its uuid and memberships, and sets attributes.
    async fn update_group(&self, name: &GroupName, rename_to: Option<&GroupName>, attrs: &NodeAttrs, create_parents: bool) -> Result<Group>;
    async fn remove_group(&self, name: &GroupName) -> Result<()>;

    // Memberships
    /// Adds an immediate member; `Ok(false)` when it already was one. Refuses cycles.
    async fn add_member(&self, group: &GroupName, member: &GroupMember) -> Result<bool>;
    /// Removes an immediate member; `Ok(false)` when it was not one.
    async fn remove_member(&self, group: &GroupName, member: &GroupMember) -> Result<bool>;
    /// Adds every member in one transaction, or none: each member that does not exist or would
    /// make a cycle is reported (all of them, in one error) and nothing is written. One outcome
    /// per member, in order: `false` when it already was one.
    async fn add_members(&self, group: &GroupName, members: &[GroupMember]) -> Result<Vec<bool>>;
    /// Removes every member in one transaction, or none (every missing subject or group
    /// reported); one outcome per member: `false` when it was not one.
    async fn remove_members(&self, group: &GroupName, members: &[GroupMember]) -> Result<Vec<bool>>;

    // Markers
    async fn assign_marker(&self, marker: &Marker) -> Result<Upsert>;
    /// `Ok(false)` when there was no such marker.
    async fn unassign_marker(&self, provisioner: &str, target: &MarkerTarget) -> Result<bool>;

    // Bulk
    /// Validates the whole import, then writes it in one transaction, or writes nothing.
    async fn import(&self, data: &ImportData) -> Result<ImportSummary>;
}

/// The change log: every registry mutation, in commit order, as incremental syncs read it.
#[async_trait]
pub trait ChangeLog: Send + Sync {
    /// Change-log entries with `seq > after`, oldest first, at most `limit`.
    async fn changes_after(&self, after: i64, limit: u32) -> Result<Vec<ChangeEntry>>;
    /// The newest sequence number, 0 for an empty log.
    async fn last_change_seq(&self) -> Result<i64>;
}
