//! `pushbench capacity SCENARIO --p99-ms X`: per transport, the largest number of subscribers (or the highest
//! publish rate) the server sustains with zero loss and p99 delivery latency under X ms, found by a search
//! of full runs, with the curve it walked.
//!
//! Each step is one [`crate::run::run`] of a copy of the scenario with only the varied value changed,
//! restricted to one transport, written to `OUT/<transport>/step-<n>-<value>/` like any run. [`judge`]
//! decides what a step says ([`search::Verdict`]); [`search::Search`] picks the next value; [`conclude`]
//! turns the steps into the transport's verdict. A step the load generator or the machine could not
//! measure honestly (saturated, out of file descriptors, connect failures) ends the search with "limited
//! by the load generator / machine", never with a server capacity. The outputs (`capacity.json`,
//! `capacity.md`, `capacity.html`) are written by [`report`].

pub mod report;
pub mod search;

use std::path::Path;
use std::sync::Arc;

use pushbench_common::Transport;
use serde::{Deserialize, Serialize};

use crate::run::{RunError, RunOptions};
use crate::scenario::{Scenario, ScenarioError};
use pushbench_report::result::{RunResult, TransportResult};
pub use search::{Params, ParamsError, Search, Verdict};

/// Default `--max` for subscribers: under the per-process limit of 20,000 open files on these machines
/// (the spawned server holds one socket per subscriber, plus its own files).
pub const DEFAULT_MAX_SUBSCRIBERS: f64 = 19_000.0;
/// Default `--max` for the publish rate, events per second.
pub const DEFAULT_MAX_RATE: f64 = 100_000.0;

/// What the search varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Vary {
    /// The number of subscribers (the scenario's `subscribers`).
    Subscribers,
    /// The publish rate in events per second over all topics (the scenario's `publish_rate`).
    Rate,
}

impl Vary {
    /// The scenario field it changes.
    pub fn field(self) -> &'static str {
        match self {
            Self::Subscribers => "subscribers",
            Self::Rate => "publish_rate",
        }
    }

    /// Its unit, for tables and charts.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Subscribers => "subscribers",
            Self::Rate => "events/s",
        }
    }

    /// The scenario's own value.
    pub fn of(self, scenario: &Scenario) -> f64 {
        match self {
            Self::Subscribers => scenario.subscribers as f64,
            Self::Rate => scenario.publish_rate,
        }
    }
}

/// Everything a capacity search needs besides how to run one step.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The scenario file as written (each step changes one field of it and validates it again).
    pub table: toml::Table,
    /// The scenario as validated.
    pub scenario: Scenario,
    /// What is varied.
    pub vary: Vary,
    /// p99 delivery latency a step must stay under, ms.
    pub p99_ms: f64,
    /// Search bounds.
    pub params: Params,
    /// This process's open-file limit, to recognise a step that ran out of file descriptors.
    pub open_files: u64,
}

/// Why a capacity search could not be done at all.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// The scenario with a searched value is not a valid scenario.
    #[error("with {field} = {value}: {error}")]
    Scenario {
        /// The varied field.
        field: &'static str,
        /// Its value.
        value: f64,
        /// What validation said.
        error: ScenarioError,
    },
    /// Bad search bounds.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// `--p99-ms` not a positive number.
    #[error("--p99-ms must be a positive number of milliseconds, got {0}")]
    P99(f64),
    /// A signal ended the search (what was searched until then is written).
    #[error("interrupted by {0}: the search stopped; the steps run so far are in capacity.json")]
    Interrupted(&'static str),
    /// An output could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file or directory.
        path: String,
        /// Why.
        error: String,
    },
}

impl CapacityError {
    /// Whether the command line (or the scenario) is at fault rather than the run.
    pub fn is_usage(&self) -> bool {
        !matches!(self, Self::Write { .. } | Self::Interrupted(_))
    }
}

/// The scenario of one step: `transport` only, the varied field set to `value`, no thresholds (a step's
/// pass or fail is the capacity criterion, not the scenario's gate), validated again.
pub fn step_scenario(
    spec: &Spec,
    transport: Transport,
    value: f64,
) -> Result<Scenario, CapacityError> {
    let mut table = spec.table.clone();
    table.insert(
        "transports".into(),
        toml::Value::Array(vec![toml::Value::String(transport.as_str().into())]),
    );
    let v = match spec.vary {
        Vary::Subscribers => toml::Value::Integer(value as i64),
        Vary::Rate => toml::Value::Float(value),
    };
    table.insert(spec.vary.field().into(), v);
    table.remove("thresholds");
    let text = toml::to_string(&table).expect("a TOML table serializes");
    Scenario::parse(
        &text,
        &format!(
            "{} with {} = {value}",
            spec.scenario.name,
            spec.vary.field()
        ),
    )
    .map_err(|error| CapacityError::Scenario {
        field: spec.vary.field(),
        value,
        error,
    })
}

/// Checks that the first and the largest value make valid scenarios for every transport, before any run.
pub fn validate(spec: &Spec) -> Result<(), CapacityError> {
    if !spec.p99_ms.is_finite() || spec.p99_ms <= 0.0 {
        return Err(CapacityError::P99(spec.p99_ms));
    }
    for &t in &spec.scenario.transports {
        step_scenario(spec, t, spec.params.start)?;
        step_scenario(spec, t, spec.params.max)?;
    }
    Ok(())
}

/// One step of the walk, with the figures its chart and table show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// 1-based, in the order run.
    pub n: u32,
    /// The varied value.
    pub value: f64,
    /// What the step says.
    pub verdict: Verdict,
    /// Why it failed or stopped the search (empty on a pass).
    pub reasons: Vec<String>,
    /// Its outputs, relative to the capacity directory.
    pub dir: String,
    /// Subscribers started.
    pub subscribers: u64,
    /// Subscribers that got a live subscription.
    pub subscribers_connected: u64,
    /// Events per second published.
    pub publish_rate: f64,
    /// Delivery latency percentiles from the intended send time, ms (None: nothing measured).
    pub latency_p50_ms: Option<f64>,
    /// Same, 99th percentile.
    pub latency_p99_ms: Option<f64>,
    /// Same, largest.
    pub latency_max_ms: Option<f64>,
    /// Owed events never received.
    pub lost: u64,
    /// Duplicates, out-of-order and unexpected receipts.
    pub inexact: u64,
    /// Server RSS growth per connected subscriber, KiB.
    pub server_rss_per_connection_kib: Option<f64>,
    /// Server RSS with every subscriber connected, MiB.
    pub server_rss_mib: Option<f64>,
    /// Server CPU per 1,000 deliveries, ms.
    pub server_cpu_ms_per_1k_deliveries: Option<f64>,
    /// Deliveries per second: delivered / measured window.
    pub deliveries_per_s: Option<f64>,
    /// The run was flagged `loadgen_saturated`.
    pub saturated: bool,
}

impl Step {
    /// The step of a run's result for one transport, judged.
    pub fn of(n: u32, value: f64, dir: String, r: &TransportResult, spec: &Spec) -> Self {
        let (verdict, reasons) = judge(r, spec.p99_ms, spec.open_files);
        let measured = r.latency_us.count > 0;
        let ms = |us: u64| measured.then_some(us as f64 / 1000.0);
        Self {
            n,
            value,
            verdict,
            reasons,
            dir,
            subscribers: r.subscribers,
            subscribers_connected: r.subscribers_connected,
            publish_rate: value_rate(spec, value),
            latency_p50_ms: ms(r.latency_us.p50),
            latency_p99_ms: ms(r.latency_us.p99),
            latency_max_ms: ms(r.latency_us.max),
            lost: r.lost,
            inexact: r.duplicates + r.out_of_order + r.unexpected,
            server_rss_per_connection_kib: r.server_rss_per_connection_bytes.map(|b| b / 1024.0),
            server_rss_mib: r.server_rss_connected_bytes.map(|b| b as f64 / 1048576.0),
            server_cpu_ms_per_1k_deliveries: r.server_cpu_ms_per_1k_deliveries,
            deliveries_per_s: (r.window_s > 0.0).then(|| r.delivered as f64 / r.window_s),
            saturated: r.loadgen_saturated,
        }
    }

    /// A step whose run failed: no figures, the error as its reason.
    pub fn failed(n: u32, value: f64, dir: String, error: String, spec: &Spec) -> Self {
        Self {
            n,
            value,
            verdict: Verdict::Error,
            reasons: vec![format!("the run failed: {error}")],
            dir,
            subscribers: match spec.vary {
                Vary::Subscribers => value as u64,
                Vary::Rate => spec.scenario.subscribers,
            },
            subscribers_connected: 0,
            publish_rate: value_rate(spec, value),
            latency_p50_ms: None,
            latency_p99_ms: None,
            latency_max_ms: None,
            lost: 0,
            inexact: 0,
            server_rss_per_connection_kib: None,
            server_rss_mib: None,
            server_cpu_ms_per_1k_deliveries: None,
            deliveries_per_s: None,
            saturated: false,
        }
    }
}

/// The publish rate of the step at `value`.
fn value_rate(spec: &Spec, value: f64) -> f64 {
    match spec.vary {
        Vary::Subscribers => spec.scenario.publish_rate,
        Vary::Rate => value,
    }
}

/// Decides what one transport's run says, with every reason. The load generator or the machine comes first
/// (saturated, out of file descriptors, connect failures: [`Verdict::Machine`], since then the other
/// figures describe the machine); then the server's failures: anything lost, duplicated, out of order or
/// unexpected, failed publishes, nothing measured, p99 at or above `p99_ms`.
pub fn judge(r: &TransportResult, p99_ms: f64, open_files: u64) -> (Verdict, Vec<String>) {
    let mut machine = Vec::new();
    if r.loadgen_saturated {
        machine.push(format!(
            "load generator / machine saturated ({})",
            r.loadgen_saturation_reasons.join("; ")
        ));
    }
    if r.subscribers_connected < r.subscribers || r.failed_connects > 0 {
        let error = r.last_error.as_deref().unwrap_or("no error recorded");
        let out_of_fds = error.contains("LIMIT open files")
            || error.contains("Too many open files")
            || error.contains("os error 24")
            || r.loadgen_fds + 16 >= open_files
            || r.server_fds.is_some_and(|fds| fds + 16 >= open_files);
        let what = if error.contains("LIMIT ") && !out_of_fds {
            // Ephemeral ports or kernel memory, named by crate::machine::limits.
            "a limit of this machine".to_owned()
        } else if out_of_fds {
            format!(
                "out of file descriptors (limit {open_files} per process; load generator held {}, server {})",
                r.loadgen_fds,
                r.server_fds
                    .map_or_else(|| "?".to_owned(), |f| f.to_string())
            )
        } else {
            "connect failures".to_owned()
        };
        machine.push(format!(
            "{what}: {} of {} subscribers connected, {} failed connects (last error: {error})",
            r.subscribers_connected, r.subscribers, r.failed_connects
        ));
    }
    if !machine.is_empty() {
        return (Verdict::Machine, machine);
    }
    let mut fail = Vec::new();
    let inexact = [
        (r.lost, "lost"),
        (r.duplicates, "duplicates"),
        (r.out_of_order, "out of order"),
        (r.unexpected, "unexpected"),
    ];
    for (n, what) in inexact {
        if n > 0 {
            fail.push(format!("{n} {what}"));
        }
    }
    if r.publish_failures > 0 {
        fail.push(format!("{} publishes failed", r.publish_failures));
    }
    if r.latency_us.count == 0 {
        fail.push("no delivery latency measured".to_owned());
    } else {
        let p99 = r.latency_us.p99 as f64 / 1000.0;
        if p99 >= p99_ms {
            fail.push(format!("p99 {p99:.1} ms ≥ {p99_ms} ms"));
        }
    }
    if fail.is_empty() {
        (Verdict::Pass, fail)
    } else {
        (Verdict::Fail, fail)
    }
}

/// How a transport's search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchEnd {
    /// Passed at a value and failed above it: the server's limit lies between.
    ServerLimit,
    /// Failed already at the first value.
    FailsAtStart,
    /// Passed at `--max`: the server's limit is higher.
    ReachedMax,
    /// Stopped by the load generator or the machine: not the server's limit.
    MachineLimit,
    /// Stopped by a step whose run failed: no verdict above it.
    RunFailed,
    /// Stopped by `--max-steps` before a failure or `--max`.
    StepBudget,
    /// The server does not offer this transport, or its peer profile does not drive it (the summary
    /// says which): not searched.
    NotOffered,
    /// SIGINT or SIGTERM ended the search: the steps run until then, no verdict.
    Interrupted,
}

/// What stopped a transport's search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    /// The value at which it stopped.
    pub at: f64,
    /// Who set the limit: `server`, `load generator / machine`, `--max`, `--max-steps`.
    pub by: String,
    /// Why, with the figures.
    pub why: String,
}

/// One transport's search: the verdict and the curve walked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransportCapacity {
    /// Transport.
    pub transport: Transport,
    /// How the search ended.
    pub outcome: SearchEnd,
    /// Largest value that passed (None: none did). The server's capacity only with
    /// [`SearchEnd::ServerLimit`] (a lower bound with [`SearchEnd::ReachedMax`]); with any other outcome, just
    /// the largest value measured cleanly before the search stopped.
    pub capacity: Option<f64>,
    /// What stopped the search.
    pub limit: Option<Limit>,
    /// The verdict in one sentence.
    pub summary: String,
    /// Every step, in the order run.
    pub steps: Vec<Step>,
}

/// The verdict follows from the steps alone: the largest pass is the capacity; a failed run or a stop by
/// the machine (always the last step) says so ("limited by the load generator / machine"); otherwise the smallest fail
/// above it is the server's limit; with no fail, `max` passed or the step budget ran out.
pub fn conclude(
    transport: Transport,
    vary: Vary,
    p99_ms: f64,
    params: &Params,
    steps: Vec<Step>,
) -> TransportCapacity {
    let capacity = steps
        .iter()
        .filter(|s| s.verdict == Verdict::Pass)
        .map(|s| s.value)
        .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
    let fail = steps
        .iter()
        .filter(|s| s.verdict == Verdict::Fail)
        .min_by(|a, b| a.value.total_cmp(&b.value));
    let machine = steps.iter().find(|s| s.verdict == Verdict::Machine);
    let error = steps.iter().find(|s| s.verdict == Verdict::Error);
    let unit = vary.unit();
    let value = |v: f64| format_value(v, vary);
    let held = match capacity {
        Some(c) => format!(
            "sustains {} {unit} (nothing lost, p99 < {p99_ms} ms)",
            value(c)
        ),
        None => "sustained no value tried".to_owned(),
    };
    let (outcome, limit) = if let Some(e) = error {
        (
            SearchEnd::RunFailed,
            Some(Limit {
                at: e.value,
                by: "run failure".into(),
                why: e.reasons.join("; "),
            }),
        )
    } else if let Some(m) = machine {
        let why = m.reasons.join("; ");
        (
            SearchEnd::MachineLimit,
            Some(Limit {
                at: m.value,
                by: "load generator / machine".into(),
                why,
            }),
        )
    } else if let Some(f) = fail {
        (
            if capacity.is_some() {
                SearchEnd::ServerLimit
            } else {
                SearchEnd::FailsAtStart
            },
            Some(Limit {
                at: f.value,
                by: "server".into(),
                why: f.reasons.join("; "),
            }),
        )
    } else if capacity.is_some_and(|c| c >= params.max) {
        (
            SearchEnd::ReachedMax,
            Some(Limit {
                at: params.max,
                by: "--max".into(),
                why: format!(
                    "passed at --max {}; the server's limit is higher",
                    value(params.max)
                ),
            }),
        )
    } else {
        (
            SearchEnd::StepBudget,
            Some(Limit {
                at: steps.last().map_or(params.start, |s| s.value),
                by: "--max-steps".into(),
                why: format!(
                    "{} steps run (--max-steps {})",
                    steps.len(),
                    params.max_steps
                ),
            }),
        )
    };
    let summary = match (&outcome, &limit) {
        (SearchEnd::ServerLimit, Some(l)) => {
            format!(
                "{transport}: {held}; fails at {} {unit}: {}",
                value(l.at),
                l.why
            )
        }
        (SearchEnd::FailsAtStart, Some(l)) => format!(
            "{transport}: fails already at the first value, {} {unit}: {}",
            value(l.at),
            l.why
        ),
        (SearchEnd::ReachedMax, _) => {
            format!("{transport}: {held} — the --max; the server's limit is higher")
        }
        (SearchEnd::MachineLimit, Some(l)) => format!(
            "{transport}: limited by the load generator / machine at {} {unit}, not by the server ({}); below it the server {}",
            value(l.at),
            l.why,
            held.replace("sustains", "sustained")
        ),
        (SearchEnd::RunFailed, Some(l)) => format!(
            "{transport}: the run at {} {unit} failed ({}); below it the server {}",
            value(l.at),
            l.why,
            held.replace("sustains", "sustained")
        ),
        (SearchEnd::StepBudget, Some(l)) => format!(
            "{transport}: {held}; the search stopped after --max-steps ({}) without finding a limit",
            l.why
        ),
        _ => format!("{transport}: not searched"),
    };
    TransportCapacity {
        transport,
        outcome,
        capacity,
        limit,
        summary,
        steps,
    }
}

/// A value as shown: whole subscribers, or a rate with up to two decimals.
pub fn format_value(v: f64, vary: Vary) -> String {
    match vary {
        Vary::Subscribers => format!("{}", v.round() as u64),
        Vary::Rate if v.fract() == 0.0 => format!("{v:.0}"),
        Vary::Rate => format!("{v:.2}"),
    }
}

/// The whole search, as written to `capacity.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Tool name and version.
    pub tool: String,
    /// The scenario's name.
    pub scenario: String,
    /// What was varied.
    pub vary: Vary,
    /// The p99 limit, ms.
    pub p99_ms: f64,
    /// Search bounds.
    pub search: Params,
    /// Start of the search, UTC, RFC 3339.
    pub started_at: String,
    /// End of the search.
    pub finished_at: String,
    /// How the server was provided (as in `result.json`).
    pub server: String,
    /// One search per transport of the scenario, in its order.
    pub transports: Vec<TransportCapacity>,
}

/// Runs the search for every transport of the scenario: steps into `out_dir/<transport>/step-<n>-<value>/`
/// (each a `result.json` with its reports), then `capacity.json`, `capacity.md` and `capacity.html` in
/// `out_dir`. `options` is the run's options; each step changes only its output directory. A step whose
/// run fails stops that transport's search (recorded as a machine limit with the error) and the next
/// transport is searched. Errors: unwritable outputs; SIGINT or SIGTERM, which ends the search after
/// writing the steps run so far (the interrupted step is not among them).
pub async fn run(spec: &Spec, options: &RunOptions) -> Result<Capacity, CapacityError> {
    let started_at = now();
    let mut transports = Vec::new();
    let mut server = String::new();
    let mut interrupted = None;
    // A step's run stops itself on SIGTERM (and goose's attack on SIGINT); these also catch a signal
    // between two steps.
    let mut signals = Signals::watch();
    for &transport in &spec.scenario.transports {
        if let Some(why) = options.server.not_driven(transport, &spec.scenario.client) {
            eprintln!("pushbench: capacity {transport}: {why}");
            transports.push(TransportCapacity {
                transport,
                outcome: SearchEnd::NotOffered,
                capacity: None,
                limit: None,
                summary: format!("{transport}: {why}"),
                steps: Vec::new(),
            });
            continue;
        }
        let mut search = Search::new(spec.params);
        let mut steps = Vec::new();
        while let Some(value) = search.next() {
            if let Some(signal) = signals.pending() {
                interrupted = Some(signal);
                break;
            }
            let n = steps.len() as u32 + 1;
            let rel = format!("{transport}/step-{n}-{}", format_value(value, spec.vary));
            let dir = options.out_dir.join(&rel);
            create_dir(&dir)?;
            let scenario = step_scenario(spec, transport, value)?;
            let step_options = RunOptions {
                out_dir: dir.clone(),
                ..options.clone()
            };
            eprintln!(
                "pushbench: capacity {transport} step {n}: {} {}",
                format_value(value, spec.vary),
                spec.vary.unit()
            );
            let step = match crate::run::run(Arc::new(scenario), &step_options).await {
                Ok(result) => {
                    write_step(&result, &dir)?;
                    server.clone_from(&result.server);
                    match result.transports.first() {
                        Some(r) => Step::of(n, value, rel, r, spec),
                        None => Step::failed(n, value, rel, "no result".into(), spec),
                    }
                }
                Err(RunError::Interrupted(signal)) => {
                    interrupted = Some(signal);
                    break;
                }
                Err(e) => Step::failed(n, value, rel, run_error(&e), spec),
            };
            eprintln!(
                "pushbench: capacity {transport} step {n}: {} {} → {}{}",
                format_value(value, spec.vary),
                spec.vary.unit(),
                match step.verdict {
                    Verdict::Pass => "pass",
                    Verdict::Fail => "FAIL",
                    Verdict::Machine => "STOP (load generator / machine)",
                    Verdict::Error => "STOP (the run failed)",
                },
                step.latency_p99_ms.map_or_else(String::new, |p| format!(
                    " (p99 {p:.1} ms, lost {})",
                    step.lost
                ))
            );
            search.record(value, step.verdict);
            steps.push(step);
        }
        if interrupted.is_some() && steps.is_empty() {
            break;
        }
        let result = if let Some(signal) = interrupted {
            let mut partial = conclude(transport, spec.vary, spec.p99_ms, &spec.params, steps);
            partial.outcome = SearchEnd::Interrupted;
            partial.limit = None;
            partial.summary = format!(
                "{transport}: interrupted by {signal} after {} steps; no verdict",
                partial.steps.len()
            );
            partial
        } else {
            conclude(transport, spec.vary, spec.p99_ms, &spec.params, steps)
        };
        eprintln!("pushbench: capacity {}", result.summary);
        transports.push(result);
        if interrupted.is_some() {
            break;
        }
    }
    let capacity = Capacity {
        tool: concat!("pushbench ", env!("CARGO_PKG_VERSION")).to_owned(),
        scenario: spec.scenario.name.clone(),
        vary: spec.vary,
        p99_ms: spec.p99_ms,
        search: spec.params,
        started_at,
        finished_at: now(),
        server,
        transports,
    };
    report::write_all(&capacity, &options.out_dir)?;
    match interrupted {
        Some(signal) => Err(CapacityError::Interrupted(signal)),
        None => Ok(capacity),
    }
}

/// SIGINT and SIGTERM, watched for the whole search.
struct Signals(Vec<(tokio::signal::unix::Signal, &'static str)>);

impl Signals {
    fn watch() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let kinds = [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
        ];
        Self(
            kinds
                .into_iter()
                .filter_map(|(kind, name)| Some((signal(kind).ok()?, name)))
                .collect(),
        )
    }

    /// The name of a signal received since the last call, if any. Once a step has run, goose's own
    /// handler takes SIGINT (it raises goose's kill switch, which goose resets when its next attack
    /// starts): that is read here too.
    fn pending(&mut self) -> Option<&'static str> {
        use futures_util::FutureExt;
        if crate::fleet::sigint_seen() {
            return Some("SIGINT");
        }
        self.0
            .iter_mut()
            .find_map(|(signal, name)| signal.recv().now_or_never().flatten().map(|()| *name))
    }
}

fn run_error(e: &RunError) -> String {
    format!("{e:#}")
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn create_dir(dir: &Path) -> Result<(), CapacityError> {
    std::fs::create_dir_all(dir).map_err(|e| CapacityError::Write {
        path: dir.display().to_string(),
        error: e.to_string(),
    })
}

/// A step's `result.json`, `report.md` and `report.html`, by the same writer as `pushbench run`.
fn write_step(result: &RunResult, dir: &Path) -> Result<(), CapacityError> {
    pushbench_report::render::write_all(result, dir).map_err(|e| CapacityError::Write {
        path: dir.display().to_string(),
        error: format!("{e:#}"),
    })
}

#[cfg(test)]
mod tests;
