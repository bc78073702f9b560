//! Offset paging: reads a list endpoint at its maximum page size, following
//! `metadata.next_offset` until it is absent or `null`. A `next_offset` that does not increase,
//! or a page without items that still promises a next one, is an error (never a loop and never a
//! silently truncated list, which could make a sync delete what it did not see).
//!
//! Offsets shift when the account changes during the listing (a directory sync creating or
//! deleting users), so an item can appear on two pages or fall between them. Items are therefore
//! de-duplicated by their id (the key function of [`ItemRules`]), and the number of distinct items
//! is compared with the `metadata.total_objects` Duo reports on the last page: on a mismatch the
//! whole listing is read once more, and a second mismatch is [`ErrorKind::Changed`] naming the
//! endpoint and both counts. Without `total_objects` only the de-duplication applies.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::{CallSpec, DuoClient, Params};
use crate::error::{DuoError, ErrorKind, Result};
use crate::pace::CallClass;
use crate::retry::Safety;

/// A per-item check (e.g. id shapes): `Err((field, detail))` names the bad field.
pub type ItemCheck<T> = dyn Fn(&T) -> std::result::Result<(), (String, String)> + Sync;

/// How the items of a response are read: fields that must be present and not `null` in each raw
/// item (beyond what deserialising requires: `groups` on user reads the membership diff depends
/// on), the per-item check, and the identity key items are de-duplicated by.
pub struct ItemRules<'a, T> {
    /// Raw fields each item must carry, not `null`.
    pub required: &'a [&'a str],
    /// The per-item check.
    pub check: &'a ItemCheck<T>,
    /// The item's identity (`user_id`, `group_id`).
    pub key: fn(&T) -> &str,
}

/// Progress of a paged listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageProgress {
    /// Pages read so far.
    pub pages: usize,
    /// Items read so far.
    pub items: usize,
    /// `metadata.total_objects` of the last page, when Duo sent it.
    pub total: Option<u64>,
}

/// Page size of `GET /admin/v1/users` (Duo's maximum).
pub const USERS_PAGE: u32 = 300;
/// Page size of `GET /admin/v1/users/{id}/groups`.
pub const USER_GROUPS_PAGE: u32 = 500;
/// Page size of `GET /admin/v1/groups`: 500, Duo's documented maximum (a larger value would be
/// clamped; paging follows `next_offset`, so a smaller page Duo chose is read correctly too).
pub const GROUPS_PAGE: u32 = 500;
/// Page size of `GET /admin/v2/groups/{id}/users`.
pub const GROUP_USERS_PAGE: u32 = 500;

/// Checks that the raw item carries each of `required`, not `null`: `Err((field, detail))`.
pub(crate) fn check_required(item: &Value, required: &[&str]) -> std::result::Result<(), (String, String)> {
    for field in required {
        match item.get(field) {
            None => return Err(((*field).to_owned(), "missing (duoprov needs it to compare memberships)".to_owned())),
            Some(Value::Null) => return Err(((*field).to_owned(), "null (duoprov needs it to compare memberships)".to_owned())),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Parses the items of a list `response`, naming the failing item (`response[7]: missing field
/// \`username\``, `response[7].groups: missing`), running `check` on each (e.g. the id-shape
/// check) and requiring `required` in each raw item.
pub(crate) fn parse_items<T: DeserializeOwned>(
    label: &str,
    response: Value,
    first_index: usize,
    required: &[&str],
    check: &ItemCheck<T>,
) -> Result<Vec<T>> {
    let Value::Array(items) = response else {
        return Err(DuoError::malformed(label, "response", "not a list"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let idx = first_index + i;
        let t = T::deserialize(&item).map_err(|e| DuoError::malformed(label, format!("response[{idx}]"), e))?;
        check(&t).map_err(|(field, detail)| DuoError::malformed(label, format!("response[{idx}].{field}"), detail))?;
        check_required(&item, required).map_err(|(field, detail)| DuoError::malformed(label, format!("response[{idx}].{field}"), detail))?;
        out.push(t);
    }
    Ok(out)
}

/// The noun for a listing's items in messages (`users`, `groups`, `members`).
fn noun(path: &str) -> &'static str {
    if path.ends_with("/users") {
        if path.contains("/groups/") { "members" } else { "users" }
    } else if path.ends_with("/groups") {
        "groups"
    } else {
        "items"
    }
}

/// One complete pass over a listing.
struct Pass<T> {
    items: Vec<T>,
    total: Option<u64>,
    label: String,
}

impl DuoClient {
    /// Reads every page of a list endpoint, de-duplicated by `rules.key` and checked against
    /// `metadata.total_objects` (see the module doc). `params` are sent with each page besides
    /// `limit` and `offset`.
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(String, String)],
        page_size: u32,
        rules: &ItemRules<'_, T>,
    ) -> Result<Vec<T>> {
        self.list_all_with_progress(path, params, page_size, rules, &|_| {}).await
    }

    /// [`DuoClient::list_all`], calling `on_page` after each page with the progress so far
    /// (for progress bars: a 100 000-user listing is 334 paced pages, about two minutes).
    pub async fn list_all_with_progress<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(String, String)],
        page_size: u32,
        rules: &ItemRules<'_, T>,
        on_page: &(dyn Fn(PageProgress) + Sync),
    ) -> Result<Vec<T>> {
        let first = self.one_pass(path, params, page_size, rules, on_page).await?;
        let mismatch = |p: &Pass<T>| p.total.filter(|t| *t != p.items.len() as u64);
        let Some(reported) = mismatch(&first) else {
            return Ok(first.items);
        };
        tracing::warn!(call = %first.label, listed = first.items.len(), reported, "Duo's total_objects disagrees with the items listed; reading the listing again");
        let second = self.one_pass(path, params, page_size, rules, on_page).await?;
        match mismatch(&second) {
            None => Ok(second.items),
            Some(reported) => Err(DuoError::new(
                second.label,
                ErrorKind::Changed {
                    detail: format!(
                        "Duo listed {} {} but reported {reported} (metadata.total_objects), twice; the account changed while it was being read — run again",
                        second.items.len(),
                        noun(path)
                    ),
                },
            )),
        }
    }

    async fn one_pass<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(String, String)],
        page_size: u32,
        rules: &ItemRules<'_, T>,
        on_page: &(dyn Fn(PageProgress) + Sync),
    ) -> Result<Pass<T>> {
        let mut out: Vec<T> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut read = 0usize;
        let mut pages = 0usize;
        let mut offset: u64 = 0;
        loop {
            let mut p: Vec<(String, String)> = params.to_vec();
            p.push(("limit".into(), page_size.to_string()));
            p.push(("offset".into(), offset.to_string()));
            let spec = CallSpec::new("GET", path, Params::Pairs(p), CallClass::PageRead, Safety::Repeatable);
            let label = spec.label();
            let reply = self.call(&spec).await?;
            let items = parse_items::<T>(&label, reply.response, read, rules.required, rules.check)?;
            let got = items.len();
            read += got;
            for item in items {
                if seen.insert((rules.key)(&item).to_owned()) {
                    out.push(item);
                }
            }
            pages += 1;
            let total = reply.metadata.and_then(|m| m.total_objects);
            on_page(PageProgress { pages, items: out.len(), total });
            match reply.metadata.and_then(|m| m.next_offset) {
                None => return Ok(Pass { items: out, total, label }),
                Some(next) if next <= offset => {
                    return Err(DuoError::malformed(
                        &label,
                        "metadata.next_offset",
                        format!("did not increase (offset {offset}, next_offset {next})"),
                    ));
                }
                Some(next) if got == 0 => {
                    return Err(DuoError::malformed(
                        &label,
                        "metadata.next_offset",
                        format!("empty page at offset {offset} promises another at {next}"),
                    ));
                }
                Some(next) => offset = next,
            }
        }
    }
}
