//! TLS, HTTP/1.1 and h2: every endpoint with the same semantics over both, several subscriptions on one
//! h2 connection, WebSocket over h2 (RFC 8441) with a real h2 client, and clear errors for a client on
//! the wrong port.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use pushbench_common::Transport;
use pushbench_common::wire::Gap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::client::{Http, PATIENCE, Received, Subscriber, TestCert, TestServer, event_ids};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_and_streams_deliver_resume_and_notice_gaps_over_tls_on_http1_and_h2() {
    let cert = TestCert::new();
    for http in [Http::One, Http::Two] {
        let server = TestServer::start_tls(&["--replay-events", "20"], &cert, http).await;
        let version = server
            .http
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .version();
        let expected = match http {
            Http::One => reqwest::Version::HTTP_11,
            Http::Two => reqwest::Version::HTTP_2,
        };
        assert_eq!(version, expected);
        for transport in [
            Transport::Poll,
            Transport::LongPoll,
            Transport::Stream,
            Transport::Sse,
        ] {
            let topic = format!("tls.{transport}");
            let mut live = Subscriber::connect(&server, transport, &[&topic], None).await;
            let mut ids = Vec::new();
            for i in 0..30 {
                ids.push(server.publish(&topic, &format!("{i}")).await.id);
            }
            // Held: the last 20; the live subscriber was there for all 30 (polls may fall behind).
            let received = live.collect_until(ids[29]).await;
            let delivered: Vec<u64> = received
                .iter()
                .filter_map(|r| match r {
                    Received::Event { id, .. } => Some(*id),
                    Received::Gap(_) => None,
                })
                .collect();
            assert_eq!(delivered.last(), Some(&ids[29]), "{http:?} {transport}");
            // Resume inside the buffer: exactly the later events.
            let mut resumed =
                Subscriber::connect(&server, transport, &[&topic], Some(ids[20])).await;
            assert_eq!(
                event_ids(&resumed.collect_until(ids[29]).await),
                ids[21..],
                "{http:?} {transport}"
            );
            // Resume before it: the gap notice first.
            let mut behind = Subscriber::connect(&server, transport, &[&topic], Some(ids[2])).await;
            let received = behind.collect_until(ids[29]).await;
            assert_eq!(
                received[0],
                Received::Gap(Gap {
                    after: ids[2],
                    resume: ids[10]
                }),
                "{http:?} {transport}"
            );
            assert_eq!(event_ids(&received[1..]), ids[10..], "{http:?} {transport}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_subscriptions_share_one_h2_connection_and_each_gets_exactly_its_events() {
    let cert = TestCert::new();
    let server = TestServer::start_tls(&[], &cert, Http::Two).await;
    let mut subscribers = Vec::new();
    // More than the six connections a browser allows per host on HTTP/1.1.
    for i in 0..12 {
        let transport = if i % 2 == 0 {
            Transport::Sse
        } else {
            Transport::Stream
        };
        let topic = format!("mux.{i}");
        subscribers.push((
            topic.clone(),
            Subscriber::connect(&server, transport, &[&topic], None).await,
        ));
    }
    let mut owed = Vec::new();
    for (topic, _) in &subscribers {
        let mut mine = Vec::new();
        for j in 0..3 {
            mine.push(server.publish(topic, &format!("{topic} {j}")).await.id);
        }
        owed.push(mine);
    }
    for ((topic, subscriber), mine) in subscribers.iter_mut().zip(owed) {
        let received = subscriber.collect_until(*mine.last().unwrap()).await;
        assert_eq!(event_ids(&received), mine, "{topic}");
    }
    let stats = server.stats().await;
    assert_eq!(
        stats["tcp_connections_open"], 1,
        "one h2 connection carries all: {stats}"
    );
}

/// One h2 stream as a byte pipe, so tungstenite can run a WebSocket over it (RFC 8441).
struct H2Stream {
    send: h2::SendStream<Bytes>,
    recv: h2::RecvStream,
    pending: Bytes,
}

impl AsyncRead for H2Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        while self.pending.is_empty() {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.pending = data;
                }
                Some(Err(e)) => return Poll::Ready(Err(std::io::Error::other(e))),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // Small frames: h2 buffers them until the window allows.
        self.send
            .send_data(Bytes::copy_from_slice(data), false)
            .map_err(std::io::Error::other)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}

/// A TLS client that trusts `cert` and offers `alpn` (none when empty).
pub(crate) fn connector(cert: &TestCert, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !alpn.is_empty() {
        config.alpn_protocols = vec![alpn.to_vec()];
    }
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `server` that trusts `cert` and offers only `alpn`.
async fn tls_connect(
    server: &TestServer,
    cert: &TestCert,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = connector(cert, alpn);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

use rustls_pki_types::pem::PemObject as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_h2_by_extended_connect_delivers_and_publishes() {
    let cert = TestCert::new();
    let server = TestServer::start_tls(&[], &cert, Http::Two).await;
    let tls = tls_connect(&server, &cert, b"h2").await;
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    // One plain request first: its answer comes after the server's SETTINGS.
    let healthz = http::Request::get(format!("https://localhost:{}/healthz", server.addr.port()))
        .body(())
        .unwrap();
    let (answer, _) = client.send_request(healthz, true).unwrap();
    assert_eq!(answer.await.unwrap().status(), 200);
    let mut client = client.ready().await.unwrap();
    assert!(
        client.is_extended_connect_protocol_enabled(),
        "the server announces SETTINGS_ENABLE_CONNECT_PROTOCOL"
    );
    let mut sockets = Vec::new();
    // Two WebSockets on the one connection.
    for _ in 0..2 {
        let mut request = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(format!(
                "https://localhost:{}/ws?topic=h2ws",
                server.addr.port()
            ))
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap();
        request
            .extensions_mut()
            .insert(h2::ext::Protocol::from_static("websocket"));
        let (response, send) = client.send_request(request, false).unwrap();
        let response = tokio::time::timeout(PATIENCE, response)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), 200);
        let io = H2Stream {
            send,
            recv: response.into_body(),
            pending: Bytes::new(),
        };
        let mut socket =
            tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Client, None).await;
        let greeting = next_text(&mut socket).await;
        assert!(greeting.contains(r#""type":"subscribed""#), "{greeting}");
        sockets.push(socket);
    }
    let ack = server.publish("h2ws", "to both").await;
    for socket in &mut sockets {
        let text = next_text(socket).await;
        assert!(text.contains(&format!(r#""id":{}"#, ack.id)), "{text}");
    }
    // Publishing over the h2 WebSocket works like over HTTP/1.1.
    futures_util::SinkExt::send(
        &mut sockets[0],
        Message::text(r#"{"type":"publish","topic":"h2ws","data":"from h2"}"#),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    while !seen.iter().any(|t: &String| t.contains("from h2")) {
        seen.push(next_text(&mut sockets[1]).await);
    }
}

async fn next_text<S>(socket: &mut tokio_tungstenite::WebSocketStream<S>) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let frame: Result<Message, tungstenite::Error> =
            tokio::time::timeout(PATIENCE, socket.next())
                .await
                .unwrap()
                .unwrap();
        if let Message::Text(text) = frame.unwrap() {
            return text.to_string();
        }
    }
}

#[tokio::test]
async fn a_client_on_the_wrong_port_is_told_so() {
    // Plain HTTP to the TLS port: a 400 that says to use https.
    let cert = TestCert::new();
    let tls_server = TestServer::start_tls(&[], &cert, Http::One).await;
    let mut tcp = TcpStream::connect(tls_server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("serves TLS"), "{answer}");

    // A TLS client on the cleartext port: the handshake fails at once, not after a timeout.
    let plain = TestServer::start(&[]).await;
    let connector = connector(&cert, b"");
    let tcp = TcpStream::connect(plain.addr).await.unwrap();
    let started = std::time::Instant::now();
    let failed = tokio::time::timeout(
        PATIENCE,
        connector.connect("localhost".try_into().unwrap(), tcp),
    )
    .await
    .expect("the server ends the handshake");
    assert!(failed.is_err());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "failed at once"
    );

    // A certificate the client does not trust: refused by the client, and the server goes on.
    let other = TestCert::new();
    let untrusting = TestServer::start_tls(&[], &other, Http::Two).await;
    let tcp = TcpStream::connect(untrusting.addr).await.unwrap();
    let error = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect_err("an untrusted certificate is refused");
    assert!(error.to_string().contains("certificate"), "{error}");
    assert!(
        untrusting
            .http
            .get(untrusting.url("/healthz"))
            .send()
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_h2_streams_and_long_polls_cleanly() {
    let cert = TestCert::new();
    let server = TestServer::start_tls(&[], &cert, Http::Two).await;
    let mut readers = Vec::new();
    for transport in [Transport::Stream, Transport::Sse] {
        for _ in 0..20 {
            let mut subscriber = Subscriber::connect(&server, transport, &["s"], None).await;
            readers.push(tokio::spawn(async move {
                (transport, subscriber.read_to_end().await)
            }));
        }
    }
    let long_poll = tokio::spawn(
        server
            .http
            .get(server.url("/longpoll?topic=s&timeout_ms=60000"))
            .send(),
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.stats().await["transports"]["longpoll"]["connections_open"] != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "long-poll never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.shutdown().await;
    for reader in readers {
        let (transport, clean) = reader.await.unwrap();
        assert!(clean, "{transport} over h2 did not end cleanly");
    }
    let response = long_poll
        .await
        .unwrap()
        .expect("long-poll answered, not cut");
    assert_eq!(response.status(), 200);
}
