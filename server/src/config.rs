//! Server configuration: the command line as parsed by clap ([`Args`]), then checked into a [`Config`]
//! that cannot hold an invalid value.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use pushbench_common::Topic;

use crate::feed::{BatchLimits, ReplayLimits};
use crate::tls::TlsSource;

/// Command line of `pushbench-server`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pushbench-server",
    version,
    about = "One event feed over interval polling, long-polling, chunked streaming, SSE and WebSocket"
)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port; the address is printed once ready).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Replay buffer: most events held for resume.
    #[arg(long, default_value_t = 10_000)]
    pub replay_events: usize,
    /// Replay buffer: most bytes held (encoded events plus bookkeeping).
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub replay_bytes: usize,
    /// Largest accepted event body in bytes (larger publishes get 413).
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_payload: usize,
    /// When set, publishing requires `Authorization: Bearer <token>` (or `"token"` in a WebSocket publish frame).
    #[arg(long, env = "PUSHBENCH_PUBLISH_TOKEN", hide_env_values = true)]
    pub publish_token: Option<String>,
    /// Most subscriber requests served at once over all transports (open streams, SSE and WebSocket
    /// connections, polls in flight); past it, 503. Keep it under the process's file-descriptor limit.
    #[arg(long, default_value_t = 19_000)]
    pub max_connections: usize,
    /// Most TCP connections open at once, whatever they do (idle, sending a head or a body, subscribed);
    /// past it a new connection is answered 503 and closed. Default: `--max-connections` + 1,000 (room
    /// for publishers and scrapes). Keep it under the process's file-descriptor limit.
    #[arg(long)]
    pub max_open_connections: Option<usize>,
    /// A request head or publish body that has not fully arrived after this long is answered 408 and its
    /// connection closed, so a client trickling bytes cannot hold a connection open.
    #[arg(long, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Idle interval after which streams send a heartbeat line, SSE a comment and WebSocket a ping
    /// (a WebSocket peer that misses two pings is disconnected).
    #[arg(long, default_value_t = pushbench_common::wire::DEFAULT_HEARTBEAT_MS)]
    pub heartbeat_ms: u64,
    /// Longest `timeout_ms` a long-poll may ask for (the default hold is 30,000 ms).
    #[arg(long, default_value_t = 120_000)]
    pub longpoll_max_ms: u64,
    /// Most events in one poll answer or one streamed batch; a client further behind continues from `next`.
    #[arg(long, default_value_t = 1_000)]
    pub max_batch_events: usize,
    /// Most bytes of events in one poll answer or streamed batch (always at least one event).
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_batch_bytes: usize,
    /// A WebSocket send blocked this long (the client does not read) disconnects the client as a slow consumer.
    #[arg(long, default_value_t = 10_000)]
    pub write_timeout_ms: u64,
    /// Write pacing: a stream, SSE or WebSocket subscriber writes at most once per this interval (0 to
    /// 1000 ms). An event after a quiet interval leaves at once; events that follow within the interval
    /// wait for its end and leave together in one write. Fewer writes, so less CPU per event, for at most
    /// this much latency, and only when a subscriber gets events faster than one per interval; 0 writes
    /// every wake-up at once.
    #[arg(long, default_value_t = 0)]
    pub write_interval_ms: u64,
    /// On SIGINT/SIGTERM, how long to wait for open connections to close before exiting anyway.
    #[arg(long, default_value_t = 5_000)]
    pub shutdown_grace_ms: u64,
    /// Serve TLS with this PEM certificate chain (with `--tls-key`); ALPN offers h2 and http/1.1, and
    /// every endpoint works over both.
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve TLS with a certificate for localhost and 127.0.0.1 made at start; its SHA-256 fingerprint
    /// is logged.
    #[arg(long)]
    pub tls_self_signed: bool,
    /// HTTP/2: most streams (subscriptions, polls, publishes) one connection may have open at once.
    #[arg(long, default_value_t = 256)]
    pub h2_max_streams: u32,
    /// HTTP/2: initial flow-control window per stream, in bytes: how much a client may send (a publish
    /// body) before the server reads it. What the server may send is bounded by the client's window, so a
    /// stalled stream holds at most that much and the others on its connection go on.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub h2_window_bytes: u32,
    /// HTTP/2: send a PING after this long without frames from the client, and close the connection when
    /// it goes unanswered as long again; 0 = off (the streams' own heartbeats keep idle subscriptions alive).
    #[arg(long, default_value_t = 0)]
    pub h2_keepalive_ms: u64,
    /// Share the feed with other nodes through Redis (e.g. `redis://127.0.0.1:6379`): ids come from Redis and
    /// a client may resume on any node. Without it the feed is embedded in this process.
    #[arg(long)]
    pub bus: Option<String>,
    /// Key of the Redis stream (and prefix of its id counter), so several feeds can share one Redis.
    #[arg(long, default_value = "pushbench")]
    pub bus_key: String,
    /// Publish synthetic events at this rate (events/s) to `--generate-topic`; 0 = off. The demo page can
    /// change rate and size at run time (`PUT /generator`).
    #[arg(long, default_value_t = 0.0)]
    pub generate: f64,
    /// Teaching demo: the page at `/` shows the feed over all five transports; starts the synthetic
    /// publisher at 5 events/s unless `--generate` says otherwise.
    #[arg(long)]
    pub demo: bool,
    /// Topic of the synthetic events.
    #[arg(long, default_value = "demo")]
    pub generate_topic: String,
    /// Size of each synthetic event's data, in bytes.
    #[arg(long, default_value_t = 64)]
    pub generate_bytes: usize,
}

/// Largest HTTP/2 flow-control window (RFC 9113 §6.9.1).
const MAX_H2_WINDOW: u32 = (1 << 31) - 1;

/// Default room of `--max-open-connections` above `--max-connections`.
const OPEN_CONNECTIONS_BEYOND_SUBSCRIBERS: usize = 1_000;

/// Longest `--write-interval-ms`: beyond a second a wait is a stall, not a trade of latency for CPU.
pub const MAX_WRITE_INTERVAL_MS: u64 = 1_000;

/// Rate of `--demo` when `--generate` is not given.
const DEMO_RATE: f64 = 5.0;
/// Highest synthetic publish rate accepted, from the command line or `PUT /generator`.
pub const MAX_GENERATE_RATE: f64 = 1_000_000.0;

/// Synthetic publisher: where it publishes, and its initial settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Where the events go.
    pub topic: Topic,
    /// Rate and size at start (rate 0 = idle until changed).
    pub initial: GeneratorSettings,
}

/// What the synthetic publisher does now; adjustable at run time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSettings {
    /// Events per second, 0 to [`MAX_GENERATE_RATE`]; 0 = off.
    pub rate: f64,
    /// Data size of each event in bytes.
    pub bytes: usize,
}

impl GeneratorSettings {
    /// Checks the settings against the payload limit.
    pub fn validate(self, max_payload: usize) -> Result<Self, String> {
        if !(self.rate.is_finite() && (0.0..=MAX_GENERATE_RATE).contains(&self.rate)) {
            return Err(format!(
                "rate must be between 0 and {MAX_GENERATE_RATE} events/s"
            ));
        }
        if self.bytes > max_payload {
            return Err(format!(
                "bytes must not exceed the payload limit of {max_payload}"
            ));
        }
        Ok(self)
    }
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Replay buffer bounds.
    pub replay: ReplayLimits,
    /// Batch bounds.
    pub batch: BatchLimits,
    /// Largest event body.
    pub max_payload: usize,
    /// Required bearer token for publishing, if any.
    pub publish_token: Option<String>,
    /// Most concurrent subscriber requests.
    pub max_connections: usize,
    /// Most open TCP connections.
    pub max_open_connections: usize,
    /// Longest wait for a whole request head or publish body.
    pub request_timeout: Duration,
    /// Heartbeat / ping interval.
    pub heartbeat: Duration,
    /// Default long-poll hold.
    pub longpoll_default: Duration,
    /// Longest long-poll hold a client may ask for.
    pub longpoll_max: Duration,
    /// WebSocket send timeout before a slow consumer is disconnected.
    pub write_timeout: Duration,
    /// Least time between two writes of events to one streaming subscriber (0 = no pacing).
    pub write_interval: Duration,
    /// Grace period for open connections at shutdown.
    pub shutdown_grace: Duration,
    /// Synthetic publisher.
    pub generator: GeneratorConfig,
    /// Redis backplane URL and stream key, when the feed is shared.
    pub bus: Option<(String, String)>,
    /// Where the TLS certificate comes from; `None` serves cleartext.
    pub tls: Option<TlsSource>,
    /// HTTP/2 settings (used over TLS, where ALPN negotiates h2).
    pub h2: H2Settings,
}

/// The HTTP/2 settings that matter for push (see the flags of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Settings {
    /// Most concurrent streams per connection.
    pub max_streams: u32,
    /// Initial stream flow-control window, in bytes.
    pub window_bytes: u32,
    /// Keep-alive PING interval, if any.
    pub keepalive: Option<Duration>,
}

/// A command-line value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--{flag}: {reason}")]
pub struct ConfigError {
    flag: &'static str,
    reason: String,
}

fn positive<T: PartialOrd + Default>(flag: &'static str, value: T) -> Result<T, ConfigError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError {
            flag,
            reason: "must be greater than 0".into(),
        })
    }
}

impl TryFrom<&Args> for Config {
    type Error = ConfigError;

    fn try_from(args: &Args) -> Result<Self, ConfigError> {
        let longpoll_default = Duration::from_secs(30);
        let longpoll_max =
            Duration::from_millis(positive("longpoll-max-ms", args.longpoll_max_ms)?);
        let rate = if args.demo && args.generate == 0.0 {
            DEMO_RATE
        } else {
            args.generate
        };
        let generator = GeneratorConfig {
            topic: Topic::parse(&args.generate_topic).map_err(|e| ConfigError {
                flag: "generate-topic",
                reason: e.to_string(),
            })?,
            initial: GeneratorSettings {
                rate,
                bytes: args.generate_bytes,
            }
            .validate(args.max_payload)
            .map_err(|reason| ConfigError {
                flag: "generate",
                reason,
            })?,
        };
        Ok(Self {
            replay: ReplayLimits {
                max_events: positive("replay-events", args.replay_events)?,
                max_bytes: positive("replay-bytes", args.replay_bytes)?,
            },
            batch: BatchLimits {
                max_events: positive("max-batch-events", args.max_batch_events)?,
                max_bytes: positive("max-batch-bytes", args.max_batch_bytes)?,
            },
            max_payload: positive("max-payload", args.max_payload)?,
            publish_token: args.publish_token.clone().filter(|t| !t.is_empty()),
            max_connections: positive("max-connections", args.max_connections)?,
            max_open_connections: match args.max_open_connections {
                None => args
                    .max_connections
                    .saturating_add(OPEN_CONNECTIONS_BEYOND_SUBSCRIBERS),
                Some(open) if open >= args.max_connections => open,
                Some(_) => {
                    return Err(ConfigError {
                        flag: "max-open-connections",
                        reason: "must be at least --max-connections".into(),
                    });
                }
            },
            request_timeout: Duration::from_millis(positive(
                "request-timeout-ms",
                args.request_timeout_ms,
            )?),
            heartbeat: Duration::from_millis(positive("heartbeat-ms", args.heartbeat_ms)?),
            longpoll_default: longpoll_default.min(longpoll_max),
            longpoll_max,
            write_timeout: Duration::from_millis(positive(
                "write-timeout-ms",
                args.write_timeout_ms,
            )?),
            write_interval: if args.write_interval_ms <= MAX_WRITE_INTERVAL_MS {
                Duration::from_millis(args.write_interval_ms)
            } else {
                return Err(ConfigError {
                    flag: "write-interval-ms",
                    reason: format!("must be between 0 and {MAX_WRITE_INTERVAL_MS}"),
                });
            },
            shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
            generator,
            tls: match (&args.tls_cert, &args.tls_key, args.tls_self_signed) {
                (Some(cert), Some(key), _) => Some(TlsSource::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                (_, _, true) => Some(TlsSource::SelfSigned),
                _ => None,
            },
            h2: H2Settings {
                max_streams: positive("h2-max-streams", args.h2_max_streams)?,
                window_bytes: if (1..=MAX_H2_WINDOW).contains(&args.h2_window_bytes) {
                    args.h2_window_bytes
                } else {
                    return Err(ConfigError {
                        flag: "h2-window-bytes",
                        reason: format!("must be between 1 and {MAX_H2_WINDOW}"),
                    });
                },
                keepalive: (args.h2_keepalive_ms > 0)
                    .then(|| Duration::from_millis(args.h2_keepalive_ms)),
            },
            bus: match &args.bus {
                Some(url) if !url.starts_with("redis://") => {
                    return Err(ConfigError {
                        flag: "bus",
                        reason: "only redis:// URLs are supported".into(),
                    });
                }
                Some(url) => Some((url.clone(), args.bus_key.clone())),
                None => None,
            },
        })
    }
}

impl Default for Config {
    /// The documented defaults, as `pushbench-server` with no flags.
    fn default() -> Self {
        Self::try_from(&Args::parse_from(["pushbench-server"])).expect("the defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(flags: &[&str]) -> Result<Config, ConfigError> {
        Config::try_from(
            &Args::try_parse_from(std::iter::once("pushbench-server").chain(flags.iter().copied()))
                .unwrap(),
        )
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::default();
        assert_eq!(
            c.replay,
            ReplayLimits {
                max_events: 10_000,
                max_bytes: 64 << 20
            }
        );
        assert_eq!(c.max_payload, 65_536);
        assert_eq!(c.longpoll_default, Duration::from_secs(30));
        assert_eq!(c.generator.initial.rate, 0.0);
        assert_eq!(c.write_interval, Duration::ZERO, "not paced unless asked");
    }

    #[test]
    fn bad_values_name_their_flag() {
        assert_eq!(
            config(&["--replay-events", "0"]).unwrap_err().to_string(),
            "--replay-events: must be greater than 0"
        );
        assert!(
            config(&["--generate=-1"])
                .unwrap_err()
                .to_string()
                .starts_with("--generate:")
        );
        assert!(
            config(&["--generate-topic", "a b"])
                .unwrap_err()
                .to_string()
                .starts_with("--generate-topic:")
        );
        assert_eq!(
            config(&["--write-interval-ms", "1001"])
                .unwrap_err()
                .to_string(),
            "--write-interval-ms: must be between 0 and 1000"
        );
        assert_eq!(
            config(&["--write-interval-ms", "1000"])
                .unwrap()
                .write_interval,
            Duration::from_secs(1)
        );
        let generator = config(&["--generate", "7"]).unwrap().generator;
        assert_eq!(
            (generator.initial.rate, generator.topic.as_str()),
            (7.0, "demo")
        );
        assert_eq!(
            config(&["--demo"]).unwrap().generator.initial.rate,
            DEMO_RATE
        );
    }
}
