//! The daemon's housekeeping: once an hour (the first time a minute after start) it prunes the
//! registry's change log and run log to their retention ([`Keep`]), logs what went, and warns
//! when a provisioner that has fallen behind holds the change log back. Pruning is idempotent,
//! so two daemons on one PostgreSQL registry may both do it.

use std::sync::Arc;
use std::time::Duration;

use duoprov_registry::Retention;
use tokio::sync::watch;

use crate::clock::Clock;

/// How long the registry keeps its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Change-log entries every provisioner has consumed (`daemon.keep_change_log`, 30 days).
    pub change_log: Duration,
    /// Finished runs in the run log (`daemon.keep_runs`, 90 days).
    pub runs: Duration,
}

impl Default for Keep {
    fn default() -> Self {
        Keep { change_log: Duration::from_secs(30 * 86_400), runs: Duration::from_secs(90 * 86_400) }
    }
}

/// The wait before the first pruning, and between prunings.
pub const FIRST_PRUNE: Duration = Duration::from_secs(60);
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Prunes `store` every [`PRUNE_EVERY`] until `stop` turns true.
pub async fn prune_loop(store: Arc<dyn Retention>, keep: Keep, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    let mut wait = FIRST_PRUNE;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        wait = PRUNE_EVERY;
        let now = clock.now_ms();
        let before = |d: Duration| now.saturating_sub(d.as_millis() as i64);
        match store.prune(before(keep.change_log), before(keep.runs)).await {
            Ok(p) => {
                if p.change_log_entries > 0 || p.runs > 0 {
                    tracing::info!(change_log_entries = p.change_log_entries, runs = p.runs, "Pruned the registry's logs past their retention.");
                }
                if let Some((provisioner, seq)) = p.held_by {
                    tracing::debug!(provisioner = %provisioner, checkpoint = seq, "Change-log entries after this provisioner's checkpoint are kept for it.");
                }
            }
            Err(e) => tracing::warn!(error = %e, "Cannot prune the registry's logs; trying again in an hour."),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use duoprov_registry::Pruned;

    use super::*;
    use crate::clock::TokioClock;

    const START_MS: i64 = 1_796_007_540_000;
    const DAY_MS: i64 = 86_400_000;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(i64, i64)>>);

    #[async_trait]
    impl Retention for Recorder {
        async fn prune(&self, change_log_before_ms: i64, runs_before_ms: i64) -> duoprov_registry::Result<Pruned> {
            self.0.lock().unwrap().push((change_log_before_ms, runs_before_ms));
            Ok(Pruned::default())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_logs_are_pruned_a_minute_after_start_then_hourly_to_their_retention() {
        let clock = TokioClock::starting_at(START_MS);
        let recorder = Arc::new(Recorder::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let keep = Keep { change_log: Duration::from_secs(2 * 86_400), runs: Duration::from_secs(7 * 86_400) };
        let task = tokio::spawn(prune_loop(recorder.clone(), keep, Arc::new(clock), stop_rx));
        tokio::time::sleep(Duration::from_secs(2 * 3600 + 120)).await;
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        let calls = recorder.0.lock().unwrap().clone();
        let at = |ms: i64| (START_MS + ms - 2 * DAY_MS, START_MS + ms - 7 * DAY_MS);
        assert_eq!(calls, vec![at(60_000), at(3_660_000), at(7_260_000)]);
    }
}
