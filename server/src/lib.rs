//! pushbench-server: one lossless event feed, exposed with identical semantics over the five ways of
//! pushing events to HTTP clients — interval polling, long-polling, chunked streaming, Server-Sent Events
//! and WebSocket — so that they can be measured against each other.
//!
//! # Layout
//! - [`feed`]: ids, the bounded replay log, cursors, gap detection and fan-out. Knows nothing about HTTP.
//! - `transport`: the HTTP surface, one small module per transport (`poll`, `long_poll`, `stream`, `sse`,
//!   `ws`) plus `publish`; `streaming` is the body shared by `stream` and `sse`.
//! - [`metrics`]: counters behind `/metrics` (Prometheus) and `/stats` (JSON).
//! - `server`: the accept loop and the shutdown sequence; [`run`] is the whole server, which the binary
//!   and the tests both call.
//! - `demo`: the teaching page at `/` and the synthetic publisher's controls (`/generator`).
//! - [`config`]: the command line and its validation.
//!
//! # Semantics, on every transport
//! Events go to topics; every event gets a server-wide increasing id and a publish timestamp; a
//! subscriber names one or more topics and optionally a cursor (`after=`, or `Last-Event-ID` for SSE), and
//! receives exactly the events after it on those topics, in id order, without duplicates. A cursor older
//! than the replay buffer yields an explicit gap notice first. See `common/src/wire.rs` for the wire forms.

pub mod config;
mod demo;
mod error;
pub mod feed;
mod generator;
pub mod metrics;
mod server;
mod state;
mod transport;

pub use config::{Args, Config};
pub use error::ApiError;
pub use server::{Server, run};
