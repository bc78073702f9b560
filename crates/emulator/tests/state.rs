//! The state file (loaded at start, saved atomically on change and at shutdown) and the
//! introspection routes that let tests see and seed the tenant.

use duoprov_emulator::{Emulator, Integration, TenantDump};
use serde_json::json;

use crate::support::{self, Client, IKEY, SKEY};

async fn spawn_with_file(path: &std::path::Path) -> duoprov_emulator::RunningEmulator {
    Emulator::builder()
        .settings(support::test_settings())
        .integration(Integration::new(IKEY, SKEY))
        .state_file(path)
        .spawn_on("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn state_survives_a_restart_through_the_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("tenant.json");
    let emu = spawn_with_file(&path).await;
    let c = Client::new(&emu);
    let u = c.user("persisted").await;
    let g = c.group("kept").await;
    c.ok(
        "POST",
        &format!("/admin/v1/users/{u}/groups"),
        &[("group_id", &g)],
    )
    .await;
    c.ok("POST", &format!("/admin/v1/users/{u}"), &[("alias2", "p2")])
        .await;
    emu.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let dump: TenantDump = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dump.users.len(), 1);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary files left: {names:?}");

    let again = spawn_with_file(&path).await;
    let c = Client::new(&again);
    let got = c.ok("GET", "/admin/v1/users", &[("username", "p2")]).await;
    assert_eq!(got[0]["user_id"], u.as_str());
    assert_eq!(got[0]["groups"][0]["group_id"], g.as_str());
    let members = c
        .ok("GET", &format!("/admin/v2/groups/{g}/users"), &[])
        .await;
    assert_eq!(members[0]["user_id"], u.as_str());
    again.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn save_route_writes_the_file_now() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("s.json");
    let emu = spawn_with_file(&path).await;
    Client::new(&emu).user("now").await;
    let (status, _) = support::introspect(&emu, "POST", "/_emulator/save", "").await;
    assert_eq!(status, 200);
    let dump: TenantDump = serde_json::from_slice(&std::fs::read(&path).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dump.users[0].username, "now");
    let plain = support::spawn(|_| {}).await;
    let (status, body) = support::introspect(&plain, "POST", "/_emulator/save", "").await;
    assert_eq!((status, body["code"].clone()), (404, json!(40401)));
}

#[tokio::test]
async fn a_corrupt_or_inconsistent_state_file_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("bad.json");
    std::fs::write(&path, b"{\"users\": 5}").unwrap_or_else(|e| panic!("{e}"));
    let b = Emulator::builder()
        .integration(Integration::new(IKEY, SKEY))
        .state_file(&path)
        .build();
    assert!(matches!(
        b,
        Err(duoprov_emulator::Error::StateFormat { .. })
    ));
    let dangling = json!({"version": 1, "users": [{"user_id": "DUAAAAAAAAAAAAAAAAAA", "username": "a", "status": "active",
        "created": 1, "groups": ["DGAAAAAAAAAAAAAAAAAA"]}]});
    std::fs::write(&path, dangling.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let b = Emulator::builder()
        .integration(Integration::new(IKEY, SKEY))
        .state_file(&path)
        .build();
    match b {
        Err(duoprov_emulator::Error::StateFormat { message, .. }) => {
            assert!(message.contains("unknown group"), "{message}")
        }
        other => panic!("expected StateFormat, got {other:?}"),
    }
}

#[tokio::test]
async fn the_call_log_names_what_each_call_created() {
    let emu = support::spawn(|_| {}).await;
    let c = Client::new(&emu);
    c.group("staff").await;
    let uid = c.user("ann").await;
    let users = r#"[{"username":"bob"},{"username":"cid"}]"#;
    c.ok("POST", "/admin/v1/users/bulk_create", &[("users", users)])
        .await;
    // Refused (duplicate username): nothing created, nothing named.
    c.call("POST", "/admin/v1/users/bulk_create", &[("users", users)])
        .await;
    let ops = json!([
        {"method": "POST", "path": "/admin/v1/users", "body": {"username": "dee"}},
        {"method": "POST", "path": "/admin/v1/users", "body": {"username": "ann"}},
        {"method": "POST", "path": format!("/admin/v1/users/{uid}"), "body": {"realname": "Ann"}}
    ])
    .to_string();
    c.ok("POST", "/admin/v1/bulk", &[("operations", &ops)])
        .await;
    emu.handle()
        .set_faults("500 first=1 on=groups.create")
        .unwrap_or_else(|e| panic!("{e}"));
    c.call("POST", "/admin/v1/groups", &[("name", "faulted")])
        .await;
    let created: Vec<(String, Vec<String>)> = emu
        .handle()
        .calls()
        .into_iter()
        .map(|r| (r.endpoint.unwrap_or("?").to_owned(), r.created))
        .collect();
    let want = |e: &str, names: &[&str]| {
        (
            e.to_owned(),
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        created,
        vec![
            want("groups.create", &["staff"]),
            want("users.create", &["ann"]),
            want("users.bulk_create", &["bob", "cid"]),
            want("users.bulk_create", &[]),
            want("bulk", &["dee"]),
            want("groups.create", &[]),
        ]
    );
    let (_, log) = support::introspect(&emu, "GET", "/_emulator/log?since=4", "").await;
    assert_eq!(log[0]["created"], json!(["dee"]));
}

#[tokio::test]
async fn introspection_shows_counts_log_state_and_config() {
    let emu = support::spawn(|_| {}).await;
    let c = Client::new(&emu);
    c.user("seen").await;
    c.call("GET", "/admin/v1/users/DUAAAAAAAAAAAAAAAAAA", &[])
        .await;
    let (status, calls) = support::introspect(&emu, "GET", "/_emulator/calls", "").await;
    assert_eq!(status, 200);
    assert_eq!(calls["by_endpoint"]["users.create"]["200"], 1);
    assert_eq!(calls["by_endpoint"]["users.get"]["404"], 1);
    assert_eq!(calls["by_variant"]["v5"], 2);
    let (_, log) = support::introspect(&emu, "GET", "/_emulator/log?since=1", "").await;
    assert_eq!(log.as_array().map(Vec::len), Some(1));
    assert_eq!(
        (log[0]["method"].clone(), log[0]["status"].clone()),
        (json!("GET"), json!(404))
    );
    let (_, state) = support::introspect(&emu, "GET", "/_emulator/state", "").await;
    assert_eq!(state["users"][0]["username"], "seen");
    let (_, cfg) = support::introspect(&emu, "GET", "/_emulator/config", "").await;
    assert!(
        cfg["ikeys"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(IKEY)))
    );
    assert!(
        !cfg.to_string().contains(SKEY),
        "secret keys never leave the emulator"
    );
    assert_eq!(
        support::introspect(&emu, "DELETE", "/_emulator/log", "")
            .await
            .0,
        200
    );
    assert_eq!(emu.handle().counts().total, 0);
    assert_eq!(
        support::introspect(&emu, "GET", "/_emulator/health", "")
            .await
            .1,
        json!({"status": "ok"})
    );
}

#[tokio::test]
async fn state_can_be_seeded_and_cleared_through_introspection() {
    let emu = support::spawn(|_| {}).await;
    let seed = json!({"version": 1,
        "groups": [{"group_id": "DGSEEDSEEDSEEDSEED01", "name": "seeded", "status": "active"}],
        "users": [{"user_id": "DUSEEDSEEDSEEDSEED01", "username": "s", "aliases": {"alias1": "s1"}, "status": "bypass",
                   "created": 1700000000, "groups": ["DGSEEDSEEDSEEDSEED01"]}]});
    let (status, body) =
        support::introspect(&emu, "PUT", "/_emulator/state", &seed.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let c = Client::new(&emu);
    let u = c.ok("GET", "/admin/v1/users", &[("username", "s1")]).await;
    assert_eq!(
        (u[0]["user_id"].clone(), u[0]["status"].clone()),
        (json!("DUSEEDSEEDSEEDSEED01"), json!("bypass"))
    );
    let dup = json!({"users": [{"user_id": "DUAAAAAAAAAAAAAAAAAA", "username": "x", "status": "active", "created": 1},
                               {"user_id": "DUBBBBBBBBBBBBBBBBBB", "username": "x", "status": "active", "created": 1}]});
    let (status, _) = support::introspect(&emu, "PUT", "/_emulator/state", &dup.to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(
        emu.handle().state().users.len(),
        1,
        "a refused seed changes nothing"
    );
    assert_eq!(
        support::introspect(&emu, "DELETE", "/_emulator/state", "")
            .await
            .0,
        200
    );
    assert!(emu.handle().state().users.is_empty());
}

#[tokio::test]
async fn introspection_can_be_turned_off() {
    let emu = support::spawn(|s| s.introspection = false).await;
    let (status, body) = support::introspect(&emu, "GET", "/_emulator/calls", "").await;
    assert_eq!((status, body["code"].clone()), (404, json!(40401)));
}

#[tokio::test]
async fn the_example_tenant_loads_and_serves() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tenant.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let dump: TenantDump = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let emu = Emulator::builder()
        .settings(support::test_settings())
        .integration(Integration::new(IKEY, SKEY))
        .initial_state(dump)
        .spawn_on("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let c = Client::new(&emu);
    let alice = c
        .ok(
            "GET",
            "/admin/v1/users",
            &[("username", "alice@example.edu")],
        )
        .await;
    assert_eq!(alice[0]["username"], "alice");
    assert_eq!(alice[0]["groups"].as_array().map(Vec::len), Some(2));
    let staff = c
        .call("GET", "/admin/v2/groups/DGSTAFF0000000000001/users", &[])
        .await;
    assert_eq!(staff.json["metadata"]["total_objects"], 2);
    assert_eq!(
        c.ok("GET", "/admin/v1/admins", &[]).await[0]["role"],
        "Owner"
    );
}

/// Set in the child process of `the_state_file_is_private_whatever_the_umask`: where that child
/// saves its state.
const PRIVATE_STATE_CHILD: &str = "DUOPROV_EMULATOR_TEST_PRIVATE_STATE";

/// The state file holds users' e-mail addresses: an emulator run under umask 000 (in a child
/// process: the umask is process-wide) still saves it readable by its owner only, replacing a
/// file that was readable by everyone.
#[cfg(unix)]
#[test]
fn the_state_file_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(path) = std::env::var(PRIVATE_STATE_CHILD) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(async {
            let emu = spawn_with_file(std::path::Path::new(&path)).await;
            let c = Client::new(&emu);
            let u = c.user("private").await;
            c.ok(
                "POST",
                &format!("/admin/v1/users/{u}"),
                &[("email", "private@example.edu")],
            )
            .await;
            emu.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
        });
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("tenant.json");
    std::fs::write(&path, "{}\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
        .unwrap_or_else(|e| panic!("{e}"));
    let me = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(&me)
        .args([
            "--exact",
            "state::the_state_file_is_private_whatever_the_umask",
            "--test-threads",
            "1",
        ])
        .env(PRIVATE_STATE_CHILD, &path)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        child.status.success(),
        "the child emulator failed:\n{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("private@example.edu"), "the state was saved: {text}");
    let mode = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "state file mode {mode:o}");
}
