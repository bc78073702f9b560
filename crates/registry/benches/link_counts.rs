//! The cost of keeping the console's link counts (`link_count`, migration 0019's triggers) on the
//! link writes: `record` of 100 000 user links (one call, as a full sync's users) and 1 000 000
//! membership links (slices of 50 000, one transaction each, as the console bench records them),
//! then the same 1 000 000 again as updates (each link's state changes: in error, then not), each
//! timed with the triggers and on a second registry without them. Checks after each step that
//! the kept counts equal a count of the links.
//!
//! `cargo bench -p duoprov-registry --bench link_counts` on SQLite (files in a temporary folder);
//! with `DUOPROV_BENCH_POSTGRES_URL` set, on that PostgreSQL database instead, in schemas of its
//! own that it drops at the end. Results go to docs/performance.md by hand, with the machine, date
//! and load average.

use std::time::Instant;

use duoprov_model::{EpochMillis, SubjectKey};
use duoprov_registry::{MembershipState, OpenOptions, StateError, Store, UserState};

const USERS: usize = 100_000;
const GROUPS: usize = 10_000;
const MEMBERSHIPS: usize = 1_000_000;
const SLICE: usize = 50_000;
const PROVISIONER: &str = "bench";
const TRIGGERS: [(&str, &str); 9] = [
    ("sync_group_count_insert", "sync_group"),
    ("sync_group_count_delete", "sync_group"),
    ("sync_group_count_update", "sync_group"),
    ("sync_user_count_insert", "sync_user"),
    ("sync_user_count_delete", "sync_user"),
    ("sync_user_count_update", "sync_user"),
    ("sync_membership_count_insert", "sync_membership"),
    ("sync_membership_count_delete", "sync_membership"),
    ("sync_membership_count_update", "sync_membership"),
];

fn error(i: usize, round: usize) -> Option<StateError> {
    (i % 100 == 7 + round).then(|| StateError { code: "ERR".into(), message: format!("bench failure {i}") })
}

fn users() -> Vec<UserState> {
    (0..USERS)
        .map(|i| UserState {
            pending_name: None,
            pending_at: None,
            subject: SubjectKey::local(format!("s{i:06}")),
            duo_user_id: Some(format!("DU{i:018}")),
            in_target: true,
            created_by_us: i % 5 != 2,
            provisioned_at: Some(EpochMillis(1_790_000_000_000)),
            error: error(i, 0),
        })
        .collect()
}

/// Membership `k` (distinct pairs): group `k % GROUPS`, a user of its own among 100 000; in
/// `round` 1 a third leave the target and a different one in a hundred is in error.
fn memberships(from: usize, to: usize, round: usize) -> Vec<MembershipState> {
    (from..to)
        .map(|k| MembershipState {
            group_uuid: format!("g{:05}", k % GROUPS),
            subject: SubjectKey::local(format!("s{:06}", k / GROUPS + (MEMBERSHIPS / GROUPS) * (k % GROUPS % (USERS / (MEMBERSHIPS / GROUPS))))),
            in_target: round == 0 || k % 3 != 0,
            provisioned_at: Some(EpochMillis(1_790_000_000_000)),
            error: error(k, round),
        })
        .collect()
}

/// Whether the kept counts equal those of the links written (the triggers' exactness at scale).
async fn check_counts(store: &dyn Store, users: &[UserState], memberships: &[MembershipState]) {
    let kept = store.link_counts(PROVISIONER).await.unwrap();
    let of = |kind: &str| kept.iter().find(|c| c.kind == kind).cloned().unwrap();
    let (u, m) = (of("users"), of("memberships"));
    let count = |n: usize| n as i64;
    assert_eq!(
        (u.total, u.in_target, u.linked, u.created_by_us, u.in_error),
        (
            count(users.len()),
            count(users.iter().filter(|x| x.in_target).count()),
            count(users.iter().filter(|x| x.duo_user_id.is_some()).count()),
            count(users.iter().filter(|x| x.created_by_us).count()),
            count(users.iter().filter(|x| x.error.is_some()).count())
        ),
        "the kept user link counts"
    );
    assert_eq!(
        (m.total, m.in_target, m.linked, m.in_error),
        (
            count(memberships.len()),
            count(memberships.iter().filter(|x| x.in_target).count()),
            count(memberships.iter().filter(|x| x.provisioned_at.is_some()).count()),
            count(memberships.iter().filter(|x| x.error.is_some()).count())
        ),
        "the kept membership link counts"
    );
}

async fn run(label: &str, url: &str, options: &OpenOptions, with_triggers: bool, postgres: bool) -> [f64; 3] {
    let store = duoprov_registry::open(url, options).await.unwrap();
    if !with_triggers {
        use sqlx::Connection;
        if postgres {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let schema = options.schema.clone().unwrap();
            for table in ["sync_group", "sync_user", "sync_membership"] {
                sqlx::query(sqlx::AssertSqlSafe(format!("ALTER TABLE {schema}.{table} DISABLE TRIGGER USER"))).execute(&mut conn).await.unwrap();
            }
        } else {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            for (trigger, _) in TRIGGERS {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER {trigger}"))).execute(&mut conn).await.unwrap();
            }
        }
    }
    let users = users();
    let started = Instant::now();
    store.record(PROVISIONER, &[], &users, &[]).await.unwrap();
    let user_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for from in (0..MEMBERSHIPS).step_by(SLICE) {
        store.record(PROVISIONER, &[], &[], &memberships(from, from + SLICE, 0)).await.unwrap();
    }
    let insert_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for from in (0..MEMBERSHIPS).step_by(SLICE) {
        store.record(PROVISIONER, &[], &[], &memberships(from, from + SLICE, 1)).await.unwrap();
    }
    let update_secs = started.elapsed().as_secs_f64();
    if with_triggers {
        check_counts(store.as_ref(), &users, &memberships(0, MEMBERSHIPS, 1)).await;
    }
    println!(
        "{label:<28} 100 000 user links {user_secs:>7.2} s   1 000 000 membership links inserted {insert_secs:>7.2} s, updated {update_secs:>7.2} s"
    );
    [user_secs, insert_secs, update_secs]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = std::env::var("DUOPROV_BENCH_POSTGRES_URL").ok().filter(|u| !u.is_empty());
    let mut times = Vec::new();
    for with_triggers in [true, false] {
        let label = if with_triggers { "with the triggers" } else { "without the triggers" };
        match &postgres {
            Some(url) => {
                let schema = format!("duoprov_link_counts_bench_{}_{}", std::process::id(), with_triggers);
                let options = OpenOptions { schema: Some(schema.clone()), ..Default::default() };
                times.push(run(&format!("PostgreSQL, {label}"), url, &options, with_triggers, true).await);
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&mut conn).await.unwrap();
            }
            None => {
                let url = format!("sqlite://{}", dir.path().join(format!("registry-{with_triggers}.db")).display());
                times.push(run(&format!("SQLite, {label}"), &url, &OpenOptions::default(), with_triggers, false).await);
            }
        }
    }
    let (with, without) = (times[0], times[1]);
    println!(
        "the triggers' share: user links {:+.2} s, membership inserts {:+.2} s, membership updates {:+.2} s",
        with[0] - without[0],
        with[1] - without[1],
        with[2] - without[2]
    );
}
