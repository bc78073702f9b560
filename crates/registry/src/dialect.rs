//! The few places where SQLite and PostgreSQL need different SQL. Everything else in
//! `sql/` is the portable subset both accept unchanged (`$n` placeholders, `ON CONFLICT`,
//! `RETURNING`, recursive CTEs, epoch-integer times).

pub(crate) struct Dialect {
    /// Starts a write transaction that holds the registry's single writer lock until commit, so
    /// change-log sequence numbers commit in order and cycle checks cannot race.
    pub begin_write: &'static str,
    /// Run right after `begin_write` (PostgreSQL takes a transaction-scoped advisory lock).
    pub write_lock: Option<&'static str>,
    /// Starts a read transaction whose statements all see one snapshot of the registry
    /// (PostgreSQL's default READ COMMITTED lets each statement see the latest commit, so a read
    /// of several statements could mix two states).
    pub begin_read: &'static str,
    /// A sub-select yielding the integers of the JSON array bound as `$1`.
    pub json_ids: &'static str,
    /// A sub-select yielding, for the JSON array of `[integer, integer]` pairs bound as `$1`, one
    /// row per pair (an import's memberships: one parameter per batch, not two per row).
    pub json_id_pairs: &'static str,
    /// A sub-select yielding, for the JSON array of eight-element arrays of strings or nulls bound
    /// as `$1`, one row of eight text columns per array (an import's subjects).
    pub json_text_rows8: &'static str,
    /// Aggregates `subject_id` of a group's rows into one comma-separated text.
    pub concat_subject_ids: &'static str,
    /// Run in the transaction of every change-log entry: PostgreSQL notifies listeners (a daemon
    /// waiting for changes) when the transaction commits.
    pub notify_change: Option<&'static str>,
}
