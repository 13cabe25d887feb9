//! What this machine allows one run: open files per process, ephemeral ports per source address, and
//! memory. A run that would cross one is refused before it starts, naming the limit and its numbers and
//! how to stay under it (`--workers`, `--cluster`); a connect that fails on one names it too
//! ([`limit_reached`]).

use std::io;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Open files a process needs beyond its sockets (binary, logs, pipes, /proc reads, epoll, …).
const FD_MARGIN: u64 = 256;
/// Load-generator memory per subscriber, a bound above what was measured (≈19 KB WebSocket, ≈29 KB
/// HTTP; results/README.md).
const LOADGEN_BYTES_PER_SUBSCRIBER: u64 = 40 * 1024;
/// Server plus kernel memory per connection, a bound above what was measured (≤ 4 KiB server,
/// ≈ 10 KiB socket slab for both ends).
const SERVER_AND_KERNEL_BYTES_PER_CONNECTION: u64 = 20 * 1024;

/// Raises this process's soft limit on open files to the hard limit (or to `want` when that is higher
/// and we may, as root). Returns the limit in force. A spawned server inherits it.
pub(crate) fn raise_open_file_limit(want: u64) -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return u64::MAX;
    };
    if want != u64::MAX && want > hard && setrlimit(Resource::RLIMIT_NOFILE, want, want).is_ok() {
        return want;
    }
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// Ephemeral ports of one source address (`net.ipv4.ip_local_port_range`).
pub(crate) fn ephemeral_ports() -> Option<(u64, u64)> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = range.split_whitespace().filter_map(|p| p.parse().ok());
    Some((it.next()?, it.next()?))
}

/// `MemAvailable` from `/proc/meminfo`, bytes.
fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// The shape of a run, as far as limits go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Subscribers.
    pub subscribers: u64,
    /// Load-generator processes holding them.
    pub workers: u64,
    /// Server processes we spawn and hold them (0 when the server is not ours to start).
    pub server_nodes: u64,
    /// Whether the workers bind their own source addresses (each then has its own ports).
    pub own_source_addresses: bool,
}

impl Plan {
    /// `subscribers` over `workers` load-generator processes (each on its own source address when there
    /// are several) and, when we spawn our own server, `cluster` nodes.
    pub(crate) fn new(
        subscribers: u64,
        workers: u32,
        cluster: u32,
        spawns_our_server: bool,
    ) -> Self {
        Self {
            subscribers,
            workers: u64::from(workers),
            server_nodes: if spawns_our_server {
                u64::from(cluster)
            } else {
                0
            },
            own_source_addresses: workers > 1,
        }
    }
}

/// Raises this process's open-file limit (spawned servers inherit it) and checks `plan` against this
/// machine; returns the open-file limit in force.
pub(crate) fn prepare(plan: Plan) -> Result<u64, String> {
    let open_files = raise_open_file_limit(u64::MAX);
    check(plan, Machine::read())?;
    Ok(open_files)
}

/// What the machine gives, read once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Machine {
    /// Open files per process (the limit a process can raise itself to).
    pub open_files: u64,
    /// Ephemeral ports per source address.
    pub ports: u64,
    /// Memory available, bytes.
    pub memory: Option<u64>,
}

impl Machine {
    /// Reads this machine's limits.
    pub(crate) fn read() -> Self {
        let open_files = getrlimit(Resource::RLIMIT_NOFILE).map_or(u64::MAX, |(_, hard)| hard);
        let ports = ephemeral_ports().map_or(u64::MAX, |(lo, hi)| hi - lo + 1);
        Self {
            open_files,
            ports,
            memory: mem_available(),
        }
    }
}

/// Refuses a plan that crosses a limit of `machine`, saying which, with the numbers, and what to do.
pub(crate) fn check(plan: Plan, machine: Machine) -> Result<(), String> {
    let per_worker = plan.subscribers.div_ceil(plan.workers.max(1));
    let suggest_workers = |cap: u64| plan.subscribers.div_ceil(cap.max(1));
    let fd_cap = machine.open_files.saturating_sub(FD_MARGIN);
    if per_worker > fd_cap {
        return Err(format!(
            "LIMIT open files: {per_worker} subscribers per load-generator process need about {} open files, but a process may open {} here; use --workers {} or more",
            per_worker + FD_MARGIN,
            machine.open_files,
            suggest_workers(fd_cap)
        ));
    }
    // Without a source address of its own, every client socket shares 127.0.0.1's ports with the others.
    let sharing_ports = if plan.own_source_addresses {
        per_worker
    } else {
        plan.subscribers
    };
    if sharing_ports > machine.ports {
        return Err(format!(
            "LIMIT ephemeral ports: {sharing_ports} client sockets on one source address, which has {} ports; use --workers {} or more (each binds its own loopback source address)",
            machine.ports,
            suggest_workers(machine.ports).max(2)
        ));
    }
    if plan.server_nodes > 0 {
        let per_node = plan.subscribers.div_ceil(plan.server_nodes);
        if per_node > fd_cap {
            return Err(format!(
                "LIMIT open files: {per_node} subscribers per server process need about {} open files, but a process may open {} here; use --cluster {} or more",
                per_node + FD_MARGIN,
                machine.open_files,
                plan.subscribers.div_ceil(fd_cap.max(1))
            ));
        }
    }
    if let Some(available) = machine.memory {
        let need = plan.subscribers
            * (LOADGEN_BYTES_PER_SUBSCRIBER + SERVER_AND_KERNEL_BYTES_PER_CONNECTION);
        if need > available {
            return Err(format!(
                "LIMIT memory: {} subscribers need about {} MiB (load generator, server and kernel), {} MiB are available",
                plan.subscribers,
                need >> 20,
                available >> 20
            ));
        }
    }
    Ok(())
}

/// Names the local limit behind a failed connect, with its numbers, when the error is one.
pub(crate) fn limit_reached(error: &io::Error) -> Option<String> {
    match error.raw_os_error()? {
        // EMFILE
        24 => {
            let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
            Some(format!(
                "LIMIT open files: this load-generator process may open {soft} (hard limit {hard}); use more --workers"
            ))
        }
        // ENFILE
        23 => Some("LIMIT open files: the system-wide file table is full (fs.file-max)".into()),
        // EADDRNOTAVAIL
        99 => Some(match ephemeral_ports() {
            Some((lo, hi)) => format!(
                "LIMIT ephemeral ports: all {} ports ({lo}–{hi}) of this source address are in use; use more --workers (one loopback source address each)",
                hi - lo + 1
            ),
            None => "LIMIT ephemeral ports: none free for this source address".into(),
        }),
        // ENOMEM, ENOBUFS
        12 | 105 => Some("LIMIT memory: the kernel has no memory left for sockets".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACHINE: Machine = Machine {
        open_files: 20_000,
        ports: 28_232,
        memory: Some(20 << 30),
    };

    fn plan(subscribers: u64, workers: u32, server_nodes: u32) -> Plan {
        Plan::new(subscribers, workers, server_nodes, server_nodes > 0)
    }

    #[test]
    fn one_process_holds_what_its_open_files_allow() {
        assert!(check(plan(19_000, 1, 1), MACHINE).is_ok());
        let refused = check(plan(20_000, 1, 1), MACHINE).unwrap_err();
        assert!(
            refused.contains("LIMIT open files")
                && refused.contains("20000")
                && refused.contains("--workers 2"),
            "{refused}"
        );
    }

    #[test]
    fn a_server_node_is_bounded_like_any_process() {
        let refused = check(plan(50_000, 3, 1), MACHINE).unwrap_err();
        assert!(
            refused.contains("per server process") && refused.contains("--cluster 3"),
            "{refused}"
        );
        assert!(check(plan(50_000, 3, 3), MACHINE).is_ok());
        // A server we do not start (target, peer) is not ours to bound.
        assert!(check(plan(50_000, 3, 0), MACHINE).is_ok());
    }

    #[test]
    fn ports_run_out_without_source_addresses_of_their_own() {
        let shared_ports = Plan {
            own_source_addresses: false,
            ..plan(30_000, 2, 2)
        };
        let refused = check(shared_ports, MACHINE).unwrap_err();
        assert!(
            refused.contains("LIMIT ephemeral ports") && refused.contains("28232"),
            "{refused}"
        );
        assert!(check(plan(30_000, 2, 2), MACHINE).is_ok());
    }

    #[test]
    fn memory_is_checked_against_what_is_available() {
        let small = Machine {
            memory: Some(100 << 20),
            ..MACHINE
        };
        let refused = check(plan(10_000, 1, 1), small).unwrap_err();
        assert!(
            refused.contains("LIMIT memory") && refused.contains("100 MiB"),
            "{refused}"
        );
    }

    #[test]
    fn connect_errors_name_their_limit() {
        let emfile = io::Error::from_raw_os_error(24);
        assert!(limit_reached(&emfile).unwrap().contains("LIMIT open files"));
        let ports = io::Error::from_raw_os_error(99);
        assert!(
            limit_reached(&ports)
                .unwrap()
                .contains("LIMIT ephemeral ports")
        );
        assert!(limit_reached(&io::Error::from_raw_os_error(111)).is_none());
    }
}
