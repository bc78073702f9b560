//! Sources end to end through the binary: `duoprov import --mirror SOURCE FILE` makes the
//! registry an exact mirror of the file for that source (a member the file lacks is removed, and
//! that removal reaches Duo by `sync`; plain `import` stays additive), never touches a hand-made
//! group or `local` subjects, refuses an empty file (exit 3, nothing changed) until its exact
//! removal list is approved, and `source list` / `source status` show the sources and their runs.

use serde_json::{Value, json};

use crate::faults::{emulator, folder};
use crate::run;

const SOURCE: &str = "\n[source.hr]\nkind = \"file\"\nsubject_source = \"hr\"\nfolder = \"hr\"\n";

fn setup(dir: &std::path::Path, emu: &duoprov_emulator::RunningEmulator) {
    // A hand-made group with a local subject, provisioned like the source's folder.
    let hand = json!({
        "subjects": [{"id": "x", "login_id": "x"}],
        "folders": [{"path": "hr"}],
        "groups": [{"name": "app:hand"}],
        "memberships": [{"group": "app:hand", "subject": "x"}],
        "markers": [{"provisioner": "duoTest", "folder": "hr"}, {"provisioner": "duoTest", "group": "app:hand"}],
    });
    folder(dir, emu, 2, &hand.to_string());
    let mut config = std::fs::read_to_string(dir.join("duoprov.toml")).unwrap();
    config.push_str(SOURCE);
    std::fs::write(dir.join("duoprov.toml"), config).unwrap();
}

fn snapshot(members: &[&str]) -> String {
    let subjects: Vec<Value> = ["a", "b", "c"].iter().map(|id| json!({"source": "hr", "id": id, "login_id": id})).collect();
    let memberships: Vec<Value> = members.iter().map(|id| json!({"group": "hr:staff", "subject": id, "source": "hr"})).collect();
    json!({"subjects": subjects, "groups": [{"name": "hr:staff", "description": "Staff"}], "memberships": memberships}).to_string()
}

fn members(dir: &std::path::Path, group: &str) -> Vec<String> {
    let (out, _) = run(dir, &["member", "list", group, "--json"], 0);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let mut ids: Vec<String> = v.as_array().unwrap().iter().map(|m| format!("{}:{}", m["source"].as_str().unwrap_or("-"), m["id"].as_str().unwrap_or("-"))).collect();
    ids.sort();
    ids
}

/// Usernames of the Duo group's members.
fn duo_members(emu: &duoprov_emulator::RunningEmulator, group: &str) -> Vec<String> {
    let dump = serde_json::to_value(emu.handle().state()).unwrap();
    let id = dump["groups"].as_array().unwrap().iter().find(|g| g["name"] == group).unwrap_or_else(|| panic!("no Duo group {group}"))["group_id"].clone();
    let mut names: Vec<String> = dump["users"].as_array().unwrap().iter().filter(|u| u["groups"].as_array().unwrap().contains(&id)).map(|u| u["username"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_the_mirror_file_lacks_is_removed_and_sync_removes_it_from_duo_while_plain_import_keeps_it() {
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, &emu);
    std::fs::write(dir.join("v1.json"), snapshot(&["a", "b", "c"])).unwrap();
    std::fs::write(dir.join("v2.json"), snapshot(&["a", "c"])).unwrap();
    run(dir, &["import", "--mirror", "hr", "v1.json"], 0);
    run(dir, &["sync", "duoTest"], 0);
    assert_eq!(duo_members(&emu, "staff"), ["a", "b", "c"]);

    // Plain import only adds: b stays.
    run(dir, &["import", "v2.json"], 0);
    assert_eq!(members(dir, "hr:staff"), ["hr:a", "hr:b", "hr:c"]);
    // A dry run shows the removal and writes nothing.
    let (out, _) = run(dir, &["import", "--mirror", "hr", "v2.json", "--dry-run"], 0);
    assert!(out.contains("remove subject hr:b from group hr:staff"), "{out}");
    assert_eq!(members(dir, "hr:staff"), ["hr:a", "hr:b", "hr:c"]);
    // The mirror removes b, and the incremental sync carries exactly that to Duo.
    let (out, _) = run(dir, &["import", "--mirror", "hr", "v2.json", "--json"], 0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["outcome"].as_str(), report["counts"]["members_removed"].as_u64()), (Some("applied"), Some(1)), "{report:#}");
    assert_eq!(members(dir, "hr:staff"), ["hr:a", "hr:c"]);
    run(dir, &["sync", "duoTest", "--incremental"], 0);
    assert_eq!(duo_members(&emu, "staff"), ["a", "c"]);
    // The same file again changes nothing.
    let (out, _) = run(dir, &["import", "--mirror", "hr", "v2.json"], 0);
    assert!(out.contains("unchanged"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_never_touches_a_hand_made_group_or_local_subjects() {
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, &emu);
    std::fs::write(dir.join("v1.json"), snapshot(&["a", "b"])).unwrap();
    run(dir, &["import", "--mirror", "hr", "v1.json"], 0);
    // The operator puts the source's subject a into the hand-made group too.
    run(dir, &["member", "add", "app:hand", "a", "--source", "hr"], 0);
    let only_c = json!({"subjects": [{"source": "hr", "id": "c"}], "groups": [{"name": "hr:other"}], "memberships": [{"group": "hr:other", "subject": "c", "source": "hr"}]});
    std::fs::write(dir.join("v2.json"), only_c.to_string()).unwrap();
    // Within the default thresholds (two members is under the per-group rule's minimum size).
    run(dir, &["import", "--mirror", "hr", "v2.json"], 0);
    let (out, _) = run(dir, &["group", "list", "--json"], 0);
    assert!(out.contains("app:hand") && out.contains("hr:other") && !out.contains("hr:staff"), "{out}");
    // The hand-made group keeps its local member; hr:a left it only because the subject is gone.
    assert_eq!(members(dir, "app:hand"), ["local:x"]);
    let (out, _) = run(dir, &["subject", "list", "--json"], 0);
    assert!(out.contains("\"x\"") && out.contains("\"c\"") && !out.contains("\"a\""), "{out}");
    // A file naming objects outside the source's scope is refused whole.
    let outside = json!({"subjects": [{"id": "x"}], "groups": [{"name": "app:hand"}]});
    std::fs::write(dir.join("bad.json"), outside.to_string()).unwrap();
    let (_, err) = run(dir, &["import", "--mirror", "hr", "bad.json"], 1);
    assert!(err.contains("subject local:x") && err.contains("group app:hand") && err.contains("nothing was changed"), "{err}");
    assert_eq!(members(dir, "app:hand"), ["local:x"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_mirror_file_is_refused_with_exit_3_and_nothing_changes_until_its_list_is_approved() {
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, &emu);
    std::fs::write(dir.join("v1.json"), snapshot(&["a", "b"])).unwrap();
    std::fs::write(dir.join("empty.json"), "{}").unwrap();
    run(dir, &["import", "--mirror", "hr", "v1.json"], 0);
    let (_, err) = run(dir, &["import", "--mirror", "hr", "empty.json"], 3);
    assert!(err.contains("answered empty") && err.contains("nothing was changed"), "{err}");
    assert!(err.contains("remove group hr:staff") && err.contains("remove subject hr:c"), "{err}");
    let digest = crate::safety::digest_in(&err);
    assert!(err.contains(&format!("--approve {digest}")), "{err}");
    assert_eq!(members(dir, "hr:staff"), ["hr:a", "hr:b"]);
    let (status, _) = run(dir, &["source", "status"], 0);
    assert!(status.lines().any(|l| l.starts_with("hr") && l.contains("refused")), "{status}");
    let (_, err) = run(dir, &["import", "--mirror", "hr", "empty.json", "--approve", "0123456789ab"], 3);
    assert!(err.contains("does not match"), "{err}");
    run(dir, &["import", "--mirror", "hr", "empty.json", "--approve", &digest], 0);
    let (out, _) = run(dir, &["group", "list", "--json"], 0);
    assert!(!out.contains("hr:staff"), "{out}");
    let (list, _) = run(dir, &["source", "list"], 0);
    assert!(list.lines().any(|l| l.starts_with("hr") && l.contains("file") && l.contains("hr")), "{list}");
    let (status, _) = run(dir, &["source", "status"], 0);
    assert!(status.lines().any(|l| l.starts_with("hr") && l.contains("applied")), "{status}");
}

/// Polls `f` every 50 ms until it holds, failing with `what` and the last value after `timeout`.
fn poll<T: std::fmt::Debug>(what: &str, timeout: std::time::Duration, f: impl Fn() -> (bool, T)) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (ok, last) = f();
        if ok {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: not within {timeout:?}; last: {last:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_a_file_source_on_its_schedule_carries_its_changes_to_duo_and_reports_a_refused_run_without_stopping_provisioners() {
    use std::time::Duration;
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, &emu);
    let config = std::fs::read_to_string(dir.join("duoprov.toml")).unwrap();
    std::fs::write(dir.join("duoprov.toml"), config.replace(SOURCE, &format!("{SOURCE}files = [\"hr.json\"]\nschedule = \"every 1s\"\n"))).unwrap();
    std::fs::write(dir.join("hr.json"), snapshot(&["a", "b", "c"])).unwrap();
    // No `source sync`, no `sync`: the daemon reads the source, then provisions it.
    let daemon = crate::daemon::start_daemon(dir, &[]);
    let staff = |want: &'static [&'static str]| {
        let emu = &emu;
        move || {
            let dump = serde_json::to_value(emu.handle().state()).unwrap();
            let has = dump["groups"].as_array().unwrap().iter().any(|g| g["name"] == "staff");
            let got = if has { duo_members(emu, "staff") } else { Vec::new() };
            (got == want, got)
        }
    };
    poll("staff = a, b, c in Duo", Duration::from_secs(60), staff(&["a", "b", "c"]));
    std::fs::write(dir.join("hr.json"), snapshot(&["a", "c"])).unwrap();
    poll("b removed from staff in Duo", Duration::from_secs(60), staff(&["a", "c"]));

    // An empty file is refused: nothing changes, /readyz and /metrics say so, the daemon stays
    // ready, and the provisioner goes on carrying registry changes to Duo.
    std::fs::write(dir.join("hr.json"), "{}").unwrap();
    let status = daemon.status.clone();
    poll("the refusal on /readyz", Duration::from_secs(60), || {
        let (code, body) = crate::daemon::get(&status, "/readyz");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        (code == 200 && v["sources"]["hr"]["last_result"] == "refused", body)
    });
    let (_, body) = crate::daemon::get(&status, "/readyz");
    let v: Value = serde_json::from_str(&body).unwrap();
    let detail = v["sources"]["hr"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("answered empty") && detail.contains("--approve"), "{body}");
    let (_, metrics) = crate::daemon::get(&status, "/metrics");
    assert!(metrics.contains("duoprov_source_refused{source=\"hr\"} 1"), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("duoprov_source_runs_total{") && l.contains("source=\"hr\"") && l.contains("result=\"refused\"")), "{metrics}");
    assert_eq!(members(dir, "hr:staff"), ["hr:a", "hr:c"]);
    run(dir, &["member", "add", "app:hand", "a", "--source", "hr"], 0);
    poll("a added to the hand-made group in Duo", Duration::from_secs(60), || {
        let got = duo_members(&emu, "hand");
        (got == ["a", "x"], got)
    });
    assert_eq!(duo_members(&emu, "staff"), ["a", "c"]);
    let (code, err) = daemon.stop();
    assert_eq!(code, Some(0), "{err}");
}
