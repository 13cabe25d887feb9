//! Target profiles: a server pushbench does not know, described in a TOML file (`pushbench run
//! --target-profile FILE`, or a `[target]` table in a scenario), read in two stages like a scenario.
//!
//! [`RawProfile`] mirrors the file (serde, unknown fields refused); [`Profile::validate`] turns it into a
//! [`Profile`] whose every template names only placeholders its field knows, whose pointers are JSON
//! pointers and whose cursor rules fit their transport, or into a [`ProfileError`] naming the field and
//! what is wrong. A profile says, per transport it offers, how to subscribe ([`Route`]: URL template,
//! headers, where the cursor goes and comes from), how messages are framed (implied by the transport:
//! `stream` one message per line, `sse` `data:` fields, `ws` text frames, `poll`/`longpoll` an answer
//! body that is one message, one per line, or JSON with a messages array), where pushbench's payload sits
//! in a message ([`MessageSpec`]), how to publish ([`PublishSpec`]), and how to start the server or
//! where it already runs ([`ServerSpec`]).
//!
//! The payload is the peers' `"<intended_ns> <seq> xxx…"`: a server that forwards it untouched is measured
//! exactly (latency from the intended send time, completeness from the sequence number). A message that
//! does not fit the profile ends the run with a [`Mismatch`] naming the transport, the field and what
//! arrived.
//!
//! `scenarios/peers/nchan.profile.toml` (compiled in: [`Profile::nchan`]) is the worked example; README
//! "Measure your own server" explains every field. Imports nothing of the crate (only std, serde, toml,
//! hyper's header types and the common crate): `scenario`, `clients` and `targets` all read it.

mod message;
mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pushbench_common::Transport;
use serde::{Deserialize, Serialize};

pub use message::{MessageSpec, Mismatch, Pointer, Read, kind, scalar};
pub use template::{Template, UnknownPlaceholder, pairs};

/// The nchan profile, kept in `scenarios/peers/`.
pub const NCHAN: &str = include_str!("../../../scenarios/peers/nchan.profile.toml");
/// Files the compiled-in profiles name in `server.files`.
const BUILT_IN_FILES: &[(&str, &str)] = &[(
    "nchan.conf",
    include_str!("../../../scenarios/peers/nchan.conf"),
)];

/// Placeholders of `server.start`.
const START_NAMES: &[&str] = &[
    "port",
    "host",
    "dir",
    "log_dir",
    "transport",
    "keepalive_s",
    "keepalive_ms",
    "longpoll_hold_s",
    "longpoll_hold_ms",
];
/// Placeholders of a transport's `url`.
const SUBSCRIBE_NAMES: &[&str] = &[
    "topics",
    "cursor",
    "keepalive_s",
    "keepalive_ms",
    "longpoll_hold_s",
    "longpoll_hold_ms",
];
/// Placeholders of `publish.url`.
const PUBLISH_URL_NAMES: &[&str] = &["topic", "seq"];
/// Placeholders of `publish.body`.
const PUBLISH_BODY_NAMES: &[&str] = &["topic", "seq", "payload", "payload_json"];

/// A profile exactly as written; only syntax and types are checked here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    /// Names the server in results (`server = "profile NAME"`).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// How several topics go into one subscribe URL (`{topics}`).
    pub topics: RawTopics,
    /// Where the payload sits in a message.
    #[serde(default)]
    pub message: RawMessage,
    /// How to start the server, or where it runs.
    pub server: RawServer,
    /// How to publish.
    pub publish: RawPublish,
    /// Per transport offered, how to subscribe.
    pub transports: BTreeMap<Transport, RawTransport>,
}

/// `topics` as written: exactly one of the two.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopics {
    /// `{topics}` is the topics joined by this (`","`: `a,b`).
    pub join: Option<String>,
    /// `{topics}` is this parameter repeated (`"topic"`: `topic=a&topic=b`).
    pub param: Option<String>,
}

/// `[message]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMessage {
    /// JSON pointer to the payload string; `""` (the default): the whole message is the payload.
    #[serde(default)]
    pub payload: String,
    /// JSON pointer to a member only the server's own messages have; those are skipped.
    pub control: Option<String>,
}

/// `[server]` as written: `start` or `url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Command line started fresh for every transport.
    pub start: Option<Vec<String>>,
    /// A running server (`http://host:port`) to attach to instead.
    pub url: Option<String>,
    /// Files written into `{dir}` before the start: name there → file beside the profile, with
    /// `{{HOST}}`, `{{PORT}}`, `{{PREFIX}}`, `{{KEEPALIVE_S}}`, `{{LONGPOLL_HOLD_S}}` and `vars` filled.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// More `{{NAME}}` values for `files`.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Processes the started tree has once it is up (1 = just the command).
    pub processes: Option<usize>,
    /// How long it may take to listen.
    pub ready_timeout_s: Option<f64>,
    /// How the server counts live subscriptions, checked before the first publish.
    pub subscribers: Option<RawCount>,
}

/// `[server.subscribers]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCount {
    /// URL template per topic (`{topic}`).
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON pointer to the count in the answer.
    pub count: String,
}

/// `[publish]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPublish {
    /// POST, PUT or PATCH.
    #[serde(default = "default_method")]
    pub method: String,
    /// URL template (`{topic}`, `{seq}`).
    pub url: String,
    /// The body's content type.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// More request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body template (`{payload}`, `{payload_json}`, `{topic}`, `{seq}`).
    #[serde(default = "default_body")]
    pub body: String,
}

fn default_method() -> String {
    "POST".to_owned()
}
fn default_content_type() -> String {
    "text/plain".to_owned()
}
fn default_body() -> String {
    "{payload}".to_owned()
}

/// `[transports.NAME]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransport {
    /// Subscribe URL template: path and query.
    pub url: String,
    /// Request headers the server needs to serve this transport.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// poll, longpoll: `whole` (one message per answer), `lines` or `json`.
    pub body: Option<String>,
    /// `body = "json"`: JSON pointer to the messages array.
    pub messages: Option<String>,
    /// poll, longpoll: statuses that mean "nothing new" (the cursor stays).
    pub empty_status: Option<Vec<u16>>,
    /// poll: after an answer with messages, ask again at once (the server answers a few per request).
    pub again_at_once: Option<bool>,
    /// Where the cursor comes from and where it goes.
    #[serde(default)]
    pub cursor: Vec<RawCursor>,
    /// `{cursor}` before the first cursor arrived.
    pub cursor_initial: Option<String>,
}

/// One `cursor` rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCursor {
    /// `header:NAME`, `body:/pointer`, `message:/pointer` or `sse:id`.
    pub from: String,
    /// `query:NAME`, `header:NAME` or `url` (the URL's `{cursor}`).
    pub to: String,
}

/// Why a profile was refused: always names the field.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file, or a file it names, could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The TOML did not parse or had unknown or mistyped fields.
    #[error("profile {origin} is not valid TOML for a profile: {message}")]
    Syntax {
        /// Where the profile came from.
        origin: String,
        /// What toml reported, with the field and line.
        message: String,
    },
    /// A field had a value the profile cannot use.
    #[error("profile {origin}: field `{field}`: {reason}")]
    Invalid {
        /// Where the profile came from.
        origin: String,
        /// Dotted field name, e.g. `transports.poll.cursor`.
        field: String,
        /// Why.
        reason: String,
    },
}

/// How `{topics}` is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Topics {
    /// Joined by a separator.
    Join(String),
    /// A parameter repeated.
    Param(String),
}

impl Topics {
    /// `{topics}` for `topics`.
    pub fn render(&self, topics: &[String]) -> String {
        match self {
            Self::Join(separator) => topics.join(separator),
            Self::Param(name) => topics
                .iter()
                .map(|t| format!("{name}={t}"))
                .collect::<Vec<_>>()
                .join("&"),
        }
    }
}

/// Where a cursor value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CursorFrom {
    /// An answer header (poll, longpoll).
    Header(String),
    /// A JSON answer's member (poll, longpoll with `body = "json"`).
    Body(Pointer),
    /// Each message's member (JSON messages).
    Message(Pointer),
    /// The SSE `id:` field.
    SseId,
}

/// Where a cursor value goes in the next request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CursorTo {
    /// A query parameter, added once there is a value.
    Query(String),
    /// A request header, sent once there is a value.
    Header(String),
    /// The URL's `{cursor}`.
    Url,
}

/// One cursor rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorRule {
    /// Where its value comes from.
    pub from: CursorFrom,
    /// Where it goes.
    pub to: CursorTo,
}

/// How a poll or long-poll answer holds its messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// The whole body is one message.
    Whole,
    /// One message per line.
    Lines,
    /// A JSON document with the messages in an array.
    Json {
        /// Where the array is.
        messages: Pointer,
    },
}

/// What a poll or long-poll answer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollSpec {
    /// How the body holds messages.
    pub body: Body,
    /// Statuses meaning "nothing new"; the cursor stays.
    pub empty_status: Vec<u16>,
    /// Ask again at once after an answer with messages (a poll only: a long-poll always does).
    pub again_at_once: bool,
}

/// How to subscribe to one transport. Crosses to the worker processes as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The transport.
    pub transport: Transport,
    /// Path and query.
    pub url: Template,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// How `{topics}` is written.
    pub topics: Topics,
    /// Where the payload is.
    pub message: MessageSpec,
    /// The cursor rules.
    pub cursor: Vec<CursorRule>,
    /// `{cursor}` before there is one.
    pub cursor_initial: String,
    /// Poll and long-poll answers.
    pub poll: Option<PollSpec>,
}

/// What the scenario tells the subscribe URL.
#[derive(Debug, Clone, Copy)]
pub struct Idle {
    /// The keep-alive interval the server is asked for.
    pub keepalive: Duration,
    /// The long-poll hold.
    pub longpoll_hold: Duration,
}

impl Idle {
    /// `(name, value)` for `{keepalive_s}`, `{keepalive_ms}`, `{longpoll_hold_s}`, `{longpoll_hold_ms}`;
    /// seconds rounded up, at least 1 (never more keep-alives than asked).
    pub fn values(&self) -> [(&'static str, String); 4] {
        let secs = |d: Duration| d.as_millis().div_ceil(1000).max(1).to_string();
        [
            ("keepalive_s", secs(self.keepalive)),
            ("keepalive_ms", self.keepalive.as_millis().to_string()),
            ("longpoll_hold_s", secs(self.longpoll_hold)),
            (
                "longpoll_hold_ms",
                self.longpoll_hold.as_millis().to_string(),
            ),
        ]
    }
}

/// A poll or long-poll answer read as the profile says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Its messages, read.
    pub messages: Vec<Read<'static>>,
    /// The cursor the body names (`cursor from = body:...`).
    pub cursor: Option<String>,
}

impl Route {
    /// The path and the headers of the next request for `topics`, with the cursor values known so far
    /// (one per rule; `None` before the first).
    pub fn request(
        &self,
        topics: &[String],
        cursor: &[Option<String>],
        idle: Idle,
    ) -> (String, Vec<(String, String)>) {
        let topics = self.topics.render(topics);
        let idle = idle.values();
        let url_cursor = self
            .cursor
            .iter()
            .zip(cursor)
            .find(|(rule, _)| rule.to == CursorTo::Url)
            .and_then(|(_, value)| value.as_deref())
            .unwrap_or(&self.cursor_initial);
        let mut path = self.url.render(|name| match name {
            "topics" => Some(&topics),
            "cursor" => Some(url_cursor),
            _ => idle
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str()),
        });
        let mut headers = self.headers.clone();
        for (rule, value) in self.cursor.iter().zip(cursor) {
            let Some(value) = value else { continue };
            match &rule.to {
                CursorTo::Query(name) => {
                    let joint = if path.contains('?') { '&' } else { '?' };
                    path.push_str(&format!("{joint}{name}={value}"));
                }
                CursorTo::Header(name) => headers.push((name.clone(), value.clone())),
                CursorTo::Url => {}
            }
        }
        (path, headers)
    }

    /// The rule whose value comes from messages, with its index.
    pub fn message_cursor(&self) -> Option<(usize, &Pointer)> {
        self.cursor
            .iter()
            .enumerate()
            .find_map(|(i, rule)| match &rule.from {
                CursorFrom::Message(p) => Some((i, p)),
                _ => None,
            })
    }

    /// The field name of this route in the file, for mismatches.
    pub fn field(&self, name: &str) -> String {
        format!("transports.{}.{name}", self.transport)
    }

    /// Reads a poll or long-poll answer's body.
    pub fn read_answer(&self, body: &[u8]) -> Result<Answer, Mismatch> {
        let Some(poll) = &self.poll else {
            return Ok(Answer {
                messages: Vec::new(),
                cursor: None,
            });
        };
        let t = self.transport;
        let message_cursor = self.message_cursor().map(|(_, p)| p);
        let owned = |read: Read<'_>| match read {
            Read::Payload { payload, cursor } => Read::Payload {
                payload: payload.into_owned().into(),
                cursor,
            },
            Read::Control => Read::Control,
        };
        let mut messages = Vec::new();
        let mut cursor = None;
        match &poll.body {
            Body::Whole if body.is_empty() => {}
            Body::Whole => messages.push(owned(self.message.read(t, body, message_cursor)?)),
            Body::Lines => {
                for line in body.split(|&b| b == b'\n') {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if !line.is_empty() {
                        messages.push(owned(self.message.read(t, line, message_cursor)?));
                    }
                }
            }
            Body::Json { messages: pointer } => {
                let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
                    Mismatch::new(
                        t,
                        self.field("body"),
                        format!("the answer is not JSON: {e}"),
                        body,
                    )
                })?;
                let array = match pointer.find(&value) {
                    Some(serde_json::Value::Array(a)) => a,
                    other => {
                        return Err(Mismatch::new(
                            t,
                            self.field("messages"),
                            format!(
                                "{:?} holds {}, not the messages array",
                                pointer.as_str(),
                                other.map_or("nothing", kind)
                            ),
                            body,
                        ));
                    }
                };
                for element in array {
                    let read = match element {
                        serde_json::Value::String(s)
                            if self.message.payload.is_whole() && message_cursor.is_none() =>
                        {
                            Read::Payload {
                                payload: s.clone().into(),
                                cursor: None,
                            }
                        }
                        _ => self
                            .message
                            .read_value(t, element, message_cursor)
                            .map(owned)
                            .map_err(|(field, reason)| {
                                Mismatch::new(t, field, reason, element.to_string().as_bytes())
                            })?,
                    };
                    messages.push(read);
                }
                for rule in &self.cursor {
                    if let CursorFrom::Body(p) = &rule.from {
                        cursor = Some(scalar(p.find(&value)).ok_or_else(|| {
                            Mismatch::new(
                                t,
                                self.field("cursor"),
                                format!("the answer has no string or number at {:?}", p.as_str()),
                                body,
                            )
                        })?);
                    }
                }
            }
        }
        Ok(Answer { messages, cursor })
    }
}

/// How to start the server, or where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSpec {
    /// Started fresh for every transport.
    Start(StartSpec),
    /// Already running at this `http://host:port`.
    Attach(String),
}

/// A server started from a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartSpec {
    /// Program and arguments.
    pub command: Vec<Template>,
    /// `(name in {dir}, contents)` written before the start, placeholders not yet filled.
    pub files: Vec<(String, String)>,
    /// More `{{NAME}}` values for the files.
    pub vars: Vec<(String, String)>,
    /// Processes of the tree once it is up.
    pub processes: usize,
    /// How long it may take to listen.
    pub ready_timeout: Duration,
}

/// How to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishSpec {
    /// POST, PUT or PATCH.
    pub method: String,
    /// URL template.
    pub url: Template,
    /// The body's content type.
    pub content_type: String,
    /// More headers.
    pub headers: Vec<(String, String)>,
    /// Body template.
    pub body: Template,
}

/// How the server counts live subscriptions on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountSpec {
    /// URL template (`{topic}`).
    pub url: Template,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Where the count is in the JSON answer.
    pub count: Pointer,
}

/// A validated profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Start or attach.
    pub server: ServerSpec,
    /// How to publish.
    pub publish: PublishSpec,
    /// How the server counts subscriptions, if it can.
    pub subscribers: Option<CountSpec>,
    /// The transports offered, in [`Transport::ALL`] order.
    pub routes: Vec<Route>,
}

/// Where the files a profile names are read from.
#[derive(Debug, Clone, Copy)]
pub enum Files<'a> {
    /// Beside the profile file.
    Dir(&'a Path),
    /// Compiled in (the profiles in `scenarios/peers/`).
    BuiltIn,
}

impl Files<'_> {
    fn read(&self, name: &str) -> Result<String, ProfileError> {
        match self {
            Files::Dir(dir) => {
                let path = dir.join(name);
                std::fs::read_to_string(&path).map_err(|error| ProfileError::Read {
                    path: path.display().to_string(),
                    error,
                })
            }
            Files::BuiltIn => BUILT_IN_FILES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| (*text).to_owned())
                .ok_or_else(|| ProfileError::Read {
                    path: name.to_owned(),
                    error: std::io::ErrorKind::NotFound.into(),
                }),
        }
    }
}

impl Profile {
    /// Reads and validates a profile file; the files it names are read beside it.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ProfileError::Read {
            path: shown.clone(),
            error,
        })?;
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_owned);
        Self::parse(&text, &shown, Files::Dir(&dir))
    }

    /// Parses and validates profile TOML; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, files: Files<'_>) -> Result<Self, ProfileError> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| ProfileError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        Self::validate(raw, origin, files)
    }

    /// A scenario's `[target]` table.
    pub fn from_table(
        table: toml::Table,
        origin: &str,
        files: Files<'_>,
    ) -> Result<Self, ProfileError> {
        let raw = RawProfile::deserialize(table).map_err(|e| ProfileError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        Self::validate(raw, origin, files)
    }

    /// The nchan profile (`scenarios/peers/nchan.profile.toml`).
    pub fn nchan() -> Self {
        Self::parse(NCHAN, "scenarios/peers/nchan.profile.toml", Files::BuiltIn)
            .expect("the compiled-in nchan profile is valid")
    }

    /// The route of `transport`, if offered.
    pub fn route(&self, transport: Transport) -> Option<&Route> {
        self.routes.iter().find(|r| r.transport == transport)
    }

    /// Second stage: every field checked.
    pub fn validate(raw: RawProfile, origin: &str, files: Files<'_>) -> Result<Self, ProfileError> {
        let invalid = |field: &str, reason: String| ProfileError::Invalid {
            origin: origin.to_owned(),
            field: field.to_owned(),
            reason,
        };
        let template = |field: &str, text: &str, known: &[&str]| {
            Template::parse(text, known).map_err(|e| invalid(field, e.to_string()))
        };
        let pointer = |field: &str, text: &str| Pointer::parse(text).map_err(|e| invalid(field, e));
        let headers = |field: &str, map: &BTreeMap<String, String>| {
            map.iter()
                .map(|(name, value)| {
                    hyper::header::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| invalid(field, format!("{name:?} is not a header name")))?;
                    hyper::header::HeaderValue::from_str(value).map_err(|_| {
                        invalid(field, format!("{value:?} is not a value for header {name}"))
                    })?;
                    Ok((name.to_ascii_lowercase(), value.clone()))
                })
                .collect::<Result<Vec<_>, ProfileError>>()
        };

        let name = raw.name.trim().to_owned();
        let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if name.is_empty() || name.len() > 64 || !name.chars().all(name_ok) {
            return Err(invalid(
                "name",
                "must be 1–64 characters of A-Z a-z 0-9 - _ . (it names the server in results)"
                    .into(),
            ));
        }
        let topics = match (raw.topics.join, raw.topics.param) {
            (Some(separator), None) if !separator.is_empty() => Topics::Join(separator),
            (None, Some(param)) if !param.is_empty() => Topics::Param(param),
            _ => {
                return Err(invalid(
                    "topics",
                    "give exactly one of join = \",\" ({topics} = a,b) or param = \"topic\" ({topics} = topic=a&topic=b)".into(),
                ));
            }
        };
        let message = MessageSpec {
            payload: pointer("message.payload", &raw.message.payload)?,
            control: raw
                .message
                .control
                .as_deref()
                .map(|c| pointer("message.control", c))
                .transpose()?,
        };
        if message.control.is_some() && message.payload.is_whole() {
            return Err(invalid(
                "message.control",
                "control messages are told apart in JSON messages: set message.payload to the payload's pointer (\"/data\")".into(),
            ));
        }

        let server = validate_server(&raw.server, files, &invalid, &template)?;
        let subscribers = raw
            .server
            .subscribers
            .as_ref()
            .map(|c| {
                Ok::<_, ProfileError>(CountSpec {
                    url: url_template(
                        "server.subscribers.url",
                        &c.url,
                        &["topic"],
                        &invalid,
                        &template,
                    )?,
                    headers: headers("server.subscribers.headers", &c.headers)?,
                    count: pointer("server.subscribers.count", &c.count)?,
                })
            })
            .transpose()?;

        let method = raw.publish.method.to_ascii_uppercase();
        if !["POST", "PUT", "PATCH"].contains(&method.as_str()) {
            return Err(invalid(
                "publish.method",
                format!("{:?}: POST, PUT or PATCH", raw.publish.method),
            ));
        }
        let body = template("publish.body", &raw.publish.body, PUBLISH_BODY_NAMES)?;
        if !body.uses("payload") && !body.uses("payload_json") {
            return Err(invalid(
                "publish.body",
                "must carry {payload} or {payload_json}: the payload holds the sequence number and the intended send time that completeness and latency are measured by".into(),
            ));
        }
        hyper::header::HeaderValue::from_str(&raw.publish.content_type).map_err(|_| {
            invalid(
                "publish.content_type",
                format!("{:?} is not a header value", raw.publish.content_type),
            )
        })?;
        let publish = PublishSpec {
            method,
            url: url_template(
                "publish.url",
                &raw.publish.url,
                PUBLISH_URL_NAMES,
                &invalid,
                &template,
            )?,
            content_type: raw.publish.content_type.clone(),
            headers: headers("publish.headers", &raw.publish.headers)?,
            body,
        };

        if raw.transports.is_empty() {
            return Err(invalid(
                "transports",
                "offers no transport: add [transports.sse] (or poll, longpoll, stream, ws)".into(),
            ));
        }
        let mut routes = Vec::new();
        for (&transport, t) in &raw.transports {
            let field = |name: &str| format!("transports.{transport}.{name}");
            let url = url_template(&field("url"), &t.url, SUBSCRIBE_NAMES, &invalid, &template)?;
            if !url.uses("topics") {
                return Err(invalid(
                    &field("url"),
                    "must name the topics: {topics}".into(),
                ));
            }
            if transport == Transport::Ws && !t.headers.is_empty() {
                return Err(invalid(
                    &field("headers"),
                    "headers are not sent on a WebSocket upgrade".into(),
                ));
            }
            let polls = matches!(transport, Transport::Poll | Transport::LongPoll);
            let poll = if polls {
                let body = match (t.body.as_deref().unwrap_or("whole"), &t.messages) {
                    ("whole", None) => Body::Whole,
                    ("lines", None) => Body::Lines,
                    ("json", Some(m)) => Body::Json {
                        messages: pointer(&field("messages"), m)?,
                    },
                    ("json", None) => {
                        return Err(invalid(
                            &field("messages"),
                            "body = \"json\" needs the pointer to the messages array (\"/events\")"
                                .into(),
                        ));
                    }
                    ("whole" | "lines", Some(_)) => {
                        return Err(invalid(
                            &field("messages"),
                            "only with body = \"json\"".into(),
                        ));
                    }
                    (other, _) => {
                        return Err(invalid(
                            &field("body"),
                            format!("{other:?}: whole, lines or json"),
                        ));
                    }
                };
                if transport == Transport::LongPoll && t.again_at_once.is_some() {
                    return Err(invalid(
                        &field("again_at_once"),
                        "a long-poll always asks again at once".into(),
                    ));
                }
                let empty_status = t.empty_status.clone().unwrap_or_default();
                if let Some(bad) = empty_status
                    .iter()
                    .find(|s| !(100..600).contains(*s) || **s == 200)
                {
                    return Err(invalid(
                        &field("empty_status"),
                        format!(
                            "{bad}: a status other than 200 (an empty 200 counts as empty by itself)"
                        ),
                    ));
                }
                Some(PollSpec {
                    body,
                    empty_status,
                    again_at_once: t.again_at_once.unwrap_or(false),
                })
            } else {
                for (name, set) in [
                    ("body", t.body.is_some()),
                    ("messages", t.messages.is_some()),
                    ("empty_status", t.empty_status.is_some()),
                    ("again_at_once", t.again_at_once.is_some()),
                ] {
                    if set {
                        return Err(invalid(&field(name), "only for poll and longpoll".into()));
                    }
                }
                None
            };
            let mut cursor = Vec::new();
            for (i, rule) in t.cursor.iter().enumerate() {
                let at = format!("transports.{transport}.cursor[{i}]");
                let from = match rule.from.split_once(':') {
                    Some(("header", name)) if polls => {
                        hyper::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                            invalid(&at, format!("from: {name:?} is not a header name"))
                        })?;
                        CursorFrom::Header(name.to_owned())
                    }
                    Some(("body", p))
                        if matches!(
                            poll,
                            Some(PollSpec {
                                body: Body::Json { .. },
                                ..
                            })
                        ) =>
                    {
                        CursorFrom::Body(pointer(&at, p)?)
                    }
                    Some(("message", p)) if !message.payload.is_whole() => {
                        CursorFrom::Message(pointer(&at, p)?)
                    }
                    Some(("sse", "id")) if transport == Transport::Sse => CursorFrom::SseId,
                    _ => {
                        return Err(invalid(
                            &at,
                            format!(
                                "from = {:?} does not fit {transport}: {}",
                                rule.from,
                                match transport {
                                    Transport::Poll | Transport::LongPoll =>
                                        "header:NAME, body:/pointer (body = \"json\") or message:/pointer (JSON messages)",
                                    Transport::Sse => "sse:id or message:/pointer (JSON messages)",
                                    _ => "message:/pointer (JSON messages: set message.payload)",
                                }
                            ),
                        ));
                    }
                };
                let to = match rule.to.split_once(':') {
                    Some(("query", name)) if !name.is_empty() => CursorTo::Query(name.to_owned()),
                    Some(("header", name)) => {
                        hyper::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                            invalid(&at, format!("to: {name:?} is not a header name"))
                        })?;
                        CursorTo::Header(name.to_ascii_lowercase())
                    }
                    None if rule.to == "url" => CursorTo::Url,
                    _ => {
                        return Err(invalid(
                            &at,
                            format!("to = {:?}: query:NAME, header:NAME or url", rule.to),
                        ));
                    }
                };
                if to == CursorTo::Url && !url.uses("cursor") {
                    return Err(invalid(
                        &at,
                        "to = \"url\" needs {cursor} in the url".into(),
                    ));
                }
                cursor.push(CursorRule { from, to });
            }
            if url.uses("cursor") {
                if !cursor.iter().any(|r| r.to == CursorTo::Url) {
                    return Err(invalid(
                        &field("url"),
                        "{cursor} needs a cursor rule with to = \"url\"".into(),
                    ));
                }
                if t.cursor_initial.is_none() {
                    return Err(invalid(
                        &field("cursor_initial"),
                        "the url holds {cursor}: say what it is before the first cursor".into(),
                    ));
                }
            }
            routes.push(Route {
                transport,
                url,
                headers: headers(&field("headers"), &t.headers)?,
                topics: topics.clone(),
                message: message.clone(),
                cursor,
                cursor_initial: t.cursor_initial.clone().unwrap_or_default(),
                poll,
            });
        }
        Ok(Self {
            name,
            description: raw.description,
            server,
            publish,
            subscribers,
            routes,
        })
    }
}

/// A URL template: a path and query, placeholders from `known`.
fn url_template(
    field: &str,
    text: &str,
    known: &[&str],
    invalid: &impl Fn(&str, String) -> ProfileError,
    template: &impl Fn(&str, &str, &[&str]) -> Result<Template, ProfileError>,
) -> Result<Template, ProfileError> {
    if !text.starts_with('/') {
        return Err(invalid(
            field,
            format!(
                "{text:?}: a path and query starting with / (the server's address comes from [server])"
            ),
        ));
    }
    template(field, text, known)
}

fn validate_server(
    raw: &RawServer,
    files: Files<'_>,
    invalid: &impl Fn(&str, String) -> ProfileError,
    template: &impl Fn(&str, &str, &[&str]) -> Result<Template, ProfileError>,
) -> Result<ServerSpec, ProfileError> {
    match (&raw.start, &raw.url) {
        (Some(_), Some(_)) | (None, None) => Err(invalid(
            "server",
            "give exactly one of start = [command line] (started per transport) or url = \"http://host:port\" (a running server)".into(),
        )),
        (None, Some(url)) => {
            let authority = url.strip_prefix("http://").map(|a| a.trim_end_matches('/'));
            match authority {
                Some(a) if !a.is_empty() && !a.contains('/') => {}
                _ => {
                    return Err(invalid(
                        "server.url",
                        format!("{url:?}: http://host:port, without a path"),
                    ));
                }
            }
            for (name, set) in [
                ("files", !raw.files.is_empty()),
                ("vars", !raw.vars.is_empty()),
                ("processes", raw.processes.is_some()),
                ("ready_timeout_s", raw.ready_timeout_s.is_some()),
            ] {
                if set {
                    return Err(invalid(
                        &format!("server.{name}"),
                        "only with start: a running server is not started".into(),
                    ));
                }
            }
            Ok(ServerSpec::Attach(url.trim_end_matches('/').to_owned()))
        }
        (Some(start), None) => {
            if start.is_empty() || start[0].trim().is_empty() {
                return Err(invalid("server.start", "names no program".into()));
            }
            let command = start
                .iter()
                .map(|arg| template("server.start", arg, START_NAMES))
                .collect::<Result<Vec<_>, _>>()?;
            let mut contents = Vec::new();
            for (name, from) in &raw.files {
                if name.contains('/') || name.starts_with('.') || name.is_empty() {
                    return Err(invalid(
                        &format!("server.files.{name}"),
                        "a plain file name inside {dir}".into(),
                    ));
                }
                contents.push((name.clone(), files.read(from)?));
            }
            let told_port = command.iter().any(|t| t.uses("port"))
                || contents.iter().any(|(_, text)| text.contains("{{PORT}}"));
            if !told_port {
                return Err(invalid(
                    "server.start",
                    "nothing tells the server its port: use {port} in the command line or {{PORT}} in one of server.files".into(),
                ));
            }
            let processes = raw.processes.unwrap_or(1);
            if processes == 0 {
                return Err(invalid("server.processes", "at least 1".into()));
            }
            let ready = raw.ready_timeout_s.unwrap_or(10.0);
            if !ready.is_finite() || !(0.1..=600.0).contains(&ready) {
                return Err(invalid(
                    "server.ready_timeout_s",
                    format!("{ready}: seconds in [0.1, 600]"),
                ));
            }
            Ok(ServerSpec::Start(StartSpec {
                command,
                files: contents,
                vars: raw.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                processes,
                ready_timeout: Duration::from_secs_f64(ready),
            }))
        }
    }
}

#[cfg(test)]
mod tests;
