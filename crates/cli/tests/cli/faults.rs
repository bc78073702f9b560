//! Reliability end to end, through the binary against an in-process emulator: a sync of 2 000
//! users, 200 groups and 20 000 memberships through seeded 429s, 500s, 503s, connection resets and
//! random latency succeeds in one run; a sync killed with SIGKILL at 20 seeded points and run again
//! each time ends exactly where a clean run ends. Duplicate creates are counted from the
//! emulator's own call log (what Duo executed), never from what the client believes it sent.
//! Both also run, smaller, against the emulator's `adverse` profile (bulk remove answered per-op
//! 404, bare bulk replies, bulk and id-list lookups in small rate classes, non-unique group
//! names, small bursts), rate limits on, scaled from per minute to per second: the client meets
//! 429s and falls back from bulk to single calls, and still converges without a duplicate create.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use duoprov_emulator::{Emulator, Integration, Profile, RunningEmulator, Settings};
use serde_json::{Value, json};

use crate::run;
use crate::Seeded;

pub const IKEY: &str = "DITESTFAULTS00000001";
pub const SKEY: &str = "faults-test-secret-key-0123456789abcdefgh";

/// A generated registry: `users` subjects and `groups` groups under `app:duo` (selected by
/// provisioner duoTest), every user in `per_user` groups spread evenly.
pub struct Tenant {
    pub users: usize,
    pub groups: usize,
    pub per_user: usize,
}

impl Tenant {
    fn username(i: usize) -> String {
        format!("u{i:05}")
    }

    fn group(j: usize) -> String {
        format!("g{j:04}")
    }

    /// The groups of user `i`: `per_user` distinct groups, each group ending with the same count.
    fn groups_of(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let stride = self.groups / self.per_user;
        (0..self.per_user).map(move |k| (i + k * stride) % self.groups)
    }

    pub fn memberships(&self) -> usize {
        self.users * self.per_user
    }

    /// The import document (docs/import.md).
    pub fn import_json(&self) -> String {
        let subjects: Vec<Value> = (0..self.users)
            .map(|i| {
                let u = Self::username(i);
                json!({"id": u, "name": format!("User {i}"), "login_id": u, "email": format!("{u}@example.edu")})
            })
            .collect();
        let groups: Vec<Value> =
            (0..self.groups).map(|j| json!({"name": format!("app:duo:{}", Self::group(j)), "description": format!("group {j}")})).collect();
        let memberships: Vec<Value> = (0..self.users)
            .flat_map(|i| self.groups_of(i).map(move |j| json!({"group": format!("app:duo:{}", Self::group(j)), "subject": Self::username(i)})))
            .collect();
        json!({
            "subjects": subjects,
            "groups": groups,
            "memberships": memberships,
            "markers": [{"provisioner": "duoTest", "folder": "app:duo"}],
        })
        .to_string()
    }

    /// What Duo should hold after a sync.
    pub fn expected(&self) -> World {
        let mut w = World::default();
        for j in 0..self.groups {
            w.groups.insert(Self::group(j), (format!("group {j}"), BTreeSet::new()));
        }
        for i in 0..self.users {
            let u = Self::username(i);
            w.users.insert(u.clone(), (format!("User {i}"), format!("{u}@example.edu"), "active".into()));
            for j in self.groups_of(i) {
                if let Some(g) = w.groups.get_mut(&Self::group(j)) {
                    g.1.insert(u.clone());
                }
            }
        }
        w
    }
}

/// Duo's state compared by names, not ids: group name → (description, member usernames);
/// username → (realname, email, status).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct World {
    pub groups: BTreeMap<String, (String, BTreeSet<String>)>,
    pub users: BTreeMap<String, (String, String, String)>,
}

impl World {
    pub fn of(emulator: &RunningEmulator) -> World {
        let dump = serde_json::to_value(emulator.handle().state()).expect("state as JSON");
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let mut w = World::default();
        let mut name_of = BTreeMap::new();
        for g in dump["groups"].as_array().into_iter().flatten() {
            name_of.insert(s(&g["group_id"]), s(&g["name"]));
            assert!(w.groups.insert(s(&g["name"]), (s(&g["desc"]), BTreeSet::new())).is_none(), "two Duo groups named {}", g["name"]);
        }
        for u in dump["users"].as_array().into_iter().flatten() {
            let username = s(&u["username"]);
            for gid in u["groups"].as_array().into_iter().flatten() {
                let name = &name_of[&s(gid)];
                w.groups.get_mut(name).expect("group").1.insert(username.clone());
            }
            assert!(w.users.insert(username.clone(), (s(&u["realname"]), s(&u["email"]), s(&u["status"]))).is_none(), "two Duo users named {username}");
        }
        w
    }

    pub fn memberships(&self) -> usize {
        self.groups.values().map(|(_, m)| m.len()).sum()
    }

    /// A short description of how two worlds differ (the first few differences).
    pub fn diff(&self, other: &World) -> String {
        let mut out = Vec::new();
        for (name, g) in &self.groups {
            match other.groups.get(name) {
                None => out.push(format!("group {name} only on the left")),
                Some(o) if o != g => out.push(format!("group {name}: {} vs {} members", g.1.len(), o.1.len())),
                _ => {}
            }
        }
        out.extend(other.groups.keys().filter(|n| !self.groups.contains_key(*n)).map(|n| format!("group {n} only on the right")));
        for (name, u) in &self.users {
            if other.users.get(name) != Some(u) {
                out.push(format!("user {name}: {u:?} vs {:?}", other.users.get(name)));
            }
        }
        out.extend(other.users.keys().filter(|n| !self.users.contains_key(*n)).map(|n| format!("user {n} only on the right")));
        out.truncate(10);
        out.join("\n")
    }
}

/// Every name the emulator ever created more than once (group names and usernames apart),
/// from its own call log, and how many groups and users it created in all.
pub fn duplicate_creates(emulator: &RunningEmulator) -> (Vec<String>, usize, usize) {
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    let mut users: BTreeMap<String, usize> = BTreeMap::new();
    for c in emulator.handle().calls() {
        let seen = if c.endpoint == Some("groups.create") { &mut groups } else { &mut users };
        for name in c.created {
            *seen.entry(name).or_default() += 1;
        }
    }
    let dups = groups
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(g, n)| format!("group {g} × {n}"))
        .chain(users.iter().filter(|(_, n)| **n > 1).map(|(u, n)| format!("user {u} × {n}")))
        .collect();
    (dups, groups.len(), users.len())
}

/// An emulator with rate limiting off (the client's pacing is what is under test elsewhere)
/// and the given fault rules.
pub async fn emulator(faults: &str) -> RunningEmulator {
    Emulator::builder()
        .integration(Integration::new(IKEY, SKEY))
        .configure(|s| {
            s.rate_limits.enabled = false;
            s.id_seed = Some(8);
        })
        .faults(faults)
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator")
}

/// An emulator with the adverse profile and the given fault rules. Its rate limits are on, per
/// second instead of per minute (60 times faster) with the profile's bursts (5 % of a minute: 3
/// bulk calls, 2 id-list lookups, 15 writes, 10 page reads), so a client pacing far above them
/// meets 429s without the test waiting minutes.
pub async fn adverse_emulator(faults: &str) -> RunningEmulator {
    Emulator::builder()
        .integration(Integration::new(IKEY, SKEY))
        .settings(Settings::profile(Profile::Adverse))
        .configure(|s| {
            s.rate_limits.scale = 60.0;
            // 5 % of a real minute's calls at once, as the bursts this suite was written for.
            s.rate_limits.burst_fraction = Some(0.05 / 60.0);
            s.id_seed = Some(8);
        })
        .faults(faults)
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator")
}

/// A folder with the secret key, a configuration for `emulator` (client pacing far above what
/// the test needs, `concurrency` calls in flight, 6 retries after a 5xx or a reset) and the
/// import document `registry` imported.
pub fn folder(dir: &Path, emulator: &RunningEmulator, concurrency: usize, registry: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("duo.skey"), SKEY).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("duo.skey"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = format!(
        "[registry]\nurl = \"sqlite://registry.db\"\n\n[duo.test]\napi_host = \"127.0.0.1\"\nintegration_key = \"{IKEY}\"\nsecret_key_file = \"duo.skey\"\nurl = \"{}\"\n\
         writes_per_minute = 600000\nsingle_reads_per_minute = 600000\npage_reads_per_minute = 600000\nlist_lookups_per_minute = 600000\nbulk_per_minute = 600000\nmax_concurrency = {concurrency}\nserver_retries = 6\n\n\
         [provisioner.duoTest]\nduo = \"test\"\nconcurrency = {concurrency}\n",
        emulator.base_url()
    );
    crate::write_config(dir, config).unwrap();
    std::fs::write(dir.join("tenant.json"), registry).unwrap();
    run(dir, &["import", "tenant.json"], 0);
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_through_429s_5xx_resets_and_latency_succeeds_in_one_run_without_duplicate_creates() {
    let tenant = Tenant { users: 2000, groups: 200, per_user: 10 };
    // About 10 % 429, 5 % 500/503, 2 % resets and 0–20 ms of latency on every endpoint, plus one
    // reset and one 5xx for sure on each kind of write, so the read-back paths always run. About
    // 7 % of attempts fail with a 5xx or a reset: with the default 3 retries a call would fail
    // for good with probability 0.068⁴ ≈ 2·10⁻⁵, about 1.5 % over this sync's ~700 calls, so the
    // connection gets `server_retries = 6` (0.068⁷ ≈ 7·10⁻⁹ per call).
    // (The sure faults come first: for one call, the first rule that fires gives the answer.)
    let faults = "seed=8; reset after=3 first=1 on=groups.create; 500 after=7 first=1 on=groups.create; \
                  reset after=2 first=1 on=users.bulk_create; 503 after=5 first=1 on=users.bulk_create; \
                  reset after=10 first=1 on=bulk; 500 after=20 first=1 on=bulk; \
                  429 p=0.1; 500 p=0.025; 503 p=0.025; reset p=0.02; latency=0..20ms";
    let emu = emulator(faults).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let started = Instant::now();
    folder(dir, &emu, 16, &tenant.import_json());
    let import_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let (out, _) = run(dir, &["sync", "duoTest", "--json"], 0);
    let sync_s = started.elapsed().as_secs_f64();
    let report = json_of(&out);
    assert_eq!(report["groups"]["created"], tenant.groups, "{report:#}");
    assert_eq!(report["users"]["created"], tenant.users, "{report:#}");
    assert_eq!(report["memberships"]["created"], tenant.memberships(), "{report:#}");
    assert_eq!(report["failures"], json!([]), "no object failed");

    // The faults really happened, on every kind of call the sync makes.
    let calls = emu.handle().calls();
    let faulted = |endpoint: &str, fault: &str| calls.iter().filter(|c| c.endpoint == Some(endpoint) && c.fault == Some(fault)).count();
    for endpoint in ["groups.create", "users.bulk_create", "bulk"] {
        assert!(faulted(endpoint, "reset") >= 1 && faulted(endpoint, "500") + faulted(endpoint, "503") >= 1, "{endpoint} was not faulted");
    }
    let by_fault = |f: &str| calls.iter().filter(|c| c.fault == Some(f)).count();
    let (n429, n5xx, resets) = (by_fault("429"), by_fault("500") + by_fault("503"), by_fault("reset"));
    assert!(n429 >= 20 && n5xx >= 10 && resets >= 4, "429: {n429}, 5xx: {n5xx}, resets: {resets}");

    // Duo holds exactly the registry, and nothing was created twice.
    let world = World::of(&emu);
    assert_eq!(world.memberships(), tenant.memberships());
    assert!(world == tenant.expected(), "{}", world.diff(&tenant.expected()));
    let (dups, groups_created, users_created) = duplicate_creates(&emu);
    assert_eq!(dups, Vec::<String>::new(), "duplicate creates");
    assert_eq!((groups_created, users_created), (tenant.groups, tenant.users));

    // The run log says succeeded with no object in error; the next run plans nothing (read
    // through the same faults).
    let status = json_of(&run(dir, &["status", "duoTest", "--json"], 0).0);
    assert_eq!(status["runs"][0]["status"], "succeeded", "{status:#}");
    assert_eq!(status["errors"], json!([]), "{status:#}");
    let started = Instant::now();
    let plan = json_of(&run(dir, &["plan", "duoTest", "--json"], 0).0);
    let plan_s = started.elapsed().as_secs_f64();
    assert_eq!(plan["plan"]["ops"], json!([]), "the next run plans nothing");
    eprintln!(
        "faults: {} users, {} groups, {} memberships; import {import_s:.1} s, sync {sync_s:.1} s, second plan {plan_s:.1} s; \
         {} calls, {n429} × 429, {n5xx} × 5xx, {resets} resets",
        tenant.users,
        tenant.groups,
        tenant.memberships(),
        calls.len()
    );
}

/// The same under the adverse profile, smaller (its membership writes are single calls once
/// bulk's bare reply is not understood, each its own call through the faults): 120 users, 20
/// groups, 480 memberships. Random 500s spare the
/// membership add, whose 500/50001 is Duo's group-limit answer and is not retried; 503s and
/// resets still hit it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_adverse_profile_a_full_sync_through_429s_5xx_resets_and_latency_succeeds_in_one_run_without_duplicate_creates() {
    let tenant = Tenant { users: 120, groups: 20, per_user: 4 };
    let faults = "seed=8; reset after=3 first=1 on=groups.create; 500 after=7 first=1 on=groups.create; \
                  reset after=1 first=1 on=users.bulk_create; 503 after=2 first=1 on=users.bulk_create; \
                  reset after=10 first=1 on=users.groups.add; 503 after=20 first=1 on=users.groups.add; \
                  429 p=0.1; 500 p=0.025 on=groups.*,users.list,users.get,users.create,users.bulk_create,users.modify,bulk; \
                  503 p=0.025; reset p=0.02; latency=0..20ms";
    let emu = adverse_emulator(faults).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    folder(dir, &emu, 16, &tenant.import_json());

    let started = Instant::now();
    let (out, _) = run(dir, &["sync", "duoTest", "--json"], 0);
    let sync_s = started.elapsed().as_secs_f64();
    let report = json_of(&out);
    assert_eq!(report["groups"]["created"], tenant.groups, "{report:#}");
    assert_eq!(report["users"]["created"], tenant.users, "{report:#}");
    assert_eq!(report["memberships"]["created"], tenant.memberships(), "{report:#}");
    assert_eq!(report["failures"], json!([]), "no object failed");

    // The faults happened on every kind of write; the emulator's own rate limits answered 429
    // too; bulk was tried, its bare reply not understood, and the memberships went as single adds.
    let calls = emu.handle().calls();
    let faulted = |endpoint: &str, fault: &str| calls.iter().filter(|c| c.endpoint == Some(endpoint) && c.fault == Some(fault)).count();
    for endpoint in ["groups.create", "users.bulk_create", "users.groups.add"] {
        assert!(faulted(endpoint, "reset") >= 1 && faulted(endpoint, "500") + faulted(endpoint, "503") >= 1, "{endpoint} was not faulted");
    }
    let limited = calls.iter().filter(|c| c.status == 429 && c.fault.is_none()).count();
    assert!(limited >= 1, "the adverse rate limits never answered 429");
    let count = |endpoint: &str| calls.iter().filter(|c| c.endpoint == Some(endpoint) && c.fault.is_none() && c.status != 429).count();
    assert!(count("bulk") >= 1, "bulk was tried");
    assert!(count("users.groups.add") >= tenant.memberships(), "memberships were added one by one");

    let world = World::of(&emu);
    assert!(world == tenant.expected(), "{}", world.diff(&tenant.expected()));
    let (dups, groups_created, users_created) = duplicate_creates(&emu);
    assert_eq!(dups, Vec::<String>::new(), "duplicate creates");
    assert_eq!((groups_created, users_created), (tenant.groups, tenant.users));
    let plan = json_of(&run(dir, &["plan", "duoTest", "--json"], 0).0);
    assert_eq!(plan["plan"]["ops"], json!([]), "the next run plans nothing");
    eprintln!("adverse faults: sync {sync_s:.1} s; {} calls, {limited} × 429 from the rate limits", calls.len());
}

fn spawn_sync(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_duoprov"))
        .args(["sync", "duoTest"])
        .current_dir(dir)
        .env_remove("DUOPROV_CONFIG")
        .env_remove("DUOPROV_REGISTRY_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn duoprov sync")
}

fn last_seq(emu: &RunningEmulator) -> u64 {
    emu.handle().calls().last().map(|c| c.seq).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_at_20_random_points_ends_where_a_clean_run_ends() {
    let tenant = Tenant { users: 1600, groups: 120, per_user: 10 };
    // Writes take 20–60 ms each (bulk user creates 150–250 ms), so the apply (120 group creates,
    // 16 bulk creates, 320 bulk membership calls, 4 at a time) lasts a few seconds and every
    // phase lasts long enough to be hit.
    let slow = "seed=5; latency=20..60ms on=groups.create,bulk; latency=150..250ms on=users.bulk_create";
    let emu = emulator(slow).await;
    let clean_emu = emulator(slow).await;
    killed_at_20_points_ends_where_a_clean_run_ends(&tenant, &emu, &clean_emu, ["groups.create", "users.bulk_create", "bulk"]).await;
}

/// The same under the adverse profile, at a tenth of the memberships (the membership phase is
/// single adds once bulk's bare reply is not understood, each its own call; each run's one bulk
/// call still adds 50): 320 users, 30 groups, 1 600 memberships; bulk user creates take
/// 300–500 ms so their phase, four calls, lasts long enough to be hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_adverse_profile_a_sync_killed_at_20_random_points_ends_where_a_clean_run_ends() {
    let tenant = Tenant { users: 320, groups: 30, per_user: 5 };
    let slow = "seed=5; latency=20..60ms on=groups.create; latency=300..500ms on=users.bulk_create";
    let emu = adverse_emulator(slow).await;
    let clean_emu = adverse_emulator(slow).await;
    killed_at_20_points_ends_where_a_clean_run_ends(&tenant, &emu, &clean_emu, ["groups.create", "users.bulk_create", "users.groups.add"]).await;
}

/// Kills a sync of `tenant` into `emu` at 20 seeded points, in the apply's phases (`phases`: the
/// group create, user create and membership endpoints), then checks the last run converges to
/// what one clean run into `clean_emu` gives, with no create executed twice.
async fn killed_at_20_points_ends_where_a_clean_run_ends(tenant: &Tenant, emu: &RunningEmulator, clean_emu: &RunningEmulator, phases: [&str; 3]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("killed");
    folder(&dir, emu, 4, &tenant.import_json());

    // 20 kills in the apply's order: seven once a seeded 1–8 group creates of the run reached
    // Duo, three once 1–2 bulk user creates did, ten once 1–8 membership calls did (or at
    // once if the run is already past that phase), each plus a seeded 0–20 ms; every fourth
    // instead after a seeded 50–300 ms from the start, wherever the run is (reading, planning,
    // recording intents or applying).
    let mut rng = Seeded(20);
    let started = Instant::now();
    let mut kills_mid_apply = 0;
    let mut phases_hit = BTreeSet::new();
    let mut points = Vec::new();
    for i in 0..20 {
        let seq = last_seq(emu);
        let mut child = spawn_sync(&dir);
        let spawned = Instant::now();
        let (phase, count) = match i {
            0..7 => (0, rng.between(1, 8)),
            7..10 => (1, rng.between(1, 2)),
            _ => (2, rng.between(1, 8)),
        };
        let by_time = i % 4 == 3;
        let delay = if by_time { rng.between(50, 300) } else { rng.between(0, 20) };
        let mut exited = false;
        loop {
            if child.try_wait().expect("wait").is_some() {
                exited = true;
                break;
            }
            let calls = emu.handle().calls_since(seq);
            let done = calls.iter().filter(|c| c.endpoint == Some(phases[phase])).count() as u64;
            let past = calls.iter().any(|c| phases[phase + 1..].iter().any(|p| c.endpoint == Some(p)));
            if by_time || done >= count || past || spawned.elapsed() > Duration::from_secs(60) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if !exited {
            std::thread::sleep(Duration::from_millis(delay));
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
        // Where the kill landed, from what Duo holds at that moment: group creates run alongside
        // user creates and then memberships (which follow every user create), so a kill can land
        // in group creates and in one of the other two at once.
        let world = World::of(emu);
        let mut landed = Vec::new();
        if world.groups.len() < tenant.groups {
            landed.push("group creates");
        }
        if world.users.len() < tenant.users {
            landed.push("user creates");
        } else if world.memberships() < tenant.memberships() {
            landed.push("memberships");
        }
        let writes = emu.handle().calls_since(seq).iter().filter(|c| c.method != "GET").count();
        // A kill after Duo already holds everything (the run is recording its results) is a fair
        // kill, but not one inside a phase of the apply: it counts for neither check below.
        if !exited && writes > 0 && !landed.is_empty() {
            kills_mid_apply += 1;
            phases_hit.extend(landed.iter().copied());
        }
        let landed = if landed.is_empty() { "done".to_owned() } else { landed.join(" and ") };
        let point = if by_time { format!("after {delay} ms") } else { format!("after {count} {}", phases[phase]) };
        points.push(format!("{}{point}: {writes} writes, during {landed}", if exited { "(exited) " } else { "" }));
    }
    let kills_s = started.elapsed().as_secs_f64();
    assert!(kills_mid_apply >= 15, "the 15 kills placed by writes land inside the apply: {points:#?}");
    assert_eq!(
        phases_hit,
        BTreeSet::from(["group creates", "memberships", "user creates"]),
        "kills in every phase of the apply: {points:#?}"
    );

    // The last run completes, and the one after it has nothing to do.
    let started = Instant::now();
    let report = json_of(&run(&dir, &["sync", "duoTest", "--json"], 0).0);
    let last_s = started.elapsed().as_secs_f64();
    assert_eq!(report["failures"], json!([]), "{report:#}");
    let plan = json_of(&run(&dir, &["plan", "duoTest", "--json"], 0).0);
    assert_eq!(plan["plan"]["ops"], json!([]), "converged");

    // The same registry synced once, cleanly, into a fresh Duo as slow as the first.
    let clean = tmp.path().join("clean");
    folder(&clean, clean_emu, 4, &tenant.import_json());
    let started = Instant::now();
    run(&clean, &["sync", "duoTest"], 0);
    let clean_s = started.elapsed().as_secs_f64();
    let (killed_world, clean_world) = (World::of(emu), World::of(clean_emu));
    assert!(killed_world == clean_world, "{}", killed_world.diff(&clean_world));
    assert!(clean_world == tenant.expected(), "{}", clean_world.diff(&tenant.expected()));

    // Duo executed no create twice, across all 22 runs.
    let (dups, groups_created, users_created) = duplicate_creates(emu);
    assert_eq!(dups, Vec::<String>::new(), "duplicate creates");
    assert_eq!((groups_created, users_created), (tenant.groups, tenant.users));

    // The run log: every killed run that had started is `interrupted`, the last two succeeded.
    let store = duoprov_registry::open(&format!("sqlite://{}", dir.join("registry.db").display()), &Default::default()).await.expect("registry");
    let runs = store.runs(Some("duoTest"), 100).await.expect("runs");
    let statuses: Vec<&str> = runs.iter().rev().map(|r| r.status.as_str()).collect();
    let interrupted = statuses.iter().filter(|s| **s == "interrupted").count();
    assert_eq!(statuses.last(), Some(&"succeeded"), "{statuses:?}");
    assert!(statuses.iter().all(|s| ["interrupted", "succeeded"].contains(s)), "{statuses:?}");
    assert!((kills_mid_apply..=20).contains(&interrupted), "{interrupted} interrupted runs for {kills_mid_apply} kills inside the apply: {statuses:?}");
    let status = json_of(&run(&dir, &["status", "duoTest", "--json"], 0).0);
    assert_eq!(status["runs"][0]["status"], "succeeded", "{status:#}");
    assert!(status["runs"].as_array().unwrap().iter().any(|r| r["status"] == "interrupted"), "{status:#}");
    assert_eq!(status["errors"], json!([]), "{status:#}");

    // The sync state: every group and user linked to its Duo object, in Duo, created by duoprov —
    // the same as after the clean run.
    let links = store.links("duoTest").await.expect("links");
    assert_eq!((links.groups.len(), links.users.len()), (tenant.groups, tenant.users));
    assert!(links.groups.iter().all(|l| l.duo_group_id.is_some() && l.in_target && l.created_by_us), "{:?}", links.groups.iter().find(|l| !(l.duo_group_id.is_some() && l.in_target && l.created_by_us)));
    assert!(links.users.iter().all(|l| l.duo_user_id.is_some() && l.in_target && l.created_by_us), "{:?}", links.users.iter().find(|l| !(l.duo_user_id.is_some() && l.in_target && l.created_by_us)));
    eprintln!(
        "crashes: {} users, {} groups, {} memberships; a clean run {clean_s:.1} s; 20 kills in {kills_s:.1} s, {kills_mid_apply} inside the apply: {points:#?}; last run {last_s:.1} s",
        tenant.users,
        tenant.groups,
        tenant.memberships()
    );
}
