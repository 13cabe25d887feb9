//! A synthetic result for tests: one `ws` transport of a `quick` workload, exact figures, and a latency
//! histogram holding given values. Shared by this crate's unit tests (as `crate::result::test_result`), the
//! load generator's unit tests and its CLI test (`loadgen/tests/gate_cli.rs`), which include this file,
//! hence the `pushbench_report::` paths.

use pushbench_common::Transport;
use pushbench_report::result::{
    Model, Percentiles, RunResult, SCHEMA_VERSION, SerializedHistograms, Spreads, TransportResult,
    encode_histogram,
};

/// A one-transport (`ws`) result of a `quick` workload whose latency histogram holds `latencies_us`, one
/// delivery each; for the tests of thresholds, compare and merge.
pub(crate) fn test_result(latencies_us: &[u64]) -> RunResult {
    let mut h = pushbench_report::result::new_histogram();
    for &v in latencies_us {
        h.record(v).expect("in range");
    }
    let n = latencies_us.len() as u64;
    let empty = encode_histogram(&pushbench_report::result::new_histogram());
    RunResult {
        schema_version: SCHEMA_VERSION,
        tool: "pushbench test".into(),
        scenario: serde_json::json!({"name": "quick", "description": "test", "transports": ["ws"],
            "subscribers": 100, "publish_rate": 8.0, "payload_bytes": 64, "fanout": {"mode": "broadcast"}}),
        started_at: "2026-11-23T06:00:00Z".into(),
        finished_at: "2026-11-23T06:00:10Z".into(),
        cpus: 2,
        server: "spawned test".into(),
        runs: 1,
        transports: vec![TransportResult {
            transport: Transport::Ws,
            subscribers: 100,
            subscribers_connected: 100,
            published: n,
            publish_failures: 0,
            expected: n,
            delivered: n,
            lost: 0,
            lost_announced: 0,
            duplicates: 0,
            out_of_order: 0,
            unexpected: 0,
            gaps: 0,
            latency_us: Percentiles::of(&h),
            latency_from_server_us: Percentiles::of(&h),
            connect_us: Percentiles::default(),
            tls_handshake_us: None,
            first_byte_us: Percentiles::default(),
            subscribed_us: Percentiles::default(),
            reconnect_us: None,
            faults: Vec::new(),
            failed_connects: 0,
            reconnects: 0,
            errors: 0,
            heartbeats: 0,
            requests: 100,
            empty_polls: 0,
            requests_cut: 0,
            requests_per_delivery: Some(100.0 / n as f64),
            bytes_received: 300 * n,
            bytes_sent: 0,
            bytes_per_delivery: Some(300.0),
            publisher_bytes_sent: 0,
            publisher_bytes_received: 0,
            server_rss_before_bytes: Some(1 << 20),
            server_rss_connected_bytes: Some((1 << 20) + 100 * 4096),
            server_rss_peak_bytes: Some((1 << 20) + 100 * 4096),
            server_rss_per_connection_bytes: Some(4096.0),
            server_cpu_ms: Some(n as f64 / 100.0),
            server_cpu_ms_per_1k_deliveries: Some(10.0),
            server_fds: Some(110),
            loadgen_cpu_percent: 20.0,
            loadgen_rss_bytes: Some(10 << 20),
            loadgen_rss_per_subscriber_bytes: Some(20_000.0),
            link: None,
            packets_per_delivery: None,
            loadgen_fds: 120,
            loadgen_workers: 1,
            subscribers_live_at_first_publish: Some(100),
            kernel_socket_bytes_before: Some(5_000_000),
            kernel_socket_bytes_connected: Some(5_640_000),
            kernel_socket_bytes_per_connection: Some(6_400.0),
            loadgen_lag_p99_us: 500,
            machine_cpu_busy_percent: Some(30.0),
            loadgen_saturated: false,
            loadgen_saturation_reasons: Vec::new(),
            noise: None,
            publish_lateness_us: Percentiles::default(),
            window_s: 6.0,
            model: Model {
                events_per_subscriber_per_s: 8.0,
                poll_interval_ms: 100.0,
                poll_wait_ms: 50.0,
                poll_requests_per_delivery: 1.25,
            },
            histograms: SerializedHistograms {
                latency_us: encode_histogram(&h),
                latency_from_server_us: encode_histogram(&h),
                connect_us: Some(empty.clone()),
                tls_handshake_us: None,
                first_byte_us: Some(empty.clone()),
                subscribed_us: Some(empty.clone()),
                reconnect_us: None,
                publish_lateness_us: Some(empty),
            },
            goose: Vec::new(),
            server_stats: None,
            nodes: Vec::new(),
            bus: None,
            last_error: None,
            spread: Spreads::new(),
            thresholds: Vec::new(),
        }],
        warnings: Vec::new(),
        network: None,
    }
}
