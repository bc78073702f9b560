//! The PostgreSQL backend: the one SQL store of `sql/` over a connection pool, with a
//! transaction-scoped advisory lock serialising registry writes, and an optional schema so tests
//! (and several registries) can share one database.

use std::str::FromStr;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::error::{RegistryError, Result};
use crate::migrate;
use crate::sql::{SqlBackend, SqlStore};

/// The registry store over PostgreSQL.
pub type PostgresStore = SqlStore<sqlx::Postgres>;

/// The advisory lock key of registry writes ("duoprov" in ASCII, truncated).
const WRITE_LOCK: &str = "SELECT pg_advisory_xact_lock(6441559076706422)";
/// The advisory lock key of audit appends (the registry write key plus one): held from reading
/// the chain head to commit. A mirror takes it inside the registry write lock, a sync's append
/// takes it alone, so the two never wait for each other in opposite orders.
const AUDIT_LOCK: &str = "SELECT pg_advisory_xact_lock(6441559076706423)";

impl SqlBackend for sqlx::Postgres {
    const BACKEND: crate::Backend = crate::Backend::Postgres;
    const BEGIN_WRITE: &'static str = "BEGIN";
    const WRITE_LOCK: Option<&'static str> = Some(WRITE_LOCK);
    const AUDIT_LOCK: Option<&'static str> = Some(AUDIT_LOCK);
    const BEGIN_READ: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    const JSON_IDS: &'static str = "SELECT (jsonb_array_elements_text($1::jsonb))::bigint";
    const JSON_ID_PAIRS: &'static str = "SELECT (v->>0)::bigint, (v->>1)::bigint FROM jsonb_array_elements($1::jsonb) AS e(v)";
    const JSON_TEXT_ROWS8: &'static str = "SELECT v->>0, v->>1, v->>2, v->>3, v->>4, v->>5, v->>6, v->>7 FROM jsonb_array_elements($1::jsonb) AS e(v)";
    const BULK_MEMBERSHIP_LOAD: Option<crate::sql::BulkLoad> = Some(crate::sql::BulkLoad {
        before: &[
            "ALTER TABLE member_subject DROP CONSTRAINT member_subject_group_id_fkey, DROP CONSTRAINT member_subject_subject_id_fkey",
            "DROP INDEX member_subject_subject",
        ],
        after: &[
            "CREATE INDEX member_subject_subject ON member_subject (subject_id)",
            "ALTER TABLE member_subject \
             ADD CONSTRAINT member_subject_group_id_fkey FOREIGN KEY (group_id) REFERENCES grp (id) ON DELETE CASCADE, \
             ADD CONSTRAINT member_subject_subject_id_fkey FOREIGN KEY (subject_id) REFERENCES subject (id) ON DELETE CASCADE",
        ],
    });
    const CONCAT_SUBJECT_IDS: &'static str = "string_agg(subject_id::text, ',')";
    const NOTIFY_CHANGE: Option<&'static str> = Some("SELECT pg_notify('duoprov_change', current_schema())");
    const BYTE_ORDER: &'static str = " COLLATE \"C\"";
    const UNRENDERED_INDEX: &'static str = "";

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    async fn try_lock_runner(store: &PostgresStore, key: &str) -> Result<Option<crate::RunnerLock>> {
        try_lock_runner(store, key).await
    }

    async fn change_waker(store: &PostgresStore) -> Result<Option<crate::sync_state::ChangeWaker>> {
        change_waker(store).await
    }
}

/// Connects to the PostgreSQL registry at `url` and brings its schema up to date. With
/// `schema`, every table lives in that schema (created when missing).
pub async fn connect(url: &str, password: Option<&str>, schema: Option<&str>) -> Result<PostgresStore> {
    let mut options = PgConnectOptions::from_str(url)
        .map_err(|_| RegistryError::Url("not a valid PostgreSQL URL".into()))?
        .application_name("duoprov")
        // Reading a large registry takes seconds by design; that is not worth a warning.
        .log_slow_statements(log::LevelFilter::Debug, std::time::Duration::from_secs(30));
    if let Some(p) = password {
        options = options.password(p);
    }
    let (mut options, tls) = crate::pg_tls::choose(url, options);
    tracing::debug!(tls = %tls.describe(), "PostgreSQL registry connection");
    // A failed connection says what TLS found and how to fix it; other failures keep sqlx's words.
    let connect_error = |tls: &crate::pg_tls::TlsChoice| {
        let tls = tls.clone();
        move |e: sqlx::Error| match crate::pg_tls::explain(&e, &tls) {
            Some(detail) => RegistryError::Connect(detail),
            None => RegistryError::Database { context: "connecting to the PostgreSQL registry".into(), source: e },
        }
    };
    if let Some(schema) = schema {
        if schema.is_empty() || !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(RegistryError::Url(format!("schema {schema:?}: use letters, digits and _ only")));
        }
        let admin = PgPoolOptions::new().max_connections(1).connect_with(options.clone()).await.map_err(connect_error(&tls))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}")))
            .execute(&admin)
            .await
            .map_err(RegistryError::db(format!("creating schema {schema}")))?;
        admin.close().await;
        options = options.options([("search_path", schema)]);
    }
    let pool = PgPoolOptions::new().max_connections(8).connect_with(options).await.map_err(connect_error(&tls))?;
    migrate::postgres().run(&pool).await?;
    Ok(PostgresStore::from_pool(pool))
}

/// A session-level advisory lock held on a connection of its own, outside the pool: it lasts as
/// long as that session, so a process that dies (or loses its connection) releases it.
///
/// Fencing: `alive` asks the server whether *this* session still holds the lock (`pg_locks`),
/// within a deadline, so a session that ended — a server restart, `pg_terminate_backend`, a
/// pooler that handed out another backend — or a server that stopped answering reads as lost.
/// The session asks the server for TCP keepalives, so a holder whose host vanished without
/// closing its socket loses the lock within about half a minute instead of the kernel's two
/// hours, and turns off idle timeouts that would end the (idle) session.
struct SessionLock {
    conn: sqlx::PgConnection,
    key: i64,
}

/// How long `alive` waits for the server before calling the lock lost.
const ALIVE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Session settings of the lock's connection (applied only where the server knows them).
const LOCK_SESSION_SETTINGS: [(&str, &str); 5] = [
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
    ("idle_session_timeout", "0"),
    ("idle_in_transaction_session_timeout", "0"),
];

#[async_trait::async_trait]
impl crate::sync_state::LockHolder for SessionLock {
    async fn alive(&mut self) -> bool {
        let held = sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() \
             AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1)",
        )
        .bind(self.key)
        .fetch_one(&mut self.conn);
        matches!(tokio::time::timeout(ALIVE_DEADLINE, held).await, Ok(Ok(true)))
    }
}

async fn try_lock_runner(store: &PostgresStore, key: &str) -> Result<Option<crate::RunnerLock>> {
    let conn = store.pool().acquire().await.map_err(RegistryError::db("connecting for the runner lock"))?;
    let mut conn = conn.detach();
    for (name, value) in LOCK_SESSION_SETTINGS {
        sqlx::query("SELECT set_config(name, $2, false) FROM pg_settings WHERE name = $1")
            .bind(name)
            .bind(value)
            .execute(&mut conn)
            .await
            .map_err(RegistryError::db(format!("setting {name} for the runner lock's session")))?;
    }
    // The schema is part of the key: several registries may share one database.
    let lock_key: i64 = sqlx::query_scalar("SELECT hashtextextended('duoprov-runner:' || current_schema() || ':' || $1, 0)")
        .bind(key)
        .fetch_one(&mut conn)
        .await
        .map_err(RegistryError::db(format!("computing the runner lock key of {key}")))?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(lock_key)
        .fetch_one(&mut conn)
        .await
        .map_err(RegistryError::db(format!("taking the runner lock {key}")))?;
    Ok(locked.then(|| crate::RunnerLock::new(Box::new(SessionLock { conn, key: lock_key }))))
}

/// `LISTEN duoprov_change` on a connection of its own; notifications from other schemas (other
/// registries in the same database) are skipped.
struct Listener {
    listener: sqlx::postgres::PgListener,
    schema: String,
}

#[async_trait::async_trait]
impl crate::sync_state::WakeSource for Listener {
    async fn changed(&mut self) -> bool {
        loop {
            match self.listener.recv().await {
                Ok(n) if n.payload() == self.schema => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }
}

async fn change_waker(store: &PostgresStore) -> Result<Option<crate::sync_state::ChangeWaker>> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(store.pool())
        .await
        .map_err(RegistryError::db("reading the current schema"))?;
    let mut listener = sqlx::postgres::PgListener::connect_with(store.pool()).await.map_err(RegistryError::db("connecting for change notifications"))?;
    listener.listen("duoprov_change").await.map_err(RegistryError::db("listening for change notifications"))?;
    Ok(Some(crate::sync_state::ChangeWaker::new(Box::new(Listener { listener, schema }))))
}
