//! The renderings of a result: `result.json` ([`json`]), `report.md` ([`md`]) and `report.html`
//! ([`html`]), plus the terminal summary table ([`table`]) and the plain-language reading all of them share
//! ([`reading`]); the page of one scenario under several networks ([`matrix`]); and the OpenMetrics
//! text of a result, for the systems that track figures across runs ([`openmetrics`]). Every rendering is
//! computed from results alone, so a result read back from disk (or merged from several runs) renders
//! the same way.

pub mod html;
pub mod json;
pub mod matrix;
pub mod md;
pub mod openmetrics;
pub mod reading;
pub mod table;

use anyhow::Context;

use crate::result::{RunResult, TransportResult, decode_histogram, ms, opt};

/// Writes `result.json`, `report.md` and `report.html` into `dir`.
pub fn write_all(result: &RunResult, dir: &std::path::Path) -> anyhow::Result<()> {
    let path = dir.join("result.json");
    let file =
        std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    json::write(result, std::io::BufWriter::new(file))
        .with_context(|| format!("cannot write {}", path.display()))?;
    write_reports(result, dir)
}

/// Writes `report.md` and `report.html` into `dir`.
pub fn write_reports(result: &RunResult, dir: &std::path::Path) -> anyhow::Result<()> {
    let md = dir.join("report.md");
    let file =
        std::fs::File::create(&md).with_context(|| format!("cannot write {}", md.display()))?;
    md::write(result, std::io::BufWriter::new(file))
        .with_context(|| format!("cannot write {}", md.display()))?;
    let html = dir.join("report.html");
    let file =
        std::fs::File::create(&html).with_context(|| format!("cannot write {}", html.display()))?;
    html::write(result, std::io::BufWriter::new(file))
        .with_context(|| format!("cannot write {}", html.display()))?;
    Ok(())
}
