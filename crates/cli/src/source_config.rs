//! The `[source.NAME]` sections of the configuration: what each source owns (its subject source
//! and folder), its safety thresholds, and how to read it (`kind = "file"` with its files, or
//! `kind = "ldap"` with the directory's URL, TLS, bind and attribute map, or `kind = "sql"` with a
//! PostgreSQL URL and three queries), and when the daemon runs it (`schedule`, and for LDAP the
//! `modifyTimestamp` `poll_interval` and the `sync_mode`: syncrepl, polling or `auto`). Scopes of two sources
//! may not overlap, and no source may own `local` subjects, which are made by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use duoprov_model::{FolderPath, MirrorScope, SubjectKey};
use duoprov_source::Thresholds;
use duoprov_daemon::sources::SourceSchedule;
use duoprov_daemon::FullSyncSchedule;
use duoprov_source::ldap::{GroupMap, LdapSettings, Preset, UserMap};
use duoprov_source::sql::{Queries, SqlSettings};
use serde::Deserialize;

use crate::config::SecretSource;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    kind: String,
    subject_source: String,
    folder: String,
    #[serde(default)]
    thresholds: Thresholds,
    /// kind = "file": the files `duoprov source sync` reads (JSON or CSV, by extension).
    #[serde(default)]
    files: Vec<PathBuf>,
    // kind = "ldap"
    url: Option<String>,
    starttls: Option<bool>,
    ca_file: Option<PathBuf>,
    bind_dn: Option<String>,
    /// Present only to refuse it with a clear message.
    password: Option<toml::Value>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    preset: Option<Preset>,
    page_size: Option<i32>,
    timeout_secs: Option<u64>,
    users: Option<UserMap>,
    groups: Option<GroupMap>,
    // kind = "sql"
    queries: Option<Queries>,
    // the daemon
    /// `every DURATION` or a five-field cron expression (UTC): when `duoprov run` reads the source.
    schedule: Option<String>,
    /// kind = "ldap": how often the daemon asks the directory for entries changed since its last
    /// read (`modifyTimestamp`); "off" for none.
    poll_interval: Option<String>,
    /// kind = "ldap": how the daemon learns of changes between scheduled reads: "auto"
    /// (syncrepl where the server offers it, else polling), "syncrepl" or "poll".
    sync_mode: Option<SyncMode>,
}

/// How the daemon learns of an LDAP directory's changes between scheduled reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Syncrepl (RFC 4533) where the server offers it, else `modifyTimestamp` polling.
    #[default]
    Auto,
    /// Syncrepl only: a server that does not offer it is reported as failing (and polled
    /// meanwhile if `poll_interval` is set).
    Syncrepl,
    /// `modifyTimestamp` polling only.
    Poll,
}

/// How a source is read.
#[derive(Debug, Clone)]
pub enum SourceKind {
    File { files: Vec<PathBuf> },
    /// The settings without the password, which is read only when the source runs.
    Ldap { settings: Box<LdapSettings>, password: Option<SecretSource> },
    /// The settings without the password, which is read only when the source runs.
    Sql { settings: Box<SqlSettings>, password: Option<SecretSource> },
}

impl SourceKind {
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::File { .. } => "file",
            SourceKind::Ldap { .. } => "ldap",
            SourceKind::Sql { .. } => "sql",
        }
    }
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub scope: MirrorScope,
    pub thresholds: Thresholds,
    pub kind: SourceKind,
    /// When the daemon runs it; `None`: only `duoprov source sync` does.
    pub schedule: Option<SourceSchedule>,
    /// kind = "ldap": syncrepl, polling or both (`Poll` for other kinds, which have no feed).
    pub sync_mode: SyncMode,
}

pub fn parse_sources(raw: BTreeMap<String, RawSource>, origin: &str, base: &Path) -> Result<BTreeMap<String, SourceConfig>> {
    let mut out: BTreeMap<String, SourceConfig> = BTreeMap::new();
    for (name, r) in raw {
        let key = format!("{origin}: source.{name}");
        let folder = FolderPath::parse(&r.folder).map_err(|e| anyhow::anyhow!("{key}.folder: {e}"))?;
        if r.subject_source.trim().is_empty() || r.subject_source.contains(':') {
            bail!("{key}.subject_source: expected a name such as \"ldap\" (no colon)");
        }
        if r.subject_source == SubjectKey::DEFAULT_SOURCE {
            bail!("{key}.subject_source: \"local\" holds the subjects made by hand, which no source may own; name the source's subjects, such as \"ldap\"");
        }
        for (other, o) in &out {
            if o.scope.subject_source == r.subject_source {
                bail!("{key}.subject_source: source {other} already owns subject source {}; each source needs its own", r.subject_source);
            }
            let (a, b) = (&o.scope.folder, &folder);
            if a == b || a.as_str().starts_with(&format!("{b}:")) || b.as_str().starts_with(&format!("{a}:")) {
                bail!("{key}.folder: {folder} overlaps folder {} of source {other}; the folders of two sources may not contain each other", o.scope.folder);
            }
        }
        if r.password.is_some() {
            bail!("{key}.password: secrets may not be written in the configuration; use password_env or password_file");
        }
        let kind = match r.kind.as_str() {
            "file" => {
                let ldap_keys = r.url.is_some() || r.bind_dn.is_some() || r.users.is_some() || r.groups.is_some() || r.password_file.is_some() || r.password_env.is_some();
                if ldap_keys || r.queries.is_some() {
                    bail!("{key}: url, bind_dn, password_*, users, groups and queries apply to kind = \"ldap\" or \"sql\" only");
                }
                SourceKind::File { files: r.files.iter().map(|f| base.join(f)).collect() }
            }
            "ldap" => {
                if !r.files.is_empty() {
                    bail!("{key}.files: applies to kind = \"file\" only");
                }
                if r.queries.is_some() {
                    bail!("{key}.queries: applies to kind = \"sql\" only");
                }
                let Some(url) = r.url else { bail!("{key}.url: required for kind = \"ldap\" (ldap://HOST:PORT or ldaps://HOST:PORT)") };
                if !url.starts_with("ldap://") && !url.starts_with("ldaps://") {
                    bail!("{key}.url: expected ldap://HOST:PORT or ldaps://HOST:PORT");
                }
                let starttls = r.starttls.unwrap_or(false);
                if starttls && url.starts_with("ldaps://") {
                    bail!("{key}.starttls: applies to ldap:// URLs; ldaps:// is encrypted from the start");
                }
                let password = match (r.password_file, r.password_env) {
                    (Some(_), Some(_)) => bail!("{key}: set password_file or password_env, not both"),
                    (Some(f), None) => Some(SecretSource::File(base.join(f))),
                    (None, Some(v)) => Some(SecretSource::Env(v)),
                    (None, None) => None,
                };
                if r.bind_dn.is_some() != password.is_some() {
                    bail!("{key}: bind_dn and a password (password_file or password_env) go together; set both, or neither for an anonymous bind");
                }
                let users = r.users.unwrap_or_default();
                let groups = r.groups.unwrap_or_default();
                if users.base_dn.is_empty() {
                    bail!("{key}.users.base_dn: required (where the users are, such as \"ou=people,dc=example,dc=org\")");
                }
                if groups.base_dn.is_empty() {
                    bail!("{key}.groups.base_dn: required (where the groups are, such as \"ou=groups,dc=example,dc=org\")");
                }
                let page_size = r.page_size.unwrap_or(500);
                if !(1..=100_000).contains(&page_size) {
                    bail!("{key}.page_size: expected 1 to 100000");
                }
                let settings = LdapSettings {
                    url,
                    starttls,
                    ca_file: r.ca_file.map(|f| base.join(f)),
                    bind_dn: r.bind_dn,
                    password: None,
                    preset: r.preset.unwrap_or_default(),
                    page_size,
                    timeout: Duration::from_secs(r.timeout_secs.unwrap_or(30)),
                    users,
                    groups,
                };
                SourceKind::Ldap { settings: Box::new(settings), password }
            }
            "sql" => {
                let other = r.files.is_empty() && r.bind_dn.is_none() && r.users.is_none() && r.groups.is_none() && r.starttls.is_none() && r.preset.is_none() && r.page_size.is_none();
                if !other {
                    bail!("{key}: files, bind_dn, starttls, preset, page_size, users and groups do not apply to kind = \"sql\" (it takes url, ca_file, password_file or password_env, timeout_secs and queries)");
                }
                let Some(url) = r.url else { bail!("{key}.url: required for kind = \"sql\" (postgres://USER@HOST:PORT/DATABASE?sslmode=verify-full)") };
                if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                    bail!("{key}.url: expected postgres://USER@HOST:PORT/DATABASE (PostgreSQL)");
                }
                if duoprov_registry::url::has_password(&url) {
                    bail!("{key}.url: holds a password; keep secrets out of the file (use password_env or password_file)");
                }
                let password = match (r.password_file, r.password_env) {
                    (Some(_), Some(_)) => bail!("{key}: set password_file or password_env, not both"),
                    (Some(f), None) => Some(SecretSource::File(base.join(f))),
                    (None, Some(v)) => Some(SecretSource::Env(v)),
                    (None, None) => None,
                };
                let Some(queries) = r.queries else { bail!("{key}.queries: required for kind = \"sql\": subjects, groups and memberships (see docs/sources.md)") };
                for (q, text) in [("subjects", &queries.subjects), ("groups", &queries.groups), ("memberships", &queries.memberships)] {
                    if text.trim().is_empty() {
                        bail!("{key}.queries.{q}: required (a SELECT; see docs/sources.md for its columns)");
                    }
                }
                let settings = SqlSettings {
                    url,
                    password: None,
                    ca_file: r.ca_file.map(|f| base.join(f)),
                    timeout: Duration::from_secs(r.timeout_secs.unwrap_or(60)),
                    setting: format!("source.{name}.url"),
                    queries,
                };
                SourceKind::Sql { settings: Box::new(settings), password }
            }
            other => bail!("{key}.kind: {other:?} is not a kind of source; use \"file\", \"ldap\" or \"sql\""),
        };
        let read = match r.schedule.as_deref() {
            None => None,
            Some(text) => Some(match text.trim().strip_prefix("every ") {
                Some(d) => FullSyncSchedule::Every(crate::config::parse_duration(&format!("{key}.schedule"), d.trim())?),
                None => {
                    let cron = croner::parser::CronParser::builder()
                        .seconds(croner::parser::Seconds::Disallowed)
                        .build()
                        .parse(text)
                        .map_err(|e| anyhow::anyhow!("{key}.schedule: {e} (expected \"every 15m\" or five cron fields: minute hour day month weekday)"))?;
                    FullSyncSchedule::Cron(std::sync::Arc::new(cron), text.to_owned())
                }
            }),
        };
        let poll_interval = match r.poll_interval.as_deref() {
            Some(_) if !matches!(kind, SourceKind::Ldap { .. }) => bail!("{key}.poll_interval: applies to kind = \"ldap\" only (polling modifyTimestamp)"),
            Some(_) if read.is_none() => bail!("{key}.poll_interval: set schedule too (the full reads that see deletions)"),
            Some("off") => None,
            Some(t) => Some(crate::config::parse_duration(&format!("{key}.poll_interval"), t)?),
            None if matches!(kind, SourceKind::Ldap { .. }) => Some(Duration::from_secs(10)),
            None => None,
        };
        let sync_mode = match r.sync_mode {
            Some(_) if !matches!(kind, SourceKind::Ldap { .. }) => bail!("{key}.sync_mode: applies to kind = \"ldap\" only (syncrepl or modifyTimestamp polling)"),
            Some(_) if read.is_none() => bail!("{key}.sync_mode: set schedule too (the daemon follows only sources it runs)"),
            Some(SyncMode::Poll) if poll_interval.is_none() => bail!("{key}.sync_mode: \"poll\" with poll_interval = \"off\" would never look for changes; set a poll_interval or sync_mode = \"auto\""),
            Some(mode) => mode,
            None if matches!(kind, SourceKind::Ldap { .. }) => SyncMode::Auto,
            None => SyncMode::Poll,
        };
        let schedule = read.map(|read| SourceSchedule { read, poll_interval });
        let scope = MirrorScope { source: name.clone(), subject_source: r.subject_source, folder };
        out.insert(name, SourceConfig { scope, thresholds: r.thresholds, kind, schedule, sync_mode });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn parse(sources: &str) -> anyhow::Result<crate::config::Settings> {
        crate::config::parse(sources, "duoprov.toml", Path::new("/etc/duoprov"))
    }

    const LDAP: &str = "[source.dir]\nkind = \"ldap\"\nsubject_source = \"ldap\"\nfolder = \"ldap:staff\"\nurl = \"ldaps://ldap.example.org\"\nca_file = \"ca.pem\"\nbind_dn = \"cn=reader,dc=example,dc=org\"\npassword_file = \"ldap.pw\"\npreset = \"ad\"\n[source.dir.users]\nbase_dn = \"ou=people,dc=example,dc=org\"\n[source.dir.groups]\nbase_dn = \"ou=groups,dc=example,dc=org\"\nmember_by = \"dn\"\n[source.dir.thresholds]\nmax_removals = 50\n";

    #[test]
    fn an_ldap_source_is_read_with_its_paths_resolved_and_its_password_left_unread() {
        let s = parse(LDAP).unwrap();
        let dir = &s.sources["dir"];
        assert_eq!(dir.thresholds.max_removals, 50);
        match &dir.kind {
            super::SourceKind::Ldap { settings, password } => {
                assert_eq!(settings.ca_file.as_deref(), Some(Path::new("/etc/duoprov/ca.pem")));
                assert!(settings.password.is_none());
                assert_eq!(password.as_ref().unwrap().key("source.dir", "password"), "source.dir.password_file");
            }
            other => panic!("{other:?}"),
        }
    }

    const SQL: &str = "[source.db]\nkind = \"sql\"\nsubject_source = \"db\"\nfolder = \"db\"\nurl = \"postgres://reader@db.example.edu/hr\"\npassword_env = \"HR_PW\"\nschedule = \"every 15m\"\n[source.db.queries]\nsubjects = \"SELECT id, login_id FROM p\"\ngroups = \"SELECT key, name FROM g\"\nmemberships = \"SELECT group_key, subject_id FROM m\"\n";

    #[test]
    fn a_sql_source_is_read_with_its_schedule_and_its_mistakes_are_refused_by_key() {
        let s = parse(SQL).unwrap();
        let db = &s.sources["db"];
        assert!(matches!(&db.kind, super::SourceKind::Sql { settings, password: Some(_) } if settings.setting == "source.db.url" && settings.password.is_none()));
        let schedule = db.schedule.as_ref().unwrap();
        assert!(matches!(schedule.read, super::FullSyncSchedule::Every(d) if d == std::time::Duration::from_secs(900)));
        assert!(schedule.poll_interval.is_none(), "only LDAP polls");
        let cron = parse(&SQL.replace("every 15m", "*/5 * * * *")).unwrap();
        assert!(matches!(cron.sources["db"].schedule.as_ref().unwrap().read, super::FullSyncSchedule::Cron(..)));
        for (bad, key) in [
            (SQL.replace("reader@", "reader:hunter2@"), "source.db.url"),
            (SQL.replace("schedule = \"every 15m\"", "schedule = \"hourly\""), "source.db.schedule"),
            (SQL.replace("schedule = \"every 15m\"", "poll_interval = \"10s\""), "source.db.poll_interval"),
            (SQL.replace("groups = \"SELECT key, name FROM g\"\n", ""), "source.db"),
            (SQL.replace("postgres://", "mysql://"), "source.db.url"),
        ] {
            let err = parse(&bad).unwrap_err().to_string();
            assert!(err.contains(key) && !err.contains("hunter2"), "{key}: {err}");
        }
        // An LDAP source with a schedule polls modifyTimestamp every 10 s unless told otherwise.
        let ldap = parse(&LDAP.replace("[source.dir.users]", "schedule = \"every 1h\"\n[source.dir.users]")).unwrap();
        assert_eq!(ldap.sources["dir"].schedule.as_ref().unwrap().poll_interval, Some(std::time::Duration::from_secs(10)));
        let off = parse(&LDAP.replace("[source.dir.users]", "schedule = \"every 1h\"\npoll_interval = \"off\"\n[source.dir.users]")).unwrap();
        assert_eq!(off.sources["dir"].schedule.as_ref().unwrap().poll_interval, None);
    }

    #[test]
    fn an_ldap_source_follows_syncrepl_by_default_and_sync_mode_mistakes_are_refused_by_key() {
        let scheduled = LDAP.replace("[source.dir.users]", "schedule = \"every 1h\"\n[source.dir.users]");
        assert_eq!(parse(&scheduled).unwrap().sources["dir"].sync_mode, super::SyncMode::Auto);
        let poll = parse(&scheduled.replace("[source.dir.users]", "sync_mode = \"poll\"\n[source.dir.users]")).unwrap();
        assert_eq!(poll.sources["dir"].sync_mode, super::SyncMode::Poll);
        let only = parse(&scheduled.replace("[source.dir.users]", "sync_mode = \"syncrepl\"\n[source.dir.users]")).unwrap();
        assert_eq!(only.sources["dir"].sync_mode, super::SyncMode::Syncrepl);
        for (bad, key, why) in [
            (scheduled.replace("[source.dir.users]", "sync_mode = \"push\"\n[source.dir.users]"), "sync_mode", "push"),
            (LDAP.replace("[source.dir.users]", "sync_mode = \"syncrepl\"\n[source.dir.users]"), "source.dir.sync_mode", "schedule"),
            (scheduled.replace("[source.dir.users]", "sync_mode = \"poll\"\npoll_interval = \"off\"\n[source.dir.users]"), "source.dir.sync_mode", "never"),
            (SQL.replace("schedule = \"every 15m\"", "schedule = \"every 15m\"\nsync_mode = \"auto\""), "source.db.sync_mode", "ldap"),
        ] {
            let err = format!("{:#}", parse(&bad).unwrap_err());
            assert!(err.contains(key) && err.contains(why), "{key}: {err}");
        }
    }

    #[test]
    fn overlapping_scopes_local_subjects_and_written_passwords_are_refused_by_key() {
        let second = "[source.b]\nkind = \"file\"\nsubject_source = \"hr\"\nfolder = \"ldap:staff:inner\"\n";
        let err = parse(&format!("{LDAP}{second}")).unwrap_err().to_string();
        assert!(err.contains("source.dir.folder") || err.contains("source.b.folder"), "{err}");
        assert!(err.contains("overlaps"), "{err}");
        let local = "[source.l]\nkind = \"file\"\nsubject_source = \"local\"\nfolder = \"x\"\n";
        assert!(parse(local).unwrap_err().to_string().contains("source.l.subject_source"));
        let written = LDAP.replace("password_file = \"ldap.pw\"", "password = \"hunter2\"");
        let err = parse(&written).unwrap_err().to_string();
        assert!(err.contains("source.dir.password") && !err.contains("hunter2"), "{err}");
        let typo = LDAP.replace("preset = \"ad\"", "presett = \"ad\"");
        assert!(parse(&typo).unwrap_err().to_string().contains("presett"));
    }
}
