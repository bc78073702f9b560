//! The daemon's clock: the wall time its schedules are reckoned in (full syncs at an interval or
//! on a cron expression, reloads of the Duo users table, the refusal back-off). Waiting is done
//! with tokio's timers, so a test runs the daemon's rules in tokio's paused time with a
//! [`TokioClock`], which moves with those timers, instead of sleeping for real.

use std::fmt::Debug;

/// Now, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug {
    fn now_ms(&self) -> i64;
}

/// The system's wall clock (what production uses).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        duoprov_sync::now_ms()
    }
}

/// A wall clock that moves with tokio's clock from a given start: in paused time (tests), it
/// advances exactly as far as the runtime's timers do.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `start_ms` now.
    pub fn starting_at(start_ms: i64) -> TokioClock {
        TokioClock { start_ms, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.start_ms.saturating_add(self.start.elapsed().as_millis() as i64)
    }
}
