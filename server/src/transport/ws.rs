//! `GET /ws`: WebSocket. After the upgrade the connection is a full-duplex message pipe: one text frame per
//! event, pings to detect dead peers, and clients may publish over the same socket.
//!
//! The session logic is written over any `Sink + Stream` of messages, not the concrete socket, so tests
//! could drive it with channels. Upgraded connections leave hyper, so the session runs as a task tracked by
//! [`AppState::tasks`] and ends with a close frame (1001, going away) at shutdown.

use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use pushbench_common::Transport;
use pushbench_common::wire::{ClientMessage, Control};
use tracing::debug;

use super::SubscribeQuery;
use super::publish::{accept, authorize, bearer_token};
use crate::error::ApiError;
use crate::feed::Subscription;
use crate::metrics::ConnectionGuard;
use crate::state::AppState;

/// tungstenite's default read buffer is 128 KiB per connection; our clients send only small frames.
const READ_BUFFER_BYTES: usize = 4096;
/// Room for the publish frame's JSON around its data.
const PUBLISH_FRAME_OVERHEAD: usize = 1024;
/// Unanswered pings after which the peer is considered gone.
const MAX_MISSED_PINGS: u32 = 2;
/// Close code 1001: the server is going away.
const GOING_AWAY: u16 = 1001;
/// Close code 1008: policy violation (used for slow consumers).
const POLICY_VIOLATION: u16 = 1008;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(ws))
}

async fn ws(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let query = SubscribeQuery::parse(query.as_deref(), false)?;
    let upgrade = upgrade.map_err(|e| ApiError::BadRequest(format!("expected a WebSocket upgrade: {}", e.body_text())))?;
    let slot = state.metrics.admit(Transport::Ws)?;
    // Subscribing before the upgrade fixes the starting cursor at request time, like the other transports.
    let subscription = state.feed.subscribe(query.topics, query.after);
    let may_publish = authorize(&state, bearer_token(&headers)).is_ok();
    let max_frame = state.config.max_payload + PUBLISH_FRAME_OVERHEAD;
    let tasks = state.tasks.clone();
    Ok(upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| tasks.track_future(Session { state, subscription, may_publish, _slot: slot }.run(socket))))
}

/// One WebSocket subscriber.
struct Session {
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
    async fn run<S>(mut self, mut socket: S)
    where
        S: Sink<Message, Error = axum::Error> + Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        let transport = Transport::Ws;
        let heartbeat = self.state.config.heartbeat;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        let mut missed_pings = 0;
        let mut live = false;
        let greeting = control_frame(&Control::Subscribed { next: self.subscription.cursor() });
        if self.send_counted(&mut socket, vec![greeting], 0).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                biased;
                () = self.state.shutdown.cancelled() => {
                    close(&mut socket, GOING_AWAY, "server shutting down").await;
                    return;
                }
                incoming = socket.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let reply = control_frame(&self.client_frame(&text));
                        if self.send_counted(&mut socket, vec![reply], 0).await.is_err() { return; }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let reply = control_frame(&Control::Error { error: "binary frames are not accepted; send JSON text".into() });
                        if self.send_counted(&mut socket, vec![reply], 0).await.is_err() { return; }
                    }
                    Some(Ok(Message::Pong(_))) => missed_pings = 0,
                    // tungstenite answers pings itself.
                    Some(Ok(Message::Ping(_))) => {}
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Err(e)) => {
                        debug!(error = %e, "websocket read failed");
                        return;
                    }
                },
                batch = self.subscription.next_batch() => {
                    let mut frames = Vec::with_capacity(batch.events.len() + 1);
                    if let Some(gap) = batch.gap {
                        self.state.metrics.gap(transport, live);
                        frames.push(control_frame(&Control::Gap(gap)));
                    }
                    live = true;
                    let events = batch.events.len() as u64;
                    frames.extend(batch.events.iter().map(|e| {
                        Message::Text(Utf8Bytes::try_from(e.json()).expect("event JSON is UTF-8"))
                    }));
                    if self.send_counted(&mut socket, frames, events).await.is_err() { return; }
                }
                _ = ping.tick() => {
                    if missed_pings >= MAX_MISSED_PINGS {
                        debug!("websocket peer stopped answering pings");
                        return;
                    }
                    missed_pings += 1;
                    if self.send_counted(&mut socket, vec![Message::Ping(Default::default())], 0).await.is_err() { return; }
                }
            }
        }
    }

    /// Answers a frame sent by the client: a publish, or an error naming what was wrong.
    fn client_frame(&self, text: &str) -> Control {
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(message) => message,
            Err(e) => return Control::Error { error: format!("invalid frame: {e}") },
        };
        let ClientMessage::Publish { topic, data, token } = message;
        let allowed = self.may_publish || authorize(&self.state, token.as_deref()).is_ok();
        let published = if allowed { accept(&self.state, &topic, &data) } else { Err(ApiError::Unauthorized) };
        match published {
            Ok(ack) => Control::Published(ack),
            Err(e) => Control::Error { error: e.to_string() },
        }
    }

    /// Writes `frames` in one flush and counts them. A client that does not take them within the write
    /// timeout is a slow consumer: it is told why and dropped, so it cannot pin a send buffer forever.
    async fn send_counted<S>(&self, socket: &mut S, frames: Vec<Message>, events: u64) -> Result<(), ()>
    where
        S: Sink<Message, Error = axum::Error> + Unpin,
    {
        let bytes: u64 = frames.iter().map(|f| frame_len(payload_len(f))).sum();
        let mut all = futures_util::stream::iter(frames.into_iter().map(Ok));
        match tokio::time::timeout(self.state.config.write_timeout, socket.send_all(&mut all)).await {
            Ok(Ok(())) => {
                self.state.metrics.delivered(Transport::Ws, events, bytes);
                Ok(())
            }
            Ok(Err(e)) => {
                debug!(error = %e, "websocket write failed");
                Err(())
            }
            Err(_elapsed) => {
                self.state.metrics.slow_consumer_disconnect(Transport::Ws);
                close(socket, POLICY_VIOLATION, "slow consumer: writes blocked past the write timeout").await;
                Err(())
            }
        }
    }
}

fn payload_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        Message::Close(frame) => frame.as_ref().map_or(0, |f| 2 + f.reason.len()),
    }
}

fn control_frame(control: &Control) -> Message {
    Message::Text(serde_json::to_string(control).expect("control messages serialize").into())
}

/// Sends a close frame, giving up quickly if the peer does not read.
async fn close<S: Sink<Message, Error = axum::Error> + Unpin>(socket: &mut S, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }));
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(frame)).await;
}

#[cfg(test)]
mod tests {
    use super::frame_len;

    #[test]
    fn frame_lengths_follow_rfc_6455() {
        assert_eq!(frame_len(0), 2);
        assert_eq!(frame_len(125), 127);
        assert_eq!(frame_len(126), 130);
        assert_eq!(frame_len(70_000), 70_010);
    }
}
