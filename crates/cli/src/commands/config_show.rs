//! `duoprov config`: prints the whole configuration as duoprov understood it — every setting of
//! the registry, the daemon, each `[duo.*]` connection and each provisioner (templates,
//! thresholds, incremental and schedule settings included) with defaults resolved — as
//! TOML-like text in the file's own sections, or as JSON with `--json` (the same keys, nested the
//! same way). The registry URL is redacted and each secret (the Duo secret key, a database or
//! proxy password) is named by where it comes from, never by its value; a proxy URL is shown
//! without a password.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Map, Value, json};

use super::Context;
use crate::config::{DuoConnection, FullSyncSchedule, LogHttp, Provisioner, SecretSource};
use duoprov_duo::{BodyLog, TrafficFormat};
use duoprov_plan::policy::{DeletePolicy, UserDeleteMode};
use crate::{exit, output};

fn source(s: &SecretSource) -> String {
    match s {
        SecretSource::Env(var) => format!("environment variable {var}"),
        SecretSource::File(path) => format!("file {}", path.display()),
    }
}

/// A duration as the configuration writes it: `500ms`, `2s`, `30m`, `6h`, `1d`.
fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

fn delete_policy(p: DeletePolicy) -> &'static str {
    match p {
        DeletePolicy::Never => "never",
        DeletePolicy::CreatedByUs => "created_by_us",
        DeletePolicy::NotInSource => "not_in_source",
        DeletePolicy::RegistryDeleted => "registry_deleted",
    }
}

fn connection(d: &DuoConnection) -> Value {
    // Unset client settings take the client's defaults; show those.
    let defaults = duoprov_duo::DuoConfig::new("", "", String::new().into());
    json!({
        "api_host": d.api_host,
        "integration_key": d.integration_key,
        "secret_key": source(&d.secret_key),
        "url": d.url,
        "proxy": d.proxy.as_deref().map(duoprov_duo::transport::without_credentials),
        "proxy_password": d.proxy_password.as_ref().map(source),
        "ca_file": d.ca_file.as_ref().map(|p| p.display().to_string()),
        "tls_roots": d.tls_roots.describe(),
        "signature_version": d.signature_version,
        "timeout_secs": d.timeout_secs,
        "writes_per_minute": d.writes_per_minute.unwrap_or(defaults.pacing.writes_per_minute),
        "single_reads_per_minute": d.single_reads_per_minute.unwrap_or(defaults.pacing.single_reads_per_minute),
        "page_reads_per_minute": d.page_reads_per_minute.unwrap_or(defaults.pacing.page_reads_per_minute),
        "list_lookups_per_minute": d.list_lookups_per_minute.unwrap_or(defaults.pacing.list_lookups_per_minute),
        "bulk_per_minute": d.bulk_per_minute.unwrap_or(defaults.pacing.bulk_per_minute),
        "adaptive_pacing": d.adaptive_pacing.unwrap_or(defaults.pacing.adaptive),
        "pacing_recovery_secs": d.pacing_recovery_secs.unwrap_or(defaults.pacing.recovery_interval.as_secs()),
        "pacing_recovery_ms": d.pacing_recovery_ms,
        "max_concurrency": d.max_concurrency.unwrap_or(defaults.max_concurrency),
        "server_retries": d.server_retries.unwrap_or(defaults.retry.max_server_retries),
        "retry_backoff_ms": d.retry_backoff_ms.unwrap_or(u64::try_from(defaults.retry.initial_backoff.as_millis()).unwrap_or(u64::MAX)),
        "bulk": d.bulk.as_str(),
    })
}

fn provisioner(p: &Provisioner) -> Value {
    let policy = &p.policy;
    let t = &policy.thresholds;
    let mut templates: Map<String, Value> = p
        .mapping
        .templates()
        .into_iter()
        .map(|(key, template)| (key, template.map_or(Value::Bool(false), Value::String)))
        .collect();
    for slot in 1..=4 {
        // Alias slots have no default: unset means unmanaged.
        templates.entry(format!("alias{slot}")).or_insert(Value::Null);
    }
    let schedule = &p.schedule;
    let (full_sync_every, full_sync_cron) = match &schedule.full_sync {
        FullSyncSchedule::Every(d) => (Some(duration(*d)), None),
        FullSyncSchedule::Cron(_, expr) => (None, Some(expr.clone())),
    };
    json!({
        "duo": p.duo,
        "create_users": p.create_users,
        "create_groups": policy.create_groups,
        "log_http": match p.log_http { LogHttp::Off => "off", LogHttp::OnError => "on_error", LogHttp::Always => "always" },
        "log_http_bodies": match p.log_http_bodies { BodyLog::Masked => "masked", BodyLog::Full => "full", BodyLog::None => "none" },
        "log_http_format": match p.log_http_format { TrafficFormat::Full => "full", TrafficFormat::Compact => "compact" },
        "load_duo_users": p.load_duo_users,
        "eligible_group": p.eligible_group.as_ref().map(ToString::to_string),
        "subject_sources": p.subject_sources,
        "select_regex": p.selection_rules.select_regex.as_ref().map(|r| r.as_str().to_owned()),
        "only_policy_groups": p.selection_rules.only_policy_groups,
        "sync_back_group": p.sync_back.as_ref().map(|s| s.group.to_string()),
        "sync_back_rule": p.sync_back.as_ref().map(|s| s.rule.to_string()),
        "delete_groups": delete_policy(policy.group_delete),
        "delete_memberships": delete_policy(policy.membership_delete),
        "delete_users": delete_policy(policy.user_delete),
        "user_delete_mode": match policy.user_delete_mode {
            UserDeleteMode::Trash => "trash",
            UserDeleteMode::DisableThenTrash => "disable_then_trash",
            UserDeleteMode::Delete => "delete",
            UserDeleteMode::Disable => "disable",
        },
        "update_adopted": policy.update_adopted,
        "concurrency": p.concurrency,
        "templates": templates,
        "thresholds": {
            "max_group_deletes": t.max_group_deletes,
            "max_user_deletes": t.max_user_deletes,
            "max_membership_removals": t.max_membership_removals,
            "max_group_removal_percent": t.max_group_removal_percent,
            "percent_rule_min_members": t.percent_rule_min_members,
            "max_admin_removals": t.max_admin_removals,
            "sync_back_max_removals": p.sync_back.as_ref().map(|s| s.max_removals),
            "sync_back_max_removal_percent": p.sync_back.as_ref().map(|s| s.max_removal_percent),
        },
        "admin_roles": policy.admin_roles.as_ref().map(|a| serde_json::json!({
            "groups": a.groups.iter().cloned().collect::<std::collections::BTreeMap<String, String>>(),
            "priority": a.priority,
            "email_attribute": a.email_attribute.as_str(),
            "send_email": a.send_email,
            "admin_remove_mode": a.remove_mode.as_str(),
        })),
        "incremental": {
            "full_sync_above_changes": p.incremental.full_sync_above_changes,
            "full_sync_above_objects": p.incremental.full_sync_above_objects,
            "whole_group_above": p.incremental.whole_group_above,
            "retry_base": duration(Duration::from_millis(p.incremental.backoff.base_ms.max(0) as u64)),
            "retry_max": duration(Duration::from_millis(p.incremental.backoff.max_ms.max(0) as u64)),
        },
        "schedule": {
            "enabled": schedule.enabled,
            "poll_interval": duration(schedule.poll_interval),
            "full_sync_every": full_sync_every,
            "full_sync_cron": full_sync_cron,
            "load_users_every": schedule.load_users_every.map(duration),
        },
    })
}

/// The configuration as understood, keyed and nested as in the file.
pub fn understood(s: &crate::config::Settings) -> Value {
    json!({
        "registry": {
            "url": duoprov_registry::url::redact(&s.registry_url),
            "password": s.registry_password.as_ref().map(source),
        },
        "daemon": {
            "listen": s.daemon.listen.to_string(),
            "lock_retry": duration(s.daemon.lock_retry),
            "metrics_token": s.daemon.metrics_token.as_ref().map(source),
            "console_token": s.daemon.console_token.as_ref().map(source),
            "console_secure_cookie": s.daemon.console_secure_cookie,
            "keep_change_log": duration(s.daemon.keep.change_log),
            "keep_runs": duration(s.daemon.keep.runs),
        },
        "duo": s.duo.iter().map(|(name, d)| (name.clone(), connection(d))).collect::<Map<String, Value>>(),
        "provisioner": s.provisioners.iter().map(|(name, p)| (name.clone(), provisioner(p))).collect::<Map<String, Value>>(),
    })
}

/// The sections of provisioner `name` and its Duo connection, as `duoprov config` prints them
/// (for the console's provisioner page).
pub fn provisioner_text(s: &crate::config::Settings, name: &str) -> String {
    let whole = understood(s);
    let mut out = String::new();
    if let Some(p) = s.provisioners.get(name) {
        if let Some(Value::Object(t)) = whole.get("provisioner").and_then(|v| v.get(name)) {
            section(&mut out, &format!("provisioner.{name}"), t);
        }
        if let Some(Value::Object(t)) = whole.get("duo").and_then(|v| v.get(&p.duo)) {
            section(&mut out, &format!("duo.{}", p.duo), t);
        }
    }
    out.trim_start().to_owned()
}

/// One value as text: strings quoted as TOML does, unset values said so.
fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "(not set)".to_owned(),
        other => other.to_string(),
    }
}

/// Writes `table` under `[path]`: its plain keys first, then each nested table as its own section.
fn section(out: &mut String, path: &str, table: &Map<String, Value>) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\n[{path}]");
    for (k, v) in table {
        if !v.is_object() {
            let _ = writeln!(out, "{k} = {}", scalar(v));
        }
    }
    for (k, v) in table {
        if let Value::Object(inner) = v {
            section(out, &format!("{path}.{k}"), inner);
        }
    }
}

/// The understood configuration as text, in the file's sections.
pub fn text(value: &Value) -> String {
    let mut out = String::from("# the configuration as duoprov understood it, defaults resolved; secrets by their source only\n");
    for top in ["registry", "daemon"] {
        if let Some(Value::Object(t)) = value.get(top) {
            section(&mut out, top, t);
        }
    }
    for top in ["duo", "provisioner"] {
        match value.get(top) {
            Some(Value::Object(items)) if !items.is_empty() => {
                for (name, v) in items {
                    if let Value::Object(t) = v {
                        section(&mut out, &format!("{top}.{name}"), t);
                    }
                }
            }
            _ => out.push_str(&format!("\n# no [{top}.*] section\n")),
        }
    }
    out
}

pub fn run(ctx: &Context) -> Result<u8> {
    let value = understood(&ctx.settings);
    if ctx.json {
        output::json(&value)?;
    } else {
        print!("{}", text(&value));
    }
    Ok(exit::OK)
}
