//! Subjects, folders, groups and memberships: add-or-update, renames that keep identity, and the
//! refusals (unknown objects, bad names, cycles, non-empty folders).

use crate::registry_test;
use crate::support::*;
use duoprov_model::{FolderPath, SubjectKey, SubjectPatch};
use duoprov_registry::{NodeAttrs, RegistryError, Upsert};

registry_test!(subject_add_is_add_or_update, |store| {
    let key = SubjectKey::local("mchyzer");
    let patch = SubjectPatch {
        name: Some(Some("Chris Hyzer".into())),
        login_id: Some(Some("mchyzer".into())),
        description: Some(Some("Chris Hyzer".into())),
        ..Default::default()
    };
    let (s, outcome) = store.upsert_subject(&key, &patch).await.unwrap();
    assert_eq!(outcome, Upsert::Created);
    assert_eq!(s.name.as_deref(), Some("Chris Hyzer"));
    let (_, outcome) = store.upsert_subject(&key, &patch).await.unwrap();
    assert_eq!(outcome, Upsert::Unchanged);
    let email = SubjectPatch { email: Some(Some("chris@example.edu".into())), ..Default::default() };
    let (s, outcome) = store.upsert_subject(&key, &email).await.unwrap();
    assert_eq!(outcome, Upsert::Updated);
    assert_eq!(s.email.as_deref(), Some("chris@example.edu"));
    assert_eq!(s.login_id.as_deref(), Some("mchyzer"), "fields the patch leaves out are kept");
    let shown = store.subject(&key).await.unwrap().unwrap();
    assert_eq!(shown, s);
    let err = store.update_subject(&SubjectKey::local("nobody"), &email).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("subject local:nobody"), "{err}");
});

registry_test!(subject_bad_fields_name_the_field_and_write_nothing, |store| {
    let bad = SubjectPatch { name: Some(Some("bad\u{1b}name".into())), ..Default::default() };
    let err = store.upsert_subject(&SubjectKey::local("x"), &bad).await.unwrap_err().to_string();
    assert!(err.contains("subject local:x") && err.contains("name") && err.contains("U+001B"), "{err}");
    let err = store.upsert_subject(&SubjectKey::local(""), &person("x")).await.unwrap_err().to_string();
    assert!(err.contains("id") && err.contains("empty"), "{err}");
    let long = SubjectPatch { login_id: Some(Some("x".repeat(2000))), ..Default::default() };
    let err = store.upsert_subject(&SubjectKey::local("y"), &long).await.unwrap_err().to_string();
    assert!(err.contains("login_id") && err.contains("longer than"), "{err}");
    assert!(store.subjects(None).await.unwrap().is_empty());
    assert_eq!(store.last_change_seq().await.unwrap(), 0);
});

registry_test!(groups_need_their_folder_unless_asked_to_create_it, |store| {
    let err = store.add_group(&g("app:duo:testGroup"), &NodeAttrs::default(), false).await.unwrap_err().to_string();
    assert!(err.contains("folder app:duo") && err.contains("--create-parents"), "{err}");
    assert!(store.folders(None).await.unwrap().is_empty());
    let (group, outcome) = store.add_group(&g("app:duo:testGroup"), &NodeAttrs::default(), true).await.unwrap();
    assert_eq!(outcome, Upsert::Created);
    assert_eq!(group.extension(), "testGroup");
    let folders: Vec<String> = store.folders(None).await.unwrap().into_iter().map(|f| f.path.to_string()).collect();
    assert_eq!(folders, ["app", "app:duo"]);
    let attrs = NodeAttrs { description: Some(Some("Duo test group".into())), ..Default::default() };
    let (again, outcome) = store.add_group(&g("app:duo:testGroup"), &attrs, false).await.unwrap();
    assert_eq!(outcome, Upsert::Updated);
    assert_eq!(again.uuid, group.uuid);
    assert_eq!(again.description.as_deref(), Some("Duo test group"));
    let err = store.add_folder(&FolderPath::parse("app:duo:testGroup").unwrap(), &NodeAttrs::default(), false).await.unwrap_err().to_string();
    assert!(err.contains("a group of that name exists"), "{err}");
});

registry_test!(renames_keep_uuid_and_memberships, |store| {
    add_subject(&*store, "mchyzer").await;
    add_group(&*store, "app:duo:testGroup").await;
    add_group(&*store, "app:duo:parent").await;
    store.add_member(&g("app:duo:testGroup"), &subject("mchyzer")).await.unwrap();
    store.add_member(&g("app:duo:parent"), &nested("app:duo:testGroup")).await.unwrap();
    let before = store.group(&g("app:duo:testGroup")).await.unwrap().unwrap();

    let renamed = store.update_group(&g("app:duo:testGroup"), Some(&g("app:duo:renamed")), &NodeAttrs::default(), false).await.unwrap();
    assert_eq!(renamed.uuid, before.uuid);
    assert!(store.group(&g("app:duo:testGroup")).await.unwrap().is_none());
    assert_eq!(effective_ids(&*store, "app:duo:renamed").await, ["mchyzer"]);
    assert_eq!(effective_ids(&*store, "app:duo:parent").await, ["mchyzer"]);

    // Moving the whole folder moves its groups, still with the same uuid and members.
    store.add_folder(&FolderPath::parse("apps").unwrap(), &NodeAttrs::default(), false).await.unwrap();
    store.update_folder(&FolderPath::parse("app:duo").unwrap(), Some(&FolderPath::parse("apps:mfa").unwrap()), &NodeAttrs::default()).await.unwrap();
    let moved = store.group(&g("apps:mfa:renamed")).await.unwrap().expect("group moved with its folder");
    assert_eq!(moved.uuid, before.uuid);
    assert_eq!(effective_ids(&*store, "apps:mfa:parent").await, ["mchyzer"]);
    let err = store
        .update_folder(&FolderPath::parse("apps").unwrap(), Some(&FolderPath::parse("apps:mfa:x").unwrap()), &NodeAttrs::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("own subtree"), "{err}");
});

registry_test!(nested_groups_three_deep_resolve, |store| {
    for s in ["a1", "b1", "c1", "d1"] {
        add_subject(&*store, s).await;
    }
    for grp in ["org:l0", "org:l1", "org:l2", "org:l3"] {
        add_group(&*store, grp).await;
    }
    store.add_member(&g("org:l0"), &subject("a1")).await.unwrap();
    store.add_member(&g("org:l0"), &nested("org:l1")).await.unwrap();
    store.add_member(&g("org:l1"), &subject("b1")).await.unwrap();
    store.add_member(&g("org:l1"), &nested("org:l2")).await.unwrap();
    store.add_member(&g("org:l2"), &subject("c1")).await.unwrap();
    store.add_member(&g("org:l2"), &nested("org:l3")).await.unwrap();
    store.add_member(&g("org:l3"), &subject("d1")).await.unwrap();
    store.add_member(&g("org:l3"), &subject("a1")).await.unwrap();
    assert_eq!(effective_ids(&*store, "org:l0").await, ["a1", "b1", "c1", "d1"]);
    assert_eq!(effective_ids(&*store, "org:l2").await, ["a1", "c1", "d1"]);
    let eff = store.effective_members(&g("org:l0")).await.unwrap();
    let immediate: Vec<_> = eff.iter().filter(|m| m.immediate).map(|m| m.subject.id.as_str()).collect();
    assert_eq!(immediate, ["a1"]);
    // Adding twice is not an error, and not a second membership.
    assert!(!store.add_member(&g("org:l0"), &subject("a1")).await.unwrap());
    assert_eq!(store.members(&g("org:l0")).await.unwrap().len(), 2);
    // Removing the middle link cuts the deeper members off.
    assert!(store.remove_member(&g("org:l1"), &nested("org:l2")).await.unwrap());
    assert_eq!(effective_ids(&*store, "org:l0").await, ["a1", "b1"]);
    assert!(!store.remove_member(&g("org:l1"), &nested("org:l2")).await.unwrap());
});

registry_test!(cycles_are_refused_with_a_clear_message, |store| {
    for grp in ["org:a", "org:b", "org:c"] {
        add_group(&*store, grp).await;
    }
    store.add_member(&g("org:a"), &nested("org:b")).await.unwrap();
    store.add_member(&g("org:b"), &nested("org:c")).await.unwrap();
    let seq = store.last_change_seq().await.unwrap();
    let err = store.add_member(&g("org:c"), &nested("org:a")).await.unwrap_err();
    assert!(matches!(err, RegistryError::Refused(_)));
    let msg = err.to_string();
    assert!(msg.contains("cycle") && msg.contains("org:a") && msg.contains("org:c"), "{msg}");
    let err = store.add_member(&g("org:a"), &nested("org:a")).await.unwrap_err().to_string();
    assert!(err.contains("member of itself"), "{err}");
    assert_eq!(store.last_change_seq().await.unwrap(), seq, "a refused change logs nothing");
    assert_eq!(store.members(&g("org:c")).await.unwrap(), vec![]);
});

registry_test!(unknown_objects_are_named, |store| {
    add_group(&*store, "org:a").await;
    let err = store.add_member(&g("org:a"), &subject("ghost")).await.unwrap_err().to_string();
    assert_eq!(err, "subject local:ghost does not exist");
    let err = store.add_member(&g("org:nope"), &subject("ghost")).await.unwrap_err().to_string();
    assert_eq!(err, "group org:nope does not exist");
    let err = store.remove_group(&g("org:nope")).await.unwrap_err().to_string();
    assert_eq!(err, "group org:nope does not exist");
});

registry_test!(removing_things_cascades_memberships, |store| {
    add_subject(&*store, "kwilso").await;
    add_group(&*store, "app:duo:testGroup").await;
    add_group(&*store, "app:duo:outer").await;
    store.add_member(&g("app:duo:testGroup"), &subject("kwilso")).await.unwrap();
    store.add_member(&g("app:duo:outer"), &nested("app:duo:testGroup")).await.unwrap();
    store.remove_subject(&SubjectKey::local("kwilso")).await.unwrap();
    assert!(effective_ids(&*store, "app:duo:outer").await.is_empty());
    let app_duo = FolderPath::parse("app:duo").unwrap();
    let err = store.remove_folder(&app_duo, false).await.unwrap_err().to_string();
    assert!(err.contains("not empty") && err.contains("2 groups"), "{err}");
    store.remove_folder(&app_duo, true).await.unwrap();
    assert!(store.groups(None).await.unwrap().is_empty());
    assert_eq!(store.folders(None).await.unwrap().len(), 1);
});

registry_test!(a_batch_of_members_with_unknown_ones_or_a_cycle_writes_none_and_names_each, |store| {
    add_subject(&*store, "a").await;
    add_subject(&*store, "b").await;
    add_group(&*store, "org:outer").await;
    add_group(&*store, "org:inner").await;
    let seq = store.last_change_seq().await.unwrap();
    // Two unknown subjects among known members: every problem named, nothing written or logged.
    let batch = [subject("a"), subject("ghost"), nested("org:inner"), subject("nobody")];
    let err = store.add_members(&g("org:outer"), &batch).await.unwrap_err().to_string();
    assert!(err.contains("subject local:ghost does not exist") && err.contains("subject local:nobody does not exist"), "{err}");
    assert!(store.members(&g("org:outer")).await.unwrap().is_empty());
    assert_eq!(store.last_change_seq().await.unwrap(), seq, "a refused batch logs no change");
    // A cycle formed inside the batch itself is refused with the rest of it.
    store.add_members(&g("org:outer"), &[subject("a"), nested("org:inner")]).await.unwrap();
    let err = store.add_members(&g("org:inner"), &[subject("b"), nested("org:outer")]).await.unwrap_err().to_string();
    assert!(err.contains("would make a cycle"), "{err}");
    assert!(store.members(&g("org:inner")).await.unwrap().is_empty());
    // A valid batch: one outcome per member, in order.
    assert_eq!(store.add_members(&g("org:outer"), &[subject("b"), subject("a")]).await.unwrap(), [true, false]);
    let err = store.remove_members(&g("org:outer"), &[subject("a"), subject("ghost")]).await.unwrap_err().to_string();
    assert!(err.contains("subject local:ghost does not exist"), "{err}");
    assert_eq!(store.members(&g("org:outer")).await.unwrap().len(), 3, "a refused removal removes nothing");
    assert_eq!(store.remove_members(&g("org:outer"), &[subject("a"), subject("a")]).await.unwrap(), [true, false]);
});

registry_test!(existing_group_uuids_names_only_the_groups_still_held, |store| {
    add_group(&*store, "app:duo:kept").await;
    add_group(&*store, "app:duo:gone").await;
    let kept = store.group(&g("app:duo:kept")).await.unwrap().expect("kept").uuid;
    let gone = store.group(&g("app:duo:gone")).await.unwrap().expect("gone").uuid;
    store.remove_group(&g("app:duo:gone")).await.unwrap();
    // More uuids than one statement's batch, so the batching is exercised too.
    let mut asked: Vec<String> = (0..2500).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect();
    asked.push(kept.clone());
    asked.push(gone);
    let found = store.existing_group_uuids(&asked).await.unwrap();
    assert_eq!(found, std::collections::HashSet::from([kept]));
    assert!(store.existing_group_uuids(&[]).await.unwrap().is_empty());
});
