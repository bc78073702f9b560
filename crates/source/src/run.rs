//! One run of a source against the registry: read what the source owns, diff it against the
//! snapshot, check the safety rules, and apply the changes in one transaction (or only show them,
//! with `dry_run`); every run that reaches the registry is recorded for `duoprov source status`,
//! and every change it applies is appended to the audit log (by `actor`, with the approved digest).

use duoprov_model::{MirrorChanges, MirrorScope, SourceRun};
use duoprov_registry::{AuditActor, AuditTrigger, MirrorStore};
use serde::Serialize;

use crate::mirror::{self, Refusal, SourceSnapshot, Thresholds};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Applied,
    Unchanged,
    DryRun,
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Unchanged => "unchanged",
            Outcome::DryRun => "dry-run",
            Outcome::Refused => "refused",
        }
    }
}

/// Counts of a run's changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub subjects_added: usize,
    pub subjects_updated: usize,
    pub subjects_removed: usize,
    pub groups_added: usize,
    pub groups_updated: usize,
    pub groups_removed: usize,
    pub members_added: usize,
    pub members_removed: usize,
}

impl Counts {
    pub fn of(c: &MirrorChanges) -> Self {
        Counts {
            subjects_added: c.subjects_added.len(),
            subjects_updated: c.subjects_updated.len(),
            subjects_removed: c.subjects_removed.len(),
            groups_added: c.groups_added.len(),
            groups_updated: c.groups_updated.len(),
            groups_removed: c.groups_removed.len(),
            members_added: c.members_added.len(),
            members_removed: c.members_removed.len(),
        }
    }
}

/// What a run did, for people (`message`) and for `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub outcome: Outcome,
    pub counts: Counts,
    pub changes: MirrorChanges,
    /// What the source held that could not be mirrored (a member naming nothing).
    pub problems: Vec<String>,
    pub removals: Vec<String>,
    pub removal_digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
}

/// A run that could not be completed; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("source {source_name} cannot be mirrored; nothing was changed:\n  - {}", .problems.join("\n  - "))]
    Invalid { source_name: String, problems: Vec<String> },
    #[error("source {source_name}: {error}")]
    Registry { source_name: String, error: duoprov_registry::RegistryError },
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Mirrors `snapshot` into the registry for `scope`.
#[allow(clippy::too_many_arguments)]
pub async fn mirror(
    store: &dyn MirrorStore,
    scope: &MirrorScope,
    snapshot: &SourceSnapshot,
    thresholds: &Thresholds,
    approve: Option<&str>,
    dry_run: bool,
    actor: &AuditActor,
) -> Result<Report, RunError> {
    let registry = |error| RunError::Registry { source_name: scope.source.clone(), error };
    let owned = store.mirror_owned(scope).await.map_err(registry)?;
    let diff = match mirror::diff(scope, &owned, snapshot) {
        Ok(d) => d,
        Err(problems) => {
            let err = RunError::Invalid { source_name: scope.source.clone(), problems };
            record_failure(store, &scope.source, &err.to_string()).await;
            return Err(err);
        }
    };
    let checked = mirror::check(&scope.source, &owned, snapshot, &diff.changes, thresholds, approve);
    let mut report = Report {
        source: scope.source.clone(),
        outcome: Outcome::Unchanged,
        counts: Counts::of(&diff.changes),
        removals: mirror::removals(&diff.changes),
        removal_digest: mirror::removal_digest(&scope.source, &diff.changes),
        changes: diff.changes,
        problems: diff.problems,
        refusal: None,
    };
    if dry_run {
        report.outcome = Outcome::DryRun;
        report.refusal = checked.err();
        return Ok(report);
    }
    if let Err(refusal) = checked {
        report.outcome = Outcome::Refused;
        report.refusal = Some(refusal);
        record(store, &report).await;
        return Ok(report);
    }
    if !report.changes.is_empty() {
        let trigger = AuditTrigger { approval: approve.map(str::to_owned), ..AuditTrigger::new(actor) };
        if let Err(error) = store.apply_mirror(scope, &owned, &report.changes, &trigger).await {
            let err = registry(error);
            record_failure(store, &scope.source, &err.to_string()).await;
            return Err(err);
        }
        report.outcome = Outcome::Applied;
    }
    record(store, &report).await;
    Ok(report)
}

async fn record(store: &dyn MirrorStore, report: &Report) {
    let detail = serde_json::json!({"counts": report.counts, "problems": report.problems, "removal_digest": report.removal_digest});
    let run = SourceRun { source: report.source.clone(), at_ms: now_ms(), result: report.outcome.as_str().to_string(), detail };
    if let Err(e) = store.record_source_run(&run).await {
        tracing::warn!(source = %report.source, error = %e, "The run of the source could not be recorded for `duoprov source status`.");
    }
}

/// Records a run that failed (the source unreadable, the registry refusing), with its message.
pub async fn record_failure(store: &dyn MirrorStore, source: &str, message: &str) {
    let run = SourceRun { source: source.to_string(), at_ms: now_ms(), result: "failed".into(), detail: serde_json::json!({"error": message}) };
    if let Err(e) = store.record_source_run(&run).await {
        tracing::warn!(source, error = %e, "The failed run of the source could not be recorded for `duoprov source status`.");
    }
}
