//! [`RenderedReport`] over SQL: `rendered_state` (0018) by its key, and the Duo users without a
//! username key through the partial index `duo_user_unkeyed` (0019).

use super::*;
use crate::rendered_report::{RenderedReport, RenderedReportState};

sql_impl! {
#[async_trait]
impl RenderedReport for SqlStore<DB> {
    async fn rendered_report_state(&self, provisioner: &str) -> Result<RenderedReportState> {
        let context = || format!("reading the state of the rendered usernames of {provisioner}");
        let recorded: Option<(String, i64)> = sqlx::query_as("SELECT fingerprint, at_ms FROM rendered_state WHERE provisioner = $1")
            .bind(provisioner)
            .fetch_optional(self.pool())
            .await
            .map_err(db(context()))?;
        let unkeyed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM duo_user WHERE config_id = $1 AND user_name_key IS NULL")
            .bind(provisioner)
            .fetch_one(self.pool())
            .await
            .map_err(db(context()))?;
        Ok(RenderedReportState { fingerprint: recorded.as_ref().map(|r| r.0.clone()), recorded_at_ms: recorded.map(|r| r.1), unkeyed_duo_users: unkeyed })
    }
}
}
