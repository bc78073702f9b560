//! End-to-end tests of the `duoprov` binary: the README walkthrough, imports, configuration
//! errors and exit codes, run as a user would run them, in a temporary folder.

mod config;
mod duo_users;
mod faults;
mod daemon;
mod daemon_resilience;
mod incremental;
mod registry;
mod safety;
mod secrets;
mod sync;

use std::path::Path;

use assert_cmd::Command;

/// `duoprov` run in `dir`, with no configuration or registry taken from the environment.
pub fn duoprov(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("duoprov").expect("the duoprov binary");
    cmd.current_dir(dir).env_remove("DUOPROV_CONFIG").env_remove("DUOPROV_REGISTRY_URL").env_remove("RUST_LOG");
    cmd
}

/// Runs and returns standard output, failing the test with both streams when the exit code differs.
pub fn run(dir: &Path, args: &[&str], code: i32) -> (String, String) {
    let out = duoprov(dir).args(args).output().expect("run duoprov");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "duoprov {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    (stdout, stderr)
}
