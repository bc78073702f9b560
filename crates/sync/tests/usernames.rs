//! Usernames, aliases and Trash against the emulator, as Duo most likely handles them: a subject
//! whose login id has capitals converges (full and incremental runs plan nothing once synced)
//! whether Duo lowercases usernames (`lowercase_usernames`, the emulator's default) or keeps them
//! verbatim. Also on this emulator world: the progress a full sync reports while it reads Duo
//! and while it applies.

use std::sync::Arc;
use std::time::Duration;

use duoprov_duo::{DuoClient, DuoConfig, PacingConfig, RetryConfig};
use duoprov_emulator::{Emulator, EmulatorHandle, Integration, Settings};
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
    let emulator = Emulator::builder().integration(Integration::new(IKEY, SKEY)).configure(configure).spawn_on("127.0.0.1:0").await.expect("emulator");
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

    async fn run(&self, prepared: duoprov_sync::Prepared) -> RunReport {
        let options = SyncOptions { dry_run: false, approval: Approval::exactly(&prepared.plan), saved: None, fence: None };
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
    // A second mixed-case subject arrives by an incremental run, and stays quiet after.
    let other = w.add_subject("kw", "KWilson", &["staff"]).await;
    let inc = w.incremental_plan().await.expect("the new member is planned");
    w.run(inc).await;
    w.store.update_subject(&other, &patch).await.unwrap();
    w.store.update_subject(&key, &SubjectPatch { description: Some(Some("again".into())), ..Default::default() }).await.unwrap();
    let inc = w.incremental_plan().await.expect("the changes are planned");
    assert!(inc.plan.is_empty(), "lowercase_usernames={lowercase}: {}", ops(&inc.plan));
    let full = w.full_plan().await;
    assert!(full.plan.is_empty(), "lowercase_usernames={lowercase}: {}", ops(&full.plan));
    assert_eq!(w.duo_users().len(), 2, "no second user for either subject");
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
        let options = SyncOptions { dry_run: false, approval: Approval::exactly(&p.plan), saved: None, fence: None };
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
    let options = SyncOptions { dry_run: false, approval: Approval::exactly(&first.plan), saved: None, fence: None };
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
