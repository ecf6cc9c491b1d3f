//! One [`Report`] for every command (`run`, `check`, `explore`, `fuzz`):
//! the verdict per property against the scenario's expectations, grouped
//! findings with the command that reproduces each, and a body of what the
//! command did ([`Body`]). It is data, read back with serde as it was
//! written; renderers are the only code that turns it into text: [`human`]
//! (the terminal view and the catalog matrix), [`json`] and [`junit`].

pub mod fix;
pub mod human;
pub mod json;
pub mod junit;
pub mod redact;
pub mod reproduce;

use fault_fs::{phase_prefix, CrashPoint, OpKind, Phase, Rule};
use serde::{Deserialize, Serialize};

use crate::observe::{last_words, Observations};
use crate::outcome::{
    DrawnSize, Exploration, FuzzOutcome, FuzzStats, PointResult, Points, Property, RunOutcome,
    Verdict,
};
use crate::scenario::{Expectation, Scenario};
use redact::{redact_run_names, RecordedNames};
use reproduce::{reproduction, reproduction_prefix, run_command, shell_quote};

/// The version of the JSON shape: raised when a field changes meaning or
/// goes away (adding a field does not raise it).
pub const SCHEMA_VERSION: u32 = 3;

/// A property's verdict over a whole report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Exercised, and no finding.
    Pass,
    /// At least one finding.
    Fail,
    /// Nothing could exercise it: never a pass.
    NotExercised,
}

impl Status {
    /// `pass`, `fail`, `not-exercised`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::NotExercised => "not-exercised",
        }
    }
}

/// Findings of one property that say the same thing: same kind of fault,
/// same observation (temp names aside), at any of `points`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingGroup {
    /// Where: `kill-after at any of write#1–#7 (7 points)`, `in every run`.
    pub summary: String,
    /// What was seen (at the first point).
    pub seen: String,
    /// Every crash point in the group; empty for the undisturbed run.
    pub points: Vec<CrashPoint>,
    /// For a finding of the undisturbed run: at how many crash points it
    /// was seen again (those are not listed as groups of their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurs_at: Option<usize>,
    /// The command that reproduces it: at its first point at a mutating op
    /// (their order is stable across runs), else at its first point.
    pub reproduce: String,
    /// What to change: the usual fix for what was seen (see [`fix::fix_for`]).
    #[serde(default)]
    pub fix: String,
}

/// The verdict on one property, against the scenario's expectation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyReport {
    /// The property.
    pub property: Property,
    /// Pass, fail or not exercised.
    pub status: Status,
    /// Why it was not exercised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why_not_exercised: Option<String>,
    /// A part of it that no run could exercise, and why (`owner not
    /// exercised: …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_not_exercised: Option<String>,
    /// Grouped findings; empty unless it failed.
    pub groups: Vec<FindingGroup>,
    /// What the scenario expects, if it says.
    pub expected: Option<Expectation>,
    /// False for a verdict the scenario does not expect.
    pub as_expected: bool,
}

/// A crash point that could not be checked, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointError {
    /// The point.
    pub point: CrashPoint,
    /// Why.
    pub error: String,
}

/// What a command found: the one result type every command and renderer
/// shares, and the one JSON shape (`--json`) read back as it was written.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The scenario's name.
    pub scenario: String,
    /// What the scenario shows.
    pub description: String,
    /// What the target is (`library target app/libcanary.so`).
    pub target: String,
    /// The command that reruns the scenario (findings add `--fault`).
    pub command: String,
    /// One per property, in [`Property::ALL`] order; for fuzzing, those of
    /// the failing schedule's replay (none when no schedule failed).
    pub properties: Vec<PropertyReport>,
    /// Every verdict as the scenario expects and nothing failed to run.
    pub as_expected: bool,
    /// What the command did.
    pub body: Body,
}

/// What made a [`Report`], and what it did.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Body {
    /// One run (`run`, `check`).
    Run(Box<RunBody>),
    /// Every crash point of a recorded run (`explore`).
    Explore(ExploreBody),
    /// Random fault schedules (`fuzz`).
    Fuzz(FuzzBody),
}

/// One run, with its retries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunBody {
    /// Ops the strategy made in its first run.
    pub ops: usize,
    /// The run.
    pub run: RunOutcome,
}

/// An exploration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExploreBody {
    /// Ops the strategy made in the recording.
    pub ops: usize,
    /// Crash points, and how they were checked.
    pub points: Points,
    /// Points that could not be checked.
    pub errors: Vec<PointError>,
    /// Stopped early (Ctrl-C).
    pub interrupted: bool,
    /// Every crash point checked and its findings.
    pub point_results: Vec<PointResult>,
    /// How the recording run failed, when it did (`exit 1: LAST LINE`):
    /// with no crash point, the reason nothing was tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_failed: Option<String>,
}

/// A fuzzing session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FuzzBody {
    /// What it tried.
    pub stats: FuzzStats,
    /// The smallest failing schedule found, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<Box<FailingSchedule>>,
}

/// A failing fault schedule, shrunk, and how to replay it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FailingSchedule {
    /// Its faults.
    pub schedule: Vec<Rule>,
    /// The new canary's size it drew, where not the scenario's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_size: Option<DrawnSize>,
    /// The command that replays it.
    pub reproduce: String,
    /// The lines that make the scenario file run it.
    pub snippet: String,
    /// Its replay (the report's properties are this run's verdicts).
    pub replay: RunBody,
}

impl Report {
    /// The report of one property.
    pub fn property(&self, property: Property) -> Option<&PropertyReport> {
        self.properties.iter().find(|p| p.property == property)
    }

    /// The report of one run of `scenario` on `target` (as
    /// [`crate::target::Prepared::describe_target`] says it). A single run
    /// hits one crash point at most, and the scenario's expectations speak
    /// of all of them: a pass where a failure is expected has just not hit
    /// the failing point, so only an unexpected failure counts against it.
    pub fn of_run(scenario: &Scenario, target: &str, outcome: RunOutcome) -> Report {
        let command = run_command(scenario, &outcome.faults);
        let properties = run_properties(scenario, &outcome, &command);
        Report {
            schema_version: SCHEMA_VERSION,
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            target: target.to_owned(),
            as_expected: properties.iter().all(|p| p.as_expected),
            command,
            properties,
            body: Body::Run(Box::new(RunBody {
                ops: outcome.trace.len(),
                run: outcome,
            })),
        }
    }

    /// The report of an exploration of `scenario` on `target`. Findings of
    /// the recording are said once, with the number of points they recur
    /// at, and not again per point; the others are grouped by property,
    /// kind of fault and what was seen.
    pub fn of_exploration(scenario: &Scenario, target: &str, explored: Exploration) -> Report {
        let Exploration {
            record,
            results,
            points,
            interrupted,
        } = explored;
        // The undisturbed run's findings are reproduced with no fault.
        let command = reproduction(scenario, &[]);
        // No crash point at all: the exploration tested nothing, and says so.
        let nothing = (points.total == 0 && !interrupted).then_some(NO_CRASH_POINT);
        let names = RecordedNames::of(&record, &results);
        let first = &record.observed.first;
        let record_failed = (!first.exit.success()).then(|| match last_words(&first.stderr) {
            Some(line) => format!("{}: {line}", first.exit),
            None => first.exit.to_string(),
        });
        let properties: Vec<PropertyReport> = Property::ALL
            .into_iter()
            .map(|property| {
                let mut report =
                    explored_property(property, &record, &results, &names, &command, scenario);
                if report.status == Status::NotExercised {
                    if let Some(why) = nothing {
                        report.why_not_exercised = Some(why.into());
                    }
                }
                let expected = scenario.expect().get(&property).copied();
                // An exploration checks every point: the verdict must be
                // the expected one, and "not exercised" is never a pass. A
                // partition checks a share of them: the expected finding
                // may be in another share, so only an unexpected one
                // counts against it (as for one run).
                let as_expected = match (report.status, expected) {
                    (_, None) => report.status != Status::Fail,
                    (Status::Fail, Some(e)) => e == Expectation::Fail,
                    (_, Some(_)) if points.partition.is_some() => true,
                    (Status::Pass, Some(e)) => e == Expectation::Pass,
                    (Status::NotExercised, Some(_)) => false,
                };
                PropertyReport {
                    expected,
                    as_expected,
                    ..report
                }
            })
            .collect();
        let errors: Vec<PointError> = results
            .iter()
            .filter_map(|result| {
                Some(PointError {
                    point: result.point.clone(),
                    error: result.error.clone()?,
                })
            })
            .collect();
        Report {
            schema_version: SCHEMA_VERSION,
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            target: target.to_owned(),
            as_expected: properties.iter().all(|p| p.as_expected)
                && errors.is_empty()
                && nothing.is_none(),
            command,
            properties,
            body: Body::Explore(ExploreBody {
                ops: record.trace.len(),
                points,
                errors,
                interrupted,
                point_results: results,
                record_failed,
            }),
        }
    }

    /// The report of a fuzzing session of `scenario` on `target`: as
    /// expected when no schedule failed; its properties are those of the
    /// failing schedule's replay.
    pub fn of_fuzz(scenario: &Scenario, target: &str, fuzzed: FuzzOutcome) -> Report {
        let FuzzOutcome { stats, failing } = fuzzed;
        let failing = failing.map(|failing| {
            // The replay's scenario: with the new size the case drew.
            let replayed = match &failing.new_size {
                Some(drawn) => scenario
                    .with_new_size(drawn.built_at)
                    .unwrap_or_else(|_| scenario.clone()),
                None => scenario.clone(),
            };
            let reproduce = run_command(&replayed, &failing.schedule);
            let quoted: Vec<String> = failing
                .schedule
                .iter()
                .map(|rule| shell_quote(&rule.to_string()))
                .collect();
            let target = failing.new_size.as_ref().map_or(String::new(), |n| {
                format!("[target]\nnew_size = {}\n", n.built_at)
            });
            let properties = run_properties(&replayed, &failing.run, &reproduce);
            let schedule = FailingSchedule {
                schedule: failing.schedule,
                new_size: failing.new_size,
                snippet: format!("{target}[strategy]\nfaults = [{}]", quoted.join(", ")),
                reproduce,
                replay: RunBody {
                    ops: failing.run.trace.len(),
                    run: failing.run,
                },
            };
            (schedule, properties)
        });
        let (failing, properties) = match failing {
            Some((failing, properties)) => (Some(Box::new(failing)), properties),
            None => (None, Vec::new()),
        };
        Report {
            schema_version: SCHEMA_VERSION,
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            target: target.to_owned(),
            command: reproduction_prefix(scenario),
            as_expected: failing.is_none(),
            properties,
            body: Body::Fuzz(FuzzBody { stats, failing }),
        }
    }

    /// The run of a report of one run, or of a fuzzing session's replay.
    pub fn run(&self) -> Option<&RunBody> {
        match &self.body {
            Body::Run(run) => Some(run),
            Body::Fuzz(fuzz) => fuzz.failing.as_ref().map(|f| &f.replay),
            Body::Explore(_) => None,
        }
    }
}

/// The properties of one run of `scenario`, each finding reproduced by
/// `command`.
fn run_properties(scenario: &Scenario, outcome: &RunOutcome, command: &str) -> Vec<PropertyReport> {
    Property::ALL
        .into_iter()
        .map(|property| {
            let verdict = outcome.evaluation.verdict(property);
            let groups = verdict
                .findings()
                .iter()
                .map(|finding| FindingGroup {
                    summary: match &finding.crash_point {
                        Some(point) => where_seen(std::slice::from_ref(point)),
                        None => "in the undisturbed run".into(),
                    },
                    seen: finding.seen_in_full(),
                    points: finding.crash_point.iter().cloned().collect(),
                    recurs_at: None,
                    reproduce: command.to_owned(),
                    fix: String::new(),
                })
                .collect();
            let status = status_of(verdict.exercised(), !verdict.findings().is_empty());
            let expected = scenario.expect().get(&property).copied();
            PropertyReport {
                property,
                status,
                why_not_exercised: why_not(verdict),
                part_not_exercised: part_not_exercised(property, &outcome.observed, scenario),
                groups: with_fixes(property, groups),
                expected,
                as_expected: !(status == Status::Fail && expected != Some(Expectation::Fail)),
            }
        })
        .collect()
}

/// `groups` of `property`, each with what to change.
fn with_fixes(property: Property, mut groups: Vec<FindingGroup>) -> Vec<FindingGroup> {
    for group in &mut groups {
        group.fix = fix::fix_for(property, &group.seen).to_owned();
    }
    groups
}

/// Why an exploration with no crash point exercised nothing.
pub const NO_CRASH_POINT: &str = "no crash point: the strategy changed nothing swapfault saw";

fn status_of(exercised: bool, failed: bool) -> Status {
    match (exercised, failed) {
        (false, _) => Status::NotExercised,
        (true, false) => Status::Pass,
        (true, true) => Status::Fail,
    }
}

fn why_not(verdict: &Verdict) -> Option<String> {
    match verdict {
        Verdict::NotExercised { why } => Some(why.clone()),
        Verdict::Pass | Verdict::Fail { .. } => None,
    }
}

/// What of `property` the runs could not exercise, whatever they did.
fn part_not_exercised(
    property: Property,
    observed: &Observations,
    scenario: &Scenario,
) -> Option<String> {
    let mut parts = Vec::new();
    if property == Property::Live {
        if !scenario.live && !scenario.live_commands.is_empty() {
            // A live command reports no heartbeat: only that it stayed alive is seen.
            parts.push("mappings not exercised: live commands are watched for staying alive; only the canary reports its mappings");
        }
        let restarted = std::iter::once(&observed.first)
            .chain(&observed.retries)
            .any(|run| {
                run.self_update
                    .as_ref()
                    .is_some_and(|u| u.running.is_some())
            });
        let others = scenario.live || !scenario.live_commands.is_empty();
        if scenario.strategy.self_update.is_some() && !restarted && others {
            // The other live processes earned the pass, if it is one.
            parts.push("self-update not exercised: the program never executed itself again");
        }
    }
    if property != Property::Meta {
        return (!parts.is_empty()).then(|| parts.join("; "));
    }
    if observed.single_uid {
        parts.push(
            "owner not exercised: one uid is mapped (rootless), so every file has the same owner",
        );
    }
    if scenario.target.xattrs.is_empty() {
        parts.push("xattrs not exercised: the old target has none (`target.xattrs` gives it some)");
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// One property over a recording and its crash points (expectation aside).
fn explored_property(
    property: Property,
    record: &RunOutcome,
    results: &[PointResult],
    names: &RecordedNames,
    command: &str,
    scenario: &Scenario,
) -> PropertyReport {
    let baseline = record.evaluation.verdict(property);
    let mut exercised = baseline.exercised();
    let mut why = why_not(baseline);
    let redact = |text: &str| names.redact(&redact_run_names(text));
    // Per baseline finding: at how many points it was seen again.
    let mut recurs: Vec<(String, usize)> = baseline
        .findings()
        .iter()
        .map(|f| (redact(&f.seen), 0))
        .collect();
    // One group per observation, whatever faults led to it: a stray temp
    // file after a kill and after a power cut is one thing to fix.
    // With each group, the point its reproduction runs.
    let mut groups: Vec<(String, FindingGroup, CrashPoint)> = Vec::new();
    for result in results.iter().filter(|r| r.error.is_none()) {
        if result.exercised.contains(&property) {
            exercised = true;
        } else if why.is_none() {
            why = result
                .not_exercised(property)
                .map(|w| format!("{w} (at {})", result.point));
        }
        for finding in result.findings.iter().filter(|f| f.property == property) {
            let seen = redact(&finding.seen);
            if let Some((_, count)) = recurs.iter_mut().find(|(s, _)| *s == seen) {
                *count += 1;
                continue;
            }
            let point = finding.crash_point.clone().unwrap_or(result.point.clone());
            let reproduce = reproduction(scenario, &[point.to_string()]);
            match groups.iter_mut().find(|(s, _, _)| *s == seen) {
                Some((_, group, reproduced)) => {
                    // Reproduce at a point that names the same op on every
                    // run where the group has one (see `OpName::all`).
                    if !reproduced.is_stable() && point.is_stable() {
                        group.seen = redact(&finding.seen_in_full());
                        group.reproduce = reproduce;
                        *reproduced = point.clone();
                    }
                    if !group.points.contains(&point) {
                        group.points.push(point);
                    }
                }
                None => groups.push((
                    seen,
                    FindingGroup {
                        summary: String::new(),
                        seen: redact(&finding.seen_in_full()),
                        reproduce,
                        points: vec![point.clone()],
                        recurs_at: None,
                        fix: String::new(),
                    },
                    point,
                )),
            }
        }
    }
    let exercising = results
        .iter()
        .filter(|r| r.exercised.contains(&property))
        .count();
    let mut all: Vec<FindingGroup> = baseline
        .findings()
        .iter()
        .zip(&recurs)
        .map(|(finding, (_, count))| FindingGroup {
            // Only points that exercised the property could see it again.
            summary: if exercising == 0 {
                "in the undisturbed run".into()
            } else if *count == exercising {
                "in every run".into()
            } else {
                format!(
                    "in the undisturbed run and at {count} of the {exercising} crash points that exercised it"
                )
            },
            seen: redact(&finding.seen_in_full()),
            points: Vec::new(),
            recurs_at: Some(*count),
            reproduce: command.to_owned(),
            fix: String::new(),
        })
        .collect();
    all.extend(groups.into_iter().map(|(_, mut group, _)| {
        group.summary = where_seen(&group.points);
        group
    }));
    let status = status_of(exercised, !all.is_empty());
    PropertyReport {
        property,
        status,
        why_not_exercised: (status == Status::NotExercised)
            .then(|| why.unwrap_or_else(|| "no crash point exercised it".into())),
        part_not_exercised: part_not_exercised(property, &record.observed, scenario),
        groups: with_fixes(property, all),
        expected: None,
        as_expected: true,
    }
}

/// `kill-after at any of write#1–#7 (7 points)`: the distinct faults, then
/// the ops by kind (in the order the kinds first appear, ops counted from
/// another, `rename#3+1`, last), runs of consecutive ops folded
/// (`write#1+1–#111+1`), and at most a few runs named, the rest counted.
pub fn where_seen(points: &[CrashPoint]) -> String {
    let mut faults: Vec<String> = Vec::new();
    // Keyed by phase, kind and `+K`: `write#1+1` and `write#2+1` fold.
    type Key = (Phase, OpKind, u64);
    let mut ops: Vec<(Key, Vec<u64>)> = Vec::new();
    for point in points {
        let fault = point.fault.to_string();
        if !faults.contains(&fault) {
            faults.push(fault);
        }
        let key = (point.phase, point.op.kind, point.op.after);
        match ops.iter_mut().find(|(k, _)| *k == key) {
            Some((_, nths)) => nths.push(point.op.nth),
            None => ops.push((key, vec![point.op.nth])),
        }
    }
    // Stable: the plain ops in order of appearance, then the counted ones.
    ops.sort_by_key(|((_, _, after), _)| *after > 0);
    let mut at: Vec<String> = Vec::new();
    for ((phase, kind, after), mut nths) in ops {
        let kind = format!("{}{kind}", phase_prefix(phase));
        let plus = if after > 0 {
            format!("+{after}")
        } else {
            String::new()
        };
        nths.sort_unstable();
        nths.dedup();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for nth in nths {
            match runs.last_mut() {
                Some((_, last)) if nth == *last + 1 => *last = nth,
                _ => runs.push((nth, nth)),
            }
        }
        for (first, last) in runs {
            at.push(if first == last {
                format!("{kind}#{first}{plus}")
            } else {
                format!("{kind}#{first}{plus}–#{last}{plus}")
            });
        }
    }
    // A long list of scattered ops reads as noise: name a few.
    const NAMED_OPS: usize = 6;
    if at.len() > NAMED_OPS {
        let rest = at.len() - (NAMED_OPS - 1);
        at.truncate(NAMED_OPS - 1);
        at.push(format!("{rest} more runs of ops"));
    }
    // Power cuts come in many writeback states: name a few, count the rest.
    const NAMED: usize = 3;
    let faults = if faults.len() > NAMED + 1 {
        let rest = faults.len() - NAMED;
        format!("{} and {rest} other faults", faults[..NAMED].join(", "))
    } else {
        faults.join(", ")
    };
    let ops = at.join(", ");
    if at.len() == 1 && !ops.contains('–') {
        format!("{faults} at {ops}")
    } else {
        format!("{faults} at any of {ops} ({} points)", points.len())
    }
}

/// `1 op`, `2 ops`.
pub(crate) fn counted(count: usize, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        _ => format!("{count} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(texts: &[&str]) -> Vec<CrashPoint> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn where_seen_folds_runs_per_kind() {
        assert_eq!(
            where_seen(&points(&["write#1:kill-after"])),
            "kill-after at write#1"
        );
        assert_eq!(
            where_seen(&points(&[
                "getxattr#2:stall=10s",
                "write#2:stall=10s",
                "getxattr#3:stall=10s",
                "write#3:stall=10s",
                "getxattr#5:stall=10s",
            ])),
            "stall=10s at any of getxattr#2–#3, getxattr#5, write#2–#3 (5 points)"
        );
        assert_eq!(
            where_seen(&points(&[
                "write#2:errno=EIO",
                "write#2:errno=ENOSPC",
                "write#3:errno=EIO",
            ])),
            "errno=EIO, errno=ENOSPC at any of write#2–#3 (3 points)"
        );
        assert_eq!(
            where_seen(&points(&["create#1:errno=EIO", "create#1:errno=ENOSPC"])),
            "errno=EIO, errno=ENOSPC at create#1"
        );
        assert_eq!(
            where_seen(&points(&[
                "rename#2+1:stall=10s",
                "rename#1:stall=10s",
                "rename#1+1:stall=10s",
            ])),
            "stall=10s at any of rename#1, rename#1+1–#2+1 (3 points)"
        );
        assert_eq!(
            where_seen(&points(&[
                "unlink#1:kill-after",
                "retry:unlink#1:kill-after",
                "retry:unlink#2:kill-after",
            ])),
            "kill-after at any of unlink#1, retry:unlink#1–#2 (3 points)"
        );
    }

    #[test]
    fn where_seen_folds_ops_counted_from_another_and_names_a_few() {
        // A 16 MiB copy: each write and the op after it, 111 of each.
        let mut texts: Vec<String> = (1..=111)
            .flat_map(|n| {
                [
                    format!("write#{n}:errno=EIO"),
                    format!("write#{n}+1:errno=EIO"),
                ]
            })
            .collect();
        texts.push("rename#1+1:errno=EIO".into());
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        assert_eq!(
            where_seen(&points(&texts)),
            "errno=EIO at any of write#1–#111, write#1+1–#111+1, rename#1+1 (223 points)"
        );
        let scattered: Vec<String> = (1..=9)
            .map(|n| format!("write#{}:kill-after", n * 2))
            .collect();
        let scattered: Vec<&str> = scattered.iter().map(String::as_str).collect();
        assert_eq!(
            where_seen(&points(&scattered)),
            "kill-after at any of write#2, write#4, write#6, write#8, write#10, 4 more runs of ops (9 points)"
        );
    }

    /// The report of an exploration whose recording was `record`.
    fn explored(
        scenario: &Scenario,
        record: &RunOutcome,
        results: Vec<PointResult>,
        points: Points,
    ) -> Report {
        let exploration = Exploration {
            record: record.clone(),
            results,
            points,
            interrupted: false,
        };
        Report::of_exploration(scenario, "library target", exploration)
    }

    fn undisturbed(scenario: &Scenario) -> RunOutcome {
        with_mode(scenario, scenario.target.mode)
    }

    /// An undisturbed run that left the new target at `mode`.
    fn with_mode(scenario: &Scenario, mode: u32) -> RunOutcome {
        use crate::observe::{StrategyRun, TargetClass, TargetState};
        let target = |class| TargetState {
            class,
            ..TargetState::missing()
        };
        let observed = Observations {
            fired: Vec::new(),
            before: target(TargetClass::Old),
            first: StrategyRun {
                exit: crate::observe::Exit::Code(0),
                stderr: String::new(),
                target: TargetState {
                    mode: Some(mode),
                    ..target(TargetClass::New)
                },
                strays: Vec::new(),
                left_running: Vec::new(),
                other_names: Vec::new(),
                self_update: None,
                killed_by_platform: None,
                settled_after: None,
                durable_after_sync_error: None,
                damaged: Vec::new(),
            },
            retries: Vec::new(),
            live: Vec::new(),
            probes: Vec::new(),
            single_uid: false,
        };
        let wanted = crate::observe::Wanted {
            mode: scenario.target.mode,
            xattrs: Default::default(),
        };
        RunOutcome {
            faults: Vec::new(),
            evaluation: crate::judge::evaluate(&observed, &wanted),
            observed,
            trace: Vec::new(),
            retry_traces: Vec::new(),
        }
    }

    #[test]
    fn an_exploration_with_no_crash_point_tested_nothing_and_is_no_success() {
        let scenario = Scenario::ad_hoc("timeout 60 install", crate::TargetKind::Lib, 65536, 65536);
        let report = explored(
            &scenario,
            &undisturbed(&scenario),
            Vec::new(),
            Points::default(),
        );
        assert!(!report.as_expected);
        let kill = report.property(Property::Kill).expect("kill");
        assert_eq!(kill.status, Status::NotExercised);
        assert_eq!(kill.why_not_exercised.as_deref(), Some(NO_CRASH_POINT));
        // What the undisturbed run did exercise still stands.
        let result = report.property(Property::Result).expect("result");
        assert_eq!(result.status, Status::Pass);
    }

    #[test]
    fn not_exercised_meets_no_expectation_in_an_exploration() {
        let mut scenario = Scenario::ad_hoc("true", crate::TargetKind::Lib, 65536, 65536);
        scenario
            .expect_on
            .entry(crate::scenario::Platform::Linux)
            .or_default()
            .insert(Property::Live, Expectation::Pass);
        let record = undisturbed(&scenario);
        let one_point = PointResult::for_test("write#1:kill-after", &record);
        let points = Points {
            total: 1,
            checked: 1,
            run: 1,
            ..Points::default()
        };
        let report = explored(&scenario, &record, vec![one_point], points);
        let live = report.property(Property::Live).expect("live");
        assert_eq!(live.status, Status::NotExercised);
        assert!(!live.as_expected);
        assert!(!report.as_expected);
    }

    #[test]
    fn a_group_reproduces_at_a_point_that_names_one_op_on_every_run() {
        let scenario = Scenario::ad_hoc("install -m 0600", crate::TargetKind::Lib, 65536, 65536);
        let (kept, lost) = (undisturbed(&scenario), with_mode(&scenario, 0o600));
        let reproduced = |order: &[&str]| {
            let results: Vec<PointResult> = order
                .iter()
                .map(|point| PointResult::for_test(point, &lost))
                .collect();
            let n = results.len();
            let points = Points {
                total: n,
                checked: n,
                run: n,
                ..Points::default()
            };
            let report = explored(&scenario, &kept, results, points);
            let meta = report.property(Property::Meta).expect("meta").clone();
            assert_eq!(meta.groups.len(), 1, "{:?}", meta.groups);
            meta.groups[0].reproduce.clone()
        };
        let stable = "--fault 'rename#1:stall=10s'";
        // A read-only op first: the rename that joins the group takes over.
        let command = reproduced(&["getattr#3:stall=10s", "rename#1:stall=10s"]);
        assert!(command.ends_with(stable), "{command}");
        // A mutating op first: a read-only one does not take it back.
        let command = reproduced(&["rename#1:stall=10s", "getattr#3:stall=10s"]);
        assert!(command.ends_with(stable), "{command}");
        // The op after a mutating one is that op on every run too.
        let command = reproduced(&["getattr#3:stall=10s", "rename#1+1:stall=10s"]);
        assert!(
            command.ends_with("--fault 'rename#1+1:stall=10s'"),
            "{command}"
        );
    }

    #[test]
    fn a_finding_of_every_run_is_said_once_with_where_it_recurred() {
        let scenario = Scenario::ad_hoc("install -m 0600", crate::TargetKind::Lib, 65536, 65536);
        let lost = with_mode(&scenario, 0o600);
        let kept = undisturbed(&scenario);
        let points = |n| Points {
            total: n,
            checked: n,
            run: n,
            ..Points::default()
        };
        let meta = |results: Vec<PointResult>| {
            let n = results.len();
            let report = explored(&scenario, &lost, results, points(n));
            let meta = report.property(Property::Meta).expect("meta").clone();
            assert_eq!(meta.status, Status::Fail);
            assert_eq!(meta.groups.len(), 1, "said once: {:?}", meta.groups);
            meta.groups[0].summary.clone()
        };
        let at = |point: &str, outcome: &RunOutcome| PointResult::for_test(point, outcome);
        assert_eq!(
            meta(vec![
                at("write#1:kill-after", &lost),
                at("write#2:kill-after", &lost)
            ]),
            "in every run"
        );
        assert_eq!(
            meta(vec![
                at("write#1:kill-after", &lost),
                at("write#2:kill-after", &kept)
            ]),
            "in the undisturbed run and at 1 of the 2 crash points that exercised it"
        );
        // No point exercised meta: nothing says the loss recurs.
        let mut unexercised = at("write#1:kill-after", &lost);
        unexercised.exercised.clear();
        unexercised.findings.clear();
        assert_eq!(meta(vec![unexercised]), "in the undisturbed run");
    }

    #[test]
    fn live_commands_alone_leave_the_mappings_unexercised() {
        let mut scenario = Scenario::ad_hoc("true", crate::TargetKind::Lib, 65536, 65536);
        let observed = undisturbed(&scenario).observed;
        assert_eq!(
            part_not_exercised(Property::Live, &observed, &scenario),
            None
        );
        scenario.live = false;
        scenario.live_commands = vec!["exec sleep 60 < libcanary.so".into()];
        let part = part_not_exercised(Property::Live, &observed, &scenario);
        assert!(part.is_some_and(|p| p.starts_with("mappings not exercised")));
    }

    /// A live canary's pass says nothing of a self-updating program that
    /// never executed itself again; one that did earns its part.
    #[test]
    fn a_self_update_that_never_restarted_is_named_in_a_live_pass() {
        let spec = "in-place".parse().expect("spec");
        let mut scenario = Scenario::ad_hoc("", crate::TargetKind::Exe, 65536, 65536)
            .self_updating(spec)
            .expect("a self-update");
        scenario.live = true;
        let mut observed = undisturbed(&scenario).observed;
        observed.first.self_update = Some(crate::observe::SelfUpdateReport::parse(
            "start 1 1\nfailed open 26\n",
        ));
        let part = part_not_exercised(Property::Live, &observed, &scenario);
        assert!(part.is_some_and(|p| p.starts_with("self-update not exercised")));
        observed.first.self_update = Some(crate::observe::SelfUpdateReport::parse(
            "start 1 1\nreplaced\nreexec\nrunning 2 1\n",
        ));
        assert_eq!(
            part_not_exercised(Property::Live, &observed, &scenario),
            None
        );
    }
}
