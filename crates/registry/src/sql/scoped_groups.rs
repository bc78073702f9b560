//! [`ScopedGroups`] over SQL: the selection seen from a few subjects and groups (the scoped
//! selection query of [`super::scoped`] reading only the groups it reaches), the recorded rendered
//! group names (`rendered_group`, indexed by provisioner and name, migration 0023), and the group
//! links of a scope by uuid (the primary key) or by Duo group id (`sync_group_duo_group`) with
//! the managed-group count from the partial index `sync_group_managed`.

use sqlx::QueryBuilder;

use super::*;
use duoprov_model::GroupLink;
use super::sync_state::{group_link, GroupLinkTuple};
use crate::scoped::{RenderedCounts, ScopedSelection};
use crate::scoped_groups::{RenderedGroup, ScopedGroups};

/// Groups or ids per statement: well under both backends' parameter limits.
const CHUNK: usize = 400;

const GROUP_LINK_COLS: &str = "SELECT group_uuid, duo_group_id, created_by_us, in_target, pending_name, pending_at FROM sync_group WHERE provisioner = ";

sql_impl! {
#[async_trait]
impl ScopedGroups for SqlStore<DB> {
    async fn scoped_group_selection(&self, provisioner: &str, subjects: &[SubjectKey], groups: &[String], eligible: Option<&GroupName>) -> Result<ScopedSelection> {
        self.selection_seen_from(provisioner, subjects, Some(groups), eligible).await
    }

    async fn rendered_groups_fingerprint(&self, provisioner: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT fingerprint FROM rendered_group_state WHERE provisioner = $1")
            .bind(provisioner)
            .fetch_optional(self.pool())
            .await
            .map_err(db(format!("reading the rendered group names' fingerprint of {provisioner}")))?;
        Ok(row.map(|r| r.0))
    }

    async fn rendered_group_holders(&self, provisioner: &str, names: &[String]) -> Result<Vec<RenderedGroup>> {
        let mut out = Vec::new();
        for chunk in names.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new("SELECT group_uuid, name FROM rendered_group WHERE provisioner = ");
            qb.push_bind(provisioner).push(" AND name IN (");
            let mut list = qb.separated(", ");
            for n in chunk {
                list.push_bind(n.as_str());
            }
            qb.push(")");
            let rows: Vec<(String, Option<String>)> =
                qb.build_query_as().fetch_all(self.pool()).await.map_err(db(format!("reading the rendered group names of {provisioner}")))?;
            out.extend(rows.into_iter().map(|(group_uuid, name)| RenderedGroup { group_uuid, name }));
        }
        out.sort();
        Ok(out)
    }

    async fn rendered_group_count(&self, provisioner: &str) -> Result<usize> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM rendered_group WHERE provisioner = $1")
            .bind(provisioner)
            .fetch_one(self.pool())
            .await
            .map_err(db(format!("counting the selected groups of {provisioner}")))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn replace_rendered_groups(&self, provisioner: &str, fingerprint: &str, rows: &[RenderedGroup]) -> Result<RenderedCounts> {
        let mut tx = self.begin_state_write("starting a rendered-group-names write").await?;
        let existing: Vec<(String, Option<String>)> = sqlx::query_as("SELECT group_uuid, name FROM rendered_group WHERE provisioner = $1")
            .bind(provisioner)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(format!("reading the rendered group names of {provisioner}")))?;
        let existing: HashMap<String, Option<String>> = existing.into_iter().collect();
        let wanted: HashMap<&str, &Option<String>> = rows.iter().map(|r| (r.group_uuid.as_str(), &r.name)).collect();
        let stale: Vec<&String> = existing.iter().filter(|(u, n)| wanted.get(u.as_str()) != Some(n)).map(|(u, _)| u).collect();
        let fresh: Vec<&RenderedGroup> = rows.iter().filter(|r| existing.get(&r.group_uuid) != Some(&r.name)).collect();
        for chunk in stale.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new("DELETE FROM rendered_group WHERE provisioner = ");
            qb.push_bind(provisioner).push(" AND group_uuid IN (");
            let mut list = qb.separated(", ");
            for u in chunk {
                list.push_bind(u.as_str());
            }
            qb.push(")");
            qb.build().execute(&mut *tx).await.map_err(db(format!("removing rendered group names of {provisioner}")))?;
        }
        for chunk in fresh.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new("INSERT INTO rendered_group (provisioner, group_uuid, name) ");
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(provisioner).push_bind(r.group_uuid.as_str()).push_bind(r.name.as_deref());
            });
            qb.push(" ON CONFLICT (provisioner, group_uuid) DO UPDATE SET name = excluded.name");
            qb.build().execute(&mut *tx).await.map_err(db(format!("recording rendered group names of {provisioner}")))?;
        }
        sqlx::query(
            "INSERT INTO rendered_group_state (provisioner, fingerprint, at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (provisioner) DO UPDATE SET fingerprint = excluded.fingerprint, at_ms = excluded.at_ms",
        )
        .bind(provisioner)
        .bind(fingerprint)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(db(format!("recording the rendered group names' fingerprint of {provisioner}")))?;
        tx.commit().await.map_err(db("committing the rendered group names"))?;
        let removed = stale.iter().filter(|u| !wanted.contains_key(u.as_str())).count();
        Ok(RenderedCounts { written: fresh.len(), removed })
    }

    async fn group_links_by_duo_ids(&self, provisioner: &str, duo_group_ids: &[String]) -> Result<Vec<GroupLink>> {
        let mut out = Vec::new();
        for chunk in duo_group_ids.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(GROUP_LINK_COLS);
            qb.push_bind(provisioner).push(" AND duo_group_id IN (");
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            qb.push(")");
            let rows: Vec<GroupLinkTuple> =
                qb.build_query_as().fetch_all(self.pool()).await.map_err(db(format!("reading group links of {provisioner} by Duo group id")))?;
            out.extend(rows.into_iter().map(group_link));
        }
        out.sort_by(|a, b| a.group_uuid.cmp(&b.group_uuid));
        Ok(out)
    }
}
}
