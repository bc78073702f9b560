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
}
