//! What a source (an LDAP directory, a snapshot file) mirrors into the registry: the scope it owns,
//! what the registry holds in that scope, and the exact changes that make the registry equal to
//! the source. Pure data shared by the source crate, which computes the changes, and the stores,
//! which apply them in one transaction.

use serde::{Deserialize, Serialize};

use crate::name::{FolderPath, GroupName};
use crate::registry::{Group, GroupMember, Subject, SubjectKey};

/// What one source owns: the subjects of `subject_source`, the groups under `folder`, and those
/// groups' immediate memberships. Nothing else is read or written for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorScope {
    /// The source's name (`[source.NAME]`), under which its group keys are recorded.
    pub source: String,
    pub subject_source: String,
    pub folder: FolderPath,
}

/// A group the registry holds under a source's folder, with the key the source knows it by (none
/// for a group the source has not mirrored yet) and its immediate members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedGroup {
    pub group: Group,
    pub key: Option<String>,
    pub members: Vec<GroupMember>,
}

/// What the registry holds in a source's scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedState {
    /// Sorted by id.
    pub subjects: Vec<Subject>,
    /// Sorted by name.
    pub groups: Vec<OwnedGroup>,
}

impl OwnedState {
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty() && self.groups.is_empty()
    }
}

/// A group as the source has it: its stable key (an LDAP entry's `entryUUID`, a file's group
/// name), its registry name under the source's folder, and its attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorGroup {
    pub key: String,
    pub name: GroupName,
    pub display_name: Option<String>,
    pub description: Option<String>,
}

/// An existing group changed by the source: renamed (same key, new name; its uuid is kept),
/// attributes changed, or its key recorded for the first time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorGroupUpdate {
    pub from: GroupName,
    pub to: MirrorGroup,
}

/// The changes that make the registry's scope equal to the source, applied in this order:
/// subjects added and updated, memberships removed, groups removed, groups updated or renamed
/// (all renames at once, so names may swap), groups added, memberships added, subjects removed.
/// Removed memberships name groups as the registry has them before the renames; added ones by
/// the names after.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorChanges {
    pub subjects_added: Vec<Subject>,
    pub subjects_updated: Vec<Subject>,
    pub subjects_removed: Vec<SubjectKey>,
    pub groups_added: Vec<MirrorGroup>,
    pub groups_updated: Vec<MirrorGroupUpdate>,
    pub groups_removed: Vec<GroupName>,
    pub members_added: Vec<(GroupName, GroupMember)>,
    pub members_removed: Vec<(GroupName, GroupMember)>,
}

impl MirrorChanges {
    pub fn is_empty(&self) -> bool {
        self.subjects_added.is_empty()
            && self.subjects_updated.is_empty()
            && self.subjects_removed.is_empty()
            && self.groups_added.is_empty()
            && self.groups_updated.is_empty()
            && self.groups_removed.is_empty()
            && self.members_added.is_empty()
            && self.members_removed.is_empty()
    }

    /// How many mutations (and so change-log entries) applying the changes makes.
    pub fn len(&self) -> usize {
        self.subjects_added.len()
            + self.subjects_updated.len()
            + self.subjects_removed.len()
            + self.groups_added.len()
            + self.groups_updated.len()
            + self.groups_removed.len()
            + self.members_added.len()
            + self.members_removed.len()
    }
}

/// The last run of a source, as `duoprov source status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRun {
    pub source: String,
    /// When the run ended, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// `applied`, `unchanged`, `refused`, `failed` or `dry-run`.
    pub result: String,
    /// Counts and messages of the run, as JSON.
    pub detail: serde_json::Value,
}
