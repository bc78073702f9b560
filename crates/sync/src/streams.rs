//! What the applier's two concurrent streams share while groups are created (see
//! [`crate::apply`]): the feed of group creates already recorded in the registry (the only groups
//! a membership addition may be sent to), a halt flag (a stream that stops — its runner lock lost,
//! the registry failing — stops the other at its next batch), and each stream's share of the
//! calls in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::watch;

/// Group creates recorded so far, in the order they were recorded, and whether the group
/// stream's creates are over (every create answered and recorded, or the stream stopped).
#[derive(Debug, Default)]
struct Recorded {
    ids: Vec<(String, String)>,
    done: bool,
}

/// Published by the group stream after each batch is recorded; read by the membership windows.
#[derive(Clone)]
pub(crate) struct GroupFeed(Arc<watch::Sender<Recorded>>);

impl GroupFeed {
    pub fn new() -> Self {
        GroupFeed(Arc::new(watch::Sender::new(Recorded::default())))
    }

    /// Groups (uuid, Duo group id) whose creation is now recorded.
    pub fn publish(&self, ids: impl IntoIterator<Item = (String, String)>) {
        self.0.send_modify(|r| r.ids.extend(ids));
    }

    /// No more group will be published (also when the group stream stopped early).
    pub fn close(&self) {
        self.0.send_modify(|r| r.done = true);
    }

    /// A reader starting at the first group published.
    pub fn reader(&self) -> FeedReader {
        FeedReader { rx: self.0.subscribe(), seen: 0 }
    }
}

/// One reader of a [`GroupFeed`].
pub(crate) struct FeedReader {
    rx: watch::Receiver<Recorded>,
    seen: usize,
}

impl FeedReader {
    /// The groups published since the last call, and whether the feed is closed (nothing more
    /// will come once these are taken).
    pub fn take_new(&mut self) -> (Vec<(String, String)>, bool) {
        let r = self.rx.borrow_and_update();
        let new = r.ids[self.seen..].to_vec();
        self.seen = r.ids.len();
        (new, r.done)
    }

    /// Waits until something is published or the feed is closed.
    pub async fn changed(&mut self) {
        // An error means the sender is gone: nothing more will come, which `take_new` then
        // reports as closed only if `close` was called; the group stream always closes it.
        let _ = self.rx.changed().await;
    }
}

/// Set when one stream stops (runner lock lost, registry error): the other stops at its next
/// batch or window, after recording what it sent.
#[derive(Clone, Default)]
pub(crate) struct Halt(Arc<AtomicBool>);

impl Halt {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How many calls one stream keeps in flight; the other stream gives its share back when it ends.
#[derive(Clone)]
pub(crate) struct Share(Arc<AtomicUsize>);

impl Share {
    pub fn new(calls: usize) -> Self {
        Share(Arc::new(AtomicUsize::new(calls.max(1))))
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst).max(1)
    }

    pub fn set(&self, calls: usize) {
        self.0.store(calls.max(1), Ordering::SeqCst);
    }
}

/// Splits `budget` calls in flight between the bulk stream (users, memberships: Duo's bulk class)
/// and the group stream (group creates: the write class), as `(bulk, group)`. The two shares add
/// up to the budget (capped by the client's `max_concurrency`): the client takes its in-flight
/// slot before its class's token, so streams that together asked for more than the slots would
/// queue behind each other's token waits, and the write class would be slowed to the bulk
/// class's pace. The bulk stream, which decides an initial sync's length (50 calls a minute
/// against the write class's 300), gets three quarters; the group stream at least one call.
/// `None` when the budget is a single call: the streams then run one after the other.
pub(crate) fn split(budget: usize) -> Option<(usize, usize)> {
    (budget >= 2).then(|| {
        let group = (budget / 4).max(1);
        (budget - group, group)
    })
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn the_budget_is_split_without_exceeding_it_and_each_stream_gets_a_call() {
        assert_eq!(split(1), None);
        assert_eq!(split(2), Some((1, 1)));
        assert_eq!(split(4), Some((3, 1)));
        assert_eq!(split(8), Some((6, 2)));
        for b in 2..40 {
            let (bulk, group) = split(b).unwrap();
            assert!(bulk >= 1 && group >= 1 && bulk + group == b && bulk >= group, "{b}: {bulk} + {group}");
        }
    }
}
