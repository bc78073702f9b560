//! The HTTP layer under the client: a small [`Transport`] trait (one request in, one fully read
//! response out) and its production implementation on reqwest with rustls (ring provider),
//! system roots plus an optional CA file, or only pinned roots (Duo's CA set or a file), an optional proxy (basic authentication from the URL's
//! user name and a separately held password), and connect/request timeouts.
//!
//! The trait exists so the retry, pacing and paging logic can be tested on paused time with an
//! in-memory transport, and so the bytes that are sent are exactly the bytes that were signed
//! (the request carries the final URL, headers and body; the transport adds nothing but what
//! HTTP/1.1 framing needs).

use std::fmt;
use std::sync::Once;

use futures::future::BoxFuture;

use crate::config::{DuoConfig, TlsRoots};
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
    /// What a person can act on, when it is known.
    pub cause: FailureCause,
}

/// Why a request failed at the network level, where the cause has a fix of its own. Only
/// [`FailureCause::Other`] is worth retrying: waiting does not make a refused port listen, a
/// host name resolve, or a plain-HTTP server speak TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// Nothing listens at the address (TCP connection refused).
    Refused,
    /// The host name does not resolve.
    UnknownHost,
    /// An `https://` URL reached a server that answered in plain HTTP.
    PlainHttp,
    /// Anything else (timeouts, resets, certificates, …).
    Other,
}

impl TransportError {
    /// A failure of no particular cause (what in-memory transports in tests produce).
    pub fn new(detail: impl Into<String>, maybe_sent: bool) -> Self {
        TransportError { detail: detail.into(), maybe_sent, cause: FailureCause::Other }
    }
}

/// The cause of a reqwest failure, read from its source chain.
fn cause_of(e: &reqwest::Error, detail: &str) -> FailureCause {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return FailureCause::Refused;
        }
        cur = c.source();
    }
    let lower = detail.to_ascii_lowercase();
    if lower.contains("connection refused") {
        FailureCause::Refused
    } else if e.is_connect() && (lower.contains("dns error") || lower.contains("failed to lookup address") || lower.contains("name or service not known")) {
        FailureCause::UnknownHost
    } else if lower.contains("invalidcontenttype") || lower.contains("corrupt message") {
        FailureCause::PlainHttp
    } else {
        FailureCause::Other
    }
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
    /// Whether only pinned roots (`tls_roots` = `duo` or a file) are trusted: a certificate
    /// failure then says so.
    pinned: bool,
}

/// The CA certificates Duo's official Python client pins (duo-client 5.7.0's `ca_certs.pem`;
/// see `crates/duo/data/README.md`).
pub const DUO_CA_CERTS: &[u8] = include_bytes!("../data/duo-ca-certs.pem");

/// The certificates of a PEM bundle; `what` names it in errors.
fn pem_certificates(pem: &[u8], what: &str) -> Result<Vec<reqwest::Certificate>, DuoError> {
    let certs = reqwest::Certificate::from_pem_bundle(pem)
        .map_err(|e| DuoError::config(format!("{what} is not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(DuoError::config(format!("{what} holds no certificate")));
    }
    Ok(certs)
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
            Some(p) => b = b.proxy(proxy_of(p, cfg.proxy_password.as_ref())?),
            None => {
                b = b.no_proxy();
            }
        }
        if cfg.ca_file.is_some() && cfg.tls_roots != TlsRoots::System {
            return Err(DuoError::config(format!(
                "ca_file adds to the system roots, but tls_roots is {:?}; use one of them",
                cfg.tls_roots.describe()
            )));
        }
        if let Some(path) = &cfg.ca_file {
            b = b.tls_certs_merge(pem_certificates(&std::fs::read(path).map_err(|e| {
                DuoError::config(format!("cannot read CA file {}: {e}", path.display()))
            })?, &format!("CA file {}", path.display()))?);
        }
        match &cfg.tls_roots {
            TlsRoots::System => {}
            TlsRoots::Duo => b = b.tls_certs_only(pem_certificates(DUO_CA_CERTS, "Duo's pinned CA set")?),
            TlsRoots::File(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| DuoError::config(format!("tls_roots: cannot read {}: {e}", path.display())))?;
                b = b.tls_certs_only(pem_certificates(&pem, &format!("tls_roots file {}", path.display()))?);
            }
        }
        let client = b.build().map_err(|e| DuoError::config(format!("cannot build the HTTP client: {}", chain(&e))))?;
        Ok(ReqwestTransport { client, pinned: cfg.tls_roots != TlsRoots::System })
    }
}

/// The reqwest proxy for `url`, with basic authentication from the URL's user name and
/// `password` (or the URL's own password). Errors never show the URL's credentials.
fn proxy_of(url: &str, password: Option<&secrecy::SecretString>) -> Result<reqwest::Proxy, DuoError> {
    use secrecy::ExposeSecret as _;
    let invalid = |detail: &str| DuoError::config(format!("proxy URL {} is invalid: {}", without_credentials(url), redact_url(url, detail)));
    let mut parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid("expected http://HOST:PORT or https://HOST:PORT"));
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let user = decode(parsed.username());
    let url_password = parsed.password().map(decode);
    if password.is_some() && user.is_empty() {
        return Err(DuoError::config(format!(
            "proxy {}: a proxy password is set but the URL names no user (http://USER@HOST:PORT)",
            without_credentials(url)
        )));
    }
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let mut proxy = reqwest::Proxy::all(parsed.as_str()).map_err(|e| invalid(&e.to_string()))?;
    match (password, url_password) {
        (Some(p), _) => proxy = proxy.basic_auth(&user, p.expose_secret()),
        (None, Some(p)) => proxy = proxy.basic_auth(&user, &p),
        (None, None) if !user.is_empty() => proxy = proxy.basic_auth(&user, ""),
        (None, None) => {}
    }
    Ok(proxy)
}

/// A proxy URL as it may be shown: the password replaced by `*******` (the user name kept);
/// text that is not an `http`/`https` URL with a host is not shown at all (where a password sits
/// in it is then unknown).
pub fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            if u.password().is_some() {
                let _ = u.set_password(Some("*******"));
            }
            u.to_string()
        }
        _ => "(not an http or https URL; not shown)".to_owned(),
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
                .map_err(|_| TransportError::new(format!("invalid method {:?}", req.method), false))?;
            let mut rb = self.client.request(method, req.url.as_str());
            for (k, v) in &req.headers {
                rb = rb.header(k.as_str(), v.as_str());
            }
            if !req.body.is_empty() {
                rb = rb.body(req.body);
            }
            let resp = rb.send().await.map_err(|e| {
                let maybe_sent = !e.is_connect();
                let cause = cause_of(&e, &chain(&e));
                let mut detail = chain(&e.without_url());
                if self.pinned && detail.to_ascii_lowercase().contains("certificate") {
                    detail.push_str(
                        " (tls_roots trusts only pinned certificate authorities: the server's certificate is not from one of \
                         them; a TLS-inspecting proxy needs tls_roots = \"system\", with its CA in ca_file)",
                    );
                }
                TransportError { detail, maybe_sent, cause }
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
                .map_err(|e| TransportError::new(format!("reading the response body: {}", chain(&e.without_url())), true))?
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
        assert_eq!(without_credentials("http://bob:hunter2@proxy:3128"), "http://bob:*******@proxy:3128/");
        assert_eq!(without_credentials("http://bob@proxy:3128"), "http://bob@proxy:3128/");
        assert!(!without_credentials("http://bob:hunter2@[proxy").contains("hunter2"));
        assert!(!without_credentials("bob:hunter2@proxy:3128").contains("hunter2"));
    }

    #[test]
    fn a_bad_proxy_url_or_a_password_without_a_user_is_refused_without_echoing_the_password() {
        let mut cfg = DuoConfig::new("h", "DI", "s".into());
        for bad in ["ftp://bob:hunter2@proxy:21", "http://bob:hunter2@[proxy:3128", "bob:hunter2@proxy:3128"] {
            cfg.proxy = Some(bad.into());
            let e = ReqwestTransport::new(&cfg).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("proxy") && !e.contains("hunter2"), "{bad}: {e}");
        }
        cfg.proxy = Some("http://proxy.example.invalid:3128".into());
        cfg.proxy_password = Some("hunter2".into());
        let e = ReqwestTransport::new(&cfg).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("names no user") && !e.contains("hunter2"), "{e}");
        cfg.proxy = Some("http://bob@proxy.example.invalid:3128".into());
        assert!(ReqwestTransport::new(&cfg).is_ok());
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
        // Pinned roots: Duo's vendored set parses; a file of roots; ca_file only with system.
        cfg.ca_file = None;
        cfg.tls_roots = TlsRoots::Duo;
        assert_eq!(pem_certificates(DUO_CA_CERTS, "duo").map(|c| c.len()).ok(), Some(15));
        assert!(ReqwestTransport::new(&cfg).is_ok());
        cfg.tls_roots = TlsRoots::File(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").into());
        let e = ReqwestTransport::new(&cfg).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("tls_roots file") && e.contains("Cargo.toml"), "{e}");
        cfg.tls_roots = TlsRoots::Duo;
        cfg.ca_file = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-ca.pem").into());
        let e = ReqwestTransport::new(&cfg).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("ca_file") && e.contains("\"duo\""), "{e}");
    }
}
