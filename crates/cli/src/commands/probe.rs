//! `duoprov doctor --probe` and its record: running the sandbox probe
//! ([`duoprov_duo::probe`]), keeping its report in the registry per Duo account (`api_host` and
//! integration key), showing a recorded report with its age, and handing it to the clients of
//! that account before they write ([`use_recorded`]).

use anyhow::{Context as _, Result};
use duoprov_duo::{DuoClient, ProbeReport};
use duoprov_registry::{DuoProbeStore, ProbeRecord, Store};
use serde_json::{Value, json};

/// The recorded probe of `duo`'s account, if any: when it ran and what it found.
pub async fn recorded(store: &dyn DuoProbeStore, duo: &DuoClient) -> Result<Option<(i64, ProbeReport)>> {
    let cfg = duo.config();
    let Some(record) = store.duo_probe(&cfg.api_host, &cfg.integration_key).await? else { return Ok(None) };
    let report: ProbeReport = serde_json::from_str(&record.result)
        .with_context(|| format!("the recorded probe of Duo {} is not a probe report; run `duoprov doctor --probe` again", cfg.api_host))?;
    Ok(Some((record.probed_at_ms, report)))
}

/// Hands the recorded probe of `duo`'s account to the client (see [`DuoClient::apply_probe`]),
/// logging what it changes. A probe that cannot be read is logged and ignored: the client then
/// finds out for itself, as without a probe.
pub async fn use_recorded(store: &dyn DuoProbeStore, duo: &DuoClient) {
    match recorded(store, duo).await {
        Ok(Some((at_ms, report))) => {
            if duo.apply_probe(&report) {
                tracing::info!(api_host = %duo.config().api_host, probed = %age(at_ms), effect = %effect(&report), "Using the recorded probe of this Duo account.");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "The recorded probe of this Duo account is ignored."),
    }
}

/// Runs the probe on `duo` and records it in `store` (when there is one); the check rows
/// (failed steps, objects left behind, the record) and the report.
pub async fn run(store: Option<&dyn Store>, duo: &DuoClient) -> (Vec<(String, Result<String>)>, ProbeReport, i64) {
    let report = duoprov_duo::probe::probe(duo, &duoprov_duo::probe::fresh_tag()).await;
    let at_ms = duoprov_sync::now_ms();
    let mut checks = Vec::new();
    for f in &report.failures {
        checks.push(("probe step".to_owned(), Err(anyhow::anyhow!("{f}"))));
    }
    if report.left_behind.is_empty() {
        checks.push(("probe clean-up".to_owned(), Ok(format!("every object named duoprov-probe-{} / Duoprov-Probe-{}-X was deleted", report.tag, report.tag))));
    } else {
        for left in &report.left_behind {
            checks.push(("probe clean-up".to_owned(), Err(anyhow::anyhow!("could not delete {left}; delete it in the Duo Admin Panel"))));
        }
    }
    let cfg = duo.config();
    let record = match (store, serde_json::to_string(&report)) {
        (Some(store), Ok(result)) => store
            .record_duo_probe(&cfg.api_host, &cfg.integration_key, &ProbeRecord { probed_at_ms: at_ms, result })
            .await
            .map(|()| format!("recorded for Duo {}; syncs of this account now {}", cfg.api_host, effect(&report)))
            .map_err(|e| anyhow::anyhow!("could not record the probe: {e}")),
        (None, _) => Err(anyhow::anyhow!("could not record the probe: the registry is not available (see above)")),
        (_, Err(e)) => Err(anyhow::anyhow!("could not record the probe: {e}")),
    };
    checks.push(("probe record".to_owned(), record));
    (checks, report, at_ms)
}

/// What a client does with `report` (see [`DuoClient::apply_probe`]).
pub fn effect(report: &ProbeReport) -> String {
    let bulk = if report.bulk_add.fails() {
        "send membership and user writes as single calls (bulk did not add a membership)"
    } else if report.bulk_remove.fails() {
        "send membership removals as single calls (bulk did not remove a membership)"
    } else {
        "use bulk as configured (no bulk failure found)"
    };
    let usernames = match &report.usernames {
        Some(u) if u.case_sensitive() => "match usernames exactly (a lookup by another case missed the user)",
        Some(_) => "match usernames case-insensitively",
        None => "hold Duo users differing from a registry username only in case (the username step did not run)",
    };
    format!("{bulk}, and {usernames}")
}

/// `N s|min|h|d ago` for a time in milliseconds since the epoch.
pub fn age(at_ms: i64) -> String {
    let secs = ((duoprov_sync::now_ms() - at_ms) / 1000).max(0);
    match secs {
        s if s < 120 => format!("{s} s ago"),
        s if s < 2 * 3600 => format!("{} min ago", s / 60),
        s if s < 2 * 86400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86400),
    }
}

/// The readings of `report` as `(name, detail)` lines, with what duoprov does about each.
pub fn readings(report: &ProbeReport) -> Vec<(String, String)> {
    let mut out = vec![
        ("bulk add".to_owned(), report.bulk_add.describe()),
        ("bulk remove".to_owned(), report.bulk_remove.describe()),
        ("single add".to_owned(), report.single_add.describe()),
        ("single remove".to_owned(), report.single_remove.describe()),
    ];
    match &report.usernames {
        Some(u) => out.push(("usernames".to_owned(), u.describe())),
        None => out.push(("usernames".to_owned(), "not found out (see the failed step)".to_owned())),
    }
    match &report.group_names {
        Some(g) => out.push(("group names".to_owned(), g.describe())),
        None => out.push(("group names".to_owned(), "not found out (see the failed step)".to_owned())),
    }
    out.push(("effect".to_owned(), format!("syncs of this account {}", effect(report))));
    out
}

/// The JSON form of a probe: when, how long ago, the report and its effect.
pub fn to_json(at_ms: i64, report: &ProbeReport) -> Value {
    json!({"probed_at_ms": at_ms, "age": age(at_ms), "report": report, "effect": effect(report)})
}
