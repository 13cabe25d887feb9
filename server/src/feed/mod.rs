//! The event feed: ids, the replay buffer, cursors and fan-out. It knows nothing about HTTP.
//!
//! # How delivery works
//! Every event is appended once to a bounded [replay log](ReplayLog) and encoded once to its wire JSON,
//! which every subscriber shares (transports frame it, they never re-serialize it). A subscriber has no
//! queue of its own: it holds a cursor (the id of the last event it has seen) and, when woken, reads
//! everything after its cursor on its topics straight from the log. So:
//!
//! - *resume* is the same operation as live delivery: read after the cursor;
//! - a *slow consumer* costs no memory: it simply reads the log at its own pace. If it falls so far
//!   behind that events it has not read are evicted, its next read carries an explicit [`Gap`] and
//!   it continues from the oldest event still held (counted as a slow-consumer gap by the transport);
//! - a publish to a topic wakes only that topic's subscribers (each holds one [`Notify`] registered in
//!   every topic it reads), so unicast to 20,000 users does not wake 20,000 tasks per event.
//!
//! # Several nodes
//! [`Feed`] is the interface the transports use: `publish`, `read`, `subscribe`. The in-memory log is the
//! whole feed today; a multi-node backplane (Redis) will assign ids centrally and append the replicated
//! events to each node's log, leaving the transports unchanged.

mod log;

use std::sync::{Arc, RwLock};

use pushbench_common::Topic;
use pushbench_common::wire::Gap;
use tokio::sync::Notify;

pub use log::{ReplayLimits, ReplayLog, ReplayStats, StoredEvent};

/// Largest batch a single read returns, so one response or write stays bounded however far a client is
/// behind; it continues from the batch's `next` cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most events in one batch.
    pub max_events: usize,
    /// Most encoded bytes in one batch (a batch always holds at least one event).
    pub max_bytes: usize,
}

/// Events read after a cursor.
#[derive(Debug, Default)]
pub struct Batch {
    /// Set when events after the cursor were evicted before they were read.
    pub gap: Option<Gap>,
    /// Events after the cursor (or after the gap), in id order.
    pub events: Vec<Arc<StoredEvent>>,
    /// The cursor to continue from.
    pub next: u64,
}

impl Batch {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.gap.is_none() && self.events.is_empty()
    }
}

/// Shared handle to the feed. Cloning is cheap.
#[derive(Clone)]
pub struct Feed {
    inner: Arc<Inner>,
}

struct Inner {
    /// Reads (every subscriber's wake-up) vastly outnumber writes (publishes, subscribe, unsubscribe),
    /// and no critical section awaits, so a std read-write lock is right.
    log: RwLock<ReplayLog>,
    batch: BatchLimits,
}

impl Feed {
    /// A feed with the given replay and batch limits.
    pub fn new(replay: ReplayLimits, batch: BatchLimits) -> Self {
        Self { inner: Arc::new(Inner { log: RwLock::new(ReplayLog::new(replay)), batch }) }
    }

    fn log_read(&self) -> std::sync::RwLockReadGuard<'_, ReplayLog> {
        // A panic while holding the lock cannot leave the log half-updated in a way readers could
        // misread (every mutation is completed before anything that could panic), so recover from poison.
        self.inner.log.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn log_write(&self) -> std::sync::RwLockWriteGuard<'_, ReplayLog> {
        self.inner.log.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends an event and wakes the topic's subscribers. Returns the stored event (id, timestamp).
    pub fn publish(&self, topic: Topic, data: &str) -> Arc<StoredEvent> {
        self.log_write().append(topic, data)
    }

    /// Reads the events after `after` on `topics` (one batch at most).
    pub fn read(&self, topics: &[Topic], after: u64) -> Batch {
        self.log_read().read(topics, after, self.inner.batch)
    }

    /// The id of the newest event: the cursor of a subscriber that wants only what comes next.
    pub fn head(&self) -> u64 {
        self.log_read().head()
    }

    /// Occupancy of the replay buffer, for metrics.
    pub fn replay_stats(&self) -> ReplayStats {
        self.log_read().stats()
    }

    /// Starts a live subscription on `topics` from cursor `after`, or from the current head when `None`.
    pub fn subscribe(&self, topics: Arc<[Topic]>, after: Option<u64>) -> Subscription {
        let notify = Arc::new(Notify::new());
        let (keys, head) = self.log_write().register(&topics, &notify);
        Subscription { feed: self.clone(), topics, keys, notify, cursor: after.unwrap_or(head) }
    }
}

/// A live subscription: a cursor plus a wake-up registered in each of its topics. Dropping it unregisters.
pub struct Subscription {
    feed: Feed,
    topics: Arc<[Topic]>,
    /// Where this subscription's [`Notify`] sits in each topic's waiter list, in `topics` order.
    keys: Vec<usize>,
    notify: Arc<Notify>,
    cursor: u64,
}

impl Subscription {
    /// The cursor: the id of the last event this subscriber has been given (or need not receive).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Reads what is available now and advances the cursor past it.
    pub fn read_now(&mut self) -> Batch {
        let batch = self.feed.read(&self.topics, self.cursor);
        self.cursor = batch.next;
        batch
    }

    /// Waits until there is something to deliver, then reads it and advances the cursor.
    ///
    /// Cancel-safe: the cursor only moves when a batch is returned, so dropping the future loses nothing.
    pub async fn next_batch(&mut self) -> Batch {
        loop {
            // `Notify` keeps a permit when woken with nobody waiting, so a publish that lands between the
            // read and the wait below is not missed.
            let batch = self.read_now();
            if !batch.is_empty() {
                return batch;
            }
            self.notify.notified().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.feed.log_write().unregister(&self.topics, &self.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(max_events: usize) -> Feed {
        Feed::new(
            ReplayLimits { max_events, max_bytes: usize::MAX },
            BatchLimits { max_events: 1000, max_bytes: usize::MAX },
        )
    }

    fn topics(names: &[&str]) -> Arc<[Topic]> {
        names.iter().map(|n| Topic::parse(n).unwrap()).collect()
    }

    #[tokio::test]
    async fn subscription_without_cursor_gets_only_later_events() {
        let feed = feed(100);
        let t = Topic::parse("a").unwrap();
        feed.publish(t.clone(), "before");
        let mut sub = feed.subscribe(topics(&["a"]), None);
        assert_eq!(sub.cursor(), 1);
        let ev = feed.publish(t, "after");
        let batch = sub.next_batch().await;
        assert_eq!(batch.events.iter().map(|e| e.id).collect::<Vec<_>>(), vec![ev.id]);
        assert_eq!(sub.cursor(), ev.id);
    }

    #[tokio::test]
    async fn publish_wakes_a_waiting_subscriber() {
        let feed = feed(100);
        let mut sub = feed.subscribe(topics(&["a", "b"]), None);
        let waiter = tokio::spawn(async move { sub.next_batch().await.events.len() });
        tokio::task::yield_now().await;
        feed.publish(Topic::parse("c").unwrap(), "not mine");
        feed.publish(Topic::parse("b").unwrap(), "mine");
        assert_eq!(waiter.await.unwrap(), 1);
    }

    #[tokio::test]
    async fn dropping_a_subscription_unregisters_it() {
        let feed = feed(100);
        let sub = feed.subscribe(topics(&["a"]), None);
        assert_eq!(feed.replay_stats().topics, 1);
        drop(sub);
        assert_eq!(feed.replay_stats().topics, 0);
    }
}
