//! `user_delete_mode = "disable"` end to end, through the binary against an in-process emulator:
//! a user duoprov would remove is disabled (never deleted), once (the next run makes no call),
//! with an audit entry; it is re-enabled when its subject is selected again, only if duoprov
//! disabled it (a user an administrator disabled stays disabled, and the plan says so); and
//! disables count in the safety thresholds like deletions (refusal, digest, approval).

use std::path::Path;

use duoprov_emulator::state::{UserFields, UserStatus};
use duoprov_emulator::{Emulator, Integration, RunningEmulator};
use serde_json::Value;

use crate::run;

const IKEY: &str = "DIDISABLEINSTEAD0001";
const SKEY: &str = "disable-test-secret-key-0123456789abcdefg";

async fn setup(provisioner_extra: &str) -> (RunningEmulator, tempfile::TempDir) {
    let emulator = Emulator::builder().integration(Integration::new(IKEY, SKEY)).configure(|s| s.rate_limits.enabled = false).spawn_on("127.0.0.1:0").await.expect("emulator");
    let tmp = tempfile::tempdir().unwrap();
    let extra = format!("delete_users = \"not_in_source\"\nuser_delete_mode = \"disable\"\n{provisioner_extra}");
    crate::write_emulator_setup(tmp.path(), &emulator.base_url(), IKEY, SKEY, "", &extra);
    (emulator, tmp)
}

fn seed(dir: &Path, subjects: &[&str]) {
    run(dir, &["group", "add", "app:duo:staff", "--create-parents"], 0);
    for s in subjects {
        run(dir, &["subject", "add", s, "--name", &format!("Person {s}"), "--login-id", s], 0);
    }
    let mut args = vec!["member", "add", "app:duo:staff"];
    args.extend_from_slice(subjects);
    run(dir, &args, 0);
    run(dir, &["provision", "assign", "duoTest", "--folder", "app:duo", "--scope", "sub"], 0);
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The Duo user's status, or `None` when Duo has no such user.
fn status(emu: &RunningEmulator, username: &str) -> Option<&'static str> {
    emu.handle().state().users.iter().find(|u| u.username == username).map(|u| u.status.as_str())
}

fn audit_actions(dir: &Path, username: &str) -> Vec<(String, String)> {
    let list = json(&run(dir, &["audit", "list", "--json", "--object", username], 0).0);
    list.as_array().expect("a list").iter().map(|e| (e["action"].as_str().unwrap().to_owned(), e["duo"]["status"].as_str().unwrap_or("").to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_user_is_disabled_once_never_deleted_and_re_enabled_when_selected_again() {
    let (emu, tmp) = setup("").await;
    let dir = tmp.path();
    seed(dir, &["alice", "bob"]);
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(status(&emu, "bob"), Some("active"));

    // bob leaves: the plan says "disable", the sync disables him and deletes nothing.
    run(dir, &["member", "remove", "app:duo:staff", "bob"], 0);
    let (plan, _) = run(dir, &["plan", "duoTest"], 0);
    assert!(plan.contains("Disable users (1):") && plan.contains("- disable user bob ("), "{plan}");
    assert!(plan.contains("disabled, kept in Duo; re-enabled if selected again"), "{plan}");
    let report = json(&run(dir, &["sync", "duoTest", "--json"], 0).0);
    assert_eq!((report["users"]["disabled"].as_u64(), report["users"]["deleted"].as_u64()), (Some(1), Some(0)), "{report:#}");
    assert_eq!(status(&emu, "bob"), Some("disabled"), "disabled, still in Duo");
    assert_eq!(status(&emu, "alice"), Some("active"));
    assert!(audit_actions(dir, "bob").contains(&("disable".into(), "OK".into())), "{:?}", audit_actions(dir, "bob"));

    // Steady state: nothing planned, no Duo write.
    let (plan, _) = run(dir, &["plan", "duoTest"], 0);
    assert!(plan.contains("nothing to do"), "{plan}");
    let report = json(&run(dir, &["sync", "duoTest", "--json"], 0).0);
    assert_eq!(report["write_calls"], 0, "{report:#}");
    assert_eq!(status(&emu, "bob"), Some("disabled"));

    // bob returns: re-enabled (duoprov disabled him) and back in the group.
    run(dir, &["member", "add", "app:duo:staff", "bob"], 0);
    let (plan, _) = run(dir, &["plan", "duoTest"], 0);
    assert!(plan.contains("^ re-enable user bob ("), "{plan}");
    let report = json(&run(dir, &["sync", "duoTest", "--json"], 0).0);
    assert_eq!(report["failures"], Value::Array(vec![]), "{report:#}");
    assert_eq!(status(&emu, "bob"), Some("active"));
    let s = emu.handle().state();
    let staff = s.groups.iter().find(|g| g.name == "staff").expect("staff");
    assert!(s.users.iter().find(|u| u.username == "bob").unwrap().groups.contains(&staff.group_id), "bob is a member again");
    assert!(audit_actions(dir, "bob").contains(&("enable".into(), "OK".into())), "{:?}", audit_actions(dir, "bob"));
    let (plan, _) = run(dir, &["plan", "duoTest"], 0);
    assert!(plan.contains("nothing to do"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_an_administrator_disabled_stays_disabled_when_selected_and_the_plan_says_so() {
    let (emu, tmp) = setup("").await;
    let dir = tmp.path();
    seed(dir, &["alice"]);
    run(dir, &["sync", "duoTest"], 0);
    // The administrator disables alice in the Admin Panel.
    emu.handle().with_tenant_mut(|t, _| {
        let id = t.user_by_name("alice").expect("alice").user_id;
        t.modify_user(&id, UserFields { status: Some(UserStatus::Disabled), ..Default::default() }).expect("disable by hand");
    });
    let (plan, _) = run(dir, &["plan", "duoTest"], 0);
    assert!(!plan.contains("re-enable"), "{plan}");
    assert!(plan.contains("Left disabled (disabled in Duo, not by duoprov") && plan.contains("= user alice for subject local:alice"), "{plan}");
    let plan_json = json(&run(dir, &["plan", "duoTest", "--json"], 0).0);
    assert_eq!(plan_json["plan"]["kept_disabled"][0][1], "alice", "{plan_json:#}");
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(status(&emu, "alice"), Some("disabled"));

    // She leaves (already disabled: no call) and returns: still not duoprov's to re-enable.
    run(dir, &["member", "remove", "app:duo:staff", "alice"], 0);
    let report = json(&run(dir, &["sync", "duoTest", "--json"], 0).0);
    assert_eq!(report["users"]["disabled"].as_u64(), None, "{report:#}");
    run(dir, &["member", "add", "app:duo:staff", "alice"], 0);
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(status(&emu, "alice"), Some("disabled"), "an administrator's disable is never undone");
    assert!(!audit_actions(dir, "alice").iter().any(|(a, _)| a == "enable" || a == "disable"), "{:?}", audit_actions(dir, "alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disables_over_max_user_deletes_are_refused_with_their_digest_until_approved() {
    let (emu, tmp) = setup("\n[provisioner.duoTest.thresholds]\nmax_user_deletes = 1\n").await;
    let dir = tmp.path();
    seed(dir, &["alice", "bob", "carol"]);
    run(dir, &["sync", "duoTest"], 0);
    run(dir, &["member", "remove", "app:duo:staff", "bob", "carol"], 0);
    let (_, err) = run(dir, &["sync", "duoTest"], 3);
    assert!(err.contains("2 user disables exceed max_user_deletes = 1"), "{err}");
    let listed: Vec<&str> = err.lines().map(str::trim).filter(|l| l.starts_with("disable user ")).collect();
    assert_eq!(listed, ["disable user bob (kept in Duo)", "disable user carol (kept in Duo)"], "{err}");
    assert_eq!((status(&emu, "bob"), status(&emu, "carol")), (Some("active"), Some("active")), "refused: nothing changed");
    let plan = json(&run(dir, &["plan", "duoTest", "--json"], 0).0);
    let digest = plan["removal_digest"].as_str().expect("digest").to_owned();
    assert!(err.contains(&format!("--approve {digest}")), "{err}");
    let report = json(&run(dir, &["sync", "duoTest", "--approve", &digest, "--json"], 0).0);
    assert_eq!(report["users"]["disabled"], 2, "{report:#}");
    assert_eq!((status(&emu, "bob"), status(&emu, "carol")), (Some("disabled"), Some("disabled")));
}
