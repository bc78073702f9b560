//! Duo's side as the planner sees it: users (each with the ids of its groups) and groups, read
//! from Duo in a full sync, and the remembered links between registry objects and Duo ids.

use serde::{Deserialize, Serialize};

use crate::registry::SubjectKey;
use crate::time::EpochMillis;

/// The form in which two Duo usernames (or aliases) are compared: Unicode lowercase.
///
/// Duo most likely stores usernames lowercased and compares them case-insensitively (its replies
/// carry lowercased names; Grouper warns about case). Duo is a Python service, so its lowercasing
/// is most likely Python's `str.lower()`, the Unicode default lowercase mapping, which Rust's
/// [`str::to_lowercase`] also implements: `"JOSÉ"` and `"josé"` are one name, as Duo would fold
/// them, where an ASCII-only fold would keep them apart and plan a create Duo refuses. Every
/// comparison of usernames (planner matching, clash detection, the field diff, the incremental
/// lookup) goes through this one function.
pub fn username_key(name: &str) -> String {
    name.to_lowercase()
}

/// Whether two usernames are the same Duo name (see [`username_key`]).
pub fn same_username(a: &str, b: &str) -> bool {
    a == b || username_key(a) == username_key(b)
}

/// How a Duo account compares usernames and aliases: not yet known (the default: matched
/// case-insensitively, as Duo most likely does, see [`username_key`], but a Duo user differing
/// from a registry username only in case is held rather than adopted), or as `duoprov doctor
/// --probe` recorded it: case-insensitively, or exactly when a lookup by another case missed a
/// user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsernameMatch {
    /// No probe recorded: compared through [`username_key`], and a match by case alone is not
    /// trusted for adoption.
    #[default]
    Unprobed,
    /// A probe found Duo comparing through [`username_key`] (Unicode lowercase).
    CaseInsensitive,
    /// Byte for byte: `JDoe` and `jdoe` are two users.
    Exact,
}

impl UsernameMatch {
    /// The form in which this account compares `name`.
    pub fn key(self, name: &str) -> String {
        match self {
            UsernameMatch::Unprobed | UsernameMatch::CaseInsensitive => username_key(name),
            UsernameMatch::Exact => name.to_owned(),
        }
    }

    /// Whether `a` and `b` are the same name in this account.
    pub fn same(self, a: &str, b: &str) -> bool {
        match self {
            UsernameMatch::Unprobed | UsernameMatch::CaseInsensitive => same_username(a, b),
            UsernameMatch::Exact => a == b,
        }
    }

    /// Whether a probe recorded how this account compares usernames.
    pub fn probed(self) -> bool {
        self != UsernameMatch::Unprobed
    }

    /// Whether this is the default ([`UsernameMatch::Unprobed`]).
    pub fn is_default(&self) -> bool {
        *self == UsernameMatch::Unprobed
    }
}

/// A Duo user, reduced to what provisioning compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoUser {
    pub user_id: String,
    pub username: String,
    pub realname: String,
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub status: String,
    pub aliases: Vec<String>,
    /// Ids (`DG…`) of the groups the user is in.
    pub groups: Vec<String>,
    /// When Duo created the user (Unix seconds), if Duo said: an intended create claims only a
    /// user created after the intent was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
}

/// A Duo group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoGroup {
    pub group_id: String,
    pub name: String,
    pub desc: String,
    pub status: String,
}

/// Everything a full sync reads from Duo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoSnapshot {
    pub users: Vec<DuoUser>,
    pub groups: Vec<DuoGroup>,
    /// How this account compares usernames (left out of the serialised form when default, so
    /// fingerprints of plans saved before it existed still match).
    #[serde(default, skip_serializing_if = "UsernameMatch::is_default")]
    pub usernames: UsernameMatch,
}

/// The remembered pairing of a registry group with a Duo group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLink {
    /// The Duo name an intended create was for, kept only while the create's outcome is
    /// unknown: a Duo group of exactly this name found later is duoprov's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_name: Option<String>,
    /// When the intent was recorded. An intent without it (written by a version that kept
    /// intents after refused creates) claims nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_at: Option<EpochMillis>,
    pub group_uuid: String,
    /// `None` while a create is intended but not confirmed (crash safety: the Duo group of
    /// exactly the pending name found later is then known to be ours).
    pub duo_group_id: Option<String>,
    pub created_by_us: bool,
    pub in_target: bool,
}

/// The remembered pairing of a registry subject with a Duo user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLink {
    /// The username an intended create was for, kept only while the create's outcome is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_name: Option<String>,
    /// When the intent was recorded: only a Duo user of that username created in or after this
    /// second (Duo reports whole seconds) is duoprov's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_at: Option<EpochMillis>,
    pub subject: SubjectKey,
    /// `None` while a create is intended but not confirmed.
    pub duo_user_id: Option<String>,
    pub created_by_us: bool,
    pub in_target: bool,
}

/// All links of one provisioner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    pub groups: Vec<GroupLink>,
    pub users: Vec<UserLink>,
    /// Duo objects linked by other provisioners of the same Duo account.
    #[serde(default, skip_serializing_if = "ForeignLinks::is_empty")]
    pub foreign: ForeignLinks,
    /// Subjects whose Duo users this provisioner disabled (`user_delete_mode = "disable"`):
    /// only these are re-enabled when selected again; a user disabled by anyone else stays
    /// disabled.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub disabled_by_us: std::collections::BTreeSet<SubjectKey>,
}

/// A Duo object another provisioner of the same Duo account has linked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignLink {
    /// The other provisioner.
    pub provisioner: String,
    /// Whether that provisioner created the object.
    pub created_by_us: bool,
}

/// The Duo objects other provisioners of the same Duo account have linked, by Duo id. A
/// provisioner never adopts, deletes or removes members of a group another one has linked, and
/// uses a user another one has linked only as a shared, unowned match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignLinks {
    pub groups: std::collections::BTreeMap<String, ForeignLink>,
    pub users: std::collections::BTreeMap<String, ForeignLink>,
    /// The Duo user another provisioner links for a registry subject (`source:id` → user id): the
    /// same subject is the same person, whatever username this provisioner would look for.
    #[serde(default)]
    pub user_of_subject: std::collections::BTreeMap<String, String>,
}

impl ForeignLinks {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.users.is_empty()
    }

    /// Adds the links of `provisioner` (for an object several others link, the one that created
    /// it is kept).
    pub fn add(&mut self, provisioner: &str, links: &Links) {
        for l in &links.groups {
            if let Some(id) = &l.duo_group_id {
                note(&mut self.groups, id, provisioner, l.created_by_us);
            }
        }
        for l in &links.users {
            if let Some(id) = &l.duo_user_id {
                note(&mut self.users, id, provisioner, l.created_by_us);
                self.user_of_subject.entry(l.subject.to_string()).or_insert_with(|| id.clone());
            }
        }
    }
}

fn note(m: &mut std::collections::BTreeMap<String, ForeignLink>, id: &str, provisioner: &str, created: bool) {
    let entry = m.entry(id.to_owned()).or_insert_with(|| ForeignLink { provisioner: provisioner.to_owned(), created_by_us: created });
    if created && !entry.created_by_us {
        *entry = ForeignLink { provisioner: provisioner.to_owned(), created_by_us: true };
    }
}
