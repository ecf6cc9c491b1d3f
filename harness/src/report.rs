//! Reports of one run: a line per property, what the target and the live
//! processes went through, and the trace around the finding. Writers are
//! passed in; nothing here prints on its own.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use crate::check::Property;
use crate::runner::{op_points, RunOutcome};
use crate::scenario::Expectation;

/// The verdict on one property.
#[derive(Clone, Debug, Serialize)]
pub struct PropertyLine {
    /// The property.
    pub property: Property,
    /// `pass`, `fail`, or `not-exercised`.
    pub status: &'static str,
    /// What was seen (the findings' sentences), if it failed.
    pub seen: Vec<String>,
    /// What the scenario expected, if anything.
    pub expected: Option<Expectation>,
    /// False for a failure the scenario did not expect.
    pub as_expected: bool,
}

/// Judges an outcome against the scenario's expectations.
pub fn judge(outcome: &RunOutcome, expect: &BTreeMap<Property, Expectation>) -> Vec<PropertyLine> {
    Property::ALL
        .into_iter()
        .map(|property| {
            let seen: Vec<String> = outcome
                .findings
                .iter()
                .filter(|f| f.property == property)
                .map(|f| f.seen.clone())
                .collect();
            let exercised = outcome.checked.contains(&property);
            let status = match (exercised, seen.is_empty()) {
                (false, _) => "not-exercised",
                (true, true) => "pass",
                (true, false) => "fail",
            };
            let expected = expect.get(&property).copied();
            // A scenario's expectations speak of all its crash points: one
            // run that passes where a failure is expected has just not hit
            // the failing point, so only an unexpected failure counts here.
            let as_expected = !matches!(
                (status, expected),
                ("fail", Some(Expectation::Pass)) | ("fail", None)
            );
            PropertyLine {
                property,
                status,
                seen,
                expected,
                as_expected,
            }
        })
        .collect()
}

/// True when every property is as expected (no unexpected finding).
pub fn all_as_expected(lines: &[PropertyLine]) -> bool {
    lines.iter().all(|line| line.as_expected)
}

struct Paint {
    color: bool,
}

impl Paint {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// Writes the human report of one run.
pub fn write_human(
    out: &mut dyn Write,
    title: &str,
    outcome: &RunOutcome,
    expect: &BTreeMap<Property, Expectation>,
    color: bool,
) -> io::Result<()> {
    let p = Paint { color };
    writeln!(out, "{}", p.paint("1", title))?;
    if outcome.faults.is_empty() {
        writeln!(out, "  faults:   none (undisturbed run)")?;
    } else {
        let fired = if outcome.fired.is_empty() {
            "none fired".to_owned()
        } else {
            format!("fired: {}", outcome.fired.join(", "))
        };
        writeln!(out, "  faults:   {} ({fired})", outcome.faults.join(" "))?;
    }
    let first = &outcome.first;
    let inode = |ino: Option<u64>| ino.map_or("-".to_owned(), |i| i.to_string());
    writeln!(
        out,
        "  strategy: {}; target is {} (inode {} -> {})",
        first.exit,
        first.target.class,
        inode(outcome.before.ino),
        inode(first.target.ino)
    )?;
    if !first.stderr.is_empty() {
        for line in first.stderr.lines() {
            writeln!(out, "            | {line}")?;
        }
    }
    if let Some(retry) = &outcome.retry {
        writeln!(
            out,
            "  retry:    {}; target is {} (inode {})",
            retry.exit,
            retry.target.class,
            inode(retry.target.ino)
        )?;
    }
    for live in outcome.live.iter().chain(&outcome.live_commands) {
        writeln!(out, "  live:     {}", live.describe())?;
    }
    for probe in &outcome.probes {
        writeln!(
            out,
            "  probe:    at {} ({}): {}",
            probe.point, probe.op, probe.seen
        )?;
    }
    writeln!(out)?;
    for line in judge(outcome, expect) {
        let status = match line.status {
            "pass" => p.paint("32", "pass"),
            "fail" => p.paint("31", "FAIL"),
            _ => p.paint("2", " -  "),
        };
        let expectation = match (line.expected, line.as_expected) {
            (Some(e), true) if line.status != "not-exercised" => {
                format!(
                    " (expected {})",
                    if e == Expectation::Pass {
                        "pass"
                    } else {
                        "fail"
                    }
                )
            }
            (Some(e), false) => p.paint(
                "31",
                &format!(
                    " (UNEXPECTED: expected {})",
                    if e == Expectation::Pass {
                        "pass"
                    } else {
                        "fail"
                    }
                ),
            ),
            _ => String::new(),
        };
        let detail = match line.status {
            "not-exercised" => p.paint("2", "not exercised by this run"),
            _ => line.seen.join("; "),
        };
        let text = format!(
            "  {:<8} {status}{expectation}  {detail}",
            line.property.name()
        );
        writeln!(out, "{}", text.trim_end())?;
    }
    if let Some(fired) = outcome.trace.iter().position(|op| op.fault.is_some()) {
        writeln!(out, "\n  trace around the fault (the strategy's ops):")?;
        let points = op_points(&outcome.trace);
        let from = fired.saturating_sub(6);
        let to = (fired + 3).min(outcome.trace.len());
        for (op, point) in outcome.trace[from..to].iter().zip(&points[from..to]) {
            let marker = if op.fault.is_some() { ">" } else { " " };
            writeln!(out, "  {marker} {point:<14} {op}")?;
        }
    }
    Ok(())
}

/// The JSON view of one run.
#[derive(Serialize)]
pub struct JsonReport<'a> {
    /// The scenario name.
    pub scenario: &'a str,
    /// Per property.
    pub properties: Vec<PropertyLine>,
    /// Everything observed.
    pub outcome: &'a RunOutcome,
}

/// Writes the JSON report of one run.
pub fn write_json(
    out: &mut dyn Write,
    scenario: &str,
    outcome: &RunOutcome,
    expect: &BTreeMap<Property, Expectation>,
) -> io::Result<()> {
    let report = JsonReport {
        scenario,
        properties: judge(outcome, expect),
        outcome,
    };
    serde_json::to_writer_pretty(&mut *out, &report)?;
    writeln!(out)
}
