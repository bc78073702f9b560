//! Subjects: adding, updating and removing them (with their memberships), and reading them.

use super::*;

/// The subjects area's functions (a namespace over the database type).
pub(super) struct Subjects<DB>(PhantomData<DB>);

sql_impl! {
impl Subjects<DB> {
    pub(super) async fn subject(store: &SqlStore<DB>, key: &SubjectKey) -> Result<Option<Subject>> {
        let mut conn = store.pool.acquire().await.map_err(db("connecting to the registry"))?;
        Ok(SqlStore::<DB>::subject_row(&mut conn, key).await?.map(subject_of))
    }

    pub(super) async fn subjects(store: &SqlStore<DB>, source: Option<&str>) -> Result<Vec<Subject>> {
        let rows = sqlx::query_as::<_, SubjectTuple>(concat!(
            "SELECT ", subject_cols!(), " FROM subject s WHERE ($1 IS NULL OR s.source = $1) ORDER BY s.source, s.subject_id"
        ))
        .bind(source)
        .fetch_all(&store.pool)
        .await
        .map_err(db("listing subjects"))?;
        Ok(rows.into_iter().map(subject_of).collect())
    }

    pub(super) async fn upsert_subject(store: &SqlStore<DB>, key: &SubjectKey, patch: &SubjectPatch) -> Result<(Subject, Upsert)> {
        check_patch(key, patch)?;
        let mut tx = store.begin_write().await?;
        let result = Self::upsert_subject_in(&mut tx, key, patch, true).await?;
        SqlStore::commit(tx).await?;
        Ok(result)
    }

    pub(super) async fn update_subject(store: &SqlStore<DB>, key: &SubjectKey, patch: &SubjectPatch) -> Result<(Subject, Upsert)> {
        check_patch(key, patch)?;
        let mut tx = store.begin_write().await?;
        let result = Self::upsert_subject_in(&mut tx, key, patch, false).await?;
        SqlStore::commit(tx).await?;
        Ok(result)
    }

    pub(super) async fn remove_subject(store: &SqlStore<DB>, key: &SubjectKey) -> Result<()> {
        let mut tx = store.begin_write().await?;
        let id = Memberships::subject_member_id(&mut tx, key).await?;
        let direct: Vec<i64> = sqlx::query_scalar("SELECT group_id FROM member_subject WHERE subject_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(format!("reading the groups of subject {key}")))?;
        let mut groups = Vec::new();
        for g in direct {
            groups.extend(Groups::self_and_ancestors(&mut tx, g).await?);
        }
        sqlx::query("DELETE FROM subject WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("removing subject {key}")))?;
        Changes::log_change(&mut tx, ChangeKind::SubjectRemoved, groups, vec![key.clone()], vec![], json!({"subject": key})).await?;
        SqlStore::commit(tx).await
    }

    pub(super) async fn upsert_subject_in(tx: &mut Tx<DB>, key: &SubjectKey, patch: &SubjectPatch, create: bool) -> Result<(Subject, Upsert)> {
        let (subject, outcome) = match SqlStore::<DB>::subject_row(tx, key).await? {
            Some(row) => {
                let before = subject_of(row);
                let mut after = before.clone();
                patch.apply_to(&mut after);
                if after == before {
                    return Ok((after, Upsert::Unchanged));
                }
                sqlx::query(
                    "UPDATE subject SET name = $1, login_id = $2, email = $3, first_name = $4, last_name = $5, description = $6 \
                     WHERE source = $7 AND subject_id = $8",
                )
                .bind(&after.name)
                .bind(&after.login_id)
                .bind(&after.email)
                .bind(&after.first_name)
                .bind(&after.last_name)
                .bind(&after.description)
                .bind(&key.source)
                .bind(&key.id)
                .execute(&mut **tx)
                .await
                .map_err(db(format!("updating subject {key}")))?;
                let changed: Vec<&str> = patch.fields().iter().filter(|(_, v)| v.is_some()).map(|(f, _)| *f).collect();
                Changes::log_change(tx, ChangeKind::SubjectUpdated, vec![], vec![key.clone()], vec![], json!({"subject": key, "fields": changed})).await?;
                (after, Upsert::Updated)
            }
            None if create => {
                let mut s = Subject {
                    source: key.source.clone(),
                    id: key.id.clone(),
                    name: None,
                    login_id: None,
                    email: None,
                    first_name: None,
                    last_name: None,
                    description: None,
                };
                patch.apply_to(&mut s);
                sqlx::query(
                    "INSERT INTO subject (source, subject_id, name, login_id, email, first_name, last_name, description) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&s.source)
                .bind(&s.id)
                .bind(&s.name)
                .bind(&s.login_id)
                .bind(&s.email)
                .bind(&s.first_name)
                .bind(&s.last_name)
                .bind(&s.description)
                .execute(&mut **tx)
                .await
                .map_err(db(format!("adding subject {key}")))?;
                Changes::log_change(tx, ChangeKind::SubjectAdded, vec![], vec![key.clone()], vec![], json!({"subject": key})).await?;
                (s, Upsert::Created)
            }
            None => return Err(not_found(format!("subject {key}"))),
        };
        Ok((subject, outcome))
    }
}
}
