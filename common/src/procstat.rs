//! Resident memory and CPU time of a process, from `/proc/<pid>/stat`.

use std::time::Duration;

/// Linux reports CPU time in clock ticks of `USER_HZ`, which is 100 on every architecture Linux supports
/// for user space (`sysconf(_SC_CLK_TCK)` would need `unsafe` for the same constant).
const USER_HZ: u64 = 100;
/// Page size used by `/proc/<pid>/stat`'s `rss` field on the platforms this runs on.
const PAGE_SIZE: u64 = 4096;

/// One sample of a process's resource use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// User plus system CPU time consumed so far.
    pub cpu: Duration,
}

/// Why a process could not be sampled.
#[derive(Debug, thiserror::Error)]
pub enum ProcStatError {
    /// `/proc/<pid>/stat` could not be read (the process may have exited).
    #[error("cannot read /proc/{pid}/stat: {source}")]
    Read {
        /// The process.
        pid: u32,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file did not have the expected format.
    #[error("unexpected format of /proc/{0}/stat")]
    Format(u32),
}

impl ProcSample {
    /// Samples the process `pid`.
    pub fn of_pid(pid: u32) -> Result<Self, ProcStatError> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|source| ProcStatError::Read { pid, source })?;
        Self::parse(&text).ok_or(ProcStatError::Format(pid))
    }

    /// Samples the calling process.
    pub fn of_self() -> Result<Self, ProcStatError> {
        Self::of_pid(std::process::id())
    }

    /// Parses the contents of `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
    /// parentheses, so fields are counted from the last `)`.
    fn parse(stat: &str) -> Option<Self> {
        let after_comm = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // after_comm starts at field 3 (state); utime = 14, stime = 15, rss = 24 in proc(5) numbering.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let ticks = field(14)? + field(15)?;
        Some(Self {
            rss_bytes: field(24)? * PAGE_SIZE,
            cpu: Duration::from_millis(ticks * 1000 / USER_HZ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_awkward_command_name() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 100 \
                    123456789 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let sample = ProcSample::parse(stat).unwrap();
        assert_eq!(sample.cpu, Duration::from_secs(3));
        assert_eq!(sample.rss_bytes, 300 * 4096);
    }

    #[test]
    fn samples_this_process() {
        let sample = ProcSample::of_self().unwrap();
        assert!(sample.rss_bytes > 0);
    }
}
