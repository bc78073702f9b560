//! The daemon end to end against the emulator: `duoprov run` provisions the seed registry, then
//! every step of the incremental scenario (memberships, subject renames, group renames and
//! descriptions, nested groups, markers) reaches Duo with no command but the registry change; the
//! status page answers (`/` with an index of its endpoints); the default log level shows one
//! line per run and the stop; -vv shows duoprov's debug lines without the libraries'; a second daemon on the same SQLite file refuses to start; SIGTERM stops
//! it with exit 0 and no run left running; after quiet a full plan is empty. Off loopback the
//! status page needs a metrics token for `/metrics` and `/readyz`'s details.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use duoprov_emulator::TenantDump;
use serde_json::Value;

use crate::incremental::steps;
use crate::run;
use crate::sync::{seed_registry, setup};

/// A daemon started in `dir`, with the status page address it printed.
pub struct Daemon {
    pub child: Child,
    pub status: String,
}

pub fn start_daemon(dir: &Path, extra: &[&str]) -> Daemon {
    start_daemon_on(dir, "127.0.0.1:0", extra)
}

/// A daemon started in `dir` whose status page listens on `listen`.
pub fn start_daemon_on(dir: &Path, listen: &str, extra: &[&str]) -> Daemon {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("duoprov"))
        .current_dir(dir)
        .env_remove("DUOPROV_CONFIG")
        .env_remove("DUOPROV_REGISTRY_URL")
        .env_remove("RUST_LOG")
        .args(["run", "--listen", listen])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let status = line.split("http://").nth(1).and_then(|r| r.split(',').next()).unwrap_or_else(|| panic!("no status address in {line:?}")).to_owned();
    Daemon { child, status }
}

impl Daemon {
    /// SIGTERM, then the exit code and standard error.
    pub fn stop(mut self) -> (Option<i32>, String) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (status.code(), err);
            }
            assert!(Instant::now() < deadline, "the daemon did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A plain HTTP GET: status code and body.
pub fn get(addr: &str, path: &str) -> (u16, String) {
    let (code, response) = get_with(addr, path, "");
    (code, response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// A plain HTTP GET with extra header lines (each ending in CRLF): status code and the whole
/// response (status line, headers and body).
pub fn get_with(addr: &str, path: &str, headers: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the status page");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

/// Waits until `f` holds for Duo's state.
pub fn wait_for(what: &str, state: impl Fn() -> TenantDump, f: impl Fn(&TenantDump) -> bool, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let s = state();
        if f(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not in Duo within {timeout:?}:\n{s:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_carries_every_registry_change_to_duo_and_stops_cleanly() {
    let env = setup("[provisioner.duoTest.schedule]\npoll_interval = \"300ms\"\n").await;
    let dir = env.dir.path();
    seed_registry(dir);
    let handle = env.emulator.handle().clone();
    let state = || handle.state();
    let daemon = start_daemon(dir, &[]);
    wait_for("the first full sync", state, |s| s.groups.iter().any(|g| g.name == "testGroup") && s.users.len() == 2, Duration::from_secs(20));

    // A second daemon on the same SQLite registry refuses to start.
    let out = crate::duoprov(dir).args(["run", "--listen", "127.0.0.1:0"]).timeout(Duration::from_secs(20)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("another duoprov daemon is already running"), "{err}");

    for step in steps() {
        for c in &step.commands {
            run(dir, c, 0);
        }
        wait_for(step.name, state, step.arrived, Duration::from_secs(20));
    }

    let (code, body) = get(&daemon.status, "/healthz");
    assert_eq!((code, body.trim()), (200, "ok"));
    let (code, body) = get(&daemon.status, "/readyz");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(code, 200, "{ready:#}");
    assert_eq!(ready["provisioners"]["duoTest"]["role"], "holder", "{ready:#}");
    let (code, metrics) = get(&daemon.status, "/metrics");
    assert_eq!(code, 200);
    for needle in [
        "duoprov_runs_total{provisioner=\"duoTest\",kind=\"full\",result=\"succeeded\"} 1",
        "duoprov_runs_total{provisioner=\"duoTest\",kind=\"incremental\",result=\"succeeded\"}",
        "duoprov_operations_total{provisioner=\"duoTest\",object=\"membership\",action=\"add\",result=\"ok\"}",
        "duoprov_duo_calls_total{method=\"POST\",endpoint=\"/admin/v1/bulk\",status=\"200\"}",
        "duoprov_duo_call_seconds_bucket{",
        "duoprov_change_log_lag_entries{provisioner=\"duoTest\"} 0",
        "duoprov_last_success_timestamp_seconds{provisioner=\"duoTest\",kind=\"incremental\"}",
        "duoprov_runner_holding{provisioner=\"duoTest\"} 1",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }

    // `GET /` lists the endpoints rather than answering an empty 404.
    let (code, index) = get(&daemon.status, "/");
    assert_eq!(code, 200, "{index}");
    assert!(["/healthz", "/readyz", "/metrics"].iter().all(|p| index.contains(p)), "{index}");

    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");
    // At the default level: one line per run with its kind, counts and duration, and the stop.
    let finished: Vec<&str> = stderr.lines().filter(|l| l.contains("Run finished:")).collect();
    assert!(finished.iter().any(|l| l.contains("duoTest full:") && l.contains("users 2 created")), "{stderr}");
    assert!(finished.iter().any(|l| l.contains("duoTest incremental:")), "{stderr}");
    assert!(finished.iter().all(|l| l.contains(" s")), "no duration: {finished:?}");
    assert!(stderr.lines().last().is_some_and(|l| l.contains("Stopped.")), "the last line says the daemon stopped:\n{stderr}");
    let (out, _) = run(dir, &["status", "duoTest", "--json"], 0);
    let status: Value = serde_json::from_str(&out).unwrap();
    let running: Vec<&Value> = status["runs"].as_array().unwrap().iter().filter(|r| r["status"] == "running").collect();
    assert!(running.is_empty(), "runs left running after SIGTERM: {running:#?}");
    // Quiet: a full sync finds nothing to do.
    let (out, _) = run(dir, &["plan", "duoTest", "--json"], 0);
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["plan"]["ops"], Value::Array(vec![]), "{plan:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_a_span_per_run_and_per_duo_call() {
    let env = setup("[provisioner.duoTest.schedule]\npoll_interval = \"300ms\"\n").await;
    let dir = env.dir.path();
    seed_registry(dir);
    let handle = env.emulator.handle().clone();
    let daemon = start_daemon(dir, &["--log-format", "json", "-vv"]);
    wait_for("the first full sync", || handle.state(), |s| s.users.len() == 2, Duration::from_secs(20));
    run(dir, &["member", "remove", "app:duo:testGroup", "kwilso"], 0);
    wait_for("an incremental sync", || handle.state(), |s| s.users.iter().any(|u| u.username == "kwilso" && u.groups.is_empty()), Duration::from_secs(20));
    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let in_span = |name: &str| lines.iter().filter(|l| l["spans"].as_array().is_some_and(|s| s.iter().any(|s| s["name"] == name))).count();
    assert!(in_span("sync_run") > 0, "no event in a sync_run span:\n{stderr}");
    assert!(in_span("duo_call") > 0, "no event in a duo_call span:\n{stderr}");
    // -vv: duoprov's own debug lines, none of the libraries' internals (those at -vvvv).
    assert!(lines.iter().any(|l| l["level"] == "DEBUG" && l["target"].as_str().is_some_and(|t| t.starts_with("duoprov"))), "no duoprov debug line at -vv:\n{stderr}");
    let internals: Vec<&Value> = lines
        .iter()
        .filter(|l| l["level"] == "DEBUG" || l["level"] == "TRACE")
        .filter(|l| l["target"].as_str().is_some_and(|t| !t.starts_with("duoprov")))
        .collect();
    assert!(internals.is_empty(), "library internals at -vv: {internals:#?}");
    let run_span = lines.iter().flat_map(|l| l["spans"].as_array().cloned().unwrap_or_default()).find(|s| s["name"] == "sync_run").unwrap();
    assert_eq!(run_span["provisioner"], "duoTest");
    assert!(run_span["kind"] == "full" || run_span["kind"] == "incremental", "{run_span}");
}

/// The sum of `duoprov_runs_total` over its labels, and whether a refused run was counted.
fn runs_counted(metrics: &str) -> (u64, bool) {
    let lines = metrics.lines().filter(|l| l.starts_with("duoprov_runs_total{"));
    let total = lines.clone().filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum();
    (total, lines.into_iter().any(|l| l.contains("result=\"refused\"")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_logs_held_objects_once_per_run_and_a_refusal_with_its_digest_and_approve_command() {
    let env = setup("[provisioner.duoTest.schedule]\npoll_interval = \"300ms\"\n").await;
    let dir = env.dir.path();
    seed_registry(dir);
    // chyzer2 renders mchyzer's Duo username: both are held by every run.
    run(dir, &["subject", "add", "chyzer2", "--login-id", "mchyzer"], 0);
    run(dir, &["member", "add", "app:duo:testGroup", "chyzer2"], 0);
    let handle = env.emulator.handle().clone();
    let daemon = start_daemon(dir, &["-v"]);
    wait_for("the first full sync", || handle.state(), |s| s.groups.len() == 1 && s.users.iter().map(|u| u.username.as_str()).collect::<Vec<_>>() == ["kwilso"], Duration::from_secs(20));
    // The registry then selects nothing while Duo holds a group duoprov made: refused.
    run(dir, &["provision", "unassign", "duoTest", "--folder", "app:duo"], 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let runs = loop {
        let (_, metrics) = get(&daemon.status, "/metrics");
        let (runs, refused) = runs_counted(&metrics);
        if refused {
            break runs;
        }
        assert!(Instant::now() < deadline, "no refused run within 20 s:\n{metrics}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");

    let held: Vec<&str> = stderr.lines().filter(|l| l.contains("Objects are held by plan errors")).collect();
    assert!(!held.is_empty(), "held objects are logged:\n{stderr}");
    assert!(held[0].contains("subject local:mchyzer [MAT]") && held[0].contains("subject local:chyzer2 [MAT]"), "{}", held[0]);
    assert!(held.len() as u64 <= runs, "at most one held line per run ({runs} runs):\n{stderr}");
    let refusal = stderr.lines().find(|l| l.contains("Run refused by the safety rules")).unwrap_or_else(|| panic!("no refusal logged:\n{stderr}"));
    let command = refusal.split('`').find(|p| p.starts_with("duoprov sync duoTest --approve ")).unwrap_or_else(|| panic!("no approve command: {refusal}"));
    let digest = &command["duoprov sync duoTest --approve ".len()..];
    assert!(digest.len() == 12 && digest.chars().all(|c| c.is_ascii_hexdigit()), "{refusal}");
    assert!(refusal.contains(&format!("digest={digest}")) && refusal.contains("It would make 1 removal"), "{refusal}");
    // The line stays one readable line; the list follows it at -v, one removal a line.
    assert!(!refusal.contains("delete group testGroup"), "{refusal}");
    assert!(stderr.lines().any(|l| l.contains("Refused: delete group testGroup") && l.contains(digest)), "{stderr}");
    assert_eq!(handle.state().groups.len(), 1, "nothing deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_status_page_needs_a_metrics_token_for_metrics_and_readiness_details() {
    use std::os::unix::fs::PermissionsExt;
    let env = setup("[provisioner.duoTest.schedule]\npoll_interval = \"300ms\"\n").await;
    let dir = env.dir.path();
    seed_registry(dir);
    // Off loopback without a token: refused before anything starts, naming the setting.
    let out = crate::duoprov(dir).args(["run", "--listen", "0.0.0.0:0"]).timeout(Duration::from_secs(20)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--listen: 0.0.0.0:0 is not a loopback address") && err.contains("daemon.metrics_token_file"), "{err}");

    let token = "k3Xq9v2LmZ7pW4tR8sY1uB6nD0cF5hJa";
    let file = dir.join("metrics.token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut config = std::fs::OpenOptions::new().append(true).open(dir.join("duoprov.toml")).unwrap();
    writeln!(config, "\n[daemon]\nmetrics_token_file = \"metrics.token\"").unwrap();
    drop(config);

    let daemon = start_daemon_on(dir, "0.0.0.0:0", &[]);
    let port = daemon.status.rsplit(':').next().unwrap().to_owned();
    let addr = format!("127.0.0.1:{port}");
    let handle = env.emulator.handle().clone();
    wait_for("the first full sync", || handle.state(), |s| s.users.len() == 2, Duration::from_secs(20));

    let (code, body) = get(&addr, "/healthz");
    assert_eq!((code, body.trim()), (200, "ok"));
    // Without the token, or with another one: no metrics, and readiness as a bare verdict.
    for headers in ["", "Authorization: Bearer not-the-token-at-all-0000000000\r\n", "Authorization: Basic azNYcTl2Mkw=\r\n"] {
        let (code, response) = get_with(&addr, "/metrics", headers);
        assert_eq!(code, 401, "{headers:?}: {response}");
        assert!(response.to_ascii_lowercase().contains("www-authenticate: bearer"), "{response}");
        assert!(!response.contains("duoprov_runs_total"), "{response}");
        let (_, body) = get(&addr, "/readyz");
        let ready: Value = serde_json::from_str(&body).unwrap();
        assert!(ready["ready"].is_boolean() && ready.get("provisioners").is_none(), "{ready:#}");
    }
    let bearer = format!("Authorization: Bearer {token}\r\n");
    // Duo holds the users before the run that sent them has finished and been counted: wait for
    // the count, then check it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (code, metrics) = get_with(&addr, "/metrics", &bearer);
        assert_eq!(code, 200, "{metrics}");
        if metrics.contains("duoprov_runs_total{provisioner=\"duoTest\",kind=\"full\"") {
            break metrics;
        }
        assert!(Instant::now() < deadline, "no full run counted in the metrics within 20 s:\n{metrics}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(metrics.contains("duoprov_runs_total{provisioner=\"duoTest\",kind=\"full\",result=\"succeeded\"} 1"), "{metrics}");
    let (code, response) = get_with(&addr, "/readyz", &bearer);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let ready: Value = serde_json::from_str(body).unwrap();
    assert_eq!(code, 200, "{ready:#}");
    assert_eq!(ready["provisioners"]["duoTest"]["role"], "holder", "{ready:#}");

    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains(token), "the token reached the log:\n{stderr}");
}

/// SIGTERM the moment the daemon says it is serving stops it gracefully (exit 0), never kills
/// it: the signal is caught before the status line is printed. Repeated, since a late handler
/// loses only some of the races.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_right_after_the_status_line_stops_the_daemon_gracefully() {
    let env = setup("").await;
    let dir = env.dir.path();
    seed_registry(dir);
    for attempt in 0..5 {
        let daemon = start_daemon(dir, &[]);
        let (code, stderr) = daemon.stop();
        assert_eq!(code, Some(0), "attempt {attempt}: the daemon was killed, not stopped:\n{stderr}");
    }
}
