//! Sync state: links round-trip, first/last provisioned times, errors set and cleared, the run log,
//! the checkpoint and retry list, the runner lock. The `registry_test!(sync …)` tests are the
//! `SyncStore` contract: they run on SQLite, PostgreSQL and the in-memory store alike.

use crate::registry_test;
use duoprov_model::{EpochMillis, SubjectKey};
use duoprov_registry::{GroupState, MembershipState, RunKind, RunStatus, StateError, UserState};
use serde_json::json;

registry_test!(sync links_round_trip_and_keep_their_history, |store| {
    let g = |id: Option<&str>, at: Option<EpochMillis>, error: Option<StateError>| GroupState {
        pending_name: None,
        pending_at: None,
        group_uuid: "uuid-1".into(),
        duo_group_id: id.map(str::to_owned),
        in_target: id.is_some(),
        created_by_us: true,
        provisioned_at: at,
        error,
    };
    // A create intended before the call…
    store.record("duoTest", &[g(None, None, None)], &[], &[]).await.unwrap();
    let links = store.links("duoTest").await.unwrap();
    assert_eq!(links.groups[0].duo_group_id, None);
    assert!(links.groups[0].created_by_us);
    // …confirmed after it.
    store.record("duoTest", &[g(Some("DGAAAAAAAAAAAAAAAAAA"), Some(EpochMillis(100)), None)], &[], &[]).await.unwrap();
    store.record("duoTest", &[g(Some("DGAAAAAAAAAAAAAAAAAA"), Some(EpochMillis(200)), Some(StateError { code: "ERR".into(), message: "HTTP 500".into() }))], &[], &[]).await.unwrap();
    let errors = store.object_errors("duoTest", 10).await.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].code.as_str(), errors[0].message.as_str()), ("ERR", "HTTP 500"));
    store.record("duoTest", &[g(Some("DGAAAAAAAAAAAAAAAAAA"), None, None)], &[], &[]).await.unwrap();
    assert!(store.object_errors("duoTest", 10).await.unwrap().is_empty(), "a success clears the error");
    let links = store.links("duoTest").await.unwrap();
    assert_eq!(links.groups[0].duo_group_id.as_deref(), Some("DGAAAAAAAAAAAAAAAAAA"));
    assert!(store.links("other").await.unwrap().groups.is_empty(), "links are per provisioner");

    let key = SubjectKey::local("mchyzer");
    let user = UserState { pending_name: None, pending_at: None, subject: key.clone(), duo_user_id: Some("DUAAAAAAAAAAAAAAAAAA".into()), in_target: true, created_by_us: false, provisioned_at: Some(EpochMillis(5)), error: None };
    let membership = MembershipState { group_uuid: "uuid-1".into(), subject: key.clone(), in_target: true, provisioned_at: Some(EpochMillis(5)), error: None };
    store.record("duoTest", &[], &[user], &[membership]).await.unwrap();
    let links = store.links("duoTest").await.unwrap();
    assert_eq!(links.users.len(), 1);
    assert!(!links.users[0].created_by_us);
    store.forget_users("duoTest", &[key]).await.unwrap();
    store.forget_groups("duoTest", &["uuid-1".into()]).await.unwrap();
    let links = store.links("duoTest").await.unwrap();
    assert!(links.users.is_empty() && links.groups.is_empty());
});

registry_test!(sync an_intent_over_an_existing_link_clears_the_stale_duo_id_and_keeps_the_pending_name, |store| {
    let linked = |id: &str| GroupState {
        pending_name: None,
        pending_at: None,
        group_uuid: "uuid-1".into(),
        duo_group_id: Some(id.into()),
        in_target: true,
        created_by_us: true,
        provisioned_at: Some(EpochMillis(100)),
        error: None,
    };
    let intent = GroupState {
        pending_name: Some("staff".into()),
        pending_at: Some(EpochMillis(1_000)),
        group_uuid: "uuid-1".into(),
        duo_group_id: None,
        in_target: false,
        created_by_us: true,
        provisioned_at: None,
        error: None,
    };
    // A linked group, deleted in Duo, is re-created: the intent replaces the stale id.
    store.record("duoTest", &[linked("DGSTALE0000000000001")], &[], &[]).await.unwrap();
    store.record("duoTest", std::slice::from_ref(&intent), &[], &[]).await.unwrap();
    let l = store.links("duoTest").await.unwrap().groups.remove(0);
    assert_eq!((l.duo_group_id, l.pending_name.as_deref(), l.pending_at, l.created_by_us), (None, Some("staff"), Some(EpochMillis(1_000)), true));
    // A failure record of unknown outcome (the intent again, with its error) keeps it.
    store.record("duoTest", &[GroupState { error: Some(StateError { code: "ERR".into(), message: "HTTP 503".into() }), ..intent.clone() }], &[], &[]).await.unwrap();
    let l = store.links("duoTest").await.unwrap().groups.remove(0);
    assert_eq!((l.duo_group_id, l.pending_name.as_deref(), l.pending_at), (None, Some("staff"), Some(EpochMillis(1_000))));
    // A refused create clears the intent: no id, no name, nothing owned.
    let refused = GroupState { pending_name: None, pending_at: None, duo_group_id: None, created_by_us: false, error: Some(StateError { code: "ERR".into(), message: "HTTP 403".into() }), ..intent.clone() };
    store.record("duoTest", &[refused], &[], &[]).await.unwrap();
    let l = store.links("duoTest").await.unwrap().groups.remove(0);
    assert_eq!((l.duo_group_id, l.pending_name, l.pending_at, l.created_by_us), (None, None, None, false));
    // Confirmed: the new id is recorded and the intent goes.
    store.record("duoTest", std::slice::from_ref(&intent), &[], &[]).await.unwrap();
    store.record("duoTest", &[linked("DGNEW00000000000001")], &[], &[]).await.unwrap();
    let l = store.links("duoTest").await.unwrap().groups.remove(0);
    assert_eq!((l.duo_group_id.as_deref(), l.pending_name, l.pending_at), (Some("DGNEW00000000000001"), None, None));

    // Users follow the same rules.
    let key = SubjectKey::local("jdoe");
    let user = |id: Option<&str>, pending: Option<&str>| UserState {
        pending_name: pending.map(str::to_owned),
        pending_at: pending.map(|_| EpochMillis(2_000)),
        subject: key.clone(),
        duo_user_id: id.map(str::to_owned),
        in_target: id.is_some(),
        created_by_us: true,
        provisioned_at: None,
        error: None,
    };
    store.record("duoTest", &[], &[user(Some("DUSTALE0000000000001"), None)], &[]).await.unwrap();
    store.record("duoTest", &[], &[user(None, Some("JDoe"))], &[]).await.unwrap();
    let l = store.links("duoTest").await.unwrap().users.remove(0);
    assert_eq!((l.duo_user_id, l.pending_name.as_deref(), l.pending_at), (None, Some("JDoe"), Some(EpochMillis(2_000))));
});

registry_test!(sync runs_are_logged_newest_first, |store| {
    let a = store.begin_run("duoTest", RunKind::Full, false).await.unwrap();
    store.finish_run(a, RunStatus::Succeeded, &json!({"created": 3}), &json!({"apply_ms": 10}), None).await.unwrap();
    let b = store.begin_run("duoTest", RunKind::Full, true).await.unwrap();
    let runs = store.runs(Some("duoTest"), 10).await.unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b, a]);
    assert_eq!(runs[0].status, RunStatus::Running);
    assert!(runs[0].dry_run);
    assert_eq!(runs[1].counts["created"], 3);
    assert!(runs[1].finished_at_ms.is_some());
    let c = store.begin_run("duoTest", RunKind::Full, false).await.unwrap();
    let runs = store.runs(Some("duoTest"), 10).await.unwrap();
    assert_eq!((runs[0].id, runs[0].status.as_str()), (c, "running"));
    assert_eq!((runs[1].id, runs[1].status.as_str()), (b, "interrupted"), "a run left running was interrupted");
});

registry_test!(sync checkpoint_and_retry_list_settle_together, |store| {
    use duoprov_registry::{Backoff, RetryTarget, Settlement};
    assert_eq!(store.checkpoint("duoTest").await.unwrap(), None, "no checkpoint before the first finished sync");
    let m = RetryTarget::Membership { group_uuid: "uuid-1".into(), subject: SubjectKey::local("late") };
    let g = RetryTarget::Group { group_uuid: "uuid-2".into() };
    let backoff = Backoff { base_ms: 1_000, max_ms: 3_000 };
    let settle = |checkpoint: Option<i64>, kind: RunKind, attempted: Vec<RetryTarget>, failed: Vec<(RetryTarget, String)>, now_ms: i64| {
        let store = &store;
        async move {
            let s = Settlement { kind, checkpoint, clear_all: kind == RunKind::Full, attempted: &attempted, failed: &failed, now_ms: EpochMillis(now_ms), backoff };
            store.settle("duoTest", &s).await.unwrap();
        }
    };
    settle(Some(5), RunKind::Incremental, vec![], vec![(m.clone(), "HTTP 500".into()), (g.clone(), "HTTP 503".into())], 10_000).await;
    let cp = store.checkpoint("duoTest").await.unwrap().unwrap();
    assert_eq!((cp.last_seq, cp.last_incremental_ms, cp.last_full_ms), (5, Some(EpochMillis(10_000)), None));
    let r = store.retries("duoTest", None).await.unwrap();
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|r| r.attempts == 1 && r.next_at_ms == EpochMillis(11_000)), "{r:?}");
    assert!(store.retries("duoTest", Some(EpochMillis(10_999))).await.unwrap().is_empty(), "nothing due before the schedule");
    assert_eq!(store.retries("duoTest", Some(EpochMillis(11_000))).await.unwrap().len(), 2);
    // Failing again doubles the wait, up to the maximum; the checkpoint never moves back.
    settle(Some(3), RunKind::Incremental, vec![m.clone()], vec![(m.clone(), "HTTP 500 again".into())], 20_000).await;
    settle(None, RunKind::Incremental, vec![m.clone()], vec![(m.clone(), "HTTP 500 again".into())], 30_000).await;
    settle(None, RunKind::Incremental, vec![m.clone()], vec![(m.clone(), "HTTP 500 again".into())], 40_000).await;
    let r = store.retries("duoTest", None).await.unwrap();
    let row = r.iter().find(|r| r.target == m).unwrap();
    assert_eq!((row.attempts, row.next_at_ms, row.last_error.as_str()), (4, EpochMillis(43_000), "HTTP 500 again"));
    assert_eq!(store.checkpoint("duoTest").await.unwrap().unwrap().last_seq, 5);
    // Attempted without failing: cleared; others untouched; other provisioners unaffected.
    settle(Some(9), RunKind::Incremental, vec![m.clone()], vec![], 50_000).await;
    let r = store.retries("duoTest", None).await.unwrap();
    assert_eq!(r.iter().map(|r| r.target.clone()).collect::<Vec<_>>(), vec![g.clone()]);
    assert!(store.retries("other", None).await.unwrap().is_empty());
    // A full sync supersedes every retry and records its time.
    settle(Some(12), RunKind::Full, vec![], vec![], 60_000).await;
    assert!(store.retries("duoTest", None).await.unwrap().is_empty());
    let cp = store.checkpoint("duoTest").await.unwrap().unwrap();
    assert_eq!((cp.last_seq, cp.last_full_ms, cp.last_incremental_ms), (12, Some(EpochMillis(60_000)), Some(EpochMillis(50_000))));
});

registry_test!(a_runner_lock_is_held_by_one_session_until_dropped, |store| {
    let before: Vec<_> = std::fs::read_dir(".").unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    let first = store.try_lock_runner("provisioner:duoTest").await.unwrap();
    assert!(first.is_some());
    let after: Vec<_> = std::fs::read_dir(".").unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert_eq!(before.len(), after.len(), "a lock file was written for a registry without a file");
    if store.backend() == duoprov_registry::Backend::Postgres {
        assert!(store.try_lock_runner("provisioner:duoTest").await.unwrap().is_none(), "a second session got the lock");
        assert!(store.try_lock_runner("provisioner:other").await.unwrap().is_some(), "locks are per key");
        let mut held = first.unwrap();
        assert!(held.alive().await);
        drop(held);
        // The session ends with the connection; the lock is free again.
        let mut again = None;
        for _ in 0..50 {
            again = store.try_lock_runner("provisioner:duoTest").await.unwrap();
            if again.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(again.is_some(), "the lock was not released when its holder dropped it");
    }
});

#[tokio::test]
async fn an_in_memory_runner_lock_is_held_by_one_holder_per_key_until_dropped() {
    use duoprov_registry::SyncStore;
    let store = duoprov_registry::MemorySyncStore::new();
    let mut held = store.try_lock_runner("provisioner:duoTest").await.unwrap().expect("free lock");
    assert!(held.alive().await);
    assert!(store.try_lock_runner("provisioner:duoTest").await.unwrap().is_none(), "a second holder got the lock");
    assert!(store.try_lock_runner("provisioner:other").await.unwrap().is_some(), "locks are per key");
    drop(held);
    assert!(store.try_lock_runner("provisioner:duoTest").await.unwrap().is_some(), "the lock was not released on drop");
}

#[tokio::test]
async fn a_sqlite_file_lock_is_exclusive_across_stores_and_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let a = duoprov_registry::open(&url, &Default::default()).await.unwrap();
    let b = duoprov_registry::open(&url, &Default::default()).await.unwrap();
    let held = a.try_lock_runner("daemon").await.unwrap();
    assert!(held.is_some());
    assert!(b.try_lock_runner("daemon").await.unwrap().is_none(), "a second store on the same file got the lock");
    assert!(b.try_lock_runner("provisioner:duoTest").await.unwrap().is_some(), "locks are per key");
    drop(held);
    assert!(b.try_lock_runner("daemon").await.unwrap().is_some(), "the lock was not released on drop");
}

#[tokio::test]
async fn a_sqlite_runner_lock_reads_lost_once_its_lock_file_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let a = duoprov_registry::open(&url, &Default::default()).await.unwrap();
    let b = duoprov_registry::open(&url, &Default::default()).await.unwrap();
    let mut held = a.try_lock_runner("provisioner:duoTest").await.unwrap().expect("free lock");
    assert!(held.alive().await);
    let lock_file = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.to_string_lossy().ends_with(".lock")).expect("a lock file");
    std::fs::remove_file(&lock_file).unwrap();
    // Another process can now create and lock a new file: the first holder must know it lost.
    let other = b.try_lock_runner("provisioner:duoTest").await.unwrap();
    assert!(other.is_some(), "a new lock file could not be taken");
    assert!(!held.alive().await, "a holder whose lock file was removed still reads as holding the lock");
}

#[tokio::test]
async fn a_sqlite_lock_file_is_one_per_database_whatever_path_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let direct = format!("sqlite://{}", dir.path().join("r.db").display());
    let a = duoprov_registry::open(&direct, &Default::default()).await.unwrap();
    std::os::unix::fs::symlink(dir.path().join("r.db"), dir.path().join("alias.db")).unwrap();
    let roundabout = format!("sqlite://{}", dir.path().join("alias.db").display());
    let b = duoprov_registry::open(&roundabout, &Default::default()).await.unwrap();
    let _held = a.try_lock_runner("daemon").await.unwrap().expect("free lock");
    assert!(b.try_lock_runner("daemon").await.unwrap().is_none(), "the same database through another path got a second lock");
}

/// The PostgreSQL session holding `key` in any test schema (keys carry a random part, so no
/// other test's lock matches).
async fn lock_session_pid(conn: &mut sqlx::PgConnection, key: &str) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT l.pid FROM pg_locks l CROSS JOIN pg_namespace n WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
         AND n.nspname LIKE 't\\_%' AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('duoprov-runner:' || n.nspname || ':' || $1, 0)",
    )
    .bind(key)
    .fetch_optional(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_postgres_runner_lock_reads_lost_once_its_session_is_terminated_and_a_standby_takes_it() {
    use sqlx::Connection;
    let Some(store) = crate::support::postgres("lock_terminated").await else { return };
    let url = std::env::var("DUOPROV_TEST_POSTGRES_URL").unwrap();
    let key = format!("provisioner:fence{}", std::process::id());
    let mut held = store.try_lock_runner(&key).await.unwrap().expect("free lock");
    assert!(held.alive().await);
    assert!(store.try_lock_runner(&key).await.unwrap().is_none(), "a second session got the lock");
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect (URL not shown)");
    let pid = lock_session_pid(&mut admin, &key).await.expect("the lock's session is visible in pg_locks");
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(pid).fetch_one(&mut admin).await.unwrap();
    assert!(terminated);
    assert!(!held.alive().await, "a holder whose session was terminated still reads as holding the lock");
    // A standby takes the lock as soon as the server has ended the session.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut standby = None;
    while standby.is_none() && std::time::Instant::now() < deadline {
        standby = store.try_lock_runner(&key).await.unwrap();
        if standby.is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert!(standby.is_some(), "the lock was not free after its session was terminated");
}
registry_test!(sync a_whole_group_retry_row_keeps_its_kind_and_covers_the_plain_group_row, |store| {
    use duoprov_registry::{Backoff, RetryTarget, Settlement};
    let plain = RetryTarget::Group { group_uuid: "uuid-9".into() };
    let whole = RetryTarget::WholeGroup { group_uuid: "uuid-9".into() };
    let backoff = Backoff { base_ms: 1_000, max_ms: 8_000 };
    let settle = |attempted: Vec<RetryTarget>, failed: Vec<(RetryTarget, String)>, now_ms: i64| {
        let store = &store;
        async move {
            let s = Settlement { kind: RunKind::Incremental, checkpoint: None, clear_all: false, attempted: &attempted, failed: &failed, now_ms: EpochMillis(now_ms), backoff };
            store.settle("duoTest", &s).await.unwrap();
        }
    };
    settle(vec![], vec![(plain.clone(), "HTTP 503".into())], 10_000).await;
    assert_eq!(store.retries("duoTest", None).await.unwrap()[0].target, plain);
    // A removal of an unlinked member of the same group fails: the one row now asks for the
    // whole group, and counts as the row's second failure.
    settle(vec![], vec![(whole.clone(), "HTTP 500".into())], 20_000).await;
    let r = store.retries("duoTest", None).await.unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].target.clone(), r[0].attempts, r[0].next_at_ms), (whole.clone(), 2, EpochMillis(22_000)));
    // A later plain failure does not downgrade it.
    settle(vec![], vec![(plain.clone(), "HTTP 503".into())], 30_000).await;
    assert_eq!(store.retries("duoTest", None).await.unwrap()[0].target, whole);
    // Attempted: gone.
    settle(vec![whole.clone()], vec![], 40_000).await;
    assert!(store.retries("duoTest", None).await.unwrap().is_empty());
});

registry_test!(sync object_errors_name_each_object_and_forgetting_a_user_takes_its_memberships, |store| {
    let err = |m: &str| Some(StateError { code: "ERR".into(), message: m.into() });
    let key = SubjectKey::local("jdoe");
    let group = GroupState { pending_name: None, pending_at: None, group_uuid: "uuid-1".into(), duo_group_id: None, in_target: false, created_by_us: false, provisioned_at: None, error: err("group failed") };
    let user = UserState { pending_name: None, pending_at: None, subject: key.clone(), duo_user_id: None, in_target: false, created_by_us: false, provisioned_at: None, error: err("user failed") };
    let membership = MembershipState { group_uuid: "uuid-1".into(), subject: key.clone(), in_target: false, provisioned_at: None, error: err("membership failed") };
    store.record("duoTest", &[group], &[user], &[membership]).await.unwrap();
    let mut named: Vec<(String, String, String)> = store.object_errors("duoTest", 10).await.unwrap().into_iter().map(|e| (e.kind, e.object, e.message)).collect();
    named.sort();
    assert_eq!(
        named,
        vec![
            ("group".into(), "uuid-1".into(), "group failed".into()),
            ("membership".into(), "uuid-1 local:jdoe".into(), "membership failed".into()),
            ("user".into(), "local:jdoe".into(), "user failed".into()),
        ]
    );
    assert_eq!(store.object_errors("duoTest", 2).await.unwrap().len(), 2, "the limit holds");
    assert!(store.object_errors("other", 10).await.unwrap().is_empty(), "errors are per provisioner");
    let before = EpochMillis::now();
    assert!(store.object_errors("duoTest", 10).await.unwrap().iter().all(|e| e.at_ms <= before && e.at_ms.0 > before.0 - 60_000), "errors are stamped with the time they were recorded");
    // Forgetting the user takes its memberships with it; the group's error stays.
    store.forget_users("duoTest", &[key]).await.unwrap();
    let kinds: Vec<String> = store.object_errors("duoTest", 10).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec!["group".to_owned()]);
});

registry_test!(sync the_newest_errors_of_every_kind_come_first_and_stop_at_the_limit, |store| {
    let err = || Some(StateError { code: "ERR".into(), message: "HTTP 500".into() });
    // Each kind recorded at a later millisecond than the one before (polled, not slept).
    let after = |t: EpochMillis| async move {
        while EpochMillis::now() <= t {
            tokio::task::yield_now().await;
        }
    };
    let groups: Vec<GroupState> = (0..3)
        .map(|i| GroupState { pending_name: None, pending_at: None, group_uuid: format!("g{i}"), duo_group_id: None, in_target: true, created_by_us: true, provisioned_at: None, error: err() })
        .collect();
    store.record("duoTest", &groups, &[], &[]).await.unwrap();
    after(EpochMillis::now()).await;
    let users: Vec<UserState> = (0..3)
        .map(|i| UserState { pending_name: None, pending_at: None, subject: SubjectKey::local(format!("u{i}")), duo_user_id: None, in_target: true, created_by_us: true, provisioned_at: None, error: err() })
        .collect();
    store.record("duoTest", &[], &users, &[]).await.unwrap();
    after(EpochMillis::now()).await;
    let memberships: Vec<MembershipState> = (0..3)
        .map(|i| MembershipState { group_uuid: "g0".into(), subject: SubjectKey::local(format!("u{i}")), in_target: true, provisioned_at: None, error: err() })
        .collect();
    store.record("duoTest", &[], &[], &memberships).await.unwrap();
    let kinds = |limit| {
        let store = &store;
        async move { store.object_errors("duoTest", limit).await.unwrap().into_iter().map(|e| e.kind).collect::<Vec<_>>() }
    };
    assert_eq!(kinds(4).await, ["membership", "membership", "membership", "user"], "the newest four, across kinds");
    assert_eq!(kinds(10).await, ["membership", "membership", "membership", "user", "user", "user", "group", "group", "group"]);
});
