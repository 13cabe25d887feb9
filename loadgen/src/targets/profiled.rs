//! A server described by a target profile ([`crate::profile`]): started fresh per transport from the
//! profile's command line (its files written into a temporary directory first) or attached at its URL;
//! published to with the profile's request; asked, when the profile says how, whether every subscription
//! is live before the first publish.
//!
//! A started server is a process tree: every process in it is sampled for memory and CPU, and every one
//! is stopped by PID at the end of the transport, also on error (`Drop`), as the peers' are.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pushbench_common::{ProcSample, Transport};
use tokio::process::Child;
use tokio::time::Instant;

use crate::clients::dialect::peer_event_data;
use crate::clients::publisher::{Encoder, PublishRequest, Schedule};
use crate::conn::{ConnError, Endpoint, HttpConn, WireCounters, body_of};
use crate::error::PeerError;
use crate::profile::{Idle, Profile, PublishSpec, StartSpec, pairs, scalar};
use crate::targets::peer::{IdleSettings, fill};
use crate::util::{TempDir, count_fds, descendants, free_port, guarded, wait_listening};

/// A server we started from a profile's command line.
#[derive(Debug)]
pub struct Started {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The command's process, killed on drop.
    child: Child,
    /// Every `(PID, command name)` seen in its tree, so that stragglers are killed by PID at the end
    /// (only while the PID still runs the program it ran then).
    seen: std::sync::Mutex<Vec<(u32, String)>>,
    /// `{dir}`: its files; removed last.
    _dir: TempDir,
}

/// `{{NAME}}` placeholders of the files still unfilled (upper-case names only: the files' own syntax may
/// use braces).
fn unfilled(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(at) = rest.find("{{") {
        let after = &rest[at + 2..];
        let end = after.find("}}")?;
        let name = &after[..end];
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            return Some(name);
        }
        rest = after;
    }
    None
}

/// `program` as the command line names it: a path, or found on `PATH` and in the sbin directories a
/// non-root `PATH` leaves out (Debian's nginx is `/usr/sbin/nginx`).
fn locate(program: &str) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(program))
}

/// Starts `spec` for `transport` listening on `host`, with our server's idle settings; its output goes to
/// `log_dir/server-<transport>-<name>.log`.
pub async fn start(
    name: &str,
    spec: &StartSpec,
    transport: Transport,
    idle: IdleSettings,
    log_dir: &Path,
    host: IpAddr,
) -> Result<Started, PeerError> {
    let io = |what: String| move |error| PeerError::Start { what, error };
    let dir =
        TempDir::new(&format!("profile-{name}")).map_err(io("a temporary directory".into()))?;
    let port = free_port().map_err(io("a free port".into()))?;
    let addr = SocketAddr::new(host, port);
    let idle = Idle {
        keepalive: idle.keepalive,
        longpoll_hold: idle.longpoll_hold,
    }
    .values();
    let value = |name: &str| {
        idle.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    let mut file_values = vec![
        ("HOST", host.to_string()),
        ("PORT", port.to_string()),
        ("PREFIX", dir.path().display().to_string()),
        ("KEEPALIVE_S", value("keepalive_s").unwrap_or_default()),
        (
            "LONGPOLL_HOLD_S",
            value("longpoll_hold_s").unwrap_or_default(),
        ),
    ];
    file_values.extend(spec.vars.iter().map(|(k, v)| (k.as_str(), v.clone())));
    for (file, template) in &spec.files {
        let text = fill(template, &file_values);
        if let Some(left) = unfilled(&text) {
            return Err(PeerError::Profile(format!(
                "server.files.{file}: {{{{{left}}}}} is not filled: add it to server.vars"
            )));
        }
        std::fs::write(dir.path().join(file), text).map_err(io(file.clone()))?;
    }
    let (host_s, port_s, dir_s, log_s) = (
        host.to_string(),
        port.to_string(),
        dir.path().display().to_string(),
        log_dir.display().to_string(),
    );
    let mut values: Vec<(&str, &str)> = vec![
        ("host", &host_s),
        ("port", &port_s),
        ("dir", &dir_s),
        ("log_dir", &log_s),
        ("transport", transport.as_str()),
    ];
    values.extend(idle.iter().map(|(n, v)| (*n, v.as_str())));
    let line: Vec<String> = spec
        .command
        .iter()
        .map(|t| t.render(pairs(&values)))
        .collect();
    let log = log_dir.join(format!("server-{transport}-{name}.log"));
    let out = std::fs::File::create(&log).map_err(io(log.display().to_string()))?;
    let err = out.try_clone().map_err(io(log.display().to_string()))?;
    let program = locate(&line[0]);
    let child = tokio::process::Command::new(&program)
        .args(&line[1..])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .map(guarded)
        .map_err(io(program.display().to_string()))?;
    let started = Started {
        addr,
        child,
        seen: std::sync::Mutex::new(Vec::new()),
        _dir: dir,
    };
    if !wait_listening(addr, spec.ready_timeout).await {
        return Err(PeerError::NotReady(
            line.join(" "),
            spec.ready_timeout,
            log.display().to_string(),
        ));
    }
    // Let the whole tree come up before the baseline memory is taken.
    let deadline = Instant::now() + Duration::from_secs(5);
    while started.pids().len() < spec.processes && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started)
}

impl Started {
    /// Every PID of the tree now.
    pub fn pids(&self) -> Vec<u32> {
        let Some(root) = self.child.id() else {
            return Vec::new();
        };
        let mut pids = vec![root];
        pids.extend(descendants(root));
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for &pid in &pids {
            if !seen.iter().any(|(p, _)| *p == pid) {
                seen.push((pid, comm(pid)));
            }
        }
        pids
    }

    /// Summed RSS and CPU of the tree.
    pub fn sample(&self) -> Option<ProcSample> {
        let samples: Vec<ProcSample> = (self.pids().into_iter())
            .filter_map(|pid| ProcSample::of_pid(pid).ok())
            .collect();
        (!samples.is_empty()).then(|| ProcSample {
            rss_bytes: samples.iter().map(|s| s.rss_bytes).sum(),
            cpu: samples.iter().map(|s| s.cpu).sum(),
        })
    }

    /// Open file descriptors over the tree.
    pub fn fds(&self) -> Option<u64> {
        let counts: Vec<u64> = self.pids().into_iter().filter_map(count_fds).collect();
        (!counts.is_empty()).then(|| counts.iter().sum())
    }

    /// SIGTERM to the command's process, then whatever is left is killed after `grace` (`Drop`).
    pub async fn stop(mut self, grace: Duration) {
        self.pids();
        if let Some(pid) = self.child.id() {
            signal(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let _ = tokio::time::timeout(grace, self.child.wait()).await;
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()));
        for (pid, name) in seen {
            // Still the program we saw: a recycled PID runs something else.
            if comm(pid) == name && !name.is_empty() {
                signal(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _ = self.child.try_wait();
    }
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_default()
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Publishes as the profile says: event `i` carries sequence number `i + 1` in its payload, and an
/// accepted publish (any 2xx) is acknowledged under it.
pub(crate) struct ProfileEncoder {
    /// `publish.url` per topic index, rendered once where it does not use `{seq}`.
    paths: Vec<Option<String>>,
    publish: PublishSpec,
    method: hyper::Method,
}

impl ProfileEncoder {
    /// The encoder of `profile` for `schedule`'s topics.
    pub(crate) fn new(profile: &Profile, schedule: &Schedule) -> Self {
        let url = &profile.publish.url;
        Self {
            paths: (schedule.topics.iter())
                .map(|t| (!url.uses("seq")).then(|| url.render(pairs(&[("topic", t.as_str())]))))
                .collect(),
            method: hyper::Method::from_bytes(profile.publish.method.as_bytes())
                .expect("validated: POST, PUT or PATCH"),
            publish: profile.publish.clone(),
        }
    }
}

impl Encoder for ProfileEncoder {
    fn encode(&self, schedule: &Schedule, i: u64, topic: u64) -> PublishRequest<'_> {
        let seq = (i + 1).to_string();
        let payload = peer_event_data(schedule.intended_unix_ns(i), i + 1, schedule.payload_bytes);
        let name = schedule.topics[topic as usize].as_str();
        let path = match &self.paths[topic as usize] {
            Some(path) => path.as_str().into(),
            None => self
                .publish
                .url
                .render(pairs(&[("topic", name), ("seq", &seq)]))
                .into(),
        };
        let json = serde_json::to_string(&payload).expect("a string serializes");
        let body = self.publish.body.render(pairs(&[
            ("topic", name),
            ("seq", &seq),
            ("payload", &payload),
            ("payload_json", &json),
        ]));
        PublishRequest {
            path,
            content_type: &self.publish.content_type,
            body: Bytes::from(body),
        }
    }

    fn ack(&self, i: u64, _path: &str, _body: &[u8]) -> Result<u64, ConnError> {
        Ok(i + 1)
    }

    fn method(&self) -> hyper::Method {
        self.method.clone()
    }

    fn headers(&self) -> &[(String, String)] {
        &self.publish.headers
    }
}

/// Waits until the server counts every subscription on each topic (`[server.subscribers]`), as nchan's
/// channel info does; interval polls hold nothing between requests and are never counted, and without
/// a count the run waits `settle`. A note when the counts were not reached within 3 s.
pub async fn wait_subscribed(
    profile: &Profile,
    addr: SocketAddr,
    transport: Transport,
    expected_per_topic: &[(String, u64)],
    settle: Duration,
) -> Option<String> {
    let Some(count) = profile
        .subscribers
        .as_ref()
        .filter(|_| transport != Transport::Poll)
    else {
        tokio::time::sleep(settle).await;
        return None;
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let wire = Arc::new(WireCounters::default());
    let node = Endpoint::new(addr);
    let headers: Vec<(&str, &str)> = (count.headers.iter())
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut last = String::new();
    loop {
        let mut all = true;
        if let Ok((mut conn, _)) = HttpConn::open(&node, &wire).await {
            for (topic, want) in expected_per_topic {
                let path = count.url.render(pairs(&[("topic", topic.as_str())]));
                let got = match conn.get(&path, &headers).await {
                    Ok(r) => body_of(&path, r)
                        .await
                        .ok()
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                        .and_then(|v| scalar(count.count.find(&v)))
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0),
                    Err(_) => 0,
                };
                if got < *want {
                    all = false;
                    last = format!("topic {topic}: {got} of {want} subscribers");
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
                "{} did not count every subscription within 3 s ({last}); published after a further {settle:?}",
                profile.name
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::dialect::{nchan_profile, parse_peer_event};
    use crate::profile::{ServerSpec, Template};

    #[test]
    fn the_nchan_file_describes_every_transport_as_the_rust_profile_does() {
        let file = Profile::nchan();
        let old = nchan_profile();
        assert_eq!(file.routes.len(), 5);
        let topics = ["a".to_owned(), "room.1".to_owned()];
        let idle = Idle {
            keepalive: Duration::from_secs(15),
            longpoll_hold: Duration::from_secs(20),
        };
        for route in &file.routes {
            let old_route = old.route(route.transport).expect("offered by both");
            let (path, headers) = route.request(&topics, &vec![None; route.cursor.len()], idle);
            assert_eq!(
                path,
                old.subscribe_path(old_route, &topics),
                "{}",
                route.transport
            );
            let old_headers: Vec<(String, String)> = (old_route.headers.iter())
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect();
            assert_eq!(headers, old_headers, "{}", route.transport);
        }
        let ServerSpec::Start(start) = &file.server else {
            panic!("nchan is started")
        };
        assert_eq!(start.processes, 3);
        // The very config the Rust profile fills.
        assert_eq!(
            start.files,
            vec![(
                "nginx.conf".into(),
                crate::targets::peer::nchan::CONFIG.into()
            )]
        );
        // nchan's worker count, and its TLS lines left out as `--peer nchan` leaves them in the clear.
        let mut vars = start.vars.clone();
        vars.sort();
        let expected: Vec<(String, String)> = [("LISTEN_TLS", ""), ("TLS", ""), ("WORKERS", "2")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        assert_eq!(vars, expected);
    }

    #[test]
    fn publishes_carry_the_sequence_number_where_the_profile_says() {
        let mut profile = Profile::nchan();
        profile.publish.url = Template::parse("/t/{topic}/{seq}", &["topic", "seq"]).unwrap();
        profile.publish.body = Template::parse(
            r#"{"channel":"{topic}","data":{payload_json}}"#,
            &["topic", "payload_json"],
        )
        .unwrap();
        let schedule = Schedule {
            rate: 10.0,
            count: 3,
            payload_bytes: 40,
            topics: vec!["a".parse().unwrap(), "b".parse().unwrap()],
            start: Instant::now(),
            start_unix_ns: 1_000_000_000,
        };
        let encoder = ProfileEncoder::new(&profile, &schedule);
        let request = encoder.encode(&schedule, 2, 0);
        assert_eq!(request.path, "/t/a/3");
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["channel"], "a");
        let data = body["data"].as_str().unwrap();
        assert_eq!(data.len(), 40);
        assert_eq!(parse_peer_event(data.as_bytes()).unwrap().1, 3);
        assert_eq!(encoder.ack(2, "/t/a/3", b"").unwrap(), 3);
        // nchan's own: the body is the payload as is.
        let nchan = ProfileEncoder::new(&Profile::nchan(), &schedule);
        let request = nchan.encode(&schedule, 0, 1);
        assert_eq!(
            (request.path.as_ref(), request.content_type),
            ("/pub?id=b", "text/plain")
        );
        assert_eq!(parse_peer_event(&request.body), Some((1_000_000_000, 1)));
    }

    #[test]
    fn unfilled_file_placeholders_are_found() {
        assert_eq!(unfilled("events { }\nlisten {{HOST}}:1;"), Some("HOST"));
        assert_eq!(unfilled("# the {{...}} placeholders\nx { y }"), None);
    }
}
