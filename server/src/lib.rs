//! pushbench-server: one lossless event feed, exposed with identical semantics over the five ways of
//! pushing events to HTTP clients — interval polling, long-polling, chunked streaming, Server-Sent Events
//! and WebSocket — so that they can be measured against each other.
//!
//! # Layout
//! - [`feed`]: ids, the bounded replay log, cursors, gap detection and fan-out. Knows nothing about HTTP.
//! - `transport`: the HTTP surface, one small module per transport (`poll`, `long_poll`, `ndjson` for
//!   `/stream`, `sse`, `ws`) plus `publish`; `http_stream` is the body shared by `ndjson` and `sse`;
//!   `direct` serves a connection whose first request is a subscription without hyper (no per-connection
//!   HTTP buffers for an idle subscriber) and hands every other connection to hyper.
//! - `auth`: the publish token, checked by `transport` and `demo` alike.
//! - `error`: [`ApiError`], the one error type every endpoint answers with.
//! - [`metrics`]: counters behind `/metrics` (Prometheus) and `/stats` (JSON).
//! - `server`: the accept loop and the shutdown sequence; [`run`] is the whole server, which the binary
//!   and the tests both call.
//! - `demo`: the teaching page at `/` and the synthetic publisher's controls (`/generator`);
//!   `generator`: the synthetic publisher itself.
//!
//! Imports run one way: `server` → `transport` → `demo` → `auth` → `state` → `feed`, `metrics`,
//! `config`; `feed` imports nothing of HTTP; `error` is beside them all.
//! - [`config`]: the command line and its validation.
//!
//! # Semantics, on every transport
//! Events go to topics; every event gets a server-wide increasing id and a publish timestamp; a
//! subscriber names one or more topics and optionally a cursor (`after=`, or `Last-Event-ID` for SSE), and
//! receives exactly the events after it on those topics, in id order, without duplicates. A cursor older
//! than the replay buffer yields an explicit gap notice first. See `common/src/wire.rs` for the wire forms.

mod auth;
pub mod config;
mod demo;
mod error;
pub mod feed;
#[doc(hidden)]
pub mod fuzzing;
mod generator;
pub mod metrics;
mod server;
mod state;
pub mod tls;
mod transport;

pub use config::{Args, Config};
pub use error::ApiError;
pub use server::{Server, StartError, run};
