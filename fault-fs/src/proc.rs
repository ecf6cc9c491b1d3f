//! The processes behind FUSE requests: who a caller is (group, PID
//! namespace, command name), and signalling a program's whole tree. Every
//! helper here takes none of the locks a caller blocked on this file system
//! may hold (no `/proc/PID/stat`, no `readlink` of its namespace).

use std::os::fd::{FromRawFd, OwnedFd};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::op::Shared;

/// What scoping needs of a caller.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) pgid: u32,
    /// Its PID namespace's inode and those of its ancestors, innermost
    /// first, as far as this process sees them (empty: unknown).
    pub(crate) pid_ns: std::sync::Arc<[u64]>,
    pub(crate) comm: Shared,
}

impl Caller {
    /// Whether the caller lives in the PID namespace `ns` or in one nested
    /// in it (a sandbox inside the strategy: `unshare --pid`, bwrap).
    pub(crate) fn within(&self, ns: u64) -> bool {
        self.pid_ns.contains(&ns)
    }
}

/// The inode of the PID namespace of `pid`, a process or any of its
/// threads (FUSE names the calling thread) (0 once it is gone, or on a
/// kernel before 6.11).
pub fn pid_ns_of(pid: u32) -> u64 {
    pid_ns_chain(pid).first().copied().unwrap_or(0)
}

/// The inodes of the PID namespace of `pid` and of each namespace it is
/// nested in, innermost first, up to the first this process may not see
/// (empty once the process is gone, or on a kernel before 6.11).
///
/// Never `readlink /proc/PID/ns/pid`: it waits for the process's exec lock,
/// and a process exec'ing a binary from this very file system holds it
/// while it waits for our answer. A pidfd's namespace ioctl takes no lock,
/// nor does asking a namespace for its parent.
pub fn pid_ns_chain(pid: u32) -> Vec<u64> {
    /// `PIDFD_GET_PID_NAMESPACE`: `_IO(0xFF, 5)`, Linux 6.11.
    const PIDFD_GET_PID_NAMESPACE: libc::c_ulong = 0xFF05;
    /// `NS_GET_PARENT`: `_IO(0xb7, 2)`, Linux 4.9.
    const NS_GET_PARENT: libc::c_ulong = 0xb702;
    /// Deeper than any sandbox nests (the kernel allows 32 levels).
    const MAX_DEPTH: usize = 32;
    // SAFETY (both ioctls): the argument must be 0 (the kernel refuses
    // anything else, and a variadic call without it passes garbage); each
    // returns a new fd or -1.
    let ioctl = |fd: &OwnedFd, request: libc::c_ulong| -> Option<OwnedFd> {
        let raw = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(fd),
                request,
                0 as libc::c_ulong,
            )
        };
        // SAFETY: a fresh fd that nothing else owns.
        (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw) })
    };
    let mut chain = Vec::new();
    let Some(pidfd) = pidfd_of(pid) else {
        return chain;
    };
    let mut ns = ioctl(&pidfd, PIDFD_GET_PID_NAMESPACE);
    while let Some(fd) = ns.take() {
        let Ok(stat) = nix::sys::stat::fstat(&fd) else {
            break;
        };
        chain.push(stat.st_ino);
        if chain.len() == MAX_DEPTH {
            break;
        }
        // EPERM above the namespaces this process sees: the walk ends.
        ns = ioctl(&fd, NS_GET_PARENT);
    }
    chain
}

/// A pidfd of `pid`, a process or any of its threads; `None` once it is
/// gone.
pub fn pidfd_of(pid: u32) -> Option<OwnedFd> {
    /// `PIDFD_THREAD` (`O_EXCL`), Linux 6.9: a pidfd of any thread, not only
    /// of a thread group's leader. Without it the ops of a strategy's other
    /// threads were out of scope: never traced, never faulted.
    const PIDFD_THREAD: libc::c_int = libc::O_EXCL;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, PIDFD_THREAD) };
    // SAFETY: a fresh fd that nothing else owns.
    (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd as i32) })
}

/// A process's group, PID namespace and command name; `None` once it is
/// gone.
///
/// Never /proc/PID/stat: reading it takes the caller's mm lock, and a caller
/// blocked in a page fault on this very file system may hold that lock, so
/// the handler would deadlock. getpgid(2), the pidfd ioctl and
/// /proc/PID/comm take none of the caller's locks.
pub(crate) fn proc_info(pid: u32) -> Option<Caller> {
    let pgid = nix::unistd::getpgid(Some(Pid::from_raw(pid as i32))).ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_else(|_| "?".into());
    Some(Caller {
        pgid: pgid.as_raw() as u32,
        pid_ns: pid_ns_chain(pid).into(),
        comm: Shared::from(comm.as_str()),
    })
}

/// Sends `signal` to every process of the PID namespace whose init is
/// `init`, but the init, the caller first, before its request is answered:
/// so no process of the tree runs on past the op. A process may fork while
/// its siblings are signalled, so the namespace is walked again until a
/// walk finds nobody new.
pub(crate) fn signal_namespace(init: u32, caller: u32, signal: Signal) {
    let kill_one = |pid: u32| {
        if let Err(err) = kill(Pid::from_raw(pid as i32), signal) {
            tracing::debug!(pid, ?signal, %err, "kill fault: process already gone");
        }
    };
    kill_one(caller);
    let mut signalled = vec![caller];
    // Bounded: a tree that forks faster than it is walked is not waited on.
    for _ in 0..8 {
        let new: Vec<u32> = descendants(init)
            .into_iter()
            .filter(|pid| !signalled.contains(pid))
            .collect();
        if new.is_empty() {
            break;
        }
        for pid in new {
            kill_one(pid);
            signalled.push(pid);
        }
    }
}

/// Every descendant of `pid` (orphans are reparented to a namespace's
/// init, so from an init this is the whole namespace). Reads the
/// `children` file of each thread, which takes no lock a process blocked
/// on this file system could hold.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut next = vec![pid];
    while let Some(parent) = next.pop() {
        let Ok(threads) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for thread in threads.flatten() {
            let children = std::fs::read_to_string(thread.path().join("children"));
            for child in children.iter().flat_map(|c| c.split_whitespace()) {
                if let Ok(child) = child.parse::<u32>() {
                    if !found.contains(&child) {
                        found.push(child);
                        next.push(child);
                    }
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_in_our_pid_namespace_and_its_ancestors() {
        let ours = std::fs::read_link("/proc/self/ns/pid").expect("ns link");
        let ino = pid_ns_of(std::process::id());
        assert_eq!(ours.to_string_lossy(), format!("pid:[{ino}]"));
        // Our own namespace first, then any this process sees it nested in
        // (none here, or the host's when the test runs in a container).
        let chain = pid_ns_chain(std::process::id());
        assert_eq!(chain.first(), Some(&ino));
        let mut unique = chain.clone();
        unique.dedup();
        assert_eq!(unique, chain, "no namespace twice");
    }
}
