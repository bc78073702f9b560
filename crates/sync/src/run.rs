//! A sync run: `prepare` reads both sides whole and plans (that is all `duoprov plan` needs;
//! `prepare_incremental` in [`crate::incremental`] does the same for a scope); `run` checks a
//! prepared plan against the safety rules and, unless it is a dry run, applies it, records the
//! outcome in the run log, and settles the checkpoint and the retry list. A refused plan is kept
//! as the provisioner's last (what the console shows and approves), and a run that gets past the
//! rules clears it; a dry run or a run of one object leaves it as it is.

use std::collections::HashSet;
use std::time::Instant;

use duoprov_duo::{DuoClient, User};
use duoprov_model::SubjectKey;
use duoprov_plan::fingerprint::fingerprint;
use duoprov_plan::safety::{self, Approval};
use duoprov_plan::{build_plan, DesiredState, Plan};
use duoprov_registry::{RunStatus, Settlement, Store};

use crate::apply::Applier;
use crate::error::SyncError;
use crate::progress::Progress;
use crate::prepared::{Prepared, RunKind};
use crate::read::read_all;
use crate::registry_read::{mark_deleted_groups, read_links, read_registry, RegistryRead};
use crate::report::RunReport;
use crate::settings::{SyncOptions, SyncSettings};

/// Reads the registry selection, Duo and the links, and plans.
pub async fn prepare(store: &dyn Store, duo: &DuoClient, settings: &SyncSettings) -> Result<Prepared, SyncError> {
    prepare_with_progress(store, duo, settings, &crate::progress::NoProgress).await
}

/// [`prepare`], reporting the read of Duo's users to `progress` (a bar on a terminal).
pub async fn prepare_with_progress(store: &dyn Store, duo: &DuoClient, settings: &SyncSettings, progress: &dyn crate::progress::Progress) -> Result<Prepared, SyncError> {
    let start = Instant::now();
    let pacing_before = duo.pacing_stats();
    let name = settings.provisioner.as_str();
    // Read before the selection: a change committed in between is then replayed by the next
    // incremental sync (harmless) rather than skipped.
    let change_seq = store.last_change_seq().await?;
    let (registry, duo_read) = tokio::join!(read_registry(store, settings), read_all(duo, progress));
    let registry: RegistryRead = registry?;
    let duo_read = duo_read?;
    let links = read_links(store, settings).await?;
    let admin_read = match &settings.policy.admin_roles {
        Some(config) => Some(crate::admins::read(store, duo, settings, config).await?),
        None => None,
    };
    let read_ms = start.elapsed().as_millis() as u64;
    let start = Instant::now();
    let mut desired = DesiredState::build(&registry.selection, &settings.mapping, registry.eligible.as_ref());
    registry.annotate(&mut desired);
    let RegistryRead { selection, eligible, .. } = registry;
    mark_deleted_groups(store, settings, &mut desired, &links).await?;
    let mut plan = build_plan(name, &desired, &duo_read.snapshot, &links, &settings.policy);
    if let (Some(config), Some(read)) = (&settings.policy.admin_roles, &admin_read) {
        plan.admins = crate::admins::plan(config, read);
    }
    let mut eligible_sorted: Option<Vec<&SubjectKey>> = eligible.as_ref().map(|e| e.iter().collect());
    if let Some(e) = &mut eligible_sorted {
        e.sort();
    }
    // Without admin roles the fingerprints are what they always were (saved plans stay valid).
    let (registry_fingerprint, duo_fingerprint) = match &admin_read {
        None => (fingerprint(&(&selection, &eligible_sorted)), fingerprint(&(&duo_read.snapshot, &links))),
        Some(a) => (
            fingerprint(&(&selection, &eligible_sorted, &a.members)),
            fingerprint(&(&duo_read.snapshot, &links, &a.duo, &a.managed, &a.foreign)),
        ),
    };
    let rendered = crate::prepared::RenderedUpdate::Replace {
        fingerprint: crate::settings::rendering_fingerprint(settings),
        rows: crate::prepared::rendered_rows(&desired),
        groups: crate::prepared::rendered_group_rows(&desired),
    };
    let plan_ms = start.elapsed().as_millis() as u64;
    Ok(Prepared {
        kind: RunKind::Full,
        change_seq,
        scope: None,
        selected_groups: selection.groups.len(),
        plan,
        desired,
        registry_fingerprint,
        duo_fingerprint,
        // Kept only for the Duo users table: otherwise every raw user (aliases, groups, phones)
        // fields) would stay in memory through the whole apply.
        duo_users: if settings.load_duo_users { duo_read.users } else { Vec::new() },
        read_calls: duo_read.calls,
        read_ms,
        planned_at_clock: duo.pacing_clock_secs(),
        plan_ms,
        pacing_before,
        rendered: Some(rendered),
    })
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The users list after `plan` was applied to `before` (one index, so large plans stay linear).
fn users_after(mut users: Vec<User>, created: Vec<User>, plan: &Plan) -> Vec<User> {
    use duoprov_plan::{Op, UserDeleteMode};
    let position: std::collections::HashMap<String, usize> = users.iter().enumerate().map(|(i, u)| (u.user_id.clone(), i)).collect();
    let mut gone: HashSet<&str> = HashSet::new();
    for o in &plan.ops {
        match &o.op {
            Op::UpdateUser { user_id, changes, .. } => {
                if let Some(u) = position.get(user_id).map(|i| &mut users[*i]) {
                    for c in changes {
                        let v = c.after.clone();
                        match c.field.as_str() {
                            "username" => u.username = v,
                            "realname" => u.realname = v,
                            "email" => u.email = v,
                            "firstname" => u.firstname = v,
                            "lastname" => u.lastname = v,
                            _ => {}
                        }
                    }
                }
            }
            Op::DeleteUser { user_id, mode: UserDeleteMode::Delete, .. } => {
                gone.insert(user_id.as_str());
            }
            Op::RestoreUser { user_id, .. } | Op::EnableUser { user_id, .. } => {
                if let Some(i) = position.get(user_id) {
                    users[*i].status = "active".into();
                }
            }
            Op::DeleteUser { user_id, mode: UserDeleteMode::Disable, .. } => {
                if let Some(i) = position.get(user_id) {
                    users[*i].status = "disabled".into();
                }
            }
            Op::DeleteUser { user_id, mode: UserDeleteMode::Trash | UserDeleteMode::DisableThenTrash, .. } => {
                if let Some(i) = position.get(user_id) {
                    users[*i].status = "pending deletion".into();
                }
            }
            _ => {}
        }
    }
    users.retain(|u| !gone.contains(u.user_id.as_str()));
    users.extend(created);
    users
}

/// Checks and (unless a dry run) applies a prepared plan, recording the run.
pub async fn run(
    store: &dyn Store,
    duo: &DuoClient,
    settings: &SyncSettings,
    prepared: Prepared,
    options: &SyncOptions,
    progress: &dyn Progress,
) -> Result<RunReport, SyncError> {
    let name = settings.provisioner.as_str();
    let run_id = store.begin_run(name, prepared.kind, options.dry_run).await?;
    if let Some(trigger) = &options.trigger {
        store.set_run_trigger(run_id, trigger).await?;
    }
    // The usernames this read rendered, for the next scoped incremental runs: recorded before
    // applying (they describe the registry as read, whatever Duo answers), never by a dry run
    // (which may not hold the runner lock, and could write an older read over a newer one).
    if !options.dry_run
        && let Some(rendered) = &prepared.rendered
    {
        rendered.record(store, name).await?;
    }
    let mut report = RunReport {
        provisioner: name.to_owned(),
        kind: prepared.kind.as_str().to_owned(),
        scope: prepared.scope.clone(),
        run_id,
        dry_run: options.dry_run,
        read_calls: prepared.read_calls,
        held: prepared.plan.errors.len(),
        adopted: prepared.plan.adoptions.len(),
        timings_ms: vec![("read".into(), prepared.read_ms), ("plan".into(), prepared.plan_ms)],
        phase_clock: {
            let (end, plan, read) = (prepared.planned_at_clock, prepared.plan_ms as f64 / 1000.0, prepared.read_ms as f64 / 1000.0);
            vec![("read".into(), end - plan - read, end - plan, Vec::new()), ("plan".into(), end - plan, end, Vec::new())]
        },
        ..Default::default()
    };
    let pacing_before = prepared.pacing_before.clone();
    let finish = |status: RunStatus, message: Option<String>, mut report: RunReport| async move {
        report.duo_classes = crate::report::class_reports(&pacing_before, &duo.pacing_stats());
        let counts = serde_json::to_value(&report).unwrap_or_default();
        let timings = serde_json::to_value(&report.timings_ms).unwrap_or_default();
        store.finish_run(run_id, status, &counts, &timings, message.as_deref()).await?;
        // Returned, not stored: up to thousands of points per class.
        report.pacing_profile = Some(crate::report::PacingProfile::new(std::mem::take(&mut report.phase_clock), duo.pacing_profile()));
        Ok::<RunReport, SyncError>(report)
    };

    let mut plan = prepared.plan;
    if let Some(saved) = &options.saved {
        let mut moved = Vec::new();
        if saved.provisioner != name {
            moved.push(format!("it was made for provisioner {}", saved.provisioner));
        }
        if saved.registry_fingerprint != prepared.registry_fingerprint {
            moved.push("the registry changed".to_owned());
        }
        if saved.duo_fingerprint != prepared.duo_fingerprint {
            moved.push("Duo or the sync state changed".to_owned());
        }
        if moved.is_empty() && saved.plan != plan {
            // Same states, another plan: the file was edited, or made by another version.
            moved.push("the plan in the file is not the plan of these states (edited, or made by another duoprov version)".to_owned());
        }
        if !moved.is_empty() {
            let message = moved.join(", ");
            finish(RunStatus::Refused, Some(format!("stale plan: {message}")), report).await?;
            return Err(SyncError::Stale(message));
        }
        plan = saved.plan.clone();
    }
    report.held = plan.errors.len() + plan.admins.held.len();
    report.held_objects = plan
        .errors
        .iter()
        .map(|e| crate::report::Failure { object: e.object.to_string(), code: e.code.to_string(), message: e.message.clone() })
        .chain(plan.admins.held.iter().map(|h| crate::report::Failure { object: h.object.clone(), code: h.code.clone(), message: h.message.clone() }))
        .collect();
    report.removal_digest = safety::removal_digest(&plan);
    // A saved plan that still matches both states was reviewed whole, its removals included.
    let approval = Approval { saved_plan: options.saved.is_some(), ..options.approval.clone() };
    if let Err(refusal) = safety::check(&plan, &settings.policy, prepared.selected_groups, &approval) {
        let message = refusal.message(name);
        finish(RunStatus::Refused, Some(message), report).await?;
        // The provisioner's plan (not one object's) is what the console shows and approves.
        if !options.dry_run && prepared.kind != RunKind::Object {
            let kept = duoprov_registry::RefusedPlan {
                provisioner: name.to_owned(),
                at_ms: now_ms(),
                kind: prepared.kind.as_str().to_owned(),
                reasons: refusal.reasons.clone(),
                removals: refusal.removals.clone(),
                removal_count: refusal.removals.len() as i64,
                digest: refusal.digest.clone(),
            };
            store.save_refused_plan(&kept).await?;
        }
        return Err(SyncError::Refused { provisioner: name.to_owned(), refusal });
    }
    if options.dry_run {
        report.planned = Some(crate::report::Planned::of(&plan));
        let status = report.status();
        return finish(status, Some("dry run: nothing applied".into()), report).await;
    }
    let trigger = duoprov_registry::AuditTrigger { run_id: Some(run_id), approval: options.approval.digest.clone(), ..duoprov_registry::AuditTrigger::new(&options.actor) };
    let mut applier = Applier::new(store, duo, name, settings.concurrency.max(1), progress, report, options.fence.clone(), trigger.clone());
    if let Err(e) = applier.apply(&plan).await {
        if matches!(e, SyncError::LockLost { .. }) {
            // What was applied before the lock was lost is recorded on its objects; the
            // checkpoint stays, so the next run covers the same changes again.
            finish(RunStatus::Interrupted, Some(e.to_string()), applier.into_report()).await?;
        }
        return Err(e);
    }
    let created = applier.created_user_objects();
    let failed = applier.failed_targets();
    let mut report = applier.into_report();
    if !plan.admins.is_empty() {
        if let Some(fence) = &options.fence
            && !fence.held().await
        {
            let e = SyncError::LockLost { provisioner: name.to_owned(), phase: "administrators".to_owned() };
            finish(RunStatus::Interrupted, Some(e.to_string()), report).await?;
            return Err(e);
        }
        let started = Instant::now();
        let applied = crate::admins::apply(store, duo, name, &plan.admins, &trigger).await?;
        report.write_calls += applied.counts.created + applied.counts.updated + applied.counts.disabled + applied.counts.deleted + applied.counts.failed;
        report.failures.extend(applied.failures);
        report.admins = Some(applied.counts);
        report.timings_ms.push(("administrators".into(), started.elapsed().as_millis() as u64));
    }
    // The run finished: the checkpoint moves past what it covered, and what failed is scheduled.
    let attempted = prepared.scope.as_ref().map(|s| s.attempted.clone()).unwrap_or_default();
    let settlement = Settlement {
        kind: prepared.kind,
        // One object's run covers no change-log span: other changes stay pending.
        checkpoint: (prepared.kind != RunKind::Object).then_some(prepared.change_seq),
        clear_all: prepared.kind == RunKind::Full,
        attempted: &attempted,
        failed: &failed,
        now_ms: duoprov_model::EpochMillis(now_ms()),
        backoff: settings.incremental.backoff,
    };
    store.settle(name, &settlement).await?;
    report.retries_scheduled = failed.len();
    if settings.load_duo_users && prepared.kind == RunKind::Full {
        // Duo as it stands after this run: the users read before it, with this run's creates,
        // field updates and deletions applied — no second read of Duo.
        let users = users_after(prepared.duo_users, created, &plan);
        let outcome = crate::duo_users::load(store, name, &users).await?;
        report.duo_users_loaded = Some(outcome.counts);
        // The sync-back group follows the table it is computed from; a refusal is this run's
        // failure to report, not a reason to undo what was applied to Duo.
        let object = || settings.sync_back.as_ref().map(|s| format!("sync-back group {}", s.group)).unwrap_or_default();
        match crate::sync_back::sync_back(store, settings, &options.actor, &crate::sync_back::SyncBackRun::after_load(&outcome.problems)).await {
            Ok(outcome) => report.sync_back = outcome,
            Err(SyncError::SyncBack(message)) => {
                report.failures.push(crate::report::Failure { object: object(), code: "SYNC_BACK".into(), message });
            }
            // Over its thresholds (or after an incomplete load): nothing written; the message
            // names the `duoprov load-users P --approve DIGEST` that applies exactly that list.
            Err(SyncError::SyncBackRefused(refusal)) => {
                report.failures.push(crate::report::Failure { object: object(), code: "SYNC_BACK_REFUSED".into(), message: refusal.message() });
            }
            Err(e) => return Err(e),
        }
    }
    // The plan got past the safety rules and was applied: a refusal before it no longer stands.
    if prepared.kind != RunKind::Object {
        store.clear_refused_plan(name).await?;
    }
    let status = report.status();
    finish(status, None, report).await
}
