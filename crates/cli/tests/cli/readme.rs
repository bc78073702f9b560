//! README.md's Quick start, run as written: the commands are read from the fenced ```sh blocks
//! under its `## Quick start` heading (so the document cannot drift from what works) and run one
//! by one through `sh` against the built binary in a temporary folder. The emulator command,
//! which the README sends to the background with `&`, is started in the background by the test
//! itself (so the test holds its process and stops it); the only change made to it is a free port
//! (`--listen 127.0.0.1:0`) instead of the default 8443, which tests running in parallel would
//! share, and the configuration's emulator URL follows that port. The Quick start starts in the
//! repository (it copies `examples/hr.json`) and mirrors that file as a source.

use std::io::{BufRead as _, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The commands of the ```sh blocks between `## Quick start` and the next `## ` heading, one a
/// line, blank lines dropped.
fn quick_start_commands(readme: &str) -> Vec<String> {
    let start = readme.find("\n## Quick start\n").expect("README.md has a `## Quick start` section");
    let rest = &readme[start + 1..];
    let section = match rest[3..].find("\n## ") {
        Some(end) => &rest[..end + 3],
        None => rest,
    };
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in section.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_sh = !in_sh && trimmed == "```sh";
            continue;
        }
        if in_sh && !trimmed.is_empty() && !trimmed.starts_with('#') {
            commands.push(trimmed.to_owned());
        }
    }
    commands
}

/// An emulator started from the README's command line, stopped when dropped.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn shell(bin: &Path, dir: &Path, function: &str, line: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{function}\ncd \"$DUOPROV_README_DIR\" || exit 97\n{line}\nrc=$?\npwd > \"$DUOPROV_README_PWD\"\nexit $rc\n"))
        .env("DUOPROV_README_BIN", bin)
        .env("DUOPROV_README_DIR", dir)
        .env_remove("DUOPROV_CONFIG")
        .env_remove("DUOPROV_REGISTRY_URL")
        .env_remove("RUST_LOG");
    cmd
}

/// Starts the emulator line in the background, waits (polling, with a deadline) until it
/// announces its address and accepts connections, and returns it with its base URL.
fn start_emulator(bin: &Path, dir: &Path, line: &str, pwd_file: &Path) -> (Background, String) {
    let mut child = shell(bin, dir, "duoprov() { exec \"$DUOPROV_README_BIN\" \"$@\" --listen 127.0.0.1:0; }", line)
        .env("DUOPROV_README_PWD", pwd_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the emulator");
    let stdout = child.stdout.take().expect("the emulator's standard output");
    let child = Background(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).expect("the emulator announces its address within 30 s");
    let url = first.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line from the emulator: {first:?}")).to_owned();
    let addr = url.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the emulator at {url} accepts no connection within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, url)
}

#[test]
fn the_readme_quick_start_with_the_emulator_reaches_a_synced_duo_whose_next_plan_is_empty() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md");
    let commands = quick_start_commands(&readme);
    assert!(commands.iter().any(|c| c.starts_with("duoprov init --with-emulator")), "{commands:#?}");
    assert!(commands.iter().any(|c| c.starts_with("duoprov emulator ")), "{commands:#?}");
    let sync_at = commands.iter().position(|c| c.starts_with("duoprov sync duoTest")).expect("the Quick start syncs duoTest");

    let bin = assert_cmd::cargo::cargo_bin("duoprov");
    let root = tempfile::tempdir().unwrap();
    let pwd_file = root.path().join("pwd");
    // The Quick start begins in the repository (it builds there and copies examples/hr.json).
    let mut dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut emulator = None;
    let mut plans_before_sync = Vec::new();
    let mut plans_after_sync = Vec::new();
    for (i, line) in commands.iter().enumerate() {
        if line.starts_with("cargo build") || line.starts_with("alias duoprov=") {
            continue; // the test runs the binary cargo built for it
        }
        let line = line.replace("/tmp/duoprov-demo", &root.path().join("duoprov-demo").display().to_string());
        if line.starts_with("duoprov emulator ") {
            let foreground = match line.split_once(" &") {
                Some((command, rest)) if rest.trim().is_empty() || rest.trim_start().starts_with('#') => command.to_owned(),
                _ => line.clone(),
            };
            let (child, url) = start_emulator(&bin, &dir, &foreground, &pwd_file);
            let config = dir.join("duoprov.toml");
            let text = std::fs::read_to_string(&config).expect("init wrote duoprov.toml before the emulator starts");
            assert!(text.contains("url = \"http://127.0.0.1:8443\""), "{text}");
            std::fs::write(&config, text.replace("http://127.0.0.1:8443", &url)).unwrap();
            emulator = Some(child);
            continue;
        }
        let out = shell(&bin, &dir, "duoprov() { \"$DUOPROV_README_BIN\" \"$@\"; }", &line)
            .env("DUOPROV_README_PWD", &pwd_file)
            .output()
            .expect("run sh");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "README command failed: {line}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        dir = PathBuf::from(std::fs::read_to_string(&pwd_file).unwrap().trim());
        if line.starts_with("duoprov sync ") || line.starts_with("duoprov plan ") {
            // Not a terminal: no progress bar.
            assert!(!stderr.contains("read Duo users") && !stderr.contains("create users"), "{line}: {stderr}");
        }
        if line.starts_with("duoprov plan duoTest") {
            if i > sync_at { &mut plans_after_sync } else { &mut plans_before_sync }.push(stdout);
        }
    }
    assert!(emulator.is_some(), "the emulator was started");
    // The source's file reached the registry and Duo.
    assert!(commands.iter().any(|c| c.starts_with("duoprov source sync hr")), "the Quick start mirrors a source: {commands:#?}");
    let out = super::duoprov(&dir).args(["member", "list", "hr:staff", "--json"]).output().unwrap();
    let members = String::from_utf8_lossy(&out.stdout);
    assert!(members.contains("10001") && members.contains("10002"), "{members}");
    // Read back from Duo: the source's people are Duo users now.
    super::run(&dir, &["load-users", "duoTest"], 0);
    let (users, _) = super::run(&dir, &["--json", "report", "duoTest", "users"], 0);
    assert!(users.contains("jdoe") && users.contains("asmith"), "the source's people are in Duo: {users}");
    assert!(!plans_after_sync.is_empty(), "the Quick start shows a plan after its sync");
    for plan in &plans_after_sync {
        assert!(plan.contains("Plan for duoTest: nothing to do; Duo matches the registry."), "{plan}");
    }
    // And the plan's JSON agrees: no operation, no held object.
    let out = super::duoprov(&dir).args(["--json", "plan", "duoTest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let saved: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(saved["plan"]["ops"], serde_json::json!([]), "{saved:#}");
    assert_eq!(saved["plan"]["errors"], serde_json::json!([]), "{saved:#}");
    // The empty plan is not an empty selection: the plan before the sync created the group and
    // both users.
    assert!(!plans_before_sync.is_empty(), "the Quick start shows a plan before its sync");
    for plan in &plans_before_sync {
        for name in ["testGroup", "mchyzer", "kwilso"] {
            assert!(plan.contains(name), "{name} not in the plan before the sync:\n{plan}");
        }
    }
}
