//! Established push servers measured with the same load: target profiles for nchan, Pushpin and
//! Socket.IO.
//!
//! A [`Profile`] maps each transport a peer offers to its subscribe URL, the headers that ask for it and the
//! framing of its events ([`Route`], [`Framing`]); [`Offer`] says honestly when a peer does not offer a
//! transport, or offers it but this profile does not drive it. A [`RunningPeer`] is one instance started
//! from the configs kept in `scenarios/peers/` (compiled in), bound to loopback, with its runtime files in
//! a temporary directory; every process it consists of (nginx master and workers; Pushpin's runner,
//! condure, proxy, handler, and the zurl we start beside it; Socket.IO's node) is sampled for memory and
//! CPU, and every one
//! is stopped by PID at the end of a run, also on error (`Drop`).
//!
//! Over TLS (`[client] tls = true`, `run --tls`, `--http 2`) a peer serves the certificate the run made
//! for it ([`PeerTls`]), which the clients trust as they trust our server's, on HTTP/1.1 or h2 as the
//! scenario asks; the subscribers connect as they do to our server (`[client] subscribers_per_connection`
//! on h2, `tls_resumption`). What a peer cannot serve over such connections is not offered, with the
//! reason ([`not_offered_over`]): a run never falls back to cleartext or to HTTP/1.1.
//!
//! Completeness without the peers' help: they give no `id`/`ts` of ours, so the publisher writes a
//! **sequence number** into each event's data after the intended send time: `"<intended_ns> <seq> xxx…"`
//! ([`peer_event_data`]). `seq` is the schedule index plus one, unique and increasing across topics, and
//! it plays the role of our server's event id: the publisher records `(seq, topic)` on each accepted
//! publish, subscribers record the `seq` they parse, and the usual accounting makes lost, duplicated and
//! out-of-order exact. Every peer subscription starts before the first publish (the channel is empty), so
//! each subscriber is owed every event on its topics (cursor 0). Peers cannot resume from our cursor: a
//! dropped connection shows up as loss, honestly, unless the peer recovers it by its own means
//! (Socket.IO's connection-state recovery).
//!
//! # Layout
//! - [`nchan`]: the nchan profile and nginx process.
//! - [`pushpin`]: the Pushpin profile, its processes and the GRIP backend.
//! - [`socketio`]: the Socket.IO profile and its Node process.
//! - the subscriber clients for the peers' framings are `clients::peer` and `clients::dialect`; the
//!   side-by-side report of `--peers ours,nchan,pushpin` is [`crate::suites::peers`].

pub mod nchan;
pub mod pushpin;
pub mod socketio;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use pushbench_common::{ProcSample, Transport};
use tokio::process::Child;
use tokio::time::Instant;

use crate::clients::publisher::{Encoder, PublishRequest, Published, Schedule, publish_with};
use crate::conn::{ConnError, Endpoint, HttpConn, TlsClient, WireCounters, body_of};
use crate::scenario::{ClientOptions, HttpVersion};
use crate::targets::certificate::RunCertificate;
use crate::util::{TempDir, descendants};

pub use crate::clients::dialect::{
    Framing, Offer, PeerKind, Profile, Route, parse_peer_event, peer_event_data,
};
pub use crate::error::PeerError;

/// Why `kind` does not serve `transport` to subscribers speaking `http` (h2 comes only over TLS), though
/// its profile drives it on HTTP/1.1; `None` when it does.
pub fn not_offered_over(
    kind: PeerKind,
    transport: Transport,
    tls: bool,
    http: HttpVersion,
) -> Option<&'static str> {
    match kind {
        PeerKind::Nchan => nchan::not_offered_over(transport, http),
        PeerKind::Pushpin => pushpin::not_offered_over(http),
        PeerKind::SocketIo => tls.then_some(
            "not driven over TLS: the Node script pushbench starts (scenarios/peers/socketio) serves cleartext HTTP only",
        ),
    }
}

/// How the clients connect, in a few words: `h2`, `TLS HTTP/1.1` or `HTTP/1.1`.
pub fn connection_name(client: &ClientOptions) -> &'static str {
    match (client.tls, client.http) {
        (_, HttpVersion::Http2) => "h2",
        (true, HttpVersion::Http1) => "TLS HTTP/1.1",
        (false, HttpVersion::Http1) => "HTTP/1.1",
    }
}

/// What a peer serves TLS with: the run's certificate (which the clients trust), and the HTTP version
/// the subscribers speak over it.
#[derive(Debug, Clone, Copy)]
pub struct PeerTls<'a> {
    /// The run's certificate and key files.
    pub certificate: &'a RunCertificate,
    /// HTTP/1.1, or h2 (negotiated by ALPN).
    pub http: HttpVersion,
}

/// Fills `{{KEY}}` placeholders.
pub fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (key, value) in values {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    out
}

/// What our server does with idle subscribers, which a peer is set up to do too, so that idle costs compare
/// like for like: a keep-alive after `keepalive` of silence, a long-poll held at most `longpoll_hold`.
#[derive(Debug, Clone, Copy)]
pub struct IdleSettings {
    /// Our server's heartbeat interval ([`crate::scenario::ServerOptions::heartbeat`]).
    pub keepalive: Duration,
    /// The scenario's `[longpoll] timeout_ms`, which our server is asked to hold a long-poll for.
    pub longpoll_hold: Duration,
}

impl IdleSettings {
    /// The settings `scenario` gives our server.
    pub fn of(scenario: &crate::scenario::Scenario) -> Self {
        Self {
            keepalive: scenario.server.heartbeat(),
            longpoll_hold: scenario.longpoll_timeout,
        }
    }
}

/// A duration in whole seconds, as both peers take their keep-alive interval and hold timeout: rounded up
/// (never more keep-alives or hold timeouts than our server has), at least 1.
pub fn whole_secs(duration: Duration) -> u64 {
    duration.as_millis().div_ceil(1000).max(1) as u64
}

/// One running peer: its processes, its addresses, its temporary directory.
#[derive(Debug)]
pub struct RunningPeer {
    /// Which peer.
    pub kind: PeerKind,
    /// Its profile.
    pub profile: Arc<Profile>,
    /// Where subscribers connect.
    pub addr: SocketAddr,
    /// Where the publisher sends events.
    pub publish_addr: SocketAddr,
    /// The processes we started (nginx master; Pushpin's runner and zurl; node), killed on drop.
    children: Vec<Child>,
    /// Every PID seen in the process trees, so that stragglers can be killed by PID at the end.
    seen: std::sync::Mutex<Vec<u32>>,
    /// The GRIP backend task (Pushpin).
    backend: Option<tokio::task::JoinHandle<()>>,
    /// The GRIP backend's message log, which the publisher appends long-poll events to (Pushpin).
    log: Option<Arc<pushpin::MessageLog>>,
    /// Runtime files; removed last.
    dir: TempDir,
}

impl RunningPeer {
    /// Starts `kind` listening for subscribers on `host`, over TLS when `tls` says so, with its logs in
    /// `log_dir`, treating idle subscribers as our server would (`idle`).
    pub async fn start(
        kind: PeerKind,
        transport: Transport,
        idle: IdleSettings,
        log_dir: &Path,
        host: std::net::IpAddr,
        tls: Option<PeerTls<'_>>,
    ) -> Result<Self, PeerError> {
        // Never started on a connection it cannot serve, to be measured on another one.
        if let Some(tls) = tls
            && let Some(why) = not_offered_over(kind, transport, true, tls.http)
        {
            return Err(PeerError::NotOffered(kind.as_str(), transport, why));
        }
        match kind {
            PeerKind::Nchan => nchan::start(log_dir, transport, idle, host, tls).await,
            PeerKind::Pushpin => pushpin::start(log_dir, transport, idle, host, tls).await,
            // Never given TLS: it is not offered over TLS (`not_offered_over`).
            PeerKind::SocketIo => socketio::start(log_dir, transport, idle, host).await,
        }
    }

    fn new(
        kind: PeerKind,
        addr: SocketAddr,
        publish_addr: SocketAddr,
        children: Vec<Child>,
        backend: Option<tokio::task::JoinHandle<()>>,
        dir: TempDir,
    ) -> Self {
        let peer = Self {
            kind,
            profile: Arc::new(kind.profile()),
            addr,
            publish_addr,
            children,
            seen: std::sync::Mutex::new(Vec::new()),
            backend,
            log: None,
            dir,
        };
        peer.pids();
        peer
    }

    /// The same peer with its GRIP backend's message log.
    fn with_log(mut self, log: Arc<pushpin::MessageLog>) -> Self {
        self.log = Some(log);
        self
    }

    /// Every PID of the peer now: the processes we started and all their descendants.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for child in &self.children {
            if let Some(pid) = child.id() {
                pids.push(pid);
                pids.extend(descendants(pid));
            }
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for &pid in &pids {
            if !seen.contains(&pid) {
                seen.push(pid);
            }
        }
        pids
    }

    /// Summed RSS and CPU of all the peer's processes.
    pub fn sample(&self) -> Option<ProcSample> {
        let mut total: Option<ProcSample> = None;
        for pid in self.pids() {
            if let Ok(s) = ProcSample::of_pid(pid) {
                let t = total.get_or_insert(ProcSample {
                    rss_bytes: 0,
                    cpu: Duration::ZERO,
                });
                t.rss_bytes += s.rss_bytes;
                t.cpu += s.cpu;
            }
        }
        total
    }

    /// Open file descriptors over all the peer's processes.
    pub fn fds(&self) -> Option<u64> {
        let counts: Vec<u64> = self
            .pids()
            .into_iter()
            .filter_map(crate::util::count_fds)
            .collect();
        (!counts.is_empty()).then(|| counts.iter().sum())
    }

    /// Stops the peer: SIGTERM to the processes we started, SIGKILL after `grace` to anything left,
    /// by PID.
    pub async fn stop(mut self, grace: Duration) {
        self.pids();
        for child in &self.children {
            if let Some(pid) = child.id() {
                signal(pid, nix::sys::signal::Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        for child in &mut self.children {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(left, child.wait()).await;
        }
        // Drop kills whatever is still there.
    }

    /// The GRIP backend's message log (Pushpin), which long-poll events are appended to before they are
    /// published.
    pub fn message_log(&self) -> Option<&Arc<pushpin::MessageLog>> {
        self.log.as_ref()
    }

    /// The temporary directory (configs, sockets, pid files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the publisher connects: over the subscribers' TLS (`tls`) when it publishes on their
    /// listener (nchan), in cleartext to a publish API of its own (Pushpin's handler, an application's
    /// back-end port beside the server).
    fn publish_endpoint(&self, tls: Option<&TlsClient>) -> Endpoint {
        let endpoint = Endpoint::new(self.publish_addr);
        if self.publish_addr == self.addr {
            endpoint.with_tls(tls)
        } else {
            endpoint
        }
    }
}

impl Drop for RunningPeer {
    fn drop(&mut self) {
        if let Some(backend) = &self.backend {
            backend.abort();
        }
        let seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()));
        for child in &mut self.children {
            let _ = child.start_kill();
        }
        // Workers and helpers we saw: only those still alive and still ours (same start as seen; a
        // recycled PID would need thousands of forks within the run, and we check it still runs a
        // peer binary).
        for pid in seen {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if [
                "nginx",
                "pushpin",
                "condure",
                "pushpin-proxy",
                "pushpin-handl",
                "pushpin-handler",
                "zurl",
                "node",
                "nodejs",
            ]
            .contains(&comm.trim())
            {
                signal(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        for child in &mut self.children {
            let _ = child.try_wait();
        }
    }
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Opens a log file for a peer process.
fn log_file(path: &Path) -> Result<std::fs::File, PeerError> {
    std::fs::File::create(path).map_err(|error| PeerError::Start {
        what: path.display().to_string(),
        error,
    })
}

/// Publishes the schedule to a peer, open loop, with `PeerEncoder` (the publisher's own loop): event
/// `i` carries sequence number `i + 1` in its data, and `(i + 1, topic)` is recorded when the peer
/// accepts it. `tls`: the run's TLS over HTTP/1.1, for a peer that takes publishes on its subscribers'
/// listener.
pub(crate) async fn publish(
    peer: &RunningPeer,
    tls: Option<&TlsClient>,
    transport: Transport,
    schedule: Arc<Schedule>,
    wire: Arc<WireCounters>,
    sent: Arc<AtomicU64>,
) -> Published {
    let encoder = Arc::new(PeerEncoder {
        kind: peer.kind,
        transport,
        log: peer.log.clone(),
    });
    let node = [peer.publish_endpoint(tls)];
    publish_with(&node, encoder, schedule, wire, sent).await
}

/// How a peer takes events: nchan's `/pub?id=<channel>` with the data as text; Pushpin's `/publish/`
/// with a JSON item per transport (for a long-poll, written to our GRIP backend's log first); the
/// Socket.IO script's `/publish?topic=<room>` with the data as text.
struct PeerEncoder {
    kind: PeerKind,
    transport: Transport,
    /// Pushpin's GRIP backend log: long-poll events are appended to it before they are published.
    log: Option<Arc<pushpin::MessageLog>>,
}

impl Encoder for PeerEncoder {
    fn encode(&self, schedule: &Schedule, i: u64, topic: u64) -> PublishRequest<'_> {
        let seq = i + 1;
        let data = peer_event_data(schedule.intended_unix_ns(i), seq, schedule.payload_bytes);
        match self.kind {
            PeerKind::Nchan => PublishRequest {
                path: format!("/pub?id={}", schedule.topics[topic as usize]).into(),
                content_type: "text/plain",
                body: Bytes::from(data),
            },
            PeerKind::Pushpin => {
                let channel = schedule.topics[topic as usize].as_str();
                let body = match (&self.log, self.transport) {
                    // The backend's log first, as an application writes before it publishes: a long-poll
                    // that reaches the backend from now on is answered from the log.
                    (Some(log), Transport::LongPoll) => {
                        let (id, prev) = log.append(channel, &data);
                        pushpin::publish_longpoll_body(channel, id, prev, &data)
                    }
                    _ => pushpin::publish_body(self.transport, channel, &data),
                };
                PublishRequest {
                    path: "/publish/".into(),
                    content_type: "application/json",
                    body: Bytes::from(body),
                }
            }
            PeerKind::SocketIo => PublishRequest {
                path: format!("/publish?topic={}", schedule.topics[topic as usize]).into(),
                content_type: "text/plain",
                body: Bytes::from(data),
            },
        }
    }

    /// A peer's answer names none of our ids: an accepted event is acknowledged under its sequence number.
    fn ack(&self, i: u64, _path: &str, _body: &[u8]) -> Result<u64, ConnError> {
        Ok(i + 1)
    }

    /// Pushpin's publish API closes the connection after each answer: a fresh one per event there.
    fn fresh_connection_per_event(&self) -> bool {
        self.kind == PeerKind::Pushpin
    }
}

/// Waits until a peer's subscriptions are live before the first publish, where the peer can tell
/// (nchan's channel info counts subscribers); elsewhere waits `settle`. Returns a note when the count
/// was not reached within 3 s: with several workers and many channels nchan's channel info was seen
/// counting only part of the subscribers (about half, with 2 workers and 100 channels) while every one
/// of them then received every event, so the note goes to stderr, not into the result. `tls`: the run's
/// TLS over HTTP/1.1, when the peer serves TLS.
pub(crate) async fn wait_subscribed(
    peer: &RunningPeer,
    tls: Option<&TlsClient>,
    transport: Transport,
    expected_per_topic: &[(String, u64)],
    settle: Duration,
) -> Option<String> {
    // Interval polls hold nothing between requests: nchan counts no subscriber for them (and the client
    // counts itself live only after its first answer).
    if peer.kind != PeerKind::Nchan || transport == Transport::Poll {
        tokio::time::sleep(settle).await;
        return None;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let wire = Arc::new(WireCounters::default());
    let node = Endpoint::new(peer.addr).with_tls(tls);
    let mut last = String::new();
    loop {
        let mut all = true;
        if let Ok((mut conn, _)) = HttpConn::open(&node, &wire).await {
            for (topic, want) in expected_per_topic {
                let path = format!("/pub?id={topic}");
                let got = match conn.get(&path, &[("accept", "text/json")]).await {
                    Ok(r) => body_of(&path, r)
                        .await
                        .ok()
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                        .and_then(|v| v["subscribers"].as_u64())
                        .unwrap_or(0),
                    Err(_) => 0,
                };
                if got < *want {
                    all = false;
                    last = format!("channel {topic}: {got} of {want} subscribers");
                    break;
                }
            }
        } else {
            all = false;
        }
        if all {
            return None;
        }
        if Instant::now() >= deadline {
            tokio::time::sleep(settle).await;
            return Some(format!(
                "nchan's channel info did not count every subscription within 3 s ({last}); published after a further {settle:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socketio_is_measured_in_the_clear_only() {
        for transport in [Transport::LongPoll, Transport::Ws] {
            assert_eq!(
                not_offered_over(PeerKind::SocketIo, transport, false, HttpVersion::Http1),
                None
            );
            for http in [HttpVersion::Http1, HttpVersion::Http2] {
                let why = not_offered_over(PeerKind::SocketIo, transport, true, http).unwrap();
                assert!(why.contains("cleartext HTTP only"), "{why}");
            }
        }
    }

    #[test]
    fn payload_carries_time_and_sequence_at_exact_size() {
        let data = peer_event_data(1_763_870_000_123_456_789, 42, 64);
        assert_eq!(data.len(), 64);
        assert_eq!(
            parse_peer_event(data.as_bytes()),
            Some((1_763_870_000_123_456_789, 42))
        );
        // The time stays first, so the ordinary latency reader sees it too.
        assert_eq!(
            crate::measure::intended_send_ns(&data),
            Some(1_763_870_000_123_456_789)
        );
        assert_eq!(parse_peer_event(b"garbage"), None);
        assert_eq!(parse_peer_event(b"12 x yyy"), None);
    }

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(
            fill(
                "listen {{A}}:{{B}}; {{A}}",
                &[("A", "x".into()), ("B", "1".into())]
            ),
            "listen x:1; x"
        );
    }

    #[test]
    fn peers_get_the_idle_settings_our_server_gets() {
        let scenario = crate::scenario::Scenario::parse(
            "name = \"t\"\nsubscribers = 1\nlaunch_rate = 1\nduration_s = 1\npublish_rate = 1\n\
             payload_bytes = 64\n[longpoll]\ntimeout_ms = 7500\n[server]\nheartbeat_ms = 2500\n",
            "t",
        )
        .unwrap();
        let idle = IdleSettings::of(&scenario);
        assert_eq!(idle.keepalive, Duration::from_millis(2500));
        assert_eq!(idle.longpoll_hold, Duration::from_millis(7500));
    }

    #[test]
    fn peer_durations_round_up_to_whole_seconds() {
        assert_eq!(whole_secs(Duration::from_millis(15_000)), 15);
        assert_eq!(whole_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(whole_secs(Duration::from_millis(1)), 1);
    }
}
