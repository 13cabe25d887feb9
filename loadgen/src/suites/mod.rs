//! Commands made of many runs: [`capacity`] (the search for the most a transport sustains) and [`peers`]
//! (ours, nchan and Pushpin side by side), each with its reports.
//!
//! May import: `run` and everything below it; never `cli`.

pub mod capacity;
pub mod peers;
