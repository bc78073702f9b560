//! The registry store, written once and compiled once per backend: `sqlite.rs` and
//! `postgres.rs` each include this file as a module after defining `Db` (their sqlx database
//! type) and `DIALECT` (their few SQL differences). Every mutation runs in one write transaction
//! that also appends its change-log entry.

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use duoprov_model::{
    ChangeEntry, ChangeKind, Folder, FolderPath, Group, GroupMember, GroupName, Marker,
    MarkerIndex, MarkerScope, MarkerTarget, ProvisionableGroup, ProvisionerSelection, Subject,
    SubjectKey, SubjectPatch,
};
use serde_json::json;
use sqlx::{Pool, Transaction};

use super::{DIALECT, Db};
use crate::error::{RegistryError, Result};
use crate::import::{self, Existing, ImportData, ImportSummary, MemberRow};
use crate::store::{Backend, ChangeLog, EffectiveMember, NodeAttrs, RegistryReader, RegistryWriter, Store, Upsert};

type Tx = Transaction<'static, Db>;
/// A connection: a transaction or a pooled connection both dereference to one.
type Conn = <Db as sqlx::Database>::Connection;
type SubjectTuple = (i64, String, String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
type GroupTuple = (i64, String, String, Option<i64>, Option<String>, Option<String>);
type FolderTuple = (i64, String, Option<i64>, Option<String>, Option<String>);

macro_rules! subject_cols {
    () => {
        "s.id, s.source, s.subject_id, s.name, s.login_id, s.email, s.first_name, s.last_name, s.description"
    };
}
macro_rules! group_cols {
    () => {
        "g.id, g.uuid, g.name, g.folder_id, g.display_name, g.description"
    };
}
macro_rules! folder_cols {
    () => {
        "f.id, f.path, f.parent_id, f.display_name, f.description"
    };
}

/// Rows read per statement when writing in bulk; well under both backends' parameter limits.
const BATCH: usize = 1000;

fn subject_of(t: SubjectTuple) -> Subject {
    Subject {
        source: t.1,
        id: t.2,
        name: t.3,
        login_id: t.4,
        email: t.5,
        first_name: t.6,
        last_name: t.7,
        description: t.8,
    }
}

fn group_of(t: &GroupTuple) -> Result<Group> {
    Ok(Group {
        uuid: t.1.clone(),
        name: GroupName::parse(&t.2)?,
        display_name: t.4.clone(),
        description: t.5.clone(),
    })
}

fn folder_of(t: &FolderTuple) -> Result<Folder> {
    Ok(Folder { path: FolderPath::parse(&t.1)?, display_name: t.3.clone(), description: t.4.clone() })
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn db(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> RegistryError {
    RegistryError::db(context)
}

fn not_found(object: impl Into<String>) -> RegistryError {
    RegistryError::NotFound { object: object.into() }
}

/// Applies optional attribute changes; returns whether anything changed.
fn apply_attrs(current: &mut (Option<String>, Option<String>), attrs: &NodeAttrs) -> bool {
    let before = current.clone();
    if let Some(v) = &attrs.display_name {
        current.0 = v.clone();
    }
    if let Some(v) = &attrs.description {
        current.1 = v.clone();
    }
    before != *current
}

fn check_attrs(object: &str, attrs: &NodeAttrs) -> Result<()> {
    let errors = import::check_node_fields(
        object,
        &attrs.display_name.clone().flatten(),
        &attrs.description.clone().flatten(),
    );
    errors.into_result().map_err(RegistryError::Invalid)
}

fn check_patch(key: &SubjectKey, patch: &SubjectPatch) -> Result<()> {
    let object = format!("subject {key}");
    import::check_subject_key(&object, &key.source, &key.id)?;
    let fields: Vec<(&str, Option<&str>)> =
        patch.fields().iter().map(|(f, v)| (*f, v.as_ref().and_then(|v| v.as_deref()))).collect();
    import::check_subject_fields(&object, fields).into_result().map_err(RegistryError::Invalid)
}

/// The store over one backend's pool.
pub struct SqlStore {
    pool: Pool<Db>,
    backend: Backend,
}

impl SqlStore {
    pub(crate) fn from_pool(pool: Pool<Db>, backend: Backend) -> Self {
        Self { pool, backend }
    }

    /// The connection pool, for other parts of duoprov that keep their state in this database.
    pub fn pool(&self) -> &Pool<Db> {
        &self.pool
    }

    async fn begin_write(&self) -> Result<Tx> {
        let mut tx = self.pool.begin_with(DIALECT.begin_write).await.map_err(db("starting a write transaction"))?;
        if let Some(lock) = DIALECT.write_lock {
            sqlx::query(lock).execute(&mut *tx).await.map_err(db("taking the registry write lock"))?;
        }
        Ok(tx)
    }

    /// A read transaction whose statements see one snapshot (`begin_read` of the dialect).
    async fn begin_read(&self) -> Result<Tx> {
        self.pool.begin_with(DIALECT.begin_read).await.map_err(db("starting a read"))
    }

    async fn commit(tx: Tx) -> Result<()> {
        tx.commit().await.map_err(db("committing"))
    }
}

async fn log_change(
    tx: &mut Tx,
    kind: ChangeKind,
    mut groups: Vec<String>,
    mut subjects: Vec<SubjectKey>,
    provisioners: Vec<String>,
    detail: serde_json::Value,
) -> Result<()> {
    groups.sort();
    groups.dedup();
    subjects.sort();
    subjects.dedup();
    let encode = |v: serde_json::Result<String>| v.map_err(|e| RegistryError::Refused(format!("encoding a change-log entry: {e}")));
    sqlx::query("INSERT INTO change_log (at_ms, kind, groups, subjects, provisioners, detail) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(now_ms())
        .bind(kind.as_str())
        .bind(encode(serde_json::to_string(&groups))?)
        .bind(encode(serde_json::to_string(&subjects))?)
        .bind(encode(serde_json::to_string(&provisioners))?)
        .bind(encode(serde_json::to_string(&detail))?)
        .execute(&mut **tx)
        .await
        .map_err(db(format!("appending the {} change-log entry", kind.as_str())))?;
    if let Some(notify) = DIALECT.notify_change {
        sqlx::query(notify).execute(&mut **tx).await.map_err(db("notifying listeners of a change"))?;
    }
    Ok(())
}

async fn subject_row(conn: &mut Conn, key: &SubjectKey) -> Result<Option<SubjectTuple>> {
    sqlx::query_as::<_, SubjectTuple>(concat!("SELECT ", subject_cols!(), " FROM subject s WHERE s.source = $1 AND s.subject_id = $2"))
        .bind(&key.source)
        .bind(&key.id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db(format!("reading subject {key}")))
}

async fn group_row(conn: &mut Conn, name: &str) -> Result<Option<GroupTuple>> {
    sqlx::query_as::<_, GroupTuple>(concat!("SELECT ", group_cols!(), " FROM grp g WHERE g.name = $1"))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db(format!("reading group {name}")))
}

async fn require_group(tx: &mut Tx, name: &GroupName) -> Result<GroupTuple> {
    group_row(tx, name.as_str()).await?.ok_or_else(|| not_found(format!("group {name}")))
}

async fn folder_row(conn: &mut Conn, path: &str) -> Result<Option<FolderTuple>> {
    sqlx::query_as::<_, FolderTuple>(concat!("SELECT ", folder_cols!(), " FROM folder f WHERE f.path = $1"))
        .bind(path)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db(format!("reading folder {path}")))
}

/// The uuids of the group and of every group that contains it through nesting.
async fn self_and_ancestors(tx: &mut Tx, group_id: i64) -> Result<Vec<String>> {
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
async fn groups_under(tx: &mut Tx, path: &str) -> Result<Vec<(i64, String)>> {
    let prefix = format!("{path}:");
    sqlx::query_as::<_, (i64, String)>("SELECT id, uuid FROM grp WHERE substr(name, 1, CAST($1 AS INTEGER)) = $2")
        .bind(prefix.chars().count() as i64)
        .bind(&prefix)
        .fetch_all(&mut **tx)
        .await
        .map_err(db(format!("reading the groups under folder {path}")))
}

/// Makes sure the folder exists, creating it (and, with `create_parents`, its parents).
/// Returns its id and the paths it created.
async fn ensure_folder(tx: &mut Tx, path: &FolderPath, create_parents: bool, created: &mut Vec<String>) -> Result<i64> {
    if let Some(f) = folder_row(tx, path.as_str()).await? {
        return Ok(f.0);
    }
    if !create_parents {
        return Err(not_found(format!("folder {path} (add it first, or pass --create-parents)")));
    }
    let mut parent_id = None;
    let chain = GroupName::parse(path.as_str())?.ancestors().into_iter().chain(std::iter::once(path.clone()));
    for folder in chain {
        parent_id = Some(match folder_row(tx, folder.as_str()).await? {
            Some(f) => f.0,
            None => {
                if group_row(tx, folder.as_str()).await?.is_some() {
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

async fn subject_member_id(tx: &mut Tx, key: &SubjectKey) -> Result<i64> {
    Ok(subject_row(tx, key).await?.ok_or_else(|| not_found(format!("subject {key}")))?.0)
}

/// Every problem of a batch of membership changes as one error; a single problem keeps its own
/// kind (`NotFound` stays `NotFound`).
fn batch_refusal(mut problems: Vec<RegistryError>) -> RegistryError {
    if problems.len() == 1 {
        return problems.remove(0);
    }
    RegistryError::Refused(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
}

/// Adds one immediate member inside the batch's transaction, with its change-log entry.
async fn add_one_member(tx: &mut Tx, g: &GroupTuple, group: &GroupName, member: &GroupMember) -> Result<bool> {
    let (added, subjects) = match member {
        GroupMember::Subject(key) => {
            let sid = subject_member_id(tx, key).await?;
            let r = sqlx::query("INSERT INTO member_subject (group_id, subject_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(g.0)
                .bind(sid)
                .execute(&mut **tx)
                .await
                .map_err(db(format!("adding subject {key} to group {group}")))?;
            (r.rows_affected() > 0, vec![key.clone()])
        }
        GroupMember::Group { name } => {
            let m = require_group(tx, name).await?;
            if m.0 == g.0 {
                return Err(RegistryError::Refused(format!("group {group} cannot be a member of itself")));
            }
            if contains(tx, m.0, g.0).await? {
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
            (r.rows_affected() > 0, vec![])
        }
    };
    if added {
        let affected = self_and_ancestors(tx, g.0).await?;
        log_change(tx, ChangeKind::MemberAdded, affected, subjects, vec![], json!({"group": group, "member": member})).await?;
    }
    Ok(added)
}

/// Removes one immediate member inside the batch's transaction, with its change-log entry.
async fn remove_one_member(tx: &mut Tx, g: &GroupTuple, group: &GroupName, member: &GroupMember) -> Result<bool> {
    let (removed, subjects) = match member {
        GroupMember::Subject(key) => {
            let sid = subject_member_id(tx, key).await?;
            let r = sqlx::query("DELETE FROM member_subject WHERE group_id = $1 AND subject_id = $2")
                .bind(g.0)
                .bind(sid)
                .execute(&mut **tx)
                .await
                .map_err(db(format!("removing subject {key} from group {group}")))?;
            (r.rows_affected() > 0, vec![key.clone()])
        }
        GroupMember::Group { name } => {
            let m = require_group(tx, name).await?;
            let r = sqlx::query("DELETE FROM member_group WHERE group_id = $1 AND member_group_id = $2")
                .bind(g.0)
                .bind(m.0)
                .execute(&mut **tx)
                .await
                .map_err(db(format!("removing group {name} from group {group}")))?;
            (r.rows_affected() > 0, vec![])
        }
    };
    if removed {
        let affected = self_and_ancestors(tx, g.0).await?;
        log_change(tx, ChangeKind::MemberRemoved, affected, subjects, vec![], json!({"group": group, "member": member})).await?;
    }
    Ok(removed)
}

/// True when `inner` (a group id) contains `outer` through nesting, or is `outer`.
async fn contains(tx: &mut Tx, inner: i64, outer: i64) -> Result<bool> {
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

fn parse_ids(list: &str) -> Vec<i64> {
    list.split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }
}

#[async_trait]
impl RegistryReader for SqlStore {
    async fn subject(&self, key: &SubjectKey) -> Result<Option<Subject>> {
        let mut conn = self.pool.acquire().await.map_err(db("connecting to the registry"))?;
        Ok(subject_row(&mut conn, key).await?.map(subject_of))
    }

    async fn subjects(&self, source: Option<&str>) -> Result<Vec<Subject>> {
        let rows = sqlx::query_as::<_, SubjectTuple>(concat!(
            "SELECT ", subject_cols!(), " FROM subject s WHERE ($1 IS NULL OR s.source = $1) ORDER BY s.source, s.subject_id"
        ))
        .bind(source)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing subjects"))?;
        Ok(rows.into_iter().map(subject_of).collect())
    }

    async fn folder(&self, path: &FolderPath) -> Result<Option<Folder>> {
        let mut conn = self.pool.acquire().await.map_err(db("connecting to the registry"))?;
        folder_row(&mut conn, path.as_str()).await?.as_ref().map(folder_of).transpose()
    }

    async fn folders(&self, under: Option<&FolderPath>) -> Result<Vec<Folder>> {
        let prefix = under.map(|p| format!("{p}:"));
        let rows = sqlx::query_as::<_, FolderTuple>(concat!(
            "SELECT ", folder_cols!(), " FROM folder f WHERE $1 IS NULL OR f.path = $2 OR substr(f.path, 1, CAST($3 AS INTEGER)) = $1 ORDER BY f.path"
        ))
        .bind(prefix.as_deref())
        .bind(under.map(|p| p.as_str()))
        .bind(prefix.as_ref().map(|p| p.chars().count() as i64).unwrap_or(0))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing folders"))?;
        rows.iter().map(folder_of).collect()
    }

    async fn group(&self, name: &GroupName) -> Result<Option<Group>> {
        let mut conn = self.pool.acquire().await.map_err(db("connecting to the registry"))?;
        group_row(&mut conn, name.as_str()).await?.as_ref().map(group_of).transpose()
    }

    async fn groups(&self, under: Option<&FolderPath>) -> Result<Vec<Group>> {
        let prefix = under.map(|p| format!("{p}:"));
        let rows = sqlx::query_as::<_, GroupTuple>(concat!(
            "SELECT ", group_cols!(), " FROM grp g WHERE $1 IS NULL OR substr(g.name, 1, CAST($2 AS INTEGER)) = $1 ORDER BY g.name"
        ))
        .bind(prefix.as_deref())
        .bind(prefix.as_ref().map(|p| p.chars().count() as i64).unwrap_or(0))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing groups"))?;
        rows.iter().map(group_of).collect()
    }

    async fn members(&self, group: &GroupName) -> Result<Vec<GroupMember>> {
        let mut tx = self.begin_read().await?;
        let g = require_group(&mut tx, group).await?;
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

    async fn effective_members(&self, group: &GroupName) -> Result<Vec<EffectiveMember>> {
        let mut tx = self.begin_read().await?;
        effective_in(&mut tx, group).await
    }

    async fn markers(&self, provisioner: Option<&str>) -> Result<Vec<Marker>> {
        let rows: Vec<(String, Option<String>, Option<String>, String, bool)> = sqlx::query_as(
            "SELECT m.provisioner, f.path, g.name, m.scope, m.provision FROM marker m \
             LEFT JOIN folder f ON f.id = m.folder_id LEFT JOIN grp g ON g.id = m.group_id \
             WHERE $1 IS NULL OR m.provisioner = $1 ORDER BY m.provisioner, COALESCE(f.path, g.name)",
        )
        .bind(provisioner)
        .fetch_all(&self.pool)
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

    async fn provisioner_selection(&self, provisioner: &str) -> Result<ProvisionerSelection> {
        let mut tx = self.begin_read().await?;
        let selection = selection_in(&mut tx, provisioner).await?;
        tx.rollback().await.map_err(db("ending a read"))?;
        Ok(selection)
    }

    async fn provisioner_selection_with_eligible(&self, provisioner: &str, eligible: &GroupName) -> Result<(ProvisionerSelection, Vec<EffectiveMember>)> {
        let mut tx = self.begin_read().await?;
        let selection = selection_in(&mut tx, provisioner).await?;
        let members = effective_in(&mut tx, eligible).await?;
        tx.rollback().await.map_err(db("ending a read"))?;
        Ok((selection, members))
    }
}

#[async_trait]
impl RegistryWriter for SqlStore {
    async fn upsert_subject(&self, key: &SubjectKey, patch: &SubjectPatch) -> Result<(Subject, Upsert)> {
        check_patch(key, patch)?;
        let mut tx = self.begin_write().await?;
        let result = upsert_subject_in(&mut tx, key, patch, true).await?;
        Self::commit(tx).await?;
        Ok(result)
    }

    async fn update_subject(&self, key: &SubjectKey, patch: &SubjectPatch) -> Result<(Subject, Upsert)> {
        check_patch(key, patch)?;
        let mut tx = self.begin_write().await?;
        let result = upsert_subject_in(&mut tx, key, patch, false).await?;
        Self::commit(tx).await?;
        Ok(result)
    }

    async fn remove_subject(&self, key: &SubjectKey) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let id = subject_member_id(&mut tx, key).await?;
        let direct: Vec<i64> = sqlx::query_scalar("SELECT group_id FROM member_subject WHERE subject_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(format!("reading the groups of subject {key}")))?;
        let mut groups = Vec::new();
        for g in direct {
            groups.extend(self_and_ancestors(&mut tx, g).await?);
        }
        sqlx::query("DELETE FROM subject WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("removing subject {key}")))?;
        log_change(&mut tx, ChangeKind::SubjectRemoved, groups, vec![key.clone()], vec![], json!({"subject": key})).await?;
        Self::commit(tx).await
    }

    async fn add_folder(&self, path: &FolderPath, attrs: &NodeAttrs, create_parents: bool) -> Result<(Folder, Upsert)> {
        check_attrs(&format!("folder {path}"), attrs)?;
        let mut tx = self.begin_write().await?;
        if group_row(&mut tx, path.as_str()).await?.is_some() {
            return Err(RegistryError::Refused(format!("cannot add folder {path}: a group of that name exists")));
        }
        let (outcome, created) = match folder_row(&mut tx, path.as_str()).await? {
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
                    log_change(&mut tx, ChangeKind::FolderUpdated, vec![], vec![], vec![], json!({"folder": path})).await?;
                    (Upsert::Updated, vec![])
                } else {
                    (Upsert::Unchanged, vec![])
                }
            }
            None => {
                let mut created = Vec::new();
                let parent_id = match path.parent() {
                    Some(parent) => Some(ensure_folder(&mut tx, &parent, create_parents, &mut created).await?),
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
            log_change(&mut tx, ChangeKind::FolderAdded, vec![], vec![], vec![], json!({"folders": created})).await?;
        }
        let folder = folder_of(&folder_row(&mut tx, path.as_str()).await?.ok_or_else(|| not_found(format!("folder {path}")))?)?;
        Self::commit(tx).await?;
        Ok((folder, outcome))
    }

    async fn update_folder(&self, path: &FolderPath, rename_to: Option<&FolderPath>, attrs: &NodeAttrs) -> Result<Folder> {
        check_attrs(&format!("folder {path}"), attrs)?;
        let mut tx = self.begin_write().await?;
        let f = folder_row(&mut tx, path.as_str()).await?.ok_or_else(|| not_found(format!("folder {path}")))?;
        let mut values = (f.3.clone(), f.4.clone());
        let changed_attrs = apply_attrs(&mut values, attrs);
        let mut current = path.clone();
        let mut affected = Vec::new();
        if let Some(to) = rename_to.filter(|to| *to != path) {
            if GroupName::parse(to.as_str())?.is_under(path) {
                return Err(RegistryError::Refused(format!("cannot move folder {path} into its own subtree ({to})")));
            }
            if folder_row(&mut tx, to.as_str()).await?.is_some() || group_row(&mut tx, to.as_str()).await?.is_some() {
                return Err(RegistryError::Refused(format!("cannot rename folder {path} to {to}: that name is taken")));
            }
            let parent_id = match to.parent() {
                Some(p) => Some(
                    folder_row(&mut tx, p.as_str())
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
            affected = groups_under(&mut tx, to.as_str()).await?.into_iter().map(|g| g.1).collect();
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
            log_change(&mut tx, ChangeKind::FolderUpdated, affected, vec![], vec![], json!({"folder": current, "from": path})).await?;
        }
        let folder = folder_of(&folder_row(&mut tx, current.as_str()).await?.ok_or_else(|| not_found(format!("folder {current}")))?)?;
        Self::commit(tx).await?;
        Ok(folder)
    }

    async fn remove_folder(&self, path: &FolderPath, recursive: bool) -> Result<()> {
        let mut tx = self.begin_write().await?;
        folder_row(&mut tx, path.as_str()).await?.ok_or_else(|| not_found(format!("folder {path}")))?;
        let prefix = format!("{path}:");
        let prefix_len = prefix.chars().count() as i64;
        let subfolders: Vec<String> = sqlx::query_scalar("SELECT path FROM folder WHERE substr(path, 1, CAST($1 AS INTEGER)) = $2 ORDER BY length(path) DESC, path")
            .bind(prefix_len)
            .bind(&prefix)
            .fetch_all(&mut *tx)
            .await
            .map_err(db(format!("reading the subfolders of {path}")))?;
        let groups = groups_under(&mut tx, path.as_str()).await?;
        if !recursive && (!subfolders.is_empty() || !groups.is_empty()) {
            return Err(RegistryError::Refused(format!(
                "folder {path} is not empty: it holds {} and {}; remove them first or pass --recursive",
                duoprov_model::counted(subfolders.len(), "subfolder", "subfolders"),
                duoprov_model::counted(groups.len(), "group", "groups")
            )));
        }
        let mut affected = Vec::new();
        for (id, _) in &groups {
            affected.extend(self_and_ancestors(&mut tx, *id).await?);
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
        log_change(&mut tx, ChangeKind::FolderRemoved, affected, vec![], vec![], json!({"folder": path, "subfolders": subfolders, "groups_removed": groups.len()})).await?;
        Self::commit(tx).await
    }

    async fn add_group(&self, name: &GroupName, attrs: &NodeAttrs, create_parents: bool) -> Result<(Group, Upsert)> {
        check_attrs(&format!("group {name}"), attrs)?;
        let mut tx = self.begin_write().await?;
        if folder_row(&mut tx, name.as_str()).await?.is_some() {
            return Err(RegistryError::Refused(format!("cannot add group {name}: a folder of that name exists")));
        }
        let outcome = match group_row(&mut tx, name.as_str()).await? {
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
                    log_change(&mut tx, ChangeKind::GroupUpdated, vec![g.1.clone()], vec![], vec![], json!({"group": name})).await?;
                    Upsert::Updated
                } else {
                    Upsert::Unchanged
                }
            }
            None => {
                let mut created = Vec::new();
                let folder_id = match name.parent() {
                    Some(parent) => Some(ensure_folder(&mut tx, &parent, create_parents, &mut created).await?),
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
                    log_change(&mut tx, ChangeKind::FolderAdded, vec![], vec![], vec![], json!({"folders": created})).await?;
                }
                log_change(&mut tx, ChangeKind::GroupAdded, vec![uuid], vec![], vec![], json!({"group": name})).await?;
                Upsert::Created
            }
        };
        let group = group_of(&require_group(&mut tx, name).await?)?;
        Self::commit(tx).await?;
        Ok((group, outcome))
    }

    async fn update_group(&self, name: &GroupName, rename_to: Option<&GroupName>, attrs: &NodeAttrs, create_parents: bool) -> Result<Group> {
        check_attrs(&format!("group {name}"), attrs)?;
        let mut tx = self.begin_write().await?;
        let g = require_group(&mut tx, name).await?;
        let mut current = name.clone();
        let mut detail = json!({"group": name});
        if let Some(to) = rename_to.filter(|to| *to != name) {
            if group_row(&mut tx, to.as_str()).await?.is_some() || folder_row(&mut tx, to.as_str()).await?.is_some() {
                return Err(RegistryError::Refused(format!("cannot rename group {name} to {to}: that name is taken")));
            }
            let mut created = Vec::new();
            let folder_id = match to.parent() {
                Some(parent) => Some(ensure_folder(&mut tx, &parent, create_parents, &mut created).await?),
                None => None,
            };
            if !created.is_empty() {
                log_change(&mut tx, ChangeKind::FolderAdded, vec![], vec![], vec![], json!({"folders": created})).await?;
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
            log_change(&mut tx, ChangeKind::GroupUpdated, vec![g.1.clone()], vec![], vec![], detail).await?;
        }
        let group = group_of(&require_group(&mut tx, &current).await?)?;
        Self::commit(tx).await?;
        Ok(group)
    }

    async fn remove_group(&self, name: &GroupName) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let g = require_group(&mut tx, name).await?;
        let affected = self_and_ancestors(&mut tx, g.0).await?;
        sqlx::query("DELETE FROM grp WHERE id = $1")
            .bind(g.0)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("removing group {name}")))?;
        log_change(&mut tx, ChangeKind::GroupRemoved, affected, vec![], vec![], json!({"group": name, "uuid": g.1})).await?;
        Self::commit(tx).await
    }

    async fn add_member(&self, group: &GroupName, member: &GroupMember) -> Result<bool> {
        Ok(self.add_members(group, std::slice::from_ref(member)).await?[0])
    }

    async fn add_members(&self, group: &GroupName, members: &[GroupMember]) -> Result<Vec<bool>> {
        let mut tx = self.begin_write().await?;
        let g = require_group(&mut tx, group).await?;
        let mut outcomes = Vec::with_capacity(members.len());
        let mut problems = Vec::new();
        for member in members {
            match add_one_member(&mut tx, &g, group, member).await {
                Ok(added) => outcomes.push(added),
                Err(e @ (RegistryError::NotFound { .. } | RegistryError::Refused(_))) => problems.push(e),
                Err(e) => return Err(e),
            }
        }
        if !problems.is_empty() {
            return Err(batch_refusal(problems));
        }
        Self::commit(tx).await?;
        Ok(outcomes)
    }

    async fn remove_member(&self, group: &GroupName, member: &GroupMember) -> Result<bool> {
        Ok(self.remove_members(group, std::slice::from_ref(member)).await?[0])
    }

    async fn remove_members(&self, group: &GroupName, members: &[GroupMember]) -> Result<Vec<bool>> {
        let mut tx = self.begin_write().await?;
        let g = require_group(&mut tx, group).await?;
        let mut outcomes = Vec::with_capacity(members.len());
        let mut problems = Vec::new();
        for member in members {
            match remove_one_member(&mut tx, &g, group, member).await {
                Ok(removed) => outcomes.push(removed),
                Err(e @ (RegistryError::NotFound { .. } | RegistryError::Refused(_))) => problems.push(e),
                Err(e) => return Err(e),
            }
        }
        if !problems.is_empty() {
            return Err(batch_refusal(problems));
        }
        Self::commit(tx).await?;
        Ok(outcomes)
    }

    async fn assign_marker(&self, marker: &Marker) -> Result<Upsert> {
        if marker.provisioner.trim().is_empty() {
            return Err(duoprov_model::ValidationError::new("marker", "provisioner", "must not be empty").into());
        }
        let mut tx = self.begin_write().await?;
        let outcome = assign_marker_in(&mut tx, marker).await?;
        Self::commit(tx).await?;
        Ok(outcome)
    }

    async fn unassign_marker(&self, provisioner: &str, target: &MarkerTarget) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let (column, id, affected) = marker_target_in(&mut tx, target).await?;
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
        let removed = r.rows_affected() > 0;
        if removed {
            log_change(&mut tx, ChangeKind::MarkerUnassigned, affected, vec![], vec![provisioner.to_owned()], json!({"target": target.to_string()})).await?;
        }
        Self::commit(tx).await?;
        Ok(removed)
    }

    async fn import(&self, data: &ImportData) -> Result<ImportSummary> {
        let mut tx = self.begin_write().await?;
        let summary = import_in(&mut tx, data).await?;
        Self::commit(tx).await?;
        Ok(summary)
    }
}

#[async_trait]
impl ChangeLog for SqlStore {
    async fn changes_after(&self, after: i64, limit: u32) -> Result<Vec<ChangeEntry>> {
        let rows: Vec<(i64, i64, String, String, String, String, String)> = sqlx::query_as(
            "SELECT seq, at_ms, kind, groups, subjects, provisioners, detail FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading the change log"))?;
        rows.into_iter()
            .map(|(seq, at_ms, kind, groups, subjects, provisioners, detail)| {
                let bad = |field: &str, e: String| RegistryError::Refused(format!("change-log entry {seq}: {field}: {e}"));
                // A kind written by a newer duoprov is handed on as `Unknown` (an incremental sync
                // leaves it to a full sync) rather than failing every read of the log after it.
                let kind = ChangeKind::parse(&kind).unwrap_or_else(|| {
                    tracing::warn!(seq, kind = %kind, "A change-log entry has a kind this version of duoprov does not know (written by a newer version?); it is left to a full sync.");
                    ChangeKind::Unknown
                });
                Ok(ChangeEntry {
                    seq,
                    at_ms,
                    kind,
                    groups: serde_json::from_str(&groups).map_err(|e| bad("groups", e.to_string()))?,
                    subjects: serde_json::from_str(&subjects).map_err(|e| bad("subjects", e.to_string()))?,
                    provisioners: serde_json::from_str(&provisioners).map_err(|e| bad("provisioners", e.to_string()))?,
                    detail: serde_json::from_str(&detail).map_err(|e| bad("detail", e.to_string()))?,
                })
            })
            .collect()
    }

    async fn last_change_seq(&self) -> Result<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM change_log")
            .fetch_one(&self.pool)
            .await
            .map_err(db("reading the change log"))?;
        Ok(seq.unwrap_or(0))
    }
}

async fn upsert_subject_in(tx: &mut Tx, key: &SubjectKey, patch: &SubjectPatch, create: bool) -> Result<(Subject, Upsert)> {
    let (subject, outcome) = match subject_row(tx, key).await? {
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
            log_change(tx, ChangeKind::SubjectUpdated, vec![], vec![key.clone()], vec![], json!({"subject": key, "fields": changed})).await?;
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
            log_change(tx, ChangeKind::SubjectAdded, vec![], vec![key.clone()], vec![], json!({"subject": key})).await?;
            (s, Upsert::Created)
        }
        None => return Err(not_found(format!("subject {key}"))),
    };
    Ok((subject, outcome))
}

/// The marker column, the target's id, and the groups whose selection the marker can change.
async fn marker_target_in(tx: &mut Tx, target: &MarkerTarget) -> Result<(&'static str, i64, Vec<String>)> {
    Ok(match target {
        MarkerTarget::Folder(path) => {
            let f = folder_row(tx, path.as_str()).await?.ok_or_else(|| not_found(format!("folder {path}")))?;
            let groups = groups_under(tx, path.as_str()).await?.into_iter().map(|g| g.1).collect();
            ("folder_id", f.0, groups)
        }
        MarkerTarget::Group(name) => {
            let g = require_group(tx, name).await?;
            ("group_id", g.0, vec![g.1.clone()])
        }
    })
}

async fn assign_marker_in(tx: &mut Tx, marker: &Marker) -> Result<Upsert> {
    let (column, id, affected) = marker_target_in(tx, &marker.target).await?;
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
    log_change(
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

/// A subject's columns and whether it is an immediate member.
type EffectiveRow = (i64, String, String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, bool);

/// The effective members of `group` (subjects reached through nesting), inside `tx`.
async fn effective_in(tx: &mut Tx, group: &GroupName) -> Result<Vec<EffectiveMember>> {
    let g = require_group(tx, group).await?;
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

async fn selection_in(tx: &mut Tx, provisioner: &str) -> Result<ProvisionerSelection> {
    let markers: Vec<(Option<String>, Option<String>, String, bool)> = sqlx::query_as(
        "SELECT f.path, g.name, m.scope, m.provision FROM marker m \
         LEFT JOIN folder f ON f.id = m.folder_id LEFT JOIN grp g ON g.id = m.group_id WHERE m.provisioner = $1",
    )
    .bind(provisioner)
    .fetch_all(&mut **tx)
    .await
    .map_err(db(format!("reading the markers of {provisioner}")))?;
    let mut parsed = Vec::with_capacity(markers.len());
    for (folder, group, scope, provision) in markers {
        let target = match (folder, group) {
            (Some(f), _) => MarkerTarget::Folder(FolderPath::parse(&f)?),
            (None, Some(g)) => MarkerTarget::Group(GroupName::parse(&g)?),
            (None, None) => continue,
        };
        let scope = scope.parse::<MarkerScope>().map_err(|e| RegistryError::Refused(format!("marker of {provisioner}: {e}")))?;
        parsed.push(Marker { provisioner: provisioner.to_owned(), target, scope, provision });
    }
    let index = MarkerIndex::new(&parsed);
    let mut selection = ProvisionerSelection { provisioner: provisioner.to_owned(), ..Default::default() };
    if index.is_empty() {
        return Ok(selection);
    }

    let groups: Vec<GroupTuple> = sqlx::query_as(concat!("SELECT ", group_cols!(), " FROM grp g ORDER BY g.name"))
        .fetch_all(&mut **tx)
        .await
        .map_err(db("reading groups"))?;
    let selected: Vec<&GroupTuple> = groups.iter().filter(|g| index.selects(&g.2)).collect();
    if selected.is_empty() {
        return Ok(selection);
    }

    // Nesting edges are few next to subject memberships: walk them in memory.
    let edges: Vec<(i64, i64)> = sqlx::query_as("SELECT group_id, member_group_id FROM member_group")
        .fetch_all(&mut **tx)
        .await
        .map_err(db("reading group nesting"))?;
    let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
    for (g, m) in &edges {
        children.entry(*g).or_default().push(*m);
    }
    let reach = |root: i64| -> Vec<i64> {
        let mut seen = HashSet::from([root]);
        let mut stack = vec![root];
        while let Some(g) = stack.pop() {
            for c in children.get(&g).into_iter().flatten() {
                if seen.insert(*c) {
                    stack.push(*c);
                }
            }
        }
        seen.into_iter().collect()
    };
    let reached: Vec<Vec<i64>> = selected.iter().map(|g| reach(g.0)).collect();
    let mut all_groups: Vec<i64> = reached.iter().flatten().copied().collect();
    all_groups.sort_unstable();
    all_groups.dedup();

    let direct_sql = format!(
        "SELECT group_id, {} FROM member_subject WHERE group_id IN ({}) GROUP BY group_id",
        DIALECT.concat_subject_ids, DIALECT.json_ids
    );
    let ids_json = serde_json::to_string(&all_groups).unwrap_or_else(|_| "[]".into());
    let direct: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(direct_sql))
        .bind(&ids_json)
        .fetch_all(&mut **tx)
        .await
        .map_err(db("reading group members"))?;
    let direct: HashMap<i64, Vec<i64>> = direct.into_iter().map(|(g, list)| (g, parse_ids(&list))).collect();

    let mut member_rows: Vec<Vec<i64>> = Vec::with_capacity(selected.len());
    let mut all_subjects: Vec<i64> = Vec::new();
    for groups in &reached {
        let mut members: Vec<i64> = groups.iter().filter_map(|g| direct.get(g)).flatten().copied().collect();
        members.sort_unstable();
        members.dedup();
        all_subjects.extend_from_slice(&members);
        member_rows.push(members);
    }
    all_subjects.sort_unstable();
    all_subjects.dedup();

    let subjects_sql = format!(
        concat!("SELECT ", subject_cols!(), " FROM subject s WHERE s.id IN ({}) ORDER BY s.source, s.subject_id"),
        DIALECT.json_ids
    );
    let subject_rows: Vec<SubjectTuple> = sqlx::query_as(sqlx::AssertSqlSafe(subjects_sql))
        .bind(serde_json::to_string(&all_subjects).unwrap_or_else(|_| "[]".into()))
        .fetch_all(&mut **tx)
        .await
        .map_err(db("reading the members' subjects"))?;
    let mut position: HashMap<i64, u32> = HashMap::with_capacity(subject_rows.len());
    for (i, row) in subject_rows.iter().enumerate() {
        position.insert(row.0, i as u32);
    }
    selection.subjects = subject_rows.into_iter().map(subject_of).collect();
    for (g, members) in selected.into_iter().zip(member_rows) {
        let mut members: Vec<u32> = members.iter().filter_map(|id| position.get(id).copied()).collect();
        members.sort_unstable();
        selection.groups.push(ProvisionableGroup { group: group_of(g)?, members });
    }
    Ok(selection)
}

async fn import_in(tx: &mut Tx, data: &ImportData) -> Result<ImportSummary> {
    // The registry as it stands, under the write lock.
    let subjects: Vec<SubjectTuple> = sqlx::query_as(concat!("SELECT ", subject_cols!(), " FROM subject s"))
        .fetch_all(&mut **tx)
        .await
        .map_err(db("reading subjects for the import"))?;
    let mut existing_subjects: HashMap<SubjectKey, Subject> = HashMap::with_capacity(subjects.len());
    for row in subjects {
        let s = subject_of(row);
        existing_subjects.insert(s.key(), s);
    }
    let folders: Vec<(i64, String)> = sqlx::query_as("SELECT id, path FROM folder")
        .fetch_all(&mut **tx)
        .await
        .map_err(db("reading folders for the import"))?;
    let mut folder_ids: HashMap<String, i64> = folders.into_iter().map(|(id, p)| (p, id)).collect();
    let groups: Vec<GroupTuple> = sqlx::query_as(concat!("SELECT ", group_cols!(), " FROM grp g"))
        .fetch_all(&mut **tx)
        .await
        .map_err(db("reading groups for the import"))?;
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT g.name, m.name FROM member_group mg JOIN grp g ON g.id = mg.group_id JOIN grp m ON m.id = mg.member_group_id",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(db("reading group nesting for the import"))?;
    let existing = Existing {
        subjects: existing_subjects.keys().cloned().collect(),
        folders: folder_ids.keys().cloned().collect(),
        groups: groups.iter().map(|g| g.2.clone()).collect(),
        group_edges: edges,
    };
    let plan = import::validate(data, &existing).map_err(RegistryError::Invalid)?;
    let mut summary = ImportSummary::default();
    let mut touched_subjects = Vec::new();

    // Subjects: write only what changes.
    let mut to_write = Vec::new();
    for row in &plan.subjects {
        let incoming = Subject {
            source: row.key.source.clone(),
            id: row.key.id.clone(),
            name: row.name.clone(),
            login_id: row.login_id.clone(),
            email: row.email.clone(),
            first_name: row.first_name.clone(),
            last_name: row.last_name.clone(),
            description: row.description.clone(),
        };
        match existing_subjects.get(&row.key) {
            Some(current) if *current == incoming => summary.subjects_unchanged += 1,
            Some(_) => {
                summary.subjects_updated += 1;
                touched_subjects.push(row.key.clone());
                to_write.push(incoming);
            }
            None => {
                summary.subjects_created += 1;
                touched_subjects.push(row.key.clone());
                to_write.push(incoming);
            }
        }
    }
    for chunk in to_write.chunks(BATCH) {
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO subject (source, subject_id, name, login_id, email, first_name, last_name, description) ",
        );
        qb.push_values(chunk, |mut b, s| {
            b.push_bind(&s.source)
                .push_bind(&s.id)
                .push_bind(&s.name)
                .push_bind(&s.login_id)
                .push_bind(&s.email)
                .push_bind(&s.first_name)
                .push_bind(&s.last_name)
                .push_bind(&s.description);
        });
        qb.push(
            " ON CONFLICT (source, subject_id) DO UPDATE SET name = excluded.name, login_id = excluded.login_id, \
             email = excluded.email, first_name = excluded.first_name, last_name = excluded.last_name, description = excluded.description",
        );
        qb.build().execute(&mut **tx).await.map_err(db("writing imported subjects"))?;
    }

    // Folders, parents first.
    let mut folders_created = Vec::new();
    for (path, display_name, description, explicit) in &plan.folders {
        match folder_ids.get(path.as_str()) {
            Some(id) if *explicit => {
                sqlx::query("UPDATE folder SET display_name = $1, description = $2 WHERE id = $3")
                    .bind(display_name)
                    .bind(description)
                    .bind(*id)
                    .execute(&mut **tx)
                    .await
                    .map_err(db(format!("updating imported folder {path}")))?;
            }
            Some(_) => {}
            None => {
                let parent_id = path.parent().and_then(|p| folder_ids.get(p.as_str()).copied());
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO folder (path, parent_id, display_name, description) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(path.as_str())
                .bind(parent_id)
                .bind(display_name)
                .bind(description)
                .fetch_one(&mut **tx)
                .await
                .map_err(db(format!("adding imported folder {path}")))?;
                folder_ids.insert(path.as_str().to_owned(), id);
                folders_created.push(path.as_str().to_owned());
            }
        }
    }
    summary.folders_created = folders_created.len();

    // Groups.
    let mut group_by_name: HashMap<String, (i64, String)> = groups.iter().map(|g| (g.2.clone(), (g.0, g.1.clone()))).collect();
    let current_attrs: HashMap<&str, (&Option<String>, &Option<String>)> = groups.iter().map(|g| (g.2.as_str(), (&g.4, &g.5))).collect();
    let mut touched_groups: Vec<String> = Vec::new();
    let mut new_groups = Vec::new();
    for (name, display_name, description) in &plan.groups {
        match current_attrs.get(name.as_str()) {
            Some((dn, desc)) if *dn == display_name && *desc == description => {}
            Some(_) => {
                let (id, uuid) = &group_by_name[name.as_str()];
                sqlx::query("UPDATE grp SET display_name = $1, description = $2 WHERE id = $3")
                    .bind(display_name)
                    .bind(description)
                    .bind(*id)
                    .execute(&mut **tx)
                    .await
                    .map_err(db(format!("updating imported group {name}")))?;
                summary.groups_updated += 1;
                touched_groups.push(uuid.clone());
            }
            None => new_groups.push((name, display_name, description, uuid::Uuid::new_v4().to_string())),
        }
    }
    for chunk in new_groups.chunks(BATCH) {
        let mut qb = sqlx::QueryBuilder::<Db>::new("INSERT INTO grp (uuid, name, folder_id, display_name, description) ");
        qb.push_values(chunk, |mut b, (name, dn, desc, uuid)| {
            b.push_bind(uuid)
                .push_bind(name.as_str())
                .push_bind(name.parent().and_then(|p| folder_ids.get(p.as_str()).copied()))
                .push_bind(*dn)
                .push_bind(*desc);
        });
        qb.push(" RETURNING id, uuid, name");
        let rows: Vec<(i64, String, String)> = qb.build_query_as().fetch_all(&mut **tx).await.map_err(db("writing imported groups"))?;
        for (id, uuid, name) in rows {
            touched_groups.push(uuid.clone());
            group_by_name.insert(name, (id, uuid));
        }
    }
    summary.groups_created = new_groups.len();

    // Memberships.
    let mut subject_ids: HashMap<(String, String), i64> = HashMap::new();
    if plan.memberships.iter().any(|m| matches!(m.1, MemberRow::Subject(_))) {
        let rows: Vec<(i64, String, String)> = sqlx::query_as("SELECT id, source, subject_id FROM subject")
            .fetch_all(&mut **tx)
            .await
            .map_err(db("reading subject ids for the import"))?;
        subject_ids = rows.into_iter().map(|(id, s, i)| ((s, i), id)).collect();
    }
    let mut subject_pairs = Vec::new();
    let mut group_pairs = Vec::new();
    let mut membership_groups: HashSet<i64> = HashSet::new();
    for (group, member) in &plan.memberships {
        let gid = group_by_name[group.as_str()].0;
        membership_groups.insert(gid);
        match member {
            MemberRow::Subject(k) => {
                let sid = subject_ids.get(&(k.source.clone(), k.id.clone())).copied().ok_or_else(|| not_found(format!("subject {k}")))?;
                subject_pairs.push((gid, sid));
            }
            MemberRow::Group(m) => group_pairs.push((gid, group_by_name[m.as_str()].0)),
        }
    }
    for (table, pairs) in [("member_subject (group_id, subject_id) ", &subject_pairs), ("member_group (group_id, member_group_id) ", &group_pairs)] {
        for chunk in pairs.chunks(BATCH * 4) {
            let mut qb = sqlx::QueryBuilder::<Db>::new(format!("INSERT INTO {table}"));
            qb.push_values(chunk, |mut b, (g, m)| {
                b.push_bind(*g).push_bind(*m);
            });
            qb.push(" ON CONFLICT DO NOTHING");
            let r = qb.build().execute(&mut **tx).await.map_err(db("writing imported memberships"))?;
            summary.memberships_added += r.rows_affected() as usize;
        }
    }
    summary.memberships_present = plan.memberships.len() - summary.memberships_added;

    // Groups whose effective membership changed: those named, and every group above them.
    if !membership_groups.is_empty() {
        let all_edges: Vec<(i64, i64)> = sqlx::query_as("SELECT group_id, member_group_id FROM member_group")
            .fetch_all(&mut **tx)
            .await
            .map_err(db("reading group nesting"))?;
        let mut parents: HashMap<i64, Vec<i64>> = HashMap::new();
        for (g, m) in all_edges {
            parents.entry(m).or_default().push(g);
        }
        let mut seen: HashSet<i64> = membership_groups.clone();
        let mut stack: Vec<i64> = membership_groups.into_iter().collect();
        while let Some(g) = stack.pop() {
            for p in parents.get(&g).into_iter().flatten() {
                if seen.insert(*p) {
                    stack.push(*p);
                }
            }
        }
        let uuid_of: HashMap<i64, &String> = group_by_name.values().map(|(id, uuid)| (*id, uuid)).collect();
        touched_groups.extend(seen.into_iter().filter_map(|id| uuid_of.get(&id).map(|u| (*u).clone())));
    }

    // Markers.
    let mut provisioners = Vec::new();
    for m in &plan.markers {
        let marker = Marker { provisioner: m.provisioner.clone(), target: m.target.clone(), scope: m.scope, provision: m.provision };
        if assign_marker_in(tx, &marker).await? != Upsert::Unchanged {
            summary.markers_set += 1;
        }
        provisioners.push(m.provisioner.clone());
    }
    provisioners.sort();
    provisioners.dedup();

    let changed = summary.subjects_created + summary.subjects_updated + summary.folders_created + summary.groups_created
        + summary.groups_updated + summary.memberships_added + summary.markers_set;
    if changed > 0 {
        log_change(tx, ChangeKind::Import, touched_groups, touched_subjects, provisioners, serde_json::to_value(&summary).unwrap_or_default()).await?;
    }
    Ok(summary)
}
