//! `pushbench compare BASELINE CURRENT`: did a change make delivery slower, heavier or lossy?
//!
//! For every transport and every [`Metric`] it sets the baseline's figure beside the current one, with
//! the change in percent of the baseline, and decides:
//! - **ok** — no rise, or a rise within the metric's tolerance (`--tolerance metric=pct`, default
//!   [`Metric::default_tolerance_pct`]; `inf` switches a metric's gate off). Every metric is lower-is-better.
//!   A rise from 0 is an infinite change: it passes only with an `inf` tolerance.
//! - **noise** — past the tolerance, but both results carry run-to-run spreads (`--repeat`, `merge`) and
//!   they overlap: the current result's best run is no worse than the baseline's worst. Noise alone never
//!   fails a build.
//! - **REGRESSION** — past the tolerance and outside the noise band: counted, and the command exits
//!   with `pushbench compare`'s exit code 4.
//! - **worse (not gated)** — a regression of a metric that `--gate deterministic` only reports.
//! - **not measured** — `null` on either side: shown, never gating.
//!
//! The figure compared is the **median** over the runs when a result has a spread, else its value, so a
//! five-run baseline compares fairly with a one-run check (summed counters of a merge would not).
//! Results of different scenarios, workloads or schema versions are refused ([`check_compatible`]).

use std::collections::BTreeMap;
use std::io::{self, Write};

use pushbench_common::Transport;

use super::merge::{MergeError, check_compatible};
pub use crate::render::table::Format;
use crate::render::table::write_rows;
use crate::result::{Kind, Metric, RunResult, TransportResult, UnknownMetric};

/// Which metrics can fail the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Gate {
    /// Every metric.
    All,
    /// Only deterministic metrics (lost, duplicates, out_of_order, requests and bytes per delivery);
    /// timings and resource readings are reported, not gated — for shared, noisy CI machines.
    Deterministic,
}

/// Tolerances per metric, in percent of the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Tolerances(BTreeMap<Metric, f64>);

impl Default for Tolerances {
    fn default() -> Self {
        Self(
            Metric::ALL
                .into_iter()
                .map(|m| (m, m.default_tolerance_pct()))
                .collect(),
        )
    }
}

/// A `--tolerance` that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ToleranceError {
    /// Not `metric=pct`.
    #[error("--tolerance {0:?}: expected METRIC=PERCENT, e.g. latency_p99_ms=50")]
    Shape(String),
    /// Unknown metric.
    #[error("--tolerance: {0}")]
    Metric(#[from] UnknownMetric),
    /// Not a non-negative number or `inf`.
    #[error("--tolerance {0:?}: the percentage must be a number ≥ 0 or inf")]
    Percent(String),
}

impl Tolerances {
    /// The defaults with `metric=pct` overrides applied.
    pub fn with_overrides(overrides: &[String]) -> Result<Self, ToleranceError> {
        let mut t = Self::default();
        for o in overrides {
            let (name, pct) = o
                .split_once('=')
                .ok_or_else(|| ToleranceError::Shape(o.clone()))?;
            let metric: Metric = name.trim().parse()?;
            let pct: f64 = pct
                .trim()
                .parse()
                .ok()
                .filter(|p: &f64| *p >= 0.0)
                .ok_or_else(|| ToleranceError::Percent(o.clone()))?;
            t.0.insert(metric, pct);
        }
        Ok(t)
    }

    /// The tolerance of `metric`, percent.
    pub fn of(&self, metric: Metric) -> f64 {
        self.0[&metric]
    }
}

/// The decision on one metric of one transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No rise, or within tolerance.
    Ok,
    /// Past the tolerance, within the overlapping run-to-run ranges.
    Noise,
    /// Past the tolerance and the noise band.
    Regression,
    /// A regression of a metric the gate does not cover.
    NotGated,
    /// Unmeasurable on one side.
    NotMeasured,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Noise => "noise",
            Verdict::Regression => "REGRESSION",
            Verdict::NotGated => "worse (not gated)",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// One line of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Transport.
    pub transport: Transport,
    /// Metric.
    pub metric: Metric,
    /// Baseline figure (median over runs when it has a spread).
    pub baseline: Option<f64>,
    /// Current figure, same rule.
    pub current: Option<f64>,
    /// Change in percent of the baseline (infinite for a rise from 0).
    pub change_pct: Option<f64>,
    /// Tolerance applied, percent.
    pub tolerance_pct: f64,
    /// Whether this row can fail the comparison.
    pub gated: bool,
    /// The decision.
    pub verdict: Verdict,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// One row per transport and metric, in the baseline's transport order.
    pub rows: Vec<Row>,
}

impl Comparison {
    /// Rows that fail the comparison.
    pub fn regressions(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
            .count()
    }

    /// Gated rows that pass (ok, noise, or not measured).
    pub fn passed(&self) -> usize {
        self.rows.iter().filter(|r| r.gated).count() - self.regressions()
    }
}

/// Central figure and range of a metric in a transport's result.
fn figure(r: &TransportResult, metric: Metric) -> (Option<f64>, Option<(f64, f64)>) {
    match r.spread.get(metric.name()) {
        Some(s) => (s.median, s.min.zip(s.max)),
        None => (metric.value(r), None),
    }
}

/// Compares `current` with `baseline`; refuses results of different workloads or schema versions.
pub fn compare(
    baseline: (&str, &RunResult),
    current: (&str, &RunResult),
    tolerances: &Tolerances,
    gate: Gate,
) -> Result<Comparison, MergeError> {
    check_compatible(baseline, current)?;
    let mut rows = Vec::new();
    for b in &baseline.1.transports {
        let c = current
            .1
            .transports
            .iter()
            .find(|c| c.transport == b.transport)
            .ok_or_else(|| MergeError::Workload {
                first: baseline.0.to_owned(),
                which: current.0.to_owned(),
                difference: format!("it has no result for transport {}", b.transport),
            })?;
        for metric in Metric::ALL {
            rows.push(row(b, c, metric, tolerances.of(metric), gate));
        }
    }
    Ok(Comparison { rows })
}

fn row(
    b: &TransportResult,
    c: &TransportResult,
    metric: Metric,
    tolerance: f64,
    gate: Gate,
) -> Row {
    let (baseline, b_range) = figure(b, metric);
    let (current, c_range) = figure(c, metric);
    let gated = gate == Gate::All || metric.kind() == Kind::Deterministic;
    let change_pct = baseline.zip(current).map(|(b, c)| {
        if b == c {
            0.0
        } else if b == 0.0 {
            f64::INFINITY.copysign(c)
        } else {
            (c - b) / b.abs() * 100.0
        }
    });
    let verdict = match change_pct {
        None => Verdict::NotMeasured,
        Some(change) if change <= tolerance => Verdict::Ok,
        Some(_) => match (b_range, c_range) {
            (Some((_, b_max)), Some((c_min, _))) if c_min <= b_max => Verdict::Noise,
            _ if !gated => Verdict::NotGated,
            _ => Verdict::Regression,
        },
    };
    Row {
        transport: b.transport,
        metric,
        baseline,
        current,
        change_pct,
        tolerance_pct: tolerance,
        gated,
        verdict,
    }
}

const HEADERS: [&str; 7] = [
    "transport",
    "metric",
    "baseline",
    "current",
    "change",
    "tolerance",
    "verdict",
];

fn cells(r: &Row) -> Vec<String> {
    let pct = |p: f64| {
        if p.is_infinite() {
            if p > 0.0 { "+inf%" } else { "-inf%" }.to_owned()
        } else {
            format!("{p:+.1}%")
        }
    };
    vec![
        r.transport.to_string(),
        r.metric.to_string(),
        r.metric.format(r.baseline),
        r.metric.format(r.current),
        r.change_pct.map_or_else(|| "–".to_owned(), pct),
        if r.gated {
            pct(r.tolerance_pct).trim_start_matches('+').to_owned()
        } else {
            "not gated".to_owned()
        },
        r.verdict.label().to_owned(),
    ]
}

/// Writes the comparison as a table followed by the count line `compare: N passed, M failed` (gated
/// rows).
pub fn write<W: Write>(comparison: &Comparison, format: Format, mut w: W) -> io::Result<()> {
    let rows: Vec<Vec<String>> = comparison.rows.iter().map(cells).collect();
    write_rows(format, &HEADERS, &rows, 2, &mut w)?;
    if format == Format::Markdown {
        writeln!(w)?;
    }
    for r in comparison
        .rows
        .iter()
        .filter(|r| r.verdict == Verdict::Regression)
    {
        writeln!(
            w,
            "REGRESSION: {} {} rose from {} to {} ({}), tolerance {}%",
            r.transport,
            r.metric,
            r.metric.format(r.baseline),
            r.metric.format(r.current),
            cells(r)[4],
            r.tolerance_pct
        )?;
    }
    writeln!(
        w,
        "compare: {} passed, {} failed",
        comparison.passed(),
        comparison.regressions()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::merge::merge;
    use crate::result::test_result;

    fn run(baseline: &RunResult, current: &RunResult, gate: Gate) -> Comparison {
        compare(
            ("base", baseline),
            ("cur", current),
            &Tolerances::default(),
            gate,
        )
        .unwrap()
    }

    fn verdict(c: &Comparison, metric: Metric) -> Verdict {
        c.rows.iter().find(|r| r.metric == metric).unwrap().verdict
    }

    #[test]
    fn identical_results_pass() {
        let r = test_result(&[1_000, 2_000, 3_000]);
        let c = run(&r, &r, Gate::All);
        assert_eq!(c.regressions(), 0);
        assert!(
            c.rows
                .iter()
                .all(|r| matches!(r.verdict, Verdict::Ok | Verdict::NotMeasured))
        );
    }

    #[test]
    fn doctored_results_regress_with_the_metric_named() {
        let base = test_result(&[1_000; 100]);
        let mut cur = test_result(&[[1_000; 90].as_slice(), &[200_000; 10]].concat());
        cur.transports[0].lost = 1;
        let bytes = base.transports[0].bytes_per_delivery.unwrap();
        cur.transports[0].bytes_per_delivery = Some(bytes * 1.10);
        let c = run(&base, &cur, Gate::All);
        assert_eq!(verdict(&c, Metric::Lost), Verdict::Regression);
        assert_eq!(verdict(&c, Metric::BytesPerDelivery), Verdict::Regression);
        assert_eq!(verdict(&c, Metric::LatencyP99Ms), Verdict::Regression);
        assert_eq!(verdict(&c, Metric::RequestsPerDelivery), Verdict::Ok);
        let mut text = Vec::new();
        write(&c, Format::Markdown, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("| ws | lost | 0 | 1 | +inf% | 0.0% | REGRESSION |"),
            "{text}"
        );
        assert!(
            text.contains("REGRESSION: ws latency_p99_ms rose from 1.00 to 200."),
            "{text}"
        );
        // The lost event had no gap notice: it is a silent loss too.
        assert_eq!(verdict(&c, Metric::LostSilently), Verdict::Regression);
        assert!(text.ends_with("compare: 8 passed, 6 failed\n"), "{text}");
        let mut announced = cur.clone();
        announced.transports[0].lost_announced = 1;
        let c_announced = run(&base, &announced, Gate::All);
        assert_eq!(verdict(&c_announced, Metric::LostSilently), Verdict::Ok);

        // The deterministic gate reports the latency, but does not fail on it.
        let c = run(&base, &cur, Gate::Deterministic);
        assert_eq!(verdict(&c, Metric::LatencyP99Ms), Verdict::NotGated);
        assert_eq!(c.regressions(), 3);

        // A wider tolerance lets the bytes through; `inf` the lost event.
        let t = Tolerances::with_overrides(&[
            "bytes_per_delivery=15".into(),
            "lost=inf".into(),
            "lost_silently=inf".into(),
        ])
        .unwrap();
        let c = compare(("base", &base), ("cur", &cur), &t, Gate::Deterministic).unwrap();
        assert_eq!(c.regressions(), 0);
        assert!(Tolerances::with_overrides(&["latency=5".into()]).is_err());
        assert!(Tolerances::with_overrides(&["lost=-1".into()]).is_err());
    }

    #[test]
    fn other_scenarios_workloads_and_versions_are_refused() {
        let base = test_result(&[1_000]);
        let mut other = base.clone();
        other.scenario["name"] = "broadcast".into();
        let e = compare(
            ("base", &base),
            ("cur", &other),
            &Tolerances::default(),
            Gate::All,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("different workload") && e.contains("\"broadcast\""),
            "{e}"
        );

        let mut heavier = base.clone();
        heavier.scenario["subscribers"] = 200.into();
        let e = compare(
            ("base", &base),
            ("cur", &heavier),
            &Tolerances::default(),
            Gate::All,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`subscribers`: 100 vs 200"), "{e}");

        // Thresholds and description are not the workload.
        let mut described = base.clone();
        described.scenario["description"] = "another text".into();
        assert!(
            compare(
                ("b", &base),
                ("c", &described),
                &Tolerances::default(),
                Gate::All
            )
            .is_ok()
        );

        let mut future = base.clone();
        future.schema_version = 2;
        let e = compare(
            ("base", &base),
            ("cur", &future),
            &Tolerances::default(),
            Gate::All,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("schema_version 2"), "{e}");
    }

    #[test]
    fn overlapping_spreads_are_noise_and_separate_ones_regress() {
        let runs = |latencies: &[u64]| -> RunResult {
            let inputs: Vec<(String, RunResult)> = latencies
                .iter()
                .enumerate()
                .map(|(i, &l)| (format!("run {i}"), test_result(&[l; 10])))
                .collect();
            merge(&inputs).unwrap()
        };
        let base = runs(&[1_000, 1_200, 3_000]);
        // Median 2.5 ms vs 1.2 ms is past the 50 % tolerance, but the best current run (1.1 ms) is within
        // the baseline's range.
        let noisy = runs(&[1_100, 2_500, 2_600]);
        let c = run(&base, &noisy, Gate::All);
        assert_eq!(verdict(&c, Metric::LatencyP50Ms), Verdict::Noise);
        assert_eq!(c.regressions(), 0);
        let slow = runs(&[4_000, 4_100, 4_200]);
        assert_eq!(
            verdict(&run(&base, &slow, Gate::All), Metric::LatencyP50Ms),
            Verdict::Regression
        );
    }
}
