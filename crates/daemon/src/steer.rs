//! What the console asks of the provisioner loops, and what the loops leave for the console: a
//! full sync requested now (the loop is woken and runs it when it leads and no run is in flight),
//! retries of single objects queued for the loop (each run alone under the provisioner's run
//! lock, never beside another run), the last refusal with its removal list and digest (checked
//! when an approval comes in), and when the next full sync is due. Kept in the daemon's memory;
//! what must outlive a restart — the approved digest, the log of the console's actions with who
//! asked and when, what triggered each run — is in the registry
//! ([`duoprov_registry::ConsoleActions`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use duoprov_sync::ObjectTarget;
use serde::Serialize;
use tokio::sync::Notify;

/// Retries queued per provisioner at most (more are refused until the loop catches up).
pub const RETRIES_QUEUED: usize = 20;

/// The last run the safety rules refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusalView {
    pub at_ms: i64,
    /// `full` or `incremental`.
    pub kind: String,
    pub reasons: Vec<String>,
    /// Every removal and deletion of the plan, one line each, by name.
    pub removals: Vec<String>,
    pub digest: String,
}

/// A retry of one object asked for from the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryRequest {
    pub target: ObjectTarget,
    pub who: String,
}

#[derive(Debug, Default)]
struct Steer {
    /// Who asked for a full sync now, not yet run.
    full_requested: Option<String>,
    /// Retries of single objects, oldest first.
    retries: VecDeque<RetryRequest>,
    refusal: Option<RefusalView>,
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

impl Steering {
    fn with<T>(&self, provisioner: &str, f: impl FnOnce(&mut Steer) -> T) -> T {
        let mut map = self.by_provisioner.lock().unwrap_or_else(PoisonError::into_inner);
        f(map.entry(provisioner.to_owned()).or_default())
    }

    /// What wakes `provisioner`'s loop from its pause.
    pub fn waker(&self, provisioner: &str) -> Arc<Notify> {
        self.with(provisioner, |s| s.waker.clone())
    }

    /// Asks for a full sync of `provisioner` now, on behalf of `who`, and wakes its loop. A
    /// request while one is pending is the same request.
    pub fn request_full(&self, provisioner: &str, who: &str) {
        let waker = self.with(provisioner, |s| {
            s.full_requested.get_or_insert_with(|| who.to_owned());
            s.waker.clone()
        });
        waker.notify_one();
    }

    /// Whether a full sync was requested and has not run yet.
    pub fn full_requested(&self, provisioner: &str) -> Option<String> {
        self.with(provisioner, |s| s.full_requested.clone())
    }

    /// The requested full sync has run (or was refused).
    pub fn full_ran(&self, provisioner: &str) {
        self.with(provisioner, |s| s.full_requested = None);
    }

    /// Queues a retry of one object of `provisioner` and wakes its loop; false (nothing queued)
    /// when [`RETRIES_QUEUED`] are already waiting. The same object queued twice is one retry.
    pub fn request_retry(&self, provisioner: &str, request: RetryRequest) -> bool {
        let queued = self.with(provisioner, |s| {
            if s.retries.iter().any(|r| r.target == request.target) {
                return Some(s.waker.clone());
            }
            if s.retries.len() >= RETRIES_QUEUED {
                return None;
            }
            s.retries.push_back(request);
            Some(s.waker.clone())
        });
        match queued {
            Some(waker) => {
                waker.notify_one();
                true
            }
            None => false,
        }
    }

    /// The oldest queued retry, taken.
    pub fn next_retry(&self, provisioner: &str) -> Option<RetryRequest> {
        self.with(provisioner, |s| s.retries.pop_front())
    }

    /// Puts a retry back at the head of the queue (its run could not take the run lock).
    pub fn requeue_retry(&self, provisioner: &str, request: RetryRequest) {
        self.with(provisioner, |s| s.retries.push_front(request));
    }

    /// The retries waiting, oldest first.
    pub fn queued_retries(&self, provisioner: &str) -> Vec<RetryRequest> {
        self.with(provisioner, |s| s.retries.iter().cloned().collect())
    }

    /// Checks `digest` against the last refused plan of `provisioner` (what `duoprov sync P
    /// --approve DIGEST` is checked against); the digest to save when it is that plan's.
    pub fn check_approval(&self, provisioner: &str, digest: &str) -> Result<String, ApproveError> {
        self.with(provisioner, |s| match &s.refusal {
            None => Err(ApproveError::NothingRefused),
            Some(r) if r.digest != digest.trim() => Err(ApproveError::OtherDigest { last: r.digest.clone() }),
            Some(r) => Ok(r.digest.clone()),
        })
    }

    /// A run was refused by the safety rules.
    pub fn refused(&self, provisioner: &str, refusal: RefusalView) {
        self.with(provisioner, |s| s.refusal = Some(refusal));
    }

    /// A run finished: the refusal before it no longer stands.
    pub fn finished(&self, provisioner: &str) {
        self.with(provisioner, |s| s.refusal = None);
    }

    pub fn last_refusal(&self, provisioner: &str) -> Option<RefusalView> {
        self.with(provisioner, |s| s.refusal.clone())
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

    fn refusal(digest: &str) -> RefusalView {
        RefusalView { at_ms: 1, kind: "full".into(), reasons: vec!["too many removals".into()], removals: vec!["remove bob from g".into()], digest: digest.into() }
    }

    #[test]
    fn only_the_last_refused_digest_is_accepted_for_approval() {
        let s = Steering::default();
        assert_eq!(s.check_approval("p", "abc"), Err(ApproveError::NothingRefused));
        s.refused("p", refusal("abc"));
        assert_eq!(s.check_approval("p", "abd"), Err(ApproveError::OtherDigest { last: "abc".into() }));
        assert_eq!(s.check_approval("p", " abc ").as_deref(), Ok("abc"));
        s.finished("p");
        assert_eq!(s.check_approval("p", "abc"), Err(ApproveError::NothingRefused), "a run that finished lifts the refusal");
    }

    #[tokio::test]
    async fn a_full_sync_request_wakes_a_waiting_loop() {
        let s = Arc::new(Steering::default());
        let waker = s.waker("p");
        let waiting = tokio::spawn(async move { waker.notified().await });
        s.request_full("p", "loopback");
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.expect("the loop is woken").unwrap();
        s.request_full("p", "someone else");
        assert_eq!(s.full_requested("p").as_deref(), Some("loopback"), "a pending request stays the first asker's");
        s.full_ran("p");
        assert_eq!(s.full_requested("p"), None);
    }

    #[tokio::test]
    async fn a_retry_is_queued_once_wakes_the_loop_and_the_queue_is_bounded() {
        let s = Arc::new(Steering::default());
        let waker = s.waker("p");
        let waiting = tokio::spawn(async move { waker.notified().await });
        let retry = |n: usize| RetryRequest { target: ObjectTarget::Subject { reference: format!("local:u{n}") }, who: "loopback".into() };
        assert!(s.request_retry("p", retry(0)));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.expect("the loop is woken").unwrap();
        assert!(s.request_retry("p", retry(0)));
        assert_eq!(s.queued_retries("p"), vec![retry(0)], "the same object queued twice is one retry");
        for n in 1..RETRIES_QUEUED {
            assert!(s.request_retry("p", retry(n)));
        }
        assert!(!s.request_retry("p", retry(RETRIES_QUEUED)), "a full queue refuses more");
        assert_eq!(s.next_retry("p"), Some(retry(0)), "oldest first");
        s.requeue_retry("p", retry(0));
        assert_eq!(s.next_retry("p"), Some(retry(0)), "a requeued retry goes first again");
    }
}
