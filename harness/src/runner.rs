//! One run: the strategy on a [`Stage`] under a list of fault rules, each
//! phase (the first run, and a retry after each interruption) with the
//! rules of its phase, probes at every stalled op, the power cut where a
//! fault asks for one, and the judge's verdicts at the end.

use std::collections::BTreeSet;
use std::io::Read;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use fault_fs::{
    CrashPoint, Cut, Fault, FaultPlan, OpKind, OpRecord, PersistenceModel, Phase, Rule, Scope, Tree,
};

use crate::clock::RunInstant;
use crate::error::{io, RunError};
use crate::judge::{evaluate, interrupts};
use crate::observe::{
    Exit, LiveReport, Observations, PlatformKill, ProbeKind, ProbeObservation, SelfUpdateReport,
    StrategyRun, TargetState,
};
use crate::outcome::RunOutcome;
use crate::probe::{default_probes, probe_stalled, ProbeTiming};
use crate::retry::{harm, Claim, Retry, SharedRetries, StateClass};
use crate::sandbox::{Ending, Message, Sandbox, SandboxError};
use crate::scenario::{Versions, APP_DIR};
use crate::stage::{Stage, SELF_REPORT};
use crate::target::{Observed, Prepared};

/// Knobs of one run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Retry undisturbed after an interruption.
    pub retry: bool,
    /// Command names of processes the undisturbed run left running at its
    /// linger bound ([`crate::scenario::Strategy::linger`]): daemons. Once
    /// only such processes are left, a run stops waiting for them at once
    /// instead of at the bound.
    pub daemons: BTreeSet<String>,
    /// The exploration's retries this run may take one of, or add to.
    pub sharing: Option<Sharing>,
}

/// A point's part in its exploration's retries (see [`crate::retry`]).
#[derive(Clone, Debug)]
pub struct Sharing {
    /// The exploration's retries, by class.
    pub retries: Arc<SharedRetries>,
    /// The point's index: it decides whether the point audits.
    pub point: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            retry: true,
            daemons: BTreeSet::new(),
            sharing: None,
        }
    }
}

impl RunOptions {
    /// The options of the runs that follow the undisturbed `recording`
    /// (an exploration's points, a fuzzing session's cases): retried, and
    /// with the processes it left running at its linger bound taken for
    /// daemons.
    pub fn after(recording: &RunOutcome) -> RunOptions {
        let daemons = recording
            .observed
            .first
            .left_running
            .iter()
            .filter_map(|left| left.rsplit_once(" (pid ").map(|(comm, _)| comm.to_owned()))
            .collect();
        RunOptions {
            retry: true,
            daemons,
            sharing: None,
        }
    }
}

/// How often a run that may stall checks for a stalled op, and one that
/// waits for what the strategy left running checks what is left.
const POLL: Duration = Duration::from_millis(1);

/// How long a sandbox may take to end a run it was told to kill.
const SANDBOX_END: Duration = Duration::from_secs(10);

/// Runs `prepared` once with `faults` in force, on a mount of its own.
pub fn run(
    prepared: &Prepared,
    faults: &[Rule],
    options: &RunOptions,
) -> Result<RunOutcome, RunError> {
    let mut stage = Stage::new(prepared)?;
    stage.prepare(prepared)?;
    run_staged(&mut stage, prepared, faults, options)
}

/// Runs `prepared` once with `faults` in force on a stage readied by
/// [`Stage::prepare`].
pub fn run_staged(
    stage: &mut Stage,
    prepared: &Prepared,
    faults: &[Rule],
    options: &RunOptions,
) -> Result<RunOutcome, RunError> {
    let _span = tracing::info_span!("run", scenario = %prepared.scenario.name).entered();
    let mut run = Run {
        stage,
        prepared,
        faults,
        options,
        cut_before: false,
    };
    let (ran, trace, fired) = run.phase(0)?;
    let live_at_cut = run.power_off(&fired);
    let first = strategy_run(ran.strategy, run.stage.observe(prepared));
    let mut observed = Observations::new(prepared.initial_target_state(), first, single_uid());
    observed.fired = fired;
    observed.probes = ran.probes;
    run.complete(observed, trace, live_at_cut)
}

/// A power cut at `point` (`write#3:power-cut=strict`), computed instead of
/// run: `durable` is what the persistence model left after that op in the
/// recorded run, `trace` the recorded ops up to it. The stage is readied as
/// after a reboot (no live process) and the state is checked and retried as
/// after a power cut that fired in a run. Live processes are not observed:
/// the kill after the same op watches them.
pub fn run_from_power_cut(
    stage: &mut Stage,
    prepared: &Prepared,
    point: &CrashPoint,
    durable: &Tree,
    trace: Vec<OpRecord>,
    options: &RunOptions,
) -> Result<RunOutcome, RunError> {
    let _span =
        tracing::info_span!("power_cut", scenario = %prepared.scenario.name, %point).entered();
    stage.prepare_after_power_cut(prepared, durable)?;
    // The machine went off right after the op.
    let cut_off = Strategy {
        exit: Exit::Signal(libc::SIGKILL),
        stderr: String::new(),
        left_running: Vec::new(),
        settled_after: None,
        self_update: None,
        killed_by_platform: None,
        durable_after_sync_error: None,
    };
    let first = strategy_run(cut_off, stage.observe(prepared));
    let mut observed = Observations::new(prepared.initial_target_state(), first, single_uid());
    observed.fired = vec![point.clone()];
    let faults = [point.rule()];
    let run = Run {
        stage,
        prepared,
        faults: &faults,
        options,
        cut_before: true,
    };
    run.complete(observed, trace, Some(Vec::new()))
}

/// Whether only one uid is mapped (rootless): see
/// [`Observations::single_uid`].
fn single_uid() -> bool {
    crate::sandbox::single_uid()
}

/// One run with its retries, on its way.
struct Run<'a> {
    stage: &'a mut Stage,
    prepared: &'a Prepared,
    /// Every rule, of every phase.
    faults: &'a [Rule],
    options: &'a RunOptions,
    /// The power went at the end of the phase before (a reboot follows).
    cut_before: bool,
}

/// How one run of the strategy ended, before the target is read.
struct Strategy {
    exit: Exit,
    stderr: String,
    /// Processes it started that were still running at the linger bound.
    left_running: Vec<String>,
    /// How long after its first process the last one it left ended.
    settled_after: Option<Duration>,
    /// What the self-updating program reported, if the strategy is one.
    self_update: Option<SelfUpdateReport>,
    /// The platform model killed the strategy.
    killed_by_platform: Option<PlatformKill>,
    /// See [`StrategyRun::durable_after_sync_error`].
    durable_after_sync_error: Option<TargetState>,
}

/// One run of the strategy as the runner saw it.
struct Ran {
    strategy: Strategy,
    probes: Vec<ProbeObservation>,
    /// The fault-fs scope its ops were recorded under.
    scope: u32,
}

/// What a strategy run left, with how it ended.
fn strategy_run(strategy: Strategy, left: Observed) -> StrategyRun {
    StrategyRun {
        durable_after_sync_error: strategy.durable_after_sync_error,
        exit: strategy.exit,
        stderr: strategy.stderr,
        target: left.target,
        strays: left.strays,
        left_running: strategy.left_running,
        settled_after: strategy.settled_after,
        other_names: left.other_names,
        self_update: strategy.self_update,
        killed_by_platform: strategy.killed_by_platform,
        damaged: left.damaged,
    }
}

impl Run<'_> {
    /// Runs the strategy once with the rules of `phase` in force (probing
    /// at its stalls); returns the run, its ops and the faults that fired
    /// there.
    fn phase(&mut self, phase: Phase) -> Result<(Ran, Vec<OpRecord>, Vec<CrashPoint>), RunError> {
        let prepared = self.prepared;
        let stage = &mut *self.stage;
        let scenario = &prepared.scenario;
        let handle = stage.handle().clone();
        let rules: Vec<Rule> = self
            .faults
            .iter()
            .filter(|r| r.phase == phase)
            .cloned()
            .collect();
        let has_stall = rules.iter().any(|r| matches!(r.fault, Fault::Stall(_)));
        handle.set_plan(FaultPlan { rules });
        let probes = if !has_stall {
            Vec::new()
        } else if scenario.probes.is_empty() {
            default_probes(prepared)
        } else {
            scenario.probes.clone()
        };
        let report = stage.root.join(SELF_REPORT);
        if scenario.strategy.self_update.is_some() {
            std::fs::write(&report, "").map_err(io("cannot write the self-update report"))?;
        }
        // Each crash point's first run, and the run after a reboot, find an
        // empty /tmp; a retry finds what the run before left there.
        let fresh_tmp = phase == 0 || self.cut_before;
        let mut ran = run_strategy(prepared, stage, &probes, fresh_tmp, &self.options.daemons)?;
        handle.set_plan(FaultPlan::default());
        handle.set_scope(Scope::All);
        let trace = scope_trace(&handle.trace(), ran.scope);
        if scenario.strategy.self_update.is_some() {
            let text = std::fs::read_to_string(&report).unwrap_or_default();
            ran.strategy.self_update = Some(SelfUpdateReport::parse(&text));
        }
        // The model's kills: of a live process, kept for its report; else of
        // the strategy, named by the op that changed its code.
        let live_pids = stage.live_pids();
        for kill in handle.take_signature_kills() {
            if live_pids.contains(&kill.pid) {
                stage.signature_kills.push(kill);
                continue;
            }
            let op = trace.iter().find(|op| op.seq == kill.seq);
            if let (Some(op), None) = (op, &ran.strategy.killed_by_platform) {
                let truncates = if op.truncates() { " O_TRUNC" } else { "" };
                ran.strategy.killed_by_platform = Some(PlatformKill {
                    op: op.name,
                    what: format!("{} {}{truncates}", op.kind, op.path),
                    reason: kill.reason(),
                });
            }
        }
        let sync_failed = trace.iter().any(|op| {
            matches!(op.kind, OpKind::Fsync | OpKind::Fdatasync)
                && matches!(op.fault.as_deref(), Some(Fault::Errno(_) | Fault::Full(_)))
        });
        if sync_failed {
            let durable = handle.durable_state(Cut::new(PersistenceModel::MetadataOrdered));
            ran.strategy.durable_after_sync_error =
                Some(prepared.observe(&durable, stage.mount.path()).target);
        }
        let rescan = stage.live_maps_may_have_changed(prepared);
        if let Some(live) = stage.live.as_mut() {
            live.settle(crate::live::SETTLE, rescan);
        }
        for probe in &mut ran.probes {
            probe.at.phase = phase;
        }
        let fired = fired(&trace)
            .into_iter()
            .map(|point| point.in_phase(phase))
            .collect();
        Ok((ran, trace, fired))
    }

    /// Cuts the power if a fault of the run just ended (`fired`) asked for
    /// it: the disk keeps only what the persistence model made durable.
    /// Returns what the live processes had reported until then.
    fn power_off(&mut self, fired: &[CrashPoint]) -> Option<Vec<LiveReport>> {
        self.cut_before = false;
        let handle = self.stage.handle().clone();
        // A failed sync the run went on past: the power goes once it has ended.
        let cut_at_end = fired.iter().find_map(|point| match point.fault {
            Fault::ErrnoThenCut(_, cut) => Some(handle.durable_state(cut)),
            _ => None,
        });
        let durable = handle.take_power_cut().map(|cut| cut.tree).or(cut_at_end)?;
        // A reboot: running programs are gone and the disk holds only what
        // the model made durable. What live processes saw before still counts.
        let reports = self.stage.live_reports();
        self.stage.stop_live();
        handle.restore(&durable);
        self.cut_before = true;
        Some(reports)
    }

    /// Finishes a run whose first strategy run is observed: the retries
    /// after interruptions (each with the faults of its phase: a retry
    /// interrupted in turn is retried again), the live processes' reports
    /// (`live_at_cut` when a power cut ended them), and the verdicts.
    fn complete(
        mut self,
        mut observed: Observations,
        trace: Vec<OpRecord>,
        mut live_at_cut: Option<Vec<LiveReport>>,
    ) -> Result<RunOutcome, RunError> {
        let mut retry_traces = Vec::new();
        let mut phase: Phase = 0;
        // The live reports as a retry taken from the point's class left them.
        let mut live_taken = None;
        // A retry with no fault of its phase is not interrupted: the chain
        // ends. A run the platform's model killed is retried too, as a user
        // would.
        while self.options.retry && interrupted(&observed, phase) {
            phase += 1;
            self.stage.restage_new(self.prepared)?;
            let class = if phase == 1 { self.class() } else { None };
            let sharing = self.options.sharing.as_ref();
            let claim = match (&class, sharing) {
                (Some(class), Some(sharing)) => Some(sharing.retries.claim(class, sharing.point)),
                _ => None,
            };
            if let Some(Claim::Take(retry)) = claim {
                let mut live = self.stage.live_reports();
                retry.apply_to(&mut live);
                live_taken = Some(live);
                observed.retries.push(retry.run.clone());
                retry_traces.push(retry.trace.clone());
                break;
            }
            // The class's waiting points hear of it however it goes; only a
            // representative's or an audit's retry is kept to compare.
            let kept = match (&class, &claim) {
                (Some(class), Some(claim @ (Claim::Represent | Claim::Audit))) => {
                    Some((class, claim))
                }
                _ => None,
            };
            let (ran, trace, fired) = match self.phase(phase) {
                Ok(ran) => ran,
                Err(err) => {
                    if let (Some((class, claim)), Some(sharing)) = (kept, sharing) {
                        sharing.retries.ran(class, claim, None, false);
                    }
                    return Err(err);
                }
            };
            if let Some(reports) = self.power_off(&fired) {
                live_at_cut.get_or_insert(reports);
            }
            let left = self.stage.observe(self.prepared);
            observed.fired.extend(fired);
            observed.probes.extend(ran.probes);
            observed.retries.push(strategy_run(ran.strategy, left));
            match (kept, sharing) {
                (Some((class, claim)), Some(sharing)) => {
                    let retry = Retry {
                        run: observed.retries[observed.retries.len() - 1].clone(),
                        trace: trace.clone(),
                        live: self.stage.live_reports(),
                    };
                    let ended = !interrupted(&observed, phase);
                    sharing.retries.ran(class, claim, Some(&retry), ended);
                }
                (None, Some(sharing)) => sharing.retries.count_run(),
                (_, None) => {}
            }
            retry_traces.push(trace);
        }
        observed.live = match (live_at_cut, live_taken) {
            (Some(reports), _) | (None, Some(reports)) => reports,
            (None, None) => self.stage.live_reports(),
        };
        let evaluation = evaluate(&observed, &self.prepared.wanted());
        Ok(RunOutcome {
            faults: self.faults.to_vec(),
            observed,
            trace,
            retry_traces,
            evaluation,
        })
    }
}

impl Run<'_> {
    /// The class of the state the first retry starts from, if this run may
    /// share it: an exploration's, with no fault in any retry.
    fn class(&mut self) -> Option<StateClass> {
        let sharing = self.options.sharing.as_ref()?;
        if self.faults.iter().any(|rule| rule.phase > 0) {
            return None;
        }
        let harmed = harm(&self.stage.live_reports());
        let after_cut = self.cut_before;
        self.stage
            .handle()
            .with_tree(|tree| sharing.retries.class_of(tree, after_cut, harmed))
    }
}

/// Whether the run of `phase` was interrupted: by a fault of its phase, or
/// by the platform's model.
fn interrupted(observed: &Observations, phase: Phase) -> bool {
    observed
        .fired
        .iter()
        .any(|point| point.phase == phase && interrupts(&point.fault).is_some())
        || observed
            .run_of(phase)
            .is_some_and(|run| run.killed_by_platform.is_some())
}

/// The faults that fired in `trace`, each at its op's name.
fn fired(trace: &[OpRecord]) -> Vec<CrashPoint> {
    trace
        .iter()
        .filter_map(|op| {
            let fault = op.fault.as_deref()?.clone();
            Some(CrashPoint::at(op.name, fault))
        })
        .collect()
}

/// The ops recorded under one scope (one run of the strategy).
pub fn scope_trace(trace: &[OpRecord], scope: u32) -> Vec<OpRecord> {
    trace
        .iter()
        .filter(|op| op.scope == scope)
        .cloned()
        .collect()
}

/// Runs the strategy once in the stage's sandbox (a PID namespace of its
/// own, so its whole process tree is in scope), with probes at every
/// stalled op.
fn run_strategy(
    prepared: &Prepared,
    stage: &mut Stage,
    probes: &[ProbeKind],
    fresh_tmp: bool,
    daemons: &BTreeSet<String>,
) -> Result<Ran, RunError> {
    let mut sandbox = match stage.sandbox.take() {
        Some(sandbox) if sandbox.is_ours() => sandbox,
        _ => {
            let mut sandbox = Sandbox::start(&prepared.sandbox_init, stage.run_dir())?;
            sandbox.watch_syncs(stage.handle(), stage.devices());
            sandbox
        }
    };
    let ran = run_in(prepared, stage, &mut sandbox, probes, fresh_tmp, daemons)?;
    // A sandbox whose run failed is not trusted again: it is dropped (its
    // namespace killed) with the error.
    stage.sandbox = Some(sandbox);
    Ok(ran)
}

/// The strategy's command: `sh -c COMMAND` in its working directory, with
/// the paths it works on in its environment.
fn strategy_command(prepared: &Prepared, stage: &Stage) -> Command {
    let scenario = &prepared.scenario;
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(&scenario.strategy.command)
        .current_dir(&scenario.strategy.workdir)
        .env("SWAPFAULT_TARGET", stage.mount.join(prepared.target_rel()))
        .env("SWAPFAULT_NEW", &stage.new_path)
        .env("TMPDIR", stage.tmp.path());
    if prepared.is_set() {
        command
            .env("SWAPFAULT_TARGET_DIR", stage.mount.join(APP_DIR))
            .env("SWAPFAULT_NEW_DIR", stage.new_dir());
    }
    if let Versions::Canary { .. } = scenario.target.versions {
        // The program a user starts, and the executable it takes for its
        // own (what /proc/self/exe would name, were it not run from a copy).
        command
            .env("SWAPFAULT_SELF", stage.mount.join(prepared.program_rel()))
            .env(
                "CANARY_SELF",
                stage
                    .mount
                    .join(format!("{APP_DIR}/{}", crate::canary::EXE_NAME)),
            )
            .env("CANARY_REPORT", stage.root.join(SELF_REPORT));
    }
    command
}

/// [`run_strategy`] in `sandbox`: the strategy until its first process
/// ends, then what it left running until that ends too, or until the
/// linger bound, or (`daemons`) until only processes that the undisturbed
/// run left running are left. Its deadline is on the run clock.
fn run_in(
    prepared: &Prepared,
    stage: &Stage,
    sandbox: &mut Sandbox,
    probes: &[ProbeKind],
    fresh_tmp: bool,
    daemons: &BTreeSet<String>,
) -> Result<Ran, RunError> {
    let handle = stage.handle();
    let strategy = &prepared.scenario.strategy;
    let command = strategy_command(prepared, stage);
    let (stderr_read, stderr_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|err| {
            io("cannot make a pipe for the strategy's stderr")(std::io::Error::from(err))
        })?;
    // The scope is the sandbox's namespace before the command starts in
    // it, so none of its ops escapes the plan.
    let scope = handle.set_scope(Scope::PidNamespace {
        ns: sandbox.ns,
        init: sandbox.init,
    });
    sandbox.run(&command, stderr_write, fresh_tmp)?;
    let stderr = read_tail(std::fs::File::from(stderr_read));
    let deadline = RunInstant::now() + strategy.timeout;
    let mut observations = Vec::new();
    // When the first process ended, and what it ended with.
    let mut first: Option<(RunInstant, Option<Exit>)> = None;
    let mut timed_out = false;
    let mut told_to_stop = false;
    let ending = loop {
        match sandbox.next_message(Duration::ZERO) {
            Some(Message::Ended(ending)) => break ending,
            Some(Message::FirstEnded(exit)) => first = Some((RunInstant::now(), exit)),
            None => {}
        }
        let now = RunInstant::now();
        if !told_to_stop {
            let over = match first {
                // The strategy itself ran out of time: everything goes.
                None if now >= deadline => {
                    timed_out = true;
                    sandbox.kill();
                    true
                }
                None => false,
                // What it left ran out of time: it is listed, then killed.
                Some((ended, _)) => {
                    now >= deadline
                        || now >= ended + strategy.linger
                        || (!daemons.is_empty() && only_daemons(sandbox, daemons))
                }
            };
            if over {
                if first.is_some() {
                    sandbox.stop_waiting();
                }
                // Stalls are released after the signal: a process killed in
                // a request the daemon holds cannot die until it is answered.
                handle.release_stalls();
                told_to_stop = true;
                continue;
            }
        }
        if told_to_stop {
            // The init is killing and reaping what is left: not for long.
            handle.release_stalls();
            if let Some(message) = sandbox.next_message(SANDBOX_END) {
                match message {
                    Message::Ended(ending) => break ending,
                    Message::FirstEnded(exit) => first = Some((RunInstant::now(), exit)),
                }
                continue;
            }
            return Err(
                SandboxError::Namespace("the sandbox did not end a run it killed".into()).into(),
            );
        }
        if !probes.is_empty() {
            if let Some(stalled) = handle.wait_for_stall(Duration::ZERO) {
                match stalled.fault.as_deref().cloned() {
                    Some(fault) if stalled.scope == scope => {
                        let at = CrashPoint::at(stalled.name, fault);
                        observations.extend(probe_stalled(
                            prepared,
                            handle,
                            stage.mount.path(),
                            probes,
                            &stalled,
                            &at,
                            &ProbeTiming::DEFAULT,
                        ));
                    }
                    _ => handle.release_stalls(),
                }
                continue;
            }
        }
        // Nothing to probe, and no stall to watch for: wait for the init.
        let wait = if probes.is_empty() && first.is_none() {
            now.until(deadline).min(Duration::from_millis(100))
        } else {
            POLL
        };
        if let Some(message) = sandbox.next_message(wait) {
            match message {
                Message::Ended(ending) => break ending,
                Message::FirstEnded(exit) => first = Some((RunInstant::now(), exit)),
            }
        }
    };
    let Ending {
        exit,
        left_running,
        outlived,
        error,
    } = ending;
    if let Some(error) = error {
        return Err(SandboxError::Namespace(error).into());
    }
    // What it left ended on its own: when, after the first.
    let settled_after = match (&first, outlived && left_running.is_empty()) {
        (Some((ended, _)), true) => Some(RunInstant::now().since(*ended)),
        _ => None,
    };
    let exit = if timed_out {
        Exit::Timeout
    } else {
        // No word from the init: the namespace was killed.
        exit.or(first.and_then(|(_, exit)| exit))
            .unwrap_or(Exit::Signal(libc::SIGKILL))
    };
    // The run's temp dir differs every time: name it so findings compare.
    let stderr = stderr
        .join()
        .unwrap_or_default()
        .replace(&*stage.root.to_string_lossy(), "$RUN");
    Ok(Ran {
        strategy: Strategy {
            exit,
            stderr,
            left_running,
            settled_after,
            self_update: None,
            killed_by_platform: None,
            durable_after_sync_error: None,
        },
        probes: observations,
        scope,
    })
}

/// Whether every process of the run still running is one of `daemons`
/// (by command name), and one is.
fn only_daemons(sandbox: &Sandbox, daemons: &BTreeSet<String>) -> bool {
    let remaining = sandbox.remaining();
    !remaining.is_empty() && remaining.iter().all(|(_, comm)| daemons.contains(comm))
}

/// Reads a stream to its end on a thread of its own; keeps its last lines.
fn read_tail(mut stderr: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        // Keep the tail: the last lines say why it stopped.
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    })
}
