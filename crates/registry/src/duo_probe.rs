//! What `duoprov doctor --probe` found about a Duo account, kept per connection (`api_host` and
//! integration key) in the `duo_probe` table: [`DuoProbeStore`] stores and reads it; the report
//! itself is opaque JSON here (the Duo client defines and reads it).

use async_trait::async_trait;

use crate::error::Result;

/// One recorded probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    /// When the probe ran, in milliseconds since the Unix epoch.
    pub probed_at_ms: i64,
    /// The probe's report, as JSON.
    pub result: String,
}

#[async_trait]
pub trait DuoProbeStore: Send + Sync {
    /// Records a probe of the account at `api_host` seen through `integration_key`, replacing the
    /// previous one.
    async fn record_duo_probe(&self, api_host: &str, integration_key: &str, record: &ProbeRecord) -> Result<()>;

    /// The last probe recorded for that account; `None` when it was never probed.
    async fn duo_probe(&self, api_host: &str, integration_key: &str) -> Result<Option<ProbeRecord>>;
}
