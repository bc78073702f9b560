//! Usernames, aliases and Trash against the emulator, as Duo most likely handles them: a subject
//! whose login id has capitals converges (full and incremental runs plan nothing once synced)
//! whether Duo lowercases usernames (`lowercase_usernames`, the emulator's default) or keeps them
//! verbatim. Also on this emulator world: the progress a full sync reports while it reads Duo
//! and while it applies.

use std::sync::Arc;
use std::time::Duration;

use duoprov_duo::{DuoClient, DuoConfig, NewUser, PacingConfig, RetryConfig};
use duoprov_emulator::{Emulator, EmulatorHandle, Integration, Settings, UsernameComparison, UsernameStorage};
use duoprov_model::{FolderPath, GroupMember, GroupName, Marker, MarkerScope, MarkerTarget, SubjectKey, SubjectPatch};
use duoprov_plan::safety::Approval;
use duoprov_plan::{Mapping, MappingConfig, Plan, Policy};
use duoprov_registry::{NodeAttrs, OpenOptions, Store};
use duoprov_sync::{Incremental, NoProgress, RunReport, SyncOptions, SyncSettings};

const IKEY: &str = "DIUSERNAMESTEST00001";
const SKEY: &str = "usernames-test-secret-key-0123456789abcd";

struct World {
    _emulator: duoprov_emulator::RunningEmulator,
    handle: EmulatorHandle,
    duo: DuoClient,
    store: Box<dyn Store>,
    settings: SyncSettings,
}

fn group(name: &str) -> GroupName {
    GroupName::parse(&format!("app:duo:{name}")).unwrap()
}

async fn world(configure: impl FnOnce(&mut Settings) + Send + 'static, mapping: MappingConfig, policy: Policy) -> World {
    // The client is unpaced and this suite is not about rate limits: the minute-wide burst it
    // was written against (a `configure` may still change it).
    let emulator = Emulator::builder()
        .integration(Integration::new(IKEY, SKEY))
        .configure(|s| s.rate_limits.burst_fraction = Some(1.0))
        .configure(configure)
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
    let marker = Marker { provisioner: "p".into(), target: MarkerTarget::Folder(FolderPath::parse("app:duo").unwrap()), scope: MarkerScope::Sub, provision: true };
    store.add_group(&group("staff"), &NodeAttrs::default(), true).await.unwrap();
    store.assign_marker(&marker).await.unwrap();
    let settings = SyncSettings {
        provisioner: "p".into(),
        policy,
        mapping: Arc::new(Mapping::compile(&mapping, "p").unwrap()),
        eligible_group: None,
        subject_sources: None,
        concurrency: 2,
        incremental: Default::default(),
        load_duo_users: false,
        shares_duo_with: Vec::new(),
        sync_back: None,
        selection_rules: Default::default(),
    };
    World { _emulator: emulator, handle, duo, store, settings }
}

impl World {
    async fn add_subject(&self, id: &str, login: &str, groups: &[&str]) -> SubjectKey {
        let key = SubjectKey::new("ldap", id);
        let patch = SubjectPatch { login_id: Some(Some(login.into())), name: Some(Some(format!("Person {id}"))), ..Default::default() };
        self.store.upsert_subject(&key, &patch).await.unwrap();
        for g in groups {
            self.store.add_member(&group(g), &GroupMember::Subject(key.clone())).await.unwrap();
        }
        key
    }

    async fn full_plan(&self) -> duoprov_sync::Prepared {
        duoprov_sync::prepare(&*self.store, &self.duo, &self.settings).await.unwrap_or_else(|e| panic!("prepare: {e}"))
    }

    /// The incremental run's plan, `None` when idle (escalations fail the test).
    async fn incremental_plan(&self) -> Option<duoprov_sync::Prepared> {
        match duoprov_sync::prepare_incremental(&*self.store, &self.duo, &self.settings, duoprov_sync::now_ms()).await.unwrap_or_else(|e| panic!("incremental: {e}")) {
            Incremental::Planned(p) => Some(*p),
            Incremental::Idle { .. } => None,
            Incremental::Escalate { reason } => panic!("incremental run escalated: {reason}"),
        }
    }

    /// The reason an incremental run gives way to a full sync, `None` when it does not.
    async fn incremental_escalation(&self) -> Option<String> {
        match duoprov_sync::prepare_incremental(&*self.store, &self.duo, &self.settings, duoprov_sync::now_ms()).await.unwrap_or_else(|e| panic!("incremental: {e}")) {
            Incremental::Escalate { reason } => Some(reason),
            _ => None,
        }
    }

    /// The incremental run's plan, or the full plan it gives way to; `None` when idle.
    async fn incremental_or_full_plan(&self) -> (Option<duoprov_sync::Prepared>, Option<String>) {
        match duoprov_sync::prepare_incremental(&*self.store, &self.duo, &self.settings, duoprov_sync::now_ms()).await.unwrap_or_else(|e| panic!("incremental: {e}")) {
            Incremental::Planned(p) => (Some(*p), None),
            Incremental::Idle { .. } => (None, None),
            Incremental::Escalate { reason } => (Some(self.full_plan().await), Some(reason)),
        }
    }

    /// Runs `duoprov doctor --probe`'s probe against the emulator and hands its readings to the
    /// client, as a recorded probe is.
    async fn probe(&self) -> duoprov_duo::ProbeReport {
        let report = duoprov_duo::probe::probe(&self.duo, "t0000001").await;
        assert!(report.complete(), "{report:?}");
        self.duo.apply_probe(&report);
        report
    }

    async fn run(&self, prepared: duoprov_sync::Prepared) -> RunReport {
        let options = SyncOptions { dry_run: false, approval: Approval::exactly(&prepared.plan), saved: None, fence: None, ..Default::default() };
        let report = duoprov_sync::run(&*self.store, &self.duo, &self.settings, prepared, &options, &NoProgress).await.unwrap_or_else(|e| panic!("run: {e}"));
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        report
    }

    async fn full_sync(&self) -> RunReport {
        let p = self.full_plan().await;
        self.run(p).await
    }

    /// Duo's users as (username, status, group names).
    fn duo_users(&self) -> Vec<(String, String, Vec<String>)> {
        let dump = self.handle.state();
        let name_of = |gid: &_| dump.groups.iter().find(|g| &g.group_id == gid).map(|g| g.name.clone()).unwrap_or_default();
        dump.users
            .iter()
            .map(|u| {
                let status = serde_json::to_value(u.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                (u.username.clone(), status, u.groups.iter().map(name_of).collect())
            })
            .collect()
    }
}

fn ops(plan: &Plan) -> String {
    duoprov_plan::render::text(plan)
}

async fn mixed_case_login_converges(lowercase: bool) {
    let w = world(move |s| s.lowercase_usernames = lowercase, MappingConfig::default(), Policy::default()).await;
    let key = w.add_subject("js", "JSmith", &["staff"]).await;
    w.full_sync().await;
    let stored = if lowercase { "jsmith" } else { "JSmith" };
    assert_eq!(w.duo_users(), vec![(stored.to_owned(), "active".to_owned(), vec!["staff".to_owned()])], "lowercase_usernames={lowercase}");

    let again = w.full_plan().await;
    assert!(again.plan.is_empty(), "lowercase_usernames={lowercase}: a full run after the sync plans nothing:\n{}", ops(&again.plan));
    w.run(again).await;
    // The subject changes in a field the mapping does not use: the incremental run reads and
    // plans it, and finds nothing to do.
    let patch = SubjectPatch { description: Some(Some("touched".into())), ..Default::default() };
    w.store.update_subject(&key, &patch).await.unwrap();
    let inc = w.incremental_plan().await.expect("the change is planned");
    assert!(inc.plan.is_empty(), "lowercase_usernames={lowercase}: an incremental run plans nothing:\n{}", ops(&inc.plan));
    assert!(inc.plan.errors.is_empty(), "{:?}", inc.plan.errors);
    w.run(inc).await;
    // A second mixed-case subject arrives. Without a probe, an incremental run finds it under no
    // case: on a Duo whose lookups find a known user in another case it creates it itself; on
    // one whose lookups compare exactly it cannot rule out the name in another case, and gives
    // way to a full sync naming the probe.
    let other = w.add_subject("kw", "KWilson", &["staff"]).await;
    if lowercase {
        let inc = w.incremental_plan().await.expect("the new member is planned");
        w.run(inc).await;
    } else {
        let reason = w.incremental_escalation().await.expect("escalated without a probe");
        assert!(reason.contains("`duoprov doctor p --probe`"), "{reason}");
        w.full_sync().await;
    }
    // With a recorded probe, the next new subject arrives by an incremental run.
    w.probe().await;
    let third = w.add_subject("ln", "LNguyen", &["staff"]).await;
    let inc = w.incremental_plan().await.expect("the new member is planned");
    assert_eq!(inc.plan.ops.iter().filter(|o| matches!(o.op, duoprov_plan::Op::CreateUser { .. })).count(), 1, "{}", ops(&inc.plan));
    w.run(inc).await;
    w.store.update_subject(&third, &patch).await.unwrap();
    w.store.update_subject(&other, &patch).await.unwrap();
    w.store.update_subject(&key, &SubjectPatch { description: Some(Some("again".into())), ..Default::default() }).await.unwrap();
    let inc = w.incremental_plan().await.expect("the changes are planned");
    assert!(inc.plan.is_empty(), "lowercase_usernames={lowercase}: {}", ops(&inc.plan));
    let full = w.full_plan().await;
    assert!(full.plan.is_empty(), "lowercase_usernames={lowercase}: {}", ops(&full.plan));
    assert_eq!(w.duo_users().len(), 3, "no second user for any subject");
}

#[tokio::test]
async fn a_mixed_case_login_id_converges_when_duo_lowercases_usernames() {
    mixed_case_login_converges(true).await;
}

#[tokio::test]
async fn a_mixed_case_login_id_converges_when_duo_keeps_usernames_verbatim() {
    mixed_case_login_converges(false).await;
}

#[tokio::test]
async fn an_alias_template_reaches_duo_on_create_and_on_update() {
    let mapping = MappingConfig { aliases: [Some("{{ subject.id }}@alt.example".into()), None, None, None], ..Default::default() };
    let w = world(|_| {}, mapping, Policy::default()).await;
    w.add_subject("js", "jsmith", &["staff"]).await;
    w.full_sync().await;
    let dump = w.handle.state();
    assert_eq!(dump.users[0].aliases.get(&1).map(String::as_str), Some("js@alt.example"), "sent on create");
    assert!(w.full_plan().await.plan.is_empty(), "quiet once Duo carries the alias");
    // Removed in Duo by hand: set again.
    let id = dump.users[0].user_id;
    w.handle.with_tenant_mut(|t, _| t.modify_user(&id, duoprov_emulator::state::UserFields { aliases: vec![(1, None)], ..Default::default() }).unwrap());
    w.full_sync().await;
    assert_eq!(w.handle.state().users[0].aliases.get(&1).map(String::as_str), Some("js@alt.example"), "sent on update");
}

/// A user duoprov created leaves (trashed), comes back (restored, memberships back, still
/// duoprov's own), under `user_delete_mode`; `incremental` makes the return an incremental run.
async fn trash_round_trip(mode: duoprov_plan::UserDeleteMode, incremental: bool) {
    let policy = Policy { user_delete: duoprov_plan::DeletePolicy::CreatedByUs, user_delete_mode: mode, ..Policy::default() };
    let w = world(|_| {}, MappingConfig::default(), policy).await;
    w.store.add_group(&group("other"), &NodeAttrs::default(), true).await.unwrap();
    let key = w.add_subject("js", "jsmith", &["staff", "other"]).await;
    w.full_sync().await;
    let link = |links: duoprov_model::Links| links.users.into_iter().find(|l| l.subject == key);
    for g in ["staff", "other"] {
        w.store.remove_member(&group(g), &GroupMember::Subject(key.clone())).await.unwrap();
    }
    if mode == duoprov_plan::UserDeleteMode::DisableThenTrash {
        // Duo refuses the Trash: the user is left disabled (it cannot authenticate), and the
        // deletion is planned again.
        w.handle.set_faults("503 on=users.bulk_send_to_trash").unwrap();
        let p = w.full_plan().await;
        let options = SyncOptions { dry_run: false, approval: Approval::exactly(&p.plan), saved: None, fence: None, ..Default::default() };
        let report = duoprov_sync::run(&*w.store, &w.duo, &w.settings, p, &options, &NoProgress).await.unwrap_or_else(|e| panic!("run: {e}"));
        assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
        assert_eq!(w.duo_users(), vec![("jsmith".to_owned(), "disabled".to_owned(), vec![])], "disabled before the Trash");
        w.handle.set_faults("").unwrap();
    }
    w.full_sync().await;
    assert_eq!(w.duo_users(), vec![("jsmith".to_owned(), "pending deletion".to_owned(), vec![])], "{mode:?}: sent to Trash");
    let parked = link(w.store.links("p").await.unwrap()).expect("the link is kept while the user is in Trash");
    assert!(parked.created_by_us && parked.duo_user_id.is_some() && !parked.in_target, "{parked:?}");
    let quiet = w.full_plan().await;
    assert!(quiet.plan.is_empty(), "{mode:?}: a trashed user is not deleted again: {}", ops(&quiet.plan));
    w.run(quiet).await;

    for g in ["staff", "other"] {
        w.store.add_member(&group(g), &GroupMember::Subject(key.clone())).await.unwrap();
    }
    let back = if incremental { w.incremental_plan().await.expect("the return is planned") } else { w.full_plan().await };
    let reactivate = mode == duoprov_plan::UserDeleteMode::DisableThenTrash;
    assert!(back.plan.ops.iter().any(|o| matches!(o.op, duoprov_plan::Op::RestoreUser { reactivate: r, .. } if r == reactivate)), "{}", ops(&back.plan));
    assert!(!back.plan.ops.iter().any(|o| matches!(o.op, duoprov_plan::Op::CreateUser { .. })), "{}", ops(&back.plan));
    w.run(back).await;
    let users = w.duo_users();
    assert_eq!(users.len(), 1);
    let (name, status, mut groups) = users[0].clone();
    groups.sort();
    assert_eq!((name.as_str(), status.as_str(), groups), ("jsmith", "active", vec!["other".to_owned(), "staff".to_owned()]), "{mode:?}: restored with its memberships");
    let l = link(w.store.links("p").await.unwrap()).expect("linked");
    assert!(l.created_by_us && l.in_target, "{mode:?}: still duoprov's own: {l:?}");
    let after = w.full_plan().await;
    assert!(after.plan.is_empty(), "{}", ops(&after.plan));
}

#[tokio::test]
async fn a_user_sent_to_trash_and_selected_again_is_restored_with_its_memberships_and_still_owned() {
    trash_round_trip(duoprov_plan::UserDeleteMode::Trash, false).await;
}

#[tokio::test]
async fn a_trashed_user_returning_in_an_incremental_run_is_restored() {
    trash_round_trip(duoprov_plan::UserDeleteMode::Trash, true).await;
}

#[tokio::test]
async fn disable_then_trash_disables_before_trashing_and_reactivates_on_restore() {
    trash_round_trip(duoprov_plan::UserDeleteMode::DisableThenTrash, false).await;
}

/// Every phase a run reported, with its total and the units reported done.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(String, u64, u64, usize)>>);

impl duoprov_sync::Progress for Recorder {
    fn phase(&self, name: &str, total: u64) {
        self.0.lock().unwrap().push((name.to_owned(), total, 0, 0));
    }
    fn advance(&self, n: u64) {
        if let Some(last) = self.0.lock().unwrap().last_mut() {
            last.2 += n;
            last.3 += 1;
        }
    }
    fn finish(&self) {}
}

#[tokio::test]
async fn a_full_sync_reports_progress_counting_duo_pages_read_and_objects_applied() {
    let w = world(|_| {}, MappingConfig::default(), Policy::default()).await;
    for i in 0..650 {
        w.add_subject(&format!("s{i:03}"), &format!("user{i:03}"), &["staff"]).await;
    }
    let first = w.full_plan().await;
    let recorder = Recorder::default();
    let options = SyncOptions { dry_run: false, approval: Approval::exactly(&first.plan), saved: None, fence: None, ..Default::default() };
    duoprov_sync::run(&*w.store, &w.duo, &w.settings, first, &options, &recorder).await.unwrap();
    let phases = recorder.0.lock().unwrap().clone();
    let creates = phases.iter().find(|p| p.0 == "create users").unwrap_or_else(|| panic!("{phases:?}"));
    assert_eq!((creates.1, creates.2), (650, 650), "every created user counted once: {phases:?}");

    // Reading 650 users back: three pages of at most 300, counted as they arrive.
    let recorder = Recorder::default();
    let again = duoprov_sync::prepare_with_progress(&*w.store, &w.duo, &w.settings, &recorder).await.unwrap();
    assert!(again.plan.is_empty(), "{}", ops(&again.plan));
    let phases = recorder.0.lock().unwrap().clone();
    assert_eq!(phases.len(), 1, "{phases:?}");
    let (name, total, done, steps) = &phases[0];
    assert_eq!((name.as_str(), *total, *done), ("read Duo users", 650, 650), "{phases:?}");
    assert!(*steps >= 3, "one step a page: {phases:?}");
}

/// Which of the plan's user decisions a scenario compares between an incremental and a full
/// run: usernames created, Duo users adopted (by username), subjects held with MAT.
fn user_decisions(plan: &Plan) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut creates: Vec<String> = plan.ops.iter().filter_map(|o| match &o.op { duoprov_plan::Op::CreateUser { username, .. } => Some(username.clone()), _ => None }).collect();
    let mut adopted: Vec<String> = plan.adoptions.iter().filter_map(|a| match a { duoprov_plan::Adoption::User { username, .. } => Some(username.clone()), _ => None }).collect();
    let mut held: Vec<String> = plan
        .errors
        .iter()
        .filter(|e| e.code == duoprov_plan::ErrorCode::Mat)
        .filter_map(|e| match &e.object { duoprov_plan::error::ErrorObject::User { id, .. } => Some(id.clone()), _ => None })
        .collect();
    creates.sort();
    adopted.sort();
    held.sort();
    (creates, adopted, held)
}

/// Registry subjects `JDoe`, `asmith` and `MNew`; Duo users made by hand as `jdoe` and `ASmith`
/// (the first two differ from a subject only in case) under one reading of Duo's usernames,
/// with or without a recorded probe. The incremental run that brings the subjects in decides
/// as a full sync would (or gives way to one), no create is duplicated, nothing made by hand is
/// renamed or deleted, a case-only match is held naming the probe exactly when no probe says
/// what it is, and the next full and incremental plans are empty.
async fn hand_made_users_differing_only_in_case(storage: UsernameStorage, comparison: UsernameComparison, probed: bool) {
    let label = format!("{storage:?}/{comparison:?}, probed={probed}");
    let w = world(
        move |s| {
            s.username_storage = Some(storage);
            s.username_comparison = Some(comparison);
        },
        MappingConfig::default(),
        Policy::default(),
    )
    .await;
    let jdoe = w.duo.create_user(&NewUser::new("jdoe").realname("Hand Made J")).await.unwrap();
    let asmith = w.duo.create_user(&NewUser::new("ASmith").realname("Hand Made A")).await.unwrap();
    let hand_made = [(jdoe.user_id.clone(), jdoe.username.clone()), (asmith.user_id.clone(), asmith.username.clone())];
    // The first sync (nothing selected yet) sets the checkpoint.
    w.full_sync().await;
    let exact = if probed { !w.probe().await.usernames.expect("read").lowercase_lookup_finds } else { false };
    assert_eq!(exact, probed && comparison == UsernameComparison::Exact, "{label}: the probe reads the emulator's comparison");
    for (id, login) in [("jd", "JDoe"), ("as", "asmith"), ("mn", "MNew")] {
        w.add_subject(id, login, &["staff"]).await;
    }

    // What each subject should get. A Duo user of exactly the subject's spelling is adopted;
    // one differing only in case is adopted when a probe found case-insensitive comparison, is
    // another person's (a create) when it found exact comparison, and is held without a probe.
    let lowercased = storage == UsernameStorage::Lowercase;
    let mut want_creates = vec!["MNew".to_owned()];
    let mut want_adopted = Vec::new();
    let mut want_held = Vec::new();
    for (subject, login, duo_name) in [("jd", "JDoe", "jdoe"), ("as", "asmith", if lowercased { "asmith" } else { "ASmith" })] {
        match (login == duo_name, probed, exact) {
            (true, _, _) | (false, true, false) => want_adopted.push(duo_name.to_owned()),
            (false, true, true) => want_creates.push(login.to_owned()),
            (false, false, _) => want_held.push(subject.to_owned()),
        }
    }
    want_creates.sort();
    want_adopted.sort();
    want_held.sort();
    let full = w.full_plan().await;
    let (inc, escalated) = w.incremental_or_full_plan().await;
    let inc = inc.expect("the new members are planned");
    assert_eq!(user_decisions(&full.plan), (want_creates.clone(), want_adopted.clone(), want_held.clone()), "{label}: the full plan\n{}", ops(&full.plan));
    assert_eq!(user_decisions(&inc.plan), user_decisions(&full.plan), "{label}: the incremental plan decides as the full plan\n{}", ops(&inc.plan));
    // The incremental run gives way only where its lookups cannot be exhaustive (exact comparison,
    // no probe), and then it names the probe.
    let must_escalate = !probed && comparison == UsernameComparison::Exact;
    match &escalated {
        Some(reason) => assert!(must_escalate && reason.contains("`duoprov doctor p --probe`"), "{label}: {reason}"),
        None => assert!(!must_escalate, "{label}: without a probe the incremental run cannot rule out asmith/MNew in another case"),
    }
    for e in inc.plan.errors.iter().filter(|e| e.code == duoprov_plan::ErrorCode::Mat) {
        assert!(e.message.contains("`duoprov doctor p --probe`"), "{label}: {}", e.message);
    }
    w.run(inc).await;

    // Converged: nothing more to do, by either kind of run.
    let again = w.full_plan().await;
    assert!(again.plan.ops.is_empty(), "{label}: a second full plan is empty\n{}", ops(&again.plan));
    assert_eq!(user_decisions(&again.plan).2, want_held, "{label}: the same subjects stay held");
    let touched = SubjectPatch { description: Some(Some("touched".into())), ..Default::default() };
    for id in ["jd", "as", "mn"] {
        w.store.update_subject(&SubjectKey::new("ldap", id), &touched).await.unwrap();
    }
    let (inc, _) = w.incremental_or_full_plan().await;
    let inc = inc.expect("the touched subjects are planned");
    assert!(inc.plan.ops.is_empty(), "{label}: a second incremental plan is empty\n{}", ops(&inc.plan));
    w.run(inc).await;

    // Made by hand: still there under the same username. One Duo user per created name.
    let dump = w.handle.state();
    for (id, name) in &hand_made {
        let now = dump.users.iter().find(|u| u.user_id.as_str() == id.as_str()).unwrap_or_else(|| panic!("{label}: {name} was deleted"));
        assert_eq!(&now.username, name, "{label}: a user made by hand was renamed");
        assert!(now.realname.starts_with("Hand Made"), "{label}: {}", now.realname);
    }
    let probe_users = dump.users.iter().filter(|u| u.username.to_lowercase().starts_with("duoprov-probe")).count();
    let stored = |n: &str| if lowercased { n.to_lowercase() } else { n.to_owned() };
    for name in &want_creates {
        assert_eq!(dump.users.iter().filter(|u| u.username == stored(name)).count(), 1, "{label}: exactly one {name}");
    }
    assert_eq!(dump.users.len() - probe_users, hand_made.len() + want_creates.len(), "{label}: no other user was created");
}

#[tokio::test]
async fn hand_made_users_differing_only_in_case_when_duo_lowercases_and_compares_case_insensitively() {
    for probed in [false, true] {
        hand_made_users_differing_only_in_case(UsernameStorage::Lowercase, UsernameComparison::CaseInsensitive, probed).await;
    }
}

#[tokio::test]
async fn hand_made_users_differing_only_in_case_when_duo_keeps_case_and_compares_case_insensitively() {
    for probed in [false, true] {
        hand_made_users_differing_only_in_case(UsernameStorage::Verbatim, UsernameComparison::CaseInsensitive, probed).await;
    }
}

#[tokio::test]
async fn hand_made_users_differing_only_in_case_when_duo_keeps_case_and_compares_exactly() {
    for probed in [false, true] {
        hand_made_users_differing_only_in_case(UsernameStorage::Verbatim, UsernameComparison::Exact, probed).await;
    }
}
