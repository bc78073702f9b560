//! Fencing against the emulator: a run whose runner lock is lost while groups are created (the
//! group stream, write class) alongside users (the bulk stream) sends at most one batch more of
//! each stream — the one under way when the lock went — records and audits what it sent, stops
//! with `LockLost` and is recorded as interrupted; no membership is sent; the next run converges
//! from Duo as it is, without creating anything twice.

mod common;

use std::sync::{Arc, Mutex};

use duoprov_duo::{DuoClient, DuoConfig, PacingConfig};
use duoprov_emulator::{Emulator, EmulatorHandle, Integration};
use duoprov_model::{GroupMember, GroupName, SubjectKey, SubjectPatch};
use duoprov_plan::Op;
use duoprov_registry::{AuditFilter, NodeAttrs, OpenOptions};
use duoprov_sync::{FenceHandle, NoProgress, SyncError, SyncOptions};

const IKEY: &str = "DIFENCE0000000000001";
const SKEY: &str = "fence-test-secret-key-0123456789abcdefgh";
/// Group creates per batch and users per batch of user creates, as the applier sends them.
const GROUP_BATCH: usize = 50;
const USER_BATCH: usize = 1200;
/// More groups and users than one batch of each.
const GROUPS: usize = 60;
const USERS_PER_GROUP: usize = 25;

/// A runner lock lost as soon as Duo holds a group (while the first batch of group creates is
/// under way); notes how many groups and users Duo held when it first answered "lost".
struct LostOnceDuoHoldsAGroup {
    handle: EmulatorHandle,
    at_loss: Mutex<Option<(usize, usize)>>,
}

#[async_trait::async_trait]
impl duoprov_sync::Fence for LostOnceDuoHoldsAGroup {
    async fn held(&self) -> bool {
        let dump = self.handle.state();
        if dump.groups.is_empty() {
            return true;
        }
        self.at_loss.lock().unwrap().get_or_insert((dump.groups.len(), dump.users.len()));
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_loses_its_runner_lock_sends_at_most_one_more_batch_of_each_stream_records_it_and_the_next_run_converges() {
    let emulator = common::unlimited_emulator(IKEY, SKEY).await;
    let handle = emulator.handle().clone();
    let duo = common::unpaced_client(&emulator, IKEY, SKEY);
    let store = duoprov_registry::open("sqlite::memory:", &OpenOptions::default()).await.unwrap();
    for g in 0..GROUPS {
        let name = GroupName::parse(&format!("app:duo:g{g:02}")).unwrap();
        store.add_group(&name, &NodeAttrs::default(), true).await.unwrap();
        let mut members = Vec::new();
        for s in 0..USERS_PER_GROUP {
            let key = SubjectKey::local(format!("s{g:02}{s:02}"));
            let patch = SubjectPatch { login_id: Some(Some(format!("u{g:02}{s:02}"))), ..Default::default() };
            store.upsert_subject(&key, &patch).await.unwrap();
            members.push(GroupMember::Subject(key));
        }
        store.add_members(&name, &members).await.unwrap();
    }
    store.assign_marker(&common::app_duo_marker("fenced")).await.unwrap();
    let settings = common::settings("fenced", 4);

    let fence = Arc::new(LostOnceDuoHoldsAGroup { handle: handle.clone(), at_loss: Mutex::new(None) });
    let options = SyncOptions { fence: Some(FenceHandle(fence.clone())), ..Default::default() };
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    let users = GROUPS * USERS_PER_GROUP;
    assert_eq!(prepared.plan.ops.iter().filter(|o| matches!(o.op, Op::CreateUser { .. })).count(), users);
    let err = duoprov_sync::run(&*store, &duo, &settings, prepared, &options, &NoProgress).await.expect_err("the run must stop");
    let SyncError::LockLost { provisioner, phase } = &err else { panic!("expected LockLost, got {err:?}") };
    assert_eq!(provisioner, "fenced");
    // The stream that asked first names the step it did not start.
    assert!(["creating groups", "creating users", "restoring users", "changing memberships"].contains(&phase.as_str()), "{phase}");
    assert!(err.to_string().contains("no longer holds the runner lock"), "{err}");
    let (groups_at_loss, users_at_loss) = fence.at_loss.lock().unwrap().expect("the lock was lost");
    let dump = handle.state();
    // Each stream sent at most the batch under way when the lock went.
    assert!(dump.groups.len() <= groups_at_loss + GROUP_BATCH && dump.groups.len() < GROUPS, "{} groups ({groups_at_loss} at the loss)", dump.groups.len());
    assert!(dump.users.len() <= users_at_loss + USER_BATCH && dump.users.len() < users, "{} users ({users_at_loss} at the loss)", dump.users.len());
    assert!(dump.users.iter().all(|u| u.groups.is_empty()), "no membership is sent once the lock is lost");
    // What was sent is recorded (every Duo object is linked by its id) and audited.
    let links = store.links("fenced").await.unwrap();
    for g in &dump.groups {
        assert!(links.groups.iter().any(|l| l.duo_group_id.as_deref() == Some(g.group_id.as_str()) && l.in_target), "group {} is not recorded", g.name);
    }
    for u in &dump.users {
        assert!(links.users.iter().any(|l| l.duo_user_id.as_deref() == Some(u.user_id.as_str()) && l.in_target), "user {} is not recorded", u.username);
    }
    let audit = store.audit_entries(&AuditFilter { provisioner: Some("fenced".into()), ..Default::default() }).await.unwrap();
    let created = |kind: &str| audit.iter().filter(|e| e.object_kind == kind && e.action == "create" && e.duo_status.as_deref() == Some("OK")).count();
    assert_eq!((created("group"), created("user")), (dump.groups.len(), dump.users.len()), "one audit entry per create sent");
    let runs = store.runs(Some("fenced"), 10).await.unwrap();
    assert_eq!(runs[0].status, duoprov_registry::RunStatus::Interrupted, "the run is recorded as interrupted: {:?}", runs[0]);
    assert!(runs[0].message.as_deref().is_some_and(|m| m.contains(&format!("stopped before {phase}"))), "{:?}", runs[0].message);
    assert!(store.checkpoint("fenced").await.unwrap().is_none(), "an interrupted run does not move the checkpoint");

    // The next run (lock held) converges: what the stopped run created is its own, not created again.
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    let creates = |f: fn(&Op) -> bool| prepared.plan.ops.iter().filter(|o| f(&o.op)).count();
    assert_eq!(creates(|o| matches!(o, Op::CreateGroup { .. })), GROUPS - dump.groups.len());
    assert_eq!(creates(|o| matches!(o, Op::CreateUser { .. })), users - dump.users.len());
    duoprov_sync::run(&*store, &duo, &settings, prepared, &SyncOptions::default(), &NoProgress).await.unwrap();
    let dump = handle.state();
    assert_eq!((dump.groups.len(), dump.users.len()), (GROUPS, users));
    assert!(dump.users.iter().all(|u| u.groups.len() == 1), "every user in its group");
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    assert!(prepared.plan.ops.is_empty(), "{:?}", prepared.plan.ops);
    emulator.shutdown().await.ok();
}

#[tokio::test]
async fn a_full_prepare_keeps_the_raw_duo_users_only_when_the_duo_users_table_is_refreshed() {
    let emulator = Emulator::builder().integration(Integration::new(IKEY, SKEY)).configure(|s| s.rate_limits.enabled = false).spawn_on("127.0.0.1:0").await.expect("emulator");
    let mut cfg = DuoConfig::new("127.0.0.1", IKEY, SKEY.to_owned().into());
    cfg.url = Some(emulator.base_url());
    cfg.pacing = PacingConfig::unlimited();
    let duo = DuoClient::new(cfg).expect("client");
    let store = duoprov_registry::open("sqlite::memory:", &OpenOptions::default()).await.unwrap();
    let name = GroupName::parse("app:duo:g0").unwrap();
    store.add_group(&name, &NodeAttrs::default(), true).await.unwrap();
    for s in 0..3 {
        let key = SubjectKey::local(format!("s{s}"));
        store.upsert_subject(&key, &SubjectPatch { login_id: Some(Some(format!("u{s}"))), ..Default::default() }).await.unwrap();
        store.add_member(&name, &GroupMember::Subject(key)).await.unwrap();
    }
    store.assign_marker(&common::app_duo_marker("mem")).await.unwrap();
    let mut settings = common::settings("mem", 2);
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    duoprov_sync::run(&*store, &duo, &settings, prepared, &SyncOptions::default(), &NoProgress).await.unwrap();

    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    assert!(prepared.plan.ops.is_empty(), "{:?}", prepared.plan.ops);
    assert!(prepared.duo_users.is_empty(), "raw Duo users kept though nothing needs them: {}", prepared.duo_users.len());
    settings.load_duo_users = true;
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    let mut names: Vec<&str> = prepared.duo_users.iter().map(|u| u.username.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["u0", "u1", "u2"], "the Duo users table needs every user as read");
    emulator.shutdown().await.ok();
}
