//! Runs over TLS (`[client] tls = true`) against the real server: the run makes a certificate, the
//! spawned server serves it, every client trusts it; every transport delivers exactly, the handshake is
//! timed once per connection, and the bytes counted are the ciphertext (more than cleartext's).

mod support;

use std::path::Path;

use pushbench::run::{RunOptions, ServerSource};
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
    support::run_here(scenario, &options)
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
fn tls_to_a_cleartext_target_or_an_https_target_without_trust_is_refused_clearly() {
    let target = |url: &str, trust| ServerSource::Target {
        url: url.into(),
        pid: None,
        trust,
    };
    let error = run_with(
        &format!("{SCENARIO}[client]\ntls = true\n"),
        target("http://127.0.0.1:9", None),
        1,
    )
    .expect_err("refused");
    assert!(error.contains("needs an https:// URL"), "{error}");
    let error = run_with(SCENARIO, target("https://127.0.0.1:9", None), 1).expect_err("refused");
    assert!(error.contains("--ca FILE (PEM) or --insecure"), "{error}");
}

/// A server of ours started outside the run, over TLS with the certificate `args` name.
struct OutsideServer {
    child: std::process::Child,
    url: String,
}

impl OutsideServer {
    fn start(args: &[String]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(support::server_bin())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("pushbench-server listening on ")
            .expect("the server prints its address")
            .trim_end_matches('/')
            .to_owned();
        Self { child, url }
    }
}

impl Drop for OutsideServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_https_target_is_measured_trusting_its_ca_or_anything_when_insecure() {
    use pushbench::run::TargetTrust;
    let toml = SCENARIO.replace(
        "payload_bytes = 64",
        "payload_bytes = 64\ntransports = [\"sse\", \"ws\"]",
    );
    let certificate = pushbench::targets::certificate::RunCertificate::new().unwrap();
    let server = OutsideServer::start(&certificate.server_args());
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    for trust in [
        TargetTrust::Ca(certificate.cert_pem.clone()),
        TargetTrust::Insecure,
    ] {
        let source = ServerSource::Target {
            url: server.url.clone(),
            pid: Some(server.child.id()),
            trust: Some(trust.clone()),
        };
        let result = run_with(&toml, source, 2).unwrap_or_else(|e| panic!("{trust:?}: {e}"));
        for r in &result.transports {
            support::assert_exact(r);
            let handshakes = r.tls_handshake_us.expect("TLS handshakes are timed");
            assert!(handshakes.count >= r.subscribers_connected, "{trust:?}");
        }
    }
    // A CA that did not sign the server's certificate: nobody subscribes, and the run says why.
    let stranger = pushbench::targets::certificate::RunCertificate::new().unwrap();
    let source = ServerSource::Target {
        url: server.url.clone(),
        pid: None,
        trust: Some(TargetTrust::Ca(stranger.cert_pem.clone())),
    };
    // One transport: subscribers that never subscribe keep a run waiting for its launch deadline.
    let one = SCENARIO.replace(
        "payload_bytes = 64",
        "payload_bytes = 64\ntransports = [\"sse\"]",
    );
    let result = run_with(&one, source, 1);
    let refused = match result {
        Err(e) => e,
        Ok(r) => format!("{:?} {:?}", r.transports[0].last_error, r.warnings),
    };
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
}

#[test]
fn every_transport_delivers_exactly_over_h2_with_subscribers_sharing_connections() {
    let spawn = || ServerSource::Spawn(support::server_bin());
    let h1 = run_with(&format!("{SCENARIO}[client]\ntls = true\n"), spawn(), 1).expect("h1 run");
    // Two workers of five subscribers each: a group of five never straddles them, so two connections.
    let h2 = run_with(
        &format!("{SCENARIO}[client]\ntls = true\nhttp = \"2\"\nsubscribers_per_connection = 5\n"),
        spawn(),
        2,
    )
    .expect("h2 run");
    for t in Transport::ALL {
        let one = h1.transports.iter().find(|r| r.transport == t).unwrap();
        let two = h2.transports.iter().find(|r| r.transport == t).unwrap();
        support::assert_exact(two);
        assert_eq!(two.subscribers_connected, 10, "{t}");
        assert_eq!(
            (two.connect_us.count, two.tls_handshake_us.unwrap().count),
            (2, 2),
            "{t}: ten subscribers, five to an h2 connection, open two connections and two handshakes"
        );
        assert_eq!(
            one.connect_us.count, 10,
            "{t}: HTTP/1.1 opens one per subscriber"
        );
        let (h1_bytes, h2_bytes) = (
            one.bytes_per_delivery.unwrap(),
            two.bytes_per_delivery.unwrap(),
        );
        if matches!(t, Transport::Poll | Transport::LongPoll) {
            // HPACK: a repeated request's headers shrink to a few table indices.
            assert!(
                h2_bytes < h1_bytes,
                "{t}: {h2_bytes} B per delivery on h2, {h1_bytes} on HTTP/1.1 over TLS"
            );
        }
    }
}

#[test]
fn reconnects_resume_their_tls_sessions_unless_resumption_is_off() {
    let churning = |resumption: bool| {
        format!(
            "{SCENARIO}transports = [\"sse\"]\n[churn]\nevery_s = 0.5\nshare = 0.5\n[client]\ntls = true\ntls_resumption = {resumption}\n"
        )
        .replacen("[poll]\ninterval_ms = 100\n", "", 1)
    };
    let spawn = || ServerSource::Spawn(support::server_bin());
    for resumption in [true, false] {
        let result = run_with(&churning(resumption), spawn(), 1).expect("churn run over TLS");
        let sse = &result.transports[0];
        support::assert_exact(sse);
        let handshakes = sse.tls_handshake_us.unwrap().count;
        let resumed = sse.tls_resumed_handshakes.expect("counted over TLS");
        assert!(
            sse.reconnects >= 10,
            "churn reconnected {} times",
            sse.reconnects
        );
        assert_eq!(
            handshakes,
            10 + sse.reconnects,
            "a handshake per connection"
        );
        if resumption {
            assert!(
                resumed > 0 && resumed <= sse.reconnects,
                "{resumed} of {handshakes} handshakes resumed, {} reconnects",
                sse.reconnects
            );
        } else {
            assert_eq!(resumed, 0, "resumption off: every handshake is full");
        }
    }
}
