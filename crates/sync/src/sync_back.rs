//! The sync-back group (Grouper's "group sync from Duo" script daemon: "a basis group
//! representing users who have Duo MFA factors set up"): a registry group duoprov creates, owns
//! and keeps equal to the subjects whose Duo users meet a rule — `enrolled` (`is_enrolled`) or
//! `status:S` — in the provisioner's loaded Duo users table. A Duo user is matched back to its
//! subject by the provisioner's link first, else by the username the mapping renders for a
//! subject (as Duo compares usernames, ignoring case; a username two subjects render is matched
//! to neither). Runs after every load of the Duo users table (`duoprov load-users`, a full sync
//! with `load_duo_users = true`, the daemon's `load_users_every`).
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
/// `None` when none is configured.
pub async fn sync_back(store: &dyn Store, settings: &SyncSettings, actor: &AuditActor) -> Result<Option<SyncBackOutcome>, SyncError> {
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
