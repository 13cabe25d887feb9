//! The outputs of a capacity search: `capacity.json` (the [`Capacity`] itself), `capacity.md` (a table per
//! transport) and `capacity.html` (the same, self-contained, with SVG charts of p99 latency, with the limit
//! drawn, and of server memory against the varied value).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use super::{Capacity, CapacityError, Step, TransportCapacity, Vary, Verdict, format_value};
use pushbench_report::render::html::{COLOURS, STYLE, esc, format_value as figure, legend_entry};

/// Writes `capacity.json`, `capacity.md` and `capacity.html` into `dir`.
pub fn write_all(capacity: &Capacity, dir: &Path) -> Result<(), CapacityError> {
    let file = |name: &str, write: &dyn Fn(&mut dyn Write) -> io::Result<()>| {
        let path = dir.join(name);
        let wrap = |e: io::Error| CapacityError::Write {
            path: path.display().to_string(),
            error: e.to_string(),
        };
        let mut out = io::BufWriter::new(std::fs::File::create(&path).map_err(wrap)?);
        write(&mut out).and_then(|()| out.flush()).map_err(wrap)
    };
    file("capacity.json", &|w| {
        serde_json::to_writer_pretty(&mut *w, capacity)?;
        w.write_all(b"\n")
    })?;
    file("capacity.md", &|w| write_md(capacity, w))?;
    file("capacity.html", &|w| write_html(capacity, w))
}

/// Reads a `capacity.json`.
pub fn read(path: &Path) -> anyhow::Result<Capacity> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a capacity.json", path.display()))
}

fn outcome_text(t: &TransportCapacity) -> &'static str {
    match t.outcome {
        super::SearchEnd::ServerLimit => "server limit found",
        super::SearchEnd::FailsAtStart => "fails at the first value",
        super::SearchEnd::ReachedMax => "passed at --max (limit higher)",
        super::SearchEnd::MachineLimit => "limited by the load generator / machine",
        super::SearchEnd::StepBudget => "stopped by --max-steps",
        super::SearchEnd::RunFailed => "a run failed",
        super::SearchEnd::NotOffered => "not offered",
        super::SearchEnd::Interrupted => "interrupted (no verdict)",
    }
}

fn intro(c: &Capacity) -> String {
    let p = &c.search;
    let v = |x: f64| format_value(x, c.vary);
    format!(
        "Each step is a full run of the scenario with only `{field}` changed, on one transport, with a fresh \
         server (its result and reports in `<transport>/step-<n>-<value>/`). A step passes with nothing lost, \
         duplicated, out of order or unexpected, every subscriber connected, no failed publish and p99 \
         delivery latency under {p99} ms. A step flagged saturated, out of file descriptors or with connect \
         failures stops the search: its limit is the load generator's or the machine's, not the server's. \
         Search: from {start} {unit}, ×{factor} while passing (at most {max}), then {refine} bisection steps \
         between the last pass and the first fail; at most {steps} steps. Server: {server}.",
        field = c.vary.field(),
        p99 = c.p99_ms,
        start = v(p.start),
        unit = c.vary.unit(),
        factor = p.factor,
        max = v(p.max),
        refine = p.refine,
        steps = p.max_steps,
        server = c.server,
    )
}

/// The walk sorted by value: the curve.
fn curve(t: &TransportCapacity) -> Vec<&Step> {
    let mut steps: Vec<&Step> = t.steps.iter().collect();
    steps.sort_by(|a, b| a.value.total_cmp(&b.value));
    steps
}

const STEP_HEADERS: [&str; 14] = [
    "value",
    "step",
    "result",
    "p50 ms",
    "p99 ms",
    "max ms",
    "lost",
    "dup+ooo+unexp",
    "server RSS / connection",
    "server RSS",
    "server CPU ms / 1k deliveries",
    "deliveries/s",
    "saturated",
    "why",
];

fn step_cells(s: &Step, vary: Vary) -> [String; 14] {
    let o = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or_else(|| "–".to_owned(), f);
    [
        format_value(s.value, vary),
        s.n.to_string(),
        match s.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Machine => "STOP: machine",
            Verdict::Error => "STOP: run failed",
        }
        .to_owned(),
        o(s.latency_p50_ms, &figure),
        o(s.latency_p99_ms, &figure),
        o(s.latency_max_ms, &figure),
        s.lost.to_string(),
        s.inexact.to_string(),
        o(s.server_rss_per_connection_kib, &|k| format!("{k:.1} KiB")),
        o(s.server_rss_mib, &|m| format!("{m:.1} MiB")),
        o(s.server_cpu_ms_per_1k_deliveries, &figure),
        o(s.deliveries_per_s, &|d| format!("{d:.0}")),
        if s.saturated { "yes" } else { "no" }.to_owned(),
        s.reasons.join("; "),
    ]
}

fn summary_cells(t: &TransportCapacity, vary: Vary) -> [String; 5] {
    [
        t.transport.to_string(),
        outcome_text(t).to_owned(),
        t.capacity
            .map_or_else(|| "–".to_owned(), |c| format_value(c, vary)),
        t.limit.as_ref().map_or_else(
            || "–".to_owned(),
            |l| format!("{} ({})", format_value(l.at, vary), l.by),
        ),
        t.limit.as_ref().map_or_else(String::new, |l| l.why.clone()),
    ]
}

const SUMMARY_HEADERS: [&str; 5] = ["transport", "verdict", "sustained", "stopped at", "why"];

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Writes `capacity.md`.
pub fn write_md(c: &Capacity, w: &mut dyn Write) -> io::Result<()> {
    writeln!(
        w,
        "# Capacity of `{}`: {}, p99 < {} ms\n",
        c.scenario,
        c.vary.unit(),
        c.p99_ms
    )?;
    writeln!(w, "{}\n", intro(c))?;
    writeln!(w, "| {} |", SUMMARY_HEADERS.join(" | "))?;
    writeln!(w, "|---|---|---:|---:|---|")?;
    for t in &c.transports {
        let cells = summary_cells(t, c.vary).map(|x| md_cell(&x));
        writeln!(w, "| {} |", cells.join(" | "))?;
    }
    for t in &c.transports {
        writeln!(w, "\n## {}\n\n{}\n", t.transport, t.summary)?;
        if t.steps.is_empty() {
            continue;
        }
        let mut headers = STEP_HEADERS;
        headers[0] = c.vary.unit();
        writeln!(w, "| {} |", headers.join(" | "))?;
        writeln!(w, "|---:|---:|---|{}---|", "---:|".repeat(10))?;
        for s in curve(t) {
            let cells = step_cells(s, c.vary).map(|x| md_cell(&x));
            writeln!(w, "| {} |", cells.join(" | "))?;
        }
    }
    Ok(())
}

/// Writes `capacity.html`: self-contained (inline CSS and SVG, no script, no network).
pub fn write_html(c: &Capacity, w: &mut dyn Write) -> io::Result<()> {
    let mut page = String::new();
    let title = format!(
        "Capacity of {}: {}, p99 < {} ms",
        c.scenario,
        c.vary.unit(),
        c.p99_ms
    );
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>pushbench: {t}</title>\
         <style>{STYLE}</style></head><body><h1>{t}</h1><p>{intro}</p>",
        t = esc(&title),
        intro = esc(&intro(c)).replace('`', "")
    );
    page.push_str("<table><tr>");
    for h in SUMMARY_HEADERS {
        let _ = write!(page, "<th>{}</th>", esc(h));
    }
    page.push_str("</tr>");
    for t in &c.transports {
        page.push_str("<tr>");
        for cell in summary_cells(t, c.vary) {
            let _ = write!(page, "<td>{}</td>", esc(&cell));
        }
        page.push_str("</tr>");
    }
    page.push_str("</table>");
    for t in &c.transports {
        if t.outcome == super::SearchEnd::MachineLimit {
            let _ = write!(page, "<p class=\"warn\">{}</p>", esc(&t.summary));
        }
    }
    page.push_str("<h2>Curves</h2><div class=\"charts\">");
    let series = |f: &dyn Fn(&Step) -> Option<f64>| -> Vec<Series> {
        c.transports
            .iter()
            .filter(|t| !t.steps.is_empty())
            .map(|t| Series {
                colour: t.transport.index(),
                name: t.transport.to_string(),
                points: curve(t)
                    .into_iter()
                    .filter_map(|s| f(s).map(|y| (s.value, y, s.verdict)))
                    .collect(),
            })
            .collect()
    };
    let x_label = c.vary.unit();
    page.push_str(&xy_chart(&Chart {
        title: "p99 delivery latency (ms, log scale)",
        x_label,
        series: series(&|s| s.latency_p99_ms),
        limit: Some((c.p99_ms, format!("limit {} ms", c.p99_ms))),
        log_y: true,
    }));
    page.push_str(&xy_chart(&Chart {
        title: "Server memory with all subscribers connected (RSS, MiB)",
        x_label,
        series: series(&|s| s.server_rss_mib),
        limit: None,
        log_y: false,
    }));
    page.push_str(&xy_chart(&Chart {
        title: "Server memory per connection (RSS growth, KiB)",
        x_label,
        series: series(&|s| s.server_rss_per_connection_kib),
        limit: None,
        log_y: false,
    }));
    page.push_str("</div>");
    for t in &c.transports {
        let _ = write!(
            page,
            "<h2 id=\"{id}\">{id}</h2><p>{}</p>",
            esc(&t.summary),
            id = t.transport
        );
        if t.steps.is_empty() {
            continue;
        }
        page.push_str("<table><tr>");
        let mut headers = STEP_HEADERS;
        headers[0] = c.vary.unit();
        for h in headers {
            let _ = write!(page, "<th>{}</th>", esc(h));
        }
        page.push_str("</tr>");
        for s in curve(t) {
            page.push_str("<tr>");
            for (i, cell) in step_cells(s, c.vary).iter().enumerate() {
                if i == 0 {
                    let _ = write!(
                        page,
                        "<td><a href=\"{}/report.html\">{}</a></td>",
                        esc(&s.dir),
                        esc(cell)
                    );
                } else {
                    let _ = write!(page, "<td>{}</td>", esc(cell));
                }
            }
            page.push_str("</tr>");
        }
        page.push_str("</table>");
    }
    page.push_str("</body></html>\n");
    w.write_all(page.as_bytes())
}

/// One line of a chart: a transport's steps.
struct Series {
    colour: usize,
    name: String,
    /// (value, figure, verdict), sorted by value.
    points: Vec<(f64, f64, Verdict)>,
}

/// An x-y chart of the curve.
struct Chart<'a> {
    title: &'a str,
    x_label: &'a str,
    series: Vec<Series>,
    /// A horizontal line drawn across (the p99 limit) and its label.
    limit: Option<(f64, String)>,
    log_y: bool,
}

/// A chart axis mapping values to 0..=1.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    /// Covers `values`; a log axis spans whole decades (`tight`: just the values, with a margin), a linear
    /// one starts at 0.
    fn new(values: impl Iterator<Item = f64> + Clone, log: bool, tight: bool) -> Self {
        let (min, max) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if min > max {
            return Self {
                lo: if log { 1.0 } else { 0.0 },
                hi: 10.0,
                log,
            };
        }
        if log && tight {
            let min = min.max(1e-3);
            Self {
                lo: min / 1.15,
                hi: max.max(min) * 1.15,
                log,
            }
        } else if log {
            let min = min.max(1e-3);
            let lo = 10f64.powf(min.log10().floor());
            let hi = 10f64.powf(max.max(min).log10().ceil()).max(lo * 10.0);
            Self { lo, hi, log }
        } else {
            let hi = if max <= 0.0 {
                1.0
            } else {
                nice_ceiling(max * 1.05)
            };
            Self { lo: 0.0, hi, log }
        }
    }

    fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    /// Tick values: 1, 2, 5 × 10^k on a log axis; about five round steps on a linear one.
    fn ticks(&self) -> Vec<f64> {
        let mut ticks = Vec::new();
        if self.log {
            let mut decade = 10f64.powf(self.lo.log10().floor());
            while decade <= self.hi * 1.0001 {
                for m in [1.0, 2.0, 5.0] {
                    let t = decade * m;
                    if t >= self.lo * 0.9999 && t <= self.hi * 1.0001 {
                        ticks.push(t);
                    }
                }
                decade *= 10.0;
            }
        } else {
            let step = nice_ceiling((self.hi - self.lo) / 5.0);
            let mut t = self.lo;
            while t <= self.hi * 1.0001 {
                ticks.push(t);
                t += step;
            }
        }
        ticks
    }
}

/// The labels of an axis covering `lo..=hi` (for the tests).
#[cfg(test)]
pub(super) fn tick_labels(lo: f64, hi: f64, log: bool) -> Vec<String> {
    Axis::new([lo, hi].into_iter(), log, false)
        .ticks()
        .into_iter()
        .map(tick)
        .collect()
}

/// The labels of a tight log axis covering `lo..=hi` (for the tests).
#[cfg(test)]
pub(super) fn tight_tick_labels(lo: f64, hi: f64) -> Vec<String> {
    Axis::new([lo, hi].into_iter(), true, true)
        .ticks()
        .into_iter()
        .map(tick)
        .collect()
}

/// An axis label: 0.5, 2, 50, 2000 (no trailing zeros).
fn tick(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The smallest 1, 2 or 5 × 10^k at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|&n| n >= v * 0.9999)
        .unwrap_or(10.0 * decade)
}

/// Draws the chart: a line per transport, a filled dot per pass, a hollow one per fail, a cross where the
/// machine stopped the search; the x axis is logarithmic when the values span a factor of 8 or more.
fn xy_chart(chart: &Chart<'_>) -> String {
    let (width, height, left, bottom, top, right) = (520.0, 320.0, 60.0, 40.0, 30.0, 100.0);
    let points = || chart.series.iter().flat_map(|s| s.points.iter());
    let xs = points().map(|p| p.0);
    let (xmin, xmax) = xs
        .clone()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let x = Axis::new(xs, xmin > 0.0 && xmax / xmin >= 8.0, true);
    let y = Axis::new(
        points()
            .map(|p| p.1)
            .chain(chart.limit.as_ref().map(|l| l.0)),
        chart.log_y,
        false,
    );
    let px = |v: f64| left + x.frac(v) * (width - left - right);
    let py = |v: f64| height - bottom - y.frac(v) * (height - top - bottom);
    let mut svg = format!(
        "<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">\
         <text x=\"8\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        esc(chart.title)
    );
    for t in y.ticks() {
        let yy = py(t);
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            width - right,
            left - 4.0,
            yy + 4.0,
            tick(t)
        );
    }
    for t in x.ticks() {
        let xx = px(t);
        let _ = write!(
            svg,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{top}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{xx:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            height - bottom,
            height - bottom + 14.0,
            tick(t)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}{}</text>",
        (left + width - right) / 2.0,
        height - 8.0,
        esc(chart.x_label),
        if x.log { " (log scale)" } else { "" }
    );
    if points().next().is_none() {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" fill=\"#888\">nothing measured</text>",
            left + 10.0,
            height / 2.0
        );
    }
    if let Some((limit, label)) = &chart.limit {
        let yy = py(*limit);
        let _ = write!(
            svg,
            "<line class=\"limit\" x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#c00\" stroke-dasharray=\"6 4\" stroke-width=\"1.5\"/><text x=\"{}\" y=\"{:.1}\" fill=\"#c00\" text-anchor=\"end\">{}</text>",
            width - right,
            width - right - 4.0,
            yy - 4.0,
            esc(label)
        );
    }
    for (i, s) in chart.series.iter().enumerate() {
        let colour = COLOURS[s.colour % COLOURS.len()];
        let path = s
            .points
            .iter()
            .map(|&(vx, vy, _)| format!("{:.1},{:.1}", px(vx), py(vy)))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{path}\"/>"
        );
        for &(vx, vy, verdict) in &s.points {
            let (cx, cy) = (px(vx), py(vy));
            let _ = match verdict {
                Verdict::Pass => write!(
                    svg,
                    "<circle class=\"pass\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"{colour}\"/>"
                ),
                Verdict::Fail => write!(
                    svg,
                    "<circle class=\"fail\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"4\" fill=\"#fff\" stroke=\"{colour}\" stroke-width=\"2\"/>"
                ),
                Verdict::Machine | Verdict::Error => write!(
                    svg,
                    "<path class=\"machine\" d=\"M{:.1},{:.1}l8,8m0,-8l-8,8\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                    cx - 4.0,
                    cy - 4.0
                ),
            };
        }
        legend_entry(
            &mut svg,
            width - right + 8.0,
            top + 14.0 * i as f64 + 10.0,
            colour,
            &s.name,
        );
    }
    let ly = top + 14.0 * chart.series.len() as f64 + 24.0;
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{ly}\" fill=\"#555\">● pass ○ fail</text><text x=\"{}\" y=\"{}\" fill=\"#555\">× machine</text>",
        width - right + 8.0,
        width - right + 8.0,
        ly + 14.0
    );
    svg.push_str("</svg>");
    svg
}
