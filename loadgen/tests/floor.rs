//! The floor reference measured through the peers suite, as `pushbench run --peers floor` does: a tiny
//! broadcast over every transport, exact delivery on the four it offers, interval polling named "not
//! offered", and its own CPU per delivery the unit of the ratio column.

mod support;

use std::path::Path;
use std::sync::Arc;

use pushbench::scenario::Scenario;
use pushbench::suites::peers::run_peers;
use pushbench::targets::deployment::ServerName;
use pushbench_common::Transport;

#[test]
fn the_floor_delivers_every_event_exactly_through_the_peers_suite() {
    let server_bin = support::floor_beside_server();
    let scenario = Scenario::parse(support::TINY_PEERS, "floor test scenario").unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("floor-{}", std::process::id()));
    let _lock = support::one_run_at_a_time();
    let rows = run_peers(
        Arc::new(scenario),
        &[ServerName::Floor],
        Some(&server_bin),
        &out,
        false,
        1,
        None,
    )
    .unwrap();

    let result = pushbench_report::render::json::read(&out.join("floor/result.json")).unwrap();
    assert!(
        result.server.starts_with("floor reference "),
        "{}",
        result.server
    );
    let ran: Vec<Transport> = result.transports.iter().map(|t| t.transport).collect();
    assert_eq!(ran, pushbench::targets::floor::OFFERS);
    for t in &result.transports {
        support::assert_exact(t);
        assert_eq!(t.subscribers_connected, 20, "{}", t.transport);
        assert_eq!(t.published, 50, "{}", t.transport);
        assert_eq!(t.expected, 20 * 50, "{}", t.transport);
        assert!(
            t.server_cpu_ms.is_some(),
            "{}: its process is sampled",
            t.transport
        );
    }

    let statuses: Vec<(Transport, &str)> = rows
        .iter()
        .map(|r| (r.transport, r.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            (Transport::Poll, "not offered"),
            (Transport::LongPoll, "measured"),
            (Transport::Stream, "measured"),
            (Transport::Sse, "measured"),
            (Transport::Ws, "measured"),
        ]
    );
    // The floor's own ratio is 1 wherever its CPU per delivery is known and not zero (a tiny run can
    // spend less than one clock tick).
    for r in &rows[1..] {
        let known = r.cpu_s_per_million.filter(|&cpu| cpu > 0.0);
        assert_eq!(r.cpu_vs_floor, known.map(|_| 1.0), "{}", r.transport);
    }
    let md = std::fs::read_to_string(out.join("peers.md")).unwrap();
    assert!(md.contains("| poll | floor | not offered |"), "{md}");
}
