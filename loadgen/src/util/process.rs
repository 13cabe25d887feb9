//! Processes we started or sample: their trees, open files, memory and CPU, and stopping them.

use std::path::PathBuf;
use std::time::Duration;

use pushbench_common::ProcSample;
use tokio::process::Child;

/// Every descendant of `root` (children, grandchildren, ...), from `/proc`.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Field 4 (ppid) follows the last ')' of the command name and the state.
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// The executable `name` next to the current executable or in its parent directory (where cargo puts
/// binaries when the current one is a test in `target/*/deps`); the error lists the places tried.
pub fn beside_this_executable(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current executable unknown: {e}"))?;
    let mut tried = Vec::new();
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate.display().to_string());
        dir = d.parent();
    }
    Err(tried.join(", "))
}

/// This executable when it is `pushbench`, else `pushbench` beside it (when running as a test binary);
/// the error lists the places tried.
pub fn pushbench_executable() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable unknown: {e}"))?;
    if exe.file_stem().is_some_and(|s| s == "pushbench") {
        return Ok(exe);
    }
    beside_this_executable("pushbench")
}

/// Stops a child we spawned, by its PID: SIGTERM, then SIGKILL after `grace`.
pub async fn stop_child(mut child: Child, grace: Duration) {
    if let Some(pid) = child.id() {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// Number of open file descriptors of process `pid`.
pub fn count_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Sums samples: RSS and CPU of several processes (`None` when one is missing).
pub fn sum_samples(samples: &[Option<ProcSample>]) -> Option<ProcSample> {
    samples.iter().try_fold(
        ProcSample {
            rss_bytes: 0,
            cpu: Duration::ZERO,
        },
        |acc, s| {
            s.map(|s| ProcSample {
                rss_bytes: acc.rss_bytes + s.rss_bytes,
                cpu: acc.cpu + s.cpu,
            })
        },
    )
}

/// RSS and CPU summed over processes `pids`.
pub fn sample_processes(pids: &[u32]) -> Option<ProcSample> {
    sum_samples(
        &pids
            .iter()
            .map(|&pid| ProcSample::of_pid(pid).ok())
            .collect::<Vec<_>>(),
    )
}

/// Open files summed over processes `pids`.
pub fn fds_of(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&pid| count_fds(pid)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_own_fds() {
        assert!(count_fds(std::process::id()).unwrap() >= 3);
    }

    #[test]
    fn samples_sum_and_a_missing_one_spoils_the_sum() {
        let s = |rss, ms| {
            Some(ProcSample {
                rss_bytes: rss,
                cpu: Duration::from_millis(ms),
            })
        };
        assert_eq!(sum_samples(&[s(10, 5), s(32, 7)]), s(42, 12));
        assert_eq!(sum_samples(&[s(10, 5), None]), None);
        assert!(sample_processes(&[std::process::id()]).unwrap().rss_bytes > 0);
    }

    #[test]
    fn descendants_of_self_include_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let found = descendants(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?}");
    }
}
