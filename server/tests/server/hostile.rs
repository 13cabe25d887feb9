//! Clients that hold resources without finishing a request: heads too large or too slow, bodies that
//! trickle, more connections than the server allows, repeated parameters. Each gets a status and a
//! one-line JSON reason, and cannot keep the server from answering others.

use std::time::Duration;

use pushbench_common::wire::ErrorBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{PATIENCE, TestServer, contains, read_until};

/// Everything the server sends until it closes the connection.
async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut bytes))
        .await
        .expect("the server closes the connection")
        .expect("read");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The status line's code and the JSON error of a whole `Connection: close` response.
fn status_and_error(response: &str) -> (u16, String) {
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not a response: {response:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let error: ErrorBody =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: body {body:?} of {head:?}"));
    (status, error.error)
}

#[tokio::test]
async fn a_head_larger_than_the_limit_gets_431_and_a_reason() {
    let server = TestServer::start(&[]).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "GET /poll?topic=a HTTP/1.1\r\nx-big: {}",
        "a".repeat(40 * 1024)
    );
    // The server may answer and close before it has read everything: a failed write is fine.
    let _ = tcp.write_all(head.as_bytes()).await;
    let (status, error) = status_and_error(&read_to_close(&mut tcp).await);
    assert_eq!(status, 431);
    assert!(error.contains("request head exceeds"), "{error}");

    // Later requests of a kept-alive connection are hyper's: the same limit, answered 431.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut tcp, &mut Vec::new(), |b| b.ends_with(b"ok\n")).await;
    let _ = tcp.write_all(head.as_bytes()).await;
    let response = read_to_close(&mut tcp).await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response:?}");
}

#[tokio::test]
async fn a_head_or_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closes() {
    let server = TestServer::start(&["--request-timeout-ms", "300"]).await;
    let silent = TcpStream::connect(server.addr).await.unwrap();
    let mut half_head = TcpStream::connect(server.addr).await.unwrap();
    half_head
        .write_all(b"GET /poll?topic=a HTTP/1.1\r\nhost: t\r\n")
        .await
        .unwrap();
    let mut trickle = TcpStream::connect(server.addr).await.unwrap();
    trickle
        .write_all(b"POST /publish/a HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nx")
        .await
        .unwrap();
    for (name, mut tcp) in [
        ("silent", silent),
        ("half head", half_head),
        ("trickle", trickle),
    ] {
        let (status, error) = status_and_error(&read_to_close(&mut tcp).await);
        assert_eq!(status, 408, "{name}");
        assert!(
            error.contains("did not arrive within 300 ms"),
            "{name}: {error}"
        );
    }
    assert_eq!(server.stats().await["events_published"], 0);
    assert!(server.publish("a", "whole").await.id > 0);
}

#[tokio::test]
async fn connections_past_the_open_limit_get_503_and_the_server_keeps_answering() {
    let server =
        TestServer::start(&["--max-connections", "4", "--max-open-connections", "4"]).await;
    // Four connections that never send a request hold every slot (until the request timeout) ...
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await; // accepted and counted
    // ... so the next one is refused with a reason, not left hanging.
    let mut refused = TcpStream::connect(server.addr).await.unwrap();
    let (status, error) = status_and_error(&read_to_close(&mut refused).await);
    assert_eq!(status, 503);
    assert!(error.contains("limit of 4 open connections"), "{error}");
    drop(idle);
    // Once they are gone, requests are served again.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let response = read_to_close(&mut tcp).await;
        if contains(response.as_bytes(), "ok\n") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{response}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_repeated_cursor_or_timeout_is_refused_not_silently_overridden() {
    let server = TestServer::start(&[]).await;
    for path in [
        "/poll?topic=a&after=1&after=2",
        "/longpoll?topic=a&after=1&after=2",
        "/longpoll?topic=a&timeout_ms=10&timeout_ms=20",
        "/stream?topic=a&after=1&after=2",
        "/sse?topic=a&after=1&after=2",
        "/ws?topic=a&after=1&after=2",
    ] {
        let response = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let error: ErrorBody = response.json().await.unwrap();
        assert!(
            error.error.contains("more than once"),
            "{path}: {}",
            error.error
        );
    }
}

/// Upgrades `tcp` to a WebSocket on `topic` by hand, to send frames no well-behaved client library would.
async fn upgrade(mut tcp: TcpStream, topic: &str) -> TcpStream {
    let request = format!(
        "GET /ws?topic={topic} HTTP/1.1\r\nhost: t\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

async fn raw_websocket(server: &TestServer) -> TcpStream {
    upgrade(TcpStream::connect(server.addr).await.unwrap(), "raw").await
}

/// A client frame: final, with `opcode`, masked unless `masked` is false (RFC 6455 §5.2).
fn client_frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => frame.push(mask_bit | len as u8),
        len => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    if masked {
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

/// Reads server frames until a close frame and returns its code; `None` if the connection ends without one.
async fn close_code(tcp: &mut TcpStream) -> Option<u16> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let mut start = [0u8; 2];
            tcp.read_exact(&mut start).await.ok()?;
            let len = match start[1] & 0x7f {
                126 => u64::from(tcp.read_u16().await.ok()?),
                127 => tcp.read_u64().await.ok()?,
                len => u64::from(len),
            };
            let mut payload = vec![0u8; len as usize];
            tcp.read_exact(&mut payload).await.ok()?;
            if start[0] & 0x0f == 0x8 {
                return Some(u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    })
    .await
    .expect("the server ends the connection")
}

#[tokio::test]
async fn websocket_errors_end_with_the_close_code_rfc_6455_names() {
    let server = TestServer::start(&["--max-payload", "100"]).await;
    let cases: [(&str, Vec<u8>, u16); 4] = [
        (
            "invalid UTF-8",
            client_frame(0x1, &[0xc3, 0x28], true),
            1007,
        ),
        ("unmasked frame", client_frame(0x1, b"{}", false), 1002),
        ("reserved opcode", client_frame(0x3, b"", true), 1002),
        (
            "oversized message",
            client_frame(0x1, &[b'x'; 2000], true),
            1009,
        ),
    ];
    for (what, frame, expected) in cases {
        let mut tcp = raw_websocket(&server).await;
        tcp.write_all(&frame).await.unwrap();
        assert_eq!(close_code(&mut tcp).await, Some(expected), "{what}");
    }
    // A client's close is echoed: the closing handshake completes.
    let mut tcp = raw_websocket(&server).await;
    tcp.write_all(&client_frame(0x8, &1000u16.to_be_bytes(), true))
        .await
        .unwrap();
    assert_eq!(
        close_code(&mut tcp).await,
        Some(1000),
        "echo of the client's close"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_dropped_as_a_slow_consumer_is_told_so_with_1008() {
    let server = TestServer::start(&["--write-timeout-ms", "2000", "--replay-events", "20"]).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = upgrade(socket.connect(server.addr).await.unwrap(), "slow").await;
    // 6.4 MiB that the stalled client does not read: writes block past the write timeout.
    let payload = "x".repeat(16 * 1024);
    for _ in 0..400 {
        server.publish("slow", &payload).await;
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.stats().await["transports"]["ws"]["slow_consumer_disconnects"] != 1 {
        assert!(tokio::time::Instant::now() < deadline, "never dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Reading again within the next write timeout, the client gets the rest of its frames, then 1008.
    assert_eq!(close_code(&mut tcp).await, Some(1008));
}
