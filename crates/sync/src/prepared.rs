//! What preparing a run produces: both sides read and planned ([`Prepared`]), with the kind of
//! run, what an incremental run covers ([`ScopeSummary`]) and the plan as `duoprov plan --out`
//! saves it ([`SavedPlan`]).

use duoprov_duo::User;
use duoprov_plan::safety;
use duoprov_plan::{DesiredState, Plan};
use duoprov_registry::RetryTarget;
use serde::{Deserialize, Serialize};

/// Which kind of run (the run log's type, shared with the registry).
pub use duoprov_registry::RunKind;

/// What an incremental run covered, for its report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScopeSummary {
    pub from_seq: i64,
    pub to_seq: i64,
    pub changes: usize,
    pub groups: usize,
    pub whole_groups: usize,
    pub users: usize,
    pub retries_due: usize,
    /// Whether the registry side was read for the scoped subjects only (their effective
    /// memberships and eligibility, clashes checked through the recorded usernames) rather than
    /// as the whole selection.
    pub registry_scoped: bool,
    /// Why the whole selection was read instead (a change whose scope cannot be bounded, a
    /// template change, no recorded usernames yet); `None` when scoped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_whole_reason: Option<String>,
    /// Time spent reading the registry side (and rendering it), in milliseconds.
    pub registry_ms: u64,
    /// How many selected groups the registry side read and rendered: those the scoped subjects
    /// are in and those the changes name when scoped (group-name clashes with the rest are found
    /// through the recorded group names), every selected group when read whole.
    pub groups_rendered: usize,
    /// Whether the links were read for the scope only (the scoped subjects' user links, the
    /// links of the Duo users met, counts for the rest) rather than whole.
    pub links_scoped: bool,
    /// Time spent reading the links, in milliseconds.
    pub links_ms: u64,
    /// The groups (uuids) and subjects in scope.
    #[serde(skip)]
    pub group_uuids: Vec<String>,
    #[serde(skip)]
    pub subjects: Vec<duoprov_model::SubjectKey>,
    /// Retry rows this run covers (cleared unless they fail again).
    #[serde(skip)]
    pub attempted: Vec<RetryTarget>,
}

/// A plan saved by `duoprov plan --out FILE`, with fingerprints of the states it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: u32,
    pub provisioner: String,
    pub registry_fingerprint: String,
    pub duo_fingerprint: String,
    /// The digest of the plan's removals and deletions, which `--approve` names.
    #[serde(default)]
    pub removal_digest: String,
    pub plan: Plan,
}

/// Both sides read and planned.
pub struct Prepared {
    pub kind: RunKind,
    /// The change-log position the registry was read at: the checkpoint once the run finishes.
    pub change_seq: i64,
    /// What an incremental run covers.
    pub scope: Option<ScopeSummary>,
    pub plan: Plan,
    pub desired: DesiredState,
    /// Groups the registry selects, held ones included (for the empty-registry rule).
    pub selected_groups: usize,
    pub registry_fingerprint: String,
    pub duo_fingerprint: String,
    /// The users as read from Duo, kept only when the run refreshes the Duo users table
    /// (`load_duo_users`); empty otherwise.
    pub duo_users: Vec<User>,
    pub read_calls: usize,
    pub read_ms: u64,
    pub plan_ms: u64,
    /// When planning ended, in seconds on the client's pacing clock
    /// ([`duoprov_duo::DuoClient::pacing_clock_secs`]): read and plan end there.
    pub planned_at_clock: f64,
    /// The client's per-class counters when preparing began (the run reports the difference).
    pub pacing_before: Vec<duoprov_duo::ClassStats>,
    /// The rendered usernames this read establishes, recorded when the run is not a dry run.
    pub rendered: Option<RenderedUpdate>,
}

/// What a run records of the usernames the provisioner renders (see
/// [`duoprov_registry::ScopedReads`]), under the fingerprint of its rendering settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderedUpdate {
    /// The whole selection was read: these are every selected subject's usernames, and every
    /// selected group's rendered name.
    Replace { fingerprint: String, rows: Vec<duoprov_registry::RenderedName>, groups: Vec<duoprov_registry::RenderedGroup> },
    /// Only `subjects` were read: their rows become `rows` (none for a subject absent there).
    Subjects { fingerprint: String, subjects: Vec<duoprov_model::SubjectKey>, rows: Vec<duoprov_registry::RenderedName> },
}

impl RenderedUpdate {
    /// Records the update. A scoped update is skipped when the recorded fingerprint has changed
    /// meanwhile (its rows would be mixed with rows of other settings).
    pub async fn record(&self, store: &dyn duoprov_registry::Store, provisioner: &str) -> Result<(), duoprov_registry::RegistryError> {
        match self {
            RenderedUpdate::Replace { fingerprint, rows, groups } => {
                store.replace_rendered(provisioner, fingerprint, rows).await?;
                store.replace_rendered_groups(provisioner, fingerprint, groups).await?;
            }
            RenderedUpdate::Subjects { fingerprint, subjects, rows } => {
                store.update_rendered(provisioner, fingerprint, subjects, rows).await?;
            }
        }
        Ok(())
    }
}

/// The rows of a desired state's rendered usernames.
pub(crate) fn rendered_rows(desired: &DesiredState) -> Vec<duoprov_registry::RenderedName> {
    let mut rows: Vec<duoprov_registry::RenderedName> =
        desired.rendered.iter().map(|(subject, key)| duoprov_registry::RenderedName { subject: subject.clone(), username_key: key.clone() }).collect();
    rows.sort();
    rows.dedup_by(|a, b| a.subject == b.subject);
    rows
}

/// The rows of a desired state's rendered group names.
pub(crate) fn rendered_group_rows(desired: &DesiredState) -> Vec<duoprov_registry::RenderedGroup> {
    desired.rendered_groups.iter().map(|(group_uuid, name)| duoprov_registry::RenderedGroup { group_uuid: group_uuid.clone(), name: name.clone() }).collect()
}

impl Prepared {
    pub fn saved(&self) -> SavedPlan {
        SavedPlan {
            format: 1,
            provisioner: self.plan.provisioner.clone(),
            registry_fingerprint: self.registry_fingerprint.clone(),
            duo_fingerprint: self.duo_fingerprint.clone(),
            removal_digest: safety::removal_digest(&self.plan),
            plan: self.plan.clone(),
        }
    }
}
