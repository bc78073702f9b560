//! Incremental sync: the change-log entries after the provisioner's checkpoint (and the failed
//! objects whose retry is due) name the groups and subjects that may have changed; only those are
//! read from Duo and planned, with the same planner as a full sync over a *scoped* view of both
//! sides, so the plan is exactly the part of a full sync's plan that concerns them.
//!
//! Scope rules:
//! - a subject named by an entry is reconciled as a whole (fields, and its membership of every
//!   affected group), read from Duo by user id (linked) or username (not yet linked);
//! - a group named by an entry is reconciled in its attributes and selection; its membership is
//!   reconciled for the scoped subjects only, unless the group is *whole*: newly selected (no Duo
//!   group yet), changed structurally (a nested group added or removed, a marker or an import), or
//!   with more membership changes than `whole_group_above` — then its members are read from Duo
//!   (v2 members) and every member on either side joins the scope;
//! - a group retried *whole* (a failed removal of a member no subject is linked to) is read whole;
//! - a Duo group released by a group in scope leaving the selection brings in the selected groups
//!   rendering to its name, which a full sync would give it (`Widen::Groups`);
//! - more entries than `full_sync_above_changes`, or a scope larger than
//!   `full_sync_above_objects`, escalates to a full sync; so does a username found in Duo under
//!   no case while no probe has recorded how this Duo compares usernames and a lookup of a known
//!   user in another case misses it (a Duo comparing exactly hides a user differing only in case
//!   from a lookup, not from a full read).
//!
//! The registry side is read for the scoped subjects only (the selected groups they are in and
//! the groups named, with their effective members among them, their eligibility, and the
//! usernames and group names recorded for the provisioner, so a username or group-name clash is
//! held exactly as the whole selection would hold it while only the groups read are rendered)
//! when every change names the subjects it moves and the recorded names match the rendering
//! settings; clash partners
//! (subjects sharing a recorded or rendered username with a scoped one) join the scope. Otherwise
//! — marker, nesting, group or folder changes, whole groups, a template change, nothing recorded
//! yet — the whole selection is read, as the run's scope says. Either way a username a scoped
//! subject needs that Duo holds for the user linked to a subject outside the scope brings that
//! subject in.
//!
//! With the registry side scoped, the links are read for the scope too
//! ([`duoprov_registry::ScopedLinks`]): the group links of the named groups, the user links of
//! the scoped and retried subjects, the links of the Duo users and groups read (by Duo id, for the
//! rule above and the snapshot), and counts for what needs the rest (the managed users and groups
//! the safety rules weigh, the first linked user for the case check); a run reading the registry whole reads the links whole.
//!
//! The safety rules see what a full sync would: removals from a group are weighed against its
//! real member count in Duo (read whole, or counted with one call), never the scoped members.
//! Due retries whose objects no longer concern the provisioner are dropped, not kept due forever.
//!
//! The checkpoint only moves when the run has finished (see [`crate::run`]); a run cut short is
//! replayed, which is harmless because planning always diffs against Duo as it is.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use duoprov_duo::{DuoClient, User};
use duoprov_model::{ChangeKind, DuoSnapshot, Links, SubjectKey};
use duoprov_plan::desired::{DesiredGroup, DesiredState};
use duoprov_plan::error::ErrorObject;
use duoprov_plan::build_plan;
use duoprov_registry::{RetryTarget, Store};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::SyncError;
use crate::prepared::{rendered_group_rows, rendered_rows, Prepared, RenderedUpdate, RunKind};
use crate::read::{snapshot_group, snapshot_user};
use crate::registry_read::{filter_registry, read_links, read_registry};
use crate::settings::SyncSettings;

pub use crate::prepared::ScopeSummary;
pub use crate::settings::IncrementalSettings;

/// Whether Duo's username lookups ignore case, read without writing: a known Duo user (one read
/// in this run, else `linked`, the first linked user, read by id) is looked up by its username in
/// another case. `false` when it is not found, or when no user with a cased username is known.
/// Also the number of Duo calls made.
async fn lookups_ignore_case(duo: &DuoClient, read: &[User], linked: Option<String>) -> Result<(bool, usize), duoprov_duo::DuoError> {
    let cased = |u: &User| u.username.to_uppercase() != u.username;
    let mut calls = 0;
    let known = match read.iter().find(|u| cased(u)) {
        Some(u) => Some(u.clone()),
        None => match linked {
            Some(id) => {
                calls += 1;
                duo.get_users_by_ids(&[id]).await?.into_iter().find(|u| cased(u))
            }
            None => None,
        },
    };
    let Some(known) = known else { return Ok((false, calls)) };
    let found = duo.get_users_by_usernames(&[known.username.to_uppercase()]).await?;
    Ok((found.iter().any(|u| u.user_id == known.user_id), calls + 1))
}

/// What the change log and the retry list ask for.
pub enum Incremental {
    /// No new changes and no retry due.
    Idle { checkpoint: i64 },
    /// A full sync is needed instead (the reason is for the log and the run report).
    Escalate { reason: String },
    /// Read and planned; run it with [`crate::run`].
    Planned(Box<Prepared>),
}

/// Groups and subjects named by the entries and due retries.
#[derive(Debug, Default, Clone)]
pub(crate) struct Named {
    pub groups: BTreeSet<String>,
    pub whole: BTreeSet<String>,
    pub subjects: BTreeSet<SubjectKey>,
    /// Also every group a named subject belongs to: the groups it is a desired or held member
    /// of, and the linked groups its Duo user is in (one sync of a subject, [`crate::object`]).
    pub subjects_groups: bool,
    /// Why the registry side must be read whole: a change that can move subjects it does not
    /// name in or out of the selection or the eligibility group (a marker, nesting, a group or
    /// folder added, changed or removed, an import), or a group reconciled whole.
    pub unbounded: Option<String>,
    /// Subjects not named by a change that share a username (recorded or rendered now) with a
    /// named subject: a change of one can start or end the other's clash, so they join the
    /// scope, with every selected group they are in.
    pub partners: BTreeSet<SubjectKey>,
}

/// What [`plan_scope`] is asked to plan, besides the named objects.
#[derive(Clone)]
pub(crate) struct ScopeRequest {
    pub named: Named,
    pub kind: RunKind,
    /// Every retry row of the provisioner, and how many are due.
    pub retries: Vec<duoprov_registry::RetryRecord>,
    pub due: usize,
    pub now_ms: i64,
    /// The change-log span covered (incremental runs).
    pub from_seq: i64,
    pub to_seq: i64,
    pub changes: usize,
    /// More groups and users than this: give way (escalate).
    pub max_objects: usize,
    /// Settle due retry rows whose objects no longer concern the provisioner (incremental runs;
    /// one object's sync leaves other rows alone).
    pub drop_stale_retries: bool,
}

/// Why an incremental sync cannot cover `entries`, when one has a kind this version does not know
/// (a newer duoprov wrote it): what it changed is unknown, so a full sync, which reads everything
/// and moves the checkpoint past it, covers it instead of the provisioner sticking on it.
fn unknown_kind_escalation(entries: &[duoprov_model::ChangeEntry]) -> Option<String> {
    let unknown = entries.iter().find(|e| e.kind == ChangeKind::Unknown)?;
    Some(format!(
        "change-log entry {} has a kind this version of duoprov does not know (written by a newer version?): a full sync covers it",
        unknown.seq
    ))
}

fn name_scope(provisioner: &str, entries: &[duoprov_model::ChangeEntry], due: &[RetryTarget], whole_group_above: usize) -> Named {
    let mut named = Named::default();
    let mut subject_changes: HashMap<&str, usize> = HashMap::new();
    for e in entries {
        // Policy-group markers can change any provisioner's selection (`only_policy_groups`).
        let for_us = e.provisioners.is_empty() || e.provisioners.iter().any(|p| p == provisioner || p == duoprov_model::POLICY_MARKER);
        let names_its_subjects = match e.kind {
            ChangeKind::MarkerAssigned | ChangeKind::MarkerUnassigned => !for_us,
            ChangeKind::MemberAdded | ChangeKind::MemberRemoved => !e.subjects.is_empty(),
            ChangeKind::SubjectAdded | ChangeKind::SubjectUpdated | ChangeKind::SubjectRemoved => true,
            _ => false,
        };
        if !names_its_subjects && named.unbounded.is_none() {
            named.unbounded = Some(format!("change-log entry {} ({}) can change which subjects are selected without naming them", e.seq, e.kind.as_str()));
        }
        match e.kind {
            ChangeKind::MarkerAssigned | ChangeKind::MarkerUnassigned if !for_us => {}
            ChangeKind::MarkerAssigned | ChangeKind::MarkerUnassigned | ChangeKind::GroupRemoved | ChangeKind::FolderRemoved | ChangeKind::Import => {
                named.whole.extend(e.groups.iter().cloned());
                named.subjects.extend(e.subjects.iter().cloned());
            }
            // A nested group added or removed: every effective member of the groups above may change.
            ChangeKind::MemberAdded | ChangeKind::MemberRemoved if e.subjects.is_empty() => named.whole.extend(e.groups.iter().cloned()),
            ChangeKind::MemberAdded | ChangeKind::MemberRemoved => {
                for g in &e.groups {
                    *subject_changes.entry(g.as_str()).or_default() += e.subjects.len();
                }
                named.groups.extend(e.groups.iter().cloned());
                named.subjects.extend(e.subjects.iter().cloned());
            }
            ChangeKind::SubjectAdded | ChangeKind::SubjectUpdated | ChangeKind::SubjectRemoved => {
                named.groups.extend(e.groups.iter().cloned());
                named.subjects.extend(e.subjects.iter().cloned());
            }
            ChangeKind::GroupAdded | ChangeKind::GroupUpdated | ChangeKind::FolderAdded | ChangeKind::FolderUpdated => {
                named.groups.extend(e.groups.iter().cloned());
            }
            // Escalated to a full sync before scoping (`unknown_kind_escalation`); should one get
            // here, its named objects are reconciled whole.
            ChangeKind::Unknown => {
                named.whole.extend(e.groups.iter().cloned());
                named.subjects.extend(e.subjects.iter().cloned());
            }
        }
    }
    for (g, n) in subject_changes {
        if n > whole_group_above {
            named.whole.insert(g.to_owned());
        }
    }
    if !named.whole.is_empty() && named.unbounded.is_none() {
        named.unbounded = Some("a group is reconciled whole (more membership changes than whole_group_above)".into());
    }
    for t in due {
        match t {
            RetryTarget::Group { group_uuid } => {
                named.groups.insert(group_uuid.clone());
            }
            RetryTarget::WholeGroup { group_uuid } => {
                named.whole.insert(group_uuid.clone());
                named.unbounded.get_or_insert_with(|| "a group's retry reconciles it whole".into());
            }
            RetryTarget::User { subject } => {
                named.subjects.insert(subject.clone());
            }
            RetryTarget::Membership { group_uuid, subject } => {
                named.groups.insert(group_uuid.clone());
                named.subjects.insert(subject.clone());
            }
        }
    }
    let whole = named.whole.clone();
    named.groups.extend(whole);
    named
}

/// Adds to the scope the subjects recorded under a username a named subject had (recorded) or
/// renders now ([`Named::partners`]): one lookup of the recorded usernames each.
async fn clash_partners(store: &dyn Store, settings: &SyncSettings, named: &mut Named) -> Result<(), SyncError> {
    if named.subjects.is_empty() {
        return Ok(());
    }
    let name = settings.provisioner.as_str();
    let subjects: Vec<SubjectKey> = named.subjects.iter().cloned().collect();
    let mut keys: Vec<String> = store.rendered_of(name, &subjects).await?.into_iter().map(|r| r.username_key).collect();
    for s in &subjects {
        if let Some(subject) = store.subject(s).await?
            && let Ok(fields) = settings.mapping.user_fields(&subject)
        {
            keys.push(duoprov_model::username_key(&fields.username));
        }
    }
    keys.sort();
    keys.dedup();
    for h in store.rendered_holders(name, &keys).await? {
        if !named.subjects.contains(&h.subject) {
            named.partners.insert(h.subject);
        }
    }
    let partners = named.partners.clone();
    named.subjects.extend(partners);
    Ok(())
}

/// The desired state restricted to `groups` (members restricted to `users`) and `users`.
fn restrict_desired(desired: &DesiredState, groups: &HashSet<&str>, users: &HashSet<&SubjectKey>) -> DesiredState {
    let mut new_index: Vec<Option<u32>> = vec![None; desired.users.len()];
    let mut out = DesiredState {
        held_groups: desired.held_groups.clone(),
        held_users: desired.held_users.clone(),
        unmanaged: desired.unmanaged.clone(),
        deleted_groups: desired.deleted_groups.clone(),
        selected_by: desired.selected_by.clone(),
        rule_excluded: desired.rule_excluded.clone(),
        ..Default::default()
    };
    for (i, u) in desired.users.iter().enumerate() {
        if users.contains(&u.key) {
            new_index[i] = Some(out.users.len() as u32);
            out.users.push(u.clone());
        }
    }
    for g in desired.groups.iter().filter(|g| groups.contains(g.uuid.as_str())) {
        let members: Vec<u32> = g.members.iter().filter_map(|m| new_index[*m as usize]).collect();
        out.groups.push(DesiredGroup {
            uuid: g.uuid.clone(),
            registry_name: g.registry_name.clone(),
            fields: g.fields.clone(),
            members,
            held_members: g.held_members.iter().filter(|k| users.contains(k)).cloned().collect(),
        });
    }
    out.errors = desired
        .errors
        .iter()
        .filter(|e| match &e.object {
            ErrorObject::Group { uuid, .. } => groups.contains(uuid.as_str()),
            ErrorObject::User { source, id } => users.contains(&SubjectKey::new(source, id)),
            ErrorObject::Membership { group_uuid, source, id, .. } => groups.contains(group_uuid.as_str()) && users.contains(&SubjectKey::new(source, id)),
        })
        .cloned()
        .collect();
    out
}

/// Reads the change log and the retry list and, when there is work, reads the scoped objects
/// from Duo and plans. `now_ms` decides which retries are due.
pub async fn prepare_incremental(store: &dyn Store, duo: &DuoClient, settings: &SyncSettings, now_ms: i64) -> Result<Incremental, SyncError> {
    let start = Instant::now();
    let pacing_before = duo.pacing_stats();
    let name = settings.provisioner.as_str();
    let inc = &settings.incremental;
    let Some(checkpoint) = store.checkpoint(name).await? else {
        return Ok(Incremental::Escalate { reason: "no checkpoint yet: a provisioner's first sync is a full sync".into() });
    };
    let limit = u32::try_from(inc.full_sync_above_changes.saturating_add(1)).unwrap_or(u32::MAX);
    let entries = store.changes_after(checkpoint.last_seq, limit).await?;
    if entries.len() > inc.full_sync_above_changes {
        return Ok(Incremental::Escalate {
            reason: format!("more than {} change-log entries are waiting (full_sync_above_changes)", inc.full_sync_above_changes),
        });
    }
    if let Some(reason) = unknown_kind_escalation(&entries) {
        return Ok(Incremental::Escalate { reason });
    }
    let to_seq = entries.last().map(|e| e.seq).unwrap_or(checkpoint.last_seq);
    let retries = store.retries(name, None).await?;
    let due: Vec<RetryTarget> = retries.iter().filter(|r| r.next_at_ms.0 <= now_ms).map(|r| r.target.clone()).collect();
    if entries.is_empty() && due.is_empty() {
        return Ok(Incremental::Idle { checkpoint: checkpoint.last_seq });
    }
    let mut named = name_scope(name, &entries, &due, inc.whole_group_above);
    clash_partners(store, settings, &mut named).await?;

    let request = ScopeRequest {
        named,
        kind: RunKind::Incremental,
        retries,
        due: due.len(),
        now_ms,
        from_seq: checkpoint.last_seq,
        to_seq,
        changes: entries.len(),
        max_objects: inc.full_sync_above_objects,
        drop_stale_retries: true,
    };
    plan_scope(store, duo, settings, request, start, pacing_before).await
}

/// The registry side read for `subjects` and the groups of uuid `groups` only.
struct ScopedRead {
    desired: DesiredState,
    rendered: RenderedUpdate,
    /// How many groups the provisioner selects (held ones included), as recorded.
    selected_groups: usize,
}

/// The registry side read for `subjects` and the groups of uuid `groups` only: the selected
/// groups among those the subjects are in and `groups`, with their effective members among the
/// subjects, the subjects' eligibility, and — through the recorded usernames and group names (one
/// index lookup each) — how many subjects outside them render to each of their usernames and how
/// many selected groups outside them render to each of their group names, so the desired state
/// holds clashes exactly as the whole selection would while only the groups read are rendered.
async fn read_scoped(
    store: &dyn Store,
    settings: &SyncSettings,
    subjects: &BTreeSet<SubjectKey>,
    groups: &BTreeSet<String>,
    fingerprint: &str,
) -> Result<ScopedRead, SyncError> {
    let name = settings.provisioner.as_str();
    let list: Vec<SubjectKey> = subjects.iter().cloned().collect();
    let group_list: Vec<String> = groups.iter().cloned().collect();
    let mut scoped = store.scoped_group_selection(name, &list, &group_list, settings.eligible_group.as_ref()).await?;
    let eligible = scoped.eligible.map(|v| v.into_iter().collect::<HashSet<_>>());
    // The provisioner's selection rules narrow the scoped groups exactly as they narrow a whole read.
    let (selected_by, rule_excluded) = crate::registry_read::apply_selection_rules(store, settings, &mut scoped.selection).await?;
    let registry = crate::registry_read::RegistryRead { selected_by, rule_excluded, ..filter_registry(settings, scoped.selection, eligible) };
    let mut keys: Vec<String> =
        registry.selection.subjects.iter().filter_map(|s| settings.mapping.user_fields(s).ok()).map(|f| duoprov_model::username_key(&f.username)).collect();
    keys.sort();
    keys.dedup();
    let mut others: HashMap<String, usize> = HashMap::new();
    for h in store.rendered_holders(name, &keys).await? {
        if !subjects.contains(&h.subject) {
            *others.entry(h.username_key).or_default() += 1;
        }
    }
    // The group names the groups read render to, and the recorded groups outside them holding one.
    let read_uuids: HashSet<&str> = registry.selection.groups.iter().map(|g| g.group.uuid.as_str()).collect();
    let mut names: Vec<String> = registry.selection.groups.iter().filter_map(|g| settings.mapping.group_fields(&g.group).ok()).map(|f| f.name).collect();
    names.sort();
    names.dedup();
    let mut other_groups: HashMap<String, usize> = HashMap::new();
    if !names.is_empty() {
        for h in store.rendered_group_holders(name, &names).await? {
            if let Some(n) = h.name
                && !read_uuids.contains(h.group_uuid.as_str())
            {
                *other_groups.entry(n).or_default() += 1;
            }
        }
    }
    let selected_groups = store.rendered_group_count(name).await?;
    let mut desired = DesiredState::build_part(
        &registry.selection,
        &settings.mapping,
        registry.eligible.as_ref(),
        &|k| others.get(k).copied().unwrap_or(0),
        &|n| other_groups.get(n).copied().unwrap_or(0),
    );
    registry.annotate(&mut desired);
    let rendered = RenderedUpdate::Subjects { fingerprint: fingerprint.to_owned(), subjects: list, rows: rendered_rows(&desired) };
    Ok(ScopedRead { desired, rendered, selected_groups })
}

/// The registry side of a scoped incremental run for a change naming `subjects` and the groups of
/// uuid `groups`, as [`prepare_incremental`] reads it (clash partners through the recorded
/// usernames, then the scoped selection and the desired state of the groups read): the desired
/// state and the number of selected groups (as recorded). For measuring
/// (`benches/scoped_registry.rs`); it reads only.
pub async fn scoped_registry_side(store: &dyn Store, settings: &SyncSettings, subjects: &[SubjectKey], groups: &[String]) -> Result<(DesiredState, usize), SyncError> {
    let mut named = Named { subjects: subjects.iter().cloned().collect(), groups: groups.iter().cloned().collect(), ..Default::default() };
    clash_partners(store, settings, &mut named).await?;
    let fingerprint = crate::settings::rendering_fingerprint(settings);
    let read = read_scoped(store, settings, &named.subjects, &named.groups, &fingerprint).await?;
    Ok((read.desired, read.selected_groups))
}

/// How the registry side of a scoped run is read.
enum RegistryMode {
    /// For the scoped subjects only ([`duoprov_registry::ScopedReads`]); the recorded usernames
    /// are current under `fingerprint`.
    Scoped { fingerprint: String },
    /// The whole selection, for `reason` (`None` for a one-object sync, which always reads it
    /// whole); with `record`, the recorded usernames are replaced from it under that fingerprint.
    Whole { reason: Option<String>, record: Option<String> },
}

/// Whether an incremental run can read the registry for its subjects only: its changes name
/// every subject whose selection they change (`named.unbounded` is unset), and the recorded
/// usernames were made under the current rendering settings.
async fn registry_mode(store: &dyn Store, settings: &SyncSettings, request: &ScopeRequest) -> Result<RegistryMode, SyncError> {
    if request.kind != RunKind::Incremental {
        return Ok(RegistryMode::Whole { reason: None, record: None });
    }
    let fingerprint = crate::settings::rendering_fingerprint(settings);
    let reason = if let Some(reason) = &request.named.unbounded {
        reason.clone()
    } else if !settings.incremental.scoped_registry {
        "scoped registry reads are turned off for this provisioner".into()
    } else {
        match store.rendered_fingerprint(&settings.provisioner).await? {
            Some(recorded) if recorded == fingerprint => match store.rendered_groups_fingerprint(&settings.provisioner).await? {
                Some(recorded) if recorded == fingerprint => return Ok(RegistryMode::Scoped { fingerprint }),
                Some(_) => "the templates or selection rules changed since the group names were recorded: this read records them anew".into(),
                None => "no rendered group names are recorded for this provisioner yet: this read records them".into(),
            },
            Some(_) => "the templates, eligibility group or subject sources changed since the usernames were recorded: this read records them anew".into(),
            None => "no rendered usernames are recorded for this provisioner yet: this read records them".into(),
        }
    };
    Ok(RegistryMode::Whole { reason: Some(reason), record: Some(fingerprint) })
}

/// Reads the named objects (and what they pull in) from Duo and plans them with the full sync's
/// planner over a scoped view. The registry side is read for the scoped subjects only when
/// [`registry_mode`] allows it, else whole; a scoped read that finds a group to reconcile whole
/// (newly selected, or gone from Duo) is redone with the whole selection. `Escalate` when the
/// scope is larger than `max_objects` or cannot be read faithfully by lookups.
pub(crate) async fn plan_scope(
    store: &dyn Store,
    duo: &DuoClient,
    settings: &SyncSettings,
    request: ScopeRequest,
    start: Instant,
    pacing_before: Vec<duoprov_duo::ClassStats>,
) -> Result<Incremental, SyncError> {
    let mut request = request;
    let mut mode = registry_mode(store, settings, &request).await?;
    loop {
        match plan_scope_in(store, duo, settings, request.clone(), start, pacing_before.clone(), &mode).await? {
            Ok(planned) => return Ok(planned),
            Err(Widen::Whole(reason)) => {
                tracing::debug!(provisioner = settings.provisioner, reason, "reading the registry whole instead of scoped");
                mode = RegistryMode::Whole { reason: Some(reason), record: Some(crate::settings::rendering_fingerprint(settings)) };
            }
            Err(Widen::Subjects(owners)) => {
                tracing::debug!(provisioner = settings.provisioner, owners = ?owners, "a scoped username is held in Duo by the user of a subject outside the scope: it joins");
                request.named.subjects.extend(owners.iter().cloned());
                request.named.partners.extend(owners);
            }
            Err(Widen::Groups(groups)) => {
                tracing::debug!(provisioner = settings.provisioner, groups = ?groups, "a Duo group released by a group in scope is taken over by a group outside it: it joins");
                request.named.groups.extend(groups);
            }
        }
    }
}

/// What a run reading the links for its scope counts of the rest.
struct LinkCounts {
    managed_users: usize,
    managed_groups: usize,
    first_linked_user: Option<String>,
}

/// What a scoped plan needs before it can be made.
enum Widen {
    /// The registry read whole, for this reason.
    Whole(String),
    /// These subjects in scope too: their Duo users hold a username a scoped subject needs, so
    /// a full sync would weigh them together (a user taken over, a clash).
    Subjects(BTreeSet<SubjectKey>),
    /// These groups (uuids) in scope too: each renders to the name of a Duo group a group in
    /// scope leaving the selection releases, which a full sync gives it.
    Groups(BTreeSet<String>),
}

/// [`plan_scope`] with the registry read as `mode` says; `Err(reason)` asks for a whole read
/// (only ever from a scoped one).
async fn plan_scope_in(
    store: &dyn Store,
    duo: &DuoClient,
    settings: &SyncSettings,
    request: ScopeRequest,
    start: Instant,
    pacing_before: Vec<duoprov_duo::ClassStats>,
    mode: &RegistryMode,
) -> Result<Result<Incremental, Widen>, SyncError> {
    let name = settings.provisioner.as_str();
    let ScopeRequest { mut named, kind, retries, due, now_ms, from_seq, to_seq, changes, max_objects, drop_stale_retries } = request;
    let mut calls = 0usize;
    // The registry side: whole (one query), or for the scoped subjects only — every selected
    // group with its effective members among them, their eligibility, and the recorded usernames
    // of everyone else rendering to their usernames — so usernames clashing anywhere are held
    // exactly as a full sync holds them either way; only the plan is scoped.
    let registry_start = Instant::now();
    let scoped_registry = matches!(mode, RegistryMode::Scoped { .. });
    let (mut desired, rendered, selected_groups) = match mode {
        RegistryMode::Scoped { fingerprint } => {
            let read = read_scoped(store, settings, &named.subjects, &named.groups, fingerprint).await?;
            (read.desired, Some(read.rendered), read.selected_groups)
        }
        RegistryMode::Whole { record, .. } => {
            let registry = read_registry(store, settings).await?;
            let mut desired = DesiredState::build(&registry.selection, &settings.mapping, registry.eligible.as_ref());
            registry.annotate(&mut desired);
            let rendered = record.as_ref().map(|fingerprint| RenderedUpdate::Replace {
                fingerprint: fingerprint.clone(),
                rows: rendered_rows(&desired),
                groups: rendered_group_rows(&desired),
            });
            (desired, rendered, registry.selection.groups.len())
        }
    };
    let registry_ms = registry_start.elapsed().as_millis() as u64;
    let groups_rendered = desired.rendered_groups.len();
    // Clash partners bring in every selected group they are in (a scoped read has read those).
    if !named.partners.is_empty() {
        let index: HashSet<u32> = desired.users.iter().enumerate().filter(|(_, u)| named.partners.contains(&u.key)).map(|(i, _)| i as u32).collect();
        for g in &desired.groups {
            if g.members.iter().any(|m| index.contains(m)) || g.held_members.iter().any(|k| named.partners.contains(k)) {
                named.groups.insert(g.uuid.clone());
            }
        }
    }
    // The links: whole, or — with the registry read scoped — the group links of the named
    // groups, the user links of the scoped subjects and of the retried ones, and counts for what
    // needs the rest (the safety rules' managed groups and users, the first linked user for the
    // case check). The links of the Duo users and groups the run meets are read by their Duo ids
    // below.
    let links_start = Instant::now();
    let scoped_links = scoped_registry && settings.incremental.scoped_links && !named.subjects_groups;
    let (links, link_counts) = if scoped_links {
        let mut asked: BTreeSet<SubjectKey> = named.subjects.clone();
        asked.extend(retries.iter().filter_map(|r| r.target.subject().cloned()));
        let asked: Vec<SubjectKey> = asked.into_iter().collect();
        let asked_groups: Vec<String> = named.groups.iter().cloned().collect();
        let read = store.scoped_links(name, &asked, Some(&asked_groups)).await?;
        let mut links = read.links;
        links.foreign = crate::registry_read::read_foreign_links(store, settings).await?;
        (links, Some(LinkCounts { managed_users: read.managed_users, managed_groups: read.managed_groups, first_linked_user: read.first_linked_user }))
    } else {
        (read_links(store, settings).await?, None)
    };
    let links_ms = links_start.elapsed().as_millis() as u64;
    if scoped_registry {
        // Only the named groups were read: those are the ones whose deletion can be planned.
        let named_links = Links { groups: links.groups.iter().filter(|l| named.groups.contains(&l.group_uuid)).cloned().collect(), ..Default::default() };
        crate::registry_read::mark_deleted_groups(store, settings, &mut desired, &named_links).await?;
    } else {
        crate::registry_read::mark_deleted_groups(store, settings, &mut desired, &links).await?;
    }
    if named.subjects_groups {
        calls += subjects_groups(duo, &desired, &links, &mut named).await.map_err(SyncError::DuoRead)?;
    }

    let desired_group: HashMap<&str, &DesiredGroup> = desired.groups.iter().map(|g| (g.uuid.as_str(), g)).collect();
    let group_link: HashMap<&str, &duoprov_model::GroupLink> = links.groups.iter().map(|l| (l.group_uuid.as_str(), l)).collect();
    let user_link: HashMap<&SubjectKey, &duoprov_model::UserLink> = links.users.iter().map(|l| (&l.subject, l)).collect();
    let subject_of_user: HashMap<&str, &SubjectKey> =
        links.users.iter().filter_map(|l| l.duo_user_id.as_deref().map(|id| (id, &l.subject))).collect();

    // Groups that concern this provisioner: selected, held, or linked.
    let groups: BTreeSet<&str> = named
        .groups
        .iter()
        .map(String::as_str)
        .filter(|g| desired_group.contains_key(g) || desired.held_groups.contains(*g) || group_link.contains_key(g))
        .collect();
    let linked_id = |g: &str| group_link.get(g).and_then(|l| l.duo_group_id.clone());
    let mut whole: BTreeSet<&str> = groups
        .iter()
        .copied()
        .filter(|g| desired_group.contains_key(g) && (named.whole.contains(*g) || linked_id(g).is_none()))
        .collect();
    let estimate = groups.len() + named.subjects.len() + whole.iter().map(|g| desired_group[g].members.len()).sum::<usize>();
    if estimate > max_objects {
        return Ok(Ok(Incremental::Escalate {
            reason: format!("about {estimate} groups and users are affected, more than {max_objects} (full_sync_above_objects)"),
        }));
    }

    // Duo, step 1: the groups (by id, or all of them when one must be matched by name) and the
    // members of whole groups.
    let ids: Vec<String> = groups.iter().filter_map(|g| linked_id(g)).collect();
    // Matching by name needs every group: a selected group not yet in Duo, or an intended create
    // never confirmed (its Duo group is found by the name it was for).
    let pending = |g: &str| group_link.get(g).is_some_and(|l| l.duo_group_id.is_none() && l.pending_name.is_some());
    let needs_names = groups.iter().any(|g| (desired_group.contains_key(g) && linked_id(g).is_none()) || pending(g));
    let mut duo_groups = if needs_names {
        let all = duo.list_groups().await.map_err(SyncError::DuoRead)?;
        calls += all.len() / 100 + 1;
        all
    } else if ids.is_empty() {
        Vec::new()
    } else {
        calls += ids.len().div_ceil(100);
        duo.get_groups_by_ids(&ids).await.map_err(SyncError::DuoRead)?
    };
    let present: HashSet<String> = duo_groups.iter().map(|g| g.group_id.clone()).collect();
    let missing: Vec<&str> = groups.iter().copied().filter(|g| linked_id(g).is_some_and(|id| !present.contains(&id))).collect();
    if !missing.is_empty() && !needs_names {
        // A linked group gone from Duo: a full list lets the planner match or re-create it.
        duo_groups = duo.list_groups().await.map_err(SyncError::DuoRead)?;
        calls += duo_groups.len() / 100 + 1;
    }
    for g in missing {
        if desired_group.contains_key(g) {
            whole.insert(g);
        }
    }
    // A Duo group released by a group in scope leaving the selection is taken over by a selected
    // group rendering to its name, as a full sync plans it (a registry group deleted and made
    // anew): such a group outside the scope joins, instead of the Duo group being deleted.
    let released: HashSet<&str> = groups
        .iter()
        .copied()
        .filter(|g| !desired_group.contains_key(g) && !desired.held_groups.contains(*g))
        .filter_map(|g| group_link.get(g).and_then(|l| l.duo_group_id.as_deref()))
        .collect();
    if !released.is_empty() {
        let names: HashSet<&str> = duo_groups.iter().filter(|dg| released.contains(dg.group_id.as_str())).map(|dg| dg.name.as_str()).collect();
        if matches!(mode, RegistryMode::Scoped { .. }) && !names.is_empty() {
            // A scoped read rendered only its own groups: the recorded names say whether another
            // selected group may render to one of these names; if so, the run reads them all.
            let asked: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            if let Some(h) = store.rendered_group_holders(name, &asked).await?.into_iter().find(|h| !groups.contains(h.group_uuid.as_str())) {
                return Ok(Err(Widen::Whole(format!(
                    "the Duo group {:?} a group in scope releases may be taken over by another selected group, which needs every group's name",
                    h.name.unwrap_or_default()
                ))));
            }
        }
        let joining: BTreeSet<String> =
            desired.groups.iter().filter(|g| !groups.contains(g.uuid.as_str()) && names.contains(g.fields.name.as_str())).map(|g| g.uuid.clone()).collect();
        if !joining.is_empty() {
            return Ok(Err(Widen::Groups(joining)));
        }
    }
    // A group reconciled whole needs all its effective members: a scoped read has only the
    // scoped subjects, so the run reads the registry whole instead.
    if matches!(mode, RegistryMode::Scoped { .. })
        && let Some(g) = whole.first()
    {
        return Ok(Err(Widen::Whole(format!(
            "group {} is reconciled whole (newly selected, or its Duo group is gone), which needs all its members",
            desired_group[g].registry_name
        ))));
    }
    // With scoped links, every link of the Duo groups read, by their ids (a group listed whole,
    // or an id linked twice, resolves as the links read whole resolve it).
    let met_groups: Vec<duoprov_model::GroupLink> = if link_counts.is_some() && !duo_groups.is_empty() {
        let ids: Vec<String> = duo_groups.iter().map(|g| g.group_id.clone()).collect();
        store.group_links_by_duo_ids(name, &ids).await?
    } else {
        Vec::new()
    };
    let mut member_reads: Vec<String> = whole.iter().filter_map(|g| linked_id(g)).filter(|id| present.contains(id)).collect();
    // A whole group without a live link may be matched by name to a Duo group (adopted, claimed,
    // or taken over from a deleted registry group): that group's members are read too.
    let in_scope: HashSet<&str> = groups.iter().copied().collect();
    let claimed_elsewhere: HashSet<&str> = links
        .groups
        .iter()
        .chain(&met_groups)
        .filter(|l| !in_scope.contains(l.group_uuid.as_str()))
        .filter_map(|l| l.duo_group_id.as_deref())
        .collect();
    for g in whole.iter().filter(|g| linked_id(g).is_none_or(|id| !present.contains(&id))) {
        let name = desired_group[g].fields.name.as_str();
        for dg in duo_groups.iter().filter(|dg| dg.name == name && !claimed_elsewhere.contains(dg.group_id.as_str())) {
            member_reads.push(dg.group_id.clone());
        }
    }
    member_reads.sort();
    member_reads.dedup();
    calls += member_reads.len();
    let member_lists: Vec<(String, Vec<duoprov_duo::GroupMember>)> = stream::iter(member_reads)
        .map(|id| async move { duo.list_group_members(&id).await.map(|m| (id, m)) })
        .buffer_unordered(settings.concurrency.max(1))
        .try_collect()
        .await
        .map_err(SyncError::DuoRead)?;

    // The scoped subjects: those named, every desired member of a whole group, and the subjects
    // linked to a Duo member of one.
    let mut users: BTreeSet<SubjectKey> = named.subjects.clone();
    for g in &whole {
        for m in &desired_group[g].members {
            users.insert(desired.users[*m as usize].key.clone());
        }
    }
    let mut extra_ids: BTreeSet<String> = BTreeSet::new();
    for m in member_lists.iter().flat_map(|(_, m)| m) {
        match subject_of_user.get(m.user_id.as_str()) {
            Some(s) => {
                users.insert((*s).clone());
            }
            None => {
                extra_ids.insert(m.user_id.clone());
            }
        }
    }
    if groups.len() + users.len() > max_objects {
        return Ok(Ok(Incremental::Escalate {
            reason: format!("{} groups and users are affected, more than {max_objects} (full_sync_above_objects)", groups.len() + users.len()),
        }));
    }

    // Duo, step 2: the users, by id where linked, then by username for the rest.
    let desired_user: HashMap<&SubjectKey, &duoprov_plan::desired::DesiredUser> = desired.users.iter().map(|u| (&u.key, u)).collect();
    let mut by_id: Vec<String> = users.iter().filter_map(|s| user_link.get(s).and_then(|l| l.duo_user_id.clone())).collect();
    // A subject's user another provisioner of this Duo account links is its user here too (shared).
    by_id.extend(users.iter().filter_map(|s| links.foreign.user_of_subject.get(&s.to_string()).cloned()));
    by_id.extend(extra_ids);
    by_id.sort();
    by_id.dedup();
    let mut duo_users: Vec<User> = Vec::new();
    if !by_id.is_empty() {
        calls += by_id.len().div_ceil(100);
        duo_users = duo.get_users_by_ids(&by_id).await.map_err(SyncError::DuoRead)?;
    }
    let found: HashSet<&str> = duo_users.iter().map(|u| u.user_id.as_str()).collect();
    let mut by_name: Vec<String> = Vec::new();
    // The usernames looked up for subjects without a linked user in Duo (not claims of an
    // intended create): each must be found under some case, or the run gives way (see below).
    let mut looked_up: Vec<&str> = Vec::new();
    for s in &users {
        let linked_present = user_link.get(s).and_then(|l| l.duo_user_id.as_deref()).is_some_and(|id| found.contains(id));
        if linked_present {
            continue;
        }
        if let Some(name) = user_link.get(s).filter(|l| l.duo_user_id.is_none()).and_then(|l| l.pending_name.clone()) {
            by_name.push(name);
        }
        if let Some(u) = desired_user.get(s) {
            // The name as rendered and its normalised form ([`duoprov_model::username_key`], what
            // the planner matches on): Duo compares case-insensitively and finds either; a Duo
            // that kept case finds the user under the form it was created with.
            by_name.push(u.fields.username.clone());
            looked_up.push(&u.fields.username);
            let key = duoprov_model::username_key(&u.fields.username);
            if key != u.fields.username {
                by_name.push(key);
            }
        }
    }
    by_name.sort();
    by_name.dedup();
    if !by_name.is_empty() {
        calls += by_name.len().div_ceil(100);
        let more = duo.get_users_by_usernames(&by_name).await.map_err(SyncError::DuoRead)?;
        let known: HashSet<String> = duo_users.iter().map(|u| u.user_id.clone()).collect();
        duo_users.extend(more.into_iter().filter(|u| !known.contains(&u.user_id)));
    }
    // A username a scoped subject needs, held in Duo by the user linked to a subject outside the
    // scope (one that left the selection unnamed, or renders another name now): a full sync
    // weighs both subjects together (the user taken over, or held), so that subject joins. With
    // scoped links, the links of the Duo users read are looked up by their ids (every link of
    // each, so an id linked twice resolves as the whole read resolves it).
    let met: Vec<duoprov_model::UserLink> = if link_counts.is_some() && !duo_users.is_empty() {
        let ids: Vec<String> = duo_users.iter().map(|u| u.user_id.clone()).collect();
        store.user_links_by_duo_ids(name, &ids).await?
    } else {
        Vec::new()
    };
    let met_subject: HashMap<&str, &SubjectKey> = met.iter().filter_map(|l| l.duo_user_id.as_deref().map(|id| (id, &l.subject))).collect();
    let owner_of = |id: &str| if link_counts.is_some() { met_subject.get(id).copied() } else { subject_of_user.get(id).copied() };
    let owners: BTreeSet<SubjectKey> =
        duo_users.iter().filter_map(|u| owner_of(u.user_id.as_str())).filter(|s| !users.contains(*s)).cloned().collect();
    if !owners.is_empty() {
        return Ok(Err(Widen::Subjects(owners)));
    }
    // A Duo that compares usernames exactly finds a lookup's spellings only: a hand-made `JDoe`
    // is missed for `jdoe`, where a full sync, reading every user, holds it. Until a probe
    // records how this Duo compares, a username found under no case is settled by a full sync.
    let usernames = crate::read::username_match(duo);
    if !usernames.probed() {
        let found: HashSet<String> = duo_users
            .iter()
            .flat_map(|u| std::iter::once(&u.username).chain(u.aliases.values()))
            .map(|n| duoprov_model::username_key(n))
            .collect();
        if let Some(missing) = looked_up.iter().find(|n| !found.contains(&duoprov_model::username_key(n))) {
            // A read settles it for this run: a Duo that finds a known user under another case
            // compares case-insensitively, and its lookups missed no spelling.
            let linked = match &link_counts {
                Some(c) => c.first_linked_user.clone(),
                None => links.users.iter().find_map(|l| l.duo_user_id.clone()),
            };
            let (ignore_case, made) = lookups_ignore_case(duo, &duo_users, linked).await.map_err(SyncError::DuoRead)?;
            calls += made;
            if !ignore_case {
                return Ok(Ok(Incremental::Escalate {
                    reason: format!(
                        "Duo has no user {missing:?} under that spelling or its lowercase, and this Duo's lookups may compare usernames exactly (a lookup of a known user in another case did not find it), so it may hold that user under another case only a full read shows; `duoprov doctor {} --probe` records how this Duo compares, and incremental runs then decide themselves",
                        settings.provisioner
                    ),
                }));
            }
        }
    }

    // The scoped view. Duo objects linked to registry objects outside the scope are left out, so
    // the planner cannot take them for unmatched ones.
    let group_set: HashSet<&str> = groups.iter().copied().collect();
    let user_set: HashSet<&SubjectKey> = users.iter().collect();
    let foreign_groups: HashSet<&str> = links
        .groups
        .iter()
        .chain(&met_groups)
        .filter(|l| !group_set.contains(l.group_uuid.as_str()))
        .filter_map(|l| l.duo_group_id.as_deref())
        .collect();
    let foreign_users: HashSet<&str> =
        links.users.iter().chain(&met).filter(|l| !user_set.contains(&l.subject)).filter_map(|l| l.duo_user_id.as_deref()).collect();
    let mut snapshot = DuoSnapshot {
        groups: duo_groups.iter().filter(|g| !foreign_groups.contains(g.group_id.as_str())).map(snapshot_group).collect(),
        users: duo_users.iter().filter(|u| !foreign_users.contains(u.user_id.as_str())).map(snapshot_user).collect(),
        usernames,
    };
    snapshot.users.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    snapshot.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let scoped_links = Links {
        groups: links.groups.iter().filter(|l| group_set.contains(l.group_uuid.as_str())).cloned().collect(),
        users: links.users.iter().filter(|l| user_set.contains(&l.subject)).cloned().collect(),
        foreign: links.foreign.clone(),
        disabled_by_us: links.disabled_by_us.iter().filter(|k| user_set.contains(*k)).cloned().collect(),
    };
    let mut read_ms = start.elapsed().as_millis() as u64;
    let start = Instant::now();
    let scoped = restrict_desired(&desired, &group_set, &user_set);
    let mut plan = build_plan(name, &scoped, &snapshot, &scoped_links, &settings.policy);
    let mut plan_ms = start.elapsed().as_millis() as u64;
    // The safety rules weigh deletions against everything duoprov manages, not the scope.
    plan.managed_groups = match &link_counts {
        Some(c) => c.managed_groups,
        None => links.groups.iter().filter(|l| l.in_target && l.duo_group_id.is_some()).count(),
    };
    plan.managed_users = match &link_counts {
        Some(c) => c.managed_users,
        None => links.users.iter().filter(|l| l.in_target && l.duo_user_id.is_some()).count(),
    };
    // …and a group's removals against its real size in Duo, not the scoped members the planner
    // saw: a group read whole has the count of that read, any other is counted by Duo — unless no
    // real size could make the percentage rule refuse (the scoped count is a lower bound).
    let start = Instant::now();
    let read_sizes: HashMap<&str, usize> = member_lists.iter().map(|(id, m)| (id.as_str(), m.len())).collect();
    let mut removals_in: HashMap<&str, u64> = HashMap::new();
    for o in &plan.ops {
        if let duoprov_plan::Op::RemoveMember { group_id, .. } = &o.op {
            *removals_in.entry(group_id.as_str()).or_default() += 1;
        }
    }
    let t = settings.policy.thresholds;
    let could_refuse = |id: &str, scoped: usize| {
        let smallest = scoped.max(t.percent_rule_min_members) as u64;
        removals_in.get(id).copied().unwrap_or(0) * 100 > smallest * u64::from(t.max_group_removal_percent)
    };
    let to_count: Vec<String> = plan
        .group_sizes
        .iter()
        .filter(|(id, scoped)| !read_sizes.contains_key(id.as_str()) && could_refuse(id, *scoped))
        .map(|(id, _)| id.clone())
        .collect();
    calls += to_count.len();
    let counted: HashMap<String, u64> = stream::iter(to_count)
        .map(|id| async move { duo.count_group_members(&id).await.map(|n| (id, n)) })
        .buffer_unordered(settings.concurrency.max(1))
        .try_collect()
        .await
        .map_err(SyncError::DuoRead)?;
    for (id, size) in &mut plan.group_sizes {
        if let Some(n) = read_sizes.get(id.as_str()) {
            *size = *n;
        } else if let Some(n) = counted.get(id.as_str()) {
            *size = usize::try_from(*n).unwrap_or(usize::MAX);
        }
    }
    read_ms += start.elapsed().as_millis() as u64;
    // Retry rows this run settles: those in scope, and due ones whose objects no longer concern
    // this provisioner (group neither selected, held nor linked; subject neither desired, held
    // nor linked) — those can never come into scope, and kept they would start a run every poll.
    let start = Instant::now();
    let concerns_group = |g: &str| desired_group.contains_key(g) || desired.held_groups.contains(g) || group_link.contains_key(g);
    let concerns_subject = |s: &SubjectKey| desired_user.contains_key(s) || desired.held_users.contains(s) || user_link.contains_key(s);
    let in_scope = |t: &RetryTarget| {
        t.group_uuid().is_none_or(|g| group_set.contains(g)) && t.subject().is_none_or(|s| user_set.contains(s))
    };
    let concerns = |t: &RetryTarget| t.group_uuid().is_none_or(concerns_group) && t.subject().is_none_or(concerns_subject);
    let mut attempted: Vec<RetryTarget> = Vec::new();
    for r in &retries {
        if in_scope(&r.target) {
            attempted.push(r.target.clone());
        } else if drop_stale_retries && r.next_at_ms.0 <= now_ms && !concerns(&r.target) {
            tracing::debug!(provisioner = name, target = ?r.target, "dropping a due retry: its objects no longer concern this provisioner");
            attempted.push(r.target.clone());
        }
    }
    let (registry_scoped, registry_whole_reason) = match mode {
        RegistryMode::Scoped { .. } => (true, None),
        RegistryMode::Whole { reason, .. } => (false, reason.clone()),
    };
    let scope = ScopeSummary {
        from_seq,
        to_seq,
        changes,
        groups: groups.len(),
        whole_groups: whole.len(),
        users: users.len(),
        retries_due: due,
        registry_scoped,
        registry_whole_reason,
        registry_ms,
        groups_rendered,
        links_scoped: link_counts.is_some(),
        links_ms,
        group_uuids: groups.iter().map(|g| (*g).to_owned()).collect(),
        subjects: users.iter().cloned().collect(),
        attempted,
    };
    plan_ms += start.elapsed().as_millis() as u64;
    Ok(Ok(Incremental::Planned(Box::new(Prepared {
        kind,
        change_seq: to_seq,
        scope: Some(scope),
        selected_groups,
        plan,
        desired: scoped,
        registry_fingerprint: String::new(),
        duo_fingerprint: String::new(),
        duo_users: Vec::new(),
        read_calls: calls,
        read_ms,
        planned_at_clock: duo.pacing_clock_secs(),
        plan_ms,
        pacing_before,
        rendered,
    }))))
}

/// Adds to `named.groups` every group a named subject belongs to: the selected groups it is a
/// desired or held member of, and the linked groups its Duo user is in (read by its linked id,
/// else by its rendered username). Returns the Duo calls made.
async fn subjects_groups(duo: &DuoClient, desired: &DesiredState, links: &Links, named: &mut Named) -> Result<usize, duoprov_duo::DuoError> {
    let wanted: HashSet<&SubjectKey> = named.subjects.iter().collect();
    let index: HashSet<u32> = desired.users.iter().enumerate().filter(|(_, u)| wanted.contains(&u.key)).map(|(i, _)| i as u32).collect();
    for g in &desired.groups {
        if g.members.iter().any(|m| index.contains(m)) || g.held_members.iter().any(|k| wanted.contains(k)) {
            named.groups.insert(g.uuid.clone());
        }
    }
    let mut calls = 0;
    let ids: Vec<String> = links.users.iter().filter(|l| wanted.contains(&l.subject)).filter_map(|l| l.duo_user_id.clone()).collect();
    let names: Vec<String> = desired.users.iter().filter(|u| wanted.contains(&u.key)).map(|u| u.fields.username.clone()).collect();
    let mut found = Vec::new();
    if !ids.is_empty() {
        calls += 1;
        found.extend(duo.get_users_by_ids(&ids).await?);
    }
    if !names.is_empty() {
        calls += 1;
        found.extend(duo.get_users_by_usernames(&names).await?);
    }
    let by_duo_id: HashMap<&str, &str> = links.groups.iter().filter_map(|l| l.duo_group_id.as_deref().map(|id| (id, l.group_uuid.as_str()))).collect();
    for u in &found {
        for g in &u.groups {
            if let Some(uuid) = by_duo_id.get(g.group_id.as_str()) {
                named.groups.insert((*uuid).to_owned());
            }
        }
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use duoprov_model::ChangeEntry;

    fn entry(seq: i64, kind: ChangeKind) -> ChangeEntry {
        ChangeEntry {
            seq,
            at_ms: 0,
            kind,
            groups: vec!["uuid-1".into()],
            subjects: vec![],
            provisioners: vec![],
            detail: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_change_of_a_kind_written_by_a_newer_version_escalates_to_a_full_sync_naming_its_entry() {
        let known = [entry(1, ChangeKind::GroupAdded), entry(2, ChangeKind::MemberAdded)];
        assert_eq!(unknown_kind_escalation(&known), None, "known kinds stay incremental");
        let with_unknown = [entry(1, ChangeKind::GroupAdded), entry(7, ChangeKind::Unknown), entry(8, ChangeKind::Import)];
        let reason = unknown_kind_escalation(&with_unknown).expect("an unknown kind escalates");
        assert!(reason.contains("change-log entry 7") && reason.contains("full sync"), "{reason}");
    }
}
