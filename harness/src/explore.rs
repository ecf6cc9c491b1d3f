//! The explorer: record a run, derive its crash points, run each one, and
//! report every finding with the one command that reproduces it.
//!
//! Crash points are named by op kind and order among the strategy's ops
//! (`write#3`), never by path, so a strategy with random temp names gets the
//! same points on every run. Kills are placed after every mutating op (and
//! before the first): a kill before a read-only op leaves the same state as a
//! kill after the mutating op preceding it, so those points are folded.
//!
//! Power cuts are not re-run: the recording logs, after every mutating op,
//! the tree each persistence model keeps with each writeback of unsynced
//! data (none, all, in part: see `docs/PERSISTENCE.md`), and each power-cut
//! point is that state, checked and retried as after a reboot. Points whose
//! durable states are the same (every cut before the first fsync, under
//! `strict`) share one retry. A sync op also fails with EIO and the power
//! goes when that run has ended, a real run. Each worker keeps one mount and
//! resets it from a snapshot between points; the live canary is kept while
//! no point harms it. Interrupted points whose trees are of one state class
//! share one retry ([`crate::retry`]), except under `--exhaustive`.
//!
//! A strategy whose undisturbed run fails is a usage error, not a finding
//! at every point ([`RunError::StrategyFails`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use fault_fs::{
    CrashPoint, Cut, Fault, OpKind, OpRecord, PersistenceModel, PowerCut, Tree, Writeback,
};
use nix::sys::signal::Signal;

use crate::error::RunError;
use crate::observe::{last_words, TargetClass};
use crate::outcome::{
    unsupported_call, Event, Exploration, Partition, PointResult, Points, Property, RunOutcome,
    Verdict, UNSUPPORTED_CALL_HINT,
};
use crate::pool::{self, Queue};
use crate::retry::SharedRetries;
use crate::runner::{run_from_power_cut, run_staged, RunOptions, Sharing};
use crate::sample::{Coverage, Sampling};
use crate::scenario::{Expectation, APP_DIR, IMAGE_DIR, STAGING_DIR};
use crate::stage::Stage;
use crate::target::Prepared;

/// Knobs of an exploration.
#[derive(Clone, Debug)]
pub struct ExploreOptions {
    /// Parallel runs (default: the number of cores).
    pub workers: usize,
    /// Run only the points with index % N == K - 1 (`--partition K/N`).
    pub partition: Option<Partition>,
    /// Stop after this many crash points.
    pub max_runs: Option<usize>,
    /// Also kill with SIGTERM (programs that clean up on TERM can do worse).
    pub sigterm: bool,
    /// Every op of a long run of alike ops, or a sample (the default).
    pub coverage: Coverage,
}

impl Default for ExploreOptions {
    fn default() -> Self {
        ExploreOptions {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            partition: None,
            max_runs: None,
            sigterm: false,
            coverage: Coverage::default(),
        }
    }
}

/// A crash point placed in the recorded trace it was derived from.
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    /// The crash point.
    pub point: CrashPoint,
    /// The index of its op in the recorded trace.
    pub op: usize,
}

/// Derives the crash points of a recorded run's `trace`. `durable` is what
/// the recording logged a power cut after each op would leave: one
/// power-cut point per logged state (each model, each writeback of its
/// family); an op with none logged gets a power cut under each model, run
/// for real. `sigterm` adds SIGTERM kills next to the SIGKILL ones.
pub fn crash_points(trace: &[OpRecord], durable: &[PowerCut], sigterm: bool) -> Vec<Placed> {
    let mut points = Vec::new();
    let mut first_mutation = true;
    // The target's directory, what is in it, and its ancestors (a
    // directory swap renames the directory itself); NEW's too.
    let touches_target_dir =
        |path: &str| [APP_DIR, STAGING_DIR].iter().any(|dir| in_dir(path, dir));
    let stall = || Fault::Stall(Some(std::time::Duration::from_secs(10)));
    // Set after an op that changed the target's directory: the next op, of
    // whatever kind, is stalled too, so probes see the state between the two
    // (at a stalled namespace op the kernel holds the directory lock, and a
    // probe would only see the state after it).
    let mut probe_next = false;
    let by_seq = logged_by_seq(durable);
    for (index, op) in trace.iter().enumerate() {
        let point = |fault: Fault| Placed {
            point: CrashPoint::at(op.name, fault),
            op: index,
        };
        if !op.is_mutating() {
            // No fault lands on a release (close(2) has returned).
            if op.kind != OpKind::Release && std::mem::take(&mut probe_next) {
                points.push(point(stall()));
            }
            // A read that fails, and every later read of that file: the
            // kernel retries a failed readahead with a read of its own.
            // Not where programs run from (the target's directory, the
            // macOS model's image): FUSE cannot tell a read(2) from a page
            // fault, and there a read may be the running program paging in
            // its own code, which no strategy can help.
            let runs_there = [APP_DIR, IMAGE_DIR].iter().any(|dir| in_dir(&op.path, dir));
            if op.kind == OpKind::Read && !runs_there {
                points.push(point(Fault::Full(libc::EIO)));
            }
            continue;
        }
        let mut at = |fault: Fault| points.push(point(fault));
        if first_mutation {
            at(Fault::KillBefore(Signal::SIGKILL));
            first_mutation = false;
        }
        at(Fault::KillAfter(Signal::SIGKILL));
        if sigterm {
            at(Fault::KillAfter(Signal::SIGTERM));
        }
        // sync(2) returns no error to see (syncfs does, but what a failed
        // writeback under either loses is not modelled: PERSISTENCE.md).
        let reports_errors = op.kind != OpKind::Sync;
        if reports_errors {
            at(Fault::Errno(libc::EIO));
        }
        // A full disk stays full: this op and every later one that needs
        // space fail, until the run ends. A disk fills inside a write: it
        // stores part and returns the short count, and the next one fails
        // (a writeback write's short count is told to nobody: it fails).
        let half = fault_fs::ShortWrite::Percent(50);
        if op.kind == OpKind::Write && op.len > 1 && !op.writeback {
            at(Fault::Fills(half, libc::ENOSPC));
        } else if op.kind.needs_space() {
            at(Fault::Full(libc::ENOSPC));
        }
        if op.kind == OpKind::Write && op.len > 1 {
            if op.writeback {
                // One writeback write carries every page the writer stored
                // through its mapping: a kill between two of its stores
                // leaves the first part. (The kernel takes a short count on
                // writeback as done and tells nobody, so that is no
                // error the strategy could have handled.)
                at(Fault::KillWithin(half));
            } else {
                at(Fault::ShortWrite(half));
            }
        }
        let changes_target_dir = !op.kind.is_sync()
            && (touches_target_dir(&op.path)
                || op.path2.as_deref().is_some_and(touches_target_dir));
        if changes_target_dir {
            at(stall());
        }
        probe_next = changes_target_dir;
        // A failed fsync that the strategy goes on past: what the disk holds
        // once the run has ended (the data it was to make durable is not).
        if op.kind.is_sync() && reports_errors {
            for model in PersistenceModel::ALL {
                at(Fault::ErrnoThenCut(libc::EIO, Cut::new(model)));
            }
        }
        // metadata-ordered with all data written back is the tree as it is
        // after the op: what the kill after it leaves, which that point
        // checks (with the live processes still running at the retry).
        let everything = Cut {
            model: PersistenceModel::MetadataOrdered,
            written: Writeback::All,
        };
        let logged: Vec<Cut> = by_seq
            .get(&op.seq)
            .into_iter()
            .flatten()
            .map(|state| state.cut)
            .filter(|cut| *cut != everything)
            .collect();
        if logged.is_empty() {
            // Not logged: the guaranteed state, run for real.
            for model in PersistenceModel::ALL {
                at(Fault::PowerCut(Cut::new(model)));
            }
        }
        for cut in logged {
            at(Fault::PowerCut(cut));
        }
    }
    points
}

/// Whether `path` (from the mount's root) is the top-level directory `dir`
/// or inside it.
fn in_dir(path: &str, dir: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|rest| rest.strip_prefix(dir))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What a worker does next: one crash point run for real, or the power-cut
/// points that leave one durable state, computed from the recording.
enum Work {
    /// The index of a point to run.
    Run(usize),
    /// Points (indexes) whose power cuts leave the same durable tree.
    PowerCut { points: Vec<usize>, durable: Tree },
}

impl Work {
    /// The indexes of the points it checks, the one it runs first.
    fn points(&self) -> &[usize] {
        match self {
            Work::Run(index) => std::slice::from_ref(index),
            Work::PowerCut { points, .. } => points,
        }
    }
}

/// What one run costs besides the bytes it moves (a mount reset, a
/// sandbox's start, the observation), in the same unit.
const RUN_COST: u64 = 256 * 1024;

/// What each unit of `work` costs, in bytes moved: a run moves what the
/// recording moved up to its op and a retry after it what the whole
/// recording moved; a power cut computed costs its retry alone. A 64 MiB
/// state's retry is not a stall at a lookup, and an ETA counted in points
/// would say so.
fn work_costs(work: &[Work], points: &[Placed], trace: &[OpRecord]) -> Vec<u64> {
    let mut moved = Vec::with_capacity(trace.len());
    let mut sum = 0;
    for op in trace {
        if matches!(op.kind, OpKind::Read | OpKind::Write) {
            sum += op.len;
        }
        moved.push(sum);
    }
    let retry = sum + RUN_COST;
    work.iter()
        .map(|item| match item {
            Work::Run(index) => {
                moved.get(points[*index].op).copied().unwrap_or(sum) + RUN_COST + retry
            }
            Work::PowerCut { .. } => retry,
        })
        .collect()
}

/// The recording run, on a stage that the first worker then reuses, with
/// the durable state after each of its mutating ops.
pub fn record(prepared: &Prepared) -> Result<(RunOutcome, Vec<PowerCut>, Stage), RunError> {
    let mut stage = Stage::new(prepared)?;
    stage.prepare(prepared)?;
    stage.handle().log_durable_states(true);
    let outcome = run_staged(
        &mut stage,
        prepared,
        &[],
        &RunOptions {
            retry: false,
            ..RunOptions::default()
        },
    )?;
    let durable = stage.handle().take_durable_states();
    Ok((outcome, durable, stage))
}

/// Fails with [`RunError::StrategyFails`] when the undisturbed run `record`
/// failed (not exit 0, and the target not new) and the scenario does not
/// expect `result` to fail: no crash point could tell anything but that.
/// A run the platform's model killed is the model's finding, not this.
pub(crate) fn check_undisturbed(prepared: &Prepared, record: &RunOutcome) -> Result<(), RunError> {
    let first = &record.observed.first;
    let expected = prepared.scenario.expect().get(&Property::Result).copied();
    if first.exit.success()
        || first.target.class == TargetClass::New
        || first.killed_by_platform.is_some()
        || expected == Some(Expectation::Fail)
    {
        return Ok(());
    }
    let said = last_words(&first.stderr).map_or_else(String::new, |line| format!(": {line}"));
    let hint = if unsupported_call(&said) {
        UNSUPPORTED_CALL_HINT.to_owned()
    } else {
        "fix it first; `swapfault check` with no --fault runs it once and shows its stderr"
            .to_owned()
    };
    Err(RunError::StrategyFails {
        exit: first.exit,
        workdir: prepared.scenario.strategy.workdir.display().to_string(),
        said,
        hint,
    })
}

/// The logged durable states of each op, by its sequence number.
fn logged_by_seq(durable: &[PowerCut]) -> HashMap<u64, Vec<&PowerCut>> {
    let mut by_seq: HashMap<u64, Vec<&PowerCut>> = HashMap::new();
    for state in durable {
        by_seq.entry(state.seq).or_default().push(state);
    }
    by_seq
}

/// Orders the work: each point where it stands, power-cut points that share
/// a durable state folded into the first of them.
fn plan_work(points: &[Placed], record: &RunOutcome, durable: &[PowerCut]) -> Vec<Work> {
    let by_seq = logged_by_seq(durable);
    let mut work: Vec<Work> = Vec::new();
    for (index, point) in points.iter().enumerate() {
        let Fault::PowerCut(cut) = point.point.fault else {
            work.push(Work::Run(index));
            continue;
        };
        let seq = record.trace[point.op].seq;
        let cut = by_seq
            .get(&seq)
            .and_then(|states| states.iter().find(|state| state.cut == cut));
        // Logged for every mutating op; should one be missing, run it.
        let Some(cut) = cut else {
            work.push(Work::Run(index));
            continue;
        };
        let same = work.iter_mut().find_map(|w| match w {
            Work::PowerCut {
                points, durable, ..
            } if durable.same_state(&cut.tree) => Some(points),
            _ => None,
        });
        match same {
            Some(points) => points.push(index),
            None => work.push(Work::PowerCut {
                points: vec![index],
                durable: cut.tree.clone(),
            }),
        }
    }
    work
}

/// The outcome of one unit of work, which all its points share.
fn do_work(
    stage: &mut Stage,
    prepared: &Prepared,
    record: &RunOutcome,
    placed: &Placed,
    work: &Work,
    sharing: Option<Sharing>,
) -> Result<RunOutcome, RunError> {
    let options = RunOptions {
        sharing,
        ..RunOptions::after(record)
    };
    match work {
        Work::Run(_) => {
            stage.prepare(prepared)?;
            run_staged(stage, prepared, &[placed.point.rule()], &options)
        }
        Work::PowerCut { durable, .. } => {
            let trace = record.trace[..=placed.op].to_vec();
            run_from_power_cut(stage, prepared, &placed.point, durable, trace, &options)
        }
    }
}

/// Explores `prepared`: records, then checks every crash point of the
/// recording (or this partition's share of them), each worker on a stage
/// of its own. `stop` ends it early (Ctrl-C): points under way when it is
/// set are left out, so the caller may kill their processes at once
/// ([`crate::proc::kill_all_children`]). `on_event` sees progress.
pub fn explore(
    prepared: &Prepared,
    options: &ExploreOptions,
    stop: &AtomicBool,
    on_event: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Exploration, RunError> {
    let scenario = &prepared.scenario;
    let _span = tracing::info_span!("explore", scenario = %scenario.name).entered();
    let (mut record, durable, record_stage) = record(prepared)?;
    if stop.load(Ordering::Relaxed) {
        // Stopped during the recording: what it saw was cut short by that,
        // and no crash point can be derived from it (none is, from no trace).
        record.trace.clear();
        let why = Verdict::NotExercised {
            why: "stopped during the recording".into(),
        };
        for verdict in record.evaluation.0.values_mut() {
            *verdict = why.clone();
        }
    }
    if !stop.load(Ordering::Relaxed) {
        check_undisturbed(prepared, &record)?;
    }
    let sigterm = options.sigterm || scenario.sigterm;
    let mut points = crash_points(&record.trace, &durable, sigterm);
    let derived = points.len();
    let sampling = Sampling::of(&record.trace, options.coverage);
    points.retain(|point| sampling.keeps(point.op));
    let total = points.len();
    if let Some(partition) = options.partition {
        points = points
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % partition.count == partition.index - 1)
            .map(|(_, p)| p)
            .collect();
    }
    if let Some(max) = options.max_runs {
        points.truncate(max);
    }
    let work = plan_work(&points, &record, &durable);
    drop(durable);
    let costs: HashMap<usize, u64> = work
        .iter()
        .zip(work_costs(&work, &points, &record.trace))
        .map(|(item, cost)| (item.points()[0], cost))
        .collect();
    // Computed power cuts go to the first worker, which keeps the recording's
    // stage: the same mount and NEW paths as the run the states came from,
    // in case the strategy left either in the files its retry reads.
    let (cuts, runs): (Vec<&Work>, Vec<&Work>) = work
        .iter()
        .partition(|item| matches!(item, Work::PowerCut { .. }));
    on_event(Event::Planned {
        scenario: &scenario.name,
        points: points.len(),
        cost: costs.values().sum(),
    });
    let results: Mutex<Vec<Option<PointResult>>> = Mutex::new(vec![None; points.len()]);
    let fatal: Mutex<Option<RunError>> = Mutex::new(None);
    let mut stages: Vec<Option<Stage>> = (0..options.workers.max(1)).map(|_| None).collect();
    stages[0] = Some(record_stage);
    let retries = Arc::new(SharedRetries::new(
        prepared,
        matches!(options.coverage, Coverage::Sampled { .. }),
    ));
    // Set for the second round: the points that took the retry of a class
    // that turned out to vary, run again with retries of their own.
    let again = AtomicBool::new(false);
    let check = |worker: usize, stage: &mut Option<Stage>, item: &Work| {
        let first = &points[item.points()[0]];
        let _span = tracing::info_span!("crash_point", worker, point = %first.point).entered();
        let outcome = match stage.take().map_or_else(|| Stage::new(prepared), Ok) {
            Ok(mut ready) => {
                let sharing = (!again.load(Ordering::Relaxed)).then(|| Sharing {
                    retries: retries.clone(),
                    point: item.points()[0],
                });
                let outcome = do_work(&mut ready, prepared, &record, first, item, sharing);
                // A stage that failed a run is not trusted again.
                if outcome.is_ok() {
                    *stage = Some(ready);
                }
                outcome
            }
            Err(err) => Err(err),
        };
        // Stopped meanwhile: the run may have been cut short by it.
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let outcome = match outcome {
            // No mount: no other point can run either.
            Err(err @ RunError::Mount(_)) => {
                if let Ok(mut fatal) = fatal.lock() {
                    fatal.get_or_insert(err);
                }
                return false;
            }
            other => other.map_err(|err| err.to_string()),
        };
        for &index in item.points() {
            let point = &points[index].point;
            let result = match &outcome {
                Ok(outcome) => PointResult::of(point, outcome),
                Err(error) => PointResult::failed(point, error.clone()),
            };
            on_event(Event::PointDone {
                result: &result,
                cost: costs.get(&index).copied().unwrap_or(0),
            });
            if let Ok(mut results) = results.lock() {
                results[index] = Some(result);
            }
        }
        true
    };
    let round = |cuts: &[&Work], runs: &[&Work], stages: &mut [Option<Stage>]| {
        let (cuts, runs) = (Queue::new(cuts), Queue::new(runs));
        let take = |worker: usize| {
            if stop.load(Ordering::Relaxed) || fatal.lock().is_ok_and(|f| f.is_some()) {
                return None;
            }
            let cut = (worker == 0).then(|| cuts.take()).flatten();
            cut.or_else(|| runs.take()).copied()
        };
        pool::run(stages, &take, &check);
    };
    round(&cuts, &runs, &mut stages);
    let redo = retries.takers_of_varied();
    if !redo.is_empty() && !stop.load(Ordering::Relaxed) {
        again.store(true, Ordering::Relaxed);
        let (mut cuts, mut runs) = (cuts.clone(), runs.clone());
        cuts.retain(|item| redo.contains(&item.points()[0]));
        runs.retain(|item| redo.contains(&item.points()[0]));
        round(&cuts, &runs, &mut stages);
    }
    if let Some(err) = fatal.into_inner().ok().flatten() {
        return Err(err);
    }
    let results = results.into_inner().unwrap_or_default();
    // What was done, of what was planned (less when interrupted).
    let mut counts = Points {
        total,
        derived,
        coverage: options.coverage,
        sampled: sampling.runs,
        partition: options.partition,
        retries: retries.retries_run(),
        retries_taken: retries.retries_taken(),
        varied_classes: retries.varied(),
        ..Points::default()
    };
    for item in &work {
        let done = item
            .points()
            .iter()
            .filter(|i| results[**i].is_some())
            .count();
        match item {
            Work::Run(_) => counts.run += done,
            Work::PowerCut { .. } => {
                counts.computed += done;
                counts.durable_states += usize::from(done > 0);
            }
        }
    }
    let results: Vec<PointResult> = results.into_iter().flatten().collect();
    counts.checked = results.len();
    let interrupted = stop.load(Ordering::Relaxed) || results.len() < points.len();
    Ok(Exploration {
        record,
        results,
        points: counts,
        interrupted,
    })
}
