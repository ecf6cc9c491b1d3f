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
//! fails when a property fails that the scenario does not expect to fail. proptest's strategies draw the schedules
//! from the seed and shrink a failing one (fewer faults, earlier phases,
//! earlier ops, simpler faults: each op's points begin with its kills); its
//! seed is kept in the regressions file, whose cases run before any new
//! one. The loop that runs them is ours, not proptest's runner, so that
//! several workers (each with its own mount) run cases at once while the
//! order they are judged in, and so what is found, stays the seed's.

use std::collections::HashMap;
use std::fmt::Debug;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fault_fs::{CrashPoint, Fault, Phase, Rule};
use proptest::prelude::RngExt as _;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::clock::RunInstant;
use crate::error::RunError;
use crate::explore::{check_undisturbed, crash_points, record, Placed};
use crate::outcome::{DrawnSize, Failing, FuzzOutcome, FuzzStats, RunOutcome};
use crate::pool::{self, Queue};
use crate::runner::{run_staged, RunOptions};
use crate::scenario::{Expectation, Scenario, Versions};
use crate::stage::Stage;
use crate::target::Prepared;

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
    /// At most this much time spent shrinking; `None` (the default): bound
    /// by its steps alone, so the same seed shrinks to the same schedule on
    /// any machine.
    pub shrink_time: Option<Duration>,
    /// The regressions file: failing seeds are kept there and replayed
    /// first. `None` keeps none.
    pub regressions: Option<PathBuf>,
    /// Cases run at once, each on its own mount. The same seed finds the
    /// same schedule with any number.
    pub workers: usize,
}

impl Default for FuzzOptions {
    fn default() -> Self {
        FuzzOptions {
            cases: 256,
            seed: None,
            time: Duration::from_secs(45),
            shrink_steps: 200,
            shrink_time: None,
            regressions: None,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
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
        Fault::Errno(_) | Fault::Full(_) | Fault::Fills(..) | Fault::ErrnoThenCut(..) => 1,
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

/// The seeds of failing cases, kept in a file of proptest's format
/// (`cc HEX # shrinks to VALUE`) under a header that says what it is.
#[derive(Clone, Debug, PartialEq)]
struct Regressions {
    path: PathBuf,
    scenario: String,
}

impl Regressions {
    /// The kept seeds, oldest first; lines that are not a seed are skipped.
    fn load(&self) -> Vec<CaseSeed> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| line.split('#').next())
            .filter_map(|seed| parse_seed(seed.trim()))
            .collect()
    }

    /// Appends `seed`, with the shrunk case it led to as a comment; the
    /// header goes first into a new file.
    fn save(&self, seed: &CaseSeed, shrunk: &dyn Debug) {
        let mut text = String::new();
        if !self.path.exists() {
            text.push_str(&format!(
                "# swapfault fuzz regressions for {}: the seeds of failing fault\n\
                 # schedules, replayed (and shrunk again) before any new case.\n\
                 # Keep this file in version control, next to the scenario.\n",
                self.scenario
            ));
        }
        text.push_str(&format!("{} # shrinks to {shrunk:?}\n", seed_text(seed)));
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut file| file.write_all(text.as_bytes()));
        if let Err(err) = written {
            tracing::warn!(path = %self.path.display(), %err, "cannot keep the failing seed");
        }
    }
}

/// The seed of one case: proptest's ChaCha seed, which its regressions
/// files write as `cc` and 64 hex digits.
type CaseSeed = [u8; 32];

/// `seed` as proptest writes it: `cc HEX`.
fn seed_text(seed: &CaseSeed) -> String {
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    format!("cc {hex}")
}

/// `cc HEX` as a seed; `None` for anything else.
fn parse_seed(text: &str) -> Option<CaseSeed> {
    let hex = text.strip_prefix("cc ")?.trim();
    let mut seed = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (byte, pair) in seed.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(seed)
}

/// The new canary's sizes a case may draw: the scenario's own first (what
/// shrinking goes back to), then built at the old one's size (a few bytes
/// apart, as the versions' code differs), longer, and the shortest there is.
/// The user's files keep their sizes; and a canary is a program, so it is
/// never empty.
fn new_sizes(scenario: &Scenario) -> Vec<Option<u64>> {
    match scenario.target.versions {
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

/// One of the scenario's sizes, built and recorded once for every worker:
/// where its first faults go, and the runs that place the later ones. A
/// gene lands where it would with one worker, whichever worker runs it.
struct Variant {
    prepared: Prepared,
    /// The options of its runs, learnt from its recording.
    options: RunOptions,
    first: PointsByOp,
    /// By schedule: the crash points of each phase of the run it makes,
    /// after the last of its faults that fired in that phase.
    after: Mutex<HashMap<String, Vec<PointsByOp>>>,
}

impl Variant {
    /// Records `prepared` and places its first faults in that recording,
    /// among the writeback states a power cut at each op could leave; the
    /// recording's stage is the recording worker's to keep.
    fn record(prepared: Prepared) -> Result<(Variant, Stage), RunError> {
        let (recorded, durable, stage) = record(&prepared)?;
        check_undisturbed(&prepared, &recorded)?;
        stage.handle().log_durable_states(false);
        let first = by_op(crash_points(&recorded.trace, &durable, true));
        let variant = Variant {
            prepared,
            options: RunOptions::after(&recorded),
            first,
            after: Mutex::new(HashMap::new()),
        };
        Ok((variant, stage))
    }

    /// The schedule `genes` make, each fault placed among the points of its
    /// phase; a fault after one that ended its run goes to the retry after
    /// it; a fault in a phase that never runs (nothing interrupted the one
    /// before) is dropped, and so is a second fault at one op.
    fn place(&self, stage: &mut Stage, genes: &[Gene]) -> Result<Vec<Rule>, RunError> {
        let mut rules: Vec<Rule> = Vec::new();
        let mut phase: Phase = 0;
        for (i, &(next_run, op_pick, fault_pick)) in genes.iter().enumerate() {
            if next_run && i > 0 {
                phase = (phase + 1).min(MAX_PHASE);
            }
            let mut points = if rules.is_empty() && phase == 0 {
                self.first.clone()
            } else {
                self.points_after(stage, &rules, phase)?
            };
            // Nothing left of a run that the faults before ended: the
            // fault goes to the retry that follows, if one runs.
            while points.is_empty() && !rules.is_empty() && phase < MAX_PHASE {
                phase += 1;
                points = self.points_after(stage, &rules, phase)?;
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
    /// last of its faults that fired in that phase: run on `stage` the
    /// first time any worker asks.
    fn points_after(
        &self,
        stage: &mut Stage,
        before: &[Rule],
        phase: Phase,
    ) -> Result<PointsByOp, RunError> {
        let key = schedule_text(before);
        let known = |after: &HashMap<String, Vec<PointsByOp>>| {
            after
                .get(&key)
                .map(|phases| phases.get(phase as usize).cloned().unwrap_or_default())
        };
        if let Some(points) = known(&self.after.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(points);
        }
        // Run without the lock, so that other workers go on placing; should
        // two run the same schedule at once, the first to finish is kept.
        stage.prepare(&self.prepared)?;
        // With the states a power cut at each op could leave (what was
        // written back of the unsynced data), as for the first run.
        stage.handle().log_durable_states(true);
        let outcome = run_staged(stage, &self.prepared, before, &self.options);
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
        let mut after = self.after.lock().unwrap_or_else(|e| e.into_inner());
        after.entry(key.clone()).or_insert(points);
        Ok(known(&after).expect("inserted above"))
    }

    /// Places `genes` and runs the schedule on `stage`.
    fn run(&self, stage: &mut Stage, genes: &[Gene]) -> Result<RunOutcome, RunError> {
        let rules = self.place(stage, genes)?;
        stage.prepare(&self.prepared)?;
        run_staged(stage, &self.prepared, &rules, &self.options)
    }
}

/// The scenario at each of its new sizes, shared by the workers: the
/// scenario's own recorded from the start, the others when a case first
/// draws them.
struct Variants {
    sizes: Vec<Option<u64>>,
    built: Mutex<Vec<Option<Arc<Variant>>>>,
}

impl Variants {
    /// Records `prepared`; its stage is the first worker's.
    fn new(prepared: &Prepared) -> Result<(Variants, Stage), RunError> {
        let sizes = new_sizes(&prepared.scenario);
        let (own, stage) = Variant::record(prepared.clone())?;
        let mut built: Vec<Option<Arc<Variant>>> = sizes.iter().map(|_| None).collect();
        built[0] = Some(Arc::new(own));
        let variants = Variants {
            sizes,
            built: Mutex::new(built),
        };
        Ok((variants, stage))
    }

    /// The variant of size `index`, and a stage for it if it was built and
    /// recorded now (on a stage the asking worker then keeps).
    fn get(&self, index: usize) -> Result<(Arc<Variant>, Option<Stage>), RunError> {
        // Held while building: a worker that needs the same size waits.
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(variant) = &built[index] {
            return Ok((variant.clone(), None));
        }
        let own = built[0].as_ref().expect("the scenario's own size is built");
        let new_size = self.sizes[index].expect("the first size is the scenario's own");
        let scenario = own
            .prepared
            .scenario
            .with_new_size(new_size)
            .map_err(|why| RunError::Io {
                what: format!("a new canary of {new_size} bytes"),
                source: std::io::Error::other(why),
            })?;
        let (variant, stage) = Variant::record(Prepared::new(scenario)?)?;
        let variant = Arc::new(variant);
        built[index] = Some(variant.clone());
        Ok((variant, Some(stage)))
    }
}

/// One worker: its own stage (mount) for each size it has run.
struct Worker<'a> {
    variants: &'a Variants,
    stages: Vec<Option<Stage>>,
}

impl<'a> Worker<'a> {
    fn new(variants: &'a Variants, first: Option<Stage>) -> Worker<'a> {
        let mut stages: Vec<Option<Stage>> = variants.sizes.iter().map(|_| None).collect();
        stages[0] = first;
        Worker { variants, stages }
    }

    /// The variant of size `index`, with this worker's stage for it.
    fn variant(&mut self, index: usize) -> Result<(Arc<Variant>, &mut Stage), RunError> {
        let (variant, recorded) = self.variants.get(index)?;
        let stage = match (self.stages[index].take(), recorded) {
            (Some(stage), _) | (None, Some(stage)) => stage,
            (None, None) => Stage::new(&variant.prepared)?,
        };
        Ok((variant, self.stages[index].insert(stage)))
    }

    fn run(&mut self, (size, genes): &Case) -> Result<RunOutcome, RunError> {
        let (variant, stage) = self.variant(*size)?;
        variant.run(stage, genes)
    }
}

/// A case's value: which of the sizes, and its faults.
type Case = (usize, Vec<Gene>);

/// The cases of a scenario with `sizes` new sizes.
fn cases(sizes: usize) -> impl Strategy<Value = Case> {
    (
        0..sizes,
        proptest::collection::vec((proptest::bool::ANY, 0..PICKS, 0..PICKS), 1..=MAX_FAULTS),
    )
}

/// A case drawn, with where it came from.
struct Drawn<T> {
    tree: T,
    seed: CaseSeed,
    /// From the regressions file (and so not kept again).
    kept: bool,
}

fn schedule_text(rules: &[Rule]) -> String {
    rules
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a property failed that `scenario` does not expect to fail: a
/// flaw its `[expect]` already names does not stop the search for others
/// (an ad-hoc strategy expects nothing, so any finding fails it).
fn failed(scenario: &Scenario, outcome: &RunOutcome) -> bool {
    outcome
        .evaluation
        .findings()
        .any(|finding| scenario.expect().get(&finding.property) != Some(&Expectation::Fail))
}

/// The generator's RNG for `seed`: the same schedules for the same seed.
fn rng_of(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&seed.rotate_left(i as u32 * 16).to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// The case `seed` makes.
fn tree_of<S: Strategy>(strategy: &S, seed: &CaseSeed) -> Result<S::Tree, RunError> {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, seed);
    strategy
        .new_tree(&mut TestRunner::new_with_rng(Config::default(), rng))
        .map_err(cannot_draw)
}

fn cannot_draw(reason: proptest::test_runner::Reason) -> RunError {
    RunError::Io {
        what: "drawing a fault schedule".into(),
        source: std::io::Error::other(reason.to_string()),
    }
}

/// Fuzzes `prepared`: records it, replays the regressions, tries new
/// schedules until the cases or the time run out or one fails, and shrinks
/// the failing one. `stop` ends it early (Ctrl-C); `progress` sees the
/// cases run and whether one has failed.
///
/// Cases are drawn in one order from the seed (as proptest's runner draws
/// them: each case's seed from the RNG of the case before), run a batch of
/// `workers` at a time, and judged in that order: the first that fails is
/// the one shrunk, whatever the number of workers. Shrinking runs one step
/// at a time, as each step depends on the one before.
pub fn fuzz(
    prepared: &Prepared,
    options: &FuzzOptions,
    stop: &AtomicBool,
    progress: &dyn Fn(u32, bool),
) -> Result<FuzzOutcome, RunError> {
    let started = Instant::now();
    let _span = tracing::info_span!("fuzz", scenario = %prepared.scenario.name).entered();
    let seed = options.seed.unwrap_or_else(rand::random);
    // Recorded now: a scenario that cannot run fails here.
    let (variants, recorded) = Variants::new(prepared)?;
    let mut recorded = Some(recorded);
    let mut workers: Vec<Worker> = (0..options.workers.max(1))
        .map(|_| Worker::new(&variants, recorded.take()))
        .collect();
    let strategy = cases(variants.sizes.len());
    let regressions = options.regressions.as_ref().map(|path| Regressions {
        path: path.clone(),
        scenario: prepared.scenario.name.clone(),
    });
    // The kept seeds first, the latest kept first, as proptest does.
    let mut kept = regressions
        .as_ref()
        .map(Regressions::load)
        .unwrap_or_default()
        .into_iter()
        .rev();
    let mut draw = TestRunner::new_with_rng(Config::default(), rng_of(seed));
    let (mut new_cases, mut cases_run) = (0u32, 0u32);
    let (mut placed, mut fired) = (0u32, 0u32);
    let search_ends = RunInstant::now() + options.time;
    let mut failing_case = None;
    let mut out_of_search_time = false;
    'search: while !stop.load(Ordering::Relaxed) {
        if RunInstant::now() > search_ends {
            out_of_search_time = true;
            break;
        }
        let mut batch = Vec::new();
        while batch.len() < workers.len() {
            let drawn = if let Some(seed) = kept.next() {
                Drawn {
                    tree: tree_of(&strategy, &seed)?,
                    seed,
                    kept: true,
                }
            } else if new_cases < options.cases {
                new_cases += 1;
                // As proptest's runner: the case is drawn from the RNG of
                // its seed, and the next seed from that RNG after it.
                let seed: CaseSeed = draw.rng().random();
                *draw.rng() = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
                Drawn {
                    tree: strategy.new_tree(&mut draw).map_err(cannot_draw)?,
                    seed,
                    kept: false,
                }
            } else {
                break;
            };
            batch.push(drawn);
        }
        if batch.is_empty() {
            break;
        }
        let values: Vec<(usize, Case)> = batch
            .iter()
            .map(|drawn| drawn.tree.current())
            .enumerate()
            .collect();
        let queue = Queue::new(&values);
        let ran: Mutex<Vec<Option<Result<RunOutcome, RunError>>>> =
            Mutex::new(values.iter().map(|_| None).collect());
        // Stopped: a case not started is not run.
        let take = |_| queue.take().filter(|_| !stop.load(Ordering::Relaxed));
        let run_case = |index: usize, worker: &mut Worker, (at, case): &(usize, Case)| {
            let _span = tracing::info_span!("fuzz_case", worker = index).entered();
            let outcome = worker.run(case);
            ran.lock().unwrap_or_else(|e| e.into_inner())[*at] = Some(outcome);
            true
        };
        pool::run(&mut workers, &take, &run_case);
        let outcomes = ran.into_inner().unwrap_or_else(|e| e.into_inner());
        // Judged in the order drawn: the first failure is the one kept.
        for (drawn, outcome) in batch.into_iter().zip(outcomes) {
            let Some(outcome) = outcome else {
                break 'search;
            };
            let outcome = outcome?;
            tracing::debug!(schedule = %schedule_text(&outcome.faults), failed = failed(&prepared.scenario, &outcome), "case");
            cases_run += 1;
            placed += outcome.faults.len() as u32;
            fired += outcome.observed.fired.len() as u32;
            progress(cases_run, false);
            if failed(&prepared.scenario, &outcome) {
                failing_case = Some(drawn);
                break 'search;
            }
        }
    }
    let first_failure = RunInstant::now();
    let mut shrink_steps = 0u32;
    let mut shrink_limited = false;
    let failing = match failing_case {
        None => None,
        Some(mut drawn) => {
            let worker = &mut workers[0];
            // The simplest schedule first: none. A flaw the undisturbed run
            // shows is no fault's doing, and no fault is to be blamed for it.
            let size = drawn.tree.current().0;
            shrink_steps += 1;
            cases_run += 1;
            progress(cases_run, true);
            let undisturbed = worker.run(&(size, Vec::new()))?;
            let flawed = failed(&prepared.scenario, &undisturbed);
            // proptest's shrinking: simplify while the case fails, undo a
            // step that passes; at a limit, back to the last that failed.
            if !flawed && drawn.tree.simplify() {
                loop {
                    let out_of_steps = shrink_steps >= options.shrink_steps;
                    let out_of_time = options
                        .shrink_time
                        .is_some_and(|limit| RunInstant::now().since(first_failure) >= limit);
                    if out_of_steps || out_of_time || stop.load(Ordering::Relaxed) {
                        shrink_limited = out_of_steps || out_of_time;
                        while drawn.tree.complicate() {}
                        break;
                    }
                    shrink_steps += 1;
                    cases_run += 1;
                    progress(cases_run, true);
                    let outcome = worker.run(&drawn.tree.current())?;
                    let more = if failed(&prepared.scenario, &outcome) {
                        drawn.tree.simplify()
                    } else {
                        drawn.tree.complicate()
                    };
                    if !more {
                        break;
                    }
                }
            }
            let (size, genes) = match flawed {
                true => (size, Vec::new()),
                false => drawn.tree.current(),
            };
            if let (Some(regressions), false, false) = (&regressions, drawn.kept, flawed) {
                regressions.save(&drawn.seed, &(size, &genes));
            }
            let (variant, stage) = worker.variant(size)?;
            let run = variant.run(stage, &genes)?;
            let new_size = variants.sizes[size].map(|built_at| DrawnSize {
                built_at,
                old_bytes: variant.prepared.old.len() as u64,
                new_bytes: variant.prepared.new.len() as u64,
            });
            Some(Failing {
                schedule: run.faults.clone(),
                new_size,
                run,
            })
        }
    };
    let shrink_limit = shrink_limited.then(|| {
        format!(
            "shrinking stopped at its limit ({shrink_steps} runs; --shrink-steps and --shrink-time allow more): \
             a smaller failing schedule may exist"
        )
    });
    // The search ran out of time before its cases: another machine, or
    // this one less busy, would try more of them with the same seed.
    let search_limit =
        (out_of_search_time && failing.is_none() && new_cases < options.cases).then(|| {
            format!(
                "the search stopped at its time limit ({}) after {new_cases} of {} new cases \
                 (--time allows more; the same seed and more time try the same cases first)",
                humantime::format_duration(options.time),
                options.cases
            )
        });
    let stats = FuzzStats {
        seed,
        search_limit,
        workers: workers.len(),
        cases: cases_run,
        faults_placed: placed,
        faults_fired: fired,
        shrink_steps,
        shrink_seconds: if failing.is_some() {
            RunInstant::now().since(first_failure).as_secs_f64()
        } else {
            0.0
        },
        shrink_limit,
        seconds: started.elapsed().as_secs_f64(),
        regressions: options.regressions.clone(),
        interrupted: stop.load(Ordering::Relaxed),
    };
    Ok(FuzzOutcome { stats, failing })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases are those proptest's own runner draws from the seed, and
    /// the seed kept for a case makes that case again.
    #[test]
    fn cases_are_drawn_as_proptest_draws_them_and_kept_seeds_replay() {
        let strategy = cases(4);
        let by_proptest = std::cell::RefCell::new(Vec::new());
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: 20,
                failure_persistence: None,
                ..Config::default()
            },
            rng_of(2),
        );
        runner
            .run(&strategy, |case| {
                by_proptest.borrow_mut().push(case);
                Ok(())
            })
            .expect("every case passes");
        let mut draw = TestRunner::new_with_rng(Config::default(), rng_of(2));
        for expected in by_proptest.into_inner() {
            let seed: CaseSeed = draw.rng().random();
            *draw.rng() = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
            let drawn = strategy.new_tree(&mut draw).expect("drawn").current();
            assert_eq!(drawn, expected);
            let kept = parse_seed(&seed_text(&seed)).expect("a kept seed");
            assert_eq!(
                tree_of(&strategy, &kept).expect("drawn").current(),
                expected
            );
        }
        assert_eq!(parse_seed("cc 12"), None);
        assert_eq!(parse_seed("xs 1 2 3 4"), None);
    }
}
