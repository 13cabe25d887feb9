//! How many packets per second the network emulator forwards: one bulk TCP transfer from the subscriber
//! side to the server side through an unshaped link (no delay, loss or rate limit) for a few seconds,
//! counted by the link itself. Needs root. `cargo run --release -p pushbench --example emulator_rate [SECONDS]`
//!
//! The figure bounds what a run can ask of the link: a run whose subscribers exchange more packets per
//! second than this measures the emulator, and its CPU shows as the load generator's.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pushbench::network::Conditions;
use pushbench::network::emulator::{Link, SERVER_ADDR};

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map_or(5, |s| s.parse().expect("SECONDS is a whole number"));
    let unshaped = Conditions {
        rtt: Duration::ZERO,
        jitter: Duration::ZERO,
        loss_pct: 0.0,
        down_kbit: 0,
        up_kbit: 0,
    };
    let link = Link::start(unshaped, 1).expect("the link starts (run as root)");
    let listener = link
        .server
        .run_inside(|| TcpListener::bind((SERVER_ADDR, 0)).expect("bind"))
        .expect("server side");
    let addr = listener.local_addr().expect("address");
    let sink = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut buffer = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        while let Ok(n @ 1..) = stream.read(&mut buffer) {
            total += n as u64;
        }
        total
    });
    let mut stream = link
        .subscribers
        .run_inside(move || TcpStream::connect(addr).expect("connect"))
        .expect("subscriber side");
    let chunk = vec![0x5au8; 64 * 1024];
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    while started.elapsed() < Duration::from_secs(seconds) {
        stream.write_all(&chunk).expect("write");
    }
    drop(stream);
    let bytes = sink.join().expect("sink");
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let up = link.stats.up.packets_out.load(Ordering::Relaxed);
    let down = link.stats.down.packets_out.load(Ordering::Relaxed);
    println!(
        "{:.0} packets/s through the link ({up} data-side, {down} ack-side in {elapsed:.1} s), {:.0} Mbit/s of payload, {:.0} % of one core for this process (emulator threads and the sender)",
        (up + down) as f64 / elapsed,
        bytes as f64 * 8.0 / elapsed / 1e6,
        cpu / elapsed * 100.0
    );
}

/// This process's user + system CPU time, seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat has a name")
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}
