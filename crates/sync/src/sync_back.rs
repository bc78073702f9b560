//! The sync-back group (Grouper's "group sync from Duo" script daemon: "a basis group
//! representing users who have Duo MFA factors set up"): a registry group duoprov creates, owns
//! and keeps equal to the subjects whose Duo users meet a rule — `enrolled` (`is_enrolled`) or
//! `status:S` — in the provisioner's loaded Duo users table. A Duo user is matched back to its
//! subject by the provisioner's link first, else by the username the mapping renders for a
//! subject (as Duo compares usernames, ignoring case; a username two subjects render is matched
//! to neither). Runs after every load of the Duo users table (`duoprov load-users`, a full sync
//! with `load_duo_users = true`, the daemon's `load_users_every`).
//!
//! Removals are guarded like the provisioner's own (`duoprov_plan::safety`): more than
//! [`SyncBackSettings::max_removals`] subjects, or more than [`SyncBackSettings::max_removal_percent`]
//! of a group of at least [`SyncBackSettings::percent_rule_min_members`], or emptying the group
//! (no loaded Duo user meets the rule), or any removal after a load that skipped Duo users it
//! could not read (their subjects would be removed wrongly), refuses the
//! whole update — nothing written — with a message naming the group, the count, the setting and
//! the digest of the exact removal list; `duoprov load-users P --approve DIGEST` applies exactly
//! that list ([`SyncBackRun::approve`]). An empty or partial Duo users table therefore cannot empty
//! a group that often feeds MFA policy.
//!
//! Written through the registry ([`SyncBackStore`]): one transaction, one change-log entry and
//! one audit entry per member added or removed. duoprov never writes a group it did not create
//! for this. The group must not feed the provisioner it comes from: a sync-back group the
//! provisioner selects (through its markers) or names as `eligible_group` is refused, since Duo's
//! state would then decide what is provisioned into Duo (a user not yet enrolled would never be
//! created, or would be removed when it un-enrolls).

use std::collections::{BTreeSet, HashMap};

use duoprov_model::{GroupMember, GroupName, SubjectKey};
use duoprov_registry::duo_users::{DuoUserFilter, DuoUserRow};
use duoprov_registry::{AuditActor, AuditTrigger, Store};
use serde::Serialize;

use crate::{SyncError, SyncSettings};

/// Which Duo users count as "set up".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncBackRule {
    /// `is_enrolled` is `T`.
    Enrolled,
    /// Duo's status is this one (compared ignoring case): `active`, `bypass`, `disabled`, `locked out`.
    Status(String),
}

impl SyncBackRule {
    /// `enrolled` or `status:S`; an error naming the accepted forms otherwise.
    pub fn parse(text: &str) -> Result<Self, String> {
        const STATUSES: [&str; 4] = ["active", "bypass", "disabled", "locked out"];
        match text.trim() {
            "enrolled" => Ok(SyncBackRule::Enrolled),
            t => match t.strip_prefix("status:").map(|s| s.trim().to_lowercase()) {
                Some(s) if STATUSES.contains(&s.as_str()) => Ok(SyncBackRule::Status(s)),
                _ => Err(format!("must be \"enrolled\" or \"status:S\" with S one of {}, not {text:?}", STATUSES.join(", "))),
            },
        }
    }

    fn holds(&self, row: &DuoUserRow) -> bool {
        match self {
            SyncBackRule::Enrolled => row.is_enrolled.as_deref() == Some("T"),
            SyncBackRule::Status(s) => row.status.as_deref().is_some_and(|st| st.eq_ignore_ascii_case(s)),
        }
    }
}

impl std::fmt::Display for SyncBackRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncBackRule::Enrolled => f.write_str("enrolled"),
            SyncBackRule::Status(s) => write!(f, "status:{s}"),
        }
    }
}

/// A provisioner's sync-back configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncBackSettings {
    pub group: GroupName,
    pub rule: SyncBackRule,
    /// Most members removed in one update (`[provisioner.P.thresholds] sync_back_max_removals`).
    pub max_removals: usize,
    /// Most members removed in one update as a percentage of the group's current members
    /// (`sync_back_max_removal_percent`; Grouper's script refuses above 30 %)…
    pub max_removal_percent: u32,
    /// …applied to groups with at least this many members (`percent_rule_min_members`, shared
    /// with the provisioner's per-group rule).
    pub percent_rule_min_members: usize,
}

impl SyncBackSettings {
    /// Defaults: at most 500 removals, and at most 30 % of a group of 10 members or more (the
    /// provisioner's membership thresholds, and Grouper's failsafe).
    pub const DEFAULT_MAX_REMOVALS: usize = 500;
    pub const DEFAULT_MAX_REMOVAL_PERCENT: u32 = 30;

    /// `group` kept by `rule`, with the default thresholds.
    pub fn new(group: GroupName, rule: SyncBackRule) -> Self {
        SyncBackSettings {
            group,
            rule,
            max_removals: Self::DEFAULT_MAX_REMOVALS,
            max_removal_percent: Self::DEFAULT_MAX_REMOVAL_PERCENT,
            percent_rule_min_members: duoprov_plan::Thresholds::default().percent_rule_min_members,
        }
    }
}

/// What one sync-back call knows besides the configuration: the load it follows and the
/// operator's approval.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncBackRun {
    /// Duo users the load just made could not put in the table (no usable `user_id`): the table
    /// is incomplete, so any removal is refused unless approved.
    pub skipped_users: usize,
    /// The removal digest a refusal showed (`duoprov load-users P --approve DIGEST`): applies
    /// exactly that removal list, and refuses any other.
    pub approve: Option<String>,
}

impl SyncBackRun {
    /// After a load with these problems, with no approval.
    pub fn after_load(problems: &[crate::duo_users::UserProblem]) -> Self {
        SyncBackRun { skipped_users: problems.iter().filter(|p| p.skipped).count(), approve: None }
    }
}

/// Why a sync-back update was refused; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncBackRefusal {
    pub provisioner: String,
    pub group: String,
    pub reasons: Vec<String>,
    /// The subjects that would have been removed, sorted.
    pub removals: Vec<String>,
    /// The digest of that list (`--approve`).
    pub digest: String,
    /// Whether raising a threshold would also lift the refusal.
    pub thresholds_help: bool,
}

/// Removal lines shown in a refusal; the rest are counted.
const SHOWN_REMOVALS: usize = 50;

impl SyncBackRefusal {
    /// The message shown to people: the group, the reasons, the removals, and how to proceed.
    pub fn message(&self) -> String {
        let p = &self.provisioner;
        let mut out = format!("refused to update the sync-back group {} of provisioner {p}; nothing was changed:\n", self.group);
        for r in &self.reasons {
            out.push_str(&format!("  - {r}\n"));
        }
        out.push_str(&format!(
            "it would remove {} from {} (removal digest {}):\n",
            duoprov_model::counted(self.removals.len(), "subject", "subjects"),
            self.group,
            self.digest
        ));
        for r in self.removals.iter().take(SHOWN_REMOVALS) {
            out.push_str(&format!("    {r}\n"));
        }
        if self.removals.len() > SHOWN_REMOVALS {
            out.push_str(&format!("    … and {} more\n", self.removals.len() - SHOWN_REMOVALS));
        }
        out.push_str(&format!(
            "check the Duo users table (`duoprov report users {p}`); to apply exactly these removals, run `duoprov load-users {p} --approve {}` (refused again if the list changes)",
            self.digest
        ));
        if self.thresholds_help {
            out.push_str(&format!(", or raise sync_back_max_removals / sync_back_max_removal_percent in [provisioner.{p}.thresholds]"));
        } else {
            out.push_str("; raising thresholds does not lift this refusal");
        }
        out
    }
}

/// The digest of a sync-back removal list: the first 12 hex digits of SHA-256 over the
/// provisioner, the group and the sorted subject keys.
pub fn removal_digest(provisioner: &str, group: &GroupName, remove: &[SubjectKey]) -> String {
    let mut keys: Vec<String> = remove.iter().map(|k| k.to_string()).collect();
    keys.sort();
    duoprov_plan::safety::short_digest("duoprov sync-back removals v1\n", provisioner, std::iter::once(group.as_str()).chain(keys.iter().map(String::as_str)))
}

/// Checks the removals of one update against the thresholds, the load's completeness and the
/// approval.
fn check(p: &str, sb: &SyncBackSettings, current: usize, desired: usize, remove: &[SubjectKey], run: &SyncBackRun) -> Result<(), Box<SyncBackRefusal>> {
    let digest = removal_digest(p, &sb.group, remove);
    let mut reasons = Vec::new();
    let mut only_approval = false;
    let approved = match run.approve.as_deref().map(str::trim) {
        Some(given) if given.eq_ignore_ascii_case(&digest) => true,
        Some(given) => {
            only_approval = true;
            reasons.push(format!(
                "the approval names digest {given}, which does not match this update's removals (digest {digest}): the list changed since it was shown, or the digest is wrong"
            ));
            false
        }
        None => false,
    };
    if remove.is_empty() {
        return if approved || reasons.is_empty() { Ok(()) } else { Err(refusal(p, sb, reasons, remove, digest, !only_approval)) };
    }
    if desired == 0 {
        only_approval = true;
        reasons.push(format!(
            "no Duo user in the loaded table meets rule {} while the group holds {}: an empty or partial Duo users table must not empty the group",
            sb.rule,
            duoprov_model::counted(current, "member", "members")
        ));
    }
    if run.skipped_users > 0 {
        only_approval = true;
        reasons.push(format!(
            "the Duo users table was loaded incompletely ({} could not be read, see the load's warnings): a member whose Duo user was skipped would be removed wrongly",
            duoprov_model::counted(run.skipped_users, "Duo user", "Duo users")
        ));
    }
    let n = remove.len();
    if n > sb.max_removals {
        reasons.push(format!("{n} removals from sync-back group {} exceed sync_back_max_removals = {}", sb.group, sb.max_removals));
    }
    if current >= sb.percent_rule_min_members && (n as u64) * 100 > (current as u64) * u64::from(sb.max_removal_percent) {
        reasons.push(format!(
            "{n} of {current} members of sync-back group {} would be removed, over sync_back_max_removal_percent = {}",
            sb.group, sb.max_removal_percent
        ));
    }
    if reasons.is_empty() || approved {
        return Ok(());
    }
    Err(refusal(p, sb, reasons, remove, digest, !only_approval))
}

fn refusal(p: &str, sb: &SyncBackSettings, reasons: Vec<String>, remove: &[SubjectKey], digest: String, thresholds_help: bool) -> Box<SyncBackRefusal> {
    let mut removals: Vec<String> = remove.iter().map(|k| format!("remove subject {k}")).collect();
    removals.sort();
    Box::new(SyncBackRefusal { provisioner: p.to_owned(), group: sb.group.to_string(), reasons, removals, digest, thresholds_help })
}

/// What a sync-back did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncBackOutcome {
    pub group: String,
    pub rule: String,
    /// Whether this run created the group.
    pub created_group: bool,
    /// Subjects in the group now.
    pub members: usize,
    pub added: usize,
    pub removed: usize,
    /// Duo users meeting the rule that no subject could be matched to.
    pub unmatched: usize,
}

/// Keeps the provisioner's sync-back group equal to its rule over the loaded Duo users table;
/// `None` when none is configured. [`SyncError::SyncBackRefused`] (nothing written) when the
/// removals exceed the thresholds or follow an incomplete load, unless `run` approves them.
pub async fn sync_back(store: &dyn Store, settings: &SyncSettings, actor: &AuditActor, run: &SyncBackRun) -> Result<Option<SyncBackOutcome>, SyncError> {
    let Some(sb) = &settings.sync_back else { return Ok(None) };
    let p = settings.provisioner.as_str();
    if settings.eligible_group.as_ref() == Some(&sb.group) {
        return Err(SyncError::SyncBack(format!(
            "the sync-back group {} of provisioner {p} is also its eligible_group: Duo's state would decide who is created in Duo; name another group",
            sb.group
        )));
    }
    // Whether the group is selected, or would be once created: the provisioner's markers decide.
    let markers = store.markers(Some(p)).await?;
    if let Some(decision) = duoprov_model::MarkerIndex::new(&markers).deciding(sb.group.as_str()).filter(|d| d.provision) {
        return Err(SyncError::SyncBack(format!(
            "the sync-back group {} is selected for provisioner {p} by a marker ({decision}): it would feed Duo's state back into Duo; \
             mark it excluded (`duoprov provision assign {p} --group {} --exclude`) or name a group outside the marked folders",
            sb.group, sb.group
        )));
    }
    let Some(_) = store.duo_user_load(p).await? else {
        return Err(SyncError::SyncBack(format!(
            "the Duo users table of provisioner {p} has never been loaded, so the sync-back group {} is left as it is; run `duoprov load-users {p}`",
            sb.group
        )));
    };
    let trigger = AuditTrigger::new(actor);
    let (group, created_group) = match store.sync_back_group(p).await? {
        Some(g) if g.name == sb.group => (g, false),
        _ => {
            let description = format!("Subjects whose Duo users are {} (kept by duoprov from provisioner {p}'s Duo users; do not edit)", sb.rule);
            (store.create_sync_back_group(p, &sb.group, &description, &trigger).await.map_err(refused_as_sync_back)?, true)
        }
    };

    // Duo users → subjects: links first, then rendered usernames.
    let rows = store.duo_users(p, &DuoUserFilter::default()).await?;
    let links = store.links(p).await?;
    let by_user_id: HashMap<&str, &SubjectKey> = links.users.iter().filter_map(|l| l.duo_user_id.as_deref().map(|id| (id, &l.subject))).collect();
    let mut by_username: HashMap<String, Option<SubjectKey>> = HashMap::new();
    if rows.iter().any(|r| sb.rule.holds(r) && !by_user_id.contains_key(r.user_id.as_str())) {
        for s in store.subjects(None).await? {
            if let Ok(fields) = settings.mapping.user_fields(&s) {
                by_username
                    .entry(duoprov_model::username_key(&fields.username))
                    .and_modify(|k| *k = None)
                    .or_insert_with(|| Some(s.key()));
            }
        }
    }
    let mut desired: BTreeSet<SubjectKey> = BTreeSet::new();
    let mut unmatched = 0;
    for r in rows.iter().filter(|r| sb.rule.holds(r)) {
        let subject = by_user_id.get(r.user_id.as_str()).map(|k| (*k).clone()).or_else(|| by_username.get(&duoprov_model::username_key(&r.user_name)).cloned().flatten());
        match subject {
            Some(k) => {
                desired.insert(k);
            }
            None => unmatched += 1,
        }
    }
    let current: BTreeSet<SubjectKey> = store
        .members(&group.name)
        .await?
        .into_iter()
        .filter_map(|m| match m {
            GroupMember::Subject(k) => Some(k),
            GroupMember::Group { .. } => None,
        })
        .collect();
    let add: Vec<SubjectKey> = desired.difference(&current).cloned().collect();
    let remove: Vec<SubjectKey> = current.difference(&desired).cloned().collect();
    check(p, sb, current.len(), desired.len(), &remove, run).map_err(SyncError::SyncBackRefused)?;
    let changes = if add.is_empty() && remove.is_empty() { Default::default() } else { store.apply_sync_back(p, &add, &remove, &trigger).await? };
    tracing::info!(provisioner = p, group = %group.name, added = changes.added, removed = changes.removed, members = desired.len(), "Sync-back group updated.");
    Ok(Some(SyncBackOutcome {
        group: group.name.to_string(),
        rule: sb.rule.to_string(),
        created_group,
        members: desired.len(),
        added: changes.added,
        removed: changes.removed,
        unmatched,
    }))
}

fn refused_as_sync_back(e: duoprov_registry::RegistryError) -> SyncError {
    match e {
        duoprov_registry::RegistryError::Refused(m) => SyncError::SyncBack(m),
        other => other.into(),
    }
}
