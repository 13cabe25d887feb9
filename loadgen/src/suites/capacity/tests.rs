//! Unit tests of judging, concluding and rendering (the search has its own in `search.rs`).

use super::*;
use crate::test_result;

const SCENARIO: &str = r#"
name = "cap"
transports = ["sse", "ws"]
subscribers = 100
launch_rate = 1000
duration_s = 1
publish_rate = 8
payload_bytes = 64
[fanout]
mode = "multicast"
topics = 10
[thresholds]
lost = 0
"#;

fn spec(vary: Vary) -> Spec {
    let scenario = Scenario::parse(SCENARIO, "test").unwrap();
    let params = Params::new(
        vary.of(&scenario),
        2.0,
        3,
        1000.0,
        16,
        vary == Vary::Subscribers,
    )
    .unwrap();
    Spec {
        table: SCENARIO.parse().unwrap(),
        scenario,
        vary,
        p99_ms: 50.0,
        params,
        open_files: 20_000,
    }
}

#[test]
fn a_step_scenario_changes_one_field_and_one_transport_and_is_validated_again() {
    let s = spec(Vary::Subscribers);
    let step = step_scenario(&s, Transport::Ws, 400.0).unwrap();
    assert_eq!(step.subscribers, 400);
    assert_eq!(step.transports, [Transport::Ws]);
    assert_eq!(step.publish_rate, 8.0);
    assert!(step.thresholds.is_empty(), "a step has no gate of its own");
    let rate = step_scenario(&spec(Vary::Rate), Transport::Sse, 12.5).unwrap();
    assert_eq!((rate.publish_rate, rate.subscribers), (12.5, 100));
    // 10 topics need at least 10 subscribers: validation runs again and names the field.
    let err = step_scenario(&s, Transport::Ws, 5.0).unwrap_err();
    assert!(err.to_string().contains("subscribers = 5"), "{err}");
    assert!(err.to_string().contains("fanout.topics"), "{err}");
    assert!(err.is_usage());
}

#[test]
fn validate_refuses_a_max_the_scenario_does_not_allow_and_a_bad_p99() {
    let mut s = spec(Vary::Subscribers);
    s.params.max = 200_000.0;
    assert!(
        validate(&s)
            .unwrap_err()
            .to_string()
            .contains("subscribers")
    );
    let mut s = spec(Vary::Subscribers);
    s.p99_ms = 0.0;
    assert!(matches!(validate(&s), Err(CapacityError::P99(_))));
    assert!(validate(&spec(Vary::Rate)).is_ok());
}

fn judged(f: impl FnOnce(&mut TransportResult)) -> (Verdict, Vec<String>) {
    let mut r = test_result(&[1_000, 2_000, 3_000]).transports.remove(0);
    f(&mut r);
    judge(&r, 50.0, 20_000)
}

#[test]
fn judge_passes_only_exact_fast_connected_unsaturated_runs() {
    assert_eq!(judged(|_| {}), (Verdict::Pass, vec![]));
    let (v, why) = judged(|r| r.lost = 3);
    assert_eq!((v, why[0].as_str()), (Verdict::Fail, "3 lost"));
    let (v, why) = judged(|r| r.duplicates = 1);
    assert_eq!((v, why[0].as_str()), (Verdict::Fail, "1 duplicates"));
    let (v, why) = judged(|r| {
        r.latency_us.p99 = 50_000;
    });
    assert_eq!(v, Verdict::Fail);
    assert!(why[0].contains("p99 50.0 ms ≥ 50 ms"), "{why:?}");
    let (v, _) = judged(|r| r.latency_us.p99 = 49_999);
    assert_eq!(v, Verdict::Pass);
    let (v, why) = judged(|r| r.latency_us.count = 0);
    assert_eq!(
        (v, why[0].as_str()),
        (Verdict::Fail, "no delivery latency measured")
    );
    let (v, _) = judged(|r| r.publish_failures = 1);
    assert_eq!(v, Verdict::Fail);
}

#[test]
fn judge_blames_the_machine_for_saturation_descriptors_and_connect_failures() {
    let (v, why) = judged(|r| {
        r.loadgen_saturated = true;
        r.loadgen_saturation_reasons = vec!["machine full".into()];
        r.lost = 10; // the figures describe the machine: not a server failure
    });
    assert_eq!(v, Verdict::Machine);
    assert_eq!(why.len(), 1);
    assert!(why[0].contains("saturated (machine full)"), "{why:?}");
    let (v, why) = judged(|r| {
        r.subscribers_connected = 90;
        r.failed_connects = 10;
        r.last_error = Some("connect: Too many open files (os error 24)".into());
    });
    assert_eq!(v, Verdict::Machine);
    assert!(
        why[0].starts_with("out of file descriptors (limit 20000"),
        "{why:?}"
    );
    assert!(
        why[0].contains("90 of 100 subscribers connected"),
        "{why:?}"
    );
    let (v, why) = judged(|r| {
        r.failed_connects = 2;
        r.last_error = Some("connection refused".into());
    });
    assert_eq!(v, Verdict::Machine);
    assert!(why[0].starts_with("connect failures"), "{why:?}");
    let (_, why) = judged(|r| {
        r.subscribers_connected = 99;
        r.server_fds = Some(19_995);
    });
    assert!(why[0].starts_with("out of file descriptors"), "{why:?}");
}

fn step(n: u32, value: f64, verdict: Verdict) -> Step {
    let mut s = Step::failed(
        n,
        value,
        format!("sse/step-{n}"),
        "x".into(),
        &spec(Vary::Subscribers),
    );
    s.verdict = verdict;
    s.reasons = match verdict {
        Verdict::Pass => vec![],
        Verdict::Fail => vec!["p99 80.0 ms ≥ 50 ms".into()],
        Verdict::Machine => vec!["load generator / machine saturated (lag)".into()],
        Verdict::Error => vec!["the run failed: server exited".into()],
    };
    s.latency_p99_ms = Some(value / 10.0);
    s
}

fn conclusion(steps: &[(f64, Verdict)]) -> TransportCapacity {
    let params = spec(Vary::Subscribers).params;
    let steps = steps
        .iter()
        .enumerate()
        .map(|(i, &(v, verdict))| step(i as u32 + 1, v, verdict))
        .collect();
    conclude(Transport::Sse, Vary::Subscribers, 50.0, &params, steps)
}

#[test]
fn the_verdict_follows_from_the_steps() {
    use Verdict::{Fail, Machine, Pass};
    let c = conclusion(&[(100.0, Pass), (200.0, Pass), (400.0, Fail), (300.0, Pass)]);
    assert_eq!(
        (c.outcome, c.capacity, c.limit.as_ref().map(|l| l.at)),
        (SearchEnd::ServerLimit, Some(300.0), Some(400.0))
    );
    assert!(
        c.summary.contains("sustains 300 subscribers"),
        "{}",
        c.summary
    );
    assert!(
        c.summary.contains("fails at 400 subscribers: p99 80.0 ms"),
        "{}",
        c.summary
    );

    let c = conclusion(&[(100.0, Fail)]);
    assert_eq!((c.outcome, c.capacity), (SearchEnd::FailsAtStart, None));

    let c = conclusion(&[(100.0, Pass), (200.0, Pass), (400.0, Machine)]);
    assert_eq!(
        (
            c.outcome,
            c.capacity,
            c.limit.as_ref().map(|l| l.by.as_str())
        ),
        (
            SearchEnd::MachineLimit,
            Some(200.0),
            Some("load generator / machine")
        )
    );
    assert!(
        c.summary.contains(
            "limited by the load generator / machine at 400 subscribers, not by the server"
        ),
        "{}",
        c.summary
    );
    assert!(
        !c.summary.contains("sustains"),
        "no server capacity is claimed: {}",
        c.summary
    );

    let c = conclusion(&[(250.0, Pass), (500.0, Pass), (1000.0, Pass)]);
    assert_eq!(
        (c.outcome, c.capacity),
        (SearchEnd::ReachedMax, Some(1000.0))
    );
    assert!(c.summary.contains("limit is higher"));

    let c = conclusion(&[(100.0, Pass), (200.0, Verdict::Error)]);
    assert_eq!((c.outcome, c.capacity), (SearchEnd::RunFailed, Some(100.0)));
    assert!(
        c.summary
            .contains("the run at 200 subscribers failed (the run failed: server exited)"),
        "{}",
        c.summary
    );

    let c = conclusion(&[(100.0, Pass), (200.0, Pass)]);
    assert_eq!(
        (c.outcome, c.capacity),
        (SearchEnd::StepBudget, Some(200.0))
    );
}

fn sample() -> Capacity {
    let s = spec(Vary::Subscribers);
    let sse = conclusion(&[
        (100.0, Verdict::Pass),
        (200.0, Verdict::Pass),
        (400.0, Verdict::Fail),
        (300.0, Verdict::Pass),
    ]);
    let mut ws = conclusion(&[(100.0, Verdict::Pass), (200.0, Verdict::Machine)]);
    ws.transport = Transport::Ws;
    Capacity {
        tool: "pushbench test".into(),
        scenario: "cap".into(),
        vary: Vary::Subscribers,
        p99_ms: 50.0,
        search: s.params,
        started_at: "2026-11-23T08:00:00Z".into(),
        finished_at: "2026-11-23T08:01:00Z".into(),
        server: "spawned test".into(),
        transports: vec![sse, ws],
    }
}

#[test]
fn reports_hold_a_table_per_transport_sorted_by_value_and_the_charts() {
    let c = sample();
    let mut md = Vec::new();
    report::write_md(&c, &mut md).unwrap();
    let md = String::from_utf8(md).unwrap();
    assert!(md.contains("## sse") && md.contains("## ws"), "{md}");
    let sse = &md[md.find("## sse").unwrap()..md.find("## ws").unwrap()];
    let values: Vec<&str> = sse
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| subscribers"))
        .map(|l| l.split(" | ").next().unwrap().trim_start_matches("| "))
        .collect();
    assert_eq!(values, ["100", "200", "300", "400"], "{sse}");
    assert!(
        md.contains("limited by the load generator / machine at 200"),
        "{md}"
    );

    let mut html = Vec::new();
    report::write_html(&c, &mut html).unwrap();
    let html = String::from_utf8(html).unwrap();
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(!html.contains("<script") && !html.contains("src=\"http"));
    assert_eq!(html.matches("class=\"limit\"").count(), 1, "the p99 line");
    assert!(html.contains("limit 50 ms"));
    // p99 chart: 5 points; 3 + 1 passes of sse and ws, one fail, one machine stop.
    let p99 = &html[html.find("p99 delivery").unwrap()..];
    let p99 = &p99[..p99.find("</svg>").unwrap()];
    assert_eq!(p99.matches("class=\"pass\"").count(), 4, "{p99}");
    assert_eq!(p99.matches("class=\"fail\"").count(), 1);
    assert_eq!(p99.matches("class=\"machine\"").count(), 1);
    assert!(
        html.contains("<a href=\"sse/step-3/report.html\">400</a>"),
        "{html}"
    );

    let back: Capacity = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn chart_axes_have_round_ticks() {
    assert_eq!(
        report::tick_labels(0.0, 4.2, false),
        ["0", "1", "2", "3", "4", "5"]
    );
    assert_eq!(
        report::tick_labels(3.0, 180.0, true),
        ["1", "2", "5", "10", "20", "50", "100", "200", "500", "1000"]
    );
    assert_eq!(
        report::tick_labels(0.0, 0.7, false)[..3],
        ["0", "0.2", "0.4"]
    );
}

#[test]
fn a_tight_log_axis_spans_just_the_values() {
    let labels = report::tight_tick_labels(100.0, 1600.0);
    assert_eq!(labels, ["100", "200", "500", "1000"]);
}

#[test]
fn a_peer_transport_its_profile_does_not_drive_is_not_searched() {
    use crate::run::ServerSource;
    use crate::scenario::{ClientOptions, HttpVersion};
    use crate::targets::peer::PeerKind;
    let not_driven = |server: &ServerSource, t| server.not_driven(t, &ClientOptions::default());
    let pushpin = ServerSource::Peer(PeerKind::Pushpin);
    assert_eq!(
        not_driven(&pushpin, Transport::Poll).as_deref(),
        Some("not offered by pushpin")
    );
    assert_eq!(
        not_driven(&ServerSource::Peer(PeerKind::Nchan), Transport::Poll),
        None
    );
    assert_eq!(not_driven(&pushpin, Transport::Sse), None);
    let ours = ServerSource::Spawn("pushbench-server".into());
    assert_eq!(not_driven(&ours, Transport::Poll), None);
    // Over h2: nchan's WebSocket and all of Pushpin are not offered, with the reason; over TLS HTTP/1.1
    // everything the profiles drive is.
    let h2 = ClientOptions {
        tls: true,
        http: HttpVersion::Http2,
        ..ClientOptions::default()
    };
    let tls = ClientOptions {
        tls: true,
        ..ClientOptions::default()
    };
    let nchan = ServerSource::Peer(PeerKind::Nchan);
    let ws = nchan.not_driven(Transport::Ws, &h2).unwrap();
    assert!(
        ws.starts_with("not offered by nchan over h2: nginx 1.22 has no WebSocket over HTTP/2"),
        "{ws}"
    );
    assert_eq!(nchan.not_driven(Transport::Sse, &h2), None);
    assert_eq!(nchan.not_driven(Transport::Ws, &tls), None);
    let sse = pushpin.not_driven(Transport::Sse, &h2).unwrap();
    assert!(
        sse.starts_with("not offered by pushpin over h2: Pushpin's condure 1.9 speaks HTTP/1"),
        "{sse}"
    );
    assert_eq!(pushpin.not_driven(Transport::Ws, &tls), None);
    assert_eq!(ours.not_driven(Transport::Ws, &h2), None);
}
