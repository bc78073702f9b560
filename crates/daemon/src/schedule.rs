//! A provisioner's schedule as the daemon keeps it — how often it polls the change log, when full
//! syncs are due (an interval or a cron expression in UTC), how often the Duo users table is
//! reloaded — and the daemon's fixed timing rules: the back-off after a failed run and after a
//! run refused by the safety rules. Pure: times are given, never read.

use std::sync::Arc;
use std::time::Duration;

/// When the daemon runs a provisioner's jobs.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub enabled: bool,
    pub poll_interval: Duration,
    pub full_sync: FullSyncSchedule,
    pub load_users_every: Option<Duration>,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            enabled: true,
            poll_interval: Duration::from_secs(2),
            full_sync: FullSyncSchedule::Every(Duration::from_secs(6 * 3600)),
            load_users_every: None,
        }
    }
}

/// When full syncs run.
#[derive(Debug, Clone)]
pub enum FullSyncSchedule {
    Every(Duration),
    /// A five-field cron expression, evaluated in UTC.
    Cron(Arc<croner::Cron>, String),
}

impl FullSyncSchedule {
    /// When the next full sync is due after one at `after_ms` (milliseconds since the epoch);
    /// `i64::MAX` when a cron expression has no later occurrence.
    pub fn next_after(&self, after_ms: i64) -> i64 {
        match self {
            FullSyncSchedule::Every(d) => after_ms.saturating_add(d.as_millis() as i64),
            FullSyncSchedule::Cron(cron, _) => {
                let after = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(after_ms).unwrap_or_default();
                match cron.find_next_occurrence(&after, false) {
                    Ok(t) => t.timestamp_millis(),
                    Err(_) => i64::MAX,
                }
            }
        }
    }

    /// For the log: `every N s` or `on cron "…" (UTC)`.
    pub fn describe(&self) -> String {
        match self {
            FullSyncSchedule::Every(d) => format!("every {} s", d.as_secs()),
            FullSyncSchedule::Cron(_, expr) => format!("on cron {expr:?} (UTC)"),
        }
    }
}

/// How long a run refused by the safety rules is not retried unless the registry changes.
pub const REFUSAL_BACKOFF: Duration = Duration::from_secs(300);

/// The wait before the next attempt after `failures` failed runs in a row: 2 s, 4 s, … up to 60 s.
pub fn failure_backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(expr: &str) -> FullSyncSchedule {
        let cron = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Disallowed).build().parse(expr).unwrap();
        FullSyncSchedule::Cron(Arc::new(cron), expr.to_owned())
    }

    #[test]
    fn a_cron_full_sync_is_due_at_the_next_matching_minute_in_utc() {
        // 2026-11-30 04:17:00 UTC; "0 3 * * *" is next due 2026-12-01 03:00 UTC.
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-30T04:17:00Z").unwrap().timestamp_millis();
        let due = chrono::DateTime::parse_from_rfc3339("2026-12-01T03:00:00Z").unwrap().timestamp_millis();
        assert_eq!(cron("0 3 * * *").next_after(at), due);
        // Strictly after: a sync at the cron time itself is next due a day later.
        assert_eq!(cron("0 3 * * *").next_after(due), due + 86_400_000);
    }

    #[test]
    fn failed_runs_back_off_doubling_up_to_a_minute() {
        let waits: Vec<u64> = (1..=8).map(|n| failure_backoff(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
