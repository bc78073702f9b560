//! Fencing: a run writes to Duo only while it still holds the runner lock it was started under.
//! The lock (a PostgreSQL session advisory lock, or a lock file beside a SQLite database) can be
//! lost while the process lives — the registry session ended, a server restarted, the lock file
//! was removed — and then another runner may already be writing. So the applier asks the fence
//! before every phase and before every batch or window of each of its concurrent streams (group
//! creates; user creates and membership windows), and stops the run (recorded as interrupted)
//! once the lock is gone: each stream sends nothing after the batch it had under way, which is
//! recorded and audited.

use std::sync::Arc;

use duoprov_registry::RunnerLock;

/// Whether a run may go on writing.
#[async_trait::async_trait]
pub trait Fence: Send + Sync {
    /// `false` once the lock the run was started under is no longer held.
    async fn held(&self) -> bool;
}

#[async_trait::async_trait]
impl Fence for tokio::sync::Mutex<RunnerLock> {
    async fn held(&self) -> bool {
        self.lock().await.alive().await
    }
}

/// A fence to pass in [`crate::SyncOptions`].
#[derive(Clone)]
pub struct FenceHandle(pub Arc<dyn Fence>);

impl FenceHandle {
    /// Fences a run with the runner lock it holds.
    pub fn lock(lock: RunnerLock) -> Self {
        FenceHandle(Arc::new(tokio::sync::Mutex::new(lock)))
    }

    pub(crate) async fn held(&self) -> bool {
        self.0.held().await
    }
}

impl std::fmt::Debug for FenceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FenceHandle")
    }
}
