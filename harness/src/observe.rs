//! What a run saw, as plain data: how the strategy and its retries ended
//! and what they left ([`StrategyRun`], [`TargetState`]), what the live
//! processes and the probes went through, and the faults that fired. The
//! one input of the judge ([`crate::judge::evaluate`]), built by the runner
//! and read by the reports; nothing here starts a process or reads a tree.

use std::collections::BTreeMap;
use std::fmt;

use fault_fs::{CrashPoint, OpName, OpRecord, Phase};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "how", content = "value")]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Still running at its deadline (then killed).
    Timeout,
}

impl Exit {
    /// How a process that ended with `status` ended.
    pub fn of(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            _ => Exit::Code(-1),
        }
    }

    /// Exit code 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

/// A signal's name (`SIGKILL`), or its number.
pub fn signal_name(signal: i32) -> String {
    Signal::try_from(signal)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| signal.to_string())
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A shell reports a child killed by signal N as 128 + N.
            Exit::Code(code) if (129..160).contains(code) => {
                write!(f, "exit {code} (= 128 + {})", signal_name(code - 128))
            }
            Exit::Code(code) => write!(f, "exit {code}"),
            Exit::Signal(signal) => write!(f, "killed by {}", signal_name(*signal)),
            Exit::Timeout => f.write_str("timed out"),
        }
    }
}

/// One heartbeat of the canary: versions it runs and the checksum of its mappings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    /// Version compiled into the executable's code.
    pub exe: i32,
    /// Version the library's code answers: a C `int`, so whatever a torn
    /// library's code returns, negative too, is a beat that says so.
    pub lib: i32,
    /// Checksum of every file-backed mapping of the canary files.
    pub checksum: String,
}

/// What a live process went through during a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveReport {
    /// The command line.
    pub command: String,
    /// Its pid.
    pub pid: u32,
    /// How it ended, if it did (it should not).
    pub exit: Option<Exit>,
    /// Its first heartbeat (the baseline).
    pub first: Option<Beat>,
    /// The first heartbeat that differed from the baseline.
    pub changed: Option<Beat>,
    /// Heartbeats received.
    pub beats: u64,
    /// Why the platform's model killed it (macOS code signing), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed_why: Option<String>,
}

impl LiveReport {
    /// Alive, and its mappings and code never changed.
    pub fn unharmed(&self) -> bool {
        self.exit.is_none() && self.changed.is_none()
    }

    /// A sentence saying what happened to it.
    pub fn describe(&self) -> String {
        let described = self.describe_ending();
        match &self.killed_why {
            Some(why) => format!("{described} ({why})"),
            None => described,
        }
    }

    fn describe_ending(&self) -> String {
        if self.first.is_none() {
            return match &self.exit {
                Some(exit) => format!(
                    "live process `{}` (pid {}) ended: {exit}",
                    self.command, self.pid
                ),
                None => format!("live process `{}` (pid {}) ran on", self.command, self.pid),
            };
        }
        match (&self.exit, &self.changed) {
            (Some(exit), _) => format!("live canary (pid {}) died: {exit}", self.pid),
            (None, Some(changed)) => {
                let first = self.first.as_ref();
                let what = if first.is_some_and(|f| f.lib != changed.lib || f.exe != changed.exe) {
                    format!("now runs exe v{} / lib v{} code", changed.exe, changed.lib)
                } else {
                    "the bytes it maps changed under it".to_owned()
                };
                format!("live canary (pid {}) kept running but {what}", self.pid)
            }
            (None, None) => format!(
                "live canary (pid {}) ran on unharmed ({} heartbeats)",
                self.pid, self.beats
            ),
        }
    }
}

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

/// The target as found in the tree: class, inode and metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<String>,
    /// The file a symlinked target resolves to (from the mount's root),
    /// when it is not the target path itself. Mode and xattrs are its.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// The last line a run printed to stderr that is not blank: why it
/// failed, in its own words.
pub fn last_words(stderr: &str) -> Option<&str> {
    stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
}

/// One run of the strategy and what it left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyRun {
    /// How it ended.
    pub exit: Exit,
    /// The last lines of its stderr.
    pub stderr: String,
    /// The target afterwards.
    pub target: TargetState,
    /// Paths that were not there before (outside the staging directory).
    pub strays: Vec<String>,
    /// Processes it started that were still running at the linger bound
    /// (`comm (pid N)`); they were killed then.
    pub left_running: Vec<String>,
    /// How long after its first process the last process it left ended,
    /// when one ran on after it and all ended on their own: a measurement
    /// for the JSON, never part of a verdict (a process killed with the
    /// first may be reaped a moment after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_after: Option<std::time::Duration>,
    /// The old target's other names (hard links), as they are afterwards:
    /// an in-place writer changes them with the target, a writer of a new
    /// inode does not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_names: Vec<OtherName>,
    /// What a self-updating program said of its update, where the
    /// strategy is one (`strategy.self_update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_update: Option<SelfUpdateReport>,
    /// The platform model killed the strategy: no fault of the plan did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed_by_platform: Option<PlatformKill>,
    /// Where an injected error failed an fsync or fdatasync of this run:
    /// the target a power cut (metadata-ordered, nothing written back)
    /// would leave once the run ended. That fsync's data never reaches
    /// the disk, even if a retried fsync succeeds (docs/PERSISTENCE.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable_after_sync_error: Option<TargetState>,
    /// The application's other files as the run left them, where they are
    /// not as they were: the program beside the target missing, changed
    /// or of another mode, the target's directory no longer open to all
    /// (`app/canary: missing`). The strategy had no reason to touch them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
}

/// A kill by the platform's model (macOS code signing), not by the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformKill {
    /// The op that changed the bytes (`write#2+7`, as a `--fault` names it).
    pub op: OpName,
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfUpdateReport {
    /// The versions (executable, library) of the code it started with.
    pub started: Option<(u32, u32)>,
    /// The steps that failed, with why (`open: Text file busy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// It says it replaced its file.
    pub replaced: bool,
    /// It executed itself again.
    pub reexec: bool,
    /// Why that exec failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeObservation {
    /// The stall it looked during.
    pub at: CrashPoint,
    /// The stalled op.
    pub op: OpRecord,
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

/// Everything one run observed: the only input of [`crate::judge::evaluate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observations {
    /// The faults that fired, in the order they fired.
    pub fired: Vec<CrashPoint>,
    /// The target before the run.
    pub before: TargetState,
    /// The first run.
    pub first: StrategyRun,
    /// The retries, in order: the first made after the first run was
    /// interrupted, each next one after a fault of its own phase
    /// ([`Phase`]) interrupted the one before. Empty when none
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
    /// What a run saw once its first strategy run ended, `before` it and
    /// `first`: the faults that fired, the retries, the live processes and
    /// the probes are added as the run goes on.
    pub fn new(before: TargetState, first: StrategyRun, single_uid: bool) -> Observations {
        Observations {
            fired: Vec::new(),
            before,
            first,
            retries: Vec::new(),
            live: Vec::new(),
            probes: Vec::new(),
            single_uid,
        }
    }

    /// The run of `phase`: the first run (0) or a retry.
    pub fn run_of(&self, phase: Phase) -> Option<&StrategyRun> {
        match phase {
            0 => Some(&self.first),
            n => self.retries.get(n as usize - 1),
        }
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

/// A probe: what a user starting the program at a stalled op would do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// Read the target and classify it.
    Read,
    /// Execute the target (executables).
    Exec,
    /// Load the target with dlopen (libraries).
    Load,
}

impl ProbeKind {
    /// The name used in scenario files and findings.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Read => "read",
            ProbeKind::Exec => "exec",
            ProbeKind::Load => "load",
        }
    }
}
