//! Incremental sync end to end: after a full sync, each kind of registry change (memberships,
//! subject fields and renames, group renames and descriptions, nested groups, markers) reaches
//! Duo through `duoprov sync --incremental` alone, a single membership change costs at most three
//! Duo calls (counted by the emulator), and after the last step a full plan is empty. The same
//! steps drive the daemon test.

use duoprov_emulator::TenantDump;
use serde_json::Value;

use crate::run;
use crate::sync::{Env, seed_registry, setup};

/// One registry change and how Duo looks once it has arrived.
pub struct Step {
    pub name: &'static str,
    pub commands: Vec<Vec<&'static str>>,
    pub arrived: fn(&TenantDump) -> bool,
}

fn user_in(s: &TenantDump, username: &str, group: &str) -> bool {
    let Some(g) = s.groups.iter().find(|g| g.name == group) else { return false };
    s.users.iter().any(|u| u.username == username && u.groups.contains(&g.group_id))
}

fn has_user(s: &TenantDump, username: &str) -> bool {
    s.users.iter().any(|u| u.username == username)
}

fn has_group(s: &TenantDump, name: &str) -> bool {
    s.groups.iter().any(|g| g.name == name)
}

/// The steps, in order, starting from the seed registry after a full sync.
pub fn steps() -> Vec<Step> {
    vec![
        Step {
            name: "membership added (a new user)",
            commands: vec![
                vec!["subject", "add", "newbie", "--name", "New Bie", "--login-id", "newbie", "--email", "newbie@example.edu"],
                vec!["member", "add", "app:duo:testGroup", "newbie"],
            ],
            arrived: |s| user_in(s, "newbie", "testGroup"),
        },
        Step {
            name: "membership removed",
            commands: vec![vec!["member", "remove", "app:duo:testGroup", "kwilso"]],
            arrived: |s| has_user(s, "kwilso") && !user_in(s, "kwilso", "testGroup"),
        },
        Step {
            name: "membership added (an existing user)",
            commands: vec![vec!["member", "add", "app:duo:testGroup", "kwilso"]],
            arrived: |s| user_in(s, "kwilso", "testGroup"),
        },
        Step {
            name: "subject's name changed",
            commands: vec![vec!["subject", "update", "mchyzer", "--name", "Christopher Hyzer"]],
            arrived: |s| s.users.iter().any(|u| u.username == "mchyzer" && u.realname == "Christopher Hyzer"),
        },
        Step {
            name: "subject renamed (login id → username)",
            commands: vec![vec!["subject", "update", "mchyzer", "--login-id", "chyzer"]],
            arrived: |s| !has_user(s, "mchyzer") && user_in(s, "chyzer", "testGroup"),
        },
        Step {
            name: "group description changed",
            commands: vec![vec!["group", "update", "app:duo:testGroup", "--description", "Duo pilot users"]],
            arrived: |s| s.groups.iter().any(|g| g.name == "testGroup" && g.desc == "Duo pilot users"),
        },
        Step {
            name: "group renamed",
            commands: vec![vec!["group", "update", "app:duo:testGroup", "--rename-to", "app:duo:pilotGroup"]],
            arrived: |s| !has_group(s, "testGroup") && user_in(s, "kwilso", "pilotGroup"),
        },
        Step {
            name: "nested group added",
            commands: vec![
                vec!["subject", "add", "alice", "--name", "Alice Nested", "--login-id", "alice"],
                vec!["group", "add", "org:staff", "--create-parents"],
                vec!["member", "add", "org:staff", "alice"],
                vec!["member", "add", "app:duo:pilotGroup", "--group", "org:staff"],
            ],
            arrived: |s| user_in(s, "alice", "pilotGroup"),
        },
        Step {
            name: "member of a nested group removed",
            commands: vec![vec!["member", "remove", "org:staff", "alice"]],
            arrived: |s| has_user(s, "alice") && !user_in(s, "alice", "pilotGroup"),
        },
        Step {
            name: "folder marked",
            commands: vec![
                vec!["group", "add", "app2:apps:vpn", "--description", "VPN users", "--create-parents"],
                vec!["member", "add", "app2:apps:vpn", "newbie", "kwilso"],
                vec!["provision", "assign", "duoTest", "--folder", "app2", "--scope", "sub"],
            ],
            arrived: |s| user_in(s, "newbie", "vpn") && user_in(s, "kwilso", "vpn"),
        },
        Step {
            name: "group excluded",
            commands: vec![vec!["provision", "assign", "duoTest", "--group", "app2:apps:vpn", "--exclude"]],
            arrived: |s| !has_group(s, "vpn") && has_user(s, "newbie"),
        },
    ]
}

/// Every Duo call (reads included) the emulator received after `seq`.
fn calls_since(env: &Env, seq: u64) -> Vec<String> {
    env.emulator.handle().calls_since(seq).into_iter().map(|c| format!("{} {} {}", c.method, c.path, c.params.join(","))).collect()
}

fn last_seq(env: &Env) -> u64 {
    env.emulator.handle().calls().last().map(|c| c.seq).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_registry_change_reaches_duo_through_incremental_syncs() {
    // The calls each change needs, counted without rate limiting's retries: the emulator lets a
    // minute's quota through at once (pacing against Duo's limits is `sync/tests/pacing.rs`'s).
    let env = crate::sync::setup_configured("", |s| s.rate_limits.burst_fraction = Some(1.0)).await;
    let dir = env.dir.path();
    seed_registry(dir);
    // Before any full sync there is no checkpoint: an incremental request runs a full sync.
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    let first: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(first["kind"], "full", "{first:#}");
    assert!(first["escalated"].as_str().unwrap_or("").contains("checkpoint"), "{first:#}");
    // Nothing changed since: idle, and not one Duo call.
    let seq = last_seq(&env);
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    let idle: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(idle["idle"], true, "{idle:#}");
    assert_eq!(calls_since(&env, seq), Vec::<String>::new());

    for step in steps() {
        for c in &step.commands {
            run(dir, c, 0);
        }
        assert!(!(step.arrived)(&env.emulator.handle().state()), "{}: Duo shows the change before any sync", step.name);
        let seq = last_seq(&env);
        let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
        let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{}: {e}: {out}", step.name));
        assert_eq!(report["kind"], "incremental", "{}: {report:#}", step.name);
        assert!((step.arrived)(&env.emulator.handle().state()), "{}: not in Duo after an incremental sync: {report:#}\n{:#?}", step.name, env.emulator.handle().state());
        let calls = calls_since(&env, seq);
        if step.name.starts_with("membership removed") || step.name.starts_with("membership added (an existing") {
            assert!(calls.len() <= 3, "{}: a single membership change took {} Duo calls: {calls:?}", step.name, calls.len());
        }
        // Users are read by id or username, never the whole list.
        let listed = calls.iter().any(|c| c.starts_with("GET /admin/v1/users ") && !c.contains("_list"));
        assert!(!listed, "{}: listed every user: {calls:?}", step.name);
    }
    // Quiet: a full sync finds nothing to do.
    let (out, _) = run(dir, &["plan", "duoTest", "--json"], 0);
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["plan"]["ops"], Value::Array(vec![]), "a full plan after the incremental syncs is not empty: {plan:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_object_is_retried_on_its_recorded_schedule_and_the_checkpoint_moves_on() {
    let env = setup("[provisioner.duoTest.incremental]\nretry_base = \"1s\"\nretry_max = \"4s\"\n").await;
    let dir = env.dir.path();
    seed_registry(dir);
    run(dir, &["sync", "duoTest"], 0);
    // Every membership write fails for a while.
    env.emulator.handle().set_faults("500 on=bulk").unwrap();
    run(dir, &["subject", "add", "late", "--login-id", "late"], 0);
    run(dir, &["member", "add", "app:duo:testGroup", "late"], 0);
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 2);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(report["retries_scheduled"].as_u64().unwrap() >= 1, "{report:#}");
    // The schedule is recorded, and the checkpoint is past the change (it is tracked as a retry).
    let (out, _) = run(dir, &["status", "duoTest", "--json"], 0);
    let status: Value = serde_json::from_str(&out).unwrap();
    let retries = status["retries"].as_array().unwrap();
    assert_eq!(retries.len(), 1, "{status:#}");
    assert_eq!(retries[0]["attempts"], 1);
    assert_eq!(retries[0]["target"]["kind"], "membership");
    assert_eq!(status["checkpoint"]["last_seq"], status["last_change"], "{status:#}");
    // The change log has been consumed: with no retry due yet, the next run is idle.
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    let idle: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(idle["idle"], true, "{idle:#}");
    env.emulator.handle().set_faults("").unwrap();
    // The retry is due at the time recorded for it (retry_base after the failure).
    let due_ms = retries[0]["next_at_ms"].as_i64().expect("the retry's next attempt time");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while duoprov_sync::now_ms() < due_ms {
        assert!(std::time::Instant::now() < deadline, "the retry is scheduled more than 5 s ahead: {status:#}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    let retried: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(retried["scope"]["retries_due"].as_u64(), Some(1), "{retried:#}");
    assert!(user_in(&env.emulator.handle().state(), "late", "testGroup"));
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["idle"], true, "the retry was not cleared: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_during_a_full_sync_are_neither_lost_nor_applied_twice() {
    let env = setup("").await;
    let dir = env.dir.path();
    // 60 users in 3 groups; Duo slowed so the full sync takes a few seconds.
    let subjects: Vec<Value> = (0..60).map(|i| serde_json::json!({"id": format!("u{i:02}"), "login_id": format!("u{i:02}"), "name": format!("User {i}")})).collect();
    let memberships: Vec<Value> = (0..60).map(|i| serde_json::json!({"group": format!("app:duo:g{}", i % 3), "subject": format!("u{i:02}")})).collect();
    let doc = serde_json::json!({
        "subjects": subjects,
        "groups": [{"name": "app:duo:g0"}, {"name": "app:duo:g1"}, {"name": "app:duo:g2"}],
        "memberships": memberships,
        "markers": [{"provisioner": "duoTest", "folder": "app:duo"}],
    });
    std::fs::write(dir.join("seed.json"), doc.to_string()).unwrap();
    run(dir, &["import", "seed.json"], 0);
    env.emulator.handle().set_faults("latency=1s").unwrap();
    let seq = last_seq(&env);
    let full = std::process::Command::new(assert_cmd::cargo::cargo_bin("duoprov"))
        .current_dir(dir)
        .env_remove("DUOPROV_CONFIG")
        .env_remove("DUOPROV_REGISTRY_URL")
        .env_remove("RUST_LOG")
        .args(["sync", "duoTest", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once it writes, it has read the registry; while it applies: a new member, a renamed
    // subject, a removed membership.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !env.emulator.handle().calls_since(seq).iter().any(|c| c.method == "POST") {
        assert!(std::time::Instant::now() < deadline, "the full sync never wrote");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let changes_from = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    run(dir, &["subject", "add", "late", "--login-id", "late", "--name", "Late Comer"], 0);
    run(dir, &["member", "add", "app:duo:g0", "late"], 0);
    run(dir, &["subject", "update", "u01", "--name", "Renamed While Syncing"], 0);
    run(dir, &["member", "remove", "app:duo:g2", "u02"], 0);
    let changes_to = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let out = full.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let finished: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(finished["kind"], "full");
    let (out, _) = run(dir, &["status", "duoTest", "--json"], 0);
    let status: Value = serde_json::from_str(&out).unwrap();
    let full_run = status["runs"].as_array().unwrap().iter().find(|r| r["id"] == finished["run_id"]).unwrap().clone();
    assert!(
        full_run["started_at_ms"].as_i64().unwrap() < changes_from && full_run["finished_at_ms"].as_i64().unwrap() > changes_to,
        "the changes were not made while the full sync ran: {full_run:#} {changes_from}..{changes_to}"
    );
    env.emulator.handle().set_faults("").unwrap();
    // The incremental sync after it carries what the full sync did not see.
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["kind"], "incremental", "{report:#}");
    let s = env.emulator.handle().state();
    assert!(user_in(&s, "late", "g0"));
    assert!(s.users.iter().any(|u| u.username == "u01" && u.realname == "Renamed While Syncing"));
    assert!(has_user(&s, "u02") && !user_in(&s, "u02", "g2"));
    // Nothing was created twice, and a full plan is empty.
    let mut created: Vec<String> = env.emulator.handle().calls().into_iter().filter(|c| c.status == 200).flat_map(|c| c.created).collect();
    let total = created.len();
    created.sort();
    created.dedup();
    assert_eq!(created.len(), total, "duplicate creates in the emulator's log");
    assert_eq!(total, 3 + 61, "3 groups and 61 users created once each");
    let (out, _) = run(dir, &["plan", "duoTest", "--json"], 0);
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["plan"]["ops"], Value::Array(vec![]), "{plan:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_escalates_to_a_full_sync_that_says_why() {
    let env = setup("[provisioner.duoTest.incremental]\nfull_sync_above_changes = 3\n").await;
    let dir = env.dir.path();
    seed_registry(dir);
    run(dir, &["sync", "duoTest"], 0);
    for i in 0..4 {
        let id = format!("extra{i}");
        run(dir, &["subject", "add", &id, "--login-id", &id], 0);
    }
    run(dir, &["member", "add", "app:duo:testGroup", "extra0", "extra1"], 0);
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["kind"], "full", "{report:#}");
    assert!(report["escalated"].as_str().unwrap_or("").contains("full_sync_above_changes"), "{report:#}");
    assert!(user_in(&env.emulator.handle().state(), "extra1", "testGroup"));
    // The full sync moved the checkpoint: the next incremental run is idle.
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["idle"], true, "{out}");
}
