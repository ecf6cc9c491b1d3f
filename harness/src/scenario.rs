//! Scenario files: what to replace, how, under which faults, and what to
//! expect, read into a [`Scenario`] of a [`Target`] and a [`Strategy`]. The
//! format, with every key and its default, is docs/SCENARIOS.md; every
//! error names the file, the line, the key and the fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::canary;
use crate::observe::ProbeKind;
use crate::outcome::Property;
use crate::self_update::SelfUpdate;
use crate::size::parse_size;

/// Directory in the mount that holds the target and its siblings.
pub const APP_DIR: &str = "app";
/// Directory in the mount where NEW is staged when `new_inside` is set.
pub const STAGING_DIR: &str = "staging";
/// Directory in the tree that the strategy's TMPDIR shows: its downloads and
/// staging are ops of the run like any other, reset with the tree.
pub const TMP_DIR: &str = "tmp";
/// Directory (at the mount's root) of the equal copy of the target that,
/// under the macOS model, the canary runs as its own executable: Linux
/// refuses writes to a running executable (ETXTBSY), macOS does not, so
/// the model lets them through to the target and kills the process that
/// runs it ([`fault_fs::CodeSigning::runs_as`]).
pub const IMAGE_DIR: &str = "image";

/// Which kind of file the target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// An executable; the live canary runs it.
    Exe,
    /// A shared library; the live canary maps it.
    #[default]
    Lib,
    /// A set of files that must change together: the canary executable
    /// (the target) and its library, whose versions refuse to run mixed.
    Set,
}

impl TargetKind {
    /// The name used in scenario files, flags and reproductions.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Exe => "exe",
            TargetKind::Lib => "lib",
            TargetKind::Set => "set",
        }
    }
}

impl std::str::FromStr for TargetKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [TargetKind::Exe, TargetKind::Lib, TargetKind::Set]
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| format!("unknown target kind `{s}` (hint: exe, lib or set)"))
    }
}

/// The platform whose kernel a run models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// This machine's kernel, as it is.
    #[default]
    Linux,
    /// Linux, plus a model of macOS code signing
    /// ([`fault_fs::CodeSigning`]): a process whose executable or mapped
    /// library changes bytes on disk is killed with SIGKILL, and writes to
    /// a running executable are let through (the canary runs from an equal
    /// copy that stands for the target).
    Macos,
}

impl Platform {
    /// The name used in scenario files, flags and reproductions.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Macos => "macos",
        }
    }
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Platform::Linux, Platform::Macos]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown platform `{s}` (hint: linux or macos)"))
    }
}

/// Expected outcome of one property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    /// The property holds.
    Pass,
    /// The property has findings.
    Fail,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    description: Option<String>,
    #[serde(default)]
    target: TargetFile,
    strategy: StrategyFile,
    #[serde(default = "yes")]
    live: bool,
    #[serde(default)]
    live_commands: Vec<String>,
    #[serde(default)]
    faults: Vec<String>,
    #[serde(default)]
    probes: Vec<ProbeKind>,
    #[serde(default)]
    sigterm: bool,
    #[serde(default)]
    expect: BTreeMap<Property, Expectation>,
    #[serde(default)]
    platform: Platform,
    #[serde(default)]
    expect_macos: BTreeMap<Property, Expectation>,
}

fn yes() -> bool {
    true
}

/// `UID:GID`, numbers both.
fn parse_owner(text: &str) -> Option<(u32, u32)> {
    let (uid, gid) = text.split_once(':')?;
    Some((uid.trim().parse().ok()?, gid.trim().parse().ok()?))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    #[serde(default)]
    kind: TargetKind,
    size: Option<String>,
    new_size: Option<String>,
    mode: Option<String>,
    owner: Option<String>,
    #[serde(default)]
    xattrs: BTreeMap<String, String>,
    old: Option<PathBuf>,
    new: Option<PathBuf>,
    #[serde(default)]
    new_inside: bool,
    #[serde(default)]
    symlink: bool,
    #[serde(default)]
    links: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategyFile {
    command: Option<String>,
    self_update: Option<String>,
    timeout: Option<String>,
    linger: Option<String>,
}

/// Where the old and new versions come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Versions {
    /// The built-in canary, versions 1 and 2.
    Canary {
        /// Size of the old one in bytes.
        size: u64,
        /// Size of the new one: different by default, so that a strategy
        /// that writes the new bytes over the old without truncating (dd
        /// conv=notrunc, pwrite) leaves a stale tail that shows.
        new_size: u64,
    },
    /// User files.
    Files {
        /// The old version.
        old: PathBuf,
        /// The new version.
        new: PathBuf,
    },
}

/// What is replaced: the target and its two versions, as a user has them.
#[derive(Clone, Debug)]
pub struct Target {
    /// Executable, library or a set of both.
    pub kind: TargetKind,
    /// Old and new.
    pub versions: Versions,
    /// Mode of the old target (and expected of the new).
    pub mode: u32,
    /// Owner of the old target, uid and gid (and expected of the new);
    /// root's by default. Another needs a run as root: rootless runs map
    /// one uid ([`crate::RunError::OwnerRootless`]).
    pub owner: (u32, u32),
    /// Extended attributes of the old target (and expected of the new).
    pub xattrs: BTreeMap<String, String>,
    /// Stage NEW inside the mount rather than outside.
    pub new_inside: bool,
    /// The target is a symlink to a versioned file in its directory
    /// (`libcanary.so -> libcanary.so.1`); NEW is named as the next version
    /// (`libcanary.so.2`). Every property judges the file the link resolves to.
    pub symlink: bool,
    /// Other names (hard links) of the old target, paths from the mount's
    /// root; their directories are made as needed.
    pub links: Vec<String>,
}

/// How the target is replaced: the program under test.
#[derive(Clone, Debug)]
pub struct Strategy {
    /// The command, run by `sh -c`.
    pub command: String,
    /// Its working directory (the scenario file's directory).
    pub workdir: PathBuf,
    /// How long one run of it may take, its first process's part: the
    /// time until the process it starts ends.
    pub timeout: Duration,
    /// How long what its first process left running (a helper that
    /// finishes the work once its parent is gone) may go on after it; what
    /// still runs then is killed, a `tidy` finding.
    pub linger: Duration,
    /// The command is the built-in self-updating program, so.
    pub self_update: Option<SelfUpdate>,
}

/// A strategy's timeout when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long what a strategy left running may go on after it, when not said.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(10);

/// A value given apart from the scenario file (a flag, or drawn by fuzz):
/// a reproduction names it so that it reruns the same scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Override {
    /// The canary's size, NEW's defaulted from it (`--size`).
    Size(u64),
    /// The new canary's size (`--new-size`).
    NewSize(u64),
    /// The platform (`--platform`).
    Platform(Platform),
    /// The strategy's timeout (`--timeout`).
    Timeout(Duration),
    /// How long what the strategy left may go on (`--linger`).
    Linger(Duration),
}

/// A parsed, validated scenario: a [`Target`], a [`Strategy`], the live
/// processes and probes that watch, and what to expect.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Short name (the file stem, or `check` for ad-hoc runs).
    pub name: String,
    /// What the scenario shows.
    pub description: String,
    /// The file it came from, if any (reproduction commands name it).
    pub source: Option<PathBuf>,
    /// What is replaced.
    pub target: Target,
    /// How.
    pub strategy: Strategy,
    /// Start a live canary.
    pub live: bool,
    /// Other live processes: shell commands started in the target's
    /// directory inside the mount before the strategy runs; each must still
    /// be running at the end.
    pub live_commands: Vec<String>,
    /// Fault specs for single runs.
    pub faults: Vec<String>,
    /// Probes to run at stalled ops.
    pub probes: Vec<ProbeKind>,
    /// The explorer also kills with SIGTERM (for strategies that clean up on it).
    pub sigterm: bool,
    /// The platform whose kernel the runs model.
    pub platform: Platform,
    /// Expected verdicts under each platform (`[expect]` is Linux's,
    /// `[expect_macos]` the macOS model's); [`Scenario::expect`] gives the
    /// ones in force.
    pub expect_on: BTreeMap<Platform, BTreeMap<Property, Expectation>>,
    /// What was given apart from the file, in the order given.
    pub overrides: Vec<Override>,
    /// How a user reruns this scenario when not with swapfault's own
    /// command: a Rust test's `cargo test … -- --exact NAME`, which runs
    /// the faults in `SWAPFAULT_FAULT` instead of exploring. Reproductions
    /// name it ([`crate::report::reproduce::reproduction`]).
    pub rerun: Option<String>,
}

/// What is wrong with an ad-hoc scenario ([`Scenario::from_ad_hoc`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CanaryProblem {
    /// The old canary's size is out of range (why, in words).
    Size(String),
    /// The new canary's size is out of range.
    NewSize(String),
    /// A set's files are plain files: a set cannot be symlinked.
    SymlinkedSet,
    /// A set is the canary's: it cannot be the user's files.
    FilesSet,
    /// Sizes are the canary's: with the user's files they are the files'.
    FilesSized,
    /// The user's old (`true`) or new file is not a file.
    NotAFile {
        /// Whether it is the old file.
        old: bool,
        /// The path given.
        path: PathBuf,
    },
}

/// An ad-hoc scenario as a user gives it to `swapfault check` or the
/// library: what to replace (the canary, or the user's own old and new
/// files) and the live processes besides the canary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdHoc {
    /// What the target is.
    pub kind: TargetKind,
    /// The canary's size ([`canary::DEFAULT_SIZE`] when not given).
    pub size: Option<u64>,
    /// The new canary's size ([`default_new_size`] when not given).
    pub new_size: Option<u64>,
    /// The target is a symlink to a versioned file beside it.
    pub symlinked: bool,
    /// The user's old and new files instead of the canary.
    pub files: Option<(PathBuf, PathBuf)>,
    /// Live processes besides the canary (`live_commands`).
    pub live_commands: Vec<String>,
}

/// A scenario that cannot be used. Messages name the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source} (hint: check the path)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax or shape error; the message has line, column and key.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A value that parses but makes no sense.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key path, e.g. `target.size`.
        key: String,
        /// What is wrong, with the fix.
        message: String,
    },
}

/// `line L, column C: key K: message` from a TOML error, on one line. The
/// key path is the enclosing `[table]` plus the key at the error.
pub fn one_line_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().replace('\n', " ");
    let Some(span) = err.span() else {
        return message;
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let key = text[span.clone()].trim();
    let table = before.lines().rev().find_map(|l| {
        let l = l.trim();
        l.starts_with('[')
            .then(|| l.trim_matches(|c| c == '[' || c == ']').to_owned())
    });
    let is_key = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.');
    match (table, is_key) {
        (Some(table), true) => {
            format!("line {line}, column {column}: key `{table}.{key}`: {message}")
        }
        (None, true) => format!("line {line}, column {column}: key `{key}`: {message}"),
        _ => format!("line {line}, column {column}: {message}"),
    }
}

/// Why a new size cannot be given for the user's files.
const NEW_SIZE_OF_FILES: &str =
    "is for the canary; with `old` and `new` files their sizes are the files'";

/// The new canary's size when none is given: 7/8 of the old one's (so a
/// stale tail shows), but not below the smallest canary.
pub fn default_new_size(size: u64) -> u64 {
    (size - size / 8).max(canary::SIZE_RANGE.0.min(size))
}

/// Whether a canary size is one that can be built; the error says the range.
pub fn check_size(size: u64) -> Result<(), String> {
    if (canary::SIZE_RANGE.0..=canary::SIZE_RANGE.1).contains(&size) {
        Ok(())
    } else {
        Err(format!(
            "{size} bytes is outside 64KiB..64MiB (hint: pick a size in that range)"
        ))
    }
}

/// The xattr an ad-hoc run's old target carries, so that a strategy that
/// loses xattrs (mv of a fresh file, install) shows it.
pub const AD_HOC_XATTR: (&str, &str) = ("user.origin", "swapfault-old");

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn from_file(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses scenario text; `path` names it in errors and anchors relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ScenarioError> {
        let file: ScenarioFile = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_owned(),
            message: one_line_toml_error(text, &e),
        })?;
        let invalid = |key: &str, message: String| ScenarioError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let workdir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
        let target = file.target;
        let versions = match (target.old, target.new) {
            (Some(old), Some(new)) => {
                let (old, new) = (workdir.join(old), workdir.join(new));
                for (key, file) in [("target.old", &old), ("target.new", &new)] {
                    if !file.is_file() {
                        return Err(invalid(
                            key,
                            format!(
                                "{} is not a file (hint: paths are relative to the scenario file)",
                                file.display()
                            ),
                        ));
                    }
                }
                Versions::Files { old, new }
            }
            (None, None) => {
                let size = match target.size {
                    Some(size) => parse_size(&size).map_err(|m| invalid("target.size", m))?,
                    None => canary::DEFAULT_SIZE,
                };
                let new_size = match &target.new_size {
                    Some(new_size) => {
                        parse_size(new_size).map_err(|m| invalid("target.new_size", m))?
                    }
                    None => default_new_size(size),
                };
                for (key, size) in [("target.size", size), ("target.new_size", new_size)] {
                    check_size(size).map_err(|m| invalid(key, m))?;
                }
                Versions::Canary { size, new_size }
            }
            _ => {
                return Err(invalid(
                    "target",
                    "give both `old` and `new`, or neither (the canary)".into(),
                ))
            }
        };
        if target.kind == TargetKind::Set && !matches!(versions, Versions::Canary { .. }) {
            return Err(invalid(
                "target.kind",
                "a set is the built-in canary's executable and library; drop `old` and `new`"
                    .into(),
            ));
        }
        if target.kind == TargetKind::Set && target.symlink {
            return Err(invalid(
                "target.symlink",
                "is for a single file; a set's files are plain files in one directory".into(),
            ));
        }
        for (index, link) in target.links.iter().enumerate() {
            let parts: Vec<&str> = link.split('/').filter(|p| !p.is_empty()).collect();
            let reserved = [STAGING_DIR, TMP_DIR];
            if parts.is_empty()
                || parts.iter().any(|p| *p == "." || *p == "..")
                || reserved.contains(&parts[0])
            {
                return Err(invalid(
                    &format!("target.links[{index}]"),
                    format!(
                        "`{link}` is not a path in the mount (hint: e.g. \"backup/libcanary.so\", \
                         not under staging/ or tmp/, without `..`)"
                    ),
                ));
            }
        }
        if target.new_size.is_some() && !matches!(versions, Versions::Canary { .. }) {
            return Err(invalid("target.new_size", NEW_SIZE_OF_FILES.into()));
        }
        let mode = match target.mode {
            Some(mode) => u32::from_str_radix(mode.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| {
                    invalid(
                        "target.mode",
                        format!("`{mode}` is not an octal mode (hint: e.g. \"0755\")"),
                    )
                })?,
            None => 0o755,
        };
        let owner = match &target.owner {
            Some(text) => parse_owner(text).ok_or_else(|| {
                invalid(
                    "target.owner",
                    format!("`{text}` is not UID:GID (hint: e.g. \"1000:1000\")"),
                )
            })?,
            None => (0, 0),
        };
        // A duration field, with the default and an example for the hint.
        let duration = |field: &str, text: &Option<String>, default: Duration, example: &str| {
            text.as_deref().map_or(Ok(default), |t| {
                humantime::parse_duration(t)
                    .map_err(|e| invalid(field, format!("`{t}`: {e} (hint: e.g. \"{example}\")")))
            })
        };
        let timeout = duration(
            "strategy.timeout",
            &file.strategy.timeout,
            DEFAULT_TIMEOUT,
            "30s",
        )?;
        let linger = duration(
            "strategy.linger",
            &file.strategy.linger,
            DEFAULT_LINGER,
            "10s",
        )?;
        let self_update = match &file.strategy.self_update {
            Some(spec) => Some(
                spec.parse::<SelfUpdate>()
                    .map_err(|m| invalid("strategy.self_update", m))?,
            ),
            None => None,
        };
        let command = match (&file.strategy.command, &self_update) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "strategy",
                    "give `command` or `self_update`, not both (hint: self_update is the built-in self-updating program)".into(),
                ))
            }
            (None, None) => {
                return Err(invalid(
                    "strategy.command",
                    "is missing (hint: the command that replaces the target, or `self_update`)"
                        .into(),
                ))
            }
            (Some(command), None) if command.trim().is_empty() => {
                return Err(invalid(
                    "strategy.command",
                    "is empty (hint: the command that replaces the target)".into(),
                ))
            }
            (Some(command), None) => command.clone(),
            (None, Some(spec)) => {
                check_self_update(target.kind, &versions)
                    .map_err(|m| invalid("strategy.self_update", m))?;
                spec.command()
            }
        };
        for (index, spec) in file.faults.iter().enumerate() {
            spec.parse::<fault_fs::Rule>()
                .map_err(|e| invalid(&format!("faults[{index}]"), e.to_string()))?;
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
        let target = Target {
            kind: target.kind,
            versions,
            mode,
            owner,
            xattrs: target.xattrs,
            new_inside: target.new_inside,
            symlink: target.symlink,
            links: target.links,
        };
        let strategy = Strategy {
            command,
            workdir,
            timeout,
            linger,
            self_update,
        };
        let mut scenario = Scenario::new(name, target, strategy);
        scenario.description = file.description.unwrap_or_default();
        scenario.source = Some(path.to_owned());
        scenario.live = file.live;
        scenario.live_commands = file.live_commands;
        scenario.faults = file.faults;
        scenario.probes = file.probes;
        scenario.sigterm = file.sigterm;
        scenario.platform = file.platform;
        scenario.expect_on = BTreeMap::from([
            (Platform::Linux, file.expect),
            (Platform::Macos, file.expect_macos),
        ]);
        Ok(scenario)
    }

    /// A scenario of `target` and `strategy` with every other value its
    /// default: a live canary, no faults, probes or expectations, Linux.
    pub fn new(name: impl Into<String>, target: Target, strategy: Strategy) -> Scenario {
        Scenario {
            name: name.into(),
            description: String::new(),
            source: None,
            target,
            strategy,
            live: true,
            live_commands: Vec::new(),
            faults: Vec::new(),
            probes: Vec::new(),
            sigterm: false,
            platform: Platform::Linux,
            expect_on: BTreeMap::new(),
            overrides: Vec::new(),
            rerun: None,
        }
    }

    /// The expected verdicts under the platform in force.
    pub fn expect(&self) -> &BTreeMap<Property, Expectation> {
        static NONE: BTreeMap<Property, Expectation> = BTreeMap::new();
        self.expect_on.get(&self.platform).unwrap_or(&NONE)
    }

    /// This scenario under `platform`, whatever its file says
    /// (`--platform`): reproductions name it.
    pub fn with_platform(mut self, platform: Platform) -> Scenario {
        self.platform = platform;
        self.given(Override::Platform(platform))
    }

    /// The strategy's timeout `timeout`, given apart from the file.
    pub fn with_timeout(mut self, timeout: Duration) -> Scenario {
        self.strategy.timeout = timeout;
        self.given(Override::Timeout(timeout))
    }

    /// How long what the strategy leaves may go on, given apart from the file.
    pub fn with_linger(mut self, linger: Duration) -> Scenario {
        self.strategy.linger = linger;
        self.given(Override::Linger(linger))
    }

    /// Notes that `value` was given apart from the file, replacing one of
    /// its kind given before.
    fn given(mut self, value: Override) -> Scenario {
        self.overrides
            .retain(|given| std::mem::discriminant(given) != std::mem::discriminant(&value));
        self.overrides.push(value);
        self
    }

    /// This ad-hoc scenario with the built-in self-updating program as its
    /// strategy; an error says why the target cannot be its file.
    pub fn self_updating(mut self, spec: SelfUpdate) -> Result<Scenario, String> {
        check_self_update(self.target.kind, &self.target.versions)?;
        // The program is its own live process: no other canary runs.
        self.live = false;
        self.strategy.command = spec.command();
        self.description = format!("the program replaces itself: {spec}");
        self.strategy.self_update = Some(spec);
        Ok(self)
    }

    /// This scenario with a canary of `size` bytes, NEW's size defaulted
    /// from it ([`default_new_size`]); an error says why not (not the
    /// canary, or a size out of range).
    pub fn with_size(&self, size: u64) -> Result<Scenario, String> {
        if !matches!(self.target.versions, Versions::Canary { .. }) {
            return Err(NEW_SIZE_OF_FILES.into());
        }
        check_size(size)?;
        let mut scenario = self.clone();
        let new_size = default_new_size(size);
        scenario.target.versions = Versions::Canary { size, new_size };
        Ok(scenario.given(Override::Size(size)))
    }

    /// This scenario with a new canary of `new_size` bytes; an error says
    /// why not (not the canary, or a size out of range).
    pub fn with_new_size(&self, new_size: u64) -> Result<Scenario, String> {
        let Versions::Canary { size, .. } = self.target.versions else {
            return Err(NEW_SIZE_OF_FILES.into());
        };
        check_size(new_size)?;
        let mut scenario = self.clone();
        scenario.target.versions = Versions::Canary { size, new_size };
        Ok(scenario.given(Override::NewSize(new_size)))
    }

    /// [`Scenario::ad_hoc`] from what a user gave: sizes checked, NEW's
    /// size defaulted, a symlinked target only for one file, the user's
    /// files in place of the canary (then no live canary runs). The
    /// command and the library both build their ad-hoc scenarios here, and
    /// say a problem in their own terms.
    pub fn from_ad_hoc(command: &str, given: &AdHoc) -> Result<Self, CanaryProblem> {
        let size = given.size.unwrap_or(canary::DEFAULT_SIZE);
        let new_size = given.new_size.unwrap_or_else(|| default_new_size(size));
        check_size(size).map_err(CanaryProblem::Size)?;
        check_size(new_size).map_err(CanaryProblem::NewSize)?;
        if given.symlinked && given.kind == TargetKind::Set {
            return Err(CanaryProblem::SymlinkedSet);
        }
        let mut scenario = Scenario::ad_hoc(command, given.kind, size, new_size);
        scenario.target.symlink = given.symlinked;
        scenario.live_commands = given.live_commands.clone();
        if let Some((old, new)) = &given.files {
            if given.kind == TargetKind::Set {
                return Err(CanaryProblem::FilesSet);
            }
            if given.size.is_some() || given.new_size.is_some() {
                return Err(CanaryProblem::FilesSized);
            }
            let absolute = |path: &PathBuf, old: bool| {
                if !path.is_file() {
                    return Err(CanaryProblem::NotAFile {
                        old,
                        path: path.clone(),
                    });
                }
                Ok(std::path::absolute(path).unwrap_or_else(|_| path.clone()))
            };
            scenario.target.versions = Versions::Files {
                old: absolute(old, true)?,
                new: absolute(new, false)?,
            };
            scenario.live = false;
        }
        Ok(scenario)
    }

    /// An ad-hoc scenario for `swapfault check --strategy`: the canary of
    /// `size` is replaced by one of `new_size` (see [`default_new_size`]),
    /// and the old target carries an xattr ([`AD_HOC_XATTR`]) and mode 0755,
    /// so that what careless strategies lose can show.
    pub fn ad_hoc(command: &str, kind: TargetKind, size: u64, new_size: u64) -> Self {
        let target = Target {
            kind,
            versions: Versions::Canary { size, new_size },
            mode: 0o755,
            owner: (0, 0),
            xattrs: BTreeMap::from([(AD_HOC_XATTR.0.to_owned(), AD_HOC_XATTR.1.to_owned())]),
            new_inside: false,
            symlink: false,
            links: Vec::new(),
        };
        let strategy = Strategy {
            command: command.to_owned(),
            workdir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            timeout: DEFAULT_TIMEOUT,
            linger: DEFAULT_LINGER,
            self_update: None,
        };
        let mut scenario = Scenario::new("check", target, strategy);
        scenario.description = format!("ad-hoc strategy `{command}`");
        scenario
    }
}

/// Whether the self-updating program can replace this target: its own
/// executable or its library, the canary's (not a set, not the user's files).
fn check_self_update(kind: TargetKind, versions: &Versions) -> Result<(), String> {
    if !matches!(versions, Versions::Canary { .. }) {
        return Err(
            "the self-updating program is the built-in canary: drop `old` and `new`".into(),
        );
    }
    if kind == TargetKind::Set {
        return Err(
            "the self-updating program replaces its executable or its library, not a set (hint: an exe or a lib target)"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_canary_is_shorter_unless_told() {
        let parse = |target: &str| {
            Scenario::from_toml(
                &format!("[strategy]\ncommand = \"true\"\n[target]\n{target}\n"),
                Path::new("s.toml"),
            )
        };
        let versions = |target: &str| parse(target).expect("scenario").target.versions;
        assert_eq!(
            versions("size = \"256KiB\""),
            Versions::Canary {
                size: 256 << 10,
                new_size: 224 << 10
            }
        );
        assert_eq!(
            versions("size = \"256KiB\"\nnew_size = \"1MiB\""),
            Versions::Canary {
                size: 256 << 10,
                new_size: 1 << 20
            }
        );
        // Never below the smallest canary.
        assert_eq!(default_new_size(64 << 10), 64 << 10);
        let err = parse("new_size = \"1KiB\"").unwrap_err().to_string();
        assert!(
            err.contains("target.new_size") && err.contains("64KiB"),
            "{err}"
        );
    }

    #[test]
    fn a_set_is_the_canary_and_not_symlinked() {
        let parse = |target: &str| {
            Scenario::from_toml(
                &format!("[strategy]\ncommand = \"true\"\n[target]\n{target}\n"),
                Path::new("s.toml"),
            )
        };
        let set = parse("kind = \"set\"").expect("a set of the canary");
        assert_eq!(set.target.kind, TargetKind::Set);
        let err = parse("kind = \"set\"\nsymlink = true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("target.symlink"), "{err}");
        let err = parse("kind = \"set\"\nold = \"a\"\nnew = \"b\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("target.old") || err.contains("target.kind"),
            "{err}"
        );
    }

    #[test]
    fn links_are_paths_in_the_mount() {
        let parse = |links: &str| {
            Scenario::from_toml(
                &format!("[strategy]\ncommand = \"true\"\n[target]\nlinks = {links}\n"),
                Path::new("s.toml"),
            )
        };
        let links = parse(r#"["backup/libcanary.so"]"#)
            .expect("a link")
            .target
            .links;
        assert_eq!(links, ["backup/libcanary.so"]);
        for bad in [r#"["../x"]"#, r#"["staging/x"]"#, r#"[""]"#] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("target.links[0]"), "{err}");
        }
    }

    #[test]
    fn a_self_updating_scenario_is_the_canarys_and_has_each_platforms_expectations() {
        let parse = |text: &str| Scenario::from_toml(text, Path::new("s.toml"));
        let scenario = parse(
            "[target]\nkind = \"exe\"\n[strategy]\nself_update = \"rename+fsync\"\n\
             [expect]\nresult = \"pass\"\n[expect_macos]\nlive = \"fail\"\n",
        )
        .expect("scenario");
        assert_eq!(
            scenario.strategy.command,
            r#"exec "$SWAPFAULT_SELF" --self-update rename+fsync"#
        );
        assert_eq!(scenario.platform, Platform::Linux);
        assert_eq!(
            scenario.expect(),
            &BTreeMap::from([(Property::Result, Expectation::Pass)])
        );
        let macos = scenario.with_platform(Platform::Macos);
        assert_eq!(
            macos.expect(),
            &BTreeMap::from([(Property::Live, Expectation::Fail)])
        );
        assert_eq!(macos.overrides, [Override::Platform(Platform::Macos)]);
        let on_file = parse("platform = \"macos\"\n[strategy]\ncommand = \"true\"\n").unwrap();
        assert_eq!(on_file.platform, Platform::Macos);
        assert!(on_file.overrides.is_empty(), "the file's own platform");
        for (text, key) in [
            (
                "[strategy]\ncommand = \"true\"\nself_update = \"in-place\"\n",
                "strategy",
            ),
            (
                "[strategy]\nself_update = \"in-place\"\n[target]\nkind = \"set\"\n",
                "strategy.self_update",
            ),
            (
                "[strategy]\nself_update = \"sideways\"\n",
                "strategy.self_update",
            ),
            ("[strategy]\ntimeout = \"1s\"\n", "strategy.command"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(&format!("{key}:")), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = Scenario::from_toml(
            "[strategy]\ncommand = \"true\"\n[target]\nknd = \"exe\"\n",
            Path::new("s.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("s.toml") && err.contains("line 4") && err.contains("knd"),
            "{err}"
        );
    }
}
