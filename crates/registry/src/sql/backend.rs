//! What the one SQL store asks of a database: [`SqlBackend`], implemented by SQLite and
//! PostgreSQL only (the trait is sealed), carrying the few places where their SQL differs and the
//! two things only a backend can do (the runner lock and change notifications). Everything else
//! in `sql/` is the portable subset both accept unchanged (`$n` placeholders, `ON CONFLICT`,
//! `RETURNING`, recursive CTEs, epoch-integer times).
//!
//! Rust does not let a trait's `where` clauses follow it to its users, so the generic code states
//! what it needs of the database's types ([`Param`], [`Value`], the connection as an executor) on
//! each `impl` block; see `sql/mod.rs`.

use std::future::Future;

use sqlx::{Database, Decode, Encode, IntoArguments, Type};

use super::SqlStore;
use crate::error::Result;
use crate::store::Backend;
use crate::sync_state::{ChangeWaker, RunnerLock};

pub(crate) mod sealed {
    /// Only duoprov's two databases implement [`SqlBackend`](super::SqlBackend).
    pub trait Sealed {}
    impl Sealed for sqlx::Sqlite {}
    impl Sealed for sqlx::Postgres {}
}

/// A sqlx database the SQL store runs on: SQLite or PostgreSQL.
pub trait SqlBackend: Database<Arguments: IntoArguments<Self>> + sealed::Sealed {
    /// Which database this is, as the store reports it.
    const BACKEND: Backend;
    /// Starts a write transaction that holds the registry's single writer lock until commit, so
    /// change-log sequence numbers commit in order and cycle checks cannot race.
    const BEGIN_WRITE: &'static str;
    /// Run right after `BEGIN_WRITE` (PostgreSQL takes a transaction-scoped advisory lock).
    const WRITE_LOCK: Option<&'static str>;
    /// Run at the start of every audit append, in its transaction (PostgreSQL takes a
    /// transaction-scoped advisory lock of its own; SQLite's write transaction already excludes
    /// other writers), so the chain head read and the insert after it cannot interleave.
    const AUDIT_LOCK: Option<&'static str>;
    /// Starts a read transaction whose statements all see one snapshot of the registry
    /// (PostgreSQL's default READ COMMITTED lets each statement see the latest commit, so a read
    /// of several statements could mix two states).
    const BEGIN_READ: &'static str;
    /// A sub-select yielding the integers of the JSON array bound as `$1`.
    const JSON_IDS: &'static str;
    /// A sub-select yielding, for the JSON array of `[integer, integer]` pairs bound as `$1`, one
    /// row per pair (an import's memberships: one parameter per batch, not two per row).
    const JSON_ID_PAIRS: &'static str;
    /// A sub-select yielding, for the JSON array of eight-element arrays of strings or nulls bound
    /// as `$1`, one row of eight text columns per array (an import's subjects).
    const JSON_TEXT_ROWS8: &'static str;
    /// How a large import loads subject memberships, when the database gains by it (see
    /// [`BulkLoad`]).
    const BULK_MEMBERSHIP_LOAD: Option<BulkLoad>;
    /// Aggregates `subject_id` of a group's rows into one comma-separated text.
    const CONCAT_SUBJECT_IDS: &'static str;
    /// Run in the transaction of every change-log entry: PostgreSQL notifies listeners (a daemon
    /// waiting for changes) when the transaction commits.
    const NOTIFY_CHANGE: Option<&'static str>;
    /// Appended to a text expression to compare it byte by byte (code point order), so a prefix
    /// range `[p, p || U+10FFFF)` holds exactly the strings starting with `p` and an index built
    /// under the same collation serves it (SQLite's default collation already is).
    const BYTE_ORDER: &'static str;
    /// Follows `FROM duo_user d` when reading the Duo users not in the registry: SQLite names the
    /// partial index `duo_user_unrendered` (without statistics it would count by primary key,
    /// every row of the provisioner); PostgreSQL's planner picks it.
    const UNRENDERED_INDEX: &'static str;

    /// The rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Takes the runner lock `key` if no other process holds it (see
    /// [`SyncStore::try_lock_runner`](crate::SyncStore::try_lock_runner)).
    fn try_lock_runner(store: &SqlStore<Self>, key: &str) -> impl Future<Output = Result<Option<RunnerLock>>> + Send;

    /// A waker for registry changes, when the database can notify (see
    /// [`SyncStore::change_waker`](crate::SyncStore::change_waker)).
    fn change_waker(store: &SqlStore<Self>) -> impl Future<Output = Result<Option<ChangeWaker>>> + Send;
}

/// Statements run around a large load of `member_subject` rows in the import's transaction:
/// `before` sets the table up for loading (PostgreSQL: drop the foreign keys, whose per-row check
/// locks the referenced subject and group, and the secondary index, maintained row by row),
/// `after` restores it (rebuilt and re-validated in one pass each). Both run inside the
/// transaction, so a failed import leaves the table exactly as it was.
#[derive(Debug, Clone, Copy)]
pub struct BulkLoad {
    pub before: &'static [&'static str],
    pub after: &'static [&'static str],
}

/// A type the store binds as a query parameter.
pub trait Param<DB: Database>: for<'q> Encode<'q, DB> + Type<DB> + Send {}
impl<DB: Database, T: for<'q> Encode<'q, DB> + Type<DB> + Send> Param<DB> for T {}

/// A type the store both binds and reads back from a column.
pub trait Value<DB: Database>: Param<DB> + for<'r> Decode<'r, DB> + Unpin {}
impl<DB: Database, T: Param<DB> + for<'r> Decode<'r, DB> + Unpin> Value<DB> for T {}
