//! Scenario files: what workload to run, read from TOML in two stages.
//!
//! [`RawScenario`] mirrors the file exactly (serde, unknown fields refused); [`Scenario::validate`] turns it
//! into a [`Scenario`] that cannot hold an invalid value, or into a [`ScenarioError`] that names the field
//! and the reason. Everything downstream takes a `&Scenario` and never re-checks.
//!
//! A scenario describes one workload run once per transport:
//! - `subscribers` are started by goose at `launch_rate` per second; once all are subscribed the
//!   publisher runs for `warmup_s` (correctness counted, latency not) and then `duration_s` (measured);
//!   after the last publish, subscribers keep reading for `drain_s` so that in-flight events arrive and
//!   polling subscribers poll again.
//! - `idle_s`, when set, holds the subscribers connected with nothing published before the first event:
//!   what heartbeats, empty polls and long-poll renewals cost per subscriber-hour.
//! - the publisher is open-loop: event `i` is due at `start + i / publish_rate`, whatever the server does.
//! - `[fanout]` says which topics exist and who subscribes to what (see [`Fanout`]).
//! - `[churn]`, when present, makes every subscriber drop its connection and resume from its cursor
//!   (while events are published; churn stops for the drain, so the last events meet connected subscribers).
//! - `[target]`, when present, is the server to measure, described as a target profile
//!   ([`crate::profile`]), unless the command line names another.
//! - `[faults]`, when present, restarts the server (a deploy; node after node in a cluster), kills a node,
//!   or cuts the emulated link periodically while events are published (see [`Faults`]).

use std::path::Path;
use std::time::Duration;

use pushbench_common::{Topic, Transport};
use serde::{Deserialize, Serialize};

use crate::network::{NetworkSpec, Overrides};
use crate::profile::{Files, Profile, ProfileError};
use pushbench_report::gate::thresholds::{ThresholdError, Thresholds};

/// A scenario exactly as written in the TOML file; only syntax and types are checked here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// Short name, used in the output directory name.
    pub name: String,
    /// Free text shown in the report.
    #[serde(default)]
    pub description: String,
    /// Transports to run, in this order; all five when absent.
    #[serde(default)]
    pub transports: Option<Vec<Transport>>,
    /// Number of subscribers (goose users), each with its own connection.
    pub subscribers: u64,
    /// Subscribers started per second.
    pub launch_rate: f64,
    /// Seconds of publishing before measurement starts.
    #[serde(default)]
    pub warmup_s: f64,
    /// Seconds of measured publishing.
    pub duration_s: f64,
    /// Seconds subscribers keep reading after the last publish.
    #[serde(default = "default_drain_s")]
    pub drain_s: f64,
    /// Seconds the subscribers stay connected with nothing published, once all are subscribed and
    /// before the first event: what they cost while nothing happens. 0: no idle window.
    #[serde(default)]
    pub idle_s: f64,
    /// Events published per second, in total over all topics.
    pub publish_rate: f64,
    /// Size of each event's data in bytes.
    pub payload_bytes: u64,
    /// Who receives what.
    #[serde(default)]
    pub fanout: RawFanout,
    /// Interval polling settings.
    #[serde(default)]
    pub poll: RawPoll,
    /// Long-polling settings.
    #[serde(default)]
    pub longpoll: RawLongPoll,
    /// Reconnect churn; none when absent.
    #[serde(default)]
    pub churn: Option<RawChurn>,
    /// Options passed to each spawned server.
    #[serde(default)]
    pub server: RawServer,
    /// Network conditions between the subscribers and the server; loopback when absent.
    #[serde(default)]
    pub network: RawNetwork,
    /// How the clients connect.
    #[serde(default)]
    pub client: ClientOptions,
    /// Faults injected while events are published; none when absent.
    #[serde(default)]
    pub faults: RawFaults,
    /// Pass/fail thresholds, checked by [`Thresholds::from_table`].
    #[serde(default)]
    pub thresholds: toml::Table,
    /// The server to measure, described as a target profile ([`crate::profile`]); ours when absent.
    #[serde(default)]
    pub target: Option<toml::Table>,
}

fn default_drain_s() -> f64 {
    2.0
}

/// `[fanout]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFanout {
    /// `broadcast`, `multicast` or `unicast`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Number of topics for `multicast`.
    #[serde(default)]
    pub topics: Option<u64>,
    /// Topics each subscriber names in its one connection (`multicast` only).
    #[serde(default)]
    pub topics_per_subscriber: Option<u64>,
}

fn default_mode() -> String {
    "broadcast".to_owned()
}

impl Default for RawFanout {
    fn default() -> Self {
        Self {
            mode: default_mode(),
            topics: None,
            topics_per_subscriber: None,
        }
    }
}

/// `[poll]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoll {
    /// Milliseconds between the starts of two polls of one subscriber.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
}

fn default_interval_ms() -> u64 {
    1000
}

impl Default for RawPoll {
    fn default() -> Self {
        Self {
            interval_ms: default_interval_ms(),
        }
    }
}

/// `[longpoll]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLongPoll {
    /// How long the server may hold a long-poll (its `timeout_ms` parameter).
    #[serde(default = "default_longpoll_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_longpoll_timeout_ms() -> u64 {
    30_000
}

impl Default for RawLongPoll {
    fn default() -> Self {
        Self {
            timeout_ms: default_longpoll_timeout_ms(),
        }
    }
}

/// `[churn]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChurn {
    /// Length of one churn period in seconds.
    pub every_s: f64,
    /// Share of the subscribers (0 < share ≤ 1) that drop and resume in each period.
    pub share: f64,
}

/// `[faults]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFaults {
    /// Seconds after publishing starts at which the server restarts (every node in turn, with
    /// `--cluster`).
    pub restart_at_s: Option<f64>,
    /// Seconds between one node being back and the next node's restart (rolling restart).
    #[serde(default = "default_rolling_pause_s")]
    pub rolling_pause_s: f64,
    /// Seconds after publishing starts at which one node of the cluster is killed (SIGKILL) for good.
    pub kill_node_at_s: Option<f64>,
    /// The subscribers' link cut periodically (needs `[network]`).
    pub flap: Option<RawFlap>,
}

fn default_rolling_pause_s() -> f64 {
    1.0
}

/// `[faults] flap` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlap {
    /// Seconds from one cut to the next.
    pub every_s: f64,
    /// Seconds each cut lasts.
    pub down_s: f64,
}

/// Faults injected while events are published, timed from the first event's due time. Every one must
/// cost delivery nothing silently: subscribers reconnect and resume from their cursors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Restart the server (SIGTERM, then started again on its address); with `--cluster`, every node
    /// in turn, the next `rolling_pause` after the previous one listens again.
    #[serde(
        rename = "restart_at_s",
        with = "secs_opt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub restart_at: Option<Duration>,
    /// Pause between the nodes of a rolling restart.
    #[serde(rename = "rolling_pause_s", with = "secs")]
    pub rolling_pause: Duration,
    /// Kill one node (the last) with SIGKILL and leave it dead (`--cluster` only).
    #[serde(
        rename = "kill_node_at_s",
        with = "secs_opt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kill_node_at: Option<Duration>,
    /// Cut the emulated link between the subscribers and the server periodically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap: Option<Flap>,
}

impl Faults {
    /// Whether no fault is asked for (then the scenario's results leave the section out).
    pub fn is_none(&self) -> bool {
        self.restart_at.is_none() && self.kill_node_at.is_none() && self.flap.is_none()
    }
}

/// The link cut every `every` for `down`, from `every` after publishing starts: every packet between the
/// subscribers and the server is dropped meanwhile, so connections stall (TCP retransmits) or time out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Flap {
    /// From one cut to the next.
    #[serde(rename = "every_s", with = "secs")]
    pub every: Duration,
    /// How long each cut lasts.
    #[serde(rename = "down_s", with = "secs")]
    pub down: Duration,
}

/// Checks `[churn]`: a period of 0.1 s to a day, a share in (0, 1].
fn validate_churn(c: &RawChurn) -> Result<Churn, ScenarioError> {
    let every = seconds("churn.every_s", c.every_s, 0.1, 86_400.0)?;
    if !c.share.is_finite() || c.share <= 0.0 || c.share > 1.0 {
        return Err(invalid(
            "churn.share",
            format!("must be in (0, 1], got {}", c.share),
        ));
    }
    Ok(Churn {
        every,
        share: c.share,
    })
}

/// Checks `[faults]` against the publishing window (`publishing`) and the network.
fn validate_faults(
    raw: &RawFaults,
    publishing: Duration,
    network: &NetworkSpec,
) -> Result<Faults, ScenarioError> {
    let window = publishing.as_secs_f64();
    let within = |field: &'static str, at: Option<f64>| {
        at.map(|at| {
            seconds(field, at, 0.0, window).map_err(|_| {
                invalid(
                    field,
                    format!("must be within the publishing window [0, {window}] s, got {at}"),
                )
            })
        })
        .transpose()
    };
    let flap = match &raw.flap {
        None => None,
        Some(f) => {
            let every = seconds("faults.flap.every_s", f.every_s, 0.5, window.max(0.5))?;
            let down = seconds("faults.flap.down_s", f.down_s, 0.05, 3_600.0)?;
            if down >= every {
                return Err(invalid(
                    "faults.flap.down_s",
                    format!(
                        "must be shorter than every_s ({}), got {}",
                        f.every_s, f.down_s
                    ),
                ));
            }
            if network.is_loopback() {
                return Err(invalid(
                    "faults.flap",
                    "cuts the emulated link: needs a [network] other than loopback (or run --network)",
                ));
            }
            Some(Flap { every, down })
        }
    };
    Ok(Faults {
        restart_at: within("faults.restart_at_s", raw.restart_at_s)?,
        rolling_pause: seconds("faults.rolling_pause_s", raw.rolling_pause_s, 0.0, 600.0)?,
        kill_node_at: within("faults.kill_node_at_s", raw.kill_node_at_s)?,
        flap,
    })
}

/// `[client]`: how subscribers and the publisher connect to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientOptions {
    /// TLS (a spawned server or a peer gets a certificate made for the run, which the clients trust);
    /// cleartext when false.
    #[serde(default)]
    pub tls: bool,
    /// The subscribers' HTTP version: `"1.1"`, or `"2"` (over TLS only, as browsers speak it; ALPN
    /// offers `h2` alone, so a server without it fails the handshake instead of being measured on
    /// HTTP/1.1). The publisher stays on HTTP/1.1: it stands for an application back end.
    #[serde(default, skip_serializing_if = "HttpVersion::is_default")]
    pub http: HttpVersion,
    /// Subscribers multiplexed on one h2 connection, as a browser tab's EventSources share one (1 to
    /// [`MAX_SUBSCRIBERS_PER_CONNECTION`]; more than 1 needs `http = "2"`).
    #[serde(
        default = "one_per_connection",
        skip_serializing_if = "is_one_per_connection"
    )]
    pub subscribers_per_connection: u32,
    /// Whether a reconnect resumes its TLS session from a ticket of an earlier handshake (abbreviated
    /// handshake, no certificate), as browsers do; false makes every handshake a full one.
    #[serde(default = "resume", skip_serializing_if = "is_resume")]
    pub tls_resumption: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            tls: false,
            http: HttpVersion::default(),
            subscribers_per_connection: 1,
            tls_resumption: true,
        }
    }
}

fn resume() -> bool {
    true
}

fn is_resume(resume: &bool) -> bool {
    *resume
}

/// Most subscribers on one h2 connection: the spawned server's default `--h2-max-streams` (a stream
/// past the server's limit would wait, unsubscribed, for one to close).
pub const MAX_SUBSCRIBERS_PER_CONNECTION: u32 = 256;

fn one_per_connection() -> u32 {
    1
}

fn is_one_per_connection(n: &u32) -> bool {
    *n == 1
}

/// The HTTP version subscribers speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpVersion {
    /// HTTP/1.1: a connection per subscriber.
    #[default]
    #[serde(rename = "1.1")]
    Http1,
    /// HTTP/2 over TLS: streams on shared connections; WebSocket by extended CONNECT (RFC 8441).
    #[serde(rename = "2")]
    Http2,
}

impl HttpVersion {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl ClientOptions {
    /// Whether these are the defaults (cleartext HTTP/1.1), which results leave out.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks `[client]` (also after the command line's overrides): h2 only over TLS, several
    /// subscribers per connection only on h2.
    pub fn validated(self) -> Result<Self, ScenarioError> {
        if self.http == HttpVersion::Http2 && !self.tls {
            return Err(invalid(
                "client.http",
                "\"2\" needs tls = true (browsers speak h2 only over TLS, and so does the server)",
            ));
        }
        let n = self.subscribers_per_connection;
        if n == 0 || n > MAX_SUBSCRIBERS_PER_CONNECTION {
            return Err(invalid(
                "client.subscribers_per_connection",
                format!("must be in 1..={MAX_SUBSCRIBERS_PER_CONNECTION}, got {n}"),
            ));
        }
        if !self.tls_resumption && !self.tls {
            return Err(invalid(
                "client.tls_resumption",
                "false needs tls = true (there is no TLS session to resume in cleartext)",
            ));
        }
        if n > 1 && self.http != HttpVersion::Http2 {
            return Err(invalid(
                "client.subscribers_per_connection",
                "more than 1 needs http = \"2\" (HTTP/1.1 holds one subscription per connection)",
            ));
        }
        Ok(self)
    }
}

/// `[server]` as written: options for the spawned `pushbench-server`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// `--heartbeat-ms`.
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    /// `--replay-events`.
    #[serde(default)]
    pub replay_events: Option<u64>,
    /// `--max-connections`.
    #[serde(default)]
    pub max_connections: Option<u64>,
    /// `--write-interval-ms`: write pacing (0 to 1000; the server checks the range).
    #[serde(default)]
    pub write_interval_ms: Option<u64>,
}

/// `[network]` as written: a preset and/or the fields that override it ([`NetworkSpec::resolve`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// A preset's name (`pushbench run --help` lists them).
    #[serde(default)]
    pub profile: Option<String>,
    /// Round trip added, ms, split over both directions.
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    /// Delay variation each way, ms.
    #[serde(default)]
    pub jitter_ms: Option<f64>,
    /// Packets lost per direction, percent.
    #[serde(default)]
    pub loss_pct: Option<f64>,
    /// Server to subscribers, kbit/s; 0 = unlimited.
    #[serde(default)]
    pub down_kbit: Option<u64>,
    /// Subscribers to server, kbit/s; 0 = unlimited.
    #[serde(default)]
    pub up_kbit: Option<u64>,
}

impl RawNetwork {
    /// The fields as overrides of a preset.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            rtt_ms: self.rtt_ms,
            jitter_ms: self.jitter_ms,
            loss_pct: self.loss_pct,
            down_kbit: self.down_kbit,
            up_kbit: self.up_kbit,
        }
    }
}

/// Who receives which events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Fanout {
    /// One topic, `all`; every subscriber receives every event.
    Broadcast,
    /// `topics` topics `room.0`…; each subscriber names `per_subscriber` of them; events go round-robin.
    Multicast {
        /// Number of topics.
        topics: u64,
        /// Topics per subscriber.
        per_subscriber: u64,
    },
    /// One topic per subscriber, `user.<i>`; events go round-robin over the subscribers.
    Unicast,
}

/// Reconnect churn: every subscriber drops its connection every `every / share` and resumes from its
/// cursor; phases are spread so that in any `every` window about `share` of the subscribers reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Churn {
    /// Length of one churn period.
    #[serde(rename = "every_s", with = "secs")]
    pub every: Duration,
    /// Share of the subscribers reconnecting per period.
    pub share: f64,
}

impl Churn {
    /// Time between two reconnects of one subscriber.
    pub fn per_subscriber_interval(&self) -> Duration {
        self.every.div_f64(self.share)
    }
}

/// Options for a spawned server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerOptions {
    /// `--heartbeat-ms`.
    pub heartbeat_ms: Option<u64>,
    /// `--replay-events`.
    pub replay_events: Option<u64>,
    /// `--max-connections`.
    pub max_connections: Option<u64>,
    /// `--write-interval-ms`. Left out of results when unset, so that results recorded before it existed
    /// still compare as runs of the same scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_interval_ms: Option<u64>,
}

impl ServerOptions {
    /// Command-line arguments for `pushbench-server`.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let flags = [
            ("--heartbeat-ms", self.heartbeat_ms),
            ("--replay-events", self.replay_events),
            ("--max-connections", self.max_connections),
            ("--write-interval-ms", self.write_interval_ms),
        ];
        for (flag, value) in flags {
            if let Some(value) = value {
                args.push(flag.to_owned());
                args.push(value.to_string());
            }
        }
        args
    }

    /// The keep-alive interval our server uses in this scenario (`--heartbeat-ms` or its default): a peer
    /// is given the same, so that idle subscribers cost both the same keep-alives.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(
            self.heartbeat_ms
                .unwrap_or(pushbench_common::wire::DEFAULT_HEARTBEAT_MS),
        )
    }
}

/// A validated scenario. It also deserializes from its own JSON form, which is how `--workers` hands it
/// to the worker processes (thresholds stay with the coordinator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Transports to run, in order, without repeats.
    pub transports: Vec<Transport>,
    /// Number of subscribers.
    pub subscribers: u64,
    /// Subscribers started per second.
    pub launch_rate: f64,
    /// Publishing before measurement.
    #[serde(rename = "warmup_s", with = "secs")]
    pub warmup: Duration,
    /// Measured publishing.
    #[serde(rename = "duration_s", with = "secs")]
    pub duration: Duration,
    /// Reading after the last publish.
    #[serde(rename = "drain_s", with = "secs")]
    pub drain: Duration,
    /// Connected with nothing published, before the first event (idle cost); left out of results when
    /// zero, so that results recorded before it existed compare as runs of the same scenario.
    #[serde(
        rename = "idle_s",
        with = "secs",
        default,
        skip_serializing_if = "Duration::is_zero"
    )]
    pub idle: Duration,
    /// Events per second over all topics.
    pub publish_rate: f64,
    /// Bytes of data per event.
    pub payload_bytes: usize,
    /// Who receives what.
    pub fanout: Fanout,
    /// Interval between polls.
    #[serde(rename = "poll_interval_ms", with = "millis")]
    pub poll_interval: Duration,
    /// Long-poll hold.
    #[serde(rename = "longpoll_timeout_ms", with = "millis")]
    pub longpoll_timeout: Duration,
    /// Reconnect churn.
    pub churn: Option<Churn>,
    /// Options of each spawned server.
    pub server: ServerOptions,
    /// The network between the subscribers and the server. Left out of results on loopback, so that
    /// results recorded before it existed still compare as runs of the same scenario.
    #[serde(default, skip_serializing_if = "NetworkSpec::is_loopback")]
    pub network: NetworkSpec,
    /// How the clients connect; left out of results when it is the default (cleartext), for the same
    /// reason.
    #[serde(default, skip_serializing_if = "ClientOptions::is_default")]
    pub client: ClientOptions,
    /// Faults injected while publishing; left out of results when there are none.
    #[serde(default, skip_serializing_if = "Faults::is_none")]
    pub faults: Faults,
    /// Pass/fail conditions `pushbench run` checks (not part of the workload).
    #[serde(skip_serializing_if = "Thresholds::is_empty", skip_deserializing)]
    pub thresholds: Thresholds,
    /// `[target]`: the server this scenario measures unless the command line names one (not part of the
    /// workload: results name the server in their own field).
    #[serde(skip)]
    pub target: Option<std::sync::Arc<Profile>>,
}

/// Smallest payload: the intended send time (19 digits) and a space are embedded in every event.
pub const MIN_PAYLOAD: usize = 20;
/// Largest payload: the server's default `--max-payload`.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Drain beyond one poll interval, so that the poll after the last publish completes before the stop.
pub const POLL_DRAIN_MARGIN: Duration = Duration::from_millis(250);
/// Largest long-poll hold the server accepts.
pub const MAX_LONGPOLL_MS: u64 = 120_000;

/// Why a scenario was refused: always names the field.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The TOML did not parse or had unknown or mistyped fields.
    #[error("scenario {path} is not valid TOML for a scenario: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// What toml reported, with the field and line.
        message: String,
    },
    /// A threshold was refused.
    #[error(transparent)]
    Threshold(#[from] ThresholdError),
    /// `[target]` was refused.
    #[error(transparent)]
    Target(#[from] ProfileError),
    /// A field had a value outside its allowed range.
    #[error("scenario field `{field}`: {reason}")]
    Invalid {
        /// Dotted field name, e.g. `fanout.topics`.
        field: &'static str,
        /// Why the value is refused.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Checks that `value` is a finite number of seconds within `[min, max]`.
fn seconds(field: &'static str, value: f64, min: f64, max: f64) -> Result<Duration, ScenarioError> {
    if !value.is_finite() || value < min || value > max {
        return Err(invalid(
            field,
            format!("must be a number of seconds in [{min}, {max}], got {value}"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ScenarioError::Read {
            path: shown.clone(),
            error,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse_in(&text, &shown, dir)
    }

    /// Parses and validates scenario TOML; `origin` names it in errors; files `[target]` names are read
    /// from the current directory.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        Self::parse_in(text, origin, Path::new("."))
    }

    fn parse_in(text: &str, origin: &str, dir: &Path) -> Result<Self, ScenarioError> {
        let mut raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError::Syntax {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        let target = raw
            .target
            .take()
            .map(|table| Profile::from_table(table, &format!("{origin} [target]"), Files::Dir(dir)))
            .transpose()?;
        Ok(Self {
            target: target.map(std::sync::Arc::new),
            ..Self::validate(raw)?
        })
    }

    /// Second stage: range and consistency checks (`[target]` is read by [`Scenario::parse`], where the
    /// files it names can be found).
    pub fn validate(raw: RawScenario) -> Result<Self, ScenarioError> {
        let name = raw.name.trim().to_owned();
        let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if name.is_empty() || name.len() > 64 || !name.chars().all(name_ok) {
            return Err(invalid(
                "name",
                "must be 1–64 characters of A-Z a-z 0-9 - _ . (it names the output directory)",
            ));
        }
        let transports = match raw.transports {
            None => Transport::ALL.to_vec(),
            Some(list) => {
                if list.is_empty() {
                    return Err(invalid("transports", "must name at least one transport"));
                }
                let mut seen = Vec::new();
                for t in list {
                    if seen.contains(&t) {
                        return Err(invalid("transports", format!("{t} is listed twice")));
                    }
                    seen.push(t);
                }
                seen
            }
        };
        if raw.subscribers == 0 || raw.subscribers > 100_000 {
            return Err(invalid(
                "subscribers",
                format!("must be in 1..=100000, got {}", raw.subscribers),
            ));
        }
        if !raw.launch_rate.is_finite() || raw.launch_rate <= 0.0 || raw.launch_rate > 100_000.0 {
            return Err(invalid(
                "launch_rate",
                format!(
                    "must be in (0, 100000] subscribers per second, got {}",
                    raw.launch_rate
                ),
            ));
        }
        let warmup = seconds("warmup_s", raw.warmup_s, 0.0, 3600.0)?;
        let duration = seconds("duration_s", raw.duration_s, 0.1, 86_400.0)?;
        let drain = seconds("drain_s", raw.drain_s, 0.0, 600.0)?;
        if !raw.publish_rate.is_finite()
            || raw.publish_rate <= 0.0
            || raw.publish_rate > 1_000_000.0
        {
            return Err(invalid(
                "publish_rate",
                format!(
                    "must be in (0, 1000000] events per second, got {}",
                    raw.publish_rate
                ),
            ));
        }
        let payload_bytes = usize::try_from(raw.payload_bytes).unwrap_or(usize::MAX);
        if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&payload_bytes) {
            return Err(invalid(
                "payload_bytes",
                format!(
                    "must be in {MIN_PAYLOAD}..={MAX_PAYLOAD} (each event carries its intended send time), got {}",
                    raw.payload_bytes
                ),
            ));
        }
        let fanout = validate_fanout(&raw.fanout, raw.subscribers)?;
        if raw.poll.interval_ms == 0 || raw.poll.interval_ms > 600_000 {
            return Err(invalid(
                "poll.interval_ms",
                format!("must be in 1..=600000, got {}", raw.poll.interval_ms),
            ));
        }
        let poll_interval = Duration::from_millis(raw.poll.interval_ms);
        if transports.contains(&Transport::Poll) && drain < poll_interval + POLL_DRAIN_MARGIN {
            return Err(invalid(
                "drain_s",
                format!(
                    "must be at least poll.interval_ms + {} ms ({} ms) so that every poller completes a poll after the last publish",
                    POLL_DRAIN_MARGIN.as_millis(),
                    (poll_interval + POLL_DRAIN_MARGIN).as_millis()
                ),
            ));
        }
        if raw.longpoll.timeout_ms == 0 || raw.longpoll.timeout_ms > MAX_LONGPOLL_MS {
            return Err(invalid(
                "longpoll.timeout_ms",
                format!(
                    "must be in 1..={MAX_LONGPOLL_MS}, got {}",
                    raw.longpoll.timeout_ms
                ),
            ));
        }
        let churn = raw.churn.as_ref().map(validate_churn).transpose()?;
        if let Some(hb) = raw.server.heartbeat_ms
            && hb == 0
        {
            return Err(invalid("server.heartbeat_ms", "must be at least 1"));
        }
        if raw.server.replay_events == Some(0) {
            return Err(invalid("server.replay_events", "must be at least 1"));
        }
        if let Some(max) = raw.server.max_connections
            && max == 0
        {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        let network = NetworkSpec::resolve(raw.network.profile.as_deref(), raw.network.overrides())
            .map_err(|reason| invalid("network", reason))?;
        let faults = validate_faults(&raw.faults, warmup + duration, &network)?;
        let idle = seconds("idle_s", raw.idle_s, 0.0, 3_600.0)?;
        Ok(Self {
            name,
            description: raw.description.trim().to_owned(),
            transports,
            subscribers: raw.subscribers,
            launch_rate: raw.launch_rate,
            warmup,
            duration,
            drain,
            idle,
            publish_rate: raw.publish_rate,
            payload_bytes,
            fanout,
            poll_interval,
            longpoll_timeout: Duration::from_millis(raw.longpoll.timeout_ms),
            churn,
            server: ServerOptions {
                heartbeat_ms: raw.server.heartbeat_ms,
                replay_events: raw.server.replay_events,
                max_connections: raw.server.max_connections,
                write_interval_ms: raw.server.write_interval_ms,
            },
            network,
            client: raw.client.validated()?,
            faults,
            thresholds: Thresholds::from_table(&raw.thresholds)?,
            target: None,
        })
    }

    /// Number of distinct topics events are published to.
    pub fn topic_count(&self) -> u64 {
        match self.fanout {
            Fanout::Broadcast => 1,
            Fanout::Multicast { topics, .. } => topics,
            Fanout::Unicast => self.subscribers,
        }
    }

    /// Name of topic number `index` (`0..topic_count()`).
    pub fn topic(&self, index: u64) -> Topic {
        let name = match self.fanout {
            Fanout::Broadcast => "all".to_owned(),
            Fanout::Multicast { .. } => format!("room.{index}"),
            Fanout::Unicast => format!("user.{index}"),
        };
        Topic::parse(&name).expect("generated topic names use the topic charset")
    }

    /// Indices of the topics subscriber `subscriber` names, ascending and distinct.
    pub fn topics_of(&self, subscriber: u64) -> Vec<u64> {
        match self.fanout {
            Fanout::Broadcast => vec![0],
            Fanout::Multicast {
                topics,
                per_subscriber,
            } => {
                // Consecutive topics starting at a per-subscriber offset: every topic gets the same number
                // of subscribers (± 1) and no subscriber names a topic twice (per_subscriber ≤ topics).
                let mut list: Vec<u64> = (0..per_subscriber)
                    .map(|j| (subscriber * per_subscriber + j) % topics)
                    .collect();
                list.sort_unstable();
                list
            }
            Fanout::Unicast => vec![subscriber],
        }
    }

    /// Events each subscriber receives per second on average: the model behind requests per delivery.
    pub fn events_per_subscriber_per_s(&self) -> f64 {
        match self.fanout {
            Fanout::Broadcast => self.publish_rate,
            Fanout::Multicast {
                topics,
                per_subscriber,
            } => self.publish_rate * per_subscriber as f64 / topics as f64,
            Fanout::Unicast => self.publish_rate / self.subscribers as f64,
        }
    }

    /// Number of events the publisher sends (warm-up plus measured window).
    pub fn events_to_publish(&self) -> u64 {
        ((self.warmup + self.duration).as_secs_f64() * self.publish_rate)
            .round()
            .max(1.0) as u64
    }
}

fn validate_fanout(raw: &RawFanout, subscribers: u64) -> Result<Fanout, ScenarioError> {
    match raw.mode.as_str() {
        "broadcast" | "unicast" => {
            if raw.topics.is_some() {
                return Err(invalid(
                    "fanout.topics",
                    format!("only applies to mode = \"multicast\", not {:?}", raw.mode),
                ));
            }
            if raw.topics_per_subscriber.is_some_and(|n| n != 1) {
                return Err(invalid(
                    "fanout.topics_per_subscriber",
                    format!("must be 1 with mode = {:?}", raw.mode),
                ));
            }
            Ok(if raw.mode == "broadcast" {
                Fanout::Broadcast
            } else {
                Fanout::Unicast
            })
        }
        "multicast" => {
            let topics = raw
                .topics
                .ok_or_else(|| invalid("fanout.topics", "is required with mode = \"multicast\""))?;
            if !(2..=1_000_000).contains(&topics) {
                return Err(invalid(
                    "fanout.topics",
                    format!("must be in 2..=1000000, got {topics}"),
                ));
            }
            let per_subscriber = raw.topics_per_subscriber.unwrap_or(1);
            if per_subscriber == 0 || per_subscriber > topics || per_subscriber > 64 {
                return Err(invalid(
                    "fanout.topics_per_subscriber",
                    format!("must be in 1..=min(fanout.topics, 64), got {per_subscriber}"),
                ));
            }
            if topics > subscribers * per_subscriber {
                return Err(invalid(
                    "fanout.topics",
                    format!(
                        "{topics} topics but only {} subscriptions: some topics would have no subscriber",
                        subscribers * per_subscriber
                    ),
                ));
            }
            Ok(Fanout::Multicast {
                topics,
                per_subscriber,
            })
        }
        other => Err(invalid(
            "fanout.mode",
            format!("must be \"broadcast\", \"multicast\" or \"unicast\", got {other:?}"),
        )),
    }
}

/// Serializes a [`Duration`] as fractional seconds.
mod secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let secs: f64 = serde::Deserialize::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// Serializes an optional [`Duration`] as seconds (absent when `None`).
mod secs_opt {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let secs: Option<f64> = serde::Deserialize::deserialize(d)?;
        secs.map(|s| Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Serializes a [`Duration`] as whole milliseconds.
mod millis {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(serde::Deserialize::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_reads_back_from_its_json_form() {
        let mut scenario = Scenario::parse(
            &format!("{GOOD}\n[churn]\nevery_s = 2.5\nshare = 0.5\n[fanout]\nmode = \"multicast\"\ntopics = 4\ntopics_per_subscriber = 2\n"),
            "t",
        )
        .unwrap();
        scenario.thresholds = Thresholds::default();
        let json = serde_json::to_string(&scenario).unwrap();
        let back: Scenario = serde_json::from_str(&json).unwrap();
        assert_eq!(back, scenario);
    }

    #[test]
    fn a_network_section_names_a_preset_overrides_it_and_reads_back() {
        let mut scenario = Scenario::parse(
            &format!("{GOOD}\n[network]\nprofile = \"4g\"\nrtt_ms = 100\n"),
            "t",
        )
        .unwrap();
        let c = scenario.network.conditions.unwrap();
        assert_eq!(
            (
                scenario.network.profile.as_str(),
                c.rtt.as_millis(),
                c.loss_pct
            ),
            ("4g", 100, 0.5)
        );
        scenario.thresholds = Thresholds::default();
        let json = serde_json::to_value(&scenario).unwrap();
        assert_eq!(json["network"]["rtt_ms"], 100.0);
        assert_eq!(serde_json::from_value::<Scenario>(json).unwrap(), scenario);

        let loopback = Scenario::parse(GOOD, "t").unwrap();
        assert!(loopback.network.is_loopback());
        assert!(
            serde_json::to_value(&loopback)
                .unwrap()
                .get("network")
                .is_none(),
            "a loopback scenario serializes as before the section existed"
        );
        assert!(
            refused("[network]\nprofile = \"5g\"").contains("`network`: unknown network \"5g\"")
        );
        assert!(refused("[network]\nloss_pct = 120").contains("loss_pct"));
        assert!(refused("[network]\nlatency = 3").contains("unknown field"));
    }

    #[test]
    fn the_client_section_asks_for_h2_only_over_tls_and_shares_connections_only_on_h2() {
        let mut scenario = Scenario::parse(
            &format!(
                "{GOOD}\n[client]\ntls = true\nhttp = \"2\"\nsubscribers_per_connection = 8\n"
            ),
            "t",
        )
        .unwrap();
        assert_eq!(
            scenario.client,
            ClientOptions {
                tls: true,
                http: HttpVersion::Http2,
                subscribers_per_connection: 8,
                tls_resumption: true,
            }
        );
        scenario.thresholds = Thresholds::default();
        let json = serde_json::to_value(&scenario).unwrap();
        assert_eq!(json["client"]["http"], "2");
        assert_eq!(serde_json::from_value::<Scenario>(json).unwrap(), scenario);
        let tls_only = serde_json::to_value(
            Scenario::parse(&format!("{GOOD}\n[client]\ntls = true\n"), "t").unwrap(),
        )
        .unwrap();
        assert_eq!(
            tls_only["client"],
            serde_json::json!({ "tls": true }),
            "HTTP/1.1 with a connection each serializes as before the fields existed"
        );

        assert!(refused("[client]\nhttp = \"2\"").contains("needs tls = true"));
        assert!(refused("[client]\ntls_resumption = false").contains("no TLS session to resume"));
        let full = Scenario::parse(
            &format!("{GOOD}\n[client]\ntls = true\ntls_resumption = false\n"),
            "t",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&full).unwrap()["client"],
            serde_json::json!({ "tls": true, "tls_resumption": false })
        );
        assert!(refused("[client]\nhttp = \"3\"").contains("unknown variant"));
        assert!(
            refused("[client]\ntls = true\nsubscribers_per_connection = 4")
                .contains("more than 1 needs http = \"2\"")
        );
        for n in [0, MAX_SUBSCRIBERS_PER_CONNECTION + 1] {
            assert!(
                refused(&format!(
                    "[client]\ntls = true\nhttp = \"2\"\nsubscribers_per_connection = {n}"
                ))
                .contains("must be in 1..=256"),
                "{n}"
            );
        }
    }

    const GOOD: &str = r#"
        name = "t"
        subscribers = 10
        launch_rate = 100
        duration_s = 1
        publish_rate = 10
        payload_bytes = 64
    "#;

    fn refused(extra: &str) -> String {
        let text = format!("{GOOD}\n{extra}");
        Scenario::parse(&text, "test.toml")
            .expect_err("should be refused")
            .to_string()
    }

    fn refused_replacing(from: &str, to: &str) -> String {
        Scenario::parse(&GOOD.replace(from, to), "test.toml")
            .expect_err("should be refused")
            .to_string()
    }

    #[test]
    fn faults_read_back_from_json_and_are_checked_against_the_window_and_the_network() {
        let text = format!(
            "{GOOD}\n[network]\nprofile = \"wifi\"\n[faults]\nrestart_at_s = 0.5\nflap = {{ every_s = 0.6, down_s = 0.2 }}\n"
        );
        let s = Scenario::parse(&text, "t").unwrap();
        assert_eq!(s.faults.restart_at, Some(Duration::from_millis(500)));
        assert_eq!(s.faults.rolling_pause, Duration::from_secs(1));
        assert_eq!(s.faults.flap.unwrap().down, Duration::from_millis(200));
        let back: Scenario = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back.faults, s.faults);
        // Without faults the section stays out of results.
        let plain = serde_json::to_value(Scenario::parse(GOOD, "t").unwrap()).unwrap();
        assert!(plain.get("faults").is_none());
        // The window is warm-up (0) plus duration (1 s).
        assert!(refused("[faults]\nrestart_at_s = 2").contains("publishing window"));
        assert!(refused("[faults]\nkill_node_at_s = -1").contains("faults.kill_node_at_s"));
        assert!(refused("[faults]\nflap = { every_s = 1, down_s = 0.5 }").contains("[network]"));
        assert!(
            refused("[network]\nprofile = \"wifi\"\n[faults]\nflap = { every_s = 1, down_s = 1 }")
                .contains("shorter than every_s")
        );
        assert!(refused("[faults]\nrestart = 1").contains("unknown field"));
    }

    #[test]
    fn minimal_scenario_gets_defaults() {
        let s = Scenario::parse(GOOD, "test.toml").unwrap();
        assert_eq!(s.transports, Transport::ALL.to_vec());
        assert_eq!(s.fanout, Fanout::Broadcast);
        assert_eq!(s.poll_interval, Duration::from_secs(1));
        assert_eq!(s.drain, Duration::from_secs(2));
        assert_eq!(s.events_to_publish(), 10);
        assert_eq!(s.topic(0).as_str(), "all");
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases = [
            (refused("unknown_field = 1"), "unknown_field"),
            (
                refused("transports = [\"carrier-pigeon\"]"),
                "carrier-pigeon",
            ),
            (refused("transports = []"), "`transports`"),
            (refused("transports = [\"ws\", \"ws\"]"), "`transports`"),
            (
                refused_replacing("subscribers = 10", "subscribers = 0"),
                "`subscribers`",
            ),
            (
                refused_replacing("launch_rate = 100", "launch_rate = -1"),
                "`launch_rate`",
            ),
            (
                refused_replacing("duration_s = 1", "duration_s = 0"),
                "`duration_s`",
            ),
            (refused("warmup_s = -2"), "`warmup_s`"),
            (
                refused_replacing("publish_rate = 10", "publish_rate = 0"),
                "`publish_rate`",
            ),
            (
                refused_replacing("payload_bytes = 64", "payload_bytes = 5"),
                "`payload_bytes`",
            ),
            (
                refused_replacing("name = \"t\"", "name = \"a/b\""),
                "`name`",
            ),
            (refused("[fanout]\nmode = \"anycast\""), "`fanout.mode`"),
            (refused("[fanout]\nmode = \"multicast\""), "`fanout.topics`"),
            (
                refused("[fanout]\nmode = \"multicast\"\ntopics = 4\ntopics_per_subscriber = 5"),
                "`fanout.topics_per_subscriber`",
            ),
            (
                refused("[fanout]\nmode = \"broadcast\"\ntopics = 3"),
                "`fanout.topics`",
            ),
            (refused("[poll]\ninterval_ms = 0"), "`poll.interval_ms`"),
            (
                refused("drain_s = 0.5\n[poll]\ninterval_ms = 1000"),
                "`drain_s`",
            ),
            (
                refused("[longpoll]\ntimeout_ms = 999999"),
                "`longpoll.timeout_ms`",
            ),
            (
                refused("[churn]\nevery_s = 1\nshare = 1.5"),
                "`churn.share`",
            ),
            (refused("[churn]\nshare = 0.5"), "every_s"),
            (
                refused("[server]\nheartbeat_ms = 0"),
                "`server.heartbeat_ms`",
            ),
            (
                refused("[thresholds]\nlatency_p98_ms = \"< 5\""),
                "`thresholds.latency_p98_ms`",
            ),
        ];
        for (message, field) in cases {
            assert!(message.contains(field), "{message:?} should name {field}");
        }
    }

    #[test]
    fn server_write_interval_is_passed_to_the_server_and_recorded_only_when_set() {
        let plain = Scenario::parse(GOOD, "t").unwrap();
        assert!(
            !plain
                .server
                .args()
                .contains(&"--write-interval-ms".to_owned())
        );
        assert!(serde_json::to_value(&plain.server).unwrap()["write_interval_ms"].is_null());
        let paced =
            Scenario::parse(&format!("{GOOD}\n[server]\nwrite_interval_ms = 20"), "t").unwrap();
        assert_eq!(paced.server.args(), ["--write-interval-ms", "20"]);
        assert_eq!(
            serde_json::to_value(&paced.server).unwrap()["write_interval_ms"],
            20
        );
    }

    #[test]
    fn heartbeat_is_the_scenarios_or_the_servers_default() {
        let plain = Scenario::parse(GOOD, "t").unwrap();
        assert_eq!(
            plain.server.heartbeat(),
            Duration::from_millis(pushbench_common::wire::DEFAULT_HEARTBEAT_MS)
        );
        let set = Scenario::parse(&format!("{GOOD}\n[server]\nheartbeat_ms = 1500"), "t").unwrap();
        assert_eq!(set.server.heartbeat(), Duration::from_millis(1500));
    }

    #[test]
    fn multicast_spreads_subscribers_over_topics() {
        let text = format!(
            "{GOOD}\n[fanout]\nmode = \"multicast\"\ntopics = 4\ntopics_per_subscriber = 2"
        );
        let s = Scenario::parse(&text, "t").unwrap();
        assert_eq!(s.topics_of(0), vec![0, 1]);
        assert_eq!(s.topics_of(1), vec![2, 3]);
        assert_eq!(s.topics_of(2), vec![0, 1]);
        assert_eq!(s.topic(3).as_str(), "room.3");
        assert!((s.events_per_subscriber_per_s() - 5.0).abs() < 1e-9);
    }

    #[test]
    fn churn_interval_follows_share() {
        let s =
            Scenario::parse(&format!("{GOOD}\n[churn]\nevery_s = 2\nshare = 0.25"), "t").unwrap();
        assert_eq!(
            s.churn.unwrap().per_subscriber_interval(),
            Duration::from_secs(8)
        );
    }

    #[test]
    fn shipped_scenarios_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                count += 1;
            }
        }
        assert!(
            count >= 5,
            "expected at least five shipped scenarios, found {count}"
        );
    }
}
