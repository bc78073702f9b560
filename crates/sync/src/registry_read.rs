//! The registry side of a sync: the provisioner's selection (members of other subject sources
//! dropped), the effective members of its eligibility group, and its links with those of the
//! provisioners sharing its Duo account.

use std::collections::HashSet;

use duoprov_model::{Links, ProvisionerSelection, SubjectKey};

use crate::error::SyncError;
use crate::settings::SyncSettings;

/// The registry side of a sync: the provisioner's selection (members of other subject sources
/// dropped) and, with an eligibility group, its effective members.
pub(crate) struct RegistryRead {
    pub selection: ProvisionerSelection,
    pub eligible: Option<HashSet<SubjectKey>>,
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
    Ok(filter_registry(settings, selection, eligible))
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
    RegistryRead { selection, eligible }
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
    for other in settings.shares_duo_with.iter().filter(|o| **o != settings.provisioner) {
        let theirs = store.links(other).await?;
        links.foreign.add(other, &theirs);
    }
    Ok(links)
}
