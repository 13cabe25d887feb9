//! Commands made of many runs: [`capacity`] (the search for the most a transport sustains), [`peers`]
//! (ours, nchan, Pushpin and Socket.IO side by side) and [`matrix`] (one scenario under several
//! networks), each with its reports.
//!
//! May import: `run` and everything below it; never `cli`.

pub mod capacity;
pub mod matrix;
pub mod peers;
