//! What subscribers record while they run, and how it is aggregated afterwards.
//!
//! Three kinds of measurement, each kept where it is cheapest:
//! - **Latency** of every delivered event, in µs, against the server's `ts` and against the publisher's
//!   *intended* send time (embedded in the event's data; see `clients::publisher`). Each subscriber fills a
//!   small [`LatencyBatch`] and merges it into the run's shared [`Histograms`] when full, so the shared lock
//!   is taken once per [`BATCH`] events, never per event, and 20,000 subscribers do not each carry a
//!   histogram.
//! - **Completeness**: each subscriber keeps the ids it received in arrival order and the cursor it
//!   subscribed at ([`SubscriberLog`]). After the run, [`account`] compares them with what the publisher
//!   was acknowledged ([`PublishedLog`]): expected = events on the subscriber's topics with an id above its
//!   first cursor. Exact, and cheap: 8 bytes per delivery.
//! - **Counters** (requests, empty polls, gaps, reconnects, failed connects) are plain fields summed at the
//!   end; wire bytes are counted at the socket ([`crate::conn`]).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use pushbench_common::wire::{Event, Gap};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Events buffered per subscriber before its latencies are merged into the shared histograms.
pub(crate) const BATCH: usize = 64;

pub(crate) use crate::util::unix_ns;
pub(crate) use pushbench_report::result::{MAX_US, Percentiles, new_histogram};

/// The shared histograms of one transport run.
#[derive(Debug)]
pub(crate) struct Histograms {
    /// Receive time minus the publisher's intended send time (includes any publisher lateness: no
    /// coordinated omission).
    pub latency: Histogram<u64>,
    /// Receive time minus the server's accept timestamp `ts`.
    pub latency_from_server: Histogram<u64>,
    /// TCP connect time.
    pub connect: Histogram<u64>,
    /// TLS handshake time, after the TCP connect (empty in cleartext).
    pub tls_handshake: Histogram<u64>,
    /// Request sent → response head (HTTP) or upgrade completed (WebSocket), first request of a connection.
    pub first_byte: Histogram<u64>,
    /// Connect start → the subscription's cursor is known (`subscribed` message, or first poll answer).
    pub subscribed: Histogram<u64>,
    /// A connection lost (an error, a refused connect; not churn) → the first event after it: what a
    /// restart, a killed node or a cut link costs a subscriber (empty when nothing was lost).
    pub reconnect: Histogram<u64>,
}

impl Histograms {
    /// Adds every histogram of `other` into `self`: exact, as all share the same bounds.
    pub(crate) fn add(&mut self, other: &Self) {
        for (mine, theirs) in [
            (&mut self.latency, &other.latency),
            (&mut self.latency_from_server, &other.latency_from_server),
            (&mut self.connect, &other.connect),
            (&mut self.tls_handshake, &other.tls_handshake),
            (&mut self.first_byte, &other.first_byte),
            (&mut self.subscribed, &other.subscribed),
            (&mut self.reconnect, &other.reconnect),
        ] {
            mine.add(theirs).expect("histograms share their bounds");
        }
    }
}

impl Default for Histograms {
    fn default() -> Self {
        Self {
            latency: new_histogram(),
            latency_from_server: new_histogram(),
            connect: new_histogram(),
            tls_handshake: new_histogram(),
            first_byte: new_histogram(),
            subscribed: new_histogram(),
            reconnect: new_histogram(),
        }
    }
}

/// Locks the shared histograms. The lock guards plain arithmetic with no `.await` inside, so a
/// `std::sync::Mutex` is right; a poisoned lock only means another subscriber panicked mid-merge.
pub(crate) fn lock(histograms: &Mutex<Histograms>) -> std::sync::MutexGuard<'_, Histograms> {
    histograms
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Per-subscriber buffer of `(from_intended_us, from_server_us)` pairs.
#[derive(Debug, Default)]
pub(crate) struct LatencyBatch {
    samples: Vec<(u64, u64)>,
}

impl LatencyBatch {
    /// Adds one sample; merges into `shared` when the batch is full.
    pub(crate) fn push(&mut self, sample: (u64, u64), shared: &Mutex<Histograms>) {
        if self.samples.capacity() == 0 {
            self.samples.reserve_exact(BATCH);
        }
        self.samples.push(sample);
        if self.samples.len() >= BATCH {
            self.flush(shared);
        }
    }

    /// Merges buffered samples into `shared`.
    pub(crate) fn flush(&mut self, shared: &Mutex<Histograms>) {
        if self.samples.is_empty() {
            return;
        }
        let mut h = lock(shared);
        for &(intended, server) in &self.samples {
            h.latency.saturating_record(intended.clamp(1, MAX_US));
            h.latency_from_server
                .saturating_record(server.clamp(1, MAX_US));
        }
        drop(h);
        self.samples.clear();
    }
}

/// Counters one subscriber keeps; summed over subscribers at the end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubscriberCounters {
    /// HTTP requests sent (polls, long-polls, stream/SSE GETs, WebSocket upgrades).
    pub requests: u64,
    /// Poll or long-poll answers that carried no event.
    pub empty_polls: u64,
    /// Requests abandoned before their answer: long-polls still held when churn or the end of the run cut
    /// them (a stream's single request is not counted here).
    pub requests_cut: u64,
    /// Gap notices received.
    pub gaps: u64,
    /// Heartbeats received (NDJSON heartbeat lines; SSE comments are not surfaced by the parser).
    pub heartbeats: u64,
    /// Connections opened after the first (churn or error recovery).
    pub reconnects: u64,
    /// Connects or subscribe requests that failed.
    pub failed_connects: u64,
    /// Errors on an established connection (protocol errors, resets).
    pub errors: u64,
    /// TLS handshakes that resumed an earlier session.
    #[serde(default)]
    pub tls_resumed: u64,
}

impl SubscriberCounters {
    /// Adds `other` into `self`.
    pub(crate) fn add(&mut self, other: &Self) {
        self.requests += other.requests;
        self.empty_polls += other.empty_polls;
        self.requests_cut += other.requests_cut;
        self.gaps += other.gaps;
        self.heartbeats += other.heartbeats;
        self.reconnects += other.reconnects;
        self.failed_connects += other.failed_connects;
        self.errors += other.errors;
        self.tls_resumed += other.tls_resumed;
    }
}

/// What one subscriber hands back at the end: enough to account for every event exactly.
#[derive(Debug, Default)]
pub(crate) struct SubscriberLog {
    /// Topic indices this subscriber named.
    pub topics: Vec<u64>,
    /// Cursor of its first subscription: it is owed every event on its topics above this id.
    pub first_cursor: Option<u64>,
    /// Event ids in arrival order.
    pub received: Vec<u64>,
    /// Counters.
    pub counters: SubscriberCounters,
    /// Last error seen, for the report.
    pub last_error: Option<String>,
    /// The gap notices received: the owed events they name count as lost, but announced.
    pub gaps: Vec<Gap>,
}

/// Live state of one subscriber while it runs; every transport client drives one.
#[derive(Debug)]
pub(crate) struct Recorder {
    /// What will be handed back.
    pub log: SubscriberLog,
    /// Where to resume: the highest id received, or the subscription's `next`.
    pub cursor: Option<u64>,
    latency: LatencyBatch,
    /// When the connection was lost, until the next event arrives (see [`Histograms::reconnect`]).
    interrupted_at: Option<Instant>,
}

impl Recorder {
    /// A recorder for a subscriber of `topics`.
    pub(crate) fn new(topics: Vec<u64>) -> Self {
        Self {
            log: SubscriberLog {
                topics,
                ..SubscriberLog::default()
            },
            cursor: None,
            latency: LatencyBatch::default(),
            interrupted_at: None,
        }
    }

    /// The subscription is live at `next` (a `subscribed` message or a poll answer's `next`).
    pub(crate) fn on_subscribed(&mut self, next: u64) {
        if self.log.first_cursor.is_none() {
            self.log.first_cursor = Some(next);
        }
        self.cursor = Some(self.cursor.map_or(next, |c| c.max(next)));
    }

    /// A gap notice: events before `gap.resume` on this subscription were evicted unread. Counted (the
    /// missing events also show as lost); the events from `gap.resume` on follow, so a reconnect resumes
    /// after the gap rather than asking for it again.
    pub(crate) fn on_gap(&mut self, gap: Gap) {
        self.log.counters.gaps += 1;
        self.log.gaps.push(gap);
        let resumed = gap.resume.saturating_sub(1);
        self.cursor = Some(self.cursor.map_or(resumed, |c| c.max(resumed)));
        self.log.last_error = Some(format!(
            "gap notice: events after {} before {} were evicted",
            gap.after, gap.resume
        ));
    }

    /// One delivered event. Latency is recorded only for events intended after `measure_start_ns`.
    pub(crate) fn on_event(&mut self, event: &Event<'_>, shared: &RunMeters) {
        let now = unix_ns();
        self.log.received.push(event.id);
        self.cursor = Some(self.cursor.map_or(event.id, |c| c.max(event.id)));
        shared.delivered.fetch_add(1, Ordering::Relaxed);
        if let Some(lost) = self.interrupted_at.take() {
            let us = (lost.elapsed().as_micros() as u64).clamp(1, MAX_US);
            lock(&shared.histograms).reconnect.saturating_record(us);
        }
        if let Some(intended) = intended_send_ns(&event.data)
            && intended >= shared.measure_start_ns.load(Ordering::Relaxed)
        {
            let us = |from: u64| now.saturating_sub(from) / 1000;
            self.latency
                .push((us(intended), us(event.ts)), &shared.histograms);
        }
    }

    /// Records a failure to connect or subscribe.
    pub(crate) fn on_failed_connect(&mut self, error: &dyn std::fmt::Display) {
        self.interrupted();
        self.log.counters.failed_connects += 1;
        self.log.last_error = Some(error.to_string());
    }

    /// Records an error on an established connection.
    pub(crate) fn on_error(&mut self, error: &dyn std::fmt::Display) {
        self.interrupted();
        self.log.counters.errors += 1;
        self.log.last_error = Some(error.to_string());
    }

    /// The connection is lost (or could not be made): the clock of [`Histograms::reconnect`] starts,
    /// unless it runs already. A subscriber never subscribed has nothing to reconnect to.
    fn interrupted(&mut self) {
        if self.log.first_cursor.is_some() && self.interrupted_at.is_none() {
            self.interrupted_at = Some(Instant::now());
        }
    }

    /// Flushes buffered latencies and returns the log.
    pub(crate) fn finish(mut self, shared: &RunMeters) -> SubscriberLog {
        self.latency.flush(&shared.histograms);
        self.log
    }
}

/// The run-wide meters every subscriber writes to.
#[derive(Debug)]
pub(crate) struct RunMeters {
    /// Latency and connection histograms.
    pub histograms: Mutex<Histograms>,
    /// Events with an intended send time before this are warm-up: counted, not timed.
    pub measure_start_ns: AtomicU64,
    /// Events received so far (live progress).
    pub delivered: AtomicU64,
    /// Subscribers whose first subscription is live (the publisher waits for all of them).
    pub subscribed: AtomicU64,
}

impl Default for RunMeters {
    fn default() -> Self {
        Self {
            histograms: Mutex::new(Histograms::default()),
            measure_start_ns: AtomicU64::new(u64::MAX),
            delivered: AtomicU64::new(0),
            subscribed: AtomicU64::new(0),
        }
    }
}

impl RunMeters {
    /// Records the timings of one new connection.
    pub(crate) fn record_connection(
        &self,
        connect: Option<Duration>,
        first_byte: Duration,
        subscribed: Option<Duration>,
    ) {
        let us = |d: Duration| (d.as_micros() as u64).clamp(1, MAX_US);
        let mut h = lock(&self.histograms);
        if let Some(connect) = connect {
            h.connect.saturating_record(us(connect));
        }
        h.first_byte.saturating_record(us(first_byte));
        if let Some(s) = subscribed {
            h.subscribed.saturating_record(us(s));
        }
    }

    /// Records a TLS handshake's time.
    pub(crate) fn record_tls_handshake(&self, took: Duration) {
        let us = (took.as_micros() as u64).clamp(1, MAX_US);
        lock(&self.histograms).tls_handshake.saturating_record(us);
    }
}

/// The intended send time the publisher put at the start of an event's data (`"<unix_ns> xxx…"`).
pub(crate) fn intended_send_ns(data: &str) -> Option<u64> {
    let end = data.find(' ').unwrap_or(data.len());
    data[..end].parse().ok()
}

/// Every event the publisher got an acknowledgement for, by topic.
#[derive(Debug, Default)]
pub(crate) struct PublishedLog {
    /// Ascending ids per topic index.
    pub by_topic: Vec<Vec<u64>>,
}

impl PublishedLog {
    /// Builds the log from `(id, topic index)` acknowledgements in any order.
    pub(crate) fn new(topic_count: usize, acks: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut by_topic = vec![Vec::new(); topic_count];
        for (id, topic) in acks {
            by_topic[topic as usize].push(id);
        }
        for ids in &mut by_topic {
            ids.sort_unstable();
        }
        Self { by_topic }
    }

    /// Number of events published.
    pub(crate) fn total(&self) -> u64 {
        self.by_topic.iter().map(|ids| ids.len() as u64).sum()
    }

    /// Ids on `topics` above `after`, ascending.
    fn expected(&self, topics: &[u64], after: u64) -> Vec<u64> {
        let mut ids: Vec<u64> = topics
            .iter()
            .flat_map(|&t| {
                let list = &self.by_topic[t as usize];
                list[list.partition_point(|&id| id <= after)..]
                    .iter()
                    .copied()
            })
            .collect();
        if topics.len() > 1 {
            ids.sort_unstable();
        }
        ids
    }
}

/// Delivery accounting, for one subscriber or summed over many.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Completeness {
    /// Events the subscribers were owed.
    pub expected: u64,
    /// Owed events received at least once.
    pub delivered: u64,
    /// Owed events never received.
    pub lost: u64,
    /// Of `lost`, those a gap notice named (its `after` < id < `resume`): lost, but not silently.
    #[serde(default)]
    pub lost_announced: u64,
    /// Repeated receipts of an event already received.
    pub duplicates: u64,
    /// First receipts of an event whose id is below one received earlier.
    pub out_of_order: u64,
    /// Received events that were not owed (wrong topic, at or below the first cursor, or unknown id).
    pub unexpected: u64,
    /// Subscribers that never got a live subscription (everything on their topics counts as lost).
    pub never_subscribed: u64,
}

impl Completeness {
    /// Adds `other` into `self`.
    pub(crate) fn add(&mut self, other: &Self) {
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.lost_announced += other.lost_announced;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
        self.never_subscribed += other.never_subscribed;
    }
}

/// Accounts one subscriber's receipts against what was published.
pub(crate) fn account(log: &SubscriberLog, published: &PublishedLog) -> Completeness {
    let mut c = Completeness::default();
    let after = match log.first_cursor {
        Some(cursor) => cursor,
        None => {
            c.never_subscribed = 1;
            0
        }
    };
    let expected = published.expected(&log.topics, after);
    c.expected = expected.len() as u64;

    let strictly_increasing = log.received.windows(2).all(|w| w[0] < w[1]);
    let distinct: Vec<u64> = if strictly_increasing {
        log.received.clone()
    } else {
        let mut seen = HashSet::with_capacity(log.received.len());
        let mut highest = 0;
        for &id in &log.received {
            if !seen.insert(id) {
                c.duplicates += 1;
            } else if id < highest {
                c.out_of_order += 1;
            }
            highest = highest.max(id);
        }
        let mut distinct: Vec<u64> = seen.into_iter().collect();
        distinct.sort_unstable();
        distinct
    };

    // Merge two ascending lists: matches are deliveries, leftovers are lost or unexpected.
    let announced = |id: u64| log.gaps.iter().any(|g| g.after < id && id < g.resume);
    let lose = |c: &mut Completeness, id: u64| {
        c.lost += 1;
        c.lost_announced += u64::from(announced(id));
    };
    let (mut i, mut j) = (0, 0);
    while i < expected.len() && j < distinct.len() {
        match expected[i].cmp(&distinct[j]) {
            std::cmp::Ordering::Equal => {
                c.delivered += 1;
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                lose(&mut c, expected[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                c.unexpected += 1;
                j += 1;
            }
        }
    }
    for &id in &expected[i..] {
        lose(&mut c, id);
    }
    c.unexpected += (distinct.len() - j) as u64;
    c
}

/// Measures how late a 5 ms sleep wakes up, until `stop`: the load generator's own queueing delay.
pub(crate) fn spawn_lag_probe(stop: CancellationToken) -> tokio::task::JoinHandle<Histogram<u64>> {
    tokio::spawn(async move {
        let mut lag = new_histogram();
        let step = Duration::from_millis(5);
        while !stop.is_cancelled() {
            let asked = Instant::now() + step;
            tokio::time::sleep_until(asked).await;
            lag.saturating_record(
                (Instant::now().saturating_duration_since(asked).as_micros() as u64).max(1),
            );
        }
        lag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(topics: Vec<u64>, first: Option<u64>, received: Vec<u64>) -> SubscriberLog {
        SubscriberLog {
            topics,
            first_cursor: first,
            received,
            ..SubscriberLog::default()
        }
    }

    #[test]
    fn accounting_is_exact() {
        // topic 0: ids 1,3,5,7; topic 1: ids 2,4,6
        let published =
            PublishedLog::new(2, [(1, 0), (2, 1), (3, 0), (4, 1), (5, 0), (6, 1), (7, 0)]);
        assert_eq!(published.total(), 7);

        let perfect = account(&log(vec![0], Some(2), vec![3, 5, 7]), &published);
        assert_eq!(
            perfect,
            Completeness {
                expected: 3,
                delivered: 3,
                ..Completeness::default()
            }
        );

        // Both topics from cursor 3: owed 4,5,6,7. Received 4, 6 twice, 5 late, 2 (before cursor); 7 lost.
        let messy = account(&log(vec![0, 1], Some(3), vec![4, 6, 6, 5, 2]), &published);
        assert_eq!(
            messy,
            Completeness {
                expected: 4,
                delivered: 3,
                lost: 1,
                duplicates: 1,
                out_of_order: 2,
                unexpected: 1,
                lost_announced: 0,
                never_subscribed: 0
            }
        );

        let absent = account(&log(vec![1], None, vec![]), &published);
        assert_eq!(
            absent,
            Completeness {
                expected: 3,
                lost: 3,
                never_subscribed: 1,
                ..Completeness::default()
            }
        );
    }

    #[test]
    fn lost_events_a_gap_notice_named_are_announced_the_others_silent() {
        let published = PublishedLog::new(1, (1..=10).map(|id| (id, 0)));
        let mut gapped = log(vec![0], Some(0), vec![1, 2, 6, 7, 8]);
        // A notice for 3..=5 (after 2, complete again from 6); 9 and 10 go missing without a word.
        gapped.gaps.push(Gap {
            after: 2,
            resume: 6,
        });
        let c = account(&gapped, &published);
        assert_eq!((c.lost, c.lost_announced, c.delivered), (5, 3, 5));
    }

    #[test]
    fn intended_time_is_read_from_data() {
        assert_eq!(
            intended_send_ns("1763870000123456789 xxxx"),
            Some(1_763_870_000_123_456_789)
        );
        assert_eq!(intended_send_ns("42"), Some(42));
        assert_eq!(intended_send_ns("hello world"), None);
    }

    #[test]
    fn batches_merge_into_shared_histograms() {
        let shared = Mutex::new(Histograms::default());
        let mut batch = LatencyBatch::default();
        for i in 0..BATCH as u64 + 3 {
            batch.push((1000 + i, 500), &shared);
        }
        assert_eq!(lock(&shared).latency.len(), BATCH as u64);
        batch.flush(&shared);
        let h = lock(&shared);
        assert_eq!(h.latency.len(), BATCH as u64 + 3);
        assert_eq!(Percentiles::of(&h.latency_from_server).p50, 500);
    }
}
