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
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pushbench_common::ProcSample;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::conn::{Endpoint, HttpConn, TlsClient, WireCounters, body_of};
use crate::util::{beside_this_executable, count_fds, guarded, stop_child};

pub use crate::error::{SERVER_BIN, ServerError};
/// What the server (or the floor reference) prints on stdout once it listens, after its name and before
/// `http://` or `https://` and its address.
const READY_MARK: &str = " listening on ";
/// How long the server may take to print its address.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Finds the server binary: `explicit` (from `--server-bin` or the environment) if given, else next to the
/// current executable or its parent directory.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ServerError> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(ServerError::NotFound(
                SERVER_BIN,
                path.display().to_string(),
            ))
        };
    }
    beside_this_executable(SERVER_BIN).map_err(|looked| ServerError::NotFound(SERVER_BIN, looked))
}

/// A server the load generator talks to.
#[derive(Debug)]
pub struct Server {
    /// Where it listens (a restarted server listens there again).
    pub addr: SocketAddr,
    /// What we hold of it: how it is sampled, stopped and restarted.
    process: Process,
    /// TLS to reach it with (`/stats`); `None`: cleartext.
    tls: Option<TlsClient>,
}

/// What the load generator holds of a server.
#[derive(Debug)]
enum Process {
    /// A `pushbench-server` we spawned: stopped by its PID, and restarted or killed by `[faults]`.
    Spawned(Spawned),
    /// A server running without us (`--target`), sampled through its PID if given: left alone.
    Attached(Option<u32>),
    /// A peer (nchan, Pushpin) we started: sampled and stopped as a whole process tree.
    Peer(crate::targets::peer::RunningPeer),
    /// A server started from a target profile: sampled and stopped as a whole process tree.
    Profiled(crate::targets::profiled::Started),
}

/// A spawned server and what it takes to start it again. Faults restart or kill it while the rest of
/// the run samples it, hence the locks.
#[derive(Debug)]
struct Spawned {
    bin: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    /// The running incarnation; `None` once killed.
    child: tokio::sync::Mutex<Option<Child>>,
    /// Its PID; 0 once killed.
    pid: AtomicU32,
    /// CPU time of the incarnations stopped so far (their last sample), so that CPU over a window
    /// that spans a restart still counts what they spent.
    earlier_cpu: std::sync::Mutex<Duration>,
}

impl Spawned {
    /// Starts `bin --listen <listen> <args>` with its stderr appended to `log`, waits for its address.
    async fn launch(&self, listen: SocketAddr) -> Result<(Child, SocketAddr), ServerError> {
        let shown = self.bin.display().to_string();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|error| ServerError::Spawn {
                path: self.log.display().to_string(),
                error,
            })?;
        let mut child = Command::new(&self.bin)
            .arg("--listen")
            .arg(listen.to_string())
            .args(&self.args)
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
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
                if let Some(addr) = line.trim().split_once(READY_MARK).and_then(|(_, url)| {
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
                    format!("{reason} (see {})", self.log.display()),
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
        Ok((child, addr))
    }

    fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Relaxed)).filter(|&p| p != 0)
    }

    /// Adds the running incarnation's CPU so far to the earlier incarnations'.
    fn carry_cpu(&self) {
        if let Some(sample) = self.pid().and_then(|pid| ProcSample::of_pid(pid).ok()) {
            *self.earlier_cpu.lock().unwrap_or_else(|p| p.into_inner()) += sample.cpu;
        }
    }
}

impl Server {
    /// Spawns `bin --listen HOST:0 <args>`, its stderr going to `log`, and waits for its address.
    pub async fn spawn(
        bin: &Path,
        host: std::net::IpAddr,
        args: &[String],
        log: &Path,
    ) -> Result<Self, ServerError> {
        // A fresh log per transport; restarts append to it.
        std::fs::File::create(log).map_err(|error| ServerError::Spawn {
            path: log.display().to_string(),
            error,
        })?;
        let mut spawned = Spawned {
            bin: bin.to_owned(),
            args: args.to_vec(),
            log: log.to_owned(),
            child: tokio::sync::Mutex::new(None),
            pid: AtomicU32::new(0),
            earlier_cpu: std::sync::Mutex::new(Duration::ZERO),
        };
        let (child, addr) = spawned.launch(SocketAddr::new(host, 0)).await?;
        spawned
            .pid
            .store(child.id().unwrap_or(0), Ordering::Relaxed);
        *spawned.child.get_mut() = Some(child);
        Ok(Self {
            addr,
            process: Process::Spawned(spawned),
            tls: None,
        })
    }

    /// Restarts a spawned server as a deploy does: SIGTERM (its graceful shutdown, up to `grace`), then
    /// the same command again on the same address. Returns how long it did not listen: from the signal
    /// until the new one printed its address.
    pub(crate) async fn restart(&self, grace: Duration) -> Result<Duration, ServerError> {
        let Process::Spawned(spawned) = &self.process else {
            return Err(ServerError::NotRestartable);
        };
        let mut child = spawned.child.lock().await;
        let began = Instant::now();
        if let Some(running) = child.take() {
            spawned.carry_cpu();
            stop_child(running, grace).await;
        }
        spawned.pid.store(0, Ordering::Relaxed);
        let (new, _) = spawned.launch(self.addr).await?;
        spawned.pid.store(new.id().unwrap_or(0), Ordering::Relaxed);
        *child = Some(new);
        Ok(began.elapsed())
    }

    /// Kills a spawned server with SIGKILL, as a crashed machine would end it, and leaves it dead.
    pub(crate) async fn kill(&self) -> Result<(), ServerError> {
        let Process::Spawned(spawned) = &self.process else {
            return Err(ServerError::NotRestartable);
        };
        let mut child = spawned.child.lock().await;
        if let Some(mut running) = child.take() {
            spawned.carry_cpu();
            let _ = running.kill().await;
        }
        spawned.pid.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Its PID, when it runs on this machine and we may sample it.
    pub fn pid(&self) -> Option<u32> {
        match &self.process {
            Process::Spawned(spawned) => spawned.pid(),
            Process::Attached(pid) => *pid,
            Process::Peer(_) | Process::Profiled(_) => None,
        }
    }

    /// The same server, reached over TLS with `tls` (for its `/stats`).
    pub(crate) fn with_tls(self, tls: Option<TlsClient>) -> Self {
        Self { tls, ..self }
    }

    /// An already running server at `url` (`http://host:port` or `https://host:port`), sampled
    /// through `pid` if given.
    pub async fn target(url: &str, pid: Option<u32>) -> Result<Self, ServerError> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| {
                ServerError::BadTarget(url.into(), "must start with http:// or https://".into())
            })?;
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
            process: Process::Attached(pid),
            tls: None,
        })
    }

    /// A peer we started: subscribers connect to its address; all its processes are sampled.
    pub fn peer(peer: crate::targets::peer::RunningPeer) -> Self {
        Self {
            addr: peer.addr,
            process: Process::Peer(peer),
            tls: None,
        }
    }

    /// A server started from a target profile: sampled as its process tree.
    pub fn profiled(started: crate::targets::profiled::Started) -> Self {
        Self {
            addr: started.addr,
            process: Process::Profiled(started),
            tls: None,
        }
    }

    /// The running peer, when the server is one.
    pub fn running_peer(&self) -> Option<&crate::targets::peer::RunningPeer> {
        match &self.process {
            Process::Peer(peer) => Some(peer),
            Process::Spawned(_) | Process::Attached(_) | Process::Profiled(_) => None,
        }
    }

    /// RSS and CPU of the server process, when it can be sampled; a spawned server's CPU includes its
    /// earlier incarnations', and one killed by a fault samples as no memory and the CPU it had spent.
    pub fn sample(&self) -> Option<ProcSample> {
        match &self.process {
            Process::Peer(peer) => peer.sample(),
            Process::Profiled(started) => started.sample(),
            Process::Attached(pid) => pid.and_then(|pid| ProcSample::of_pid(pid).ok()),
            Process::Spawned(spawned) => {
                let earlier = *spawned
                    .earlier_cpu
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let now = match spawned.pid() {
                    Some(pid) => ProcSample::of_pid(pid).ok()?,
                    None => ProcSample {
                        rss_bytes: 0,
                        cpu: Duration::ZERO,
                    },
                };
                Some(ProcSample {
                    cpu: now.cpu + earlier,
                    ..now
                })
            }
        }
    }

    /// Open file descriptors of the server process.
    pub fn fds(&self) -> Option<u64> {
        match &self.process {
            Process::Peer(peer) => peer.fds(),
            Process::Profiled(started) => started.fds(),
            Process::Spawned(_) | Process::Attached(_) => self.pid().and_then(count_fds),
        }
    }

    /// The server's `/stats` JSON (None if it cannot be read).
    pub async fn stats(&self) -> Option<serde_json::Value> {
        if matches!(self.process, Process::Peer(_) | Process::Profiled(_)) {
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
            Process::Profiled(started) => started.stop(grace).await,
            Process::Spawned(spawned) => {
                if let Some(child) = spawned.child.into_inner() {
                    stop_child(child, grace).await;
                }
            }
            Process::Attached(_) => {}
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
