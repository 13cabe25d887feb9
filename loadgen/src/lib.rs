//! pushbench's load generator: runs a declarative scenario against every push transport of a pushbench
//! server and measures what an engineer choosing a transport needs to know — delivery latency (HDR, µs,
//! open loop), completeness, wire cost at the socket, connection cost, server memory and CPU, and its own
//! cost, with a loud warning when it was itself the bottleneck.
//!
//! goose drives the subscribers (one goose scenario per transport, one user per subscriber, launch rate,
//! its request metrics); the clients of each transport, the publisher and all accounting are ours.
//!
//! # Layout
//! Layers whose imports run one way: a module may import the modules below it, never one above
//! (`loadgen/tests/module_cycles.rs` fails on any cycle between top-level modules).
//! ```text
//!   cli        commands, exit codes, the only runtime      imported by nothing (main.rs calls cli::main)
//!   suites     capacity, peers, matrix: many runs, reports may import run and below
//!   run        one run, phase by phase, into a result      may import fleet and below
//!   fleet      the subscribers, here or in workers; the    may import targets and below
//!              only module that names goose
//!   targets    ours spawned/attached, a cluster, peers,    may import clients and below
//!              the faults injected into them
//!   clients    subscribers per transport, dialects, one    may import measure and below
//!              reconnect loop, the one open-loop publisher
//!   measure    recorders, accounting, the lag probe        may import conn and below
//!   conn       connections counted at the socket, clear    may import machine and below
//!              or TLS; HTTP/1.1 or h2 over them
//!   scenario   scenario TOML, raw → validated              may import network's conditions, profile
//!   profile    target profiles: TOML, raw → validated;     imports nothing of the crate
//!              what a message and a poll answer hold
//!   network    emulated network: presets, namespaces,      may import util
//!              the TUN link or netem's, where each side
//!              stands
//!   machine · error · util                                 bottom: import nothing of the crate
//!   (scenario imports the result crate's thresholds, network its network result)
//! ```
//! The result side (`result.json` and its schema, the reports, thresholds, compare, merge) is the crate
//! `pushbench_report`, below all of these and needing nothing of them.
//!
//! Public are the modules `main.rs` and the tests use (`cli`, `run`, `scenario`, `profile`, `suites`,
//! `targets`, `network`, `util`); `fleet`, `clients`, `measure`, `conn`, `machine` and `error` are private, their few outside items re-exported where they are used (`run::RunError`,
//! `targets::peer::PeerKind`, …).
//!
//! - [`scenario`]: scenario TOML, raw → validated.
//! - [`profile`]: target profiles, a server described in TOML (`--target-profile`, `[target]`): per
//!   transport how to subscribe, where the cursor and the payload are, how to publish, how to start it
//!   or where it runs; raw → validated, and the pure reading of messages and poll answers that names the
//!   field a message does not fit. Its clients are `clients::profiled`, its server `targets::profiled`.
//! - [`cli`]: commands and exit codes; `main.rs` only calls [`cli::main`].
//! - [`suites`]: `pushbench capacity`, the search for the most subscribers (or events/s) a transport
//!   sustains under a p99 limit ([`suites::capacity`]), `--peers` side by side ([`suites::peers`]), and
//!   `pushbench matrix`, one scenario under several networks ([`suites::matrix`]).
//! - [`run`]: one run: server per transport, goose attack, publisher, accounting into a result.
//! - `fleet`: the subscribers of a run, in this process or spread over worker processes
//!   (`fleet::worker`, `--workers N`), tallied exactly; the only module that names goose (the clients
//!   report their timings through a request sink that the fleet implements over goose's user).
//! - [`targets`]: spawning and sampling our server, a cluster of nodes on a Redis bus (`--cluster N`),
//!   nchan, Pushpin and Socket.IO measured with the same load, the floor reference (`pushbench-floor`,
//!   the kernel's cost per delivery with next to nothing of user space), and the faults a run injects (`[faults]`:
//!   restarts, a killed node, a flapping link).
//! - `clients`: the life of one subscriber, shared by the transport clients and the peers' dialects; the
//!   one reconnect loop they all run (a per-transport session each); the one open-loop publisher, which
//!   takes the target's encoder.
//! - `measure`: recorders, histograms, completeness accounting, the scheduling-lag probe.
//! - `conn`: connections counted at the socket, cleartext or TLS; HTTP/1.1 or h2 over them (h2
//!   connections shared by groups of subscribers, WebSocket over h2 by extended CONNECT).
//! - `machine`: open files, ports and memory a run needs, checked before it starts; kernel memory of TCP
//!   sockets, the third share of a connection's memory.
//! - [`network`]: network conditions and their presets (`[network]`, `--network`), and the packet-level
//!   emulator that applies them (`--emulator`: our TUN forwarder, or the kernel's netem where it has
//!   one) between two namespaces of the run's own: the run, its servers and the
//!   publisher on one side, the subscribers (worker processes) on the other.
//! - `error`: why a run failed; [`util`]: processes, ports, temporary directories, the runtime, and
//!   the watchdog that stops a run's children when it dies.

pub mod cli;
mod clients;
mod conn;
mod error;
mod fleet;
mod machine;
mod measure;
pub mod network;
pub mod profile;
pub mod run;
pub mod scenario;
pub mod suites;
pub mod targets;
pub mod util;

// The result crate's synthetic result, for the unit tests of the capacity and peers reports.
#[cfg(test)]
#[path = "../../report/src/result/fixture.rs"]
mod fixture;
#[cfg(test)]
use fixture::test_result;
