//! Sync state: links round-trip, first/last provisioned times, errors set and cleared, the run log.

use crate::registry_test;
use duoprov_model::SubjectKey;
use duoprov_registry::{GroupState, MembershipState, StateError, UserState};
use serde_json::json;

registry_test!(links_round_trip_and_keep_their_history, |store| {
    let g = |id: Option<&str>, at: Option<i64>, error: Option<StateError>| GroupState {
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
    store.record("duoTest", &[g(Some("DGAAAAAAAAAAAAAAAAAA"), Some(100), None)], &[], &[]).await.unwrap();
    store.record("duoTest", &[g(Some("DGAAAAAAAAAAAAAAAAAA"), Some(200), Some(StateError { code: "ERR".into(), message: "HTTP 500".into() }))], &[], &[]).await.unwrap();
    let errors = store.object_errors("duoTest", 10).await.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].code.as_str(), errors[0].message.as_str()), ("ERR", "HTTP 500"));
    store.record("duoTest", &[g(Some("DGAAAAAAAAAAAAAAAAAA"), None, None)], &[], &[]).await.unwrap();
    assert!(store.object_errors("duoTest", 10).await.unwrap().is_empty(), "a success clears the error");
    let links = store.links("duoTest").await.unwrap();
    assert_eq!(links.groups[0].duo_group_id.as_deref(), Some("DGAAAAAAAAAAAAAAAAAA"));
    assert!(store.links("other").await.unwrap().groups.is_empty(), "links are per provisioner");

    let key = SubjectKey::local("mchyzer");
    let user = UserState { subject: key.clone(), duo_user_id: Some("DUAAAAAAAAAAAAAAAAAA".into()), in_target: true, created_by_us: false, provisioned_at: Some(5), error: None };
    let membership = MembershipState { group_uuid: "uuid-1".into(), subject: key.clone(), in_target: true, provisioned_at: Some(5), error: None };
    store.record("duoTest", &[], &[user], &[membership]).await.unwrap();
    let links = store.links("duoTest").await.unwrap();
    assert_eq!(links.users.len(), 1);
    assert!(!links.users[0].created_by_us);
    store.forget_users("duoTest", &[key]).await.unwrap();
    store.forget_groups("duoTest", &["uuid-1".into()]).await.unwrap();
    let links = store.links("duoTest").await.unwrap();
    assert!(links.users.is_empty() && links.groups.is_empty());
});

registry_test!(runs_are_logged_newest_first, |store| {
    let a = store.begin_run("duoTest", "full", false).await.unwrap();
    store.finish_run(a, "succeeded", &json!({"created": 3}), &json!({"apply_ms": 10}), None).await.unwrap();
    let b = store.begin_run("duoTest", "full", true).await.unwrap();
    let runs = store.runs(Some("duoTest"), 10).await.unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b, a]);
    assert_eq!(runs[0].status, "running");
    assert!(runs[0].dry_run);
    assert_eq!(runs[1].counts["created"], 3);
    assert!(runs[1].finished_at_ms.is_some());
    let c = store.begin_run("duoTest", "full", false).await.unwrap();
    let runs = store.runs(Some("duoTest"), 10).await.unwrap();
    assert_eq!((runs[0].id, runs[0].status.as_str()), (c, "running"));
    assert_eq!((runs[1].id, runs[1].status.as_str()), (b, "interrupted"), "a run left running was interrupted");
});
