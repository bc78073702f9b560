//! The console's requests and the last refused plan on both backends: a full sync asked for
//! twice while it waits is one request, taken up by one run and consumed when it ends, and one
//! asked for during that run waits for the next; retries queue once per object, up to a bound,
//! and each is closed together with the audit entry of its outcome; every request is audited with
//! who asked; the refused plan is kept one per provisioner, replaced and cleared.

use crate::registry_test;
use duoprov_registry::{AuditFilter, RefusedPlan, RequestKind, RequestedObject, RetryQueued};

const P: &str = "duoTest";

fn audited(entries: &[duoprov_registry::AuditEntry]) -> Vec<(String, String)> {
    entries.iter().map(|e| (e.actor.clone(), e.action.clone())).collect()
}

registry_test!(a_full_sync_request_is_consumed_by_the_one_run_that_took_it_up, |store| {
    assert!(store.request_full_sync(P, "loopback").await.unwrap(), "a new request");
    assert!(!store.request_full_sync(P, "console token").await.unwrap(), "a second ask while it waits is the same request");
    assert!(store.request_full_sync("other", "loopback").await.unwrap(), "another provisioner's request is its own");
    let waiting = store.console_requests(P).await.unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!((&waiting[0].kind, waiting[0].who.as_str(), waiting[0].claimed_at_ms), (&RequestKind::FullSync, "loopback", None), "the first asker's");

    // A run takes it up; a request made during the run waits for the next one.
    let up_to = waiting[0].id;
    store.claim_full_syncs(P, up_to).await.unwrap();
    assert!(store.request_full_sync(P, "console token").await.unwrap(), "a request during the run is a new one");
    let waiting = store.console_requests(P).await.unwrap();
    assert_eq!(waiting.len(), 2);
    assert!(waiting[0].claimed_at_ms.is_some() && waiting[1].claimed_at_ms.is_none(), "{waiting:?}");
    assert_eq!(store.finish_full_syncs(P, up_to).await.unwrap(), 1, "the run consumes what it took up");
    let waiting = store.console_requests(P).await.unwrap();
    assert_eq!(waiting.iter().map(|r| r.who.as_str()).collect::<Vec<_>>(), ["console token"], "the later request still waits");
    assert_eq!(store.finish_full_syncs(P, up_to).await.unwrap(), 0, "consumed once");

    // Every ask is in the audit trail with who asked, even one that joined a waiting request.
    let audit = store.audit_entries(&AuditFilter { provisioner: Some(P.into()), ..Default::default() }).await.unwrap();
    let mut expected = vec![("console:loopback".to_owned(), "full-sync".to_owned())];
    expected.extend(vec![("console:console token".to_owned(), "full-sync".to_owned()); 2]);
    assert_eq!(audited(&audit), expected, "oldest first");
});

registry_test!(retries_queue_once_per_object_up_to_a_bound_and_close_with_their_outcome_audited, |store| {
    let bob = RequestedObject::Subject("local:bob".into());
    let staff = RequestedObject::Group("app:sso:staff".into());
    assert_eq!(store.request_retry(P, &bob, "loopback", 2).await.unwrap(), RetryQueued::Queued);
    assert_eq!(store.request_retry(P, &bob, "console token", 2).await.unwrap(), RetryQueued::AlreadyWaiting);
    assert_eq!(store.request_retry(P, &staff, "console token", 2).await.unwrap(), RetryQueued::Queued);
    let third = RequestedObject::Subject("local:cid".into());
    assert_eq!(store.request_retry(P, &third, "loopback", 2).await.unwrap(), RetryQueued::Full, "the bound refuses a third object");
    let waiting = store.console_requests(P).await.unwrap();
    let kinds: Vec<(&RequestKind, &str)> = waiting.iter().map(|r| (&r.kind, r.who.as_str())).collect();
    assert_eq!(kinds, [(&RequestKind::Retry(bob.clone()), "loopback"), (&RequestKind::Retry(staff.clone()), "console token")], "oldest first");

    assert!(store.finish_retry(P, waiting[0].id, "loopback", "retry of subject local:bob: run 7 succeeded").await.unwrap());
    assert!(!store.finish_retry(P, waiting[0].id, "loopback", "again").await.unwrap(), "a retry closes once");
    assert_eq!(store.console_requests(P).await.unwrap().len(), 1);
    let actions = store.console_actions(P, 10).await.unwrap();
    let whats: Vec<(&str, &str, &str)> = actions.iter().map(|a| (a.who.as_str(), a.action.as_str(), a.what.as_str())).collect();
    assert_eq!(
        whats,
        [
            ("loopback", "retried", "retry of subject local:bob: run 7 succeeded"),
            ("console token", "retry", "retry of group app:sso:staff requested"),
            ("console token", "retry", "retry of subject local:bob requested"),
            ("loopback", "retry", "retry of subject local:bob requested"),
        ],
        "newest first; the refused third ask is not recorded"
    );
});

registry_test!(the_last_refused_plan_is_kept_one_per_provisioner_replaced_and_cleared, |store| {
    assert_eq!(store.refused_plan(P).await.unwrap(), None);
    let removals: Vec<String> = (0..duoprov_registry::REFUSAL_REMOVALS_KEPT + 3).map(|i| format!("remove u{i} from app:duo:g")).collect();
    let plan = RefusedPlan {
        provisioner: P.into(),
        at_ms: 1_796_007_540_000,
        kind: "full".into(),
        reasons: vec!["3 removals exceed max_removals = 2".into()],
        removals: removals.clone(),
        removal_count: removals.len() as i64,
        digest: "d1g35t".into(),
    };
    store.save_refused_plan(&plan).await.unwrap();
    let kept = store.refused_plan(P).await.unwrap().expect("kept");
    assert_eq!(kept.removals, removals[..duoprov_registry::REFUSAL_REMOVALS_KEPT], "the removals shown, bounded");
    assert_eq!(kept.removal_count, removals.len() as i64, "with how many there were");
    assert_eq!((kept.kind.as_str(), kept.digest.as_str(), kept.reasons.clone(), kept.at_ms), ("full", "d1g35t", plan.reasons.clone(), plan.at_ms));
    assert_eq!(store.refused_plan("other").await.unwrap(), None);

    let changed = RefusedPlan { kind: "incremental".into(), removals: vec!["delete group app:duo:g".into()], removal_count: 1, digest: "0ther".into(), ..plan.clone() };
    store.save_refused_plan(&changed).await.unwrap();
    assert_eq!(store.refused_plan(P).await.unwrap(), Some(changed), "the plan changed: the new one replaces it");
    assert!(store.clear_refused_plan(P).await.unwrap());
    assert_eq!(store.refused_plan(P).await.unwrap(), None, "a run succeeded");
    assert!(!store.clear_refused_plan(P).await.unwrap());
});
