//! What a result is held against: a scenario's [`thresholds`], a baseline ([`compare`]), and the other runs
//! of the same workload ([`merge`], which makes one result of several).

pub mod compare;
pub mod merge;
pub mod thresholds;
