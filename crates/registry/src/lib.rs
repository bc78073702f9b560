//! The group registry: subjects, folders, groups, memberships and provisioning markers, stored in
//! SQLite or PostgreSQL behind one [`Store`] trait, with a change log written in the same
//! transaction as every mutation.
//!
//! Both backends run the same SQL: one store, [`SqlStore<DB>`](crate::SqlStore), generic over
//! the sqlx database (`sql/`), so they cannot drift apart; the few dialect differences are
//! constants of [`SqlBackend`](crate::SqlBackend).
//!
//! ```no_run
//! # async fn demo() -> Result<(), duoprov_registry::RegistryError> {
//! use duoprov_model::{GroupMember, GroupName, SubjectKey, SubjectPatch};
//! use duoprov_registry::{open, NodeAttrs, OpenOptions};
//!
//! let store = open("sqlite::memory:", &OpenOptions::default()).await?;
//! let patch = SubjectPatch { name: Some(Some("Chris Hyzer".into())), ..Default::default() };
//! store.upsert_subject(&SubjectKey::local("mchyzer"), &patch).await?;
//! let group = GroupName::parse("app:duo:testGroup")?;
//! store.add_group(&group, &NodeAttrs::default(), true).await?;
//! store.add_member(&group, &GroupMember::Subject(SubjectKey::local("mchyzer"))).await?;
//! assert_eq!(store.effective_members(&group).await?.len(), 1);
//! # Ok(()) }
//! ```

pub mod admins;
pub mod audit;
pub mod console;
pub mod disabled_users;
pub mod console_actions;
pub mod console_requests;
pub mod console_pages;
pub mod rendered_report;
pub mod duo_probe;
pub mod duo_users;
pub mod error;
pub mod import;
pub mod memory;
mod migrate;
pub mod mirror;
pub mod pg_tls;
pub mod postgres;
pub mod retention;
pub mod scoped;
pub mod scoped_links;
pub mod scoped_groups;
pub mod sqlite;
mod sql;
mod store;
pub mod sync_back;
pub mod source_feed;
pub mod sync_state;
pub mod url;

pub use admins::AdminStore;
pub use audit::{AuditActor, AuditEntry, AuditFilter, AuditLog, AuditRecord, AuditTrigger, ChainBreak, ChainCheck, DuoAnswer};
pub use console::{ConsoleReads, LinkCounts, LinkKind, LinkRow, Paged};
pub use disabled_users::DisabledUserStore;
pub use sync_back::{SyncBackChanges, SyncBackStore};
pub use source_feed::{SourceFeedState, SourceFeedStore};
pub use console_actions::{ConsoleAction, ConsoleActions, PendingApproval};
pub use console_requests::{ConsoleRequest, ConsoleRequests, REFUSAL_REMOVALS_KEPT, RefusedPlan, RequestKind, RequestedObject, RetryQueued};
pub use console_pages::{ConsolePages, Cursor, KeyPage};
pub use rendered_report::{RenderedReport, RenderedReportState};
pub use duo_probe::{DuoProbeStore, ProbeRecord};
pub use duo_users::{AuthMethod, AuthMethodCounts, DuoUserFilter, DuoUserLoad, DuoUserRow, DuoUserStore, ReplaceCounts};
pub use error::{RegistryError, Result};
pub use import::{ImportData, ImportSummary};
pub use memory::MemorySyncStore;
pub use retention::{Pruned, Retention};
pub use scoped::{RenderedCounts, RenderedName, ScopedReads, ScopedSelection};
pub use scoped_links::{ScopedLinkRead, ScopedLinks};
pub use scoped_groups::{RenderedGroup, ScopedGroups};
pub use mirror::MirrorStore;
pub use sql::{SqlBackend, SqlStore};
pub use store::{Backend, ChangeLog, EffectiveMember, NodeAttrs, RegistryReader, RegistryWriter, Store, Upsert};
pub use sync_state::{
    Backoff, ChangeWaker, Checkpoint, GroupState, MembershipState, RetryRecord, RetryTarget, RunKind, RunRecord, RunStatus, RunnerLock, Settlement, StateError,
    SyncStore, UserState,
};

/// How to open a registry beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// PostgreSQL password, when it is not in the URL (read from a file or the environment).
    pub password: Option<secrecy::SecretString>,
    /// PostgreSQL schema to keep the tables in (tests use one schema each).
    pub schema: Option<String>,
}

/// Opens the registry at `url` (`sqlite://FILE`, `sqlite::memory:`, `postgres://…`), creating or
/// migrating its schema as needed.
pub async fn open(url: &str, options: &OpenOptions) -> Result<Box<dyn Store>> {
    use secrecy::ExposeSecret;
    match url::backend_of(url)? {
        Backend::Sqlite => Ok(Box::new(sqlite::connect(url).await?)),
        Backend::Postgres => Ok(Box::new(
            postgres::connect(
                url,
                options.password.as_ref().map(|p| p.expose_secret()),
                options.schema.as_deref(),
            )
            .await?,
        )),
    }
}
