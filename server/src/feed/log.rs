//! The replay log: a bounded, id-ordered buffer of encoded events, indexed by topic.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pushbench_common::Topic;
use pushbench_common::wire::{Event, Gap};
use slab::Slab;
use tokio::sync::Notify;

use super::{Batch, BatchLimits};

/// The current Unix time in nanoseconds: the `ts` of events accepted now.
pub(super) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The current Unix time in microseconds: where a fresh feed starts its ids. Ids count up by one per event
/// from there, so a restarted server starts above every id it issued before (unless it averaged more than
/// a million events a second) and a cursor from an earlier run is told of its gap instead of silently
/// skipping the new events. Microseconds stay below 2^53, so JavaScript clients read ids exactly.
pub(super) fn clock_origin() -> u64 {
    now_ns() / 1_000
}

/// Bookkeeping cost of one held event beyond its encoding (the `Arc`, the struct, two deque slots),
/// counted against the byte budget so that tiny events cannot exceed it by orders of magnitude.
const EVENT_OVERHEAD_BYTES: usize = 128;

/// How much the replay buffer may hold; the oldest events are evicted past either bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayLimits {
    /// Most events held (at least 1).
    pub max_events: usize,
    /// Most bytes held, counting each event's encodings and bookkeeping.
    pub max_bytes: usize,
}

/// One event as the server holds it: encoded once, shared by every subscriber and transport.
#[derive(Debug)]
pub struct StoredEvent {
    /// Server-wide, strictly increasing id.
    pub id: u64,
    /// Topic it was published to.
    pub topic: Topic,
    /// Unix nanoseconds at which it was accepted.
    pub ts: u64,
    /// The wire JSON followed by `\n` (the NDJSON line); [`StoredEvent::json`] is a view without the newline.
    line: Bytes,
    /// The event framed for `text/event-stream`, built by the first SSE subscriber to send it. Cached here
    /// so that a broadcast to N SSE subscribers formats it once, not N times.
    pub sse_frame: OnceLock<Bytes>,
}

impl StoredEvent {
    fn new(id: u64, topic: Topic, ts: u64, data: &str) -> Self {
        let event = Event {
            id,
            topic: topic.as_str().into(),
            ts,
            data: data.into(),
        };
        let mut line =
            serde_json::to_vec(&event).expect("serializing strings and integers cannot fail");
        line.push(b'\n');
        Self {
            id,
            topic,
            ts,
            line: line.into(),
            sse_frame: OnceLock::new(),
        }
    }

    /// The event's wire JSON.
    pub fn json(&self) -> Bytes {
        self.line.slice(..self.line.len() - 1)
    }

    /// The wire JSON plus a trailing newline.
    pub fn json_line(&self) -> Bytes {
        self.line.clone()
    }

    /// The wire JSON plus a trailing newline, borrowed: copying it out of a shared event does not touch
    /// the reference count that every subscriber's copy would otherwise contend on.
    pub fn line(&self) -> &[u8] {
        &self.line
    }

    /// The wire JSON, borrowed (see [`StoredEvent::line`]).
    pub fn json_slice(&self) -> &[u8] {
        &self.line[..self.line.len() - 1]
    }

    /// Bytes this event is charged against the replay budget: its line, room for one framed copy
    /// (the SSE frame, built lazily) and the bookkeeping.
    fn charged_bytes(&self) -> usize {
        2 * self.line.len() + EVENT_OVERHEAD_BYTES
    }
}

/// Per-topic index into the log.
struct TopicLog {
    /// This topic's held events, a subsequence of the global log (so also in id order).
    events: VecDeque<Arc<StoredEvent>>,
    /// Highest id of this topic that has been evicted: a cursor below it has missed something.
    evicted_upto: u64,
    /// Wake-ups of the subscriptions reading this topic.
    waiters: Slab<Arc<Notify>>,
}

impl TopicLog {
    fn is_unused(&self) -> bool {
        self.events.is_empty() && self.waiters.is_empty()
    }
}

/// Position of the first event with an id above `cursor`. A live subscriber's cursor is almost always
/// among the newest few events, so look there before falling back to a binary search of the whole deque.
fn first_after(events: &VecDeque<Arc<StoredEvent>>, cursor: u64) -> usize {
    const SCAN_FROM_BACK: usize = 8;
    let mut start = events.len();
    for event in events.iter().rev().take(SCAN_FROM_BACK) {
        if event.id <= cursor {
            return start;
        }
        start -= 1;
    }
    events.partition_point(|e| e.id <= cursor)
}

/// Occupancy of the replay buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    /// Events held.
    pub events: usize,
    /// Bytes charged for them.
    pub bytes: usize,
    /// Topics with held events or subscribers.
    pub topics: usize,
    /// Id of the newest event (0 before the first).
    pub head: u64,
}

/// The bounded log and its topic index. Not synchronized: [`super::Feed`] wraps it in a lock.
pub struct ReplayLog {
    limits: ReplayLimits,
    /// Every held event, oldest first.
    events: VecDeque<Arc<StoredEvent>>,
    bytes: usize,
    topics: HashMap<Topic, TopicLog>,
    /// Id of the newest event; the next one gets `head + 1`.
    head: u64,
    /// Highest `evicted_upto` of topics dropped from the index (no held events, no subscribers). A topic
    /// not in the index may have had events up to here, so cursors below it get a gap notice: never a
    /// silent skip, at the price of a possibly spurious notice for a long-quiet topic.
    forgotten_upto: u64,
    /// Ids at or below it were never this log's (see [`ReplayLog::begin_at`]): cursor 0, "from the start",
    /// means from here, while any other cursor below it is from an earlier run and gets a gap notice.
    origin: u64,
    /// Whether this log assigns the ids itself (embedded) rather than following a backplane: then a
    /// cursor above its head was never issued, while a node following a backplane may merely lag.
    assigns_ids: bool,
}

impl ReplayLog {
    /// An empty log.
    pub fn new(limits: ReplayLimits) -> Self {
        Self {
            limits,
            events: VecDeque::new(),
            bytes: 0,
            topics: HashMap::new(),
            head: 0,
            forgotten_upto: 0,
            origin: 0,
            assigns_ids: true,
        }
    }

    /// A fresh log that assigns its own ids, from `origin + 1` on (the embedded feed passes
    /// [`clock_origin`]). A cursor below `origin` other than 0 comes from an earlier run: it gets a gap
    /// notice, since what that run published after it is gone.
    pub fn begin_at(&mut self, origin: u64) {
        self.head = origin;
        self.forgotten_upto = origin;
        self.origin = origin;
    }

    /// The id of the newest event.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Occupancy, for metrics.
    pub fn stats(&self) -> ReplayStats {
        ReplayStats {
            events: self.events.len(),
            bytes: self.bytes,
            topics: self.topics.len(),
            head: self.head,
        }
    }

    fn topic_entry(&mut self, topic: &Topic) -> &mut TopicLog {
        let forgotten_upto = self.forgotten_upto;
        self.topics
            .entry(topic.clone())
            .or_insert_with(|| TopicLog {
                events: VecDeque::new(),
                evicted_upto: forgotten_upto,
                waiters: Slab::new(),
            })
    }

    fn forget_if_unused(&mut self, topic: &Topic) {
        if let Some(log) = self.topics.get(topic)
            && log.is_unused()
        {
            self.forgotten_upto = self.forgotten_upto.max(log.evicted_upto);
            self.topics.remove(topic);
        }
    }

    /// Appends an event with the next id and the current time, evicts past the limits and wakes the
    /// topic's subscribers.
    pub fn append(&mut self, topic: Topic, data: &str) -> Arc<StoredEvent> {
        self.append_replicated(self.head + 1, topic, now_ns(), data)
    }

    /// A log whose ids start after `head` (a node joining a shared feed): every earlier id counts as
    /// evicted, so older cursors get a gap notice.
    pub fn start_at(&mut self, head: u64) {
        self.head = head;
        self.forgotten_upto = head;
        self.assigns_ids = false;
    }

    /// Appends an event whose id was assigned elsewhere (the backplane). An id that skips ahead means the
    /// events in between were lost to this log: they are marked evicted, so cursors among them get a gap.
    pub fn append_replicated(
        &mut self,
        id: u64,
        topic: Topic,
        ts: u64,
        data: &str,
    ) -> Arc<StoredEvent> {
        debug_assert!(id > self.head, "ids must increase");
        if id > self.head + 1 {
            let missing_upto = id - 1;
            self.forgotten_upto = self.forgotten_upto.max(missing_upto);
            self.topics
                .values_mut()
                .for_each(|t| t.evicted_upto = t.evicted_upto.max(missing_upto));
        }
        self.head = id;
        let event = Arc::new(StoredEvent::new(id, topic, ts, data));
        self.bytes += event.charged_bytes();
        self.events.push_back(event.clone());
        let entry = self.topic_entry(&event.topic);
        entry.events.push_back(event.clone());
        for (_, waiter) in &entry.waiters {
            waiter.notify_one();
        }
        self.evict();
        event
    }

    fn evict(&mut self) {
        while self.events.len() > self.limits.max_events.max(1)
            || (self.bytes > self.limits.max_bytes && self.events.len() > 1)
        {
            let Some(oldest) = self.events.pop_front() else {
                break;
            };
            self.bytes -= oldest.charged_bytes();
            if let Some(topic) = self.topics.get_mut(&oldest.topic) {
                let popped = topic.events.pop_front();
                debug_assert_eq!(
                    popped.map(|e| e.id),
                    Some(oldest.id),
                    "topic index out of step with the log"
                );
                topic.evicted_upto = oldest.id;
            }
            self.forget_if_unused(&oldest.topic);
        }
    }

    /// The notice for a cursor above every id issued so far — forged, or from a server whose clock ran
    /// ahead of this one's: a gap whose `resume` (the next id) is not above `after`, after which delivery
    /// goes on from the head. A node following a backplane may merely lag behind the cursor another node
    /// gave, so there only a cursor beyond the clock (where ids start) counts as never issued.
    pub fn reset_if_never_issued(&self, after: u64) -> Option<Gap> {
        let never_issued = after > self.head && (self.assigns_ids || after > clock_origin());
        never_issued.then_some(Gap {
            after,
            resume: self.head + 1,
        })
    }

    /// Events on `topics` with ids above `after`, at most one batch, with a gap notice when some of them
    /// were already evicted. Borrowed from the log: taking a reference count on each event would make every
    /// subscriber of a broadcast contend on the same counters.
    pub fn read(
        &self,
        topics: &[Topic],
        after: u64,
        limits: BatchLimits,
    ) -> Batch<&Arc<StoredEvent>> {
        let evicted_upto = topics
            .iter()
            .map(|t| {
                self.topics
                    .get(t)
                    .map_or(self.forgotten_upto, |log| log.evicted_upto)
            })
            .max()
            .unwrap_or(0);
        // Cursor 0 asks for everything from the start: this log's start, not an earlier run's.
        let from = if after == 0 { self.origin } else { after };
        if let Some(reset) = self.reset_if_never_issued(after) {
            return Batch {
                gap: Some(reset),
                events: Vec::new(),
                next: self.head,
            };
        }
        let (gap, cursor) = if evicted_upto > from {
            (
                Some(Gap {
                    after,
                    resume: evicted_upto + 1,
                }),
                evicted_upto,
            )
        } else {
            (None, from)
        };

        // Each topic's events after the cursor; the batch is the `max_events` lowest ids among them.
        // Every one of those lies within the first `max_events` of its own topic, so taking that many per
        // topic and sorting is exact. `more` records whether anything was left out.
        let mut events: Vec<&Arc<StoredEvent>> = Vec::new();
        let mut more = false;
        for log in topics.iter().filter_map(|t| self.topics.get(t)) {
            let start = first_after(&log.events, cursor);
            more |= log.events.len() - start > limits.max_events;
            events.extend(log.events.range(start..).take(limits.max_events));
        }
        if topics.len() > 1 {
            events.sort_unstable_by_key(|e| e.id);
        }
        let mut bytes = 0;
        let keep = events
            .iter()
            .take(limits.max_events)
            .position(|e| {
                bytes += e.line.len();
                bytes > limits.max_bytes
            })
            .map_or(events.len().min(limits.max_events), |i| i.max(1));
        more |= keep < events.len();
        events.truncate(keep);

        // When everything available was returned, no event on these topics exists up to the head, so the
        // cursor may jump there: a quiet subscriber's cursor stays fresh and will not fall off the buffer.
        let next = match events.last() {
            Some(last) if more => last.id,
            _ => cursor.max(self.head),
        };
        Batch { gap, events, next }
    }

    /// Registers `notify` in each topic; returns its keys (in `topics` order) and the current head.
    pub fn register(&mut self, topics: &[Topic], notify: &Arc<Notify>) -> (Vec<usize>, u64) {
        let keys = topics
            .iter()
            .map(|t| self.topic_entry(t).waiters.insert(notify.clone()))
            .collect();
        (keys, self.head)
    }

    /// Wakes every registered subscription, whatever its topics.
    pub fn wake_all(&self) {
        for topic in self.topics.values() {
            for (_, waiter) in &topic.waiters {
                waiter.notify_one();
            }
        }
    }

    /// Undoes [`ReplayLog::register`].
    pub fn unregister(&mut self, topics: &[Topic], keys: &[usize]) {
        for (topic, &key) in topics.iter().zip(keys) {
            if let Some(log) = self.topics.get_mut(topic) {
                log.waiters.try_remove(key);
            }
            self.forget_if_unused(topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    const BIG: BatchLimits = BatchLimits {
        max_events: usize::MAX,
        max_bytes: usize::MAX,
    };

    fn topic(name: &str) -> Topic {
        Topic::parse(name).unwrap()
    }

    fn ids(batch: &Batch<&Arc<StoredEvent>>) -> Vec<u64> {
        batch.events.iter().map(|e| e.id).collect()
    }

    fn log(max_events: usize) -> ReplayLog {
        ReplayLog::new(ReplayLimits {
            max_events,
            max_bytes: usize::MAX,
        })
    }

    #[test]
    fn encodes_the_wire_form_once() {
        let mut log = log(10);
        let ev = log.append(topic("room.42"), "hi \"there\"");
        let expected = format!(
            r#"{{"id":1,"topic":"room.42","ts":{},"data":"hi \"there\""}}"#,
            ev.ts
        );
        assert_eq!(ev.json(), expected.as_bytes());
        assert_eq!(ev.json_line(), format!("{expected}\n").as_bytes());
    }

    #[test]
    fn ids_increase_across_topics_and_reads_merge_in_order() {
        let mut log = log(100);
        for i in 0..30 {
            log.append(topic(["a", "b", "c"][i % 3]), "x");
        }
        let batch = log.read(&[topic("a"), topic("c")], 0, BIG);
        let expected: Vec<u64> = (1..=30).filter(|id| id % 3 != 2).collect();
        assert_eq!(ids(&batch), expected);
        assert_eq!(batch.next, 30);
        assert!(batch.gap.is_none());
        assert_eq!(
            ids(&log.read(&[topic("a"), topic("c")], 25, BIG)),
            vec![27, 28, 30]
        );
    }

    #[test]
    fn batch_limits_cut_and_next_continues() {
        let mut log = log(100);
        for _ in 0..10 {
            log.append(topic("a"), "x");
        }
        log.append(topic("b"), "x");
        let limits = BatchLimits {
            max_events: 4,
            max_bytes: usize::MAX,
        };
        let first = log.read(&[topic("a")], 0, limits);
        assert_eq!((ids(&first), first.next), (vec![1, 2, 3, 4], 4));
        let last = log.read(&[topic("a")], 8, limits);
        assert_eq!(
            (ids(&last), last.next),
            (vec![9, 10], 11),
            "cursor jumps to the head when drained"
        );
        let one_event_min = log.read(
            &[topic("a")],
            0,
            BatchLimits {
                max_events: 10,
                max_bytes: 1,
            },
        );
        assert_eq!(ids(&one_event_min), vec![1]);
    }

    #[test]
    fn first_after_agrees_with_a_binary_search_everywhere() {
        let mut log = log(100);
        for i in 0..50 {
            log.append(topic(if i % 7 == 0 { "b" } else { "a" }), "x");
        }
        let events = &log.topics[&topic("a")].events;
        for cursor in 0..=52 {
            assert_eq!(
                first_after(events, cursor),
                events.partition_point(|e| e.id <= cursor),
                "cursor {cursor}"
            );
        }
        assert_eq!(first_after(&VecDeque::new(), 3), 0);
    }

    #[test]
    fn cursor_older_than_the_buffer_gets_a_gap_notice() {
        let mut log = log(5);
        for _ in 0..12 {
            log.append(topic("a"), "x");
        }
        let batch = log.read(&[topic("a")], 3, BIG);
        assert_eq!(
            batch.gap,
            Some(Gap {
                after: 3,
                resume: 8
            })
        );
        assert_eq!(ids(&batch), vec![8, 9, 10, 11, 12]);
        assert!(
            log.read(&[topic("a")], 7, BIG).gap.is_none(),
            "cursor exactly at the eviction edge"
        );
    }

    #[test]
    fn eviction_of_other_topics_does_not_signal_a_gap() {
        let mut log = log(3);
        log.append(topic("quiet"), "x"); // id 1
        let notify = Arc::new(Notify::new());
        log.register(&[topic("quiet")], &notify);
        for _ in 0..2 {
            log.append(topic("busy"), "x"); // ids 2, 3
        }
        let batch = log.read(&[topic("quiet")], 1, BIG);
        assert!(batch.gap.is_none());
        log.append(topic("busy"), "x"); // evicts id 1 (quiet)
        assert_eq!(
            log.read(&[topic("quiet")], 0, BIG).gap,
            Some(Gap {
                after: 0,
                resume: 2
            })
        );
        assert!(log.read(&[topic("quiet")], 1, BIG).gap.is_none());
    }

    #[test]
    fn replicated_ids_that_skip_ahead_mark_the_hole_as_evicted() {
        let mut log = log(100);
        log.start_at(10);
        assert_eq!(
            log.read(&[topic("a")], 5, BIG).gap,
            Some(Gap {
                after: 5,
                resume: 11
            })
        );
        log.append_replicated(11, topic("a"), 1, "x");
        log.append_replicated(15, topic("a"), 2, "y");
        let batch = log.read(&[topic("a")], 11, BIG);
        assert_eq!(
            batch.gap,
            Some(Gap {
                after: 11,
                resume: 15
            })
        );
        assert_eq!(ids(&batch), vec![15]);
        assert!(log.read(&[topic("a")], 14, BIG).gap.is_none());
    }

    #[test]
    fn byte_budget_evicts_and_unused_topics_are_forgotten() {
        let mut log = ReplayLog::new(ReplayLimits {
            max_events: 1000,
            max_bytes: 1000,
        });
        for i in 0..100 {
            log.append(topic(&format!("user.{i}")), "payload");
        }
        let stats = log.stats();
        assert!(stats.bytes <= 1000 && stats.events >= 1, "{stats:?}");
        assert_eq!(
            stats.topics, stats.events,
            "topics with no held events and no subscribers are dropped"
        );
        let gap = log
            .read(&[topic("user.0")], 0, BIG)
            .gap
            .expect("a forgotten topic's old cursor gets a gap");
        assert!(gap.resume > 1);
    }

    #[test]
    fn append_wakes_only_that_topics_waiters() {
        let mut log = log(10);
        let (a, b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (keys, head) = log.register(&[topic("a")], &a);
        log.register(&[topic("b")], &b);
        assert_eq!(head, 0);
        log.append(topic("a"), "x");
        let woken = |n: &Notify| n.notified().now_or_never().is_some();
        assert!(woken(&a));
        assert!(!woken(&b));
        log.unregister(&[topic("a")], &keys);
        log.append(topic("a"), "x");
        assert!(!woken(&a));
    }
}

/// The feed's promise under random use: every read gives exactly the events after the cursor on the
/// subscriber's topics, in id order — or first says, with a gap notice, from where on that holds. Never a
/// silent skip, through evictions, batch limits and restarts.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::*;

    const TOPICS: [&str; 3] = ["a", "b", "c"];

    #[derive(Debug, Clone)]
    enum Op {
        Publish(usize),
        /// A subscriber on the topics of a non-empty bit mask, live (from the head) or resuming from an id
        /// published earlier (perhaps before a restart).
        Subscribe {
            topics: u8,
            resume: Option<Index>,
        },
        Read {
            subscriber: Index,
            max_events: usize,
        },
        /// A new log with ids from above the old ones, as a restarted server's clock origin is.
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..TOPICS.len()).prop_map(Op::Publish),
            1 => (1u8..8, proptest::option::of(any::<Index>()))
                .prop_map(|(topics, resume)| Op::Subscribe { topics, resume }),
            4 => (any::<Index>(), 1usize..6)
                .prop_map(|(subscriber, max_events)| Op::Read { subscriber, max_events }),
            1 => Just(Op::Restart),
        ]
    }

    fn fresh(max_events: usize, origin: u64) -> ReplayLog {
        let mut log = ReplayLog::new(ReplayLimits {
            max_events,
            max_bytes: usize::MAX,
        });
        log.begin_at(origin);
        log
    }

    proptest! {
        #[test]
        fn reads_deliver_what_follows_the_cursor_or_say_what_is_missing(
            max_held in 1usize..10,
            ops in proptest::collection::vec(op(), 1..150),
        ) {
            let mut log = fresh(max_held, 1_000);
            // Every event ever published, through restarts: (id, topic index).
            let mut published: Vec<(u64, usize)> = Vec::new();
            // Each subscriber's topics and cursor.
            let mut subscribers: Vec<(Vec<usize>, u64)> = Vec::new();
            for op in ops {
                match op {
                    Op::Publish(t) => {
                        let event = log.append(Topic::parse(TOPICS[t]).unwrap(), "x");
                        published.push((event.id, t));
                    }
                    Op::Subscribe { topics, resume } => {
                        let mine = (0..TOPICS.len()).filter(|i| topics & (1 << i) != 0).collect();
                        let cursor = match resume {
                            Some(i) if !published.is_empty() => published[i.index(published.len())].0,
                            _ => log.head(),
                        };
                        subscribers.push((mine, cursor));
                    }
                    Op::Read { subscriber, max_events } => {
                        if subscribers.is_empty() {
                            continue;
                        }
                        let i = subscriber.index(subscribers.len());
                        let (mine, cursor) = subscribers[i].clone();
                        let names: Vec<Topic> =
                            mine.iter().map(|&t| Topic::parse(TOPICS[t]).unwrap()).collect();
                        let limits = BatchLimits { max_events, max_bytes: usize::MAX };
                        let batch = log.read(&names, cursor, limits);
                        let from = match batch.gap {
                            Some(gap) => {
                                prop_assert_eq!(gap.after, cursor);
                                gap.resume - 1
                            }
                            None => cursor,
                        };
                        let owed: Vec<u64> = published
                            .iter()
                            .filter(|(id, t)| *id > from && mine.contains(t))
                            .map(|&(id, _)| id)
                            .collect();
                        let ids: Vec<u64> = batch.events.iter().map(|e| e.id).collect();
                        prop_assert_eq!(&ids[..], &owed[..owed.len().min(max_events)]);
                        // The new cursor passes nothing owed that was not delivered.
                        let last = ids.last().copied().unwrap_or(from);
                        prop_assert!(
                            !owed.iter().any(|&id| id > last && id <= batch.next),
                            "cursor {} jumps over owed events {:?}", batch.next, owed
                        );
                        subscribers[i].1 = batch.next;
                    }
                    Op::Restart => log = fresh(max_held, log.head() + 1_000),
                }
            }
        }
    }
}
