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
//! - the result side (`result.json` and its schema, the reports, thresholds, compare, merge) is the crate
//!   `pushbench_report`, which needs nothing of this one.
//! - [`sockmem`]: kernel memory of TCP sockets, the third share of a connection's memory.
//! - [`limits`]: open files, ports and memory a run needs, checked before it starts.
//! - [`capacity`]: `pushbench capacity`, the search for the most subscribers (or events/s) a transport
//!   sustains under a p99 limit, and its reports.
//! - [`error`]: why a run failed; [`util`]: processes, ports, temporary directories, the runtime.
//! - [`cli`]: commands and exit codes; `main.rs` only calls [`cli::main`].

pub mod capacity;
pub mod cli;
pub mod conn;
pub mod deployment;
pub mod error;
pub mod fleet;
pub mod limits;
pub mod longpoll;
pub mod metrics;
pub mod network;
pub mod peer;
pub mod poll;
pub mod publisher;
pub mod run;
pub mod scenario;
pub mod server_proc;
pub mod sockmem;
pub mod sse;
pub mod stream;
pub mod subscriber;
pub mod util;
pub mod worker;
pub mod ws;

// The result crate's synthetic result, for the unit tests of the capacity and peers reports.
#[cfg(test)]
#[path = "../../report/src/result/fixture.rs"]
mod fixture;
#[cfg(test)]
use fixture::test_result;
