//! Sync one object now (`duoprov sync P --group NAME` / `--subject ID`, the console's retry
//! action): one registry group, or one subject, reconciled with the same reader, planner and
//! safety rules as an incremental sync, without touching anything else.
//!
//! - **A group**: its attributes (created, renamed, deleted as a full sync would) and its whole
//!   membership — its members are read from Duo by the group's id, every member on either side is
//!   planned, and the users a membership needs are created (or restored) — but no other user's
//!   fields are rewritten and no user is deleted: those belong to the subject's own sync.
//! - **A subject**: its Duo user (created, restored, updated, deleted as a full sync would) and its
//!   memberships of groups already linked in Duo; a group not yet in Duo is left to the group's
//!   own sync (creating it is not this subject's to do).
//!
//! The registry is read whole, as an incremental run reads it, so a username clash anywhere holds
//! the subject exactly as a full sync holds it; Duo is read only for the object. The plan is the
//! scoped plan restricted to operations on the object ([`restrict`], pure). The run is recorded
//! with kind `object`: links and errors of the object as a full sync records them, the
//! checkpoint untouched (other changes stay pending), and only the object's retry rows settled.

use std::collections::HashSet;
use std::time::Instant;

use duoprov_duo::DuoClient;
use duoprov_model::{GroupName, Links, Subject, SubjectKey};
use duoprov_plan::error::ErrorObject;
use duoprov_plan::{Adoption, GroupRef, Op, Plan};
use duoprov_registry::{RegistryReader, RetryTarget, Store};
use serde::Serialize;

use crate::error::SyncError;
use crate::incremental::{Incremental, Named, ScopeRequest, plan_scope};
use crate::prepared::{Prepared, RunKind};
use crate::registry_read::read_links;
use crate::settings::SyncSettings;

/// The object to sync: a registry group by full name, or a subject by `SOURCE:ID`, id or login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectTarget {
    Group { name: String },
    Subject { reference: String },
}

impl std::fmt::Display for ObjectTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectTarget::Group { name } => write!(f, "group {name}"),
            ObjectTarget::Subject { reference } => write!(f, "subject {reference}"),
        }
    }
}

/// The subject `reference` names: `SOURCE:ID` exactly, else the one subject whose id or login id
/// is `reference`. An error names what is missing or ambiguous.
pub async fn find_subject(store: &dyn RegistryReader, reference: &str) -> Result<Subject, SyncError> {
    if let Some((source, id)) = reference.split_once(':')
        && let Some(s) = store.subject(&SubjectKey::new(source, id)).await?
    {
        return Ok(s);
    }
    let all = store.subjects(None).await?;
    let by_id: Vec<&Subject> = all.iter().filter(|s| s.id == reference).collect();
    let matches: Vec<&Subject> = if by_id.is_empty() { all.iter().filter(|s| s.login_id.as_deref() == Some(reference)).collect() } else { by_id };
    match matches.as_slice() {
        [] => Err(SyncError::NotFound(format!("no subject with id or login '{reference}'"))),
        [one] => Ok((*one).clone()),
        many => Err(SyncError::NotFound(format!(
            "'{reference}' names {} subjects ({}); name one as SOURCE:ID",
            many.len(),
            many.iter().map(|s| s.key().to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The registry group of this full name, or an error naming it.
pub async fn find_group(store: &dyn RegistryReader, name: &str) -> Result<duoprov_model::Group, SyncError> {
    let parsed = GroupName::parse(name).map_err(|e| SyncError::NotFound(format!("group '{name}' not found: {e}")))?;
    store.group(&parsed).await?.ok_or_else(|| SyncError::NotFound(format!("group '{name}' not found")))
}

/// Reads and plans one object; run it with [`crate::run`] (which records it as kind `object`).
pub async fn prepare_object(store: &dyn Store, duo: &DuoClient, settings: &SyncSettings, target: &ObjectTarget) -> Result<Prepared, SyncError> {
    let start = Instant::now();
    let pacing_before = duo.pacing_stats();
    let name = settings.provisioner.as_str();
    let (named, keep) = match target {
        ObjectTarget::Group { name: group } => {
            let g = find_group(store, group).await?;
            let named = Named { groups: [g.uuid.clone()].into(), whole: [g.uuid.clone()].into(), ..Default::default() };
            (named, Keep::Group { uuid: g.uuid, name: g.name.to_string() })
        }
        ObjectTarget::Subject { reference } => {
            let s = find_subject(store, reference).await?;
            let named = Named { subjects: [s.key()].into(), subjects_groups: true, ..Default::default() };
            (named, Keep::Subject(s.key()))
        }
    };
    let retries = store.retries(name, None).await?;
    let request = ScopeRequest {
        named,
        kind: RunKind::Object,
        retries,
        due: 0,
        now_ms: crate::run::now_ms(),
        from_seq: 0,
        to_seq: 0,
        changes: 0,
        max_objects: usize::MAX,
        drop_stale_retries: false,
    };
    let mut prepared = match plan_scope(store, duo, settings, request, start, pacing_before).await? {
        Incremental::Planned(p) => *p,
        Incremental::Escalate { reason } => return Err(SyncError::Scope(format!("cannot sync {target} of provisioner {name} alone: {reason}; run a full sync"))),
        Incremental::Idle { .. } => return Err(SyncError::Scope(format!("cannot sync {target} of provisioner {name} alone: nothing was planned"))),
    };
    if let Keep::Group { name: group, .. } = &keep
        && prepared.scope.as_ref().is_some_and(|s| s.groups == 0)
    {
        return Err(SyncError::NotFound(format!(
            "group '{group}' is not selected by provisioner {name} (no marker includes it) and has no Duo group linked: there is nothing of it to sync"
        )));
    }
    let links = read_links(store, settings).await?;
    let members: HashSet<SubjectKey> = match &keep {
        Keep::Group { uuid, .. } => prepared
            .desired
            .groups
            .iter()
            .filter(|g| &g.uuid == uuid)
            .flat_map(|g| g.members.iter().map(|m| prepared.desired.users[*m as usize].key.clone()).chain(g.held_members.iter().cloned()))
            .collect(),
        Keep::Subject(_) => HashSet::new(),
    };
    restrict(&mut prepared.plan, &keep, &members, &links);
    if let Some(scope) = &mut prepared.scope {
        scope.attempted.retain(|t| keep.owns_retry(t));
    }
    Ok(prepared)
}

/// What a plan is restricted to.
#[derive(Debug, Clone)]
pub enum Keep {
    Group { uuid: String, name: String },
    Subject(SubjectKey),
}

impl Keep {
    fn owns_retry(&self, t: &RetryTarget) -> bool {
        match self {
            Keep::Group { uuid, .. } => t.group_uuid() == Some(uuid.as_str()),
            Keep::Subject(s) => t.subject() == Some(s),
        }
    }
}

/// Restricts a plan to the operations and records on one object (see the module's rules).
/// `members` are the group's desired and held members (for a group), `links` the provisioner's.
pub fn restrict(plan: &mut Plan, keep: &Keep, members: &HashSet<SubjectKey>, links: &Links) {
    let key = |source: &str, id: &str| SubjectKey::new(source, id);
    match keep {
        Keep::Group { uuid, .. } => {
            let mut ids: HashSet<String> = links.groups.iter().filter(|l| &l.group_uuid == uuid).filter_map(|l| l.duo_group_id.clone()).collect();
            ids.extend(plan.group_matches.iter().filter(|m| &m.uuid == uuid).map(|m| m.group_id.clone()));
            for a in &plan.adoptions {
                if let Adoption::Group { uuid: u, group_id, .. } = a
                    && u == uuid
                {
                    ids.insert(group_id.clone());
                }
            }
            // Users this group's additions need.
            let mut involved: HashSet<SubjectKey> = members.clone();
            for o in &plan.ops {
                if let Op::AddMember { group_uuid, source, id, .. } = &o.op
                    && &**group_uuid == uuid
                {
                    involved.insert(key(source, id));
                }
            }
            plan.ops.retain(|o| match &o.op {
                Op::CreateGroup { uuid: u, .. } | Op::UpdateGroup { uuid: u, .. } | Op::DeleteGroup { uuid: u, .. } => u == uuid,
                Op::AddMember { group_uuid, .. } => &**group_uuid == uuid,
                Op::RemoveMember { group_id, .. } => ids.contains(group_id),
                Op::CreateUser { source, id, .. } | Op::RestoreUser { source, id, .. } | Op::EnableUser { source, id, .. } => involved.contains(&key(source, id)),
                Op::UpdateUser { .. } | Op::DeleteUser { .. } => false,
            });
            plan.adoptions.retain(|a| match a {
                Adoption::Group { uuid: u, .. } => u == uuid,
                Adoption::User { source, id, .. } => involved.contains(&key(source, id)),
            });
            plan.errors.retain(|e| match &e.object {
                ErrorObject::Group { uuid: u, .. } => u == uuid,
                ErrorObject::Membership { group_uuid, .. } => group_uuid == uuid,
                ErrorObject::User { source, id } => involved.contains(&key(source, id)),
            });
            plan.group_matches.retain(|m| &m.uuid == uuid);
            plan.user_matches.retain(|m| involved.contains(&key(&m.source, &m.id)));
            plan.released_groups.retain(|u| u == uuid);
            plan.parked_groups.retain(|u| u == uuid);
            plan.released_users.clear();
            plan.parked_users.clear();
            plan.kept_disabled.retain(|(k, _)| involved.contains(k));
            plan.disabled_cleared.retain(|k| involved.contains(k));
            plan.group_sizes.retain(|(id, _)| ids.contains(id));
        }
        Keep::Subject(subject) => {
            let mut user_ids: HashSet<String> = links.users.iter().filter(|l| &l.subject == subject).filter_map(|l| l.duo_user_id.clone()).collect();
            user_ids.extend(plan.user_matches.iter().filter(|m| key(&m.source, &m.id) == *subject).map(|m| m.user_id.clone()));
            for a in &plan.adoptions {
                if let Adoption::User { source, id, user_id, .. } = a
                    && key(source, id) == *subject
                {
                    user_ids.insert(user_id.clone());
                }
            }
            // Groups linked to a Duo group before this plan: the only ones a subject's sync adds to.
            let linked: HashSet<(&str, &str)> =
                links.groups.iter().filter(|l| l.in_target).filter_map(|l| l.duo_group_id.as_deref().map(|id| (l.group_uuid.as_str(), id))).collect();
            plan.ops.retain(|o| match &o.op {
                Op::CreateUser { source, id, .. }
                | Op::RestoreUser { source, id, .. }
                | Op::EnableUser { source, id, .. }
                | Op::UpdateUser { source, id, .. }
                | Op::DeleteUser { source, id, .. } => key(source, id) == *subject,
                Op::AddMember { group_uuid, source, id, group, .. } => {
                    key(source, id) == *subject && matches!(group, GroupRef::Existing { group_id, .. } if linked.contains(&(&**group_uuid, &**group_id)))
                }
                Op::RemoveMember { user_id, .. } => user_ids.contains(user_id),
                Op::CreateGroup { .. } | Op::UpdateGroup { .. } | Op::DeleteGroup { .. } => false,
            });
            let removed_from: HashSet<String> = plan
                .ops
                .iter()
                .filter_map(|o| match &o.op {
                    Op::RemoveMember { group_id, .. } => Some(group_id.clone()),
                    _ => None,
                })
                .collect();
            plan.adoptions.retain(|a| matches!(a, Adoption::User { source, id, .. } if key(source, id) == *subject));
            plan.errors.retain(|e| match &e.object {
                ErrorObject::User { source, id } | ErrorObject::Membership { source, id, .. } => key(source, id) == *subject,
                ErrorObject::Group { .. } => false,
            });
            plan.group_matches.clear();
            plan.user_matches.retain(|m| key(&m.source, &m.id) == *subject);
            plan.released_groups.clear();
            plan.parked_groups.clear();
            plan.released_users.retain(|s| s == subject);
            plan.parked_users.retain(|s| s == subject);
            plan.group_sizes.retain(|(id, _)| removed_from.contains(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duoprov_model::{GroupLink, UserLink};
    use duoprov_plan::{PlannedOp, UserDeleteMode, UserRef};

    fn op(op: Op) -> PlannedOp {
        PlannedOp { op, reason: String::new() }
    }

    fn create_user(id: &str) -> Op {
        Op::CreateUser {
            source: "local".into(),
            id: id.into(),
            username: id.into(),
            realname: String::new(),
            email: String::new(),
            firstname: String::new(),
            lastname: String::new(),
            aliases: vec![],
        }
    }

    fn add(uuid: &str, group: GroupRef, id: &str) -> Op {
        Op::AddMember { group_uuid: uuid.into(), source: "local".into(), id: id.into(), group, user: UserRef::New { source: "local".into(), id: id.into(), username: id.into() } }
    }

    fn existing(id: &str, name: &str) -> GroupRef {
        GroupRef::Existing { group_id: id.into(), name: name.into() }
    }

    /// Group G (linked to DG1) and H (linked to DG2), and K not yet in Duo; s1 new in G, H and
    /// K; s2 linked (DU2), updated and removed from G; s3 leaving (deleted).
    fn plan() -> (Plan, Links) {
        let ops = vec![
            op(Op::CreateGroup { uuid: "K".into(), name: "k".into(), desc: String::new() }),
            op(create_user("s1")),
            op(Op::UpdateGroup { uuid: "G".into(), group_id: "DG1".into(), name: "g".into(), changes: vec![] }),
            op(Op::UpdateGroup { uuid: "H".into(), group_id: "DG2".into(), name: "h".into(), changes: vec![] }),
            op(Op::UpdateUser { source: "local".into(), id: "s2".into(), user_id: "DU2".into(), username: "s2".into(), changes: vec![] }),
            op(Op::RemoveMember { group_id: "DG1".into(), group_name: "g".into(), user_id: "DU2".into(), username: "s2".into() }),
            op(Op::RemoveMember { group_id: "DG2".into(), group_name: "h".into(), user_id: "DU3".into(), username: "s3".into() }),
            op(add("G", existing("DG1", "g"), "s1")),
            op(add("H", existing("DG2", "h"), "s1")),
            op(add("K", GroupRef::New { uuid: "K".into(), name: "k".into() }, "s1")),
            op(Op::DeleteUser { source: "local".into(), id: "s3".into(), user_id: "DU3".into(), username: "s3".into(), mode: UserDeleteMode::Trash }),
        ];
        let link = |uuid: &str, id: &str| GroupLink { pending_name: None, pending_at: None, group_uuid: uuid.into(), duo_group_id: Some(id.into()), created_by_us: true, in_target: true };
        let user = |id: &str, duo: &str| UserLink { pending_name: None, pending_at: None, subject: SubjectKey::new("local", id), duo_user_id: Some(duo.into()), created_by_us: true, in_target: true };
        let links = Links { groups: vec![link("G", "DG1"), link("H", "DG2")], users: vec![user("s2", "DU2"), user("s3", "DU3")], ..Default::default() };
        (Plan { provisioner: "p".into(), ops, ..Default::default() }, links)
    }

    fn kinds(plan: &Plan) -> Vec<String> {
        plan.ops.iter().map(|o| format!("{:?}", o.op).split_whitespace().next().unwrap_or_default().to_owned() + " " + &o.reason).collect()
    }

    #[test]
    fn a_groups_plan_keeps_its_attributes_memberships_and_the_users_they_need_and_nothing_else() {
        let (mut p, links) = plan();
        restrict(&mut p, &Keep::Group { uuid: "G".into(), name: "app:g".into() }, &HashSet::new(), &links);
        let kept: Vec<&Op> = p.ops.iter().map(|o| &o.op).collect();
        assert_eq!(kept.len(), 4, "{:?}", kinds(&p));
        assert!(matches!(kept[0], Op::CreateUser { id, .. } if id == "s1"));
        assert!(matches!(kept[1], Op::UpdateGroup { uuid, .. } if uuid == "G"));
        assert!(matches!(kept[2], Op::RemoveMember { group_id, .. } if group_id == "DG1"));
        assert!(matches!(kept[3], Op::AddMember { group_uuid, .. } if &**group_uuid == "G"));
    }

    #[test]
    fn a_subjects_plan_keeps_its_user_and_memberships_of_linked_groups_only() {
        let (mut p, links) = plan();
        restrict(&mut p, &Keep::Subject(SubjectKey::new("local", "s1")), &HashSet::new(), &links);
        let kept: Vec<&Op> = p.ops.iter().map(|o| &o.op).collect();
        assert_eq!(kept.len(), 3, "{:?}", kinds(&p));
        assert!(matches!(kept[0], Op::CreateUser { id, .. } if id == "s1"));
        assert!(matches!(kept[1], Op::AddMember { group_uuid, .. } if &**group_uuid == "G"));
        assert!(matches!(kept[2], Op::AddMember { group_uuid, .. } if &**group_uuid == "H"));

        let (mut p, links) = plan();
        restrict(&mut p, &Keep::Subject(SubjectKey::new("local", "s3")), &HashSet::new(), &links);
        let kept: Vec<&Op> = p.ops.iter().map(|o| &o.op).collect();
        assert_eq!(kept.len(), 2, "{:?}", kinds(&p));
        assert!(matches!(kept[0], Op::RemoveMember { user_id, .. } if user_id == "DU3"));
        assert!(matches!(kept[1], Op::DeleteUser { id, .. } if id == "s3"));
    }
}
