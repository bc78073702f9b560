//! The audit log: appends chain onto the head, concurrent appenders never fork the chain, the
//! list filters, and entries survive as written, on both backends.

use std::sync::Arc;

use duoprov_model::EpochMillis;
use duoprov_registry::{AuditFilter, AuditRecord, ChainCheck, DuoAnswer, Store};

use crate::registry_test;
use crate::support;

fn record(writer: usize, i: usize) -> AuditRecord {
    AuditRecord {
        actor: format!("daemon:w{writer}"),
        provisioner: Some(format!("p{}", writer % 2)),
        object_kind: "group".into(),
        object_name: format!("app:duo:g{writer}-{i}"),
        object_uuid: Some(format!("uuid-{writer}-{i}")),
        action: "create".into(),
        after: Some(serde_json::json!({"name": format!("g{writer}-{i}")})),
        duo: Some(DuoAnswer::ok()),
        ..Default::default()
    }
}

/// Walks the whole chain; the number of entries when intact.
async fn verify(store: &dyn Store) -> Result<i64, String> {
    let mut check = ChainCheck::new(store.audit_head().await.unwrap());
    let mut after = 0;
    loop {
        let page = store.audit_chain(after, 7).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            check.feed(e).map_err(|b| b.to_string())?;
        }
    }
    Ok(check.checked())
}

registry_test!(appends_chain_onto_the_head_and_list_filters_by_object_provisioner_time_and_limit, |store| {
    assert_eq!(verify(&*store).await, Ok(0));
    store.append_audit(&[record(0, 0), record(1, 0)]).await.unwrap();
    store.append_audit(&[record(0, 1)]).await.unwrap();
    store.append_audit(&[]).await.unwrap();
    assert_eq!(verify(&*store).await, Ok(3));
    let all = store.audit_entries(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(all[1].prev_hash, all[0].hash);
    let by_name = store.audit_entries(&AuditFilter { object: Some("app:duo:g1-0".into()), ..Default::default() }).await.unwrap();
    assert_eq!(by_name.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    let by_uuid = store.audit_entries(&AuditFilter { object: Some("uuid-0-1".into()), ..Default::default() }).await.unwrap();
    assert_eq!(by_uuid.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
    let by_provisioner = store.audit_entries(&AuditFilter { provisioner: Some("p0".into()), ..Default::default() }).await.unwrap();
    assert_eq!(by_provisioner.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3]);
    let newest = store.audit_entries(&AuditFilter { limit: Some(2), ..Default::default() }).await.unwrap();
    assert_eq!(newest.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    let future = store.audit_entries(&AuditFilter { since: Some(EpochMillis::now().plus_ms(60_000)), ..Default::default() }).await.unwrap();
    assert!(future.is_empty());
    let past = store.audit_entries(&AuditFilter { since: Some(EpochMillis::now().plus_ms(-60_000)), ..Default::default() }).await.unwrap();
    assert_eq!(past.len(), 3);
    assert_eq!(all[0].duo_status.as_deref(), Some("OK"));
    assert_eq!(all[0].after.as_deref(), Some(r#"{"name":"g0-0"}"#));
});

/// Eight writers, each appending twenty batches of three, on pool connections of their own.
async fn append_concurrently(store: Arc<dyn Store>) {
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    store.append_audit(&[record(w, i * 3), record(w, i * 3 + 1), record(w, i * 3 + 2)]).await.expect("append");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(verify(&*store).await, Ok(8 * 20 * 3), "concurrent appenders forked or broke the chain");
    // Each batch's entries stay together and in order.
    let all = store.audit_entries(&AuditFilter::default()).await.unwrap();
    for batch in all.chunks(3) {
        let index = |e: &duoprov_registry::AuditEntry| e.object_name.rsplit('-').next().and_then(|i| i.parse::<usize>().ok()).unwrap();
        assert!(batch.iter().all(|e| e.actor == batch[0].actor), "{batch:?}");
        assert_eq!((index(&batch[0]) % 3, index(&batch[1]), index(&batch[2])), (0, index(&batch[0]) + 1, index(&batch[0]) + 2), "{batch:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_produce_one_valid_chain_on_sqlite() {
    // A file, not memory: every pool connection is its own SQLite connection to it.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let store = duoprov_registry::open(&url, &duoprov_registry::OpenOptions::default()).await.unwrap();
    append_concurrently(Arc::from(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_produce_one_valid_chain_on_postgres() {
    if let Some(store) = support::postgres("concurrent_audit").await {
        append_concurrently(Arc::from(store)).await;
    }
}
