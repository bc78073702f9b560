//! Duo's side as the planner sees it: users (each with the ids of its groups) and groups, read
//! from Duo in a full sync, and the remembered links between registry objects and Duo ids.

use serde::{Deserialize, Serialize};

use crate::registry::SubjectKey;

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
}

/// The remembered pairing of a registry group with a Duo group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLink {
    /// The Duo name an intended, unconfirmed create was for: if the registry group is gone
    /// before the next run confirms it, the Duo group of that name is still known to be ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_name: Option<String>,
    pub group_uuid: String,
    /// `None` while a create is intended but not confirmed (crash safety: a Duo group of the
    /// desired name found later is then known to be ours).
    pub duo_group_id: Option<String>,
    pub created_by_us: bool,
    pub in_target: bool,
}

/// The remembered pairing of a registry subject with a Duo user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLink {
    /// The username an intended, unconfirmed create was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_name: Option<String>,
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
}
