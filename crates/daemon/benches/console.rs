//! The console's server time at scale: the registry holds the sync benches' data set (100 000
//! users, 10 000 groups, about a million memberships, `crates/sync/benches/common/dataset.rs`),
//! links for every group, user and membership (one in a hundred in error), 100 000 loaded Duo
//! users and 500 runs; a daemon's console serves it on loopback and each page is requested
//! `ROUNDS` times over HTTP. Prints the median and the slowest time of each page, and the pages
//! over the target of [`TARGET_MS`].
//!
//! The provisioner's rendered usernames are recorded (as its runs record them) under the
//! fingerprint the console is given, so "not in the registry" is the SQL anti-join.
//!
//! `cargo bench -p duoprov-daemon --bench console` (release build; about two minutes to build the
//! registry) on SQLite in a temporary folder; with `DUOPROV_BENCH_POSTGRES_URL` set, on that
//! PostgreSQL database instead, in a schema of its own that it drops at the end (kept with
//! `DUOPROV_BENCH_KEEP_SCHEMA` set, to examine the queries' plans). Results go to
//! docs/performance.md by hand, with the machine, date and load average.

#[path = "../../sync/benches/common/dataset.rs"]
mod dataset;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use duoprov_daemon::console::{self, Mode, ProvisionerInfo};
use duoprov_daemon::http::Shared;
use duoprov_model::{EpochMillis, SubjectKey};
use duoprov_registry::{DuoUserRow, GroupState, ImportData, MembershipState, RunKind, RunStatus, StateError, Store};

const ROUNDS: usize = 10;
/// Each page's server time at this scale should be at most this (median and slowest).
const TARGET_MS: f64 = 100.0;
const PROVISIONER: &str = "bench";
/// The rendering fingerprint the console is given and the usernames are recorded under.
const FINGERPRINT: &str = "bench-rendering";

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    let text = String::from_utf8_lossy(&body);
    (text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), text.into_owned())
}

fn error(i: usize) -> Option<StateError> {
    (i % 100 == 7).then(|| StateError { code: if i % 200 == 7 { "ERR".into() } else { "LEN".into() }, message: format!("bench failure {i}") })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = std::env::var("DUOPROV_BENCH_POSTGRES_URL").ok().filter(|u| !u.is_empty());
    let schema = format!("duoprov_console_bench_{}", std::process::id());
    let (url, options) = match &postgres {
        Some(url) => (url.clone(), duoprov_registry::OpenOptions { schema: Some(schema.clone()), ..Default::default() }),
        None => (format!("sqlite://{}", dir.path().join("registry.db").display()), Default::default()),
    };
    eprintln!("registry: {}", if postgres.is_some() { format!("PostgreSQL, schema {schema}") } else { "SQLite".to_owned() });
    let store: Arc<dyn Store> = Arc::from(duoprov_registry::open(&url, &options).await.unwrap());
    let data = dataset::DataSet::generate(dataset::Size::FULL, 42);
    let started = Instant::now();
    let mut import = ImportData::default();
    import.add_json("bench.json", &data.registry_json()).unwrap();
    store.import(&import).await.unwrap();
    eprintln!("imported {} in {:.1?}", data.describe(), started.elapsed());

    // Links: every group, user and membership, as after a full sync.
    let started = Instant::now();
    let now = duoprov_sync::now_ms();
    let groups = store.groups(None).await.unwrap();
    let uuid_of: Vec<String> = groups.iter().map(|g| g.uuid.clone()).collect();
    let group_states: Vec<GroupState> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| GroupState {
            pending_name: None,
            pending_at: None,
            group_uuid: g.uuid.clone(),
            duo_group_id: Some(format!("DG{i:018}")),
            in_target: true,
            created_by_us: true,
            provisioned_at: Some(EpochMillis(now)),
            error: error(i),
        })
        .collect();
    let user_states: Vec<duoprov_registry::UserState> = (0..data.size.users)
        .map(|i| duoprov_registry::UserState {
            pending_name: None,
            pending_at: None,
            subject: SubjectKey::local(format!("s{i:06}")),
            duo_user_id: Some(format!("DU{i:018}")),
            in_target: true,
            created_by_us: i % 5 != 2,
            provisioned_at: Some(EpochMillis(now)),
            error: error(i),
        })
        .collect();
    store.record(PROVISIONER, &group_states, &user_states, &[]).await.unwrap();
    // Memberships in slices (one transaction each).
    let names: BTreeMap<String, String> = groups.iter().map(|g| (g.name.to_string(), g.uuid.clone())).collect();
    let mut batch = Vec::with_capacity(50_000);
    let mut k = 0usize;
    for (g, members) in data.members.iter().enumerate() {
        let uuid = names.get(&format!("bench:{}", dataset::group_name(g))).cloned().unwrap_or_else(|| uuid_of[g % uuid_of.len()].clone());
        for &u in members {
            batch.push(MembershipState { group_uuid: uuid.clone(), subject: SubjectKey::local(format!("s{u:06}")), in_target: true, provisioned_at: Some(EpochMillis(now)), error: error(k) });
            k += 1;
            if batch.len() == 50_000 {
                store.record(PROVISIONER, &[], &[], &batch).await.unwrap();
                batch.clear();
            }
        }
    }
    store.record(PROVISIONER, &[], &[], &batch).await.unwrap();
    // The Duo users table.
    let rows: Vec<DuoUserRow> = (0..data.size.users)
        .map(|i| DuoUserRow {
            config_id: PROVISIONER.into(),
            user_id: format!("DU{i:018}"),
            aliases: None,
            phones: None,
            is_push_enabled: Some(if i % 2 == 0 { "T" } else { "F" }.into()),
            email: Some(format!("{}@example.edu", dataset::login(i))),
            first_name: Some("User".into()),
            last_name: Some(format!("N{i}")),
            is_enrolled: Some(if i % 2 == 0 { "T" } else { "F" }.into()),
            last_directory_sync: None,
            notes: None,
            real_name: Some(format!("User {i}")),
            status: Some("active".into()),
            user_name: dataset::login(i),
            created_at: Some(1_700_000_000),
            last_login_time: (i % 3 != 0).then_some(1_790_000_000),
            auth_methods: duoprov_registry::AuthMethodCounts {
                push_phone_count: Some(i64::from(i % 2 == 0)),
                sms_phone_count: Some(1),
                ..Default::default()
            },
        })
        .collect();
    store.replace_duo_users(PROVISIONER, &rows).await.unwrap();
    // A run log.
    for i in 0..500 {
        let id = store.begin_run(PROVISIONER, if i % 50 == 0 { RunKind::Full } else { RunKind::Incremental }, false).await.unwrap();
        let counts = serde_json::json!({"groups": {"created": 1, "updated": 2, "deleted": 0, "failed": 0}, "read_calls": 3, "write_calls": 4,
            "failures": [{"object": "user local:s000007", "code": "ERR", "message": "bench"}]});
        store.finish_run(id, RunStatus::Succeeded, &counts, &serde_json::json!([["read", 10], ["apply", 20]]), None).await.unwrap();
    }
    // The usernames the provisioner's runs record: every subject's login, lowercased (the
    // default template), all but one in a thousand, so "not in the registry" finds some.
    let rendered: Vec<duoprov_registry::RenderedName> = (0..data.size.users)
        .filter(|i| i % 1000 != 3)
        .map(|i| duoprov_registry::RenderedName { subject: SubjectKey::local(format!("s{i:06}")), username_key: dataset::login(i) })
        .collect();
    store.replace_rendered(PROVISIONER, FINGERPRINT, &rendered).await.unwrap();
    eprintln!("links, Duo users, runs and rendered usernames recorded in {:.1?}", started.elapsed());
    if let Some(url) = &postgres {
        // The tables as autovacuum leaves them on a registry in service: statistics (without
        // them the planner guesses at tables just filled), and vacuumed (autovacuum vacuums
        // tables that grew by inserts too): a page's first read otherwise pays for setting the
        // hint bits of rows just written, and cannot read an index alone.
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("SET search_path = {schema}"))).execute(&mut conn).await.unwrap();
        sqlx::query("VACUUM ANALYZE").execute(&mut conn).await.unwrap();
    }

    let shared = Arc::new(Shared::default());
    shared.update(PROVISIONER, |s| s.role = "holder".into());
    let mapping = Arc::new(duoprov_plan::Mapping::compile(&duoprov_plan::MappingConfig::default(), "provisioner.bench").unwrap());
    let info = ProvisionerInfo { mapping, rendering_fingerprint: Some(FINGERPRINT.to_owned()), settings: "[provisioner.bench]\nduo = \"bench\"\n".into(), schedule: "every 21600 s".into(), sync: None };
    let console = Arc::new(console::Console::new(store.clone(), shared, Mode::Open, false, BTreeMap::from([(PROVISIONER.to_owned(), info)])));
    let app = console::router(console);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let run_id = store.runs(Some(PROVISIONER), 1).await.unwrap()[0].id;
    let pages = [
        ("overview", "/".to_owned()),
        ("provisioner", format!("/provisioners/{PROVISIONER}")),
        ("provisioner, users after row 50 000 (keyset)", format!("/provisioners/{PROVISIONER}?kind=users&after=local:s049999")),
        ("provisioner, users before row 50 000 (keyset)", format!("/provisioners/{PROVISIONER}?kind=users&before=local:s050000")),
        ("provisioner, user search", format!("/provisioners/{PROVISIONER}?kind=users&q=user0999")),
        ("provisioner, group search", format!("/provisioners/{PROVISIONER}?kind=groups&q=g099")),
        ("runs", format!("/provisioners/{PROVISIONER}/runs")),
        ("run", format!("/runs/{run_id}")),
        ("duo-users", format!("/duo-users?provisioner={PROVISIONER}")),
        ("duo-users, not enrolled, page 500", format!("/duo-users?provisioner={PROVISIONER}&not_enrolled=1&page=500")),
        ("duo-users, stale login 30 days", format!("/duo-users?provisioner={PROVISIONER}&stale_login=30")),
        ("duo-users, has push, lacks voice", format!("/duo-users?provisioner={PROVISIONER}&has=push&lacks=voice")),
        ("duo-users, not in the registry (recorded)", format!("/duo-users?provisioner={PROVISIONER}&not_in_registry=1")),
        ("duo-users, not in the registry, page 2", format!("/duo-users?provisioner={PROVISIONER}&not_in_registry=1&page=1")),
    ];
    println!("{:<44} {:>10} {:>10} {:>9}", "page", "median ms", "max ms", "bytes");
    let mut over = Vec::new();
    for (name, path) in &pages {
        let addr = addr.clone();
        let path = path.clone();
        let (times, bytes) = tokio::task::spawn_blocking(move || {
            let mut times = Vec::with_capacity(ROUNDS);
            let mut bytes = 0;
            for _ in 0..ROUNDS {
                let t = Instant::now();
                let (code, body) = get(&addr, &path);
                times.push(t.elapsed());
                assert_eq!(code, 200, "{path}");
                assert!(!path.contains("not_in_registry") || body.contains("by the usernames its runs recorded"), "{path}: not by the recorded usernames");
                bytes = body.len();
            }
            (times, bytes)
        })
        .await
        .unwrap();
        let mut sorted: Vec<Duration> = times.clone();
        sorted.sort();
        let (median, slowest) = (sorted[ROUNDS / 2].as_secs_f64() * 1000.0, sorted[ROUNDS - 1].as_secs_f64() * 1000.0);
        println!("{name:<44} {median:>10.1} {slowest:>10.1} {bytes:>9}");
        if slowest > TARGET_MS {
            over.push(format!("{name} (median {median:.1} ms, slowest {slowest:.1} ms)"));
        }
    }
    if over.is_empty() {
        println!("every page within {TARGET_MS} ms");
    } else {
        println!("over {TARGET_MS} ms: {}", over.join("; "));
    }
    if let Some(url) = &postgres {
        if std::env::var_os("DUOPROV_BENCH_KEEP_SCHEMA").is_some() {
            // For `EXPLAIN (ANALYZE, BUFFERS)` of the pages' queries on the same data.
            eprintln!("kept schema {schema} (DUOPROV_BENCH_KEEP_SCHEMA): drop it with DROP SCHEMA {schema} CASCADE");
            return;
        }
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&mut conn).await.unwrap();
    }
}
