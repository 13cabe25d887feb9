//! What a profile says about the messages a server sends: where pushbench's payload sits in one, which
//! messages are the server's own (control), where a poll answer keeps its messages and its next cursor.
//! Pure functions over bytes, so a wrong profile is caught at the first message that does not fit, with
//! the field to fix and a snippet of what arrived ([`Mismatch`]).

use pushbench_common::Transport;
use serde::{Deserialize, Serialize};

/// A JSON pointer (RFC 6901), `""` meaning the whole value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pointer(String);

impl Pointer {
    /// `text` if it is a JSON pointer.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.starts_with('/') {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "{text:?} is not a JSON pointer: write \"\" for the whole value or start with / (\"/data\")"
            ))
        }
    }

    /// Whether it names the whole value.
    pub fn is_whole(&self) -> bool {
        self.0.is_empty()
    }

    /// The value it points at in `value`.
    pub fn find<'v>(&self, value: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        value.pointer(&self.0)
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `[message]`: how to find the payload in one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSpec {
    /// Where the payload sits: the whole message (`""`), or a string member of a JSON message.
    pub payload: Pointer,
    /// A member only the server's own messages have (`/type`: `subscribed`, `heartbeat`): such messages
    /// carry no payload and are skipped.
    pub control: Option<Pointer>,
}

/// One message read as the profile says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read<'m> {
    /// A message carrying a payload: the payload's text, and the value at the cursor pointer when the
    /// cursor comes from messages.
    Payload {
        /// pushbench's payload as published.
        payload: std::borrow::Cow<'m, str>,
        /// The message's cursor (`cursor = message:/id`).
        cursor: Option<String>,
    },
    /// One of the server's own messages.
    Control,
}

/// The first message that does not fit the profile: which transport, which field of the profile, why,
/// and the start of what arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{transport}: what the server sent does not match the profile's `{field}`: {reason}; it sent: {snippet}"
)]
pub struct Mismatch {
    /// The transport.
    pub transport: Transport,
    /// The profile field that does not describe what arrived (`message.payload`,
    /// `transports.poll.messages`).
    pub field: String,
    /// What is wrong.
    pub reason: String,
    /// The first 120 bytes of what arrived, quoted.
    pub snippet: String,
}

impl Mismatch {
    /// A mismatch of `field` on `transport`, showing the start of `bytes`.
    pub fn new(
        transport: Transport,
        field: impl Into<String>,
        reason: impl Into<String>,
        bytes: &[u8],
    ) -> Self {
        let cut = bytes.len().min(120);
        let mut snippet = format!("{:?}", String::from_utf8_lossy(&bytes[..cut]));
        if cut < bytes.len() {
            snippet.push_str(&format!(" (first 120 of {} bytes)", bytes.len()));
        }
        Self {
            transport,
            field: field.into(),
            reason: reason.into(),
            snippet,
        }
    }
}

impl MessageSpec {
    /// Reads one message's bytes; `cursor` is the pointer of `cursor = message:...` when the cursor comes
    /// from messages.
    pub fn read<'m>(
        &self,
        transport: Transport,
        bytes: &'m [u8],
        cursor: Option<&Pointer>,
    ) -> Result<Read<'m>, Mismatch> {
        if self.payload.is_whole() && cursor.is_none() {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                Mismatch::new(transport, "message.payload", "not UTF-8 text", bytes)
            })?;
            return Ok(Read::Payload {
                payload: text.into(),
                cursor: None,
            });
        }
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            Mismatch::new(
                transport,
                "message.payload",
                format!("the profile reads messages as JSON and this is not JSON: {e}"),
                bytes,
            )
        })?;
        self.read_value(transport, &value, cursor)
            .map(|read| match read {
                Read::Payload { payload, cursor } => Read::Payload {
                    payload: payload.into_owned().into(),
                    cursor,
                },
                Read::Control => Read::Control,
            })
            .map_err(|e| Mismatch::new(transport, e.0, e.1, bytes))
    }

    /// Reads one message already parsed (an element of a JSON poll answer's messages).
    pub fn read_value<'v>(
        &self,
        _transport: Transport,
        value: &'v serde_json::Value,
        cursor: Option<&Pointer>,
    ) -> Result<Read<'v>, (&'static str, String)> {
        if self
            .control
            .as_ref()
            .is_some_and(|c| c.find(value).is_some())
        {
            return Ok(Read::Control);
        }
        let payload = match self.payload.find(value) {
            Some(serde_json::Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err((
                    "message.payload",
                    format!(
                        "{:?} holds {}, not the payload string",
                        self.payload.as_str(),
                        kind(other)
                    ),
                ));
            }
            None => {
                return Err((
                    "message.payload",
                    format!("the message has nothing at {:?}", self.payload.as_str()),
                ));
            }
        };
        let cursor = match cursor {
            None => None,
            Some(pointer) => Some(scalar(pointer.find(value)).ok_or_else(|| {
                (
                    "cursor",
                    format!(
                        "the message has no string or number at {:?}",
                        pointer.as_str()
                    ),
                )
            })?),
        };
        Ok(Read::Payload {
            payload: payload.into(),
            cursor,
        })
    }
}

/// A cursor value: a string as is, a number as written.
pub fn scalar(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// "a string", "an object"… for messages.
pub fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(payload: &str, control: Option<&str>) -> MessageSpec {
        MessageSpec {
            payload: Pointer::parse(payload).unwrap(),
            control: control.map(|c| Pointer::parse(c).unwrap()),
        }
    }

    #[test]
    fn the_payload_is_the_whole_message_or_a_member() {
        let whole = spec("", None);
        assert_eq!(
            whole.read(Transport::Sse, b"12 3 xx", None).unwrap(),
            Read::Payload {
                payload: "12 3 xx".into(),
                cursor: None
            }
        );
        let ours = spec("/data", Some("/type"));
        let id = Pointer::parse("/id").unwrap();
        assert_eq!(
            ours.read(
                Transport::Ws,
                br#"{"id":7,"topic":"t","ts":1,"data":"12 3 xx"}"#,
                Some(&id)
            )
            .unwrap(),
            Read::Payload {
                payload: "12 3 xx".into(),
                cursor: Some("7".into())
            }
        );
        assert_eq!(
            ours.read(Transport::Ws, br#"{"type":"subscribed","next":4}"#, None)
                .unwrap(),
            Read::Control
        );
    }

    #[test]
    fn a_message_that_does_not_fit_names_the_field_and_shows_what_came() {
        let ours = spec("/payload", Some("/type"));
        let e = ours
            .read(Transport::Stream, br#"{"id":7,"data":"12 3 xx"}"#, None)
            .unwrap_err();
        assert_eq!(e.field, "message.payload");
        assert_eq!(
            e.to_string(),
            r#"stream: what the server sent does not match the profile's `message.payload`: the message has nothing at "/payload"; it sent: "{\"id\":7,\"data\":\"12 3 xx\"}""#
        );
        let e = ours.read(Transport::Sse, b"12 3 xx", None).unwrap_err();
        assert!(e.reason.contains("not JSON"), "{e}");
        let long = vec![b'x'; 300];
        let e = ours.read(Transport::Sse, &long, None).unwrap_err();
        assert!(e.snippet.ends_with("(first 120 of 300 bytes)"), "{e}");
        let e = spec("/data", None)
            .read(Transport::Ws, br#"{"data":5}"#, None)
            .unwrap_err();
        assert!(e.reason.contains("holds a number"), "{e}");
    }

    #[test]
    fn pointers_are_checked() {
        assert!(Pointer::parse("data").unwrap_err().contains("start with /"));
        assert!(Pointer::parse("").unwrap().is_whole());
    }
}
