//! The registry side of an incremental run scoped to one membership change, at the registry scale
//! data set (100k subjects, 10k groups, 1M memberships: `crates/registry/benches/data/scale.rs`):
//! imported, its usernames and group names recorded as a full run records them, 100k user and
//! 10k group links recorded, then one membership committed. Timed, each over 20 repetitions
//! (median and max):
//!
//! - the whole selection read (what every incremental run read before scoped reads);
//! - recording every rendered username and group name (a full run's one-off cost; again with
//!   nothing changed);
//! - the change log and retries read (`changes_after`, `retries`);
//! - the scoped registry side ([`duoprov_sync::incremental::scoped_registry_side`]: clash partners
//!   through the recorded usernames, the scoped selection query for the changed subject and group,
//!   the group-name clash lookup and selected-group count, the desired state of the groups read);
//! - its steps, each alone: the clash-partner lookups, the scoped selection query (the groups the
//!   subject is in and the named one), the same query reading every group and the desired state
//!   rendering every selected group (both as before), the markers read, the recorded group names
//!   looked up and counted, and the desired state built from the scoped selection (only the groups
//!   read are rendered);
//! - the provisioner's links read whole (`links`, what every incremental run read before), and
//!   read for the scope (`scoped_links` for the changed subject and group, `user_links_by_duo_ids`
//!   and `group_links_by_duo_ids` for the Duo user and group met: what a scoped run reads now).
//!
//! SQLite (a file in a temporary folder) and, when `DUOPROV_TEST_POSTGRES_URL` is set, PostgreSQL.
//! `cargo bench -p duoprov-sync --bench scoped_registry` (release build). Exits non-zero when the
//! scoped read misses the change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use duoprov_model::{GroupMember, GroupName, SubjectKey};
use duoprov_plan::{Mapping, MappingConfig, Policy};
use duoprov_registry::{GroupState, ImportData, OpenOptions, RunKind, Settlement, Store, UserState};
use duoprov_sync::SyncSettings;

#[path = "../../registry/benches/data/scale.rs"]
mod scale;

const REPEAT: usize = 20;

fn stats(mut d: Vec<Duration>) -> String {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    format!("median {:.1} ms, max {:.1} ms", ms(d[d.len() / 2]), ms(d[d.len() - 1]))
}

async fn timed<T, F: std::future::Future<Output = T>>(mut f: impl FnMut() -> F) -> (Vec<Duration>, T) {
    let mut times = Vec::with_capacity(REPEAT);
    let mut last = None;
    for _ in 0..REPEAT {
        let start = Instant::now();
        last = Some(f().await);
        times.push(start.elapsed());
    }
    (times, last.expect("repeated"))
}

async fn bench(label: &str, url: &str, schema: Option<String>, text: &str) {
    let mut data = ImportData::default();
    data.add_json("bench.json", text).expect("parse");
    let pg_schema = schema.clone();
    let store: Box<dyn Store> = duoprov_registry::open(url, &OpenOptions { schema, ..Default::default() }).await.expect("open");
    let start = Instant::now();
    store.import(&data).await.expect("import");
    drop(data);
    println!("{label}: imported in {:.1} s", start.elapsed().as_secs_f64());
    let settings = SyncSettings {
        provisioner: "bench".into(),
        policy: Policy::default(),
        mapping: Arc::new(Mapping::compile(&MappingConfig::default(), "bench").unwrap()),
        eligible_group: None,
        subject_sources: None,
        concurrency: 4,
        load_duo_users: false,
        incremental: Default::default(),
        shares_duo_with: Vec::new(),
        sync_back: None,
        selection_rules: Default::default(),
    };
    let st = &*store;

    let (times, selection) = timed(|| st.provisioner_selection("bench")).await;
    let selection = selection.expect("selection");
    println!("{label}: whole selection read: {}", stats(times));
    let desired = duoprov_plan::DesiredState::build(&selection, &settings.mapping, None);
    let rows: Vec<duoprov_registry::RenderedName> =
        desired.rendered.iter().map(|(s, k)| duoprov_registry::RenderedName { subject: s.clone(), username_key: k.clone() }).collect();
    let fingerprint = duoprov_sync::rendering_fingerprint(&settings);
    let group_rows: Vec<duoprov_registry::RenderedGroup> =
        desired.rendered_groups.iter().map(|(u, n)| duoprov_registry::RenderedGroup { group_uuid: u.clone(), name: n.clone() }).collect();
    let start = Instant::now();
    let counts = st.replace_rendered("bench", &fingerprint, &rows).await.expect("record");
    let group_counts = st.replace_rendered_groups("bench", &fingerprint, &group_rows).await.expect("record groups");
    println!(
        "{label}: recording {} rendered usernames and {} group names: {:.0} ms",
        counts.written,
        group_counts.written,
        start.elapsed().as_secs_f64() * 1000.0
    );
    let start = Instant::now();
    let counts = st.replace_rendered("bench", &fingerprint, &rows).await.expect("record");
    let group_counts = st.replace_rendered_groups("bench", &fingerprint, &group_rows).await.expect("record groups");
    println!(
        "{label}: recording them again, unchanged ({} written): {:.0} ms",
        counts.written + group_counts.written,
        start.elapsed().as_secs_f64() * 1000.0
    );

    // Links as a full sync leaves them: every user and group linked.
    let users: Vec<UserState> = selection
        .subjects
        .iter()
        .enumerate()
        .map(|(i, s)| UserState {
            pending_name: None,
            pending_at: None,
            subject: s.key(),
            duo_user_id: Some(format!("DU{i:018}")),
            in_target: true,
            created_by_us: true,
            provisioned_at: None,
            error: None,
        })
        .collect();
    let groups: Vec<GroupState> = selection
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| GroupState {
            pending_name: None,
            pending_at: None,
            group_uuid: g.group.uuid.clone(),
            duo_group_id: Some(format!("DG{i:018}")),
            in_target: true,
            created_by_us: true,
            provisioned_at: None,
            error: None,
        })
        .collect();
    st.record("bench", &groups, &users, &[]).await.expect("links");
    drop(selection);
    let seq = st.last_change_seq().await.expect("seq");
    let settle = Settlement {
        kind: RunKind::Full,
        checkpoint: Some(seq),
        clear_all: true,
        attempted: &[],
        failed: &[],
        now_ms: duoprov_model::EpochMillis(0),
        backoff: Default::default(),
    };
    st.settle("bench", &settle).await.expect("checkpoint");
    if let Some(schema) = &pg_schema {
        // The tables as autovacuum leaves them on a registry in service: with statistics (on
        // tables just filled the planner guesses, and the scoped walk's plan with them) and
        // vacuumed.
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(format!("SET search_path = {schema}"))).execute(&mut conn).await.expect("search_path");
        sqlx::query("VACUUM ANALYZE").execute(&mut conn).await.expect("vacuum analyze");
        println!("{label}: VACUUM ANALYZE after the import and the links, as autovacuum would have run");
    }

    // One membership change: a subject joins a group it is not in.
    let subject = SubjectKey::new("local", "u000050");
    let group = GroupName::parse(&scale::group_name(9_999)).unwrap();
    st.add_member(&group, &GroupMember::Subject(subject.clone())).await.expect("change");

    let (times, entries) = timed(|| async {
        let checkpoint = st.checkpoint("bench").await.expect("checkpoint").expect("set");
        let entries = st.changes_after(checkpoint.last_seq, 5_001).await.expect("changes");
        st.retries("bench", None).await.expect("retries");
        entries
    })
    .await;
    let change_times = times.clone();
    println!("{label}: change log and retries: {} ({} entry)", stats(times), entries.len());
    let subjects: Vec<SubjectKey> = entries.iter().flat_map(|e| e.subjects.clone()).collect();
    let named_groups: Vec<String> = entries.iter().flat_map(|e| e.groups.clone()).collect();
    let (times, side) = timed(|| duoprov_sync::incremental::scoped_registry_side(st, &settings, &subjects, &named_groups)).await;
    let scoped_times = times.clone();
    let (desired, selected) = side.expect("scoped read");
    println!("{label}: scoped registry side: {} ({selected} selected groups, {} rendered, {} user)", stats(times), desired.rendered_groups.len(), desired.users.len());
    let g = desired.groups.iter().find(|g| g.registry_name == group.as_str()).expect("the changed group is selected");
    if selected != scale::GROUPS || desired.rendered_groups.len() >= scale::GROUPS || desired.users.len() != 1 || g.members != vec![0] || desired.users[0].key != subject {
        eprintln!("FAILED: the scoped read does not hold the change");
        std::process::exit(1);
    }
    // The steps of the scoped registry side, each alone.
    let (times, _) = timed(|| async {
        let rendered = st.rendered_of("bench", &subjects).await.expect("rendered");
        for s in &subjects {
            st.subject(s).await.expect("subject");
        }
        let keys: Vec<String> = rendered.into_iter().map(|r| r.username_key).collect();
        st.rendered_holders("bench", &keys).await.expect("holders")
    })
    .await;
    println!("{label}:   step: clash partners (recorded usernames, subject rows): {}", stats(times));
    let (times, scoped) = timed(|| st.scoped_group_selection("bench", &subjects, &named_groups, None)).await;
    println!("{label}:   step: scoped selection query (the groups reached and named): {}", stats(times));
    let (times, every) = timed(|| st.scoped_selection("bench", &subjects, None)).await;
    println!("{label}:   step: scoped selection query reading every group (before): {}", stats(times));
    let every = every.expect("scoped selection of every group");
    let (times, _) = timed(|| async { duoprov_plan::DesiredState::build_with(&every.selection, &settings.mapping, None, &|_| 0) }).await;
    println!("{label}:   step: desired state rendering every selected group ({}, before): {}", every.selection.groups.len(), stats(times));
    drop(every);
    let (times, _) = timed(|| st.markers(Some("bench"))).await;
    println!("{label}:   step: markers read (selection rules): {}", stats(times));
    let scoped = scoped.expect("scoped selection");
    let names: Vec<String> = scoped.selection.groups.iter().filter_map(|g| settings.mapping.group_fields(&g.group).ok()).map(|f| f.name).collect();
    let (times, _) = timed(|| async {
        st.rendered_group_holders("bench", &names).await.expect("group holders");
        st.rendered_group_count("bench").await.expect("group count")
    })
    .await;
    println!("{label}:   step: group-name clash lookup and selected-group count: {}", stats(times));
    let (times, _) = timed(|| async { duoprov_plan::DesiredState::build_part(&scoped.selection, &settings.mapping, None, &|_| 0, &|_| 0) }).await;
    println!("{label}:   step: desired state ({} groups rendered): {}", scoped.selection.groups.len(), stats(times));
    let (times, links) = timed(|| st.links("bench")).await;
    println!("{label}: links read whole (before): {} ({} user links)", stats(times), links.expect("links").users.len());
    let (times, read) = timed(|| async {
        let read = st.scoped_links("bench", &subjects, Some(&named_groups)).await.expect("scoped links");
        let ids: Vec<String> = read.links.users.iter().filter_map(|l| l.duo_user_id.clone()).collect();
        let met = st.user_links_by_duo_ids("bench", &ids).await.expect("links by Duo id");
        let group_ids: Vec<String> = read.links.groups.iter().filter_map(|l| l.duo_group_id.clone()).collect();
        st.group_links_by_duo_ids("bench", &group_ids).await.expect("group links by Duo id");
        (read, met)
    })
    .await;
    let (read, met) = read;
    let (every_times, _) = timed(|| st.scoped_links("bench", &subjects, None)).await;
    println!("{label}: links read for the scope with every group link (before): {}", stats(every_times));
    println!(
        "{label}: links read for the scope: {} ({} group links, {} user link, {} met by Duo id, {} managed users and {} managed groups counted)",
        stats(times),
        read.links.groups.len(),
        read.links.users.len(),
        met.len(),
        read.managed_users,
        read.managed_groups
    );
    if read.links.users.len() != 1 || read.links.groups.len() != 1 || met.len() != 1 || read.managed_users != scale::SUBJECTS || read.managed_groups != scale::GROUPS {
        eprintln!("FAILED: the scoped links do not hold the changed subject's link and the managed count");
        std::process::exit(1);
    }
    let total: Vec<Duration> = change_times.iter().zip(&scoped_times).map(|(a, b)| *a + *b).collect();
    println!("{label}: change log + scoped registry side: {}", stats(total));
}

#[tokio::main]
async fn main() {
    let text = scale::document();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    bench("sqlite", &url, None, &text).await;
    match std::env::var("DUOPROV_TEST_POSTGRES_URL") {
        Ok(pg) if !pg.is_empty() => bench("postgres", &pg, Some(format!("bench_scoped_{}", std::process::id())), &text).await,
        _ => println!("postgres: skipped (DUOPROV_TEST_POSTGRES_URL not set)"),
    }
}
