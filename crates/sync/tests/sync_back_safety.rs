//! The sync-back group's safety rules on both registry databases (SQLite, and PostgreSQL when
//! `DUOPROV_TEST_POSTGRES_URL` is set): removals over its thresholds, or after a load of the Duo
//! users table that skipped users it could not read, are refused with nothing written, and
//! applied only when the approval names exactly their digest. The command-line path (exit code,
//! message) is tested in the CLI's `sync_back` suite.

use std::sync::atomic::{AtomicU32, Ordering};

use duoprov_model::{GroupMember, GroupName, SubjectKey, SubjectPatch};
use duoprov_registry::{AuditActor, OpenOptions, Store};
use duoprov_sync::sync_back::{SyncBackRule, SyncBackRun, SyncBackSettings, sync_back};
use duoprov_sync::SyncError;

mod common;

const P: &str = "duoTest";
const GROUP: &str = "app:mfa:enrolled";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Prints `SKIPPED: <test> — <reason>` past the test harness's capture.
fn skipped(reason: &str) {
    use std::io::Write as _;
    let thread = std::thread::current();
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {} — {reason}", thread.name().unwrap_or("a test"));
}

/// SQLite in memory, and PostgreSQL in a schema of its own when configured.
async fn stores(test: &str) -> Vec<(&'static str, Box<dyn Store>)> {
    let mut out: Vec<(&'static str, Box<dyn Store>)> = vec![("sqlite", duoprov_registry::open("sqlite::memory:", &OpenOptions::default()).await.expect("SQLite"))];
    match std::env::var("DUOPROV_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let short: String = test.chars().take(40).collect();
            let schema = format!("t_{short}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
            let options = OpenOptions { schema: Some(schema), ..Default::default() };
            // Never print the URL: it carries the role's password.
            let store = duoprov_registry::open(&url, &options).await.unwrap_or_else(|e| panic!("cannot open the PostgreSQL test registry: {e}"));
            out.push(("postgres", store));
        }
        _ => {
            assert_ne!(std::env::var("DUOPROV_REQUIRE_EXTERNAL").as_deref(), Ok("1"), "DUOPROV_TEST_POSTGRES_URL is not set but DUOPROV_REQUIRE_EXTERNAL=1");
            skipped(&format!("the PostgreSQL half of {test}: DUOPROV_TEST_POSTGRES_URL is not set"));
        }
    }
    out
}

fn settings() -> duoprov_sync::SyncSettings {
    let mut s = common::settings(P, 1);
    s.sync_back = Some(SyncBackSettings::new(GroupName::parse(GROUP).unwrap(), SyncBackRule::Enrolled));
    s
}

/// Duo users `u0..u{n}` (enrolled when listed in `enrolled`), plus `ghosts` users Duo sent
/// without a `user_id` (which the load skips).
fn duo_users(n: usize, enrolled: impl Fn(usize) -> bool, ghosts: usize) -> Vec<duoprov_duo::User> {
    let mut users: Vec<serde_json::Value> = (0..n)
        .map(|i| serde_json::json!({"user_id": format!("DUSYNCBACK{i:010}"), "username": format!("u{i}"), "created": 1, "is_enrolled": enrolled(i), "status": "active"}))
        .collect();
    users.extend((0..ghosts).map(|i| serde_json::json!({"user_id": "", "username": format!("ghost{i}"), "created": 1, "is_enrolled": true})));
    serde_json::from_value(serde_json::Value::Array(users)).expect("Duo users")
}

async fn load(store: &dyn Store, users: &[duoprov_duo::User]) -> SyncBackRun {
    let outcome = duoprov_sync::duo_users::load(store, P, users).await.expect("load");
    SyncBackRun::after_load(&outcome.problems)
}

async fn members(store: &dyn Store) -> Vec<SubjectKey> {
    let mut m: Vec<SubjectKey> = store
        .members(&GroupName::parse(GROUP).unwrap())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            GroupMember::Subject(k) => Some(k),
            GroupMember::Group { .. } => None,
        })
        .collect();
    m.sort();
    m
}

async fn seed(store: &dyn Store, n: usize) {
    for i in 0..n {
        let patch = SubjectPatch { login_id: Some(Some(format!("u{i}"))), name: Some(Some(format!("Person {i}"))), ..Default::default() };
        store.upsert_subject(&SubjectKey::local(format!("u{i}")), &patch).await.unwrap();
    }
}

fn refusal(result: Result<Option<duoprov_sync::sync_back::SyncBackOutcome>, SyncError>) -> Box<duoprov_sync::sync_back::SyncBackRefusal> {
    match result {
        Err(SyncError::SyncBackRefused(r)) => r,
        other => panic!("expected a sync-back refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn an_emptied_duo_users_table_does_not_empty_the_sync_back_group_without_an_approval_of_its_digest() {
    for (db, store) in stores("sync_back_emptied").await {
        let store = &*store;
        let settings = settings();
        let actor = AuditActor::cli();
        seed(store, 12).await;
        let run = load(store, &duo_users(12, |_| true, 0)).await;
        let done = sync_back(store, &settings, &actor, &run).await.unwrap().unwrap();
        assert_eq!((done.added, done.members), (12, 12), "{db}");

        // A bad load: Duo's table comes back empty. Every member would go: refused, nothing written.
        let run = load(store, &[]).await;
        let r = refusal(sync_back(store, &settings, &actor, &run).await);
        let message = r.message();
        assert!(message.contains(&format!("refused to update the sync-back group {GROUP} of provisioner {P}; nothing was changed")), "{db}: {message}");
        assert!(message.contains("12 of 12 members of sync-back group app:mfa:enrolled would be removed, over sync_back_max_removal_percent = 30"), "{db}: {message}");
        assert!(message.contains(&format!("duoprov load-users {P} --approve {}", r.digest)), "{db}: {message}");
        assert_eq!(members(store).await.len(), 12, "{db}: nothing removed");

        // A partial table: five of twelve (42 %) would go. Refused; raising the threshold would lift it.
        let run = load(store, &duo_users(12, |i| i >= 5, 0)).await;
        let r = refusal(sync_back(store, &settings, &actor, &run).await);
        assert_eq!(r.reasons, ["5 of 12 members of sync-back group app:mfa:enrolled would be removed, over sync_back_max_removal_percent = 30"], "{db}");
        assert!(r.thresholds_help && r.message().contains("raise sync_back_max_removals / sync_back_max_removal_percent in [provisioner.duoTest.thresholds]"), "{db}");
        assert_eq!(members(store).await.len(), 12, "{db}: nothing removed");

        // Three of twelve (25 %) is within the default thresholds: applied without approval.
        let run = load(store, &duo_users(12, |i| i >= 3, 0)).await;
        let done = sync_back(store, &settings, &actor, &run).await.unwrap().unwrap();
        assert_eq!((done.removed, done.members), (3, 9), "{db}");

        // Below the percentage rule's group size, emptying the group is still refused: only an
        // approval lifts it. A digest of another list refuses; the shown one applies exactly it.
        let run = load(store, &[]).await;
        let r = refusal(sync_back(store, &settings, &actor, &run).await);
        assert!(r.reasons.iter().any(|m| m.contains("no Duo user in the loaded table meets rule enrolled while the group holds 9 members")), "{db}: {:?}", r.reasons);
        assert!(!r.thresholds_help, "{db}");
        let shown = r.digest;
        let wrong = SyncBackRun { approve: Some("0123456789ab".into()), ..run.clone() };
        let r = refusal(sync_back(store, &settings, &actor, &wrong).await);
        assert!(r.reasons.iter().any(|m| m.contains("does not match this update's removals")), "{db}: {:?}", r.reasons);
        assert_eq!(members(store).await.len(), 9, "{db}");
        let approved = SyncBackRun { approve: Some(shown), ..run };
        let done = sync_back(store, &settings, &actor, &approved).await.unwrap().unwrap();
        assert_eq!((done.removed, done.members), (9, 0), "{db}");
        assert!(members(store).await.is_empty(), "{db}");
    }
}

#[tokio::test]
async fn a_load_that_skipped_duo_users_removes_no_member_until_approved_but_still_adds() {
    for (db, store) in stores("sync_back_skipped").await {
        let store = &*store;
        let settings = settings();
        let actor = AuditActor::cli();
        seed(store, 4).await;
        let run = load(store, &duo_users(4, |i| i < 3, 0)).await;
        assert_eq!(sync_back(store, &settings, &actor, &run).await.unwrap().unwrap().members, 3, "{db}");

        // Duo sent one user the load could not read: with only an addition, the update applies.
        let run = load(store, &duo_users(4, |_| true, 1)).await;
        assert_eq!(run.skipped_users, 1, "{db}");
        let done = sync_back(store, &settings, &actor, &run).await.unwrap().unwrap();
        assert_eq!((done.added, done.removed, done.members), (1, 0, 4), "{db}");

        // One removal — far below every threshold — after such a load is refused, and raising
        // the thresholds would not help.
        let run = load(store, &duo_users(4, |i| i != 0, 1)).await;
        let r = refusal(sync_back(store, &settings, &actor, &run).await);
        assert!(r.reasons.iter().any(|m| m.contains("loaded incompletely (1 Duo user could not be read")), "{db}: {:?}", r.reasons);
        assert!(!r.thresholds_help && r.message().contains("raising thresholds does not lift this refusal"), "{db}: {}", r.message());
        assert_eq!(r.removals, ["remove subject local:u0"], "{db}");
        assert_eq!(members(store).await.len(), 4, "{db}: nothing removed");
        let approved = SyncBackRun { approve: Some(r.digest.clone()), ..run };
        assert_eq!(sync_back(store, &settings, &actor, &approved).await.unwrap().unwrap().removed, 1, "{db}");
    }
}
