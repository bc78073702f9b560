//! What the daemon's console reads of the registry a page at a time, so a page costs the same with
//! a hundred users or a hundred thousand: a provisioner's link counts by state, one page of its
//! group or user links (searchable by name), and one page of its loaded Duo users under
//! `duoprov report`'s SQL filters. Each page comes with the total it was cut from.

use async_trait::async_trait;
use serde::Serialize;

use crate::duo_users::{DuoUserFilter, DuoUserRow};
use crate::error::Result;

/// Which links a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    Groups,
    Users,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Groups => "groups",
            LinkKind::Users => "users",
        }
    }

    pub fn parse(s: &str) -> Option<LinkKind> {
        match s {
            "groups" => Some(LinkKind::Groups),
            "users" => Some(LinkKind::Users),
            _ => None,
        }
    }
}

/// A provisioner's links of one kind (`groups`, `users`, `memberships`), counted by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinkCounts {
    pub kind: String,
    /// Every link the provisioner keeps.
    pub total: i64,
    /// Links whose registry object is in the provisioner's target.
    pub in_target: i64,
    /// Links with a Duo object (a Duo id; memberships: provisioned).
    pub linked: i64,
    /// Duo objects this provisioner created (memberships: always 0).
    pub created_by_us: i64,
    /// Links whose last operation failed.
    pub in_error: i64,
}

/// One link on a page: the registry object by name, its Duo object, and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkRow {
    /// A group's registry name; a user's `source:id` (a group no longer in the registry: its
    /// last known name, or its uuid).
    pub name: String,
    /// A user's login id in the registry, when it has one.
    pub login: Option<String>,
    pub duo_id: Option<String>,
    pub in_target: bool,
    pub created_by_us: bool,
    /// When the object was last provisioned (ms since the epoch).
    pub provisioned_at_ms: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// One page of rows and the number of rows it was cut from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paged<T> {
    pub rows: Vec<T>,
    pub total: i64,
}

/// Paged reads for the console.
#[async_trait]
pub trait ConsoleReads: Send + Sync {
    /// The provisioner's group, user and membership links, counted by state (in that order).
    async fn link_counts(&self, provisioner: &str) -> Result<Vec<LinkCounts>>;
    /// Links of `kind`, sorted by name, whose name (or login) contains `search` ignoring case;
    /// `limit` of them from `offset`.
    async fn link_page(&self, provisioner: &str, kind: LinkKind, search: Option<&str>, offset: u32, limit: u32) -> Result<Paged<LinkRow>>;
    /// The provisioner's loaded Duo users matching `filter`, sorted by username, `limit` of them
    /// from `offset`.
    async fn duo_user_page(&self, config_id: &str, filter: &DuoUserFilter, offset: u32, limit: u32) -> Result<Paged<DuoUserRow>>;
    /// `provisioner`'s runs older than run `before` (all when `None`), newest first, at most `limit`.
    async fn run_page(&self, provisioner: &str, before: Option<i64>, limit: u32) -> Result<Vec<crate::RunRecord>>;
    /// The run with this id.
    async fn run_by_id(&self, id: i64) -> Result<Option<crate::RunRecord>>;
    /// The registry names of the groups with these uuids (those still in the registry).
    async fn group_names(&self, uuids: &[String]) -> Result<std::collections::HashMap<String, String>>;
}

/// `text` as a `LIKE` pattern matching it anywhere, its `%`, `_` and `\` taken literally
/// (with `ESCAPE '\'`), lowercased.
pub fn contains_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_for_like_wildcards_matches_them_literally() {
        assert_eq!(contains_pattern("Ann_B%"), "%ann\\_b\\%%");
        assert_eq!(contains_pattern("a\\b"), "%a\\\\b%");
    }
}
