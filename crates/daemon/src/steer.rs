//! What the console and the provisioner loops share in the daemon's memory: the waker of each
//! loop (a request from this daemon's console wakes its loop at once; one made on another
//! daemon's console is found at the leader's next poll) and when the next full sync is due. What
//! must outlive a restart and be seen by every daemon on the registry is the registry's: the
//! requests (a full sync now, retries of single objects) with who asked and when, consumed by one
//! run each, and the last refused plan ([`duoprov_registry::ConsoleRequests`]); the approved
//! digest, the log of the console's actions and what triggered each run
//! ([`duoprov_registry::ConsoleActions`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use duoprov_registry::RefusedPlan;
use tokio::sync::Notify;

/// Retries waiting per provisioner at most (more are refused until the loop catches up).
pub const RETRIES_QUEUED: usize = 20;

#[derive(Debug, Default)]
struct Steer {
    next_full_ms: Option<i64>,
    waker: Arc<Notify>,
}

/// Shared by the console and the loops.
#[derive(Debug, Default)]
pub struct Steering {
    by_provisioner: Mutex<BTreeMap<String, Steer>>,
}

/// Why an approval was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproveError {
    /// No refused plan is known for the provisioner.
    NothingRefused,
    /// The digest is not the last refused plan's (it changed, or was mistyped).
    OtherDigest { last: String },
}

/// Checks `digest` against the last refused plan (what `duoprov sync P --approve DIGEST` is
/// checked against); the digest to save when it is that plan's.
pub fn check_approval(refused: Option<&RefusedPlan>, digest: &str) -> Result<String, ApproveError> {
    match refused {
        None => Err(ApproveError::NothingRefused),
        Some(r) if r.digest != digest.trim() => Err(ApproveError::OtherDigest { last: r.digest.clone() }),
        Some(r) => Ok(r.digest.clone()),
    }
}

impl Steering {
    fn with<T>(&self, provisioner: &str, f: impl FnOnce(&mut Steer) -> T) -> T {
        let mut map = self.by_provisioner.lock().unwrap_or_else(PoisonError::into_inner);
        f(map.entry(provisioner.to_owned()).or_default())
    }

    /// What wakes `provisioner`'s loop from its pause.
    pub fn waker(&self, provisioner: &str) -> Arc<Notify> {
        self.with(provisioner, |s| s.waker.clone())
    }

    /// Wakes `provisioner`'s loop: a request for it waits in the registry.
    pub fn wake(&self, provisioner: &str) {
        self.waker(provisioner).notify_one();
    }

    pub fn set_next_full(&self, provisioner: &str, at_ms: Option<i64>) {
        self.with(provisioner, |s| s.next_full_ms = at_ms);
    }

    pub fn next_full(&self, provisioner: &str) -> Option<i64> {
        self.with(provisioner, |s| s.next_full_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(digest: &str) -> RefusedPlan {
        RefusedPlan {
            provisioner: "p".into(),
            at_ms: 1,
            kind: "full".into(),
            reasons: vec!["too many removals".into()],
            removals: vec!["remove bob from g".into()],
            removal_count: 1,
            digest: digest.into(),
        }
    }

    #[test]
    fn only_the_last_refused_digest_is_accepted_for_approval() {
        assert_eq!(check_approval(None, "abc"), Err(ApproveError::NothingRefused));
        let r = refused("abc");
        assert_eq!(check_approval(Some(&r), "abd"), Err(ApproveError::OtherDigest { last: "abc".into() }));
        assert_eq!(check_approval(Some(&r), " abc ").as_deref(), Ok("abc"));
    }

    #[tokio::test]
    async fn a_request_wakes_a_waiting_loop() {
        let s = Arc::new(Steering::default());
        let waker = s.waker("p");
        let waiting = tokio::spawn(async move { waker.notified().await });
        s.wake("p");
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.expect("the loop is woken").unwrap();
    }
}
