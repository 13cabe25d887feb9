//! Pushpin (Debian `pushpin`, with condure and zurl): its profile, its processes, and the tiny GRIP
//! backend that lives inside the load generator.
//!
//! Pushpin is a proxy: a subscribe request goes to a backend, whose answer holds the connection open
//! and names channels with GRIP headers. Our backend ([`backend`]) is a small hyper handler on a loopback
//! port of the load generator, not another program:
//!
//! | transport | request | backend answer | published format |
//! |---|---|---|---|
//! | stream | `GET /stream?topic=T` | `Grip-Hold: stream`, `Grip-Channel: T`, `text/plain` | `http-stream`, `"<data>\n"` |
//! | sse | `GET /sse?topic=T` | the same, `text/event-stream` | `http-stream`, `"data: <data>\n\n"` |
//! | ws | WebSocket, forwarded as WebSocket-over-HTTP `POST /ws?topic=T` | `OPEN` + `c:{"type":"subscribe","channel":T}` | `ws-message` |
//! | longpoll | — | not profiled: GRIP long-polls lose what is published between two requests unless the backend keeps its own message log (`Grip-Last`, `prev-id`) | |
//! | poll | — | not offered: Pushpin pushes; a poll would just be proxied to the backend | |
//!
//! Publish: `POST /publish/` on the handler's HTTP port with `{"items":[{"channel":T,"formats":{..}}]}`.
//! Processes: `pushpin --config` (its runner starts condure, pushpin-proxy and pushpin-handler) and
//! `zurl`, which we start ourselves (the stock services line does not), all with sockets in a temporary
//! directory. Config: `scenarios/peers/pushpin.conf`, `pushpin.routes`, `zurl.conf` (compiled in).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use pushbench_common::Transport;

use super::{
    Framing, Offer, PeerError, PeerKind, Profile, Route, RunningPeer, TempDir, fill, free_port,
    log_file, nchan::which, wait_listening,
};

/// Pushpin's config, kept in `scenarios/peers/`.
pub const CONFIG: &str = include_str!("../../../scenarios/peers/pushpin.conf");
/// Its routes file: everything to our backend.
pub const ROUTES: &str = include_str!("../../../scenarios/peers/pushpin.routes");
/// zurl's config.
pub const ZURL_CONFIG: &str = include_str!("../../../scenarios/peers/zurl.conf");

/// Pushpin's profile.
pub fn profile() -> Profile {
    let route = |path, framing| {
        Offer::Offered(Route {
            path,
            headers: &[],
            framing,
        })
    };
    Profile {
        kind: PeerKind::Pushpin,
        offers: vec![
            (Transport::Poll, Offer::NotOffered),
            (
                Transport::LongPoll,
                Offer::NotProfiled(
                    "GRIP long-polls need a backend message log (Grip-Last/prev-id) to lose nothing between requests",
                ),
            ),
            (Transport::Stream, route("/stream", Framing::Lines)),
            (Transport::Sse, route("/sse", Framing::Sse)),
            (Transport::Ws, route("/ws", Framing::WebSocket)),
        ],
    }
}

/// Whether Pushpin, condure and zurl are installed.
pub fn installed() -> bool {
    ["pushpin", "condure", "zurl"]
        .iter()
        .all(|b| which(b).is_some())
}

/// The publish request body for one event on `transport`.
pub fn publish_body(transport: Transport, channel: &str, data: &str) -> String {
    let formats = match transport {
        Transport::Sse => {
            serde_json::json!({"http-stream": {"content": format!("data: {data}\n\n")}})
        }
        Transport::Ws => serde_json::json!({"ws-message": {"content": data}}),
        _ => serde_json::json!({"http-stream": {"content": format!("{data}\n")}}),
    };
    serde_json::json!({"items": [{"channel": channel, "formats": formats}]}).to_string()
}

/// Starts the GRIP backend, zurl and Pushpin; logs go to `log_dir/server-<transport>-pushpin*.log`.
pub(super) async fn start(log_dir: &Path, transport: Transport) -> Result<RunningPeer, PeerError> {
    let pushpin = which("pushpin").ok_or_else(|| PeerError::NotInstalled("pushpin".into()))?;
    let zurl = which("zurl").ok_or_else(|| PeerError::NotInstalled("zurl".into()))?;
    if which("condure").is_none() {
        return Err(PeerError::NotInstalled("condure".into()));
    }
    let io = |what: &str| {
        let what = what.to_owned();
        move |error| PeerError::Start { what, error }
    };
    let dir = TempDir::new("pushpin").map_err(io("a temporary directory"))?;
    std::fs::create_dir_all(dir.path().join("log")).map_err(io("the log directory"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io("the GRIP backend"))?;
    let backend_port = listener
        .local_addr()
        .map_err(io("the GRIP backend"))?
        .port();
    let backend = tokio::spawn(backend(listener));
    let (http_port, publish_port) = (
        free_port().map_err(io("a free port"))?,
        free_port().map_err(io("a free port"))?,
    );
    let values = [
        ("RUNDIR", dir.path().display().to_string()),
        ("HTTP_PORT", http_port.to_string()),
        ("PUBLISH_PORT", publish_port.to_string()),
        ("BACKEND_PORT", backend_port.to_string()),
    ];
    let conf = dir.path().join("pushpin.conf");
    std::fs::write(&conf, fill(CONFIG, &values)).map_err(io("pushpin.conf"))?;
    std::fs::write(dir.path().join("routes"), fill(ROUTES, &values)).map_err(io("routes"))?;
    let zurl_conf = dir.path().join("zurl.conf");
    std::fs::write(&zurl_conf, fill(ZURL_CONFIG, &values)).map_err(io("zurl.conf"))?;

    let spawn = |bin: &Path, args: Vec<std::ffi::OsString>, log: &str| {
        let out = log_file(&log_dir.join(log))?;
        let err = out.try_clone().map_err(io(log))?;
        tokio::process::Command::new(bin)
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(io(&bin.display().to_string()))
    };
    let zurl_child = spawn(
        &zurl,
        vec![format!("--config={}", zurl_conf.display()).into()],
        &format!("server-{transport}-pushpin-zurl.log"),
    )?;
    let pushpin_child = spawn(
        &pushpin,
        vec![
            format!("--config={}", conf.display()).into(),
            "--merge-output".into(),
        ],
        &format!("server-{transport}-pushpin.log"),
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], http_port));
    let publish_addr = SocketAddr::from(([127, 0, 0, 1], publish_port));
    let peer = RunningPeer::new(
        PeerKind::Pushpin,
        addr,
        publish_addr,
        vec![pushpin_child, zurl_child],
        Some(backend),
        dir,
    );
    let within = Duration::from_secs(15);
    let log = log_dir.join(format!("server-{transport}-pushpin.log"));
    for a in [addr, publish_addr] {
        if !wait_listening(a, within).await {
            return Err(PeerError::NotReady(
                "pushpin".into(),
                within,
                log.display().to_string(),
            ));
        }
    }
    // condure, proxy and handler each take a moment after the ports open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(peer)
}

/// The GRIP backend: accepts connections from Pushpin until aborted.
async fn backend(listener: tokio::net::TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|req| async move {
                Ok::<_, Infallible>(grip_answer(req).await)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// The topics of a backend request (`?topic=a&topic=b`).
pub fn topics_of(query: Option<&str>) -> Vec<String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.strip_prefix("topic="))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn grip_answer(req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let topics = topics_of(req.uri().query());
    let path = req.uri().path().to_owned();
    let is_ws_over_http = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/websocket-events"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (status, headers, body) = grip_response(&path, &topics, is_ws_over_http, &body);
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(name, value);
    }
    response
        .body(Full::new(Bytes::from(body)))
        .expect("valid response parts")
}

/// The backend's answer (status, headers, body) to one request: pure, so it is unit-tested.
pub fn grip_response(
    path: &str,
    topics: &[String],
    ws_over_http: bool,
    body: &[u8],
) -> (StatusCode, Vec<(&'static str, String)>, Vec<u8>) {
    if topics.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            vec![],
            b"name at least one topic\n".to_vec(),
        );
    }
    match (path, ws_over_http) {
        ("/ws", true) => {
            let mut out = Vec::new();
            if body.starts_with(b"OPEN") {
                out.extend_from_slice(b"OPEN\r\n");
                for t in topics {
                    let msg = format!("c:{{\"type\":\"subscribe\",\"channel\":\"{t}\"}}");
                    out.extend_from_slice(format!("TEXT {:x}\r\n{msg}\r\n", msg.len()).as_bytes());
                }
            } else if body.windows(5).any(|w| w == b"CLOSE") {
                out.extend_from_slice(b"CLOSE\r\n");
            }
            (
                StatusCode::OK,
                vec![
                    ("content-type", "application/websocket-events".into()),
                    ("sec-websocket-extensions", "grip".into()),
                ],
                out,
            )
        }
        ("/sse" | "/stream", false) => {
            let content_type = if path == "/sse" {
                "text/event-stream"
            } else {
                "text/plain"
            };
            (
                StatusCode::OK,
                vec![
                    ("content-type", content_type.into()),
                    ("cache-control", "no-cache".into()),
                    ("grip-hold", "stream".into()),
                    ("grip-channel", topics.join(", ")),
                ],
                Vec::new(),
            )
        }
        _ => (
            StatusCode::NOT_FOUND,
            vec![],
            b"no such endpoint\n".to_vec(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_is_honest_about_what_is_not_driven() {
        let p = profile();
        assert_eq!(p.offer(Transport::Poll), &Offer::NotOffered);
        assert!(matches!(
            p.offer(Transport::LongPoll),
            Offer::NotProfiled(_)
        ));
        assert_eq!(p.route(Transport::Sse).unwrap().framing, Framing::Sse);
        assert_eq!(p.route(Transport::Stream).unwrap().framing, Framing::Lines);
        assert_eq!(p.route(Transport::Ws).unwrap().framing, Framing::WebSocket);
        assert_eq!(
            p.subscribe_path(p.route(Transport::Sse).unwrap(), &["a".into(), "b".into()]),
            "/sse?topic=a&topic=b"
        );
    }

    #[test]
    fn publish_bodies_carry_the_transport_format() {
        let v: serde_json::Value =
            serde_json::from_str(&publish_body(Transport::Sse, "all", "1 2 x")).unwrap();
        assert_eq!(v["items"][0]["channel"], "all");
        assert_eq!(
            v["items"][0]["formats"]["http-stream"]["content"],
            "data: 1 2 x\n\n"
        );
        let v: serde_json::Value =
            serde_json::from_str(&publish_body(Transport::Stream, "t", "1 2 x")).unwrap();
        assert_eq!(
            v["items"][0]["formats"]["http-stream"]["content"],
            "1 2 x\n"
        );
        let v: serde_json::Value =
            serde_json::from_str(&publish_body(Transport::Ws, "t", "1 2 x")).unwrap();
        assert_eq!(v["items"][0]["formats"]["ws-message"]["content"], "1 2 x");
    }

    #[test]
    fn backend_holds_streams_on_the_named_channels() {
        let topics = topics_of(Some("topic=a&topic=room.2"));
        assert_eq!(topics, vec!["a".to_owned(), "room.2".to_owned()]);
        let (status, headers, body) = grip_response("/sse", &topics, false, b"");
        assert_eq!(status, StatusCode::OK);
        assert!(headers.contains(&("grip-hold", "stream".into())));
        assert!(headers.contains(&("grip-channel", "a, room.2".into())));
        assert!(headers.contains(&("content-type", "text/event-stream".into())));
        assert!(body.is_empty());
        let (status, _, _) = grip_response("/sse", &[], false, b"");
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn backend_subscribes_websockets_over_http() {
        let (status, headers, body) = grip_response("/ws", &["all".into()], true, b"OPEN\r\n");
        assert_eq!(status, StatusCode::OK);
        assert!(headers.contains(&("sec-websocket-extensions", "grip".into())));
        let msg = r#"c:{"type":"subscribe","channel":"all"}"#;
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!("OPEN\r\nTEXT {:x}\r\n{msg}\r\n", msg.len())
        );
        let (_, _, body) = grip_response("/ws", &["all".into()], true, b"CLOSE\r\n");
        assert_eq!(body, b"CLOSE\r\n");
    }
}
