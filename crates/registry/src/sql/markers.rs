//! Provisioning markers on folders and groups: assigning, unassigning, reading.

use super::*;

/// A marker: provisioner, folder path or group name, scope, provision.
type MarkerRow = (String, Option<String>, Option<String>, String, bool);

/// The markers area's functions (a namespace over the database type).
pub(super) struct Markers<DB>(PhantomData<DB>);

sql_impl! {
impl Markers<DB> {
    pub(super) async fn markers(store: &SqlStore<DB>, provisioner: Option<&str>) -> Result<Vec<Marker>> {
        let rows: Vec<MarkerRow> = sqlx::query_as(
            "SELECT m.provisioner, f.path, g.name, m.scope, m.provision FROM marker m \
             LEFT JOIN folder f ON f.id = m.folder_id LEFT JOIN grp g ON g.id = m.group_id \
             WHERE $1 IS NULL OR m.provisioner = $1 ORDER BY m.provisioner, COALESCE(f.path, g.name)",
        )
        .bind(provisioner)
        .fetch_all(&store.pool)
        .await
        .map_err(db("listing markers"))?;
        rows.into_iter()
            .map(|(provisioner, folder, group, scope, provision)| {
                let target = match (folder, group) {
                    (Some(f), _) => MarkerTarget::Folder(FolderPath::parse(&f)?),
                    (None, Some(g)) => MarkerTarget::Group(GroupName::parse(&g)?),
                    (None, None) => return Err(RegistryError::Refused(format!("a marker of {provisioner} has no target"))),
                };
                let scope = scope.parse::<MarkerScope>().map_err(|e| RegistryError::Refused(format!("marker of {provisioner}: {e}")))?;
                Ok(Marker { provisioner, target, scope, provision })
            })
            .collect()
    }

    pub(super) async fn assign_marker(store: &SqlStore<DB>, marker: &Marker) -> Result<Upsert> {
        if marker.provisioner.trim().is_empty() {
            return Err(duoprov_model::ValidationError::new("marker", "provisioner", "must not be empty").into());
        }
        let mut tx = store.begin_write().await?;
        let outcome = Self::assign_marker_in(&mut tx, marker).await?;
        SqlStore::commit(tx).await?;
        Ok(outcome)
    }

    pub(super) async fn unassign_marker(store: &SqlStore<DB>, provisioner: &str, target: &MarkerTarget) -> Result<bool> {
        let mut tx = store.begin_write().await?;
        let (column, id, affected) = Self::marker_target_in(&mut tx, target).await?;
        let sql = match column {
            "folder_id" => "DELETE FROM marker WHERE provisioner = $1 AND folder_id = $2",
            _ => "DELETE FROM marker WHERE provisioner = $1 AND group_id = $2",
        };
        let r = sqlx::query(sql)
            .bind(provisioner)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("removing the {provisioner} marker on {target}")))?;
        let removed = DB::rows_affected(&r) > 0;
        if removed {
            Changes::log_change(&mut tx, ChangeKind::MarkerUnassigned, affected, vec![], vec![provisioner.to_owned()], json!({"target": target.to_string()})).await?;
        }
        SqlStore::commit(tx).await?;
        Ok(removed)
    }

    /// The marker column, the target's id, and the groups whose selection the marker can change.
    pub(super) async fn marker_target_in(tx: &mut Tx<DB>, target: &MarkerTarget) -> Result<(&'static str, i64, Vec<String>)> {
        Ok(match target {
            MarkerTarget::Folder(path) => {
                let f = SqlStore::<DB>::folder_row(tx, path.as_str()).await?.ok_or_else(|| not_found(format!("folder {path}")))?;
                let groups = Groups::groups_under(tx, path.as_str()).await?.into_iter().map(|g| g.1).collect();
                ("folder_id", f.0, groups)
            }
            MarkerTarget::Group(name) => {
                let g = SqlStore::<DB>::require_group(tx, name).await?;
                ("group_id", g.0, vec![g.1.clone()])
            }
        })
    }

    pub(super) async fn assign_marker_in(tx: &mut Tx<DB>, marker: &Marker) -> Result<Upsert> {
        let (column, id, affected) = Self::marker_target_in(tx, &marker.target).await?;
        let scope = match marker.target {
            MarkerTarget::Group(_) => MarkerScope::Sub,
            MarkerTarget::Folder(_) => marker.scope,
        };
        let select = match column {
            "folder_id" => "SELECT id, scope, provision FROM marker WHERE provisioner = $1 AND folder_id = $2",
            _ => "SELECT id, scope, provision FROM marker WHERE provisioner = $1 AND group_id = $2",
        };
        let existing: Option<(i64, String, bool)> = sqlx::query_as(select)
            .bind(&marker.provisioner)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db(format!("reading the {} marker on {}", marker.provisioner, marker.target)))?;
        let outcome = match existing {
            Some((_, s, p)) if s == scope.as_str() && p == marker.provision => return Ok(Upsert::Unchanged),
            Some((marker_id, _, _)) => {
                sqlx::query("UPDATE marker SET scope = $1, provision = $2 WHERE id = $3")
                    .bind(scope.as_str())
                    .bind(marker.provision)
                    .bind(marker_id)
                    .execute(&mut **tx)
                    .await
                    .map_err(db(format!("updating the {} marker on {}", marker.provisioner, marker.target)))?;
                Upsert::Updated
            }
            None => {
                let insert = match column {
                    "folder_id" => "INSERT INTO marker (provisioner, folder_id, scope, provision) VALUES ($1, $2, $3, $4)",
                    _ => "INSERT INTO marker (provisioner, group_id, scope, provision) VALUES ($1, $2, $3, $4)",
                };
                sqlx::query(insert)
                    .bind(&marker.provisioner)
                    .bind(id)
                    .bind(scope.as_str())
                    .bind(marker.provision)
                    .execute(&mut **tx)
                    .await
                    .map_err(db(format!("adding the {} marker on {}", marker.provisioner, marker.target)))?;
                Upsert::Created
            }
        };
        Changes::log_change(
            tx,
            ChangeKind::MarkerAssigned,
            affected,
            vec![],
            vec![marker.provisioner.clone()],
            json!({"target": marker.target.to_string(), "scope": scope.as_str(), "provision": marker.provision}),
        )
        .await?;
        Ok(outcome)
    }
}
}
