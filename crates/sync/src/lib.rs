//! Orchestration of a sync run, the only place that sequences I/O: load the registry selection,
//! read Duo, plan, check safety, apply, record. The planner stays pure; the client and the store
//! stay ignorant of each other.
//!
//! ```text
//! prepare(): registry selection ─┐
//!            Duo users + groups ─┼─▶ plan ─▶ fingerprints
//!            links (sync state) ─┘
//! run():     safety check ─▶ apply: group creates (write class) alongside user creates and
//!            memberships (bulk class), then deletes, recording links and per-object results
//!            after each batch or phase ─▶ run log,
//!            checkpoint and retry list
//! ```
//!
//! `prepare_incremental()` replaces `prepare()` for an incremental run: the change log after the
//! checkpoint and the due retries name the objects, and only those are read and planned.
//! `prepare_object()` does the same for one group or subject named on request ([`object`]), and
//! [`explain`] answers why a subject is (not) in a Duo group, from the registry and the sync state.
//!
//! Modules, each importing only those listed after it (a DAG, no cycles):
//!
//! ```text
//! explain       ─▶ object, registry_read, settings, error
//! object        ─▶ incremental, registry_read, settings, prepared, error
//! run           ─▶ admins, apply, registry_read, read, report, settings, prepared, progress, error
//! incremental   ─▶ registry_read, read, settings, prepared, error
//! apply         ─▶ streams, report, fence, progress, error
//! admins        ─▶ report, settings, error
//! registry_read ─▶ settings, error
//! settings      ─▶ prepared (SavedPlan), fence
//! report        ─▶ prepared (ScopeSummary)
//! read          ─▶ progress, error
//! prepared, fence, progress, streams, error: leaves
//! ```

mod admins;
mod apply;
pub mod duo_user_report;
pub mod duo_users;
pub mod error;
pub mod fence;
pub mod explain;
pub mod incremental;
pub mod object;
mod prepared;
pub mod progress;
mod read;
mod registry_read;
pub mod report;
mod run;
mod settings;
mod streams;
pub mod sync_back;

pub use error::SyncError;
pub use fence::{Fence, FenceHandle};
pub use incremental::{prepare_incremental, Incremental, IncrementalSettings, ScopeSummary};
pub use prepared::{Prepared, RenderedUpdate, RunKind, SavedPlan};
pub use progress::{NoProgress, Progress};
pub use report::{AdminCounts, ClassReport, RunReport};
pub use object::{ObjectTarget, prepare_object};
pub use registry_read::{provisioned_groups, ListedGroup};
pub use run::{now_ms, prepare, prepare_with_progress, run};
pub use settings::{rendering_fingerprint, SelectionRules, SyncOptions, SyncSettings};
