//! End-to-end runs against the real `pushbench-server` binary on loopback.
//!
//! Runs are serialized, across test processes too (nextest runs each test in its own process), through a
//! lock file, so that their timing figures are not disturbed by each other on a small machine; every
//! timing assertion is a ratio or an ordering with a wide margin. One quick run serves several checks.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use pushbench::run::{RunOptions, ServerSource};
use pushbench::scenario::Scenario;
use pushbench_common::Transport;
use pushbench_report::result::RunResult;

fn out_dir(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `toml` (a scenario) and writes its outputs; returns the result and the output directory.
fn run_scenario(toml: &str) -> (RunResult, PathBuf) {
    run_spread(toml, 1, 1)
}

/// Runs `toml` with its subscribers over `workers` load-generator processes and `cluster` server nodes.
fn run_spread(toml: &str, workers: usize, cluster: usize) -> (RunResult, PathBuf) {
    let scenario = Scenario::parse(toml, "test scenario").expect("test scenario is valid");
    let dir = out_dir(&scenario.name);
    let options = RunOptions {
        server: ServerSource::Spawn(support::server_bin()),
        out_dir: dir.clone(),
        progress: false,
        workers,
        cluster,
        network: None,
    };
    let result = support::run_here(scenario, &options).expect("run succeeds");
    pushbench_report::render::write_all(&result, &dir).expect("outputs are written");
    (result, dir)
}

/// A quick.toml-like broadcast over all five transports: 4 events/s per subscriber, 10 polls/s.
const QUICK: &str = r#"
name = "e2e-quick"
subscribers = 50
launch_rate = 1000
warmup_s = 0.5
duration_s = 4
drain_s = 1
publish_rate = 4
payload_bytes = 64
[fanout]
mode = "broadcast"
[poll]
interval_ms = 100
"#;

/// Multicast with churn: half of the subscribers reconnect every second.
const CHURN_ACROSS: &str = r#"
name = "e2e-spread"
subscribers = 45
launch_rate = 1000
warmup_s = 0.5
duration_s = 3
drain_s = 1
publish_rate = 12
payload_bytes = 64
[fanout]
mode = "multicast"
topics = 4
topics_per_subscriber = 2
[poll]
interval_ms = 100
[churn]
every_s = 1
share = 0.5
"#;

/// Three load-generator processes, two server nodes on a Redis bus, churn: every reconnect goes to the
/// other node and resumes there from its cursor. Nothing is lost or repeated, the workers' tallies add
/// up to every subscriber, and both nodes delivered.
#[test]
fn workers_and_a_cluster_lose_nothing_when_subscribers_change_node() {
    let (result, dir) = run_spread(CHURN_ACROSS, 3, 2);
    assert_every_transport_exact(&result);
    for r in &result.transports {
        let t = r.transport;
        assert_eq!(r.loadgen_workers, 3, "{t}");
        assert!(
            r.reconnects >= r.subscribers,
            "{t}: churn reconnected only {} times",
            r.reconnects
        );
        assert_eq!(r.nodes.len(), 2, "{t}");
        assert_eq!(
            r.nodes.iter().map(|n| n.subscribers).sum::<u64>(),
            r.subscribers,
            "{t}"
        );
        let delivered_by_nodes: u64 = r
            .nodes
            .iter()
            .map(|n| {
                let stats = n.stats.as_ref().expect("node stats");
                assert_eq!(stats["bus"]["outages"], 0, "{t}: {stats}");
                let delivered = stats["transports"][t.as_str()]["deliveries"]
                    .as_u64()
                    .unwrap();
                assert!(delivered > 0, "{t}: node {} delivered nothing", n.addr);
                delivered
            })
            .sum();
        // Nodes count what they sent, including events resent to a client that reconnected before it read them.
        assert!(
            delivered_by_nodes >= r.delivered,
            "{t}: {delivered_by_nodes} < {}",
            r.delivered
        );
        assert!(
            r.bus.as_ref().is_some_and(|b| b.cpu_ms.is_some()),
            "{t}: redis not sampled"
        );
        assert!(dir.join(format!("worker-{t}-2.log")).is_file());
    }
    assert!(result.server.contains("2 nodes"), "{}", result.server);
}

/// One process and three give the same exact accounting of the same workload.
#[test]
fn workers_account_exactly_like_one_process() {
    let toml = format!("transports = [\"longpoll\", \"sse\", \"ws\"]\n{QUICK}");
    // 0: the subscribers in this process, as the run held them before it started fresh workers.
    let (one, _) = run_spread(&toml, 0, 1);
    let (three, _) = run_spread(&toml, 3, 1);
    for (a, b) in one.transports.iter().zip(&three.transports) {
        assert_eq!(a.transport, b.transport);
        assert_eq!(
            (a.subscribers_connected, a.published),
            (b.subscribers_connected, b.published)
        );
        assert_eq!(a.expected, b.expected, "{}", a.transport);
        assert_eq!(a.delivered, b.delivered, "{}", a.transport);
        assert_eq!(
            b.latency_us.count, a.latency_us.count,
            "{}: every timed delivery in the merged histogram",
            a.transport
        );
    }
    assert_every_transport_exact(&three);
}

/// SIGTERM in the middle of a run ends it with a message and stops every process it started: the
/// cluster's nodes, Redis and the load-generator workers.
#[test]
fn an_interrupted_run_leaves_no_process_behind() {
    interrupt(
        nix::sys::signal::Signal::SIGTERM,
        &["--workers", "2", "--cluster", "2"],
        5,
    );
}

/// SIGINT (Ctrl-C) while goose runs in this process, where goose's own handler takes the signal: the
/// run still ends as interrupted, not as a short run with a result.
#[test]
fn ctrl_c_interrupts_a_run_while_goose_holds_the_signal() {
    interrupt(nix::sys::signal::Signal::SIGINT, &[], 1);
}

/// Starts a long run with `flags`, waits until it has `children` processes and has launched its
/// subscribers, sends `signal`, and checks the message, the exit code and that no process is left.
fn interrupt(signal: nix::sys::signal::Signal, flags: &[&str], children: usize) {
    let (run, started, _lock) =
        start_long_run(&format!("interrupted-{}", signal.as_str()), flags, children);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(run.id() as i32), signal).unwrap();
    let output = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("interrupted by {}", signal.as_str())),
        "{stderr}"
    );
    assert_all_gone(&started);
}

/// SIGKILL runs no code in the run: its watchdog stops the cluster's nodes, Redis and the workers, and
/// removes Redis's temporary directory.
#[test]
fn a_killed_run_leaves_no_process_or_directory_behind() {
    let (mut run, started, _lock) =
        start_long_run("killed", &["--workers", "2", "--cluster", "2"], 5);
    let redis_dirs = || -> Vec<std::path::PathBuf> {
        let prefix = format!("pushbench-redis-{}-", run_pid(&started));
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect()
    };
    let dirs = redis_dirs();
    assert!(
        !dirs.is_empty(),
        "Redis's directory exists while the run lives"
    );
    run.kill().unwrap();
    run.wait().unwrap();
    assert_all_gone(&started);
    assert!(dirs.iter().all(|d| !d.exists()), "left behind: {dirs:?}");
}

/// The run's PID, recorded by [`start_long_run`] as the first entry.
fn run_pid(started: &[u32]) -> u32 {
    started[0]
}

/// Starts a run of a long quick.toml with `flags` and waits until it has at least `children` processes
/// and has launched its subscribers. Returns the run, its PID followed by every descendant's, and the
/// lock that keeps other runs of these tests waiting.
fn start_long_run(
    name: &str,
    flags: &[&str],
    children: usize,
) -> (std::process::Child, Vec<u32>, std::fs::File) {
    let dir = out_dir(name);
    let scenario = dir.join("long.toml");
    std::fs::write(
        &scenario,
        QUICK
            .replace("e2e-quick", "e2e-interrupted")
            .replace("duration_s = 4", "duration_s = 120"),
    )
    .unwrap();
    let lock = support::one_run_at_a_time();
    let run = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .arg("run")
        .arg(&scenario)
        .args(flags)
        .args(["--no-progress", "--out"])
        .arg(&dir)
        .arg("--server-bin")
        .arg(support::server_bin())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = run.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let started = loop {
        let started: Vec<u32> = pushbench::util::descendants(pid)
            .into_iter()
            .filter(|&p| p != pid)
            .collect();
        if started.len() >= children {
            break started;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {started:?} started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // Let goose start its attack (and install its own SIGINT handler).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    (run, std::iter::once(pid).chain(started).collect(), lock)
}

/// Waits (10 s at most) until none of `pids` runs, and fails naming those that still do.
fn assert_all_gone(pids: &[u32]) {
    let alive = |p: &u32| {
        std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pids.iter().any(alive) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let left: Vec<&u32> = pids.iter().filter(|p| alive(p)).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn by_transport(result: &RunResult, t: Transport) -> &pushbench_report::result::TransportResult {
    result
        .transports
        .iter()
        .find(|r| r.transport == t)
        .unwrap_or_else(|| panic!("{t} missing"))
}

fn assert_every_transport_exact(result: &RunResult) {
    assert_eq!(
        result.transports.len(),
        result.scenario["transports"].as_array().unwrap().len()
    );
    for r in &result.transports {
        let t = r.transport;
        assert!(r.published > 0, "{t}: nothing published");
        assert_eq!(
            r.subscribers_connected, r.subscribers,
            "{t}: not all subscribed ({:?})",
            r.last_error
        );
        support::assert_exact(r);
        assert!(r.latency_us.count > 0, "{t}: no latency samples");
        assert!(
            r.bytes_per_delivery.unwrap() > 64.0,
            "{t}: a delivery cannot cost less than its payload"
        );
        assert!(r.retransmits.is_some(), "{t}: retransmissions not counted");
    }
}

fn schema() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/result.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn quick_run_is_exact_matches_the_schema_and_follows_the_models() {
    let (result, dir) = run_scenario(QUICK);
    assert_every_transport_exact(&result);
    check_schema_and_reports(&result, &dir);
    check_drift_is_sampled_through_the_window(&result);
    check_polling_latency_follows_half_the_interval(&result);
    check_requests_per_delivery_order_poll_longpoll_streaming(&result);
}

fn check_schema_and_reports(result: &RunResult, dir: &Path) {
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&written)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "result.json does not match the schema: {errors:#?}"
    );

    // The check can fail: a missing fixed field, a wrong type and an unknown transport are all refused.
    let mut doctored = written.clone();
    doctored["transports"][0]
        .as_object_mut()
        .unwrap()
        .remove("lost");
    assert!(!validator.is_valid(&doctored));
    let mut doctored = written.clone();
    doctored["transports"][0]["latency_us"]["p99"] = serde_json::json!("fast");
    assert!(!validator.is_valid(&doctored));
    let mut doctored = written;
    doctored["transports"][0]["transport"] = serde_json::json!("carrier-pigeon");
    assert!(!validator.is_valid(&doctored));

    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("| poll |") && md.contains("## Reading"), "{md}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && !html.contains("<script") && !html.contains("src=\"http"),
        "report.html must be self-contained"
    );
    // Histograms travel in the result and decode to the same counts.
    for r in &result.transports {
        let h = pushbench_report::result::decode_histogram(&r.histograms.latency_us).unwrap();
        assert_eq!(h.len(), r.latency_us.count);
    }
}

/// The drift's series holds at least the sample when the warm-up ended and the one at the end of the
/// drain, and its trend is drawn through them.
fn check_drift_is_sampled_through_the_window(result: &RunResult) {
    for r in &result.transports {
        let t = r.transport;
        assert!(
            r.server_drift_samples >= Some(2),
            "{t}: {:?} samples",
            r.server_drift_samples
        );
        assert!(
            r.server_rss_after_warmup_bytes.is_some() && r.server_rss_end_bytes.is_some(),
            "{t}: drift end points missing"
        );
        assert!(
            r.server_rss_slope_percent.is_some_and(f64::is_finite),
            "{t}"
        );
        assert!(r.server_fds_slope.is_some_and(f64::is_finite), "{t}");
    }
}

fn check_polling_latency_follows_half_the_interval(result: &RunResult) {
    let poll = by_transport(result, Transport::Poll);
    let delivery_ms = [Transport::Stream, Transport::Sse, Transport::Ws]
        .iter()
        .map(|&t| by_transport(result, t).latency_us.mean / 1000.0)
        .fold(f64::MAX, f64::min);
    let model_ms = poll.model.poll_wait_ms + delivery_ms;
    let measured_ms = poll.latency_us.mean / 1000.0;
    // Stated tolerance: within ×0.6..×1.6 of interval/2 + delivery time (a shared, noisy machine).
    let ratio = measured_ms / model_ms;
    assert!(
        (0.6..=1.6).contains(&ratio),
        "poll mean {measured_ms:.1} ms vs model {model_ms:.1} ms (ratio {ratio:.2})"
    );
    // And polling is clearly slower than any push transport here.
    assert!(
        measured_ms > 5.0 * delivery_ms.max(1.0),
        "poll {measured_ms:.1} ms vs push {delivery_ms:.2} ms"
    );
}

fn check_requests_per_delivery_order_poll_longpoll_streaming(result: &RunResult) {
    let rpd = |t| by_transport(result, t).requests_per_delivery.unwrap();
    let (poll, longpoll) = (rpd(Transport::Poll), rpd(Transport::LongPoll));
    let streaming = [Transport::Stream, Transport::Sse, Transport::Ws].map(rpd);
    let model = by_transport(result, Transport::Poll)
        .model
        .poll_requests_per_delivery;
    assert!(poll > longpoll, "poll {poll} ≤ longpoll {longpoll}");
    for s in streaming {
        assert!(longpoll > s, "longpoll {longpoll} ≤ streaming {s}");
        // One request per connection, no reconnects: exactly subscribers / deliveries.
        assert!(s <= 1.0 / 4.0, "streaming {s}");
    }
    // The measured figure also counts the polls of the launch and drain periods, hence the upper margin.
    assert!(
        poll > 0.7 * model && poll < 2.0 * model,
        "poll {poll} vs model {model}"
    );
}

#[test]
fn churn_loses_nothing_on_any_transport() {
    let (result, _) = run_scenario(
        r#"
        name = "e2e-churn"
        subscribers = 40
        launch_rate = 1000
        warmup_s = 0.5
        duration_s = 4
        drain_s = 1
        publish_rate = 20
        payload_bytes = 64
        [fanout]
        mode = "multicast"
        topics = 3
        topics_per_subscriber = 2
        [poll]
        interval_ms = 200
        [churn]
        every_s = 0.5
        share = 0.5
        "#,
    );
    assert_every_transport_exact(&result);
    for r in &result.transports {
        // Each subscriber drops every 1 s (0.5 s ÷ 0.5) over about 5.5 s of publishing and drain.
        assert!(
            r.reconnects >= 2 * r.subscribers,
            "{}: only {} reconnects",
            r.transport,
            r.reconnects
        );
    }
}

#[test]
fn bad_scenarios_exit_2_naming_the_field() {
    let dir = out_dir("cli");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nsubscribers = 0\nlaunch_rate = 1\nduration_s = 1\npublish_rate = 1\npayload_bytes = 64\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .arg("run")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`subscribers`"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["check", "no-such-file.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["run", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/quick.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .arg("check")
        .arg(shipped)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn an_idle_window_costs_polling_its_empty_polls_and_a_quiet_stream_nothing_but_heartbeats() {
    let toml = r#"
name = "idle-e2e"
transports = ["poll", "sse"]
subscribers = 10
launch_rate = 500
idle_s = 2
duration_s = 1
drain_s = 1
publish_rate = 4
payload_bytes = 64
[poll]
interval_ms = 100
[server]
heartbeat_ms = 60000
"#;
    // Workers: their bytes reach the coordinator through their live reports.
    let (result, _) = run_spread(toml, 2, 1);
    let of = |t| result.transports.iter().find(|r| r.transport == t).unwrap();
    let (poll, sse) = (of(Transport::Poll), of(Transport::Sse));
    let poll_idle = poll
        .idle_bytes_per_hour
        .expect("an idle window is measured");
    // Ten polls a second, each a request and an empty answer of well over 100 bytes.
    assert!(poll_idle > 10.0 * 3600.0 * 100.0, "poll: {poll_idle} B/h");
    // No heartbeat falls in the window: an idle stream sends nothing.
    assert_eq!(sse.idle_bytes_per_hour, Some(0.0), "sse");
    assert!(
        poll.idle_packets_per_hour.is_none(),
        "no packets counted on loopback"
    );
    assert_eq!(result.scenario["idle_s"], 2.0);
}
