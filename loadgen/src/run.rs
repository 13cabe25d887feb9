//! One run of a scenario: for each transport, a fresh server, goose-driven subscribers, the open-loop
//! publisher, and the accounting that turns it all into a [`TransportResult`].
//!
//! Timeline of one transport:
//! 1. start the server (or use `--target`) and sample its RSS: the baseline;
//! 2. goose launches the subscribers at `launch_rate` (one goose user each, a single transaction that is
//!    the subscriber's whole life); wait until all are subscribed, sample RSS and fds again;
//! 3. publish `warmup_s + duration_s` worth of events on the open-loop schedule; only events intended
//!    after the warm-up are timed, all are accounted for;
//! 4. keep reading for `drain_s`, then cancel the run's token: every subscriber ends itself, goose
//!    returns, the server's `/stats` is read and the server is stopped.
//!
//! goose runs with one shared client without cookies (no client per user), `--iterations 1` (each user's
//! single transaction is its life; with iterations goose never resets its metrics after the launch, so
//! connection timings are kept, and it refuses an explicit `NoResetMetrics`), and no telnet/web controller.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};
use goose::prelude::{GooseAttack, Scenario as GooseScenario, Transaction, TransactionFunction};
use pushbench_common::{ProcSample, Transport};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::conn::WireCounters;
use crate::metrics::{
    Completeness, Percentiles, PublishedLog, RunMeters, SubscriberCounters, account, lock,
    new_histogram, unix_ns,
};
use crate::publisher::{Schedule, publish};
use crate::report::{
    GooseRow, Model, RunResult, SCHEMA_VERSION, SerializedHistograms, TransportResult,
    encode_histogram,
};
use crate::scenario::Scenario;
use crate::server_proc::{Server, ServerError, count_fds};
use crate::subscriber::{Shared, Subscriber};

/// Where the server comes from.
#[derive(Debug, Clone)]
pub enum ServerSource {
    /// Spawn this binary once per transport.
    Spawn(PathBuf),
    /// Use a running server.
    Target {
        /// `http://host:port`.
        url: String,
        /// Its PID, for memory and CPU samples.
        pid: Option<u32>,
    },
    /// Start a peer (nchan, Pushpin) once per transport it offers (see [`crate::peer`]).
    Peer(crate::peer::PeerKind),
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The server.
    pub server: ServerSource,
    /// Output directory (server logs go there too).
    pub out_dir: PathBuf,
    /// Print a live progress line on stderr.
    pub progress: bool,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The server could not be started or reached.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// goose refused its configuration or failed.
    #[error("goose: {0}")]
    Goose(String),
    /// A peer could not be started.
    #[error(transparent)]
    Peer(#[from] crate::peer::PeerError),
}

impl From<goose::GooseError> for RunError {
    fn from(e: goose::GooseError) -> Self {
        // goose's Display omits which option was refused; its Debug form names it.
        Self::Goose(format!("{e:?}"))
    }
}

/// Share of the available CPU above which a run counts as saturated.
const SATURATION_SHARE: f64 = 0.9;
/// Scheduling lag (p99 oversleep of a 5 ms timer) above which the load generator counts as saturated.
const SATURATION_LAG_US: u64 = 10_000;

/// Runs every transport of `scenario` and returns the result (not yet written).
pub async fn run(scenario: Arc<Scenario>, options: &RunOptions) -> Result<RunResult, RunError> {
    let started_at = chrono::Utc::now();
    let mut transports = Vec::new();
    let mut warnings = Vec::new();
    for &transport in &scenario.transports {
        // A peer runs only the transports its profile drives; the side-by-side report names the others.
        if let ServerSource::Peer(kind) = options.server
            && kind.profile().route(transport).is_none()
        {
            continue;
        }
        let result = run_transport(&scenario, transport, options).await?;
        warnings.extend(warnings_for(&result));
        transports.push(result);
    }
    Ok(RunResult {
        schema_version: SCHEMA_VERSION,
        tool: concat!("pushbench ", env!("CARGO_PKG_VERSION")).to_owned(),
        scenario: serde_json::to_value(&*scenario).expect("scenario serializes"),
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        cpus: cpus(),
        server: match &options.server {
            ServerSource::Spawn(path) => format!("spawned {}", path.display()),
            ServerSource::Target { url, .. } => format!("target {url}"),
            ServerSource::Peer(kind) => format!("peer {kind}"),
        },
        runs: 1,
        transports,
        warnings,
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
            "{}: delivery not exact: {} lost, {} duplicates, {} out of order, {} unexpected ({} gap notices)",
            r.transport, r.lost, r.duplicates, r.out_of_order, r.unexpected, r.gaps
        ));
    }
    if r.subscribers_connected < r.subscribers {
        w.push(format!(
            "{}: only {} of {} subscribers got a subscription",
            r.transport, r.subscribers_connected, r.subscribers
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
    let server = match &options.server {
        ServerSource::Spawn(bin) => {
            Server::spawn(
                bin,
                &scenario.server.args(),
                &options.out_dir.join(format!("server-{transport}.log")),
            )
            .await?
        }
        ServerSource::Target { url, pid } => Server::target(url, *pid).await?,
        ServerSource::Peer(kind) => {
            Server::peer(crate::peer::RunningPeer::start(*kind, transport, &options.out_dir).await?)
        }
    };
    let result = measure(scenario, transport, &server, options).await;
    server.stop(Duration::from_secs(5)).await;
    result
}

async fn measure(
    scenario: &Arc<Scenario>,
    transport: Transport,
    server: &Server,
    options: &RunOptions,
) -> Result<TransportResult, RunError> {
    let n = scenario.subscribers;
    let shared = Arc::new(Shared {
        scenario: scenario.clone(),
        transport,
        addr: server.addr,
        host: server.addr.to_string().into(),
        wire: Arc::new(WireCounters::default()),
        meters: RunMeters::default(),
        draining: CancellationToken::new(),
        stop: CancellationToken::new(),
        logs: Mutex::new(Vec::with_capacity(n as usize)),
        peer: server.running_peer().map(|p| p.profile.clone()),
    });
    let server_before = server.sample();
    let self_before = ProcSample::of_self().ok();

    let attack = goose_attack(&shared)?;
    let goose_done = CancellationToken::new();
    let goose_run = {
        let goose_done = goose_done.clone();
        async move {
            let metrics = attack.execute().await;
            goose_done.cancel();
            metrics
        }
    };

    let published_live = Arc::new(AtomicU64::new(0));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let orchestrate = async {
        let progress = spawn_progress(
            shared.clone(),
            published_live.clone(),
            server.pid,
            peak_rss.clone(),
            options.progress,
        );

        // 2. all subscribers subscribed (or the launch deadline passed, or goose gave up).
        let launch_deadline = Instant::now()
            + Duration::from_secs_f64(n as f64 / scenario.launch_rate)
            + Duration::from_secs(30);
        while shared.meters.subscribed.load(Ordering::Relaxed) < n
            && Instant::now() < launch_deadline
            && !goose_done.is_cancelled()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if goose_done.is_cancelled() {
            // goose ended before every subscriber was launched: it failed; its error is reported below.
            shared.stop.cancel();
            progress.abort();
            return None;
        }
        // A peer cannot tell a subscriber its cursor: wait until its subscriptions are live.
        let peer_warning = match server.running_peer() {
            Some(peer) => {
                crate::peer::wait_subscribed(
                    peer,
                    transport,
                    &per_topic(scenario),
                    Duration::from_millis(500),
                )
                .await
            }
            None => None,
        };
        let server_connected = server.sample();
        let server_fds = server.fds();
        let self_connected = ProcSample::of_self().ok();
        let loadgen_fds = count_fds(std::process::id()).unwrap_or(0);

        // 3. publish on the open-loop schedule.
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
        shared.meters.measure_start_ns.store(
            start_unix_ns + scenario.warmup.as_nanos() as u64,
            Ordering::Relaxed,
        );
        let publisher_wire = Arc::new(WireCounters::default());
        let machine_start = MachineCpu::read();
        let server_cpu_start = Sample::of(server.sample());
        let self_cpu_start = Sample::of(ProcSample::of_self().ok());
        let lag_probe = spawn_lag_probe(shared.stop.clone());
        let published = match server.running_peer() {
            Some(peer) => {
                crate::peer::publish(
                    peer,
                    transport,
                    schedule.clone(),
                    publisher_wire.clone(),
                    published_live.clone(),
                )
                .await
            }
            None => {
                publish(
                    server.addr,
                    shared.host.clone(),
                    schedule.clone(),
                    publisher_wire.clone(),
                    published_live.clone(),
                )
                .await
            }
        };
        shared.draining.cancel();

        // 4. drain, then stop every subscriber.
        tokio::time::sleep(scenario.drain).await;
        let server_cpu_end = Sample::of(server.sample());
        let machine_busy = machine_start
            .zip(MachineCpu::read())
            .and_then(|(a, b)| a.busy_percent_until(&b));
        let self_cpu_end = Sample::of(ProcSample::of_self().ok());
        shared.stop.cancel();
        progress.abort();
        let lag = lag_probe.await.unwrap_or_else(|_| new_histogram());
        Some(Orchestrated {
            server_connected,
            server_fds,
            self_connected,
            loadgen_fds,
            published,
            publisher_wire: publisher_wire.totals(),
            server_cpu: server_cpu_start.cpu_until(&server_cpu_end),
            machine_busy,
            self_cpu: self_cpu_start.cpu_until(&self_cpu_end),
            window: start.elapsed(),
            lag_p99_us: lag.value_at_quantile(0.99),
            peer_warning,
        })
    };
    let (goose_metrics, o) = tokio::join!(goose_run, orchestrate);
    if options.progress {
        eprintln!();
    }
    let goose_metrics = goose_metrics?;
    let o = o.ok_or_else(|| {
        RunError::Goose("goose ended before the subscribers were launched".into())
    })?;
    let server_stats = server.stats().await;

    // Accounting.
    let logs = std::mem::take(&mut *shared.logs.lock().unwrap_or_else(|p| p.into_inner()));
    let published_log = PublishedLog::new(
        scenario.topic_count() as usize,
        o.published.acks.iter().copied(),
    );
    let mut completeness = Completeness::default();
    let mut counters = SubscriberCounters::default();
    if let Some(note) = &o.peer_warning {
        eprintln!("pushbench: {transport}: note: {note}");
    }
    let mut last_error = o.published.last_error.clone();
    for log in &logs {
        completeness.add(&account(log, &published_log));
        counters.add(&log.counters);
        if log.last_error.is_some() {
            last_error.clone_from(&log.last_error);
        }
    }
    // Subscribers goose never started (or that never handed a log back) are owed everything too.
    let missing = n.saturating_sub(logs.len() as u64);
    completeness.never_subscribed += missing;
    let connected = n - completeness.never_subscribed;

    let mut h = lock(&shared.meters.histograms);
    if shared.peer.is_some() {
        // Peers give no accept timestamp of their own: there is no "from server" latency to report.
        h.latency_from_server.reset();
    }
    let delivered = completeness.delivered;
    let per_delivery = |x: f64| (delivered > 0).then(|| x / delivered as f64);
    let (bytes_received, bytes_sent) = shared.wire.totals();
    let rss = |s: Option<ProcSample>| s.map(|s| s.rss_bytes);
    let server_rss_before = rss(server_before);
    let server_rss_connected = rss(o.server_connected);
    let server_cpu_ms = o.server_cpu.map(|(cpu, _)| cpu.as_secs_f64() * 1000.0);
    let loadgen_cpu_percent = o.self_cpu.map_or(0.0, |(cpu, wall)| {
        cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9) * 100.0
    });
    let server_cpu_percent = o
        .server_cpu
        .map(|(cpu, wall)| cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9) * 100.0);
    let (saturated, reasons, noisy) = saturation(
        loadgen_cpu_percent,
        server_cpu_percent,
        o.machine_busy,
        o.lag_p99_us,
    );
    let self_rss = rss(o.self_connected);

    Ok(TransportResult {
        transport,
        subscribers: n,
        subscribers_connected: connected,
        published: published_log.total(),
        publish_failures: o.published.failures,
        expected: completeness.expected,
        delivered,
        lost: completeness.lost,
        duplicates: completeness.duplicates,
        out_of_order: completeness.out_of_order,
        unexpected: completeness.unexpected,
        gaps: counters.gaps,
        latency_us: Percentiles::of(&h.latency),
        latency_from_server_us: Percentiles::of(&h.latency_from_server),
        connect_us: Percentiles::of(&h.connect),
        first_byte_us: Percentiles::of(&h.first_byte),
        subscribed_us: Percentiles::of(&h.subscribed),
        failed_connects: counters.failed_connects,
        reconnects: counters.reconnects,
        errors: counters.errors,
        heartbeats: counters.heartbeats,
        requests: counters.requests,
        empty_polls: counters.empty_polls,
        requests_cut: counters.requests_cut,
        requests_per_delivery: per_delivery(counters.requests as f64),
        bytes_received,
        bytes_sent,
        bytes_per_delivery: per_delivery((bytes_received + bytes_sent) as f64),
        publisher_bytes_sent: o.publisher_wire.1,
        publisher_bytes_received: o.publisher_wire.0,
        server_rss_before_bytes: server_rss_before,
        server_rss_connected_bytes: server_rss_connected,
        server_rss_peak_bytes: Some(peak_rss.load(Ordering::Relaxed)).filter(|&p| p > 0),
        server_rss_per_connection_bytes: match (server_rss_before, server_rss_connected) {
            (Some(before), Some(after)) if connected > 0 => {
                Some((after as f64 - before as f64) / connected as f64)
            }
            _ => None,
        },
        server_cpu_ms,
        server_cpu_ms_per_1k_deliveries: server_cpu_ms.and_then(|ms| per_delivery(ms * 1000.0)),
        server_fds: o.server_fds,
        loadgen_cpu_percent,
        loadgen_rss_bytes: self_rss,
        loadgen_rss_per_subscriber_bytes: match (self_before, self_rss) {
            (Some(before), Some(after)) if connected > 0 => {
                Some((after as f64 - before.rss_bytes as f64) / connected as f64)
            }
            _ => None,
        },
        loadgen_fds: o.loadgen_fds,
        loadgen_lag_p99_us: o.lag_p99_us,
        machine_cpu_busy_percent: o.machine_busy,
        loadgen_saturated: saturated,
        loadgen_saturation_reasons: reasons,
        noise: noisy,
        publish_lateness_us: Percentiles::of(&o.published.lateness),
        window_s: o.window.as_secs_f64(),
        model: Model {
            events_per_subscriber_per_s: scenario.events_per_subscriber_per_s(),
            poll_interval_ms: scenario.poll_interval.as_secs_f64() * 1000.0,
            poll_wait_ms: scenario.poll_interval.as_secs_f64() * 500.0,
            poll_requests_per_delivery: 1.0
                / scenario.poll_interval.as_secs_f64()
                / scenario.events_per_subscriber_per_s(),
        },
        histograms: SerializedHistograms {
            latency_us: encode_histogram(&h.latency),
            latency_from_server_us: encode_histogram(&h.latency_from_server),
            connect_us: Some(encode_histogram(&h.connect)),
            first_byte_us: Some(encode_histogram(&h.first_byte)),
            subscribed_us: Some(encode_histogram(&h.subscribed)),
            publish_lateness_us: Some(encode_histogram(&o.published.lateness)),
        },
        goose: goose_rows(&goose_metrics),
        server_stats,
        last_error,
        spread: Default::default(),
        thresholds: Vec::new(),
    })
}

/// What the orchestrating half of a transport run measured.
struct Orchestrated {
    server_connected: Option<ProcSample>,
    server_fds: Option<u64>,
    self_connected: Option<ProcSample>,
    loadgen_fds: u64,
    published: crate::publisher::Published,
    publisher_wire: (u64, u64),
    server_cpu: Option<(Duration, Duration)>,
    machine_busy: Option<f64>,
    self_cpu: Option<(Duration, Duration)>,
    window: Duration,
    lag_p99_us: u64,
    /// A peer whose subscriptions were not all confirmed live before publishing (printed as a note).
    peer_warning: Option<String>,
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

/// Measures how late a 5 ms sleep wakes up, until `stop`: the load generator's own queueing delay.
fn spawn_lag_probe(
    stop: CancellationToken,
) -> tokio::task::JoinHandle<hdrhistogram::Histogram<u64>> {
    tokio::spawn(async move {
        let mut lag = new_histogram();
        let step = Duration::from_millis(5);
        while !stop.is_cancelled() {
            let asked = Instant::now() + step;
            tokio::time::sleep_until(asked).await;
            lag.saturating_record(
                (Instant::now().saturating_duration_since(asked).as_micros() as u64).max(1),
            );
        }
        lag
    })
}

/// The live progress line on stderr (rewritten in place on a terminal, one line every 2 s otherwise), and
/// the server's peak RSS.
fn spawn_progress(
    shared: Arc<Shared>,
    published: Arc<AtomicU64>,
    server_pid: Option<u32>,
    peak_rss: Arc<AtomicU64>,
    print: bool,
) -> tokio::task::JoinHandle<()> {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            tick += 1;
            let rss = server_pid
                .and_then(|pid| ProcSample::of_pid(pid).ok())
                .map(|s| s.rss_bytes);
            if let Some(rss) = rss {
                peak_rss.fetch_max(rss, Ordering::Relaxed);
            }
            if !print || (!terminal && !tick.is_multiple_of(4)) {
                continue;
            }
            let m = &shared.meters;
            let line = format!(
                "[{:<8}] {:>6.1}s  subscribed {}/{}  published {}  delivered {}  server rss {}",
                shared.transport.as_str(),
                started.elapsed().as_secs_f64(),
                m.subscribed.load(Ordering::Relaxed),
                shared.scenario.subscribers,
                published.load(Ordering::Relaxed),
                m.delivered.load(Ordering::Relaxed),
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

/// Builds the goose attack for one transport: one scenario, one transaction per user (its whole life).
fn goose_attack(shared: &Arc<Shared>) -> Result<GooseAttack, RunError> {
    let s = &shared.scenario;
    let life = {
        let shared = shared.clone();
        let function: TransactionFunction = Arc::new(move |user| {
            let shared = shared.clone();
            Box::pin(async move {
                let index = user.weighted_users_index as u64;
                Subscriber::new(&shared, user, index).run().await;
                Ok(())
            })
        });
        Transaction::new(function).set_name("subscriber life")
    };
    let scenario = GooseScenario::new(shared.transport.as_str()).register_transaction(life);
    let hold = s.warmup + s.duration + s.drain + Duration::from_secs(3600);
    let attack = GooseAttack::initialize_with_config(GooseConfiguration::default())?
        .set_client_builder_without_cookies(
            goose::client::GooseClientBuilder::new()
                .without_cookies()
                .timeout(hold),
        )?
        .register_scenario(scenario)
        .set_default(
            GooseDefault::Host,
            format!("http://{}", shared.addr).as_str(),
        )?
        .set_default(GooseDefault::Users, s.subscribers as usize)?
        .set_default(
            GooseDefault::IncreaseRate,
            s.launch_rate.to_string().as_str(),
        )?
        .set_default(GooseDefault::Iterations, 1)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .set_default(GooseDefault::NoErrorSummary, true)?
        .set_default(GooseDefault::Quiet, 1)?
        .set_default(GooseDefault::Timeout, hold.as_secs().to_string().as_str())?;
    Ok(*attack)
}

fn goose_rows(metrics: &goose::metrics::GooseMetrics) -> Vec<GooseRow> {
    let mut rows: Vec<GooseRow> = metrics
        .requests
        .iter()
        .map(|(name, agg)| GooseRow {
            name: name.clone(),
            success: agg.success_count as u64,
            fail: agg.fail_count as u64,
            mean_us: if agg.raw_data.counter > 0 {
                agg.raw_data.total_time_us as f64 / agg.raw_data.counter as f64
            } else {
                0.0
            },
            max_us: agg.raw_data.maximum_time_us,
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
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
