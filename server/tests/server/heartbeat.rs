//! Keep-alives: an idle subscription hears from the server every `--heartbeat-ms`, so that proxies and
//! clients can tell a quiet feed from a dead connection — a heartbeat line on the NDJSON stream, an SSE
//! comment (which `EventSource` ignores), a WebSocket ping. The load generator tells peer servers to send
//! these very bytes (`pushbench_common::wire`), so the same keep-alive costs are compared.

use std::time::Duration;

use futures_util::StreamExt;
use pushbench_common::wire::{SSE_HEARTBEAT, STREAM_HEARTBEAT};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{PATIENCE, TestServer, contains, occurrences, publish_via, read_until};

/// How many keep-alives each idle subscription must receive: several, so one sent at subscription time
/// could not pass for a periodic one.
const BEATS: usize = 3;

#[tokio::test]
async fn idle_stream_and_sse_subscribers_get_the_wire_heartbeats() {
    let server = TestServer::start(&["--heartbeat-ms", "50"]).await;
    for (path, keepalive) in [
        ("/stream?topic=h", STREAM_HEARTBEAT),
        ("/sse?topic=h", SSE_HEARTBEAT),
    ] {
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        socket
            .write_all(format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut bytes = Vec::new();
        read_until(&mut socket, &mut bytes, |b| {
            occurrences(b, keepalive) >= BEATS
        })
        .await;
        assert!(
            contains(&bytes, "subscribed"),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[tokio::test]
async fn idle_websocket_subscribers_get_pings() {
    let server = TestServer::start(&["--heartbeat-ms", "50"]).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?topic=h", server.addr))
            .await
            .unwrap();
    let mut pings = 0;
    tokio::time::timeout(PATIENCE, async {
        while pings < BEATS {
            if let Message::Ping(_) = socket.next().await.unwrap().unwrap() {
                pings += 1;
            }
        }
    })
    .await
    .expect("pings in time");
}

/// Pings are keep-alives, like the stream's heartbeat line: a WebSocket receiving events gets none. Events
/// every 50 ms for three heartbeat intervals: a ping every interval whatever the traffic would make two or
/// three; one is tolerated, for a stall of the machine longer than an interval.
#[tokio::test]
async fn a_websocket_receiving_events_gets_no_pings() {
    const EVENTS: usize = 60;
    let server = TestServer::start(&["--heartbeat-ms", "1000"]).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?topic=busy", server.addr))
            .await
            .unwrap();
    let publish = async {
        for i in 0..EVENTS {
            publish_via(
                &server.http,
                &server.url("/publish/busy"),
                format!("event {i}"),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let read = async {
        let (mut events, mut pings) = (0, 0);
        while events < EVENTS {
            match socket.next().await.unwrap().unwrap() {
                Message::Ping(_) => pings += 1,
                Message::Text(text) if text.starts_with(r#"{"id":"#) => events += 1,
                _ => {}
            }
        }
        pings
    };
    let ((), pings) = tokio::time::timeout(PATIENCE, async { tokio::join!(publish, read) })
        .await
        .expect("events in time");
    assert!(
        pings <= 1,
        "{pings} pings to a WebSocket receiving an event every 50 ms"
    );
}
