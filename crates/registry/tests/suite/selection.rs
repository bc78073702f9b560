//! Markers and the per-provisioner selection the sync engine reads.

use crate::registry_test;
use crate::support::*;
use duoprov_model::{FolderPath, Marker, MarkerScope, MarkerTarget, SubjectKey, SubjectPatch};
use duoprov_registry::Upsert;

fn folder_marker(path: &str, scope: MarkerScope, provision: bool) -> Marker {
    Marker { provisioner: "duoTest".into(), target: MarkerTarget::Folder(FolderPath::parse(path).unwrap()), scope, provision }
}

registry_test!(seed_scenario_selects_the_group_and_both_members, |store| {
    for (id, name) in [("mchyzer", "Chris Hyzer"), ("kwilso", "Kate Wilson")] {
        let patch = SubjectPatch {
            name: Some(Some(name.into())),
            login_id: Some(Some(id.into())),
            email: Some(Some(format!("{id}@example.edu"))),
            ..Default::default()
        };
        store.upsert_subject(&SubjectKey::local(id), &patch).await.unwrap();
    }
    add_group(&*store, "app:duo:testGroup").await;
    add_group(&*store, "app:other:notMarked").await;
    store.add_member(&g("app:duo:testGroup"), &subject("mchyzer")).await.unwrap();
    store.add_member(&g("app:duo:testGroup"), &subject("kwilso")).await.unwrap();
    store.add_member(&g("app:other:notMarked"), &subject("kwilso")).await.unwrap();
    assert!(store.provisioner_selection("duoTest").await.unwrap().groups.is_empty());
    assert_eq!(store.assign_marker(&folder_marker("app:duo", MarkerScope::Sub, true)).await.unwrap(), Upsert::Created);
    assert_eq!(store.assign_marker(&folder_marker("app:duo", MarkerScope::Sub, true)).await.unwrap(), Upsert::Unchanged);

    let sel = store.provisioner_selection("duoTest").await.unwrap();
    assert_eq!(sel.groups.len(), 1);
    assert_eq!(sel.groups[0].group.name.as_str(), "app:duo:testGroup");
    let members: Vec<&str> = sel.groups[0].members.iter().map(|i| sel.subjects[*i as usize].id.as_str()).collect();
    assert_eq!(members, ["kwilso", "mchyzer"]);
    assert_eq!(sel.subjects.len(), 2);
    assert_eq!(sel.subjects[1].name.as_deref(), Some("Chris Hyzer"));
    assert!(store.provisioner_selection("otherProvisioner").await.unwrap().groups.is_empty());
});

registry_test!(exclusions_and_nesting_shape_the_selection, |store| {
    for s in ["u1", "u2", "u3"] {
        add_subject(&*store, s).await;
    }
    for grp in ["app:duo:all", "app:duo:staff", "app:duo:private:secret", "lib:people"] {
        add_group(&*store, grp).await;
    }
    store.add_member(&g("app:duo:staff"), &subject("u1")).await.unwrap();
    store.add_member(&g("lib:people"), &subject("u2")).await.unwrap();
    store.add_member(&g("lib:people"), &subject("u1")).await.unwrap();
    store.add_member(&g("app:duo:all"), &nested("app:duo:staff")).await.unwrap();
    store.add_member(&g("app:duo:all"), &nested("lib:people")).await.unwrap();
    store.add_member(&g("app:duo:private:secret"), &subject("u3")).await.unwrap();
    store.assign_marker(&folder_marker("app:duo", MarkerScope::Sub, true)).await.unwrap();
    store.assign_marker(&folder_marker("app:duo:private", MarkerScope::Sub, false)).await.unwrap();
    store
        .assign_marker(&Marker { provisioner: "duoTest".into(), target: MarkerTarget::Group(g("app:duo:staff")), scope: MarkerScope::Sub, provision: false })
        .await
        .unwrap();
    let sel = store.provisioner_selection("duoTest").await.unwrap();
    let names: Vec<&str> = sel.groups.iter().map(|p| p.group.name.as_str()).collect();
    assert_eq!(names, ["app:duo:all"], "the excluded group and subfolder stay out");
    let members: Vec<&str> = sel.groups[0].members.iter().map(|i| sel.subjects[*i as usize].id.as_str()).collect();
    assert_eq!(members, ["u1", "u2"], "members reached through an unselected nested group still count, once each");
    assert_eq!(store.markers(Some("duoTest")).await.unwrap().len(), 3);
    assert!(store.unassign_marker("duoTest", &MarkerTarget::Group(g("app:duo:staff"))).await.unwrap());
    let names: Vec<String> = store.provisioner_selection("duoTest").await.unwrap().groups.into_iter().map(|p| p.group.name.to_string()).collect();
    assert_eq!(names, ["app:duo:all", "app:duo:staff"]);
});

registry_test!(the_selection_is_read_in_one_snapshot_while_a_folder_is_renamed_back_and_forth, |store| {
    // The marker follows its folder by id, so in every committed state the group is selected.
    // Statements of one read that saw different commits (the marker's old path, the groups'
    // new names) would select nothing: an empty registry as far as the sync can tell.
    let store: std::sync::Arc<dyn duoprov_registry::Store> = std::sync::Arc::from(store);
    add_subject(&*store, "u1").await;
    add_group(&*store, "app:duo:all").await;
    store.add_member(&g("app:duo:all"), &subject("u1")).await.unwrap();
    store.assign_marker(&folder_marker("app:duo", MarkerScope::Sub, true)).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let (a, b) = (FolderPath::parse("app:duo").unwrap(), FolderPath::parse("app:duoX").unwrap());
            let mut renames = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && renames < 5_000 {
                let (from, to) = if renames.is_multiple_of(2) { (&a, &b) } else { (&b, &a) };
                if let Err(e) = store.update_folder(from, Some(to), &Default::default()).await { panic!("rename {renames} failed: {e}"); }
                renames += 1;
            }
            renames
        })
    };
    let mut reads = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    while reads < 400 && std::time::Instant::now() < deadline {
        let sel = store.provisioner_selection("duoTest").await.unwrap();
        assert_eq!(sel.groups.len(), 1, "read {reads}: the selection mixed two registry states: {:?}", sel.groups.iter().map(|g| g.group.name.as_str()).collect::<Vec<_>>());
        assert_eq!(sel.groups[0].members.len(), 1, "read {reads}: the member was lost");
        reads += 1;
        tokio::task::yield_now().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let renames = writer.await.unwrap();
    assert!(renames > 0 && reads > 0, "no concurrency was exercised ({renames} renames, {reads} reads)");
});

registry_test!(the_selection_and_its_eligible_users_are_read_together, |store| {
    for s in ["u1", "u2", "u3"] {
        add_subject(&*store, s).await;
    }
    add_group(&*store, "app:duo:all").await;
    add_group(&*store, "ref:eligible").await;
    add_group(&*store, "ref:staff").await;
    for s in ["u1", "u2", "u3"] {
        store.add_member(&g("app:duo:all"), &subject(s)).await.unwrap();
    }
    store.add_member(&g("ref:staff"), &subject("u2")).await.unwrap();
    store.add_member(&g("ref:eligible"), &subject("u1")).await.unwrap();
    store.add_member(&g("ref:eligible"), &nested("ref:staff")).await.unwrap();
    store.assign_marker(&folder_marker("app:duo", MarkerScope::Sub, true)).await.unwrap();
    let (sel, eligible) = store.provisioner_selection_with_eligible("duoTest", &g("ref:eligible")).await.unwrap();
    assert_eq!(sel, store.provisioner_selection("duoTest").await.unwrap());
    let ids: Vec<&str> = eligible.iter().map(|m| m.subject.id.as_str()).collect();
    assert_eq!(ids, ["u1", "u2"], "effective members, through nesting");
    let err = store.provisioner_selection_with_eligible("duoTest", &g("ref:missing")).await.expect_err("a missing eligible group is an error");
    assert!(err.to_string().contains("ref:missing"), "{err}");
});
