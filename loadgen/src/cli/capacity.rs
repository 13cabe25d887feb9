//! `pushbench capacity`: its options, and the command from the command line to the written outputs.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{EXIT_RUNTIME, EXIT_USAGE};
use crate::run::{RunOptions, ServerSource};
use crate::scenario::Scenario;
use crate::suites::capacity::{
    Capacity, DEFAULT_MAX_RATE, DEFAULT_MAX_SUBSCRIBERS, Params, Spec, Vary, validate,
};

/// Options of `pushbench capacity`.
#[derive(Debug, clap::Args)]
pub struct CapacityArgs {
    /// Scenario file (TOML); each step runs it with only the varied value changed, one transport at a time.
    pub scenario: PathBuf,
    /// A step passes only with p99 delivery latency under this many milliseconds (and nothing lost,
    /// duplicated, out of order or unexpected, every subscriber connected, no failed publish).
    #[arg(long, value_name = "MS")]
    pub p99_ms: f64,
    /// Transports to search, comma-separated (poll, longpoll, stream, sse, ws) [default: the scenario's].
    #[arg(long, value_delimiter = ',')]
    pub transports: Option<Vec<pushbench_common::Transport>>,
    /// What to search: the largest number of subscribers, or the highest publish rate (events/s over all
    /// topics) at the scenario's subscribers.
    #[arg(long, value_enum, default_value_t = Vary::Subscribers)]
    pub vary: Vary,
    /// First value tried [default: the scenario's own subscribers or publish_rate].
    #[arg(long)]
    pub start: Option<f64>,
    /// Multiply the value by this while steps pass.
    #[arg(long, default_value_t = 2.0)]
    pub factor: f64,
    /// Bisection steps between the last passing and the first failing value.
    #[arg(long, default_value_t = 3)]
    pub refine: u32,
    /// Largest value tried [default: 19000 subscribers — a process may hold at most 20,000 file
    /// descriptors on this machine (hard limit), and the server holds one socket per subscriber; go past
    /// it with --workers and --cluster; for --vary rate, 100000 events/s].
    #[arg(long)]
    pub max: Option<f64>,
    /// Most steps per transport, growth and bisection together.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_steps: u32,
    /// Output directory: OUT/capacity.json, .md, .html and OUT/<transport>/step-<n>-<value>/ with each
    /// step's result.json and reports [default: results/<scenario>-capacity-<UTC time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Server binary to spawn, one fresh process per step [default: pushbench-server next to this
    /// executable, or in its parent directory].
    #[arg(long, env = "PUSHBENCH_SERVER_BIN")]
    pub server_bin: Option<PathBuf>,
    /// Search the capacity of a peer push server instead of ours (started per step from
    /// scenarios/peers/); transports it does not drive are reported as not offered.
    #[arg(long, value_enum, conflicts_with = "server_bin")]
    pub peer: Option<crate::targets::peer::PeerKind>,
    /// Load-generator processes holding each step's subscribers, as `run --workers` (past ~19,700
    /// subscribers a single process runs out of open files).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// Server nodes on a Redis bus for each step, as `run --cluster` (spawned servers only).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=32), conflicts_with = "peer")]
    pub cluster: u32,
    /// Do not print the live progress line of each step.
    #[arg(long, default_value_t = false)]
    pub no_progress: bool,
}

/// Runs `pushbench capacity`; errors carry their exit code ([`EXIT_USAGE`] for the command line or the
/// scenario, [`EXIT_RUNTIME`] for the run).
pub(super) fn command(args: CapacityArgs) -> Result<(), (u8, anyhow::Error)> {
    let usage = |e: anyhow::Error| (EXIT_USAGE, e);
    let text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("cannot read scenario {}", args.scenario.display()))
        .map_err(usage)?;
    let shown = args.scenario.display().to_string();
    let mut scenario = Scenario::parse(&text, &shown).map_err(|e| usage(e.into()))?;
    if let Some(transports) = args.transports {
        let mut chosen = Vec::new();
        for t in transports {
            if !chosen.contains(&t) {
                chosen.push(t);
            }
        }
        scenario.transports = chosen;
    }
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{shown} is not a TOML table"))
        .map_err(usage)?;
    let max = args.max.unwrap_or(match args.vary {
        Vary::Subscribers => DEFAULT_MAX_SUBSCRIBERS,
        Vary::Rate => DEFAULT_MAX_RATE,
    });
    let start = args.start.unwrap_or_else(|| args.vary.of(&scenario));
    let params = Params::new(
        start,
        args.factor,
        args.refine,
        max,
        args.max_steps,
        args.vary == Vary::Subscribers,
    )
    .map_err(|e| usage(e.into()))?;
    let largest = match args.vary {
        Vary::Subscribers => params.max as u64,
        Vary::Rate => scenario.subscribers,
    };
    // The largest step must fit this machine's limits (open files, ports, memory), like any run.
    let plan =
        crate::machine::limits::Plan::new(largest, args.workers, args.cluster, args.peer.is_none());
    let open_files = crate::machine::limits::prepare(plan)
        .map_err(|e| usage(anyhow::anyhow!("--max {}: {e}", params.max)))?;
    let spec = Spec {
        table,
        scenario,
        vary: args.vary,
        p99_ms: args.p99_ms,
        params,
        open_files,
    };
    validate(&spec).map_err(|e| usage(e.into()))?;
    let server = match args.peer {
        Some(kind) => ServerSource::Peer(kind),
        None => ServerSource::Spawn(
            crate::targets::server_proc::locate(args.server_bin.as_deref())
                .map_err(|e| (EXIT_RUNTIME, e.into()))?,
        ),
    };
    let out_dir = args.out.unwrap_or_else(|| {
        PathBuf::from("results").join(format!(
            "{}-capacity-{}",
            spec.scenario.name,
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    });
    let options = RunOptions {
        server,
        out_dir: out_dir.clone(),
        progress: !args.no_progress,
        workers: args.workers as usize,
        cluster: args.cluster as usize,
        network: None,
    };
    let runtime = || -> anyhow::Result<Capacity> {
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))?;
        let rt = crate::util::runtime()?;
        Ok(rt.block_on(crate::suites::capacity::run(&spec, &options))?)
    };
    let capacity = runtime().map_err(|e| (EXIT_RUNTIME, e))?;
    println!();
    for t in &capacity.transports {
        println!("- {}", t.summary);
    }
    println!(
        "\nwrote {0}/capacity.json, {0}/capacity.md, {0}/capacity.html and one directory per step",
        out_dir.display()
    );
    Ok(())
}
