//! Whether "not in the registry" by a provisioner's username template can be answered in SQL:
//! the fingerprint of the rendering settings its recorded usernames (`rendered_username`) were
//! made under and when they were last replaced whole, and how many of its loaded Duo users lack
//! their username key (rows loaded before the key was kept). The console compares the
//! fingerprint with the provisioner's current one and renders the template itself when they
//! differ, when none is recorded, or when a row lacks its key.

use async_trait::async_trait;

use crate::error::Result;

/// What the recorded usernames of a provisioner are, for the Duo users report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderedReportState {
    /// The fingerprint the recorded usernames were made under (`None`: none recorded).
    pub fingerprint: Option<String>,
    /// When they were last replaced whole (ms since the epoch); scoped runs update them since.
    pub recorded_at_ms: Option<i64>,
    /// Loaded Duo users of the provisioner without a username key.
    pub unkeyed_duo_users: i64,
}

/// Reads for the Duo users report's "not in the registry" in SQL.
#[async_trait]
pub trait RenderedReport: Send + Sync {
    async fn rendered_report_state(&self, provisioner: &str) -> Result<RenderedReportState>;
}
