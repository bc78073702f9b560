//! Audit log cost: appends the entries of one initial full sync of the sync benches' small data
//! set (200 group creates, 2 000 user creates, 20 000 membership adds), one batch per apply
//! phase as the sync appends them, then verifies the chain; on SQLite (a file in a temporary
//! folder) and, when `DUOPROV_TEST_POSTGRES_URL` is set, on PostgreSQL. Compare with the wall
//! time of `cargo bench -p duoprov-sync --bench initial_sync`.
//!
//! `cargo bench -p duoprov-registry --bench audit`.

use std::time::Instant;

use duoprov_registry::{AuditRecord, ChainCheck, DuoAnswer, OpenOptions, Store};

fn phase(kind: &str, action: &str, n: usize) -> Vec<AuditRecord> {
    (0..n)
        .map(|i| AuditRecord {
            actor: "daemon:duoprov".into(),
            run_id: Some(1),
            provisioner: Some("duoBench".into()),
            object_kind: kind.into(),
            object_name: format!("user{i:05} in group group{:03}", i % 200),
            object_uuid: Some(format!("00000000-0000-4000-8000-{i:012}")),
            action: action.into(),
            after: Some(serde_json::json!({"group": format!("group{:03}", i % 200), "group_id": "DGXXXXXXXXXXXXXXXXXX", "user": format!("user{i:05}"), "user_id": "DUXXXXXXXXXXXXXXXXXX"})),
            duo: Some(DuoAnswer::ok()),
            ..Default::default()
        })
        .collect()
}

async fn measure(label: &str, store: Box<dyn Store>) {
    let phases = [phase("group", "create", 200), phase("user", "create", 2_000), phase("membership", "add", 20_000)];
    let start = Instant::now();
    for p in &phases {
        store.append_audit(p).await.expect("append");
    }
    let append = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut check = ChainCheck::new(store.audit_head().await.unwrap());
    let mut after = 0;
    loop {
        let page = store.audit_chain(after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            check.feed(e).expect("an intact chain");
        }
    }
    let verify = start.elapsed().as_secs_f64();
    println!("{label}: append {} entries in 3 batches {append:.2} s ({:.0} µs/entry), verify {verify:.2} s", check.checked(), append * 1e6 / check.checked() as f64);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    measure("sqlite", duoprov_registry::open(&url, &OpenOptions::default()).await.unwrap()).await;
    match std::env::var("DUOPROV_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let options = OpenOptions { schema: Some(format!("bench_audit_{}", std::process::id())), ..Default::default() };
            measure("postgres", duoprov_registry::open(&url, &options).await.unwrap()).await;
        }
        _ => println!("postgres: skipped (DUOPROV_TEST_POSTGRES_URL not set)"),
    }
}
