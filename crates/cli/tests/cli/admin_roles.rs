//! Duo administrator roles from registry groups, end to end through the binary against an
//! in-process emulator, checked by the administrators Duo holds afterwards and the calls it
//! answered: a subject in a mapped group becomes an administrator with the group's role (the
//! highest by priority when in several groups, the activation link e-mailed when `send_email`),
//! one who leaves every mapped group is disabled (re-enabled on return) or deleted per
//! `admin_remove_mode`; a hand-made administrator and an `Owner` duoprov did not create are never
//! changed; a mass removal is refused and applied only when its digest is approved; a dry run and
//! a plan show the changes by e-mail and change nothing; bad configuration names the field; a
//! credential without "Grant administrators" fails the sync before anything is written.

use std::collections::BTreeMap;
use std::path::Path;

use duoprov_emulator::config::Grants;
use duoprov_emulator::state::AdminFields;
use duoprov_emulator::{Emulator, Integration, RunningEmulator};
use serde_json::{Value, json};

use crate::faults::{IKEY, SKEY, emulator, folder};
use crate::run;
use crate::safety::digest_in;

/// Duo's administrators by e-mail: (role, status, activation e-mailed).
fn admins(emu: &RunningEmulator) -> BTreeMap<String, (String, String, bool)> {
    emu.handle().state().admins.into_iter().map(|a| (a.email, (a.role, a.status, a.activation_emailed))).collect()
}

fn admin(role: &str, status: &str) -> (String, String, bool) {
    (role.to_owned(), status.to_owned(), false)
}

/// Write calls to `/admin/v1/admins…` since `seq`, as `METHOD path`.
fn admin_writes_since(emu: &RunningEmulator, seq: u64) -> Vec<String> {
    emu.handle().calls_since(seq).into_iter().filter(|c| c.method != "GET" && c.path.starts_with("/admin/v1/admins")).map(|c| format!("{} {}", c.method, c.path)).collect()
}

fn last_seq(emu: &RunningEmulator) -> u64 {
    emu.handle().calls().last().map(|c| c.seq).unwrap_or(0)
}

/// A hand-made administrator, created in Duo behind duoprov's back.
fn hand_made(emu: &RunningEmulator, name: &str, email: &str, role: &str) -> String {
    emu.handle()
        .with_tenant_mut(|t, ids| {
            t.create_admin(AdminFields { name: Some(name.into()), email: Some(email.into()), role: Some(role.into()), ..Default::default() }, 1_700_000_000, ids)
        })
        .expect("a hand-made administrator")
        .to_string()
}

/// A registry with subjects `ids` (e-mail `ID@example.com`), one provisioned group holding them
/// all, and the admin-role groups `app:admins:owners`, `app:admins:admins` and
/// `app:admins:helpdesk` with `members` (group → subject ids); the configuration gets
/// `admin_roles` (lines of `[provisioner.duoTest.admin_roles]` and below).
fn setup(dir: &Path, emu: &RunningEmulator, ids: &[&str], members: &[(&str, &[&str])], admin_roles: &str) {
    let subjects: Vec<Value> = ids.iter().map(|id| json!({"id": id, "name": format!("Person {id}"), "login_id": id, "email": format!("{id}@example.com")})).collect();
    let mut memberships: Vec<Value> = ids.iter().map(|id| json!({"group": "app:duo:staff", "subject": id})).collect();
    for (group, who) in members {
        memberships.extend(who.iter().map(|id| json!({"group": format!("app:admins:{group}"), "subject": id})));
    }
    let groups: Vec<Value> = ["app:duo:staff", "app:admins:owners", "app:admins:admins", "app:admins:helpdesk"].iter().map(|g| json!({"name": g})).collect();
    let doc = json!({"subjects": subjects, "groups": groups, "memberships": memberships, "markers": [{"provisioner": "duoTest", "folder": "app:duo"}]});
    folder(dir, emu, 2, &doc.to_string());
    let mut config = std::fs::read_to_string(dir.join("duoprov.toml")).unwrap();
    config.push_str(admin_roles);
    std::fs::write(dir.join("duoprov.toml"), config).unwrap();
}

const ROLES: &str = "\n[provisioner.duoTest.admin_roles]\nsend_email = true\n\
                     [provisioner.duoTest.admin_roles.groups]\n\"app:admins:owners\" = \"Owner\"\n\"app:admins:admins\" = \"Administrator\"\n\"app:admins:helpdesk\" = \"Help Desk\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_in_mapped_groups_become_administrators_with_the_highest_role_and_leaving_disables_them_until_they_return() {
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, &emu, &["alice", "bob", "carol"], &[("helpdesk", &["alice", "bob"]), ("admins", &["bob"])], ROLES);

    let (out, _) = run(dir, &["sync", "duoTest"], 0);
    assert!(out.contains("administrators 2 created"), "{out}");
    let mut want = BTreeMap::from([
        ("alice@example.com".to_owned(), ("Help Desk".to_owned(), "Active".to_owned(), true)),
        ("bob@example.com".to_owned(), ("Administrator".to_owned(), "Active".to_owned(), true)),
    ]);
    assert_eq!(admins(&emu), want, "bob is in two mapped groups: Administrator outranks Help Desk; carol is in none");

    // Every administrator change is in the audit log with Duo's answer.
    let (list, _) = run(dir, &["audit", "list", "--json"], 0);
    let list: Value = serde_json::from_str(&list).unwrap();
    let creates: Vec<&Value> = list.as_array().unwrap().iter().filter(|e| e["object_kind"] == "administrator" && e["action"] == "create").collect();
    assert_eq!(creates.len(), 2, "{list:#}");
    assert!(creates.iter().all(|e| e["duo"]["status"] == "OK" && e["provisioner"] == "duoTest" && e["after"]["admin_id"].as_str().is_some_and(|id| id.starts_with("DE"))), "{list:#}");

    // A second sync changes nothing.
    let seq = last_seq(&emu);
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(admin_writes_since(&emu, seq), Vec::<String>::new());

    // bob leaves the Administrator group: his role falls to Help Desk. alice leaves every mapped
    // group: disabled, not deleted (the default admin_remove_mode).
    run(dir, &["member", "remove", "app:admins:admins", "bob"], 0);
    run(dir, &["member", "remove", "app:admins:helpdesk", "alice"], 0);
    let (out, _) = run(dir, &["sync", "duoTest"], 0);
    assert!(out.contains("1 updated, 1 disabled, 0 deleted"), "{out}");
    want.insert("bob@example.com".into(), ("Help Desk".into(), "Active".into(), true));
    want.insert("alice@example.com".into(), ("Help Desk".into(), "Disabled".into(), true));
    assert_eq!(admins(&emu), want);

    // alice returns: the administrator duoprov disabled is enabled again, with her role.
    run(dir, &["member", "add", "app:admins:owners", "alice"], 0);
    run(dir, &["sync", "duoTest"], 0);
    want.insert("alice@example.com".into(), ("Owner".into(), "Active".into(), true));
    assert_eq!(admins(&emu), want);

    // An Owner duoprov created is lowered to Read-only as it is disabled (Duo refuses to disable
    // an Owner).
    run(dir, &["member", "remove", "app:admins:owners", "alice"], 0);
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(admins(&emu)["alice@example.com"], ("Read-only".to_owned(), "Disabled".to_owned(), true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_admin_remove_mode_delete_an_administrator_who_leaves_every_mapped_group_is_deleted() {
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let roles = "\n[provisioner.duoTest.admin_roles]\nadmin_remove_mode = \"delete\"\n[provisioner.duoTest.admin_roles.groups]\n\"app:admins:helpdesk\" = \"Help Desk\"\n";
    setup(dir, &emu, &["alice", "bob"], &[("helpdesk", &["alice", "bob"])], roles);
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(admins(&emu).len(), 2);
    assert!(admins(&emu).values().all(|(_, _, emailed)| !emailed), "send_email is off by default");
    run(dir, &["member", "remove", "app:admins:helpdesk", "bob"], 0);
    let seq = last_seq(&emu);
    let (out, _) = run(dir, &["sync", "duoTest"], 0);
    assert!(out.contains("0 disabled, 1 deleted"), "{out}");
    assert_eq!(admins(&emu), BTreeMap::from([("alice@example.com".to_owned(), admin("Help Desk", "Active"))]));
    assert_eq!(admin_writes_since(&emu, seq).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_made_administrator_and_an_owner_duoprov_did_not_create_are_never_changed() {
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A hand-made Administrator no subject claims, and a hand-made Owner whose address is
    // carol's, who is in the Help Desk group.
    let stranger = hand_made(&emu, "Stranger", "stranger@example.com", "Administrator");
    let boss = hand_made(&emu, "Boss", "Carol@Example.com", "Owner");
    setup(dir, &emu, &["alice", "carol"], &[("helpdesk", &["alice", "carol"])], ROLES);

    let (out, _) = run(dir, &["sync", "duoTest"], 2);
    assert!(out.contains("never demotes such an Owner"), "the Owner's wanted role is held, and said so: {out}");
    let after = admins(&emu);
    assert_eq!(after["stranger@example.com"], admin("Administrator", "Active"));
    assert_eq!(after["Carol@Example.com"], admin("Owner", "Active"), "matched case-insensitively, adopted, never demoted");
    assert_eq!(after["alice@example.com"].0, "Help Desk");

    // carol leaves: her Owner account is neither disabled nor deleted, only released.
    run(dir, &["member", "remove", "app:admins:helpdesk", "carol"], 0);
    let seq = last_seq(&emu);
    let (out, _) = run(dir, &["sync", "duoTest"], 2);
    assert!(out.contains("released from management"), "{out}");
    for _ in 0..2 {
        run(dir, &["sync", "duoTest"], 0);
    }
    let touched: Vec<String> = admin_writes_since(&emu, seq).into_iter().filter(|w| w.contains(&stranger) || w.contains(&boss)).collect();
    assert_eq!(touched, Vec::<String>::new(), "no write ever reached the hand-made administrators");
    let after = admins(&emu);
    assert_eq!((&after["stranger@example.com"], &after["Carol@Example.com"]), (&admin("Administrator", "Active"), &admin("Owner", "Active")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_administrator_removal_is_refused_and_applied_only_when_its_digest_is_approved() {
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ids = ["a1", "a2", "a3", "a4", "a5"];
    setup(dir, &emu, &ids, &[("helpdesk", &ids)], ROLES);
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(admins(&emu).len(), 5);
    for id in &ids[..4] {
        run(dir, &["member", "remove", "app:admins:helpdesk", id], 0);
    }
    // Four disables exceed max_admin_removals = 3: refused, nothing written, the list shown.
    let seq = last_seq(&emu);
    let (out, err) = run(dir, &["sync", "duoTest"], 3);
    let text = format!("{out}{err}");
    assert!(text.contains("4 administrator removals (disables or deletes) exceed max_admin_removals = 3"), "{text}");
    assert!(text.contains("disable administrator a1@example.com (Help Desk)"), "{text}");
    assert_eq!(admin_writes_since(&emu, seq), Vec::<String>::new());
    // A wrong digest is refused too; the digest shown applies exactly those four.
    run(dir, &["sync", "duoTest", "--approve", "000000000000"], 3);
    let digest = digest_in(&text);
    run(dir, &["sync", "duoTest", "--approve", &digest], 0);
    let after = admins(&emu);
    assert_eq!(after.values().filter(|(_, status, _)| status == "Disabled").count(), 4);
    assert_eq!(after["a5@example.com"].1, "Active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_and_a_plan_show_administrator_changes_by_email_and_change_nothing() {
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, &emu, &["alice"], &[("owners", &["alice"])], ROLES);
    let seq = last_seq(&emu);
    let (dry, _) = run(dir, &["sync", "duoTest", "--dry-run"], 0);
    assert!(dry.contains("administrators to be 1 created"), "{dry}");
    assert!(dry.contains("create administrator alice@example.com (Person alice) as Owner, activation link e-mailed"), "{dry}");
    let (plan, _) = run(dir, &["plan", "duoTest"], 0);
    assert!(plan.contains("Administrators (1):") && plan.contains("create administrator alice@example.com"), "{plan}");
    let writes: Vec<String> = emu.handle().calls_since(seq).into_iter().filter(|c| c.method != "GET").map(|c| c.path).collect();
    assert_eq!(writes, Vec::<String>::new());
    assert!(admins(&emu).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_admin_role_configuration_is_refused_naming_the_provisioner_and_field() {
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, &emu, &["alice"], &[], "");
    let base = std::fs::read_to_string(dir.join("duoprov.toml")).unwrap();
    for (extra, field, hint) in [
        ("[provisioner.duoTest.admin_roles.groups]\n\"app:admins:owners\" = \"owner\"\n", "provisioner.duoTest.admin_roles.groups.\"app:admins:owners\"", "exact spelling"),
        ("[provisioner.duoTest.admin_roles]\nadmin_remove_mode = \"purge\"\n[provisioner.duoTest.admin_roles.groups]\n\"app:admins:owners\" = \"Owner\"\n", "provisioner.duoTest.admin_roles.admin_remove_mode", "disable, delete or keep"),
        ("[provisioner.duoTest.admin_roles]\npriority = [\"Help Desk\"]\n[provisioner.duoTest.admin_roles.groups]\n\"app:admins:owners\" = \"Owner\"\n", "provisioner.duoTest.admin_roles.priority", "lacks \"Owner\""),
        ("[provisioner.duoTest.admin_roles]\nemail_attribute = \"mail\"\n[provisioner.duoTest.admin_roles.groups]\n\"app:admins:owners\" = \"Owner\"\n", "provisioner.duoTest.admin_roles.email_attribute", "email, login_id or id"),
        ("[provisioner.duoTest.admin_roles]\nsend_email = true\n", "provisioner.duoTest.admin_roles.groups", "at least one"),
    ] {
        std::fs::write(dir.join("duoprov.toml"), format!("{base}\n{extra}")).unwrap();
        let (_, err) = run(dir, &["plan", "duoTest"], 1);
        assert!(err.contains(field) && err.contains(hint), "{extra}\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_administrators_grant_a_sync_with_admin_roles_fails_before_writing_and_names_the_permission() {
    let grants = Grants { read_resource: true, write_resource: true, administrators: false };
    let emu = Emulator::builder()
        .integration(Integration::new(IKEY, SKEY).with_grants(grants))
        .configure(|s| s.rate_limits.enabled = false)
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, &emu, &["alice"], &[("helpdesk", &["alice"])], ROLES);
    let (out, err) = run(dir, &["sync", "duoTest"], 1);
    assert!(format!("{out}{err}").contains("'Grant administrators'"), "{out}{err}");
    let writes: Vec<String> = emu.handle().calls().into_iter().filter(|c| c.method != "GET").map(|c| c.path).collect();
    assert_eq!(writes, Vec::<String>::new(), "the whole sync stops before its first write");
}
