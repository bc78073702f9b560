//! `duoprov config`: prints the validated configuration, the registry URL redacted and each
//! secret (the Duo secret key, a database or proxy password) named by where it comes from, never
//! by its value; a proxy URL is shown without a password.

use anyhow::Result;
use serde_json::json;

use super::Context;
use crate::config::{LogHttp, SecretSource};
use duoprov_duo::{BodyLog, TrafficFormat};
use crate::{exit, output};

fn source(s: &SecretSource) -> String {
    match s {
        SecretSource::Env(var) => format!("environment variable {var}"),
        SecretSource::File(path) => format!("file {}", path.display()),
    }
}

pub fn run(ctx: &Context) -> Result<u8> {
    let s = &ctx.settings;
    let duo: Vec<serde_json::Value> = s
        .duo
        .values()
        .map(|d| {
            json!({
                "name": d.name, "api_host": d.api_host, "integration_key": d.integration_key,
                "secret_key": source(&d.secret_key), "url": d.url,
                "proxy": d.proxy.as_deref().map(duoprov_duo::transport::without_credentials),
                "proxy_password": d.proxy_password.as_ref().map(source),
                "ca_file": d.ca_file.as_ref().map(|p| p.display().to_string()), "tls_roots": d.tls_roots.describe(),
                "signature_version": d.signature_version, "timeout_secs": d.timeout_secs,
                "writes_per_minute": d.writes_per_minute, "single_reads_per_minute": d.single_reads_per_minute,
                "page_reads_per_minute": d.page_reads_per_minute,
                "list_lookups_per_minute": d.list_lookups_per_minute, "bulk_per_minute": d.bulk_per_minute,
                "adaptive_pacing": d.adaptive_pacing, "pacing_recovery_secs": d.pacing_recovery_secs,
                "max_concurrency": d.max_concurrency,
                "server_retries": d.server_retries, "bulk": d.bulk.as_str(),
            })
        })
        .collect();
    let provisioners: Vec<serde_json::Value> = s
        .provisioners
        .values()
        .map(|p| {
            json!({
                "name": p.name, "duo": p.duo, "create_users": p.create_users,
                "log_http": match p.log_http { LogHttp::Off => "off", LogHttp::OnError => "on_error", LogHttp::Always => "always" },
                "log_http_bodies": match p.log_http_bodies { BodyLog::Masked => "masked", BodyLog::Full => "full", BodyLog::None => "none" },
                "log_http_format": match p.log_http_format { TrafficFormat::Full => "full", TrafficFormat::Compact => "compact" },
                "load_duo_users": p.load_duo_users,
            })
        })
        .collect();
    let value = json!({
        "registry": {
            "url": duoprov_registry::url::redact(&s.registry_url),
            "password": s.registry_password.as_ref().map(source),
        },
        "duo": duo,
        "provisioners": provisioners,
    });
    if ctx.json {
        output::json(&value)?;
    } else {
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(exit::OK)
}
