//! The `duo_probe` table over SQL.

use async_trait::async_trait;


use super::SqlStore;
use crate::duo_probe::{DuoProbeStore, ProbeRecord};
use crate::error::{RegistryError, Result};

sql_impl! {
#[async_trait]
impl DuoProbeStore for SqlStore<DB> {
    async fn record_duo_probe(&self, api_host: &str, integration_key: &str, record: &ProbeRecord) -> Result<()> {
        sqlx::query::<DB>(
            "INSERT INTO duo_probe (api_host, integration_key, probed_at_ms, result) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (api_host, integration_key) DO UPDATE SET probed_at_ms = excluded.probed_at_ms, result = excluded.result",
        )
        .bind(api_host)
        .bind(integration_key)
        .bind(record.probed_at_ms)
        .bind(&record.result)
        .execute(self.pool())
        .await
        .map_err(RegistryError::db(format!("recording the probe of Duo {api_host}")))?;
        Ok(())
    }

    async fn duo_probe(&self, api_host: &str, integration_key: &str) -> Result<Option<ProbeRecord>> {
        let row: Option<(i64, String)> =
            sqlx::query_as::<DB, _>("SELECT probed_at_ms, result FROM duo_probe WHERE api_host = $1 AND integration_key = $2")
                .bind(api_host)
                .bind(integration_key)
                .fetch_optional(self.pool())
                .await
                .map_err(RegistryError::db(format!("reading the probe of Duo {api_host}")))?;
        Ok(row.map(|(probed_at_ms, result)| ProbeRecord { probed_at_ms, result }))
    }
}
}
