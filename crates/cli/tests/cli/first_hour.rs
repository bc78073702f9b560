//! What a newcomer meets in the first hour, through the binary: `init` run twice, a Duo that is
//! not there, and a port that is taken. Each message names the thing and the fix, once.

use std::time::{Duration, Instant};

use crate::run;

#[test]
fn init_on_an_existing_configuration_keeps_it_recreates_a_missing_registry_and_says_what_force_does() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &["init", "--with-emulator"], 0);
    let before = std::fs::read_to_string(dir.path().join("duoprov.toml")).unwrap();
    let skey = std::fs::read_to_string(dir.path().join("duo-emulator.skey")).unwrap();
    assert_eq!(skey.len(), 40, "a Duo-length secret key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("duo-emulator.skey")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (_, err) = run(dir.path(), &["init"], 1);
    assert!(err.contains("duoprov.toml exists and was left as it is"), "{err}");
    assert!(err.contains("registry") && err.contains("is ready") && err.contains("duoprov init --force"), "{err}");
    assert!(!err.contains(skey.trim()), "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join("duoprov.toml")).unwrap(), before);
    // A registry that went missing is created again by init (other commands refuse to).
    std::fs::remove_file(dir.path().join("duoprov.db")).unwrap();
    run(dir.path(), &["subject", "list"], 1);
    assert!(!dir.path().join("duoprov.db").exists(), "only init creates a registry");
    let (_, err) = run(dir.path(), &["init"], 1);
    assert!(err.contains("is ready"), "{err}");
    assert!(dir.path().join("duoprov.db").exists(), "init created the missing registry");
    assert_eq!(std::fs::read_to_string(dir.path().join("duoprov.toml")).unwrap(), before);
    // A second secret key from --force is a new one.
    run(dir.path(), &["init", "--with-emulator", "--force"], 0);
    assert_ne!(std::fs::read_to_string(dir.path().join("duo-emulator.skey")).unwrap(), skey);
}

/// A port that is taken while the returned listener lives.
fn taken_port() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

#[test]
fn the_emulator_on_a_taken_port_says_so_once_naming_the_address_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (_held, addr) = taken_port();
    let (_, err) = run(dir.path(), &["emulator", "--ikey", "DIDUOPROVEMULATOR000", "--skey", "not-a-real-secret", "--listen", &addr], 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}: the address is already in use")) && err.contains("--listen 127.0.0.1:PORT"), "{err}");
    assert_eq!(err.matches("in use").count(), 1, "{err}");
    assert!(!err.contains("os error") && !err.contains("not-a-real-secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_on_a_taken_port_says_so_once_naming_the_address_and_the_fix() {
    let env = crate::sync::setup("").await;
    let (_held, addr) = taken_port();
    let (_, err) = run(env.dir.path(), &["run", "--listen", &addr], 1);
    assert!(err.contains(&format!("cannot listen on {addr} for the status page: the address is already in use")) && err.contains("--listen"), "{err}");
    assert_eq!(err.matches("in use").count(), 1, "{err}");
    assert!(!err.contains("os error"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_against_a_duo_that_is_not_there_fails_at_once_naming_the_url_and_its_setting() {
    let env = crate::sync::setup("").await;
    let dir = env.dir.path();
    crate::sync::seed_registry(dir);
    let url = env.emulator.base_url();
    env.emulator.shutdown().await.unwrap();
    let started = Instant::now();
    let (_, err) = run(dir, &["sync", "duoTest"], 1);
    assert!(started.elapsed() < Duration::from_secs(5), "no silent retries: {:?}", started.elapsed());
    assert!(err.contains(&format!("cannot connect to Duo at {url} (duo.test.url): connection refused")), "{err}");
    assert!(!err.contains("Some(") && !err.contains(crate::sync::SKEY), "{err}");
}

/// Whether `text` holds a uuid (8-4-4-4-12 hexadecimal digits).
fn holds_uuid(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(35)).any(|i| {
        b[i..i + 36].iter().enumerate().all(|(j, c)| if [8, 13, 18, 23].contains(&j) { *c == b'-' } else { c.is_ascii_hexdigit() })
    })
}

/// Whether `text` holds a run of 13 or more digits (epoch milliseconds).
fn holds_epoch_ms(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_digit()).any(|run| run.len() >= 13)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_readable_times_and_objects_in_error_and_due_for_retry_by_name() {
    let env = crate::sync::setup("").await;
    let dir = env.dir.path();
    crate::sync::seed_registry(dir);
    env.emulator.handle().set_faults("500 on=groups.create").unwrap();
    run(dir, &["sync", "duoTest"], 2);
    let (out, _) = run(dir, &["status", "duoTest"], 0);
    assert!(out.contains("group app:duo:testGroup"), "objects in error by registry name:\n{out}");
    assert!(out.contains("subject local:kwilso in group app:duo:testGroup"), "memberships by names:\n{out}");
    assert!(out.contains("retry list (") && out.contains("NEXT ATTEMPT"), "{out}");
    assert!(out.contains(" UTC, ") && (out.contains(" ago") || out.contains(", now")) && out.contains(", in "), "readable times, past and due:\n{out}");
    assert!(!holds_uuid(&out), "no uuid:\n{out}");
    assert!(!holds_epoch_ms(&out), "no epoch milliseconds:\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_what_it_would_do_with_counts_and_the_plan_and_changes_nothing() {
    let env = crate::sync::setup("").await;
    let dir = env.dir.path();
    crate::sync::seed_registry(dir);
    let (out, _) = run(dir, &["sync", "duoTest", "--dry-run"], 0);
    assert!(
        out.contains("(dry run, nothing applied): would make groups 1 created, 0 updated, 0 deleted; users 2 created, 0 updated, 0 deleted; memberships 2 added, 0 removed"),
        "{out}"
    );
    assert!(out.contains("Plan for duoTest: 5 operations.") && out.contains("testGroup") && out.contains("mchyzer"), "the plan itself:\n{out}");
    let (out, _) = run(dir, &["sync", "duoTest", "--dry-run", "--json"], 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["planned"]["users"]["created"], 2, "{report:#}");
    assert_eq!(report["plan"]["ops"].as_array().map(Vec::len), Some(5), "{report:#}");
    let s = env.emulator.handle().state();
    assert!(s.groups.is_empty() && s.users.is_empty(), "a dry run writes nothing to Duo");
}

#[test]
fn doctor_json_answers_in_json_without_a_configuration_and_without_a_duo() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(dir.path(), &["doctor", "duoTest", "--json"], 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"));
    assert_eq!(report["ok"], false);
    assert_eq!(report["checks"][0]["check"], "configuration");
    assert!(report["checks"][0]["detail"].as_str().unwrap_or_default().contains("duoprov init"), "{report:#}");

    // A configuration whose emulator is not running: every check in JSON, a SQLite registry has
    // no TLS check, and the write grant is not probed again after the read failed.
    run(dir.path(), &["init", "--with-emulator"], 0);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("duoprov.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace("127.0.0.1:8443", &format!("127.0.0.1:{port}"));
    std::fs::write(&config, text).unwrap();
    let (out, _) = run(dir.path(), &["doctor", "duoTest", "--json"], 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"));
    let checks = report["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().filter_map(|c| c["check"].as_str()).collect();
    assert_eq!(names, ["configuration", "registry", "Duo", "Duo write grant"], "{report:#}");
    assert!(checks[2]["detail"].as_str().unwrap_or_default().contains("connection refused"), "{report:#}");
    assert!(checks[3]["detail"].as_str().unwrap_or_default().starts_with("not checked"), "{report:#}");
}
