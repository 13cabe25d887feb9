//! The life of one subscriber, common to every transport: what it subscribes to, when it churns, how it
//! handles a message, how it reports its timed operations ([`RequestSink`]), and when it stops.
//!
//! One goose user is one subscriber, and one goose transaction is its whole life: it connects, reads
//! until the run's stop signal, reconnecting (and resuming from its cursor) on churn or error, then hands
//! its [`SubscriberLog`] back. goose checks its own stop signal only between transactions, so every wait
//! here races the run's [`CancellationToken`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushbench_common::Transport;
use pushbench_common::wire::{Control, Event, Message};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clients::dialect::parse_peer_event;
use crate::conn::{ConnError, Endpoint, HttpConn, TlsHandshake, Wire, WireCounters, connect};
use crate::measure::{Recorder, RunMeters, SubscriberLog};
use crate::scenario::{HttpVersion, Scenario};

/// Pause after the first failure in a row before trying again; it doubles with every further failure,
/// up to [`MAX_RETRY_PAUSE`], and each pause is drawn from its upper half, so that subscribers cut at
/// the same moment (a restart) do not come back in lockstep.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between two attempts (browsers' EventSource waits about 3 s).
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Everything the subscribers of one transport run share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The workload.
    pub scenario: Arc<Scenario>,
    /// The transport under test.
    pub transport: Transport,
    /// The server's nodes (one unless it is a cluster); subscriber `i`'s `k`-th connection goes to node
    /// `(i + k) mod nodes`: spread round robin, and every reconnect lands on another node.
    pub nodes: Vec<Endpoint>,
    /// Subscriber traffic, counted at the socket.
    pub wire: Arc<WireCounters>,
    /// Histograms and live counters.
    pub meters: RunMeters,
    /// Cancelled when the last event is published: churn stops, so that every subscriber is connected
    /// while the last events arrive.
    pub draining: CancellationToken,
    /// Cancelled when the drain period ends: every subscriber stops.
    pub stop: CancellationToken,
    /// Logs handed back by finished subscribers (pushed once per subscriber; no `.await` under the lock).
    pub logs: Mutex<Vec<SubscriberLog>>,
    /// The peer's profile when the server is a peer (nchan, Pushpin): its clients replace ours.
    pub peer: Option<Arc<super::dialect::Profile>>,
    /// The route of the transport when the server is described by a target profile: its clients
    /// (`clients::profiled`) replace ours.
    pub profiled: Option<Arc<crate::profile::Route>>,
    /// Why the profile does not describe what the server sent, at the first message that showed it: set
    /// once, and the run fails with it (`clients::profiled`).
    pub mismatch: std::sync::OnceLock<String>,
    /// The h2 connections the subscribers share (`[client] http = "2"`).
    pub h2: SharedConnections,
}

/// The h2 connections of a run's subscribers, `[client] subscribers_per_connection` to each (groups of
/// consecutive subscribers, as a browser tab's EventSources share its connection): the first of a group
/// to need one opens it and the others open streams on it; a closed one (the server restarted, or the
/// network cut it) is replaced by whichever of its group next needs it.
#[derive(Debug, Default)]
pub(crate) struct SharedConnections {
    /// Per group, its connection. The slot's lock is held across opening, so that a group opens one
    /// connection, not one per waiting subscriber; the map's only while a slot is found.
    groups: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<Option<HttpConn>>>>>,
}

impl SharedConnections {
    fn slot(&self, group: u64) -> Arc<tokio::sync::Mutex<Option<HttpConn>>> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.entry(group).or_default().clone()
    }

    /// Lets go of every connection once the subscribers have stopped, so that they close (and their
    /// sockets' retransmissions are read) before the tally.
    pub(crate) fn close_all(&self) {
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// One timed operation of a subscriber (a connect, a request, a subscription), for the request metrics
/// of whoever drives the subscribers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimedRequest<'a> {
    /// `GET`, `CONNECT`, `SUBSCRIBE`.
    pub method: &'a str,
    /// The row it is counted in (`/poll`, `tcp connect`).
    pub name: &'a str,
    /// How long it took.
    pub took: Duration,
    /// Whether it succeeded.
    pub success: bool,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// Why it failed.
    pub error: Option<&'a str>,
}

/// Where a subscriber reports its timed operations. The fleet implements it over goose (a goose user's
/// request metrics), so that the clients need nothing of goose.
pub(crate) trait RequestSink: Send + Sync {
    /// Records one operation.
    fn record<'a>(
        &'a mut self,
        request: TimedRequest<'a>,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// Why a connection's read loop ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The run is over.
    Stop,
    /// Churn: drop this connection and resume on a new one.
    Churn,
}

/// When this subscriber next drops its connection.
#[derive(Debug)]
struct ChurnClock {
    interval: Duration,
    next: Instant,
}

/// One subscriber.
pub(crate) struct Subscriber<'a> {
    /// The run.
    pub shared: &'a Shared,
    /// Its number in the run (0-based): picks its topics and spreads its timing phases.
    pub index: u64,
    /// Where its connection and request timings go (the fleet's goose user).
    pub sink: &'a mut dyn RequestSink,
    /// Query string naming its topics (`topic=a&topic=b`).
    pub topics_query: String,
    /// What it records.
    pub rec: Recorder,
    churn: Option<ChurnClock>,
    /// Whether it has counted itself in `meters.subscribed`.
    counted_subscribed: bool,
    /// Whether it has opened a connection before (the next one is a reconnect).
    opened_any: bool,
    /// Connections attempted so far: picks the node of the next one.
    attempts: u64,
    /// Failures since the last live subscription: sets the next pause.
    failures_in_row: u32,
}

impl std::fmt::Debug for Subscriber<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("topics_query", &self.topics_query)
            .field("cursor", &self.rec.cursor)
            .finish_non_exhaustive()
    }
}

impl<'a> Subscriber<'a> {
    /// Subscriber number `index` of the run.
    pub(crate) fn new(shared: &'a Shared, sink: &'a mut dyn RequestSink, index: u64) -> Self {
        let topics = shared.scenario.topics_of(index);
        let topics_query = topics
            .iter()
            .map(|&t| format!("topic={}", shared.scenario.topic(t)))
            .collect::<Vec<_>>()
            .join("&");
        let churn = shared.scenario.churn.map(|c| {
            let interval = c.per_subscriber_interval();
            // Golden-ratio phases spread the subscribers' first drops evenly over one interval.
            let phase = (index as f64 * 0.618_033_988_749_895).fract();
            ChurnClock {
                interval,
                next: Instant::now() + interval.mul_f64(phase.max(0.05)),
            }
        });
        Self {
            shared,
            index,
            sink,
            topics_query,
            rec: Recorder::new(topics),
            churn,
            counted_subscribed: false,
            opened_any: false,
            attempts: 0,
            failures_in_row: 0,
        }
    }

    /// Hands the subscriber's log back to the run, once its client returned.
    pub(crate) fn finish(self) {
        let log = self.rec.finish(&self.shared.meters);
        self.shared
            .logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(log);
    }

    /// Where the next connection goes (see [`Shared::nodes`]).
    pub(crate) fn next_node(&mut self) -> Endpoint {
        let nodes = &self.shared.nodes;
        let node = nodes[((self.index + self.attempts) % nodes.len() as u64) as usize].clone();
        self.attempts += 1;
        node
    }

    /// Whether the run is over.
    pub(crate) fn stopped(&self) -> bool {
        self.shared.stop.is_cancelled()
    }

    /// `&after=C` when a cursor is known, for resuming.
    pub(crate) fn after_param(&self) -> String {
        self.rec
            .cursor
            .map(|c| format!("&after={c}"))
            .unwrap_or_default()
    }

    /// Resolves when this subscriber should drop its connection: at its next churn time, unless the run
    /// is draining by then (then never). Without churn it never resolves.
    pub(crate) fn churn_signal(&self) -> impl Future<Output = ()> + use<> {
        let at = self.churn.as_ref().map(|c| c.next);
        let draining = self.shared.draining.clone();
        async move {
            match at {
                Some(at) => {
                    tokio::time::sleep_until(at).await;
                    if draining.is_cancelled() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        }
    }

    /// Whether a churn drop is due now (never while draining); if so, schedules the next one.
    pub(crate) fn churn_due(&mut self) -> bool {
        if self.shared.draining.is_cancelled() {
            return false;
        }
        match &mut self.churn {
            Some(clock) if Instant::now() >= clock.next => {
                while clock.next <= Instant::now() {
                    clock.next += clock.interval;
                }
                true
            }
            _ => false,
        }
    }

    /// Marks the end of a connection cut by churn: schedules the next drop.
    pub(crate) fn churned(&mut self) {
        self.churn_due();
    }

    /// Opens an HTTP connection to the next node (see [`Shared::nodes`]), recording a failed connect or
    /// counting the new connection and its TLS handshake; returns it with its TCP connect time. On h2 it
    /// is the subscriber's group's connection (see [`SharedConnections`]), and the connect time is
    /// `None` when the connection was already open: the new subscription paid no connect.
    pub(crate) async fn open_http(&mut self) -> Result<(HttpConn, Option<Duration>), ConnError> {
        if self.shared.scenario.client.http == HttpVersion::Http2 {
            return self.open_shared().await;
        }
        let opened = self.open_new_http().await;
        opened.map(|(conn, took)| (conn, Some(took)))
    }

    async fn open_new_http(&mut self) -> Result<(HttpConn, Duration), ConnError> {
        let node = self.next_node();
        let opened = HttpConn::open(&node, &self.shared.wire).await;
        if let Ok((conn, _)) = &opened {
            self.record_tls(conn.tls_handshake());
        }
        self.opened(opened)
    }

    async fn open_shared(&mut self) -> Result<(HttpConn, Option<Duration>), ConnError> {
        let per_connection = u64::from(self.shared.scenario.client.subscribers_per_connection);
        let slot = self.shared.h2.slot(self.index / per_connection);
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.as_ref().and_then(HttpConn::share) {
            self.connection_opened();
            return Ok((conn, None));
        }
        let (conn, took) = self.open_new_http().await?;
        *slot = conn.share();
        Ok((conn, Some(took)))
    }

    fn record_tls(&mut self, handshake: Option<TlsHandshake>) {
        if let Some(handshake) = handshake {
            self.shared.meters.record_tls_handshake(handshake.took);
            self.rec.log.counters.tls_resumed += u64::from(handshake.resumed);
        }
    }

    /// The same for a bare TCP connection (a WebSocket upgrades it), with the node it went to.
    pub(crate) async fn open_tcp(&mut self) -> Result<(Endpoint, Wire, Duration), ConnError> {
        let node = self.next_node();
        let opened = connect(&node, &self.shared.wire).await;
        if let Ok((stream, _)) = &opened {
            self.record_tls(stream.tls_handshake());
        }
        self.opened(opened)
            .map(|(stream, took)| (node, stream, took))
    }

    fn opened<T>(&mut self, outcome: Result<T, ConnError>) -> Result<T, ConnError> {
        match &outcome {
            Ok(_) => self.connection_opened(),
            Err(e) => self.rec.on_failed_connect(e),
        }
        outcome
    }

    /// Counts a new TCP connection (on h2, a new subscription stream): every one after the subscriber's
    /// first is a reconnect (churn or error recovery). The one place reconnects are counted.
    fn connection_opened(&mut self) {
        if self.opened_any {
            self.rec.log.counters.reconnects += 1;
        }
        self.opened_any = true;
    }

    /// Waits after a failure (exponential backoff with jitter, see [`RETRY_PAUSE`]), unless the run
    /// stops first. Returns whether the run stopped.
    pub(crate) async fn pause_after_error(&mut self) -> bool {
        let doubled = RETRY_PAUSE.saturating_mul(1 << self.failures_in_row.min(8));
        self.failures_in_row += 1;
        let pause = doubled
            .min(MAX_RETRY_PAUSE)
            .mul_f64(rand::random_range(0.5..=1.0));
        tokio::select! {
            _ = self.shared.stop.cancelled() => true,
            _ = tokio::time::sleep(pause) => false,
        }
    }

    /// Handles one JSON message of a stream, SSE `data` field or WebSocket frame. Returns `true` when it
    /// was the `subscribed` message.
    pub(crate) fn on_message(&mut self, json: &[u8]) -> Result<bool, ConnError> {
        let message = Message::parse(json).map_err(|e| {
            self.protocol_error(format!(
                "{e}: {}",
                String::from_utf8_lossy(&json[..json.len().min(120)])
            ))
        })?;
        match message {
            Message::Event(event) => self.rec.on_event(&event, &self.shared.meters),
            Message::Control(Control::Subscribed { next }) => {
                self.on_subscribed(next);
                return Ok(true);
            }
            Message::Control(Control::Gap(gap)) => self.rec.on_gap(gap),
            Message::Control(Control::Heartbeat) => self.rec.log.counters.heartbeats += 1,
            Message::Control(other) => {
                return Err(self.protocol_error(format!("unexpected control message {other:?}")));
            }
        }
        Ok(false)
    }

    /// The subscription is live at cursor `next`.
    pub(crate) fn on_subscribed(&mut self, next: u64) {
        self.rec.on_subscribed(next);
        self.failures_in_row = 0;
        if !self.counted_subscribed {
            self.counted_subscribed = true;
            self.shared
                .meters
                .subscribed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A protocol error naming this transport's endpoint.
    pub(crate) fn protocol_error(&self, reason: String) -> ConnError {
        ConnError::Protocol {
            path: format!("/{}", self.shared.transport),
            reason,
        }
    }

    /// Records one event's data from a peer (nchan, Pushpin, Socket.IO); our wire's heartbeat line (the
    /// keep-alive Pushpin's streams send, as asked by our GRIP backend) is counted as a heartbeat; any
    /// other payload that is not ours is a protocol error.
    pub(crate) fn on_peer_payload(&mut self, data: &[u8]) -> Result<(), ConnError> {
        // Events start with a digit: only a '{' line can be a heartbeat, so events are not parsed as JSON.
        if data.first() == Some(&b'{')
            && serde_json::from_slice::<Control>(data).is_ok_and(|c| c == Control::Heartbeat)
        {
            self.rec.log.counters.heartbeats += 1;
            return Ok(());
        }
        let Some((intended, seq)) = parse_peer_event(data) else {
            return Err(self.protocol_error(format!(
                "not a pushbench event: {:?}",
                String::from_utf8_lossy(&data[..data.len().min(80)])
            )));
        };
        let event = Event {
            id: seq,
            topic: Cow::Borrowed(""),
            ts: intended,
            data: Cow::Borrowed(std::str::from_utf8(data).unwrap_or_default()),
        };
        self.rec.on_event(&event, &self.shared.meters);
        Ok(())
    }

    /// Reports one timed operation to the sink.
    pub(crate) async fn report(
        &mut self,
        method: &str,
        name: &str,
        took: Duration,
        outcome: Result<Option<u16>, &ConnError>,
    ) {
        let (success, status, error) = match outcome {
            Ok(status) => (true, status, None),
            Err(e) => (false, status_of(e), Some(e.to_string())),
        };
        self.sink
            .record(TimedRequest {
                method,
                name,
                took,
                success,
                status,
                error: error.as_deref(),
            })
            .await;
    }

    /// Reports a new connection's timings to our histograms and to the sink; `connect` is `None` for a
    /// subscription on an h2 connection already open.
    pub(crate) async fn report_connection(
        &mut self,
        connect: Option<Duration>,
        first_byte: Duration,
        subscribed: Option<Duration>,
    ) {
        self.shared
            .meters
            .record_connection(connect, first_byte, subscribed);
        if let Some(connect) = connect {
            self.report("CONNECT", "tcp connect", connect, Ok(None))
                .await;
        }
        if let Some(s) = subscribed {
            let name = format!("{} subscribed", self.shared.transport);
            self.report("SUBSCRIBE", &name, s, Ok(None)).await;
        }
    }
}

fn status_of(e: &ConnError) -> Option<u16> {
    match e {
        ConnError::Status { status, .. } => Some(*status),
        _ => None,
    }
}
