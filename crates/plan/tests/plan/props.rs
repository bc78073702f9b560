//! Property: for generated registries and generated pre-existing Duo states (objects not ours,
//! name collisions, case differences, users already in 100 groups), one sync makes the managed
//! part of Duo equal the desired state, nothing duoprov does not own is modified or deleted, and
//! the next plan is empty.

use std::collections::HashSet;

use duoprov_model::{DuoGroup, DuoSnapshot, DuoUser, SubjectKey};
use duoprov_plan::error::ErrorObject;
use duoprov_plan::{build_plan, Policy};
use proptest::prelude::*;

use crate::rules::{desired, group, selection, subject};
use crate::sim::Sim;

const LOGINS: [&str; 6] = ["alice", "Alice", "bob", "carol", "dave", ""];
const GROUP_NAMES: [&str; 4] = ["a:g0", "a:g1", "b:g1", "b:g2"];
const DUO_NAMES: [&str; 5] = ["alice", "BOB", "bob", "erin", "carol"];
const DUO_GROUPS: [&str; 4] = ["g0", "g1", "g2", "other"];

#[derive(Debug, Clone)]
struct Case {
    subjects: Vec<usize>,
    groups: Vec<(usize, Vec<usize>)>,
    duo_users: Vec<(usize, Vec<usize>, bool)>,
    duo_groups: Vec<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(0..LOGINS.len(), 0..6),
        proptest::collection::vec((0..GROUP_NAMES.len(), proptest::collection::vec(0..6usize, 0..6)), 0..4),
        proptest::collection::vec((0..DUO_NAMES.len(), proptest::collection::vec(0..4usize, 0..3), any::<bool>()), 0..5),
        proptest::collection::vec(0..DUO_GROUPS.len(), 0..5),
    )
        .prop_map(|(subjects, groups, duo_users, duo_groups)| Case { subjects, groups, duo_users, duo_groups })
}

fn build(case: &Case) -> (duoprov_model::ProvisionerSelection, DuoSnapshot) {
    let subjects: Vec<_> = case
        .subjects
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut s = subject(&format!("s{i}"), &format!("Subject {i}"));
            s.login_id = Some(LOGINS[*l].to_owned()).filter(|v| !v.is_empty());
            s
        })
        .collect();
    let ids: Vec<String> = subjects.iter().map(|s| s.id.clone()).collect();
    let mut seen = HashSet::new();
    let groups: Vec<_> = case
        .groups
        .iter()
        .filter(|(g, _)| seen.insert(*g))
        .map(|(g, members)| {
            let mut m: Vec<&str> = members.iter().filter(|i| **i < ids.len()).map(|i| ids[*i].as_str()).collect();
            m.sort();
            m.dedup();
            (group(&format!("uuid-{g}"), GROUP_NAMES[*g], "desc"), m)
        })
        .collect();
    let sel = selection(subjects, groups);
    let mut duo = DuoSnapshot::default();
    for (i, g) in case.duo_groups.iter().enumerate() {
        duo.groups.push(DuoGroup { group_id: format!("DGPRE{i:015}"), name: DUO_GROUPS[*g].into(), desc: "theirs".into(), status: "active".into() });
    }
    let fillers: Vec<String> = (0..100).map(|i| format!("DGFILL{i:014}")).collect();
    for (i, f) in fillers.iter().enumerate() {
        duo.groups.push(DuoGroup { group_id: f.clone(), name: format!("filler{i}"), desc: String::new(), status: "active".into() });
    }
    for (i, (n, gs, full)) in case.duo_users.iter().enumerate() {
        let mut groups: Vec<String> = if *full {
            fillers.clone()
        } else {
            gs.iter().filter(|g| **g < case.duo_groups.len()).map(|g| format!("DGPRE{g:015}")).collect()
        };
        groups.sort();
        groups.dedup();
        duo.users.push(DuoUser {
            user_id: format!("DUPRE{i:015}"),
            username: DUO_NAMES[*n].into(),
            realname: "theirs".into(),
            email: String::new(),
            firstname: String::new(),
            lastname: String::new(),
            status: "active".into(),
            aliases: vec![],
            groups,
            created: None,
        });
    }
    (sel, duo)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn one_sync_converges_and_spares_what_is_not_ours(case in case()) {
        let (sel, before) = build(&case);
        let policy = Policy::default();
        let d = desired(&sel);
        let plan = build_plan("duoTest", &d, &before, &Default::default(), &policy);
        let mut sim = Sim::new(before.clone());
        sim.apply(&plan);

        // The next plan is empty.
        let again = build_plan("duoTest", &desired(&sel), &sim.duo, &sim.links, &policy);
        prop_assert!(again.ops.is_empty(), "second plan:\n{}", duoprov_plan::render::text(&again));

        // Nothing pre-existing was deleted, and its fields are unchanged.
        for g in &before.groups {
            let now = sim.duo.groups.iter().find(|x| x.group_id == g.group_id);
            prop_assert_eq!(now, Some(g));
        }
        for u in &before.users {
            let now = sim.duo.users.iter().find(|x| x.user_id == u.user_id);
            prop_assert!(now.is_some(), "user {} deleted", u.username);
            let now = now.unwrap();
            prop_assert_eq!((&now.username, &now.realname, &now.email), (&u.username, &u.realname, &u.email));
        }

        // The managed part equals the desired state.
        let errored: HashSet<String> = plan.errors.iter().filter_map(|e| match &e.object {
            ErrorObject::Group { uuid, .. } => Some(uuid.clone()),
            _ => None,
        }).collect();
        let failed_memberships: HashSet<(String, SubjectKey)> = plan.errors.iter().filter_map(|e| match &e.object {
            ErrorObject::Membership { group_uuid, source, id } => Some((group_uuid.clone(), SubjectKey::new(source, id))),
            _ => None,
        }).collect();
        let user_id_of = |k: &SubjectKey| sim.links.users.iter().find(|l| &l.subject == k).and_then(|l| l.duo_user_id.clone());
        for g in &d.groups {
            if errored.contains(&g.uuid) { continue; }
            let link = sim.links.groups.iter().find(|l| l.group_uuid == g.uuid);
            prop_assert!(link.is_some(), "selected group {} has no link", g.registry_name);
            let gid = link.unwrap().duo_group_id.clone().unwrap();
            let dg = sim.duo.groups.iter().find(|x| x.group_id == gid).unwrap();
            if link.unwrap().created_by_us {
                prop_assert_eq!(&dg.name, &g.fields.name);
            }
            let mut want: Vec<String> = g.members.iter()
                .map(|u| &d.users[*u as usize].key)
                .filter(|k| !failed_memberships.contains(&(g.uuid.clone(), (*k).clone())))
                .filter_map(&user_id_of)
                .collect();
            want.sort();
            let mut have: Vec<String> = sim.duo.users.iter().filter(|u| u.groups.contains(&gid)).map(|u| u.user_id.clone()).collect();
            have.sort();
            prop_assert_eq!(have, want, "members of {}", g.registry_name);
        }
    }
}
