//! The server side of one transport run: one server (spawned, `--target`, or a peer), or with
//! `--cluster N` a Redis backplane and N `pushbench-server --bus` nodes sharing one feed.
//!
//! A cluster is started fresh for every transport, like a single server: `redis-server` on a free
//! loopback port with its working directory in a temporary directory (no persistence: `--save ""`,
//! `--appendonly no`), then the nodes, each with the scenario's server options. Subscribers spread over
//! the nodes round robin and move to the next node on every reconnect (`clients::subscriber::Shared::nodes`);
//! the publisher's connections spread over them too. Memory and CPU are summed over the nodes for the
//! headline figures and kept per node ([`pushbench_report::result::NodeResult`]); Redis is sampled on its own
//! ([`pushbench_report::result::BusResult`]).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use pushbench_common::{ProcSample, Transport};
use tokio::process::{Child, Command};

use crate::clients::dialect::{Offer, PeerKind};
use crate::clients::publisher::{Published, Schedule, publish_with};
use crate::conn::{Endpoint, TlsClient, TlsTrust, WireCounters};
use crate::error::RunError;
use crate::profile::{Profile, Route, ServerSpec};
use crate::scenario::{ClientOptions, HttpVersion, Scenario};
use crate::targets::certificate::RunCertificate;
use crate::targets::peer::{IdleSettings, PeerTls, RunningPeer};
use crate::targets::profiled::ProfileEncoder;
use crate::targets::server_proc::{Server, ServerError};
use crate::util::{TempDir, free_port, guarded, stop_child, sum_samples, wait_listening};

/// One server of `--peers`: ours, a peer, or the floor reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerName {
    /// `pushbench-server`.
    Ours,
    /// A peer.
    Peer(PeerKind),
    /// `pushbench-floor`, the floor reference ([`crate::targets::floor`]).
    Floor,
}

impl ServerName {
    /// Parses `ours`, `nchan`, `pushpin`, `socketio` or `floor`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "ours" => Ok(Self::Ours),
            "nchan" => Ok(Self::Peer(PeerKind::Nchan)),
            "pushpin" => Ok(Self::Peer(PeerKind::Pushpin)),
            "socketio" => Ok(Self::Peer(PeerKind::SocketIo)),
            "floor" => Ok(Self::Floor),
            other => Err(format!(
                "unknown server {other:?}: expected ours, nchan, pushpin, socketio or floor"
            )),
        }
    }

    /// Parses a server other than ours (`--peer`).
    pub fn parse_other(s: &str) -> Result<Self, String> {
        match Self::parse(s)? {
            Self::Ours => Err("ours is measured without --peer".to_owned()),
            other => Ok(other),
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Peer(p) => p.as_str(),
            Self::Floor => "floor",
        }
    }

    /// Whether this server offers `transport` (ours offers all).
    pub fn offers(self, transport: Transport) -> bool {
        match self {
            Self::Ours => true,
            Self::Peer(kind) => matches!(kind.profile().offer(transport), Offer::Offered(_)),
            Self::Floor => crate::targets::floor::offers(transport),
        }
    }

    /// Why this server does not serve `transport` to clients connecting as `client` says, as a report's
    /// status: `not offered` (never, [`Self::offers`]), or `not offered over h2: <why>`
    /// ([`crate::targets::peer::not_offered_over`]); `None` when it serves it.
    pub fn not_offered(self, transport: Transport, client: &ClientOptions) -> Option<String> {
        if !self.offers(transport) {
            return Some("not offered".to_owned());
        }
        match self {
            Self::Peer(kind) => {
                crate::targets::peer::not_offered_over(kind, transport, client.tls, client.http)
                    .map(|why| {
                        format!(
                            "not offered over {}: {why}",
                            crate::targets::peer::connection_name(client)
                        )
                    })
            }
            Self::Ours | Self::Floor => None,
        }
    }
}

/// Where the server comes from.
#[derive(Debug, Clone)]
pub enum ServerSource {
    /// Spawn this binary once per transport.
    Spawn(PathBuf),
    /// Use a running server.
    Target {
        /// `http://host:port` or `https://host:port`.
        url: String,
        /// Its PID, for memory and CPU samples.
        pid: Option<u32>,
        /// Whom to trust when the URL is `https://` (`--ca FILE` or `--insecure`).
        trust: Option<TargetTrust>,
    },
    /// Start a peer (nchan, Pushpin) once per transport it offers (see [`crate::targets::peer`]).
    Peer(crate::targets::peer::PeerKind),
    /// Spawn the floor reference, this binary, once per transport it offers (see
    /// [`crate::targets::floor`]).
    Floor(PathBuf),
    /// A server a target profile describes: started per transport, or attached at its URL (see
    /// [`crate::targets::profiled`]).
    Profile(Arc<Profile>),
}

/// How the clients trust an `https://` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetTrust {
    /// The certificates of this PEM (`--ca FILE`'s contents), checked against the URL's host.
    Ca(String),
    /// Any certificate (`--insecure`).
    Insecure,
}

/// The trust for `--target url`: TLS when the URL is `https://` (then `trust` must say whom to trust),
/// cleartext when it is `http://` (then nothing may ask for TLS).
fn target_trust(
    url: &str,
    trust: Option<&TargetTrust>,
    scenario_tls: bool,
) -> Result<Option<TlsTrust>, RunError> {
    let Some(rest) = url.strip_prefix("https://") else {
        if scenario_tls || trust.is_some() {
            return Err(RunError::Tls(format!(
                "--target {url} is cleartext: TLS ([client] tls, --ca, --insecure) needs an https:// URL"
            )));
        }
        return Ok(None);
    };
    let authority = rest.trim_end_matches('/');
    // The host the certificate must name: `[v6]:port`, `host:port` or a bare host.
    let name = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    }
    .to_owned();
    match trust {
        Some(TargetTrust::Ca(pem)) => Ok(Some(TlsTrust::Certificates {
            pem: pem.clone(),
            name,
        })),
        Some(TargetTrust::Insecure) => Ok(Some(TlsTrust::Anything { name })),
        None => Err(RunError::Tls(format!(
            "--target {url}: say whom to trust, --ca FILE (PEM) or --insecure"
        ))),
    }
}

impl ServerSource {
    /// The source that runs `name` of `--peer` / `--peers`: ours and the floor spawned from their
    /// binaries (the floor's beside the server's, see [`crate::targets::floor::locate`]).
    pub fn of(name: ServerName, server_bin: Option<&Path>) -> Result<Self, ServerError> {
        Ok(match name {
            ServerName::Ours => Self::Spawn(crate::targets::server_proc::locate(server_bin)?),
            ServerName::Peer(kind) => Self::Peer(kind),
            ServerName::Floor => Self::Floor(crate::targets::floor::locate(server_bin)?),
        })
    }

    /// Why this source does not run `transport` for clients connecting as `client` says (a peer's profile
    /// does not drive it, or the peer cannot serve it over h2), as the reports say it; `None` when it
    /// runs it.
    pub fn not_driven(&self, transport: Transport, client: &ClientOptions) -> Option<String> {
        match self {
            ServerSource::Peer(kind) => match kind.profile().offer(transport) {
                Offer::Offered(_) => crate::targets::peer::not_offered_over(
                    *kind,
                    transport,
                    client.tls,
                    client.http,
                )
                .map(|why| {
                    format!(
                        "not offered by {kind} over {}: {why}",
                        crate::targets::peer::connection_name(client)
                    )
                }),
                Offer::NotOffered => Some(format!("not offered by {kind}")),
            },
            ServerSource::Floor(_) if !crate::targets::floor::offers(transport) => {
                Some("not offered by the floor".to_owned())
            }
            ServerSource::Profile(profile) if profile.route(transport).is_none() => {
                Some(format!("not offered by profile {}", profile.name))
            }
            ServerSource::Spawn(_)
            | ServerSource::Target { .. }
            | ServerSource::Floor(_)
            | ServerSource::Profile(_) => None,
        }
    }

    /// How a result names this server (`server` in `result.json`), for `cluster` nodes.
    pub fn describe(&self, cluster: usize) -> String {
        match self {
            ServerSource::Spawn(path) if cluster > 1 => format!(
                "spawned {} nodes of {} on a Redis bus",
                cluster,
                path.display()
            ),
            ServerSource::Spawn(path) => format!("spawned {}", path.display()),
            ServerSource::Target { url, .. } => format!("target {url}"),
            ServerSource::Peer(kind) => format!("peer {kind}"),
            ServerSource::Floor(path) => format!("floor reference {}", path.display()),
            ServerSource::Profile(profile) => match &profile.server {
                ServerSpec::Start(_) => format!("profile {}", profile.name),
                ServerSpec::Attach(url) => format!("profile {} at {url}", profile.name),
            },
        }
    }
}

/// How long Redis may take to accept connections.
const REDIS_READY: Duration = Duration::from_secs(10);

/// A `redis-server` we started.
#[derive(Debug)]
struct Redis {
    addr: SocketAddr,
    child: Child,
    /// Its working directory; removed after it stopped.
    _dir: TempDir,
}

impl Redis {
    async fn start(log: &Path) -> Result<Self, RunError> {
        let failed = |reason: String| RunError::Cluster(format!("redis-server: {reason}"));
        let dir = TempDir::new("redis").map_err(|e| failed(format!("temporary directory: {e}")))?;
        let port = free_port().map_err(|e| failed(format!("no free port: {e}")))?;
        let log_file = std::fs::File::create(log)
            .map_err(|e| failed(format!("cannot create {}: {e}", log.display())))?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map(guarded)
            .map_err(|e| {
                failed(format!(
                    "cannot start it ({e}); install it with scripts/setup (Debian package redis-server)"
                ))
            })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if !wait_listening(addr, REDIS_READY).await {
            stop_child(child, Duration::from_secs(1)).await;
            return Err(failed(format!(
                "not listening on {addr} within {REDIS_READY:?} (see {})",
                log.display()
            )));
        }
        Ok(Self {
            addr,
            child,
            _dir: dir,
        })
    }

    fn sample(&self) -> Option<ProcSample> {
        ProcSample::of_pid(self.child.id()?).ok()
    }
}

/// The servers of one transport run.
#[derive(Debug)]
pub struct Deployment {
    /// One node, or a cluster's nodes in order.
    pub nodes: Vec<Server>,
    bus: Option<Redis>,
    /// The certificate its nodes serve (`[client] tls = true`), which the clients trust.
    certificate: Option<RunCertificate>,
    /// Whom the clients trust over TLS; `None`: cleartext.
    trust: Option<TlsTrust>,
    /// TLS to reach the nodes with, made from `trust`.
    tls: Option<TlsClient>,
    /// The target profile that describes the server, when one does.
    profile: Option<Arc<Profile>>,
}

impl Deployment {
    /// Starts what `source` names for `transport`: `cluster` nodes on a fresh Redis when `cluster > 1`
    /// (spawned servers only); over TLS with a certificate made for it when the scenario asks.
    pub async fn start(
        source: &ServerSource,
        scenario: &Scenario,
        transport: Transport,
        cluster: usize,
        out_dir: &Path,
        host: IpAddr,
    ) -> Result<Self, RunError> {
        let (certificate, trust) = match (source, scenario.client.tls) {
            (ServerSource::Spawn(_) | ServerSource::Peer(_) | ServerSource::Floor(_), false) => {
                (None, None)
            }
            // A peer serves the same certificate as our server would, and the clients trust it alike.
            (ServerSource::Spawn(_) | ServerSource::Peer(_), true) => {
                let certificate = RunCertificate::new()?;
                let trust = TlsTrust::Certificates {
                    pem: certificate.cert_pem.clone(),
                    name: RunCertificate::SERVER_NAME.to_owned(),
                };
                (Some(certificate), Some(trust))
            }
            (ServerSource::Target { url, trust, .. }, tls) => {
                (None, target_trust(url, trust.as_ref(), tls)?)
            }
            (ServerSource::Floor(_), true) => {
                return Err(RunError::Tls(
                    "[client] tls = true: the floor reference serves cleartext only".into(),
                ));
            }
            (ServerSource::Profile(_), false) => (None, None),
            (ServerSource::Profile(_), true) => {
                return Err(RunError::Tls(
                    "[client] tls = true: TLS to a profiled server is not supported yet".into(),
                ));
            }
        };
        let tls = trust
            .as_ref()
            .map(|trust| trust.client(HttpVersion::Http1, true))
            .transpose()
            .map_err(RunError::Tls)?;
        let mut deployment = Self::start_servers(
            source,
            scenario,
            transport,
            cluster,
            out_dir,
            host,
            certificate.as_ref(),
        )
        .await?;
        deployment.nodes = std::mem::take(&mut deployment.nodes)
            .into_iter()
            .map(|node| node.with_tls(tls.clone()))
            .collect();
        deployment.certificate = certificate;
        deployment.trust = trust;
        deployment.tls = tls;
        if let ServerSource::Profile(profile) = source {
            deployment.profile = Some(profile.clone());
        }
        Ok(deployment)
    }

    async fn start_servers(
        source: &ServerSource,
        scenario: &Scenario,
        transport: Transport,
        cluster: usize,
        out_dir: &Path,
        host: IpAddr,
        certificate: Option<&RunCertificate>,
    ) -> Result<Self, RunError> {
        let tls_args = certificate
            .map(RunCertificate::server_args)
            .unwrap_or_default();
        let peer_tls = certificate.map(|certificate| PeerTls {
            certificate,
            http: scenario.client.http,
        });
        let single = |server| Self {
            nodes: vec![server],
            bus: None,
            certificate: None,
            trust: None,
            tls: None,
            profile: None,
        };
        match source {
            ServerSource::Spawn(bin) if cluster > 1 => {
                let bus = Redis::start(&out_dir.join(format!("redis-{transport}.log"))).await?;
                let mut args = scenario.server.args();
                args.extend(["--bus".into(), format!("redis://{}", bus.addr)]);
                args.extend_from_slice(&tls_args);
                let mut nodes = Vec::with_capacity(cluster);
                for i in 0..cluster {
                    let log = out_dir.join(format!("server-{transport}-node{i}.log"));
                    match Server::spawn(bin, host, &args, &log).await {
                        Ok(node) => nodes.push(node),
                        Err(e) => {
                            Self {
                                nodes,
                                bus: Some(bus),
                                certificate: None,
                                trust: None,
                                tls: None,
                                profile: None,
                            }
                            .stop()
                            .await;
                            return Err(e.into());
                        }
                    }
                }
                Ok(Self {
                    nodes,
                    bus: Some(bus),
                    certificate: None,
                    trust: None,
                    tls: None,
                    profile: None,
                })
            }
            ServerSource::Spawn(bin) => {
                let mut args = scenario.server.args();
                args.extend_from_slice(&tls_args);
                let log = out_dir.join(format!("server-{transport}.log"));
                Ok(single(Server::spawn(bin, host, &args, &log).await?))
            }
            ServerSource::Target { url, pid, .. } => Ok(single(Server::target(url, *pid).await?)),
            ServerSource::Floor(bin) => {
                let log = out_dir.join(format!("floor-{transport}.log"));
                Ok(single(Server::spawn(bin, host, &[], &log).await?))
            }
            ServerSource::Profile(profile) => Ok(single(match &profile.server {
                ServerSpec::Attach(url) => Server::target(url, None).await?,
                ServerSpec::Start(spec) => Server::profiled(
                    crate::targets::profiled::start(
                        &profile.name,
                        spec,
                        transport,
                        IdleSettings::of(scenario),
                        out_dir,
                        host,
                    )
                    .await?,
                ),
            })),
            ServerSource::Peer(kind) => Ok(single(Server::peer(
                RunningPeer::start(
                    *kind,
                    transport,
                    IdleSettings::of(scenario),
                    out_dir,
                    host,
                    peer_tls,
                )
                .await?,
            ))),
        }
    }

    /// Whom the clients trust over TLS; `None` in cleartext.
    pub(crate) fn tls_trust(&self) -> Option<TlsTrust> {
        self.trust.clone()
    }

    /// Whether this is a cluster on a bus.
    pub fn is_cluster(&self) -> bool {
        self.bus.is_some()
    }

    /// Where subscribers and the publisher connect.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.addr).collect()
    }

    /// The running peer, when the server is one.
    fn running_peer(&self) -> Option<&RunningPeer> {
        self.nodes.first().and_then(Server::running_peer)
    }

    /// The dialect the clients speak to this target: `None` for our own protocol, else the peer's.
    pub fn dialect(&self) -> Option<PeerKind> {
        self.running_peer().map(|p| p.kind)
    }

    /// Whether delivered events carry the server's own accept timestamp (a peer gives none, so there is no
    /// latency "from the server" to report).
    pub fn stamps_events(&self) -> bool {
        self.running_peer().is_none() && self.profile.is_none()
    }

    /// The route the clients take for `transport` when a target profile describes the server.
    pub(crate) fn profiled_route(&self, transport: Transport) -> Option<Arc<Route>> {
        (self.profile.as_ref())
            .and_then(|p| p.route(transport))
            .map(|r| Arc::new(r.clone()))
    }

    /// Waits, where the target needs it, until it counts every subscription live (a peer cannot hand a
    /// subscriber its cursor: events published before it counts them would be lost); a note when it did
    /// not within its settle time. Our server needs no wait: a subscriber holds its cursor.
    pub async fn wait_subscribed(
        &self,
        transport: Transport,
        expected_per_topic: &[(String, u64)],
        settle: Duration,
    ) -> Option<String> {
        if let (Some(profile), Some(node)) = (&self.profile, self.nodes.first()) {
            return crate::targets::profiled::wait_subscribed(
                profile,
                node.addr,
                transport,
                expected_per_topic,
                settle,
            )
            .await;
        }
        let peer = self.running_peer()?;
        crate::targets::peer::wait_subscribed(
            peer,
            self.tls.as_ref(),
            transport,
            expected_per_topic,
            settle,
        )
        .await
    }

    /// Publishes `schedule` open loop with this target's encoder: to our nodes (spread over them), or to
    /// the peer with the sequence number its subscribers decode.
    pub async fn publish(
        &self,
        transport: Transport,
        schedule: Arc<Schedule>,
        wire: Arc<WireCounters>,
        sent: Arc<AtomicU64>,
    ) -> Published {
        if let Some(profile) = &self.profile {
            let encoder = Arc::new(ProfileEncoder::new(profile, &schedule));
            let nodes: Vec<Endpoint> = self.addrs().into_iter().map(Endpoint::new).collect();
            return publish_with(&nodes, encoder, schedule, wire, sent).await;
        }
        match self.running_peer() {
            Some(peer) => {
                crate::targets::peer::publish(
                    peer,
                    self.tls.as_ref(),
                    transport,
                    schedule,
                    wire,
                    sent,
                )
                .await
            }
            None => {
                let nodes: Vec<Endpoint> = self
                    .addrs()
                    .into_iter()
                    .map(|addr| Endpoint::new(addr).with_tls(self.tls.as_ref()))
                    .collect();
                crate::clients::publisher::publish(&nodes, schedule, wire, sent).await
            }
        }
    }

    /// Each node's `/stats`; none for a server a target profile describes, whose `/stats`, if it has
    /// one, is not ours and must not be read as ours.
    pub async fn stats(&self) -> Vec<Option<serde_json::Value>> {
        let mut stats = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            stats.push(match self.profile {
                Some(_) => None,
                None => node.stats().await,
            });
        }
        stats
    }

    /// Each node's sample.
    pub fn node_samples(&self) -> Vec<Option<ProcSample>> {
        self.nodes.iter().map(Server::sample).collect()
    }

    /// RSS and CPU summed over the nodes (`None` when one cannot be sampled).
    pub fn sample(&self) -> Option<ProcSample> {
        sum_samples(&self.node_samples())
    }

    /// PIDs of the nodes that can be sampled.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(Server::pid).collect()
    }

    /// Redis's sample, in a cluster.
    pub fn bus_sample(&self) -> Option<ProcSample> {
        self.bus.as_ref().and_then(Redis::sample)
    }

    /// Redis's address, in a cluster.
    pub fn bus_addr(&self) -> Option<SocketAddr> {
        self.bus.as_ref().map(|b| b.addr)
    }

    /// Stops the nodes, then Redis.
    pub async fn stop(self) {
        for node in self.nodes {
            node.stop(Duration::from_secs(5)).await;
        }
        if let Some(bus) = self.bus {
            stop_child(bus.child, Duration::from_secs(5)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_parse() {
        assert_eq!(ServerName::parse("ours"), Ok(ServerName::Ours));
        assert_eq!(
            ServerName::parse("nchan"),
            Ok(ServerName::Peer(PeerKind::Nchan))
        );
        assert_eq!(
            ServerName::parse("pushpin"),
            Ok(ServerName::Peer(PeerKind::Pushpin))
        );
        assert_eq!(
            ServerName::parse("socketio"),
            Ok(ServerName::Peer(PeerKind::SocketIo))
        );
        assert!(!ServerName::Peer(PeerKind::SocketIo).offers(Transport::Sse));
        assert!(ServerName::Peer(PeerKind::SocketIo).offers(Transport::LongPoll));
        assert_eq!(ServerName::parse("floor"), Ok(ServerName::Floor));
        assert!(ServerName::parse("nginx").is_err());
        assert_eq!(ServerName::parse_other("floor"), Ok(ServerName::Floor));
        assert!(ServerName::parse_other("ours").is_err());
        assert!(!ServerName::Floor.offers(Transport::Poll));
        assert!(ServerName::Floor.offers(Transport::Ws));
        assert!(!ServerName::Peer(PeerKind::Pushpin).offers(Transport::Poll));
        assert!(ServerName::Ours.offers(Transport::Poll));
    }
}
