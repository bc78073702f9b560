//! The seed scenario end to end through the binary against an in-process emulator: one sync
//! provisions, then each registry change reaches Duo, and after every step a second plan is empty
//! and a second sync makes no write call — counted by the emulator, not by the client.

use std::path::Path;

use duoprov_emulator::{Emulator, Integration, RunningEmulator, TenantDump};
use serde_json::Value;

use crate::run;

const IKEY: &str = "DITESTSYNC0000000001";
pub const SKEY: &str = "sync-test-secret-key-0123456789abcdefghij";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub emulator: RunningEmulator,
}

/// A temporary folder with a registry, a configuration pointing at a fresh emulator, and the
/// secret key in a private file.
pub async fn setup(extra: &str) -> Env {
    setup_configured(extra, |_| {}).await
}

/// [`setup`] with the emulator's settings changed by `configure` first.
pub async fn setup_configured(extra: &str, configure: impl FnOnce(&mut duoprov_emulator::Settings) + Send + 'static) -> Env {
    let emulator = Emulator::builder().integration(Integration::new(IKEY, SKEY)).configure(configure).spawn_on("127.0.0.1:0").await.expect("emulator");
    let dir = tempfile::tempdir().unwrap();
    crate::write_emulator_setup(dir.path(), &emulator.base_url(), IKEY, SKEY, "", extra);
    Env { dir, emulator }
}

pub fn seed_registry(dir: &Path) {
    run(dir, &["subject", "add", "mchyzer", "--name", "Chris Hyzer", "--login-id", "mchyzer", "--email", "mchyzer@example.edu"], 0);
    run(dir, &["subject", "add", "kwilso", "--name", "Kate Wilson", "--login-id", "kwilso", "--email", "kwilso@example.edu"], 0);
    run(dir, &["group", "add", "app:duo:testGroup", "--description", "Duo test group", "--create-parents"], 0);
    run(dir, &["member", "add", "app:duo:testGroup", "mchyzer", "kwilso"], 0);
    run(dir, &["provision", "assign", "duoTest", "--folder", "app:duo", "--scope", "sub"], 0);
}

fn state(env: &Env) -> TenantDump {
    env.emulator.handle().state()
}

fn write_calls_since(env: &Env, seq: u64) -> Vec<String> {
    env.emulator.handle().calls_since(seq).into_iter().filter(|c| c.method != "GET").map(|c| format!("{} {}", c.method, c.path)).collect()
}

fn last_seq(env: &Env) -> u64 {
    env.emulator.handle().calls().last().map(|c| c.seq).unwrap_or(0)
}

/// Syncs, then checks that a new plan is empty and a second sync writes nothing.
fn sync_and_settle(env: &Env, extra_args: &[&str]) -> Value {
    let dir = env.dir.path();
    let mut args = vec!["sync", "duoTest", "--json"];
    args.extend_from_slice(extra_args);
    let (out, _) = run(dir, &args, 0);
    let report: Value = serde_json::from_str(&out).expect("sync report JSON");
    let (out, _) = run(dir, &["plan", "duoTest", "--json"], 0);
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["plan"]["ops"], Value::Array(vec![]), "second plan not empty: {plan:#}");
    let seq = last_seq(env);
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(write_calls_since(env, seq), Vec::<String>::new(), "a second sync made write calls");
    report
}

fn user<'a>(s: &'a TenantDump, username: &str) -> Option<&'a duoprov_emulator::state::User> {
    s.users.iter().find(|u| u.username == username)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_end_to_end() {
    let env = setup("").await;
    let dir = env.dir.path();
    seed_registry(dir);

    // Step 1: one sync gives Duo 1 group, 2 users with the mapped fields, 2 memberships.
    let report = sync_and_settle(&env, &[]);
    assert_eq!(report["groups"]["created"], 1);
    assert_eq!(report["users"]["created"], 2);
    assert_eq!(report["memberships"]["created"], 2);
    let s = state(&env);
    assert_eq!(s.groups.len(), 1);
    assert_eq!((s.groups[0].name.as_str(), s.groups[0].desc.as_str()), ("testGroup", "Duo test group"));
    let gid = s.groups[0].group_id;
    let chris = user(&s, "mchyzer").expect("mchyzer in Duo");
    assert_eq!((chris.realname.as_str(), chris.email.as_str()), ("Chris Hyzer", "mchyzer@example.edu"));
    assert_eq!(chris.groups, vec![gid]);
    assert_eq!(user(&s, "kwilso").unwrap().groups, vec![gid]);

    // Step 2: remove kwilso: one membership left, the user stays under the default policy.
    run(dir, &["member", "remove", "app:duo:testGroup", "kwilso"], 0);
    let report = sync_and_settle(&env, &[]);
    assert_eq!(report["memberships"]["deleted"], 1);
    let s = state(&env);
    assert!(user(&s, "kwilso").expect("kwilso stays").groups.is_empty());
    assert_eq!(user(&s, "mchyzer").unwrap().groups, vec![gid]);

    // Step 3: the group's description is pushed.
    run(dir, &["group", "update", "app:duo:testGroup", "--description", "MFA pilot"], 0);
    sync_and_settle(&env, &[]);
    assert_eq!(state(&env).groups[0].desc, "MFA pilot");

    // Step 4: mchyzer's login id is pushed as the username, same Duo user.
    let chris_id = user(&state(&env), "mchyzer").unwrap().user_id;
    run(dir, &["subject", "add", "mchyzer", "--login-id", "chyzer"], 0);
    let report = sync_and_settle(&env, &[]);
    assert_eq!(report["users"]["updated"], 1);
    let s = state(&env);
    assert_eq!(user(&s, "chyzer").expect("renamed").user_id, chris_id);

    // Step 5: deleting the group empties the selection: refused (exit 3) and nothing changes…
    run(dir, &["group", "remove", "app:duo:testGroup"], 0);
    let seq = last_seq(&env);
    let (_, err) = run(dir, &["sync", "duoTest"], 3);
    let digest = crate::safety::digest_in(&err);
    assert!(err.contains("selects no group") && err.contains(&format!("--approve {digest}")), "{err}");
    assert!(write_calls_since(&env, seq).is_empty());
    // …until approved for this run: the Duo group goes, since duoprov created it.
    let report = sync_and_settle(&env, &["--approve", &digest]);
    assert_eq!(report["groups"]["deleted"], 1);
    let s = state(&env);
    assert!(s.groups.is_empty());
    assert_eq!(s.users.len(), 2, "users are never deleted under the default policy");

    let (out, _) = run(dir, &["status", "duoTest", "--json"], 0);
    let status: Value = serde_json::from_str(&out).unwrap();
    let statuses: Vec<&str> = status["runs"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert!(statuses.contains(&"refused") && statuses.contains(&"succeeded"), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_applies_only_to_the_state_it_came_from() {
    let env = setup("").await;
    let dir = env.dir.path();
    seed_registry(dir);
    run(dir, &["plan", "duoTest", "--out", "plan.json"], 0);
    run(dir, &["subject", "add", "kwilso", "--email", "kate@example.edu"], 0);
    let seq = last_seq(&env);
    let (_, err) = run(dir, &["sync", "duoTest", "--plan", "plan.json"], 3);
    assert!(err.contains("the registry changed"), "{err}");
    assert!(write_calls_since(&env, seq).is_empty(), "a stale plan changes nothing");
    run(dir, &["plan", "duoTest", "--out", "plan.json"], 0);
    run(dir, &["sync", "duoTest", "--plan", "plan.json"], 0);
    assert_eq!(user(&state(&env), "kwilso").unwrap().email, "kate@example.edu");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_and_doctor_checks_everything() {
    let env = setup("").await;
    let dir = env.dir.path();
    seed_registry(dir);
    let seq = last_seq(&env);
    let (out, _) = run(dir, &["sync", "duoTest", "--dry-run"], 0);
    assert!(out.contains("dry run"), "{out}");
    assert!(write_calls_since(&env, seq).is_empty());
    let (out, _) = run(dir, &["doctor", "duoTest"], 0);
    assert!(out.contains("ok    registry: 1 groups selected, 2 users, 2 memberships"), "{out}");
    assert!(out.contains("ok    Duo: read access works"), "{out}");
    assert!(out.contains("ok    Duo write grant: write grant present"), "{out}");
    assert!(write_calls_since(&env, seq).iter().all(|c| c == "POST /admin/v1/users/DU000000000000000000"), "doctor changes nothing");
    assert!(state(&env).groups.is_empty() && state(&env).users.is_empty());
    let (_, err) = run(dir, &["plan", "nope"], 1);
    assert!(err.contains("[provisioner.nope]"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_refreshes_the_duo_users_table_without_reading_duo_again() {
    let env = setup("load_duo_users = true").await;
    let dir = env.dir.path();
    seed_registry(dir);
    let seq = last_seq(&env);
    let (out, _) = run(dir, &["sync", "duoTest", "--json"], 0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["duo_users_loaded"]["inserted"], 2, "{report:#}");
    let user_reads = env.emulator.handle().calls_since(seq).into_iter().filter(|c| c.method == "GET" && c.path == "/admin/v1/users").count();
    assert_eq!(user_reads, 1, "the users read for planning are reused");
    let (out, _) = run(dir, &["report", "duoTest", "users", "--json"], 0);
    let rows: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["user_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["kwilso", "mchyzer"]);
    // A login-id change is reflected in the table by the same sync that pushes it.
    run(dir, &["subject", "add", "mchyzer", "--login-id", "chyzer"], 0);
    let (out, _) = run(dir, &["sync", "duoTest", "--json"], 0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["duo_users_loaded"]["updated"], 1, "{report:#}");
    let (out, _) = run(dir, &["report", "duoTest", "users", "--json"], 0);
    assert!(out.contains("\"chyzer\""), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_object_does_not_stop_the_others_and_the_next_run_converges() {
    let env = setup("").await;
    let dir = env.dir.path();
    seed_registry(dir);
    run(dir, &["group", "add", "app:duo:second", "--description", "second"], 0);
    run(dir, &["member", "add", "app:duo:second", "kwilso"], 0);
    // Duo fails every group create this run.
    env.emulator.handle().set_faults("500 on=groups.create").unwrap();
    let (out, _) = run(dir, &["sync", "duoTest", "--json"], 2);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["groups"]["failed"], 2, "{report:#}");
    assert_eq!(report["users"]["created"], 2, "users are created although the groups failed");
    assert_eq!(report["memberships"]["failed"], 3, "memberships of groups that could not be created fail");
    let (out, _) = run(dir, &["status", "duoTest", "--json"], 0);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["runs"][0]["status"], "partial");
    assert!(status["errors"].as_array().unwrap().iter().any(|e| e["code"] == "ERR"), "{status:#}");
    // Duo recovers: the next run finishes the job without creating anything twice.
    env.emulator.handle().set_faults("").unwrap();
    sync_and_settle(&env, &[]);
    let s = state(&env);
    assert_eq!(s.groups.len(), 2);
    assert_eq!(s.users.len(), 2, "no user created twice");
    assert_eq!(user(&s, "kwilso").unwrap().groups.len(), 2);
    let creates = env.emulator.handle().calls().iter().filter(|c| c.method == "POST" && c.path == "/admin/v1/users/bulk_create" && c.status == 200).count();
    assert_eq!(creates, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_file_readable_by_others_is_named_in_a_warning_and_never_printed() {
    let env = setup("log_http = \"always\"").await;
    let dir = env.dir.path();
    seed_registry(dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("duo.skey"), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (out, err) = run(dir, &["-vvv", "sync", "duoTest"], 0);
    assert!(err.contains("Secret file is readable by group or others") && err.contains("duo.skey"), "{err}");
    assert!(!out.contains(SKEY) && !err.contains(SKEY), "the secret key never appears in any output");
    assert!(!err.contains("Authorization: Basic"), "Authorization is always masked");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_is_private_and_doctor_warns_about_a_registry_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let env = setup("").await;
    let dir = env.dir.path();
    seed_registry(dir);
    let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("registry.db"), 0o600, "a new registry is private");
    let (out, _) = run(dir, &["doctor", "duoTest"], 0);
    assert!(!out.contains("file permissions"), "{out}");
    std::fs::set_permissions(dir.join("registry.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (out, _) = run(dir, &["doctor", "duoTest"], 0);
    assert!(out.contains("warn  file permissions") && out.contains("registry.db (mode 644)") && out.contains("chmod 600"), "{out}");
    let (out, _) = run(dir, &["--json", "doctor", "duoTest"], 0);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("doctor --json is one JSON document");
    assert!(doc["checks"].as_array().unwrap().iter().any(|c| c["warning"] == true && c["check"] == "file permissions"), "{doc}");
    // A plan names users and e-mail addresses: the saved file is private, even over a file
    // that was readable by others.
    std::fs::write(dir.join("plan.json"), "old").unwrap();
    std::fs::set_permissions(dir.join("plan.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    run(dir, &["plan", "duoTest", "--out", "plan.json"], 0);
    assert_eq!(mode("plan.json"), 0o600);
    assert!(std::fs::read_to_string(dir.join("plan.json")).unwrap().contains("kwilso@example.edu"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_which_tls_mode_a_postgresql_registry_uses_and_why() {
    let env = setup("").await;
    let dir = env.dir.path();
    let config = std::fs::read_to_string(dir.join("duoprov.toml")).unwrap();
    let remote = config.replace("url = \"sqlite://registry.db\"", "url = \"postgres://duoprov@db.example.invalid/duoprov\"");
    crate::write_config(dir, &remote).unwrap();
    // The host does not resolve, so the registry check fails; the TLS line is there all the same.
    let (out, _) = run(dir, &["doctor", "duoTest"], 1);
    assert!(out.contains("registry TLS: sslmode=verify-full to db.example.invalid") && out.contains("duoprov's default for a remote host"), "{out}");
    let chosen = config.replace("url = \"sqlite://registry.db\"", "url = \"postgres://duoprov@127.0.0.1:1/duoprov?sslmode=require\"");
    crate::write_config(dir, &chosen).unwrap();
    let (out, _) = run(dir, &["doctor", "duoTest"], 1);
    assert!(out.contains("registry TLS: sslmode=require to 127.0.0.1 (encrypted, certificate not checked; set by sslmode in registry.url)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_version_2_works_and_warns_that_hmac_sha1_is_deprecated() {
    let env = setup("").await;
    let dir = env.dir.path();
    seed_registry(dir);
    let config = std::fs::read_to_string(dir.join("duoprov.toml")).unwrap();
    let (out, err) = run(dir, &["plan", "duoTest"], 0);
    assert!(!err.contains("HMAC-SHA1"), "no warning with the default signature: {err}");
    assert!(out.contains("Create groups (1)"), "{out}");
    crate::write_config(dir, config.replace("[provisioner.duoTest]", "signature_version = 2\n\n[provisioner.duoTest]")).unwrap();
    let (out, err) = run(dir, &["plan", "duoTest"], 0);
    assert!(err.contains("signature_version = 2") && err.contains("HMAC-SHA1, which is deprecated"), "{err}");
    assert!(out.contains("Create groups (1)"), "the v2-signed plan still reads Duo: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_selection_with_50_managed_groups_is_refused_until_approved_exactly() {
    let env = setup("").await;
    let dir = env.dir.path();
    // Let the client pace at the emulator's limits for this test.
    let config = std::fs::read_to_string(dir.join("duoprov.toml")).unwrap();
    let config = config.replace("[provisioner.duoTest]", "writes_per_minute = 300\nmax_concurrency = 8\n\n[provisioner.duoTest]");
    crate::write_config(dir, config).unwrap();
    let mut doc = String::from("{\"subjects\":[{\"id\":\"u1\",\"name\":\"U One\",\"login_id\":\"u1\"}],\"groups\":[");
    let groups: Vec<String> = (0..50).map(|i| format!("{{\"name\":\"app:duo:g{i:02}\"}}")).collect();
    doc.push_str(&groups.join(","));
    doc.push_str("],\"memberships\":[");
    let members: Vec<String> = (0..50).map(|i| format!("{{\"group\":\"app:duo:g{i:02}\",\"subject\":\"u1\"}}")).collect();
    doc.push_str(&members.join(","));
    doc.push_str("],\"markers\":[{\"provisioner\":\"duoTest\",\"folder\":\"app:duo\"}]}");
    std::fs::write(dir.join("tenant.json"), doc).unwrap();
    run(dir, &["import", "tenant.json"], 0);
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(state(&env).groups.len(), 50);

    // The marker goes (a broken registry export, say): the registry selects nothing.
    run(dir, &["provision", "unassign", "duoTest", "--folder", "app:duo"], 0);
    let seq = last_seq(&env);
    let (_, err) = run(dir, &["sync", "duoTest"], 3);
    assert!(err.contains("selects no group while Duo holds 50 groups"), "{err}");
    assert!(err.contains("50 group deletions exceed max_group_deletes = 10"), "{err}");
    let digest = crate::safety::digest_in(&err);
    assert!(err.contains("delete group g00") && err.contains(&format!("duoprov sync duoTest --approve {digest}")), "{err}");
    assert!(write_calls_since(&env, seq).is_empty(), "nothing changed");
    // An approval of another list changes nothing either.
    run(dir, &["sync", "duoTest", "--approve", "0123456789ab"], 3);
    assert!(write_calls_since(&env, seq).is_empty());
    // The approved run deletes exactly the 50 groups duoprov created, and no user.
    let report = sync_and_settle(&env, &["--approve", &digest]);
    assert_eq!(report["groups"]["deleted"], 50);
    let deletes = write_calls_since(&env, seq).into_iter().filter(|c| c.starts_with("DELETE /admin/v1/groups/")).count();
    assert_eq!(deletes, 50);
    let s = state(&env);
    assert!(s.groups.is_empty());
    assert_eq!(s.users.len(), 1, "users are never deleted under the default policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_clashing_on_one_duo_username_are_held_named_and_make_the_sync_partial() {
    let env = setup("").await;
    let dir = env.dir.path();
    seed_registry(dir);
    sync_and_settle(&env, &[]);
    // A second subject renders the same Duo username as mchyzer: neither may be guessed.
    run(dir, &["subject", "add", "chyzer2", "--name", "Chris Hyzer Two", "--login-id", "mchyzer"], 0);
    run(dir, &["member", "add", "app:duo:testGroup", "chyzer2"], 0);

    let (out, _) = run(dir, &["plan", "duoTest"], 0);
    assert!(!out.contains("nothing to do"), "a plan with held objects never says nothing to do:\n{out}");
    assert!(out.contains("nothing to change, but 2 objects are held:"), "{out}");
    assert!(out.contains("subject local:mchyzer [MAT]") && out.contains("subject local:chyzer2 [MAT]"), "{out}");

    let seq = last_seq(&env);
    let (out, _) = run(dir, &["sync", "duoTest"], 2);
    assert!(out.contains("2 objects are held"), "{out}");
    assert!(out.contains("subject local:mchyzer [MAT]: 2 subjects map to the Duo username \"mchyzer\""), "{out}");
    assert!(out.contains("subject local:chyzer2 [MAT]"), "{out}");
    assert!(write_calls_since(&env, seq).is_empty(), "held objects are left as they are");
    let (out, _) = run(dir, &["sync", "duoTest", "--json"], 2);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["status"], "partial", "{report:#}");
    let held: Vec<(String, String)> =
        report["held_objects"].as_array().unwrap().iter().map(|h| (h["object"].as_str().unwrap().to_owned(), h["code"].as_str().unwrap().to_owned())).collect();
    assert_eq!(held.len(), 2, "{report:#}");
    for who in ["subject local:mchyzer", "subject local:chyzer2"] {
        assert!(held.contains(&(who.to_owned(), "MAT".to_owned())), "{who} not held: {held:?}");
    }
    let (out, _) = run(dir, &["status", "duoTest", "--json"], 0);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["runs"][0]["status"], "partial", "the run log says so too");

    // Fixed in the registry: nothing is held and the sync is clean again.
    run(dir, &["subject", "add", "chyzer2", "--login-id", "chyzer2"], 0);
    let report = sync_and_settle(&env, &[]);
    assert_eq!((report["held"].clone(), report["status"].clone()), (serde_json::json!(0), serde_json::json!("succeeded")), "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_drops_warnings_but_keeps_errors_and_results() {
    let env = setup("").await;
    let dir = env.dir.path();
    seed_registry(dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("duo.skey"), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (_, err) = run(dir, &["plan", "duoTest"], 0);
    assert!(err.contains("Secret file is readable by group or others"), "a warning at the default level:\n{err}");
    let (out, err) = run(dir, &["-q", "plan", "duoTest"], 0);
    assert!(!err.contains("Secret file is readable"), "-q shows no warning:\n{err}");
    assert!(out.contains("Plan for duoTest"), "-q keeps the results:\n{out}");
    let (_, err) = run(dir, &["-q", "plan", "noSuchProvisioner"], 1);
    assert!(err.contains("error:") && err.contains("noSuchProvisioner"), "-q keeps errors:\n{err}");
    let (_, err) = run(dir, &["-q", "-v", "plan", "duoTest"], 1);
    assert!(err.contains("cannot be used with"), "-q and -v together are a usage error:\n{err}");
}

/// `delete_groups = "registry_deleted"` (Grouper's `deleteGroupsIfGrouperDeleted`): a group no
/// longer marked stays in Duo; a group deleted from the registry is deleted from Duo, by a full
/// sync and by an incremental one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_registry_deleted_only_a_group_deleted_from_the_registry_leaves_duo() {
    let env = setup("delete_groups = \"registry_deleted\"\n").await;
    let dir = env.dir.path();
    // A Duo group made by hand, which the registry group of the same name adopts.
    let mut dump = state(&env);
    dump.groups.push(serde_json::from_value(serde_json::json!({"group_id": "DGHANDMADE0000000001", "name": "adopted", "status": "active"})).expect("a group"));
    env.emulator.handle().load_state(dump).expect("seed Duo");
    run(dir, &["subject", "add", "ann", "--login-id", "ann"], 0);
    for g in ["app:duo:unmarked", "app:duo:deleted", "app:duo:deletedLater", "app:duo:kept", "app:duo:adopted"] {
        run(dir, &["group", "add", g, "--create-parents"], 0);
        run(dir, &["member", "add", g, "ann"], 0);
        run(dir, &["provision", "assign", "duoTest", "--group", g], 0);
    }
    run(dir, &["sync", "duoTest"], 0);
    let names = |env: &Env| -> Vec<String> {
        let mut n: Vec<String> = state(env).groups.iter().map(|g| g.name.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&env), ["adopted", "deleted", "deletedLater", "kept", "unmarked"]);

    // Unmarked: no longer selected, but its registry group exists, so Duo keeps it.
    run(dir, &["provision", "unassign", "duoTest", "--group", "app:duo:unmarked"], 0);
    run(dir, &["group", "remove", "app:duo:deleted"], 0);
    // Its registry group deleted, the adopted group is released, not deleted: duoprov did not make it.
    run(dir, &["group", "remove", "app:duo:adopted"], 0);
    let (plan, _) = run(dir, &["plan", "duoTest", "--json"], 0);
    let plan: Value = serde_json::from_str(&plan).expect("plan JSON");
    let deletes: Vec<&Value> = plan["plan"]["ops"].as_array().expect("ops").iter().filter(|o| o["op"] == "delete_group").collect();
    assert_eq!(deletes.len(), 1, "{plan}");
    assert_eq!(deletes[0]["name"], "deleted");
    assert!(deletes[0]["reason"].as_str().is_some_and(|r| r.contains("registry group was deleted")), "{plan}");
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(names(&env), ["adopted", "deletedLater", "kept", "unmarked"]);

    // The incremental path decides the same way.
    run(dir, &["group", "remove", "app:duo:deletedLater"], 0);
    run(dir, &["sync", "duoTest", "--incremental"], 0);
    assert_eq!(names(&env), ["adopted", "kept", "unmarked"]);
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(names(&env), ["adopted", "kept", "unmarked"], "a later full sync still keeps the unmarked and the adopted group");
}

#[test]
fn registry_deleted_is_refused_for_users_and_memberships_by_key() {
    let dir = tempfile::tempdir().unwrap();
    crate::write_emulator_setup(dir.path(), "http://127.0.0.1:9", IKEY, SKEY, "", "delete_users = \"registry_deleted\"\n");
    let (_, err) = run(dir.path(), &["config"], 1);
    assert!(err.contains("delete_users") && err.contains("delete_groups only"), "{err}");
}
