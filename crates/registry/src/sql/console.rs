//! The console's paged reads over SQL: link counts read from `link_count` (kept with the links
//! by the triggers of migration 0019), and pages cut by `LIMIT`/`OFFSET` with a `COUNT(*)` under
//! the same conditions, so no page reads more rows than it shows; the group search reads index
//! ranges of `lower(name)`, a prefix of the full name or of the name within any folder.

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::duo_users::{columns, push_filter, row_of};
use super::sync_state::{RunTuple, run_of};
use super::backend::Param;
use super::{SqlBackend, SqlStore};
use crate::error::RegistryError;
use crate::console::{ConsoleReads, LinkCounts, LinkKind, LinkRow, Paged, contains_pattern};
use crate::duo_users::{DuoUserFilter, DuoUserRow};
use crate::error::Result;
use crate::sync_state::RunRecord;

type LinkTuple = (String, Option<String>, Option<String>, bool, bool, Option<i64>, Option<String>, Option<String>);

/// The first string after every string starting with `prefix`, in code point order.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// The `FROM … WHERE …` of a link page, without ordering. `search` is lowercased and trimmed.
/// Groups: the registry groups whose name, or name within a folder, starts with it — index
/// ranges over `lower(name)` (compared byte by byte, [`SqlBackend::BYTE_ORDER`]), one for the
/// full name and one per folder. Users: a `LIKE` containing it, in the login or `source:id`.
fn push_links<DB: SqlBackend>(qb: &mut QueryBuilder<DB>, provisioner: &str, kind: LinkKind, search: Option<&str>)
where
    for<'b> &'b str: Param<DB>,
    String: Param<DB>,
{
    let c = DB::BYTE_ORDER;
    match kind {
        LinkKind::Groups => {
            qb.push(" FROM sync_group sg LEFT JOIN grp g ON g.uuid = sg.group_uuid WHERE sg.provisioner = ").push_bind(provisioner);
            if let Some(p) = search {
                qb.push(format!(" AND sg.group_uuid IN (SELECT n.uuid FROM grp n WHERE lower(n.name){c} >= ")).push_bind(p.to_owned());
                qb.push(format!(" AND lower(n.name){c} < ")).push_bind(prefix_end(p));
                qb.push(format!(" UNION SELECT n.uuid FROM folder f JOIN grp n ON lower(n.name){c} >= lower(f.path) || ':' || ")).push_bind(p.to_owned());
                qb.push(format!(" AND lower(n.name){c} < lower(f.path) || ':' || ")).push_bind(prefix_end(p)).push(")");
            }
        }
        LinkKind::Users => {
            qb.push(" FROM sync_user su LEFT JOIN subject s ON s.source = su.source AND s.subject_id = su.subject_id WHERE su.provisioner = ")
                .push_bind(provisioner);
            if let Some(p) = search.map(contains_pattern) {
                qb.push(" AND (lower(su.source || ':' || su.subject_id) LIKE ").push_bind(p.clone()).push(" ESCAPE '\\' OR lower(s.login_id) LIKE ").push_bind(p).push(" ESCAPE '\\')");
            }
        }
    }
}

sql_impl! {
#[async_trait]
impl ConsoleReads for SqlStore<DB> {
    async fn link_counts(&self, provisioner: &str) -> Result<Vec<LinkCounts>> {
        // Kept with the links by the triggers of migration 0019: three rows, not a million.
        let rows: Vec<(String, i64, i64, i64, i64, i64)> =
            sqlx::query_as("SELECT kind, total, in_target, linked, created_by_us, in_error FROM link_count WHERE provisioner = $1")
                .bind(provisioner)
                .fetch_all(self.pool())
                .await
                .map_err(RegistryError::db(format!("reading the link counts of {provisioner}")))?;
        Ok(["groups", "users", "memberships"]
            .into_iter()
            .map(|kind| {
                let row = rows.iter().find(|r| r.0 == kind);
                row.map(|r| LinkCounts { kind: kind.into(), total: r.1, in_target: r.2, linked: r.3, created_by_us: r.4, in_error: r.5 })
                    .unwrap_or_else(|| LinkCounts { kind: kind.into(), ..Default::default() })
            })
            .collect())
    }

    async fn link_page(&self, provisioner: &str, kind: LinkKind, search: Option<&str>, offset: u32, limit: u32) -> Result<Paged<LinkRow>> {
        let search = search.map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase);
        let mut count = QueryBuilder::<DB>::new("SELECT COUNT(*)");
        push_links(&mut count, provisioner, kind, search.as_deref());
        let total: i64 = count
            .build_query_scalar()
            .fetch_one(self.pool())
            .await
            .map_err(RegistryError::db(format!("counting the {} links of {provisioner}", kind.as_str())))?;
        let mut qb = QueryBuilder::<DB>::new(match kind {
            LinkKind::Groups => "SELECT COALESCE(g.name, sg.pending_name, sg.group_uuid), NULL, sg.duo_group_id, sg.in_target, sg.created_by_us, \
                                 sg.last_provisioned, sg.error_code, sg.error_message",
            LinkKind::Users => "SELECT su.source || ':' || su.subject_id, s.login_id, su.duo_user_id, su.in_target, su.created_by_us, \
                                su.last_provisioned, su.error_code, su.error_message",
        });
        push_links(&mut qb, provisioner, kind, search.as_deref());
        qb.push(match kind {
            LinkKind::Groups => " ORDER BY 1",
            LinkKind::Users => " ORDER BY su.source, su.subject_id",
        });
        qb.push(" LIMIT ").push_bind(i64::from(limit)).push(" OFFSET ").push_bind(i64::from(offset));
        let rows: Vec<LinkTuple> = qb
            .build_query_as()
            .fetch_all(self.pool())
            .await
            .map_err(RegistryError::db(format!("reading the {} links of {provisioner}", kind.as_str())))?;
        let rows = rows
            .into_iter()
            .map(|t| LinkRow {
                name: t.0,
                login: t.1,
                duo_id: t.2,
                in_target: t.3,
                created_by_us: t.4,
                provisioned_at_ms: t.5,
                error_code: t.6,
                error_message: t.7,
            })
            .collect();
        Ok(Paged { rows, total })
    }

    async fn duo_user_page(&self, config_id: &str, filter: &DuoUserFilter, offset: u32, limit: u32) -> Result<Paged<DuoUserRow>> {
        // "Not in the registry" by the recorded usernames is `NOT d.rendered` (`push_filter`),
        // kept with the rows: the partial index of the Duo users missing, read in key order.
        let hint = if filter.not_rendered_by.is_some() { DB::UNRENDERED_INDEX } else { "" };
        let mut count = QueryBuilder::<DB>::new(format!("SELECT COUNT(*) FROM duo_user d{hint} WHERE d.config_id = "));
        count.push_bind(config_id);
        push_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(self.pool()).await.map_err(RegistryError::db(format!("counting the Duo users of {config_id}")))?;
        let mut qb = QueryBuilder::<DB>::new(format!("SELECT {} FROM duo_user d{hint} WHERE d.config_id = ", columns()));
        qb.push_bind(config_id);
        push_filter(&mut qb, filter);
        // By username key for "not in the registry": the partial index's order (Duo's usernames
        // are lowercase: the order shown is the same).
        qb.push(if filter.not_rendered_by.is_some() { " ORDER BY d.user_name_key, d.user_id LIMIT " } else { " ORDER BY d.user_name, d.user_id LIMIT " }).push_bind(i64::from(limit)).push(" OFFSET ").push_bind(i64::from(offset));
        let rows = qb.build().fetch_all(self.pool()).await.map_err(RegistryError::db(format!("reading the Duo users of {config_id}")))?;
        let rows = rows
            .iter()
            .map(|r| row_of(config_id, r))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(RegistryError::db(format!("reading the Duo users of {config_id}")))?;
        Ok(Paged { rows, total })
    }

    async fn group_names(&self, uuids: &[String]) -> Result<std::collections::HashMap<String, String>> {
        let mut names = std::collections::HashMap::new();
        for chunk in uuids.chunks(500) {
            let mut qb = QueryBuilder::<DB>::new("SELECT uuid, name FROM grp WHERE uuid IN (");
            let mut list = qb.separated(", ");
            for u in chunk {
                list.push_bind(u.as_str());
            }
            qb.push(")");
            let rows: Vec<(String, String)> = qb.build_query_as().fetch_all(self.pool()).await.map_err(RegistryError::db("reading group names"))?;
            names.extend(rows);
        }
        Ok(names)
    }

    async fn run_page(&self, provisioner: &str, before: Option<i64>, limit: u32) -> Result<Vec<RunRecord>> {
        let rows: Vec<RunTuple> = sqlx::query_as(
            "SELECT id, provisioner, kind, dry_run, started_at_ms, finished_at_ms, status, counts, timings, message FROM sync_run \
             WHERE provisioner = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(provisioner)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(RegistryError::db(format!("reading the runs of {provisioner}")))?;
        rows.into_iter().map(run_of).collect()
    }

    async fn run_by_id(&self, id: i64) -> Result<Option<RunRecord>> {
        let row: Option<RunTuple> = sqlx::query_as(
            "SELECT id, provisioner, kind, dry_run, started_at_ms, finished_at_ms, status, counts, timings, message FROM sync_run WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(RegistryError::db(format!("reading run {id}")))?;
        row.map(run_of).transpose()
    }
}
}
