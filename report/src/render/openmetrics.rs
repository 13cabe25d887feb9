//! A result in the OpenMetrics text format (`pushbench report RESULT --format openmetrics`), so that a
//! Prometheus pushgateway or a dashboard can track figures across runs: one gauge per gate metric
//! ([`Metric::ALL`], named `pushbench_<metric>`) and per delivery count, one sample per transport,
//! labelled with the scenario and the transport. Unmeasurable figures are left out, never written as 0.

use std::fmt::Write;

use crate::result::{Metric, RunResult, TransportResult};

/// A delivery count exported beside the metrics: name, help, value.
type Count = (&'static str, &'static str, fn(&TransportResult) -> u64);

/// The delivery counts exported beside the metrics.
const COUNTS: [Count; 6] = [
    ("published", "Events the server acknowledged.", |t| {
        t.published
    }),
    ("expected", "Events owed to the subscribers.", |t| {
        t.expected
    }),
    ("delivered", "Owed events received at least once.", |t| {
        t.delivered
    }),
    ("gaps", "Gap notices received.", |t| t.gaps),
    (
        "reconnects",
        "Connections opened after each subscriber's first.",
        |t| t.reconnects,
    ),
    ("publish_failures", "Publishes that failed.", |t| {
        t.publish_failures
    }),
];

/// The whole exposition, ending with `# EOF`.
pub fn write(result: &RunResult) -> String {
    let scenario = result.scenario_name();
    let labels = |t: &TransportResult| {
        format!(
            "scenario=\"{}\",transport=\"{}\"",
            escape(scenario),
            t.transport
        )
    };
    let mut text = String::new();
    for metric in Metric::ALL {
        let name = format!("pushbench_{}", metric.name());
        let _ = writeln!(text, "# TYPE {name} gauge");
        let _ = writeln!(
            text,
            "# HELP {name} pushbench's {} of one transport (results/README.md).",
            metric.name()
        );
        for t in &result.transports {
            if let Some(value) = metric.value(t) {
                let _ = writeln!(text, "{name}{{{}}} {value}", labels(t));
            }
        }
    }
    for (count, help, value) in COUNTS {
        let name = format!("pushbench_{count}");
        let _ = writeln!(text, "# TYPE {name} gauge");
        let _ = writeln!(text, "# HELP {name} {help}");
        for t in &result.transports {
            let _ = writeln!(text, "{name}{{{}}} {}", labels(t), value(t));
        }
    }
    text.push_str("# EOF\n");
    text
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::test_result;

    #[test]
    fn every_measurable_metric_is_a_labelled_gauge_and_the_exposition_ends_with_eof() {
        let mut result = test_result(&[1_000; 10]);
        result.transports[0].server_cpu_ms_per_1k_deliveries = None;
        let text = write(&result);
        assert!(text.contains("# TYPE pushbench_lost gauge\n"), "{text}");
        assert!(
            text.contains("pushbench_lost{scenario=\"quick\",transport=\"ws\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "pushbench_bytes_per_delivery{scenario=\"quick\",transport=\"ws\"} 300\n"
            )
        );
        assert!(
            text.contains("pushbench_delivered{scenario=\"quick\",transport=\"ws\"} 10\n"),
            "{text}"
        );
        // Unmeasurable: the gauge is declared, no sample written.
        assert!(text.contains("# TYPE pushbench_server_cpu_ms_per_1k_deliveries gauge"));
        assert!(
            !text.contains("pushbench_server_cpu_ms_per_1k_deliveries{"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
