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
//!
//! Over TLS (`[client] tls = true`) nginx serves the run's certificate on the same listener, HTTP/1.1
//! or, for `[client] http = "2"`, h2 (`listen … ssl http2`, nginx 1.22's syntax). On h2 the interval
//! poll, long-poll, raw stream and SSE work as on HTTP/1.1 (`loadgen/tests/peers.rs` runs them); the
//! WebSocket is not offered: nginx 1.22.1 has no WebSocket over h2 (RFC 8441's extended CONNECT):
//! its SETTINGS frame carries three parameters, never `SETTINGS_ENABLE_CONNECT_PROTOCOL`, and it
//! refuses a `:protocol` pseudo-header as unknown (`src/http/v2/ngx_http_v2.c`; nginx trac ticket 1992).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pushbench_common::Transport;

use crate::scenario::{HttpVersion, MAX_SUBSCRIBERS_PER_CONNECTION};
use crate::util::{TempDir, free_port, guarded, wait_listening};

use super::{IdleSettings, PeerError, PeerKind, PeerTls, RunningPeer, fill, log_file, whole_secs};

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

/// Why nchan does not serve `transport` to subscribers speaking `http` (its profile drives it on
/// HTTP/1.1), `None` when it does.
pub fn not_offered_over(transport: Transport, http: HttpVersion) -> Option<&'static str> {
    (transport == Transport::Ws && http == HttpVersion::Http2).then_some(
        "nginx 1.22 has no WebSocket over HTTP/2 (RFC 8441 extended CONNECT: its SETTINGS never \
         enable it and it refuses the :protocol pseudo-header, src/http/v2/ngx_http_v2.c; nginx trac \
         ticket 1992)",
    )
}

/// Starts nginx + nchan with our server's keep-alive interval and long-poll hold (`idle`), over TLS when
/// `tls` says so; its stderr and error log go to `log_dir/server-<transport>-nchan*.log`.
pub(super) async fn start(
    log_dir: &Path,
    transport: Transport,
    idle: IdleSettings,
    host: std::net::IpAddr,
    tls: Option<PeerTls<'_>>,
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
    let config = config(dir.path(), addr, idle, tls).replace(
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

/// `nchan.conf` filled in for a prefix directory, the address it listens on, our server's idle settings,
/// and TLS when the run asks for it.
pub fn config(
    prefix: &Path,
    listen: SocketAddr,
    idle: IdleSettings,
    tls: Option<PeerTls<'_>>,
) -> String {
    let (listen_tls, tls_block) = match tls {
        None => ("", String::new()),
        Some(tls) => tls_server_block(tls),
    };
    fill(
        CONFIG,
        &[
            ("PREFIX", prefix.display().to_string()),
            ("HOST", listen.ip().to_string()),
            ("PORT", listen.port().to_string()),
            ("LISTEN_TLS", listen_tls.to_owned()),
            ("TLS", tls_block),
            ("WORKERS", WORKERS.to_string()),
            ("KEEPALIVE_S", whole_secs(idle.keepalive).to_string()),
            (
                "LONGPOLL_HOLD_S",
                whole_secs(idle.longpoll_hold).to_string(),
            ),
        ],
    )
}

/// The `listen` parameters and the `server` block's directives (indented, one per line) that serve the
/// run's certificate.
fn tls_server_block(tls: PeerTls<'_>) -> (&'static str, String) {
    let mut lines = vec![
        "# The run's certificate, which the clients trust. Session tickets are nginx's default: a"
            .to_owned(),
        "# reconnect resumes them unless the scenario turns [client] tls_resumption off."
            .to_owned(),
        format!("ssl_certificate {};", tls.certificate.cert_file().display()),
        format!(
            "ssl_certificate_key {};",
            tls.certificate.key_file().display()
        ),
    ];
    let listen = match tls.http {
        HttpVersion::Http1 => " ssl",
        HttpVersion::Http2 => {
            lines.extend([
                "# As many streams per connection as our server takes (its --h2-max-streams default):".to_owned(),
                "# past nginx's default of 128, subscribers would wait unsubscribed.".to_owned(),
                format!("http2_max_concurrent_streams {MAX_SUBSCRIBERS_PER_CONNECTION};"),
            ]);
            " ssl http2"
        }
    };
    let block: Vec<String> = lines.iter().map(|l| format!("        {l}")).collect();
    (listen, block.join("\n"))
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
            None,
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
    fn filled_config_serves_the_runs_certificate_on_http1_or_h2() {
        let idle = IdleSettings {
            keepalive: Duration::from_secs(15),
            longpoll_hold: Duration::from_secs(30),
        };
        let listen = SocketAddr::from(([127, 0, 0, 1], 8443));
        let certificate = crate::targets::certificate::RunCertificate::new().unwrap();
        let conf = |http| {
            let tls = PeerTls {
                certificate: &certificate,
                http,
            };
            config(Path::new("/tmp/x"), listen, idle, Some(tls))
        };
        // The directives, without the comments (which name `ssl http2` too).
        let directives = |conf: &str| -> String {
            conf.lines()
                .map(|l| l.split('#').next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let cert = format!("ssl_certificate {};", certificate.cert_file().display());
        let key = format!("ssl_certificate_key {};", certificate.key_file().display());
        let h1 = conf(HttpVersion::Http1);
        assert!(
            h1.contains("listen 127.0.0.1:8443 ssl backlog=4096;"),
            "{h1}"
        );
        assert!(h1.contains(&cert) && h1.contains(&key), "{h1}");
        assert!(!directives(&h1).contains("http2"), "{h1}");
        let h2 = conf(HttpVersion::Http2);
        assert!(
            h2.contains("listen 127.0.0.1:8443 ssl http2 backlog=4096;"),
            "{h2}"
        );
        assert!(h2.contains(&cert) && h2.contains(&key), "{h2}");
        assert!(h2.contains("http2_max_concurrent_streams 256;"), "{h2}");
        // The certificate belongs to the server block, before its first location.
        assert_eq!(h2.matches(&cert).count(), 1, "{h2}");
        assert!(h2.find(&cert) < h2.find("location = /pub "), "{h2}");
        // Cleartext: nothing of TLS.
        let clear = config(Path::new("/tmp/x"), listen, idle, None);
        assert!(
            clear.contains("listen 127.0.0.1:8443 backlog=4096;"),
            "{clear}"
        );
        assert!(!directives(&clear).contains("ssl"), "{clear}");
    }

    #[test]
    fn only_the_websocket_is_not_offered_over_h2() {
        for t in Transport::ALL {
            assert_eq!(not_offered_over(t, HttpVersion::Http1), None, "{t}");
            assert_eq!(
                not_offered_over(t, HttpVersion::Http2).is_some(),
                t == Transport::Ws,
                "{t}"
            );
        }
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
