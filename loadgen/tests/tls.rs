//! Runs over TLS (`[client] tls = true`) against the real server: the run makes a certificate, the
//! spawned server serves it, every client trusts it; every transport delivers exactly, the handshake is
//! timed once per connection, and the bytes counted are the ciphertext (more than cleartext's).

mod support;

use std::path::Path;
use std::sync::Arc;

use pushbench::run::{RunOptions, ServerSource, run};
use pushbench::scenario::Scenario;
use pushbench_common::Transport;
use pushbench_report::result::RunResult;

const SCENARIO: &str = r#"
name = "tls-e2e"
subscribers = 10
launch_rate = 500
warmup_s = 0.5
duration_s = 2
drain_s = 1
publish_rate = 4
payload_bytes = 64
[poll]
interval_ms = 100
"#;

fn run_with(toml: &str, source: ServerSource, workers: usize) -> Result<RunResult, String> {
    let scenario = Scenario::parse(toml, "tls test").expect("valid");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "tls-{}-{}",
        std::process::id(),
        scenario.client.tls
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let options = RunOptions {
        server: source,
        out_dir: dir,
        progress: false,
        workers,
        cluster: 1,
        network: None,
    };
    let _lock = support::one_run_at_a_time();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(run(Arc::new(scenario), &options))
        .map_err(|e| e.to_string())
}

#[test]
fn every_transport_delivers_exactly_over_tls_and_pays_its_records_and_handshake() {
    let spawn = || ServerSource::Spawn(support::server_bin());
    let clear = run_with(SCENARIO, spawn(), 1).expect("cleartext run");
    // Workers: the certificate crosses the pipe to them.
    let tls = run_with(&format!("{SCENARIO}[client]\ntls = true\n"), spawn(), 2).expect("TLS run");
    for t in Transport::ALL {
        let c = clear.transports.iter().find(|r| r.transport == t).unwrap();
        let s = tls.transports.iter().find(|r| r.transport == t).unwrap();
        support::assert_exact(s);
        let handshakes = s.tls_handshake_us.expect("a TLS run times its handshakes");
        assert!(
            handshakes.count >= s.subscribers_connected,
            "{t}: {} handshakes for {} subscribers",
            handshakes.count,
            s.subscribers_connected
        );
        assert!(c.tls_handshake_us.is_none(), "cleartext has no handshake");
        let (clear_bytes, tls_bytes) =
            (c.bytes_per_delivery.unwrap(), s.bytes_per_delivery.unwrap());
        assert!(
            tls_bytes > clear_bytes,
            "{t}: {tls_bytes} B per delivery over TLS, {clear_bytes} in cleartext"
        );
    }
}

#[test]
fn tls_to_a_server_the_run_does_not_spawn_is_refused_clearly() {
    let error = run_with(
        &format!("{SCENARIO}[client]\ntls = true\n"),
        ServerSource::Target {
            url: "http://127.0.0.1:9".into(),
            pid: None,
        },
        1,
    )
    .expect_err("refused");
    assert!(error.contains("needs a server the run spawns"), "{error}");
}
