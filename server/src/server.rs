//! Accepting connections and shutting down cleanly.
//!
//! Each TCP connection is served by hyper's HTTP/1 connection driver (HTTP/1.1 is what every transport
//! here is about; upgrades are enabled for WebSocket). Shutdown happens in this order:
//!
//! 1. the shutdown future completes (SIGINT/SIGTERM in the binary, anything in tests);
//! 2. the listener is dropped: no new connections;
//! 3. the shared [`CancellationToken`](tokio_util::sync::CancellationToken) is cancelled: long-polls answer,
//!    streams and SSE end their bodies, WebSockets send a close frame, and every HTTP connection is told
//!    to finish its current response and close;
//! 4. we wait for all tracked tasks (connections, WebSocket sessions, the generator), at most
//!    `--shutdown-grace-ms`; anything still open after that (a peer that stopped reading) is abandoned.

use std::future::Future;
use std::io;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::feed::{Feed, FeedError};
use crate::state::AppState;
use crate::{generator, transport};

/// Pause after an accept error such as EMFILE (out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// A server ready to serve: its feed is up (connected to Redis when shared), nothing accepted yet.
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    /// Prepares the feed; fails if the Redis backplane cannot be reached.
    pub async fn start(listener: TcpListener, config: Config) -> Result<Self, FeedError> {
        let shutdown = CancellationToken::new();
        let feed = match &config.bus {
            None => Feed::new(config.replay, config.batch),
            Some((url, key)) => {
                Feed::with_redis(url, key, config.replay, config.batch, shutdown.clone()).await?
            }
        };
        Ok(Self {
            listener,
            state: AppState::new(config, feed, shutdown),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then closes every connection.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        serve(self.listener, self.state, shutdown).await;
    }
}

/// Starts and serves: the whole server, as the tests run it.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), FeedError> {
    Server::start(listener, config).await?.serve(shutdown).await;
    Ok(())
}

async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) {
    let router = transport::router(state.clone());
    state.tasks.spawn(generator::run(
        state.clone(),
        state.config.generator.clone(),
        state.generator.subscribe(),
    ));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.config.request_timeout)
        .max_buf_size(transport::MAX_HEAD_BYTES)
        .keep_alive(true);

    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        // Pushed events are small writes that must leave now, not wait for Nagle's algorithm.
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(error = %e, "set_nodelay failed");
        }
        let (http, router, state_for_task) = (http.clone(), router.clone(), state.clone());
        let open = state.metrics.tcp_connection();
        let limit = state.config.max_open_connections;
        if state.metrics.tcp_connections_open() > limit as u64 {
            state.tasks.spawn(async move {
                let _open = open;
                let error = crate::error::ApiError::TooManyOpenConnections { limit };
                transport::refuse(&state_for_task, tcp, error).await;
            });
            continue;
        }
        state.tasks.spawn(async move {
            let _open = open;
            let state = state_for_task;
            let io = match transport::accept_direct(&state, tcp, state.config.request_timeout).await
            {
                Ok(transport::Accepted::Http(io)) => io,
                Ok(transport::Accepted::Done) => return,
                Err(e) => {
                    debug!(%peer, error = %e, "reading the request head failed");
                    return;
                }
            };
            let shutdown = state.shutdown.clone();
            // Boxed so that connections served directly do not carry room for hyper's state in their task.
            let mut connection = Box::pin(
                http.serve_connection(TokioIo::new(io), TowerToHyperService::new(router))
                    .with_upgrades(),
            );
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    info!(
        tcp_connections = state.metrics.tcp_connections_open(),
        "shutting down"
    );
    state.shutdown.cancel();
    // Streams, SSE and WebSockets learn of shutdown from their subscription: each writes what it has read
    // (cutting a `--write-interval-ms` wait short) and ends.
    state.feed.close();
    state.tasks.close();
    if tokio::time::timeout(state.config.shutdown_grace, state.tasks.wait())
        .await
        .is_err()
    {
        warn!(
            remaining = state.tasks.len(),
            "shutdown grace period over; abandoning connections still open"
        );
    }
}
