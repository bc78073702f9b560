//! The scoped reads of an incremental run ([`duoprov_registry::ScopedReads`],
//! [`duoprov_registry::ScopedGroups`], [`duoprov_registry::ScopedLinks`]): the selection seen from
//! a few subjects equals the whole selection restricted to them, nesting, exclusions and
//! eligibility included, and seen from a few subjects and groups, restricted to the groups they
//! reach too; the recorded usernames are replaced, rewritten per subject under a matching
//! fingerprint only, and found by username; the recorded group names are replaced, found by name
//! and counted; the links of a scope are the whole links restricted to it, with counts of the rest.

use crate::registry_test;
use crate::support::*;
use duoprov_model::{FolderPath, Marker, MarkerScope, MarkerTarget, SubjectKey};
use duoprov_registry::{RenderedGroup, RenderedName};

fn key(id: &str) -> SubjectKey {
    SubjectKey::local(id)
}

registry_test!(a_scoped_selection_is_the_whole_selection_restricted_to_its_subjects, |store| {
    for s in ["u1", "u2", "u3", "u4", "u5"] {
        add_subject(&*store, s).await;
    }
    for grp in ["app:duo:all", "app:duo:staff", "app:duo:private:secret", "lib:people", "lib:deep", "lib:eligible"] {
        add_group(&*store, grp).await;
    }
    store.add_member(&g("app:duo:staff"), &subject("u1")).await.unwrap();
    store.add_member(&g("lib:deep"), &subject("u2")).await.unwrap();
    store.add_member(&g("lib:people"), &nested("lib:deep")).await.unwrap();
    store.add_member(&g("app:duo:all"), &nested("app:duo:staff")).await.unwrap();
    store.add_member(&g("app:duo:all"), &nested("lib:people")).await.unwrap();
    store.add_member(&g("app:duo:private:secret"), &subject("u3")).await.unwrap();
    store.add_member(&g("lib:eligible"), &subject("u2")).await.unwrap();
    store.add_member(&g("lib:eligible"), &nested("app:duo:private:secret")).await.unwrap();
    let marker = |path: &str, provision: bool| Marker { provisioner: "duoTest".into(), target: MarkerTarget::Folder(FolderPath::parse(path).unwrap()), scope: MarkerScope::Sub, provision };
    store.assign_marker(&marker("app:duo", true)).await.unwrap();
    store.assign_marker(&marker("app:duo:private", false)).await.unwrap();
    let whole = store.provisioner_selection("duoTest").await.unwrap();
    let (_, eligible) = store.provisioner_selection_with_eligible("duoTest", &g("lib:eligible")).await.unwrap();
    let eligible: Vec<SubjectKey> = eligible.into_iter().map(|m| m.subject.key()).collect();
    // u4 is in no group, u5 was removed, "nobody" never existed.
    store.remove_subject(&key("u5")).await.unwrap();
    let asked_sets: [&[&str]; 5] = [&["u1"], &["u2"], &["u3"], &["u1", "u2", "u4"], &["u2", "u5", "nobody"]];
    for asked in asked_sets {
        let keys: Vec<SubjectKey> = asked.iter().map(|s| key(s)).collect();
        let scoped = store.scoped_selection("duoTest", &keys, Some(&g("lib:eligible"))).await.unwrap();
        let names = |sel: &duoprov_model::ProvisionerSelection| sel.groups.iter().map(|pg| pg.group.clone()).collect::<Vec<_>>();
        assert_eq!(names(&scoped.selection), names(&whole), "every selected group, in order ({asked:?})");
        for (s, w) in scoped.selection.groups.iter().zip(&whole.groups) {
            let got: Vec<SubjectKey> = s.members.iter().map(|i| scoped.selection.subjects[*i as usize].key()).collect();
            let want: Vec<SubjectKey> = w.members.iter().map(|i| whole.subjects[*i as usize].key()).filter(|k| keys.contains(k)).collect();
            assert_eq!(got, want, "members of {} among {asked:?}", w.group.name);
        }
        let got: Vec<SubjectKey> = scoped.selection.subjects.iter().map(|s| s.key()).collect();
        let want: Vec<SubjectKey> = whole.subjects.iter().map(|s| s.key()).filter(|k| keys.contains(k)).collect();
        assert_eq!(got, want, "subjects among {asked:?}");
        let mut want: Vec<SubjectKey> = eligible.iter().filter(|k| keys.contains(k)).cloned().collect();
        want.sort();
        assert_eq!(scoped.eligible, Some(want), "eligible among {asked:?}");
    }
    // A provisioner without markers selects nothing, seen from anyone.
    let none = store.scoped_selection("nobody", &[key("u1")], None).await.unwrap();
    assert!(none.selection.groups.is_empty() && none.selection.subjects.is_empty() && none.eligible.is_none());
});

registry_test!(recorded_usernames_are_replaced_rewritten_under_their_fingerprint_and_found_by_username, |store| {
    let row = |id: &str, name: &str| RenderedName { subject: key(id), username_key: name.into() };
    assert_eq!(store.rendered_fingerprint("p").await.unwrap(), None);
    let counts = store.replace_rendered("p", "f1", &[row("a", "ann"), row("b", "bob"), row("c", "ann")]).await.unwrap();
    assert_eq!((counts.written, counts.removed), (3, 0));
    assert_eq!(store.rendered_fingerprint("p").await.unwrap().as_deref(), Some("f1"));
    assert_eq!(store.rendered_holders("p", &["ann".into()]).await.unwrap(), vec![row("a", "ann"), row("c", "ann")]);
    assert!(store.rendered_holders("other", &["ann".into()]).await.unwrap().is_empty(), "rows are per provisioner");
    // Unchanged rows are not written again; a gone subject's row is removed.
    let counts = store.replace_rendered("p", "f1", &[row("a", "ann"), row("b", "bobby")]).await.unwrap();
    assert_eq!((counts.written, counts.removed), (1, 1));
    assert_eq!(store.rendered_of("p", &[key("b"), key("c")]).await.unwrap(), vec![row("b", "bobby")]);
    // A rewrite under another fingerprint writes nothing.
    assert!(!store.update_rendered("p", "f2", &[key("a")], &[]).await.unwrap());
    assert_eq!(store.rendered_of("p", &[key("a")]).await.unwrap(), vec![row("a", "ann")]);
    // Under the recorded one: a subject without a row in `rows` loses its row, others get theirs.
    assert!(store.update_rendered("p", "f1", &[key("a"), key("d")], &[row("d", "ann")]).await.unwrap());
    assert_eq!(store.rendered_holders("p", &["ann".into(), "bobby".into()]).await.unwrap(), vec![row("b", "bobby"), row("d", "ann")]);
});

registry_test!(scoped_links_are_the_whole_links_restricted_to_their_subjects_with_the_counts_of_the_rest, |store| {
    use duoprov_registry::UserState;
    let user = |id: &str, duo: Option<&str>, in_target: bool| UserState {
        pending_name: if duo.is_none() { Some(format!("{id}-pending")) } else { None },
        pending_at: None,
        subject: key(id),
        duo_user_id: duo.map(str::to_owned),
        in_target,
        created_by_us: true,
        provisioned_at: None,
        error: None,
    };
    // Linked in target, linked out of target, pending, and another provisioner's.
    let users = [user("b", Some("DU2"), true), user("a", Some("DU1"), true), user("c", Some("DU3"), false), user("d", None, true), user("e", Some("DU5"), true)];
    store.record("p", &[], &users, &[]).await.unwrap();
    store.record("other", &[], &[user("a", Some("DU9"), true)], &[]).await.unwrap();
    store.record_disabled_users("p", &[(key("c"), "DU3".into())]).await.unwrap();
    let whole = store.links("p").await.unwrap();

    let scoped = store.scoped_links("p", &[key("c"), key("d"), key("nobody")], None).await.unwrap();
    assert_eq!(scoped.links.groups, whole.groups, "every group link");
    let want: Vec<_> = whole.users.iter().filter(|l| ["c", "d"].contains(&l.subject.id.as_str())).cloned().collect();
    assert_eq!(scoped.links.users, want, "the asked subjects' user links only");
    assert_eq!(scoped.links.disabled_by_us, whole.disabled_by_us, "c is disabled and asked");
    assert_eq!(scoped.managed_users, whole.users.iter().filter(|l| l.in_target && l.duo_user_id.is_some()).count());
    assert_eq!(scoped.managed_users, 3, "a, b and e; not c (out of target) nor d (pending)");
    assert_eq!(scoped.first_linked_user, whole.users.iter().find_map(|l| l.duo_user_id.clone()));
    assert_eq!(scoped.first_linked_user.as_deref(), Some("DU1"));

    let none = store.scoped_links("p", &[key("a")], None).await.unwrap();
    assert!(none.links.disabled_by_us.is_empty(), "c was not asked");
    let empty = store.scoped_links("nobody", &[key("a")], None).await.unwrap();
    assert!(empty.links.users.is_empty() && empty.managed_users == 0 && empty.first_linked_user.is_none());

    let by_id = store.user_links_by_duo_ids("p", &["DU3".into(), "DU5".into(), "DU9".into()]).await.unwrap();
    let want: Vec<_> = whole.users.iter().filter(|l| ["c", "e"].contains(&l.subject.id.as_str())).cloned().collect();
    assert_eq!(by_id, want, "DU9 is another provisioner's");
});

registry_test!(scoped_group_links_are_the_asked_groups_links_with_the_managed_group_count, |store| {
    use duoprov_registry::GroupState;
    let group = |uuid: &str, duo: Option<&str>, in_target: bool| GroupState {
        pending_name: if duo.is_none() { Some(format!("{uuid}-pending")) } else { None },
        pending_at: None,
        group_uuid: uuid.into(),
        duo_group_id: duo.map(str::to_owned),
        in_target,
        created_by_us: true,
        provisioned_at: None,
        error: None,
    };
    let groups = [group("g2", Some("DG2"), true), group("g1", Some("DG1"), true), group("g3", Some("DG3"), false), group("g4", None, true), group("g5", Some("DG5"), true)];
    store.record("p", &groups, &[], &[]).await.unwrap();
    store.record("other", &[group("g1", Some("DG9"), true)], &[], &[]).await.unwrap();
    let whole = store.links("p").await.unwrap();

    let every = store.scoped_links("p", &[], None).await.unwrap();
    assert_eq!(every.links.groups, whole.groups, "every group link when no group is asked");
    let asked: Vec<String> = vec!["g5".into(), "g3".into(), "g4".into(), "gone".into()];
    let scoped = store.scoped_links("p", &[], Some(&asked)).await.unwrap();
    let want: Vec<_> = whole.groups.iter().filter(|l| ["g3", "g4", "g5"].contains(&l.group_uuid.as_str())).cloned().collect();
    assert_eq!(scoped.links.groups, want, "the asked groups' links only, in uuid order");
    assert_eq!(scoped.managed_groups, whole.groups.iter().filter(|l| l.in_target && l.duo_group_id.is_some()).count());
    assert_eq!(scoped.managed_groups, 3, "g1, g2 and g5; not g3 (out of target) nor g4 (pending)");
    assert_eq!(every.managed_groups, 3);
    assert_eq!(store.scoped_links("nobody", &[], Some(&asked)).await.unwrap().managed_groups, 0);

    let by_id = store.group_links_by_duo_ids("p", &["DG3".into(), "DG5".into(), "DG9".into()]).await.unwrap();
    let want: Vec<_> = whole.groups.iter().filter(|l| ["g3", "g5"].contains(&l.group_uuid.as_str())).cloned().collect();
    assert_eq!(by_id, want, "DG9 is another provisioner's");
});

registry_test!(a_selection_seen_from_subjects_and_groups_is_the_whole_selection_restricted_to_the_groups_they_reach, |store| {
    for s in ["u1", "u2", "u3"] {
        add_subject(&*store, s).await;
    }
    for grp in ["app:duo:all", "app:duo:staff", "app:duo:quiet", "app:duo:private:secret", "lib:people", "lib:deep"] {
        add_group(&*store, grp).await;
    }
    store.add_member(&g("app:duo:staff"), &subject("u1")).await.unwrap();
    store.add_member(&g("lib:deep"), &subject("u2")).await.unwrap();
    store.add_member(&g("lib:people"), &nested("lib:deep")).await.unwrap();
    store.add_member(&g("app:duo:all"), &nested("app:duo:staff")).await.unwrap();
    store.add_member(&g("app:duo:all"), &nested("lib:people")).await.unwrap();
    store.add_member(&g("app:duo:private:secret"), &subject("u2")).await.unwrap();
    store.add_member(&g("app:duo:quiet"), &subject("u3")).await.unwrap();
    let marker = |path: &str, provision: bool| Marker { provisioner: "duoTest".into(), target: MarkerTarget::Folder(FolderPath::parse(path).unwrap()), scope: MarkerScope::Sub, provision };
    store.assign_marker(&marker("app:duo", true)).await.unwrap();
    store.assign_marker(&marker("app:duo:private", false)).await.unwrap();
    let whole = store.provisioner_selection("duoTest").await.unwrap();
    let uuid = |name: &str| whole.groups.iter().find(|pg| pg.group.name.as_str() == name).map(|pg| pg.group.uuid.clone()).unwrap_or_else(|| format!("unselected {name}"));
    let secret = store.group(&g("app:duo:private:secret")).await.unwrap().unwrap().uuid;
    let names = |sel: &duoprov_model::ProvisionerSelection| sel.groups.iter().map(|pg| pg.group.name.to_string()).collect::<Vec<_>>();

    // u2 reaches app:duo:all through two levels of nesting and the excluded secret group
    // directly; the named quiet group is read though none of the subjects is in it.
    let scoped = store.scoped_group_selection("duoTest", &[key("u2")], &[uuid("app:duo:quiet"), secret.clone(), "no-such-uuid".into()], None).await.unwrap();
    assert_eq!(names(&scoped.selection), ["app:duo:all", "app:duo:quiet"], "the selected groups reached or named, by name; not the excluded one");
    let members: Vec<Vec<SubjectKey>> =
        scoped.selection.groups.iter().map(|pg| pg.members.iter().map(|i| scoped.selection.subjects[*i as usize].key()).collect()).collect();
    assert_eq!(members, vec![vec![key("u2")], vec![]], "members among the asked subjects only");
    // Each group read carries exactly the whole selection's members among the asked subjects.
    let asked = [key("u1"), key("u3")];
    let scoped = store.scoped_group_selection("duoTest", &asked, &[], None).await.unwrap();
    assert_eq!(names(&scoped.selection), ["app:duo:all", "app:duo:quiet", "app:duo:staff"]);
    for s in &scoped.selection.groups {
        let w = whole.groups.iter().find(|w| w.group.uuid == s.group.uuid).unwrap();
        let got: Vec<SubjectKey> = s.members.iter().map(|i| scoped.selection.subjects[*i as usize].key()).collect();
        let want: Vec<SubjectKey> = w.members.iter().map(|i| whole.subjects[*i as usize].key()).filter(|k| asked.contains(k)).collect();
        assert_eq!(got, want, "members of {}", w.group.name);
    }
    let none = store.scoped_group_selection("nobody", &[key("u1")], &[uuid("app:duo:quiet")], None).await.unwrap();
    assert!(none.selection.groups.is_empty() && none.selection.subjects.is_empty());
});

registry_test!(recorded_group_names_are_replaced_under_their_fingerprint_found_by_name_and_counted, |store| {
    let row = |uuid: &str, name: Option<&str>| RenderedGroup { group_uuid: uuid.into(), name: name.map(str::to_owned) };
    assert_eq!(store.rendered_groups_fingerprint("p").await.unwrap(), None);
    assert_eq!(store.rendered_group_count("p").await.unwrap(), 0);
    let counts = store.replace_rendered_groups("p", "f1", &[row("a", Some("Staff")), row("b", Some("staff")), row("c", Some("Staff")), row("d", None)]).await.unwrap();
    assert_eq!((counts.written, counts.removed), (4, 0));
    assert_eq!(store.rendered_groups_fingerprint("p").await.unwrap().as_deref(), Some("f1"));
    assert_eq!(store.rendered_group_count("p").await.unwrap(), 4, "every selected group counts, held ones included");
    assert_eq!(store.rendered_group_holders("p", &["Staff".into()]).await.unwrap(), vec![row("a", Some("Staff")), row("c", Some("Staff"))], "names compare exactly");
    assert!(store.rendered_group_holders("other", &["Staff".into()]).await.unwrap().is_empty(), "rows are per provisioner");
    // Unchanged rows are not written again; a changed one is, a gone group's row is removed.
    let counts = store.replace_rendered_groups("p", "f2", &[row("a", Some("Staff")), row("b", None), row("d", Some("Ops"))]).await.unwrap();
    assert_eq!((counts.written, counts.removed), (2, 1));
    assert_eq!(store.rendered_groups_fingerprint("p").await.unwrap().as_deref(), Some("f2"));
    assert_eq!(store.rendered_group_count("p").await.unwrap(), 3);
    assert_eq!(store.rendered_group_holders("p", &["Staff".into(), "Ops".into(), "staff".into()]).await.unwrap(), vec![row("a", Some("Staff")), row("d", Some("Ops"))]);
});

/// Two processes on one SQLite registry (the daemon and a `duoprov` command, or a source mirror):
/// recording rendered usernames reads the recorded rows before it writes. Begun as a plain
/// deferred transaction, that read could not become a write once the other connection had
/// committed, and the run failed at once with "database is locked". The write transaction now
/// waits for the other writer, as every registry write does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_usernames_waits_for_another_connections_write_on_sqlite_instead_of_failing() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let url = format!("sqlite://{}", path.display());
    let store: std::sync::Arc<dyn duoprov_registry::Store> = std::sync::Arc::from(duoprov_registry::open(&url, &duoprov_registry::OpenOptions::default()).await.unwrap());
    let row = |id: &str, name: &str| RenderedName { subject: key(id), username_key: name.into() };
    store.replace_rendered("p", "f1", &[row("a", "ann"), row("b", "bob")]).await.unwrap();

    // Another connection holds the writer, with a write not yet committed.
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
    sqlx::query("INSERT INTO rendered_state (provisioner, fingerprint, at_ms) VALUES ('q', 'f9', 0)").execute(&mut other).await.unwrap();

    let writer = {
        let store = store.clone();
        tokio::spawn(async move { store.replace_rendered("p", "f1", &[row("a", "ann"), row("b", "bobby")]).await })
    };
    // Let the recording start while the other write is open (its read of the recorded rows sees
    // the last commit), then commit the other write under it.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();

    let counts = writer.await.unwrap().expect("recording the usernames waits for the other writer instead of failing");
    assert_eq!((counts.written, counts.removed), (1, 0));
    assert_eq!(store.rendered_of("p", &[key("b")]).await.unwrap(), vec![row("b", "bobby")]);
    assert_eq!(store.rendered_fingerprint("q").await.unwrap().as_deref(), Some("f9"), "the other connection's write is kept");
}
