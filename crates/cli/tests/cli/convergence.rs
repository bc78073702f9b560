//! Convergence end to end: incremental runs weigh removals against a group's real size in Duo
//! (so routine removals from a big group are applied, by the command and by the daemon, and a
//! large one is still refused); every failed removal — of a user leaving every group, of a
//! hand-made member — is retried by the next incremental run; retry rows that can never come
//! into scope are dropped; and removals complete before additions, so a user at Duo's
//! 100-group limit moves from one group to another in one run.

use std::path::Path;
use std::time::{Duration, Instant};

use duoprov_emulator::{Emulator, Integration, TenantDump};
use serde_json::{Value, json};

use crate::daemon::{start_daemon, wait_for};
use crate::run;
use crate::sync::Env;

const IKEY: &str = "DITESTCONVERGENCE001";
const SKEY: &str = "convergence-test-secret-key-0123456789abc";

/// A folder with a configuration for a fresh emulator (rate limits off, client pacing far above
/// what the tests need, no client-side repeat of a failed call, so an injected fault fails
/// exactly the call it hits), `provisioner` appended to `[provisioner.duoTest]`, and the import
/// document `registry` imported.
async fn setup(provisioner: &str, registry: &Value) -> Env {
    let emulator = Emulator::builder()
        .integration(Integration::new(IKEY, SKEY))
        .configure(|s| s.rate_limits.enabled = false)
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("duo.skey"), SKEY).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("duo.skey"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = format!(
        "[registry]\nurl = \"sqlite://registry.db\"\n\n[duo.test]\napi_host = \"127.0.0.1\"\nintegration_key = \"{IKEY}\"\nsecret_key_file = \"duo.skey\"\nurl = \"{}\"\n\
         writes_per_minute = 600000\nsingle_reads_per_minute = 600000\npage_reads_per_minute = 600000\nlist_lookups_per_minute = 600000\nbulk_per_minute = 600000\nserver_retries = 0\n\n\
         [provisioner.duoTest]\nduo = \"test\"\n{provisioner}\n",
        emulator.base_url()
    );
    crate::write_config(dir.path(), config).unwrap();
    std::fs::write(dir.path().join("registry.json"), registry.to_string()).unwrap();
    run(dir.path(), &["import", "registry.json"], 0);
    Env { dir, emulator }
}

/// Subjects `prefix000…`, each a member of `group`.
fn members(prefix: &str, n: usize, group: &str) -> (Vec<Value>, Vec<Value>) {
    let subjects = (0..n).map(|i| json!({"id": format!("{prefix}{i:03}"), "login_id": format!("{prefix}{i:03}"), "name": format!("User {i}")})).collect();
    let memberships = (0..n).map(|i| json!({"group": group, "subject": format!("{prefix}{i:03}")})).collect();
    (subjects, memberships)
}

/// A registry with `app:duo:big` of 1 000 members and `app:duo:small` of one.
fn big_group_registry() -> Value {
    let (mut subjects, mut memberships) = members("u", 1000, "app:duo:big");
    subjects.push(json!({"id": "solo", "login_id": "solo", "name": "Solo"}));
    memberships.push(json!({"group": "app:duo:small", "subject": "solo"}));
    json!({
        "subjects": subjects,
        "groups": [{"name": "app:duo:big"}, {"name": "app:duo:small"}],
        "memberships": memberships,
        "markers": [{"provisioner": "duoTest", "folder": "app:duo"}],
    })
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn group_size(s: &TenantDump, name: &str) -> usize {
    let Some(g) = s.groups.iter().find(|g| g.name == name) else { return 0 };
    s.users.iter().filter(|u| u.groups.contains(&g.group_id)).count()
}

fn user_in(s: &TenantDump, username: &str, group: &str) -> bool {
    let Some(g) = s.groups.iter().find(|g| g.name == group) else { return false };
    s.users.iter().any(|u| u.username == username && u.groups.contains(&g.group_id))
}

/// Removes `u{from}…u{to-1}` from the big group.
fn remove_members(dir: &Path, from: usize, to: usize) {
    let ids: Vec<String> = (from..to).map(|i| format!("u{i:03}")).collect();
    for chunk in ids.chunks(100) {
        let mut args = vec!["member", "remove", "app:duo:big"];
        args.extend(chunk.iter().map(String::as_str));
        run(dir, &args, 0);
    }
}

/// Runs incremental syncs until `done` holds for Duo (the retry comes due on its recorded
/// schedule), and returns the report of the run after which it held.
fn incremental_until(env: &Env, what: &str, done: impl Fn(&TenantDump) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = crate::duoprov(env.dir.path()).args(["sync", "duoTest", "--incremental", "--json"]).output().unwrap();
        let report = json_of(&String::from_utf8_lossy(&out.stdout));
        if done(&env.emulator.handle().state()) {
            assert_eq!(out.status.code(), Some(0), "{what}: {report:#}");
            return report;
        }
        assert!(Instant::now() < deadline, "{what}: not in Duo within 30 s; last report {report:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(dir: &Path) -> Value {
    json_of(&run(dir, &["status", "duoTest", "--json"], 0).0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_run_weighs_removals_against_the_real_group_size_15_of_1000_pass_400_are_refused() {
    // Big changes stay on the scoped path (members not read whole): the size comes from Duo.
    let env = setup("[provisioner.duoTest.incremental]\nwhole_group_above = 2000\n", &big_group_registry()).await;
    let dir = env.dir.path();
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(group_size(&env.emulator.handle().state(), "big"), 1000);

    remove_members(dir, 0, 15);
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    let report = json_of(&out);
    assert_eq!(report["kind"], "incremental", "{report:#}");
    assert_eq!(report["scope"]["whole_groups"], 0, "the group was read whole: {report:#}");
    let s = env.emulator.handle().state();
    assert_eq!(group_size(&s, "big"), 985);
    assert!(!user_in(&s, "u000", "big") && !user_in(&s, "u014", "big") && user_in(&s, "u015", "big"));

    // 400 of the 985 left is over 30 %: still refused, and the message names the real size.
    remove_members(dir, 15, 415);
    let (_, err) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 3);
    assert!(err.contains("400 of 985 members of group big would be removed"), "{err}");
    assert_eq!(group_size(&env.emulator.handle().state(), "big"), 985, "a refused run removed members");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_carries_15_removals_from_a_1000_member_group_and_a_later_unrelated_add() {
    let env = setup("[provisioner.duoTest.schedule]\npoll_interval = \"300ms\"\n", &big_group_registry()).await;
    let dir = env.dir.path();
    let handle = env.emulator.handle().clone();
    let state = || handle.state();
    let daemon = start_daemon(dir, &[]);
    wait_for("the first full sync", state, |s| group_size(s, "big") == 1000 && user_in(s, "solo", "small"), Duration::from_secs(60));

    remove_members(dir, 0, 15);
    wait_for("15 removals", state, |s| group_size(s, "big") == 985, Duration::from_secs(20));
    // A later, unrelated change is not held back.
    run(dir, &["subject", "add", "later", "--login-id", "later"], 0);
    run(dir, &["member", "add", "app:duo:small", "later"], 0);
    wait_for("the later add", state, |s| user_in(s, "later", "small"), Duration::from_secs(20));

    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");
    let runs = status(dir)["runs"].as_array().unwrap().clone();
    let refused: Vec<&Value> = runs.iter().filter(|r| r["status"] == "refused").collect();
    assert!(refused.is_empty(), "runs were refused: {refused:#?}");
}

/// The seed registry: `testGroup` with mchyzer and kwilso.
fn seed_registry() -> Value {
    json!({
        "subjects": [
            {"id": "mchyzer", "login_id": "mchyzer", "name": "Chris Hyzer"},
            {"id": "kwilso", "login_id": "kwilso", "name": "Kate Wilson"},
        ],
        "groups": [{"name": "app:duo:testGroup"}],
        "memberships": [{"group": "app:duo:testGroup", "subject": "mchyzer"}, {"group": "app:duo:testGroup", "subject": "kwilso"}],
        "markers": [{"provisioner": "duoTest", "folder": "app:duo"}],
    })
}

/// Creates a Duo user by hand (not through duoprov), optionally in the group named `group`.
fn hand_made_user(env: &Env, username: &str, group: Option<&str>) {
    use duoprov_emulator::state::UserFields;
    let group_id = group.map(|name| {
        let s = env.emulator.handle().state();
        s.groups.iter().find(|g| g.name == name).unwrap().group_id
    });
    env.emulator.handle().with_tenant_mut(|t, ids| {
        let id = t.create_user(UserFields { username: Some(username.into()), ..UserFields::default() }, 1_700_000_000, ids).unwrap();
        if let Some(g) = group_id {
            t.add_membership(&id, &g, 100, duoprov_emulator::config::GroupLimitError::Internal500, true).unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_removal_of_users_leaving_every_group_is_retried_by_the_next_incremental_run() {
    let env = setup("delete_users = \"never\"\n[provisioner.duoTest.incremental]\nretry_base = \"200ms\"\nretry_max = \"1s\"\n", &seed_registry()).await;
    let dir = env.dir.path();
    // kwilso exists in Duo already: adopted, so its link is released (forgotten) when it leaves;
    // mchyzer is created by duoprov, so its link is parked.
    hand_made_user(&env, "kwilso", None);
    run(dir, &["sync", "duoTest"], 0);
    let s = env.emulator.handle().state();
    assert!(user_in(&s, "mchyzer", "testGroup") && user_in(&s, "kwilso", "testGroup"));

    // Both leave every selected group; the one membership call of the run fails once.
    run(dir, &["member", "remove", "app:duo:testGroup", "mchyzer", "kwilso"], 0);
    env.emulator.handle().set_faults("500 first=1 on=bulk").unwrap();
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 2);
    let report = json_of(&out);
    assert_eq!(report["retries_scheduled"], 2, "{report:#}");
    assert_eq!(report["failures"].as_array().map(Vec::len), Some(2), "{report:#}");
    let s = env.emulator.handle().state();
    assert!(user_in(&s, "mchyzer", "testGroup") && user_in(&s, "kwilso", "testGroup"), "the removals were not refused by Duo");
    let retries = status(dir)["retries"].as_array().unwrap().clone();
    let mut subjects: Vec<String> = retries.iter().map(|r| format!("{} {}", r["target"]["kind"], r["target"]["subject"]["id"])).collect();
    subjects.sort();
    assert_eq!(subjects, vec!["\"membership\" \"kwilso\"", "\"membership\" \"mchyzer\""], "{retries:#?}");

    // The next incremental run, once the retry is due, plans the removals again and applies them.
    let retried = incremental_until(&env, "the retried removals", |s| !user_in(s, "mchyzer", "testGroup") && !user_in(s, "kwilso", "testGroup"));
    assert_eq!(retried["kind"], "incremental", "{retried:#}");
    assert_eq!(retried["scope"]["retries_due"], 2, "{retried:#}");
    let s = env.emulator.handle().state();
    assert!(s.users.iter().any(|u| u.username == "mchyzer") && s.users.iter().any(|u| u.username == "kwilso"), "a user was deleted");
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    assert_eq!(json_of(&out)["idle"], true, "the retries were not cleared: {out}");
    let (out, _) = run(dir, &["plan", "duoTest", "--json"], 0);
    assert_eq!(json_of(&out)["plan"]["ops"], json!([]), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_removal_of_a_hand_made_member_is_retried_by_reading_its_group_whole() {
    let env = setup("[provisioner.duoTest.incremental]\nretry_base = \"200ms\"\nretry_max = \"1s\"\n", &seed_registry()).await;
    let dir = env.dir.path();
    run(dir, &["sync", "duoTest"], 0);
    // Someone adds a member to the managed group in the Admin Panel.
    hand_made_user(&env, "intruder", Some("testGroup"));
    assert!(user_in(&env.emulator.handle().state(), "intruder", "testGroup"));
    // The full sync that finds it fails to remove it, once.
    env.emulator.handle().set_faults("500 first=1 on=bulk").unwrap();
    let (out, _) = run(dir, &["sync", "duoTest", "--json"], 2);
    let report = json_of(&out);
    assert_eq!(report["retries_scheduled"], 1, "{report:#}");
    let retries = status(dir)["retries"].as_array().unwrap().clone();
    assert_eq!(retries.len(), 1, "{retries:#?}");
    assert_eq!(retries[0]["target"]["kind"], "whole_group", "{retries:#?}");

    // No registry change names the group: the retry alone makes the next incremental run read
    // its members and remove the hand-made one.
    let retried = incremental_until(&env, "the retried removal", |s| !user_in(s, "intruder", "testGroup"));
    assert_eq!(retried["kind"], "incremental", "{retried:#}");
    assert_eq!(retried["scope"]["whole_groups"], 1, "{retried:#}");
    let s = env.emulator.handle().state();
    assert!(user_in(&s, "mchyzer", "testGroup") && user_in(&s, "kwilso", "testGroup"));
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    assert_eq!(json_of(&out)["idle"], true, "the retry was not cleared: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_retry_whose_objects_no_longer_concern_the_provisioner_is_dropped_by_one_run() {
    use duoprov_model::SubjectKey;
    use duoprov_registry::{Backoff, RetryTarget, Settlement};
    let env = setup("", &seed_registry()).await;
    let dir = env.dir.path();
    run(dir, &["sync", "duoTest"], 0);
    // Rows about a registry group that is gone (never selected, held or linked): one for the
    // group, one for a membership of a subject that is still provisioned, one for a subject
    // that is not; all due.
    let url = format!("sqlite://{}", dir.join("registry.db").display());
    let store = duoprov_registry::open(&url, &Default::default()).await.unwrap();
    let gone = "0f0e0d0c-0000-4000-8000-00000000dead".to_owned();
    let failed = vec![
        (RetryTarget::Group { group_uuid: gone.clone() }, "HTTP 500".to_owned()),
        (RetryTarget::Membership { group_uuid: gone.clone(), subject: SubjectKey::local("kwilso") }, "HTTP 500".to_owned()),
        (RetryTarget::User { subject: SubjectKey::local("nobody") }, "HTTP 500".to_owned()),
    ];
    let settlement = Settlement { kind: duoprov_registry::RunKind::Incremental, checkpoint: None, clear_all: false, attempted: &[], failed: &failed, now_ms: duoprov_model::EpochMillis(0), backoff: Backoff::default() };
    store.settle("duoTest", &settlement).await.unwrap();
    drop(store);
    assert_eq!(status(dir)["retries"].as_array().unwrap().len(), 3);

    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    let report = json_of(&out);
    assert_eq!(report["kind"], "incremental", "{report:#}");
    assert_eq!(report["scope"]["retries_due"], 3, "{report:#}");
    assert_eq!(status(dir)["retries"], json!([]), "rows that can never come into scope were kept");
    // The next tick is idle, and nothing in Duo changed.
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    assert_eq!(json_of(&out)["idle"], true, "{out}");
    let s = env.emulator.handle().state();
    assert!(user_in(&s, "mchyzer", "testGroup") && user_in(&s, "kwilso", "testGroup"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_at_100_groups_moves_to_another_group_in_one_run_because_removals_complete_first() {
    // "mover" is in g000…g099 (Duo's limit); filler049…filler097 each share one of g049…g097
    // with it, so one run removes exactly 50 memberships (one bulk call) and adds one (the next).
    let mut subjects = vec![json!({"id": "mover", "login_id": "mover", "name": "Mover"})];
    let mut memberships: Vec<Value> = (0..100).map(|i| json!({"group": format!("app:duo:g{i:03}"), "subject": "mover"})).collect();
    for i in 49..98 {
        subjects.push(json!({"id": format!("filler{i:03}"), "login_id": format!("filler{i:03}"), "name": format!("Filler {i}")}));
        memberships.push(json!({"group": format!("app:duo:g{i:03}"), "subject": format!("filler{i:03}")}));
    }
    let groups: Vec<Value> = (0..101).map(|i| json!({"name": format!("app:duo:g{i:03}")})).collect();
    let registry = json!({"subjects": subjects, "groups": groups, "memberships": memberships, "markers": [{"provisioner": "duoTest", "folder": "app:duo"}]});
    let env = setup("concurrency = 4\n", &registry).await;
    let dir = env.dir.path();
    run(dir, &["sync", "duoTest"], 0);
    let mover_groups = |s: &TenantDump| s.users.iter().find(|u| u.username == "mover").map(|u| u.groups.len());
    assert_eq!(mover_groups(&env.emulator.handle().state()), Some(100));

    run(dir, &["member", "remove", "app:duo:g000", "mover"], 0);
    run(dir, &["member", "add", "app:duo:g100", "mover"], 0);
    for i in 49..98 {
        run(dir, &["member", "remove", &format!("app:duo:g{i:03}"), &format!("filler{i:03}")], 0);
    }
    // The removal call is slow: an addition sent beside it would reach Duo first and be refused.
    env.emulator.handle().set_faults("latency=500ms first=1 on=bulk").unwrap();
    let (out, _) = run(dir, &["sync", "duoTest", "--incremental", "--json"], 0);
    let report = json_of(&out);
    assert_eq!(report["failures"], json!([]), "{report:#}");
    let s = env.emulator.handle().state();
    assert!(!user_in(&s, "mover", "g000") && user_in(&s, "mover", "g100"), "{report:#}");
    assert_eq!(mover_groups(&s), Some(100));
    // The run's two membership calls did not overlap: the slow removal call was answered
    // before the addition call arrived.
    let mut bulk: Vec<_> = env.emulator.handle().calls().into_iter().filter(|c| c.endpoint == Some("bulk")).collect();
    let mut last_two = bulk.split_off(bulk.len() - 2);
    last_two.sort_by_key(|c| c.at_ms);
    let (first, second) = (&last_two[0], &last_two[1]);
    assert!(first.micros >= 500_000, "the first membership call of the run was not the slowed removal call: {first:?}");
    assert!(
        second.at_ms * 1000 >= first.at_ms * 1000 + first.micros as i64,
        "the addition call arrived before the removal call was answered: {first:?} {second:?}"
    );
    // Converged in that one run: a full plan is empty.
    let (out, _) = run(dir, &["plan", "duoTest", "--json"], 0);
    assert_eq!(json_of(&out)["plan"]["ops"], json!([]), "{out}");
}
