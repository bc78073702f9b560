//! Safety rails end to end, through the binary against an in-process emulator, checked by what
//! Duo executed: deletions and removals above the thresholds are refused (exit 3) with the list of
//! what would go and nothing changed; an approval (`--allow-deletes N`) applies exactly the
//! approved deletions; users are never deleted under the default policy; and Duo objects duoprov
//! did not create (adopted by name) are never deleted, even when the registry drops them. The
//! emptied-registry rule is proved in `sync.rs`
//! (`an_emptied_selection_with_50_managed_groups_is_refused_until_approved_exactly`).

use std::collections::{BTreeMap, BTreeSet};

use duoprov_emulator::{RunningEmulator, TenantDump};
use serde_json::{Value, json};

use crate::faults::{emulator, folder};
use crate::run;

fn last_seq(emu: &RunningEmulator) -> u64 {
    emu.handle().calls().last().map(|c| c.seq).unwrap_or(0)
}

/// `METHOD path` of every write call Duo answered since `seq`.
fn writes_since(emu: &RunningEmulator, seq: u64) -> Vec<String> {
    emu.handle().calls_since(seq).into_iter().filter(|c| c.method != "GET").map(|c| format!("{} {}", c.method, c.path)).collect()
}

/// Duo's groups (name → id) and users (username → (id, status, group names)).
#[allow(clippy::type_complexity)]
fn duo(emu: &RunningEmulator) -> (BTreeMap<String, String>, BTreeMap<String, (String, String, BTreeSet<String>)>) {
    let dump = serde_json::to_value(emu.handle().state()).unwrap();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let groups: BTreeMap<String, String> = dump["groups"].as_array().unwrap().iter().map(|g| (s(&g["name"]), s(&g["group_id"]))).collect();
    let name_of: BTreeMap<&String, &String> = groups.iter().map(|(n, id)| (id, n)).collect();
    let users = dump["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let in_groups = u["groups"].as_array().unwrap().iter().map(|g| name_of[&s(g)].clone()).collect();
            (s(&u["username"]), (s(&u["user_id"]), s(&u["status"]), in_groups))
        })
        .collect();
    (groups, users)
}

fn names(it: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    it.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_above_the_thresholds_are_refused_with_the_list_and_an_approval_applies_exactly_those() {
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // 30 groups; u00…u29 each in the group of its number; u30…u39 in g00 and g01 as well.
    let subjects: Vec<Value> = (0..40).map(|i| json!({"id": format!("u{i:02}"), "name": format!("User {i}"), "login_id": format!("u{i:02}")})).collect();
    let groups: Vec<Value> = (0..30).map(|j| json!({"name": format!("app:duo:g{j:02}")})).collect();
    let mut memberships: Vec<Value> = (0..30).map(|i| json!({"group": format!("app:duo:g{i:02}"), "subject": format!("u{i:02}")})).collect();
    for i in 30..40 {
        for g in ["g00", "g01"] {
            memberships.push(json!({"group": format!("app:duo:{g}"), "subject": format!("u{i:02}")}));
        }
    }
    let doc = json!({"subjects": subjects, "groups": groups, "memberships": memberships, "markers": [{"provisioner": "duoTest", "folder": "app:duo"}]});
    folder(dir, &emu, 4, &doc.to_string());
    run(dir, &["sync", "duoTest"], 0);
    let (before, users_before) = duo(&emu);
    assert_eq!((before.len(), users_before.len()), (30, 40));

    // Twelve groups leave the registry: more than max_group_deletes = 10. Refused with the list,
    // also when the approval is one short, and nothing is written.
    for j in 18..30 {
        run(dir, &["group", "remove", &format!("app:duo:g{j:02}")], 0);
    }
    let seq = last_seq(&emu);
    let (_, err) = run(dir, &["sync", "duoTest"], 3);
    assert!(err.contains("12 group deletions exceed max_group_deletes = 10"), "{err}");
    for j in 18..30 {
        assert!(err.contains(&format!("delete group g{j:02}")), "g{j:02} is not listed:\n{err}");
    }
    assert!(!err.contains("delete group g17") && err.contains("--allow-deletes 12"), "{err}");
    run(dir, &["sync", "duoTest", "--allow-deletes", "11"], 3);
    assert_eq!(writes_since(&emu, seq), Vec::<String>::new(), "a refused sync changes nothing");

    // Approved: Duo deletes exactly those twelve groups, once each, and nothing else is written.
    let report: Value = serde_json::from_str(&run(dir, &["sync", "duoTest", "--allow-deletes", "12", "--json"], 0).0).unwrap();
    assert_eq!(report["groups"]["deleted"], 12, "{report:#}");
    let writes = writes_since(&emu, seq);
    let want: Vec<String> = (18..30).map(|j| format!("DELETE /admin/v1/groups/{}", before[&format!("g{j:02}")])).collect();
    assert_eq!((writes.len(), names(writes)), (12, names(want)));
    // Users removed from every group stay in Duo, active, under the default policy.
    let (after, users) = duo(&emu);
    assert_eq!(after.len(), 18);
    assert_eq!(users.len(), 40, "no user deleted");
    for i in 18..30 {
        let (id, status, groups) = &users[&format!("u{i:02}")];
        assert_eq!((id, status.as_str(), groups.len()), (&users_before[&format!("u{i:02}")].0, "active", 0));
    }

    // Five of g00's eleven members leave it: more than max_group_removal_percent = 30 %.
    run(dir, &["member", "remove", "app:duo:g00", "u30", "u31", "u32", "u33", "u34"], 0);
    let seq = last_seq(&emu);
    let (_, err) = run(dir, &["sync", "duoTest"], 3);
    assert!(err.contains("5 of 11 members of group g00"), "{err}");
    for i in 30..35 {
        assert!(err.contains(&format!("remove u{i} from group g00")), "u{i} is not listed:\n{err}");
    }
    assert!(err.contains("--allow-deletes 5"), "{err}");
    assert_eq!(writes_since(&emu, seq), Vec::<String>::new());
    let report: Value = serde_json::from_str(&run(dir, &["sync", "duoTest", "--allow-deletes", "5", "--json"], 0).0).unwrap();
    assert_eq!(report["memberships"]["deleted"], 5, "{report:#}");
    let (_, users) = duo(&emu);
    let members = |g: &str| names(users.iter().filter(|(_, (_, _, gs))| gs.contains(g)).map(|(u, _)| u.clone()));
    assert_eq!(members("g00"), names(["u00", "u35", "u36", "u37", "u38", "u39"].map(String::from)));
    assert_eq!(members("g01").len(), 11, "other groups untouched");
    assert_eq!(users.len(), 40);
    let plan: Value = serde_json::from_str(&run(dir, &["plan", "duoTest", "--json"], 0).0).unwrap();
    assert_eq!(plan["plan"]["ops"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duo_objects_duoprov_did_not_create_are_never_deleted_when_the_registry_drops_them() {
    let emu = emulator("").await;
    // Duo already holds group staff with jdoe and legacy, made by someone else.
    let existing: TenantDump = serde_json::from_value(json!({
        "users": [
            {"user_id": "DUJDOE00000000000001", "username": "jdoe", "status": "active", "created": 1_700_000_000, "groups": ["DGSTAFF0000000000001"]},
            {"user_id": "DULEGACY000000000001", "username": "legacy", "status": "active", "created": 1_700_000_000, "groups": ["DGSTAFF0000000000001"]}
        ],
        "groups": [{"group_id": "DGSTAFF0000000000001", "name": "staff", "status": "active"}]
    }))
    .unwrap();
    emu.handle().load_state(existing).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let doc = json!({
        "subjects": [{"id": "jdoe", "login_id": "jdoe"}, {"id": "kwilso", "login_id": "kwilso"}, {"id": "mchyzer", "login_id": "mchyzer"}],
        "groups": [{"name": "app:duo:staff"}, {"name": "app:duo:ours"}, {"name": "app:duo:keep"}],
        "memberships": [
            {"group": "app:duo:staff", "subject": "jdoe"},
            {"group": "app:duo:ours", "subject": "kwilso"},
            {"group": "app:duo:keep", "subject": "mchyzer"}
        ],
        "markers": [{"provisioner": "duoTest", "folder": "app:duo"}]
    });
    folder(dir, &emu, 4, &doc.to_string());

    // The first sync adopts staff and jdoe by name and creates the rest.
    let report: Value = serde_json::from_str(&run(dir, &["sync", "duoTest", "--json"], 0).0).unwrap();
    assert_eq!((report["adopted"].clone(), report["groups"]["created"].clone(), report["users"]["created"].clone()), (json!(2), json!(2), json!(2)), "{report:#}");
    let (groups, users) = duo(&emu);
    assert_eq!(groups["staff"], "DGSTAFF0000000000001");
    assert_eq!(users["jdoe"].0, "DUJDOE00000000000001");
    let ours = groups["ours"].clone();

    // The registry drops the adopted group (and with it jdoe) and one duoprov created. Even with
    // every deletion approved, only duoprov's own group goes; the rest of Duo stays as it is.
    run(dir, &["group", "remove", "app:duo:staff"], 0);
    run(dir, &["group", "remove", "app:duo:ours"], 0);
    let seq = last_seq(&emu);
    let report: Value = serde_json::from_str(&run(dir, &["sync", "duoTest", "--allow-deletes", "100", "--json"], 0).0).unwrap();
    assert_eq!(report["groups"]["deleted"], 1, "{report:#}");
    assert_eq!(writes_since(&emu, seq), vec![format!("DELETE /admin/v1/groups/{ours}")]);
    let (groups, users) = duo(&emu);
    assert_eq!(names(groups.keys().cloned()), names(["keep", "staff"].map(String::from)));
    assert_eq!(groups["staff"], "DGSTAFF0000000000001");
    assert_eq!(names(users.keys().cloned()), names(["jdoe", "kwilso", "legacy", "mchyzer"].map(String::from)), "no user deleted");
    assert!(users.values().all(|(_, status, _)| status == "active"), "{users:?}");
    assert!(users["jdoe"].2.contains("staff"), "a released group keeps its members");
    // And later runs leave them alone too.
    let plan: Value = serde_json::from_str(&run(dir, &["plan", "duoTest", "--json"], 0).0).unwrap();
    assert_eq!(plan["plan"]["ops"], json!([]));
}
