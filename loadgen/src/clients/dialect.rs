//! The dialects of the peers (nchan, Pushpin, Socket.IO): per transport, where to subscribe, with which headers, how
//! events are framed and how the cursor travels; and the payload that carries our sequence number through
//! them. What the clients need to talk to a peer, without knowing how the peer is started.

use pushbench_common::Transport;

/// A peer push server pushbench can start and measure.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    /// nginx + nchan.
    Nchan,
    /// Pushpin (with condure and zurl).
    Pushpin,
    /// Socket.IO 4 on Node (`clients::socketio`).
    #[value(name = "socketio")]
    #[serde(rename = "socketio")]
    SocketIo,
}

impl PeerKind {
    /// Lower-case name, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nchan => "nchan",
            Self::Pushpin => "pushpin",
            Self::SocketIo => "socketio",
        }
    }

    /// The profile of this peer.
    pub fn profile(self) -> Profile {
        match self {
            Self::Nchan => nchan_profile(),
            Self::Pushpin => pushpin_profile(),
            Self::SocketIo => socketio_profile(),
        }
    }
}

impl std::fmt::Display for PeerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a peer's events are framed on one transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`: one event per `data:` block.
    Sse,
    /// A never-ending body, one event per line (`\n`), lines split across chunks in any way.
    Lines,
    /// One WebSocket text frame per event.
    WebSocket,
    /// nchan long-poll: every waiting event in one answer, one per line; cursor in `Last-Modified` +
    /// `Etag`, sent back as `If-Modified-Since` + `If-None-Match`.
    LongPoll,
    /// nchan interval poll: at most one event per `200` answer, the body as published; `304` when nothing
    /// follows the cursor. Cursor as for [`Framing::LongPoll`], moved only by a `200`.
    IntervalPoll,
    /// Long-poll through Pushpin to our GRIP backend: every event after the cursor in one answer, one per
    /// line; the cursor (a log id of the backend) in the `Pushbench-Cursor` answer header, sent back as
    /// `&after=<id>`. An answer without events (the hold timed out) is an empty poll.
    GripLongPoll,
    /// Socket.IO over Engine.IO long-polling (`clients::socketio`).
    EngineIoPolling,
    /// Socket.IO over an Engine.IO WebSocket opened directly (`clients::socketio`).
    EngineIoWebSocket,
}

/// How to subscribe to one transport of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Path of the subscribe endpoint (the query naming the topics is added per subscriber).
    pub path: &'static str,
    /// Headers the peer needs to serve this transport (nchan answers 403 without them).
    pub headers: &'static [(&'static str, &'static str)],
    /// Event framing.
    pub framing: Framing,
}

/// What a peer does with one transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Offered and driven by this profile.
    Offered(Route),
    /// The peer has no such transport.
    NotOffered,
}

/// A peer's target profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Which peer.
    pub kind: PeerKind,
    /// Per transport, in [`Transport::ALL`] order.
    pub offers: Vec<(Transport, Offer)>,
}

impl Profile {
    /// What the peer does with `transport`.
    pub fn offer(&self, transport: Transport) -> &Offer {
        self.offers
            .iter()
            .find(|(t, _)| *t == transport)
            .map_or(&Offer::NotOffered, |(_, o)| o)
    }

    /// The route of `transport`, if offered and profiled.
    pub fn route(&self, transport: Transport) -> Option<&Route> {
        match self.offer(transport) {
            Offer::Offered(route) => Some(route),
            _ => None,
        }
    }

    /// Path and query that subscribe to `topics` on `route`: nchan multiplexes channels as
    /// `?id=a,b`; our Pushpin backend reads `?topic=a&topic=b`; Socket.IO opens a session, and the
    /// topics go in its connect packet.
    pub fn subscribe_path(&self, route: &Route, topics: &[String]) -> String {
        match self.kind {
            PeerKind::Nchan => format!("{}?id={}", route.path, topics.join(",")),
            PeerKind::Pushpin => {
                let query: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
                format!("{}?{}", route.path, query.join("&"))
            }
            PeerKind::SocketIo => socketio_handshake_path(route),
        }
    }
}

/// The event data for a peer: intended send time, sequence number, padding to `size` bytes.
pub fn peer_event_data(intended_ns: u64, seq: u64, size: usize) -> String {
    let mut data = format!("{intended_ns} {seq} ");
    let pad = size.saturating_sub(data.len());
    data.extend(std::iter::repeat_n('x', pad));
    data
}

/// `(intended_ns, seq)` from a peer event's data.
pub fn parse_peer_event(data: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(data).ok()?;
    let mut fields = text.splitn(3, ' ');
    let ns = fields.next()?.parse().ok()?;
    let seq = fields.next()?.parse().ok()?;
    Some((ns, seq))
}

/// Where Socket.IO serves both transports.
pub(crate) const SOCKETIO_PATH: &str = "/socket.io/";
/// Socket.IO's profile: long-polling and WebSocket; the other three transports it does not have.
pub fn socketio_profile() -> Profile {
    let route = |framing| {
        Offer::Offered(Route {
            path: SOCKETIO_PATH,
            headers: &[],
            framing,
        })
    };
    Profile {
        kind: PeerKind::SocketIo,
        offers: vec![
            // Its long-polling is the only HTTP transport; nothing answers a plain poll at once.
            (Transport::Poll, Offer::NotOffered),
            (Transport::LongPoll, route(Framing::EngineIoPolling)),
            // No streamed HTTP body and no EventSource transport in Engine.IO v4.
            (Transport::Stream, Offer::NotOffered),
            (Transport::Sse, Offer::NotOffered),
            (Transport::Ws, route(Framing::EngineIoWebSocket)),
        ],
    }
}

/// The URL that opens a session on `route` (the topics go in the connect packet, not the URL).
pub(crate) fn socketio_handshake_path(route: &Route) -> String {
    let transport = match route.framing {
        Framing::EngineIoWebSocket => "websocket",
        _ => "polling",
    };
    format!("{}?EIO=4&transport={transport}", route.path)
}

/// nchan's profile.
pub fn nchan_profile() -> Profile {
    let route = |path, headers, framing| {
        Offer::Offered(Route {
            path,
            headers,
            framing,
        })
    };
    Profile {
        kind: PeerKind::Nchan,
        offers: vec![
            (Transport::Poll, route("/poll", &[], Framing::IntervalPoll)),
            (Transport::LongPoll, route("/lp", &[], Framing::LongPoll)),
            (Transport::Stream, route("/stream", &[], Framing::Lines)),
            (
                Transport::Sse,
                route("/sse", &[("accept", "text/event-stream")], Framing::Sse),
            ),
            (Transport::Ws, route("/ws", &[], Framing::WebSocket)),
        ],
    }
}

/// Pushpin's profile.
pub fn pushpin_profile() -> Profile {
    let route = |path, framing| {
        Offer::Offered(Route {
            path,
            headers: &[],
            framing,
        })
    };
    Profile {
        kind: PeerKind::Pushpin,
        offers: vec![
            (Transport::Poll, Offer::NotOffered),
            (Transport::LongPoll, route("/lp", Framing::GripLongPoll)),
            (Transport::Stream, route("/stream", Framing::Lines)),
            (Transport::Sse, route("/sse", Framing::Sse)),
            (Transport::Ws, route("/ws", Framing::WebSocket)),
        ],
    }
}

/// Response header carrying a long-poll client's cursor: `<channel>=<log id>` per channel, comma-separated
/// (an answer from the log names every channel of the request; an event Pushpin pushes names its own).
pub(crate) const CURSOR_HEADER: &str = "Pushbench-Cursor";

/// A long-poll cursor: the last log id seen per channel.
pub(crate) type Cursor = std::collections::BTreeMap<String, u64>;

/// `a=1,b=7` → the cursor (malformed parts are skipped).
pub(crate) fn parse_cursor(text: &str) -> Cursor {
    text.split(',')
        .filter_map(|part| {
            let (channel, id) = part.trim().rsplit_once('=')?;
            Some((channel.to_owned(), id.parse().ok()?))
        })
        .collect()
}

/// The cursor → `a=1,b=7`.
pub(crate) fn format_cursor(cursor: &Cursor) -> String {
    let parts: Vec<String> = cursor.iter().map(|(c, id)| format!("{c}={id}")).collect();
    parts.join(",")
}
