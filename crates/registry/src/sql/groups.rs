//! Groups: adding, renaming or moving, removing, reading; the groups above a group through
//! nesting and the groups below a folder, which change-log entries name.

use super::*;

/// The groups area's functions (a namespace over the database type).
pub(super) struct Groups<DB>(PhantomData<DB>);

sql_impl! {
impl Groups<DB> {
    /// The uuids of the group and of every group that contains it through nesting.
    pub(super) async fn self_and_ancestors(tx: &mut Tx<DB>, group_id: i64) -> Result<Vec<String>> {
        sqlx::query_scalar::<_, String>(
            "WITH RECURSIVE up(id) AS (SELECT CAST($1 AS BIGINT) UNION SELECT mg.group_id FROM member_group mg JOIN up ON mg.member_group_id = up.id) \
             SELECT g.uuid FROM up JOIN grp g ON g.id = up.id",
        )
        .bind(group_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(db("reading the groups that contain a group"))
    }

    /// The uuids of every group below a folder.
    pub(super) async fn groups_under(tx: &mut Tx<DB>, path: &str) -> Result<Vec<(i64, String)>> {
        let prefix = format!("{path}:");
        sqlx::query_as::<_, (i64, String)>("SELECT id, uuid FROM grp WHERE substr(name, 1, CAST($1 AS INTEGER)) = $2")
            .bind(prefix.chars().count() as i64)
            .bind(&prefix)
            .fetch_all(&mut **tx)
            .await
            .map_err(db(format!("reading the groups under folder {path}")))
    }

    pub(super) async fn group(store: &SqlStore<DB>, name: &GroupName) -> Result<Option<Group>> {
        let mut conn = store.pool.acquire().await.map_err(db("connecting to the registry"))?;
        SqlStore::<DB>::group_row(&mut conn, name.as_str()).await?.as_ref().map(group_of).transpose()
    }

    pub(super) async fn existing_uuids(store: &SqlStore<DB>, uuids: &[String]) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in uuids.chunks(BATCH) {
            let mut qb = sqlx::QueryBuilder::<DB>::new("SELECT uuid FROM grp WHERE uuid IN (");
            let mut list = qb.separated(", ");
            for uuid in chunk {
                list.push_bind(uuid.as_str());
            }
            qb.push(")");
            let rows: Vec<(String,)> = qb.build_query_as().fetch_all(&store.pool).await.map_err(db("checking which groups still exist"))?;
            found.extend(rows.into_iter().map(|(uuid,)| uuid));
        }
        Ok(found)
    }

    pub(super) async fn groups(store: &SqlStore<DB>, under: Option<&FolderPath>) -> Result<Vec<Group>> {
        let prefix = under.map(|p| format!("{p}:"));
        let rows = sqlx::query_as::<_, GroupTuple>(concat!(
            "SELECT ", group_cols!(), " FROM grp g WHERE $1 IS NULL OR substr(g.name, 1, CAST($2 AS INTEGER)) = $1 ORDER BY g.name"
        ))
        .bind(prefix.as_deref())
        .bind(prefix.as_ref().map(|p| p.chars().count() as i64).unwrap_or(0))
        .fetch_all(&store.pool)
        .await
        .map_err(db("listing groups"))?;
        rows.iter().map(group_of).collect()
    }

    pub(super) async fn add_group(store: &SqlStore<DB>, name: &GroupName, attrs: &NodeAttrs, create_parents: bool) -> Result<(Group, Upsert)> {
        check_attrs(&format!("group {name}"), attrs)?;
        let mut tx = store.begin_write().await?;
        if SqlStore::<DB>::folder_row(&mut tx, name.as_str()).await?.is_some() {
            return Err(RegistryError::Refused(format!("cannot add group {name}: a folder of that name exists")));
        }
        let outcome = match SqlStore::<DB>::group_row(&mut tx, name.as_str()).await? {
            Some(g) => {
                let mut values = (g.4.clone(), g.5.clone());
                if apply_attrs(&mut values, attrs) {
                    sqlx::query("UPDATE grp SET display_name = $1, description = $2 WHERE id = $3")
                        .bind(&values.0)
                        .bind(&values.1)
                        .bind(g.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(db(format!("updating group {name}")))?;
                    Changes::log_change(&mut tx, ChangeKind::GroupUpdated, vec![g.1.clone()], vec![], vec![], json!({"group": name})).await?;
                    Upsert::Updated
                } else {
                    Upsert::Unchanged
                }
            }
            None => {
                let mut created = Vec::new();
                let folder_id = match name.parent() {
                    Some(parent) => Some(Folders::ensure_folder(&mut tx, &parent, create_parents, &mut created).await?),
                    None => None,
                };
                let uuid = uuid::Uuid::new_v4().to_string();
                sqlx::query("INSERT INTO grp (uuid, name, folder_id, display_name, description) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&uuid)
                    .bind(name.as_str())
                    .bind(folder_id)
                    .bind(attrs.display_name.clone().flatten())
                    .bind(attrs.description.clone().flatten())
                    .execute(&mut *tx)
                    .await
                    .map_err(db(format!("adding group {name}")))?;
                if !created.is_empty() {
                    Changes::log_change(&mut tx, ChangeKind::FolderAdded, vec![], vec![], vec![], json!({"folders": created})).await?;
                }
                Changes::log_change(&mut tx, ChangeKind::GroupAdded, vec![uuid], vec![], vec![], json!({"group": name})).await?;
                Upsert::Created
            }
        };
        let group = group_of(&SqlStore::<DB>::require_group(&mut tx, name).await?)?;
        SqlStore::commit(tx).await?;
        Ok((group, outcome))
    }

    pub(super) async fn update_group(store: &SqlStore<DB>, name: &GroupName, rename_to: Option<&GroupName>, attrs: &NodeAttrs, create_parents: bool) -> Result<Group> {
        check_attrs(&format!("group {name}"), attrs)?;
        let mut tx = store.begin_write().await?;
        let g = SqlStore::<DB>::require_group(&mut tx, name).await?;
        let mut current = name.clone();
        let mut detail = json!({"group": name});
        if let Some(to) = rename_to.filter(|to| *to != name) {
            if SqlStore::<DB>::group_row(&mut tx, to.as_str()).await?.is_some() || SqlStore::<DB>::folder_row(&mut tx, to.as_str()).await?.is_some() {
                return Err(RegistryError::Refused(format!("cannot rename group {name} to {to}: that name is taken")));
            }
            let mut created = Vec::new();
            let folder_id = match to.parent() {
                Some(parent) => Some(Folders::ensure_folder(&mut tx, &parent, create_parents, &mut created).await?),
                None => None,
            };
            if !created.is_empty() {
                Changes::log_change(&mut tx, ChangeKind::FolderAdded, vec![], vec![], vec![], json!({"folders": created})).await?;
            }
            sqlx::query("UPDATE grp SET name = $1, folder_id = $2 WHERE id = $3")
                .bind(to.as_str())
                .bind(folder_id)
                .bind(g.0)
                .execute(&mut *tx)
                .await
                .map_err(db(format!("renaming group {name} to {to}")))?;
            detail = json!({"group": to, "from": name});
            current = to.clone();
        }
        let mut values = (g.4.clone(), g.5.clone());
        let changed_attrs = apply_attrs(&mut values, attrs);
        if changed_attrs {
            sqlx::query("UPDATE grp SET display_name = $1, description = $2 WHERE id = $3")
                .bind(&values.0)
                .bind(&values.1)
                .bind(g.0)
                .execute(&mut *tx)
                .await
                .map_err(db(format!("updating group {current}")))?;
        }
        if changed_attrs || current != *name {
            Changes::log_change(&mut tx, ChangeKind::GroupUpdated, vec![g.1.clone()], vec![], vec![], detail).await?;
        }
        let group = group_of(&SqlStore::<DB>::require_group(&mut tx, &current).await?)?;
        SqlStore::commit(tx).await?;
        Ok(group)
    }

    pub(super) async fn remove_group(store: &SqlStore<DB>, name: &GroupName) -> Result<()> {
        let mut tx = store.begin_write().await?;
        let g = SqlStore::<DB>::require_group(&mut tx, name).await?;
        let affected = Self::self_and_ancestors(&mut tx, g.0).await?;
        sqlx::query("DELETE FROM grp WHERE id = $1")
            .bind(g.0)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("removing group {name}")))?;
        Changes::log_change(&mut tx, ChangeKind::GroupRemoved, affected, vec![], vec![], json!({"group": name, "uuid": g.1})).await?;
        SqlStore::commit(tx).await
    }
}
}
