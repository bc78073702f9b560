//! Ownership end to end, through the binary against an in-process emulator: duoprov never
//! claims, rewrites or deletes a Duo object it did not create — not after its own creates were
//! refused (an integration without the write grant), and not when another provisioner of the
//! same Duo account manages the object; and with `create_groups = false` it only matches and
//! fills groups.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use duoprov_emulator::state::{GroupFields, UserFields};
use duoprov_emulator::{Emulator, Grants, Integration, RunningEmulator, TenantDump};
use serde_json::Value;

use crate::{duoprov, run};

/// An integration with "Grant read resource" only, and one with every grant, on one account.
const IKEY_READ: &str = "DIOWNERSHIPREAD00001";
const IKEY_ALL: &str = "DIOWNERSHIPALL000001";
const SKEY: &str = "ownership-test-secret-key-0123456789abcdef";

async fn emulator() -> RunningEmulator {
    let read_only = Grants { read_resource: true, write_resource: false, administrators: false };
    Emulator::builder()
        .integration(Integration::new(IKEY_READ, SKEY).with_grants(read_only))
        .integration(Integration::new(IKEY_ALL, SKEY))
        .configure(|s| s.rate_limits.enabled = false)
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator")
}

/// Writes `duoprov.toml`: one Duo connection signing with `ikey`, then `provisioners`.
fn configure(dir: &Path, emulator: &RunningEmulator, ikey: &str, provisioners: &str) {
    let skey = dir.join("duo.skey");
    std::fs::write(&skey, SKEY).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&skey, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = format!(
        "[registry]\nurl = \"sqlite://registry.db\"\n\n[duo.test]\napi_host = \"127.0.0.1\"\nintegration_key = \"{ikey}\"\nsecret_key_file = \"duo.skey\"\nurl = \"{}\"\nserver_retries = 0\n\n{provisioners}\n",
        emulator.base_url()
    );
    crate::write_config(dir, config).unwrap();
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// What an administrator does in the Admin Panel: a group and a user, by hand.
fn make_by_hand(emulator: &RunningEmulator, group: (&str, &str), user: (&str, &str, &str)) {
    emulator.handle().with_tenant_mut(|t, ids| {
        t.create_group(GroupFields { name: Some(group.0.into()), desc: Some(group.1.into()), ..Default::default() }, &duoprov_emulator::Settings::default(), ids).expect("hand-made group");
        let fields = UserFields { username: Some(user.0.into()), realname: Some(user.1.into()), email: Some(user.2.into()), ..Default::default() };
        t.create_user(fields, now(), ids).expect("hand-made user");
    });
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn state(emulator: &RunningEmulator) -> TenantDump {
    emulator.handle().state()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_objects_after_refused_creates_are_adopted_never_claimed_rewritten_or_deleted() {
    let emu = emulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Deleting what duoprov created is allowed, so only ownership keeps the hand-made objects.
    let provisioner = "[provisioner.duoTest]\nduo = \"test\"\ndelete_groups = \"created_by_us\"\ndelete_users = \"created_by_us\"\n";
    configure(dir, &emu, IKEY_READ, provisioner);
    run(dir, &["subject", "add", "alice", "--name", "Alice Registry", "--login-id", "alice", "--email", "alice@registry.example"], 0);
    run(dir, &["subject", "add", "bob", "--name", "Bob Registry", "--login-id", "bob", "--email", "bob@registry.example"], 0);
    run(dir, &["group", "add", "app:duo:staff", "--description", "Staff from the registry", "--create-parents"], 0);
    run(dir, &["group", "add", "app:duo:keep", "--description", "Stays selected"], 0);
    run(dir, &["member", "add", "app:duo:staff", "alice", "bob"], 0);
    run(dir, &["member", "add", "app:duo:keep", "bob"], 0);
    run(dir, &["provision", "assign", "duoTest", "--folder", "app:duo", "--scope", "sub"], 0);

    // 1. The integration lacks "Grant write resource": every create is refused with a 403.
    let out = duoprov(dir).args(["sync", "duoTest", "--json"]).output().unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert!(report["failures"].as_array().is_some_and(|f| !f.is_empty()), "{report:#}");
    assert!(state(&emu).groups.is_empty() && state(&emu).users.is_empty());

    // 2. The administrator makes the group and one user by hand, then fixes the grant.
    make_by_hand(&emu, ("staff", "made by hand"), ("alice", "Alice by Hand", "alice@hand.example"));
    configure(dir, &emu, IKEY_ALL, provisioner);

    // 3. The next plan adopts both (nothing is claimed as duoprov's own), and the sync leaves
    //    their fields alone (update_adopted = false).
    let plan = json(&run(dir, &["plan", "duoTest", "--json"], 0).0);
    let adoptions = plan["plan"]["adoptions"].as_array().expect("adoptions");
    assert_eq!(adoptions.len(), 2, "{:#}", plan["plan"]);
    let report = json(&run(dir, &["sync", "duoTest", "--json"], 0).0);
    assert_eq!(report["failures"], Value::Array(vec![]), "{report:#}");
    let s = state(&emu);
    let staff = s.groups.iter().find(|g| g.name == "staff").expect("staff");
    assert_eq!(staff.desc, "made by hand");
    let alice = s.users.iter().find(|u| u.username == "alice").expect("alice");
    assert_eq!((alice.realname.as_str(), alice.email.as_str()), ("Alice by Hand", "alice@hand.example"));
    assert!(alice.groups.contains(&staff.group_id), "the adopted group gets its members");
    assert!(s.users.iter().any(|u| u.username == "bob"), "bob is created by duoprov");

    // 4. Deselecting the registry group (and so alice) deletes neither hand-made object.
    run(dir, &["group", "remove", "app:duo:staff"], 0);
    let report = json(&run(dir, &["sync", "duoTest", "--json"], 0).0);
    assert_eq!(report["groups"]["deleted"], 0, "{report:#}");
    assert_eq!(report["users"]["deleted"], 0, "{report:#}");
    let s = state(&emu);
    let staff = s.groups.iter().find(|g| g.name == "staff").expect("the hand-made group is still in Duo");
    assert_eq!(staff.desc, "made by hand");
    let alice = s.users.iter().find(|u| u.username == "alice").expect("the hand-made user is still in Duo");
    assert_eq!(alice.status.as_str(), "active", "not sent to the Trash");
    assert_eq!((alice.realname.as_str(), alice.email.as_str()), ("Alice by Hand", "alice@hand.example"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_provisioner_of_the_same_duo_account_never_adopts_or_empties_the_first_ones_group() {
    let emu = emulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let provisioners = "[provisioner.prodA]\nduo = \"test\"\n\n[provisioner.prodB]\nduo = \"test\"\nupdate_adopted = true\ndelete_users = \"not_in_source\"\n";
    configure(dir, &emu, IKEY_ALL, provisioners);
    for (id, name) in [("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol")] {
        run(dir, &["subject", "add", id, "--name", name, "--login-id", id, "--email", &format!("{id}@example.edu")], 0);
    }
    // Both registry groups map to the Duo group name "staff".
    run(dir, &["group", "add", "app:a:staff", "--description", "A's staff", "--create-parents"], 0);
    run(dir, &["group", "add", "app:b:staff", "--description", "B's staff", "--create-parents"], 0);
    run(dir, &["group", "add", "app:b:other", "--description", "B's other group"], 0);
    run(dir, &["member", "add", "app:a:staff", "alice", "bob"], 0);
    run(dir, &["member", "add", "app:b:staff", "carol"], 0);
    run(dir, &["member", "add", "app:b:other", "alice", "carol"], 0);
    run(dir, &["provision", "assign", "prodA", "--folder", "app:a", "--scope", "sub"], 0);
    run(dir, &["provision", "assign", "prodB", "--folder", "app:b", "--scope", "sub"], 0);

    run(dir, &["sync", "prodA", "--json"], 0);
    let before = state(&emu);
    let staff = before.groups.iter().find(|g| g.name == "staff").expect("A's staff").clone();
    let alice_id = before.users.iter().find(|u| u.username == "alice").unwrap().user_id;
    // Someone edits A's user in Duo: B (update_adopted = true) must still not rewrite it.
    emu.handle().with_tenant_mut(|t, _| {
        t.modify_user(&alice_id, UserFields { realname: Some("Alice, edited in Duo".into()), ..Default::default() }).unwrap();
    });

    // B holds "staff" with MAT, naming prodA; it neither adopts it nor removes A's members.
    let plan = json(&run(dir, &["plan", "prodB", "--json"], 0).0);
    let errors = plan["plan"]["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["code"] == "MAT" && e["message"].as_str().unwrap_or("").contains("Duo group \"staff\" is managed by provisioner prodA")),
        "{errors:#?}"
    );
    let out = duoprov(dir).args(["sync", "prodB", "--json"]).output().unwrap();
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["memberships"]["deleted"], 0, "{report:#}");
    let s = state(&emu);
    assert_eq!(s.groups.iter().filter(|g| g.name == "staff").count(), 1, "B does not make a second staff group");
    let staff_now = s.groups.iter().find(|g| g.name == "staff").unwrap();
    assert_eq!(staff_now.desc, "A's staff", "B does not rewrite A's group");
    let members: Vec<&str> = s.users.iter().filter(|u| u.groups.contains(&staff.group_id)).map(|u| u.username.as_str()).collect();
    assert_eq!(members, ["alice", "bob"], "A's members stay");
    // alice, A's user, is shared by B (member of B's other group) but not rewritten.
    let alice = s.users.iter().find(|u| u.username == "alice").unwrap();
    assert_eq!(alice.realname, "Alice, edited in Duo", "B does not rewrite a user A links");
    let other = s.groups.iter().find(|g| g.name == "other").expect("B's own group");
    assert!(alice.groups.contains(&other.group_id));

    // B's selection emptied of alice: the shared user is never deleted by B.
    run(dir, &["member", "remove", "app:b:other", "alice"], 0);
    duoprov(dir).args(["sync", "prodB"]).output().unwrap();
    assert!(state(&emu).users.iter().any(|u| u.username == "alice" && u.user_id == alice_id && u.status.as_str() == "active"), "B never deletes A's user");

    // doctor warns about the shared Duo account.
    let (out, _) = run(dir, &["doctor", "prodB"], 0);
    assert!(out.contains("warn  shared Duo account: provisioner prodA provisions"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_only_groups_are_filled_in_duo_but_never_created_rewritten_or_deleted() {
    let emu = emulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Updating adopted objects is allowed: only create_groups = false keeps duoprov's hands off
    // the group's name and description. (A delete policy other than never is refused with it.)
    let provisioner = "[provisioner.duoTest]\nduo = \"test\"\ncreate_groups = false\nupdate_adopted = true\n";
    configure(dir, &emu, IKEY_ALL, provisioner);
    emu.handle().with_tenant_mut(|t, ids| {
        t.create_group(GroupFields { name: Some("staff".into()), desc: Some("policy: staff MFA".into()), ..Default::default() }, &duoprov_emulator::Settings::default(), ids)
            .expect("hand-made group");
    });
    run(dir, &["subject", "add", "alice", "--name", "Alice", "--login-id", "alice", "--email", "alice@example.edu"], 0);
    run(dir, &["subject", "add", "bob", "--name", "Bob", "--login-id", "bob", "--email", "bob@example.edu"], 0);
    run(dir, &["group", "add", "app:duo:staff", "--description", "Staff from the registry", "--create-parents"], 0);
    run(dir, &["group", "add", "app:duo:faculty", "--description", "Not in Duo"], 0);
    run(dir, &["member", "add", "app:duo:staff", "alice", "bob"], 0);
    run(dir, &["member", "add", "app:duo:faculty", "bob"], 0);
    run(dir, &["provision", "assign", "duoTest", "--folder", "app:duo", "--scope", "sub"], 0);

    let out = duoprov(dir).args(["sync", "duoTest", "--json"]).output().unwrap();
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["held"], 1, "{report:#}");
    let held = report["held_objects"][0].to_string();
    assert!(held.contains("DNE") && held.contains("create_groups = false") && held.contains("faculty"), "the missing group is held with DNE: {report:#}");
    let s = state(&emu);
    assert_eq!(s.groups.len(), 1, "no group created: {:#?}", s.groups);
    let staff = &s.groups[0];
    assert_eq!((staff.name.as_str(), staff.desc.as_str()), ("staff", "policy: staff MFA"), "name and description untouched");
    for name in ["alice", "bob"] {
        let user = s.users.iter().find(|u| u.username == name).unwrap_or_else(|| panic!("{name} created: {:#?}", s.users));
        assert!(user.groups.contains(&staff.group_id), "{name} is a member of the matched group");
    }

    // Unselected, the matched group stays in Duo (its members are no longer managed).
    run(dir, &["group", "remove", "app:duo:staff"], 0);
    let out = duoprov(dir).args(["sync", "duoTest", "--json"]).output().unwrap();
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["groups"]["deleted"], 0, "{report:#}");
    assert!(state(&emu).groups.iter().any(|g| g.name == "staff"), "the match-only group is still in Duo");
}
