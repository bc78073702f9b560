//! The console's fast reads over SQL: the error count from the counts kept with the links
//! (`link_count`, 0019), and user-link pages by key — `(source, subject_id) > edge` on `sync_user`'s primary key, the
//! subjects joined only for the page's rows, and a search by prefix ranges over the
//! `lower(login_id)` / `lower(subject_id)` indexes, compared byte by byte
//! ([`SqlBackend::BYTE_ORDER`]).

use sqlx::QueryBuilder;

use super::*;
use crate::console::LinkRow;
use crate::console_pages::{ConsolePages, Cursor, KeyPage};

type LinkTuple = (String, String, Option<String>, Option<String>, bool, bool, Option<i64>, Option<String>, Option<String>);

/// The first string after every string starting with `prefix`, in code point order.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// A sub-select of the `(source, subject_id)` of the subjects `prefix` (lowercased by the
/// caller) finds: each branch one range over one index (a `UNION`, not an `OR`, so each branch
/// reads its own index).
fn push_matches<DB: SqlBackend>(qb: &mut QueryBuilder<DB>, prefix: &str)
where
    for<'b> String: super::backend::Param<DB>,
{
    let c = DB::BYTE_ORDER;
    match prefix.split_once(':') {
        Some((source, id)) => {
            qb.push("(SELECT s.source, s.subject_id FROM subject s WHERE s.source = ").push_bind(source.to_owned());
            qb.push(format!(" AND lower(s.subject_id){c} >= ")).push_bind(id.to_owned());
            qb.push(format!(" AND lower(s.subject_id){c} < ")).push_bind(prefix_end(id));
            qb.push(")");
        }
        None => {
            qb.push(format!("(SELECT s.source, s.subject_id FROM subject s WHERE lower(s.login_id){c} >= ")).push_bind(prefix.to_owned());
            qb.push(format!(" AND lower(s.login_id){c} < ")).push_bind(prefix_end(prefix));
            qb.push(format!(" UNION SELECT s.source, s.subject_id FROM subject s WHERE lower(s.subject_id){c} >= ")).push_bind(prefix.to_owned());
            qb.push(format!(" AND lower(s.subject_id){c} < ")).push_bind(prefix_end(prefix));
            qb.push(")");
        }
    }
}

sql_impl! {
#[async_trait]
impl ConsolePages for SqlStore<DB> {
    async fn links_in_error(&self, provisioner: &str) -> Result<i64> {
        // The error counts kept with the links (migration 0019's triggers): no link is read.
        let n: Option<i64> = sqlx::query_scalar("SELECT CAST(SUM(in_error) AS BIGINT) FROM link_count WHERE provisioner = $1")
            .bind(provisioner)
            .fetch_one(self.pool())
            .await
            .map_err(db(format!("counting the links of {provisioner} in error")))?;
        Ok(n.unwrap_or(0))
    }

    async fn user_link_page(&self, provisioner: &str, prefix: Option<&str>, cursor: &Cursor, limit: u32) -> Result<KeyPage> {
        let prefix = prefix.map(str::trim).filter(|p| !p.is_empty()).map(str::to_lowercase);
        let context = || format!("reading the user links of {provisioner}");
        let total: i64 = match &prefix {
            None => sqlx::query_scalar("SELECT COUNT(*) FROM sync_user WHERE provisioner = $1").bind(provisioner).fetch_one(self.pool()).await.map_err(db(context()))?,
            Some(p) => {
                let mut qb = QueryBuilder::<DB>::new("SELECT COUNT(*) FROM ");
                push_matches(&mut qb, p);
                qb.push(" m JOIN sync_user su ON su.source = m.source AND su.subject_id = m.subject_id AND su.provisioner = ").push_bind(provisioner.to_owned());
                qb.build_query_scalar().fetch_one(self.pool()).await.map_err(db(context()))?
            }
        };
        // The page's keys (one more than shown, to know whether more follow), then its rows.
        let (edge, descending) = match cursor {
            Cursor::First => (None, false),
            Cursor::After(k) => (Some(k), false),
            Cursor::Before(k) => (Some(k), true),
        };
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT su.source, su.subject_id, s.login_id, su.duo_user_id, su.in_target, su.created_by_us, su.last_provisioned, su.error_code, su.error_message FROM (SELECT k.source, k.subject_id FROM ",
        );
        match &prefix {
            None => {
                qb.push("sync_user k WHERE k.provisioner = ").push_bind(provisioner.to_owned());
            }
            Some(p) => {
                push_matches(&mut qb, p);
                qb.push(" m JOIN sync_user k ON k.source = m.source AND k.subject_id = m.subject_id AND k.provisioner = ").push_bind(provisioner.to_owned()).push(" WHERE 1 = 1");
            }
        }
        if let Some(k) = edge {
            qb.push(if descending { " AND (k.source, k.subject_id) < (" } else { " AND (k.source, k.subject_id) > (" });
            qb.push_bind(k.source.clone()).push(", ").push_bind(k.id.clone()).push(")");
        }
        qb.push(if descending { " ORDER BY k.source DESC, k.subject_id DESC LIMIT " } else { " ORDER BY k.source, k.subject_id LIMIT " });
        qb.push_bind(i64::from(limit) + 1);
        qb.push(") page JOIN sync_user su ON su.provisioner = ").push_bind(provisioner.to_owned());
        qb.push(" AND su.source = page.source AND su.subject_id = page.subject_id LEFT JOIN subject s ON s.source = su.source AND s.subject_id = su.subject_id");
        qb.push(if descending { " ORDER BY su.source DESC, su.subject_id DESC" } else { " ORDER BY su.source, su.subject_id" });
        let mut rows: Vec<LinkTuple> = qb.build_query_as().fetch_all(self.pool()).await.map_err(db(context()))?;
        let beyond = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        if descending {
            rows.reverse();
        }
        let rows: Vec<LinkRow> = rows
            .into_iter()
            .map(|t| LinkRow {
                name: format!("{}:{}", t.0, t.1),
                login: t.2,
                duo_id: t.3,
                in_target: t.4,
                created_by_us: t.5,
                provisioned_at_ms: t.6,
                error_code: t.7,
                error_message: t.8,
            })
            .collect();
        let (more_before, more_after) = match cursor {
            Cursor::First => (false, beyond),
            Cursor::After(_) => (true, beyond),
            Cursor::Before(_) => (beyond, true),
        };
        Ok(KeyPage { rows, total, more_before, more_after })
    }
}
}
