//! A membership phase larger than one window of operations (the applier builds, sends, records
//! and audits memberships a window at a time so an initial sync of a million memberships never
//! holds them all at once): every operation of every window reaches Duo, has its state recorded
//! (a second plan is empty) and one audit entry with Duo's answer, and the run report counts
//! each once — for additions and for removals, including a last, partial window. A run that
//! loses its runner lock stops before its next window, with the windows sent so far recorded. A
//! window is recorded while the next is sent, and every window is recorded by the run's end.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use duoprov_duo::DuoClient;
use duoprov_emulator::{EmulatorHandle, RunningEmulator};
use duoprov_model::{GroupMember, GroupName, SubjectKey, SubjectPatch};
use duoprov_plan::safety::Approval;
use duoprov_registry::{AuditFilter, NodeAttrs, OpenOptions, Store};
use duoprov_sync::{FenceHandle, NoProgress, RunReport, SyncError, SyncOptions, SyncSettings};

const IKEY: &str = "DIWINDOWS00000000001";
const SKEY: &str = "membership-windows-test-secret-key-01234";
const GROUPS: usize = 50;
const SUBJECTS: usize = 110;

fn group(i: usize) -> GroupName {
    GroupName::parse(&format!("app:duo:g{i:02}")).unwrap()
}

fn subject(i: usize) -> SubjectKey {
    SubjectKey::local(format!("s{i:03}"))
}

fn pairs(handle: &EmulatorHandle) -> BTreeSet<(String, String)> {
    let dump = handle.state();
    dump.groups
        .iter()
        .flat_map(|g| dump.users.iter().filter(|u| u.groups.contains(&g.group_id)).map(|u| (g.name.clone(), u.username.clone())).collect::<Vec<_>>())
        .collect()
}

async fn sync(store: &dyn Store, duo: &DuoClient, settings: &SyncSettings) -> RunReport {
    let prepared = duoprov_sync::prepare(store, duo, settings).await.unwrap_or_else(|e| panic!("prepare: {e}"));
    let options = SyncOptions { dry_run: false, approval: Approval::exactly(&prepared.plan), saved: None, fence: None, ..Default::default() };
    duoprov_sync::run(store, duo, settings, prepared, &options, &NoProgress).await.unwrap_or_else(|e| panic!("run: {e}"))
}

async fn membership_audit_entries(store: &dyn Store, action: &str) -> usize {
    let entries = store.audit_entries(&AuditFilter { provisioner: Some("p".into()), ..Default::default() }).await.unwrap();
    entries.iter().filter(|e| e.object_kind == "membership" && e.action == action && e.duo_status.as_deref() == Some("OK")).count()
}

struct Env {
    emulator: RunningEmulator,
    handle: EmulatorHandle,
    duo: DuoClient,
    store: Box<dyn Store>,
    settings: SyncSettings,
}

/// 110 subjects in each of 50 groups selected for provisioner `p`; Duo empty.
async fn setup() -> Env {
    let emulator = common::unlimited_emulator(IKEY, SKEY).await;
    let handle = emulator.handle().clone();
    let duo = common::unpaced_client(&emulator, IKEY, SKEY);
    let store = duoprov_registry::open("sqlite::memory:", &OpenOptions::default()).await.unwrap();
    for i in 0..SUBJECTS {
        let patch = SubjectPatch { login_id: Some(Some(format!("u{i:03}"))), ..Default::default() };
        store.upsert_subject(&subject(i), &patch).await.unwrap();
    }
    for g in 0..GROUPS {
        store.add_group(&group(g), &NodeAttrs::default(), true).await.unwrap();
        let members: Vec<GroupMember> = (0..SUBJECTS).map(|i| GroupMember::Subject(subject(i))).collect();
        store.add_members(&group(g), &members).await.unwrap();
    }
    store.assign_marker(&common::app_duo_marker("p")).await.unwrap();
    let settings = common::settings("p", 4);
    Env { emulator, handle, duo, store, settings }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memberships_over_several_windows_all_reach_duo_and_are_recorded_and_audited_once() {
    let Env { emulator, handle, duo, store, settings } = setup().await;
    // 5 500 additions: a full window and a partial one.
    let first = sync(&*store, &duo, &settings).await;
    assert!(first.failures.is_empty(), "{:?}", first.failures);
    assert_eq!(first.memberships.created, GROUPS * SUBJECTS);
    let want: BTreeSet<(String, String)> = (0..GROUPS).flat_map(|g| (0..SUBJECTS).map(move |i| (format!("g{g:02}"), format!("u{i:03}")))).collect();
    assert_eq!(pairs(&handle), want);
    assert_eq!(membership_audit_entries(&*store, "add").await, GROUPS * SUBJECTS);

    // 5 100 removals (102 subjects leave every group), again over two windows, and the last
    // subject's re-selection is untouched.
    for g in 0..GROUPS {
        let leaving: Vec<GroupMember> = (0..102).map(|i| GroupMember::Subject(subject(i))).collect();
        store.remove_members(&group(g), &leaving).await.unwrap();
    }
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    let options = SyncOptions { dry_run: false, approval: Approval::exactly(&prepared.plan), saved: None, fence: None, ..Default::default() };
    let second = duoprov_sync::run(&*store, &duo, &settings, prepared, &options, &NoProgress).await.unwrap_or_else(|e| panic!("run: {e}"));
    assert!(second.failures.is_empty(), "{:?}", second.failures);
    assert_eq!(second.memberships.deleted, GROUPS * 102);
    let want: BTreeSet<(String, String)> = (0..GROUPS).flat_map(|g| (102..SUBJECTS).map(move |i| (format!("g{g:02}"), format!("u{i:03}")))).collect();
    assert_eq!(pairs(&handle), want);
    assert_eq!(membership_audit_entries(&*store, "remove").await, GROUPS * 102);

    // Every state was recorded: nothing is left to plan.
    let again = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    assert!(again.plan.ops.is_empty(), "a third plan is not empty: {} operations", again.plan.ops.len());
    emulator.shutdown().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_loses_its_lock_between_membership_windows_stops_with_the_first_window_recorded() {
    let Env { emulator, handle, duo, store, settings } = setup().await;
    // Held until Duo holds a membership: through every phase before memberships and the first
    // window, lost before the second.
    let fence = FenceHandle(Arc::new(HeldWhileNoMembership(handle.clone())));
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    let options = SyncOptions { dry_run: false, approval: Approval::exactly(&prepared.plan), fence: Some(fence), ..Default::default() };
    let err = duoprov_sync::run(&*store, &duo, &settings, prepared, &options, &NoProgress).await.expect_err("the run must stop");
    assert!(matches!(&err, SyncError::LockLost { phase, .. } if phase == "changing memberships"), "{err}");
    // Exactly the first window reached Duo, and each of its memberships was recorded and audited.
    assert_eq!(pairs(&handle).len(), 5_000);
    assert_eq!(membership_audit_entries(&*store, "add").await, 5_000);
    let next = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    let adds = next.plan.ops.iter().filter(|o| matches!(o.op, duoprov_plan::Op::AddMember { .. })).count();
    assert_eq!(adds, GROUPS * SUBJECTS - 5_000, "the next run plans only what the stopped run did not send");
    emulator.shutdown().await.ok();
}

/// A runner lock held while Duo holds no membership.
struct HeldWhileNoMembership(EmulatorHandle);

#[async_trait::async_trait]
impl duoprov_sync::Fence for HeldWhileNoMembership {
    async fn held(&self) -> bool {
        self.0.state().users.iter().all(|u| u.groups.is_empty())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_membership_window_is_sent_before_the_previous_one_is_recorded_and_all_are_recorded_by_the_end() {
    let Env { emulator, handle, duo, store, settings } = setup().await;
    let store: Arc<dyn Store> = Arc::from(store);
    // A lock that stays held and, when asked before the second window (the first time Duo
    // holds memberships), notes what Duo and the registry held then.
    let seen = Arc::new(std::sync::Mutex::new(None));
    let fence = FenceHandle(Arc::new(NotesFirstWindow { handle: handle.clone(), store: store.clone(), seen: seen.clone() }));
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    let options = SyncOptions { dry_run: false, approval: Approval::exactly(&prepared.plan), fence: Some(fence), ..Default::default() };
    let report = duoprov_sync::run(&*store, &duo, &settings, prepared, &options, &NoProgress).await.unwrap_or_else(|e| panic!("run: {e}"));
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    // Before the second window was sent, Duo held the first window and the registry had not yet
    // recorded it: its recording runs alongside the second window's calls.
    let (in_duo, audited) = seen.lock().unwrap().expect("the lock was asked before the second window");
    assert_eq!((in_duo, audited), (5_000, 0));
    // By the end every window is recorded and audited: nothing left to plan.
    assert_eq!(membership_audit_entries(&*store, "add").await, GROUPS * SUBJECTS);
    let again = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    assert!(again.plan.ops.is_empty(), "a second plan is not empty: {} operations", again.plan.ops.len());
    emulator.shutdown().await.ok();
}

/// A runner lock always held that, the first time it is asked while Duo holds memberships,
/// notes how many Duo holds and how many membership additions the registry has audited.
struct NotesFirstWindow {
    handle: EmulatorHandle,
    store: Arc<dyn Store>,
    seen: Arc<std::sync::Mutex<Option<(usize, usize)>>>,
}

#[async_trait::async_trait]
impl duoprov_sync::Fence for NotesFirstWindow {
    async fn held(&self) -> bool {
        let in_duo: usize = self.handle.state().users.iter().map(|u| u.groups.len()).sum();
        if in_duo > 0 && self.seen.lock().unwrap().is_none() {
            let audited = membership_audit_entries(&*self.store, "add").await;
            *self.seen.lock().unwrap() = Some((in_duo, audited));
        }
        true
    }
}
