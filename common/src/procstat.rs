//! Resident memory and CPU time of a process: CPU time from `/proc/<pid>/stat`, resident memory from
//! `/proc/<pid>/status`.
//!
//! Not `stat`'s `rss` field: the kernel keeps the resident-page counters per CPU and `stat` reads them
//! without summing the CPUs' pending deltas, so it lags by up to a batch of pages per CPU and counter
//! (on the 2-core development machine a server's `stat` said 15,024 KiB while `status` and
//! `smaps_rollup` both said 15,276). That error, a quarter of a MiB either way, is the size of the drift
//! a soak looks for; `status`'s `VmRSS` is summed exactly.

use std::time::Duration;

/// Linux reports CPU time in clock ticks of `USER_HZ`, which is 100 on every architecture Linux supports
/// for user space (`sysconf(_SC_CLK_TCK)` would need `unsafe` for the same constant).
const USER_HZ: u64 = 100;

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
    /// `/proc/<pid>/<file>` could not be read (the process may have exited).
    #[error("cannot read /proc/{pid}/{file}: {source}")]
    Read {
        /// The process.
        pid: u32,
        /// `stat` or `status`.
        file: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The files did not have the expected format (a kernel thread has no `VmRSS`).
    #[error("unexpected format of /proc/{0}/stat or status")]
    Format(u32),
}

impl ProcSample {
    /// Samples the process `pid`.
    pub fn of_pid(pid: u32) -> Result<Self, ProcStatError> {
        let read = |file| {
            std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                .map_err(|source| ProcStatError::Read { pid, file, source })
        };
        Self::parse(&read("stat")?, &read("status")?).ok_or(ProcStatError::Format(pid))
    }

    /// Samples the calling process.
    pub fn of_self() -> Result<Self, ProcStatError> {
        Self::of_pid(std::process::id())
    }

    /// Parses the contents of `/proc/<pid>/stat` (CPU time) and `/proc/<pid>/status` (`VmRSS`). The
    /// command name (`stat`'s field 2) may hold spaces and parentheses, so fields are counted from the
    /// last `)`.
    fn parse(stat: &str, status: &str) -> Option<Self> {
        let after_comm = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // after_comm starts at field 3 (state); utime = 14, stime = 15 in proc(5) numbering.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let ticks = field(14)? + field(15)?;
        // `VmRSS:   15276 kB` (the kernel's "kB" is KiB).
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(Self {
            rss_bytes: rss_kib * 1024,
            cpu: Duration::from_millis(ticks * 1000 / USER_HZ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_from_stat_with_awkward_command_name_and_rss_from_status() {
        // stat's rss (field 24, 300 pages) is the per-CPU approximation; status's VmRSS is the figure.
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 100 \
                    123456789 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let status = "Name:\tmy (odd) name\nVmHWM:\t   16000 kB\nVmRSS:\t   15276 kB\n\
                      RssAnon:\t    8524 kB\nThreads:\t3\n";
        let sample = ProcSample::parse(stat, status).unwrap();
        assert_eq!(sample.cpu, Duration::from_secs(3));
        assert_eq!(sample.rss_bytes, 15276 * 1024);
        assert_eq!(
            ProcSample::parse(stat, "Name:\tkthreadd\nThreads:\t1\n"),
            None
        );
    }

    #[test]
    fn samples_this_process() {
        let sample = ProcSample::of_self().unwrap();
        assert!(sample.rss_bytes > 0);
    }
}
