//! The result of a run, the schema every other module of this crate reads and the load generator writes.
//!
//! [`RunResult`] *is* the `result.json` format: its field names are the contract described by the checked-in
//! `results/result.schema.json` (bump [`SCHEMA_VERSION`] on any incompatible change). Latency histograms travel inside it in HdrHistogram's V2 deflate form, base64-encoded, so
//! that runs merge exactly instead of averaging percentiles ([`encode_histogram`]). Beside the schema: the
//! catalogue of gateable metrics ([`Metric`]) and the spread of repeated runs ([`Spreads`]), which the
//! schema carries.

mod derive;
mod histogram;
mod metric;
mod spread;

pub use derive::{DRIFT_EVERY_S, DriftSample, Growth, derive, derive_drift, derive_packets};
pub use histogram::{
    HistogramError, MAX_US, Percentiles, decode_histogram, encode_histogram, new_histogram,
};
pub use metric::{Kind, Metric, UnknownMetric};
pub use spread::{Spread, Spreads, runs_of};

use pushbench_common::Transport;
use serde::{Deserialize, Serialize};

/// Version of the `result.json` format.
pub const SCHEMA_VERSION: u32 = 1;

/// One run of a scenario over its transports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Format version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Tool name and version.
    pub tool: String,
    /// The validated scenario, as run.
    pub scenario: serde_json::Value,
    /// Start of the run, UTC, RFC 3339.
    pub started_at: String,
    /// End of the run, UTC, RFC 3339.
    pub finished_at: String,
    /// CPUs available to the load generator (server and load generator share them when local).
    pub cpus: usize,
    /// How the server was provided: `spawned <path>` or `target <url>`.
    pub server: String,
    /// Runs merged into this result (`--repeat N`, `pushbench merge`); 1 for a single run.
    #[serde(default = "one_run")]
    pub runs: u32,
    /// One entry per transport, in run order.
    pub transports: Vec<TransportResult>,
    /// Run-wide warnings (saturation, losses, failures), also printed.
    pub warnings: Vec<String>,
    /// The emulated network between the subscribers and the server; absent on loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Box<NetworkResult>>,
}

impl RunResult {
    /// The scenario's name, as the reports title it (`?` when the result has none).
    pub fn scenario_name(&self) -> &str {
        self.scenario
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("?")
    }
}

/// The network a run emulated: what was asked, what the subscribers' side measured, what the link carried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkResult {
    /// The preset's name, or `custom`.
    pub profile: String,
    /// The conditions asked for.
    pub asked: AskedNetwork,
    /// Median TCP handshake time from the subscribers' side to the server's, probed before the first
    /// transport: the round trip the run actually had.
    pub measured_rtt_ms: f64,
    /// Packets the emulator forwarded and dropped, over the whole run.
    pub link: LinkCounts,
    /// Which engine emulated it (results from before the choice existed: the only one then, TUN).
    #[serde(default)]
    pub engine: Engine,
}

/// What applies the network's conditions to every packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// pushbench's own forwarder between two TUN devices.
    #[default]
    Tun,
    /// The kernel's `netem` qdisc on both ends of a veth pair.
    Netem,
}

impl Engine {
    /// `tun` or `netem`, as `--emulator` and `result.json` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tun => "tun",
            Self::Netem => "netem",
        }
    }
}

/// Conditions asked for, in the scenario's units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AskedNetwork {
    /// Round trip added.
    pub rtt_ms: f64,
    /// Delay variation each way.
    pub jitter_ms: f64,
    /// Loss per direction, percent.
    pub loss_pct: f64,
    /// Server to subscribers, kbit/s (0 = unlimited).
    pub down_kbit: u64,
    /// Subscribers to server, kbit/s (0 = unlimited).
    pub up_kbit: u64,
}

/// Packet counters of the emulated link, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkCounts {
    /// Server to subscribers: forwarded.
    pub down_packets: u64,
    /// Server to subscribers: dropped by the loss rate.
    pub down_lost: u64,
    /// Server to subscribers: dropped from a full rate-limited queue.
    pub down_queue_drops: u64,
    /// Subscribers to server: forwarded.
    pub up_packets: u64,
    /// Subscribers to server: dropped by the loss rate.
    pub up_lost: u64,
    /// Subscribers to server: dropped from a full rate-limited queue.
    pub up_queue_drops: u64,
    /// Server to subscribers: dropped while a fault had the link cut (`[faults] flap`).
    #[serde(default)]
    pub down_cut: u64,
    /// Subscribers to server: the same.
    #[serde(default)]
    pub up_cut: u64,
}

impl LinkCounts {
    /// Packets forwarded both ways.
    pub fn packets(&self) -> u64 {
        self.down_packets + self.up_packets
    }

    /// Packets dropped both ways, lost, from a full queue or while cut: each costs TCP a
    /// retransmission.
    pub fn dropped(&self) -> u64 {
        self.down_lost
            + self.down_queue_drops
            + self.down_cut
            + self.up_lost
            + self.up_queue_drops
            + self.up_cut
    }

    /// Counts since `before` (the same link, read earlier).
    pub fn since(&self, before: &Self) -> Self {
        Self {
            down_packets: self.down_packets - before.down_packets,
            down_lost: self.down_lost - before.down_lost,
            down_queue_drops: self.down_queue_drops - before.down_queue_drops,
            up_packets: self.up_packets - before.up_packets,
            up_lost: self.up_lost - before.up_lost,
            up_queue_drops: self.up_queue_drops - before.up_queue_drops,
            down_cut: self.down_cut - before.down_cut,
            up_cut: self.up_cut - before.up_cut,
        }
    }

    /// Both counts added.
    pub fn plus(&self, other: &Self) -> Self {
        Self {
            down_packets: self.down_packets + other.down_packets,
            down_lost: self.down_lost + other.down_lost,
            down_queue_drops: self.down_queue_drops + other.down_queue_drops,
            up_packets: self.up_packets + other.up_packets,
            up_lost: self.up_lost + other.up_lost,
            up_queue_drops: self.up_queue_drops + other.up_queue_drops,
            down_cut: self.down_cut + other.down_cut,
            up_cut: self.up_cut + other.up_cut,
        }
    }
}

/// A measured round trip more than this share off the asked one (and [`RTT_SLACK_MS`]) is flagged in
/// the reports.
pub const RTT_TOLERANCE: f64 = 0.15;
/// What the emulator's forwarding adds to a round trip on a quiet 2-core machine (0.7–1.2 ms measured
/// at 20 ms asked), not counted as off.
pub const RTT_SLACK_MS: f64 = 1.0;

impl NetworkResult {
    /// One line for the reports: asked, measured, and what the link carried.
    pub fn describe(&self) -> String {
        let a = self.asked;
        let rate = |kbit: u64| {
            if kbit == 0 {
                "unlimited".to_owned()
            } else {
                format!("{kbit} kbit/s")
            }
        };
        let l = self.link;
        format!(
            "{}: asked {} ms RTT ± {} ms, {} % loss each way, down {}, up {}; measured RTT {:.1} ms; \
             the emulated link ({} engine) forwarded {} packets down ({} lost, {} queue drops) and {} up ({} lost, {} queue drops)",
            self.profile,
            a.rtt_ms,
            a.jitter_ms,
            a.loss_pct,
            rate(a.down_kbit),
            rate(a.up_kbit),
            self.measured_rtt_ms,
            self.engine.as_str(),
            l.down_packets,
            l.down_lost,
            l.down_queue_drops,
            l.up_packets,
            l.up_lost,
            l.up_queue_drops
        )
    }

    /// The warning the reports print when the measured round trip is off the asked one by more than
    /// [`RTT_TOLERANCE`].
    pub fn rtt_warning(&self) -> Option<String> {
        let asked = self.asked.rtt_ms;
        let off = (self.measured_rtt_ms - asked).abs();
        (off > RTT_TOLERANCE * asked + RTT_SLACK_MS).then(|| {
            format!(
                "network {}: measured round trip {:.1} ms is more than {:.0} % off the asked {asked} ms",
                self.profile,
                self.measured_rtt_ms,
                RTT_TOLERANCE * 100.0
            )
        })
    }
}

/// Everything measured for one transport.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransportResult {
    /// Transport name.
    pub transport: Transport,
    /// Subscribers started.
    pub subscribers: u64,
    /// Subscribers that got a live subscription.
    pub subscribers_connected: u64,
    /// Subscribers live when the first event was published. Fewer than connected means the launch
    /// deadline passed first: the late ones are owed only what was published after they subscribed.
    #[serde(default)]
    pub subscribers_live_at_first_publish: Option<u64>,
    /// Events acknowledged by the server.
    pub published: u64,
    /// Publishes that failed.
    pub publish_failures: u64,
    /// Events owed to subscribers (per subscriber: events on its topics after its first cursor).
    pub expected: u64,
    /// Owed events received at least once.
    pub delivered: u64,
    /// Owed events never received.
    pub lost: u64,
    /// Of `lost`, those a gap notice named: lost, but announced (a restart of the embedded feed, an
    /// evicted replay); `lost - lost_announced` were lost silently.
    #[serde(default)]
    pub lost_announced: u64,
    /// Repeated receipts.
    pub duplicates: u64,
    /// First receipts below an id already received.
    pub out_of_order: u64,
    /// Receipts not owed.
    pub unexpected: u64,
    /// Gap notices received.
    pub gaps: u64,
    /// Latency from the intended send time, µs (measured window only).
    pub latency_us: Percentiles,
    /// Latency from the server's accept timestamp, µs (measured window only).
    pub latency_from_server_us: Percentiles,
    /// TCP connect time, µs.
    pub connect_us: Percentiles,
    /// TLS handshake after the connect, µs; absent in cleartext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshake_us: Option<Percentiles>,
    /// Of the TLS handshakes, those that resumed an earlier session (`[client] tls_resumption`); the
    /// rest were full. Absent in cleartext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_resumed_handshakes: Option<u64>,
    /// Request → response head or WebSocket upgrade, µs.
    pub first_byte_us: Percentiles,
    /// Connect start → cursor known (`subscribed` or first poll answer), µs.
    pub subscribed_us: Percentiles,
    /// A connection lost (error, refused connect; not churn) → the first event after it, µs; absent
    /// when no subscriber lost one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_us: Option<Percentiles>,
    /// The faults the run injected (`[faults]`), in order; empty without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultEvent>,
    /// Failed connects or subscribe requests.
    pub failed_connects: u64,
    /// Connections opened after the first (churn, errors).
    pub reconnects: u64,
    /// Errors on established connections.
    pub errors: u64,
    /// Heartbeat messages seen (NDJSON only; SSE comments and WebSocket pings are counted in bytes).
    pub heartbeats: u64,
    /// HTTP requests sent by subscribers.
    pub requests: u64,
    /// Poll answers without events.
    pub empty_polls: u64,
    /// Poll and long-poll requests abandoned before their answer (held when churn or the end cut them).
    pub requests_cut: u64,
    /// `requests / delivered`.
    pub requests_per_delivery: Option<f64>,
    /// Bytes subscribers read, at the socket.
    pub bytes_received: u64,
    /// Bytes subscribers wrote, at the socket.
    pub bytes_sent: u64,
    /// `(bytes_received + bytes_sent) / delivered`.
    pub bytes_per_delivery: Option<f64>,
    /// Publisher bytes written (not part of the per-delivery cost).
    pub publisher_bytes_sent: u64,
    /// Publisher bytes read.
    pub publisher_bytes_received: u64,
    /// Server RSS before subscribers connected.
    pub server_rss_before_bytes: Option<u64>,
    /// Server RSS once subscribers were connected, before publishing.
    pub server_rss_connected_bytes: Option<u64>,
    /// Largest server RSS sampled during the run.
    pub server_rss_peak_bytes: Option<u64>,
    /// Server RSS when the warm-up ended: the baseline of a long run's drift (a soak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_rss_after_warmup_bytes: Option<u64>,
    /// Server RSS at the end of the drain, subscribers still connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_rss_end_bytes: Option<u64>,
    /// Server open files when the warm-up ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_fds_after_warmup: Option<u64>,
    /// Server open files at the end of the drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_fds_end: Option<u64>,
    /// Samples of the servers' RSS through the measured window (every [`DRIFT_EVERY_S`], from the end of
    /// the warm-up to the end of the drain) behind the two trends below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_drift_samples: Option<u64>,
    /// Server RSS growth over the measured window by the least-squares line through every sample, % of
    /// the RSS after the warm-up: the trend, which one noisy end point cannot move much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_rss_slope_percent: Option<f64>,
    /// Server open files' growth over the measured window by the same least-squares line, files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_fds_slope: Option<f64>,
    /// Subscriber bytes at the socket per subscriber and hour while nothing was published (`idle_s`):
    /// heartbeats, empty polls, long-poll renewals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_bytes_per_hour: Option<f64>,
    /// The same in packets over the emulated link, both directions (what a phone's radio pays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_packets_per_hour: Option<f64>,
    /// `(connected − before) / subscribers_connected`.
    pub server_rss_per_connection_bytes: Option<f64>,
    /// Kernel memory of TCP sockets (socket slabs and buffers, machine-wide: [`crate::sockmem`]) before
    /// the subscribers connected.
    #[serde(default)]
    pub kernel_socket_bytes_before: Option<u64>,
    /// The same once they were connected.
    #[serde(default)]
    pub kernel_socket_bytes_connected: Option<u64>,
    /// `(connected − before) / subscribers_connected`: both ends of each loopback connection.
    #[serde(default)]
    pub kernel_socket_bytes_per_connection: Option<f64>,
    /// Server CPU time over publishing and drain, ms.
    pub server_cpu_ms: Option<f64>,
    /// `server_cpu_ms / delivered × 1000`.
    pub server_cpu_ms_per_1k_deliveries: Option<f64>,
    /// Server open file descriptors with subscribers connected.
    pub server_fds: Option<u64>,
    /// Load generator CPU over publishing and drain, percent of one core.
    pub loadgen_cpu_percent: f64,
    /// Load generator RSS with subscribers connected (None if `/proc` could not be read, e.g. out of
    /// file descriptors).
    pub loadgen_rss_bytes: Option<u64>,
    /// Load generator RSS growth per connected subscriber; clean for the first transport of a run only
    /// (later ones reuse memory the allocator kept).
    pub loadgen_rss_per_subscriber_bytes: Option<f64>,
    /// Packets the emulated link carried while this transport ran (subscriber traffic only: the
    /// publisher stands beside the server); absent on loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkCounts>,
    /// `link` packets, both directions, per delivery: what a phone's radio pays per event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets_per_delivery: Option<f64>,
    /// TCP segments the subscribers' sockets sent again (`TCP_INFO`'s `tcpi_total_retrans`, read as
    /// each socket closed): their requests, handshakes and frames lost on the way. The server's
    /// resends of events are not among them (they are its sockets' count). Absent in results from
    /// before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retransmits: Option<u64>,
    /// Load generator open file descriptors with subscribers connected (summed over its processes).
    pub loadgen_fds: u64,
    /// Load generator processes holding subscribers: 1, or the `--workers` count.
    #[serde(default = "one")]
    pub loadgen_workers: u64,
    /// 99th percentile of the load generator's scheduling lag (a 5 ms timer's oversleep), µs.
    pub loadgen_lag_p99_us: u64,
    /// Share of all cores busy over publishing and drain (`/proc/stat`: load generator, server, kernel and
    /// anything else), percent.
    pub machine_cpu_busy_percent: Option<f64>,
    /// Whether the load generator (or the machine) was saturated: the figures then describe it.
    pub loadgen_saturated: bool,
    /// Why it counts as saturated.
    pub loadgen_saturation_reasons: Vec<String>,
    /// Set when the machine was disturbed by something other than this run (lag while the load generator
    /// was nearly idle).
    pub noise: Option<String>,
    /// Publisher send start minus intended send time, µs.
    pub publish_lateness_us: Percentiles,
    /// Seconds from the first intended send to the end of the drain.
    pub window_s: f64,
    /// Figures of the simple models the report checks against.
    pub model: Model,
    /// Serialized latency histograms (HdrHistogram V2 deflate, base64).
    pub histograms: SerializedHistograms,
    /// goose's request metrics for this transport.
    pub goose: Vec<GooseRow>,
    /// The server's `/stats` at the end (its own counters), when readable (a cluster's are per node).
    pub server_stats: Option<serde_json::Value>,
    /// A cluster's nodes (`--cluster N`), each with its own share; empty for a single server, whose
    /// figures are the totals above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeResult>,
    /// A cluster's Redis backplane (not included in the server figures above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<BusResult>,
    /// Last error any subscriber or the publisher saw.
    pub last_error: Option<String>,
    /// Per metric name, its value in every run merged into this result, with median and range; empty
    /// for a single run.
    #[serde(default, skip_serializing_if = "Spreads::is_empty")]
    pub spread: Spreads,
    /// The scenario's thresholds for this transport, evaluated; empty when it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdOutcome>,
}

impl TransportResult {
    /// Owed events lost without a gap notice naming them: what "never a silent skip" forbids. (A
    /// merged or hand-edited result could claim more announced than lost; none is then silent.)
    pub fn lost_silently(&self) -> u64 {
        self.lost.saturating_sub(self.lost_announced)
    }
}

/// One fault a run injected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// `restart` (SIGTERM, then the same server started again on the same address), `kill` (SIGKILL,
    /// not started again) or `link down` (every packet between subscribers and server dropped).
    pub kind: String,
    /// The node (0-based; 0 for a single server); absent for a link fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<usize>,
    /// Seconds after the first event was due.
    pub at_s: f64,
    /// How long it was down, ms: until the new server listened (restart), or the link was up again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_ms: Option<f64>,
}

fn one_run() -> u32 {
    1
}

/// Model figures, computed from the scenario.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Model {
    /// Events each subscriber receives per second.
    pub events_per_subscriber_per_s: f64,
    /// Poll interval, ms.
    pub poll_interval_ms: f64,
    /// Polling's expected extra latency: half an interval, ms.
    pub poll_wait_ms: f64,
    /// Polling's expected requests per delivery: poll rate / event rate per subscriber.
    pub poll_requests_per_delivery: f64,
}

/// Latency histograms in HdrHistogram V2 deflate form, base64 (standard alphabet).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SerializedHistograms {
    /// From intended send time, µs.
    pub latency_us: String,
    /// From server timestamp, µs.
    pub latency_from_server_us: String,
    /// TCP connect time, µs (absent in results of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_us: Option<String>,
    /// TLS handshake, µs; absent in cleartext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshake_us: Option<String>,
    /// Request → response head or upgrade, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_us: Option<String>,
    /// Connect start → cursor known, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed_us: Option<String>,
    /// Connection lost → first event after it, µs; absent when none was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_us: Option<String>,
    /// Publisher send start minus intended send time, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_lateness_us: Option<String>,
}

fn one() -> u64 {
    1
}

/// One row of goose's request metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GooseRow {
    /// goose's key, `METHOD name`.
    pub name: String,
    /// Successful requests.
    pub success: u64,
    /// Failed requests.
    pub fail: u64,
    /// Mean time, µs.
    pub mean_us: f64,
    /// Largest time, µs.
    pub max_us: u64,
}

/// One node of a cluster, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeResult {
    /// Where it listened.
    pub addr: String,
    /// Subscribers whose first connection went to this node (later reconnects move on).
    pub subscribers: u64,
    /// RSS once every subscriber was connected, bytes.
    pub rss_connected_bytes: Option<u64>,
    /// RSS growth over the launch divided by this node's subscribers, bytes.
    pub rss_per_connection_bytes: Option<f64>,
    /// CPU time over the publishing window, ms.
    pub cpu_ms: Option<f64>,
    /// Open file descriptors once every subscriber was connected.
    pub fds: Option<u64>,
    /// The node's `/stats` at the end.
    pub stats: Option<serde_json::Value>,
}

/// The Redis backplane of a cluster, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusResult {
    /// Where it listened.
    pub addr: String,
    /// RSS at the end of the window, bytes.
    pub rss_bytes: Option<u64>,
    /// CPU time over the publishing window, ms.
    pub cpu_ms: Option<f64>,
}

/// A threshold evaluated against a transport's figures, as `result.json` carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdOutcome {
    /// The threshold, e.g. `latency_p99_ms < 50`.
    pub threshold: String,
    /// The measured value; `null` when unmeasurable (which fails).
    pub value: Option<f64>,
    /// Whether it held.
    pub passed: bool,
}

/// Formats µs as milliseconds with sensible precision.
pub fn ms(us: f64) -> String {
    let ms = us / 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// Formats an optional figure, `–` when absent.
pub fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

#[cfg(test)]
pub(crate) use fixture::test_result;
#[cfg(test)]
mod fixture;
