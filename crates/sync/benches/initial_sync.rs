//! Initial sync against the emulator with its rate limits on (scaled 20×: 6 000 writes and 4 000
//! page reads a minute): 10k users, 1k groups, 100k memberships. Reports Duo calls used against the
//! minimum (page reads at maximum page size, one write per change or per bulk batch), 429s seen
//! by the emulator, and wall time against calls ÷ allowed rate. Counts come from the emulator.
//!
//! `cargo bench -p duoprov-sync --bench initial_sync`

use std::sync::Arc;
use std::time::Instant;

use duoprov_duo::{DuoClient, DuoConfig, PacingConfig};
use duoprov_emulator::{Emulator, Integration};
use duoprov_plan::safety::Approval;
use duoprov_plan::{Mapping, MappingConfig, Policy};
use duoprov_registry::{ImportData, OpenOptions};
use duoprov_sync::{NoProgress, SyncOptions, SyncSettings};

const USERS: usize = 10_000;
const GROUPS: usize = 1_000;
const MEMBERS_PER_GROUP: usize = 100;
const SCALE: f64 = 20.0;
const DUO_WRITES_PER_MIN: f64 = 300.0;

fn document() -> String {
    let mut s = String::from("{\"subjects\":[");
    for i in 0..USERS {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{{\"id\":\"u{i:05}\",\"name\":\"User {i}\",\"login_id\":\"u{i:05}\",\"email\":\"u{i:05}@example.edu\"}}"));
    }
    s.push_str("],\"groups\":[");
    for g in 0..GROUPS {
        if g > 0 {
            s.push(',');
        }
        s.push_str(&format!("{{\"name\":\"bench:g{g:04}\",\"description\":\"Group {g}\"}}"));
    }
    s.push_str("],\"memberships\":[");
    let mut first = true;
    for g in 0..GROUPS {
        for k in 0..MEMBERS_PER_GROUP {
            if !first {
                s.push(',');
            }
            first = false;
            s.push_str(&format!("{{\"group\":\"bench:g{g:04}\",\"subject\":\"u{:05}\"}}", (g * MEMBERS_PER_GROUP + k) % USERS));
        }
    }
    s.push_str("],\"markers\":[{\"provisioner\":\"bench\",\"folder\":\"bench\",\"scope\":\"sub\"}]}");
    s
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    duoprov_duo::install_crypto_provider();
    let skey = "bench-secret-key-0123456789abcdefghijklmn";
    let emulator = Emulator::builder()
        .integration(Integration::new("DIBENCH0000000000001", skey))
        .configure(|s| s.rate_limits.scale = SCALE)
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = duoprov_registry::open(&format!("sqlite://{}", dir.path().join("bench.db").display()), &OpenOptions::default())
        .await
        .expect("registry");
    let mut data = ImportData::default();
    data.add_json("bench.json", &document()).expect("parse");
    store.import(&data).await.expect("import");

    let mut cfg = DuoConfig::new("127.0.0.1", "DIBENCH0000000000001", skey.to_owned().into());
    cfg.url = Some(emulator.base_url());
    // Pace just under the emulator's (Duo's, scaled) limits. A burst of 1.5 s worth lets the
    // client catch up after the pauses between phases (while results are recorded) without ever
    // exceeding what the per-minute bucket allows.
    let per_min = |duo: f64| (duo * SCALE * 0.99) as u32;
    let burst = (300.0 * SCALE / 60.0 * 1.5) as u32;
    // The emulator counts bulk calls as writes and id-list lookups as page reads (its default).
    cfg.pacing = PacingConfig {
        writes_per_minute: per_min(300.0),
        single_reads_per_minute: per_min(300.0),
        page_reads_per_minute: per_min(200.0),
        list_lookups_per_minute: per_min(200.0),
        bulk_per_minute: per_min(300.0),
        burst,
        ..PacingConfig::default()
    };
    cfg.max_concurrency = 8;
    let duo = DuoClient::new(cfg).expect("client");
    let settings = SyncSettings {
        provisioner: "bench".into(),
        policy: Policy::default(),
        mapping: Arc::new(Mapping::compile(&MappingConfig::default(), "bench").expect("mapping")),
        eligible_group: None,
        subject_sources: None,
        concurrency: 8,
        incremental: Default::default(),
        shares_duo_with: Vec::new(),
        load_duo_users: false,
    };

    emulator.handle().clear_calls();
    let start = Instant::now();
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.expect("prepare");
    let options = SyncOptions { dry_run: false, approval: Approval::default(), saved: None, fence: None };
    let report = duoprov_sync::run(&*store, &duo, &settings, prepared, &options, &NoProgress).await.expect("run");
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(report.failed(), 0, "{:?}", report.failures.first());

    let calls = emulator.handle().calls();
    let total = calls.len();
    let too_many = calls.iter().filter(|c| c.status == 429).count();
    let writes = calls.iter().filter(|c| c.method != "GET").count();
    let reads = total - writes;
    // The minimum: one page of users and one of groups (Duo starts empty), one create per group
    // (no bulk group create), one bulk_create per 100 users, one bulk call per 50 memberships.
    let minimum = 2 + GROUPS + USERS.div_ceil(100) + (GROUPS * MEMBERS_PER_GROUP).div_ceil(50);
    let allowed_writes_per_sec = DUO_WRITES_PER_MIN * SCALE / 60.0;
    let ideal = writes as f64 / allowed_writes_per_sec;
    println!(
        "initial sync: {} groups, {} users, {} memberships created in {wall:.1} s",
        report.groups.created, report.users.created, report.memberships.created
    );
    println!("calls: {total} ({reads} reads, {writes} writes); minimum {minimum}; ratio {:.3}", total as f64 / minimum as f64);
    println!("429 responses: {too_many}");
    println!("wall time {wall:.1} s vs writes ÷ allowed rate {ideal:.1} s; ratio {:.3}", wall / ideal);
    emulator.shutdown().await.ok();
}
