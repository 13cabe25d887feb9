//! The side-by-side report of `pushbench run SCENARIO --peers ours,nchan,pushpin`: per transport, one row
//! per server, from each server's own `result.json` (written in `<out>/<server>/`).
//!
//! Written as `<out>/peers.md` (and printed), with `<out>/peers.json` holding the same rows and
//! `<out>/peers.html` the same table with bar charts per transport (one bar per server). The rate
//! column is the rate **delivered at the scenario's load** (`delivered / window`), not a searched maximum:
//! the header says so. Transports a peer does not offer are shown as "not offered", never as figures; in
//! the charts, a saturated run is likewise shown as text, not as a bar. With the floor reference among
//! the servers (`--peers ours,nchan,floor`), a column gives every server's CPU per delivery as a ratio of
//! the floor's on the same transport in the same run: what its user space adds to the kernel's cost.

use std::io::Write;

use pushbench_common::Transport;
use serde::Serialize;

use crate::targets::deployment::ServerName;
use pushbench_report::result::{RunResult, TransportResult};

/// One row of the side-by-side table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Transport.
    pub transport: Transport,
    /// Server (`ours`, `nchan`, `pushpin`).
    pub server: &'static str,
    /// `measured`, `not offered`, `not run`, or `failed: <error>`.
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
    /// Server CPU per delivery ÷ the floor reference's on this transport in this run, when both were
    /// measured.
    pub cpu_vs_floor: Option<f64>,
}

/// What one server of `--peers` produced.
#[derive(Debug)]
pub enum ServerRun {
    /// A run's result.
    Ran(RunResult),
    /// The server could not be run.
    Failed(String),
}

/// Builds the rows for `transports` over every server's outcome, its clients connecting as `client` says.
pub fn rows(
    transports: &[Transport],
    servers: &[(ServerName, ServerRun)],
    client: &crate::scenario::ClientOptions,
) -> Vec<Row> {
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
                cpu_vs_floor: None,
            };
            if let Some(why) = name.not_offered(t, client) {
                rows.push(blank(why));
                continue;
            }
            let result = match outcome {
                ServerRun::Failed(e) => {
                    rows.push(blank(format!("failed: {e}")));
                    continue;
                }
                ServerRun::Ran(r) => r.transports.iter().find(|r| r.transport == t),
            };
            match result {
                None => rows.push(blank("not run".into())),
                Some(r) => rows.push(row_of(t, name.as_str(), r)),
            }
        }
    }
    for i in 0..rows.len() {
        let floor_cpu = floor_row(&rows, rows[i].transport).and_then(|f| f.cpu_s_per_million);
        rows[i].cpu_vs_floor = match (rows[i].cpu_s_per_million, floor_cpu) {
            (Some(cpu), Some(floor)) if floor > 0.0 => Some(cpu / floor),
            _ => None,
        };
    }
    rows
}

/// The floor reference's row of `transport`, when the floor was among the servers.
fn floor_row(rows: &[Row], transport: Transport) -> Option<&Row> {
    let floor = ServerName::Floor.as_str();
    rows.iter()
        .find(|r| r.transport == transport && r.server == floor)
}

/// The `CPU ÷ floor` cell of a measured row: the ratio (marked when either run was flagged saturated, as
/// such a ratio describes the machine more than the servers), or why there is none.
fn floor_cell(r: &Row, rows: &[Row]) -> String {
    let Some(floor) = floor_row(rows, r.transport) else {
        return "–".to_owned();
    };
    match r.cpu_vs_floor {
        Some(ratio) if r.saturated || floor.saturated => format!("{ratio:.2}× (saturated)"),
        Some(ratio) => format!("{ratio:.2}×"),
        None if floor.status != "measured" => format!(
            "floor: {}",
            floor.status.split(':').next().unwrap_or(&floor.status)
        ),
        None => "–".to_owned(),
    }
}

/// Whether the floor reference was among the servers (then the tables have a `CPU ÷ floor` column).
fn with_floor(rows: &[Row]) -> bool {
    rows.iter().any(|r| r.server == ServerName::Floor.as_str())
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
        cpu_vs_floor: None,
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "–".to_owned(), f)
}

/// Writes the table as Markdown.
pub fn write_md(rows: &[Row], scenario: &str, mut out: impl Write) -> std::io::Result<()> {
    writeln!(out, "# {scenario}: servers side by side\n")?;
    writeln!(out, "{}\n", intro(rows))?;
    let headers = headers(rows);
    writeln!(out, "| {} |", headers.join(" | "))?;
    writeln!(out, "|---|---|{}", "---:|".repeat(headers.len() - 2))?;
    for r in rows {
        match cells(r, rows) {
            Cells::Status(status) => writeln!(
                out,
                "| {} | {} | {status} |{}",
                r.transport,
                r.server,
                " |".repeat(headers.len() - 3)
            )?,
            Cells::Figures(cells) => writeln!(out, "| {} |", cells.join(" | "))?,
        }
    }
    if let Some(saturated) = saturated(rows) {
        writeln!(
            out,
            "\nSATURATED (the figures describe the load generator or the machine): {saturated}"
        )?;
    }
    Ok(())
}

/// What the tables say above them (Markdown emphasis included).
const INTRO: &str = "Same scenario, same load generator, one fresh server per transport. Latency is measured \
     from the publisher's intended send time carried in each event; completeness from a sequence number \
     carried in each event (peers) or the server's id (ours). **delivered/s is the rate delivered at this \
     scenario's load, not a maximum.** Memory is the RSS growth of all the server's processes per connected \
     subscriber; CPU is all its processes' user + system time over publishing and drain.";

/// What the tables add when the floor reference is among the servers.
const FLOOR_INTRO: &str = " CPU ÷ floor divides a server's CPU per delivery by the floor reference's \
     (pushbench-floor: each event written to each socket with one write, nothing else) on the same \
     transport in this run: 1.00× is the kernel's cost with next to no user space, the rest is what the \
     server's user space adds.";

/// The text above the tables.
fn intro(rows: &[Row]) -> String {
    if with_floor(rows) {
        format!("{INTRO}{FLOOR_INTRO}")
    } else {
        INTRO.to_owned()
    }
}

/// The column headers: [`HEADERS`], and `CPU ÷ floor` when the floor was among the servers.
fn headers(rows: &[Row]) -> Vec<&'static str> {
    let mut headers = HEADERS.to_vec();
    if with_floor(rows) {
        headers.push("CPU ÷ floor");
    }
    headers
}

const HEADERS: [&str; 10] = [
    "transport",
    "server",
    "subscribers",
    "server RSS / subscriber",
    "server CPU s / 1M deliveries",
    "delivered/s (at load)",
    "p50",
    "p99",
    "lost",
    "dup+ooo",
];

/// A row's cells: its status alone when nothing was measured, else every figure.
enum Cells {
    Status(String),
    Figures(Vec<String>),
}

fn cells(r: &Row, rows: &[Row]) -> Cells {
    if r.status != "measured" {
        return Cells::Status(r.status.clone());
    }
    let mut cells = vec![
        r.transport.to_string(),
        r.server.to_owned(),
        opt(r.subscribers, |(c, n)| format!("{c}/{n}")),
        opt(r.rss_per_subscriber_bytes, |b| {
            format!("{:.1} KiB", b / 1024.0)
        }),
        opt(r.cpu_s_per_million, |c| format!("{c:.2}")),
        opt(r.delivered_per_s, |d| format!("{d:.0}")),
        opt(r.p50_us, ms),
        opt(r.p99_us, ms),
        opt(r.lost, |l| l.to_string()),
        opt(r.dup_ooo, |l| l.to_string()),
    ];
    if with_floor(rows) {
        cells.push(floor_cell(r, rows));
    }
    Cells::Figures(cells)
}

/// "sse on nchan, ..." for the saturated rows, if any.
fn saturated(rows: &[Row]) -> Option<String> {
    let saturated: Vec<String> = rows
        .iter()
        .filter(|r| r.saturated)
        .map(|r| format!("{} on {}", r.transport, r.server))
        .collect();
    (!saturated.is_empty()).then(|| saturated.join(", "))
}

/// A server's colour in the charts (the same in every chart).
fn colour(server: &str) -> usize {
    match server {
        "ours" => 3,
        "nchan" => 2,
        "floor" => 4,
        _ => 1,
    }
}

/// One bar of a chart: the figure, or why there is none (the row's status, "saturated", "not measured").
fn bar(r: &Row, figure: Option<f64>) -> Result<f64, String> {
    if r.status != "measured" {
        // The short form ("not offered", "failed"); the table holds the reason.
        let short = r.status.split(':').next().unwrap_or(&r.status);
        return Err(short.to_owned());
    }
    if r.saturated {
        return Err("saturated: the machine's figure, not the server's".to_owned());
    }
    figure.ok_or_else(|| "not measured".to_owned())
}

/// Writes `peers.html`: the table of `peers.md` and, per transport, bar charts of memory per idle
/// subscriber, CPU per million deliveries and p50/p99 latency, one bar per server; self-contained (inline
/// CSS and SVG, no script, no network).
pub fn write_html(rows: &[Row], scenario: &str, mut out: impl Write) -> std::io::Result<()> {
    use pushbench_report::render::html::{STYLE, bar_chart, esc};
    use std::fmt::Write as _;
    let mut page = String::new();
    let title = format!("{scenario}: servers side by side");
    let intro = esc(&intro(rows))
        .replacen("**", "<strong>", 1)
        .replacen("**", "</strong>", 1);
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>pushbench: {t}</title>\
         <style>{STYLE}tr.saturated td{{background:#fee}}td.status{{text-align:left;color:#666}}</style></head><body><h1>{t}</h1><p>{intro}</p><table><tr>",
        t = esc(&title)
    );
    let headers = headers(rows);
    for h in &headers {
        let _ = write!(page, "<th>{}</th>", esc(h));
    }
    page.push_str("</tr>");
    for r in rows {
        match cells(r, rows) {
            Cells::Status(status) => {
                let _ = write!(
                    page,
                    "<tr><td>{}</td><td>{}</td><td class=\"status\" colspan=\"{}\">{}</td></tr>",
                    r.transport,
                    r.server,
                    headers.len() - 2,
                    esc(&status)
                );
            }
            Cells::Figures(cells) => {
                page.push_str(if r.saturated {
                    "<tr class=\"saturated\">"
                } else {
                    "<tr>"
                });
                for cell in cells {
                    let _ = write!(page, "<td>{}</td>", esc(&cell));
                }
                page.push_str("</tr>");
            }
        }
    }
    page.push_str("</table>");
    if let Some(saturated) = saturated(rows) {
        let _ = write!(
            page,
            "<p class=\"warn\">SATURATED (the figures describe the load generator or the machine, and \
             are not drawn): {}</p>",
            esc(&saturated)
        );
    }
    let mut transports: Vec<Transport> = Vec::new();
    for r in rows {
        if !transports.contains(&r.transport) {
            transports.push(r.transport);
        }
    }
    for t in transports {
        let of_t: Vec<&Row> = rows.iter().filter(|r| r.transport == t).collect();
        let bars =
            |figure: &dyn Fn(&Row) -> Option<f64>| -> Vec<(usize, String, Result<f64, String>)> {
                of_t.iter()
                    .map(|r| (colour(r.server), r.server.to_owned(), bar(r, figure(r))))
                    .collect()
            };
        let _ = write!(
            page,
            "<section id=\"{t}\"><h2>{t}</h2><div class=\"charts\">"
        );
        page.push_str(&bar_chart(
            "Server memory per idle subscriber",
            "KiB",
            &bars(&|r| r.rss_per_subscriber_bytes.map(|b| b / 1024.0)),
        ));
        page.push_str(&bar_chart(
            "Server CPU per million deliveries",
            "s",
            &bars(&|r| r.cpu_s_per_million),
        ));
        page.push_str(&bar_chart(
            "Latency p50",
            "ms",
            &bars(&|r| r.p50_us.map(|us| us as f64 / 1000.0)),
        ));
        page.push_str(&bar_chart(
            "Latency p99",
            "ms",
            &bars(&|r| r.p99_us.map(|us| us as f64 / 1000.0)),
        ));
        page.push_str("</div></section>");
    }
    page.push_str("</body></html>\n");
    out.write_all(page.as_bytes())
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// `pushbench run SCENARIO --peers ours,nchan,pushpin`: runs the scenario against each server in turn
/// (each into `out_dir/<server>/`, with its own result.json and reports), then writes `peers.md`,
/// `peers.json` and `peers.html` side by side and prints the table. A server that fails is reported as
/// failed; the others still run. Returns an error only when nothing could be written. `workers`
/// load-generator processes hold the subscribers of every server alike.
pub fn run_peers(
    scenario: std::sync::Arc<crate::scenario::Scenario>,
    servers: &[ServerName],
    server_bin: Option<&std::path::Path>,
    out_dir: &std::path::Path,
    progress: bool,
    workers: usize,
    network: Option<std::sync::Arc<crate::network::placement::Emulated>>,
) -> anyhow::Result<Vec<Row>> {
    use anyhow::Context;
    let rt = crate::util::runtime()?;
    let mut outcomes = Vec::new();
    for &name in servers {
        eprintln!("pushbench: === {} ===", name.as_str());
        let dir = out_dir.join(name.as_str());
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let server = match crate::run::ServerSource::of(name, server_bin) {
            Ok(server) => server,
            Err(e) => {
                outcomes.push((name, ServerRun::Failed(e.to_string())));
                continue;
            }
        };
        let options = crate::run::RunOptions {
            server,
            out_dir: dir.clone(),
            progress,
            workers,
            cluster: 1,
            network: network.clone(),
        };
        let outcome = match rt.block_on(crate::run::run(scenario.clone(), &options)) {
            Ok(result) => {
                pushbench_report::render::write_all(&result, &dir)?;
                for w in &result.warnings {
                    eprintln!("WARNING: {}: {w}", name.as_str());
                }
                ServerRun::Ran(result)
            }
            // An interrupted run stops them all: the servers after it would be measured for nothing.
            Err(e @ crate::run::RunError::Interrupted(_)) => return Err(e.into()),
            Err(e) => {
                eprintln!("pushbench: {}: {e:#}", name.as_str());
                ServerRun::Failed(format!("{e:#}"))
            }
        };
        outcomes.push((name, outcome));
    }
    let rows = rows(&scenario.transports, &outcomes, &scenario.client);
    let md = out_dir.join("peers.md");
    let file =
        std::fs::File::create(&md).with_context(|| format!("cannot write {}", md.display()))?;
    write_md(&rows, &scenario.name, std::io::BufWriter::new(file))?;
    let json = out_dir.join("peers.json");
    let file =
        std::fs::File::create(&json).with_context(|| format!("cannot write {}", json.display()))?;
    serde_json::to_writer_pretty(std::io::BufWriter::new(file), &rows)?;
    let html = out_dir.join("peers.html");
    let file =
        std::fs::File::create(&html).with_context(|| format!("cannot write {}", html.display()))?;
    write_html(&rows, &scenario.name, std::io::BufWriter::new(file))
        .with_context(|| format!("cannot write {}", html.display()))?;
    write_md(&rows, &scenario.name, std::io::stdout().lock())?;
    println!(
        "\nwrote {0}/peers.md, {0}/peers.json, {0}/peers.html and one directory per server",
        out_dir.display()
    );
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{ClientOptions, HttpVersion};
    use crate::targets::peer::PeerKind;

    #[test]
    fn peers_show_not_offered_and_failures_never_figures() {
        let servers = vec![
            (ServerName::Ours, ServerRun::Failed("boom".into())),
            (
                ServerName::Peer(PeerKind::Pushpin),
                ServerRun::Failed("x".into()),
            ),
        ];
        let rows = rows(
            &[Transport::Poll, Transport::LongPoll],
            &servers,
            &ClientOptions::default(),
        );
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].status, "failed: boom");
        assert_eq!(rows[1].status, "not offered");
        assert_eq!(rows[3].status, "failed: x");
        assert!(rows.iter().all(|r| r.p99_us.is_none()));
        let mut md = Vec::new();
        write_md(&rows, "quick", &mut md).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(md.contains("| poll | pushpin | not offered |"), "{md}");
        assert!(md.contains("not a maximum"));
    }

    #[test]
    fn over_h2_the_peers_say_what_they_do_not_offer_and_why() {
        let servers = vec![
            (ServerName::Ours, ServerRun::Failed("boom".into())),
            (
                ServerName::Peer(PeerKind::Nchan),
                ServerRun::Failed("x".into()),
            ),
            (
                ServerName::Peer(PeerKind::Pushpin),
                ServerRun::Failed("y".into()),
            ),
        ];
        let h2 = ClientOptions {
            tls: true,
            http: HttpVersion::Http2,
            subscribers_per_connection: 10,
            tls_resumption: true,
        };
        let rows = rows(&[Transport::Sse, Transport::Ws], &servers, &h2);
        let status: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
        assert_eq!(&status[..2], ["failed: boom", "failed: x"]);
        assert!(
            status[2].starts_with("not offered over h2: Pushpin's condure 1.9 speaks HTTP/1"),
            "{}",
            status[2]
        );
        assert_eq!(status[3], "failed: boom");
        assert!(
            status[4].starts_with("not offered over h2: nginx 1.22 has no WebSocket over HTTP/2"),
            "{}",
            status[4]
        );
        assert_eq!(status[5], status[2]);
        // The charts give the short form, the table the reason.
        assert_eq!(bar(&rows[4], None), Err("not offered over h2".to_owned()));
        let mut md = Vec::new();
        write_md(&rows, "quick", &mut md).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(
            md.contains("| ws | nchan | not offered over h2: nginx 1.22 has no WebSocket"),
            "{md}"
        );
    }

    /// Ours measured poll and ws at 10 s per million deliveries; nchan ws at `nchan_cpu`; the floor ws at
    /// 4 s per million (its poll: not offered).
    fn with_floor(nchan_cpu: f64, floor_saturated: bool) -> Vec<Row> {
        let ws = crate::test_result(&[1_000, 2_000, 40_000]);
        let mut ours = ws.clone();
        let mut poll = ours.transports[0].clone();
        poll.transport = Transport::Poll;
        ours.transports.insert(0, poll);
        let mut nchan = ws.clone();
        nchan.transports[0].server_cpu_ms_per_1k_deliveries = Some(nchan_cpu);
        let mut floor = ws;
        floor.transports[0].server_cpu_ms_per_1k_deliveries = Some(4.0);
        floor.transports[0].loadgen_saturated = floor_saturated;
        let servers = vec![
            (ServerName::Ours, ServerRun::Ran(ours)),
            (ServerName::Peer(PeerKind::Nchan), ServerRun::Ran(nchan)),
            (ServerName::Floor, ServerRun::Ran(floor)),
        ];
        rows(
            &[Transport::Poll, Transport::Ws],
            &servers,
            &ClientOptions::default(),
        )
    }

    fn md(rows: &[Row]) -> String {
        let mut md = Vec::new();
        write_md(rows, "fanout", &mut md).unwrap();
        String::from_utf8(md).unwrap()
    }

    #[test]
    fn cpu_is_shown_as_a_ratio_of_the_floor_per_transport() {
        let rows = with_floor(6.0, false);
        let ratios: Vec<Option<f64>> = rows.iter().map(|r| r.cpu_vs_floor).collect();
        // poll: ours measured but no floor figure; nchan ran no poll; the floor does not offer it.
        assert_eq!(ratios, [None, None, None, Some(2.5), Some(1.5), Some(1.0)]);
        assert_eq!(rows[2].status, "not offered");
        let md = md(&rows);
        assert!(md.contains("| CPU ÷ floor |"), "{md}");
        assert!(
            md.contains("1.00× is the kernel's cost with next to no user space"),
            "{md}"
        );
        let line = |server: &str, transport: &str| {
            md.lines()
                .find(|l| l.starts_with(&format!("| {transport} | {server} |")))
                .unwrap_or_else(|| panic!("no {transport} row of {server}: {md}"))
                .to_owned()
        };
        assert!(line("ours", "ws").ends_with("| 2.50× |"), "{md}");
        assert!(line("nchan", "ws").ends_with("| 1.50× |"), "{md}");
        assert!(line("floor", "ws").ends_with("| 1.00× |"), "{md}");
        assert!(
            line("ours", "poll").ends_with("| floor: not offered |"),
            "{md}"
        );
        // A status row spans every column, the ratio's too: 11 cells.
        assert_eq!(line("floor", "poll").matches('|').count(), 12, "{md}");
        assert_eq!(line("ours", "ws").matches('|').count(), 12, "{md}");
        let mut html = Vec::new();
        write_html(&rows, "fanout", &mut html).unwrap();
        let html = String::from_utf8(html).unwrap();
        assert!(html.contains("<th>CPU ÷ floor</th>"));
        assert!(html.contains("<td>2.50×</td>") && html.contains("<td>floor: not offered</td>"));
        assert!(html.contains(
            "<td>poll</td><td>floor</td><td class=\"status\" colspan=\"9\">not offered</td>"
        ));
    }

    #[test]
    fn a_ratio_against_a_saturated_run_says_so() {
        let md = md(&with_floor(6.0, true));
        assert!(md.contains("| 2.50× (saturated) |"), "{md}");
        assert!(md.contains("| 1.00× (saturated) |"), "{md}");
    }

    #[test]
    fn without_the_floor_there_is_no_ratio_column() {
        let md = md(&fixture_rows());
        assert!(!md.contains("floor"), "{md}");
        assert_eq!(
            md.lines()
                .find(|l| l.starts_with("| ws | ours |"))
                .unwrap()
                .matches('|')
                .count(),
            11,
            "{md}"
        );
    }

    /// Ours measured poll and ws; nchan ran ws only (its poll run is missing: not run); Pushpin ran ws
    /// saturated (poll: not offered).
    fn fixture_rows() -> Vec<Row> {
        let ws = crate::test_result(&[1_000, 2_000, 40_000]);
        let mut ours = ws.clone();
        let mut poll = ours.transports[0].clone();
        poll.transport = Transport::Poll;
        ours.transports.insert(0, poll);
        let mut pushpin = ws.clone();
        pushpin.transports[0].loadgen_saturated = true;
        let servers = vec![
            (ServerName::Ours, ServerRun::Ran(ours)),
            (ServerName::Peer(PeerKind::Nchan), ServerRun::Ran(ws)),
            (ServerName::Peer(PeerKind::Pushpin), ServerRun::Ran(pushpin)),
        ];
        rows(
            &[Transport::Poll, Transport::Ws],
            &servers,
            &ClientOptions::default(),
        )
    }

    /// The `<svg>…</svg>` elements of `html` inside `<section id="{id}">`.
    fn charts<'a>(html: &'a str, id: &str) -> Vec<&'a str> {
        let start = html
            .find(&format!("<section id=\"{id}\">"))
            .unwrap_or_else(|| panic!("no section {id}"));
        let section = &html[start..start + html[start..].find("</section>").unwrap()];
        section
            .split("<svg")
            .skip(1)
            .map(|s| &s[..s.find("</svg>").unwrap()])
            .collect()
    }

    #[test]
    fn peers_html_has_the_table_and_a_bar_per_measured_server_only() {
        let rows = fixture_rows();
        let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
        assert_eq!(statuses[0], "measured");
        assert_eq!(statuses[1], "not run", "{statuses:?}");
        assert_eq!(statuses[2], "not offered");
        let mut html = Vec::new();
        write_html(&rows, "quick", &mut html).unwrap();
        let html = String::from_utf8(html).unwrap();
        assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>\n"));
        assert!(!html.contains("<script") && !html.contains("src=\"http"));
        // The table: a row per (transport, server), the states as text across the figure columns.
        assert_eq!(html.matches("<tr").count(), 1 + rows.len());
        assert!(html.contains(
            "<td>poll</td><td>pushpin</td><td class=\"status\" colspan=\"8\">not offered</td>"
        ));
        assert!(html.contains("<tr class=\"saturated\"><td>ws</td><td>pushpin</td>"));
        assert!(html.contains("<strong>delivered/s is the rate delivered at this scenario"));
        assert!(html.contains("SATURATED") && html.contains("ws on pushpin"));
        // Charts: four per transport, memory, CPU, p50, p99.
        assert_eq!(html.matches("<svg").count(), 8);
        let poll = charts(&html, "poll");
        assert_eq!(poll.len(), 4);
        for chart in &poll {
            // One bar (ours); nchan and Pushpin are named with their state, never drawn.
            assert_eq!(chart.matches("<rect").count(), 1, "{chart}");
            assert!(chart.contains(">not offered</text>"), "{chart}");
            assert!(chart.contains(">not run</text>"), "{chart}");
            assert!(chart.contains(">pushpin</text>") && chart.contains(">nchan</text>"));
        }
        assert!(poll[0].contains("4.00 KiB"), "ours' memory: {}", poll[0]);
        for chart in charts(&html, "ws") {
            // ours and nchan drawn; Pushpin's saturated run is text.
            assert_eq!(chart.matches("<rect").count(), 2, "{chart}");
            assert!(chart.contains(">saturated: the machine"), "{chart}");
        }
        let p99 = rows[3].p99_us.unwrap() as f64 / 1000.0;
        assert!((40.0..41.0).contains(&p99), "the fixture's p99: {p99}");
        let label = format!("{} ms", pushbench_report::render::html::format_value(p99));
        assert!(charts(&html, "ws")[3].contains(&label), "{label}");
    }
}
