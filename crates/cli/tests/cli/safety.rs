//! Safety rails end to end, through the binary against an in-process emulator, checked by what
//! Duo executed: deletions and removals above the thresholds are refused (exit 3) with the exact
//! list of what would go and its digest, and nothing changed; an approval names that digest
//! (`--approve DIGEST`) and applies exactly the approved list; an approval of a list that has
//! changed since (or a wrong digest) is refused again with the new list; a saved plan approves
//! what it shows; the old count approval `--allow-deletes N` is refused; users are never deleted
//! under the default policy; and Duo objects duoprov did not create (adopted by name) are never
//! deleted, even when the registry drops them. A refused plan is kept for `duoprov status` and
//! the console, and cleared by the approved run. The emptied-registry rule is proved in `sync.rs`
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

/// The removal digest a refusal or a plan printed ("… removal digest 0123456789ab …").
pub fn digest_in(text: &str) -> String {
    let at = text.find("removal digest ").unwrap_or_else(|| panic!("no removal digest in:\n{text}")) + "removal digest ".len();
    let digest: String = text[at..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    assert_eq!(digest.len(), 12, "{text}");
    digest
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
    let listed: Vec<&str> = err.lines().map(str::trim).filter(|l| l.starts_with("delete group ")).collect();
    let want: Vec<String> = (18..30).map(|j| format!("delete group g{j:02}")).collect();
    assert_eq!(listed, want, "the exact list, sorted, by name:\n{err}");
    let digest = digest_in(&err);
    assert!(err.contains(&format!("duoprov sync duoTest --approve {digest}")), "{err}");
    // `duoprov plan` shows the same digest, in text and JSON, so a plan review can approve.
    let (plan_text, _) = run(dir, &["plan", "duoTest"], 0);
    assert!(plan_text.contains(&format!("digest {digest}")) && plan_text.contains(&format!("--approve {digest}")), "{plan_text}");
    let plan: Value = serde_json::from_str(&run(dir, &["plan", "duoTest", "--json"], 0).0).unwrap();
    assert_eq!(plan["removal_digest"], digest.as_str());
    // The old count approval is refused with a pointer to --approve; a wrong digest is refused.
    let (_, err) = run(dir, &["sync", "duoTest", "--allow-deletes", "12"], 1);
    assert!(err.contains("--allow-deletes 12 is no longer accepted") && err.contains("--approve DIGEST"), "{err}");
    let (_, err) = run(dir, &["sync", "duoTest", "--approve", "0123456789ab"], 3);
    assert!(err.contains("the approval names digest 0123456789ab, which does not match") && err.contains(&digest), "{err}");
    assert_eq!(writes_since(&emu, seq), Vec::<String>::new(), "a refused sync changes nothing");
    // The refused plan is kept as the provisioner's last, for the console and `duoprov status`.
    let status: Value = serde_json::from_str(&run(dir, &["status", "duoTest", "--json"], 0).0).unwrap();
    let kept = &status["refused_plan"];
    assert_eq!((kept["digest"].as_str(), kept["removal_count"].as_i64(), kept["kind"].as_str()), (Some(digest.as_str()), Some(12), Some("full")), "{status:#}");

    // Approved: Duo deletes exactly those twelve groups, once each, and nothing else is written.
    let report: Value = serde_json::from_str(&run(dir, &["sync", "duoTest", "--approve", &digest, "--json"], 0).0).unwrap();
    assert_eq!(report["groups"]["deleted"], 12, "{report:#}");
    let status: Value = serde_json::from_str(&run(dir, &["status", "duoTest", "--json"], 0).0).unwrap();
    assert_eq!(status["refused_plan"], Value::Null, "the run that got past the rules clears it: {status:#}");
    assert_eq!(report["removal_digest"], digest.as_str());
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
    // With --json the refusal is also a JSON document carrying the list and its digest.
    let (out, _) = run(dir, &["sync", "duoTest", "--json"], 3);
    let refusal: Value = serde_json::from_str(&out).unwrap();
    let want: Vec<String> = (30..35).map(|i| format!("remove u{i} from group g00")).collect();
    assert_eq!((refusal["refused"].clone(), refusal["removals"].clone()), (json!(true), json!(want)), "{refusal:#}");
    let digest = refusal["removal_digest"].as_str().unwrap().to_owned();
    assert_eq!(digest, digest_in(&err));
    assert_eq!(refusal["approve"], format!("duoprov sync duoTest --approve {digest}"));
    assert_eq!(writes_since(&emu, seq), Vec::<String>::new());
    let report: Value = serde_json::from_str(&run(dir, &["sync", "duoTest", "--approve", &digest, "--json"], 0).0).unwrap();
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
    // every planned removal approved, only duoprov's own group goes; the rest of Duo stays as it is.
    run(dir, &["group", "remove", "app:duo:staff"], 0);
    run(dir, &["group", "remove", "app:duo:ours"], 0);
    let seq = last_seq(&emu);
    let plan: Value = serde_json::from_str(&run(dir, &["plan", "duoTest", "--json"], 0).0).unwrap();
    let digest = plan["removal_digest"].as_str().unwrap().to_owned();
    let report: Value = serde_json::from_str(&run(dir, &["sync", "duoTest", "--approve", &digest, "--json"], 0).0).unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_refused_again_when_the_removal_list_changed_before_it_was_applied() {
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let subjects: Vec<Value> = (0..20).map(|i| json!({"id": format!("u{i:02}"), "login_id": format!("u{i:02}")})).collect();
    let groups: Vec<Value> = (0..20).map(|j| json!({"name": format!("app:duo:g{j:02}")})).collect();
    let memberships: Vec<Value> = (0..20).map(|i| json!({"group": format!("app:duo:g{i:02}"), "subject": format!("u{i:02}")})).collect();
    let doc = json!({"subjects": subjects, "groups": groups, "memberships": memberships, "markers": [{"provisioner": "duoTest", "folder": "app:duo"}]});
    folder(dir, &emu, 4, &doc.to_string());
    run(dir, &["sync", "duoTest"], 0);
    let (before, _) = duo(&emu);

    // Eleven groups go: refused; the operator reviews that list and its digest.
    for j in 0..11 {
        run(dir, &["group", "remove", &format!("app:duo:g{j:02}")], 0);
    }
    let seq = last_seq(&emu);
    let (_, err) = run(dir, &["sync", "duoTest"], 3);
    let reviewed = digest_in(&err);
    assert!(!err.contains("delete group g11"), "{err}");

    // Before the approval runs, the registry drops one more group: the approved digest no longer
    // matches, so the run is refused again with the new list and its new digest, and Duo is not
    // touched — an approval of eleven deletions never covers a twelfth.
    run(dir, &["group", "remove", "app:duo:g11"], 0);
    let (_, err) = run(dir, &["sync", "duoTest", "--approve", &reviewed], 3);
    assert!(err.contains(&format!("the approval names digest {reviewed}, which does not match")), "{err}");
    let current = digest_in(&err);
    assert_ne!(current, reviewed);
    let listed: Vec<&str> = err.lines().map(str::trim).filter(|l| l.starts_with("delete group ")).collect();
    let want: Vec<String> = (0..12).map(|j| format!("delete group g{j:02}")).collect();
    assert_eq!(listed, want, "{err}");
    assert!(err.contains(&format!("--approve {current}")), "{err}");
    assert_eq!(writes_since(&emu, seq), Vec::<String>::new(), "nothing applied");

    // A saved plan is the other approval: made and applied against the same states, it deletes
    // exactly what it shows.
    let saved = dir.join("plan.json");
    let (text, _) = run(dir, &["plan", "duoTest", "--out", saved.to_str().unwrap()], 0);
    assert!(text.contains(&format!("digest {current}")), "{text}");
    // A saved plan edited by hand (one deletion dropped) matches the states but is not their
    // plan: refused, nothing written.
    let mut edited: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    edited["plan"]["ops"].as_array_mut().unwrap().pop();
    let edited_path = dir.join("edited.json");
    std::fs::write(&edited_path, edited.to_string()).unwrap();
    let (_, err) = run(dir, &["sync", "duoTest", "--plan", edited_path.to_str().unwrap()], 3);
    assert!(err.contains("the plan in the file is not the plan of these states"), "{err}");
    assert_eq!(writes_since(&emu, seq), Vec::<String>::new(), "nothing applied");
    let report: Value = serde_json::from_str(&run(dir, &["sync", "duoTest", "--plan", saved.to_str().unwrap(), "--json"], 0).0).unwrap();
    assert_eq!(report["removal_digest"], current.as_str());
    let writes = writes_since(&emu, seq);
    let want: Vec<String> = (0..12).map(|j| format!("DELETE /admin/v1/groups/{}", before[&format!("g{j:02}")])).collect();
    assert_eq!((writes.len(), names(writes)), (12, names(want)));
    let (after, _) = duo(&emu);
    assert_eq!(names(after.keys().cloned()), names((12..20).map(|j| format!("g{j:02}"))));
}
