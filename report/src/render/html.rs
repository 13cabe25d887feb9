//! `report.html`: one self-contained page (inline CSS and SVG, no script, no network) with the comparison
//! table, the reading, and four charts: latency distribution per transport, bytes and requests per
//! delivery, server memory per connection, server CPU per delivery.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::{RunResult, TransportResult, decode_histogram, md, reading, table};

/// One colour per transport, in [`pushbench_common::Transport::ALL`] order.
pub const COLOURS: [&str; 5] = ["#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd"];
/// Percentiles drawn on the latency curve.
const QUANTILES: [f64; 12] = [
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0,
];

/// The pages' inline style sheet (shared by the capacity and side-by-side pages).
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
    table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}\
    td:first-child,th:first-child{text-align:left}.warn{background:#fee;border:2px solid #c00;padding:.5em;font-weight:bold}\
    .charts{display:flex;flex-wrap:wrap;gap:1em}svg{background:#fafafa;border:1px solid #ddd}code{background:#f3f3f3}";

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the findings' Markdown inline syntax (`code`, **bold**) as HTML.
fn inline_markdown(text: &str) -> String {
    let mut out = String::new();
    let (mut code, mut bold) = (false, false);
    let mut rest = esc(text);
    while !rest.is_empty() {
        if let Some(tail) = rest.strip_prefix("**") {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            rest = tail.to_owned();
        } else if let Some(tail) = rest.strip_prefix('`') {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = tail.to_owned();
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = rest[c.len_utf8()..].to_owned();
        }
    }
    out
}

/// Writes the HTML report.
pub fn write<W: Write>(result: &RunResult, mut w: W) -> io::Result<()> {
    let name = result.scenario_name();
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>pushbench: {n}</title><style>{STYLE}</style></head><body><h1>pushbench: <code>{n}</code></h1>",
        n = esc(name)
    );
    let _ = write!(
        page,
        "<p>Workload: {}.</p><p>Run {} → {} on {} CPUs; server: {}.</p>",
        esc(&md::workload(result)),
        esc(&result.started_at),
        esc(&result.finished_at),
        result.cpus,
        esc(&result.server)
    );
    if let Some(network) = &result.network {
        let _ = write!(page, "<p>Network: {}.</p>", esc(&network.describe()));
    }
    for warning in &result.warnings {
        let _ = write!(page, "<p class=\"warn\">Warning: {}</p>", esc(warning));
    }
    page.push_str("<h2>Comparison</h2><table><tr>");
    for h in table::HEADERS {
        let _ = write!(page, "<th>{}</th>", esc(h));
    }
    page.push_str("</tr>");
    for r in &result.transports {
        page.push_str("<tr>");
        for cell in table::row(r) {
            let _ = write!(page, "<td>{}</td>", esc(&cell));
        }
        page.push_str("</tr>");
    }
    page.push_str("</table><h2>Reading</h2><ul>");
    for finding in reading::findings(result) {
        let _ = write!(page, "<li>{}</li>", inline_markdown(&finding));
    }
    page.push_str("</ul>");
    for (title, note, headers, rows) in [md::memory_split(result)]
        .into_iter()
        .chain(md::cluster(result))
        .chain(md::faults(result))
        .chain(md::drift(result))
        .chain(md::idle(result))
    {
        let _ = write!(
            page,
            "<h2>{}</h2><p>{}</p><table><tr>",
            esc(title),
            inline_markdown(note)
        );
        for h in headers {
            let _ = write!(page, "<th>{}</th>", esc(h));
        }
        page.push_str("</tr>");
        for row in rows {
            page.push_str("<tr>");
            for cell in row {
                let _ = write!(page, "<td>{}</td>", esc(&cell));
            }
            page.push_str("</tr>");
        }
        page.push_str("</table>");
    }
    page.push_str("<h2>Charts</h2><div class=\"charts\">");
    page.push_str(&latency_chart(result));
    let bars =
        |f: &dyn Fn(&TransportResult) -> Option<f64>| -> Vec<(usize, String, Result<f64, String>)> {
            result
                .transports
                .iter()
                .map(|r| {
                    let value = f(r).ok_or_else(|| "n/a".to_owned());
                    (r.transport.index(), r.transport.to_string(), value)
                })
                .collect()
        };
    page.push_str(&bar_chart(
        "Bytes per delivery (both directions, at the socket)",
        "B",
        &bars(&|r| r.bytes_per_delivery),
    ));
    page.push_str(&bar_chart(
        "HTTP requests per delivery",
        "",
        &bars(&|r| r.requests_per_delivery),
    ));
    page.push_str(&bar_chart(
        "Server memory per connection",
        "KiB",
        &bars(&|r| r.server_rss_per_connection_bytes.map(|b| b / 1024.0)),
    ));
    page.push_str(&bar_chart(
        "Server CPU per 1,000 deliveries",
        "ms",
        &bars(&|r| r.server_cpu_ms_per_1k_deliveries),
    ));
    page.push_str("</div></body></html>\n");
    w.write_all(page.as_bytes())
}

/// Latency (log scale) against percentile on a "nines" axis (0, 90, 99, 99.9, 99.99 evenly spaced).
fn latency_chart(result: &RunResult) -> String {
    let (width, height, left, bottom, top, right) = (520.0, 320.0, 60.0, 40.0, 30.0, 90.0);
    let nines = |q: f64| -(1.0 - q.min(0.99999)).log10();
    let max_x = nines(1.0);
    let mut curves = Vec::new();
    for r in &result.transports {
        let Ok(h) = decode_histogram(&r.histograms.latency_us) else {
            continue;
        };
        if h.is_empty() {
            continue;
        }
        let points: Vec<(f64, f64)> = QUANTILES
            .iter()
            .map(|&q| (nines(q), h.value_at_quantile(q).max(1) as f64 / 1000.0))
            .collect();
        curves.push((r.transport.index(), r.transport.to_string(), points));
    }
    let all_y = curves
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|&(_, y)| y));
    let (lo, hi) = all_y.fold((f64::MAX, 0.0_f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (lo, hi) = if curves.is_empty() {
        (0.1, 10.0)
    } else {
        (
            10f64.powf(lo.log10().floor()),
            10f64.powf(hi.log10().ceil().max(lo.log10().floor() + 1.0)),
        )
    };
    let px = |x: f64| left + x / max_x * (width - left - right);
    let py = |y: f64| {
        height
            - bottom
            - (y.log10() - lo.log10()) / (hi.log10() - lo.log10()) * (height - top - bottom)
    };
    let mut svg = format!(
        "<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">"
    );
    let _ = write!(
        svg,
        "<text x=\"{left}\" y=\"18\" font-size=\"13\" font-weight=\"bold\">Latency distribution (ms, log scale)</text>"
    );
    let mut decade = lo;
    while decade <= hi * 1.0001 {
        let y = py(decade);
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            width - right,
            left - 4.0,
            y + 4.0,
            decade
        );
        decade *= 10.0;
    }
    for (label, q) in [
        ("0", 0.0),
        ("90", 0.9),
        ("99", 0.99),
        ("99.9", 0.999),
        ("99.99", 0.9999),
    ] {
        let x = px(nines(q));
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            height - bottom,
            height - bottom + 14.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">percentile</text>",
        (left + width - right) / 2.0,
        height - 8.0
    );
    for (i, (index, name, points)) in curves.iter().enumerate() {
        let path = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect::<Vec<_>>()
            .join(" ");
        let colour = COLOURS[*index % COLOURS.len()];
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{path}\"/>"
        );
        legend_entry(
            &mut svg,
            width - right + 8.0,
            top + 14.0 * i as f64 + 10.0,
            colour,
            name,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One line of a chart's legend at `(x, baseline)`: a colour swatch and the series' name.
pub fn legend_entry(svg: &mut String, x: f64, baseline: f64, colour: &str, name: &str) {
    let _ = write!(
        svg,
        "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"{baseline}\">{}</text>",
        baseline - 9.0,
        x + 14.0,
        esc(name)
    );
}

/// Horizontal bars, one per row `(colour index, label, value)`; a row whose value is `Err(text)` gets
/// that text instead of a bar (why there is no figure: "n/a", "not offered", ...).
pub fn bar_chart(
    title: &str,
    unit: &str,
    values: &[(usize, String, Result<f64, String>)],
) -> String {
    let (width, row, left, top) = (420.0, 26.0, 80.0, 30.0);
    let height = top + row * values.len() as f64 + 10.0;
    let max = values
        .iter()
        .filter_map(|v| v.2.as_ref().ok())
        .fold(0.0_f64, |a, &b| a.max(b))
        .max(f64::MIN_POSITIVE);
    let mut svg = format!(
        "<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">"
    );
    let _ = write!(
        svg,
        "<text x=\"8\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        esc(title)
    );
    for (i, (index, name, value)) in values.iter().enumerate() {
        let y = top + row * i as f64;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 15.0,
            esc(name)
        );
        match value {
            Ok(v) => {
                let w = (v / max * (width - left - 90.0)).max(1.0);
                let _ = write!(
                    svg,
                    "<rect x=\"{left}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{} {}</text>",
                    row - 8.0,
                    COLOURS[*index % COLOURS.len()],
                    left + w + 4.0,
                    y + 15.0,
                    format_value(*v),
                    esc(unit)
                );
            }
            Err(text) => {
                let _ = write!(
                    svg,
                    "<text x=\"{left}\" y=\"{:.1}\" fill=\"#888\">{}</text>",
                    y + 15.0,
                    esc(text)
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A figure with three significant digits or so.
pub fn format_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_markdown_renders_code_and_bold() {
        assert_eq!(
            inline_markdown("**A** `ws` < 1"),
            "<strong>A</strong> <code>ws</code> &lt; 1"
        );
    }
}
