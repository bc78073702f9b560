//! What a provisioner may create, change and delete, and the safety thresholds that stop a run
//! which would remove too much. The defaults protect: users are never deleted, groups only when
//! duoprov created them, and large removals need an explicit approval.

use serde::{Deserialize, Serialize};

/// When an object type may be deleted (or a membership removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// Never.
    Never,
    /// Only objects duoprov created (for memberships: only members that are users duoprov links).
    CreatedByUs,
    /// Anything managed that the registry no longer selects.
    NotInSource,
    /// Groups only (Grouper's `deleteGroupsIfGrouperDeleted`): a group duoprov created whose
    /// registry group itself was deleted — not one merely no longer marked, which is kept out of
    /// management, and never a hand-made Duo group duoprov adopted (released instead). The configuration allows it for groups alone; for users and memberships it
    /// deletes nothing.
    RegistryDeleted,
}

/// How a user deletion is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserDeleteMode {
    /// Duo's Trash: restorable until the account's retention ends. A user in Trash can still
    /// authenticate until Duo purges it.
    Trash,
    /// `status=disabled` first (so the user cannot authenticate while in Trash), then Duo's
    /// Trash; a restore sets `status=active` again.
    DisableThenTrash,
    /// Permanent deletion through the API.
    Delete,
    /// Never deleted: `status=disabled` instead (Grouper's disable rather than
    /// `deleteEntities`). duoprov records that it disabled the user, and sets `status=active`
    /// again when the subject is selected again — only if duoprov disabled it.
    Disable,
}

impl UserDeleteMode {
    /// The configuration value (`user_delete_mode`).
    pub fn as_str(self) -> &'static str {
        match self {
            UserDeleteMode::Trash => "trash",
            UserDeleteMode::DisableThenTrash => "disable_then_trash",
            UserDeleteMode::Delete => "delete",
            UserDeleteMode::Disable => "disable",
        }
    }
}

/// Limits above which a run is refused unless its exact removal list is approved (`--approve
/// DIGEST`, a saved plan) or the configuration raises them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Most group deletions in one run.
    pub max_group_deletes: usize,
    /// Most user deletions in one run.
    pub max_user_deletes: usize,
    /// Most membership removals in one run, over all groups.
    pub max_membership_removals: usize,
    /// Most membership removals from one group, as a percentage of its current members…
    pub max_group_removal_percent: u32,
    /// …applied to groups with at least this many members in Duo.
    pub percent_rule_min_members: usize,
    /// Most administrators disabled or deleted in one run (admin roles).
    #[serde(default = "default_max_admin_removals")]
    pub max_admin_removals: usize,
}

fn default_max_admin_removals() -> usize {
    3
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_group_deletes: 10,
            max_user_deletes: 10,
            max_membership_removals: 500,
            max_group_removal_percent: 30,
            percent_rule_min_members: 10,
            max_admin_removals: default_max_admin_removals(),
        }
    }
}

/// A provisioner's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `false`: only match users that already exist in Duo (Grouper's
    /// "manageGroupsReadonlyEntities"); a user that does not exist gets error `DNE`.
    pub create_users: bool,
    /// `false`: match-only groups (Grouper's read-only groups) — a selected group is matched to
    /// the Duo group of its name and its membership kept in step, but duoprov never creates,
    /// renames, re-describes or deletes a Duo group; a group Duo lacks gets error `DNE`.
    #[serde(default = "yes")]
    pub create_groups: bool,
    pub group_delete: DeletePolicy,
    pub membership_delete: DeletePolicy,
    pub user_delete: DeletePolicy,
    pub user_delete_mode: UserDeleteMode,
    /// Also update the fields of Duo objects duoprov adopted (did not create). Off by default:
    /// what duoprov does not own it does not modify.
    pub update_adopted: bool,
    pub thresholds: Thresholds,
    /// Duo administrator roles from registry groups (`[provisioner.P.admin_roles]`); off when
    /// `None`.
    #[serde(default)]
    pub admin_roles: Option<crate::admins::AdminRoles>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            create_users: true,
            create_groups: true,
            group_delete: DeletePolicy::CreatedByUs,
            membership_delete: DeletePolicy::NotInSource,
            user_delete: DeletePolicy::Never,
            user_delete_mode: UserDeleteMode::Trash,
            update_adopted: false,
            thresholds: Thresholds::default(),
            admin_roles: None,
        }
    }
}

fn yes() -> bool {
    true
}
