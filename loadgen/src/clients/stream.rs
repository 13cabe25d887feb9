//! Chunked HTTP streaming client (`GET /stream`, NDJSON), and the streaming-response loop that the SSE
//! client shares.
//!
//! One request per connection: the answer never ends, each line is one message (`subscribed` first,
//! then events, gap notices and heartbeats). Lines may be split across HTTP chunks and chunks may hold
//! several lines, so bytes go through a bounded line buffer, not chunk by chunk. On churn or error the
//! subscriber reconnects with `after=<cursor>` and the server replays what it missed.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::clients::reconnect::{FirstSession, Session, until_stopped};
use crate::clients::subscriber::{End, Subscriber};
use crate::conn::{ConnError, HttpConn, expect_success};

/// Longest message line accepted before the connection is treated as broken (bounds memory per
/// subscriber).
const MAX_LINE: usize = 1 << 20;

/// Runs an NDJSON stream subscriber until the run stops.
pub(crate) async fn run(sub: &mut Subscriber<'_>) {
    let mut lines = Vec::new();
    stream_until_stopped(
        sub,
        |sub| {
            (
                format!("/stream?{}{}", sub.topics_query, sub.after_param()),
                None,
            )
        },
        move |sub, chunk| {
            split_lines(&mut lines, chunk, |line| {
                if line.is_empty() {
                    Ok(false)
                } else {
                    sub.on_message(line)
                }
            })
        },
    )
    .await;
}

/// Feeds `chunk` into the partial-line buffer `pending` and calls `on_line` for every complete line.
/// Returns whether any call returned `true`.
pub(crate) fn split_lines(
    pending: &mut Vec<u8>,
    chunk: &[u8],
    mut on_line: impl FnMut(&[u8]) -> Result<bool, ConnError>,
) -> Result<bool, ConnError> {
    let mut any = false;
    let mut rest = chunk;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let (line, tail) = (&rest[..end], &rest[end + 1..]);
        if pending.is_empty() {
            any |= on_line(line)?;
        } else {
            pending.extend_from_slice(line);
            let whole = std::mem::take(pending);
            any |= on_line(&whole)?;
            *pending = whole;
            pending.clear();
        }
        rest = tail;
    }
    if pending.len() + rest.len() > MAX_LINE {
        return Err(ConnError::Protocol {
            path: "/stream".into(),
            reason: format!("line longer than {MAX_LINE} bytes"),
        });
    }
    pending.extend_from_slice(rest);
    Ok(any)
}

/// Holds one streaming GET per connection, reconnecting on churn and errors, until the run stops.
///
/// `request` gives the path and an optional extra header for the next connection (it sees the current
/// cursor); `decode` consumes body bytes and returns whether they completed the `subscribed` message.
pub(crate) async fn stream_until_stopped<R, D>(sub: &mut Subscriber<'_>, request: R, decode: D)
where
    R: FnMut(&Subscriber<'_>) -> (String, Option<(&'static str, String)>) + Send,
    D: FnMut(&mut Subscriber<'_>, &[u8]) -> Result<bool, ConnError> + Send,
{
    let mut stream = StreamSession {
        request: Box::new(request),
        decode: Box::new(decode),
    };
    until_stopped(sub, &mut stream, FirstSession::UnlessStopped).await;
}

/// Names the next streaming GET: its path and an optional extra header.
type Request<'c> =
    Box<dyn FnMut(&Subscriber<'_>) -> (String, Option<(&'static str, String)>) + Send + 'c>;
/// Consumes body bytes; returns whether they completed the `subscribed` message.
type Decode<'c> = Box<dyn FnMut(&mut Subscriber<'_>, &[u8]) -> Result<bool, ConnError> + Send + 'c>;

/// One streaming GET per session. (The closures are boxed: generic ones defeat the compiler's proof that
/// the subscriber's future is `Send`.)
struct StreamSession<'c> {
    request: Request<'c>,
    decode: Decode<'c>,
}

impl Session for StreamSession<'_> {
    async fn run(&mut self, sub: &mut Subscriber<'_>) -> Result<End, ConnError> {
        let (path, header) = (self.request)(sub);
        session(sub, &path, header, &mut self.decode).await
    }
}

async fn session<D>(
    sub: &mut Subscriber<'_>,
    path: &str,
    header: Option<(&'static str, String)>,
    decode: &mut D,
) -> Result<End, ConnError>
where
    D: FnMut(&mut Subscriber<'_>, &[u8]) -> Result<bool, ConnError>,
{
    let headers: Vec<(&str, &str)> = header.iter().map(|(n, v)| (*n, v.as_str())).collect();
    match open_stream(sub, path, &headers, path_name(path)).await? {
        Some(stream) => stream.read(sub, decode, true).await,
        None => Ok(End::Stop),
    }
}

/// A streaming response being read, with the timings of how it was opened.
pub(crate) struct OpenStream {
    /// Keeps the connection's driver alive while the body is read.
    _conn: HttpConn,
    body: Incoming,
    connect: Option<Duration>,
    first_byte: Duration,
    started: Instant,
}

/// Opens a connection to the subscriber's next node and sends `GET path` with `headers`; a failure is
/// recorded (failed connect, goose row `name`) and returned. `Ok(None)`: the run stopped meanwhile.
pub(crate) async fn open_stream(
    sub: &mut Subscriber<'_>,
    path: &str,
    headers: &[(&str, &str)],
    name: &str,
) -> Result<Option<OpenStream>, ConnError> {
    let started = Instant::now();
    let (mut conn, connect) = sub.open_http().await?;
    sub.rec.log.counters.requests += 1;
    let sent = Instant::now();
    let response = tokio::select! {
        _ = sub.shared.stop.cancelled() => return Ok(None),
        r = conn.get(path, headers) => r,
    };
    let first_byte = sent.elapsed();
    let response = match response {
        Ok(r) => expect_success(path, r).await,
        Err(e) => Err(e),
    };
    match response {
        Ok(r) => Ok(Some(OpenStream {
            _conn: conn,
            body: r.into_body(),
            connect,
            first_byte,
            started,
        })),
        Err(e) => {
            sub.rec.on_failed_connect(&e);
            sub.report("GET", name, first_byte, Err(&e)).await;
            Err(e)
        }
    }
}

impl OpenStream {
    /// Reports the connection's timings, with the time to subscribed counted until now.
    pub(crate) async fn report(&self, sub: &mut Subscriber<'_>) {
        sub.report_connection(self.connect, self.first_byte, Some(self.started.elapsed()))
            .await;
    }

    /// Reads the body until the run stops or churn is due, handing every data chunk to `on_data`, which
    /// returns whether it completed the `subscribed` message; with `report_when_subscribed`, the
    /// connection is reported then.
    pub(crate) async fn read<D>(
        mut self,
        sub: &mut Subscriber<'_>,
        mut on_data: D,
        report_when_subscribed: bool,
    ) -> Result<End, ConnError>
    where
        D: FnMut(&mut Subscriber<'_>, &[u8]) -> Result<bool, ConnError>,
    {
        let mut reported = !report_when_subscribed;
        let churn = sub.churn_signal();
        tokio::pin!(churn);
        loop {
            let frame = tokio::select! {
                _ = sub.shared.stop.cancelled() => return Ok(End::Stop),
                () = &mut churn => return Ok(End::Churn),
                frame = self.body.frame() => frame,
            };
            let frame = match frame {
                None => return Err(sub.protocol_error("the server ended the stream".into())),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(frame)) => frame,
            };
            let Some(data) = frame.data_ref() else {
                continue;
            };
            if on_data(sub, data)? && !reported {
                reported = true;
                self.report(sub).await;
            }
        }
    }
}

/// The endpoint part of a path, for goose's request names (`/stream?topic=..` → `/stream`).
pub(crate) fn path_name(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_survive_any_split() {
        let input = b"{\"a\":1}\n{\"b\":2}\n\n{\"c\":3}\n";
        for split in 1..input.len() {
            let mut pending = Vec::new();
            let mut seen = Vec::new();
            for chunk in input.chunks(split) {
                split_lines(&mut pending, chunk, |line| {
                    seen.push(line.to_vec());
                    Ok(false)
                })
                .unwrap();
            }
            let seen: Vec<_> = seen.into_iter().filter(|l| !l.is_empty()).collect();
            assert_eq!(
                seen,
                vec![
                    b"{\"a\":1}".to_vec(),
                    b"{\"b\":2}".to_vec(),
                    b"{\"c\":3}".to_vec()
                ],
                "split {split}"
            );
            assert!(pending.is_empty());
        }
    }
}
