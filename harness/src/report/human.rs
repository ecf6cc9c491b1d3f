//! The terminal view of a [`Report`]: a line per property, then per group
//! of findings where it was seen, what was seen and the command that
//! reproduces it. A report of one run also says what the strategy, the
//! retry, the live processes and the probes went through, and shows the
//! trace around the fault. Colour only when asked (a terminal).

use std::io::{self, Write};

use super::{counted, Body, ExploreBody, FuzzBody, PropertyReport, Report, RunBody, Status};
use crate::observe::{StrategyRun, TargetState};
use crate::outcome::{unsupported_call, Coverage, Points, Property, DRAWN, UNSUPPORTED_CALL_HINT};
use crate::scenario::Expectation;

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

    fn status(&self, status: Status) -> String {
        match status {
            Status::Pass => self.paint("32", "pass"),
            Status::Fail => self.paint("31", "FAIL"),
            Status::NotExercised => self.paint("2", " -  "),
        }
    }
}

fn expectation_name(expectation: Expectation) -> &'static str {
    match expectation {
        Expectation::Pass => "pass",
        Expectation::Fail => "fail",
    }
}

/// Writes the human report: a heading, what the command did, then a line
/// per property with its groups of findings.
pub fn write(out: &mut dyn Write, report: &Report, color: bool) -> io::Result<()> {
    let p = Paint { color };
    match &report.body {
        Body::Run(run) => {
            let title = format!("swapfault: {} ({})", report.scenario, report.target);
            writeln!(out, "{}", p.paint("1", &title))?;
            write_run_details(out, run)?;
            writeln!(out)?;
            write_properties(out, &report.properties, false, &p)?;
            write_trace(out, run)
        }
        Body::Explore(explored) => {
            writeln!(out, "{}", p.paint("1", &explore_heading(report, explored)))?;
            for line in sampling_lines(&explored.points) {
                writeln!(out, "  {line}")?;
            }
            if explored.points.total == 0 && !explored.interrupted {
                let why = nothing_tested(explored.record_failed.as_deref());
                writeln!(out, "  {}", p.paint("31", &why))?;
            }
            write_properties(out, &report.properties, true, &p)?;
            if !explored.errors.is_empty() {
                writeln!(
                    out,
                    "  {} could not be checked:",
                    counted(explored.errors.len(), "crash point")
                )?;
                for error in &explored.errors {
                    writeln!(out, "    {}: {}", error.point, error.error)?;
                }
            }
            Ok(())
        }
        Body::Fuzz(fuzz) => write_fuzz(out, report, fuzz, &p),
    }
}

/// Why an exploration derived no crash point: the strategy failed before
/// it changed anything (`failed`: how, in its words), or it changed
/// nothing swapfault saw.
fn nothing_tested(failed: Option<&str>) -> String {
    match failed {
        // fault-fs answers FUSE_TMPFILE with EOPNOTSUPP: a limit of the
        // tool, not of the strategy, and the user must hear which.
        Some(how) if unsupported_call(how) => format!(
            "nothing was tested: the strategy failed before it changed anything ({how}) \
             (hint: {UNSUPPORTED_CALL_HINT})"
        ),
        Some(how) => format!(
            "nothing was tested: the strategy failed before it changed anything ({how}) \
             (hint: `swapfault run` shows the run and its trace)"
        ),
        None => "nothing was tested: the strategy changed nothing that swapfault saw \
                 (hint: work done by a process the strategy did not start, such as a \
                 daemon it asks or `systemd-run`, is outside its sandbox)"
            .to_owned(),
    }
}

/// A line per property, and its groups of findings (with their
/// reproductions, `explored`).
fn write_properties(
    out: &mut dyn Write,
    properties: &[PropertyReport],
    explored: bool,
    p: &Paint,
) -> io::Result<()> {
    for property in properties {
        let mut line = format!(
            "  {:<8} {}",
            property.property.name(),
            p.status(property.status)
        );
        match (property.expected, property.as_expected) {
            (Some(e), false) => line.push_str(&p.paint(
                "31",
                &format!(" (UNEXPECTED: expected {})", expectation_name(e)),
            )),
            (Some(e), true) if !explored && property.status == Status::Fail => {
                line.push_str(&format!(" (expected {})", expectation_name(e)))
            }
            _ => {}
        }
        if let Some(why) = &property.why_not_exercised {
            line.push_str(&p.paint("2", &format!(" not exercised: {why}")));
        }
        if let Some(part) = &property.part_not_exercised {
            line.push_str(&p.paint("2", &format!(" ({part})")));
        }
        writeln!(out, "{}", line.trim_end())?;
        for (n, group) in property.groups.iter().enumerate() {
            writeln!(out, "    - {}: {}", group.summary, group.seen)?;
            if explored {
                writeln!(out, "      reproduce: {}", group.reproduce)?;
            }
            // Said once for the groups that share it, after the last of them.
            let next = property.groups.get(n + 1).map(|g| g.fix.as_str());
            if !group.fix.is_empty() && next != Some(group.fix.as_str()) {
                writeln!(out, "      fix: {}", group.fix)?;
            }
        }
    }
    Ok(())
}

/// `swapfault explore: NAME (46 ops recorded, 88 crash points checked: …)`.
fn explore_heading(report: &Report, explored: &ExploreBody) -> String {
    let points = &explored.points;
    let checked = if let Some(partition) = points.partition {
        format!(
            "{} of {} (partition {partition})",
            points.checked,
            counted(points.total, "crash point")
        )
    } else if points.checked < points.total {
        format!(
            "{} of {}",
            points.checked,
            counted(points.total, "crash point")
        )
    } else {
        counted(points.checked, "crash point")
    };
    // Every retry is run, or taken from a point that left a state of the
    // same class: say how many of each.
    let ran = match points.retries {
        1 => "1 retry".to_owned(),
        n => format!("{n} retries"),
    };
    let retries = match points.retries_taken {
        0 => format!("; {ran} run"),
        taken => format!("; {ran} run, {taken} taken from a point that left the same state"),
    };
    format!(
        "swapfault explore: {} ({} recorded, {checked} checked: {} run, {} computed from the recording in {}{retries}{})",
        report.scenario,
        counted(explored.ops, "op"),
        points.run,
        counted(points.computed, "power cut"),
        counted(points.durable_states, "durable state"),
        if explored.interrupted { ", INTERRUPTED" } else { "" }
    )
}

/// What sampling left out, one line per long run of alike ops and one for
/// the points (none when every point was checked).
fn sampling_lines(points: &Points) -> Vec<String> {
    let Coverage::Sampled { seed } = points.coverage else {
        return Vec::new();
    };
    if points.sampled.is_empty() {
        return Vec::new();
    }
    let mut lines: Vec<String> = points
        .sampled
        .iter()
        .map(|run| {
            format!(
                "sampled: {} of the {} {} ops on {} from {}: the first, the last, every power \
                 of two and {DRAWN} drawn with seed {seed}",
                run.checked, run.ops, run.kind, run.path, run.first
            )
        })
        .collect();
    if points.varied_classes > 0 {
        lines.push(format!(
            "retries: {} differed from point to point: their points were run again, \
             each with a retry of its own",
            counted(points.varied_classes, "state class")
        ));
    }
    lines.push(format!(
        "sampled: {} of {} (--exhaustive checks every one)",
        points.total,
        counted(points.derived, "crash point")
    ));
    lines
}

/// What the strategy, retry, live processes and probes of one run did.
fn write_run_details(out: &mut dyn Write, run: &RunBody) -> io::Result<()> {
    let outcome = &run.run;
    let seen = &outcome.observed;
    if outcome.faults.is_empty() {
        writeln!(out, "  faults:   none (undisturbed run)")?;
    } else {
        let rules: Vec<String> = outcome.faults.iter().map(|r| r.to_string()).collect();
        let fired: Vec<String> = seen.fired.iter().map(|p| p.to_string()).collect();
        let fired = if fired.is_empty() {
            "none fired".to_owned()
        } else {
            format!("fired: {}", fired.join(", "))
        };
        writeln!(out, "  faults:   {} ({fired})", rules.join(" "))?;
    }
    let inode = |ino: Option<u64>| ino.map_or("-".to_owned(), |i| i.to_string());
    // A symlinked target: the file it resolves to.
    let via = |target: &TargetState| {
        target
            .resolved
            .as_ref()
            .map_or(String::new(), |path| format!(" at {path}"))
    };
    let first = &seen.first;
    writeln!(
        out,
        "  strategy: {}; target is {} (inode {} -> {}{})",
        first.exit,
        first.target.class,
        inode(seen.before.ino),
        inode(first.target.ino),
        via(&first.target)
    )?;
    for line in first.stderr.lines() {
        writeln!(out, "            | {line}")?;
    }
    write_self_update(out, first)?;
    for name in &first.other_names {
        writeln!(out, "  link:     {name}")?;
    }
    for (index, retry) in seen.retries.iter().enumerate() {
        let label = match index {
            0 => "retry:".to_owned(),
            n => format!("retry{}:", n + 1),
        };
        writeln!(
            out,
            "  {label:<9} {}; target is {} (inode {}{})",
            retry.exit,
            retry.target.class,
            inode(retry.target.ino),
            via(&retry.target)
        )?;
        write_self_update(out, retry)?;
    }
    for live in &seen.live {
        writeln!(out, "  live:     {}", live.describe())?;
    }
    for probe in &seen.probes {
        writeln!(
            out,
            "  probe:    at {}{} ({}): {}",
            fault_fs::phase_prefix(probe.at.phase),
            probe.at.op,
            probe.op,
            probe.seen
        )?;
    }
    Ok(())
}

/// What a self-updating program said of a run, and the platform's kill.
fn write_self_update(out: &mut dyn Write, run: &StrategyRun) -> io::Result<()> {
    if let Some(update) = &run.self_update {
        writeln!(out, "            self-update: {update}")?;
    }
    if let Some(kill) = &run.killed_by_platform {
        writeln!(out, "            killed by the platform {kill}")?;
    }
    Ok(())
}

/// The strategy's ops around the first fault that fired.
fn write_trace(out: &mut dyn Write, run: &RunBody) -> io::Result<()> {
    let trace = &run.run.trace;
    let Some(fired) = trace.iter().position(|op| op.fault.is_some()) else {
        return Ok(());
    };
    writeln!(out, "\n  trace around the fault (the strategy's ops):")?;
    let from = fired.saturating_sub(6);
    let to = (fired + 3).min(trace.len());
    for op in &trace[from..to] {
        let marker = if op.fault.is_some() { ">" } else { " " };
        writeln!(out, "  {marker} {:<14} {op}", op.name.to_string())?;
    }
    Ok(())
}

/// A strategy-by-property matrix of several reports.
pub fn write_matrix(out: &mut dyn Write, reports: &[Report]) -> io::Result<()> {
    write!(out, "{:<24}", "strategy")?;
    for property in Property::ALL {
        write!(out, " {:<8}", property.name())?;
    }
    writeln!(out)?;
    for report in reports {
        write!(out, "{:<24}", report.scenario)?;
        for property in &report.properties {
            let mut cell = match property.status {
                Status::NotExercised => "-".to_owned(),
                status => status.name().to_owned(),
            };
            if !property.as_expected {
                cell.push('!');
            }
            write!(out, " {cell:<8}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "(- not exercised; ! marks a verdict the scenario did not expect)"
    )
}

/// A fuzzing session: what was tried, the smallest failing schedule with
/// the command and scenario lines that replay it, and its run's report.
fn write_fuzz(out: &mut dyn Write, report: &Report, fuzz: &FuzzBody, p: &Paint) -> io::Result<()> {
    let stats = &fuzz.stats;
    writeln!(
        out,
        "{}",
        p.paint(
            "1",
            &format!(
                "swapfault fuzz: {} ({}, seed {}, {:.1} s)",
                report.scenario,
                counted(stats.cases as usize, "case"),
                stats.seed,
                stats.seconds
            )
        )
    )?;
    writeln!(
        out,
        "  {} placed, {} fired{}",
        counted(stats.faults_placed as usize, "fault"),
        stats.faults_fired,
        if fuzz.failing.is_some() {
            " (before the first failing case)"
        } else {
            ""
        }
    )?;
    if stats.interrupted {
        writeln!(out, "  interrupted: the cases above are those that ran")?;
    }
    if let Some(limit) = &stats.search_limit {
        writeln!(out, "  {limit}")?;
    }
    let Some(failing) = &fuzz.failing else {
        writeln!(
            out,
            "  no failing fault schedule (the same schedules again: --seed {})",
            stats.seed
        )?;
        return Ok(());
    };
    let schedule: Vec<String> = failing.schedule.iter().map(|r| r.to_string()).collect();
    if schedule.is_empty() {
        writeln!(
            out,
            "  {}: the undisturbed run already fails (no fault is to blame; fix this first)",
            p.paint("31", "FAILING with no fault at all"),
        )?;
    } else {
        writeln!(
            out,
            "  {} of {}, shrunk in {}: {}",
            p.paint("31", "FAILING schedule"),
            counted(schedule.len(), "fault"),
            counted(stats.shrink_steps as usize, "run"),
            schedule.join(", ")
        )?;
    }
    if let Some(drawn) = &failing.new_size {
        writeln!(
            out,
            "  with the new canary built at {} bytes (the files: old {} bytes, new {})",
            drawn.built_at, drawn.old_bytes, drawn.new_bytes
        )?;
    }
    if let Some(limit) = &stats.shrink_limit {
        writeln!(out, "  {limit}")?;
    }
    writeln!(out, "  replay: {}", failing.reproduce)?;
    writeln!(out, "  as scenario lines:")?;
    for line in failing.snippet.lines() {
        writeln!(out, "    {line}")?;
    }
    if let Some(path) = &stats.regressions {
        writeln!(
            out,
            "  its seed is kept in {} (replayed before new cases; keep it in version control)",
            path.display()
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{}", p.paint("1", "the failing schedule, replayed:"))?;
    write_run_details(out, &failing.replay)?;
    writeln!(out)?;
    write_properties(out, &report.properties, false, p)?;
    write_trace(out, &failing.replay)
}
