//! `duoprov load-users` and `duoprov report P users` end to end, against the in-process Duo
//! emulator: users with aliases (commas inside some), enrollment, every status, login and
//! directory-sync times are seeded, loaded through the binary, and every column of every row is
//! checked; Duo then changes (adds, modifies, deletes), the reload's counts and rows are checked
//! again, and a failed Duo read leaves the table as it was. On SQLite, and on PostgreSQL when
//! `DUOPROV_TEST_POSTGRES_URL` is set (in a schema of its own). Authentication devices (phones
//! with capabilities, tokens, WebAuthn keys) are seeded on three users, and the method counts and
//! the `--has`/`--lacks`/`--only` reports checked. Nulls, a missing `created` and a malformed id
//! come from a canned stand-in for Duo in the last test.

use std::path::{Path, PathBuf};

use duoprov_emulator::state::{TenantDump, User, UserStatus};
use duoprov_emulator::{Emulator, Integration, RunningEmulator};
use duoprov_registry::{AuthMethodCounts, DuoUserFilter, DuoUserRow, OpenOptions, Store};
use serde_json::{Value, json};

use crate::duoprov;

const API_HOST: &str = "api-duoprov-test.duosecurity.com";
const IKEY: &str = "DIDUOPROVUSERSTEST01";
const SKEY: &str = "duoprov-users-test-secret-key-0123456789";
const P: &str = "duoUsers";
/// A second provisioner on the same Duo account whose usernames are subject ids.
const BY_ID: &str = "duoUsersById";
/// Users generated besides the hand-written ones, so the load takes three pages of 300.
const BULK: usize = 600;

fn id(n: usize) -> String {
    format!("DU{n:018}")
}

fn duo_user(v: Value) -> User {
    serde_json::from_value(v).expect("an emulator user")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs() as i64
}

fn bulk_status(i: usize) -> &'static str {
    ["active", "bypass", "disabled", "locked out"][i % 4]
}

/// The Duo users the emulator starts with.
fn seed() -> Vec<User> {
    let mut users = vec![
        duo_user(json!({
            "user_id": id(1), "username": "mchyzer",
            "aliases": {"alias1": "test", "alias2": "abc", "alias3": "chris,hyzer"},
            "realname": "Chris Hyzer", "firstname": "Chris", "lastname": "Hyzer", "email": "mchyzer@example.edu",
            "notes": "VIP, handle with care", "status": "active", "is_enrolled": true,
            "created": 1_500_000_000, "last_login": 1_700_000_000, "last_directory_sync": 1_690_000_000,
            "devices": {
                "phones": [{"phone_id": "DPA", "number": "+15550100", "activated": true,
                            "capabilities": ["auto", "push", "sms", "phone", "mobile_otp"], "last_seen": "2026-11-20T08:30:00"}],
                "webauthncredentials": [{"credential_name": "DWA", "label": "Security Key"}],
            },
        })),
        duo_user(json!({
            "user_id": id(2), "username": "kwilso", "status": "bypass", "is_enrolled": false, "created": 1_500_000_100,
        })),
        duo_user(json!({
            "user_id": id(3), "username": "jsmith", "aliases": {"alias5": "js5", "alias2": "j,s"},
            "realname": "J Smith", "email": "jsmith@example.edu", "status": "disabled", "is_enrolled": true,
            "created": 1_500_000_200, "last_login": 1_600_000_000,
            // A landline: passcodes by SMS and phone calls, never Duo Push.
            "devices": {"phones": [{"phone_id": "DPB", "number": "+15550199", "activated": false,
                                    "capabilities": ["sms", "phone"], "last_seen": ""}]},
        })),
        duo_user(json!({
            "user_id": id(4), "username": "Locked.Out", "realname": "Zoë Ünïcödé", "notes": "line one\nline two",
            "status": "locked out", "is_enrolled": true, "created": 1_500_000_300,
            "devices": {"tokens": [{"serial": "123456", "token_id": "DHA", "type": "yk"}]},
        })),
        duo_user(json!({
            "user_id": id(5), "username": "trashed", "status": "pending deletion", "created": 1_500_000_400,
            // In the Trash since an hour ago (the emulator purges it after the retention days).
            "trashed_at": now_secs() - 3600,
        })),
    ];
    for i in 0..BULK {
        users.push(duo_user(json!({
            "user_id": id(100 + i), "username": format!("bulk{i:04}"),
            "aliases": {"alias1": format!("b{i},x")},
            "realname": format!("Bulk User {i}"), "email": format!("bulk{i}@example.edu"),
            "status": bulk_status(i), "is_enrolled": i % 2 == 0,
            "created": 1_600_000_000 + i as i64,
            "last_login": if i % 3 == 0 { Value::Null } else { json!(1_700_000_000 + i as i64) },
        })));
    }
    users
}

fn expected_row(user_id: &str, user_name: &str) -> DuoUserRow {
    DuoUserRow {
        config_id: P.into(),
        user_id: user_id.into(),
        aliases: None,
        phones: None,
        is_push_enabled: Some("F".into()),
        email: None,
        first_name: None,
        last_name: None,
        is_enrolled: Some("F".into()),
        last_directory_sync: None,
        notes: None,
        real_name: None,
        status: None,
        user_name: user_name.into(),
        created_at: None,
        last_login_time: None,
        // The emulator lists every device kind (empty lists by default): all counts known.
        auth_methods: AuthMethodCounts {
            push_phone_count: Some(0),
            mobile_otp_phone_count: Some(0),
            push_phone_last_seen: None,
            sms_phone_count: Some(0),
            voice_phone_count: Some(0),
            duo_hardware_token_count: Some(0),
            hotp_token_count: Some(0),
            totp_token_count: Some(0),
            yubikey_otp_token_count: Some(0),
            webauthn_count: Some(0),
            u2f_count: Some(0),
        },
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// What the table must hold after loading [`seed`], written out by hand.
fn expected() -> Vec<DuoUserRow> {
    let mut rows = vec![
        DuoUserRow {
            aliases: s("abc,chris&#x2c;hyzer,test"),
            email: s("mchyzer@example.edu"),
            first_name: s("Chris"),
            last_name: s("Hyzer"),
            is_enrolled: s("T"),
            last_directory_sync: Some(1_690_000_000),
            notes: s("VIP, handle with care"),
            real_name: s("Chris Hyzer"),
            status: s("active"),
            created_at: Some(1_500_000_000),
            last_login_time: Some(1_700_000_000),
            phones: s("+15550100"),
            is_push_enabled: s("T"),
            auth_methods: AuthMethodCounts {
                push_phone_count: Some(1),
                mobile_otp_phone_count: Some(1),
                push_phone_last_seen: Some(1_795_163_400),
                sms_phone_count: Some(1),
                voice_phone_count: Some(1),
                webauthn_count: Some(1),
                ..expected_row("", "").auth_methods
            },
            ..expected_row(&id(1), "mchyzer")
        },
        DuoUserRow { status: s("bypass"), created_at: Some(1_500_000_100), ..expected_row(&id(2), "kwilso") },
        DuoUserRow {
            aliases: s("j&#x2c;s,js5"),
            real_name: s("J Smith"),
            email: s("jsmith@example.edu"),
            status: s("disabled"),
            is_enrolled: s("T"),
            created_at: Some(1_500_000_200),
            last_login_time: Some(1_600_000_000),
            phones: s("+15550199"),
            auth_methods: AuthMethodCounts {
                sms_phone_count: Some(1),
                voice_phone_count: Some(1),
                ..expected_row("", "").auth_methods
            },
            ..expected_row(&id(3), "jsmith")
        },
        DuoUserRow {
            real_name: s("Zoë Ünïcödé"),
            notes: s("line one\nline two"),
            status: s("locked out"),
            is_enrolled: s("T"),
            created_at: Some(1_500_000_300),
            auth_methods: AuthMethodCounts { yubikey_otp_token_count: Some(1), ..expected_row("", "").auth_methods },
            ..expected_row(&id(4), "Locked.Out")
        },
        DuoUserRow { status: s("pending deletion"), created_at: Some(1_500_000_400), ..expected_row(&id(5), "trashed") },
    ];
    for i in 0..BULK {
        rows.push(DuoUserRow {
            aliases: Some(format!("b{i}&#x2c;x")),
            real_name: Some(format!("Bulk User {i}")),
            email: Some(format!("bulk{i}@example.edu")),
            status: s(bulk_status(i)),
            is_enrolled: s(if i % 2 == 0 { "T" } else { "F" }),
            created_at: Some(1_600_000_000 + i as i64),
            last_login_time: if i % 3 == 0 { None } else { Some(1_700_000_000 + i as i64) },
            ..expected_row(&id(100 + i), &format!("bulk{i:04}"))
        });
    }
    rows
}

fn sorted(mut rows: Vec<DuoUserRow>) -> Vec<DuoUserRow> {
    rows.sort_by(|a, b| (&a.user_name, &a.user_id).cmp(&(&b.user_name, &b.user_id)));
    rows
}

/// Where the registry is: the CLI's environment, and how the test opens it to read rows.
struct Registry {
    cli_url: Option<String>,
    url: String,
    options: OpenOptions,
}

impl Registry {
    async fn open(&self) -> Box<dyn Store> {
        // The error never holds the URL (and its password); see the registry's error type.
        duoprov_registry::open(&self.url, &self.options).await.unwrap_or_else(|e| panic!("open the registry: {e}"))
    }
}

struct Setup {
    dir: tempfile::TempDir,
    emu: RunningEmulator,
    registry: Registry,
}

async fn setup(registry: impl FnOnce(&Path) -> Registry) -> Setup {
    let dump = TenantDump { version: 1, users: seed(), ..Default::default() };
    let emu = Emulator::builder()
        .integration(Integration::new(IKEY, SKEY))
        .configure(|s| s.canonical_host = Some(API_HOST.into()))
        .initial_state(dump)
        .spawn_on("127.0.0.1:0")
        .await
        .expect("start the emulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let skey = dir.path().join("duo.skey");
    std::fs::write(&skey, SKEY).expect("write the secret key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&skey, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    }
    let config = format!(
        "[registry]\nurl = \"sqlite://duoprov.db\"\n\n[duo.emu]\napi_host = \"{API_HOST}\"\nintegration_key = \"{IKEY}\"\n\
         secret_key_file = \"duo.skey\"\nurl = \"{}\"\n\n[provisioner.{P}]\nduo = \"emu\"\n\n\
         [provisioner.{BY_ID}]\nduo = \"emu\"\n\n[provisioner.{BY_ID}.templates]\nusername = \"{{{{ subject.id }}}}\"\n",
        emu.base_url()
    );
    crate::write_config(dir.path(), config).expect("write the configuration");
    let registry = registry(dir.path());
    Setup { dir, emu, registry }
}

/// Runs the binary off the async threads (the emulator serves on them) and checks its exit code.
async fn cli(setup: &Setup, args: &[&str], code: i32) -> (String, String) {
    let dir: PathBuf = setup.dir.path().to_owned();
    let url = setup.registry.cli_url.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = duoprov(&dir);
        if let Some(url) = &url {
            cmd.env("DUOPROV_REGISTRY_URL", url);
        }
        let out = cmd.args(&args).output().expect("run duoprov");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "duoprov {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        for text in [&stdout, &stderr] {
            assert!(!text.contains(SKEY), "the secret key was printed");
            assert!(url.as_ref().is_none_or(|u| !text.contains(u.as_str())), "the registry URL was printed");
        }
        (stdout, stderr)
    })
    .await
    .expect("the duoprov run")
}

async fn rows(store: &dyn Store) -> Vec<DuoUserRow> {
    store.duo_users(P, &DuoUserFilter::default()).await.expect("read duo_user")
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("JSON output ({e}):\n{text}"))
}

fn ids_of(report: &Value) -> Vec<String> {
    report.as_array().expect("a list").iter().map(|r| r["user_id"].as_str().expect("user_id").to_owned()).collect()
}

fn ids_where(rows: &[DuoUserRow], keep: impl Fn(&DuoUserRow) -> bool) -> Vec<String> {
    sorted(rows.to_vec()).into_iter().filter(|r| keep(r)).map(|r| r.user_id).collect()
}

fn page_reads(emu: &RunningEmulator) -> u64 {
    emu.handle().counts().get("users.list", 200)
}

async fn scenario(setup: Setup) {
    let store = setup.registry.open().await;

    // Before any load, a report says what to do.
    let (_, err) = cli(&setup, &["report", P, "users"], 1).await;
    assert!(err.contains(&format!("duoprov load-users {P}")), "{err}");
    let (_, err) = cli(&setup, &["load-users", "nope"], 1).await;
    assert!(err.contains("[provisioner.nope]"), "{err}");

    // Registry subjects two Duo users map to (login ids compared ignoring case).
    cli(&setup, &["subject", "add", "s1", "--login-id", "MCHYZER"], 0).await;
    cli(&setup, &["subject", "add", "s2", "--login-id", "kwilso"], 0).await;

    // First load: every user inserted, in ceil(605 / 300) = 3 page reads.
    setup.emu.handle().clear_calls();
    let (out, _) = cli(&setup, &["load-users", P, "--json"], 0).await;
    let summary = json_of(&out);
    let total = (5 + BULK) as u64;
    assert_eq!(
        (&summary["users"], &summary["inserted"], &summary["updated"], &summary["deleted"], &summary["unchanged"]),
        (&json!(total), &json!(total), &json!(0), &json!(0), &json!(0)),
        "{out}"
    );
    assert_eq!(summary["problems"], json!([]), "{out}");
    assert_eq!(page_reads(&setup.emu), total.div_ceil(300));
    let mut want = sorted(expected());
    assert_eq!(rows(&*store).await, want, "every column of every row");

    // Reports over what was loaded.
    let (out, _) = cli(&setup, &["report", P, "users", "--json"], 0).await;
    assert_eq!(serde_json::from_str::<Vec<DuoUserRow>>(&out).expect("rows as JSON"), want);
    let (out, _) = cli(&setup, &["report", P, "users", "--not-in-registry", "--json"], 0).await;
    assert_eq!(ids_of(&json_of(&out)), ids_where(&want, |r| r.user_name != "mchyzer" && r.user_name != "kwilso"));
    let (out, _) = cli(&setup, &["report", P, "users", "--status", "Locked Out", "--json"], 0).await;
    assert_eq!(ids_of(&json_of(&out)), ids_where(&want, |r| r.status.as_deref() == Some("locked out")));
    let (out, _) = cli(&setup, &["report", P, "users", "--not-enrolled", "--not-in-registry", "--json"], 0).await;
    let not_enrolled = ids_where(&want, |r| r.is_enrolled.as_deref() == Some("F") && r.user_name != "kwilso");
    assert!(not_enrolled.len() > 300, "{}", not_enrolled.len());
    assert_eq!(ids_of(&json_of(&out)), not_enrolled);
    // Every seeded time is years old: all are stale after 30 days, none after 100 000 days.
    let (out, _) = cli(&setup, &["report", P, "users", "--stale-login", "30", "--json"], 0).await;
    assert_eq!(ids_of(&json_of(&out)).len(), want.len());
    let (out, _) = cli(&setup, &["report", P, "users", "--stale-login", "100000", "--json"], 0).await;
    assert_eq!(ids_of(&json_of(&out)), Vec::<String>::new());
    let (out, _) = cli(&setup, &["report", P, "users", "--status", "disabled", "--csv"], 0).await;
    let mut csv = csv::Reader::from_reader(out.as_bytes());
    let header: Vec<String> = csv.headers().expect("CSV header").iter().map(str::to_owned).collect();
    assert_eq!(header[..3], ["config_id", "user_id", "aliases"]);
    assert_eq!((header[15].as_str(), header[16].as_str(), header[26].as_str()), ("last_login_time", "push_phone_count", "u2f_count"));
    assert_eq!(header.len(), 27, "Grouper's sixteen columns, then the eleven method columns");
    let records: Vec<csv::StringRecord> = csv.records().map(|r| r.expect("CSV row")).collect();
    let jsmith = records.iter().find(|r| &r[1] == id(3).as_str()).expect("jsmith in the CSV");
    assert_eq!((&jsmith[2], &jsmith[12], &jsmith[13], &jsmith[15]), ("j&#x2c;s,js5", "disabled", "jsmith", "1600000000"));
    assert_eq!(records.len(), ids_where(&want, |r| r.status.as_deref() == Some("disabled")).len());
    // By authentication method: who SMS and phone calls alone let in, who has a security key…
    let (out, _) = cli(&setup, &["report", P, "users", "--only", "sms,voice", "--json"], 0).await;
    assert_eq!(ids_of(&json_of(&out)), [id(3)]);
    let (out, _) = cli(&setup, &["report", P, "users", "--has", "webauthn", "--json"], 0).await;
    assert_eq!(ids_of(&json_of(&out)), [id(1)]);
    let (out, _) = cli(&setup, &["report", P, "users", "--has", "sms", "--lacks", "push", "--json"], 0).await;
    assert_eq!(ids_of(&json_of(&out)), [id(3)]);
    let (out, _) = cli(&setup, &["report", P, "users", "--only", "yubikey"], 0).await;
    assert!(out.contains("Locked.Out") && out.contains("yubikey 1") && !out.contains("mchyzer"), "{out}");
    let (_, err) = cli(&setup, &["report", P, "users", "--has", "fax"], 1).await;
    assert!(err.contains("--has \"fax\"") && err.contains("sms"), "{err}");
    let (out, _) = cli(&setup, &["report", P, "users", "--status", "bypass"], 0).await;
    assert!(out.contains("USER_ID") && out.contains("kwilso") && out.contains(&format!("of {total} Duo users")), "{out}");

    // The same account under a provisioner whose usernames are subject ids: its own rows, and
    // "maps to" follows its template (subject jsmith has no login id at all).
    cli(&setup, &["subject", "add", "jsmith"], 0).await;
    let (out, _) = cli(&setup, &["load-users", BY_ID, "--json"], 0).await;
    assert_eq!(json_of(&out)["inserted"], json!(total), "{out}");
    let by_id: Vec<DuoUserRow> = want.iter().map(|r| DuoUserRow { config_id: BY_ID.into(), ..r.clone() }).collect();
    assert_eq!(store.duo_users(BY_ID, &DuoUserFilter::default()).await.expect("read duo_user"), by_id);
    let (out, _) = cli(&setup, &["report", BY_ID, "users", "--not-in-registry", "--json"], 0).await;
    assert_eq!(ids_of(&json_of(&out)), ids_where(&want, |r| r.user_name != "jsmith"));
    let (out, _) = cli(&setup, &["report", P, "users", "--not-in-registry", "--json"], 0).await;
    assert_eq!(ids_of(&json_of(&out)), ids_where(&want, |r| r.user_name != "mchyzer" && r.user_name != "kwilso"));

    // Duo changes: two users deleted, three modified, two added.
    let mut dump = setup.emu.handle().state();
    dump.users.retain(|u| u.user_id.as_str() != id(2) && u.user_id.as_str() != id(100 + 7));
    for u in dump.users.iter_mut() {
        if u.user_id.as_str() == id(1) {
            u.realname = "Christopher Hyzer".into();
            u.aliases.remove(&3);
            u.last_login = Some(1_750_000_000);
        } else if u.user_id.as_str() == id(4) {
            u.status = UserStatus::Active;
            u.is_enrolled = false;
            u.notes = String::new();
        } else if u.user_id.as_str() == id(100 + 9) {
            u.email = "new@example.edu".into();
            u.last_directory_sync = Some(1_760_000_000);
        }
    }
    dump.users.push(duo_user(json!({
        "user_id": id(6), "username": "newbie", "aliases": {"alias8": "nb"}, "status": "active", "created": 1_765_000_000,
    })));
    dump.users.push(duo_user(json!({
        "user_id": id(7), "username": "newer", "firstname": "New", "lastname": "Er", "status": "bypass",
        "is_enrolled": true, "created": 1_765_000_001, "last_login": 1_765_000_100,
    })));
    setup.emu.handle().load_state(dump).expect("change Duo");
    want.retain(|r| r.user_id != id(2) && r.user_id != id(100 + 7));
    for r in want.iter_mut() {
        if r.user_id == id(1) {
            r.real_name = s("Christopher Hyzer");
            r.aliases = s("abc,test");
            r.last_login_time = Some(1_750_000_000);
        } else if r.user_id == id(4) {
            r.status = s("active");
            r.is_enrolled = s("F");
            r.notes = None;
        } else if r.user_id == id(100 + 9) {
            r.email = s("new@example.edu");
            r.last_directory_sync = Some(1_760_000_000);
        }
    }
    want.push(DuoUserRow { aliases: s("nb"), status: s("active"), created_at: Some(1_765_000_000), ..expected_row(&id(6), "newbie") });
    want.push(DuoUserRow {
        first_name: s("New"),
        last_name: s("Er"),
        status: s("bypass"),
        is_enrolled: s("T"),
        created_at: Some(1_765_000_001),
        last_login_time: Some(1_765_000_100),
        ..expected_row(&id(7), "newer")
    });
    let want = sorted(want);

    let (out, _) = cli(&setup, &["load-users", P], 0).await;
    assert_eq!(out.trim(), format!("{P}: {total} Duo users in duo_user: 2 inserted, 3 updated, 2 deleted, 600 unchanged"));
    assert_eq!(rows(&*store).await, want, "every column of every row after the changes");
    let (out, _) = cli(&setup, &["load-users", P], 0).await;
    assert_eq!(out.trim(), format!("{P}: {total} Duo users in duo_user: 0 inserted, 0 updated, 0 deleted, {total} unchanged"));

    // A Duo read that fails midway (every page after the first answers 500, through the client's
    // retries) changes nothing.
    setup.emu.handle().set_faults("500 after=1 on=users.list").expect("set faults");
    setup.emu.handle().load_state(TenantDump { version: 1, users: seed(), ..Default::default() }).expect("change Duo again");
    let (_, err) = cli(&setup, &["load-users", P], 1).await;
    assert!(err.contains("users") && err.contains("unchanged"), "{err}");
    assert_eq!(rows(&*store).await, want, "the previous rows are intact");
    setup.emu.handle().set_faults("").expect("clear faults");
    setup.emu.shutdown().await.expect("stop the emulator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_users_and_report_on_sqlite() {
    let setup = setup(|dir| Registry {
        cli_url: None,
        url: format!("sqlite://{}", dir.join("duoprov.db").display()),
        options: OpenOptions::default(),
    })
    .await;
    scenario(setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_users_and_report_on_postgres() {
    let Some(url) = crate::postgres_url() else { return };
    let schema = format!("cli_duo_users_{}", std::process::id());
    let setup = setup(|_| {
        let separator = if url.contains('?') { '&' } else { '?' };
        Registry {
            cli_url: Some(format!("{url}{separator}options[search_path]={schema}")),
            url: url.clone(),
            options: OpenOptions { schema: Some(schema.clone()), ..Default::default() },
        }
    })
    .await;
    // Create the schema (and its tables) before the binary uses it through search_path.
    drop(setup.registry.open().await);
    scenario(setup).await;
}

/// A stand-in for Duo that answers every request with the `GET /admin/v1/users` page held in
/// `body` (no signature check): for user objects the emulator cannot produce (phones, nulls, a
/// missing `created`, a malformed id).
async fn canned_duo(body: std::sync::Arc<std::sync::Mutex<String>>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let body = body.lock().expect("body").clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

fn page(users: Value) -> String {
    let n = users.as_array().map(Vec::len).unwrap_or(0);
    json!({"stat": "OK", "response": users, "metadata": {"total_objects": n, "next_offset": null, "prev_offset": null}}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_duo_users_are_loaded_faithfully_or_refused_by_id() {
    let odd = json!({
        "user_id": "DUAAAAAAAAAAAAAAAAA1", "username": "odd",
        "realname": null, "firstname": null, "lastname": null, "email": null, "notes": null,
        "aliases": {"alias1": "x,y", "alias2": "a"}, "alias1": "x,y", "alias2": "a", "alias3": null, "alias4": null,
        "phones": [
            {"phone_id": "DPAAAAAAAAAAAAAAAAA1", "number": "+15555550100", "activated": false},
            {"phone_id": "DPAAAAAAAAAAAAAAAAA2", "number": "", "type": "Tablet", "activated": true},
            {"phone_id": "DPAAAAAAAAAAAAAAAAA3", "number": null},
            {"phone_id": "DPAAAAAAAAAAAAAAAAA4", "number": "+1 555,0101"},
        ],
        "is_enrolled": true, "created": 1_600_000_000, "last_login": null, "last_directory_sync": null, "status": "Active",
        "groups": [], "tokens": [], "u2ftokens": [], "webauthncredentials": [],
    });
    // No created, phones, aliases, enrollment or status at all. (`groups` is there: a user listing
    // without it is refused, since the sync's membership diff is built from it.)
    let bare = json!({"user_id": "DUAAAAAAAAAAAAAAAAA2", "username": "bare", "groups": []});
    let body = std::sync::Arc::new(std::sync::Mutex::new(page(json!([odd, bare]))));
    let url = canned_duo(body.clone()).await;

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("duo.skey"), SKEY).expect("secret key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("duo.skey"), std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    }
    let config = format!(
        "[registry]\nurl = \"sqlite://duoprov.db\"\n\n[duo.fake]\napi_host = \"{API_HOST}\"\nintegration_key = \"{IKEY}\"\n\
         secret_key_file = \"duo.skey\"\nurl = \"{url}\"\n\n[provisioner.{P}]\nduo = \"fake\"\n"
    );
    crate::write_config(dir.path(), config).expect("configuration");
    let registry = Registry {
        cli_url: None,
        url: format!("sqlite://{}", dir.path().join("duoprov.db").display()),
        options: OpenOptions::default(),
    };
    let store = registry.open().await;
    // `cli` needs a Setup only for the folder and the registry URL; an idle emulator fills the slot.
    let emu = Emulator::builder().integration(Integration::new(IKEY, SKEY)).spawn_on("127.0.0.1:0").await.expect("emulator");
    let setup = Setup { dir, emu, registry };

    let (out, err) = cli(&setup, &["load-users", P, "--json"], 0).await;
    let summary = json_of(&out);
    assert_eq!(summary["inserted"], json!(2), "{out}");
    let problems = summary["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{out}");
    assert_eq!(problems[0]["user_id"], "DUAAAAAAAAAAAAAAAAA2");
    assert!(problems[0]["message"].as_str().is_some_and(|m| m.contains("created")), "{out}");
    assert!(err.contains("DUAAAAAAAAAAAAAAAAA2") && err.contains("created"), "the warning names the user: {err}");
    // Duo's answer for "bare" had no token, U2F or WebAuthn lists: those counts are unknown
    // (NULL), not zero; its phones (none listed) count zero, as the phones column says none.
    let bare_methods = AuthMethodCounts {
        duo_hardware_token_count: None,
        hotp_token_count: None,
        totp_token_count: None,
        yubikey_otp_token_count: None,
        webauthn_count: None,
        u2f_count: None,
        ..expected_row("", "").auth_methods
    };
    let want = vec![
        DuoUserRow { auth_methods: bare_methods, ..expected_row("DUAAAAAAAAAAAAAAAAA2", "bare") },
        DuoUserRow {
            aliases: s("a,x&#x2c;y"),
            phones: s("+1 555&#x2c;0101,+15555550100"),
            is_push_enabled: s("T"),
            is_enrolled: s("T"),
            status: s("Active"),
            created_at: Some(1_600_000_000),
            ..expected_row("DUAAAAAAAAAAAAAAAAA1", "odd")
        },
    ];
    assert_eq!(rows(&*store).await, want);

    // A page with a user Duo could not have sent (a malformed id): refused, naming the item, and
    // the table keeps its rows.
    *body.lock().expect("body") = page(json!([{"user_id": "not an id", "username": "x"}, {"user_id": "DUAAAAAAAAAAAAAAAAA3", "username": "y"}]));
    let (_, err) = cli(&setup, &["load-users", P], 1).await;
    assert!(err.contains("response[0].user_id") && err.contains("unchanged"), "{err}");
    assert_eq!(rows(&*store).await, want);
    setup.emu.shutdown().await.expect("stop the emulator");
}
