//! The `source_feed` table over SQL: each source's change-feed state as the daemon last recorded
//! it (see [`crate::source_feed`]).

use super::*;
use crate::source_feed::{SourceFeedState, SourceFeedStore};

type Row = (String, String, Option<i64>, i64, Option<i64>, Option<String>, i64);

sql_impl! {
#[async_trait]
impl SourceFeedStore for SqlStore<DB> {
    async fn record_source_feed(&self, state: &SourceFeedState) -> Result<()> {
        sqlx::query::<DB>(
            "INSERT INTO source_feed (source, mode, connected, since_ms, error, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (source) DO UPDATE SET mode = excluded.mode, connected = excluded.connected, since_ms = excluded.since_ms, \
             error = excluded.error, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(&state.source)
        .bind(&state.mode)
        .bind(state.connected.map(i64::from))
        .bind(state.since_ms)
        .bind(state.error.as_deref())
        .bind(state.updated_at_ms)
        .execute(self.pool())
        .await
        .map_err(db(format!("recording the change feed of source {}", state.source)))?;
        Ok(())
    }

    async fn record_source_feed_change(&self, source: &str, at_ms: i64) -> Result<()> {
        sqlx::query::<DB>("UPDATE source_feed SET last_change_ms = $1, updated_at_ms = $1 WHERE source = $2")
            .bind(at_ms)
            .bind(source)
            .execute(self.pool())
            .await
            .map_err(db(format!("recording a change reported by the feed of source {source}")))?;
        Ok(())
    }

    async fn source_feeds(&self) -> Result<Vec<SourceFeedState>> {
        let rows: Vec<Row> = sqlx::query_as::<DB, Row>(
            "SELECT source, mode, connected, since_ms, last_change_ms, error, updated_at_ms FROM source_feed ORDER BY source",
        )
        .fetch_all(self.pool())
        .await
        .map_err(db("reading the change feeds of sources"))?;
        rows.into_iter()
            .map(|(source, mode, connected, since_ms, last_change_ms, error, updated_at_ms)| {
                let connected = match connected {
                    None => None,
                    Some(0) => Some(false),
                    Some(1) => Some(true),
                    Some(other) => return Err(RegistryError::Refused(format!("the recorded change feed of source {source}: connected is {other}, not 0 or 1"))),
                };
                Ok(SourceFeedState { source, mode, connected, since_ms, last_change_ms, error, updated_at_ms })
            })
            .collect()
    }
}
}
