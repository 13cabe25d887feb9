//! Integration tests: the real server on 127.0.0.1:0, driven by real HTTP, SSE and WebSocket clients.
#![allow(missing_docs)]

mod bus;
mod client;
mod coalescing;
mod corpus;
mod errors;
mod heartbeat;
mod hostile;
mod paths;
mod resume;
mod shutdown;
mod tls;
mod transports;
