//! Counters of what the server does, rendered as Prometheus text (`/metrics`) and JSON (`/stats`).
//!
//! Plain atomics rather than a metrics library: every delivery touches them, and a relaxed `fetch_add` is
//! all that costs. Each transport has its own counters, indexed by [`Transport::index`].

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use pushbench_common::{ProcSample, Transport};
use serde::Serialize;

use crate::error::ApiError;
use crate::feed::{BusStatus, ReplayStats};

/// Counters of one transport.
#[derive(Debug, Default)]
struct TransportCounters {
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    deliveries: AtomicU64,
    bytes: AtomicU64,
    writes: AtomicU64,
    gaps: AtomicU64,
    slow_consumer_gaps: AtomicU64,
    slow_consumer_disconnects: AtomicU64,
}

/// All server counters.
#[derive(Debug)]
pub struct Metrics {
    max_connections: usize,
    /// Subscriber requests being served over all transports, checked against `max_connections`.
    open: AtomicUsize,
    rejected_connections: AtomicU64,
    events_published: AtomicU64,
    tcp_connections_open: AtomicU64,
    transports: [TransportCounters; 5],
}

/// Holds one of the `--max-connections` slots and counts the connection as open; dropping it closes it.
#[derive(Debug)]
pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
    transport: Transport,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.open.fetch_sub(1, Relaxed);
        self.metrics
            .counters(self.transport)
            .connections_open
            .fetch_sub(1, Relaxed);
    }
}

/// Counts one accepted TCP connection while alive.
#[derive(Debug)]
pub struct TcpGuard(Arc<Metrics>);

impl Drop for TcpGuard {
    fn drop(&mut self) {
        self.0.tcp_connections_open.fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    /// Counters for a server that admits at most `max_connections` subscribers at once.
    pub fn new(max_connections: usize) -> Self {
        Self {
            max_connections,
            open: AtomicUsize::new(0),
            rejected_connections: AtomicU64::new(0),
            events_published: AtomicU64::new(0),
            tcp_connections_open: AtomicU64::new(0),
            transports: Default::default(),
        }
    }

    fn counters(&self, transport: Transport) -> &TransportCounters {
        &self.transports[transport.index()]
    }

    /// Takes a subscriber slot, or refuses with 503 when all are taken.
    pub fn admit(self: &Arc<Self>, transport: Transport) -> Result<ConnectionGuard, ApiError> {
        let admitted = self.open.fetch_update(Relaxed, Relaxed, |open| {
            (open < self.max_connections).then_some(open + 1)
        });
        if admitted.is_err() {
            self.rejected_connections.fetch_add(1, Relaxed);
            return Err(ApiError::TooManyConnections {
                limit: self.max_connections,
            });
        }
        let counters = self.counters(transport);
        counters.connections_open.fetch_add(1, Relaxed);
        counters.connections_total.fetch_add(1, Relaxed);
        Ok(ConnectionGuard {
            metrics: self.clone(),
            transport,
        })
    }

    /// Counts an accepted TCP connection until the guard drops.
    pub fn tcp_connection(self: &Arc<Self>) -> TcpGuard {
        self.tcp_connections_open.fetch_add(1, Relaxed);
        TcpGuard(self.clone())
    }

    /// Accepted TCP connections currently open.
    pub fn tcp_connections_open(&self) -> u64 {
        self.tcp_connections_open.load(Relaxed)
    }

    /// Counts an accepted publish.
    pub fn published(&self) {
        self.events_published.fetch_add(1, Relaxed);
    }

    /// Counts `events` events delivered in `bytes` bytes of framing (bodies, frames; not HTTP headers).
    pub fn delivered(&self, transport: Transport, events: u64, bytes: u64) {
        let c = self.counters(transport);
        c.deliveries.fetch_add(events, Relaxed);
        c.bytes.fetch_add(bytes, Relaxed);
    }

    /// Counts one write to a subscriber's socket: one batch of frames (greeting, gap notice and events,
    /// heartbeat, ping, reply) handed over at once.
    pub fn wrote(&self, transport: Transport) {
        self.counters(transport).writes.fetch_add(1, Relaxed);
    }

    /// Counts a gap notice; `live` when the subscriber fell behind while connected (a slow consumer)
    /// rather than resuming from an old cursor.
    pub fn gap(&self, transport: Transport, live: bool) {
        let c = self.counters(transport);
        c.gaps.fetch_add(1, Relaxed);
        if live {
            c.slow_consumer_gaps.fetch_add(1, Relaxed);
        }
    }

    /// Counts a subscriber disconnected because it stopped reading.
    pub fn slow_consumer_disconnect(&self, transport: Transport) {
        self.counters(transport)
            .slow_consumer_disconnects
            .fetch_add(1, Relaxed);
    }

    /// A consistent-enough copy of every counter, with the process's memory and CPU and the state of the
    /// Redis backplane, if there is one.
    pub fn snapshot(&self, replay: ReplayStats, bus: Option<&BusStatus>) -> Stats {
        let process = ProcSample::of_self().ok();
        Stats {
            events_published: self.events_published.load(Relaxed),
            rejected_connections: self.rejected_connections.load(Relaxed),
            tcp_connections_open: self.tcp_connections_open.load(Relaxed),
            replay: ReplayJson {
                events: replay.events,
                bytes: replay.bytes,
                topics: replay.topics,
                head: replay.head,
            },
            bus: bus.map(|b| BusJson {
                up: b.is_up(),
                outages: b.outages(),
                publish_failures: b.publish_failures(),
            }),
            transports: Transport::ALL
                .iter()
                .map(|&t| {
                    let c = self.counters(t);
                    (
                        t.as_str(),
                        TransportStats {
                            connections_open: c.connections_open.load(Relaxed),
                            connections_total: c.connections_total.load(Relaxed),
                            deliveries: c.deliveries.load(Relaxed),
                            bytes: c.bytes.load(Relaxed),
                            writes: c.writes.load(Relaxed),
                            gaps: c.gaps.load(Relaxed),
                            slow_consumer_gaps: c.slow_consumer_gaps.load(Relaxed),
                            slow_consumer_disconnects: c.slow_consumer_disconnects.load(Relaxed),
                        },
                    )
                })
                .collect(),
            process: ProcessStats {
                rss_bytes: process.map_or(0, |p| p.rss_bytes),
                cpu_seconds: process.map_or(0.0, |p| p.cpu.as_secs_f64()),
            },
        }
    }
}

/// `/stats` body.
#[derive(Debug, Serialize)]
pub struct Stats {
    events_published: u64,
    rejected_connections: u64,
    tcp_connections_open: u64,
    replay: ReplayJson,
    /// Present when the feed is shared through Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    bus: Option<BusJson>,
    transports: std::collections::BTreeMap<&'static str, TransportStats>,
    process: ProcessStats,
}

#[derive(Debug, Serialize)]
struct ReplayJson {
    events: usize,
    bytes: usize,
    topics: usize,
    head: u64,
}

#[derive(Debug, Serialize)]
struct BusJson {
    up: bool,
    outages: u64,
    publish_failures: u64,
}

#[derive(Debug, Serialize)]
struct TransportStats {
    connections_open: u64,
    connections_total: u64,
    deliveries: u64,
    bytes: u64,
    writes: u64,
    gaps: u64,
    slow_consumer_gaps: u64,
    slow_consumer_disconnects: u64,
}

#[derive(Debug, Serialize)]
struct ProcessStats {
    rss_bytes: u64,
    cpu_seconds: f64,
}

impl Stats {
    /// Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut gauge = |name: &str, kind: &str, help: &str, value: &dyn std::fmt::Display| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        gauge(
            "pushbench_events_published_total",
            "counter",
            "Events accepted by publish.",
            &self.events_published,
        );
        gauge(
            "pushbench_rejected_connections_total",
            "counter",
            "Subscriber requests refused with 503 at --max-connections.",
            &self.rejected_connections,
        );
        gauge(
            "pushbench_tcp_connections_open",
            "gauge",
            "Accepted TCP connections currently open.",
            &self.tcp_connections_open,
        );
        gauge(
            "pushbench_replay_events",
            "gauge",
            "Events held in the replay buffer.",
            &self.replay.events,
        );
        gauge(
            "pushbench_replay_bytes",
            "gauge",
            "Bytes charged to the replay buffer.",
            &self.replay.bytes,
        );
        gauge(
            "pushbench_replay_topics",
            "gauge",
            "Topics with held events or subscribers.",
            &self.replay.topics,
        );
        gauge(
            "pushbench_event_id_head",
            "gauge",
            "Id of the newest event.",
            &self.replay.head,
        );
        if let Some(bus) = &self.bus {
            gauge(
                "pushbench_bus_up",
                "gauge",
                "1 while the Redis backplane is connected, 0 during an outage.",
                &u8::from(bus.up),
            );
            gauge(
                "pushbench_bus_outages_total",
                "counter",
                "Times the connection to the Redis backplane was lost.",
                &bus.outages,
            );
            gauge(
                "pushbench_bus_publish_failures_total",
                "counter",
                "Publishes refused with 503 because Redis did not take them.",
                &bus.publish_failures,
            );
        }
        gauge(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            &self.process.rss_bytes,
        );
        gauge(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            &self.process.cpu_seconds,
        );

        type Family = (
            &'static str,
            &'static str,
            &'static str,
            fn(&TransportStats) -> u64,
        );
        let per_transport: [Family; 8] = [
            (
                "pushbench_connections_open",
                "gauge",
                "Subscriber requests being served: open streams, SSE and WebSocket connections, polls in flight.",
                |t| t.connections_open,
            ),
            (
                "pushbench_connections_total",
                "counter",
                "Subscriber requests admitted.",
                |t| t.connections_total,
            ),
            (
                "pushbench_deliveries_total",
                "counter",
                "Events delivered to subscribers.",
                |t| t.deliveries,
            ),
            (
                "pushbench_delivered_bytes_total",
                "counter",
                "Bytes of bodies and frames written to subscribers, HTTP headers excluded.",
                |t| t.bytes,
            ),
            (
                "pushbench_writes_total",
                "counter",
                "Writes to subscribers' sockets (stream, SSE, WebSocket): one per batch of frames sent together; \
                 deliveries per write grow with batching and --write-interval-ms.",
                |t| t.writes,
            ),
            (
                "pushbench_gaps_total",
                "counter",
                "Gap notices sent (a cursor older than the replay buffer).",
                |t| t.gaps,
            ),
            (
                "pushbench_slow_consumer_gaps_total",
                "counter",
                "Gap notices sent to connected subscribers that fell behind the replay buffer.",
                |t| t.slow_consumer_gaps,
            ),
            (
                "pushbench_slow_consumer_disconnects_total",
                "counter",
                "Subscribers disconnected because a write stayed blocked past --write-timeout-ms.",
                |t| t.slow_consumer_disconnects,
            ),
        ];
        for (name, kind, help, value) in per_transport {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (transport, stats) in &self.transports {
                let _ = writeln!(out, "{name}{{transport=\"{transport}\"}} {}", value(stats));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_replay() -> ReplayStats {
        ReplayStats {
            events: 0,
            bytes: 0,
            topics: 0,
            head: 0,
        }
    }

    #[test]
    fn admission_stops_at_the_limit_and_guards_release_slots() {
        let metrics = Arc::new(Metrics::new(2));
        let a = metrics.admit(Transport::Sse).unwrap();
        let _b = metrics.admit(Transport::Ws).unwrap();
        assert!(matches!(
            metrics.admit(Transport::Poll),
            Err(ApiError::TooManyConnections { limit: 2 })
        ));
        drop(a);
        let _c = metrics.admit(Transport::Poll).unwrap();
        let text = metrics.snapshot(empty_replay(), None).to_prometheus();
        assert!(
            text.contains("pushbench_connections_open{transport=\"sse\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("pushbench_connections_total{transport=\"sse\"} 1\n"));
        assert!(text.contains("pushbench_rejected_connections_total 1\n"));
    }

    #[test]
    fn prometheus_text_is_well_formed() {
        let metrics = Metrics::new(10);
        metrics.delivered(Transport::Stream, 3, 300);
        metrics.wrote(Transport::Stream);
        let text = metrics.snapshot(empty_replay(), None).to_prometheus();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(
                name.starts_with("pushbench_") || name.starts_with("process_"),
                "{line}"
            );
        }
        assert!(text.contains("pushbench_delivered_bytes_total{transport=\"stream\"} 300\n"));
        assert!(text.contains("pushbench_writes_total{transport=\"stream\"} 1\n"));
        assert!(text.contains("pushbench_writes_total{transport=\"ws\"} 0\n"));
    }
}
