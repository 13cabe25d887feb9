//! WebSocket client (`GET /ws`, tokio-tungstenite over a counted TCP stream).
//!
//! One upgrade per connection, then one text frame per message (`subscribed` first). The read buffer is
//! kept small (4 KiB instead of tungstenite's 128 KiB) so that thousands of idle subscribers fit; pings are
//! answered by tungstenite as frames are read. On churn the client sends a close frame and resumes on a
//! new connection with `after=<cursor>`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

use crate::conn::{ConnError, Counted, connect};
use crate::subscriber::{End, Subscriber};

/// Read buffer per connection.
const READ_BUFFER: usize = 4096;

/// Runs a WebSocket subscriber until the run stops.
pub async fn run(sub: &mut Subscriber<'_>) {
    while !sub.stopped() {
        match session(sub).await {
            Ok(End::Stop) => break,
            Ok(End::Churn) => sub.churned(),
            Err(e) => {
                sub.rec.on_error(&e);
                if sub.pause_after_error().await {
                    break;
                }
            }
        }
    }
}

/// The client side of the upgrade, counted as one request: the socket and how long the upgrade took, or
/// `None` when the run stopped first. A failed upgrade is recorded (and reported as `label`) here.
pub(crate) async fn upgrade(
    sub: &mut Subscriber<'_>,
    url: String,
    stream: Counted<TcpStream>,
    label: &str,
) -> Result<Option<(WebSocketStream<Counted<TcpStream>>, Duration)>, ConnError> {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    sub.rec.log.counters.requests += 1;
    let sent = Instant::now();
    let handshake = tokio::select! {
        _ = sub.shared.stop.cancelled() => return Ok(None),
        h = tokio_tungstenite::client_async_with_config(url, stream, Some(config)) => h,
    };
    let upgrade = sent.elapsed();
    match handshake {
        Ok((ws, _response)) => Ok(Some((ws, upgrade))),
        Err(e) => {
            let e = ConnError::from(e);
            sub.rec.on_failed_connect(&e);
            sub.report("GET", label, upgrade, Err(&e)).await;
            Err(e)
        }
    }
}

async fn session(sub: &mut Subscriber<'_>) -> Result<End, ConnError> {
    let started = Instant::now();
    let node = sub.next_node();
    let (stream, connect_time) = match connect(&node, &sub.shared.wire).await {
        Ok(opened) => opened,
        Err(e) => {
            sub.rec.on_failed_connect(&e);
            return Err(e);
        }
    };
    sub.connection_opened();
    let url = format!(
        "ws://{}/ws?{}{}",
        node.host,
        sub.topics_query,
        sub.after_param()
    );
    let Some((mut ws, upgrade)) = upgrade(sub, url, stream, "/ws upgrade").await? else {
        return Ok(End::Stop);
    };
    sub.report("GET", "/ws upgrade", upgrade, Ok(Some(101)))
        .await;
    let churn = sub.churn_signal();
    tokio::pin!(churn);
    let mut reported = false;
    let end = loop {
        let frame = tokio::select! {
            _ = sub.shared.stop.cancelled() => break End::Stop,
            () = &mut churn => break End::Churn,
            frame = ws.next() => frame,
        };
        let subscribed = match frame {
            Some(Ok(Frame::Text(text))) => sub.on_message(text.as_bytes())?,
            Some(Ok(Frame::Binary(bytes))) => sub.on_message(&bytes)?,
            Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_))) => false,
            Some(Ok(Frame::Close(reason))) => {
                return Err(sub.protocol_error(format!("server closed the WebSocket: {reason:?}")));
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Err(sub.protocol_error("the server ended the WebSocket".into())),
        };
        if subscribed && !reported {
            reported = true;
            sub.report_connection(connect_time, upgrade, Some(started.elapsed()))
                .await;
        }
    };
    // A polite close; the server may already be gone at shutdown, so its answer is not awaited for long.
    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
    let _ = ws.flush().await;
    Ok(end)
}
