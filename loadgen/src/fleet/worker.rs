//! `pushbench run --workers N`: the subscribers of a run spread over N load-generator processes.
//!
//! One process may hold at most as many sockets as its open-file limit allows (20,000 here), and one
//! loopback source address has ~28,000 ephemeral ports. The coordinating `pushbench run` therefore starts
//! N copies of itself as `pushbench worker` (a hidden subcommand); worker `i` raises its soft open-file
//! limit to the hard one, holds subscribers `[i·n/N, (i+1)·n/N)` and binds their sockets to the loopback
//! source address `127.0.0.(2+i)`. The coordinator keeps the server, the publisher and the clock.
//!
//! The protocol is one JSON object per line: the coordinator writes a [`WorkerSpec`], then [`Command`]s on
//! the worker's stdin; the worker answers [`Report`]s on its stdout, each line prefixed with
//! [`REPORT_PREFIX`] because goose prints its own lines there too (its stderr goes to
//! `worker-<transport>-<i>.log` in the output directory):
//!
//! ```text
//! → spec            ← ready        (the coordinator samples every worker's memory: the baseline)
//! → launch          ← live …       (every 250 ms: subscribed, delivered)
//! → measure_from    → drain
//! → stop {acks}     ← done {tally} (the worker accounts its subscribers against the acks and exits)
//! ```
//!
//! Each worker's [`Tally`] carries its counters and its HDR histograms (serialized), so the
//! coordinator's sum is exact. A worker that dies or answers nonsense fails the run with its name.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use pushbench_common::Transport;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command as Process};
use tokio::sync::oneshot;

use crate::clients::dialect::PeerKind;
use crate::conn::TlsTrust;
use crate::error::RunError;
use crate::fleet::{FleetSpec, Live, LiveCounts, Local, Tally};
use crate::measure::spawn_lag_probe;
use crate::measure::{Completeness, Histograms, SubscriberCounters};
use crate::network::namespace::command_inside;
use crate::scenario::Scenario;
use crate::util::guarded;
use pushbench_report::result::{GooseRow, decode_histogram, encode_histogram};

/// Marks a worker's report lines on its stdout; other lines there are goose's and are skipped.
pub(crate) const REPORT_PREFIX: &str = "@pushbench ";
/// How long a worker may take to start and report `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval of a worker's live counts.
pub(crate) const LIVE_EVERY: Duration = Duration::from_millis(250);

/// What one worker holds.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WorkerSpec {
    /// The whole workload.
    pub scenario: Scenario,
    /// The transport under test.
    pub transport: Transport,
    /// The server's nodes.
    pub nodes: Vec<SocketAddr>,
    /// The dialect the clients speak (see [`FleetSpec::dialect`]).
    pub dialect: Option<PeerKind>,
    /// The target profile's route (see [`FleetSpec::profiled`]).
    #[serde(default)]
    pub profiled: Option<crate::profile::Route>,
    /// Whom to trust over TLS (see [`FleetSpec::tls`]).
    pub tls: Option<TlsTrust>,
    /// First subscriber index held (inclusive).
    pub first: u64,
    /// Last subscriber index held (exclusive).
    pub end: u64,
    /// Source address of the worker's sockets.
    pub source: Option<IpAddr>,
}

/// Coordinator → worker, after the spec.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Command {
    /// Start launching the subscribers.
    Launch,
    /// Events intended before this Unix ns are warm-up.
    MeasureFrom(u64),
    /// The last event is published: churn stops.
    Drain,
    /// Stop every subscriber and account them against these `(id, topic index)` acknowledgements.
    Stop {
        /// Every acknowledged publish.
        acks: Vec<(u64, u64)>,
    },
}

/// Worker → coordinator.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Report {
    /// Started; waiting for `launch`.
    Ready,
    /// Live counts.
    Live {
        /// Subscribers whose first subscription is live.
        subscribed: u64,
        /// Events received so far.
        delivered: u64,
        /// Subscriber bytes read and written so far.
        #[serde(default)]
        bytes: u64,
        /// Why the target profile does not fit the server, once a subscriber found out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mismatch: Option<String>,
    },
    /// The final tally.
    Done(Box<WireTally>),
    /// The worker could not do its part.
    Failed(String),
}

/// A [`Tally`] as it crosses the pipe: histograms in their serialized HdrHistogram form.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireTally {
    logs: u64,
    completeness: Completeness,
    counters: SubscriberCounters,
    last_error: Option<String>,
    wire: (u64, u64),
    retransmits: u64,
    /// latency, latency from server, connect, TLS handshake, first byte, subscribed, reconnect.
    histograms: [String; 7],
    goose: Vec<GooseRow>,
    lag_p99_us: u64,
}

impl WireTally {
    fn of(t: &Tally) -> Self {
        let h = &t.histograms;
        Self {
            logs: t.logs,
            completeness: t.completeness,
            counters: t.counters,
            last_error: t.last_error.clone(),
            wire: t.wire,
            retransmits: t.retransmits,
            histograms: [
                &h.latency,
                &h.latency_from_server,
                &h.connect,
                &h.tls_handshake,
                &h.first_byte,
                &h.subscribed,
                &h.reconnect,
            ]
            .map(encode_histogram),
            goose: t.goose.clone(),
            lag_p99_us: t.lag_p99_us,
        }
    }

    fn into_tally(self) -> Result<Tally, String> {
        let mut decoded = Vec::with_capacity(self.histograms.len());
        for text in &self.histograms {
            decoded.push(decode_histogram(text).map_err(|e| e.to_string())?);
        }
        let [
            latency,
            latency_from_server,
            connect,
            tls_handshake,
            first_byte,
            subscribed,
            reconnect,
        ]: [_; 7] = decoded
            .try_into()
            .map_err(|_| "expected seven histograms".to_owned())?;
        Ok(Tally {
            logs: self.logs,
            completeness: self.completeness,
            counters: self.counters,
            last_error: self.last_error,
            wire: self.wire,
            retransmits: self.retransmits,
            histograms: Histograms {
                latency,
                latency_from_server,
                connect,
                tls_handshake,
                first_byte,
                subscribed,
                reconnect,
            },
            goose: self.goose,
            lag_p99_us: self.lag_p99_us,
        })
    }
}

/// Source address of worker `i`: `127.0.0.(2+i)`, leaving 127.0.0.1 to the coordinator and the server.
pub(crate) fn source_address(i: usize) -> Option<IpAddr> {
    u8::try_from(i + 2)
        .ok()
        .filter(|&o| o < 255)
        .map(|o| IpAddr::V4(Ipv4Addr::new(127, 0, 0, o)))
}

/// Subscribers of worker `i` of `workers`, out of `n`: contiguous, sizes differing by at most one.
pub(crate) fn share(n: u64, workers: u64, i: u64) -> std::ops::Range<u64> {
    (i * n / workers)..((i + 1) * n / workers)
}

/// Live state of one worker, written by its stdout reader.
#[derive(Debug, Default)]
struct WorkerLive {
    subscribed: AtomicU64,
    delivered: AtomicU64,
    bytes: AtomicU64,
    ended: AtomicBool,
    /// The profile mismatch the worker reported (`Shared::mismatch`); set once.
    mismatch: std::sync::OnceLock<String>,
}

impl WorkerLive {
    /// The counts summed over `lives`.
    fn sum<'a>(lives: impl Iterator<Item = &'a WorkerLive>) -> Live {
        lives.fold(Live::default(), |sum, l| Live {
            subscribed: sum.subscribed + l.subscribed.load(Ordering::Relaxed),
            delivered: sum.delivered + l.delivered.load(Ordering::Relaxed),
            bytes: sum.bytes + l.bytes.load(Ordering::Relaxed),
        })
    }
}

#[derive(Debug)]
struct WorkerProc {
    index: usize,
    child: Child,
    stdin: ChildStdin,
    live: Arc<WorkerLive>,
    done: oneshot::Receiver<Result<WireTally, String>>,
}

/// The worker processes of one transport run.
#[derive(Debug)]
pub(crate) struct Workers {
    procs: Vec<WorkerProc>,
}

impl Workers {
    /// Starts `workers` worker processes for `spec` and waits until each reports `ready`.
    pub(crate) async fn spawn(
        spec: &FleetSpec,
        workers: usize,
        log_dir: &Path,
    ) -> Result<Self, RunError> {
        let bin = locate_self()?;
        let n = spec.scenario.subscribers;
        let mut procs = Vec::with_capacity(workers);
        for i in 0..workers {
            let range = share(n, workers as u64, i as u64);
            let source = match &spec.subscriber_side {
                Some(side) => side.sources.get(i).copied(),
                None => source_address(i),
            }
            .ok_or_else(|| {
                RunError::Worker(i, "no source address left (at most 253 workers)".into())
            })?;
            let worker_spec = WorkerSpec {
                scenario: (*spec.scenario).clone(),
                transport: spec.transport,
                nodes: spec.nodes.clone(),
                dialect: spec.dialect,
                profiled: spec.profiled.as_deref().cloned(),
                tls: spec.tls.clone(),
                first: range.start,
                end: range.end,
                source: Some(source),
            };
            let namespace = spec.subscriber_side.as_ref().map(|s| s.namespace.as_str());
            procs.push(WorkerProc::spawn(&bin, i, &worker_spec, namespace, log_dir).await?);
        }
        Ok(Self { procs })
    }

    /// Every worker starts launching its subscribers.
    pub(crate) async fn launch(&mut self) -> Result<(), RunError> {
        self.send_all(&Command::Launch).await
    }

    /// PIDs of the worker processes.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.procs.iter().filter_map(|p| p.child.id()).collect()
    }

    /// Reads `(subscribed, delivered)` summed over the workers.
    pub(crate) fn live_counts(&self) -> LiveCounts {
        let lives: Vec<Arc<WorkerLive>> = self.procs.iter().map(|p| p.live.clone()).collect();
        Arc::new(move || WorkerLive::sum(lives.iter().map(|l| &**l)))
    }

    /// Subscribed, summed over the workers.
    pub(crate) fn subscribed(&self) -> u64 {
        WorkerLive::sum(self.procs.iter().map(|p| &*p.live)).subscribed
    }

    /// The first profile mismatch a worker reported.
    pub(crate) fn mismatch(&self) -> Option<String> {
        self.procs
            .iter()
            .find_map(|p| p.live.mismatch.get().cloned())
    }

    /// Whether a worker has stopped talking (it failed or exited).
    pub(crate) fn ended(&self) -> bool {
        self.procs
            .iter()
            .any(|p| p.live.ended.load(Ordering::Relaxed))
    }

    /// Tells every worker when the measured window starts.
    pub(crate) async fn measure_from(&mut self, unix_ns: u64) -> Result<(), RunError> {
        self.send_all(&Command::MeasureFrom(unix_ns)).await
    }

    /// Tells every worker that draining begins.
    pub(crate) async fn drain(&mut self) -> Result<(), RunError> {
        self.send_all(&Command::Drain).await
    }

    /// Stops every worker and sums their tallies.
    pub(crate) async fn finish(mut self, acks: &[(u64, u64)]) -> Result<Tally, RunError> {
        self.send_all(&Command::Stop {
            acks: acks.to_vec(),
        })
        .await?;
        let mut total = Tally::default();
        for p in self.procs {
            let index = p.index;
            let wire = p
                .done
                .await
                .map_err(|_| RunError::Worker(index, "exited without a tally".into()))?
                .map_err(|e| RunError::Worker(index, e))?;
            total.add(wire.into_tally().map_err(|e| RunError::Worker(index, e))?);
            let mut child = p.child;
            // It exits by itself after `done`; never leave one behind.
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        Ok(total)
    }

    async fn send_all(&mut self, command: &Command) -> Result<(), RunError> {
        let mut line = serde_json::to_vec(command).expect("commands serialize");
        line.push(b'\n');
        for p in &mut self.procs {
            p.stdin
                .write_all(&line)
                .await
                .map_err(|e| RunError::Worker(p.index, format!("cannot write to it: {e}")))?;
        }
        Ok(())
    }
}

impl WorkerProc {
    async fn spawn(
        bin: &Path,
        index: usize,
        spec: &WorkerSpec,
        namespace: Option<&str>,
        log_dir: &Path,
    ) -> Result<Self, RunError> {
        let failed = |reason: String| RunError::Worker(index, reason);
        let log_path = log_dir.join(format!("worker-{}-{index}.log", spec.transport));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| failed(format!("cannot create {}: {e}", log_path.display())))?;
        let mut child = match namespace {
            Some(name) => command_inside(name, bin),
            None => Process::new(bin),
        }
        .arg("worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .map(guarded)
        .map_err(|e| failed(format!("cannot start {}: {e}", bin.display())))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = serde_json::to_vec(spec).expect("a spec serializes");
        line.push(b'\n');
        stdin
            .write_all(&line)
            .await
            .map_err(|e| failed(format!("cannot send its spec: {e}")))?;

        let live = Arc::new(WorkerLive::default());
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        tokio::spawn(read_reports(
            BufReader::new(stdout),
            live.clone(),
            ready_tx,
            done_tx,
            log_path.clone(),
        ));
        match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
            Ok(Ok(())) => {}
            _ => {
                return Err(failed(format!(
                    "not ready within {READY_TIMEOUT:?} (see {})",
                    log_path.display()
                )));
            }
        }
        Ok(Self {
            index,
            child,
            stdin,
            live,
            done,
        })
    }
}

/// Reads a worker's reports until it ends: live counts into `live`, the tally (or its failure) into
/// `done`. Anything else ends the worker's run with a message naming its log.
async fn read_reports(
    stdout: BufReader<tokio::process::ChildStdout>,
    live: Arc<WorkerLive>,
    ready: oneshot::Sender<()>,
    done: oneshot::Sender<Result<WireTally, String>>,
    log: PathBuf,
) {
    let mut ready = Some(ready);
    let mut lines = stdout.lines();
    let outcome = loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                match serde_json::from_str::<Report>(match line.strip_prefix(REPORT_PREFIX) {
                    Some(json) => json,
                    None => continue,
                }) {
                    Ok(Report::Ready) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Report::Live {
                        subscribed,
                        delivered,
                        bytes,
                        mismatch,
                    }) => {
                        if let Some(mismatch) = mismatch {
                            let _ = live.mismatch.set(mismatch);
                        }
                        live.subscribed.store(subscribed, Ordering::Relaxed);
                        live.delivered.store(delivered, Ordering::Relaxed);
                        live.bytes.store(bytes, Ordering::Relaxed);
                    }
                    Ok(Report::Done(tally)) => break Ok(*tally),
                    Ok(Report::Failed(reason)) => break Err(reason),
                    Err(e) => break Err(format!("unreadable report {line:?}: {e}")),
                }
            }
            Ok(None) => break Err(format!("exited (see {})", log.display())),
            Err(e) => break Err(format!("cannot read its reports: {e}")),
        }
    };
    live.ended.store(true, Ordering::Relaxed);
    let _ = done.send(outcome);
}

fn locate_self() -> Result<PathBuf, RunError> {
    crate::util::pushbench_executable()
        .map_err(|tried| RunError::Worker(0, format!("no pushbench executable at {tried}")))
}

/// `pushbench worker`: reads its spec and commands on stdin, reports on stdout (see the module docs).
pub(crate) fn main() -> anyhow::Result<()> {
    crate::machine::limits::raise_open_file_limit(u64::MAX);
    let rt = crate::util::runtime()?;
    rt.block_on(serve())
}

fn report(r: &Report) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(REPORT_PREFIX.as_bytes())?;
    serde_json::to_writer(&mut out, r).context("cannot write a report")?;
    out.write_all(b"\n")?;
    out.flush().context("cannot write a report")
}

async fn serve() -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut next = async || -> anyhow::Result<String> {
        lines
            .next_line()
            .await
            .context("cannot read stdin")?
            .context("the coordinator closed stdin")
    };
    let spec: WorkerSpec = serde_json::from_str(&next().await?).context("bad worker spec")?;
    let fleet = FleetSpec {
        scenario: Arc::new(spec.scenario),
        transport: spec.transport,
        nodes: spec.nodes,
        dialect: spec.dialect,
        profiled: spec.profiled.map(Arc::new),
        tls: spec.tls,
        // This process was started inside the subscriber side already.
        subscriber_side: None,
    };
    report(&Report::Ready)?;
    let command = |line: String| -> anyhow::Result<Command> {
        serde_json::from_str(&line).with_context(|| format!("bad command {line:?}"))
    };
    match command(next().await?)? {
        Command::Launch => {}
        other => anyhow::bail!("expected launch, got {other:?}"),
    }
    let local = match Local::start(&fleet, spec.first..spec.end, spec.source) {
        Ok(local) => local,
        Err(e) => {
            report(&Report::Failed(e.to_string()))?;
            return Err(e.into());
        }
    };
    let stop_probe = tokio_util::sync::CancellationToken::new();
    let lag = spawn_lag_probe(stop_probe.clone());
    let mut tick = tokio::time::interval(LIVE_EVERY);
    let acks = loop {
        tokio::select! {
            line = next() => match command(line?)? {
                Command::MeasureFrom(ns) => local.measure_from(ns),
                Command::Drain => local.drain(),
                Command::Stop { acks } => break acks,
                Command::Launch => anyhow::bail!("launched twice"),
            },
            _ = tick.tick() => {
                let now = local.live();
                report(&Report::Live {
                    subscribed: now.subscribed,
                    delivered: now.delivered,
                    bytes: now.bytes,
                    mismatch: local.mismatch(),
                })?;
            }
        }
    };
    stop_probe.cancel();
    let lag_p99_us = lag.await.map_or(0, |h| h.value_at_quantile(0.99));
    match local.finish(&acks).await {
        Ok(mut tally) => {
            tally.lag_p99_us = lag_p99_us;
            report(&Report::Done(Box::new(WireTally::of(&tally))))
        }
        Err(e) => report(&Report::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_subscriber_once() {
        for (n, workers) in [(10, 3), (50_000, 3), (7, 7), (19_000, 2)] {
            let mut next = 0;
            for i in 0..workers {
                let r = share(n, workers, i);
                assert_eq!(r.start, next);
                assert!(r.end - r.start >= n / workers && r.end - r.start <= n / workers + 1);
                next = r.end;
            }
            assert_eq!(next, n);
        }
    }

    #[test]
    fn source_addresses_are_distinct_loopback_addresses() {
        assert_eq!(source_address(0), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(source_address(252), Some("127.0.0.254".parse().unwrap()));
        assert_eq!(source_address(253), None);
    }

    #[test]
    fn a_tally_crosses_the_pipe_exactly() {
        let mut tally = Tally {
            logs: 3,
            completeness: Completeness {
                expected: 30,
                delivered: 29,
                lost: 1,
                ..Completeness::default()
            },
            wire: (1000, 200),
            retransmits: 9,
            lag_p99_us: 77,
            ..Tally::default()
        };
        for v in [5, 500, 50_000] {
            tally.histograms.latency.record(v).unwrap();
            tally.histograms.connect.record(v * 2).unwrap();
        }
        let json = serde_json::to_string(&Report::Done(Box::new(WireTally::of(&tally)))).unwrap();
        let Report::Done(back) = serde_json::from_str(&json).unwrap() else {
            panic!("not a tally: {json}");
        };
        let back = back.into_tally().unwrap();
        assert_eq!(back.completeness, tally.completeness);
        assert_eq!(
            (back.logs, back.wire, back.retransmits, back.lag_p99_us),
            (3, (1000, 200), 9, 77)
        );
        assert_eq!(back.histograms.latency, tally.histograms.latency);
        assert_eq!(back.histograms.connect, tally.histograms.connect);
        assert_eq!(back.histograms.subscribed.len(), 0);
    }
}
