//! What Duo's official clients' conformance suites share: two emulators (one plain, one with a
//! tight limit on reading one object), the script's environment (host, ports, the three test
//! integrations, the signature version), and the server-side checks after the script ran — the
//! signature variant the server saw, every endpoint family answered 200, the error statuses
//! really answered, and 429s from the limited emulator. `conformance` (Python) and
//! `node_conformance` (Node) each only say how to start their client.

use std::process::Command;

use duoprov_emulator::RateLimits;

use crate::support::{self, IKEY, NG_IKEY, NG_SKEY, RO_IKEY, RO_SKEY, SKEY};

/// Every endpoint family both clients' scripts must have had answered with 200.
const ENDPOINTS: [&str; 24] = [
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
];

/// One run of an official client's script.
pub struct ClientRun<'a> {
    /// The client and variant, for failure messages (e.g. "Node v5").
    pub label: &'a str,
    /// The script's command, without the emulator's environment (added here).
    pub command: Command,
    /// The variant the server must have seen on every request (e.g. "v2-sha512").
    pub expected_variant: &'a str,
    /// The signature version handed to the script as `DUO_SIG_VERSION`.
    pub sig_version: u8,
    /// The error statuses the script must have provoked.
    pub error_statuses: &'a [u16],
}

/// Runs the script against fresh emulators and checks, on the server side, what it did.
pub async fn run(client: ClientRun<'_>) {
    let ClientRun { label, mut command, expected_variant, sig_version, error_statuses } = client;
    let main = support::spawn(|_| {}).await;
    // Tight limits on reading one object: 2 per second, bursts of 2.
    let limited = support::spawn(|s| {
        s.rate_limits = RateLimits { enabled: true, read_one_per_min: 120, burst_fraction: Some(1.0 / 60.0), ..RateLimits::default() };
    })
    .await;
    command
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
    let program = command.get_program().to_string_lossy().into_owned();
    let out = match tokio::task::spawn_blocking(move || command.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => panic!("{label}: cannot run {program}: {e}"),
        Err(e) => panic!("join: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{label} conformance failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" checks, 0 failed"), "{label}: {stdout}");

    // The server, not the client, says which signature scheme was used.
    let counts = main.handle().counts();
    let variants: Vec<&str> = counts.by_variant.keys().map(String::as_str).collect();
    assert_eq!(variants, vec![expected_variant], "{label}: {counts:?}");
    // Every endpoint family was exercised, and errors were really answered.
    for endpoint in ENDPOINTS {
        assert!(counts.get(endpoint, 200) > 0, "{label}: {endpoint} never answered 200: {counts:?}");
    }
    for status in error_statuses {
        assert!(counts.by_status.get(status).copied().unwrap_or(0) > 0, "{label}: no {status}: {counts:?}");
    }
    let limited_counts = limited.handle().counts();
    assert!(limited_counts.get("users.get", 429) > 0, "{label}: {limited_counts:?}");
    let _ = main.shutdown().await;
    let _ = limited.shutdown().await;
}

/// The path an environment variable names, or `None` (the test is reported skipped) when it is
/// unset — unless `DUOPROV_REQUIRE_EXTERNAL=1`, when its absence fails the test.
pub fn required_path(var: &str, what: &str) -> Option<std::path::PathBuf> {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => Some(p.into()),
        _ => {
            if std::env::var("DUOPROV_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
                panic!("{var} is not set but DUOPROV_REQUIRE_EXTERNAL=1");
            }
            support::skipped(&format!("{what}: {var} is not set"));
            None
        }
    }
}
