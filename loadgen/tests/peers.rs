//! The peers measured for real: nchan (nginx + nchan) and Pushpin started from `scenarios/peers/` on
//! loopback, a tiny broadcast over every transport their profiles drive, with exact, zero-loss delivery.
//!
//! Skipped (with a message saying how to install them) only when the peer is not installed; CI installs
//! both with `scripts/setup-peers`. Runs share the end-to-end lock file so that timings are not disturbed.

use std::path::Path;
use std::sync::Arc;

use pushbench::peer::{PeerKind, ServerName, nchan, pushpin};
use pushbench::run::{RunOptions, ServerSource, run};
use pushbench::scenario::Scenario;
use pushbench_common::Transport;

const TINY: &str = r#"
name = "peers-tiny"
transports = ["poll", "longpoll", "stream", "sse", "ws"]
subscribers = 20
launch_rate = 1000
warmup_s = 0.5
duration_s = 2
drain_s = 1
publish_rate = 20
payload_bytes = 64
[fanout]
mode = "broadcast"
[poll]
interval_ms = 20
"#;

fn run_peer(kind: PeerKind) -> pushbench::report::RunResult {
    let scenario = Scenario::parse(TINY, "peers test scenario").unwrap();
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("peers-{kind}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-runs.lock"))
        .unwrap();
    lock.lock().expect("one run at a time");
    let options = RunOptions {
        server: ServerSource::Peer(kind),
        out_dir: dir.clone(),
        progress: false,
        workers: 1,
        cluster: 1,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt
        .block_on(run(Arc::new(scenario), &options))
        .unwrap_or_else(|e| panic!("{kind} run failed: {e:#} (logs in {})", dir.display()));
    pushbench::cli::write_all(&result, &dir).unwrap();
    result
}

fn assert_exact(result: &pushbench::report::RunResult, kind: PeerKind, want: &[Transport]) {
    let ran: Vec<Transport> = result.transports.iter().map(|t| t.transport).collect();
    assert_eq!(ran, want, "{kind} runs exactly the transports it offers");
    for t in &result.transports {
        let what = format!("{kind} {}: {:?}", t.transport, t.last_error);
        assert_eq!(t.subscribers_connected, 20, "{what}");
        assert_eq!(t.published, 50, "{what}");
        assert_eq!(t.expected, 20 * 50, "{what}");
        assert_eq!(t.delivered, t.expected, "{what}");
        assert_eq!(
            (t.lost, t.duplicates, t.out_of_order, t.unexpected),
            (0, 0, 0, 0),
            "{what}"
        );
        assert!(t.latency_us.count > 0 && t.latency_us.p50 > 0, "{what}");
        // All of the peer's processes were sampled: memory and CPU are known.
        assert!(t.server_rss_connected_bytes.unwrap_or(0) > 0, "{what}");
        assert!(t.server_cpu_ms.is_some(), "{what}");
        // Peers have no accept timestamp of ours: nothing is invented for it.
        assert_eq!(t.latency_from_server_us.count, 0, "{what}");
    }
}

#[test]
fn nchan_delivers_every_event_exactly_on_its_transports() {
    if !nchan::installed() {
        eprintln!(
            "SKIPPED: nginx with the nchan module is not installed (run scripts/setup-peers to install it)"
        );
        return;
    }
    let result = run_peer(PeerKind::Nchan);
    assert_exact(
        &result,
        PeerKind::Nchan,
        &[
            Transport::Poll,
            Transport::LongPoll,
            Transport::Stream,
            Transport::Sse,
            Transport::Ws,
        ],
    );
    assert_eq!(result.server, "peer nchan");
    // Interval polling is counted honestly: nchan answers one message per request, so every delivery
    // took one request of its own, and the polls that found nothing (304) are counted as empty.
    let poll = &result.transports[0];
    assert!(
        poll.requests >= poll.delivered + poll.empty_polls,
        "{} requests, {} delivered, {} empty",
        poll.requests,
        poll.delivered,
        poll.empty_polls
    );
    assert!(poll.empty_polls > 0, "idle ticks answer 304");
}

#[test]
fn pushpin_delivers_every_event_exactly_on_its_streaming_transports() {
    if !pushpin::installed() {
        eprintln!(
            "SKIPPED: pushpin (with condure and zurl) is not installed (run scripts/setup-peers to install it)"
        );
        return;
    }
    let result = run_peer(PeerKind::Pushpin);
    assert_exact(
        &result,
        PeerKind::Pushpin,
        &[Transport::Stream, Transport::Sse, Transport::Ws],
    );
}

#[test]
fn no_peer_process_outlives_its_run() {
    if !nchan::installed() {
        eprintln!("SKIPPED: nginx with the nchan module is not installed (scripts/setup-peers)");
        return;
    }
    let scenario = Scenario::parse(
        &TINY.replace(
            r#"transports = ["poll", "longpoll", "stream", "sse", "ws"]"#,
            r#"transports = ["sse"]"#,
        ),
        "t",
    )
    .unwrap();
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("peers-stop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-runs.lock"))
        .unwrap();
    lock.lock().expect("one run at a time");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Two load-generator workers: they must be gone at the end too.
    let options = RunOptions {
        server: ServerSource::Peer(PeerKind::Nchan),
        out_dir: dir,
        progress: false,
        workers: 2,
        cluster: 1,
    };
    rt.block_on(run(Arc::new(scenario), &options)).unwrap();
    drop(rt);
    let ours = pushbench::peer::descendants(std::process::id());
    assert!(ours.is_empty(), "processes left behind: {ours:?}");
    assert_eq!(
        ServerName::parse("nchan"),
        Ok(ServerName::Peer(PeerKind::Nchan))
    );
}
