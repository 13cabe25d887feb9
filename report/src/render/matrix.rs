//! `pushbench matrix`: one scenario run under several networks, rendered as the page an engineer takes to
//! the meeting — rows are networks, columns transports, one table per figure (latency, bytes and packets
//! per delivery, the subscribers' retransmissions, server memory per connection, and with an idle window the bytes and packets an idle
//! subscriber costs per hour) with the best cell of each row marked, and in HTML a chart of median
//! latency against the measured round trip per transport. A figure no run measured gets no table.
//!
//! Everything is computed from the runs' results alone; `matrix.json` holds the cells and where each
//! run's own result is.

use std::fmt::Write as _;
use std::io::{self, Write};

use pushbench_common::Transport;
use serde::Serialize;

use super::html::{STYLE, esc};
use crate::result::{RunResult, TransportResult};

/// One row of the matrix: a network and the run under it.
#[derive(Debug, Clone)]
pub struct Row {
    /// The network's label (a preset's name, or `rtt_ms=50` for a sweep).
    pub label: String,
    /// Where the run's own result and reports are, relative to the matrix page.
    pub dir: String,
    /// The run's result.
    pub result: RunResult,
}

/// A figure of the matrix: its title, unit and how to read it from a transport's result.
struct Figure {
    title: &'static str,
    about: &'static str,
    value: fn(&TransportResult) -> Option<f64>,
    show: fn(f64) -> String,
}

const FIGURES: &[Figure] = &[
    Figure {
        title: "Latency p50 (ms)",
        about: "median from the publisher's intended send time to receipt",
        value: |t| (t.latency_us.count > 0).then_some(t.latency_us.p50 as f64 / 1000.0),
        show: |v| format!("{v:.1}"),
    },
    Figure {
        title: "Latency p99 (ms)",
        about: "99th percentile, same clock",
        value: |t| (t.latency_us.count > 0).then_some(t.latency_us.p99 as f64 / 1000.0),
        show: |v| format!("{v:.1}"),
    },
    Figure {
        title: "Bytes per delivery",
        about: "both directions at the subscribers' sockets: headers, framing, heartbeats",
        value: |t| t.bytes_per_delivery,
        show: |v| format!("{v:.0}"),
    },
    Figure {
        title: "Packets per delivery",
        about: "through the emulated link, both directions (– on loopback, which has no link to count on)",
        value: |t| t.packets_per_delivery,
        show: |v| format!("{v:.2}"),
    },
    Figure {
        title: "Retransmissions",
        about: "TCP segments the subscribers' sockets sent again over the run (requests, handshakes, frames; the server's resends are not counted)",
        value: |t| t.retransmits.map(|n| n as f64),
        show: |v| format!("{v:.0}"),
    },
    Figure {
        title: "Server memory per connection (KiB)",
        about: "server RSS growth over the launch / connected subscribers",
        value: |t| t.server_rss_per_connection_bytes.map(|b| b / 1024.0),
        show: |v| format!("{v:.1}"),
    },
    Figure {
        title: "Idle KiB per subscriber-hour",
        about: "at the subscribers' sockets while every subscriber was connected and nothing was published (the scenario's `idle_s`): heartbeats, empty polls, long-poll renewals",
        value: |t| t.idle_bytes_per_hour.map(|b| b / 1024.0),
        show: |v| format!("{v:.1}"),
    },
    Figure {
        title: "Idle packets per subscriber-hour",
        about: "the same through the emulated link, both directions: what a phone's radio wakes for while nothing happens (– on loopback)",
        value: |t| t.idle_packets_per_hour,
        show: |v| format!("{v:.0}"),
    },
];

/// The figures some row measured: the others would be tables of dashes (no `idle_s`, all loopback).
fn measured(rows: &[Row]) -> impl Iterator<Item = &'static Figure> + '_ {
    FIGURES.iter().filter(|f| {
        rows.iter()
            .any(|r| r.result.transports.iter().any(|t| (f.value)(t).is_some()))
    })
}

/// The cells of `matrix.json`.
#[derive(Debug, Serialize)]
struct JsonRow<'a> {
    network: &'a str,
    measured_rtt_ms: Option<f64>,
    result: String,
    transports: Vec<JsonCell>,
    warnings: &'a [String],
}

#[derive(Debug, Serialize)]
struct JsonCell {
    transport: Transport,
    latency_p50_ms: Option<f64>,
    latency_p99_ms: Option<f64>,
    bytes_per_delivery: Option<f64>,
    packets_per_delivery: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retransmits: Option<u64>,
    server_rss_per_connection_kib: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_bytes_per_hour: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_packets_per_hour: Option<f64>,
    lost: u64,
    duplicates: u64,
}

/// The transports of the matrix's columns, in the first run's order.
fn transports(rows: &[Row]) -> Vec<Transport> {
    let mut out: Vec<Transport> = Vec::new();
    for row in rows {
        for t in &row.result.transports {
            if !out.contains(&t.transport) {
                out.push(t.transport);
            }
        }
    }
    out
}

fn cell(row: &Row, t: Transport) -> Option<&TransportResult> {
    row.result.transports.iter().find(|r| r.transport == t)
}

/// A row's values of `figure`, one per column, and which is best.
fn row_of(row: &Row, columns: &[Transport], figure: &Figure) -> (Vec<Option<f64>>, Option<usize>) {
    let values: Vec<Option<f64>> = columns
        .iter()
        .map(|&t| cell(row, t).and_then(figure.value))
        .collect();
    let best = best(&values);
    (values, best)
}

/// Index of the lowest value of a row (the best: every figure here is a cost), when two or more differ.
fn best(values: &[Option<f64>]) -> Option<usize> {
    let present: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    if present.len() < 2 {
        return None;
    }
    present
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|&(i, _)| i)
}

fn rtt_label(row: &Row) -> String {
    row.result.network.as_ref().map_or("loopback".into(), |n| {
        format!("{:.1} ms", n.measured_rtt_ms)
    })
}

/// Writes `matrix.json`.
pub fn write_json(rows: &[Row], w: impl Write) -> io::Result<()> {
    let columns = transports(rows);
    let json: Vec<JsonRow> = rows
        .iter()
        .map(|row| JsonRow {
            network: &row.label,
            measured_rtt_ms: row.result.network.as_ref().map(|n| n.measured_rtt_ms),
            result: format!("{}/result.json", row.dir),
            transports: columns
                .iter()
                .filter_map(|&t| cell(row, t))
                .map(|t| JsonCell {
                    transport: t.transport,
                    latency_p50_ms: (FIGURES[0].value)(t),
                    latency_p99_ms: (FIGURES[1].value)(t),
                    bytes_per_delivery: t.bytes_per_delivery,
                    packets_per_delivery: t.packets_per_delivery,
                    retransmits: t.retransmits,
                    server_rss_per_connection_kib: t
                        .server_rss_per_connection_bytes
                        .map(|b| b / 1024.0),
                    idle_bytes_per_hour: t.idle_bytes_per_hour,
                    idle_packets_per_hour: t.idle_packets_per_hour,
                    lost: t.lost,
                    duplicates: t.duplicates,
                })
                .collect(),
            warnings: &row.result.warnings,
        })
        .collect();
    serde_json::to_writer_pretty(w, &json).map_err(io::Error::other)
}

/// Writes `matrix.md`.
pub fn write_md(scenario: &str, rows: &[Row], mut w: impl Write) -> io::Result<()> {
    let columns = transports(rows);
    writeln!(w, "# pushbench matrix: `{scenario}`\n")?;
    writeln!(
        w,
        "The same scenario under each network, emulated per packet between the subscribers and the server (the publisher stands beside the server). Best cell of each row in **bold**. Each run's full report is in its directory.\n"
    )?;
    writeln!(w, "| network | measured RTT | run |")?;
    writeln!(w, "|---|---:|---|")?;
    for row in rows {
        writeln!(
            w,
            "| {} | {} | [{}/report.md]({}/report.md) |",
            row.label,
            rtt_label(row),
            row.dir,
            row.dir
        )?;
    }
    for figure in measured(rows) {
        writeln!(w, "\n## {}\n\n{}.\n", figure.title, figure.about)?;
        write!(w, "| network |")?;
        for t in &columns {
            write!(w, " {t} |")?;
        }
        writeln!(w)?;
        writeln!(w, "|---|{}", "---:|".repeat(columns.len()))?;
        for row in rows {
            let (values, best) = row_of(row, &columns, figure);
            write!(w, "| {} |", row.label)?;
            for (i, v) in values.iter().enumerate() {
                match v {
                    Some(v) if best == Some(i) => write!(w, " **{}** |", (figure.show)(*v))?,
                    Some(v) => write!(w, " {} |", (figure.show)(*v))?,
                    None => write!(w, " – |")?,
                }
            }
            writeln!(w)?;
        }
    }
    let warnings: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.result
                .warnings
                .iter()
                .map(move |w| format!("{}: {w}", r.label))
        })
        .collect();
    if !warnings.is_empty() {
        writeln!(w, "\n## Warnings\n")?;
        for warning in warnings {
            writeln!(w, "- {warning}")?;
        }
    }
    Ok(())
}

/// Writes `matrix.html`: the tables and, when at least two rows have a network, median latency against
/// the measured round trip per transport.
pub fn write_html(scenario: &str, rows: &[Row], mut w: impl Write) -> io::Result<()> {
    let columns = transports(rows);
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>pushbench matrix: {s}</title><style>{STYLE}</style></head><body><h1>pushbench matrix: <code>{s}</code></h1><p>The same scenario under each network, emulated per packet between the subscribers and the server (the publisher stands beside the server). Best cell of each row in bold.</p>",
        s = esc(scenario)
    );
    page.push_str("<table><tr><th>network</th><th>measured RTT</th><th>run</th></tr>");
    for row in rows {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td><a href=\"{d}/report.html\">{d}</a></td></tr>",
            esc(&row.label),
            esc(&rtt_label(row)),
            d = esc(&row.dir)
        );
    }
    page.push_str("</table>");
    if let Some(chart) = latency_chart(rows, &columns) {
        page.push_str("<h2>Median latency against the round trip</h2>");
        page.push_str(&chart);
    }
    for figure in measured(rows) {
        let _ = write!(
            page,
            "<h2>{}</h2><p>{}.</p><table><tr><th>network</th>",
            esc(figure.title),
            esc(figure.about)
        );
        for t in &columns {
            let _ = write!(page, "<th>{t}</th>");
        }
        page.push_str("</tr>");
        for row in rows {
            let (values, best) = row_of(row, &columns, figure);
            let _ = write!(page, "<tr><td>{}</td>", esc(&row.label));
            for (i, v) in values.iter().enumerate() {
                match v {
                    Some(v) if best == Some(i) => {
                        let _ = write!(page, "<td><b>{}</b></td>", (figure.show)(*v));
                    }
                    Some(v) => {
                        let _ = write!(page, "<td>{}</td>", (figure.show)(*v));
                    }
                    None => page.push_str("<td>–</td>"),
                }
            }
            page.push_str("</tr>");
        }
        page.push_str("</table>");
    }
    for row in rows {
        for warning in &row.result.warnings {
            let _ = write!(
                page,
                "<p class=\"warn\">Warning ({}): {}</p>",
                esc(&row.label),
                esc(warning)
            );
        }
    }
    page.push_str("</body></html>\n");
    w.write_all(page.as_bytes())
}

/// An inline SVG line chart: x the measured RTT, y the median latency, one line per transport.
fn latency_chart(rows: &[Row], columns: &[Transport]) -> Option<String> {
    let points: Vec<(f64, &Row)> = rows
        .iter()
        .filter_map(|r| r.result.network.as_ref().map(|n| (n.measured_rtt_ms, r)))
        .collect();
    if points.len() < 2 {
        return None;
    }
    let (width, height, pad) = (640.0, 320.0, 48.0);
    let max_x = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let max_y = points
        .iter()
        .flat_map(|(_, r)| r.result.transports.iter().filter_map(FIGURES[0].value))
        .fold(1.0, f64::max);
    let x = |v: f64| pad + v / max_x * (width - 2.0 * pad);
    let y = |v: f64| height - pad - v / max_y * (height - 2.0 * pad);
    const COLOURS: [&str; 6] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    ];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"median latency against round trip\">\
         <line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#888\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"#888\"/>\
         <text x=\"{r}\" y=\"{tb}\" text-anchor=\"end\" font-size=\"12\">measured RTT, ms (max {max_x:.0})</text>\
         <text x=\"4\" y=\"{ty}\" font-size=\"12\">p50 ms (max {max_y:.0})</text>",
        b = height - pad,
        r = width - pad,
        tb = height - 12.0,
        ty = pad - 12.0,
    );
    for (i, &t) in columns.iter().enumerate() {
        let mut line: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|(rtt, row)| cell(row, t).and_then(FIGURES[0].value).map(|v| (*rtt, v)))
            .collect();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = line
            .iter()
            .map(|&(a, b)| format!("{:.1},{:.1}", x(a), y(b)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/><text x=\"{}\" y=\"{}\" fill=\"{colour}\" font-size=\"12\">{t}</text>",
            path.join(" "),
            width - pad + 4.0,
            pad + 14.0 * i as f64
        );
    }
    svg.push_str("</svg>");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{AskedNetwork, LinkCounts, NetworkResult, test_result};

    fn row(label: &str, rtt_ms: Option<f64>, latencies_us: &[u64]) -> Row {
        let mut result = test_result(latencies_us);
        result.network = rtt_ms.map(|rtt| {
            Box::new(NetworkResult {
                profile: label.into(),
                asked: AskedNetwork {
                    rtt_ms: rtt,
                    jitter_ms: 0.0,
                    loss_pct: 0.0,
                    down_kbit: 0,
                    up_kbit: 0,
                },
                measured_rtt_ms: rtt,
                link: LinkCounts::default(),
                engine: Default::default(),
            })
        });
        Row {
            label: label.into(),
            dir: label.into(),
            result,
        }
    }

    #[test]
    fn rows_are_networks_and_the_lowest_cost_of_a_row_is_marked() {
        let mut slow = row("4g", Some(60.0), &[40_000, 41_000, 42_000]);
        let mut poll = slow.result.transports[0].clone();
        poll.transport = Transport::Poll;
        poll.latency_us.p50 = 90_000;
        slow.result.transports.push(poll);
        let rows = [row("loopback", None, &[1_000]), slow];
        let mut md = Vec::new();
        write_md("quick", &rows, &mut md).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(md.contains("| network | ws | poll |"), "{md}");
        assert!(md.contains("| 4g | **41.0** | 90.0 |"), "{md}");
        assert!(
            md.contains("| loopback | 1.0 | – |"),
            "a lone cell is not marked: {md}"
        );
        let retransmits = &md[md.find("## Retransmissions").expect(&md)..];
        assert!(retransmits.contains("| loopback | 0 | – |"), "{md}");
        assert!(
            md.contains("| 4g | 60.0 ms | [4g/report.md](4g/report.md) |"),
            "{md}"
        );

        let mut html = Vec::new();
        write_html("quick", &rows, &mut html).unwrap();
        let html = String::from_utf8(html).unwrap();
        assert!(!html.contains("<svg"), "one networked row makes no chart");
        let mut json = Vec::new();
        write_json(&rows, &mut json).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(json[1]["transports"][1]["latency_p50_ms"], 90.0);
        assert_eq!(json[1]["transports"][1]["retransmits"], 0);
        assert_eq!(json[1]["measured_rtt_ms"], 60.0);
    }

    #[test]
    fn idle_costs_get_their_tables_only_when_a_run_measured_them() {
        let mut quiet = row("4g", Some(60.0), &[40_000]);
        let mut poll = quiet.result.transports[0].clone();
        poll.transport = Transport::Poll;
        poll.idle_bytes_per_hour = Some(174.4 * 1024.0);
        poll.idle_packets_per_hour = Some(2171.0);
        let ws = &mut quiet.result.transports[0];
        ws.idle_bytes_per_hour = Some(1.9 * 1024.0);
        ws.idle_packets_per_hour = Some(754.0);
        quiet.result.transports.push(poll);
        let rows = [row("loopback", None, &[1_000]), quiet];
        let mut md = Vec::new();
        write_md("idle", &rows, &mut md).unwrap();
        let md = String::from_utf8(md).unwrap();
        let idle = &md[md.find("## Idle KiB per subscriber-hour").expect(&md)..];
        assert!(idle.contains("| 4g | **1.9** | 174.4 |"), "{md}");
        let packets = &md[md.find("## Idle packets per subscriber-hour").expect(&md)..];
        assert!(packets.contains("| 4g | **754** | 2171 |"), "{md}");
        assert!(packets.contains("| loopback | – | – |"), "{md}");

        let mut html = Vec::new();
        write_html("idle", &rows, &mut html).unwrap();
        let html = String::from_utf8(html).unwrap();
        assert!(
            html.contains("<h2>Idle packets per subscriber-hour</h2>")
                && html.contains("<td><b>754</b></td><td>2171</td>"),
            "{html}"
        );
        let mut json = Vec::new();
        write_json(&rows, &mut json).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(json[1]["transports"][1]["idle_packets_per_hour"], 2171.0);
        assert!(
            json[0]["transports"][0]
                .get("idle_packets_per_hour")
                .is_none()
        );

        // Without an idle window neither table is written.
        let rows = [row("loopback", None, &[1_000])];
        let mut md = Vec::new();
        write_md("quick", &rows, &mut md).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(!md.contains("Idle"), "{md}");
    }

    #[test]
    fn a_sweep_draws_latency_against_the_round_trip() {
        let rows = [
            row("rtt_ms=0", Some(0.0), &[1_000]),
            row("rtt_ms=100", Some(100.0), &[51_000]),
        ];
        let mut html = Vec::new();
        write_html("quick", &rows, &mut html).unwrap();
        let html = String::from_utf8(html).unwrap();
        assert!(html.contains("<polyline"), "{html}");
        assert!(html.contains(">ws</text>"), "{html}");
    }
}
