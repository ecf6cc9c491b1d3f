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
//! the tree each persistence model keeps, and each power-cut point is that
//! state, checked and retried as after a reboot. Points whose durable states
//! are the same (every cut before the first fsync, under `strict`) share one
//! retry. Each worker keeps one mount and resets it from a snapshot between
//! points; the live canary is kept while no point harms it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use fault_fs::{Fault, OpKind, PowerCut, Rule, Tree};
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::check::{Finding, Property};
use crate::runner::{
    op_points, run_from_power_cut, run_staged, Prepared, RunError, RunOptions, RunOutcome, Stage,
    APP_DIR, STAGING_DIR,
};
use crate::scenario::{Expectation, Scenario, TargetKind, Versions};

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
}

impl Default for ExploreOptions {
    fn default() -> Self {
        ExploreOptions {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            partition: None,
            max_runs: None,
            sigterm: false,
        }
    }
}

/// `K/N`: this machine's share of the crash points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Which share, from 1.
    pub index: usize,
    /// How many shares.
    pub count: usize,
}

impl std::str::FromStr for Partition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("bad partition `{s}` (hint: K/N with 1 <= K <= N, e.g. 1/3)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) =
            (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Partition { index, count })
    }
}

/// One crash point: an op (`write#3`) and a fault.
#[derive(Clone, Debug, PartialEq)]
pub struct CrashPoint {
    /// The op kind.
    pub kind: OpKind,
    /// Its order among the strategy's ops of that kind, from 1.
    pub nth: u64,
    /// What happens there.
    pub fault: Fault,
    /// The op's index in the recorded trace it was derived from.
    pub op: usize,
}

impl CrashPoint {
    /// The fault rule that reproduces this point.
    pub fn rule(&self) -> Rule {
        Rule::at(self.kind, self.nth, self.fault.clone())
    }

    /// `write#3:kill-after`.
    pub fn spec(&self) -> String {
        self.rule().to_string()
    }
}

/// Derives the crash points of a recorded run.
/// `sigterm` adds SIGTERM kills next to the SIGKILL ones.
pub fn crash_points(outcome: &RunOutcome, sigterm: bool) -> Vec<CrashPoint> {
    let mut points = Vec::new();
    let mut first_mutation = true;
    let app = format!("/{APP_DIR}/");
    let staging = format!("/{STAGING_DIR}/");
    let touches_target_dir = |path: &str| path.starts_with(&app) || path.starts_with(&staging);
    let names = op_points(&outcome.trace);
    let nth_of = |name: &str| -> u64 {
        name.rsplit_once('#')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(1)
    };
    let stall = || Fault::Stall(Some(std::time::Duration::from_secs(10)));
    // Set after an op that changed the target's directory: the next op, of
    // whatever kind, is stalled too, so probes see the state between the two
    // (at a stalled namespace op the kernel holds the directory lock, and a
    // probe would only see the state after it).
    let mut probe_next = false;
    for (index, (op, name)) in outcome.trace.iter().zip(&names).enumerate() {
        let nth = nth_of(name);
        let point = |fault: Fault| CrashPoint {
            kind: op.kind,
            nth,
            fault,
            op: index,
        };
        if !op.is_mutating() {
            if std::mem::take(&mut probe_next) {
                points.push(point(stall()));
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
        at(Fault::Errno(libc::EIO));
        if matches!(op.kind, OpKind::Write | OpKind::Create) {
            at(Fault::Errno(libc::ENOSPC));
        }
        if op.kind == OpKind::Write && op.len > 1 {
            at(Fault::ShortWrite(fault_fs::ShortWrite::Percent(50)));
        }
        let changes_target_dir = !op.kind.is_sync()
            && (touches_target_dir(&op.path)
                || op.path2.as_deref().is_some_and(touches_target_dir));
        if changes_target_dir {
            at(stall());
        }
        probe_next = changes_target_dir;
        for model in fault_fs::PersistenceModel::ALL {
            at(Fault::PowerCut(model));
        }
    }
    points
}

/// What one crash point found.
#[derive(Clone, Debug, Serialize)]
pub struct PointResult {
    /// `write#3:kill-after`.
    pub spec: String,
    /// Properties it exercised.
    pub checked: Vec<Property>,
    /// Its findings.
    pub findings: Vec<Finding>,
    /// A run that could not be carried out, if so.
    pub error: Option<String>,
}

/// Progress, for the caller's progress bar.
#[derive(Debug)]
pub enum ExploreEvent<'a> {
    /// The recording run is done; this many points will run.
    Planned {
        /// Points to run.
        total: usize,
    },
    /// One point is done.
    PointDone {
        /// Its result.
        result: &'a PointResult,
    },
}

/// A group of findings: same property, fault, op kind and observation, at
/// consecutive ops.
#[derive(Clone, Debug, Serialize)]
pub struct FindingGroup {
    /// The property.
    pub property: Property,
    /// "kill-after at any of write#1–write#4".
    pub summary: String,
    /// What was seen.
    pub seen: String,
    /// Every crash point in the group.
    pub points: Vec<String>,
    /// The command that reproduces the first of them.
    pub reproduce: String,
}

/// The result of exploring one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Exploration {
    /// The scenario name.
    pub scenario: String,
    /// The reproduction prefix (`swapfault run FILE`).
    pub command: String,
    /// Ops the strategy made in the recording run.
    pub ops: usize,
    /// Points that ran the strategy up to their fault.
    pub runs: usize,
    /// Power-cut points computed from the recording instead.
    pub computed: usize,
    /// The distinct durable states among those, each retried once.
    pub durable_states: usize,
    /// Findings of the undisturbed recording run.
    pub baseline: Vec<Finding>,
    /// Per crash point.
    pub points: Vec<PointResult>,
    /// Per property: exercised, and grouped findings.
    pub properties: Vec<PropertyVerdict>,
    /// True if stopped early (Ctrl-C).
    pub interrupted: bool,
}

/// The verdict on one property over a whole exploration.
#[derive(Clone, Debug, Serialize)]
pub struct PropertyVerdict {
    /// The property.
    pub property: Property,
    /// Exercised by any run.
    pub exercised: bool,
    /// Grouped findings; empty means it holds.
    pub groups: Vec<FindingGroup>,
    /// The scenario's expectation.
    pub expected: Option<Expectation>,
}

impl PropertyVerdict {
    /// `pass`, `fail` or `-`.
    pub fn status(&self) -> &'static str {
        match (self.exercised, self.groups.is_empty()) {
            (false, _) => "-",
            (true, true) => "pass",
            (true, false) => "fail",
        }
    }

    /// False when the scenario expected otherwise.
    pub fn as_expected(&self) -> bool {
        !matches!(
            (self.status(), self.expected),
            ("pass", Some(Expectation::Fail)) | ("fail", Some(Expectation::Pass)) | ("fail", None)
        )
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The command prefix that reruns a scenario with one more `--fault`.
pub fn reproduction_prefix(scenario: &Scenario) -> String {
    match &scenario.source {
        Some(path) => format!("swapfault run {}", shell_quote(&path.display().to_string())),
        None => {
            let kind = match scenario.kind {
                TargetKind::Exe => "exe",
                TargetKind::Lib => "lib",
            };
            let size = match scenario.versions {
                Versions::Canary { size } => size,
                Versions::Files { .. } => crate::canary::DEFAULT_SIZE,
            };
            format!(
                "swapfault check --strategy {} --target {kind} --size {size}",
                shell_quote(&scenario.command)
            )
        }
    }
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

/// The recording run, on a stage that the first worker then reuses, with
/// the durable state after each of its mutating ops.
fn record(prepared: &Prepared) -> Result<(RunOutcome, Vec<PowerCut>, Stage), RunError> {
    let mut stage = Stage::new(prepared)?;
    stage.prepare(prepared)?;
    stage.handle().log_durable_states(true);
    let outcome = run_staged(&mut stage, prepared, &[], &RunOptions { retry: false })?;
    let durable = stage.handle().take_durable_states();
    Ok((outcome, durable, stage))
}

/// Orders the work: each point where it stands, power-cut points that share
/// a durable state folded into the first of them.
fn plan_work(points: &[CrashPoint], record: &RunOutcome, durable: &[PowerCut]) -> Vec<Work> {
    let mut work: Vec<Work> = Vec::new();
    for (index, point) in points.iter().enumerate() {
        let Fault::PowerCut(model) = point.fault else {
            work.push(Work::Run(index));
            continue;
        };
        let seq = record.trace[point.op].seq;
        let cut = durable
            .iter()
            .find(|cut| cut.seq == seq && cut.model == model);
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
    point: &CrashPoint,
    work: &Work,
) -> Result<RunOutcome, RunError> {
    let retry = RunOptions { retry: true };
    match work {
        Work::Run(_) => {
            stage.prepare(prepared)?;
            run_staged(stage, prepared, &[point.rule()], &retry)
        }
        Work::PowerCut { durable, .. } => {
            let trace = record.trace[..=point.op].to_vec();
            run_from_power_cut(stage, prepared, &point.rule(), durable, trace, &retry)
        }
    }
}

/// What `point` found in `outcome`. Findings at a crash point are named
/// after `point`: points that share a computed power cut share the outcome
/// of the first of them.
fn point_result(point: &CrashPoint, outcome: &RunOutcome) -> PointResult {
    let spec = point.spec();
    PointResult {
        findings: outcome
            .findings
            .iter()
            .map(|finding| Finding {
                crash_point: finding.crash_point.as_ref().map(|_| spec.clone()),
                ..finding.clone()
            })
            .collect(),
        spec,
        checked: outcome.checked.clone(),
        error: None,
    }
}

/// Explores `prepared`: records, runs every crash point, groups findings.
/// `stop` ends it early (Ctrl-C): points under way when it is set are left
/// out of the report, so the caller may kill their processes at once
/// ([`crate::live::kill_all_children`]). `on_event` sees progress.
pub fn explore(
    prepared: &Prepared,
    options: &ExploreOptions,
    stop: &AtomicBool,
    on_event: &(dyn Fn(ExploreEvent<'_>) + Sync),
) -> Result<Exploration, RunError> {
    let _span = tracing::info_span!("explore", scenario = %prepared.scenario.name).entered();
    let (mut record, durable, record_stage) = record(prepared)?;
    if stop.load(Ordering::Relaxed) {
        // Stopped during the recording: what it saw was cut short by that,
        // and no crash point can be derived from it (none is, from no trace).
        record.trace.clear();
        record.checked.clear();
        record.findings.clear();
    }
    let sigterm = options.sigterm || prepared.scenario.sigterm;
    let mut points = crash_points(&record, sigterm);
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
    // Computed power cuts go to the first worker, which keeps the recording's
    // stage: the same mount and NEW paths as the run the states came from,
    // in case the strategy left either in the files its retry reads.
    let (cuts, runs): (Vec<&Work>, Vec<&Work>) = work
        .iter()
        .partition(|item| matches!(item, Work::PowerCut { .. }));
    on_event(ExploreEvent::Planned {
        total: points.len(),
    });
    let results: Mutex<Vec<Option<PointResult>>> = Mutex::new(vec![None; points.len()]);
    let (next_cut, next_run) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let fatal: Mutex<Option<RunError>> = Mutex::new(None);
    let workers = options.workers.max(1);
    let mut stages: Vec<Option<Stage>> = (0..workers).map(|_| None).collect();
    stages[0] = Some(record_stage);
    std::thread::scope(|scope| {
        for (worker, mut stage) in stages.into_iter().enumerate() {
            let (points, record, results, fatal) = (&points, &record, &results, &fatal);
            let (cuts, runs, next_cut, next_run) = (&cuts, &runs, &next_cut, &next_run);
            scope.spawn(move || loop {
                if stop.load(Ordering::Relaxed) || fatal.lock().is_ok_and(|f| f.is_some()) {
                    return;
                }
                let cut = (worker == 0)
                    .then(|| cuts.get(next_cut.fetch_add(1, Ordering::Relaxed)))
                    .flatten();
                let Some(item) = cut.or_else(|| runs.get(next_run.fetch_add(1, Ordering::Relaxed)))
                else {
                    return;
                };
                let first = &points[item.points()[0]];
                let _span =
                    tracing::info_span!("crash_point", worker, spec = %first.spec()).entered();
                let outcome = match stage.take().map_or_else(|| Stage::new(prepared), Ok) {
                    Ok(mut ready) => {
                        let outcome = do_work(&mut ready, prepared, record, first, item);
                        // A stage that failed a run is not trusted again.
                        if outcome.is_ok() {
                            stage = Some(ready);
                        }
                        outcome
                    }
                    Err(err) => Err(err),
                };
                // Stopped meanwhile: the run may have been cut short by it.
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let outcome = match outcome {
                    Err(err) if err.is_environment() => {
                        if let Ok(mut fatal) = fatal.lock() {
                            fatal.get_or_insert(err);
                        }
                        return;
                    }
                    other => other.map_err(|err| err.to_string()),
                };
                for &index in item.points() {
                    let point = &points[index];
                    let result = match &outcome {
                        Ok(outcome) => point_result(point, outcome),
                        Err(error) => PointResult {
                            spec: point.spec(),
                            checked: Vec::new(),
                            findings: Vec::new(),
                            error: Some(error.clone()),
                        },
                    };
                    on_event(ExploreEvent::PointDone { result: &result });
                    if let Ok(mut results) = results.lock() {
                        results[index] = Some(result);
                    }
                }
            });
        }
    });
    if let Some(err) = fatal.into_inner().ok().flatten() {
        return Err(err);
    }
    let results = results.into_inner().unwrap_or_default();
    // What was done, of what was planned (less when interrupted).
    let (mut runs, mut computed, mut durable_states) = (0, 0, 0);
    for item in &work {
        let done = item
            .points()
            .iter()
            .filter(|i| results[**i].is_some())
            .count();
        match item {
            Work::Run(_) => runs += done,
            Work::PowerCut { .. } => {
                computed += done;
                durable_states += usize::from(done > 0);
            }
        }
    }
    let results: Vec<PointResult> = results.into_iter().flatten().collect();
    let interrupted = stop.load(Ordering::Relaxed) || results.len() < points.len();
    let command = reproduction_prefix(&prepared.scenario);
    let properties = verdicts(&record, &results, &command, prepared);
    Ok(Exploration {
        scenario: prepared.scenario.name.clone(),
        command,
        ops: record.trace.len(),
        runs,
        computed,
        durable_states,
        baseline: record.findings.clone(),
        points: results,
        properties,
        interrupted,
    })
}

/// Replaces mktemp-style suffixes (`.swap.Uw1f1j`) with `XXXXXX`: runs of
/// the same crash point name their temp files differently.
pub fn redact_temp_names(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let (core, tail) = word.split_at(
                word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                    .len(),
            );
            match core.rsplit_once('.') {
                Some((stem, suffix))
                    if suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric()) =>
                {
                    format!("{stem}.XXXXXX{tail}")
                }
                _ => word.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `write#1–#4, rename#1` from a list of specs in order.
fn compress_points(specs: &[String]) -> String {
    let mut runs: Vec<(String, u64, u64)> = Vec::new();
    for spec in specs {
        let (kind, nth, _) = split_spec(spec);
        match runs.last_mut() {
            Some((k, _, last)) if k == kind && nth == *last + 1 => *last = nth,
            _ => runs.push((kind.to_owned(), nth, nth)),
        }
    }
    runs.iter()
        .map(|(kind, first, last)| {
            if first == last {
                format!("{kind}#{first}")
            } else {
                format!("{kind}#{first}–#{last}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Splits `write#3:kill-after` into (`write`, 3, `kill-after`).
fn split_spec(spec: &str) -> (&str, u64, &str) {
    let (op, fault) = spec.split_once(':').unwrap_or((spec, ""));
    let (kind, nth) = op.split_once('#').unwrap_or((op, "0"));
    (kind, nth.parse().unwrap_or(0), fault)
}

fn verdicts(
    record: &RunOutcome,
    results: &[PointResult],
    command: &str,
    prepared: &Prepared,
) -> Vec<PropertyVerdict> {
    let mut exercised: BTreeSet<Property> = record.checked.iter().copied().collect();
    for result in results {
        exercised.extend(result.checked.iter().copied());
    }
    Property::ALL
        .into_iter()
        .map(|property| {
            let mut groups: Vec<FindingGroup> = Vec::new();
            for finding in record.findings.iter().filter(|f| f.property == property) {
                groups.push(FindingGroup {
                    property,
                    summary: "in the undisturbed run".into(),
                    seen: finding.seen.clone(),
                    points: Vec::new(),
                    reproduce: command.to_owned(),
                });
            }
            // Points with the same fault and the same observation (temp
            // names aside) form one group, in crash-point order.
            for result in results {
                for finding in result.findings.iter().filter(|f| f.property == property) {
                    let (_, _, fault) = split_spec(&result.spec);
                    let seen = redact_temp_names(&finding.seen);
                    let existing = groups.iter_mut().find(|g| {
                        !g.points.is_empty()
                            && split_spec(&g.points[0]).2 == fault
                            && redact_temp_names(&g.seen) == seen
                    });
                    match existing {
                        Some(group) => {
                            if group.points.last() != Some(&result.spec) {
                                group.points.push(result.spec.clone());
                            }
                        }
                        None => groups.push(FindingGroup {
                            property,
                            summary: String::new(),
                            seen: finding.seen.clone(),
                            points: vec![result.spec.clone()],
                            reproduce: format!("{command} --fault {}", shell_quote(&result.spec)),
                        }),
                    }
                }
            }
            for group in groups.iter_mut().filter(|g| !g.points.is_empty()) {
                let (_, _, fault) = split_spec(&group.points[0]);
                let fault = fault.to_owned();
                let count = group.points.len();
                let at = compress_points(&group.points);
                group.summary = if count == 1 {
                    format!("{fault} at {at}")
                } else {
                    format!("{fault} at any of {at} ({count} points)")
                };
            }
            PropertyVerdict {
                property,
                exercised: exercised.contains(&property),
                groups,
                expected: prepared.scenario.expect.get(&property).copied(),
            }
        })
        .collect()
}

/// Writes the human report of one exploration.
pub fn write_human(
    out: &mut dyn std::io::Write,
    exploration: &Exploration,
    color: bool,
) -> std::io::Result<()> {
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let errors = exploration
        .points
        .iter()
        .filter(|p| p.error.is_some())
        .count();
    writeln!(
        out,
        "{}",
        paint(
            "1",
            &format!(
                "swapfault explore: {} ({} recorded, {} checked: {} run, {} computed from the recording in {}{})",
                exploration.scenario,
                counted(exploration.ops, "op"),
                counted(exploration.points.len(), "crash point"),
                exploration.runs,
                counted(exploration.computed, "power cut"),
                counted(exploration.durable_states, "durable state"),
                if exploration.interrupted {
                    ", INTERRUPTED"
                } else {
                    ""
                }
            )
        )
    )?;
    for property in &exploration.properties {
        let status = match property.status() {
            "pass" => paint("32", "pass"),
            "fail" => paint("31", "FAIL"),
            _ => paint("2", " -  "),
        };
        let expectation = match (property.expected, property.as_expected()) {
            (Some(e), false) => paint(
                "31",
                &format!(" (UNEXPECTED: expected {})", expectation_name(e)),
            ),
            _ => String::new(),
        };
        let detail = if property.status() == "-" {
            paint("2", "not exercised")
        } else {
            String::new()
        };
        let text = format!(
            "  {:<8} {status}{expectation} {detail}",
            property.property.name()
        );
        writeln!(out, "{}", text.trim_end())?;
        for group in &property.groups {
            let mut line = String::new();
            let _ = write!(line, "    - {}: {}", group.summary, group.seen);
            writeln!(out, "{line}")?;
            writeln!(out, "      reproduce: {}", group.reproduce)?;
        }
    }
    if errors > 0 {
        writeln!(out, "  {errors} crash points could not be run:")?;
        for point in exploration.points.iter().filter(|p| p.error.is_some()) {
            writeln!(
                out,
                "    {}: {}",
                point.spec,
                point.error.as_deref().unwrap_or("")
            )?;
        }
    }
    Ok(())
}

/// `1 op`, `2 ops`.
fn counted(count: usize, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        _ => format!("{count} {noun}s"),
    }
}

fn expectation_name(e: Expectation) -> &'static str {
    match e {
        Expectation::Pass => "pass",
        Expectation::Fail => "fail",
    }
}

/// True when every property is as the scenario expected.
pub fn as_expected(exploration: &Exploration) -> bool {
    exploration.properties.iter().all(|p| p.as_expected())
        && exploration.points.iter().all(|p| p.error.is_none())
}

/// Writes a strategy-by-property matrix of several explorations.
pub fn write_matrix(
    out: &mut dyn std::io::Write,
    explorations: &[Exploration],
) -> std::io::Result<()> {
    write!(out, "{:<24}", "strategy")?;
    for property in Property::ALL {
        write!(out, " {:<8}", property.name())?;
    }
    writeln!(out)?;
    for exploration in explorations {
        write!(out, "{:<24}", exploration.scenario)?;
        for property in &exploration.properties {
            let mut cell = property.status().to_owned();
            if !property.as_expected() {
                cell.push('!');
            }
            write!(out, " {cell:<8}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "(! marks a verdict the scenario did not expect)")
}

/// Writes JUnit XML: one test suite per scenario, one test case per property.
pub fn write_junit(
    out: &mut dyn std::io::Write,
    explorations: &[Exploration],
) -> std::io::Result<()> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("swapfault");
    for exploration in explorations {
        let mut suite = TestSuite::new(exploration.scenario.as_str());
        for property in &exploration.properties {
            let status = if property.status() == "-" {
                TestCaseStatus::skipped()
            } else if property.as_expected() {
                TestCaseStatus::success()
            } else {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let message: Vec<String> = property
                    .groups
                    .iter()
                    .map(|g| format!("{}: {} (reproduce: {})", g.summary, g.seen, g.reproduce))
                    .collect();
                let message = if message.is_empty() {
                    "expected a finding, found none".to_owned()
                } else {
                    message.join("\n")
                };
                status.set_description(message);
                status
            };
            suite.add_test_case(TestCase::new(property.property.name(), status));
        }
        report.add_test_suite(suite);
    }
    report.serialize(out).map_err(std::io::Error::other)
}
