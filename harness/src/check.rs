//! Judging a run: what users would see (target classes), the properties,
//! and the pure evaluation that turns a run's [`Observations`] into one
//! [`Verdict`] per [`Property`]. Nothing here starts a process, touches a
//! mount or reads a clock, so every rule is unit-tested on observations
//! built by hand.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use fault_fs::{CrashPoint, Fault};
use serde::{Deserialize, Serialize};

use crate::live::{Exit, LiveReport};
use crate::scenario::ProbeKind;

/// What the target is after (or during) a run, by content and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetClass {
    /// Byte-for-byte the old version.
    Old,
    /// Byte-for-byte the new version.
    New,
    /// No file at the target path.
    Missing,
    /// A zero-length file.
    Empty,
    /// A proper prefix of the old version.
    PrefixOfOld,
    /// A proper prefix of the new version.
    PrefixOfNew,
    /// Anything else: a mix, garbage, or not a regular file.
    Torn,
}

impl TargetClass {
    /// Complete old or complete new: the only classes users may ever see.
    pub fn is_complete(self) -> bool {
        matches!(self, TargetClass::Old | TargetClass::New)
    }

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            TargetClass::Old => "old",
            TargetClass::New => "new",
            TargetClass::Missing => "missing",
            TargetClass::Empty => "empty",
            TargetClass::PrefixOfOld => "prefix-of-old",
            TargetClass::PrefixOfNew => "prefix-of-new",
            TargetClass::Torn => "torn",
        }
    }
}

impl fmt::Display for TargetClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Classifies target bytes (`None`: no file) against old and new.
pub fn classify(bytes: Option<&[u8]>, old: &[u8], new: &[u8]) -> TargetClass {
    let Some(bytes) = bytes else {
        return TargetClass::Missing;
    };
    classify_by(bytes.len() as u64, |v| v.starts_with(bytes), old, new)
}

/// Classifies a file of `len` bytes against old and new, where
/// `is_prefix_of(v)` says whether the file is the first `len` bytes of `v`:
/// so a file in the tree is classified without being copied out.
pub fn classify_by(
    len: u64,
    is_prefix_of: impl Fn(&[u8]) -> bool,
    old: &[u8],
    new: &[u8],
) -> TargetClass {
    let (old_len, new_len) = (old.len() as u64, new.len() as u64);
    if len == new_len && is_prefix_of(new) {
        TargetClass::New
    } else if len == old_len && is_prefix_of(old) {
        TargetClass::Old
    } else if len == 0 {
        TargetClass::Empty
    } else if len < new_len && is_prefix_of(new) {
        TargetClass::PrefixOfNew
    } else if len < old_len && is_prefix_of(old) {
        TargetClass::PrefixOfOld
    } else {
        TargetClass::Torn
    }
}

/// A byte count as people read it: `4096 bytes`, `64 KiB`, `1.5 MiB`.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit {
            let whole = bytes / unit;
            let tenths = (bytes % unit) * 10 / unit;
            return if tenths == 0 {
                format!("{whole} {name}")
            } else {
                format!("{whole}.{tenths} {name}")
            };
        }
    }
    format!("{bytes} bytes")
}

/// The state of a set of files that must change together, from the state
/// of its first file (whose mode, owner and xattrs it keeps) and the class
/// of every file, that one first: complete only when every file is the same
/// complete version (a user who starts exe v2 with lib v1 meets a torn
/// set), the one class of all of them when they share it, else torn, with
/// each file's class as the mix (`canary new, libcanary.so old`).
pub fn combine_set(first: TargetState, classes: &[(String, TargetClass)]) -> TargetState {
    if classes.iter().all(|(_, class)| *class == first.class) {
        return first;
    }
    let mix = classes
        .iter()
        .map(|(name, class)| format!("{name} {class}"))
        .collect::<Vec<_>>()
        .join(", ");
    TargetState {
        class: TargetClass::Torn,
        mix: Some(mix),
        ..first
    }
}

/// How a torn file mixes the versions, in runs: `first 64 KiB new, rest
/// old`, `new to 896 KiB, then old to 1 MiB` (a stale tail), `zeros to 8
/// KiB, then new to 1 MiB`. A byte both versions share belongs to the run
/// it is in; bytes of neither are `zeros` or `other bytes`.
pub fn describe_mix(bytes: &[u8], old: &[u8], new: &[u8]) -> String {
    #[derive(Clone, Copy, PartialEq)]
    enum Run {
        New,
        Old,
        Zeros,
        Other,
    }
    let mut runs: Vec<(Run, usize)> = Vec::new();
    for (i, &byte) in bytes.iter().enumerate() {
        let is_new = new.get(i) == Some(&byte);
        let is_old = old.get(i) == Some(&byte);
        let run = match runs.last_mut() {
            // A byte of both versions, or a zero in a run of zeros, goes on.
            Some((run, end))
                if (*run == Run::New && is_new)
                    || (*run == Run::Old && is_old)
                    || (*run == Run::Zeros && byte == 0) =>
            {
                *end = i + 1;
                continue;
            }
            _ if is_new => Run::New,
            _ if is_old => Run::Old,
            _ if byte == 0 => Run::Zeros,
            _ => Run::Other,
        };
        match runs.last_mut() {
            Some((last, end)) if *last == run => *end = i + 1,
            _ => runs.push((run, i + 1)),
        }
    }
    let name = |run: Run| match run {
        Run::New => "new",
        Run::Old => "old",
        Run::Zeros => "zeros",
        Run::Other => "other bytes",
    };
    match runs.as_slice() {
        [(first, end), (rest, _)] => format!(
            "first {} {}, rest {}",
            size_text(*end as u64),
            name(*first),
            name(*rest)
        ),
        _ => {
            let mut text: Vec<String> = runs
                .iter()
                .take(4)
                .map(|(run, end)| format!("{} to {}", name(*run), size_text(*end as u64)))
                .collect();
            if runs.len() > 4 {
                text.push("…".into());
            }
            text.join(", then ")
        }
    }
}

/// The properties of DESIGN.md §3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Property {
    /// An undisturbed run leaves the target equal to new, and says so truthfully.
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
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

/// The target as found in the tree: class, inode and metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetState {
    /// Its class.
    pub class: TargetClass,
    /// Its inode number, if present.
    pub ino: Option<u64>,
    /// Mode bits.
    pub mode: Option<u32>,
    /// Owner and group.
    pub owner: Option<(u32, u32)>,
    /// Extended attributes (lossy UTF-8 values).
    pub xattrs: BTreeMap<String, String>,
    /// For a torn file, how it mixes the versions ([`describe_mix`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mix: Option<String>,
    /// The file a symlinked target resolves to (from the mount's root),
    /// when it is not the target path itself. Mode and xattrs are its.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
}

impl TargetState {
    /// No file at the target path.
    pub fn missing() -> Self {
        TargetState {
            class: TargetClass::Missing,
            ino: None,
            mode: None,
            owner: None,
            xattrs: BTreeMap::new(),
            mix: None,
            resolved: None,
        }
    }
}

/// One run of the strategy and what it left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StrategyRun {
    /// How it ended.
    pub exit: Exit,
    /// The last lines of its stderr.
    pub stderr: String,
    /// The target afterwards.
    pub target: TargetState,
    /// Paths that were not there before (outside the staging directory).
    pub strays: Vec<String>,
    /// Processes it started that were still running when it ended
    /// (`comm (pid N)`); they were killed then.
    pub left_running: Vec<String>,
    /// The old target's other names (hard links), as they are afterwards:
    /// an in-place writer changes them with the target, a writer of a new
    /// inode does not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_names: Vec<OtherName>,
    /// What a self-updating program said of its update, where the
    /// strategy is one ([`crate::scenario::SelfUpdate`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_update: Option<SelfUpdateReport>,
    /// The platform model killed the strategy: no fault of the plan did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed_by_platform: Option<PlatformKill>,
}

/// A kill by the platform's model (macOS code signing), not by the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlatformKill {
    /// The op that changed the bytes, named as a `--fault` names it
    /// (`write#2+7`).
    pub op: String,
    /// What that op was (`open /app/canary O_TRUNC`).
    pub what: String,
    /// Why, as the platform says it.
    pub reason: String,
}

impl fmt::Display for PlatformKill {
    /// `at OP (WHAT): REASON`, to follow "killed".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {} ({}): {}", self.op, self.what, self.reason)
    }
}

/// What a self-updating program reported, line by line, of one run: how
/// far it got in replacing its own file and running itself again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SelfUpdateReport {
    /// The versions (executable, library) of the code it started with.
    pub started: Option<(u32, u32)>,
    /// The steps that failed, with why (`open: Text file busy`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// It says it replaced its file.
    pub replaced: bool,
    /// It executed itself again.
    pub reexec: bool,
    /// Why that exec failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reexec_failed: Option<String>,
    /// The versions (executable, library) the image it executed runs.
    pub running: Option<(u32, u32)>,
}

impl fmt::Display for SelfUpdateReport {
    /// How far it got: `started as exe v1 / lib v1; says it replaced
    /// itself; executed itself again: runs exe v2 / lib v1`, or `…; failed
    /// at open: Text file busy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let versions = |(exe, lib): (u32, u32)| format!("exe v{exe} / lib v{lib}");
        match self.started {
            Some(started) => write!(f, "started as {}", versions(started))?,
            None => return f.write_str("did not start"),
        }
        if !self.failed.is_empty() {
            write!(f, "; failed at {}", self.failed.join(", "))?;
        }
        if self.replaced {
            f.write_str("; says it replaced itself")?;
        }
        match (self.reexec, &self.reexec_failed, self.running) {
            (true, _, Some(running)) => {
                write!(f, "; executed itself again: runs {}", versions(running))
            }
            (true, Some(why), None) => write!(f, "; could not execute itself again: {why}"),
            (true, None, None) => f.write_str("; its new image ended before it said anything"),
            (false, ..) => Ok(()),
        }
    }
}

impl SelfUpdateReport {
    /// Reads the canary's report lines (`start 1 1`, `failed open 26`,
    /// `replaced`, `reexec`, `reexec-failed 8`, `running 2 1`); lines it
    /// does not know are skipped.
    pub fn parse(text: &str) -> SelfUpdateReport {
        let errno_text = |errno: &str| {
            errno.parse().map_or_else(
                |_| errno.to_owned(),
                |n| nix::errno::Errno::from_raw(n).desc().to_owned(),
            )
        };
        let versions =
            |rest: &[&str]| Some((rest.first()?.parse().ok()?, rest.get(1)?.parse().ok()?));
        let mut report = SelfUpdateReport::default();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["start", rest @ ..] => report.started = versions(rest),
                ["failed", step, errno] => {
                    report.failed.push(format!("{step}: {}", errno_text(errno)));
                }
                ["replaced"] => report.replaced = true,
                ["reexec"] => report.reexec = true,
                ["reexec-failed", errno] => report.reexec_failed = Some(errno_text(errno)),
                ["running", rest @ ..] => report.running = versions(rest),
                _ => {}
            }
        }
        report
    }
}

/// Another name (hard link) of the old target, after a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OtherName {
    /// Its path from the mount's root.
    pub path: String,
    /// What it holds now: `old` if the run left it alone.
    pub class: TargetClass,
}

impl fmt::Display for OtherName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.class == TargetClass::Old {
            "unchanged"
        } else {
            "changed"
        };
        write!(f, "{} is {} ({how})", self.path, self.class)
    }
}

/// What one probe saw at a stalled op.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeObservation {
    /// The stall it looked during.
    pub at: CrashPoint,
    /// The stalled op, as the trace prints it.
    pub op: String,
    /// The probe.
    pub probe: ProbeKind,
    /// What it saw: `read: prefix-of-new`, `load: failed (exit 3)`.
    pub seen: String,
    /// Complete old or complete new.
    pub ok: bool,
    /// It could not look during the stall (the kernel held a lock the
    /// stalled op needs): what it saw is what the op left.
    pub blocked: bool,
    /// The target as the tree held it when the probes began to look: the
    /// mode, owner and xattrs a user listing it there met.
    pub target: TargetState,
}

/// Everything one run observed: the only input of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Observations {
    /// The faults that fired, in the order they fired.
    pub fired: Vec<CrashPoint>,
    /// The target before the run.
    pub before: TargetState,
    /// The first run.
    pub first: StrategyRun,
    /// The retries, in order: the first made after the first run was
    /// interrupted, each next one after a fault of its own phase
    /// ([`fault_fs::Phase`]) interrupted the one before. Empty when none
    /// was made.
    pub retries: Vec<StrategyRun>,
    /// The live processes (canary first, then the scenario's commands).
    pub live: Vec<LiveReport>,
    /// Probes at stalled ops.
    pub probes: Vec<ProbeObservation>,
    /// Only one uid was mapped (rootless, in a user namespace): every file
    /// had the same owner, so no owner change could have been seen.
    pub single_uid: bool,
}

impl Observations {
    /// The run of `phase`: the first run (0) or a retry.
    pub fn run_of(&self, phase: fault_fs::Phase) -> Option<&StrategyRun> {
        match phase {
            0 => Some(&self.first),
            n => self.retries.get(n as usize - 1),
        }
    }

    /// The fault that ended each interrupted run, in phase order: the last
    /// of its run that interrupts. An error a strategy meets sends it down
    /// another path (a rollback); a kill there ends the run, and what the
    /// run left is the kill's doing.
    fn endings(&self) -> Vec<&CrashPoint> {
        let mut found: Vec<&CrashPoint> = Vec::new();
        for point in self.fired.iter().filter(|p| interrupts(&p.fault).is_some()) {
            match found.iter_mut().find(|p| p.phase == point.phase) {
                Some(ending) => *ending = point,
                None => found.push(point),
            }
        }
        found.sort_by_key(|p| p.phase);
        found
    }
}

/// What the target must carry besides its bytes: the scenario's mode and
/// xattrs (the owner must stay the old target's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Mode bits.
    pub mode: u32,
    /// Extended attributes.
    pub xattrs: BTreeMap<String, String>,
}

/// The verdict on one property for one run (or, merged, for many).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
    fn of(findings: Vec<Finding>) -> Self {
        if findings.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail { findings }
        }
    }

    fn not_exercised(why: impl Into<String>) -> Self {
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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

/// The property a fault interrupts the strategy for: kills test `kill`,
/// errors and short writes `errors`, power cuts `power`. A stall only
/// delays, so it interrupts nothing.
pub fn interrupts(fault: &Fault) -> Option<Property> {
    match fault {
        Fault::KillBefore(_) | Fault::KillAfter(_) | Fault::KillWithin(_) => Some(Property::Kill),
        Fault::Errno(_) | Fault::Full(_) | Fault::ShortWrite(_) => Some(Property::Errors),
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
    let what = match (first.exit.success(), first.target.class) {
        (true, TargetClass::New) => return Verdict::Pass,
        (true, TargetClass::Old) => {
            "did not replace, yet the strategy exited 0: the target is still old".to_owned()
        }
        (true, class) => {
            let what = format!("the strategy exited 0 but the target is {class}");
            return Verdict::of(vec![Finding {
                detail: first.target.mix.clone(),
                ..finding(Property::Result, blame(seen), what)
            }]);
        }
        (false, TargetClass::Old) => format!(
            "did not replace: the strategy failed ({}) and the target is still old",
            first.exit
        ),
        (false, class) => format!(
            "the strategy failed ({}) and left the target {class}",
            first.exit
        ),
    };
    Verdict::of(vec![finding(Property::Result, blame(seen), what)])
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
fn self_updates(seen: &Observations) -> Vec<(fault_fs::Phase, &StrategyRun, &SelfUpdateReport)> {
    std::iter::once(&seen.first)
        .chain(&seen.retries)
        .enumerate()
        .filter_map(|(phase, run)| Some((phase as fault_fs::Phase, run, run.self_update.as_ref()?)))
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
    let endings = seen.endings();
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
    let after = match property {
        Property::Kill => "after the kill the target",
        Property::Power => "after the power cut the durable target",
        _ => "after the error the target",
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
        if property == Property::Errors && class == TargetClass::Old && run.exit.success() {
            findings.push(finding(
                property,
                Some(point.clone()),
                format!("the strategy exited 0 after the error, but the target is {class}"),
            ));
        }
    }
    Verdict::of(findings)
}

/// retry: after an interruption, running the strategy again completes it.
fn retry(seen: &Observations) -> Verdict {
    // The retry judged is the last one, made after the last interruption:
    // a fault's, or the platform's kill.
    let point = seen.endings().last().copied();
    let killed = std::iter::once(&seen.first)
        .chain(&seen.retries)
        .enumerate()
        .filter_map(|(phase, run)| {
            Some((phase as fault_fs::Phase, run.killed_by_platform.as_ref()?))
        })
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
        return Verdict::Pass;
    }
    let why = match retry.stderr.lines().last() {
        Some(line) => format!(": {line}"),
        None => String::new(),
    };
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
    for point in seen.endings() {
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
                "processes left running after the strategy exited: {}",
                done.left_running.join(", ")
            ),
        ));
    }
    Verdict::of(findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::Beat;

    fn state(class: TargetClass) -> TargetState {
        TargetState {
            class,
            ino: Some(3),
            mode: Some(0o755),
            owner: Some((0, 0)),
            xattrs: BTreeMap::from([("user.origin".into(), "vendor".into())]),
            mix: None,
            resolved: None,
        }
    }

    #[test]
    fn a_set_is_complete_only_at_one_version() {
        let classes = |exe, lib| [("canary".to_owned(), exe), ("libcanary.so".to_owned(), lib)];
        let (old, new) = (TargetClass::Old, TargetClass::New);
        let same = combine_set(state(new), &classes(new, new));
        assert_eq!((same.class, same.mix), (new, None));
        let mixed = combine_set(state(new), &classes(new, old));
        assert_eq!(mixed.class, TargetClass::Torn);
        assert_eq!(mixed.mix.as_deref(), Some("canary new, libcanary.so old"));
        assert_eq!(mixed.mode, Some(0o755), "the first file's metadata");
        let gone = combine_set(
            TargetState::missing(),
            &classes(TargetClass::Missing, TargetClass::Missing),
        );
        assert_eq!(gone.class, TargetClass::Missing);
    }

    fn ran(exit: Exit, class: TargetClass) -> StrategyRun {
        StrategyRun {
            exit,
            stderr: String::new(),
            target: state(class),
            strays: Vec::new(),
            left_running: Vec::new(),
            other_names: Vec::new(),
            self_update: None,
            killed_by_platform: None,
        }
    }

    fn point(text: &str) -> CrashPoint {
        text.parse().unwrap()
    }

    /// An undisturbed run that replaced the target and exited 0.
    fn clean() -> Observations {
        Observations {
            fired: Vec::new(),
            before: state(TargetClass::Old),
            first: ran(Exit::Code(0), TargetClass::New),
            retries: Vec::new(),
            live: Vec::new(),
            probes: Vec::new(),
            single_uid: false,
        }
    }

    /// The first run was interrupted at `at`, leaving `class`; the retry
    /// replaced the target.
    fn interrupted(at: &str, class: TargetClass) -> Observations {
        Observations {
            fired: vec![point(at)],
            first: ran(Exit::Signal(9), class),
            retries: vec![ran(Exit::Code(0), TargetClass::New)],
            ..clean()
        }
    }

    fn wanted() -> Wanted {
        Wanted {
            mode: 0o755,
            xattrs: BTreeMap::from([("user.origin".into(), "vendor".into())]),
        }
    }

    fn judge(seen: &Observations, property: Property) -> Verdict {
        evaluate(seen, &wanted()).verdict(property).clone()
    }

    fn seen_of(verdict: &Verdict) -> Vec<(Option<String>, String)> {
        verdict
            .findings()
            .iter()
            .map(|f| {
                (
                    f.crash_point.as_ref().map(|p| p.to_string()),
                    f.seen.clone(),
                )
            })
            .collect()
    }

    fn assert_not_exercised(verdict: Verdict, why: &str) {
        match verdict {
            Verdict::NotExercised { why: said } => assert!(said.contains(why), "{said}"),
            other => panic!("expected not exercised ({why}), got {other:?}"),
        }
    }

    fn canary(exit: Option<Exit>, changed: Option<Beat>) -> LiveReport {
        let beat = |lib| Beat {
            exe: 1,
            lib,
            checksum: format!("sum{lib}"),
        };
        LiveReport {
            command: "canary".into(),
            pid: 42,
            exit,
            first: Some(beat(1)),
            changed,
            beats: 5,
            killed_why: None,
        }
    }

    /// A self-updating program's run: it exited `exit` after reporting
    /// `lines`, and left the target `class`.
    fn self_run(exit: Exit, class: TargetClass, lines: &str) -> StrategyRun {
        StrategyRun {
            self_update: Some(SelfUpdateReport::parse(lines)),
            ..ran(exit, class)
        }
    }

    /// A kill by the macOS model at the in-place updater's truncate.
    fn signing_kill() -> PlatformKill {
        PlatformKill {
            op: "write#2+7".into(),
            what: "open /app/canary O_TRUNC".into(),
            reason: "code signature invalid: page of app/canary changed on disk".into(),
        }
    }

    #[test]
    fn a_self_update_report_reads_its_lines() {
        let report = SelfUpdateReport::parse(
            "start 1 1\nfailed open 26\nreplaced\nreexec\nrunning 2 1\nnoise\n",
        );
        assert_eq!(report.started, Some((1, 1)));
        assert_eq!(report.failed, ["open: Text file busy"]);
        assert!(report.replaced && report.reexec);
        assert_eq!(report.running, Some((2, 1)));
        let failed = SelfUpdateReport::parse("start 1 1\nreplaced\nreexec\nreexec-failed 8\n");
        assert_eq!(failed.reexec_failed.as_deref(), Some("Exec format error"));
    }

    #[test]
    fn live_passes_a_program_that_executed_itself_into_its_new_version() {
        let seen = Observations {
            first: self_run(
                Exit::Code(0),
                TargetClass::New,
                "start 1 1\nreplaced\nreexec\nrunning 2 1\n",
            ),
            ..clean()
        };
        assert_eq!(judge(&seen, Property::Live), Verdict::Pass);
    }

    #[test]
    fn live_fails_a_program_that_executed_itself_and_still_runs_the_old_code() {
        // ignore-errors: the write was refused, yet it went on as replaced.
        let seen = Observations {
            first: self_run(
                Exit::Code(0),
                TargetClass::Old,
                "start 1 1\nfailed open 26\nreplaced\nreexec\nrunning 1 1\n",
            ),
            ..clean()
        };
        let live = seen_of(&judge(&seen, Property::Live));
        assert_eq!(live.len(), 1, "{live:?}");
        assert!(live[0].1.contains("runs exe v1 / lib v1 code"), "{live:?}");
        assert_eq!(
            seen_of(&judge(&seen, Property::Result)),
            [(
                None,
                "did not replace, yet the strategy exited 0: the target is still old".into()
            )]
        );
    }

    #[test]
    fn live_fails_a_program_that_replaced_itself_and_cannot_start_again() {
        let seen = Observations {
            first: self_run(
                Exit::Code(126),
                TargetClass::Empty,
                "start 1 1\nreplaced\nreexec\nreexec-failed 8\n",
            ),
            ..clean()
        };
        let live = seen_of(&judge(&seen, Property::Live));
        assert!(
            live.iter()
                .any(|(_, seen)| seen.contains("could not start again: Exec format error")),
            "{live:?}"
        );
    }

    #[test]
    fn live_is_not_exercised_by_a_program_that_gave_up_truthfully() {
        let seen = Observations {
            first: self_run(
                Exit::Code(1),
                TargetClass::Old,
                "start 1 1\nfailed open 26\n",
            ),
            ..clean()
        };
        assert_not_exercised(
            judge(&seen, Property::Live),
            "gave up at open: Text file busy",
        );
    }

    #[test]
    fn a_kill_by_an_injected_fault_is_no_live_finding_but_a_crash_is() {
        let killed = Observations {
            fired: vec![point("write#1:kill-after")],
            first: self_run(Exit::Signal(9), TargetClass::Old, "start 1 1\n"),
            retries: vec![self_run(
                Exit::Code(0),
                TargetClass::New,
                "start 1 1\nreplaced\nreexec\nrunning 2 1\n",
            )],
            ..clean()
        };
        assert_eq!(judge(&killed, Property::Live), Verdict::Pass);
        let crashed = Observations {
            first: self_run(Exit::Signal(libc::SIGBUS), TargetClass::Torn, "start 1 1\n"),
            ..clean()
        };
        let live = seen_of(&judge(&crashed, Property::Live));
        assert!(live[0].1.contains("died: killed by SIGBUS"), "{live:?}");
    }

    /// The seed's chain under the macOS model, judged: the platform's kill
    /// fails result where no fault fired, and the retry after it is judged.
    #[test]
    fn a_platform_kill_fails_result_and_its_retry_is_judged() {
        let seen = Observations {
            first: StrategyRun {
                killed_by_platform: Some(signing_kill()),
                ..self_run(Exit::Signal(9), TargetClass::Empty, "start 1 1\n")
            },
            retries: vec![StrategyRun {
                stderr: "mkdir /app/update-staging: File exists\n".into(),
                ..self_run(
                    Exit::Code(1),
                    TargetClass::Empty,
                    "start 1 1\nfailed mkdir 17\n",
                )
            }],
            ..clean()
        };
        let result = seen_of(&judge(&seen, Property::Result));
        assert_eq!(result.len(), 1);
        assert_eq!(
            result[0].0, None,
            "no fault to reproduce: the platform did it"
        );
        assert!(
            result[0].1.contains("code signature invalid")
                && result[0].1.ends_with("the target is empty"),
            "{result:?}"
        );
        let retry = seen_of(&judge(&seen, Property::Retry));
        assert!(
            retry[0]
                .1
                .starts_with("after the platform killed the strategy at write#2+7")
                && retry[0]
                    .1
                    .ends_with("mkdir /app/update-staging: File exists"),
            "{retry:?}"
        );
        let live = seen_of(&judge(&seen, Property::Live));
        assert!(live[0].1.contains("was killed at write#2+7"), "{live:?}");
        // The kill property judges injected kills only.
        assert_not_exercised(judge(&seen, Property::Kill), "no kill fired");
    }

    #[test]
    fn every_property_is_judged_once() {
        let evaluation = evaluate(&clean(), &wanted());
        assert_eq!(
            evaluation.0.keys().copied().collect::<Vec<_>>(),
            Property::ALL
        );
    }

    #[test]
    fn result_passes_when_new_and_exit_0() {
        assert_eq!(judge(&clean(), Property::Result), Verdict::Pass);
    }

    #[test]
    fn result_fails_when_exit_0_leaves_old() {
        let seen = Observations {
            first: ran(Exit::Code(0), TargetClass::Old),
            ..clean()
        };
        assert_eq!(
            seen_of(&judge(&seen, Property::Result)),
            [(
                None,
                "did not replace, yet the strategy exited 0: the target is still old".into()
            )]
        );
    }

    #[test]
    fn result_says_did_not_replace_when_a_failure_leaves_old() {
        let seen = Observations {
            first: ran(Exit::Code(1), TargetClass::Old),
            ..clean()
        };
        let found = seen_of(&judge(&seen, Property::Result));
        assert!(found[0].1.starts_with("did not replace"), "{found:?}");
    }

    #[test]
    fn result_is_not_exercised_by_an_interrupted_run() {
        let seen = interrupted("write#1:kill-after", TargetClass::New);
        assert_not_exercised(
            judge(&seen, Property::Result),
            "interrupted (write#1:kill-after)",
        );
    }

    #[test]
    fn result_of_a_run_with_a_stall_is_still_judged_and_placed_at_the_stall() {
        let seen = Observations {
            fired: vec![point("rename#1:stall=10s")],
            first: ran(Exit::Code(0), TargetClass::Torn),
            ..clean()
        };
        assert_eq!(
            seen_of(&judge(&seen, Property::Result)),
            [(
                Some("rename#1:stall=10s".into()),
                "the strategy exited 0 but the target is torn".into()
            )]
        );
    }

    #[test]
    fn live_needs_a_live_process() {
        assert_not_exercised(judge(&clean(), Property::Live), "no live process");
        let seen = Observations {
            live: vec![canary(None, None)],
            ..clean()
        };
        assert_eq!(judge(&seen, Property::Live), Verdict::Pass);
    }

    #[test]
    fn live_fails_when_the_canary_dies_or_its_code_changes() {
        let died = Observations {
            live: vec![canary(Some(Exit::Signal(7)), None)],
            ..clean()
        };
        let found = seen_of(&judge(&died, Property::Live));
        assert!(found[0].1.contains("died: killed by SIGBUS"), "{found:?}");
        let changed = Observations {
            live: vec![
                canary(None, None),
                canary(
                    None,
                    Some(Beat {
                        exe: 1,
                        lib: 2,
                        checksum: "other".into(),
                    }),
                ),
            ],
            ..clean()
        };
        let found = seen_of(&judge(&changed, Property::Live));
        assert_eq!(found.len(), 1, "only the harmed process: {found:?}");
        assert!(found[0].1.contains("exe v1 / lib v2"), "{found:?}");
    }

    fn probe(at: &str, seen: &str, ok: bool) -> ProbeObservation {
        ProbeObservation {
            at: point(at),
            op: "#7 write /app/libcanary.so".into(),
            probe: ProbeKind::Read,
            seen: seen.into(),
            ok,
            blocked: false,
            target: TargetState::missing(),
        }
    }

    #[test]
    fn visible_needs_a_probe() {
        assert_not_exercised(judge(&clean(), Property::Visible), "no op was stalled");
        let seen = Observations {
            probes: vec![probe("rename#1:stall=10s", "read: old", true)],
            ..clean()
        };
        assert_eq!(judge(&seen, Property::Visible), Verdict::Pass);
    }

    #[test]
    fn visible_names_everything_users_saw_at_each_stall_once() {
        let seen = Observations {
            probes: vec![
                probe("write#2:stall=10s", "read: prefix-of-new", false),
                probe(
                    "write#2:stall=10s",
                    "load: failed (killed by SIGBUS)",
                    false,
                ),
                probe("write#3:stall=10s", "read: old", true),
                probe("write#3:stall=10s", "load: failed (exit 3)", false),
            ],
            ..clean()
        };
        assert_eq!(
            seen_of(&judge(&seen, Property::Visible)),
            [
                (
                    Some("write#2:stall=10s".into()),
                    "a user saw read: prefix-of-new, load: failed (killed by SIGBUS)".into()
                ),
                (
                    Some("write#3:stall=10s".into()),
                    "a user saw load: failed (exit 3)".into()
                ),
            ]
        );
    }

    #[test]
    fn kill_needs_a_kill_and_a_complete_target_after_it() {
        assert_not_exercised(judge(&clean(), Property::Kill), "no kill fired");
        // An error is no kill: kill stays unexercised.
        let errored = interrupted("write#1:errno=EIO", TargetClass::Old);
        assert_not_exercised(judge(&errored, Property::Kill), "no kill fired");
        for class in [TargetClass::Old, TargetClass::New] {
            let seen = interrupted("write#1:kill-after", class);
            assert_eq!(judge(&seen, Property::Kill), Verdict::Pass, "{class}");
        }
        let seen = interrupted("write#3:kill-after", TargetClass::PrefixOfNew);
        assert_eq!(
            seen_of(&judge(&seen, Property::Kill)),
            [(
                Some("write#3:kill-after".into()),
                "after the kill the target is prefix-of-new".into()
            )]
        );
        let seen = interrupted("unlink#1:kill-before=TERM", TargetClass::Missing);
        assert_eq!(seen_of(&judge(&seen, Property::Kill)).len(), 1);
    }

    #[test]
    fn errors_needs_a_complete_target_and_a_truthful_exit() {
        assert_not_exercised(judge(&clean(), Property::Errors), "no injected error");
        let failed_old = Observations {
            first: ran(Exit::Code(1), TargetClass::Old),
            ..interrupted("write#1:errno=ENOSPC", TargetClass::Old)
        };
        assert_eq!(judge(&failed_old, Property::Errors), Verdict::Pass);
        let lied = Observations {
            first: ran(Exit::Code(0), TargetClass::Old),
            ..interrupted("write#1:errno=EIO", TargetClass::Old)
        };
        let found = seen_of(&judge(&lied, Property::Errors));
        assert_eq!(found.len(), 1);
        assert!(found[0].1.contains("exited 0 after the error"), "{found:?}");
        let torn = interrupted("write#2:short-write=50%", TargetClass::Torn);
        assert_eq!(
            seen_of(&judge(&torn, Property::Errors)),
            [(
                Some("write#2:short-write=50%".into()),
                "after the error the target is torn".into()
            )]
        );
    }

    #[test]
    fn power_judges_the_durable_target() {
        assert_not_exercised(judge(&clean(), Property::Power), "no power cut");
        let kept = interrupted("rename#1:power-cut=strict", TargetClass::Old);
        assert_eq!(judge(&kept, Property::Power), Verdict::Pass);
        let empty = interrupted("rename#1:power-cut=metadata-ordered", TargetClass::Empty);
        assert_eq!(
            seen_of(&judge(&empty, Property::Power)),
            [(
                Some("rename#1:power-cut=metadata-ordered".into()),
                "after the power cut the durable target is empty".into()
            )]
        );
        // A failed fsync, then the cut after the run: power judges the disk;
        // errors says why it did not.
        let ignored = interrupted("fsync#1:errno=EIO+power-cut=strict", TargetClass::Empty);
        assert_eq!(
            seen_of(&judge(&ignored, Property::Power)),
            [(
                Some("fsync#1:errno=EIO+power-cut=strict".into()),
                "after the power cut the durable target is empty".into()
            )]
        );
        assert_not_exercised(judge(&ignored, Property::Errors), "judged under power");
        assert_not_exercised(judge(&ignored, Property::Kill), "no kill");
    }

    #[test]
    fn retry_needs_an_interruption_and_a_retry() {
        assert_not_exercised(judge(&clean(), Property::Retry), "nothing interrupted");
        // A stall interrupts nothing.
        let stalled = Observations {
            fired: vec![point("rename#1:stall=10s")],
            ..clean()
        };
        assert_not_exercised(judge(&stalled, Property::Retry), "nothing interrupted");
        let no_retry = Observations {
            retries: Vec::new(),
            ..interrupted("write#1:kill-after", TargetClass::Torn)
        };
        assert_not_exercised(judge(&no_retry, Property::Retry), "no retry was made");
        let seen = interrupted("write#1:kill-after", TargetClass::Torn);
        assert_eq!(judge(&seen, Property::Retry), Verdict::Pass);
    }

    #[test]
    fn a_fault_in_a_retry_is_judged_by_what_that_retry_left() {
        // Killed with the target complete; the retry, killed in turn after
        // removing the target, leaves none; a second retry puts new there.
        let seen = Observations {
            fired: vec![
                point("fsync#1:kill-after"),
                point("retry:unlink#1:kill-after"),
            ],
            first: ran(Exit::Signal(9), TargetClass::Old),
            retries: vec![
                ran(Exit::Signal(9), TargetClass::Missing),
                ran(Exit::Code(0), TargetClass::New),
            ],
            ..clean()
        };
        assert_eq!(
            seen_of(&judge(&seen, Property::Kill)),
            [(
                Some("retry:unlink#1:kill-after".into()),
                "after the kill the target is missing".into()
            )]
        );
        assert_eq!(judge(&seen, Property::Retry), Verdict::Pass);
        // The last retry is the one judged: blamed on the fault before it.
        let mut stuck = seen.clone();
        stuck.retries[1] = ran(Exit::Code(1), TargetClass::Missing);
        assert_eq!(
            seen_of(&judge(&stuck, Property::Retry)),
            [(
                Some("retry:unlink#1:kill-after".into()),
                "the retry ended (exit 1) and left the target missing".into()
            )]
        );
        // An error, then a kill in the rollback it started: what the run
        // left is the kill's doing.
        let rollback = Observations {
            fired: vec![point("rename#1:errno=EIO"), point("unlink#1:kill-after")],
            first: ran(Exit::Signal(9), TargetClass::Missing),
            ..interrupted("rename#1:errno=EIO", TargetClass::Missing)
        };
        assert_eq!(
            seen_of(&judge(&rollback, Property::Kill)),
            [(
                Some("unlink#1:kill-after".into()),
                "after the kill the target is missing".into()
            )]
        );
        assert_not_exercised(
            judge(&rollback, Property::Errors),
            "the run went on past rename#1:errno=EIO and unlink#1:kill-after ended it: judged under kill",
        );
    }

    #[test]
    fn retry_fails_with_the_last_line_it_printed() {
        let seen = Observations {
            retries: vec![StrategyRun {
                stderr: "staging\nmkdir: cannot create directory 'stage': File exists".into(),
                ..ran(Exit::Code(1), TargetClass::Empty)
            }],
            ..interrupted("write#1:kill-after", TargetClass::Empty)
        };
        assert_eq!(
            seen_of(&judge(&seen, Property::Retry)),
            [(
                Some("write#1:kill-after".into()),
                "the retry ended (exit 1) and left the target empty: mkdir: cannot create directory 'stage': File exists".into()
            )]
        );
    }

    #[test]
    fn meta_needs_a_finished_replacement() {
        let unfinished = Observations {
            first: ran(Exit::Code(1), TargetClass::Old),
            ..clean()
        };
        assert_not_exercised(
            judge(&unfinished, Property::Meta),
            "no run ended with the new target",
        );
        // An interrupted run whose retry finished is judged on the retry.
        let mut retried = interrupted("write#1:kill-after", TargetClass::Torn);
        if let Some(retry) = retried.retries.first_mut() {
            retry.target.mode = Some(0o600);
        }
        assert_eq!(
            seen_of(&judge(&retried, Property::Meta)),
            [(
                Some("write#1:kill-after".into()),
                "mode is 0600, was 0755".into()
            )]
        );
    }

    #[test]
    fn meta_judges_the_state_an_interruption_left() {
        // Killed between the rename and the chmod: new bytes, mode 0600, no
        // xattr; the retry put them right.
        let mut chmod_later = interrupted("rename#1:kill-after", TargetClass::New);
        chmod_later.first.target.mode = Some(0o600);
        chmod_later.first.target.xattrs.clear();
        assert_eq!(
            seen_of(&judge(&chmod_later, Property::Meta)),
            [(
                Some("rename#1:kill-after".into()),
                "the target has the new bytes but mode is 0600, was 0755, \
                 xattrs lost or changed: user.origin"
                    .into()
            )]
        );
        // Old bytes with a changed mode are no new target: not meta's to judge.
        let mut old = interrupted("setattr#1:kill-after", TargetClass::Old);
        old.first.target.mode = Some(0o600);
        assert_eq!(judge(&old, Property::Meta), Verdict::Pass);
        // What the end gets wrong too is said once, of the end.
        if let Some(retry) = chmod_later.retries.first_mut() {
            retry.target.xattrs.clear();
        }
        assert_eq!(
            seen_of(&judge(&chmod_later, Property::Meta)),
            [
                (
                    Some("rename#1:kill-after".into()),
                    "the target has the new bytes but mode is 0600, was 0755".into()
                ),
                (
                    Some("rename#1:kill-after".into()),
                    "xattrs lost or changed: user.origin".into()
                )
            ]
        );
        // A wrong state that nothing finished after is still a finding.
        chmod_later.retries = vec![ran(Exit::Code(1), TargetClass::New)];
        assert_eq!(seen_of(&judge(&chmod_later, Property::Meta)).len(), 1);
    }

    #[test]
    fn meta_judges_the_target_users_met_at_a_stall() {
        // Stalled between the rename and the chmod: the probes read new
        // bytes, and a user listing the target met mode 0600.
        let mut at_stall = probe("setattr#1:stall=10s", "read: new", true);
        at_stall.target = state(TargetClass::New);
        at_stall.target.mode = Some(0o600);
        let seen = Observations {
            fired: vec![point("setattr#1:stall=10s")],
            probes: vec![at_stall.clone(), at_stall],
            ..clean()
        };
        assert_eq!(
            seen_of(&judge(&seen, Property::Meta)),
            [(
                Some("setattr#1:stall=10s".into()),
                "the target has the new bytes but mode is 0600, was 0755".into()
            )]
        );
        // Old bytes at the stall: nothing new was met yet.
        let mut before = probe("rename#1:stall=10s", "read: old", true);
        before.target = state(TargetClass::Old);
        before.target.mode = Some(0o600);
        let seen = Observations {
            fired: vec![point("rename#1:stall=10s")],
            probes: vec![before],
            ..clean()
        };
        assert_eq!(judge(&seen, Property::Meta), Verdict::Pass);
    }

    #[test]
    fn meta_fails_on_mode_owner_or_xattrs() {
        assert_eq!(judge(&clean(), Property::Meta), Verdict::Pass);
        let mut lost = clean();
        lost.first.target.mode = Some(0o644);
        lost.first.target.owner = Some((1000, 1000));
        lost.first.target.xattrs.clear();
        assert_eq!(
            seen_of(&judge(&lost, Property::Meta)),
            [
                (None, "mode is 0644, was 0755".into()),
                (None, "owner is 1000:1000, was 0:0".into()),
                (None, "xattrs lost or changed: user.origin".into()),
            ]
        );
        // Where one uid is mapped, the owner is not judged (the report says
        // that part was not exercised); the rest still is.
        lost.single_uid = true;
        assert_eq!(
            seen_of(&judge(&lost, Property::Meta)),
            [
                (None, "mode is 0644, was 0755".into()),
                (None, "xattrs lost or changed: user.origin".into()),
            ]
        );
    }

    #[test]
    fn tidy_fails_on_strays_of_the_finishing_run() {
        assert_eq!(judge(&clean(), Property::Tidy), Verdict::Pass);
        let mut seen = interrupted("create#1:kill-after", TargetClass::Old);
        // Strays of the interrupted run that the retry cleaned up are fine.
        seen.first.strays = vec!["/app/.tmp.Xy12Ab".into()];
        assert_eq!(judge(&seen, Property::Tidy), Verdict::Pass);
        if let Some(retry) = seen.retries.first_mut() {
            retry.strays = vec!["/app/.tmp.Xy12Ab".into()];
        }
        assert_eq!(
            seen_of(&judge(&seen, Property::Tidy)),
            [(
                Some("create#1:kill-after".into()),
                "stray files left: /app/.tmp.Xy12Ab".into()
            )]
        );
        let unfinished = Observations {
            first: ran(Exit::Signal(9), TargetClass::Torn),
            ..clean()
        };
        assert_not_exercised(judge(&unfinished, Property::Tidy), "no run ended");
        let mut daemon = clean();
        daemon.first.left_running = vec!["sleep (pid 7)".into()];
        assert_eq!(
            seen_of(&judge(&daemon, Property::Tidy)),
            [(
                None,
                "processes left running after the strategy exited: sleep (pid 7)".into()
            )]
        );
    }

    #[test]
    fn a_not_exercised_property_has_no_findings_and_is_not_a_pass() {
        let verdict = judge(&clean(), Property::Kill);
        assert!(!verdict.exercised());
        assert!(verdict.findings().is_empty());
        assert_ne!(verdict, Verdict::Pass);
        let evaluation = evaluate(&clean(), &wanted());
        let exercised: Vec<Property> = evaluation.exercised().collect();
        assert_eq!(
            exercised,
            [Property::Result, Property::Meta, Property::Tidy],
            "an undisturbed run with no live process or probe"
        );
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_text(512), "512 bytes");
        assert_eq!(size_text(64 * 1024), "64 KiB");
        assert_eq!(size_text(1536 * 1024), "1.5 MiB");
    }

    #[test]
    fn a_mix_names_its_runs() {
        let old = vec![1u8; 8192];
        let new = vec![2u8; 6144];
        // Written back in part: new, then old.
        let mut torn = new[..4096].to_vec();
        torn.extend_from_slice(&old[4096..]);
        assert_eq!(describe_mix(&torn, &old, &new), "first 4 KiB new, rest old");
        // A shorter new written over the old in place: a stale tail.
        let mut stale = new.clone();
        stale.extend_from_slice(&old[6144..]);
        assert_eq!(
            describe_mix(&stale, &old, &new),
            "first 6 KiB new, rest old"
        );
        // A hole in the middle.
        let mut holed = new[..2048].to_vec();
        holed.extend_from_slice(&[0; 2048]);
        holed.extend_from_slice(&old[4096..]);
        assert_eq!(
            describe_mix(&holed, &old, &new),
            "new to 2 KiB, then zeros to 4 KiB, then old to 8 KiB"
        );
    }

    #[test]
    fn classes() {
        let (old, new) = (b"old-bytes".as_slice(), b"new-bytes!".as_slice());
        assert_eq!(classify(None, old, new), TargetClass::Missing);
        assert_eq!(classify(Some(b""), old, new), TargetClass::Empty);
        assert_eq!(classify(Some(new), old, new), TargetClass::New);
        assert_eq!(classify(Some(old), old, new), TargetClass::Old);
        assert_eq!(classify(Some(b"new-b"), old, new), TargetClass::PrefixOfNew);
        assert_eq!(classify(Some(b"old-"), old, new), TargetClass::PrefixOfOld);
        assert_eq!(
            classify(Some(b"new-bytes"), old, b"new-bytes"),
            TargetClass::New
        );
        assert_eq!(classify(Some(b"nld-bytes"), old, new), TargetClass::Torn);
    }
}
