//! The configuration file (TOML) read into validated settings. Unknown keys are errors that name
//! the key; secrets (the Duo secret key, a database password) come only from the environment or a
//! file, are held in types that cannot be printed, and are read only when a command needs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use duoprov_model::GroupName;
use duoprov_plan::{DeletePolicy, Mapping, MappingConfig, Policy, Thresholds, UserDeleteMode};
use secrecy::SecretString;
use serde::Deserialize;

/// The registry section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    url: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
}

/// One Duo connection (`[duo.NAME]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDuo {
    api_host: String,
    integration_key: String,
    /// Present only to refuse it with a clear message.
    secret_key: Option<toml::Value>,
    secret_key_file: Option<PathBuf>,
    secret_key_env: Option<String>,
    url: Option<String>,
    proxy: Option<String>,
    proxy_password_env: Option<String>,
    proxy_password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    tls_roots: Option<String>,
    signature_version: Option<u8>,
    timeout_secs: Option<u64>,
    writes_per_minute: Option<u32>,
    single_reads_per_minute: Option<u32>,
    page_reads_per_minute: Option<u32>,
    list_lookups_per_minute: Option<u32>,
    bulk_per_minute: Option<u32>,
    adaptive_pacing: Option<bool>,
    pacing_recovery_secs: Option<u64>,
    pacing_recovery_ms: Option<u64>,
    max_concurrency: Option<usize>,
    server_retries: Option<u32>,
    retry_backoff_ms: Option<u64>,
    bulk: Option<String>,
}

/// One provisioner (`[provisioner.NAME]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvisioner {
    duo: String,
    create_users: Option<bool>,
    create_groups: Option<bool>,
    log_http: Option<String>,
    log_http_bodies: Option<String>,
    log_http_format: Option<String>,
    load_duo_users: Option<bool>,
    eligible_group: Option<String>,
    subject_sources: Option<Vec<String>>,
    sync_back_group: Option<String>,
    sync_back_rule: Option<String>,
    select_regex: Option<String>,
    only_policy_groups: Option<bool>,
    delete_groups: Option<String>,
    delete_memberships: Option<String>,
    delete_users: Option<String>,
    user_delete_mode: Option<String>,
    update_adopted: Option<bool>,
    concurrency: Option<usize>,
    #[serde(default)]
    templates: RawTemplates,
    #[serde(default)]
    thresholds: RawThresholds,
    #[serde(default)]
    incremental: RawIncremental,
    #[serde(default)]
    schedule: RawSchedule,
    /// `[provisioner.NAME.admin_roles]`: Duo administrator roles from registry groups.
    admin_roles: Option<RawAdminRoles>,
}

/// Duo administrator roles (`[provisioner.NAME.admin_roles]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdminRoles {
    /// Registry group name → Duo role.
    #[serde(default)]
    groups: BTreeMap<String, String>,
    /// Roles, highest first (default: Duo's order, Owner first).
    priority: Option<Vec<String>>,
    /// `email` (default), `login_id` or `id`.
    email_attribute: Option<String>,
    send_email: Option<bool>,
    /// `disable` (default), `delete` or `keep`.
    admin_remove_mode: Option<String>,
}

fn admin_roles(key: &str, raw: RawAdminRoles) -> Result<duoprov_plan::AdminRoles> {
    let key = format!("{key}.admin_roles");
    let mut groups = Vec::new();
    for (g, role) in raw.groups {
        GroupName::parse(&g).map_err(|e| anyhow::anyhow!("{key}.groups.{g:?}: {}", e.message))?;
        groups.push((g, role));
    }
    let email_attribute = match raw.email_attribute.as_deref() {
        None => duoprov_plan::EmailAttribute::Email,
        Some(a) => duoprov_plan::EmailAttribute::parse(a).ok_or_else(|| anyhow::anyhow!("{key}.email_attribute: must be email, login_id or id, not {a:?}"))?,
    };
    let remove_mode = match raw.admin_remove_mode.as_deref() {
        None | Some("disable") => duoprov_plan::AdminRemoveMode::Disable,
        Some("delete") => duoprov_plan::AdminRemoveMode::Delete,
        Some("keep") => duoprov_plan::AdminRemoveMode::Keep,
        Some(other) => bail!("{key}.admin_remove_mode: must be disable, delete or keep, not {other:?}"),
    };
    let roles = duoprov_plan::AdminRoles {
        groups,
        priority: raw.priority.unwrap_or_else(|| duoprov_plan::DUO_ADMIN_ROLES.iter().map(|r| (*r).to_owned()).collect()),
        email_attribute,
        send_email: raw.send_email.unwrap_or(false),
        remove_mode,
    };
    roles.validate().map_err(|e| anyhow::anyhow!("{key}.{e}"))?;
    Ok(roles)
}

/// Incremental sync thresholds and retries (`[provisioner.NAME.incremental]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncremental {
    full_sync_above_changes: Option<usize>,
    full_sync_above_objects: Option<usize>,
    whole_group_above: Option<usize>,
    retry_base: Option<String>,
    retry_max: Option<String>,
}

/// What the daemon runs and when (`[provisioner.NAME.schedule]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    enabled: Option<bool>,
    poll_interval: Option<String>,
    full_sync_every: Option<String>,
    full_sync_cron: Option<String>,
    load_users_every: Option<String>,
}

/// The daemon (`[daemon]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    listen: Option<String>,
    lock_retry: Option<String>,
    metrics_token_file: Option<PathBuf>,
    metrics_token_env: Option<String>,
    console_token_file: Option<PathBuf>,
    console_token_env: Option<String>,
    console_secure_cookie: Option<bool>,
    keep_change_log: Option<String>,
    keep_runs: Option<String>,
}

/// Parses `500ms`, `2s`, `30m`, `6h`, `1d`; the error names `key`.
pub fn parse_duration(key: &str, text: &str) -> Result<std::time::Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| anyhow::anyhow!("{key}: expected a duration such as 500ms, 2s, 30m, 6h or 1d, not {text:?}"))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => bail!("{key}: expected a duration such as 500ms, 2s, 30m, 6h or 1d, not {text:?}"),
    };
    match ms {
        Some(ms) if ms > 0 && ms <= 366 * 86_400_000 => Ok(std::time::Duration::from_millis(ms)),
        _ => bail!("{key}: must be more than 0 and at most a year, not {text:?}"),
    }
}

pub use duoprov_daemon::{FullSyncSchedule, Schedule};

/// The daemon's settings.
#[derive(Debug, Clone)]
pub struct Daemon {
    pub listen: std::net::SocketAddr,
    /// How often a standby daemon tries to take over a provisioner.
    pub lock_retry: std::time::Duration,
    /// The token `/metrics` and `/readyz`'s details require (`daemon.metrics_token_file` or
    /// `_env`); required when the status page listens off loopback.
    pub metrics_token: Option<SecretSource>,
    /// The token the console requires (`daemon.console_token_file` or `_env`): without one the
    /// console is open on loopback and closed elsewhere.
    pub console_token: Option<SecretSource>,
    /// Marks the console's session cookie `Secure` (`daemon.console_secure_cookie`), for a
    /// console reached over HTTPS through a TLS-terminating proxy.
    pub console_secure_cookie: bool,
    /// How long the registry keeps consumed change-log entries and finished runs.
    pub keep: duoprov_daemon::Keep,
}

impl Daemon {
    /// Whether the status page may listen on `addr`: loopback always; any other address only
    /// with a metrics token. The error names the setting and the fix.
    pub fn check_listen(&self, what: &str, addr: std::net::SocketAddr) -> Result<()> {
        if !addr.ip().is_loopback() && self.metrics_token.is_none() {
            bail!(
                "{what}: {addr} is not a loopback address, and off loopback the status page needs a token: set daemon.metrics_token_file (a file readable by duoprov's user only, holding at least {MIN_TOKEN_CHARS} characters, e.g. from `openssl rand -hex 24`) or daemon.metrics_token_env; or listen on 127.0.0.1 behind a proxy"
            );
        }
        Ok(())
    }

    /// Reads the console token, if one is configured, under the metrics token's rules.
    pub fn read_console_token(&self) -> Result<Option<SecretString>> {
        let Some(source) = &self.console_token else { return Ok(None) };
        let key = source.key("daemon", "console_token");
        let token = source.read_private(&key)?;
        let chars = secrecy::ExposeSecret::expose_secret(&token).chars().count();
        if chars < MIN_TOKEN_CHARS {
            bail!("{key}: the token has {chars} characters; use at least {MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 24`)");
        }
        Ok(Some(token))
    }

    /// Reads the metrics token, if one is configured: a file group or others can read, an empty
    /// or short token is refused, naming the setting and never the value.
    pub fn read_metrics_token(&self) -> Result<Option<SecretString>> {
        let Some(source) = &self.metrics_token else { return Ok(None) };
        let key = source.key("daemon", "metrics_token");
        let token = source.read_private(&key)?;
        let chars = secrecy::ExposeSecret::expose_secret(&token).chars().count();
        if chars < MIN_TOKEN_CHARS {
            bail!("{key}: the token has {chars} characters; use at least {MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 24`)");
        }
        Ok(Some(token))
    }
}

/// The shortest metrics token accepted.
pub const MIN_TOKEN_CHARS: usize = 16;

impl Default for Daemon {
    fn default() -> Self {
        Daemon { listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9464)), lock_retry: std::time::Duration::from_secs(1), metrics_token: None, console_token: None, console_secure_cookie: false, keep: duoprov_daemon::Keep::default() }
    }
}

/// Field templates (`[provisioner.NAME.templates]`): a template string, or `false` for a field
/// duoprov leaves unmanaged (neither sent nor compared). Omitted means the default template.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplates {
    group_name: Option<RawTemplate>,
    group_desc: Option<RawTemplate>,
    username: Option<RawTemplate>,
    realname: Option<RawTemplate>,
    email: Option<RawTemplate>,
    firstname: Option<RawTemplate>,
    lastname: Option<RawTemplate>,
    alias1: Option<String>,
    alias2: Option<String>,
    alias3: Option<String>,
    alias4: Option<String>,
}

/// One template setting: the template, or `false` (unmanaged).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawTemplate {
    Template(String),
    Managed(bool),
}

/// Safety thresholds (`[provisioner.NAME.thresholds]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    max_group_deletes: Option<usize>,
    max_user_deletes: Option<usize>,
    max_membership_removals: Option<usize>,
    max_group_removal_percent: Option<u32>,
    percent_rule_min_members: Option<usize>,
    max_admin_removals: Option<usize>,
    /// The sync-back group's removals (`sync_back_group`).
    sync_back_max_removals: Option<usize>,
    sync_back_max_removal_percent: Option<u32>,
}

fn delete_policy(key: &str, value: Option<&str>, default: DeletePolicy) -> Result<DeletePolicy> {
    Ok(match value {
        None => default,
        Some("never") => DeletePolicy::Never,
        Some("created_by_us") => DeletePolicy::CreatedByUs,
        Some("not_in_source") => DeletePolicy::NotInSource,
        Some("registry_deleted") if key.ends_with(".delete_groups") => DeletePolicy::RegistryDeleted,
        Some("registry_deleted") => {
            bail!("{key}: registry_deleted is for delete_groups only; use never, created_by_us or not_in_source")
        }
        Some(other) if key.ends_with(".delete_groups") => {
            bail!("{key}: must be never, created_by_us, not_in_source or registry_deleted, not {other:?}")
        }
        Some(other) => bail!("{key}: must be never, created_by_us or not_in_source, not {other:?}"),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    registry: Option<RawRegistry>,
    #[serde(default)]
    duo: BTreeMap<String, RawDuo>,
    #[serde(default)]
    provisioner: BTreeMap<String, RawProvisioner>,
    daemon: Option<RawDaemon>,
    #[serde(default)]
    source: BTreeMap<String, crate::source_config::RawSource>,
}

/// Where a secret comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret; the error names the variable or file, never the value.
    pub fn read(&self, what: &str) -> Result<SecretString> {
        match self {
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_owned())),
                _ => bail!("{what}: environment variable {var} is not set (or empty); set it to the secret"),
            },
            SecretSource::File(path) => {
                warn_if_readable_by_others(path);
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("{what}: cannot read {}; create it with the secret alone on its first line, readable by duoprov's user only (chmod 600)", path.display())
                })?;
                let value = text.trim();
                if value.is_empty() {
                    bail!("{what}: {} is empty; put the secret in it", path.display());
                }
                Ok(SecretString::from(value.to_owned()))
            }
        }
    }

    /// The configuration key this source comes from, under `section` (`registry.password_file`).
    pub fn key(&self, section: &str, stem: &str) -> String {
        match self {
            SecretSource::Env(_) => format!("{section}.{stem}_env"),
            SecretSource::File(_) => format!("{section}.{stem}_file"),
        }
    }

    /// Reads a database password or a token: like [`SecretSource::read`], but a file that group
    /// or others can read is refused, as libpq refuses such a `.pgpass`.
    pub fn read_private(&self, what: &str) -> Result<SecretString> {
        #[cfg(unix)]
        if let SecretSource::File(path) = self {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    bail!("{what}: {} (mode {mode:o}) can be read by group or others; chmod 600 it", path.display());
                }
            }
        }
        self.read(what)
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "Secret file is readable by group or others; chmod 600 it.");
        }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

/// A validated Duo connection.
#[derive(Debug, Clone)]
pub struct DuoConnection {
    pub name: String,
    pub api_host: String,
    pub integration_key: String,
    pub secret_key: SecretSource,
    pub url: Option<String>,
    /// The proxy URL, never with a password (a user name may be in it).
    pub proxy: Option<String>,
    /// Where the proxy's password comes from (basic authentication with the URL's user name).
    pub proxy_password: Option<SecretSource>,
    pub ca_file: Option<PathBuf>,
    /// Which CAs are trusted for Duo: `system` (default), `duo` (Duo's pinned set) or a PEM file.
    pub tls_roots: duoprov_duo::TlsRoots,
    pub signature_version: u8,
    pub timeout_secs: u64,
    /// Client-side pacing; `None` keeps the client's defaults (≈ 80 % of Duo's published limits).
    pub writes_per_minute: Option<u32>,
    pub single_reads_per_minute: Option<u32>,
    pub page_reads_per_minute: Option<u32>,
    /// Unpaged lookups by id or username lists per minute; `None` keeps the default (32).
    pub list_lookups_per_minute: Option<u32>,
    /// Bulk calls per minute; `None` keeps the default (40).
    pub bulk_per_minute: Option<u32>,
    /// Whether each class's rate adapts to 429s; `None` keeps the default (yes).
    pub adaptive_pacing: Option<bool>,
    /// Seconds without a 429 per recovery step; `None` keeps the default (30).
    pub pacing_recovery_secs: Option<u64>,
    /// The same in milliseconds, for a Duo whose time runs faster (a benchmark scaling Duo's
    /// rates scales this too); exclusive with `pacing_recovery_secs`.
    pub pacing_recovery_ms: Option<u64>,
    pub max_concurrency: Option<usize>,
    /// Retries after a 5xx or a broken connection; `None` keeps the client's default (3).
    pub server_retries: Option<u32>,
    /// First wait of the retry schedule (429s, 5xx, broken connections), in ms; the waits
    /// double up to 32 times it, each plus jitter below it. Default: 1 000 (Duo's clients').
    pub retry_backoff_ms: Option<u64>,
    /// Whether user modifies, deletes and membership changes use `/admin/v1/bulk`
    /// (`auto`, the default: bulk with single-call fallback; `always`; `never`).
    pub bulk: duoprov_duo::BulkMode,
}

/// HTTP traffic logging, as Grouper's `logCommandsAlways` / `logCommandsOnError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogHttp {
    Off,
    OnError,
    Always,
}

/// A validated provisioner.
#[derive(Debug, Clone)]
pub struct Provisioner {
    pub name: String,
    pub duo: String,
    pub create_users: bool,
    pub log_http: LogHttp,
    /// How much of request and response bodies the traffic log shows (`masked`, the default:
    /// e-mail addresses and phone numbers masked; `full`; `none`).
    pub log_http_bodies: duoprov_duo::BodyLog,
    /// How traffic-log entries are written (`full`, the default; `compact`: one line per call).
    pub log_http_format: duoprov_duo::TrafficFormat,
    pub load_duo_users: bool,
    pub eligible_group: Option<GroupName>,
    pub subject_sources: Option<Vec<String>>,
    pub policy: Policy,
    pub mapping: Arc<Mapping>,
    pub concurrency: usize,
    pub incremental: duoprov_sync::IncrementalSettings,
    pub schedule: Schedule,
    /// The other provisioners of the same Duo account: the same `[duo.X]` connection, or one
    /// with the same API host (and URL).
    pub shares_duo_with: Vec<String>,
    /// `sync_back_group` and `sync_back_rule`: the registry group kept equal to the Duo users
    /// meeting the rule after each load of the Duo users table.
    pub sync_back: Option<duoprov_sync::sync_back::SyncBackSettings>,
    /// `select_regex` and `only_policy_groups`.
    pub selection_rules: duoprov_sync::SelectionRules,
}

/// Everything the configuration says, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The registry URL, relative SQLite paths resolved against the configuration's folder.
    pub registry_url: String,
    pub registry_password: Option<SecretSource>,
    pub duo: BTreeMap<String, DuoConnection>,
    pub provisioners: BTreeMap<String, Provisioner>,
    pub daemon: Daemon,
    /// `[source.NAME]`: LDAP directories and snapshot files mirrored into the registry.
    pub sources: BTreeMap<String, crate::source_config::SourceConfig>,
}

pub const DEFAULT_REGISTRY_URL: &str = "sqlite://duoprov.db";

/// Parses and validates a configuration text; `base` is the folder relative paths start from.
pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Settings> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(origin, text, e))?;
    let registry = raw.registry.unwrap_or_default();
    let url = registry.url.unwrap_or_else(|| DEFAULT_REGISTRY_URL.to_owned());
    duoprov_registry::url::backend_of(&url).map_err(|e| anyhow::anyhow!("{origin}: registry.url: {e}"))?;
    if duoprov_registry::url::has_password(&url) {
        bail!(
            "{origin}: registry.url: holds a password; keep secrets out of the file (use registry.password_env, registry.password_file or the DUOPROV_REGISTRY_URL variable)"
        );
    }
    let registry_password = match (registry.password_file, registry.password_env) {
        (Some(_), Some(_)) => bail!("{origin}: registry: set password_file or password_env, not both"),
        (Some(f), None) => Some(SecretSource::File(base.join(f))),
        (None, Some(v)) => Some(SecretSource::Env(v)),
        (None, None) => None,
    };

    let mut duo = BTreeMap::new();
    for (name, d) in raw.duo {
        let key = format!("{origin}: duo.{name}");
        if d.secret_key.is_some() {
            bail!("{key}.secret_key: secrets may not be written in the configuration; use secret_key_env or secret_key_file");
        }
        let secret_key = match (d.secret_key_file, d.secret_key_env) {
            (Some(_), Some(_)) => bail!("{key}: set secret_key_file or secret_key_env, not both"),
            (Some(f), None) => SecretSource::File(base.join(f)),
            (None, Some(v)) => SecretSource::Env(v),
            (None, None) => bail!("{key}: secret_key_file or secret_key_env is required"),
        };
        if d.api_host.trim().is_empty() || d.api_host.contains('/') {
            bail!("{key}.api_host: expected a host name such as api-xxxxxxxx.duosecurity.com");
        }
        if d.integration_key.len() != 20 || !d.integration_key.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("{key}.integration_key: expected 20 letters and digits (DI…)");
        }
        if let Some(url) = &d.url {
            let loopback = ["http://127.", "http://localhost", "http://[::1]"].iter().any(|p| url.starts_with(p));
            if !(url.starts_with("https://") || loopback) {
                bail!("{key}.url: plain HTTP is allowed only to a loopback address (127.0.0.0/8, localhost, [::1])");
            }
        }
        let proxy_password = match (d.proxy_password_file, d.proxy_password_env) {
            (Some(_), Some(_)) => bail!("{key}: set proxy_password_file or proxy_password_env, not both"),
            (Some(f), None) => Some(SecretSource::File(base.join(f))),
            (None, Some(v)) => Some(SecretSource::Env(v)),
            (None, None) => None,
        };
        if let Some(proxy) = &d.proxy {
            // The URL is not echoed: it may hold a password.
            let parsed = url::Url::parse(proxy)
                .map_err(|e| anyhow::anyhow!("{key}.proxy: not a URL such as http://proxy.example.edu:3128 ({e})"))?;
            if parsed.password().is_some() {
                bail!(
                    "{key}.proxy: holds a password; keep secrets out of the file (put the user name in the URL, http://USER@proxy.example.edu:3128, and the password in proxy_password_env or proxy_password_file)"
                );
            }
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                bail!("{key}.proxy: expected http://HOST:PORT or https://HOST:PORT");
            }
            if proxy_password.is_some() && parsed.username().is_empty() {
                bail!("{key}.proxy: a proxy password is configured, so the URL must name the user (http://USER@proxy.example.edu:3128)");
            }
        } else if proxy_password.is_some() {
            bail!("{key}: proxy_password_env or proxy_password_file is set without a proxy");
        }
        let tls_roots = match d.tls_roots.as_deref() {
            None | Some("system") => duoprov_duo::TlsRoots::System,
            Some("duo") => duoprov_duo::TlsRoots::Duo,
            Some("") => bail!("{key}.tls_roots: must be \"system\" (default), \"duo\" or the path of a PEM file"),
            Some(file) => duoprov_duo::TlsRoots::File(base.join(file)),
        };
        if d.ca_file.is_some() && tls_roots != duoprov_duo::TlsRoots::System {
            bail!("{key}.ca_file: adds to the system roots, so it needs tls_roots = \"system\"; with pinned roots, put every CA in the tls_roots file");
        }
        for (k, v) in [
            ("writes_per_minute", d.writes_per_minute),
            ("single_reads_per_minute", d.single_reads_per_minute),
            ("page_reads_per_minute", d.page_reads_per_minute),
            ("list_lookups_per_minute", d.list_lookups_per_minute),
            ("bulk_per_minute", d.bulk_per_minute),
        ] {
            if v == Some(0) {
                bail!("{key}.{k}: must be at least 1");
            }
        }
        if d.pacing_recovery_secs == Some(0) {
            bail!("{key}.pacing_recovery_secs: must be at least 1");
        }
        if d.pacing_recovery_ms == Some(0) {
            bail!("{key}.pacing_recovery_ms: must be at least 1");
        }
        if d.pacing_recovery_secs.is_some() && d.pacing_recovery_ms.is_some() {
            bail!("{key}: set pacing_recovery_secs or pacing_recovery_ms, not both");
        }
        if d.max_concurrency == Some(0) {
            bail!("{key}.max_concurrency: must be at least 1");
        }
        if d.retry_backoff_ms.is_some_and(|n| !(1..=60_000).contains(&n)) {
            bail!("{key}.retry_backoff_ms: must be between 1 and 60000 (the first wait after a 429 or a 5xx, in milliseconds; default 1000)");
        }
        if d.server_retries.is_some_and(|n| n > 10) {
            bail!("{key}.server_retries: must be at most 10 (the waits double from 1 s)");
        }
        let signature_version = d.signature_version.unwrap_or(5);
        if signature_version != 2 && signature_version != 5 {
            bail!("{key}.signature_version: must be 5 (default) or 2");
        }
        let bulk = match d.bulk.as_deref().unwrap_or("auto") {
            "auto" => duoprov_duo::BulkMode::Auto,
            "always" => duoprov_duo::BulkMode::Always,
            "never" => duoprov_duo::BulkMode::Never,
            other => bail!("{key}.bulk: must be auto (default), always or never, not {other:?}"),
        };
        if bulk == duoprov_duo::BulkMode::Always && signature_version != 5 {
            bail!("{key}.bulk: \"always\" needs signature_version = 5 (Duo's bulk endpoint is only known to take v5-signed JSON); use \"auto\" or \"never\"");
        }
        duo.insert(
            name.clone(),
            DuoConnection {
                name,
                api_host: d.api_host,
                integration_key: d.integration_key,
                secret_key,
                url: d.url,
                proxy: d.proxy,
                proxy_password,
                ca_file: d.ca_file.map(|f| base.join(f)),
                tls_roots,
                signature_version,
                timeout_secs: d.timeout_secs.unwrap_or(60),
                writes_per_minute: d.writes_per_minute,
                single_reads_per_minute: d.single_reads_per_minute,
                page_reads_per_minute: d.page_reads_per_minute,
                list_lookups_per_minute: d.list_lookups_per_minute,
                bulk_per_minute: d.bulk_per_minute,
                adaptive_pacing: d.adaptive_pacing,
                pacing_recovery_secs: d.pacing_recovery_secs,
                pacing_recovery_ms: d.pacing_recovery_ms,
                max_concurrency: d.max_concurrency,
                server_retries: d.server_retries,
                retry_backoff_ms: d.retry_backoff_ms,
                bulk,
            },
        );
    }

    let mut provisioners = BTreeMap::new();
    for (name, p) in raw.provisioner {
        let key = format!("{origin}: provisioner.{name}");
        if !duo.contains_key(&p.duo) {
            bail!("{key}.duo: no Duo connection [duo.{}] in the configuration", p.duo);
        }
        let log_http = match p.log_http.as_deref().unwrap_or("off") {
            "off" => LogHttp::Off,
            "on_error" => LogHttp::OnError,
            "always" => LogHttp::Always,
            other => bail!("{key}.log_http: must be off, on_error or always, not {other:?}"),
        };
        let log_http_bodies = match p.log_http_bodies.as_deref() {
            None => duoprov_duo::BodyLog::Masked,
            Some(text) => text.parse().map_err(|e| anyhow::anyhow!("{key}.log_http_bodies: {e} (default masked)"))?,
        };
        let log_http_format = match p.log_http_format.as_deref() {
            None => duoprov_duo::TrafficFormat::Full,
            Some(text) => text.parse().map_err(|e| anyhow::anyhow!("{key}.log_http_format: {e} (default full)"))?,
        };
        let create_users = p.create_users.unwrap_or(true);
        let defaults = Policy::default();
        let t = &p.thresholds;
        let d = defaults.thresholds;
        let create_groups = p.create_groups.unwrap_or(true);
        if !create_groups && p.delete_groups.as_deref().is_some_and(|d| d != "never") {
            bail!("{key}: create_groups = false matches groups and never deletes one; remove delete_groups (or set it to never), or set create_groups = true");
        }
        let policy = Policy {
            create_users,
            create_groups,
            group_delete: delete_policy(&format!("{key}.delete_groups"), p.delete_groups.as_deref(), defaults.group_delete)?,
            membership_delete: delete_policy(&format!("{key}.delete_memberships"), p.delete_memberships.as_deref(), defaults.membership_delete)?,
            user_delete: delete_policy(&format!("{key}.delete_users"), p.delete_users.as_deref(), defaults.user_delete)?,
            user_delete_mode: match p.user_delete_mode.as_deref() {
                None | Some("trash") => UserDeleteMode::Trash,
                Some("delete") => UserDeleteMode::Delete,
                Some("disable_then_trash") => UserDeleteMode::DisableThenTrash,
                Some("disable") => UserDeleteMode::Disable,
                Some(other) => bail!("{key}.user_delete_mode: must be trash, disable_then_trash, disable or delete, not {other:?}"),
            },
            update_adopted: p.update_adopted.unwrap_or(false),
            thresholds: Thresholds {
                max_group_deletes: t.max_group_deletes.unwrap_or(d.max_group_deletes),
                max_user_deletes: t.max_user_deletes.unwrap_or(d.max_user_deletes),
                max_membership_removals: t.max_membership_removals.unwrap_or(d.max_membership_removals),
                max_group_removal_percent: t.max_group_removal_percent.unwrap_or(d.max_group_removal_percent),
                percent_rule_min_members: t.percent_rule_min_members.unwrap_or(d.percent_rule_min_members),
                max_admin_removals: t.max_admin_removals.unwrap_or(d.max_admin_removals),
            },
            admin_roles: p.admin_roles.map(|r| admin_roles(&key, r)).transpose()?,
        };
        let tm = p.templates;
        let mut unmanaged = std::collections::BTreeSet::new();
        let mut template = |key: &str, raw: Option<RawTemplate>| -> anyhow::Result<Option<String>> {
            match raw {
                None => Ok(None),
                Some(RawTemplate::Template(t)) => Ok(Some(t)),
                Some(RawTemplate::Managed(false)) => {
                    unmanaged.insert(key.to_owned());
                    Ok(None)
                }
                Some(RawTemplate::Managed(true)) => Err(anyhow::anyhow!(
                    "{origin}: provisioner.{name}.templates.{key}: `true` is not a template; give a template string, omit the key for the default, or `false` to leave the field unmanaged"
                )),
            }
        };
        let mapping_config = MappingConfig {
            group_name: template("group_name", tm.group_name)?,
            group_desc: template("group_desc", tm.group_desc)?,
            username: template("username", tm.username)?,
            realname: template("realname", tm.realname)?,
            email: template("email", tm.email)?,
            firstname: template("firstname", tm.firstname)?,
            lastname: template("lastname", tm.lastname)?,
            aliases: [tm.alias1, tm.alias2, tm.alias3, tm.alias4],
            unmanaged,
        };
        let mapping = Mapping::compile(&mapping_config, &format!("provisioner.{name}.templates"))
            .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        let eligible_group = p
            .eligible_group
            .as_deref()
            .map(GroupName::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("{key}.eligible_group: {}", e.message))?;
        if p.concurrency == Some(0) {
            bail!("{key}.concurrency: must be at least 1");
        }
        let sync_back = match (p.sync_back_group.as_deref(), p.sync_back_rule.as_deref()) {
            (None, None) => None,
            (None, Some(_)) => bail!("{key}.sync_back_rule: set sync_back_group too (the registry group to keep)"),
            (Some(g), rule) => {
                let group = GroupName::parse(g).map_err(|e| anyhow::anyhow!("{key}.sync_back_group: {}", e.message))?;
                let rule = duoprov_sync::sync_back::SyncBackRule::parse(rule.unwrap_or("enrolled")).map_err(|e| anyhow::anyhow!("{key}.sync_back_rule: {e}"))?;
                if eligible_group.as_ref() == Some(&group) {
                    bail!("{key}.sync_back_group: {group} is also the eligible_group; Duo's state would decide who is created in Duo. Name another group");
                }
                let mut sb = duoprov_sync::sync_back::SyncBackSettings::new(group, rule);
                sb.max_removals = p.thresholds.sync_back_max_removals.unwrap_or(sb.max_removals);
                sb.max_removal_percent = p.thresholds.sync_back_max_removal_percent.unwrap_or(sb.max_removal_percent);
                sb.percent_rule_min_members = policy.thresholds.percent_rule_min_members;
                Some(sb)
            }
        };
        if name.starts_with('@') {
            bail!("{key}: a provisioner's name cannot start with '@' ({} names the policy-group markers)", duoprov_model::POLICY_MARKER);
        }
        let select_regex = p
            .select_regex
            .as_deref()
            .map(|r| regex::Regex::new(r).map_err(|e| anyhow::anyhow!("{key}.select_regex: not a valid regular expression: {e}")))
            .transpose()?;
        let selection_rules = duoprov_sync::SelectionRules { select_regex, only_policy_groups: p.only_policy_groups.unwrap_or(false) };
        let inc = &p.incremental;
        let inc_defaults = duoprov_sync::IncrementalSettings::default();
        for (k, v) in [
            ("full_sync_above_changes", inc.full_sync_above_changes),
            ("full_sync_above_objects", inc.full_sync_above_objects),
        ] {
            if v == Some(0) {
                bail!("{key}.incremental.{k}: must be at least 1");
            }
        }
        let millis = |k: &str, v: &Option<String>| -> Result<Option<i64>> {
            v.as_deref().map(|t| parse_duration(&format!("{key}.incremental.{k}"), t).map(|d| d.as_millis() as i64)).transpose()
        };
        let backoff = duoprov_registry::Backoff {
            base_ms: millis("retry_base", &inc.retry_base)?.unwrap_or(inc_defaults.backoff.base_ms),
            max_ms: millis("retry_max", &inc.retry_max)?.unwrap_or(inc_defaults.backoff.max_ms),
        };
        if backoff.max_ms < backoff.base_ms {
            bail!("{key}.incremental.retry_max: must not be shorter than retry_base");
        }
        let incremental = duoprov_sync::IncrementalSettings {
            full_sync_above_changes: inc.full_sync_above_changes.unwrap_or(inc_defaults.full_sync_above_changes),
            full_sync_above_objects: inc.full_sync_above_objects.unwrap_or(inc_defaults.full_sync_above_objects),
            whole_group_above: inc.whole_group_above.unwrap_or(inc_defaults.whole_group_above),
            backoff,
            scoped_registry: inc_defaults.scoped_registry,
            scoped_links: inc_defaults.scoped_links,
        };
        let sc = &p.schedule;
        let dur = |k: &str, v: &Option<String>| -> Result<Option<std::time::Duration>> {
            v.as_deref().map(|t| parse_duration(&format!("{key}.schedule.{k}"), t)).transpose()
        };
        let full_sync = match (dur("full_sync_every", &sc.full_sync_every)?, &sc.full_sync_cron) {
            (Some(_), Some(_)) => bail!("{key}.schedule: set full_sync_every or full_sync_cron, not both"),
            (Some(d), None) => FullSyncSchedule::Every(d),
            (None, Some(expr)) => {
                let cron = croner::parser::CronParser::builder()
                    .seconds(croner::parser::Seconds::Disallowed)
                    .build()
                    .parse(expr)
                    .map_err(|e| anyhow::anyhow!("{key}.schedule.full_sync_cron: {e} (expected five fields: minute hour day month weekday)"))?;
                FullSyncSchedule::Cron(Arc::new(cron), expr.clone())
            }
            (None, None) => FullSyncSchedule::Every(std::time::Duration::from_secs(6 * 3600)),
        };
        let schedule = Schedule {
            enabled: sc.enabled.unwrap_or(true),
            poll_interval: dur("poll_interval", &sc.poll_interval)?.unwrap_or(std::time::Duration::from_secs(2)),
            full_sync,
            load_users_every: dur("load_users_every", &sc.load_users_every)?,
        };
        provisioners.insert(
            name.clone(),
            Provisioner {
                name,
                duo: p.duo,
                create_users,
                log_http,
                log_http_bodies,
                log_http_format,
                load_duo_users: p.load_duo_users.unwrap_or(false),
                eligible_group,
                subject_sources: p.subject_sources,
                policy,
                mapping: Arc::new(mapping),
                concurrency: p.concurrency.unwrap_or(4),
                incremental,
                schedule,
                shares_duo_with: Vec::new(),
                sync_back,
                selection_rules,
            },
        );
    }
    // Provisioners of one Duo account must not take each other's objects.
    // The account a connection reaches: its API host (and URL, for emulators and proxies).
    type Account = Option<(String, Option<String>)>;
    let account = |conn: &str| -> Account { duo.get(conn).map(|c| (c.api_host.to_lowercase(), c.url.clone())) };
    let accounts: Vec<(String, String, Account)> = provisioners.values().map(|p| (p.name.clone(), p.duo.clone(), account(&p.duo))).collect();
    for p in provisioners.values_mut() {
        let mine = account(&p.duo);
        p.shares_duo_with = accounts.iter().filter(|(n, conn, acc)| *n != p.name && (*conn == p.duo || (acc.is_some() && *acc == mine))).map(|(n, _, _)| n.clone()).collect();
    }
    let mut daemon = Daemon::default();
    if let Some(d) = raw.daemon {
        daemon.metrics_token = match (d.metrics_token_file, d.metrics_token_env) {
            (Some(_), Some(_)) => bail!("{origin}: daemon: set metrics_token_file or metrics_token_env, not both"),
            (Some(f), None) => Some(SecretSource::File(base.join(f))),
            (None, Some(v)) => Some(SecretSource::Env(v)),
            (None, None) => None,
        };
        daemon.console_token = match (d.console_token_file, d.console_token_env) {
            (Some(_), Some(_)) => bail!("{origin}: daemon: set console_token_file or console_token_env, not both"),
            (Some(f), None) => Some(SecretSource::File(base.join(f))),
            (None, Some(v)) => Some(SecretSource::Env(v)),
            (None, None) => None,
        };
        daemon.console_secure_cookie = d.console_secure_cookie.unwrap_or(false);
        if let Some(listen) = d.listen {
            let addr: std::net::SocketAddr =
                listen.parse().map_err(|_| anyhow::anyhow!("{origin}: daemon.listen: expected an address such as 127.0.0.1:9464, not {listen:?}"))?;
            daemon.check_listen(&format!("{origin}: daemon.listen"), addr)?;
            daemon.listen = addr;
        }
        if let Some(t) = d.lock_retry {
            daemon.lock_retry = parse_duration(&format!("{origin}: daemon.lock_retry"), &t)?;
        }
        if let Some(t) = d.keep_change_log {
            daemon.keep.change_log = parse_duration(&format!("{origin}: daemon.keep_change_log"), &t)?;
        }
        if let Some(t) = d.keep_runs {
            daemon.keep.runs = parse_duration(&format!("{origin}: daemon.keep_runs"), &t)?;
        }
    }
    let sources = crate::source_config::parse_sources(raw.source, origin, base)?;
    Ok(Settings { registry_url: resolve_sqlite_path(&url, base), registry_password, duo, provisioners, daemon, sources })
}

/// A TOML error as `FILE: line L, column C: MESSAGE (in `KEY`)`, without the source line that
/// toml's own message quotes: that line may hold a secret (an inline `secret_key` with a syntax
/// error, a password in `registry.url` followed by junk), and secrets never reach an error.
fn toml_error(origin: &str, text: &str, mut e: toml::de::Error) -> anyhow::Error {
    let at = e.span().and_then(|span| text.get(..span.start)).map(|before| {
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("line {line}, column {column}: ")
    });
    // Without its input, the error shows only its message and the key path it knows.
    e.set_input(None);
    let message = e.to_string().trim_end().replace("\nin `", " (in `").replace('\n', "; ");
    let message = if message.contains(" (in `") { format!("{message})") } else { message };
    anyhow::anyhow!("{origin}: {}{message}", at.unwrap_or_default())
}

/// `sqlite://relative.db` is relative to the configuration's folder, not to the working folder.
fn resolve_sqlite_path(url: &str, base: &Path) -> String {
    match url.strip_prefix("sqlite://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !rest.starts_with(":memory:") => {
            let (path, query) = rest.split_once('?').map(|(p, q)| (p, Some(q))).unwrap_or((rest, None));
            let joined = base.join(path);
            match query {
                Some(q) => format!("sqlite://{}?{q}", joined.display()),
                None => format!("sqlite://{}", joined.display()),
            }
        }
        _ => url.to_owned(),
    }
}

/// Loads the configuration file. A missing file is an error unless `registry_override` says
/// where the registry is (then nothing else is needed for registry commands).
pub fn load(path: &Path, registry_override: Option<&str>) -> Result<Settings> {
    let mut settings = match std::fs::read_to_string(path) {
        Ok(text) => {
            let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            parse(&text, &path.display().to_string(), base)?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && registry_override.is_some() => Settings {
            registry_url: DEFAULT_REGISTRY_URL.into(),
            registry_password: None,
            duo: BTreeMap::new(),
            provisioners: BTreeMap::new(),
            daemon: Daemon::default(),
            sources: BTreeMap::new(),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("no configuration at {}: run `duoprov init` to write one, or pass --config FILE", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if let Some(url) = registry_override {
        duoprov_registry::url::backend_of(url)?;
        settings.registry_url = url.to_owned();
    }
    Ok(settings)
}

/// The configuration `duoprov init` writes.
pub fn starter(registry_url: &str) -> String {
    format!(
        r#"# duoprov configuration. Secrets are never written here: they come from the environment
# or from a file readable only by the account that runs duoprov.

[registry]
url = "{registry_url}"
# For PostgreSQL: url = "postgres://duoprov@db.example.edu/duoprov?sslrootcert=/etc/duoprov/db-ca.pem" and
# password_env = "DUOPROV_DB_PASSWORD" (or password_file = "/etc/duoprov/db.password").

# A Duo Admin API application (needs "Grant read resource" and "Grant write resource").
# [duo.prod]
# api_host = "api-xxxxxxxx.duosecurity.com"
# integration_key = "DIXXXXXXXXXXXXXXXXXX"
# secret_key_file = "/etc/duoprov/duo.skey"     # or secret_key_env = "DUO_SKEY"
# bulk = "auto"             # auto | always | never: user and membership writes via /admin/v1/bulk

# A provisioner: which registry objects go to which Duo account.
# [provisioner.duoTest]
# duo = "prod"
# create_users = true
# create_groups = true      # false: match-only groups (never created, renamed or deleted)
# log_http = "off"          # off | on_error | always
# log_http_bodies = "masked" # masked (e-mail addresses, phone numbers) | full | none
# log_http_format = "full"   # full | compact (one line per call: method, path, status, time)
"#
    )
}

/// The integration key `duoprov init --with-emulator` writes and the emulator command it prints
/// uses. Not a secret (Duo shows integration keys to every administrator); the secret key is
/// generated per folder and kept in a private file.
pub const EMULATOR_IKEY: &str = "DIDUOPROVEMULATOR000";

/// The address `duoprov emulator` listens on by default, as a URL.
pub const EMULATOR_URL: &str = "http://127.0.0.1:8443";

/// The starter configuration with a `[duo.emulator]` connection to a local `duoprov emulator`
/// (secret key in `skey_file`, relative to the configuration's folder) and a `duoTest`
/// provisioner using it.
pub fn starter_with_emulator(registry_url: &str, skey_file: &str) -> String {
    format!(
        r#"{}
# The local Duo emulator (`duoprov emulator`, started as `duoprov init --with-emulator` printed).
# Its signatures name api_host, which the emulator checks against the host of `url`.
[duo.emulator]
api_host = "127.0.0.1"
integration_key = "{EMULATOR_IKEY}"
secret_key_file = "{skey_file}"
url = "{EMULATOR_URL}"

[provisioner.duoTest]
duo = "emulator"
"#,
        starter(registry_url)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Settings> {
        parse(text, "duoprov.toml", Path::new("/etc/duoprov"))
    }

    #[cfg(unix)]
    #[test]
    fn a_database_password_file_that_is_missing_empty_or_readable_by_others_is_refused_naming_the_setting() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db.password");
        let source = SecretSource::File(file.clone());
        let key = source.key("registry", "password");
        assert_eq!(key, "registry.password_file");
        let e = format!("{:#}", source.read_private(&key).unwrap_err());
        assert!(e.starts_with("registry.password_file: cannot read") && e.contains("chmod 600"), "{e}");
        std::fs::write(&file, "  \n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = format!("{:#}", source.read_private(&key).unwrap_err());
        assert!(e.contains("registry.password_file") && e.contains("is empty"), "{e}");
        std::fs::write(&file, "s3cret-db-pass\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = format!("{:#}", source.read_private(&key).unwrap_err());
        assert!(e.contains("registry.password_file") && e.contains("mode 644") && e.contains("chmod 600") && !e.contains("s3cret"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(source.read_private(&key).unwrap().expose_secret(), "s3cret-db-pass");
        let env = SecretSource::Env("DUOPROV_TEST_UNSET_DB_PASSWORD_VARIABLE".into());
        let e = format!("{:#}", env.read_private(&env.key("registry", "password")).unwrap_err());
        assert!(e.contains("registry.password_env") && e.contains("DUOPROV_TEST_UNSET_DB_PASSWORD_VARIABLE is not set"), "{e}");
    }

    #[test]
    fn starter_config_parses() {
        let s = parse_str(&starter("sqlite://duoprov.db")).unwrap();
        assert_eq!(s.registry_url, "sqlite:///etc/duoprov/duoprov.db");
        let s = parse_str(&starter_with_emulator("sqlite://duoprov.db", "duo-emulator.skey")).unwrap();
        assert_eq!(s.provisioners["duoTest"].duo, "emulator");
        assert_eq!(s.duo["emulator"].url.as_deref(), Some(EMULATOR_URL));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse_str("[registry]\nurl = \"sqlite://x.db\"\nurll = 1\n").unwrap_err().to_string();
        assert!(e.contains("urll"), "{e}");
        let e = parse_str("[registy]\n").unwrap_err().to_string();
        assert!(e.contains("registy"), "{e}");
        let e = parse_str(
            "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"S\"\n[provisioner.p]\nduo = \"prod\"\ncreate_user = true\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("create_user"), "{e}");
    }

    #[test]
    fn pacing_keys_old_and_new_are_read_and_a_zero_rate_is_named() {
        let conn = "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"S\"\n";
        let old = parse_str(&format!("{conn}writes_per_minute = 100\npage_reads_per_minute = 50\n")).unwrap();
        let d = &old.duo["prod"];
        assert_eq!((d.writes_per_minute, d.page_reads_per_minute, d.list_lookups_per_minute, d.bulk_per_minute), (Some(100), Some(50), None, None));
        let new = parse_str(&format!("{conn}list_lookups_per_minute = 20\nbulk_per_minute = 30\nadaptive_pacing = false\npacing_recovery_secs = 60\n")).unwrap();
        let d = &new.duo["prod"];
        assert_eq!((d.list_lookups_per_minute, d.bulk_per_minute, d.adaptive_pacing, d.pacing_recovery_secs), (Some(20), Some(30), Some(false), Some(60)));
        let ms = parse_str(&format!("{conn}pacing_recovery_ms = 300\n")).unwrap();
        assert_eq!(ms.duo["prod"].pacing_recovery_ms, Some(300));
        let both = parse_str(&format!("{conn}pacing_recovery_secs = 1\npacing_recovery_ms = 300\n")).unwrap_err().to_string();
        assert!(both.contains("duo.prod") && both.contains("not both"), "{both}");
        for key in ["bulk_per_minute", "list_lookups_per_minute", "pacing_recovery_secs", "pacing_recovery_ms"] {
            let e = parse_str(&format!("{conn}{key} = 0\n")).unwrap_err().to_string();
            assert!(e.contains(&format!("duo.prod.{key}")) && e.contains("at least 1"), "{e}");
        }
        let backoff = parse_str(&format!("{conn}retry_backoff_ms = 10\n")).unwrap();
        assert_eq!(backoff.duo["prod"].retry_backoff_ms, Some(10));
        for bad in [0, 60_001] {
            let e = parse_str(&format!("{conn}retry_backoff_ms = {bad}\n")).unwrap_err().to_string();
            assert!(e.contains("duo.prod.retry_backoff_ms") && e.contains("between 1 and 60000"), "{e}");
        }
    }

    #[test]
    fn provisioners_of_one_duo_account_know_each_other() {
        let conn = |name: &str, host: &str| format!("[duo.{name}]\napi_host = \"{host}\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"S\"\n");
        let text = format!(
            "{}{}{}[provisioner.a]\nduo = \"prod\"\n[provisioner.b]\nduo = \"prod\"\n[provisioner.c]\nduo = \"prod2\"\n[provisioner.d]\nduo = \"other\"\n",
            conn("prod", "api-x.duosecurity.com"),
            conn("prod2", "API-X.duosecurity.com"),
            conn("other", "api-y.duosecurity.com")
        );
        let s = parse_str(&text).unwrap();
        let shares = |p: &str| s.provisioners[p].shares_duo_with.clone();
        assert_eq!(shares("a"), ["b", "c"], "the same connection, or another one to the same API host");
        assert_eq!(shares("c"), ["a", "b"]);
        assert!(shares("d").is_empty());
    }

    #[test]
    fn inline_secrets_are_refused_without_echoing_them() {
        let e = parse_str("[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key = \"hunter2hunter2\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("duo.prod.secret_key") && !e.contains("hunter2"), "{e}");
        let e = parse_str("[registry]\nurl = \"postgres://u:hunter2@db/x\"\n").unwrap_err().to_string();
        assert!(e.contains("registry.url") && !e.contains("hunter2"), "{e}");
        let e = parse_str("[registry]\nurl = \"postgres://u@db/x?sslmode=verify-full&password=hunter2\"\n").unwrap_err().to_string();
        assert!(e.contains("registry.url") && e.contains("holds a password") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn a_proxy_password_in_the_url_is_refused_without_echoing_it() {
        let base = "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"S\"\n";
        for (extra, key, words) in [
            ("proxy = \"http://bob:hunter2@proxy.example.edu:3128\"\n", "duo.prod.proxy", "holds a password"),
            ("proxy = \"http://:hunter2@proxy.example.edu:3128\"\n", "duo.prod.proxy", "holds a password"),
            ("proxy = \"http://bob:hunter2@[proxy.example.edu:3128\"\n", "duo.prod.proxy", "not a URL"),
            ("proxy = \"socks9://bob@proxy:1\"\nproxy_password_env = \"P\"\n", "duo.prod.proxy", "http://HOST:PORT"),
            ("proxy = \"http://proxy.example.edu:3128\"\nproxy_password_env = \"P\"\n", "duo.prod.proxy", "must name the user"),
            ("proxy_password_env = \"P\"\n", "duo.prod", "without a proxy"),
            ("proxy = \"http://bob@proxy.example.edu:3128\"\nproxy_password_env = \"P\"\nproxy_password_file = \"p\"\n", "duo.prod", "not both"),
        ] {
            let e = parse_str(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(words) && !e.contains("hunter2"), "{extra}: {e}");
        }
        let s = parse_str(&format!("{base}proxy = \"http://bob@proxy.example.edu:3128\"\nproxy_password_file = \"proxy.pw\"\n")).unwrap();
        let d = &s.duo["prod"];
        assert_eq!(d.proxy.as_deref(), Some("http://bob@proxy.example.edu:3128"));
        assert!(matches!(&d.proxy_password, Some(SecretSource::File(f)) if f == Path::new("/etc/duoprov/proxy.pw")));
    }

    #[test]
    fn tls_roots_are_system_by_default_duo_or_a_file_and_exclude_ca_file() {
        let base = "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"S\"\n";
        assert_eq!(parse_str(base).unwrap().duo["prod"].tls_roots, duoprov_duo::TlsRoots::System);
        assert_eq!(parse_str(&format!("{base}tls_roots = \"duo\"\n")).unwrap().duo["prod"].tls_roots, duoprov_duo::TlsRoots::Duo);
        assert_eq!(
            parse_str(&format!("{base}tls_roots = \"roots.pem\"\n")).unwrap().duo["prod"].tls_roots,
            duoprov_duo::TlsRoots::File("/etc/duoprov/roots.pem".into())
        );
        let e = parse_str(&format!("{base}tls_roots = \"duo\"\nca_file = \"x.pem\"\n")).unwrap_err().to_string();
        assert!(e.contains("duo.prod.ca_file") && e.contains("tls_roots = \"system\""), "{e}");
        let e = parse_str(&format!("{base}tls_roots = \"\"\n")).unwrap_err().to_string();
        assert!(e.contains("duo.prod.tls_roots"), "{e}");
    }

    #[test]
    fn templates_and_policies_are_validated_with_their_keys() {
        let base = "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"S\"\n[provisioner.p]\nduo = \"prod\"\n";
        let e = parse_str(&format!("{base}[provisioner.p.templates]\nusername = \"{{{{ subject.login_id \"\n")).unwrap_err().to_string();
        assert!(e.contains("provisioner.p.templates.username:"), "{e}");
        let e = parse_str(&format!("{base}delete_users = \"always\"\n")).unwrap_err().to_string();
        assert!(e.contains("provisioner.p.delete_users"), "{e}");
        let e = parse_str(&format!("{base}[provisioner.p.thresholds]\nmax_group_delete = 3\n")).unwrap_err().to_string();
        assert!(e.contains("max_group_delete"), "{e}");
        let s = parse_str(&format!("{base}delete_users = \"created_by_us\"\n[provisioner.p.thresholds]\nmax_group_deletes = 3\n")).unwrap();
        let p = &s.provisioners["p"];
        assert_eq!(p.policy.user_delete, DeletePolicy::CreatedByUs);
        assert_eq!(p.policy.thresholds.max_group_deletes, 3);
        assert_eq!(p.policy.thresholds.max_user_deletes, 10);
    }

    #[test]
    fn a_false_template_leaves_the_field_unmanaged_and_required_fields_cannot_be_false() {
        let base = "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"S\"\n[provisioner.p]\nduo = \"prod\"\n";
        let s = parse_str(&format!("{base}[provisioner.p.templates]\nemail = false\ngroup_desc = false\nalias1 = \"{{{{ subject.id }}}}\"\n")).unwrap();
        let m = &s.provisioners["p"].mapping;
        assert!(!m.manages("email") && !m.manages("group_desc"));
        assert!(m.manages("realname") && m.manages("firstname"), "omitted templates keep their defaults");
        let e = parse_str(&format!("{base}[provisioner.p.templates]\nusername = false\n")).unwrap_err().to_string();
        assert!(e.contains("provisioner.p.templates.username") && e.contains("cannot be false"), "{e}");
        let e = parse_str(&format!("{base}[provisioner.p.templates]\nemail = true\n")).unwrap_err().to_string();
        assert!(e.contains("provisioner.p.templates.email"), "{e}");
    }

    #[test]
    fn schedules_and_incremental_settings_are_validated_with_their_keys() {
        let base = "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"S\"\n[provisioner.p]\nduo = \"prod\"\n";
        let s = parse_str(&format!("{base}[provisioner.p.schedule]\npoll_interval = \"500ms\"\nfull_sync_cron = \"0 3 * * 1-5\"\n[provisioner.p.incremental]\nretry_base = \"5s\"\nretry_max = \"10m\"\nwhole_group_above = 7\n")).unwrap();
        let p = &s.provisioners["p"];
        assert_eq!(p.schedule.poll_interval, std::time::Duration::from_millis(500));
        assert!(matches!(&p.schedule.full_sync, FullSyncSchedule::Cron(_, e) if e == "0 3 * * 1-5"));
        assert_eq!((p.incremental.backoff.base_ms, p.incremental.backoff.max_ms, p.incremental.whole_group_above), (5_000, 600_000, 7));
        let d = parse_str(base).unwrap();
        assert!(matches!(d.provisioners["p"].schedule.full_sync, FullSyncSchedule::Every(t) if t == std::time::Duration::from_secs(6 * 3600)));
        assert_eq!(d.daemon.listen, std::net::SocketAddr::from(([127, 0, 0, 1], 9464)));
        assert_eq!(d.daemon.keep, duoprov_daemon::Keep::default());
        let k = parse_str(&format!("{base}[daemon]\nkeep_change_log = \"7d\"\nkeep_runs = \"12h\"\n")).unwrap().daemon.keep;
        assert_eq!((k.change_log.as_secs(), k.runs.as_secs()), (7 * 86_400, 12 * 3600));
        for (extra, key) in [
            ("[provisioner.p.schedule]\nfull_sync_cron = \"every day\"\n", "provisioner.p.schedule.full_sync_cron"),
            ("[provisioner.p.schedule]\nfull_sync_cron = \"0 3 * * *\"\nfull_sync_every = \"1h\"\n", "provisioner.p.schedule"),
            ("[provisioner.p.schedule]\npoll_interval = \"2 seconds\"\n", "provisioner.p.schedule.poll_interval"),
            ("[provisioner.p.schedule]\npoll_interval = \"0s\"\n", "provisioner.p.schedule.poll_interval"),
            ("[provisioner.p.incremental]\nretry_base = \"1h\"\nretry_max = \"1m\"\n", "provisioner.p.incremental.retry_max"),
            ("[provisioner.p.incremental]\nfull_sync_above_changes = 0\n", "provisioner.p.incremental.full_sync_above_changes"),
            ("[daemon]\nlisten = \"0.0.0.0:9464\"\n", "daemon.metrics_token_file"),
            ("[daemon]\nkeep_change_log = \"a month\"\n", "daemon.keep_change_log"),
            ("[daemon]\nkeep_runs = \"-1d\"\n", "daemon.keep_runs"),
            ("[daemon]\nmetrics_token_file = \"t\"\nmetrics_token_env = \"T\"\n", "daemon: set metrics_token_file or metrics_token_env, not both"),
        ] {
            let e = parse_str(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn off_loopback_the_status_page_needs_a_private_metrics_token_of_sixteen_characters() {
        use secrecy::ExposeSecret;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("metrics.token");
        let text = format!("[daemon]\nlisten = \"0.0.0.0:9464\"\nmetrics_token_file = \"{}\"\n", file.display());
        let settings = parse_str(&text).unwrap();
        assert_eq!(settings.daemon.listen, std::net::SocketAddr::from(([0, 0, 0, 0], 9464)));
        // The file is read when the daemon starts: missing, short, and readable by others are refused.
        let e = format!("{:#}", settings.daemon.read_metrics_token().unwrap_err());
        assert!(e.starts_with("daemon.metrics_token_file: cannot read"), "{e}");
        std::fs::write(&file, "short-secret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = format!("{:#}", settings.daemon.read_metrics_token().unwrap_err());
        assert!(e.contains("daemon.metrics_token_file") && e.contains("12 characters") && !e.contains("short-secret"), "{e}");
        std::fs::write(&file, "a-long-enough-metrics-token\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = format!("{:#}", settings.daemon.read_metrics_token().unwrap_err());
        assert!(e.contains("mode 640") && !e.contains("a-long-enough"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let token = settings.daemon.read_metrics_token().unwrap().unwrap();
        assert_eq!(token.expose_secret(), "a-long-enough-metrics-token");
        // A token also guards a loopback page; no token and loopback is the default, open page.
        assert!(parse_str("[daemon]\nlisten = \"127.0.0.1:9464\"\n").unwrap().daemon.read_metrics_token().unwrap().is_none());
        let no_token = parse_str("").unwrap().daemon;
        let e = no_token.check_listen("--listen", std::net::SocketAddr::from(([10, 0, 0, 5], 9464))).unwrap_err().to_string();
        assert!(e.starts_with("--listen: 10.0.0.5:9464 is not a loopback address") && e.contains("daemon.metrics_token_env"), "{e}");
    }

    #[test]
    fn provisioners_must_name_a_connection_and_valid_values() {
        let e = parse_str("[provisioner.p]\nduo = \"nope\"\n").unwrap_err().to_string();
        assert!(e.contains("provisioner.p.duo") && e.contains("[duo.nope]"), "{e}");
        let base = "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"S\"\n";
        let e = parse_str(&format!("{base}[provisioner.p]\nduo = \"prod\"\nlog_http = \"sometimes\"\n")).unwrap_err().to_string();
        assert!(e.contains("provisioner.p.log_http"), "{e}");
        let e = parse_str(&base.replace("api-x.duosecurity.com\"", "api-x.duosecurity.com\"\nurl = \"http://10.0.0.1:80\"")).unwrap_err().to_string();
        assert!(e.contains("duo.prod.url") && e.contains("loopback"), "{e}");
        let s = parse_str(&format!("{base}[provisioner.p]\nduo = \"prod\"\n")).unwrap();
        assert!(s.provisioners["p"].create_users && s.provisioners["p"].policy.create_groups);
        let s = parse_str(&format!("{base}[provisioner.p]\nduo = \"prod\"\ncreate_groups = false\n")).unwrap();
        assert!(!s.provisioners["p"].policy.create_groups);
        let e = parse_str(&format!("{base}[provisioner.p]\nduo = \"prod\"\ncreate_groups = false\ndelete_groups = \"created_by_us\"\n")).unwrap_err().to_string();
        assert!(e.contains("provisioner.p") && e.contains("create_groups = false") && e.contains("delete_groups"), "{e}");
    }

    #[test]
    fn traffic_log_bodies_are_masked_by_default_and_an_unknown_mode_is_named() {
        let base = "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"S\"\n[provisioner.p]\nduo = \"prod\"\n";
        assert_eq!(parse_str(base).unwrap().provisioners["p"].log_http_bodies, duoprov_duo::BodyLog::Masked);
        for (value, mode) in [("full", duoprov_duo::BodyLog::Full), ("none", duoprov_duo::BodyLog::None), ("masked", duoprov_duo::BodyLog::Masked)] {
            assert_eq!(parse_str(&format!("{base}log_http_bodies = \"{value}\"\n")).unwrap().provisioners["p"].log_http_bodies, mode);
        }
        let e = parse_str(&format!("{base}log_http_bodies = \"partly\"\n")).unwrap_err().to_string();
        assert!(e.contains("provisioner.p.log_http_bodies") && e.contains("masked, full, none"), "{e}");
    }

    #[test]
    fn the_traffic_log_format_is_full_by_default_and_an_unknown_format_is_named() {
        let base = "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"S\"\n[provisioner.p]\nduo = \"prod\"\n";
        assert_eq!(parse_str(base).unwrap().provisioners["p"].log_http_format, duoprov_duo::TrafficFormat::Full);
        for (value, format) in [("full", duoprov_duo::TrafficFormat::Full), ("compact", duoprov_duo::TrafficFormat::Compact)] {
            assert_eq!(parse_str(&format!("{base}log_http_format = \"{value}\"\n")).unwrap().provisioners["p"].log_http_format, format);
        }
        let e = parse_str(&format!("{base}log_http_format = \"short\"\n")).unwrap_err().to_string();
        assert!(e.contains("provisioner.p.log_http_format") && e.contains("full, compact"), "{e}");
    }

    #[test]
    fn bulk_is_auto_by_default_and_always_needs_signature_v5() {
        let base = "[duo.prod]\napi_host = \"api-x.duosecurity.com\"\nintegration_key = \"DIXXXXXXXXXXXXXXXXXX\"\nsecret_key_env = \"S\"\n";
        assert_eq!(parse_str(base).unwrap().duo["prod"].bulk, duoprov_duo::BulkMode::Auto);
        for (value, mode) in [("never", duoprov_duo::BulkMode::Never), ("always", duoprov_duo::BulkMode::Always), ("auto", duoprov_duo::BulkMode::Auto)] {
            assert_eq!(parse_str(&format!("{base}bulk = \"{value}\"\n")).unwrap().duo["prod"].bulk, mode);
        }
        let e = parse_str(&format!("{base}bulk = \"sometimes\"\n")).unwrap_err().to_string();
        assert!(e.contains("duo.prod.bulk") && e.contains("auto (default), always or never"), "{e}");
        let e = parse_str(&format!("{base}bulk = \"always\"\nsignature_version = 2\n")).unwrap_err().to_string();
        assert!(e.contains("duo.prod.bulk") && e.contains("signature_version = 5"), "{e}");
        // auto with v2 is accepted (it then sends single calls only).
        assert!(parse_str(&format!("{base}signature_version = 2\n")).is_ok());
    }
}
