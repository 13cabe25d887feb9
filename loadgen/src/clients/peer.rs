//! Subscriber clients for the peers' framings: SSE, line streams, WebSocket, nchan's long-poll and
//! interval poll; Socket.IO's two transports are `clients::socketio`, driven from the same session.
//!
//! Each event's data is `"<intended_ns> <seq> xxx…"` ([`super::dialect::peer_event_data`]): the client hands the
//! recorder an event whose id is `seq` and whose timestamp is the intended send time, so latency, loss,
//! duplicates and order are accounted exactly as for our server. Streams are parsed as streams, never chunk
//! by chunk (Pushpin splits one message across HTTP chunks under load). A subscription counts as live when
//! the peer answered the subscribe request (headers or upgrade); for nchan the run also waits until the
//! channels report every subscriber (`targets::peer::wait_subscribed`). A dropped connection reconnects, but a
//! peer cannot resume from our cursor, so what it missed counts as lost.

use std::borrow::Cow;
use std::time::Duration;

use http_body_util::BodyExt;
use pushbench_common::wire::SseParser;
use tokio::time::Instant;

use super::dialect::{Framing, Route};
use crate::clients::reconnect::{FirstSession, Session, until_stopped};
use crate::clients::stream::{open_stream, split_lines};
use crate::clients::subscriber::{End, Subscriber};
use crate::conn::ConnError;

/// Runs a subscriber against a peer's `route` until the run stops.
pub(crate) async fn run(sub: &mut Subscriber<'_>, route: &Route) {
    let topics: Vec<String> = sub
        .rec
        .log
        .topics
        .iter()
        .map(|&t| sub.shared.scenario.topic(t).to_string())
        .collect();
    let path = match &sub.shared.peer {
        Some(profile) => profile.subscribe_path(route, &topics),
        None => return,
    };
    let mut session = PeerSession {
        route,
        path,
        cursor: PollCursor::default(),
        recovery: super::socketio::Recovery::new(topics),
    };
    until_stopped(sub, &mut session, FirstSession::UnlessStopped).await;
}

/// One connection to a peer in its route's framing.
struct PeerSession<'r> {
    route: &'r Route,
    /// The subscribe path with this subscriber's topics.
    path: String,
    /// nchan's poll cursor outlives a connection: a reconnect (after a client-side timeout, an error or
    /// churn) resumes after the last message received instead of at the newest one.
    cursor: PollCursor,
    /// Socket.IO's session to recover on a reconnect (its `pid` and the last event's offset).
    recovery: super::socketio::Recovery,
}

impl Session for PeerSession<'_> {
    async fn run(&mut self, sub: &mut Subscriber<'_>) -> Result<End, ConnError> {
        let (route, path) = (self.route, self.path.as_str());
        match route.framing {
            Framing::Sse | Framing::Lines => stream_session(sub, route, path).await,
            Framing::WebSocket => ws_session(sub, path).await,
            Framing::LongPoll | Framing::IntervalPoll | Framing::GripLongPoll => {
                poll_loop(sub, route, path, &mut self.cursor).await
            }
            Framing::EngineIoPolling => {
                super::socketio::polling_session(sub, path, &mut self.recovery).await
            }
            Framing::EngineIoWebSocket => {
                super::socketio::ws_session(sub, path, &mut self.recovery).await
            }
        }
    }
}

/// Incremental decoder of a streamed body into event payloads, for the stream framings.
#[derive(Debug)]
pub(crate) enum StreamDecoder {
    /// `text/event-stream`.
    Sse(SseParser),
    /// One payload per line.
    Lines(Vec<u8>),
}

impl StreamDecoder {
    /// A decoder for `framing` (stream framings only).
    pub(crate) fn new(framing: Framing) -> Self {
        match framing {
            Framing::Sse => Self::Sse(SseParser::default()),
            _ => Self::Lines(Vec::new()),
        }
    }

    /// Feeds bytes as they arrive and calls `on_payload` for every complete event's data.
    pub(crate) fn feed(
        &mut self,
        bytes: &[u8],
        mut on_payload: impl FnMut(&[u8]) -> Result<(), ConnError>,
    ) -> Result<(), ConnError> {
        match self {
            Self::Sse(parser) => {
                let mut result = Ok(());
                parser.feed(bytes, |event| {
                    if result.is_ok() {
                        result = on_payload(&event.data);
                    }
                });
                result
            }
            Self::Lines(pending) => split_lines(pending, bytes, |line| {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if !line.is_empty() {
                    on_payload(line)?;
                }
                Ok(false)
            })
            .map(|_| ()),
        }
    }
}

async fn stream_session(
    sub: &mut Subscriber<'_>,
    route: &Route,
    path: &str,
) -> Result<End, ConnError> {
    let Some(stream) = open_stream(sub, path, route.headers, route.path).await? else {
        return Ok(End::Stop);
    };
    // A peer sends no `subscribed` message: the subscription counts as live once the answer began.
    sub.on_subscribed(0);
    stream.report(sub).await;
    let mut decoder = StreamDecoder::new(route.framing);
    stream
        .read(
            sub,
            |sub, data| {
                decoder.feed(data, |payload| sub.on_peer_payload(payload))?;
                Ok(false)
            },
            false,
        )
        .await
}

async fn ws_session(sub: &mut Subscriber<'_>, path: &str) -> Result<End, ConnError> {
    let Some(ws) = crate::clients::ws::open(sub, path, "ws upgrade").await? else {
        return Ok(End::Stop);
    };
    // A peer sends no `subscribed` message: the subscription counts as live once upgraded.
    sub.on_subscribed(0);
    ws.report(sub).await;
    ws.read(
        sub,
        |sub, payload| {
            sub.on_peer_payload(payload)?;
            Ok(false)
        },
        false,
    )
    .await
}

/// A poll cursor: nchan's `Last-Modified` and `Etag` of the last answer, sent back as
/// `If-Modified-Since` and `If-None-Match`; or our GRIP backend's `Pushbench-Cursor`, sent back as
/// `&after=<id>` (Pushpin).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct PollCursor {
    /// `Last-Modified` of the last event received.
    pub last_modified: Option<String>,
    /// `Etag` of the last event received.
    pub etag: Option<String>,
    /// Per channel, the last log id of our GRIP backend seen (`Pushbench-Cursor` of the answers, merged:
    /// an event Pushpin pushes names only its own channel).
    pub grip: Option<super::dialect::Cursor>,
}

impl PollCursor {
    /// Takes the cursor from an answer's headers (kept as is when the answer carries none).
    pub(crate) fn update(&mut self, headers: &hyper::HeaderMap) {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if let Some(lm) = get(hyper::header::LAST_MODIFIED.as_str()) {
            self.last_modified = Some(lm);
        }
        if let Some(etag) = get(hyper::header::ETAG.as_str()) {
            self.etag = Some(etag);
        }
        if let Some(text) = get(super::dialect::CURSOR_HEADER) {
            let grip = self.grip.get_or_insert_default();
            for (channel, id) in super::dialect::parse_cursor(&text) {
                let seen = grip.entry(channel).or_default();
                *seen = (*seen).max(id);
            }
        }
    }

    /// `path` with the GRIP backend's cursor added (`&after=a=1,b=7`), when there is one.
    pub(crate) fn path<'a>(&self, path: &'a str) -> Cow<'a, str> {
        match &self.grip {
            Some(grip) => Cow::Owned(format!(
                "{path}&after={}",
                super::dialect::format_cursor(grip)
            )),
            None => Cow::Borrowed(path),
        }
    }

    /// Request headers carrying the cursor.
    pub(crate) fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut h = Vec::new();
        if let Some(lm) = &self.last_modified {
            h.push(("if-modified-since", lm.as_str()));
        }
        if let Some(etag) = &self.etag {
            h.push(("if-none-match", etag.as_str()));
        }
        h
    }
}

/// nchan's long-poll and interval poll, and Pushpin's long-poll, on one keep-alive connection: the request carries the cursor of the
/// last answer that held a message (`If-Modified-Since` / `If-None-Match`). Long-poll
/// ([`Framing::LongPoll`]): each answer holds every event after the cursor, one per line, and the next
/// request goes at once. Interval poll ([`Framing::IntervalPoll`], ticking at the scenario's poll interval): an
/// answer holds at most one event, so after a `200` the client asks again at once (more may be waiting)
/// and after a `304` it waits for its next tick; the cursor moves only on a `200`. Pushpin long-poll
/// ([`Framing::GripLongPoll`]): as nchan's long-poll, with the cursor in the query (`&after=a=1,b=7`), an
/// empty `200` first (the cursor to start from) and whenever a hold timed out. Every request is counted; an answer without events is an empty
/// poll.
async fn poll_loop(
    sub: &mut Subscriber<'_>,
    route: &Route,
    path: &str,
    cursor: &mut PollCursor,
) -> Result<End, ConnError> {
    let started = Instant::now();
    let (mut conn, connect_time) = sub.open_http().await?;
    let mut reported = false;
    let interval = route.framing == Framing::IntervalPoll;
    // An interval poll is answered at once; a long-poll is held up to the peer's hold timeout (the
    // scenario's long-poll timeout, as ours: `IdleSettings`), below this limit.
    let hold = if interval {
        Duration::from_secs(10)
    } else {
        sub.shared.scenario.longpoll_timeout + Duration::from_secs(10)
    };
    let mut ticker = interval.then(|| crate::clients::poll::ticker(sub));
    let mut wait = true;
    loop {
        if let Some(ticker) = ticker.as_mut().filter(|_| wait) {
            tokio::select! {
                _ = sub.shared.stop.cancelled() => return Ok(End::Stop),
                _ = ticker.tick() => {}
            }
            if sub.churn_due() {
                return Ok(End::Churn);
            }
        }
        if !interval {
            // A long-poll is live once sent; nchan's channel count confirms it before the first publish
            // (Pushpin: the run waits a settle time).
            sub.on_subscribed(0);
        }
        sub.rec.log.counters.requests += 1;
        let sent = Instant::now();
        let headers = cursor.headers();
        let request = cursor.path(path);
        let exchange = async {
            let response = conn.get(&request, &headers).await?;
            let status = response.status();
            let head = response.headers().clone();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, ConnError>((status, head, body))
        };
        let churn = sub.churn_signal();
        let (status, head, body) = tokio::select! {
            _ = sub.shared.stop.cancelled() => {
                sub.rec.log.counters.requests_cut += 1;
                return Ok(End::Stop);
            }
            () = churn => {
                sub.rec.log.counters.requests_cut += 1;
                return Ok(End::Churn);
            }
            r = tokio::time::timeout(hold, exchange) => r.unwrap_or(Err(ConnError::Timeout(hold)))?,
        };
        let took = sent.elapsed();
        if !reported {
            reported = true;
            sub.report_connection(connect_time, took, Some(started.elapsed()))
                .await;
        }
        if interval {
            // An interval poller holds nothing at nchan: it is live once nchan answered it.
            sub.on_subscribed(0);
        }
        // Our GRIP backend's long-poll answers a hold that timed out with no events.
        let no_events = route.framing == Framing::GripLongPoll && body.is_empty();
        match status.as_u16() {
            200 if !no_events => {
                cursor.update(&head);
                sub.report("GET", route.path, took, Ok(Some(200))).await;
                if interval {
                    // One message per answer, the body as published.
                    sub.on_peer_payload(&body)?;
                } else {
                    let mut lines = StreamDecoder::new(Framing::Lines);
                    lines.feed(&body, |payload| sub.on_peer_payload(payload))?;
                    lines.feed(b"\n", |payload| sub.on_peer_payload(payload))?;
                }
                wait = false;
            }
            // Nothing after the cursor (interval poll), or the hold timed out with nothing new
            // (long-poll): ask again with the same cursor, an interval poll at its next tick.
            200 | 304 | 408 => {
                sub.rec.log.counters.empty_polls += 1;
                sub.report("GET", route.path, took, Ok(Some(status.as_u16())))
                    .await;
                if !interval {
                    cursor.update(&head);
                }
                wait = true;
            }
            other => {
                let e = ConnError::Status {
                    path: path.to_owned(),
                    status: other,
                    body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                };
                sub.report("GET", route.path, took, Err(&e)).await;
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::dialect::parse_peer_event;

    fn decode_all(framing: Framing, stream: &[u8], split: usize) -> Vec<(u64, u64)> {
        let mut decoder = StreamDecoder::new(framing);
        let mut seen = Vec::new();
        for chunk in stream.chunks(split) {
            decoder
                .feed(chunk, |p| {
                    seen.push(parse_peer_event(p).expect("a pushbench event"));
                    Ok(())
                })
                .unwrap();
        }
        seen
    }

    #[test]
    fn nchan_sse_survives_any_split() {
        // As nchan 1.3.6 sends it: a ":hi" comment first, then `id: <time>:<n>` + `data:` per message.
        let stream =
            b": hi\n\nid: 1795415376:0\ndata: 123 1 xxxx\n\nid: 1795415376:1\ndata: 124 2 xxxx\n\n";
        for split in 1..stream.len() {
            assert_eq!(
                decode_all(Framing::Sse, stream, split),
                vec![(123, 1), (124, 2)],
                "split {split}"
            );
        }
    }

    #[test]
    fn pushpin_sse_split_across_chunks() {
        // Pushpin passes the content we publish through, and may cut it anywhere under load.
        let stream = b"data: 5 1 xx\n\ndata: 6 2 xx\r\n\r\ndata: 7 3 xx\n\n";
        for split in 1..stream.len() {
            assert_eq!(
                decode_all(Framing::Sse, stream, split),
                vec![(5, 1), (6, 2), (7, 3)],
                "split {split}"
            );
        }
    }

    #[test]
    fn line_streams_survive_any_split() {
        // nchan http-raw-stream ("\n" after each message) and Pushpin's http-stream content alike.
        let stream = b"10 1 xxxx\n11 2 xxxx\n\n12 3 xxxx\r\n";
        for split in 1..stream.len() {
            assert_eq!(
                decode_all(Framing::Lines, stream, split),
                vec![(10, 1), (11, 2), (12, 3)],
                "split {split}"
            );
        }
    }

    #[test]
    fn nchan_raw_multipart_longpoll_body_holds_one_event_per_line() {
        // As nchan answered a long-poll with three waiting messages (nchan_longpoll_multipart_response raw).
        let body = b"121 1 xxxx\n122 2 xxxx\n123 3 xxxx\n";
        assert_eq!(
            decode_all(Framing::Lines, body, body.len()),
            vec![(121, 1), (122, 2), (123, 3)]
        );
        // Without the final separator the last line is completed by the client's own "\n".
        let mut lines = StreamDecoder::new(Framing::Lines);
        let mut seen = Vec::new();
        for part in [&b"7 1 x\n8 2 x"[..], b"\n"] {
            lines
                .feed(part, |p| {
                    seen.push(parse_peer_event(p).unwrap());
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(seen, vec![(7, 1), (8, 2)]);
    }

    #[test]
    fn a_foreign_line_is_an_error() {
        let mut decoder = StreamDecoder::new(Framing::Lines);
        let result = decoder.feed(b"hello\n", |p| {
            parse_peer_event(p)
                .map(|_| ())
                .ok_or(ConnError::Timeout(Duration::ZERO))
        });
        assert!(result.is_err());
    }

    #[test]
    fn grip_cursor_merges_per_channel() {
        let mut cursor = PollCursor::default();
        assert_eq!(cursor.path("/lp?topic=a&topic=b"), "/lp?topic=a&topic=b");
        let answer = |text: &str| {
            let mut head = hyper::HeaderMap::new();
            head.insert("pushbench-cursor", text.parse().unwrap());
            head
        };
        cursor.update(&answer("a=0,b=0"));
        // An event Pushpin pushed names its own channel only; an older id never moves a cursor back.
        cursor.update(&answer("b=7"));
        cursor.update(&answer("b=5,a=2"));
        assert_eq!(
            cursor.path("/lp?topic=a&topic=b"),
            "/lp?topic=a&topic=b&after=a=2,b=7"
        );
        assert!(cursor.headers().is_empty());
    }

    #[test]
    fn poll_cursor_follows_last_modified_and_etag() {
        let mut cursor = PollCursor::default();
        assert!(cursor.headers().is_empty());
        let mut head = hyper::HeaderMap::new();
        head.insert(
            hyper::header::LAST_MODIFIED,
            "Mon, 23 Nov 2026 06:29:36 GMT".parse().unwrap(),
        );
        head.insert(hyper::header::ETAG, "0".parse().unwrap());
        cursor.update(&head);
        assert_eq!(
            cursor.headers(),
            vec![
                ("if-modified-since", "Mon, 23 Nov 2026 06:29:36 GMT"),
                ("if-none-match", "0")
            ]
        );
        // A 304 without cursor headers keeps the cursor.
        cursor.update(&hyper::HeaderMap::new());
        assert_eq!(cursor.headers().len(), 2);
    }
}
