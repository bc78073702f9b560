//! `duoprov explain` and `duoprov sync P --group NAME / --subject ID` end to end against the
//! emulator: the nested-group chain and the deciding marker, why a subject is not eligible, a
//! held username clash naming the other subject, "next run" equal to the full sync's operations
//! on the subject, one group or subject synced while another group's change stays pending, a
//! held clash staying held, clear errors for unknown names, and the calls one group's sync makes
//! against a registry of 20 000 subjects (counted by the emulator).

use duoprov_emulator::TenantDump;
use serde_json::{Value, json};

use crate::run;
use crate::sync::{Env, setup_configured};

async fn setup(extra: &str) -> Env {
    setup_configured(extra, |s| s.rate_limits.burst_fraction = Some(1.0)).await
}

fn user_in(s: &TenantDump, username: &str, group: &str) -> bool {
    let Some(g) = s.groups.iter().find(|g| g.name == group) else { return false };
    s.users.iter().any(|u| u.username == username && u.groups.contains(&g.group_id))
}

fn has_user(s: &TenantDump, username: &str) -> bool {
    s.users.iter().any(|u| u.username == username)
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn subject(dir: &std::path::Path, login: &str) {
    run(dir, &["subject", "add", login, "--name", &format!("User {login}"), "--login-id", login, "--email", &format!("{login}@example.edu")], 0);
}

/// `app:duo:A` (and `app:duo:C`) selected by a `sub` marker on folder `app:duo`; `org:B`, outside
/// it, nested in A; alice in B, kwilso direct in A, both synced.
fn nested_registry(dir: &std::path::Path) {
    for s in ["alice", "kwilso"] {
        subject(dir, s);
    }
    run(dir, &["group", "add", "app:duo:A", "--create-parents"], 0);
    run(dir, &["group", "add", "app:duo:C"], 0);
    run(dir, &["group", "add", "org:B", "--create-parents"], 0);
    run(dir, &["member", "add", "org:B", "alice"], 0);
    run(dir, &["member", "add", "app:duo:A", "kwilso"], 0);
    run(dir, &["member", "add", "app:duo:C", "kwilso"], 0);
    run(dir, &["member", "add", "app:duo:A", "--group", "org:B"], 0);
    run(dir, &["provision", "assign", "duoTest", "--folder", "app:duo", "--scope", "sub"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_nested_group_chain_the_deciding_marker_and_the_link() {
    let env = setup("").await;
    let dir = env.dir.path();
    nested_registry(dir);
    run(dir, &["sync", "duoTest"], 0);

    let (out, _) = run(dir, &["explain", "alice", "--json"], 0);
    let e = json_of(&out);
    let groups = e["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{e:#}");
    assert_eq!(groups[0]["name"], "app:duo:A");
    assert_eq!(groups[0]["paths"], json!([["app:duo:A", "org:B"]]), "alice is in A through B: {e:#}");
    assert_eq!(groups[0]["direct"], false);
    assert_eq!(groups[0]["marker"], json!({"on": "folder", "path": "app:duo", "scope": "sub", "provision": true}));
    assert_eq!(groups[0]["desired_member"], true);
    assert_eq!(e["link"]["ownership"], "created by duoprov");
    assert_eq!(e["eligibility"]["eligible"], true);
    assert_eq!(e["rendered"]["username"], "alice");

    let (text, _) = run(dir, &["explain", "alice"], 0);
    assert!(text.contains("member through app:duo:A ⊃ org:B ⊃ alice"), "{text}");
    assert!(text.contains("the marker on folder app:duo (scope sub) includes it"), "{text}");
    assert!(text.contains("created by duoprov"), "{text}");

    // An excluded group: the deciding marker is the group's own, and it excludes.
    run(dir, &["provision", "assign", "duoTest", "--group", "app:duo:C", "--exclude"], 0);
    let (out, _) = run(dir, &["explain", "kwilso", "--group", "app:duo:C", "--json"], 0);
    let e = json_of(&out);
    assert_eq!(e["groups"][0]["selected"], false, "{e:#}");
    assert_eq!(e["groups"][0]["marker"]["on"], "group");
    assert_eq!(e["groups"][0]["marker"]["provision"], false);
    assert_eq!(e["groups"][0]["paths"], json!([["app:duo:C"]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_of_an_ineligible_subject_says_why() {
    let env = setup("eligible_group = \"org:eligible\"").await;
    let dir = env.dir.path();
    nested_registry(dir);
    subject(dir, "carl");
    run(dir, &["group", "add", "org:eligible"], 0);
    run(dir, &["member", "add", "org:eligible", "kwilso"], 0);

    let (out, _) = run(dir, &["explain", "alice", "--json"], 0);
    let e = json_of(&out);
    assert_eq!(e["eligibility"]["eligible"], false, "{e:#}");
    let reasons = e["eligibility"]["reasons"].to_string();
    assert!(reasons.contains("not an effective member of the eligibility group org:eligible"), "{reasons}");
    assert_eq!(e["groups"][0]["desired_member"], false, "an ineligible subject is wanted in no Duo group");

    let (text, _) = run(dir, &["explain", "carl"], 0);
    assert!(text.contains("Eligible: no"), "{text}");
    assert!(text.contains("not an effective member of any group provisioner duoTest selects"), "{text}");
    let (out, _) = run(dir, &["explain", "kwilso", "--json"], 0);
    assert_eq!(json_of(&out)["eligibility"]["eligible"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_username_clash_names_the_other_subject_and_stays_held_under_sync_subject() {
    let env = setup("").await;
    let dir = env.dir.path();
    nested_registry(dir);
    run(dir, &["sync", "duoTest"], 0);
    // Two subjects whose login ids differ only in case: one Duo username.
    run(dir, &["subject", "add", "jdoe1", "--name", "J Doe", "--login-id", "jdoe"], 0);
    run(dir, &["subject", "add", "jdoe2", "--name", "J Doe Two", "--login-id", "JDoe"], 0);
    run(dir, &["member", "add", "app:duo:A", "jdoe1", "jdoe2"], 0);

    let (out, _) = run(dir, &["explain", "jdoe1", "--json"], 0);
    let e = json_of(&out);
    assert_eq!(e["held"][0]["code"], "MAT", "{e:#}");
    assert_eq!(e["clash_with"], json!(["local:jdoe2 (JDoe)"]), "{e:#}");
    let (text, _) = run(dir, &["explain", "jdoe1"], 0);
    assert!(text.contains("clashes with local:jdoe2 (JDoe)"), "{text}");

    // Held exactly as a full sync holds it: exit 2, nothing created.
    let (out, _) = run(dir, &["sync", "duoTest", "--subject", "jdoe1", "--json"], 2);
    let report = json_of(&out);
    assert_eq!(report["kind"], "object", "{report:#}");
    assert!(report["held_objects"].to_string().contains("MAT"), "{report:#}");
    let state = env.emulator.handle().state();
    assert!(!state.users.iter().any(|u| u.username.eq_ignore_ascii_case("jdoe")), "a held subject's user was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_next_run_is_the_full_plans_operations_on_the_subject_and_sync_subject_applies_them() {
    let env = setup("").await;
    let dir = env.dir.path();
    nested_registry(dir);
    run(dir, &["sync", "duoTest"], 0);
    subject(dir, "newbie");
    run(dir, &["member", "add", "app:duo:A", "newbie"], 0);
    run(dir, &["member", "add", "app:duo:C", "newbie"], 0);
    // Another object's pending change, which the subject's sync must leave alone.
    run(dir, &["member", "remove", "app:duo:A", "kwilso"], 0);

    let (out, _) = run(dir, &["explain", "newbie", "--live", "--json"], 0);
    let explained = json_of(&out)["next_run"]["ops"].clone();
    let (out, _) = run(dir, &["plan", "duoTest", "--json"], 0);
    let full: Vec<Value> = json_of(&out)["plan"]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["id"] == "newbie" || o["user"]["id"] == "newbie")
        .cloned()
        .collect();
    assert_eq!(full.len(), 3, "create newbie, add to A and C: {full:#?}");
    assert_eq!(explained, Value::Array(full), "explain's next run differs from the full plan's operations on newbie");
    let (text, _) = run(dir, &["explain", "newbie", "--live"], 0);
    assert!(text.contains("Next run (`duoprov sync duoTest --subject local:newbie`"), "{text}");

    let (out, _) = run(dir, &["sync", "duoTest", "--subject", "newbie", "--json"], 0);
    let report = json_of(&out);
    assert_eq!(report["kind"], "object");
    let state = env.emulator.handle().state();
    assert!(user_in(&state, "newbie", "A") && user_in(&state, "newbie", "C"), "newbie and its memberships were created");
    assert!(user_in(&state, "kwilso", "A"), "another subject's pending removal was applied by newbie's sync");
    // Its link is recorded as a full sync records it, and the pending removal is still pending.
    let (out, _) = run(dir, &["explain", "newbie", "--json"], 0);
    assert_eq!(json_of(&out)["link"]["ownership"], "created by duoprov");
    run(dir, &["sync", "duoTest", "--incremental"], 0);
    assert!(!user_in(&env.emulator.handle().state(), "kwilso", "A"), "the pending removal reached Duo with the next incremental run");
}

/// Points the configuration of `env` at a fresh schema of the PostgreSQL test database (created
/// with its tables); `false` (after reporting the skip) without one.
async fn use_postgres(env: &Env, name: &str) -> bool {
    let Some(url) = crate::postgres_url() else { return false };
    let schema = format!("cli_{name}_{}", std::process::id());
    let options = duoprov_registry::OpenOptions { schema: Some(schema.clone()), ..Default::default() };
    drop(duoprov_registry::open(&url, &options).await.expect("the PostgreSQL test database"));
    let separator = if url.contains('?') { '&' } else { '?' };
    // The password goes to a private file, as the configuration requires.
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (userinfo, host) = rest.split_once('@').unwrap_or(("", rest));
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let at = if user.is_empty() { String::new() } else { format!("{user}@") };
    let file = env.dir.path().join("pg.password");
    std::fs::write(&file, password).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let path = env.dir.path().join("duoprov.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let config = config.replace(
        "url = \"sqlite://registry.db\"",
        &format!("url = \"{scheme}://{at}{host}{separator}options[search_path]={schema}\"\npassword_file = \"pg.password\""),
    );
    std::fs::write(&path, config).unwrap();
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_group_adds_and_removes_exactly_that_groups_members_and_leaves_another_groups_change_pending() {
    sync_group_scenario(setup("").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_group_and_explain_on_postgres() {
    let env = setup("").await;
    if use_postgres(&env, "explain").await {
        sync_group_scenario(env);
    }
}

fn sync_group_scenario(env: Env) {
    let dir = env.dir.path();
    nested_registry(dir);
    run(dir, &["sync", "duoTest"], 0);
    subject(dir, "newbie");
    run(dir, &["member", "add", "app:duo:A", "newbie"], 0);
    run(dir, &["member", "remove", "app:duo:A", "kwilso"], 0);
    run(dir, &["member", "add", "app:duo:C", "newbie"], 0);
    run(dir, &["subject", "update", "alice", "--name", "Alice Renamed"], 0);

    let (out, _) = run(dir, &["sync", "duoTest", "--group", "app:duo:A", "--dry-run", "--json"], 0);
    let ops: Vec<String> = json_of(&out)["plan"]["ops"].as_array().unwrap().iter().map(|o| o["op"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ops, ["create_user", "remove_member", "add_member"], "the dry run shows exactly the group's plan");
    assert!(!has_user(&env.emulator.handle().state(), "newbie"), "a dry run created a user");

    let (out, _) = run(dir, &["sync", "duoTest", "--group", "app:duo:A", "--json"], 0);
    assert_eq!(json_of(&out)["kind"], "object");
    let state = env.emulator.handle().state();
    assert!(user_in(&state, "newbie", "A"), "newbie added to A");
    assert!(has_user(&state, "kwilso") && !user_in(&state, "kwilso", "A"), "kwilso removed from A, its user kept");
    assert!(user_in(&state, "kwilso", "C"), "kwilso's other membership untouched");
    assert!(!user_in(&state, "newbie", "C"), "another group's pending change was applied by A's sync");
    let alice = state.users.iter().find(|u| u.username == "alice").unwrap();
    assert_eq!(alice.realname, "User alice", "a member's own field change belongs to its own sync");

    // The checkpoint stayed: the next incremental run applies what was left pending.
    run(dir, &["sync", "duoTest", "--incremental"], 0);
    let state = env.emulator.handle().state();
    assert!(user_in(&state, "newbie", "C"));
    assert_eq!(state.users.iter().find(|u| u.username == "alice").unwrap().realname, "Alice Renamed");
    let (out, _) = run(dir, &["explain", "alice", "--json"], 0);
    let e = json_of(&out);
    assert_eq!(e["groups"][0]["paths"], json!([["app:duo:A", "org:B"]]), "{e:#}");
    assert_eq!(e["last_run"]["kind"], "incremental", "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_subject_or_group_is_a_clear_error() {
    let env = setup("").await;
    let dir = env.dir.path();
    nested_registry(dir);
    let (_, err) = run(dir, &["sync", "duoTest", "--group", "app:duo:nope"], 1);
    assert!(err.contains("group 'app:duo:nope' not found"), "{err}");
    let (_, err) = run(dir, &["sync", "duoTest", "--subject", "nobody"], 1);
    assert!(err.contains("no subject with id or login 'nobody'"), "{err}");
    let (_, err) = run(dir, &["explain", "nobody"], 1);
    assert!(err.contains("no subject with id or login 'nobody'"), "{err}");
    let (_, err) = run(dir, &["explain", "alice", "--group", "org:nope"], 1);
    assert!(err.contains("group 'org:nope' not found"), "{err}");
    let (_, err) = run(dir, &["sync", "duoTest", "--group", "org:B"], 1);
    assert!(err.contains("group 'org:B' is not selected by provisioner duoTest"), "{err}");
    assert!(env.emulator.handle().calls().iter().all(|c| c.method == "GET"), "an error wrote to Duo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_group_on_a_registry_of_20000_subjects_makes_only_the_calls_that_group_needs() {
    let env = setup("").await;
    let dir = env.dir.path();
    // A small selected group, synced; then 20 000 subjects in a selected group not yet in Duo.
    let registry = json!({
        "subjects": [{"id": "s1", "login_id": "s1"}, {"id": "s2", "login_id": "s2"}],
        "groups": [{"name": "app:duo:small"}],
        "memberships": [{"group": "app:duo:small", "subject": "s1"}],
        "markers": [{"provisioner": "duoTest", "folder": "app:duo", "scope": "sub"}],
    });
    std::fs::write(dir.join("small.json"), registry.to_string()).unwrap();
    run(dir, &["import", "small.json"], 0);
    run(dir, &["sync", "duoTest"], 0);
    let subjects: Vec<Value> = (0..20_000).map(|i| json!({"id": format!("u{i:05}"), "login_id": format!("u{i:05}")})).collect();
    let memberships: Vec<Value> = (0..20_000).map(|i| json!({"group": "app:duo:big", "subject": format!("u{i:05}")})).collect();
    std::fs::write(dir.join("big.json"), json!({"subjects": subjects, "groups": [{"name": "app:duo:big"}], "memberships": memberships}).to_string()).unwrap();
    run(dir, &["import", "big.json"], 0);
    run(dir, &["member", "add", "app:duo:small", "s2"], 0);

    let seq = env.emulator.handle().calls().last().map(|c| c.seq).unwrap_or(0);
    run(dir, &["sync", "duoTest", "--group", "app:duo:small"], 0);
    let calls: Vec<String> = env.emulator.handle().calls_since(seq).into_iter().map(|c| format!("{} {} {}", c.method, c.path, c.params.join(","))).collect();
    // The group by id, its members, its members' users by id, the new member by username, the
    // create and the membership: never a listing of every user or every group.
    assert!(calls.len() <= 7, "{} calls for one group: {calls:#?}", calls.len());
    assert!(!calls.iter().any(|c| (c.starts_with("GET /admin/v1/groups ") || c.starts_with("GET /admin/v2/groups ")) && !c.contains("_list")), "listed every group: {calls:#?}");
    assert!(!calls.iter().any(|c| c.starts_with("GET /admin/v1/users ") && !c.contains("_list")), "listed every user: {calls:#?}");
    let state = env.emulator.handle().state();
    assert!(user_in(&state, "s2", "small"));
    assert!(!state.groups.iter().any(|g| g.name == "big") && state.users.len() == 2, "touched objects outside the group");
}
