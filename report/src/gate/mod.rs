//! What a result is held against: a scenario's [`thresholds`], a baseline ([`compare`]), and the other runs
//! of the same workload ([`merge`], which makes one result of several); and the verdicts of the first
//! two as JUnit XML for CI systems ([`junit`]).

pub mod compare;
pub mod junit;
pub mod merge;
pub mod thresholds;
