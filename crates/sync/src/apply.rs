//! Applying a plan. After the links found by matching are recorded, two streams run side by
//! side, each with its own share of the calls in flight (see [`crate::streams::split`]):
//!
//! - the **group stream** (Duo's write class): group creates, in batches, then group updates;
//! - the **bulk stream** (Duo's bulk class): user creates (`bulk_create`, in batches), restores
//!   from Duo's Trash, re-enables, user updates, then membership removals and additions.
//!
//! Deletes (groups, then users) run once both streams are over. With a single call in flight the
//! streams run one after the other (groups first), which is the order the apply always had.
//!
//! Ordering guarantees:
//! - A create is recorded as intended before it is sent (every group and user intent is recorded
//!   before the first create of its kind), so a run killed mid-call leaves a link the next run
//!   uses to recognise the object as its own; the intent is kept after a failure only when the
//!   create's outcome is unknown (a refused create made nothing, and a later hand-made object of
//!   that name must not pass for duoprov's).
//! - Group creates are recorded (and audited) batch by batch as they complete; a membership
//!   addition to a group this run creates is sent only once that group's create is recorded (the
//!   group stream publishes each recorded batch to the membership windows). Additions to existing
//!   groups go first; an addition whose group create failed is never sent (reported unresolved
//!   and retried by the next run, as are additions whose user could not be created).
//! - Within the bulk stream the order is unchanged: every user create, restore, re-enable and
//!   user update is answered and recorded before the first membership is sent (a restored user is
//!   out of Trash before it is added anywhere); every membership removal completes before the
//!   first addition (room under the 100-groups-per-user limit). The group stream's updates
//!   (name, description of existing groups) may overlap memberships: a membership names the
//!   group by id and does not depend on them; they still follow the group creates.
//! - Deletes come after every membership change of both streams.
//! - One failing object never stops the others, and every failed operation is scheduled for a
//!   retry. The link of a user leaving management is forgotten only once its membership removals
//!   succeeded, so a failed removal is planned again by the next run.
//! - Every mutation sent to Duo, answered or failed, is appended to the audit log with Duo's
//!   answer, after its results are recorded: one batch per batch of creates, per phase, and per
//!   window of memberships. A membership window (a batch of user creates) is recorded and audited
//!   while the next one is sent; the phase ends (and a run stopped between windows or batches
//!   stops) only once every window or batch sent is recorded and audited.
//!
//! Fencing: the runner lock is asked before each batch or window of each stream (and before
//! each phase). A stream that finds it lost stops with `LockLost` and tells the other, which
//! stops at its next batch; each stream has then sent at most the one batch it had under way,
//! and records and audits it before the run ends. A registry failure in one stream stops the
//! other the same way.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use duoprov_duo::{BulkOp, DuoClient, DuoError, ErrorClass, ErrorKind, GroupFields, NewUser, UserFields, MAX_BULK_OPS};
use duoprov_model::{EpochMillis, SubjectKey};
use duoprov_plan::{GroupField, GroupRef, Op, Plan, PlannedOp, UserDeleteMode, UserField, UserRef};
use duoprov_registry::{AuditRecord, AuditTrigger, DuoAnswer, GroupState, MembershipState, RetryTarget, StateError, Store, UserState};
use serde_json::{json, Value};
use futures::stream::{self, StreamExt};

use crate::error::SyncError;
use crate::fence::FenceHandle;
use crate::progress::{NoProgress, Progress};
use crate::report::{Failure, RunReport};
use crate::streams::{FeedReader, GroupFeed, Halt, Share};

/// Users per `bulk_create` call.
const USERS_PER_BULK_CREATE: usize = 100;

/// `bulk_create` calls per batch of user creates: the runner lock is asked before each batch,
/// and each batch is recorded and audited while the next is sent. A multiple of the bulk
/// stream's usual shares (2, 3, 4, 6), so a batch ends without a half-empty last round.
const USER_CREATE_BATCH_CALLS: usize = 12;

/// Group creates per batch: the runner lock is asked before each batch, and each batch is
/// recorded and audited (then offered to the membership windows) before the next is sent.
const GROUP_CREATE_BATCH: usize = 50;

/// Membership operations built, sent, recorded and audited together (a hundred bulk calls of
/// Duo's 50): enough to keep every concurrent call busy, small enough that a million memberships
/// never sit in memory as requests, audit entries and states at once.
const MEMBERSHIP_WINDOW: usize = 5_000;

/// A sent membership window's states and audit entries, still to be written.
struct WindowRecord {
    states: Vec<MembershipState>,
    audit: Vec<AuditRecord>,
}

/// Records a sent membership window's states, then appends its audit entries (nothing for
/// `None`). Borrows only the store, so it runs while the next window is sent.
async fn record_window(store: &dyn Store, provisioner: &str, window: Option<WindowRecord>) -> Result<(), SyncError> {
    let Some(w) = window else { return Ok(()) };
    store.record(provisioner, &[], &[], &w.states).await?;
    store.append_audit(&w.audit).await?;
    Ok(())
}

/// A sent batch of user creates' states and audit entries, still to be written.
struct UsersRecord {
    states: Vec<UserState>,
    audit: Vec<AuditRecord>,
}

/// Records a sent batch of user creates (states, then audit entries; nothing for `None`).
/// Borrows only the store, so it runs while the next batch is sent.
async fn record_users(store: &dyn Store, provisioner: &str, batch: Option<UsersRecord>) -> Result<(), SyncError> {
    let Some(b) = batch else { return Ok(()) };
    store.record(provisioner, &[], &b.states, &[]).await?;
    store.append_audit(&b.audit).await?;
    Ok(())
}

/// Whether a failure's error text is Duo's 403 (a permission the application lacks), as
/// [`duoprov_duo::ErrorKind::Forbidden`] displays it.
pub(crate) fn is_forbidden(error: &str) -> bool {
    error.contains("(HTTP 403")
}

fn state_error(e: &DuoError) -> StateError {
    StateError { code: "ERR".into(), message: e.to_string() }
}

/// Duo's answer to a call that failed: its code when Duo sent one, and the error as people read it.
fn duo_answer(e: &DuoError) -> DuoAnswer {
    let code = match &e.kind {
        ErrorKind::Auth { code, .. } | ErrorKind::Forbidden { code, .. } | ErrorKind::NotFound { code, .. } | ErrorKind::InvalidParameter { code, .. } | ErrorKind::Server { code, .. } => *code,
        _ => None,
    };
    DuoAnswer::fail(code.map(i64::from), e.to_string())
}

/// Duo's answer to one operation of a bulk phase (its error as text).
fn op_answer(result: &Result<(), String>) -> DuoAnswer {
    match result {
        Ok(()) => DuoAnswer::ok(),
        Err(message) => DuoAnswer::fail(None, message.clone()),
    }
}

/// A user's fields as an audit entry shows them (only what duoprov sends).
fn user_fields_json(username: Option<&str>, f: &UserFields) -> Value {
    let mut v = serde_json::Map::new();
    for (k, x) in [("username", username.or(f.username.as_deref())), ("realname", f.realname.as_deref()), ("email", f.email.as_deref()), ("firstname", f.firstname.as_deref()), ("lastname", f.lastname.as_deref()), ("status", f.status.as_deref())] {
        if let Some(x) = x {
            v.insert(k.into(), json!(x));
        }
    }
    if let Some(aliases) = &f.aliases {
        v.insert("aliases".into(), json!(aliases));
    }
    Value::Object(v)
}

/// What one membership operation is about.
struct About {
    /// The (group uuid, subject) whose membership state is recorded, when both are known.
    state: Option<(String, SubjectKey)>,
    /// The retry row scheduled if it fails.
    retry: Option<RetryTarget>,
    /// For a removal: the Duo user losing the membership.
    removed_user: Option<String>,
    label: String,
    /// The audit entry's object name (`username in group`), group uuid and before/after.
    audit_name: String,
    group_uuid: Option<String>,
    membership: Value,
}

/// A link kept out of target (its Duo id is kept: `None` does not overwrite it).
fn parked_user(k: &SubjectKey) -> UserState {
    UserState { pending_name: None, pending_at: None, subject: k.clone(), duo_user_id: None, in_target: false, created_by_us: true, provisioned_at: None, error: None }
}

/// Whether a failed create may still have created the object: its outcome is unknown (the
/// request may have been executed, or was and its answer was lost or unreadable). A refusal
/// (4xx, 429 after retries, a request never sent) created nothing.
fn create_may_have_landed(e: &DuoError) -> bool {
    match &e.kind {
        ErrorKind::Transport { maybe_sent, .. } => *maybe_sent,
        // `Changed`: a read-back listing after an unknown outcome saw the account move under it.
        ErrorKind::Deadline { .. }
        | ErrorKind::Server { .. }
        | ErrorKind::Malformed { .. }
        | ErrorKind::UnexpectedStatus { .. }
        | ErrorKind::Unresolved { .. }
        | ErrorKind::Changed { .. } => true,
        ErrorKind::Auth { .. }
        | ErrorKind::Forbidden { .. }
        | ErrorKind::NotFound { .. }
        | ErrorKind::InvalidParameter { .. }
        | ErrorKind::RateLimited { .. }
        | ErrorKind::Config { .. } => false,
    }
}

/// An intended group create (clears a stale Duo id of the link; see [`GroupState`]).
fn intended_group(uuid: &str, name: &str, at: EpochMillis, error: Option<StateError>) -> GroupState {
    GroupState {
        pending_name: Some(name.to_owned()),
        pending_at: Some(at),
        group_uuid: uuid.to_owned(),
        duo_group_id: None,
        in_target: false,
        created_by_us: true,
        provisioned_at: None,
        error,
    }
}

/// An intended user create.
fn intended_user(key: &SubjectKey, username: &str, at: EpochMillis, error: Option<StateError>) -> UserState {
    UserState {
        pending_name: Some(username.to_owned()),
        pending_at: Some(at),
        subject: key.clone(),
        duo_user_id: None,
        in_target: false,
        created_by_us: true,
        provisioned_at: None,
        error,
    }
}

/// A user create Duo refused: no intent remains, nothing is owned.
fn refused_user(key: SubjectKey, error: StateError) -> UserState {
    UserState { pending_name: None, pending_at: None, subject: key, duo_user_id: None, in_target: false, created_by_us: false, provisioned_at: None, error: Some(error) }
}

pub(crate) struct Applier<'a> {
    store: &'a dyn Store,
    duo: &'a DuoClient,
    provisioner: &'a str,
    /// The provisioner's `concurrency`, capped by the client's `max_concurrency`: calls in
    /// flight for the whole apply, split between the streams while both run.
    concurrency: usize,
    /// This stream's calls in flight (the whole budget when no other stream runs).
    share: Share,
    /// Set when either stream stops; the other stops at its next batch.
    halt: Halt,
    progress: &'a dyn Progress,
    report: RunReport,
    created_groups: HashMap<String, String>,
    created_users: HashMap<SubjectKey, String>,
    subject_of_user: HashMap<String, SubjectKey>,
    /// Users as Duo reported them when creating them.
    created_objects: Vec<duoprov_duo::User>,
    /// Objects that failed, for the retry list.
    failed_targets: Vec<(RetryTarget, String)>,
    /// The runner lock, checked before each phase.
    fence: Option<FenceHandle>,
    /// Links of users leaving management that have membership removals in this plan: forgotten
    /// (or parked, `true`) only once every removal of their Duo user succeeded, so a run that
    /// fails one still knows the user next time. (subject, Duo user id, park)
    leaving_after_removals: Vec<(SubjectKey, String, bool)>,
    /// Duo users with a membership removal that failed in this run.
    failed_removals: HashSet<String>,
    /// Who made this run (actor, run id, approved digest), for its audit entries.
    trigger: AuditTrigger,
    /// The current phase's audit entries, appended when it ends.
    audit: Vec<AuditRecord>,
}

impl<'a> Applier<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &'a dyn Store,
        duo: &'a DuoClient,
        provisioner: &'a str,
        concurrency: usize,
        progress: &'a dyn Progress,
        report: RunReport,
        fence: Option<FenceHandle>,
        trigger: AuditTrigger,
    ) -> Self {
        let concurrency = concurrency.min(duo.config().max_concurrency).max(1);
        Applier {
            store,
            duo,
            provisioner,
            concurrency,
            share: Share::new(concurrency),
            halt: Halt::default(),
            progress,
            report,
            created_groups: HashMap::new(),
            created_users: HashMap::new(),
            subject_of_user: HashMap::new(),
            created_objects: Vec::new(),
            failed_targets: Vec::new(),
            fence,
            leaving_after_removals: Vec::new(),
            failed_removals: HashSet::new(),
            trigger,
            audit: Vec::new(),
        }
    }

    /// The users this run created, as Duo reported them.
    pub fn created_user_objects(&mut self) -> Vec<duoprov_duo::User> {
        std::mem::take(&mut self.created_objects)
    }

    /// The objects that failed in this run, with their errors (for the retry list): one entry per
    /// retry row, a group's whole-membership form covering its plain form.
    pub fn failed_targets(&mut self) -> Vec<(RetryTarget, String)> {
        let failed = std::mem::take(&mut self.failed_targets);
        let whole: HashSet<String> = failed.iter().filter(|(t, _)| t.whole_group()).filter_map(|(t, _)| t.group_uuid().map(str::to_owned)).collect();
        let mut seen: HashSet<RetryTarget> = HashSet::new();
        let mut out = Vec::with_capacity(failed.len());
        for (t, message) in failed {
            let t = match t {
                RetryTarget::Group { group_uuid } if whole.contains(&group_uuid) => RetryTarget::WholeGroup { group_uuid },
                t => t,
            };
            if seen.insert(t.clone()) {
                out.push((t, message));
            }
        }
        out
    }

    pub fn into_report(self) -> RunReport {
        self.progress.finish();
        self.report
    }

    fn fail(&mut self, target: Option<RetryTarget>, object: String, error: &str) {
        if let Some(t) = target {
            self.failed_targets.push((t, error.to_owned()));
        }
        let (code, message) = if is_forbidden(error) {
            (crate::report::FORBIDDEN, format!("{error} (the Duo application lacks 'Grant write resource')"))
        } else {
            ("ERR", error.to_owned())
        };
        self.report.failures.push(Failure { object, code: code.into(), message });
    }

    /// Notes one Duo mutation and Duo's answer for the audit log.
    #[allow(clippy::too_many_arguments)]
    fn audit(&mut self, kind: &str, name: impl Into<String>, uuid: Option<String>, action: &str, before: Option<Value>, after: Option<Value>, answer: DuoAnswer) {
        let record = AuditRecord { provisioner: Some(self.provisioner.to_owned()), object_uuid: uuid, before, after, duo: Some(answer), ..self.trigger.record(kind, name, action) };
        self.audit.push(record);
    }

    /// Appends the phase's audit entries in one transaction.
    async fn flush_audit(&mut self) -> Result<(), SyncError> {
        let records = std::mem::take(&mut self.audit);
        self.store.append_audit(&records).await?;
        Ok(())
    }

    fn timed(&mut self, phase: &str, start: Instant) {
        let elapsed = start.elapsed();
        self.report.timings_ms.push((phase.to_owned(), elapsed.as_millis() as u64));
        let to = self.duo.pacing_clock_secs();
        self.report.phase_clock.push((phase.to_owned(), to - elapsed.as_secs_f64(), to, self.duo.pacing_totals()));
    }

    /// Stops the run before `phase` when the runner lock is no longer held.
    async fn fenced(&self, phase: &str) -> Result<(), SyncError> {
        match &self.fence {
            Some(fence) if !fence.held().await => Err(SyncError::LockLost { provisioner: self.provisioner.to_owned(), phase: phase.to_owned() }),
            _ => Ok(()),
        }
    }

    /// Asked before each batch or window of a stream: `Ok(false)` when the other stream has
    /// stopped (this one stops too, its sent work recorded), `Err(LockLost)` when the runner lock
    /// is no longer held (and the other stream is told to stop).
    async fn gate(&self, phase: &str) -> Result<bool, SyncError> {
        if self.halt.is_set() {
            return Ok(false);
        }
        if let Err(e) = self.fenced(phase).await {
            self.halt.set();
            return Err(e);
        }
        Ok(true)
    }

    /// An applier for the group stream: same store, client, lock and halt flag; its own report,
    /// audit batch and share of the calls in flight. Its progress is not drawn (the bar follows
    /// the bulk stream, which decides the run's length).
    fn group_stream(&self, calls: usize) -> Applier<'a> {
        let report = RunReport { provisioner: self.report.provisioner.clone(), ..RunReport::default() };
        let mut g = Applier::new(self.store, self.duo, self.provisioner, self.concurrency, &NoProgress, report, self.fence.clone(), self.trigger.clone());
        g.share = Share::new(calls);
        g.halt = self.halt.clone();
        g
    }

    /// Takes in what the group stream did: its counts, failures and created groups.
    fn absorb(&mut self, g: Applier<'a>) {
        let r = g.report;
        self.report.groups += r.groups;
        self.report.users += r.users;
        self.report.memberships += r.memberships;
        self.report.write_calls += r.write_calls;
        self.report.failures.extend(r.failures);
        self.failed_targets.extend(g.failed_targets);
        self.created_groups.extend(g.created_groups);
        self.audit.extend(g.audit);
    }

    /// Applies the plan in two streams while groups are created (see the module's doc): the
    /// group stream (group creates in batches, then group updates) and the bulk stream (user
    /// creates, restores, re-enables, user updates, memberships), then deletes.
    pub async fn apply(&mut self, plan: &Plan) -> Result<(), SyncError> {
        let now = self.duo.pacing_clock_secs();
        self.report.phase_clock.push((String::new(), now, now, self.duo.pacing_totals()));
        let start = Instant::now();
        self.fenced("recording matches").await?;
        self.record_matches(plan).await?;
        let feed = GroupFeed::new();
        let split = crate::streams::split(self.concurrency);
        let (bulk_calls, group_calls) = split.unwrap_or((self.concurrency, self.concurrency));
        let mut groups = self.group_stream(group_calls);
        self.share = Share::new(bulk_calls);
        let (budget, bulk_share, group_share) = (self.concurrency, self.share.clone(), groups.share.clone());
        let group_run = async {
            let r = groups.run_group_stream(plan, &feed).await;
            if r.is_err() {
                groups.halt.set();
            }
            // Whatever happened, the membership windows stop waiting for groups.
            feed.close();
            bulk_share.set(budget);
            r
        };
        let mut reader = feed.reader();
        let (group_result, bulk_result) = if split.is_some() {
            let bulk_run = async {
                let r = self.run_bulk_stream(plan, &mut reader, start).await;
                if r.is_err() {
                    self.halt.set();
                }
                group_share.set(budget);
                r
            };
            tokio::join!(group_run, bulk_run)
        } else {
            // One call in flight: the streams run one after the other.
            let g = group_run.await;
            let b = if g.is_ok() { self.run_bulk_stream(plan, &mut reader, start).await } else { Ok(()) };
            (g, b)
        };
        self.absorb(groups);
        self.share = Share::new(self.concurrency);
        // Audit entries a stream could not append (its registry failed) are tried once more; a
        // stream's own error (the lock lost, first) is what the run reports. The halt flag is set
        // only with an error, so deletes never run after a halt.
        let flushed = self.flush_audit().await;
        group_result.and(bulk_result).inspect_err(|_| {
            if let Err(e) = &flushed {
                tracing::warn!(provisioner = self.provisioner, error = %e, "appending the audit entries of a stopped run");
            }
        })?;
        flushed?;
        let start = Instant::now();
        self.fenced("deleting groups").await?;
        self.delete_groups(plan).await?;
        self.flush_audit().await?;
        self.fenced("deleting users").await?;
        self.delete_users(plan).await?;
        self.flush_audit().await?;
        self.timed("delete", start);
        Ok(())
    }

    /// The group stream: group creates in batches of [`GROUP_CREATE_BATCH`] (the lock asked
    /// before each, each recorded and audited, then published to `feed`), then group updates.
    /// When its work is over, the bulk stream gets the whole budget of calls in flight.
    async fn run_group_stream(&mut self, plan: &Plan, feed: &GroupFeed) -> Result<(), SyncError> {
        if !self.create_groups(plan, feed).await? {
            return Ok(());
        }
        feed.close();
        if !self.gate("updating groups").await? {
            return Ok(());
        }
        self.update_groups(plan).await?;
        self.flush_audit().await
    }

    /// The bulk stream: user creates (in batches), restores, re-enables, user updates, then
    /// memberships (additions to a new group once its create is recorded in `groups`).
    async fn run_bulk_stream(&mut self, plan: &Plan, groups: &mut FeedReader, start: Instant) -> Result<(), SyncError> {
        if !self.create_users(plan).await? {
            return Ok(());
        }
        if !self.gate("restoring users").await? {
            return Ok(());
        }
        self.restore_users(plan).await?;
        self.flush_audit().await?;
        if !self.gate("re-enabling users").await? {
            return Ok(());
        }
        self.enable_users(plan).await?;
        self.flush_audit().await?;
        self.timed("create", start);
        let start = Instant::now();
        if !self.gate("updating users").await? {
            return Ok(());
        }
        self.update_users(plan).await?;
        self.flush_audit().await?;
        self.timed("update", start);
        let start = Instant::now();
        if !self.gate("changing memberships").await? {
            return Ok(());
        }
        self.memberships(plan, groups).await?;
        self.flush_audit().await?;
        self.settle_leaving_users().await?;
        self.timed("memberships", start);
        Ok(())
    }

    /// Links found by matching (confirmed, adopted, taken over) and links leaving management.
    async fn record_matches(&mut self, plan: &Plan) -> Result<(), SyncError> {
        let at = EpochMillis::now();
        // The subject linked to each Duo user that loses a membership in this plan (matches
        // below take precedence): a failed removal of a user leaving management is then still
        // scheduled for its subject. Only those links are read (by Duo user id), never every
        // link of the provisioner: an incremental run's cost follows its plan.
        let removed_ids: Vec<String> = plan
            .ops
            .iter()
            .filter_map(|o| match &o.op {
                Op::RemoveMember { user_id, .. } => Some(user_id.clone()),
                _ => None,
            })
            .collect::<HashSet<String>>()
            .into_iter()
            .collect();
        let removed_links = if removed_ids.is_empty() { Vec::new() } else { self.store.user_links_by_duo_ids(self.provisioner, &removed_ids).await? };
        for l in &removed_links {
            if let Some(id) = &l.duo_user_id {
                self.subject_of_user.insert(id.clone(), l.subject.clone());
            }
        }
        let groups: Vec<GroupState> = plan
            .group_matches
            .iter()
            .map(|m| GroupState {
                pending_name: None,
                pending_at: None,
                group_uuid: m.uuid.clone(),
                duo_group_id: Some(m.group_id.clone()),
                in_target: true,
                created_by_us: m.created_by_us,
                provisioned_at: Some(at),
                error: None,
            })
            .collect();
        let users: Vec<UserState> = plan
            .user_matches
            .iter()
            .map(|m| {
                let subject = SubjectKey::new(&m.source, &m.id);
                self.subject_of_user.insert(m.user_id.clone(), subject.clone());
                UserState { pending_name: None, pending_at: None, subject, duo_user_id: Some(m.user_id.clone()), in_target: true, created_by_us: m.created_by_us, provisioned_at: Some(at), error: None }
            })
            .collect();
        self.store.record(self.provisioner, &groups, &users, &[]).await?;
        // A user leaving management whose Duo user loses memberships in this plan keeps its link
        // until those removals succeeded (see `settle_leaving_users`). A link taken over by
        // another subject (its Duo user is matched again) is settled now: the new link replaces it.
        let removed: HashSet<&str> = plan
            .ops
            .iter()
            .filter_map(|o| match &o.op {
                Op::RemoveMember { user_id, .. } => Some(user_id.as_str()),
                _ => None,
            })
            .collect();
        let matched: HashSet<&str> = plan.user_matches.iter().map(|m| m.user_id.as_str()).collect();
        // Only a link whose Duo user loses a membership can make its subject wait, so the links
        // read above are all `waits` needs.
        let link_id: HashMap<&SubjectKey, &str> = removed_links.iter().filter_map(|l| l.duo_user_id.as_deref().map(|id| (&l.subject, id))).collect();
        let waits = |k: &SubjectKey| link_id.get(k).copied().filter(|id| removed.contains(id) && !matched.contains(id));
        let mut released_now: Vec<SubjectKey> = Vec::new();
        let mut parked_now: Vec<&SubjectKey> = Vec::new();
        for (subjects, park) in [(&plan.released_users, false), (&plan.parked_users, true)] {
            for k in subjects {
                match waits(k) {
                    Some(id) => self.leaving_after_removals.push((k.clone(), id.to_owned(), park)),
                    None if park => parked_now.push(k),
                    None => released_now.push(k.clone()),
                }
            }
        }
        // Objects leaving management that duoprov did not create are forgotten: if they are
        // selected again they are matched afresh (and adopted). Groups leaving management have
        // no membership removals (members are removed only from selected groups).
        self.store.forget_groups(self.provisioner, &plan.released_groups).await?;
        self.store.forget_users(self.provisioner, &released_now).await?;
        // Objects duoprov created that leave management stay linked, out of target: selected
        // again, they are duoprov's own (updated, deletable by policy), not adopted.
        let parked_groups: Vec<GroupState> = plan
            .parked_groups
            .iter()
            .map(|uuid| GroupState { pending_name: None, pending_at: None, group_uuid: uuid.clone(), duo_group_id: None, in_target: false, created_by_us: true, provisioned_at: None, error: None })
            .collect();
        let parked_users: Vec<UserState> = parked_now.into_iter().map(parked_user).collect();
        if !parked_groups.is_empty() || !parked_users.is_empty() {
            self.store.record(self.provisioner, &parked_groups, &parked_users, &[]).await?;
        }
        Ok(())
    }

    /// Forgets (or parks) the links of users leaving management whose membership removals all
    /// succeeded; a link with a failed removal stays as it was, so the next run (full or
    /// incremental) still reads that Duo user and plans the removal again.
    async fn settle_leaving_users(&mut self) -> Result<(), SyncError> {
        let leaving = std::mem::take(&mut self.leaving_after_removals);
        let (done, kept): (Vec<_>, Vec<_>) = leaving.into_iter().partition(|(_, id, _)| !self.failed_removals.contains(id));
        for (k, _, _) in &kept {
            tracing::debug!(subject = %k, "link kept: a membership removal of its Duo user failed");
        }
        let (park, forget): (Vec<_>, Vec<_>) = done.into_iter().partition(|(_, _, park)| *park);
        let forget: Vec<SubjectKey> = forget.into_iter().map(|(k, _, _)| k).collect();
        self.store.forget_users(self.provisioner, &forget).await?;
        let parked: Vec<UserState> = park.iter().map(|(k, _, _)| parked_user(k)).collect();
        if !parked.is_empty() {
            self.store.record(self.provisioner, &[], &parked, &[]).await?;
        }
        Ok(())
    }

    /// Group creates: every intent recorded first, then batches of [`GROUP_CREATE_BATCH`], the
    /// runner lock asked before each; a batch's results are recorded and audited, then its
    /// created groups published to `feed` (membership additions may then be sent to them).
    /// `Ok(false)` when the other stream stopped the run.
    async fn create_groups(&mut self, plan: &Plan, feed: &GroupFeed) -> Result<bool, SyncError> {
        // Owned items: the streams below must be provably Send for a spawned daemon task.
        let creates: Vec<(String, String, String)> = plan
            .ops
            .iter()
            .filter_map(|o| match &o.op {
                Op::CreateGroup { uuid, name, desc } => Some((uuid.clone(), name.clone(), desc.clone())),
                _ => None,
            })
            .collect();
        if creates.is_empty() {
            return Ok(true);
        }
        self.progress.phase("create groups", creates.len() as u64);
        let intended_at = EpochMillis::now();
        let intents: Vec<GroupState> = creates
            .iter()
            .map(|(uuid, name, _)| intended_group(uuid, name, intended_at, None))
            .collect();
        self.store.record(self.provisioner, &intents, &[], &[]).await?;
        let duo = self.duo;
        for batch in creates.chunks(GROUP_CREATE_BATCH) {
            if !self.gate("creating groups").await? {
                return Ok(false);
            }
            let results: Vec<_> = stream::iter(batch.to_vec())
                .map(|(uuid, name, desc)| async move {
                    let result = duo.create_group(&GroupFields::named(name.clone()).desc(desc.clone())).await;
                    (uuid, name, desc, result)
                })
                .buffer_unordered(self.share.get())
                .collect()
                .await;
            let at = EpochMillis::now();
            let mut states = Vec::with_capacity(results.len());
            let mut created = Vec::new();
            for (uuid, name, desc, result) in results {
                self.report.write_calls += 1;
                self.progress.advance(1);
                let after = json!({"name": name, "desc": desc, "group_id": result.as_ref().ok().map(|g| g.group_id.clone())});
                self.audit("group", name.clone(), Some(uuid.clone()), "create", None, Some(after), result.as_ref().map(|_| DuoAnswer::ok()).unwrap_or_else(duo_answer));
                match result {
                    Ok(g) => {
                        self.report.groups.created += 1;
                        self.created_groups.insert(uuid.clone(), g.group_id.clone());
                        created.push((uuid.clone(), g.group_id.clone()));
                        states.push(GroupState { pending_name: None, pending_at: None, group_uuid: uuid.clone(), duo_group_id: Some(g.group_id), in_target: true, created_by_us: true, provisioned_at: Some(at), error: None });
                    }
                    Err(e) => {
                        self.report.groups.failed += 1;
                        self.fail(Some(RetryTarget::Group { group_uuid: uuid.clone() }), format!("group {name}"), &e.to_string());
                        states.push(if create_may_have_landed(&e) {
                            intended_group(&uuid, &name, intended_at, Some(state_error(&e)))
                        } else {
                            GroupState { pending_name: None, pending_at: None, group_uuid: uuid.clone(), duo_group_id: None, in_target: false, created_by_us: false, provisioned_at: None, error: Some(state_error(&e)) }
                        });
                    }
                }
            }
            self.store.record(self.provisioner, &states, &[], &[]).await?;
            self.flush_audit().await?;
            // Only now, recorded: a membership added to one of these groups is sent after the
            // registry knows the group is duoprov's.
            feed.publish(created);
        }
        Ok(true)
    }

    /// User creates: every intent recorded first, then batches of [`USER_CREATE_BATCH_CALLS`]
    /// `bulk_create` calls, the runner lock asked before each, each batch recorded and audited
    /// before the next. `Ok(false)` when the other stream stopped the run.
    async fn create_users(&mut self, plan: &Plan) -> Result<bool, SyncError> {
        let creates: Vec<(SubjectKey, NewUser)> = plan
            .ops
            .iter()
            .filter_map(|o| match &o.op {
                Op::CreateUser { source, id, username, realname, email, firstname, lastname, aliases } => {
                    let mut u = NewUser::new(username.clone());
                    if !aliases.is_empty() {
                        u.fields.aliases = Some(aliases.iter().cloned().collect());
                    }
                    for (slot, v) in [(&mut u.fields.realname, realname), (&mut u.fields.email, email), (&mut u.fields.firstname, firstname), (&mut u.fields.lastname, lastname)] {
                        if !v.is_empty() {
                            *slot = Some(v.clone());
                        }
                    }
                    Some((SubjectKey::new(source, id), u))
                }
                _ => None,
            })
            .collect();
        if creates.is_empty() {
            return Ok(true);
        }
        self.progress.phase("create users", creates.len() as u64);
        let intended_at = EpochMillis::now();
        let intents: Vec<UserState> = creates.iter().map(|(k, u)| intended_user(k, &u.username, intended_at, None)).collect();
        self.store.record(self.provisioner, &[], &intents, &[]).await?;
        // Batch k is recorded and audited while batch k + 1 is sent (as membership windows are);
        // a run that stops records the batch it sent before it returns.
        let mut pending: Option<UsersRecord> = None;
        for batch in creates.chunks(USERS_PER_BULK_CREATE * USER_CREATE_BATCH_CALLS) {
            match self.gate("creating users").await {
                Ok(true) => {}
                stopped => {
                    record_users(self.store, self.provisioner, pending.take()).await?;
                    return stopped;
                }
            }
            let (store, provisioner) = (self.store, self.provisioner);
            let previous = pending.take();
            let (recorded, sent) = tokio::join!(record_users(store, provisioner, previous), self.user_batch(batch, intended_at));
            if let Err(e) = recorded {
                if let Err(also) = record_users(store, provisioner, Some(sent)).await {
                    tracing::warn!(provisioner = self.provisioner, error = %also, "recording the user creates sent while the previous batch failed to record");
                }
                return Err(e);
            }
            pending = Some(sent);
        }
        record_users(self.store, self.provisioner, pending).await?;
        Ok(true)
    }

    /// One batch of user creates (`bulk_create` calls, concurrently): sent, answered, counted;
    /// returns the users' states and audit entries, for [`record_users`].
    async fn user_batch(&mut self, batch: &[(SubjectKey, NewUser)], intended_at: EpochMillis) -> UsersRecord {
        let duo = self.duo;
        let chunks: Vec<Vec<(SubjectKey, NewUser)>> = batch.chunks(USERS_PER_BULK_CREATE).map(|c| c.to_vec()).collect();
        let results: Vec<_> = stream::iter(chunks)
            .map(|chunk| async move {
                let users: Vec<NewUser> = chunk.iter().map(|(_, u)| u.clone()).collect();
                let result = duo.bulk_create_users(&users).await;
                (chunk, result)
            })
            .buffer_unordered(self.share.get())
            .collect()
            .await;
        let at = EpochMillis::now();
        let mut states = Vec::new();
        for (chunk, result) in results {
            self.report.write_calls += 1;
            match result {
                Ok(created) => {
                    let by_name: HashMap<String, String> = created.iter().map(|u| (duoprov_model::username_key(&u.username), u.user_id.clone())).collect();
                    self.created_objects.extend(created);
                    for (key, u) in chunk {
                        self.progress.advance(1);
                        let found = by_name.get(&duoprov_model::username_key(&u.username));
                        let mut after = user_fields_json(Some(&u.username), &u.fields);
                        after["user_id"] = json!(found);
                        let answer = if found.is_some() { DuoAnswer::ok() } else { DuoAnswer::fail(None, "Duo's bulk create did not return this user") };
                        self.audit("user", u.username.clone(), Some(key.to_string()), "create", None, Some(after), answer);
                        match found {
                            Some(id) => {
                                self.report.users.created += 1;
                                self.created_users.insert(key.clone(), id.clone());
                                self.subject_of_user.insert(id.clone(), key.clone());
                                states.push(UserState { pending_name: None, pending_at: None, subject: key, duo_user_id: Some(id.clone()), in_target: true, created_by_us: true, provisioned_at: Some(at), error: None });
                            }
                            // The call succeeded without this user: Duo did not create it.
                            None => {
                                self.report.users.failed += 1;
                                let message = "Duo's bulk create did not return this user".to_owned();
                                self.fail(Some(RetryTarget::User { subject: key.clone() }), format!("subject {key}"), &message);
                                states.push(refused_user(key, StateError { code: "ERR".into(), message }));
                            }
                        }
                    }
                }
                // Duo refused the batch before doing anything (a bad value): create one by one
                // so one bad user does not stop the others.
                Err(e) if matches!(e.class(), ErrorClass::InvalidParameter) => {
                    for (key, u) in &chunk {
                        self.audit("user", u.username.clone(), Some(key.to_string()), "bulk_create", None, Some(user_fields_json(Some(&u.username), &u.fields)), duo_answer(&e));
                    }
                    for (key, u) in chunk {
                        self.progress.advance(1);
                        self.report.write_calls += 1;
                        let result = self.duo.create_user(&u).await;
                        let mut after = user_fields_json(Some(&u.username), &u.fields);
                        after["user_id"] = json!(result.as_ref().ok().map(|c| c.user_id.clone()));
                        self.audit("user", u.username.clone(), Some(key.to_string()), "create", None, Some(after), result.as_ref().map(|_| DuoAnswer::ok()).unwrap_or_else(duo_answer));
                        match result {
                            Ok(created) => {
                                self.report.users.created += 1;
                                self.created_users.insert(key.clone(), created.user_id.clone());
                                self.subject_of_user.insert(created.user_id.clone(), key.clone());
                                states.push(UserState { pending_name: None, pending_at: None, subject: key, duo_user_id: Some(created.user_id.clone()), in_target: true, created_by_us: true, provisioned_at: Some(at), error: None });
                                self.created_objects.push(created);
                            }
                            Err(e) => {
                                self.report.users.failed += 1;
                                self.fail(Some(RetryTarget::User { subject: key.clone() }), format!("subject {key}"), &e.to_string());
                                states.push(if create_may_have_landed(&e) {
                                    intended_user(&key, &u.username, intended_at, Some(state_error(&e)))
                                } else {
                                    refused_user(key, state_error(&e))
                                });
                            }
                        }
                    }
                }
                // The call failed as a whole. Only when its outcome is unknown do the intents
                // stay (the next run recognises exactly the users it asked for, created after the
                // intent, as duoprov's own); after a refusal nothing was created.
                Err(e) => {
                    let unknown = create_may_have_landed(&e);
                    for (key, u) in chunk {
                        self.progress.advance(1);
                        self.audit("user", u.username.clone(), Some(key.to_string()), "create", None, Some(user_fields_json(Some(&u.username), &u.fields)), duo_answer(&e));
                        self.report.users.failed += 1;
                        self.fail(Some(RetryTarget::User { subject: key.clone() }), format!("subject {key}"), &e.to_string());
                        states.push(if unknown { intended_user(&key, &u.username, intended_at, Some(state_error(&e))) } else { refused_user(key, state_error(&e)) });
                    }
                }
            }
        }
        UsersRecord { states, audit: std::mem::take(&mut self.audit) }
    }

    async fn update_groups(&mut self, plan: &Plan) -> Result<(), SyncError> {
        let updates: Vec<(String, String, GroupFields, String, Value, Value)> = plan
            .ops
            .iter()
            .filter_map(|o| match &o.op {
                Op::UpdateGroup { uuid, group_id, changes, name } => {
                    let before: serde_json::Map<String, Value> = changes.iter().map(|c| (c.field.as_str().to_owned(), json!(c.before))).collect();
                    let after: serde_json::Map<String, Value> = changes.iter().map(|c| (c.field.as_str().to_owned(), json!(c.after))).collect();
                    let mut f = GroupFields::default();
                    for c in changes {
                        match c.field {
                            GroupField::Name => f.name = Some(c.after.clone()),
                            GroupField::Desc => f.desc = Some(c.after.clone()),
                        }
                    }
                    Some((uuid.clone(), group_id.clone(), f, name.clone(), Value::Object(before), Value::Object(after)))
                }
                _ => None,
            })
            .collect();
        if updates.is_empty() {
            return Ok(());
        }
        self.progress.phase("update groups", updates.len() as u64);
        let duo = self.duo;
        let results: Vec<_> = stream::iter(updates)
            .map(|(uuid, id, f, name, before, after)| async move {
                let result = duo.modify_group(&id, &f).await;
                (uuid, id, result, name, before, after)
            })
            .buffer_unordered(self.share.get())
            .collect()
            .await;
        let at = EpochMillis::now();
        let owned: HashSet<&str> = plan.group_matches.iter().filter(|m| m.created_by_us).map(|m| m.uuid.as_str()).collect();
        let mut states = Vec::new();
        for (uuid, id, result, name, before, after) in results {
            self.report.write_calls += 1;
            self.progress.advance(1);
            self.audit("group", name, Some(uuid.clone()), "update", Some(before), Some(after), result.as_ref().map(|_| DuoAnswer::ok()).unwrap_or_else(duo_answer));
            let error = match result {
                Ok(_) => {
                    self.report.groups.updated += 1;
                    None
                }
                Err(e) => {
                    self.report.groups.failed += 1;
                    self.fail(Some(RetryTarget::Group { group_uuid: uuid.clone() }), format!("group {id}"), &e.to_string());
                    Some(state_error(&e))
                }
            };
            let ok = error.is_none();
            states.push(GroupState {
                pending_name: None,
                pending_at: None,
                group_uuid: uuid.clone(),
                duo_group_id: Some(id.clone()),
                in_target: true,
                created_by_us: owned.contains(uuid.as_str()),
                provisioned_at: ok.then_some(at),
                error,
            });
        }
        self.store.record(self.provisioner, &states, &[], &[]).await?;
        Ok(())
    }

    async fn update_users(&mut self, plan: &Plan) -> Result<(), SyncError> {
        let mut ops = Vec::new();
        let mut keys = Vec::new();
        let mut audits = Vec::new();
        for o in &plan.ops {
            if let Op::UpdateUser { source, id, user_id, changes, username } = &o.op {
                let before: serde_json::Map<String, Value> = changes.iter().map(|c| (c.field.as_str().to_owned(), json!(c.before))).collect();
                let after: serde_json::Map<String, Value> = changes.iter().map(|c| (c.field.as_str().to_owned(), json!(c.after))).collect();
                audits.push((username.clone(), Value::Object(before), Value::Object(after)));
                let mut f = UserFields::default();
                for c in changes {
                    let v = Some(c.after.clone());
                    match c.field {
                        UserField::Username => f.username = v,
                        UserField::Realname => f.realname = v,
                        UserField::Email => f.email = v,
                        UserField::Firstname => f.firstname = v,
                        UserField::Lastname => f.lastname = v,
                        UserField::Alias1 | UserField::Alias2 | UserField::Alias3 | UserField::Alias4 => {
                            if let Some(slot) = c.field.alias_slot()
                                && let Some(v) = v
                            {
                                f.aliases.get_or_insert_with(Default::default).insert(slot, v);
                            }
                        }
                    }
                }
                ops.push(BulkOp::ModifyUser { user_id: user_id.clone(), fields: f });
                keys.push((SubjectKey::new(source, id), user_id.clone()));
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        self.progress.phase("update users", ops.len() as u64);
        let results = self.bulk(&ops).await;
        let at = EpochMillis::now();
        let owned: HashSet<&str> = plan.user_matches.iter().filter(|m| m.created_by_us).map(|m| m.user_id.as_str()).collect();
        let mut states = Vec::new();
        for (((key, user_id), result), (username, before, after)) in keys.into_iter().zip(results).zip(audits) {
            self.audit("user", username, Some(key.to_string()), "update", Some(before), Some(after), op_answer(&result));
            let created_by_us = owned.contains(user_id.as_str());
            let error = match result {
                Ok(()) => {
                    self.report.users.updated += 1;
                    None
                }
                Err(message) => {
                    self.report.users.failed += 1;
                    self.fail(Some(RetryTarget::User { subject: key.clone() }), format!("subject {key}"), &message);
                    Some(StateError { code: "ERR".into(), message })
                }
            };
            let ok = error.is_none();
            states.push(UserState { pending_name: None, pending_at: None, subject: key, duo_user_id: Some(user_id), in_target: true, created_by_us, provisioned_at: ok.then_some(at), error });
        }
        self.store.record(self.provisioner, &[], &states, &[]).await?;
        Ok(())
    }

    /// Runs user and membership operations in chunks, concurrently, through the client's
    /// [`DuoClient::run_ops`] (bulk where the connection allows it and Duo's reply confirms each
    /// op, single calls otherwise); one result (or error message) per op.
    async fn bulk(&mut self, ops: &[BulkOp]) -> Vec<Result<(), String>> {
        let duo = self.duo;
        let chunks: Vec<(usize, Vec<BulkOp>)> = ops.chunks(MAX_BULK_OPS).map(<[BulkOp]>::to_vec).enumerate().collect();
        // (chunk index, write calls made, one result per op)
        type Chunk = (usize, usize, Vec<Result<(), String>>);
        let mut results: Vec<Chunk> = stream::iter(chunks)
            .map(|(i, chunk)| async move {
                let outcome = duo.run_ops(&chunk).await;
                let out = outcome.results.into_iter().map(|r| r.map(|_| ()).map_err(|e| e.to_string())).collect();
                (i, outcome.calls, out)
            })
            .buffer_unordered(self.share.get())
            .collect()
            .await;
        results.sort_by_key(|(i, _, _)| *i);
        self.report.write_calls += results.iter().map(|(_, calls, _)| calls).sum::<usize>();
        let flat: Vec<Result<(), String>> = results.into_iter().flat_map(|(_, _, r)| r).collect();
        self.progress.advance(flat.len() as u64);
        flat
    }

    /// Membership removals, then additions: every removal batch has completed before the first
    /// addition batch is sent, so an addition never reaches Duo before the removal that made room
    /// for it under the 100-groups-per-user limit (the planner counted removals first). Both go in
    /// windows of [`MEMBERSHIP_WINDOW`] operations, each recorded and audited before the next is
    /// built, so an initial sync of a million memberships holds one window's bookkeeping at a
    /// time, never the whole phase's; the runner lock is asked before each window.
    ///
    /// An addition to a group this run creates waits until `groups` publishes that group (its
    /// create answered and recorded); additions to existing groups, and to groups already
    /// published, go first. Once `groups` is closed, the additions still waiting go out in
    /// windows too: those whose group was not created are reported unresolved, never sent.
    async fn memberships(&mut self, plan: &Plan, groups: &mut FeedReader) -> Result<(), SyncError> {
        let uuid_of_group: HashMap<&str, &str> = plan.group_matches.iter().map(|m| (m.group_id.as_str(), m.uuid.as_str())).collect();
        let is_removal = |o: &&PlannedOp| matches!(o.op, Op::RemoveMember { .. });
        let is_addition = |o: &&PlannedOp| matches!(o.op, Op::AddMember { .. });
        let total = plan.ops.iter().filter(|o| is_removal(o) || is_addition(o)).count();
        if total > 0 {
            self.progress.phase("memberships", total as u64);
        }
        let removals: Vec<&PlannedOp> = plan.ops.iter().filter(is_removal).collect();
        // Additions ready to send, and those waiting for their group's create to be recorded.
        let mut ready: Vec<&PlannedOp> = Vec::new();
        let mut waiting: HashMap<&str, Vec<&PlannedOp>> = HashMap::new();
        for o in plan.ops.iter().filter(is_addition) {
            match &o.op {
                Op::AddMember { group: GroupRef::New { uuid, .. }, .. } if !self.created_groups.contains_key(&**uuid) => waiting.entry(&**uuid).or_default().push(o),
                _ => ready.push(o),
            }
        }
        let mut removal_windows = removals.chunks(MEMBERSHIP_WINDOW);
        let mut ready_from = 0;
        // The runner lock is asked again before every window but the first (asked before the
        // phase): a run that lost it stops within one window, not after the whole phase.
        // Window k is recorded and audited while window k + 1 is sent (the bulk class does not
        // idle on the registry); the last window's recording, and a stopped run's, is awaited
        // before the phase ends.
        let mut first = true;
        let mut pending: Option<WindowRecord> = None;
        loop {
            // Every removal window is sent (and answered) before the first addition window.
            let window: Vec<&PlannedOp> = if let Some(w) = removal_windows.next() {
                w.to_vec()
            } else {
                let (published, closed) = groups.take_new();
                for (uuid, group_id) in published {
                    if let Some(ops) = waiting.remove(uuid.as_str()) {
                        ready.extend(ops);
                    }
                    self.created_groups.insert(uuid, group_id);
                }
                if ready_from == ready.len() && closed {
                    // Nothing more will be published: what still waits is unresolved.
                    let rest: Vec<&PlannedOp> = waiting.drain().flat_map(|(_, ops)| ops).collect();
                    ready.extend(rest);
                }
                if ready_from == ready.len() {
                    if waiting.is_empty() {
                        break;
                    }
                    // Waiting for the group stream: what was sent is recorded meanwhile.
                    self.record_window(pending.take()).await?;
                    groups.changed().await;
                    // Time has passed: the lock is asked before the next window.
                    first = false;
                    if self.halt.is_set() {
                        return Ok(());
                    }
                    continue;
                }
                let to = (ready_from + MEMBERSHIP_WINDOW).min(ready.len());
                let w = ready[ready_from..to].to_vec();
                ready_from = to;
                w
            };
            if !std::mem::take(&mut first) {
                match self.gate("changing memberships").await {
                    Ok(true) => {}
                    stopped => {
                        self.record_window(pending.take()).await?;
                        return stopped.map(|_| ());
                    }
                }
            }
            let (store, provisioner) = (self.store, self.provisioner);
            let previous = pending.take();
            let (recorded, sent) = tokio::join!(record_window(store, provisioner, previous), self.membership_window(&window, &uuid_of_group));
            if let Err(e) = recorded {
                // Window k + 1 reached Duo meanwhile: its states and audit entries are still
                // written if the registry takes them, so no mutation sent goes unaudited.
                if let Err(also) = self.record_window(Some(sent)).await {
                    tracing::warn!(provisioner = self.provisioner, error = %also, "recording the membership window sent while the previous one failed to record");
                }
                return Err(e);
            }
            pending = Some(sent);
        }
        self.record_window(pending).await
    }

    async fn record_window(&self, window: Option<WindowRecord>) -> Result<(), SyncError> {
        record_window(self.store, self.provisioner, window).await
    }

    /// One window of membership operations (all removals or all additions): sent through
    /// [`Self::bulk`]; returns their states and audit entries, for [`record_window`].
    async fn membership_window(&mut self, window: &[&PlannedOp], uuid_of_group: &HashMap<&str, &str>) -> WindowRecord {
        let mut ops = Vec::with_capacity(window.len());
        let mut about: Vec<About> = Vec::with_capacity(window.len());
        let mut unresolved = Vec::new();
        let mut add = false;
        for o in window {
            match &o.op {
                Op::RemoveMember { group_id, group_name, user_id, username } => {
                    ops.push(BulkOp::RemoveUserFromGroup { user_id: user_id.clone(), group_id: group_id.clone() });
                    let group_uuid = uuid_of_group.get(group_id.as_str()).map(|u| (*u).to_owned());
                    let subject = self.subject_of_user.get(user_id).cloned();
                    let retry = match (&group_uuid, &subject) {
                        (Some(g), Some(s)) => Some(RetryTarget::Membership { group_uuid: g.clone(), subject: s.clone() }),
                        // A Duo member no subject is linked to (made by hand): only reading the
                        // group's members finds it again, so the group is retried whole.
                        (Some(g), None) => Some(RetryTarget::WholeGroup { group_uuid: g.clone() }),
                        (None, _) => None,
                    };
                    about.push(About {
                        state: group_uuid.clone().zip(subject),
                        retry,
                        removed_user: Some(user_id.clone()),
                        label: format!("membership of {username} in group {group_name}"),
                        audit_name: format!("{username} in group {group_name}"),
                        group_uuid,
                        membership: json!({"group": group_name, "group_id": group_id, "user": username, "user_id": user_id}),
                    });
                }
                Op::AddMember { group_uuid, source, id, group, user } => {
                    add = true;
                    let key = SubjectKey::new(&**source, &**id);
                    let group_id = match group {
                        GroupRef::Existing { group_id, .. } => Some(group_id.to_string()),
                        GroupRef::New { uuid, .. } => self.created_groups.get(&**uuid).cloned(),
                    };
                    let user_id = match user {
                        UserRef::Existing { user_id, .. } => Some(user_id.to_string()),
                        UserRef::New { .. } => self.created_users.get(&key).cloned(),
                    };
                    let label = format!("membership of subject {key} in group {}", group.name());
                    match group_id.zip(user_id) {
                        Some((group_id, user_id)) => {
                            let membership = json!({"group": group.name(), "group_id": group_id, "user": user.username(), "user_id": user_id});
                            ops.push(BulkOp::AddUserToGroup { user_id, group_id });
                            let retry = RetryTarget::Membership { group_uuid: group_uuid.to_string(), subject: key.clone() };
                            let audit_name = format!("{} in group {}", user.username(), group.name());
                            about.push(About { state: Some((group_uuid.to_string(), key)), retry: Some(retry), removed_user: None, label, audit_name, group_uuid: Some(group_uuid.to_string()), membership });
                        }
                        None => unresolved.push((group_uuid.to_string(), key, label)),
                    }
                }
                _ => {}
            }
        }
        let at = EpochMillis::now();
        let mut states = Vec::with_capacity(window.len());
        for (group_uuid, subject, label) in unresolved {
            self.report.memberships.failed += 1;
            let message = "its group or user could not be created in this run".to_owned();
            self.fail(Some(RetryTarget::Membership { group_uuid: group_uuid.clone(), subject: subject.clone() }), label, &message);
            states.push(MembershipState { group_uuid, subject, in_target: false, provisioned_at: None, error: Some(StateError { code: "ERR".into(), message }) });
        }
        // Unresolved additions were counted in the phase's total but are never sent.
        self.progress.advance((window.len() - ops.len()) as u64);
        let results = if ops.is_empty() { Vec::new() } else { self.bulk(&ops).await };
        drop(ops);
        for (about, result) in about.into_iter().zip(results) {
            let (before, after, action) = if add { (None, Some(about.membership), "add") } else { (Some(about.membership), None, "remove") };
            self.audit("membership", about.audit_name, about.group_uuid, action, before, after, op_answer(&result));
            match result {
                Ok(()) => {
                    if add {
                        self.report.memberships.created += 1;
                    } else {
                        self.report.memberships.deleted += 1;
                    }
                    if let Some((group_uuid, subject)) = about.state {
                        states.push(MembershipState { group_uuid, subject, in_target: add, provisioned_at: Some(at), error: None });
                    }
                }
                Err(message) => {
                    self.report.memberships.failed += 1;
                    if let Some(user_id) = about.removed_user {
                        self.failed_removals.insert(user_id);
                    }
                    self.fail(about.retry, about.label, &message);
                    if let Some((group_uuid, subject)) = about.state {
                        states.push(MembershipState { group_uuid, subject, in_target: !add, provisioned_at: None, error: Some(StateError { code: "ERR".into(), message }) });
                    }
                }
            }
        }
        WindowRecord { states, audit: std::mem::take(&mut self.audit) }
    }

    async fn delete_groups(&mut self, plan: &Plan) -> Result<(), SyncError> {
        let deletes: Vec<(String, String, String)> = plan
            .ops
            .iter()
            .filter_map(|o| match &o.op {
                Op::DeleteGroup { uuid, group_id, name } => Some((uuid.clone(), group_id.clone(), name.clone())),
                _ => None,
            })
            .collect();
        if deletes.is_empty() {
            return Ok(());
        }
        self.progress.phase("delete groups", deletes.len() as u64);
        let duo = self.duo;
        let results: Vec<_> = stream::iter(deletes)
            .map(|(uuid, id, name)| async move {
                let result = duo.delete_group(&id).await;
                (uuid, id, name, result)
            })
            .buffer_unordered(self.share.get())
            .collect()
            .await;
        let mut forget = Vec::new();
        let mut states = Vec::new();
        for (uuid, id, name, result) in results {
            self.report.write_calls += 1;
            self.progress.advance(1);
            self.audit("group", name.clone(), Some(uuid.clone()), "delete", Some(json!({"name": name, "group_id": id})), None, result.as_ref().map(|_| DuoAnswer::ok()).unwrap_or_else(duo_answer));
            match result {
                Ok(()) => {
                    self.report.groups.deleted += 1;
                    forget.push(uuid.clone());
                }
                Err(e) => {
                    self.report.groups.failed += 1;
                    self.fail(Some(RetryTarget::Group { group_uuid: uuid.clone() }), format!("group {name}"), &e.to_string());
                    states.push(GroupState { pending_name: None, pending_at: None, group_uuid: uuid.clone(), duo_group_id: Some(id.clone()), in_target: true, created_by_us: true, provisioned_at: None, error: Some(state_error(&e)) });
                }
            }
        }
        self.store.forget_groups(self.provisioner, &forget).await?;
        if !states.is_empty() {
            // Keep the link (and who created the group) so the next run tries again.
            let links = self.store.links(self.provisioner).await?;
            for s in &mut states {
                s.created_by_us = links.groups.iter().any(|l| l.group_uuid == s.group_uuid && l.created_by_us);
            }
            self.store.record(self.provisioner, &states, &[], &[]).await?;
        }
        Ok(())
    }

    /// Restores selected users from Duo's Trash (and reactivates those `disable_then_trash`
    /// disabled), before any membership is added to them.
    async fn restore_users(&mut self, plan: &Plan) -> Result<(), SyncError> {
        let restores: Vec<(SubjectKey, String, bool, String)> = plan
            .ops
            .iter()
            .filter_map(|o| match &o.op {
                Op::RestoreUser { source, id, user_id, reactivate, username } => Some((SubjectKey::new(source, id), user_id.clone(), *reactivate, username.clone())),
                _ => None,
            })
            .collect();
        if restores.is_empty() {
            return Ok(());
        }
        self.progress.phase("restore users", restores.len() as u64);
        let mut restored = Vec::new();
        for chunk in restores.chunks(USERS_PER_BULK_CREATE) {
            let ids: Vec<String> = chunk.iter().map(|(_, id, _, _)| id.clone()).collect();
            self.report.write_calls += 1;
            let result = self.duo.restore_users(&ids).await;
            for (k, id, _, username) in chunk {
                let answer = result.as_ref().map(|_| DuoAnswer::ok()).unwrap_or_else(duo_answer);
                self.audit("user", username.clone(), Some(k.to_string()), "restore", Some(json!({"user_id": id, "status": "pending deletion"})), Some(json!({"user_id": id})), answer);
            }
            match result {
                Ok(()) => restored.extend(chunk.iter().cloned()),
                Err(e) => {
                    for (k, _, _, _) in chunk {
                        self.report.users.failed += 1;
                        self.fail(Some(RetryTarget::User { subject: k.clone() }), format!("subject {k}"), &format!("restoring from Duo's Trash: {e}"));
                    }
                }
            }
            self.progress.advance(chunk.len() as u64);
        }
        let reactivate: Vec<&(SubjectKey, String, bool, String)> = restored.iter().filter(|(_, _, r, _)| *r).collect();
        let ops: Vec<BulkOp> = reactivate
            .iter()
            .map(|(_, id, _, _)| BulkOp::ModifyUser { user_id: id.clone(), fields: UserFields { status: Some("active".into()), ..Default::default() } })
            .collect();
        let results = if ops.is_empty() { Vec::new() } else { self.bulk(&ops).await };
        let mut failed = HashSet::new();
        for ((k, id, _, username), r) in reactivate.into_iter().zip(results) {
            self.audit("user", username.clone(), Some(k.to_string()), "reactivate", Some(json!({"user_id": id, "status": "disabled"})), Some(json!({"user_id": id, "status": "active"})), op_answer(&r));
            if let Err(message) = r {
                failed.insert(k.clone());
                self.report.users.failed += 1;
                self.fail(Some(RetryTarget::User { subject: k.clone() }), format!("subject {k}"), &format!("reactivating after restore: {message}"));
            }
        }
        self.report.users.updated += restored.iter().filter(|(k, _, _, _)| !failed.contains(k)).count();
        Ok(())
    }

    /// Sets `status=active` on selected users duoprov disabled (`user_delete_mode = "disable"`),
    /// then forgets that it disabled them; also forgets the records the plan found stale (the
    /// user is active again, or gone).
    async fn enable_users(&mut self, plan: &Plan) -> Result<(), SyncError> {
        let enables: Vec<(SubjectKey, String, String)> = plan
            .ops
            .iter()
            .filter_map(|o| match &o.op {
                Op::EnableUser { source, id, user_id, username } => Some((SubjectKey::new(source, id), user_id.clone(), username.clone())),
                _ => None,
            })
            .collect();
        let mut cleared = plan.disabled_cleared.clone();
        if !enables.is_empty() {
            self.progress.phase("re-enable users", enables.len() as u64);
            let ops: Vec<BulkOp> =
                enables.iter().map(|(_, id, _)| BulkOp::ModifyUser { user_id: id.clone(), fields: UserFields { status: Some("active".into()), ..Default::default() } }).collect();
            let results = self.bulk(&ops).await;
            for ((k, id, username), r) in enables.into_iter().zip(results) {
                self.audit("user", username, Some(k.to_string()), "enable", Some(json!({"user_id": id, "status": "disabled"})), Some(json!({"user_id": id, "status": "active"})), op_answer(&r));
                match r {
                    Ok(()) => {
                        self.report.users.updated += 1;
                        cleared.push(k);
                    }
                    Err(message) => {
                        self.report.users.failed += 1;
                        self.fail(Some(RetryTarget::User { subject: k.clone() }), format!("subject {k}"), &format!("re-enabling the Duo user duoprov disabled: {message}"));
                    }
                }
            }
            self.progress.advance(ops.len() as u64);
        }
        self.store.clear_disabled_users(self.provisioner, &cleared).await?;
        Ok(())
    }

    /// `user_delete_mode = "disable"`: sets `status=disabled` on users leaving management,
    /// records that duoprov disabled them, and parks their links (ownership kept as it was), so
    /// a return re-enables them.
    async fn disable_users(&mut self, disables: Vec<(SubjectKey, String)>, usernames: &HashMap<String, String>) -> Result<(), SyncError> {
        let ops: Vec<BulkOp> =
            disables.iter().map(|(_, id)| BulkOp::ModifyUser { user_id: id.clone(), fields: UserFields { status: Some("disabled".into()), ..Default::default() } }).collect();
        let results = self.bulk(&ops).await;
        let links = self.store.links(self.provisioner).await?;
        let created: HashSet<&SubjectKey> = links.users.iter().filter(|l| l.created_by_us).map(|l| &l.subject).collect();
        let mut done = Vec::new();
        let mut park = Vec::new();
        for ((k, id), r) in disables.into_iter().zip(results) {
            let name = usernames.get(&id).cloned().unwrap_or_else(|| id.clone());
            self.audit("user", name, Some(k.to_string()), "disable", Some(json!({"user_id": id, "status": "active"})), Some(json!({"user_id": id, "status": "disabled"})), op_answer(&r));
            match r {
                Ok(()) => {
                    self.report.users.disabled += 1;
                    park.push(UserState { created_by_us: created.contains(&k), ..parked_user(&k) });
                    done.push((k, id));
                }
                Err(message) => {
                    self.report.users.failed += 1;
                    self.fail(Some(RetryTarget::User { subject: k.clone() }), format!("subject {k}"), &format!("disabling instead of deleting: {message}"));
                }
            }
        }
        self.store.record_disabled_users(self.provisioner, &done).await?;
        if !park.is_empty() {
            self.store.record(self.provisioner, &[], &park, &[]).await?;
        }
        Ok(())
    }

    async fn delete_users(&mut self, plan: &Plan) -> Result<(), SyncError> {
        let deletes: Vec<(SubjectKey, String, UserDeleteMode)> = plan
            .ops
            .iter()
            .filter_map(|o| match &o.op {
                Op::DeleteUser { source, id, user_id, mode, .. } => Some((SubjectKey::new(source, id), user_id.clone(), *mode)),
                _ => None,
            })
            .collect();
        if deletes.is_empty() {
            return Ok(());
        }
        self.progress.phase("delete users", deletes.len() as u64);
        let usernames: HashMap<String, String> = plan
            .ops
            .iter()
            .filter_map(|o| match &o.op {
                Op::DeleteUser { user_id, username, .. } => Some((user_id.clone(), username.clone())),
                _ => None,
            })
            .collect();
        let (disables, deletes): (Vec<_>, Vec<_>) = deletes.into_iter().partition(|(_, _, m)| *m == UserDeleteMode::Disable);
        if !disables.is_empty() {
            self.disable_users(disables.into_iter().map(|(k, id, _)| (k, id)).collect(), &usernames).await?;
        }
        let name_of = |id: &str| usernames.get(id).cloned().unwrap_or_else(|| id.to_owned());
        let mut forget = Vec::new();
        let mut park = Vec::new();
        let (mut trash, delete): (Vec<_>, Vec<_>) = deletes.into_iter().partition(|(_, _, m)| *m != UserDeleteMode::Delete);
        // disable_then_trash: a user whose disabling failed is not trashed (retried next run).
        let disable: Vec<BulkOp> = trash
            .iter()
            .filter(|(_, _, m)| *m == UserDeleteMode::DisableThenTrash)
            .map(|(_, id, _)| BulkOp::ModifyUser { user_id: id.clone(), fields: UserFields { status: Some("disabled".into()), ..Default::default() } })
            .collect();
        if !disable.is_empty() {
            let results = self.bulk(&disable).await;
            let mut refused = HashSet::new();
            let disabling: Vec<(SubjectKey, String)> = trash.iter().filter(|(_, _, m)| *m == UserDeleteMode::DisableThenTrash).map(|(k, id, _)| (k.clone(), id.clone())).collect();
            for ((k, id), r) in disabling.into_iter().zip(results) {
                self.audit("user", name_of(&id), Some(k.to_string()), "disable", Some(json!({"user_id": id})), Some(json!({"user_id": id, "status": "disabled"})), op_answer(&r));
                if let Err(message) = r {
                    self.report.users.failed += 1;
                    self.fail(Some(RetryTarget::User { subject: k.clone() }), format!("subject {k}"), &format!("disabling before Trash: {message}"));
                    refused.insert(id);
                }
            }
            trash.retain(|(_, id, _)| !refused.contains(id));
        }
        // Users duoprov created stay linked (parked) while in Trash: selected again, they are
        // restored as duoprov's own.
        let links = self.store.links(self.provisioner).await?;
        let created: HashSet<&SubjectKey> = links.users.iter().filter(|l| l.created_by_us).map(|l| &l.subject).collect();
        for chunk in trash.chunks(USERS_PER_BULK_CREATE) {
            let ids: Vec<String> = chunk.iter().map(|(_, id, _)| id.clone()).collect();
            self.report.write_calls += 1;
            let result = self.duo.send_users_to_trash(&ids).await;
            for (k, id, _) in chunk {
                let answer = result.as_ref().map(|_| DuoAnswer::ok()).unwrap_or_else(duo_answer);
                self.audit("user", name_of(id), Some(k.to_string()), "trash", Some(json!({"user_id": id})), Some(json!({"user_id": id, "status": "pending deletion"})), answer);
            }
            match result {
                Ok(()) => {
                    self.report.users.deleted += chunk.len();
                    for (k, _, _) in chunk {
                        if created.contains(k) { park.push(parked_user(k)) } else { forget.push(k.clone()) }
                    }
                }
                Err(e) => {
                    for (k, _, _) in chunk {
                        self.report.users.failed += 1;
                        self.fail(Some(RetryTarget::User { subject: k.clone() }), format!("subject {k}"), &e.to_string());
                    }
                }
            }
            self.progress.advance(chunk.len() as u64);
        }
        if !delete.is_empty() {
            let ops: Vec<BulkOp> = delete.iter().map(|(_, id, _)| BulkOp::DeleteUser { user_id: id.clone() }).collect();
            let results = self.bulk(&ops).await;
            for ((k, id, _), r) in delete.into_iter().zip(results) {
                self.audit("user", name_of(&id), Some(k.to_string()), "delete", Some(json!({"user_id": id})), None, op_answer(&r));
                match r {
                    Ok(()) => {
                        self.report.users.deleted += 1;
                        forget.push(k);
                    }
                    Err(message) => {
                        self.report.users.failed += 1;
                        self.fail(Some(RetryTarget::User { subject: k.clone() }), format!("subject {k}"), &message);
                    }
                }
            }
        }
        self.store.forget_users(self.provisioner, &forget).await?;
        if !park.is_empty() {
            self.store.record(self.provisioner, &[], &park, &[]).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duoprov_duo::ErrorKind;

    #[test]
    fn duo_403_text_is_recognised_as_a_missing_permission_and_other_errors_are_not() {
        let forbidden = DuoError::new("POST /admin/v1/groups", ErrorKind::Forbidden { code: Some(40301), message: "Access forbidden".into() });
        assert!(is_forbidden(&forbidden.to_string()), "{forbidden}");
        let not_found = DuoError::new("POST /admin/v1/users/DU1", ErrorKind::NotFound { code: Some(40401), message: "Resource not found".into() });
        assert!(!is_forbidden(&not_found.to_string()), "{not_found}");
    }
}
