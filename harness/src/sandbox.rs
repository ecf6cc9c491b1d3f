//! The strategy's sandbox: a PID namespace of its own.
//!
//! A strategy is any command, and commands change process groups at will
//! (`timeout`, `setsid`, `nohup … &`, double-forking helpers, package-manager
//! hooks). So the strategy does not run as a child of ours but under a small
//! init (`canary/sandbox-init.c`, built and cached like the canary) that is
//! the first process of a PID namespace made for it: everything the
//! strategy starts lives in it, and in any namespace nested in it.
//! fault-fs traces and faults the ops of every process there
//! ([`fault_fs::Scope::PidNamespace`]); a kill fault kills every process in
//! it but the init. The init says when the strategy's first process ends,
//! then waits for what it left running (a helper that finishes the work)
//! until none is left or it is told to stop waiting; what still ran then
//! is reported, then killed. The strategy sees a /proc of its own PID
//! namespace and a /tmp of its own (see `sandbox-init.c`). One init serves
//! all the runs of a stage, one after another.

use std::ffi::OsStr;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::observe::Exit;
use crate::proc::ChildGuard;

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

/// A worker's sandbox: an init, the first process of a PID namespace of its
/// own, that runs each strategy it is sent ([`Sandbox::run`]) and reports
/// how it ended ([`Sandbox::wait_for_ending`]). One serves every run of a
/// stage, so a crash point pays neither the init's exec nor a namespace.
#[derive(Debug)]
pub struct Sandbox {
    /// The namespace's init, our child: killing it kills the namespace.
    child: ChildGuard,
    /// Our end of the init's request socket.
    control: OwnedFd,
    /// The init's pid, as this process sees it.
    pub init: u32,
    /// The namespace's inode: what fault-fs scopes to.
    pub ns: u64,
    /// The thread that started the init: the init dies with it.
    thread: std::thread::ThreadId,
    /// The init's seccomp listener for sync(2) and syncfs(2), until
    /// [`Sandbox::watch_syncs`] takes it (`None`: the kernel refused it).
    sync_listener: Option<OwnedFd>,
    /// Answers those calls: dropped after the init (the field above it),
    /// once nothing is left to call.
    syncs: Option<crate::barrier::SyncWatch>,
}

/// How the strategy ended, as its init reported it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ending {
    /// How its first process ended (`None`: killed with the namespace).
    pub exit: Option<Exit>,
    /// Processes it started that were still running when the init was told
    /// to stop waiting for them: `comm (pid N)`.
    pub left_running: Vec<String>,
    /// A process it started ran on after it ended.
    pub outlived: bool,
    /// What the init could not do, if anything.
    pub error: Option<String>,
}

/// What the init says during a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The strategy's first process ended (`None`: killed with the
    /// namespace); what it left may still run.
    FirstEnded(Option<Exit>),
    /// The run is over: everything it started has ended or was killed.
    Ended(Ending),
}

/// `exit N` or `signal N`, as the init writes them.
fn exit_of(kind: &str, value: &str) -> Option<Exit> {
    match kind {
        "exit" => value.parse().ok().map(Exit::Code),
        "signal" => value.parse().ok().map(Exit::Signal),
        _ => None,
    }
}

impl Message {
    /// Reads one message of the init (see `sandbox-init.c`).
    fn parse(text: &str) -> Message {
        if let Some(first) = text.strip_prefix("first ") {
            let mut words = first.split_whitespace();
            let exit = match (words.next(), words.next()) {
                (Some(kind), Some(value)) => exit_of(kind, value),
                _ => None,
            };
            return Message::FirstEnded(exit);
        }
        let mut ending = Ending::default();
        for line in text.lines() {
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some(kind @ ("exit" | "signal")), Some(value), _) => {
                    ending.exit = exit_of(kind, value)
                }
                (Some("left"), Some(pid), comm) => ending
                    .left_running
                    .push(format!("{} (pid {pid})", comm.unwrap_or("?"))),
                (Some("error"), _, _) => ending.error = Some(line["error ".len()..].to_owned()),
                (Some("outlived"), _, _) => ending.outlived = true,
                _ => {}
            }
        }
        Message::Ended(ending)
    }
}

/// How long the init may take to say it is ready.
const READY: Duration = Duration::from_secs(10);

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

/// Appends one request field: its tag, its bytes, a NUL. A NUL inside
/// would end it early, so it is refused, as exec would refuse it.
fn push_field(request: &mut Vec<u8>, tag: u8, parts: &[&OsStr]) -> Result<(), SandboxError> {
    request.push(tag);
    for part in parts {
        if part.as_bytes().contains(&0) {
            return Err(SandboxError::Namespace(format!(
                "the strategy's command holds a NUL byte: {}",
                part.to_string_lossy()
            )));
        }
        request.extend_from_slice(part.as_bytes());
    }
    request.push(0);
    Ok(())
}

impl Sandbox {
    /// Starts `init` as the first process of a new PID namespace, ready for
    /// runs of the stage whose run dir is `run_dir`.
    ///
    /// The init's death signal is tied to the calling thread: runs from
    /// another thread need a sandbox of their own ([`Sandbox::is_ours`]).
    pub fn start(init: &Path, run_dir: &Path) -> Result<Sandbox, SandboxError> {
        use nix::sched::{setns, unshare, CloneFlags};
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|err| SandboxError::Namespace(format!("socketpair: {err}")))?;
        let mut command = Command::new(init);
        command.arg("--serve").arg(run_dir);
        command
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let own = own_pid_namespace()?;
        // The PID namespace for children is the calling thread's alone: the
        // next process this thread starts is the new namespace's init, and
        // the thread goes back to its own namespace right after.
        unshare(CloneFlags::CLONE_NEWPID).map_err(|err| {
            SandboxError::Namespace(format!("unshare: {err}{}", namespace_hint(err)))
        })?;
        let spawned = ChildGuard::spawn(command);
        setns(own.as_fd(), CloneFlags::CLONE_NEWPID)
            .map_err(|err| SandboxError::Namespace(format!("back to our own: {err}")))?;
        let child = spawned.map_err(|source| SandboxError::Spawn {
            init: init.display().to_string(),
            source,
        })?;
        let pid = child.pid();
        // Our child, not reaped yet: its pid cannot name another process.
        let ns = fault_fs::pid_ns_of(pid);
        if ns == 0 {
            return Err(SandboxError::Namespace(format!(
                "cannot tell the namespace of pid {pid} (hint: needs Linux 6.11 or later)"
            )));
        }
        let mut sandbox = Sandbox {
            child,
            control: ours,
            init: pid,
            ns,
            thread: std::thread::current().id(),
            sync_listener: None,
            syncs: None,
        };
        // Its mounts are made (or not) before it takes a request.
        let (ready, listener) = sandbox.receive_with_fd(READY);
        sandbox.sync_listener = listener;
        match ready {
            Some(ready) if ready.starts_with("ready") => {
                for notice in ready.lines().filter_map(|l| l.strip_prefix("notice ")) {
                    tracing::warn!("the strategy's sandbox has {notice}");
                }
                Ok(sandbox)
            }
            Some(said) => Err(SandboxError::Namespace(
                said.trim_start_matches("error ").trim_end().to_owned(),
            )),
            None => Err(SandboxError::Namespace(format!(
                "the strategy's init said nothing in {READY:?}"
            ))),
        }
    }

    /// Hands the strategy's sync(2) and syncfs(2) calls to `handle`'s file
    /// system (mounted with the st_dev `devices`) from now on (see
    /// [`crate::barrier`]). Without a listener (a kernel that refused it)
    /// they go to the kernel alone, which FUSE never hears of.
    pub fn watch_syncs(&mut self, handle: &fault_fs::FaultFsHandle, devices: Vec<u64>) {
        let Some(listener) = self.sync_listener.take() else {
            return;
        };
        match crate::barrier::SyncWatch::start(listener, handle.clone(), devices) {
            Ok(watch) => self.syncs = Some(watch),
            Err(err) => tracing::warn!(%err, "cannot watch the strategy's sync(2) calls"),
        }
    }

    /// Whether runs may be sent from this thread: it is the one the init
    /// dies with, and the init is alive.
    pub fn is_ours(&self) -> bool {
        self.thread == std::thread::current().id() && self.child.is_running()
    }

    /// Starts `command` (prepared with its arguments, environment changes
    /// and working directory) in the namespace, with stdin /dev/null,
    /// stdout /dev/null and stderr `stderr`.
    ///
    /// With `fresh_tmp`, the strategy's /tmp is emptied first: a new crash
    /// point (a retry finds what the run before left there).
    pub fn run(
        &mut self,
        command: &Command,
        stderr: OwnedFd,
        fresh_tmp: bool,
    ) -> Result<(), SandboxError> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let mut request = Vec::new();
        if fresh_tmp {
            push_field(&mut request, b't', &[])?;
        }
        if let Some(dir) = command.get_current_dir() {
            push_field(&mut request, b'd', &[dir.as_os_str()])?;
        }
        push_field(&mut request, b'a', &[command.get_program()])?;
        for arg in command.get_args() {
            push_field(&mut request, b'a', &[arg])?;
        }
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => push_field(&mut request, b'e', &[key, "=".as_ref(), value])?,
                None => push_field(&mut request, b'u', &[key])?,
            }
        }
        let stdin = std::fs::File::open("/dev/null")
            .map_err(|err| SandboxError::Namespace(format!("cannot open /dev/null: {err}")))?;
        let fds = [stdin.as_raw_fd(), stderr.as_raw_fd()];
        sendmsg::<()>(
            self.control.as_raw_fd(),
            &[IoSlice::new(&request)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|err| match err {
            nix::Error::EMSGSIZE => SandboxError::Namespace(format!(
                "the strategy's command and environment are too large ({} bytes)",
                request.len()
            )),
            err => SandboxError::Namespace(format!("the sandbox's init is gone: {err}")),
        })?;
        Ok(())
    }

    /// Waits up to `timeout` for the init's next message, as text; `None`
    /// when none came, and an empty text once the init is gone (killed,
    /// and its namespace with it: a Ctrl-C kills every child of ours).
    fn receive(&self, timeout: Duration) -> Option<String> {
        self.receive_with_fd(timeout).0
    }

    /// [`Sandbox::receive`], with the descriptor the message carried, if
    /// any (the "ready" message's seccomp listener).
    fn receive_with_fd(&self, timeout: Duration) -> (Option<String>, Option<OwnedFd>) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::FromRawFd;
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(self.control.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) | Err(_) => return (None, None),
            Ok(_) => {}
        }
        let mut report = vec![0; 16 << 10];
        let mut iov = [std::io::IoSliceMut::new(&mut report)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let received = recvmsg::<()>(
            self.control.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        );
        let (n, fd) = match received {
            Ok(message) => {
                let fd = message.cmsgs().ok().and_then(|mut cmsgs| {
                    cmsgs.find_map(|cmsg| match cmsg {
                        ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                        _ => None,
                    })
                });
                // SAFETY: SCM_RIGHTS gave this process a new descriptor,
                // owned by no one else.
                (
                    message.bytes,
                    fd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                )
            }
            Err(nix::Error::EAGAIN | nix::Error::EINTR) => return (None, None),
            Err(_) => (0, None),
        };
        let text = String::from_utf8_lossy(&report[..n]).into_owned();
        (Some(text), fd)
    }

    /// Waits up to `timeout` for what the init says next of the run.
    pub fn next_message(&mut self, timeout: Duration) -> Option<Message> {
        let text = self.receive(timeout)?;
        if text.is_empty() {
            // No word: the init was killed, and its namespace with it.
            return Some(Message::Ended(Ending::default()));
        }
        Some(Message::parse(&text))
    }

    /// Tells the init to stop waiting for what the strategy left running:
    /// it lists what still runs, kills it, and ends the run.
    pub fn stop_waiting(&self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.init as i32),
            nix::sys::signal::Signal::SIGUSR2,
        );
    }

    /// The processes of the run still running (pid and command name), as
    /// this process sees them.
    pub fn remaining(&self) -> Vec<(u32, String)> {
        fault_fs::proc::descendants(self.init)
            .into_iter()
            .map(|pid| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim_end().to_owned())
                    .unwrap_or_default();
                (pid, comm)
            })
            .collect()
    }

    /// Kills every process of the run now (the init lives on, and reports
    /// how the command ended).
    pub fn kill(&self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.init as i32),
            nix::sys::signal::Signal::SIGUSR1,
        );
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
