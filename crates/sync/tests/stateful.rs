//! Stateful property test of the sync engine against the emulator: random sequences of registry
//! changes (memberships, subject renames — some to mixed-case usernames — and names, group
//! descriptions, nesting, exclusions, groups removed and re-added), full and incremental syncs,
//! fault bursts (seeded 429, 500, 503 and connection resets), syncs whose every write Duo refuses
//! (an integration without the write grant), objects made by hand in Duo under the names the
//! registry uses (before and after refused creates), Duo-side tampering with duoprov's own objects
//! (a group renamed or deleted, a user's name edited, a hand-made user added to a group) and a
//! second provisioner of the same Duo account sharing the users always end — after one quiet sync
//! of each provisioner — with Duo's managed part equal to the desired state, a second plan empty,
//! and every object made by hand still in Duo with exactly the fields it was made with. Scoped
//! (incremental, not whole-group) removals from a group above the size thresholds are never
//! refused. A run error outside a fault burst or a refused sync fails the test. No two Duo groups
//! end with the same name (no create was duplicated). Every property runs against the emulator's
//! `evidence` profile; a second one, with fewer cases, against its `adverse` profile (bulk remove
//! answered per-op 404, bare bulk replies, bulk and id-list lookups in small rate classes of their
//! own, non-unique group names, small bursts, usernames kept verbatim and compared exactly),
//! with its rates scaled from per minute to per second so the client meets 429s without the test waiting minutes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use duoprov_duo::{DuoClient, DuoConfig, GroupFields, NewUser, PacingConfig, RetryConfig, UserFields};
use duoprov_emulator::{Emulator, EmulatorHandle, Integration, Profile, Settings, TenantDump, UsernameStorage};
use duoprov_model::{FolderPath, GroupMember, GroupName, Marker, MarkerScope, MarkerTarget, SubjectKey, SubjectPatch};
use duoprov_plan::safety::Approval;
use duoprov_plan::{Mapping, MappingConfig, Policy};
use duoprov_registry::{NodeAttrs, OpenOptions, Store};
use duoprov_sync::{Incremental, NoProgress, SyncError, SyncOptions, SyncSettings};
use proptest::prelude::*;

const IKEY: &str = "DISTATEFUL0000000001";
/// An integration of the same account with "Grant read resource" only: every write is a 403.
const IKEY_READ_ONLY: &str = "DISTATEFULREAD000001";
const SKEY: &str = "stateful-test-secret-key-0123456789abcd";
/// Groups of the second provisioner (`app:other:h{k}`), sharing the subjects.
const OTHER_GROUPS: usize = 2;
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
    /// A Duo group named like registry group `g{i}`, made by hand.
    HandMadeGroup(usize, u8),
    /// A Duo user with subject `i`'s current username (in upper case when the flag is set), made
    /// by hand.
    HandMadeUser(usize, bool),
    /// A sync through the read-only integration: every create, update and delete is refused.
    RefusedSync(bool),
    OtherAddMember(usize, usize),
    OtherRemoveMember(usize, usize),
    OtherSync,
    /// A big group (40 members, above the percentage rule's minimum) in Duo loses 10–12 members
    /// in one strict (unapproved) incremental run on the scoped path: never refused.
    ShrinkBigGroup(u8),
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
        1 => g.clone().prop_map(Step::TamperHandUserIntoGroup),
        3 => (g.clone(), any::<u8>()).prop_map(|(g, n)| Step::HandMadeGroup(g, n)),
        3 => (s.clone(), any::<bool>()).prop_map(|(s, upper)| Step::HandMadeUser(s, upper)),
        3 => any::<bool>().prop_map(Step::RefusedSync),
        1 => (0..OTHER_GROUPS, s.clone()).prop_map(|(k, s)| Step::OtherAddMember(k, s)),
        1 => (0..OTHER_GROUPS, s).prop_map(|(k, s)| Step::OtherRemoveMember(k, s)),
        1 => Just(Step::OtherSync),
        1 => any::<u8>().prop_map(Step::ShrinkBigGroup),
    ]
}

fn group(i: usize) -> GroupName {
    GroupName::parse(&format!("app:duo:g{i}")).unwrap()
}

fn other_group(k: usize) -> GroupName {
    GroupName::parse(&format!("app:other:h{k}")).unwrap()
}

fn subject(i: usize) -> SubjectKey {
    SubjectKey::local(format!("s{i}"))
}

struct World {
    store: Box<dyn Store>,
    duo: DuoClient,
    /// The same account through the integration without the write grant.
    read_only: DuoClient,
    handle: EmulatorHandle,
    settings: SyncSettings,
    /// The second provisioner of the same Duo account.
    other: SyncSettings,
    /// Renames so far per subject (usernames stay unique).
    renames: Vec<u32>,
    /// Every object made by hand, by Duo id, with its fields when it was made.
    hand_made: BTreeMap<String, String>,
    /// A fault burst may have left creates of unknown outcome that no quiet full sync has
    /// settled since.
    unsettled: bool,
}

/// How a sync may end: `Faulted` allows unreadable Duo and failed objects (fault bursts, refused
/// writes); `Quiet` allows only refusals by the safety rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Quiet,
    Faulted,
}

/// The fields of a hand-made object that must never change (memberships may: a hand-made user
/// in a managed group loses that membership under `membership_delete = not_in_source`).
fn hand_made_fields(dump: &TenantDump, id: &str) -> Option<String> {
    if let Some(u) = dump.users.iter().find(|u| u.user_id.as_str() == id) {
        return Some(format!("user {:?} realname {:?} email {:?} status {}", u.username, u.realname, u.email, u.status.as_str()));
    }
    dump.groups.iter().find(|g| g.group_id.as_str() == id).map(|g| format!("group {:?} desc {:?} status {:?}", g.name, g.desc, g.status))
}

impl World {
    async fn sync(&self, incremental: bool, expect: Expect) -> Result<(), TestCaseError> {
        self.sync_with(&self.settings, &self.duo, incremental, expect).await
    }

    /// Runs one sync of `settings` through `duo`; an outcome `expect` does not allow fails the test.
    async fn sync_with(&self, settings: &SyncSettings, duo: &DuoClient, incremental: bool, expect: Expect) -> Result<(), TestCaseError> {
        let who = &settings.provisioner;
        let prepared = if incremental {
            match duoprov_sync::prepare_incremental(&*self.store, duo, settings, duoprov_sync::now_ms() + 3_600_000).await {
                Ok(Incremental::Planned(p)) => Ok(*p),
                Ok(Incremental::Idle { .. }) => return Ok(()),
                Ok(Incremental::Escalate { .. }) => duoprov_sync::prepare(&*self.store, duo, settings).await,
                Err(e) => Err(e),
            }
        } else {
            duoprov_sync::prepare(&*self.store, duo, settings).await
        };
        let prepared = match prepared {
            Ok(p) => p,
            // Duo unreadable during a fault burst: the run stops before changing anything.
            Err(SyncError::DuoRead(_)) if expect == Expect::Faulted => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("{who}: preparing a sync failed outside a fault burst: {e:#}"))),
        };
        // Every removal is approved: this model checks convergence and ownership, not the safety
        // rules (which `ShrinkBigGroup` and the CLI tests check).
        let options = SyncOptions { dry_run: false, approval: Approval::exactly(&prepared.plan), saved: None, fence: None, ..Default::default() };
        match duoprov_sync::run(&*self.store, duo, settings, prepared, &options, &NoProgress).await {
            Ok(report) if expect == Expect::Quiet && !report.failures.is_empty() => {
                Err(TestCaseError::fail(format!("{who}: objects failed outside a fault burst: {:?}", report.failures)))
            }
            Ok(_) | Err(SyncError::Refused { .. }) => Ok(()),
            Err(SyncError::DuoRead(_)) if expect == Expect::Faulted => Ok(()),
            Err(e) => Err(TestCaseError::fail(format!("{who}: a sync failed: {e:#}"))),
        }
    }

    /// The provisioner's link of registry group `g`, if any.
    async fn group_link(&self, g: usize) -> Option<duoprov_model::GroupLink> {
        let grp = self.store.group(&group(g)).await.ok()??;
        let links = self.store.links("stateful").await.ok()?;
        links.groups.into_iter().find(|l| l.group_uuid == grp.uuid)
    }

    /// The Duo id of registry group `g`'s group, when duoprov created it (tampering touches only
    /// duoprov's own objects: what happens to hand-made ones is the invariant under test).
    async fn managed_group_id(&self, g: usize) -> Option<String> {
        self.group_link(g).await.filter(|l| l.created_by_us).and_then(|l| l.duo_group_id)
    }

    /// Fills `app:duo:big` to its 40 members and syncs, removes 10–12 of them, and runs an
    /// incremental sync without approval that does not read the group whole: 12 of 40 is within
    /// 30 %, so the run must not be refused (it would be if the group were sized by its scoped
    /// members).
    async fn shrink_big_group(&self, seed: u8) -> Result<(), TestCaseError> {
        const BIG: usize = 40;
        let big = GroupName::parse("app:duo:big").unwrap();
        let s = &*self.store;
        drop(s.add_group(&big, &NodeAttrs::default(), true).await);
        for i in 0..BIG {
            let key = SubjectKey::local(format!("b{i:02}"));
            let patch = SubjectPatch { login_id: Some(Some(format!("b{i:02}"))), name: Some(Some(format!("Big {i}"))), ..Default::default() };
            s.upsert_subject(&key, &patch).await.unwrap();
            drop(s.add_member(&big, &GroupMember::Subject(key)).await);
        }
        self.sync(false, Expect::Quiet).await?;
        let removed = 10 + usize::from(seed) % 3;
        for k in 0..removed {
            let key = SubjectKey::local(format!("b{:02}", (usize::from(seed) + k) % BIG));
            drop(s.remove_member(&big, &GroupMember::Subject(key)).await);
        }
        let mut settings = self.settings.clone();
        settings.incremental.whole_group_above = 1_000;
        let prepared = match duoprov_sync::prepare_incremental(s, &self.duo, &settings, duoprov_sync::now_ms() + 3_600_000).await {
            Ok(Incremental::Planned(p)) => *p,
            _ => return Ok(()),
        };
        let strict = SyncOptions { dry_run: false, approval: Approval::default(), saved: None, fence: None, ..Default::default() };
        let result = duoprov_sync::run(s, &self.duo, &settings, prepared, &strict, &NoProgress).await;
        prop_assert!(!matches!(result, Err(SyncError::Refused { .. })), "{} of {} removals were refused: {:?}", removed, BIG, result);
        Ok(())
    }

    /// Makes an object by hand and records its fields.
    fn record_hand_made(&mut self, id: &str) {
        let fields = hand_made_fields(&self.handle.state(), id).expect("the hand-made object exists");
        self.hand_made.insert(id.to_owned(), fields);
    }

    async fn apply(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let s = &*self.store;
        // Registry refusals (a cycle, a missing group) are part of the game: the change simply
        // does not happen.
        match step {
            Step::AddMember(g, i) => drop(s.add_member(&group(*g), &GroupMember::Subject(subject(*i))).await),
            Step::RemoveMember(g, i) => drop(s.remove_member(&group(*g), &GroupMember::Subject(subject(*i))).await),
            Step::RenameSubject(i) => {
                self.renames[*i] += 1;
                // Every other rename is to a mixed-case username.
                let n = self.renames[*i];
                let login = if n.is_multiple_of(2) { format!("U{i}r{n}") } else { format!("u{i}r{n}") };
                let patch = SubjectPatch { login_id: Some(Some(login)), ..Default::default() };
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
            Step::FullSync => {
                self.sync(false, Expect::Quiet).await?;
                self.unsettled = false;
            }
            Step::IncrementalSync => self.sync(true, Expect::Quiet).await?,
            Step::FaultBurst(seed) => {
                self.handle.set_faults(&format!("seed={seed}; 429 p=0.15; 500 p=0.1; 503 p=0.05; reset p=0.05")).unwrap();
                self.unsettled = true;
                let r = self.sync(seed % 2 == 0, Expect::Faulted).await;
                self.handle.set_faults("").unwrap();
                r?;
            }
            Step::RefusedSync(incremental) => self.sync_with(&self.settings, &self.read_only, *incremental, Expect::Faulted).await?,
            Step::HandMadeGroup(g, n) => {
                // Made under a name duoprov is not using: no Duo group of that name, and no live
                // link for the registry group (the step takes the `g`-th such group, so it often
                // follows a refused create). Not while a fault burst may have left a create of
                // unknown outcome: an object made by hand then, under exactly the intended name,
                // is claimed (groups carry no creation time — docs/reliability.md, Ownership).
                if self.unsettled {
                    return Ok(());
                }
                let dump = self.handle.state();
                let mut free = Vec::new();
                for k in 0..GROUPS {
                    let name = format!("g{k}");
                    let live = self.group_link(k).await.and_then(|l| l.duo_group_id).is_some_and(|id| dump.groups.iter().any(|x| x.group_id.as_str() == id));
                    if !live && !dump.groups.iter().any(|x| x.name == name) {
                        // Names whose create failed (a link without a Duo group) come first.
                        free.push((self.group_link(k).await.is_none(), name));
                    }
                }
                free.sort();
                let first = free.first().map(|f| f.0);
                free.retain(|f| Some(f.0) == first);
                if let Some((_, name)) = free.get(g % free.len().max(1)) {
                    let made = self.duo.create_group(&GroupFields::named(name.clone()).desc(format!("made by hand {n}"))).await.map_err(|e| TestCaseError::fail(format!("{e}")))?;
                    self.record_hand_made(&made.group_id);
                }
            }
            Step::HandMadeUser(i, upper) => {
                // The same for users: the `i`-th subject whose username no Duo user has and whose
                // Duo user no provisioner links, made by hand under its current username, in
                // upper case when `upper`.
                if self.unsettled {
                    return Ok(());
                }
                let links = self.store.links("stateful").await.unwrap();
                let others = self.store.links("other").await.unwrap();
                let dump = self.handle.state();
                let live = |l: &duoprov_model::UserLink| l.duo_user_id.as_deref().is_some_and(|id| dump.users.iter().any(|u| u.user_id.as_str() == id));
                let mut free = Vec::new();
                for k in 0..SUBJECTS {
                    let Ok(Some(sub)) = s.subject(&subject(k)).await else { continue };
                    let login = sub.login_id.clone().unwrap_or_default();
                    let taken = dump.users.iter().any(|u| duoprov_model::same_username(&u.username, &login));
                    if !taken && !links.users.iter().chain(&others.users).any(|l| l.subject == subject(k) && live(l)) {
                        // Subjects whose create failed (a link without a Duo user) come first.
                        free.push((!links.users.iter().any(|l| l.subject == subject(k)), k, login));
                    }
                }
                free.sort();
                let first = free.first().map(|f| f.0);
                free.retain(|f| Some(f.0) == first);
                if let Some((_, k, login)) = free.get(i % free.len().max(1)) {
                    let username = if *upper { login.to_uppercase() } else { login.clone() };
                    let made = self.duo.create_user(&NewUser::new(username).realname(format!("Hand Made {k}")).email(format!("hand{k}@elsewhere.example"))).await.map_err(|e| TestCaseError::fail(format!("{e}")))?;
                    self.record_hand_made(&made.user_id);
                }
            }
            Step::OtherAddMember(k, i) => drop(s.add_member(&other_group(*k), &GroupMember::Subject(subject(*i))).await),
            Step::OtherRemoveMember(k, i) => drop(s.remove_member(&other_group(*k), &GroupMember::Subject(subject(*i))).await),
            Step::OtherSync => self.sync_with(&self.other, &self.duo, false, Expect::Quiet).await?,
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
                if let Some(id) = links.users.iter().find(|l| l.subject == subject(*i) && l.created_by_us).and_then(|l| l.duo_user_id.clone()) {
                    let fields = UserFields { realname: Some("Edited In Duo".into()), ..Default::default() };
                    drop(self.duo.modify_user(&id, &fields).await);
                }
            }
            Step::ShrinkBigGroup(seed) => self.shrink_big_group(*seed).await?,
            Step::TamperHandUserIntoGroup(g) => {
                if let Some(gid) = self.managed_group_id(*g).await {
                    let hand = match self.duo.get_user_by_username("handmade").await {
                        Ok(Some(u)) => Some(u),
                        _ => {
                            let made = self.duo.create_user(&NewUser::new("handmade").realname("Hand Made")).await.ok();
                            if let Some(u) = &made {
                                self.record_hand_made(&u.user_id);
                            }
                            made
                        }
                    };
                    if let Some(u) = hand {
                        drop(self.duo.add_user_to_group(&u.user_id, &gid).await);
                    }
                }
            }
        }
        Ok(())
    }
}

/// What Duo should hold for a provisioner: group name → (description, member usernames), and
/// username → real name.
type Expected = (BTreeMap<String, (String, BTreeSet<String>)>, BTreeMap<String, String>);

/// The desired state of `provisioner`, with the objects it adopted instead of creating: a group
/// made by hand keeps its description, a subject matched to a user made by hand keeps that
/// user's username and real name (duoprov does not rewrite what it does not own), and a subject
/// held for a Duo user differing only in case is left out. `storage` is how the emulator stores
/// usernames.
async fn expected(store: &dyn Store, provisioner: &str, dump: &TenantDump, storage: UsernameStorage) -> Expected {
    let sel = store.provisioner_selection(provisioner).await.unwrap();
    let links = store.links(provisioner).await.unwrap();
    let adopted_user = |key: &SubjectKey| {
        let l = links.users.iter().find(|l| &l.subject == key && !l.created_by_us)?;
        let id = l.duo_user_id.as_deref()?;
        dump.users.iter().find(|u| u.user_id.as_str() == id)
    };
    let mut all_links = links.users.clone();
    for p in ["stateful", "other"].into_iter().filter(|p| *p != provisioner) {
        all_links.extend(store.links(p).await.unwrap().users);
    }
    let live = |l: &duoprov_model::UserLink| l.duo_user_id.as_deref().is_some_and(|id| dump.users.iter().any(|u| u.user_id.as_str() == id));
    // Without a recorded probe, a subject without a user whose username some unlinked Duo user
    // has only in another case is held: it may or may not be that user.
    let held = |key: &SubjectKey, login: &str| {
        !all_links.iter().any(|l| &l.subject == key && live(l))
            && dump.users.iter().any(|u| {
                u.username != login
                    && duoprov_model::same_username(&u.username, login)
                    && !all_links.iter().any(|l| l.duo_user_id.as_deref() == Some(u.user_id.as_str()))
            })
    };
    let mut groups = BTreeMap::new();
    let mut users = BTreeMap::new();
    for pg in &sel.groups {
        let mut members = BTreeSet::new();
        for m in &pg.members {
            let s = &sel.subjects[*m as usize];
            if adopted_user(&s.key()).is_none() && held(&s.key(), s.login_id.as_deref().unwrap_or_default()) {
                continue;
            }
            let (username, realname) = match adopted_user(&s.key()) {
                Some(u) => (u.username.clone(), u.realname.clone()),
                // Lowercased as Duo most likely stores them (evidence), or verbatim (adverse).
                None => {
                    let login = s.login_id.clone().unwrap_or_default();
                    let username = match storage {
                        UsernameStorage::Lowercase => duoprov_model::username_key(&login),
                        UsernameStorage::Verbatim => login,
                    };
                    (username, s.name.clone().unwrap_or_default())
                }
            };
            users.insert(username.clone(), realname);
            members.insert(username);
        }
        let name = pg.group.extension().to_owned();
        let adopted = links.groups.iter().find(|l| l.group_uuid == pg.group.uuid && !l.created_by_us).and_then(|l| l.duo_group_id.as_deref());
        let desc = match adopted.and_then(|id| dump.groups.iter().find(|g| g.group_id.as_str() == id)) {
            Some(g) => g.desc.clone(),
            None => pg.group.description.clone().unwrap_or_default(),
        };
        groups.insert(name, (desc, members));
    }
    (groups, users)
}

/// Duo's state for the names `expected` has, plus every other group that is neither made by
/// hand nor the second provisioner's (a group duoprov should have deleted or renamed shows).
fn actual(dump: &TenantDump, expected: &Expected, excluded_ids: &BTreeSet<String>) -> Expected {
    let mut groups = BTreeMap::new();
    for g in dump.groups.iter().filter(|g| expected.0.contains_key(&g.name) || !excluded_ids.contains(g.group_id.as_str())) {
        let members: BTreeSet<String> =
            dump.users.iter().filter(|u| u.groups.contains(&g.group_id)).map(|u| u.username.clone()).collect();
        groups.insert(g.name.clone(), (g.desc.clone(), members));
    }
    let users = dump.users.iter().filter(|u| expected.1.contains_key(&u.username)).map(|u| (u.username.clone(), u.realname.clone())).collect();
    (groups, users)
}

async fn scenario(steps: Vec<Step>) -> Result<(), TestCaseError> {
    check(steps, false, Profile::Evidence).await
}

/// With `incremental_only`, the quiet sync at the end is incremental, and nothing but registry
/// changes and syncs happened: the incremental syncs alone must leave nothing for a full plan.
/// `profile` is the emulator's; under `adverse` its rates are per second instead of per minute,
/// with the profile's bursts (5 % of a minute: 3 bulk calls, 2 id-list lookups, 15 writes, 10
/// page reads), and the client's backoff reaches further, so rate-limited calls are retried until
/// they pass, as against Duo.
async fn check(steps: Vec<Step>, incremental_only: bool, profile: Profile) -> Result<(), TestCaseError> {
    let read_only = duoprov_emulator::Grants { read_resource: true, write_resource: false, administrators: false };
    let mut emulator_settings = Settings::profile(profile);
    let storage = emulator_settings.username_storage();
    let mut max_backoff = Duration::from_millis(40);
    // The client is unpaced: under the evidence profile this suite keeps the minute-wide burst
    // it was written against (it is about convergence, not rate limits).
    emulator_settings.rate_limits.burst_fraction = Some(1.0);
    if profile == Profile::Adverse {
        // Per second instead of per minute, with bursts of 5 % of a real minute's calls (what
        // this suite's backoff bound was tuned for).
        emulator_settings.rate_limits.scale = 60.0;
        emulator_settings.rate_limits.burst_fraction = Some(0.05 / 60.0);
        max_backoff = Duration::from_millis(640);
    }
    let emulator = Emulator::builder()
        .settings(emulator_settings)
        .integration(Integration::new(IKEY, SKEY))
        .integration(Integration::new(IKEY_READ_ONLY, SKEY).with_grants(read_only))
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator");
    let handle = emulator.handle().clone();
    let client = |ikey: &str| {
        let mut cfg = DuoConfig::new("127.0.0.1", ikey, SKEY.to_owned().into());
        cfg.url = Some(emulator.base_url());
        cfg.pacing = PacingConfig::unlimited();
        cfg.retry = RetryConfig { initial_backoff: Duration::from_millis(5), max_backoff, max_jitter: Duration::ZERO, max_server_retries: 3 };
        DuoClient::new(cfg).expect("client")
    };
    let duo = client(IKEY);
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
    for k in 0..OTHER_GROUPS {
        store.add_group(&other_group(k), &NodeAttrs::default(), true).await.unwrap();
    }
    let marker = Marker { provisioner: "other".into(), target: MarkerTarget::Folder(FolderPath::parse("app:other").unwrap()), scope: MarkerScope::Sub, provision: true };
    store.assign_marker(&marker).await.unwrap();
    let settings = |name: &str, shares: &str| SyncSettings {
        provisioner: name.into(),
        policy: Policy::default(),
        mapping: Arc::new(Mapping::compile(&MappingConfig::default(), name).unwrap()),
        eligible_group: None,
        subject_sources: None,
        concurrency: 4,
        incremental: duoprov_sync::IncrementalSettings { whole_group_above: 2, ..Default::default() },
        shares_duo_with: vec![shares.to_owned()],
        sync_back: None,
        selection_rules: Default::default(),
        load_duo_users: false,
    };
    let mut world = World {
        store,
        read_only: client(IKEY_READ_ONLY),
        duo,
        handle: handle.clone(),
        settings: settings("stateful", "other"),
        other: settings("other", "stateful"),
        renames: vec![0; SUBJECTS],
        hand_made: BTreeMap::new(),
        unsettled: false,
    };
    // Objects duoprov does not own: a user and a group made by hand before the first sync.
    let outsider = world.duo.create_user(&NewUser::new("outsider").realname("Out Sider")).await.unwrap();
    world.record_hand_made(&outsider.user_id);
    let foreign = world.duo.create_group(&GroupFields::named("foreign").desc("made by hand")).await.unwrap();
    world.record_hand_made(&foreign.group_id);
    world.sync(false, Expect::Quiet).await?;
    for s in &steps {
        world.apply(s).await?;
    }
    // Quiet: the second provisioner, then one full sync (or, for registry-only histories, one
    // incremental sync).
    world.handle.set_faults("").unwrap();
    if !incremental_only {
        world.sync_with(&world.other, &world.duo, false, Expect::Quiet).await?;
    }
    world.sync(incremental_only, Expect::Quiet).await?;
    let dump = world.handle.state();
    let want = expected(&*world.store, "stateful", &dump, storage).await;
    let other_want = expected(&*world.store, "other", &dump, storage).await;
    let mut excluded: BTreeSet<String> = world.hand_made.keys().cloned().collect();
    let other_links = world.store.links("other").await.unwrap();
    excluded.extend(other_links.groups.iter().filter_map(|l| l.duo_group_id.clone()));
    let mut names = BTreeSet::new();
    let twice: Vec<&str> = dump.groups.iter().map(|g| g.name.as_str()).filter(|n| !names.insert(*n)).collect();
    prop_assert!(twice.is_empty(), "Duo groups share a name (a duplicated create?): {:?}; steps {:?}", twice, steps);
    let got = actual(&dump, &want, &excluded);
    prop_assert_eq!(&got.0, &want.0, "managed groups differ after a quiet full sync; steps {:?}", steps);
    prop_assert_eq!(&got.1, &want.1, "managed users differ after a quiet full sync; steps {:?}", steps);
    if !incremental_only {
        // The second provisioner's groups are its own: never adopted or emptied by the first.
        for (name, (_, members)) in &other_want.0 {
            let g = dump.groups.iter().find(|g| &g.name == name);
            let got: Option<BTreeSet<String>> = g.map(|g| dump.users.iter().filter(|u| u.groups.contains(&g.group_id)).map(|u| u.username.clone()).collect());
            prop_assert_eq!(got.as_ref(), Some(members), "group {} of the second provisioner; steps {:?}", name, steps);
        }
        let mine = world.store.links("stateful").await.unwrap();
        let other_ids: BTreeSet<&str> = other_links.groups.iter().filter_map(|l| l.duo_group_id.as_deref()).collect();
        prop_assert!(
            mine.groups.iter().filter_map(|l| l.duo_group_id.as_deref()).all(|id| !other_ids.contains(id)),
            "a Duo group is linked by both provisioners; steps {:?}",
            steps
        );
    }
    let prepared = duoprov_sync::prepare(&*world.store, &world.duo, &world.settings).await.unwrap();
    prop_assert!(prepared.plan.ops.is_empty(), "a second plan is not empty: {:?}; steps {:?}", prepared.plan.ops, steps);
    // Every object made by hand is still in Duo, with the fields it was made with.
    for (id, fields) in &world.hand_made {
        let now = hand_made_fields(&dump, id);
        prop_assert_eq!(now.as_ref(), Some(fields), "a hand-made object was changed or deleted; steps {:?}", steps);
    }
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
        runtime().block_on(check(steps, true, Profile::Evidence))?;
    }
}

/// The adverse profile's cases: fewer (16), as each runs into rate limits.
fn adverse_config() -> ProptestConfig {
    let base = config();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { base.cases } else { 16 };
    ProptestConfig { cases, ..base }
}

proptest! {
    #![proptest_config(adverse_config())]

    /// The same histories and invariants against the emulator's adverse profile: the unverified
    /// readings of Duo taken against duoprov still converge, with no duplicated create and
    /// nothing made by hand touched.
    #[test]
    fn any_history_converges_under_the_adverse_profile(steps in proptest::collection::vec(step(), 1..24)) {
        runtime().block_on(check(steps, false, Profile::Adverse))?;
    }
}

/// The history an administrator lived through: creates refused (no write grant), the objects
/// made by hand under the registry's names, then syncs with the grant fixed. The hand-made
/// objects are adopted, never claimed: their fields stay, and deselected they stay in Duo.
#[test]
fn objects_made_by_hand_after_refused_creates_are_adopted_not_claimed() {
    let steps = vec![
        Step::AddMember(0, 5),
        Step::RemoveGroup(1),
        Step::AddGroup(1),
        Step::AddMember(1, 6),
        Step::RefusedSync(false),
        Step::HandMadeUser(5, true),
        Step::HandMadeGroup(1, 7),
        Step::FullSync,
        Step::RemoveMember(0, 5),
        Step::RemoveGroup(1),
        Step::FullSync,
    ];
    runtime().block_on(scenario(steps)).unwrap();
}
