//! `pushbench capacity` end to end: tiny searches against the real `pushbench-server` binary on loopback,
//! through the command line, checking the walk, the verdict against the steps, and every output file.
//!
//! Runs share the end-to-end lock file (see `end_to_end.rs`) so that their timings are not disturbed by
//! other runs. A step flagged saturated (a busy shared machine) is accepted only as what it must be: the
//! last step, with the verdict "limited by the load generator / machine".

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use pushbench::suites::capacity::{Capacity, SearchEnd, TransportCapacity, Verdict, report};
use pushbench_report::result::RunResult;

/// A tiny broadcast: a few subscribers, 20 events/s for about a second.
const TINY: &str = r#"
name = "cap-tiny"
transports = ["sse", "ws"]
subscribers = 2
launch_rate = 1000
warmup_s = 0.2
duration_s = 1
drain_s = 0.5
publish_rate = 20
payload_bytes = 64
[fanout]
mode = "broadcast"
[thresholds]
lost = 0
"#;

fn dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("capacity-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `pushbench capacity` on `scenario` with `args` (one load run at a time): (exit code, stdout,
/// stderr). When another process fills the machine the first steps stop as machine limits and the walk is
/// not exercised: such a search is tried again, up to three times, after a pause.
fn capacity(out: &Path, scenario: &str, args: &[&str]) -> (i32, String, String) {
    for attempt in 1.. {
        let run = capacity_once(out, scenario, args);
        let stopped_at_once = report::read(&out.join("out").join("capacity.json")).is_ok_and(|c| {
            c.transports
                .iter()
                .any(|t| t.steps.len() == 1 && t.outcome == SearchEnd::MachineLimit)
        });
        if !stopped_at_once || attempt == 3 {
            return run;
        }
        eprintln!("machine busy (the first step was flagged saturated): trying again");
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
    unreachable!()
}

fn capacity_once(out: &Path, scenario: &str, args: &[&str]) -> (i32, String, String) {
    let _ = std::fs::remove_dir_all(out.join("out"));
    let file = out.join("scenario.toml");
    std::fs::write(&file, scenario).unwrap();
    let _lock = support::one_run_at_a_time();
    let output = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .arg("capacity")
        .arg(&file)
        .arg("--out")
        .arg(out.join("out"))
        .arg("--server-bin")
        .arg(support::server_bin())
        .arg("--no-progress")
        .args(args)
        .output()
        .expect("pushbench runs");
    (
        output.status.code().expect("exited"),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Checks the walk of one transport: growth by ×2 from `start` while passing, then every later step
/// strictly between the largest pass and the smallest fail so far; a machine stop only as the last step;
/// the verdict what the steps say; each step's outputs on disk and of the value it claims.
fn check_walk(out: &Path, t: &TransportCapacity, start: f64, max: f64, field: &str) {
    let what = format!("{}: {:#?}", t.transport, t.steps);
    assert!(!t.steps.is_empty(), "{what}");
    assert_eq!(t.steps[0].value, start, "{what}");
    let (mut pass, mut fail) = (None::<f64>, None::<f64>);
    for (i, s) in t.steps.iter().enumerate() {
        assert_eq!(s.n as usize, i + 1, "{what}");
        if i > 0 {
            match fail {
                None => assert_eq!(s.value, (pass.unwrap() * 2.0).min(max), "growth: {what}"),
                Some(f) => assert!(
                    pass.is_some_and(|p| p < s.value) && s.value < f,
                    "bisection inside the bracket: {what}"
                ),
            }
        }
        match s.verdict {
            Verdict::Pass => {
                assert!(s.reasons.is_empty(), "{what}");
                assert_eq!((s.lost, s.inexact), (0, 0), "{what}");
                assert_eq!(s.subscribers_connected, s.subscribers, "{what}");
                pass = Some(pass.map_or(s.value, |p: f64| p.max(s.value)));
            }
            Verdict::Fail => {
                assert!(!s.reasons.is_empty(), "{what}");
                fail = Some(fail.map_or(s.value, |f: f64| f.min(s.value)));
            }
            Verdict::Machine | Verdict::Error => {
                assert_eq!(i + 1, t.steps.len(), "a stop ends it: {what}")
            }
        }
        if s.verdict == Verdict::Error {
            continue; // its run wrote no result
        }
        // The step's own outputs, written by the same writers as `pushbench run`.
        let step = out.join(&s.dir);
        let result: RunResult =
            serde_json::from_str(&std::fs::read_to_string(step.join("result.json")).unwrap())
                .unwrap();
        assert!(step.join("report.md").is_file() && step.join("report.html").is_file());
        assert_eq!(result.transports.len(), 1);
        assert_eq!(result.transports[0].transport, t.transport);
        assert_eq!(result.scenario[field].as_f64(), Some(s.value), "{what}");
        let r = &result.transports[0];
        assert_eq!(s.lost, r.lost);
        assert_eq!(s.saturated, r.loadgen_saturated);
        if s.verdict != Verdict::Machine {
            assert!(
                !r.loadgen_saturated,
                "a saturated step is never a pass or fail"
            );
            let p99_ms = r.latency_us.p99 as f64 / 1000.0;
            assert_eq!(s.latency_p99_ms, Some(p99_ms));
            assert_eq!(
                s.deliveries_per_s,
                Some(r.delivered as f64 / r.window_s),
                "{what}"
            );
        }
    }
    // The verdict follows from the steps.
    assert_eq!(t.capacity, pass, "{what}");
    let machine = t.steps.iter().any(|s| s.verdict == Verdict::Machine);
    let error = t.steps.iter().any(|s| s.verdict == Verdict::Error);
    let expected = if error {
        SearchEnd::RunFailed
    } else if machine {
        SearchEnd::MachineLimit
    } else if fail.is_some() && pass.is_some() {
        SearchEnd::ServerLimit
    } else if fail.is_some() {
        SearchEnd::FailsAtStart
    } else if pass == Some(max) {
        SearchEnd::ReachedMax
    } else {
        SearchEnd::StepBudget
    };
    assert_eq!(t.outcome, expected, "{what}");
    if machine {
        assert!(
            t.summary
                .contains("limited by the load generator / machine"),
            "{}",
            t.summary
        );
    }
}

fn outputs(out: &Path) -> Capacity {
    let c = report::read(&out.join("capacity.json")).expect("capacity.json parses");
    let md = std::fs::read_to_string(out.join("capacity.md")).unwrap();
    let html = std::fs::read_to_string(out.join("capacity.html")).unwrap();
    for t in &c.transports {
        assert!(md.contains(&format!("## {}", t.transport)), "{md}");
        assert!(html.contains(&format!("<h2 id=\"{}\">", t.transport)));
    }
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(html.contains("class=\"limit\""), "the p99 limit is drawn");
    assert!(!html.contains("<script") && !html.contains("src=\"http"));
    c
}

#[test]
fn a_subscriber_search_grows_to_max_and_writes_its_curve() {
    let d = dir("subscribers");
    let (code, stdout, stderr) = capacity(
        &d,
        TINY,
        &["--p99-ms", "1000", "--start", "2", "--max", "8"],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let out = d.join("out");
    let c = outputs(&out);
    assert_eq!(c.scenario, "cap-tiny");
    assert_eq!(c.p99_ms, 1000.0);
    assert_eq!(c.transports.len(), 2);
    for t in &c.transports {
        check_walk(&out, t, 2.0, 8.0, "subscribers");
        assert!(stdout.contains(&t.summary), "{stdout}");
        if t.outcome != SearchEnd::MachineLimit {
            // With a p99 limit of a second and a loss-free server, 2, 4, 8 all pass.
            let values: Vec<f64> = t.steps.iter().map(|s| s.value).collect();
            assert_eq!(values, [2.0, 4.0, 8.0], "{t:#?}");
            assert_eq!((t.outcome, t.capacity), (SearchEnd::ReachedMax, Some(8.0)));
            let rss = t.steps.iter().filter_map(|s| s.server_rss_mib).count();
            assert_eq!(rss, 3, "server memory is known at every step");
        }
    }
}

#[test]
fn an_impossible_p99_fails_at_the_first_step_and_a_rate_search_varies_the_rate() {
    let d = dir("impossible");
    let (code, stdout, stderr) = capacity(
        &d,
        TINY,
        &["--p99-ms", "0.001", "--max", "8", "--transports", "ws"],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let out = d.join("out");
    let c = outputs(&out);
    assert_eq!(c.transports.len(), 1, "--transports ws");
    let t = &c.transports[0];
    assert_eq!(t.transport, pushbench_common::Transport::Ws);
    check_walk(&out, t, 2.0, 8.0, "subscribers");
    assert_eq!(t.steps.len(), 1, "nothing is tried below the start");
    assert_eq!(t.capacity, None);
    assert!(matches!(
        t.outcome,
        SearchEnd::FailsAtStart | SearchEnd::MachineLimit
    ));
    if t.outcome == SearchEnd::FailsAtStart {
        assert!(t.summary.contains("≥ 0.001 ms"), "{}", t.summary);
    }

    let d = dir("rate");
    let ws_only = TINY.replace(r#"["sse", "ws"]"#, r#"["ws"]"#);
    let (code, stdout, stderr) = capacity(
        &d,
        &ws_only,
        &[
            "--vary", "rate", "--p99-ms", "1000", "--start", "10", "--max", "40",
        ],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let out = d.join("out");
    let c = outputs(&out);
    let t = &c.transports[0];
    check_walk(&out, t, 10.0, 40.0, "publish_rate");
    if t.outcome != SearchEnd::MachineLimit {
        assert_eq!(
            (t.outcome, t.capacity),
            (SearchEnd::ReachedMax, Some(40.0)),
            "{t:#?}"
        );
    }
}

#[test]
fn bad_bounds_are_usage_errors_and_help_documents_the_defaults() {
    let d = dir("usage");
    let (code, _, stderr) = capacity(&d, TINY, &["--p99-ms", "50", "--start", "9", "--max", "8"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--max (8) must be at least --start (9)"),
        "{stderr}"
    );
    let (code, _, stderr) = capacity(&d, TINY, &["--p99-ms", "50", "--factor", "1"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--factor must be a number above 1"),
        "{stderr}"
    );
    let (code, _, stderr) = capacity(&d, TINY, &[]);
    assert_eq!(code, 2, "--p99-ms is required: {stderr}");
    let (code, _, stderr) = capacity(&d, TINY, &["--p99-ms=-1"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--p99-ms must be a positive"), "{stderr}");
    assert!(!d.join("out").join("capacity.json").exists(), "nothing ran");

    let help = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["capacity", "--help"])
        .output()
        .unwrap();
    // Wrapped to the terminal's width: compare with single spaces.
    let help = String::from_utf8(help.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "20,000 file descriptors",
        "19000",
        "[default: 2]",
        "[default: 3]",
        "[default: 16]",
        "[default: subscribers]",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[test]
fn sigint_ends_the_search_writes_the_steps_so_far_and_leaves_no_server() {
    use std::io::BufRead;
    let d = dir("sigint");
    let file = d.join("scenario.toml");
    // Long enough steps that the signal lands inside the second one.
    std::fs::write(&file, TINY.replace("duration_s = 1", "duration_s = 4")).unwrap();
    let _lock = support::one_run_at_a_time();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .arg("capacity")
        .arg(&file)
        .args([
            "--p99-ms",
            "1000",
            "--start",
            "2",
            "--max",
            "8",
            "--no-progress",
        ])
        .arg("--out")
        .arg(d.join("out"))
        .arg("--server-bin")
        .arg(support::server_bin())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Wait for a second step to start: sse's second, or ws's first when a busy machine stopped sse at
    // its first.
    for line in stderr.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.ends_with("sse step 2: 4 subscribers") || line.ends_with("ws step 1: 2 subscribers")
        {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    seen.extend(stderr.map_while(Result::ok));
    let status = child.wait().unwrap();
    let seen = seen.join("\n");
    assert_eq!(status.code(), Some(1), "{seen}");
    assert!(seen.contains("interrupted by SIGINT"), "{seen}");
    let c = report::read(&d.join("out").join("capacity.json")).expect("written before exiting");
    let sse = &c.transports[0];
    if sse.outcome == SearchEnd::MachineLimit {
        // Interrupted during ws's first step: nothing of ws to record.
        assert_eq!(c.transports.len(), 1, "{c:#?}");
    } else {
        assert_eq!(c.transports.len(), 1, "ws is not searched after the signal");
        assert_eq!(sse.outcome, SearchEnd::Interrupted, "{sse:#?}");
        assert_eq!(
            sse.steps.len(),
            1,
            "the interrupted step is not recorded: {sse:#?}"
        );
        assert!(sse.summary.contains("interrupted by SIGINT"));
        assert!(sse.limit.is_none(), "no verdict");
    }
    let left = pushbench::util::descendants(pid);
    assert!(left.is_empty(), "processes left behind: {left:?}");
}
