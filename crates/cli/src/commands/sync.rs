//! `duoprov plan`, `sync`, `status` and `doctor`: the provisioning commands. Plans are shown for
//! people or as JSON, with the digest of their removals, and can be saved with fingerprints; a
//! sync checks the safety rules (approved only by that digest, `--approve`, or a saved plan),
//! applies, names every failed and held object, and exits 0 (done), 1 (Duo refused every write:
//! the write grant is missing), 2 (some objects failed or are held) or 3 (refused, nothing
//! changed). `doctor` checks reads, the write grant without changing Duo, and on request a real
//! write round trip or the sandbox probe (`--probe`, see `probe.rs`); without it, it shows the
//! recorded probe. A plan and a sync hand the recorded probe to their client before reading Duo.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use duoprov_plan::safety::{self, Approval};
use duoprov_sync::report::WRITE_GRANT_HINT;
use duoprov_sync::{FenceHandle, Incremental, Progress, RunReport, SavedPlan, SyncError, SyncOptions, SyncSettings};
use duoprov_model::counted;
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
        sync_back: p.sync_back.clone(),
        selection_rules: p.selection_rules.clone(),
    }
}

pub async fn plan(ctx: &Context, provisioner: &str, out: Option<PathBuf>) -> Result<u8> {
    let (p, duo) = client_for(ctx, provisioner).await?;
    let store = ctx.store().await?;
    // A plan reads Duo as the sync will (usernames compared as a recorded probe found).
    super::probe::use_recorded(&*store, &duo).await;
    let settings = settings_of(&p);
    let bar = Bar::new(std::io::stderr().is_terminal() && !ctx.json);
    let prepared = duoprov_sync::prepare_with_progress(&*store, &duo, &settings, &bar).await;
    bar.finish();
    let prepared = prepared?;
    let saved = prepared.saved();
    if let Some(path) = &out {
        let text = serde_json::to_string_pretty(&saved)?;
        // A plan names users and their e-mail addresses: private to its owner.
        crate::files::write_private(path, text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if ctx.json {
        output::json(&saved)?;
    } else {
        print!("{}", duoprov_plan::render::text(&prepared.plan));
        let removals = safety::removals(&prepared.plan);
        if !removals.is_empty() {
            println!(
                "\n{}, digest {}; if a sync refuses them, `duoprov sync {provisioner} --approve {}` applies exactly these.",
                counted(removals.len(), "removal or deletion", "removals and deletions"),
                saved.removal_digest,
                saved.removal_digest
            );
        }
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

impl Drop for Bar {
    fn drop(&mut self) {
        // An early return (an error, a refusal, a dry run) leaves no bar behind.
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
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
    /// `--approve DIGEST`.
    pub approve: Option<String>,
    /// The removed `--allow-deletes N`, refused with a pointer to `--approve`.
    pub allow_deletes: Option<String>,
    /// `--group NAME` or `--subject ID`: sync that one object only.
    pub object: Option<duoprov_sync::ObjectTarget>,
    pub log_json: bool,
}

/// Prints the held objects, one a line.
fn print_held(report: &RunReport) {
    if !report.held_objects.is_empty() {
        println!("{} held (not attempted until their error is fixed):", counted(report.held_objects.len(), "object is", "objects are"));
        for h in &report.held_objects {
            println!("  ! {} [{}]: {}", h.object, h.code, h.message);
        }
    }
}

pub async fn sync(ctx: &Context, args: SyncArgs) -> Result<u8> {
    if let Some(n) = &args.allow_deletes {
        bail!(
            "--allow-deletes {n} is no longer accepted: it approved any list of up to N removals, even one that changed after it was reviewed. \
             Run `duoprov sync {p}` or `duoprov plan {p}` to see the exact list of removals and its digest, then `duoprov sync {p} --approve DIGEST`, \
             which applies exactly that list and is refused if it has changed",
            p = args.provisioner
        );
    }
    if args.incremental && args.plan.is_some() {
        bail!("--plan applies a saved full plan; it cannot be combined with --incremental");
    }
    let (p, duo) = client_for(ctx, &args.provisioner).await?;
    let store = ctx.store().await?;
    super::probe::use_recorded(&*store, &duo).await;
    let settings = settings_of(&p);
    // One run per provisioner at a time, across processes: a daemon lets go between its runs.
    let lock = match duoprov_daemon::run_lock(&*store, &args.provisioner, std::time::Duration::from_secs(30)).await? {
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
    // The lock lives as long as the options; the run checks it before every apply phase.
    let options = SyncOptions {
        dry_run: args.dry_run,
        approval: Approval { digest: args.approve.clone(), saved_plan: false },
        saved,
        fence: Some(FenceHandle::lock(lock)),
        actor: duoprov_registry::AuditActor::cli(),
        trigger: Some(format!("command line ({})", duoprov_registry::AuditActor::cli())),
    };
    let mut escalated = None;
    // On a terminal: the read of Duo's users, then each apply phase, counted as work completes.
    let bar = Bar::new(std::io::stderr().is_terminal() && !args.log_json && !ctx.json);
    let prepared = if let Some(target) = &args.object {
        duoprov_sync::prepare_object(&*store, &duo, &settings, target).await.map_err(|e| match e {
            SyncError::NotFound(m) | SyncError::Scope(m) => anyhow::anyhow!(m),
            other => other.into(),
        })?
    } else if args.incremental {
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
                duoprov_sync::prepare_with_progress(&*store, &duo, &settings, &bar).await?
            }
        }
    } else {
        duoprov_sync::prepare_with_progress(&*store, &duo, &settings, &bar).await?
    };
    // A dry run shows the plan it did not apply (a saved plan that still matches is this plan).
    let dry_plan = args.dry_run.then(|| prepared.plan.clone());
    let report = match duoprov_sync::run(&*store, &duo, &settings, prepared, &options, &bar).await {
        Ok(r) => r,
        Err(e @ (SyncError::Refused { .. } | SyncError::Stale(_))) => {
            if ctx.json {
                let body = match &e {
                    SyncError::Refused { provisioner, refusal } => json!({
                        "provisioner": provisioner,
                        "refused": true,
                        "reasons": refusal.reasons,
                        "removals": refusal.removals,
                        "removal_digest": refusal.digest,
                        "approve": refusal.approve_command(provisioner),
                    }),
                    other => json!({"provisioner": args.provisioner, "refused": true, "reasons": [other.to_string()]}),
                };
                output::json(&body)?;
            }
            eprintln!("{e}");
            return Ok(exit::REFUSED);
        }
        Err(e) => return Err(e.into()),
    };
    let mut report = report;
    report.escalated = escalated;
    let lacks_grant = report.lacks_write_grant();
    if ctx.json {
        let mut body = serde_json::to_value(&report)?;
        if let Some(o) = body.as_object_mut() {
            o.insert("status".into(), json!(report.status()));
            o.insert("lacks_write_grant".into(), json!(lacks_grant));
            if let Some(plan) = &dry_plan {
                o.insert("plan".into(), serde_json::to_value(plan)?);
            }
        }
        output::json(&body)?;
    } else {
        if let Some(reason) = &report.escalated {
            println!("escalated to a full sync: {reason}");
        }
        println!("{}", report.summary());
        if let Some(plan) = &dry_plan {
            print!("{}", duoprov_plan::render::text(plan));
        }
        for f in &report.failures {
            println!("  ! {} [{}]: {}", f.object, f.code, f.message);
        }
        print_held(&report);
        if report.forbidden() > 0 && !lacks_grant {
            println!("{} refused by Duo with 403: {WRITE_GRANT_HINT}", counted(report.forbidden(), "write was", "writes were"));
        }
    }
    if lacks_grant {
        eprintln!("error: Duo refused every write of this run with 403 ({} failed, nothing written): {WRITE_GRANT_HINT}", counted(report.forbidden(), "object", "objects"));
        return Ok(exit::ERROR);
    }
    Ok(if report.failed() > 0 || report.held > 0 { exit::PARTIAL } else { exit::OK })
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
    // What the daemon's console keeps in the registry: the last refused plan and the requests
    // waiting for the daemon leading the provisioner.
    let (refused_plan, console_requests) = match provisioner {
        Some(p) => (store.refused_plan(p).await?, store.console_requests(p).await?),
        None => (None, Vec::new()),
    };
    if ctx.json {
        output::json(&json!({
            "refused_plan": refused_plan,
            "console_requests": console_requests,
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
    let now = duoprov_sync::now_ms();
    let names = GroupNames::read(&*store).await?;
    if let Some(l) = &links {
        println!("linked: {} group(s), {} user(s)", l.groups.len(), l.users.len());
    }
    if provisioner.is_some() {
        match &checkpoint {
            Some(cp) => {
                println!("checkpoint: change {} of {last_change} ({} waiting)", cp.last_seq, (last_change - cp.last_seq).max(0));
                if let Some(t) = cp.last_full_ms {
                    println!("last full sync: {}", output::when(t.0, now));
                }
                if let Some(t) = cp.last_incremental_ms {
                    println!("last incremental sync: {}", output::when(t.0, now));
                }
            }
            None => println!("checkpoint: none yet (the first sync is a full sync)"),
        }
        if !retries.is_empty() {
            println!("\nretry list ({} object(s), soonest first):", retries.len());
            let rows: Vec<Vec<String>> = retries
                .iter()
                .map(|r| vec![names.target(&r.target), r.attempts.to_string(), output::when(r.next_at_ms.0, now), r.last_error.clone()])
                .collect();
            output::table(&["OBJECT", "FAILURES", "NEXT ATTEMPT", "LAST ERROR"], &rows);
            println!();
        }
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let secs = r.finished_at_ms.map(|f| format!("{:.1}", (f.0 - r.started_at_ms.0) as f64 / 1000.0)).unwrap_or_default();
            vec![
                r.id.to_string(),
                r.provisioner.clone(),
                format!("{}{}", r.kind, if r.dry_run { " (dry run)" } else { "" }),
                r.status.to_string(),
                output::when(r.started_at_ms.0, now),
                secs,
            ]
        })
        .collect();
    output::table(&["RUN", "PROVISIONER", "KIND", "STATUS", "STARTED", "SECONDS"], &rows);
    if let (Some(p), Some(r)) = (provisioner, &refused_plan) {
        println!(
            "\nrefused plan ({} {}): {}; {}, digest {} (approve exactly them with `duoprov sync {p} --approve {}`, or from the console)",
            r.kind,
            output::when(r.at_ms, now),
            r.reasons.join("; "),
            counted(usize::try_from(r.removal_count).unwrap_or(0), "removal", "removals"),
            r.digest,
            r.digest
        );
    }
    for r in &console_requests {
        let what = match &r.kind {
            duoprov_registry::RequestKind::FullSync => "full sync".to_owned(),
            duoprov_registry::RequestKind::Retry(object) => format!("retry of {object}"),
        };
        let state = if r.claimed_at_ms.is_some() { "under way" } else { "waiting" };
        println!("console request: {what} asked for by {} {} ({state})", r.who, output::when(r.at_ms, now));
    }
    if !errors.is_empty() {
        println!("\nobjects in error:");
        let rows: Vec<Vec<String>> = errors
            .iter()
            .map(|e| vec![e.kind.clone(), names.object(&e.kind, &e.object), e.code.clone(), output::when(e.at_ms.0, now), e.message.clone()])
            .collect();
        output::table(&["KIND", "OBJECT", "CODE", "SINCE", "MESSAGE"], &rows);
    }
    Ok(exit::OK)
}

/// Registry group names by uuid, so people read names, not uuids.
struct GroupNames(std::collections::HashMap<String, String>);

impl GroupNames {
    async fn read(store: &dyn duoprov_registry::Store) -> Result<Self> {
        Ok(GroupNames(store.groups(None).await?.into_iter().map(|g| (g.uuid, g.name.to_string())).collect()))
    }

    fn group(&self, uuid: &str) -> String {
        match self.0.get(uuid) {
            Some(name) => name.clone(),
            None => format!("(a group no longer in the registry, uuid {uuid})"),
        }
    }

    /// An object-error row's object (`UUID`, `SOURCE:ID`, or `UUID SOURCE:ID`) with names.
    fn object(&self, kind: &str, object: &str) -> String {
        match kind {
            "group" => format!("group {}", self.group(object)),
            "user" => format!("subject {object}"),
            "membership" => match object.split_once(' ') {
                Some((uuid, subject)) => format!("subject {subject} in group {}", self.group(uuid)),
                None => object.to_owned(),
            },
            _ => object.to_owned(),
        }
    }

    fn target(&self, t: &duoprov_registry::RetryTarget) -> String {
        use duoprov_registry::RetryTarget;
        match t {
            RetryTarget::Group { group_uuid } => format!("group {}", self.group(group_uuid)),
            RetryTarget::WholeGroup { group_uuid } => format!("group {} (its whole membership)", self.group(group_uuid)),
            RetryTarget::User { subject } => format!("subject {subject}"),
            RetryTarget::Membership { group_uuid, subject } => format!("subject {subject} in group {}", self.group(group_uuid)),
        }
    }
}

/// A user id no Duo account holds: Duo ids are random, and this one is all zeros.
const ABSENT_USER_ID: &str = "DU000000000000000000";

/// Whether the Admin API application holds "Grant write resource", asked without changing Duo:
/// an empty modification of a user that does not exist. Duo (and the emulator) check the
/// application's permission before looking the object up, so the answer is 403 without the grant
/// and 404 with it; an empty modification changes nothing even if the user existed. Real Duo's
/// order of checks is not documented: should it look objects up first, a 404 here would hide a
/// missing grant — `doctor --check-write` proves writes with a real round trip.
async fn probe_write_grant(duo: &duoprov_duo::DuoClient, provisioner: &str) -> Result<String> {
    use duoprov_duo::{CallClass, CallSpec, ErrorClass, Params, Safety};
    let spec = CallSpec::new("POST", format!("/admin/v1/users/{ABSENT_USER_ID}"), Params::none(), CallClass::Write, Safety::Repeatable);
    match duo.call(&spec).await {
        Err(e) if e.class() == ErrorClass::NotFound => Ok(format!(
            "write grant present: Duo checked the permission of an empty change to user {ABSENT_USER_ID}, which does not exist, and answered 404; nothing was changed"
        )),
        Err(e) if e.class() == ErrorClass::Forbidden => Err(anyhow::anyhow!("Duo refused a write with 403 ({e}): {WRITE_GRANT_HINT}")),
        Ok(_) => Ok(format!("write grant present: Duo accepted an empty change to user {ABSENT_USER_ID}; nothing was changed")),
        Err(e) => Err(anyhow::anyhow!("cannot tell whether writes are allowed ({e}); run `duoprov doctor {provisioner} --check-write` to try a real write")),
    }
}

/// Creates and deletes a throwaway group, saying what it did.
async fn write_round_trip(duo: &duoprov_duo::DuoClient) -> Result<String> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let tag = (nanos as u64 ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let name = format!("duoprov-doctor-{:08x}", tag >> 32);
    let mut fields = duoprov_duo::GroupFields::named(&name);
    fields.desc = Some("made and deleted at once by `duoprov doctor --check-write`; safe to delete".into());
    let group = duo.create_group(&fields).await.map_err(|e| {
        let hint = if e.class() == duoprov_duo::ErrorClass::Forbidden { format!(": {WRITE_GRANT_HINT}") } else { String::new() };
        anyhow::anyhow!("could not create the throwaway group {name}: {e}{hint}")
    })?;
    duo.delete_group(&group.group_id).await.map_err(|e| {
        anyhow::anyhow!("created the throwaway group {name} ({}) but could not delete it: {e}; delete it in the Duo Admin Panel", group.group_id)
    })?;
    Ok(format!("created the throwaway group {name} ({}) and deleted it", group.group_id))
}

pub async fn doctor(ctx: &Context, provisioner: &str, check_write: bool, probe: bool) -> Result<u8> {
    let mut checks: Vec<(String, Result<String>)> = Vec::new();
    let mut check = |name: &str, result: Result<String>| checks.push((name.to_owned(), result));
    // Warnings: nothing fails, but an operator should look.
    let mut warnings: Vec<(String, String)> = Vec::new();
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
    if let Some(tls) = duoprov_registry::pg_tls::tls_choice(&ctx.settings.registry_url) {
        check("registry TLS", Ok(tls.describe()));
    }
    let mut duo_groups = Vec::new();
    // The probe to show: (run now, when, report); or none recorded.
    let mut probe_shown: Option<(bool, i64, duoprov_duo::ProbeReport)> = None;
    let mut probe_shown_none = false;
    let mut granted = false;
    match &client {
        Ok((_, duo)) => {
            match duo.list_groups().await {
                Ok(groups) => {
                    check("Duo", Ok(format!("read access works; {} groups in the account", groups.len())));
                    duo_groups = groups;
                    let grant = probe_write_grant(duo, provisioner).await;
                    granted = grant.is_ok();
                    check("Duo write grant", grant);
                }
                Err(e) => {
                    check("Duo", Err(e.into()));
                    // The same failure again would say nothing new.
                    check("Duo write grant", Err(anyhow::anyhow!("not checked: Duo could not be read (see the Duo check)")));
                }
            }
            if check_write {
                check("Duo write round trip", write_round_trip(duo).await);
            }
            if probe && !granted {
                check("Duo probe", Err(anyhow::anyhow!("not run: the probe makes and deletes throwaway objects, and this application cannot write (see the write grant check)")));
            } else if probe {
                let (rows, report, at_ms) = super::probe::run(store.as_ref().ok().map(|s| &**s as &dyn duoprov_registry::Store), duo).await;
                for (name, r) in rows {
                    check(&name, r);
                }
                probe_shown = Some((true, at_ms, report));
            } else if let Ok(s) = &store {
                match super::probe::recorded(&**s, duo).await {
                    Ok(Some((at_ms, report))) => probe_shown = Some((false, at_ms, report)),
                    Ok(None) => probe_shown_none = true,
                    Err(e) => check("Duo probe", Err(e)),
                }
            }
        }
        Err(e) => check("Duo", Err(anyhow::anyhow!("{e:#}"))),
    }
    if let (Some(p), Ok(store)) = (ctx.settings.provisioners.get(provisioner), &store) {
        warnings.extend(shared_account_warnings(&**store, p, &duo_groups).await);
    }
    warnings.extend(private_file_warnings(&ctx.settings.registry_url));
    let problems = checks.iter().filter(|(_, r)| r.is_err()).count();
    if ctx.json {
        let mut rows: Vec<serde_json::Value> = checks
            .iter()
            .map(|(name, r)| match r {
                Ok(detail) => json!({"check": name, "ok": true, "detail": detail}),
                Err(e) => json!({"check": name, "ok": false, "detail": format!("{e:#}")}),
            })
            .collect();
        rows.extend(warnings.iter().map(|(name, detail)| json!({"check": name, "ok": true, "warning": true, "detail": detail})));
        let mut doc = json!({"provisioner": provisioner, "ok": problems == 0, "checks": rows});
        if let Some((ran, at_ms, report)) = &probe_shown {
            let mut p = super::probe::to_json(*at_ms, report);
            p["ran_now"] = json!(ran);
            doc["probe"] = p;
        } else if probe_shown_none {
            doc["probe"] = serde_json::Value::Null;
        }
        output::json(&doc)?;
    } else {
        for (name, r) in &checks {
            match r {
                Ok(detail) => println!("ok    {name}: {detail}"),
                Err(e) => println!("FAIL  {name}: {e:#}"),
            }
        }
        for (name, detail) in &warnings {
            println!("warn  {name}: {detail}");
        }
        if let Some((ran, at_ms, report)) = &probe_shown {
            let when = if *ran { "just now".to_owned() } else { format!("recorded {}", super::probe::age(*at_ms)) };
            println!("probe of this Duo account ({when}; objects tagged {}):", report.tag);
            for (name, detail) in super::probe::readings(report) {
                println!("      {name}: {detail}");
            }
        } else if probe_shown_none {
            println!("probe: none recorded for this Duo account (`duoprov doctor {provisioner} --probe` against a sandbox account finds out how it treats bulk, username case and duplicate group names)");
        }
    }
    Ok(if problems == 0 { exit::OK } else { exit::ERROR })
}

/// Warns when other provisioners provision the same Duo account, and names every Duo object
/// linked by this provisioner and another one.
async fn shared_account_warnings(store: &dyn duoprov_registry::Store, p: &Provisioner, duo_groups: &[duoprov_duo::Group]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if p.shares_duo_with.is_empty() {
        return out;
    }
    out.push((
        "shared Duo account".to_owned(),
        format!(
            "{} {} {} the same Duo account as {}; none of them adopts, deletes or removes members of a group another one links (such a group is held with MAT), and a user another one links is used only as a shared user, never rewritten or deleted",
            if p.shares_duo_with.len() == 1 { "provisioner" } else { "provisioners" },
            p.shares_duo_with.join(", "),
            if p.shares_duo_with.len() == 1 { "provisions" } else { "provision" },
            p.name
        ),
    ));
    let Ok(mine) = store.links(&p.name).await else { return out };
    let name_of = |id: &str| duo_groups.iter().find(|g| g.group_id == id).map(|g| format!("{:?}", g.name)).unwrap_or_else(|| id.to_owned());
    for other in &p.shares_duo_with {
        let Ok(theirs) = store.links(other).await else { continue };
        let mut foreign = duoprov_model::ForeignLinks::default();
        foreign.add(other, &theirs);
        for l in &mine.groups {
            if let Some(id) = l.duo_group_id.as_deref().filter(|id| foreign.groups.contains_key(*id)) {
                out.push(("linked twice".to_owned(), format!("Duo group {} is linked by both {} and {other}; keep it selected in one provisioner only", name_of(id), p.name)));
            }
        }
        let shared: Vec<String> = mine.users.iter().filter(|l| l.duo_user_id.as_deref().is_some_and(|id| foreign.users.contains_key(id))).map(|l| l.subject.to_string()).collect();
        if !shared.is_empty() {
            let shown: Vec<&str> = shared.iter().take(10).map(String::as_str).collect();
            let more = if shared.len() > shown.len() { format!(" and {} more", shared.len() - shown.len()) } else { String::new() };
            out.push((
                "linked twice".to_owned(),
                format!(
                    "{} linked by both {} and {other} ({}{more}); they are shared: only the provisioner that created one may rewrite or delete it",
                    counted(shared.len(), "Duo user is", "Duo users are"),
                    p.name,
                    shown.join(", ")
                ),
            ));
        }
    }
    out
}

/// Warnings for registry files that group or others can read: the SQLite database (with its
/// `-wal` and `-shm`) holds names, e-mail addresses and phone numbers.
fn private_file_warnings(registry_url: &str) -> Vec<(String, String)> {
    let Some(path) = registry_url.strip_prefix("sqlite://").map(|p| p.split('?').next().unwrap_or(p)) else { return Vec::new() };
    let mut out = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{path}{suffix}"));
        if let Some(mode) = crate::files::readable_by_others(&file) {
            out.push((
                "file permissions".to_owned(),
                format!("{} (mode {mode:o}) holds personal data and is readable by group or others; chmod 600 it", file.display()),
            ));
        }
    }
    out
}
