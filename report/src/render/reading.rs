//! The plain-language reading of a result: which transport won what, and why, checked against the simple
//! models (polling waits half an interval; polling pays requests per interval, long-polling per answer,
//! streaming per connection). Every sentence is computed from the figures, none is canned.

use pushbench_common::Transport;

use super::{RunResult, TransportResult, ms};

/// One finding per paragraph, Markdown inline syntax (backticks, bold).
pub fn findings(result: &RunResult) -> Vec<String> {
    let t = &result.transports;
    let mut out = Vec::new();
    if t.is_empty() {
        return out;
    }
    out.push(completeness(t));
    if let Some(line) = latency(t) {
        out.push(line);
    }
    if let Some(line) = polling_model(t) {
        out.push(line);
    }
    if let Some(line) = network_models(result) {
        out.push(line);
    }
    if let Some(line) = requests(t) {
        out.push(line);
    }
    if let Some(mut line) = best_of(
        t,
        "Wire cost",
        "bytes per delivery (both directions, at the socket: headers, framing and heartbeats included)",
        |r| r.bytes_per_delivery,
        |v| format!("{v:.0} B"),
    ) {
        line.push_str(&wire_reasons(t));
        out.push(line);
    }
    if let Some(line) = connections(result) {
        out.push(line);
    }
    if let Some(line) = best_of(
        t,
        "Packets",
        "per delivery through the emulated link (both directions, handshakes, acknowledgements, heartbeats and retransmissions included: what a phone's radio wakes for)",
        |r| r.packets_per_delivery,
        |v| format!("{v:.2}"),
    ) {
        out.push(line);
    }
    if let Some(line) = retransmits(t) {
        out.push(line);
    }
    if let Some(line) = best_of(
        t,
        "Server memory",
        "per connection (server RSS after − before the subscribers connected)",
        |r| r.server_rss_per_connection_bytes,
        |v| format!("{:.1} KiB", v / 1024.0),
    ) {
        out.push(line);
    }
    if let Some(line) = best_of(
        t,
        "Server CPU",
        "per 1,000 deliveries (server CPU over publishing and drain, idle work such as heartbeats and empty polls included)",
        |r| r.server_cpu_ms_per_1k_deliveries,
        |v| format!("{v:.2} ms"),
    ) {
        out.push(line);
    }
    let saturated: Vec<&str> = t
        .iter()
        .filter(|r| r.loadgen_saturated)
        .map(|r| r.transport.as_str())
        .collect();
    if saturated.is_empty() {
        let worst = t.iter().map(|r| r.loadgen_cpu_percent).fold(0.0, f64::max);
        out.push(format!(
            "The load generator was not saturated (highest CPU {worst:.0}% of one core, scheduling lag p99 at most {} ms), so the figures describe the transports.",
            ms(t.iter().map(|r| r.loadgen_lag_p99_us).max().unwrap_or(0) as f64)
        ));
    } else {
        out.push(format!("**Warning: the load generator or the machine it shares was saturated during {}**: those figures describe them, not the transport (see the warnings). Lower the rates or subscribers, or run on a quiet machine.", saturated.join(", ")));
    }
    out
}

fn completeness(t: &[TransportResult]) -> String {
    let bad: Vec<String> = t
        .iter()
        .filter(|r| r.lost + r.duplicates + r.out_of_order + r.unexpected > 0)
        .map(|r| {
            format!(
                "`{}` lost {}, duplicated {}, reordered {}, unexpected {} (gap notices {})",
                r.transport, r.lost, r.duplicates, r.out_of_order, r.unexpected, r.gaps
            )
        })
        .collect();
    let reconnects: u64 = t.iter().map(|r| r.reconnects).sum();
    let churn = if reconnects > 0 {
        format!(", across {reconnects} reconnects that resumed from their cursors")
    } else {
        String::new()
    };
    if bad.is_empty() {
        let delivered: u64 = t.iter().map(|r| r.delivered).sum();
        format!(
            "**Completeness**: every transport delivered every owed event exactly once and in order ({delivered} deliveries{churn})."
        )
    } else {
        format!("**Completeness problems**: {}.", bad.join("; "))
    }
}

fn latency(t: &[TransportResult]) -> Option<String> {
    let timed: Vec<&TransportResult> = t.iter().filter(|r| r.latency_us.count > 0).collect();
    let p50 = timed.iter().min_by_key(|r| r.latency_us.p50)?;
    let p99 = timed.iter().min_by_key(|r| r.latency_us.p99)?;
    let list = timed
        .iter()
        .map(|r| {
            format!(
                "`{}` {} / {} ms",
                r.transport,
                ms(r.latency_us.p50 as f64),
                ms(r.latency_us.p99 as f64)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "**Latency** (p50 / p99 from the intended send time): {list}. Lowest median: `{}`; lowest p99: `{}`.",
        p50.transport, p99.transport
    ))
}

/// Delivery time without any waiting: the mean latency of the fastest push transport in the run (none when
/// no push transport ran; the model then uses 0).
fn delivery_time_us(t: &[TransportResult]) -> Option<f64> {
    t.iter()
        .filter(|r| r.transport.is_streaming() && r.latency_us.count > 0)
        .map(|r| r.latency_us.mean)
        .reduce(f64::min)
}

/// What the subscribers' sockets sent twice; `None` for results from before it was measured.
fn retransmits(t: &[TransportResult]) -> Option<String> {
    let counted: Vec<(&TransportResult, u64)> = t
        .iter()
        .filter_map(|r| r.retransmits.map(|n| (r, n)))
        .collect();
    if counted.is_empty() {
        return None;
    }
    let list = counted
        .iter()
        .map(|(r, n)| format!("`{}` {n}", r.transport))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "**Retransmissions** by the subscribers' sockets (TCP segments they sent again — requests, handshakes, frames — over the run; the server's resends of events are its own sockets' and not counted here): {list}."
    ))
}

fn polling_model(t: &[TransportResult]) -> Option<String> {
    let poll = t
        .iter()
        .find(|r| r.transport == Transport::Poll && r.latency_us.count > 0)?;
    let wait_ms = poll.model.poll_wait_ms;
    let delivery_ms = delivery_time_us(t).map_or(0.0, |us| us / 1000.0);
    let model_ms = wait_ms + delivery_ms;
    let measured_ms = poll.latency_us.mean / 1000.0;
    Some(format!(
        "**Polling follows its model**: mean latency {measured_ms:.1} ms against interval/2 + delivery = {wait_ms:.1} + {delivery_ms:.2} = {model_ms:.1} ms (ratio {:.2}). An event waits on average half of the {} ms interval for the next poll, whatever the server does; only a shorter interval, paid for in requests, lowers it.",
        measured_ms / model_ms,
        poll.model.poll_interval_ms
    ))
}

/// A measured mean further than this share (and [`MODEL_SLACK_MS`]) from its network model is flagged.
const MODEL_TOLERANCE: f64 = 0.25;
/// Slack under which a difference from the model is not flagged: the server's and the publisher's own
/// milliseconds, which the network models leave out.
const MODEL_SLACK_MS: f64 = 5.0;

/// Each transport's median latency against its model on the emulated network (medians, which rare
/// retransmission timeouts leave alone). The path: `d`, the one-way delay (half the measured round trip
/// `r`), plus what one event's fan-out meets on the link — its packets keep their order, so within the
/// burst of one event's deliveries each waits for the latest-jittered before it ([`burst_jitter_ms`]),
/// and a rate-limited downlink sends the burst one packet after another (half its serialization on
/// average). Over that path, with the publisher's regular schedule giving each subscriber an event every
/// `Δ`: push transports pay the path; long-polling the path while `Δ ≥ r` (the next request is back
/// before the next event), else the path + `r/2` (events wait for the request in flight: an answer per
/// round trip); polling `max(interval, r)/2` + the path (the poller paces from each request's start and
/// waits for its answer, so it polls every interval or every round trip, whichever is longer).
fn network_models(result: &RunResult) -> Option<String> {
    let network = result.network.as_ref()?;
    let rtt = network.measured_rtt_ms;
    let one_way = rtt / 2.0;
    let parts: Vec<String> = result
        .transports
        .iter()
        .filter(|r| r.latency_us.count > 0 && r.published > 0 && r.delivered > 0)
        .map(|r| {
            let burst = r.delivered as f64 / r.published as f64;
            let jitter = burst_jitter_ms(network.asked.jitter_ms, burst);
            // Each delivery travels in at least one segment: its bytes plus 52 of IP and TCP headers.
            let packet_bits = (r.bytes_received as f64 / r.delivered as f64 + 52.0) * 8.0;
            let serialization = match network.asked.down_kbit {
                0 => 0.0,
                kbit => burst * packet_bits / kbit as f64 / 2.0,
            };
            let path = one_way + jitter + serialization;
            let gap_ms = 1000.0 / r.model.events_per_subscriber_per_s.max(f64::MIN_POSITIVE);
            let (model, why) = match r.transport {
                Transport::Poll => (
                    r.model.poll_interval_ms.max(rtt) / 2.0 + path,
                    "max(interval, RTT)/2 + path",
                ),
                Transport::LongPoll if gap_ms < rtt => (path + rtt / 2.0, "path + RTT/2"),
                _ => (path, "path"),
            };
            let measured = r.latency_us.p50 as f64 / 1000.0;
            let off = measured - model;
            let flag = if off.abs() > MODEL_SLACK_MS && off.abs() > MODEL_TOLERANCE * model {
                format!(
                    " — **{:+.0} % off its model: a harness problem or an effect worth explaining**",
                    off / model * 100.0
                )
            } else {
                String::new()
            };
            format!(
                "`{}` {measured:.1} ms against {why} = {model:.1} ms{flag}",
                r.transport
            )
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "**The network's models** (median latency; measured RTT {rtt:.1} ms, one way {one_way:.1} ms; path = one way + the fan-out's jitter and serialization on the link): {}. Push transports pay the path; long-polling pays half a round trip more once events come faster than round trips; polling pays half its period on top.",
            parts.join("; ")
        )
    })
}

/// Mean extra delay of the deliveries of one event, `burst` packets in a row, when each packet's delay
/// is uniform in ±`jitter_ms` but none may overtake the one before: the i-th waits for the latest of
/// the first i, whose expected excess over the mean is `jitter × (i − 1)/(i + 1)`.
fn burst_jitter_ms(jitter_ms: f64, burst: f64) -> f64 {
    let n = burst.round().max(1.0) as u64;
    let sum: f64 = (1..=n).map(|i| (i - 1) as f64 / (i + 1) as f64).sum();
    jitter_ms * sum / n as f64
}

fn requests(t: &[TransportResult]) -> Option<String> {
    let with: Vec<&TransportResult> = t
        .iter()
        .filter(|r| r.requests_per_delivery.is_some())
        .collect();
    if with.is_empty() {
        return None;
    }
    let list = with
        .iter()
        .map(|r| {
            format!(
                "`{}` {:.3}",
                r.transport,
                r.requests_per_delivery.unwrap_or(0.0)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut line = format!("**Requests per delivery**: {list}.");
    if let Some(poll) = with.iter().find(|r| r.transport == Transport::Poll) {
        let empty = if poll.requests > 0 {
            poll.empty_polls as f64 / poll.requests as f64 * 100.0
        } else {
            0.0
        };
        let per_subscriber = poll.delivered as f64 / poll.subscribers_connected.max(1) as f64;
        let poll_rate = 1000.0 / poll.model.poll_interval_ms;
        line.push_str(&format!(
            " Polling pays per interval, not per event: {poll_rate:.2} polls/s per subscriber for {:.3} events/s is {:.2} requests per delivery while events flow; over the {:.1} s from the first publish to the end of the drain, {poll_rate:.2} × {:.1} s ÷ {per_subscriber:.2} deliveries per subscriber = {:.2} (polls during the launch come on top). {empty:.0}% of its polls came back empty.",
            poll.model.events_per_subscriber_per_s,
            poll.model.poll_requests_per_delivery,
            poll.window_s,
            poll.window_s,
            poll_rate * poll.window_s / per_subscriber.max(1e-9),
        ));
    }
    if let Some(lp) = with.iter().find(|r| r.transport == Transport::LongPoll) {
        let answers = lp.requests.saturating_sub(lp.requests_cut);
        let answers_with_events = answers.saturating_sub(lp.empty_polls);
        line.push_str(&format!(
            " Long-polling pays one request per answer: {answers_with_events} of its {answers} answers carried events ({:.2} events each), {} were empty (hold timeouts when nothing happened, and the first `/poll` of each subscriber, which learns the cursor), and {} requests were still held when churn or the end of the run cut them.",
            lp.delivered as f64 / answers_with_events.max(1) as f64,
            lp.empty_polls,
            lp.requests_cut
        ));
    }
    if with.iter().any(|r| r.transport.is_streaming()) {
        line.push_str(" Streaming transports pay one request per connection, amortized over every event it carries.");
    }
    Some(line)
}

/// Why the bytes differ: a request/answer transport pays its HTTP exchange per request, a stream pays its
/// framing per message.
fn wire_reasons(t: &[TransportResult]) -> String {
    let mut parts = Vec::new();
    for r in t.iter().filter(|r| r.requests > 0 && r.delivered > 0) {
        let bytes = (r.bytes_received + r.bytes_sent) as f64;
        if r.transport.is_streaming() {
            parts.push(format!("`{}` pays its HTTP exchange once per connection and then about {:.0} B per delivery of framing, event JSON and heartbeats", r.transport, bytes / r.delivered as f64));
        } else {
            parts.push(format!(
                "`{}` pays about {:.0} B per HTTP request and answer, {:.2} requests per delivery",
                r.transport,
                bytes / r.requests as f64,
                r.requests as f64 / r.delivered as f64
            ));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" Why: {}.", parts.join("; "))
    }
}

/// What TLS and h2 change in the connection figures: subscriptions per connection, HPACK, resumed
/// handshakes. `None` in cleartext.
fn connections(result: &RunResult) -> Option<String> {
    let client = result.scenario.get("client")?;
    let h2 = client.get("http").and_then(|v| v.as_str()) == Some("2");
    let per_connection = client
        .get("subscribers_per_connection")
        .and_then(|v| v.as_u64())
        .unwrap_or(1);
    let mut parts = Vec::new();
    for r in &result.transports {
        let Some(handshakes) = &r.tls_handshake_us else {
            continue;
        };
        let resumed = r.tls_resumed_handshakes.unwrap_or(0);
        parts.push(format!(
            "`{}` {} TLS connections for {} subscribers ({resumed} of {} handshakes resumed)",
            r.transport, r.connect_us.count, r.subscribers_connected, handshakes.count
        ));
    }
    if parts.is_empty() {
        return None;
    }
    let how = if h2 {
        format!(
            "Subscribers spoke h2, {per_connection} to a connection: each subscription is a stream (WebSocket an extended CONNECT stream), one handshake serves the connection's subscribers, and HPACK shrinks the headers that polling and long-polling repeat on every request to a few table indices (compare with the same scenario over `--tls` alone, HTTP/1.1)"
        )
    } else {
        "Subscribers spoke HTTP/1.1 over TLS, a connection each: every connection pays a handshake, and a reconnect resumes its session when the client kept a ticket".to_owned()
    };
    Some(format!(
        "**Connections**: {how}. {}; bytes are counted below TLS, so they are the ciphertext on the wire.",
        parts.join(", ")
    ))
}

fn best_of(
    t: &[TransportResult],
    title: &str,
    what: &str,
    value: impl Fn(&TransportResult) -> Option<f64>,
    show: impl Fn(f64) -> String,
) -> Option<String> {
    let with: Vec<(&TransportResult, f64)> =
        t.iter().filter_map(|r| value(r).map(|v| (r, v))).collect();
    let (best, best_value) = with.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1))?;
    let (worst, worst_value) = with.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let list = with
        .iter()
        .map(|(r, v)| format!("`{}` {}", r.transport, show(*v)))
        .collect::<Vec<_>>()
        .join(", ");
    if with.len() > 1 && worst_value <= best_value * 1.1 {
        return Some(format!(
            "**{title}** {what}: {list}. No clear winner: all within 10% of each other."
        ));
    }
    let factor = if best_value > 0.0 && with.len() > 1 {
        format!(
            " ({:.1}× less than `{}`)",
            worst_value / best_value,
            worst.transport
        )
    } else {
        String::new()
    };
    Some(format!(
        "**{title}** {what}: {list}. Cheapest: `{}`{factor}.",
        best.transport
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{AskedNetwork, LinkCounts, NetworkResult, Percentiles, test_result};

    fn on_network(latencies_us: &[u64], rtt_ms: f64) -> RunResult {
        let mut r = test_result(latencies_us);
        r.network = Some(Box::new(NetworkResult {
            profile: "custom".into(),
            asked: AskedNetwork {
                rtt_ms,
                jitter_ms: 0.0,
                loss_pct: 0.0,
                down_kbit: 0,
                up_kbit: 0,
            },
            measured_rtt_ms: rtt_ms,
            link: LinkCounts::default(),
            engine: Default::default(),
        }));
        r
    }

    #[test]
    fn both_reports_list_each_transports_retransmissions_when_they_were_counted() {
        let mut r = test_result(&[1_000; 10]);
        r.transports[0].retransmits = Some(17);
        let mut md = Vec::new();
        crate::render::md::write(&r, &mut md).unwrap();
        let mut html = Vec::new();
        crate::render::html::write(&r, &mut html).unwrap();
        for page in [md, html] {
            let page = String::from_utf8(page).unwrap();
            assert!(page.contains("Retransmissions"), "{page}");
            assert!(
                page.contains("`ws` 17") || page.contains("<code>ws</code> 17"),
                "{page}"
            );
        }
        r.transports[0].retransmits = None;
        assert!(!findings(&r).iter().any(|f| f.contains("Retransmissions")));
    }

    #[test]
    fn over_tls_the_reading_counts_connections_and_resumed_handshakes_and_names_h2() {
        let mut r = test_result(&[1_000; 10]);
        assert!(connections(&r).is_none(), "cleartext: nothing to say");
        r.scenario["client"] =
            serde_json::json!({ "tls": true, "http": "2", "subscribers_per_connection": 5 });
        let t = &mut r.transports[0];
        (t.subscribers_connected, t.connect_us.count) = (10, 2);
        t.tls_handshake_us = Some(Percentiles {
            count: 3,
            ..Percentiles::default()
        });
        t.tls_resumed_handshakes = Some(1);
        let line = connections(&r).unwrap();
        assert!(line.contains("h2, 5 to a connection"), "{line}");
        assert!(
            line.contains("`ws` 2 TLS connections for 10 subscribers (1 of 3 handshakes resumed)"),
            "{line}"
        );
        r.scenario["client"] = serde_json::json!({ "tls": true });
        assert!(
            connections(&r)
                .unwrap()
                .contains("HTTP/1.1 over TLS, a connection each")
        );
    }

    #[test]
    fn a_push_transport_is_held_to_the_one_way_delay() {
        let near = network_models(&on_network(&[52_000, 53_000, 54_000], 100.0)).unwrap();
        assert!(
            near.contains("`ws` 53.0 ms against path = 50.0 ms"),
            "{near}"
        );
        assert!(!near.contains("off its model"), "{near}");
        let far = network_models(&on_network(&[90_000, 91_000, 92_000], 100.0)).unwrap();
        assert!(far.contains("+82 % off its model"), "{far}");
        assert!(
            network_models(&test_result(&[1_000])).is_none(),
            "loopback has no network model"
        );
    }

    #[test]
    fn long_polling_pays_half_a_round_trip_more_once_events_come_faster_than_round_trips() {
        let mut r = on_network(&[100_000], 100.0);
        r.transports[0].transport = Transport::LongPoll;
        r.transports[0].model.events_per_subscriber_per_s = 20.0; // every 50 ms, faster than the RTT
        let dense = network_models(&r).unwrap();
        assert!(dense.contains("path + RTT/2 = 100.0 ms"), "{dense}");
        r.transports[0].model.events_per_subscriber_per_s = 4.0;
        assert!(
            network_models(&r)
                .unwrap()
                .contains("against path = 50.0 ms")
        );
    }

    #[test]
    fn a_burst_that_keeps_its_order_is_delayed_toward_the_largest_jitter() {
        assert_eq!(
            burst_jitter_ms(10.0, 1.0),
            0.0,
            "a lone packet is jittered around the mean"
        );
        assert!(
            (burst_jitter_ms(12.0, 2.0) - 2.0).abs() < 1e-9,
            "the second waits J/3 on average"
        );
        let hundred = burst_jitter_ms(10.0, 100.0);
        assert!((9.0..10.0).contains(&hundred), "{hundred}");
    }
}
