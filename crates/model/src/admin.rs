//! Duo administrators as the admin-role planner sees them: an administrator read from Duo
//! ([`DuoAdmin`]), and the record of an administrator a provisioner manages ([`ManagedAdmin`]):
//! one it created, or one it adopted because its e-mail address matched a subject of a mapped
//! registry group. Administrators are matched by e-mail address, compared case-insensitively
//! ([`admin_email_key`]).

use serde::{Deserialize, Serialize};

use crate::registry::SubjectKey;

/// The form in which two administrator e-mail addresses are compared: lowercase. Duo refuses a
/// second administrator whose address differs from another's only in case.
pub fn admin_email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A Duo administrator (`/admin/v1/admins`), the fields the planner reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DuoAdmin {
    /// `DE…` id.
    pub admin_id: String,
    pub name: String,
    pub email: String,
    /// Duo's role string (`Owner`, `Help Desk`, …).
    pub role: String,
    /// `Active`, `Disabled`, `Pending Activation`, `Expired`, … (compare case-insensitively).
    pub status: String,
}

impl DuoAdmin {
    /// Whether Duo shows the administrator disabled.
    pub fn is_disabled(&self) -> bool {
        self.status.eq_ignore_ascii_case("disabled")
    }
}

/// An administrator a provisioner manages: created by it, or adopted by e-mail match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ManagedAdmin {
    /// Duo's `DE…` id.
    pub admin_id: String,
    /// The e-mail address it was matched or created by.
    pub email: String,
    /// The subject it stands for (the last one that wanted it).
    pub subject: SubjectKey,
    /// The role duoprov last set or found.
    pub role: String,
    /// duoprov created it (otherwise it was adopted).
    pub created_by_us: bool,
    /// duoprov disabled it when its subject left every mapped group; a later return re-enables
    /// it. An administrator disabled by someone else is never re-enabled.
    pub disabled_by_us: bool,
}
