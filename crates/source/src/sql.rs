//! Reading a PostgreSQL database into a [`SourceSnapshot`] with three queries the operator writes:
//! `subjects` (one row per person), `groups` (one row per group under the source's folder) and
//! `memberships` (one row per direct member: a subject, or a nested group). The connection follows
//! the registry's TLS rules (`sslmode`, `sslrootcert` or `ca_file`, verify-full by default for a
//! remote host) and takes its password from a file or the environment, never the URL. The three
//! queries run in one read-only, repeatable-read transaction (one consistent view of the
//! database) under a statement timeout, and their rows are streamed into the snapshot. Columns are
//! checked by name and type before the first row is read; a missing required column, a column
//! duoprov does not read, a column that is not text (or an integer), or a NULL in a required
//! column fails the whole read with the query, the column and the row — nothing is mirrored
//! from a partial or misread source.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use duoprov_model::{FolderPath, Subject};
use futures::TryStreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{Column, Connection, Executor, PgConnection, Row, Statement, TypeInfo};

use crate::mirror::{SnapshotGroup, SnapshotMember, SourceSnapshot};

/// The three queries, as written in `[source.NAME.queries]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queries {
    pub subjects: String,
    pub groups: String,
    pub memberships: String,
}

/// Everything needed to read one database.
#[derive(Debug, Clone)]
pub struct SqlSettings {
    /// `postgres://USER@HOST:PORT/DB?sslmode=…`, without a password.
    pub url: String,
    pub password: Option<SecretString>,
    /// PEM file of the CA(s) that sign the server's certificate (as `sslrootcert`).
    pub ca_file: Option<PathBuf>,
    /// How long connecting, and each query, may take.
    pub timeout: Duration,
    /// The configuration key of the URL (`source.grouper.url`), named by the fixes in errors.
    pub setting: String,
    pub queries: Queries,
}

/// A column a query may return: its name and whether a row must have a value in it.
struct Spec {
    name: &'static str,
    required: bool,
}

const fn req(name: &'static str) -> Spec {
    Spec { name, required: true }
}
const fn opt(name: &'static str) -> Spec {
    Spec { name, required: false }
}

/// `subjects`: `id` (the subject id under the source's subject source) and `login_id` (the Duo
/// username) are required; the rest may be left out or NULL.
const SUBJECT_COLUMNS: [Spec; 7] = [req("id"), req("login_id"), opt("name"), opt("email"), opt("first_name"), opt("last_name"), opt("description")];
/// `groups`: `key` (stable across renames) and `name` (the group's extension under the folder).
const GROUP_COLUMNS: [Spec; 4] = [req("key"), req("name"), opt("display_name"), opt("description")];
/// `memberships`: `group_key` and exactly one of `subject_id` and `member_group_key` per row.
const MEMBERSHIP_COLUMNS: [Spec; 3] = [req("group_key"), opt("subject_id"), opt("member_group_key")];

/// A failure to read the database; never carries the password or the URL.
#[derive(Debug, thiserror::Error)]
pub enum SqlReadError {
    #[error("cannot connect to the source's PostgreSQL server at {host}: {reason}; nothing was changed")]
    Connect { host: String, reason: String },
    #[error("the {query} query failed: {reason}; nothing was changed")]
    Query { query: &'static str, reason: String },
    #[error("the {query} query: column {column}: {problem}; nothing was changed")]
    Column { query: &'static str, column: String, problem: String },
    #[error("the {query} query, row {row}: {problem}; nothing was changed")]
    Row { query: &'static str, row: String, problem: String },
    #[error("SQL source settings: {0}")]
    Settings(String),
}

/// Where each spec column is in a query's result: `None` for an optional column left out.
struct Layout {
    query: &'static str,
    /// Per spec column: its index and whether it is an integer (read as text).
    at: Vec<Option<(usize, Int)>>,
}

#[derive(Clone, Copy)]
enum Int {
    No,
    I16,
    I32,
    I64,
}

fn layout(query: &'static str, columns: &[sqlx::postgres::PgColumn], spec: &[Spec]) -> Result<Layout, SqlReadError> {
    let mut at: Vec<Option<(usize, Int)>> = spec.iter().map(|_| None).collect();
    let names: Vec<&str> = spec.iter().map(|s| s.name).collect();
    for (i, c) in columns.iter().enumerate() {
        let name = c.name().to_ascii_lowercase();
        let column = |problem: String| SqlReadError::Column { query, column: c.name().to_string(), problem };
        let Some(k) = names.iter().position(|n| *n == name) else {
            return Err(column(format!("duoprov does not read a column of that name (the {query} query returns {}); remove it or rename it with AS", names.join(", "))));
        };
        if at[k].is_some() {
            return Err(column("is returned twice; return each column once".into()));
        }
        let ty = c.type_info().name().to_ascii_uppercase();
        let int = match ty.as_str() {
            "TEXT" | "VARCHAR" | "BPCHAR" | "CHAR" | "NAME" | "CITEXT" => Int::No,
            "INT2" => Int::I16,
            "INT4" => Int::I32,
            "INT8" => Int::I64,
            other => return Err(column(format!("is of type {other}; duoprov reads text or integers (cast it: {name}::text)"))),
        };
        at[k] = Some((i, int));
    }
    for (s, a) in spec.iter().zip(&at) {
        if s.required && a.is_none() {
            return Err(SqlReadError::Column { query, column: s.name.to_string(), problem: format!("is missing; the {query} query must return {} (and may return {})", list(spec, true), list(spec, false)) });
        }
    }
    Ok(Layout { query, at })
}

fn list(spec: &[Spec], required: bool) -> String {
    spec.iter().filter(|s| s.required == required).map(|s| s.name).collect::<Vec<_>>().join(", ")
}

impl Layout {
    /// The value of spec column `k` in `row`: `None` for NULL, an empty string or a column left
    /// out.
    fn get(&self, row: &PgRow, k: usize, n: u64) -> Result<Option<String>, SqlReadError> {
        let Some((i, int)) = self.at[k] else { return Ok(None) };
        let bad = |e: sqlx::Error| SqlReadError::Row { query: self.query, row: n.to_string(), problem: format!("column {i} cannot be read: {e}") };
        let v = match int {
            Int::No => row.try_get::<Option<String>, _>(i).map_err(bad)?,
            Int::I16 => row.try_get::<Option<i16>, _>(i).map_err(bad)?.map(|v| v.to_string()),
            Int::I32 => row.try_get::<Option<i32>, _>(i).map_err(bad)?.map(|v| v.to_string()),
            Int::I64 => row.try_get::<Option<i64>, _>(i).map_err(bad)?.map(|v| v.to_string()),
        };
        Ok(v.filter(|s| !s.trim().is_empty()))
    }
}

/// An open, read-only view of the source's database.
pub struct SqlReader {
    conn: PgConnection,
    /// The server's host, for errors (never the URL).
    host: String,
    settings: SqlSettings,
}

impl SqlReader {
    /// Connects with the registry's TLS rules.
    pub async fn connect(settings: &SqlSettings) -> Result<Self, SqlReadError> {
        if duoprov_registry::url::has_password(&settings.url) {
            return Err(SqlReadError::Settings(format!("{}: holds a password; keep it out of the URL (use password_env or password_file)", settings.setting)));
        }
        let mut options = PgConnectOptions::from_str(&settings.url)
            .map_err(|_| SqlReadError::Settings(format!("{}: not a valid PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE)", settings.setting)))?
            .application_name("duoprov-source");
        if let Some(p) = &settings.password {
            options = options.password(p.expose_secret());
        }
        if let Some(ca) = &settings.ca_file {
            options = options.ssl_root_cert(ca);
        }
        let (options, tls) = duoprov_registry::pg_tls::choose(&settings.url, options);
        tracing::debug!(tls = %tls.describe(), "SQL source connection");
        let connect_error = |reason: String| SqlReadError::Connect { host: tls.host.clone(), reason };
        let conn = match tokio::time::timeout(settings.timeout, PgConnection::connect_with(&options)).await {
            Err(_) => return Err(connect_error(format!("no answer within {} s", settings.timeout.as_secs()))),
            Ok(Err(e)) => return Err(connect_error(duoprov_registry::pg_tls::explain_for(&e, &tls, &settings.setting).unwrap_or_else(|| e.to_string()))),
            Ok(Ok(c)) => c,
        };
        Ok(SqlReader { conn, host: tls.host.clone(), settings: settings.clone() })
    }

    /// Runs the three queries in one read-only transaction and builds the snapshot for
    /// `subject_source` and `folder`.
    pub async fn read(&mut self, subject_source: &str, folder: &FolderPath) -> Result<SourceSnapshot, SqlReadError> {
        let setup = |e: sqlx::Error| SqlReadError::Connect { host: self.host.clone(), reason: format!("starting the read-only transaction failed: {e}") };
        let mut tx = self.conn.begin().await.map_err(setup)?;
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").await.map_err(setup)?;
        let ms = self.settings.timeout.as_millis().max(1);
        tx.execute(sqlx::AssertSqlSafe(format!("SET LOCAL statement_timeout = {ms}"))).await.map_err(setup)?;
        let q = self.settings.queries.clone();
        let mut snapshot = SourceSnapshot::default();

        let subjects = prepare(&mut tx, "subjects", &q.subjects, &SUBJECT_COLUMNS).await?;
        {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(q.subjects.clone())).fetch(&mut *tx);
            let mut n = 0u64;
            while let Some(row) = rows.try_next().await.map_err(|e| query_error("subjects", e))? {
                n += 1;
                let get = |k| subjects.get(&row, k, n);
                let id = get(0)?.ok_or_else(|| SqlReadError::Row { query: "subjects", row: n.to_string(), problem: "id is NULL (or empty); every subject needs its id".into() })?;
                let login_id = get(1)?.ok_or_else(|| SqlReadError::Row { query: "subjects", row: format!("{n} (id {id})"), problem: "login_id is NULL (or empty); every subject needs its Duo username".into() })?;
                snapshot.subjects.push(Subject {
                    source: subject_source.to_string(),
                    id,
                    login_id: Some(login_id),
                    name: get(2)?,
                    email: get(3)?,
                    first_name: get(4)?,
                    last_name: get(5)?,
                    description: get(6)?,
                });
            }
        }

        let groups = prepare(&mut tx, "groups", &q.groups, &GROUP_COLUMNS).await?;
        let mut by_key: HashMap<String, usize> = HashMap::new();
        {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(q.groups.clone())).fetch(&mut *tx);
            let mut n = 0u64;
            while let Some(row) = rows.try_next().await.map_err(|e| query_error("groups", e))? {
                n += 1;
                let get = |k| groups.get(&row, k, n);
                let key = get(0)?.ok_or_else(|| SqlReadError::Row { query: "groups", row: n.to_string(), problem: "key is NULL (or empty); every group needs the key that follows renames".into() })?;
                let row_name = |what: &str| format!("{n} (key {key}{what})");
                let ext = get(1)?.ok_or_else(|| SqlReadError::Row { query: "groups", row: row_name(""), problem: "name is NULL (or empty); every group needs its name under the folder".into() })?;
                let name = folder.child_group(&ext).map_err(|e| SqlReadError::Row { query: "groups", row: row_name(&format!(", name {ext:?}")), problem: format!("not a valid group name under folder {folder}: {e}") })?;
                if by_key.insert(key.clone(), snapshot.groups.len()).is_some() {
                    return Err(SqlReadError::Row { query: "groups", row: row_name(""), problem: "a second row with this key; keys must be unique".into() });
                }
                snapshot.groups.push(SnapshotGroup { key, name, display_name: get(2)?, description: get(3)?, members: Vec::new() });
            }
        }

        let memberships = prepare(&mut tx, "memberships", &q.memberships, &MEMBERSHIP_COLUMNS).await?;
        {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(q.memberships.clone())).fetch(&mut *tx);
            let mut n = 0u64;
            while let Some(row) = rows.try_next().await.map_err(|e| query_error("memberships", e))? {
                n += 1;
                let get = |k| memberships.get(&row, k, n);
                let group_key = get(0)?.ok_or_else(|| SqlReadError::Row { query: "memberships", row: n.to_string(), problem: "group_key is NULL (or empty)".into() })?;
                let member = match (get(1)?, get(2)?) {
                    (Some(s), None) => SnapshotMember::Subject(s),
                    (None, Some(g)) => SnapshotMember::Group(g),
                    _ => {
                        return Err(SqlReadError::Row {
                            query: "memberships",
                            row: format!("{n} (group_key {group_key})"),
                            problem: "give exactly one of subject_id and member_group_key (the other NULL)".into(),
                        })
                    }
                };
                match by_key.get(&group_key) {
                    Some(&g) => snapshot.groups[g].members.push(member),
                    None => snapshot.problems.push(format!("the memberships query, row {n}: group_key {group_key} names no group the groups query returned; left out")),
                }
            }
        }
        // Read-only: nothing to keep.
        let _ = tx.rollback().await;
        Ok(snapshot)
    }

    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}

fn query_error(query: &'static str, e: sqlx::Error) -> SqlReadError {
    let reason = match &e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    };
    SqlReadError::Query { query, reason }
}

/// Prepares a query and checks its columns before any row is read.
async fn prepare(conn: &mut PgConnection, query: &'static str, sql: &str, spec: &[Spec]) -> Result<Layout, SqlReadError> {
    if sql.trim().is_empty() {
        return Err(SqlReadError::Settings(format!("the {query} query is empty; write it in queries.{query}")));
    }
    let statement = conn.prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql.to_string()))).await.map_err(|e| query_error(query, e))?;
    layout(query, statement.columns(), spec)
}

/// Reads the whole source once: connect, read, close.
pub async fn read(settings: &SqlSettings, subject_source: &str, folder: &FolderPath) -> Result<SourceSnapshot, SqlReadError> {
    let mut reader = SqlReader::connect(settings).await?;
    let snapshot = reader.read(subject_source, folder).await;
    reader.close().await;
    snapshot
}
