//! Adaptive pacing end to end: a full sync against the emulator with its rate limits on (each
//! class limited on its own, bulk calls and id-list lookups included), everything scaled by
//! [`SCALE`] so that a Duo minute lasts six seconds (the emulator's limiters run on the real
//! clock, so time cannot be paused here). Against a tenant whose limits are a third to a half of
//! Duo's documented figures, the client's per-class rates come down after a few 429s and the sync
//! converges; against the documented limits, the client's default pacing (80 % of them) draws no
//! 429 at all. Id-list lookups and bulk calls start at the page-read and write rates (their own
//! limits are unverified); against a tenant that holds them to the stricter 40/min and 50/min,
//! a steady stream of them is brought under those limits by a bounded number of 429s, and every
//! call succeeds. The run report's pacing profile tells, per phase, how long each class sat idle
//! and how long it waited for tokens.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use duoprov_duo::{BulkMode, BulkOp, DuoClient, DuoConfig, NewUser, PacingConfig, RetryConfig, UserFields};
use duoprov_emulator::config::RateLimits;
use duoprov_emulator::{Emulator, EmulatorHandle, Integration};
use duoprov_model::{FolderPath, GroupMember, GroupName, Marker, MarkerScope, MarkerTarget, SubjectKey, SubjectPatch};
use duoprov_plan::safety::Approval;
use duoprov_plan::{Mapping, MappingConfig, Policy};
use duoprov_registry::{NodeAttrs, OpenOptions};
use duoprov_sync::{NoProgress, RunReport, SyncOptions, SyncSettings};

const IKEY: &str = "DIPACING000000000001";
const SKEY: &str = "pacing-test-secret-key-0123456789abcdef";

/// Every rate (the emulator's limits and the client's pacing and waits) is this many times Duo's.
const SCALE: f64 = 10.0;
/// Calls in flight at once.
const CONCURRENCY: usize = 4;
const USERS: usize = 40;
const GROUPS: usize = 3;

/// The client's recovery interval (Duo's 30 s, scaled).
fn recovery() -> Duration {
    Duration::from_secs_f64(30.0 / SCALE)
}

/// Emulator limits per Duo minute, scaled, with bursts of 0.5 % of a real minute's calls (5
/// writes at the lower tenant's 100/min, 15 at Duo's 300/min).
fn limits(write: u32, read_one: u32, read_page: u32, bulk: u32, id_list: u32) -> RateLimits {
    RateLimits {
        enabled: true,
        read_one_per_min: read_one,
        read_page_per_min: read_page,
        write_per_min: write,
        bulk_per_min: Some(bulk),
        id_list_per_min: Some(id_list),
        scale: SCALE,
        burst: 5, // replaced by the fraction below
        burst_fraction: Some(0.005),
    }
}

/// The client's default pacing and retry schedule, scaled.
fn client(url: String) -> DuoClient {
    let d = PacingConfig::default();
    let s = |per_min: u32| (f64::from(per_min) * SCALE) as u32;
    let mut cfg = DuoConfig::new("127.0.0.1", IKEY, SKEY.to_owned().into());
    cfg.url = Some(url);
    cfg.pacing = PacingConfig {
        writes_per_minute: s(d.writes_per_minute),
        single_reads_per_minute: s(d.single_reads_per_minute),
        page_reads_per_minute: s(d.page_reads_per_minute),
        list_lookups_per_minute: s(d.list_lookups_per_minute),
        bulk_per_minute: s(d.bulk_per_minute),
        recovery_interval: recovery(),
        ..d
    };
    let r = RetryConfig::default();
    cfg.retry = RetryConfig {
        initial_backoff: r.initial_backoff.div_f64(SCALE),
        max_backoff: r.max_backoff.div_f64(SCALE),
        max_jitter: r.max_jitter.div_f64(SCALE),
        max_server_retries: r.max_server_retries,
    };
    cfg.max_concurrency = CONCURRENCY;
    // Membership changes as single writes: the write class carries the load.
    cfg.bulk = BulkMode::Never;
    DuoClient::new(cfg).expect("client")
}

fn group(i: usize) -> GroupName {
    GroupName::parse(&format!("app:duo:g{i}")).unwrap()
}

fn subject(i: usize) -> SubjectKey {
    SubjectKey::new("ldap", format!("s{i}"))
}

/// User `i` is in groups `i % GROUPS` and `(i + 1) % GROUPS`.
fn wanted() -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = (0..GROUPS).map(|g| (format!("g{g}"), BTreeSet::new())).collect();
    for i in 0..USERS {
        for g in [i % GROUPS, (i + 1) % GROUPS] {
            m.entry(format!("g{g}")).or_default().insert(format!("u{i}"));
        }
    }
    m
}

/// Group name → member usernames, as Duo holds them.
fn memberships(handle: &EmulatorHandle) -> BTreeMap<String, BTreeSet<String>> {
    let dump = handle.state();
    dump.groups
        .iter()
        .map(|g| {
            let members = dump.users.iter().filter(|u| u.groups.contains(&g.group_id)).map(|u| u.username.clone()).collect();
            (g.name.clone(), members)
        })
        .collect()
}

struct Outcome {
    report: RunReport,
    /// 429s the emulator answered.
    server_429s: usize,
    elapsed: Duration,
}

/// A full sync of the scenario against a fresh emulator with `limits`; checks that it converged
/// (Duo holds exactly the registry's memberships and a second plan is empty).
async fn sync_under(limits: RateLimits, what: &str) -> Outcome {
    let emulator = Emulator::builder()
        .integration(Integration::new(IKEY, SKEY))
        .configure(|s| s.rate_limits = limits)
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator");
    let handle = emulator.handle().clone();
    let duo = client(emulator.base_url());
    let store = duoprov_registry::open("sqlite::memory:", &OpenOptions::default()).await.unwrap();
    for i in 0..USERS {
        let patch = SubjectPatch { login_id: Some(Some(format!("u{i}"))), name: Some(Some(format!("Person {i}"))), ..Default::default() };
        store.upsert_subject(&subject(i), &patch).await.unwrap();
    }
    for g in 0..GROUPS {
        store.add_group(&group(g), &NodeAttrs::default(), true).await.unwrap();
    }
    for i in 0..USERS {
        for g in [i % GROUPS, (i + 1) % GROUPS] {
            store.add_member(&group(g), &GroupMember::Subject(subject(i))).await.unwrap();
        }
    }
    let marker = Marker { provisioner: "p".into(), target: MarkerTarget::Folder(FolderPath::parse("app:duo").unwrap()), scope: MarkerScope::Sub, provision: true };
    store.assign_marker(&marker).await.unwrap();
    let settings = SyncSettings {
        provisioner: "p".into(),
        policy: Policy::default(),
        mapping: Arc::new(Mapping::compile(&MappingConfig::default(), "p").unwrap()),
        eligible_group: None,
        subject_sources: None,
        concurrency: CONCURRENCY,
        incremental: Default::default(),
        load_duo_users: false,
        shares_duo_with: Vec::new(),
        sync_back: None,
        selection_rules: Default::default(),
    };

    let start = Instant::now();
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap_or_else(|e| panic!("{what}: prepare: {e}"));
    let options = SyncOptions { dry_run: false, approval: Approval::exactly(&prepared.plan), saved: None, fence: None, ..Default::default() };
    let report = duoprov_sync::run(&*store, &duo, &settings, prepared, &options, &NoProgress).await.unwrap_or_else(|e| panic!("{what}: run: {e}"));
    let elapsed = start.elapsed();

    assert!(report.failures.is_empty(), "{what}: {:?}", report.failures);
    assert_eq!(report.users.created, USERS, "{what}");
    assert_eq!(memberships(&handle), wanted(), "{what}");
    let again = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap_or_else(|e| panic!("{what}: second prepare: {e}"));
    assert!(again.plan.ops.is_empty(), "{what}: a second plan is not empty: {:?}", again.plan.ops);

    let server_429s = handle.calls().iter().filter(|c| c.status == 429).count();
    emulator.shutdown().await.ok();
    Outcome { report, server_429s, elapsed }
}

fn class<'a>(r: &'a RunReport, name: &str) -> &'a duoprov_sync::ClassReport {
    r.duo_classes.iter().find(|c| c.class == name).unwrap_or_else(|| panic!("no class {name} in {:?}", r.duo_classes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_against_a_tenant_with_lower_limits_than_documented_converges_after_few_429s() {
    // A third of Duo's write limit, half of its other figures (bulk and id lists included).
    let out = sync_under(limits(100, 150, 100, 25, 20), "lower limits").await;
    let r = &out.report;
    let writes = class(r, "write");
    let total: u64 = r.duo_classes.iter().map(|c| c.rate_limited).sum();
    assert_eq!(total as usize, out.server_429s, "every 429 the emulator answered is in the report: {:?}", r.duo_classes);
    // Memberships are single writes (3 group creates, 2 per user): the write class meets the
    // limit, and Duo has to slow it down.
    assert!(writes.calls >= (GROUPS + 2 * USERS) as u64, "{writes:?}");
    assert!(writes.rate_limited >= 1, "the client paced writes above the tenant's limit yet saw no 429: {writes:?}");
    let limit = 100.0 * SCALE;
    assert!(writes.lowest_per_minute.is_some_and(|l| l < limit), "the write rate never came under the limit: {writes:?}");
    // The bound: reaching the limit from the ceiling takes two cuts (2 400 → 1 200 → 600 per
    // minute against 1 000), and afterwards a cut at most every two recovery intervals (a probe
    // above the proven rate follows an interval that proved it, and a failed probe holds off the
    // next for at least two). Each cut can come
    // with a 429 for every other call already in flight, which does not cut again.
    let cuts = 2.0 + out.elapsed.as_secs_f64() / (2.0 * recovery().as_secs_f64()) + 1.0;
    let bound = (cuts * CONCURRENCY as f64).floor() as u64;
    for c in &r.duo_classes {
        assert!(c.rate_limited <= bound, "{}: {} 429s in {:.1} s (bound {bound}): {:?}", c.class, c.rate_limited, out.elapsed.as_secs_f64(), r.duo_classes);
    }
    assert!(writes.rate_limited * 5 <= writes.calls, "more than one write in five drew a 429: {writes:?}");
    assert!(r.summary().contains("write ") && r.summary().contains("rate-limited"), "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_against_the_documented_limits_draws_no_429() {
    // Duo staff's figures: 300 writes, 300 single reads, 200 page reads, 40 unpaged lookups, and
    // the secondary source's 50 bulk calls per minute.
    let out = sync_under(limits(300, 300, 200, 50, 40), "documented limits").await;
    let r = &out.report;
    assert_eq!(out.server_429s, 0, "{:?}", r.duo_classes);
    for c in &r.duo_classes {
        assert_eq!(c.rate_limited, 0, "{c:?}");
        assert_eq!((c.rate_per_minute, c.lowest_per_minute), (c.ceiling_per_minute, c.ceiling_per_minute), "{c:?}");
    }
    assert!(class(r, "write").calls >= (GROUPS + 2 * USERS) as u64);
    assert_eq!(class(r, "bulk").calls, 1, "one bulk create for the {USERS} users");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_and_bulk_calls_against_a_tenant_holding_them_to_40_and_50_a_minute_come_under_those_limits_after_few_429s() {
    // Duo staff's figures for the documented classes; id-list lookups at the 40/min of "get all
    // objects (no paging)" and bulk calls at a secondary source's 50/min, the readings under
    // which the defaults (160 and 240) start too high.
    let (lookup_limit, bulk_limit) = (40u32, 50u32);
    let emulator = Emulator::builder()
        .integration(Integration::new(IKEY, SKEY))
        .configure(|s| s.rate_limits = limits(300, 300, 200, bulk_limit, lookup_limit))
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator");
    let handle = emulator.handle().clone();
    let duo = client(emulator.base_url());
    let user = duo.create_user(&NewUser::new("steady")).await.expect("create user");
    let d = PacingConfig::default();
    assert!(d.list_lookups_per_minute > lookup_limit && d.bulk_per_minute > bulk_limit, "the defaults start above these limits: {d:?}");

    // A daemon's steady stream: each round one lookup by id and one bulk call, as an incremental
    // run with work makes them, for about three scaled Duo minutes at the stricter limits.
    const ROUNDS: usize = 120;
    let start = Instant::now();
    let lookups = async {
        for i in 0..ROUNDS {
            let found = duo.get_users_by_ids(std::slice::from_ref(&user.user_id)).await.unwrap_or_else(|e| panic!("lookup {i}: {e}"));
            assert_eq!(found.len(), 1, "lookup {i}");
        }
    };
    let bulks = async {
        for i in 0..ROUNDS {
            let fields = UserFields { realname: Some(format!("Steady {i}")), ..Default::default() };
            let results = duo.bulk(&[BulkOp::ModifyUser { user_id: user.user_id.clone(), fields }]).await.unwrap_or_else(|e| panic!("bulk {i}: {e}"));
            assert!(results.iter().all(Result::is_ok), "bulk {i}: {results:?}");
        }
    };
    futures::join!(lookups, bulks);
    let elapsed = start.elapsed();

    let server_429s = handle.calls().iter().filter(|c| c.status == 429).count() as u64;
    let stats = duo.pacing_stats();
    let stat = |name: &str| stats.iter().find(|c| c.class.name() == name).cloned().unwrap_or_else(|| panic!("no class {name}"));
    let (lookup, bulk) = (stat("list_lookup"), stat("bulk"));
    assert_eq!(lookup.rate_limited + bulk.rate_limited, server_429s, "every 429 is counted in its class: {stats:?}");
    for (c, limit) in [(&lookup, lookup_limit), (&bulk, bulk_limit)] {
        let limit = f64::from(limit) * SCALE;
        let ceiling = c.ceiling_per_minute.expect("paced");
        assert!(c.rate_limited >= 1, "paced above the tenant's limit yet no 429: {c:?}");
        assert!(c.lowest_per_minute.is_some_and(|l| l < limit), "the rate never came under the limit: {c:?}");
        // Cuts to come under the limit from the ceiling, then at most one every two recovery
        // intervals (two steps of 10 % of the ceiling climb back over the limit from under it),
        // one spare; each with at most one 429 per call in flight (a class has one here).
        let to_limit = (ceiling / limit).log2().ceil() + 1.0;
        let bound = (to_limit + elapsed.as_secs_f64() / (2.0 * recovery().as_secs_f64()) + 1.0).floor() as u64;
        assert!(c.rate_limited <= bound, "{} 429s in {:.1} s (bound {bound}): {c:?}", c.rate_limited, elapsed.as_secs_f64());
        assert!(c.rate_limited * 10 <= c.calls, "more than one call in ten drew a 429: {c:?}");
    }
    emulator.shutdown().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_the_documented_limits_the_default_small_burst_draws_no_429_and_no_burst_still_converges() {
    // The emulator's default burst (5 calls a class, whatever the scale): the client's own burst
    // of 5 and its pacing at 80 % fit under it.
    let small = RateLimits { burst: RateLimits::default().burst, burst_fraction: None, ..limits(300, 300, 200, 50, 40) };
    let out = sync_under(small, "documented limits, default burst").await;
    assert_eq!(out.server_429s, 0, "{:?}", out.report.duo_classes);
    // No burst at all: the client's bursts are answered 429, retried and paced down, and the
    // sync still converges (checked by `sync_under`). The emulator's count also holds the 429s
    // of `sync_under`'s second plan, so the run report's count is at most it.
    let none = RateLimits { burst: 1, burst_fraction: None, ..limits(300, 300, 200, 50, 40) };
    let out = sync_under(none, "documented limits, no burst").await;
    let counted: u64 = out.report.duo_classes.iter().map(|c| c.rate_limited).sum();
    assert!(out.server_429s > 0, "a client bursting 5 calls met no 429 from a limiter without burst");
    assert!(counted >= 1 && counted as usize <= out.server_429s, "{counted} in the report, {}: {:?}", out.server_429s, out.report.duo_classes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_report_profiles_each_phase_with_the_time_each_class_sat_idle_or_waited_for_a_token() {
    let out = sync_under(limits(300, 300, 200, 50, 40), "profile").await;
    let profile = out.report.pacing_profile.as_ref().expect("a run returns its pacing profile");
    let names: Vec<&str> = profile.phases.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(names, ["read", "plan", "create", "update", "memberships", "delete"]);
    for w in profile.phases.windows(2) {
        assert!(w[0].from_secs <= w[0].to_secs && w[0].to_secs <= w[1].from_secs + 1e-3, "phases in order, not overlapping: {:?}", profile.phases);
    }
    let within = |phase: &str, class: &str| {
        let p = profile.phases.iter().find(|p| p.phase == phase).unwrap();
        let c = p.classes.iter().find(|c| c.0 == class).unwrap_or_else(|| panic!("no {class} in {phase}: {p:?}"));
        (p.to_secs - p.from_secs, c.1, c.2)
    };
    // Create: three group creates (writes) first, then one bulk create: the bulk class sat idle
    // while the groups were created.
    let (span, bulk_idle, _) = within("create", "bulk");
    assert!(bulk_idle > 0.0 && bulk_idle < span, "bulk idle {bulk_idle:.3} s of {span:.3} s");
    // Memberships: 80 single writes paced at 2 400 a minute (after a burst of 5) take about two
    // seconds, nearly all of it with a write waiting for a token; no bulk call at all.
    let (span, write_idle, write_wait) = within("memberships", "write");
    assert!(span >= 1.5, "{span:.3} s");
    assert!(write_wait >= 0.8 * span && write_idle <= 0.1 * span, "write: waited {write_wait:.3} s, idle {write_idle:.3} s of {span:.3} s");
    let (_, bulk_idle, bulk_wait) = within("memberships", "bulk");
    assert!(bulk_idle >= 0.99 * span && bulk_wait == 0.0, "bulk: idle {bulk_idle:.3} s, waited {bulk_wait:.3} s of {span:.3} s");
    // The write class was never cut: its timeline is the ceiling from the run's start.
    let writes = profile.classes.iter().find(|c| c.class == "write").unwrap();
    assert_eq!(writes.rate_timeline.iter().map(|p| p.1).collect::<Vec<_>>(), [2400.0], "{:?}", writes.rate_timeline);
    assert_eq!(writes.rate_changes, 0);
}
