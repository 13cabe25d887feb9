//! One run of a scenario: for each transport, a fresh server, goose-driven subscribers, the open-loop
//! publisher, and the accounting that turns it all into a [`TransportResult`].
//!
//! Timeline of one transport:
//! 1. start the server (or use `--target`) and sample its RSS: the baseline;
//! 2. goose launches the subscribers at `launch_rate` (one goose user each, a single transaction that is
//!    the subscriber's whole life); wait until all are subscribed, sample RSS and fds again;
//! 3. publish `warmup_s + duration_s` worth of events on the open-loop schedule; only events intended
//!    after the warm-up are timed, all are accounted for; `[faults]` restart or kill servers and cut the
//!    link meanwhile, on the same clock ([`crate::targets::faults`]); from the end of the warm-up the
//!    servers' RSS and open files are sampled every few seconds, for a long run's drift;
//! 4. keep reading for `drain_s`, then cancel the run's token: every subscriber ends itself, goose
//!    returns, the server's `/stats` is read and the server is stopped.
//!
//! goose runs with one shared client without cookies (no client per user), `--iterations 1` (each user's
//! single transaction is its life; with iterations goose never resets its metrics after the launch, so
//! connection timings are kept, and it refuses an explicit `NoResetMetrics`), and no telnet/web controller.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use pushbench_common::{ProcSample, Transport};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clients::publisher::Published;
use crate::clients::publisher::Schedule;
use crate::conn::WireCounters;
use crate::fleet::{Fleet, FleetSpec, LiveCounts, Tally};
use crate::machine::sockmem::KernelSockets;
use crate::measure::{
    Completeness, Histograms, Percentiles, PublishedLog, new_histogram, spawn_lag_probe, unix_ns,
};
use crate::network::placement::Emulated;
use crate::scenario::Scenario;
use crate::targets::deployment::Deployment;
use crate::util::{fds_of, sample_processes, sum_samples};
use pushbench_report::result::{
    BusResult, DRIFT_EVERY_S, DriftSample, FaultEvent, Growth, Model, NodeResult, RunResult,
    SCHEMA_VERSION, SerializedHistograms, TransportResult, derive, derive_drift, derive_packets,
    encode_histogram,
};

pub use crate::error::RunError;
pub use crate::targets::deployment::{ServerSource, TargetTrust};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The server.
    pub server: ServerSource,
    /// Output directory (server logs go there too).
    pub out_dir: PathBuf,
    /// Print a live progress line on stderr.
    pub progress: bool,
    /// Load-generator worker processes holding the subscribers (`fleet::worker`), started fresh for every
    /// transport so that their memory per subscriber does not depend on the transports before; 0 = this
    /// process (for tests that need the subscribers in-process; its memory per subscriber then does).
    pub workers: usize,
    /// Server nodes on a Redis bus (spawned servers only): 1 = a single server
    /// ([`crate::targets::deployment`]).
    pub cluster: usize,
    /// The emulated network, entered by this process before its runtime was built; `None` on loopback.
    pub network: Option<Arc<Emulated>>,
}

/// Share of the available CPU above which a run counts as saturated.
const SATURATION_SHARE: f64 = 0.9;
/// Scheduling lag (p99 oversleep of a 5 ms timer) above which the load generator counts as saturated.
const SATURATION_LAG_US: u64 = 10_000;

/// Runs every transport of `scenario` and returns the result (not yet written).
///
/// SIGINT or SIGTERM ends the run with [`RunError::Interrupted`]: the run's future is dropped, and with it
/// every process it started (servers, Redis, peers, workers: all are killed on drop), so an interrupted
/// run leaves nothing behind. (SIGKILL cannot be caught: workers then exit when their stdin closes, and a
/// spawned server is left to the caller.)
pub async fn run(scenario: Arc<Scenario>, options: &RunOptions) -> Result<RunResult, RunError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| RunError::Goose(format!("cannot watch SIGTERM: {e}")))?;
    // Once goose has started an attack its own handler takes SIGINT (it raises goose's kill switch and
    // ends the attack early, which would otherwise look like a short run): watch that switch too.
    let goose_sigint = async {
        while !crate::fleet::sigint_seen() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        result = run_all(scenario, options) => result,
        _ = tokio::signal::ctrl_c() => Err(RunError::Interrupted("SIGINT")),
        () = goose_sigint => Err(RunError::Interrupted("SIGINT")),
        _ = terminate.recv() => Err(RunError::Interrupted("SIGTERM")),
    }
}

async fn run_all(scenario: Arc<Scenario>, options: &RunOptions) -> Result<RunResult, RunError> {
    let started_at = chrono::Utc::now();
    crate::targets::faults::check(
        &scenario.faults,
        matches!(options.server, ServerSource::Spawn(_)),
        options.cluster,
        options.network.as_deref(),
    )?;
    let mut transports = Vec::new();
    let mut warnings = Vec::new();
    for &transport in &scenario.transports {
        // A peer runs only the transports its profile drives; the side-by-side report names the others.
        if let Some(why) = options.server.not_driven(transport, &scenario.client) {
            eprintln!("pushbench: {transport}: {why}");
            continue;
        }
        let result = run_transport(&scenario, transport, options).await?;
        warnings.extend(warnings_for(&result));
        transports.push(result);
    }
    let network = options.network.as_ref().map(|n| Box::new(n.result()));
    warnings.extend(network.as_ref().and_then(|n| n.rtt_warning()));
    Ok(RunResult {
        schema_version: SCHEMA_VERSION,
        tool: concat!("pushbench ", env!("CARGO_PKG_VERSION")).to_owned(),
        scenario: serde_json::to_value(&*scenario).expect("scenario serializes"),
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        cpus: cpus(),
        server: options.server.describe(options.cluster),
        runs: 1,
        transports,
        warnings,
        network,
    })
}

/// Where spawned servers listen: loopback, or the server side's address of the emulated network.
fn listen_host(options: &RunOptions) -> std::net::IpAddr {
    options
        .network
        .as_ref()
        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), |n| {
            n.server_host()
        })
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The loud lines printed and stored when a transport's figures cannot be trusted as they are.
fn warnings_for(r: &TransportResult) -> Vec<String> {
    let mut w = Vec::new();
    if r.loadgen_saturated {
        // Name the culprit honestly: a nearly idle load generator on a full machine is not the bottleneck.
        let who = if r.loadgen_cpu_percent >= 50.0 {
            "load generator"
        } else {
            "machine"
        };
        w.push(format!(
            "{}: {} SATURATED ({}): these figures describe the {who}, not the transport",
            r.transport,
            who.to_uppercase(),
            r.loadgen_saturation_reasons.join("; ")
        ));
    }
    if let Some(noise) = &r.noise {
        w.push(format!("{}: {noise}", r.transport));
    }
    if r.lost + r.duplicates + r.out_of_order + r.unexpected > 0 {
        w.push(format!(
            "{}: delivery not exact: {} lost ({} of them announced by the {} gap notices, {} silently), {} duplicates, {} out of order, {} unexpected",
            r.transport,
            r.lost,
            r.lost_announced,
            r.gaps,
            r.lost_silently(),
            r.duplicates,
            r.out_of_order,
            r.unexpected
        ));
    }
    if r.subscribers_connected < r.subscribers {
        w.push(format!(
            "{}: only {} of {} subscribers got a subscription",
            r.transport, r.subscribers_connected, r.subscribers
        ));
    }
    if let Some(live) = r.subscribers_live_at_first_publish
        && live < r.subscribers_connected
    {
        w.push(format!(
            "{}: only {live} of {} subscribers were live when publishing began (the launch deadline passed first): the others are owed only what was published after they subscribed",
            r.transport, r.subscribers_connected
        ));
    }
    if r.publish_failures > 0 {
        w.push(format!(
            "{}: {} publishes failed",
            r.transport, r.publish_failures
        ));
    }
    w
}

/// CPU and memory of a process at one moment, with the wall-clock instant.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    proc: Option<ProcSample>,
}

impl Sample {
    fn of(proc: Option<ProcSample>) -> Self {
        Self {
            at: Instant::now(),
            proc,
        }
    }

    /// CPU time between `self` and `later`, and the wall time.
    fn cpu_until(&self, later: &Self) -> Option<(Duration, Duration)> {
        Some((
            later.proc?.cpu.checked_sub(self.proc?.cpu)?,
            later.at - self.at,
        ))
    }
}

async fn run_transport(
    scenario: &Arc<Scenario>,
    transport: Transport,
    options: &RunOptions,
) -> Result<TransportResult, RunError> {
    let link_before = options.network.as_ref().map(|n| n.result().link);
    let deployment = Deployment::start(
        &options.server,
        scenario,
        transport,
        options.cluster,
        &options.out_dir,
        listen_host(options),
    )
    .await?;
    let result = measure(scenario, transport, &deployment, options).await;
    deployment.stop().await;
    let mut result = result?;
    if let (Some(network), Some(before)) = (&options.network, link_before) {
        result.link = Some(network.result().link.since(&before));
        derive_packets(&mut result);
    }
    Ok(result)
}

/// Measures one transport against `servers`, phase by phase (see the module doc): [`launch`],
/// [`publish`], [`drain`], [`collect`], then the accounting ([`account`]).
async fn measure(
    scenario: &Arc<Scenario>,
    transport: Transport,
    servers: &Deployment,
    options: &RunOptions,
) -> Result<TransportResult, RunError> {
    let mut launched = launch(scenario, transport, servers, options).await?;
    let publishing = publish(
        scenario,
        transport,
        servers,
        options.network.as_deref(),
        &mut launched,
    )
    .await?;
    let window = drain(scenario, servers, options, &launched, publishing).await;
    let Launched {
        fleet,
        before,
        connected,
        live_at_first_publish,
        idle,
        peak_rss,
        ..
    } = launched;
    let collected = collect(fleet, servers, &window.published).await?;
    let run = Measured {
        before,
        connected,
        live_at_first_publish,
        idle,
        server_rss_peak: Some(peak_rss.load(Ordering::Relaxed)).filter(|&p| p > 0),
        window,
        collected,
    };
    Ok(account(scenario, transport, servers, options, run))
}

/// Server, kernel and load-generator memory just before the subscribers are launched: the baseline.
struct Baseline {
    /// Each node's sample.
    server: Vec<Option<ProcSample>>,
    kernel: Option<KernelSockets>,
    loadgen: Option<ProcSample>,
}

/// The same once every subscriber is connected, with the file descriptors they hold.
struct Connected {
    /// Each node's sample.
    server: Vec<Option<ProcSample>>,
    kernel: Option<KernelSockets>,
    /// Each node's open files.
    node_fds: Vec<Option<u64>>,
    /// Summed over the nodes (`None` when one cannot be read).
    server_fds: Option<u64>,
    loadgen: Option<ProcSample>,
    loadgen_fds: u64,
}

/// What phase 2 leaves: the fleet with its subscribers launched, and what the later phases share.
struct Launched {
    fleet: Fleet,
    /// This process and its workers, for CPU samples.
    loadgen_pids: Vec<u32>,
    /// The progress line (and the server's peak RSS), stopped when draining ends.
    progress: tokio::task::JoinHandle<()>,
    /// Events acknowledged so far, for the progress line.
    published_live: Arc<AtomicU64>,
    /// The server's peak RSS, kept by the progress task.
    peak_rss: Arc<AtomicU64>,
    /// Subscribers live when publishing began.
    live_at_first_publish: u64,
    /// What the subscribers cost with nothing published (`idle_s`).
    idle: Option<IdleCost>,
    before: Baseline,
    connected: Connected,
}

/// Phase 2: starts the fleet and waits until all subscribers are subscribed (or the launch deadline
/// passed, or a part of the fleet gave up), then samples the connected state.
async fn launch(
    scenario: &Arc<Scenario>,
    transport: Transport,
    servers: &Deployment,
    options: &RunOptions,
) -> Result<Launched, RunError> {
    let n = scenario.subscribers;
    let spec = FleetSpec {
        scenario: scenario.clone(),
        transport,
        nodes: servers.addrs(),
        dialect: servers.dialect(),
        profiled: servers.profiled_route(transport),
        tls: servers.tls_trust(),
        subscriber_side: options.network.as_ref().map(|n| n.subscriber_side()),
    };
    let server_before = servers.node_samples();
    let kernel_before = KernelSockets::read();
    let (fleet, loadgen_before) = Fleet::start(&spec, options.workers, &options.out_dir).await?;
    let loadgen_pids = fleet.pids();

    let published_live = Arc::new(AtomicU64::new(0));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let progress = spawn_progress(
        ProgressSource {
            transport,
            subscribers: n,
            live: fleet.live_counts(),
            published: published_live.clone(),
            server_pids: servers.pids(),
            peak_rss: peak_rss.clone(),
        },
        options.progress,
    );

    let launch_deadline = Instant::now()
        + Duration::from_secs_f64(n as f64 / scenario.launch_rate)
        + Duration::from_secs(30);
    while fleet.subscribed() < n
        && Instant::now() < launch_deadline
        && !fleet.ended()
        && fleet.mismatch().is_none()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(mismatch) = fleet.mismatch() {
        progress.abort();
        return Err(RunError::ProfileMismatch(mismatch));
    }
    if fleet.ended() {
        // A part of the fleet ended before every subscriber was launched: it failed; say why.
        progress.abort();
        return Err(fleet.finish(&[]).await.err().unwrap_or_else(|| {
            RunError::Goose("goose ended before the subscribers were launched".into())
        }));
    }
    // A peer cannot tell a subscriber its cursor: wait until its subscriptions are live.
    let subscribe_note = servers
        .wait_subscribed(transport, &per_topic(scenario), Duration::from_millis(500))
        .await;
    if let Some(note) = &subscribe_note {
        eprintln!("pushbench: {transport}: note: {note}");
    }
    let live_at_first_publish = fleet.subscribed();
    let idle = idle_cost(scenario, &fleet, options.network.as_deref()).await;
    let server_connected = servers.node_samples();
    let kernel_connected = KernelSockets::read();
    let node_fds: Vec<Option<u64>> = servers.nodes.iter().map(|s| s.fds()).collect();
    let server_fds: Option<u64> = node_fds.iter().copied().sum();
    let loadgen_connected = sample_processes(&loadgen_pids);
    let loadgen_fds = fds_of(&loadgen_pids);
    Ok(Launched {
        fleet,
        loadgen_pids,
        progress,
        published_live,
        peak_rss,
        live_at_first_publish,
        idle,
        before: Baseline {
            server: server_before,
            kernel: kernel_before,
            loadgen: loadgen_before,
        },
        connected: Connected {
            server: server_connected,
            kernel: kernel_connected,
            node_fds,
            server_fds,
            loadgen: loadgen_connected,
            loadgen_fds,
        },
    })
}

/// Per subscriber and hour, with nothing published: bytes at the socket, and packets over the emulated
/// link (none on loopback).
#[derive(Debug, Clone, Copy)]
struct IdleCost {
    bytes_per_hour: f64,
    packets_per_hour: Option<f64>,
}

/// Holds the subscribers connected for `idle_s` with nothing published and counts what crosses their
/// sockets (and the emulated link) meanwhile; `None` without an idle window. Workers report their
/// counts every [`crate::fleet::Fleet::live_staleness`]: the window opens two reports after the last
/// subscription (whose bytes then count before it), and each end is read as last reported, so the
/// window's length is off by at most one report interval (250 ms), negligible over a minute or more.
async fn idle_cost(
    scenario: &Scenario,
    fleet: &Fleet,
    network: Option<&Emulated>,
) -> Option<IdleCost> {
    if scenario.idle.is_zero() {
        return None;
    }
    let live = fleet.live_counts();
    let settle = fleet.live_staleness() * 2;
    tokio::time::sleep(settle).await;
    let (bytes_before, link_before) = (live().bytes, network.map(|n| n.result().link));
    tokio::time::sleep(scenario.idle).await;
    let now = live();
    let subscriber_hours = now.subscribed.max(1) as f64 * scenario.idle.as_secs_f64() / 3600.0;
    Some(IdleCost {
        bytes_per_hour: now.bytes.saturating_sub(bytes_before) as f64 / subscriber_hours,
        packets_per_hour: network
            .zip(link_before)
            .map(|(n, before)| n.result().link.since(&before).packets() as f64 / subscriber_hours),
    })
}

/// What phase 3 leaves: the publisher's record and the samples taken as it started.
struct Publishing {
    /// When event 0 was due: the measured window runs from here to the end of the drain.
    start: Instant,
    publisher_wire: Arc<WireCounters>,
    published: Published,
    /// What `[faults]` injected while publishing.
    faults: Vec<FaultEvent>,
    /// The servers' state sampled from the end of the warm-up.
    drift: Vec<DriftSample>,
    machine_start: Option<MachineCpu>,
    server_cpu_start: (Instant, Vec<Option<ProcSample>>),
    bus_cpu_start: Sample,
    self_cpu_start: Sample,
    /// Stops the lag probe when draining ends.
    stop_probe: CancellationToken,
    lag_probe: tokio::task::JoinHandle<Histogram<u64>>,
}

/// Phase 3: publishes on the open-loop schedule, then tells the fleet the last event is out.
async fn publish(
    scenario: &Scenario,
    transport: Transport,
    servers: &Deployment,
    network: Option<&Emulated>,
    launched: &mut Launched,
) -> Result<Publishing, RunError> {
    let start = Instant::now() + Duration::from_millis(50);
    let start_unix_ns = unix_ns() + 50_000_000;
    let schedule = Arc::new(Schedule {
        rate: scenario.publish_rate,
        count: scenario.events_to_publish(),
        payload_bytes: scenario.payload_bytes,
        topics: (0..scenario.topic_count())
            .map(|t| scenario.topic(t))
            .collect(),
        start,
        start_unix_ns,
    });
    launched
        .fleet
        .measure_from(start_unix_ns + scenario.warmup.as_nanos() as u64)
        .await?;
    let publisher_wire = Arc::new(WireCounters::default());
    let machine_start = MachineCpu::read();
    let server_cpu_start = (Instant::now(), servers.node_samples());
    let bus_cpu_start = Sample::of(servers.bus_sample());
    let self_cpu_start = Sample::of(sample_processes(&launched.loadgen_pids));
    let stop_probe = CancellationToken::new();
    let lag_probe = spawn_lag_probe(stop_probe.clone());
    let publishing = servers.publish(
        transport,
        schedule.clone(),
        publisher_wire.clone(),
        launched.published_live.clone(),
    );
    let faults = crate::targets::faults::inject(
        &scenario.faults,
        servers,
        network,
        (start, scenario.warmup + scenario.duration),
    );
    // The servers' state from the end of the warm-up until the last event is published: a long run's
    // drift (a soak); the drain adds the last sample.
    let published_all = CancellationToken::new();
    let publishing = async {
        let published = publishing.await;
        published_all.cancel();
        published
    };
    let drift = sample_drift(servers, start + scenario.warmup, &published_all);
    // A target profile that does not fit the server ends the run at once: nothing after it is worth
    // measuring.
    let fleet = &launched.fleet;
    let mismatch = async {
        loop {
            if let Some(mismatch) = fleet.mismatch() {
                return mismatch;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (published, faults, drift) = tokio::select! {
        all = async { tokio::join!(publishing, faults, drift) } => all,
        mismatch = mismatch => {
            launched.progress.abort();
            return Err(RunError::ProfileMismatch(mismatch));
        }
    };
    let faults = faults?;
    launched.fleet.drain().await?;
    Ok(Publishing {
        start,
        publisher_wire,
        published,
        faults,
        drift,
        machine_start,
        server_cpu_start,
        bus_cpu_start,
        self_cpu_start,
        stop_probe,
        lag_probe,
    })
}

/// CPU of every party over the measured window, its length, and what was published.
struct Window {
    publisher_wire: Arc<WireCounters>,
    published: Published,
    faults: Vec<FaultEvent>,
    /// The servers' memory and open files from the end of the warm-up to the end of the drain.
    drift: Vec<DriftSample>,
    server_cpu: [(Instant, Vec<Option<ProcSample>>); 2],
    bus_cpu: [Sample; 2],
    self_cpu: [Sample; 2],
    machine_busy: Option<f64>,
    /// From the first event's due time to the end of the drain.
    length: Duration,
    /// The lag probe's oversleeps in this process, µs.
    lag: Histogram<u64>,
}

/// Phase 4: keeps reading for the drain time, then takes the closing samples and stops the probes.
async fn drain(
    scenario: &Scenario,
    servers: &Deployment,
    options: &RunOptions,
    launched: &Launched,
    p: Publishing,
) -> Window {
    tokio::time::sleep(scenario.drain).await;
    let mut drift = p.drift;
    drift.push(drift_sample(servers, p.start + scenario.warmup));
    let server_cpu_end = (Instant::now(), servers.node_samples());
    let bus_cpu_end = Sample::of(servers.bus_sample());
    let machine_busy = p
        .machine_start
        .zip(MachineCpu::read())
        .and_then(|(a, b)| a.busy_percent_until(&b));
    let self_cpu_end = Sample::of(sample_processes(&launched.loadgen_pids));
    let length = p.start.elapsed();
    p.stop_probe.cancel();
    launched.progress.abort();
    if options.progress {
        eprintln!();
    }
    let lag = p.lag_probe.await.unwrap_or_else(|_| new_histogram());
    Window {
        publisher_wire: p.publisher_wire,
        published: p.published,
        faults: p.faults,
        drift,
        server_cpu: [p.server_cpu_start, server_cpu_end],
        bus_cpu: [p.bus_cpu_start, bus_cpu_end],
        self_cpu: [p.self_cpu_start, self_cpu_end],
        machine_busy,
        length,
        lag,
    }
}

/// The servers' RSS and open files every [`DRIFT_EVERY_S`] from `from` (the end of the warm-up) until
/// `done`; at least the first sample, even when `done` came before it.
async fn sample_drift(
    servers: &Deployment,
    from: Instant,
    done: &CancellationToken,
) -> Vec<DriftSample> {
    tokio::time::sleep_until(from).await;
    let mut samples = Vec::new();
    let mut every = tokio::time::interval(Duration::from_secs_f64(DRIFT_EVERY_S));
    // A late tick is a late sample (its time is read), not a burst of them.
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => samples.push(drift_sample(servers, from)),
            () = done.cancelled(), if !samples.is_empty() => return samples,
        }
    }
}

/// The servers' RSS and open files now, summed over the nodes (`None` when one cannot be read).
fn drift_sample(servers: &Deployment, from: Instant) -> DriftSample {
    DriftSample {
        at_s: Instant::now().saturating_duration_since(from).as_secs_f64(),
        rss_bytes: rss(servers.sample()),
        fds: servers.nodes.iter().map(|n| n.fds()).sum(),
    }
}

/// What the subscribers and the servers tell once the run is over.
struct Collected {
    tally: Tally,
    /// Each node's `/stats`.
    server_stats: Vec<Option<serde_json::Value>>,
}

/// Phase 5: stops every subscriber, accounts them against the acknowledgements, reads each node's stats.
async fn collect(
    fleet: Fleet,
    servers: &Deployment,
    published: &Published,
) -> Result<Collected, RunError> {
    let tally = fleet.finish(&published.acks).await?;
    let server_stats = servers.stats().await;
    Ok(Collected {
        tally,
        server_stats,
    })
}

/// Everything a transport run measured, for the accounting.
struct Measured {
    before: Baseline,
    connected: Connected,
    live_at_first_publish: u64,
    idle: Option<IdleCost>,
    server_rss_peak: Option<u64>,
    window: Window,
    collected: Collected,
}

fn rss(s: Option<ProcSample>) -> Option<u64> {
    s.map(|s| s.rss_bytes)
}

/// CPU time between two samples of the same processes, summed (`None` when one cannot be read).
fn cpu_between(a: &[Option<ProcSample>], b: &[Option<ProcSample>]) -> Option<Duration> {
    sum_samples(b)?.cpu.checked_sub(sum_samples(a)?.cpu)
}

/// CPU figures of the window and the saturation verdict drawn from them.
struct CpuFigures {
    server_cpu_ms: Option<f64>,
    loadgen_cpu_percent: f64,
    lag_p99_us: u64,
    saturated: bool,
    reasons: Vec<String>,
    noisy: Option<String>,
}

fn cpu_figures(w: &Window, tally: &Tally) -> CpuFigures {
    let [server_start, server_end] = &w.server_cpu;
    let server_window = server_end.0 - server_start.0;
    let server_cpu = cpu_between(&server_start.1, &server_end.1);
    let server_cpu_ms = server_cpu.map(|cpu| cpu.as_secs_f64() * 1000.0);
    let self_cpu = w.self_cpu[0].cpu_until(&w.self_cpu[1]);
    let loadgen_cpu_percent = self_cpu.map_or(0.0, |(cpu, wall)| {
        cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9) * 100.0
    });
    let server_cpu_percent =
        server_cpu.map(|cpu| cpu.as_secs_f64() / server_window.as_secs_f64().max(1e-9) * 100.0);
    let lag_p99_us = w.lag.value_at_quantile(0.99).max(tally.lag_p99_us);
    let (saturated, reasons, noisy) = saturation(
        loadgen_cpu_percent,
        server_cpu_percent,
        w.machine_busy,
        lag_p99_us,
    );
    CpuFigures {
        server_cpu_ms,
        loadgen_cpu_percent,
        lag_p99_us,
        saturated,
        reasons,
        noisy,
    }
}

/// A cluster's figures per node (none for a single server).
fn node_results(servers: &Deployment, n: u64, m: &Measured) -> Vec<NodeResult> {
    if !servers.is_cluster() {
        return Vec::new();
    }
    let (before, connected) = (&m.before.server, &m.connected.server);
    let [cpu_start, cpu_end] = &m.window.server_cpu;
    let count = servers.nodes.len() as u64;
    (0..servers.nodes.len())
        .map(|i| {
            // Subscriber `s` connects first to node `s mod count`.
            let subscribers = n / count + u64::from((i as u64) < n % count);
            let growth = rss(connected[i])
                .zip(rss(before[i]))
                .map(|(after, before)| after as f64 - before as f64);
            NodeResult {
                addr: servers.nodes[i].addr.to_string(),
                subscribers,
                rss_connected_bytes: rss(connected[i]),
                rss_per_connection_bytes: growth
                    .filter(|_| subscribers > 0)
                    .map(|g| g / subscribers as f64),
                cpu_ms: cpu_between(&cpu_start.1[i..=i], &cpu_end.1[i..=i])
                    .map(|cpu| cpu.as_secs_f64() * 1000.0),
                fds: m.connected.node_fds[i],
                stats: m.collected.server_stats[i].clone(),
            }
        })
        .collect()
}

/// Memory growth from the baseline to all connected, for the per-connection figures.
fn growth(m: &Measured) -> Growth {
    let (before, connected) = (&m.before, &m.connected);
    Growth {
        server_rss: match (
            rss(sum_samples(&before.server)),
            rss(sum_samples(&connected.server)),
        ) {
            (Some(before), Some(after)) => Some(after as f64 - before as f64),
            _ => None,
        },
        kernel_sockets: match (before.kernel, connected.kernel) {
            (Some(before), Some(after)) => Some(after.total() as f64 - before.total() as f64),
            _ => None,
        },
        loadgen_rss: match (before.loadgen, rss(connected.loadgen)) {
            (Some(before), Some(after)) => Some(after as f64 - before.rss_bytes as f64),
            _ => None,
        },
    }
}

/// Redis's figures, in a cluster.
fn bus_result(servers: &Deployment, w: &Window) -> Option<BusResult> {
    servers.bus_addr().map(|addr| BusResult {
        addr: addr.to_string(),
        rss_bytes: w.bus_cpu[1].proc.map(|p| p.rss_bytes),
        cpu_ms: w.bus_cpu[0]
            .cpu_until(&w.bus_cpu[1])
            .map(|(cpu, _)| cpu.as_secs_f64() * 1000.0),
    })
}

/// The fleet's delivery accounting, with the `n - logs` subscribers goose never started (or that never
/// handed a log back): they are owed everything too.
fn fleet_completeness(n: u64, tally: &Tally) -> Completeness {
    let mut completeness = tally.completeness;
    completeness.never_subscribed += n.saturating_sub(tally.logs);
    completeness
}

/// What the scenario's models predict, for the report to check the figures against.
fn model(scenario: &Scenario) -> Model {
    Model {
        events_per_subscriber_per_s: scenario.events_per_subscriber_per_s(),
        poll_interval_ms: scenario.poll_interval.as_secs_f64() * 1000.0,
        poll_wait_ms: scenario.poll_interval.as_secs_f64() * 500.0,
        poll_requests_per_delivery: 1.0
            / scenario.poll_interval.as_secs_f64()
            / scenario.events_per_subscriber_per_s(),
    }
}

/// The histograms as the result stores them.
fn serialized_histograms(h: &Histograms, published: &Published) -> SerializedHistograms {
    SerializedHistograms {
        latency_us: encode_histogram(&h.latency),
        latency_from_server_us: encode_histogram(&h.latency_from_server),
        connect_us: Some(encode_histogram(&h.connect)),
        tls_handshake_us: (!h.tls_handshake.is_empty()).then(|| encode_histogram(&h.tls_handshake)),
        first_byte_us: Some(encode_histogram(&h.first_byte)),
        subscribed_us: Some(encode_histogram(&h.subscribed)),
        reconnect_us: (!h.reconnect.is_empty()).then(|| encode_histogram(&h.reconnect)),
        publish_lateness_us: Some(encode_histogram(&published.lateness)),
    }
}

/// Accounting: turns what a transport run measured into its result.
fn account(
    scenario: &Scenario,
    transport: Transport,
    servers: &Deployment,
    options: &RunOptions,
    mut m: Measured,
) -> TransportResult {
    let n = scenario.subscribers;
    let node_results = node_results(servers, n, &m);
    let growth = growth(&m);
    let cpu = cpu_figures(&m.window, &m.collected.tally);
    let bus = bus_result(servers, &m.window);
    let published = &m.window.published;
    let tally = &mut m.collected.tally;
    let published_log = PublishedLog::new(
        scenario.topic_count() as usize,
        published.acks.iter().copied(),
    );
    let completeness = fleet_completeness(n, tally);
    let counters = tally.counters;
    // A failed publish matters more than a subscriber's last hiccup: show it when there is one.
    let last_error = published.last_error.clone().or(tally.last_error.clone());
    let connected = n - completeness.never_subscribed;
    let h = &mut tally.histograms;
    if !servers.stamps_events() {
        // Peers give no accept timestamp of their own: there is no "from server" latency to report.
        h.latency_from_server.reset();
    }
    let (bytes_received, bytes_sent) = tally.wire;
    let server_stats = std::mem::take(&mut m.collected.server_stats);
    let mut result = TransportResult {
        transport,
        subscribers: n,
        subscribers_connected: connected,
        subscribers_live_at_first_publish: Some(m.live_at_first_publish),
        published: published_log.total(),
        publish_failures: published.failures,
        expected: completeness.expected,
        delivered: completeness.delivered,
        lost: completeness.lost,
        lost_announced: completeness.lost_announced,
        duplicates: completeness.duplicates,
        out_of_order: completeness.out_of_order,
        unexpected: completeness.unexpected,
        gaps: counters.gaps,
        latency_us: Percentiles::of(&h.latency),
        latency_from_server_us: Percentiles::of(&h.latency_from_server),
        connect_us: Percentiles::of(&h.connect),
        tls_handshake_us: (!h.tls_handshake.is_empty()).then(|| Percentiles::of(&h.tls_handshake)),
        tls_resumed_handshakes: (!h.tls_handshake.is_empty()).then_some(counters.tls_resumed),
        first_byte_us: Percentiles::of(&h.first_byte),
        subscribed_us: Percentiles::of(&h.subscribed),
        reconnect_us: (!h.reconnect.is_empty()).then(|| Percentiles::of(&h.reconnect)),
        faults: std::mem::take(&mut m.window.faults),
        failed_connects: counters.failed_connects,
        reconnects: counters.reconnects,
        errors: counters.errors,
        heartbeats: counters.heartbeats,
        requests: counters.requests,
        empty_polls: counters.empty_polls,
        requests_cut: counters.requests_cut,
        requests_per_delivery: None,
        bytes_received,
        bytes_sent,
        bytes_per_delivery: None,
        publisher_bytes_sent: m.window.publisher_wire.totals().1,
        publisher_bytes_received: m.window.publisher_wire.totals().0,
        server_rss_before_bytes: rss(sum_samples(&m.before.server)),
        server_rss_connected_bytes: rss(sum_samples(&m.connected.server)),
        server_rss_peak_bytes: m.server_rss_peak,
        // Filled by `derive_drift`.
        server_rss_after_warmup_bytes: None,
        server_rss_end_bytes: None,
        server_fds_after_warmup: None,
        server_fds_end: None,
        server_drift_samples: None,
        server_rss_slope_percent: None,
        server_fds_slope: None,
        idle_bytes_per_hour: m.idle.map(|i| i.bytes_per_hour),
        idle_packets_per_hour: m.idle.and_then(|i| i.packets_per_hour),
        server_rss_per_connection_bytes: None,
        kernel_socket_bytes_before: m.before.kernel.map(|k| k.total()),
        kernel_socket_bytes_connected: m.connected.kernel.map(|k| k.total()),
        kernel_socket_bytes_per_connection: None,
        server_cpu_ms: cpu.server_cpu_ms,
        server_cpu_ms_per_1k_deliveries: None,
        server_fds: m.connected.server_fds,
        loadgen_cpu_percent: cpu.loadgen_cpu_percent,
        loadgen_rss_bytes: rss(m.connected.loadgen),
        loadgen_rss_per_subscriber_bytes: None,
        link: None,
        packets_per_delivery: None,
        retransmits: Some(tally.retransmits),
        loadgen_fds: m.connected.loadgen_fds,
        loadgen_workers: options.workers.max(1) as u64,
        loadgen_lag_p99_us: cpu.lag_p99_us,
        machine_cpu_busy_percent: m.window.machine_busy,
        loadgen_saturated: cpu.saturated,
        loadgen_saturation_reasons: cpu.reasons,
        noise: cpu.noisy,
        publish_lateness_us: Percentiles::of(&published.lateness),
        window_s: m.window.length.as_secs_f64(),
        model: model(scenario),
        histograms: serialized_histograms(h, published),
        goose: std::mem::take(&mut tally.goose),
        server_stats: if servers.is_cluster() {
            None
        } else {
            server_stats.into_iter().next().flatten()
        },
        nodes: node_results,
        bus,
        last_error,
        spread: Default::default(),
        thresholds: Vec::new(),
    };
    derive(&mut result, growth);
    derive_drift(&mut result, &m.window.drift);
    result
}

/// Decides whether the figures describe the load generator rather than the transport, and what else
/// disturbed them.
///
/// Saturated, any one is enough: the load generator using ≥ 90 % of all cores; load generator plus server
/// using ≥ 90 % of all cores, or the whole machine ≥ 90 % busy (`/proc/stat`, which also sees the kernel's
/// loopback network work that neither process is charged for: on a shared machine they compete, so
/// neither figure is clean); or the load
/// generator's own scheduling lag (a task asking to sleep 5 ms wakes ≥ 10 ms late at p99, so events wait
/// in our queue, not the server's) while it used at least half a core. Lag while the load generator was
/// nearly idle means something else on the machine took the CPU: that is a separate warning ("noisy
/// machine"), not saturation.
pub fn saturation(
    loadgen_cpu_percent: f64,
    server_cpu_percent: Option<f64>,
    machine_busy_percent: Option<f64>,
    lag_p99_us: u64,
) -> (bool, Vec<String>, Option<String>) {
    let capacity = cpus() as f64 * 100.0;
    let mut reasons = Vec::new();
    let lagging = lag_p99_us >= SATURATION_LAG_US;
    let lag = format!(
        "scheduling lag p99 {:.1} ms ≥ {} ms",
        lag_p99_us as f64 / 1000.0,
        SATURATION_LAG_US / 1000
    );
    if lagging && loadgen_cpu_percent >= 50.0 {
        reasons.push(format!("{lag} at {loadgen_cpu_percent:.0}% CPU"));
    }
    if loadgen_cpu_percent >= SATURATION_SHARE * capacity {
        reasons.push(format!(
            "load generator CPU {loadgen_cpu_percent:.0}% of {capacity:.0}%"
        ));
    } else if let Some(server) = server_cpu_percent
        && loadgen_cpu_percent + server >= SATURATION_SHARE * capacity
    {
        reasons.push(format!("machine full: load generator {loadgen_cpu_percent:.0}% + server {server:.0}% of {capacity:.0}% CPU"));
    } else if let Some(busy) = machine_busy_percent
        && busy >= SATURATION_SHARE * 100.0
    {
        reasons.push(format!("machine full: all cores {busy:.0}% busy (load generator {loadgen_cpu_percent:.0}%; the server, the kernel and any other process the rest)"));
    }
    let noisy = (lagging && reasons.is_empty())
        .then(|| format!("{lag} while the load generator used only {loadgen_cpu_percent:.0}% CPU: another process was busy, timings are noisy"));
    (!reasons.is_empty(), reasons, noisy)
}

/// Subscribers expected on each topic (a peer's channel counts are checked against it).
fn per_topic(scenario: &Scenario) -> Vec<(String, u64)> {
    let mut counts = vec![0u64; scenario.topic_count() as usize];
    for i in 0..scenario.subscribers {
        for t in scenario.topics_of(i) {
            counts[t as usize] += 1;
        }
    }
    counts
        .into_iter()
        .enumerate()
        .filter(|&(_, n)| n > 0)
        .map(|(t, n)| (scenario.topic(t as u64).to_string(), n))
        .collect()
}

/// Machine-wide CPU time from the first line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy)]
struct MachineCpu {
    busy: u64,
    total: u64,
}

impl MachineCpu {
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...: idle and iowait are the idle time.
        let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
        let total: u64 = fields.iter().take(8).sum();
        Some(Self {
            busy: total - idle,
            total,
        })
    }

    /// Share of all cores busy between `self` and `later`, percent.
    fn busy_percent_until(&self, later: &Self) -> Option<f64> {
        let total = later.total.checked_sub(self.total).filter(|&t| t > 0)?;
        Some(later.busy.saturating_sub(self.busy) as f64 / total as f64 * 100.0)
    }
}

/// What the progress line shows.
struct ProgressSource {
    transport: Transport,
    subscribers: u64,
    /// The fleet's counts now.
    live: LiveCounts,
    published: Arc<AtomicU64>,
    /// The server's processes (summed: a cluster's nodes), for its peak RSS.
    server_pids: Vec<u32>,
    peak_rss: Arc<AtomicU64>,
}

/// The live progress line on stderr (rewritten in place on a terminal, one line every 2 s otherwise), and
/// the server's peak RSS.
fn spawn_progress(p: ProgressSource, print: bool) -> tokio::task::JoinHandle<()> {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            tick += 1;
            let rss = (!p.server_pids.is_empty())
                .then(|| sample_processes(&p.server_pids))
                .flatten()
                .map(|s| s.rss_bytes);
            if let Some(rss) = rss {
                p.peak_rss.fetch_max(rss, Ordering::Relaxed);
            }
            if !print || (!terminal && !tick.is_multiple_of(4)) {
                continue;
            }
            let crate::fleet::Live {
                subscribed,
                delivered,
                ..
            } = (p.live)();
            let line = format!(
                "[{:<8}] {:>6.1}s  subscribed {subscribed}/{}  published {}  delivered {delivered}  server rss {}",
                p.transport.as_str(),
                started.elapsed().as_secs_f64(),
                p.subscribers,
                p.published.load(Ordering::Relaxed),
                rss.map_or_else(
                    || "?".to_owned(),
                    |b| format!("{:.1} MiB", b as f64 / 1048576.0)
                ),
            );
            if terminal {
                eprint!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
        }
    })
}

/// The default output directory: `results/<scenario>-<UTC time>`.
pub fn default_out_dir(scenario: &Scenario) -> PathBuf {
    Path::new("results").join(format!(
        "{}-{}",
        scenario.name,
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_names_its_reason_and_separates_noise() {
        let capacity = cpus() as f64 * 100.0;
        let (saturated, reasons, noise) = saturation(0.95 * capacity, None, None, 1_000);
        assert!(
            saturated && reasons[0].contains("load generator CPU"),
            "{reasons:?}"
        );
        assert!(noise.is_none());

        let (saturated, reasons, _) = saturation(10.0, Some(10.0), Some(97.0), 1_000);
        assert!(
            saturated && reasons[0].contains("all cores 97% busy"),
            "{reasons:?}"
        );

        let (saturated, reasons, _) =
            saturation(0.5 * capacity, Some(0.45 * capacity), Some(50.0), 1_000);
        assert!(
            saturated && reasons[0].contains("machine full"),
            "{reasons:?}"
        );

        let (saturated, reasons, _) = saturation(60.0, Some(10.0), Some(40.0), 20_000);
        assert!(
            saturated && reasons[0].contains("scheduling lag"),
            "{reasons:?}"
        );

        // Lag while the load generator is nearly idle: someone else was busy. Noise, not saturation.
        let (saturated, reasons, noise) = saturation(5.0, Some(5.0), Some(40.0), 20_000);
        assert!(!saturated && reasons.is_empty());
        assert!(noise.unwrap().contains("another process"));

        let (saturated, _, noise) = saturation(20.0, Some(20.0), Some(30.0), 2_000);
        assert!(!saturated && noise.is_none());
    }

    #[test]
    fn machine_cpu_is_read_from_proc_stat() {
        let a = MachineCpu::read().expect("/proc/stat is readable");
        std::thread::sleep(Duration::from_millis(50));
        let b = MachineCpu::read().unwrap();
        let busy = a.busy_percent_until(&b).unwrap_or(0.0);
        assert!((0.0..=100.0).contains(&busy), "{busy}");
    }
}
