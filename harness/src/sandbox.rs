//! The strategy's sandbox: a PID namespace of its own.
//!
//! A strategy is any command, and commands change process groups at will
//! (`timeout`, `setsid`, `nohup … &`, double-forking helpers, package-manager
//! hooks). So the strategy does not run as a child of ours but under a small
//! init (`canary/sandbox-init.c`, built and cached like the canary) that
//! first makes a PID namespace: everything the strategy starts lives in it.
//! fault-fs traces and faults the ops of every process in that namespace
//! ([`fault_fs::Scope::PidNamespace`]); a kill fault kills the namespace's
//! init, and the kernel kills the rest; the strategy has finished when its
//! first process has, and what it left running is reported, then killed.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::live::{pidfd_open, ChildGuard, Exit};

/// How long the init may take to make its namespace.
const READY: Duration = Duration::from_secs(10);

/// Why a sandbox could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The init could not be run.
    #[error("cannot start the strategy's sandbox {init}: {source}")]
    Spawn {
        /// The init executable.
        init: String,
        /// Why.
        source: std::io::Error,
    },
    /// The init could not make the namespace.
    #[error("cannot run the strategy in a PID namespace of its own: {0} (hint: run as root)")]
    Namespace(String),
    /// The init said nothing in time.
    #[error(
        "the strategy's sandbox did not start within {0:?} (hint: is the machine overloaded?)"
    )]
    Silent(Duration),
}

/// A strategy's process tree, started and waiting at its gate.
#[derive(Debug)]
pub struct Sandbox {
    /// The init outside the namespace: it ends when the namespace does.
    pub child: ChildGuard,
    /// The namespace's init, as this process sees it.
    pub init: u32,
    /// The namespace's inode: what fault-fs scopes to.
    pub ns: u64,
    /// A pidfd of the init, taken while it surely ran (it waits for the
    /// strategy, which waits at its gate): signals through it never reach
    /// another process that reused the pid.
    init_fd: Option<OwnedFd>,
    report: Receiver<String>,
}

/// How the strategy ended, as its init reported it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ending {
    /// How its first process ended (`None`: killed with the namespace).
    pub exit: Option<Exit>,
    /// Processes it started that were still running then: `comm (pid N)`.
    pub left_running: Vec<String>,
}

impl Sandbox {
    /// Starts `command` (prepared with its arguments, environment, working
    /// directory, stdin and stderr) under `init`, and waits until its
    /// namespace exists. The command's stdout is /dev/null.
    pub fn spawn(init: &Path, command: &Command) -> Result<Sandbox, SandboxError> {
        let mut wrapped = Command::new(init);
        wrapped.arg(command.get_program()).args(command.get_args());
        if let Some(dir) = command.get_current_dir() {
            wrapped.current_dir(dir);
        }
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        wrapped
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(wrapped).map_err(|source| SandboxError::Spawn {
            init: init.display().to_string(),
            source,
        })?;
        let (tx, report) = std::sync::mpsc::channel();
        if let Some(stdout) = child.take_stdout() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let first = match report.recv_timeout(READY) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => return Err(SandboxError::Silent(READY)),
            Err(RecvTimeoutError::Disconnected) => {
                let exit = child
                    .try_exit()
                    .map_or("no report".into(), |e| e.to_string());
                return Err(SandboxError::Namespace(exit));
            }
        };
        let init = match first.split_once(' ') {
            Some(("ready", pid)) => pid.trim().parse::<u32>().ok(),
            Some(("error", text)) => return Err(SandboxError::Namespace(text.to_owned())),
            _ => None,
        }
        .ok_or_else(|| SandboxError::Namespace(format!("unexpected report `{first}`")))?;
        let ns = fault_fs::pid_ns_of(init);
        if ns == 0 {
            return Err(SandboxError::Namespace(format!(
                "cannot tell the namespace of pid {init} (hint: needs Linux 6.11 or later)"
            )));
        }
        let init_fd = pidfd_open(init);
        Ok(Sandbox {
            child,
            init,
            ns,
            init_fd,
            report,
        })
    }

    /// Kills the whole tree now (its init, and so every process in it).
    pub fn kill(&self) {
        if let Some(fd) = &self.init_fd {
            // SAFETY: pidfd_send_signal with a pidfd we own, a signal, no info.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        }
    }

    /// What the init reported once the tree has ended (call after the
    /// outer init exited: its report is complete then).
    pub fn ending(&self) -> Ending {
        let mut ending = Ending::default();
        while let Ok(line) = self.report.recv_timeout(Duration::from_secs(1)) {
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("exit"), Some(code), _) => ending.exit = code.parse().ok().map(Exit::Code),
                (Some("signal"), Some(signal), _) => {
                    ending.exit = signal.parse().ok().map(Exit::Signal)
                }
                (Some("left"), Some(pid), comm) => ending
                    .left_running
                    .push(format!("{} (pid {pid})", comm.unwrap_or("?"))),
                _ => {}
            }
        }
        ending
    }
}

/// Runs the rest of this process in private mount and PID namespaces, so
/// that nothing it mounts shows in the user's mount table, and whatever
/// ends it (a SIGKILL, the OOM killer, a CI timeout) ends every process it
/// started and takes its mounts with it: the kernel kills a PID namespace
/// with its first process, and a mount namespace goes with its last.
///
/// Call it first thing, while the process has one thread. It forks: the
/// child returns `Ok(true)` and carries on as the namespace's first
/// process; the parent stays outside, passes on SIGINT, SIGTERM and SIGHUP,
/// and exits as the child does (its death kills the child). Without the
/// privilege (not root), it returns `Ok(false)` and nothing is private.
pub fn enter_private_namespaces() -> Result<bool, SandboxError> {
    use nix::sched::{unshare, CloneFlags};
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    use nix::unistd::{fork, ForkResult};

    if !nix::unistd::geteuid().is_root() {
        return Ok(false);
    }
    if let Err(err) = unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID) {
        tracing::warn!(%err, "no private namespaces: mounts show and may outlive a killed run");
        return Ok(false);
    }
    let namespace_error =
        |what: &str, err: nix::Error| SandboxError::Namespace(format!("{what}: {err}"));
    let mut forwarded = SigSet::empty();
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        forwarded.add(signal);
    }
    // Blocked before the fork, so the parent loses none; the child unblocks.
    let before = forwarded
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(|e| namespace_error("sigprocmask", e))?;
    // SAFETY: one thread (checked by the caller's contract): the child may
    // do anything a fresh process can.
    match unsafe { fork() }.map_err(|e| namespace_error("fork", e))? {
        ForkResult::Child => {
            let _ = before.thread_set_mask();
            // SAFETY: prctl with an integer option and a signal number.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            use nix::mount::{mount, MsFlags};
            // Our mounts must not propagate back to the user's namespace.
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(|e| namespace_error("making / private", e))?;
            // /proc of this PID namespace: the pids FUSE reports and the
            // ones we spawn are this namespace's.
            mount(
                Some("proc"),
                "/proc",
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(|e| namespace_error("mounting /proc", e))?;
            Ok(true)
        }
        ForkResult::Parent { child } => {
            use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
            loop {
                let Ok(signal) = forwarded.wait() else {
                    continue;
                };
                if signal != Signal::SIGCHLD {
                    let _ = nix::sys::signal::kill(child, signal);
                    continue;
                }
                match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
                    Ok(WaitStatus::Signaled(_, signal, _)) => {
                        std::process::exit(128 + signal as i32)
                    }
                    _ => {}
                }
            }
        }
    }
}
