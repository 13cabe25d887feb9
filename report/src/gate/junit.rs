//! JUnit XML of a gate's verdicts, so that Jenkins, GitLab and GitHub show a run's thresholds and a
//! comparison's gated metrics as test results: one `<testsuite>` per transport, one `<testcase>` per
//! threshold or gated metric, with a `<failure>` naming the figure when it failed.
//!
//! Written by hand: the format needs four elements and the escaping of attribute text, less than a
//! dependency's worth.

use std::fmt::Write;

use pushbench_common::Transport;

use crate::gate::compare::{Comparison, Verdict};
use crate::result::RunResult;

/// One test case: its name, and why it failed (`None`: passed).
struct Case {
    name: String,
    failure: Option<String>,
    /// What it measured, shown as the case's output.
    output: String,
}

/// The run's threshold outcomes (`pushbench run --junit`), in suite `pushbench thresholds: <scenario>`.
pub fn thresholds(result: &RunResult) -> String {
    let scenario = result.scenario_name();
    let suites = result
        .transports
        .iter()
        .map(|t| {
            let cases = t
                .thresholds
                .iter()
                .map(|o| {
                    let measured = o
                        .value
                        .map_or_else(|| "not measurable".to_owned(), |v| format!("{v}"));
                    Case {
                        name: o.threshold.clone(),
                        failure: (!o.passed)
                            .then(|| format!("{}: measured {measured}", o.threshold)),
                        output: format!("measured {measured}"),
                    }
                })
                .collect();
            (t.transport, cases)
        })
        .collect();
    document(
        &format!("pushbench thresholds: {scenario}"),
        "thresholds",
        suites,
    )
}

/// The gated rows of a comparison (`pushbench compare --junit`), in suite `pushbench compare: <current>`.
pub fn comparison(c: &Comparison, current: &str) -> String {
    let mut suites: Vec<(Transport, Vec<Case>)> = Vec::new();
    for row in c.rows.iter().filter(|r| r.gated) {
        let figure = |v: Option<f64>| row.metric.format(v);
        let output = format!(
            "baseline {}, current {}, tolerance {:.1} %: {:?}",
            figure(row.baseline),
            figure(row.current),
            row.tolerance_pct,
            row.verdict
        );
        let case = Case {
            name: row.metric.name().to_owned(),
            failure: (row.verdict == Verdict::Regression).then(|| {
                format!(
                    "{} rose from {} to {}, past its tolerance of {:.1} %",
                    row.metric,
                    figure(row.baseline),
                    figure(row.current),
                    row.tolerance_pct
                )
            }),
            output,
        };
        match suites.iter_mut().find(|(t, _)| *t == row.transport) {
            Some((_, cases)) => cases.push(case),
            None => suites.push((row.transport, vec![case])),
        }
    }
    document(&format!("pushbench compare: {current}"), "compare", suites)
}

fn document(name: &str, kind: &str, suites: Vec<(Transport, Vec<Case>)>) -> String {
    let count = |cases: &[Case]| {
        (
            cases.len(),
            cases.iter().filter(|c| c.failure.is_some()).count(),
        )
    };
    let (tests, failures) = suites.iter().fold((0, 0), |(t, f), (_, cases)| {
        let (ct, cf) = count(cases);
        (t + ct, f + cf)
    });
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\">",
        escape(name)
    );
    for (transport, cases) in &suites {
        let (tests, failures) = count(cases);
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{transport}\" tests=\"{tests}\" failures=\"{failures}\">"
        );
        for case in cases {
            let _ = write!(
                xml,
                "    <testcase classname=\"pushbench.{kind}.{transport}\" name=\"{}\">",
                escape(&case.name)
            );
            if let Some(failure) = &case.failure {
                let _ = write!(xml, "<failure message=\"{}\"/>", escape(failure));
            }
            let _ = writeln!(
                xml,
                "<system-out>{}</system-out></testcase>",
                escape(&case.output)
            );
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// Escapes text for an XML attribute or element.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::compare::{Gate, Tolerances, compare};
    use crate::result::{ThresholdOutcome, test_result};

    #[test]
    fn thresholds_become_cases_and_a_failed_one_a_failure_with_its_figure() {
        let mut result = test_result(&[1_000; 10]);
        result.transports[0].thresholds = vec![
            ThresholdOutcome {
                threshold: "lost <= 0".into(),
                value: Some(0.0),
                passed: true,
            },
            ThresholdOutcome {
                threshold: "latency_p99_ms < 0.5".into(),
                value: Some(1.0),
                passed: false,
            },
        ];
        let xml = thresholds(&result);
        assert!(
            xml.contains(
                "<testsuites name=\"pushbench thresholds: quick\" tests=\"2\" failures=\"1\">"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("<testsuite name=\"ws\" tests=\"2\" failures=\"1\">"),
            "{xml}"
        );
        assert!(
            xml.contains("name=\"lost &lt;= 0\"><system-out>measured 0</system-out>"),
            "{xml}"
        );
        assert!(
            xml.contains("<failure message=\"latency_p99_ms &lt; 0.5: measured 1\"/>"),
            "{xml}"
        );
    }

    #[test]
    fn a_comparison_has_a_case_per_gated_metric_and_fails_the_regressed_ones() {
        let base = test_result(&[1_000; 10]);
        let mut current = base.clone();
        current.transports[0].lost = 2;
        let c = compare(
            ("base", &base),
            ("cur", &current),
            &Tolerances::default(),
            Gate::Deterministic,
        )
        .unwrap();
        let xml = comparison(&c, "cur.json");
        let gated = c.rows.iter().filter(|r| r.gated).count();
        assert!(
            xml.contains(&format!("tests=\"{gated}\" failures=\"2\"")),
            "{xml}"
        );
        assert!(
            xml.contains("name=\"lost\"><failure message=\"lost rose from 0 to 2, past its tolerance of 0.0 %\"/>"),
            "{xml}"
        );
        assert!(
            xml.contains("classname=\"pushbench.compare.ws\" name=\"lost_silently\"><failure"),
            "{xml}"
        );
        assert!(!xml.contains("latency_p99_ms"), "not gated: {xml}");
    }
}
