//! Folders: adding (with parents), renaming or moving a subtree, removing, reading.

use super::*;

/// The folders area's functions (a namespace over the database type).
pub(super) struct Folders<DB>(PhantomData<DB>);

sql_impl! {
impl Folders<DB> {
    /// Makes sure the folder exists, creating it (and, with `create_parents`, its parents).
    /// Returns its id and the paths it created.
    pub(super) async fn ensure_folder(tx: &mut Tx<DB>, path: &FolderPath, create_parents: bool, created: &mut Vec<String>) -> Result<i64> {
        if let Some(f) = SqlStore::<DB>::folder_row(tx, path.as_str()).await? {
            return Ok(f.0);
        }
        if !create_parents {
            return Err(not_found(format!("folder {path} (add it first, or pass --create-parents)")));
        }
        let mut parent_id = None;
        let chain = GroupName::parse(path.as_str())?.ancestors().into_iter().chain(std::iter::once(path.clone()));
        for folder in chain {
            parent_id = Some(match SqlStore::<DB>::folder_row(tx, folder.as_str()).await? {
                Some(f) => f.0,
                None => {
                    if SqlStore::<DB>::group_row(tx, folder.as_str()).await?.is_some() {
                        return Err(RegistryError::Refused(format!(
                            "cannot create folder {folder}: a group of that name exists"
                        )));
                    }
                    created.push(folder.as_str().to_owned());
                    sqlx::query_scalar::<_, i64>("INSERT INTO folder (path, parent_id) VALUES ($1, $2) RETURNING id")
                        .bind(folder.as_str())
                        .bind(parent_id)
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(db(format!("creating folder {folder}")))?
                }
            });
        }
        parent_id.ok_or_else(|| not_found(format!("folder {path}")))
    }

    pub(super) async fn folder(store: &SqlStore<DB>, path: &FolderPath) -> Result<Option<Folder>> {
        let mut conn = store.pool.acquire().await.map_err(db("connecting to the registry"))?;
        SqlStore::<DB>::folder_row(&mut conn, path.as_str()).await?.as_ref().map(folder_of).transpose()
    }

    pub(super) async fn folders(store: &SqlStore<DB>, under: Option<&FolderPath>) -> Result<Vec<Folder>> {
        let prefix = under.map(|p| format!("{p}:"));
        let rows = sqlx::query_as::<_, FolderTuple>(concat!(
            "SELECT ", folder_cols!(), " FROM folder f WHERE $1 IS NULL OR f.path = $2 OR substr(f.path, 1, CAST($3 AS INTEGER)) = $1 ORDER BY f.path"
        ))
        .bind(prefix.as_deref())
        .bind(under.map(|p| p.as_str()))
        .bind(prefix.as_ref().map(|p| p.chars().count() as i64).unwrap_or(0))
        .fetch_all(&store.pool)
        .await
        .map_err(db("listing folders"))?;
        rows.iter().map(folder_of).collect()
    }

    pub(super) async fn add_folder(store: &SqlStore<DB>, path: &FolderPath, attrs: &NodeAttrs, create_parents: bool) -> Result<(Folder, Upsert)> {
        check_attrs(&format!("folder {path}"), attrs)?;
        let mut tx = store.begin_write().await?;
        if SqlStore::<DB>::group_row(&mut tx, path.as_str()).await?.is_some() {
            return Err(RegistryError::Refused(format!("cannot add folder {path}: a group of that name exists")));
        }
        let (outcome, created) = match SqlStore::<DB>::folder_row(&mut tx, path.as_str()).await? {
            Some(f) => {
                let mut values = (f.3.clone(), f.4.clone());
                if apply_attrs(&mut values, attrs) {
                    sqlx::query("UPDATE folder SET display_name = $1, description = $2 WHERE id = $3")
                        .bind(&values.0)
                        .bind(&values.1)
                        .bind(f.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(db(format!("updating folder {path}")))?;
                    Changes::log_change(&mut tx, ChangeKind::FolderUpdated, vec![], vec![], vec![], json!({"folder": path})).await?;
                    (Upsert::Updated, vec![])
                } else {
                    (Upsert::Unchanged, vec![])
                }
            }
            None => {
                let mut created = Vec::new();
                let parent_id = match path.parent() {
                    Some(parent) => Some(Self::ensure_folder(&mut tx, &parent, create_parents, &mut created).await?),
                    None => None,
                };
                let values = (attrs.display_name.clone().flatten(), attrs.description.clone().flatten());
                sqlx::query("INSERT INTO folder (path, parent_id, display_name, description) VALUES ($1, $2, $3, $4)")
                    .bind(path.as_str())
                    .bind(parent_id)
                    .bind(&values.0)
                    .bind(&values.1)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(format!("adding folder {path}")))?;
                created.push(path.as_str().to_owned());
                (Upsert::Created, created)
            }
        };
        if !created.is_empty() {
            Changes::log_change(&mut tx, ChangeKind::FolderAdded, vec![], vec![], vec![], json!({"folders": created})).await?;
        }
        let folder = folder_of(&SqlStore::<DB>::folder_row(&mut tx, path.as_str()).await?.ok_or_else(|| not_found(format!("folder {path}")))?)?;
        SqlStore::commit(tx).await?;
        Ok((folder, outcome))
    }

    pub(super) async fn update_folder(store: &SqlStore<DB>, path: &FolderPath, rename_to: Option<&FolderPath>, attrs: &NodeAttrs) -> Result<Folder> {
        check_attrs(&format!("folder {path}"), attrs)?;
        let mut tx = store.begin_write().await?;
        let f = SqlStore::<DB>::folder_row(&mut tx, path.as_str()).await?.ok_or_else(|| not_found(format!("folder {path}")))?;
        let mut values = (f.3.clone(), f.4.clone());
        let changed_attrs = apply_attrs(&mut values, attrs);
        let mut current = path.clone();
        let mut affected = Vec::new();
        if let Some(to) = rename_to.filter(|to| *to != path) {
            if GroupName::parse(to.as_str())?.is_under(path) {
                return Err(RegistryError::Refused(format!("cannot move folder {path} into its own subtree ({to})")));
            }
            if SqlStore::<DB>::folder_row(&mut tx, to.as_str()).await?.is_some() || SqlStore::<DB>::group_row(&mut tx, to.as_str()).await?.is_some() {
                return Err(RegistryError::Refused(format!("cannot rename folder {path} to {to}: that name is taken")));
            }
            let parent_id = match to.parent() {
                Some(p) => Some(
                    SqlStore::<DB>::folder_row(&mut tx, p.as_str())
                        .await?
                        .ok_or_else(|| not_found(format!("folder {p} (the new parent of {path})")))?
                        .0,
                ),
                None => None,
            };
            let old_len = path.as_str().chars().count() as i64;
            let prefix = format!("{path}:");
            sqlx::query("UPDATE folder SET path = $1 || substr(path, CAST($2 AS INTEGER)) WHERE path = $3 OR substr(path, 1, CAST($4 AS INTEGER)) = $5")
                .bind(to.as_str())
                .bind(old_len + 1)
                .bind(path.as_str())
                .bind(old_len + 1)
                .bind(&prefix)
                .execute(&mut *tx)
                .await
                .map_err(db(format!("renaming folder {path} to {to}")))?;
            sqlx::query("UPDATE folder SET parent_id = $1 WHERE id = $2")
                .bind(parent_id)
                .bind(f.0)
                .execute(&mut *tx)
                .await
                .map_err(db(format!("moving folder {to}")))?;
            sqlx::query("UPDATE grp SET name = $1 || substr(name, CAST($2 AS INTEGER)) WHERE substr(name, 1, CAST($3 AS INTEGER)) = $4")
                .bind(to.as_str())
                .bind(old_len + 1)
                .bind(old_len + 1)
                .bind(&prefix)
                .execute(&mut *tx)
                .await
                .map_err(db(format!("renaming the groups under folder {path}")))?;
            affected = Groups::groups_under(&mut tx, to.as_str()).await?.into_iter().map(|g| g.1).collect();
            current = to.clone();
        }
        if changed_attrs {
            sqlx::query("UPDATE folder SET display_name = $1, description = $2 WHERE id = $3")
                .bind(&values.0)
                .bind(&values.1)
                .bind(f.0)
                .execute(&mut *tx)
                .await
                .map_err(db(format!("updating folder {current}")))?;
        }
        if changed_attrs || current != *path {
            Changes::log_change(&mut tx, ChangeKind::FolderUpdated, affected, vec![], vec![], json!({"folder": current, "from": path})).await?;
        }
        let folder = folder_of(&SqlStore::<DB>::folder_row(&mut tx, current.as_str()).await?.ok_or_else(|| not_found(format!("folder {current}")))?)?;
        SqlStore::commit(tx).await?;
        Ok(folder)
    }

    pub(super) async fn remove_folder(store: &SqlStore<DB>, path: &FolderPath, recursive: bool) -> Result<()> {
        let mut tx = store.begin_write().await?;
        SqlStore::<DB>::folder_row(&mut tx, path.as_str()).await?.ok_or_else(|| not_found(format!("folder {path}")))?;
        let prefix = format!("{path}:");
        let prefix_len = prefix.chars().count() as i64;
        let subfolders: Vec<String> = sqlx::query_scalar("SELECT path FROM folder WHERE substr(path, 1, CAST($1 AS INTEGER)) = $2 ORDER BY length(path) DESC, path")
            .bind(prefix_len)
            .bind(&prefix)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(format!("reading the subfolders of {path}")))?;
        let groups = Groups::groups_under(&mut tx, path.as_str()).await?;
        if !recursive && (!subfolders.is_empty() || !groups.is_empty()) {
            return Err(RegistryError::Refused(format!(
                "folder {path} is not empty: it holds {} and {}; remove them first or pass --recursive",
                duoprov_model::counted(subfolders.len(), "subfolder", "subfolders"),
                duoprov_model::counted(groups.len(), "group", "groups")
            )));
        }
        let mut affected = Vec::new();
        for (id, _) in &groups {
            affected.extend(Groups::self_and_ancestors(&mut tx, *id).await?);
        }
        sqlx::query("DELETE FROM grp WHERE substr(name, 1, CAST($1 AS INTEGER)) = $2")
            .bind(prefix_len)
            .bind(&prefix)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("removing the groups under folder {path}")))?;
        for sub in subfolders.iter().map(String::as_str).chain(std::iter::once(path.as_str())) {
            sqlx::query("DELETE FROM folder WHERE path = $1")
                .bind(sub)
                .execute(&mut *tx)
                .await
                .map_err(db(format!("removing folder {sub}")))?;
        }
        Changes::log_change(&mut tx, ChangeKind::FolderRemoved, affected, vec![], vec![], json!({"folder": path, "subfolders": subfolders, "groups_removed": groups.len()})).await?;
        SqlStore::commit(tx).await
    }
}
}
