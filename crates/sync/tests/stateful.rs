//! Stateful property test of the sync engine against the emulator: random sequences of registry
//! changes (memberships, subject renames and names, group descriptions, nesting, exclusions,
//! groups removed and re-added), full and incremental syncs, fault bursts (seeded 429, 500, 503
//! and connection resets) and Duo-side tampering (a managed group renamed or deleted in Duo, a
//! managed user's name edited, a hand-made user added to a managed group) always end — after one
//! quiet full sync — with Duo's managed part equal to the desired state, a second plan empty, and
//! the objects duoprov does not own (a hand-made user and group) exactly as they were.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use duoprov_duo::{DuoClient, DuoConfig, GroupFields, NewUser, PacingConfig, RetryConfig, UserFields};
use duoprov_emulator::{Emulator, EmulatorHandle, Integration, TenantDump};
use duoprov_model::{FolderPath, GroupMember, GroupName, Marker, MarkerScope, MarkerTarget, SubjectKey, SubjectPatch};
use duoprov_plan::safety::Approval;
use duoprov_plan::{Mapping, MappingConfig, Policy};
use duoprov_registry::{NodeAttrs, OpenOptions, Store};
use duoprov_sync::{Incremental, NoProgress, SyncOptions, SyncSettings};
use proptest::prelude::*;

const IKEY: &str = "DISTATEFUL0000000001";
const SKEY: &str = "stateful-test-secret-key-0123456789abcd";
const SUBJECTS: usize = 8;
const GROUPS: usize = 4;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

#[derive(Debug, Clone)]
enum Step {
    AddMember(usize, usize),
    RemoveMember(usize, usize),
    RenameSubject(usize),
    NameSubject(usize, u8),
    DescribeGroup(usize, u8),
    Nest(usize, usize),
    Unnest(usize, usize),
    Exclude(usize),
    Include(usize),
    RemoveGroup(usize),
    AddGroup(usize),
    FullSync,
    IncrementalSync,
    FaultBurst(u64),
    TamperRenameGroup(usize),
    TamperDeleteGroup(usize),
    TamperUserName(usize),
    TamperHandUserIntoGroup(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let s = 0..SUBJECTS;
    let g = 0..GROUPS;
    prop_oneof![
        4 => (g.clone(), s.clone()).prop_map(|(g, s)| Step::AddMember(g, s)),
        2 => (g.clone(), s.clone()).prop_map(|(g, s)| Step::RemoveMember(g, s)),
        1 => s.clone().prop_map(Step::RenameSubject),
        1 => (s.clone(), any::<u8>()).prop_map(|(s, n)| Step::NameSubject(s, n)),
        1 => (g.clone(), any::<u8>()).prop_map(|(g, n)| Step::DescribeGroup(g, n)),
        1 => (g.clone(), g.clone()).prop_map(|(a, b)| Step::Nest(a, b)),
        1 => (g.clone(), g.clone()).prop_map(|(a, b)| Step::Unnest(a, b)),
        1 => g.clone().prop_map(Step::Exclude),
        1 => g.clone().prop_map(Step::Include),
        1 => g.clone().prop_map(Step::RemoveGroup),
        1 => g.clone().prop_map(Step::AddGroup),
        2 => Just(Step::FullSync),
        4 => Just(Step::IncrementalSync),
        1 => any::<u64>().prop_map(Step::FaultBurst),
        1 => g.clone().prop_map(Step::TamperRenameGroup),
        1 => g.clone().prop_map(Step::TamperDeleteGroup),
        1 => s.clone().prop_map(Step::TamperUserName),
        1 => g.prop_map(Step::TamperHandUserIntoGroup),
    ]
}

fn group(i: usize) -> GroupName {
    GroupName::parse(&format!("app:duo:g{i}")).unwrap()
}

fn subject(i: usize) -> SubjectKey {
    SubjectKey::local(format!("s{i}"))
}

struct World {
    store: Box<dyn Store>,
    duo: DuoClient,
    handle: EmulatorHandle,
    settings: SyncSettings,
    /// Renames so far per subject (usernames stay unique).
    renames: Vec<u32>,
}

impl World {
    async fn sync(&self, incremental: bool) {
        let options = SyncOptions { dry_run: false, approval: Approval { allow_deletes: Some(10_000) }, saved: None };
        let prepared = if incremental {
            match duoprov_sync::prepare_incremental(&*self.store, &self.duo, &self.settings, duoprov_sync::now_ms() + 3_600_000).await {
                Ok(Incremental::Planned(p)) => *p,
                Ok(Incremental::Idle { .. }) => return,
                Ok(Incremental::Escalate { .. }) => match duoprov_sync::prepare(&*self.store, &self.duo, &self.settings).await {
                    Ok(p) => p,
                    Err(_) => return,
                },
                // Duo unreadable during a fault burst: the run stops before changing anything.
                Err(_) => return,
            }
        } else {
            match duoprov_sync::prepare(&*self.store, &self.duo, &self.settings).await {
                Ok(p) => p,
                Err(_) => return,
            }
        };
        // Object failures are recorded and retried; a run error leaves the checkpoint alone.
        let _ = duoprov_sync::run(&*self.store, &self.duo, &self.settings, prepared, &options, &NoProgress).await;
    }

    async fn managed_group_id(&self, g: usize) -> Option<String> {
        let Ok(Some(grp)) = self.store.group(&group(g)).await else { return None };
        let links = self.store.links("stateful").await.ok()?;
        links.groups.into_iter().find(|l| l.group_uuid == grp.uuid).and_then(|l| l.duo_group_id)
    }

    async fn apply(&mut self, step: &Step) {
        let s = &*self.store;
        // Registry refusals (a cycle, a missing group) are part of the game: the change simply
        // does not happen.
        match step {
            Step::AddMember(g, i) => drop(s.add_member(&group(*g), &GroupMember::Subject(subject(*i))).await),
            Step::RemoveMember(g, i) => drop(s.remove_member(&group(*g), &GroupMember::Subject(subject(*i))).await),
            Step::RenameSubject(i) => {
                self.renames[*i] += 1;
                let patch = SubjectPatch { login_id: Some(Some(format!("u{i}r{}", self.renames[*i]))), ..Default::default() };
                drop(s.update_subject(&subject(*i), &patch).await);
            }
            Step::NameSubject(i, n) => {
                let patch = SubjectPatch { name: Some(Some(format!("Person {i} v{n}"))), ..Default::default() };
                drop(s.update_subject(&subject(*i), &patch).await);
            }
            Step::DescribeGroup(g, n) => {
                let attrs = NodeAttrs { description: Some(Some(format!("group {g} v{n}"))), ..Default::default() };
                drop(s.update_group(&group(*g), None, &attrs, false).await);
            }
            Step::Nest(a, b) => drop(s.add_member(&group(*a), &GroupMember::Group { name: group(*b) }).await),
            Step::Unnest(a, b) => drop(s.remove_member(&group(*a), &GroupMember::Group { name: group(*b) }).await),
            Step::Exclude(g) => {
                let m = Marker { provisioner: "stateful".into(), target: MarkerTarget::Group(group(*g)), scope: MarkerScope::Sub, provision: false };
                drop(s.assign_marker(&m).await);
            }
            Step::Include(g) => drop(s.unassign_marker("stateful", &MarkerTarget::Group(group(*g))).await),
            Step::RemoveGroup(g) => drop(s.remove_group(&group(*g)).await),
            Step::AddGroup(g) => drop(s.add_group(&group(*g), &NodeAttrs::default(), true).await),
            Step::FullSync => self.sync(false).await,
            Step::IncrementalSync => self.sync(true).await,
            Step::FaultBurst(seed) => {
                self.handle.set_faults(&format!("seed={seed}; 429 p=0.15; 500 p=0.1; 503 p=0.05; reset p=0.05")).unwrap();
                self.sync(seed % 2 == 0).await;
                self.handle.set_faults("").unwrap();
            }
            Step::TamperRenameGroup(g) => {
                if let Some(id) = self.managed_group_id(*g).await {
                    drop(self.duo.modify_group(&id, &GroupFields::named(format!("tampered{g}"))).await);
                }
            }
            Step::TamperDeleteGroup(g) => {
                if let Some(id) = self.managed_group_id(*g).await {
                    drop(self.duo.delete_group(&id).await);
                }
            }
            Step::TamperUserName(i) => {
                let links = self.store.links("stateful").await.unwrap();
                if let Some(id) = links.users.iter().find(|l| l.subject == subject(*i)).and_then(|l| l.duo_user_id.clone()) {
                    let fields = UserFields { realname: Some("Edited In Duo".into()), ..Default::default() };
                    drop(self.duo.modify_user(&id, &fields).await);
                }
            }
            Step::TamperHandUserIntoGroup(g) => {
                if let Some(gid) = self.managed_group_id(*g).await {
                    let hand = match self.duo.get_user_by_username("handmade").await {
                        Ok(Some(u)) => Some(u),
                        _ => self.duo.create_user(&NewUser::new("handmade").realname("Hand Made")).await.ok(),
                    };
                    if let Some(u) = hand {
                        drop(self.duo.add_user_to_group(&u.user_id, &gid).await);
                    }
                }
            }
        }
    }
}

/// What Duo should hold for the provisioner: group name → (description, member usernames), and
/// username → real name.
type Expected = (BTreeMap<String, (String, BTreeSet<String>)>, BTreeMap<String, String>);

async fn expected(store: &dyn Store) -> Expected {
    let sel = store.provisioner_selection("stateful").await.unwrap();
    let mut groups = BTreeMap::new();
    let mut users = BTreeMap::new();
    for pg in &sel.groups {
        let mut members = BTreeSet::new();
        for m in &pg.members {
            let s = &sel.subjects[*m as usize];
            let username = s.login_id.clone().unwrap_or_default();
            users.insert(username.clone(), s.name.clone().unwrap_or_default());
            members.insert(username);
        }
        groups.insert(pg.group.extension().to_owned(), (pg.group.description.clone().unwrap_or_default(), members));
    }
    (groups, users)
}

fn actual(dump: &TenantDump, expected: &Expected) -> Expected {
    let names: BTreeMap<String, String> = dump.groups.iter().map(|g| (g.group_id.as_str().to_owned(), g.name.clone())).collect();
    let mut groups = BTreeMap::new();
    for g in dump.groups.iter().filter(|g| g.name != "foreign") {
        let members: BTreeSet<String> =
            dump.users.iter().filter(|u| u.groups.contains(&g.group_id)).map(|u| u.username.clone()).collect();
        groups.insert(g.name.clone(), (g.desc.clone(), members));
    }
    let _ = names;
    let users = dump.users.iter().filter(|u| expected.1.contains_key(&u.username)).map(|u| (u.username.clone(), u.realname.clone())).collect();
    (groups, users)
}

async fn scenario(steps: Vec<Step>) -> Result<(), TestCaseError> {
    check(steps, false).await
}

/// With `incremental_only`, the quiet sync at the end is incremental, and nothing but registry
/// changes and syncs happened: the incremental syncs alone must leave nothing for a full plan.
async fn check(steps: Vec<Step>, incremental_only: bool) -> Result<(), TestCaseError> {
    let emulator = Emulator::builder().integration(Integration::new(IKEY, SKEY)).spawn_on("127.0.0.1:0").await.expect("emulator");
    let handle = emulator.handle().clone();
    let mut cfg = DuoConfig::new("127.0.0.1", IKEY, SKEY.to_owned().into());
    cfg.url = Some(emulator.base_url());
    cfg.pacing = PacingConfig::unlimited();
    cfg.retry = RetryConfig { initial_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(40), max_jitter: Duration::ZERO, max_server_retries: 3 };
    let duo = DuoClient::new(cfg).expect("client");
    let store = duoprov_registry::open("sqlite::memory:", &OpenOptions::default()).await.unwrap();
    for i in 0..SUBJECTS {
        let patch = SubjectPatch { login_id: Some(Some(format!("u{i}"))), name: Some(Some(format!("Person {i}"))), ..Default::default() };
        store.upsert_subject(&subject(i), &patch).await.unwrap();
    }
    for g in 0..GROUPS {
        store.add_group(&group(g), &NodeAttrs::default(), true).await.unwrap();
        store.add_member(&group(g), &GroupMember::Subject(subject(g))).await.unwrap();
    }
    let marker = Marker { provisioner: "stateful".into(), target: MarkerTarget::Folder(FolderPath::parse("app:duo").unwrap()), scope: MarkerScope::Sub, provision: true };
    store.assign_marker(&marker).await.unwrap();
    // Objects duoprov does not own: a user and a group made by hand before the first sync.
    duo.create_user(&NewUser::new("outsider").realname("Out Sider")).await.unwrap();
    duo.create_group(&GroupFields::named("foreign").desc("made by hand")).await.unwrap();
    let foreign_before: Vec<String> = {
        let d = handle.state();
        let mut v: Vec<String> = d.users.iter().filter(|u| u.username == "outsider").map(|u| format!("{u:?}")).collect();
        v.extend(d.groups.iter().filter(|g| g.name == "foreign").map(|g| format!("{g:?}")));
        v
    };
    let settings = SyncSettings {
        provisioner: "stateful".into(),
        policy: Policy::default(),
        mapping: Arc::new(Mapping::compile(&MappingConfig::default(), "stateful").unwrap()),
        eligible_group: None,
        subject_sources: None,
        concurrency: 4,
        incremental: duoprov_sync::IncrementalSettings { whole_group_above: 2, ..Default::default() },
        shares_duo_with: Vec::new(),
        load_duo_users: false,
    };
    let mut world = World { store, duo, handle: handle.clone(), settings, renames: vec![0; SUBJECTS] };
    world.sync(false).await;
    for s in &steps {
        world.apply(s).await;
    }
    // Quiet: one full sync (or, for registry-only histories, one incremental sync).
    world.handle.set_faults("").unwrap();
    world.sync(incremental_only).await;
    let want = expected(&*world.store).await;
    let dump = world.handle.state();
    let got = actual(&dump, &want);
    prop_assert_eq!(&got.0, &want.0, "managed groups differ after a quiet full sync; steps {:?}", steps);
    prop_assert_eq!(&got.1, &want.1, "managed users differ after a quiet full sync; steps {:?}", steps);
    let prepared = duoprov_sync::prepare(&*world.store, &world.duo, &world.settings).await.unwrap();
    prop_assert!(prepared.plan.ops.is_empty(), "a second plan is not empty: {:?}; steps {:?}", prepared.plan.ops, steps);
    let foreign_after: Vec<String> = {
        let mut v: Vec<String> = dump.users.iter().filter(|u| u.username == "outsider").map(|u| format!("{u:?}")).collect();
        v.extend(dump.groups.iter().filter(|g| g.name == "foreign").map(|g| format!("{g:?}")));
        v
    };
    prop_assert_eq!(foreign_before, foreign_after, "an object duoprov does not own changed; steps {:?}", steps);
    emulator.shutdown().await.ok();
    Ok(())
}

/// 64 cases per property from a fixed seed, so CI runs the same histories every time; set
/// `PROPTEST_RNG_SEED=N` (and `PROPTEST_CASES`) to explore others.
fn config() -> ProptestConfig {
    let base = ProptestConfig::default();
    let rng_seed = match base.rng_seed {
        proptest::test_runner::RngSeed::Random => proptest::test_runner::RngSeed::Fixed(0xD00B_5EED),
        chosen => chosen,
    };
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { base.cases } else { 64 };
    ProptestConfig { cases, max_shrink_iters: 64, rng_seed, ..base }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_history_converges_after_one_quiet_full_sync(steps in proptest::collection::vec(step(), 1..24)) {
        runtime().block_on(scenario(steps))?;
    }

    /// Incremental syncs are exact: after registry changes and incremental syncs only (no faults,
    /// no tampering), a last incremental sync leaves a full plan empty.
    #[test]
    fn incremental_syncs_alone_leave_nothing_for_a_full_sync(
        steps in proptest::collection::vec(step().prop_filter("registry changes and incremental syncs only", |s| matches!(
            s,
            Step::AddMember(..) | Step::RemoveMember(..) | Step::RenameSubject(_) | Step::NameSubject(..) | Step::DescribeGroup(..)
                | Step::Nest(..) | Step::Unnest(..) | Step::Exclude(_) | Step::Include(_) | Step::RemoveGroup(_) | Step::AddGroup(_)
                | Step::IncrementalSync
        )), 1..24)
    ) {
        runtime().block_on(check(steps, true))?;
    }
}
