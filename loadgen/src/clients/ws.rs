//! WebSocket client (`GET /ws`, tokio-tungstenite over a counted TCP stream, or over one stream of an h2
//! connection opened by extended CONNECT, RFC 8441).
//!
//! One upgrade per connection (per stream on h2), then one text frame per message (`subscribed` first). The read buffer is
//! kept small (4 KiB instead of tungstenite's 128 KiB) so that thousands of idle subscribers fit; pings are
//! answered by tungstenite as frames are read. On churn the client sends a close frame and resumes on a
//! new connection with `after=<cursor>`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use tokio_tungstenite::WebSocketStream;

use crate::clients::reconnect::{FirstSession, Session, until_stopped};
use crate::clients::subscriber::{End, Subscriber};
use tokio_util::either::Either;

use crate::conn::{ConnError, HttpConn, WsSocket};
use crate::scenario::HttpVersion;

/// Read buffer per connection.
const READ_BUFFER: usize = 4096;

/// Runs a WebSocket subscriber until the run stops.
pub(crate) async fn run(sub: &mut Subscriber<'_>) {
    until_stopped(sub, &mut WsSession, FirstSession::UnlessStopped).await;
}

/// One upgrade per session; nothing outlives a connection but the subscriber's cursor.
struct WsSession;

impl Session for WsSession {
    async fn run(&mut self, sub: &mut Subscriber<'_>) -> Result<End, ConnError> {
        session(sub).await
    }
}

/// The WebSocket's configuration: a small read buffer, writes sent at once.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
}

/// Runs the opening handshake `handshake` (an HTTP/1.1 upgrade, or an h2 extended CONNECT), counted as
/// one request: the socket and how long the handshake took, or `None` when the run stopped first. A
/// failure is recorded (and reported as `label`) here.
async fn handshake(
    sub: &mut Subscriber<'_>,
    handshake: impl Future<Output = Result<WebSocketStream<WsSocket>, ConnError>>,
    label: &str,
) -> Result<Option<(WebSocketStream<WsSocket>, Duration)>, ConnError> {
    sub.rec.log.counters.requests += 1;
    let sent = Instant::now();
    let outcome = tokio::select! {
        _ = sub.shared.stop.cancelled() => return Ok(None),
        h = handshake => h,
    };
    let took = sent.elapsed();
    match outcome {
        Ok(ws) => Ok(Some((ws, took))),
        Err(e) => {
            sub.rec.on_failed_connect(&e);
            sub.report("GET", label, took, Err(&e)).await;
            Err(e)
        }
    }
}

async fn session(sub: &mut Subscriber<'_>) -> Result<End, ConnError> {
    let path = format!("/ws?{}{}", sub.topics_query, sub.after_param());
    let Some(ws) = open(sub, &path, "/ws upgrade").await? else {
        return Ok(End::Stop);
    };
    let status = if sub.shared.scenario.client.http == HttpVersion::Http2 {
        200
    } else {
        101
    };
    sub.report("GET", "/ws upgrade", ws.upgrade, Ok(Some(status)))
        .await;
    ws.read(sub, |sub, message| sub.on_message(message), true)
        .await
}

/// An upgraded WebSocket being read, with the timings of how it was opened.
pub(crate) struct OpenWs {
    ws: WebSocketStream<WsSocket>,
    /// On h2, the connection the WebSocket's stream is part of: its driver runs while a handle lives.
    _connection: Option<HttpConn>,
    /// TCP connect time; `None` on an h2 connection already open.
    connect: Option<Duration>,
    upgrade: Duration,
    started: Instant,
}

/// Connects to the subscriber's next node and upgrades `path` to a WebSocket — over HTTP/1.1 by
/// Upgrade on a connection of its own, over h2 by extended CONNECT on a stream of the subscriber's
/// shared connection; a failure is recorded (reported as `label`) and returned. `Ok(None)`: the run
/// stopped meanwhile.
pub(crate) async fn open(
    sub: &mut Subscriber<'_>,
    path: &str,
    label: &str,
) -> Result<Option<OpenWs>, ConnError> {
    let started = Instant::now();
    let (opened, connection, connect) = if sub.shared.scenario.client.http == HttpVersion::Http2 {
        let (mut conn, connect) = sub.open_http().await?;
        let stream = async {
            let stream = Either::Right(conn.connect_websocket(path).await?);
            Ok(WebSocketStream::from_raw_socket(stream, Role::Client, Some(config())).await)
        };
        let opened = handshake(sub, stream, label).await?;
        (opened, Some(conn), connect)
    } else {
        let (node, stream, connect) = sub.open_tcp().await?;
        let url = format!("ws://{}{path}", node.host);
        let upgrade = async {
            let (ws, _response) = tokio_tungstenite::client_async_with_config(
                url,
                Either::Left(stream),
                Some(config()),
            )
            .await?;
            Ok(ws)
        };
        (handshake(sub, upgrade, label).await?, None, Some(connect))
    };
    Ok(opened.map(|(ws, upgrade)| OpenWs {
        ws,
        _connection: connection,
        connect,
        upgrade,
        started,
    }))
}

impl OpenWs {
    /// The WebSocket itself, for a peer protocol that writes as well as reads (Socket.IO's connect
    /// packet and pongs).
    pub(crate) fn socket(&mut self) -> &mut WebSocketStream<WsSocket> {
        &mut self.ws
    }

    /// Reports the connection's timings, with the time to subscribed counted until now.
    pub(crate) fn report<'s, 'a>(
        &self,
        sub: &'s mut Subscriber<'a>,
    ) -> impl Future<Output = ()> + use<'s, 'a> {
        // The timings are copied out before the future: h2's upgraded stream is not `Sync`, so no
        // reference to the socket may live across an await of a future that must be `Send`.
        let (connect, upgrade, since) = (self.connect, self.upgrade, self.started.elapsed());
        async move { sub.report_connection(connect, upgrade, Some(since)).await }
    }

    /// Reads messages until the run stops or churn is due, handing each text or binary message to
    /// `on_message`, which returns whether it was the `subscribed` message; with
    /// `report_when_subscribed`, the connection is reported then. Closes politely at the end.
    pub(crate) async fn read<M>(
        mut self,
        sub: &mut Subscriber<'_>,
        mut on_message: M,
        report_when_subscribed: bool,
    ) -> Result<End, ConnError>
    where
        M: FnMut(&mut Subscriber<'_>, &[u8]) -> Result<bool, ConnError>,
    {
        let churn = sub.churn_signal();
        tokio::pin!(churn);
        let mut reported = !report_when_subscribed;
        let end = loop {
            let frame = tokio::select! {
                _ = sub.shared.stop.cancelled() => break End::Stop,
                () = &mut churn => break End::Churn,
                frame = self.ws.next() => frame,
            };
            let subscribed = match frame {
                Some(Ok(Frame::Text(text))) => on_message(sub, text.as_bytes())?,
                Some(Ok(Frame::Binary(bytes))) => on_message(sub, &bytes)?,
                Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_))) => false,
                Some(Ok(Frame::Close(reason))) => {
                    return Err(
                        sub.protocol_error(format!("the server closed the WebSocket: {reason:?}"))
                    );
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err(sub.protocol_error("the server ended the WebSocket".into())),
            };
            if subscribed && !reported {
                reported = true;
                self.report(sub).await;
            }
        };
        // A polite close; the server may already be gone at shutdown, so its answer is not awaited for
        // long.
        let _ = tokio::time::timeout(Duration::from_millis(200), self.ws.close(None)).await;
        let _ = self.ws.flush().await;
        Ok(end)
    }
}
