//! Shutdown ends every open long-poll, stream, SSE and WebSocket connection cleanly.

use pushbench_common::Transport;
use pushbench_common::wire::PollResponse;

use crate::client::{PATIENCE, Subscriber, TestServer};

const STREAMS_PER_TRANSPORT: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_kind_of_open_connection_cleanly() {
    let server = TestServer::start(&[]).await;
    let mut streams = Vec::new();
    for transport in [Transport::Stream, Transport::Sse, Transport::Ws] {
        for _ in 0..STREAMS_PER_TRANSPORT {
            streams.push((
                transport,
                Subscriber::connect(&server, transport, &["s"], None).await,
            ));
        }
    }
    let long_polls: Vec<_> = (0..STREAMS_PER_TRANSPORT)
        .map(|_| {
            let request = server
                .http
                .get(server.url("/longpoll?topic=s&after=0&timeout_ms=60000"))
                .send();
            tokio::spawn(request)
        })
        .collect();
    // Wait until every long-poll is held by the server.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.stats().await["transports"]["longpoll"]["connections_open"]
        != STREAMS_PER_TRANSPORT
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "long-polls never all arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let readers: Vec<_> = streams
        .into_iter()
        .map(|(transport, mut subscriber)| {
            tokio::spawn(async move { (transport, subscriber.read_to_end().await) })
        })
        .collect();
    server.shutdown().await;

    for reader in readers {
        let (transport, clean) = reader.await.unwrap();
        assert!(
            clean,
            "{transport} stream did not end cleanly (WebSocket: close frame 1001; HTTP: final chunk)"
        );
    }
    for long_poll in long_polls {
        let response = long_poll
            .await
            .unwrap()
            .expect("long-poll answered, not cut");
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.unwrap();
        let answer: PollResponse<'_> = serde_json::from_slice(&body).unwrap();
        assert!(answer.events.is_empty());
    }
}
