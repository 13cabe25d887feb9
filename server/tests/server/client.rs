//! A test harness: starts the server in-process on an ephemeral port and subscribes to it over any
//! transport with a real client, turning every transport into the same sequence of [`Received`] items.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pushbench_common::Transport;
use pushbench_common::wire::{Control, Gap, Message, PollResponse, PublishAck, SseParser};
use pushbench_server::{Args, Config};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite;

/// Upper bound for any single wait in these tests, so a bug fails the test instead of hanging it.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// A running server and the means to stop it.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) http: reqwest::Client,
    /// `http`, or `https` when the server serves TLS.
    scheme: &'static str,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), pushbench_server::StartError>>>,
}

/// HTTP versions a TLS test server is spoken to with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Http {
    /// HTTP/1.1 over TLS.
    One,
    /// h2, negotiated by ALPN.
    Two,
}

/// A certificate for `localhost` and `127.0.0.1`, written where the server can read it.
pub(crate) struct TestCert {
    pub(crate) cert_pem: String,
    pub(crate) cert_path: std::path::PathBuf,
    pub(crate) key_path: std::path::PathBuf,
}

impl TestCert {
    pub(crate) fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir();
        let stem = format!("pushbench-test-{}-{n}", std::process::id());
        let (cert_path, key_path) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&cert_path, made.cert.pem()).unwrap();
        std::fs::write(&key_path, made.signing_key.serialize_pem()).unwrap();
        Self {
            cert_pem: made.cert.pem(),
            cert_path,
            key_path,
        }
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cert_path);
        let _ = std::fs::remove_file(&self.key_path);
    }
}

impl TestServer {
    /// Starts a server with the given extra command-line flags.
    pub(crate) async fn start(flags: &[&str]) -> Self {
        Self::start_with(flags, None).await
    }

    /// Starts a server serving TLS with `cert`, and a client that trusts it and speaks `http`.
    pub(crate) async fn start_tls(flags: &[&str], cert: &TestCert, http: Http) -> Self {
        let (cert_path, key_path) = (
            cert.cert_path.to_str().unwrap(),
            cert.key_path.to_str().unwrap(),
        );
        let mut all = vec!["--tls-cert", cert_path, "--tls-key", key_path];
        all.extend_from_slice(flags);
        Self::start_with(&all, Some((cert, http))).await
    }

    async fn start_with(flags: &[&str], tls: Option<(&TestCert, Http)>) -> Self {
        let args = Args::try_parse_from_flags(flags);
        let config = Config::try_from(&args).expect("valid test flags");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(pushbench_server::run(listener, config, async move {
            let _ = stopped.await;
        }));
        let mut http = reqwest::Client::builder().timeout(PATIENCE);
        let scheme = match tls {
            None => "http",
            Some((cert, version)) => {
                let root = reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap();
                http = http.tls_certs_only([root]).resolve("localhost", addr);
                if version == Http::One {
                    http = http.http1_only();
                }
                "https"
            }
        };
        Self {
            addr,
            http: http.build().unwrap(),
            scheme,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The URL of `path` on this server. TLS servers are named `localhost`, which their certificate
    /// names.
    pub(crate) fn url(&self, path: &str) -> String {
        match self.scheme {
            "https" => format!("https://localhost:{}{path}", self.addr.port()),
            scheme => format!("{scheme}://{}{path}", self.addr),
        }
    }

    pub(crate) async fn publish(&self, topic: &str, data: &str) -> PublishAck {
        publish_via(
            &self.http,
            &self.url(&format!("/publish/{topic}")),
            data.to_owned(),
        )
        .await
    }

    pub(crate) async fn stats(&self) -> serde_json::Value {
        self.http
            .get(self.url("/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Triggers shutdown and waits for `run` to return.
    pub(crate) async fn shutdown(mut self) -> Duration {
        let started = std::time::Instant::now();
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("server shut down in time")
            .unwrap()
            .unwrap();
        started.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Parsing test flags the way the binary does.
trait FromFlags {
    fn try_parse_from_flags(flags: &[&str]) -> Self;
}

impl FromFlags for Args {
    fn try_parse_from_flags(flags: &[&str]) -> Self {
        use clap::Parser;
        Args::try_parse_from(std::iter::once("pushbench-server").chain(flags.iter().copied()))
            .expect("valid flags")
    }
}

/// What a subscriber got, whatever the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Received {
    Event {
        id: u64,
        topic: String,
        data: String,
    },
    Gap(Gap),
}

/// A subscription over one transport. Polling transports loop on requests internally.
pub(crate) struct Subscriber {
    transport: Transport,
    query: String,
    pub(crate) cursor: u64,
    inner: Inner,
    /// HTTP requests made (polling transports) or 1 (streaming).
    pub(crate) requests: u64,
}

enum Inner {
    Polling {
        http: reqwest::Client,
        base: String,
    },
    Http {
        body: Box<reqwest::Response>,
        buffer: Vec<u8>,
        sse: SseParser,
    },
    Ws(
        Box<
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
        >,
    ),
}

impl Subscriber {
    /// Subscribes to `topics` from `after` (or from now) and waits until the subscription is live.
    pub(crate) async fn connect(
        server: &TestServer,
        transport: Transport,
        topics: &[&str],
        after: Option<u64>,
    ) -> Self {
        Self::connect_with(server, transport, topics, after, None).await
    }

    /// Like [`Subscriber::connect`], with SSE's `Last-Event-ID` header.
    pub(crate) async fn connect_with(
        server: &TestServer,
        transport: Transport,
        topics: &[&str],
        after: Option<u64>,
        last_event_id: Option<u64>,
    ) -> Self {
        let mut query: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
        if let Some(after) = after {
            query.push(format!("after={after}"));
        }
        let url = server.url(&format!("/{transport}?{}", query.join("&")));
        let inner = match transport {
            Transport::Poll | Transport::LongPoll => Inner::Polling {
                http: server.http.clone(),
                base: server.url(""),
            },
            Transport::Stream | Transport::Sse => {
                let mut request = server.http.get(&url);
                if let Some(id) = last_event_id {
                    request = request.header("Last-Event-ID", id.to_string());
                }
                let body = request.send().await.unwrap();
                assert_eq!(body.status(), 200);
                Inner::Http {
                    body: Box::new(body),
                    buffer: Vec::new(),
                    sse: SseParser::default(),
                }
            }
            Transport::Ws => {
                let url = url.replacen("http://", "ws://", 1);
                let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                Inner::Ws(Box::new(socket))
            }
        };
        let mut subscriber = Self {
            transport,
            query: topics
                .iter()
                .map(|t| format!("topic={t}"))
                .collect::<Vec<_>>()
                .join("&"),
            cursor: 0,
            inner,
            requests: 0,
        };
        match subscriber.transport {
            Transport::Poll | Transport::LongPoll => {
                // The first poll establishes the cursor: `after` itself, or the head when none was given.
                subscriber.cursor = after.unwrap_or(0);
                if after.is_none() {
                    let first = subscriber.request(Transport::Poll, None).await;
                    subscriber.cursor = first.1;
                }
            }
            _ => match subscriber.next_message().await {
                Some(Control::Subscribed { next }) => subscriber.cursor = next,
                other => panic!("expected the subscribed greeting, got {other:?}"),
            },
        }
        subscriber
    }

    /// One poll-style request; returns what it carried and the next cursor.
    async fn request(&mut self, endpoint: Transport, after: Option<u64>) -> (Vec<Received>, u64) {
        let Inner::Polling { http, base } = &self.inner else {
            unreachable!()
        };
        let mut url = format!("{base}/{endpoint}?{}", self.query);
        if let Some(after) = after {
            url.push_str(&format!("&after={after}"));
        }
        if endpoint == Transport::LongPoll {
            url.push_str("&timeout_ms=1000");
        }
        self.requests += 1;
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.unwrap();
        let poll: PollResponse<'_> = serde_json::from_slice(&body).unwrap();
        let mut items: Vec<Received> = poll.gap.into_iter().map(Received::Gap).collect();
        items.extend(poll.events.into_iter().map(|e| Received::Event {
            id: e.id,
            topic: e.topic.into_owned(),
            data: e.data.into_owned(),
        }));
        (items, poll.next)
    }

    /// Reads until a control message arrives (used for the greeting).
    async fn next_message(&mut self) -> Option<Control> {
        let mut items = Vec::new();
        let control = self.read_some(&mut items).await;
        assert!(items.is_empty(), "events before the greeting: {items:?}");
        control
    }

    /// Reads at least one message; pushes events and gaps to `out`, returns the last other control message.
    async fn read_some(&mut self, out: &mut Vec<Received>) -> Option<Control> {
        let mut last_control = None;
        let mut push =
            |message: Message<'_>, out: &mut Vec<Received>, cursor: &mut u64| match message {
                Message::Event(e) => {
                    *cursor = e.id;
                    out.push(Received::Event {
                        id: e.id,
                        topic: e.topic.into_owned(),
                        data: e.data.into_owned(),
                    });
                }
                Message::Control(Control::Gap(gap)) => {
                    *cursor = gap.resume - 1;
                    out.push(Received::Gap(gap));
                }
                Message::Control(Control::Heartbeat) => {}
                Message::Control(other) => last_control = Some(other),
            };
        match &mut self.inner {
            Inner::Polling { .. } => unreachable!(),
            Inner::Http { body, buffer, sse } => {
                let chunk = tokio::time::timeout(PATIENCE, body.chunk())
                    .await
                    .expect("data in time")
                    .unwrap()?;
                if self.transport == Transport::Sse {
                    let mut events = Vec::new();
                    sse.feed(&chunk, |e| events.push(e));
                    for event in events {
                        push(Message::parse(&event.data).unwrap(), out, &mut self.cursor);
                    }
                } else {
                    buffer.extend_from_slice(&chunk);
                    while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=end).collect();
                        push(
                            Message::parse(&line[..line.len() - 1]).unwrap(),
                            out,
                            &mut self.cursor,
                        );
                    }
                }
            }
            Inner::Ws(socket) => {
                let frame = tokio::time::timeout(PATIENCE, socket.next())
                    .await
                    .expect("frame in time")?
                    .unwrap();
                match frame {
                    tungstenite::Message::Text(text) => push(
                        Message::parse(text.as_bytes()).unwrap(),
                        out,
                        &mut self.cursor,
                    ),
                    tungstenite::Message::Close(_) => return None,
                    _ => {}
                }
            }
        }
        last_control
    }

    /// Collects events (and gaps) until one with id ≥ `last_id` has arrived.
    pub(crate) async fn collect_until(&mut self, last_id: u64) -> Vec<Received> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.cursor < last_id {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: stuck at cursor {} < {last_id}",
                self.transport,
                self.cursor
            );
            match self.transport {
                Transport::Poll | Transport::LongPoll => {
                    let (items, next) = self.request(self.transport, Some(self.cursor)).await;
                    out.extend(items);
                    self.cursor = next;
                    if self.transport == Transport::Poll {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                _ => {
                    self.read_some(&mut out).await;
                }
            }
        }
        out
    }

    /// Reads the stream to its end (the server closing it), returning whether it ended cleanly.
    pub(crate) async fn read_to_end(&mut self) -> bool {
        let mut sink = Vec::new();
        match &mut self.inner {
            Inner::Ws(socket) => loop {
                match tokio::time::timeout(PATIENCE, socket.next())
                    .await
                    .expect("close in time")
                {
                    Some(Ok(tungstenite::Message::Close(frame))) => {
                        return frame.is_some_and(|f| u16::from(f.code) == 1001);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return false,
                }
            },
            Inner::Http { body, .. } => loop {
                match tokio::time::timeout(PATIENCE, body.chunk())
                    .await
                    .expect("end in time")
                {
                    Ok(Some(chunk)) => sink.extend_from_slice(&chunk),
                    Ok(None) => return true,
                    Err(_) => return false,
                }
            },
            Inner::Polling { .. } => unreachable!(),
        }
    }

    /// Sends a raw text frame over the WebSocket and returns the reply control message.
    pub(crate) async fn ws_request(&mut self, text: &str) -> Control {
        let Inner::Ws(socket) = &mut self.inner else {
            panic!("not a WebSocket")
        };
        socket
            .send(tungstenite::Message::Text(text.into()))
            .await
            .unwrap();
        loop {
            let mut out = Vec::new();
            if let Some(control) = self.read_some(&mut out).await {
                return control;
            }
        }
    }
}

/// Ids of the events in `items`, asserting there is no gap among them.
pub(crate) fn event_ids(items: &[Received]) -> Vec<u64> {
    items
        .iter()
        .map(|item| match item {
            Received::Event { id, .. } => *id,
            Received::Gap(gap) => panic!("unexpected gap {gap:?}"),
        })
        .collect()
}

/// Publishes `data` with `http` to the publish URL `url` (for concurrent publishers, which each need a
/// client of their own) and returns the acknowledgement.
pub(crate) async fn publish_via(http: &reqwest::Client, url: &str, data: String) -> PublishAck {
    let response = http.post(url).body(data).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// Reads from `socket` into `buffer` until `done(buffer)` holds.
pub(crate) async fn read_until(
    socket: &mut TcpStream,
    buffer: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> bool,
) {
    tokio::time::timeout(PATIENCE, async {
        while !done(buffer) {
            assert!(
                socket.read_buf(buffer).await.unwrap() > 0,
                "closed early: {}",
                String::from_utf8_lossy(buffer)
            );
        }
    })
    .await
    .expect("data in time");
}

/// How many times `needle` occurs in `haystack`.
pub(crate) fn occurrences(haystack: &[u8], needle: &str) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

/// Whether `haystack` holds `needle`.
pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    occurrences(haystack, needle) > 0
}
