//! `duoprov plan`, `sync`, `status` and `doctor`: the provisioning commands. Plans are shown for
//! people or as JSON and can be saved with fingerprints; a sync checks the safety rules, applies,
//! and exits 0 (done), 2 (some objects failed) or 3 (refused, nothing changed).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use duoprov_plan::safety::Approval;
use duoprov_sync::{Incremental, Progress, SavedPlan, SyncError, SyncOptions, SyncSettings};
use serde_json::json;

use super::Context;
use super::duo::client_for;
use crate::config::Provisioner;
use crate::{exit, output};

pub fn settings_of(p: &Provisioner) -> SyncSettings {
    SyncSettings {
        provisioner: p.name.clone(),
        policy: p.policy.clone(),
        mapping: p.mapping.clone(),
        eligible_group: p.eligible_group.clone(),
        subject_sources: p.subject_sources.clone(),
        concurrency: p.concurrency,
        load_duo_users: p.load_duo_users,
        incremental: p.incremental,
        shares_duo_with: p.shares_duo_with.clone(),
    }
}

pub async fn plan(ctx: &Context, provisioner: &str, out: Option<PathBuf>) -> Result<u8> {
    let (p, duo) = client_for(ctx, provisioner).await?;
    let store = ctx.store().await?;
    let settings = settings_of(&p);
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await?;
    let saved = prepared.saved();
    if let Some(path) = &out {
        let text = serde_json::to_string_pretty(&saved)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if ctx.json {
        output::json(&saved)?;
    } else {
        print!("{}", duoprov_plan::render::text(&prepared.plan));
        if let Some(path) = &out {
            println!("\nSaved to {}; apply exactly this plan with `duoprov sync {provisioner} --plan {}`.", path.display(), path.display());
        }
    }
    Ok(exit::OK)
}

/// A progress bar on a terminal; nothing otherwise.
struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn new(enabled: bool) -> Self {
        Bar(enabled.then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg:>16} [{bar:40}] {pos}/{len} {elapsed}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        }))
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: u64) {
        if let Some(b) = &self.0 {
            b.set_message(name.to_owned());
            b.set_length(total);
            b.set_position(0);
        }
    }
    fn advance(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

pub struct SyncArgs {
    pub provisioner: String,
    pub incremental: bool,
    pub dry_run: bool,
    pub plan: Option<PathBuf>,
    pub allow_deletes: Option<usize>,
    pub log_json: bool,
}

pub async fn sync(ctx: &Context, args: SyncArgs) -> Result<u8> {
    if args.incremental && args.plan.is_some() {
        bail!("--plan applies a saved full plan; it cannot be combined with --incremental");
    }
    let (p, duo) = client_for(ctx, &args.provisioner).await?;
    let store = ctx.store().await?;
    let settings = settings_of(&p);
    // One run per provisioner at a time, across processes: a daemon lets go between its runs.
    let _lock = match crate::daemon::run_lock(&*store, &args.provisioner, std::time::Duration::from_secs(30)).await? {
        Some(lock) => lock,
        None => bail!("provisioner {} is being synced by another duoprov process (a daemon or another sync) for more than 30 s; try again when it has finished", args.provisioner),
    };
    let saved: Option<SavedPlan> = match &args.plan {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(serde_json::from_str(&text).with_context(|| format!("{}: not a plan saved by `duoprov plan --out`", path.display()))?)
        }
        None => None,
    };
    let options = SyncOptions { dry_run: args.dry_run, approval: Approval { allow_deletes: args.allow_deletes }, saved };
    let mut escalated = None;
    let prepared = if args.incremental {
        match duoprov_sync::prepare_incremental(&*store, &duo, &settings, duoprov_sync::now_ms()).await? {
            Incremental::Planned(p) => *p,
            Incremental::Idle { checkpoint } => {
                if ctx.json {
                    output::json(&json!({"provisioner": args.provisioner, "kind": "incremental", "idle": true, "checkpoint": checkpoint}))?;
                } else {
                    println!("{}: nothing to do (checkpoint at change {checkpoint}, no retry due)", args.provisioner);
                }
                return Ok(exit::OK);
            }
            Incremental::Escalate { reason } => {
                tracing::info!(provisioner = %args.provisioner, %reason, "Incremental sync escalates to a full sync.");
                escalated = Some(reason);
                duoprov_sync::prepare(&*store, &duo, &settings).await?
            }
        }
    } else {
        duoprov_sync::prepare(&*store, &duo, &settings).await?
    };
    let bar = Bar::new(std::io::stderr().is_terminal() && !args.log_json && !ctx.json);
    let report = match duoprov_sync::run(&*store, &duo, &settings, prepared, &options, &bar).await {
        Ok(r) => r,
        Err(e @ (SyncError::Refused { .. } | SyncError::Stale(_))) => {
            eprintln!("{e}");
            return Ok(exit::REFUSED);
        }
        Err(e) => return Err(e.into()),
    };
    let mut report = report;
    report.escalated = escalated;
    if ctx.json {
        output::json(&report)?;
    } else {
        if let Some(reason) = &report.escalated {
            println!("escalated to a full sync: {reason}");
        }
        println!("{}", report.summary());
        for f in &report.failures {
            println!("  ! {} [{}]: {}", f.object, f.code, f.message);
        }
    }
    Ok(if report.failed() > 0 { exit::PARTIAL } else { exit::OK })
}

pub async fn status(ctx: &Context, provisioner: Option<&str>) -> Result<u8> {
    let store = ctx.store().await?;
    let runs = store.runs(provisioner, 10).await?;
    let mut errors = Vec::new();
    if let Some(p) = provisioner {
        errors = store.object_errors(p, 50).await?;
    }
    let links = match provisioner {
        Some(p) => Some(store.links(p).await?),
        None => None,
    };
    let (checkpoint, retries) = match provisioner {
        Some(p) => (store.checkpoint(p).await?, store.retries(p, None).await?),
        None => (None, Vec::new()),
    };
    let last_change = store.last_change_seq().await?;
    if ctx.json {
        output::json(&json!({
            "runs": runs,
            "errors": errors,
            "linked_groups": links.as_ref().map(|l| l.groups.len()),
            "linked_users": links.as_ref().map(|l| l.users.len()),
            "checkpoint": checkpoint,
            "last_change": last_change,
            "retries": retries,
        }))?;
        return Ok(exit::OK);
    }
    if let Some(l) = &links {
        println!("linked: {} group(s), {} user(s)", l.groups.len(), l.users.len());
    }
    if provisioner.is_some() {
        match &checkpoint {
            Some(cp) => println!("checkpoint: change {} of {last_change} ({} waiting)", cp.last_seq, (last_change - cp.last_seq).max(0)),
            None => println!("checkpoint: none yet (the first sync is a full sync)"),
        }
        if !retries.is_empty() {
            println!("retry list: {} object(s); next due at {} ms", retries.len(), retries[0].next_at_ms);
        }
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let secs = r.finished_at_ms.map(|f| format!("{:.1}", (f - r.started_at_ms) as f64 / 1000.0)).unwrap_or_default();
            vec![
                r.id.to_string(),
                r.provisioner.clone(),
                format!("{}{}", r.kind, if r.dry_run { " (dry run)" } else { "" }),
                r.status.clone(),
                r.started_at_ms.to_string(),
                secs,
            ]
        })
        .collect();
    output::table(&["RUN", "PROVISIONER", "KIND", "STATUS", "STARTED_MS", "SECONDS"], &rows);
    if !errors.is_empty() {
        println!("\nobjects in error:");
        let rows: Vec<Vec<String>> = errors.iter().map(|e| vec![e.kind.clone(), e.object.clone(), e.code.clone(), e.message.clone()]).collect();
        output::table(&["KIND", "OBJECT", "CODE", "MESSAGE"], &rows);
    }
    Ok(exit::OK)
}

pub async fn doctor(ctx: &Context, provisioner: &str) -> Result<u8> {
    let mut problems = 0;
    let mut check = |name: &str, result: Result<String>| match result {
        Ok(detail) => println!("ok    {name}: {detail}"),
        Err(e) => {
            problems += 1;
            println!("FAIL  {name}: {e:#}");
        }
    };
    check("configuration", Ok(format!("provisioner {provisioner} found")).and_then(|m| {
        ctx.settings.provisioners.get(provisioner).map(|_| m).ok_or_else(|| anyhow::anyhow!("no [provisioner.{provisioner}]"))
    }));
    let client = client_for(ctx, provisioner).await;
    let store = ctx.store().await;
    match &store {
        Ok(s) => match s.provisioner_selection(provisioner).await {
            Ok(sel) => {
                let pairs: usize = sel.groups.iter().map(|g| g.members.len()).sum();
                check("registry", Ok(format!("{} groups selected, {} users, {} memberships", sel.groups.len(), sel.subjects.len(), pairs)));
            }
            Err(e) => check("registry", Err(e.into())),
        },
        Err(e) => check("registry", Err(anyhow::anyhow!("{e:#}"))),
    }
    let mut duo_groups = Vec::new();
    match &client {
        Ok((_, duo)) => match duo.list_groups().await {
            Ok(groups) => {
                check("Duo", Ok(format!("read access works; {} groups in the account", groups.len())));
                duo_groups = groups;
            }
            Err(e) => check("Duo", Err(e.into())),
        },
        Err(e) => check("Duo", Err(anyhow::anyhow!("{e:#}"))),
    }
    if let (Some(p), Ok(store)) = (ctx.settings.provisioners.get(provisioner), &store) {
        shared_account_warnings(&**store, p, &duo_groups).await;
    }
    Ok(if problems == 0 { exit::OK } else { exit::ERROR })
}

/// Warns when other provisioners provision the same Duo account, and names every Duo object
/// linked by this provisioner and another one.
async fn shared_account_warnings(store: &dyn duoprov_registry::Store, p: &Provisioner, duo_groups: &[duoprov_duo::Group]) {
    if p.shares_duo_with.is_empty() {
        return;
    }
    println!(
        "warn  shared Duo account: provisioner(s) {} provision the same Duo account as {}; none of them adopts, deletes or removes members of a group another one links (such a group is held with MAT), and a user another one links is used only as a shared user, never rewritten or deleted",
        p.shares_duo_with.join(", "),
        p.name
    );
    let Ok(mine) = store.links(&p.name).await else { return };
    let name_of = |id: &str| duo_groups.iter().find(|g| g.group_id == id).map(|g| format!("{:?}", g.name)).unwrap_or_else(|| id.to_owned());
    for other in &p.shares_duo_with {
        let Ok(theirs) = store.links(other).await else { continue };
        let mut foreign = duoprov_model::ForeignLinks::default();
        foreign.add(other, &theirs);
        for l in &mine.groups {
            if let Some(id) = l.duo_group_id.as_deref().filter(|id| foreign.groups.contains_key(*id)) {
                println!("warn  linked twice: Duo group {} is linked by both {} and {other}; keep it selected in one provisioner only", name_of(id), p.name);
            }
        }
        let shared: Vec<String> = mine.users.iter().filter(|l| l.duo_user_id.as_deref().is_some_and(|id| foreign.users.contains_key(id))).map(|l| l.subject.to_string()).collect();
        if !shared.is_empty() {
            let shown: Vec<&str> = shared.iter().take(10).map(String::as_str).collect();
            let more = if shared.len() > shown.len() { format!(" and {} more", shared.len() - shown.len()) } else { String::new() };
            println!(
                "warn  linked twice: {} Duo user(s) are linked by both {} and {other} ({}{more}); they are shared: only the provisioner that created one may rewrite or delete it",
                shared.len(),
                p.name,
                shown.join(", ")
            );
        }
    }
}
