//! Fault plans: which op gets which fault.
//!
//! A plan is a list of [`Rule`]s. Each rule matches op kinds, optionally a
//! path glob, a pid or a command name, and fires on the Nth match (or on every
//! match when no N is given), or on the Kth op of any kind after that match
//! (`+K`). The one-line form is `OPS[#N[+K]][@GLOB]:FAULT`, for example
//! `write#3:kill-after`, `rename:errno=EIO`, `rename#3+1:stall=10s`,
//! `create,open@*/target*#1:stall=2s`. A `retry:` (or `retryN:`) prefix puts
//! a rule in the run that retries after an interruption (see [`Phase`]).

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use nix::sys::signal::Signal;
use serde::Deserialize;

use crate::op::{OpKind, OpRecord};
use crate::persistence::Cut;

/// How long a `stall` without a duration waits for release before it gives up.
pub const DEFAULT_STALL_DEADLINE: Duration = Duration::from_secs(30);

/// The expected one-line format, quoted in every parse error.
pub const SPEC_FORMAT: &str =
    "[retry[N]:]OPS[#N[+K]][@GLOB]:FAULT, e.g. `write#3:kill-after`, `rename:errno=EIO`, \
`rename#3+1:stall` (the op after rename#3); \
FAULT is kill-before[=SIG], kill-after[=SIG], errno=NAME[/once|/persist], short-write=K|K%, kill-within=K|K%, \
stall[=DURATION], power-cut[=metadata-ordered|strict][/written=none|all|BYTES], \
errno=NAME+power-cut[=...]";

/// What happens to a matched op.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Signal the caller's process group; answer without applying the op.
    KillBefore(Signal),
    /// Apply the op, signal the caller's process group, then answer.
    KillAfter(Signal),
    /// Fail the op with this errno, without applying it.
    Errno(i32),
    /// Fail the op with this errno, and every later op of the run that
    /// needs space ([`OpKind::needs_space`]), as a full disk (ENOSPC) or an
    /// exhausted quota (EDQUOT) does until space is freed.
    Full(i32),
    /// Apply only part of a write and report the short count.
    ShortWrite(ShortWrite),
    /// Apply only part of a write, then SIGKILL the caller's process
    /// group: a kill that lands while the bytes are being stored. Most
    /// useful on a writeback write ([`crate::OpRecord::writeback`]), which
    /// carries every page the writer stored through a shared mapping: the
    /// pages before the kill reach the file, the rest never do.
    KillWithin(ShortWrite),
    /// Hold the op until released through the API or until the duration
    /// (or [`DEFAULT_STALL_DEADLINE`]) passes, then apply it.
    Stall(Option<Duration>),
    /// Apply the op, then cut the power: the caller's group is SIGKILLed and
    /// only what the cut's persistence model and writeback say is durable
    /// survives (see [`crate::FaultFsHandle::take_power_cut`]).
    PowerCut(Cut),
    /// Fail the op with this errno (once), let the run go on to its end,
    /// then cut the power: what a failed fsync that the strategy ignored
    /// leaves on disk. fault-fs fails the op; the cut at the end is the
    /// caller's ([`crate::FaultFsHandle::durable_state`]).
    ErrnoThenCut(i32, Cut),
}

/// How much of a write a `short-write` fault lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShortWrite {
    /// This many bytes (at most the request's length).
    Bytes(u64),
    /// This percentage of the request, rounded down.
    Percent(u8),
}

impl fmt::Display for ShortWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShortWrite::Bytes(bytes) => write!(f, "{bytes}"),
            ShortWrite::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

impl Fault {
    /// Whether the fault applies part of a write (and to writes only).
    pub fn partial_write(&self) -> bool {
        matches!(self, Fault::ShortWrite(_) | Fault::KillWithin(_))
    }
}

impl ShortWrite {
    /// Bytes to apply of a write of `len` bytes.
    pub fn bytes_of(self, len: u64) -> u64 {
        match self {
            ShortWrite::Bytes(bytes) => bytes.min(len),
            ShortWrite::Percent(percent) => len * u64::from(percent) / 100,
        }
    }
}

/// A fault plan, a rule or a fault that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A one-line spec is malformed.
    #[error("bad fault spec `{spec}`: {reason} (hint: the format is {SPEC_FORMAT})")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A crash point is malformed.
    #[error("bad crash point `{spec}`: {reason} (hint: the format is {CRASH_POINT_FORMAT})")]
    CrashPoint {
        /// The text as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A plan file could not be read.
    #[error("cannot read fault plan {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A plan file is not valid TOML for a plan.
    #[error("bad fault plan {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
}

fn spec_error(spec: &str, reason: impl Into<String>) -> PlanError {
    PlanError::Spec {
        spec: spec.to_owned(),
        reason: reason.into(),
    }
}

/// The name of an errno (`EIO`), or its number when it has none.
pub fn errno_name(errno: i32) -> String {
    let name = format!("{:?}", nix::errno::Errno::from_raw(errno));
    if name.starts_with('E') {
        name
    } else {
        errno.to_string()
    }
}

/// Whether `errno=NAME` means an error that lasts ([`Fault::Full`]): a
/// full disk or quota stays full until space is freed; other errors are
/// one call's.
pub fn lasts_by_default(errno: i32) -> bool {
    errno == libc::ENOSPC || errno == libc::EDQUOT
}

/// Parses an errno by name (`EIO`, `ENOSPC`, ...) or number.
pub fn parse_errno(name: &str) -> Option<i32> {
    if let Ok(number) = name.parse::<i32>() {
        return (number > 0).then_some(number);
    }
    let upper = name.to_ascii_uppercase();
    (1..200).find(|&n| format!("{:?}", nix::errno::Errno::from_raw(n)) == upper)
}

/// Parses a signal by name, with or without `SIG` (`TERM`, `SIGKILL`), or number.
pub fn parse_signal(name: &str) -> Option<Signal> {
    if let Ok(number) = name.parse::<i32>() {
        return Signal::try_from(number).ok();
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full).ok()
}

fn signal_suffix(signal: Signal) -> String {
    if signal == Signal::SIGKILL {
        String::new()
    } else {
        format!("={}", signal.as_str().trim_start_matches("SIG"))
    }
}

impl Fault {
    /// Whether it cuts the power, now or when the run has ended.
    pub fn cuts_power(&self) -> bool {
        matches!(self, Fault::PowerCut(_) | Fault::ErrnoThenCut(..))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillBefore(signal) => write!(f, "kill-before{}", signal_suffix(*signal)),
            Fault::KillAfter(signal) => write!(f, "kill-after{}", signal_suffix(*signal)),
            // ENOSPC and EDQUOT last unless told otherwise; others do not.
            Fault::Errno(errno) if lasts_by_default(*errno) => {
                write!(f, "errno={}/once", errno_name(*errno))
            }
            Fault::Errno(errno) => write!(f, "errno={}", errno_name(*errno)),
            Fault::Full(errno) if lasts_by_default(*errno) => {
                write!(f, "errno={}", errno_name(*errno))
            }
            Fault::Full(errno) => write!(f, "errno={}/persist", errno_name(*errno)),
            Fault::ShortWrite(short) => write!(f, "short-write={short}"),
            Fault::KillWithin(short) => write!(f, "kill-within={short}"),
            Fault::Stall(None) => f.write_str("stall"),
            Fault::Stall(Some(duration)) => {
                write!(f, "stall={}", humantime::format_duration(*duration))
            }
            Fault::PowerCut(cut) => write!(f, "power-cut={cut}"),
            Fault::ErrnoThenCut(errno, cut) => {
                write!(f, "{}+power-cut={cut}", Fault::Errno(*errno))
            }
        }
    }
}

impl FromStr for Fault {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((first, cut)) = s.split_once('+') {
            return match (first.parse()?, cut.parse()?) {
                (Fault::Errno(errno), Fault::PowerCut(cut)) => Ok(Fault::ErrnoThenCut(errno, cut)),
                _ => Err(spec_error(
                    s,
                    "only errno=NAME+power-cut[=...] combines two faults",
                )),
            };
        }
        let (name, arg) = match s.split_once('=') {
            Some((name, arg)) => (name, Some(arg)),
            None => (s, None),
        };
        let signal = |arg: Option<&str>| match arg {
            None => Ok(Signal::SIGKILL),
            Some(arg) => {
                parse_signal(arg).ok_or_else(|| spec_error(s, format!("unknown signal `{arg}`")))
            }
        };
        match name {
            "kill-before" => Ok(Fault::KillBefore(signal(arg)?)),
            "kill-after" => Ok(Fault::KillAfter(signal(arg)?)),
            "errno" => {
                let arg = arg.ok_or_else(|| spec_error(s, "errno needs a name, e.g. errno=EIO"))?;
                let (name, lasting) = match arg.split_once('/') {
                    None => (arg, None),
                    Some((name, "once")) => (name, Some(false)),
                    Some((name, "persist")) => (name, Some(true)),
                    Some((_, how)) => {
                        return Err(spec_error(
                            s,
                            format!("unknown errno mode `/{how}` (once or persist)"),
                        ))
                    }
                };
                let errno = parse_errno(name)
                    .ok_or_else(|| spec_error(s, format!("unknown errno `{name}`")))?;
                Ok(if lasting.unwrap_or(lasts_by_default(errno)) {
                    Fault::Full(errno)
                } else {
                    Fault::Errno(errno)
                })
            }
            "short-write" | "kill-within" => {
                let arg = arg.ok_or_else(|| {
                    spec_error(s, format!("{name} needs a size, e.g. {name}=100 or =50%"))
                })?;
                let short = if let Some(percent) = arg.strip_suffix('%') {
                    match percent.parse::<u8>() {
                        Ok(p) if p < 100 => ShortWrite::Percent(p),
                        _ => return Err(spec_error(s, "a percentage must be 0 to 99")),
                    }
                } else {
                    arg.parse::<u64>()
                        .map(ShortWrite::Bytes)
                        .map_err(|_| spec_error(s, format!("`{arg}` is not a byte count")))?
                };
                Ok(match name {
                    "short-write" => Fault::ShortWrite(short),
                    _ => Fault::KillWithin(short),
                })
            }
            "stall" => match arg {
                None => Ok(Fault::Stall(None)),
                Some(arg) => humantime::parse_duration(arg)
                    .map(|d| Fault::Stall(Some(d)))
                    .map_err(|e| spec_error(s, format!("bad duration `{arg}`: {e}"))),
            },
            "power-cut" => match arg {
                None => Ok(Fault::PowerCut(Cut::default())),
                Some(arg) => arg
                    .parse()
                    .map(Fault::PowerCut)
                    .map_err(|e: String| spec_error(s, e)),
            },
            _ => Err(spec_error(s, format!("unknown fault `{name}`"))),
        }
    }
}

/// A path glob, kept with its source so a rule prints as it was written.
#[derive(Clone, Debug)]
pub struct PathGlob {
    source: String,
    matcher: GlobMatcher,
}

impl PathGlob {
    /// Compiles a glob; `*` matches across `/`.
    pub fn new(source: &str) -> Result<Self, String> {
        let glob = GlobBuilder::new(source)
            .literal_separator(false)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(PathGlob {
            source: source.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// Whether `path` matches.
    pub fn is_match(&self, path: &str) -> bool {
        self.matcher.is_match(path)
    }
}

/// Which run of the program under test a rule or crash point is for: 0 the
/// first, 1 the retry made after the first was interrupted (`retry:`), 2
/// the retry after that one was (`retry2:`), and so on. fault-fs puts in
/// force whatever plan it is given; whoever runs the program again gives
/// each run the rules of its phase.
pub type Phase = u32;

/// `retry:` or `retryN:` before a rule or point, empty for phase 0.
pub fn phase_prefix(phase: Phase) -> String {
    match phase {
        0 => String::new(),
        1 => "retry:".to_owned(),
        n => format!("retry{n}:"),
    }
}

/// Splits a `retry:`/`retryN:` prefix off `text`.
fn split_phase(text: &str) -> Result<(Phase, &str), String> {
    let Some((head, rest)) = text.split_once(':') else {
        return Ok((0, text));
    };
    let Some(n) = head.strip_prefix("retry") else {
        return Ok((0, text));
    };
    match n {
        "" => Ok((1, rest)),
        n => match n.parse::<Phase>() {
            Ok(n) if n >= 1 => Ok((n, rest)),
            _ => Err(format!(
                "`{head}:`: the phase is retry: or retryN: with N from 1"
            )),
        },
    }
}

/// One rule of a plan.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The run it is for: see [`Phase`].
    pub phase: Phase,
    /// Op kinds that match; empty matches every kind.
    pub ops: Vec<OpKind>,
    /// Fire on this match only (1-based); `None` fires on every match.
    pub nth: Option<u64>,
    /// Fire not on the match but on the Kth op after it, of any kind and
    /// from any process in scope (`rename#3+1`).
    pub after: Option<u64>,
    /// Only ops whose path (or second path) matches.
    pub path: Option<PathGlob>,
    /// Only ops of this process.
    pub pid: Option<u32>,
    /// Only ops of processes with this command name.
    pub comm: Option<String>,
    /// What to do.
    pub fault: Fault,
}

impl Rule {
    /// A rule for the op `name`: the shape of a crash point.
    pub fn at(name: OpName, fault: Fault) -> Self {
        Rule {
            phase: 0,
            ops: vec![name.kind],
            nth: Some(name.nth),
            after: (name.after > 0).then_some(name.after),
            path: None,
            pid: None,
            comm: None,
            fault,
        }
    }

    /// Whether the op matches this rule's filters (the Nth count aside).
    pub fn matches(&self, op: &OpRecord) -> bool {
        (self.ops.is_empty() || self.ops.contains(&op.kind))
            && self.path.as_ref().is_none_or(|glob| {
                glob.is_match(&op.path) || op.path2.as_deref().is_some_and(|p| glob.is_match(p))
            })
            && self.pid.is_none_or(|pid| pid == op.pid)
            && self.comm.as_deref().is_none_or(|comm| comm == &*op.comm)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&phase_prefix(self.phase))?;
        if self.ops.is_empty() {
            f.write_str("*")?;
        } else {
            let names: Vec<&str> = self.ops.iter().map(|k| k.name()).collect();
            f.write_str(&names.join(","))?;
        }
        if let Some(nth) = self.nth {
            write!(f, "#{nth}")?;
        }
        if let Some(after) = self.after {
            write!(f, "+{after}")?;
        }
        if let Some(path) = &self.path {
            write!(f, "@{}", path.source)?;
        }
        write!(f, ":{}", self.fault)
    }
}

impl FromStr for Rule {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (phase, rule) = split_phase(s).map_err(|e| spec_error(s, e))?;
        let (matcher, fault) = rule
            .rsplit_once(':')
            .ok_or_else(|| spec_error(s, "missing `:FAULT`"))?;
        let fault: Fault = fault.parse().map_err(|e| match e {
            PlanError::Spec { reason, .. } => spec_error(s, reason),
            other => other,
        })?;
        let (matcher, path) = match matcher.split_once('@') {
            Some((ops, glob)) => (
                ops,
                Some(PathGlob::new(glob).map_err(|e| spec_error(s, format!("bad glob: {e}")))?),
            ),
            None => (matcher, None),
        };
        let (ops, nth, after) = match matcher.split_once('#') {
            Some((ops, nth)) => {
                let (nth, after) = match nth.split_once('+') {
                    Some((nth, after)) => (nth, Some(after)),
                    None => (nth, None),
                };
                let after = after
                    .map(|after| parse_after(after).map_err(|e| spec_error(s, e)))
                    .transpose()?;
                (
                    ops,
                    Some(parse_nth(nth).map_err(|e| spec_error(s, e))?),
                    after,
                )
            }
            None => (matcher, None, None),
        };
        let ops = if ops == "*" || ops.is_empty() {
            Vec::new()
        } else {
            ops.split(',')
                .map(|name| name.trim().parse::<OpKind>())
                .collect::<Result<_, _>>()
                .map_err(|e| spec_error(s, e.to_string()))?
        };
        if fault.partial_write()
            && after.is_none()
            && !ops.is_empty()
            && !ops.contains(&OpKind::Write)
        {
            return Err(spec_error(s, format!("{fault} applies to write ops only")));
        }
        Ok(Rule {
            phase,
            ops,
            nth,
            after,
            path,
            pid: None,
            comm: None,
            fault,
        })
    }
}

/// The expected form of a crash point, quoted in its parse errors.
pub const CRASH_POINT_FORMAT: &str =
    "[retry[N]:]KIND#N[+K]:FAULT, e.g. `write#3:kill-after`, `rename#1:power-cut=strict`, \
`rename#3+1:stall=10s`";

/// One crash point: an op of the strategy's, named as [`OpName`] names it,
/// and the fault there. Spelled `write#3:kill-after` or
/// `rename#3+1:stall=10s`; as a [`Rule`] it fires on exactly that op. Named
/// by kind and order, never by path, so a strategy with random temp names
/// has the same crash points on every run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CrashPoint {
    /// The run it lands in: see [`Phase`].
    pub phase: Phase,
    /// The op kind (of the op it is counted from, for `rename#3+1`).
    pub kind: OpKind,
    /// Its order among the strategy's ops of that kind, from 1.
    pub nth: u64,
    /// The point is this many ops after that one (0: at it).
    pub after: u64,
    /// What happens there.
    pub fault: Fault,
}

impl CrashPoint {
    /// The crash point of `fault` at the Nth op of `kind`.
    pub fn new(kind: OpKind, nth: u64, fault: Fault) -> Self {
        CrashPoint::at(OpName::new(kind, nth), fault)
    }

    /// The crash point of `fault` at the op `name`.
    pub fn at(name: OpName, fault: Fault) -> Self {
        CrashPoint {
            phase: 0,
            kind: name.kind,
            nth: name.nth,
            after: name.after,
            fault,
        }
    }

    /// The rule that fires exactly here.
    pub fn rule(&self) -> Rule {
        Rule {
            phase: self.phase,
            ..Rule::at(self.op(), self.fault.clone())
        }
    }

    /// The same point in `phase`.
    pub fn in_phase(self, phase: Phase) -> Self {
        CrashPoint { phase, ..self }
    }

    /// The op alone, `write#3`.
    pub fn op(&self) -> OpName {
        OpName {
            kind: self.kind,
            nth: self.nth,
            after: self.after,
        }
    }

    /// Whether the point names the same op on every run of a strategy whose
    /// processes read concurrently: see [`OpName::is_stable`].
    pub fn is_stable(&self) -> bool {
        self.op().is_stable()
    }
}

impl fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}:{}",
            phase_prefix(self.phase),
            self.op(),
            self.fault
        )
    }
}

impl FromStr for CrashPoint {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| PlanError::CrashPoint {
            spec: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (phase, point) = split_phase(s).map_err(|e| bad(&e))?;
        let (op, fault) = point
            .split_once(':')
            .ok_or_else(|| bad("missing `:FAULT`"))?;
        let op: OpName = op.parse().map_err(|reason: String| bad(&reason))?;
        let fault: Fault = fault.parse().map_err(|e| match e {
            PlanError::Spec { reason, .. } => bad(&reason),
            other => other,
        })?;
        Ok(CrashPoint::at(op, fault).in_phase(phase))
    }
}

impl serde::Serialize for CrashPoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl serde::Serialize for Fault {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The N of `#N`: which match of a rule, which op of a kind, from 1.
fn parse_nth(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(nth) if nth >= 1 => Ok(nth),
        _ => Err(format!("`#{text}`: N must be a number from 1")),
    }
}

fn parse_after(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(after) if after >= 1 => Ok(after),
        _ => Err(format!("`+{text}`: K must be a number from 1")),
    }
}

/// An op named by kind and order among the strategy's ops, `write#3`, or
/// by its place after the last op that could change the tree, `rename#3+1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpName {
    /// The op kind (of the op it is counted from, for `rename#3+1`).
    pub kind: OpKind,
    /// Its order among the ops of that kind, from 1.
    pub nth: u64,
    /// This many ops after that one, of any kind (0: that op itself).
    pub after: u64,
}

impl OpName {
    /// The Nth op of `kind`.
    pub fn new(kind: OpKind, nth: u64) -> Self {
        OpName {
            kind,
            nth,
            after: 0,
        }
    }

    /// Names every op of `trace` (in order). An op of a kind that can
    /// change the tree is named by its kind and order (`rename#3`); any
    /// other op after one of those by how many ops after the last of them
    /// it came (`rename#3+1`, releases not counted: no fault lands on
    /// them). A multi-process tool's reads interleave differently from run
    /// to run (rsync's sender and generator read while its receiver
    /// writes), so `getattr#70` is another op in the next run; its writes
    /// keep their order, and the op after one of them sees the same tree.
    pub fn all<'a>(trace: impl IntoIterator<Item = &'a OpRecord>) -> Vec<OpName> {
        let mut counts: std::collections::HashMap<OpKind, u64> = Default::default();
        let mut last_change: Option<OpName> = None;
        trace
            .into_iter()
            .map(|op| {
                let nth = counts.entry(op.kind).or_default();
                *nth += 1;
                let own = OpName::new(op.kind, *nth);
                if op.kind.is_mutating() {
                    last_change = Some(own);
                    return own;
                }
                match &mut last_change {
                    Some(change) if op.kind != OpKind::Release => {
                        change.after += 1;
                        *change
                    }
                    _ => own,
                }
            })
            .collect()
    }

    /// Whether the name finds the same op on every run: an op that can
    /// change the tree, or one counted from such an op.
    pub fn is_stable(&self) -> bool {
        self.kind.is_mutating()
    }
}

impl fmt::Display for OpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.kind, self.nth)?;
        if self.after > 0 {
            write!(f, "+{}", self.after)?;
        }
        Ok(())
    }
}

impl FromStr for OpName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, nth) = s
            .split_once('#')
            .ok_or_else(|| format!("`{s}` has no `#N`"))?;
        let kind: OpKind = kind
            .parse()
            .map_err(|e: crate::op::UnknownOpKind| e.to_string())?;
        let (nth, after) = match nth.split_once('+') {
            Some((nth, after)) => (nth, parse_after(after)?),
            None => (nth, 0),
        };
        Ok(OpName {
            kind,
            nth: parse_nth(nth)?,
            after,
        })
    }
}

/// A whole plan: rules tried in order; the first that fires wins.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// The rules.
    pub rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    #[serde(default)]
    rule: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    ops: Vec<String>,
    #[serde(default)]
    phase: Phase,
    nth: Option<u64>,
    after: Option<u64>,
    path: Option<String>,
    pid: Option<u32>,
    comm: Option<String>,
    fault: String,
}

impl FaultPlan {
    /// A plan of one-line specs.
    pub fn from_specs<S: AsRef<str>>(specs: &[S]) -> Result<Self, PlanError> {
        let rules = specs
            .iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(FaultPlan { rules })
    }

    /// Parses a TOML plan: `[[rule]]` tables with `phase`, `ops`, `nth`, `after`, `path`, `pid`,
    /// `comm` and `fault` (a FAULT as in the one-line form).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, PlanError> {
        let file_error = |message: String| PlanError::File {
            path: path.display().to_string(),
            message,
        };
        let file: PlanFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                format!("line {}: ", before.matches('\n').count() + 1)
            });
            file_error(format!("{}{}", at.unwrap_or_default(), e.message().trim()))
        })?;
        let mut rules = Vec::new();
        for (index, rule) in file.rule.into_iter().enumerate() {
            let at = |what: String| file_error(format!("rule {}: {what}", index + 1));
            let ops = rule
                .ops
                .iter()
                .map(|name| name.parse::<OpKind>())
                .collect::<Result<_, _>>()
                .map_err(|e| at(e.to_string()))?;
            let fault = rule
                .fault
                .parse()
                .map_err(|e: PlanError| at(e.to_string()))?;
            let glob = match rule.path {
                Some(glob) => Some(PathGlob::new(&glob).map_err(|e| at(format!("path: {e}")))?),
                None => None,
            };
            if rule.nth == Some(0) {
                return Err(at("nth counts from 1".into()));
            }
            if rule.after.is_some() && rule.nth.is_none() {
                return Err(at("after counts from the nth match: give nth too".into()));
            }
            if rule.after == Some(0) {
                return Err(at("after counts from 1".into()));
            }
            rules.push(Rule {
                phase: rule.phase,
                ops,
                nth: rule.nth,
                after: rule.after,
                path: glob,
                pid: rule.pid,
                comm: rule.comm,
                fault,
            });
        }
        Ok(FaultPlan { rules })
    }

    /// Reads a TOML plan file.
    pub fn from_file(path: &Path) -> Result<Self, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip() {
        for spec in [
            "write#3:kill-after",
            "rename:errno=EIO",
            "write#2:kill-before=TERM",
            "create,open@*/target*#1:stall=2s",
            "write:short-write=100",
            "write#1:short-write=50%",
            "write#1:kill-within=4096",
            "*:errno=ENOSPC",
            "write:errno=ENOSPC/once",
            "write#2:errno=EIO/persist",
            "fsync:stall",
            "rename#1:power-cut=strict",
            "write#2:power-cut=metadata-ordered",
            "rename#3+1:stall=10s",
            "retry:unlink#1:kill-after",
            "retry3:*:errno=ENOSPC",
        ] {
            let rule: Rule = spec.parse().unwrap();
            assert_eq!(rule.to_string(), spec);
        }
    }

    #[test]
    fn crash_points_round_trip_and_name_their_rule() {
        for text in [
            "write#3:kill-after",
            "rename#1:power-cut=strict",
            "write#4:power-cut=metadata-ordered/written=all",
            "write#4:power-cut=strict/written=65536",
            "fsync#1:errno=EIO+power-cut=metadata-ordered",
            "fsync#1:errno=ENOSPC/once+power-cut=strict/written=all",
            "getattr#9:stall=10s",
            "create#1:errno=ENOSPC",
            "write#2:short-write=50%",
            "write#1:kill-within=50%",
            "unlink#1:kill-before=TERM",
            "rename#3+1:stall=10s",
            "write#2+4:kill-after",
            "retry:unlink#1:kill-after",
            "retry2:write#1+2:errno=EIO",
        ] {
            let point: CrashPoint = text.parse().unwrap();
            assert_eq!(point.to_string(), text);
            assert_eq!(point.rule().to_string(), text);
            let op = text
                .trim_start_matches("retry:")
                .trim_start_matches("retry2:");
            assert_eq!(point.op().to_string(), op.split(':').next().unwrap());
        }
        let point: CrashPoint = "write#3:errno=EIO".parse().unwrap();
        assert_eq!(
            point,
            CrashPoint::new(OpKind::Write, 3, Fault::Errno(libc::EIO))
        );
    }

    #[test]
    fn a_full_disk_lasts_unless_told_once_and_eio_is_one_call() {
        let fault = |text: &str| text.parse::<Fault>().unwrap();
        assert_eq!(fault("errno=ENOSPC"), Fault::Full(libc::ENOSPC));
        assert_eq!(fault("errno=EDQUOT"), Fault::Full(libc::EDQUOT));
        assert_eq!(fault("errno=ENOSPC/once"), Fault::Errno(libc::ENOSPC));
        assert_eq!(fault("errno=EIO"), Fault::Errno(libc::EIO));
        assert_eq!(fault("errno=EIO/persist"), Fault::Full(libc::EIO));
        let err = "errno=EIO/always".parse::<Fault>().unwrap_err().to_string();
        assert!(err.contains("once or persist"), "{err}");
    }

    #[test]
    fn a_power_cut_names_its_writeback_and_may_follow_an_error() {
        use crate::persistence::{PersistenceModel, Writeback};
        let fault = |text: &str| text.parse::<Fault>();
        assert_eq!(
            fault("power-cut").unwrap(),
            Fault::PowerCut(Cut::new(PersistenceModel::MetadataOrdered))
        );
        assert_eq!(
            fault("power-cut=strict/written=none").unwrap(),
            Fault::PowerCut(Cut::new(PersistenceModel::Strict))
        );
        assert_eq!(
            fault("errno=EIO+power-cut=strict/written=4096").unwrap(),
            Fault::ErrnoThenCut(
                libc::EIO,
                Cut {
                    model: PersistenceModel::Strict,
                    written: Writeback::Bytes(4096)
                }
            )
        );
        for (text, reason) in [
            ("power-cut=strict/written=some", "bad writeback `some`"),
            ("power-cut=strict/after=1", "unknown power-cut option"),
            ("kill-after+power-cut", "only errno=NAME+power-cut"),
            ("errno=EIO+kill-after", "only errno=NAME+power-cut"),
        ] {
            let err = fault(text).unwrap_err().to_string();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn bad_crash_points_name_the_format() {
        for (text, reason) in [
            ("write:kill-after", "no `#N`"),
            ("write#0:kill-after", "N must be a number from 1"),
            ("wrote#1:kill-after", "unknown op kind `wrote`"),
            ("write#1", "missing `:FAULT`"),
            ("write#1:explode", "unknown fault"),
            ("write#1+0:kill-after", "K must be a number from 1"),
            (
                "retry0:write#1:kill-after",
                "retry: or retryN: with N from 1",
            ),
        ] {
            let err = text.parse::<CrashPoint>().unwrap_err().to_string();
            assert!(
                err.contains(reason) && err.contains("[retry[N]:]KIND#N[+K]:FAULT"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn ops_are_named_by_kind_and_order() {
        let op = |kind| OpRecord {
            kind,
            ..OpRecord::for_test()
        };
        let trace = [
            op(OpKind::Getattr),
            op(OpKind::Write),
            op(OpKind::Rename),
            op(OpKind::Getattr),
            op(OpKind::Release),
            op(OpKind::Lookup),
            op(OpKind::Write),
        ];
        let names: Vec<String> = OpName::all(&trace).iter().map(|n| n.to_string()).collect();
        assert_eq!(
            names,
            [
                "getattr#1",
                "write#1",
                "rename#1",
                "rename#1+1",
                "release#1",
                "rename#1+2",
                "write#2"
            ]
        );
        let stable: Vec<bool> = OpName::all(&trace).iter().map(|n| n.is_stable()).collect();
        assert_eq!(stable, [false, true, true, true, false, true, true]);
        for name in &names {
            assert_eq!(name.parse::<OpName>().unwrap().to_string(), *name);
        }
    }

    #[test]
    fn bad_specs_name_the_format() {
        for spec in [
            "write#3",
            "wrote:kill-after",
            "write#0:kill-after",
            "write:errno=EWHAT",
            "write:kill-after=NOPE",
            "rename:short-write=5",
            "fsync:kill-within=50%",
            "write:kill-within",
        ] {
            let err = spec.parse::<Rule>().unwrap_err().to_string();
            assert!(
                err.contains("the format is [retry[N]:]OPS[#N[+K]]"),
                "{spec}: {err}"
            );
        }
    }

    #[test]
    fn errno_and_signal_names() {
        assert_eq!(parse_errno("ENOSPC"), Some(libc::ENOSPC));
        assert_eq!(parse_errno("edquot"), Some(libc::EDQUOT));
        assert_eq!(errno_name(libc::EROFS), "EROFS");
        assert_eq!(parse_signal("TERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("SIGKILL"), Some(Signal::SIGKILL));
    }

    #[test]
    fn toml_plan_reports_position() {
        let err = FaultPlan::from_toml(
            "[[rule]]\nops = [\"write\"]\nfault = 3\n",
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 3"), "{err}");
        let plan = FaultPlan::from_toml(
            "[[rule]]\nops = [\"write\"]\nnth = 2\ncomm = \"cp\"\nfault = \"kill-after\"\n",
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(plan.rules[0].to_string(), "write#2:kill-after");
    }
}
