//! Child processes: the live canary, the strategy, and probes.
//!
//! Every child runs in its own process group and is signalled as a group, so
//! nothing it starts outlives the run. [`ChildGuard`] kills the group on drop.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::Serialize;

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "how", content = "value")]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Still running at its deadline (then killed).
    Timeout,
}

impl Exit {
    fn of(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            _ => Exit::Code(-1),
        }
    }

    /// Exit code 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

/// A signal's name (`SIGKILL`), or its number.
pub fn signal_name(signal: i32) -> String {
    Signal::try_from(signal)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| signal.to_string())
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // A shell reports a child killed by signal N as 128 + N.
            Exit::Code(code) if (129..160).contains(code) => {
                write!(f, "exit {code} (= 128 + {})", signal_name(code - 128))
            }
            Exit::Code(code) => write!(f, "exit {code}"),
            Exit::Signal(signal) => write!(f, "killed by {}", signal_name(*signal)),
            Exit::Timeout => f.write_str("timed out"),
        }
    }
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

/// Opens a pidfd for `pid` (one that cannot have been reused yet: a child
/// not reaped, or a process known to be waiting).
pub(crate) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative result is a new fd that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
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
        let pidfd = pidfd_open(child.id());
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

    /// How it ended, if it has.
    pub fn try_exit(&mut self) -> Option<Exit> {
        if self.exit.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(Exit::of(status));
            }
        }
        self.exit
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

    /// SIGKILLs the whole group (stragglers included) without waiting.
    pub fn signal_group(&self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
    }

    /// SIGKILLs the whole group (stragglers included) and reaps the leader.
    pub fn kill_group(&mut self) {
        self.signal_group();
        if self.exit.is_none() {
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

/// One heartbeat of the canary: versions it runs and the checksum of its mappings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Beat {
    /// Version compiled into the executable's code.
    pub exe: u32,
    /// Version the library's code answers.
    pub lib: u32,
    /// Checksum of every file-backed mapping of the canary files.
    pub checksum: String,
}

impl Beat {
    /// `alive EXE LIB SUM WAKES`: the beat, and how many wake-up requests
    /// (SIGUSR1) the canary had received when its checksum began.
    fn parse(line: &str) -> Option<(Beat, u64)> {
        let mut parts = line.split_whitespace();
        (parts.next()? == "alive").then_some(())?;
        let beat = Beat {
            exe: parts.next()?.parse().ok()?,
            lib: parts.next()?.parse().ok()?,
            checksum: parts.next()?.to_owned(),
        };
        Some((beat, parts.next()?.parse().ok()?))
    }
}

#[derive(Debug, Default)]
struct Heartbeats {
    first: Option<Beat>,
    last: Option<Beat>,
    /// The first beat that differs from the first one.
    changed: Option<Beat>,
    /// Beats since the canary started or [`LiveCanary::begin_run`].
    count: u64,
    /// Wake-up requests the last beat answered.
    answered: u64,
    /// The pipe closed: no beat will come.
    ended: bool,
    /// The first line the canary wrote: a launcher's failure to exec it
    /// ([`exec_failure`]) is said there.
    first_line: String,
}

/// The heartbeats and a condition variable that wakes on each one.
#[derive(Debug, Default)]
struct BeatBoard {
    beats: Mutex<Heartbeats>,
    arrived: Condvar,
}

impl BeatBoard {
    /// Waits until `done` holds, the pipe ended, or `deadline`; returns
    /// whether `done` holds.
    fn wait_for(&self, done: impl Fn(&Heartbeats) -> bool, deadline: Instant) -> bool {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let beats = self
            .arrived
            .wait_timeout_while(lock(&self.beats), timeout, |beats| {
                !done(beats) && !beats.ended
            })
            .map(|(guard, _)| guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        done(&beats)
    }
}

/// What a live process went through during a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveReport {
    /// The command line.
    pub command: String,
    /// Its pid.
    pub pid: u32,
    /// How it ended, if it did (it should not).
    pub exit: Option<Exit>,
    /// Its first heartbeat (the baseline).
    pub first: Option<Beat>,
    /// The first heartbeat that differed from the baseline.
    pub changed: Option<Beat>,
    /// Heartbeats received.
    pub beats: u64,
    /// Why the platform's model killed it (macOS code signing), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed_why: Option<String>,
}

impl LiveReport {
    /// Alive, and its mappings and code never changed.
    pub fn unharmed(&self) -> bool {
        self.exit.is_none() && self.changed.is_none()
    }

    /// A live command (not a canary): what it went through so far.
    pub fn of_command(command: &str, child: &mut ChildGuard) -> LiveReport {
        LiveReport {
            command: command.to_owned(),
            pid: child.pid(),
            exit: child.try_exit(),
            first: None,
            changed: None,
            beats: 0,
            killed_why: None,
        }
    }

    /// A sentence saying what happened to it.
    pub fn describe(&self) -> String {
        let described = self.describe_ending();
        match &self.killed_why {
            Some(why) => format!("{described} ({why})"),
            None => described,
        }
    }

    fn describe_ending(&self) -> String {
        if self.first.is_none() {
            return match &self.exit {
                Some(exit) => format!(
                    "live process `{}` (pid {}) ended: {exit}",
                    self.command, self.pid
                ),
                None => format!("live process `{}` (pid {}) ran on", self.command, self.pid),
            };
        }
        match (&self.exit, &self.changed) {
            (Some(exit), _) => format!("live canary (pid {}) died: {exit}", self.pid),
            (None, Some(changed)) => {
                let first = self.first.as_ref();
                let what = if first.is_some_and(|f| f.lib != changed.lib || f.exe != changed.exe) {
                    format!("now runs exe v{} / lib v{} code", changed.exe, changed.lib)
                } else {
                    "the bytes it maps changed under it".to_owned()
                };
                format!("live canary (pid {}) kept running but {what}", self.pid)
            }
            (None, None) => format!(
                "live canary (pid {}) ran on unharmed ({} heartbeats)",
                self.pid, self.beats
            ),
        }
    }
}

/// A running canary, reporting heartbeats through a pipe.
#[derive(Debug)]
pub struct LiveCanary {
    child: ChildGuard,
    command: String,
    board: Arc<BeatBoard>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why the live canary could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The executable could not be run.
    #[error("cannot start the live canary {exe}: {source}")]
    Spawn {
        /// The canary executable.
        exe: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It ended before it said anything.
    #[error("the live canary {exe} ended before its first heartbeat: {exit}")]
    Ended {
        /// The canary executable.
        exe: PathBuf,
        /// How it ended.
        exit: Exit,
    },
    /// It said nothing in time.
    #[error("the live canary {exe} sent no heartbeat within {timeout:?} (hint: is the machine overloaded?)")]
    Silent {
        /// The canary executable.
        exe: PathBuf,
        /// How long it was given.
        timeout: Duration,
    },
}

/// How long a canary may take to send its first heartbeat.
const FIRST_BEAT: Duration = Duration::from_secs(10);

impl LiveCanary {
    /// Starts the canary executable at `exe` and waits for its first
    /// heartbeat. With `launcher` (the sandbox init), `exe` is exec'd
    /// through it ([`exec_through`]), as anything on swapfault's own mount
    /// must be.
    pub fn start(
        exe: &Path,
        lib_dir: Option<&Path>,
        launcher: Option<&Path>,
    ) -> Result<Self, LiveError> {
        let mut command = match launcher {
            Some(launcher) => exec_through(launcher, Path::new("/"), exe),
            None => Command::new(exe),
        };
        command
            .env("CANARY_FD", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null());
        if let Some(dir) = lib_dir {
            command.env("LD_LIBRARY_PATH", dir);
        }
        let spawn_error = |source| LiveError::Spawn {
            exe: exe.to_owned(),
            source,
        };
        let mut child = ChildGuard::spawn(command).map_err(spawn_error)?;
        let stdout = child
            .take_stdout()
            .ok_or_else(|| spawn_error(std::io::Error::other("no stdout pipe")))?;
        let board = Arc::new(BeatBoard::default());
        let sink = board.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut beats = lock(&sink.beats);
                if beats.first_line.is_empty() {
                    beats.first_line = line.clone();
                }
                drop(beats);
                let Some((beat, answered)) = Beat::parse(&line) else {
                    continue;
                };
                let mut beats = lock(&sink.beats);
                beats.count += 1;
                beats.answered = answered;
                match &beats.first {
                    None => beats.first = Some(beat.clone()),
                    Some(first) if *first != beat && beats.changed.is_none() => {
                        beats.changed = Some(beat.clone())
                    }
                    _ => {}
                }
                beats.last = Some(beat);
                sink.arrived.notify_all();
            }
            lock(&sink.beats).ended = true;
            sink.arrived.notify_all();
        });
        let mut canary = LiveCanary {
            child,
            command: exe.display().to_string(),
            board,
        };
        let deadline = Instant::now() + FIRST_BEAT;
        if !canary
            .board
            .wait_for(|beats| beats.first.is_some(), deadline)
        {
            let said = lock(&canary.board.beats).first_line.clone();
            return Err(match canary.child.try_exit() {
                Some(exit) => match exec_failure(exit, said.as_bytes()) {
                    Some(source) => spawn_error(source),
                    None => LiveError::Ended {
                        exe: exe.to_owned(),
                        exit,
                    },
                },
                None => LiveError::Silent {
                    exe: exe.to_owned(),
                    timeout: FIRST_BEAT,
                },
            });
        }
        Ok(canary)
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Starts counting heartbeats anew for a run. The baseline (the first
    /// beat ever) stays: a canary is only kept across runs while unharmed.
    pub fn begin_run(&mut self) {
        lock(&self.board.beats).count = 0;
    }

    /// Asks for a heartbeat whose checksum begins after this call (SIGUSR1
    /// cuts the canary's pause short) and waits for it, or `timeout`, so a
    /// change made just now is seen without waiting out the interval.
    pub fn settle(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let asked = lock(&self.board.beats).answered;
        let _ = nix::sys::signal::kill(Pid::from_raw(self.child.pid() as i32), Signal::SIGUSR1);
        // No such beat by the deadline: dead (the reader has drained its
        // last words once the pipe ended) or hung; the report says which.
        self.board
            .wait_for(|beats| beats.answered > asked, deadline);
    }

    /// What it went through so far.
    pub fn report(&mut self) -> LiveReport {
        let ended = lock(&self.board.beats).ended;
        // The pipe closes as the canary exits, a moment before it can be
        // reaped: wait for that moment rather than report it alive.
        let exit = match ended {
            true => self
                .child
                .wait_for_exit(Duration::from_millis(500))
                .then(|| self.child.try_exit())
                .flatten(),
            false => self.child.try_exit(),
        };
        let beats = lock(&self.board.beats);
        LiveReport {
            command: self.command.clone(),
            pid: self.child.pid(),
            exit,
            first: beats.first.clone(),
            changed: beats.changed.clone(),
            beats: beats.count,
            killed_why: None,
        }
    }
}
