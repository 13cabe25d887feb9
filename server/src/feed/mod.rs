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
//!   every topic it reads), so unicast to 20,000 users does not wake 20,000 tasks per event;
//! - a subscriber may be *paced* (`--write-interval-ms`): it reads at most once per interval, so an event
//!   after a quiet spell leaves at once while a fast stream leaves in batches of one write each; and
//!   transports can frame a batch while it is still borrowed from the log ([`Subscription::next_batch_with`]);
//! - [`Feed::close`] (shutdown) ends every subscription once it has returned what it had to read.
//!
//! # Several nodes
//! [`Feed`] is the interface the transports use: `publish`, `read`, `subscribe`. Embedded (the default),
//! the in-memory log is the whole feed and assigns ids itself. With a [Redis backplane](redis_bus), Redis
//! assigns the ids and every node appends the shared stream to its own log, so the transports read the
//! same kind of log either way and do not know which feed runs.

mod log;
mod redis_bus;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use pushbench_common::Topic;
use pushbench_common::wire::{Gap, PublishAck};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use log::{ReplayLimits, ReplayLog, ReplayStats, StoredEvent};
pub use redis_bus::{BusStatus, RedisBus};

/// Why the feed could not take or serve an event.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The Redis backplane is unreachable or refused the command.
    #[error("event bus unavailable: {0}")]
    Bus(String),
}

/// Largest batch a single read returns, so one response or write stays bounded however far a client is
/// behind; it continues from the batch's `next` cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most events in one batch.
    pub max_events: usize,
    /// Most encoded bytes in one batch (a batch always holds at least one event).
    pub max_bytes: usize,
}

/// Events read after a cursor: shared handles (`Arc<StoredEvent>`, the default), or references into the
/// log while its lock is held (see [`Subscription::next_batch_with`]).
#[derive(Debug)]
pub struct Batch<E = Arc<StoredEvent>> {
    /// Set when events after the cursor were evicted before they were read.
    pub gap: Option<Gap>,
    /// Events after the cursor (or after the gap), in id order.
    pub events: Vec<E>,
    /// The cursor to continue from.
    pub next: u64,
}

impl<E> Default for Batch<E> {
    fn default() -> Self {
        Self {
            gap: None,
            events: Vec::new(),
            next: 0,
        }
    }
}

impl<E> Batch<E> {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.gap.is_none() && self.events.is_empty()
    }
}

impl Batch<&Arc<StoredEvent>> {
    /// The same batch with handles of its own, to keep after the log's lock is released.
    pub fn to_owned_events(&self) -> Batch {
        Batch {
            gap: self.gap,
            events: self.events.iter().map(|&e| e.clone()).collect(),
            next: self.next,
        }
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
    /// The shared stream, when several nodes share this feed.
    bus: Option<Arc<RedisBus>>,
    /// Set by [`Feed::close`]. A plain flag rather than a look at a cancellation token, because every
    /// subscriber's wake-up checks it, and a token's check takes a lock that all of them would share.
    closed: AtomicBool,
    /// Cancelled by [`Feed::close`]: cuts a paced subscriber's wait short.
    closing: CancellationToken,
}

impl Feed {
    /// An embedded feed with the given replay and batch limits, its ids starting from the clock (see
    /// [`ReplayLog::begin_at`]) so that they never repeat across restarts.
    pub fn new(replay: ReplayLimits, batch: BatchLimits) -> Self {
        Self::starting_after(log::clock_origin(), replay, batch)
    }

    /// An embedded feed whose first id is `origin + 1`.
    fn starting_after(origin: u64, replay: ReplayLimits, batch: BatchLimits) -> Self {
        let mut log = ReplayLog::new(replay);
        log.begin_at(origin);
        Self {
            inner: Arc::new(Inner {
                log: RwLock::new(log),
                batch,
                bus: None,
                closed: AtomicBool::new(false),
                closing: CancellationToken::new(),
            }),
        }
    }

    /// A feed shared through Redis at `url` under `key`: loads the newest events, then follows the stream
    /// until `shutdown`. Fails if Redis cannot be reached now.
    pub async fn with_redis(
        url: &str,
        key: &str,
        replay: ReplayLimits,
        batch: BatchLimits,
        shutdown: CancellationToken,
    ) -> Result<Self, FeedError> {
        let bus = Arc::new(RedisBus::connect(url, key, replay.max_events).await?);
        let (history, counter) = bus.history(replay.max_events).await?;
        let mut log = ReplayLog::new(replay);
        log.start_at(history.first().map_or(counter, |(id, ..)| id - 1));
        let feed = Self {
            inner: Arc::new(Inner {
                log: RwLock::new(log),
                batch,
                bus: Some(bus.clone()),
                closed: AtomicBool::new(false),
                closing: CancellationToken::new(),
            }),
        };
        feed.append_replicated(history);
        let last = feed.head();
        tokio::spawn(bus.follow(feed.clone(), last, shutdown));
        Ok(feed)
    }

    /// The backplane's connection state, when there is one.
    pub fn bus_status(&self) -> Option<&BusStatus> {
        self.inner.bus.as_deref().map(|bus| &*bus.status)
    }

    fn log_read(&self) -> std::sync::RwLockReadGuard<'_, ReplayLog> {
        // A panic while holding the lock cannot leave the log half-updated in a way readers could
        // misread (every mutation is completed before anything that could panic), so recover from poison.
        self.inner
            .log
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn log_write(&self) -> std::sync::RwLockWriteGuard<'_, ReplayLog> {
        self.inner
            .log
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes an event: embedded, appends it and wakes the topic's subscribers; with a backplane,
    /// stores it in Redis, from where every node (this one included) appends it.
    pub async fn publish(&self, topic: Topic, data: &str) -> Result<PublishAck, FeedError> {
        match &self.inner.bus {
            None => {
                let event = self.log_write().append(topic, data);
                Ok(PublishAck {
                    id: event.id,
                    ts: event.ts,
                })
            }
            Some(bus) => bus.publish(&topic, data, log::now_ns(), self.head()).await,
        }
    }

    /// Appends an event that the backplane assigned its id to.
    fn append_replicated(&self, events: Vec<(u64, Topic, u64, String)>) {
        if events.is_empty() {
            return;
        }
        let mut log = self.log_write();
        for (id, topic, ts, data) in events {
            log.append_replicated(id, topic, ts, &data);
        }
    }

    /// Reads the events after `after` on `topics` (one batch at most).
    pub fn read(&self, topics: &[Topic], after: u64) -> Batch {
        self.log_read()
            .read(topics, after, self.inner.batch)
            .to_owned_events()
    }

    /// The id of the newest event: the cursor of a subscriber that wants only what comes next.
    pub fn head(&self) -> u64 {
        self.log_read().head()
    }

    /// Occupancy of the replay buffer, for metrics.
    pub fn replay_stats(&self) -> ReplayStats {
        self.log_read().stats()
    }

    /// Ends every live subscription: each returns what it has not yet read, then `None` (see
    /// [`Subscription::next_batch`]). Subscriptions started later end at once. Shutdown calls this.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.closing.cancel();
        // Under the write lock, so that no subscription registers between the flag and the wake-ups
        // unseen: one registered later sees the flag on its first wait.
        self.log_write().wake_all();
    }

    fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Starts a live subscription on `topics` from cursor `after`, or from the current head when `None`.
    pub fn subscribe(&self, topics: Arc<[Topic]>, after: Option<u64>) -> Subscription {
        let notify = Arc::new(Notify::new());
        let (keys, head, reset) = {
            let mut log = self.log_write();
            let (keys, head) = log.register(&topics, &notify);
            (keys, head, after.and_then(|a| log.reset_if_never_issued(a)))
        };
        Subscription {
            feed: self.clone(),
            topics,
            keys,
            notify,
            // A cursor never issued starts at the head, so the greeting names a real cursor, and the
            // notice comes with the first read.
            cursor: if reset.is_some() {
                head
            } else {
                after.unwrap_or(head)
            },
            reset,
            paced_until: None,
            unread: false,
        }
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
    /// When pacing, no read before this instant (one interval after the last one that returned events).
    paced_until: Option<Instant>,
    /// Something may wait to be read without a wake-up to say so: the last read was cut at the batch
    /// limits, or a wake-up was taken but the pacing wait after it was cancelled.
    unread: bool,
    /// The notice for a starting cursor that was never issued, sent with the first read.
    reset: Option<Gap>,
}

impl Subscription {
    /// The cursor: the id of the last event this subscriber has been given (or need not receive).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Reads what is available now and advances the cursor past it.
    pub fn read_now(&mut self) -> Batch {
        let mut batch = self.feed.read(&self.topics, self.cursor);
        batch.gap = self.reset.take().or(batch.gap);
        self.cursor = batch.next;
        batch
    }

    /// Waits until there is something to deliver, then reads it and advances the cursor; `None` once the
    /// feed is [closed](Feed::close) and everything available has been returned.
    ///
    /// With a `pacing` interval, reads that return events are at least that far apart: an event after a
    /// quiet interval is returned at once, and those published within the interval after it wait for its
    /// end and come together in the next batch — one write instead of several, for at most `pacing` of
    /// latency, and only when events come faster than one per interval. Closing the feed cuts the wait short.
    ///
    /// Cancel-safe: the cursor only moves when a batch is returned, so dropping the future loses nothing.
    pub async fn next_batch(&mut self, pacing: Duration) -> Option<Batch> {
        self.next_batch_with(pacing, |batch| batch.to_owned_events())
            .await
    }

    /// Like [`Subscription::next_batch`], but hands the batch to `take` while the log is locked for
    /// reading, its events borrowed: a transport that copies their bytes into its write buffer touches no
    /// reference count (in a broadcast, every subscriber would contend on the same ones). `take` runs
    /// once, for a non-empty batch, and must not block.
    pub async fn next_batch_with<R>(
        &mut self,
        pacing: Duration,
        mut take: impl FnMut(Batch<&Arc<StoredEvent>>) -> R,
    ) -> Option<R> {
        loop {
            let closed = self.feed.is_closed();
            if closed || !self.paced() {
                if let Some(taken) = self.take_now(&mut take) {
                    // No clock read when not pacing: this runs once per delivery.
                    self.paced_until = (!pacing.is_zero()).then(|| Instant::now() + pacing);
                    return Some(taken);
                }
                if closed {
                    return None;
                }
            }
            // `Notify` keeps a permit when woken with nobody waiting, so a publish that lands between the
            // read and the wait below is not missed. A paced subscriber waits here too rather than on its
            // timer, so that one with nothing more to send holds no timer.
            if !self.unread {
                self.notify.notified().await;
                self.unread = true;
            }
            if self.paced() {
                let (until, closing) = (self.paced_until, &self.feed.inner.closing);
                // Boxed: inline, the timer and the cancellation future would enlarge every idle
                // subscriber's future for a wait that lasts only while it has something to send.
                Box::pin(async {
                    tokio::select! {
                        () = tokio::time::sleep_until(until.expect("paced")) => {}
                        () = closing.cancelled() => {}
                    }
                })
                .await;
            }
        }
    }

    /// Whether the pacing interval after the last read is still running.
    fn paced(&self) -> bool {
        self.paced_until.is_some_and(|until| until > Instant::now())
    }

    /// Reads what is available now; when there is something, advances the cursor past it and returns
    /// what `take` made of it.
    fn take_now<R>(&mut self, take: &mut impl FnMut(Batch<&Arc<StoredEvent>>) -> R) -> Option<R> {
        let log = self.feed.log_read();
        let mut batch = log.read(&self.topics, self.cursor, self.feed.inner.batch);
        batch.gap = self.reset.take().or(batch.gap);
        self.cursor = batch.next;
        // A batch cut short ends before the head; the wake-ups for the rest were spent on this read.
        self.unread = batch.next < log.head();
        (!batch.is_empty()).then(|| take(batch))
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

    /// A feed whose ids start at 1, so tests can name them.
    fn feed(max_events: usize) -> Feed {
        Feed::starting_after(
            0,
            ReplayLimits {
                max_events,
                max_bytes: usize::MAX,
            },
            BatchLimits {
                max_events: 1000,
                max_bytes: usize::MAX,
            },
        )
    }

    fn topics(names: &[&str]) -> Arc<[Topic]> {
        names.iter().map(|n| Topic::parse(n).unwrap()).collect()
    }

    #[tokio::test]
    async fn subscription_without_cursor_gets_only_later_events() {
        let feed = feed(100);
        let t = Topic::parse("a").unwrap();
        feed.publish(t.clone(), "before").await.unwrap();
        let mut sub = feed.subscribe(topics(&["a"]), None);
        assert_eq!(sub.cursor(), 1);
        let ev = feed.publish(t, "after").await.unwrap();
        let batch = sub.next_batch(Duration::ZERO).await.unwrap();
        assert_eq!(
            batch.events.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![ev.id]
        );
        assert_eq!(sub.cursor(), ev.id);
    }

    #[tokio::test]
    async fn publish_wakes_a_waiting_subscriber() {
        let feed = feed(100);
        let mut sub = feed.subscribe(topics(&["a", "b"]), None);
        let waiter =
            tokio::spawn(async move { sub.next_batch(Duration::ZERO).await.unwrap().events.len() });
        tokio::task::yield_now().await;
        feed.publish(Topic::parse("c").unwrap(), "not mine")
            .await
            .unwrap();
        feed.publish(Topic::parse("b").unwrap(), "mine")
            .await
            .unwrap();
        assert_eq!(waiter.await.unwrap(), 1);
    }

    /// Publishes `data` to topic `a`.
    async fn publish(feed: &Feed, data: &str) -> u64 {
        feed.publish(Topic::parse("a").unwrap(), data)
            .await
            .unwrap()
            .id
    }

    fn ids(batch: &Batch) -> Vec<u64> {
        batch.events.iter().map(|e| e.id).collect()
    }

    // On paused time a wait takes no real time and the clock moves only when every task waits: the
    // instants below are exact.
    #[tokio::test(start_paused = true)]
    async fn pacing_sends_a_lone_event_at_once_and_what_follows_within_the_interval_in_one_batch() {
        let pacing = Duration::from_millis(50);
        let feed = feed(100);
        let mut sub = feed.subscribe(topics(&["a"]), None);
        let start = Instant::now();
        publish(&feed, "1").await;
        assert_eq!(ids(&sub.next_batch(pacing).await.unwrap()), vec![1]);
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the first event is not held"
        );
        publish(&feed, "2").await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        publish(&feed, "3").await;
        assert_eq!(ids(&sub.next_batch(pacing).await.unwrap()), vec![2, 3]);
        assert_eq!(start.elapsed(), pacing, "held to the end of the interval");
        // Quiet for longer than the interval: the next event goes at once again, and a subscriber that
        // was waiting when it came is woken for it.
        tokio::time::sleep(pacing * 2).await;
        let waiter = tokio::spawn(async move {
            let batch = sub.next_batch(pacing).await.unwrap();
            (ids(&batch), Instant::now())
        });
        tokio::task::yield_now().await;
        let published = Instant::now();
        publish(&feed, "4").await;
        assert_eq!(waiter.await.unwrap(), (vec![4], published));
    }

    #[tokio::test(start_paused = true)]
    async fn pacing_reads_the_rest_of_a_batch_cut_at_the_limits_without_another_publish() {
        let pacing = Duration::from_millis(50);
        let feed = Feed::starting_after(
            0,
            ReplayLimits {
                max_events: 100,
                max_bytes: usize::MAX,
            },
            BatchLimits {
                max_events: 2,
                max_bytes: usize::MAX,
            },
        );
        let mut sub = feed.subscribe(topics(&["a"]), None);
        for _ in 0..5 {
            publish(&feed, "x").await;
        }
        let start = Instant::now();
        let mut batches = Vec::new();
        for _ in 0..3 {
            // An hour of paused time passes at once if the subscriber waits for a wake-up that never comes.
            let batch = tokio::time::timeout(Duration::from_secs(3600), sub.next_batch(pacing))
                .await
                .expect("the rest of the log is read without a new publish");
            batches.push((ids(&batch.unwrap()), start.elapsed()));
        }
        assert_eq!(
            batches,
            [
                (vec![1, 2], Duration::ZERO),
                (vec![3, 4], pacing),
                (vec![5], pacing * 2)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_pacing_every_wake_reads_at_once() {
        let feed = feed(100);
        let mut sub = feed.subscribe(topics(&["a"]), None);
        let start = Instant::now();
        for id in 1..=3 {
            publish(&feed, "x").await;
            assert_eq!(
                ids(&sub.next_batch(Duration::ZERO).await.unwrap()),
                vec![id]
            );
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn closing_the_feed_cuts_pacing_short_and_ends_subscriptions() {
        let hour = Duration::from_secs(3600);
        let feed = feed(100);
        let mut sub = feed.subscribe(topics(&["a"]), None);
        publish(&feed, "1").await;
        assert_eq!(ids(&sub.next_batch(hour).await.unwrap()), vec![1]);
        publish(&feed, "2").await;
        let waiter = tokio::spawn(async move {
            let batch = sub.next_batch(hour).await;
            (batch.map(|b| ids(&b)), sub.next_batch(hour).await.is_none())
        });
        tokio::task::yield_now().await; // paced for an hour now
        feed.close();
        let ended = tokio::time::timeout(Duration::from_secs(10), waiter).await;
        assert_eq!(
            ended.expect("the wait was cut short").unwrap(),
            (Some(vec![2]), true),
            "the pending event first, then the end"
        );
        let mut late = feed.subscribe(topics(&["a"]), None);
        assert!(late.next_batch(Duration::ZERO).await.is_none());
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
