//! The regression gate at the command line: `pushbench compare`, `merge` and `check --result` on
//! synthetic result files written to a temporary directory (no load runs), checking exit codes and messages.

#[path = "../../report/src/result/fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};
use std::process::Command;

use fixture::test_result;
use pushbench::scenario::Scenario;
use pushbench_report::result::RunResult;

/// A scenario of the fixture's shape (one `ws` transport), with thresholds.
const SCENARIO: &str = r#"
name = "quick"
transports = ["ws"]
subscribers = 100
launch_rate = 1000
duration_s = 5
publish_rate = 8
payload_bytes = 64

[thresholds]
lost = 0
bytes_per_delivery = "< 320"
latency_p99_ms = "< 50"
"#;

struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("gate-cli-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `result` (its scenario replaced by [`SCENARIO`] as run) and returns its path.
    fn result(&self, name: &str, mut result: RunResult) -> String {
        let scenario = Scenario::parse(SCENARIO, "test").unwrap();
        let mut scenario = serde_json::to_value(&scenario).unwrap();
        if let Some(renamed) = result.scenario.get("name").filter(|n| *n != "quick") {
            scenario["name"] = renamed.clone();
        }
        result.scenario = scenario;
        self.write(name, &serde_json::to_string(&result).unwrap())
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `pushbench ARGS`: (exit code, stdout, stderr).
fn pushbench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(args)
        .output()
        .expect("pushbench runs");
    (
        out.status.code().expect("exited"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn doctored() -> RunResult {
    let mut r = test_result(&[[1_000; 95].as_slice(), &[80_000; 5]].concat());
    r.transports[0].lost = 1;
    r.transports[0].bytes_per_delivery = Some(330.0);
    r
}

#[test]
fn compare_exit_codes_and_messages() {
    let dir = Dir::new("compare");
    let base = dir.result("base.json", test_result(&[1_000; 100]));
    let same = dir.result("same.json", test_result(&[1_000; 100]));
    let worse = dir.result("worse.json", doctored());

    let (code, out, _) = pushbench(&["compare", &base, &same]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" 0 failed"), "{out}");

    let (code, out, err) = pushbench(&["compare", &base, &worse]);
    assert_eq!(code, 4, "{out}{err}");
    // The doctored event is lost without a gap notice: `lost` and `lost_silently` both rise.
    for metric in [
        "lost",
        "lost_silently",
        "bytes_per_delivery",
        "latency_p99_ms",
    ] {
        assert!(
            out.contains(&format!("REGRESSION: ws {metric} rose")),
            "{metric}: {out}"
        );
    }
    assert!(
        err.contains("6 metric(s) regressed past tolerance"),
        "{err}"
    );

    // CI's gate: timings are shown but do not fail; the lost event and the bytes still do.
    let (code, out, _) = pushbench(&["compare", &base, &worse, "--gate", "deterministic"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("worse (not gated)") && out.ends_with(" 3 failed\n"),
        "{out}"
    );
    let (code, out, _) = pushbench(&[
        "compare",
        &base,
        &worse,
        "--gate",
        "deterministic",
        "--tolerance",
        "lost=inf",
        "--tolerance",
        "lost_silently=inf",
        "--tolerance",
        "bytes_per_delivery=20",
        "--format",
        "markdown",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("| transport | metric | baseline |"),
        "{out}"
    );

    let (code, _, err) = pushbench(&["compare", &base, &worse, "--tolerance", "latncy=5"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown metric \"latncy\""), "{err}");

    let mut other = test_result(&[1_000; 100]);
    other.scenario["name"] = "broadcast".into();
    let other = dir.result("other.json", other);
    let (code, _, err) = pushbench(&["compare", &base, &other]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("different workload") && err.contains("\"broadcast\""),
        "{err}"
    );
}

#[test]
fn thresholds_and_merge_exit_codes() {
    let dir = Dir::new("thresholds");
    let scenario = dir.write("quick.toml", SCENARIO);
    let good = dir.result("good.json", test_result(&[1_000; 100]));
    let worse = dir.result("worse.json", doctored());

    let (code, out, _) = pushbench(&["check", &scenario, "--result", &good]);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("thresholds: 3 passed, 0 failed\n"), "{out}");
    let (code, out, err) = pushbench(&["check", &scenario, "--result", &worse]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.contains("FAIL  ws") && out.contains("bytes_per_delivery < 320"),
        "{out}"
    );
    assert!(out.ends_with("thresholds: 0 passed, 3 failed\n"), "{out}");

    let bad = dir.write(
        "bad.toml",
        &SCENARIO.replace("latency_p99_ms", "latency_p98_ms"),
    );
    let (code, _, err) = pushbench(&["check", &bad]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`thresholds.latency_p98_ms`"), "{err}");

    let merged = dir.0.join("merged.json").display().to_string();
    let (code, out, err) = pushbench(&["merge", &good, &worse, "-o", &merged]);
    assert_eq!(code, 0, "{out}{err}");
    let merged: RunResult =
        serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    let union = test_result(&[[1_000; 195].as_slice(), &[80_000; 5]].concat());
    assert_eq!(merged.runs, 2);
    assert_eq!(
        merged.transports[0].latency_us,
        union.transports[0].latency_us
    );

    let mut other = test_result(&[1_000]);
    other.scenario["name"] = "broadcast".into();
    let other = dir.result("other.json", other);
    let (code, _, err) = pushbench(&["merge", &good, &other, "-o", "/dev/null"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("different workload"), "{err}");
}

/// The committed baseline stays usable: it matches the schema (merged runs, spreads and threshold outcomes
/// included), is a run of today's `scenarios/quick.toml`, and passes that scenario's thresholds.
#[test]
fn committed_baseline_matches_the_schema_and_the_quick_scenario() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("results/baseline/quick.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("results/result.schema.json")).unwrap(),
    )
    .unwrap();
    let baseline: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&baseline)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "baseline does not match the schema: {errors:#?}"
    );
    assert!(baseline["runs"].as_u64().unwrap() >= 5);
    assert!(baseline["transports"][0]["spread"]["latency_p99_ms"]["median"].is_number());

    let quick = root.join("scenarios/quick.toml").display().to_string();
    let baseline_path = root
        .join("results/baseline/quick.json")
        .display()
        .to_string();
    let (code, out, err) = pushbench(&["check", &quick, "--result", &baseline_path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" 0 failed"), "{out}");
}

#[test]
fn compare_writes_junit_and_the_github_step_summary_and_report_exports_openmetrics() {
    let dir = Dir::new("ci-formats");
    let base = dir.result("base.json", test_result(&[1_000; 100]));
    let worse = dir.result("worse.json", doctored());
    let junit = dir.0.join("compare.xml");
    let summary = dir.0.join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args([
            "compare",
            &base,
            &worse,
            "--gate",
            "deterministic",
            "--junit",
        ])
        .arg(&junit)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let xml = std::fs::read_to_string(&junit).unwrap();
    // Gated: the six deterministic metrics; failed: lost, lost_silently, bytes_per_delivery.
    assert!(xml.contains("tests=\"6\" failures=\"3\""), "{xml}");
    assert!(
        xml.contains("name=\"bytes_per_delivery\"><failure message="),
        "{xml}"
    );
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(
        summary.starts_with("earlier step\n### pushbench compare: "),
        "{summary}"
    );
    assert!(summary.contains("| ws | lost | 0 | 1 |"), "{summary}");

    let (code, text, err) = pushbench(&["report", &base, "--format", "openmetrics"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("pushbench_lost{scenario=\"quick\",transport=\"ws\"} 0\n"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}
