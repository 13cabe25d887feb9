//! Accepting connections and shutting down cleanly.
//!
//! Each connection speaking HTTP/1.1, cleartext or TLS, is first read by the direct path, which serves
//! subscriptions itself; everything else, and every h2 connection (TLS with ALPN `h2`), is served by
//! hyper (upgrades enabled for WebSocket, extended CONNECT for WebSocket over h2). Shutdown happens in
//! this order:
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
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::feed::{Feed, FeedError};
use crate::state::AppState;
use crate::tls::{Tls, TlsError};
use crate::{generator, transport};

/// Pause after an accept error such as EMFILE (out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// A server ready to serve: its feed is up (connected to Redis when shared), nothing accepted yet.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    tls: Option<Tls>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Redis backplane could not be reached.
    #[error("starting the feed: {0}")]
    Feed(#[from] FeedError),
    /// The TLS certificate or key could not be used.
    #[error("setting up TLS: {0}")]
    Tls(#[from] TlsError),
}

impl Server {
    /// Prepares TLS and the feed; fails if the certificate cannot be used or Redis cannot be reached.
    pub async fn start(listener: TcpListener, config: Config) -> Result<Self, StartError> {
        let tls = config.tls.as_ref().map(Tls::new).transpose()?;
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
            tls,
        })
    }

    /// The TLS settings, when it serves TLS.
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then closes every connection.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        serve(self.listener, self.state, self.tls, shutdown).await;
    }
}

/// Starts and serves: the whole server, as the tests run it.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    Server::start(listener, config).await?.serve(shutdown).await;
    Ok(())
}

async fn serve(
    listener: TcpListener,
    state: AppState,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()>,
) {
    let router = transport::router(state.clone());
    state.tasks.spawn(generator::run(
        state.clone(),
        state.config.generator.clone(),
        state.generator.subscribe(),
    ));
    let http = Arc::new(http_builder(&state.config));

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
        let (http, router, tls, state_for_task) =
            (http.clone(), router.clone(), tls.clone(), state.clone());
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
            connection(state_for_task, http, router, tls, tcp, peer).await;
        });
    }

    drop(listener);
    let shutdown_began = std::time::Instant::now();
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
    info!(
        took_ms = shutdown_began.elapsed().as_millis() as u64,
        "every connection closed"
    );
}

/// Serves one accepted connection to its end. Its future lives as long as the connection, so it holds
/// only the direct path inline: a TLS connection's handshake and hyper's state are boxed, and an idle
/// cleartext subscriber pays for neither (test: `a_connection_task_stays_small`).
async fn connection(
    state: AppState,
    http: Arc<auto::Builder<TokioExecutor>>,
    router: axum::Router,
    tls: Option<Tls>,
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) {
    let timeout = state.config.request_timeout;
    match tls {
        // Awaited here rather than in a shared helper: the direct path's future is what an idle
        // cleartext subscriber's task holds, and a helper's arguments would sit beside it.
        None => {
            let accepted = transport::accept_direct(&state, tcp, timeout).await;
            after_direct(&state, &http, router, accepted, peer).await;
        }
        Some(tls) => Box::pin(serve_tls(&state, &http, router, &tls, tcp, peer)).await,
    }
}

/// Hands a connection the direct path did not serve to the end to hyper.
async fn after_direct<S: transport::Socket>(
    state: &AppState,
    http: &auto::Builder<TokioExecutor>,
    router: axum::Router,
    accepted: io::Result<transport::Accepted<S>>,
    peer: std::net::SocketAddr,
) {
    match accepted {
        Ok(transport::Accepted::Http(io)) => {
            Box::pin(serve_http(state, http, io, router, peer)).await;
        }
        Ok(transport::Accepted::Done) => {}
        Err(e) => debug!(%peer, error = %e, "reading the request head failed"),
    }
}

/// A TLS connection: the handshake, then the direct path for HTTP/1.1 and hyper for h2, as ALPN chose.
async fn serve_tls(
    state: &AppState,
    http: &auto::Builder<TokioExecutor>,
    router: axum::Router,
    tls: &Tls,
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) {
    let timeout = state.config.request_timeout;
    if sends_plain_http(&tcp, timeout).await {
        let error = crate::error::ApiError::PlainHttpOnTlsPort;
        return transport::refuse(state, tcp, error).await;
    }
    match tokio::time::timeout(timeout, tls.acceptor.accept(tcp)).await {
        Ok(Ok(io)) if io.get_ref().1.alpn_protocol() == Some(b"h2") => {
            Box::pin(serve_http(state, http, io, router, peer)).await;
        }
        Ok(Ok(io)) => {
            let accepted = transport::accept_direct(state, io, timeout).await;
            after_direct(state, http, router, accepted, peer).await;
        }
        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => debug!(%peer, "TLS handshake timed out"),
    }
}

/// Whether a client on the TLS port begins like a cleartext HTTP request (a method's first letter, where
/// a TLS client sends its handshake record): it gets a readable 400 rather than a failed handshake.
async fn sends_plain_http(tcp: &tokio::net::TcpStream, timeout: std::time::Duration) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(timeout, tcp.peek(&mut first)).await,
        Ok(Ok(1)) if first[0].is_ascii_uppercase()
    )
}

/// hyper's connection settings: HTTP/1.1 with our head limits, h2 with the configured settings and
/// extended CONNECT (RFC 8441), so WebSocket works over h2 too.
fn http_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.request_timeout)
        .max_buf_size(transport::MAX_HEAD_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .max_concurrent_streams(config.h2.max_streams)
        .initial_stream_window_size(config.h2.window_bytes)
        .keep_alive_interval(config.h2.keepalive);
    if let Some(interval) = config.h2.keepalive {
        builder.http2().keep_alive_timeout(interval);
    }
    builder
}

/// Serves one connection with hyper until it closes; at shutdown, finishes it gracefully (HTTP/1.1: the
/// current response, then close; h2: GOAWAY, then the open streams end as their subscriptions do).
async fn serve_http<I>(
    state: &AppState,
    http: &auto::Builder<TokioExecutor>,
    io: I,
    router: axum::Router,
    peer: std::net::SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut connection = std::pin::pin!(
        http.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(router))
    );
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = state.shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's task future lives as long as the connection: an idle subscriber on the
    /// direct path must not pay for the TLS handshake or hyper (888 bytes boxed, 6,024 with the TLS
    /// branch inline, which cost an idle SSE subscriber 4.8 instead of 2.7 KB of RSS).
    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let state = AppState::embedded(Config::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let ((tcp, peer), _client) =
            tokio::join!(async { listener.accept().await.unwrap() }, client);
        let http = Arc::new(http_builder(&state.config));
        let router = transport::router(state.clone());
        let task = connection(state, http, router, None, tcp, peer);
        assert!(
            size_of_val(&task) <= 1024,
            "connection task future: {} bytes",
            size_of_val(&task)
        );
    }
}
