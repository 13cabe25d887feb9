//! Target profiles measured for real, on loopback with the servers started on free ports: nchan through
//! its file (`scenarios/peers/nchan.profile.toml`) gives the deterministic figures its Rust profile gives;
//! our own server described by a profile (`scenarios/profiles/pushbench-server.profile.toml`) is measured
//! exactly on all five transports; a profile that does not fit the server fails the run naming the
//! transport, the field and what arrived.
//!
//! The nchan comparison is skipped (with a message saying how to install it) only when nchan is not
//! installed; CI installs it with `scripts/setup-peers`.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pushbench::profile::{Files, Profile};
use pushbench::run::{RunOptions, ServerSource, run};
use pushbench::scenario::Scenario;
use pushbench::targets::peer::{PeerKind, nchan};
use pushbench::targets::server_proc::Server;
use pushbench_common::Transport;
use pushbench_report::result::{RunResult, TransportResult};

use support::TINY_PEERS as TINY;

const OURS: &str = include_str!("../../scenarios/profiles/pushbench-server.profile.toml");

fn out_dir(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("profiles-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(server: ServerSource, dir: &Path) -> RunOptions {
    RunOptions {
        server,
        out_dir: dir.to_owned(),
        progress: false,
        workers: 1,
        cluster: 1,
        network: None,
    }
}

fn run_on(
    rt: &tokio::runtime::Runtime,
    server: ServerSource,
    toml: &str,
    tag: &str,
) -> Result<RunResult, String> {
    let scenario = Scenario::parse(toml, "profiles test scenario").unwrap();
    let dir = out_dir(tag);
    rt.block_on(run(Arc::new(scenario), &options(server, &dir)))
        .map_err(|e| format!("{e:#} (logs in {})", dir.display()))
}

fn profile(text: &str) -> Profile {
    Profile::parse(text, "test profile", Files::BuiltIn).unwrap()
}

/// What a run of the tiny broadcast must give whatever the timing: every subscriber, every event,
/// exactly once.
fn assert_exact(t: &TransportResult, what: &str) {
    let what = format!("{what} {}: {:?}", t.transport, t.last_error);
    assert_eq!(t.subscribers_connected, 20, "{what}");
    assert_eq!(t.published, 50, "{what}");
    assert_eq!(t.expected, 20 * 50, "{what}");
    assert_eq!(t.delivered, t.expected, "{what}");
    assert_eq!(
        (t.lost, t.duplicates, t.out_of_order, t.unexpected),
        (0, 0, 0, 0),
        "{what}"
    );
    assert!(t.latency_us.count > 0, "{what}");
    assert_eq!(
        t.latency_from_server_us.count, 0,
        "{what}: no accept time of the server's own"
    );
}

/// The figures that do not depend on timing: how many subscribed, what was owed and delivered, and, on
/// the streaming transports (one request per subscription), the requests and reconnects.
fn deterministic(t: &TransportResult) -> Vec<(&'static str, u64)> {
    let mut figures = vec![
        ("subscribers_connected", t.subscribers_connected),
        ("published", t.published),
        ("publish_failures", t.publish_failures),
        ("expected", t.expected),
        ("delivered", t.delivered),
        ("lost", t.lost),
        ("duplicates", t.duplicates),
        ("out_of_order", t.out_of_order),
        ("unexpected", t.unexpected),
        ("errors", t.errors),
    ];
    if t.transport.is_streaming() {
        figures.extend([("requests", t.requests), ("reconnects", t.reconnects)]);
    }
    figures
}

#[test]
fn nchan_through_its_file_gives_the_figures_of_its_rust_profile() {
    if support::peer_missing(
        nchan::installed(),
        "nginx with the nchan module is not installed (run scripts/setup-peers to install it)",
    ) {
        return;
    }
    // The file on disk is the one compiled in.
    let on_disk = Profile::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/peers/nchan.profile.toml"),
    )
    .unwrap();
    assert_eq!(on_disk, Profile::nchan());
    let _lock = support::one_run_at_a_time();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let old = run_on(&rt, ServerSource::Peer(PeerKind::Nchan), TINY, "nchan-rust").unwrap();
    let new = run_on(
        &rt,
        ServerSource::Profile(Arc::new(on_disk)),
        TINY,
        "nchan-file",
    )
    .unwrap();
    assert_eq!(new.server, "profile nchan");
    let ran = |r: &RunResult| r.transports.iter().map(|t| t.transport).collect::<Vec<_>>();
    assert_eq!(ran(&new), Transport::ALL.to_vec());
    assert_eq!(ran(&old), ran(&new));
    for (o, n) in old.transports.iter().zip(&new.transports) {
        assert_exact(n, "nchan through its file");
        assert_eq!(deterministic(o), deterministic(n), "{}", n.transport);
        // Both sample every process of nginx.
        assert!(
            n.server_rss_connected_bytes.unwrap_or(0) > 0,
            "{}",
            n.transport
        );
    }
    // Interval polling is counted as for the Rust profile: one request per delivery, 304s as empty polls.
    let poll = &new.transports[0];
    assert!(
        poll.requests >= poll.delivered + poll.empty_polls && poll.empty_polls > 0,
        "{poll:?}"
    );
}

#[test]
fn our_server_described_by_a_profile_is_measured_exactly_on_every_transport() {
    let bin = support::server_bin();
    // Started by the profile, fresh per transport, with the scenario's heartbeat.
    let text = OURS.replace(
        "url = \"http://127.0.0.1:8080\"",
        &format!(
            "start = [{:?}, \"--listen\", \"{{host}}:{{port}}\", \"--heartbeat-ms\", \"{{keepalive_ms}}\"]",
            bin.display().to_string()
        ),
    );
    let _lock = support::one_run_at_a_time();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = run_on(
        &rt,
        ServerSource::Profile(Arc::new(profile(&text))),
        TINY,
        "ours",
    )
    .unwrap();
    assert_eq!(result.server, "profile pushbench-server");
    let ran: Vec<Transport> = result.transports.iter().map(|t| t.transport).collect();
    assert_eq!(ran, Transport::ALL.to_vec());
    for t in &result.transports {
        assert_exact(t, "ours through a profile");
        assert!(
            t.server_cpu_ms.is_some(),
            "the started server is sampled: {t:?}"
        );
    }
    // The first poll of each subscriber finds nothing and takes the cursor to follow from.
    assert!(result.transports[0].empty_polls >= 20);
}

#[test]
fn a_profile_that_does_not_fit_the_server_fails_the_run_saying_where() {
    let bin = support::server_bin();
    let _lock = support::one_run_at_a_time();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = out_dir("wrong");
    // The CI case: a server already running, attached at its URL.
    let server = rt
        .block_on(Server::spawn(
            &bin,
            [127, 0, 0, 1].into(),
            &[],
            &dir.join("server.log"),
        ))
        .unwrap();
    let attached = OURS.replace("127.0.0.1:8080", &server.addr.to_string());
    let only = |transport: &str| {
        TINY.replace(
            "transports = [\"poll\", \"longpoll\", \"stream\", \"sse\", \"ws\"]",
            &format!("transports = [\"{transport}\"]"),
        )
    };
    for (transport, from, to, expect) in [
        (
            "stream",
            "payload = \"/data\"",
            "payload = \"/payload\"",
            r#"stream: what the server sent does not match the profile's `message.payload`: the message has nothing at "/payload"; it sent: "{\"id\":"#,
        ),
        (
            "ws",
            "control = \"/type\"",
            "control = \"/kind\"",
            r#"ws: what the server sent does not match the profile's `message.payload`: the message has nothing at "/data"; it sent: "{\"type\":\"subscribed\""#,
        ),
        (
            "poll",
            "url = \"/poll?{topics}\"\nbody = \"json\"\nmessages = \"/events\"",
            "url = \"/poll?{topics}\"\nbody = \"json\"\nmessages = \"/items\"",
            r#"poll: what the server sent does not match the profile's `transports.poll.messages`: "/items" holds nothing, not the messages array; it sent: "{\"events\":[]"#,
        ),
        (
            "sse",
            "url = \"/sse?{topics}\"",
            "url = \"/sse?{topics}&since=0\"",
            "sse: what the server sent does not match the profile's `transports.sse.url`: the server answered 400 to the subscribe request",
        ),
    ] {
        assert!(attached.contains(from), "{from}");
        let wrong = profile(&attached.replacen(from, to, 1));
        let error = run_on(
            &rt,
            ServerSource::Profile(Arc::new(wrong)),
            &only(transport),
            "wrong",
        )
        .expect_err("a profile that does not fit fails the run");
        assert!(
            error.contains("the target profile does not fit the server: ")
                && error.contains(expect),
            "{transport}: {error}"
        );
    }
    // The right profile measures the same server exactly.
    let right = run_on(
        &rt,
        ServerSource::Profile(Arc::new(profile(&attached))),
        &only("sse"),
        "right",
    )
    .unwrap();
    assert_eq!(
        right.server,
        format!("profile pushbench-server at http://{}", server.addr)
    );
    assert_exact(&right.transports[0], "ours attached");
    // A profiled server's /stats, if any, is not read as ours.
    assert!(right.transports[0].server_stats.is_none());
    rt.block_on(server.stop(std::time::Duration::from_secs(5)));
}

/// `pushbench check` validates profiles, on their own and as a scenario's `[target]`, and refuses a
/// wrong one with exit 2 naming the field.
#[test]
fn check_validates_profiles_and_names_the_wrong_field() {
    let pushbench = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushbench"))
            .args(args)
            .output()
            .expect("pushbench runs");
        (
            out.status.code().expect("exited"),
            String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap(),
        )
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let nchan = root.join("scenarios/peers/nchan.profile.toml");
    let (code, out) = pushbench(&["check", "--profile", nchan.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "ok (profile nchan, transports poll, longpoll, stream, sse, ws, started per transport)"
        ),
        "{out}"
    );
    let dir = out_dir("check");
    let wrong = dir.join("wrong.profile.toml");
    std::fs::write(&wrong, OURS.replace("sse:id", "sse:event")).unwrap();
    let (code, out) = pushbench(&["check", "--profile", wrong.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("field `transports.sse.cursor[0]`: from = \"sse:event\" does not fit sse"),
        "{out}"
    );
    // The same profile as a scenario's [target]: its tables nest under it.
    let nested: String = OURS
        .lines()
        .map(|l| match l.strip_prefix('[') {
            Some(table) => format!("[target.{table}"),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let (top, tables) = nested.split_at(nested.find("[target.").unwrap());
    let scenario = dir.join("with-target.toml");
    std::fs::write(&scenario, format!("{TINY}\n[target]\n{top}\n{tables}\n")).unwrap();
    let (code, out) = pushbench(&["check", scenario.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("[target]: profile pushbench-server, transports poll, longpoll, stream, sse, ws, attached at http://127.0.0.1:8080"),
        "{out}"
    );
    std::fs::write(
        &scenario,
        std::fs::read_to_string(&scenario)
            .unwrap()
            .replace("/events", "events"),
    )
    .unwrap();
    let (code, out) = pushbench(&["check", scenario.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("[target]: field `transports.poll.messages`"),
        "{out}"
    );
}
