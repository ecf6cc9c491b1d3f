//! Live processes: the canary that maps the old target and reports a
//! heartbeat with a checksum of its mappings ([`LiveCanary`]), and the
//! scenario's live commands.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::clock::RunInstant;
use crate::observe::{Beat, Exit, LiveReport};
use crate::proc::{exec_failure, exec_through, lock, ChildGuard};

/// `alive EXE LIB SUM WAKES`: the beat, and how many wake-up requests
/// (SIGUSR1) the canary had received when its checksum began.
fn parse_beat(line: &str) -> Option<(Beat, u64)> {
    let mut parts = line.split_whitespace();
    (parts.next()? == "alive").then_some(())?;
    let beat = Beat {
        exe: parts.next()?.parse().ok()?,
        lib: parts.next()?.parse().ok()?,
        checksum: parts.next()?.to_owned(),
    };
    Some((beat, parts.next()?.parse().ok()?))
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
    /// Waits until `done` holds, the pipe ended, or `deadline` on the run
    /// clock (a swapfault stopped meanwhile has not spent the canary's
    /// time); returns whether `done` holds.
    fn wait_for(&self, done: impl Fn(&Heartbeats) -> bool, deadline: RunInstant) -> bool {
        let mut beats = lock(&self.beats);
        loop {
            if done(&beats) || beats.ended {
                return done(&beats);
            }
            let left = RunInstant::now().until(deadline);
            if left.is_zero() {
                return false;
            }
            beats = self
                .arrived
                .wait_timeout(beats, left.min(Duration::from_millis(100)))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }
}

/// A live command (not a canary): what it went through so far.
pub fn command_report(command: &str, child: &mut ChildGuard) -> LiveReport {
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

/// A running canary, reporting heartbeats through a pipe.
#[derive(Debug)]
pub struct LiveCanary {
    child: ChildGuard,
    command: String,
    board: Arc<BeatBoard>,
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

/// How long a canary may take to send its first heartbeat, in run time.
const FIRST_BEAT: Duration = Duration::from_secs(30);

/// How long a canary may take to answer a request for a heartbeat, in run
/// time: it answers in milliseconds, unless the machine is busy, and its
/// answer decides whether a change of its mappings is seen, so no verdict
/// may hang on a short wait.
pub const SETTLE: Duration = Duration::from_secs(30);

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
                let Some((beat, answered)) = parse_beat(&line) else {
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
        let deadline = RunInstant::now() + FIRST_BEAT;
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
    /// cuts the canary's pause short) and waits for it, or `timeout` of run
    /// time, so a change made just now is seen without waiting out the
    /// interval.
    ///
    /// `rescan` off asks only that it answer (SIGUSR2): for when no file it
    /// maps can have changed, so a checksum could only repeat the last one.
    /// The answer still says it is alive and not hung.
    pub fn settle(&mut self, timeout: Duration, rescan: bool) {
        let deadline = RunInstant::now() + timeout;
        let asked = lock(&self.board.beats).answered;
        self.child.signal(if rescan {
            Signal::SIGUSR1
        } else {
            Signal::SIGUSR2
        });
        // No such beat by the deadline: hung; the report says so. A canary
        // that died sends none, and its pipe may outlive it (a process that
        // inherited it): so its exit ends the wait too, not the deadline.
        loop {
            let slice = (RunInstant::now() + Duration::from_millis(50)).min(deadline);
            if self.board.wait_for(|beats| beats.answered > asked, slice)
                || self.child.try_exit().is_some()
                || RunInstant::now() >= deadline
            {
                return;
            }
        }
    }

    /// What it went through so far.
    pub fn report(&mut self) -> LiveReport {
        let ended = lock(&self.board.beats).ended;
        // The pipe closes as the canary exits, a moment before it can be
        // reaped: wait for that moment rather than report it alive.
        let exit = match ended {
            true => self
                .child
                .wait_for_exit(Duration::from_secs(5))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A torn library's version function returns what its bytes make of
    /// it: a beat with a negative version is a beat all the same (dropped,
    /// it left every request for a beat to wait out its 30 s deadline, and
    /// the change of code unseen).
    #[test]
    fn a_beat_with_a_torn_librarys_negative_version_is_read() {
        let (beat, answered) = parse_beat("alive 1 -28852804 a09b40b118783321 3").expect("a beat");
        assert_eq!((beat.exe, beat.lib, answered), (1, -28852804, 3));
        assert_eq!(beat.checksum, "a09b40b118783321");
        assert_eq!(parse_beat("starting"), None);
    }
}
