//! The command line: `pushbench run`, `pushbench check`, `pushbench report`, and their exit codes.
//!
//! Exit codes: [`EXIT_OK`] on success, [`EXIT_RUNTIME`] when the run itself failed (server would not start,
//! output not writable), [`EXIT_USAGE`] for a bad command line or an invalid scenario (clap uses 2 as well).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::report::{self, RunResult};
use crate::run::{RunOptions, ServerSource, default_out_dir, run};
use crate::scenario::Scenario;
use crate::server_proc::locate;

/// Success.
pub const EXIT_OK: u8 = 0;
/// The run failed.
pub const EXIT_RUNTIME: u8 = 1;
/// Bad command line or scenario.
pub const EXIT_USAGE: u8 = 2;

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
    /// Validate scenario files without running them.
    Check {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Render report.md and report.html again from a result.json.
    Report {
        /// A result.json written by `pushbench run`.
        result: PathBuf,
        /// Directory for the reports [default: the result's directory].
        #[arg(long)]
        out: Option<PathBuf>,
    },
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
    /// Use an already running server (http://host:port) instead of spawning one.
    #[arg(long, conflicts_with = "server_bin")]
    pub target: Option<String>,
    /// PID of the --target server, to sample its memory and CPU (same machine only).
    #[arg(long, requires = "target")]
    pub server_pid: Option<u32>,
    /// Do not print the live progress line.
    #[arg(long, default_value_t = false)]
    pub no_progress: bool,
}

/// Parses the command line, runs, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Check { scenarios } => check(&scenarios),
        Command::Run(args) => run_command(args),
        Command::Report { result, out } => rerender(&result, out).map_err(|e| (EXIT_RUNTIME, e)),
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

fn check(paths: &[PathBuf]) -> Outcome {
    for path in paths {
        let scenario = Scenario::load(path).map_err(|e| (EXIT_USAGE, e.into()))?;
        println!(
            "{}: ok ({} subscribers, {} transports, {} events)",
            path.display(),
            scenario.subscribers,
            scenario.transports.len(),
            scenario.events_to_publish()
        );
    }
    Ok(())
}

fn run_command(args: RunArgs) -> Outcome {
    let scenario = Arc::new(Scenario::load(&args.scenario).map_err(|e| (EXIT_USAGE, e.into()))?);
    let server = match args.target {
        Some(url) => ServerSource::Target {
            url,
            pid: args.server_pid,
        },
        None => ServerSource::Spawn(
            locate(args.server_bin.as_deref()).map_err(|e| (EXIT_RUNTIME, e.into()))?,
        ),
    };
    let out_dir = args.out.unwrap_or_else(|| default_out_dir(&scenario));
    let want = scenario.subscribers + 1024;
    let files = raise_open_file_limit(want);
    if want > files {
        eprintln!(
            "pushbench: warning: {} subscribers need about as many open files, but this process may open only {files}; the excess will fail to connect",
            scenario.subscribers
        );
    }
    let runtime = || -> anyhow::Result<()> {
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))?;
        let options = RunOptions {
            server,
            out_dir: out_dir.clone(),
            progress: !args.no_progress,
        };
        let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
        let result = rt.block_on(run(scenario.clone(), &options))?;
        write_all(&result, &out_dir)?;
        print_summary(&result, &out_dir);
        Ok(())
    };
    runtime().map_err(|e| (EXIT_RUNTIME, e))
}

/// Raises this process's limit on open files so that `want` fit (each subscriber holds a socket, and a
/// spawned server, which inherits the limit, holds the other end): the soft limit goes up to the hard
/// limit, and past it when `want` needs more and we may (as root). Returns the limit in force.
fn raise_open_file_limit(want: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return u64::MAX;
    };
    if want > hard && setrlimit(Resource::RLIMIT_NOFILE, want, want).is_ok() {
        return want;
    }
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

fn rerender(path: &std::path::Path, out: Option<PathBuf>) -> anyhow::Result<()> {
    let result =
        report::json::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let dir = out.unwrap_or_else(|| path.parent().map(PathBuf::from).unwrap_or_default());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_reports(&result, &dir)?;
    println!("wrote {0}/report.md and {0}/report.html", dir.display());
    Ok(())
}

/// Writes `result.json`, `report.md` and `report.html` into `dir`.
pub fn write_all(result: &RunResult, dir: &std::path::Path) -> anyhow::Result<()> {
    let path = dir.join("result.json");
    let file =
        std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    report::json::write(result, std::io::BufWriter::new(file))
        .with_context(|| format!("cannot write {}", path.display()))?;
    write_reports(result, dir)
}

fn write_reports(result: &RunResult, dir: &std::path::Path) -> anyhow::Result<()> {
    let md = dir.join("report.md");
    let file =
        std::fs::File::create(&md).with_context(|| format!("cannot write {}", md.display()))?;
    report::md::write(result, std::io::BufWriter::new(file))
        .with_context(|| format!("cannot write {}", md.display()))?;
    let html = dir.join("report.html");
    let file =
        std::fs::File::create(&html).with_context(|| format!("cannot write {}", html.display()))?;
    report::html::write(result, std::io::BufWriter::new(file))
        .with_context(|| format!("cannot write {}", html.display()))?;
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
    println!(
        "\nwrote {0}/result.json, {0}/report.md, {0}/report.html",
        dir.display()
    );
}
