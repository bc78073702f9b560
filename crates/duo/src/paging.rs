//! Offset paging: reads a list endpoint at its maximum page size, following
//! `metadata.next_offset` until it is absent or `null`. A `next_offset` that does not increase,
//! or a page without items that still promises a next one, is an error (never a loop and never a
//! silently truncated list, which could make a sync delete what it did not see).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::{CallSpec, DuoClient, Params};
use crate::error::{DuoError, Result};
use crate::pace::CallClass;
use crate::retry::Safety;

/// A per-item check (e.g. id shapes): `Err((field, detail))` names the bad field.
pub type ItemCheck<T> = dyn Fn(&T) -> std::result::Result<(), (String, String)> + Sync;

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
/// Page size of `GET /admin/v1/groups` (100: sources disagree between 100 and 500).
pub const GROUPS_PAGE: u32 = 100;
/// Page size of `GET /admin/v2/groups/{id}/users`.
pub const GROUP_USERS_PAGE: u32 = 500;

/// Parses the items of a list `response`, naming the failing item (`response[7]: missing field
/// \`username\``) and running `check` on each (e.g. the id-shape check).
pub(crate) fn parse_items<T: DeserializeOwned>(
    label: &str,
    response: Value,
    first_index: usize,
    check: &ItemCheck<T>,
) -> Result<Vec<T>> {
    let Value::Array(items) = response else {
        return Err(DuoError::malformed(label, "response", "not a list"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let idx = first_index + i;
        let t: T = serde_json::from_value(item).map_err(|e| DuoError::malformed(label, format!("response[{idx}]"), e))?;
        check(&t).map_err(|(field, detail)| DuoError::malformed(label, format!("response[{idx}].{field}"), detail))?;
        out.push(t);
    }
    Ok(out)
}

impl DuoClient {
    /// Reads every page of a list endpoint. `params` are sent with each page besides `limit` and
    /// `offset`.
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(String, String)],
        page_size: u32,
        check: &ItemCheck<T>,
    ) -> Result<Vec<T>> {
        self.list_all_with_progress(path, params, page_size, check, &|_| {}).await
    }

    /// [`DuoClient::list_all`], calling `on_page` after each page with the progress so far
    /// (for progress bars: a 100 000-user listing is 334 paced pages, about two minutes).
    pub async fn list_all_with_progress<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(String, String)],
        page_size: u32,
        check: &ItemCheck<T>,
        on_page: &(dyn Fn(PageProgress) + Sync),
    ) -> Result<Vec<T>> {
        let mut out: Vec<T> = Vec::new();
        let mut pages = 0usize;
        let mut offset: u64 = 0;
        loop {
            let mut p: Vec<(String, String)> = params.to_vec();
            p.push(("limit".into(), page_size.to_string()));
            p.push(("offset".into(), offset.to_string()));
            let spec = CallSpec::new("GET", path, Params::Pairs(p), CallClass::PageRead, Safety::Repeatable);
            let label = spec.label();
            let reply = self.call(&spec).await?;
            let items = parse_items::<T>(&label, reply.response, out.len(), check)?;
            let got = items.len();
            out.extend(items);
            pages += 1;
            on_page(PageProgress { pages, items: out.len(), total: reply.metadata.and_then(|m| m.total_objects) });
            match reply.metadata.and_then(|m| m.next_offset) {
                None => return Ok(out),
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
