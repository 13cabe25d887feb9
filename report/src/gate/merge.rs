//! Merging results of several runs of one scenario into one result, exactly: `pushbench merge` and
//! `pushbench run --repeat N`.
//!
//! Nothing is averaged that should not be:
//! - **counters** (subscribers, published, expected, delivered, lost, requests, bytes, …) are summed;
//! - **ratios** (requests and bytes per delivery, server CPU per 1k deliveries) are recomputed from the
//!   summed counters; per-connection memory is pooled (the RSS growths summed over the subscribers
//!   connected); CPU percentages are weighted by each run's window;
//! - **histograms** are decoded from their serialized HdrHistogram form, added, and every percentile is
//!   recomputed from the sum — percentiles are never averaged;
//! - per-process levels that cannot be summed (RSS before/connected/peak, open files, scheduling lag p99)
//!   are the largest over the runs, the worst case;
//! - every run's value of every [`Metric`](crate::metric::Metric) is kept in `spread`, with its median
//!   and range ([`crate::stats`]).
//!
//! Results merge only when they have the same schema version and the same workload
//! ([`same_workload`]); a merged result merges again exactly.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde_json::Value;

use crate::result::{
    GooseRow, Growth, HistogramError, LinkCounts, NetworkResult, NodeResult, Percentiles,
    RunResult, SCHEMA_VERSION, SerializedHistograms, Spread, TransportResult, decode_histogram,
    derive, encode_histogram, new_histogram, runs_of,
};

/// Why results cannot be merged or compared.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("nothing to merge")]
    Empty,
    /// A result of another schema version than this tool writes.
    #[error(
        "{which} has schema_version {found}, this pushbench reads version {SCHEMA_VERSION}: re-run it with this version"
    )]
    SchemaVersion {
        /// Which input.
        which: String,
        /// Its version.
        found: u32,
    },
    /// Results of different scenarios or workloads.
    #[error("{which} is a run of a different workload than {first}: {difference}")]
    Workload {
        /// The first input.
        first: String,
        /// The input that differs.
        which: String,
        /// What differs.
        difference: String,
    },
    /// A histogram could not be decoded.
    #[error("{which}, transport {transport}, histogram {histogram}: {error}")]
    Histogram {
        /// Which input.
        which: String,
        /// Its transport.
        transport: String,
        /// Which histogram.
        histogram: &'static str,
        /// The decoding error.
        error: HistogramError,
    },
    /// An input lacks a serialized histogram (written before it was carried).
    #[error(
        "{which}, transport {transport}: no serialized `{histogram}` histogram (written by an older pushbench): cannot merge it exactly"
    )]
    MissingHistogram {
        /// Which input.
        which: String,
        /// Its transport.
        transport: String,
        /// Which histogram.
        histogram: &'static str,
    },
}

/// Scenario fields that describe the result, not the workload: they may differ between results that are
/// merged or compared.
const NOT_WORKLOAD: [&str; 2] = ["description", "thresholds"];

/// Checks that two serialized scenarios describe the same workload: the same name and the same value of
/// every field except [`NOT_WORKLOAD`]. The error names the first field that differs, with both values.
pub fn same_workload(a: &Value, b: &Value) -> Result<(), String> {
    let name = |v: &Value| v.get("name").cloned().unwrap_or(Value::Null);
    if name(a) != name(b) {
        return Err(format!("scenario {} vs {}", name(a), name(b)));
    }
    let fields = |v: &Value| -> BTreeMap<String, Value> {
        v.as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| !NOT_WORKLOAD.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (fa, fb) = (fields(a), fields(b));
    for key in fa.keys().chain(fb.keys()) {
        let (va, vb) = (
            fa.get(key).unwrap_or(&Value::Null),
            fb.get(key).unwrap_or(&Value::Null),
        );
        if va != vb {
            return Err(format!(
                "scenario {} differs in `{key}`: {va} vs {vb}",
                name(a)
            ));
        }
    }
    Ok(())
}

/// Checks that `result` can be read by this tool and compared or merged with `first`.
pub fn check_compatible(
    first: (&str, &RunResult),
    other: (&str, &RunResult),
) -> Result<(), MergeError> {
    for (which, r) in [first, other] {
        if r.schema_version != SCHEMA_VERSION {
            return Err(MergeError::SchemaVersion {
                which: which.to_owned(),
                found: r.schema_version,
            });
        }
    }
    same_workload(&first.1.scenario, &other.1.scenario).map_err(|difference| MergeError::Workload {
        first: first.0.to_owned(),
        which: other.0.to_owned(),
        difference,
    })
}

/// Merges named results (`name` is shown in errors: a file name, or `run 3`).
pub fn merge(inputs: &[(String, RunResult)]) -> Result<RunResult, MergeError> {
    let (first_name, first) = inputs.first().ok_or(MergeError::Empty)?;
    for (name, r) in inputs {
        check_compatible((first_name, first), (name, r))?;
    }
    let mut transports = Vec::new();
    for t in &first.transports {
        let mut parts: Vec<(&str, &TransportResult)> = Vec::new();
        for (name, r) in inputs {
            let part = r
                .transports
                .iter()
                .find(|p| p.transport == t.transport)
                .ok_or_else(|| MergeError::Workload {
                    first: first_name.clone(),
                    which: name.clone(),
                    difference: format!("it has no result for transport {}", t.transport),
                })?;
            parts.push((name.as_str(), part));
        }
        transports.push(merge_transport(&parts)?);
    }
    let mut warnings: Vec<String> = Vec::new();
    for (_, r) in inputs {
        for w in &r.warnings {
            if !warnings.contains(w) {
                warnings.push(w.clone());
            }
        }
    }
    Ok(RunResult {
        schema_version: SCHEMA_VERSION,
        tool: first.tool.clone(),
        scenario: first.scenario.clone(),
        started_at: inputs
            .iter()
            .map(|(_, r)| &r.started_at)
            .min()
            .cloned()
            .unwrap_or_default(),
        finished_at: inputs
            .iter()
            .map(|(_, r)| &r.finished_at)
            .max()
            .cloned()
            .unwrap_or_default(),
        cpus: first.cpus,
        server: first.server.clone(),
        runs: inputs.iter().map(|(_, r)| r.runs).sum(),
        transports,
        warnings,
        network: merged_network(inputs),
    })
}

/// The runs' network: the same asked conditions (the scenarios are equal), link counters summed, the
/// measured round trip averaged.
fn merged_network(inputs: &[(String, RunResult)]) -> Option<Box<NetworkResult>> {
    let networks: Vec<&NetworkResult> = inputs
        .iter()
        .filter_map(|(_, r)| r.network.as_deref())
        .collect();
    let first = (*networks.first()?).clone();
    let link = networks
        .iter()
        .fold(LinkCounts::default(), |sum, n| sum.plus(&n.link));
    let measured_rtt_ms =
        networks.iter().map(|n| n.measured_rtt_ms).sum::<f64>() / networks.len() as f64;
    Some(Box::new(NetworkResult {
        measured_rtt_ms,
        link,
        ..first
    }))
}

/// Decodes, adds and re-encodes one histogram of every part; returns it with its summary.
fn merged_histogram(
    parts: &[(&str, &TransportResult)],
    histogram: &'static str,
    get: impl Fn(&SerializedHistograms) -> Option<&String>,
) -> Result<(String, Percentiles), MergeError> {
    let mut sum: Histogram<u64> = new_histogram();
    for (which, t) in parts {
        let text = get(&t.histograms).ok_or_else(|| MergeError::MissingHistogram {
            which: (*which).to_owned(),
            transport: t.transport.to_string(),
            histogram,
        })?;
        let h = decode_histogram(text).map_err(|error| MergeError::Histogram {
            which: (*which).to_owned(),
            transport: t.transport.to_string(),
            histogram,
            error,
        })?;
        sum.add(&h)
            .expect("histograms of pushbench share their bounds");
    }
    let summary = Percentiles::of(&sum);
    Ok((encode_histogram(&sum), summary))
}

fn merge_transport(parts: &[(&str, &TransportResult)]) -> Result<TransportResult, MergeError> {
    let first = parts[0].1;
    let all = || parts.iter().map(|(_, t)| *t);
    let sum = |f: fn(&TransportResult) -> u64| all().map(f).sum::<u64>();
    // Sum of an optional figure: `None` as soon as one run could not measure it.
    let sum_opt = |f: &dyn Fn(&TransportResult) -> Option<f64>| {
        all().map(f).try_fold(0.0, |acc, v| v.map(|v| acc + v))
    };
    let max_opt = |f: fn(&TransportResult) -> Option<u64>| all().filter_map(f).max();
    let window_s: f64 = all().map(|t| t.window_s).sum();
    let window_weighted = |f: fn(&TransportResult) -> Option<f64>| {
        sum_opt(&|t| f(t).map(|v| v * t.window_s)).map(|v| v / window_s.max(1e-9))
    };

    // Pooled growth: each run's per-connection figure times its connections is its growth.
    let growth = Growth {
        server_rss: sum_opt(&|t| {
            t.server_rss_per_connection_bytes
                .map(|b| b * t.subscribers_connected as f64)
        }),
        kernel_sockets: sum_opt(&|t| {
            t.kernel_socket_bytes_per_connection
                .map(|b| b * t.subscribers_connected as f64)
        }),
        loadgen_rss: sum_opt(&|t| {
            t.loadgen_rss_per_subscriber_bytes
                .map(|b| b * t.subscribers_connected as f64)
        }),
    };

    let h = merge_histograms(parts)?;

    let mut reasons: Vec<String> = Vec::new();
    for t in all() {
        for r in &t.loadgen_saturation_reasons {
            if !reasons.contains(r) {
                reasons.push(r.clone());
            }
        }
    }
    let mut per_run: BTreeMap<_, Vec<Option<f64>>> = BTreeMap::new();
    for t in all() {
        for (metric, runs) in runs_of(t) {
            per_run.entry(metric).or_default().extend(runs);
        }
    }

    let mut merged = TransportResult {
        transport: first.transport,
        subscribers: sum(|t| t.subscribers),
        subscribers_connected: sum(|t| t.subscribers_connected),
        published: sum(|t| t.published),
        publish_failures: sum(|t| t.publish_failures),
        expected: sum(|t| t.expected),
        delivered: sum(|t| t.delivered),
        lost: sum(|t| t.lost),
        lost_announced: sum(|t| t.lost_announced),
        duplicates: sum(|t| t.duplicates),
        out_of_order: sum(|t| t.out_of_order),
        unexpected: sum(|t| t.unexpected),
        gaps: sum(|t| t.gaps),
        latency_us: h.latency_us,
        latency_from_server_us: h.latency_from_server_us,
        connect_us: h.connect_us,
        tls_handshake_us: h.tls_handshake_us,
        tls_resumed_handshakes: parts
            .iter()
            .filter_map(|(_, t)| t.tls_resumed_handshakes)
            .reduce(|a, b| a + b),
        first_byte_us: h.first_byte_us,
        subscribed_us: h.subscribed_us,
        reconnect_us: h.reconnect_us,
        faults: all().flat_map(|t| t.faults.iter().cloned()).collect(),
        failed_connects: sum(|t| t.failed_connects),
        reconnects: sum(|t| t.reconnects),
        errors: sum(|t| t.errors),
        heartbeats: sum(|t| t.heartbeats),
        requests: sum(|t| t.requests),
        empty_polls: sum(|t| t.empty_polls),
        requests_cut: sum(|t| t.requests_cut),
        requests_per_delivery: None,
        bytes_received: sum(|t| t.bytes_received),
        bytes_sent: sum(|t| t.bytes_sent),
        bytes_per_delivery: None,
        publisher_bytes_sent: sum(|t| t.publisher_bytes_sent),
        publisher_bytes_received: sum(|t| t.publisher_bytes_received),
        server_rss_before_bytes: max_opt(|t| t.server_rss_before_bytes),
        server_rss_connected_bytes: max_opt(|t| t.server_rss_connected_bytes),
        server_rss_peak_bytes: max_opt(|t| t.server_rss_peak_bytes),
        // Drift is a property of one run (one server process over its window): it does not merge.
        server_rss_after_warmup_bytes: None,
        server_rss_end_bytes: None,
        server_fds_after_warmup: None,
        server_fds_end: None,
        server_drift_samples: None,
        server_rss_slope_percent: None,
        server_fds_slope: None,
        idle_bytes_per_hour: mean_opt(all().map(|t| t.idle_bytes_per_hour)),
        idle_packets_per_hour: mean_opt(all().map(|t| t.idle_packets_per_hour)),
        server_rss_per_connection_bytes: None,
        server_cpu_ms: sum_opt(&|t| t.server_cpu_ms),
        server_cpu_ms_per_1k_deliveries: None,
        server_fds: max_opt(|t| t.server_fds),
        loadgen_cpu_percent: window_weighted(|t| Some(t.loadgen_cpu_percent)).unwrap_or(0.0),
        loadgen_rss_bytes: max_opt(|t| t.loadgen_rss_bytes),
        loadgen_rss_per_subscriber_bytes: None,
        link: all()
            .map(|t| t.link)
            .reduce(|a, b| Some(a?.plus(&b?)))
            .flatten(),
        packets_per_delivery: None,
        retransmits: all()
            .map(|t| t.retransmits)
            .try_fold(0, |sum, r| r.map(|r| sum + r)),
        loadgen_fds: all().map(|t| t.loadgen_fds).max().unwrap_or(0),
        loadgen_workers: first.loadgen_workers,
        subscribers_live_at_first_publish: all().map(|t| t.subscribers_live_at_first_publish).sum(),
        kernel_socket_bytes_before: max_opt(|t| t.kernel_socket_bytes_before),
        kernel_socket_bytes_connected: max_opt(|t| t.kernel_socket_bytes_connected),
        kernel_socket_bytes_per_connection: None,
        loadgen_lag_p99_us: all().map(|t| t.loadgen_lag_p99_us).max().unwrap_or(0),
        machine_cpu_busy_percent: window_weighted(|t| t.machine_cpu_busy_percent),
        loadgen_saturated: all().any(|t| t.loadgen_saturated),
        loadgen_saturation_reasons: reasons,
        noise: all().find_map(|t| t.noise.clone()),
        publish_lateness_us: h.publish_lateness_us,
        window_s,
        model: first.model,
        histograms: h.serialized,
        goose: merge_goose(all().map(|t| t.goose.as_slice())),
        server_stats: all().next_back().and_then(|t| t.server_stats.clone()),
        nodes: merge_nodes(all().map(|t| t.nodes.as_slice())),
        bus: all().next_back().and_then(|t| t.bus.clone()),
        last_error: all().filter_map(|t| t.last_error.clone()).next_back(),
        spread: per_run
            .into_iter()
            .map(|(m, runs)| (m.name().to_owned(), Spread::of(runs)))
            .collect(),
        // Threshold outcomes describe one result: the caller evaluates them again on the merge.
        thresholds: Vec::new(),
    };
    derive(&mut merged, growth);
    Ok(merged)
}

/// The mean of the values present (the runs' idle windows are equally long); `None` when none is.
fn mean_opt(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let present: Vec<f64> = values.flatten().collect();
    (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64)
}

/// Every histogram of the parts added: the serialized sums, and their summaries.
struct MergedHistograms {
    serialized: SerializedHistograms,
    latency_us: Percentiles,
    latency_from_server_us: Percentiles,
    connect_us: Percentiles,
    tls_handshake_us: Option<Percentiles>,
    first_byte_us: Percentiles,
    subscribed_us: Percentiles,
    reconnect_us: Option<Percentiles>,
    publish_lateness_us: Percentiles,
}

/// The merge of an optional histogram: present when any part has it (parts without it contribute
/// nothing: a cleartext part has no TLS handshakes, a part where nothing was lost no reconnects).
fn merged_optional(
    parts: &[(&str, &TransportResult)],
    name: &'static str,
    get: impl Fn(&SerializedHistograms) -> Option<&String> + Copy,
) -> Result<(Option<String>, Option<Percentiles>), MergeError> {
    let present: Vec<(&str, &TransportResult)> = parts
        .iter()
        .filter(|(_, t)| get(&t.histograms).is_some())
        .copied()
        .collect();
    if present.is_empty() {
        return Ok((None, None));
    }
    let (text, percentiles) = merged_histogram(&present, name, get)?;
    Ok((Some(text), Some(percentiles)))
}

fn merge_histograms(parts: &[(&str, &TransportResult)]) -> Result<MergedHistograms, MergeError> {
    let (latency_text, latency_us) =
        merged_histogram(parts, "latency_us", |h| Some(&h.latency_us))?;
    let (from_server_text, latency_from_server_us) =
        merged_histogram(parts, "latency_from_server_us", |h| {
            Some(&h.latency_from_server_us)
        })?;
    let (connect_text, connect_us) =
        merged_histogram(parts, "connect_us", |h| h.connect_us.as_ref())?;
    let (tls_text, tls_handshake_us) =
        merged_optional(parts, "tls_handshake_us", |h| h.tls_handshake_us.as_ref())?;
    let (reconnect_text, reconnect_us) =
        merged_optional(parts, "reconnect_us", |h| h.reconnect_us.as_ref())?;
    let (first_byte_text, first_byte_us) =
        merged_histogram(parts, "first_byte_us", |h| h.first_byte_us.as_ref())?;
    let (subscribed_text, subscribed_us) =
        merged_histogram(parts, "subscribed_us", |h| h.subscribed_us.as_ref())?;
    let (lateness_text, publish_lateness_us) =
        merged_histogram(parts, "publish_lateness_us", |h| {
            h.publish_lateness_us.as_ref()
        })?;

    Ok(MergedHistograms {
        serialized: SerializedHistograms {
            latency_us: latency_text,
            latency_from_server_us: from_server_text,
            connect_us: Some(connect_text),
            tls_handshake_us: tls_text,
            first_byte_us: Some(first_byte_text),
            subscribed_us: Some(subscribed_text),
            reconnect_us: reconnect_text,
            publish_lateness_us: Some(lateness_text),
        },
        latency_us,
        latency_from_server_us,
        connect_us,
        tls_handshake_us,
        first_byte_us,
        subscribed_us,
        reconnect_us,
        publish_lateness_us,
    })
}

/// A cluster's nodes, position by position: subscribers and CPU summed, memory and fds the largest
/// (per-connection memory pooled as for the totals); empty unless every run had the same node count.
fn merge_nodes<'a>(runs: impl Iterator<Item = &'a [NodeResult]>) -> Vec<NodeResult> {
    let runs: Vec<&[NodeResult]> = runs.collect();
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    if first.is_empty() || runs.iter().any(|r| r.len() != first.len()) {
        return Vec::new();
    }
    (0..first.len())
        .map(|i| {
            let all = || runs.iter().map(move |r| &r[i]);
            let subscribers: u64 = all().map(|n| n.subscribers).sum();
            let growth: Option<f64> = all().try_fold(0.0, |acc, n| {
                n.rss_per_connection_bytes
                    .map(|b| acc + b * n.subscribers as f64)
            });
            NodeResult {
                addr: first[i].addr.clone(),
                subscribers,
                rss_connected_bytes: all().filter_map(|n| n.rss_connected_bytes).max(),
                rss_per_connection_bytes: growth
                    .filter(|_| subscribers > 0)
                    .map(|g| g / subscribers as f64),
                cpu_ms: all().try_fold(0.0, |acc, n| n.cpu_ms.map(|c| acc + c)),
                fds: all().filter_map(|n| n.fds).max(),
                stats: all().next_back().and_then(|n| n.stats.clone()),
            }
        })
        .collect()
}

/// goose rows by name: counts summed, means weighted by count, maxima the largest.
pub fn merge_goose<'a>(runs: impl Iterator<Item = &'a [GooseRow]>) -> Vec<GooseRow> {
    let mut rows: Vec<GooseRow> = Vec::new();
    for run in runs {
        for row in run {
            match rows.iter_mut().find(|r| r.name == row.name) {
                Some(r) => {
                    let (n, m) = ((r.success + r.fail) as f64, (row.success + row.fail) as f64);
                    if n + m > 0.0 {
                        r.mean_us = (r.mean_us * n + row.mean_us * m) / (n + m);
                    }
                    r.success += row.success;
                    r.fail += row.fail;
                    r.max_us = r.max_us.max(row.max_us);
                }
                None => rows.push(row.clone()),
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Metric, test_result};

    #[test]
    fn merge_equals_the_union_of_the_runs() {
        let a: Vec<u64> = (1..=1000).map(|i| i * 37).collect();
        let b: Vec<u64> = (1..=300).map(|i| 50_000 + i * 911).collect();
        let mut ra = test_result(&a);
        ra.transports[0].lost = 2;
        ra.transports[0].retransmits = Some(7);
        let mut rb = test_result(&b);
        rb.transports[0].retransmits = Some(5);
        let union = test_result(&[a.clone(), b.clone()].concat());

        let merged = merge(&[("a".into(), ra), ("b".into(), rb)]).unwrap();
        let (m, u) = (&merged.transports[0], &union.transports[0]);
        assert_eq!(merged.runs, 2);
        // Percentiles come from the summed histogram: exactly those of one histogram of both runs.
        assert_eq!(m.latency_us, u.latency_us);
        assert_eq!(m.latency_us.count, 1300);
        assert_eq!(
            decode_histogram(&m.histograms.latency_us).unwrap(),
            decode_histogram(&u.histograms.latency_us).unwrap()
        );
        // Counters summed, ratios recomputed from the sums.
        assert_eq!((m.delivered, m.lost, m.requests), (1300, 2, 200));
        assert_eq!(m.retransmits, Some(12));
        assert_eq!(m.requests_per_delivery, Some(200.0 / 1300.0));
        assert_eq!(m.bytes_per_delivery, Some(300.0));
        assert_eq!(m.server_rss_per_connection_bytes, Some(4096.0));
        // Each run's value is kept, with median and range.
        let lost = &m.spread[Metric::Lost.name()];
        assert_eq!(lost.runs, vec![Some(2.0), Some(0.0)]);
        assert_eq!(
            (lost.min, lost.max, lost.median),
            (Some(0.0), Some(2.0), Some(1.0))
        );

        // A merged result merges again exactly.
        let again = merge(&[("ab".into(), merged), ("b".into(), test_result(&b))]).unwrap();
        assert_eq!(again.runs, 3);
        assert_eq!(again.transports[0].latency_us.count, 1600);
        // test_result's 0 added to the 12.
        assert_eq!(again.transports[0].retransmits, Some(12));
        assert_eq!(
            again.transports[0].spread[Metric::Lost.name()].runs.len(),
            3
        );
    }

    #[test]
    fn other_scenarios_and_old_results_are_refused() {
        let a = test_result(&[1_000]);
        let mut b = a.clone();
        b.scenario["payload_bytes"] = 128.into();
        let e = merge(&[("a".into(), a.clone()), ("b".into(), b)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("b is a run of a different workload than a"),
            "{e}"
        );
        assert!(e.contains("`payload_bytes`: 64 vs 128"), "{e}");

        let mut old = a.clone();
        old.transports[0].histograms.connect_us = None;
        let e = merge(&[("a".into(), a), ("old".into(), old)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("old") && e.contains("connect_us"), "{e}");
    }
}
