//! `duoprov support-bundle` end to end: after a sync with the full traffic log on and with a
//! daemon serving its metrics behind a token, the bundle holds the configuration, status,
//! doctor, metrics and the log file it was given — and no secret key, token, signature, e-mail
//! address or phone number from any of them.

use std::io::Read as _;

use crate::daemon::start_daemon_on;
use crate::run;
use crate::sync::setup;

const TOKEN: &str = "bundle-metrics-token-7Yq2Lx9Pz4Kw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_support_bundle_holds_what_support_needs_and_no_secret_or_personal_data() {
    use std::os::unix::fs::PermissionsExt;
    let env = setup("log_http = \"always\"\nlog_http_bodies = \"full\"\n").await;
    let dir = env.dir.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(dir.join("metrics.token"), TOKEN).unwrap();
    std::fs::set_permissions(dir.join("metrics.token"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut config = std::fs::read_to_string(dir.join("duoprov.toml")).unwrap();
    config.push_str(&format!("\n[daemon]\nlisten = \"127.0.0.1:{port}\"\nmetrics_token_file = \"metrics.token\"\n"));
    std::fs::write(dir.join("duoprov.toml"), config).unwrap();
    run(dir, &["subject", "add", "asmith", "--name", "Alice Smith", "--login-id", "asmith", "--email", "alice.smith@example.edu"], 0);
    run(dir, &["group", "add", "app:duo:staff", "--create-parents"], 0);
    run(dir, &["member", "add", "app:duo:staff", "asmith"], 0);
    run(dir, &["provision", "assign", "duoTest", "--folder", "app:duo", "--scope", "sub"], 0);

    // The traffic log of a sync, with full bodies, as an operator would save it; plus a line of
    // a Duo user's phone as a full-body log of a tenant with phones carries it.
    let out = crate::duoprov(dir).args(["sync", "duoTest"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(log.contains("alice.smith@example.edu"), "the traffic log shows the e-mail address in full:\n{log}");
    log.push_str("{\"phones\":[{\"number\":\"+15555550123\",\"type\":\"mobile\"}]}\n");
    std::fs::write(dir.join("duoprov.log"), log).unwrap();

    let daemon = start_daemon_on(dir, &format!("127.0.0.1:{port}"), &[]);
    // Until the daemon leads the provisioner (its full sync is not due: `sync` just ran one).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    while !crate::daemon::get_with(&daemon.status, "/metrics", &bearer).1.contains("duoprov_runner_holding{provisioner=\"duoTest\"} 1") {
        assert!(std::time::Instant::now() < deadline, "the daemon did not lead duoTest within 30 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (out, _) = run(dir, &["support-bundle", "--log", "duoprov.log", "--output", "bundle.zip"], 0);
    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(out.contains("bundle.zip") && out.contains("redacted"), "{out}");

    let path = dir.join("bundle.zip");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "the bundle is private");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut files = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let name = f.name().unwrap().into_owned();
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        files.insert(name, text);
    }
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["README.txt", "configuration.txt", "doctor-duoTest.txt", "logs/duoprov.log", "metrics.txt", "status-duoTest.txt", "version.txt"],
        "{names:?}"
    );
    // What support needs is there…
    assert!(files["configuration.txt"].contains("[provisioner.duoTest]") && files["configuration.txt"].contains("file "), "{}", files["configuration.txt"]);
    assert!(files["status-duoTest.txt"].contains("exit code: 0") && files["status-duoTest.txt"].contains("full"), "{}", files["status-duoTest.txt"]);
    assert!(files["doctor-duoTest.txt"].contains("$ duoprov doctor duoTest") && files["doctor-duoTest.txt"].contains("Duo"), "{}", files["doctor-duoTest.txt"]);
    assert!(files["metrics.txt"].contains("duoprov_runner_holding{provisioner=\"duoTest\"} 1"), "{}", files["metrics.txt"]);
    let log = &files["logs/duoprov.log"];
    assert!(log.contains("***@example.edu") && log.contains("*********23"), "the log is kept, masked:\n{log}");
    assert!(files["version.txt"].starts_with("duoprov "), "{}", files["version.txt"]);
    // …and no secret or personal data, in any file.
    let basic = regex::Regex::new(r"(?i)authorization:?\s*(basic|bearer)\s+[A-Za-z0-9+/=]{8,}").unwrap();
    for (name, text) in &files {
        for secret in [crate::sync::SKEY, TOKEN, "alice.smith", "5555550123"] {
            assert!(!text.contains(secret), "{name} holds {secret}:\n{text}");
        }
        assert!(!basic.is_match(text), "{name} holds credentials:\n{text}");
    }

    // An existing file is never overwritten.
    let (_, err) = run(dir, &["support-bundle", "--output", "bundle.zip"], 1);
    assert!(err.contains("bundle.zip exists already"), "{err}");
}
