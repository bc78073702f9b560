//! HTTPS through the production transport (reqwest + rustls with the ring provider): a local TLS
//! server (rustls, blocking, in its own thread) with a certificate from a test CA. With that CA in
//! `ca_file` the call succeeds (and is signed as sent); without it the handshake is refused.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use duoprov_duo::{ErrorClass, ErrorKind, SignatureVariant};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::*;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// Serves `n` connections over TLS, answering each request from `script`.
fn tls_server(script: Arc<Script>, n: usize) -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(format!("{DATA}/test-server.pem"))
        .unwrap_or_else(|e| panic!("cert: {e}"))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("cert: {e}"));
    let key = PrivateKeyDer::from_pem_file(format!("{DATA}/test-server.key")).unwrap_or_else(|e| panic!("key: {e}"));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .unwrap_or_else(|e| panic!("tls config: {e}"));
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(tcp) = stream else { continue };
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else { continue };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i);
                }
                match tls.read(&mut chunk) {
                    Ok(0) | Err(_) => break None,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let mut lines = head.split("\r\n");
            let mut rl = lines.next().unwrap_or_default().split(' ');
            let method = rl.next().unwrap_or_default().to_owned();
            let target = rl.next().unwrap_or_default().to_owned();
            let headers: Vec<(String, String)> =
                lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))).collect();
            let (path, query) = target.split_once('?').map(|(p, q)| (p.to_owned(), q.to_owned())).unwrap_or((target.clone(), String::new()));
            let seen = Seen { method, path, query, headers, body: Vec::new(), at: tokio::time::Instant::now() };
            let body = match script.answer_public(seen) {
                Reply::Json(_, b) => b,
                _ => String::new(),
            };
            let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _ = tls.write_all(resp.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    format!("https://localhost:{port}")
}

#[tokio::test]
async fn https_with_ca_file_succeeds_and_without_it_fails() {
    let script = Script::new(|_, _| page(serde_json::json!([group("DG00000000000000001", "staff")]), None));
    let url = tls_server(script.clone(), 2);

    let mut c = config(Some(url.clone()));
    c.ca_file = Some(format!("{DATA}/test-ca.pem").into());
    let duo = duoprov_duo::DuoClient::new(c).unwrap_or_else(|e| panic!("{e}"));
    let groups = duo.list_groups().await;
    assert_eq!(groups.map(|g| g.len()), Ok(1));
    let seen = script.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].verify(), Ok(SignatureVariant::V5));

    let mut c = config(Some(url));
    c.retry.max_server_retries = 0;
    let duo = duoprov_duo::DuoClient::new(c).unwrap_or_else(|e| panic!("{e}"));
    let e = duo.list_groups().await.err();
    assert_eq!(e.as_ref().map(|e| e.class()), Some(ErrorClass::Transport), "{e:?}");
    assert!(matches!(e.map(|e| e.kind), Some(ErrorKind::Transport { maybe_sent: false, .. })));
    assert_eq!(script.seen().len(), 1, "no request got through without the CA");
}

#[tokio::test]
async fn pinned_roots_trust_exactly_their_file_and_duos_set_refuses_a_test_ca() {
    let script = Script::new(|_, _| page(serde_json::json!([group("DG00000000000000001", "staff")]), None));
    let url = tls_server(script.clone(), 2);

    // tls_roots = FILE holding the test CA: the server's certificate is trusted.
    let mut c = config(Some(url.clone()));
    c.tls_roots = duoprov_duo::TlsRoots::File(format!("{DATA}/test-ca.pem").into());
    let duo = duoprov_duo::DuoClient::new(c).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(duo.list_groups().await.map(|g| g.len()), Ok(1));
    assert_eq!(script.seen().len(), 1);

    // tls_roots = "duo": only the CAs Duo's official client pins; the test CA is not one of them.
    let mut c = config(Some(url));
    c.retry.max_server_retries = 0;
    c.tls_roots = duoprov_duo::TlsRoots::Duo;
    let duo = duoprov_duo::DuoClient::new(c).unwrap_or_else(|e| panic!("{e}"));
    let e = duo.list_groups().await.err();
    assert!(matches!(e.as_ref().map(|e| &e.kind), Some(ErrorKind::Transport { maybe_sent: false, .. })), "{e:?}");
    let message = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("certificate") && message.contains("pinned certificate authorities") && message.contains("tls_roots = \"system\""),
        "the refusal explains itself: {message}"
    );
    assert_eq!(script.seen().len(), 1, "no request got through with Duo's roots");
}
