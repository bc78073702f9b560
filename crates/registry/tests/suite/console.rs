//! The console's paged reads on both backends: link counts by state, a page of group or user links
//! cut in SQL with its total and a search that takes `_` literally, a page of Duo users under the
//! report's filters, the run log by page and by id, and group names by uuid.

use crate::registry_test;
use crate::support::person;
use duoprov_model::{EpochMillis, GroupName, SubjectKey, SubjectPatch};
use duoprov_registry::{
    DuoUserFilter, DuoUserRow, GroupState, LinkKind, MembershipState, NodeAttrs, RunKind, RunStatus, StateError, UserState,
};

fn duo_user(id: &str, name: &str, enrolled: bool) -> DuoUserRow {
    DuoUserRow {
        config_id: "duoTest".into(),
        user_id: id.into(),
        aliases: None,
        phones: None,
        is_push_enabled: None,
        email: None,
        first_name: None,
        last_name: None,
        is_enrolled: Some(if enrolled { "T" } else { "F" }.into()),
        last_directory_sync: None,
        notes: None,
        real_name: None,
        status: Some("active".into()),
        user_name: name.into(),
        created_at: None,
        last_login_time: None,
        // The page reads the method counts back too (NULL for the unenrolled: unknown).
        auth_methods: duoprov_registry::AuthMethodCounts {
            sms_phone_count: enrolled.then_some(1),
            webauthn_count: enrolled.then_some(0),
            ..Default::default()
        },
    }
}

registry_test!(the_console_reads_links_duo_users_and_runs_a_page_at_a_time, |store| {
    let mut uuids = Vec::new();
    for name in ["app:duo:a_b", "app:duo:axb", "app:duo:other"] {
        let (g, _) = store.add_group(&GroupName::parse(name).unwrap(), &NodeAttrs::default(), true).await.unwrap();
        uuids.push(g.uuid);
    }
    for id in ["ann", "bob", "cid"] {
        let patch = SubjectPatch { login_id: Some(Some(id.to_owned())), ..person(id) };
        store.upsert_subject(&SubjectKey::local(id), &patch).await.unwrap();
    }
    let now = EpochMillis(1_796_007_540_000);
    let failed = || Some(StateError { code: "LEN".into(), message: "too long".into() });
    let groups: Vec<GroupState> = uuids
        .iter()
        .enumerate()
        .map(|(i, u)| GroupState {
            pending_name: None,
            pending_at: None,
            group_uuid: u.clone(),
            duo_group_id: (i != 2).then(|| format!("DG{i}")),
            in_target: true,
            created_by_us: i == 0,
            provisioned_at: Some(now),
            error: if i == 2 { failed() } else { None },
        })
        .collect();
    let users: Vec<UserState> = ["ann", "bob", "cid"]
        .iter()
        .map(|id| UserState {
            pending_name: None,
            pending_at: None,
            subject: SubjectKey::local(*id),
            duo_user_id: Some(format!("DU{id}")),
            in_target: *id != "cid",
            created_by_us: true,
            provisioned_at: Some(now),
            error: None,
        })
        .collect();
    let memberships = vec![MembershipState { group_uuid: uuids[0].clone(), subject: SubjectKey::local("ann"), in_target: true, provisioned_at: Some(now), error: failed() }];
    store.record("duoTest", &groups, &users, &memberships).await.unwrap();

    let counts = store.link_counts("duoTest").await.unwrap();
    let by_kind: Vec<(&str, i64, i64, i64, i64, i64)> = counts.iter().map(|c| (c.kind.as_str(), c.total, c.in_target, c.linked, c.created_by_us, c.in_error)).collect();
    assert_eq!(by_kind, [("groups", 3, 3, 2, 1, 1), ("users", 3, 2, 3, 3, 0), ("memberships", 1, 1, 1, 0, 1)]);
    assert_eq!(store.link_counts("nobody").await.unwrap()[0].total, 0);

    // `_` is a character, not a wildcard: only a_b matches.
    let page = store.link_page("duoTest", LinkKind::Groups, Some("A_B"), 0, 50).await.unwrap();
    assert_eq!((page.total, page.rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>()), (1, vec!["app:duo:a_b"]));
    let all = store.link_page("duoTest", LinkKind::Groups, None, 0, 50).await.unwrap();
    assert_eq!(all.rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["app:duo:a_b", "app:duo:axb", "app:duo:other"]);
    assert_eq!(all.rows[2].error_code.as_deref(), Some("LEN"));
    assert_eq!(all.rows[2].duo_id, None);
    // Users by `source:id` or login, two to a page.
    let first = store.link_page("duoTest", LinkKind::Users, Some(""), 0, 2).await.unwrap();
    let second = store.link_page("duoTest", LinkKind::Users, None, 2, 2).await.unwrap();
    assert_eq!((first.total, second.total), (3, 3));
    let names: Vec<&str> = first.rows.iter().chain(&second.rows).map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["local:ann", "local:bob", "local:cid"]);
    assert_eq!(first.rows[0].login.as_deref(), Some("ann"));
    let bob = store.link_page("duoTest", LinkKind::Users, Some("BO"), 0, 50).await.unwrap();
    assert_eq!(bob.rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["local:bob"]);

    // Duo users: the report's filters, cut in SQL, sorted by username.
    let rows = vec![duo_user("DU3", "carol", false), duo_user("DU1", "alice", true), duo_user("DU2", "bob", false), duo_user("DU4", "dave", false)];
    store.replace_duo_users("duoTest", &rows).await.unwrap();
    let not_enrolled = DuoUserFilter { not_enrolled: true, ..Default::default() };
    let page = store.duo_user_page("duoTest", &not_enrolled, 1, 1).await.unwrap();
    assert_eq!((page.total, page.rows.iter().map(|r| r.user_name.as_str()).collect::<Vec<_>>()), (3, vec!["carol"]));
    let page = store.duo_user_page("duoTest", &DuoUserFilter::default(), 0, 10).await.unwrap();
    assert_eq!(page.rows.iter().map(|r| r.user_name.as_str()).collect::<Vec<_>>(), ["alice", "bob", "carol", "dave"]);

    // Runs by page and by id; group names by uuid.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = store.begin_run("duoTest", RunKind::Full, false).await.unwrap();
        store.finish_run(id, RunStatus::Succeeded, &serde_json::json!({"read_calls": 1}), &serde_json::json!([]), None).await.unwrap();
        ids.push(id);
    }
    let newest = store.run_page("duoTest", None, 2).await.unwrap();
    assert_eq!(newest.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[2], ids[1]]);
    let older = store.run_page("duoTest", Some(ids[1]), 2).await.unwrap();
    assert_eq!(older.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[0]]);
    let run = store.run_by_id(ids[1]).await.unwrap().expect("the run");
    assert_eq!((run.provisioner.as_str(), run.counts["read_calls"].as_i64()), ("duoTest", Some(1)));
    assert!(store.run_by_id(ids[2] + 100).await.unwrap().is_none());
    let names = store.group_names(&[uuids[1].clone(), "no-such-uuid".into()]).await.unwrap();
    assert_eq!(names.len(), 1);
    assert_eq!(names[&uuids[1]], "app:duo:axb");
});

registry_test!(console_actions_and_approvals_are_kept_in_the_registry_and_an_approval_is_taken_once, |store| {
    assert_eq!(store.pending_approval("duoTest").await.unwrap(), None);
    store.record_console_action("duoTest", "loopback", "full-sync", "full sync requested").await.unwrap();
    store.save_approval("duoTest", "abc123", "console token").await.unwrap();
    // A second approval replaces the first: one digest waits per provisioner.
    store.save_approval("duoTest", "def456", "console token").await.unwrap();
    store.record_console_action("other", "loopback", "retry", "retry of subject local:ann requested").await.unwrap();

    // A second store on the same registry (a restarted daemon) reads them back.
    let pending = store.pending_approval("duoTest").await.unwrap().expect("the approval waits");
    assert_eq!((pending.digest.as_str(), pending.who.as_str()), ("def456", "console token"));
    let actions = store.console_actions("duoTest", 10).await.unwrap();
    let seen: Vec<(&str, &str, &str)> = actions.iter().map(|a| (a.who.as_str(), a.action.as_str(), a.what.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("console token", "approve", "approved the removals with digest def456"),
            ("console token", "approve", "approved the removals with digest abc123"),
            ("loopback", "full-sync", "full sync requested"),
        ],
        "newest first, this provisioner's only"
    );
    assert_eq!(store.console_actions("duoTest", 1).await.unwrap().len(), 1);
    // In the audit trail, as the console's, with the approved digest.
    let entries = store.audit_entries(&duoprov_registry::AuditFilter { provisioner: Some("duoTest".into()), ..Default::default() }).await.unwrap();
    let approvals: Vec<(&str, Option<&str>)> = entries.iter().filter(|e| e.action == "approve").map(|e| (e.actor.as_str(), e.approval.as_deref())).collect();
    assert_eq!(approvals, [("console:console token", Some("abc123")), ("console:console token", Some("def456"))]);
    assert!(entries.iter().all(|e| e.object_kind == "console"));

    // One run takes it; the next finds none.
    assert_eq!(store.take_approval("duoTest").await.unwrap().map(|a| a.digest), Some("def456".to_owned()));
    assert_eq!(store.take_approval("duoTest").await.unwrap(), None);
    assert_eq!(store.pending_approval("duoTest").await.unwrap(), None);

    // What triggered each run, read back by id.
    let a = store.begin_run("duoTest", RunKind::Full, false).await.unwrap();
    let b = store.begin_run("duoTest", RunKind::Object, false).await.unwrap();
    store.set_run_trigger(b, "console: retry of subject local:ann by loopback").await.unwrap();
    let triggers = store.run_triggers(&[a, b]).await.unwrap();
    assert_eq!(triggers.len(), 1, "a run without a recorded trigger has none");
    assert_eq!(triggers[&b], "console: retry of subject local:ann by loopback");
});

registry_test!(keyset_pages_of_user_links_hold_the_same_rows_as_offset_pages_across_page_boundaries, |store| {
    use duoprov_registry::Cursor;
    let now = EpochMillis(1_796_007_540_000);
    // Eight links: two sources, one subject gone from the registry, logins unlike the ids.
    let keys: Vec<SubjectKey> = ["ann", "bob", "bea", "cid", "dan", "eve", "fay"].iter().map(|id| SubjectKey::local(*id)).chain([SubjectKey::new("ldap", "u100")]).collect();
    for k in &keys {
        if k.id != "eve" {
            let login = if k.source == "ldap" { "Zed.Smith".to_owned() } else { format!("{}.login", k.id) };
            let patch = SubjectPatch { login_id: Some(Some(login)), ..person(&k.id) };
            store.upsert_subject(k, &patch).await.unwrap();
        }
    }
    let users: Vec<UserState> = keys
        .iter()
        .map(|k| UserState {
            pending_name: None,
            pending_at: None,
            subject: k.clone(),
            duo_user_id: Some(format!("DU{}", k.id)),
            in_target: true,
            created_by_us: true,
            provisioned_at: Some(now),
            error: (k.id == "cid").then(|| StateError { code: "ERR".into(), message: "refused".into() }),
        })
        .collect();
    store.record("duoTest", &[], &users, &[]).await.unwrap();
    store.record("other", &[], &users[..2], &[]).await.unwrap();

    let mut by_offset = Vec::new();
    for page in 0..3 {
        by_offset.push(store.link_page("duoTest", LinkKind::Users, None, page * 3, 3).await.unwrap().rows);
    }
    let first = store.user_link_page("duoTest", None, &Cursor::First, 3).await.unwrap();
    assert_eq!((first.total, first.more_before, first.more_after), (8, false, true));
    let key_of = |name: &str| {
        let (source, id) = name.split_once(':').unwrap();
        SubjectKey::new(source, id)
    };
    let second = store.user_link_page("duoTest", None, &Cursor::After(key_of(&first.rows[2].name)), 3).await.unwrap();
    let third = store.user_link_page("duoTest", None, &Cursor::After(key_of(&second.rows[2].name)), 3).await.unwrap();
    assert_eq!([first.rows.clone(), second.rows.clone(), third.rows.clone()], [by_offset[0].clone(), by_offset[1].clone(), by_offset[2].clone()], "the same rows, link for link");
    assert_eq!((third.rows.len(), third.more_after), (2, false), "the last page says nothing follows");
    assert_eq!(first.rows[0].name, "ldap:u100");
    assert!(third.rows.iter().any(|r| r.name == "local:eve" && r.login.is_none()), "a link whose subject is gone is listed, without a login");
    // Back from the third page: the second again.
    let back = store.user_link_page("duoTest", None, &Cursor::Before(key_of(&third.rows[0].name)), 3).await.unwrap();
    assert_eq!((back.rows, back.more_before, back.more_after), (second.rows.clone(), true, true));
    let back = store.user_link_page("duoTest", None, &Cursor::Before(key_of(&second.rows[0].name)), 3).await.unwrap();
    assert_eq!((back.rows, back.more_before), (first.rows.clone(), false));

    // A search by a prefix of the login or the id, ignoring case; or SOURCE:PREFIX.
    let names = |p: &duoprov_registry::KeyPage| p.rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    let b = store.user_link_page("duoTest", Some("B"), &Cursor::First, 50).await.unwrap();
    assert_eq!((b.total, names(&b)), (2, vec!["local:bea".to_owned(), "local:bob".to_owned()]));
    let b1 = store.user_link_page("duoTest", Some("b"), &Cursor::First, 1).await.unwrap();
    let b2 = store.user_link_page("duoTest", Some("b"), &Cursor::After(key_of(&b1.rows[0].name)), 1).await.unwrap();
    assert_eq!((names(&b1), names(&b2), b2.more_after), (vec!["local:bea".to_owned()], vec!["local:bob".to_owned()], false));
    let zed = store.user_link_page("duoTest", Some("zed.s"), &Cursor::First, 50).await.unwrap();
    assert_eq!(names(&zed), ["ldap:u100"], "by login");
    let ldap = store.user_link_page("duoTest", Some("LDAP:U1"), &Cursor::First, 50).await.unwrap();
    assert_eq!(names(&ldap), ["ldap:u100"], "by source and id");
    let none = store.user_link_page("duoTest", Some("ob"), &Cursor::First, 50).await.unwrap();
    assert_eq!((none.total, none.rows.len()), (0, 0), "a prefix, not a substring");
    let other = store.user_link_page("other", None, &Cursor::First, 50).await.unwrap();
    assert_eq!(other.total, 2, "another provisioner's links are its own");

    assert_eq!(store.links_in_error("duoTest").await.unwrap(), 1);
    assert_eq!(store.links_in_error("nobody").await.unwrap(), 0);
});

/// The counts the links themselves give: every group or user link read back a page at a time.
async fn counted_from_rows(store: &dyn duoprov_registry::Store, provisioner: &str, kind: LinkKind) -> (i64, i64, i64, i64, i64) {
    let rows = store.link_page(provisioner, kind, None, 0, 10_000).await.unwrap().rows;
    let n = |f: &dyn Fn(&duoprov_registry::LinkRow) -> bool| rows.iter().filter(|r| f(r)).count() as i64;
    (rows.len() as i64, n(&|r| r.in_target), n(&|r| r.duo_id.is_some()), n(&|r| r.created_by_us), n(&|r| r.error_code.is_some()))
}

registry_test!(link_counts_kept_with_the_links_stay_exact_through_inserts_updates_and_forgets, |store| {
    let mut uuids = Vec::new();
    for name in ["app:duo:a", "app:duo:b", "app:duo:c"] {
        let (g, _) = store.add_group(&GroupName::parse(name).unwrap(), &NodeAttrs::default(), true).await.unwrap();
        uuids.push(g.uuid);
    }
    let now = EpochMillis(1_796_007_540_000);
    let failed = || Some(StateError { code: "ERR".into(), message: "refused".into() });
    let group = |i: usize, linked: bool, error: bool| GroupState {
        pending_name: None,
        pending_at: None,
        group_uuid: uuids[i].clone(),
        duo_group_id: linked.then(|| format!("DG{i}")),
        in_target: true,
        created_by_us: i != 1,
        provisioned_at: linked.then_some(now),
        error: if error { failed() } else { None },
    };
    let user = |id: &str, in_target: bool, error: bool| UserState {
        pending_name: None,
        pending_at: None,
        subject: SubjectKey::local(id),
        duo_user_id: Some(format!("DU{id}")),
        in_target,
        created_by_us: id != "bob",
        provisioned_at: Some(now),
        error: if error { failed() } else { None },
    };
    let membership = |g: usize, id: &str, provisioned: bool, error: bool| MembershipState {
        group_uuid: uuids[g].clone(),
        subject: SubjectKey::local(id),
        in_target: true,
        provisioned_at: provisioned.then_some(now),
        error: if error { failed() } else { None },
    };
    let kinds = |c: &[duoprov_registry::LinkCounts]| c.iter().map(|c| (c.total, c.in_target, c.linked, c.created_by_us, c.in_error)).collect::<Vec<_>>();
    let check = |what: &'static str, memberships: (i64, i64, i64, i64, i64)| {
        let store = &store;
        async move {
            let counts = kinds(&store.link_counts("duoTest").await.unwrap());
            let groups = counted_from_rows(&**store, "duoTest", LinkKind::Groups).await;
            let users = counted_from_rows(&**store, "duoTest", LinkKind::Users).await;
            assert_eq!(counts, [groups, users, memberships], "{what}: the kept counts are what the links give");
        }
    };

    // Inserts.
    store.record("duoTest", &[group(0, true, false), group(1, false, true)], &[user("ann", true, false), user("bob", true, true), user("cid", false, false)], &[
        membership(0, "ann", true, false),
        membership(0, "bob", false, true),
        membership(1, "ann", true, false),
    ])
    .await
    .unwrap();
    check("after the first record", (3, 3, 2, 0, 1)).await;
    assert_eq!(kinds(&store.link_counts("duoTest").await.unwrap())[0], (2, 2, 1, 1, 1));

    // Updates (upserts of the same keys): errors cleared and set, links made, a new row among them.
    store.record("duoTest", &[group(1, true, false), group(2, true, true)], &[user("bob", false, false), user("cid", true, true)], &[
        membership(0, "bob", true, false),
        membership(1, "ann", true, true),
        membership(2, "cid", true, false),
    ])
    .await
    .unwrap();
    check("after updates", (4, 4, 4, 0, 1)).await;

    // Another provisioner's links are counted apart.
    store.record("other", &[group(0, true, true)], &[user("ann", true, true)], &[membership(0, "ann", false, true)]).await.unwrap();
    check("after another provisioner's record", (4, 4, 4, 0, 1)).await;
    assert_eq!(kinds(&store.link_counts("other").await.unwrap()), [(1, 1, 1, 1, 1), (1, 1, 1, 1, 1), (1, 1, 0, 0, 1)]);

    // Forgets delete the links and, with a group or user, its memberships.
    store.forget_users("duoTest", &[SubjectKey::local("ann")]).await.unwrap();
    check("after forgetting a user", (2, 2, 2, 0, 0)).await;
    store.forget_groups("duoTest", &[uuids[2].clone()]).await.unwrap();
    check("after forgetting a group", (1, 1, 1, 0, 0)).await;
    store.forget_groups("duoTest", &uuids).await.unwrap();
    store.forget_users("duoTest", &[SubjectKey::local("bob"), SubjectKey::local("cid")]).await.unwrap();
    check("after forgetting everything", (0, 0, 0, 0, 0)).await;
    assert_eq!(kinds(&store.link_counts("other").await.unwrap())[2], (1, 1, 0, 0, 1), "the other provisioner's untouched");
});

registry_test!(a_group_search_finds_the_start_of_the_full_name_or_of_the_name_within_a_folder, |store| {
    let mut uuids = Vec::new();
    for name in ["app:duo:Staff_all", "app:duo:staffing", "app:duo:deep:staff", "app:duo:all-staff", "app:other:staff", "apps:x"] {
        let (g, _) = store.add_group(&GroupName::parse(name).unwrap(), &NodeAttrs::default(), true).await.unwrap();
        uuids.push(g.uuid);
    }
    let groups: Vec<GroupState> = uuids
        .iter()
        .take(5)
        .map(|u| GroupState { pending_name: None, pending_at: None, group_uuid: u.clone(), duo_group_id: None, in_target: true, created_by_us: true, provisioned_at: None, error: None })
        .collect();
    store.record("duoTest", &groups, &[], &[]).await.unwrap();
    store.record("other", &[GroupState { group_uuid: uuids[5].clone(), ..groups[0].clone() }], &[], &[]).await.unwrap();
    let found = |q: &'static str| {
        let store = &store;
        async move {
            let page = store.link_page("duoTest", LinkKind::Groups, Some(q), 0, 50).await.unwrap();
            assert_eq!(page.total, page.rows.len() as i64, "{q}: the total counts the same matches");
            page.rows.into_iter().map(|r| r.name).collect::<Vec<_>>()
        }
    };
    assert_eq!(found("STAFF").await, ["app:duo:Staff_all", "app:duo:deep:staff", "app:duo:staffing", "app:other:staff"], "the name within any folder, ignoring case");
    assert_eq!(found("staff_").await, ["app:duo:Staff_all"], "`_` is a character");
    assert_eq!(found("app:duo:d").await, ["app:duo:deep:staff"], "the start of the full name");
    assert_eq!(found("duo:staffi").await, ["app:duo:staffing"], "the start of the name within a folder's folder");
    assert!(found("aff").await.is_empty(), "a prefix, not a substring");
    assert!(found("app").await.len() == 5 && found("apps").await.is_empty(), "only this provisioner's links");
});

registry_test!(not_in_the_registry_by_the_recorded_usernames_follows_every_write_of_either_table, |store| {
    use duoprov_registry::{RenderedName, RenderedReportState};
    assert_eq!(store.rendered_report_state("duoTest").await.unwrap(), RenderedReportState::default());
    let rendered = |id: &str, key: &str| RenderedName { subject: SubjectKey::local(id), username_key: key.into() };
    store.replace_rendered("duoTest", "fp1", &[rendered("ann", "ann"), rendered("emi", "émile"), rendered("zoe", "zoë.x")]).await.unwrap();
    store.replace_rendered("other", "fp9", &[rendered("bob", "bob")]).await.unwrap();
    // Duo's usernames in any case, some beyond ASCII (compared by their lowercase form, as
    // clash detection does).
    let rows = vec![duo_user("DU1", "ANN", true), duo_user("DU2", "Émile", true), duo_user("DU3", "ZOË.X", false), duo_user("DU4", "bob", true), duo_user("DU5", "ÉMILIE", false)];
    store.replace_duo_users("duoTest", &rows).await.unwrap();
    let state = store.rendered_report_state("duoTest").await.unwrap();
    assert_eq!((state.fingerprint.as_deref(), state.unkeyed_duo_users), (Some("fp1"), 0));
    assert!(state.recorded_at_ms.is_some());
    let names = |page: duoprov_registry::Paged<DuoUserRow>| (page.total, page.rows.into_iter().map(|r| r.user_name).collect::<Vec<_>>());
    let not_rendered = DuoUserFilter { not_rendered_by: Some("duoTest".into()), ..Default::default() };
    assert_eq!(names(store.duo_user_page("duoTest", &not_rendered, 0, 50).await.unwrap()), (2, vec!["bob".to_owned(), "ÉMILIE".to_owned()]), "another provisioner's usernames do not count");
    let both = DuoUserFilter { not_enrolled: true, ..not_rendered.clone() };
    assert_eq!(names(store.duo_user_page("duoTest", &both, 0, 1).await.unwrap()), (1, vec!["ÉMILIE".to_owned()]));
    // A scoped run's update moves a username: the anti-join follows it.
    assert!(store.update_rendered("duoTest", "fp1", &[SubjectKey::local("emi")], &[rendered("emi", "émilie")]).await.unwrap());
    assert_eq!(names(store.duo_user_page("duoTest", &not_rendered, 0, 50).await.unwrap()), (2, vec!["bob".to_owned(), "Émile".to_owned()]));
    // Two subjects rendering to one username: the Duo user stays rendered until both are gone.
    assert!(store.update_rendered("duoTest", "fp1", &[], &[rendered("ann2", "ann")]).await.unwrap());
    assert!(store.update_rendered("duoTest", "fp1", &[SubjectKey::local("ann")], &[]).await.unwrap());
    assert_eq!(names(store.duo_user_page("duoTest", &not_rendered, 0, 50).await.unwrap()).0, 2, "ann2 still renders to ann");
    assert!(store.update_rendered("duoTest", "fp1", &[SubjectKey::local("ann2")], &[]).await.unwrap());
    assert_eq!(names(store.duo_user_page("duoTest", &not_rendered, 0, 50).await.unwrap()), (3, vec!["ANN".to_owned(), "bob".to_owned(), "Émile".to_owned()]));
    // A whole recording that renders bob, and a reload in which Duo renamed a user: each Duo
    // user's answer follows its own username.
    store.replace_rendered("duoTest", "fp1", &[rendered("bob", "bob"), rendered("emi", "émilie"), rendered("zoe", "zoë.x")]).await.unwrap();
    let mut renamed = rows.clone();
    renamed[3].user_name = "robert".into();
    store.replace_duo_users("duoTest", &renamed).await.unwrap();
    assert_eq!(names(store.duo_user_page("duoTest", &not_rendered, 0, 50).await.unwrap()), (3, vec!["ANN".to_owned(), "robert".to_owned(), "Émile".to_owned()]));
    store.replace_duo_users("duoTest", &rows).await.unwrap();
    assert_eq!(names(store.duo_user_page("duoTest", &not_rendered, 0, 50).await.unwrap()), (2, vec!["ANN".to_owned(), "Émile".to_owned()]));

    // Thousands missing (past the lookup by key): the same answer through the anti-join.
    let many: Vec<DuoUserRow> = (0..2_100).map(|i| DuoUserRow { config_id: "many".into(), ..duo_user(&format!("DM{i:05}"), &format!("U{i:05}"), i % 2 == 0) }).collect();
    store.replace_duo_users("many", &many).await.unwrap();
    store.replace_rendered("many", "fp1", &(0..2_100).filter(|i| i % 20 == 0).map(|i| rendered(&format!("s{i}"), &format!("u{i:05}"))).collect::<Vec<_>>()).await.unwrap();
    let not_rendered = DuoUserFilter { not_rendered_by: Some("many".into()), ..Default::default() };
    let page = names(store.duo_user_page("many", &not_rendered, 19, 2).await.unwrap());
    assert_eq!(page, (1_995, vec!["U00021".to_owned(), "U00022".to_owned()]), "U00020 renders from a recorded subject");
});
