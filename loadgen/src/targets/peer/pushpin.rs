//! Pushpin (Debian `pushpin`, with condure and zurl): its profile, its processes, and the tiny GRIP
//! backend that lives inside the load generator.
//!
//! Pushpin is a proxy: a subscribe request goes to a backend, whose answer holds the connection open
//! and names channels with GRIP headers. Our backend (`backend`) is a small hyper handler on a loopback
//! port of the load generator, not another program:
//!
//! | transport | request | backend answer | published format |
//! |---|---|---|---|
//! | stream | `GET /stream?topic=T` | `Grip-Hold: stream`, `Grip-Channel: T`, `text/plain`, `Grip-Keep-Alive` (our heartbeat line) | `http-stream`, `"<data>\n"` |
//! | sse | `GET /sse?topic=T` | the same, `text/event-stream`, `Grip-Keep-Alive` (`: heartbeat` comment) | `http-stream`, `"data: <data>\n\n"` |
//! | ws | WebSocket, forwarded as WebSocket-over-HTTP `POST /ws?topic=T` | `OPEN` + `c:{"type":"subscribe","channel":T}` + `c:{"type":"keep-alive",...}` (ping frames) | `ws-message` |
//! | longpoll | `GET /lp?topic=T` once (answered at once with the cursor, `Pushbench-Cursor: T=<newest id>`), then `GET /lp?topic=T&after=T=<id>` | from the backend's [`MessageLog`]: every event after the cursor at once (one per line, the cursor after them), else `Grip-Hold: response`, `Grip-Channel: T; prev-id=<last id on T>`, `Grip-Timeout: <the scenario's long-poll timeout, s>` | `http-response` with `id`/`prev-id`, body `"<data>\n"`, `Pushbench-Cursor: T=<id>` |
//! | poll | — | not offered: Pushpin pushes; a poll would just be proxied to the backend | |
//!
//! Long-polling loses nothing between requests because the backend keeps a [`MessageLog`] (the publisher
//! appends each event before publishing it): a long-poll with a cursor is answered from the log when newer
//! events are there, and a publish that races the hold (after the backend's answer, before Pushpin holds
//! the request) makes Pushpin ask the backend again, which then answers from the log (forced in
//! `loadgen/tests/peers.rs`; Pushpin 1.36.0 asked again about 1.1 s later). On several topics per
//! subscriber events can arrive out of order, and the last event of a channel that raced a hold can wait
//! for the hold timeout (scenarios/peers/README.md, "Known limits").
//!
//! Idle subscribers: a long-poll is held as long as our server holds it (the scenario's `[longpoll]
//! timeout_ms`, in whole seconds, rounded up). Keep-alives: the backend asks Pushpin for the keep-alive our
//! server sends idle subscribers, at the scenario's heartbeat interval in whole seconds: on streams and
//! SSE after that long without a write (`Grip-Keep-Alive`, in Pushpin's default idle mode, as ours), on
//! WebSockets a ping frame every interval (as nchan; ours pings only after an idle interval).

//! Over TLS (`[client] tls = true`) Pushpin listens with `https_ports` instead of `http_port`, and its
//! runner has condure serve the run's certificate, copied into the certificates directory beside the
//! config (`runner/certs/default_<port>.crt` and `.key`). HTTP/1.1 only: h2 is not offered, as condure
//! 1.9 speaks HTTP/1 and WebSocket alone (its README: HTTP/2 is a future plan) and negotiates no ALPN.
//! The publish API stays cleartext on loopback: it is the application back end's port, not the clients'.
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
use pushbench_common::wire::{SSE_HEARTBEAT, STREAM_HEARTBEAT};

use crate::clients::dialect::{CURSOR_HEADER, Cursor, format_cursor, parse_cursor};
use crate::scenario::HttpVersion;
use crate::util::{TempDir, free_port, guarded, wait_listening};

use super::{
    IdleSettings, PeerError, PeerKind, PeerTls, RunningPeer, fill, log_file, nchan::which,
    whole_secs,
};

/// Pushpin's config, kept in `scenarios/peers/`.
pub const CONFIG: &str = include_str!("../../../../scenarios/peers/pushpin.conf");
/// Its routes file: everything to our backend.
pub const ROUTES: &str = include_str!("../../../../scenarios/peers/pushpin.routes");
/// zurl's config.
pub const ZURL_CONFIG: &str = include_str!("../../../../scenarios/peers/zurl.conf");

pub use crate::clients::dialect::pushpin_profile as profile;

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

/// The publish request body for one long-poll event: an `http-response` that ends a held long-poll with
/// the event's data as one line and `<channel>=<id>` as the client's cursor on that channel
/// (`Pushbench-Cursor`), with the GRIP sequence ids `id` / `prev-id` (the previous log id on the same
/// channel, 0 before its first) that let Pushpin order the channel's messages and notice a gap.
pub fn publish_longpoll_body(channel: &str, id: u64, prev_id: u64, data: &str) -> String {
    let item = serde_json::json!({
        "channel": channel,
        "id": id.to_string(),
        "prev-id": prev_id.to_string(),
        "formats": {"http-response": {
            "code": 200,
            "headers": {"Content-Type": "text/plain", CURSOR_HEADER: format!("{channel}={id}")},
            "body": format!("{data}\n"),
        }},
    });
    serde_json::json!({"items": [item]}).to_string()
}

/// The GRIP backend's message log, as a real backend keeps one in its database: the publisher appends
/// each long-poll event here **before** publishing it to Pushpin, so that a long-poll carrying a cursor is
/// answered from the log at once when newer events are there, and otherwise held with each channel's
/// `prev-id` (the last log id on it, 0 before its first event, so that every hold and every publish carries
/// one). Log ids are increasing, starting at 1; the cursor is kept **per channel**: Pushpin delivers the
/// first event published on any channel of a held request, and an event of another channel published just
/// before may have missed the hold (it raced it), so one global cursor could step over it.
#[derive(Debug, Default)]
pub struct MessageLog {
    inner: std::sync::Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    /// `(topic, data)`; the log id is the index + 1.
    entries: Vec<(String, String)>,
    /// The last log id per topic.
    last: std::collections::HashMap<String, u64>,
}

/// What the backend does with a long-poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogAnswer {
    /// No cursor yet: answer at once with the current one (the newest id per channel), as a page learns
    /// where to start; the client then asks with it.
    Head(Cursor),
    /// Answer at once: the data of every later event on the topics, in log order, and the cursor after them.
    Events(Vec<String>, Cursor),
    /// Nothing later: hold on the topics with these `prev-id`s; the timeout answer keeps the cursor.
    Hold(Vec<u64>, Cursor),
}

impl MessageLog {
    /// Appends an event; returns its id and the previous id on the same topic (0 for its first).
    pub fn append(&self, topic: &str, data: &str) -> (u64, u64) {
        let mut log = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        log.entries.push((topic.to_owned(), data.to_owned()));
        let id = log.entries.len() as u64;
        let prev = log.last.insert(topic.to_owned(), id).unwrap_or(0);
        (id, prev)
    }

    /// The answer to a long-poll on `topics` with `cursor` (None: none yet).
    pub fn answer(&self, topics: &[String], cursor: Option<&Cursor>) -> LogAnswer {
        let log = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let last = |t: &String| log.last.get(t).copied().unwrap_or(0);
        let Some(cursor) = cursor else {
            return LogAnswer::Head(topics.iter().map(|t| (t.clone(), last(t))).collect());
        };
        // A channel the cursor does not name is read from its start.
        let mut next: Cursor = topics
            .iter()
            .map(|t| (t.clone(), cursor.get(t).copied().unwrap_or(0)))
            .collect();
        let from = next.values().copied().min().unwrap_or(0) as usize;
        let mut data = Vec::new();
        for (i, (topic, d)) in log.entries.iter().enumerate().skip(from) {
            let id = i as u64 + 1;
            if let Some(seen) = next.get_mut(topic)
                && id > *seen
            {
                *seen = id;
                data.push(d.clone());
            }
        }
        if data.is_empty() {
            LogAnswer::Hold(topics.iter().map(last).collect(), next)
        } else {
            LogAnswer::Events(data, next)
        }
    }
}

/// Why Pushpin does not serve its transports to subscribers speaking `http`, `None` when it does.
pub fn not_offered_over(http: HttpVersion) -> Option<&'static str> {
    (http == HttpVersion::Http2).then_some(
        "Pushpin's condure 1.9 speaks HTTP/1 and WebSocket only (its README lists HTTP/2 under \
         future plans) and negotiates no ALPN",
    )
}

/// The runner's listen line (`{{LISTEN}}` of `pushpin.conf`): `http_port`, or `https_ports` over TLS.
pub fn listen_line(host: std::net::IpAddr, port: u16, tls: bool) -> String {
    let key = if tls { "https_ports" } else { "http_port" };
    format!("{key}={}", SocketAddr::new(host, port))
}

/// Copies the run's certificate and key to where Pushpin's runner points condure for a TLS listener on
/// `port`: `runner/certs/default_<port>.crt` and `.key` beside the config in `config_dir`.
fn install_certificate(
    config_dir: &Path,
    port: u16,
    tls: PeerTls<'_>,
) -> Result<(), std::io::Error> {
    let certs = config_dir.join("runner").join("certs");
    std::fs::create_dir_all(&certs)?;
    std::fs::copy(
        tls.certificate.cert_file(),
        certs.join(format!("default_{port}.crt")),
    )?;
    std::fs::copy(
        tls.certificate.key_file(),
        certs.join(format!("default_{port}.key")),
    )?;
    Ok(())
}

/// Starts the GRIP backend (asking for our server's keep-alive interval and long-poll hold, `idle`), zurl
/// and Pushpin, over TLS HTTP/1.1 when `tls` says so; logs go to `log_dir/server-<transport>-pushpin*.log`.
pub(super) async fn start(
    log_dir: &Path,
    transport: Transport,
    idle: IdleSettings,
    host: std::net::IpAddr,
    tls: Option<PeerTls<'_>>,
) -> Result<RunningPeer, PeerError> {
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
    let log = std::sync::Arc::new(MessageLog::default());
    let backend = tokio::spawn(backend(listener, log.clone(), idle));
    let (http_port, publish_port) = (
        free_port().map_err(io("a free port"))?,
        free_port().map_err(io("a free port"))?,
    );
    if let Some(tls) = tls {
        install_certificate(dir.path(), http_port, tls).map_err(io("the TLS certificate"))?;
    }
    let values = [
        ("RUNDIR", dir.path().display().to_string()),
        ("LISTEN", listen_line(host, http_port, tls.is_some())),
        ("HOST", host.to_string()),
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
            .map(guarded)
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
    let addr = SocketAddr::new(host, http_port);
    // The publisher stands beside the server: publishing stays on loopback.
    let publish_addr = SocketAddr::from(([127, 0, 0, 1], publish_port));
    let peer = RunningPeer::new(
        PeerKind::Pushpin,
        addr,
        publish_addr,
        vec![pushpin_child, zurl_child],
        Some(backend),
        dir,
    )
    .with_log(log);
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
async fn backend(
    listener: tokio::net::TcpListener,
    log: std::sync::Arc<MessageLog>,
    idle: IdleSettings,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let log = log.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let log = log.clone();
                async move { Ok::<_, Infallible>(grip_answer(req, &log, idle).await) }
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

/// The `after=<cursor>` of a backend request, if any.
pub fn after_of(query: Option<&str>) -> Option<Cursor> {
    query
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("after="))
        .map(parse_cursor)
}

async fn grip_answer(
    req: Request<hyper::body::Incoming>,
    log: &MessageLog,
    idle: IdleSettings,
) -> Response<Full<Bytes>> {
    let topics = topics_of(req.uri().query());
    if req.uri().path() == "/lp" && !topics.is_empty() {
        let answer = log.answer(&topics, after_of(req.uri().query()).as_ref());
        let (headers, body) = longpoll_response(&topics, &answer, whole_secs(idle.longpoll_hold));
        let mut response = Response::builder().status(StatusCode::OK);
        for (name, value) in headers {
            response = response.header(name, value);
        }
        return response
            .body(Full::new(Bytes::from(body)))
            .expect("valid response parts");
    }
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
    let (status, headers, body) = grip_response(
        &path,
        &topics,
        is_ws_over_http,
        &body,
        whole_secs(idle.keepalive),
    );
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(name, value);
    }
    response
        .body(Full::new(Bytes::from(body)))
        .expect("valid response parts")
}

/// The backend's answer to a long-poll: the events at once, or a GRIP response hold of `hold_s` seconds
/// whose own body and headers are what Pushpin sends when the hold times out (no events, the same cursor).
pub fn longpoll_response(
    topics: &[String],
    answer: &LogAnswer,
    hold_s: u64,
) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let text = ("content-type", "text/plain".to_owned());
    match answer {
        LogAnswer::Head(cursor) => (
            vec![text, (CURSOR_HEADER, format_cursor(cursor))],
            Vec::new(),
        ),
        LogAnswer::Events(data, cursor) => {
            let mut body = data.join("\n");
            body.push('\n');
            (
                vec![text, (CURSOR_HEADER, format_cursor(cursor))],
                body.into_bytes(),
            )
        }
        LogAnswer::Hold(prev_ids, cursor) => {
            let channels: Vec<String> = topics
                .iter()
                .zip(prev_ids)
                .map(|(t, prev)| format!("{t}; prev-id={prev}"))
                .collect();
            (
                vec![
                    text,
                    (CURSOR_HEADER, format_cursor(cursor)),
                    ("grip-hold", "response".into()),
                    ("grip-channel", channels.join(", ")),
                    ("grip-timeout", hold_s.to_string()),
                ],
                Vec::new(),
            )
        }
    }
}

/// `Grip-Keep-Alive`: send `content` after `secs` without a write. Base64, because the heartbeat line's
/// quotes and the comment's colon would need escaping in a header parameter.
pub fn keepalive_header(content: &str, secs: u64) -> String {
    use base64::Engine;
    let content = base64::engine::general_purpose::STANDARD.encode(content);
    format!("{content}; format=base64; timeout={secs}")
}

/// The backend's answer (status, headers, body) to one request, asking for keep-alives every
/// `keepalive_s` seconds: pure, so it is unit-tested.
pub fn grip_response(
    path: &str,
    topics: &[String],
    ws_over_http: bool,
    body: &[u8],
    keepalive_s: u64,
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
                let subscribe = topics
                    .iter()
                    .map(|t| format!("c:{{\"type\":\"subscribe\",\"channel\":\"{t}\"}}"));
                // A ping frame every interval, busy or idle, as nchan pings (ours pings only idle sessions;
                // Pushpin's idle mode was not tried).
                let keepalive = format!(
                    "c:{{\"type\":\"keep-alive\",\"message-type\":\"ping\",\"content\":\"\",\"timeout\":{keepalive_s},\"mode\":\"interval\"}}"
                );
                for msg in subscribe.chain([keepalive]) {
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
            let (content_type, keepalive) = if path == "/sse" {
                ("text/event-stream", SSE_HEARTBEAT.to_owned())
            } else {
                ("text/plain", STREAM_HEARTBEAT.to_owned())
            };
            (
                StatusCode::OK,
                vec![
                    ("content-type", content_type.into()),
                    ("cache-control", "no-cache".into()),
                    ("grip-hold", "stream".into()),
                    ("grip-channel", topics.join(", ")),
                    ("grip-keep-alive", keepalive_header(&keepalive, keepalive_s)),
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
    use crate::clients::dialect::{Framing, Offer};

    #[test]
    fn profile_drives_every_transport_pushpin_offers() {
        let p = profile();
        assert_eq!(p.offer(Transport::Poll), &Offer::NotOffered);
        assert_eq!(
            p.route(Transport::LongPoll).unwrap().framing,
            Framing::GripLongPoll
        );
        assert_eq!(p.route(Transport::Sse).unwrap().framing, Framing::Sse);
        assert_eq!(p.route(Transport::Stream).unwrap().framing, Framing::Lines);
        assert_eq!(p.route(Transport::Ws).unwrap().framing, Framing::WebSocket);
        assert_eq!(
            p.subscribe_path(p.route(Transport::Sse).unwrap(), &["a".into(), "b".into()]),
            "/sse?topic=a&topic=b"
        );
    }

    #[test]
    fn over_tls_condure_gets_the_runs_certificate_and_no_h2() {
        let host = std::net::IpAddr::from([127, 0, 0, 1]);
        assert_eq!(listen_line(host, 7999, false), "http_port=127.0.0.1:7999");
        assert_eq!(listen_line(host, 7999, true), "https_ports=127.0.0.1:7999");
        // The template has the one listen line, filled in.
        let conf = fill(CONFIG, &[("LISTEN", listen_line(host, 7999, true))]);
        let listens: Vec<&str> = conf
            .lines()
            .filter(|l| l.starts_with("http_port=") || l.starts_with("https_ports="))
            .collect();
        assert_eq!(listens, ["https_ports=127.0.0.1:7999"]);
        // Where Pushpin 1.36's runner points condure: <config dir>/runner/certs/default_<port>.crt/.key.
        let certificate = crate::targets::certificate::RunCertificate::new().unwrap();
        let dir = TempDir::new("pushpin-test").unwrap();
        let tls = PeerTls {
            certificate: &certificate,
            http: HttpVersion::Http1,
        };
        install_certificate(dir.path(), 7999, tls).unwrap();
        let certs = dir.path().join("runner/certs");
        assert_eq!(
            std::fs::read_to_string(certs.join("default_7999.crt")).unwrap(),
            certificate.cert_pem
        );
        assert!(
            std::fs::read_to_string(certs.join("default_7999.key"))
                .unwrap()
                .contains("PRIVATE KEY")
        );
        assert_eq!(not_offered_over(HttpVersion::Http1), None);
        assert!(not_offered_over(HttpVersion::Http2).is_some());
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
        let (status, headers, body) = grip_response("/sse", &topics, false, b"", 15);
        assert_eq!(status, StatusCode::OK);
        assert!(headers.contains(&("grip-hold", "stream".into())));
        assert!(headers.contains(&("grip-channel", "a, room.2".into())));
        assert!(headers.contains(&("content-type", "text/event-stream".into())));
        // Our server's keep-alives: ": heartbeat\n\n" and {"type":"heartbeat"}\n, after 15 s idle.
        assert!(headers.contains(&(
            "grip-keep-alive",
            "OiBoZWFydGJlYXQKCg==; format=base64; timeout=15".into()
        )));
        let (_, headers, _) = grip_response("/stream", &topics, false, b"", 15);
        assert!(headers.contains(&(
            "grip-keep-alive",
            "eyJ0eXBlIjoiaGVhcnRiZWF0In0K; format=base64; timeout=15".into()
        )));
        assert!(body.is_empty());
        let (status, _, _) = grip_response("/sse", &[], false, b"", 15);
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn longpoll_is_answered_from_the_log_or_held_with_prev_ids() {
        let log = MessageLog::default();
        let all = vec!["all".to_owned()];
        let cur = |text: &str| parse_cursor(text);
        // No cursor: the head at once, to start from.
        assert_eq!(log.answer(&all, None), LogAnswer::Head(cur("all=0")));
        // Nothing yet: held with prev-id 0.
        assert_eq!(
            log.answer(&all, Some(&cur("all=0"))),
            LogAnswer::Hold(vec![0], cur("all=0"))
        );
        assert_eq!(log.append("all", "1 1 x"), (1, 0));
        assert_eq!(log.append("other", "2 2 x"), (2, 0));
        assert_eq!(log.append("all", "3 3 x"), (3, 1));
        // A cursor before newer events: answered at once with all of them, the cursor after them.
        assert_eq!(
            log.answer(&all, Some(&cur("all=0"))),
            LogAnswer::Events(vec!["1 1 x".into(), "3 3 x".into()], cur("all=3"))
        );
        let both = vec!["all".to_owned(), "other".to_owned()];
        // Per channel: "all" was read up to 3 (an event Pushpin pushed), "other" not yet: 2 comes now.
        assert_eq!(
            log.answer(&both, Some(&cur("all=3,other=0"))),
            LogAnswer::Events(vec!["2 2 x".into()], cur("all=3,other=2"))
        );
        assert_eq!(
            log.answer(&both, None),
            LogAnswer::Head(cur("all=3,other=2"))
        );
        // Caught up: held with each channel's last id as prev-id.
        let held = log.answer(&both, Some(&cur("all=3,other=2")));
        assert_eq!(held, LogAnswer::Hold(vec![3, 2], cur("all=3,other=2")));
        let (headers, body) = longpoll_response(&both, &held, 30);
        assert!(body.is_empty());
        assert!(headers.contains(&("grip-hold", "response".into())));
        // Held as long as our server would hold it (the scenario's long-poll timeout).
        assert!(headers.contains(&("grip-timeout", "30".into())));
        assert!(headers.contains(&("grip-channel", "all; prev-id=3, other; prev-id=2".into())));
        assert!(headers.contains(&(CURSOR_HEADER, "all=3,other=2".into())));
        let (headers, body) = longpoll_response(&all, &log.answer(&all, Some(&cur("all=0"))), 30);
        assert_eq!(body, b"1 1 x\n3 3 x\n");
        assert!(headers.contains(&(CURSOR_HEADER, "all=3".into())));
        assert!(!headers.iter().any(|(n, _)| n.starts_with("grip")));
        // Topic names may hold '.', ':' and '-'.
        assert_eq!(
            after_of(Some("topic=room.1&after=room.1=17,a:b-c=2")),
            Some(cur("room.1=17,a:b-c=2"))
        );
        assert_eq!(format_cursor(&cur("b=2,a=1")), "a=1,b=2");
        assert_eq!(after_of(Some("topic=all")), None);
        // The published event ends a held long-poll with its channel's cursor.
        let v: serde_json::Value =
            serde_json::from_str(&publish_longpoll_body("all", 3, 1, "3 3 x")).unwrap();
        let item = &v["items"][0];
        assert_eq!(
            (item["id"].as_str(), item["prev-id"].as_str()),
            (Some("3"), Some("1"))
        );
        let response = &item["formats"]["http-response"];
        assert_eq!(response["body"], "3 3 x\n");
        assert_eq!(response["headers"][CURSOR_HEADER], "all=3");
    }

    #[test]
    fn backend_subscribes_websockets_over_http() {
        let (status, headers, body) = grip_response("/ws", &["all".into()], true, b"OPEN\r\n", 15);
        assert_eq!(status, StatusCode::OK);
        assert!(headers.contains(&("sec-websocket-extensions", "grip".into())));
        let msg = r#"c:{"type":"subscribe","channel":"all"}"#;
        let ping = r#"c:{"type":"keep-alive","message-type":"ping","content":"","timeout":15,"mode":"interval"}"#;
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!(
                "OPEN\r\nTEXT {:x}\r\n{msg}\r\nTEXT {:x}\r\n{ping}\r\n",
                msg.len(),
                ping.len()
            )
        );
        let (_, _, body) = grip_response("/ws", &["all".into()], true, b"CLOSE\r\n", 15);
        assert_eq!(body, b"CLOSE\r\n");
    }
}
