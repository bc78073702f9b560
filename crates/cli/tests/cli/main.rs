//! End-to-end tests of the `duoprov` binary: the README walkthrough, imports, configuration
//! errors and exit codes, run as a user would run them, in a temporary folder.

mod bulk_readings;
mod config;
mod convergence;
mod duo_users;
mod faults;
mod daemon;
mod daemon_resilience;
mod incremental;
mod permissions;
mod probe;
mod ownership;
mod registry;
mod safety;
mod secrets;
mod sync;
mod traffic;

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

/// splitmix64: the tests' own seeded choices (kill points, registry changes), reproducible
/// without a dependency.
pub struct Seeded(pub u64);

impl Seeded {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.between(0, items.len() as u64 - 1) as usize]
    }
}
