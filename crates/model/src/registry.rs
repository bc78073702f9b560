//! The registry's records as the stores hand them out: subjects, folders, groups, immediate
//! members, the change log, and the per-provisioner selection the sync engine consumes.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::name::{FolderPath, GroupName};

/// Identifies a subject: its source (default `local`) and its id within that source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SubjectKey {
    pub source: String,
    pub id: String,
}

impl SubjectKey {
    pub const DEFAULT_SOURCE: &'static str = "local";

    pub fn new(source: impl Into<String>, id: impl Into<String>) -> Self {
        Self { source: source.into(), id: id.into() }
    }
    pub fn local(id: impl Into<String>) -> Self {
        Self::new(Self::DEFAULT_SOURCE, id)
    }
}

impl fmt::Display for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.id)
    }
}

/// A person or service account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub source: String,
    pub id: String,
    pub name: Option<String>,
    pub login_id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub description: Option<String>,
}

impl Subject {
    pub fn key(&self) -> SubjectKey {
        SubjectKey::new(&self.source, &self.id)
    }
}

/// Attributes to set on a subject; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectPatch {
    pub name: Option<Option<String>>,
    pub login_id: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub description: Option<Option<String>>,
}

impl SubjectPatch {
    /// The patch's fields by their column names, for validation and for writing.
    pub fn fields(&self) -> [(&'static str, &Option<Option<String>>); 6] {
        [
            ("name", &self.name),
            ("login_id", &self.login_id),
            ("email", &self.email),
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("description", &self.description),
        ]
    }

    /// Applies the patch to a subject.
    pub fn apply_to(&self, s: &mut Subject) {
        let set = |target: &mut Option<String>, v: &Option<Option<String>>| {
            if let Some(v) = v {
                *target = v.clone();
            }
        };
        set(&mut s.name, &self.name);
        set(&mut s.login_id, &self.login_id);
        set(&mut s.email, &self.email);
        set(&mut s.first_name, &self.first_name);
        set(&mut s.last_name, &self.last_name);
        set(&mut s.description, &self.description);
    }
}

/// A namespace node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folder {
    pub path: FolderPath,
    pub display_name: Option<String>,
    pub description: Option<String>,
}

/// A group. Its `uuid` stays the same for its whole life, through renames and moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub uuid: String,
    pub name: GroupName,
    pub display_name: Option<String>,
    pub description: Option<String>,
}

impl Group {
    pub fn extension(&self) -> &str {
        self.name.extension()
    }
}

/// An immediate member of a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum GroupMember {
    Subject(SubjectKey),
    Group { name: GroupName },
}

impl fmt::Display for GroupMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupMember::Subject(k) => write!(f, "subject {k}"),
            GroupMember::Group { name } => write!(f, "group {name}"),
        }
    }
}

/// A provisionable group with its effective members (subjects reached through nesting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionableGroup {
    pub group: Group,
    /// Indexes into [`ProvisionerSelection::subjects`], sorted, without repeats.
    pub members: Vec<u32>,
}

/// What one provisioner selects from the registry: its groups, each with its effective members,
/// and every subject that is a member of at least one of them (each subject once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionerSelection {
    pub provisioner: String,
    /// Sorted by group name.
    pub groups: Vec<ProvisionableGroup>,
    /// Sorted by (source, id).
    pub subjects: Vec<Subject>,
}

/// What kind of mutation a change-log entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    SubjectAdded,
    SubjectUpdated,
    SubjectRemoved,
    FolderAdded,
    FolderUpdated,
    FolderRemoved,
    GroupAdded,
    GroupUpdated,
    GroupRemoved,
    MemberAdded,
    MemberRemoved,
    MarkerAssigned,
    MarkerUnassigned,
    Import,
    /// A kind this version does not know, written by a newer duoprov: what it changed is not
    /// known here, so an incremental sync leaves it to a full sync.
    #[serde(other)]
    Unknown,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::SubjectAdded => "subject_added",
            ChangeKind::SubjectUpdated => "subject_updated",
            ChangeKind::SubjectRemoved => "subject_removed",
            ChangeKind::FolderAdded => "folder_added",
            ChangeKind::FolderUpdated => "folder_updated",
            ChangeKind::FolderRemoved => "folder_removed",
            ChangeKind::GroupAdded => "group_added",
            ChangeKind::GroupUpdated => "group_updated",
            ChangeKind::GroupRemoved => "group_removed",
            ChangeKind::MemberAdded => "member_added",
            ChangeKind::MemberRemoved => "member_removed",
            ChangeKind::MarkerAssigned => "marker_assigned",
            ChangeKind::MarkerUnassigned => "marker_unassigned",
            ChangeKind::Import => "import",
            ChangeKind::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        use ChangeKind::*;
        [
            SubjectAdded, SubjectUpdated, SubjectRemoved, FolderAdded, FolderUpdated, FolderRemoved,
            GroupAdded, GroupUpdated, GroupRemoved, MemberAdded, MemberRemoved, MarkerAssigned,
            MarkerUnassigned, Import,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One entry of the registry's change log.
///
/// `groups` lists the uuids of every group whose attributes or effective membership may have
/// changed, ancestors through nesting included, as they stood when the change was made;
/// `subjects` lists the subjects whose attributes or memberships changed. An incremental sync
/// recomputes exactly these. `detail` carries the before/after values for people reading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEntry {
    /// Strictly increasing across the whole log.
    pub seq: i64,
    /// When the change was committed, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub kind: ChangeKind,
    pub groups: Vec<String>,
    pub subjects: Vec<SubjectKey>,
    /// Markers changed for these provisioners (a marker change reselects whole subtrees).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provisioners: Vec<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}
