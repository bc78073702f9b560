//! Bad input gets Duo's error envelope with the right code, never a panic or a hang, and leaves
//! the state unchanged: unparsable bodies, wrong content types, oversized requests, unknown paths
//! and methods, malformed ids, garbage credentials, raw protocol junk.

use duoprov_duo_wire::SignatureVariant;
use serde_json::json;

use crate::support::{self, Client, IKEY, Opts, SKEY};

async fn state_json(emu: &duoprov_emulator::RunningEmulator) -> String {
    serde_json::to_string(&emu.handle().state()).unwrap_or_default()
}

#[tokio::test]
async fn unparsable_and_mistyped_bodies_are_40002_and_change_nothing() {
    let emu = support::spawn(|_| {}).await;
    let c = Client::new(&emu);
    c.user("keep").await;
    let before = state_json(&emu).await;
    let cases: Vec<(Option<&str>, &[u8])> = vec![
        (None, b"{\"username\": \"x\""),
        (None, b"[\"username\"]"),
        (None, b"\xff\xfe"),
        (Some("text/plain"), b"username=x"),
        (Some("application/xml"), b"<username>x</username>"),
        (None, b"{\"username\": [\"a\", \"b\"]}"),
        (None, b"{\"username\": \"y\", \"status\": {\"nested\": 1}}"),
    ];
    for (ct, body) in cases {
        let opts = Opts {
            content_type: ct.map(str::to_owned),
            body: Some(body.to_vec()),
            ..Opts::default()
        };
        let r = c.call_opts("POST", "/admin/v1/users", &[], &opts).await;
        assert_eq!(
            (r.status, r.code()),
            (400, Some(40002)),
            "{ct:?} {}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
    }
    assert_eq!(state_json(&emu).await, before);
}

#[tokio::test]
async fn oversized_requests_are_413() {
    let emu = support::spawn(|s| s.max_body_bytes = 1024).await;
    let c = Client::new(&emu);
    let big = "x".repeat(4096);
    let r = c
        .call(
            "POST",
            "/admin/v1/users",
            &[("username", "big"), ("notes", &big)],
        )
        .await;
    assert_eq!((r.status, r.code()), (413, Some(41301)));
    assert!(emu.handle().state().users.is_empty());
    // A chunked body with no Content-Length is capped too.
    let chunk = format!("{:x}\r\n{}\r\n0\r\n\r\n", 2048, "y".repeat(2048));
    let req = format!(
        "POST /admin/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}"
    );
    let resp = support::raw(&emu, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(resp.contains("\"code\":41301"), "{resp}");
}

#[tokio::test]
async fn unknown_paths_methods_and_ids() {
    let emu = support::spawn(|_| {}).await;
    let c = Client::new(&emu);
    for (method, path, status, code) in [
        ("GET", "/admin/v1/nothing", 404, 40401),
        ("GET", "/", 404, 40401),
        ("GET", "/admin/v3/users", 404, 40401),
        ("PUT", "/admin/v1/users", 405, 40501),
        ("PATCH", "/admin/v1/groups/DGAAAAAAAAAAAAAAAAAA", 405, 40501),
        (
            "DELETE",
            "/admin/v2/groups/DGAAAAAAAAAAAAAAAAAA",
            405,
            40501,
        ),
        ("GET", "/admin/v1/users/not-an-id", 404, 40401),
        ("GET", "/admin/v1/users/DGAAAAAAAAAAAAAAAAAA", 404, 40401),
        ("POST", "/admin/v1/users/du-lowercase", 404, 40401),
        ("DELETE", "/admin/v1/users/%00%01", 404, 40401),
        ("GET", "/admin/v2/groups/x/users", 404, 40401),
        ("GET", "/admin/v1/admins/DUAAAAAAAAAAAAAAAAAA", 404, 40401),
    ] {
        let r = c.call(method, path, &[]).await;
        assert_eq!(
            (r.status, r.code()),
            (status, Some(code)),
            "{method} {path}"
        );
        assert_eq!(r.json["stat"], "FAIL");
    }
    let r = c
        .call(
            "POST",
            "/admin/v1/users/DUAAAAAAAAAAAAAAAAAA/groups",
            &[("group_id", "nope")],
        )
        .await;
    assert_eq!(
        (r.status, r.json["message_detail"].clone()),
        (400, json!("group_id"))
    );
    assert_eq!(emu.handle().counts().get("unknown", 404), 3);
    assert_eq!(emu.handle().counts().get("unknown", 405), 3);
}

#[tokio::test]
async fn garbage_credentials_are_401() {
    let emu = support::spawn(|_| {}).await;
    for auth in [
        "",
        "Basic",
        "Bearer abc",
        "Basic !!!notbase64",
        "Basic Zm9vYmFy",
        "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6eHl6",
    ] {
        let header = if auth.is_empty() {
            String::new()
        } else {
            format!("Authorization: {auth}\r\n")
        };
        let req = format!(
            "GET /admin/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nDate: Tue, 21 Aug 2012 17:29:18 -0000\r\n{header}Connection: close\r\n\r\n"
        );
        let resp = support::raw(&emu, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 401"), "{auth:?}: {resp}");
        assert!(resp.contains("\"code\":40101"), "{auth:?}: {resp}");
    }
    // A well-formed client is still served.
    let c = Client::with(&emu, IKEY, SKEY, SignatureVariant::V2Sha1);
    let ok = c.call("GET", "/admin/v1/users", &[]).await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn protocol_junk_never_hangs_or_kills_the_server() {
    let emu = support::spawn(|s| s.body_timeout_secs = 1).await;
    for junk in [
        &b"\x00\x01\x02 garbage\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /admin/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n",
    ] {
        let _ = support::raw(&emu, junk).await;
    }
    // A body that never arrives is answered, not waited for forever.
    let slow = b"POST /admin/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50\r\nConnection: close\r\n\r\n{\"user";
    let resp = support::raw(&emu, slow).await;
    assert!(
        resp.starts_with("HTTP/1.1 400") && resp.contains("40002"),
        "{resp}"
    );
    let c = Client::new(&emu);
    assert_eq!(
        c.call("GET", "/admin/v1/users", &[]).await.status,
        200,
        "still serving"
    );
}

#[tokio::test]
async fn bulk_rejects_bad_operations_without_side_effects() {
    let emu = support::spawn(|_| {}).await;
    let c = Client::new(&emu);
    for ops in [
        "not json",
        "{}",
        "[]",
        r#"[{"method":"GET","path":"/admin/v1/users","body":{}}]"#,
        r#"[{"method":"POST","path":"/admin/v1/groups","body":{"name":"g"}}]"#,
        r#"[{"path":"/admin/v1/users"}]"#,
        r#"[{"method":"POST","path":"/admin/v1/users","body":"{not an object"}]"#,
    ] {
        let r = c
            .call("POST", "/admin/v1/bulk", &[("operations", ops)])
            .await;
        let code = r.code().or_else(|| r.response()[0]["code"].as_u64());
        assert_eq!(
            code,
            Some(40002),
            "{ops}: {}",
            String::from_utf8_lossy(&r.raw)
        );
    }
    assert!(emu.handle().state().groups.is_empty() && emu.handle().state().users.is_empty());
    let r = c
        .call(
            "POST",
            "/admin/v1/users/bulk_create",
            &[("users", r#"[{"username":"a"},{"realname":"no username"}]"#)],
        )
        .await;
    assert_eq!(
        (r.status, r.json["message_detail"].clone()),
        (400, json!("users[1].username"))
    );
    assert!(
        emu.handle().state().users.is_empty(),
        "bulk_create is all or nothing"
    );
}

#[tokio::test]
async fn a_client_that_stops_mid_request_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let emu = support::spawn(|s| s.idle_timeout_secs = 1).await;
    let mut s = tokio::net::TcpStream::connect(emu.addr())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(b"GET /admin/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = Vec::new();
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "the server never closed the half-sent request"
    );
    let c = Client::new(&emu);
    assert_eq!(c.call("GET", "/admin/v1/users", &[]).await.status, 200);
}
