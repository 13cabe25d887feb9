//! Pass/fail thresholds of a scenario: its `[thresholds]` table, validated up front, and their
//! evaluation against a result.
//!
//! ```toml
//! [thresholds]                      # every transport
//! lost = 0                          # a bare number means "at most": lost <= 0
//! latency_p99_ms = "< 50"           # or a string: one of < <= = >= > and a number
//! bytes_per_delivery = "< 400"
//!
//! [thresholds.ws]                   # this transport only; overrides the same metric above
//! latency_p99_ms = "< 20"
//! ```
//!
//! Keys are [`Metric`] names; a sub-table's key is a transport name. Unknown metrics or transports, bad
//! operators and non-finite limits are refused when the scenario is loaded, with the field named
//! (`thresholds.ws.latency_p99_ms`), so a typo never silently passes.
//!
//! **Unmeasurable values fail.** A threshold whose metric is `null` in the result (nothing delivered, no
//! server to sample) fails with "not measured": a gate that cannot see the figure must not pass it.

use std::fmt;

use pushbench_common::Transport;
use serde::Serialize;

use crate::result::{Metric, RunResult, ThresholdOutcome, TransportResult, UnknownMetric};

/// A comparison operator of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `=`
    Eq,
    /// `>=`
    Ge,
    /// `>`
    Gt,
}

impl Op {
    const ALL: [(Op, &'static str); 5] = [
        (Op::Le, "<="),
        (Op::Ge, ">="),
        (Op::Lt, "<"),
        (Op::Gt, ">"),
        (Op::Eq, "="),
    ];

    fn symbol(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(op, _)| *op == self)
            .map(|(_, s)| *s)
            .expect("every operator has a symbol")
    }

    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Eq => value == limit,
            Op::Ge => value >= limit,
            Op::Gt => value > limit,
        }
    }
}

/// One condition a transport's figure must meet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// The figure.
    pub metric: Metric,
    /// How it compares with the limit.
    pub op: Op,
    /// The limit, in the metric's unit.
    pub limit: f64,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.op.symbol(), self.limit)
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A scenario's thresholds: those for every transport, and per-transport overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Thresholds {
    /// Apply to every transport.
    pub all: Vec<Threshold>,
    /// Apply to one transport; replace a threshold of `all` on the same metric.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_transport: Vec<(Transport, Vec<Threshold>)>,
}

/// A threshold refused when the scenario is loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("scenario field `{field}`: {reason}")]
pub struct ThresholdError {
    /// Dotted field, e.g. `thresholds.ws.latency_p99_ms`.
    pub field: String,
    /// Why it is refused.
    pub reason: String,
}

impl Thresholds {
    /// Validates a raw `[thresholds]` table.
    pub fn from_table(table: &toml::Table) -> Result<Self, ThresholdError> {
        let mut thresholds = Self::default();
        for (key, value) in table {
            if let toml::Value::Table(sub) = value {
                let field = format!("thresholds.{key}");
                let transport: Transport = key.parse().map_err(|e| ThresholdError {
                    field: field.clone(),
                    reason: format!("a sub-table must be named after a transport: {e}"),
                })?;
                let mut list = Vec::new();
                for (metric, value) in sub {
                    list.push(parse_one(&format!("{field}.{metric}"), metric, value)?);
                }
                thresholds.per_transport.push((transport, list));
            } else {
                thresholds
                    .all
                    .push(parse_one(&format!("thresholds.{key}"), key, value)?);
            }
        }
        Ok(thresholds)
    }

    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty() && self.per_transport.iter().all(|(_, l)| l.is_empty())
    }

    /// The thresholds that apply to `transport`: its own, then those for all on other metrics.
    pub fn for_transport(&self, transport: Transport) -> Vec<Threshold> {
        let own: Vec<Threshold> = self
            .per_transport
            .iter()
            .filter(|(t, _)| *t == transport)
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        let mut list: Vec<Threshold> = self
            .all
            .iter()
            .filter(|a| !own.iter().any(|o| o.metric == a.metric))
            .copied()
            .collect();
        list.extend(own);
        list.sort_by_key(|t| t.metric);
        list
    }
}

fn parse_one(field: &str, key: &str, value: &toml::Value) -> Result<Threshold, ThresholdError> {
    let refuse = |reason: String| ThresholdError {
        field: field.to_owned(),
        reason,
    };
    let metric: Metric = key
        .parse()
        .map_err(|e: UnknownMetric| refuse(e.to_string()))?;
    let (op, limit) = match value {
        toml::Value::Integer(n) => (Op::Le, *n as f64),
        toml::Value::Float(x) => (Op::Le, *x),
        toml::Value::String(text) => {
            let text = text.trim();
            let (op, rest) = Op::ALL
                .iter()
                .find_map(|(op, sym)| text.strip_prefix(sym).map(|rest| (*op, rest)))
                .ok_or_else(|| {
                    refuse(format!(
                        "{text:?} must start with one of < <= = >= > (e.g. \"< 50\")"
                    ))
                })?;
            let limit: f64 = rest.trim().parse().map_err(|_| {
                refuse(format!(
                    "{:?} after {} is not a number",
                    rest.trim(),
                    op.symbol()
                ))
            })?;
            (op, limit)
        }
        other => {
            return Err(refuse(format!(
                "must be a number (at most) or a string like \"< 50\", got {}",
                other.type_str()
            )));
        }
    };
    if !limit.is_finite() {
        return Err(refuse(format!(
            "limit must be a finite number, got {limit}"
        )));
    }
    Ok(Threshold { metric, op, limit })
}

/// Evaluates `thresholds` against `r`.
pub fn evaluate(thresholds: &[Threshold], r: &TransportResult) -> Vec<ThresholdOutcome> {
    thresholds
        .iter()
        .map(|t| {
            let value = t.metric.value(r);
            ThresholdOutcome {
                threshold: t.to_string(),
                value,
                passed: value.is_some_and(|v| t.op.holds(v, t.limit)),
            }
        })
        .collect()
}

/// Evaluates the scenario's thresholds on every transport of `result`, storing the outcomes in it;
/// returns (passed, failed).
pub fn apply(thresholds: &Thresholds, result: &mut RunResult) -> (usize, usize) {
    let mut counts = (0, 0);
    for t in &mut result.transports {
        t.thresholds = evaluate(&thresholds.for_transport(t.transport), t);
        for o in &t.thresholds {
            if o.passed {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::table::{Format, write_outcomes};
    use crate::result::test_result;

    fn parse(text: &str) -> Result<Thresholds, ThresholdError> {
        Thresholds::from_table(&text.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn bad_thresholds_are_refused_naming_the_field() {
        let cases = [
            ("latency_p98_ms = 3", "`thresholds.latency_p98_ms`"),
            ("lost = \"== 0\"", "`thresholds.lost`"),
            ("lost = \"~ 0\"", "`thresholds.lost`"),
            ("lost = \"< zero\"", "`thresholds.lost`"),
            ("lost = true", "`thresholds.lost`"),
            ("lost = nan", "`thresholds.lost`"),
            ("[pigeon]\nlost = 0", "`thresholds.pigeon`"),
            ("[ws]\nlatency = \"< 1\"", "`thresholds.ws.latency`"),
        ];
        for (text, field) in cases {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.contains(field), "{e:?} should name {field}");
        }
    }

    #[test]
    fn transport_tables_override_the_common_ones() {
        let t =
            parse("lost = 0\nlatency_p99_ms = \"< 50\"\n[ws]\nlatency_p99_ms = \"<= 20\"").unwrap();
        let ws: Vec<String> = t
            .for_transport(Transport::Ws)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ws, ["lost <= 0", "latency_p99_ms <= 20"]);
        let sse: Vec<String> = t
            .for_transport(Transport::Sse)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(sse, ["lost <= 0", "latency_p99_ms < 50"]);
    }

    #[test]
    fn doctored_results_fail_their_thresholds_and_unmeasured_ones_fail_too() {
        let t = parse(
            "lost = 0\nbytes_per_delivery = \"< 400\"\nlatency_p99_ms = \"< 50\"\nserver_rss_per_connection_kib = \"< 16\"",
        )
        .unwrap();
        let mut good = test_result(&[1_000, 2_000, 3_000]);
        assert_eq!(apply(&t, &mut good), (4, 0));

        let mut bad = test_result(&[1_000, 2_000, 90_000]);
        bad.transports[0].lost = 1;
        bad.transports[0].bytes_per_delivery = Some(450.0);
        bad.transports[0].server_rss_per_connection_bytes = None;
        assert_eq!(apply(&t, &mut bad), (0, 4));
        let mut text = Vec::new();
        write_outcomes(&bad, Format::Text, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("FAIL") && text.contains("lost <= 0"),
            "{text}"
        );
        assert!(text.contains("not measured"), "{text}");
        assert!(text.ends_with("thresholds: 0 passed, 4 failed\n"), "{text}");
    }
}
