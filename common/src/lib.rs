//! Types that the pushbench server and load generator must agree on.
//!
//! # Layout
//! - [`wire`]: the JSON forms of events and control messages, identical on every transport, and the
//!   framing each transport wraps around them.
//! - [`topic`]: topic names and their validation.
//! - [`transport`]: the five transports and their stable names (used in URLs, metrics and results).
//! - [`procstat`]: resident memory and CPU time of a process, read from `/proc`, so that the server's
//!   `/metrics` and the load generator's samples of the server measure the same thing.

mod procstat;
mod topic;
mod transport;
pub mod wire;

pub use procstat::{ProcSample, ProcStatError};
pub use topic::{MAX_TOPIC_LEN, Topic, TopicError};
pub use transport::{Transport, UnknownTransport};
