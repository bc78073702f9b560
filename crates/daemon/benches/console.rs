//! The console's server time at scale: the registry holds the sync benches' data set (100 000
//! users, 10 000 groups, about a million memberships, `crates/sync/benches/common/dataset.rs`),
//! links for every group, user and membership (one in a hundred in error), 100 000 loaded Duo
//! users and 500 runs; a daemon's console serves it on loopback and each page is requested
//! `ROUNDS` times over HTTP. Prints the median and the slowest time of each page.
//!
//! `cargo bench -p duoprov-daemon --bench console` (release build; about two minutes to build the
//! registry). Results go to docs/performance.md by hand, with the machine and date.

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
const PROVISIONER: &str = "bench";

fn get(addr: &str, path: &str) -> (u16, usize) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    let text = String::from_utf8_lossy(&body);
    (text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), body.len())
}

fn error(i: usize) -> Option<StateError> {
    (i % 100 == 7).then(|| StateError { code: if i % 200 == 7 { "ERR".into() } else { "LEN".into() }, message: format!("bench failure {i}") })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("registry.db").display());
    let store: Arc<dyn Store> = Arc::from(duoprov_registry::open(&url, &Default::default()).await.unwrap());
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
    eprintln!("links, Duo users and runs recorded in {:.1?}", started.elapsed());

    let shared = Arc::new(Shared::default());
    shared.update(PROVISIONER, |s| s.role = "holder".into());
    let mapping = Arc::new(duoprov_plan::Mapping::compile(&duoprov_plan::MappingConfig::default(), "provisioner.bench").unwrap());
    let info = ProvisionerInfo { mapping, rendering_fingerprint: None, settings: "[provisioner.bench]\nduo = \"bench\"\n".into(), schedule: "every 21600 s".into(), sync: None };
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
        ("duo-users, not in the registry (template)", format!("/duo-users?provisioner={PROVISIONER}&not_in_registry=1")),
    ];
    println!("{:<44} {:>10} {:>10} {:>9}", "page", "median ms", "max ms", "bytes");
    for (name, path) in &pages {
        let addr = addr.clone();
        let path = path.clone();
        let (times, bytes) = tokio::task::spawn_blocking(move || {
            let mut times = Vec::with_capacity(ROUNDS);
            let mut bytes = 0;
            for _ in 0..ROUNDS {
                let t = Instant::now();
                let (code, n) = get(&addr, &path);
                times.push(t.elapsed());
                assert_eq!(code, 200, "{path}");
                bytes = n;
            }
            (times, bytes)
        })
        .await
        .unwrap();
        let mut sorted: Vec<Duration> = times.clone();
        sorted.sort();
        println!("{:<44} {:>10.1} {:>10.1} {:>9}", name, sorted[ROUNDS / 2].as_secs_f64() * 1000.0, sorted[ROUNDS - 1].as_secs_f64() * 1000.0, bytes);
    }
}
