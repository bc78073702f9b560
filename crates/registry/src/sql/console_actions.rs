//! The console's durable state over SQL: actions as audit entries (appended onto the chain under
//! the audit lock, read back through the partial index `audit_log_console`), the approved digest
//! of each provisioner in `console_approval`, and each run's trigger in `sync_run.triggered_by`.

use std::collections::HashMap;

use super::audit::Audit;
use super::*;
use crate::audit::AuditRecord;
use crate::console_actions::{CONSOLE_KIND, ConsoleAction, ConsoleActions, PendingApproval};

/// The audit record of a console action.
pub(super) fn action_record(provisioner: &str, who: &str, action: &str, what: &str) -> AuditRecord {
    AuditRecord {
        actor: format!("console:{who}"),
        provisioner: Some(provisioner.to_owned()),
        object_kind: CONSOLE_KIND.to_owned(),
        object_name: provisioner.to_owned(),
        action: action.to_owned(),
        after: Some(json!({ "what": what })),
        ..Default::default()
    }
}

sql_impl! {
#[async_trait]
impl ConsoleActions for SqlStore<DB> {
    async fn record_console_action(&self, provisioner: &str, who: &str, action: &str, what: &str) -> Result<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await.map_err(db("starting to record a console action"))?;
        Audit::<DB>::append_in(&mut tx, &[action_record(provisioner, who, action, what)]).await?;
        Self::commit(tx).await
    }

    async fn console_actions(&self, provisioner: &str, limit: u32) -> Result<Vec<ConsoleAction>> {
        let rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT at_ms, actor, action, after_json FROM audit_log WHERE provisioner = $1 AND object_kind = 'console' ORDER BY seq DESC LIMIT $2",
        )
        .bind(provisioner)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(db(format!("reading the console actions on {provisioner}")))?;
        rows.into_iter()
            .map(|(at_ms, actor, action, after)| {
                let what = after
                    .as_deref()
                    .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
                    .and_then(|v| v["what"].as_str().map(str::to_owned))
                    .ok_or_else(|| RegistryError::Database {
                        context: format!("reading the console actions on {provisioner}"),
                        source: sqlx::Error::Decode(format!("the console action at {at_ms} ms has no description in the audit trail").into()),
                    })?;
                let who = actor.strip_prefix("console:").unwrap_or(&actor).to_owned();
                Ok(ConsoleAction { at_ms, provisioner: provisioner.to_owned(), who, action, what })
            })
            .collect()
    }

    async fn save_approval(&self, provisioner: &str, digest: &str, who: &str) -> Result<()> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await.map_err(db("starting to save an approval"))?;
        sqlx::query("DELETE FROM console_approval WHERE provisioner = $1")
            .bind(provisioner)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("replacing the approval of {provisioner}")))?;
        sqlx::query("INSERT INTO console_approval (provisioner, digest, approved_by, approved_at_ms) VALUES ($1, $2, $3, $4)")
            .bind(provisioner)
            .bind(digest)
            .bind(who)
            .bind(duoprov_model::EpochMillis::now().0)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("saving the approval of {provisioner}")))?;
        let what = format!("approved the removals with digest {digest}");
        let mut record = action_record(provisioner, who, "approve", &what);
        record.approval = Some(digest.to_owned());
        Audit::<DB>::append_in(&mut tx, &[record]).await?;
        Self::commit(tx).await
    }

    async fn pending_approval(&self, provisioner: &str) -> Result<Option<PendingApproval>> {
        let row: Option<(String, String, i64)> = sqlx::query_as("SELECT digest, approved_by, approved_at_ms FROM console_approval WHERE provisioner = $1")
            .bind(provisioner)
            .fetch_optional(self.pool())
            .await
            .map_err(db(format!("reading the approval of {provisioner}")))?;
        Ok(row.map(|(digest, who, at_ms)| PendingApproval { provisioner: provisioner.to_owned(), digest, who, at_ms }))
    }

    async fn take_approval(&self, provisioner: &str) -> Result<Option<PendingApproval>> {
        let row: Option<(String, String, i64)> =
            sqlx::query_as("DELETE FROM console_approval WHERE provisioner = $1 RETURNING digest, approved_by, approved_at_ms")
                .bind(provisioner)
                .fetch_optional(self.pool())
                .await
                .map_err(db(format!("taking the approval of {provisioner}")))?;
        Ok(row.map(|(digest, who, at_ms)| PendingApproval { provisioner: provisioner.to_owned(), digest, who, at_ms }))
    }

    async fn set_run_trigger(&self, run_id: i64, trigger: &str) -> Result<()> {
        sqlx::query("UPDATE sync_run SET triggered_by = $2 WHERE id = $1")
            .bind(run_id)
            .bind(trigger)
            .execute(self.pool())
            .await
            .map_err(db(format!("recording what triggered run {run_id}")))?;
        Ok(())
    }

    async fn run_triggers(&self, run_ids: &[i64]) -> Result<HashMap<i64, String>> {
        let mut out = HashMap::new();
        for chunk in run_ids.chunks(500) {
            let mut qb = sqlx::QueryBuilder::<DB>::new("SELECT id, triggered_by FROM sync_run WHERE triggered_by IS NOT NULL AND id IN (");
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            qb.push(")");
            let rows: Vec<(i64, String)> = qb.build_query_as().fetch_all(self.pool()).await.map_err(db("reading what triggered the runs"))?;
            out.extend(rows);
        }
        Ok(out)
    }
}
}
