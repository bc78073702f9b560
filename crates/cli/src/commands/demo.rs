//! `duoprov demo`: the seed scenario on embedded defaults, told for someone who has never run
//! duoprov. A temporary SQLite registry and an in-process Duo emulator; two people and a group
//! marked for provisioner `duoTest`; the plan; the sync with a compact traffic log (one line per
//! Duo call: method, path, status, time; masked bodies only with `-v`); Duo's users and groups
//! after the sync as tables by name; a second plan that is empty; a short summary and the next
//! steps. Headings and statuses are coloured on a terminal only (`NO_COLOR` and pipes get plain
//! text). With `--json` the plans, the sync report and the emulator's state are printed as JSON
//! instead. Nothing outside a temporary folder is touched.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anstream::println;
use anstyle::{AnsiColor, Style};
use anyhow::{Context as _, Result};
use duoprov_emulator::{Emulator, EmulatorHandle, Integration};
use duoprov_model::{counted, GroupMember, GroupName, Marker, MarkerScope, MarkerTarget, SubjectKey, SubjectPatch};
use duoprov_plan::safety::Approval;
use duoprov_plan::{Mapping, MappingConfig, Policy};
use duoprov_registry::NodeAttrs;
use duoprov_sync::{NoProgress, RunReport, SyncError, SyncOptions};

use super::Context;
use crate::config::{DuoConnection, LogHttp, Provisioner, SecretSource, Settings};
use crate::exit;

const IKEY: &str = "DIDEMO00000000000001";
const PROVISIONER: &str = "duoTest";
/// The seed's people: id (also their Duo username), name, e-mail address.
const PEOPLE: [(&str, &str, &str); 2] = [("mchyzer", "Chris Hyzer", "mchyzer@example.edu"), ("kwilso", "Kate Wilson", "kwilso@example.edu")];

const HEADING: Style = Style::new().bold().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Cyan)));
const GOOD: Style = Style::new().bold().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green)));
const BAD: Style = Style::new().bold().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)));
const DIM: Style = Style::new().dimmed();
const COMMAND: Style = Style::new().bold();

fn heading(text: &str) {
    println!("\n{HEADING}{text}{HEADING:#}");
}

/// `12 ms` under a second, `1.2 s` from there.
fn took(d: Duration) -> String {
    if d < Duration::from_secs(1) { format!("{} ms", d.as_millis()) } else { format!("{:.1} s", d.as_secs_f64()) }
}

/// A table with a bold header row, indented by two spaces.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    for (i, line) in crate::output::table_lines(headers, rows).iter().enumerate() {
        if i == 0 {
            println!("  {COMMAND}{line}{COMMAND:#}");
        } else {
            println!("  {line}");
        }
    }
}

pub async fn run(json: bool, verbose: u8) -> Result<u8> {
    let started = Instant::now();
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    // A throwaway key for a throwaway emulator, kept in a private file like a real one.
    let skey: String = (0..40).map(|i| char::from(b'a' + ((i * 7 + std::process::id() as usize) % 26) as u8)).collect();
    let skey_file = dir.path().join("duo.skey");
    crate::files::write_private(&skey_file, skey.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&skey_file, std::fs::Permissions::from_mode(0o600))?;
    }
    let emulator = Emulator::builder()
        .integration(Integration::new(IKEY, skey.clone()))
        .spawn_on("127.0.0.1:0")
        .await
        .context("cannot start the in-process Duo emulator")?;
    let url = format!("http://{}", emulator.addr());

    let provisioner = Provisioner {
        name: PROVISIONER.into(),
        duo: "demo".into(),
        create_users: true,
        // Every call, one line each; bodies (masked) only when asked for with -v.
        log_http: LogHttp::Always,
        log_http_bodies: if verbose > 0 { duoprov_duo::BodyLog::Masked } else { duoprov_duo::BodyLog::None },
        log_http_format: duoprov_duo::TrafficFormat::Compact,
        load_duo_users: false,
        eligible_group: None,
        subject_sources: None,
        policy: Policy::default(),
        mapping: Arc::new(Mapping::compile(&MappingConfig::default(), "provisioner.duoTest.templates")?),
        concurrency: 4,
        incremental: Default::default(),
        schedule: Default::default(),
        shares_duo_with: Vec::new(),
        sync_back: None,
        selection_rules: Default::default(),
    };
    let settings = Settings {
        daemon: Default::default(),
        sources: BTreeMap::new(),
        registry_url: format!("sqlite://{}", dir.path().join("demo.db").display()),
        registry_password: None,
        duo: BTreeMap::from([(
            "demo".to_owned(),
            DuoConnection {
                name: "demo".into(),
                // The emulator checks signatures against the host it serves on.
                api_host: "127.0.0.1".into(),
                integration_key: IKEY.into(),
                secret_key: SecretSource::File(skey_file),
                url: Some(url.clone()),
                proxy: None,
                proxy_password: None,
                ca_file: None,
                tls_roots: duoprov_duo::TlsRoots::System,
                signature_version: 5,
                timeout_secs: 30,
                writes_per_minute: None,
                single_reads_per_minute: None,
                page_reads_per_minute: None,
                list_lookups_per_minute: None,
                bulk_per_minute: None,
                adaptive_pacing: None,
                pacing_recovery_secs: None,
                pacing_recovery_ms: None,
                max_concurrency: None,
                server_retries: None,
                retry_backoff_ms: None,
                bulk: duoprov_duo::BulkMode::Auto,
            },
        )]),
        provisioners: BTreeMap::from([(PROVISIONER.to_owned(), provisioner)]),
    };
    let ctx = Context { settings, json };
    let group = seed_registry(&ctx).await?;

    let code = if json {
        run_json(&ctx, emulator.handle()).await?
    } else {
        println!("{HEADING}duoprov demo{HEADING:#}: one sync from a group registry to Duo, start to finish.");
        println!("The registry is a temporary SQLite file; \"Duo\" is the emulator built into duoprov, at {url}.");
        println!("Nothing outside a temporary folder is touched.");
        run_text(&ctx, emulator.handle(), &group, started).await?
    };
    emulator.shutdown().await.ok();
    Ok(code)
}

/// The seed scenario in the registry: two people, a group with both as members, and the folder
/// `app:duo` marked for the provisioner. Returns the group's name.
async fn seed_registry(ctx: &Context) -> Result<GroupName> {
    // The demo makes its own registry (other commands refuse a missing one).
    let store = ctx.open_store().await?;
    for (id, name, email) in PEOPLE {
        let patch = SubjectPatch {
            name: Some(Some(name.into())),
            login_id: Some(Some(id.into())),
            email: Some(Some(email.into())),
            description: Some(Some(name.into())),
            ..Default::default()
        };
        store.upsert_subject(&SubjectKey::local(id), &patch).await?;
    }
    let group = GroupName::parse("app:duo:testGroup")?;
    let attrs = NodeAttrs { description: Some(Some("Duo test group".into())), ..Default::default() };
    store.add_group(&group, &attrs, true).await?;
    for (id, _, _) in PEOPLE {
        store.add_member(&group, &GroupMember::Subject(SubjectKey::local(id))).await?;
    }
    let folder = MarkerTarget::Folder(duoprov_model::FolderPath::parse("app:duo")?);
    store.assign_marker(&Marker { provisioner: PROVISIONER.into(), target: folder, scope: MarkerScope::Sub, provision: true }).await?;
    Ok(group)
}

/// `--json`: the plan, the sync's report, the emulator's state and the second plan, as JSON.
async fn run_json(ctx: &Context, duo: &EmulatorHandle) -> Result<u8> {
    super::sync::plan(ctx, PROVISIONER, None).await?;
    let args = super::sync::SyncArgs { provisioner: PROVISIONER.into(), incremental: false, dry_run: false, plan: None, object: None, approve: None, allow_deletes: None, log_json: false };
    let code = super::sync::sync(ctx, args).await?;
    crate::output::json(&duo.state())?;
    super::sync::plan(ctx, PROVISIONER, None).await?;
    Ok(code)
}

/// The Duo calls the emulator has answered so far (its sequence number).
fn calls_so_far(duo: &EmulatorHandle) -> u64 {
    duo.calls().last().map_or(0, |c| c.seq)
}

async fn run_text(ctx: &Context, duo: &EmulatorHandle, group: &GroupName, started: Instant) -> Result<u8> {
    heading("1. The registry: two people and a group marked for Duo");
    table(&["PERSON", "NAME", "E-MAIL"], &PEOPLE.iter().map(|(id, name, email)| vec![id.to_string(), name.to_string(), email.to_string()]).collect::<Vec<_>>());
    let members: Vec<&str> = PEOPLE.iter().map(|(id, _, _)| *id).collect();
    println!("  Group {group} (\"Duo test group\"), members {}.", members.join(", "));
    println!("  Folder app:duo is marked for provisioner {PROVISIONER}: its groups and their members go to Duo.");

    let (p, client) = super::duo::client_for(ctx, PROVISIONER).await?;
    let store = ctx.store().await?;
    let settings = super::sync::settings_of(&p);

    heading("2. The plan: duoprov reads Duo, then lists what it would change");
    println!("  {DIM}Each line below is one call to Duo's Admin API: method, path, status, time taken.{DIM:#}");
    let prepared = duoprov_sync::prepare(&*store, &client, &settings).await?;
    println!();
    print_indented(&duoprov_plan::render::text(&prepared.plan));

    heading("3. The sync: duoprov makes the changes");
    let before = calls_so_far(duo);
    let sync_started = Instant::now();
    let options = SyncOptions { dry_run: false, approval: Approval { digest: None, saved_plan: false }, saved: None, fence: None, ..Default::default() };
    let report = match duoprov_sync::run(&*store, &client, &settings, prepared, &options, &NoProgress).await {
        Ok(report) => report,
        Err(e @ (SyncError::Refused { .. } | SyncError::Stale(_))) => {
            println!("  {BAD}refused{BAD:#}: {e}");
            return Ok(exit::REFUSED);
        }
        Err(e) => return Err(e.into()),
    };
    let sync_time = sync_started.elapsed();
    let sync_calls = calls_so_far(duo) - before;
    println!();
    print_result(&report);

    heading("4. Duo after the sync");
    print_duo_state(duo);

    heading("5. Planning again: Duo now matches the registry");
    let again = duoprov_sync::prepare(&*store, &client, &settings).await?;
    println!();
    print_indented(&duoprov_plan::render::text(&again.plan));

    heading("Summary");
    let made = [
        (report.groups.created, "group created", "groups created"),
        (report.users.created, "user created", "users created"),
        (report.memberships.created, "person added to a group", "people added to groups"),
        (report.groups.updated + report.users.updated, "object updated", "objects updated"),
        (report.memberships.deleted, "person removed from a group", "people removed from groups"),
        (report.groups.deleted + report.users.deleted, "object deleted", "objects deleted"),
    ];
    let made: Vec<String> = made.iter().filter(|(n, _, _)| *n > 0).map(|(n, one, many)| counted(*n, one, many)).collect();
    println!(
        "  In Duo: {}. The sync made {} to Duo in {}.",
        if made.is_empty() { "nothing changed".to_owned() } else { made.join(", ") },
        counted(sync_calls as usize, "call", "calls"),
        took(sync_time)
    );
    if report.failed() > 0 || report.held > 0 {
        println!("  {BAD}{} could not be synced{BAD:#}; see the sync's lines above for each one and why.", counted(report.failed() + report.held, "object", "objects"));
    }
    if again.plan.is_empty() && again.plan.errors.is_empty() {
        println!("  {GOOD}A second plan has nothing to do{GOOD:#}: running the sync again would change nothing.");
    } else {
        println!("  {BAD}A second plan still has work{BAD:#}: {} to do.", counted(again.plan.ops.len(), "change", "changes"));
    }
    println!("  Whole demo: {} to Duo in {}.", counted(calls_so_far(duo) as usize, "call", "calls"), took(started.elapsed()));

    heading("Next steps");
    println!("  Do it with your own configuration, against an emulator on your machine:");
    println!("    {COMMAND}duoprov init --with-emulator{COMMAND:#}   writes duoprov.toml for a local Duo emulator");
    println!("  or against your Duo account:");
    println!("    {COMMAND}duoprov init{COMMAND:#}                   writes a starter duoprov.toml; add your [duo.*] keys");
    println!("  then add people, groups and a marker (README.md, Quick start) and run");
    println!("    {COMMAND}duoprov plan {PROVISIONER}{COMMAND:#}  and  {COMMAND}duoprov sync {PROVISIONER}{COMMAND:#}");
    println!("  Every setting: docs/configuration.md. Running it day to day: docs/operations.md.");
    println!("  Each call's request and reply (e-mail addresses masked): {COMMAND}duoprov -v demo{COMMAND:#}");

    let failed = report.failed() > 0 || report.held > 0;
    Ok(if report.lacks_write_grant() { exit::ERROR } else if failed { exit::PARTIAL } else { exit::OK })
}

fn print_indented(text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            println!();
        } else {
            println!("  {line}");
        }
    }
}

/// What the sync did, in words, and every object that failed or is held, by name.
fn print_result(report: &RunReport) {
    let done = [
        (report.groups.created, "group created", "groups created"),
        (report.users.created, "user created", "users created"),
        (report.memberships.created, "membership added", "memberships added"),
        (report.groups.updated + report.users.updated, "object updated", "objects updated"),
        (report.memberships.deleted, "membership removed", "memberships removed"),
        (report.groups.deleted + report.users.deleted, "object deleted", "objects deleted"),
        (report.adopted, "existing Duo object adopted", "existing Duo objects adopted"),
    ];
    let done: Vec<String> = done.iter().filter(|(n, _, _)| *n > 0).map(|(n, one, many)| counted(*n, one, many)).collect();
    if report.failed() == 0 && report.held == 0 {
        println!("  {GOOD}done{GOOD:#}: {}.", if done.is_empty() { "nothing to change".to_owned() } else { done.join(", ") });
    } else {
        println!("  {BAD}finished with failures{BAD:#}: {}.", if done.is_empty() { "nothing changed".to_owned() } else { done.join(", ") });
        for f in report.failures.iter().chain(&report.held_objects) {
            println!("  {BAD}!{BAD:#} {}: {}", f.object, f.message);
        }
    }
}

/// Duo's users and groups as tables by name, from the emulator's state.
fn print_duo_state(duo: &EmulatorHandle) {
    let state = duo.state();
    let group_name = |id: &duoprov_emulator::id::DuoId| state.groups.iter().find(|g| &g.group_id == id).map_or_else(|| id.as_str().to_owned(), |g| g.name.clone());
    let mut users: Vec<Vec<String>> = state
        .users
        .iter()
        .map(|u| {
            let mut groups: Vec<String> = u.groups.iter().map(group_name).collect();
            groups.sort();
            vec![u.username.clone(), u.realname.clone(), u.email.clone(), u.status.as_str().to_owned(), groups.join(", ")]
        })
        .collect();
    users.sort();
    println!("  {}", counted(users.len(), "user", "users"));
    table(&["USERNAME", "REAL NAME", "E-MAIL", "STATUS", "GROUPS"], &users);
    let mut groups: Vec<Vec<String>> = state
        .groups
        .iter()
        .map(|g| {
            let mut members: Vec<&str> = state.users.iter().filter(|u| u.groups.contains(&g.group_id)).map(|u| u.username.as_str()).collect();
            members.sort_unstable();
            vec![g.name.clone(), g.desc.clone(), members.join(", ")]
        })
        .collect();
    groups.sort();
    println!("\n  {}", counted(groups.len(), "group", "groups"));
    table(&["NAME", "DESCRIPTION", "MEMBERS"], &groups);
}
