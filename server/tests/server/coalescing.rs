//! `--write-interval-ms`: a stream, SSE or WebSocket subscriber writes at most once per interval, so that a
//! burst of events goes out in fewer writes (`pushbench_writes_total`) — with nothing lost, repeated or
//! reordered, resume and gap notices as without it, and no wait at shutdown.

use std::time::Duration;

use pushbench_common::Transport;
use pushbench_common::wire::Gap;

use crate::client::{Received, Subscriber, TestServer, event_ids, publish_via};

const STREAMING: [Transport; 3] = [Transport::Stream, Transport::Sse, Transport::Ws];
const BURST: usize = 20;

async fn writes(server: &TestServer, transport: Transport) -> u64 {
    server.stats().await["transports"][transport.as_str()]["writes"]
        .as_u64()
        .expect("writes are counted per transport")
}

async fn connect_all(server: &TestServer, topic: &str) -> Vec<Subscriber> {
    let mut subscribers = Vec::new();
    for transport in STREAMING {
        subscribers.push(Subscriber::connect(server, transport, &[topic], None).await);
    }
    subscribers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pacing_a_burst_arrives_in_fewer_writes_than_events() {
    // The longest interval: the burst (published all at once) is out well within it, however slow the
    // machine, so it leaves in the write of its first event and the one at the interval's end.
    let server = TestServer::start(&["--write-interval-ms", "1000"]).await;
    let mut subscribers = connect_all(&server, "burst").await;
    let mut before = Vec::new();
    for transport in STREAMING {
        before.push(writes(&server, transport).await);
    }
    let data: Vec<String> = (0..BURST).map(|i| format!("event {i}")).collect();
    let acks =
        futures_util::future::join_all(data.iter().map(|d| server.publish("burst", d))).await;
    let mut ids: Vec<u64> = acks.iter().map(|a| a.id).collect();
    ids.sort_unstable();
    for (subscriber, (transport, before)) in
        subscribers.iter_mut().zip(STREAMING.iter().zip(before))
    {
        let received = event_ids(&subscriber.collect_until(*ids.last().unwrap()).await);
        assert_eq!(received, ids, "{transport}: every event once, in order");
        let writes = writes(&server, *transport).await - before;
        assert!(
            (1..=2).contains(&writes),
            "{transport}: {BURST} events in {writes} writes; pacing should gather them into two at most"
        );
    }
}

#[tokio::test]
async fn events_published_one_at_a_time_are_one_write_each_paced_or_not() {
    // The contrast that shows the counter counts writes: each event is published only once the previous
    // one has arrived, so there is never more than one to send.
    for interval in ["0", "20"] {
        let server = TestServer::start(&["--write-interval-ms", interval]).await;
        one_write_per_event(&server).await;
    }
}

async fn one_write_per_event(server: &TestServer) {
    let mut subscribers = connect_all(server, "one").await;
    let mut before = Vec::new();
    for transport in STREAMING {
        before.push(writes(server, transport).await);
    }
    for i in 0..5 {
        let id = server.publish("one", &format!("{i}")).await.id;
        for subscriber in &mut subscribers {
            assert_eq!(event_ids(&subscriber.collect_until(id).await), vec![id]);
        }
    }
    for (transport, before) in STREAMING.iter().zip(before) {
        assert_eq!(writes(server, *transport).await - before, 5, "{transport}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pacing_concurrent_publishers_lose_and_repeat_nothing() {
    let server = TestServer::start(&["--write-interval-ms", "5", "--max-batch-events", "7"]).await;
    let mut subscribers = connect_all(&server, "many").await;
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let (http, url) = (server.http.clone(), server.url("/publish/many"));
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..100 {
                    let ack = publish_via(&http, &url, format!("publisher {p} event {i}")).await;
                    ids.push(ack.id);
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for publisher in publishers {
        ids.extend(publisher.await.unwrap());
    }
    ids.sort_unstable();
    for (subscriber, transport) in subscribers.iter_mut().zip(STREAMING) {
        let received = event_ids(&subscriber.collect_until(*ids.last().unwrap()).await);
        assert_eq!(received, ids, "{transport}");
    }
    let stats = server.stats().await;
    for transport in STREAMING {
        let t = &stats["transports"][transport.as_str()];
        assert_eq!(t["deliveries"], 400, "{transport}");
        // Batches are cut at --max-batch-events, paced or not.
        assert!(t["writes"].as_u64().unwrap() >= 400 / 7, "{transport}");
    }
}

#[tokio::test]
async fn with_pacing_resume_and_gap_notices_are_unchanged() {
    let server = TestServer::start(&["--write-interval-ms", "5", "--replay-events", "50"]).await;
    let mut ids = Vec::new();
    for i in 0..120 {
        ids.push(server.publish("r", &format!("{i}")).await.id);
    }
    for transport in STREAMING {
        // A cursor inside the buffer: exactly the later events.
        let mut resumed = Subscriber::connect(&server, transport, &["r"], Some(ids[100])).await;
        let received = resumed.collect_until(*ids.last().unwrap()).await;
        assert_eq!(event_ids(&received), ids[101..], "{transport}");
        // A cursor older than the buffer: the gap notice, then what is held.
        let mut behind = Subscriber::connect(&server, transport, &["r"], Some(3)).await;
        let received = behind.collect_until(*ids.last().unwrap()).await;
        assert_eq!(
            received[0],
            Received::Gap(Gap {
                after: 3,
                resume: ids[70]
            }),
            "{transport}"
        );
        assert_eq!(event_ids(&received[1..]), ids[70..], "{transport}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_what_a_paced_subscriber_holds_without_waiting_for_the_interval() {
    let interval = Duration::from_millis(1000);
    let server = TestServer::start(&["--write-interval-ms", "1000"]).await;
    let mut subscribers = connect_all(&server, "last").await;
    // The first event leaves at once and starts every subscriber's interval; the second is held.
    let first = server.publish("last", "sent").await.id;
    for subscriber in &mut subscribers {
        assert_eq!(
            event_ids(&subscriber.collect_until(first).await),
            vec![first]
        );
    }
    let held = server.publish("last", "held").await.id;
    let shutdown = server.shutdown().await;
    assert!(
        shutdown < interval * 4 / 5,
        "shutdown took {shutdown:?}: it waited for the {interval:?} write interval"
    );
    for (subscriber, transport) in subscribers.iter_mut().zip(STREAMING) {
        assert_eq!(
            event_ids(&subscriber.collect_until(held).await),
            vec![held],
            "{transport}: the held event is flushed"
        );
        assert!(subscriber.read_to_end().await, "{transport} ends cleanly");
    }
}
