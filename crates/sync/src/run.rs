//! A sync run: `prepare` reads both sides whole and plans (that is all `duoprov plan` needs;
//! `prepare_incremental` in [`crate::incremental`] does the same for a scope); `run` checks a
//! prepared plan against the safety rules and, unless it is a dry run, applies it, records the
//! outcome in the run log, and settles the checkpoint and the retry list.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use duoprov_duo::{DuoClient, User};
use duoprov_model::{GroupName, Links, SubjectKey};
use duoprov_plan::fingerprint::fingerprint;
use duoprov_plan::safety::{self, Approval};
use duoprov_plan::{build_plan, DesiredState, Mapping, Plan, Policy};
use duoprov_model::ProvisionerSelection;
use duoprov_registry::{RunStatus, Settlement, Store};
use serde::{Deserialize, Serialize};

use crate::apply::Applier;
use crate::error::SyncError;
use crate::progress::Progress;
use crate::read::read_all;
use crate::report::RunReport;

/// What a provisioner's configuration says, resolved.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub provisioner: String,
    pub policy: Policy,
    pub mapping: Arc<Mapping>,
    /// Only effective members of this registry group become Duo users.
    pub eligible_group: Option<GroupName>,
    /// Only subjects of these sources become Duo users.
    pub subject_sources: Option<Vec<String>>,
    /// Duo calls in flight at once during apply (the client also paces them).
    pub concurrency: usize,
    /// Refresh the Duo users table at the end of a full sync, from the users already read.
    pub load_duo_users: bool,
    /// Escalation thresholds and the retry schedule.
    pub incremental: crate::incremental::IncrementalSettings,
    /// The other provisioners provisioning the same Duo account: objects they have linked are
    /// never adopted, deleted or emptied by this one.
    pub shares_duo_with: Vec<String>,
}

/// Which kind of run (the run log's type, shared with the registry).
pub use duoprov_registry::RunKind;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    pub dry_run: bool,
    pub approval: Approval,
    /// Apply exactly this saved plan, refusing if either side has moved since it was made.
    pub saved: Option<SavedPlan>,
    /// The runner lock the run holds: checked before every apply phase, and the run stops when
    /// it is lost (see [`crate::fence`]).
    pub fence: Option<crate::fence::FenceHandle>,
}

/// A plan saved by `duoprov plan --out FILE`, with fingerprints of the states it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: u32,
    pub provisioner: String,
    pub registry_fingerprint: String,
    pub duo_fingerprint: String,
    /// The digest of the plan's removals and deletions, which `--approve` names.
    #[serde(default)]
    pub removal_digest: String,
    pub plan: Plan,
}

/// Both sides read and planned.
pub struct Prepared {
    pub kind: RunKind,
    /// The change-log position the registry was read at: the checkpoint once the run finishes.
    pub change_seq: i64,
    /// What an incremental run covers.
    pub scope: Option<crate::incremental::ScopeSummary>,
    pub plan: Plan,
    pub desired: DesiredState,
    /// Groups the registry selects, held ones included (for the empty-registry rule).
    pub selected_groups: usize,
    pub registry_fingerprint: String,
    pub duo_fingerprint: String,
    /// The users as read from Duo.
    pub duo_users: Vec<User>,
    pub read_calls: usize,
    pub read_ms: u64,
    pub plan_ms: u64,
    /// The client's per-class counters when preparing began (the run reports the difference).
    pub pacing_before: Vec<duoprov_duo::ClassStats>,
}

impl Prepared {
    pub fn saved(&self) -> SavedPlan {
        SavedPlan {
            format: 1,
            provisioner: self.plan.provisioner.clone(),
            registry_fingerprint: self.registry_fingerprint.clone(),
            duo_fingerprint: self.duo_fingerprint.clone(),
            removal_digest: safety::removal_digest(&self.plan),
            plan: self.plan.clone(),
        }
    }
}

/// The registry side of a sync: the provisioner's selection (members of other subject sources
/// dropped) and, with an eligibility group, its effective members.
pub(crate) struct RegistryRead {
    pub selection: ProvisionerSelection,
    pub eligible: Option<HashSet<SubjectKey>>,
}

/// Reads the selection and, with an eligibility group, its members — in one registry snapshot.
pub(crate) async fn read_registry(store: &dyn duoprov_registry::RegistryReader, settings: &SyncSettings) -> Result<RegistryRead, SyncError> {
    let (selection, eligible) = match &settings.eligible_group {
        Some(group) => {
            let (selection, members) = store.provisioner_selection_with_eligible(&settings.provisioner, group).await?;
            (selection, Some(members.into_iter().map(|m| m.subject.key()).collect()))
        }
        None => (store.provisioner_selection(&settings.provisioner).await?, None),
    };
    Ok(filter_registry(settings, selection, eligible))
}

fn filter_registry(settings: &SyncSettings, mut selection: ProvisionerSelection, eligible: Option<HashSet<SubjectKey>>) -> RegistryRead {
    if let Some(sources) = &settings.subject_sources {
        let allowed: HashSet<&str> = sources.iter().map(String::as_str).collect();
        // Members of other sources are dropped from every group; indexes stay valid because the
        // subjects list is kept and only memberships are filtered.
        let keep: Vec<bool> = selection.subjects.iter().map(|s| allowed.contains(s.source.as_str())).collect();
        for g in &mut selection.groups {
            g.members.retain(|m| keep[*m as usize]);
        }
    }
    RegistryRead { selection, eligible }
}

/// The provisioner's links, with the Duo objects the other provisioners of its Duo account link.
pub(crate) async fn read_links(store: &dyn duoprov_registry::SyncStore, settings: &SyncSettings) -> Result<Links, SyncError> {
    let mut links = store.links(&settings.provisioner).await?;
    for other in settings.shares_duo_with.iter().filter(|o| **o != settings.provisioner) {
        let theirs = store.links(other).await?;
        links.foreign.add(other, &theirs);
    }
    Ok(links)
}

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
    let RegistryRead { selection, eligible } = registry?;
    let duo_read = duo_read?;
    let links = read_links(store, settings).await?;
    let read_ms = start.elapsed().as_millis() as u64;
    let start = Instant::now();
    let desired = DesiredState::build(&selection, &settings.mapping, eligible.as_ref());
    let plan = build_plan(name, &desired, &duo_read.snapshot, &links, &settings.policy);
    let mut eligible_sorted: Option<Vec<&SubjectKey>> = eligible.as_ref().map(|e| e.iter().collect());
    if let Some(e) = &mut eligible_sorted {
        e.sort();
    }
    let registry_fingerprint = fingerprint(&(&selection, &eligible_sorted));
    let duo_fingerprint = fingerprint(&(&duo_read.snapshot, &links));
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
        duo_users: duo_read.users,
        read_calls: duo_read.calls,
        read_ms,
        plan_ms,
        pacing_before,
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
            Op::RestoreUser { user_id, .. } => {
                if let Some(i) = position.get(user_id) {
                    users[*i].status = "active".into();
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
        ..Default::default()
    };
    let pacing_before = prepared.pacing_before.clone();
    let finish = |status: RunStatus, message: Option<String>, mut report: RunReport| async move {
        report.duo_classes = crate::report::class_reports(&pacing_before, &duo.pacing_stats());
        let counts = serde_json::to_value(&report).unwrap_or_default();
        let timings = serde_json::to_value(&report.timings_ms).unwrap_or_default();
        store.finish_run(run_id, status, &counts, &timings, message.as_deref()).await?;
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
    report.held = plan.errors.len();
    report.held_objects = plan
        .errors
        .iter()
        .map(|e| crate::report::Failure { object: e.object.to_string(), code: e.code.to_string(), message: e.message.clone() })
        .collect();
    report.removal_digest = safety::removal_digest(&plan);
    // A saved plan that still matches both states was reviewed whole, its removals included.
    let approval = Approval { saved_plan: options.saved.is_some(), ..options.approval.clone() };
    if let Err(refusal) = safety::check(&plan, &settings.policy, prepared.selected_groups, &approval) {
        let message = refusal.message(name);
        finish(RunStatus::Refused, Some(message), report).await?;
        return Err(SyncError::Refused { provisioner: name.to_owned(), refusal });
    }
    if options.dry_run {
        report.planned = Some(crate::report::Planned::of(&plan));
        let status = report.status();
        return finish(status, Some("dry run: nothing applied".into()), report).await;
    }
    let mut applier = Applier::new(store, duo, name, settings.concurrency.max(1), progress, report, options.fence.clone());
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
    // The run finished: the checkpoint moves past what it covered, and what failed is scheduled.
    let attempted = prepared.scope.as_ref().map(|s| s.attempted.clone()).unwrap_or_default();
    let settlement = Settlement {
        kind: prepared.kind,
        checkpoint: Some(prepared.change_seq),
        clear_all: prepared.kind == RunKind::Full,
        attempted: &attempted,
        failed: &failed,
        now_ms: now_ms(),
        backoff: settings.incremental.backoff,
    };
    store.settle(name, &settlement).await?;
    report.retries_scheduled = failed.len();
    if settings.load_duo_users && prepared.kind == RunKind::Full {
        // Duo as it stands after this run: the users read before it, with this run's creates,
        // field updates and deletions applied — no second read of Duo.
        let users = users_after(prepared.duo_users, created, &plan);
        let outcome = duoprov_registry::duo_users::load(store, name, &users).await?;
        report.duo_users_loaded = Some(outcome.counts);
    }
    let status = report.status();
    finish(status, None, report).await
}
