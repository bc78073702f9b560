//! The SQL source end to end through the binary, against a real PostgreSQL schema each test
//! creates (`DUOPROV_TEST_POSTGRES_URL`, the password passed only through `password_env`; the
//! registry is SQLite): the first read mirrors subjects, groups and a nested group; a removal in
//! the database reaches the registry and, by `sync`, Duo; bad SQL, a NULL login, a column of the
//! wrong type and a database that is not there fail the run with the query, row or column named
//! and change nothing; the TLS cluster (`DUOPROV_TEST_POSTGRES_TLS_URL`, `_CA`, `_OTHER_CA`) is
//! read with its CA and refused with another; and the Grouper recipe of docs/sources.md, read
//! from the document itself, runs against tables shaped like Grouper's views.

use serde_json::{Value, json};

use crate::faults::{emulator, folder};

const PW_ENV: &str = "DUOPROV_TEST_SQL_SOURCE_PASSWORD";

/// The test database's URL without its password, and the password.
fn database() -> Option<(String, String)> {
    let full = crate::postgres_url()?;
    let mut url = url::Url::parse(&full).expect("DUOPROV_TEST_POSTGRES_URL is a URL");
    let password = url.password().unwrap_or("").to_owned();
    url.set_password(None).unwrap();
    Some((url.to_string(), password))
}

/// Runs SQL statements on the test database (as its owner).
async fn exec(sql: &str) {
    let full = std::env::var("DUOPROV_TEST_POSTGRES_URL").unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&full).await.expect("connect to the test database");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pool).await.unwrap_or_else(|e| panic!("{e}: {sql}"));
    pool.close().await;
}

/// A fresh schema `schema` with people, teams and their members: a, b, c in team t1 (staff),
/// a in t2 (admins), and t1 nested in t3 (everyone).
async fn seed(schema: &str) {
    exec(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
         CREATE TABLE {schema}.people (id text PRIMARY KEY, login text, full_name text, mail text, age numeric);
         CREATE TABLE {schema}.teams (team_key text PRIMARY KEY, team_name text NOT NULL, descr text);
         CREATE TABLE {schema}.team_members (team_key text NOT NULL, person_id text, member_team text);
         INSERT INTO {schema}.people VALUES ('a', 'alice', 'Alice A', 'a@example.edu', 30), ('b', 'bob', 'Bob B', NULL, 40), ('c', 'carol', NULL, NULL, 50);
         INSERT INTO {schema}.teams VALUES ('t1', 'staff', 'All staff'), ('t2', 'admins', NULL), ('t3', 'everyone', NULL);
         INSERT INTO {schema}.team_members VALUES ('t1', 'a', NULL), ('t1', 'b', NULL), ('t1', 'c', NULL), ('t2', 'a', NULL), ('t3', NULL, 't1');"
    ))
    .await;
}

fn queries(schema: &str) -> [(String, String); 3] {
    [
        ("subjects".into(), format!("SELECT id, login AS login_id, full_name AS name, mail AS email FROM {schema}.people")),
        ("groups".into(), format!("SELECT team_key AS key, team_name AS name, descr AS description FROM {schema}.teams")),
        ("memberships".into(), format!("SELECT team_key AS group_key, person_id AS subject_id, member_team AS member_group_key FROM {schema}.team_members")),
    ]
}

/// A folder with the emulator's configuration, folder `db` provisioned, and source `db` reading
/// `url` with `queries` (and `extra` lines in its section).
fn setup(dir: &std::path::Path, emu: &duoprov_emulator::RunningEmulator, url: &str, queries: &[(String, String)], extra: &str) {
    let seed = json!({"folders": [{"path": "db"}], "markers": [{"provisioner": "duoTest", "folder": "db"}]});
    folder(dir, emu, 2, &seed.to_string());
    set_source(dir, url, queries, extra);
}

fn set_source(dir: &std::path::Path, url: &str, queries: &[(String, String)], extra: &str) {
    let mut config = std::fs::read_to_string(dir.join("duoprov.toml")).unwrap();
    if let Some(at) = config.find("\n[source.db]") {
        config.truncate(at);
    }
    config.push_str(&format!("\n[source.db]\nkind = \"sql\"\nsubject_source = \"db\"\nfolder = \"db\"\nurl = \"{url}\"\npassword_env = \"{PW_ENV}\"\n{extra}\n[source.db.queries]\n"));
    for (k, v) in queries {
        config.push_str(&format!("{k} = {}\n", toml_string(v)));
    }
    std::fs::write(dir.join("duoprov.toml"), config).unwrap();
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Runs duoprov with the source's password in its variable; standard output and error.
fn run(dir: &std::path::Path, password: &str, args: &[&str], code: i32) -> (String, String) {
    let out = crate::duoprov(dir).env(PW_ENV, password).args(args).output().expect("run duoprov");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "duoprov {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(password.is_empty() || !stdout.contains(password) && !stderr.contains(password), "the password leaked:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

fn members(dir: &std::path::Path, group: &str) -> Vec<String> {
    let (out, _) = crate::run(dir, &["member", "list", group, "--json"], 0);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match (m["source"].as_str(), m["id"].as_str()) {
            (Some(s), Some(id)) => format!("{s}:{id}"),
            _ => format!("group {}", m["group"].as_str().or(m["name"].as_str()).unwrap_or("?")),
        })
        .collect();
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
async fn a_sql_source_is_mirrored_with_a_nested_group_and_a_removal_in_the_database_reaches_the_registry_and_duo() {
    let Some((url, pw)) = database() else { return };
    let schema = "sqlsrc_mirror";
    seed(schema).await;
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, &emu, &url, &queries(schema), "");
    let (out, _) = run(dir, &pw, &["source", "sync", "db", "--json"], 0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["outcome"], "applied", "{report:#}");
    assert_eq!((report["counts"]["subjects_added"].as_u64(), report["counts"]["groups_added"].as_u64()), (Some(3), Some(3)), "{report:#}");
    assert_eq!(members(dir, "db:staff"), ["db:a", "db:b", "db:c"]);
    assert_eq!(members(dir, "db:everyone"), ["group db:staff"]);
    let (out, _) = crate::run(dir, &["subject", "list", "--json"], 0);
    assert!(out.contains("alice") && out.contains("Alice A") && out.contains("a@example.edu"), "{out}");
    crate::run(dir, &["sync", "duoTest"], 0);
    assert_eq!(duo_members(&emu, "staff"), ["alice", "bob", "carol"]);
    assert_eq!(duo_members(&emu, "admins"), ["alice"]);

    // b leaves staff in the database: the registry, then Duo, follow.
    exec(&format!("DELETE FROM {schema}.team_members WHERE person_id = 'b'")).await;
    let (out, _) = run(dir, &pw, &["source", "sync", "db"], 0);
    assert!(out.contains("applied") && out.contains("memberships 0 added, 1 removed"), "{out}");
    assert_eq!(members(dir, "db:staff"), ["db:a", "db:c"]);
    crate::run(dir, &["sync", "duoTest", "--incremental"], 0);
    assert_eq!(duo_members(&emu, "staff"), ["alice", "carol"]);
    // Read again unchanged: nothing to do.
    let (out, _) = run(dir, &pw, &["source", "sync", "db"], 0);
    assert!(out.contains("unchanged"), "{out}");
    let (list, _) = crate::run(dir, &["source", "list"], 0);
    assert!(list.lines().any(|l| l.starts_with("db") && l.contains("sql")) && !list.contains(&pw), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sql_a_null_login_a_wrongly_typed_column_and_a_missing_database_change_nothing_and_name_what_failed() {
    let Some((url, pw)) = database() else { return };
    let schema = "sqlsrc_errors";
    seed(schema).await;
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let good = queries(schema);
    setup(dir, &emu, &url, &good, "");
    run(dir, &pw, &["source", "sync", "db"], 0);
    let unchanged = |dir: &std::path::Path| assert_eq!(members(dir, "db:staff"), ["db:a", "db:b", "db:c"]);
    // Meanwhile b leaves staff: a run that fails must not apply even that.
    exec(&format!("DELETE FROM {schema}.team_members WHERE person_id = 'b'")).await;

    let mut bad = good.clone();
    bad[1].1 = format!("SELEC team_key AS key FROM {schema}.teams");
    set_source(dir, &url, &bad, "");
    let (_, err) = run(dir, &pw, &["source", "sync", "db"], 1);
    assert!(err.contains("the groups query failed") && err.contains("syntax error") && err.contains("nothing was changed"), "{err}");
    unchanged(dir);
    let (status, _) = crate::run(dir, &["source", "status"], 0);
    assert!(status.lines().any(|l| l.starts_with("db") && l.contains("failed") && l.contains("groups query")), "{status}");

    exec(&format!("INSERT INTO {schema}.people VALUES ('d', NULL, 'Dan', NULL, 60)")).await;
    set_source(dir, &url, &good, "");
    let (_, err) = run(dir, &pw, &["source", "sync", "db"], 1);
    assert!(err.contains("the subjects query, row 4 (id d): login_id is NULL"), "{err}");
    unchanged(dir);
    exec(&format!("DELETE FROM {schema}.people WHERE id = 'd'")).await;

    let mut typed = good.clone();
    typed[0].1 = format!("SELECT id, login AS login_id, age AS name FROM {schema}.people");
    set_source(dir, &url, &typed, "");
    let (_, err) = run(dir, &pw, &["source", "sync", "db"], 1);
    assert!(err.contains("the subjects query: column age") || err.contains("the subjects query: column name"), "{err}");
    assert!(err.contains("NUMERIC") && err.contains("::text"), "{err}");
    let mut missing = good.clone();
    missing[2].1 = format!("SELECT person_id AS subject_id FROM {schema}.team_members");
    set_source(dir, &url, &missing, "");
    let (_, err) = run(dir, &pw, &["source", "sync", "db"], 1);
    assert!(err.contains("the memberships query: column group_key: is missing"), "{err}");
    let mut extra = good.clone();
    extra[0].1 = format!("SELECT id, login AS login_id, mail AS phone FROM {schema}.people");
    set_source(dir, &url, &extra, "");
    let (_, err) = run(dir, &pw, &["source", "sync", "db"], 1);
    assert!(err.contains("column phone") && err.contains("does not read"), "{err}");
    unchanged(dir);

    // The database is not there (nothing listens on the port).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut gone = url::Url::parse(&url).unwrap();
    gone.set_port(Some(port)).unwrap();
    set_source(dir, gone.as_str(), &good, "timeout_secs = 5\n");
    let (_, err) = run(dir, &pw, &["source", "sync", "db"], 1);
    assert!(err.contains("cannot connect to the source's PostgreSQL server at 127.0.0.1") && err.contains("nothing was changed"), "{err}");
    unchanged(dir);
    // Back in order, the pending removal goes through.
    set_source(dir, &url, &good, "");
    run(dir, &pw, &["source", "sync", "db"], 0);
    assert_eq!(members(dir, "db:staff"), ["db:a", "db:c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_database_is_read_with_its_ca_verified_and_refused_with_another_ca() {
    let (Ok(tls), Ok(ca), Ok(other)) =
        (std::env::var("DUOPROV_TEST_POSTGRES_TLS_URL"), std::env::var("DUOPROV_TEST_POSTGRES_TLS_CA"), std::env::var("DUOPROV_TEST_POSTGRES_TLS_OTHER_CA"))
    else {
        assert_ne!(std::env::var("DUOPROV_REQUIRE_EXTERNAL").as_deref(), Ok("1"), "the TLS PostgreSQL cluster is required");
        crate::skipped("needs the TLS PostgreSQL cluster: DUOPROV_TEST_POSTGRES_TLS_URL, _CA and _OTHER_CA are not set");
        return;
    };
    let mut url = url::Url::parse(&tls).unwrap();
    let pw = url.password().unwrap_or("").to_owned();
    url.set_password(None).unwrap();
    url.set_query(Some("sslmode=verify-full"));
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let q = [
        ("subjects".to_string(), "SELECT 'a'::text AS id, 'alice'::text AS login_id".to_string()),
        ("groups".to_string(), "SELECT 'k1'::text AS key, 'staff'::text AS name".to_string()),
        ("memberships".to_string(), "SELECT 'k1'::text AS group_key, 'a'::text AS subject_id".to_string()),
    ];
    setup(dir, &emu, url.as_str(), &q, &format!("ca_file = {}\n", toml_string(&ca)));
    let (out, _) = run(dir, &pw, &["source", "sync", "db"], 0);
    assert!(out.contains("applied"), "{out}");
    assert_eq!(members(dir, "db:staff"), ["db:a"]);
    set_source(dir, url.as_str(), &q, &format!("ca_file = {}\n", toml_string(&other)));
    let (_, err) = run(dir, &pw, &["source", "sync", "db"], 1);
    assert!(err.contains("certificate that no trusted CA signed") && err.contains("source.db.url"), "{err}");
}

/// The ```toml block of docs/sources.md that configures `[source.grouper]`.
fn grouper_recipe() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/sources.md")).unwrap();
    let at = doc.find("[source.grouper]").expect("docs/sources.md has the Grouper recipe");
    let start = doc[..at].rfind("```toml\n").unwrap() + "```toml\n".len();
    let end = at + doc[at..].find("```").unwrap();
    doc[start..end].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grouper_recipe_of_the_docs_mirrors_a_stem_from_tables_shaped_like_grouper_views() {
    let Some((url, pw)) = database() else { return };
    let schema = "sqlsrc_grouper";
    // The columns duoprov reads, with Grouper's names: grouper_members (a table),
    // grouper_groups_v and grouper_memberships_lw_v (views in Grouper; tables here).
    exec(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
         CREATE TABLE {schema}.grouper_members (id varchar(40) PRIMARY KEY, subject_id varchar(255) NOT NULL, subject_source varchar(255) NOT NULL,
           subject_type varchar(255), name varchar(2048), description varchar(2048), subject_identifier0 varchar(255), email0 varchar(255));
         CREATE TABLE {schema}.grouper_groups_v (extension varchar(255), name varchar(1024), display_extension varchar(255), display_name varchar(1024),
           description varchar(1024), parent_stem_name varchar(1024), type_of_group varchar(10), group_id varchar(40), parent_stem_id varchar(40));
         CREATE TABLE {schema}.grouper_memberships_lw_v (subject_id varchar(255), subject_source varchar(255), group_name varchar(1024),
           list_name varchar(32), list_type varchar(32), group_id varchar(40), member_id varchar(40));
         INSERT INTO {schema}.grouper_members VALUES
           ('m1', '10001', 'ldap', 'person', 'Alice Ames', NULL, 'alice', 'alice@example.edu'),
           ('m2', '10002', 'ldap', 'person', 'Bob Bell', NULL, 'bob', NULL),
           ('m3', '10003', 'ldap', 'person', 'Carol Cruz', NULL, 'carol', NULL),
           ('m9', 'g-admins', 'g:gsa', 'group', 'app:duo:admins', NULL, NULL, NULL);
         INSERT INTO {schema}.grouper_groups_v VALUES
           ('admins', 'app:duo:admins', 'Admins', 'app:Duo:Admins', 'Duo administrators', 'app:duo', 'group', 'g-admins', 's1'),
           ('staff', 'app:duo:staff', 'Staff', 'app:Duo:Staff', NULL, 'app:duo', 'group', 'g-staff', 's1'),
           ('other', 'app:other:x', 'X', 'app:Other:X', NULL, 'app:other', 'group', 'g-x', 's2');
         INSERT INTO {schema}.grouper_memberships_lw_v VALUES
           ('10001', 'ldap', 'app:duo:admins', 'members', 'list', 'g-admins', 'm1'),
           ('10001', 'ldap', 'app:duo:admins', 'admins', 'access', 'g-admins', 'm1'),
           ('10002', 'ldap', 'app:duo:staff', 'members', 'list', 'g-staff', 'm2'),
           ('g-admins', 'g:gsa', 'app:duo:staff', 'members', 'list', 'g-staff', 'm9'),
           ('10001', 'ldap', 'app:duo:staff', 'members', 'list', 'g-staff', 'm1'),
           ('10003', 'ldap', 'app:other:x', 'members', 'list', 'g-x', 'm3');"
    ))
    .await;
    let emu = emulator("").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let seed = json!({"folders": [{"path": "grouper"}], "markers": [{"provisioner": "duoTest", "folder": "grouper"}]});
    folder(dir, &emu, 2, &seed.to_string());
    let recipe = grouper_recipe()
        .replace("postgres://duoprov_reader@grouper-db.example.edu/grouper?sslmode=verify-full", &url)
        .replace("ca_file = \"/etc/duoprov/grouper-db-ca.pem\"\n", "")
        .replace("FROM grouper_", &format!("FROM {schema}.grouper_"))
        .replace("JOIN grouper_", &format!("JOIN {schema}.grouper_"))
        .replace("password_file = \"/etc/duoprov/grouper-db.pw\"", &format!("password_env = \"{PW_ENV}\""));
    let mut config = std::fs::read_to_string(dir.join("duoprov.toml")).unwrap();
    config.push('\n');
    config.push_str(&recipe);
    std::fs::write(dir.join("duoprov.toml"), config).unwrap();
    let (out, _) = run(dir, &pw, &["source", "sync", "grouper", "--json"], 0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["outcome"], "applied", "{report:#}");
    assert!(report["problems"].as_array().unwrap().is_empty(), "{report:#}");
    // The stem's groups with their effective members (Grouper flattens nesting); the other
    // stem and the admins privilege list stay out.
    assert_eq!(members(dir, "grouper:admins"), ["grouper:10001"]);
    assert_eq!(members(dir, "grouper:staff"), ["grouper:10001", "grouper:10002"]);
    let (out, _) = crate::run(dir, &["group", "list", "--json"], 0);
    assert!(!out.contains("grouper:other") && out.contains("Duo administrators"), "{out}");
    let (out, _) = crate::run(dir, &["subject", "list", "--json"], 0);
    assert!(out.contains("alice@example.edu") && out.contains("Bob Bell") && !out.contains("10003"), "{out}");
    crate::run(dir, &["sync", "duoTest"], 0);
    assert_eq!(duo_members(&emu, "staff"), ["alice", "bob"]);
    // A group renamed in Grouper keeps its key (group_id): renamed in the registry, not re-made.
    exec(&format!("UPDATE {schema}.grouper_groups_v SET extension = 'employees', name = 'app:duo:employees' WHERE group_id = 'g-staff'")).await;
    let (out, _) = run(dir, &pw, &["source", "sync", "grouper", "--json"], 0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["counts"]["groups_updated"].as_u64(), report["counts"]["groups_added"].as_u64()), (Some(1), Some(0)), "{report:#}");
    assert_eq!(members(dir, "grouper:employees"), ["grouper:10001", "grouper:10002"]);
}
