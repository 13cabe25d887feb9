//! Direct serving: serves a connection whose first request is `GET /stream`, `GET /sse`, a `GET /ws`
//! upgrade, `GET /poll` or `GET /longpoll` (and the polls that follow on the same connection) without
//! hyper, so an idle subscriber costs its subscription and a socket, not an HTTP connection's buffers.
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB header buffer for the life of every HTTP/1 connection
//! (an upgraded connection keeps the read buffer's allocation alive too); for a stream that is most of
//! what an idle subscriber costs. Such a connection never serves another HTTP request (its response does
//! not end until shutdown), so once its head is parsed we can write the response ourselves: a fixed status
//! line and headers, then chunked frames from the same [`Subscriber`] the hyper path uses, with no buffer
//! kept between writes — or the 101 answer and the same WebSocket [`Session`](ws::Session). A poll or
//! long-poll answers like the router would and the connection waits, without a buffer, for the next request. Every other connection — other endpoints, a
//! request this module does not fully understand, or one with an error to report — is handed to hyper
//! with the bytes already read put back in front, so it is served exactly as if it had gone there first.
//! Keep-alive connections that reach a subscription after another kind of request take the hyper path,
//! which behaves identically.
//!
//! A TLS connection that negotiated HTTP/1.1 is served here too ([`Socket`]): hyper's buffers and its
//! boxed connection future cost an idle subscriber over TLS about 25 KiB more than the subscription
//! itself, so the same reasoning holds. Writes through TLS are flushed after each one, because rustls
//! keeps what the socket would not take until someone flushes. h2 connections stay with hyper.

use std::io::{self, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes};
use pushbench_common::{Topic, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::http_stream::{Framing, Subscriber};
use super::ndjson::NdJson;
use super::sse::{self, EventStream};
use super::ws;
use super::{SubscribeQuery, long_poll, poll};
use crate::error::ApiError;
use crate::state::AppState;
use tracing::debug;

/// Longest request head accepted, here and by hyper on later requests of a connection: past it, 431.
/// A few tens of KiB is room for any real client's cookies and tokens, while a thousand half-sent heads
/// cost the server tens of MiB, not hundreds.
pub(crate) const MAX_HEAD_BYTES: usize = 32 * 1024;
/// The first byte of a TLS ClientHello (a handshake record, RFC 8446 §5.1).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Headers parsed; a request with more goes to hyper.
const MAX_HEADERS: usize = 32;

/// A connection the direct path can serve: cleartext TCP, or TLS over TCP that negotiated HTTP/1.1.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Completes when a request may have arrived, without a buffer to read it into.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;

    /// A read half and a write half that can be used at once: a subscriber watches for its client
    /// hanging up while it writes.
    fn halves(
        &mut self,
    ) -> (
        impl AsyncRead + Unpin + Send + '_,
        impl AsyncWrite + Unpin + Send + '_,
    );
}

impl Socket for TcpStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::readable(self)
    }

    fn halves(
        &mut self,
    ) -> (
        impl AsyncRead + Unpin + Send + '_,
        impl AsyncWrite + Unpin + Send + '_,
    ) {
        self.split()
    }
}

impl Socket for TlsStream<TcpStream> {
    async fn readable(&self) -> io::Result<()> {
        let (tcp, tls) = self.get_ref();
        // Plaintext rustls has already decrypted (a request sent with the handshake's last flight), or
        // the client's close_notify, is there to read now; otherwise wait for the socket.
        if !tls.wants_read() {
            return Ok(());
        }
        tcp.readable().await
    }

    fn halves(
        &mut self,
    ) -> (
        impl AsyncRead + Unpin + Send + '_,
        impl AsyncWrite + Unpin + Send + '_,
    ) {
        // One TLS session decrypts and encrypts both ways, so the halves share it behind tokio's lock.
        tokio::io::split(self)
    }
}

/// What to do with a new connection.
pub(crate) enum Accepted<S> {
    /// Served here to the end.
    Done,
    /// Serve with hyper: the connection, with what was read from it put back in front.
    Http(Prefixed<S>),
}

/// Serves the connection here while its requests are subscriptions this module handles; hands it to hyper
/// at the first request it does not.
pub(crate) async fn accept<S: Socket>(
    state: &AppState,
    mut tcp: S,
    head_timeout: Duration,
) -> io::Result<Accepted<S>> {
    let mut first = true;
    loop {
        // Wait for the request before allocating a buffer for it: a kept-alive polling connection sits
        // here between requests, for as long as its client likes (open connections are bounded by
        // `--max-open-connections`). A new connection must send its first request in time.
        if std::mem::take(&mut first) {
            // Boxed, like the refusals: inline they would enlarge every connection's future.
            if Box::pin(tokio::time::timeout(head_timeout, tcp.readable()))
                .await
                .is_err()
            {
                let error = ApiError::RequestTimeout {
                    after: head_timeout,
                };
                Box::pin(answer_and_close(state, &mut tcp, &error)).await;
                return Ok(Accepted::Done);
            }
        } else {
            // Shutdown closes an idle kept-alive connection at once, as hyper closes its idle ones;
            // waiting for the client's next request would hold shutdown for the whole grace period.
            tokio::select! {
                ready = tcp.readable() => ready?,
                () = state.shutdown.cancelled() => return Ok(Accepted::Done),
            }
        }
        let (head, end) = match read_head(&mut tcp, head_timeout).await? {
            Head::Complete { bytes, end } => (bytes, end),
            Head::Closed => return Ok(Accepted::Done),
            Head::Refused(error) => {
                Box::pin(answer_and_close(state, &mut tcp, &error)).await;
                return Ok(Accepted::Done);
            }
        };
        // Bytes after the head (pipelining, early frames) are hyper's business.
        let parsed = if head.len() == end {
            Subscription::parse(state, &head[..end])
        } else {
            None
        };
        let Some(Subscription {
            kind,
            topics,
            after,
        }) = parsed
        else {
            return Ok(Accepted::Http(Prefixed {
                prefix: Bytes::from(head),
                inner: tcp,
            }));
        };
        drop(head);
        // Boxed: a task's future is allocated at the size of its largest branch, and the WebSocket session
        // is much larger than a stream, so unboxed every subscriber would pay for the largest.
        match kind {
            Kind::Polling { hold, keep_alive } => {
                if !Box::pin(serve_poll(state, &mut tcp, topics, after, hold)).await || !keep_alive
                {
                    return Ok(Accepted::Done);
                }
                continue;
            }
            Kind::NdJson => Box::pin(serve::<NdJson>(state, tcp, topics, after)).await,
            Kind::EventStream => Box::pin(serve::<EventStream>(state, tcp, topics, after)).await,
            Kind::WebSocket {
                accept_key,
                authorization,
            } => {
                Box::pin(serve_websocket(
                    state,
                    tcp,
                    topics,
                    after,
                    accept_key,
                    authorization,
                ))
                .await;
            }
        }
        return Ok(Accepted::Done);
    }
}

/// What reading a request head gave.
enum Head {
    /// A whole head: the bytes read (perhaps more than the head) and where the head ends.
    Complete { bytes: Vec<u8>, end: usize },
    /// The peer closed before sending a whole head.
    Closed,
    /// Too large or too slow: to be answered with this error and closed.
    Refused(ApiError),
}

/// Reads one request head, at most [`MAX_HEAD_BYTES`] within `head_timeout`.
async fn read_head(tcp: &mut impl Socket, head_timeout: Duration) -> io::Result<Head> {
    let mut head = Vec::with_capacity(1024);
    let read = tokio::time::timeout(head_timeout, async {
        loop {
            if tcp.read_buf(&mut head).await? == 0 {
                return Ok::<_, io::Error>(Head::Closed);
            }
            // A TLS handshake record: a client that meant https. No HTTP answer means anything to it,
            // so close at once rather than wait for a head that will never come.
            if head.first() == Some(&TLS_HANDSHAKE_RECORD) {
                debug!("a TLS client on the cleartext port; closing");
                return Ok(Head::Closed);
            }
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(Head::Complete {
                    end: end + 4,
                    bytes: std::mem::take(&mut head),
                });
            }
            if head.len() >= MAX_HEAD_BYTES {
                return Ok(Head::Refused(ApiError::HeadTooLarge {
                    limit: MAX_HEAD_BYTES,
                }));
            }
        }
    })
    .await;
    read.unwrap_or(Ok(Head::Refused(ApiError::RequestTimeout {
        after: head_timeout,
    })))
}

/// Answers one poll, or one long-poll when there is a `hold`. Returns whether the connection can serve
/// another request.
async fn serve_poll(
    state: &AppState,
    tcp: &mut impl Socket,
    topics: Arc<[Topic]>,
    after: Option<u64>,
    hold: Option<Duration>,
) -> bool {
    let (transport, answered) = match hold {
        None => (Transport::Poll, poll::read(state, &topics, after)),
        Some(hold) => {
            let (mut reader, _) = tcp.halves();
            let waited = tokio::select! {
                waited = long_poll::wait(state, topics, after, hold) => waited,
                // Owning the socket lets us free the slot as soon as a client gives up.
                () = peer_closed(&mut reader) => return false,
            };
            (Transport::LongPoll, waited)
        }
    };
    let response = match answered {
        Ok(batch) => {
            let body = poll::body(state, transport, &batch);
            let mut response = format!(
                "HTTP/1.1 200 OK\r\n{}content-length: {}\r\ndate: {}\r\n\r\n",
                super::head_lines("application/json", super::POLL_FIELDS),
                body.len(),
                httpdate::fmt_http_date(SystemTime::now()),
            )
            .into_bytes();
            response.extend_from_slice(&body);
            response
        }
        Err(refused) => {
            write_within(state, tcp, error_response(&refused)).await;
            return false;
        }
    };
    write_within(state, tcp, response).await && !state.shutdown.is_cancelled()
}

/// Which transport the request asked for.
enum Kind {
    /// `/poll` (no hold) or `/longpoll`.
    Polling {
        /// How long to hold the request (long-poll).
        hold: Option<Duration>,
        /// The client did not ask to close the connection after the answer.
        keep_alive: bool,
    },
    NdJson,
    EventStream,
    WebSocket {
        /// `Sec-WebSocket-Accept` for the 101 answer.
        accept_key: String,
        /// The `Authorization` header, which decides whether the client may publish over the socket.
        authorization: Option<Vec<u8>>,
    },
}

/// Whether `head` parses into a subscription served here (for the fuzz targets).
pub(super) fn parses_as_subscription(state: &AppState, head: &[u8]) -> bool {
    Subscription::parse(state, head).is_some()
}

/// A valid subscription request; anything that does not parse into one goes to hyper.
struct Subscription {
    kind: Kind,
    topics: Arc<[Topic]>,
    after: Option<u64>,
}

impl Subscription {
    fn parse(state: &AppState, head: &[u8]) -> Option<Self> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
            return None;
        }
        // Chunked responses need HTTP/1.1; upgrades and bodies are hyper's business.
        if request.method != Some("GET") || request.version != Some(1) {
            return None;
        }
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        if header("content-length").is_some() || header("transfer-encoding").is_some() {
            return None;
        }
        let (path, query) = request.path?.split_once('?').unwrap_or((request.path?, ""));
        let kind = match (path, header("upgrade")) {
            ("/poll" | "/longpoll", None) => Kind::Polling {
                hold: None, // from the query, below
                keep_alive: !header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close")),
            },
            ("/stream", None) => Kind::NdJson,
            ("/sse", None) => Kind::EventStream,
            ("/ws", Some(_)) => Kind::WebSocket {
                accept_key: ws::handshake(&axum::http::Method::GET, header).ok()?,
                authorization: header("authorization").map(<[u8]>::to_vec),
            },
            _ => return None,
        };
        let long_poll = path == "/longpoll";
        let query = SubscribeQuery::parse(Some(query), long_poll).ok()?;
        let mut kind = kind;
        if let (Kind::Polling { hold, .. }, true) = (&mut kind, long_poll) {
            *hold = Some(long_poll::hold_duration(state, query.timeout_ms).ok()?);
        }
        let after = match kind {
            Kind::EventStream => sse::cursor(header("last-event-id"), query.after).ok()?,
            _ => query.after,
        };
        Some(Self {
            kind,
            topics: query.topics,
            after,
        })
    }
}

/// Writes the whole response: head, then frames in chunks, then (at shutdown) the last chunk.
async fn serve<F: Framing>(
    state: &AppState,
    mut tcp: impl Socket,
    topics: Arc<[Topic]>,
    after: Option<u64>,
) {
    let write_timeout = state.config.write_timeout;
    let mut subscriber = match Subscriber::<F>::admit(state, topics, after) {
        Ok(subscriber) => subscriber,
        Err(refused) => {
            write_within(state, &mut tcp, error_response(&refused)).await;
            return;
        }
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\n{}transfer-encoding: chunked\r\ndate: {}\r\n\r\n",
        super::head_lines(F::CONTENT_TYPE, super::STREAM_FIELDS),
        httpdate::fmt_http_date(SystemTime::now()),
    );
    if !write_within(state, &mut tcp, head.into_bytes()).await {
        return;
    }
    let (mut reader, mut writer) = tcp.halves();
    // Inline here rather than in the subscriber: this future is pinned for the connection's life.
    let heartbeat = std::pin::pin!(subscriber.heartbeat_timer());
    let mut heartbeat = heartbeat;
    loop {
        // One chunk per write, allocated only once there is something to write: room for the chunk-size
        // line in front, the subscriber's frames after it.
        let mut chunk = Vec::new();
        let more = tokio::select! {
            more = subscriber.next_write(heartbeat.as_mut(), &mut chunk, CHUNK_HEAD_ROOM) => more,
            // Owning the socket lets us notice a client that hangs up even while nothing is sent.
            () = peer_closed(&mut reader) => return,
        };
        if !more {
            let last = async {
                writer.write_all(b"0\r\n\r\n").await?;
                writer.flush().await
            };
            let _ = tokio::time::timeout(write_timeout, last).await;
            let _ = writer.shutdown().await;
            return;
        }
        let chunk = frame_chunk(&mut chunk);
        // No write timeout, as on the hyper path: a consumer that stops reading holds this write, its
        // subscription falls behind the replay buffer and it gets the gap notice when it reads again.
        // Only WebSockets are cut as slow consumers (with close code 1008).
        let write = async {
            writer.write_all(chunk).await?;
            writer.flush().await
        };
        let wrote = tokio::select! {
            wrote = write => wrote.is_ok(),
            () = peer_closed(&mut reader) => false,
        };
        if !wrote {
            return;
        }
    }
}

/// Bytes kept free in front of a chunk's data for its size line: 16 hex digits and CRLF.
const CHUNK_HEAD_ROOM: usize = 18;

/// Turns `buffer` — [`CHUNK_HEAD_ROOM`] bytes of room, then the data — into one HTTP/1.1 chunk, in place,
/// and returns it.
fn frame_chunk(buffer: &mut Vec<u8>) -> &[u8] {
    let size = buffer.len() - CHUNK_HEAD_ROOM;
    let mut head = [0u8; CHUNK_HEAD_ROOM];
    let mut free = &mut head[..];
    write!(free, "{size:x}\r\n").expect("a usize in hex and CRLF fit in the room");
    let len = CHUNK_HEAD_ROOM - free.len();
    let start = CHUNK_HEAD_ROOM - len;
    buffer[start..CHUNK_HEAD_ROOM].copy_from_slice(&head[..len]);
    buffer.extend_from_slice(b"\r\n");
    &buffer[start..]
}

/// Answers the upgrade and runs the WebSocket session on the raw socket.
/// Takes ownership of everything it is given so that nothing but the session outlives the handshake.
async fn serve_websocket(
    state: &AppState,
    mut tcp: impl Socket,
    topics: Arc<[Topic]>,
    after: Option<u64>,
    accept_key: String,
    authorization: Option<Vec<u8>>,
) {
    let (response, session) =
        match ws::Session::open(state, topics, after, authorization.as_deref()) {
            Ok(session) => (
                ws::switching_protocols_head(&accept_key).into_bytes(),
                Some(session),
            ),
            Err(refused) => (error_response(&refused), None),
        };
    drop((accept_key, authorization));
    if !write_within(state, &mut tcp, response).await {
        return;
    }
    if let Some(session) = session {
        session.run(ws::websocket(state, tcp).await).await;
    }
}

/// Answers a connection that will not be served with `error`, then closes it.
pub(crate) async fn refuse(state: &AppState, mut tcp: impl Socket, error: ApiError) {
    answer_and_close(state, &mut tcp, &error).await;
}

/// Writes `bytes` within the write timeout, then frees them (a subscriber's connection lives for hours;
/// its handshake buffers should not). Returns whether it succeeded.
async fn write_within(state: &AppState, tcp: &mut impl Socket, bytes: Vec<u8>) -> bool {
    let write = async {
        tcp.write_all(&bytes).await?;
        tcp.flush().await
    };
    matches!(
        tokio::time::timeout(state.config.write_timeout, write).await,
        Ok(Ok(()))
    )
}

/// Completes when the peer closes its side (or the socket fails); discards anything it sends.
async fn peer_closed(reader: &mut (impl AsyncRead + Unpin)) {
    let mut scratch = [0u8; 64];
    while let Ok(1..) = reader.read(&mut scratch).await {}
}

/// How long a refused connection is read and discarded after its answer.
const LINGER: Duration = Duration::from_secs(1);

/// Answers `error` and closes gently: our side is shut first, then what the client still sends is
/// discarded for up to [`LINGER`]. Closing with unread bytes would reset the connection, and the reset
/// can destroy the answer before the client has read it.
async fn answer_and_close(state: &AppState, tcp: &mut impl Socket, error: &ApiError) {
    if write_within(state, tcp, error_response(error)).await {
        let _ = tcp.shutdown().await;
        let _ = tokio::time::timeout(LINGER, peer_closed(tcp)).await;
    }
}

/// A complete HTTP/1.1 error response with the same JSON body the router would send.
fn error_response(error: &ApiError) -> Vec<u8> {
    let body = serde_json::to_string(&pushbench_common::wire::ErrorBody {
        error: error.to_string(),
    })
    .expect("error bodies serialize");
    let status = error.status();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    )
    .into_bytes()
}

/// A connection with bytes already read from it put back in front, for hyper.
pub(crate) struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S: Socket> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if !self.prefix.has_remaining() {
                self.prefix = Bytes::new(); // free the head's allocation; the connection may live for hours
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: Socket> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(head: &str) -> Option<Subscription> {
        Subscription::parse(
            &AppState::embedded(crate::config::Config::default()),
            head.as_bytes(),
        )
    }

    #[test]
    fn recognizes_stream_and_sse_subscriptions() {
        let s = parse("GET /sse?topic=b&topic=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 42\r\n\r\n")
            .unwrap();
        assert!(matches!(s.kind, Kind::EventStream));
        assert_eq!((s.topics.len(), s.after), (2, Some(42)));
        let s = parse("GET /stream?topic=a&after=7 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(matches!(s.kind, Kind::NdJson));
        let upgrade = "GET /ws?topic=a HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        assert!(matches!(
            parse(upgrade).unwrap().kind,
            Kind::WebSocket { .. }
        ));
        let long_poll =
            parse("GET /longpoll?topic=a&timeout_ms=500 HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap();
        assert!(
            matches!(long_poll.kind, Kind::Polling { hold: Some(hold), keep_alive: false } if hold == Duration::from_millis(500))
        );
        let poll = parse("GET /poll?topic=a&after=3 HTTP/1.1\r\n\r\n").unwrap();
        assert!(matches!(
            poll.kind,
            Kind::Polling {
                hold: None,
                keep_alive: true
            }
        ));
        assert_eq!(s.after, Some(7));
    }

    #[test]
    fn leaves_everything_else_to_hyper() {
        for head in [
            "GET /poll?topic=a&timeout_ms=5 HTTP/1.1\r\n\r\n",
            "GET /stream HTTP/1.1\r\n\r\n",
            "GET /stream?topic=a&after=x HTTP/1.1\r\n\r\n",
            "GET /stream?topic=a HTTP/1.0\r\n\r\n",
            "POST /stream?topic=a HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
            "GET /sse?topic=a HTTP/1.1\r\nLast-Event-ID: nope\r\n\r\n",
            "GET /longpoll?topic=a&timeout_ms=0 HTTP/1.1\r\n\r\n",
            "GET /stream?topic=a&timeout_ms=5 HTTP/1.1\r\n\r\n",
            "GET /ws?topic=a HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", // incomplete handshake
            "GET /stream?topic=a HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
            "GARBAGE\r\n\r\n",
        ] {
            assert!(parse(head).is_none(), "{head:?}");
        }
    }

    #[test]
    fn chunks_are_framed_in_place() {
        let mut buffer = vec![0; CHUNK_HEAD_ROOM];
        buffer.extend_from_slice(&[b'x'; 26]);
        assert_eq!(
            frame_chunk(&mut buffer),
            format!("1a\r\n{}\r\n", "x".repeat(26)).as_bytes()
        );
        let mut empty = vec![0; CHUNK_HEAD_ROOM];
        assert_eq!(frame_chunk(&mut empty), b"0\r\n\r\n");
    }

    /// A socket that, like rustls, keeps what it is given until it is flushed.
    struct SendsOnFlush {
        inner: TcpStream,
        held: Vec<u8>,
    }

    impl AsyncRead for SendsOnFlush {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for SendsOnFlush {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.held.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = &mut *self;
            while !this.held.is_empty() {
                let n = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, &this.held))?;
                this.held.drain(..n);
            }
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            std::task::ready!(self.as_mut().poll_flush(cx))?;
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    impl Socket for SendsOnFlush {
        fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
            self.inner.readable()
        }

        fn halves(
            &mut self,
        ) -> (
            impl AsyncRead + Unpin + Send + '_,
            impl AsyncWrite + Unpin + Send + '_,
        ) {
            tokio::io::split(self)
        }
    }

    /// Over TLS, bytes handed to rustls leave only when flushed: each write of the direct path must be,
    /// on a stream and on a WebSocket.
    #[tokio::test]
    async fn every_write_reaches_a_socket_that_sends_only_on_flush() {
        let websocket = "GET /ws?topic=f HTTP/1.1\r\nhost: x\r\nConnection: Upgrade\r\n\
                         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        for request in ["GET /stream?topic=f HTTP/1.1\r\nhost: x\r\n\r\n", websocket] {
            let state = AppState::embedded(crate::config::Config::default());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (inner, _) = listener.accept().await.unwrap();
            let socket = SendsOnFlush {
                inner,
                held: Vec::new(),
            };
            let served = tokio::spawn({
                let state = state.clone();
                async move { accept(&state, socket, Duration::from_secs(5)).await.is_ok() }
            });
            client.write_all(request.as_bytes()).await.unwrap();
            let mut received = Vec::new();
            let mut read_until = async |received: &mut Vec<u8>, needle: &str| {
                while !String::from_utf8_lossy(received).contains(needle) {
                    assert!(client.read_buf(received).await.unwrap() > 0, "closed");
                }
            };
            let patience = Duration::from_secs(10);
            tokio::time::timeout(patience, read_until(&mut received, "subscribed"))
                .await
                .unwrap_or_else(|_| panic!("{request:?}: the greeting was not flushed"));
            state
                .feed
                .publish(Topic::parse("f").unwrap(), "flushed?")
                .await
                .unwrap();
            tokio::time::timeout(patience, read_until(&mut received, "flushed?"))
                .await
                .unwrap_or_else(|_| panic!("{request:?}: the event was not flushed"));
            served.abort();
        }
    }

    #[test]
    fn error_responses_are_complete_http() {
        let text =
            String::from_utf8(error_response(&ApiError::TooManyConnections { limit: 3 })).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(body.contains("limit of 3"));
    }
}

/// An idle subscriber's memory is mostly the state of the future that serves it; these bounds catch a
/// change that makes every connection carry something large (a `format!` buffer, a publish path, a timer)
/// long before a 10,000-subscriber run would show it. Sizes are of debug builds, which are larger.
#[cfg(test)]
mod footprint {
    use super::*;

    async fn connected() -> (AppState, TcpStream, Arc<[Topic]>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        (
            AppState::embedded(crate::config::Config::default()),
            tcp,
            vec![Topic::parse("a").unwrap()].into(),
        )
    }

    #[tokio::test]
    async fn per_subscriber_futures_stay_small() {
        let (state, tcp, topics) = connected().await;
        let stream = serve::<NdJson>(&state, tcp, topics, None);
        assert!(
            size_of_val(&stream) <= 1024,
            "stream/SSE subscriber future: {} bytes",
            size_of_val(&stream)
        );
        drop(stream);
        let (state, tcp, topics) = connected().await;
        let websocket = serve_websocket(&state, tcp, topics, None, String::new(), None);
        assert!(
            size_of_val(&websocket) <= 2048,
            "WebSocket session future: {} bytes",
            size_of_val(&websocket)
        );
        drop(websocket);
        let (state, tcp, _) = connected().await;
        let accepting = accept(&state, tcp, Duration::from_secs(1));
        assert!(
            size_of_val(&accepting) <= 640,
            "connection task future: {} bytes",
            size_of_val(&accepting)
        );
    }
}
