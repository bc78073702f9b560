//! The operator's console on a real daemon against the emulator: on loopback it is open but its
//! actions need the session's CSRF token and come from the console's own pages; off loopback it
//! needs the console token (bearer or the sign-in form's session) and is closed without one;
//! every response carries the strict headers; no page renders the Duo secret key or a token. In
//! headless Chromium (`console.js`, Debian's chromium, playwright-core): every page renders the
//! daemon's data, links work, the explain page shows a nested-group chain, an action without the
//! token is refused and with it works (a retry of one subject runs and its outcome is shown; a
//! refused plan approved from the page is applied), each page's screenshot is written to
//! `target/console-screenshots/`, and no page asks anything of another origin. A refused plan
//! outlives the daemon (`duoprov status` shows it with the daemon stopped), is approved on the
//! restarted daemon's console and cleared by the run that succeeds; the explain page read live
//! (`live=1`) shows the next run's operations, or nothing to do, and makes only GET calls to Duo.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::{start_daemon_on, wait_for};
use crate::run;
use crate::sync::{seed_registry, setup};

const CONSOLE_TOKEN: &str = "c0ns0le-T0ken-7f3a9b21e4d86c05aa";
const METRICS_TOKEN: &str = "metr1cs-T0ken-1b2c3d4e5f60718293";

/// One HTTP/1.0 request: the status code and the whole response (headers and body).
pub(crate) fn request(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the console");
    let length = if method == "POST" { format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", body.len()) } else { String::new() };
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}{length}\r\n{body}").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

/// The value of the first `name:` header of a response.
fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

/// The session cookie a response sets, as a `Cookie:` header line.
pub(crate) fn session_cookie(response: &str) -> String {
    let set = header(response, "set-cookie").unwrap_or_else(|| panic!("no session cookie in\n{response}"));
    format!("Cookie: {}\r\n", set.split(';').next().unwrap())
}

/// The CSRF token a page's form carries.
pub(crate) fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no CSRF field in\n{page}")) + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_owned()
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn assert_strict_headers(what: &str, response: &str) {
    let csp = header(response, "content-security-policy").unwrap_or_else(|| panic!("{what}: no Content-Security-Policy\n{response}"));
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(header(response, "x-content-type-options"), Some("nosniff"), "{what}");
    assert_eq!(header(response, "referrer-policy"), Some("no-referrer"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_the_console_is_open_but_an_action_needs_the_sessions_csrf_token_and_the_same_site() {
    let env = setup("load_duo_users = true\n[provisioner.duoTest.schedule]\npoll_interval = \"300ms\"\n").await;
    let dir = env.dir.path();
    seed_registry(dir);
    let daemon = start_daemon_on(dir, "127.0.0.1:0", &[]);
    let addr = daemon.status.clone();
    let handle = env.emulator.handle().clone();
    wait_for("the first full sync", || handle.state(), |s| s.users.len() == 2, Duration::from_secs(20));

    let (code, overview) = request(&addr, "GET", "/", "", "");
    assert_eq!(code, 200, "{overview}");
    assert_strict_headers("/", &overview);
    assert!(overview.contains("<a href=\"/provisioners/duoTest\">duoTest</a>"), "{overview}");
    let cookie = session_cookie(&overview);
    let set = header(&overview, "set-cookie").unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"), "{set}");
    let (code, page) = request(&addr, "GET", "/provisioners/duoTest", &cookie, "");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("testGroup"), "the group's link, by name:\n{page}");
    let csrf = csrf_of(&page);

    // No session, a forged token, another site: refused, and nothing is asked of the loop.
    for (headers, body, expected) in [
        (String::new(), format!("csrf={csrf}"), 403),
        (cookie.clone(), "csrf=forged".to_owned(), 403),
        (cookie.clone(), String::new(), 403),
        (format!("{cookie}Sec-Fetch-Site: cross-site\r\n"), format!("csrf={csrf}"), 403),
    ] {
        let (code, response) = request(&addr, "POST", "/provisioners/duoTest/full-sync", &headers, &body);
        assert_eq!(code, expected, "{headers:?} {body:?}: {response}");
        assert_strict_headers("a refused action", &response);
    }
    let (_, page) = request(&addr, "GET", "/provisioners/duoTest", &cookie, "");
    assert!(page.contains("No console action yet."), "{page}");

    let (code, response) = request(&addr, "POST", "/provisioners/duoTest/full-sync", &format!("{cookie}Sec-Fetch-Site: same-origin\r\n"), &format!("csrf={csrf}"));
    assert_eq!(code, 303, "{response}");
    let (_, page) = request(&addr, "GET", "/provisioners/duoTest", &cookie, "");
    assert!(page.contains("<td>loopback</td><td>full sync requested</td>"), "the action is logged with who asked:\n{page}");
    // The requested full sync runs: a second full run appears in the history.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, runs) = request(&addr, "GET", "/provisioners/duoTest/runs", &cookie, "");
        if runs.matches("<td>full</td>").count() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the requested full sync did not run within 20 s:\n{runs}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, runs) = request(&addr, "GET", "/provisioners/duoTest/runs", &cookie, "");
    assert!(runs.contains("<td>console: full sync asked for by loopback</td>") && runs.contains("<td>schedule</td>"), "each run says what triggered it:\n{runs}");
    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");

    // Restarted, the daemon shows the action it was asked for before: the log is the registry's,
    // and the audit trail has it with who asked.
    let daemon = start_daemon_on(dir, "127.0.0.1:0", &[]);
    let (_, page) = request(&daemon.status, "GET", "/provisioners/duoTest", "", "");
    assert!(page.contains("<td>loopback</td><td>full sync requested</td>"), "the action log outlives the restart:\n{page}");
    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");
    let (out, _) = run(dir, &["audit", "list", "--provisioner", "duoTest", "--json"], 0);
    let list: Value = serde_json::from_str(&out).expect("audit list JSON");
    let console: Vec<(&str, &str)> = list
        .as_array()
        .expect("a list of entries")
        .iter()
        .filter(|e| e["object_kind"] == "console")
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(console, [("console:loopback", "full-sync")], "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_console_needs_its_token_and_no_page_renders_a_secret() {
    let env = setup("load_duo_users = true\n[provisioner.duoTest.schedule]\npoll_interval = \"300ms\"\n").await;
    let dir = env.dir.path();
    seed_registry(dir);
    write_private(&dir.join("metrics.token"), METRICS_TOKEN);
    let mut config = std::fs::OpenOptions::new().append(true).open(dir.join("duoprov.toml")).unwrap();
    writeln!(config, "\n[daemon]\nmetrics_token_file = \"metrics.token\"").unwrap();
    drop(config);

    // Off loopback without a console token: the console is closed, probes still answer.
    let daemon = start_daemon_on(dir, "0.0.0.0:0", &[]);
    let addr = format!("127.0.0.1:{}", daemon.status.rsplit(':').next().unwrap());
    let (code, page) = request(&addr, "GET", "/", "", "");
    assert_eq!(code, 403, "{page}");
    assert!(page.contains("daemon.console_token_file"), "{page}");
    assert_eq!(request(&addr, "GET", "/healthz", "", "").0, 200);
    assert_eq!(daemon.stop().0, Some(0));

    write_private(&dir.join("console.token"), CONSOLE_TOKEN);
    let mut config = std::fs::OpenOptions::new().append(true).open(dir.join("duoprov.toml")).unwrap();
    writeln!(config, "console_token_file = \"console.token\"").unwrap();
    drop(config);
    let daemon = start_daemon_on(dir, "0.0.0.0:0", &[]);
    let addr = format!("127.0.0.1:{}", daemon.status.rsplit(':').next().unwrap());
    let handle = env.emulator.handle().clone();
    wait_for("the first full sync", || handle.state(), |s| s.users.len() == 2, Duration::from_secs(20));

    // Without the token: to the sign-in form; an action is refused; a wrong token is refused.
    let (code, response) = request(&addr, "GET", "/provisioners/duoTest", "", "");
    assert_eq!((code, header(&response, "location")), (303, Some("/login")), "{response}");
    let (code, response) = request(&addr, "POST", "/provisioners/duoTest/full-sync", "", "csrf=x");
    assert_eq!(code, 401, "{response}");
    let (code, response) = request(&addr, "POST", "/login", "", "token=not-the-console-token");
    assert_eq!(code, 401, "{response}");
    assert!(header(&response, "set-cookie").is_none(), "{response}");
    // The metrics token is not the console token.
    let (code, _) = request(&addr, "GET", "/", &format!("Authorization: Bearer {METRICS_TOKEN}\r\n"), "");
    assert_eq!(code, 303);

    // With it: a bearer request, or a session from the sign-in form.
    let bearer = format!("Authorization: Bearer {CONSOLE_TOKEN}\r\n");
    let (code, response) = request(&addr, "GET", "/", &bearer, "");
    assert_eq!(code, 200, "{response}");
    let (code, response) = request(&addr, "POST", "/login", "", &format!("token={CONSOLE_TOKEN}"));
    assert_eq!((code, header(&response, "location")), (303, Some("/")), "{response}");
    let cookie = session_cookie(&response);

    // Every page, as the signed-in operator: none shows a secret.
    let secret = std::fs::read_to_string(dir.join("duo.skey")).unwrap();
    let (_, runs) = request(&addr, "GET", "/provisioners/duoTest/runs", &cookie, "");
    let run_path = runs.split("href=\"/runs/").nth(1).map(|r| format!("/runs/{}", r.split('"').next().unwrap())).expect("a run link");
    for path in ["/", "/provisioners/duoTest", "/provisioners/duoTest/runs", run_path.as_str(), "/duo-users", "/duo-users.csv?provisioner=duoTest", "/login", "/console.css"] {
        let (code, response) = request(&addr, "GET", path, &cookie, "");
        assert!(code == 200 || (path == "/login" && code == 303), "{path}: {response}");
        assert_strict_headers(path, &response);
        for (what, value) in [("the Duo secret key", secret.trim()), ("the console token", CONSOLE_TOKEN), ("the metrics token", METRICS_TOKEN)] {
            assert!(!response.contains(value), "{path} renders {what}:\n{response}");
        }
    }
    let (_, page) = request(&addr, "GET", "/provisioners/duoTest", &cookie, "");
    assert!(page.contains("secret_key = &quot;file ") || page.contains("secret_key = \"file "), "the settings name where the secret comes from:\n{page}");
    let (_, users) = request(&addr, "GET", "/duo-users?provisioner=duoTest", &cookie, "");
    assert!(users.contains("mchyzer") && users.contains("kwilso"), "{users}");
    let (code, csv) = request(&addr, "GET", "/duo-users.csv?provisioner=duoTest", &cookie, "");
    assert_eq!(code, 200);
    assert!(header(&csv, "content-type").is_some_and(|t| t.starts_with("text/csv")), "{csv}");
    assert!(csv.contains("config_id,user_id,aliases,phones"), "{csv}");

    // The session's action, with its CSRF token, is logged as the console token's.
    let (_, page) = request(&addr, "GET", "/provisioners/duoTest", &cookie, "");
    let (code, response) = request(&addr, "POST", "/provisioners/duoTest/full-sync", &cookie, &format!("csrf={}", csrf_of(&page)));
    assert_eq!(code, 303, "{response}");
    let (_, page) = request(&addr, "GET", "/provisioners/duoTest", &cookie, "");
    assert!(page.contains("<td>console token</td><td>full sync requested</td>"), "{page}");

    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");
    for value in [CONSOLE_TOKEN, METRICS_TOKEN, secret.trim()] {
        assert!(!stderr.contains(value), "a secret reached the log:\n{stderr}");
    }
}

/// Chromium and the driver's directory, or `None` after reporting the skip (a failure under
/// `DUOPROV_REQUIRE_EXTERNAL=1`).
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = PathBuf::from(std::env::var("DUOPROV_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console-browser");
    let missing = if !chromium.exists() {
        Some(format!("needs Chromium: {} does not exist (apt-get install chromium, or set DUOPROV_CHROMIUM)", chromium.display()))
    } else if !driver.join("node_modules/playwright-core").exists() {
        Some(format!("needs playwright-core: run `npm ci` in {}", driver.display()))
    } else if std::process::Command::new("node").arg("--version").output().is_err() {
        Some("needs Node.js (`node`)".into())
    } else {
        None
    };
    match missing {
        None => Some((chromium, driver)),
        Some(reason) => {
            assert_ne!(std::env::var("DUOPROV_REQUIRE_EXTERNAL").as_deref(), Ok("1"), "{reason}");
            crate::skipped(&reason);
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_every_console_page_renders_the_daemons_data_and_an_approval_from_the_page_is_applied() {
    let Some((chromium, driver)) = browser() else { return };
    // No group deletion without approval: the registry keeps selecting one folder, so only the
    // threshold refuses the deletion below.
    let env = setup("load_duo_users = true\n[provisioner.duoTest.schedule]\npoll_interval = \"300ms\"\n[provisioner.duoTest.thresholds]\nmax_group_deletes = 0\n").await;
    let dir = env.dir.path();
    seed_registry(dir);
    // A subject reached through a nested group, in a folder the test keeps selected.
    run(dir, &["subject", "add", "nnurse", "--name", "Nia Nurse", "--login-id", "nnurse", "--email", "nnurse@example.edu"], 0);
    run(dir, &["group", "add", "ref:hr:nurses", "--create-parents"], 0);
    run(dir, &["group", "add", "app:sso:staff", "--create-parents"], 0);
    run(dir, &["member", "add", "ref:hr:nurses", "nnurse"], 0);
    run(dir, &["member", "add", "app:sso:staff", "--group", "ref:hr:nurses"], 0);
    run(dir, &["provision", "assign", "duoTest", "--folder", "app:sso", "--scope", "sub"], 0);
    write_private(&dir.join("metrics.token"), METRICS_TOKEN);
    write_private(&dir.join("console.token"), CONSOLE_TOKEN);
    let mut config = std::fs::OpenOptions::new().append(true).open(dir.join("duoprov.toml")).unwrap();
    writeln!(config, "\n[daemon]\nmetrics_token_file = \"metrics.token\"\nconsole_token_file = \"console.token\"").unwrap();
    drop(config);
    // Off loopback: every address of the machine, reached here through 127.0.0.1.
    let daemon = start_daemon_on(dir, "0.0.0.0:0", &[]);
    let base = format!("http://127.0.0.1:{}", daemon.status.rsplit(':').next().unwrap());
    let handle = env.emulator.handle().clone();
    wait_for("the first full sync", || handle.state(), |s| s.users.len() == 3 && s.groups.len() == 2, Duration::from_secs(20));
    // The registry stops selecting the group duoprov made: its deletion is refused until approved.
    run(dir, &["provision", "unassign", "duoTest", "--folder", "app:duo"], 0);

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    let out = std::process::Command::new("node")
        .arg(driver.join("console.js"))
        .current_dir(&driver)
        .env("DUOPROV_CONSOLE_URL", &base)
        .env("DUOPROV_CONSOLE_TOKEN", CONSOLE_TOKEN)
        .env("DUOPROV_SCREENSHOTS", &shots)
        .env("DUOPROV_CHROMIUM", &chromium)
        .env("DUOPROV_PROVISIONER", "duoTest")
        .env("DUOPROV_EXPLAIN_SUBJECT", "nnurse")
        .output()
        .expect("run console.js");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "console.js failed:\n{stderr}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("console.js printed no JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)));
    let text = |page: &str| result["pages"][page]["text"].as_str().unwrap_or_else(|| panic!("no page {page}: {result:#}")).to_owned();

    // Without the token: the sign-in form, and an action refused.
    assert!(result["pages"]["login"]["url"].as_str().unwrap().ends_with("/login"), "{result:#}");
    assert_eq!(result["steps"]["unauthenticatedAction"], 401, "{result:#}");
    assert!(result["steps"]["wrongToken"].as_str().unwrap().contains("not the console token"), "{result:#}");
    assert_eq!(result["steps"]["cookie"], serde_json::json!([{"httpOnly": true, "sameSite": "Strict", "secure": false}]), "{result:#}");
    assert_eq!(result["steps"]["refusalShown"], true, "the refused plan reached the page: {result:#}");

    // Each page with the daemon's data.
    let overview = text("overview");
    // The loop may be in a run as the page is read (the role then says so): either way the last
    // full sync succeeded and the last incremental was refused.
    let holder = ["duoTest\tholder\tsucceeded", "duoTest\tholder (running)\tsucceeded"];
    assert!(holder.iter().any(|h| overview.contains(h)) && overview.contains("refused"), "the last full sync succeeded, the last incremental was refused:\n{overview}");
    let provisioner = text("provisioner");
    for needle in ["delete group testGroup", "Approve exactly these removals", "groups", "users", "memberships", "[provisioner.duoTest]"] {
        assert!(provisioner.contains(needle), "missing {needle:?} on the provisioner page:\n{provisioner}");
    }
    assert!(text("runs").contains("full"), "{}", text("runs"));
    assert!(text("run").contains("Provisioner") && text("run").contains("duoTest"), "{}", text("run"));
    let users = text("duo_users");
    assert!(users.contains("mchyzer") && users.contains("kwilso"), "{users}");
    assert!(result["pages"]["duo_users_filtered"]["url"].as_str().unwrap().contains("not_enrolled=1"), "{result:#}");
    assert_eq!(result["steps"]["csv"]["status"], 200);
    assert!(result["steps"]["csv"]["text"].as_str().unwrap().starts_with("config_id,user_id,"), "{result:#}");
    let search = result["pages"]["search"]["text"].as_str().unwrap();
    assert!(search.contains("local:mchyzer") && !search.contains("local:kwilso"), "the search finds one user:\n{search}");
    for (link, status) in result["links"].as_object().unwrap() {
        assert_eq!(status, 200, "{link} does not answer");
    }
    assert!(result["links"].as_object().unwrap().len() >= 3, "{result:#}");

    // The explain page: the nested chain, the marker, the link; a retry of the subject from it,
    // refused without the token, run by the loop with the token and shown on the page.
    let explain = text("explain");
    for needle in ["app:sso:staff", "through app:sso:staff ⊃ ref:hr:nurses ⊃ nnurse", "the marker on folder app:sso (scope sub) includes it", "Eligible: nnurse is one of duoTest", "nnurse@example.edu", "created by duoprov"] {
        assert!(explain.contains(needle), "missing {needle:?} on the explain page:\n{explain}");
    }
    assert_eq!(result["steps"]["unauthenticatedRetry"], 401, "{result:#}");
    assert_eq!(result["steps"]["retryNoCsrf"], 403, "{result:#}");
    assert_eq!(result["steps"]["retryShown"], true, "the retry's outcome reached the page: {result:#}");
    let retried = text("after_retry");
    assert!(retried.contains("retry of subject local:nnurse requested"), "{retried}");
    let outcome = retried.lines().find(|l| l.contains("retry of subject local:nnurse: run")).unwrap_or_else(|| panic!("no outcome:\n{retried}"));
    assert!(outcome.contains("succeeded"), "{outcome}");
    assert!(text("runs").contains("console: retry of subject local:nnurse by console token"), "the run says what triggered it:\n{}", text("runs"));

    // The actions from the page: a CSRF-less post refused, the clicks logged and applied.
    assert_eq!(result["steps"]["noCsrf"], 403, "{result:#}");
    let after = text("after_actions");
    assert!(after.contains("console token\tfull sync requested") || after.contains("console token full sync requested"), "{after}");
    assert!(after.contains("approved the removals with digest"), "{after}");
    wait_for("the approved deletion", || handle.state(), |s| s.groups.len() == 1 && s.groups.iter().all(|g| g.name != "testGroup"), Duration::from_secs(30));

    // Only this origin was asked for anything; no console error (a CSP violation would be one).
    let requests: Vec<&str> = result["requests"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(r.starts_with(&format!("{base}/")), "a request to another origin: {r}");
    }
    assert_eq!(result["consoleErrors"], serde_json::json!([]), "{result:#}");
    for shot in ["login", "overview", "provisioner", "runs", "run", "duo_users", "explain", "after_retry", "after_actions"] {
        let file = shots.join(format!("{shot}.png"));
        let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(bytes > 1000, "no screenshot {}", file.display());
    }
    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");
}

/// Polls `path` on the console at `addr` until its page contains `needle`; the page.
fn wait_for_page(addr: &str, path: &str, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (code, page) = request(addr, "GET", path, "", "");
        if code == 200 && page.contains(needle) {
            return page;
        }
        assert!(Instant::now() < deadline, "{needle:?} not on {path} within {timeout:?}:\n{page}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `/readyz`'s status code and JSON once duoTest has a role (its details are open on loopback).
fn readyz(addr: &str) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = crate::daemon::get(addr, "/readyz");
        let ready: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        if ready["provisioners"]["duoTest"]["role"].as_str().is_some_and(|r| r != "starting") {
            return (code, ready);
        }
        assert!(Instant::now() < deadline, "duoTest has no role on /readyz within 20 s: {ready:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `duoprov status duoTest --json` in `dir`.
fn status_json(dir: &Path) -> Value {
    let (out, _) = run(dir, &["status", "duoTest", "--json"], 0);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_plan_outlives_the_daemon_shows_on_readyz_and_metrics_is_approved_after_a_restart_and_a_run_that_succeeds_clears_it() {
    let env = setup("[provisioner.duoTest.schedule]\npoll_interval = \"300ms\"\n[provisioner.duoTest.thresholds]\nmax_group_deletes = 0\n").await;
    let dir = env.dir.path();
    seed_registry(dir);
    // A folder the provisioner keeps selecting, so only the threshold refuses the deletion.
    run(dir, &["group", "add", "app:sso:staff", "--create-parents"], 0);
    run(dir, &["member", "add", "app:sso:staff", "mchyzer"], 0);
    run(dir, &["provision", "assign", "duoTest", "--folder", "app:sso", "--scope", "sub"], 0);
    let daemon = start_daemon_on(dir, "127.0.0.1:0", &[]);
    let handle = env.emulator.handle().clone();
    wait_for("the first full sync", || handle.state(), |s| s.users.len() == 2 && s.groups.len() == 2, Duration::from_secs(20));
    run(dir, &["provision", "unassign", "duoTest", "--folder", "app:duo"], 0);
    let page = wait_for_page(&daemon.status, "/provisioners/duoTest", "Approve exactly these removals", Duration::from_secs(20));
    let digest = page.split("name=\"digest\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("the digest in the form").to_owned();
    assert!(page.contains("delete group testGroup"), "{page}");
    // `/readyz` details and `/metrics` say a plan waits for a decision; the daemon stays ready
    // (it works: the operator decides).
    let (code, ready) = readyz(&daemon.status);
    let kept = &ready["provisioners"]["duoTest"]["refused_plan"];
    assert_eq!(code, 200, "a refused plan leaves the daemon ready: {ready:#}");
    assert_eq!((kept["digest"].as_str(), kept["kind"].as_str()), (Some(digest.as_str()), Some("incremental")), "the incremental run refused it: {ready:#}");
    let removal_count = kept["removal_count"].clone();
    assert!(kept["at_ms"].as_i64().is_some_and(|t| t > 0) && kept["reasons"][0].as_str().is_some_and(|r| r.contains("max_group_deletes")), "{ready:#}");
    assert!(crate::daemon::get(&daemon.status, "/metrics").1.contains("duoprov_refused_plan{provisioner=\"duoTest\"} 1"), "the gauge while it is kept");
    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");

    // Kept in the registry: `duoprov status` shows it with the daemon stopped.
    let status = status_json(dir);
    let refused = &status["refused_plan"];
    assert_eq!(refused["digest"], digest.as_str(), "{status:#}");
    assert!(refused["removals"].as_array().unwrap().iter().any(|r| r.as_str().is_some_and(|r| r.contains("delete group testGroup"))), "{status:#}");
    assert_eq!(refused["removal_count"], refused["removals"].as_array().unwrap().len(), "{status:#}");
    assert_eq!(refused["removal_count"], removal_count, "/readyz showed the kept plan's removal count");
    assert!(refused["reasons"][0].as_str().is_some_and(|r| r.contains("max_group_deletes")), "which rule refused it: {status:#}");
    let (text, _) = run(dir, &["status", "duoTest"], 0);
    assert!(text.contains(&format!("digest {digest}")) && text.contains(&format!("duoprov sync duoTest --approve {digest}")), "{text}");

    // The restarted daemon's console shows it and takes the approval.
    let daemon = start_daemon_on(dir, "127.0.0.1:0", &[]);
    assert_eq!(readyz(&daemon.status).1["provisioners"]["duoTest"]["refused_plan"]["digest"], digest.as_str(), "read from the registry after the restart");
    let (_, overview) = request(&daemon.status, "GET", "/", "", "");
    let cookie = session_cookie(&overview);
    let (_, page) = request(&daemon.status, "GET", "/provisioners/duoTest", &cookie, "");
    assert!(page.contains(&format!("<code class=\"digest\">{digest}</code>")) && page.contains("delete group testGroup"), "the refused plan after the restart:\n{page}");
    let (code, response) = request(
        &daemon.status,
        "POST",
        "/provisioners/duoTest/approve",
        &format!("{cookie}Sec-Fetch-Site: same-origin\r\n"),
        &format!("csrf={}&digest={digest}", csrf_of(&page)),
    );
    assert_eq!(code, 303, "{response}");
    wait_for("the approved deletion", || handle.state(), |s| s.groups.iter().all(|g| g.name != "testGroup"), Duration::from_secs(20));
    // The run that applied it succeeded: the refused plan no longer stands.
    wait_for_page(&daemon.status, "/provisioners/duoTest", "No refused plan", Duration::from_secs(20));
    let (code, ready) = readyz(&daemon.status);
    assert_eq!((code, &ready["provisioners"]["duoTest"]["refused_plan"]), (200, &Value::Null), "{ready:#}");
    assert!(crate::daemon::get(&daemon.status, "/metrics").1.contains("duoprov_refused_plan{provisioner=\"duoTest\"} 0"), "the gauge once cleared");
    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(status_json(dir)["refused_plan"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explain_page_read_live_shows_the_next_runs_operations_and_only_reads_duo() {
    // A one-hour poll: after the first full sync, the registry change below waits for the test.
    let env = setup("[provisioner.duoTest.schedule]\npoll_interval = \"1h\"\n").await;
    let dir = env.dir.path();
    seed_registry(dir);
    run(dir, &["member", "remove", "app:duo:testGroup", "kwilso"], 0);
    let daemon = start_daemon_on(dir, "127.0.0.1:0", &[]);
    let handle = env.emulator.handle().clone();
    wait_for("the first full sync", || handle.state(), |s| s.users.len() == 1 && s.groups.len() == 1, Duration::from_secs(20));
    wait_for_page(&daemon.status, "/provisioners/duoTest/runs", "succeeded", Duration::from_secs(20));
    run(dir, &["member", "add", "app:duo:testGroup", "kwilso"], 0);
    let before = handle.calls().last().map(|c| c.seq).unwrap_or(0);
    let state_before = handle.state();

    // kwilso's membership is the next run's to add: the page shows the operations.
    let (code, page) = request(&daemon.status, "GET", "/explain?provisioner=duoTest&subject=kwilso&live=1", "", "");
    assert_eq!(code, 200, "{page}");
    let next = page.split("Next run (").nth(1).unwrap_or_else(|| panic!("no next run on the page:\n{page}"));
    let pre = next.split("<pre>").nth(1).and_then(|p| p.split("</pre>").next()).unwrap_or_else(|| panic!("no operations:\n{next}"));
    assert!(pre.contains("+ user &quot;kwilso&quot;"), "the user to create:\n{pre}");
    assert!(pre.lines().any(|l| l.contains("+ kwilso (new) to testGroup (")), "the membership to add:\n{pre}");
    assert!(!next.split("<h2>").next().unwrap().contains("Nothing to do."), "{next}");
    // mchyzer is in step: nothing to do.
    let (code, page) = request(&daemon.status, "GET", "/explain?provisioner=duoTest&subject=mchyzer&live=1", "", "");
    assert_eq!(code, 200, "{page}");
    let next = page.split("Next run (").nth(1).unwrap_or_else(|| panic!("no next run on the page:\n{page}"));
    assert!(next.contains("<p class=\"ok\">Nothing to do.</p>") && !next.split("<h2>").next().unwrap().contains("<pre>"), "{next}");

    // Reading live only read Duo: every call since is a GET, and Duo is as it was.
    let calls = handle.calls_since(before);
    assert!(!calls.is_empty(), "the live explanation read Duo");
    let writes: Vec<String> = calls.iter().filter(|c| c.method != "GET").map(|c| format!("{} {}", c.method, c.path)).collect();
    assert_eq!(writes, Vec::<String>::new(), "live=1 wrote to Duo");
    let json = |d: &duoprov_emulator::TenantDump| serde_json::to_value(d).expect("the tenant as JSON");
    assert_eq!(json(&handle.state()), json(&state_before), "Duo changed");
    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");
}
