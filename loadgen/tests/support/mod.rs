//! What the load generator's integration tests share: the server binary and the lock that serializes
//! their runs.
//!
//! Runs are serialized, across test processes too (nextest runs each test in its own process), through
//! a lock file, so that their timing figures are not disturbed by each other on a small machine.

#![allow(dead_code)] // each test crate uses the part it needs

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pushbench::run::{RunOptions, run};
use pushbench::scenario::Scenario;
use pushbench_report::result::{RunResult, TransportResult};

/// A tiny broadcast of all five transports, for measuring peers (nchan, Pushpin, the floor) exactly.
pub(crate) const TINY_PEERS: &str = r#"
name = "peers-tiny"
transports = ["poll", "longpoll", "stream", "sse", "ws"]
subscribers = 20
launch_rate = 1000
warmup_s = 0.5
duration_s = 2
drain_s = 1
publish_rate = 20
payload_bytes = 64
[fanout]
mode = "broadcast"
[poll]
interval_ms = 20
"#;

/// The server binary, built on demand with the same profile as this test when it is not there yet.
pub(crate) fn server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(path) = pushbench::targets::server_proc::locate(None) {
            return path;
        }
        let release = std::env::current_exe()
            .unwrap()
            .components()
            .any(|c| c.as_os_str() == "release");
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "-p", "pushbench-server"]);
        if release {
            cargo.arg("--release");
        }
        assert!(
            cargo.status().expect("cargo runs").success(),
            "building pushbench-server failed"
        );
        pushbench::targets::server_proc::locate(None).expect("pushbench-server was just built")
    })
    .clone()
}

/// The floor reference's binary (`pushbench-floor`, beside the server's), built on demand like
/// [`server_bin`]; returns the server binary it was found beside.
pub(crate) fn floor_beside_server() -> PathBuf {
    let server = server_bin();
    if pushbench::targets::floor::locate(Some(&server)).is_err() {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args([
            "build",
            "-p",
            "pushbench-server",
            "--bin",
            "pushbench-floor",
        ]);
        if server.components().any(|c| c.as_os_str() == "release") {
            cargo.arg("--release");
        }
        assert!(
            cargo.status().expect("cargo runs").success(),
            "building pushbench-floor failed"
        );
    }
    server
}

/// Holds the lock of all runs until dropped: one run at a time, whichever test process runs it.
pub(crate) fn one_run_at_a_time() -> File {
    let lock = File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-runs.lock")).unwrap();
    lock.lock().expect("one run at a time");
    lock
}

/// Asserts that `r` delivered every owed event exactly once, in order, and that something was owed.
pub(crate) fn assert_exact(r: &TransportResult) {
    assert!(
        r.lost == 0
            && r.duplicates == 0
            && r.out_of_order == 0
            && r.unexpected == 0
            && r.delivered == r.expected
            && r.expected > 0,
        "{}: delivered {} of {}, lost {}, duplicates {}, out of order {}, unexpected {} ({:?})",
        r.transport,
        r.delivered,
        r.expected,
        r.lost,
        r.duplicates,
        r.out_of_order,
        r.unexpected,
        r.last_error
    );
}

/// Runs `scenario` in this process under `options`, one run at a time, on a runtime of its own.
pub(crate) fn run_here(scenario: Scenario, options: &RunOptions) -> Result<RunResult, String> {
    let _lock = one_run_at_a_time();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(run(std::sync::Arc::new(scenario), options))
        .map_err(|e| e.to_string())
}

/// Whether a test must skip because a peer is not installed: it says so on stderr. Where the peers are
/// required (`PUSHBENCH_REQUIRE_PEERS=1`, as the README's test command sets after `scripts/setup-peers`),
/// a missing peer fails the test instead, so a broken install cannot pass as a skip.
pub(crate) fn peer_missing(installed: bool, what: &str) -> bool {
    if installed {
        return false;
    }
    assert!(
        std::env::var_os("PUSHBENCH_REQUIRE_PEERS").is_none(),
        "PUSHBENCH_REQUIRE_PEERS is set but {what}"
    );
    eprintln!("SKIPPED: {what}");
    true
}
