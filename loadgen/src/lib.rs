//! pushbench's load generator: runs a declarative scenario against every push transport of a pushbench
//! server and measures what an engineer choosing a transport needs to know — delivery latency (HDR, µs,
//! open loop), completeness, wire cost at the socket, connection cost, server memory and CPU, and its own
//! cost, with a loud warning when it was itself the bottleneck.
//!
//! goose drives the subscribers (one goose scenario per transport, one user per subscriber, launch rate,
//! its request metrics); the clients of each transport, the publisher and all accounting are ours.
//!
//! # Layout
//! - [`scenario`]: scenario TOML, raw → validated.
//! - [`run`]: one run: server per transport, goose attack, publisher, accounting into a result.
//! - [`subscriber`]: the life of one subscriber, shared by the transport clients
//!   [`poll`], [`longpoll`], [`stream`], [`sse`], [`ws`].
//! - [`publisher`]: the open-loop publisher.
//! - [`conn`]: connections counted at the socket; HTTP/1 over them.
//! - [`metrics`]: recorders, histograms, completeness accounting.
//! - [`server_proc`]: spawning and sampling the server; [`deployment`]: one server or a cluster of
//!   nodes on a Redis bus (`--cluster N`).
//! - [`fleet`]: the subscribers of a run, in this process or spread over worker processes
//!   ([`worker`], `--workers N`), tallied exactly.
//! - [`peer`]: nchan and Pushpin measured with the same load (profiles, processes, side-by-side report).
//! - [`report`]: `result.json` (and its schema), `report.md`, `report.html`, the terminal table.
//! - [`metric`]: the gateable metrics (names, kind, default tolerance) that the next three share.
//! - [`thresholds`]: a scenario's pass/fail `[thresholds]`, validated and evaluated.
//! - [`compare`]: a result against a baseline, per transport and metric, with tolerances.
//! - [`merge`]: results of several runs merged exactly (`--repeat`, `pushbench merge`); [`stats`]: their
//!   median and range.
//! - [`sockmem`]: kernel memory of TCP sockets, the third share of a connection's memory.
//! - [`limits`]: open files, ports and memory a run needs, checked before it starts.
//! - [`capacity`]: `pushbench capacity`, the search for the most subscribers (or events/s) a transport
//!   sustains under a p99 limit, and its reports.
//! - [`cli`]: commands and exit codes; `main.rs` only calls [`cli::main`].

// Lets `report/fixture.rs` name this crate the same way from the unit tests and from `tests/`.
#[cfg(test)]
extern crate self as pushbench;

pub mod capacity;
pub mod cli;
pub mod compare;
pub mod conn;
pub mod deployment;
pub mod error;
pub mod fleet;
pub mod limits;
pub mod longpoll;
pub mod merge;
pub mod metric;
pub mod metrics;
pub mod peer;
pub mod poll;
pub mod publisher;
pub mod report;
pub mod run;
pub mod scenario;
pub mod server_proc;
pub mod sockmem;
pub mod sse;
pub mod stats;
pub mod stream;
pub mod subscriber;
pub mod thresholds;
pub mod util;
pub mod worker;
pub mod ws;
