//! The plan's grammar: which op gets which fault.
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

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;

use crate::fault::{Fault, FaultError, FAULT_FORMAT};
use crate::op::{parse_after, parse_nth, OpKind, OpName, OpRecord};

/// The expected one-line format, quoted in every parse error.
pub const SPEC_FORMAT: &str =
    "[retry[N]:]OPS[#N[+K]][@GLOB]:FAULT, e.g. `write#3:kill-after`, `rename:errno=EIO`, \
`rename#3+1:stall` (the op after rename#3)";

/// A fault plan, a rule or a fault that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A one-line spec is malformed.
    #[error("bad fault spec `{spec}`: {reason}{hint}", hint = format_hint(reason))]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A crash point is malformed.
    #[error("bad crash point `{spec}`: {reason}{hint}", hint = point_format_hint(reason))]
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

/// The spec format as a hint, unless `reason` carries a hint of its own
/// (one hint a line, the one that says what to change).
fn format_hint(reason: &str) -> String {
    if reason.contains("(hint:") {
        String::new()
    } else {
        format!(" (hint: the format is {SPEC_FORMAT}; FAULT is {FAULT_FORMAT})")
    }
}

/// The crash point format as a hint, unless `reason` carries its own.
fn point_format_hint(reason: &str) -> String {
    if reason.contains("(hint:") {
        String::new()
    } else {
        format!(" (hint: the format is {CRASH_POINT_FORMAT})")
    }
}

fn spec_error(spec: &str, reason: impl Into<String>) -> PlanError {
    PlanError::Spec {
        spec: spec.to_owned(),
        reason: reason.into(),
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
        let fault: Fault = fault
            .parse()
            .map_err(|e: FaultError| spec_error(s, e.reason))?;
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
    /// The op, as the trace names it ([`crate::OpRecord::name`]).
    pub op: OpName,
    /// What happens there.
    pub fault: Fault,
}

impl CrashPoint {
    /// The crash point of `fault` at the Nth op of `kind`.
    pub fn new(kind: OpKind, nth: u64, fault: Fault) -> Self {
        CrashPoint::at(OpName::new(kind, nth), fault)
    }

    /// The crash point of `fault` at the op `name`.
    pub fn at(op: OpName, fault: Fault) -> Self {
        CrashPoint {
            phase: 0,
            op,
            fault,
        }
    }

    /// The rule that fires exactly here.
    pub fn rule(&self) -> Rule {
        Rule {
            phase: self.phase,
            ..Rule::at(self.op, self.fault.clone())
        }
    }

    /// The same point in `phase`.
    pub fn in_phase(self, phase: Phase) -> Self {
        CrashPoint { phase, ..self }
    }

    /// Whether the point names the same op on every run of a strategy whose
    /// processes read concurrently: see [`OpName::is_stable`].
    pub fn is_stable(&self) -> bool {
        self.op.is_stable()
    }
}

impl fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}:{}", phase_prefix(self.phase), self.op, self.fault)
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
        let fault: Fault = fault.parse().map_err(|e: FaultError| bad(&e.reason))?;
        Ok(CrashPoint::at(op, fault).in_phase(phase))
    }
}

/// Serialised as its one-line form, read back from it.
macro_rules! as_text {
    ($($type:ty),*) => {$(
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

as_text!(CrashPoint, Rule);

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
                .map_err(|e: FaultError| at(e.to_string()))?;
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
            assert_eq!(point.op.to_string(), op.split(':').next().unwrap());
        }
        let point: CrashPoint = "write#3:errno=EIO".parse().unwrap();
        assert_eq!(
            point,
            CrashPoint::new(OpKind::Write, 3, Fault::Errno(libc::EIO))
        );
    }

    #[test]
    fn bad_crash_points_name_the_format() {
        for (text, reason) in [
            ("write:kill-after", "no `#N`"),
            ("write#0:kill-after", "N must be a number from 1"),
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
        // A slip of the op kind: one hint, the nearest kind.
        let err = "wrote#1:kill-after".parse::<CrashPoint>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad crash point `wrote#1:kill-after`: unknown op kind `wrote` (hint: did you mean `write`?)"
        );
    }

    #[test]
    fn bad_specs_name_the_format() {
        for spec in [
            "write#3",
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
        // An op kind a slip away: the nearest one, and no second hint; one
        // far from every kind: the list.
        let slip = "wrte:kill-after".parse::<Rule>().unwrap_err().to_string();
        assert!(
            slip.ends_with("unknown op kind `wrte` (hint: did you mean `write`?)"),
            "{slip}"
        );
        let far = "zzzzzz:kill-after".parse::<Rule>().unwrap_err().to_string();
        assert!(far.contains("(hint: one of lookup, getattr"), "{far}");
        assert_eq!(far.matches("(hint:").count(), 1, "{far}");
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
