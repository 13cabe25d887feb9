//! The servers a run measures: ours spawned or attached ([`server_proc`]), a cluster of ours on a Redis
//! bus ([`deployment`]), the peers nchan, Pushpin and Socket.IO ([`peer`]), a server a target profile
//! describes ([`profiled`]) and the floor reference ([`floor`]), with their processes, readiness and
//! samples; the certificate a run makes for the servers it spawns over TLS ([`certificate`]); and the
//! faults a run injects into them and into the emulated link while it publishes ([`faults`]).
//!
//! The seam: [`deployment::ServerSource`] names a target (which transports it drives, how a result names
//! it) and [`deployment::Deployment`] is one started for a transport: its nodes' addresses, the dialect
//! its clients speak, readiness, the open-loop publish with its encoder, its processes to sample, its
//! stats, stop. `run`, `suites::capacity` and the fleet ask it, never which kind of server it is.
//!
//! May import: `clients` (the peers' dialects, the publisher), `conn`, `measure`, `scenario`, `network`,
//! `error`, `util`; never the fleet, a run or a suite.

pub mod certificate;
pub mod deployment;
pub mod faults;
pub mod floor;
pub mod peer;
pub mod profiled;
pub mod server_proc;
