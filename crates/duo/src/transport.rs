//! The HTTP layer under the client: a small [`Transport`] trait (one request in, one fully read
//! response out) and its production implementation on reqwest with rustls (ring provider),
//! system roots plus an optional CA file, an optional proxy, and connect/request timeouts.
//!
//! The trait exists so the retry, pacing and paging logic can be tested on paused time with an
//! in-memory transport, and so the bytes that are sent are exactly the bytes that were signed
//! (the request carries the final URL, headers and body; the transport adds nothing but what
//! HTTP/1.1 framing needs).

use std::fmt;
use std::sync::Once;

use futures::future::BoxFuture;

use crate::config::DuoConfig;
use crate::error::DuoError;

/// A request ready to send.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, `DELETE`, …
    pub method: String,
    /// Absolute URL, query included (exactly as signed).
    pub url: String,
    /// Headers (including `Authorization`; see the `Debug` impl, which masks it).
    pub headers: Vec<(String, String)>,
    /// Body bytes (exactly as signed).
    pub body: Vec<u8>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), if k.eq_ignore_ascii_case("authorization") { "*******" } else { v.as_str() }))
            .collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A fully read response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// A network-level failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// What failed.
    pub detail: String,
    /// False only when the request certainly never reached the server (connect failure).
    pub maybe_sent: bool,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// Sends one HTTP request and reads the whole response.
///
/// An in-memory transport (what the tests use on paused time):
///
/// ```
/// use std::sync::Arc;
/// use duoprov_duo::{DuoClient, DuoConfig, HttpRequest, HttpResponse, Transport, TransportError};
/// use futures::future::BoxFuture;
///
/// struct Canned;
/// impl Transport for Canned {
///     fn send(&self, req: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
///         Box::pin(async move {
///             assert!(req.url.starts_with("https://api-x.duosecurity.com/admin/v1/groups?limit=500&offset=0"));
///             let body = br#"{"stat":"OK","response":[{"group_id":"DG00000000000000001","name":"staff"}],
///                            "metadata":{"next_offset":null}}"#.to_vec();
///             Ok(HttpResponse { status: 200, headers: vec![], body })
///         })
///     }
/// }
///
/// let duo = DuoClient::with_transport(DuoConfig::new("api-x.duosecurity.com", "DIX", "skey".into()), Arc::new(Canned))?;
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| duoprov_duo::DuoError::config(e))?;
/// let groups = rt.block_on(duo.list_groups())?;
/// assert_eq!(groups[0].name, "staff");
/// # Ok::<(), duoprov_duo::DuoError>(())
/// ```
pub trait Transport: Send + Sync + 'static {
    /// Sends `req`.
    fn send(&self, req: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>>;
}

static PROVIDER: Once = Once::new();

/// Installs rustls' ring crypto provider as the process default, once. Calling it again, or
/// after another provider was installed, does nothing. The client calls it itself; binaries may
/// call it early too.
pub fn install_crypto_provider() {
    PROVIDER.call_once(|| {
        // An Err means a provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The production transport (reqwest + rustls).
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// Builds the HTTP client from `cfg`: timeouts, proxy, system roots plus `ca_file`.
    pub fn new(cfg: &DuoConfig) -> Result<Self, DuoError> {
        install_crypto_provider();
        let mut b = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            .user_agent(cfg.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(std::time::Duration::from_secs(30));
        match &cfg.proxy {
            Some(p) => {
                let proxy = reqwest::Proxy::all(p.as_str())
                    .map_err(|e| DuoError::config(format!("proxy URL is invalid: {}", redact_url(p, &e.to_string()))))?;
                b = b.proxy(proxy);
            }
            None => {
                b = b.no_proxy();
            }
        }
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| DuoError::config(format!("cannot read CA file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| DuoError::config(format!("CA file {} is not PEM certificates: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(DuoError::config(format!("CA file {} holds no certificate", path.display())));
            }
            b = b.tls_certs_merge(certs);
        }
        let client = b.build().map_err(|e| DuoError::config(format!("cannot build the HTTP client: {}", chain(&e))))?;
        Ok(ReqwestTransport { client })
    }
}

/// Never echo proxy credentials: replace the URL's userinfo in a message.
fn redact_url(url: &str, msg: &str) -> String {
    match url.split_once("://").and_then(|(_, rest)| rest.split_once('@')) {
        Some((userinfo, _)) if !userinfo.is_empty() => msg.replace(userinfo, "*******"),
        _ => msg.to_owned(),
    }
}

/// An error with its source chain, `: `-joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

impl Transport for ReqwestTransport {
    fn send(&self, req: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(req.method.as_bytes())
                .map_err(|_| TransportError { detail: format!("invalid method {:?}", req.method), maybe_sent: false })?;
            let mut rb = self.client.request(method, req.url.as_str());
            for (k, v) in &req.headers {
                rb = rb.header(k.as_str(), v.as_str());
            }
            if !req.body.is_empty() {
                rb = rb.body(req.body);
            }
            let resp = rb.send().await.map_err(|e| {
                let maybe_sent = !e.is_connect();
                TransportError { detail: chain(&e.without_url()), maybe_sent }
            })?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let body = resp
                .bytes()
                .await
                .map_err(|e| TransportError { detail: format!("reading the response body: {}", chain(&e.without_url())), maybe_sent: true })?
                .to_vec();
            Ok(HttpResponse { status, headers, body })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_debug_masks_authorization() {
        let r = HttpRequest {
            method: "GET".into(),
            url: "https://h/x".into(),
            headers: vec![("Authorization".into(), "Basic c2VjcmV0".into())],
            body: vec![],
        };
        let d = format!("{r:?}");
        assert!(!d.contains("c2VjcmV0"));
        assert!(d.contains("*******"));
    }

    #[test]
    fn proxy_credentials_are_redacted() {
        assert_eq!(redact_url("http://bob:pw@proxy:3128", "bad bob:pw@proxy"), "bad *******@proxy");
        assert_eq!(redact_url("http://proxy:3128", "bad"), "bad");
    }

    #[test]
    fn builds_with_defaults_proxy_and_rejects_bad_ca() {
        let mut cfg = DuoConfig::new("h", "DI", "s".into());
        assert!(ReqwestTransport::new(&cfg).is_ok());
        cfg.proxy = Some("http://proxy.example.invalid:3128".into());
        assert!(ReqwestTransport::new(&cfg).is_ok());
        cfg.ca_file = Some("/nonexistent/ca.pem".into());
        let e = ReqwestTransport::new(&cfg).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("cannot read CA file"), "{e}");
        // A real (self-signed, public part only) CA certificate is accepted and merged.
        cfg.ca_file = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-ca.pem").into());
        assert!(ReqwestTransport::new(&cfg).is_ok());
        // A file that is not PEM certificates is refused.
        cfg.ca_file = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").into());
        let e = ReqwestTransport::new(&cfg).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("holds no certificate") || e.contains("is not PEM"), "{e}");
    }
}
