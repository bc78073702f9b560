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
    /// The client's per-class counters when preparing began (the run reports the difference).
    pub pacing_before: Vec<duoprov_duo::ClassStats>,
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
