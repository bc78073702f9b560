//! The registry side of a sync: the provisioner's selection (narrowed by its selection rules,
//! members of other subject sources dropped, each group with the marker and rules that select
//! it), the effective members of its eligibility group, and its links with those of the
//! provisioners sharing its Duo account.

use std::collections::{HashMap, HashSet};

use duoprov_model::{Links, MarkerIndex, ProvisionerSelection, SubjectKey, POLICY_MARKER};

use crate::error::SyncError;
use crate::settings::SyncSettings;

/// The registry side of a sync: the provisioner's selection (members of other subject sources
/// dropped) and, with an eligibility group, its effective members.
pub(crate) struct RegistryRead {
    pub selection: ProvisionerSelection,
    pub eligible: Option<HashSet<SubjectKey>>,
    /// Why each selected group is selected, by uuid.
    pub selected_by: HashMap<String, String>,
    /// Groups the markers include but the selection rules leave out, by uuid, with the rule.
    pub rule_excluded: HashMap<String, String>,
}

impl RegistryRead {
    /// Hands the selection notes to the desired state, for the plan's reasons.
    pub fn annotate(&self, desired: &mut duoprov_plan::DesiredState) {
        desired.selected_by = self.selected_by.clone();
        desired.rule_excluded = self.rule_excluded.clone();
    }
}

/// Reads the selection and, with an eligibility group, its members — in one registry snapshot.
pub(crate) async fn read_registry(store: &dyn duoprov_registry::RegistryReader, settings: &SyncSettings) -> Result<RegistryRead, SyncError> {
    let (selection, eligible) = match &settings.eligible_group {
        Some(group) => {
            let (selection, members) = store.provisioner_selection_with_eligible(&settings.provisioner, group).await?;
            (selection, Some(members.into_iter().map(|m| m.subject.key()).collect()))
        }
        None => (store.provisioner_selection(&settings.provisioner).await?, None),
    };
    let mut selection = selection;
    let (selected_by, rule_excluded) = apply_selection_rules(store, settings, &mut selection).await?;
    Ok(RegistryRead { selected_by, rule_excluded, ..filter_registry(settings, selection, eligible) })
}

/// One group a provisioner's markers include, as `duoprov provision list --groups` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListedGroup {
    pub name: String,
    pub uuid: String,
    /// Effective members a sync would provision: of the configured `subject_sources`, and in
    /// `eligible_group` when one is set.
    pub effective_members: usize,
    /// Why it is selected (the deciding marker, the rules it passes), or which rule leaves it out.
    pub why: String,
}

/// The groups a full sync of the provisioner would provision, and those its markers include but
/// its selection rules leave out (each with the rule), both sorted by name; read as a sync reads
/// them ([`read_registry`]), so the list is exactly the sync's.
pub async fn provisioned_groups(store: &dyn duoprov_registry::RegistryReader, settings: &SyncSettings) -> Result<(Vec<ListedGroup>, Vec<ListedGroup>), SyncError> {
    let read = read_registry(store, settings).await?;
    let subjects = &read.selection.subjects;
    let counted = |members: &[u32]| match &read.eligible {
        Some(eligible) => members.iter().filter(|m| eligible.contains(&subjects[**m as usize].key())).count(),
        None => members.len(),
    };
    let mut selected: Vec<ListedGroup> = read
        .selection
        .groups
        .iter()
        .map(|g| ListedGroup {
            name: g.group.name.to_string(),
            uuid: g.group.uuid.clone(),
            effective_members: counted(&g.members),
            why: read.selected_by.get(&g.group.uuid).cloned().unwrap_or_else(|| "selected".to_owned()),
        })
        .collect();
    selected.sort_by(|a, b| a.name.cmp(&b.name));
    let mut excluded = Vec::new();
    if !read.rule_excluded.is_empty() {
        // The rules' leavings, from the markers' own selection (members as the markers see them).
        let all = store.provisioner_selection(&settings.provisioner).await?;
        for g in all.groups.iter().filter(|g| read.rule_excluded.contains_key(&g.group.uuid)) {
            excluded.push(ListedGroup {
                name: g.group.name.to_string(),
                uuid: g.group.uuid.clone(),
                effective_members: g.members.len(),
                why: read.rule_excluded[&g.group.uuid].clone(),
            });
        }
        excluded.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok((selected, excluded))
}

/// Narrows `selection` to the groups the provisioner's selection rules keep ([`SelectionRules`]
/// (crate::SelectionRules): `select_regex`, `only_policy_groups`), and says for each group which
/// marker and rules selected it, or which rule left it out: (selected by uuid, excluded by uuid).
pub(crate) async fn apply_selection_rules(
    store: &dyn duoprov_registry::RegistryReader,
    settings: &SyncSettings,
    selection: &mut ProvisionerSelection,
) -> Result<(HashMap<String, String>, HashMap<String, String>), SyncError> {
    let rules = &settings.selection_rules;
    let markers = store.markers(Some(&settings.provisioner)).await?;
    let index = MarkerIndex::new(&markers);
    let policy = if rules.only_policy_groups { Some(MarkerIndex::new(&store.markers(Some(POLICY_MARKER)).await?)) } else { None };
    let mut selected_by = HashMap::new();
    let mut excluded = HashMap::new();
    selection.groups.retain(|g| {
        let name = g.group.name.as_str();
        let mut why = index.deciding(name).map(|d| d.to_string()).unwrap_or_else(|| "selected".to_owned());
        if let Some(re) = &rules.select_regex {
            if !re.is_match(name) {
                excluded.insert(g.group.uuid.clone(), format!("its name does not match select_regex {:?}", re.as_str()));
                return false;
            }
            why.push_str(&format!("; its name matches select_regex {:?}", re.as_str()));
        }
        if let Some(policy) = &policy {
            match policy.deciding(name) {
                Some(d) if d.provision => why.push_str(&format!("; it is a policy group ({POLICY_MARKER}: {d})")),
                _ => {
                    excluded.insert(
                        g.group.uuid.clone(),
                        format!("only_policy_groups: it is not a policy group (mark one with `duoprov provision assign {POLICY_MARKER} --group {name}`)"),
                    );
                    return false;
                }
            }
        }
        selected_by.insert(g.group.uuid.clone(), why);
        true
    });
    Ok((selected_by, excluded))
}

pub(crate) fn filter_registry(settings: &SyncSettings, mut selection: ProvisionerSelection, eligible: Option<HashSet<SubjectKey>>) -> RegistryRead {
    if let Some(sources) = &settings.subject_sources {
        let allowed: HashSet<&str> = sources.iter().map(String::as_str).collect();
        // Members of other sources are dropped from every group; indexes stay valid because the
        // subjects list is kept and only memberships are filtered.
        let keep: Vec<bool> = selection.subjects.iter().map(|s| allowed.contains(s.source.as_str())).collect();
        for g in &mut selection.groups {
            g.members.retain(|m| keep[*m as usize]);
        }
    }
    RegistryRead { selection, eligible, selected_by: HashMap::new(), rule_excluded: HashMap::new() }
}

/// With `delete_groups = "registry_deleted"`, records in `desired` which linked groups leaving
/// the selection were deleted from the registry (the only ones that policy deletes); one
/// registry query for the leaving links, none under the other policies.
pub(crate) async fn mark_deleted_groups(
    store: &dyn duoprov_registry::RegistryReader,
    settings: &SyncSettings,
    desired: &mut duoprov_plan::DesiredState,
    links: &Links,
) -> Result<(), SyncError> {
    if settings.policy.group_delete != duoprov_plan::policy::DeletePolicy::RegistryDeleted {
        return Ok(());
    }
    let selected: HashSet<&str> = desired.groups.iter().map(|g| g.uuid.as_str()).collect();
    let leaving: Vec<String> = links
        .groups
        .iter()
        .map(|l| &l.group_uuid)
        .filter(|u| !selected.contains(u.as_str()) && !desired.held_groups.contains(*u))
        .cloned()
        .collect();
    if leaving.is_empty() {
        return Ok(());
    }
    let existing = store.existing_group_uuids(&leaving).await?;
    desired.deleted_groups = leaving.into_iter().filter(|u| !existing.contains(u)).collect();
    Ok(())
}

/// The provisioner's links, with the Duo objects the other provisioners of its Duo account link.
pub(crate) async fn read_links(store: &dyn duoprov_registry::SyncStore, settings: &SyncSettings) -> Result<Links, SyncError> {
    let mut links = store.links(&settings.provisioner).await?;
    links.foreign = read_foreign_links(store, settings).await?;
    Ok(links)
}

/// The Duo objects the other provisioners of the provisioner's Duo account link (their links
/// read whole; empty when it shares its account with none).
pub(crate) async fn read_foreign_links(store: &dyn duoprov_registry::SyncStore, settings: &SyncSettings) -> Result<duoprov_model::ForeignLinks, SyncError> {
    let mut foreign = duoprov_model::ForeignLinks::default();
    for other in settings.shares_duo_with.iter().filter(|o| **o != settings.provisioner) {
        let theirs = store.links(other).await?;
        foreign.add(other, &theirs);
    }
    Ok(foreign)
}
