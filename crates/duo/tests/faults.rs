//! Fault tests over real HTTP (reqwest → a scripted server on 127.0.0.1): every request is also
//! verified server-side with duo-wire's verifier, so these prove the bytes sent are the bytes
//! signed. Retries here use a zero backoff (the schedule itself is tested on paused time in
//! `backoff.rs`), so nothing sleeps.

use duoprov_duo::{ErrorClass, ErrorKind, SignatureVariant};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn v5_get_and_post_are_signed_as_sent() {
    let script = Script::new(|s, _| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/admin/v1/users") => page(json!([user("DU00000000000000001", "a b+c")]), None),
        ("POST", "/admin/v1/users") => ok(user("DU00000000000000002", "jdoe")),
        _ => fail(404, 40401, "Resource not found", None),
    });
    let duo = http_client(&script, |_| {}).await;
    let found = duo.get_user_by_username("a b+c é").await;
    assert!(matches!(found, Ok(Some(ref u)) if u.user_id == "DU00000000000000001"), "{found:?}");
    let created = duo.create_user(&duoprov_duo::NewUser::new("jdoe").realname("Jane Doé")).await;
    assert!(created.is_ok(), "{created:?}");
    let seen = script.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.verify(), Ok(SignatureVariant::V5), "{s:?}");
        assert!(s.header("date").is_some_and(|d| d.ends_with(" -0000")));
    }
    // GET: params in the query with %20, nothing in the body.
    assert_eq!(seen[0].query, "username=a%20b%2Bc%20%C3%A9");
    assert!(seen[0].body.is_empty());
    // POST: JSON body, Python-compatible bytes, no query.
    assert_eq!(seen[1].header("content-type"), Some("application/json"));
    assert_eq!(String::from_utf8_lossy(&seen[1].body), r#"{"realname":"Jane Do\u00e9","username":"jdoe"}"#);
    assert_eq!(seen[1].query, "");
}

#[tokio::test]
async fn v2_sha1_sends_form_bodies() {
    let script = Script::new(|_, _| ok(json!("")));
    let duo = http_client(&script, |c| c.signature = SignatureVariant::V2Sha1).await;
    let r = duo.add_user_to_group("DU00000000000000001", "DG00000000000000001").await;
    assert!(r.is_ok(), "{r:?}");
    let r = duo.delete_user("DU00000000000000001").await;
    assert!(r.is_ok(), "{r:?}");
    let seen = script.seen();
    assert_eq!(seen[0].verify(), Ok(SignatureVariant::V2Sha1));
    assert_eq!(seen[0].signature().len(), 40);
    assert_eq!(seen[0].header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(String::from_utf8_lossy(&seen[0].body), "group_id=DG00000000000000001");
    assert_eq!(seen[1].verify(), Ok(SignatureVariant::V2Sha1));
    assert_eq!(seen[1].method, "DELETE");
}

#[tokio::test]
async fn rate_limited_then_ok_is_retried_and_resigned() {
    let script = Script::queue(vec![fail(429, 42901, "Too Many Requests", None), ok(user("DU00000000000000001", "a"))]);
    let duo = http_client(&script, |_| {}).await;
    let u = duo.get_user("DU00000000000000001").await;
    assert!(matches!(u, Ok(Some(_))), "{u:?}");
    let seen = script.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.verify() == Ok(SignatureVariant::V5)));
}

#[tokio::test]
async fn duo_style_429_as_400_is_rate_limited() {
    let script = Script::queue(vec![fail(400, 42901, "Too Many Requests", None), ok(json!(""))]);
    let duo = http_client(&script, |_| {}).await;
    assert!(duo.delete_group("DG00000000000000001").await.is_ok());
    assert_eq!(script.seen().len(), 2);
}

#[tokio::test]
async fn server_error_retried_for_reads_not_for_creates() {
    let script = Script::queue(vec![fail(500, 50000, "oops", None), page(json!([]), None)]);
    let duo = http_client(&script, |_| {}).await;
    let r = duo.list_groups().await;
    assert_eq!(r.map(|g| g.len()), Ok(0));
    assert_eq!(script.seen().len(), 2);

    // A create that got a 500: read back (found) instead of repeating the create.
    let script = Script::new(|s, _| match s.method.as_str() {
        "POST" => fail(500, 50000, "oops", None),
        _ => page(json!([user("DU00000000000000009", "jdoe")]), None),
    });
    let duo = http_client(&script, |_| {}).await;
    let r = duo.create_user(&duoprov_duo::NewUser::new("jdoe")).await;
    assert_eq!(r.map(|u| u.user_id), Ok("DU00000000000000009".to_owned()));
    let methods: Vec<String> = script.seen().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, vec!["POST", "GET"]);
}

#[tokio::test]
async fn persistent_server_error_is_classified() {
    let script = Script::new(|_, _| Reply::Json(503, "<html>busy</html>".into()));
    let duo = http_client(&script, |_| {}).await;
    let e = duo.get_group("DG00000000000000001").await.err();
    assert!(matches!(e.as_ref().map(|e| &e.kind), Some(ErrorKind::Server { status: 503, code: None, message: None })), "{e:?}");
    assert_eq!(e.map(|e| e.call), Some("GET /admin/v2/groups/DG00000000000000001".to_owned()));
    // 1 attempt + max_server_retries (1).
    assert_eq!(script.seen().len(), 2);
}

#[tokio::test]
async fn truncated_body_is_a_transport_error_and_retried_for_reads() {
    let script = Script::queue(vec![
        Reply::Truncated(200, 500, r#"{"stat":"OK","response":[{"user_id":"#.into()),
        Reply::Truncated(200, 500, r#"{"stat":"OK","resp"#.into()),
    ]);
    let duo = http_client(&script, |_| {}).await;
    let e = duo.list_users().await.err();
    assert_eq!(e.as_ref().map(|e| e.class()), Some(ErrorClass::Transport), "{e:?}");
    assert_eq!(script.seen().len(), 2);
}

#[tokio::test]
async fn malformed_json_and_bad_envelopes_are_typed_errors() {
    let cases: Vec<(Reply, &str)> = vec![
        (Reply::Json(200, r#"{"stat":"OK","response":[{"user_id":"DU1"#.into()), "body"),
        (Reply::Json(200, "".into()), "body"),
        (Reply::Json(200, r#"{"response":[]}"#.into()), "stat"),
        (Reply::Json(200, r#"{"stat":"OK","response":{"a":1}}"#.into()), "response"),
        (Reply::Json(200, r#"{"stat":"OK","response":[{"user_id":"DU00000000000000001"}]}"#.into()), "response[0]"),
        (Reply::Json(200, r#"{"stat":"OK","response":[{"user_id":"du/../x","username":"a"}]}"#.into()), "response[0].user_id"),
        (Reply::Json(200, r#"{"stat":"OK","response":[{"user_id":12,"username":"a"}]}"#.into()), "response[0]"),
        (Reply::Json(200, r#"{"stat":"OK","response":[],"metadata":{"next_offset":"x"}}"#.into()), "metadata.next_offset"),
    ];
    for (reply, field) in cases {
        let script = Script::queue(vec![reply.clone()]);
        let duo = http_client(&script, |_| {}).await;
        let e = duo.list_users().await.err();
        match e.as_ref().map(|e| &e.kind) {
            Some(ErrorKind::Malformed { field: f, .. }) => assert_eq!(f, field, "{reply:?} → {e:?}"),
            other => panic!("{reply:?} gave {other:?}"),
        }
        assert_eq!(e.map(|e| e.call), Some("GET /admin/v1/users".to_owned()));
    }
    // A missing field names it.
    let script = Script::queue(vec![ok(json!({"user_id": "DU00000000000000001"}))]);
    let duo = http_client(&script, |_| {}).await;
    let e = duo.get_user("DU00000000000000001").await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("GET /admin/v1/users/DU00000000000000001") && e.contains("username"), "{e}");
}

#[tokio::test]
async fn fail_envelopes_and_statuses_are_classified() {
    let cases = vec![
        (fail(400, 40002, "Invalid request parameters", Some("username")), ErrorClass::InvalidParameter),
        (fail(401, 40103, "Invalid signature in request credentials", None), ErrorClass::Auth),
        (fail(403, 40301, "Access forbidden", None), ErrorClass::Forbidden),
        (fail(404, 40401, "Resource not found", None), ErrorClass::NotFound),
        (Reply::Json(302, "".into()), ErrorClass::UnexpectedStatus),
        (Reply::Json(201, r#"{"stat":"OK","response":{}}"#.into()), ErrorClass::UnexpectedStatus),
        (Reply::Json(200, r#"{"stat":"FAIL","code":40002,"message":"Invalid request parameters","message_detail":"name"}"#.into()), ErrorClass::InvalidParameter),
    ];
    for (reply, class) in cases {
        let script = Script::queue(vec![reply.clone()]);
        let duo = http_client(&script, |_| {}).await;
        let e = duo.modify_group("DG00000000000000001", &duoprov_duo::GroupFields::named("x")).await.err();
        assert_eq!(e.as_ref().map(|e| e.class()), Some(class), "{reply:?} → {e:?}");
        assert_eq!(script.seen().len(), 1, "{reply:?} must not be retried");
    }
    let script = Script::queue(vec![fail(400, 40002, "Invalid request parameters", Some("username"))]);
    let duo = http_client(&script, |_| {}).await;
    let e = duo.create_user(&duoprov_duo::NewUser::new("bad name")).await.err();
    assert!(matches!(e.map(|e| e.kind), Some(ErrorKind::InvalidParameter { field: Some(f), code: Some(40002), .. }) if f == "username"));
}

#[tokio::test]
async fn paging_follows_next_offset_at_max_page_size() {
    let script = Script::new(|s, _| {
        let offset: u64 = s.param("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
        let users: Vec<_> = (offset..(offset + 300).min(700)).map(|i| user(&format!("DU{i:018}"), &format!("u{i}"))).collect();
        page(json!(users), if offset + 300 < 700 { Some(offset + 300) } else { None })
    });
    let duo = http_client(&script, |_| {}).await;
    let progress = std::sync::Mutex::new(Vec::new());
    let users = duo
        .list_users_with_progress(&|p| progress.lock().unwrap_or_else(|e| e.into_inner()).push((p.pages, p.items)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(users.len(), 700);
    assert_eq!(*progress.lock().unwrap_or_else(|e| e.into_inner()), vec![(1, 300), (2, 600), (3, 700)]);
    assert_eq!(users[699].username, "u699");
    let seen = script.seen();
    let offsets: Vec<String> = seen.iter().filter_map(|s| s.param("offset")).collect();
    assert_eq!(offsets, vec!["0", "300", "600"]);
    assert!(seen.iter().all(|s| s.param("limit").as_deref() == Some("300")));
}

#[tokio::test]
async fn paging_edge_cases() {
    // Non-increasing next_offset.
    let script = Script::queue(vec![page(json!([group("DG00000000000000001", "a")]), Some(0))]);
    let duo = http_client(&script, |_| {}).await;
    let e = duo.list_groups().await.err();
    assert!(matches!(&e.as_ref().map(|e| &e.kind), Some(ErrorKind::Malformed { field, .. }) if field == "metadata.next_offset"), "{e:?}");
    // Repeated offset after a good page.
    let script = Script::queue(vec![
        page(json!([group("DG00000000000000001", "a")]), Some(100)),
        page(json!([group("DG00000000000000002", "b")]), Some(100)),
    ]);
    let duo = http_client(&script, |_| {}).await;
    let e = duo.list_groups().await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("did not increase (offset 100, next_offset 100)"), "{e}");
    // An empty page that promises more.
    let script = Script::queue(vec![page(json!([]), Some(100))]);
    let duo = http_client(&script, |_| {}).await;
    assert_eq!(duo.list_groups().await.err().map(|e| e.class()), Some(ErrorClass::MalformedResponse));
    // No metadata at all: one page.
    let script = Script::queue(vec![ok(json!([group("DG00000000000000001", "a")]))]);
    let duo = http_client(&script, |_| {}).await;
    assert_eq!(duo.list_groups().await.map(|g| g.len()), Ok(1));
    // Group members via v2 at 500 per page; a jump in next_offset is followed.
    let script = Script::queue(vec![
        page(json!([{"user_id": "DU00000000000000001", "username": "a"}]), Some(500)),
        page(json!([{"user_id": "DU00000000000000002"}]), None),
    ]);
    let duo = http_client(&script, |_| {}).await;
    let m = duo.list_group_members("DG00000000000000001").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].username, None);
    let seen = script.seen();
    assert_eq!(seen[0].path, "/admin/v2/groups/DG00000000000000001/users");
    assert_eq!(seen[0].param("limit").as_deref(), Some("500"));
    assert_eq!(seen[1].param("offset").as_deref(), Some("500"));
}

#[tokio::test]
async fn bad_ids_are_refused_before_sending() {
    let script = Script::queue(vec![]);
    let duo = http_client(&script, |_| {}).await;
    for r in [
        duo.get_user("../groups").await.map(|_| ()),
        duo.delete_user("DU1?x=1").await,
        duo.add_user_to_group("DU00000000000000001", "dg-lower").await,
        duo.remove_user_from_group("", "DG00000000000000001").await,
    ] {
        assert_eq!(r.err().map(|e| e.class()), Some(ErrorClass::Config));
    }
    assert!(script.seen().is_empty());
}

/// A port nobody listens on (bound, then dropped).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    l.local_addr().map(|a| a.port()).unwrap_or(1)
}

#[tokio::test]
async fn a_refused_connection_fails_at_once_naming_the_url_and_its_setting_without_retrying() {
    let port = closed_port();
    let mut c = config(Some(format!("http://127.0.0.1:{port}")));
    // The production schedule: 3 retries after 1, 2 and 4 s, which a refusal must not wait for.
    c.retry = duoprov_duo::RetryConfig::default();
    c.section = Some("duo.test".into());
    let duo = duoprov_duo::DuoClient::new(c).unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let e = duo.create_group(&duoprov_duo::GroupFields::named("x")).await.err();
    assert!(started.elapsed() < std::time::Duration::from_millis(900), "no retries: {:?}", started.elapsed());
    let message = e.as_ref().map(|e| e.to_string()).unwrap_or_default();
    assert!(matches!(e.map(|e| e.kind), Some(ErrorKind::Transport { maybe_sent: false, cause: duoprov_duo::FailureCause::Refused, .. })));
    assert!(
        message.contains(&format!("cannot connect to Duo at http://127.0.0.1:{port} (duo.test.url): connection refused"))
            && message.contains("duoprov emulator"),
        "{message}"
    );
    assert!(!message.contains(SKEY) && !message.contains("Some("), "{message}");
}

#[tokio::test]
async fn a_host_name_that_does_not_resolve_fails_at_once_naming_api_host() {
    // `.invalid` never resolves (RFC 6761).
    let mut c = config(None);
    c.api_host = "api-duoprov-test.invalid".into();
    c.retry = duoprov_duo::RetryConfig::default();
    c.section = Some("duo.prod".into());
    let duo = duoprov_duo::DuoClient::new(c).unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let message = duo.list_groups().await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "no retries: {:?}", started.elapsed());
    assert!(
        message.contains("cannot connect to Duo at https://api-duoprov-test.invalid (duo.prod.api_host): the host name does not resolve"),
        "{message}"
    );
}

#[tokio::test]
async fn https_to_a_plain_http_server_says_it_answered_plain_http_and_suggests_http() {
    // A plain-HTTP server answers a TLS hello as the garbage it is to it: 400, in plain text.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let url = format!("https://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut hello = [0u8; 512];
            let _ = sock.read(&mut hello).await;
            let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            let _ = sock.shutdown().await;
        }
    });
    let mut c = config(Some(url.clone()));
    c.retry = duoprov_duo::RetryConfig::default();
    c.section = Some("duo.emu".into());
    let duo = duoprov_duo::DuoClient::new(c).unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let message = duo.list_groups().await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(started.elapsed() < std::time::Duration::from_millis(900), "no retries: {:?}", started.elapsed());
    assert!(
        message.contains(&format!("cannot connect to Duo at {url} (duo.emu.url): the server answered in plain HTTP, not HTTPS"))
            && message.contains("http://"),
        "{message}"
    );
    assert!(!message.contains("InvalidContentType") && !message.contains("corrupt message"), "{message}");
}

#[tokio::test]
async fn requests_go_through_the_configured_proxy() {
    // The scripted server plays an HTTP proxy: it receives the absolute-form request target.
    let script = Script::new(|_, _| page(json!([]), None));
    let proxy = serve(script.clone()).await;
    let mut c = config(Some("http://127.0.0.1:1".into()));
    c.proxy = Some(proxy);
    let duo = duoprov_duo::DuoClient::new(c).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(duo.list_groups().await.map(|g| g.len()), Ok(0));
    let seen = script.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "http://127.0.0.1:1/admin/v1/groups");
    assert_eq!(seen[0].query, "limit=500&offset=0");
    assert!(seen[0].header("authorization").is_some_and(|a| a.starts_with("Basic ")));
}

/// Answers every request with Duo's 401/40103 and a `Date` header.
struct Refusing(String);

impl duoprov_duo::Transport for Refusing {
    fn send(&self, _: duoprov_duo::HttpRequest) -> futures::future::BoxFuture<'_, Result<duoprov_duo::HttpResponse, duoprov_duo::TransportError>> {
        Box::pin(async move {
            Ok(duoprov_duo::HttpResponse {
                status: 401,
                headers: vec![("Date".into(), self.0.clone())],
                body: br#"{"stat":"FAIL","code":40103,"message":"Invalid signature in request credentials"}"#.to_vec(),
            })
        })
    }
}

/// A clock fixed at one instant.
struct Fixed(time::OffsetDateTime);

impl duoprov_duo::Clock for Fixed {
    fn now(&self) -> time::OffsetDateTime {
        self.0
    }
}

#[tokio::test]
async fn a_401_names_the_secret_key_the_signed_host_against_the_url_and_the_clock_skew() {
    let duo_date = "Sun, 29 Nov 2026 08:00:00 -0000";
    let local = time::macros::datetime!(2026-11-29 08:00:00 UTC);
    let message = |url: Option<&str>, skew_secs: i64| {
        let mut c = config(url.map(str::to_owned));
        c.section = Some("duo.prod".into());
        let clock = std::sync::Arc::new(Fixed(local + time::Duration::seconds(skew_secs)));
        let duo = duoprov_duo::DuoClient::with_transport_and_clock(c, std::sync::Arc::new(Refusing(duo_date.into())), clock)
            .unwrap_or_else(|e| panic!("{e}"));
        async move { duo.list_groups().await.err().map(|e| e.to_string()).unwrap_or_default() }
    };
    // Signed for the Duo host, sent to an emulator on loopback; this clock 10 minutes ahead.
    let m = message(Some("http://127.0.0.1:8443"), 600).await;
    assert!(m.contains("authentication failed (HTTP 401, code 40103): Invalid signature in request credentials"), "{m}");
    assert!(m.contains("duo.prod.secret_key_file") && m.contains(IKEY), "{m}");
    assert!(
        m.contains(&format!("signed for duo.prod.api_host \"{HOST}\" but sent to http://127.0.0.1:8443"))
            && m.contains("duo.prod.api_host = \"127.0.0.1\""),
        "{m}"
    );
    assert!(m.contains("this computer's clock is 10 min 0 s ahead of the server's"), "{m}");
    // Duo itself, this clock 2 hours behind.
    let m = message(None, -7200).await;
    assert!(m.contains(&format!("duo.prod.api_host \"{HOST}\" is the API hostname")), "{m}");
    assert!(m.contains("2 h 0 min behind the server's"), "{m}");
    // Clocks within a minute: said to be no clock problem.
    let m = message(None, 20).await;
    assert!(m.contains("not clock skew") && !m.contains("ahead of") && !m.contains("behind"), "{m}");
    for m in [message(Some("http://127.0.0.1:8443"), 600).await, message(None, -7200).await] {
        assert!(!m.contains(SKEY) && !m.contains("Some(") && !m.contains("Basic "), "{m}");
    }
}

/// Log lines written while the guard lives, on this thread.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn each_retry_of_a_server_error_or_a_429_is_one_warning_naming_the_call_the_cause_and_the_wait() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt().with_max_level(tracing::Level::WARN).with_ansi(false).with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let script = Script::queue(vec![fail(503, 50301, "Service Unavailable", None), fail(500, 50000, "Internal", None), page(json!([]), None)]);
    let duo = mem_client(&script, |c| {
        c.retry.initial_backoff = std::time::Duration::ZERO;
        c.retry.max_backoff = std::time::Duration::ZERO;
        c.retry.max_jitter = std::time::Duration::ZERO;
        c.retry.max_server_retries = 3;
    });
    // A zero wait allows one immediate retry: the second failure is final.
    let e = duo.list_groups().await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("HTTP 500"), "{e}");
    let text = String::from_utf8_lossy(&lines.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains("GET /admin/v1/groups: server error (HTTP 503, code 50301): Service Unavailable; retry 1 of 3 in 0.0 s"),
        "{text}"
    );

    // A 429 is retried too, and said so.
    lines.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let script = Script::queue(vec![fail(429, 42901, "Too Many Requests", None), page(json!([]), None)]);
    let duo = mem_client(&script, |c| {
        c.retry.initial_backoff = std::time::Duration::ZERO;
        c.retry.max_backoff = std::time::Duration::ZERO;
        c.retry.max_jitter = std::time::Duration::ZERO;
    });
    assert!(duo.list_groups().await.is_ok());
    let text = String::from_utf8_lossy(&lines.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("GET /admin/v1/groups: Duo asked to slow down (HTTP 429); attempt 2 in 0.0 s"), "{text}");
}
