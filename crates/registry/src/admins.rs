//! The administrators each provisioner manages in Duo (`duo_admin`, migration 0015): the
//! admin-role provisioning's ownership record. An administrator is recorded when duoprov creates
//! it or adopts it by e-mail match; only recorded administrators are ever changed, disabled or
//! deleted. [`AdminStore`] reads and writes the records.

use async_trait::async_trait;
use duoprov_model::ManagedAdmin;

use crate::error::Result;

#[async_trait]
pub trait AdminStore: Send + Sync {
    /// The administrators `provisioner` manages, ordered by e-mail address.
    async fn managed_admins(&self, provisioner: &str) -> Result<Vec<ManagedAdmin>>;

    /// Records (or replaces) administrators `provisioner` manages, and forgets those whose Duo
    /// ids are in `forget`, in one transaction.
    async fn record_admins(&self, provisioner: &str, record: &[ManagedAdmin], forget: &[String]) -> Result<()>;
}
