//! The strategy's sandbox: a PID namespace of its own.
//!
//! A strategy is any command, and commands change process groups at will
//! (`timeout`, `setsid`, `nohup … &`, double-forking helpers, package-manager
//! hooks). So the strategy does not run as a child of ours but under a small
//! init (`canary/sandbox-init.c`, built and cached like the canary) that is
//! the first process of a PID namespace made for it: everything the
//! strategy starts lives in it. fault-fs traces and faults the ops of every
//! process in that namespace ([`fault_fs::Scope::PidNamespace`]); a kill
//! fault kills the namespace's init, and the kernel kills the rest; the
//! strategy has finished when its first process has, and what it left
//! running is reported, then killed.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::live::{ChildGuard, Exit};

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
    /// The namespace could not be made.
    #[error("cannot run the strategy in a PID namespace of its own: {0}")]
    Namespace(String),
    /// Not root, and no user namespace to be root in.
    #[error("cannot make a user namespace to mount FUSE in without root: {0} (hint: allow unprivileged user namespaces: `sysctl -w kernel.unprivileged_userns_clone=1` on Debian, `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` on Ubuntu; or run as root)")]
    UserNamespace(String),
    /// Not root, and /dev/fuse is not open to this user.
    #[error("cannot open /dev/fuse for reading and writing: {0} (hint: `chmod 0666 /dev/fuse`, the mode distributions ship it with; or run as root)")]
    FuseDevice(std::io::Error),
}

/// Whether this process's user namespace maps a single uid: so it is in
/// rootless mode, where every file has one owner.
pub fn single_uid() -> bool {
    static SINGLE: OnceLock<bool> = OnceLock::new();
    *SINGLE.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
            let ranges: Vec<&str> = map.lines().collect();
            ranges.len() == 1 && ranges[0].split_whitespace().nth(2) == Some("1")
        })
    })
}

/// Makes this process root in a user namespace of its own (its uid and gid
/// mapped to 0), so it may make mount and PID namespaces and mount FUSE
/// there, as the kernel allows since Linux 4.18. Checks /dev/fuse first:
/// without it, the namespace would only defer the error.
fn enter_user_namespace() -> Result<(), SandboxError> {
    use nix::sched::{unshare, CloneFlags};
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    if std::path::Path::new("/dev/fuse").exists() {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .map_err(SandboxError::FuseDevice)?;
    }
    unshare(CloneFlags::CLONE_NEWUSER)
        .map_err(|err| SandboxError::UserNamespace(err.desc().into()))?;
    let write = |file: &str, text: String| {
        std::fs::write(file, text)
            .map_err(|err| SandboxError::UserNamespace(format!("cannot write {file}: {err}")))
    };
    // setgroups must be denied before an unprivileged process maps a gid.
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(())
}

/// A strategy's process tree, started and waiting at its gate.
#[derive(Debug)]
pub struct Sandbox {
    /// The namespace's init, our child: killing it kills the namespace.
    pub child: ChildGuard,
    /// The init's pid, as this process sees it.
    pub init: u32,
    /// The namespace's inode: what fault-fs scopes to.
    pub ns: u64,
}

/// How the strategy ended, as its init reported it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ending {
    /// How its first process ended (`None`: killed with the namespace).
    pub exit: Option<Exit>,
    /// Processes it started that were still running then: `comm (pid N)`.
    pub left_running: Vec<String>,
    /// What the init could not do, if anything.
    pub error: Option<String>,
}

/// This process's own PID namespace, to go back to after each spawn.
fn own_pid_namespace() -> Result<&'static OwnedFd, SandboxError> {
    static OWN: OnceLock<Result<OwnedFd, String>> = OnceLock::new();
    OWN.get_or_init(|| {
        std::fs::File::open("/proc/self/ns/pid")
            .map(OwnedFd::from)
            .map_err(|err| format!("cannot open /proc/self/ns/pid: {err}"))
    })
    .as_ref()
    .map_err(|err| SandboxError::Namespace(err.clone()))
}

impl Sandbox {
    /// Starts `command` (prepared with its arguments, environment, working
    /// directory, stdin and stderr) under `init`, as the first process of a
    /// new PID namespace. The command's stdout is /dev/null.
    ///
    /// The init's death signal is tied to the calling thread: call it from
    /// the thread that waits for the sandbox.
    pub fn spawn(init: &Path, command: &Command) -> Result<Sandbox, SandboxError> {
        use nix::sched::{setns, unshare, CloneFlags};

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
        let own = own_pid_namespace()?;
        // The PID namespace for children is the calling thread's alone: the
        // next process this thread starts is the new namespace's init, and
        // the thread goes back to its own namespace right after.
        unshare(CloneFlags::CLONE_NEWPID).map_err(|err| {
            SandboxError::Namespace(format!("unshare: {err}{}", namespace_hint(err)))
        })?;
        let spawned = ChildGuard::spawn(wrapped);
        setns(own.as_fd(), CloneFlags::CLONE_NEWPID)
            .map_err(|err| SandboxError::Namespace(format!("back to our own: {err}")))?;
        let child = spawned.map_err(|source| SandboxError::Spawn {
            init: init.display().to_string(),
            source,
        })?;
        let init = child.pid();
        // Our child, not reaped yet: its pid cannot name another process.
        let ns = fault_fs::pid_ns_of(init);
        if ns == 0 {
            return Err(SandboxError::Namespace(format!(
                "cannot tell the namespace of pid {init} (hint: needs Linux 6.11 or later)"
            )));
        }
        Ok(Sandbox { child, init, ns })
    }

    /// Kills the whole tree now (its init, and so every process in it).
    pub fn kill(&self) {
        self.child.signal_group();
    }

    /// What the init reported (call once it has exited: its report is
    /// complete then, and bounded to fit the pipe).
    pub fn ending(&mut self) -> Ending {
        let mut text = String::new();
        if let Some(mut stdout) = self.child.take_stdout() {
            let _ = stdout.read_to_string(&mut text);
        }
        let mut ending = Ending::default();
        for line in text.lines() {
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("exit"), Some(code), _) => ending.exit = code.parse().ok().map(Exit::Code),
                (Some("signal"), Some(signal), _) => {
                    ending.exit = signal.parse().ok().map(Exit::Signal)
                }
                (Some("left"), Some(pid), comm) => ending
                    .left_running
                    .push(format!("{} (pid {pid})", comm.unwrap_or("?"))),
                (Some("error"), _, _) => ending.error = Some(line["error ".len()..].to_owned()),
                _ => {}
            }
        }
        ending
    }
}

/// The fix for a namespace the kernel refused.
fn namespace_hint(err: nix::Error) -> &'static str {
    match err {
        nix::Error::EPERM => " (hint: run as root, or allow unprivileged user namespaces: `sysctl -w kernel.unprivileged_userns_clone=1`)",
        nix::Error::ENOSPC => " (hint: too many namespaces: raise `user.max_pid_namespaces`)",
        _ => "",
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
/// and exits as the child does (its death kills the child). Not root, it
/// first becomes root in a user namespace of its own (rootless mode); where
/// that is refused, it says why and how to allow it.
pub fn enter_private_namespaces() -> Result<bool, SandboxError> {
    use nix::sched::{unshare, CloneFlags};
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    use nix::unistd::{fork, ForkResult};

    if !nix::unistd::geteuid().is_root() {
        enter_user_namespace()?;
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
