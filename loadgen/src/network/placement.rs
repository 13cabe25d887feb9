//! Where each side of an emulated run stands: [`Emulated::start`] creates the link, moves the calling
//! thread — and so the runtime built after it, the publisher, and every process the run starts (our
//! server and nodes, Redis, peers) — into the server side, and measures the round trip the subscribers'
//! side actually has. The subscribers are worker processes started inside the subscriber side
//! ([`SubscriberSide`]); an application back end publishing to its push server is not on the mobile
//! network, so latency is the subscribers' network alone.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use pushbench_report::result::{AskedNetwork, Engine, LinkCounts, NetworkResult};

use super::emulator::{EmulatorError, Link, SERVER_ADDR};
use super::namespace::Namespace;
use super::netem::NetemLink;
use super::{Conditions, EmulatorChoice, NetworkSpec};

/// Handshakes timed to measure the round trip; the median is kept, so a lost SYN does not count.
const RTT_PROBES: usize = 15;
/// Longest one probe may take (a SYN lost twice at 2 % loss still fits).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the fleet needs to place its workers on the subscriber side.
#[derive(Debug, Clone)]
pub struct SubscriberSide {
    /// The namespace's name ([`super::namespace::command_inside`] starts a worker there).
    pub namespace: String,
    /// Source addresses there, one per worker (each has its own ephemeral ports).
    pub sources: Vec<IpAddr>,
}

/// The emulated network of a command: the link, the server side entered, the measured round trip.
pub struct Emulated {
    spec: NetworkSpec,
    link: EngineLink,
    measured_rtt: Duration,
}

/// The link of whichever engine applies the conditions.
enum EngineLink {
    Tun(Link),
    Netem(NetemLink),
}

impl EngineLink {
    /// The engine `choice` names; `auto` tries netem, and takes the TUN forwarder when the kernel has
    /// none.
    fn start(
        choice: EmulatorChoice,
        conditions: Conditions,
        sources: usize,
    ) -> Result<Self, EmulatorError> {
        match choice {
            EmulatorChoice::Tun => Ok(Self::Tun(Link::start(conditions, sources)?)),
            EmulatorChoice::Netem => Ok(Self::Netem(NetemLink::start(conditions, sources)?)),
            EmulatorChoice::Auto => match NetemLink::start(conditions, sources) {
                Ok(link) => Ok(Self::Netem(link)),
                Err(EmulatorError::NoNetem(_)) => {
                    eprintln!(
                        "pushbench: this kernel has no netem qdisc: the TUN forwarder emulates the network"
                    );
                    Ok(Self::Tun(Link::start(conditions, sources)?))
                }
                Err(e) => Err(e),
            },
        }
    }

    fn engine(&self) -> Engine {
        match self {
            Self::Tun(_) => Engine::Tun,
            Self::Netem(_) => Engine::Netem,
        }
    }

    fn server(&self) -> &Namespace {
        match self {
            Self::Tun(l) => &l.server,
            Self::Netem(l) => &l.server,
        }
    }

    fn subscribers(&self) -> &Namespace {
        match self {
            Self::Tun(l) => &l.subscribers,
            Self::Netem(l) => &l.subscribers,
        }
    }

    fn subscriber_addrs(&self) -> &[Ipv4Addr] {
        match self {
            Self::Tun(l) => &l.subscriber_addrs,
            Self::Netem(l) => &l.subscriber_addrs,
        }
    }

    fn set_cut(&self, cut: bool) {
        match self {
            Self::Tun(l) => l.set_cut(cut),
            Self::Netem(l) => l.set_cut(cut),
        }
    }

    fn counts(&self) -> LinkCounts {
        match self {
            Self::Tun(l) => l.counts(),
            Self::Netem(l) => l.counts(),
        }
    }
}

impl std::fmt::Debug for Emulated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulated")
            .field("spec", &self.spec)
            .field("measured_rtt", &self.measured_rtt)
            .finish_non_exhaustive()
    }
}

/// Why the emulated network could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// The link could not be made.
    #[error(transparent)]
    Link(#[from] EmulatorError),
    /// The round trip could not be probed.
    #[error("probing the emulated round trip: {0}")]
    Probe(String),
}

impl Emulated {
    /// Starts the link for `spec` with `sources` subscriber-side addresses on the engine `emulator`
    /// chooses, enters the server side on
    /// the calling thread and measures the round trip. Call it before building the runtime: threads
    /// and processes started afterwards from this thread stand on the server side.
    ///
    /// # Panics
    /// When `spec` is loopback (nothing to emulate): callers check [`NetworkSpec::is_loopback`].
    pub fn start(
        spec: &NetworkSpec,
        sources: usize,
        emulator: EmulatorChoice,
    ) -> Result<Self, PlacementError> {
        let conditions = spec.conditions.expect("an emulated network has conditions");
        let link = EngineLink::start(emulator, conditions, sources)?;
        link.server().enter().map_err(EmulatorError::from)?;
        // Spaced so that no packet of one probe (its FIN) is still on the path when the next starts:
        // packets keep their order, so a late one would delay the next SYN.
        let spacing = conditions.rtt + conditions.jitter * 4 + Duration::from_millis(5);
        let measured_rtt = probe_rtt(&link, spacing)?;
        Ok(Self {
            spec: spec.clone(),
            link,
            measured_rtt,
        })
    }

    /// The address our server and the peers listen on, reachable from both sides.
    pub fn server_host(&self) -> IpAddr {
        IpAddr::V4(SERVER_ADDR)
    }

    /// The subscriber side, for the fleet's workers.
    pub fn subscriber_side(&self) -> SubscriberSide {
        SubscriberSide {
            namespace: self.link.subscribers().name().to_owned(),
            sources: self
                .link
                .subscriber_addrs()
                .iter()
                .map(|&a| IpAddr::V4(a))
                .collect(),
        }
    }

    /// A TCP connection to `to` from the subscriber side, across the link (blocks for its handshake):
    /// the socket belongs there, wherever the caller stands.
    pub fn connect_from_subscribers(&self, to: SocketAddr) -> std::io::Result<TcpStream> {
        self.link
            .subscribers()
            .run_inside(move || TcpStream::connect(to))
            .map_err(std::io::Error::other)?
    }

    /// Cuts the link (every packet both ways dropped) or mends it: the flap fault.
    pub fn set_cut(&self, cut: bool) {
        self.link.set_cut(cut);
    }

    /// What `result.json` says of the network: asked, measured, and the link's counters so far.
    pub fn result(&self) -> NetworkResult {
        let c = self
            .spec
            .conditions
            .expect("an emulated network has conditions");
        NetworkResult {
            profile: self.spec.profile.clone(),
            asked: AskedNetwork {
                rtt_ms: c.rtt.as_secs_f64() * 1000.0,
                jitter_ms: c.jitter.as_secs_f64() * 1000.0,
                loss_pct: c.loss_pct,
                down_kbit: c.down_kbit,
                up_kbit: c.up_kbit,
            },
            measured_rtt_ms: self.measured_rtt.as_secs_f64() * 1000.0,
            link: self.link.counts(),
            engine: self.link.engine(),
        }
    }
}

/// Median time of a TCP handshake from the subscriber side to a listener on the server side: one round
/// trip through the emulator (connect returns on the SYN-ACK; the kernel answers without an accept),
/// `spacing` apart.
fn probe_rtt(link: &EngineLink, spacing: Duration) -> Result<Duration, PlacementError> {
    let listener =
        TcpListener::bind((SERVER_ADDR, 0)).map_err(|e| PlacementError::Probe(e.to_string()))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| PlacementError::Probe(e.to_string()))?;
    let mut times = link
        .subscribers()
        .run_inside(move || -> Result<Vec<Duration>, String> {
            let mut times = Vec::with_capacity(RTT_PROBES);
            for _ in 0..RTT_PROBES {
                let started = Instant::now();
                let stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
                    .map_err(|e| format!("connecting to {addr}: {e}"))?;
                times.push(started.elapsed());
                drop(stream);
                std::thread::sleep(spacing);
            }
            Ok(times)
        })
        .map_err(EmulatorError::from)?
        .map_err(PlacementError::Probe)?;
    drop(listener);
    times.sort();
    Ok(times[times.len() / 2])
}
