//! The subscribers of one transport run, held in this process ([`Local`]) or spread over worker
//! processes ([`crate::fleet::worker::Workers`], `--workers N`), driven the same way by `run`.
//!
//! A fleet launches its subscribers (goose users) as soon as it starts, shows live counts, learns when
//! the measured window starts and when draining begins, and on `finish` accounts every subscriber
//! against the publisher's acknowledgements into one [`Tally`]. Tallies add exactly — counters summed,
//! HDR histograms added — so N workers give the result one process would have given.

pub(crate) mod worker;

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};
use goose::metrics::GooseMetrics;
use goose::prelude::{GooseAttack, Scenario as GooseScenario, Transaction, TransactionFunction};
use pushbench_common::Transport;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clients::dialect::PeerKind;
use crate::clients::subscriber::{RequestSink, Shared, Subscriber, TimedRequest};
use crate::conn::{Endpoint, TlsTrust, WireCounters};
use crate::error::RunError;
use crate::fleet::worker::Workers;
use crate::measure::{Completeness, Histograms, PublishedLog, SubscriberCounters, account, lock};
use crate::network::placement::SubscriberSide;
use crate::scenario::Scenario;
use crate::util::sample_processes;
use pushbench_common::ProcSample;
use pushbench_report::result::GooseRow;

/// Whether goose's own SIGINT handler fired: once an attack has started goose takes SIGINT and raises
/// its kill switch (which it resets when its next attack starts).
pub(crate) fn sigint_seen() -> bool {
    goose::is_killswitch_triggered()
}

impl From<goose::GooseError> for RunError {
    fn from(e: goose::GooseError) -> Self {
        // goose's Display omits which option was refused; its Debug form names it.
        Self::Goose(format!("{e:?}"))
    }
}

/// A goose user is a subscriber's request sink: its timed operations appear in goose's request
/// metrics.
impl RequestSink for goose::prelude::GooseUser {
    fn record<'a>(
        &'a mut self,
        r: TimedRequest<'a>,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            // goose only fails here when its metrics channel is gone at shutdown; nothing to record then.
            let _ = self
                .record_custom_request_duration(
                    r.method, r.name, r.took, r.success, r.status, r.error,
                )
                .await;
        })
    }
}

/// What every part of a fleet needs to know.
#[derive(Debug, Clone)]
pub(crate) struct FleetSpec {
    /// The workload (all of it: subscriber `i`'s topics depend on the whole scenario).
    pub scenario: Arc<Scenario>,
    /// The transport under test.
    pub transport: Transport,
    /// The server's nodes, in order (see `clients::subscriber::Shared::nodes`).
    pub nodes: Vec<SocketAddr>,
    /// The dialect the clients speak: `None` for our own protocol, else the peer's.
    pub dialect: Option<PeerKind>,
    /// The route the clients take when a target profile describes the server (see
    /// [`crate::profile::Route`]).
    pub profiled: Option<Arc<crate::profile::Route>>,
    /// Whom the clients trust over TLS; `None`: cleartext.
    pub tls: Option<TlsTrust>,
    /// The emulated network's subscriber side, where the subscribers must stand (always in worker
    /// processes, since this process stands on the server side); `None` on loopback.
    pub subscriber_side: Option<SubscriberSide>,
}

/// What a set of subscribers measured, summable over sets.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Subscribers that handed back a log.
    pub logs: u64,
    /// Delivery accounting against the publisher's acknowledgements.
    pub completeness: Completeness,
    /// Request, reconnect and error counters.
    pub counters: SubscriberCounters,
    /// Last error a subscriber saw.
    pub last_error: Option<String>,
    /// Bytes `(read, written)` at the subscribers' sockets.
    pub wire: (u64, u64),
    /// TCP segments the subscribers' sockets retransmitted.
    pub retransmits: u64,
    /// Latency and connection histograms.
    pub histograms: Histograms,
    /// goose's request metrics.
    pub goose: Vec<GooseRow>,
    /// Scheduling lag p99 of the worker processes, µs (the largest; 0 in this process, which measures
    /// its own).
    pub lag_p99_us: u64,
}

impl Tally {
    /// Adds `other` into `self`.
    pub(crate) fn add(&mut self, other: Tally) {
        self.logs += other.logs;
        self.completeness.add(&other.completeness);
        self.counters.add(&other.counters);
        self.last_error = other.last_error.or(self.last_error.take());
        self.wire = (self.wire.0 + other.wire.0, self.wire.1 + other.wire.1);
        self.retransmits += other.retransmits;
        self.histograms.add(&other.histograms);
        self.goose = pushbench_report::gate::merge::merge_goose(
            [self.goose.as_slice(), other.goose.as_slice()].into_iter(),
        );
        self.lag_p99_us = self.lag_p99_us.max(other.lag_p99_us);
    }
}

/// Reads `(subscribed, delivered)` now.
pub(crate) type LiveCounts = Arc<dyn Fn() -> Live + Send + Sync>;

/// What a running fleet tells about itself, summed over its processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Live {
    /// Subscribers whose first subscription is live.
    pub subscribed: u64,
    /// Events received.
    pub delivered: u64,
    /// Subscriber bytes read and written at the socket.
    pub bytes: u64,
}

fn live_of(shared: &Shared) -> Live {
    let (read, written) = shared.wire.totals();
    Live {
        subscribed: shared.meters.subscribed.load(Ordering::Relaxed),
        delivered: shared.meters.delivered.load(Ordering::Relaxed),
        bytes: read + written,
    }
}

/// All the subscribers of a transport run.
#[derive(Debug)]
pub(crate) enum Fleet {
    /// In this process (`RunOptions::workers` 0: the in-process tests).
    Local(Local),
    /// In worker processes.
    Workers(Workers),
}

impl Fleet {
    /// Starts launching every subscriber of `spec` over `workers` fresh worker processes, or here when
    /// `workers` is 0 on loopback (at least one worker on an emulated network). Fresh processes make the
    /// load generator's memory per subscriber mean the same whatever ran before: a process that held
    /// another transport's subscribers reuses the heap they freed, and its later transports read too
    /// little (32 KB then 0.7 KB per subscriber were seen in one four-transport process). Returns the
    /// fleet and the load generator's resources (this process and its workers) sampled just before the
    /// launch: the baseline of its memory per subscriber.
    pub(crate) async fn start(
        spec: &FleetSpec,
        workers: usize,
        log_dir: &std::path::Path,
    ) -> Result<(Self, Option<ProcSample>), RunError> {
        if workers == 0 && spec.subscriber_side.is_none() {
            let before = sample_processes(&[std::process::id()]);
            let all = 0..spec.scenario.subscribers;
            return Ok((Self::Local(Local::start(spec, all, None)?), before));
        }
        let mut fleet = Workers::spawn(spec, workers.max(1), log_dir).await?;
        let mut pids = vec![std::process::id()];
        pids.extend(fleet.pids());
        let before = sample_processes(&pids);
        fleet.launch().await?;
        Ok((Self::Workers(fleet), before))
    }

    /// The load generator's processes: this one, then the workers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let mut pids = vec![std::process::id()];
        if let Self::Workers(w) = self {
            pids.extend(w.pids());
        }
        pids
    }

    /// A reader of the fleet's [`Live`] counts that outlives a borrow of it (for the progress line and
    /// the idle window).
    pub(crate) fn live_counts(&self) -> LiveCounts {
        match self {
            Self::Local(l) => {
                let shared = l.shared.clone();
                Arc::new(move || live_of(&shared))
            }
            Self::Workers(w) => w.live_counts(),
        }
    }

    /// How old [`Self::live_counts`] may be: workers report theirs every [`worker::LIVE_EVERY`].
    pub(crate) fn live_staleness(&self) -> std::time::Duration {
        match self {
            Self::Local(_) => std::time::Duration::ZERO,
            Self::Workers(_) => worker::LIVE_EVERY,
        }
    }

    /// Subscribers whose first subscription is live.
    pub(crate) fn subscribed(&self) -> u64 {
        match self {
            Self::Local(l) => l.subscribed(),
            Self::Workers(w) => w.subscribed(),
        }
    }

    /// Why the target profile does not fit the server, once a subscriber found out
    /// (`clients::profiled`): the run ends with it.
    pub(crate) fn mismatch(&self) -> Option<String> {
        match self {
            Self::Local(l) => l.mismatch(),
            Self::Workers(w) => w.mismatch(),
        }
    }

    /// Whether a part ended before `finish` (goose gave up, a worker exited).
    pub(crate) fn ended(&self) -> bool {
        match self {
            Self::Local(l) => l.ended(),
            Self::Workers(w) => w.ended(),
        }
    }

    /// Events intended before `unix_ns` are warm-up.
    pub(crate) async fn measure_from(&mut self, unix_ns: u64) -> Result<(), RunError> {
        match self {
            Self::Local(l) => {
                l.measure_from(unix_ns);
                Ok(())
            }
            Self::Workers(w) => w.measure_from(unix_ns).await,
        }
    }

    /// The last event is published.
    pub(crate) async fn drain(&mut self) -> Result<(), RunError> {
        match self {
            Self::Local(l) => {
                l.drain();
                Ok(())
            }
            Self::Workers(w) => w.drain().await,
        }
    }

    /// Stops every subscriber and accounts them against `acks`.
    pub(crate) async fn finish(self, acks: &[(u64, u64)]) -> Result<Tally, RunError> {
        match self {
            Self::Local(l) => l.finish(acks).await,
            Self::Workers(w) => w.finish(acks).await,
        }
    }
}

/// How long `finish` waits for the last subscriber socket to close once goose has returned.
const CLOSE_PATIENCE: Duration = Duration::from_secs(5);

/// Subscribers `range` of a run, held by goose in this process.
#[derive(Debug)]
pub(crate) struct Local {
    shared: Arc<Shared>,
    goose: JoinHandle<Result<GooseMetrics, goose::GooseError>>,
}

impl Local {
    /// Starts goose launching subscribers `range`, their sockets bound to `source` when given.
    pub(crate) fn start(
        spec: &FleetSpec,
        range: Range<u64>,
        source: Option<IpAddr>,
    ) -> Result<Self, RunError> {
        let tls = spec
            .tls
            .as_ref()
            .map(|trust| {
                let client = &spec.scenario.client;
                trust.client(client.http, client.tls_resumption)
            })
            .transpose()
            .map_err(RunError::Tls)?;
        let shared = Arc::new(Shared {
            scenario: spec.scenario.clone(),
            transport: spec.transport,
            nodes: spec
                .nodes
                .iter()
                .map(|&addr| {
                    Endpoint {
                        source,
                        ..Endpoint::new(addr)
                    }
                    .with_tls(tls.as_ref())
                })
                .collect(),
            wire: Arc::new(WireCounters::default()),
            meters: Default::default(),
            draining: CancellationToken::new(),
            stop: CancellationToken::new(),
            logs: Mutex::new(Vec::with_capacity((range.end - range.start) as usize)),
            peer: spec.dialect.map(|kind| Arc::new(kind.profile())),
            profiled: spec.profiled.clone(),
            mismatch: Default::default(),
            h2: Default::default(),
        });
        let attack = goose_attack(&shared, range)?;
        Ok(Self {
            shared,
            goose: tokio::spawn(attack.execute()),
        })
    }

    /// Subscribers whose first subscription is live.
    pub(crate) fn subscribed(&self) -> u64 {
        self.shared.meters.subscribed.load(Ordering::Relaxed)
    }

    /// Its live counts.
    pub(crate) fn live(&self) -> Live {
        live_of(&self.shared)
    }

    /// The profile mismatch a subscriber recorded.
    pub(crate) fn mismatch(&self) -> Option<String> {
        self.shared.mismatch.get().cloned()
    }

    /// Whether goose has returned (before `finish`, that means it failed).
    pub(crate) fn ended(&self) -> bool {
        self.goose.is_finished()
    }

    /// Events intended before `unix_ns` are warm-up: counted, not timed.
    pub(crate) fn measure_from(&self, unix_ns: u64) {
        self.shared
            .meters
            .measure_start_ns
            .store(unix_ns, Ordering::Relaxed);
    }

    /// The last event is published: churn stops.
    pub(crate) fn drain(&self) {
        self.shared.draining.cancel();
    }

    /// Stops every subscriber, waits for goose, and accounts each subscriber against `acks`
    /// (`(id, topic index)` of every acknowledged publish).
    pub(crate) async fn finish(self, acks: &[(u64, u64)]) -> Result<Tally, RunError> {
        self.shared.stop.cancel();
        let metrics = self
            .goose
            .await
            .map_err(|e| RunError::Goose(format!("goose task: {e}")))??;
        // A profile that does not describe the server measured nothing worth a result.
        if let Some(mismatch) = self.shared.mismatch.get() {
            return Err(RunError::ProfileMismatch(mismatch.clone()));
        }
        let scenario = &self.shared.scenario;
        let published = PublishedLog::new(scenario.topic_count() as usize, acks.iter().copied());
        let logs = std::mem::take(&mut *self.shared.logs.lock().unwrap_or_else(|p| p.into_inner()));
        // A finished subscriber's connection may still close a moment later (hyper's aborted driver
        // task owns it), and h2 connections are held for their groups until now: their
        // retransmissions are read as they close.
        self.shared.h2.close_all();
        let (retransmits, still_open) = self
            .shared
            .wire
            .retransmits_once_closed(CLOSE_PATIENCE)
            .await;
        if still_open > 0 {
            eprintln!(
                "pushbench: {still_open} subscriber sockets still open {CLOSE_PATIENCE:?} after the \
                 subscribers stopped: their retransmissions are not counted"
            );
        }
        let mut tally = Tally {
            logs: logs.len() as u64,
            wire: self.shared.wire.totals(),
            retransmits,
            goose: goose_rows(&metrics),
            ..Tally::default()
        };
        for log in &logs {
            tally.completeness.add(&account(log, &published));
            tally.counters.add(&log.counters);
            if log.last_error.is_some() {
                tally.last_error.clone_from(&log.last_error);
            }
        }
        tally.histograms.add(&lock(&self.shared.meters.histograms));
        Ok(tally)
    }
}

/// Builds the goose attack for subscribers `range`: one scenario, one transaction per user (its whole
/// life); user `k` is subscriber `range.start + k`.
///
/// goose runs with one shared client without cookies (no client per user), `--iterations 1` (each user's
/// single transaction is its life; with iterations goose never resets its metrics after the launch, so
/// connection timings are kept, and it refuses an explicit `NoResetMetrics`), and no telnet/web
/// controller.
fn goose_attack(shared: &Arc<Shared>, range: Range<u64>) -> Result<GooseAttack, RunError> {
    let s = &shared.scenario;
    let users = range.end - range.start;
    let life = {
        let shared = shared.clone();
        let first = range.start;
        let function: TransactionFunction = Arc::new(move |user| {
            let shared = shared.clone();
            Box::pin(async move {
                let index = first + user.weighted_users_index as u64;
                crate::clients::run(Subscriber::new(&shared, user, index)).await;
                Ok(())
            })
        });
        Transaction::new(function).set_name("subscriber life")
    };
    let scenario = GooseScenario::new(shared.transport.as_str()).register_transaction(life);
    let hold = s.warmup + s.duration + s.drain + Duration::from_secs(3600);
    // Each part launches at its share of the scenario's rate, so that together they launch at the rate.
    let share = users as f64 / s.subscribers as f64;
    let attack = GooseAttack::initialize_with_config(GooseConfiguration::default())?
        .set_client_builder_without_cookies(
            goose::client::GooseClientBuilder::new()
                .without_cookies()
                .timeout(hold),
        )?
        .register_scenario(scenario)
        .set_default(
            GooseDefault::Host,
            format!("http://{}", shared.nodes[0].host).as_str(),
        )?
        .set_default(GooseDefault::Users, users as usize)?
        .set_default(
            GooseDefault::IncreaseRate,
            (s.launch_rate * share).to_string().as_str(),
        )?
        .set_default(GooseDefault::Iterations, 1)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .set_default(GooseDefault::NoErrorSummary, true)?
        .set_default(GooseDefault::Quiet, 1)?
        .set_default(GooseDefault::Timeout, hold.as_secs().to_string().as_str())?;
    Ok(*attack)
}

fn goose_rows(metrics: &GooseMetrics) -> Vec<GooseRow> {
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
