//! Duo users load at scale: 100 000 users in the emulator (aliases, enrollment, every status,
//! login and directory-sync times) are read through the Duo client at Duo's maximum page size and
//! written into `duo_user` — on SQLite (a file in a temporary folder) and, when
//! `DUOPROV_TEST_POSTGRES_URL` is set, on PostgreSQL (a schema of its own). Measured: the page
//! reads, counted by the emulator itself (must be ceil(100 000 / 300) = 334); the Duo read time
//! with client pacing off (production pacing, 160 page reads a minute, makes it about 2 minutes);
//! the mapping time; and the database write time of a first load, a reload with nothing changed,
//! and a reload after 2 000 changes (1 000 modified, 500 deleted, 500 added).
//!
//! `cargo bench -p duoprov --bench load_users` (release build). Exits non-zero when a count is
//! wrong, so a regression in calls or rows cannot pass as a timing.

use std::time::Instant;

use duoprov_duo::{DuoClient, DuoConfig, PacingConfig, User};
use duoprov_emulator::state::TenantDump;
use duoprov_emulator::{Emulator, Integration, RunningEmulator};
use duoprov_sync::duo_users::rows_from_users;
use duoprov_registry::{DuoUserFilter, OpenOptions, ReplaceCounts, Store};
use serde_json::{Value, json};

const USERS: usize = 100_000;
const PAGE: usize = 300;
const API_HOST: &str = "api-bench.duosecurity.com";
const IKEY: &str = "DIBENCHLOADUSERS0001";
const SKEY: &str = "bench-load-users-secret-key-0123456789ab";
const P: &str = "bench";

fn user(i: usize, variant: u64) -> Value {
    let statuses = ["active", "bypass", "disabled", "locked out"];
    json!({
        "user_id": format!("DU{i:018}"),
        "username": format!("user{i:06}"),
        "aliases": {"alias1": format!("u{i},alias"), "alias2": format!("u{i}@example.edu")},
        "realname": if variant == 0 { format!("User Number {i}") } else { format!("User Number {i} v{variant}") },
        "firstname": "User",
        "lastname": format!("N{i}"),
        "email": format!("user{i:06}@example.edu"),
        "notes": if i.is_multiple_of(10) { format!("note {variant}") } else { String::new() },
        "status": statuses[i % 4],
        "is_enrolled": !i.is_multiple_of(3),
        "created": 1_600_000_000 + i as i64,
        "last_login": if i.is_multiple_of(5) { Value::Null } else { json!(1_700_000_000 + i as i64 + variant as i64) },
        "last_directory_sync": if i.is_multiple_of(2) { json!(1_690_000_000) } else { Value::Null },
    })
}

fn dump(users: impl Iterator<Item = Value>) -> TenantDump {
    let users: Vec<Value> = users.collect();
    serde_json::from_value(json!({"version": 1, "users": users})).expect("a tenant dump")
}

fn fail(message: String) -> ! {
    eprintln!("FAILED: {message}");
    std::process::exit(1);
}

async fn read_all(emu: &RunningEmulator, client: &DuoClient) -> (Vec<User>, f64, u64) {
    emu.handle().clear_calls();
    let t = Instant::now();
    let users = client.list_users().await.unwrap_or_else(|e| fail(format!("reading users: {e}")));
    let secs = t.elapsed().as_secs_f64();
    (users, secs, emu.handle().counts().get("users.list", 200))
}

async fn write(store: &dyn Store, users: &[User], label: &str, want: ReplaceCounts) {
    let t = Instant::now();
    let mapped = rows_from_users(P, users);
    let map_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let counts = store.replace_duo_users(P, &mapped.rows).await.unwrap_or_else(|e| fail(format!("{label}: {e}")));
    let write_secs = t.elapsed().as_secs_f64();
    if counts != want {
        fail(format!("{label}: counts {counts:?}, expected {want:?}"));
    }
    println!(
        "  {label:<34} map {map_secs:>6.3} s   db write {write_secs:>6.3} s   ({} inserted, {} updated, {} deleted, {} unchanged)",
        counts.inserted, counts.updated, counts.deleted, counts.unchanged
    );
}

async fn run(backend: &str, store: Box<dyn Store>) {
    println!("{backend}:");
    store.replace_duo_users(P, &[]).await.unwrap_or_else(|e| fail(format!("emptying the table: {e}")));
    let emu = Emulator::builder()
        .integration(Integration::new(IKEY, SKEY))
        .configure(|s| {
            s.canonical_host = Some(API_HOST.into());
            s.rate_limits.enabled = false;
        })
        .initial_state(dump((0..USERS).map(|i| user(i, 0))))
        .spawn_on("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| fail(format!("starting the emulator: {e}")));
    let mut cfg = DuoConfig::new(API_HOST, IKEY, SKEY.into());
    cfg.url = Some(emu.base_url());
    cfg.pacing = PacingConfig::unlimited();
    let client = DuoClient::new(cfg).unwrap_or_else(|e| fail(format!("client: {e}")));

    let (users, read_secs, pages) = read_all(&emu, &client).await;
    let want_pages = USERS.div_ceil(PAGE) as u64;
    if users.len() != USERS || pages != want_pages {
        fail(format!("read {} users in {pages} page reads; expected {USERS} in {want_pages}", users.len()));
    }
    println!("  read {USERS} users: {pages} page reads (emulator count), {read_secs:.3} s");
    write(&*store, &users, "first load (empty table)", ReplaceCounts { inserted: USERS as u64, ..Default::default() }).await;
    write(&*store, &users, "reload, nothing changed", ReplaceCounts { unchanged: USERS as u64, ..Default::default() }).await;

    // 1 000 modified (a new real name), 500 deleted, 500 added.
    let changed = dump(
        (500..USERS + 500).map(|i| user(i, if (500..1500).contains(&i) { 7 } else { 0 })),
    );
    emu.handle().load_state(changed).unwrap_or_else(|e| fail(format!("changing Duo: {e}")));
    let (users, read_secs, pages) = read_all(&emu, &client).await;
    println!("  read after changes: {pages} page reads, {read_secs:.3} s");
    write(
        &*store,
        &users,
        "reload after 2 000 changes",
        ReplaceCounts { inserted: 500, updated: 1000, deleted: 500, unchanged: USERS as u64 - 1500 },
    )
    .await;
    let t = Instant::now();
    let stale = store
        .duo_users(P, &DuoUserFilter { not_in_registry: true, not_enrolled: true, ..Default::default() })
        .await
        .unwrap_or_else(|e| fail(format!("report: {e}")));
    println!("  report --not-in-registry --not-enrolled: {} rows, {:.3} s", stale.len(), t.elapsed().as_secs_f64());
    let _ = emu.shutdown().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| fail(format!("runtime: {e}")));
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| fail(format!("temp dir: {e}")));
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = duoprov_registry::open(&url, &OpenOptions::default()).await.unwrap_or_else(|e| fail(format!("SQLite: {e}")));
        run("SQLite (file, WAL)", store).await;
        match std::env::var("DUOPROV_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => {
                // One schema, reused and emptied by each run (no schema left behind per run).
                let options = OpenOptions { schema: Some("bench_duo_users".into()), ..Default::default() };
                // The error never carries the URL.
                let store = duoprov_registry::open(&url, &options).await.unwrap_or_else(|e| fail(format!("PostgreSQL: {e}")));
                run("PostgreSQL", store).await;
            }
            _ => println!("PostgreSQL: skipped (DUOPROV_TEST_POSTGRES_URL is not set)"),
        }
    });
}
