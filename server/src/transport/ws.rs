//! `GET /ws`: WebSocket. After the upgrade the connection is a full-duplex message pipe: one text frame per
//! event, a ping after an idle interval (keep-alive, and to detect dead peers), and clients may publish
//! over the same socket.
//!
//! The upgrade is done here rather than by axum so that both ways a connection can arrive end in the same
//! [`Session`]: a kept-alive connection through hyper's upgrade mechanism, and a connection whose first
//! request is the upgrade through [`super::direct`], which skips hyper's per-connection buffers. The
//! session logic is written over any `Sink + Stream` of messages, not the concrete socket. Upgraded
//! connections run as tasks tracked by [`AppState::tasks`] and end with a close frame (1001, going away)
//! at shutdown.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use hyper_util::rt::TokioIo;
use pushbench_common::wire::{ClientMessage, Control, push_ws_text_frame};
use pushbench_common::{Topic, Transport};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes, handshake::derive_accept_key};
use tracing::debug;

use super::SubscribeQuery;
use super::publish::accept;
use crate::auth::{authorize, bearer_token};
use crate::error::ApiError;
use crate::feed::Subscription;
use crate::metrics::ConnectionGuard;
use crate::state::AppState;

/// tungstenite allocates its read buffer eagerly, 128 KiB by default, and keeps it for the connection's
/// life. An idle subscriber only sends pongs (6 bytes); a publish frame makes tungstenite reserve room for
/// that frame's length, so a small buffer costs nothing. 64 rather than 256 bytes saves ~190 bytes of RSS
/// per idle WebSocket (10,000 connections: 3,963 against 4,150 bytes each).
const READ_BUFFER_BYTES: usize = 64;
/// Room for the publish frame's JSON around its data.
const PUBLISH_FRAME_OVERHEAD: usize = 1024;
/// Unanswered pings after which the peer is considered gone.
const MAX_MISSED_PINGS: u32 = 2;

pub(super) fn routes() -> Router<AppState> {
    // GET with `Upgrade: websocket` on HTTP/1.1; CONNECT with `:protocol = websocket` on h2 (RFC 8441).
    Router::new().route("/ws", get(ws).connect(ws))
}

/// The hyper path: answers 101 (HTTP/1.1) or 200 (h2's extended CONNECT) and continues the session on
/// the upgraded connection or stream.
async fn ws(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let query = SubscribeQuery::parse(request.uri().query(), false)?;
    let (mut parts, _body) = request.into_parts();
    let headers = &parts.headers;
    let header = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    let accept_key = if parts.method == Method::CONNECT {
        extended_connect(parts.extensions.get::<hyper::ext::Protocol>(), header)?;
        None
    } else {
        Some(handshake(&parts.method, header)?)
    };
    let on_upgrade = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::BadRequest("this connection cannot be upgraded".into()))?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let session = Session::open(&state, query.topics, query.after, authorization)?;
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                session
                    .run(websocket(&state, TokioIo::new(upgraded)).await)
                    .await
            }
            Err(e) => debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let response = match accept_key {
        Some(accept_key) => Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "upgrade")
            .header(header::SEC_WEBSOCKET_ACCEPT, accept_key),
        // RFC 8441 §5: the stream is the WebSocket once the CONNECT is answered 2xx; no key, no accept.
        None => Response::builder().status(StatusCode::OK),
    };
    Ok(response
        .body(Body::empty())
        .expect("static response parts are valid"))
}

/// Checks an extended CONNECT that opens a WebSocket over h2 (RFC 8441 §4, §5).
fn extended_connect<'a>(
    protocol: Option<&hyper::ext::Protocol>,
    header: impl Fn(&str) -> Option<&'a [u8]>,
) -> Result<(), ApiError> {
    if protocol.map(hyper::ext::Protocol::as_str) != Some("websocket") {
        return Err(ApiError::BadRequest(
            "expected a WebSocket: CONNECT needs `:protocol: websocket`".into(),
        ));
    }
    if header("sec-websocket-version") != Some(b"13") {
        return Err(ApiError::BadRequest(
            "expected a WebSocket upgrade: `Sec-WebSocket-Version: 13` is required".into(),
        ));
    }
    Ok(())
}

/// Checks an opening handshake (RFC 6455 §4.2.1) and returns the `Sec-WebSocket-Accept` value.
pub(super) fn handshake<'a>(
    method: &Method,
    header: impl Fn(&str) -> Option<&'a [u8]>,
) -> Result<String, ApiError> {
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    let refuse = |what: &str| {
        Err(ApiError::BadRequest(format!(
            "expected a WebSocket upgrade: {what}"
        )))
    };
    if method != Method::GET {
        return refuse("the method must be GET");
    }
    if !has_token("connection", "upgrade") || !has_token("upgrade", "websocket") {
        return refuse("`Connection: upgrade` and `Upgrade: websocket` are required");
    }
    if header("sec-websocket-version") != Some(b"13") {
        return refuse("`Sec-WebSocket-Version: 13` is required");
    }
    match header("sec-websocket-key") {
        Some(key) if !key.is_empty() => Ok(derive_accept_key(key)),
        _ => refuse("`Sec-WebSocket-Key` is required"),
    }
}

/// The 101 response head for the direct path.
pub(super) fn switching_protocols_head(accept_key: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {accept_key}\r\n\r\n"
    )
}

/// Wraps an upgraded connection as a server-side WebSocket with our limits.
pub(super) async fn websocket<S: AsyncRead + AsyncWrite + Unpin>(
    state: &AppState,
    io: S,
) -> WebSocketStream<S> {
    let max_frame = state.config.max_payload + PUBLISH_FRAME_OVERHEAD;
    let mut config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    config.max_message_size = Some(max_frame);
    config.max_frame_size = Some(max_frame);
    WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
}

/// One WebSocket subscriber.
pub(super) struct Session {
    state: AppState,
    subscription: Subscription,
    /// The upgrade request carried a valid publish token (or none is configured).
    may_publish: bool,
    _slot: ConnectionGuard,
}

/// Bytes a server-to-client frame of `payload` bytes occupies on the wire (unmasked header + payload).
fn frame_len(payload: usize) -> u64 {
    let header = match payload {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    (header + payload) as u64
}

impl Session {
    /// Admits and subscribes before the upgrade, so the starting cursor is fixed at request time like on
    /// the other transports, and a refusal can still be an HTTP error.
    pub(super) fn open(
        state: &AppState,
        topics: std::sync::Arc<[Topic]>,
        after: Option<u64>,
        authorization: Option<&[u8]>,
    ) -> Result<Self, ApiError> {
        let slot = state.metrics.admit(Transport::Ws)?;
        Ok(Self {
            subscription: state.feed.subscribe(topics, after),
            may_publish: authorize(state, bearer_token(authorization)).is_ok(),
            state: state.clone(),
            _slot: slot,
        })
    }

    /// Runs the session until the peer leaves, stops answering, cannot keep up, or the server shuts down.
    pub(super) async fn run<S>(mut self, mut socket: S)
    where
        S: Sink<Message, Error = tungstenite::Error>
            + Stream<Item = Result<Message, tungstenite::Error>>
            + RawFrames
            + Unpin,
    {
        let heartbeat = self.state.config.heartbeat;
        // A ping only after an idle interval, as stream and SSE send their heartbeats: every write of events
        // pushes it back, so a busy subscriber costs no pings and pongs (three times the CPU per delivery at
        // 19,000 subscribers with an event every 5 s each). A peer that vanishes under traffic is found by
        // its writes backing up instead (the slow-consumer bounds).
        let ping = tokio::time::sleep(heartbeat);
        tokio::pin!(ping);
        let mut missed_pings = 0;
        let mut live = false;
        let greeting = control_frame(&Control::Subscribed {
            next: self.subscription.cursor(),
        });
        if Box::pin(self.send_counted(&mut socket, vec![greeting], 0))
            .await
            .is_err()
        {
            return;
        }
        loop {
            // Incoming frames first, so that a busy feed cannot starve the client's pongs and publishes.
            tokio::select! {
                biased;
                incoming = socket.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        // Boxed: publishing (possibly through Redis) is rare and its future large; inline it
                        // would grow every idle session.
                        let reply = control_frame(&Box::pin(self.client_frame(&text)).await);
                        if Box::pin(self.send_counted(&mut socket, vec![reply], 0)).await.is_err() { return; }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let reply = control_frame(&Control::Error { error: "binary frames are not accepted; send JSON text".into() });
                        if Box::pin(self.send_counted(&mut socket, vec![reply], 0)).await.is_err() { return; }
                    }
                    Some(Ok(Message::Pong(_))) => missed_pings = 0,
                    // tungstenite answers pings itself.
                    Some(Ok(Message::Ping(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_))) => {
                        // tungstenite has queued the echo of the client's close frame (RFC 6455 §5.5.1);
                        // flushing sends it, completing the closing handshake.
                        let _ = tokio::time::timeout(CLOSE_PATIENCE, SinkExt::flush(&mut socket)).await;
                        return;
                    }
                    None => return,
                    Some(Err(e)) => {
                        debug!(error = %e, "websocket read failed");
                        if let Some((code, reason)) = close_code_for(&e) {
                            close(&mut socket, code, reason).await;
                        }
                        return;
                    }
                },
                // The batch is encoded straight into one buffer of ready frames while the log is locked
                // for reading, and written in one go: one system call however many events it holds.
                frames = self.subscription.next_batch_with(self.state.config.write_interval, |batch| {
                    let mut frames = Vec::with_capacity(256);
                    if let Some(gap) = batch.gap {
                        self.state.metrics.gap(Transport::Ws, live);
                        let json = serde_json::to_vec(&Control::Gap(gap)).expect("control messages serialize");
                        push_ws_text_frame(&mut frames, &json);
                    }
                    live = true;
                    for event in &batch.events {
                        push_ws_text_frame(&mut frames, event.json_slice());
                    }
                    (frames, batch.events.len() as u64)
                }) => {
                    // The feed closes at shutdown, after this session has sent what it had read.
                    let Some((frames, events)) = frames else {
                        close(&mut socket, CloseCode::Away, "server shutting down").await;
                        return;
                    };
                    if Box::pin(self.send_raw(&mut socket, &frames, events)).await.is_err() { return; }
                    ping.as_mut().reset(tokio::time::Instant::now() + heartbeat);
                }
                () = ping.as_mut() => {
                    if missed_pings >= MAX_MISSED_PINGS {
                        debug!("websocket peer stopped answering pings");
                        return;
                    }
                    missed_pings += 1;
                    if Box::pin(self.send_counted(&mut socket, vec![Message::Ping(Default::default())], 0)).await.is_err() { return; }
                    ping.as_mut().reset(tokio::time::Instant::now() + heartbeat);
                }
            }
        }
    }

    /// Answers a frame sent by the client: a publish, or an error naming what was wrong.
    async fn client_frame(&self, text: &str) -> Control {
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(message) => message,
            Err(e) => {
                return Control::Error {
                    error: format!("invalid frame: {e}"),
                };
            }
        };
        let ClientMessage::Publish { topic, data, token } = message;
        let allowed = self.may_publish || authorize(&self.state, token.as_deref()).is_ok();
        let published = if allowed {
            accept(&self.state, &topic, &data).await
        } else {
            Err(ApiError::Unauthorized)
        };
        match published {
            Ok(ack) => Control::Published(ack),
            Err(e) => Control::Error {
                error: e.to_string(),
            },
        }
    }

    /// Writes a batch of encoded event frames in one write and counts it; a client that does not take it
    /// within the write timeout is dropped as a slow consumer, like in [`Session::send_counted`].
    async fn send_raw<S>(&self, socket: &mut S, frames: &[u8], events: u64) -> Result<(), ()>
    where
        S: Sink<Message, Error = tungstenite::Error> + RawFrames + Unpin,
    {
        let mut written = 0;
        let write = socket.write_frames(frames, &mut written);
        match tokio::time::timeout(self.state.config.write_timeout, write).await {
            Ok(outcome) => self.written(outcome, events, frames.len() as u64),
            Err(_elapsed) => {
                // The close frame must not land inside a half-written frame: the rest of the batch goes
                // first. A client that reads again within one more write timeout gets both.
                self.state.metrics.slow_consumer_disconnect(Transport::Ws);
                let patience = self.state.config.write_timeout;
                let _ = tokio::time::timeout(patience, async {
                    socket.write_frames(frames, &mut written).await?;
                    socket.send(slow_consumer_close()).await
                })
                .await;
                Err(())
            }
        }
    }

    /// Writes `frames` in one flush and counts them. A client that does not take them within the write
    /// timeout is a slow consumer: it is told why and dropped, so it cannot pin a send buffer forever.
    async fn send_counted<S>(
        &self,
        socket: &mut S,
        frames: Vec<Message>,
        events: u64,
    ) -> Result<(), ()>
    where
        S: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let bytes: u64 = frames.iter().map(|f| frame_len(f.len())).sum();
        let mut all = futures_util::stream::iter(frames.into_iter().map(Ok));
        match tokio::time::timeout(self.state.config.write_timeout, socket.send_all(&mut all)).await
        {
            Ok(outcome) => self.written(outcome, events, bytes),
            Err(_elapsed) => self.drop_slow_consumer(socket).await,
        }
    }

    /// Counts a finished write of `events` events in `bytes` bytes, or logs why it failed.
    fn written(
        &self,
        outcome: Result<(), tungstenite::Error>,
        events: u64,
        bytes: u64,
    ) -> Result<(), ()> {
        match outcome {
            Ok(()) => {
                self.state.metrics.delivered(Transport::Ws, events, bytes);
                self.state.metrics.wrote(Transport::Ws);
                Ok(())
            }
            Err(e) => {
                debug!(error = %e, "websocket write failed");
                Err(())
            }
        }
    }

    /// A client that did not take a write within the write timeout: counted, told why, and dropped.
    async fn drop_slow_consumer<S>(&self, socket: &mut S) -> Result<(), ()>
    where
        S: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        self.state.metrics.slow_consumer_disconnect(Transport::Ws);
        let patience = self.state.config.write_timeout;
        let _ = tokio::time::timeout(patience, socket.send(slow_consumer_close())).await;
        Err(())
    }
}

/// A WebSocket that can also take data frames already encoded, written as they are. Events are encoded
/// once per batch into one buffer rather than handed over one message at a time.
pub(super) trait RawFrames {
    /// Writes complete server frames after anything the socket itself still holds (a pong, the rest of
    /// an earlier write), advancing `written` as the socket takes them.
    fn write_frames(
        &mut self,
        frames: &[u8],
        written: &mut usize,
    ) -> impl Future<Output = Result<(), tungstenite::Error>> + Send;
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> RawFrames for WebSocketStream<S> {
    async fn write_frames(
        &mut self,
        frames: &[u8],
        written: &mut usize,
    ) -> Result<(), tungstenite::Error> {
        // Frames tungstenite has queued go first, so that ours never land inside one of them.
        SinkExt::flush(self).await?;
        while *written < frames.len() {
            match self.get_mut().write(&frames[*written..]).await? {
                0 => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
                n => *written += n,
            }
        }
        // Over TLS, rustls keeps what the socket would not take until it is flushed.
        self.get_mut().flush().await?;
        Ok(())
    }
}

fn control_frame(control: &Control) -> Message {
    Message::Text(
        serde_json::to_string(control)
            .expect("control messages serialize")
            .into(),
    )
}

/// The close frame (1008, policy violation) a slow consumer is dropped with. It waits one more write
/// timeout for the client to read on, so that a client that stalled learns why it was dropped.
fn slow_consumer_close() -> Message {
    close_frame(
        CloseCode::Policy,
        "slow consumer: writes blocked past the write timeout",
    )
}

fn close_frame(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// How long a close frame may wait for the peer to take it.
const CLOSE_PATIENCE: Duration = Duration::from_secs(1);

/// The close code and reason a read error is answered with (RFC 6455 §7.4.1), or `None` when the
/// connection itself is gone and nothing can be sent.
fn close_code_for(error: &tungstenite::Error) -> Option<(CloseCode, &'static str)> {
    use tungstenite::Error;
    match error {
        Error::Utf8(_) => Some((CloseCode::Invalid, "text frame is not valid UTF-8")),
        Error::Capacity(_) => Some((
            CloseCode::Size,
            "message exceeds the publish limit (--max-payload)",
        )),
        Error::Protocol(_) => Some((CloseCode::Protocol, "websocket protocol error")),
        _ => None,
    }
}

/// Sends a close frame, giving up if the peer does not take it within [`CLOSE_PATIENCE`].
async fn close<S: Sink<Message, Error = tungstenite::Error> + Unpin>(
    socket: &mut S,
    code: CloseCode,
    reason: &'static str,
) {
    let _ = tokio::time::timeout(CLOSE_PATIENCE, socket.send(close_frame(code, reason))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_follow_rfc_6455() {
        assert_eq!(frame_len(0), 2);
        assert_eq!(frame_len(125), 127);
        assert_eq!(frame_len(126), 130);
        assert_eq!(frame_len(70_000), 70_010);
    }

    #[test]
    fn raw_text_frames_are_what_tungstenite_would_send() {
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        for len in [0, 1, 125, 126, 65_535, 65_536, 70_000] {
            let payload = vec![b'x'; len];
            let mut ours = Vec::new();
            push_ws_text_frame(&mut ours, &payload);
            let mut theirs = Vec::new();
            Frame::message(payload, OpCode::Data(Data::Text), true)
                .format(&mut theirs)
                .unwrap();
            assert_eq!(ours, theirs, "payload of {len} bytes");
            assert_eq!(ours.len() as u64, frame_len(len), "counted as on the wire");
        }
    }

    #[test]
    fn handshake_follows_rfc_6455() {
        let headers = |version: &'static str| {
            move |name: &str| -> Option<&'static [u8]> {
                match name {
                    "connection" => Some(b"keep-alive, Upgrade"),
                    "upgrade" => Some(b"websocket"),
                    "sec-websocket-version" => Some(version.as_bytes()),
                    "sec-websocket-key" => Some(b"dGhlIHNhbXBsZSBub25jZQ=="),
                    _ => None,
                }
            }
        };
        // The example of RFC 6455 §1.3.
        assert_eq!(
            handshake(&Method::GET, headers("13")).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(
            handshake(&Method::GET, headers("8"))
                .unwrap_err()
                .to_string()
                .contains("Version: 13")
        );
        assert!(handshake(&Method::POST, headers("13")).is_err());
        assert!(
            handshake(&Method::GET, |_| None)
                .unwrap_err()
                .to_string()
                .contains("Upgrade: websocket")
        );
    }
}
