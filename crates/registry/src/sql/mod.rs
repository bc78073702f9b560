//! The registry store, written once for both databases: [`SqlStore<DB>`] is generic over a
//! [`SqlBackend`] (SQLite or PostgreSQL), which carries the few SQL differences as constants.
//! Every mutation runs in one write transaction that also appends its change-log entry. This file
//! holds what every area shares (row types, row readers, the store and its transactions) and the
//! role traits' implementations, which hand each method to its area: subjects, folders, groups,
//! memberships, markers, the change log, the sync engine's selection, and import; the sync
//! engine's state, Duo users, Duo probes and the audit log have their own files here too.
//!
//! Every generic `impl` block needs the same `where` clause (the connection is an executor; the
//! column types are parameters and values of `DB`), and Rust does not carry a trait's `where`
//! clauses to its users, so [`SqlBackend`] cannot state it once for all: `sql_impl!` below
//! writes it, once.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use duoprov_model::{
    ChangeEntry, ChangeKind, Folder, FolderPath, Group, GroupMember, GroupName, Marker,
    MarkerIndex, MarkerScope, MarkerTarget, ProvisionableGroup, ProvisionerSelection, Subject,
    SubjectKey, SubjectPatch,
};
use serde_json::json;
use sqlx::{Database, Pool, Transaction};

use crate::error::{RegistryError, Result};
use crate::import::{self, Existing, ImportData, ImportSummary, MemberRow};
use crate::store::{Backend, ChangeLog, EffectiveMember, NodeAttrs, RegistryReader, RegistryWriter, Store, Upsert};

type Tx<DB> = Transaction<'static, DB>;
/// A connection: a transaction or a pooled connection both dereference to one.
type Conn<DB> = <DB as Database>::Connection;
type SubjectTuple = (i64, String, String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
type GroupTuple = (i64, String, String, Option<i64>, Option<String>, Option<String>);
type FolderTuple = (i64, String, Option<i64>, Option<String>, Option<String>);
/// A subject's columns and whether it is an immediate member.
type EffectiveRow = (i64, String, String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>, bool);

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

/// `sql_impl! { #[attr] impl Head { items } }` is `#[attr] impl<DB: SqlBackend> Head where …
/// { items }` with the one `where` clause every generic block of `sql/` needs: the connection is
/// an executor, and the column types the store binds and reads are [`Param`]s and [`Value`]s of
/// `DB`.
macro_rules! sql_impl {
    ($(#[$attr:meta])* impl $($rest:tt)+) => {
        sql_impl!(@head [$(#[$attr])*] [] $($rest)+);
    };
    (@head [$($attr:tt)*] [$($head:tt)*] { $($body:tt)* }) => {
        $($attr)*
        impl<DB: $crate::sql::SqlBackend> $($head)*
        where
            for<'c> &'c mut DB::Connection: ::sqlx::Executor<'c, Database = DB>,
            usize: ::sqlx::ColumnIndex<DB::Row>,
            i64: $crate::sql::backend::Value<DB>,
            i32: $crate::sql::backend::Value<DB>,
            bool: $crate::sql::backend::Value<DB>,
            String: $crate::sql::backend::Value<DB>,
            for<'a> &'a str: $crate::sql::backend::Param<DB>,
            Option<i64>: $crate::sql::backend::Value<DB>,
            Option<String>: $crate::sql::backend::Value<DB>,
            for<'a> Option<&'a str>: ::sqlx::Encode<'a, DB> + ::sqlx::Type<DB>,
        {
            $($body)*
        }
    };
    (@head [$($attr:tt)*] [$($head:tt)*] $next:tt $($rest:tt)+) => {
        sql_impl!(@head [$($attr)*] [$($head)* $next] $($rest)+);
    };
}

mod backend;
mod subjects;
mod folders;
mod groups;
mod memberships;
mod markers;
mod change_log;
mod selection;
mod bulk;
mod sync_state;
mod duo_users;
mod duo_probe;
mod retention;
mod mirror;
mod audit;
mod console;
mod admins;
mod disabled_users;
mod sync_back;
mod source_feed;
mod console_actions;
mod console_requests;
mod console_pages;
mod scoped;
mod rendered_report;
mod scoped_links;
mod scoped_groups;

pub use backend::{BulkLoad, SqlBackend};
use self::{audit::Audit, bulk::Bulk, change_log::Changes, folders::Folders, groups::Groups, markers::Markers, memberships::Memberships, selection::Selection, subjects::Subjects};

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

/// The store over one database's pool: [`SqliteStore`](crate::sqlite::SqliteStore) and
/// [`PostgresStore`](crate::postgres::PostgresStore).
pub struct SqlStore<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: SqlBackend> SqlStore<DB> {
    pub(crate) fn from_pool(pool: Pool<DB>) -> Self {
        Self { pool }
    }

    /// The connection pool, for other parts of duoprov that keep their state in this database.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}

sql_impl! {
impl SqlStore<DB> {
    /// A write transaction holding the registry's writer lock (`BEGIN_WRITE` and `WRITE_LOCK` of
    /// the backend).
    async fn begin_write(&self) -> Result<Tx<DB>> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await.map_err(db("starting a write transaction"))?;
        if let Some(lock) = DB::WRITE_LOCK {
            sqlx::query(lock).execute(&mut *tx).await.map_err(db("taking the registry write lock"))?;
        }
        Ok(tx)
    }

    /// A write transaction outside the registry's change-log lock, for the sync's own records
    /// (links, rendered usernames, administrators, disabled users). It starts with `BEGIN_WRITE`
    /// so SQLite takes its single writer at the start, waiting its busy timeout for another
    /// writer: a transaction that read first under a plain `BEGIN` could not upgrade to a write
    /// once another connection had written, and failed with "database is locked" at once.
    async fn begin_state_write(&self, what: impl Into<String>) -> Result<Tx<DB>> {
        self.pool.begin_with(DB::BEGIN_WRITE).await.map_err(db(what))
    }

    /// A read transaction whose statements see one snapshot (`BEGIN_READ` of the backend).
    async fn begin_read(&self) -> Result<Tx<DB>> {
        self.pool.begin_with(DB::BEGIN_READ).await.map_err(db("starting a read"))
    }

    async fn commit(tx: Tx<DB>) -> Result<()> {
        tx.commit().await.map_err(db("committing"))
    }

    async fn subject_row(conn: &mut Conn<DB>, key: &SubjectKey) -> Result<Option<SubjectTuple>> {
        sqlx::query_as::<_, SubjectTuple>(concat!("SELECT ", subject_cols!(), " FROM subject s WHERE s.source = $1 AND s.subject_id = $2"))
            .bind(&key.source)
            .bind(&key.id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db(format!("reading subject {key}")))
    }

    async fn group_row(conn: &mut Conn<DB>, name: &str) -> Result<Option<GroupTuple>> {
        sqlx::query_as::<_, GroupTuple>(concat!("SELECT ", group_cols!(), " FROM grp g WHERE g.name = $1"))
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db(format!("reading group {name}")))
    }

    async fn require_group(tx: &mut Tx<DB>, name: &GroupName) -> Result<GroupTuple> {
        Self::group_row(tx, name.as_str()).await?.ok_or_else(|| not_found(format!("group {name}")))
    }

    async fn folder_row(conn: &mut Conn<DB>, path: &str) -> Result<Option<FolderTuple>> {
        sqlx::query_as::<_, FolderTuple>(concat!("SELECT ", folder_cols!(), " FROM folder f WHERE f.path = $1"))
            .bind(path)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db(format!("reading folder {path}")))
    }
}
}

fn parse_ids(list: &str) -> Vec<i64> {
    list.split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

sql_impl! {
impl Store for SqlStore<DB> {
    fn backend(&self) -> Backend {
        DB::BACKEND
    }
}
}

sql_impl! {
#[async_trait]
impl RegistryReader for SqlStore<DB> {
    async fn subject(&self, key: &SubjectKey) -> Result<Option<Subject>> {
        Subjects::subject(self, key).await
    }

    async fn subjects(&self, source: Option<&str>) -> Result<Vec<Subject>> {
        Subjects::subjects(self, source).await
    }

    async fn folder(&self, path: &FolderPath) -> Result<Option<Folder>> {
        Folders::folder(self, path).await
    }

    async fn folders(&self, under: Option<&FolderPath>) -> Result<Vec<Folder>> {
        Folders::folders(self, under).await
    }

    async fn group(&self, name: &GroupName) -> Result<Option<Group>> {
        Groups::group(self, name).await
    }

    async fn groups(&self, under: Option<&FolderPath>) -> Result<Vec<Group>> {
        Groups::groups(self, under).await
    }

    async fn existing_group_uuids(&self, uuids: &[String]) -> Result<HashSet<String>> {
        Groups::existing_uuids(self, uuids).await
    }

    async fn members(&self, group: &GroupName) -> Result<Vec<GroupMember>> {
        Memberships::members(self, group).await
    }

    async fn effective_members(&self, group: &GroupName) -> Result<Vec<EffectiveMember>> {
        Memberships::effective_members(self, group).await
    }

    async fn markers(&self, provisioner: Option<&str>) -> Result<Vec<Marker>> {
        Markers::markers(self, provisioner).await
    }

    async fn provisioner_selection(&self, provisioner: &str) -> Result<ProvisionerSelection> {
        Selection::provisioner_selection(self, provisioner).await
    }

    async fn provisioner_selection_with_eligible(&self, provisioner: &str, eligible: &GroupName) -> Result<(ProvisionerSelection, Vec<EffectiveMember>)> {
        Selection::provisioner_selection_with_eligible(self, provisioner, eligible).await
    }
}
}

sql_impl! {
#[async_trait]
impl RegistryWriter for SqlStore<DB> {
    async fn upsert_subject(&self, key: &SubjectKey, patch: &SubjectPatch) -> Result<(Subject, Upsert)> {
        Subjects::upsert_subject(self, key, patch).await
    }

    async fn update_subject(&self, key: &SubjectKey, patch: &SubjectPatch) -> Result<(Subject, Upsert)> {
        Subjects::update_subject(self, key, patch).await
    }

    async fn remove_subject(&self, key: &SubjectKey) -> Result<()> {
        Subjects::remove_subject(self, key).await
    }

    async fn add_folder(&self, path: &FolderPath, attrs: &NodeAttrs, create_parents: bool) -> Result<(Folder, Upsert)> {
        Folders::add_folder(self, path, attrs, create_parents).await
    }

    async fn update_folder(&self, path: &FolderPath, rename_to: Option<&FolderPath>, attrs: &NodeAttrs) -> Result<Folder> {
        Folders::update_folder(self, path, rename_to, attrs).await
    }

    async fn remove_folder(&self, path: &FolderPath, recursive: bool) -> Result<()> {
        Folders::remove_folder(self, path, recursive).await
    }

    async fn add_group(&self, name: &GroupName, attrs: &NodeAttrs, create_parents: bool) -> Result<(Group, Upsert)> {
        Groups::add_group(self, name, attrs, create_parents).await
    }

    async fn update_group(&self, name: &GroupName, rename_to: Option<&GroupName>, attrs: &NodeAttrs, create_parents: bool) -> Result<Group> {
        Groups::update_group(self, name, rename_to, attrs, create_parents).await
    }

    async fn remove_group(&self, name: &GroupName) -> Result<()> {
        Groups::remove_group(self, name).await
    }

    async fn add_member(&self, group: &GroupName, member: &GroupMember) -> Result<bool> {
        Memberships::add_member(self, group, member).await
    }

    async fn add_members(&self, group: &GroupName, members: &[GroupMember]) -> Result<Vec<bool>> {
        Memberships::add_members(self, group, members).await
    }

    async fn remove_member(&self, group: &GroupName, member: &GroupMember) -> Result<bool> {
        Memberships::remove_member(self, group, member).await
    }

    async fn remove_members(&self, group: &GroupName, members: &[GroupMember]) -> Result<Vec<bool>> {
        Memberships::remove_members(self, group, members).await
    }

    async fn assign_marker(&self, marker: &Marker) -> Result<Upsert> {
        Markers::assign_marker(self, marker).await
    }

    async fn unassign_marker(&self, provisioner: &str, target: &MarkerTarget) -> Result<bool> {
        Markers::unassign_marker(self, provisioner, target).await
    }

    async fn import(&self, data: &ImportData) -> Result<ImportSummary> {
        Bulk::import(self, data).await
    }
}
}
