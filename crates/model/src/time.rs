//! The one time type of sync state: an instant as milliseconds since the Unix epoch. Links,
//! memberships, errors, the run log, the checkpoint and the retry list all record their times in
//! it, so no reader has to remember which column is in which unit. It serialises as the plain
//! integer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// An instant, in milliseconds since the Unix epoch (negative before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EpochMillis(pub i64);

impl EpochMillis {
    /// The current time of the system clock (the epoch itself if the clock reads before it).
    pub fn now() -> EpochMillis {
        EpochMillis::from(SystemTime::now())
    }

    /// The instant `secs` whole seconds after the epoch.
    pub fn from_secs(secs: i64) -> EpochMillis {
        EpochMillis(secs.saturating_mul(1000))
    }

    /// The whole seconds since the epoch, rounded down (the precision Duo reports times in).
    pub fn whole_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// The milliseconds since the epoch.
    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// This instant moved `ms` milliseconds later (saturating).
    pub fn plus_ms(self, ms: i64) -> EpochMillis {
        EpochMillis(self.0.saturating_add(ms))
    }
}

impl From<SystemTime> for EpochMillis {
    fn from(t: SystemTime) -> EpochMillis {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => EpochMillis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(before) => EpochMillis(i64::try_from(before.duration().as_millis()).map(|ms| -ms).unwrap_or(i64::MIN)),
        }
    }
}

impl From<EpochMillis> for SystemTime {
    fn from(t: EpochMillis) -> SystemTime {
        let d = Duration::from_millis(t.0.unsigned_abs());
        if t.0 >= 0 {
            UNIX_EPOCH + d
        } else {
            UNIX_EPOCH - d
        }
    }
}

impl std::fmt::Display for EpochMillis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms since the epoch", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_round_trips_through_system_time_and_serialises_as_the_plain_integer() {
        for ms in [0, 1, 1_700_000_000_123, -1_500] {
            let t = EpochMillis(ms);
            assert_eq!(EpochMillis::from(SystemTime::from(t)), t);
            assert_eq!(serde_json::to_string(&t).unwrap(), ms.to_string());
            assert_eq!(serde_json::from_str::<EpochMillis>(&ms.to_string()).unwrap(), t);
        }
    }

    #[test]
    fn whole_seconds_round_down_so_an_instant_within_a_second_is_not_after_it() {
        assert_eq!(EpochMillis(1_000_999).whole_secs(), 1_000);
        assert_eq!(EpochMillis(-1).whole_secs(), -1);
        assert_eq!(EpochMillis::from_secs(1_000), EpochMillis(1_000_000));
    }
}
