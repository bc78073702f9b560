//! What an incremental run reads of the registry when its changes name the subjects they touch:
//! the provisioner's selection seen from those subjects only ([`ScopedReads::scoped_selection`]:
//! every selected group, with its effective members among the subjects; the subjects' rows; their
//! eligibility), and the usernames the provisioner's last runs rendered for every selected
//! subject ([`RenderedName`]), indexed by username so "who else renders to this name" is one
//! lookup. Together they let an incremental run hold username clashes exactly as a full sync
//! does without reading the whole selection.
//!
//! The recorded usernames are a cache of the registry under the provisioner's rendering settings,
//! tagged with a fingerprint of those settings: a full read replaces them, a scoped run rewrites
//! the rows of its subjects, and rows recorded under another fingerprint are never used.

use async_trait::async_trait;
use duoprov_model::{GroupName, ProvisionerSelection, SubjectKey};
use serde::Serialize;

use crate::error::Result;

/// One subject's username as the provisioner rendered it: its lowercase form
/// ([`duoprov_model::username_key`]), what clash detection compares.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RenderedName {
    pub subject: SubjectKey,
    pub username_key: String,
}

/// The selection seen from a few subjects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopedSelection {
    /// Every group the provisioner selects (sorted by name, as a full selection), with its
    /// effective members restricted to the asked subjects; `subjects` holds those of the asked
    /// subjects that are an effective member of a selected group (sorted by key).
    pub selection: ProvisionerSelection,
    /// With an eligibility group: the asked subjects that are its effective members.
    pub eligible: Option<Vec<SubjectKey>>,
}

/// Counts of a replacement of the recorded usernames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RenderedCounts {
    pub written: usize,
    pub removed: usize,
}

#[async_trait]
pub trait ScopedReads: Send + Sync {
    /// The selection of `provisioner` seen from `subjects`, in one registry snapshot: every
    /// selected group with its effective members among `subjects` (groups containing a
    /// subject's groups through nesting are found by one recursive query walking upwards from
    /// the subjects' immediate groups), and with `eligible`, which of `subjects` are its
    /// effective members. Subjects that no longer exist are left out.
    async fn scoped_selection(&self, provisioner: &str, subjects: &[SubjectKey], eligible: Option<&GroupName>) -> Result<ScopedSelection>;

    /// The fingerprint of the rendering settings the recorded usernames of `provisioner` were
    /// made with; `None` when none are recorded.
    async fn rendered_fingerprint(&self, provisioner: &str) -> Result<Option<String>>;

    /// The recorded usernames of `subjects` (those that have one).
    async fn rendered_of(&self, provisioner: &str, subjects: &[SubjectKey]) -> Result<Vec<RenderedName>>;

    /// The recorded subjects of `provisioner` whose username is one of `keys` (lowercase forms).
    async fn rendered_holders(&self, provisioner: &str, keys: &[String]) -> Result<Vec<RenderedName>>;

    /// Makes `rows` the recorded usernames of `provisioner`, under `fingerprint`: rows of other
    /// subjects are removed, changed rows rewritten (an unchanged registry writes nothing).
    async fn replace_rendered(&self, provisioner: &str, fingerprint: &str, rows: &[RenderedName]) -> Result<RenderedCounts>;

    /// Rewrites the recorded usernames of `subjects` only: each gets its row in `rows`, or none
    /// when it has none there. Done only while the recorded fingerprint is `fingerprint`
    /// (returns `false`, writing nothing, otherwise).
    async fn update_rendered(&self, provisioner: &str, fingerprint: &str, subjects: &[SubjectKey], rows: &[RenderedName]) -> Result<bool>;
}
