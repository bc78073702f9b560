//! What the commands that talk to Duo share (`load-users`, `plan`, `sync`): a [`DuoClient`] for a
//! provisioner, built from its `[duo.NAME]` connection. The secret key is read from its file or
//! variable only here, when a command needs it, and goes straight into the client's secret type.

use std::time::Duration;

use anyhow::{Result, anyhow};
use duoprov_duo::{BodyLog, DuoClient, DuoConfig, SignatureVariant, TrafficFormat, TrafficLogMode};

use super::Context;
use crate::config::{self, DuoConnection, LogHttp};

/// The provisioner named `provisioner` and a client for its Duo account.
pub async fn client_for(ctx: &Context, provisioner: &str) -> Result<(config::Provisioner, DuoClient)> {
    let p = ctx
        .settings
        .provisioners
        .get(provisioner)
        .cloned()
        .ok_or_else(|| anyhow!("no provisioner [provisioner.{provisioner}] in the configuration"))?;
    let conn = ctx
        .settings
        .duo
        .get(&p.duo)
        .ok_or_else(|| anyhow!("provisioner.{provisioner}.duo: no Duo connection [duo.{}] in the configuration", p.duo))?;
    let cfg = duo_config(conn, p.log_http, p.log_http_bodies, p.log_http_format)?;
    let client = DuoClient::new(cfg).map_err(|e| anyhow!("duo.{}: {e}", conn.name))?;
    Ok((p, client))
}

/// The client configuration of a connection: host, keys (the secret read now), emulator URL,
/// proxy, CA file, per-attempt timeout, signature version, pacing, retries, and the provisioner's
/// traffic log (when it writes, how much of bodies it shows, in which format).
pub fn duo_config(conn: &DuoConnection, log_http: LogHttp, bodies: BodyLog, format: TrafficFormat) -> Result<DuoConfig> {
    let secret = conn.secret_key.read(&format!("duo.{}.secret_key", conn.name))?;
    let mut cfg = DuoConfig::new(conn.api_host.clone(), conn.integration_key.clone(), secret);
    cfg.url = conn.url.clone();
    cfg.section = Some(format!("duo.{}", conn.name));
    cfg.proxy = conn.proxy.clone();
    cfg.proxy_password = conn.proxy_password.as_ref().map(|s| s.read(&format!("duo.{}.proxy_password", conn.name))).transpose()?;
    cfg.ca_file = conn.ca_file.clone();
    cfg.tls_roots = conn.tls_roots.clone();
    cfg.request_timeout = Duration::from_secs(conn.timeout_secs.max(1));
    cfg.connect_timeout = cfg.connect_timeout.min(cfg.request_timeout);
    // One call's deadline covers its retries; never shorter than a single attempt.
    cfg.call_deadline = cfg.call_deadline.max(cfg.request_timeout);
    cfg.signature = match conn.signature_version {
        2 => {
            tracing::warn!(
                connection = %conn.name,
                "duo.{}.signature_version = 2 signs requests with HMAC-SHA1, which is deprecated; use 5 (the default, HMAC-SHA512) unless this Duo account cannot take it",
                conn.name
            );
            SignatureVariant::V2Sha1
        }
        _ => SignatureVariant::V5,
    };
    cfg.bulk = conn.bulk;
    if let Some(n) = conn.writes_per_minute {
        cfg.pacing.writes_per_minute = n;
    }
    if let Some(n) = conn.single_reads_per_minute {
        cfg.pacing.single_reads_per_minute = n;
    }
    if let Some(n) = conn.page_reads_per_minute {
        cfg.pacing.page_reads_per_minute = n;
    }
    if let Some(n) = conn.list_lookups_per_minute {
        cfg.pacing.list_lookups_per_minute = n;
    }
    if let Some(n) = conn.bulk_per_minute {
        cfg.pacing.bulk_per_minute = n;
    }
    if let Some(on) = conn.adaptive_pacing {
        cfg.pacing.adaptive = on;
    }
    if let Some(n) = conn.pacing_recovery_secs {
        cfg.pacing.recovery_interval = Duration::from_secs(n);
    }
    if let Some(n) = conn.pacing_recovery_ms {
        cfg.pacing.recovery_interval = Duration::from_millis(n);
    }
    if let Some(n) = conn.max_concurrency {
        cfg.max_concurrency = n;
    }
    if let Some(n) = conn.server_retries {
        cfg.retry.max_server_retries = n;
    }
    if let Some(ms) = conn.retry_backoff_ms {
        // The whole schedule scales with its first wait: the waits double up to 32 times it,
        // each with jitter below it (the defaults: 1 s, 32 s, below 1 s).
        let first = Duration::from_millis(ms);
        cfg.retry.initial_backoff = first;
        cfg.retry.max_backoff = first * 32;
        cfg.retry.max_jitter = first;
    }
    cfg.traffic_log = match log_http {
        LogHttp::Off => TrafficLogMode::Off,
        LogHttp::OnError => TrafficLogMode::OnError,
        LogHttp::Always => TrafficLogMode::Always,
    };
    cfg.traffic_bodies = bodies;
    cfg.traffic_format = format;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretSource;
    use secrecy::ExposeSecret;

    fn connection(secret_file: std::path::PathBuf, signature_version: u8) -> DuoConnection {
        DuoConnection {
            name: "prod".into(),
            api_host: "api-x.duosecurity.com".into(),
            integration_key: "DIXXXXXXXXXXXXXXXXXX".into(),
            secret_key: SecretSource::File(secret_file),
            url: Some("http://127.0.0.1:9".into()),
            proxy: Some("http://proxy.example.edu:3128".into()),
            proxy_password: None,
            ca_file: Some("/etc/duoprov/ca.pem".into()),
            tls_roots: duoprov_duo::TlsRoots::System,
            signature_version,
            timeout_secs: 7,
            writes_per_minute: None,
            single_reads_per_minute: None,
            page_reads_per_minute: None,
            list_lookups_per_minute: Some(20),
            bulk_per_minute: Some(25),
            adaptive_pacing: Some(false),
            pacing_recovery_secs: Some(45),
            pacing_recovery_ms: None,
            max_concurrency: None,
            server_retries: Some(5),
            retry_backoff_ms: Some(10),
            bulk: duoprov_duo::BulkMode::Never,
        }
    }

    #[test]
    fn connection_maps_to_the_client_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("duo.skey");
        std::fs::write(&file, "a-secret-that-must-not-show\n").unwrap();
        let cfg = duo_config(&connection(file.clone(), 5), LogHttp::OnError, BodyLog::Full, TrafficFormat::Compact).unwrap();
        assert_eq!(cfg.api_host, "api-x.duosecurity.com");
        assert_eq!(cfg.integration_key, "DIXXXXXXXXXXXXXXXXXX");
        assert_eq!(cfg.secret_key.expose_secret(), "a-secret-that-must-not-show");
        assert_eq!(cfg.url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(cfg.proxy.as_deref(), Some("http://proxy.example.edu:3128"));
        assert_eq!(cfg.ca_file.as_deref(), Some(std::path::Path::new("/etc/duoprov/ca.pem")));
        assert_eq!(cfg.request_timeout, Duration::from_secs(7));
        assert_eq!(cfg.retry.max_server_retries, 5);
        assert_eq!((cfg.retry.initial_backoff, cfg.retry.max_backoff, cfg.retry.max_jitter), (Duration::from_millis(10), Duration::from_millis(320), Duration::from_millis(10)));
        assert!(cfg.connect_timeout <= cfg.request_timeout && cfg.call_deadline >= cfg.request_timeout);
        assert_eq!(cfg.signature, SignatureVariant::V5);
        assert_eq!(cfg.traffic_log, TrafficLogMode::OnError);
        assert_eq!(cfg.traffic_bodies, BodyLog::Full);
        assert_eq!(cfg.traffic_format, TrafficFormat::Compact);
        assert_eq!(cfg.bulk, duoprov_duo::BulkMode::Never);
        let defaults = duoprov_duo::PacingConfig::default();
        assert_eq!(
            cfg.pacing,
            duoprov_duo::PacingConfig {
                list_lookups_per_minute: 20,
                bulk_per_minute: 25,
                adaptive: false,
                recovery_interval: Duration::from_secs(45),
                ..defaults
            },
            "the pacing keys reach the client; those not set keep the defaults"
        );
        assert!(!format!("{cfg:?}").contains("a-secret-that-must-not-show"));

        let cfg = duo_config(&connection(file, 2), LogHttp::Always, BodyLog::Masked, TrafficFormat::Full).unwrap();
        assert_eq!(cfg.signature, SignatureVariant::V2Sha1);
        assert_eq!(cfg.traffic_log, TrafficLogMode::Always);
    }

    #[test]
    fn a_missing_secret_names_its_source_only() {
        let dir = tempfile::tempdir().unwrap();
        let e = duo_config(&connection(dir.path().join("missing.skey"), 5), LogHttp::Off, BodyLog::Masked, TrafficFormat::Full).unwrap_err().to_string();
        assert!(e.contains("duo.prod.secret_key") && e.contains("missing.skey"), "{e}");
    }
}
