//! The machine a run stands on: the limits it needs checked before it starts ([`limits`]) and the
//! kernel's TCP socket memory ([`sockmem`]). Imports nothing of the crate.

pub(crate) mod limits;
pub(crate) mod sockmem;
