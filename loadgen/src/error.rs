//! Why a run failed: the one error of the measuring side, shared by every layer that starts something.

use crate::peer::PeerError;
use crate::server_proc::ServerError;

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
}

impl From<goose::GooseError> for RunError {
    fn from(e: goose::GooseError) -> Self {
        // goose's Display omits which option was refused; its Debug form names it.
        Self::Goose(format!("{e:?}"))
    }
}
