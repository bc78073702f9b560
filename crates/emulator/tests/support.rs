//! Test support: fixed test integrations, spawning an emulator on 127.0.0.1:0, a small signed
//! Duo client built on `duoprov-duo-wire` (so these tests do not depend on duoprov's own client),
//! and a raw HTTP/1.1 helper for requests no well-behaved client would send.

#![allow(dead_code)]

use duoprov_duo_wire::SignatureVariant;
use duoprov_duo_wire::params::prepare;
use duoprov_duo_wire::sign::{Request, sign_request};
use duoprov_emulator::{Emulator, Grants, Integration, RunningEmulator, Settings};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Full-grant test integration (Duo's documented example key pair).
pub const IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
/// Its secret key.
pub const SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
/// Read-only integration.
pub const RO_IKEY: &str = "DIREADONLY0000000001";
/// Its secret key.
pub const RO_SKEY: &str = "readonlyreadonlyreadonlyreadonlyreadonly";
/// Integration without grants.
pub const NG_IKEY: &str = "DINOGRANTS000000001A";
/// Its secret key.
pub const NG_SKEY: &str = "nograntsnograntsnograntsnograntsnograntsx";

/// The three test integrations.
pub fn integrations() -> Vec<Integration> {
    vec![
        Integration::new(IKEY, SKEY),
        Integration::new(RO_IKEY, RO_SKEY).with_grants(Grants {
            read_resource: true,
            ..Grants::none()
        }),
        Integration::new(NG_IKEY, NG_SKEY).with_grants(Grants::none()),
    ]
}

/// Test settings: rate limits off, deterministic ids.
pub fn test_settings() -> Settings {
    let mut s = Settings::default();
    s.rate_limits.enabled = false;
    s.id_seed = Some(42);
    s
}

/// Spawns an emulator on 127.0.0.1:0 with the test integrations.
pub async fn spawn(configure: impl FnOnce(&mut Settings)) -> RunningEmulator {
    let mut s = test_settings();
    configure(&mut s);
    let mut b = Emulator::builder().settings(s);
    for i in integrations() {
        b = b.integration(i);
    }
    match b.spawn_on("127.0.0.1:0").await {
        Ok(e) => e,
        Err(e) => panic!("spawn: {e}"),
    }
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// Parsed JSON body (`Value::Null` when not JSON).
    pub json: Value,
    /// Raw body.
    pub raw: Vec<u8>,
}

impl Reply {
    /// `response` of an OK envelope.
    pub fn response(&self) -> &Value {
        &self.json["response"]
    }

    /// `code` of a FAIL envelope.
    pub fn code(&self) -> Option<u64> {
        self.json["code"].as_u64()
    }
}

/// Per-call options.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// Date string to sign and send (now when absent).
    pub date: Option<String>,
    /// Send the date as `X-Duo-Date` (signed in the v5 header hash) instead of `Date`.
    pub x_duo_date: bool,
    /// Content type to send instead of the natural one.
    pub content_type: Option<String>,
    /// Body to sign and send instead of the natural one.
    pub body: Option<Vec<u8>>,
}

/// A signed client for one integration and variant.
#[derive(Clone)]
pub struct Client {
    base: String,
    host: String,
    ikey: String,
    skey: String,
    variant: SignatureVariant,
    http: reqwest::Client,
}

impl Client {
    /// A client for the full-grant integration using v5.
    pub fn new(emu: &RunningEmulator) -> Self {
        Self::with(emu, IKEY, SKEY, SignatureVariant::V5)
    }

    /// A client with a given integration and variant.
    pub fn with(emu: &RunningEmulator, ikey: &str, skey: &str, variant: SignatureVariant) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = match reqwest::Client::builder().build() {
            Ok(c) => c,
            Err(e) => panic!("reqwest client: {e}"),
        };
        Self {
            base: emu.base_url(),
            host: "127.0.0.1".into(),
            ikey: ikey.into(),
            skey: skey.into(),
            variant,
            http,
        }
    }

    /// Calls `method path` with string parameters.
    pub async fn call(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Reply {
        self.call_opts(method, path, params, &Opts::default()).await
    }

    /// Calls with options.
    pub async fn call_opts(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        opts: &Opts,
    ) -> Reply {
        let mut prepared = prepare(self.variant, method, params);
        if let Some(body) = &opts.body {
            prepared.body = body.clone();
        }
        let date = opts
            .date
            .clone()
            .unwrap_or_else(duoprov_duo_wire::date::now);
        let xduo: Vec<(&str, &str)> = if opts.x_duo_date {
            vec![("X-Duo-Date", date.as_str())]
        } else {
            Vec::new()
        };
        let signed = match sign_request(
            &self.ikey,
            &self.skey,
            self.variant,
            &Request {
                date: &date,
                method,
                host: &self.host,
                path,
                canon_params: &prepared.canon_params,
                body: &prepared.body,
                x_duo_headers: &xduo,
            },
        ) {
            Ok(s) => s,
            Err(e) => panic!("sign: {e}"),
        };
        let url = if prepared.query.is_empty() {
            format!("{}{}", self.base, path)
        } else {
            format!("{}{}?{}", self.base, path, prepared.query)
        };
        let m = match reqwest::Method::from_bytes(method.as_bytes()) {
            Ok(m) => m,
            Err(e) => panic!("method: {e}"),
        };
        let mut req = self
            .http
            .request(m, url)
            .header("Authorization", &signed.authorization);
        req = if opts.x_duo_date {
            req.header("X-Duo-Date", &date)
        } else {
            req.header("Date", &date)
        };
        if let Some(ct) = opts.content_type.as_deref().or(prepared.content_type) {
            req = req.header("Content-Type", ct);
        }
        if !prepared.body.is_empty() {
            req = req.body(prepared.body.clone());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => panic!("send: {e}"),
        };
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let raw = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => panic!("body: {e}"),
        };
        let json = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            json,
            raw,
        }
    }

    /// Calls and asserts HTTP 200 with `stat: OK`; returns `response`.
    pub async fn ok(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Value {
        let r = self.call(method, path, params).await;
        assert_eq!(
            r.status,
            200,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.raw)
        );
        assert_eq!(r.json["stat"], "OK");
        r.json["response"].clone()
    }

    /// Creates a user and returns its id.
    pub async fn user(&self, username: &str) -> String {
        let u = self
            .ok("POST", "/admin/v1/users", &[("username", username)])
            .await;
        u["user_id"].as_str().unwrap_or_default().to_owned()
    }

    /// Creates a group and returns its id.
    pub async fn group(&self, name: &str) -> String {
        let g = self.ok("POST", "/admin/v1/groups", &[("name", name)]).await;
        g["group_id"].as_str().unwrap_or_default().to_owned()
    }
}

/// Sends raw bytes and returns the raw response (until the server closes or 5 s pass).
pub async fn raw(emu: &RunningEmulator, request: &[u8]) -> String {
    let mut s = match tokio::net::TcpStream::connect(emu.addr()).await {
        Ok(s) => s,
        Err(e) => panic!("connect: {e}"),
    };
    if let Err(e) = s.write_all(request).await {
        panic!("write: {e}");
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Fetches an introspection route as JSON.
pub async fn introspect(
    emu: &RunningEmulator,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let m = match reqwest::Method::from_bytes(method.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("method: {e}"),
    };
    let resp = match http
        .request(m, format!("{}{}", emu.base_url(), path))
        .body(body.to_owned())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("send: {e}"),
    };
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Reports that the running test (or a part of it) did not run, as a `SKIPPED: <test> — <reason>`
/// line on standard error. Written to the stream itself, not through `eprintln!`, so the test
/// harness does not capture it: it shows in `cargo test` output although the test passes.
pub fn skipped(reason: &str) {
    use std::io::Write as _;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test} — {reason}");
}
