//! Test support: an in-memory scripted [`Transport`] (for paused-time tests), a tiny scripted
//! HTTP/1.1 server on 127.0.0.1 (for byte-level fault tests through reqwest), a clock that
//! follows tokio's clock, and a server-side signature check using duo-wire's verifier — so every
//! test also proves the client sent exactly the bytes it signed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use duoprov_duo::{
    Clock, DuoClient, DuoConfig, HttpRequest, HttpResponse, PacingConfig, RetryConfig, SignatureVariant, Transport,
    TransportError,
};
use duoprov_duo_wire::verify::{ReceivedRequest, host_candidates, parse_authorization, verify_signature};
use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const HOST: &str = "api-test.duosecurity.com";
pub const IKEY: &str = "DITESTTESTTESTTEST01";
pub const SKEY: &str = "sEcReTkEy0123456789sEcReTkEy0123456789Xy";

/// A recorded request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: tokio::time::Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Decoded parameters: query plus form body.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> =
            form_urlencoded::parse(self.query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        if self.header("content-type") == Some("application/x-www-form-urlencoded") {
            p.extend(form_urlencoded::parse(&self.body).map(|(k, v)| (k.into_owned(), v.into_owned())));
        }
        p
    }

    pub fn param(&self, k: &str) -> Option<String> {
        self.params().into_iter().find(|(kk, _)| kk == k).map(|(_, v)| v)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Verifies the signature as Duo (the emulator) would; returns the variant.
    pub fn verify(&self) -> Result<SignatureVariant, String> {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let auth = self.header("authorization").ok_or("no Authorization")?;
        let creds = parse_authorization(auth).map_err(|e| e.to_string())?;
        if creds.ikey != IKEY {
            return Err(format!("ikey {}", creds.ikey));
        }
        let hosts = host_candidates(self.header("host"), Some(HOST));
        let params = self.params();
        let form = self.header("content-type") == Some("application/x-www-form-urlencoded");
        let rr = ReceivedRequest {
            method: &self.method,
            path: &self.path,
            host_candidates: &hosts,
            params: &params,
            body: if form { b"" } else { &self.body },
            headers: &headers,
        };
        verify_signature(&rr, &creds, SKEY).map(|v| v.variant).map_err(|e| e.to_string())
    }

    /// The hex signature sent.
    pub fn signature(&self) -> String {
        self.header("authorization").and_then(|a| parse_authorization(a).ok()).map(|c| c.signature).unwrap_or_default()
    }
}

/// What the scripted side answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status and JSON body.
    Json(u16, String),
    /// Status, a declared Content-Length and a shorter body, then the connection closes.
    Truncated(u16, usize, String),
    /// A transport failure (in-memory only).
    Fail { detail: String, maybe_sent: bool },
    /// Answer after a delay (in-memory, on tokio's clock).
    After(Duration, Box<Reply>),
}

pub fn ok(response: serde_json::Value) -> Reply {
    Reply::Json(200, serde_json::json!({"stat": "OK", "response": response}).to_string())
}

pub fn page(items: serde_json::Value, next: Option<u64>) -> Reply {
    Reply::Json(
        200,
        serde_json::json!({"stat": "OK", "response": items, "metadata": {"next_offset": next, "prev_offset": null, "total_objects": null}})
            .to_string(),
    )
}

pub fn fail(status: u16, code: u32, message: &str, detail: Option<&str>) -> Reply {
    let mut v = serde_json::json!({"stat": "FAIL", "code": code, "message": message});
    if let Some(d) = detail {
        v["message_detail"] = serde_json::Value::String(d.to_owned());
    }
    Reply::Json(status, v.to_string())
}

pub fn user(id: &str, name: &str) -> serde_json::Value {
    serde_json::json!({"user_id": id, "username": name, "realname": "", "email": "", "status": "active",
        "aliases": {}, "groups": [], "phones": [], "created": 1, "last_login": null, "is_enrolled": false})
}

pub fn group(id: &str, name: &str) -> serde_json::Value {
    serde_json::json!({"group_id": id, "name": name, "desc": "", "status": "active"})
}

type Handler = Box<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

/// Shared script: the handler and the requests seen.
pub struct Script {
    handler: Handler,
    pub seen: Mutex<Vec<Seen>>,
}

impl Script {
    pub fn new(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Script { handler: Box::new(handler), seen: Mutex::new(Vec::new()) })
    }

    /// Replies in order, then 500 for anything further.
    pub fn queue(replies: Vec<Reply>) -> Arc<Self> {
        let q = Mutex::new(VecDeque::from(replies));
        Script::new(move |_, _| {
            q.lock().ok().and_then(|mut q| q.pop_front()).unwrap_or_else(|| fail(500, 50000, "script exhausted", None))
        })
    }

    fn answer(&self, s: Seen) -> Reply {
        let n = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.push(s.clone());
            seen.len() - 1
        };
        (self.handler)(&s, n)
    }

    /// Records `s` and answers it (for servers written in other test modules).
    pub fn answer_public(&self, s: Seen) -> Reply {
        self.answer(s)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn split_url(url: &str) -> (String, String, String) {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (host, pq) = rest.split_once('/').map(|(h, p)| (h.to_owned(), format!("/{p}"))).unwrap_or((rest.to_owned(), "/".into()));
    let (path, query) = pq.split_once('?').map(|(p, q)| (p.to_owned(), q.to_owned())).unwrap_or((pq.clone(), String::new()));
    (host, path, query)
}

/// In-memory transport driven by a [`Script`].
pub struct MemTransport(pub Arc<Script>);

impl Transport for MemTransport {
    fn send(&self, req: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let (host, path, query) = split_url(&req.url);
            let mut headers = req.headers.clone();
            headers.push(("Host".into(), host));
            let seen = Seen { method: req.method.clone(), path, query, headers, body: req.body.clone(), at: tokio::time::Instant::now() };
            let mut reply = self.0.answer(seen);
            loop {
                match reply {
                    Reply::After(d, r) => {
                        tokio::time::sleep(d).await;
                        reply = *r;
                    }
                    Reply::Json(status, body) => return Ok(HttpResponse { status, headers: vec![], body: body.into_bytes() }),
                    Reply::Truncated(status, _, body) => {
                        return Ok(HttpResponse { status, headers: vec![], body: body.into_bytes() });
                    }
                    Reply::Fail { detail, maybe_sent } => return Err(TransportError::new(detail, maybe_sent)),
                }
            }
        })
    }
}

/// A clock that starts at a fixed instant and follows tokio's (possibly paused) clock.
pub struct TokioClock {
    start_wall: time::OffsetDateTime,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Arc<Self> {
        Arc::new(TokioClock { start_wall: time::macros::datetime!(2026-11-29 08:00:00 UTC), start: tokio::time::Instant::now() })
    }
}

impl Clock for TokioClock {
    fn now(&self) -> time::OffsetDateTime {
        self.start_wall + self.start.elapsed()
    }
}

/// Test configuration: no pacing, zero backoff (unless a test sets its own).
pub fn config(url: Option<String>) -> DuoConfig {
    let mut c = DuoConfig::new(HOST, IKEY, SKEY.into());
    c.url = url;
    c.pacing = PacingConfig::unlimited();
    c.retry = RetryConfig { initial_backoff: Duration::ZERO, max_backoff: Duration::ZERO, max_jitter: Duration::ZERO, max_server_retries: 1 };
    c.request_timeout = Duration::from_secs(5);
    c.connect_timeout = Duration::from_secs(5);
    c
}

/// A client over the in-memory transport with the official retry schedule.
pub fn mem_client(script: &Arc<Script>, edit: impl FnOnce(&mut DuoConfig)) -> DuoClient {
    let mut c = config(None);
    c.retry = RetryConfig::default();
    edit(&mut c);
    DuoClient::with_transport_and_clock(c, Arc::new(MemTransport(script.clone())), TokioClock::new())
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// A scripted HTTP/1.1 server on 127.0.0.1; returns its base URL.
pub async fn serve(script: Arc<Script>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let script = script.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut lines = head.split("\r\n");
                let request_line = lines.next().unwrap_or_default().to_owned();
                let mut parts = request_line.split(' ');
                let method = parts.next().unwrap_or_default().to_owned();
                let target = parts.next().unwrap_or_default().to_owned();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = buf[head_end + 4..].to_vec();
                while body.len() < len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => body.extend_from_slice(&chunk[..n]),
                    }
                }
                let (path, query) =
                    target.split_once('?').map(|(p, q)| (p.to_owned(), q.to_owned())).unwrap_or((target.clone(), String::new()));
                let seen = Seen { method, path, query, headers, body, at: tokio::time::Instant::now() };
                let reply = script.answer(seen);
                let (status, declared, body) = match reply {
                    Reply::Json(s, b) => (s, b.len(), b),
                    Reply::Truncated(s, d, b) => (s, d, b),
                    Reply::Fail { .. } | Reply::After(..) => return,
                };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n{body}"
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

/// A client over real HTTP (reqwest) to the scripted server.
pub async fn http_client(script: &Arc<Script>, edit: impl FnOnce(&mut DuoConfig)) -> DuoClient {
    let url = serve(script.clone()).await;
    let mut c = config(Some(url));
    edit(&mut c);
    DuoClient::new(c).unwrap_or_else(|e| panic!("client: {e}"))
}
