//! The wire protocol, identical on every transport.
//!
//! An event is always the JSON object `{"id":17,"topic":"room.42","ts":1763870000123456789,"data":"..."}`:
//! `id` is server-wide and strictly increasing (so one cursor serves a multi-topic subscription), `ts` is
//! the Unix time in nanoseconds at which the server accepted the publish. Control messages carry a
//! `"type"` field, which events never have, so a reader tells them apart without a schema:
//!
//! | message | when |
//! |---|---|
//! | `{"type":"subscribed","next":N}` | first message of a stream, SSE or WebSocket subscription: the cursor to resume from if the connection drops before any event |
//! | `{"type":"gap","after":C,"resume":R}` | events on the subscribed topics with ids in `(C, R)` were evicted from the replay buffer before this subscriber read them; everything from `R` on follows |
//! | `{"type":"heartbeat"}` | the NDJSON stream has been idle for the heartbeat interval (SSE uses a comment, WebSocket a ping) |
//! | `{"type":"published","id":N,"ts":T}` | WebSocket answer to a publish frame |
//! | `{"type":"error","error":"..."}` | WebSocket answer to a bad frame |
//!
//! Framing per transport: `/poll` and `/longpoll` answer [`PollResponse`]; `/stream` sends one message per
//! line (`application/x-ndjson`); `/sse` sends events as `id: N` + `data: <event>` and control messages
//! as `event: <type>` + `data: <message>`; `/ws` sends one text frame per message.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The server's default heartbeat interval (`--heartbeat-ms`): here so that the load generator gives a
/// peer server the same keep-alive interval as ours without repeating the number.
pub const DEFAULT_HEARTBEAT_MS: u64 = 15_000;

/// What the server writes an idle SSE subscriber every heartbeat interval: a comment, which `EventSource`
/// ignores. Here, like [`STREAM_HEARTBEAT`], so that a peer server can be told to send the very same bytes.
pub const SSE_HEARTBEAT: &str = ": heartbeat\n\n";

/// What the server writes an idle NDJSON stream subscriber: [`Control::Heartbeat`] as a line.
pub const STREAM_HEARTBEAT: &str = "{\"type\":\"heartbeat\"}\n";

/// One event as it travels on the wire. Borrows from the buffer it was parsed from where it can, so a load
/// generator can parse thousands of them per second without allocating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event<'a> {
    /// Server-wide, strictly increasing id; also the resume cursor.
    pub id: u64,
    /// Topic the event was published to.
    #[serde(borrow)]
    pub topic: Cow<'a, str>,
    /// Unix nanoseconds at which the server accepted the publish.
    pub ts: u64,
    /// The published body.
    #[serde(borrow)]
    pub data: Cow<'a, str>,
}

/// A message that is not an event. The `type` tag is part of the wire contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Control {
    /// The subscription is live; `next` is the cursor to resume from.
    Subscribed {
        /// Cursor: the id of the last event this subscriber need not receive.
        next: u64,
    },
    /// Events in `(after, resume)` may be missing: they were evicted before this subscriber read them.
    Gap(Gap),
    /// Keep-alive on an idle NDJSON stream.
    Heartbeat,
    /// A WebSocket publish was accepted.
    Published(PublishAck),
    /// A WebSocket frame was refused.
    Error {
        /// What was wrong, for a human.
        error: String,
    },
}

/// The explicit gap notice: never a silent skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The cursor the subscriber asked to continue from.
    pub after: u64,
    /// The first id from which delivery is complete again.
    pub resume: u64,
}

/// Answer to a publish: the id and timestamp the server gave the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishAck {
    /// The event's id.
    pub id: u64,
    /// Unix nanoseconds at which the server accepted it.
    pub ts: u64,
}

/// Body of `/poll` and `/longpoll` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollResponse<'a> {
    /// Events after the cursor, in id order.
    #[serde(borrow)]
    pub events: Vec<Event<'a>>,
    /// Cursor for the next request (`after=next`).
    pub next: u64,
    /// Present when events after the cursor were evicted before they could be read.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "gap_object")]
    pub gap: Option<Gap>,
}

/// Poll answers carry the gap as the same tagged object the streams send, `{"type":"gap",...}`.
mod gap_object {
    use super::{Control, Gap};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(gap: &Option<Gap>, s: S) -> Result<S::Ok, S::Error> {
        gap.map(Control::Gap).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Gap>, D::Error> {
        match Option::<Control>::deserialize(d)? {
            None => Ok(None),
            Some(Control::Gap(gap)) => Ok(Some(gap)),
            Some(other) => Err(serde::de::Error::custom(format!(
                "expected a gap, got {other:?}"
            ))),
        }
    }
}

/// A frame sent by a WebSocket client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMessage {
    /// Publish `data` to `topic`, exactly like `POST /publish/{topic}`.
    Publish {
        /// Topic to publish to.
        topic: String,
        /// Event body.
        data: String,
        /// Publish token, for clients (browsers) that cannot set an `Authorization` header on the upgrade.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
}

/// Body of every HTTP error answer: one line, for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong with the request.
    pub error: String,
}

/// One message read from a stream, SSE `data:` field or WebSocket frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// An event of the feed.
    Event(Event<'a>),
    /// A control message.
    Control(Control),
}

impl<'a> Message<'a> {
    /// Parses one JSON message. Events always begin with `{"id":`, which avoids trying two schemas.
    pub fn parse(json: &'a [u8]) -> Result<Self, serde_json::Error> {
        if json.starts_with(br#"{"id":"#) {
            serde_json::from_slice(json).map(Message::Event)
        } else {
            serde_json::from_slice(json).map(Message::Control)
        }
    }
}

/// Appends one unmasked, final WebSocket text frame carrying `payload` (RFC 6455 §5.2): how a server
/// sends a message, byte-identical to tungstenite's encoding.
pub fn push_ws_text_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81); // FIN, text
    match payload.len() {
        len @ 0..=125 => out.push(len as u8),
        len @ 126..=65_535 => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// Appends an event as SSE sends it: `id: N` (the browser's `Last-Event-ID`), its JSON as `data`.
pub fn push_sse_event(out: &mut Vec<u8>, id: u64, json: &[u8]) {
    out.extend_from_slice(format!("id: {id}\ndata: ").as_bytes());
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

/// Incremental parser of a `text/event-stream` body: feed it bytes as they arrive, in any split, and it
/// yields the `data` of each complete event together with its `id` and `event` fields.
///
/// Only what pushbench's server and its peers send is needed, but the parser follows the HTML standard's
/// field rules (comments, `\r\n` or `\n` line ends, multi-line `data`).
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    event: String,
    id: Option<String>,
    has_data: bool,
}

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (`"message"` when absent).
    pub event: String,
    /// The `id:` field of this event, if it had one.
    pub id: Option<String>,
    /// The joined `data:` lines.
    pub data: Vec<u8>,
}

impl SseParser {
    /// Feeds `bytes` and calls `on_event` for every event they complete.
    pub fn feed(&mut self, bytes: &[u8], mut on_event: impl FnMut(SseEvent)) {
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = std::mem::take(&mut self.line);
            if line.is_empty() {
                if self.has_data {
                    let event = if self.event.is_empty() {
                        "message".to_owned()
                    } else {
                        std::mem::take(&mut self.event)
                    };
                    on_event(SseEvent {
                        event,
                        id: self.id.take(),
                        data: std::mem::take(&mut self.data),
                    });
                }
                self.event.clear();
                self.id = None;
                self.has_data = false;
            } else {
                self.field(&line);
            }
            self.line = line;
            self.line.clear();
        }
    }

    fn field(&mut self, line: &[u8]) {
        if line[0] == b':' {
            return; // comment (heartbeat)
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
            b"id" => self.id = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // retry and unknown fields do not affect the data
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_wire_form_is_exact() {
        let event = Event {
            id: 17,
            topic: "room.42".into(),
            ts: 1_763_870_000_123_456_789,
            data: "hi \"x\"".into(),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"id":17,"topic":"room.42","ts":1763870000123456789,"data":"hi \"x\""}"#
        );
        assert_eq!(
            Message::parse(json.as_bytes()).unwrap(),
            Message::Event(event)
        );
    }

    #[test]
    fn the_stream_heartbeat_is_the_heartbeat_control_line() {
        let line = format!("{}\n", serde_json::to_string(&Control::Heartbeat).unwrap());
        assert_eq!(line, STREAM_HEARTBEAT);
    }

    #[test]
    fn control_wire_forms_are_exact() {
        let cases = [
            (
                Control::Subscribed { next: 5 },
                r#"{"type":"subscribed","next":5}"#,
            ),
            (
                Control::Gap(Gap {
                    after: 3,
                    resume: 9,
                }),
                r#"{"type":"gap","after":3,"resume":9}"#,
            ),
            (Control::Heartbeat, r#"{"type":"heartbeat"}"#),
            (
                Control::Published(PublishAck { id: 1, ts: 2 }),
                r#"{"type":"published","id":1,"ts":2}"#,
            ),
            (
                Control::Error { error: "no".into() },
                r#"{"type":"error","error":"no"}"#,
            ),
        ];
        for (control, json) in cases {
            assert_eq!(serde_json::to_string(&control).unwrap(), json);
            assert_eq!(
                Message::parse(json.as_bytes()).unwrap(),
                Message::Control(control)
            );
        }
    }

    #[test]
    fn poll_response_carries_gap_as_tagged_object() {
        let body = r#"{"events":[],"next":9,"gap":{"type":"gap","after":3,"resume":9}}"#;
        let parsed: PollResponse<'_> = serde_json::from_str(body).unwrap();
        assert_eq!(
            parsed.gap,
            Some(Gap {
                after: 3,
                resume: 9
            })
        );
        assert_eq!(serde_json::to_string(&parsed).unwrap(), body);
        let no_gap: PollResponse<'_> = serde_json::from_str(r#"{"events":[],"next":1}"#).unwrap();
        assert_eq!(no_gap.gap, None);
    }

    #[test]
    fn sse_parser_handles_any_split() {
        let stream = b": hb\n\nretry: 1000\nid: 7\ndata: {\"a\":1}\n\nevent: gap\r\ndata: x\r\ndata: y\r\n\r\n";
        for split in 1..stream.len() {
            let mut parser = SseParser::default();
            let mut events = Vec::new();
            for chunk in stream.chunks(split) {
                parser.feed(chunk, |e| events.push(e));
            }
            assert_eq!(
                events,
                vec![
                    SseEvent {
                        event: "message".into(),
                        id: Some("7".into()),
                        data: b"{\"a\":1}".to_vec()
                    },
                    SseEvent {
                        event: "gap".into(),
                        id: None,
                        data: b"x\ny".to_vec()
                    },
                ],
                "split {split}"
            );
        }
    }
}
