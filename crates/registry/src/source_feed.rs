//! The state of each source's change feed (LDAP syncrepl) as the daemon last recorded it, so that
//! `duoprov source status` — run on any host that reaches the registry, with or without access to
//! the daemon's status page — says how the daemon follows the source: `syncrepl` connected, or
//! down since when and why (the daemon polls meanwhile), `polling`, and the last change the feed
//! reported. The daemon writes a row when the state changes, not on every retry, and the last
//! change at most once a second; `updated_at_ms` says how fresh the row is (a daemon that stopped
//! marks its feeds down with the reason; one that crashed leaves its last state, which
//! `updated_at_ms` dates).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One source's feed, as last recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFeedState {
    pub source: String,
    /// `syncrepl` (the daemon follows the feed), `polling` (the source offers none, LDAP
    /// `modifyTimestamp` is asked) or `schedule` (only the scheduled reads).
    pub mode: String,
    /// With `syncrepl`: whether the persistent search is connected.
    pub connected: Option<bool>,
    /// Milliseconds since the epoch when this mode and connection state began (connected since,
    /// down since, polling since).
    pub since_ms: i64,
    /// Milliseconds since the epoch of the last change the feed reported (kept across states).
    pub last_change_ms: Option<i64>,
    /// Why the feed is not connected, while it is not.
    pub error: Option<String>,
    /// When the daemon last wrote this row.
    pub updated_at_ms: i64,
}

/// Where the daemon records its feeds' state.
#[async_trait]
pub trait SourceFeedStore: Send + Sync {
    /// Records `state` for its source (every column but `last_change_ms`, which is kept).
    async fn record_source_feed(&self, state: &SourceFeedState) -> Result<()>;
    /// Records that the feed of `source` reported a change at `at_ms` (no row, no effect).
    async fn record_source_feed_change(&self, source: &str, at_ms: i64) -> Result<()>;
    /// Every recorded feed, by source name.
    async fn source_feeds(&self) -> Result<Vec<SourceFeedState>>;
}
