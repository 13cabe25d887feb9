//! The result side of pushbench: the `result.json` schema, what a result is held against (a scenario's
//! thresholds, a baseline, other runs) and how it is rendered. It runs nothing and starts nothing, so
//! `pushbench compare`, `merge`, `report` and the CI gate need neither an async runtime nor goose nor an
//! HTTP stack; the load generator (`pushbench`) depends on this crate, never the other way.
//!
//! # Layout
//! ```text
//!   gate     thresholds, compare, merge, junit may import: render, result
//!    │
//!   render   json, md, html, table, reading,   may import: result
//!            openmetrics
//!    │
//!   result   the schema, histograms, metrics   may import: nothing of this crate
//! ```
//! - [`result`]: [`result::RunResult`] and everything it carries (transport, node and bus results,
//!   percentiles, spreads of repeated runs, threshold outcomes), the histogram codec and the catalogue of
//!   gateable metrics ([`result::Metric`]).
//! - [`render`]: `result.json`, `report.md`, `report.html`, the terminal table, the plain-language
//!   reading and the OpenMetrics text, each computed from a result alone.
//! - [`gate`]: a scenario's `[thresholds]`, a result against a baseline with tolerances, and several runs
//!   merged exactly; the gate's own tables are written with [`render::table`], its verdicts as JUnit XML
//!   with [`gate::junit`].

// Lets `result/fixture.rs` name this crate the same way from the unit tests and from the load generator's
// `tests/`.
#[cfg(test)]
extern crate self as pushbench_report;

pub mod gate;
pub mod render;
pub mod result;
