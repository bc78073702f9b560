//! The Duo Admin API application's permissions end to end, against an in-process emulator that
//! accepts two applications on one account — one with only "Grant read resource", one with every
//! grant: `doctor` names a missing write grant without changing Duo (and passes with it), its
//! opt-in `--check-write` creates and deletes one throwaway group, and a sync whose every write
//! Duo refuses with 403 exits 1 naming the grant instead of reporting a partial run.

use std::path::Path;

use duoprov_emulator::config::Grants;
use duoprov_emulator::{Emulator, Integration, RunningEmulator};
use serde_json::Value;

use crate::run;

const READ_ONLY: &str = "DIREADONLY0000000001";
const READ_WRITE: &str = "DIREADWRITE000000001";
const SKEY: &str = "permissions-test-secret-key-0123456789ab";

/// A folder whose provisioner duoTest talks to `emulator` as the application `ikey`.
fn configure(dir: &Path, emulator: &RunningEmulator, ikey: &str) {
    let config = format!(
        "[registry]\nurl = \"sqlite://registry.db\"\n\n[duo.test]\napi_host = \"127.0.0.1\"\nintegration_key = \"{ikey}\"\nsecret_key_file = \"duo.skey\"\nurl = \"{}\"\n\n[provisioner.duoTest]\nduo = \"test\"\n",
        emulator.base_url()
    );
    crate::write_config(dir, config).unwrap();
}

async fn setup() -> (tempfile::TempDir, RunningEmulator) {
    let read = Grants { read_resource: true, write_resource: false, administrators: false };
    let emulator = Emulator::builder()
        .integration(Integration::new(READ_ONLY, SKEY).with_grants(read))
        .integration(Integration::new(READ_WRITE, SKEY))
        .spawn_on("127.0.0.1:0")
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().unwrap();
    let skey = dir.path().join("duo.skey");
    std::fs::write(&skey, SKEY).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&skey, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    configure(dir.path(), &emulator, READ_ONLY);
    crate::sync::seed_registry(dir.path());
    (dir, emulator)
}

/// `(method path, status)` of every write call Duo answered.
fn writes(emulator: &RunningEmulator) -> Vec<(String, u16)> {
    emulator.handle().calls().into_iter().filter(|c| c.method != "GET").map(|c| (format!("{} {}", c.method, c.path), c.status)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_a_missing_write_grant_without_changing_duo_and_passes_with_it() {
    let (tmp, emulator) = setup().await;
    let dir = tmp.path();

    let (out, _) = run(dir, &["doctor", "duoTest"], 1);
    assert!(out.contains("ok    Duo: read access works"), "{out}");
    assert!(out.contains("FAIL  Duo write grant: Duo refused a write with 403"), "{out}");
    assert!(out.contains("lacks 'Grant write resource'") && out.contains("Duo Admin Panel"), "{out}");
    let (out, _) = run(dir, &["doctor", "duoTest", "--json"], 1);
    let report: Value = serde_json::from_str(&out).expect("doctor --json");
    assert_eq!(report["ok"], false);
    let grant = report["checks"].as_array().unwrap().iter().find(|c| c["check"] == "Duo write grant").expect("write grant check").clone();
    assert_eq!(grant["ok"], false, "{report:#}");
    // The opt-in round trip fails at its create and says so.
    let (out, _) = run(dir, &["doctor", "duoTest", "--check-write"], 1);
    assert!(out.contains("FAIL  Duo write round trip: could not create the throwaway group duoprov-doctor-"), "{out}");
    // Only refused writes reached Duo: the probe (403) and the throwaway create (403).
    let w = writes(&emulator);
    assert!(!w.is_empty() && w.iter().all(|(_, status)| *status == 403), "{w:?}");
    assert!(emulator.handle().state().groups.is_empty() && emulator.handle().state().users.is_empty());

    // With the grant, the probe passes and still changes nothing: Duo answers 404 for the user
    // that does not exist, because it checks the permission first.
    configure(dir, &emulator, READ_WRITE);
    let before = writes(&emulator).len();
    let (out, _) = run(dir, &["doctor", "duoTest"], 0);
    assert!(out.contains("ok    Duo write grant: write grant present"), "{out}");
    assert_eq!(writes(&emulator)[before..], [("POST /admin/v1/users/DU000000000000000000".to_owned(), 404)]);
    let (out, _) = run(dir, &["doctor", "duoTest", "--json"], 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["ok"], true, "{out}");
    assert!(!out.contains("round trip"), "the round trip runs only on request: {out}");

    // --check-write creates one clearly named group, deletes it, and reports both.
    let before = writes(&emulator).len();
    let (out, _) = run(dir, &["doctor", "duoTest", "--check-write"], 0);
    let line = out.lines().find(|l| l.starts_with("ok    Duo write round trip: created the throwaway group duoprov-doctor-")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.ends_with("and deleted it"), "{line}");
    let w: Vec<(String, u16)> = writes(&emulator)[before..].to_vec();
    assert_eq!(w.len(), 3, "{w:?}");
    assert_eq!(w[1], ("POST /admin/v1/groups".to_owned(), 200));
    assert!(w[2].0.starts_with("DELETE /admin/v1/groups/DG") && w[2].1 == 200, "{w:?}");
    assert!(line.contains(&w[2].0["DELETE /admin/v1/groups/".len()..]), "the report names the group's id: {line}");
    assert!(emulator.handle().state().groups.is_empty(), "the throwaway group is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_whose_every_write_is_refused_for_want_of_the_write_grant_exits_1_and_names_it() {
    let (tmp, emulator) = setup().await;
    let dir = tmp.path();

    let (out, err) = run(dir, &["sync", "duoTest"], 1);
    assert!(err.contains("Duo refused every write of this run with 403"), "{err}");
    assert!(err.contains("the Duo Admin API application lacks 'Grant write resource'") && err.contains("Duo Admin Panel"), "{err}");
    assert!(out.contains("[FORBIDDEN]"), "each refused object says why:\n{out}");
    let (out, _) = run(dir, &["sync", "duoTest", "--json"], 1);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["status"].clone(), report["lacks_write_grant"].clone()), (serde_json::json!("failed"), serde_json::json!(true)), "{report:#}");
    let (out, _) = run(dir, &["status", "duoTest", "--json"], 0);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["runs"][0]["status"], "failed", "the run log says so too");
    assert!(writes(&emulator).iter().all(|(_, s)| *s == 403));
    assert!(emulator.handle().state().groups.is_empty() && emulator.handle().state().users.is_empty());

    // The grant is fixed: the next sync provisions everything.
    configure(dir, &emulator, READ_WRITE);
    let (out, _) = run(dir, &["sync", "duoTest", "--json"], 0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["groups"]["created"].clone(), report["users"]["created"].clone()), (serde_json::json!(1), serde_json::json!(2)), "{report:#}");
    let state = emulator.handle().state();
    assert_eq!((state.groups.len(), state.users.len()), (1, 2));
}
