//! Which Duo users a provisioner disabled (`user_delete_mode = "disable"`): the role trait over
//! the `sync_user_disabled` table. A subject recorded here has its Duo user re-enabled when it is
//! selected again; a Duo user disabled by anyone else is never recorded, so it stays disabled.

use async_trait::async_trait;
use duoprov_model::SubjectKey;

use crate::error::Result;

#[async_trait]
pub trait DisabledUserStore: Send + Sync {
    /// The subjects whose Duo users `provisioner` disabled, sorted.
    async fn disabled_users(&self, provisioner: &str) -> Result<Vec<SubjectKey>>;
    /// Records that `provisioner` disabled these subjects' Duo users (subject, Duo user id).
    async fn record_disabled_users(&self, provisioner: &str, users: &[(SubjectKey, String)]) -> Result<()>;
    /// Forgets those records (the user was re-enabled, or is active or gone anyway).
    async fn clear_disabled_users(&self, provisioner: &str, subjects: &[SubjectKey]) -> Result<()>;
}
