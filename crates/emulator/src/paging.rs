//! Offset paging as Duo does it: `limit` (default per endpoint, silently clamped to the
//! endpoint's maximum) and `offset` (from 0), with `metadata` carrying `total_objects`,
//! `next_offset` and `prev_offset` on every list: absent when they do not apply, as a real Duo
//! capture shows, or `null` with the `list_metadata_nulls` setting.

use serde::Serialize;

use crate::config::PageLimit;
use crate::error::ApiError;
use crate::params::Params;

/// The `metadata` object of a list response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// Offset of the next page, or none on the last page.
    pub next_offset: Option<usize>,
    /// Offset of the previous page, or none on the first page.
    pub prev_offset: Option<usize>,
    /// Objects in the whole (filtered) list.
    pub total_objects: usize,
    /// Write an absent offset as `null` rather than leaving the key out.
    pub nulls: bool,
}

impl Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        if self.nulls || self.next_offset.is_some() {
            m.serialize_entry("next_offset", &self.next_offset)?;
        }
        if self.nulls || self.prev_offset.is_some() {
            m.serialize_entry("prev_offset", &self.prev_offset)?;
        }
        m.serialize_entry("total_objects", &self.total_objects)?;
        m.end()
    }
}

impl Metadata {
    /// The same metadata, writing absent offsets as `null` when `nulls`.
    pub fn with_nulls(self, nulls: bool) -> Self {
        Self { nulls, ..self }
    }

    /// Metadata for an unpaged result of `total` objects.
    pub fn whole(total: usize) -> Self {
        Self {
            next_offset: None,
            prev_offset: None,
            total_objects: total,
            nulls: false,
        }
    }
}

/// A requested page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Clamped limit.
    pub limit: usize,
    /// Offset.
    pub offset: usize,
}

impl Page {
    /// Reads `limit` and `offset`; a `limit` of 0 or a non-number is 400/40002, a larger one is
    /// clamped to `lim.max` (or refused with 400/40002 when `reject_over_max`).
    pub fn from_params(
        p: &Params,
        lim: PageLimit,
        reject_over_max: bool,
    ) -> Result<Self, ApiError> {
        let limit = match p.opt_usize("limit")? {
            None => lim.default,
            Some(0) => return Err(ApiError::invalid("limit")),
            Some(n) if n > lim.max && reject_over_max => return Err(ApiError::invalid("limit")),
            Some(n) => n.min(lim.max),
        };
        let offset = p.opt_usize("offset")?.unwrap_or(0);
        Ok(Self { limit, offset })
    }

    /// The index range of this page in a list of `total` items, and the list's metadata.
    pub fn slice(&self, total: usize) -> (std::ops::Range<usize>, Metadata) {
        let start = self.offset.min(total);
        let end = self.offset.saturating_add(self.limit).min(total);
        let next_offset = (end < total).then_some(end);
        let prev_offset = (self.offset > 0).then(|| self.offset.saturating_sub(self.limit));
        (
            start..end,
            Metadata {
                next_offset,
                prev_offset,
                total_objects: total,
                nulls: false,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{BodyKind, decode_form};

    fn page(q: &str, default: usize, max: usize) -> Result<Page, ApiError> {
        let p = Params::build(&decode_form(q.as_bytes()), BodyKind::Empty, b"", 40002)?;
        Page::from_params(&p, PageLimit { default, max }, false)
    }

    #[test]
    fn clamps_and_computes_offsets() {
        let p = page("limit=1000&offset=0", 100, 300).expect("page");
        assert_eq!(p.limit, 300);
        let (r, m) = page("limit=2&offset=0", 100, 300).expect("p").slice(4);
        assert_eq!(
            (r, m),
            (
                0..2,
                Metadata {
                    next_offset: Some(2),
                    prev_offset: None,
                    total_objects: 4,
                    nulls: false,
                }
            )
        );
        let (r, m) = page("limit=2&offset=2", 100, 300).expect("p").slice(4);
        assert_eq!(
            (r, m),
            (
                2..4,
                Metadata {
                    next_offset: None,
                    prev_offset: Some(0),
                    total_objects: 4,
                    nulls: false,
                }
            )
        );
        let (r, m) = page("offset=10", 100, 300).expect("p").slice(4);
        assert_eq!(r.len(), 0);
        assert_eq!(m.next_offset, None);
        assert!(page("limit=0", 100, 300).is_err());
        assert!(page("limit=x", 100, 300).is_err());
    }

    #[test]
    fn absent_offsets_are_left_out_unless_nulls_are_asked_for() {
        let (_, last) = Page { limit: 2, offset: 0 }.slice(2);
        assert_eq!(
            serde_json::to_value(last).ok(),
            Some(serde_json::json!({"total_objects": 2}))
        );
        assert_eq!(
            serde_json::to_value(last.with_nulls(true)).ok(),
            Some(serde_json::json!({"next_offset": null, "prev_offset": null, "total_objects": 2}))
        );
        let (_, middle) = Page { limit: 1, offset: 1 }.slice(3);
        assert_eq!(
            serde_json::to_value(middle).ok(),
            Some(serde_json::json!({"next_offset": 2, "prev_offset": 0, "total_objects": 3}))
        );
    }

    #[test]
    fn following_next_offset_visits_every_item_once() {
        for total in [0usize, 1, 2, 7, 300, 301] {
            for limit in [1usize, 2, 3, 100, 300] {
                let mut seen = Vec::new();
                let mut offset = Some(0);
                let mut guard = 0;
                while let Some(o) = offset {
                    let page = Page { limit, offset: o };
                    let (range, meta) = page.slice(total);
                    assert_eq!(meta.total_objects, total);
                    assert_eq!(meta.prev_offset.is_some(), o > 0);
                    seen.extend(range);
                    offset = meta.next_offset;
                    guard += 1;
                    assert!(guard <= total + 1, "paging does not terminate");
                }
                assert_eq!(
                    seen,
                    (0..total).collect::<Vec<_>>(),
                    "total {total} limit {limit}"
                );
            }
        }
    }
}
