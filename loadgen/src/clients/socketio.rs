//! Socket.IO spoken by the load generator itself, for the Socket.IO peer: Engine.IO v4 (handshake,
//! packets, heartbeat) under Socket.IO v5 (connect to the default namespace, events, connection-state
//! recovery), over long-polling (pushbench `longpoll`) and WebSocket (`ws`, opened directly, without
//! the upgrade from long-polling).
//!
//! The wire, as in socketio/engine.io-protocol (README, v4) and socket.io's sources (4.8):
//! - An Engine.IO packet is a type digit and its data: `0` open (`{"sid","pingInterval","pingTimeout",..}`),
//!   `1` close, `2` ping, `3` pong, `4` message, `5` upgrade, `6` noop. The server pings every
//!   `pingInterval`; the client answers `3` with the ping's data.
//! - Long-polling: `GET /socket.io/?EIO=4&transport=polling` opens a session (answer `0{..}`);
//!   `POST ..&sid=S` sends packets (answer `ok`); `GET ..&sid=S` is held until packets wait, and carries
//!   them all, separated by `\x1e`. At most one GET and one POST at a time: the client sends its POSTs
//!   (the connect packet, pongs) between two GETs, all on one keep-alive connection.
//! - WebSocket: `GET /socket.io/?EIO=4&transport=websocket` upgrades at once (no `sid`: a WebSocket-only
//!   session); the server's first frame is the open packet; one packet per frame.
//! - A Socket.IO packet travels in an Engine.IO message: `40{auth}` connects the client to the default
//!   namespace and the server confirms with `40{"sid","pid"}`; `42["event",data,offset]` is an event;
//!   `41` a disconnect, `44{"message"}` a refused connect.
//! - Connection-state recovery (socket.io-client `lib/socket.ts`, `_sendConnectPacket` and `onconnect`;
//!   socket.io `lib/namespace.ts`, `_createSocket`): the server appends an offset to every event it
//!   stores (the last argument); a reconnecting client adds its session's `pid` and the `offset` of the
//!   last event it received to its connect packet. When the server restores the session it first sends
//!   every event missed, then its `40` with the **same** `pid`; when it cannot (the session expired or is
//!   not closed yet, the offset is unknown, or no event was received before the drop) it answers with a
//!   new `pid`, and what was published in between is gone.
//!
//! What pushbench records: events as for the other peers (`Subscriber::on_peer_payload`); a reconnect the
//! server did not recover counts in `gaps` (Socket.IO said the missed events are gone; they also show as
//! lost when there were any), so `reconnects - gaps` is how many it recovered. The subscriber's topics
//! travel in the connect packet's auth (`{"topics":[..]}`): the peer's script joins one room per topic.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;

use super::dialect::SOCKETIO_PATH;
use crate::clients::subscriber::{End, Subscriber};
use crate::conn::{ConnError, HttpConn};

/// The name the peer's script emits events under.
const EVENT: &str = "event";
/// Limit on an exchange that is answered at once (the handshake, a POST).
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// Why a Socket.IO exchange could not be understood, or what the server refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SocketIoError {
    /// A packet without even a type.
    #[error("empty Engine.IO packet")]
    Empty,
    /// A type digit Engine.IO v4 does not have.
    #[error("unknown Engine.IO packet type {0:?}")]
    EngineIoType(char),
    /// A base64 binary packet (`b...`): pushbench's events are text.
    #[error("binary Engine.IO packet: pushbench's events are text")]
    Binary,
    /// A long-polling payload that is not UTF-8.
    #[error("Engine.IO payload is not UTF-8: {0}")]
    Utf8(String),
    /// An open packet whose JSON does not hold `sid`, `pingInterval` and `pingTimeout`.
    #[error("bad Engine.IO open packet: {0}")]
    Open(String),
    /// An open packet where the session was already open, or something else where it was expected.
    #[error("expected the Engine.IO open packet first, got {0:?}")]
    NotOpen(String),
    /// A type digit Socket.IO v5 does not have, or one a server never sends to this client.
    #[error("unexpected Socket.IO packet type {0:?}")]
    SocketIoType(char),
    /// A packet of another namespace than the default one.
    #[error("Socket.IO packet for namespace {0:?}: this client uses the default namespace only")]
    Namespace(String),
    /// A connect or event packet whose data does not parse.
    #[error("bad Socket.IO {what}: {reason}")]
    Bad {
        /// Which packet.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The server refused the connect (`44`) or disconnected the client (`41`), or closed the Engine.IO
    /// session (`1`).
    #[error("the server ended the session: {0}")]
    Ended(String),
}

impl From<SocketIoError> for ConnError {
    fn from(e: SocketIoError) -> Self {
        ConnError::Protocol {
            path: SOCKETIO_PATH.to_owned(),
            reason: e.to_string(),
        }
    }
}

/// The open packet's data that matters here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Handshake {
    /// The Engine.IO session id, named by every later request of a long-polling session.
    pub sid: String,
    /// How often the server pings, ms.
    pub ping_interval: u64,
    /// How long the server waits for the pong, ms.
    pub ping_timeout: u64,
}

impl Handshake {
    /// How long a held long-poll may take: the server pings within `pingInterval`; the Engine.IO
    /// protocol lets a client wait `pingInterval + pingTimeout` before it calls the connection dead.
    fn hold_limit(&self) -> Duration {
        Duration::from_millis(self.ping_interval + self.ping_timeout)
    }
}

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EioPacket<'a> {
    /// `0{..}`.
    Open(Handshake),
    /// `1`.
    Close,
    /// `2<data>`: answered with `3<data>`.
    Ping(&'a str),
    /// `3<data>`.
    Pong,
    /// `4<Socket.IO packet>`.
    Message(&'a str),
    /// `5` and `6`, which belong to the upgrade from long-polling.
    Upgrade,
}

/// Parses one Engine.IO packet (one WebSocket frame, or one part of a long-polling payload).
pub(crate) fn parse_eio(packet: &str) -> Result<EioPacket<'_>, SocketIoError> {
    let Some(kind) = packet.chars().next() else {
        return Err(SocketIoError::Empty);
    };
    let data = &packet[kind.len_utf8()..];
    Ok(match kind {
        '0' => EioPacket::Open(
            serde_json::from_str(data).map_err(|e| SocketIoError::Open(format!("{e}: {data}")))?,
        ),
        '1' => EioPacket::Close,
        '2' => EioPacket::Ping(data),
        '3' => EioPacket::Pong,
        '4' => EioPacket::Message(data),
        '5' | '6' => EioPacket::Upgrade,
        'b' => return Err(SocketIoError::Binary),
        other => return Err(SocketIoError::EngineIoType(other)),
    })
}

/// Splits a long-polling body into its packets at `\x1e` as the body's chunks arrive: a packet, or one
/// character of it, may straddle two chunks. The separator is ASCII, so it never falls inside a UTF-8
/// sequence; each packet is checked to be UTF-8 once complete.
#[derive(Debug, Default)]
pub(crate) struct PayloadDecoder {
    /// The packet read so far, up to the next separator.
    pending: Vec<u8>,
}

impl PayloadDecoder {
    /// Feeds one chunk, handing every packet it completes to `on_packet`.
    pub(crate) fn feed<E: From<SocketIoError>>(
        &mut self,
        chunk: &[u8],
        mut on_packet: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = chunk;
        while let Some(at) = rest.iter().position(|&b| b == 0x1e) {
            self.pending.extend_from_slice(&rest[..at]);
            rest = &rest[at + 1..];
            self.emit(&mut on_packet)?;
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    /// The body ended: its last packet has no separator after it.
    pub(crate) fn finish<E: From<SocketIoError>>(
        &mut self,
        mut on_packet: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        self.emit(&mut on_packet)
    }

    fn emit<E: From<SocketIoError>>(
        &mut self,
        on_packet: &mut impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        let packet = std::mem::take(&mut self.pending);
        let text = std::str::from_utf8(&packet).map_err(|e| SocketIoError::Utf8(e.to_string()))?;
        on_packet(text)
    }
}

/// One Socket.IO packet of the default namespace, as a server sends it to this client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SioPacket {
    /// `40{"sid","pid"}`: connected; `pid` only with connection-state recovery on.
    Connect {
        /// The private session id, to send back on a reconnect.
        pid: Option<String>,
    },
    /// `42["event",data,offset]`.
    Event {
        /// The event's data (ours: `"<intended_ns> <seq> xxx…"`).
        data: String,
        /// The offset the server appended (recovery on): where a reconnect resumes.
        offset: Option<String>,
    },
}

/// Parses the Socket.IO packet inside an Engine.IO message.
pub(crate) fn parse_sio(message: &str) -> Result<SioPacket, SocketIoError> {
    let Some(kind) = message.chars().next() else {
        return Err(SocketIoError::Empty);
    };
    let data = &message[kind.len_utf8()..];
    if data.starts_with('/') {
        let namespace = data.split(',').next().unwrap_or(data);
        return Err(SocketIoError::Namespace(namespace.to_owned()));
    }
    match kind {
        '0' => {
            #[derive(Deserialize)]
            struct Connected {
                pid: Option<String>,
            }
            let connected: Connected =
                serde_json::from_str(data).map_err(|e| SocketIoError::Bad {
                    what: "connect packet",
                    reason: format!("{e}: {data}"),
                })?;
            Ok(SioPacket::Connect { pid: connected.pid })
        }
        '2' => {
            let bad = |reason: String| SocketIoError::Bad {
                what: "event",
                reason,
            };
            // An ack id (digits before the array) is never asked by the peer's script.
            let args: Vec<String> =
                serde_json::from_str(data).map_err(|e| bad(format!("{e}: {data}")))?;
            let mut args = args.into_iter();
            match (args.next(), args.next(), args.next(), args.next()) {
                (Some(name), Some(data), offset, None) if name == EVENT => {
                    Ok(SioPacket::Event { data, offset })
                }
                _ => Err(bad(format!(
                    "expected [\"{EVENT}\", data, offset?]: {data}"
                ))),
            }
        }
        '1' => Err(SocketIoError::Ended("Socket.IO disconnect (41)".into())),
        '4' => Err(SocketIoError::Ended(format!("connect refused: {data}"))),
        other => Err(SocketIoError::SocketIoType(other)),
    }
}

/// What outlives one connection: the subscriber's topics and its Socket.IO session's recovery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// The topics, sent in every connect packet (the script joins their rooms unless it recovered).
    topics: Vec<String>,
    /// The private id of the last session, from the server's connect packet.
    pid: Option<String>,
    /// The offset of the last event received.
    offset: Option<String>,
}

/// How the server took a connect packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Connected {
    /// The subscriber's first session.
    First,
    /// A reconnect whose session (rooms, missed events) the server restored: the same `pid`.
    Recovered,
    /// A reconnect the server started afresh: a new `pid`; events published meanwhile are gone.
    NotRecovered,
}

impl Recovery {
    /// Nothing to recover yet.
    pub(crate) fn new(topics: Vec<String>) -> Self {
        Self {
            topics,
            pid: None,
            offset: None,
        }
    }

    /// `40{"topics":[..]}`, with `pid` and `offset` once there is a session to recover (the offset only
    /// once an event arrived, as socket.io-client sends it).
    pub(crate) fn connect_packet(&self) -> String {
        let mut auth = serde_json::json!({ "topics": self.topics });
        if let Some(pid) = &self.pid {
            auth["pid"] = pid.as_str().into();
        }
        if let Some(offset) = &self.offset {
            auth["offset"] = offset.as_str().into();
        }
        format!("40{auth}")
    }

    /// The server's connect packet arrived with `pid`.
    pub(crate) fn connected(&mut self, pid: Option<String>) -> Connected {
        let outcome = match &self.pid {
            None => Connected::First,
            Some(sent) if pid.as_ref() == Some(sent) => Connected::Recovered,
            Some(_) => Connected::NotRecovered,
        };
        self.pid = pid;
        outcome
    }
}

/// What a handled packet asks of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    /// Nothing.
    None,
    /// A pong with this data.
    Pong(String),
    /// The server's connect packet: the subscription is live (its timings can be reported).
    Connected,
}

/// Handles one Engine.IO packet of an open session: records events, answers pings, counts the
/// subscription live at the server's connect packet.
fn on_packet(
    sub: &mut Subscriber<'_>,
    recovery: &mut Recovery,
    packet: &str,
) -> Result<Reply, ConnError> {
    match parse_eio(packet)? {
        EioPacket::Open(_) => Err(SocketIoError::NotOpen("a second open packet".into()).into()),
        EioPacket::Close => Err(SocketIoError::Ended("Engine.IO close (1)".into()).into()),
        EioPacket::Ping(data) => Ok(Reply::Pong(data.to_owned())),
        EioPacket::Pong | EioPacket::Upgrade => Ok(Reply::None),
        EioPacket::Message(message) => match parse_sio(message)? {
            SioPacket::Connect { pid } => {
                if recovery.connected(pid) == Connected::NotRecovered {
                    sub.rec.log.counters.gaps += 1;
                }
                sub.on_subscribed(0);
                Ok(Reply::Connected)
            }
            SioPacket::Event { data, offset } => {
                if offset.is_some() {
                    recovery.offset = offset;
                }
                sub.on_peer_payload(data.as_bytes())?;
                Ok(Reply::None)
            }
        },
    }
}

/// The open packet that starts a session.
fn expect_open(packet: &str) -> Result<Handshake, SocketIoError> {
    match parse_eio(packet)? {
        EioPacket::Open(handshake) => Ok(handshake),
        _ => Err(SocketIoError::NotOpen(
            packet.chars().take(80).collect::<String>(),
        )),
    }
}

/// One exchange answered at once on the long-polling connection: the body of a `200`.
async fn exchange(
    conn: &mut HttpConn,
    method: hyper::Method,
    path: &str,
    body: String,
) -> Result<bytes::Bytes, ConnError> {
    let send = async {
        let response = conn
            .send(method, path, &[("content-type", "text/plain")], body.into())
            .await?;
        crate::conn::body_of(path, response).await
    };
    tokio::time::timeout(ANSWER_LIMIT, send)
        .await
        .unwrap_or(Err(ConnError::Timeout(ANSWER_LIMIT)))
}

/// One long-polling session on one keep-alive connection: the handshake, the connect packet, then held
/// GETs, each answer's packets handled as its chunks arrive; pongs are POSTed between two GETs. Churn
/// cuts the connection, held GET and all: the server then closes the session ("transport error"), which
/// it keeps for recovery.
pub(crate) async fn polling_session(
    sub: &mut Subscriber<'_>,
    path: &str,
    recovery: &mut Recovery,
) -> Result<End, ConnError> {
    let shared = sub.shared;
    let started = Instant::now();
    let (mut conn, connect_time) = sub.open_http().await?;
    sub.rec.log.counters.requests += 1;
    let sent = Instant::now();
    let opened = tokio::select! {
        _ = shared.stop.cancelled() => return Ok(End::Stop),
        r = exchange(&mut conn, hyper::Method::GET, path, String::new()) => r,
    };
    let first_byte = sent.elapsed();
    let body = match opened {
        Ok(body) => body,
        Err(e) => {
            sub.rec.on_failed_connect(&e);
            sub.report("GET", "/socket.io/ handshake", first_byte, Err(&e))
                .await;
            return Err(e);
        }
    };
    sub.report("GET", "/socket.io/ handshake", first_byte, Ok(Some(200)))
        .await;
    // A v4 handshake answers the open packet alone.
    let text = std::str::from_utf8(&body).map_err(|e| SocketIoError::Utf8(e.to_string()))?;
    let handshake = expect_open(text)?;
    let session = format!("{path}&sid={}", handshake.sid);
    let hold = handshake.hold_limit() + Duration::from_secs(1);
    let mut outbox = Some(recovery.connect_packet());
    loop {
        if let Some(packets) = outbox.take() {
            sub.rec.log.counters.requests += 1;
            let sent = Instant::now();
            let answer = exchange(&mut conn, hyper::Method::POST, &session, packets).await;
            let outcome = answer.as_ref().map(|_| Some(200));
            sub.report("POST", "/socket.io/ polling", sent.elapsed(), outcome)
                .await;
            answer?;
        }
        sub.rec.log.counters.requests += 1;
        let sent = Instant::now();
        let churn = sub.churn_signal();
        let mut pongs = Vec::new();
        let mut connected = false;
        let delivered_before = sub.rec.log.received.len();
        let mut decoder = PayloadDecoder::default();
        let get = async {
            let response = conn.get(&session, &[]).await?;
            let status = response.status();
            if !status.is_success() {
                return crate::conn::body_of(&session, response).await.map(|_| ());
            }
            let mut body = response.into_body();
            let mut handle = |packet: &str| -> Result<(), ConnError> {
                match on_packet(sub, recovery, packet)? {
                    Reply::Pong(data) => pongs.push(format!("3{data}")),
                    Reply::Connected => connected = true,
                    Reply::None => {}
                }
                Ok(())
            };
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    decoder.feed(&data, &mut handle)?;
                }
            }
            decoder.finish(&mut handle)
        };
        let cut = tokio::select! {
            _ = shared.stop.cancelled() => Some(End::Stop),
            () = churn => Some(End::Churn),
            r = tokio::time::timeout(hold, get) => {
                r.unwrap_or(Err(ConnError::Timeout(hold)))?;
                None
            }
        };
        if let Some(end) = cut {
            sub.rec.log.counters.requests_cut += 1;
            return Ok(end);
        }
        let took = sent.elapsed();
        if sub.rec.log.received.len() == delivered_before {
            sub.rec.log.counters.empty_polls += 1;
        }
        sub.report("GET", "/socket.io/ polling", took, Ok(Some(200)))
            .await;
        if connected {
            sub.report_connection(connect_time, first_byte, Some(started.elapsed()))
                .await;
        }
        // Engine.IO takes several packets in one POST, separated as in a GET's answer.
        if !pongs.is_empty() {
            outbox = Some(pongs.join("\u{1e}"));
        }
    }
}

/// One WebSocket-only session: upgrade, the open packet, the connect packet, then one packet per frame;
/// pings are answered at once. Churn closes the WebSocket (the server's "transport close", which it
/// keeps for recovery).
pub(crate) async fn ws_session(
    sub: &mut Subscriber<'_>,
    path: &str,
    recovery: &mut Recovery,
) -> Result<End, ConnError> {
    let shared = sub.shared;
    let Some(mut ws) = crate::clients::ws::open(sub, path, "/socket.io/ websocket upgrade").await?
    else {
        return Ok(End::Stop);
    };
    let churn = sub.churn_signal();
    tokio::pin!(churn);
    let mut opened = false;
    let end = loop {
        let frame = tokio::select! {
            _ = shared.stop.cancelled() => break End::Stop,
            () = &mut churn => break End::Churn,
            frame = ws.socket().next() => frame,
        };
        let text = match frame {
            Some(Ok(Frame::Text(text))) => text,
            Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_))) => continue,
            Some(Ok(Frame::Binary(_))) => return Err(SocketIoError::Binary.into()),
            Some(Ok(Frame::Close(reason))) => {
                return Err(
                    sub.protocol_error(format!("the server closed the WebSocket: {reason:?}"))
                );
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Err(sub.protocol_error("the server ended the WebSocket".into())),
        };
        if !opened {
            expect_open(text.as_str())?;
            opened = true;
            ws.socket()
                .send(Frame::text(recovery.connect_packet()))
                .await?;
            continue;
        }
        match on_packet(sub, recovery, text.as_str())? {
            Reply::Pong(data) => ws.socket().send(Frame::text(format!("3{data}"))).await?,
            Reply::Connected => ws.report(sub).await,
            Reply::None => {}
        }
    };
    // A polite close; the server may already be gone at shutdown, so its answer is not awaited for long.
    let _ = tokio::time::timeout(Duration::from_millis(200), ws.socket().close(None)).await;
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` to a decoder in chunks of `split` bytes; the packets it yields.
    fn packets(body: &[u8], split: usize) -> Result<Vec<String>, SocketIoError> {
        let mut decoder = PayloadDecoder::default();
        let mut seen = Vec::new();
        for chunk in body.chunks(split) {
            decoder.feed(chunk, |p| {
                seen.push(p.to_owned());
                Ok::<_, SocketIoError>(())
            })?;
        }
        decoder.finish(|p| {
            seen.push(p.to_owned());
            Ok::<_, SocketIoError>(())
        })?;
        Ok(seen)
    }

    #[test]
    fn a_polling_payload_splits_at_record_separators_however_it_is_chunked() {
        // As socket.io 4.8 answered a GET with two waiting events and a ping (the offsets it appends
        // last); "é" is two bytes, cut in half by odd splits.
        let body =
            "42[\"event\",\"1 1 é\",\"Q9JHsKH\"]\u{1e}2\u{1e}42[\"event\",\"2 2 x\",\"Q9JHsMP\"]";
        for split in 1..=body.len() {
            assert_eq!(
                packets(body.as_bytes(), split).unwrap(),
                vec![
                    "42[\"event\",\"1 1 é\",\"Q9JHsKH\"]",
                    "2",
                    "42[\"event\",\"2 2 x\",\"Q9JHsMP\"]"
                ],
                "split {split}"
            );
        }
    }

    #[test]
    fn malformed_payloads_and_packets_are_clear_errors() {
        assert!(matches!(
            packets(b"4ok\x1e\xff\xfe", 3),
            Err(SocketIoError::Utf8(_))
        ));
        // An empty body, or a separator at the end, leaves an empty packet.
        assert_eq!(
            packets(b"", 1).map(|p| parse_eio(&p[0]).map(|_| ())),
            Ok(Err(SocketIoError::Empty))
        );
        assert_eq!(parse_eio("9x"), Err(SocketIoError::EngineIoType('9')));
        assert_eq!(parse_eio("bAQID"), Err(SocketIoError::Binary));
        assert!(matches!(
            parse_eio("0{\"sid\":1}"),
            Err(SocketIoError::Open(_))
        ));
        // Socket.IO packets, as inside an Engine.IO message (`4` + this).
        assert_eq!(
            parse_sio("0/admin,{}"),
            Err(SocketIoError::Namespace("/admin".into()))
        );
        assert!(matches!(
            parse_sio("2[\"event\""),
            Err(SocketIoError::Bad { what: "event", .. })
        ));
        assert!(matches!(
            parse_sio("2[\"other\",\"x\"]"),
            Err(SocketIoError::Bad { .. })
        ));
        assert!(matches!(
            parse_sio("2[\"event\",{\"a\":1}]"),
            Err(SocketIoError::Bad { .. })
        ));
        assert!(matches!(
            parse_sio("0not json"),
            Err(SocketIoError::Bad {
                what: "connect packet",
                ..
            })
        ));
        assert!(matches!(
            parse_sio("4{\"message\":\"no\"}"),
            Err(SocketIoError::Ended(_))
        ));
        assert!(matches!(parse_sio("1"), Err(SocketIoError::Ended(_))));
        assert_eq!(parse_sio("3[]"), Err(SocketIoError::SocketIoType('3')));
        assert_eq!(parse_sio(""), Err(SocketIoError::Empty));
        let e: ConnError = SocketIoError::Binary.into();
        assert_eq!(
            e.to_string(),
            "/socket.io/: unexpected body: binary Engine.IO packet: pushbench's events are text"
        );
        assert!(matches!(expect_open("2"), Err(SocketIoError::NotOpen(_))));
    }

    #[test]
    fn engine_io_packets_parse() {
        // socket.io 4.8's handshake answer, as seen on this machine.
        let open = r#"0{"sid":"rz4v_tSeYueaBUeuAAAA","upgrades":["websocket"],"pingInterval":1000,"pingTimeout":20000,"maxPayload":1000000}"#;
        let handshake = expect_open(open).unwrap();
        assert_eq!(handshake.sid, "rz4v_tSeYueaBUeuAAAA");
        assert_eq!(handshake.hold_limit(), Duration::from_millis(21_000));
        assert_eq!(parse_eio("2"), Ok(EioPacket::Ping("")));
        assert_eq!(parse_eio("2probe"), Ok(EioPacket::Ping("probe")));
        assert_eq!(parse_eio("3"), Ok(EioPacket::Pong));
        assert_eq!(parse_eio("1"), Ok(EioPacket::Close));
        assert_eq!(parse_eio("6"), Ok(EioPacket::Upgrade));
        assert_eq!(parse_eio("40{}"), Ok(EioPacket::Message("0{}")));
    }

    #[test]
    fn socket_io_connect_and_event_packets_parse() {
        assert_eq!(
            parse_sio(r#"0{"sid":"3rr79Mh191uX-DSyAAAA","pid":"GXr4Nr-fUNC2sxu9AAAB"}"#),
            Ok(SioPacket::Connect {
                pid: Some("GXr4Nr-fUNC2sxu9AAAB".into())
            })
        );
        // Without connection-state recovery the server sends no pid.
        assert_eq!(
            parse_sio(r#"0{"sid":"x"}"#),
            Ok(SioPacket::Connect { pid: None })
        );
        assert_eq!(
            parse_sio(r#"2["event","hello 1 x","Q9JHsKH"]"#),
            Ok(SioPacket::Event {
                data: "hello 1 x".into(),
                offset: Some("Q9JHsKH".into())
            })
        );
        assert_eq!(
            parse_sio(r#"2["event","a \"quoted\" \u00e9"]"#),
            Ok(SioPacket::Event {
                data: "a \"quoted\" é".into(),
                offset: None
            })
        );
    }

    #[test]
    fn a_reconnect_sends_pid_and_offset_and_learns_whether_it_was_recovered() {
        let mut recovery = Recovery::new(vec!["all".into(), "room.1".into()]);
        assert_eq!(
            recovery.connect_packet(),
            r#"40{"topics":["all","room.1"]}"#
        );
        assert_eq!(recovery.connected(Some("P1".into())), Connected::First);
        // Dropped before any event: the pid alone, which the server cannot recover from.
        let sent: serde_json::Value =
            serde_json::from_str(&recovery.connect_packet()[2..]).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"topics": ["all", "room.1"], "pid": "P1"})
        );
        assert_eq!(
            recovery.connected(Some("P2".into())),
            Connected::NotRecovered
        );
        recovery.offset = Some("Q9JHsMP".into());
        let sent: serde_json::Value =
            serde_json::from_str(&recovery.connect_packet()[2..]).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"topics": ["all", "room.1"], "pid": "P2", "offset": "Q9JHsMP"})
        );
        assert_eq!(recovery.connected(Some("P2".into())), Connected::Recovered);
    }

    #[test]
    fn profile_offers_longpoll_and_ws_only() {
        use crate::clients::dialect::{Offer, socketio_handshake_path as handshake_path};
        use pushbench_common::Transport;
        let p = crate::clients::dialect::socketio_profile();
        for t in [Transport::Poll, Transport::Stream, Transport::Sse] {
            assert_eq!(p.offer(t), &Offer::NotOffered, "{t}");
        }
        let lp = p.route(Transport::LongPoll).unwrap();
        assert_eq!(handshake_path(lp), "/socket.io/?EIO=4&transport=polling");
        let ws = p.route(Transport::Ws).unwrap();
        assert_eq!(handshake_path(ws), "/socket.io/?EIO=4&transport=websocket");
    }
}
