//! Shutdown ends every open long-poll, stream, SSE and WebSocket connection cleanly, and closes idle
//! kept-alive connections rather than waiting for their next request.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_kept_alive_polling_connections_without_waiting_for_the_grace_period()
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A grace period far longer than the test's patience: shutdown must not need it.
    let server = TestServer::start(&["--shutdown-grace-ms", "600000"]).await;
    let mut idle = Vec::new();
    // One kept-alive connection per path: the direct path's poll and long-poll, and hyper's.
    for path in [
        "/poll?topic=s",
        "/longpoll?topic=s&after=0&timeout_ms=1",
        "/healthz",
    ] {
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = [0u8; 512];
        let n = tcp.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{path}");
        idle.push(tcp);
    }
    // `shutdown` fails the test when the server takes longer than PATIENCE.
    server.shutdown().await;
    for mut tcp in idle {
        let mut rest = Vec::new();
        // Closed by the server: the read ends (after any bytes left of the answer).
        let read = tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "an idle connection was left open");
    }
}
