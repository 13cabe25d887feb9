//! The side-by-side report of `pushbench run SCENARIO --peers ours,nchan,pushpin`: per transport, one row
//! per server, from each server's own `result.json` (written in `<out>/<server>/`).
//!
//! Written as `<out>/peers.md` (and printed), with `<out>/peers.json` holding the same rows. The rate
//! column is the rate **delivered at the scenario's load** (`delivered / window`), not a searched maximum:
//! the header says so. Transports a peer does not offer are shown as "not offered", those it offers but
//! this profile does not drive as "not profiled", never as figures.

use std::io::Write;

use pushbench_common::Transport;
use serde::Serialize;

use super::{Offer, ServerName};
use crate::report::{RunResult, TransportResult};

/// One row of the side-by-side table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Transport.
    pub transport: Transport,
    /// Server (`ours`, `nchan`, `pushpin`).
    pub server: &'static str,
    /// `measured`, `not offered`, `not profiled: <why>`, or `failed: <error>`.
    pub status: String,
    /// Subscribers connected / started.
    pub subscribers: Option<(u64, u64)>,
    /// Server RSS growth per connected subscriber (all the server's processes), bytes.
    pub rss_per_subscriber_bytes: Option<f64>,
    /// Server CPU seconds per million deliveries (= ms per thousand).
    pub cpu_s_per_million: Option<f64>,
    /// Deliveries per second at the scenario's load (delivered / measured window).
    pub delivered_per_s: Option<f64>,
    /// Latency from the publisher's intended send time, µs.
    pub p50_us: Option<u64>,
    /// Same, 99th percentile.
    pub p99_us: Option<u64>,
    /// Owed events never received.
    pub lost: Option<u64>,
    /// Duplicates plus out-of-order receipts.
    pub dup_ooo: Option<u64>,
    /// Whether the figures describe the load generator or the machine, not the server.
    pub saturated: bool,
}

/// What one server of `--peers` produced.
#[derive(Debug)]
pub enum Outcome {
    /// A run's result.
    Ran(RunResult),
    /// The server could not be run.
    Failed(String),
}

/// Builds the rows for `transports` over every server's outcome.
pub fn rows(transports: &[Transport], servers: &[(ServerName, Outcome)]) -> Vec<Row> {
    let mut rows = Vec::new();
    for &t in transports {
        for (name, outcome) in servers {
            let blank = |status: String| Row {
                transport: t,
                server: name.as_str(),
                status,
                subscribers: None,
                rss_per_subscriber_bytes: None,
                cpu_s_per_million: None,
                delivered_per_s: None,
                p50_us: None,
                p99_us: None,
                lost: None,
                dup_ooo: None,
                saturated: false,
            };
            if let ServerName::Peer(kind) = name {
                match kind.profile().offer(t) {
                    Offer::NotOffered => {
                        rows.push(blank("not offered".into()));
                        continue;
                    }
                    Offer::NotProfiled(why) => {
                        rows.push(blank(format!("not profiled: {why}")));
                        continue;
                    }
                    Offer::Offered(_) => {}
                }
            }
            let result = match outcome {
                Outcome::Failed(e) => {
                    rows.push(blank(format!("failed: {e}")));
                    continue;
                }
                Outcome::Ran(r) => r.transports.iter().find(|r| r.transport == t),
            };
            match result {
                None => rows.push(blank("not run".into())),
                Some(r) => rows.push(row_of(t, name.as_str(), r)),
            }
        }
    }
    rows
}

fn row_of(t: Transport, server: &'static str, r: &TransportResult) -> Row {
    let measured = r.latency_us.count > 0;
    Row {
        transport: t,
        server,
        status: "measured".into(),
        subscribers: Some((r.subscribers_connected, r.subscribers)),
        rss_per_subscriber_bytes: r.server_rss_per_connection_bytes,
        cpu_s_per_million: r.server_cpu_ms_per_1k_deliveries,
        delivered_per_s: (r.window_s > 0.0).then(|| r.delivered as f64 / r.window_s),
        p50_us: measured.then_some(r.latency_us.p50),
        p99_us: measured.then_some(r.latency_us.p99),
        lost: Some(r.lost),
        dup_ooo: Some(r.duplicates + r.out_of_order),
        saturated: r.loadgen_saturated,
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "–".to_owned(), f)
}

/// Writes the table as Markdown.
pub fn write_md(rows: &[Row], scenario: &str, mut out: impl Write) -> std::io::Result<()> {
    writeln!(out, "# {scenario}: servers side by side\n")?;
    writeln!(
        out,
        "Same scenario, same load generator, one fresh server per transport. Latency is measured from the \
         publisher's intended send time carried in each event; completeness from a sequence number carried \
         in each event (peers) or the server's id (ours). **delivered/s is the rate delivered at this \
         scenario's load, not a maximum.** Memory is the RSS growth of all the server's processes per \
         connected subscriber; CPU is all its processes' user + system time over publishing and drain.\n"
    )?;
    writeln!(
        out,
        "| transport | server | subscribers | server RSS / subscriber | server CPU s / 1M deliveries | delivered/s (at load) | p50 | p99 | lost | dup+ooo |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for r in rows {
        if r.status != "measured" {
            writeln!(
                out,
                "| {} | {} | {} | | | | | | | |",
                r.transport, r.server, r.status
            )?;
            continue;
        }
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.transport,
            r.server,
            opt(r.subscribers, |(c, n)| format!("{c}/{n}")),
            opt(r.rss_per_subscriber_bytes, |b| format!(
                "{:.1} KiB",
                b / 1024.0
            )),
            opt(r.cpu_s_per_million, |c| format!("{c:.2}")),
            opt(r.delivered_per_s, |d| format!("{d:.0}")),
            opt(r.p50_us, ms),
            opt(r.p99_us, ms),
            opt(r.lost, |l| l.to_string()),
            opt(r.dup_ooo, |l| l.to_string()),
        )?;
    }
    let saturated: Vec<String> = rows
        .iter()
        .filter(|r| r.saturated)
        .map(|r| format!("{} on {}", r.transport, r.server))
        .collect();
    if !saturated.is_empty() {
        writeln!(
            out,
            "\nSATURATED (the figures describe the load generator or the machine): {}",
            saturated.join(", ")
        )?;
    }
    Ok(())
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// `pushbench run SCENARIO --peers ours,nchan,pushpin`: runs the scenario against each server in turn
/// (each into `out_dir/<server>/`, with its own result.json and reports), then writes `peers.md` and
/// `peers.json` side by side and prints the table. A server that fails is reported as failed; the others
/// still run. Returns an error only when nothing could be written. `workers` load-generator processes
/// hold the subscribers of every server alike.
pub fn run_peers(
    scenario: std::sync::Arc<crate::scenario::Scenario>,
    servers: &[ServerName],
    server_bin: Option<&std::path::Path>,
    out_dir: &std::path::Path,
    progress: bool,
    workers: usize,
) -> anyhow::Result<Vec<Row>> {
    use anyhow::Context;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut outcomes = Vec::new();
    for &name in servers {
        eprintln!("pushbench: === {} ===", name.as_str());
        let dir = out_dir.join(name.as_str());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let server = match name {
            ServerName::Ours => match crate::server_proc::locate(server_bin) {
                Ok(bin) => crate::run::ServerSource::Spawn(bin),
                Err(e) => {
                    outcomes.push((name, Outcome::Failed(e.to_string())));
                    continue;
                }
            },
            ServerName::Peer(kind) => crate::run::ServerSource::Peer(kind),
        };
        let options = crate::run::RunOptions {
            server,
            out_dir: dir.clone(),
            progress,
            workers,
            cluster: 1,
        };
        let outcome = match rt.block_on(crate::run::run(scenario.clone(), &options)) {
            Ok(result) => {
                crate::cli::write_all(&result, &dir)?;
                for w in &result.warnings {
                    eprintln!("WARNING: {}: {w}", name.as_str());
                }
                Outcome::Ran(result)
            }
            // An interrupted run stops them all: the servers after it would be measured for nothing.
            Err(e @ crate::run::RunError::Interrupted(_)) => return Err(e.into()),
            Err(e) => {
                eprintln!("pushbench: {}: {e:#}", name.as_str());
                Outcome::Failed(format!("{e:#}"))
            }
        };
        outcomes.push((name, outcome));
    }
    let rows = rows(&scenario.transports, &outcomes);
    let md = out_dir.join("peers.md");
    let file =
        std::fs::File::create(&md).with_context(|| format!("cannot write {}", md.display()))?;
    write_md(&rows, &scenario.name, std::io::BufWriter::new(file))?;
    let json = out_dir.join("peers.json");
    let file =
        std::fs::File::create(&json).with_context(|| format!("cannot write {}", json.display()))?;
    serde_json::to_writer_pretty(std::io::BufWriter::new(file), &rows)?;
    write_md(&rows, &scenario.name, std::io::stdout().lock())?;
    println!(
        "\nwrote {0}/peers.md, {0}/peers.json and one directory per server",
        out_dir.display()
    );
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::PeerKind;

    #[test]
    fn peers_show_not_offered_and_failures_never_figures() {
        let servers = vec![
            (ServerName::Ours, Outcome::Failed("boom".into())),
            (
                ServerName::Peer(PeerKind::Pushpin),
                Outcome::Failed("x".into()),
            ),
        ];
        let rows = rows(&[Transport::Poll, Transport::LongPoll], &servers);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].status, "failed: boom");
        assert_eq!(rows[1].status, "not offered");
        assert!(rows[3].status.starts_with("not profiled"));
        assert!(rows.iter().all(|r| r.p99_us.is_none()));
        let mut md = Vec::new();
        write_md(&rows, "quick", &mut md).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(md.contains("| poll | pushpin | not offered |"), "{md}");
        assert!(md.contains("not a maximum"));
    }
}
