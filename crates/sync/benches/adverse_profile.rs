//! An initial sync with duoprov's default client settings against the emulator under the
//! `adverse` profile (bulk replies not understood, bulk removes answered 404, bulk and
//! `bulk_create` in a 50/min class, id-list lookups at 40/min, bursts of 5 % of a minute), with
//! the emulator's rate limits and the client's pacing both scaled by the same factor so the run
//! takes a minute or two. Then a second, changing sync (about a tenth of the memberships moved to
//! another group).
//!
//! Prints, per sync: Duo calls by endpoint, 429s, wall time, and calls ÷ a minimum computed from
//! the data set and Duo's documented limits alone (never from duoprov's own call pattern):
//!
//! - initial sync into an empty account: `2` page reads (one empty page of users, one of groups)
//!   `+ G` group creates (Duo has no bulk group create) `+ ceil(U / 100)` `bulk_create` calls
//!   (100 users each, documented) `+ ceil(M / 50)` `/admin/v1/bulk` calls (50 operations each,
//!   documented);
//! - the changing sync: `ceil(U / 300)` user pages (300 a page, documented) `+ ceil(G / 500)`
//!   group pages (500 a page, documented) `+ ceil(C / 50)` bulk calls for its C membership
//!   changes (each move is one removal and one addition).
//!
//! Beside it, the same formula with every membership change a call of its own (bulk being
//! unusable is what this profile answers), and the wall time against those writes at Duo's
//! documented 300 writes a minute (times the scale). Calls and 429s are counted by the emulator. Parameters (environment): `BENCH_USERS` (2000),
//! `BENCH_GROUPS` (50), `BENCH_MEMBERSHIPS` (5000, at most users × groups), `BENCH_SCALE` (20).
//!
//! `cargo bench -p duoprov-sync --bench adverse_profile`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use duoprov_duo::{DuoClient, DuoConfig, PacingConfig};
use duoprov_emulator::config::{Profile, Settings};
use duoprov_emulator::{Emulator, Integration, RunningEmulator};
use duoprov_model::{GroupMember, GroupName, SubjectKey};
use duoprov_plan::safety::Approval;
use duoprov_plan::{Mapping, MappingConfig, Policy};
use duoprov_registry::{ImportData, OpenOptions, Store};
use duoprov_sync::{NoProgress, SyncOptions, SyncSettings};

fn param(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Membership `i` (of `m`): user `i % u` in group `(i % u + i / u) % g`; distinct while m ≤ u × g.
fn pair(i: usize, users: usize, groups: usize) -> (usize, usize) {
    let u = i % users;
    (u, (u + i / users) % groups)
}

fn document(users: usize, groups: usize, memberships: usize) -> String {
    let mut s = String::from("{\"subjects\":[");
    for i in 0..users {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{{\"id\":\"u{i:05}\",\"name\":\"User {i}\",\"login_id\":\"u{i:05}\",\"email\":\"u{i:05}@example.edu\"}}"));
    }
    s.push_str("],\"groups\":[");
    for g in 0..groups {
        if g > 0 {
            s.push(',');
        }
        s.push_str(&format!("{{\"name\":\"bench:g{g:04}\",\"description\":\"Group {g}\"}}"));
    }
    s.push_str("],\"memberships\":[");
    for i in 0..memberships {
        if i > 0 {
            s.push(',');
        }
        let (u, g) = pair(i, users, groups);
        s.push_str(&format!("{{\"group\":\"bench:g{g:04}\",\"subject\":\"u{u:05}\"}}"));
    }
    s.push_str("],\"markers\":[{\"provisioner\":\"bench\",\"folder\":\"bench\",\"scope\":\"sub\"}]}");
    s
}

/// Runs one full sync and prints what it cost against `minimum`.
/// Duo's documented write rate, per minute.
const DUO_WRITES_PER_MIN: f64 = 300.0;

/// Runs one full sync and prints what it cost against `minimum`, and against `single_minimum`
/// (the same formula with every membership change a call of its own: the least an account whose
/// bulk endpoint does not work allows), and the wall time against `single_minimum`'s writes at
/// Duo's documented write rate times `scale`.
#[allow(clippy::too_many_arguments)]
async fn measured_sync(
    label: &str,
    store: &dyn Store,
    duo: &DuoClient,
    settings: &SyncSettings,
    emulator: &RunningEmulator,
    minimum: usize,
    single_minimum: (usize, usize),
    scale: f64,
) {
    emulator.handle().clear_calls();
    let start = Instant::now();
    let prepared = duoprov_sync::prepare(store, duo, settings).await.expect("prepare");
    let options = SyncOptions { dry_run: false, approval: Approval::default(), saved: None, fence: None, ..Default::default() };
    let report = duoprov_sync::run(store, duo, settings, prepared, &options, &NoProgress).await.expect("run");
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(report.failed(), 0, "{:?}", report.failures.first());

    let calls = emulator.handle().calls();
    let mut by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for c in &calls {
        let e = by_kind.entry(c.endpoint.unwrap_or("unknown").to_owned()).or_default();
        e.0 += 1;
        if c.status == 429 {
            e.1 += 1;
        }
    }
    let total = calls.len();
    let too_many = calls.iter().filter(|c| c.status == 429).count();
    println!(
        "{label}: {} groups, {} users created; {} memberships created, {} deleted; {wall:.1} s",
        report.groups.created, report.users.created, report.memberships.created, report.memberships.deleted
    );
    for (kind, (n, limited)) in &by_kind {
        println!("  {kind:<24} {n:>6} calls{}", if *limited > 0 { format!(" ({limited} answered 429)") } else { String::new() });
    }
    println!("  total {total} calls, {too_many} answered 429; minimum {minimum}; calls ÷ minimum {:.2}", total as f64 / minimum as f64);
    let (single_calls, single_writes) = single_minimum;
    let bound = single_writes as f64 / (DUO_WRITES_PER_MIN * scale / 60.0);
    println!(
        "  minimum without bulk memberships {single_calls}; calls ÷ that {:.3}; wall time ÷ its {single_writes} writes at Duo's rate ({bound:.1} s) {:.2}",
        total as f64 / single_calls as f64,
        wall / bound
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    duoprov_duo::install_crypto_provider();
    let users = param("BENCH_USERS", 2000);
    let groups = param("BENCH_GROUPS", 50);
    let memberships = param("BENCH_MEMBERSHIPS", 5000).min(users * groups);
    let scale = param("BENCH_SCALE", 20) as f64;
    println!("adverse profile: {users} users, {groups} groups, {memberships} memberships; rate limits and client pacing scaled {scale}×");

    let skey = "bench-secret-key-0123456789abcdefghijklmn";
    let mut s = Settings::profile(Profile::Adverse);
    s.rate_limits.scale = scale;
    let emulator = Emulator::builder().integration(Integration::new("DIBENCH0000000000002", skey)).settings(s).spawn_on("127.0.0.1:0").await.expect("emulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = duoprov_registry::open(&format!("sqlite://{}", dir.path().join("bench.db").display()), &OpenOptions::default()).await.expect("registry");
    let mut data = ImportData::default();
    data.add_json("bench.json", &document(users, groups, memberships)).expect("parse");
    store.import(&data).await.expect("import");

    // duoprov's defaults, with only the pacing's rates scaled like the emulator's limits.
    let mut cfg = DuoConfig::new("127.0.0.1", "DIBENCH0000000000002", skey.to_owned().into());
    cfg.url = Some(emulator.base_url());
    let d = PacingConfig::default();
    let scaled = |per_min: u32| (per_min as f64 * scale) as u32;
    cfg.pacing = PacingConfig {
        writes_per_minute: scaled(d.writes_per_minute),
        single_reads_per_minute: scaled(d.single_reads_per_minute),
        page_reads_per_minute: scaled(d.page_reads_per_minute),
        list_lookups_per_minute: scaled(d.list_lookups_per_minute),
        bulk_per_minute: scaled(d.bulk_per_minute),
        // Time runs `scale` times faster for the rates, so for recovery too.
        recovery_interval: d.recovery_interval.div_f64(scale),
        ..d
    };
    let duo = DuoClient::new(cfg).expect("client");
    let settings = SyncSettings {
        provisioner: "bench".into(),
        policy: Policy::default(),
        mapping: Arc::new(Mapping::compile(&MappingConfig::default(), "bench").expect("mapping")),
        eligible_group: None,
        subject_sources: None,
        concurrency: 4,
        incremental: Default::default(),
        shares_duo_with: Vec::new(),
        sync_back: None,
        selection_rules: Default::default(),
        load_duo_users: false,
    };

    let minimum = 2 + groups + users.div_ceil(100) + memberships.div_ceil(50);
    let writes = groups + users.div_ceil(100) + memberships;
    measured_sync("initial sync", &*store, &duo, &settings, &emulator, minimum, (2 + writes, writes), scale).await;

    // Move a tenth of the memberships: users of the first round whose block of G (u / G) is a
    // multiple of 4 leave their first group for one of the next round's, which they are not in
    // (10 % of each group's first-round members, under the default removal limits).
    let rounds = memberships.div_ceil(users);
    let mut changes: usize = 0;
    if rounds < groups {
        for u in (0..users.min(memberships)).filter(|u| (u / groups).is_multiple_of(4)) {
            let (from, to) = (u % groups, (u + rounds) % groups);
            let subject = GroupMember::Subject(SubjectKey::local(format!("u{u:05}")));
            let removed = store.remove_member(&GroupName::parse(&format!("bench:g{from:04}")).expect("name"), &subject).await.expect("remove");
            let added = store.add_member(&GroupName::parse(&format!("bench:g{to:04}")).expect("name"), &subject).await.expect("add");
            changes += usize::from(removed) + usize::from(added);
        }
    }
    let minimum = users.div_ceil(300) + groups.div_ceil(500) + changes.div_ceil(50);
    // A fresh client, as a new `duoprov sync` process would have.
    let duo = DuoClient::new(duo.config().clone()).expect("client");
    let reads = users.div_ceil(300) + groups.div_ceil(500);
    measured_sync(&format!("changing sync ({changes} membership changes)"), &*store, &duo, &settings, &emulator, minimum, (reads + changes, changes), scale)
        .await;
    emulator.shutdown().await.ok();
}
