//! The five transports under comparison, with the names used in URLs, metrics labels and results.

use std::fmt;
use std::str::FromStr;

/// One way of pushing the feed to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// Interval polling: `GET /poll` answers at once; the client asks again after an interval.
    Poll,
    /// Long-polling: `GET /longpoll` is held until an event arrives or the timeout passes.
    LongPoll,
    /// Chunked HTTP streaming of newline-delimited JSON: `GET /stream`.
    Stream,
    /// Server-Sent Events: `GET /sse`.
    Sse,
    /// WebSocket: `GET /ws`.
    Ws,
}

impl Transport {
    /// Every transport, in the order reports list them (least to most "push").
    pub const ALL: [Transport; 5] = [
        Self::Poll,
        Self::LongPoll,
        Self::Stream,
        Self::Sse,
        Self::Ws,
    ];

    /// Stable name: also the URL path (`/poll`, `/longpoll`, ...) and the `transport` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poll => "poll",
            Self::LongPoll => "longpoll",
            Self::Stream => "stream",
            Self::Sse => "sse",
            Self::Ws => "ws",
        }
    }

    /// Position in [`Transport::ALL`], for per-transport arrays of counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether one request carries any number of events (as opposed to one response per request).
    pub fn is_streaming(self) -> bool {
        matches!(self, Self::Stream | Self::Sse | Self::Ws)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transport name that is not one of `poll`, `longpoll`, `stream`, `sse`, `ws`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport {0:?}; expected one of poll, longpoll, stream, sse, ws")]
pub struct UnknownTransport(pub String);

impl FromStr for Transport {
    type Err = UnknownTransport;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTransport(s.to_owned()))
    }
}

impl serde::Serialize for Transport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Transport {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (i, t) in Transport::ALL.into_iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(t.as_str().parse::<Transport>(), Ok(t));
        }
        assert!("websocket".parse::<Transport>().is_err());
    }
}
