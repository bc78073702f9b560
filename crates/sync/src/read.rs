//! Reading Duo for a full sync: every user (each carries its groups, so memberships come with the
//! user pages) and every group, concurrently, turned into the planner's snapshot, the user pages
//! reported to a [`Progress`] as they arrive.

use duoprov_duo::{DuoClient, Group, User};
use duoprov_model::{DuoGroup, DuoSnapshot, DuoUser};

use crate::error::SyncError;
use crate::progress::Progress;

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

/// How the account behind `duo` compares usernames, as a recorded probe found it (see
/// `DuoClient::apply_probe`), or [`duoprov_model::UsernameMatch::Unprobed`] without one.
pub(crate) fn username_match(duo: &DuoClient) -> duoprov_model::UsernameMatch {
    use duoprov_model::UsernameMatch;
    match (duo.usernames_probed(), duo.usernames_compare_exactly()) {
        (_, true) => UsernameMatch::Exact,
        (true, false) => UsernameMatch::CaseInsensitive,
        (false, false) => UsernameMatch::Unprobed,
    }
}

/// Reads every user and group; the user pages (by far the longer listing) are reported to
/// `progress` as phase `read Duo users`, its total from Duo's `total_objects` once known.
pub(crate) async fn read_all(duo: &DuoClient, progress: &dyn Progress) -> Result<DuoRead, SyncError> {
    let reported = std::sync::atomic::AtomicUsize::new(0);
    let on_page = |p: duoprov_duo::PageProgress| {
        use std::sync::atomic::Ordering;
        let before = reported.swap(p.items, Ordering::Relaxed);
        if p.pages == 1 {
            // A re-read (the account changed under the first pass) starts the phase again.
            progress.phase("read Duo users", p.total.unwrap_or(0).max(p.items as u64));
            progress.advance(p.items as u64);
        } else {
            progress.advance(p.items.saturating_sub(before) as u64);
        }
    };
    let (users, groups) = tokio::join!(duo.list_users_with_progress(&on_page), duo.list_groups());
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
