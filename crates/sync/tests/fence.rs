//! Fencing against the emulator: a run whose runner lock is lost stops before its next apply
//! phase, sends nothing more to Duo, and is recorded as interrupted; the next run converges from
//! Duo as it is, without creating anything twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use duoprov_duo::{DuoClient, DuoConfig, PacingConfig, RetryConfig};
use duoprov_emulator::{Emulator, Integration};
use duoprov_model::{FolderPath, GroupMember, GroupName, Marker, MarkerScope, MarkerTarget, SubjectKey, SubjectPatch};
use duoprov_plan::{Mapping, MappingConfig, Policy};
use duoprov_registry::{NodeAttrs, OpenOptions};
use duoprov_sync::{Fence, FenceHandle, NoProgress, SyncError, SyncOptions, SyncSettings};

const IKEY: &str = "DIFENCE0000000000001";
const SKEY: &str = "fence-test-secret-key-0123456789abcdefgh";

/// Held for the first `held_for` checks, lost after.
struct LosesAfter {
    held_for: usize,
    checks: AtomicUsize,
}

#[async_trait::async_trait]
impl Fence for LosesAfter {
    async fn held(&self) -> bool {
        self.checks.fetch_add(1, Ordering::SeqCst) < self.held_for
    }
}

#[tokio::test]
async fn a_run_that_loses_its_runner_lock_stops_before_the_next_phase_and_the_next_run_converges() {
    // The client is unpaced and this test is not about rate limits: the minute-wide burst it
    // was written against.
    let emulator = Emulator::builder()
        .integration(Integration::new(IKEY, SKEY))
        .configure(|s| s.rate_limits.burst_fraction = Some(1.0))
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator");
    let handle = emulator.handle().clone();
    let mut cfg = DuoConfig::new("127.0.0.1", IKEY, SKEY.to_owned().into());
    cfg.url = Some(emulator.base_url());
    cfg.pacing = PacingConfig::unlimited();
    cfg.retry = RetryConfig { initial_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(40), max_jitter: Duration::ZERO, max_server_retries: 3 };
    let duo = DuoClient::new(cfg).expect("client");
    let store = duoprov_registry::open("sqlite::memory:", &OpenOptions::default()).await.unwrap();
    for g in 0..2 {
        let name = GroupName::parse(&format!("app:duo:g{g}")).unwrap();
        store.add_group(&name, &NodeAttrs::default(), true).await.unwrap();
        for s in 0..3 {
            let key = SubjectKey::local(format!("s{g}{s}"));
            let patch = SubjectPatch { login_id: Some(Some(format!("u{g}{s}"))), ..Default::default() };
            store.upsert_subject(&key, &patch).await.unwrap();
            store.add_member(&name, &GroupMember::Subject(key)).await.unwrap();
        }
    }
    let marker = Marker { provisioner: "fenced".into(), target: MarkerTarget::Folder(FolderPath::parse("app:duo").unwrap()), scope: MarkerScope::Sub, provision: true };
    store.assign_marker(&marker).await.unwrap();
    let settings = SyncSettings {
        provisioner: "fenced".into(),
        policy: Policy::default(),
        mapping: Arc::new(Mapping::compile(&MappingConfig::default(), "fenced").unwrap()),
        eligible_group: None,
        subject_sources: None,
        concurrency: 2,
        incremental: Default::default(),
        load_duo_users: false,
        shares_duo_with: Vec::new(),
        sync_back: None,
        selection_rules: Default::default(),
    };

    // Held while matches are recorded and groups created; lost before users are created.
    let fence = FenceHandle(Arc::new(LosesAfter { held_for: 2, checks: AtomicUsize::new(0) }));
    let options = SyncOptions { fence: Some(fence), ..Default::default() };
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    assert_eq!(prepared.plan.ops.iter().filter(|o| matches!(o.op, duoprov_plan::Op::CreateUser { .. })).count(), 6);
    let err = duoprov_sync::run(&*store, &duo, &settings, prepared, &options, &NoProgress).await.expect_err("the run must stop");
    match &err {
        SyncError::LockLost { provisioner, phase } => {
            assert_eq!(provisioner, "fenced");
            assert_eq!(phase, "creating users");
        }
        other => panic!("expected LockLost, got {other:?}"),
    }
    assert!(err.to_string().contains("no longer holds the runner lock"), "{err}");
    let dump = handle.state();
    assert_eq!(dump.groups.len(), 2, "the phase before the loss ran");
    assert!(dump.users.is_empty(), "nothing was sent after the lock was lost: {:?}", dump.users);
    let runs = store.runs(Some("fenced"), 10).await.unwrap();
    assert_eq!(runs[0].status, duoprov_registry::RunStatus::Interrupted, "the run is recorded as interrupted: {:?}", runs[0]);
    assert!(runs[0].message.as_deref().is_some_and(|m| m.contains("creating users")), "{:?}", runs[0].message);
    assert!(store.checkpoint("fenced").await.unwrap().is_none(), "an interrupted run does not move the checkpoint");

    // The next run (lock held) converges: the groups are its own, not created again.
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    assert!(!prepared.plan.ops.iter().any(|o| matches!(o.op, duoprov_plan::Op::CreateGroup { .. })), "{:?}", prepared.plan.ops);
    duoprov_sync::run(&*store, &duo, &settings, prepared, &SyncOptions::default(), &NoProgress).await.unwrap();
    let dump = handle.state();
    assert_eq!((dump.groups.len(), dump.users.len()), (2, 6));
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
    let marker = Marker { provisioner: "mem".into(), target: MarkerTarget::Folder(FolderPath::parse("app:duo").unwrap()), scope: MarkerScope::Sub, provision: true };
    store.assign_marker(&marker).await.unwrap();
    let mut settings = SyncSettings {
        provisioner: "mem".into(),
        policy: Policy::default(),
        mapping: Arc::new(Mapping::compile(&MappingConfig::default(), "mem").unwrap()),
        eligible_group: None,
        subject_sources: None,
        concurrency: 2,
        incremental: Default::default(),
        load_duo_users: false,
        shares_duo_with: Vec::new(),
        sync_back: None,
        selection_rules: Default::default(),
    };
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
