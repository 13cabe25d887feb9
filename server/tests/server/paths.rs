//! A stream or SSE subscription is served directly when it is a connection's first request (cleartext or
//! HTTP/1.1 over TLS), and by hyper when it follows another request on a kept-alive connection. Both must
//! send the same bytes.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{Http, PATIENCE, TestCert, TestServer, contains, read_until};

/// The body of a chunked response (whatever the chunk boundaries), once its head has been read.
fn dechunk(response: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(response).unwrap();
    let (head, mut rest) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
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

#[tokio::test]
async fn fresh_and_reused_connections_stream_the_same_bytes() {
    let server = TestServer::start(&[]).await;
    for path in ["/stream?topic=k", "/sse?topic=k"] {
        let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
        let mut fresh = TcpStream::connect(server.addr).await.unwrap();
        fresh.write_all(request.as_bytes()).await.unwrap();
        let mut reused = TcpStream::connect(server.addr).await.unwrap();
        reused
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let mut first = Vec::new();
        read_until(&mut reused, &mut first, |b| b.ends_with(b"ok\n")).await;
        reused.write_all(request.as_bytes()).await.unwrap();

        let (mut fresh_bytes, mut reused_bytes) = (Vec::new(), Vec::new());
        for (socket, bytes) in [
            (&mut fresh, &mut fresh_bytes),
            (&mut reused, &mut reused_bytes),
        ] {
            read_until(socket, bytes, |b| contains(b, "subscribed")).await;
        }
        let mut last = String::new();
        for i in 0..3 {
            last = format!("event {i} of {path}");
            server.publish("k", &last).await;
        }
        for (socket, bytes) in [
            (&mut fresh, &mut fresh_bytes),
            (&mut reused, &mut reused_bytes),
        ] {
            read_until(socket, bytes, |b| contains(&dechunk(b), &last)).await;
        }
        let body = dechunk(&fresh_bytes);
        assert_eq!(body, dechunk(&reused_bytes), "{path}");
        assert_eq!(
            body.iter().filter(|&&b| b == b'\n').count(),
            if path.starts_with("/sse") {
                5 + 3 * 3
            } else {
                1 + 3
            },
            "greeting + 3 events"
        );
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
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
                .await
                .unwrap();
            read_until(&mut tcp, &mut bytes, |b| b.ends_with(b"ok\n")).await;
            bytes.clear();
        }
        tcp.write_all(upgrade.as_bytes()).await.unwrap();
        read_until(&mut tcp, &mut bytes, |b| contains(b, "\r\n\r\n")).await;
        let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(
            head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{head}"
        );
        let rest = bytes[head_end..].to_vec();
        sockets.push(
            tokio_tungstenite::WebSocketStream::from_partially_read(tcp, rest, Role::Client, None)
                .await,
        );
    }
    let ack = server.publish("w", "to both").await;
    for socket in &mut sockets {
        let mut texts = Vec::new();
        while texts.len() < 2 {
            let frame = tokio::time::timeout(PATIENCE, socket.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
                texts.push(text.to_string());
            }
        }
        assert!(texts[0].starts_with(r#"{"type":"subscribed""#), "{texts:?}");
        assert!(
            texts[1].starts_with(&format!(r#"{{"id":{},"#, ack.id)),
            "{texts:?}"
        );
    }
}

/// Reads one complete response with a `content-length` body and returns its body.
async fn read_response(socket: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let complete = |b: &[u8]| {
        let text = String::from_utf8_lossy(b);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let length = head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse::<usize>().unwrap())
        });
        length.is_some_and(|n| body.len() >= n)
    };
    read_until(socket, &mut bytes, complete).await;
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.split_once("\r\n\r\n").unwrap().1.to_owned()
}

#[tokio::test]
async fn long_polls_follow_each_other_on_one_connection_then_other_requests_still_work() {
    let server = TestServer::start(&[]).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    // An empty hold: the answer carries the cursor to continue from.
    tcp.write_all(b"GET /longpoll?topic=lp&timeout_ms=1 HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let first: serde_json::Value = serde_json::from_str(&read_response(&mut tcp).await).unwrap();
    assert_eq!(first["events"], serde_json::json!([]));
    let cursor = first["next"].as_u64().unwrap();
    // A held request answered by a publish, on the same connection.
    tcp.write_all(
        format!(
            "GET /longpoll?topic=lp&after={cursor}&timeout_ms=20000 HTTP/1.1\r\nhost: test\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let ack = server.publish("lp", "held").await;
    let second: serde_json::Value = serde_json::from_str(&read_response(&mut tcp).await).unwrap();
    assert_eq!(second["events"][0]["id"], ack.id);
    assert_eq!(second["next"], ack.id);
    // Any other request on the same connection is served by the router.
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    read_until(&mut tcp, &mut rest, |b| b.ends_with(b"ok\n")).await;
    // `Connection: close` is honoured.
    let mut closing = TcpStream::connect(server.addr).await.unwrap();
    closing
        .write_all(b"GET /longpoll?topic=lp&timeout_ms=1 HTTP/1.1\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(PATIENCE, closing.read_to_end(&mut all))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&all).contains(r#""events":[]"#));
}

/// Reads `socket` until `needle` arrives, looking only at what is new (plus the needle's length before
/// it), so megabytes of backlog cost one pass. Returns everything read.
async fn read_to(socket: &mut (impl AsyncRead + Unpin), needle: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut searched: usize = 0;
    tokio::time::timeout(PATIENCE, async {
        loop {
            let from = searched.saturating_sub(needle.len());
            if contains(&bytes[from..], needle) {
                return;
            }
            searched = bytes.len();
            assert!(
                socket.read_buf(&mut bytes).await.unwrap() > 0,
                "closed before {needle:?} ({} bytes read)",
                bytes.len()
            );
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in time"));
    bytes
}

/// A client connection, cleartext or TLS.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// The flags of a server whose writes block past the write timeout many times over while readers stall.
const STALLING: [&str; 6] = [
    "--write-timeout-ms",
    "20",
    "--replay-events",
    "20",
    "--max-batch-events",
    "5",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_or_sse_reader_gets_a_gap_notice_and_continues_on_both_paths() {
    let server = TestServer::start(&STALLING).await;
    stalled_readers_get_gap_notices(&server, None).await;
}

/// The same over HTTP/1.1 + TLS, which takes the direct path too: what rustls holds back when the socket
/// is full must still reach the reader once it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_over_tls_gets_a_gap_notice_and_continues_on_both_paths() {
    let cert = TestCert::new();
    let server = TestServer::start_tls(&STALLING, &cert, Http::One).await;
    let connector = crate::tls::connector(&cert, b"http/1.1");
    stalled_readers_get_gap_notices(&server, Some(&connector)).await;
}

/// Stream and SSE readers with small receive buffers, one on each path, stop reading while 6.4 MiB is
/// published to each; when they read again, each gets a gap notice and then the last event.
async fn stalled_readers_get_gap_notices(
    server: &TestServer,
    tls: Option<&tokio_rustls::TlsConnector>,
) {
    let payload = "x".repeat(16 * 1024);
    for path in ["/stream?topic=stall", "/sse?topic=stall"] {
        let mut readers = Vec::new();
        for reuse in [false, true] {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let tcp = socket.connect(server.addr).await.unwrap();
            let mut connection: Box<dyn Connection> = match tls {
                None => Box::new(tcp),
                Some(connector) => Box::new(
                    connector
                        .connect("localhost".try_into().unwrap(), tcp)
                        .await
                        .unwrap(),
                ),
            };
            if reuse {
                connection
                    .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
                    .await
                    .unwrap();
                read_to(&mut connection, "ok\n").await;
            }
            connection
                .write_all(format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").as_bytes())
                .await
                .unwrap();
            read_to(&mut connection, "subscribed").await;
            readers.push((reuse, connection));
        }
        // 6.4 MiB per reader, more than the kernel buffers between us hold.
        for _ in 0..400 {
            server.publish("stall", &payload).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let last = format!("the last event of {path}");
        server.publish("stall", &last).await;
        for (reuse, connection) in &mut readers {
            let bytes = read_to(connection, &last).await;
            let path_name = if *reuse { "hyper" } else { "direct" };
            assert!(
                contains(&bytes, r#""type":"gap""#),
                "{path} on the {path_name} path: no gap notice"
            );
        }
    }
    let stats = server.stats().await;
    for transport in ["stream", "sse"] {
        assert_eq!(
            stats["transports"][transport]["slow_consumer_disconnects"], 0,
            "{transport}"
        );
        assert!(
            stats["transports"][transport]["slow_consumer_gaps"]
                .as_u64()
                .unwrap()
                >= 2,
            "{transport}: {stats}"
        );
    }
}
