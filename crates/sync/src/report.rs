//! The outcome of a run: what was created, updated, deleted and failed per object type, which
//! objects were held back by plan errors, the digest of the removals it applied, how many Duo
//! calls it took (and per call class: attempts, 429s and the paced rate) and how long each phase took — and from that its status: `succeeded`, `partial`
//! (some objects failed or are held) or `failed` (Duo refused every write with 403: the Admin API
//! application lacks "Grant write resource").

use duoprov_registry::RunStatus;
use serde::Serialize;

/// Counts for one object type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    /// Users disabled instead of deleted (`user_delete_mode = "disable"`); absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub disabled: usize,
    pub failed: usize,
}

impl std::ops::AddAssign for Counts {
    /// Adds another part of the run's counts (every field, so a new one cannot be missed).
    fn add_assign(&mut self, other: Counts) {
        let Counts { created, updated, deleted, disabled, failed } = other;
        self.created += created;
        self.updated += updated;
        self.deleted += deleted;
        self.disabled += disabled;
        self.failed += failed;
    }
}

/// Administrator counts (admin roles): `updated` counts role changes and re-enables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AdminCounts {
    pub created: usize,
    pub updated: usize,
    pub disabled: usize,
    pub deleted: usize,
    /// Existing administrators matched by e-mail and recorded as managed.
    pub adopted: usize,
    pub failed: usize,
}

impl AdminCounts {
    /// A plan's administrator operations, counted.
    pub fn planned(plan: &duoprov_plan::AdminPlan) -> Self {
        use duoprov_plan::AdminOp;
        let mut c = AdminCounts { adopted: plan.adopt.len(), ..Default::default() };
        for op in &plan.ops {
            match op {
                AdminOp::CreateAdmin { .. } => c.created += 1,
                AdminOp::UpdateAdmin { .. } => c.updated += 1,
                AdminOp::DisableAdmin { .. } => c.disabled += 1,
                AdminOp::DeleteAdmin { .. } => c.deleted += 1,
            }
        }
        c
    }

    fn writes(&self) -> usize {
        self.created + self.updated + self.disabled + self.deleted
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The failure code of an object whose write Duo refused with 403 (a missing permission).
pub const FORBIDDEN: &str = "FORBIDDEN";

/// What a failure caused by a missing write permission says, and how to fix it.
pub const WRITE_GRANT_HINT: &str = "the Duo Admin API application lacks 'Grant write resource'; in the Duo Admin Panel open Applications, \
     select the Admin API application duoprov uses, tick 'Grant write resource' under Permissions and save, then check with `duoprov doctor`";

/// One failed (or held) object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub object: String,
    pub code: String,
    pub message: String,
}

/// One call class's share of a run: attempts sent (retries included), how many Duo answered
/// with 429, and the rate the client paces the class at (per minute; `None` when not paced).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClassReport {
    /// `write`, `single_read`, `page_read`, `list_lookup` or `bulk`.
    pub class: String,
    pub calls: u64,
    pub rate_limited: u64,
    /// The configured rate: the most the class is paced at.
    pub ceiling_per_minute: Option<f64>,
    /// The rate at the end of the run.
    pub rate_per_minute: Option<f64>,
    /// The lowest rate since the client started (for `duoprov sync`: this run).
    pub lowest_per_minute: Option<f64>,
}

/// Where a run's time went, on the client's pacing clock (seconds since the client started):
/// the run's phases, and per call class the spans with no call under way, the time calls waited
/// for a token, and the paced rate's changes. Counted by the client as calls begin and end; a
/// benchmark reads it to split the wall time beyond the rate bound into its causes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PacingProfile {
    /// The run's phases, as its timings name them, with each class's idle and token-wait
    /// seconds within each (read and plan: times only).
    pub phases: Vec<PhaseProfile>,
    pub classes: Vec<ClassProfileReport>,
}

/// One phase of a [`PacingProfile`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PhaseProfile {
    pub phase: String,
    pub from_secs: f64,
    pub to_secs: f64,
    /// `(class, idle seconds, token-wait seconds)` within the phase (since the previous phase
    /// ended).
    pub classes: Vec<(String, f64, f64)>,
}

/// One class in a [`PacingProfile`] (see [`duoprov_duo::ClassProfile`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClassProfileReport {
    pub class: String,
    /// The client's clock when the profile was taken.
    pub elapsed_secs: f64,
    /// Seconds of the run with no call of the class under way (the spans below, summed).
    pub idle_secs: f64,
    /// `(from, to)` with no call of the class under way.
    pub idle_spans: Vec<(f64, f64)>,
    /// Seconds of the run with a call of the class waiting for a token (the spans below).
    pub token_wait_secs: f64,
    pub token_wait_spans: Vec<(f64, f64)>,
    /// `(at, rate per minute)` when the run began and at each change since.
    pub rate_timeline: Vec<(f64, f64)>,
    /// Changes of the paced rate during the run.
    pub rate_changes: u64,
}

impl PacingProfile {
    /// The part of the client's profiles since the run's first phase began: spans clipped to
    /// the run, the rate in force when it began, then its changes.
    pub fn new(marks: Vec<(String, f64, f64, Vec<duoprov_duo::ClassTotals>)>, classes: Vec<duoprov_duo::ClassProfile>) -> Self {
        let mut phases = Vec::new();
        let mut previous: Option<&Vec<duoprov_duo::ClassTotals>> = None;
        for (name, from, to, totals) in &marks {
            let within = match previous {
                Some(before) if !totals.is_empty() => totals
                    .iter()
                    .filter_map(|t| {
                        let b = before.iter().find(|b| b.class == t.class)?;
                        Some((t.class.name().to_owned(), t.idle_secs - b.idle_secs, t.token_wait_secs - b.token_wait_secs))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if !totals.is_empty() {
                previous = Some(totals);
            }
            if !name.is_empty() {
                phases.push(PhaseProfile { phase: name.clone(), from_secs: *from, to_secs: *to, classes: within });
            }
        }
        let from = phases.iter().map(|p| p.from_secs).fold(f64::INFINITY, f64::min);
        let from = if from.is_finite() { from } else { 0.0 };
        let clip = |spans: &[(f64, f64)]| -> Vec<(f64, f64)> { spans.iter().filter(|(_, to)| *to > from).map(|&(f, t)| (f.max(from), t)).collect() };
        let classes = classes
            .into_iter()
            .map(|c| {
                let idle_spans = clip(&c.idle_spans);
                let token_wait_spans = clip(&c.token_wait_spans);
                let mut rate_timeline: Vec<(f64, f64)> = Vec::new();
                if let Some(&(_, rate)) = c.rate_timeline.iter().rev().find(|(at, _)| *at <= from) {
                    rate_timeline.push((from, rate));
                }
                rate_timeline.extend(c.rate_timeline.iter().filter(|(at, _)| *at > from));
                ClassProfileReport {
                    class: c.class.name().to_owned(),
                    elapsed_secs: c.elapsed_secs,
                    idle_secs: idle_spans.iter().map(|(f, t)| t - f).sum(),
                    idle_spans,
                    token_wait_secs: token_wait_spans.iter().map(|(f, t)| t - f).sum(),
                    token_wait_spans,
                    rate_changes: rate_timeline.len().saturating_sub(1) as u64,
                    rate_timeline,
                }
            })
            .collect();
        PacingProfile { phases, classes }
    }
}

/// Per class, what happened between two snapshots of the client's pacing counters.
pub fn class_reports(before: &[duoprov_duo::ClassStats], after: &[duoprov_duo::ClassStats]) -> Vec<ClassReport> {
    after
        .iter()
        .map(|a| {
            let b = before.iter().find(|b| b.class == a.class);
            ClassReport {
                class: a.class.name().to_owned(),
                calls: a.calls - b.map_or(0, |b| b.calls.min(a.calls)),
                rate_limited: a.rate_limited - b.map_or(0, |b| b.rate_limited.min(a.rate_limited)),
                ceiling_per_minute: a.ceiling_per_minute,
                rate_per_minute: a.rate_per_minute.map(round1),
                lowest_per_minute: a.lowest_per_minute.map(round1),
            }
        })
        .collect()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunReport {
    pub provisioner: String,
    /// `full` or `incremental`.
    pub kind: String,
    pub run_id: i64,
    pub dry_run: bool,
    pub groups: Counts,
    pub users: Counts,
    /// Memberships: `created` = added, `deleted` = removed.
    pub memberships: Counts,
    pub adopted: usize,
    /// Objects held back by plan errors (not attempted).
    pub held: usize,
    /// Those objects by name, with the plan error's code and message.
    pub held_objects: Vec<Failure>,
    /// The digest of the removals and deletions of the plan this run checked (`--approve`).
    pub removal_digest: String,
    pub failures: Vec<Failure>,
    /// Duo calls: page reads, then writes.
    pub read_calls: usize,
    pub write_calls: usize,
    /// Milliseconds per phase.
    pub timings_ms: Vec<(String, u64)>,
    /// What refreshing the Duo users table changed, when the provisioner asks for it.
    pub duo_users_loaded: Option<duoprov_registry::duo_users::ReplaceCounts>,
    /// What the sync-back group's update after that load changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_back: Option<crate::sync_back::SyncBackOutcome>,
    /// What an incremental run covered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<crate::prepared::ScopeSummary>,
    /// Why an incremental sync gave way to this full sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalated: Option<String>,
    /// Failed objects put on the retry list.
    pub retries_scheduled: usize,
    /// Duo calls per call class, with 429s and paced rates.
    pub duo_classes: Vec<ClassReport>,
    /// Where the run's time went per call class (returned by the run, not stored with it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pacing_profile: Option<PacingProfile>,
    /// `(phase, from, to, the client's totals at its end)`, on the client's pacing clock, for
    /// [`PacingProfile`]; the first entry (named "") is the baseline the apply phases start from.
    #[serde(skip)]
    pub phase_clock: Vec<(String, f64, f64, Vec<duoprov_duo::ClassTotals>)>,
    /// Administrators (admin roles) changed by this run; `None` when it planned none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admins: Option<AdminCounts>,
    /// What a dry run would have done (its plan's operations, counted); `None` when applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<Planned>,
}

/// A plan's operations counted as a run would count them (`failed` stays 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub groups: Counts,
    pub users: Counts,
    /// `created` = to add, `deleted` = to remove.
    pub memberships: Counts,
    /// Administrators (admin roles), when the plan has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admins: Option<AdminCounts>,
}

impl Planned {
    /// Counts `plan`'s operations; a user restored from the Trash counts as updated.
    pub fn of(plan: &duoprov_plan::Plan) -> Self {
        use duoprov_plan::Op;
        let mut p = Planned::default();
        for op in &plan.ops {
            match &op.op {
                Op::CreateGroup { .. } => p.groups.created += 1,
                Op::UpdateGroup { .. } => p.groups.updated += 1,
                Op::DeleteGroup { .. } => p.groups.deleted += 1,
                Op::CreateUser { .. } => p.users.created += 1,
                Op::RestoreUser { .. } | Op::EnableUser { .. } | Op::UpdateUser { .. } => p.users.updated += 1,
                Op::DeleteUser { mode: duoprov_plan::UserDeleteMode::Disable, .. } => p.users.disabled += 1,
                Op::DeleteUser { .. } => p.users.deleted += 1,
                Op::AddMember { .. } => p.memberships.created += 1,
                Op::RemoveMember { .. } => p.memberships.deleted += 1,
            }
        }
        if !plan.admins.is_empty() {
            p.admins = Some(AdminCounts::planned(&plan.admins));
        }
        p
    }
}

impl RunReport {
    pub fn failed(&self) -> usize {
        self.groups.failed + self.users.failed + self.memberships.failed + self.admins.as_ref().map_or(0, |a| a.failed)
    }

    /// Writes Duo carried out: objects created, updated or deleted, members added or removed.
    pub fn succeeded_writes(&self) -> usize {
        [&self.groups, &self.users, &self.memberships].iter().map(|c| c.created + c.updated + c.deleted).sum::<usize>() + self.admins.as_ref().map_or(0, AdminCounts::writes)
    }

    /// Failures whose write Duo refused with 403.
    pub fn forbidden(&self) -> usize {
        self.failures.iter().filter(|f| f.code == FORBIDDEN).count()
    }

    /// Duo refused writes with 403 and carried out none: the application lacks the write grant,
    /// and nothing will work until it has it.
    pub fn lacks_write_grant(&self) -> bool {
        self.forbidden() > 0 && self.succeeded_writes() == 0
    }

    /// The run's status for the run log: `failed` when Duo refused every write for want of the
    /// write grant, `partial` when objects failed or are held, `succeeded` otherwise.
    pub fn status(&self) -> RunStatus {
        if self.lacks_write_grant() {
            RunStatus::Failed
        } else if self.failed() > 0 || self.held > 0 {
            RunStatus::Partial
        } else {
            RunStatus::Succeeded
        }
    }

    /// A one-paragraph summary for people.
    pub fn summary(&self) -> String {
        let total_ms: u64 = self.timings_ms.iter().map(|(_, ms)| ms).sum();
        let admins = |a: Option<&AdminCounts>, verb: &str| {
            a.map(|a| format!("; administrators{verb} {} created, {} updated, {} disabled, {} deleted, {} adopted, {} failed", a.created, a.updated, a.disabled, a.deleted, a.adopted, a.failed)).unwrap_or_default()
        };
        if let Some(p) = &self.planned {
            return format!(
                "{} {} (dry run, nothing applied): would make groups {} created, {} updated, {} deleted; users {} created, {} updated, {} deleted; \
                 memberships {} added, {} removed; {} adopted; {} held by errors; Duo calls {} reads; {:.1} s",
                self.provisioner,
                if self.kind.is_empty() { "full" } else { &self.kind },
                p.groups.created,
                p.groups.updated,
                p.groups.deleted,
                p.users.created,
                p.users.updated,
                p.users.deleted,
                p.memberships.created,
                p.memberships.deleted,
                self.adopted,
                self.held,
                self.read_calls,
                total_ms as f64 / 1000.0
            ) + &admins(p.admins.as_ref(), " to be");
        }
        format!(
            "{} {}{}: groups {} created, {} updated, {} deleted, {} failed; users {} created, {} updated, {} deleted, {} failed; \
             memberships {} added, {} removed, {} failed; {} adopted; {} held by errors; Duo calls {} reads + {} writes; {:.1} s",
            self.provisioner,
            if self.kind.is_empty() { "full" } else { &self.kind },
            if self.dry_run { " (dry run)" } else { "" },
            self.groups.created,
            self.groups.updated,
            self.groups.deleted,
            self.groups.failed,
            self.users.created,
            self.users.updated,
            self.users.deleted,
            self.users.failed,
            self.memberships.created,
            self.memberships.deleted,
            self.memberships.failed,
            self.adopted,
            self.held,
            self.read_calls,
            self.write_calls,
            total_ms as f64 / 1000.0
        ) + &admins(self.admins.as_ref(), "") + &self.class_summary()
    }

    /// `; per class: write 12, bulk 5 (2 rate-limited; paced 20/min, lowest 20/min, at most
    /// 40/min)`: the classes that made calls, with rates only where Duo answered 429 or the pace
    /// is not at its ceiling. Empty when no class made calls.
    pub fn class_summary(&self) -> String {
        let per_min = |r: Option<f64>| r.map_or_else(|| "unpaced".to_owned(), |r| format!("{r}/min"));
        let parts: Vec<String> = self
            .duo_classes
            .iter()
            .filter(|c| c.calls > 0 || c.rate_limited > 0 || c.rate_per_minute != c.ceiling_per_minute)
            .map(|c| {
                let slowed = c.rate_limited > 0 || c.rate_per_minute != c.ceiling_per_minute || c.lowest_per_minute != c.ceiling_per_minute;
                if slowed {
                    format!(
                        "{} {} ({} rate-limited; paced {}, lowest {}, at most {})",
                        c.class,
                        c.calls,
                        c.rate_limited,
                        per_min(c.rate_per_minute),
                        per_min(c.lowest_per_minute),
                        per_min(c.ceiling_per_minute)
                    )
                } else {
                    format!("{} {}", c.class, c.calls)
                }
            })
            .collect();
        if parts.is_empty() { String::new() } else { format!("; per class: {}", parts.join(", ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: &str) -> Failure {
        Failure { object: "group g".into(), code: code.into(), message: "m".into() }
    }

    #[test]
    fn the_summary_names_each_class_s_calls_and_the_rates_of_the_classes_duo_slowed() {
        use duoprov_duo::{CallClass, ClassStats};
        let stats = |class, calls, limited, rate: Option<f64>, lowest: Option<f64>, ceiling: Option<f64>| ClassStats {
            class,
            calls,
            rate_limited: limited,
            ceiling_per_minute: ceiling,
            rate_per_minute: rate,
            lowest_per_minute: lowest,
        };
        let before = vec![stats(CallClass::Write, 10, 0, Some(240.0), Some(240.0), Some(240.0)), stats(CallClass::Bulk, 3, 1, Some(20.0), Some(20.0), Some(40.0))];
        let after = vec![
            stats(CallClass::Write, 22, 0, Some(240.0), Some(240.0), Some(240.0)),
            stats(CallClass::SingleRead, 0, 0, None, None, None),
            stats(CallClass::Bulk, 8, 3, Some(10.0), Some(10.0), Some(40.0)),
        ];
        let r = RunReport { duo_classes: class_reports(&before, &after), ..Default::default() };
        assert_eq!(r.duo_classes[0], ClassReport { class: "write".into(), calls: 12, rate_limited: 0, ceiling_per_minute: Some(240.0), rate_per_minute: Some(240.0), lowest_per_minute: Some(240.0) });
        assert_eq!((r.duo_classes[2].calls, r.duo_classes[2].rate_limited), (5, 2), "counts are this run's, not the client's lifetime");
        assert!(r.summary().ends_with("; per class: write 12, bulk 5 (2 rate-limited; paced 10/min, lowest 10/min, at most 40/min)"), "{}", r.summary());
        let json = serde_json::to_value(&r).unwrap_or_default();
        assert_eq!(json["duo_classes"][2]["rate_limited"], 2);
        assert_eq!(json["duo_classes"][2]["lowest_per_minute"], 10.0);
    }

    #[test]
    fn a_run_with_only_refused_writes_failed_and_one_with_held_objects_is_partial() {
        let mut r = RunReport::default();
        assert_eq!(r.status(), RunStatus::Succeeded);
        r.held = 1;
        assert_eq!(r.status(), RunStatus::Partial, "held objects make a run partial");
        r.held = 0;
        r.groups.failed = 2;
        r.failures = vec![failure(FORBIDDEN), failure("ERR")];
        assert!(r.lacks_write_grant());
        assert_eq!(r.status(), RunStatus::Failed, "no write got through and Duo said 403");
        r.users.created = 1;
        assert!(!r.lacks_write_grant());
        assert_eq!(r.status(), RunStatus::Partial, "some writes got through");
        r.users.created = 0;
        r.failures = vec![failure("ERR")];
        assert_eq!(r.status(), RunStatus::Partial, "failures without a 403 are not a missing grant");
    }
}
