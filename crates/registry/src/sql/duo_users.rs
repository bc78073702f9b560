//! The Duo users table over SQL. Each row keeps its username's key
//! (`duoprov_model::username_key`), which "not in the registry" compares with the recorded
//! rendered usernames. A replace holds
//! the registry's write lock, reads the provisioner's current rows, and writes only the
//! difference — batched deletes, then batched multi-row upserts — in one transaction.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::{QueryBuilder, Transaction};

use super::SqlStore;
use crate::duo_users::{self, AuthMethod, AuthMethodCounts, DUO_USER_COLUMNS, DuoUserFilter, DuoUserLoad, DuoUserRow, DuoUserStore, ReplaceCounts};
use crate::error::{RegistryError, Result};

/// Rows per multi-row statement: 28 parameters each, under SQLite's 32766 and PostgreSQL's
/// 65535 bind parameters.
const BATCH: usize = 1000;

/// The columns after `config_id`, comma-separated, in [`DUO_USER_COLUMNS`] order.
pub(super) fn columns() -> &'static str {
    static COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| DUO_USER_COLUMNS[1..].join(", "));
    &COLUMNS
}

/// The columns an upsert replaces (every one but the key).
const UPDATED: &[&str] = DUO_USER_COLUMNS.split_at(2).1;

/// One `SELECT` row of [`columns`] as a [`DuoUserRow`] (more columns than sqlx's tuples take).
pub(super) fn row_of<R: sqlx::Row>(config_id: &str, r: &R) -> std::result::Result<DuoUserRow, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(DuoUserRow {
        config_id: config_id.to_owned(),
        user_id: r.try_get(0)?,
        aliases: r.try_get(1)?,
        phones: r.try_get(2)?,
        is_push_enabled: r.try_get(3)?,
        email: r.try_get(4)?,
        first_name: r.try_get(5)?,
        last_name: r.try_get(6)?,
        is_enrolled: r.try_get(7)?,
        last_directory_sync: r.try_get(8)?,
        notes: r.try_get(9)?,
        real_name: r.try_get(10)?,
        status: r.try_get(11)?,
        user_name: r.try_get(12)?,
        created_at: r.try_get(13)?,
        last_login_time: r.try_get(14)?,
        auth_methods: AuthMethodCounts {
            push_phone_count: r.try_get(15)?,
            mobile_otp_phone_count: r.try_get(16)?,
            push_phone_last_seen: r.try_get(17)?,
            sms_phone_count: r.try_get(18)?,
            voice_phone_count: r.try_get(19)?,
            duo_hardware_token_count: r.try_get(20)?,
            hotp_token_count: r.try_get(21)?,
            totp_token_count: r.try_get(22)?,
            yubikey_otp_token_count: r.try_get(23)?,
            webauthn_count: r.try_get(24)?,
            u2f_count: r.try_get(25)?,
        },
    })
}

/// `duoprov report`'s SQL filters, as ` AND …` conditions on `duo_user d` (shared by the report
/// and the console's pages).
pub(super) fn push_filter<DB: super::SqlBackend>(qb: &mut QueryBuilder<DB>, filter: &DuoUserFilter)
where
    for<'b> &'b str: super::backend::Param<DB>,
    i64: super::backend::Value<DB>,
{
    if filter.not_in_registry {
        qb.push(" AND NOT EXISTS (SELECT 1 FROM subject s WHERE lower(s.login_id) = lower(d.user_name))");
    }
    if let Some(provisioner) = &filter.not_rendered_by {
        // Kept with the rows by migration 0024's triggers (the partial index `duo_user_unrendered`).
        qb.push(" AND d.config_id = ").push_bind(provisioner.as_str()).push(" AND NOT d.rendered");
    }
    if filter.not_enrolled {
        qb.push(" AND (d.is_enrolled IS NULL OR d.is_enrolled <> 'T')");
    }
    if let Some(status) = &filter.status {
        qb.push(" AND lower(d.status) = lower(").push_bind(status.as_str()).push(")");
    }
    if let Some(before) = filter.stale_before {
        qb.push(" AND (COALESCE(d.last_login_time, d.created_at) IS NULL OR COALESCE(d.last_login_time, d.created_at) < ")
            .push_bind(before)
            .push(")");
    }
    for method in &filter.has_methods {
        qb.push(format!(" AND d.{} > 0", method.column()));
    }
    for method in &filter.lacks_methods {
        qb.push(format!(" AND d.{} = 0", method.column()));
    }
    if !filter.only_methods.is_empty() {
        let any: Vec<String> = filter.only_methods.iter().map(|m| format!("d.{} > 0", m.column())).collect();
        qb.push(format!(" AND ({})", any.join(" OR ")));
        for other in AuthMethod::ALL.into_iter().filter(|m| !filter.only_methods.contains(m)) {
            qb.push(format!(" AND d.{} = 0", other.column()));
        }
    }
}

fn db(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> RegistryError {
    RegistryError::db(context)
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The writes of a replace (a namespace over the database type).
struct Writes<DB>(PhantomData<DB>);

sql_impl! {
impl Writes<DB> {
    async fn begin_write(store: &SqlStore<DB>) -> Result<Transaction<'static, DB>> {
        let mut tx = store.pool().begin_with(DB::BEGIN_WRITE).await.map_err(db("starting the Duo users write"))?;
        if let Some(lock) = DB::WRITE_LOCK {
            sqlx::query(lock).execute(&mut *tx).await.map_err(db("taking the registry write lock"))?;
        }
        Ok(tx)
    }

    async fn delete_users(tx: &mut Transaction<'static, DB>, config_id: &str, ids: &[&str]) -> Result<()> {
        for chunk in ids.chunks(BATCH) {
            let mut qb = QueryBuilder::<DB>::new("DELETE FROM duo_user WHERE config_id = ");
            qb.push_bind(config_id).push(" AND user_id IN (");
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            qb.push(")");
            qb.build().execute(&mut **tx).await.map_err(db("deleting Duo users that are gone"))?;
        }
        Ok(())
    }

    async fn upsert_users(tx: &mut Transaction<'static, DB>, rows: &[&DuoUserRow]) -> Result<()> {
        for chunk in rows.chunks(BATCH) {
            let mut qb = QueryBuilder::<DB>::new(format!("INSERT INTO duo_user (config_id, {}, user_name_key) ", columns()));
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(&r.config_id)
                    .push_bind(&r.user_id)
                    .push_bind(&r.aliases)
                    .push_bind(&r.phones)
                    .push_bind(&r.is_push_enabled)
                    .push_bind(&r.email)
                    .push_bind(&r.first_name)
                    .push_bind(&r.last_name)
                    .push_bind(&r.is_enrolled)
                    .push_bind(r.last_directory_sync)
                    .push_bind(&r.notes)
                    .push_bind(&r.real_name)
                    .push_bind(&r.status)
                    .push_bind(&r.user_name)
                    .push_bind(r.created_at)
                    .push_bind(r.last_login_time);
                for (_, count) in r.auth_methods.columns() {
                    b.push_bind(count);
                }
                b.push_bind(duoprov_model::username_key(&r.user_name));
            });
            let set: Vec<String> = UPDATED.iter().chain(&["user_name_key"]).map(|c| format!("{c} = excluded.{c}")).collect();
            qb.push(format!(" ON CONFLICT (config_id, user_id) DO UPDATE SET {}", set.join(", ")));
            qb.build().execute(&mut **tx).await.map_err(|e| {
                let first = chunk.first().map(|r| r.user_id.as_str()).unwrap_or_default();
                let last = chunk.last().map(|r| r.user_id.as_str()).unwrap_or_default();
                RegistryError::Database { context: format!("writing Duo users {first} … {last}"), source: e }
            })?;
        }
        Ok(())
    }
}
}

sql_impl! {
#[async_trait]
impl DuoUserStore for SqlStore<DB> {
    async fn replace_duo_users(&self, config_id: &str, rows: &[DuoUserRow]) -> Result<ReplaceCounts> {
        duo_users::check_rows(config_id, rows)?;
        let mut tx = Writes::begin_write(self).await?;
        let current = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {} FROM duo_user WHERE config_id = $1", columns())))
            .bind(config_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(format!("reading the Duo users of {config_id}")))?;
        let mut current: HashMap<String, DuoUserRow> = current
            .iter()
            .map(|r| row_of(config_id, r).map(|row| (row.user_id.clone(), row)))
            .collect::<std::result::Result<_, _>>()
            .map_err(db(format!("reading the Duo users of {config_id}")))?;

        // Rows loaded before their username key was kept (non-ASCII usernames, see migration
        // 0019) are rewritten even when unchanged, so a load gives every row its key.
        let unkeyed: std::collections::HashSet<String> = sqlx::query_scalar("SELECT user_id FROM duo_user WHERE config_id = $1 AND user_name_key IS NULL")
            .bind(config_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(format!("reading the Duo users of {config_id}")))?
            .into_iter()
            .collect();

        let mut counts = ReplaceCounts::default();
        let mut to_write: Vec<&DuoUserRow> = Vec::new();
        for row in rows {
            match current.remove(&row.user_id) {
                Some(existing) if existing == *row => {
                    counts.unchanged += 1;
                    if unkeyed.contains(&row.user_id) {
                        to_write.push(row);
                    }
                }
                Some(_) => {
                    counts.updated += 1;
                    to_write.push(row);
                }
                None => {
                    counts.inserted += 1;
                    to_write.push(row);
                }
            }
        }
        let mut gone: Vec<&str> = current.keys().map(String::as_str).collect();
        gone.sort_unstable();
        counts.deleted = gone.len() as u64;

        Writes::delete_users(&mut tx, config_id, &gone).await?;
        Writes::upsert_users(&mut tx, &to_write).await?;
        sqlx::query(
            "INSERT INTO duo_user_load (config_id, loaded_at, users) VALUES ($1, $2, $3) \
             ON CONFLICT (config_id) DO UPDATE SET loaded_at = excluded.loaded_at, users = excluded.users",
        )
        .bind(config_id)
        .bind(now_secs())
        .bind(rows.len() as i64)
        .execute(&mut *tx)
        .await
        .map_err(db("recording the Duo users load"))?;
        tx.commit().await.map_err(db("committing the Duo users load"))?;
        Ok(counts)
    }

    async fn duo_users(&self, config_id: &str, filter: &DuoUserFilter) -> Result<Vec<DuoUserRow>> {
        let mut qb = QueryBuilder::<DB>::new(format!("SELECT {} FROM duo_user d WHERE d.config_id = ", columns()));
        qb.push_bind(config_id);
        push_filter(&mut qb, filter);
        let rows = qb.build().fetch_all(self.pool()).await.map_err(db(format!("reading the Duo users of {config_id}")))?;
        let mut rows: Vec<DuoUserRow> = rows
            .iter()
            .map(|r| row_of(config_id, r))
            .collect::<std::result::Result<_, _>>()
            .map_err(db(format!("reading the Duo users of {config_id}")))?;
        // Byte order on both backends (PostgreSQL's ORDER BY would follow the database locale).
        rows.sort_by(|a, b| (&a.user_name, &a.user_id).cmp(&(&b.user_name, &b.user_id)));
        Ok(rows)
    }

    async fn duo_user_load(&self, config_id: &str) -> Result<Option<DuoUserLoad>> {
        let row: Option<(i64, i64)> = sqlx::query_as("SELECT loaded_at, users FROM duo_user_load WHERE config_id = $1")
            .bind(config_id)
            .fetch_optional(self.pool())
            .await
            .map_err(db(format!("reading when the Duo users of {config_id} were loaded")))?;
        Ok(row.map(|(loaded_at, users)| DuoUserLoad { loaded_at, users }))
    }
}
}
