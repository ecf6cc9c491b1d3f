//! What explore, fuzz and a single run hand the reports: the verdicts of
//! the judge ([`Property`], [`Finding`], [`Verdict`], [`Evaluation`]), one
//! run's [`RunOutcome`], an [`Exploration`]'s point results and counts, a
//! [`FuzzOutcome`], and the [`Event`]s a progress bar reads meanwhile. Plain
//! data, below both the engines that make it and the renderers that read it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use fault_fs::{CrashPoint, OpKind, OpRecord, Rule};
use serde::{Deserialize, Serialize};

use crate::observe::Observations;

/// The properties of DESIGN.md §3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Property {
    /// An undisturbed run leaves the target equal to new, says so truthfully,
    /// and leaves the program's other files and directory as they were.
    Result,
    /// Live processes stay alive and their mappings of the old files never change.
    Live,
    /// Every probe at every stalled op sees complete old or complete new.
    Visible,
    /// After a kill at any op, the target is complete old or new.
    Kill,
    /// After an injected I/O error the target is complete and the exit status truthful.
    Errors,
    /// After a power cut, the durable target is complete old or new.
    Power,
    /// After any interruption, running the strategy again completes the replacement.
    Retry,
    /// Mode, owner and xattrs of the target are as expected.
    Meta,
    /// A successful run leaves no stray files next to the target.
    Tidy,
}

impl Property {
    /// Every property, in report order.
    pub const ALL: [Property; 9] = [
        Property::Result,
        Property::Live,
        Property::Visible,
        Property::Kill,
        Property::Errors,
        Property::Power,
        Property::Retry,
        Property::Meta,
        Property::Tidy,
    ];

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Property::Result => "result",
            Property::Live => "live",
            Property::Visible => "visible",
            Property::Kill => "kill",
            Property::Errors => "errors",
            Property::Power => "power",
            Property::Retry => "retry",
            Property::Meta => "meta",
            Property::Tidy => "tidy",
        }
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Property {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Property::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Property::ALL.iter().map(|p| p.name()).collect();
                format!("unknown property `{s}` (hint: one of {})", names.join(", "))
            })
    }
}

/// A property that does not hold, where, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The property.
    pub property: Property,
    /// The crash point it follows from, or `None` for an undisturbed run.
    pub crash_point: Option<CrashPoint>,
    /// What was seen, in a sentence.
    pub seen: String,
    /// What only this crash point saw: how the torn target mixes the
    /// versions (`first 64 KiB new, rest old`). Findings that differ only
    /// here are one finding at many points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Finding {
    /// What was seen, with the detail: `after the power cut the durable
    /// target is torn (first 64 KiB new, rest old)`.
    pub fn seen_in_full(&self) -> String {
        match &self.detail {
            Some(detail) => format!("{} ({detail})", self.seen),
            None => self.seen.clone(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seen = self.seen_in_full();
        match &self.crash_point {
            Some(point) => write!(f, "{} at {}: {seen}", self.property, point),
            None => write!(f, "{}: {seen}", self.property),
        }
    }
}

/// The verdict on one property for one run (or, merged, for many).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Verdict {
    /// Exercised, and it held.
    Pass,
    /// Exercised, and it did not hold.
    Fail {
        /// What was seen, where.
        findings: Vec<Finding>,
    },
    /// The run could not exercise it: never a pass.
    NotExercised {
        /// Why, in a phrase.
        why: String,
    },
}

impl Verdict {
    pub(crate) fn of(findings: Vec<Finding>) -> Self {
        if findings.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail { findings }
        }
    }

    pub(crate) fn not_exercised(why: impl Into<String>) -> Self {
        Verdict::NotExercised { why: why.into() }
    }

    /// The findings (none unless it failed).
    pub fn findings(&self) -> &[Finding] {
        match self {
            Verdict::Fail { findings } => findings,
            Verdict::Pass | Verdict::NotExercised { .. } => &[],
        }
    }

    /// True unless not exercised.
    pub fn exercised(&self) -> bool {
        !matches!(self, Verdict::NotExercised { .. })
    }
}

/// The verdicts of one run, one per property.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Evaluation(pub BTreeMap<Property, Verdict>);

impl Evaluation {
    /// The verdict on `property`.
    pub fn verdict(&self, property: Property) -> &Verdict {
        // Every property is judged; a map built elsewhere may lack one.
        static UNJUDGED: Verdict = Verdict::NotExercised { why: String::new() };
        self.0.get(&property).unwrap_or(&UNJUDGED)
    }

    /// Every finding, property by property.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.0.values().flat_map(Verdict::findings)
    }

    /// The properties the run exercised.
    pub fn exercised(&self) -> impl Iterator<Item = Property> + '_ {
        self.0
            .iter()
            .filter(|(_, verdict)| verdict.exercised())
            .map(|(property, _)| *property)
    }
}

/// Everything one run observed, and what the evaluation made of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunOutcome {
    /// The fault rules in force, empty if none.
    pub faults: Vec<Rule>,
    /// What the run observed: the evaluation's only input.
    pub observed: Observations,
    /// The strategy's ops (its process group only), in order.
    pub trace: Vec<OpRecord>,
    /// The ops of each retry, in the order the retries ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_traces: Vec<Vec<OpRecord>>,
    /// One verdict per property.
    pub evaluation: Evaluation,
}

/// What one crash point found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PointResult {
    /// The crash point.
    pub point: CrashPoint,
    /// Properties it exercised.
    pub exercised: Vec<Property>,
    /// Its findings.
    pub findings: Vec<Finding>,
    /// A run that could not be carried out, if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it did not exercise the others.
    #[serde(skip, default)]
    why_not: BTreeMap<Property, String>,
}

impl PointResult {
    /// What `point` found in `outcome`. Findings at a crash point are named
    /// after `point`: points that share a computed power cut share the
    /// outcome of the first of them.
    pub fn of(point: &CrashPoint, outcome: &RunOutcome) -> Self {
        let evaluation = &outcome.evaluation;
        PointResult {
            point: point.clone(),
            exercised: evaluation.exercised().collect(),
            findings: evaluation
                .findings()
                .map(|finding| Finding {
                    crash_point: finding.crash_point.as_ref().map(|_| point.clone()),
                    ..finding.clone()
                })
                .collect(),
            error: None,
            why_not: evaluation
                .0
                .iter()
                .filter_map(|(property, verdict)| match verdict {
                    Verdict::NotExercised { why } => Some((*property, why.clone())),
                    Verdict::Pass | Verdict::Fail { .. } => None,
                })
                .collect(),
        }
    }

    /// A point that could not be checked, and why.
    pub fn failed(point: &CrashPoint, error: String) -> Self {
        PointResult {
            point: point.clone(),
            exercised: Vec::new(),
            findings: Vec::new(),
            error: Some(error),
            why_not: BTreeMap::new(),
        }
    }
}

impl PointResult {
    /// The result of `point` judged as `outcome` was.
    #[cfg(test)]
    pub(crate) fn for_test(point: &str, outcome: &RunOutcome) -> Self {
        PointResult::of(&point.parse().expect("crash point"), outcome)
    }

    /// Why this point did not exercise `property`, if it did not.
    pub fn not_exercised(&self, property: Property) -> Option<&str> {
        self.why_not.get(&property).map(String::as_str)
    }
}

/// `K/N`: this machine's share of the crash points: those whose index in
/// the recording's list of points is K - 1 modulo N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Which share, from 1.
    pub index: usize,
    /// How many shares.
    pub count: usize,
}

/// A `--partition` that is not `K/N` with 1 <= K <= N.
#[derive(Debug, thiserror::Error)]
#[error("bad partition `{0}` (hint: K/N with 1 <= K <= N, e.g. 1/3)")]
pub struct BadPartition(String);

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Serialize for Partition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Partition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for Partition {
    type Err = BadPartition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPartition(s.to_owned());
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) =
            (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Partition { index, count })
    }
}

/// How many members of a long run are drawn, beside the boundaries and the
/// powers of two.
pub const DRAWN: usize = 8;

/// Which crash points an exploration checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum Coverage {
    /// Every op of a long run of alike ops (`--exhaustive`).
    Exhaustive,
    /// A long run's first and last op, every power of two and [`DRAWN`]
    /// more drawn with `seed`.
    Sampled {
        /// The draws' seed (`--seed`).
        seed: u64,
    },
}

impl Default for Coverage {
    fn default() -> Self {
        Coverage::Sampled { seed: 0 }
    }
}

/// One long run of alike ops and how many of them were checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampledRun {
    /// Their kind.
    pub kind: OpKind,
    /// The file they act on, in the mount.
    pub path: String,
    /// The first op's name (`write#2`).
    pub first: String,
    /// How many ops the run has.
    pub ops: usize,
    /// How many of them were checked.
    pub checked: usize,
}

/// How many crash points an exploration had and checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Points {
    /// Crash points to check: those derived from the recording, less the
    /// ones sampling left out.
    pub total: usize,
    /// Crash points derived from the recording (what `--exhaustive` checks).
    pub derived: usize,
    /// How they were chosen: `"mode": "sampled"` (with its `"seed"`) or
    /// `"exhaustive"`.
    #[serde(flatten)]
    pub coverage: Coverage,
    /// The long runs of alike ops that were sampled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sampled: Vec<SampledRun>,
    /// Points checked (fewer with `--partition`, `--max-runs` or Ctrl-C).
    pub checked: usize,
    /// Of those, points that ran the strategy up to their fault.
    pub run: usize,
    /// Of those, power cuts computed from the recording instead.
    pub computed: usize,
    /// The distinct durable states among the computed ones (one retry each).
    pub durable_states: usize,
    /// Retries run for real after interruptions.
    #[serde(default)]
    pub retries: usize,
    /// Points that took the retry of another point whose interruption left
    /// a state of the same class instead of running their own (see
    /// `harness::retry`).
    #[serde(default)]
    pub retries_taken: usize,
    /// Classes whose retries differed from point to point: every point
    /// that had taken one was run again with a retry of its own.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub varied_classes: usize,
    /// This machine's share of the points (`--partition K/N`), if only one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<Partition>,
}

/// What the explorer and the fuzzer tell while they work.
#[derive(Debug)]
pub enum Event<'a> {
    /// The recording run is done; this many crash points will be checked.
    Planned {
        /// The scenario.
        scenario: &'a str,
        /// Points to check.
        points: usize,
        /// What checking them all costs, in bytes the strategy and its
        /// retries move (see `PointDone`'s): the weight of an ETA.
        cost: u64,
    },
    /// One crash point is done.
    PointDone {
        /// Its result.
        result: &'a PointResult,
        /// What it cost, in the unit of [`Event::Planned`]'s: a point
        /// computed with others costs nothing after the first.
        cost: u64,
    },
    /// A fuzzing session has run this many cases.
    Case {
        /// Cases run so far.
        cases: u32,
        /// It is shrinking a failing one.
        shrinking: bool,
    },
}

/// An exploration: the undisturbed recording, and what each crash point
/// checked found, in the order of the recording's points.
#[derive(Clone, Debug)]
pub struct Exploration {
    /// The recording run (no fault, no retry).
    pub record: RunOutcome,
    /// One per point checked.
    pub results: Vec<PointResult>,
    /// How many points there were, and how they were checked.
    pub points: Points,
    /// Stopped early (Ctrl-C).
    pub interrupted: bool,
}

/// What a fuzzing session did and found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FuzzOutcome {
    /// What it tried.
    pub stats: FuzzStats,
    /// The smallest failing schedule found, if one was.
    pub failing: Option<Failing>,
}

/// What a fuzzing session tried, and for how long.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FuzzStats {
    /// The seed the schedules came from.
    pub seed: u64,
    /// Workers that ran the cases, each on its own mount.
    pub workers: usize,
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
    /// Why the search tried fewer new cases than asked, naming the knob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_limit: Option<String>,
    /// Why shrinking stopped short of the smallest, naming the knob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrink_limit: Option<String>,
    /// Seconds the session took.
    pub seconds: f64,
    /// The regressions file, if one was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regressions: Option<PathBuf>,
    /// Stopped early (Ctrl-C).
    pub interrupted: bool,
}

/// A failing schedule, shrunk, and its replay.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failing {
    /// Its faults.
    pub schedule: Vec<Rule>,
    /// The new canary's size it drew, where not the scenario's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_size: Option<DrawnSize>,
    /// Its replay: one run with its retries.
    pub run: RunOutcome,
}

/// A new canary's size that a case drew.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DrawnSize {
    /// The size it was built at (`--new-size`).
    pub built_at: u64,
    /// The old file's length: the two versions' code differs by a few
    /// bytes, so "as long as the old" is within those.
    pub old_bytes: u64,
    /// The new file's length.
    pub new_bytes: u64,
}

/// For serde: leaves a zero count out.
fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Why a strategy that failed with EOPNOTSUPP may have met a limit of
/// fault-fs rather than a fault of its own.
pub const UNSUPPORTED_CALL_HINT: &str = "fault-fs does not support every call a real file \
     system does: open(dir, O_TMPFILE) is one, and fails with EOPNOTSUPP; see docs/PERSISTENCE.md";

/// Whether a strategy's last words say it met a call fault-fs cannot serve.
pub fn unsupported_call(said: &str) -> bool {
    said.contains("Operation not supported")
}
