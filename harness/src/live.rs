//! Child processes: the live canary, the strategy, and probes.
//!
//! Every child runs in its own process group and is signalled as a group, so
//! nothing it starts outlives the run. [`ChildGuard`] kills the group on drop.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
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

/// SIGKILLs every child process group this process started and has not
/// reaped. For a signal handler that is about to exit: the children run in
/// groups of their own, so a Ctrl-C at the terminal does not reach them.
pub fn kill_all_children() {
    for pgid in lock(&RUNNING).drain(..) {
        let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
    }
}

/// A child in its own process group; the group is killed on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    exit: Option<Exit>,
}

impl ChildGuard {
    /// Spawns `command` in a new process group.
    pub fn spawn(mut command: Command) -> std::io::Result<Self> {
        command.process_group(0);
        let child = command.spawn()?;
        lock(&RUNNING).push(child.id());
        Ok(ChildGuard { child, exit: None })
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
            if Instant::now() >= deadline {
                self.kill_group();
                let _ = self.child.wait();
                self.exit = Some(Exit::Timeout);
                return Exit::Timeout;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILLs the whole group (stragglers included) and reaps the leader.
    pub fn kill_group(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
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
pub fn run_with_timeout(
    mut command: Command,
    timeout: Duration,
) -> std::io::Result<(Exit, String)> {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    let mut child = ChildGuard::spawn(command)?;
    let stdout = child.take_stdout();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        if let Some(mut stdout) = stdout {
            let _ = stdout.read_to_string(&mut out);
        }
        out
    });
    let exit = child.wait_until(Instant::now() + timeout);
    child.kill_group();
    let out = reader.join().unwrap_or_default();
    Ok((exit, out))
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
    fn parse(line: &str) -> Option<Beat> {
        let mut parts = line.split_whitespace();
        (parts.next()? == "alive").then_some(())?;
        Some(Beat {
            exe: parts.next()?.parse().ok()?,
            lib: parts.next()?.parse().ok()?,
            checksum: parts.next()?.to_owned(),
        })
    }
}

#[derive(Debug, Default)]
struct Heartbeats {
    first: Option<Beat>,
    last: Option<Beat>,
    /// The first beat that differs from the first one.
    changed: Option<Beat>,
    count: u64,
}

/// What a live process went through during a run.
#[derive(Clone, Debug, Serialize)]
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
        }
    }

    /// A sentence saying what happened to it.
    pub fn describe(&self) -> String {
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
    beats: Arc<Mutex<Heartbeats>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl LiveCanary {
    /// Starts the canary executable at `exe` and waits for its first heartbeat.
    pub fn start(exe: &Path, lib_dir: Option<&Path>) -> Result<Self, String> {
        let mut command = Command::new(exe);
        command
            .env("CANARY_FD", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null());
        if let Some(dir) = lib_dir {
            command.env("LD_LIBRARY_PATH", dir);
        }
        let mut child = ChildGuard::spawn(command)
            .map_err(|e| format!("cannot start the live canary {}: {e}", exe.display()))?;
        let stdout = child.take_stdout().ok_or("canary has no stdout")?;
        let beats = Arc::new(Mutex::new(Heartbeats::default()));
        let sink = beats.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Some(beat) = Beat::parse(&line) else {
                    continue;
                };
                let mut beats = lock(&sink);
                beats.count += 1;
                match &beats.first {
                    None => beats.first = Some(beat.clone()),
                    Some(first) if *first != beat && beats.changed.is_none() => {
                        beats.changed = Some(beat.clone())
                    }
                    _ => {}
                }
                beats.last = Some(beat);
            }
        });
        let mut canary = LiveCanary {
            child,
            command: exe.display().to_string(),
            beats,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock(&canary.beats).first.is_none() {
            if let Some(exit) = canary.child.try_exit() {
                return Err(format!(
                    "the live canary {} ended before its first heartbeat: {exit}",
                    canary.command
                ));
            }
            if Instant::now() > deadline {
                return Err("the live canary sent no heartbeat within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(canary)
    }

    /// Asks for `count` fresh heartbeats (SIGUSR1 cuts the canary's pause
    /// short) and waits for them, or `timeout`, so a change made just now is
    /// seen without waiting out the heartbeat interval.
    pub fn settle(&mut self, count: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for _ in 0..count {
            let target = lock(&self.beats).count + 1;
            let _ = nix::sys::signal::kill(Pid::from_raw(self.child.pid() as i32), Signal::SIGUSR1);
            while lock(&self.beats).count < target {
                if self.child.try_exit().is_some() {
                    // Let the reader drain what the canary wrote before dying.
                    std::thread::sleep(Duration::from_millis(5));
                    return;
                }
                if Instant::now() >= deadline {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// What it went through so far.
    pub fn report(&mut self) -> LiveReport {
        let exit = self.child.try_exit();
        let beats = lock(&self.beats);
        LiveReport {
            command: self.command.clone(),
            pid: self.child.pid(),
            exit,
            first: beats.first.clone(),
            changed: beats.changed.clone(),
            beats: beats.count,
        }
    }
}
