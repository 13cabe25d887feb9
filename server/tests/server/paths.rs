//! A stream or SSE subscription is served directly when it is a connection's first request, and by hyper
//! when it follows another request on a kept-alive connection. Both must send the same bytes.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{PATIENCE, TestServer};

/// Reads from `socket` into `buffer` until `done(buffer)` holds.
async fn read_until(socket: &mut TcpStream, buffer: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !done(buffer) {
            assert!(socket.read_buf(buffer).await.unwrap() > 0, "closed early: {}", String::from_utf8_lossy(buffer));
        }
    })
    .await
    .expect("data in time");
}

/// The body of a chunked response (whatever the chunk boundaries), once its head has been read.
fn dechunk(response: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(response).unwrap();
    let (head, mut rest) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    let mut body = Vec::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size, 16).unwrap();
        if after.len() < size + 2 {
            break;
        }
        body.extend_from_slice(&after.as_bytes()[..size]);
        rest = &after[size + 2..];
    }
    body
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn fresh_and_reused_connections_stream_the_same_bytes() {
    let server = TestServer::start(&[]).await;
    for path in ["/stream?topic=k", "/sse?topic=k"] {
        let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
        let mut fresh = TcpStream::connect(server.addr).await.unwrap();
        fresh.write_all(request.as_bytes()).await.unwrap();
        let mut reused = TcpStream::connect(server.addr).await.unwrap();
        reused.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
        let mut first = Vec::new();
        read_until(&mut reused, &mut first, |b| b.ends_with(b"ok\n")).await;
        reused.write_all(request.as_bytes()).await.unwrap();

        let (mut fresh_bytes, mut reused_bytes) = (Vec::new(), Vec::new());
        for (socket, bytes) in [(&mut fresh, &mut fresh_bytes), (&mut reused, &mut reused_bytes)] {
            read_until(socket, bytes, |b| contains(b, "subscribed")).await;
        }
        let mut last = String::new();
        for i in 0..3 {
            last = format!("event {i} of {path}");
            server.publish("k", &last).await;
        }
        for (socket, bytes) in [(&mut fresh, &mut fresh_bytes), (&mut reused, &mut reused_bytes)] {
            read_until(socket, bytes, |b| contains(&dechunk(b), &last)).await;
        }
        let body = dechunk(&fresh_bytes);
        assert_eq!(body, dechunk(&reused_bytes), "{path}");
        assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), if path.starts_with("/sse") { 5 + 3 * 3 } else { 1 + 3 }, "greeting + 3 events");
    }
}

#[tokio::test]
async fn websocket_upgrades_work_on_fresh_and_reused_connections() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::Role;

    let server = TestServer::start(&[]).await;
    let upgrade = "GET /ws?topic=w HTTP/1.1\r\nhost: test\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
                   sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let mut sockets = Vec::new();
    for reuse in [false, true] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut bytes = Vec::new();
        if reuse {
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
            read_until(&mut tcp, &mut bytes, |b| b.ends_with(b"ok\n")).await;
            bytes.clear();
        }
        tcp.write_all(upgrade.as_bytes()).await.unwrap();
        read_until(&mut tcp, &mut bytes, |b| contains(b, "\r\n\r\n")).await;
        let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
        let rest = bytes[head_end..].to_vec();
        sockets.push(tokio_tungstenite::WebSocketStream::from_partially_read(tcp, rest, Role::Client, None).await);
    }
    let ack = server.publish("w", "to both").await;
    for socket in &mut sockets {
        let mut texts = Vec::new();
        while texts.len() < 2 {
            let frame = tokio::time::timeout(PATIENCE, socket.next()).await.unwrap().unwrap().unwrap();
            if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
                texts.push(text.to_string());
            }
        }
        assert!(texts[0].starts_with(r#"{"type":"subscribed""#), "{texts:?}");
        assert!(texts[1].starts_with(&format!(r#"{{"id":{},"#, ack.id)), "{texts:?}");
    }
}
