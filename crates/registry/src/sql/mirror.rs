//! Sources: what a source owns read in one snapshot, its changes applied in one transaction in
//! the order `MirrorChanges` documents (renames through temporary names, so names may swap), the
//! keys it knows its groups by, and its last run. Each mutation appends its audit entry in the
//! same transaction, so a rolled-back mirror leaves none.

use duoprov_model::{MirrorChanges, MirrorScope, OwnedGroup, OwnedState, SourceRun};

use super::*;
use crate::audit::{AuditRecord, AuditTrigger};
use crate::mirror::MirrorStore;

fn group_json(name: &GroupName, display_name: &Option<String>, description: &Option<String>) -> serde_json::Value {
    json!({"name": name, "display_name": display_name, "description": description})
}

/// The sources area's functions (a namespace over the database type).
pub(super) struct Mirror<DB>(PhantomData<DB>);

sql_impl! {
impl Mirror<DB> {
    pub(super) async fn owned_in(tx: &mut Tx<DB>, scope: &MirrorScope) -> Result<OwnedState> {
        let subjects: Vec<SubjectTuple> = sqlx::query_as(concat!("SELECT ", subject_cols!(), " FROM subject s WHERE s.source = $1 ORDER BY s.subject_id"))
            .bind(&scope.subject_source)
            .fetch_all(&mut **tx)
            .await
            .map_err(db(format!("reading the subjects of source {}", scope.subject_source)))?;
        let prefix = format!("{}:", scope.folder);
        let plen = prefix.chars().count() as i64;
        let groups: Vec<GroupTuple> = sqlx::query_as(concat!("SELECT ", group_cols!(), " FROM grp g WHERE substr(g.name, 1, CAST($1 AS INTEGER)) = $2 ORDER BY g.name"))
            .bind(plen)
            .bind(&prefix)
            .fetch_all(&mut **tx)
            .await
            .map_err(db(format!("reading the groups under folder {}", scope.folder)))?;
        let keys: Vec<(i64, String)> = sqlx::query_as("SELECT group_id, source_key FROM source_group WHERE source = $1")
            .bind(&scope.source)
            .fetch_all(&mut **tx)
            .await
            .map_err(db(format!("reading the group keys of source {}", scope.source)))?;
        let keys: HashMap<i64, String> = keys.into_iter().collect();
        let subject_members: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT ms.group_id, s.source, s.subject_id FROM member_subject ms JOIN grp g ON g.id = ms.group_id JOIN subject s ON s.id = ms.subject_id \
             WHERE substr(g.name, 1, CAST($1 AS INTEGER)) = $2",
        )
        .bind(plen)
        .bind(&prefix)
        .fetch_all(&mut **tx)
        .await
        .map_err(db(format!("reading the memberships under folder {}", scope.folder)))?;
        let group_members: Vec<(i64, String)> = sqlx::query_as(
            "SELECT mg.group_id, m.name FROM member_group mg JOIN grp g ON g.id = mg.group_id JOIN grp m ON m.id = mg.member_group_id \
             WHERE substr(g.name, 1, CAST($1 AS INTEGER)) = $2",
        )
        .bind(plen)
        .bind(&prefix)
        .fetch_all(&mut **tx)
        .await
        .map_err(db(format!("reading the nesting under folder {}", scope.folder)))?;
        let mut members: HashMap<i64, Vec<GroupMember>> = HashMap::new();
        for (g, source, id) in subject_members {
            members.entry(g).or_default().push(GroupMember::Subject(SubjectKey::new(source, id)));
        }
        for (g, name) in group_members {
            members.entry(g).or_default().push(GroupMember::Group { name: GroupName::parse(&name)? });
        }
        let mut owned = OwnedState { subjects: subjects.into_iter().map(subject_of).collect(), groups: Vec::with_capacity(groups.len()) };
        for g in &groups {
            let mut m = members.remove(&g.0).unwrap_or_default();
            m.sort();
            owned.groups.push(OwnedGroup { group: group_of(g)?, key: keys.get(&g.0).cloned(), members: m });
        }
        Ok(owned)
    }

    pub(super) fn patch_of(s: &Subject) -> SubjectPatch {
        SubjectPatch {
            name: Some(s.name.clone()),
            login_id: Some(s.login_id.clone()),
            email: Some(s.email.clone()),
            first_name: Some(s.first_name.clone()),
            last_name: Some(s.last_name.clone()),
            description: Some(s.description.clone()),
        }
    }

    async fn set_key(tx: &mut Tx<DB>, source: &str, key: &str, group_id: i64) -> Result<()> {
        sqlx::query("DELETE FROM source_group WHERE (source = $1 AND source_key = $2) OR group_id = $3")
            .bind(source)
            .bind(key)
            .bind(group_id)
            .execute(&mut **tx)
            .await
            .map_err(db(format!("recording the key of a group of source {source}")))?;
        sqlx::query("INSERT INTO source_group (source, source_key, group_id) VALUES ($1, $2, $3)")
            .bind(source)
            .bind(key)
            .bind(group_id)
            .execute(&mut **tx)
            .await
            .map_err(db(format!("recording the key of a group of source {source}")))?;
        Ok(())
    }

    fn in_scope(scope: &MirrorScope, changes: &MirrorChanges) -> Result<()> {
        let mut problems = Vec::new();
        let subject_out = |k: &SubjectKey| k.source != scope.subject_source;
        for s in changes.subjects_added.iter().chain(&changes.subjects_updated) {
            if subject_out(&s.key()) {
                problems.push(format!("subject {} is outside source {}", s.key(), scope.source));
            }
        }
        problems.extend(changes.subjects_removed.iter().filter(|k| subject_out(k)).map(|k| format!("subject {k} is outside source {}", scope.source)));
        let names = changes
            .groups_added
            .iter()
            .map(|g| &g.name)
            .chain(changes.groups_updated.iter().flat_map(|u| [&u.from, &u.to.name]))
            .chain(&changes.groups_removed)
            .chain(changes.members_added.iter().map(|(g, _)| g))
            .chain(changes.members_removed.iter().map(|(g, _)| g));
        for n in names {
            if !n.is_under(&scope.folder) {
                problems.push(format!("group {n} is outside folder {} of source {}", scope.folder, scope.source));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RegistryError::Refused(problems.join("; ")))
        }
    }

    pub(super) async fn apply_in(tx: &mut Tx<DB>, scope: &MirrorScope, expected: &OwnedState, changes: &MirrorChanges, trigger: &AuditTrigger) -> Result<()> {
        Self::in_scope(scope, changes)?;
        let mut audit: Vec<AuditRecord> = Vec::new();
        let record = |kind: &str, name: String, action: &str, uuid: Option<String>, before: Option<serde_json::Value>, after: Option<serde_json::Value>| AuditRecord {
            source: Some(scope.source.clone()),
            object_uuid: uuid,
            before,
            after,
            ..trigger.record(kind, name, action)
        };
        let held: HashMap<SubjectKey, &Subject> = expected.subjects.iter().map(|s| (s.key(), s)).collect();
        let subject_json = |s: &Subject| serde_json::to_value(s).unwrap_or_default();
        for (s, action) in changes.subjects_added.iter().map(|s| (s, "add")).chain(changes.subjects_updated.iter().map(|s| (s, "update"))) {
            let patch = Self::patch_of(s);
            check_patch(&s.key(), &patch)?;
            Subjects::<DB>::upsert_subject_in(tx, &s.key(), &patch, true).await?;
            audit.push(record("subject", s.key().to_string(), action, None, held.get(&s.key()).map(|b| subject_json(b)), Some(subject_json(s))));
        }
        let member_json = |group: &GroupName, member: &GroupMember| json!({"group": group, "member": member.to_string()});
        for (group, member) in &changes.members_removed {
            let g = SqlStore::<DB>::require_group(tx, group).await?;
            Memberships::<DB>::remove_one_member(tx, &g, group, member).await?;
            audit.push(record("membership", format!("{member} in group {group}"), "remove", Some(g.1.clone()), Some(member_json(group, member)), None));
        }
        for name in &changes.groups_removed {
            let g = SqlStore::<DB>::require_group(tx, name).await?;
            audit.push(record("group", name.to_string(), "remove", Some(g.1.clone()), Some(group_json(name, &g.4, &g.5)), None));
            let affected = Groups::<DB>::self_and_ancestors(tx, g.0).await?;
            sqlx::query("DELETE FROM grp WHERE id = $1").bind(g.0).execute(&mut **tx).await.map_err(db(format!("removing group {name}")))?;
            Changes::<DB>::log_change(tx, ChangeKind::GroupRemoved, affected, vec![], vec![], json!({"group": name, "uuid": g.1, "source": scope.source})).await?;
        }
        // Renames: every renamed group first to a name no group can have, then to its new name, so
        // two groups may swap names.
        let mut rows = Vec::with_capacity(changes.groups_updated.len());
        for u in &changes.groups_updated {
            check_attrs(&format!("group {}", u.to.name), &NodeAttrs { display_name: Some(u.to.display_name.clone()), description: Some(u.to.description.clone()) })?;
            let g = SqlStore::<DB>::require_group(tx, &u.from).await?;
            if u.from != u.to.name {
                sqlx::query("UPDATE grp SET name = $1 WHERE id = $2")
                    .bind(format!(" renaming {}", g.1))
                    .bind(g.0)
                    .execute(&mut **tx)
                    .await
                    .map_err(db(format!("renaming group {}", u.from)))?;
            }
            rows.push(g);
        }
        for (u, g) in changes.groups_updated.iter().zip(rows) {
            let to = &u.to.name;
            let mut created = Vec::new();
            let mut detail = json!({"group": to, "source": scope.source});
            if u.from != *to {
                if SqlStore::<DB>::group_row(tx, to.as_str()).await?.is_some() || SqlStore::<DB>::folder_row(tx, to.as_str()).await?.is_some() {
                    return Err(RegistryError::Refused(format!("cannot rename group {} to {to} for source {}: that name is taken", u.from, scope.source)));
                }
                let folder_id = match to.parent() {
                    Some(parent) => Some(Folders::<DB>::ensure_folder(tx, &parent, true, &mut created).await?),
                    None => None,
                };
                sqlx::query("UPDATE grp SET name = $1, folder_id = $2 WHERE id = $3")
                    .bind(to.as_str())
                    .bind(folder_id)
                    .bind(g.0)
                    .execute(&mut **tx)
                    .await
                    .map_err(db(format!("renaming group {} to {to}", u.from)))?;
                detail = json!({"group": to, "from": u.from, "source": scope.source});
            }
            if !created.is_empty() {
                Changes::<DB>::log_change(tx, ChangeKind::FolderAdded, vec![], vec![], vec![], json!({"folders": created})).await?;
            }
            let attrs_changed = g.4 != u.to.display_name || g.5 != u.to.description;
            if attrs_changed {
                sqlx::query("UPDATE grp SET display_name = $1, description = $2 WHERE id = $3")
                    .bind(&u.to.display_name)
                    .bind(&u.to.description)
                    .bind(g.0)
                    .execute(&mut **tx)
                    .await
                    .map_err(db(format!("updating group {to}")))?;
            }
            Self::set_key(tx, &scope.source, &u.to.key, g.0).await?;
            if attrs_changed || u.from != *to {
                let action = if u.from != *to { "rename" } else { "update" };
                audit.push(record("group", to.to_string(), action, Some(g.1.clone()), Some(group_json(&u.from, &g.4, &g.5)), Some(group_json(to, &u.to.display_name, &u.to.description))));
                let affected = Groups::<DB>::self_and_ancestors(tx, g.0).await?;
                Changes::<DB>::log_change(tx, ChangeKind::GroupUpdated, affected, vec![], vec![], detail).await?;
            }
        }
        for a in &changes.groups_added {
            check_attrs(&format!("group {}", a.name), &NodeAttrs { display_name: Some(a.display_name.clone()), description: Some(a.description.clone()) })?;
            if SqlStore::<DB>::group_row(tx, a.name.as_str()).await?.is_some() || SqlStore::<DB>::folder_row(tx, a.name.as_str()).await?.is_some() {
                return Err(RegistryError::Refused(format!("cannot add group {} for source {}: that name is taken", a.name, scope.source)));
            }
            let mut created = Vec::new();
            let folder_id = match a.name.parent() {
                Some(parent) => Some(Folders::<DB>::ensure_folder(tx, &parent, true, &mut created).await?),
                None => None,
            };
            let uuid = uuid::Uuid::new_v4().to_string();
            let id: i64 = sqlx::query_scalar("INSERT INTO grp (uuid, name, folder_id, display_name, description) VALUES ($1, $2, $3, $4, $5) RETURNING id")
                .bind(&uuid)
                .bind(a.name.as_str())
                .bind(folder_id)
                .bind(&a.display_name)
                .bind(&a.description)
                .fetch_one(&mut **tx)
                .await
                .map_err(db(format!("adding group {}", a.name)))?;
            if !created.is_empty() {
                Changes::<DB>::log_change(tx, ChangeKind::FolderAdded, vec![], vec![], vec![], json!({"folders": created})).await?;
            }
            Self::set_key(tx, &scope.source, &a.key, id).await?;
            audit.push(record("group", a.name.to_string(), "add", Some(uuid.clone()), None, Some(group_json(&a.name, &a.display_name, &a.description))));
            Changes::<DB>::log_change(tx, ChangeKind::GroupAdded, vec![uuid], vec![], vec![], json!({"group": a.name, "source": scope.source})).await?;
        }
        for (group, member) in &changes.members_added {
            let g = SqlStore::<DB>::require_group(tx, group).await?;
            Memberships::<DB>::add_one_member(tx, &g, group, member).await?;
            audit.push(record("membership", format!("{member} in group {group}"), "add", Some(g.1.clone()), None, Some(member_json(group, member))));
        }
        for key in &changes.subjects_removed {
            let id = Memberships::<DB>::subject_member_id(tx, key).await?;
            let direct: Vec<i64> = sqlx::query_scalar("SELECT group_id FROM member_subject WHERE subject_id = $1")
                .bind(id)
                .fetch_all(&mut **tx)
                .await
                .map_err(db(format!("reading the groups of subject {key}")))?;
            let mut groups = Vec::new();
            for g in direct {
                groups.extend(Groups::<DB>::self_and_ancestors(tx, g).await?);
            }
            sqlx::query("DELETE FROM subject WHERE id = $1").bind(id).execute(&mut **tx).await.map_err(db(format!("removing subject {key}")))?;
            Changes::<DB>::log_change(tx, ChangeKind::SubjectRemoved, groups, vec![key.clone()], vec![], json!({"subject": key, "source": scope.source})).await?;
            audit.push(record("subject", key.to_string(), "remove", None, held.get(key).map(|b| subject_json(b)), None));
        }
        Audit::<DB>::append_in(tx, &audit).await
    }
}
}

sql_impl! {
#[async_trait]
impl MirrorStore for SqlStore<DB> {
    async fn mirror_owned(&self, scope: &MirrorScope) -> Result<OwnedState> {
        let mut tx = self.begin_read().await?;
        let owned = Mirror::<DB>::owned_in(&mut tx, scope).await?;
        tx.commit().await.map_err(db("ending a read"))?;
        Ok(owned)
    }

    async fn apply_mirror(&self, scope: &MirrorScope, expected: &OwnedState, changes: &MirrorChanges, trigger: &AuditTrigger) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if Mirror::<DB>::owned_in(&mut tx, scope).await? != *expected {
            return Err(RegistryError::Refused(format!(
                "the registry changed in source {}'s scope while the source was read; nothing was written; run the source again",
                scope.source
            )));
        }
        Mirror::<DB>::apply_in(&mut tx, scope, expected, changes, trigger).await?;
        Self::commit(tx).await
    }

    async fn record_source_run(&self, run: &SourceRun) -> Result<()> {
        sqlx::query::<DB>(
            "INSERT INTO source_run (source, at_ms, result, detail) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (source) DO UPDATE SET at_ms = excluded.at_ms, result = excluded.result, detail = excluded.detail",
        )
        .bind(&run.source)
        .bind(run.at_ms)
        .bind(&run.result)
        .bind(run.detail.to_string())
        .execute(self.pool())
        .await
        .map_err(db(format!("recording the run of source {}", run.source)))?;
        Ok(())
    }

    async fn source_runs(&self) -> Result<Vec<SourceRun>> {
        let rows: Vec<(String, i64, String, String)> = sqlx::query_as::<DB, _>("SELECT source, at_ms, result, detail FROM source_run ORDER BY source")
            .fetch_all(self.pool())
            .await
            .map_err(db("reading the runs of sources"))?;
        rows.into_iter()
            .map(|(source, at_ms, result, detail)| {
                let detail = serde_json::from_str(&detail).map_err(|e| RegistryError::Refused(format!("the recorded run of source {source}: {e}")))?;
                Ok(SourceRun { source, at_ms, result, detail })
            })
            .collect()
    }
}
}
