//! What stops a run as a whole (as opposed to one object's failure, which is recorded on the
//! object and never stops the others).

use duoprov_plan::safety::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The registry could not be read or written.
    #[error("registry")]
    Registry(#[from] duoprov_registry::RegistryError),
    /// Duo could not be read (a full sync needs the whole picture before it plans).
    #[error("reading Duo")]
    DuoRead(#[source] duoprov_duo::DuoError),
    /// The safety rules refused the plan; nothing was changed.
    #[error("{}", .refusal.message(.provisioner))]
    Refused { provisioner: String, refusal: Refusal },
    /// A saved plan no longer matches the registry or Duo; nothing was changed.
    #[error("the saved plan no longer applies: {0}; make a new plan")]
    Stale(String),
    /// The runner lock was lost during the run (the registry session ended or the lock file was
    /// removed): another runner may be writing, so this run stopped before its next phase.
    #[error("stopped before {phase}: this process no longer holds the runner lock of provisioner {provisioner} (its registry session ended or its lock file was removed); nothing more was sent to Duo, and the next run picks up from Duo as it is")]
    LockLost { provisioner: String, phase: String },
    /// A subject or group named on request does not exist, or is not the provisioner's.
    #[error("{0}")]
    NotFound(String),
    /// One object cannot be synced alone (the reason says why, and what to run instead).
    #[error("{0}")]
    Scope(String),
    /// The sync-back group cannot be written (not duoprov's, it would loop, or no Duo users
    /// table is loaded); the message says why and what to do.
    #[error("{0}")]
    SyncBack(String),
    /// The sync-back group's removals exceed its thresholds, or follow an incomplete load of the
    /// Duo users table; nothing was written (the message names the group, the count, the setting
    /// and the approval).
    #[error("{}", .0.message())]
    SyncBackRefused(Box<crate::sync_back::SyncBackRefusal>),
}
