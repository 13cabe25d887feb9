//! Children that die with the run, however it ends — SIGKILL included.
//!
//! A process killed with SIGKILL runs no code, so what it started must be stopped by another process.
//! The first [`guard`] starts a watchdog: this same binary as `pushbench watchdog`, in a process group of
//! its own (so a Ctrl-C meant for the run does not stop it first), reading a pipe from the run on its
//! standard input. The run writes every child's PID and every temporary directory to that pipe; when
//! the pipe closes — the run ended, normally or not — the watchdog stops what is still running (SIGTERM
//! to the child and its descendants, SIGKILL after [`GRACE`]) and removes the directories. A PID is
//! signalled only while `/proc` shows the start time it had when it was registered, so a PID the kernel
//! has since given to another process is never hit.
//!
//! Why not `PR_SET_PDEATHSIG`: it fires when the spawning *thread* exits, and tokio spawns from worker
//! and blocking-pool threads (the latter exit after 10 s idle), which would kill children mid-run; it
//! also needs `pre_exec`, which is `unsafe` (forbidden in this workspace), and Redis, nginx and Pushpin
//! cannot be asked to set it themselves.

use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::descendants;

/// How long the stopped processes get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// The pipe to the watchdog, once one runs.
static PIPE: Mutex<Option<ChildStdin>> = Mutex::new(None);
/// The watchdog's PID, once one runs.
static WATCHDOG: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// The watchdog's PID, if this process has started one: a descendant that lives as long as this process
/// does, by design.
pub fn watchdog_pid() -> Option<u32> {
    WATCHDOG.get().copied()
}

/// A child just spawned, registered with the watchdog: `command.spawn().map(guarded)`.
pub fn guarded(child: tokio::process::Child) -> tokio::process::Child {
    if let Some(pid) = child.id() {
        guard(pid);
    }
    child
}

/// Makes sure process `pid` (a child of this one) and its descendants do not outlive this process.
fn guard(pid: u32) {
    // A child already gone has nothing to stop.
    if let Some(started) = start_time(pid) {
        tell(&format!("pid {pid} {started}"));
    }
}

/// Makes sure directory `path` is removed when this process ends, however it ends.
pub fn guard_dir(path: &Path) {
    tell(&format!("dir {}", path.display()));
}

/// Sends one line to the watchdog, starting it first if need be. A watchdog that cannot be started or
/// reached is a warning, not an error: the run still stops its children itself when it ends normally.
fn tell(line: &str) {
    let mut pipe = PIPE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if pipe.is_none() {
        match start() {
            Ok(stdin) => *pipe = Some(stdin),
            Err(e) => {
                eprintln!(
                    "pushbench: warning: cannot start the watchdog ({e}); a killed run may leave processes behind"
                );
                return;
            }
        }
    }
    if let Some(stdin) = pipe.as_mut()
        && let Err(e) = writeln!(stdin, "{line}")
    {
        eprintln!(
            "pushbench: warning: the watchdog is gone ({e}); a killed run may leave processes behind"
        );
    }
}

fn start() -> std::io::Result<ChildStdin> {
    let exe = super::pushbench_executable().map_err(std::io::Error::other)?;
    let mut child = Command::new(exe)
        .arg("watchdog")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()?;
    let _ = WATCHDOG.set(child.id());
    Ok(child.stdin.take().expect("stdin is piped"))
}

/// `pushbench watchdog`: reads registrations until its input closes, then stops and removes what they
/// name.
pub fn serve() {
    let mut processes = Vec::new();
    let mut dirs = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.split_once(' ') {
            Some(("pid", rest)) => {
                if let Some((pid, started)) = rest.split_once(' ')
                    && let (Ok(pid), Ok(started)) = (pid.parse::<u32>(), started.parse::<u64>())
                {
                    processes.push((pid, started));
                }
            }
            Some(("dir", path)) => dirs.push(PathBuf::from(path)),
            _ => {}
        }
    }
    stop_all(&processes);
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Stops the registered processes still running as themselves, with their descendants.
fn stop_all(registered: &[(u32, u64)]) {
    let alive: Vec<(u32, u64)> = registered
        .iter()
        .filter(|&&(pid, started)| start_time(pid) == Some(started))
        .flat_map(|&(pid, _)| std::iter::once(pid).chain(descendants(pid)))
        .filter_map(|pid| Some((pid, start_time(pid)?)))
        .collect();
    let signal = |pids: &[(u32, u64)], signal: Signal| {
        for &(pid, started) in pids {
            if start_time(pid) == Some(started) {
                let _ = kill(Pid::from_raw(pid as i32), signal);
            }
        }
    };
    signal(&alive, Signal::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && alive.iter().any(|&(pid, s)| start_time(pid) == Some(s)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&alive, Signal::SIGKILL);
}

/// When process `pid` started (field 22 of `/proc/PID/stat`, clock ticks after boot), or `None` when
/// there is no such process or it is a zombie (already exited, waiting to be reaped).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name's last ')': state (field 3), then fields 4.. ; start time is field 22.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_tell_a_process_from_a_recycled_pid() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let started = start_time(child.id()).expect("a running child has a start time");
        assert_eq!(start_time(child.id()), Some(started), "stable");
        let own = start_time(std::process::id()).unwrap();
        assert!(own <= started, "we started before our child");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(start_time(child.id()), None, "gone once reaped");
    }

    #[test]
    fn stopping_spares_a_pid_whose_start_time_differs() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let started = start_time(child.id()).unwrap();
        stop_all(&[(child.id(), started + 1)]);
        assert!(child.try_wait().unwrap().is_none(), "not ours: left alone");
        stop_all(&[(child.id(), started)]);
        let status = child.wait().unwrap();
        assert!(!status.success(), "stopped by a signal");
    }
}
