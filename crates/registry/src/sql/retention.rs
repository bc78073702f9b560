//! Pruning the change log and the run log over SQL, in one write transaction.

use async_trait::async_trait;


use super::SqlStore;
use crate::error::{RegistryError, Result};
use crate::retention::{Pruned, Retention};

sql_impl! {
#[async_trait]
impl Retention for SqlStore<DB> {
    async fn prune(&self, change_log_before_ms: i64, runs_before_ms: i64) -> Result<Pruned> {
        // Under the writer lock: no entry commits between reading the checkpoints and deleting.
        let mut tx = self.begin_write().await?;
        let oldest: Option<(String, i64)> = sqlx::query_as::<DB, (String, i64)>("SELECT provisioner, last_seq FROM sync_checkpoint ORDER BY last_seq, provisioner LIMIT 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(RegistryError::db("reading the provisioners' checkpoints"))?;
        let newest: Option<i64> = sqlx::query_scalar::<DB, Option<i64>>("SELECT MAX(seq) FROM change_log")
            .fetch_one(&mut *tx)
            .await
            .map_err(RegistryError::db("reading the change log"))?;
        // Entries up to the oldest checkpoint are consumed by all; with no checkpoint, every
        // provisioner's first run is a full sync, which needs no entry.
        let consumed_up_to = oldest.as_ref().map_or(i64::MAX, |(_, seq)| *seq);
        let below = consumed_up_to.min(newest.unwrap_or(0));
        let entries = sqlx::query::<DB>("DELETE FROM change_log WHERE at_ms < $1 AND seq < $2 AND seq <= $3")
            .bind(change_log_before_ms)
            .bind(newest.unwrap_or(0))
            .bind(below)
            .execute(&mut *tx)
            .await
            .map_err(RegistryError::db("pruning the change log"))?;
        let runs = sqlx::query::<DB>(
            "DELETE FROM sync_run WHERE finished_at_ms IS NOT NULL AND finished_at_ms < $1 AND status <> 'running' \
             AND id NOT IN (SELECT MAX(id) FROM sync_run WHERE finished_at_ms IS NOT NULL GROUP BY provisioner, kind)",
        )
        .bind(runs_before_ms)
        .execute(&mut *tx)
        .await
        .map_err(RegistryError::db("pruning the run log"))?;
        tx.commit().await.map_err(RegistryError::db("committing the pruning"))?;
        let held_by = oldest.filter(|(_, seq)| *seq < newest.unwrap_or(0));
        Ok(Pruned { change_log_entries: DB::rows_affected(&entries), runs: DB::rows_affected(&runs), held_by })
    }
}
}
