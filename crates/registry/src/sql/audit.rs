//! The audit log over SQL: appending entries onto the chain head under the audit lock (alone, or
//! inside a mirror's write transaction), listing them with filters, and reading the chain in
//! sequence order for verification.

use duoprov_model::EpochMillis;

use super::*;
use crate::audit::{seal, AuditEntry, AuditFilter, AuditLog, AuditRecord};

const AUDIT_COLS: &str = "seq, at_ms, actor, run_id, approval, source, provisioner, object_kind, object_name, object_uuid, action, \
                          before_json, after_json, duo_status, duo_code, duo_message, prev_hash, hash";

/// An entry from a row of `AUDIT_COLS` (eighteen columns: more than sqlx reads as a tuple).
fn entry_of<DB: Database>(row: &DB::Row) -> Result<AuditEntry>
where
    usize: sqlx::ColumnIndex<DB::Row>,
    i64: super::backend::Value<DB>,
    String: super::backend::Value<DB>,
    Option<i64>: super::backend::Value<DB>,
    Option<String>: super::backend::Value<DB>,
{
    use sqlx::Row as _;
    let bad = |e: sqlx::Error| RegistryError::db("reading an audit entry")(e);
    Ok(AuditEntry {
        seq: row.try_get(0).map_err(bad)?,
        at: EpochMillis(row.try_get(1).map_err(bad)?),
        actor: row.try_get(2).map_err(bad)?,
        run_id: row.try_get(3).map_err(bad)?,
        approval: row.try_get(4).map_err(bad)?,
        source: row.try_get(5).map_err(bad)?,
        provisioner: row.try_get(6).map_err(bad)?,
        object_kind: row.try_get(7).map_err(bad)?,
        object_name: row.try_get(8).map_err(bad)?,
        object_uuid: row.try_get(9).map_err(bad)?,
        action: row.try_get(10).map_err(bad)?,
        before: row.try_get(11).map_err(bad)?,
        after: row.try_get(12).map_err(bad)?,
        duo_status: row.try_get(13).map_err(bad)?,
        duo_code: row.try_get(14).map_err(bad)?,
        duo_message: row.try_get(15).map_err(bad)?,
        prev_hash: row.try_get(16).map_err(bad)?,
        hash: row.try_get(17).map_err(bad)?,
    })
}

/// The audit area's functions (a namespace over the database type).
pub(super) struct Audit<DB>(PhantomData<DB>);

sql_impl! {
impl Audit<DB> {
    /// Appends `records` in the transaction `tx`: takes the audit lock, reads the chain head and
    /// inserts the sealed entries after it.
    pub(super) async fn append_in(tx: &mut Tx<DB>, records: &[AuditRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if let Some(lock) = DB::AUDIT_LOCK {
            sqlx::query(lock).execute(&mut **tx).await.map_err(db("taking the audit lock"))?;
        }
        let head: Option<(i64, String)> = sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await
            .map_err(db("reading the head of the audit log"))?;
        for e in seal(head, EpochMillis::now(), records) {
            sqlx::query(
                "INSERT INTO audit_log (seq, at_ms, actor, run_id, approval, source, provisioner, object_kind, object_name, object_uuid, action, \
                 before_json, after_json, duo_status, duo_code, duo_message, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
            )
            .bind(e.seq)
            .bind(e.at.as_millis())
            .bind(e.actor)
            .bind(e.run_id)
            .bind(e.approval)
            .bind(e.source)
            .bind(e.provisioner)
            .bind(e.object_kind)
            .bind(e.object_name)
            .bind(e.object_uuid)
            .bind(e.action)
            .bind(e.before)
            .bind(e.after)
            .bind(e.duo_status)
            .bind(e.duo_code)
            .bind(e.duo_message)
            .bind(e.prev_hash)
            .bind(e.hash)
            .execute(&mut **tx)
            .await
            .map_err(db(format!("appending audit entry {}", e.seq)))?;
        }
        Ok(())
    }
}
}

sql_impl! {
#[async_trait]
impl AuditLog for SqlStore<DB> {
    async fn append_audit(&self, records: &[AuditRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        // Not the registry's writer lock: a sync's appends need not wait for registry writes.
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await.map_err(db("starting an audit append"))?;
        Audit::<DB>::append_in(&mut tx, records).await?;
        Self::commit(tx).await
    }

    async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {AUDIT_COLS} FROM audit_log WHERE ($1 IS NULL OR at_ms >= $1) AND ($2 IS NULL OR object_name = $2 OR object_uuid = $2) \
             AND ($3 IS NULL OR provisioner = $3 OR source = $3) ORDER BY seq DESC LIMIT $4"
        );
        let rows = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .bind(filter.since.map(|t| t.as_millis()))
            .bind(filter.object.as_deref())
            .bind(filter.provisioner.as_deref())
            .bind(filter.limit.map(i64::from).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading the audit log"))?;
        rows.iter().rev().map(entry_of::<DB>).collect()
    }

    async fn audit_chain(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        let sql = format!("SELECT {AUDIT_COLS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading the audit log"))?;
        rows.iter().map(entry_of::<DB>).collect()
    }

    async fn audit_head(&self) -> Result<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log").fetch_one(&self.pool).await.map_err(db("reading the audit log"))?;
        Ok(seq.unwrap_or(0))
    }
}
}
