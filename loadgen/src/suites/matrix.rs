//! `pushbench matrix`: one scenario under each of several networks (`--networks wifi,4g`) or under one
//! field swept (`--vary rtt_ms=0,50,100`), each run in a `pushbench run` process of its own — a run
//! enters its network's namespaces with its main thread, so networks cannot share a process — then one
//! page over all of them ([`pushbench_report::render::matrix`]).
//!
//! Each row's scenario is the given file with its `[network]` table replaced, written beside the row's
//! results (`OUT/<row>/scenario.toml`) so that every row can be re-run alone. All of them are validated
//! before the first run starts.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use pushbench_report::render::matrix::{self, Row};

use crate::scenario::Scenario;

/// The network fields a sweep may vary.
pub const VARIABLE_FIELDS: &[&str] = &["rtt_ms", "jitter_ms", "loss_pct", "down_kbit", "up_kbit"];

/// What a matrix runs.
#[derive(Debug, Clone)]
pub enum Rows {
    /// One row per preset.
    Networks(Vec<String>),
    /// One row per value of a `[network]` field, over the scenario's own `[network]`.
    Vary {
        /// One of [`VARIABLE_FIELDS`].
        field: String,
        /// Its values.
        values: Vec<f64>,
    },
}

/// How to run a matrix.
#[derive(Debug, Clone)]
pub struct MatrixSpec {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Its rows.
    pub rows: Rows,
    /// Output directory: one directory per row, and matrix.md, .html, .json.
    pub out_dir: PathBuf,
    /// Extra arguments for every `pushbench run` (server binary, workers, progress).
    pub run_args: Vec<String>,
}

/// A row to run: its label and its scenario text.
#[derive(Debug)]
struct Planned {
    label: String,
    toml: String,
}

/// Parses `FIELD=V1,V2,…`.
pub fn parse_vary(text: &str) -> Result<(String, Vec<f64>), String> {
    let (field, values) = text
        .split_once('=')
        .ok_or_else(|| format!("expected FIELD=V1,V2,… , got {text:?}"))?;
    if !VARIABLE_FIELDS.contains(&field) {
        return Err(format!(
            "cannot vary {field:?}; one of {}",
            VARIABLE_FIELDS.join(", ")
        ));
    }
    let values = values
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .map_err(|e| format!("{field} value {v:?}: {e}"))
        })
        .collect::<Result<Vec<f64>, String>>()?;
    if values.len() < 2 {
        return Err(format!("--vary {field} needs at least two values"));
    }
    Ok((field.to_owned(), values))
}

/// The scenario text with `[network]` set to `network`.
fn with_network(base: &toml::Table, network: toml::Table) -> String {
    let mut table = base.clone();
    table.insert("network".into(), toml::Value::Table(network));
    toml::to_string(&table).expect("a TOML table serializes")
}

fn plan(spec: &MatrixSpec) -> anyhow::Result<Vec<Planned>> {
    let text = std::fs::read_to_string(&spec.scenario)
        .with_context(|| format!("cannot read {}", spec.scenario.display()))?;
    let base: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not TOML", spec.scenario.display()))?;
    let own_network = match base.get("network") {
        Some(toml::Value::Table(t)) => t.clone(),
        _ => toml::Table::new(),
    };
    let planned: Vec<Planned> = match &spec.rows {
        Rows::Networks(names) => names
            .iter()
            .map(|name| {
                let mut network = toml::Table::new();
                network.insert("profile".into(), toml::Value::String(name.clone()));
                Planned {
                    label: name.clone(),
                    toml: with_network(&base, network),
                }
            })
            .collect(),
        Rows::Vary { field, values } => values
            .iter()
            .map(|&v| {
                let mut network = own_network.clone();
                let value = if field.ends_with("_kbit") {
                    toml::Value::Integer(v as i64)
                } else {
                    toml::Value::Float(v)
                };
                network.insert(field.clone(), value);
                Planned {
                    label: format!("{field}={v}"),
                    toml: with_network(&base, network),
                }
            })
            .collect(),
    };
    for row in &planned {
        Scenario::parse(&row.toml, &format!("matrix row {}", row.label))
            .with_context(|| format!("matrix row {}", row.label))?;
    }
    Ok(planned)
}

/// Runs every row, one `pushbench run` process each, and writes matrix.md, .html and .json. A row whose
/// run fails is named; the page is written over the rows that ran, and the matrix then fails.
pub fn run(spec: &MatrixSpec) -> anyhow::Result<()> {
    let planned = plan(spec)?;
    let bin = crate::util::pushbench_executable()
        .map_err(|tried| anyhow::anyhow!("no pushbench executable at {tried}"))?;
    let name = Scenario::parse(&planned[0].toml, "matrix")?.name;
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (i, row) in planned.iter().enumerate() {
        let dir_name = row.label.replace(['=', '/'], "-");
        let dir = spec.out_dir.join(&dir_name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let scenario = dir.join("scenario.toml");
        std::fs::write(&scenario, &row.toml)
            .with_context(|| format!("cannot write {}", scenario.display()))?;
        eprintln!(
            "pushbench: matrix row {} of {}: {}",
            i + 1,
            planned.len(),
            row.label
        );
        let status = Command::new(&bin)
            .arg("run")
            .arg(&scenario)
            .arg("--out")
            .arg(&dir)
            .args(&spec.run_args)
            .status()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        // Exit 3: thresholds failed, the result is complete and belongs in the matrix.
        match status.code() {
            Some(0 | 3) => rows.push(Row {
                label: row.label.clone(),
                dir: dir_name,
                result: read(&dir)?,
            }),
            _ => failed.push(format!("{} ({status}; see {})", row.label, dir.display())),
        }
    }
    write(&name, &rows, &spec.out_dir)?;
    eprintln!(
        "pushbench: wrote {0}/matrix.md, {0}/matrix.html, {0}/matrix.json",
        spec.out_dir.display()
    );
    if !failed.is_empty() {
        bail!("matrix rows failed: {}", failed.join(", "));
    }
    Ok(())
}

fn read(dir: &Path) -> anyhow::Result<pushbench_report::result::RunResult> {
    let path = dir.join("result.json");
    pushbench_report::render::json::read(&path)
        .with_context(|| format!("cannot read {}", path.display()))
}

fn write(name: &str, rows: &[Row], dir: &Path) -> anyhow::Result<()> {
    let create = |file: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
        let path = dir.join(file);
        Ok(std::io::BufWriter::new(
            std::fs::File::create(&path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        ))
    };
    matrix::write_md(name, rows, create("matrix.md")?)?;
    matrix::write_html(name, rows, create("matrix.html")?)?;
    matrix::write_json(rows, create("matrix.json")?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIO: &str = "name = \"m\"\nsubscribers = 10\nlaunch_rate = 100\nduration_s = 1\npublish_rate = 4\npayload_bytes = 64\n[network]\nprofile = \"4g\"\n";

    fn spec(rows: Rows) -> MatrixSpec {
        let dir = std::env::temp_dir().join(format!("pb-matrix-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let scenario = dir.join("m.toml");
        std::fs::write(&scenario, SCENARIO).unwrap();
        MatrixSpec {
            scenario,
            rows,
            out_dir: dir,
            run_args: Vec::new(),
        }
    }

    #[test]
    fn a_sweep_varies_one_field_over_the_scenarios_network() {
        let planned = plan(&spec(Rows::Vary {
            field: "rtt_ms".into(),
            values: vec![40.0, 100.0],
        }))
        .unwrap();
        assert_eq!(planned[1].label, "rtt_ms=100");
        let s = Scenario::parse(&planned[1].toml, "t").unwrap();
        assert_eq!(
            s.network.profile, "4g",
            "the scenario's preset stays under the sweep"
        );
        let c = s.network.conditions.unwrap();
        assert_eq!((c.rtt.as_millis(), c.loss_pct), (100, 0.5));
    }

    #[test]
    fn networks_replace_the_scenarios_and_a_bad_row_is_refused_before_any_run() {
        let planned = plan(&spec(Rows::Networks(vec!["loopback".into(), "3g".into()]))).unwrap();
        assert!(
            Scenario::parse(&planned[0].toml, "t")
                .unwrap()
                .network
                .is_loopback()
        );
        assert_eq!(
            Scenario::parse(&planned[1].toml, "t")
                .unwrap()
                .network
                .profile,
            "3g"
        );
        let bad = plan(&spec(Rows::Networks(vec!["5g".into()]))).unwrap_err();
        assert!(
            format!("{bad:#}").contains("unknown network \"5g\""),
            "{bad:#}"
        );
        assert!(parse_vary("rtt_ms=1").unwrap_err().contains("at least two"));
        assert!(
            parse_vary("payload_bytes=1,2")
                .unwrap_err()
                .contains("cannot vary")
        );
        assert_eq!(
            parse_vary("loss_pct=0,2").unwrap(),
            ("loss_pct".into(), vec![0.0, 2.0])
        );
    }
}
