//! Socket.IO (npm `socket.io` 4 on Node): its profile, and `scenarios/peers/socketio/server.js` started
//! with Node on a free loopback port.
//!
//! | transport | Socket.IO | URL | framing |
//! |---|---|---|---|
//! | poll | not offered: Engine.IO's only HTTP transport holds the GET until a packet waits | | |
//! | longpoll | Engine.IO long-polling | `GET /socket.io/?EIO=4&transport=polling`, then `POST`/`GET ..&sid=S` | packets separated by `\x1e` |
//! | stream | not offered: no streamed-body transport | | |
//! | sse | not offered: no EventSource transport | | |
//! | ws | Engine.IO WebSocket, opened directly (no upgrade from long-polling) | `GET /socket.io/?EIO=4&transport=websocket` | one packet per frame |
//!
//! The client side (handshake, connect packet with the topics, pings, recovery) is `clients::socketio`.
//! The script joins one room per topic and has connection-state recovery on, keeping a disconnected
//! session [`MAX_DISCONNECTION`]; the server pings every interval at our server's heartbeat interval
//! (`IdleSettings::keepalive`, in ms), busy or idle, as nchan pings its WebSockets. On long-polling that
//! ping also ends a held GET: Socket.IO has no hold timeout of its own, so its long-polls are held for the
//! heartbeat interval, not for the scenario's `[longpoll] timeout_ms`.
//!
//! Publish: `POST /publish?topic=T` with the event data as the body, on the same port (the script emits
//! it to room T). Process: one `node`, whose RSS and CPU are the peer's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pushbench_common::Transport;

use crate::util::{TempDir, free_port, guarded, wait_listening};

use super::{IdleSettings, PeerError, PeerKind, RunningPeer, log_file, nchan::which};

/// The script's directory in this checkout: `server.js`, its `package.json` and the `node_modules`
/// that `scripts/setup-peers` installs there (`npm ci`). Node needs the files on disk, so unlike the
/// other peers' configs they are not compiled in.
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/peers/socketio");
/// How long the server keeps a disconnected session for recovery: the documentation's example (2 min),
/// far longer than a churn reconnect takes.
pub const MAX_DISCONNECTION: Duration = Duration::from_secs(120);

pub use crate::clients::dialect::socketio_profile as profile;

/// Node, as Debian names it (`node`, or `nodejs` on older releases).
fn node() -> Option<PathBuf> {
    which("node").or_else(|| which("nodejs"))
}

/// Whether Node and the script's socket.io package are installed.
pub fn installed() -> bool {
    node().is_some() && modules().is_file()
}

/// socket.io's package file in the script's `node_modules`.
fn modules() -> PathBuf {
    Path::new(DIR).join("node_modules/socket.io/package.json")
}

/// The script's arguments: host, port, ping interval (ms) and how long a session is kept (ms).
pub fn args(listen: SocketAddr, idle: IdleSettings) -> Vec<String> {
    vec![
        Path::new(DIR).join("server.js").display().to_string(),
        listen.ip().to_string(),
        listen.port().to_string(),
        (idle.keepalive.as_millis().max(1)).to_string(),
        MAX_DISCONNECTION.as_millis().to_string(),
    ]
}

/// Starts the script with our server's keep-alive interval as its ping interval (`idle`); its output
/// goes to `log_dir/server-<transport>-socketio.log`.
pub(super) async fn start(
    log_dir: &Path,
    transport: Transport,
    idle: IdleSettings,
    host: std::net::IpAddr,
) -> Result<RunningPeer, PeerError> {
    let node = node().ok_or_else(|| PeerError::NotInstalled("node".into()))?;
    if !modules().is_file() {
        return Err(PeerError::NotInstalled(format!(
            "socket.io (npm, in {DIR}/node_modules)"
        )));
    }
    let io = |what: &str| {
        let what = what.to_owned();
        move |error| PeerError::Start { what, error }
    };
    // The script writes nothing; the directory keeps the peers' shape (and is node's working directory).
    let dir = TempDir::new("socketio").map_err(io("a temporary directory"))?;
    let addr = SocketAddr::new(host, free_port().map_err(io("a free port"))?);
    let log_path = log_dir.join(format!("server-{transport}-socketio.log"));
    let out = log_file(&log_path)?;
    let err = out.try_clone().map_err(io("the log file"))?;
    let child = tokio::process::Command::new(&node)
        .args(args(addr, idle))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .map(guarded)
        .map_err(io(&node.display().to_string()))?;
    let peer = RunningPeer::new(PeerKind::SocketIo, addr, addr, vec![child], None, dir);
    let within = Duration::from_secs(15);
    if !wait_listening(addr, within).await {
        return Err(PeerError::NotReady(
            "socket.io".into(),
            within,
            log_path.display().to_string(),
        ));
    }
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_gets_our_heartbeat_as_its_ping_interval() {
        let idle = IdleSettings {
            keepalive: Duration::from_millis(1_500),
            longpoll_hold: Duration::from_secs(30),
        };
        let args = args(SocketAddr::from(([127, 0, 0, 1], 8080)), idle);
        assert!(
            args[0].ends_with("scenarios/peers/socketio/server.js"),
            "{args:?}"
        );
        assert_eq!(&args[1..], ["127.0.0.1", "8080", "1500", "120000"]);
        assert!(Path::new(&args[0]).is_file(), "{} is shipped", args[0]);
    }

    #[test]
    fn the_script_enables_recovery_and_one_room_per_topic() {
        let script = std::fs::read_to_string(Path::new(DIR).join("server.js")).unwrap();
        assert!(script.contains("connectionStateRecovery: {"), "{script}");
        assert!(script.contains("maxDisconnectionDuration: Number(maxDisconnectionDuration)"));
        assert!(script.contains("pingInterval: Number(pingInterval)"));
        assert!(script.contains("socket.join(topics)"));
        assert!(script.contains("io.to(topic).emit(\"event\""));
        let package: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(Path::new(DIR).join("package.json")).unwrap(),
        )
        .unwrap();
        assert!(
            package["dependencies"]["socket.io"]
                .as_str()
                .is_some_and(|v| v.starts_with('4')),
            "{package}"
        );
    }
}
