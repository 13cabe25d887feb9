//! Faults mid-run (`[faults]`) against the real server: a deploy restarts it, a rolling restart and a
//! killed node hit a cluster on Redis. Every subscriber must come back by itself and resume from its
//! cursor; whatever it misses must be announced by a gap notice, never lost silently.
//!
//! The assertions are counts (reconnects, gap notices, losses), never timings.

mod support;

use std::path::Path;

use pushbench::run::{RunOptions, ServerSource};
use pushbench::scenario::Scenario;
use pushbench_report::result::{RunResult, TransportResult};

/// Ten subscribers, 20 events/s; the fault 1.5 s into 3.5 s of publishing.
fn scenario(transports: &str, fault: &str) -> String {
    format!(
        r#"
name = "faults"
transports = [{transports}]
subscribers = 10
launch_rate = 500
warmup_s = 0.5
duration_s = 3
drain_s = 1.5
publish_rate = 20
payload_bytes = 64
[poll]
interval_ms = 100
[faults]
{fault}
"#
    )
}

fn run_with(toml: &str, cluster: usize) -> Result<RunResult, String> {
    let scenario = Scenario::parse(toml, "faults test").expect("valid");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("faults-{}-{cluster}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let options = RunOptions {
        server: ServerSource::Spawn(support::server_bin()),
        out_dir: dir,
        progress: false,
        workers: 1,
        cluster,
        network: None,
    };
    support::run_here(scenario, &options)
}

/// Every subscriber lost its connection and opened a new one, and nothing came twice or out of order.
fn assert_everyone_came_back(r: &TransportResult) {
    let t = r.transport;
    assert_eq!(r.subscribers_connected, r.subscribers, "{t}");
    assert!(
        r.reconnects >= r.subscribers,
        "{t}: {} reconnects for {} subscribers",
        r.reconnects,
        r.subscribers
    );
    assert_eq!(
        (r.duplicates, r.out_of_order, r.unexpected),
        (0, 0, 0),
        "{t}: {:?}",
        r.last_error
    );
    let reconnect = r.reconnect_us.expect("lost connections are timed");
    assert!(reconnect.count > 0, "{t}: no reconnect timed");
}

#[test]
fn a_restarted_server_announces_what_its_subscribers_missed_on_every_transport() {
    let result = run_with(
        &scenario(
            r#""poll", "longpoll", "stream", "sse", "ws""#,
            "restart_at_s = 1.5",
        ),
        1,
    )
    .expect("deploy run");
    for r in &result.transports {
        let t = r.transport;
        assert_eq!(r.faults.len(), 1, "{t}: {:?}", r.faults);
        assert_eq!(
            (r.faults[0].kind.as_str(), r.faults[0].node),
            ("restart", Some(0))
        );
        assert_everyone_came_back(r);
        // The new process has a fresh log whose ids start above every old one: each subscriber's
        // cursor from before the restart gets a gap notice, and whatever it had not read is announced.
        assert!(
            r.gaps >= r.subscribers,
            "{t}: {} gap notices for {} subscribers",
            r.gaps,
            r.subscribers
        );
        assert_eq!(r.lost, r.lost_announced, "{t}: lost silently");
        // Events published after the restart reach everyone.
        assert!(r.delivered > 0 && r.delivered + r.lost == r.expected, "{t}");
    }
}

#[test]
fn a_rolling_restart_of_a_cluster_loses_nothing() {
    let result = run_with(
        &scenario(
            r#""longpoll", "sse", "ws""#,
            "restart_at_s = 1\nrolling_pause_s = 0.3",
        ),
        2,
    )
    .expect("rolling restart run");
    for r in &result.transports {
        let nodes: Vec<_> = r.faults.iter().map(|f| f.node).collect();
        assert_eq!(nodes, [Some(0), Some(1)], "{}: {:?}", r.transport, r.faults);
        assert_everyone_came_back(r);
        // The feed lives in Redis: every node resumes every cursor, so nothing needs a notice.
        support::assert_exact(r);
        assert_eq!(r.gaps, 0, "{}", r.transport);
    }
}

#[test]
fn subscribers_sharing_h2_connections_come_back_after_a_rolling_restart_and_lose_nothing() {
    let toml = scenario(
        r#""poll", "sse", "ws""#,
        "restart_at_s = 1\nrolling_pause_s = 0.3",
    ) + "[client]\ntls = true\nhttp = \"2\"\nsubscribers_per_connection = 5\n";
    let result = run_with(&toml, 2).expect("rolling restart over h2");
    for r in &result.transports {
        assert_everyone_came_back(r);
        support::assert_exact(r);
        // Each restart closes the connections of its node, and each group opens a new one elsewhere:
        // more than the two a group-per-five run opens at the start, fewer than one per subscription.
        let connections = r.connect_us.count;
        assert!(
            connections > 2 && connections < r.subscribers + r.reconnects,
            "{}: {connections} connections, {} reconnects",
            r.transport,
            r.reconnects
        );
    }
}

#[test]
fn a_killed_node_loses_nothing_its_subscribers_move_to_the_other() {
    let result = run_with(&scenario(r#""poll", "stream""#, "kill_node_at_s = 1.5"), 2)
        .expect("node loss run");
    for r in &result.transports {
        assert_eq!(r.faults.len(), 1);
        assert_eq!(
            (r.faults[0].kind.as_str(), r.faults[0].node),
            ("kill", Some(1))
        );
        support::assert_exact(r);
        // Half the subscribers started on the killed node.
        assert!(
            r.reconnects >= r.subscribers / 2,
            "{}: {} reconnects",
            r.transport,
            r.reconnects
        );
    }
}

#[test]
fn faults_the_run_cannot_inject_are_refused_before_it_starts() {
    let kill = scenario(r#""sse""#, "kill_node_at_s = 1");
    let err = run_with(&kill, 1).expect_err("a kill without a cluster");
    assert!(err.contains("--cluster 2"), "{err}");
    let flap = scenario(r#""sse""#, "flap = { every_s = 1, down_s = 0.5 }");
    let err = Scenario::parse(&flap, "t").expect_err("a flap on loopback");
    assert!(err.to_string().contains("[network]"), "{err}");
    let late = scenario(r#""sse""#, "restart_at_s = 10");
    let err = Scenario::parse(&late, "t").expect_err("a restart after publishing");
    assert!(err.to_string().contains("faults.restart_at_s"), "{err}");
}
