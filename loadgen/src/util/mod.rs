//! Helpers for processes, ports, temporary directories and the async runtime, with no knowledge of
//! what is measured. The bottom layer: it imports nothing of the crate.

mod net;
mod process;
mod watchdog;

pub use net::{free_port, wait_listening};
pub use process::{
    beside_this_executable, count_fds, descendants, fds_of, pushbench_executable, sample_processes,
    stop_child, sum_samples,
};
pub use watchdog::{guard_dir, guarded, serve as serve_watchdog, watchdog_pid};

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in nanoseconds.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The multi-threaded tokio runtime every command runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

/// A temporary directory for a process's runtime files, removed when dropped (or by the watchdog, when
/// this process is killed).
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/pushbench-<name>-<pid>-<nanos>`. The first one a process makes also removes
    /// those of processes no longer running (a run killed together with its watchdog).
    pub fn new(name: &str) -> std::io::Result<Self> {
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(remove_stale_dirs);
        let path = std::env::temp_dir().join(format!(
            "pushbench-{name}-{}-{}",
            std::process::id(),
            unix_ns()
        ));
        std::fs::create_dir_all(&path)?;
        guard_dir(&path);
        Ok(Self(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// Removes `$TMPDIR/pushbench-<name>-<pid>-<nanos>` directories whose process is gone.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(stale_dir_owner) else {
            continue;
        };
        if !Path::new(&format!("/proc/{owner}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The PID in a [`TempDir`]'s name `pushbench-<name>-<pid>-<nanos>`.
fn stale_dir_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("pushbench-")?;
    let mut parts = rest.rsplitn(3, '-');
    let (_nanos, pid) = (parts.next()?.parse::<u64>().ok()?, parts.next()?);
    parts.next()?;
    pid.parse().ok()
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_dirs_name_their_owner_and_other_names_are_left_alone() {
        assert_eq!(
            stale_dir_owner("pushbench-redis-4242-1764000000000000000"),
            Some(4242)
        );
        assert_eq!(stale_dir_owner("pushbench-nchan-longpoll-17-99"), Some(17));
        for other in [
            "pushbench-test-1-2.crt",
            "pushbench-redis",
            "redis-1-2",
            "pushbench-x-y-z",
        ] {
            assert_eq!(stale_dir_owner(other), None, "{other}");
        }
        let dir = TempDir::new("sweep").unwrap();
        let owner = stale_dir_owner(dir.path().file_name().unwrap().to_str().unwrap());
        assert_eq!(owner, Some(std::process::id()));
    }
}
