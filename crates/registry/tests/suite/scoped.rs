//! The scoped reads of an incremental run ([`duoprov_registry::ScopedReads`]): the selection seen
//! from a few subjects equals the whole selection restricted to them, nesting, exclusions and
//! eligibility included; the recorded usernames are replaced, rewritten per subject under a
//! matching fingerprint only, and found by username.

use crate::registry_test;
use crate::support::*;
use duoprov_model::{FolderPath, Marker, MarkerScope, MarkerTarget, SubjectKey};
use duoprov_registry::RenderedName;

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

    let scoped = store.scoped_links("p", &[key("c"), key("d"), key("nobody")]).await.unwrap();
    assert_eq!(scoped.links.groups, whole.groups, "every group link");
    let want: Vec<_> = whole.users.iter().filter(|l| ["c", "d"].contains(&l.subject.id.as_str())).cloned().collect();
    assert_eq!(scoped.links.users, want, "the asked subjects' user links only");
    assert_eq!(scoped.links.disabled_by_us, whole.disabled_by_us, "c is disabled and asked");
    assert_eq!(scoped.managed_users, whole.users.iter().filter(|l| l.in_target && l.duo_user_id.is_some()).count());
    assert_eq!(scoped.managed_users, 3, "a, b and e; not c (out of target) nor d (pending)");
    assert_eq!(scoped.first_linked_user, whole.users.iter().find_map(|l| l.duo_user_id.clone()));
    assert_eq!(scoped.first_linked_user.as_deref(), Some("DU1"));

    let none = store.scoped_links("p", &[key("a")]).await.unwrap();
    assert!(none.links.disabled_by_us.is_empty(), "c was not asked");
    let empty = store.scoped_links("nobody", &[key("a")]).await.unwrap();
    assert!(empty.links.users.is_empty() && empty.managed_users == 0 && empty.first_linked_user.is_none());

    let by_id = store.user_links_by_duo_ids("p", &["DU3".into(), "DU5".into(), "DU9".into()]).await.unwrap();
    let want: Vec<_> = whole.users.iter().filter(|l| ["c", "e"].contains(&l.subject.id.as_str())).cloned().collect();
    assert_eq!(by_id, want, "DU9 is another provisioner's");
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
