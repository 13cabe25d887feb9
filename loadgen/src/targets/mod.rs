//! The servers a run measures: ours spawned or attached ([`server_proc`]), a cluster of ours on a Redis
//! bus ([`deployment`]), and the peers nchan and Pushpin ([`peer`]), with their processes, readiness and
//! samples.
//!
//! May import: `clients` (the peers' dialects, the publisher), `conn`, `measure`, `scenario`, `error`,
//! `util`; never the fleet, a run or a suite.

pub mod deployment;
pub mod peer;
pub mod server_proc;
