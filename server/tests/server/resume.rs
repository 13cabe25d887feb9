//! Resume: a subscriber cut off mid-stream continues from its cursor with nothing lost or repeated; a
//! cursor older than the replay buffer yields an explicit gap notice; a subscriber that stops reading
//! falls behind the buffer and is told so.

use pushbench_common::Transport;
use pushbench_common::wire::Gap;

use crate::client::{Received, Subscriber, TestServer, event_ids};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_cut_off_mid_stream_resumes_without_loss_or_repetition() {
    let server = TestServer::start(&["--max-batch-events", "50"]).await;
    for transport in Transport::ALL {
        let topic = format!("resume.{transport}");
        let mut first = Subscriber::connect(&server, transport, &[&topic], None).await;
        let mut published = Vec::new();
        for i in 0..300 {
            published.push(server.publish(&topic, &format!("{i}")).await.id);
        }
        let mut received = event_ids(&first.collect_until(published[99]).await);
        let cursor = first.cursor;
        assert!(
            cursor < *published.last().unwrap(),
            "{transport}: cut off before the end"
        );
        drop(first); // mid-stream: more events were in flight

        let mut second = match transport {
            // A reconnecting EventSource keeps its URL and sends the cursor as Last-Event-ID.
            Transport::Sse => {
                Subscriber::connect_with(&server, transport, &[&topic], Some(1), Some(cursor)).await
            }
            _ => Subscriber::connect(&server, transport, &[&topic], Some(cursor)).await,
        };
        received.extend(event_ids(
            &second.collect_until(*published.last().unwrap()).await,
        ));
        assert_eq!(received, published, "{transport}");
    }
}

#[tokio::test]
async fn a_cursor_older_than_the_buffer_gets_a_gap_notice_first() {
    let server = TestServer::start(&["--replay-events", "50"]).await;
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(server.publish("g", &format!("{i}")).await.id);
    }
    let held = &ids[150..];
    for transport in Transport::ALL {
        let mut subscriber = Subscriber::connect(&server, transport, &["g"], Some(ids[9])).await;
        let received = subscriber.collect_until(*ids.last().unwrap()).await;
        assert_eq!(
            received[0],
            Received::Gap(Gap {
                after: ids[9],
                resume: held[0]
            }),
            "{transport}"
        );
        assert_eq!(event_ids(&received[1..]), held, "{transport}");
    }
    let stats = server.stats().await;
    for transport in Transport::ALL {
        assert_eq!(
            stats["transports"][transport.as_str()]["gaps"],
            1,
            "{transport}"
        );
        assert_eq!(
            stats["transports"][transport.as_str()]["slow_consumer_gaps"],
            0,
            "{transport}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_falls_behind_and_gets_a_gap_not_unbounded_memory() {
    // 1,200 events of 32 KiB (38 MiB) cannot all sit in socket buffers; the replay buffer holds 20.
    let server = TestServer::start(&["--replay-events", "20", "--max-batch-events", "5"]).await;
    let payload = "x".repeat(32 * 1024);
    for transport in [Transport::Stream, Transport::Sse, Transport::Ws] {
        let topic = format!("slow.{transport}");
        let mut subscriber = Subscriber::connect(&server, transport, &[&topic], None).await;
        let mut last = 0;
        for _ in 0..1200 {
            last = server.publish(&topic, &payload).await.id;
        }
        let received = subscriber.collect_until(last).await;
        let gaps: Vec<&Gap> = received
            .iter()
            .filter_map(|r| {
                if let Received::Gap(g) = r {
                    Some(g)
                } else {
                    None
                }
            })
            .collect();
        assert!(
            !gaps.is_empty(),
            "{transport}: a reader this far behind must be told it missed events"
        );
        // Whatever arrived is in order, and after the last gap everything up to the end arrived.
        let ids: Vec<u64> = received
            .iter()
            .filter_map(|r| {
                if let Received::Event { id, .. } = r {
                    Some(*id)
                } else {
                    None
                }
            })
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{transport}: in order");
        let resume = gaps.last().unwrap().resume;
        let tail: Vec<u64> = ids.iter().copied().filter(|&id| id >= resume).collect();
        assert_eq!(
            tail,
            (resume..=last).collect::<Vec<_>>(),
            "{transport}: complete after the gap"
        );
        let stats = server.stats().await;
        assert!(
            stats["transports"][transport.as_str()]["slow_consumer_gaps"]
                .as_u64()
                .unwrap()
                >= 1,
            "{transport}"
        );
    }
}

/// Resumes `transport` on `topic` from `cursor` (SSE as a reconnecting EventSource: `Last-Event-ID`).
async fn resume(server: &TestServer, transport: Transport, topic: &str, cursor: u64) -> Subscriber {
    match transport {
        Transport::Sse => {
            Subscriber::connect_with(server, transport, &[topic], Some(1), Some(cursor)).await
        }
        _ => Subscriber::connect(server, transport, &[topic], Some(cursor)).await,
    }
}

#[tokio::test]
async fn a_cursor_from_before_a_restart_gets_a_gap_notice_then_the_new_events() {
    let before = TestServer::start(&[]).await;
    let mut old = Vec::new();
    for i in 0..10 {
        old.push(before.publish("r", &format!("old {i}")).await.id);
    }
    before.shutdown().await;
    let after = TestServer::start(&[]).await;
    let mut new = Vec::new();
    for i in 0..3 {
        new.push(after.publish("r", &format!("new {i}")).await.id);
    }
    assert!(
        new[0] > old[9],
        "ids repeat across a restart: {old:?} then {new:?}"
    );
    for transport in Transport::ALL {
        let mut subscriber = resume(&after, transport, "r", old[9]).await;
        let received = subscriber.collect_until(new[2]).await;
        assert_eq!(
            received[0],
            Received::Gap(Gap {
                after: old[9],
                resume: new[0]
            }),
            "{transport}"
        );
        assert_eq!(event_ids(&received[1..]), new, "{transport}");
    }
}

#[tokio::test]
async fn a_cursor_ahead_of_every_issued_id_gets_a_notice_and_then_what_is_published() {
    let server = TestServer::start(&[]).await;
    let head = server.publish("f", "before").await.id;
    let forged = head + 1_000_000_000;
    // A poll answers the notice at once, with the head as the cursor to continue from.
    for endpoint in ["poll", "longpoll"] {
        let url = server.url(&format!("/{endpoint}?topic=f&after={forged}"));
        let answer: serde_json::Value = server
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            answer,
            serde_json::json!({
                "events": [],
                "next": head,
                "gap": {"type": "gap", "after": forged, "resume": head + 1}
            }),
            "{endpoint}"
        );
    }
    // A stream is greeted with the head as its cursor, then told, then served what comes.
    for transport in [Transport::Stream, Transport::Sse, Transport::Ws] {
        let topic = format!("forged.{transport}");
        let mut subscriber = resume(&server, transport, &topic, forged).await;
        let greeted = subscriber.cursor;
        assert!(
            greeted < forged,
            "{transport}: greeted with the forged cursor"
        );
        let next = server.publish(&topic, "next").await.id;
        let received = subscriber.collect_until(next).await;
        assert_eq!(
            received[0],
            Received::Gap(Gap {
                after: forged,
                resume: greeted + 1
            }),
            "{transport}"
        );
        assert_eq!(event_ids(&received[1..]), vec![next], "{transport}");
    }
}

#[tokio::test]
async fn cursor_zero_reads_from_the_start_of_this_run_without_a_notice() {
    let server = TestServer::start(&[]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(server.publish("z", &format!("{i}")).await.id);
    }
    for transport in Transport::ALL {
        let mut subscriber = resume(&server, transport, "z", 0).await;
        let received = subscriber.collect_until(ids[4]).await;
        assert_eq!(event_ids(&received), ids, "{transport}");
        assert!(
            received.iter().all(|r| matches!(r, Received::Event { .. })),
            "{transport}: {received:?}"
        );
    }
}
