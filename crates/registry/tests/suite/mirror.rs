//! A source's changes applied to the registry: one transaction with one change-log entry per
//! mutation, all or nothing, refused when the registry changed since it was read, renames (even
//! two groups swapping names) keeping uuids, and other objects left alone.

use duoprov_model::{ChangeKind, FolderPath, GroupMember, GroupName, MirrorChanges, MirrorGroup, MirrorGroupUpdate, MirrorScope, Subject, SubjectKey, SourceRun};
use duoprov_registry::{AuditFilter, AuditTrigger, NodeAttrs, RegistryError};

use crate::registry_test;

fn scope() -> MirrorScope {
    MirrorScope { source: "dir".into(), subject_source: "ldap".into(), folder: FolderPath::parse("ldap:staff").unwrap() }
}

pub fn trigger() -> AuditTrigger {
    AuditTrigger { actor: "cli:tester".into(), run_id: None, approval: Some("abc123".into()) }
}

fn g(ext: &str) -> GroupName {
    GroupName::parse(&format!("ldap:staff:{ext}")).unwrap()
}

fn subject(id: &str) -> Subject {
    Subject { source: "ldap".into(), id: id.into(), name: Some(id.to_uppercase()), login_id: None, email: None, first_name: None, last_name: None, description: None }
}

fn sub(id: &str) -> GroupMember {
    GroupMember::Subject(SubjectKey::new("ldap", id))
}

fn mg(key: &str, ext: &str) -> MirrorGroup {
    MirrorGroup { key: key.into(), name: g(ext), display_name: None, description: Some(format!("{ext} group")) }
}

fn initial() -> MirrorChanges {
    MirrorChanges {
        subjects_added: vec![subject("a"), subject("b")],
        groups_added: vec![mg("k1", "one"), mg("k2", "two")],
        members_added: vec![(g("one"), sub("a")), (g("two"), sub("b")), (g("two"), GroupMember::Group { name: g("one") })],
        ..Default::default()
    }
}

registry_test!(changes_are_applied_with_one_change_entry_each_and_keys_recorded, |store| {
    let empty = store.mirror_owned(&scope()).await.unwrap();
    assert!(empty.is_empty());
    let seq = store.last_change_seq().await.unwrap();
    store.apply_mirror(&scope(), &empty, &initial(), &trigger()).await.unwrap();
    let entries = store.changes_after(seq, 100).await.unwrap();
    // Two subjects, the folders created for the groups, two groups, three memberships.
    assert_eq!(entries.iter().filter(|e| e.kind != ChangeKind::FolderAdded).count(), initial().len(), "{entries:?}");
    let owned = store.mirror_owned(&scope()).await.unwrap();
    assert_eq!(owned.subjects.len(), 2);
    assert_eq!(owned.groups.iter().map(|g| g.key.clone().unwrap()).collect::<Vec<_>>(), ["k1", "k2"]);
    assert_eq!(owned.groups[1].members, vec![sub("b"), GroupMember::Group { name: g("one") }]);
    // One audit entry per mutation, naming the source, the actor and the approved digest.
    let audit = store.audit_entries(&AuditFilter::default()).await.unwrap();
    assert_eq!(audit.len(), initial().len(), "{audit:#?}");
    assert!(audit.iter().all(|e| e.source.as_deref() == Some("dir") && e.actor == "cli:tester" && e.approval.as_deref() == Some("abc123")), "{audit:#?}");
    let group = audit.iter().find(|e| e.object_kind == "group" && e.object_name == "ldap:staff:one").expect("the group's entry");
    assert_eq!(group.object_uuid.as_deref(), Some(store.group(&g("one")).await.unwrap().unwrap().uuid.as_str()));
    assert_eq!(group.action, "add");
    assert!(group.after.as_deref().unwrap().contains("one group"), "{group:?}");
});

registry_test!(two_groups_swapping_names_keep_their_uuids_and_memberships, |store| {
    let empty = store.mirror_owned(&scope()).await.unwrap();
    store.apply_mirror(&scope(), &empty, &initial(), &trigger()).await.unwrap();
    let one = store.group(&g("one")).await.unwrap().unwrap().uuid;
    let two = store.group(&g("two")).await.unwrap().unwrap().uuid;
    let owned = store.mirror_owned(&scope()).await.unwrap();
    let swap = MirrorChanges {
        groups_updated: vec![MirrorGroupUpdate { from: g("one"), to: mg("k1", "two") }, MirrorGroupUpdate { from: g("two"), to: mg("k2", "one") }],
        ..Default::default()
    };
    store.apply_mirror(&scope(), &owned, &swap, &trigger()).await.unwrap();
    assert_eq!(store.group(&g("two")).await.unwrap().unwrap().uuid, one);
    assert_eq!(store.group(&g("one")).await.unwrap().unwrap().uuid, two);
    assert_eq!(store.members(&g("one")).await.unwrap(), vec![sub("b"), GroupMember::Group { name: g("two") }]);
});

registry_test!(a_failing_change_writes_nothing_and_a_stale_read_is_refused, |store| {
    let empty = store.mirror_owned(&scope()).await.unwrap();
    store.apply_mirror(&scope(), &empty, &initial(), &trigger()).await.unwrap();
    let owned = store.mirror_owned(&scope()).await.unwrap();
    let seq = store.last_change_seq().await.unwrap();
    // The second change fails (a member that does not exist): the first is not kept either.
    let bad = MirrorChanges { subjects_added: vec![subject("c")], members_added: vec![(g("one"), sub("nobody"))], ..Default::default() };
    let audited = store.audit_head().await.unwrap();
    assert!(store.apply_mirror(&scope(), &owned, &bad, &trigger()).await.is_err());
    assert_eq!(store.last_change_seq().await.unwrap(), seq);
    assert_eq!(store.audit_head().await.unwrap(), audited, "a rolled-back mirror leaves no audit entries");
    assert!(store.subject(&SubjectKey::new("ldap", "c")).await.unwrap().is_none());
    // Changes computed from a read the registry no longer matches are refused.
    store.add_member(&g("one"), &sub("b")).await.unwrap();
    let seq = store.last_change_seq().await.unwrap();
    let good = MirrorChanges { subjects_added: vec![subject("c")], ..Default::default() };
    let err = store.apply_mirror(&scope(), &owned, &good, &trigger()).await.unwrap_err();
    assert!(matches!(err, RegistryError::Refused(ref m) if m.contains("changed")), "{err}");
    assert_eq!(store.last_change_seq().await.unwrap(), seq);
});

registry_test!(changes_outside_the_scope_are_refused_and_other_groups_keep_their_source_subjects, |store| {
    store.add_group(&GroupName::parse("app:hand").unwrap(), &NodeAttrs::default(), true).await.unwrap();
    let empty = store.mirror_owned(&scope()).await.unwrap();
    store.apply_mirror(&scope(), &empty, &initial(), &trigger()).await.unwrap();
    store.add_member(&GroupName::parse("app:hand").unwrap(), &sub("a")).await.unwrap();
    let owned = store.mirror_owned(&scope()).await.unwrap();
    let outside = MirrorChanges { groups_removed: vec![GroupName::parse("app:hand").unwrap()], ..Default::default() };
    let err = store.apply_mirror(&scope(), &owned, &outside, &trigger()).await.unwrap_err();
    assert!(err.to_string().contains("app:hand"), "{err}");
    assert!(store.group(&GroupName::parse("app:hand").unwrap()).await.unwrap().is_some());
    // The hand-made group is not in the scope: its members are not the source's.
    assert!(owned.groups.iter().all(|g| g.group.name.as_str() != "app:hand"));
});

registry_test!(the_last_run_of_each_source_is_kept, |store| {
    let run = |at_ms, result: &str| SourceRun { source: "dir".into(), at_ms, result: result.into(), detail: serde_json::json!({"counts": {"members_added": 3}}) };
    store.record_source_run(&run(1, "applied")).await.unwrap();
    store.record_source_run(&run(2, "refused")).await.unwrap();
    let runs = store.source_runs().await.unwrap();
    assert_eq!(runs, vec![run(2, "refused")]);
});
