//! The server under test: spawning a fresh `pushbench-server` per transport, or pointing at one that runs.
//!
//! A fresh process per transport attributes memory and CPU cleanly: its RSS before any subscriber is the
//! baseline, its RSS once all subscribers are connected gives bytes per connection, and its CPU time over
//! the publishing window divided by deliveries gives CPU per delivery. Samples come from `/proc/<pid>`
//! ([`ProcSample`], the same reader the server's own `/metrics` uses).
//!
//! The binary is found next to our own executable (where `cargo build` puts both), or one directory up
//! when we run as a test from `target/*/deps`; `--server-bin` / `PUSHBENCH_SERVER_BIN` override that.
//! Only the child we spawned is ever signalled, by its PID: SIGTERM, then SIGKILL after a grace period.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use pushbench_common::ProcSample;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::conn::{Endpoint, HttpConn, TlsClient, WireCounters, body_of};
use crate::util::{beside_this_executable, count_fds, guarded, stop_child};

pub use crate::error::{SERVER_BIN, ServerError};
/// What the server prints on stdout once it listens, before `http://` or `https://` and its address.
const READY_PREFIX: &str = "pushbench-server listening on ";
/// How long the server may take to print its address.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Finds the server binary: `explicit` (from `--server-bin` or the environment) if given, else next to the
/// current executable or its parent directory.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ServerError> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(ServerError::NotFound(path.display().to_string()))
        };
    }
    beside_this_executable(SERVER_BIN).map_err(ServerError::NotFound)
}

/// A server the load generator talks to.
#[derive(Debug)]
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its PID, when it runs on this machine and we may sample it.
    pub pid: Option<u32>,
    /// What we hold of it: how it is sampled and stopped.
    process: Process,
    /// TLS to reach it with (`/stats`); `None`: cleartext.
    tls: Option<TlsClient>,
}

/// What the load generator holds of a server.
#[derive(Debug)]
enum Process {
    /// A `pushbench-server` we spawned: stopped by its PID.
    Spawned(Child),
    /// A server running without us (`--target`): left alone.
    Attached,
    /// A peer (nchan, Pushpin) we started: sampled and stopped as a whole process tree.
    Peer(crate::targets::peer::RunningPeer),
}

impl Server {
    /// Spawns `bin --listen HOST:0 <args>`, its stderr going to `log`, and waits for its address.
    pub async fn spawn(
        bin: &Path,
        host: std::net::IpAddr,
        args: &[String],
        log: &Path,
    ) -> Result<Self, ServerError> {
        let shown = bin.display().to_string();
        let log_file = std::fs::File::create(log).map_err(|error| ServerError::Spawn {
            path: log.display().to_string(),
            error,
        })?;
        let mut child = Command::new(bin)
            .arg("--listen")
            .arg(SocketAddr::new(host, 0).to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .map(guarded)
            .map_err(|error| ServerError::Spawn {
                path: shown.clone(),
                error,
            })?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let ready =
            tokio::time::timeout(READY_TIMEOUT, async {
                while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
                    if let Some(addr) = line.trim().strip_prefix(READY_PREFIX).and_then(|url| {
                        url.strip_prefix("https://").or(url.strip_prefix("http://"))
                    }) {
                        return addr
                            .trim_end_matches('/')
                            .parse::<SocketAddr>()
                            .map_err(|e| format!("bad address in {line:?}: {e}"));
                    }
                }
                Err("it exited".to_owned())
            })
            .await;
        let addr = match ready {
            Ok(Ok(addr)) => addr,
            Ok(Err(reason)) => {
                return Err(ServerError::NotReady(
                    shown,
                    format!("{reason} (see {})", log.display()),
                ));
            }
            Err(_) => {
                return Err(ServerError::NotReady(
                    shown,
                    format!("no address within {READY_TIMEOUT:?}"),
                ));
            }
        };
        // Keep draining stdout so that the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            addr,
            pid,
            process: Process::Spawned(child),
            tls: None,
        })
    }

    /// The same server, reached over TLS with `tls` (for its `/stats`).
    pub(crate) fn with_tls(self, tls: Option<TlsClient>) -> Self {
        Self { tls, ..self }
    }

    /// An already running server at `url` (`http://host:port`), sampled through `pid` if given.
    pub async fn target(url: &str, pid: Option<u32>) -> Result<Self, ServerError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| ServerError::BadTarget(url.into(), "must start with http://".into()))?;
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(ServerError::BadTarget(
                url.into(),
                "must not have a path".into(),
            ));
        }
        let addr = tokio::net::lookup_host(authority)
            .await
            .map_err(|e| ServerError::BadTarget(url.into(), e.to_string()))?
            .next()
            .ok_or_else(|| ServerError::BadTarget(url.into(), "resolves to no address".into()))?;
        Ok(Self {
            addr,
            pid,
            process: Process::Attached,
            tls: None,
        })
    }

    /// A peer we started: subscribers connect to its address; all its processes are sampled.
    pub fn peer(peer: crate::targets::peer::RunningPeer) -> Self {
        Self {
            addr: peer.addr,
            pid: None,
            process: Process::Peer(peer),
            tls: None,
        }
    }

    /// The running peer, when the server is one.
    pub fn running_peer(&self) -> Option<&crate::targets::peer::RunningPeer> {
        match &self.process {
            Process::Peer(peer) => Some(peer),
            Process::Spawned(_) | Process::Attached => None,
        }
    }

    /// RSS and CPU of the server process, when it can be sampled.
    pub fn sample(&self) -> Option<ProcSample> {
        if let Some(peer) = self.running_peer() {
            return peer.sample();
        }
        self.pid.and_then(|pid| ProcSample::of_pid(pid).ok())
    }

    /// Open file descriptors of the server process.
    pub fn fds(&self) -> Option<u64> {
        if let Some(peer) = self.running_peer() {
            return peer.fds();
        }
        self.pid.and_then(count_fds)
    }

    /// The server's `/stats` JSON (None if it cannot be read).
    pub async fn stats(&self) -> Option<serde_json::Value> {
        if self.running_peer().is_some() {
            return None;
        }
        let counters = Arc::new(WireCounters::default());
        let endpoint = Endpoint::new(self.addr).with_tls(self.tls.as_ref());
        let (mut conn, _) = HttpConn::open(&endpoint, &counters).await.ok()?;
        let response = tokio::time::timeout(Duration::from_secs(5), conn.get("/stats", &[]))
            .await
            .ok()?
            .ok()?;
        let body = body_of("/stats", response).await.ok()?;
        serde_json::from_slice(&body).ok()
    }

    /// Stops a spawned server: SIGTERM, then SIGKILL after `grace`. A target server is left alone.
    pub async fn stop(self, grace: Duration) {
        match self.process {
            Process::Peer(peer) => peer.stop(grace).await,
            Process::Spawned(child) => stop_child(child, grace).await,
            Process::Attached => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_binary_must_exist() {
        let err = locate(Some(Path::new("/nonexistent/pushbench-server"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pushbench-server"));
    }
}
