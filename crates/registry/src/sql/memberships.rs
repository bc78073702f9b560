//! Memberships: immediate members added and removed in all-or-nothing batches with cycle checks,
//! immediate and effective members read.

use super::*;

/// The memberships area's functions (a namespace over the database type).
pub(super) struct Memberships<DB>(PhantomData<DB>);

sql_impl! {
impl Memberships<DB> {
    pub(super) async fn subject_member_id(tx: &mut Tx<DB>, key: &SubjectKey) -> Result<i64> {
        Ok(SqlStore::<DB>::subject_row(tx, key).await?.ok_or_else(|| not_found(format!("subject {key}")))?.0)
    }

    /// Every problem of a batch of membership changes as one error; a single problem keeps its own
    /// kind (`NotFound` stays `NotFound`).
    pub(super) fn batch_refusal(mut problems: Vec<RegistryError>) -> RegistryError {
        if problems.len() == 1 {
            return problems.remove(0);
        }
        RegistryError::Refused(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
    }

    /// Adds one immediate member inside the batch's transaction, with its change-log entry.
    pub(super) async fn add_one_member(tx: &mut Tx<DB>, g: &GroupTuple, group: &GroupName, member: &GroupMember) -> Result<bool> {
        let (added, subjects) = match member {
            GroupMember::Subject(key) => {
                let sid = Self::subject_member_id(tx, key).await?;
                let r = sqlx::query("INSERT INTO member_subject (group_id, subject_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(g.0)
                    .bind(sid)
                    .execute(&mut **tx)
                    .await
                    .map_err(db(format!("adding subject {key} to group {group}")))?;
                (DB::rows_affected(&r) > 0, vec![key.clone()])
            }
            GroupMember::Group { name } => {
                let m = SqlStore::<DB>::require_group(tx, name).await?;
                if m.0 == g.0 {
                    return Err(RegistryError::Refused(format!("group {group} cannot be a member of itself")));
                }
                if Self::contains(tx, m.0, g.0).await? {
                    return Err(RegistryError::Refused(format!(
                        "adding group {name} to group {group} would make a cycle: {name} already contains {group} through nesting"
                    )));
                }
                let r = sqlx::query("INSERT INTO member_group (group_id, member_group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(g.0)
                    .bind(m.0)
                    .execute(&mut **tx)
                    .await
                    .map_err(db(format!("adding group {name} to group {group}")))?;
                (DB::rows_affected(&r) > 0, vec![])
            }
        };
        if added {
            let affected = Groups::self_and_ancestors(tx, g.0).await?;
            Changes::log_change(tx, ChangeKind::MemberAdded, affected, subjects, vec![], json!({"group": group, "member": member})).await?;
        }
        Ok(added)
    }

    /// Removes one immediate member inside the batch's transaction, with its change-log entry.
    pub(super) async fn remove_one_member(tx: &mut Tx<DB>, g: &GroupTuple, group: &GroupName, member: &GroupMember) -> Result<bool> {
        let (removed, subjects) = match member {
            GroupMember::Subject(key) => {
                let sid = Self::subject_member_id(tx, key).await?;
                let r = sqlx::query("DELETE FROM member_subject WHERE group_id = $1 AND subject_id = $2")
                    .bind(g.0)
                    .bind(sid)
                    .execute(&mut **tx)
                    .await
                    .map_err(db(format!("removing subject {key} from group {group}")))?;
                (DB::rows_affected(&r) > 0, vec![key.clone()])
            }
            GroupMember::Group { name } => {
                let m = SqlStore::<DB>::require_group(tx, name).await?;
                let r = sqlx::query("DELETE FROM member_group WHERE group_id = $1 AND member_group_id = $2")
                    .bind(g.0)
                    .bind(m.0)
                    .execute(&mut **tx)
                    .await
                    .map_err(db(format!("removing group {name} from group {group}")))?;
                (DB::rows_affected(&r) > 0, vec![])
            }
        };
        if removed {
            let affected = Groups::self_and_ancestors(tx, g.0).await?;
            Changes::log_change(tx, ChangeKind::MemberRemoved, affected, subjects, vec![], json!({"group": group, "member": member})).await?;
        }
        Ok(removed)
    }

    /// True when `inner` (a group id) contains `outer` through nesting, or is `outer`.
    pub(super) async fn contains(tx: &mut Tx<DB>, inner: i64, outer: i64) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "WITH RECURSIVE down(id) AS (SELECT CAST($1 AS BIGINT) UNION SELECT mg.member_group_id FROM member_group mg JOIN down ON mg.group_id = down.id) \
             SELECT id FROM down WHERE id = $2",
        )
        .bind(inner)
        .bind(outer)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db("checking group nesting for a cycle"))?;
        Ok(found.is_some())
    }

    pub(super) async fn members(store: &SqlStore<DB>, group: &GroupName) -> Result<Vec<GroupMember>> {
        let mut tx = store.begin_read().await?;
        let g = SqlStore::<DB>::require_group(&mut tx, group).await?;
        let subjects: Vec<(String, String)> = sqlx::query_as(
            "SELECT s.source, s.subject_id FROM member_subject ms JOIN subject s ON s.id = ms.subject_id WHERE ms.group_id = $1 ORDER BY s.source, s.subject_id",
        )
        .bind(g.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db(format!("listing the members of group {group}")))?;
        let groups: Vec<String> = sqlx::query_scalar(
            "SELECT m.name FROM member_group mg JOIN grp m ON m.id = mg.member_group_id WHERE mg.group_id = $1 ORDER BY m.name",
        )
        .bind(g.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(db(format!("listing the member groups of group {group}")))?;
        let mut out: Vec<GroupMember> = subjects.into_iter().map(|(s, i)| GroupMember::Subject(SubjectKey::new(s, i))).collect();
        for name in groups {
            out.push(GroupMember::Group { name: GroupName::parse(&name)? });
        }
        Ok(out)
    }

    pub(super) async fn effective_members(store: &SqlStore<DB>, group: &GroupName) -> Result<Vec<EffectiveMember>> {
        let mut tx = store.begin_read().await?;
        Self::effective_in(&mut tx, group).await
    }

    pub(super) async fn add_member(store: &SqlStore<DB>, group: &GroupName, member: &GroupMember) -> Result<bool> {
        Ok(store.add_members(group, std::slice::from_ref(member)).await?[0])
    }

    pub(super) async fn add_members(store: &SqlStore<DB>, group: &GroupName, members: &[GroupMember]) -> Result<Vec<bool>> {
        let mut tx = store.begin_write().await?;
        let g = SqlStore::<DB>::require_group(&mut tx, group).await?;
        let mut outcomes = Vec::with_capacity(members.len());
        let mut problems = Vec::new();
        for member in members {
            match Self::add_one_member(&mut tx, &g, group, member).await {
                Ok(added) => outcomes.push(added),
                Err(e @ (RegistryError::NotFound { .. } | RegistryError::Refused(_))) => problems.push(e),
                Err(e) => return Err(e),
            }
        }
        if !problems.is_empty() {
            return Err(Self::batch_refusal(problems));
        }
        SqlStore::commit(tx).await?;
        Ok(outcomes)
    }

    pub(super) async fn remove_member(store: &SqlStore<DB>, group: &GroupName, member: &GroupMember) -> Result<bool> {
        Ok(store.remove_members(group, std::slice::from_ref(member)).await?[0])
    }

    pub(super) async fn remove_members(store: &SqlStore<DB>, group: &GroupName, members: &[GroupMember]) -> Result<Vec<bool>> {
        let mut tx = store.begin_write().await?;
        let g = SqlStore::<DB>::require_group(&mut tx, group).await?;
        let mut outcomes = Vec::with_capacity(members.len());
        let mut problems = Vec::new();
        for member in members {
            match Self::remove_one_member(&mut tx, &g, group, member).await {
                Ok(removed) => outcomes.push(removed),
                Err(e @ (RegistryError::NotFound { .. } | RegistryError::Refused(_))) => problems.push(e),
                Err(e) => return Err(e),
            }
        }
        if !problems.is_empty() {
            return Err(Self::batch_refusal(problems));
        }
        SqlStore::commit(tx).await?;
        Ok(outcomes)
    }

    /// The effective members of `group` (subjects reached through nesting), inside `tx`.
    pub(super) async fn effective_in(tx: &mut Tx<DB>, group: &GroupName) -> Result<Vec<EffectiveMember>> {
        let g = SqlStore::<DB>::require_group(tx, group).await?;
        let rows: Vec<EffectiveRow> =
            sqlx::query_as(concat!(
                "WITH RECURSIVE down(id) AS (SELECT CAST($1 AS BIGINT) UNION SELECT mg.member_group_id FROM member_group mg JOIN down ON mg.group_id = down.id) ",
                "SELECT ", subject_cols!(), ", EXISTS (SELECT 1 FROM member_subject i WHERE i.group_id = $1 AND i.subject_id = s.id) ",
                "FROM subject s WHERE s.id IN (SELECT ms.subject_id FROM member_subject ms JOIN down ON ms.group_id = down.id) ",
                "ORDER BY s.source, s.subject_id"
            ))
            .bind(g.0)
            .fetch_all(&mut **tx)
            .await
            .map_err(db(format!("computing the effective members of group {group}")))?;
        Ok(rows
            .into_iter()
            .map(|r| EffectiveMember {
                immediate: r.9,
                subject: subject_of((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8)),
            })
            .collect())
    }
}
}
