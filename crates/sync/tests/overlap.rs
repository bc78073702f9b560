//! An initial sync's group creates (write class) run alongside its user creates and memberships
//! (bulk class): the run ends in the state a one-call-at-a-time run (streams one after the other)
//! reaches; no membership addition is sent to a group before the group's create is recorded in
//! the registry (checked by the transport, at the moment each call leaves); the two streams do
//! overlap; and a group whose create fails leaves only its own additions unresolved, for the next
//! run to add.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use duoprov_duo::transport::{HttpRequest, HttpResponse, ReqwestTransport, Transport, TransportError};
use duoprov_duo::{DuoClient, DuoConfig, PacingConfig, RetryConfig};
use duoprov_emulator::{EmulatorHandle, RunningEmulator};
use duoprov_model::{GroupMember, GroupName, SubjectKey, SubjectPatch};
use duoprov_plan::Op;
use duoprov_plan::safety::Approval;
use duoprov_registry::{NodeAttrs, OpenOptions, Store};
use duoprov_sync::{NoProgress, RunReport, SyncOptions, SyncSettings};
use futures::future::BoxFuture;

const IKEY: &str = "DIOVERLAP00000000001";
const SKEY: &str = "overlap-test-secret-key-0123456789abcdef";
/// More groups than two batches of group creates (50 each), so memberships go out while later
/// batches are still being created.
const GROUPS: usize = 120;
const SUBJECTS: usize = 30;
const MEMBERS: usize = 5;

fn group(g: usize) -> GroupName {
    GroupName::parse(&format!("app:duo:g{g:03}")).unwrap()
}

fn subject(i: usize) -> SubjectKey {
    SubjectKey::local(format!("s{i:02}"))
}

/// Group `g`'s members: five subjects, a different five for neighbouring groups.
fn members(g: usize) -> impl Iterator<Item = usize> {
    (0..MEMBERS).map(move |k| (g * 7 + k * 3) % SUBJECTS)
}

/// 120 groups of five members among 30 subjects, selected for provisioner `p`.
async fn registry() -> Arc<dyn Store> {
    let store = duoprov_registry::open("sqlite::memory:", &OpenOptions::default()).await.unwrap();
    for i in 0..SUBJECTS {
        store.upsert_subject(&subject(i), &SubjectPatch { login_id: Some(Some(format!("u{i:02}"))), ..Default::default() }).await.unwrap();
    }
    for g in 0..GROUPS {
        store.add_group(&group(g), &NodeAttrs::default(), true).await.unwrap();
        let m: Vec<GroupMember> = members(g).map(|i| GroupMember::Subject(subject(i))).collect();
        store.add_members(&group(g), &m).await.unwrap();
    }
    store.assign_marker(&common::app_duo_marker("p")).await.unwrap();
    Arc::from(store)
}

/// The expected (group, user) pairs; `except` leaves one group's out.
fn expected(except: Option<&str>) -> BTreeSet<(String, String)> {
    (0..GROUPS)
        .map(|g| (format!("g{g:03}"), g))
        .filter(|(name, _)| Some(name.as_str()) != except)
        .flat_map(|(name, g)| members(g).map(move |i| (name.clone(), format!("u{i:02}"))))
        .collect()
}

fn pairs(handle: &EmulatorHandle) -> BTreeSet<(String, String)> {
    let dump = handle.state();
    dump.groups
        .iter()
        .flat_map(|g| dump.users.iter().filter(|u| u.groups.contains(&g.group_id)).map(|u| (g.name.clone(), u.username.clone())).collect::<Vec<_>>())
        .collect()
}

fn names(handle: &EmulatorHandle) -> (BTreeSet<String>, BTreeSet<String>) {
    let dump = handle.state();
    (dump.groups.iter().map(|g| g.name.clone()).collect(), dump.users.iter().map(|u| u.username.clone()).collect())
}

async fn sync(store: &dyn Store, duo: &DuoClient, settings: &SyncSettings) -> RunReport {
    let prepared = duoprov_sync::prepare(store, duo, settings).await.unwrap_or_else(|e| panic!("prepare: {e}"));
    let options = SyncOptions { approval: Approval::exactly(&prepared.plan), ..Default::default() };
    duoprov_sync::run(store, duo, settings, prepared, &options, &NoProgress).await.unwrap_or_else(|e| panic!("run: {e}"))
}

/// Sequence numbers (emulator call log) of the group creates and of the bulk calls.
fn call_order(handle: &EmulatorHandle) -> (Vec<u64>, Vec<u64>) {
    let calls = handle.calls();
    let creates = calls.iter().filter(|c| c.method == "POST" && c.path == "/admin/v1/groups").map(|c| c.seq).collect();
    let bulk = calls.iter().filter(|c| c.method == "POST" && c.path == "/admin/v1/bulk").map(|c| c.seq).collect();
    (creates, bulk)
}

/// A client of `emulator` whose calls go through `transport`.
fn client_with(emulator: &RunningEmulator, transport: impl FnOnce(&DuoConfig) -> Arc<dyn Transport>) -> DuoClient {
    let mut cfg = DuoConfig::new("127.0.0.1", IKEY, SKEY.to_owned().into());
    cfg.url = Some(emulator.base_url());
    cfg.pacing = PacingConfig::unlimited();
    cfg.retry = RetryConfig {
        initial_backoff: std::time::Duration::from_millis(5),
        max_backoff: std::time::Duration::from_millis(40),
        max_jitter: std::time::Duration::ZERO,
        max_server_retries: 3,
    };
    let t = transport(&cfg);
    DuoClient::with_transport(cfg, t).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_created_alongside_users_and_memberships_end_as_a_run_with_one_call_at_a_time_does() {
    // The same registry synced twice into two empty Duo accounts: with the streams overlapping
    // (concurrency 4: three calls for users and memberships, one for groups) and one after the
    // other (concurrency 1).
    let mut outcomes = Vec::new();
    for concurrency in [4, 1] {
        let emulator = common::unlimited_emulator(IKEY, SKEY).await;
        // Group creates slow enough that later batches are still under way when memberships start.
        emulator.handle().set_faults("latency=3ms on=groups.create").unwrap();
        let duo = common::unpaced_client(&emulator, IKEY, SKEY);
        let store = registry().await;
        let settings = common::settings("p", concurrency);
        let report = sync(&*store, &duo, &settings).await;
        assert!(report.failures.is_empty(), "concurrency {concurrency}: {:?}", report.failures);
        let counts = (report.groups.created, report.users.created, report.memberships.created);
        let (creates, bulk) = call_order(emulator.handle());
        let overlapped = bulk.iter().filter(|b| **b < *creates.last().unwrap()).count();
        let again = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
        assert!(again.plan.ops.is_empty(), "concurrency {concurrency}: a second plan is not empty: {:?}", again.plan.ops.first());
        outcomes.push((names(emulator.handle()), pairs(emulator.handle()), counts, overlapped));
        emulator.shutdown().await.ok();
    }
    let (overlapping, sequential) = (&outcomes[0], &outcomes[1]);
    assert!(overlapping.3 >= 2, "the user create and at least one membership call went out while groups were still being created: {} bulk calls did", overlapping.3);
    assert_eq!(sequential.3, 0, "with one call in flight the streams run one after the other");
    assert_eq!(overlapping.0, sequential.0, "the same groups and users");
    assert_eq!(overlapping.1, sequential.1, "the same memberships");
    assert_eq!(overlapping.1, expected(None));
    assert_eq!(overlapping.2, sequential.2);
    assert_eq!(overlapping.2, (GROUPS, SUBJECTS, GROUPS * MEMBERS));
}

/// Passes calls to the emulator, and before sending a bulk call checks in the registry that each
/// group it adds a member to is linked to its Duo group: its create is recorded.
struct RecordedGroupsOnly {
    inner: ReqwestTransport,
    store: Arc<dyn Store>,
    group_id: regex::Regex,
    checked: Arc<AtomicUsize>,
    violations: Arc<Mutex<Vec<String>>>,
}

/// A form-encoded body as text (`+` and `%XX` decoded).
fn decoded(body: &[u8]) -> String {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < body.len() => {
                let hex = std::str::from_utf8(&body[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Transport for RecordedGroupsOnly {
    fn send(&self, req: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            if req.method == "POST" && req.url.contains("/admin/v1/bulk") {
                let body = decoded(&req.body);
                let ids: Vec<String> = self.group_id.captures_iter(&body).map(|c| c[1].to_owned()).collect();
                if !ids.is_empty() {
                    let links = self.store.links("p").await.expect("links");
                    let recorded: BTreeSet<&str> = links.groups.iter().filter(|l| l.in_target).filter_map(|l| l.duo_group_id.as_deref()).collect();
                    for id in &ids {
                        self.checked.fetch_add(1, Ordering::SeqCst);
                        if !recorded.contains(id.as_str()) {
                            self.violations.lock().unwrap().push(id.clone());
                        }
                    }
                }
            }
            self.inner.send(req).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_is_sent_to_a_new_group_only_once_the_groups_create_is_recorded() {
    let emulator = common::unlimited_emulator(IKEY, SKEY).await;
    emulator.handle().set_faults("latency=3ms on=groups.create").unwrap();
    let store = registry().await;
    let checked = Arc::new(AtomicUsize::new(0));
    let violations = Arc::new(Mutex::new(Vec::new()));
    let duo = client_with(&emulator, |cfg| {
        Arc::new(RecordedGroupsOnly {
            inner: ReqwestTransport::new(cfg).expect("transport"),
            store: store.clone(),
            group_id: regex::Regex::new(r#"group_id\\?"\s*:\s*\\?"([A-Za-z0-9]+)"#).unwrap(),
            checked: checked.clone(),
            violations: violations.clone(),
        })
    });
    let settings = common::settings("p", 4);
    let report = sync(&*store, &duo, &settings).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(checked.load(Ordering::SeqCst), GROUPS * MEMBERS, "every addition was checked as it left");
    let violations = violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "{} additions sent to groups whose create was not yet recorded, e.g. {:?}", violations.len(), &violations[..violations.len().min(5)]);
    let (creates, bulk) = call_order(emulator.handle());
    assert!(bulk.iter().filter(|b| **b < *creates.last().unwrap()).count() >= 2, "memberships went out while groups were still being created");
    assert_eq!(pairs(emulator.handle()), expected(None));
    emulator.shutdown().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_create_fails_leaves_only_its_own_additions_unresolved_and_the_next_run_adds_them() {
    let emulator = common::unlimited_emulator(IKEY, SKEY).await;
    let handle = emulator.handle().clone();
    // The group stream sends one create at a time (concurrency 4 leaves it one call): the first
    // group's create and its retries are answered 500; every other group is created.
    handle.set_faults("500 first=4 on=groups.create").unwrap();
    let duo = common::unpaced_client(&emulator, IKEY, SKEY);
    let store = registry().await;
    let settings = common::settings("p", 4);
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    let first_group = prepared.plan.ops.iter().find_map(|o| match &o.op {
        Op::CreateGroup { name, .. } => Some(name.clone()),
        _ => None,
    });
    let failed = first_group.expect("groups are created");
    let options = SyncOptions { approval: Approval::exactly(&prepared.plan), ..Default::default() };
    let report = duoprov_sync::run(&*store, &duo, &settings, prepared, &options, &NoProgress).await.unwrap();
    assert_eq!(report.groups.failed, 1, "{:?}", report.failures);
    assert_eq!(report.groups.created, GROUPS - 1);
    assert_eq!(report.memberships.created, (GROUPS - 1) * MEMBERS);
    assert_eq!(report.memberships.failed, MEMBERS, "only the failed group's additions are unresolved: {:?}", report.failures);
    let unresolved: Vec<&str> = report.failures.iter().filter(|f| f.object.starts_with("membership")).map(|f| f.object.as_str()).collect();
    assert!(unresolved.iter().all(|o| o.ends_with(&format!("in group {failed}"))), "{unresolved:?}");
    assert_eq!(pairs(&handle), expected(Some(&failed)), "every other group has its members");

    // The next run creates the group and adds its members; nothing else is planned.
    handle.set_faults("").unwrap();
    let prepared = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    let kinds: Vec<String> = prepared.plan.ops.iter().map(|o| format!("{:?}", o.op).split_whitespace().next().unwrap_or_default().to_owned()).collect();
    assert_eq!(kinds.len(), 1 + MEMBERS, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| k.starts_with("CreateGroup")).count(), 1, "{kinds:?}");
    let report = sync(&*store, &duo, &settings).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(pairs(&handle), expected(None));
    let again = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    assert!(again.plan.ops.is_empty(), "{:?}", again.plan.ops);
    emulator.shutdown().await.ok();
}
