//! Orchestration of a sync run, the only place that sequences I/O: load the registry selection,
//! read Duo, plan, check safety, apply, record. The planner stays pure; the client and the store
//! stay ignorant of each other.
//!
//! ```text
//! prepare(): registry selection ─┐
//!            Duo users + groups ─┼─▶ plan ─▶ fingerprints
//!            links (sync state) ─┘
//! run():     safety check ─▶ apply phase by phase (creates, updates, memberships, deletes),
//!            recording links and per-object results after each phase ─▶ run log
//! ```

mod apply;
pub mod error;
pub mod progress;
mod read;
pub mod report;
mod run;

pub use error::SyncError;
pub use progress::{NoProgress, Progress};
pub use report::RunReport;
pub use run::{prepare, run, Prepared, SavedPlan, SyncOptions, SyncSettings};
