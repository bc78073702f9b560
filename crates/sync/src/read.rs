//! Reading Duo for a full sync: every user (each carries its groups, so memberships come with the
//! user pages) and every group, concurrently, turned into the planner's snapshot.

use duoprov_duo::{DuoClient, Group, User};
use duoprov_model::{DuoGroup, DuoSnapshot, DuoUser};

use crate::error::SyncError;

/// Page sizes the client reads at (Duo's maxima), to count the calls a read took.
const USERS_PAGE: usize = 300;
const GROUPS_PAGE: usize = 500;

pub(crate) struct DuoRead {
    pub snapshot: DuoSnapshot,
    /// The users as Duo sent them (for the Duo users table).
    pub users: Vec<User>,
    pub calls: usize,
}

pub(crate) fn snapshot_user(u: &User) -> DuoUser {
    let mut aliases: Vec<String> = u.aliases.values().cloned().collect();
    aliases.sort();
    let mut groups: Vec<String> = u.groups.iter().map(|g| g.group_id.clone()).collect();
    groups.sort();
    groups.dedup();
    DuoUser {
        user_id: u.user_id.clone(),
        username: u.username.clone(),
        realname: u.realname.clone(),
        email: u.email.clone(),
        firstname: u.firstname.clone(),
        lastname: u.lastname.clone(),
        status: u.status.clone(),
        aliases,
        groups,
        created: u.created,
    }
}

pub(crate) fn snapshot_group(g: &Group) -> DuoGroup {
    DuoGroup { group_id: g.group_id.clone(), name: g.name.clone(), desc: g.desc.clone(), status: g.status.clone() }
}

/// How the account behind `duo` compares usernames: exactly when a recorded probe found it so
/// (see `DuoClient::apply_probe`), else case-insensitively.
pub(crate) fn username_match(duo: &DuoClient) -> duoprov_model::UsernameMatch {
    if duo.usernames_compare_exactly() { duoprov_model::UsernameMatch::Exact } else { duoprov_model::UsernameMatch::CaseInsensitive }
}

pub(crate) async fn read_all(duo: &DuoClient) -> Result<DuoRead, SyncError> {
    let (users, groups) = tokio::join!(duo.list_users(), duo.list_groups());
    let users = users.map_err(SyncError::DuoRead)?;
    let groups = groups.map_err(SyncError::DuoRead)?;
    let calls = users.len() / USERS_PAGE + 1 + groups.len() / GROUPS_PAGE + 1;
    let mut snapshot = DuoSnapshot {
        users: users.iter().map(snapshot_user).collect(),
        groups: groups.iter().map(snapshot_group).collect(),
        usernames: username_match(duo),
    };
    snapshot.users.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    snapshot.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    Ok(DuoRead { snapshot, users, calls })
}
