//! The judge: turns what one run observed ([`Observations`]) into one
//! [`Verdict`] per [`Property`]. Nothing here starts a process, touches a
//! mount or reads a clock, so every rule is unit-tested on observations
//! built by hand (`judge/tests.rs`).

use std::collections::BTreeMap;

use fault_fs::{CrashPoint, Fault, Phase};

use crate::observe::{
    last_words, Exit, Observations, SelfUpdateReport, StrategyRun, TargetClass, TargetState, Wanted,
};
use crate::outcome::{Evaluation, Finding, Property, Verdict};

/// The property a fault interrupts the strategy for: kills test `kill`,
/// errors and short writes `errors`, power cuts `power`. A stall only
/// delays, so it interrupts nothing.
pub fn interrupts(fault: &Fault) -> Option<Property> {
    match fault {
        Fault::KillBefore(_) | Fault::KillAfter(_) | Fault::KillWithin(_) => Some(Property::Kill),
        Fault::Errno(_) | Fault::Full(_) | Fault::ShortWrite(_) | Fault::Fills(..) => {
            Some(Property::Errors)
        }
        Fault::PowerCut(_) | Fault::ErrnoThenCut(..) => Some(Property::Power),
        Fault::Stall(_) => None,
    }
}

/// Judges what one run observed: one verdict per property, from the
/// observations alone (no process, mount or clock).
pub fn evaluate(seen: &Observations, wanted: &Wanted) -> Evaluation {
    Evaluation(BTreeMap::from([
        (Property::Result, result(seen)),
        (Property::Live, live(seen)),
        (Property::Visible, visible(seen)),
        (Property::Kill, complete_after(seen, Property::Kill)),
        (Property::Errors, complete_after(seen, Property::Errors)),
        (Property::Power, complete_after(seen, Property::Power)),
        (Property::Retry, retry(seen)),
        (Property::Meta, meta(seen, wanted)),
        (Property::Tidy, tidy(seen)),
    ]))
}

/// The first fault that interrupted the run, if any.
fn interruption(seen: &Observations) -> Option<&CrashPoint> {
    seen.fired
        .iter()
        .find(|point| interrupts(&point.fault).is_some())
}

/// Where a finding that no single fault explains is placed: the
/// interruption, else the first fault that fired (a stall), else nowhere.
fn blame(seen: &Observations) -> Option<CrashPoint> {
    interruption(seen).or(seen.fired.first()).cloned()
}

fn finding(property: Property, at: Option<CrashPoint>, seen: String) -> Finding {
    Finding {
        property,
        crash_point: at,
        seen,
        detail: None,
    }
}

/// result: an undisturbed run leaves new, and exits 0 exactly then.
fn result(seen: &Observations) -> Verdict {
    if let Some(point) = interruption(seen) {
        return Verdict::not_exercised(format!("the run was interrupted ({point})"));
    }
    let first = &seen.first;
    if let Some(kill) = &first.killed_by_platform {
        let what = format!(
            "the platform killed the strategy {kill}; the target is {}",
            first.target.class
        );
        return Verdict::of(vec![Finding {
            detail: first.target.mix.clone(),
            ..finding(Property::Result, None, what)
        }]);
    }
    // The application's other files: damage there fails result whatever
    // became of the target.
    let damaged = (!first.damaged.is_empty()).then(|| {
        let what = format!(
            "the strategy damaged what it had no reason to touch: {}",
            first.damaged.join(", ")
        );
        finding(Property::Result, None, what)
    });
    let what = match (first.exit.success(), first.target.class) {
        (true, TargetClass::New) => {
            return damaged.map_or(Verdict::Pass, |damaged| Verdict::of(vec![damaged]))
        }
        (true, TargetClass::Old) => {
            "did not replace, yet the strategy exited 0: the target is still old".to_owned()
        }
        (true, class) => {
            let what = format!("the strategy exited 0 but the target is {class}");
            let torn = Finding {
                detail: first.target.mix.clone(),
                ..finding(Property::Result, blame(seen), what)
            };
            return Verdict::of(std::iter::once(torn).chain(damaged).collect());
        }
        (false, TargetClass::Old) => format!(
            "did not replace: the strategy failed ({}) and the target is still old{}",
            first.exit,
            said(&first.stderr)
        ),
        (false, class) => format!(
            "the strategy failed ({}) and left the target {class}{}",
            first.exit,
            said(&first.stderr)
        ),
    };
    let failed = finding(Property::Result, blame(seen), what);
    Verdict::of(std::iter::once(failed).chain(damaged).collect())
}

/// live: every live process stays alive and its mappings never change;
/// a self-updating program that executed itself again runs the new
/// version, and nothing but an injected fault ended it.
fn live(seen: &Observations) -> Verdict {
    let updates = self_updates(seen);
    if seen.live.is_empty() && updates.is_empty() {
        return Verdict::not_exercised("no live process ran");
    }
    let mut findings: Vec<Finding> = seen
        .live
        .iter()
        .filter(|live| !live.unharmed())
        .map(|live| finding(Property::Live, blame(seen), live.describe()))
        .collect();
    let mut restarted = false;
    for (phase, run, update) in &updates {
        let harmed = match (&run.killed_by_platform, update.running) {
            (Some(kill), _) => Some(format!("the self-updating program was killed {kill}")),
            (None, Some(running)) => {
                restarted = true;
                (running.0 < 2 && running.1 < 2).then(|| {
                    format!(
                        "the self-updating program executed itself again but runs exe v{} / lib v{} code: it did not replace itself",
                        running.0, running.1
                    )
                })
            }
            (None, None) if update.reexec => Some(match &update.reexec_failed {
                Some(why) => format!(
                    "the self-updating program replaced itself but could not start again: {why}"
                ),
                None => format!(
                    "the self-updating program replaced itself, then its new image ended: {}",
                    run.exit
                ),
            }),
            // Ended by a signal that no fault of its run sent: it crashed.
            (None, None) => match run.exit {
                Exit::Signal(_)
                    if !seen
                        .fired
                        .iter()
                        .any(|p| p.phase == *phase && ends_process(&p.fault)) =>
                {
                    Some(format!("the self-updating program died: {}", run.exit))
                }
                _ => None,
            },
        };
        if let Some(what) = harmed {
            findings.push(finding(Property::Live, blame(seen), what));
        }
    }
    if findings.is_empty() && seen.live.is_empty() && !restarted {
        let gave_up = updates
            .iter()
            .flat_map(|(_, _, update)| update.failed.first())
            .next()
            .map_or(String::new(), |why| format!(": it gave up at {why}"));
        return Verdict::not_exercised(format!(
            "the self-updating program never executed itself again{gave_up}"
        ));
    }
    Verdict::of(findings)
}

/// The runs of a self-updating program, by phase, with what each reported.
fn self_updates(seen: &Observations) -> Vec<(Phase, &StrategyRun, &SelfUpdateReport)> {
    std::iter::once(&seen.first)
        .chain(&seen.retries)
        .enumerate()
        .filter_map(|(phase, run)| Some((phase as Phase, run, run.self_update.as_ref()?)))
        .collect()
}

/// A fault that ends the process it lands on: a kill, or the power going.
fn ends_process(fault: &Fault) -> bool {
    matches!(
        interrupts(fault),
        Some(Property::Kill) | Some(Property::Power)
    )
}

/// visible: every probe at every stall saw complete old or new. One
/// finding per stall, naming everything the users saw there.
fn visible(seen: &Observations) -> Verdict {
    if seen.probes.is_empty() {
        return Verdict::not_exercised("no op was stalled, so no probe looked");
    }
    let mut findings: Vec<Finding> = Vec::new();
    for probe in seen.probes.iter().filter(|probe| !probe.ok) {
        match findings
            .iter_mut()
            .find(|f| f.crash_point.as_ref() == Some(&probe.at))
        {
            Some(found) => {
                found.seen.push_str(", ");
                found.seen.push_str(&probe.seen);
            }
            None => findings.push(finding(
                Property::Visible,
                Some(probe.at.clone()),
                format!("a user saw {}", probe.seen),
            )),
        }
    }
    // Which probes saw only what the op left: detail, since what users saw
    // is the same whether or not they waited for it.
    for found in &mut findings {
        let blocked: Vec<&str> = seen
            .probes
            .iter()
            .filter(|p| p.blocked && !p.ok && found.crash_point.as_ref() == Some(&p.at))
            .map(|p| p.probe.name())
            .collect();
        if !blocked.is_empty() {
            found.detail = Some(format!(
                "{} blocked until the op finished",
                blocked.join(", ")
            ));
        }
    }
    Verdict::of(findings)
}

/// kill, errors, power: after the interruption the target is complete; after
/// an error, exit 0 is truthful only if the target is new.
fn complete_after(seen: &Observations, property: Property) -> Verdict {
    let endings = endings(seen);
    let points: Vec<&CrashPoint> = endings
        .iter()
        .copied()
        .filter(|point| interrupts(&point.fault) == Some(property))
        .collect();
    if points.is_empty() {
        // It fired, but a later fault of the same run ended that run.
        let ended_later = seen.fired.iter().find_map(|point| {
            let ending = endings.iter().find(|e| e.phase == point.phase)?;
            (interrupts(&point.fault) == Some(property)).then_some((point, ending))
        });
        if let Some((point, ending)) = ended_later {
            let under = interrupts(&ending.fault).map_or("", Property::name);
            return Verdict::not_exercised(format!(
                "the run went on past {point} and {ending} ended it: judged under {under}"
            ));
        }
        // An error followed by a cut: only the disk after the cut was seen.
        let cut_after_error = seen
            .fired
            .iter()
            .find(|point| matches!(point.fault, Fault::ErrnoThenCut(..)));
        if let (Property::Errors, Some(point)) = (property, cut_after_error) {
            return Verdict::not_exercised(format!(
                "the power was cut after the run with the error ({point}): judged under power"
            ));
        }
        let what = match property {
            Property::Kill => "no kill",
            Property::Power => "no power cut",
            _ => "no injected error",
        };
        return Verdict::not_exercised(format!("{what} fired in this run"));
    }
    let (when, after) = match property {
        Property::Kill => ("after the kill", "after the kill the target"),
        Property::Power => (
            "after the power cut",
            "after the power cut the durable target",
        ),
        _ => ("after the error", "after the error the target"),
    };
    let mut findings = Vec::new();
    // Each run a fault interrupted, judged by what that run left.
    for point in points {
        let Some(run) = seen.run_of(point.phase) else {
            continue;
        };
        let class = run.target.class;
        if !class.is_complete() {
            findings.push(Finding {
                detail: run.target.mix.clone(),
                ..finding(property, Some(point.clone()), format!("{after} is {class}"))
            });
        }
        // The application must still start after the interruption too: a
        // strategy that removes the program and puts it back later leaves
        // it gone if cut off in between.
        if !run.damaged.is_empty() {
            let what = format!(
                "{when} the application is damaged: {}",
                run.damaged.join(", ")
            );
            findings.push(finding(property, Some(point.clone()), what));
        }
        if property == Property::Errors && class == TargetClass::Old && run.exit.success() {
            findings.push(finding(
                property,
                Some(point.clone()),
                format!("the strategy exited 0 after the error, but the target is {class}"),
            ));
        }
        // A failed fsync's data never reaches the disk (fsyncgate): exit 0
        // says the update is done, but a power cut now would undo it.
        let durable = run.durable_after_sync_error.as_ref();
        if let (Property::Errors, Some(durable), true) = (property, durable, run.exit.success()) {
            if class == TargetClass::New && durable.class != TargetClass::New {
                findings.push(Finding {
                    detail: durable.mix.clone(),
                    ..finding(
                        property,
                        Some(point.clone()),
                        format!(
                            "the strategy exited 0 after the failed sync, but the data it was to \
                             make durable never reached the disk: a power cut now leaves the \
                             durable target {}",
                            durable.class
                        ),
                    )
                });
            }
        }
    }
    Verdict::of(findings)
}

/// The last line a failed run printed, as `: LINE`: why it failed, in its
/// own words (none when it printed nothing).
fn said(stderr: &str) -> String {
    last_words(stderr).map_or_else(String::new, |line| format!(": {line}"))
}

/// retry: after an interruption, running the strategy again completes it.
fn retry(seen: &Observations) -> Verdict {
    // The retry judged is the last one, made after the last interruption:
    // a fault's, or the platform's kill.
    let point = endings(seen).last().copied();
    let killed = std::iter::once(&seen.first)
        .chain(&seen.retries)
        .enumerate()
        .filter_map(|(phase, run)| Some((phase as Phase, run.killed_by_platform.as_ref()?)))
        .last();
    let (phase, at, after) = match (point, killed) {
        (Some(point), Some((phase, kill))) if phase >= point.phase => (
            phase,
            None,
            format!("after the platform killed the strategy at {}, ", kill.op),
        ),
        (Some(point), _) => (point.phase, Some(point.clone()), String::new()),
        (None, Some((phase, kill))) => (
            phase,
            None,
            format!("after the platform killed the strategy at {}, ", kill.op),
        ),
        (None, None) => return Verdict::not_exercised("nothing interrupted the run"),
    };
    let Some(retry) = seen.run_of(phase + 1) else {
        return Verdict::not_exercised("no retry was made after the interruption");
    };
    if retry.exit.success() && retry.target.class == TargetClass::New {
        if retry.damaged.is_empty() {
            return Verdict::Pass;
        }
        return Verdict::of(vec![finding(
            Property::Retry,
            at,
            format!(
                "{after}the retry replaced the target but left the application damaged: {}",
                retry.damaged.join(", ")
            ),
        )]);
    }
    let why = said(&retry.stderr);
    Verdict::of(vec![finding(
        Property::Retry,
        at,
        format!(
            "{after}the retry ended ({}) and left the target {}{why}",
            retry.exit, retry.target.class
        ),
    )])
}

/// The run that ended the replacement with success: the retry if one was
/// made, else the first run; `None` when it did not end with new in place.
fn finished(seen: &Observations) -> Option<&StrategyRun> {
    let done = seen.retries.last().unwrap_or(&seen.first);
    (done.exit.success() && done.target.class == TargetClass::New).then_some(done)
}

const NOT_FINISHED: &str = "no run ended with the new target in place";

/// meta: the new target carries the old one's mode, owner and xattrs (the
/// owner only where it could differ: see [`Observations::single_uid`]), at
/// the end and at the state an interruption left: new bytes whose mode or
/// xattrs are wrong there (a chmod after the rename) are what a user meets.
fn meta(seen: &Observations, wanted: &Wanted) -> Verdict {
    let mut findings = Vec::new();
    let at_end = finished(seen).map(|done| wrong_meta(&done.target, seen, wanted));
    // What a user met before the end: the target an interruption left, and
    // the target at each stall. New bytes there with the wrong mode, owner
    // or xattrs are a finding at that point; what the end gets wrong anyway
    // is said once, of the end. The text does not say which fault: the
    // point does, and the same state met after a kill, an error or at a
    // stall is one finding.
    let mut met: Vec<(&CrashPoint, &TargetState)> = Vec::new();
    for point in endings(seen) {
        if let Some(run) = seen.run_of(point.phase) {
            met.push((point, &run.target));
        }
    }
    for probe in &seen.probes {
        if !met.iter().any(|(at, _)| *at == &probe.at) {
            met.push((&probe.at, &probe.target));
        }
    }
    for (point, target) in met {
        let wrong: Vec<String> = wrong_meta(target, seen, wanted)
            .into_iter()
            .filter(|what| !at_end.iter().flatten().any(|end| end == what))
            .collect();
        if target.class == TargetClass::New && !wrong.is_empty() {
            findings.push(finding(
                Property::Meta,
                Some(point.clone()),
                format!("{NEW_BYTES_BUT}{}", wrong.join(", ")),
            ));
        }
    }
    match at_end {
        Some(wrong) => findings.extend(
            wrong
                .into_iter()
                .map(|what| finding(Property::Meta, blame(seen), what)),
        ),
        None if findings.is_empty() => return Verdict::not_exercised(NOT_FINISHED),
        None => {}
    }
    Verdict::of(findings)
}

/// How a meta finding before the end begins: the state a user met.
pub const NEW_BYTES_BUT: &str = "the target has the new bytes but ";

/// How `target`'s mode, owner and xattrs differ from what they must be.
fn wrong_meta(target: &TargetState, seen: &Observations, wanted: &Wanted) -> Vec<String> {
    let mut what = Vec::new();
    if target.mode != Some(wanted.mode) {
        what.push(format!(
            "mode is {:04o}, was {:04o}",
            target.mode.unwrap_or(0),
            wanted.mode
        ));
    }
    if !seen.single_uid && target.owner != seen.before.owner {
        what.push(format!(
            "owner is {}, was {}",
            owner_name(target.owner),
            owner_name(seen.before.owner)
        ));
    }
    let lost: Vec<&str> = wanted
        .xattrs
        .iter()
        .filter(|(name, value)| target.xattrs.get(*name) != Some(value))
        .map(|(name, _)| name.as_str())
        .collect();
    if !lost.is_empty() {
        what.push(format!("xattrs lost or changed: {}", lost.join(", ")));
    }
    what
}

fn owner_name(owner: Option<(u32, u32)>) -> String {
    owner.map_or("none".to_owned(), |(uid, gid)| format!("{uid}:{gid}"))
}

/// tidy: the run that finished the replacement left no stray files and no
/// process running.
fn tidy(seen: &Observations) -> Verdict {
    let Some(done) = finished(seen) else {
        return Verdict::not_exercised(NOT_FINISHED);
    };
    let mut findings = Vec::new();
    if !done.strays.is_empty() {
        findings.push(finding(
            Property::Tidy,
            blame(seen),
            format!("stray files left: {}", done.strays.join(", ")),
        ));
    }
    if !done.left_running.is_empty() {
        findings.push(finding(
            Property::Tidy,
            blame(seen),
            format!(
                "processes left running after the strategy exited, killed at the linger bound: {}",
                done.left_running.join(", ")
            ),
        ));
    }
    Verdict::of(findings)
}

/// The fault that ended each interrupted run, in phase order: the last
/// of its run that interrupts. An error a strategy meets sends it down
/// another path (a rollback); a kill there ends the run, and what the
/// run left is the kill's doing.
fn endings(seen: &Observations) -> Vec<&CrashPoint> {
    let mut found: Vec<&CrashPoint> = Vec::new();
    for point in seen.fired.iter().filter(|p| interrupts(&p.fault).is_some()) {
        match found.iter_mut().find(|p| p.phase == point.phase) {
            Some(ending) => *ending = point,
            None => found.push(point),
        }
    }
    found.sort_by_key(|p| p.phase);
    found
}

#[cfg(test)]
mod tests;
