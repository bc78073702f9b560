//! The change log: appending an entry in the transaction of every mutation (and notifying
//! PostgreSQL listeners), and reading entries for incremental syncs. A kind this version does
//! not know reads as `ChangeKind::Unknown`.

use super::*;

/// The change log area's functions (a namespace over the database type).
pub(super) struct Changes<DB>(PhantomData<DB>);

sql_impl! {
impl Changes<DB> {
    pub(super) async fn log_change(
        tx: &mut Tx<DB>,
        kind: ChangeKind,
        mut groups: Vec<String>,
        mut subjects: Vec<SubjectKey>,
        provisioners: Vec<String>,
        detail: serde_json::Value,
    ) -> Result<()> {
        groups.sort();
        groups.dedup();
        subjects.sort();
        subjects.dedup();
        let encode = |v: serde_json::Result<String>| v.map_err(|e| RegistryError::Refused(format!("encoding a change-log entry: {e}")));
        sqlx::query("INSERT INTO change_log (at_ms, kind, groups, subjects, provisioners, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(now_ms())
            .bind(kind.as_str())
            .bind(encode(serde_json::to_string(&groups))?)
            .bind(encode(serde_json::to_string(&subjects))?)
            .bind(encode(serde_json::to_string(&provisioners))?)
            .bind(encode(serde_json::to_string(&detail))?)
            .execute(&mut **tx)
            .await
            .map_err(db(format!("appending the {} change-log entry", kind.as_str())))?;
        if let Some(notify) = DB::NOTIFY_CHANGE {
            sqlx::query(notify).execute(&mut **tx).await.map_err(db("notifying listeners of a change"))?;
        }
        Ok(())
    }
}
}

sql_impl! {
#[async_trait]
impl ChangeLog for SqlStore<DB> {
    async fn changes_after(&self, after: i64, limit: u32) -> Result<Vec<ChangeEntry>> {
        let rows: Vec<(i64, i64, String, String, String, String, String)> = sqlx::query_as(
            "SELECT seq, at_ms, kind, groups, subjects, provisioners, detail FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading the change log"))?;
        rows.into_iter()
            .map(|(seq, at_ms, kind, groups, subjects, provisioners, detail)| {
                let bad = |field: &str, e: String| RegistryError::Refused(format!("change-log entry {seq}: {field}: {e}"));
                // A kind written by a newer duoprov is handed on as `Unknown` (an incremental sync
                // leaves it to a full sync) rather than failing every read of the log after it.
                let kind = ChangeKind::parse(&kind).unwrap_or_else(|| {
                    tracing::warn!(seq, kind = %kind, "A change-log entry has a kind this version of duoprov does not know (written by a newer version?); it is left to a full sync.");
                    ChangeKind::Unknown
                });
                Ok(ChangeEntry {
                    seq,
                    at_ms,
                    kind,
                    groups: serde_json::from_str(&groups).map_err(|e| bad("groups", e.to_string()))?,
                    subjects: serde_json::from_str(&subjects).map_err(|e| bad("subjects", e.to_string()))?,
                    provisioners: serde_json::from_str(&provisioners).map_err(|e| bad("provisioners", e.to_string()))?,
                    detail: serde_json::from_str(&detail).map_err(|e| bad("detail", e.to_string()))?,
                })
            })
            .collect()
    }

    async fn last_change_seq(&self) -> Result<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM change_log")
            .fetch_one(&self.pool)
            .await
            .map_err(db("reading the change log"))?;
        Ok(seq.unwrap_or(0))
    }
}
}
