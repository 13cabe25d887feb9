//! Connections whose every byte is counted at the socket.
//!
//! Wire cost must include what the transport really puts on the wire: HTTP headers, chunk framing, SSE
//! field names, WebSocket frame headers, heartbeats. A pooled HTTP client (reqwest, goose's client)
//! hides its sockets, so every subscriber here owns its connection (on h2, its group of subscribers
//! shares one): [`Counted`] wraps the `TcpStream` and adds what each read and write syscall moved to
//! shared atomic [`WireCounters`] (one atomic add per syscall, not per event). [`HttpConn`] speaks
//! HTTP/1.1 over such a stream with hyper, or h2 when TLS negotiated it; the WebSocket client wraps the
//! same stream with tokio-tungstenite, or on h2 one stream opened by extended CONNECT ([`WsSocket`]).
//!
//! Owning the connection also lets us time the steps separately: TCP connect, the TLS handshake (when
//! the target speaks TLS: [`TlsClient`]), then first response byte (or WebSocket upgrade), then the
//! transport's `subscribed` message. Under TLS the counter sits below rustls, so the bytes counted are
//! the ciphertext on the wire, records and handshake included.
//!
//! Each socket's TCP retransmissions (`TCP_INFO`'s `tcpi_total_retrans`: the segments *this* end sent
//! again — requests, handshakes, WebSocket frames; the server's resends of events are counted on its
//! sockets, not here) are read as it closes and added to the same counters. A run reads them only once
//! every socket of the role has closed ([`WireCounters::retransmits_once_closed`]), so none is missed.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::scenario::HttpVersion;

/// Bytes moved through counted sockets, shared by every connection of one role.
#[derive(Debug, Default)]
pub struct WireCounters {
    /// Bytes read from sockets.
    pub read: AtomicU64,
    /// Bytes written to sockets.
    pub written: AtomicU64,
    /// TCP segments the closed sockets sent again (read from each as it closes).
    retransmits: AtomicU64,
    /// Sockets not yet closed: their retransmissions are not in `retransmits` yet.
    open: AtomicU64,
    /// Woken when the last open socket closes.
    closed: Notify,
}

impl WireCounters {
    /// `(read, written)` so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.read.load(Ordering::Relaxed),
            self.written.load(Ordering::Relaxed),
        )
    }

    /// TCP retransmissions of the closed sockets once every socket has closed, and how many were still
    /// open when `patience` ran out first (their retransmissions are then missing).
    pub(crate) async fn retransmits_once_closed(&self, patience: Duration) -> (u64, u64) {
        let all_closed = async {
            loop {
                // Registered before the check, so that a close between the two still wakes it.
                let woken = self.closed.notified();
                if self.open.load(Ordering::Acquire) == 0 {
                    return;
                }
                woken.await;
            }
        };
        let _ = tokio::time::timeout(patience, all_closed).await;
        (
            self.retransmits.load(Ordering::Acquire),
            self.open.load(Ordering::Acquire),
        )
    }
}

// `TCP_INFO` up to `tcpi_total_retrans`, whose offset has not changed since Linux 2.6.2. Asking for
// this prefix only, the kernel copies exactly these bytes whatever the size of its own struct (libc's
// full `tcp_info` can be longer than an older kernel's, and nix then refuses the answer). nix's macro
// holds the `getsockopt` call and its `unsafe`, as for nix's own options (its expansion names `libc`,
// `getsockopt_impl` and itself unqualified).
mod tcp_info {
    use nix::{getsockopt_impl, libc, sockopt_impl};

    sockopt_impl!(
        /// `getsockopt(IPPROTO_TCP, TCP_INFO)`, its head.
        TcpInfoHead,
        GetOnly,
        libc::IPPROTO_TCP,
        libc::TCP_INFO,
        TcpInfoPrefix
    );

    /// The head of the kernel's `struct tcp_info`.
    #[allow(unreachable_pub)] // the value of the `pub` option the macro declares must be as public
    #[repr(C)]
    #[derive(Debug, Clone, Copy)]
    pub struct TcpInfoPrefix {
        /// Eight one-byte fields (`tcpi_state` …), then 23 `u32` (`tcpi_rto` … `tcpi_rcv_space`).
        pub before: [u32; 25],
        /// `tcpi_total_retrans`: segments this socket retransmitted over its life.
        pub total_retrans: u32,
    }
}
use tcp_info::TcpInfoHead;

/// Segments `socket` retransmitted so far; 0 when the kernel will not say (not a TCP socket).
fn total_retrans(socket: &TcpStream) -> u64 {
    nix::sys::socket::getsockopt(socket, TcpInfoHead).map_or(0, |i| u64::from(i.total_retrans))
}

/// A TCP stream that counts the bytes read from and written to it, and its retransmissions when it
/// closes.
#[derive(Debug)]
pub(crate) struct Counted {
    inner: TcpStream,
    counters: Arc<WireCounters>,
}

impl Counted {
    /// Wraps `inner`; its traffic is added to `counters`.
    pub(crate) fn new(inner: TcpStream, counters: Arc<WireCounters>) -> Self {
        counters.open.fetch_add(1, Ordering::AcqRel);
        Self { inner, counters }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let c = &self.counters;
        c.retransmits
            .fetch_add(total_retrans(&self.inner), Ordering::AcqRel);
        if c.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            c.closed.notify_waiters();
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.counters.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        result
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.counters.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            self.counters.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whom a run's clients trust over TLS, in a form that crosses the pipe to the worker processes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum TlsTrust {
    /// Exactly the certificates in `pem` (the run's own, or `--ca FILE`), for the server name `name`.
    Certificates {
        /// PEM.
        pem: String,
        /// The name checked against the certificate (a host name or an IP address).
        name: String,
    },
    /// Any certificate (`--insecure`): encrypted, but the server is not authenticated.
    Anything {
        /// The name sent in SNI.
        name: String,
    },
}

impl TlsTrust {
    /// The client configuration this trust makes; ALPN offers `http` alone (`h2` or `http/1.1`), so
    /// that a server without it fails the handshake rather than being measured on another version (and
    /// [`connect`] fails an h2 connection whose server chose no protocol).
    /// With `resumption`, the sessions' tickets are kept (rustls's in-memory cache) and reconnects
    /// resume; without, every handshake is a full one.
    pub(crate) fn client(&self, http: HttpVersion, resumption: bool) -> Result<TlsClient, String> {
        let (config, name) = match self {
            TlsTrust::Certificates { pem, name } => {
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|e| format!("the server certificate: {e}"))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("the server certificate: {e}"))?;
                }
                if roots.is_empty() {
                    return Err("no certificate in the PEM to trust".into());
                }
                let config = rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                (config, name)
            }
            TlsTrust::Anything { name } => {
                let builder = rustls::ClientConfig::builder();
                let provider = builder.crypto_provider().clone();
                let config = builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                    .with_no_client_auth();
                (config, name)
            }
        };
        let mut config = config;
        if !resumption {
            config.resumption = rustls::client::Resumption::disabled();
        }
        config.alpn_protocols = vec![match http {
            HttpVersion::Http1 => b"http/1.1".to_vec(),
            HttpVersion::Http2 => b"h2".to_vec(),
        }];
        let name = rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|e| format!("server name {name:?}: {e}"))?;
        Ok(TlsClient {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
            h2: http == HttpVersion::Http2,
        })
    }
}

/// `--insecure`: accepts any server certificate, but still checks that the handshake is signed by the
/// key of the certificate presented (so the session is encrypted to whoever holds it).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What a client needs to speak TLS to a server: the configuration of its trust and the name it checks.
#[derive(Clone)]
pub(crate) struct TlsClient {
    connector: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
    /// Whether h2 was asked for: a server that ignores ALPN (Pushpin's condure) completes the handshake
    /// without choosing a protocol, and must not then be measured on HTTP/1.1.
    h2: bool,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A client connection at the socket: cleartext, or TLS over the counted TCP stream.
#[derive(Debug)]
pub(crate) enum Wire {
    /// Cleartext.
    Plain(Counted),
    /// TLS, with its handshake.
    Tls(Box<tokio_rustls::client::TlsStream<Counted>>, TlsHandshake),
}

/// A connection's TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TlsHandshake {
    /// How long it took, after the TCP connect.
    pub took: Duration,
    /// Whether it resumed an earlier session (no certificate sent or checked).
    pub resumed: bool,
}

impl Wire {
    /// The TLS handshake; `None` in cleartext.
    pub(crate) fn tls_handshake(&self) -> Option<TlsHandshake> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(_, handshake) => Some(*handshake),
        }
    }

    /// Whether TLS negotiated h2 by ALPN.
    fn is_h2(&self) -> bool {
        match self {
            Self::Plain(_) => false,
            Self::Tls(s, _) => s.get_ref().1.alpn_protocol() == Some(b"h2"),
        }
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The byte stream a WebSocket runs over: a whole connection upgraded by HTTP/1.1 ([`Wire`]), or one
/// stream of an h2 connection opened by extended CONNECT (RFC 8441).
pub(crate) type WsSocket = tokio_util::either::Either<Wire, H2Stream>;

/// One stream of an h2 connection, as bytes.
pub(crate) type H2Stream = TokioIo<hyper::upgrade::Upgraded>;

/// Why a connection or request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    /// TCP connect failed (a local limit that caused it is named: see
    /// [`crate::machine::limits::limit_reached`]).
    #[error("connect to {addr}: {error}{}", crate::machine::limits::limit_reached(error).map(|l| format!(": {l}")).unwrap_or_default())]
    Connect {
        /// The server.
        addr: SocketAddr,
        /// The I/O error.
        error: io::Error,
    },
    /// The TLS handshake failed (an untrusted certificate is named here).
    #[error("TLS handshake with {addr}: {error}")]
    Tls {
        /// The server.
        addr: SocketAddr,
        /// What rustls reported.
        error: io::Error,
    },
    /// The HTTP exchange failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The server answered with an error status.
    #[error("{path}: HTTP {status}: {body}")]
    Status {
        /// Request path.
        path: String,
        /// Status code.
        status: u16,
        /// Start of the body (the server's `{"error":..}`).
        body: String,
    },
    /// The body was not what the protocol says.
    #[error("{path}: unexpected body: {reason}")]
    Protocol {
        /// Request path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The WebSocket handshake or stream failed.
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server did not answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Where a client connection goes, and from which local address.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The server's address.
    pub addr: SocketAddr,
    /// `Host` header / authority.
    pub host: Arc<str>,
    /// Local address to bind before connecting: each loopback source address (127.0.0.2, …) has its own
    /// ~28,000 ephemeral ports. `None` lets the kernel choose.
    pub source: Option<IpAddr>,
    /// TLS over the connection; `None`: cleartext.
    pub tls: Option<TlsClient>,
}

impl Endpoint {
    /// `addr`, with its own text as `Host`, from a kernel-chosen source.
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string().into(),
            source: None,
            tls: None,
        }
    }

    /// The same endpoint over TLS when `tls` is given.
    pub(crate) fn with_tls(self, tls: Option<&TlsClient>) -> Self {
        Self {
            tls: tls.cloned(),
            ..self
        }
    }
}

/// Opens a counted TCP connection, with TLS over it when the endpoint says so; returns it with the time
/// the TCP connect took (the handshake's is in [`Wire::tls_handshake`]).
pub(crate) async fn connect(
    to: &Endpoint,
    counters: &Arc<WireCounters>,
) -> Result<(Wire, Duration), ConnError> {
    let addr = to.addr;
    let failed = |error| ConnError::Connect { addr, error };
    let started = Instant::now();
    let tcp = match to.source {
        None => TcpStream::connect(addr).await.map_err(failed)?,
        Some(source) => {
            let socket = if source.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(failed)?;
            // Let connect() choose the port for the whole 4-tuple, not bind() for the address alone: a
            // port then serves every destination, and loopback may reuse one still in TIME_WAIT from an
            // earlier run (net.ipv4.tcp_tw_reuse), where bind() would search past all of them.
            nix::sys::socket::setsockopt(
                &socket,
                nix::sys::socket::sockopt::IpBindAddressNoPort,
                &true,
            )
            .map_err(|e| failed(e.into()))?;
            socket.bind(SocketAddr::new(source, 0)).map_err(failed)?;
            socket.connect(addr).await.map_err(failed)?
        }
    };
    let took = started.elapsed();
    tcp.set_nodelay(true).map_err(failed)?;
    let counted = Counted::new(tcp, counters.clone());
    let Some(tls) = &to.tls else {
        return Ok((Wire::Plain(counted), took));
    };
    let handshake = Instant::now();
    let stream = tls
        .connector
        .connect(tls.name.clone(), counted)
        .await
        .map_err(|error| ConnError::Tls { addr, error })?;
    let handshake = TlsHandshake {
        took: handshake.elapsed(),
        resumed: stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
    };
    if tls.h2 && stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err(ConnError::Tls {
            addr,
            error: io::Error::other(
                "the server did not choose h2 by ALPN (it speaks HTTP/1.1 only?)",
            ),
        });
    }
    Ok((Wire::Tls(Box::new(stream), handshake), took))
}

/// One HTTP connection: HTTP/1.1 keep-alive, owned by one subscriber or publisher worker, or h2, whose
/// handle clones share one connection ([`HttpConn::share`]) for streams multiplexed on it.
#[derive(Debug)]
pub(crate) struct HttpConn {
    send: Sender,
    /// hyper's connection driver; aborted when the last handle is dropped (churn, shutdown).
    driver: Arc<Driver>,
    /// `Host` header value (h1) or `:authority` (h2).
    host: Arc<str>,
    /// The TLS handshake; `None` in cleartext.
    tls_handshake: Option<TlsHandshake>,
}

#[derive(Debug)]
enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

/// Aborts hyper's connection task when dropped.
#[derive(Debug)]
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl HttpConn {
    /// Connects and performs the HTTP handshake: h2 when TLS negotiated it, else HTTP/1.1 (whose
    /// handshake is trivial). Returns the TCP connect time too.
    pub(crate) async fn open(
        to: &Endpoint,
        counters: &Arc<WireCounters>,
    ) -> Result<(Self, Duration), ConnError> {
        let (stream, connect_time) = connect(to, counters).await?;
        let tls_handshake = stream.tls_handshake();
        let host = to.host.clone();
        // Errors surface on the requests and bodies; the drivers' own results add nothing.
        let (send, driver) = if stream.is_h2() {
            let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
            (
                Sender::Http2(send),
                tokio::spawn(async move {
                    let _ = conn.await;
                }),
            )
        } else {
            // hyper's read buffer starts at 8 KiB and grows only for large responses: bounded per
            // subscriber.
            let (send, conn) = http1::Builder::new()
                .handshake(TokioIo::new(stream))
                .await?;
            (
                Sender::Http1(send),
                // Upgrades (a WebSocket over HTTP/1.1) go through tungstenite on a bare connection.
                tokio::spawn(async move {
                    let _ = conn.await;
                }),
            )
        };
        Ok((
            Self {
                send,
                driver: Arc::new(Driver(driver)),
                host,
                tls_handshake,
            },
            connect_time,
        ))
    }

    /// Another handle on the same h2 connection, while it is open; `None` for HTTP/1.1 (one
    /// exchange at a time) or a closed connection.
    pub(crate) fn share(&self) -> Option<Self> {
        match &self.send {
            Sender::Http2(send) if !send.is_closed() => Some(Self {
                send: Sender::Http2(send.clone()),
                driver: self.driver.clone(),
                host: self.host.clone(),
                tls_handshake: self.tls_handshake,
            }),
            _ => None,
        }
    }

    /// Its TLS handshake; `None` in cleartext.
    pub(crate) fn tls_handshake(&self) -> Option<TlsHandshake> {
        self.tls_handshake
    }

    /// Whether this is an h2 connection.
    fn is_h2(&self) -> bool {
        matches!(self.send, Sender::Http2(_))
    }

    fn request(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> hyper::http::request::Builder {
        let builder = match self.send {
            Sender::Http1(_) => Request::builder()
                .uri(path_and_query)
                .header(hyper::header::HOST, &*self.host),
            // h2 carries the scheme and authority as pseudo-headers, taken from an absolute URI.
            Sender::Http2(_) => {
                Request::builder().uri(format!("https://{}{path_and_query}", self.host))
            }
        };
        headers
            .iter()
            .fold(builder.method(method), |b, (name, value)| {
                b.header(*name, *value)
            })
    }

    async fn send_request(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, ConnError> {
        Ok(match &mut self.send {
            Sender::Http1(send) => {
                send.ready().await?;
                send.send_request(request).await?
            }
            Sender::Http2(send) => {
                send.ready().await?;
                send.send_request(request).await?
            }
        })
    }

    /// Sends one request and waits for the response head.
    pub(crate) async fn send(
        &mut self,
        method: hyper::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response<Incoming>, ConnError> {
        let request = self
            .request(method, path_and_query, headers)
            .body(Full::new(body))
            .expect("request parts are valid");
        self.send_request(request).await
    }

    /// `GET` with no body.
    pub(crate) async fn get(
        &mut self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response<Incoming>, ConnError> {
        self.send(hyper::Method::GET, path_and_query, headers, Bytes::new())
            .await
    }

    /// Opens a stream of this h2 connection for a WebSocket by extended CONNECT (RFC 8441); the stream
    /// lives while this connection's handle (or another of the connection) does. HTTP/1.1 upgrades a
    /// bare connection instead (tungstenite's handshake over a [`Wire`]), so an HTTP/1.1 connection is
    /// refused here.
    pub(crate) async fn connect_websocket(
        &mut self,
        path_and_query: &str,
    ) -> Result<H2Stream, ConnError> {
        if !self.is_h2() {
            return Err(ConnError::Protocol {
                path: path_and_query.to_owned(),
                reason: "extended CONNECT needs an h2 connection".into(),
            });
        }
        let mut request = self
            .request(
                hyper::Method::CONNECT,
                path_and_query,
                &[("sec-websocket-version", "13")],
            )
            .body(Full::new(Bytes::new()))
            .expect("request parts are valid");
        request
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let response = expect_success(path_and_query, self.send_request(request).await?).await?;
        Ok(TokioIo::new(hyper::upgrade::on(response).await?))
    }
}

/// Reads a whole response body, failing on an error status.
pub(crate) async fn body_of(path: &str, response: Response<Incoming>) -> Result<Bytes, ConnError> {
    use http_body_util::BodyExt;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(ConnError::Status {
            path: path.to_owned(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        });
    }
    Ok(body)
}

/// Fails on an error status, reading the error body first so the message says why.
pub(crate) async fn expect_success(
    path: &str,
    response: Response<Incoming>,
) -> Result<Response<Incoming>, ConnError> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(body_of(path, response)
            .await
            .expect_err("an error status always yields an error"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_ends_where_the_kernel_keeps_total_retrans() {
        assert_eq!(
            std::mem::offset_of!(tcp_info::TcpInfoPrefix, total_retrans),
            std::mem::offset_of!(nix::libc::tcp_info, tcpi_total_retrans)
        );
    }

    #[tokio::test]
    async fn retransmissions_are_read_once_every_socket_has_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let info = nix::sys::socket::getsockopt(&tcp, TcpInfoHead);
        assert_eq!(
            info.map(|i| i.total_retrans),
            Ok(0),
            "nothing lost on loopback"
        );
        let counters = Arc::new(WireCounters::default());
        let counted = Counted::new(tcp, counters.clone());
        let patience = Duration::from_millis(20);
        assert_eq!(counters.retransmits_once_closed(patience).await, (0, 1));
        let waiting = tokio::spawn({
            let counters = counters.clone();
            async move {
                counters
                    .retransmits_once_closed(Duration::from_secs(60))
                    .await
            }
        });
        drop(counted);
        assert_eq!(waiting.await.unwrap(), (0, 0), "woken by the close");
    }

    /// A server that picks no ALPN protocol (as Pushpin's condure) is refused to an h2 client, which
    /// would otherwise speak HTTP/1.1 to it unawares; an HTTP/1.1 client connects.
    #[tokio::test]
    async fn h2_is_never_spoken_as_http1_to_a_server_without_alpn() {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tokio::io::AsyncReadExt::read(&mut tls, &mut [0; 64]).await;
                    }
                });
            }
        });
        let trust = TlsTrust::Certificates {
            pem: made.cert.pem(),
            name: "localhost".into(),
        };
        let counters = Arc::new(WireCounters::default());
        let to = |http| Endpoint::new(addr).with_tls(Some(&trust.client(http, true).unwrap()));
        let refused = connect(&to(HttpVersion::Http2), &counters).await;
        assert!(
            matches!(&refused, Err(ConnError::Tls { error, .. }) if error.to_string().contains("did not choose h2")),
            "{refused:?}"
        );
        let (wire, _) = connect(&to(HttpVersion::Http1), &counters).await.unwrap();
        assert!(wire.tls_handshake().is_some() && !wire.is_h2());
    }
}
