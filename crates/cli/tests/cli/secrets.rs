//! No secret anywhere: every `duoprov` command runs at the most verbose log level (`-vvv`, text
//! and JSON logs) with the HTTP traffic log on (`log_http = "always"`), against an in-process
//! emulator — the daemon (`duoprov run`, with its status page and metrics) and a `duoprov
//! emulator` as child processes — including failing runs (injected 500 and 503, a wrong secret
//! key). Then all standard output and error, every file under the test's folder and
//! the SQLite registry's bytes are scanned for the Duo secret keys and for every signature the
//! emulators received (the in-process one reports them through `received_signatures()`; the
//! child's are recorded on the sending side). Also: secrets written in the configuration are
//! refused without being echoed, and a secret file readable by group or others is named in a
//! warning while a private one is not. The registry's password (`password_env`) and a proxy's
//! password (`proxy_password_env`, through a proxy that refuses every request) are in every
//! command's environment and scanned for too; the registry, a saved plan and the emulator's state
//! file are checked to be mode 0600.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use duoprov_duo::{DuoClient, DuoConfig, HttpRequest, HttpResponse, ReqwestTransport, Transport, TransportError};
use duoprov_emulator::auth::SignatureLog;
use duoprov_emulator::{Emulator, Integration, RunningEmulator};

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

const IKEY: &str = "DISECRETS00000000001";
const SKEY: &str = "secrets-test-key-Qx7Vb2Kp9Lm4Zt8Rw1Yn6Hd3";
/// A wrong key for the same integration (every call it signs is refused with 401).
const WRONG_SKEY: &str = "wrong-secret-key-Jf5Tq8Ns2Wc7Xb4Gm9Pd1Rk";
/// The key of the `duoprov emulator` child process.
const CHILD_IKEY: &str = "DICHILD0000000000001";
const CHILD_SKEY: &str = "child-emulator-key-Hy3Fv6Qm8Tn1Wz5Ks2Lc9";

/// Everything the commands printed, by command.
#[derive(Default)]
struct Outputs(Vec<(String, Vec<u8>)>);

impl Outputs {
    fn add(&mut self, label: String, bytes: &[u8]) {
        self.0.push((label, bytes.to_vec()));
    }
}

/// The registry password every command has in its environment (`registry.password_env`).
const DB_PASSWORD: &str = "db-password-Wm4Xc9Bz2Nf7Jh5Tp";

/// Every command runs with the registry and proxy passwords in its environment.
fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_duoprov"));
    cmd.env_remove("DUOPROV_CONFIG").env_remove("DUOPROV_REGISTRY_URL").env_remove("RUST_LOG");
    cmd.env("DUOPROV_TEST_DB_PASSWORD", DB_PASSWORD).env("DUOPROV_TEST_PROXY_PW", PROXY_PASSWORD);
    cmd
}

/// Runs `duoprov -vvv ARGS` in `dir`, expecting `code`, and keeps both streams.
fn run(out: &mut Outputs, dir: &Path, args: &[&str], code: i32) -> String {
    let mut cmd = binary();
    cmd.current_dir(dir).arg("-vvv").args(args);
    let o = cmd.output().expect("run duoprov");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "duoprov -vvv {args:?}\nstdout:\n{stdout}\nstderr:\n{}", tail(&stderr));
    out.add(format!("{args:?} stdout"), &o.stdout);
    out.add(format!("{args:?} stderr"), &o.stderr);
    stdout
}

/// The same with JSON log lines.
fn run_json_logs(out: &mut Outputs, dir: &Path, args: &[&str], code: i32) {
    let mut all = vec!["--log-format", "json"];
    all.extend_from_slice(args);
    run(out, dir, &all, code);
}

fn tail(s: &str) -> &str {
    let n = s.len();
    let start = s.char_indices().map(|(i, _)| i).find(|i| *i + 8000 >= n).unwrap_or(0);
    &s[start..]
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write secret file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The signatures of `signatures` (hex, 40 or 128 characters) found anywhere in `hay`, in any
/// case: every run of hex digits is checked, so the scan stays linear in the haystack.
fn signatures_in(hay: &[u8], signatures: &std::collections::HashSet<String>) -> Vec<String> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < hay.len() {
        if !hay[i].is_ascii_hexdigit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < hay.len() && hay[i].is_ascii_hexdigit() {
            i += 1;
        }
        let run = String::from_utf8_lossy(&hay[start..i]).to_ascii_lowercase();
        for len in [40, 128] {
            for w in 0..(run.len() + 1).saturating_sub(len) {
                if signatures.contains(&run[w..w + len]) {
                    found.push(run[w..w + len].to_owned());
                }
            }
        }
    }
    found
}

/// Standard base64 (the start of every `Authorization` value is base64 of `IKEY:`).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= chunk.len() { char::from(ABC[((n >> shift) & 63) as usize]) } else { '=' });
        }
    }
    out
}

/// A transport that records the signature of every request it sends (for the child emulator,
/// whose own record of signatures lives in another process).
struct Recording {
    inner: ReqwestTransport,
    seen: Arc<Mutex<SignatureLog>>,
}

impl Transport for Recording {
    fn send(&self, req: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        if let Some((_, auth)) = req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization")) {
            self.seen.lock().expect("lock").record(auth);
        }
        self.inner.send(req)
    }
}

/// The test's folder: a registry (its password from the environment), a configuration with a
/// provisioner that logs all traffic, a second one whose secret key is wrong, a third that goes
/// through a proxy (which refuses everything) with its password from the environment, and the
/// secret files.
async fn setup() -> (tempfile::TempDir, RunningEmulator) {
    let emulator = Emulator::builder()
        .integration(Integration::new(IKEY, SKEY))
        .configure(|s| s.rate_limits.enabled = false)
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("temp dir");
    write_private(&dir.path().join("duo.skey"), SKEY);
    write_private(&dir.path().join("wrong.skey"), WRONG_SKEY);
    let url = emulator.base_url();
    let (proxy_port, _) = recording_proxy();
    let config = format!(
        "[registry]\nurl = \"sqlite://registry.db\"\npassword_env = \"DUOPROV_TEST_DB_PASSWORD\"\n\n\
         [duo.proxied]\napi_host = \"127.0.0.1\"\nintegration_key = \"{IKEY}\"\nsecret_key_file = \"duo.skey\"\nurl = \"{url}\"\n\
         proxy = \"http://bob@127.0.0.1:{proxy_port}\"\nproxy_password_env = \"DUOPROV_TEST_PROXY_PW\"\nserver_retries = 0\n\n\
         [provisioner.proxied]\nduo = \"proxied\"\nlog_http = \"always\"\nlog_http_bodies = \"full\"\n\n\
         [duo.test]\napi_host = \"127.0.0.1\"\nintegration_key = \"{IKEY}\"\nsecret_key_file = \"duo.skey\"\nurl = \"{url}\"\n\n\
         [duo.wrong]\napi_host = \"127.0.0.1\"\nintegration_key = \"{IKEY}\"\nsecret_key_file = \"wrong.skey\"\nurl = \"{url}\"\n\n\
         [provisioner.duoTest]\nduo = \"test\"\nlog_http = \"always\"\nload_duo_users = true\n\n\
         [provisioner.wrongKey]\nduo = \"wrong\"\nlog_http = \"always\"\n\n\
         [provisioner.duoTest.schedule]\npoll_interval = \"300ms\"\n"
    );
    crate::write_config(dir.path(), config).expect("config");
    (dir, emulator)
}

/// Every command, in an order that gives each one something to do.
fn run_every_command(out: &mut Outputs, dir: &Path, emulator: &RunningEmulator) {
    // Setup commands, in a folder of their own.
    let fresh = dir.join("fresh");
    std::fs::create_dir(&fresh).expect("mkdir");
    run(out, &fresh, &["init"], 0);
    run(out, &fresh, &["init", "--force", "--registry-url", "sqlite://other.db"], 0);
    run(out, dir, &["config"], 0);
    run(out, dir, &["--json", "config"], 0);

    // The registry.
    run(out, dir, &["subject", "add", "mchyzer", "--name", "Chris Hyzer", "--login-id", "mchyzer", "--email", "mchyzer@example.edu"], 0);
    run(out, dir, &["subject", "add", "kwilso", "--name", "Kate Wilson", "--login-id", "kwilso"], 0);
    run(out, dir, &["subject", "update", "kwilso", "--email", "kwilso@example.edu", "--description", "Kate"], 0);
    run(out, dir, &["subject", "add", "temp", "--source", "ldap", "--name", "Temp"], 0);
    run(out, dir, &["subject", "show", "mchyzer"], 0);
    run(out, dir, &["subject", "list"], 0);
    run(out, dir, &["--json", "subject", "list", "--source", "ldap"], 0);
    run(out, dir, &["subject", "remove", "temp", "--source", "ldap"], 0);
    run(out, dir, &["folder", "add", "app:duo", "--create-parents", "--description", "Duo"], 0);
    run(out, dir, &["folder", "add", "app:tmp", "--display-name", "Temporary"], 0);
    run(out, dir, &["folder", "update", "app:tmp", "--rename-to", "app:tmp2", "--description", "moved"], 0);
    run(out, dir, &["folder", "show", "app:duo"], 0);
    run(out, dir, &["folder", "list", "--under", "app"], 0);
    run(out, dir, &["folder", "remove", "app:tmp2", "--recursive"], 0);
    run(out, dir, &["group", "add", "app:duo:testGroup", "--description", "Duo test group"], 0);
    run(out, dir, &["group", "add", "app:duo:other"], 0);
    run(out, dir, &["group", "update", "app:duo:other", "--description", "Other"], 0);
    run(out, dir, &["group", "show", "app:duo:testGroup"], 0);
    run(out, dir, &["group", "list", "--under", "app:duo"], 0);
    run(out, dir, &["member", "add", "app:duo:testGroup", "mchyzer", "kwilso"], 0);
    run(out, dir, &["member", "add", "app:duo:other", "--group", "app:duo:testGroup"], 0);
    run(out, dir, &["member", "list", "app:duo:other", "--effective"], 0);
    run(out, dir, &["--json", "member", "list", "app:duo:testGroup"], 0);
    run(out, dir, &["member", "remove", "app:duo:other", "--group", "app:duo:testGroup"], 0);
    run(out, dir, &["provision", "assign", "duoTest", "--folder", "app:duo", "--scope", "sub"], 0);
    run(out, dir, &["provision", "assign", "wrongKey", "--folder", "app:duo"], 0);
    run(out, dir, &["provision", "assign", "duoTest", "--group", "app:duo:other", "--exclude"], 0);
    run(out, dir, &["provision", "list"], 0);
    run(out, dir, &["provision", "list", "duoTest", "--groups"], 0);
    run(out, dir, &["provision", "unassign", "duoTest", "--group", "app:duo:other"], 0);
    std::fs::write(
        dir.join("more.json"),
        "{\"subjects\": [{\"id\": \"jdoe\", \"name\": \"J Doe\", \"login_id\": \"jdoe\"}],\n\"groups\": [{\"name\": \"app:duo:imported\"}],\n\"memberships\": [{\"group\": \"app:duo:imported\", \"subject\": \"jdoe\"}]}",
    )
    .expect("write");
    std::fs::write(dir.join("members.csv"), "group,subject\napp:duo:imported,mchyzer\n").expect("write");
    run(out, dir, &["import", "more.json"], 0);
    run(out, dir, &["import", "members.csv", "--format", "csv"], 0);

    // Provisioning.
    run(out, dir, &["doctor", "duoTest"], 0);
    run(out, dir, &["plan", "duoTest"], 0);
    run(out, dir, &["--json", "plan", "duoTest"], 0);
    run(out, dir, &["plan", "duoTest", "--out", "plan.json"], 0);
    run(out, dir, &["sync", "duoTest", "--dry-run"], 0);
    run(out, dir, &["sync", "duoTest", "--plan", "plan.json"], 0);
    run_json_logs(out, dir, &["--json", "sync", "duoTest"], 0);
    run(out, dir, &["subject", "add", "kwilso", "--email", "kate@example.edu"], 0);
    run(out, dir, &["sync", "duoTest", "--incremental"], 0);
    run(out, dir, &["sync", "duoTest", "--full"], 0);
    // Failed attempts: a group create answered 500 (settled by reading back and creating
    // again) and a page read answered 503 (retried); both logged with their responses.
    run(out, dir, &["group", "add", "app:duo:third"], 0);
    run(out, dir, &["member", "add", "app:duo:third", "jdoe"], 0);
    emulator.handle().set_faults("500 first=1 on=groups.create; 503 first=1 on=users.list").expect("faults");
    run(out, dir, &["sync", "duoTest"], 0);
    emulator.handle().set_faults("").expect("faults");
    run(out, dir, &["sync", "duoTest"], 0);
    // Deletions approved for one run.
    run(out, dir, &["group", "remove", "app:duo:third"], 0);
    let plan: serde_json::Value = serde_json::from_str(&run(out, dir, &["--json", "plan", "duoTest"], 0)).expect("plan JSON");
    let digest = plan["removal_digest"].as_str().expect("removal digest").to_owned();
    run(out, dir, &["sync", "duoTest", "--approve", &digest], 0);
    // A wrong secret key: every call refused (401), the errors and the traffic log shown.
    let failed = Command::new(env!("CARGO_BIN_EXE_duoprov")).current_dir(dir).args(["-vvv", "doctor", "wrongKey"]).output().expect("doctor");
    out.add("doctor wrongKey stdout".into(), &failed.stdout);
    out.add("doctor wrongKey stderr".into(), &failed.stderr);
    assert_ne!(failed.status.code(), Some(0), "doctor with a wrong key succeeded");
    run(out, dir, &["plan", "wrongKey"], 1);
    run_json_logs(out, dir, &["sync", "wrongKey"], 1);
    run(out, dir, &["load-users", "wrongKey"], 1);
    // Through the proxy, which answers 502: the errors and the traffic log shown.
    for args in [&["-vvv", "doctor", "proxied"][..], &["-vvv", "plan", "proxied"], &["-vvv", "--log-format", "json", "sync", "proxied"]] {
        let failed = binary().current_dir(dir).args(args).output().expect("run");
        out.add(format!("{args:?} stdout"), &failed.stdout);
        out.add(format!("{args:?} stderr"), &failed.stderr);
        assert_ne!(failed.status.code(), Some(0), "{args:?} through a refusing proxy succeeded");
        let text = format!("{}{}", String::from_utf8_lossy(&failed.stdout), String::from_utf8_lossy(&failed.stderr));
        assert!(text.contains("502"), "{args:?}: the proxy's answer is not reported:\n{}", tail(&text));
    }
    // Status, the Duo users table and its reports.
    run(out, dir, &["status"], 0);
    run(out, dir, &["status", "duoTest"], 0);
    run(out, dir, &["--json", "status", "duoTest"], 0);
    run(out, dir, &["load-users", "duoTest"], 0);
    run(out, dir, &["--json", "load-users", "duoTest"], 0);
    run(out, dir, &["report", "duoTest", "users"], 0);
    run(out, dir, &["report", "duoTest", "users", "--csv"], 0);
    run(out, dir, &["--json", "report", "duoTest", "users", "--not-in-registry", "--not-enrolled", "--status", "active", "--stale-login", "30"], 0);
    run_daemon(out, dir, emulator);
}

/// `duoprov run` (the daemon) as a child process: it carries a registry change to Duo, its
/// status page, health, readiness and metrics are read, then SIGTERM.
fn run_daemon(out: &mut Outputs, dir: &Path, emulator: &RunningEmulator) {
    let mut child = binary()
        .current_dir(dir)
        .args(["-vvv", "run", "--provisioner", "duoTest", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    let status = first.split("http://").nth(1).and_then(|r| r.split(',').next()).unwrap_or_else(|| panic!("no status address in {first:?}")).trim().to_owned();
    // At -vvv the daemon writes a lot: read its standard error as it goes.
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let o = binary().current_dir(dir).args(["-vvv", "subject", "add", "mchyzer", "--email", "chris@example.edu"]).output().expect("run");
    out.add("subject add (daemon running) stderr".into(), &o.stderr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !emulator.handle().state().users.iter().any(|u| u.email == "chris@example.edu") {
        assert!(std::time::Instant::now() < deadline, "the daemon did not carry the change to Duo");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for path in ["/", "/healthz", "/readyz", "/metrics"] {
        let mut s = std::net::TcpStream::connect(&status).expect("connect to the status page");
        std::io::Write::write_all(&mut s, format!("GET {path} HTTP/1.0\r\nHost: {status}\r\n\r\n").as_bytes()).expect("send");
        let mut page = Vec::new();
        s.read_to_end(&mut page).expect("read");
        assert!(page.starts_with(b"HTTP/1."), "{path}: {}", String::from_utf8_lossy(&page));
        out.add(format!("daemon status page {path}"), &page);
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let code = child.wait().expect("wait");
    assert!(code.success(), "the daemon did not stop cleanly: {code:?}");
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("stdout");
    out.add("daemon stdout".into(), &[first.as_bytes(), &rest].concat());
    out.add("daemon stderr".into(), &stderr_reader.join().expect("stderr thread"));
}

/// `duoprov demo` in a folder of its own; returns the secret key it used (derived from its
/// process id, see `commands/demo.rs`), so the scan covers that key too.
fn run_demo(out: &mut Outputs, dir: &Path) -> String {
    let demo_dir = dir.join("demo");
    std::fs::create_dir(&demo_dir).expect("mkdir");
    let child = binary()
        .current_dir(&demo_dir)
        .args(["-vvv", "demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn demo");
    let pid = child.id() as usize;
    let o = child.wait_with_output().expect("demo");
    assert!(o.status.success(), "demo failed:\n{}", tail(&String::from_utf8_lossy(&o.stderr)));
    out.add("demo stdout".into(), &o.stdout);
    out.add("demo stderr".into(), &o.stderr);
    (0..40).map(|i| char::from(b'a' + ((i * 7 + pid) % 26) as u8)).collect()
}

/// `duoprov emulator` as a child process: a few calls signed by a recording client (one with a
/// wrong key), then SIGTERM; returns the signatures sent.
async fn run_child_emulator(out: &mut Outputs, dir: &Path) -> Vec<String> {
    let edir = dir.join("child");
    std::fs::create_dir(&edir).expect("mkdir");
    write_private(&edir.join("child.skey"), CHILD_SKEY);
    let mut child = binary()
        .current_dir(&edir)
        .args(["-vvv", "emulator", "--listen", "127.0.0.1:0", "--ikey", CHILD_IKEY, "--skey-file", "child.skey", "--state", "state.json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn emulator");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    let url = first.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {first:?}")).to_owned();
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });

    let seen = Arc::new(Mutex::new(SignatureLog::new(10_000)));
    for (skey, expect_ok) in [(CHILD_SKEY, true), (WRONG_SKEY, false)] {
        let mut cfg = DuoConfig::new("127.0.0.1", CHILD_IKEY, skey.into());
        cfg.url = Some(url.clone());
        cfg.traffic_log = duoprov_duo::TrafficLogMode::Always;
        let transport = Recording { inner: ReqwestTransport::new(&cfg).expect("transport"), seen: seen.clone() };
        let duo = DuoClient::with_transport(cfg, Arc::new(transport)).expect("client");
        let created = duo.create_group(&duoprov_duo::GroupFields::named("child-group")).await;
        assert_eq!(created.is_ok(), expect_ok, "{created:?}");
        let users = duo.create_user(&duoprov_duo::NewUser::new("child-user")).await;
        assert_eq!(users.is_ok(), expect_ok, "{users:?}");
        assert_eq!(duo.list_users().await.is_ok(), expect_ok);
    }

    // SIGTERM to the child we started (by its id): it saves the state file and exits 0.
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "the emulator did not exit cleanly: {status:?}");
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("stdout");
    out.add("emulator stdout".into(), &[first.as_bytes(), &rest].concat());
    out.add("emulator stderr".into(), &stderr_reader.join().expect("stderr thread"));
    assert!(edir.join("state.json").exists(), "the state file was saved");
    
    seen.lock().expect("lock").all()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_prints_or_writes_a_secret_key_or_a_signature() {
    let (dir, emulator) = setup().await;
    let mut out = Outputs::default();
    let d = dir.path().to_path_buf();
    // The commands block; run them off the runtime's workers so the emulator keeps serving.
    let (out_back, emulator) = tokio::task::spawn_blocking(move || {
        run_every_command(&mut out, &d, &emulator);
        (out, emulator)
    })
    .await
    .expect("commands");
    let mut out = out_back;
    let demo_key = run_demo(&mut out, dir.path());
    let child_signatures = run_child_emulator(&mut out, dir.path()).await;

    // What must never appear.
    let signatures = emulator.handle().received_signatures();
    eprintln!("received {} signatures in-process, sent {} to the child", signatures.len(), child_signatures.len());
    assert!(signatures.len() >= 30, "the emulator received only {} signatures: the scan would prove little", signatures.len());
    assert!(child_signatures.len() >= 6, "only {} signatures were sent to the child emulator", child_signatures.len());
    let needles: Vec<(String, String)> = vec![
        ("the secret key".into(), SKEY.into()),
        ("the wrong secret key".into(), WRONG_SKEY.into()),
        ("the child emulator's secret key".into(), CHILD_SKEY.into()),
        ("the demo's secret key".into(), demo_key),
        ("an Authorization value".into(), base64(format!("{IKEY}:").as_bytes())[..24].to_owned()),
        ("an Authorization value for the child".into(), base64(format!("{CHILD_IKEY}:").as_bytes())[..24].to_owned()),
        ("the registry password".into(), DB_PASSWORD.into()),
        ("the proxy password".into(), PROXY_PASSWORD.into()),
        ("a Proxy-Authorization value".into(), base64(format!("bob:{PROXY_PASSWORD}").as_bytes())[..20].to_owned()),
    ];
    let all_signatures: std::collections::HashSet<String> =
        signatures.iter().chain(&child_signatures).map(|s| s.to_ascii_lowercase()).collect();
    // The scanner finds what it looks for (so a clean scan means something).
    let probe = signatures[0].to_ascii_uppercase();
    assert_eq!(signatures_in(format!("sig={probe}.").as_bytes(), &all_signatures).len(), 1);
    let key_file = std::fs::read(dir.path().join("duo.skey")).expect("key file");
    assert!(contains(&key_file, SKEY.as_bytes()));

    // Where to look: every stream, every file under the test's folder (the secret files aside),
    // the registry's SQLite bytes among them.
    let mut files = Vec::new();
    all_files(dir.path(), &mut files);
    let secret_files = ["duo.skey", "wrong.skey", "child.skey"];
    files.retain(|f| !secret_files.iter().any(|s| f.ends_with(s)));
    let registry = dir.path().join("registry.db");
    assert!(files.contains(&registry), "no registry database to scan");
    assert!(std::fs::metadata(&registry).map(|m| m.len()).unwrap_or(0) > 10_000, "the registry is empty");
    let mut haystacks: Vec<(String, Vec<u8>)> = out.0;
    for f in &files {
        haystacks.push((f.display().to_string(), std::fs::read(f).expect("read file")));
    }
    let traffic = haystacks.iter().filter(|(l, h)| l.ends_with("stderr") && contains(h, b"Authorization: *******")).count();
    assert!(traffic >= 5, "the traffic log was not on in enough commands ({traffic})");

    let mut leaks = Vec::new();
    for (where_, hay) in &haystacks {
        for (what, needle) in &needles {
            if contains(hay, needle.as_bytes()) {
                leaks.push(format!("{what} in {where_}"));
            }
        }
        for s in signatures_in(hay, &all_signatures) {
            leaks.push(format!("signature {}… in {where_}", &s[..8]));
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    // The files that hold personal data are private: the registry, a saved plan, the emulator's
    // state file.
    #[cfg(unix)]
    for private in [registry.clone(), dir.path().join("plan.json"), dir.path().join("child/state.json")] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", private.display());
    }
    eprintln!(
        "scanned {} outputs and {} files ({} bytes) for {} secrets and {} signatures",
        haystacks.len() - files.len(),
        files.len(),
        haystacks.iter().map(|(_, h)| h.len()).sum::<usize>(),
        needles.len(),
        all_signatures.len()
    );
}

#[test]
fn secrets_written_in_the_configuration_are_refused_without_being_echoed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = "Inline-Secret-9f8e7d6c5b4a3f2e1d0c9b8a";
    let duo = "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\n";
    for (config, key) in [
        (format!("{duo}secret_key = \"{secret}\"\n"), "duo.prod.secret_key"),
        (format!("{duo}secret_key = \"{secret}\n"), "line 4"), // unterminated: a syntax error on the secret's line
        (format!("{duo}secret_key = [\"{secret}\"]\n"), "duo.prod.secret_key"),
        (format!("{duo}secret_key_env = \"S\"\nproxy = \"http://bob:{secret}@proxy.example.edu:3128\"\n"), "duo.prod.proxy"),
        (format!("[registry]\nurl = \"postgres://duoprov:{secret}@db.example.edu/duoprov\"\n"), "registry.url"),
        (format!("[registry]\nurl = \"postgres://duoprov:{secret}@db.example.edu/duoprov\" junk\n"), "line 2"),
    ] {
        crate::write_config(dir.path(), &config).expect("config");
        for args in [&["-vvv", "subject", "list"][..], &["-vvv", "config"], &["-vvv", "--log-format", "json", "doctor", "p"]] {
            let o = binary().current_dir(dir.path()).args(args).output().expect("run");
            let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            assert_eq!(o.status.code(), Some(1), "{args:?} accepted:\n{config}");
            assert!(stderr.contains(key), "{args:?}: the error does not name {key}:\n{stderr}");
            assert!(!stdout.contains(&secret[..16]) && !stderr.contains(&secret[..16]), "{args:?} echoed the secret:\n{stderr}");
        }
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_file_readable_by_group_or_others_is_named_and_a_private_one_is_not() {
    use std::os::unix::fs::PermissionsExt;
    let secret = "file-secret-4c3b2a1f0e9d8c7b6a5f4e3d2c1b";
    let emulator = Emulator::builder().integration(Integration::new(IKEY, secret)).spawn_on("127.0.0.1:0").await.expect("emulator");
    let dir = tempfile::tempdir().expect("temp dir");
    crate::write_config(dir.path(),
        format!(
            "[registry]\nurl = \"sqlite://r.db\"\n[duo.prod]\napi_host = \"127.0.0.1\"\nintegration_key = \"{IKEY}\"\nsecret_key_file = \"keys/duo.skey\"\nurl = \"{}\"\n[provisioner.p]\nduo = \"prod\"\nlog_http = \"always\"\n",
            emulator.base_url()
        ),
    )
    .expect("config");
    std::fs::create_dir(dir.path().join("keys")).expect("mkdir");
    let key = dir.path().join("keys/duo.skey");
    std::fs::write(&key, secret).expect("key");
    let d = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        for (mode, warned) in [(0o640, true), (0o604, true), (0o644, true), (0o660, true), (0o600, false), (0o400, false)] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
            // `doctor` reads the key and calls Duo with it.
            let o = binary().current_dir(&d).args(["-vvv", "doctor", "p"]).output().expect("run");
            let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            assert!(o.status.success(), "mode {mode:o}: {stdout}\n{}", tail(&stderr));
            let named = stderr.contains("Secret file is readable by group or others") && stderr.contains("keys/duo.skey");
            assert_eq!(named, warned, "mode {mode:o}:\n{}", tail(&stderr));
            assert!(!stderr.contains(&secret[..16]) && !stdout.contains(&secret[..16]), "mode {mode:o}: the key was printed");
        }
    })
    .await
    .expect("runs");
}

/// A stand-in HTTP proxy on loopback: answers every request `502 Bad Gateway` and keeps the
/// request heads it received.
fn recording_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let kept = heads.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut chunk = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            kept.lock().expect("lock").push(String::from_utf8_lossy(&head).into_owned());
            let _ = std::io::Write::write_all(&mut conn, b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, heads)
}

/// The configuration of a connection through a proxy at `port` whose password comes from
/// `DUOPROV_TEST_PROXY_PW`.
fn proxy_config(port: u16) -> String {
    format!(
        "[registry]\nurl = \"sqlite://r.db\"\n[duo.prod]\napi_host = \"127.0.0.1\"\nintegration_key = \"{IKEY}\"\nsecret_key_env = \"DUOPROV_TEST_SKEY\"\n\
         url = \"http://127.0.0.1:9\"\nproxy = \"http://bob@127.0.0.1:{port}\"\nproxy_password_env = \"DUOPROV_TEST_PROXY_PW\"\nserver_retries = 0\n\
         [provisioner.p]\nduo = \"prod\"\nlog_http = \"always\"\nlog_http_bodies = \"full\"\n"
    )
}

const PROXY_PASSWORD: &str = "proxy-pw-Ry6Tn3Vx8Kd1Ls5Qb";

#[test]
fn a_proxy_password_from_the_environment_reaches_the_proxy_and_no_output() {
    let (port, heads) = recording_proxy();
    let dir = tempfile::tempdir().expect("temp dir");
    crate::write_config(dir.path(), proxy_config(port)).expect("config");
    let mut outputs = Vec::new();
    for (args, ok) in [
        (&["config"][..], true),
        (&["--json", "config"], true),
        (&["-vvv", "doctor", "p"], false),
        (&["-vvv", "plan", "p"], false),
        (&["-vvv", "--log-format", "json", "load-users", "p"], false),
    ] {
        let o = binary()
            .current_dir(dir.path())
            .env("DUOPROV_TEST_SKEY", SKEY)
            .env("DUOPROV_TEST_PROXY_PW", PROXY_PASSWORD)
            .args(args)
            .output()
            .expect("run");
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.success(), ok, "{args:?}:\n{}", tail(&text));
        assert!(!text.contains(PROXY_PASSWORD) && !text.contains(&base64(format!("bob:{PROXY_PASSWORD}").as_bytes())[..20]), "{args:?} showed the proxy password:\n{text}");
        outputs.push(text);
    }
    assert!(
        outputs[0].contains("http://bob@127.0.0.1") && outputs[0].contains("environment variable DUOPROV_TEST_PROXY_PW"),
        "config names the proxy and where its password comes from:\n{}",
        outputs[0]
    );
    assert!(outputs[3].contains("502"), "the proxy's refusal is reported:\n{}", tail(&outputs[3]));
    // The password did reach the proxy, as basic authentication for bob.
    let want = format!("proxy-authorization: basic {}", base64(format!("bob:{PROXY_PASSWORD}").as_bytes())).to_ascii_lowercase();
    let heads = heads.lock().expect("lock");
    assert!(!heads.is_empty() && heads.iter().all(|h| h.to_ascii_lowercase().contains(&want)), "{heads:?}");
}

/// With PostgreSQL (`DUOPROV_TEST_POSTGRES_URL`; skipped without it): its password moved out of
/// the URL into `registry.password_env`, commands that open the registry work with the right
/// password and fail with a wrong one, and neither password appears in any output.
#[test]
fn a_database_password_from_the_environment_never_appears_with_postgresql() {
    let Some(full) = crate::postgres_url() else { return };
    let mut bare = url::Url::parse(&full).expect("DUOPROV_TEST_POSTGRES_URL is a URL");
    let Some(password) = bare.password().map(percent_decode) else {
        crate::skipped("needs a PostgreSQL URL with a password: DUOPROV_TEST_POSTGRES_URL holds none");
        return;
    };
    bare.set_password(None).expect("strip the password");
    let dir = tempfile::tempdir().expect("temp dir");
    crate::write_config(dir.path(), format!("[registry]\nurl = \"{bare}\"\npassword_env = \"DUOPROV_TEST_PG_PASSWORD\"\n"))
        .expect("config");
    let wrong = "wrong-pg-password-Hq3Lz8Vc1";
    for (given, works) in [(password.as_str(), true), (wrong, false)] {
        for (args, ok) in [
            (&["-vvv", "config"][..], true),
            (&["-vvv", "subject", "list"], works),
            (&["-vvv", "--log-format", "json", "provision", "list"], works),
        ] {
            let o = binary().current_dir(dir.path()).env("DUOPROV_TEST_PG_PASSWORD", given).args(args).output().expect("run");
            let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            assert_eq!(o.status.success(), ok, "{args:?} with the {} password:\n{}", if works { "right" } else { "wrong" }, tail(&text));
            assert!(!text.contains(&password) && !text.contains(wrong), "{args:?} showed a database password:\n{}", tail(&text));
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
