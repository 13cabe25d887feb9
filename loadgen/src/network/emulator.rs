//! The packet-level link between the two namespaces: a TUN device in each, and for each direction a
//! thread that reads every IP packet from one device and a thread that writes it to the other once
//! the conditions say it has crossed.
//!
//! Per packet, in each direction: dropped with probability `loss_pct`; otherwise it waits for the link
//! (at `*_kbit`, one packet after another: serialization delay and queueing, as a bottleneck link
//! does), then travels the one-way delay ± a uniform jitter, never overtaking the packet before it (real
//! paths rarely reorder, and TCP reads reordering as loss). A packet that would wait in the queue longer
//! than `MAX_QUEUE` is dropped, like a router's tail drop. Counters say how many packets went through
//! and how many were dropped, so a run can check that the link carried what it measured.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pushbench_report::result::LinkCounts;
use rand::Rng;

use super::Conditions;
use super::namespace::{Namespace, NamespaceError, ip};

/// The server side's address.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The first subscriber-side address; more follow (198.18.1.2, ...), each with its own ephemeral ports.
pub const FIRST_SUBSCRIBER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The server side's network, routed from the subscriber side.
const SERVER_NET: &str = "198.18.0.0/24";
/// The subscriber side's network, routed from the server side.
const SUBSCRIBER_NET: &str = "198.18.1.0/24";
/// Most subscriber-side addresses one link gives.
pub const MAX_SUBSCRIBER_ADDRS: usize = 250;
/// The TUN device's name in both namespaces.
const DEVICE: &str = "pbtun";
/// Longest a packet may queue for a rate-limited link before it is dropped.
const MAX_QUEUE: Duration = Duration::from_millis(200);
/// How often the threads look whether the link is being taken down.
const POLL: Duration = Duration::from_millis(50);
/// Largest packet read (the devices' MTU is the default 1,500).
const MAX_PACKET: usize = 65_536;

/// Why the link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// A namespace or address could not be made.
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    /// The TUN device could not be created.
    #[error("creating the TUN device in {namespace}: {reason}")]
    Tun {
        /// Where.
        namespace: String,
        /// The error.
        reason: String,
    },
    /// Too many subscriber addresses asked for.
    #[error("at most {MAX_SUBSCRIBER_ADDRS} subscriber addresses, asked for {0}")]
    TooManyAddresses(usize),
    /// `--emulator netem` on a kernel without the netem qdisc.
    #[error(
        "--emulator netem: this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is off and no sch_netem module is loaded); `tc qdisc add … netem` in the run's namespace said {0:?}. Use --emulator tun (or auto, which then chooses tun)"
    )]
    NoNetem(String),
    /// `tc` failed otherwise.
    #[error("`tc {args}` in {namespace}: {reason}")]
    Tc {
        /// Where.
        namespace: String,
        /// The arguments.
        args: String,
        /// What it printed, or why it could not run.
        reason: String,
    },
}

/// Packets through one direction of the link.
#[derive(Debug, Default)]
pub struct DirectionStats {
    /// Read from the sending side.
    pub packets_in: AtomicU64,
    /// Written to the receiving side.
    pub packets_out: AtomicU64,
    /// Dropped as lost (the loss rate).
    pub dropped_lost: AtomicU64,
    /// Dropped because the rate-limited queue was full.
    pub dropped_queue: AtomicU64,
    /// Dropped while the link was cut.
    pub dropped_cut: AtomicU64,
}

/// Counters of both directions.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Server to subscribers.
    pub down: DirectionStats,
    /// Subscribers to server.
    pub up: DirectionStats,
}

/// The emulated link and its two namespaces; dropping it stops the forwarder and removes both.
pub struct Link {
    /// Where the server (and its cluster, Redis and peers) runs.
    pub server: Namespace,
    /// Where the subscribers run.
    pub subscribers: Namespace,
    /// Addresses on the subscriber side.
    pub subscriber_addrs: Vec<Ipv4Addr>,
    /// Packet counters.
    pub stats: Arc<LinkStats>,
    /// While set, every packet both ways is dropped ([`Link::set_cut`]).
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Link {
    /// Creates the namespaces, their devices and addresses, and starts forwarding under `conditions`.
    pub fn start(conditions: Conditions, subscriber_addrs: usize) -> Result<Self, EmulatorError> {
        let Sides {
            server,
            subscribers,
            subscriber_addrs,
        } = Sides::create(subscriber_addrs)?;
        let server_tun = tun_in(&server)?;
        let subscriber_tun = tun_in(&subscribers)?;
        address(&server, &subscribers, DEVICE, &subscriber_addrs)?;

        let stats = Arc::new(LinkStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicBool::new(false));
        let (server_tun, subscriber_tun) = (Arc::new(server_tun), Arc::new(subscriber_tun));
        let mut threads = Vec::new();
        for (from, to, kbit, direction) in [
            (
                &server_tun,
                &subscriber_tun,
                conditions.down_kbit,
                Direction::Down,
            ),
            (
                &subscriber_tun,
                &server_tun,
                conditions.up_kbit,
                Direction::Up,
            ),
        ] {
            let (sender, receiver) = mpsc::channel();
            let shaping = Shaping::new(conditions, kbit);
            let (from, stats_r, stop_r, cut_r) =
                (from.clone(), stats.clone(), stop.clone(), cut.clone());
            threads.push(std::thread::spawn(move || {
                let switches = (&*stop_r, &*cut_r);
                read_side(&from, shaping, &sender, direction.of(&stats_r), switches)
            }));
            let (to, stats_w, stop_w) = (to.clone(), stats.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                write_side(&to, &receiver, direction.of(&stats_w), &stop_w)
            }));
        }
        Ok(Self {
            server,
            subscribers,
            subscriber_addrs,
            stats,
            cut,
            stop,
            threads,
        })
    }

    /// What both directions forwarded and dropped so far.
    pub fn counts(&self) -> LinkCounts {
        let (down, up) = (&self.stats.down, &self.stats.up);
        let read = |n: &AtomicU64| n.load(Ordering::Relaxed);
        LinkCounts {
            down_packets: read(&down.packets_out),
            down_lost: read(&down.dropped_lost),
            down_queue_drops: read(&down.dropped_queue),
            up_packets: read(&up.packets_out),
            up_lost: read(&up.dropped_lost),
            up_queue_drops: read(&up.dropped_queue),
            down_cut: read(&down.dropped_cut),
            up_cut: read(&up.dropped_cut),
        }
    }

    /// Cuts the link or mends it. A cut drops every packet as it is read, as a link gone down does;
    /// packets already on their way still arrive.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        // The namespaces are removed as their fields drop, after the devices' last users are gone.
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Down,
    Up,
}

impl Direction {
    fn of(self, stats: &LinkStats) -> &DirectionStats {
        match self {
            Self::Down => &stats.down,
            Self::Up => &stats.up,
        }
    }
}

fn tun_in(namespace: &Namespace) -> Result<tun::Device, EmulatorError> {
    let failed = |reason: String| EmulatorError::Tun {
        namespace: namespace.name().to_owned(),
        reason,
    };
    namespace
        .run_inside(|| {
            let mut config = tun::Configuration::default();
            config.tun_name(DEVICE);
            tun::create(&config).map_err(|e| e.to_string())
        })?
        .map_err(failed)
}

/// The two namespaces of a link and the subscriber side's addresses, whichever engine joins them.
pub(super) struct Sides {
    pub(super) server: Namespace,
    pub(super) subscribers: Namespace,
    pub(super) subscriber_addrs: Vec<Ipv4Addr>,
}

impl Sides {
    /// Both namespaces, and `subscriber_addrs` addresses (at least one) for the subscriber side.
    pub(super) fn create(subscriber_addrs: usize) -> Result<Self, EmulatorError> {
        if subscriber_addrs > MAX_SUBSCRIBER_ADDRS {
            return Err(EmulatorError::TooManyAddresses(subscriber_addrs));
        }
        Ok(Self {
            server: Namespace::create("srv")?,
            subscribers: Namespace::create("sub")?,
            subscriber_addrs: (0..subscriber_addrs.max(1) as u32)
                .map(|i| Ipv4Addr::from(u32::from(FIRST_SUBSCRIBER_ADDR) + i))
                .collect(),
        })
    }
}

/// Addresses and routes on `device`, the engine's end in each namespace: the server's address on its
/// side, the subscribers' on theirs, each side's network routed through it.
pub(super) fn address(
    server: &Namespace,
    subscribers: &Namespace,
    device: &str,
    subscriber_addrs: &[Ipv4Addr],
) -> Result<(), NamespaceError> {
    configure(server, device, &[SERVER_ADDR], SUBSCRIBER_NET)?;
    configure(subscribers, device, subscriber_addrs, SERVER_NET)
}

/// Gives `device` `addrs`, brings it up and routes `peer_net` through it.
fn configure(
    namespace: &Namespace,
    device: &str,
    addrs: &[Ipv4Addr],
    peer_net: &str,
) -> Result<(), NamespaceError> {
    let ns = namespace.name();
    for addr in addrs {
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/32"),
            "dev",
            device,
        ])?;
    }
    ip(&["-n", ns, "link", "set", device, "up"])?;
    ip(&["-n", ns, "route", "add", peer_net, "dev", device])
}

/// When each packet of one direction arrives at the far end.
struct Shaping {
    one_way: Duration,
    jitter: Duration,
    loss: f64,
    /// Nanoseconds one byte occupies the link; 0 = unlimited.
    ns_per_byte: u64,
    /// When the link has finished sending the packets before.
    link_free: Instant,
    /// When the previous packet arrives: none may overtake it.
    last_arrival: Instant,
}

impl Shaping {
    fn new(conditions: Conditions, kbit: u64) -> Self {
        let now = Instant::now();
        Self {
            one_way: conditions.one_way(),
            jitter: conditions.jitter,
            loss: conditions.loss_pct / 100.0,
            ns_per_byte: 8_000_000u64.checked_div(kbit).unwrap_or(0),
            link_free: now,
            last_arrival: now,
        }
    }

    /// When a packet of `len` bytes read at `now` arrives, or why it never does.
    fn arrival(
        &mut self,
        now: Instant,
        len: usize,
        rng: &mut impl Rng,
    ) -> Result<Instant, Dropped> {
        if self.loss > 0.0 && rng.random_bool(self.loss) {
            return Err(Dropped::Lost);
        }
        let start = self.link_free.max(now);
        if start - now > MAX_QUEUE {
            return Err(Dropped::QueueFull);
        }
        self.link_free = start + Duration::from_nanos(self.ns_per_byte * len as u64);
        let jitter = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            self.jitter.mul_f64(rng.random_range(0.0..2.0))
        };
        // One-way ± jitter, as (one-way - jitter) + [0, 2 × jitter).
        let travel = self.one_way.saturating_sub(self.jitter) + jitter;
        let arrival = (self.link_free + travel).max(self.last_arrival);
        self.last_arrival = arrival;
        Ok(arrival)
    }
}

#[derive(Debug, PartialEq)]
enum Dropped {
    Lost,
    QueueFull,
}

fn read_side(
    from: &tun::Device,
    mut shaping: Shaping,
    to_writer: &mpsc::Sender<(Instant, Vec<u8>)>,
    stats: &DirectionStats,
    (stop, cut): (&AtomicBool, &AtomicBool),
) {
    let mut rng = rand::rng();
    let mut buffer = vec![0u8; MAX_PACKET];
    while !stop.load(Ordering::Relaxed) {
        let len = match from.recv_timeout(&mut buffer, POLL) {
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => return,
        };
        stats.packets_in.fetch_add(1, Ordering::Relaxed);
        if cut.load(Ordering::Relaxed) {
            stats.dropped_cut.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match shaping.arrival(Instant::now(), len, &mut rng) {
            Ok(at) => {
                if to_writer.send((at, buffer[..len].to_vec())).is_err() {
                    return;
                }
            }
            Err(Dropped::Lost) => {
                stats.dropped_lost.fetch_add(1, Ordering::Relaxed);
            }
            Err(Dropped::QueueFull) => {
                stats.dropped_queue.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn write_side(
    to: &tun::Device,
    from_reader: &mpsc::Receiver<(Instant, Vec<u8>)>,
    stats: &DirectionStats,
    stop: &AtomicBool,
) {
    // Arrival times only increase, so a queue would do; the heap keeps that true whatever `arrival` does.
    let mut due: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>> = BinaryHeap::new();
    let mut sequence = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while due.peek().is_some_and(|Reverse((at, ..))| *at <= now) {
            let Reverse((_, _, packet)) = due.pop().expect("peeked");
            if to.send(&packet).is_ok() {
                stats.packets_out.fetch_add(1, Ordering::Relaxed);
            }
        }
        let wait = due.peek().map_or(POLL, |Reverse((at, ..))| {
            at.saturating_duration_since(now).min(POLL)
        });
        match from_reader.recv_timeout(wait) {
            Ok((at, packet)) => {
                due.push(Reverse((at, sequence, packet)));
                sequence += 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn conditions(rtt_ms: u64, jitter_ms: u64, loss_pct: f64) -> Conditions {
        Conditions {
            rtt: Duration::from_millis(rtt_ms),
            jitter: Duration::from_millis(jitter_ms),
            loss_pct,
            down_kbit: 0,
            up_kbit: 0,
        }
    }

    #[test]
    fn packets_arrive_after_the_one_way_delay_in_order_and_within_the_jitter() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut shaping = Shaping::new(conditions(100, 10, 0.0), 0);
        let start = Instant::now();
        let mut last = start;
        for i in 0..1000 {
            let now = start + Duration::from_micros(i * 100);
            let at = shaping.arrival(now, 100, &mut rng).unwrap();
            assert!(at >= last, "reordered");
            assert!(
                at >= now + Duration::from_millis(40),
                "faster than one-way - jitter"
            );
            assert!(
                at <= now + Duration::from_millis(60) || at == last,
                "slower than one-way + jitter"
            );
            last = at;
        }
    }

    #[test]
    fn the_rate_spaces_packets_by_their_size_and_a_full_queue_drops() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // 8,000 kbit/s: a 1,000-byte packet takes 1 ms on the link.
        let mut shaping = Shaping::new(
            Conditions {
                down_kbit: 8_000,
                ..conditions(0, 0, 0.0)
            },
            8_000,
        );
        let now = Instant::now();
        let first = shaping.arrival(now, 1000, &mut rng).unwrap();
        let second = shaping.arrival(now, 1000, &mut rng).unwrap();
        assert_eq!(second - first, Duration::from_millis(1));
        // 200 ms of queue fill: the next one is dropped.
        for _ in 0..199 {
            shaping.arrival(now, 1000, &mut rng).unwrap();
        }
        assert_eq!(
            shaping.arrival(now, 1000, &mut rng),
            Err(Dropped::QueueFull)
        );
    }

    #[test]
    fn loss_drops_about_the_share_asked() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut shaping = Shaping::new(conditions(10, 0, 2.0), 0);
        let now = Instant::now();
        let lost = (0..100_000)
            .filter(|_| shaping.arrival(now, 100, &mut rng) == Err(Dropped::Lost))
            .count();
        // 2 % of 100,000 is 2,000; a seeded generator makes this exact run repeatable.
        assert!((1_800..2_200).contains(&lost), "{lost}");
    }
}
