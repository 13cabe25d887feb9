//! Whole runs over the emulated network (needs root, as CI runs): the round trip measured as asked,
//! latency that cannot beat the one-way delay, nothing lost at 2 % packet loss, nothing left behind,
//! and a clear refusal without the privilege.
//!
//! Each run is its own `pushbench run` process: a run moves its main thread into the server's namespace.
//! Timing assertions are physical lower bounds (a delivery cannot arrive before the emulated one-way
//! delay) with generous upper bounds.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pushbench_common::Transport;
use pushbench_report::result::{Engine, RunResult, TransportResult};

fn out_dir(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("net-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `toml` through the `pushbench` binary with `args`, prefixed by `wrapper` (e.g. to drop
/// privileges), and checks that the run removed its namespaces.
fn pushbench_run(name: &str, toml: &str, wrapper: &[&str], args: &[&str]) -> (Output, PathBuf) {
    let dir = out_dir(name);
    let scenario = dir.join("scenario.toml");
    std::fs::write(&scenario, toml).unwrap();
    let _lock = support::one_run_at_a_time();
    let bin = env!("CARGO_BIN_EXE_pushbench");
    let mut command = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let child = command
        .arg("run")
        .arg(&scenario)
        .args(["--no-progress", "--out"])
        .arg(&dir)
        .arg("--server-bin")
        .arg(support::server_bin())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        namespaces_of(pid),
        Vec::<String>::new(),
        "the run left namespaces"
    );
    (output, dir)
}

fn result_of(output: &Output, dir: &Path) -> RunResult {
    assert!(
        output.status.success(),
        "the run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    pushbench_report::render::json::read(&dir.join("result.json")).unwrap()
}

fn of(result: &RunResult, t: Transport) -> &TransportResult {
    result.transports.iter().find(|r| r.transport == t).unwrap()
}

/// Namespaces named after `pid` (`pb<PID>-…`).
fn namespaces_of(pid: u32) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&format!("pb{pid}-")))
        .map(str::to_owned)
        .collect()
}

const SPARSE: &str = r#"
name = "net-rtt"
transports = ["poll", "longpoll", "sse"]
subscribers = 10
launch_rate = 200
warmup_s = 1
duration_s = 3
drain_s = 1
publish_rate = 4
payload_bytes = 64
[poll]
interval_ms = 100
[network]
rtt_ms = 100
"#;

#[test]
fn a_run_at_100_ms_measures_its_round_trip_and_delivers_no_sooner_than_the_one_way_delay() {
    let (output, dir) = pushbench_run("rtt", SPARSE, &[], &[]);
    let result = result_of(&output, &dir);
    let network = result
        .network
        .as_ref()
        .expect("the result describes its network");
    assert_eq!(network.asked.rtt_ms, 100.0);
    assert!(
        (100.0..116.0).contains(&network.measured_rtt_ms),
        "measured RTT {} ms",
        network.measured_rtt_ms
    );
    assert!(network.link.down_packets > 0 && network.link.up_packets > 0);
    for t in [Transport::Poll, Transport::LongPoll, Transport::Sse] {
        let r = of(&result, t);
        support::assert_exact(r);
        // Events 250 ms apart each travel in a segment of their own, acknowledged.
        let packets = r
            .packets_per_delivery
            .expect("an emulated run counts packets");
        assert!(packets >= 1.0, "{t}: {packets} packets per delivery");
    }
    let per_transport: u64 = result
        .transports
        .iter()
        .map(|r| r.link.unwrap().packets())
        .sum();
    assert!(
        per_transport <= network.link.packets(),
        "the transports' windows overlap"
    );
    // Events 250 ms apart, further apart than a round trip: push and long-poll pay the one-way delay.
    let p50_ms = |t| of(&result, t).latency_us.p50 as f64 / 1000.0;
    for t in [Transport::Sse, Transport::LongPoll] {
        assert!(
            (50.0..100.0).contains(&p50_ms(t)),
            "{t}: p50 {} ms against a one-way delay of 50 ms",
            p50_ms(t)
        );
    }
    // Polling waits for the next poll on top (interval/2 on average).
    assert!(
        p50_ms(Transport::Poll) > p50_ms(Transport::Sse),
        "poll is not faster than SSE"
    );
}

#[test]
fn every_transport_loses_nothing_at_two_percent_packet_loss() {
    let toml = r#"
name = "net-loss"
subscribers = 10
launch_rate = 200
warmup_s = 1
duration_s = 3
drain_s = 2
publish_rate = 10
payload_bytes = 64
[poll]
interval_ms = 100
[network]
rtt_ms = 20
loss_pct = 2
"#;
    let (output, dir) = pushbench_run("loss", toml, &[], &[]);
    let result = result_of(&output, &dir);
    for t in Transport::ALL {
        support::assert_exact(of(&result, t));
    }
    let link = result.network.as_ref().unwrap().link;
    assert!(
        link.up_lost > 0,
        "the link dropped nothing upstream: {link:?}"
    );
    // Some 1,200 requests and handshakes went up (polls every 100 ms, a long-poll per event); at 2 %
    // loss the link dropped some of them, and the subscribers' sockets sent those again.
    let retransmits: Vec<u64> = result
        .transports
        .iter()
        .map(|r| r.retransmits.expect("retransmissions counted"))
        .collect();
    assert!(
        retransmits.iter().sum::<u64>() > 0,
        "no retransmission counted under 2 % loss: {retransmits:?}, link {link:?}"
    );
}

#[test]
fn a_flapping_link_stalls_the_subscribers_but_every_event_arrives() {
    let toml = r#"
name = "net-flap"
transports = ["longpoll", "sse", "ws"]
subscribers = 10
launch_rate = 200
warmup_s = 0.5
duration_s = 3.5
drain_s = 3
publish_rate = 10
payload_bytes = 64
[network]
rtt_ms = 20
[faults]
flap = { every_s = 1.5, down_s = 0.5 }
"#;
    let (output, dir) = pushbench_run("flap", toml, &[], &[]);
    let result = result_of(&output, &dir);
    for t in [Transport::LongPoll, Transport::Sse, Transport::Ws] {
        let r = of(&result, t);
        support::assert_exact(r);
        let cuts: Vec<&str> = r.faults.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(cuts, ["link down", "link down"], "{t}: {:?}", r.faults);
        let link = r.link.unwrap();
        assert!(
            link.down_cut + link.up_cut > 0,
            "{t}: the cuts dropped nothing: {link:?}"
        );
    }
}

#[test]
fn without_the_privilege_a_network_is_refused_naming_what_is_missing() {
    // Root without any capability, as an unprivileged user would be.
    let no_caps = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"];
    let (output, _) = pushbench_run("refused", SPARSE, &no_caps, &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs root (CAP_NET_ADMIN"), "{stderr}");
    assert!(stderr.contains("--network loopback"), "{stderr}");
}

#[test]
fn netem_where_the_kernel_lacks_it_is_refused_naming_what_is_missing_and_auto_records_its_engine() {
    let toml = r#"
name = "net-engine"
transports = ["sse"]
subscribers = 2
launch_rate = 100
duration_s = 1
drain_s = 1
publish_rate = 4
payload_bytes = 64
[network]
rtt_ms = 20
"#;
    let (netem, dir) = pushbench_run("netem", toml, &[], &["--emulator", "netem"]);
    // This machine's kernel and CI's have no netem; on one that has it the netem engine must run.
    let kernel_has_netem = netem.status.success();
    if kernel_has_netem {
        let engine = result_of(&netem, &dir).network.unwrap().engine;
        assert_eq!(engine, Engine::Netem);
    } else {
        let stderr = String::from_utf8_lossy(&netem.stderr);
        assert_eq!(netem.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("no netem qdisc"), "{stderr}");
        assert!(stderr.contains("CONFIG_NET_SCH_NETEM"), "{stderr}");
        assert!(stderr.contains("--emulator tun"), "{stderr}");
    }
    let (auto, dir) = pushbench_run("auto", toml, &[], &[]);
    let result = result_of(&auto, &dir);
    support::assert_exact(of(&result, Transport::Sse));
    let network = result.network.unwrap();
    let expected = if kernel_has_netem {
        Engine::Netem
    } else {
        Engine::Tun
    };
    assert_eq!(network.engine, expected, "auto chose by the kernel");
    assert!(network.link.packets() > 0, "{:?}", network.link);
}

#[test]
fn a_matrix_runs_each_network_in_its_own_process_and_writes_one_page() {
    let dir = out_dir("matrix");
    let scenario = dir.join("m.toml");
    std::fs::write(
        &scenario,
        "name = \"net-matrix\"\ntransports = [\"sse\"]\nsubscribers = 5\nlaunch_rate = 100\nduration_s = 1\ndrain_s = 1\npublish_rate = 4\npayload_bytes = 64\n",
    )
    .unwrap();
    let _lock = support::one_run_at_a_time();
    let output = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .arg("matrix")
        .arg(&scenario)
        .args(["--vary", "rtt_ms=0,60", "--no-progress", "--out"])
        .arg(&dir)
        .arg("--server-bin")
        .arg(support::server_bin())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let md = std::fs::read_to_string(dir.join("matrix.md")).unwrap();
    assert!(md.contains("| rtt_ms=60 |"), "{md}");
    let rows: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("matrix.json")).unwrap()).unwrap();
    let p50 = |row: usize| {
        rows[row]["transports"][0]["latency_p50_ms"]
            .as_f64()
            .unwrap()
    };
    assert!(
        p50(1) >= 30.0,
        "60 ms of RTT is 30 ms one way: p50 {}",
        p50(1)
    );
    assert!(p50(1) > p50(0), "the longer round trip is slower");
    assert!(dir.join("rtt_ms-60/result.json").exists());
    assert!(
        std::fs::read_to_string(dir.join("matrix.html"))
            .unwrap()
            .contains("<polyline")
    );
}

#[test]
fn the_demo_serves_its_page_across_the_link_to_a_local_address_and_leaves_nothing_behind() {
    use std::io::{BufRead, BufReader, Read, Write};
    let _lock = support::one_run_at_a_time();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["demo", "--network", "wifi", "--port", "0", "--server-bin"])
        .arg(support::server_bin())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(demo.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    assert!(addr.starts_with("127.0.0.1:"), "{first}");

    let started = std::time::Instant::now();
    let mut browser = std::net::TcpStream::connect(addr).unwrap();
    browser
        .write_all(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    browser.read_to_string(&mut page).unwrap();
    let took = started.elapsed();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("one feed, five transports"), "{page}");
    // The relay's connection across the link pays wifi's 20 ms round trip at least once.
    assert!(took >= std::time::Duration::from_millis(20), "{took:?}");

    let pid = demo.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let output = demo.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        namespaces_of(pid),
        Vec::<String>::new(),
        "the demo left namespaces"
    );
}
