//! What the console asks of the provisioner loops, and what the loops leave for the console: a
//! full sync requested now (the loop is woken and runs it when it leads and no run is in flight),
//! a refused plan approved by its digest (applied by that full sync, once), the last refusal with
//! its removal list and digest, when the next full sync is due, and the log of the console's
//! actions with who asked and when. Kept in the daemon's memory: a restart forgets requests,
//! approvals and the action log (the runs themselves are in the registry).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::sync::Notify;

/// How many console actions the daemon remembers.
pub const ACTIONS_KEPT: usize = 200;

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

/// One action taken from the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRecord {
    pub at_ms: i64,
    pub provisioner: String,
    /// `loopback` (no authentication on a loopback address) or `console token`.
    pub who: String,
    /// What was asked, in words.
    pub what: String,
}

#[derive(Debug, Default)]
struct Steer {
    /// Who asked for a full sync now, not yet run.
    full_requested: Option<String>,
    /// The digest approved for the next full sync.
    approved: Option<String>,
    refusal: Option<RefusalView>,
    next_full_ms: Option<i64>,
    waker: Arc<Notify>,
}

/// Shared by the console and the loops.
#[derive(Debug, Default)]
pub struct Steering {
    by_provisioner: Mutex<BTreeMap<String, Steer>>,
    actions: Mutex<VecDeque<ActionRecord>>,
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

    fn log(&self, record: ActionRecord) {
        tracing::info!(provisioner = %record.provisioner, who = %record.who, "Console: {}.", record.what);
        let mut actions = self.actions.lock().unwrap_or_else(PoisonError::into_inner);
        if actions.len() >= ACTIONS_KEPT {
            actions.pop_front();
        }
        actions.push_back(record);
    }

    /// What wakes `provisioner`'s loop from its pause.
    pub fn waker(&self, provisioner: &str) -> Arc<Notify> {
        self.with(provisioner, |s| s.waker.clone())
    }

    /// Asks for a full sync of `provisioner` now, on behalf of `who`, and wakes its loop. A
    /// request while one is pending is the same request.
    pub fn request_full(&self, provisioner: &str, who: &str, now_ms: i64) {
        let waker = self.with(provisioner, |s| {
            s.full_requested.get_or_insert_with(|| who.to_owned());
            s.waker.clone()
        });
        self.log(ActionRecord { at_ms: now_ms, provisioner: provisioner.into(), who: who.into(), what: "full sync requested".into() });
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

    /// Approves the last refused plan of `provisioner` by its `digest` (what `duoprov sync P
    /// --approve DIGEST` does), on behalf of `who`, and requests the full sync that applies it.
    pub fn approve(&self, provisioner: &str, digest: &str, who: &str, now_ms: i64) -> Result<(), ApproveError> {
        self.with(provisioner, |s| match &s.refusal {
            None => Err(ApproveError::NothingRefused),
            Some(r) if r.digest != digest.trim() => Err(ApproveError::OtherDigest { last: r.digest.clone() }),
            Some(r) => {
                s.approved = Some(r.digest.clone());
                Ok(())
            }
        })?;
        self.log(ActionRecord { at_ms: now_ms, provisioner: provisioner.into(), who: who.into(), what: format!("approved the removals with digest {}", digest.trim()) });
        self.request_full(provisioner, who, now_ms);
        Ok(())
    }

    /// The approved digest for the full sync about to run, taken: an approval applies to one run.
    pub fn take_approval(&self, provisioner: &str) -> Option<String> {
        self.with(provisioner, |s| s.approved.take())
    }

    /// The approved digest not yet applied.
    pub fn approval(&self, provisioner: &str) -> Option<String> {
        self.with(provisioner, |s| s.approved.clone())
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

    /// The actions on `provisioner`, newest first.
    pub fn actions(&self, provisioner: &str) -> Vec<ActionRecord> {
        let actions = self.actions.lock().unwrap_or_else(PoisonError::into_inner);
        actions.iter().rev().filter(|a| a.provisioner == provisioner).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(digest: &str) -> RefusalView {
        RefusalView { at_ms: 1, kind: "full".into(), reasons: vec!["too many removals".into()], removals: vec!["remove bob from g".into()], digest: digest.into() }
    }

    #[test]
    fn only_the_last_refused_digest_is_approved_and_for_one_run() {
        let s = Steering::default();
        assert_eq!(s.approve("p", "abc", "loopback", 5), Err(ApproveError::NothingRefused));
        s.refused("p", refusal("abc"));
        assert_eq!(s.approve("p", "abd", "loopback", 5), Err(ApproveError::OtherDigest { last: "abc".into() }));
        assert_eq!(s.full_requested("p"), None, "a refused approval requests nothing");
        s.approve("p", " abc ", "console token", 6).unwrap();
        assert_eq!(s.full_requested("p").as_deref(), Some("console token"));
        assert_eq!(s.take_approval("p").as_deref(), Some("abc"));
        assert_eq!(s.take_approval("p"), None, "an approval applies to one run");
        let actions = s.actions("p");
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[0].what, "full sync requested");
        assert_eq!(actions[1].what, "approved the removals with digest abc");
        assert!(actions.iter().all(|a| a.who == "console token"));
    }

    #[tokio::test]
    async fn a_full_sync_request_wakes_a_waiting_loop() {
        let s = Arc::new(Steering::default());
        let waker = s.waker("p");
        let waiting = tokio::spawn(async move { waker.notified().await });
        s.request_full("p", "loopback", 1);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.expect("the loop is woken").unwrap();
        s.request_full("p", "someone else", 2);
        assert_eq!(s.full_requested("p").as_deref(), Some("loopback"), "a pending request stays the first asker's");
        s.full_ran("p");
        assert_eq!(s.full_requested("p"), None);
    }
}
