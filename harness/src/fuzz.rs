//! Fuzzing crash windows: random fault schedules across a run and the
//! retries after it, shrunk to the smallest that fails, kept as regressions.
//!
//! A schedule is one to three faults, each in a phase ([`Phase`]: the first
//! run, the retry after it, the retry after that) at a crash point of that
//! phase. The first fault's points are the explorer's, from the recorded
//! run; each later fault's come from the run the schedule's faults before
//! it make (run once, then cached): the ops of the retry they lead to, or,
//! in the same run, the ops after the last of them fired, so that a kill
//! lands inside the rollback an error started. Every kind of fault the
//! explorer places is drawn: kills with SIGKILL or SIGTERM, one-shot and
//! lasting errors, short writes, kills within writeback, stalls with
//! probes, power cuts under either model, errors followed by a cut. A retry
//! runs after every interrupted run, so a fault can land inside a retry and
//! a retry can be interrupted again.
//!
//! For the canary, a case also draws the new version's size ([`new_sizes`]):
//! each size is its own build, recording and stage, made when first drawn.
//!
//! Each case is one run with its retries, judged on every property; it
//! fails when a property fails. proptest generates the schedules from the
//! seed, shrinks a failing one (fewer faults, earlier phases, earlier ops,
//! simpler faults: each op's points begin with its kills) and keeps its
//! seed in the regressions file, whose cases run before any new one.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt::Debug;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fault_fs::{CrashPoint, Fault, Phase, Rule};
use proptest::test_runner::{
    Config, FailurePersistence, PersistedSeed, RngAlgorithm, TestCaseError, TestError, TestRng,
    TestRunner,
};
use serde::Serialize;

use crate::explore::{crash_points, record, Placed};
use crate::report::{shell_quote, Report};
use crate::runner::{run_staged, Prepared, RunError, RunOptions, RunOutcome, Stage};
use crate::scenario::{Scenario, Versions};

/// The most faults in one schedule.
pub const MAX_FAULTS: usize = 3;
/// The latest phase a fault is put in: the second retry.
pub const MAX_PHASE: Phase = 2;
/// Where a fault lands: `pick / PICKS` of the way through its phase's ops
/// (those with crash points), then as far through that op's points.
const PICKS: u32 = 1000;

/// Knobs of a fuzzing session.
#[derive(Clone, Debug)]
pub struct FuzzOptions {
    /// New cases to try (after the regressions).
    pub cases: u32,
    /// The seed; drawn (and printed) when not given.
    pub seed: Option<u64>,
    /// Time for new cases; a session stops taking them after it.
    pub time: Duration,
    /// At most this many runs spent shrinking a failing schedule.
    pub shrink_steps: u32,
    /// At most this much time spent shrinking.
    pub shrink_time: Duration,
    /// The regressions file: failing seeds are kept there and replayed
    /// first. `None` keeps none.
    pub regressions: Option<PathBuf>,
}

impl Default for FuzzOptions {
    fn default() -> Self {
        FuzzOptions {
            cases: 256,
            seed: None,
            time: Duration::from_secs(45),
            shrink_steps: 200,
            shrink_time: Duration::from_secs(15),
            regressions: None,
        }
    }
}

/// The regressions file of a scenario file: next to it, named after it.
pub fn regressions_path(scenario: &Path) -> PathBuf {
    let stem = scenario
        .file_stem()
        .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
    scenario.with_file_name(format!("{stem}.fuzz-regressions"))
}

/// One fault of a generated schedule, before it is placed: whether it
/// lands in the run after the previous fault's (the first fault's is the
/// first run), how far into that run's ops, and how far into that op's
/// crash points. Drawing the op first keeps ops with many points (a write
/// with its writeback states) from crowding out the rest; drawing the
/// fault apart lets shrinking make it simpler at the same op (each op's
/// points begin with its kills).
type Gene = (bool, u32, u32);

/// Crash points grouped by op, in trace order.
type PointsByOp = Vec<Vec<CrashPoint>>;

/// `placed` grouped by op (they come in trace order).
fn by_op(placed: impl IntoIterator<Item = Placed>) -> PointsByOp {
    let mut ops: Vec<(usize, Vec<CrashPoint>)> = Vec::new();
    for Placed { point, op } in placed {
        match ops.last_mut() {
            Some((at, points)) if *at == op => points.push(point),
            _ => ops.push((op, vec![point])),
        }
    }
    ops.into_iter().map(|(_, points)| points).collect()
}

/// `pick / PICKS` of the way into `len` items.
fn nth_of(pick: u32, len: usize) -> usize {
    (pick as usize * len / PICKS as usize).min(len.saturating_sub(1))
}

/// What a fault does, broadly: ops are weighted, and an op's faults drawn,
/// by these, so that the many writeback states of a power cut or the
/// error variants of an op do not crowd out its kill.
fn family(fault: &Fault) -> u8 {
    match fault {
        Fault::KillBefore(_) | Fault::KillAfter(_) | Fault::KillWithin(_) => 0,
        Fault::Errno(_) | Fault::Full(_) | Fault::ErrnoThenCut(..) => 1,
        Fault::PowerCut(_) => 2,
        Fault::Stall(_) => 3,
        Fault::ShortWrite(_) => 4,
    }
}

/// The op `pick` lands on, each op weighted by how many families of fault
/// it takes: an op that can only be stalled (one a probe looks past) counts
/// once, a rename that can be killed, failed, cut and stalled four times.
fn pick_op(pick: u32, ops: &PointsByOp) -> Option<&Vec<CrashPoint>> {
    let weight = |points: &Vec<CrashPoint>| {
        let mut families: Vec<u8> = points.iter().map(|p| family(&p.fault)).collect();
        families.sort_unstable();
        families.dedup();
        families.len()
    };
    let total: usize = ops.iter().map(weight).sum();
    let mut at = nth_of(pick, total);
    ops.iter().find(|points| {
        let w = weight(points);
        if at < w {
            true
        } else {
            at -= w;
            false
        }
    })
}

/// The crash point `pick` lands on among one op's `points`: a family of
/// fault first, then one of its points (`pick` 0 is the op's first kill).
fn pick_fault(pick: u32, points: &[CrashPoint]) -> &CrashPoint {
    let mut families: Vec<u8> = points.iter().map(|p| family(&p.fault)).collect();
    families.sort_unstable();
    families.dedup();
    let chosen = families[nth_of(pick, families.len())];
    let within: Vec<&CrashPoint> = points
        .iter()
        .filter(|p| family(&p.fault) == chosen)
        .collect();
    // The rest of the pick, past the family, chooses within it.
    let rest = (pick as usize * families.len() % PICKS as usize) as u32;
    within[nth_of(rest, within.len())]
}

/// What a fuzzing session did and found.
#[derive(Clone, Debug, Serialize)]
pub struct FuzzReport {
    /// The scenario's name.
    pub scenario: String,
    /// The seed the schedules came from.
    pub seed: u64,
    /// Cases run (regressions, new cases and shrinking steps).
    pub cases: u32,
    /// Faults the cases placed, before any failed (drawn faults that could
    /// not be placed, in a phase that never ran, are not counted).
    pub faults_placed: u32,
    /// Of those, the ones that fired: a fault placed at an op its run
    /// never reached does not fire.
    pub faults_fired: u32,
    /// Runs spent shrinking.
    pub shrink_steps: u32,
    /// Seconds from the first failing case on: shrinking, and the replay.
    pub shrink_seconds: f64,
    /// Why shrinking stopped short of the smallest, naming the knob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shrink_limit: Option<String>,
    /// Seconds the session took.
    pub seconds: f64,
    /// The regressions file, if one was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regressions: Option<PathBuf>,
    /// Stopped early (Ctrl-C).
    pub interrupted: bool,
    /// The smallest failing schedule found, if one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<Failing>,
}

/// A failing schedule, shrunk.
#[derive(Clone, Debug, Serialize)]
pub struct Failing {
    /// Its faults, as `--fault` specs.
    pub schedule: Vec<String>,
    /// The new canary's size it drew, where not the scenario's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_size: Option<DrawnSize>,
    /// The command that replays it.
    pub reproduce: String,
    /// The `[strategy]` lines that make a scenario run it.
    pub snippet: String,
    /// The report of its replay.
    pub report: Report,
}

/// A new canary's size that a case drew.
#[derive(Clone, Debug, Serialize)]
pub struct DrawnSize {
    /// The size it was built at (`--new-size`).
    pub built_at: u64,
    /// The old file's length: the two versions' code differs by a few
    /// bytes, so "as long as the old" is within those.
    pub old_bytes: u64,
    /// The new file's length.
    pub new_bytes: u64,
}

/// Keeps failing seeds in a file of proptest's format, under a header
/// that says what it is.
#[derive(Clone, Debug, PartialEq)]
struct Regressions {
    path: PathBuf,
    scenario: String,
}

impl FailurePersistence for Regressions {
    fn load_persisted_failures2(&self, _: Option<&'static str>) -> Vec<PersistedSeed> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        // `cc HEX # shrinks to ...`: the seed is before the comment.
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split('#').next()?.trim().parse().ok())
            .collect()
    }

    fn save_persisted_failure2(
        &mut self,
        _: Option<&'static str>,
        seed: PersistedSeed,
        shrunk: &dyn Debug,
    ) {
        let header = !self.path.exists();
        let mut text = String::new();
        if header {
            text.push_str(&format!(
                "# swapfault fuzz regressions for {}: the seeds of failing fault\n\
                 # schedules, replayed (and shrunk again) before any new case.\n\
                 # Keep this file in version control, next to the scenario.\n",
                self.scenario
            ));
        }
        text.push_str(&format!("{seed} # shrinks to {shrunk:?}\n"));
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut file| file.write_all(text.as_bytes()));
        if let Err(err) = written {
            tracing::warn!(path = %self.path.display(), %err, "cannot keep the failing seed");
        }
    }

    fn box_clone(&self) -> Box<dyn FailurePersistence> {
        Box::new(self.clone())
    }

    fn eq(&self, other: &dyn FailurePersistence) -> bool {
        other.as_any().downcast_ref::<Self>() == Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Places genes: each fault at a crash point of the run its phase makes
/// after the schedule's faults before it, found by running those faults
/// once. A second fault in a run is drawn from the ops after the first
/// one fired: an error that starts a rollback is followed by the
/// rollback's own ops, which the recorded run never made.
struct Placer {
    first: PointsByOp,
    /// By schedule: the crash points of each phase of the run it makes,
    /// after the last of its faults that fired in that phase.
    after: HashMap<String, Vec<PointsByOp>>,
}

impl Placer {
    /// The schedule `genes` make, each fault placed among the points of its
    /// phase; a fault after one that ended its run goes to the retry after
    /// it; a fault in a phase that never runs (nothing interrupted the one
    /// before) is dropped, and so is a second fault at one op.
    fn place(
        &mut self,
        prepared: &Prepared,
        stage: &mut Stage,
        genes: &[Gene],
    ) -> Result<Vec<Rule>, RunError> {
        let mut rules: Vec<Rule> = Vec::new();
        let mut phase: Phase = 0;
        for (i, &(next_run, op_pick, fault_pick)) in genes.iter().enumerate() {
            if next_run && i > 0 {
                phase = (phase + 1).min(MAX_PHASE);
            }
            let mut points = if rules.is_empty() && phase == 0 {
                self.first.clone()
            } else {
                self.points_after(prepared, stage, &rules, phase)?
            };
            // Nothing left of a run that the faults before ended: the
            // fault goes to the retry that follows, if one runs.
            while points.is_empty() && !rules.is_empty() && phase < MAX_PHASE {
                phase += 1;
                points = self.points_after(prepared, stage, &rules, phase)?;
            }
            let Some(at_op) = pick_op(op_pick, &points) else {
                continue;
            };
            let rule = pick_fault(fault_pick, at_op).clone().in_phase(phase).rule();
            let at_same_op = |r: &Rule| {
                (r.phase, &r.ops, r.nth, r.after) == (rule.phase, &rule.ops, rule.nth, rule.after)
            };
            if !rules.iter().any(at_same_op) {
                rules.push(rule);
            }
        }
        Ok(rules)
    }

    /// The crash points of `phase` in the run `before` makes, after the
    /// last of its faults that fired in that phase.
    fn points_after(
        &mut self,
        prepared: &Prepared,
        stage: &mut Stage,
        before: &[Rule],
        phase: Phase,
    ) -> Result<PointsByOp, RunError> {
        let key = schedule_text(before);
        if !self.after.contains_key(&key) {
            stage.prepare(prepared)?;
            // With the states a power cut at each op could leave (what was
            // written back of the unsynced data), as for the first run.
            stage.handle().log_durable_states(true);
            let outcome = run_staged(stage, prepared, before, &RunOptions::default());
            let durable = stage.handle().take_durable_states();
            stage.handle().log_durable_states(false);
            let outcome = outcome?;
            let traces = std::iter::once(&outcome.trace).chain(&outcome.retry_traces);
            let points = traces
                .map(|trace| {
                    let fired = trace.iter().rposition(|op| op.fault.is_some());
                    by_op(
                        crash_points(trace, &durable, true)
                            .into_iter()
                            .filter(|placed| fired.is_none_or(|at| placed.op > at)),
                    )
                })
                .collect();
            self.after.insert(key.clone(), points);
        }
        Ok(self.after[&key]
            .get(phase as usize)
            .cloned()
            .unwrap_or_default())
    }
}

/// The new canary's sizes a case may draw: the scenario's own first (what
/// shrinking goes back to), then built at the old one's size (a few bytes
/// apart, as the versions' code differs), longer, and the shortest there is. The user's files keep their sizes; and a canary
/// is a program, so it is never empty.
fn new_sizes(scenario: &Scenario) -> Vec<Option<u64>> {
    match scenario.versions {
        Versions::Canary { size, .. } => {
            let (shortest, longest) = crate::canary::SIZE_RANGE;
            vec![
                None,
                Some(size),
                Some((size + size / 8).min(longest)),
                Some(shortest),
            ]
        }
        Versions::Files { .. } => vec![None],
    }
}

/// One of the scenario's size variants: built, recorded, with its placer
/// and the stage its cases run on.
struct Variant {
    prepared: Prepared,
    stage: Stage,
    placer: Placer,
}

impl Variant {
    /// Records `prepared` and places its first faults in that recording,
    /// among the writeback states a power cut at each op could leave.
    fn new(prepared: Prepared) -> Result<Variant, RunError> {
        let (recorded, durable, stage) = record(&prepared)?;
        stage.handle().log_durable_states(false);
        let first = by_op(crash_points(&recorded.trace, &durable, true));
        Ok(Variant {
            prepared,
            stage,
            placer: Placer {
                first,
                after: HashMap::new(),
            },
        })
    }

    /// Places `genes` and runs the schedule.
    fn run(&mut self, genes: &[Gene]) -> Result<RunOutcome, RunError> {
        let rules = self.placer.place(&self.prepared, &mut self.stage, genes)?;
        self.stage.prepare(&self.prepared)?;
        run_staged(
            &mut self.stage,
            &self.prepared,
            &rules,
            &RunOptions::default(),
        )
    }
}

fn schedule_text(rules: &[Rule]) -> String {
    rules
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether any property failed.
fn failed(outcome: &RunOutcome) -> bool {
    outcome.evaluation.findings().next().is_some()
}

/// The generator's RNG for `seed`: the same schedules for the same seed.
fn rng_of(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&seed.rotate_left(i as u32 * 16).to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Fuzzes `prepared`: records it, replays the regressions, tries new
/// schedules until the cases or the time run out or one fails, and shrinks
/// the failing one. `stop` ends it early (Ctrl-C); `progress` sees the
/// cases run and whether one has failed.
pub fn fuzz(
    prepared: &Prepared,
    options: &FuzzOptions,
    stop: &AtomicBool,
    progress: &dyn Fn(u32, bool),
) -> Result<FuzzReport, RunError> {
    let started = Instant::now();
    let _span = tracing::info_span!("fuzz", scenario = %prepared.scenario.name).entered();
    let seed = options.seed.unwrap_or_else(rand::random);
    let sizes = new_sizes(&prepared.scenario);
    // The scenario's own sizes now; the others when a case first draws them.
    let mut variants: Vec<Option<Variant>> = sizes.iter().map(|_| None).collect();
    variants[0] = Some(Variant::new(prepared.clone())?);
    let variants = RefCell::new(variants);
    let variant = |index: usize| -> Result<std::cell::RefMut<'_, Variant>, RunError> {
        let mut all = variants.borrow_mut();
        if all[index].is_none() {
            let new_size = sizes[index].expect("the first variant is built");
            let scenario =
                prepared
                    .scenario
                    .with_new_size(new_size)
                    .map_err(|why| RunError::Io {
                        what: format!("a new canary of {new_size} bytes"),
                        source: std::io::Error::other(why),
                    })?;
            all[index] = Some(Variant::new(Prepared::new(scenario)?)?);
        }
        Ok(std::cell::RefMut::map(all, |all| {
            all[index].as_mut().expect("built above")
        }))
    };
    let config = Config {
        cases: options.cases,
        max_shrink_iters: options.shrink_steps,
        max_shrink_time: u32::try_from(options.shrink_time.as_millis()).unwrap_or(u32::MAX),
        failure_persistence: options.regressions.as_ref().map(|path| {
            Box::new(Regressions {
                path: path.clone(),
                scenario: prepared.scenario.name.clone(),
            }) as Box<dyn FailurePersistence>
        }),
        // Cases run here, one after another, on one mount.
        fork: false,
        timeout: 0,
        verbose: 0,
        max_global_rejects: u32::MAX,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng_of(seed));
    // A case: which of the sizes, and its faults.
    let schedules = (
        0..sizes.len(),
        proptest::collection::vec((proptest::bool::ANY, 0..PICKS, 0..PICKS), 1..=MAX_FAULTS),
    );
    let fatal: RefCell<Option<RunError>> = RefCell::new(None);
    let (cases, shrink_steps) = (Cell::new(0u32), Cell::new(0u32));
    let (placed, fired) = (Cell::new(0u32), Cell::new(0u32));
    let failed_once = Cell::new(false);
    let first_failure: Cell<Option<Instant>> = Cell::new(None);
    let search_ends = started + options.time;
    let result = runner.run(&schedules, |(size, genes)| {
        // Out of time, stopped, or broken: every case left passes unrun.
        let out_of_time = !failed_once.get() && Instant::now() > search_ends;
        if out_of_time || stop.load(Ordering::Relaxed) || fatal.borrow().is_some() {
            return Ok(());
        }
        let case = variant(size).and_then(|mut variant| variant.run(&genes));
        if let Ok(outcome) = &case {
            tracing::debug!(schedule = %schedule_text(&outcome.faults), failed = failed(outcome), "case");
            if !failed_once.get() {
                placed.set(placed.get() + outcome.faults.len() as u32);
                fired.set(fired.get() + outcome.observed.fired.len() as u32);
            }
        }
        cases.set(cases.get() + 1);
        if failed_once.get() {
            shrink_steps.set(shrink_steps.get() + 1);
        }
        progress(cases.get(), failed_once.get());
        match case {
            Ok(outcome) if failed(&outcome) => {
                failed_once.set(true);
                if first_failure.get().is_none() {
                    first_failure.set(Some(Instant::now()));
                }
                Err(TestCaseError::fail(schedule_text(&outcome.faults)))
            }
            Ok(_) => Ok(()),
            Err(err) => {
                *fatal.borrow_mut() = Some(err);
                Ok(())
            }
        }
    });
    if let Some(err) = fatal.into_inner() {
        return Err(err);
    }
    let failing = match result {
        Err(TestError::Fail(_, (size, genes))) => {
            let mut variant = variant(size)?;
            let outcome = variant.run(&genes)?;
            let schedule: Vec<String> = outcome.faults.iter().map(|r| r.to_string()).collect();
            let report = Report::of_run(&variant.prepared.scenario, outcome);
            let quoted: Vec<String> = schedule.iter().map(|s| shell_quote(s)).collect();
            let new_size = sizes[size].map(|built_at| DrawnSize {
                built_at,
                old_bytes: variant.prepared.old.len() as u64,
                new_bytes: variant.prepared.new.len() as u64,
            });
            let target =
                sizes[size].map_or(String::new(), |n| format!("[target]\nnew_size = {n}\n"));
            Some(Failing {
                reproduce: report.command.clone(),
                snippet: format!("{target}[strategy]\nfaults = [{}]", quoted.join(", ")),
                schedule,
                new_size,
                report,
            })
        }
        Err(TestError::Abort(reason)) => {
            return Err(RunError::Io {
                what: "fuzzing stopped".into(),
                source: std::io::Error::other(reason.to_string()),
            })
        }
        Ok(()) => None,
    };
    let shrink_limit = (failing.is_some()
        && (shrink_steps.get() >= options.shrink_steps
            || first_failure
                .get()
                .is_some_and(|at| at.elapsed() >= options.shrink_time)))
        .then(|| {
            format!(
                "shrinking stopped at its limit ({} runs; --shrink-steps and --shrink-time allow more): \
                 a smaller failing schedule may exist",
                shrink_steps.get()
            )
        });
    Ok(FuzzReport {
        scenario: prepared.scenario.name.clone(),
        seed,
        cases: cases.get(),
        faults_placed: placed.get(),
        faults_fired: fired.get(),
        shrink_steps: shrink_steps.get(),
        shrink_seconds: first_failure
            .get()
            .map_or(0.0, |at| at.elapsed().as_secs_f64()),
        shrink_limit,
        seconds: started.elapsed().as_secs_f64(),
        regressions: options.regressions.clone(),
        interrupted: stop.load(Ordering::Relaxed),
        failing,
    })
}
