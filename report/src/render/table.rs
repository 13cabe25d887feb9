//! The comparison table, shared by the terminal summary and `report.md`.

use std::io::{self, Write};

use super::{RunResult, TransportResult, ms, opt};

/// Column headers.
pub const HEADERS: [&str; 14] = [
    "transport",
    "subs",
    "delivered/expected",
    "lost",
    "dup",
    "ooo",
    "p50 ms",
    "p99 ms",
    "max ms",
    "req/deliv",
    "B/deliv",
    "srv KiB/conn",
    "srv CPU ms/1k",
    "loadgen CPU%",
];

/// One row of the table.
pub fn row(r: &TransportResult) -> [String; 14] {
    [
        format!(
            "{}{}",
            r.transport,
            if r.loadgen_saturated {
                " (SATURATED)"
            } else {
                ""
            }
        ),
        format!("{}/{}", r.subscribers_connected, r.subscribers),
        format!("{}/{}", r.delivered, r.expected),
        r.lost.to_string(),
        r.duplicates.to_string(),
        r.out_of_order.to_string(),
        ms(r.latency_us.p50 as f64),
        ms(r.latency_us.p99 as f64),
        ms(r.latency_us.max as f64),
        opt(r.requests_per_delivery, 3),
        opt(r.bytes_per_delivery, 0),
        opt(r.server_rss_per_connection_bytes.map(|b| b / 1024.0), 1),
        opt(r.server_cpu_ms_per_1k_deliveries, 2),
        format!("{:.0}", r.loadgen_cpu_percent),
    ]
}

/// Writes the table with aligned columns for a terminal.
pub fn write_text<W: Write>(result: &RunResult, w: W) -> io::Result<()> {
    let rows: Vec<Vec<String>> = result.transports.iter().map(|r| row(r).to_vec()).collect();
    write_aligned(&HEADERS, &rows, 1, w)
}

/// Writes the table in Markdown.
pub fn write_markdown<W: Write>(result: &RunResult, w: W) -> io::Result<()> {
    let rows: Vec<Vec<String>> = result.transports.iter().map(|r| row(r).to_vec()).collect();
    write_markdown_rows(&HEADERS, &rows, 1, w)
}

/// Output format of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Text,
    /// A Markdown table, ready to paste into a pull request.
    Markdown,
}

/// Writes any table in `format`; the first `left` columns are aligned left.
pub fn write_rows<W: Write>(
    format: Format,
    headers: &[&str],
    rows: &[Vec<String>],
    left: usize,
    w: W,
) -> io::Result<()> {
    match format {
        Format::Text => write_aligned(headers, rows, left, w),
        Format::Markdown => write_markdown_rows(headers, rows, left, w),
    }
}

/// Writes any table with aligned columns for a terminal: the first `left` columns aligned left (names),
/// the others right (figures).
pub fn write_aligned<W: Write>(
    headers: &[&str],
    rows: &[Vec<String>],
    left: usize,
    mut w: W,
) -> io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < left {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    writeln!(w, "{}", line(&headers))?;
    writeln!(
        w,
        "{}",
        widths
            .iter()
            .map(|&n| "-".repeat(n))
            .collect::<Vec<_>>()
            .join("  ")
    )?;
    for r in rows {
        writeln!(w, "{}", line(r))?;
    }
    Ok(())
}

/// Writes any table in Markdown, the first `left` columns aligned left.
pub fn write_markdown_rows<W: Write>(
    headers: &[&str],
    rows: &[Vec<String>],
    left: usize,
    mut w: W,
) -> io::Result<()> {
    writeln!(w, "| {} |", headers.join(" | "))?;
    writeln!(
        w,
        "|{}",
        (0..headers.len())
            .map(|i| if i < left { "---|" } else { "---:|" })
            .collect::<String>()
    )?;
    for r in rows {
        writeln!(w, "| {} |", r.join(" | "))?;
    }
    Ok(())
}

/// Writes every outcome of `result` as a table (one row each: PASS/FAIL, transport, threshold, measured
/// value) and a count line `thresholds: N passed, M failed`; nothing when there are none.
pub fn write_outcomes<W: Write>(result: &RunResult, format: Format, mut w: W) -> io::Result<()> {
    let rows: Vec<Vec<String>> = result
        .transports
        .iter()
        .flat_map(|t| {
            t.thresholds.iter().map(move |o| {
                vec![
                    if o.passed { "PASS" } else { "FAIL" }.to_owned(),
                    t.transport.to_string(),
                    o.threshold.clone(),
                    o.value
                        .map_or_else(|| "not measured".to_owned(), |v| format!("{v:.3}")),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    write_rows(
        format,
        &["", "transport", "threshold", "measured"],
        &rows,
        3,
        &mut w,
    )?;
    if format == Format::Markdown {
        writeln!(w)?;
    }
    let failed = rows.iter().filter(|r| r[0] == "FAIL").count();
    writeln!(
        w,
        "thresholds: {} passed, {failed} failed",
        rows.len() - failed
    )
}
