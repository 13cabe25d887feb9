//! Topic names: `[A-Za-z0-9_.:-]{1,128}`.
//!
//! Broadcast, multicast and unicast are all just topics (`all`, `room.42`, `user.1001`); the charset keeps
//! them safe in URLs, Prometheus labels and Redis keys without escaping.

use std::fmt;
use std::sync::Arc;

/// Longest topic name accepted.
pub const MAX_TOPIC_LEN: usize = 128;

/// A validated topic name. Cloning is a reference-count increment, because every stored event and every
/// subscription holds its topics.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

/// Why a string is not a topic name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The name is empty.
    #[error("topic must not be empty")]
    Empty,
    /// The name is longer than [`MAX_TOPIC_LEN`].
    #[error("topic is {0} bytes long; at most {MAX_TOPIC_LEN} are allowed")]
    TooLong(usize),
    /// The name holds a character outside `[A-Za-z0-9_.:-]`.
    #[error("topic {0:?} may only contain A-Z a-z 0-9 _ . : -")]
    BadCharacter(String),
}

impl Topic {
    /// Validates `name` as a topic.
    pub fn parse(name: &str) -> Result<Self, TopicError> {
        if name.is_empty() {
            return Err(TopicError::Empty);
        }
        if name.len() > MAX_TOPIC_LEN {
            return Err(TopicError::TooLong(name.len()));
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
        if !name.bytes().all(allowed) {
            return Err(TopicError::BadCharacter(name.to_owned()));
        }
        Ok(Self(name.into()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::str::FromStr for Topic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_charset() {
        for name in [
            "all",
            "room.42",
            "user:1001",
            "a-b_c",
            &"x".repeat(MAX_TOPIC_LEN),
        ] {
            assert_eq!(Topic::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(Topic::parse(""), Err(TopicError::Empty));
        assert_eq!(
            Topic::parse(&"x".repeat(129)),
            Err(TopicError::TooLong(129))
        );
        for name in ["a b", "a/b", "é", "a\n", "a%20"] {
            assert!(
                matches!(Topic::parse(name), Err(TopicError::BadCharacter(_))),
                "{name:?}"
            );
        }
    }
}
