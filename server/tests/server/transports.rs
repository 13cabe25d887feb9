//! Every transport delivers the same events: complete, in id order, without duplicates.

use pushbench_common::Transport;

use crate::client::{Received, Subscriber, TestServer, publish_via};

const PUBLISHERS: usize = 4;
const EVENTS_PER_PUBLISHER: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_events_on_two_topics_arrive_complete_and_in_order_on_every_transport() {
    let server = TestServer::start(&[]).await;
    let mut subscribers = Vec::new();
    for transport in Transport::ALL {
        subscribers
            .push(Subscriber::connect(&server, transport, &["room.a", "room.b"], None).await);
    }

    // Concurrent publishers over three topics; the subscribers follow two of them.
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let (http, base) = (server.http.clone(), server.url("/publish/"));
        publishers.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..EVENTS_PER_PUBLISHER {
                let topic = ["room.a", "room.b", "room.c"][(p + i) % 3];
                let data = format!("publisher {p} event {i} \u{e9}\"quoted\"");
                let ack = publish_via(&http, &format!("{base}{topic}"), data.clone()).await;
                acks.push((ack.id, topic, data));
            }
            acks
        }));
    }
    let mut expected: Vec<Received> = Vec::new();
    for publisher in publishers {
        for (id, topic, data) in publisher.await.unwrap() {
            if topic != "room.c" {
                expected.push(Received::Event {
                    id,
                    topic: topic.into(),
                    data,
                });
            }
        }
    }
    let last = server.publish("room.a", "last").await;
    expected.push(Received::Event {
        id: last.id,
        topic: "room.a".into(),
        data: "last".into(),
    });
    expected.sort_by_key(|r| match r {
        Received::Event { id, .. } => *id,
        Received::Gap(_) => 0,
    });
    assert!(expected.len() >= 800, "two of three topics of 1,200 events");

    for mut subscriber in subscribers {
        let received = subscriber.collect_until(last.id).await;
        assert_eq!(received.len(), expected.len());
        assert_eq!(received, expected);
    }
    let stats = server.stats().await;
    for transport in Transport::ALL {
        let deliveries = stats["transports"][transport.as_str()]["deliveries"]
            .as_u64()
            .unwrap();
        assert_eq!(
            deliveries,
            expected.len() as u64,
            "{transport} deliveries counted"
        );
    }
}

#[tokio::test]
async fn a_subscription_without_cursor_starts_at_the_head() {
    let server = TestServer::start(&[]).await;
    let before = server.publish("t", "before").await;
    for transport in Transport::ALL {
        let mut subscriber = Subscriber::connect(&server, transport, &["t"], None).await;
        assert!(subscriber.cursor >= before.id, "{transport}");
        let after = server.publish("t", transport.as_str()).await;
        let received = subscriber.collect_until(after.id).await;
        assert_eq!(
            received,
            vec![Received::Event {
                id: after.id,
                topic: "t".into(),
                data: transport.as_str().into()
            }],
            "{transport}"
        );
    }
}

/// WebSocket clients publish over their socket. The server keeps a small WebSocket read buffer (idle
/// sessions only send pongs); a publish of the largest accepted payload is still read whole.
#[tokio::test]
async fn websocket_clients_can_publish() {
    let server = TestServer::start(&[]).await;
    let mut listener = Subscriber::connect(&server, Transport::Sse, &["chat"], None).await;
    let mut ws = Subscriber::connect(&server, Transport::Ws, &["other"], None).await;
    for data in ["over ws".to_owned(), "x".repeat(64 * 1024)] {
        let reply = ws
            .ws_request(&format!(
                r#"{{"type":"publish","topic":"chat","data":"{data}"}}"#
            ))
            .await;
        let pushbench_common::wire::Control::Published(ack) = reply else {
            panic!("expected an ack, got {reply:?}")
        };
        let received = listener.collect_until(ack.id).await;
        assert_eq!(
            received,
            vec![Received::Event {
                id: ack.id,
                topic: "chat".into(),
                data
            }]
        );
    }
}
