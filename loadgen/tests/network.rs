//! The emulated network, end to end (needs root, as CI runs): namespaces and devices made and removed,
//! a TCP connection across the link paying the round trip, and data crossing a lossy link intact.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use pushbench::network::Conditions;
use pushbench::network::emulator::{FIRST_SUBSCRIBER_ADDR, Link, SERVER_ADDR};
use pushbench::network::namespace::ip;

fn conditions(rtt_ms: u64, loss_pct: f64) -> Conditions {
    Conditions {
        rtt: Duration::from_millis(rtt_ms),
        jitter: Duration::ZERO,
        loss_pct,
        down_kbit: 0,
        up_kbit: 0,
    }
}

fn namespaces() -> String {
    let output = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An echo server in the server namespace; returns its address.
fn echo_server(link: &Link) -> SocketAddr {
    let listener = link
        .server
        .run_inside(|| TcpListener::bind((SERVER_ADDR, 0)).unwrap())
        .unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = stream.read(&mut buffer) {
                    if stream.write_all(&buffer[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_connection_across_the_link_pays_the_round_trip_and_the_link_is_removed_after() {
    let link = Link::start(conditions(100, 0.0), 2).unwrap();
    let names = namespaces();
    assert!(
        names.contains(link.server.name()) && names.contains(link.subscribers.name()),
        "{names}"
    );
    let (server_ns, subscriber_ns) = (
        link.server.name().to_owned(),
        link.subscribers.name().to_owned(),
    );
    let server = echo_server(&link);
    let (mut stream, connect) = link
        .subscribers
        .run_inside(move || {
            let started = Instant::now();
            let stream = TcpStream::connect_timeout(&server, Duration::from_secs(10)).unwrap();
            (stream, started.elapsed())
        })
        .unwrap();
    // A lower bound only: the SYN and the SYN-ACK each cross the one-way delay.
    assert!(
        connect >= Duration::from_millis(100),
        "connected in {connect:?}"
    );
    assert_eq!(stream.local_addr().unwrap().ip(), FIRST_SUBSCRIBER_ADDR);
    stream.write_all(b"ping").unwrap();
    let mut answer = [0u8; 4];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"ping");
    let stats = &link.stats;
    assert!(
        stats
            .up
            .packets_out
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 3
    );
    assert!(
        stats
            .down
            .packets_out
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
    drop(stream);
    drop(link);
    let names = namespaces();
    assert!(
        !names.contains(&server_ns) && !names.contains(&subscriber_ns),
        "left: {names}"
    );
}

#[test]
fn data_crosses_a_lossy_link_intact_and_the_losses_are_counted() {
    let link = Link::start(conditions(10, 2.0), 1).unwrap();
    let server = echo_server(&link);
    let mut stream = link
        .subscribers
        .run_inside(move || TcpStream::connect_timeout(&server, Duration::from_secs(10)).unwrap())
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let sent: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut writer = stream.try_clone().unwrap();
    let to_send = sent.clone();
    let writing = std::thread::spawn(move || writer.write_all(&to_send).unwrap());
    let mut received = vec![0u8; sent.len()];
    stream.read_exact(&mut received).unwrap();
    writing.join().unwrap();
    assert!(received == sent, "the echo differs");
    let lost = link
        .stats
        .down
        .dropped_lost
        .load(std::sync::atomic::Ordering::Relaxed)
        + link
            .stats
            .up
            .dropped_lost
            .load(std::sync::atomic::Ordering::Relaxed);
    assert!(lost > 0, "2 % of some 3,000 packets were dropped");
}

#[test]
fn namespaces_left_by_a_dead_run_are_removed_by_the_next() {
    // A PID that no process has: the highest, unless it happens to run.
    let dead = (4_000_000..4_194_304u32)
        .rev()
        .find(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        .unwrap();
    let stale = format!("pb{dead}-srv");
    ip(&["netns", "add", &stale]).unwrap();
    assert!(namespaces().contains(&stale));
    let link = Link::start(conditions(0, 0.0), 1).unwrap();
    assert!(!namespaces().contains(&stale), "{}", namespaces());
    drop(link);
}
