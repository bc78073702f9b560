//! What a sync is told: a provisioner's resolved configuration ([`SyncSettings`], with the
//! incremental thresholds in [`IncrementalSettings`]) and how to run it ([`SyncOptions`]).

use std::sync::Arc;

use duoprov_model::GroupName;
use duoprov_plan::safety::Approval;
use duoprov_plan::{Mapping, Policy};
use duoprov_registry::Backoff;

use crate::fence::FenceHandle;
use crate::prepared::SavedPlan;

/// What a provisioner's configuration says, resolved.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub provisioner: String,
    pub policy: Policy,
    pub mapping: Arc<Mapping>,
    /// Only effective members of this registry group become Duo users.
    pub eligible_group: Option<GroupName>,
    /// Only subjects of these sources become Duo users.
    pub subject_sources: Option<Vec<String>>,
    /// Duo calls in flight at once during apply (the client also paces them).
    pub concurrency: usize,
    /// Refresh the Duo users table at the end of a full sync, from the users already read.
    pub load_duo_users: bool,
    /// Escalation thresholds and the retry schedule.
    pub incremental: IncrementalSettings,
    /// The other provisioners provisioning the same Duo account: objects they have linked are
    /// never adopted, deleted or emptied by this one.
    pub shares_duo_with: Vec<String>,
    /// The registry group kept equal to the Duo users meeting a rule, after each load of the Duo
    /// users table ([`crate::sync_back`]).
    pub sync_back: Option<crate::sync_back::SyncBackSettings>,
    /// Rules narrowing the groups the provisioner's markers select.
    pub selection_rules: SelectionRules,
}

/// Grouper's `provisionableRegex` and `onlyProvisionPolicyGroups`: of the groups the provisioner's
/// markers include (most specific marker wins; an exclude marker always excludes), only those
/// whose full name matches `select_regex` and, with `only_policy_groups`, that are policy groups
/// (the `@policy` markers, most specific wins) are selected.
#[derive(Debug, Clone, Default)]
pub struct SelectionRules {
    pub select_regex: Option<regex::Regex>,
    pub only_policy_groups: bool,
}

impl SelectionRules {
    pub fn is_empty(&self) -> bool {
        self.select_regex.is_none() && !self.only_policy_groups
    }
}

/// When an incremental sync reconciles a whole group, or gives way to a full sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncrementalSettings {
    /// More change-log entries than this waiting: a full sync instead.
    pub full_sync_above_changes: usize,
    /// More affected groups and users than this: a full sync instead.
    pub full_sync_above_objects: usize,
    /// More membership changes than this in one group in one run: the whole group is reconciled.
    pub whole_group_above: usize,
    /// The retry schedule of failed objects.
    pub backoff: Backoff,
    /// Read the registry for the changed subjects only when the changes allow it (see
    /// [`crate::incremental`]); `false` always reads the whole selection.
    pub scoped_registry: bool,
    /// With the registry read scoped, read the links of the scoped subjects only (and of the Duo
    /// users the run meets, with counts for the safety rules) instead of every link (see
    /// [`crate::incremental`]); `false` reads them whole.
    pub scoped_links: bool,
}

impl Default for IncrementalSettings {
    fn default() -> Self {
        IncrementalSettings { full_sync_above_changes: 5_000, full_sync_above_objects: 5_000, whole_group_above: 100, backoff: Backoff::default(), scoped_registry: true, scoped_links: true }
    }
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    pub dry_run: bool,
    pub approval: Approval,
    /// Apply exactly this saved plan, refusing if either side has moved since it was made.
    pub saved: Option<SavedPlan>,
    /// The runner lock the run holds: checked before every apply phase, and the run stops when
    /// it is lost (see [`crate::fence`]).
    pub fence: Option<FenceHandle>,
    /// Who runs the sync (the daemon, or the command line and its user), for the audit log.
    pub actor: duoprov_registry::AuditActor,
    /// What started the run (`schedule`, `change log`, `console: … by WHO`, `cli:USER`), kept
    /// with it in the run log.
    pub trigger: Option<String>,
}

/// The fingerprint of what decides which subjects a provisioner renders and to which usernames
/// (every template, the eligibility group, the subject sources): recorded usernames made under
/// another fingerprint are not used (see [`duoprov_registry::ScopedReads`]).
pub fn rendering_fingerprint(settings: &SyncSettings) -> String {
    duoprov_plan::fingerprint::fingerprint(&(
        "rendered-usernames/1",
        settings.mapping.templates(),
        settings.eligible_group.as_ref().map(|g| g.to_string()),
        &settings.subject_sources,
        // Which groups count as selected decides whose usernames are recorded.
        settings.selection_rules.select_regex.as_ref().map(|r| r.as_str().to_owned()),
        settings.selection_rules.only_policy_groups,
    ))
}
