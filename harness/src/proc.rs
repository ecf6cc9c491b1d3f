//! Child processes: spawned in a process group of their own and signalled
//! as a group, waited on through a pidfd, killed on drop ([`ChildGuard`]);
//! short commands with a deadline; anything on swapfault's own mount
//! started through the sandbox init ([`exec_through`]).

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::observe::Exit;

/// Locks a mutex, recovering from poisoning: a panicked holder left the
/// data whole (every change is applied at once).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Process groups of children that are running, for [`kill_all_children`].
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Set once [`kill_all_children`] ran: no child may start after it.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// SIGKILLs every child process group this process started and has not
/// reaped, and refuses to start any more. For Ctrl-C: the children run in
/// groups of their own, so a Ctrl-C at the terminal does not reach them.
pub fn kill_all_children() {
    STOPPING.store(true, Ordering::SeqCst);
    for pgid in lock(&RUNNING).drain(..) {
        let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
    }
}

/// A child in its own process group; the group is killed on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    exit: Option<Exit>,
    /// A pidfd, readable once the child has exited: waits end the moment it
    /// does, with no polling. `None` on kernels before 5.3.
    pidfd: Option<OwnedFd>,
}

/// Waits up to `timeout` for `pidfd` to be readable: its process has exited.
fn pidfd_readable(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let mut poll = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd, for the duration of the call.
    unsafe { libc::poll(&mut poll, 1, millis) > 0 }
}

impl ChildGuard {
    /// Spawns `command` in a new process group.
    pub fn spawn(mut command: Command) -> std::io::Result<Self> {
        if STOPPING.load(Ordering::SeqCst) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "interrupted: no more children are started",
            ));
        }
        command.process_group(0);
        let child = command.spawn()?;
        lock(&RUNNING).push(child.id());
        let pidfd = fault_fs::pidfd_of(child.id());
        Ok(ChildGuard {
            child,
            exit: None,
            pidfd,
        })
    }

    /// Waits until the child exits or `timeout` passes; true if it exited.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> bool {
        if self.try_exit().is_some() {
            return true;
        }
        match &self.pidfd {
            Some(pidfd) => {
                pidfd_readable(pidfd, timeout);
            }
            None => std::thread::sleep(timeout.min(Duration::from_millis(2))),
        }
        self.try_exit().is_some()
    }

    /// The child's pid (also its process group).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdout, if piped.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// The child's stdin, if piped.
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// The child's stderr, if piped.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Whether it has not exited yet, as far as can be told without
    /// reaping it (its pidfd is not readable).
    pub fn is_running(&self) -> bool {
        self.exit.is_none()
            && self
                .pidfd
                .as_ref()
                .is_none_or(|pidfd| !pidfd_readable(pidfd, Duration::ZERO))
    }

    /// How it ended, if it has. A child that has ended is reaped here, and
    /// its group's stragglers are killed first: while the leader is not
    /// reaped its pid (the group's id) cannot go to another process, so a
    /// signal to the group reaches this group alone. After, none is sent.
    pub fn try_exit(&mut self) -> Option<Exit> {
        if self.exit.is_none() {
            let ended = self
                .pidfd
                .as_ref()
                .is_none_or(|pidfd| pidfd_readable(pidfd, Duration::ZERO));
            if ended {
                if self.pidfd.is_some() {
                    self.signal_group();
                }
                if let Ok(Some(status)) = self.child.try_wait() {
                    self.exit = Some(Exit::of(status));
                }
            }
        }
        self.exit
    }

    /// Sends `signal` to the child alone, through its pidfd: never to a
    /// process that reused its pid. Nothing once it has been reaped.
    pub fn signal(&self, signal: Signal) {
        if self.exit.is_some() {
            return;
        }
        match &self.pidfd {
            Some(pidfd) => {
                // SAFETY: a pidfd we own, a signal number, no siginfo, no flags.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        pidfd.as_raw_fd(),
                        signal as libc::c_int,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                };
            }
            None => {
                let _ = nix::sys::signal::kill(Pid::from_raw(self.child.id() as i32), signal);
            }
        }
    }

    /// Waits for the end, up to `deadline`; then kills the group.
    pub fn wait_until(&mut self, deadline: Instant) -> Exit {
        loop {
            if let Some(exit) = self.try_exit() {
                return exit;
            }
            let now = Instant::now();
            if now >= deadline {
                self.kill_group();
                self.exit = Some(Exit::Timeout);
                return Exit::Timeout;
            }
            self.wait_for_exit(deadline - now);
        }
    }

    /// SIGKILLs the whole group (stragglers included) without waiting;
    /// nothing once the leader has been reaped (its pid, the group's id,
    /// may be another's by then).
    pub fn signal_group(&self) {
        if self.exit.is_none() {
            let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        }
    }

    /// SIGKILLs the whole group (stragglers included) and reaps the leader.
    pub fn kill_group(&mut self) {
        if self.exit.is_none() {
            self.signal_group();
            if let Ok(status) = self.child.wait() {
                self.exit = Some(Exit::of(status));
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill_group();
        let pid = self.child.id();
        lock(&RUNNING).retain(|pgid| *pgid != pid);
    }
}

/// Runs a short command to its end with a deadline; returns exit and stdout.
/// `pid` holds the child's pid while it runs (0 before and after), so that
/// another thread can watch it.
pub fn run_with_timeout(
    mut command: Command,
    timeout: Duration,
    pid: &AtomicI32,
) -> std::io::Result<(Exit, Vec<u8>)> {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    let mut child = ChildGuard::spawn(command)?;
    pid.store(child.pid() as i32, Ordering::Release);
    let _clear = ClearOnDrop(pid);
    let stdout = child.take_stdout();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(mut stdout) = stdout {
            let _ = stdout.read_to_end(&mut out);
        }
        out
    });
    let exit = child.wait_until(Instant::now() + timeout);
    child.kill_group();
    let out = reader.join().unwrap_or_default();
    match exec_failure(exit, &out) {
        Some(err) => Err(err),
        None => Ok((exit, out)),
    }
}

/// A command that execs `program` in `dir` through the sandbox init at
/// `launcher` (its `--exec`): how anything whose program or working
/// directory is on swapfault's own mount is started. A child of swapfault
/// holds the mount's /dev/fuse descriptor until its exec completes, so a
/// lookup on the mount made before then would wait forever were swapfault
/// killed meanwhile (sandbox-init.c says more).
pub fn exec_through(launcher: &Path, dir: &Path, program: &Path) -> Command {
    let mut command = Command::new(launcher);
    command.arg("--exec").arg(dir).arg(program);
    command
}

/// Why the sandbox init's `--exec` could not start its program, from its
/// exit and output (`exec-failed ERRNO`, exit 127): the error a spawn of
/// the program itself would have returned.
pub fn exec_failure(exit: Exit, out: &[u8]) -> Option<std::io::Error> {
    if exit != Exit::Code(EXEC_FAILED) {
        return None;
    }
    let errno = std::str::from_utf8(out)
        .ok()?
        .strip_prefix("exec-failed ")?
        .trim_end()
        .parse()
        .ok()?;
    Some(std::io::Error::from_raw_os_error(errno))
}

/// The sandbox init's exit code when `--exec` fails.
const EXEC_FAILED: i32 = 127;

/// Sets an atomic pid back to 0 when dropped.
struct ClearOnDrop<'a>(&'a AtomicI32);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

/// Whether a task (a process, or a thread of this one) is in uninterruptible
/// sleep (`D`): blocked in the kernel on a lock or a page, not running or
/// waiting for an answer. Reads only the state field of `/proc/TID/stat`.
pub fn in_uninterruptible_sleep(tid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{tid}/stat")) else {
        return false;
    };
    // "pid (comm) S ...": comm may hold spaces and parentheses; the state
    // follows the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        == Some("D")
}
