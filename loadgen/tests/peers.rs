//! The peers measured for real: nchan (nginx + nchan), Pushpin and Socket.IO started from
//! `scenarios/peers/` on loopback, a tiny broadcast over every transport their profiles drive, with exact,
//! zero-loss delivery; Socket.IO's connection-state recovery under churn and on the wire.
//!
//! Skipped (with a message saying how to install them) only when the peer is not installed; CI installs
//! both with `scripts/setup-peers`. Runs share the end-to-end lock file so that timings are not disturbed.

mod support;

use std::path::Path;
use std::sync::Arc;

use pushbench::run::{RunOptions, ServerSource, run};
use pushbench::scenario::Scenario;
use pushbench::targets::deployment::ServerName;
use pushbench::targets::peer::{PeerKind, nchan, pushpin, socketio};
use pushbench_common::Transport;

use support::TINY_PEERS as TINY;

fn run_peer(kind: PeerKind) -> pushbench_report::result::RunResult {
    run_peer_with(kind, TINY)
}

fn run_peer_with(kind: PeerKind, toml: &str) -> pushbench_report::result::RunResult {
    let scenario = Scenario::parse(toml, "peers test scenario").unwrap();
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("peers-{kind}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _lock = support::one_run_at_a_time();
    let options = RunOptions {
        server: ServerSource::Peer(kind),
        out_dir: dir.clone(),
        progress: false,
        workers: 1,
        cluster: 1,
        network: None,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt
        .block_on(run(Arc::new(scenario), &options))
        .unwrap_or_else(|e| panic!("{kind} run failed: {e:#} (logs in {})", dir.display()));
    pushbench_report::render::write_all(&result, &dir).unwrap();
    result
}

fn assert_exact(result: &pushbench_report::result::RunResult, kind: PeerKind, want: &[Transport]) {
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
    if support::peer_missing(
        nchan::installed(),
        "nginx with the nchan module is not installed (run scripts/setup-peers to install it)",
    ) {
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
fn pushpin_delivers_every_event_exactly_on_its_transports() {
    if support::peer_missing(
        pushpin::installed(),
        "pushpin (with condure and zurl) is not installed (run scripts/setup-peers to install it)",
    ) {
        return;
    }
    let result = run_peer(PeerKind::Pushpin);
    assert_exact(
        &result,
        PeerKind::Pushpin,
        &[
            Transport::LongPoll,
            Transport::Stream,
            Transport::Sse,
            Transport::Ws,
        ],
    );
    // Long-poll: one empty answer per subscriber (the cursor to start from); every other answer carried
    // events (from the GRIP backend's log, or Pushpin's publish to the held request), one request per
    // answer plus the one cut at the end; no hold ran into its 20 s timeout.
    let lp = &result.transports[0];
    assert_eq!(lp.empty_polls, 20, "one head answer per subscriber: {lp:?}");
    assert!(
        lp.requests > lp.requests_cut && lp.requests - lp.requests_cut <= lp.delivered + 20,
        "{} requests ({} cut) for {} deliveries",
        lp.requests,
        lp.requests_cut,
        lp.delivered
    );
}

/// nginx closes a keep-alive connection after 1,000 requests unless configured otherwise; the publisher
/// keeps one connection, so a run of more than 1,000 events must not lose one to that close.
#[test]
fn nchan_takes_more_than_a_thousand_publishes_on_one_connection() {
    if support::peer_missing(
        nchan::installed(),
        "nginx with the nchan module is not installed (scripts/setup-peers)",
    ) {
        return;
    }
    let toml = TINY
        .replace(
            r#"transports = ["poll", "longpoll", "stream", "sse", "ws"]"#,
            r#"transports = ["sse"]"#,
        )
        .replace("subscribers = 20", "subscribers = 5")
        .replace("publish_rate = 20", "publish_rate = 500");
    let result = run_peer_with(PeerKind::Nchan, &toml);
    let t = &result.transports[0];
    assert!(t.published > 1000, "only {} published", t.published);
    assert_eq!(t.publish_failures, 0, "{:?}", t.last_error);
    assert_eq!((t.delivered, t.lost), (t.expected, 0), "{:?}", t.last_error);
}

#[test]
fn no_peer_process_outlives_its_run() {
    if support::peer_missing(
        nchan::installed(),
        "nginx with the nchan module is not installed (scripts/setup-peers)",
    ) {
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
    let _lock = support::one_run_at_a_time();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Two load-generator workers: they must be gone at the end too.
    let options = RunOptions {
        server: ServerSource::Peer(PeerKind::Nchan),
        out_dir: dir,
        progress: false,
        workers: 2,
        cluster: 1,
        network: None,
    };
    rt.block_on(run(Arc::new(scenario), &options)).unwrap();
    drop(rt);
    // The watchdog stays: it guards this process's children until this process ends.
    let ours: Vec<u32> = pushbench::util::descendants(std::process::id())
        .into_iter()
        .filter(|&pid| Some(pid) != pushbench::util::watchdog_pid())
        .collect();
    assert!(ours.is_empty(), "processes left behind: {ours:?}");
    assert_eq!(
        ServerName::parse("nchan"),
        Ok(ServerName::Peer(PeerKind::Nchan))
    );
}

/// Subscribers that idle: one event every 2 s (transports added per peer).
const IDLE: &str = r#"
name = "peers-idle"
subscribers = 10
launch_rate = 1000
warmup_s = 0.5
duration_s = 3
drain_s = 1
publish_rate = 0.5
payload_bytes = 64
[fanout]
mode = "broadcast"
"#;

/// Runs [`IDLE`] on `kind` over `transports` with keep-alives every second and with the default interval
/// (15 s: none within the run), each with zero loss; returns both results' transports, in the same order.
fn idle_runs(
    kind: PeerKind,
    transports: &str,
) -> Vec<(
    pushbench_report::result::TransportResult,
    pushbench_report::result::TransportResult,
)> {
    let idle = format!("transports = {transports}{IDLE}");
    let results = |toml: &str| {
        let result = run_peer_with(kind, toml);
        for t in &result.transports {
            let what = format!("{kind} {}: {:?}", t.transport, t.last_error);
            assert_eq!(t.subscribers_connected, 10, "{what}");
            assert!(t.published >= 1, "{what}");
            assert_eq!(
                (t.delivered, t.lost, t.unexpected),
                (t.expected, 0, 0),
                "{what}"
            );
        }
        result.transports
    };
    let pinged = results(&format!("{idle}[server]\nheartbeat_ms = 1000\n"));
    let quiet = results(&idle);
    pinged.into_iter().zip(quiet).collect()
}

/// With our server's heartbeat interval at 1 s, nchan sends its idle SSE and WebSocket subscribers the
/// same keep-alives: about 4 per connection in this run. Measured as the bytes received beyond the same
/// run with the default interval (15 s, none within the run): at least 2 keep-alives per subscriber, of at
/// least 13 bytes (`: heartbeat\n\n`) on SSE and 2 (an empty ping frame) on WebSocket. The clients take
/// them without an error or a counted event.
#[test]
fn nchan_sends_idle_sse_and_websocket_subscribers_keepalives_at_our_interval() {
    if support::peer_missing(
        nchan::installed(),
        "nginx with the nchan module is not installed (scripts/setup-peers)",
    ) {
        return;
    }
    // Not the stream: nchan's http-raw-stream has no keep-alive.
    for (pinged, quiet) in idle_runs(PeerKind::Nchan, r#"["sse", "ws"]"#) {
        let per_keepalive = if pinged.transport == Transport::Sse {
            13
        } else {
            2
        };
        let extra = pinged.bytes_received.saturating_sub(quiet.bytes_received);
        assert!(
            extra >= 10 * 2 * per_keepalive,
            "{}: {} bytes received with 1 s keep-alives, {} without: {extra} extra",
            pinged.transport,
            pinged.bytes_received,
            quiet.bytes_received
        );
    }
}

/// The same for Pushpin, whose keep-alives our GRIP backend asks for: our heartbeat line on the stream
/// (counted as heartbeats by the client, at least 2 per subscriber), the `: heartbeat` comment on SSE and
/// ping frames on WebSocket (measured in bytes as for nchan).
#[test]
fn pushpin_sends_idle_subscribers_keepalives_at_our_interval() {
    if support::peer_missing(
        pushpin::installed(),
        "pushpin (with condure and zurl) is not installed (scripts/setup-peers)",
    ) {
        return;
    }
    for (pinged, quiet) in idle_runs(PeerKind::Pushpin, r#"["stream", "sse", "ws"]"#) {
        let t = pinged.transport;
        assert_eq!(quiet.heartbeats, 0, "{t}: none at the default interval");
        let per_keepalive = match t {
            Transport::Stream => {
                assert!(
                    pinged.heartbeats >= 10 * 2,
                    "{t}: {} heartbeats",
                    pinged.heartbeats
                );
                continue;
            }
            Transport::Sse => 13,
            _ => 2,
        };
        let extra = pinged.bytes_received.saturating_sub(quiet.bytes_received);
        assert!(
            extra >= 10 * 2 * per_keepalive,
            "{t}: {} bytes received with 1 s keep-alives, {} without: {extra} extra",
            pinged.bytes_received,
            quiet.bytes_received
        );
    }
}

/// The same for Socket.IO, whose keep-alive is Engine.IO's ping (`2`, answered `3`), sent every
/// `pingInterval` (the script's, set to our heartbeat interval): on WebSocket a 3-byte frame per ping
/// (measured in bytes as for nchan), on long-polling the end of the held GET, an answer without events.
#[test]
fn socketio_pings_idle_subscribers_at_our_interval() {
    if support::peer_missing(
        socketio::installed(),
        "node with socket.io is not installed (run scripts/setup-peers)",
    ) {
        return;
    }
    for (pinged, quiet) in idle_runs(PeerKind::SocketIo, r#"["longpoll", "ws"]"#) {
        let t = pinged.transport;
        if t == Transport::LongPoll {
            assert!(
                pinged.empty_polls >= quiet.empty_polls + 10 * 2,
                "{t}: {} answers without events with 1 s pings, {} without",
                pinged.empty_polls,
                quiet.empty_polls
            );
        } else {
            let extra = pinged.bytes_received.saturating_sub(quiet.bytes_received);
            assert!(
                extra >= 10 * 2 * 3,
                "{t}: {} bytes received with 1 s pings, {} without: {extra} extra",
                pinged.bytes_received,
                quiet.bytes_received
            );
        }
    }
}

/// One HTTP/1.1 exchange on a fresh connection (`Connection: close`): status, headers, body.
fn http(addr: std::net::SocketAddr, request: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// The race a GRIP long-poll must survive: an event reaches Pushpin after the backend found nothing newer
/// in its log, but before Pushpin holds the request. Forced here: Pushpin gets event 1 first, the backend's
/// log only later, so the backend holds the long-poll with `prev-id=0` while Pushpin's channel is at id 1.
/// Pushpin must notice the gap and ask the backend again (which by then answers from its log) instead of
/// holding the request for the whole 20 s hold.
#[test]
fn pushpin_longpoll_recovers_an_event_that_raced_the_hold() {
    if support::peer_missing(
        pushpin::installed(),
        "pushpin (with condure and zurl) is not installed (scripts/setup-peers)",
    ) {
        return;
    }
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("peers-race-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _lock = support::one_run_at_a_time();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let peer = rt
        .block_on(pushbench::targets::peer::RunningPeer::start(
            PeerKind::Pushpin,
            Transport::LongPoll,
            pushbench::targets::peer::IdleSettings {
                keepalive: pushbench::scenario::ServerOptions::default().heartbeat(),
                longpoll_hold: std::time::Duration::from_secs(20),
            },
            &dir,
            std::net::Ipv4Addr::LOCALHOST.into(),
            None,
        ))
        .unwrap();
    let log = peer
        .message_log()
        .expect("Pushpin's GRIP backend keeps a log")
        .clone();
    let publish = pushpin::publish_longpoll_body("race", 1, 0, "1 1 x");
    let (status, _, _) = http(
        peer.publish_addr,
        &format!(
            "POST /publish/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{publish}",
            publish.len()
        ),
    );
    assert_eq!(status, 200, "publish accepted");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let addr = peer.addr;
    let started = std::time::Instant::now();
    let poll = std::thread::spawn(move || {
        http(
            addr,
            "GET /lp?topic=race&after=race=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    });
    // The backend writes event 1 to its log only now.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(log.append("race", "1 1 x"), (1, 0));
    let (status, head, body) = poll.join().unwrap();
    let took = started.elapsed();
    rt.block_on(peer.stop(std::time::Duration::from_secs(2)));
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, "1 1 x\n", "{head}");
    assert!(head.contains("pushbench-cursor: race=1"), "{head}");
    assert!(
        took < std::time::Duration::from_secs(10),
        "the long-poll waited {took:?}: Pushpin held it past the gap instead of asking the backend again"
    );
}

#[test]
fn socketio_delivers_every_event_exactly_on_its_transports() {
    if support::peer_missing(
        socketio::installed(),
        "node with socket.io is not installed (run scripts/setup-peers)",
    ) {
        return;
    }
    let result = run_peer(PeerKind::SocketIo);
    assert_exact(
        &result,
        PeerKind::SocketIo,
        &[Transport::LongPoll, Transport::Ws],
    );
    assert_eq!(result.server, "peer socketio");
    for t in &result.transports {
        // No reconnect, so nothing to recover and nothing refused.
        assert_eq!((t.reconnects, t.gaps, t.errors), (0, 0, 0), "{t:?}");
    }
}

/// Churn: every subscriber drops its connection about once a second (long-polling: the connection of
/// its held GET is cut; WebSocket: closed) and reconnects at once with its session's `pid` and last
/// offset. Socket.IO recovers most sessions with the events published meanwhile: never an event twice or
/// out of order, and an event lost only where Socket.IO answered a reconnect with a fresh session (counted
/// in `gaps`): a drop before the subscriber's first event (no offset to resume from), or, on
/// long-polling, a cut that fell between two GETs, which the server notices only by its ping timeout (its
/// old session is still open when the new one asks to recover it). How many is a matter of timing, so it
/// is reported (scenarios/peers/README.md), not asserted.
#[test]
fn socketio_recovers_sessions_under_churn() {
    if support::peer_missing(
        socketio::installed(),
        "node with socket.io is not installed (run scripts/setup-peers)",
    ) {
        return;
    }
    let toml = TINY
        .replace(
            r#"transports = ["poll", "longpoll", "stream", "sse", "ws"]"#,
            r#"transports = ["longpoll", "ws"]"#,
        )
        .replace("duration_s = 2", "duration_s = 4")
        + "[churn]\nevery_s = 1\nshare = 1.0\n";
    let result = run_peer_with(PeerKind::SocketIo, &toml);
    for t in &result.transports {
        let what = format!("{}: {t:?}", t.transport);
        assert_eq!(t.subscribers_connected, 20, "{what}");
        assert_eq!(t.expected, 20 * t.published, "{what}");
        assert_eq!(t.delivered + t.lost, t.expected, "{what}");
        assert_eq!(
            (t.duplicates, t.out_of_order, t.unexpected, t.errors),
            (0, 0, 0, 0),
            "{what}"
        );
        assert!(t.reconnects >= 20, "every subscriber reconnected: {what}");
        assert!(
            t.gaps * 2 < t.reconnects,
            "most reconnects were recovered: {what}"
        );
        assert!(
            t.lost == 0 || t.gaps > 0,
            "only a reconnect Socket.IO did not recover loses events: {what}"
        );
    }
}

/// Socket.IO's recovery on the wire, by hand: a long-polling client receives one event, its held GET's
/// connection is cut, two more events are published, and a new session whose connect packet carries the
/// old `pid` and the first event's offset gets both missed events before its connect answer, with the
/// same `pid` (recovered); a connect with an offset the server never issued gets a new `pid` and none.
#[test]
fn socketio_replays_missed_events_to_a_recovered_session() {
    if support::peer_missing(
        socketio::installed(),
        "node with socket.io is not installed (run scripts/setup-peers)",
    ) {
        return;
    }
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("peers-sio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _lock = support::one_run_at_a_time();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let peer = rt
        .block_on(pushbench::targets::peer::RunningPeer::start(
            PeerKind::SocketIo,
            Transport::LongPoll,
            pushbench::targets::peer::IdleSettings {
                keepalive: std::time::Duration::from_secs(60),
                longpoll_hold: std::time::Duration::from_secs(30),
            },
            &dir,
            std::net::Ipv4Addr::LOCALHOST.into(),
            None,
        ))
        .unwrap();
    let addr = peer.addr;
    let get = |path: &str| {
        http(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
    };
    let post = |path: &str, body: &str| {
        http(
            addr,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let field = |text: &str, name: &str| -> String {
        let at = text.find(&format!("\"{name}\":\"")).unwrap() + name.len() + 4;
        text[at..at + text[at..].find('"').unwrap()].to_owned()
    };
    // A session: its polling path, and the packets it received up to the server's connect packet
    // (missed events come first, possibly in answers of their own).
    let session = |auth: &str| -> (String, Vec<String>) {
        let (status, _, open) = get("/socket.io/?EIO=4&transport=polling");
        assert_eq!(status, 200, "{open}");
        let sid = field(&open, "sid");
        let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        assert_eq!(post(&path, &format!("40{auth}")).2, "ok");
        let mut packets: Vec<String> = Vec::new();
        while !packets.last().is_some_and(|p| p.starts_with("40")) {
            let (status, _, answer) = get(&path);
            assert_eq!(status, 200, "{answer}");
            packets.extend(answer.split('\u{1e}').map(str::to_owned));
        }
        (path, packets)
    };
    let (path, connected) = session(r#"{"topics":["t"]}"#);
    assert!(connected[0].starts_with("40{"), "{connected:?}");
    let pid = field(&connected[0], "pid");
    assert_eq!(post("/publish?topic=t", "1 1 x").0, 200);
    let (_, _, first) = get(&path);
    assert!(first.starts_with(r#"42["event","1 1 x",""#), "{first}");
    let offset = first.rsplit('"').nth(1).unwrap().to_owned();
    // The held GET's connection is cut: the server closes the session and keeps it for recovery.
    {
        use std::io::Write;
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        write!(tcp, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        tcp.shutdown(std::net::Shutdown::Both).unwrap();
    }
    // The session is gone once the old sid is refused.
    while get(&path).0 == 200 {}
    assert_eq!(post("/publish?topic=t", "2 2 x").0, 200);
    assert_eq!(post("/publish?topic=t", "3 3 x").0, 200);
    let (_, recovered) = session(&format!(
        r#"{{"topics":["t"],"pid":"{pid}","offset":"{offset}"}}"#
    ));
    let unknown = session(&format!(
        r#"{{"topics":["t"],"pid":"{pid}","offset":"never-issued"}}"#
    ));
    rt.block_on(peer.stop(std::time::Duration::from_secs(2)));
    assert_eq!(recovered.len(), 3, "{recovered:?}");
    assert!(
        recovered[0].starts_with(r#"42["event","2 2 x","#),
        "{recovered:?}"
    );
    assert!(
        recovered[1].starts_with(r#"42["event","3 3 x","#),
        "{recovered:?}"
    );
    assert_eq!(field(&recovered[2], "pid"), pid, "recovered: the same pid");
    assert_eq!(unknown.1.len(), 1, "nothing replayed: {:?}", unknown.1);
    assert_ne!(field(&unknown.1[0], "pid"), pid, "a fresh session");
}

/// [`TINY`] over TLS: HTTP/1.1, or h2 with five subscribers per connection.
fn tiny_over(http: &str) -> String {
    match http {
        "2" => {
            format!("{TINY}[client]\ntls = true\nhttp = \"2\"\nsubscribers_per_connection = 5\n")
        }
        _ => format!("{TINY}[client]\ntls = true\n"),
    }
}

/// Every transport of `result` ran over TLS: one handshake at least per connection, and on h2 fewer
/// connections than subscribers (five share one).
fn assert_over_tls(result: &pushbench_report::result::RunResult, h2: bool) {
    for t in &result.transports {
        let handshakes = t
            .tls_handshake_us
            .unwrap_or_else(|| panic!("{}: no TLS handshake timed", t.transport));
        assert!(handshakes.count >= 1, "{}", t.transport);
        if h2 {
            assert!(
                handshakes.count < t.subscribers_connected,
                "{}: {} handshakes for {} subscribers on h2",
                t.transport,
                handshakes.count,
                t.subscribers_connected
            );
        } else {
            assert!(
                handshakes.count >= t.subscribers_connected,
                "{}: {} handshakes for {} subscribers",
                t.transport,
                handshakes.count,
                t.subscribers_connected
            );
        }
    }
}

/// nginx + nchan over TLS with the run's certificate: every transport exactly over HTTP/1.1; over h2
/// (`listen … ssl http2`) the interval poll, long-poll, raw stream and SSE exactly, and the WebSocket
/// not offered (nginx has no RFC 8441), said so rather than run on another connection.
#[test]
fn nchan_over_tls_delivers_exactly_on_http1_and_h2_and_says_ws_is_not_offered_on_h2() {
    if support::peer_missing(
        nchan::installed(),
        "nginx with the nchan module is not installed (scripts/setup-peers)",
    ) {
        return;
    }
    let all = [
        Transport::Poll,
        Transport::LongPoll,
        Transport::Stream,
        Transport::Sse,
        Transport::Ws,
    ];
    let h1 = run_peer_with(PeerKind::Nchan, &tiny_over("1.1"));
    assert_exact(&h1, PeerKind::Nchan, &all);
    assert_over_tls(&h1, false);

    let toml = tiny_over("2");
    let h2 = run_peer_with(PeerKind::Nchan, &toml);
    assert_exact(&h2, PeerKind::Nchan, &all[..4]);
    assert_over_tls(&h2, true);
    let client = Scenario::parse(&toml, "t").unwrap().client;
    let why = ServerSource::Peer(PeerKind::Nchan)
        .not_driven(Transport::Ws, &client)
        .expect("ws over h2 is not offered by nchan");
    assert!(
        why.starts_with("not offered by nchan over h2: nginx 1.22 has no WebSocket over HTTP/2"),
        "{why}"
    );
    // Starting it anyway is refused, not served on HTTP/1.1.
    let certificate = pushbench::targets::certificate::RunCertificate::new().unwrap();
    let refused = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(pushbench::targets::peer::RunningPeer::start(
            PeerKind::Nchan,
            Transport::Ws,
            pushbench::targets::peer::IdleSettings {
                keepalive: std::time::Duration::from_secs(15),
                longpoll_hold: std::time::Duration::from_secs(30),
            },
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            std::net::Ipv4Addr::LOCALHOST.into(),
            Some(pushbench::targets::peer::PeerTls {
                certificate: &certificate,
                http: pushbench::scenario::HttpVersion::Http2,
            }),
        ))
        .expect_err("nchan's WebSocket over h2");
    assert!(
        refused
            .to_string()
            .starts_with("ws is not offered by nchan over h2"),
        "{refused}"
    );
}

/// Pushpin over TLS HTTP/1.1 (condure with the run's certificate): every transport it offers exactly.
/// Over h2 it runs nothing and says why (condure speaks HTTP/1 only).
#[test]
fn pushpin_over_tls_delivers_exactly_and_offers_nothing_on_h2() {
    if support::peer_missing(
        pushpin::installed(),
        "pushpin (with condure and zurl) is not installed (scripts/setup-peers)",
    ) {
        return;
    }
    // Five events a second (50 in 10 s), not twenty: at 20/s over TLS the run's last event raced a
    // long-poll's hold in 2 of 3 runs (3 and 9 of 20 long-pollers never got it). Pushpin notices such a
    // gap only when a later event follows (scenarios/peers/README.md, "Known limits"), and the held
    // request was not answered before the run stopped, 2.9 s later, even with a 1 s `[longpoll]
    // timeout_ms`. 200 ms apart, every long-poll is held again long before the next publish.
    let toml = tiny_over("1.1")
        .replace("publish_rate = 20", "publish_rate = 5")
        .replace("duration_s = 2", "duration_s = 9.5");
    let result = run_peer_with(PeerKind::Pushpin, &toml);
    assert_exact(
        &result,
        PeerKind::Pushpin,
        &[
            Transport::LongPoll,
            Transport::Stream,
            Transport::Sse,
            Transport::Ws,
        ],
    );
    assert_over_tls(&result, false);

    let h2 = run_peer_with(PeerKind::Pushpin, &tiny_over("2"));
    assert!(h2.transports.is_empty(), "{:?}", h2.transports);
    let client = Scenario::parse(&tiny_over("2"), "t").unwrap().client;
    for t in [Transport::LongPoll, Transport::Sse, Transport::Ws] {
        let why = ServerSource::Peer(PeerKind::Pushpin)
            .not_driven(t, &client)
            .unwrap_or_else(|| panic!("{t} over h2 is not offered by Pushpin"));
        assert!(why.contains("condure 1.9 speaks HTTP/1"), "{why}");
    }
}
