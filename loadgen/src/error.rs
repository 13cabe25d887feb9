//! Why a run failed ([`RunError`]), and why the server ([`ServerError`]) or a peer ([`PeerError`]) could
//! not be used: the errors of the measuring side, shared by every layer that starts something. Imports
//! nothing of the crate.

use std::time::Duration;

/// Name of the server binary.
pub const SERVER_BIN: &str = "pushbench-server";
/// Name of the floor reference's binary, built beside the server's ([`crate::targets::floor`]).
pub const FLOOR_BIN: &str = "pushbench-floor";

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The server could not be started or reached.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// goose refused its configuration or failed.
    #[error("goose: {0}")]
    Goose(String),
    /// A peer could not be started.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// A worker process failed.
    #[error("load generator worker {0}: {1}")]
    Worker(usize, String),
    /// A signal ended the run; everything it started was stopped.
    #[error("interrupted by {0}: the processes this run started were stopped")]
    Interrupted(&'static str),
    /// A cluster could not be started.
    #[error("cluster: {0}")]
    Cluster(String),
    /// TLS could not be set up, or was asked of a server it cannot be set up for.
    #[error("TLS: {0}")]
    Tls(String),
    /// The target profile does not describe what the server sent (`clients::profiled`).
    #[error("the target profile does not fit the server: {0}")]
    ProfileMismatch(String),
    /// `[faults]` asked for something this run cannot do (a node to kill without a cluster, a link to
    /// cut on loopback).
    #[error("[faults]: {0}")]
    Faults(String),
}

/// Why the server could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No server binary was found.
    #[error(
        "cannot find {0}: looked at {1}; build it (`cargo build --release`) or pass --server-bin"
    )]
    NotFound(&'static str, String),
    /// Spawning failed.
    #[error("cannot start {path}: {error}")]
    Spawn {
        /// The binary.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The server did not print its address.
    #[error("{0} did not report its listening address: {1}")]
    NotReady(String, String),
    /// `--target` is not a usable `http://host:port` URL.
    #[error("--target {0:?}: {1}")]
    BadTarget(String, String),
    /// A fault asked to restart or kill a server the run did not spawn.
    #[error("[faults] restart or kill only servers the run spawns, not --target or a peer")]
    NotRestartable,
}

/// Why a peer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// A binary or module is missing.
    #[error("{0} is not installed (run scripts/setup-peers)")]
    NotInstalled(String),
    /// Writing its config or starting a process failed.
    #[error("cannot start {what}: {error}")]
    Start {
        /// What.
        what: String,
        /// Why.
        error: std::io::Error,
    },
    /// A target profile's server could not be prepared (a file placeholder left unfilled).
    #[error("target profile: {0}")]
    Profile(String),
    /// It did not start listening in time.
    #[error("{0} did not start listening within {1:?} (see {2})")]
    NotReady(String, Duration, String),
    /// It cannot serve the transport over the connections asked for (h2): the peer, the transport, why.
    #[error("{1} is not offered by {0} over h2: {2}")]
    NotOffered(&'static str, pushbench_common::Transport, &'static str),
}
