//! The open-loop publisher.
//!
//! Event `i` is due at `start + i / publish_rate`, fixed before the run: the schedule never waits for the
//! server. Its intended send time (Unix ns) is written at the start of the event's data
//! (`"<intended_ns> xxxx…"`, padded to `payload_bytes`), so a subscriber measures latency from when the
//! event *should* have been sent. If the publisher or the server falls behind, late sends show up as
//! latency instead of silently thinning the load: no coordinated omission.
//!
//! Several workers, each on its own keep-alive connection, share the schedule (worker `w` sends events
//! `i ≡ w mod workers`), so one slow answer delays only that worker's next event. Every acknowledgement
//! `(id, topic)` is kept: it is the ground truth the subscribers are accounted against.
//!
//! One loop serves every target: what differs (the request for an event, what its answer acknowledges,
//! whether the connection survives an answer) is the target's [`Encoder`]; ours is [`OurEncoder`].

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use pushbench_common::Topic;
use pushbench_common::wire::PublishAck;
use tokio::time::Instant;

use crate::conn::{ConnError, Endpoint, HttpConn, WireCounters, body_of};
use crate::measure::new_histogram;

/// What to publish.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Events per second.
    pub rate: f64,
    /// Number of events.
    pub count: u64,
    /// Data size of each event.
    pub payload_bytes: usize,
    /// Topic of event `i` is `topics[i % topics.len()]`.
    pub topics: Vec<Topic>,
    /// When event 0 is due.
    pub start: Instant,
    /// The same moment as Unix ns (intended send times are written in wall-clock time).
    pub start_unix_ns: u64,
}

impl Schedule {
    /// Offset of event `i` from the start.
    pub fn offset(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// Intended send time of event `i`, Unix ns.
    pub fn intended_unix_ns(&self, i: u64) -> u64 {
        self.start_unix_ns + self.offset(i).as_nanos() as u64
    }

    /// Workers needed so that one round trip per event per worker keeps up (≈1,000 events/s each).
    pub fn workers(&self) -> usize {
        ((self.rate / 1000.0).ceil() as usize).clamp(1, 16)
    }
}

/// What the publisher did.
#[derive(Debug)]
pub struct Published {
    /// `(id, topic index)` of every acknowledged event.
    pub acks: Vec<(u64, u64)>,
    /// Publishes that failed (no acknowledgement).
    pub failures: u64,
    /// Last failure, for the report.
    pub last_error: Option<String>,
    /// Actual send start minus intended send time, µs.
    pub lateness: Histogram<u64>,
}

/// The event data for intended send time `intended_ns`: the time, a space, padding to `size` bytes.
pub(crate) fn event_data(intended_ns: u64, size: usize) -> String {
    let mut data = format!("{intended_ns} ");
    let pad = size.saturating_sub(data.len());
    data.extend(std::iter::repeat_n('x', pad));
    data
}

/// One publish request: where it goes, its content type, its body.
#[derive(Debug)]
pub(crate) struct PublishRequest<'e> {
    /// The request path.
    pub path: Cow<'e, str>,
    /// Its `content-type`.
    pub content_type: &'e str,
    /// Its body.
    pub body: Bytes,
}

/// How a target takes events: the request that publishes event `i`, and the id its answer acknowledges.
pub(crate) trait Encoder: Send + Sync + 'static {
    /// The request publishing event `i` of `schedule` on topic index `topic` (`i mod topics`).
    fn encode(&self, schedule: &Schedule, i: u64, topic: u64) -> PublishRequest<'_>;
    /// The id under which event `i` was accepted, from the answer's `body` to `path`.
    fn ack(&self, i: u64, path: &str, body: &[u8]) -> Result<u64, ConnError>;
    /// Whether every event needs a fresh connection (the target closes it after each answer).
    fn fresh_connection_per_event(&self) -> bool {
        false
    }
    /// The request method (a target profile may publish with PUT or PATCH).
    fn method(&self) -> hyper::Method {
        hyper::Method::POST
    }
    /// Headers sent with every publish besides `content-type` (a target profile's `publish.headers`).
    fn headers(&self) -> &[(String, String)] {
        &[]
    }
}

/// Our server's publish API: `POST /publish/<topic>` with the data as text; the answer names the id.
#[derive(Debug)]
pub(crate) struct OurEncoder {
    /// `/publish/<topic>` per topic index, built once.
    paths: Vec<String>,
}

impl OurEncoder {
    /// The encoder for `schedule`'s topics.
    pub(crate) fn new(schedule: &Schedule) -> Self {
        Self {
            paths: schedule
                .topics
                .iter()
                .map(|t| format!("/publish/{t}"))
                .collect(),
        }
    }
}

impl Encoder for OurEncoder {
    fn encode(&self, schedule: &Schedule, i: u64, topic: u64) -> PublishRequest<'_> {
        let data = event_data(schedule.intended_unix_ns(i), schedule.payload_bytes);
        PublishRequest {
            path: Cow::Borrowed(&self.paths[topic as usize]),
            content_type: "text/plain; charset=utf-8",
            body: Bytes::from(data),
        }
    }

    fn ack(&self, _i: u64, path: &str, body: &[u8]) -> Result<u64, ConnError> {
        serde_json::from_slice::<PublishAck>(body)
            .map(|ack| ack.id)
            .map_err(|e| ConnError::Protocol {
                path: path.to_owned(),
                reason: format!("publish answer: {e}"),
            })
    }
}

/// Publishes the schedule to our server's `nodes` (see [`publish_with`]).
pub(crate) async fn publish(
    nodes: &[Endpoint],
    schedule: Arc<Schedule>,
    wire: Arc<WireCounters>,
    sent: Arc<AtomicU64>,
) -> Published {
    let encoder = Arc::new(OurEncoder::new(&schedule));
    publish_with(nodes, encoder, schedule, wire, sent).await
}

/// Publishes the schedule open loop to `nodes` with the target's `encoder` (worker `w` publishes to node
/// `w mod nodes`, so a cluster's nodes all take publishes, and moves to the next node after a failed
/// publish, as a load balancer would send it elsewhere); `sent` counts acknowledged events live.
pub(crate) async fn publish_with(
    nodes: &[Endpoint],
    encoder: Arc<dyn Encoder>,
    schedule: Arc<Schedule>,
    wire: Arc<WireCounters>,
    sent: Arc<AtomicU64>,
) -> Published {
    let workers = schedule.workers().max(nodes.len());
    let mut tasks = Vec::with_capacity(workers);
    let nodes: Arc<[Endpoint]> = nodes.into();
    for w in 0..workers {
        let (nodes, encoder, schedule, wire, sent) = (
            nodes.clone(),
            encoder.clone(),
            schedule.clone(),
            wire.clone(),
            sent.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let to = (&*nodes, &*encoder);
            worker(w, workers, to, &schedule, &wire, &sent).await
        }));
    }
    // A run that ends early (a target profile that does not fit, a signal) drops this future: its
    // workers must stop publishing with it, not into the next run.
    let _stop_with_this = AbortOnDrop(tasks.iter().map(|t| t.abort_handle()).collect());
    Published::gather(tasks, schedule.count as usize).await
}

/// Aborts the publisher's workers when dropped (a no-op for those that finished).
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Published {
    /// Nothing published yet.
    pub(crate) fn new() -> Self {
        Self {
            acks: Vec::new(),
            failures: 0,
            last_error: None,
            lateness: new_histogram(),
        }
    }

    /// Sleeps until event `i` is due and records how late the send starts.
    pub(crate) async fn wait_for(&mut self, schedule: &Schedule, i: u64) {
        let due = schedule.start + schedule.offset(i);
        tokio::time::sleep_until(due).await;
        let late = Instant::now().saturating_duration_since(due);
        self.lateness
            .saturating_record((late.as_micros() as u64).max(1));
    }

    /// Records one publish: its `(id, topic index)` acknowledgement, or its failure (which drops `conn`:
    /// the next publish opens a fresh connection).
    pub(crate) fn record(
        &mut self,
        outcome: Result<(u64, u64), ConnError>,
        conn: &mut Option<HttpConn>,
        sent: &AtomicU64,
    ) {
        match outcome {
            Ok(ack) => {
                self.acks.push(ack);
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                *conn = None;
                self.failures += 1;
                self.last_error = Some(e.to_string());
            }
        }
    }

    /// Sums the parts published by concurrent workers (a worker that panicked counts as one failure).
    pub(crate) async fn gather(
        tasks: Vec<tokio::task::JoinHandle<Published>>,
        capacity: usize,
    ) -> Published {
        let mut total = Published {
            acks: Vec::with_capacity(capacity),
            ..Published::new()
        };
        for task in tasks {
            match task.await {
                Ok(part) => {
                    total.acks.extend(part.acks);
                    total.failures += part.failures;
                    total.last_error = part.last_error.or(total.last_error);
                    total.lateness.add(&part.lateness).expect("same bounds");
                }
                Err(e) => {
                    total.failures += 1;
                    total.last_error = Some(format!("publisher worker panicked: {e}"));
                }
            }
        }
        total
    }
}

/// Worker `w` of `workers`: publishes events `i ≡ w mod workers` with `encoder`, from node `w mod
/// nodes` on, to the next node after each failure.
async fn worker(
    w: usize,
    workers: usize,
    (nodes, encoder): (&[Endpoint], &dyn Encoder),
    schedule: &Schedule,
    wire: &Arc<WireCounters>,
    sent: &AtomicU64,
) -> Published {
    let mut out = Published::new();
    let mut conn: Option<HttpConn> = None;
    let mut node = w % nodes.len();
    for i in (w as u64..schedule.count).step_by(workers) {
        out.wait_for(schedule, i).await;
        let topic = i % schedule.topics.len() as u64;
        let request = encoder.encode(schedule, i, topic);
        if encoder.fresh_connection_per_event() {
            conn = None;
        }
        let path = &request.path;
        let outcome = send(
            &mut conn,
            &nodes[node],
            wire,
            (encoder.method(), path),
            request.content_type,
            encoder.headers(),
            request.body,
        )
        .await
        .and_then(|body| encoder.ack(i, path, &body));
        if outcome.is_err() {
            node = (node + 1) % nodes.len();
        }
        out.record(outcome.map(|id| (id, topic)), &mut conn, sent);
    }
    out
}

/// Sends `body` to `path` with `method` on `conn` (opened to `node` first when there is none) and
/// returns the answer's body; a successful status is required and the exchange may take at most 10 s.
async fn send(
    conn: &mut Option<HttpConn>,
    node: &Endpoint,
    wire: &Arc<WireCounters>,
    (method, path): (hyper::Method, &str),
    content_type: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<Bytes, ConnError> {
    if conn.is_none() {
        *conn = Some(HttpConn::open(node, wire).await?.0);
    }
    let c = conn.as_mut().expect("opened above");
    let mut all = vec![("content-type", content_type)];
    all.extend(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let exchange = async {
        let response = c.send(method, path, &all, body).await?;
        body_of(path, response).await
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| ConnError::Timeout(Duration::from_secs(10)))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::intended_send_ns;

    #[test]
    fn data_carries_intended_time_and_has_exact_size() {
        let data = event_data(1_763_870_000_123_456_789, 64);
        assert_eq!(data.len(), 64);
        assert_eq!(intended_send_ns(&data), Some(1_763_870_000_123_456_789));
    }

    #[test]
    fn schedule_is_fixed_in_advance() {
        let schedule = Schedule {
            rate: 200.0,
            count: 10,
            payload_bytes: 64,
            topics: vec![Topic::parse("all").unwrap()],
            start: Instant::now(),
            start_unix_ns: 1_000_000_000,
        };
        assert_eq!(schedule.offset(3), Duration::from_millis(15));
        assert_eq!(schedule.intended_unix_ns(200), 2_000_000_000);
        assert_eq!(schedule.workers(), 1);
    }
}
