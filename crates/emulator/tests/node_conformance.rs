//! Duo's official Node client (`@duosecurity/duo_api` 1.5.0, installed by `npm ci` in
//! `tests/node`) runs `tests/node/conformance.js` against emulators started here, once per
//! signature variant the client has: v5, and v2 with HMAC-SHA512. `DUOPROV_NODE_CLIENT_DIR` names
//! the folder whose `node_modules` holds the client (`DUOPROV_NODE`, the `node` binary, defaults
//! to `node`). Without it the tests are skipped with a notice, unless `DUOPROV_REQUIRE_EXTERNAL=1`.

use std::path::PathBuf;
use std::process::Command;

use duoprov_emulator::RateLimits;

use crate::support::{self, IKEY, NG_IKEY, NG_SKEY, RO_IKEY, RO_SKEY, SKEY};

/// The folder holding `node_modules/@duosecurity/duo_api`, or `None` (skip) when not configured.
fn client_dir() -> Option<PathBuf> {
    match std::env::var_os("DUOPROV_NODE_CLIENT_DIR") {
        Some(d) if !d.is_empty() => {
            let dir = PathBuf::from(d);
            let client = dir.join("node_modules/@duosecurity/duo_api/package.json");
            assert!(
                client.is_file(),
                "DUOPROV_NODE_CLIENT_DIR={} holds no node_modules/@duosecurity/duo_api; run `npm ci --no-audit --no-fund` there",
                dir.display()
            );
            Some(dir)
        }
        _ => {
            if std::env::var("DUOPROV_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
                panic!("DUOPROV_NODE_CLIENT_DIR is not set but DUOPROV_REQUIRE_EXTERNAL=1");
            }
            eprintln!("notice: DUOPROV_NODE_CLIENT_DIR not set; skipping the official Node client conformance suite");
            None
        }
    }
}

async fn run(sig_version: u8, expected_variant: &str) {
    let Some(dir) = client_dir() else { return };
    let main = support::spawn(|_| {}).await;
    // Tight limits on reading one object: 2 per second, bursts of 2.
    let limited = support::spawn(|s| {
        s.rate_limits = RateLimits { enabled: true, read_one_per_min: 120, burst_fraction: Some(1.0 / 60.0), ..RateLimits::default() };
    })
    .await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/conformance.js");
    let node = std::env::var_os("DUOPROV_NODE").filter(|n| !n.is_empty()).unwrap_or_else(|| "node".into());
    let mut cmd = Command::new(node);
    cmd.arg(script)
        .env("DUOPROV_NODE_CLIENT_DIR", &dir)
        .env("DUO_HOST", "127.0.0.1")
        .env("DUO_PORT", main.port().to_string())
        .env("DUO_RL_PORT", limited.port().to_string())
        .env("DUO_IKEY", IKEY)
        .env("DUO_SKEY", SKEY)
        .env("DUO_RO_IKEY", RO_IKEY)
        .env("DUO_RO_SKEY", RO_SKEY)
        .env("DUO_NG_IKEY", NG_IKEY)
        .env("DUO_NG_SKEY", NG_SKEY)
        .env("DUO_SIG_VERSION", sig_version.to_string());
    let out = match tokio::task::spawn_blocking(move || cmd.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => panic!("cannot run node: {e}"),
        Err(e) => panic!("join: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "Node conformance v{sig_version} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" checks, 0 failed"), "{stdout}");

    // The server, not the client, says which signature scheme was used.
    let counts = main.handle().counts();
    let variants: Vec<&str> = counts.by_variant.keys().map(String::as_str).collect();
    assert_eq!(variants, vec![expected_variant], "{counts:?}");
    // Every endpoint family was exercised, and errors were really answered.
    for endpoint in [
        "users.list",
        "users.get",
        "users.create",
        "users.modify",
        "users.delete",
        "users.groups.list",
        "users.groups.add",
        "users.groups.remove",
        "users.bulk_create",
        "users.bulk_send_to_trash",
        "users.bulk_restore",
        "groups.list",
        "groups.get_v1",
        "groups.get",
        "groups.users",
        "groups.create",
        "groups.modify",
        "groups.delete",
        "bulk",
        "admins.list",
        "admins.get",
        "admins.create",
        "admins.modify",
        "admins.delete",
    ] {
        assert!(counts.get(endpoint, 200) > 0, "{endpoint} never answered 200: {counts:?}");
    }
    for status in [400u16, 401, 403, 404, 500] {
        assert!(counts.by_status.get(&status).copied().unwrap_or(0) > 0, "no {status}: {counts:?}");
    }
    let limited_counts = limited.handle().counts();
    assert!(limited_counts.get("users.get", 429) > 0, "{limited_counts:?}");
    let _ = main.shutdown().await;
    let _ = limited.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_node_client_sig_v5() {
    run(5, "v5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_node_client_sig_v2_sha512() {
    run(2, "v2-sha512").await;
}
