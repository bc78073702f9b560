//! Duo's official Python client (`duo_client.Admin`, from `$DUOPROV_PYTHON`'s environment) runs
//! `tests/python/conformance.py` against emulators started here, once per signature variant:
//! v5, v4, v2 with HMAC-SHA512 (the client's v2 default) and v2 with HMAC-SHA1. Without
//! `DUOPROV_PYTHON` the tests are reported skipped, unless `DUOPROV_REQUIRE_EXTERNAL=1`. The
//! emulators and the server-side checks are `official_client`'s.

use std::path::PathBuf;
use std::process::Command;

use crate::official_client::{self, ClientRun};

async fn run(sig_version: u8, digest: &str, expected_variant: &str) {
    let Some(python) = official_client::required_path("DUOPROV_PYTHON", "the conformance suite needs Duo's Python client")
    else {
        return;
    };
    let mut command = Command::new(python);
    command
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/conformance.py"))
        .env("DUO_DIGEST", digest)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let label = format!("Python v{sig_version}/{digest}");
    official_client::run(ClientRun { label: &label, command, expected_variant, sig_version, error_statuses: &[400, 401, 403, 404] })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_sig_v5() {
    run(5, "sha512", "v5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_sig_v4() {
    run(4, "sha512", "v4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_sig_v2_sha512() {
    run(2, "sha512", "v2-sha512").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_sig_v2_sha1() {
    run(2, "sha1", "v2-sha1").await;
}
