//! The seed scenario through the binary under the adverse readings of Duo's unverified bulk
//! endpoint (`bulk = "auto"`, the default): a remove spelt `POST …/groups/{gid}` answered with a
//! per-op 404, bulk results without `stat`, and no bulk endpoint at all. Each sync reaches the
//! registry's state, the removal is made by a single `DELETE` (never counted on the strength of a
//! 404), a second plan is empty and a second sync writes nothing — counted by the emulator.

use duoprov_emulator::config::{BulkRemovePost, BulkReplyShape, Settings};
use duoprov_emulator::{Emulator, Integration, RunningEmulator, TenantDump};
use serde_json::Value;

use crate::run;
use crate::sync::seed_registry;

const IKEY: &str = "DITESTBULK0000000001";
const SKEY: &str = "bulk-test-secret-key-0123456789abcdefghij";

struct Env {
    dir: tempfile::TempDir,
    emulator: RunningEmulator,
}

async fn setup(configure: impl FnOnce(&mut Settings)) -> Env {
    let emulator =
        Emulator::builder().integration(Integration::new(IKEY, SKEY)).configure(configure).spawn_on("127.0.0.1:0").await.expect("emulator");
    let dir = tempfile::tempdir().unwrap();
    crate::write_emulator_setup(dir.path(), &emulator.base_url(), IKEY, SKEY, "bulk = \"auto\"", "");
    Env { dir, emulator }
}

fn state(env: &Env) -> TenantDump {
    env.emulator.handle().state()
}

fn last_seq(env: &Env) -> u64 {
    env.emulator.handle().calls().last().map(|c| c.seq).unwrap_or(0)
}

/// Write calls since `seq`, as `METHOD path` with ids replaced by their kind (`{user}`, `{group}`).
fn writes_since(env: &Env, seq: u64) -> Vec<String> {
    env.emulator
        .handle()
        .calls_since(seq)
        .into_iter()
        .filter(|c| c.method != "GET")
        .map(|c| {
            let path: Vec<String> = c
                .path
                .split('/')
                .map(|seg| if seg.starts_with("DU") { "{user}".to_owned() } else if seg.starts_with("DG") { "{group}".to_owned() } else { seg.to_owned() })
                .collect();
            format!("{} {}", c.method, path.join("/"))
        })
        .collect()
}

/// Syncs and returns the report and the write calls it made; then a second plan must be empty
/// and a second sync must write nothing.
fn sync_and_settle(env: &Env) -> (Value, Vec<String>) {
    let dir = env.dir.path();
    let seq = last_seq(env);
    let (out, _) = run(dir, &["sync", "duoTest", "--json"], 0);
    let report: Value = serde_json::from_str(&out).expect("sync report JSON");
    let writes = writes_since(env, seq);
    let (out, _) = run(dir, &["plan", "duoTest", "--json"], 0);
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["plan"]["ops"], Value::Array(vec![]), "second plan not empty: {plan:#}");
    let seq = last_seq(env);
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(writes_since(env, seq), Vec::<String>::new(), "a second sync made write calls");
    (report, writes)
}

fn groups_of<'a>(s: &'a TenantDump, username: &str) -> &'a [duoprov_emulator::id::DuoId] {
    s.users.iter().find(|u| u.username == username).map(|u| u.groups.as_slice()).unwrap_or_else(|| panic!("{username} not in Duo"))
}

/// The seed scenario's provisioning, removal and rename under one reading; `removal` is the write
/// calls the removal's sync must make (each sync is a new process, so it tries bulk once).
async fn seed_scenario_under(configure: impl FnOnce(&mut Settings), removal: &[&str]) {
    let env = setup(configure).await;
    let dir = env.dir.path();
    seed_registry(dir);

    let (report, _) = sync_and_settle(&env);
    assert_eq!((report["users"]["created"].as_u64(), report["memberships"]["created"].as_u64()), (Some(2), Some(2)));
    let s = state(&env);
    let gid = s.groups[0].group_id;
    assert_eq!((groups_of(&s, "mchyzer"), groups_of(&s, "kwilso")), (&[gid][..], &[gid][..]));

    // The removal is made, and counted, only once Duo confirmed it.
    run(dir, &["member", "remove", "app:duo:testGroup", "kwilso"], 0);
    let (report, writes) = sync_and_settle(&env);
    assert_eq!(report["memberships"]["deleted"], 1);
    assert!(report["failures"].as_array().is_some_and(Vec::is_empty), "{report:#}");
    assert_eq!(writes, removal);
    let s = state(&env);
    assert!(groups_of(&s, "kwilso").is_empty(), "kwilso is still a member in Duo");
    assert_eq!(groups_of(&s, "mchyzer"), &[gid][..]);

    // A user modify reaches Duo too.
    run(dir, &["subject", "add", "mchyzer", "--login-id", "chyzer"], 0);
    let (report, _) = sync_and_settle(&env);
    assert_eq!(report["users"]["updated"], 1);
    assert_eq!(groups_of(&state(&env), "chyzer"), &[gid][..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_when_duo_answers_a_bulk_remove_with_404() {
    seed_scenario_under(
        |s| s.bulk_remove_post = BulkRemovePost::PerOp404,
        // Bulk stays in use; only the remove it could not confirm is sent again, as DELETE.
        &["POST /admin/v1/bulk", "DELETE /admin/v1/users/{user}/groups/{group}"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_when_bulk_results_carry_no_stat() {
    seed_scenario_under(
        |s| s.bulk_reply_shape = BulkReplyShape::Bare,
        &["POST /admin/v1/bulk", "DELETE /admin/v1/users/{user}/groups/{group}"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_without_a_bulk_endpoint() {
    seed_scenario_under(
        |s| s.bulk_reply_shape = BulkReplyShape::Unavailable,
        &["POST /admin/v1/bulk", "DELETE /admin/v1/users/{user}/groups/{group}"],
    )
    .await;
}
