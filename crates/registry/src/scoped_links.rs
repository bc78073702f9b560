//! What an incremental run reads of a provisioner's links when its registry side is scoped
//! ([`ScopedLinks`]): the group links of the groups in its scope (or every group link), the user
//! links of the subjects it names, the links of the Duo users it meets (by Duo user id), and as
//! aggregates what the safety rules and the case probe need of the rest — so its cost follows
//! the scope, not the number of linked users.

use async_trait::async_trait;
use duoprov_model::{Links, SubjectKey, UserLink};

use crate::error::Result;

/// A provisioner's links as a scoped incremental run reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopedLinkRead {
    /// The group links of the asked groups (every group link when none are asked); the user links
    /// and the users disabled by the provisioner of the asked subjects only. `foreign` is left
    /// empty.
    pub links: Links,
    /// How many groups the provisioner manages: linked (a Duo group id) and in its target, as
    /// every group link read whole would count them.
    pub managed_groups: usize,
    /// How many users the provisioner manages: linked (a Duo user id) and in its target, as
    /// [`Links::users`] read whole would count them.
    pub managed_users: usize,
    /// The Duo user id of the first linked user in subject order (`source`, `subject_id`), as
    /// [`Links::users`] read whole would give it first; `None` when no user is linked.
    pub first_linked_user: Option<String>,
}

#[async_trait]
pub trait ScopedLinks: Send + Sync {
    /// The links of `provisioner` an incremental run scoped to `subjects` and the groups of uuid
    /// `groups` needs, in one read (every group link when `groups` is `None`).
    async fn scoped_links(&self, provisioner: &str, subjects: &[SubjectKey], groups: Option<&[String]>) -> Result<ScopedLinkRead>;

    /// The user links of `provisioner` whose Duo user is one of `duo_user_ids`.
    async fn user_links_by_duo_ids(&self, provisioner: &str, duo_user_ids: &[String]) -> Result<Vec<UserLink>>;
}
