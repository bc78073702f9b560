//! The console's requests and the last refused plans over SQL: `console_request` (a request and
//! its audit entry in one transaction; at most one waiting unclaimed per provisioner, kind and
//! object, through the partial unique index `console_request_waiting` and `ON CONFLICT DO
//! NOTHING`; a full sync's requests claimed by its run and deleted when it ends; a retry's
//! deleted with the audit entry of its outcome) and `console_refusal` (one row per provisioner).

use super::audit::Audit;
use super::console_actions::action_record;
use super::*;
use crate::console_requests::{ConsoleRequest, ConsoleRequests, REFUSAL_REMOVALS_KEPT, RefusedPlan, RequestKind, RequestedObject, RetryQueued};

type RequestRow = (i64, String, String, String, String, i64, Option<i64>);

/// A request row read back; an unknown kind is a broken registry, never a request.
fn request_of(provisioner: &str, (id, kind, object_kind, object_name, who, at_ms, claimed_at_ms): RequestRow) -> Result<ConsoleRequest> {
    let kind = match (kind.as_str(), object_kind.as_str()) {
        ("full-sync", "") => RequestKind::FullSync,
        ("retry", "subject") => RequestKind::Retry(RequestedObject::Subject(object_name)),
        ("retry", "group") => RequestKind::Retry(RequestedObject::Group(object_name)),
        (k, o) => {
            return Err(RegistryError::Database {
                context: format!("reading the console requests of {provisioner}"),
                source: sqlx::Error::Decode(format!("request {id} has an unknown kind {k:?} of object {o:?}").into()),
            });
        }
    };
    Ok(ConsoleRequest { id, provisioner: provisioner.to_owned(), kind, who, at_ms, claimed_at_ms })
}

fn json_list(provisioner: &str, what: &str, text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| RegistryError::Database {
        context: format!("reading the refused plan of {provisioner}"),
        source: sqlx::Error::Decode(format!("its {what} are not a list of text: {e}").into()),
    })
}

sql_impl! {
#[async_trait]
impl ConsoleRequests for SqlStore<DB> {
    async fn request_full_sync(&self, provisioner: &str, who: &str) -> Result<bool> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await.map_err(db("starting to record a full sync request"))?;
        let done = sqlx::query(
            "INSERT INTO console_request (provisioner, kind, requested_by, requested_at_ms) VALUES ($1, 'full-sync', $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(provisioner)
        .bind(who)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(db(format!("recording the full sync requested for {provisioner}")))?;
        Audit::<DB>::append_in(&mut tx, &[action_record(provisioner, who, "full-sync", "full sync requested")]).await?;
        Self::commit(tx).await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn request_retry(&self, provisioner: &str, object: &RequestedObject, who: &str, limit: usize) -> Result<RetryQueued> {
        let (object_kind, object_name) = match object {
            RequestedObject::Subject(s) => ("subject", s.as_str()),
            RequestedObject::Group(g) => ("group", g.as_str()),
        };
        // Under the registry's writer lock: two consoles cannot both pass the bound.
        let mut tx = self.begin_write().await?;
        let waiting: Vec<(String, String)> = sqlx::query_as("SELECT object_kind, object_name FROM console_request WHERE provisioner = $1 AND kind = 'retry'")
            .bind(provisioner)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(format!("reading the retries waiting for {provisioner}")))?;
        let queued = if waiting.iter().any(|(k, n)| k == object_kind && n == object_name) {
            RetryQueued::AlreadyWaiting
        } else if waiting.len() >= limit {
            return Ok(RetryQueued::Full);
        } else {
            sqlx::query(
                "INSERT INTO console_request (provisioner, kind, object_kind, object_name, requested_by, requested_at_ms) VALUES ($1, 'retry', $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(provisioner)
            .bind(object_kind)
            .bind(object_name)
            .bind(who)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(db(format!("recording the retry of {object} requested for {provisioner}")))?;
            RetryQueued::Queued
        };
        Audit::<DB>::append_in(&mut tx, &[action_record(provisioner, who, "retry", &format!("retry of {object} requested"))]).await?;
        Self::commit(tx).await?;
        Ok(queued)
    }

    async fn console_requests(&self, provisioner: &str) -> Result<Vec<ConsoleRequest>> {
        let rows: Vec<RequestRow> = sqlx::query_as(
            "SELECT id, kind, object_kind, object_name, requested_by, requested_at_ms, claimed_at_ms FROM console_request WHERE provisioner = $1 ORDER BY id",
        )
        .bind(provisioner)
        .fetch_all(self.pool())
        .await
        .map_err(db(format!("reading the console requests of {provisioner}")))?;
        rows.into_iter().map(|r| request_of(provisioner, r)).collect()
    }

    async fn claim_full_syncs(&self, provisioner: &str, up_to: i64) -> Result<()> {
        // A claimed request left by a run cut short is taken up again: its claim is renewed.
        sqlx::query("UPDATE console_request SET claimed_at_ms = $3 WHERE provisioner = $1 AND kind = 'full-sync' AND id <= $2")
            .bind(provisioner)
            .bind(up_to)
            .bind(now_ms())
            .execute(self.pool())
            .await
            .map_err(db(format!("taking up the full sync requested for {provisioner}")))?;
        Ok(())
    }

    async fn finish_full_syncs(&self, provisioner: &str, up_to: i64) -> Result<u64> {
        // Only what the run took up: a request made during the run waits for the next.
        let done = sqlx::query("DELETE FROM console_request WHERE provisioner = $1 AND kind = 'full-sync' AND id <= $2 AND claimed_at_ms IS NOT NULL")
            .bind(provisioner)
            .bind(up_to)
            .execute(self.pool())
            .await
            .map_err(db(format!("closing the full sync requested for {provisioner}")))?;
        Ok(DB::rows_affected(&done))
    }

    async fn finish_retry(&self, provisioner: &str, id: i64, who: &str, outcome: &str) -> Result<bool> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await.map_err(db("starting to close a retry"))?;
        let done = sqlx::query("DELETE FROM console_request WHERE provisioner = $1 AND id = $2 AND kind = 'retry'")
            .bind(provisioner)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("closing a retry of {provisioner}")))?;
        if DB::rows_affected(&done) == 0 {
            return Ok(false);
        }
        Audit::<DB>::append_in(&mut tx, &[action_record(provisioner, who, "retried", outcome)]).await?;
        Self::commit(tx).await?;
        Ok(true)
    }

    async fn save_refused_plan(&self, plan: &RefusedPlan) -> Result<()> {
        let p = &plan.provisioner;
        let kept: Vec<&String> = plan.removals.iter().take(REFUSAL_REMOVALS_KEPT).collect();
        // Lists of text always encode.
        let reasons = serde_json::to_string(&plan.reasons).unwrap_or_else(|_| "[]".into());
        let removals = serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into());
        let count = plan.removal_count.max(plan.removals.len() as i64);
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await.map_err(db("starting to keep a refused plan"))?;
        sqlx::query("DELETE FROM console_refusal WHERE provisioner = $1")
            .bind(p.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db(format!("replacing the refused plan of {p}")))?;
        sqlx::query(
            "INSERT INTO console_refusal (provisioner, kind, digest, reasons_json, removals_json, removal_count, refused_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(p.as_str())
        .bind(plan.kind.as_str())
        .bind(plan.digest.as_str())
        .bind(reasons)
        .bind(removals)
        .bind(count)
        .bind(plan.at_ms)
        .execute(&mut *tx)
        .await
        .map_err(db(format!("keeping the refused plan of {p}")))?;
        Self::commit(tx).await
    }

    async fn refused_plan(&self, provisioner: &str) -> Result<Option<RefusedPlan>> {
        let row: Option<(String, String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT kind, digest, reasons_json, removals_json, removal_count, refused_at_ms FROM console_refusal WHERE provisioner = $1",
        )
        .bind(provisioner)
        .fetch_optional(self.pool())
        .await
        .map_err(db(format!("reading the refused plan of {provisioner}")))?;
        let Some((kind, digest, reasons, removals, removal_count, at_ms)) = row else { return Ok(None) };
        Ok(Some(RefusedPlan {
            provisioner: provisioner.to_owned(),
            at_ms,
            kind,
            reasons: json_list(provisioner, "reasons", &reasons)?,
            removals: json_list(provisioner, "removals", &removals)?,
            removal_count,
            digest,
        }))
    }

    async fn clear_refused_plan(&self, provisioner: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM console_refusal WHERE provisioner = $1")
            .bind(provisioner)
            .execute(self.pool())
            .await
            .map_err(db(format!("clearing the refused plan of {provisioner}")))?;
        Ok(DB::rows_affected(&done) > 0)
    }
}
}
