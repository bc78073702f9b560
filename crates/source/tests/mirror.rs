//! The pure diff and safety rules of a source: applying a diff to what the registry holds yields
//! exactly the snapshot (property), renames keep the group, removals are refused past thresholds
//! and approved only by their digest.

use std::collections::{BTreeMap, BTreeSet};

use duoprov_model::{FolderPath, Group, GroupMember, GroupName, MirrorChanges, MirrorScope, OwnedGroup, OwnedState, Subject, SubjectKey};
use duoprov_source::mirror::{check, diff, removal_digest, SnapshotGroup, SnapshotMember, SourceSnapshot, Thresholds};
use proptest::prelude::*;

fn scope() -> MirrorScope {
    MirrorScope { source: "dir".into(), subject_source: "ldap".into(), folder: FolderPath::parse("ldap:staff").unwrap() }
}

fn subject(id: &str, name: &str) -> Subject {
    Subject { source: "ldap".into(), id: id.into(), name: Some(name.into()), login_id: None, email: None, first_name: None, last_name: None, description: None }
}

fn gname(ext: &str) -> GroupName {
    GroupName::parse(&format!("ldap:staff:{ext}")).unwrap()
}

fn sgroup(key: &str, ext: &str, members: Vec<SnapshotMember>) -> SnapshotGroup {
    SnapshotGroup { key: key.into(), name: gname(ext), display_name: None, description: None, members }
}

fn ogroup(uuid: &str, key: Option<&str>, ext: &str, members: Vec<GroupMember>) -> OwnedGroup {
    OwnedGroup { group: Group { uuid: uuid.into(), name: gname(ext), display_name: None, description: None }, key: key.map(Into::into), members }
}

fn sub(id: &str) -> GroupMember {
    GroupMember::Subject(SubjectKey::new("ldap", id))
}

/// Applies changes to an in-memory owned state the way the store does, keeping uuids.
fn apply(owned: &OwnedState, c: &MirrorChanges) -> OwnedState {
    let mut subjects: BTreeMap<String, Subject> = owned.subjects.iter().map(|s| (s.id.clone(), s.clone())).collect();
    for s in c.subjects_added.iter().chain(&c.subjects_updated) {
        subjects.insert(s.id.clone(), s.clone());
    }
    let mut groups: BTreeMap<GroupName, OwnedGroup> = owned.groups.iter().map(|g| (g.group.name.clone(), g.clone())).collect();
    for (g, m) in &c.members_removed {
        let group = groups.get_mut(g).expect("group of a removed member exists");
        let before = group.members.len();
        group.members.retain(|x| x != m);
        assert_eq!(group.members.len() + 1, before, "removed member {m} of {g} was a member");
    }
    for g in &c.groups_removed {
        groups.remove(g).expect("removed group exists");
        for other in groups.values_mut() {
            other.members.retain(|m| *m != GroupMember::Group { name: g.clone() });
        }
    }
    let moving: Vec<OwnedGroup> = c.groups_updated.iter().map(|u| groups.remove(&u.from).expect("updated group exists")).collect();
    for (u, mut g) in c.groups_updated.iter().zip(moving) {
        g.group.name = u.to.name.clone();
        g.group.display_name = u.to.display_name.clone();
        g.group.description = u.to.description.clone();
        g.key = Some(u.to.key.clone());
        assert!(!groups.contains_key(&g.group.name), "renamed to a taken name {}", g.group.name);
        groups.insert(g.group.name.clone(), g);
    }
    for g in groups.values_mut() {
        for m in &mut g.members {
            if let GroupMember::Group { name } = m
                && let Some(u) = c.groups_updated.iter().find(|u| u.from == *name) {
                    *name = u.to.name.clone();
                }
        }
    }
    for (i, g) in c.groups_added.iter().enumerate() {
        assert!(!groups.contains_key(&g.name), "added group {} already exists", g.name);
        groups.insert(g.name.clone(), OwnedGroup { group: Group { uuid: format!("new-{i}"), name: g.name.clone(), display_name: g.display_name.clone(), description: g.description.clone() }, key: Some(g.key.clone()), members: vec![] });
    }
    for (g, m) in &c.members_added {
        let group = groups.get_mut(g).expect("group of an added member exists");
        assert!(!group.members.contains(m));
        group.members.push(m.clone());
    }
    for k in &c.subjects_removed {
        subjects.remove(&k.id).expect("removed subject exists");
        for g in groups.values_mut() {
            assert!(!g.members.contains(&GroupMember::Subject(k.clone())), "subject {k} removed while still a member of {}", g.group.name);
        }
    }
    let mut groups: Vec<OwnedGroup> = groups.into_values().collect();
    for g in &mut groups {
        g.members.sort();
    }
    OwnedState { subjects: subjects.into_values().collect(), groups }
}

/// What the snapshot says, in the shape of an owned state (uuids left out).
fn expected(snapshot: &SourceSnapshot) -> BTreeMap<GroupName, (String, BTreeSet<GroupMember>)> {
    let keys: BTreeMap<&str, &GroupName> = snapshot.groups.iter().map(|g| (g.key.as_str(), &g.name)).collect();
    snapshot
        .groups
        .iter()
        .map(|g| {
            let members = g
                .members
                .iter()
                .filter_map(|m| match m {
                    SnapshotMember::Subject(id) => snapshot.subjects.iter().any(|s| &s.id == id).then(|| sub(id)),
                    SnapshotMember::Group(k) => keys.get(k.as_str()).filter(|n| ***n != g.name).map(|n| GroupMember::Group { name: (*n).clone() }),
                })
                .collect();
            (g.name.clone(), (g.key.clone(), members))
        })
        .collect()
}

#[test]
fn a_member_missing_from_the_snapshot_is_removed_and_a_new_one_added() {
    let owned = OwnedState { subjects: vec![subject("a", "A"), subject("b", "B")], groups: vec![ogroup("u1", Some("k1"), "g", vec![sub("a"), sub("b")])] };
    let snap = SourceSnapshot { subjects: vec![subject("a", "A"), subject("b", "B"), subject("c", "C")], groups: vec![sgroup("k1", "g", vec![SnapshotMember::Subject("a".into()), SnapshotMember::Subject("c".into())])], problems: vec![] };
    let d = diff(&scope(), &owned, &snap).unwrap();
    assert_eq!(d.changes.members_removed, vec![(gname("g"), sub("b"))]);
    assert_eq!(d.changes.members_added, vec![(gname("g"), sub("c"))]);
    assert_eq!(d.changes.subjects_added, vec![subject("c", "C")]);
    assert!(d.changes.subjects_removed.is_empty() && d.changes.groups_updated.is_empty());
}

#[test]
fn a_group_renamed_in_the_source_is_renamed_not_recreated_and_its_nesting_follows() {
    let owned = OwnedState {
        subjects: vec![subject("a", "A")],
        groups: vec![ogroup("u1", Some("k1"), "old", vec![sub("a")]), ogroup("u2", Some("k2"), "parent", vec![GroupMember::Group { name: gname("old") }])],
    };
    let snap = SourceSnapshot {
        subjects: vec![subject("a", "A")],
        groups: vec![sgroup("k1", "new", vec![SnapshotMember::Subject("a".into())]), sgroup("k2", "parent", vec![SnapshotMember::Group("k1".into())])],
        problems: vec![],
    };
    let d = diff(&scope(), &owned, &snap).unwrap().changes;
    assert_eq!(d.groups_updated.len(), 1);
    assert_eq!((d.groups_updated[0].from.clone(), d.groups_updated[0].to.name.clone()), (gname("old"), gname("new")));
    assert!(d.groups_added.is_empty() && d.groups_removed.is_empty());
    assert!(d.members_added.is_empty() && d.members_removed.is_empty(), "{d:?}");
    let after = apply(&owned, &d);
    assert_eq!(after.groups.iter().find(|g| g.group.name == gname("new")).unwrap().group.uuid, "u1");
}

#[test]
fn a_member_naming_nothing_is_reported_and_left_out_while_the_rest_is_mirrored() {
    let snap = SourceSnapshot {
        subjects: vec![subject("a", "A")],
        groups: vec![sgroup("k1", "g", vec![SnapshotMember::Subject("a".into()), SnapshotMember::Subject("ghost".into()), SnapshotMember::Group("nokey".into())])],
        problems: vec![],
    };
    let d = diff(&scope(), &OwnedState::default(), &snap).unwrap();
    assert_eq!(d.changes.members_added, vec![(gname("g"), sub("a"))]);
    assert_eq!(d.problems.len(), 2, "{:?}", d.problems);
    assert!(d.problems[0].contains("ghost"));
}

#[test]
fn a_snapshot_outside_its_scope_or_contradicting_itself_is_an_error_naming_each_object() {
    let mut other = subject("x", "X");
    other.source = "local".into();
    let snap = SourceSnapshot {
        subjects: vec![other, subject("a", "A"), subject("a", "A2")],
        groups: vec![SnapshotGroup { key: "k".into(), name: GroupName::parse("app:g").unwrap(), display_name: None, description: None, members: vec![] }],
        problems: vec![],
    };
    let errors = diff(&scope(), &OwnedState::default(), &snap).unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("local:x")));
    assert!(errors.iter().any(|e| e.contains("ldap:a appears twice")));
    assert!(errors.iter().any(|e| e.contains("app:g")));
}

#[test]
fn an_empty_source_is_refused_while_the_registry_holds_owned_objects_and_its_digest_approves_it() {
    let owned = OwnedState { subjects: vec![subject("a", "A")], groups: vec![ogroup("u1", Some("k1"), "g", vec![sub("a")])] };
    let empty = SourceSnapshot::default();
    let d = diff(&scope(), &owned, &empty).unwrap().changes;
    let loose = Thresholds { max_removals: 1000, max_removal_percent: 100, max_group_removal_percent: 100, ..Thresholds::default() };
    let refusal = check("dir", &owned, &empty, &d, &loose, None).unwrap_err();
    assert!(refusal.reasons[0].contains("answered empty"), "{refusal:?}");
    assert_eq!(refusal.removals, vec!["remove subject ldap:a", "remove group ldap:staff:g", "remove subject ldap:a from group ldap:staff:g"]);
    assert_eq!(refusal.digest, removal_digest("dir", &d));
    assert!(check("dir", &owned, &empty, &d, &loose, Some(&refusal.digest)).is_ok());
    let wrong = check("dir", &owned, &empty, &d, &loose, Some("000000000000")).unwrap_err();
    assert!(wrong.reasons.iter().any(|r| r.contains("does not match")));
    assert!(refusal.message("dir", "duoprov source sync dir").contains(&format!("duoprov source sync dir --approve {}", refusal.digest)));
}

#[test]
fn removals_past_the_run_and_group_thresholds_are_refused_and_a_wrong_digest_refuses_even_small_runs() {
    let members: Vec<GroupMember> = (0..20).map(|i| sub(&format!("s{i}"))).collect();
    let subjects: Vec<Subject> = (0..20).map(|i| subject(&format!("s{i}"), "S")).collect();
    let owned = OwnedState { subjects: subjects.clone(), groups: vec![ogroup("u1", Some("k1"), "g", members)] };
    let keep: Vec<SnapshotMember> = (0..10).map(|i| SnapshotMember::Subject(format!("s{i}"))).collect();
    let snap = SourceSnapshot { subjects, groups: vec![sgroup("k1", "g", keep)], problems: vec![] };
    let d = diff(&scope(), &owned, &snap).unwrap().changes;
    assert_eq!(d.members_removed.len(), 10);
    let t = Thresholds { max_removals: 5, percent_rule_min_objects: 10, ..Thresholds::default() };
    let r = check("dir", &owned, &snap, &d, &t, None).unwrap_err();
    assert!(r.reasons.iter().any(|x| x.contains("exceed max_removals = 5")), "{r:?}");
    assert!(r.reasons.iter().any(|x| x.contains("10 of 20 members of group ldap:staff:g")), "{r:?}");
    assert!(r.reasons.iter().any(|x| x.contains("max_removal_percent")), "{r:?}");
    let generous = Thresholds { max_removals: 100, max_removal_percent: 100, max_group_removal_percent: 100, ..Thresholds::default() };
    assert!(check("dir", &owned, &snap, &d, &generous, None).is_ok());
    assert!(check("dir", &owned, &snap, &d, &generous, Some("abc")).is_err());
}

fn arb_case() -> impl Strategy<Value = (OwnedState, SourceSnapshot)> {
    let ids = 0..8usize;
    (
        prop::collection::btree_set(ids.clone(), 0..8),
        prop::collection::btree_set(ids.clone(), 0..8),
        prop::collection::vec((0..6usize, 0..6usize, prop::collection::btree_set(0..8usize, 0..5), prop::collection::btree_set(0..6usize, 0..3)), 0..6),
        prop::collection::vec((0..6usize, 0..6usize, prop::collection::btree_set(0..8usize, 0..5), prop::collection::btree_set(0..6usize, 0..3), any::<bool>()), 0..6),
    )
        .prop_map(|(own_s, snap_s, own_g, snap_g)| {
            let subjects = |set: &BTreeSet<usize>, tag: &str| set.iter().map(|i| subject(&format!("s{i}"), &format!("{tag}{}", i % 2))).collect::<Vec<_>>();
            let mut seen_keys = BTreeSet::new();
            let mut seen_names = BTreeSet::new();
            let snap_groups: Vec<SnapshotGroup> = snap_g
                .iter()
                .filter(|(k, n, ..)| seen_keys.insert(*k) && seen_names.insert(*n))
                .map(|(k, n, ms, gs, _)| {
                    let mut members: Vec<SnapshotMember> = ms.iter().map(|i| SnapshotMember::Subject(format!("s{i}"))).collect();
                    members.extend(gs.iter().map(|g| SnapshotMember::Group(format!("k{g}"))));
                    sgroup(&format!("k{k}"), &format!("n{n}"), members)
                })
                .collect();
            let mut seen_keys = BTreeSet::new();
            let mut seen_names = BTreeSet::new();
            let owned_groups: Vec<OwnedGroup> = own_g
                .iter()
                .filter(|(k, n, ..)| seen_keys.insert(*k) && seen_names.insert(*n))
                .map(|(k, n, ms, _)| (k, n, ms))
                .collect::<Vec<_>>()
                .iter()
                .enumerate()
                .map(|(i, (k, n, ms))| {
                    let members = ms.iter().filter(|m| own_s.contains(m)).map(|m| sub(&format!("s{m}"))).collect();
                    ogroup(&format!("u{i}"), (i % 3 != 0).then(|| format!("k{k}")).as_deref(), &format!("n{n}"), members)
                })
                .collect();
            (OwnedState { subjects: subjects(&own_s, "old"), groups: owned_groups }, SourceSnapshot { subjects: subjects(&snap_s, "new"), groups: snap_groups, problems: vec![] })
        })
}

proptest! {
    #[test]
    fn applying_the_diff_makes_the_owned_state_equal_to_the_snapshot((owned, snap) in arb_case()) {
        let d = diff(&scope(), &owned, &snap).unwrap().changes;
        let after = apply(&owned, &d);
        let mut want_subjects = snap.subjects.clone();
        want_subjects.sort_by(|a, b| a.id.cmp(&b.id));
        prop_assert_eq!(&after.subjects, &want_subjects);
        let got: BTreeMap<GroupName, (String, BTreeSet<GroupMember>)> = after.groups.iter().map(|g| (g.group.name.clone(), (g.key.clone().unwrap(), g.members.iter().cloned().collect()))).collect();
        prop_assert_eq!(got, expected(&snap));
        // A second diff finds nothing to do.
        prop_assert!(diff(&scope(), &after, &snap).unwrap().changes.is_empty());
        // Groups kept by key keep their uuid.
        for og in owned.groups.iter().filter(|g| g.key.is_some()) {
            if let Some(sg) = snap.groups.iter().find(|s| Some(&s.key) == og.key.as_ref()) {
                let kept = after.groups.iter().find(|g| g.group.name == sg.name).unwrap();
                prop_assert_eq!(&kept.group.uuid, &og.group.uuid);
            }
        }
    }
}
