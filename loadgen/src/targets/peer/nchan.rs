//! nchan (Debian `nginx` + `libnginx-mod-nchan`): its profile, and nginx started from
//! `scenarios/peers/nchan.conf` on a free loopback port with a temporary prefix directory.
//!
//! | transport | nchan subscriber | URL | framing |
//! |---|---|---|---|
//! | poll | `intervalpoll`, `nchan_subscriber_first_message oldest` | `GET /poll?id=T` + `If-Modified-Since`/`If-None-Match` from the last `200` | one event per `200`; `304` when none |
//! | longpoll | `longpoll`, `nchan_longpoll_multipart_response raw` | `GET /lp?id=T` + `If-Modified-Since`/`If-None-Match` from the last answer | every waiting event, one per line |
//! | stream | `http-raw-stream` | `GET /stream?id=T` | one event per line |
//! | sse | `eventsource` | `GET /sse?id=T`, `Accept: text/event-stream` | `id:` + `data:` |
//! | ws | `websocket` | `GET /ws?id=T` (upgrade) | one text frame per event |
//!
//! Publish: `POST /pub?id=T` with the event data as body. Several topics: `?id=a,b` (multiplexed).
//!
//! Interval polling, as found on nchan 1.3.6 (curl, and this profile's runs): an `intervalpoll` answer
//! carries one message after the cursor, or `304 Not Modified` at once when there is none. Two settings
//! decide whether it loses messages, both in `nchan.conf`'s `/poll` location:
//! - `nchan_subscriber_first_message oldest`: with `newest` a poll without a cursor asks for "the next
//!   message", which an interval poll never finds: nchan answers `304` without `Last-Modified`/`Etag`,
//!   so the client never gets a cursor and receives nothing. With `oldest` the first cursor-less poll gets
//!   the oldest buffered message (each transport runs on a fresh nginx, so that is the first one
//!   published), and from then on the cursor walks the buffer.
//! - no `nchan_longpoll_multipart_response`: with `raw` multipart on an interval poll, nchan answered
//!   `304` with its `Last-Modified`/`Etag` moved to the newest message, past the unread ones (3 of 3
//!   lost), and `304` again for the same cursor.
//!
//! Long-polling: a hold that ends without a message is answered `408` without `Last-Modified`/`Etag`;
//! the client keeps the cursor it had and asks again at once. With 2 workers nchan 1.3.6 loses messages
//! after such timeouts: about half of a channel's subscribers get none of its later messages, even with
//! a cursor behind buffered ones (with 1 worker, or without timeouts, none are lost). nchan's own loss,
//! measured in `scenarios/peers/README.md` ("Known limits").
//!
//! The client (`clients::peer`) keeps the cursor of the last `200`, asks again at once after a `200`
//! (more may be waiting), and waits for its next tick after a `304`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pushbench_common::Transport;

use crate::util::{TempDir, free_port, guarded, wait_listening};

use super::{IdleSettings, PeerError, PeerKind, RunningPeer, fill, log_file, whole_secs};

/// The nginx config, kept in `scenarios/peers/`.
pub const CONFIG: &str = include_str!("../../../../scenarios/peers/nchan.conf");
/// The nchan module Debian installs.
pub const MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";
/// nginx workers: one per core of these 2-core machines, as in the figures of PEERS.md.
const WORKERS: usize = 2;

pub use crate::clients::dialect::nchan_profile as profile;

/// Whether nginx and the nchan module are installed.
pub fn installed() -> bool {
    Path::new(MODULE).is_file() && which("nginx").is_some()
}

/// Finds `bin` on `PATH` (and in /usr/sbin, where Debian puts nginx).
pub fn which(bin: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/usr/bin"])
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

/// Starts nginx + nchan with our server's keep-alive interval and long-poll hold (`idle`); its stderr and
/// error log go to `log_dir/server-<transport>-nchan*.log`.
pub(super) async fn start(
    log_dir: &Path,
    transport: Transport,
    idle: IdleSettings,
    host: std::net::IpAddr,
) -> Result<RunningPeer, PeerError> {
    if !Path::new(MODULE).is_file() {
        return Err(PeerError::NotInstalled(format!("nchan ({MODULE})")));
    }
    let nginx = which("nginx").ok_or_else(|| PeerError::NotInstalled("nginx".into()))?;
    let io = |what: &str| {
        let what = what.to_owned();
        move |error| PeerError::Start { what, error }
    };
    let dir = TempDir::new("nchan").map_err(io("a temporary directory"))?;
    let port = free_port().map_err(io("a free port"))?;
    let error_log = log_dir.join(format!("server-{transport}-nchan-error.log"));
    let addr = SocketAddr::new(host, port);
    let config = config(dir.path(), addr, idle).replace(
        &format!("error_log {}/error.log", dir.path().display()),
        &format!("error_log {}", error_log.display()),
    );
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config).map_err(io("nginx.conf"))?;
    let stderr = log_file(&log_dir.join(format!("server-{transport}-nchan.log")))?;
    let child = tokio::process::Command::new(&nginx)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(&error_log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
        .map(guarded)
        .map_err(io("nginx"))?;
    let peer = RunningPeer::new(PeerKind::Nchan, addr, addr, vec![child], None, dir);
    let within = Duration::from_secs(10);
    if !wait_listening(addr, within).await {
        return Err(PeerError::NotReady(
            "nginx".into(),
            within,
            error_log.display().to_string(),
        ));
    }
    // Let the workers come up before the baseline RSS is taken.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while peer.pids().len() < 1 + WORKERS && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(peer)
}

/// `nchan.conf` filled in for a prefix directory, the address it listens on, and our server's idle
/// settings.
pub fn config(prefix: &Path, listen: SocketAddr, idle: IdleSettings) -> String {
    fill(
        CONFIG,
        &[
            ("PREFIX", prefix.display().to_string()),
            ("HOST", listen.ip().to_string()),
            ("PORT", listen.port().to_string()),
            ("WORKERS", WORKERS.to_string()),
            ("KEEPALIVE_S", whole_secs(idle.keepalive).to_string()),
            (
                "LONGPOLL_HOLD_S",
                whole_secs(idle.longpoll_hold).to_string(),
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::dialect::Framing;

    #[test]
    fn every_transport_maps_to_its_nchan_subscriber() {
        let p = profile();
        for t in [
            Transport::Poll,
            Transport::LongPoll,
            Transport::Stream,
            Transport::Sse,
            Transport::Ws,
        ] {
            assert!(p.route(t).is_some(), "{t} offered by nchan");
        }
        let poll = p.route(Transport::Poll).unwrap();
        assert_eq!((poll.path, poll.framing), ("/poll", Framing::IntervalPoll));
        let sse = p.route(Transport::Sse).unwrap();
        assert_eq!(sse.framing, Framing::Sse);
        assert_eq!(sse.headers, &[("accept", "text/event-stream")]);
        assert_eq!(
            p.subscribe_path(sse, &["a".into(), "room.1".into()]),
            "/sse?id=a,room.1"
        );
        assert_eq!(p.route(Transport::Stream).unwrap().framing, Framing::Lines);
        assert_eq!(p.route(Transport::LongPoll).unwrap().path, "/lp");
        assert_eq!(
            p.route(Transport::LongPoll).unwrap().framing,
            Framing::LongPoll
        );
        assert_eq!(p.route(Transport::Ws).unwrap().framing, Framing::WebSocket);
    }

    #[test]
    fn filled_config_treats_idle_subscribers_as_our_server() {
        let idle = IdleSettings {
            keepalive: Duration::from_millis(1_500),
            longpoll_hold: Duration::from_millis(2_500),
        };
        let conf = config(
            Path::new("/tmp/x"),
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            idle,
        );
        for line in conf.lines() {
            let directive = line.split('#').next().unwrap_or_default();
            assert!(!directive.contains("{{"), "unfilled: {line}");
        }
        let location = |path: &str| {
            let at = &conf[conf.find(&format!("location = {path} ")).unwrap()..];
            at[..at.find('}').unwrap()].to_owned()
        };
        let sse = location("/sse");
        assert!(sse.contains("nchan_eventsource_ping_interval 2;"), "{sse}");
        assert!(
            sse.contains(r#"nchan_eventsource_ping_comment " heartbeat";"#),
            "{sse}"
        );
        let ws = location("/ws");
        assert!(ws.contains("nchan_websocket_ping_interval 2;"), "{ws}");
        let longpoll = location("/lp");
        assert!(
            longpoll.contains("nchan_subscriber_timeout 3s;"),
            "{longpoll}"
        );
    }

    #[test]
    fn config_has_every_route_and_only_loopback() {
        for path in ["/pub", "/sse", "/ws", "/stream", "/lp", "/poll"] {
            assert!(
                CONFIG.contains(&format!("location = {path} ")),
                "{path} in nchan.conf"
            );
        }
        assert!(CONFIG.contains("nchan_longpoll_multipart_response raw;"));
        // The interval poll starts at the oldest message and answers one message per request (see the
        // module's notes: `newest` or multipart would lose messages).
        let poll = &CONFIG[CONFIG.find("location = /poll ").unwrap()..];
        let poll = &poll[..poll.find('}').unwrap()];
        assert!(poll.contains("nchan_subscriber intervalpoll;"), "{poll}");
        assert!(
            poll.contains("nchan_subscriber_first_message oldest;"),
            "{poll}"
        );
        assert!(
            !poll
                .lines()
                .any(|l| !l.trim_start().starts_with('#') && l.contains("multipart")),
            "{poll}"
        );
        for line in CONFIG
            .lines()
            .filter(|l| l.trim_start().starts_with("listen"))
        {
            assert!(line.contains("{{HOST}}:{{PORT}}"), "{line}");
        }
    }
}
