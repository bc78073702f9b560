//! The group side of a scoped incremental run ([`ScopedGroups`]), so its registry cost follows
//! the scope rather than the number of groups: the selection seen from a few subjects and groups
//! ([`ScopedGroups::scoped_group_selection`]: only the selected groups the subjects are in, or
//! that the run names), the Duo group names the provisioner's last full read rendered for every
//! selected group ([`RenderedGroup`], indexed by name, so "which other group renders to this
//! name" is one lookup and the selected groups are counted without being read), and the group
//! links of the Duo groups a run meets, by Duo group id (the group links of the scope itself are
//! read by [`crate::ScopedLinks::scoped_links`]).
//!
//! The recorded group names are a cache of the registry under the provisioner's rendering and
//! selection settings, tagged with a fingerprint of those settings: only a read of the whole
//! selection replaces them. An incremental run uses them only when every change since names the
//! subjects it moves (a group, folder, marker or import change reads the selection whole and
//! records them anew), so no selected group's name or selection changed since they were made.

use async_trait::async_trait;
use duoprov_model::{GroupLink, GroupName, SubjectKey};
use serde::Serialize;

use crate::error::Result;
use crate::scoped::{RenderedCounts, ScopedSelection};

/// One selected group's Duo group name as the provisioner rendered it; `None` when its name does
/// not render or cannot be sent (the group is held, and clashes with no other).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RenderedGroup {
    pub group_uuid: String,
    pub name: Option<String>,
}

#[async_trait]
pub trait ScopedGroups: Send + Sync {
    /// The selection of `provisioner` seen from `subjects` and the groups of uuid `groups`, in one
    /// registry snapshot: the selected groups among those a subject is an effective member of
    /// (found by one recursive query walking upwards from the subjects' immediate groups) and
    /// `groups` (sorted by name), each with its effective members among `subjects`; the markers
    /// are applied to those groups only. With `eligible`, which of `subjects` are its effective
    /// members. Subjects and groups that no longer exist are left out.
    async fn scoped_group_selection(&self, provisioner: &str, subjects: &[SubjectKey], groups: &[String], eligible: Option<&GroupName>) -> Result<ScopedSelection>;

    /// The fingerprint of the settings the recorded group names of `provisioner` were made with;
    /// `None` when none are recorded.
    async fn rendered_groups_fingerprint(&self, provisioner: &str) -> Result<Option<String>>;

    /// The recorded groups of `provisioner` whose rendered name is one of `names`.
    async fn rendered_group_holders(&self, provisioner: &str, names: &[String]) -> Result<Vec<RenderedGroup>>;

    /// How many groups are recorded for `provisioner` (every selected group, held ones included).
    async fn rendered_group_count(&self, provisioner: &str) -> Result<usize>;

    /// Makes `rows` the recorded group names of `provisioner`, under `fingerprint`: rows of other
    /// groups are removed, changed rows rewritten (an unchanged registry writes nothing).
    async fn replace_rendered_groups(&self, provisioner: &str, fingerprint: &str, rows: &[RenderedGroup]) -> Result<RenderedCounts>;

    /// The group links of `provisioner` whose Duo group is one of `duo_group_ids`.
    async fn group_links_by_duo_ids(&self, provisioner: &str, duo_group_ids: &[String]) -> Result<Vec<GroupLink>>;
}
