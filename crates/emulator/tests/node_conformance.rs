//! Duo's official Node client (`@duosecurity/duo_api` 1.5.0, installed by `npm ci` in
//! `tests/node`) runs `tests/node/conformance.js` against emulators started here, once per
//! signature variant the client has: v5, and v2 with HMAC-SHA512. `DUOPROV_NODE_CLIENT_DIR` names
//! the folder whose `node_modules` holds the client (`DUOPROV_NODE`, the `node` binary, defaults
//! to `node`). Without it the tests are reported skipped, unless `DUOPROV_REQUIRE_EXTERNAL=1`.
//! The emulators and the server-side checks are `official_client`'s.

use std::path::PathBuf;
use std::process::Command;

use crate::official_client::{self, ClientRun};

/// The folder holding `node_modules/@duosecurity/duo_api`, or `None` (skip) when not configured.
fn client_dir() -> Option<PathBuf> {
    let dir = official_client::required_path("DUOPROV_NODE_CLIENT_DIR", "the conformance suite needs Duo's Node client")?;
    let client = dir.join("node_modules/@duosecurity/duo_api/package.json");
    assert!(
        client.is_file(),
        "DUOPROV_NODE_CLIENT_DIR={} holds no node_modules/@duosecurity/duo_api; run `npm ci --no-audit --no-fund` there",
        dir.display()
    );
    Some(dir)
}

async fn run(sig_version: u8, expected_variant: &str) {
    let Some(dir) = client_dir() else { return };
    let node = std::env::var_os("DUOPROV_NODE").filter(|n| !n.is_empty()).unwrap_or_else(|| "node".into());
    let mut command = Command::new(node);
    command.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/conformance.js")).env("DUOPROV_NODE_CLIENT_DIR", &dir);
    let label = format!("Node v{sig_version}");
    official_client::run(ClientRun { label: &label, command, expected_variant, sig_version, error_statuses: &[400, 401, 403, 404, 500] })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_node_client_sig_v5() {
    run(5, "v5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_node_client_sig_v2_sha512() {
    run(2, "v2-sha512").await;
}
