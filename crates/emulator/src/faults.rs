//! Faults on demand: 429, 500 and 503 answers, added latency and connection resets, chosen per
//! endpoint by probability or by call count, deterministic from a seed.
//!
//! Spec syntax (`--faults SPEC`, `PUT /_emulator/faults`): rules separated by `;`, each an action
//! followed by space-separated modifiers; an optional `seed=N` item seeds the random choices.
//!
//! ```text
//! spec     = item *( ";" item )
//! item     = "seed=" u64 | rule | ""
//! rule     = action *( " " modifier )
//! action   = "429" | "500" | "503" | "reset" | "latency=" duration | "latency=" range
//! modifier = "on=" pattern *( "," pattern )   endpoint names; a trailing "*" matches a prefix
//!          | "p=" float                       fire with this probability (0..=1)
//!          | "every=" n                       fire on the n-th, 2n-th, … matching call
//!          | "after=" n                       ignore the first n matching calls
//!          | "first=" n                       fire only on the first n (counted after `after`)
//!          | "times=" n                       fire at most n times in total
//! duration = integer ( "ms" | "s" )
//! range    = integer [ "ms" | "s" ] ".." duration   both ends included; a bare low end takes the high end's unit
//! ```
//!
//! Example: `seed=7; 429 every=3 on=users.list; 500 p=0.05; latency=200ms on=groups.*; reset first=1 on=users.create`.
//! `latency=0..20ms` waits a different time on every call it fires on, drawn uniformly (to the
//! microsecond) from the rule's own seeded generator, so the same seed gives the same latencies
//! for the same sequence of calls.
//! A rule without `on=` applies to every endpoint. Each rule counts the calls it matches; for one
//! call, all firing latency rules add up and the first firing answer rule (429/500/503/reset)
//! wins. Faults are decided after authentication and before rate limiting, so an injected 429
//! uses no rate-limit token.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::error::Error;

/// What an answer fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 429/42901.
    TooManyRequests,
    /// 500/50001.
    InternalError,
    /// 503/50301.
    Unavailable,
    /// TCP reset, no response.
    Reset,
}

impl Outcome {
    /// Short name for the call log.
    pub fn name(self) -> &'static str {
        match self {
            Self::TooManyRequests => "429",
            Self::InternalError => "500",
            Self::Unavailable => "503",
            Self::Reset => "reset",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Answer(Outcome),
    /// Wait between the two durations (equal for a fixed latency).
    Latency(Duration, Duration),
}

/// One parsed rule with its counters.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    text: String,
    #[serde(skip)]
    action: Action,
    #[serde(skip)]
    on: Vec<String>,
    #[serde(skip)]
    p: Option<f64>,
    #[serde(skip)]
    every: Option<u64>,
    #[serde(skip)]
    after: u64,
    #[serde(skip)]
    first: Option<u64>,
    #[serde(skip)]
    times: Option<u64>,
    /// Calls this rule matched.
    matched: u64,
    /// Times it fired.
    fired: u64,
    #[serde(skip)]
    rng: Option<StdRng>,
}

impl Rule {
    fn applies_to(&self, endpoint: &str) -> bool {
        self.on.is_empty()
            || self.on.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => endpoint.starts_with(prefix),
                None => p == endpoint,
            })
    }

    fn fires(&mut self) -> bool {
        self.matched += 1;
        let n = self.matched;
        if n <= self.after {
            return false;
        }
        let k = n - self.after;
        if let Some(first) = self.first
            && k > first
        {
            return false;
        }
        if let Some(every) = self.every
            && (every == 0 || !k.is_multiple_of(every))
        {
            return false;
        }
        if let Some(times) = self.times
            && self.fired >= times
        {
            return false;
        }
        if let Some(p) = self.p {
            let roll: f64 = match self.rng.as_mut() {
                Some(r) => r.random(),
                None => 0.0,
            };
            if roll >= p {
                return false;
            }
        }
        self.fired += 1;
        true
    }
}

/// A parsed fault spec with per-rule counters.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Faults {
    spec: String,
    seed: u64,
    rules: Vec<Rule>,
}

/// What to do with one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decision {
    /// Latency to add before answering.
    pub latency: Duration,
    /// An answer to give instead of the real one.
    pub outcome: Option<Outcome>,
}

fn parse_duration(s: &str) -> Option<Duration> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if let Some(secs) = s.strip_suffix('s') {
        return secs.parse().ok().map(Duration::from_secs);
    }
    None
}

/// `DUR` or `LOW..HIGH` (a bare `LOW` takes `HIGH`'s unit), low end first.
fn parse_latency(s: &str) -> Option<(Duration, Duration)> {
    let Some((low, high)) = s.split_once("..") else {
        let d = parse_duration(s)?;
        return Some((d, d));
    };
    let high_d = parse_duration(high)?;
    let low_d = if low.bytes().all(|b| b.is_ascii_digit()) && !low.is_empty() {
        let unit = if high.ends_with("ms") { "ms" } else { "s" };
        parse_duration(&format!("{low}{unit}"))?
    } else {
        parse_duration(low)?
    };
    (low_d <= high_d).then_some((low_d, high_d))
}

impl Faults {
    /// Parses a spec (see the module docs).
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let bad = |m: String| Error::FaultSpec(m);
        let mut seed = 0u64;
        let mut rules = Vec::new();
        for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some(v) = item.strip_prefix("seed=") {
                seed = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("bad seed {v:?}")))?;
                continue;
            }
            let mut words = item.split_whitespace();
            let head = words.next().unwrap_or("");
            let action = match head {
                "429" => Action::Answer(Outcome::TooManyRequests),
                "500" => Action::Answer(Outcome::InternalError),
                "503" => Action::Answer(Outcome::Unavailable),
                "reset" => Action::Answer(Outcome::Reset),
                other => match other.strip_prefix("latency=") {
                    Some(d) => {
                        let (low, high) = parse_latency(d).ok_or_else(|| {
                            bad(format!(
                                "bad duration {d:?} (use 250ms, 2s, or a range such as 0..20ms)"
                            ))
                        })?;
                        Action::Latency(low, high)
                    }
                    None => {
                        return Err(bad(format!(
                            "unknown action {other:?} (expected 429, 500, 503, reset, latency=DUR)"
                        )));
                    }
                },
            };
            let mut rule = Rule {
                text: item.to_owned(),
                action,
                on: Vec::new(),
                p: None,
                every: None,
                after: 0,
                first: None,
                times: None,
                matched: 0,
                fired: 0,
                rng: None,
            };
            for w in words {
                let (k, v) = w
                    .split_once('=')
                    .ok_or_else(|| bad(format!("modifier {w:?} is not key=value")))?;
                let num = |v: &str| {
                    v.parse::<u64>()
                        .map_err(|_| bad(format!("{k}: {v:?} is not a whole number")))
                };
                match k {
                    "on" => {
                        rule.on = v
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    }
                    "p" => {
                        let p: f64 = v
                            .parse()
                            .map_err(|_| bad(format!("p: {v:?} is not a number")))?;
                        if !(0.0..=1.0).contains(&p) {
                            return Err(bad(format!("p: {p} is not between 0 and 1")));
                        }
                        rule.p = Some(p);
                    }
                    "every" => {
                        let n = num(v)?;
                        if n == 0 {
                            return Err(bad("every: must be at least 1".into()));
                        }
                        rule.every = Some(n);
                    }
                    "after" => rule.after = num(v)?,
                    "first" => rule.first = Some(num(v)?),
                    "times" => rule.times = Some(num(v)?),
                    other => {
                        return Err(bad(format!(
                            "unknown modifier {other:?} (expected on, p, every, after, first, times)"
                        )));
                    }
                }
            }
            rules.push(rule);
        }
        let mut f = Self {
            spec: spec.trim().to_owned(),
            seed,
            rules,
        };
        f.reseed();
        Ok(f)
    }

    fn reseed(&mut self) {
        for (i, r) in self.rules.iter_mut().enumerate() {
            r.rng = Some(StdRng::seed_from_u64(
                self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ));
        }
    }

    /// The spec text.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides the faults for one call to `endpoint`.
    pub fn decide(&mut self, endpoint: &str) -> Decision {
        let mut d = Decision::default();
        for r in &mut self.rules {
            if !r.applies_to(endpoint) || !r.fires() {
                continue;
            }
            match r.action {
                Action::Latency(low, high) if low == high => d.latency += low,
                Action::Latency(low, high) => {
                    let span = u64::try_from((high - low).as_micros()).unwrap_or(u64::MAX);
                    let extra = match r.rng.as_mut() {
                        Some(rng) => rng.random_range(0..=span),
                        None => 0,
                    };
                    d.latency += low + Duration::from_micros(extra);
                }
                Action::Answer(o) => {
                    if d.outcome.is_none() {
                        d.outcome = Some(o);
                    }
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nth_and_scoping() {
        let mut f =
            Faults::parse("429 every=3 on=users.list; latency=5ms on=groups.*").expect("spec");
        let got: Vec<Option<Outcome>> = (0..6).map(|_| f.decide("users.list").outcome).collect();
        assert_eq!(
            got,
            vec![
                None,
                None,
                Some(Outcome::TooManyRequests),
                None,
                None,
                Some(Outcome::TooManyRequests)
            ]
        );
        assert_eq!(f.decide("users.get"), Decision::default());
        assert_eq!(f.decide("groups.create").latency, Duration::from_millis(5));
    }

    #[test]
    fn first_after_times() {
        let mut f = Faults::parse("503 after=1 first=2").expect("spec");
        let got: Vec<bool> = (0..5).map(|_| f.decide("x").outcome.is_some()).collect();
        assert_eq!(got, vec![false, true, true, false, false]);
        let mut f = Faults::parse("reset times=1").expect("spec");
        assert_eq!(f.decide("x").outcome, Some(Outcome::Reset));
        assert_eq!(f.decide("x").outcome, None);
    }

    #[test]
    fn probability_is_deterministic_per_seed() {
        let run = |spec: &str| {
            let mut f = Faults::parse(spec).expect("spec");
            (0..200)
                .map(|_| f.decide("users.list").outcome.is_some())
                .collect::<Vec<_>>()
        };
        let a = run("seed=9; 500 p=0.3");
        assert_eq!(a, run("seed=9; 500 p=0.3"));
        let hits = a.iter().filter(|x| **x).count();
        assert!((20..=100).contains(&hits), "{hits}");
        assert_ne!(a, run("seed=10; 500 p=0.3"));
    }

    #[test]
    fn latency_range_is_drawn_from_the_seed_and_stays_in_bounds() {
        let run = |spec: &str| {
            let mut f = Faults::parse(spec).expect("spec");
            (0..500)
                .map(|_| f.decide("groups.create").latency)
                .collect::<Vec<_>>()
        };
        let a = run("seed=3; latency=0..20ms");
        assert_eq!(
            a,
            run("seed=3; latency=0..20ms"),
            "same seed, same latencies"
        );
        assert_ne!(a, run("seed=4; latency=0..20ms"));
        assert!(a.iter().all(|l| *l <= Duration::from_millis(20)), "{a:?}");
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert!(distinct.len() > 100, "latencies vary: {}", distinct.len());
        let mean = a.iter().sum::<Duration>() / 500;
        assert!(
            (Duration::from_millis(7)..=Duration::from_millis(13)).contains(&mean),
            "{mean:?}"
        );
        // A low end with its own unit, a range in seconds, a one-point range.
        let b = run("latency=5ms..1s on=groups.*");
        assert!(
            b.iter()
                .all(|l| (Duration::from_millis(5)..=Duration::from_secs(1)).contains(l))
        );
        assert!(
            run("latency=1..2s")
                .iter()
                .all(|l| (Duration::from_secs(1)..=Duration::from_secs(2)).contains(l))
        );
        assert!(
            run("latency=7..7ms")
                .iter()
                .all(|l| *l == Duration::from_millis(7))
        );
        // With a probability, the roll and the draw share the rule's generator.
        let c = run("seed=1; latency=10..20ms p=0.5");
        let fired = c.iter().filter(|l| !l.is_zero()).count();
        assert!((150..=350).contains(&fired), "{fired}");
        assert!(
            c.iter()
                .filter(|l| !l.is_zero())
                .all(|l| *l >= Duration::from_millis(10))
        );
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "418",
            "429 every=0",
            "429 p=2",
            "latency=5 on=x",
            "latency=20..5ms",
            "latency=..5ms",
            "latency=5ms..",
            "latency=1..2",
            "latency=a..5ms",
            "429 on",
            "429 colour=red",
            "seed=x",
        ] {
            assert!(Faults::parse(bad).is_err(), "{bad}");
        }
    }
}
