//! Grouper's selection rules end to end, through the binary against an in-process emulator:
//! `select_regex` (`provisionableRegex`) and `only_policy_groups` (`onlyProvisionPolicyGroups`,
//! policy groups marked with `@policy` markers) narrow what the provisioner's markers include;
//! an explicit exclude marker still wins; the plan and `explain` name the rule that selected or
//! left out each group; a rename out of the regex removes the group per the delete policy.

use std::path::Path;

use duoprov_emulator::{Emulator, Integration, RunningEmulator};

use crate::run;

const IKEY: &str = "DISELECTIONRULES0001";
const SKEY: &str = "selection-rules-secret-key-0123456789abcd";

async fn setup(provisioner_extra: &str) -> (RunningEmulator, tempfile::TempDir) {
    let emulator = Emulator::builder().integration(Integration::new(IKEY, SKEY)).configure(|s| s.rate_limits.enabled = false).spawn_on("127.0.0.1:0").await.expect("emulator");
    let tmp = tempfile::tempdir().unwrap();
    crate::write_emulator_setup(tmp.path(), &emulator.base_url(), IKEY, SKEY, "", provisioner_extra);
    (emulator, tmp)
}

fn groups(dir: &Path, names: &[&str]) {
    run(dir, &["subject", "add", "alice", "--name", "Alice", "--login-id", "alice"], 0);
    for g in names {
        run(dir, &["group", "add", g, "--create-parents"], 0);
        run(dir, &["member", "add", g, "alice"], 0);
    }
    run(dir, &["provision", "assign", "duoTest", "--folder", "app:duo", "--scope", "sub"], 0);
}

fn duo_groups(emu: &RunningEmulator) -> Vec<String> {
    let mut names: Vec<String> = emu.handle().state().groups.iter().map(|g| g.name.clone()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_regex_selects_matching_groups_and_a_rename_out_of_it_deletes_the_group() {
    let (emu, tmp) = setup("select_regex = \"-mfa$\"\n").await;
    let dir = tmp.path();
    groups(dir, &["app:duo:staff-mfa", "app:duo:keep-mfa", "app:duo:other", "app:duo:carved-mfa"]);
    // An explicit exclude marker wins over a matching name.
    run(dir, &["provision", "assign", "duoTest", "--group", "app:duo:carved-mfa", "--exclude"], 0);

    let (plan, _) = run(dir, &["plan", "duoTest"], 0);
    assert!(
        plan.contains("registry group app:duo:staff-mfa is selected (the marker on folder app:duo (scope sub) includes it; its name matches select_regex \"-mfa$\")"),
        "{plan}"
    );
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(duo_groups(&emu), ["keep-mfa", "staff-mfa"]);
    let (why, _) = run(dir, &["explain", "alice", "--group", "app:duo:other", "--provisioner", "duoTest"], 0);
    assert!(why.contains("app:duo:other — not selected (its name does not match select_regex \"-mfa$\")"), "{why}");
    let (why, _) = run(dir, &["explain", "alice", "--group", "app:duo:carved-mfa", "--provisioner", "duoTest"], 0);
    assert!(why.contains("app:duo:carved-mfa — not selected (the marker on group app:duo:carved-mfa excludes it)"), "{why}");

    // Renamed out of the regex: no longer selected, and the Duo group duoprov created goes
    // (delete_groups = "created_by_us", the default).
    run(dir, &["group", "update", "app:duo:staff-mfa", "--rename-to", "app:duo:staff-old"], 0);
    let (plan, _) = run(dir, &["plan", "duoTest"], 0);
    assert!(plan.contains("- group staff-mfa ("), "{plan}");
    assert!(plan.contains("no longer selected by the registry (its name does not match select_regex \"-mfa$\"), and duoprov created it"), "{plan}");
    run(dir, &["sync", "duoTest", "--incremental"], 0);
    assert_eq!(duo_groups(&emu), ["keep-mfa"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_only_policy_groups_a_non_policy_group_under_a_marked_folder_is_not_provisioned() {
    let (emu, tmp) = setup("only_policy_groups = true\n").await;
    let dir = tmp.path();
    groups(dir, &["app:duo:bypass", "app:duo:staff", "app:duo:policies:vpn", "app:duo:policies:legacy"]);
    run(dir, &["provision", "assign", "@policy", "--group", "app:duo:bypass"], 0);
    run(dir, &["provision", "assign", "@policy", "--folder", "app:duo:policies", "--scope", "sub"], 0);
    // The most specific @policy marker wins: legacy is carved out of the policy folder.
    run(dir, &["provision", "assign", "@policy", "--group", "app:duo:policies:legacy", "--exclude"], 0);

    let (plan, _) = run(dir, &["plan", "duoTest"], 0);
    assert!(plan.contains("registry group app:duo:bypass is selected (the marker on folder app:duo (scope sub) includes it; it is a policy group (@policy: the marker on group app:duo:bypass includes it))"), "{plan}");
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(duo_groups(&emu), ["bypass", "vpn"]);
    let (why, _) = run(dir, &["explain", "alice", "--group", "app:duo:staff", "--provisioner", "duoTest"], 0);
    assert!(why.contains("app:duo:staff — not selected (only_policy_groups: it is not a policy group"), "{why}");

    // Marking staff a policy group reaches the daemon's incremental runs too.
    run(dir, &["provision", "assign", "@policy", "--group", "app:duo:staff"], 0);
    run(dir, &["sync", "duoTest", "--incremental"], 0);
    assert_eq!(duo_groups(&emu), ["bypass", "staff", "vpn"]);
}

#[test]
fn a_provisioner_named_like_the_policy_markers_and_a_bad_regex_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    crate::write_emulator_setup(dir, "http://127.0.0.1:9", IKEY, SKEY, "", "select_regex = \"(unclosed\"\n");
    let out = crate::duoprov(dir).args(["config"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("provisioner.duoTest.select_regex: not a valid regular expression"), "{err}");
    let config = std::fs::read_to_string(dir.join("duoprov.toml")).unwrap().replace("[provisioner.duoTest]", "[provisioner.\"@policy\"]").replace("select_regex = \"(unclosed\"\n", "");
    std::fs::write(dir.join("duoprov.toml"), config).unwrap();
    let out = crate::duoprov(dir).args(["config"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("a provisioner's name cannot start with '@'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_list_groups_lists_exactly_what_a_sync_provisions_and_explains_which_rule_left_a_group_out() {
    let (emu, tmp) = setup("select_regex = \"-mfa$\"\n").await;
    let dir = tmp.path();
    groups(dir, &["app:duo:staff-mfa", "app:duo:other", "app:duo:carved-mfa"]);
    run(dir, &["provision", "assign", "duoTest", "--group", "app:duo:carved-mfa", "--exclude"], 0);

    let listed: serde_json::Value = serde_json::from_str(&run(dir, &["provision", "list", "duoTest", "--groups", "--json"], 0).0).unwrap();
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["app:duo:staff-mfa"], "{listed:#}");
    assert_eq!(listed[0]["effective_members"], 1);
    let (out, err) = run(dir, &["provision", "list", "duoTest", "--groups"], 0);
    assert!(!out.contains("app:duo:other") && err.contains("1 group the markers include is left out by the selection rules"), "{out}\n{err}");
    // What the list shows is what a sync provisions.
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(duo_groups(&emu), ["staff-mfa"]);

    // --explain names the rule that left each group out (an exclude marker is no rule: that group
    // is not in the markers' selection at all).
    let (out, _) = run(dir, &["provision", "list", "duoTest", "--groups", "--explain"], 0);
    assert!(out.contains("selected: the marker on folder app:duo (scope sub) includes it; its name matches select_regex \"-mfa$\""), "{out}");
    assert!(out.contains("excluded: its name does not match select_regex \"-mfa$\""), "{out}");
    assert!(!out.contains("app:duo:carved-mfa"), "{out}");
    let explained: serde_json::Value = serde_json::from_str(&run(dir, &["provision", "list", "duoTest", "--groups", "--explain", "--json"], 0).0).unwrap();
    assert_eq!(explained["excluded"][0]["name"], "app:duo:other", "{explained:#}");
    assert_eq!(explained["excluded"][0]["excluded_by"], "its name does not match select_regex \"-mfa$\"", "{explained:#}");
}
