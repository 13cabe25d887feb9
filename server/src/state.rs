//! What every handler shares: the feed, the counters, the limits and the shutdown signal.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, GeneratorSettings};
use crate::feed::Feed;
use crate::metrics::Metrics;

/// Application state, cloned into every handler (all fields are shared handles).
#[derive(Clone)]
pub(crate) struct AppState {
    /// The event feed.
    pub(crate) feed: Feed,
    /// Counters for `/metrics` and `/stats`.
    pub(crate) metrics: Arc<Metrics>,
    /// Validated configuration.
    pub(crate) config: Arc<Config>,
    /// Cancelled at shutdown: every long-lived response (long-poll, stream, SSE, WebSocket) selects on it
    /// and ends cleanly, because hyper's graceful shutdown alone would wait for them forever.
    pub(crate) shutdown: CancellationToken,
    /// Tracks tasks that outlive their HTTP request (upgraded WebSockets, the generator) so shutdown can
    /// wait for them.
    pub(crate) tasks: TaskTracker,
    /// Current settings of the synthetic publisher; `PUT /generator` sends new ones.
    pub(crate) generator: watch::Sender<GeneratorSettings>,
}

impl AppState {
    /// Fresh state for `config` around `feed`; `shutdown` is the token the feed's own tasks watch too.
    pub(crate) fn new(config: Config, feed: Feed, shutdown: CancellationToken) -> Self {
        Self {
            feed,
            metrics: Arc::new(Metrics::new(config.max_connections)),
            generator: watch::Sender::new(config.generator.initial),
            config: Arc::new(config),
            shutdown,
            tasks: TaskTracker::new(),
        }
    }

    /// State with an embedded feed, for unit tests.
    #[cfg(test)]
    pub(crate) fn embedded(config: Config) -> Self {
        let feed = Feed::new(config.replay, config.batch);
        Self::new(config, feed, CancellationToken::new())
    }
}
