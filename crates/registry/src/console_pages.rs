//! The console's reads that stay fast at a hundred thousand users: the links in error, read
//! from the counts kept with the links (the overview needs no other count), and a page of user
//! links cut by key (keyset paging: the rows after or before the last page's edge, so page 1 000
//! costs what page 1 costs) with the subjects joined for the page's rows only, searchable by a
//! prefix of the login or the subject id (lowercased) through an index.

use async_trait::async_trait;
use duoprov_model::SubjectKey;

use crate::console::LinkRow;
use crate::error::Result;

/// Where a keyset page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    First,
    /// The rows after this one, in key order.
    After(SubjectKey),
    /// The rows just before this one (the previous page), still listed in key order.
    Before(SubjectKey),
}

/// A keyset page: its rows in key order, the number of rows matching in all, and whether rows
/// come before and after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    pub rows: Vec<LinkRow>,
    pub total: i64,
    pub more_before: bool,
    pub more_after: bool,
}

/// The console's fast reads.
#[async_trait]
pub trait ConsolePages: Send + Sync {
    /// `provisioner`'s group, user and membership links whose last operation failed.
    async fn links_in_error(&self, provisioner: &str) -> Result<i64>;
    /// `limit` user links of `provisioner` from `cursor`, sorted by source and subject id; with
    /// `prefix`, those whose login or subject id starts with it ignoring case (`SOURCE:PREFIX`:
    /// that source's subjects whose id starts with PREFIX).
    async fn user_link_page(&self, provisioner: &str, prefix: Option<&str>, cursor: &Cursor, limit: u32) -> Result<KeyPage>;
}
