//! Probes: what a user starting the program at a stalled op would see. At
//! a stall the probes read, execute or load the target (each a child
//! process: swapfault never looks at its own mount through the kernel),
//! then the op is released; a probe that waits on the op (the kernel's
//! directory lock, a locked page) sees what it left, as the user would.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use crate::clock::RunInstant;

use fault_fs::{CrashPoint, FaultFsHandle, OpKind, OpRecord};

use crate::observe::{Exit, ProbeKind, ProbeObservation, TargetState};
use crate::proc::{exec_through, in_uninterruptible_sleep, run_with_timeout};
use crate::scenario::{Platform, TargetKind, Versions};
use crate::target::{classify, Prepared};

/// How probes are timed at a stall. The release waits for the probes, not
/// for the clock, wherever it can: a probe that has finished or that
/// sleeps in the kernel on the held op says so; the holds below bound the
/// rest.
#[derive(Clone, Copy, Debug)]
pub struct ProbeTiming {
    /// How long probes may look while an op is held, before it is released.
    /// Probes normally finish in milliseconds; one that touches a page the
    /// stalled write holds locked waits for the write, as a user would.
    pub hold: Duration,
    /// The hold at a namespace op or a lookup, where probes are expected to
    /// wait on the kernel's directory lock (or in-lookup dentry) until it
    /// is released.
    pub hold_locked: Duration,
    /// How long a probe may take.
    pub timeout: Duration,
    /// How long every unfinished probe must stay in uninterruptible sleep
    /// (on a page or a lock the stalled op holds) before the op is
    /// released. Far longer than a probe's own I/O keeps it there.
    pub blocked_for: Duration,
    /// How often the probes are looked at while an op is held.
    pub poll: Duration,
}

impl ProbeTiming {
    /// The timing every run uses.
    pub const DEFAULT: ProbeTiming = ProbeTiming {
        hold: Duration::from_millis(500),
        hold_locked: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
        blocked_for: Duration::from_millis(25),
        poll: Duration::from_millis(1),
    };
}

/// Where a probe runs, to tell a probe blocked on the stalled op from a
/// slow one: its thread, and the process it started, if any (0: none yet).
#[derive(Debug, Default)]
struct ProbeTask {
    thread: AtomicI32,
    child: AtomicI32,
}

impl ProbeTask {
    /// In uninterruptible sleep: its process if it started one, else its
    /// thread (which sleeps so while a spawn waits for the child's exec).
    fn blocked(&self) -> bool {
        match self.child.load(Ordering::Acquire) {
            0 => match self.thread.load(Ordering::Acquire) {
                0 => false,
                tid => in_uninterruptible_sleep(tid),
            },
            pid => in_uninterruptible_sleep(pid),
        }
    }
}

/// Runs the probes while an op is stalled, then releases it.
///
/// At a stalled namespace op (create, rename, unlink) the kernel holds the
/// directory's lock, and at a stalled write the pages it fills: a probe that
/// needs them waits until the op is done, as a user starting the program at
/// that moment would. The op is released once every probe has finished, or
/// every unfinished one has slept uninterruptibly for [`ProbeTiming::blocked_for`]
/// (blocked on the op), or at the latest after [`ProbeTiming::hold`]
/// ([`ProbeTiming::hold_locked`] at a namespace op). Probes that finish only after
/// the release say so.
pub(crate) fn probe_stalled(
    prepared: &Prepared,
    handle: &FaultFsHandle,
    mount: &Path,
    probes: &[ProbeKind],
    stalled: &OpRecord,
    at: &CrashPoint,
    timing: &ProbeTiming,
) -> Vec<ProbeObservation> {
    // Read from the tree, not through the mount: no op of ours to trace.
    let state = handle.with_tree(|tree| prepared.target_state(tree, mount));
    let (tx, rx) = std::sync::mpsc::channel();
    let tasks: Vec<ProbeTask> = probes.iter().map(|_| ProbeTask::default()).collect();
    let mut seen = Vec::new();
    std::thread::scope(|scope| {
        for (index, (probe, task)) in probes.iter().zip(&tasks).enumerate() {
            let tx = tx.clone();
            scope.spawn(move || {
                task.thread
                    .store(nix::unistd::gettid().as_raw(), Ordering::Release);
                let observation =
                    run_probe(prepared, handle, mount, *probe, (stalled, at), task, timing);
                let _ = tx.send((index, observation));
            });
        }
        drop(tx);
        // A lookup in flight makes a probe looking up the same name wait for
        // it too (the kernel's in-lookup dentry), like a namespace op does.
        let holds_dir_lock = stalled.kind.is_namespace() || stalled.kind == OpKind::Lookup;
        let hold = if holds_dir_lock {
            timing.hold_locked
        } else {
            timing.hold
        };
        let deadline = RunInstant::now() + hold;
        let mut blocked_since: Option<RunInstant> = None;
        while seen.len() < probes.len() {
            let now = RunInstant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(timing.poll.min(now.until(deadline))) {
                Ok(observation) => {
                    seen.push(observation);
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if blocked_for_long(&tasks, &seen, &mut blocked_since, now, timing.blocked_for) {
                break;
            }
        }
        // Blocked probes see what the op left: the strategy's next op waits
        // until they have looked, unless they wait on it as well (then it
        // goes too, as it would for a user).
        // fault-fs holds it on the monotonic clock: a safety bound only, as
        // the probes' end releases it.
        handle.hold_next_op(Some(std::time::Instant::now() + timing.timeout));
        handle.release_stalls();
        let mut blocked_since: Option<RunInstant> = None;
        while seen.len() < probes.len() {
            match rx.recv_timeout(timing.poll) {
                Ok((index, mut observation)) => {
                    observation.blocked = true;
                    seen.push((index, observation));
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if blocked_for_long(
                &tasks,
                &seen,
                &mut blocked_since,
                RunInstant::now(),
                timing.blocked_for,
            ) {
                handle.hold_next_op(None);
                handle.release_stalls();
            }
        }
        handle.hold_next_op(None);
        handle.release_stalls();
    });
    seen.sort_by_key(|(index, _)| *index);
    seen.into_iter()
        .map(|(_, observation)| ProbeObservation {
            target: state.clone(),
            ..observation
        })
        .collect()
}

/// Whether every probe not done yet has slept uninterruptibly (on the op,
/// or on what it holds) for [`ProbeTiming::blocked_for`]; `since` keeps when they
/// all started to.
fn blocked_for_long(
    tasks: &[ProbeTask],
    seen: &[(usize, ProbeObservation)],
    since: &mut Option<RunInstant>,
    now: RunInstant,
    blocked_for: Duration,
) -> bool {
    let all_blocked = tasks
        .iter()
        .enumerate()
        .filter(|(index, _)| !seen.iter().any(|(done, _)| done == index))
        .all(|(_, task)| task.blocked());
    if !all_blocked {
        *since = None;
        return false;
    }
    now.since(*since.get_or_insert(now)) >= blocked_for
}

/// Runs one probe at the target of the mount at `mount`.
fn run_probe(
    prepared: &Prepared,
    handle: &FaultFsHandle,
    mount: &Path,
    probe: ProbeKind,
    (stalled, at): (&OpRecord, &CrashPoint),
    task: &ProbeTask,
    timing: &ProbeTiming,
) -> ProbeObservation {
    let target = mount.join(prepared.target_rel());
    let (seen, ok) = match probe {
        // The reader itself is the probe's process, so a read blocked on
        // the stalled op shows as blocked (a shell around it would not).
        ProbeKind::Read => {
            let mut command = Command::new(&prepared.sandbox_init);
            command.arg("--read").arg(&target);
            match run_with_timeout(command, timing.timeout, &task.child) {
                Ok((exit, bytes)) if exit.success() => {
                    let class = classify(Some(&bytes), &prepared.old, &prepared.new);
                    (format!("read: {class}"), class.is_complete())
                }
                // The op is held: the tree is as the reader found it.
                Ok(_)
                    if handle.with_tree(|tree| {
                        let mount = mount.to_string_lossy();
                        tree.resolve_following(&prepared.target_rel(), &mount)
                            .is_err()
                    }) =>
                {
                    ("read: missing".to_owned(), false)
                }
                Ok((exit, _)) => (format!("read: failed ({exit})"), false),
                Err(err) => (format!("read: could not start the reader: {err}"), false),
            }
        }
        ProbeKind::Exec => {
            let mut command = exec_through(&prepared.sandbox_init, Path::new("/"), &target);
            command.arg("--once");
            match version_probe("exec", command, task, prepared.is_set(), timing.timeout) {
                Ok(seen) => seen,
                // Linux refuses to execute a file open for writing; macOS
                // runs what the file holds, so under its model that is seen.
                Err(err)
                    if err.raw_os_error() == Some(libc::ETXTBSY)
                        && prepared.scenario.platform == Platform::Macos =>
                {
                    let class = handle.with_tree(|tree| prepared.target_state(tree, mount).class);
                    (
                        format!("exec: would run a file that is {class} (macOS runs a file open for writing, where Linux says ETXTBSY)"),
                        class.is_complete(),
                    )
                }
                Err(err) => (format!("exec: could not start: {err}"), false),
            }
        }
        ProbeKind::Load => match &prepared.loader {
            Some(loader) => {
                let mut command = Command::new(loader);
                command.arg("--load").arg(&target);
                version_probe("load", command, task, false, timing.timeout)
                    .unwrap_or_else(|err| (format!("load: could not start: {err}"), false))
            }
            None => ("load: no canary loader for user files".to_owned(), true),
        },
    };
    ProbeObservation {
        at: at.clone(),
        op: stalled.clone(),
        probe,
        seen,
        ok,
        blocked: false,
        // Set by the caller, once for all the probes of a stall.
        target: TargetState::missing(),
    }
}

/// Runs the canary with `--once` or `--load` and says what ran: the
/// library version, or for a set both versions, and whether the set's
/// executable refused a library of another version; an error when it
/// could not start.
fn version_probe(
    name: &str,
    command: Command,
    task: &ProbeTask,
    set: bool,
    timeout: Duration,
) -> std::io::Result<(String, bool)> {
    let (exit, out) = run_with_timeout(command, timeout, &task.child)?;
    let out = String::from_utf8_lossy(&out);
    let words: Vec<&str> = out.split_whitespace().collect();
    let known = |version: &str| version == "1" || version == "2";
    Ok(match (exit.success(), words.as_slice()) {
        (true, ["version", exe, lib]) if set => (
            format!("{name}: ran canary v{exe} with libcanary v{lib}"),
            exe == lib && known(lib),
        ),
        (false, ["version", exe, lib]) if set && exit == Exit::Code(MIXED_VERSIONS) => (
            format!("{name}: canary v{exe} refused to run with libcanary v{lib} (mixed versions)"),
            false,
        ),
        (true, words) => {
            let version = words.last().unwrap_or(&"?");
            (
                format!("{name}: ran, library code v{version}"),
                known(version),
            )
        }
        (false, _) => (format!("{name}: failed ({exit})"), false),
    })
}

/// The exit code of a set's canary that found a library of another version.
const MIXED_VERSIONS: i32 = 4;

/// The probes of a scenario that names none: read, and exec or load as
/// the target is run.
pub(crate) fn default_probes(prepared: &Prepared) -> Vec<ProbeKind> {
    match (
        &prepared.scenario.target.versions,
        prepared.scenario.target.kind,
    ) {
        (Versions::Canary { .. }, TargetKind::Exe | TargetKind::Set) => {
            vec![ProbeKind::Read, ProbeKind::Exec]
        }
        (Versions::Canary { .. }, TargetKind::Lib) => vec![ProbeKind::Read, ProbeKind::Load],
        (Versions::Files { .. }, _) => vec![ProbeKind::Read],
    }
}
