//! Helpers for processes, ports, temporary directories and the async runtime, with no knowledge of
//! what is measured. The bottom layer: it imports nothing of the crate.

mod net;
mod process;

pub use net::{free_port, wait_listening};
pub use process::{count_fds, descendants, fds_of, sample_processes, stop_child, sum_samples};

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

/// A temporary directory for a process's runtime files, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/pushbench-<name>-<pid>-<nanos>`.
    pub fn new(name: &str) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "pushbench-{name}-{}-{}",
            std::process::id(),
            unix_ns()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
