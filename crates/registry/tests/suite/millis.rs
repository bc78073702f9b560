//! Upgrading to one time unit: a registry written by a version that kept link, membership and
//! error times in epoch seconds reads the same instants after migration 0009 scales them to
//! milliseconds; the run log, checkpoint and retry list (already milliseconds) are untouched.

use std::borrow::Cow;
use std::str::FromStr;

use duoprov_model::{EpochMillis, SubjectKey};
use duoprov_registry::Store;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;

/// The migrations up to 0007, as a version before 0009 applied them.
fn up_to_0007(files: [&'static str; 7]) -> Migrator {
    let migrations = files
        .iter()
        .enumerate()
        .map(|(i, sql)| Migration::new(i as i64 + 1, Cow::Borrowed("before 0009"), MigrationType::Simple, sqlx::AssertSqlSafe(*sql).into_sql_str(), false))
        .collect();
    Migrator::with_migrations(migrations)
}

macro_rules! files {
    ($d:literal) => {
        [
            include_str!(concat!("../../migrations/", $d, "/0001_registry.sql")),
            include_str!(concat!("../../migrations/", $d, "/0002_duo_user.sql")),
            include_str!(concat!("../../migrations/", $d, "/0003_sync_state.sql")),
            include_str!(concat!("../../migrations/", $d, "/0004_incremental.sql")),
            include_str!(concat!("../../migrations/", $d, "/0005_ownership.sql")),
            include_str!(concat!("../../migrations/", $d, "/0006_retry_whole_group.sql")),
            include_str!(concat!("../../migrations/", $d, "/0007_duo_probe.sql")),
        ]
    };
}

/// Rows as the older version wrote them: seconds for links, memberships and errors.
const OLD_ROWS: &str = "\
    INSERT INTO sync_group (provisioner, group_uuid, duo_group_id, in_target, created_by_us, first_provisioned, last_provisioned, error_code, error_message, error_at, pending_name, pending_at) \
        VALUES ('duoTest', 'uuid-1', NULL, FALSE, TRUE, 1700000000, 1700000100, 'ERR', 'HTTP 500', 1700000200, 'staff', 1700000050); \
    INSERT INTO sync_user (provisioner, source, subject_id, duo_user_id, in_target, created_by_us, first_provisioned, last_provisioned, error_code, error_message, error_at, pending_name, pending_at) \
        VALUES ('duoTest', 'local', 'jdoe', NULL, FALSE, TRUE, NULL, NULL, 'ERR', 'HTTP 503', 1700000300, 'jdoe', 1700000060); \
    INSERT INTO sync_membership (provisioner, group_uuid, source, subject_id, in_target, first_provisioned, last_provisioned, error_code, error_message, error_at) \
        VALUES ('duoTest', 'uuid-1', 'local', 'mchyzer', TRUE, 1700000010, 1700000020, 'ERR', 'HTTP 429', 1700000400); \
    INSERT INTO sync_run (provisioner, kind, dry_run, started_at_ms, finished_at_ms, status, counts, timings) \
        VALUES ('duoTest', 'full', FALSE, 1700000000123, 1700000004567, 'succeeded', '{}', '{}'); \
    INSERT INTO sync_checkpoint (provisioner, last_seq, updated_at_ms, last_full_ms, last_incremental_ms) VALUES ('duoTest', 7, 1700000004567, 1700000004567, NULL); \
    INSERT INTO sync_retry (provisioner, group_uuid, source, subject_id, attempts, next_at_ms, last_error) VALUES ('duoTest', 'uuid-1', '', '', 1, 1700000014567, 'HTTP 503');";

const PROVISIONED: &str = "SELECT first_provisioned, last_provisioned FROM sync_group UNION ALL SELECT first_provisioned, last_provisioned FROM sync_membership ORDER BY 1";

/// What the upgraded store reads: every instant the same as the seconds (or milliseconds) written.
async fn reads_the_same_instants(store: &dyn Store, provisioned: Vec<(i64, i64)>) {
    let s = EpochMillis::from_secs;
    let links = store.links("duoTest").await.unwrap();
    assert_eq!(links.groups[0].pending_at, Some(s(1_700_000_050)));
    assert_eq!(links.users[0].pending_at, Some(s(1_700_000_060)));
    assert_eq!(links.users[0].subject, SubjectKey::local("jdoe"));
    let errors: Vec<(String, EpochMillis)> = store.object_errors("duoTest", 10).await.unwrap().into_iter().map(|e| (e.kind, e.at_ms)).collect();
    assert_eq!(errors, vec![("membership".into(), s(1_700_000_400)), ("user".into(), s(1_700_000_300)), ("group".into(), s(1_700_000_200))]);
    assert_eq!(provisioned, vec![(1_700_000_000_000, 1_700_000_100_000), (1_700_000_010_000, 1_700_000_020_000)]);
    let run = store.runs(Some("duoTest"), 1).await.unwrap().remove(0);
    assert_eq!((run.started_at_ms, run.finished_at_ms), (EpochMillis(1_700_000_000_123), Some(EpochMillis(1_700_000_004_567))));
    let cp = store.checkpoint("duoTest").await.unwrap().unwrap();
    assert_eq!((cp.updated_at_ms, cp.last_full_ms), (EpochMillis(1_700_000_004_567), Some(EpochMillis(1_700_000_004_567))));
    assert_eq!(store.retries("duoTest", None).await.unwrap()[0].next_at_ms, EpochMillis(1_700_000_014_567));
}

#[tokio::test]
async fn a_sqlite_registry_with_second_valued_times_reads_the_same_instants_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("registry.db").display());
    {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url).unwrap().create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        up_to_0007(files!("sqlite")).run(&pool).await.unwrap();
        sqlx::raw_sql(OLD_ROWS).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let store = duoprov_registry::sqlite::connect(&url).await.expect("upgrade");
    let provisioned: Vec<(i64, i64)> = sqlx::query_as(PROVISIONED).fetch_all(store.pool()).await.unwrap();
    reads_the_same_instants(&store, provisioned).await;
}

#[tokio::test]
async fn a_postgres_registry_with_second_valued_times_reads_the_same_instants_after_the_upgrade() {
    let Ok(url) = std::env::var("DUOPROV_TEST_POSTGRES_URL") else {
        crate::support::skipped("DUOPROV_TEST_POSTGRES_URL is not set");
        assert_ne!(std::env::var("DUOPROV_REQUIRE_EXTERNAL").as_deref(), Ok("1"), "DUOPROV_TEST_POSTGRES_URL is not set but DUOPROV_REQUIRE_EXTERNAL=1");
        return;
    };
    let schema = format!("t_millis_upgrade_{}", std::process::id());
    {
        // Never print the URL: it carries the test role's password.
        let options = sqlx::postgres::PgConnectOptions::from_str(&url).expect("a valid URL (not shown)");
        let admin = sqlx::PgPool::connect_with(options.clone()).await.expect("connect (URL not shown)");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))).execute(&admin).await.unwrap();
        admin.close().await;
        let pool = sqlx::PgPool::connect_with(options.options([("search_path", schema.as_str())])).await.unwrap();
        up_to_0007(files!("postgres")).run(&pool).await.unwrap();
        sqlx::raw_sql(OLD_ROWS).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let store = duoprov_registry::postgres::connect(&url, None, Some(&schema)).await.expect("upgrade");
    let provisioned: Vec<(i64, i64)> = sqlx::query_as(PROVISIONED).fetch_all(store.pool()).await.unwrap();
    reads_the_same_instants(&store, provisioned).await;
}
