//! The sync converges under every reading of Duo's unverified bulk endpoint: the emulator answers a
//! remove spelt `POST …/groups/{gid}` with a per-op 404 (`bulk_remove_post = per_op_404`), lists
//! bare results without `stat` (`bulk_reply_shape = bare`), or has no bulk endpoint at all
//! (`unavailable`). With `bulk = auto` and with `bulk = never`, a sync that adds, removes and
//! updates leaves Duo's memberships exactly as the registry says, counts as removed only the
//! memberships Duo no longer has, and leaves nothing for a second plan; the fallback costs single
//! calls only where bulk could not confirm an op.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use duoprov_duo::{BulkMode, DuoClient, DuoConfig, PacingConfig, RetryConfig};
use duoprov_emulator::config::{BulkRemovePost, BulkReplyShape};
use duoprov_emulator::{Emulator, EmulatorHandle, Integration};
use duoprov_model::{FolderPath, GroupMember, GroupName, Marker, MarkerScope, MarkerTarget, SubjectKey, SubjectPatch};
use duoprov_plan::safety::Approval;
use duoprov_plan::{Mapping, MappingConfig, Policy};
use duoprov_registry::{NodeAttrs, OpenOptions, Store};
use duoprov_sync::{NoProgress, RunReport, SyncOptions, SyncSettings};

const IKEY: &str = "DIBULKREADINGS000001";
const SKEY: &str = "bulk-readings-test-secret-key-0123456789";

fn group(i: usize) -> GroupName {
    GroupName::parse(&format!("app:duo:g{i}")).unwrap()
}

fn subject(i: usize) -> SubjectKey {
    SubjectKey::new("ldap", format!("s{i}"))
}

/// Group name → member usernames, as Duo holds them.
fn memberships(handle: &EmulatorHandle) -> BTreeMap<String, BTreeSet<String>> {
    let dump = handle.state();
    dump.groups
        .iter()
        .map(|g| {
            let members = dump.users.iter().filter(|u| u.groups.contains(&g.group_id)).map(|u| u.username.clone()).collect();
            (g.name.clone(), members)
        })
        .collect()
}

fn pairs(m: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<(String, String)> {
    m.iter().flat_map(|(g, us)| us.iter().map(move |u| (g.clone(), u.clone()))).collect()
}

fn want(spec: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
    spec.iter().map(|(g, us)| ((*g).to_owned(), us.iter().map(|u| (*u).to_owned()).collect())).collect()
}

async fn sync(store: &dyn Store, duo: &DuoClient, settings: &SyncSettings) -> RunReport {
    let prepared = duoprov_sync::prepare(store, duo, settings).await.unwrap_or_else(|e| panic!("prepare: {e}"));
    let options = SyncOptions { dry_run: false, approval: Approval::exactly(&prepared.plan), saved: None, fence: None, ..Default::default() };
    duoprov_sync::run(store, duo, settings, prepared, &options, &NoProgress).await.unwrap_or_else(|e| panic!("run: {e}"))
}

/// One history under one reading: a first sync (creates and adds), then a sync that removes two
/// memberships, adds two (one for a new user) and renames a user. Returns the bulk calls and the
/// single membership DELETEs the emulator saw in the second sync.
async fn converges(remove_post: BulkRemovePost, shape: BulkReplyShape, mode: BulkMode) -> (usize, usize, usize) {
    let reading = format!("{remove_post:?}/{shape:?}/{mode:?}");
    let emulator = Emulator::builder()
        .integration(Integration::new(IKEY, SKEY))
        .configure(|s| {
            s.bulk_remove_post = remove_post;
            s.bulk_reply_shape = shape;
            // The client is unpaced and this suite is not about rate limits: the minute-wide
            // burst it was written against.
            s.rate_limits.burst_fraction = Some(1.0);
        })
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator");
    let handle = emulator.handle().clone();
    let mut cfg = DuoConfig::new("127.0.0.1", IKEY, SKEY.to_owned().into());
    cfg.url = Some(emulator.base_url());
    cfg.pacing = PacingConfig::unlimited();
    cfg.retry = RetryConfig { initial_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(40), max_jitter: Duration::ZERO, max_server_retries: 3 };
    cfg.bulk = mode;
    let duo = DuoClient::new(cfg).expect("client");
    let store = duoprov_registry::open("sqlite::memory:", &OpenOptions::default()).await.unwrap();
    for i in 0..6 {
        let patch = SubjectPatch { login_id: Some(Some(format!("u{i}"))), name: Some(Some(format!("Person {i}"))), ..Default::default() };
        store.upsert_subject(&subject(i), &patch).await.unwrap();
    }
    for (g, members) in [(0, &[0, 1, 2][..]), (1, &[1, 3, 4][..]), (2, &[4][..])] {
        store.add_group(&group(g), &NodeAttrs::default(), true).await.unwrap();
        for m in members {
            store.add_member(&group(g), &GroupMember::Subject(subject(*m))).await.unwrap();
        }
    }
    let marker = Marker { provisioner: "p".into(), target: MarkerTarget::Folder(FolderPath::parse("app:duo").unwrap()), scope: MarkerScope::Sub, provision: true };
    store.assign_marker(&marker).await.unwrap();
    let settings = SyncSettings {
        provisioner: "p".into(),
        policy: Policy::default(),
        mapping: Arc::new(Mapping::compile(&MappingConfig::default(), "p").unwrap()),
        eligible_group: None,
        subject_sources: None,
        concurrency: 4,
        incremental: Default::default(),
        load_duo_users: false,
        shares_duo_with: Vec::new(),
        sync_back: None,
        selection_rules: Default::default(),
    };

    let first = sync(&*store, &duo, &settings).await;
    assert!(first.failures.is_empty(), "{reading}: {:?}", first.failures);
    assert_eq!(memberships(&handle), want(&[("g0", &["u0", "u1", "u2"]), ("g1", &["u1", "u3", "u4"]), ("g2", &["u4"])]), "{reading}");

    store.remove_member(&group(0), &GroupMember::Subject(subject(1))).await.unwrap();
    store.remove_member(&group(1), &GroupMember::Subject(subject(3))).await.unwrap();
    store.add_member(&group(0), &GroupMember::Subject(subject(5))).await.unwrap();
    store.add_member(&group(2), &GroupMember::Subject(subject(0))).await.unwrap();
    let patch = SubjectPatch { name: Some(Some("Person Two Renamed".into())), ..Default::default() };
    store.update_subject(&subject(2), &patch).await.unwrap();

    let before = pairs(&memberships(&handle));
    let since = handle.calls().last().map(|c| c.seq).unwrap_or(0);
    let second = sync(&*store, &duo, &settings).await;
    let calls = handle.calls_since(since);
    let after = memberships(&handle);
    assert!(second.failures.is_empty(), "{reading}: {:?}", second.failures);
    assert_eq!(after, want(&[("g0", &["u0", "u2", "u5"]), ("g1", &["u1", "u4"]), ("g2", &["u0", "u4"])]), "{reading}");
    // No removal counted that Duo did not make, and none made that was not counted.
    let removed = before.difference(&pairs(&after)).count();
    assert_eq!((second.memberships.deleted, removed), (2, 2), "{reading}");
    assert_eq!(second.memberships.created, 2, "{reading}");
    assert_eq!(second.users.updated, 1, "{reading}");
    let renamed = handle.state().users.iter().find(|u| u.username == "u2").map(|u| u.realname.clone());
    assert_eq!(renamed.as_deref(), Some("Person Two Renamed"), "{reading}");
    // Nothing left to do.
    let again = duoprov_sync::prepare(&*store, &duo, &settings).await.unwrap();
    assert!(again.plan.ops.is_empty(), "{reading}: a second plan is not empty: {:?}", again.plan.ops);

    let bulk_calls = calls.iter().filter(|c| c.path == "/admin/v1/bulk").count();
    let single_deletes = calls.iter().filter(|c| c.method == "DELETE" && c.path.contains("/groups/")).count();
    let single_adds = calls.iter().filter(|c| c.method == "POST" && c.path.ends_with("/groups")).count();
    emulator.shutdown().await.ok();
    (bulk_calls, single_deletes, single_adds)
}

#[tokio::test]
async fn bulk_auto_converges_when_duo_answers_as_the_ruby_client_expects() {
    let (bulk, deletes, adds) = converges(BulkRemovePost::Ok, BulkReplyShape::Envelopes, BulkMode::Auto).await;
    assert!(bulk >= 1);
    assert_eq!((deletes, adds), (0, 0), "no single call when bulk confirms every op");
}

#[tokio::test]
async fn bulk_auto_confirms_removals_duo_answers_404_in_bulk_with_a_single_delete() {
    let (bulk, deletes, adds) = converges(BulkRemovePost::PerOp404, BulkReplyShape::Envelopes, BulkMode::Auto).await;
    assert!(bulk >= 1, "bulk stays in use: a per-op 404 does not condemn the endpoint");
    assert_eq!((deletes, adds), (2, 0), "one single DELETE per removal bulk could not confirm, nothing else");
}

#[tokio::test]
async fn bulk_auto_converges_when_bulk_results_carry_no_stat() {
    let (bulk, deletes, adds) = converges(BulkRemovePost::Ok, BulkReplyShape::Bare, BulkMode::Auto).await;
    // The first sync found the reply not understood; from then on this client sends single calls.
    assert_eq!(bulk, 0);
    assert_eq!((deletes, adds), (2, 2));
}

#[tokio::test]
async fn bulk_auto_converges_without_a_bulk_endpoint() {
    let (bulk, deletes, adds) = converges(BulkRemovePost::Ok, BulkReplyShape::Unavailable, BulkMode::Auto).await;
    assert_eq!(bulk, 0, "the endpoint found missing in the first sync is not tried again");
    assert_eq!((deletes, adds), (2, 2));
}

#[tokio::test]
async fn bulk_never_converges_under_the_most_adverse_reading() {
    for shape in [BulkReplyShape::Envelopes, BulkReplyShape::Bare, BulkReplyShape::Unavailable] {
        let (bulk, deletes, adds) = converges(BulkRemovePost::PerOp404, shape, BulkMode::Never).await;
        assert_eq!((bulk, deletes, adds), (0, 2, 2), "{shape:?}");
    }
}
