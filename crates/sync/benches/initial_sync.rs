//! Initial sync through the sync library (no binary) against the in-process emulator: the
//! shared data set (`common/dataset.rs`, small by default: 2 000 users, 200 groups, 20 000
//! memberships), the emulator at Duo's documented per-class limits with its default small
//! burst, the client at its default pacing; both scaled by `BENCH_SCALE` (default 100). Prints
//! the minimum from the data set and Duo's documented limits, and the calls per class from the
//! run report, the 429s and the wall time against it. The same measure through the binary, with
//! peak memory and a second (steady-state) sync, is `cargo bench -p duoprov --bench full_sync`.
//!
//! `cargo bench -p duoprov-sync --bench initial_sync` (`BENCH_SIZE=full` for 100 000 users).

#[path = "common/dataset.rs"]
mod dataset;

use std::sync::Arc;
use std::time::Instant;

use dataset::{DataSet, Size};
use duoprov_duo::{DuoClient, DuoConfig, PacingConfig};
use duoprov_emulator::state::TenantDump;
use duoprov_emulator::{Emulator, Integration};
use duoprov_plan::safety::Approval;
use duoprov_plan::{Mapping, MappingConfig, Policy};
use duoprov_registry::{ImportData, OpenOptions};
use duoprov_sync::{NoProgress, SyncOptions, SyncSettings};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    duoprov_duo::install_crypto_provider();
    let size = if std::env::var("BENCH_SIZE").as_deref() == Ok("full") { Size::FULL } else { Size::SMALL };
    let scale: f64 = std::env::var("BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(100.0);
    let data = DataSet::generate(size, 17);
    println!("data set: {}", data.describe());
    let min = data.initial_minimum();
    let skey = "bench-secret-key-0123456789abcdefghijklmn";
    let dump: TenantDump = serde_json::from_str(&data.duo_json()).expect("tenant dump");
    let emulator = Emulator::builder()
        .integration(Integration::new("DIBENCH0000000000001", skey))
        .configure(|s| {
            s.rate_limits.scale = scale;
            s.rate_limits.bulk_per_min = Some(50);
            s.rate_limits.id_list_per_min = Some(40);
        })
        .initial_state(dump)
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = duoprov_registry::open(&format!("sqlite://{}", dir.path().join("bench.db").display()), &OpenOptions::default())
        .await
        .expect("registry");
    let mut import = ImportData::default();
    import.add_json("bench.json", &data.registry_json()).expect("parse");
    store.import(&import).await.expect("import");

    let mut cfg = DuoConfig::new("127.0.0.1", "DIBENCH0000000000001", skey.to_owned().into());
    cfg.url = Some(emulator.base_url());
    let d = PacingConfig::default();
    let s = |per_min: u32| (f64::from(per_min) * scale).round() as u32;
    cfg.pacing = PacingConfig {
        writes_per_minute: s(d.writes_per_minute),
        single_reads_per_minute: s(d.single_reads_per_minute),
        page_reads_per_minute: s(d.page_reads_per_minute),
        list_lookups_per_minute: s(d.list_lookups_per_minute),
        bulk_per_minute: s(d.bulk_per_minute),
        ..d
    };
    let duo = DuoClient::new(cfg).expect("client");
    let settings = SyncSettings {
        provisioner: "bench".into(),
        policy: Policy::default(),
        mapping: Arc::new(Mapping::compile(&MappingConfig::default(), "bench").expect("mapping")),
        eligible_group: None,
        subject_sources: None,
        concurrency: 4, // the configuration's default
        incremental: Default::default(),
        shares_duo_with: Vec::new(),
        sync_back: None,
        selection_rules: Default::default(),
        load_duo_users: false,
    };

    let start = Instant::now();
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.expect("prepare");
    let options = SyncOptions { dry_run: false, approval: Approval::default(), saved: None, fence: None, ..Default::default() };
    let report = duoprov_sync::run(&*store, &duo, &settings, prepared, &options, &NoProgress).await.expect("run");
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(report.failed(), 0, "{:?}", report.failures.first());

    let class = |name: &str| report.duo_classes.iter().find(|c| c.class == name).map_or((0, 0), |c| (c.calls, c.rate_limited));
    let calls: u64 = report.duo_classes.iter().map(|c| c.calls).sum();
    let limited: u64 = report.duo_classes.iter().map(|c| c.rate_limited).sum();
    let bound = min.rate_bound_secs(scale);
    println!(
        "initial sync: {} groups, {} users created, {} adopted, {} memberships in {wall:.1} s",
        report.groups.created, report.users.created, report.adopted, report.memberships.created
    );
    println!(
        "minimum {} page reads, {} writes, {} bulk = {} calls; measured {:?} page reads, {:?} writes, {:?} bulk (calls, 429s) = {calls}; ratio {:.4}",
        min.page_reads,
        min.writes,
        min.bulk,
        min.calls(),
        class("page_read"),
        class("write"),
        class("bulk"),
        calls as f64 / min.calls() as f64
    );
    println!("429s {limited} ({:.3} %); wall {wall:.1} s ÷ rate-bound {bound:.1} s = {:.3}", limited as f64 * 100.0 / calls.max(1) as f64, wall / bound);
    emulator.shutdown().await.ok();
}
