//! Subscribers of a server described by a target profile ([`crate::profile`]): the transport names the
//! framing (stream: lines, sse: `text/event-stream`, ws: text frames, poll and longpoll: an answer per
//! request), the profile's [`Route`] says where to subscribe, where the cursor goes and where the payload
//! sits. Events are recorded under the payload's sequence number with its intended send time, as for the
//! peers (`clients::peer`), so the usual accounting is exact.
//!
//! A profile that is wrong must not yield a run of silent zeros: the first message that does not fit it,
//! or a 4xx answer to a subscribe request, is a [`Mismatch`] that stops every subscriber of this process
//! and fails the run with the transport, the profile field and what arrived (`Shared::mismatch`).

use std::borrow::Cow;
use std::time::Duration;

use http_body_util::BodyExt;
use pushbench_common::Transport;
use pushbench_common::wire::{Event, SseParser};
use tokio::time::Instant;

use super::dialect::parse_peer_event;
use crate::clients::reconnect::{FirstSession, Session, until_stopped};
use crate::clients::stream::{open_stream, path_name, split_lines};
use crate::clients::subscriber::{End, Subscriber};
use crate::conn::ConnError;
use crate::profile::{CursorFrom, Idle, Mismatch, Read, Route};

/// Runs a subscriber on `route` until the run stops (or a mismatch stops it).
pub(crate) async fn run(sub: &mut Subscriber<'_>, route: &Route) {
    let topics: Vec<String> = (sub.rec.log.topics.iter())
        .map(|&t| sub.shared.scenario.topic(t).to_string())
        .collect();
    let mut session = ProfiledSession {
        route,
        topics,
        cursor: vec![None; route.cursor.len()],
    };
    until_stopped(sub, &mut session, FirstSession::UnlessStopped).await;
}

/// One connection after another; the cursor outlives them, so a reconnect resumes where the last ended.
struct ProfiledSession<'r> {
    route: &'r Route,
    topics: Vec<String>,
    /// One value per cursor rule of the route; `None` until the server named one.
    cursor: Vec<Option<String>>,
}

impl Session for ProfiledSession<'_> {
    async fn run(&mut self, sub: &mut Subscriber<'_>) -> Result<End, ConnError> {
        let idle = Idle {
            keepalive: sub.shared.scenario.server.heartbeat(),
            longpoll_hold: sub.shared.scenario.longpoll_timeout,
        };
        let (path, headers) = self.route.request(&self.topics, &self.cursor, idle);
        match self.route.transport {
            Transport::Stream | Transport::Sse => {
                stream_session(sub, self.route, &path, &headers, &mut self.cursor).await
            }
            Transport::Ws => ws_session(sub, self.route, &path, &mut self.cursor).await,
            Transport::Poll | Transport::LongPoll => {
                poll_loop(sub, self.route, &self.topics, idle, &mut self.cursor).await
            }
        }
    }
}

/// Records `mismatch` as the run's failure (the first one wins), stops every subscriber of this process,
/// and returns it as this connection's error.
fn fail(sub: &Subscriber<'_>, mismatch: Mismatch) -> ConnError {
    let reason = mismatch.to_string();
    let _ = sub.shared.mismatch.set(reason.clone());
    sub.shared.stop.cancel();
    ConnError::Protocol {
        path: format!("/{}", mismatch.transport),
        reason,
    }
}

/// A 4xx answer to a subscribe request says the profile asks wrongly: a mismatch of the route's `url`
/// (or `headers`). Other errors are the connection's.
fn subscribe_error(sub: &Subscriber<'_>, route: &Route, e: ConnError) -> ConnError {
    match e {
        ConnError::Status { status, body, .. } if (400..500).contains(&status) => fail(
            sub,
            Mismatch::new(
                route.transport,
                route.field("url"),
                format!(
                    "the server answered {status} to the subscribe request (check its url and headers)"
                ),
                body.as_bytes(),
            ),
        ),
        e => e,
    }
}

/// Records one message read as the profile says: a payload as the event of its sequence number (its
/// cursor kept), a control message skipped.
fn on_read(
    sub: &mut Subscriber<'_>,
    route: &Route,
    read: Read<'_>,
    cursor: &mut [Option<String>],
) -> Result<(), ConnError> {
    let Read::Payload {
        payload,
        cursor: at,
    } = read
    else {
        return Ok(());
    };
    let Some((intended, seq)) = parse_peer_event(payload.as_bytes()) else {
        let field = if route.message.payload.is_whole() {
            "message"
        } else {
            "message.payload"
        };
        return Err(fail(
            sub,
            Mismatch::new(
                route.transport,
                field,
                "no pushbench payload (\"<intended_ns> <seq> xxx…\") where the profile says it is",
                payload.as_bytes(),
            ),
        ));
    };
    if let (Some((i, _)), Some(at)) = (route.message_cursor(), at) {
        cursor[i] = Some(at);
    }
    let event = Event {
        id: seq,
        topic: Cow::Borrowed(""),
        ts: intended,
        data: Cow::Borrowed(&payload),
    };
    sub.rec.on_event(&event, &sub.shared.meters);
    Ok(())
}

/// Reads one message's bytes and records it.
fn on_message(
    sub: &mut Subscriber<'_>,
    route: &Route,
    bytes: &[u8],
    cursor: &mut [Option<String>],
) -> Result<(), ConnError> {
    let message_cursor = route.message_cursor().map(|(_, p)| p);
    let read = route
        .message
        .read(route.transport, bytes, message_cursor)
        .map_err(|m| fail(sub, m))?;
    on_read(sub, route, read, cursor)
}

async fn stream_session(
    sub: &mut Subscriber<'_>,
    route: &Route,
    path: &str,
    headers: &[(String, String)],
    cursor: &mut [Option<String>],
) -> Result<End, ConnError> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let opened = open_stream(sub, path, &headers, path_name(path)).await;
    let Some(stream) = opened.map_err(|e| subscribe_error(sub, route, e))? else {
        return Ok(End::Stop);
    };
    // A profiled server may send nothing until the first event: the subscription counts as live once
    // the answer began.
    sub.on_subscribed(0);
    stream.report(sub).await;
    let sse_id = route
        .cursor
        .iter()
        .position(|rule| rule.from == CursorFrom::SseId);
    let mut sse = SseParser::default();
    let mut pending = Vec::new();
    stream
        .read(
            sub,
            |sub, data| {
                if route.transport == Transport::Sse {
                    let mut result = Ok(());
                    sse.feed(data, |event| {
                        if result.is_err() {
                            return;
                        }
                        if let (Some(i), Some(id)) = (sse_id, &event.id) {
                            cursor[i] = Some(id.clone());
                        }
                        result = on_message(sub, route, &event.data, cursor);
                    });
                    result?;
                } else {
                    split_lines(&mut pending, data, |line| {
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        if !line.is_empty() {
                            on_message(sub, route, line, cursor)?;
                        }
                        Ok(false)
                    })?;
                }
                Ok(false)
            },
            false,
        )
        .await
}

async fn ws_session(
    sub: &mut Subscriber<'_>,
    route: &Route,
    path: &str,
    cursor: &mut [Option<String>],
) -> Result<End, ConnError> {
    let opened = crate::clients::ws::open(sub, path, "ws upgrade").await;
    let Some(ws) = opened.map_err(|e| subscribe_error(sub, route, e))? else {
        return Ok(End::Stop);
    };
    sub.on_subscribed(0);
    ws.report(sub).await;
    ws.read(
        sub,
        |sub, message| {
            on_message(sub, route, message, cursor)?;
            Ok(false)
        },
        false,
    )
    .await
}

/// Polls or long-polls on one keep-alive connection. A long-poll asks again at once after every answer;
/// an interval poll ticks at the scenario's poll interval, and after an answer with messages asks again
/// at once when the profile says the server answers only a few per request (`again_at_once`). The
/// cursor is taken from every `200` (headers and body as the rules say) and never from an
/// `empty_status` answer, which counts as an empty poll like a `200` without payloads.
async fn poll_loop(
    sub: &mut Subscriber<'_>,
    route: &Route,
    topics: &[String],
    idle: Idle,
    cursor: &mut [Option<String>],
) -> Result<End, ConnError> {
    let poll = route
        .poll
        .as_ref()
        .expect("poll and longpoll routes have answers");
    let started = Instant::now();
    let (mut conn, connect_time) = sub.open_http().await?;
    let mut reported = false;
    let interval = route.transport == Transport::Poll;
    // An interval poll is answered at once; a long-poll is held up to the scenario's hold, below this.
    let limit = if interval {
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
            // A long-poll is live once sent.
            sub.on_subscribed(0);
        }
        sub.rec.log.counters.requests += 1;
        let (path, headers) = route.request(topics, cursor, idle);
        let name = path_name(&path).to_owned();
        let sent = Instant::now();
        let exchange = async {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let response = conn.get(&path, &headers).await?;
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
            r = tokio::time::timeout(limit, exchange) => r.unwrap_or(Err(ConnError::Timeout(limit)))?,
        };
        let took = sent.elapsed();
        if !reported {
            reported = true;
            sub.report_connection(connect_time, took, Some(started.elapsed()))
                .await;
        }
        if interval {
            // An interval poller holds nothing: it is live once answered.
            sub.on_subscribed(0);
        }
        let status = status.as_u16();
        if status == 200 {
            let answer = route.read_answer(&body).map_err(|m| fail(sub, m))?;
            for (rule, value) in route.cursor.iter().zip(cursor.iter_mut()) {
                let found = match &rule.from {
                    CursorFrom::Header(name) => head
                        .get(name.as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    CursorFrom::Body(_) => answer.cursor.clone(),
                    CursorFrom::Message(_) | CursorFrom::SseId => None,
                };
                if found.is_some() {
                    *value = found;
                }
            }
            sub.report("GET", &name, took, Ok(Some(200))).await;
            let payloads = answer
                .messages
                .iter()
                .filter(|m| matches!(m, Read::Payload { .. }))
                .count();
            for read in answer.messages {
                on_read(sub, route, read, cursor)?;
            }
            if payloads == 0 {
                sub.rec.log.counters.empty_polls += 1;
            }
            wait = payloads == 0 || !poll.again_at_once;
        } else if poll.empty_status.contains(&status) {
            sub.rec.log.counters.empty_polls += 1;
            sub.report("GET", &name, took, Ok(Some(status))).await;
            wait = true;
        } else {
            let e = ConnError::Status {
                path: path.clone(),
                status,
                body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            };
            sub.report("GET", &name, took, Err(&e)).await;
            return Err(subscribe_error(sub, route, e));
        }
    }
}
