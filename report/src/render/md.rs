//! `report.md`: the comparison table, the reading, and the detail tables behind them.

use std::io::{self, Write};

use super::{RunResult, ms, opt, reading, table};

/// A one-line description of the workload, from the scenario as stored in the result.
pub fn workload(result: &RunResult) -> String {
    let s = &result.scenario;
    let num = |k: &str| s.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let fanout = s
        .get("fanout")
        .map(|f| match f.get("mode").and_then(|m| m.as_str()) {
            Some("multicast") => format!(
                "multicast to {} topics, {} per subscriber",
                f["topics"], f["per_subscriber"]
            ),
            Some(mode) => mode.to_owned(),
            None => "?".to_owned(),
        });
    let churn = s
        .get("churn")
        .filter(|c| !c.is_null())
        .map_or_else(String::new, |c| {
            format!(
                ", churn: {} of the subscribers reconnect every {} s",
                c["share"], c["every_s"]
            )
        });
    format!(
        "{} subscribers (launched at {}/s), {} events/s of {} B ({}), warm-up {} s, measured {} s, drain {} s, poll interval {} ms, long-poll timeout {} ms{churn}",
        num("subscribers"),
        num("launch_rate"),
        num("publish_rate"),
        num("payload_bytes"),
        fanout.unwrap_or_default(),
        num("warmup_s"),
        num("duration_s"),
        num("drain_s"),
        num("poll_interval_ms"),
        num("longpoll_timeout_ms"),
    )
}

/// Writes the Markdown report.
pub fn write<W: Write>(result: &RunResult, mut w: W) -> io::Result<()> {
    write_head(result, &mut w)?;
    writeln!(w, "## Comparison\n")?;
    table::write_markdown(result, &mut w)?;
    writeln!(
        w,
        "\nLatency is measured from the publisher's intended send time (open loop) to receipt; bytes are counted at the socket in both directions; server memory is RSS growth per connected subscriber.\n"
    )?;
    if result.transports.iter().any(|t| !t.thresholds.is_empty()) {
        writeln!(w, "## Thresholds\n")?;
        table::write_outcomes(result, table::Format::Markdown, &mut w)?;
        writeln!(w)?;
    }
    writeln!(w, "## Reading\n")?;
    for finding in reading::findings(result) {
        writeln!(w, "- {finding}")?;
    }
    write_measurement_tables(result, &mut w)?;
    let details = [memory_split(result)]
        .into_iter()
        .chain(cluster(result))
        .chain(faults(result))
        .chain(drift(result))
        .chain(idle(result));
    for (title, note, headers, rows) in details {
        writeln!(w, "\n## {title}\n\n{note}\n")?;
        writeln!(w, "| {} |", headers.join(" | "))?;
        writeln!(w, "|---{}|", "|---:".repeat(headers.len() - 1))?;
        for row in rows {
            writeln!(w, "| {} |", row.join(" | "))?;
        }
    }
    let errors: Vec<String> = result
        .transports
        .iter()
        .filter_map(|r| {
            r.last_error
                .as_ref()
                .map(|e| format!("- `{}`: {e}", r.transport))
        })
        .collect();
    if !errors.is_empty() {
        writeln!(w, "\n## Last error seen per transport\n")?;
        writeln!(w, "{}", errors.join("\n"))?;
    }
    Ok(())
}

/// The title, the workload and how it ran, the network, and the run's warnings.
fn write_head<W: Write>(result: &RunResult, w: &mut W) -> io::Result<()> {
    let name = result.scenario_name();
    writeln!(w, "# pushbench: `{name}`\n")?;
    if let Some(d) = result
        .scenario
        .get("description")
        .and_then(|d| d.as_str())
        .filter(|d| !d.is_empty())
    {
        writeln!(w, "{d}\n")?;
    }
    writeln!(w, "Workload: {}.\n", workload(result))?;
    writeln!(
        w,
        "Run {} → {} on {} CPUs; server: {}; {}.\n",
        result.started_at, result.finished_at, result.cpus, result.server, result.tool
    )?;
    if let Some(network) = &result.network {
        writeln!(
            w,
            "Network (emulated per packet between the subscribers and the server; the publisher stands beside the server): {}.\n",
            network.describe()
        )?;
    }
    if result.runs > 1 {
        writeln!(
            w,
            "Merged from {} runs: counters summed, histograms added, percentiles recomputed; each metric's median and range over the runs are in `result.json` (`spread`).\n",
            result.runs
        )?;
    }
    for warning in &result.warnings {
        writeln!(w, "> **Warning:** {warning}\n")?;
    }
    Ok(())
}

/// Latency detail, connection cost, wire and resources: one row per transport each.
fn write_measurement_tables<W: Write>(result: &RunResult, w: &mut W) -> io::Result<()> {
    writeln!(w, "\n## Latency detail (ms)\n")?;
    writeln!(
        w,
        "| transport | p50 | p90 | p99 | p99.9 | max | mean | from server ts p50 / p99 | publish lateness p99 |"
    )?;
    writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for r in &result.transports {
        let l = &r.latency_us;
        writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
            r.transport,
            ms(l.p50 as f64),
            ms(l.p90 as f64),
            ms(l.p99 as f64),
            ms(l.p999 as f64),
            ms(l.max as f64),
            ms(l.mean),
            ms(r.latency_from_server_us.p50 as f64),
            ms(r.latency_from_server_us.p99 as f64),
            ms(r.publish_lateness_us.p99 as f64)
        )?;
    }
    writeln!(w, "\n## Connection cost\n")?;
    writeln!(
        w,
        "| transport | TCP connect p50 / p99 ms | TLS handshake p50 / p99 ms | first byte or upgrade p50 / p99 ms | subscribed p50 / p99 ms | failed connects | reconnects | errors | server fds | loadgen fds |"
    )?;
    writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for r in &result.transports {
        writeln!(
            w,
            "| {} | {} / {} | {} | {} / {} | {} / {} | {} | {} | {} | {} | {} |",
            r.transport,
            ms(r.connect_us.p50 as f64),
            ms(r.connect_us.p99 as f64),
            r.tls_handshake_us
                .as_ref()
                .map_or("– (cleartext)".into(), |t| format!(
                    "{} / {} ({} of {} resumed)",
                    ms(t.p50 as f64),
                    ms(t.p99 as f64),
                    r.tls_resumed_handshakes.unwrap_or(0),
                    t.count
                )),
            ms(r.first_byte_us.p50 as f64),
            ms(r.first_byte_us.p99 as f64),
            ms(r.subscribed_us.p50 as f64),
            ms(r.subscribed_us.p99 as f64),
            r.failed_connects,
            r.reconnects,
            r.errors,
            r.server_fds.map_or("–".into(), |n| n.to_string()),
            r.loadgen_fds
        )?;
    }
    writeln!(w, "\n## Wire and resources\n")?;
    writeln!(
        w,
        "| transport | requests | empty polls | cut | bytes received | bytes sent | heartbeats | gaps | server RSS before / connected MiB | server CPU ms | loadgen RSS MiB | loadgen B/subscriber | loadgen lag p99 ms |"
    )?;
    writeln!(
        w,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    let mib = |b: Option<u64>| b.map_or("–".into(), |b| format!("{:.1}", b as f64 / 1048576.0));
    for r in &result.transports {
        writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} |",
            r.transport,
            r.requests,
            r.empty_polls,
            r.requests_cut,
            r.bytes_received,
            r.bytes_sent,
            r.heartbeats,
            r.gaps,
            mib(r.server_rss_before_bytes),
            mib(r.server_rss_connected_bytes),
            opt(r.server_cpu_ms, 0),
            mib(r.loadgen_rss_bytes),
            opt(r.loadgen_rss_per_subscriber_bytes, 0),
            ms(r.loadgen_lag_p99_us as f64)
        )?;
    }
    Ok(())
}

/// A detail table: title, a note under it, column headers, rows (the Markdown and HTML reports both
/// render these).
pub type Detail = (
    &'static str,
    &'static str,
    Vec<&'static str>,
    Vec<Vec<String>>,
);

/// Memory per connection, three ways: the server's RSS, the kernel's socket memory (both ends of a
/// loopback connection) and the load generator's RSS.
pub fn memory_split(result: &RunResult) -> Detail {
    let kib = |b: Option<f64>| b.map_or("–".into(), |b| format!("{:.1}", b / 1024.0));
    let rows = result
        .transports
        .iter()
        .map(|r| {
            let parts = [
                r.server_rss_per_connection_bytes,
                r.kernel_socket_bytes_per_connection,
                r.loadgen_rss_per_subscriber_bytes,
            ];
            let total = parts.iter().try_fold(0.0, |acc, p| p.map(|p| acc + p));
            vec![
                r.transport.to_string(),
                kib(parts[0]),
                kib(parts[1]),
                kib(parts[2]),
                kib(total),
                r.loadgen_workers.to_string(),
            ]
        })
        .collect();
    (
        "Memory per connection",
        "Growth from before the launch to all subscribed, divided by the subscribers connected. Kernel: \
         socket slabs (`TCP`, `TCPv6`, `sock_inode_cache`) and TCP buffer pages, machine-wide, counting \
         **both ends** of each loopback connection (server and client socket); other processes' sockets \
         move it too. Load generator: all its processes; includes what goose and the runtime allocate \
         for the launch, so it is meaningful at thousands of subscribers, not tens.",
        vec![
            "transport",
            "server RSS KiB",
            "kernel sockets KiB (both ends)",
            "load generator KiB",
            "total KiB",
            "loadgen processes",
        ],
        rows,
    )
}

/// A cluster's nodes and its Redis backplane, per transport; `None` for a single server.
pub fn cluster(result: &RunResult) -> Option<Detail> {
    if result.transports.iter().all(|r| r.nodes.is_empty()) {
        return None;
    }
    let mib = |b: Option<u64>| b.map_or("–".into(), |b| format!("{:.1}", b as f64 / 1048576.0));
    let mut rows = Vec::new();
    for r in &result.transports {
        for (i, n) in r.nodes.iter().enumerate() {
            let stat = |k: &str| {
                n.stats
                    .as_ref()
                    .and_then(|s| s["transports"][r.transport.as_str()][k].as_u64())
                    .map_or("–".into(), |v| v.to_string())
            };
            rows.push(vec![
                r.transport.to_string(),
                format!("node {i} ({})", n.addr),
                n.subscribers.to_string(),
                stat("deliveries"),
                stat("connections_total"),
                mib(n.rss_connected_bytes),
                opt(n.rss_per_connection_bytes.map(|b| b / 1024.0), 1),
                opt(n.cpu_ms, 0),
                n.fds.map_or("–".into(), |f| f.to_string()),
            ]);
        }
        if let Some(bus) = &r.bus {
            rows.push(vec![
                r.transport.to_string(),
                format!("redis ({})", bus.addr),
                "–".into(),
                "–".into(),
                "–".into(),
                mib(bus.rss_bytes),
                "–".into(),
                opt(bus.cpu_ms, 0),
                "–".into(),
            ]);
        }
    }
    Some((
        "Cluster",
        "Each subscriber's first connection goes to node `index mod nodes`, every reconnect to the next \
         node. Deliveries and connections are the node's own counts (`/stats`); Redis is not included in \
         the server figures above.",
        vec![
            "transport",
            "process",
            "first subscribers",
            "deliveries",
            "connections",
            "RSS MiB",
            "KiB/conn",
            "CPU ms",
            "fds",
        ],
        rows,
    ))
}

/// The faults a run injected and what they cost, per transport; `None` when it injected none.
pub fn faults(result: &RunResult) -> Option<Detail> {
    if result.transports.iter().all(|r| r.faults.is_empty()) {
        return None;
    }
    let rows = result
        .transports
        .iter()
        .map(|r| {
            let injected: Vec<String> = r
                .faults
                .iter()
                .map(|f| {
                    let node = f.node.map(|n| format!(" node {n}")).unwrap_or_default();
                    let down = f
                        .down_ms
                        .map(|d| format!(" (down {d:.0} ms)"))
                        .unwrap_or_default();
                    format!("{}{node} at {:.1} s{down}", f.kind, f.at_s)
                })
                .collect();
            vec![
                r.transport.to_string(),
                injected.join("; "),
                r.reconnect_us.as_ref().map_or("–".into(), |p| {
                    format!("{} / {}", ms(p.p50 as f64), ms(p.p99 as f64))
                }),
                format!("{} / {}", r.delivered, r.expected),
                r.lost_announced.to_string(),
                r.lost_silently().to_string(),
                r.duplicates.to_string(),
                r.gaps.to_string(),
                r.publish_failures.to_string(),
            ]
        })
        .collect();
    Some((
        "Faults",
        "Reconnect: a subscriber's connection lost (or refused) → the first event it received after \
         that. Lost events a gap notice named are *announced* (the embedded feed forgets its replay log \
         on a restart and says so); *silent* losses are the ones no notice covered. Publishes refused \
         while a server was down were never acknowledged, so nobody is owed them. A cut link stalls \
         connections rather than closing them (TCP retransmits once it is back): its cost shows in the \
         latency tail (p99, max) rather than in reconnects.",
        vec![
            "transport",
            "faults injected",
            "reconnect p50 / p99 ms",
            "delivered / owed",
            "lost, announced",
            "lost, silent",
            "duplicates",
            "gap notices",
            "publish failures",
        ],
        rows,
    ))
}

/// What subscribers cost while nothing is published (`idle_s`), per transport; `None` without an idle
/// window.
pub fn idle(result: &RunResult) -> Option<Detail> {
    if result
        .transports
        .iter()
        .all(|r| r.idle_bytes_per_hour.is_none())
    {
        return None;
    }
    let idle_s = result.scenario.get("idle_s").and_then(|v| v.as_f64());
    let rows = result
        .transports
        .iter()
        .map(|r| {
            vec![
                r.transport.to_string(),
                opt(r.idle_bytes_per_hour.map(|b| b / 1024.0), 1),
                opt(r.idle_packets_per_hour, 0),
            ]
        })
        .collect();
    Some((
        "Idle cost",
        if idle_s.is_some() {
            "Per subscriber and hour, measured over the scenario's `idle_s` with every subscriber \
             connected and nothing published: heartbeats, empty polls, long-poll renewals. Packets are \
             those the emulated link carried, both ways (none counted on loopback)."
        } else {
            "Per subscriber and hour, with nothing published."
        },
        vec!["transport", "KiB per hour", "packets per hour"],
        rows,
    ))
}

/// Measured windows at least this long get the drift table: a soak's question.
const DRIFT_MIN_WINDOW_S: f64 = 60.0;

/// The servers' memory and open files from the end of the warm-up to the end of the run, per transport;
/// `None` for short runs, where the replay log is still filling and drift means nothing.
pub fn drift(result: &RunResult) -> Option<Detail> {
    let long: Vec<_> = result
        .transports
        .iter()
        .filter(|r| r.window_s >= DRIFT_MIN_WINDOW_S && r.server_rss_end_bytes.is_some())
        .collect();
    if long.is_empty() {
        return None;
    }
    let mib = |b: Option<u64>| b.map_or("–".into(), |b| format!("{:.2}", b as f64 / 1048576.0));
    let count = |n: Option<u64>| n.map_or("–".into(), |n| n.to_string());
    let rows = long
        .iter()
        .map(|r| {
            let growth = r
                .server_rss_end_bytes
                .zip(r.server_rss_after_warmup_bytes)
                .filter(|&(_, base)| base > 0)
                .map(|(end, base)| (end as f64 - base as f64) / base as f64 * 100.0);
            vec![
                r.transport.to_string(),
                mib(r.server_rss_after_warmup_bytes),
                mib(r.server_rss_end_bytes),
                growth.map_or("–".into(), |g| format!("{g:+.2} %")),
                r.server_rss_slope_percent
                    .map_or("–".into(), |g| format!("{g:+.2} %")),
                count(r.server_drift_samples),
                count(r.server_fds_after_warmup),
                count(r.server_fds_end),
                r.server_fds_slope
                    .map_or("–".into(), |g| format!("{g:+.1}")),
            ]
        })
        .collect();
    Some((
        "Drift",
        "The servers' RSS and open files when the warm-up ended and at the end of the drain, subscribers \
         connected both times: after the warm-up (the replay log full, buffers grown) a server that \
         keeps nothing it should not stays flat. Growth compares the two end points; trend is the growth \
         over the window by the least-squares line through every sample (every 5 s), which tells a slow \
         leak from an allocator that breathes.",
        vec![
            "transport",
            "RSS after warm-up MiB",
            "RSS at end MiB",
            "growth",
            "RSS trend",
            "samples",
            "fds after warm-up",
            "fds at end",
            "fds trend",
        ],
        rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{FaultEvent, test_result};

    #[test]
    fn the_faults_table_tells_announced_losses_from_silent_ones_and_only_when_faults_ran() {
        let mut result = test_result(&[1_000; 10]);
        assert!(faults(&result).is_none());
        let r = &mut result.transports[0];
        r.faults.push(FaultEvent {
            kind: "restart".into(),
            node: Some(0),
            at_s: 3.0,
            down_ms: Some(12.4),
        });
        (r.expected, r.delivered, r.lost, r.lost_announced) = (100, 90, 10, 7);
        let (_, _, headers, rows) = faults(&result).expect("a fault ran");
        let cell = |name: &str| rows[0][headers.iter().position(|h| *h == name).unwrap()].clone();
        assert_eq!(
            cell("faults injected"),
            "restart node 0 at 3.0 s (down 12 ms)"
        );
        assert_eq!(cell("delivered / owed"), "90 / 100");
        assert_eq!(
            (cell("lost, announced"), cell("lost, silent")),
            ("7".into(), "3".into())
        );
        assert_eq!(cell("reconnect p50 / p99 ms"), "–");
    }

    #[test]
    fn the_drift_table_appears_for_long_runs_with_the_growth_after_warm_up() {
        let mut result = test_result(&[1_000; 10]);
        let r = &mut result.transports[0];
        (r.server_rss_after_warmup_bytes, r.server_rss_end_bytes) =
            (Some(10 << 20), Some(10_100 << 10));
        (r.server_fds_after_warmup, r.server_fds_end) = (Some(1010), Some(1010));
        (r.server_rss_slope_percent, r.server_drift_samples) = (Some(0.254), Some(361));
        r.server_fds_slope = Some(-1.26);
        assert!(drift(&result).is_none(), "a 6 s run has no drift table");
        result.transports[0].window_s = 600.0;
        let (_, _, headers, rows) = drift(&result).expect("a long run");
        let cell = |name: &str| rows[0][headers.iter().position(|h| *h == name).unwrap()].as_str();
        assert_eq!(cell("growth"), "-1.37 %");
        assert_eq!((cell("RSS trend"), cell("samples")), ("+0.25 %", "361"));
        assert_eq!(
            (cell("fds after warm-up"), cell("fds at end")),
            ("1010", "1010")
        );
        assert_eq!(cell("fds trend"), "-1.3");
    }
}
