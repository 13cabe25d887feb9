//! The clients: one subscriber's life ([`subscriber`]) over each transport of our server ([`poll`],
//! [`longpoll`], [`stream`], [`sse`], [`ws`]) or in a peer's dialect ([`dialect`], [`peer`]), and the
//! open-loop [`publisher`].
//!
//! May import: `measure`, `conn`, `scenario`, `machine`, `util` (and the result crate); never a target,
//! the fleet or a run.

pub mod dialect;
pub mod longpoll;
pub mod peer;
pub mod poll;
pub mod publisher;
pub mod sse;
pub mod stream;
pub mod subscriber;
pub mod ws;
