//! `duoprov doctor --probe` through the binary against the emulator: what it records under the
//! evidence profile and under the adverse one (with usernames kept verbatim), that the emulator
//! holds nothing the probe made afterwards, that `doctor` shows the record and its age, that a
//! sync after an adverse probe sends no bulk call, that a probe without the write grant stops
//! before making anything, and that what it cannot delete is named.

use duoprov_emulator::config::{Grants, Profile, Settings};
use duoprov_emulator::{Emulator, Integration, RunningEmulator};
use serde_json::Value;

use crate::run;
use crate::sync::seed_registry;

const IKEY: &str = "DITESTPROBE000000001";
const SKEY: &str = "probe-test-secret-key-0123456789abcdefghi";

struct Env {
    dir: tempfile::TempDir,
    emulator: RunningEmulator,
}

async fn setup(settings: Settings, grants: Grants, duo_extra: &str) -> Env {
    let emulator = Emulator::builder()
        .integration(Integration::new(IKEY, SKEY).with_grants(grants))
        .settings(settings)
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().unwrap();
    crate::write_emulator_setup(dir.path(), &emulator.base_url(), IKEY, SKEY, duo_extra, "");
    Env { dir, emulator }
}

/// Names of the users and groups the emulator holds that a probe could have made.
fn probe_leftovers(env: &Env) -> Vec<String> {
    let s = env.emulator.handle().state();
    let users = s.users.iter().map(|u| format!("user {}", u.username));
    let groups = s.groups.iter().map(|g| format!("group {}", g.name));
    users.chain(groups).filter(|n| n.to_lowercase().contains("duoprov-probe")).collect()
}

fn bulk_calls_since(env: &Env, seq: u64) -> usize {
    env.emulator.handle().calls_since(seq).iter().filter(|c| c.path == "/admin/v1/bulk").count()
}

fn last_seq(env: &Env) -> u64 {
    env.emulator.handle().calls().last().map(|c| c.seq).unwrap_or(0)
}

/// Runs `doctor duoTest --probe --json` (expecting `code`) and returns the probe's report.
fn probe(env: &Env, code: i32) -> (Value, Value) {
    let (out, _) = run(env.dir.path(), &["doctor", "duoTest", "--probe", "--json"], code);
    let doc: Value = serde_json::from_str(&out).expect("doctor JSON");
    let report = doc["probe"]["report"].clone();
    assert!(report.is_object(), "no probe report: {doc:#}");
    assert_eq!(doc["probe"]["ran_now"], true);
    (doc, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_under_the_evidence_profile_records_working_bulk_lowercased_usernames_and_unique_group_names() {
    let env = setup(Settings::default(), Grants::all(), "").await;
    let dir = env.dir.path();
    // Before any probe, doctor says none is recorded.
    let (out, _) = run(dir, &["doctor", "duoTest", "--json"], 0);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["probe"], Value::Null, "{doc:#}");

    let (doc, report) = probe(&env, 0);
    assert_eq!(doc["ok"], true, "{doc:#}");
    for step in ["bulk_add", "bulk_remove", "single_add", "single_remove"] {
        assert_eq!(report[step]["reading"], "works", "{step}: {report:#}");
    }
    let tag = report["tag"].as_str().expect("tag");
    assert_eq!(report["usernames"]["sent"], format!("Duoprov-Probe-{tag}-X"));
    assert_eq!(report["usernames"]["stored"], format!("duoprov-probe-{tag}-x"), "{report:#}");
    assert_eq!(report["usernames"]["lowercase_lookup_finds"], true);
    assert_eq!(report["group_names"]["reading"], "unique", "{report:#}");
    assert_eq!(report["group_names"]["code"], 40003);
    assert_eq!(report["failures"], Value::Array(vec![]));
    assert_eq!(report["left_behind"], Value::Array(vec![]));
    assert_eq!(probe_leftovers(&env), Vec::<String>::new(), "the probe left objects in Duo");

    // doctor without --probe shows the recorded reading and its age, and changes nothing.
    let seq = last_seq(&env);
    let (out, _) = run(dir, &["doctor", "duoTest"], 0);
    assert!(out.contains("recorded ") && out.contains(" s ago"), "{out}");
    assert!(out.contains(&format!("objects tagged {tag}")), "{out}");
    assert!(out.contains("bulk add: works") && out.contains("group names: unique"), "{out}");
    assert!(env.emulator.handle().calls_since(seq).iter().all(|c| c.method == "GET" || c.path.starts_with("/admin/v1/users/DU0000")), "doctor wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_under_the_adverse_profile_records_unusable_bulk_verbatim_usernames_and_shared_group_names_and_syncs_skip_bulk() {
    let mut settings = Settings::profile(Profile::Adverse);
    settings.lowercase_usernames = false;
    let env = setup(settings, Grants::all(), "").await;
    let dir = env.dir.path();
    seed_registry(dir);

    // Without a probe, a sync finds out for itself: it tries bulk first.
    let seq = last_seq(&env);
    run(dir, &["sync", "duoTest"], 0);
    assert!(bulk_calls_since(&env, seq) > 0, "without a probe, a sync under bulk = auto tries bulk");

    let (doc, report) = probe(&env, 0);
    assert_eq!(doc["ok"], true, "{doc:#}");
    assert_eq!(report["bulk_add"]["reading"], "fails", "{report:#}");
    assert_eq!(report["bulk_remove"]["reading"], "fails", "{report:#}");
    assert_eq!(report["single_add"]["reading"], "works", "{report:#}");
    assert_eq!(report["single_remove"]["reading"], "works", "{report:#}");
    let tag = report["tag"].as_str().expect("tag");
    assert_eq!(report["usernames"]["stored"], format!("Duoprov-Probe-{tag}-X"), "{report:#}");
    assert_eq!(report["usernames"]["lowercase_lookup_finds"], false);
    assert_eq!(report["group_names"]["reading"], "non_unique", "{report:#}");
    assert_eq!(report["left_behind"], Value::Array(vec![]));
    assert_eq!(probe_leftovers(&env), Vec::<String>::new(), "the probe left objects in Duo");

    // A sync after the probe makes its membership writes without any bulk call.
    run(dir, &["member", "remove", "app:duo:testGroup", "kwilso"], 0);
    let seq = last_seq(&env);
    let (out, _) = run(dir, &["sync", "duoTest", "--json"], 0);
    let sync: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sync["memberships"]["deleted"], 1, "{sync:#}");
    assert_eq!(bulk_calls_since(&env, seq), 0, "a sync after the probe sent a bulk call the probe found unusable");
    run(dir, &["member", "add", "app:duo:testGroup", "kwilso"], 0);
    let seq = last_seq(&env);
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(bulk_calls_since(&env, seq), 0, "a sync after the probe sent a bulk call the probe found unusable");
    let s = env.emulator.handle().state();
    let gid = s.groups.iter().find(|g| g.name == "testGroup").map(|g| g.group_id).expect("testGroup");
    assert!(s.users.iter().filter(|u| u.groups.contains(&gid)).count() == 2, "both members are back in Duo");

    // doctor shows what syncs do with the record.
    let (out, _) = run(dir, &["doctor", "duoTest"], 0);
    assert!(out.contains("send membership and user writes as single calls"), "{out}");
    assert!(out.contains("usernames compare exactly") && out.contains("match usernames exactly"), "{out}");
}

/// Plans `duoTest` and returns its operations as `kind object` strings.
fn planned(dir: &std::path::Path) -> Vec<String> {
    let (out, _) = run(dir, &["plan", "duoTest", "--json"], 0);
    let plan: Value = serde_json::from_str(&out).expect("plan JSON");
    plan["plan"]["ops"].as_array().expect("ops").iter().map(|op| op.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_probe_finds_usernames_case_sensitive_a_duo_user_differing_only_in_case_is_not_taken_for_the_registry_s() {
    let settings = Settings { lowercase_usernames: false, ..Settings::default() };
    let env = setup(settings, Grants::all(), "").await;
    let dir = env.dir.path();
    // On this Duo "MCHYZER" is someone else than the registry's "mchyzer".
    let other_id = env.emulator.handle().with_tenant_mut(|t, ids| {
        let fields = duoprov_emulator::state::UserFields { username: Some("MCHYZER".into()), realname: Some("Someone Else".into()), ..Default::default() };
        t.create_user(fields, 1_700_000_000, ids).expect("hand-made user").to_string()
    });
    seed_registry(dir);

    // Without a probe, "MCHYZER" may or may not be mchyzer: neither taken for it nor doubled by a
    // create, mchyzer is held with a message naming the probe.
    let ops = planned(dir);
    let creates_mchyzer = |ops: &[String]| ops.iter().any(|op| op.contains("\"op\":\"create_user\"") && op.contains("\"username\":\"mchyzer\""));
    assert!(!creates_mchyzer(&ops) && !ops.iter().any(|op| op.contains(&other_id)), "without a probe: {ops:#?}");
    let (out, _) = run(dir, &["plan", "duoTest", "--json"], 0);
    let plan: Value = serde_json::from_str(&out).expect("plan JSON");
    let held: Vec<&str> = plan["plan"]["errors"].as_array().expect("errors").iter().filter(|e| e["code"] == "MAT").filter_map(|e| e["message"].as_str()).collect();
    assert!(held.len() == 1 && held[0].contains("\"MCHYZER\"") && held[0].contains("`duoprov doctor duoTest --probe`"), "{plan:#}");

    let (_, report) = probe(&env, 0);
    assert_eq!(report["usernames"]["lowercase_lookup_finds"], false, "{report:#}");

    // With the record, mchyzer is a user of its own: created, and "MCHYZER" left alone.
    let ops = planned(dir);
    assert!(creates_mchyzer(&ops) && !ops.iter().any(|op| op.contains(&other_id)), "after the probe: {ops:#?}");
    run(dir, &["sync", "duoTest"], 0);
    let s = env.emulator.handle().state();
    let names: Vec<&str> = s.users.iter().map(|u| u.username.as_str()).collect();
    assert!(names.contains(&"mchyzer") && names.contains(&"MCHYZER"), "{names:?}");
    let other = s.users.iter().find(|u| u.username == "MCHYZER").expect("MCHYZER");
    assert!(other.groups.is_empty(), "the other user was put in the group");
    assert_eq!(other.realname, "Someone Else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_without_the_write_grant_says_so_and_makes_nothing() {
    let read = Grants { read_resource: true, write_resource: false, administrators: false };
    let env = setup(Settings::default(), read, "").await;
    let seq = last_seq(&env);
    let (out, _) = run(env.dir.path(), &["doctor", "duoTest", "--probe"], 1);
    assert!(out.contains("FAIL  Duo probe: not run") && out.contains("cannot write"), "{out}");
    let writes: Vec<String> =
        env.emulator.handle().calls_since(seq).into_iter().filter(|c| c.method != "GET" && !c.path.starts_with("/admin/v1/users/DU0000")).map(|c| c.path).collect();
    assert_eq!(writes, Vec::<String>::new(), "the probe wrote without the grant");
    let (out, _) = run(env.dir.path(), &["doctor", "duoTest", "--json"], 1);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["probe"], Value::Null, "a refused probe was recorded: {doc:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_cannot_delete_its_groups_names_them_and_still_deletes_its_users() {
    let env = setup(Settings::default(), Grants::all(), "server_retries = 0\n").await;
    env.emulator.handle().set_faults("500 on=groups.delete").expect("faults");
    let (doc, report) = probe(&env, 1);
    assert_eq!(doc["ok"], false);
    let tag = report["tag"].as_str().expect("tag");
    let left: Vec<&str> = report["left_behind"].as_array().expect("left_behind").iter().filter_map(Value::as_str).collect();
    assert_eq!(left.len(), 1, "{report:#}");
    assert!(left[0].starts_with(&format!("group duoprov-probe-{tag} (DG")), "{left:?}");
    let failed: Vec<&Value> = doc["checks"].as_array().unwrap().iter().filter(|c| c["ok"] == false).collect();
    assert!(failed.iter().any(|c| c["check"] == "probe clean-up" && c["detail"].as_str().is_some_and(|d| d.contains(&format!("duoprov-probe-{tag}")))), "{doc:#}");
    // The users went; only the group the fault kept is left.
    assert_eq!(probe_leftovers(&env), vec![format!("group duoprov-probe-{tag}")]);
}
