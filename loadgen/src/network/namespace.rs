//! Network namespaces of the run's own, made with iproute2 (`ip netns`), entered by a thread with
//! `setns`, and removed when dropped — or by the next run, when a killed one left them.
//!
//! Names are `pb<PID>-<N><role>` (N counts this process's namespaces), so a later run can tell which ones
//! belong to a process that is gone.

use std::fs::File;
use std::process::Command;

use nix::sched::{CloneFlags, setns};

/// Why a namespace could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// Without root (CAP_NET_ADMIN and CAP_SYS_ADMIN) nothing can be emulated.
    #[error(
        "emulating a network needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create network namespaces: {0}; run as root, or use --network loopback"
    )]
    NotPermitted(String),
    /// `ip` failed otherwise.
    #[error("`ip {args}` failed: {reason}")]
    Ip {
        /// The arguments.
        args: String,
        /// What it printed, or why it could not run.
        reason: String,
    },
    /// The namespace could not be entered.
    #[error("entering network namespace {name}: {reason}")]
    Enter {
        /// Its name.
        name: String,
        /// The error.
        reason: String,
    },
}

/// Runs `ip ARGS`, failing with what it printed.
pub fn ip(args: &[&str]) -> Result<(), NamespaceError> {
    let shown = args.join(" ");
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NamespaceError::Ip {
            args: shown.clone(),
            reason: format!("{e} (install iproute2)"),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let reason = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if reason.contains("Operation not permitted") || reason.contains("Permission denied") {
        return Err(NamespaceError::NotPermitted(reason));
    }
    Err(NamespaceError::Ip {
        args: shown,
        reason,
    })
}

/// A network namespace that exists while this value does.
#[derive(Debug)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates `pb<PID>-<N><role>` with its loopback up, after removing namespaces left by dead runs.
    pub fn create(role: &str) -> Result<Self, NamespaceError> {
        static CREATED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        remove_stale();
        let n = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("pb{}-{n}{role}", std::process::id());
        ip(&["netns", "add", &name])?;
        let namespace = Self { name };
        ip(&["-n", &namespace.name, "link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// Its name, for `ip -n NAME` and `ip netns exec NAME`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its file, which `setns` takes.
    pub fn path(&self) -> std::path::PathBuf {
        format!("/var/run/netns/{}", self.name).into()
    }

    /// Moves the calling thread into this namespace: sockets it creates afterwards, threads it spawns
    /// and processes it starts belong here.
    pub fn enter(&self) -> Result<(), NamespaceError> {
        let handle = File::open(self.path()).map_err(|e| NamespaceError::Enter {
            name: self.name.clone(),
            reason: e.to_string(),
        })?;
        setns(&handle, CloneFlags::CLONE_NEWNET).map_err(|e| NamespaceError::Enter {
            name: self.name.clone(),
            reason: e.to_string(),
        })
    }

    /// Runs `f` on a thread of its own inside this namespace: sockets and devices it creates belong
    /// here, and stay usable from any thread afterwards.
    pub fn run_inside<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NamespaceError> {
        let path = self.path().display().to_string();
        let entered = |reason: String| NamespaceError::Enter {
            name: self.name.clone(),
            reason,
        };
        let handle = File::open(&path).map_err(|e| entered(format!("{path}: {e}")))?;
        std::thread::spawn(move || {
            setns(&handle, CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
            Ok(f())
        })
        .join()
        .map_err(|_| entered("the thread panicked".into()))?
        .map_err(entered)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting a namespace also removes its devices once nothing holds them.
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A command that runs `program` inside the namespace called `name`: `ip netns exec` enters it and then
/// execs the program, so the PID stays the program's (it is sampled and stopped by that PID).
pub fn command_inside(name: &str, program: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("ip");
    command.args(["netns", "exec", name]).arg(program);
    command
}

/// Removes `pb<PID>-…` namespaces whose process no longer runs.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = owner(&name)
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// The PID in a name `pb<PID>-…`.
fn owner(name: &str) -> Option<u32> {
    name.strip_prefix("pb")?.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_owner() {
        assert_eq!(owner("pb4242-srv"), Some(4242));
        assert_eq!(owner("pbx-srv"), None);
        assert_eq!(owner("other"), None);
    }
}
