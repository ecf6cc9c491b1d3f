//! The run clock: time that counts only while swapfault runs. A deadline
//! (a strategy's timeout, the wait for what it left running) must not
//! fire because swapfault was stopped (Ctrl-Z, SIGSTOP, a paused CI VM, a
//! laptop lid) or starved on a loaded machine: those are not the
//! strategy's time. A ticker thread notes the monotonic clock every
//! [`TICK`]; a gap of more than [`GAP`] between two notes is time swapfault
//! did not run, and is left out of the run clock. A reading checks the gap
//! since the last note too, so a thread that wakes before the ticker does
//! still sees the pause left out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How often the ticker notes the time.
const TICK: Duration = Duration::from_millis(20);
/// A gap between two notes longer than this is time swapfault did not run.
const GAP: Duration = Duration::from_millis(500);

/// The clock's state: when it started, the last note and the time left out,
/// in nanoseconds since the start.
struct State {
    start: Instant,
    last_note: AtomicU64,
    paused: AtomicU64,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let state = State {
            start: Instant::now(),
            last_note: AtomicU64::new(0),
            paused: AtomicU64::new(0),
        };
        let spawned = std::thread::Builder::new()
            .name("run-clock".into())
            .spawn(|| loop {
                std::thread::sleep(TICK);
                note();
            });
        if let Err(err) = spawned {
            tracing::warn!(%err, "no run clock: deadlines count time swapfault was stopped");
        }
        state
    })
}

/// Notes the time: a gap since the last note beyond [`GAP`] is left out.
fn note() {
    let state = state();
    let now = state.start.elapsed().as_nanos() as u64;
    let last = state.last_note.swap(now, Ordering::AcqRel);
    state
        .paused
        .fetch_add(left_out(last, now), Ordering::AcqRel);
}

/// The part of the time between two notes (nanoseconds since the start)
/// that swapfault did not run: all of a gap beyond [`GAP`].
fn left_out(last: u64, now: u64) -> u64 {
    now.saturating_sub(last)
        .saturating_sub(GAP.as_nanos() as u64)
}

/// An instant on the run clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunInstant(Duration);

impl RunInstant {
    /// Now, on the run clock.
    pub fn now() -> RunInstant {
        let state = state();
        let now = state.start.elapsed().as_nanos() as u64;
        let last = state.last_note.load(Ordering::Acquire);
        // A pause the ticker has not noted yet (it wakes after us).
        let paused = state.paused.load(Ordering::Acquire) + left_out(last, now);
        RunInstant(Duration::from_nanos(now.saturating_sub(paused)))
    }

    /// Run time from `earlier` to this instant (zero if it is later).
    pub fn since(self, earlier: RunInstant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// Run time left until `deadline` (zero once it has passed).
    pub fn until(self, deadline: RunInstant) -> Duration {
        deadline.0.saturating_sub(self.0)
    }
}

impl std::ops::Add<Duration> for RunInstant {
    type Output = RunInstant;

    fn add(self, duration: Duration) -> RunInstant {
        RunInstant(self.0 + duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gap_beyond_the_allowed_one_is_left_out() {
        let ms = |n: u64| n * 1_000_000;
        assert_eq!(left_out(ms(100), ms(120)), 0);
        assert_eq!(left_out(ms(100), ms(600)), 0);
        assert_eq!(left_out(ms(100), ms(2600)), ms(2000));
        // A reading racing the ticker may see a note later than its now.
        assert_eq!(left_out(ms(700), ms(600)), 0);
    }

    // One test, not two: the stop below stops every thread of the test
    // process, and would be left out of a run clock measured beside it.
    #[test]
    fn the_run_clock_runs_with_the_monotonic_one_but_not_through_a_stop() {
        // The wall clock's span encloses the run clock's (read first and
        // last), or a preemption between the two readings fails it.
        let wall = Instant::now();
        let start = RunInstant::now();
        std::thread::sleep(Duration::from_millis(100));
        let ran = RunInstant::now().since(start);
        let walked = wall.elapsed();
        assert!(ran >= Duration::from_millis(100), "{ran:?}");
        assert!(ran <= walked, "{ran:?} > {walked:?}");

        // SIGSTOP of this process stops the ticker too: the gap is seen.
        // The stopper says whether the stop landed: some sandboxes (a CI
        // runner's among them) never stop a process on SIGSTOP.
        let start = RunInstant::now();
        let stopper = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "kill -STOP {pid}; sleep 0.2; grep '^State:' /proc/{pid}/status; \
                 sleep 2; kill -CONT {pid}",
                pid = std::process::id()
            ))
            .stdout(std::process::Stdio::piped())
            .output()
            .expect("sh");
        let ran = RunInstant::now().since(start);
        let state = String::from_utf8_lossy(&stopper.stdout);
        if !state.contains("stopped") {
            eprintln!(
                "not exercised: SIGSTOP did not stop this process here ({})",
                state.trim()
            );
            return;
        }
        assert!(ran < Duration::from_millis(1500), "{ran:?}");
    }
}
