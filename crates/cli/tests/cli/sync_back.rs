//! The sync-back group end to end, through the binary against an in-process emulator: after
//! `duoprov load-users` (and after a full sync with `load_duo_users = true`, and the daemon's
//! `load_users_every` schedule) the registry group
//! named by `sync_back_group` holds exactly the subjects whose Duo users meet `sync_back_rule`,
//! matched through links or rendered usernames, written with change-log and audit entries;
//! duoprov creates the group and refuses a group it did not create, and one its provisioner
//! selects (which would feed Duo's state back into Duo); removals over its thresholds are
//! refused (exit code 3, nothing written) until approved by digest or the threshold is raised.

use std::path::Path;

use duoprov_emulator::state::UserFields;
use duoprov_emulator::{Emulator, Integration, RunningEmulator};
use duoprov_model::ChangeKind;
use duoprov_registry::OpenOptions;
use serde_json::Value;

use crate::run;

const IKEY: &str = "DISYNCBACKGROUP00001";
const SKEY: &str = "sync-back-test-secret-key-0123456789abcde";

async fn setup(provisioner_extra: &str) -> (RunningEmulator, tempfile::TempDir) {
    let emulator = Emulator::builder().integration(Integration::new(IKEY, SKEY)).configure(|s| s.rate_limits.enabled = false).spawn_on("127.0.0.1:0").await.expect("emulator");
    let tmp = tempfile::tempdir().unwrap();
    crate::write_emulator_setup(tmp.path(), &emulator.base_url(), IKEY, SKEY, "", provisioner_extra);
    (emulator, tmp)
}

fn reconfigure(dir: &Path, emu: &RunningEmulator, provisioner_extra: &str) {
    crate::write_emulator_setup(dir, &emu.base_url(), IKEY, SKEY, "", provisioner_extra);
}

fn seed(dir: &Path) {
    run(dir, &["group", "add", "app:duo:staff", "--create-parents"], 0);
    for s in ["alice", "bob", "dave"] {
        run(dir, &["subject", "add", s, "--name", &format!("Person {s}"), "--login-id", s], 0);
    }
    run(dir, &["member", "add", "app:duo:staff", "alice", "bob"], 0);
    run(dir, &["provision", "assign", "duoTest", "--folder", "app:duo", "--scope", "sub"], 0);
    run(dir, &["folder", "add", "app:mfa"], 0);
}

/// What a user does on their phone: enrols (or an administrator resets them).
fn set_enrolled(emu: &RunningEmulator, username: &str, enrolled: bool) {
    emu.handle().with_tenant_mut(|t, ids| {
        let id = match t.user_by_name(username) {
            Some(u) => u.user_id,
            None => {
                let fields = UserFields { username: Some(username.into()), ..Default::default() };
                t.create_user(fields, 1_700_000_000, ids).expect("a user made by hand")
            }
        };
        assert!(t.set_user_enrolled(&id, enrolled), "the user");
    });
}

fn members(dir: &Path, group: &str) -> Vec<String> {
    let (out, _) = run(dir, &["member", "list", group], 0);
    let mut m: Vec<String> = out.lines().map(str::trim).filter(|l| l.starts_with("subject ")).map(str::to_owned).collect();
    m.sort();
    m
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_back_group_holds_exactly_the_enrolled_users_subjects_after_each_load() {
    let (emu, tmp) = setup("sync_back_group = \"app:mfa:enrolled\"\nsync_back_rule = \"enrolled\"\n").await;
    let dir = tmp.path();
    seed(dir);
    run(dir, &["sync", "duoTest"], 0);
    set_enrolled(&emu, "alice", true);
    // dave is no member of a selected group: his hand-made Duo user is matched by username.
    set_enrolled(&emu, "dave", true);
    set_enrolled(&emu, "stranger", true);

    let (out, _) = run(dir, &["load-users", "duoTest"], 0);
    assert!(out.contains("sync-back group app:mfa:enrolled (created) (enrolled): 2 members, 2 added, 0 removed, 1 Duo users matched to no subject"), "{out}");
    let listed = members(dir, "app:mfa:enrolled");
    assert!(listed.len() == 2 && listed[0].contains("local:alice") && listed[1].contains("local:dave"), "{listed:?}");

    // alice un-enrols, bob enrols: the next load follows.
    set_enrolled(&emu, "alice", false);
    set_enrolled(&emu, "bob", true);
    let summary = json(&run(dir, &["load-users", "duoTest", "--json"], 0).0);
    assert_eq!((summary["sync_back"]["added"].as_u64(), summary["sync_back"]["removed"].as_u64()), (Some(1), Some(1)), "{summary:#}");
    let listed = members(dir, "app:mfa:enrolled");
    assert!(listed.len() == 2 && listed[0].contains("local:bob") && listed[1].contains("local:dave"), "{listed:?}");
    // Unchanged Duo: nothing written.
    let summary = json(&run(dir, &["load-users", "duoTest", "--json"], 0).0);
    assert_eq!((summary["sync_back"]["added"].as_u64(), summary["sync_back"]["removed"].as_u64()), (Some(0), Some(0)), "{summary:#}");

    // Each write has its change-log entry (the daemon's incremental runs see it) and audit entry.
    let store = duoprov_registry::open(&format!("sqlite://{}", dir.join("registry.db").display()), &OpenOptions::default()).await.unwrap();
    let changes = store.changes_after(0, 10_000).await.unwrap();
    let count = |kind: ChangeKind| changes.iter().filter(|c| c.kind == kind && c.detail["group"] == "app:mfa:enrolled").count();
    assert_eq!((count(ChangeKind::MemberAdded), count(ChangeKind::MemberRemoved)), (3, 1), "{changes:#?}");
    let audit = json(&run(dir, &["audit", "list", "--json"], 0).0);
    let entries: Vec<&Value> = audit.as_array().unwrap().iter().filter(|e| e["source"] == "sync-back").collect();
    let actions: Vec<(&str, &str)> = entries.iter().map(|e| (e["object_kind"].as_str().unwrap(), e["action"].as_str().unwrap())).collect();
    assert_eq!(actions.iter().filter(|a| **a == ("membership", "add")).count(), 3, "{entries:#?}");
    assert_eq!(actions.iter().filter(|a| **a == ("membership", "remove")).count(), 1, "{entries:#?}");
    assert_eq!(actions.iter().filter(|a| **a == ("group", "add")).count(), 1, "{entries:#?}");

    // A full sync that loads the Duo users table updates the group too.
    reconfigure(dir, &emu, "sync_back_group = \"app:mfa:enrolled\"\nload_duo_users = true\n");
    set_enrolled(&emu, "alice", true);
    let report = json(&run(dir, &["sync", "duoTest", "--json"], 0).0);
    assert_eq!(report["sync_back"]["added"], 1, "{report:#}");
    assert!(members(dir, "app:mfa:enrolled").iter().any(|m| m.contains("local:alice")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_back_group_duoprov_did_not_create_or_that_its_provisioner_selects_is_refused() {
    let (emu, tmp) = setup("sync_back_group = \"app:mfa:handmade\"\n").await;
    let dir = tmp.path();
    seed(dir);
    run(dir, &["group", "add", "app:mfa:handmade"], 0);
    run(dir, &["member", "add", "app:mfa:handmade", "bob"], 0);
    run(dir, &["sync", "duoTest"], 0);
    set_enrolled(&emu, "alice", true);

    // A group made by hand is never taken over: refused, its members untouched.
    let (_, err) = run(dir, &["load-users", "duoTest"], 1);
    assert!(err.contains("registry group app:mfa:handmade already exists and duoprov did not create it"), "{err}");
    let listed = members(dir, "app:mfa:handmade");
    assert!(listed.len() == 1 && listed[0].contains("local:bob"), "{listed:?}");

    // A group under the provisioner's marked folder would loop Duo's state back into Duo.
    reconfigure(dir, &emu, "sync_back_group = \"app:duo:enrolled\"\n");
    let (_, err) = run(dir, &["load-users", "duoTest"], 1);
    assert!(err.contains("is selected for provisioner duoTest by a marker (the marker on folder app:duo (scope sub) includes it)"), "{err}");
    let (out, _) = run(dir, &["group", "list"], 0);
    assert!(!out.contains("app:duo:enrolled"), "not created either: {out}");

    // So is the provisioner's eligible group, at configuration time.
    std::fs::write(dir.join("duoprov.toml"), std::fs::read_to_string(dir.join("duoprov.toml")).unwrap().replace("sync_back_group = \"app:duo:enrolled\"", "sync_back_group = \"app:mfa:ok\"\neligible_group = \"app:mfa:ok\"")).unwrap();
    let (_, err) = run(dir, &["load-users", "duoTest"], 1);
    assert!(err.contains("provisioner.duoTest.sync_back_group: app:mfa:ok is also the eligible_group"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_users_table_schedule_keeps_the_sync_back_group() {
    let schedule = "sync_back_group = \"app:mfa:enrolled\"\n\n[provisioner.duoTest.schedule]\npoll_interval = \"300ms\"\nload_users_every = \"1s\"\n";
    let (emu, tmp) = setup(schedule).await;
    let dir = tmp.path();
    seed(dir);
    let handle = emu.handle().clone();
    let daemon = crate::daemon::start_daemon(dir, &[]);
    crate::daemon::wait_for("the first full sync", || handle.state(), |s| s.users.len() == 2, std::time::Duration::from_secs(20));
    set_enrolled(&emu, "alice", true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (out, _) = run(dir, &["group", "list"], 0);
        if out.contains("app:mfa:enrolled") && members(dir, "app:mfa:enrolled").iter().any(|m| m.contains("local:alice")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the daemon's users-table load did not bring alice into the sync-back group within 30 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (code, err) = daemon.stop();
    assert_eq!(code, Some(0), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_users_refuses_sync_back_removals_over_the_threshold_until_their_digest_is_approved() {
    let (emu, tmp) = setup("sync_back_group = \"app:mfa:enrolled\"\n").await;
    let dir = tmp.path();
    run(dir, &["folder", "add", "app:mfa", "--create-parents"], 0);
    let people: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    for p in &people {
        run(dir, &["subject", "add", p, "--login-id", p], 0);
        set_enrolled(&emu, p, true);
    }
    run(dir, &["load-users", "duoTest"], 0);
    assert_eq!(members(dir, "app:mfa:enrolled").len(), 10);

    // Four of ten un-enrol at once (a partial table looks the same): 40 % is over the default 30 %.
    for p in &people[..4] {
        set_enrolled(&emu, p, false);
    }
    let (_, err) = run(dir, &["load-users", "duoTest"], 3);
    assert!(err.contains("the Duo users table of provisioner duoTest is loaded (10 users), but refused to update the sync-back group app:mfa:enrolled"), "{err}");
    assert!(err.contains("4 of 10 members of sync-back group app:mfa:enrolled would be removed, over sync_back_max_removal_percent = 30"), "{err}");
    assert!(err.contains("remove subject local:p0") && err.contains("remove subject local:p3"), "{err}");
    assert_eq!(members(dir, "app:mfa:enrolled").len(), 10, "nothing removed");
    let digest = err.split("--approve ").nth(1).and_then(|t| t.get(..12)).unwrap_or_else(|| panic!("no digest in {err}")).to_owned();

    // A wrong digest is refused too; the shown one applies exactly that list.
    let (_, err) = run(dir, &["load-users", "duoTest", "--approve", "0123456789ab"], 3);
    assert!(err.contains("does not match this update's removals"), "{err}");
    let summary = json(&run(dir, &["load-users", "duoTest", "--json", "--approve", &digest], 0).0);
    assert_eq!((summary["sync_back"]["removed"].as_u64(), summary["sync_back"]["members"].as_u64()), (Some(4), Some(6)), "{summary:#}");

    // Three of six (50 %), with the percentage rule applied from 5 members: refused at the
    // default 30 %, applied once the configuration raises it to 60 %.
    for p in &people[4..7] {
        set_enrolled(&emu, p, false);
    }
    reconfigure(dir, &emu, "sync_back_group = \"app:mfa:enrolled\"\n\n[provisioner.duoTest.thresholds]\npercent_rule_min_members = 5\n");
    let (_, err) = run(dir, &["load-users", "duoTest"], 3);
    assert!(err.contains("3 of 6 members of sync-back group app:mfa:enrolled would be removed, over sync_back_max_removal_percent = 30"), "{err}");
    assert_eq!(members(dir, "app:mfa:enrolled").len(), 6, "nothing removed");
    reconfigure(dir, &emu, "sync_back_group = \"app:mfa:enrolled\"\n\n[provisioner.duoTest.thresholds]\npercent_rule_min_members = 5\nsync_back_max_removal_percent = 60\n");
    let (out, _) = run(dir, &["load-users", "duoTest"], 0);
    assert!(out.contains("3 members, 0 added, 3 removed"), "{out}");
}
