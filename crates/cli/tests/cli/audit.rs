//! The audit trail end to end through the binary against an in-process emulator, on SQLite and
//! (with `DUOPROV_TEST_POSTGRES_URL`) PostgreSQL: a real sync appends one entry per Duo mutation
//! with Duo's answer; `audit verify` passes on the untouched log and names the first broken entry
//! after raw SQL edits a row's `after`, deletes a middle row, or swaps two rows' sequence numbers;
//! `audit list` filters and `audit export` writes one JSON line per entry; no secret key or
//! signature reaches an audit row.

use std::path::PathBuf;

use duoprov_emulator::{Emulator, Integration, RunningEmulator};
use duoprov_registry::{postgres::PostgresStore, sqlite::SqliteStore};
use serde_json::Value;

const IKEY: &str = "DIAUDITTRAIL00000001";
const SKEY: &str = "audit-trail-test-secret-key-0123456789abc";

/// Raw SQL on the registry the binary uses, as an intruder with database access would run it.
enum Raw {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Raw {
    async fn exec(&self, sql: &str) {
        let result = match self {
            Raw::Sqlite(s) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(s.pool()).await.map(drop),
            Raw::Postgres(s) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(s.pool()).await.map(drop),
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Every audit row as text, all columns.
    async fn dump(&self) -> String {
        let sql = "SELECT seq || '|' || at_ms || '|' || actor || '|' || COALESCE(run_id, 0) || '|' || COALESCE(approval, '') || '|' || COALESCE(provisioner, '') \
                   || '|' || object_kind || '|' || object_name || '|' || COALESCE(object_uuid, '') || '|' || action || '|' || COALESCE(before_json, '') \
                   || '|' || COALESCE(after_json, '') || '|' || COALESCE(duo_status, '') || '|' || COALESCE(duo_code, 0) || '|' || COALESCE(duo_message, '') \
                   || '|' || prev_hash || '|' || hash FROM audit_log ORDER BY seq";
        let rows: Vec<String> = match self {
            Raw::Sqlite(s) => sqlx::query_scalar(sql).fetch_all(s.pool()).await,
            Raw::Postgres(s) => sqlx::query_scalar(sql).fetch_all(s.pool()).await,
        }
        .expect("dump the audit log");
        rows.join("\n")
    }
}

struct Setup {
    dir: tempfile::TempDir,
    _emulator: RunningEmulator,
    /// The registry URL the binary is given (PostgreSQL), or `None` for the configuration's SQLite.
    cli_url: Option<String>,
    raw: Raw,
}

async fn setup_with(postgres: Option<(String, String)>) -> Setup {
    let emulator = Emulator::builder().integration(Integration::new(IKEY, SKEY)).spawn_on("127.0.0.1:0").await.expect("emulator");
    let dir = tempfile::tempdir().unwrap();
    crate::write_emulator_setup(dir.path(), &emulator.base_url(), IKEY, SKEY, "", "");
    let (cli_url, raw) = match postgres {
        None => {
            let url = format!("sqlite://{}", dir.path().join("registry.db").display());
            (None, Raw::Sqlite(duoprov_registry::sqlite::connect(&url).await.expect("open the SQLite registry")))
        }
        Some((url, schema)) => {
            let store = duoprov_registry::postgres::connect(&url, None, Some(&schema)).await.unwrap_or_else(|e| panic!("open PostgreSQL: {e}"));
            let separator = if url.contains('?') { '&' } else { '?' };
            (Some(format!("{url}{separator}options[search_path]={schema}")), Raw::Postgres(store))
        }
    };
    Setup { dir, _emulator: emulator, cli_url, raw }
}

/// Runs the binary off the async threads (the emulator serves on them) and checks its exit code.
async fn cli(setup: &Setup, args: &[&str], code: i32) -> String {
    let dir: PathBuf = setup.dir.path().to_owned();
    let url = setup.cli_url.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = crate::duoprov(&dir);
        if let Some(url) = &url {
            cmd.env("DUOPROV_REGISTRY_URL", url);
        }
        let out = cmd.args(&args).output().expect("run duoprov");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "duoprov {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        stdout
    })
    .await
    .expect("the duoprov run")
}

async fn seed(setup: &Setup) {
    for args in [
        &["subject", "add", "mchyzer", "--name", "Chris Hyzer", "--login-id", "mchyzer", "--email", "mchyzer@example.edu"][..],
        &["subject", "add", "kwilso", "--name", "Kate Wilson", "--login-id", "kwilso", "--email", "kwilso@example.edu"],
        &["group", "add", "app:duo:testGroup", "--description", "Duo test group", "--create-parents"],
        &["group", "add", "app:duo:otherGroup", "--create-parents"],
        &["member", "add", "app:duo:testGroup", "mchyzer", "kwilso"],
        &["member", "add", "app:duo:otherGroup", "kwilso"],
        &["provision", "assign", "duoTest", "--folder", "app:duo", "--scope", "sub"],
    ] {
        cli(setup, args, 0).await;
    }
}

/// A run of hex digits exactly as long as a Duo request signature (HMAC-SHA1: 40, HMAC-SHA512:
/// 128), anywhere in `text`.
fn signature_like(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_hexdigit()).find(|run| run.len() == 40 || run.len() == 128).map(str::to_owned)
}

async fn scenario(setup: Setup) {
    let dir = setup.dir.path().to_owned();
    assert_eq!(cli(&setup, &["audit", "verify"], 0).await.trim(), "audit log intact: no entries yet");
    seed(&setup).await;
    cli(&setup, &["sync", "duoTest"], 0).await;

    // Two groups, two users, three memberships: one entry each, with Duo's answer.
    let list: Value = serde_json::from_str(&cli(&setup, &["audit", "list", "--json"], 0).await).expect("audit list JSON");
    let entries = list.as_array().expect("a list");
    let count = |kind: &str, action: &str| entries.iter().filter(|e| e["object_kind"] == kind && e["action"] == action).count();
    assert_eq!((count("group", "create"), count("user", "create"), count("membership", "add")), (2, 2, 3), "{list:#}");
    assert_eq!(entries.len(), 7, "{list:#}");
    for e in entries {
        assert_eq!(e["provisioner"], "duoTest", "{e:#}");
        assert!(e["actor"].as_str().unwrap().starts_with("cli:"), "{e:#}");
        assert!(e["run_id"].as_i64().is_some(), "{e:#}");
        assert_eq!(e["duo"]["status"], "OK", "{e:#}");
    }
    let group = entries.iter().find(|e| e["object_kind"] == "group" && e["after"]["desc"] == "Duo test group").expect("the test group's entry");
    assert!(group["object_uuid"].as_str().is_some_and(|u| u.len() == 36), "a group's entry carries its registry uuid apart from its name: {group:#}");
    assert!(group["time"].as_str().unwrap().ends_with('Z'), "{group:#}");
    let name = group["object_name"].as_str().unwrap();
    let by_object: Value = serde_json::from_str(&cli(&setup, &["audit", "list", "--json", "--object", name], 0).await).unwrap();
    assert_eq!(by_object.as_array().unwrap().len(), 1, "{by_object:#}");
    let newest: Value = serde_json::from_str(&cli(&setup, &["audit", "list", "--json", "--limit", "2", "--since", "1h"], 0).await).unwrap();
    assert_eq!(newest.as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect::<Vec<_>>(), [6, 7]);
    let none: Value = serde_json::from_str(&cli(&setup, &["audit", "list", "--json", "--provisioner", "other"], 0).await).unwrap();
    assert_eq!(none, Value::Array(vec![]));
    let table = cli(&setup, &["audit", "list"], 0).await;
    assert!(table.contains("create group") && table.contains("UTC"), "{table}");

    // Export: one JSON object per line, in sequence order.
    let export = cli(&setup, &["audit", "export"], 0).await;
    let lines: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect::<Vec<_>>(), (1..=7).collect::<Vec<_>>());
    assert_eq!(cli(&setup, &["audit", "export", "--since", "2999-01-01"], 0).await, "");

    // No secret key, signature or Authorization header in any row.
    let dump = setup.raw.dump().await;
    for text in [&dump, &export] {
        assert!(!text.contains(SKEY), "the secret key is in the audit log");
        assert!(!text.contains("Basic ") && !text.to_ascii_lowercase().contains("authorization"), "an Authorization header is in the audit log");
        assert_eq!(signature_like(text), None, "a signature-like hex string is in the audit log");
    }

    let verified = cli(&setup, &["audit", "verify"], 0).await;
    assert!(verified.starts_with("audit log intact: 7 entries"), "{verified}");
    setup.raw.exec("CREATE TABLE audit_copy AS SELECT * FROM audit_log").await;
    let restore = "DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM audit_copy";

    // An edited `after`.
    setup.raw.exec(r#"UPDATE audit_log SET after_json = '{"name":"someone else"}' WHERE seq = 4"#).await;
    let broken = cli(&setup, &["audit", "verify"], 1).await;
    assert!(broken.contains("entry 4 was edited"), "{broken}");
    let json: Value = serde_json::from_str(&cli(&setup, &["audit", "verify", "--json"], 1).await).unwrap();
    assert_eq!((json["intact"].as_bool(), json["seq"].as_i64(), json["problem"].as_str()), (Some(false), Some(4), Some("edited")));
    setup.raw.exec(restore).await;
    cli(&setup, &["audit", "verify"], 0).await;

    // A deleted middle row.
    setup.raw.exec("DELETE FROM audit_log WHERE seq = 3").await;
    let broken = cli(&setup, &["audit", "verify"], 1).await;
    assert!(broken.contains("entry 3 is missing"), "{broken}");
    setup.raw.exec(restore).await;
    cli(&setup, &["audit", "verify"], 0).await;

    // Two rows' sequence numbers swapped.
    setup.raw.exec("UPDATE audit_log SET seq = -6 WHERE seq = 6; UPDATE audit_log SET seq = 6 WHERE seq = 5; UPDATE audit_log SET seq = 5 WHERE seq = -6").await;
    let broken = cli(&setup, &["audit", "verify"], 1).await;
    assert!(broken.contains("entry 5 was reordered") && broken.contains("written as entry 6"), "{broken}");
    setup.raw.exec(restore).await;
    let verified = cli(&setup, &["audit", "verify"], 0).await;
    assert!(verified.starts_with("audit log intact: 7 entries"), "{verified}");
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_is_audited_and_edited_deleted_and_reordered_rows_are_caught_on_sqlite() {
    scenario(setup_with(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_is_audited_and_edited_deleted_and_reordered_rows_are_caught_on_postgres() {
    let Some(url) = crate::postgres_url() else { return };
    let schema = format!("cli_audit_{}", std::process::id());
    scenario(setup_with(Some((url, schema))).await).await;
}

/// Duo's refusals are recorded too: a sync whose writes Duo refuses with 403 (the application
/// lacks the write grant) appends each attempted mutation with `FAIL`, Duo's code and message,
/// and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_duo_refuses_is_audited_with_duos_code_and_message() {
    let read_only = duoprov_emulator::config::Grants { read_resource: true, write_resource: false, administrators: false };
    let emulator = Emulator::builder().integration(Integration::new(IKEY, SKEY).with_grants(read_only)).spawn_on("127.0.0.1:0").await.expect("emulator");
    let dir = tempfile::tempdir().unwrap();
    crate::write_emulator_setup(dir.path(), &emulator.base_url(), IKEY, SKEY, "", "");
    let url = format!("sqlite://{}", dir.path().join("registry.db").display());
    let setup = Setup { dir, _emulator: emulator, cli_url: None, raw: Raw::Sqlite(duoprov_registry::sqlite::connect(&url).await.unwrap()) };
    seed(&setup).await;
    cli(&setup, &["sync", "duoTest"], 1).await;
    let list: Value = serde_json::from_str(&cli(&setup, &["audit", "list", "--json"], 0).await).unwrap();
    let entries = list.as_array().unwrap();
    let creates: Vec<&Value> = entries.iter().filter(|e| e["object_kind"] == "group" && e["action"] == "create").collect();
    assert_eq!(creates.len(), 2, "{list:#}");
    for e in &creates {
        assert_eq!(e["duo"]["status"], "FAIL", "{e:#}");
        assert_eq!(e["duo"]["code"], 40301, "{e:#}");
        assert!(e["duo"]["message"].as_str().unwrap().contains("forbidden"), "{e:#}");
        assert_eq!(e["after"]["group_id"], Value::Null, "{e:#}");
    }
    assert!(entries.iter().all(|e| e["duo"]["status"] == "FAIL"), "Duo accepted nothing: {list:#}");
    let verified = cli(&setup, &["audit", "verify"], 0).await;
    assert!(verified.starts_with(&format!("audit log intact: {} entries", entries.len())), "{verified}");
}
