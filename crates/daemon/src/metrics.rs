//! The daemon's metrics, served at `/metrics` in the Prometheus/OpenMetrics text format: runs by
//! type and result, operations by object, action and result, Duo calls by endpoint and status,
//! 429 answers, source runs by result and whether a source's last run was refused, whether a source's change feed is connected and the changes it reported, call latency histograms, per provisioner and call class the attempts, 429s and
//! the client's current and lowest paced rate, change-log lag, and when the last successful full and
//! incremental syncs finished, and whether the registry keeps a refused plan of each provisioner. Duo paths are reduced to endpoints (`{id}` for object ids) so the
//! label sets stay bounded.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use duoprov_sync::RunReport;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    provisioner: String,
    kind: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    provisioner: String,
    object: String,
    action: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: String,
    endpoint: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    method: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceRunLabels {
    source: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProvisionerLabels {
    provisioner: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    provisioner: String,
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    provisioner: String,
    kind: String,
}

fn latency_histogram() -> Histogram {
    // 5 ms … about 20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// Every metric the daemon exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    operations: Family<OperationLabels, Counter>,
    duo_calls: Family<CallLabels, Counter>,
    rate_limited: Family<EndpointLabels, Counter>,
    call_seconds: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    lag_entries: Family<ProvisionerLabels, Gauge>,
    lag_seconds: Family<ProvisionerLabels, Gauge<f64, AtomicU64>>,
    last_success: Family<KindLabels, Gauge<f64, AtomicU64>>,
    holding: Family<ProvisionerLabels, Gauge>,
    refused_plan: Family<ProvisionerLabels, Gauge>,
    class_calls: Family<ClassLabels, Counter>,
    class_rate_limited: Family<ClassLabels, Counter>,
    paced_rate: Family<ClassLabels, Gauge<f64, AtomicU64>>,
    lowest_paced_rate: Family<ClassLabels, Gauge<f64, AtomicU64>>,
    source_runs: Family<SourceRunLabels, Counter>,
    source_refused: Family<SourceLabels, Gauge>,
    source_feed_connected: Family<SourceLabels, Gauge>,
    source_changes_seen: Family<SourceLabels, Counter>,
    /// The client counters last folded into `class_calls` and `class_rate_limited`.
    class_seen: std::sync::Mutex<std::collections::HashMap<ClassLabels, (u64, u64)>>,
    /// Per provisioner, (when, how many) 429s were folded in, for the last hour's count.
    recent_429: std::sync::Mutex<std::collections::HashMap<String, std::collections::VecDeque<(i64, u64)>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `/admin/v1/users/DUXXXXXXXXXXXXXXXXXX/groups/DG…` → `/admin/v1/users/{id}/groups/{id}`.
pub fn endpoint_of(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let id_like = seg.len() == 20 && seg.starts_with('D') && seg.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            if id_like { "{id}" } else { seg }
        })
        .collect::<Vec<_>>()
        .join("/")
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("duoprov");
        let runs = Family::<RunLabels, Counter>::default();
        registry.register("runs", "Sync runs by provisioner, kind (full, incremental) and result", runs.clone());
        let operations = Family::<OperationLabels, Counter>::default();
        registry.register("operations", "Duo operations applied, by object, action and result", operations.clone());
        let duo_calls = Family::<CallLabels, Counter>::default();
        registry.register("duo_calls", "HTTP attempts to the Duo Admin API by endpoint and status (none = no response)", duo_calls.clone());
        let rate_limited = Family::<EndpointLabels, Counter>::default();
        registry.register("duo_rate_limited", "Duo answers 429 (rate limited), by endpoint", rate_limited.clone());
        let call_seconds = Family::<EndpointLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register("duo_call_seconds", "Duration of HTTP attempts to the Duo Admin API", call_seconds.clone());
        let lag_entries = Family::<ProvisionerLabels, Gauge>::default();
        registry.register("change_log_lag_entries", "Registry change-log entries not yet past the provisioner's checkpoint", lag_entries.clone());
        let lag_seconds = Family::<ProvisionerLabels, Gauge<f64, AtomicU64>>::default();
        registry.register("change_log_lag_seconds", "Age of the oldest change-log entry not yet past the checkpoint (0 when none)", lag_seconds.clone());
        let last_success = Family::<KindLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "last_success_timestamp_seconds",
            "When the last successful sync of each kind finished (Unix seconds)",
            last_success.clone(),
        );
        let holding = Family::<ProvisionerLabels, Gauge>::default();
        registry.register("runner_holding", "1 while this daemon holds the provisioner's runner lock, 0 while on standby", holding.clone());
        let refused_plan = Family::<ProvisionerLabels, Gauge>::default();
        registry.register(
            "refused_plan",
            "1 while the registry keeps a plan of the provisioner the safety rules refused (runs are held back until it is approved or a run succeeds), else 0",
            refused_plan.clone(),
        );
        let class_calls = Family::<ClassLabels, Counter>::default();
        registry.register(
            "duo_class_calls",
            "HTTP attempts to the Duo Admin API by provisioner and pacing class (write, single_read, page_read, list_lookup, bulk)",
            class_calls.clone(),
        );
        let class_rate_limited = Family::<ClassLabels, Counter>::default();
        registry.register("duo_class_rate_limited", "Duo answers 429 (rate limited), by provisioner and pacing class", class_rate_limited.clone());
        let paced_rate = Family::<ClassLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "duo_paced_rate_per_minute",
            "Calls per minute the client paces each class at now (lowered by 429s, recovering while Duo is quiet)",
            paced_rate.clone(),
        );
        let lowest_paced_rate = Family::<ClassLabels, Gauge<f64, AtomicU64>>::default();
        registry.register("duo_lowest_paced_rate_per_minute", "The lowest rate each class was paced at since the daemon started", lowest_paced_rate.clone());
        let source_runs = Family::<SourceRunLabels, Counter>::default();
        registry.register("source_runs", "Source runs by source and result (applied, unchanged, refused, failed)", source_runs.clone());
        let source_refused = Family::<SourceLabels, Gauge>::default();
        registry.register("source_refused", "1 while the source's last run was refused by its safety rules (nothing changed), else 0", source_refused.clone());
        let source_feed_connected = Family::<SourceLabels, Gauge>::default();
        registry.register("source_feed_connected", "1 while the source's change feed (LDAP syncrepl) is connected, else 0; absent for sources without one", source_feed_connected.clone());
        let source_changes_seen = Family::<SourceLabels, Counter>::default();
        registry.register("source_changes_seen", "Changes the source's feed (LDAP syncrepl) reported", source_changes_seen.clone());
        Metrics {
            registry,
            source_runs,
            source_refused,
            source_feed_connected,
            source_changes_seen,
            runs,
            operations,
            duo_calls,
            rate_limited,
            call_seconds,
            lag_entries,
            lag_seconds,
            last_success,
            holding,
            refused_plan,
            class_calls,
            class_rate_limited,
            paced_rate,
            lowest_paced_rate,
            class_seen: Default::default(),
            recent_429: Default::default(),
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// A run ended with `result` (`succeeded`, `partial`, `failed` — every write refused with 403 —,
    /// `refused`, `error`).
    pub fn run_finished(&self, provisioner: &str, kind: &str, result: &str, report: Option<&RunReport>, at: Duration) {
        self.runs.get_or_create(&RunLabels { provisioner: provisioner.into(), kind: kind.into(), result: result.into() }).inc();
        if matches!(result, "succeeded" | "partial") {
            self.last_success.get_or_create(&KindLabels { provisioner: provisioner.into(), kind: kind.into() }).set(at.as_secs_f64());
        }
        let Some(r) = report else { return };
        for (object, counts) in [("group", &r.groups), ("user", &r.users), ("membership", &r.memberships)] {
            let (create, delete) = if object == "membership" { ("add", "remove") } else { ("create", "delete") };
            for (action, result, n) in [(create, "ok", counts.created), ("update", "ok", counts.updated), (delete, "ok", counts.deleted), ("any", "failed", counts.failed)] {
                if n > 0 {
                    self.operations
                        .get_or_create(&OperationLabels { provisioner: provisioner.into(), object: object.into(), action: action.into(), result: result.into() })
                        .inc_by(n as u64);
                }
            }
        }
    }

    /// A source run ended with `result` (`applied`, `unchanged`, `refused`, `failed`).
    pub fn source_run(&self, source: &str, result: &str) {
        self.source_runs.get_or_create(&SourceRunLabels { source: source.into(), result: result.into() }).inc();
        self.source_refused.get_or_create(&SourceLabels { source: source.into() }).set(i64::from(result == "refused"));
    }

    /// The source's change feed connected (`true`) or dropped.
    pub fn source_feed(&self, source: &str, connected: bool) {
        self.source_feed_connected.get_or_create(&SourceLabels { source: source.into() }).set(i64::from(connected));
    }

    /// The source's change feed reported a change.
    pub fn source_change_seen(&self, source: &str) {
        self.source_changes_seen.get_or_create(&SourceLabels { source: source.into() }).inc();
    }

    pub fn lag(&self, provisioner: &str, entries: i64, seconds: f64) {
        let l = ProvisionerLabels { provisioner: provisioner.into() };
        self.lag_entries.get_or_create(&l).set(entries);
        self.lag_seconds.get_or_create(&l).set(seconds);
    }

    /// Folds a provisioner's client counters (since the client started) into the per-class
    /// counters and sets its paced-rate gauges. Unpaced classes get no rate gauges.
    pub fn pacing(&self, provisioner: &str, stats: &[duoprov_duo::ClassStats]) {
        let mut seen = self.class_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for s in stats {
            let labels = ClassLabels { provisioner: provisioner.into(), class: s.class.name().into() };
            let (calls, limited) = seen.get(&labels).copied().unwrap_or((0, 0));
            self.class_calls.get_or_create(&labels).inc_by(s.calls.saturating_sub(calls));
            self.class_rate_limited.get_or_create(&labels).inc_by(s.rate_limited.saturating_sub(limited));
            if let (Some(rate), Some(lowest)) = (s.rate_per_minute, s.lowest_per_minute) {
                self.paced_rate.get_or_create(&labels).set(rate);
                self.lowest_paced_rate.get_or_create(&labels).set(lowest);
            }
            let new_429 = s.rate_limited.saturating_sub(limited);
            if new_429 > 0 {
                self.note_429s(provisioner, new_429, duoprov_sync::now_ms());
            }
            seen.insert(labels, (s.calls.max(calls), s.rate_limited.max(limited)));
        }
    }

    /// `n` answers 429 were seen for `provisioner` at `at_ms`.
    pub fn note_429s(&self, provisioner: &str, n: u64, at_ms: i64) {
        let mut recent = self.recent_429.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = recent.entry(provisioner.to_owned()).or_default();
        list.push_back((at_ms, n));
        while list.front().is_some_and(|(t, _)| *t < at_ms - 3_600_000) {
            list.pop_front();
        }
    }

    /// Answers 429 `provisioner`'s client saw in the hour before `now_ms` (as folded in after
    /// each of its loop's ticks).
    pub fn rate_limited_last_hour(&self, provisioner: &str, now_ms: i64) -> u64 {
        let recent = self.recent_429.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.get(provisioner).map(|l| l.iter().filter(|(t, _)| *t > now_ms - 3_600_000).map(|(_, n)| n).sum()).unwrap_or(0)
    }

    /// Whether the registry keeps a refused plan of `provisioner` (read from it at each scrape).
    pub fn refused_plan(&self, provisioner: &str, kept: bool) {
        self.refused_plan.get_or_create(&ProvisionerLabels { provisioner: provisioner.into() }).set(i64::from(kept));
    }

    pub fn holding(&self, provisioner: &str, holding: bool) {
        self.holding.get_or_create(&ProvisionerLabels { provisioner: provisioner.into() }).set(i64::from(holding));
    }
}

impl duoprov_duo::CallObserver for Metrics {
    fn attempt(&self, method: &str, path: &str, status: Option<u16>, elapsed: Duration) {
        let endpoint = endpoint_of(path);
        let status_label = status.map(|s| s.to_string()).unwrap_or_else(|| "none".into());
        self.duo_calls.get_or_create(&CallLabels { method: method.into(), endpoint: endpoint.clone(), status: status_label }).inc();
        let labels = EndpointLabels { method: method.into(), endpoint };
        if status == Some(429) {
            self.rate_limited.get_or_create(&labels).inc();
        }
        self.call_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duoprov_duo::CallObserver;

    #[test]
    fn only_the_last_hours_429s_are_counted() {
        let m = Metrics::new();
        let now = 1_796_007_540_000;
        m.note_429s("p", 4, now - 3_700_000);
        m.note_429s("p", 2, now - 60_000);
        m.note_429s("q", 9, now - 60_000);
        assert_eq!(m.rate_limited_last_hour("p", now), 2);
        assert_eq!(m.rate_limited_last_hour("r", now), 0);
    }

    #[test]
    fn ids_become_placeholders_and_every_family_is_exported() {
        assert_eq!(endpoint_of("/admin/v1/users/DU0123456789ABCDEFGH/groups/DG0123456789ABCDEFGH"), "/admin/v1/users/{id}/groups/{id}");
        assert_eq!(endpoint_of("/admin/v1/users"), "/admin/v1/users");
        assert_eq!(endpoint_of("/admin/v1/users/DU0123456789ABCDEFGH"), "/admin/v1/users/{id}");
        let m = Metrics::new();
        m.attempt("GET", "/admin/v1/users/DU0123456789ABCDEFGH", Some(429), Duration::from_millis(12));
        m.attempt("POST", "/admin/v1/bulk", Some(200), Duration::from_millis(30));
        let report = RunReport { groups: duoprov_sync::report::Counts { created: 2, ..Default::default() }, ..Default::default() };
        m.run_finished("duoTest", "incremental", "succeeded", Some(&report), Duration::from_secs(1_700_000_000));
        m.lag("duoTest", 3, 1.5);
        m.holding("duoTest", true);
        m.refused_plan("duoTest", true);
        let class = |class, calls, limited, rate: Option<f64>, lowest: Option<f64>| duoprov_duo::ClassStats {
            class,
            calls,
            rate_limited: limited,
            ceiling_per_minute: rate.map(|_| 40.0),
            rate_per_minute: rate,
            lowest_per_minute: lowest,
        };
        use duoprov_duo::CallClass::{Bulk, SingleRead};
        m.pacing("duoTest", &[class(Bulk, 7, 2, Some(20.0), Some(10.0)), class(SingleRead, 4, 0, None, None)]);
        // Counters since the client started: only the growth is added.
        m.pacing("duoTest", &[class(Bulk, 9, 3, Some(24.0), Some(10.0)), class(SingleRead, 4, 0, None, None)]);
        let text = m.encode();
        assert_eq!(m.rate_limited_last_hour("duoTest", duoprov_sync::now_ms()), 3, "the 429s of the last hour, for the console");
        assert!(!text.contains("duoprov_duo_paced_rate_per_minute{provisioner=\"duoTest\",class=\"single_read\"}"), "an unpaced class has no rate");
        for needle in [
            "duoprov_runs_total{provisioner=\"duoTest\",kind=\"incremental\",result=\"succeeded\"} 1",
            "duoprov_operations_total{provisioner=\"duoTest\",object=\"group\",action=\"create\",result=\"ok\"} 2",
            "duoprov_duo_calls_total{method=\"GET\",endpoint=\"/admin/v1/users/{id}\",status=\"429\"} 1",
            "duoprov_duo_rate_limited_total{method=\"GET\",endpoint=\"/admin/v1/users/{id}\"} 1",
            "duoprov_duo_call_seconds_bucket{",
            "duoprov_change_log_lag_entries{provisioner=\"duoTest\"} 3",
            "duoprov_last_success_timestamp_seconds{provisioner=\"duoTest\",kind=\"incremental\"} 1700000000",
            "duoprov_runner_holding{provisioner=\"duoTest\"} 1",
            "duoprov_refused_plan{provisioner=\"duoTest\"} 1",
            "duoprov_duo_class_calls_total{provisioner=\"duoTest\",class=\"bulk\"} 9",
            "duoprov_duo_class_calls_total{provisioner=\"duoTest\",class=\"single_read\"} 4",
            "duoprov_duo_class_rate_limited_total{provisioner=\"duoTest\",class=\"bulk\"} 3",
            "duoprov_duo_paced_rate_per_minute{provisioner=\"duoTest\",class=\"bulk\"} 24.0",
            "duoprov_duo_lowest_paced_rate_per_minute{provisioner=\"duoTest\",class=\"bulk\"} 10.0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
