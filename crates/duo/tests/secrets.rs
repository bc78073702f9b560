//! The secret key and the signatures never appear in any output: all tracing output at TRACE
//! level (with `log` records bridged in, so reqwest/hyper internals are included) is captured
//! while the client makes successful, retried, failing and erroring calls over real HTTP with the
//! traffic log on `always`; then the capture, and the `Debug`/`Display` of every error, the client
//! and the configuration, are searched for the secret key, every signature the server received
//! and every `Authorization` value. The traffic log itself is checked for its fields.

use std::io::Write;
use std::sync::{Arc, Mutex};

use duoprov_duo::{GroupFields, NewUser, TrafficLogMode};
use serde_json::json;

use crate::support::*;

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_or_signature_in_any_output() {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let cap = Capture(buf.clone());
    let installed = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || cap.clone())
        .try_init();
    assert!(installed.is_ok(), "this test must be the only one installing a global subscriber");

    let long_notes = "n".repeat(5000);
    let script = Script::new(move |s, n| match (s.method.as_str(), s.path.as_str(), n) {
        (_, _, 0) => fail(429, 42901, "Too Many Requests", None),
        ("POST", "/admin/v1/users", _) => ok(user("DU00000000000000001", "jdoe")),
        ("GET", "/admin/v1/users", _) => {
            let mut u = user("DU00000000000000001", "jdoe");
            u["notes"] = json!(long_notes.clone());
            page(json!([u]), None)
        }
        ("POST", "/admin/v1/groups", _) => fail(400, 40002, "Invalid request parameters", Some("name")),
        ("DELETE", _, _) => Reply::Json(500, "{}".into()),
        _ => fail(401, 40103, "Invalid signature in request credentials", None),
    });
    let duo = http_client(&script, |c| c.traffic_log = TrafficLogMode::Always).await;
    let mut texts: Vec<String> = Vec::new();
    let created = duo.create_user(&NewUser::new("jdoe").notes("x".repeat(25_000))).await;
    assert!(created.is_ok(), "{created:?}");
    assert!(duo.list_users().await.is_ok());
    for e in [
        duo.create_group(&GroupFields::named("g")).await.err(),
        duo.delete_group("DG00000000000000001").await.err(),
        duo.get_group("DG00000000000000001").await.err(),
    ] {
        let e = e.unwrap_or_else(|| panic!("expected an error"));
        texts.push(format!("{e}"));
        texts.push(format!("{e:?}"));
    }
    // A client that cannot connect at all.
    let mut c = config(Some("http://127.0.0.1:9".into()));
    c.traffic_log = TrafficLogMode::OnError;
    let dead = duoprov_duo::DuoClient::new(c.clone()).unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = dead.list_groups().await {
        texts.push(format!("{e} {e:?}"));
    }
    texts.push(format!("{duo:?} {c:?}"));

    let seen = script.seen();
    assert!(seen.len() >= 7, "{}", seen.len());
    let log = String::from_utf8_lossy(&buf.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    texts.push(log.clone());
    let everything = texts.join("\n");

    let mut needles: Vec<String> = vec![SKEY.to_owned()];
    for s in &seen {
        let sig = s.signature();
        assert!(sig.len() == 128, "{sig}");
        needles.push(sig.clone());
        needles.push(sig.to_uppercase());
        let auth = s.header("authorization").unwrap_or_default().to_owned();
        needles.push(auth.trim_start_matches("Basic ").to_owned());
    }
    for n in &needles {
        assert!(!everything.contains(n.as_str()), "secret material found in output");
    }
    // Half of the secret key is not there either (no partial leaks, e.g. truncation).
    assert!(!everything.contains(&SKEY[..20]));

    // The traffic log is there, with its fields.
    assert!(log.contains("duoprov_duo::traffic"), "no traffic log in output");
    assert!(log.contains("Authorization: *******"));
    assert!(log.contains("POST") && log.contains("/admin/v1/users") && log.contains("status=200") && log.contains("status=429"));
    assert!(log.contains("elapsed_ms="));
    // Request body: `{"notes":"` + 25 000 × x + `","username":"jdoe"}` = 25 030 characters, cut at 20 000.
    assert!(log.contains("[5030 more characters]"), "request body cut at 20 000 characters");
    assert!(log.contains(&"x".repeat(19_990)) && !log.contains(&"x".repeat(19_991)));
    // Response body: the page with 5 000 × n in `notes`, cut at 3 000 characters.
    assert!(log.contains(&"n".repeat(2_000)) && !log.contains(&"n".repeat(3_000)));
    assert!(log.contains("Duo HTTP call failed"));
    assert!(log.contains("transport error"), "connect failure logged on_error");
}
