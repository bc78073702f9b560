//! End-to-end tests of the `duoprov` binary: the README walkthrough, imports, configuration
//! errors and exit codes, run as a user would run them, in a temporary folder.

mod admin_roles;
mod audit;
mod bulk_readings;
mod config;
mod console;
mod convergence;
mod duo_users;
mod faults;
mod first_hour;
mod daemon;
mod demo;
mod disable;
mod daemon_resilience;
mod explain;
mod incremental;
mod ldap_source;
mod permissions;
mod probe;
mod ownership;
mod readme;
mod registry;
mod safety;
mod secrets;
mod selection_rules;
mod sources;
mod sql_source;
mod support_bundle;
mod sync;
mod sync_back;
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

/// Writes `secret` to `dir/duo.skey`, readable only by its owner (as duoprov requires of a
/// secret key file), and a configuration for provisioner `duoTest` on `[duo.test]` at `url`
/// with integration key `ikey`: `duo_extra` lines go into `[duo.test]`, `provisioner_extra`
/// lines into `[provisioner.duoTest]`. The SQLite registry `registry.db` is created.
pub fn write_emulator_setup(dir: &Path, url: &str, ikey: &str, secret: &str, duo_extra: &str, provisioner_extra: &str) {
    let skey = dir.join("duo.skey");
    std::fs::write(&skey, secret).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&skey, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = format!(
        "[registry]\nurl = \"sqlite://registry.db\"\n\n[duo.test]\napi_host = \"127.0.0.1\"\nintegration_key = \"{ikey}\"\nsecret_key_file = \"duo.skey\"\nurl = \"{url}\"\n{duo_extra}\n\n[provisioner.duoTest]\nduo = \"test\"\n{provisioner_extra}\n"
    );
    write_config(dir, config).unwrap();
}

/// Writes `duoprov.toml` into `dir` and, when its registry is a SQLite file, creates that
/// registry as `duoprov init` would (commands refuse a SQLite registry that does not exist).
pub fn write_config(dir: &Path, config: impl AsRef<[u8]>) -> std::io::Result<()> {
    let config = config.as_ref();
    std::fs::write(dir.join("duoprov.toml"), config)?;
    let text = String::from_utf8_lossy(config);
    let file = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("url = \"sqlite://"))
        .map(|rest| rest.trim_end_matches('"').to_owned())
        .next();
    if let Some(file) = file.filter(|f| !f.contains(":memory:")) {
        let path = dir.join(file);
        if !path.exists() {
            let url = format!("sqlite://{}", path.display());
            // A thread of its own: the caller may already be inside a runtime.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
                rt.block_on(duoprov_registry::open(&url, &Default::default())).map(drop)
            })
            .join()
            .expect("creating the registry")
            .map_err(std::io::Error::other)?;
        }
    }
    Ok(())
}

/// Reports that the running test (or a part of it) did not run, as a `SKIPPED: <test> — <reason>`
/// line on standard error. Written to the stream itself, not through `eprintln!`, so the test
/// harness does not capture it: it shows in `cargo test` output although the test passes.
pub fn skipped(reason: &str) {
    use std::io::Write as _;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test} — {reason}");
}

/// The PostgreSQL test database (`DUOPROV_TEST_POSTGRES_URL`), or `None` after reporting the
/// skip; with `DUOPROV_REQUIRE_EXTERNAL=1` (CI) a missing URL fails the test instead.
pub fn postgres_url() -> Option<String> {
    match std::env::var("DUOPROV_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert_ne!(std::env::var("DUOPROV_REQUIRE_EXTERNAL").as_deref(), Ok("1"), "DUOPROV_TEST_POSTGRES_URL is required");
            skipped("needs PostgreSQL: DUOPROV_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A skipped test says so in `cargo test` output: run alone without PostgreSQL, the PostgreSQL
/// walkthrough passes and its `SKIPPED:` line reaches standard error past the harness's capture.
#[test]
fn a_test_skipped_for_want_of_postgresql_reports_the_skip_in_the_test_output() {
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args(["registry::readme_walkthrough_on_postgres", "--exact", "--test-threads", "1"])
        .env_remove("DUOPROV_TEST_POSTGRES_URL")
        .env_remove("DUOPROV_REQUIRE_EXTERNAL")
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.contains("1 passed"), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("SKIPPED: registry::readme_walkthrough_on_postgres — needs PostgreSQL: DUOPROV_TEST_POSTGRES_URL is not set"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
