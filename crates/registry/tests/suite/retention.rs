//! Retention: the change log loses only old entries every provisioner has consumed (never the
//! newest), the run log only old finished runs (never one running, nor a provisioner's latest of
//! a kind), and a provisioner behind holds the log and is named.

use crate::registry_test;
use crate::support::*;
use duoprov_registry::{Backoff, RunKind, RunStatus, Settlement};
use serde_json::json;

registry_test!(pruning_keeps_what_a_provisioner_still_needs_and_the_latest_of_everything, |store| {
    for i in 0..6 {
        add_group(&*store, &format!("app:duo:g{i}")).await;
    }
    let newest = store.last_change_seq().await.unwrap();
    let first = store.changes_after(0, 1).await.unwrap()[0].seq;
    let future = now_ms() + 60_000;
    let settle = |provisioner: &'static str, seq: i64| {
        let store = &store;
        async move {
            let s = Settlement { kind: RunKind::Incremental, checkpoint: Some(seq), clear_all: false, attempted: &[], failed: &[], now_ms: duoprov_model::EpochMillis(1), backoff: Backoff { base_ms: 1, max_ms: 1 } };
            store.settle(provisioner, &s).await.unwrap();
        }
    };
    // No checkpoint yet: every first run is a full sync; all but the newest entry may go.
    // (Entries are "old" here because the cutoff lies in the future.)
    // A provisioner that has applied up to the third entry holds the rest.
    settle("ahead", newest).await;
    settle("behind", first + 2).await;
    let pruned = store.prune(future, 0).await.unwrap();
    assert_eq!(pruned.change_log_entries, 3, "{pruned:?}");
    assert_eq!(pruned.held_by, Some(("behind".to_owned(), first + 2)));
    let left: Vec<i64> = store.changes_after(0, 100).await.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(left, ((first + 3)..=newest).collect::<Vec<_>>(), "what `behind` has not applied stays");
    // A cutoff before the entries were written keeps them, consumed or not.
    settle("behind", newest).await;
    assert_eq!(store.prune(0, 0).await.unwrap().change_log_entries, 0);
    // Consumed by all and old: everything but the newest goes, and nothing holds the log.
    let pruned = store.prune(future, 0).await.unwrap();
    assert_eq!((pruned.change_log_entries, pruned.held_by), ((newest - first - 3) as u64, None));
    let left: Vec<i64> = store.changes_after(0, 100).await.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(left, vec![newest], "the newest entry always stays");
    assert_eq!(store.last_change_seq().await.unwrap(), newest);

    // Runs: three finished full syncs, two incremental, one still running.
    let mut finished = Vec::new();
    for kind in [RunKind::Full, RunKind::Incremental, RunKind::Full, RunKind::Incremental, RunKind::Full] {
        let id = store.begin_run("p", kind, false).await.unwrap();
        store.finish_run(id, RunStatus::Succeeded, &json!({}), &json!({}), None).await.unwrap();
        finished.push(id);
    }
    let running = store.begin_run("p", RunKind::Full, false).await.unwrap();
    assert_eq!(store.prune(0, 0).await.unwrap().runs, 0, "nothing finished before the cutoff");
    let pruned = store.prune(0, future).await.unwrap();
    assert_eq!(pruned.runs, 3, "{pruned:?}");
    let mut ids: Vec<i64> = store.runs(Some("p"), 100).await.unwrap().iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids, vec![finished[3], finished[4], running], "the latest finished incremental and full runs, and the running one");
});

/// Now in epoch milliseconds (the registry's clock).
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
