//! `duoprov source sync|list|status` and `duoprov import --mirror`: read a source (an LDAP
//! directory, a SQL database, snapshot files), mirror it into the registry under the source's safety rules, and
//! show what changed, what was refused (exit 3, with the removal list and its digest) or what
//! could not be read (nothing changed); and [`DaemonSource`], a source as `duoprov run` runs it
//! (with its syncrepl feed, [`LdapFeed`], for an LDAP source whose `sync_mode` allows it).

use anyhow::{Context as _, Result, bail};
use duoprov_registry::ImportData;
use duoprov_source::{Outcome, Report, SourceSnapshot};

use super::Context;
use crate::args::SourceCommand;
use crate::source_config::{SourceConfig, SourceKind, SyncMode};
use crate::{exit, output};

pub async fn run(ctx: &Context, command: SourceCommand) -> Result<u8> {
    match command {
        SourceCommand::Sync { source, dry_run, approve } => sync(ctx, &source, dry_run, approve.as_deref()).await,
        SourceCommand::List => list(ctx),
        SourceCommand::Status => status(ctx).await,
    }
}

fn source<'a>(ctx: &'a Context, name: &str) -> Result<&'a SourceConfig> {
    ctx.settings.sources.get(name).with_context(|| {
        let known: Vec<&str> = ctx.settings.sources.keys().map(String::as_str).collect();
        if known.is_empty() {
            format!("no source {name}: the configuration has no [source.NAME] section")
        } else {
            format!("no source {name} in the configuration (sources: {})", known.join(", "))
        }
    })
}

fn read_files(files: &[std::path::PathBuf]) -> Result<ImportData> {
    let mut data = ImportData::default();
    let mut errors = duoprov_model::ValidationErrors::default();
    for path in files {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path.display().to_string();
        let result = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("json") => data.add_json(&name, &text),
            Some("csv") => data.add_csv(&name, &text),
            _ => bail!("{}: a source file ends in .json or .csv", path.display()),
        };
        if let Err(e) = result {
            errors.0.extend(e.0);
        }
    }
    if !errors.is_empty() {
        bail!("the source's files cannot be read, nothing written: {errors}");
    }
    Ok(data)
}

/// Reads source `name` whole. An `Err` names the source and says what failed; nothing was read.
pub async fn read_snapshot(name: &str, config: &SourceConfig) -> Result<SourceSnapshot> {
    match &config.kind {
        SourceKind::File { files } => {
            if files.is_empty() {
                bail!("source {name} lists no files (source.{name}.files); or give them to `duoprov import --mirror {name} FILE…`");
            }
            snapshot_of_files(name, config, &read_files(files)?)
        }
        SourceKind::Ldap { settings, password } => {
            let mut settings = (**settings).clone();
            if let Some(p) = password {
                settings.password = Some(p.read(&p.key(&format!("source.{name}"), "password"))?);
            }
            let read = async {
                let mut reader = duoprov_source::ldap::LdapReader::connect(&settings).await?;
                let snapshot = reader.read(&config.scope.subject_source, &config.scope.folder, &mut |_| {}).await?;
                reader.close().await;
                Ok::<_, duoprov_source::ldap::LdapReadError>(snapshot)
            };
            read.await.map_err(|e| anyhow::anyhow!("source {name}: {e}"))
        }
        SourceKind::Sql { settings, password } => {
            let mut settings = (**settings).clone();
            if let Some(p) = password {
                settings.password = Some(p.read_private(&p.key(&format!("source.{name}"), "password"))?);
            }
            duoprov_source::sql::read(&settings, &config.scope.subject_source, &config.scope.folder).await.map_err(|e| anyhow::anyhow!("source {name}: {e}"))
        }
    }
}

async fn sync(ctx: &Context, name: &str, dry_run: bool, approve: Option<&str>) -> Result<u8> {
    let config = source(ctx, name)?;
    let store = ctx.store().await?;
    let snapshot = match read_snapshot(name, config).await {
        Ok(s) => s,
        Err(e) => {
            // A file source's unreadable files are the operator's to fix at once; a directory
            // or database that cannot be read is recorded for `duoprov source status`.
            if !dry_run && !matches!(config.kind, SourceKind::File { .. }) {
                duoprov_source::run::record_failure(&*store, name, &format!("{e:#}")).await;
            }
            return Err(e);
        }
    };
    apply(ctx, &*store, config, &snapshot, dry_run, approve, &format!("duoprov source sync {name}")).await
}

/// A source as the daemon runs it (`duoprov run`): read whole, mirrored under its safety rules.
pub struct DaemonSource {
    pub name: String,
    pub config: SourceConfig,
    pub store: std::sync::Arc<dyn duoprov_registry::Store>,
}

#[async_trait::async_trait]
impl duoprov_daemon::sources::SourceJob for DaemonSource {
    async fn run(&self) -> Result<duoprov_daemon::sources::SourceRan> {
        use duoprov_daemon::sources::SourceRan;
        let snapshot = match read_snapshot(&self.name, &self.config).await {
            Ok(s) => s,
            Err(e) => {
                duoprov_source::run::record_failure(&*self.store, &self.name, &format!("{e:#}")).await;
                return Err(e);
            }
        };
        let report = duoprov_source::mirror(&*self.store, &self.config.scope, &snapshot, &self.config.thresholds, None, false, &duoprov_registry::AuditActor::daemon()).await?;
        for p in &report.problems {
            tracing::warn!(source = %self.name, "{p}");
        }
        Ok(match report.outcome {
            Outcome::Applied => SourceRan::Applied,
            Outcome::Refused => SourceRan::Refused(report.refusal.as_ref().map(|r| r.message(&self.name, &format!("duoprov source sync {}", self.name))).unwrap_or_default()),
            _ => SourceRan::Unchanged,
        })
    }

    fn feed(&self) -> Option<std::sync::Arc<dyn duoprov_daemon::sources::ChangeFeed>> {
        match (&self.config.kind, self.config.sync_mode) {
            (SourceKind::Ldap { .. }, SyncMode::Auto | SyncMode::Syncrepl) => Some(std::sync::Arc::new(LdapFeed { name: self.name.clone(), config: self.config.clone() })),
            _ => None,
        }
    }

    async fn changed_since(&self, since_ms: i64) -> Result<Option<bool>> {
        let SourceKind::Ldap { settings, password } = &self.config.kind else { return Ok(None) };
        let mut settings = (**settings).clone();
        if let Some(p) = password {
            settings.password = Some(p.read(&p.key(&format!("source.{}", self.name), "password"))?);
        }
        let mut reader = duoprov_source::ldap::LdapReader::connect(&settings).await.map_err(|e| anyhow::anyhow!("source {}: {e}", self.name))?;
        let changed = reader.changed_since(since_ms).await.map_err(|e| anyhow::anyhow!("source {}: {e}", self.name));
        reader.close().await;
        Ok(Some(changed?))
    }
}

/// An LDAP source's syncrepl feed as the daemon follows it.
struct LdapFeed {
    name: String,
    config: SourceConfig,
}

struct LdapChanges(duoprov_source::syncrepl::Persist, String);

#[async_trait::async_trait]
impl duoprov_daemon::sources::ChangeStream for LdapChanges {
    async fn next_change(&mut self) -> Result<String> {
        self.0.next_change().await.map_err(|e| anyhow::anyhow!("source {}: {e}", self.1))
    }
}

#[async_trait::async_trait]
impl duoprov_daemon::sources::ChangeFeed for LdapFeed {
    async fn connect(&self) -> Result<Option<Box<dyn duoprov_daemon::sources::ChangeStream>>> {
        let SourceKind::Ldap { settings, password } = &self.config.kind else { return Ok(None) };
        let name = &self.name;
        let mut settings = (**settings).clone();
        if let Some(p) = password {
            settings.password = Some(p.read(&p.key(&format!("source.{name}"), "password"))?);
        }
        let ldap = |e: duoprov_source::ldap::LdapReadError| anyhow::anyhow!("source {name}: {e}");
        let mut reader = duoprov_source::ldap::LdapReader::connect(&settings).await.map_err(ldap)?;
        if !reader.offers_syncrepl().await.map_err(ldap)? {
            reader.close().await;
            if self.config.sync_mode == SyncMode::Syncrepl {
                bail!(
                    "source {name}: the LDAP server {} does not offer syncrepl (RFC 4533: no {} in its root DSE's supportedControl); load the syncprov overlay, or set source.{name}.sync_mode = \"auto\" or \"poll\"",
                    settings.url,
                    duoprov_source::syncrepl::SYNC_REQUEST_OID
                );
            }
            return Ok(None);
        }
        let persist = reader.persist().await.map_err(ldap)?;
        Ok(Some(Box::new(LdapChanges(persist, name.clone()))))
    }
}

fn snapshot_of_files(name: &str, config: &SourceConfig, data: &ImportData) -> Result<SourceSnapshot> {
    duoprov_source::file::snapshot_of(&config.scope, data).map_err(|problems| anyhow::anyhow!("source {name} cannot be mirrored from these files; nothing was changed:\n  - {}", problems.join("\n  - ")))
}

/// `duoprov import --mirror SOURCE FILE…`.
pub async fn mirror_files(ctx: &Context, name: &str, data: &ImportData, dry_run: bool, approve: Option<&str>) -> Result<u8> {
    let config = source(ctx, name)?;
    let snapshot = snapshot_of_files(name, config, data)?;
    let store = ctx.store().await?;
    apply(ctx, &*store, config, &snapshot, dry_run, approve, &format!("duoprov import --mirror {name} FILE…")).await
}

#[allow(clippy::too_many_arguments)]
async fn apply(ctx: &Context, store: &dyn duoprov_registry::Store, config: &SourceConfig, snapshot: &SourceSnapshot, dry_run: bool, approve: Option<&str>, command: &str) -> Result<u8> {
    let report = duoprov_source::mirror(store, &config.scope, snapshot, &config.thresholds, approve, dry_run, &duoprov_registry::AuditActor::cli()).await?;
    if ctx.json {
        output::json(&report)?;
    } else {
        show(&report, command);
    }
    Ok(match report.outcome {
        Outcome::Refused => exit::REFUSED,
        _ => exit::OK,
    })
}

fn show(report: &Report, command: &str) {
    let c = &report.counts;
    for p in &report.problems {
        output::line(&format!("warning: {p}"));
    }
    let counts = format!(
        "subjects {} added, {} updated, {} removed; groups {} added, {} updated, {} removed; memberships {} added, {} removed",
        c.subjects_added, c.subjects_updated, c.subjects_removed, c.groups_added, c.groups_updated, c.groups_removed, c.members_added, c.members_removed
    );
    match report.outcome {
        Outcome::Applied => output::line(&format!("source {}: applied: {counts}", report.source)),
        Outcome::Unchanged => output::line(&format!("source {}: unchanged: the registry already mirrors it", report.source)),
        Outcome::DryRun => {
            output::line(&format!("source {}: dry run, nothing written: would make {counts}", report.source));
            for r in &report.removals {
                output::line(&format!("  {r}"));
            }
            if let Some(refusal) = &report.refusal {
                output::line(&format!("a real run would be refused:\n{}", refusal.message(&report.source, command)));
            }
        }
        Outcome::Refused => {
            if let Some(refusal) = &report.refusal {
                eprintln!("{}", refusal.message(&report.source, command));
            }
        }
    }
}

fn list(ctx: &Context) -> Result<u8> {
    let rows: Vec<Vec<String>> = ctx
        .settings
        .sources
        .iter()
        .map(|(name, s)| {
            let from = match &s.kind {
                SourceKind::File { files } => files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "),
                SourceKind::Ldap { settings, .. } => settings.url.clone(),
                SourceKind::Sql { settings, .. } => duoprov_registry::url::redact(&settings.url),
            };
            vec![name.clone(), s.kind.name().to_string(), s.scope.subject_source.clone(), s.scope.folder.to_string(), from]
        })
        .collect();
    if ctx.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::json!({"source": r[0], "kind": r[1], "subject_source": r[2], "folder": r[3], "reads": r[4]}))
            .collect();
        output::json(&v)?;
    } else if rows.is_empty() {
        output::line("no sources configured (add a [source.NAME] section)");
    } else {
        output::table(&["SOURCE", "KIND", "SUBJECT SOURCE", "FOLDER", "READS"], &rows);
    }
    Ok(exit::OK)
}

async fn status(ctx: &Context) -> Result<u8> {
    let store = ctx.store().await?;
    let runs = store.source_runs().await?;
    let feeds = store.source_feeds().await?;
    let now = duoprov_sync::now_ms();
    let mut names: Vec<&String> = ctx.settings.sources.keys().collect();
    for n in runs.iter().map(|r| &r.source).chain(feeds.iter().map(|f| &f.source)) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names.sort();
    if ctx.json {
        // One object per source with a run or a recorded feed: the run's fields, and `feed`.
        let entries: Vec<serde_json::Value> = names
            .iter()
            .filter_map(|name| {
                let run = runs.iter().find(|r| &r.source == *name);
                let feed = feeds.iter().find(|f| &f.source == *name);
                if run.is_none() && feed.is_none() {
                    return None;
                }
                let mut v = match run {
                    Some(r) => serde_json::to_value(r).unwrap_or_default(),
                    None => serde_json::json!({"source": name, "at_ms": null, "result": null, "detail": null}),
                };
                v["feed"] = serde_json::to_value(feed).unwrap_or_default();
                Some(v)
            })
            .collect();
        output::json(&entries)?;
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = names
        .iter()
        .map(|name| {
            let feed = feed_text(ctx, name, feeds.iter().find(|f| &f.source == *name), now);
            match runs.iter().find(|r| &r.source == *name) {
                Some(r) => {
                    let detail = match r.detail.get("counts") {
                        Some(c) => ["subjects_added", "subjects_removed", "groups_added", "groups_removed", "members_added", "members_removed"]
                            .iter()
                            .map(|k| format!("{}={}", k, c.get(*k).and_then(|v| v.as_u64()).unwrap_or(0)))
                            .collect::<Vec<_>>()
                            .join(" "),
                        None => r.detail.get("error").and_then(|e| e.as_str()).unwrap_or("").to_string(),
                    };
                    vec![(*name).clone(), output::when(r.at_ms, now), r.result.clone(), feed, detail]
                }
                None => vec![(*name).clone(), "never".into(), "-".into(), feed, String::new()],
            }
        })
        .collect();
    if rows.is_empty() {
        output::line("no sources configured and none has run");
    } else {
        output::table(&["SOURCE", "LAST RUN", "RESULT", "CHANGES", "DETAIL"], &rows);
    }
    Ok(exit::OK)
}

/// How the daemon learns of the source's changes, as it last recorded it in the registry
/// (`source_feed`): the `/readyz` view, readable without reaching the daemon.
fn feed_text(ctx: &Context, name: &str, feed: Option<&duoprov_registry::SourceFeedState>, now: i64) -> String {
    let Some(f) = feed else {
        return match ctx.settings.sources.get(name) {
            Some(c) if matches!(c.kind, SourceKind::Ldap { .. }) && c.sync_mode != SyncMode::Poll && c.schedule.is_some() => {
                "syncrepl: not recorded yet (no daemon has followed it)".into()
            }
            _ => "-".into(),
        };
    };
    let since = output::when(f.since_ms, now);
    let mut text = match (f.mode.as_str(), f.connected) {
        ("syncrepl", Some(true)) => format!("syncrepl connected since {since}"),
        ("syncrepl", _) => format!("syncrepl down since {since} (polled meanwhile if it has a poll_interval): {}", f.error.as_deref().unwrap_or("no reason recorded")),
        ("stopped", _) => format!("not followed since {since}: {}", f.error.as_deref().unwrap_or("the daemon stopped")),
        (mode, _) => format!("{mode} since {since} (the directory offers no syncrepl; asked again every 10 min)"),
    };
    if let Some(at) = f.last_change_ms {
        text.push_str(&format!("; last change {}", output::when(at, now)));
    }
    text
}
