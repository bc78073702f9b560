//! Rate limits per integration and call class (reading one object, reading one page, writing,
//! and optionally bulk calls and id-list lookups in classes of their own), with Duo's published
//! per-minute figures as defaults, a scale factor for tests, and GCRA
//! limiters from `governor`. Over the limit the emulator answers 429/42901 without a
//! `Retry-After` header, as Duo does.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimits;
use crate::routes::RateClass;

/// One keyed limiter per call class, keyed by ikey.
pub struct Limiter {
    enabled: bool,
    read_one: DefaultKeyedRateLimiter<String>,
    read_page: DefaultKeyedRateLimiter<String>,
    write: DefaultKeyedRateLimiter<String>,
    bulk: Option<DefaultKeyedRateLimiter<String>>,
    id_list: Option<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

fn quota(per_min: u32, cfg: &RateLimits) -> Quota {
    let rate_per_min = (f64::from(per_min.max(1)) * cfg.scale).max(1e-6);
    let period = Duration::from_secs_f64((60.0 / rate_per_min).min(86_400.0));
    let burst = match cfg.burst_fraction {
        Some(fraction) => (rate_per_min * fraction)
            .round()
            .clamp(1.0, f64::from(u32::MAX)) as u32,
        None => cfg.burst,
    };
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Limiter {
    /// Builds the limiters from the settings.
    pub fn new(cfg: &RateLimits) -> Self {
        Self {
            enabled: cfg.enabled,
            read_one: RateLimiter::keyed(quota(cfg.read_one_per_min, cfg)),
            read_page: RateLimiter::keyed(quota(cfg.read_page_per_min, cfg)),
            write: RateLimiter::keyed(quota(cfg.write_per_min, cfg)),
            bulk: cfg
                .bulk_per_min
                .map(|n| RateLimiter::keyed(quota(n, cfg))),
            id_list: cfg
                .id_list_per_min
                .map(|n| RateLimiter::keyed(quota(n, cfg))),
        }
    }

    /// Takes one token for `ikey` in `class`; `false` means answer 429.
    pub fn check(&self, ikey: &str, class: RateClass) -> bool {
        if !self.enabled {
            return true;
        }
        let key = ikey.to_owned();
        let limiter = match class {
            RateClass::ReadOne => &self.read_one,
            RateClass::ReadPage => &self.read_page,
            RateClass::Write => &self.write,
            // Without a class of their own, bulk calls are writes and id lists page reads.
            RateClass::Bulk => self.bulk.as_ref().unwrap_or(&self.write),
            RateClass::IdList => self.id_list.as_ref().unwrap_or(&self.read_page),
        };
        limiter.check_key(&key).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_limits_per_key_and_class() {
        let cfg = RateLimits {
            read_page_per_min: 3,
            scale: 1.0,
            burst: 3,
            ..RateLimits::default()
        };
        let l = Limiter::new(&cfg);
        let got: Vec<bool> = (0..4).map(|_| l.check("A", RateClass::ReadPage)).collect();
        assert_eq!(got, vec![true, true, true, false]);
        assert!(l.check("B", RateClass::ReadPage));
        assert!(l.check("A", RateClass::Write));
        let off = Limiter::new(&RateLimits {
            enabled: false,
            read_page_per_min: 1,
            ..RateLimits::default()
        });
        assert!((0..10).all(|_| off.check("A", RateClass::ReadPage)));
    }

    #[test]
    fn bulk_and_id_lists_share_the_write_and_page_buckets_unless_given_their_own() {
        let shared = Limiter::new(&RateLimits {
            write_per_min: 2,
            read_page_per_min: 1,
            burst_fraction: Some(1.0),
            ..RateLimits::default()
        });
        assert!(shared.check("A", RateClass::Bulk));
        assert!(shared.check("A", RateClass::Write));
        assert!(!shared.check("A", RateClass::Bulk), "bulk takes write tokens");
        assert!(shared.check("A", RateClass::IdList));
        assert!(!shared.check("A", RateClass::ReadPage), "id lists take page tokens");
        let own = Limiter::new(&RateLimits {
            write_per_min: 300,
            bulk_per_min: Some(2),
            id_list_per_min: Some(1),
            burst_fraction: Some(1.0),
            ..RateLimits::default()
        });
        assert!(own.check("A", RateClass::Bulk) && own.check("A", RateClass::Bulk));
        assert!(!own.check("A", RateClass::Bulk), "bulk is limited on its own");
        assert!(own.check("A", RateClass::Write), "writes are not");
        assert!(own.check("A", RateClass::IdList));
        assert!(!own.check("A", RateClass::IdList));
        assert!(own.check("A", RateClass::ReadPage));
    }

    #[test]
    fn a_burst_above_the_default_five_is_answered_429_at_any_scale() {
        // At ×10 a token comes back every 20 ms (writes), far longer than six checks take.
        for scale in [1.0, 10.0] {
            let l = Limiter::new(&RateLimits {
                scale,
                ..RateLimits::default()
            });
            for class in [RateClass::Write, RateClass::ReadOne, RateClass::ReadPage] {
                let got: Vec<bool> = (0..6).map(|_| l.check("A", class)).collect();
                assert_eq!(
                    got,
                    vec![true, true, true, true, true, false],
                    "{class:?} at scale {scale}: five at once, the sixth refused"
                );
            }
        }
    }

    #[test]
    fn a_burst_of_one_refuses_a_second_call_at_once_and_a_fraction_overrides_the_count() {
        let one = Limiter::new(&RateLimits {
            burst: 1,
            ..RateLimits::default()
        });
        assert!(one.check("A", RateClass::Write));
        assert!(!one.check("A", RateClass::Write), "no burst: the second call at once is refused");
        let minute = Limiter::new(&RateLimits {
            write_per_min: 30,
            burst: 1,
            burst_fraction: Some(1.0),
            ..RateLimits::default()
        });
        assert!((0..30).all(|_| minute.check("A", RateClass::Write)), "a minute's worth at once");
        assert!(!minute.check("A", RateClass::Write));
    }
}
