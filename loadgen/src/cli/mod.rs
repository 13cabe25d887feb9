//! The command line: `pushbench run`, `check`, `report`, `compare`, `merge`, and their exit codes.
//!
//! Exit codes: [`EXIT_OK`] on success, [`EXIT_RUNTIME`] when the run itself failed (server would not start,
//! output not writable, a file unreadable), [`EXIT_USAGE`] for a bad command line or an invalid scenario
//! (clap uses 2 as well), and — only after the command did its work and wrote its output —
//! [`EXIT_THRESHOLD`] when `run` measured a figure past a scenario threshold, [`EXIT_REGRESSION`] when
//! `compare` found a regression past tolerance. Results that cannot be compared or merged (other
//! scenario, workload or schema version) are [`EXIT_USAGE`].

mod capacity;
mod demo;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::network::placement::Emulated;
use crate::network::{EmulatorChoice, NetworkSpec, Overrides};
use crate::profile::{Profile, ServerSpec};
use crate::run::{RunOptions, ServerSource, default_out_dir, run};
use crate::scenario::{ClientOptions, HttpVersion, Scenario, ScenarioError};
use crate::targets::deployment::TargetTrust;
use pushbench_report::gate::compare::{Format, Gate, Tolerances};
use pushbench_report::gate::{compare, junit, merge, thresholds};
use pushbench_report::render::{self as report, table::write_outcomes};
use pushbench_report::result::RunResult;

/// Success.
pub const EXIT_OK: u8 = 0;
/// The run failed.
pub const EXIT_RUNTIME: u8 = 1;
/// Bad command line or scenario; results that cannot be compared or merged.
pub const EXIT_USAGE: u8 = 2;
/// `run`: at least one threshold failed.
pub const EXIT_THRESHOLD: u8 = 3;
/// `compare`: at least one metric regressed past its tolerance.
pub const EXIT_REGRESSION: u8 = 4;

/// Measures the latency, completeness, wire, connection and server cost of each push transport of a
/// pushbench server.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario against every transport it names and write result.json, report.md, report.html.
    Run(RunArgs),
    /// Validate scenario files (and target profiles) without running them; with --result, evaluate one
    /// scenario's thresholds against an existing result (exit 3 when one fails).
    Check {
        /// Scenario files.
        #[arg(required_unless_present = "profiles")]
        scenarios: Vec<PathBuf>,
        /// Target profile files to validate (repeatable).
        #[arg(long = "profile", value_name = "FILE", conflicts_with = "result")]
        profiles: Vec<PathBuf>,
        /// A result.json of the (single) scenario given, to evaluate its thresholds against.
        #[arg(long)]
        result: Option<PathBuf>,
    },
    /// Render report.md and report.html again from a result.json, or print it in another format.
    Report {
        /// A result.json written by `pushbench run`.
        result: PathBuf,
        /// Directory for the reports [default: the result's directory].
        #[arg(long, conflicts_with = "format")]
        out: Option<PathBuf>,
        /// Print the result to stdout in this format instead of writing the reports: `openmetrics`,
        /// the Prometheus/OpenMetrics text (a gauge per metric and transport), for a pushgateway.
        #[arg(long, value_enum)]
        format: Option<ExportFormat>,
    },
    /// Compare a result with a baseline, per transport and metric; exit 4 on a regression past tolerance.
    Compare(CompareArgs),
    /// One load-generator worker process of `run --workers N` (started by `run`, speaks JSON lines on
    /// stdin/stdout).
    #[command(hide = true)]
    Worker,
    /// Stops what a run started once the run's pipe to it closes, even when the run was killed (started
    /// by `run`; see `util::watchdog`).
    #[command(hide = true)]
    Watchdog,
    /// Search, per transport, the most subscribers (or the highest publish rate) the server sustains with
    /// zero loss and p99 latency under --p99-ms; write OUT/capacity.json, .md, .html with the curve walked.
    Capacity(capacity::CapacityArgs),
    /// Run a scenario under several networks (each emulated per packet, each run a process of its own)
    /// and write OUT/matrix.md, .html and .json: rows networks, columns transports, the best cell of each
    /// row marked; each run's own results in OUT/<network>/.
    Matrix(MatrixArgs),
    /// The teaching demo (`pushbench-server --demo`) behind an emulated network: the server in a
    /// namespace of its own, and an address on 127.0.0.1 for a browser on this machine, whose every
    /// connection crosses the link (needs root, as `run --network`).
    Demo(demo::DemoArgs),
    /// Merge results of the same scenario exactly (counters summed, histograms added, percentiles
    /// recomputed).
    Merge {
        /// result.json files of the same scenario and workload.
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// Where to write the merged result.json.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Options of `pushbench matrix`.
#[derive(Debug, clap::Args)]
pub struct MatrixArgs {
    /// Scenario file (TOML).
    pub scenario: PathBuf,
    /// Presets, one row each (see `pushbench run --help` for what each stands for).
    #[arg(long, value_delimiter = ',', default_value = "loopback,wifi,4g,3g,lossy", value_parser = preset_name)]
    pub networks: Vec<String>,
    /// Instead of --networks: one row per value of a `[network]` field over the scenario's own network,
    /// e.g. rtt_ms=0,25,50,100,200 (fields: rtt_ms, jitter_ms, loss_pct, down_kbit, up_kbit).
    #[arg(long, value_name = "FIELD=V1,V2,...", value_parser = crate::suites::matrix::parse_vary)]
    pub vary: Option<(String, Vec<f64>)>,
    /// Output directory [default: results/<scenario>-matrix-<UTC time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Server binary, passed to every run [default: as `pushbench run`].
    #[arg(long, env = "PUSHBENCH_SERVER_BIN")]
    pub server_bin: Option<PathBuf>,
    /// Load-generator worker processes of every run (as `pushbench run --workers`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// What applies the networks' conditions in every run (as `pushbench run --emulator`).
    #[arg(long, value_enum, default_value_t = EmulatorChoice::Auto)]
    pub emulator: EmulatorChoice,
    /// Do not print the runs' live progress lines.
    #[arg(long, default_value_t = false)]
    pub no_progress: bool,
}

fn preset_name(name: &str) -> Result<String, String> {
    crate::network::preset(name).map(|p| p.name.to_owned())
}

fn matrix_command(args: MatrixArgs) -> Outcome {
    use crate::suites::matrix::{MatrixSpec, Rows, run};
    let name = Scenario::load(&args.scenario)
        .map_err(|e| (EXIT_USAGE, e.into()))?
        .name;
    let rows = match args.vary {
        Some((field, values)) => Rows::Vary { field, values },
        None => Rows::Networks(args.networks),
    };
    let mut run_args = vec![
        "--workers".to_owned(),
        args.workers.to_string(),
        "--emulator".to_owned(),
        clap::ValueEnum::to_possible_value(&args.emulator)
            .expect("every choice has a name")
            .get_name()
            .to_owned(),
    ];
    if let Some(bin) = &args.server_bin {
        run_args.extend(["--server-bin".to_owned(), bin.display().to_string()]);
    }
    if args.no_progress {
        run_args.push("--no-progress".into());
    }
    let spec = MatrixSpec {
        scenario: args.scenario,
        rows,
        out_dir: args.out.unwrap_or_else(|| {
            PathBuf::from("results").join(format!(
                "{name}-matrix-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
            ))
        }),
        run_args,
    };
    std::fs::create_dir_all(&spec.out_dir)
        .with_context(|| format!("cannot create {}", spec.out_dir.display()))
        .map_err(|e| (EXIT_RUNTIME, e))?;
    run(&spec).map_err(|e| (EXIT_RUNTIME, e))
}

/// Options of `pushbench compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline result.json.
    pub baseline: PathBuf,
    /// The result.json to check against it.
    pub current: PathBuf,
    /// Allowed rise of a metric, in percent of the baseline: METRIC=PERCENT (`inf` turns its gate off);
    /// repeatable.
    #[arg(long = "tolerance", value_name = "METRIC=PERCENT", long_help = tolerance_long_help())]
    pub tolerances: Vec<String>,
    /// Which metrics can fail: all, or the deterministic ones only (noisy ones are still shown).
    #[arg(long, value_enum, default_value_t = Gate::All)]
    pub gate: Gate,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also write the verdicts as JUnit XML to this file: one test case per gated metric and transport.
    /// (With `$GITHUB_STEP_SUMMARY` set, the Markdown comparison is appended to that file too.)
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// What `pushbench report --format` prints.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// The OpenMetrics (Prometheus) text format.
    Openmetrics,
}

/// Options of `pushbench run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario file (TOML).
    pub scenario: PathBuf,
    /// Output directory [default: results/<scenario>-<UTC time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Server binary to spawn, one fresh process per transport [default: pushbench-server next to this
    /// executable, or in its parent directory].
    #[arg(long, env = "PUSHBENCH_SERVER_BIN")]
    pub server_bin: Option<PathBuf>,
    /// Use an already running server (http://host:port, or https://host:port with --ca or --insecure)
    /// instead of spawning one.
    #[arg(long, conflicts_with = "server_bin")]
    pub target: Option<String>,
    /// With an https:// --target: trust the certificates in this PEM file (checked against the URL's
    /// host).
    #[arg(
        long,
        value_name = "FILE",
        requires = "target",
        conflicts_with = "insecure"
    )]
    pub ca: Option<PathBuf>,
    /// With an https:// --target: trust any certificate (encrypted, but the server is not
    /// authenticated).
    #[arg(long, requires = "target")]
    pub insecure: bool,
    /// PID of the --target server, to sample its memory and CPU (same machine only).
    #[arg(long, requires = "target")]
    pub server_pid: Option<u32>,
    /// Measure a server described by this target profile (TOML: how to subscribe, how its events are
    /// framed, how to publish, how to start it or where it runs; README "Measure your own server")
    /// instead of ours [default: the scenario's [target], else ours].
    #[arg(long, value_name = "FILE", conflicts_with_all = ["target", "peer", "peers", "server_bin"])]
    pub target_profile: Option<PathBuf>,
    /// Measure another server instead of ours, started per transport: nchan, pushpin or socketio from
    /// scenarios/peers/ (install with scripts/setup-peers), or floor, the floor reference
    /// (pushbench-floor, beside pushbench-server).
    #[arg(long, value_name = "SERVER", value_parser = crate::targets::deployment::ServerName::parse_other, conflicts_with_all = ["target", "peers"])]
    pub peer: Option<crate::targets::deployment::ServerName>,
    /// Run the same scenario against several servers (ours, nchan, pushpin, socketio, floor;
    /// comma-separated) and
    /// write them side by side in OUT/peers.md, each server's own results in OUT/<server>/; with floor,
    /// each server's CPU per delivery as a ratio of the floor's.
    #[arg(long, value_delimiter = ',', value_parser = crate::targets::deployment::ServerName::parse, conflicts_with = "target")]
    pub peers: Option<Vec<crate::targets::deployment::ServerName>>,
    /// Do not print the live progress line.
    #[arg(long, default_value_t = false)]
    pub no_progress: bool,
    /// Load-generator worker processes holding the subscribers (`pushbench worker`), started fresh for
    /// every transport so that the load generator's memory per subscriber does not depend on the
    /// transports before. Each holds a contiguous share, raises its open-file limit to the hard limit and
    /// binds its sockets to its own loopback source address 127.0.0.(2+i), which has its own ephemeral
    /// ports. More than one is needed past ~19,700 subscribers, where a process may open 20,000 files.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// Server nodes sharing one feed through a Redis backplane started for the run (`redis-server`
    /// on loopback, data in a temporary directory); subscribers spread over the nodes round robin and
    /// each reconnect goes to the next node. 1: a single server without Redis. Spawned servers only.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=32), conflicts_with_all = ["target", "peer", "peers"])]
    pub cluster: u32,
    /// Run the scenario this many times: each run goes to OUT/run-<i>/, and OUT/result.json is their exact
    /// merge with each metric's median and range over the runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Network between the subscribers and the server, replacing the scenario's `[network]`: a preset,
    /// emulated per packet between two network namespaces of the run's own (needs root; `loopback`,
    /// the default when the scenario has no `[network]`, needs nothing).
    #[arg(long, value_name = "PRESET", value_parser = network_preset, long_help = network_long_help())]
    pub network: Option<NetworkSpec>,
    /// What applies an emulated network's conditions; result.json's `network.engine` says which ran.
    #[arg(long, value_enum, default_value_t = EmulatorChoice::Auto)]
    pub emulator: EmulatorChoice,
    /// Run the clients over TLS, replacing the scenario's `[client] tls` (a spawned server, nchan or
    /// Pushpin gets a certificate made for the run; what a peer cannot serve over h2 is not offered).
    #[arg(long)]
    pub tls: bool,
    /// The subscribers' HTTP version, replacing `[client] http`: 1.1, or 2 (h2, which turns TLS on:
    /// browsers speak h2 only over TLS) [default: the scenario's, else 1.1].
    #[arg(long, value_name = "VERSION", value_parser = http_version)]
    pub http: Option<HttpVersion>,
    /// Subscribers multiplexed on one h2 connection, replacing `[client] subscribers_per_connection`
    /// (needs --http 2 or the scenario's) [default: the scenario's, else 1].
    #[arg(long, value_name = "N")]
    pub subscribers_per_connection: Option<u32>,
    /// Also write the thresholds' outcomes as JUnit XML to this file: one test case per threshold and
    /// transport.
    #[arg(long, value_name = "FILE", conflicts_with = "peers")]
    pub junit: Option<PathBuf>,
    /// Run only these of the scenario's transports (comma-separated: poll, longpoll, stream, sse, ws),
    /// in the scenario's order [default: all the scenario names].
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub transports: Option<Vec<pushbench_common::Transport>>,
}

/// `--tolerance`'s `--help`: every metric's default, from the catalogue.
fn tolerance_long_help() -> String {
    let defaults: Vec<String> = pushbench_report::result::Metric::ALL
        .iter()
        .map(|m| format!("{m} {}", m.default_tolerance_pct()))
        .collect();
    format!(
        "Allowed rise of a metric, in percent of the baseline: METRIC=PERCENT (`inf` turns its gate \
         off); repeatable. Defaults (results/README.md says why): {}.",
        defaults.join(", ")
    )
}

/// `--network`'s `--help`: the presets described from their own figures.
fn network_long_help() -> String {
    format!(
        "Network between the subscribers and the server, replacing the scenario's `[network]`: a \
         preset, emulated per packet between two network namespaces of the run's own (needs root; \
         `loopback`, the default when the scenario has no `[network]`, needs nothing). Presets: {}.",
        crate::network::presets_help()
    )
}

fn http_version(text: &str) -> Result<HttpVersion, String> {
    match text {
        "1.1" => Ok(HttpVersion::Http1),
        "2" => Ok(HttpVersion::Http2),
        other => Err(format!("{other:?}: 1.1 or 2")),
    }
}

impl RunArgs {
    /// The scenario's `[client]` with this command line's overrides, checked again.
    fn client(&self, scenario: ClientOptions) -> Result<ClientOptions, ScenarioError> {
        let http = self.http.unwrap_or(scenario.http);
        ClientOptions {
            tls: scenario.tls || self.tls || http == HttpVersion::Http2,
            http,
            subscribers_per_connection: self
                .subscribers_per_connection
                .unwrap_or(scenario.subscribers_per_connection),
            tls_resumption: scenario.tls_resumption,
        }
        .validated()
    }
}

fn network_preset(name: &str) -> Result<NetworkSpec, String> {
    NetworkSpec::resolve(Some(name), Overrides::default())
}

/// Parses the command line, runs, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Check {
            scenarios,
            profiles,
            result: None,
        } => check(&scenarios, &profiles),
        Command::Check {
            scenarios,
            result: Some(result),
            ..
        } => check_result(&scenarios, &result),
        Command::Run(args) => run_command(args),
        Command::Report {
            result,
            format: Some(ExportFormat::Openmetrics),
            ..
        } => read_result(&result).map(|r| print!("{}", report::openmetrics::write(&r))),
        Command::Report { result, out, .. } => {
            rerender(&result, out).map_err(|e| (EXIT_RUNTIME, e))
        }
        Command::Compare(args) => compare_command(&args),
        Command::Merge { results, output } => merge_command(&results, &output),
        Command::Worker => crate::fleet::worker::main().map_err(|e| (EXIT_RUNTIME, e)),
        Command::Watchdog => {
            crate::util::serve_watchdog();
            Ok(())
        }
        Command::Capacity(args) => capacity::command(args),
        Command::Matrix(args) => matrix_command(args),
        Command::Demo(args) => demo::command(args),
    };
    match outcome {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err((code, error)) => {
            eprintln!("pushbench: error: {error:#}");
            ExitCode::from(code)
        }
    }
}

type Outcome = Result<(), (u8, anyhow::Error)>;

fn check(paths: &[PathBuf], profiles: &[PathBuf]) -> Outcome {
    for path in paths {
        let scenario = Scenario::load(path).map_err(|e| (EXIT_USAGE, e.into()))?;
        println!(
            "{}: ok ({} subscribers, {} transports, {} events)",
            path.display(),
            scenario.subscribers,
            scenario.transports.len(),
            scenario.events_to_publish()
        );
        if let Some(target) = &scenario.target {
            println!("  [target]: {}", describe_profile(target));
        }
    }
    for path in profiles {
        let profile = Profile::load(path).map_err(|e| (EXIT_USAGE, e.into()))?;
        println!("{}: ok ({})", path.display(), describe_profile(&profile));
    }
    Ok(())
}

/// What `check` says of a valid profile: its name, transports and server.
fn describe_profile(profile: &Profile) -> String {
    let transports: Vec<&str> = profile
        .routes
        .iter()
        .map(|r| r.transport.as_str())
        .collect();
    let server = match &profile.server {
        ServerSpec::Start(_) => "started per transport".to_owned(),
        ServerSpec::Attach(url) => format!("attached at {url}"),
    };
    format!(
        "profile {}, transports {}, {server}",
        profile.name,
        transports.join(", ")
    )
}

fn check_result(scenarios: &[PathBuf], path: &std::path::Path) -> Outcome {
    let [scenario] = scenarios else {
        return Err((
            EXIT_USAGE,
            anyhow::anyhow!("--result takes exactly one scenario"),
        ));
    };
    let scenario = Scenario::load(scenario).map_err(|e| (EXIT_USAGE, e.into()))?;
    let mut result = read_result(path)?;
    merge::same_workload(
        &serde_json::to_value(&scenario).expect("scenario serializes"),
        &result.scenario,
    )
    .map_err(|difference| {
        (
            EXIT_USAGE,
            anyhow::anyhow!(
                "{} is not a run of this scenario: {difference}",
                path.display()
            ),
        )
    })?;
    thresholds::apply(&scenario.thresholds, &mut result);
    write_outcomes(
        &result,
        report::table::Format::Text,
        std::io::stdout().lock(),
    )
    .context("cannot write the outcomes")
    .map_err(|e| (EXIT_RUNTIME, e))?;
    threshold_exit(&result)
}

/// [`EXIT_THRESHOLD`] when a threshold outcome in `result` failed.
fn threshold_exit(result: &RunResult) -> Outcome {
    let failed = result
        .transports
        .iter()
        .flat_map(|t| &t.thresholds)
        .filter(|o| !o.passed)
        .count();
    match failed {
        0 => Ok(()),
        n => Err((EXIT_THRESHOLD, anyhow::anyhow!("{n} threshold(s) failed"))),
    }
}

fn run_command(args: RunArgs) -> Outcome {
    let mut scenario = Scenario::load(&args.scenario).map_err(|e| (EXIT_USAGE, e.into()))?;
    if let Some(network) = args.network.clone() {
        scenario.network = network;
    }
    scenario.client = args
        .client(scenario.client)
        .map_err(|e| (EXIT_USAGE, e.into()))?;
    if let Some(only) = &args.transports {
        if let Some(missing) = only.iter().find(|t| !scenario.transports.contains(t)) {
            return Err((
                EXIT_USAGE,
                anyhow::anyhow!(
                    "--transports: {missing} is not among the scenario's transports ({})",
                    scenario
                        .transports
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        scenario.transports.retain(|t| only.contains(t));
    }
    let scenario = Arc::new(scenario);
    if let Some(servers) = &args.peers {
        // Several servers side by side: crate::suites::peers.
        let out_dir = args
            .out
            .clone()
            .unwrap_or_else(|| default_out_dir(&scenario));
        let spawns_a_server = servers.iter().any(|s| {
            matches!(
                s,
                crate::targets::deployment::ServerName::Ours
                    | crate::targets::deployment::ServerName::Floor
            )
        });
        check_limits(&scenario, &args, spawns_a_server)?;
        let network = emulate(&scenario.network, args.workers as usize, args.emulator)?;
        return crate::suites::peers::run_peers(
            scenario,
            servers,
            args.server_bin.as_deref(),
            &out_dir,
            !args.no_progress,
            args.workers as usize,
            network,
        )
        .map(|_| ())
        .map_err(|e| (EXIT_RUNTIME, e));
    }
    let profile = match &args.target_profile {
        Some(path) => Some(Arc::new(
            Profile::load(path).map_err(|e| (EXIT_USAGE, e.into()))?,
        )),
        // The scenario's [target] unless the command line names a server.
        None if args.target.is_none() && args.peer.is_none() => scenario.target.clone(),
        None => None,
    };
    let server = match (args.target.clone(), profile) {
        (_, Some(_)) if args.cluster > 1 => {
            return Err((
                EXIT_USAGE,
                anyhow::anyhow!(
                    "--cluster starts our server's nodes; a target profile's server is one"
                ),
            ));
        }
        (_, Some(profile)) => ServerSource::Profile(profile),
        (Some(url), None) => ServerSource::Target {
            url,
            pid: args.server_pid,
            trust: target_trust(&args)?,
        },
        (None, None) => ServerSource::of(
            args.peer
                .unwrap_or(crate::targets::deployment::ServerName::Ours),
            args.server_bin.as_deref(),
        )
        .map_err(|e| (EXIT_RUNTIME, e.into()))?,
    };
    check_limits(
        &scenario,
        &args,
        matches!(server, ServerSource::Spawn(_) | ServerSource::Floor(_)),
    )?;
    let out_dir = args.out.unwrap_or_else(|| default_out_dir(&scenario));
    let network = emulate(&scenario.network, args.workers as usize, args.emulator)?;
    let runtime = || -> anyhow::Result<RunResult> {
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))?;
        // Built after `emulate`: its threads stand where this one does.
        let rt = crate::util::runtime()?;
        let mut runs = Vec::new();
        for i in 1..=args.repeat {
            let dir = if args.repeat == 1 {
                out_dir.clone()
            } else {
                eprintln!("pushbench: run {i} of {}", args.repeat);
                out_dir.join(format!("run-{i}"))
            };
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let options = RunOptions {
                server: server.clone(),
                out_dir: dir.clone(),
                progress: !args.no_progress,
                workers: args.workers as usize,
                cluster: args.cluster as usize,
                network: network.clone(),
            };
            let result = rt.block_on(run(scenario.clone(), &options))?;
            if args.repeat > 1 {
                report::write_all(&result, &dir)?;
            }
            runs.push((format!("run {i}"), result));
        }
        let mut result = if runs.len() == 1 {
            runs.pop().expect("one run").1
        } else {
            merge::merge(&runs)?
        };
        thresholds::apply(&scenario.thresholds, &mut result);
        report::write_all(&result, &out_dir)?;
        if let Some(path) = &args.junit {
            write_file(path, &junit::thresholds(&result))?;
        }
        print_summary(&result, &out_dir);
        Ok(result)
    };
    let result = runtime().map_err(|e| (EXIT_RUNTIME, e))?;
    threshold_exit(&result)
}

/// `--ca FILE` (read now, so that a missing file is a usage error) or `--insecure`.
fn target_trust(args: &RunArgs) -> Result<Option<TargetTrust>, (u8, anyhow::Error)> {
    if args.insecure {
        return Ok(Some(TargetTrust::Insecure));
    }
    args.ca
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path)
                .map(TargetTrust::Ca)
                .with_context(|| format!("--ca: cannot read {}", path.display()))
                .map_err(|e| (EXIT_USAGE, e))
        })
        .transpose()
}

/// Sets up the emulated network `spec` asks for (none on loopback) with a subscriber-side address per
/// worker on the engine `emulator` chooses, and moves this thread to its server side: call it before
/// building the runtime.
fn emulate(
    spec: &NetworkSpec,
    workers: usize,
    emulator: EmulatorChoice,
) -> Result<Option<Arc<Emulated>>, (u8, anyhow::Error)> {
    use crate::network::emulator::EmulatorError;
    use crate::network::placement::PlacementError;
    if spec.is_loopback() {
        return Ok(None);
    }
    let network = Emulated::start(spec, workers.max(1), emulator).map_err(|e| {
        let code = match &e {
            PlacementError::Link(
                EmulatorError::Namespace(crate::network::namespace::NamespaceError::NotPermitted(
                    _,
                ))
                | EmulatorError::NoNetem(_),
            ) => EXIT_USAGE,
            _ => EXIT_RUNTIME,
        };
        (
            code,
            anyhow::Error::new(e).context(format!("cannot emulate network {}", spec.profile)),
        )
    })?;
    let measured = network.result();
    eprintln!(
        "pushbench: network {} ({} engine): asked RTT {} ms, measured {:.1} ms",
        spec.profile,
        measured.engine.as_str(),
        measured.asked.rtt_ms,
        measured.measured_rtt_ms
    );
    Ok(Some(Arc::new(network)))
}

/// Raises the open-file limit (a spawned server inherits it) and refuses a run that would cross a limit
/// of this machine ([`crate::machine::limits`]).
fn check_limits(scenario: &Scenario, args: &RunArgs, spawns_ours: bool) -> Outcome {
    let plan = crate::machine::limits::Plan::new(
        scenario.subscribers,
        args.workers,
        args.cluster,
        spawns_ours,
    );
    crate::machine::limits::prepare(plan)
        .map(|_| ())
        .map_err(|e| (EXIT_USAGE, anyhow::anyhow!("{e}")))
}

fn write_file(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn read_result(path: &std::path::Path) -> Result<RunResult, (u8, anyhow::Error)> {
    report::json::read(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(|e| (EXIT_RUNTIME, e))
}

fn compare_command(args: &CompareArgs) -> Outcome {
    let tolerances =
        Tolerances::with_overrides(&args.tolerances).map_err(|e| (EXIT_USAGE, e.into()))?;
    let baseline = read_result(&args.baseline)?;
    let current = read_result(&args.current)?;
    let comparison = compare::compare(
        (&args.baseline.display().to_string(), &baseline),
        (&args.current.display().to_string(), &current),
        &tolerances,
        args.gate,
    )
    .map_err(|e| (EXIT_USAGE, e.into()))?;
    compare::write(&comparison, args.format, std::io::stdout().lock())
        .context("cannot write the comparison")
        .map_err(|e| (EXIT_RUNTIME, e))?;
    let current = args.current.display().to_string();
    let reports = || -> anyhow::Result<()> {
        if let Some(path) = &args.junit {
            write_file(path, &junit::comparison(&comparison, &current))?;
        }
        // GitHub Actions shows this file on the run's summary page.
        if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|s| !s.is_empty()) {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&summary)
                .with_context(|| format!("cannot append to $GITHUB_STEP_SUMMARY ({summary:?})"))?;
            std::io::Write::write_all(
                &mut file,
                format!("### pushbench compare: {current}\n\n").as_bytes(),
            )?;
            compare::write(&comparison, compare::Format::Markdown, &mut file)?;
        }
        Ok(())
    };
    reports().map_err(|e| (EXIT_RUNTIME, e))?;
    match comparison.regressions() {
        0 => Ok(()),
        n => Err((
            EXIT_REGRESSION,
            anyhow::anyhow!("{n} metric(s) regressed past tolerance"),
        )),
    }
}

fn merge_command(paths: &[PathBuf], output: &std::path::Path) -> Outcome {
    let mut inputs = Vec::new();
    for path in paths {
        inputs.push((path.display().to_string(), read_result(path)?));
    }
    let merged = merge::merge(&inputs).map_err(|e| (EXIT_USAGE, e.into()))?;
    let write = || -> anyhow::Result<()> {
        let file = std::fs::File::create(output)
            .with_context(|| format!("cannot write {}", output.display()))?;
        report::json::write(&merged, std::io::BufWriter::new(file))
            .with_context(|| format!("cannot write {}", output.display()))
    };
    write().map_err(|e| (EXIT_RUNTIME, e))?;
    println!(
        "merged {} result(s), {} run(s), into {}",
        inputs.len(),
        merged.runs,
        output.display()
    );
    Ok(())
}

fn rerender(path: &std::path::Path, out: Option<PathBuf>) -> anyhow::Result<()> {
    let result =
        report::json::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let dir = out.unwrap_or_else(|| path.parent().map(PathBuf::from).unwrap_or_default());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    report::write_reports(&result, &dir)?;
    println!("wrote {0}/report.md and {0}/report.html", dir.display());
    Ok(())
}

fn print_summary(result: &RunResult, dir: &std::path::Path) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = std::io::Write::write_all(&mut out, b"\n");
    let _ = report::table::write_text(result, &mut out);
    println!();
    for finding in report::reading::findings(result) {
        println!("- {}", finding.replace("**", "").replace('`', ""));
    }
    for warning in &result.warnings {
        eprintln!("WARNING: {warning}");
    }
    if result.transports.iter().any(|t| !t.thresholds.is_empty()) {
        println!();
        let _ = write_outcomes(result, report::table::Format::Text, &mut out);
    }
    println!(
        "\nwrote {0}/result.json, {0}/report.md, {0}/report.html",
        dir.display()
    );
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn client_of(flags: &[&str], scenario: ClientOptions) -> Result<ClientOptions, String> {
        let line = ["pushbench", "run", "s.toml"].iter().chain(flags);
        let Command::Run(args) = Cli::try_parse_from(line)
            .map_err(|e| e.to_string())?
            .command
        else {
            unreachable!("a run command line");
        };
        args.client(scenario).map_err(|e| e.to_string())
    }

    #[test]
    fn the_client_flags_override_the_scenario_and_are_checked_again() {
        let h2 = client_of(
            &["--http", "2", "--subscribers-per-connection", "6"],
            ClientOptions::default(),
        )
        .unwrap();
        assert_eq!(
            h2,
            ClientOptions {
                tls: true,
                http: HttpVersion::Http2,
                subscribers_per_connection: 6,
                tls_resumption: true,
            },
            "--http 2 turns TLS on"
        );
        assert_eq!(
            client_of(&[], h2).unwrap(),
            h2,
            "without flags the scenario's [client] stands"
        );
        assert_eq!(
            client_of(&["--tls"], ClientOptions::default())
                .unwrap()
                .http,
            HttpVersion::Http1
        );
        let refused = client_of(
            &["--subscribers-per-connection", "6"],
            ClientOptions::default(),
        )
        .unwrap_err();
        assert!(refused.contains("more than 1 needs http"), "{refused}");
        let refused = client_of(&["--http", "3"], ClientOptions::default()).unwrap_err();
        assert!(refused.contains("1.1 or 2"), "{refused}");
    }
}
