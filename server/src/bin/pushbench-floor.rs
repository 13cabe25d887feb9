//! `pushbench-floor`: the floor reference that `pushbench run --peers ours,nchan,floor` measures beside the
//! servers. Not a product and not a push server: a yardstick.
//!
//! Why it exists: on loopback most of a push server's CPU per delivery is the kernel's (the sender's
//! `write` runs the receiving socket's TCP input and wakes its reader), so a server's figure alone does
//! not say how much its user space adds. This binary does the least a sender can do for the same load:
//! it takes `POST /publish/<topic>` as our server does, gives the event the next id and a timestamp,
//! frames it once per transport, and writes those bytes to every subscriber's socket with one
//! non-blocking `write`, from the task that took the publish (no wake-up of a task per subscriber). A
//! server's CPU per delivery divided by the floor's, measured in the same run, is what its user space
//! costs on top of the kernel.
//!
//! It speaks our wire so that the load generator's own clients measure it unchanged: the same URLs and
//! framing (`/stream` NDJSON in chunks, `/sse`, `/ws` text frames, `/longpoll` with the head cursor from
//! `/poll`), a `subscribed` message carrying the last id published when the subscription was registered
//! (the cursor the accounting counts from), and the publish answer's id, the accounting's ground truth.
//!
//! Deliberately omitted: the feed (no log, no replay: `after=` and `Last-Event-ID` are ignored, and a
//! subscriber that reconnects has lost what was published meanwhile, which the accounting shows), gap
//! notices, heartbeats and pings, pacing and batching (each event is its own write), limits, metrics,
//! TLS, interval polling (it needs the log), request validation beyond what routing needs, and graceful
//! shutdown (SIGTERM ends the process).

use std::collections::HashMap;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use pushbench_common::wire::{
    Control, ErrorBody, Event, PublishAck, push_sse_event, push_ws_text_frame,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::debug;

/// The floor reference: a minimal sender speaking pushbench-server's wire, for the peers report.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match serve().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushbench-floor: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(io::stderr)
        .init();
    // Each subscriber is a file descriptor.
    rlimit::increase_nofile_limit(u64::MAX).context("raising the open-file limit")?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    // The line the load generator waits for, in the form pushbench-server prints it.
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "pushbench-floor listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);
    let hub = Arc::new(Hub::default());
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, usually: the next accept may succeed.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // As pushbench-server does: an event is sent when written, not held for a full segment.
        let _ = tcp.set_nodelay(true);
        let hub = hub.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(&hub, tcp).await {
                debug!(error = %e, "connection ended");
            }
        });
    }
}

/// Who receives a topic's events, and the last id given. One lock orders everything: an id, its
/// writes to every subscriber, and a new subscriber's cursor (the last id when it was registered), so a
/// subscriber receives exactly the events after its cursor. Held without `.await` (the writes do not
/// block), hence `std::sync::Mutex`.
#[derive(Default)]
struct Hub {
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    last_id: u64,
    next_key: u64,
    topics: HashMap<String, Vec<(u64, Sink)>>,
}

/// Where a subscriber's events go.
#[derive(Clone)]
enum Sink {
    /// Written at once to a streaming socket (stream, SSE, WebSocket), framed for it.
    Socket(Arc<Socket>),
    /// Queued for the long-poll connection's next answer: the event's id and JSON.
    Answer(mpsc::Sender<(u64, Arc<[u8]>)>),
}

/// Events a long-poll subscriber may have waiting between two requests; past it, events are dropped for
/// it and the load generator counts them lost.
const LONG_POLL_QUEUE: usize = 4096;
/// Bytes a streaming subscriber may fall behind (its socket's send buffer full); past it, the
/// subscriber is cut off.
const MAX_BEHIND: usize = 4 << 20;

/// One event, framed once per transport.
struct Frames {
    json: Arc<[u8]>,
    ndjson: Vec<u8>,
    sse: Vec<u8>,
    ws: Vec<u8>,
}

impl Frames {
    fn new(id: u64, json: Vec<u8>) -> Self {
        let mut line = json.clone();
        line.push(b'\n');
        let mut sse = Vec::with_capacity(json.len() + 32);
        push_sse_event(&mut sse, id, &json);
        let mut ws = Vec::with_capacity(json.len() + 10);
        push_ws_text_frame(&mut ws, &json);
        Self {
            ndjson: chunk(&line),
            sse: chunk(&sse),
            ws,
            json: json.into(),
        }
    }
}

/// Bytes as one HTTP/1.1 chunk.
fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives `data` the next id and writes it to every subscriber of `topic`.
    fn publish(&self, topic: &str, data: &str) -> PublishAck {
        let mut state = self.lock();
        state.last_id += 1;
        let id = state.last_id;
        let ts = unix_ns();
        let json = serde_json::to_vec(&Event {
            id,
            topic: topic.into(),
            ts,
            data: data.into(),
        })
        .expect("events serialize");
        let frames = Frames::new(id, json);
        for (_, sink) in state.topics.get(topic).into_iter().flatten() {
            match sink {
                Sink::Socket(socket) => socket.send(&frames),
                // Full or gone: lost for this subscriber, as the accounting will say.
                Sink::Answer(queue) => drop(queue.try_send((id, frames.json.clone()))),
            }
        }
        PublishAck { id, ts }
    }

    /// Registers `sink` on `topics`; returns its key and the last id published so far, its cursor.
    fn subscribe(&self, topics: &[String], sink: impl FnOnce(u64) -> Sink) -> (u64, u64) {
        let mut state = self.lock();
        state.next_key += 1;
        let (key, cursor) = (state.next_key, state.last_id);
        let sink = sink(cursor);
        for topic in topics {
            state
                .topics
                .entry(topic.clone())
                .or_default()
                .push((key, sink.clone()));
        }
        (key, cursor)
    }

    fn unsubscribe(&self, key: u64, topics: &[String]) {
        let mut state = self.lock();
        for topic in topics {
            if let Some(sinks) = state.topics.get_mut(topic) {
                sinks.retain(|(k, _)| *k != key);
                if sinks.is_empty() {
                    state.topics.remove(topic);
                }
            }
        }
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A streaming subscriber's socket, written by whoever publishes.
struct Socket {
    tcp: TcpStream,
    framing: Framing,
    /// What the socket did not take yet (its send buffer was full), in order; the subscriber's own task
    /// writes it once the socket is writable. Never held across `.await`.
    behind: Mutex<Vec<u8>>,
    /// Tells the subscriber's task that `behind` has bytes.
    wake: Notify,
    /// Set when the subscriber fell more than [`MAX_BEHIND`] behind: its task ends it.
    cut: AtomicBool,
}

#[derive(Clone, Copy)]
enum Framing {
    NdJson,
    Sse,
    Ws,
}

impl Socket {
    /// Writes one event: one `write` when nothing is waiting before it, else queued behind.
    fn send(&self, frames: &Frames) {
        let bytes = match self.framing {
            Framing::NdJson => &frames.ndjson,
            Framing::Sse => &frames.sse,
            Framing::Ws => &frames.ws,
        };
        let mut behind = self.behind.lock().unwrap_or_else(|p| p.into_inner());
        if behind.is_empty() {
            let written = match self.tcp.try_write(bytes) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                // The subscriber's task sees the broken socket too and ends it.
                Err(_) => return,
            };
            if written == bytes.len() {
                return;
            }
            behind.extend_from_slice(&bytes[written..]);
            self.wake.notify_one();
        } else if behind.len() + bytes.len() > MAX_BEHIND {
            self.cut.store(true, Ordering::Relaxed);
            self.wake.notify_one();
        } else {
            behind.extend_from_slice(bytes);
        }
    }

    /// Writes what is behind until nothing is, the socket fails or the subscriber is cut off; returns
    /// whether the socket is still usable.
    async fn catch_up(&self) -> bool {
        loop {
            if self.cut.load(Ordering::Relaxed) {
                return false;
            }
            {
                let mut behind = self.behind.lock().unwrap_or_else(|p| p.into_inner());
                if behind.is_empty() {
                    return true;
                }
                match self.tcp.try_write(&behind) {
                    Ok(n) => drop(behind.drain(..n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return false,
                }
                if behind.is_empty() {
                    return true;
                }
            }
            if self.tcp.writable().await.is_err() {
                return false;
            }
        }
    }

    /// Serves the subscription until the client leaves: catches up when woken, discards what the client
    /// sends (a WebSocket's close frame), ends at end of stream.
    async fn run(&self) {
        let mut scratch = [0u8; 256];
        loop {
            tokio::select! {
                () = self.wake.notified() => if !self.catch_up().await { return },
                readable = self.tcp.readable() => {
                    if readable.is_err() {
                        return;
                    }
                    match self.tcp.try_read(&mut scratch) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                }
            }
        }
    }
}

/// One request head (and body) read from a connection.
struct Request {
    method: String,
    path: String,
    query: String,
    websocket_key: Option<Vec<u8>>,
    body: Vec<u8>,
}

impl Request {
    fn topics(&self) -> Vec<String> {
        self.params("topic").collect()
    }

    fn param(&self, name: &str) -> Option<String> {
        self.params(name).next()
    }

    fn params<'a>(&'a self, name: &'a str) -> impl Iterator<Item = String> + 'a {
        form_urlencoded::parse(self.query.as_bytes())
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// Longest request head accepted.
const MAX_HEAD: usize = 32 * 1024;
/// Longest publish body accepted.
const MAX_BODY: usize = 1 << 20;

/// A connection's bytes read but not yet used.
struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// Reads the next request; `None` when the client closed between requests.
    async fn next(&mut self, tcp: &mut TcpStream) -> io::Result<Option<Request>> {
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::other("request head too large"));
            }
            if tcp.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        };
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        parsed
            .parse(&self.buf[..end])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let length: usize = header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
            .unwrap_or(0);
        if length > MAX_BODY {
            return Err(io::Error::other("request body too large"));
        }
        let websocket_key = header("sec-websocket-key").map(<[u8]>::to_vec);
        let target = parsed.path.unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let (method, path, query) = (
            parsed.method.unwrap_or("").to_owned(),
            path.to_owned(),
            query.to_owned(),
        );
        while self.buf.len() < end + length {
            if tcp.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let body = self.buf[end..end + length].to_vec();
        self.buf.drain(..end + length);
        Ok(Some(Request {
            method,
            path,
            query,
            websocket_key,
            body,
        }))
    }
}

/// Serves one connection: publishes (kept alive), or one subscription for the connection's life.
async fn connection(hub: &Hub, mut tcp: TcpStream) -> io::Result<()> {
    let mut reader = Reader { buf: Vec::new() };
    while let Some(request) = reader.next(&mut tcp).await? {
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", path) if path.starts_with("/publish/") => {
                let topic = &path["/publish/".len()..];
                let data = String::from_utf8_lossy(&request.body);
                let ack = hub.publish(topic, &data);
                let body = serde_json::to_vec(&ack).expect("acks serialize");
                tcp.write_all(&answer(&body)).await?;
            }
            ("GET", "/stream") => return stream(hub, tcp, &request, Framing::NdJson).await,
            ("GET", "/sse") => return stream(hub, tcp, &request, Framing::Sse).await,
            ("GET", "/ws") if request.websocket_key.is_some() => {
                return stream(hub, tcp, &request, Framing::Ws).await;
            }
            ("GET", "/poll" | "/longpoll") => {
                return long_poll(hub, tcp, reader, request).await;
            }
            _ => {
                let body = serde_json::to_vec(&ErrorBody {
                    error: format!("the floor serves no {} {}", request.method, request.path),
                })
                .expect("errors serialize");
                let head = format!(
                    "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                tcp.write_all(&[head.as_bytes(), &body].concat()).await?;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A `200` answer with a JSON body.
fn answer(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A stream, SSE or WebSocket subscription: the response head and `subscribed` go first (queued behind,
/// so that no event can overtake them), then every event as it is published.
async fn stream(hub: &Hub, tcp: TcpStream, request: &Request, framing: Framing) -> io::Result<()> {
    let topics = request.topics();
    let subscribed = |next: u64| {
        let json = serde_json::to_vec(&Control::Subscribed { next }).expect("controls serialize");
        match framing {
            Framing::NdJson => {
                let mut head = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                head.extend_from_slice(&chunk(&[&json[..], b"\n"].concat()));
                head
            }
            Framing::Sse => {
                let mut head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                let event = [b"event: subscribed\ndata: ", &json[..], b"\n\n"].concat();
                head.extend_from_slice(&chunk(&event));
                head
            }
            Framing::Ws => {
                let key = request.websocket_key.as_deref().unwrap_or_default();
                let mut head = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
                    derive_accept_key(key)
                )
                .into_bytes();
                push_ws_text_frame(&mut head, &json);
                head
            }
        }
    };
    let mut socket = None;
    let (key, _) = hub.subscribe(&topics, |next| {
        let s = Arc::new(Socket {
            tcp,
            framing,
            behind: Mutex::new(subscribed(next)),
            wake: Notify::new(),
            cut: AtomicBool::new(false),
        });
        socket = Some(s.clone());
        Sink::Socket(s)
    });
    let socket = socket.expect("registered above");
    socket.wake.notify_one();
    socket.run().await;
    hub.unsubscribe(key, &topics);
    Ok(())
}

/// A long-poll subscriber: registered at its first request (a `/poll` answers the head cursor at once),
/// then each `/longpoll` on the connection answers every event queued since the last answer, in one
/// write, or an empty answer after the hold (`timeout_ms`).
async fn long_poll(
    hub: &Hub,
    mut tcp: TcpStream,
    mut reader: Reader,
    first: Request,
) -> io::Result<()> {
    let topics = first.topics();
    let (sender, mut queue) = mpsc::channel(LONG_POLL_QUEUE);
    let (key, cursor) = hub.subscribe(&topics, |_| Sink::Answer(sender));
    let served = async {
        let mut request = first;
        let mut next = cursor;
        loop {
            let mut events: Vec<(u64, Arc<[u8]>)> = Vec::new();
            if request.path == "/longpoll" {
                next = request
                    .param("after")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(next);
                let hold = request
                    .param("timeout_ms")
                    .and_then(|t| t.parse().ok())
                    .map_or(Duration::from_secs(30), Duration::from_millis);
                if let Ok(Some(event)) = tokio::time::timeout(hold, queue.recv()).await {
                    events.push(event);
                }
                while let Ok(event) = queue.try_recv() {
                    events.push(event);
                }
            }
            let mut body = b"{\"events\":[".to_vec();
            for (i, (id, json)) in events.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(json);
                next = *id;
            }
            body.extend_from_slice(format!("],\"next\":{next}}}").as_bytes());
            tcp.write_all(&answer(&body)).await?;
            match reader.next(&mut tcp).await? {
                Some(r) if r.method == "GET" && r.path == "/longpoll" => request = r,
                _ => return Ok::<_, io::Error>(()),
            }
        }
    };
    let result = served.await;
    hub.unsubscribe(key, &topics);
    result
}
