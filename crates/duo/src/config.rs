//! Configuration of one Duo connection (Grouper's "external system"): API host, integration key,
//! secret key, optional base URL override for a loopback emulator, proxy, CA file, trusted roots,
//! timeouts,
//! signature variant, retry schedule, pacing, concurrency, the traffic-log mode and how much of
//! bodies it shows, and whether writes
//! use the bulk endpoint.
//!
//! The secret key is a [`secrecy::SecretString`]: its `Debug` prints `[REDACTED]`, and the client
//! only exposes it to the HMAC.
//!
//! ```
//! use duoprov_duo::{DuoConfig, TrafficLogMode};
//! let mut cfg = DuoConfig::new("api-xxxxxxxx.duosecurity.com", "DIXXXXXXXXXXXXXXXXXX", "a-secret-key".into());
//! cfg.traffic_log = "on_error".parse()?;
//! assert_eq!(cfg.traffic_log, TrafficLogMode::OnError);
//! assert!(!format!("{cfg:?}").contains("a-secret-key"));
//! # Ok::<(), duoprov_duo::DuoError>(())
//! ```

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use duoprov_duo_wire::SignatureVariant;
use secrecy::SecretString;

use crate::error::DuoError;
use crate::traffic::{BodyLog, TrafficFormat};

/// When the HTTP traffic log writes an entry (Grouper's `logCommandsAlways` / `logCommandsOnError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficLogMode {
    /// Never.
    #[default]
    Off,
    /// For calls whose final attempt failed (any non-200 status or transport error).
    OnError,
    /// For every attempt.
    Always,
}

impl FromStr for TrafficLogMode {
    type Err = DuoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(TrafficLogMode::Off),
            "on_error" => Ok(TrafficLogMode::OnError),
            "always" => Ok(TrafficLogMode::Always),
            other => Err(DuoError::config(format!("traffic log mode {other:?} is not one of off, on_error, always"))),
        }
    }
}

/// Whether user modifies, deletes and membership changes go through `POST /admin/v1/bulk`
/// (the `bulk` setting of a connection). The bulk endpoint's reply shape and its remove method
/// are unverified, so it is an optimisation, never the only path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BulkMode {
    /// Bulk, each reply checked strictly; the ops of a chunk go as single calls when the bulk
    /// call answers 404/405 or a reply shape that is not understood (bulk is then not used again
    /// by this client), or when an op's failure cannot be classified. A per-op 404 on a bulk
    /// remove is confirmed with a single `DELETE`. Behaves as `Never` unless signing with v5.
    #[default]
    Auto,
    /// Bulk only; anything unclear is that op's failure.
    Always,
    /// Single calls only.
    Never,
}

impl BulkMode {
    /// The setting's spelling: `auto`, `always`, `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkMode::Auto => "auto",
            BulkMode::Always => "always",
            BulkMode::Never => "never",
        }
    }
}

impl FromStr for BulkMode {
    type Err = DuoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(BulkMode::Auto),
            "always" => Ok(BulkMode::Always),
            "never" => Ok(BulkMode::Never),
            other => Err(DuoError::config(format!("bulk {other:?} is not one of auto, always, never"))),
        }
    }
}

/// Which certificate authorities the client trusts for Duo's TLS certificate (the `tls_roots`
/// setting of a connection).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TlsRoots {
    /// The platform's trust store (plus `ca_file`, if set). What a TLS-inspecting proxy needs.
    #[default]
    System,
    /// Exactly the CAs Duo's official clients pin (vendored from duo-client 5.7.0, see
    /// `crates/duo/data/README.md`); nothing else, `ca_file` included, is trusted.
    Duo,
    /// Exactly the certificates of this PEM file.
    File(PathBuf),
}

impl TlsRoots {
    /// The setting's spelling: `system`, `duo` or the file's path.
    pub fn describe(&self) -> String {
        match self {
            TlsRoots::System => "system".to_owned(),
            TlsRoots::Duo => "duo".to_owned(),
            TlsRoots::File(p) => p.display().to_string(),
        }
    }
}

/// Retry schedule. The defaults are the official clients' 429 schedule: wait 1 s, doubling,
/// while the wait is at most 32 s, plus uniform jitter below 1 s (7 attempts in all). 5xx and
/// transport errors follow the same doubling, for at most `max_server_retries` retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// First wait.
    pub initial_backoff: Duration,
    /// Largest wait; the schedule stops once the next wait would exceed it.
    pub max_backoff: Duration,
    /// Upper bound (exclusive) of the random jitter added to each wait; zero disables jitter.
    pub max_jitter: Duration,
    /// Retries after a 5xx or transport error, for calls that are safe to repeat; also how many
    /// times a create with an unknown outcome is sent again after reading back showed it absent.
    pub max_server_retries: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(32),
            max_jitter: Duration::from_secs(1),
            max_server_retries: 3,
        }
    }
}

/// Client-side pacing: a token bucket per call class, each adaptive (see `pace.rs`). Writes,
/// single reads and page reads default to 80 % of the per-minute figures Duo staff gave (300, 300,
/// 200). Id-list lookups and bulk calls have no settled limit of their own (Duo staff's 40/min
/// "get all objects (no paging)" class and a secondary source's 50/min bulk may or may not cover
/// them), so they start at the rate of the class Duo documents for their kind (page reads: 160;
/// writes: 240) and rely on the adaptation: a 429 in a class halves that class's rate (down to
/// 1/16 of its ceiling), and it climbs back towards the ceiling while Duo stays quiet
/// (docs/duo-client.md "Pacing defaults"). `0` disables a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacingConfig {
    /// Creates, modifies, deletes and membership changes per minute.
    pub writes_per_minute: u32,
    /// Reads of one object per minute.
    pub single_reads_per_minute: u32,
    /// List-page reads per minute.
    pub page_reads_per_minute: u32,
    /// Unpaged lookups by a list of ids or usernames (`user_id_list`, `username_list`,
    /// `group_id_list`) per minute.
    pub list_lookups_per_minute: u32,
    /// Bulk calls (`/admin/v1/bulk`, `bulk_create`, `bulk_send_to_trash`, `bulk_restore`) per
    /// minute.
    pub bulk_per_minute: u32,
    /// Calls a bucket allows at once after being idle.
    pub burst: u32,
    /// Whether a class's rate adapts to 429s (halved on a 429, recovered while quiet). Off, the
    /// rates stay at the figures above and 429s are only retried.
    pub adaptive: bool,
    /// How long a class must go without a 429 before its rate climbs a step (10 % of its
    /// ceiling); each further such period climbs another step.
    pub recovery_interval: Duration,
}

impl Default for PacingConfig {
    fn default() -> Self {
        PacingConfig {
            writes_per_minute: 240,
            single_reads_per_minute: 240,
            page_reads_per_minute: 160,
            list_lookups_per_minute: 160,
            bulk_per_minute: 240,
            burst: 5,
            adaptive: true,
            recovery_interval: Duration::from_secs(30),
        }
    }
}

impl PacingConfig {
    /// No pacing at all (for tests and benchmarks against a local server).
    pub fn unlimited() -> Self {
        PacingConfig {
            writes_per_minute: 0,
            single_reads_per_minute: 0,
            page_reads_per_minute: 0,
            list_lookups_per_minute: 0,
            bulk_per_minute: 0,
            burst: 1,
            ..PacingConfig::default()
        }
    }
}

/// One Duo connection. Its `Debug` shows neither the secret key, nor the proxy's password, nor a
/// password inside the proxy URL.
#[derive(Clone)]
pub struct DuoConfig {
    /// API host, e.g. `api-xxxxxxxx.duosecurity.com`. Signed (lowercased) as the host line.
    pub api_host: String,
    /// Integration key (`DI…`).
    pub integration_key: String,
    /// Secret key. Never printed.
    pub secret_key: SecretString,
    /// Base URL override, e.g. `http://127.0.0.1:8443` for the emulator. Plain `http` is only
    /// accepted for loopback addresses. The signed host stays `api_host`.
    pub url: Option<String>,
    /// Signature variant: [`SignatureVariant::V5`] (default) or [`SignatureVariant::V2Sha1`] for
    /// older accounts (v2-SHA512 and v4 also work).
    pub signature: SignatureVariant,
    /// HTTP(S) proxy URL, e.g. `http://proxy.example.edu:3128`; a user name for the proxy goes in
    /// the URL (`http://USER@proxy.example.edu:3128`), its password in `proxy_password`.
    pub proxy: Option<String>,
    /// The proxy's password (basic authentication with the URL's user name). Never printed.
    pub proxy_password: Option<SecretString>,
    /// PEM file with extra trusted CA certificates (added to the system roots; only with
    /// [`TlsRoots::System`]).
    pub ca_file: Option<PathBuf>,
    /// Which CAs are trusted (default [`TlsRoots::System`]).
    pub tls_roots: TlsRoots,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one HTTP attempt (request sent to body read).
    pub request_timeout: Duration,
    /// Overall deadline of one call, retries and backoff included.
    pub call_deadline: Duration,
    /// Retry schedule.
    pub retry: RetryConfig,
    /// Pacing.
    pub pacing: PacingConfig,
    /// Maximum calls in flight at once.
    pub max_concurrency: usize,
    /// Traffic log mode.
    pub traffic_log: TrafficLogMode,
    /// How much of request and response bodies the traffic log shows (default
    /// [`BodyLog::Masked`]: e-mail addresses and phone numbers masked).
    pub traffic_bodies: BodyLog,
    /// How entries are written (default [`TrafficFormat::Full`]; [`TrafficFormat::Compact`]: one
    /// line per attempt).
    pub traffic_format: TrafficFormat,
    /// Whether writes go through `/admin/v1/bulk` (default [`BulkMode::Auto`]).
    pub bulk: BulkMode,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Told about every HTTP attempt (for metrics).
    pub observer: Option<std::sync::Arc<dyn CallObserver>>,
    /// The configuration section this connection comes from (`duo.prod`), named in the errors
    /// that a setting of it can fix; `None` outside a configuration file.
    pub section: Option<String>,
}

impl std::fmt::Debug for DuoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoConfig")
            .field("api_host", &self.api_host)
            .field("integration_key", &self.integration_key)
            .field("secret_key", &self.secret_key)
            .field("url", &self.url)
            .field("signature", &self.signature)
            .field("proxy", &self.proxy.as_deref().map(crate::transport::without_credentials))
            .field("proxy_password", &self.proxy_password)
            .field("ca_file", &self.ca_file)
            .field("tls_roots", &self.tls_roots)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("call_deadline", &self.call_deadline)
            .field("retry", &self.retry)
            .field("pacing", &self.pacing)
            .field("max_concurrency", &self.max_concurrency)
            .field("traffic_log", &self.traffic_log)
            .field("traffic_bodies", &self.traffic_bodies)
            .field("traffic_format", &self.traffic_format)
            .field("bulk", &self.bulk)
            .field("user_agent", &self.user_agent)
            .field("observer", &self.observer.is_some())
            .field("section", &self.section)
            .finish()
    }
}

/// Watches the client's HTTP attempts: the daemon counts them and times them for its metrics.
pub trait CallObserver: Send + Sync + std::fmt::Debug {
    /// One attempt of a call: method, path (ids included), the HTTP status (`None` when no
    /// response arrived) and how long it took.
    fn attempt(&self, method: &str, path: &str, status: Option<u16>, elapsed: Duration);
}

impl DuoConfig {
    /// A configuration with the defaults: v5 signing, 10 s connect timeout, 60 s per attempt,
    /// 240 s per call, the official retry schedule, default pacing, 4 calls in flight, no
    /// traffic log.
    pub fn new(api_host: impl Into<String>, integration_key: impl Into<String>, secret_key: SecretString) -> Self {
        DuoConfig {
            api_host: api_host.into(),
            integration_key: integration_key.into(),
            secret_key,
            url: None,
            signature: SignatureVariant::V5,
            proxy: None,
            proxy_password: None,
            ca_file: None,
            tls_roots: TlsRoots::System,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            call_deadline: Duration::from_secs(240),
            retry: RetryConfig::default(),
            pacing: PacingConfig::default(),
            max_concurrency: 4,
            traffic_log: TrafficLogMode::Off,
            traffic_bodies: BodyLog::Masked,
            traffic_format: TrafficFormat::Full,
            bulk: BulkMode::Auto,
            user_agent: format!("duoprov/{}", env!("CARGO_PKG_VERSION")),
            observer: None,
            section: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_mode_parses() {
        assert_eq!("always".parse::<TrafficLogMode>().ok(), Some(TrafficLogMode::Always));
        assert_eq!("off".parse::<TrafficLogMode>().ok(), Some(TrafficLogMode::Off));
        assert!("sometimes".parse::<TrafficLogMode>().is_err());
        assert_eq!("never".parse::<BulkMode>().ok(), Some(BulkMode::Never));
        assert_eq!("auto".parse::<BulkMode>().ok(), Some(BulkMode::Auto));
        assert_eq!("always".parse::<BulkMode>().ok(), Some(BulkMode::Always));
        assert!("sometimes".parse::<BulkMode>().is_err_and(|e| e.to_string().contains("auto, always, never")));
    }

    #[test]
    fn debug_redacts_secret() {
        let mut c = DuoConfig::new("h", "DI", SecretString::from("super-secret-value"));
        c.proxy = Some("http://bob:proxy-pw-in-url@proxy:3128".into());
        c.proxy_password = Some("proxy-pw-apart".into());
        let d = format!("{c:?}");
        assert!(!d.contains("super-secret-value") && !d.contains("proxy-pw-in-url") && !d.contains("proxy-pw-apart"), "{d}");
        assert!(d.contains("REDACTED") && d.contains("http://bob:*******@proxy:3128/"), "{d}");
    }
}
