//! [`ScopedLinks`] over SQL: group links looked up by uuid and user links by subject (the primary
//! keys) or by Duo user id (`sync_user_duo_user`, migration 0022), and the managed-user and
//! managed-group counts from the partial indexes `sync_user_managed` and `sync_group_managed`
//! (migration 0023) instead of reading every link.

use sqlx::QueryBuilder;

use super::*;
use duoprov_model::{Links, UserLink};
use super::scoped::push_subject_keys;
use super::sync_state::{group_link, user_link, GroupLinkTuple, UserLinkTuple, GROUP_LINKS};
use crate::scoped_links::{ScopedLinkRead, ScopedLinks};

/// Subjects or ids per statement: well under both backends' parameter limits.
const CHUNK: usize = 400;

const USER_LINK_COLS: &str = "SELECT source, subject_id, duo_user_id, created_by_us, in_target, pending_name, pending_at FROM sync_user WHERE provisioner = ";

sql_impl! {
#[async_trait]
impl ScopedLinks for SqlStore<DB> {
    async fn scoped_links(&self, provisioner: &str, subjects: &[SubjectKey], asked: Option<&[String]>) -> Result<ScopedLinkRead> {
        let mut tx = self.begin_read().await?;
        let groups: Vec<GroupLinkTuple> = match asked {
            None => sqlx::query_as(GROUP_LINKS)
                .bind(provisioner)
                .fetch_all(&mut *tx)
                .await
                .map_err(db(format!("reading the group links of {provisioner}")))?,
            Some(uuids) => {
                let mut rows: Vec<GroupLinkTuple> = Vec::new();
                for chunk in uuids.chunks(CHUNK) {
                    let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                        "SELECT group_uuid, duo_group_id, created_by_us, in_target, pending_name, pending_at FROM sync_group WHERE provisioner = ",
                    );
                    qb.push_bind(provisioner).push(" AND group_uuid IN (");
                    let mut list = qb.separated(", ");
                    for u in chunk {
                        list.push_bind(u.as_str());
                    }
                    qb.push(")");
                    rows.extend(qb.build_query_as::<GroupLinkTuple>().fetch_all(&mut *tx).await.map_err(db(format!("reading group links of {provisioner}")))?);
                }
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                rows
            }
        };
        let mut users: Vec<UserLink> = Vec::new();
        let mut disabled: Vec<SubjectKey> = Vec::new();
        for chunk in subjects.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(USER_LINK_COLS);
            qb.push_bind(provisioner).push(" AND ");
            push_subject_keys(&mut qb, chunk);
            let rows: Vec<UserLinkTuple> = qb.build_query_as().fetch_all(&mut *tx).await.map_err(db(format!("reading user links of {provisioner}")))?;
            users.extend(rows.into_iter().map(user_link));
            let mut qb: QueryBuilder<DB> = QueryBuilder::new("SELECT source, subject_id FROM sync_user_disabled WHERE provisioner = ");
            qb.push_bind(provisioner).push(" AND ");
            push_subject_keys(&mut qb, chunk);
            let rows: Vec<(String, String)> =
                qb.build_query_as().fetch_all(&mut *tx).await.map_err(db(format!("reading the users provisioner {provisioner} disabled")))?;
            disabled.extend(rows.into_iter().map(|(s, i)| SubjectKey::new(s, i)));
        }
        users.sort_by(|a, b| a.subject.cmp(&b.subject));
        let (managed,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sync_user WHERE provisioner = $1 AND in_target AND duo_user_id IS NOT NULL")
            .bind(provisioner)
            .fetch_one(&mut *tx)
            .await
            .map_err(db(format!("counting the users {provisioner} manages")))?;
        let (managed_groups,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sync_group WHERE provisioner = $1 AND in_target AND duo_group_id IS NOT NULL")
            .bind(provisioner)
            .fetch_one(&mut *tx)
            .await
            .map_err(db(format!("counting the groups {provisioner} manages")))?;
        let first: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT duo_user_id FROM sync_user WHERE provisioner = $1 AND duo_user_id IS NOT NULL ORDER BY source, subject_id LIMIT 1",
        )
        .bind(provisioner)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db(format!("reading a linked user of {provisioner}")))?;
        tx.rollback().await.map_err(db("ending a read"))?;
        Ok(ScopedLinkRead {
            links: Links {
                groups: groups.into_iter().map(group_link).collect(),
                users,
                foreign: Default::default(),
                disabled_by_us: disabled.into_iter().collect(),
            },
            managed_users: usize::try_from(managed).unwrap_or(0),
            managed_groups: usize::try_from(managed_groups).unwrap_or(0),
            first_linked_user: first.and_then(|r| r.0),
        })
    }

    async fn user_links_by_duo_ids(&self, provisioner: &str, duo_user_ids: &[String]) -> Result<Vec<UserLink>> {
        let mut out = Vec::new();
        for chunk in duo_user_ids.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(USER_LINK_COLS);
            qb.push_bind(provisioner).push(" AND duo_user_id IN (");
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            qb.push(")");
            let rows: Vec<UserLinkTuple> =
                qb.build_query_as().fetch_all(self.pool()).await.map_err(db(format!("reading user links of {provisioner} by Duo user id")))?;
            out.extend(rows.into_iter().map(user_link));
        }
        out.sort_by(|a, b| a.subject.cmp(&b.subject));
        Ok(out)
    }
}
}
