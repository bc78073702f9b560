//! The sync-state role ([`SyncStore`]) held in memory: links, membership state, the run log, the
//! checkpoint, the retry list and the runner lock, with the semantics of the SQL store (the same
//! contract tests run against both). For tests and tools that need a sync-state store without a
//! database; nothing survives the process, and the runner lock excludes holders within it only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use duoprov_model::{EpochMillis, GroupLink, Links, SubjectKey, UserLink};

use crate::error::Result;
use crate::sync_state::{
    ChangeWaker, Checkpoint, GroupState, LockHolder, MembershipState, ObjectErrorRecord, RetryRecord, RetryTarget, RunKind, RunRecord, RunStatus, RunnerLock, Settlement,
    StateError, SyncStore, UserState,
};

/// What is recorded about one object: the fields every link and membership row shares.
#[derive(Debug, Clone, Default)]
struct Row {
    duo_id: Option<String>,
    in_target: bool,
    created_by_us: bool,
    first_provisioned: Option<EpochMillis>,
    last_provisioned: Option<EpochMillis>,
    error: Option<(StateError, EpochMillis)>,
    pending_name: Option<String>,
    pending_at: Option<EpochMillis>,
}

impl Row {
    /// The id and intent rules of [`GroupState`] (links only): an intent clears the id, an id
    /// clears the intent, a state with neither keeps the id and clears the intent.
    fn link(&mut self, fresh: bool, duo_id: Option<&String>, pending_name: Option<&String>, pending_at: Option<EpochMillis>) {
        if fresh {
            self.duo_id = duo_id.cloned();
            self.pending_name = pending_name.cloned();
            self.pending_at = pending_at;
        } else {
            self.duo_id = if pending_name.is_some() { None } else { duo_id.cloned().or(self.duo_id.take()) };
            self.pending_name = if duo_id.is_some() { None } else { pending_name.cloned() };
            self.pending_at = if duo_id.is_some() || pending_name.is_none() { None } else { pending_at };
        }
    }

    /// The outcome of one record: the first provisioned time kept, the last one moved, the error
    /// replaced (stamped `now`) or cleared.
    fn outcome(&mut self, fresh: bool, provisioned_at: Option<EpochMillis>, error: &Option<StateError>, now: EpochMillis) {
        self.first_provisioned = if fresh { provisioned_at } else { self.first_provisioned.or(provisioned_at) };
        self.last_provisioned = provisioned_at.or(self.last_provisioned);
        self.error = error.clone().map(|e| (e, now));
    }
}

type Subject = (String, String);

fn subject_of(k: &SubjectKey) -> Subject {
    (k.source.clone(), k.id.clone())
}

/// A retry row: keyed like the SQL table, by (group uuid, source, subject id).
#[derive(Debug, Clone)]
struct Retry {
    attempts: u32,
    next_at: EpochMillis,
    last_error: String,
    whole_group: bool,
}

#[derive(Default)]
struct State {
    groups: BTreeMap<(String, String), Row>,
    users: BTreeMap<(String, Subject), Row>,
    memberships: BTreeMap<(String, String, Subject), Row>,
    runs: Vec<RunRecord>,
    checkpoints: HashMap<String, Checkpoint>,
    retries: BTreeMap<(String, String, String, String), Retry>,
}

/// A [`SyncStore`] in memory.
#[derive(Default)]
pub struct MemorySyncStore {
    state: Mutex<State>,
    /// Runner-lock keys held, shared with their [`RunnerLock`]s (which release them on drop).
    locks: Arc<Mutex<HashSet<String>>>,
}

impl MemorySyncStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves whole rows behind (every write is a whole
        // statement's worth): carry on with them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A held key of [`MemorySyncStore::locks`].
struct MemoryLock {
    key: String,
    locks: Arc<Mutex<HashSet<String>>>,
}

#[async_trait]
impl LockHolder for MemoryLock {
    async fn alive(&mut self) -> bool {
        true
    }
}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.key);
    }
}

#[async_trait]
impl SyncStore for MemorySyncStore {
    async fn links(&self, provisioner: &str) -> Result<Links> {
        let st = self.state();
        let groups = st
            .groups
            .iter()
            .filter(|((p, _), _)| p == provisioner)
            .map(|((_, uuid), r)| GroupLink {
                pending_name: r.pending_name.clone(),
                pending_at: r.pending_at,
                group_uuid: uuid.clone(),
                duo_group_id: r.duo_id.clone(),
                created_by_us: r.created_by_us,
                in_target: r.in_target,
            })
            .collect();
        let users = st
            .users
            .iter()
            .filter(|((p, _), _)| p == provisioner)
            .map(|((_, (source, id)), r)| UserLink {
                pending_name: r.pending_name.clone(),
                pending_at: r.pending_at,
                subject: SubjectKey::new(source.clone(), id.clone()),
                duo_user_id: r.duo_id.clone(),
                created_by_us: r.created_by_us,
                in_target: r.in_target,
            })
            .collect();
        Ok(Links { groups, users, ..Default::default() })
    }

    async fn record(&self, provisioner: &str, groups: &[GroupState], users: &[UserState], memberships: &[MembershipState]) -> Result<()> {
        let now = EpochMillis::now();
        let mut st = self.state();
        for g in groups {
            let key = (provisioner.to_owned(), g.group_uuid.clone());
            let fresh = !st.groups.contains_key(&key);
            let row = st.groups.entry(key).or_default();
            row.link(fresh, g.duo_group_id.as_ref(), g.pending_name.as_ref(), g.pending_at);
            row.outcome(fresh, g.provisioned_at, &g.error, now);
            row.in_target = g.in_target;
            row.created_by_us = g.created_by_us;
        }
        for u in users {
            let key = (provisioner.to_owned(), subject_of(&u.subject));
            let fresh = !st.users.contains_key(&key);
            let row = st.users.entry(key).or_default();
            row.link(fresh, u.duo_user_id.as_ref(), u.pending_name.as_ref(), u.pending_at);
            row.outcome(fresh, u.provisioned_at, &u.error, now);
            row.in_target = u.in_target;
            row.created_by_us = u.created_by_us;
        }
        for m in memberships {
            let key = (provisioner.to_owned(), m.group_uuid.clone(), subject_of(&m.subject));
            let fresh = !st.memberships.contains_key(&key);
            let row = st.memberships.entry(key).or_default();
            row.outcome(fresh, m.provisioned_at, &m.error, now);
            row.in_target = m.in_target;
        }
        Ok(())
    }

    async fn forget_groups(&self, provisioner: &str, uuids: &[String]) -> Result<()> {
        let mut st = self.state();
        for uuid in uuids {
            st.groups.remove(&(provisioner.to_owned(), uuid.clone()));
            st.memberships.retain(|(p, g, _), _| !(p == provisioner && g == uuid));
        }
        Ok(())
    }

    async fn forget_users(&self, provisioner: &str, subjects: &[SubjectKey]) -> Result<()> {
        let mut st = self.state();
        for s in subjects {
            let subject = subject_of(s);
            st.users.remove(&(provisioner.to_owned(), subject.clone()));
            st.memberships.retain(|(p, _, m), _| !(p == provisioner && *m == subject));
        }
        Ok(())
    }

    async fn begin_run(&self, provisioner: &str, kind: RunKind, dry_run: bool) -> Result<i64> {
        let mut st = self.state();
        // One runner per provisioner: a run still marked running was cut short.
        for r in st.runs.iter_mut().filter(|r| r.provisioner == provisioner && r.status == RunStatus::Running) {
            r.status = RunStatus::Interrupted;
        }
        let id = st.runs.iter().map(|r| r.id).max().unwrap_or(0) + 1;
        st.runs.push(RunRecord {
            id,
            provisioner: provisioner.to_owned(),
            kind,
            dry_run,
            started_at_ms: EpochMillis::now(),
            finished_at_ms: None,
            status: RunStatus::Running,
            counts: serde_json::json!({}),
            timings: serde_json::json!({}),
            message: None,
        });
        Ok(id)
    }

    async fn finish_run(&self, run_id: i64, status: RunStatus, counts: &serde_json::Value, timings: &serde_json::Value, message: Option<&str>) -> Result<()> {
        let mut st = self.state();
        if let Some(r) = st.runs.iter_mut().find(|r| r.id == run_id) {
            r.finished_at_ms = Some(EpochMillis::now());
            r.status = status;
            r.counts = counts.clone();
            r.timings = timings.clone();
            r.message = message.map(str::to_owned);
        }
        Ok(())
    }

    async fn runs(&self, provisioner: Option<&str>, limit: u32) -> Result<Vec<RunRecord>> {
        let st = self.state();
        Ok(st.runs.iter().rev().filter(|r| provisioner.is_none_or(|p| r.provisioner == p)).take(limit as usize).cloned().collect())
    }

    async fn object_errors(&self, provisioner: &str, limit: u32) -> Result<Vec<ObjectErrorRecord>> {
        let st = self.state();
        let record = |kind: &str, object: String, r: &Row| {
            r.error.as_ref().map(|(e, at)| ObjectErrorRecord { kind: kind.to_owned(), object, code: e.code.clone(), message: e.message.clone(), at_ms: *at })
        };
        let mut errors: Vec<ObjectErrorRecord> = Vec::new();
        errors.extend(st.groups.iter().filter(|((p, _), _)| p == provisioner).filter_map(|((_, uuid), r)| record("group", uuid.clone(), r)));
        errors.extend(st.users.iter().filter(|((p, _), _)| p == provisioner).filter_map(|((_, (so, id)), r)| record("user", format!("{so}:{id}"), r)));
        errors.extend(
            st.memberships.iter().filter(|((p, _, _), _)| p == provisioner).filter_map(|((_, g, (so, id)), r)| record("membership", format!("{g} {so}:{id}"), r)),
        );
        // Newest first (a stable sort: among equal times, groups, users, then memberships).
        errors.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
        errors.truncate(limit as usize);
        Ok(errors)
    }

    async fn checkpoint(&self, provisioner: &str) -> Result<Option<Checkpoint>> {
        Ok(self.state().checkpoints.get(provisioner).cloned())
    }

    async fn settle(&self, provisioner: &str, s: &Settlement<'_>) -> Result<()> {
        let mut st = self.state();
        if let Some(seq) = s.checkpoint {
            let cp = st.checkpoints.entry(provisioner.to_owned()).or_insert(Checkpoint { last_seq: seq, updated_at_ms: s.now_ms, last_full_ms: None, last_incremental_ms: None });
            // The checkpoint never moves back.
            cp.last_seq = cp.last_seq.max(seq);
            cp.updated_at_ms = s.now_ms;
            match s.kind {
                RunKind::Full => cp.last_full_ms = Some(s.now_ms),
                RunKind::Incremental => cp.last_incremental_ms = Some(s.now_ms),
                // An object run settles no checkpoint (it is given none); nothing to stamp.
                RunKind::Object => {}
            }
        }
        let key = |t: &RetryTarget| {
            let (g, so, id) = t.columns();
            (provisioner.to_owned(), g.to_owned(), so.to_owned(), id.to_owned())
        };
        // Consecutive failures so far, for the objects failing again (read before any row goes).
        // A group row and its whole-group form are one row: their failures count together.
        let previous: HashMap<(String, String, String, String), u32> = st.retries.iter().filter(|((p, ..), _)| p == provisioner).map(|(k, r)| (k.clone(), r.attempts)).collect();
        if s.clear_all {
            st.retries.retain(|(p, ..), _| p != provisioner);
        } else {
            for t in s.attempted {
                st.retries.remove(&key(t));
            }
        }
        for (t, message) in s.failed {
            let k = key(t);
            let attempts = previous.get(&k).copied().unwrap_or(0).saturating_add(1);
            let next_at = s.now_ms.plus_ms(s.backoff.delay_ms(attempts));
            // Once a group's row asks for its whole membership, it keeps asking until attempted.
            let whole_group = t.whole_group() || st.retries.get(&k).is_some_and(|r| r.whole_group);
            st.retries.insert(k, Retry { attempts, next_at, last_error: message.clone(), whole_group });
        }
        Ok(())
    }

    async fn retries(&self, provisioner: &str, due_at_ms: Option<EpochMillis>) -> Result<Vec<RetryRecord>> {
        let st = self.state();
        let mut rows: Vec<RetryRecord> = st
            .retries
            .iter()
            .filter(|((p, ..), r)| p == provisioner && due_at_ms.is_none_or(|due| r.next_at <= due))
            .map(|((_, g, so, id), r)| RetryRecord {
                target: RetryTarget::from_columns(g.clone(), so.clone(), id.clone(), r.whole_group),
                attempts: r.attempts,
                next_at_ms: r.next_at,
                last_error: r.last_error.clone(),
            })
            .collect();
        // Soonest first, then by the key (the map's order), as the SQL store orders them.
        rows.sort_by_key(|r| r.next_at_ms);
        Ok(rows)
    }

    async fn try_lock_runner(&self, key: &str) -> Result<Option<RunnerLock>> {
        let mut held = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if !held.insert(key.to_owned()) {
            return Ok(None);
        }
        Ok(Some(RunnerLock::new(Box::new(MemoryLock { key: key.to_owned(), locks: Arc::clone(&self.locks) }))))
    }

    async fn change_waker(&self) -> Result<Option<ChangeWaker>> {
        Ok(None)
    }
}
