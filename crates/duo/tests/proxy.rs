//! Through an HTTP proxy: the production transport sends every request to the configured proxy
//! with basic authentication built from the URL's user name (percent-decoded) and the password
//! held apart from the URL (`proxy_password`), as a secret.

use std::io::{Read, Write};
use std::net::TcpListener;

use base64::Engine as _;
use duoprov_duo::{DuoClient, DuoConfig};

/// A one-connection HTTP proxy that answers one group listing and hands back the request head.
fn proxy() -> (u16, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
        let mut head = Vec::new();
        let mut chunk = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        let body = r#"{"stat":"OK","response":[{"group_id":"DG00000000000000001","name":"staff"}],"metadata":{"next_offset":null}}"#;
        let reply = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        let _ = conn.write_all(reply.as_bytes());
        String::from_utf8_lossy(&head).into_owned()
    });
    (port, handle)
}

#[tokio::test]
async fn a_proxy_gets_basic_auth_from_the_url_user_and_the_separate_password() {
    let (port, seen) = proxy();
    let mut cfg = DuoConfig::new("127.0.0.1", "DIXXXXXXXXXXXXXXXXXX", "proxy-test-skey".into());
    // Plain HTTP to a loopback "Duo" that is never contacted directly: the proxy answers.
    cfg.url = Some("http://127.0.0.1:9".into());
    cfg.proxy = Some(format!("http://bob%40corp@127.0.0.1:{port}"));
    cfg.proxy_password = Some("pa:ss word-Zq81".into());
    assert!(!format!("{cfg:?}").contains("Zq81"), "the proxy password is never in Debug");
    let duo = DuoClient::new(cfg).unwrap_or_else(|e| panic!("client: {e}"));
    let groups = duo.list_groups().await.unwrap_or_else(|e| panic!("list through the proxy: {e}"));
    assert_eq!(groups[0].name, "staff");
    let head = seen.join().unwrap_or_else(|_| panic!("proxy thread"));
    assert!(head.starts_with("GET http://127.0.0.1:9/admin/v1/groups?"), "sent to the proxy in absolute form:\n{head}");
    let want = format!("proxy-authorization: basic {}", base64::engine::general_purpose::STANDARD.encode("bob@corp:pa:ss word-Zq81"));
    assert!(head.to_ascii_lowercase().contains(&want.to_ascii_lowercase()), "no basic auth for bob@corp:\n{head}");
}
