//! Sources keep the registry an exact mirror of a system of record: an LDAP directory, a SQL
//! database (PostgreSQL, three queries) or a snapshot file. A source owns the subjects of its subject source, the groups under its folder
//! and their memberships; each run reads the whole source into a [`SourceSnapshot`], diffs it
//! against what the registry holds in that scope ([`mirror::diff`], pure), checks the removals
//! against the safety rules ([`mirror::check`]) and hands the changes to the store, which applies
//! them in one transaction with one change-log entry per mutation.

pub mod file;
pub mod ldap;
pub mod mirror;
pub mod run;
pub mod sql;
pub mod syncrepl;

pub use mirror::{diff, Refusal, SnapshotGroup, SnapshotMember, SourceDiff, SourceSnapshot, Thresholds};
pub use run::{mirror, Outcome, Report, RunError};
