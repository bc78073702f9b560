//! The scoped reads of an incremental run over SQL ([`ScopedReads`]): the selection seen from a
//! few subjects (their immediate groups, then one recursive query upwards through nesting), and
//! the recorded rendered usernames (`rendered_username`, indexed by provisioner and username).

use sqlx::QueryBuilder;

use super::*;
use crate::scoped::{RenderedCounts, RenderedName, ScopedReads, ScopedSelection};

/// Subjects or rows per statement: well under both backends' parameter limits.
const CHUNK: usize = 400;

sql_impl! {
#[async_trait]
impl ScopedReads for SqlStore<DB> {
    async fn scoped_selection(&self, provisioner: &str, subjects: &[SubjectKey], eligible: Option<&GroupName>) -> Result<ScopedSelection> {
        self.selection_seen_from(provisioner, subjects, None, eligible).await
    }

    async fn rendered_fingerprint(&self, provisioner: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT fingerprint FROM rendered_state WHERE provisioner = $1")
            .bind(provisioner)
            .fetch_optional(self.pool())
            .await
            .map_err(db(format!("reading the rendered usernames' fingerprint of {provisioner}")))?;
        Ok(row.map(|r| r.0))
    }

    async fn rendered_of(&self, provisioner: &str, subjects: &[SubjectKey]) -> Result<Vec<RenderedName>> {
        let mut out = Vec::new();
        for chunk in subjects.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new("SELECT source, subject_id, username_key FROM rendered_username WHERE provisioner = ");
            qb.push_bind(provisioner).push(" AND ");
            push_subject_keys(&mut qb, chunk);
            let rows: Vec<(String, String, String)> =
                qb.build_query_as().fetch_all(self.pool()).await.map_err(db(format!("reading the rendered usernames of {provisioner}")))?;
            out.extend(rows.into_iter().map(|(s, i, k)| RenderedName { subject: SubjectKey::new(&s, &i), username_key: k }));
        }
        out.sort();
        Ok(out)
    }

    async fn rendered_holders(&self, provisioner: &str, keys: &[String]) -> Result<Vec<RenderedName>> {
        let mut out = Vec::new();
        for chunk in keys.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new("SELECT source, subject_id, username_key FROM rendered_username WHERE provisioner = ");
            qb.push_bind(provisioner).push(" AND username_key IN (");
            let mut list = qb.separated(", ");
            for k in chunk {
                list.push_bind(k.as_str());
            }
            qb.push(")");
            let rows: Vec<(String, String, String)> =
                qb.build_query_as().fetch_all(self.pool()).await.map_err(db(format!("reading the rendered usernames of {provisioner}")))?;
            out.extend(rows.into_iter().map(|(s, i, k)| RenderedName { subject: SubjectKey::new(&s, &i), username_key: k }));
        }
        out.sort();
        Ok(out)
    }

    async fn replace_rendered(&self, provisioner: &str, fingerprint: &str, rows: &[RenderedName]) -> Result<RenderedCounts> {
        let mut tx = self.begin_state_write("starting a rendered-usernames write").await?;
        let existing: Vec<(String, String, String)> = sqlx::query_as("SELECT source, subject_id, username_key FROM rendered_username WHERE provisioner = $1")
            .bind(provisioner)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(format!("reading the rendered usernames of {provisioner}")))?;
        let existing: HashMap<SubjectKey, String> = existing.into_iter().map(|(s, i, k)| (SubjectKey::new(&s, &i), k)).collect();
        let wanted: HashMap<&SubjectKey, &str> = rows.iter().map(|r| (&r.subject, r.username_key.as_str())).collect();
        let stale: Vec<SubjectKey> = existing.iter().filter(|(s, k)| wanted.get(s) != Some(&k.as_str())).map(|(s, _)| s.clone()).collect();
        let fresh: Vec<&RenderedName> = rows.iter().filter(|r| existing.get(&r.subject) != Some(&r.username_key)).collect();
        Self::delete_rendered(&mut tx, provisioner, &stale).await?;
        Self::insert_rendered(&mut tx, provisioner, &fresh).await?;
        Self::set_rendered_state(&mut tx, provisioner, fingerprint).await?;
        tx.commit().await.map_err(db("committing the rendered usernames"))?;
        let removed = stale.iter().filter(|s| !wanted.contains_key(s)).count();
        Ok(RenderedCounts { written: fresh.len(), removed })
    }

    async fn update_rendered(&self, provisioner: &str, fingerprint: &str, subjects: &[SubjectKey], rows: &[RenderedName]) -> Result<bool> {
        let mut tx = self.begin_state_write("starting a rendered-usernames write").await?;
        let recorded: Option<(String,)> = sqlx::query_as("SELECT fingerprint FROM rendered_state WHERE provisioner = $1")
            .bind(provisioner)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(format!("reading the rendered usernames' fingerprint of {provisioner}")))?;
        if recorded.map(|r| r.0).as_deref() != Some(fingerprint) {
            tx.rollback().await.map_err(db("ending a rendered-usernames write"))?;
            return Ok(false);
        }
        Self::delete_rendered(&mut tx, provisioner, subjects).await?;
        let fresh: Vec<&RenderedName> = rows.iter().collect();
        Self::insert_rendered(&mut tx, provisioner, &fresh).await?;
        tx.commit().await.map_err(db("committing the rendered usernames"))?;
        Ok(true)
    }
}
}

sql_impl! {
impl SqlStore<DB> {
    /// The selection seen from `subjects` ([`ScopedReads::scoped_selection`]); with `groups`,
    /// only the selected groups among those a subject is in and those of these uuids
    /// ([`crate::ScopedGroups::scoped_group_selection`]), else every selected group.
    pub(super) async fn selection_seen_from(
        &self,
        provisioner: &str,
        subjects: &[SubjectKey],
        groups: Option<&[String]>,
        eligible: Option<&GroupName>,
    ) -> Result<ScopedSelection> {
        let mut tx = self.begin_read().await?;
        let markers = Selection::<DB>::markers_in(&mut tx, provisioner).await?;
        let index = MarkerIndex::new(&markers);
        let eligible_id = match eligible {
            Some(g) => Some(SqlStore::<DB>::require_group(&mut tx, g).await?.0),
            None => None,
        };
        let mut out = ScopedSelection {
            selection: ProvisionerSelection { provisioner: provisioner.to_owned(), ..Default::default() },
            eligible: eligible.map(|_| Vec::new()),
        };

        // The subjects' row ids.
        let mut ids: Vec<i64> = Vec::with_capacity(subjects.len());
        for chunk in subjects.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new("SELECT s.id FROM subject s WHERE ");
            for (i, k) in chunk.iter().enumerate() {
                if i > 0 {
                    qb.push(" OR ");
                }
                qb.push("(s.source = ").push_bind(k.source.as_str()).push(" AND s.subject_id = ").push_bind(k.id.as_str()).push(")");
            }
            let rows: Vec<(i64,)> = qb.build_query_as().fetch_all(&mut *tx).await.map_err(db("finding the changed subjects"))?;
            ids.extend(rows.into_iter().map(|r| r.0));
        }
        ids.sort_unstable();
        ids.dedup();
        let ids_json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());

        // Every group each subject is in, immediately or through nesting: one recursive walk
        // upwards from the subjects' immediate groups (UNION ends it on a repeated pair).
        let up_sql = format!(
            "WITH RECURSIVE up(subject_id, group_id) AS (\
               SELECT subject_id, group_id FROM member_subject WHERE subject_id IN ({}) \
               UNION SELECT up.subject_id, mg.group_id FROM member_group mg JOIN up ON mg.member_group_id = up.group_id) \
             SELECT subject_id, group_id FROM up",
            DB::JSON_IDS
        );
        let pairs: Vec<(i64, i64)> = if ids.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(sqlx::AssertSqlSafe(up_sql))
                .bind(&ids_json)
                .fetch_all(&mut *tx)
                .await
                .map_err(db("walking the changed subjects' groups upwards"))?
        };
        let mut groups_of: HashMap<i64, HashSet<i64>> = HashMap::new();
        for (s, g) in pairs {
            groups_of.entry(s).or_default().insert(g);
        }

        let selected: Vec<GroupTuple> = if index.is_empty() {
            Vec::new()
        } else if let Some(named) = groups {
            // Only the groups a subject is in and the named ones: the markers decide by name.
            let mut ids_in: Vec<i64> = groups_of.values().flatten().copied().collect();
            ids_in.sort_unstable();
            ids_in.dedup();
            let mut rows: Vec<GroupTuple> = Vec::new();
            if !ids_in.is_empty() {
                let sql = format!(concat!("SELECT ", group_cols!(), " FROM grp g WHERE g.id IN ({})"), DB::JSON_IDS);
                rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(serde_json::to_string(&ids_in).unwrap_or_else(|_| "[]".into()))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db("reading the changed subjects' groups"))?;
            }
            for chunk in named.chunks(CHUNK) {
                let mut qb: QueryBuilder<DB> = QueryBuilder::new(concat!("SELECT ", group_cols!(), " FROM grp g WHERE g.uuid IN ("));
                let mut list = qb.separated(", ");
                for u in chunk {
                    list.push_bind(u.as_str());
                }
                qb.push(")");
                let more: Vec<GroupTuple> = qb.build_query_as().fetch_all(&mut *tx).await.map_err(db("reading the changed groups"))?;
                rows.extend(more);
            }
            rows.sort_by(|a, b| a.2.cmp(&b.2));
            rows.dedup_by_key(|g| g.0);
            rows.into_iter().filter(|g| index.selects(&g.2)).collect()
        } else {
            let groups: Vec<GroupTuple> = sqlx::query_as(concat!("SELECT ", group_cols!(), " FROM grp g ORDER BY g.name"))
                .fetch_all(&mut *tx)
                .await
                .map_err(db("reading groups"))?;
            groups.into_iter().filter(|g| index.selects(&g.2)).collect()
        };
        let selected_ids: HashSet<i64> = selected.iter().map(|g| g.0).collect();
        let in_selection: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|s| groups_of.get(s).is_some_and(|gs| gs.iter().any(|g| selected_ids.contains(g))))
            .collect();

        // The rows of the subjects in the selection, in the order a full selection reads them.
        let subjects_sql = format!(concat!("SELECT ", subject_cols!(), " FROM subject s WHERE s.id IN ({}) ORDER BY s.source, s.subject_id"), DB::JSON_IDS);
        let rows: Vec<SubjectTuple> = if in_selection.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(sqlx::AssertSqlSafe(subjects_sql))
                .bind(serde_json::to_string(&in_selection).unwrap_or_else(|_| "[]".into()))
                .fetch_all(&mut *tx)
                .await
                .map_err(db("reading the changed subjects"))?
        };
        if let (Some(list), Some(e)) = (out.eligible.as_mut(), eligible_id) {
            let keys: Vec<(i64, SubjectKey)> = if ids.is_empty() {
                Vec::new()
            } else if rows.is_empty() {
                let all_sql = format!("SELECT s.id, s.source, s.subject_id FROM subject s WHERE s.id IN ({})", DB::JSON_IDS);
                let all: Vec<(i64, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(all_sql))
                    .bind(&ids_json)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db("reading the changed subjects"))?;
                all.into_iter().map(|(i, s, k)| (i, SubjectKey::new(&s, &k))).collect()
            } else {
                rows.iter().map(|r| (r.0, SubjectKey::new(&r.1, &r.2))).collect()
            };
            list.extend(keys.into_iter().filter(|(i, _)| groups_of.get(i).is_some_and(|gs| gs.contains(&e))).map(|(_, k)| k));
            list.sort();
        }
        tx.rollback().await.map_err(db("ending a read"))?;

        let position: Vec<(i64, u32)> = rows.iter().enumerate().map(|(i, r)| (r.0, i as u32)).collect();
        for g in &selected {
            let members: Vec<u32> = position.iter().filter(|(s, _)| groups_of.get(s).is_some_and(|gs| gs.contains(&g.0))).map(|(_, i)| *i).collect();
            out.selection.groups.push(ProvisionableGroup { group: group_of(g)?, members });
        }
        out.selection.subjects = rows.into_iter().map(subject_of).collect();
        Ok(out)
    }
}
}

sql_impl! {
impl SqlStore<DB> {
    async fn delete_rendered(tx: &mut Tx<DB>, provisioner: &str, subjects: &[SubjectKey]) -> Result<()> {
        for chunk in subjects.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new("DELETE FROM rendered_username WHERE provisioner = ");
            qb.push_bind(provisioner).push(" AND ");
            push_subject_keys(&mut qb, chunk);
            qb.build().execute(&mut **tx).await.map_err(db(format!("removing rendered usernames of {provisioner}")))?;
        }
        Ok(())
    }

    async fn insert_rendered(tx: &mut Tx<DB>, provisioner: &str, rows: &[&RenderedName]) -> Result<()> {
        for chunk in rows.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new("INSERT INTO rendered_username (provisioner, source, subject_id, username_key) ");
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(provisioner).push_bind(r.subject.source.as_str()).push_bind(r.subject.id.as_str()).push_bind(r.username_key.as_str());
            });
            qb.push(" ON CONFLICT (provisioner, source, subject_id) DO UPDATE SET username_key = excluded.username_key");
            qb.build().execute(&mut **tx).await.map_err(db(format!("recording rendered usernames of {provisioner}")))?;
        }
        Ok(())
    }

    async fn set_rendered_state(tx: &mut Tx<DB>, provisioner: &str, fingerprint: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO rendered_state (provisioner, fingerprint, at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (provisioner) DO UPDATE SET fingerprint = excluded.fingerprint, at_ms = excluded.at_ms",
        )
        .bind(provisioner)
        .bind(fingerprint)
        .bind(now_ms())
        .execute(&mut **tx)
        .await
        .map_err(db(format!("recording the rendered usernames' fingerprint of {provisioner}")))?;
        Ok(())
    }
}
}

/// Appends `((source = $a AND subject_id = $b) OR …)` matching the subjects `keys`.
pub(super) fn push_subject_keys<DB: SqlBackend>(qb: &mut QueryBuilder<DB>, keys: &[SubjectKey])
where
    for<'x> &'x str: super::backend::Param<DB>,
{
    qb.push("(");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        qb.push("(source = ").push_bind(k.source.as_str()).push(" AND subject_id = ").push_bind(k.id.as_str()).push(")");
    }
    qb.push(")");
}
