//! JUnit XML, as cargo-nextest writes it: one test suite per scenario, one
//! test case per property (`classname` the scenario). A property not
//! exercised is skipped (never a success); one whose verdict the scenario
//! does not expect fails, its first finding the `message`, the property the
//! `type`, every finding with its reproduction and fix in the text; an
//! expected finding passes and says so in `system-out`. A fuzzing session
//! is one test case named `fuzz` (the seed a property), failing with its
//! smallest failing schedule.

use std::io::{self, Write};

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};

use super::{Body, FuzzBody, PropertyReport, Report, Status};
use crate::scenario::Expectation;

/// Writes `reports` as JUnit XML.
pub fn write(out: &mut dyn Write, reports: &[Report]) -> io::Result<()> {
    let mut junit = quick_junit::Report::new("swapfault");
    for report in reports {
        let suite = match &report.body {
            Body::Fuzz(fuzz) => fuzz_suite(report, fuzz),
            Body::Run(_) | Body::Explore(_) => property_suite(report),
        };
        junit.add_test_suite(suite);
    }
    junit.serialize(out).map_err(io::Error::other)
}

/// The suite's name: the scenario's, or for an ad-hoc strategy (whose
/// scenario is `check`) the command that reruns it, so that two
/// strategies in one merged file stay apart.
fn suite_name(report: &Report) -> String {
    match report.scenario.as_str() {
        "check" => report.command.clone(),
        name => name.to_owned(),
    }
}

/// One line per group of findings: where, what, how to reproduce, the fix.
fn finding_lines(property: &PropertyReport) -> Vec<String> {
    property
        .groups
        .iter()
        .map(|g| {
            format!(
                "{}: {} (reproduce: {}) (fix: {})",
                g.summary, g.seen, g.reproduce, g.fix
            )
        })
        .collect()
}

/// One test case per property, as nextest writes a test: `classname` the
/// scenario, a failure's `message` its first finding and `type` the
/// property, the findings in its text. A finding the scenario expects is a
/// success whose `system-out` names it, so a reader still learns of it.
fn property_suite(report: &Report) -> TestSuite {
    // Shards' files merge into one report: each names its share.
    let partition = match &report.body {
        Body::Explore(explored) => explored.points.partition,
        Body::Run(_) | Body::Fuzz(_) => None,
    };
    let name = suite_name(report);
    let mut suite = TestSuite::new(match partition {
        Some(partition) => format!("{name} (partition {partition})"),
        None => name.clone(),
    });
    for property in &report.properties {
        let lines = finding_lines(property);
        let mut expected_findings = None;
        let status = if !property.as_expected {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let message = match property.groups.first() {
                Some(group) => format!("{}: {}", property.property, group.seen),
                None => match &property.why_not_exercised {
                    Some(why) => format!("{} not exercised: {why}", property.property),
                    None => format!("{}: expected a finding, found none", property.property),
                },
            };
            let mut text = lines.clone();
            if let Some(why) = &property.why_not_exercised {
                text.push(format!("not exercised: {why}"));
            }
            status.set_message(message);
            status.set_type(property.property.name());
            status.set_description(if text.is_empty() {
                "expected a finding, found none".to_owned()
            } else {
                text.join("\n")
            });
            status
        } else if property.status == Status::NotExercised {
            let mut status = TestCaseStatus::skipped();
            if let Some(why) = &property.why_not_exercised {
                status.set_message(format!("not exercised: {why}"));
                status.set_description(format!("not exercised: {why}"));
            }
            status
        } else {
            if !lines.is_empty() {
                expected_findings = Some(format!(
                    "expected findings (the scenario expects {} to fail):\n{}",
                    property.property,
                    lines.join("\n")
                ));
            }
            TestCaseStatus::success()
        };
        let mut case = TestCase::new(property.property.name(), status);
        case.set_classname(name.clone());
        if let Some(expected) = property.expected {
            let expected = match expected {
                Expectation::Pass => "pass",
                Expectation::Fail => "fail",
            };
            case.add_property(("expected", expected));
        }
        if let Some(text) = expected_findings {
            case.set_system_out(text);
        }
        suite.add_test_case(case);
    }
    suite
}

/// A fuzzing session: one test case that fails with the smallest failing
/// schedule, its findings and the command that replays it.
fn fuzz_suite(report: &Report, fuzz: &FuzzBody) -> TestSuite {
    let mut suite = TestSuite::new(report.scenario.as_str());
    let status = match &fuzz.failing {
        Some(failing) => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let schedule: Vec<String> = failing.schedule.iter().map(|r| r.to_string()).collect();
            let first = report
                .properties
                .iter()
                .filter(|p| p.status == Status::Fail)
                .find_map(|p| Some((p.property, &p.groups.first()?.seen)));
            if let Some((property, seen)) = first {
                status.set_message(format!("{property}: {seen}"));
                status.set_type(property.name());
            } else {
                status.set_message(format!("failing schedule: {}", schedule.join(", ")));
            }
            let mut lines = vec![
                format!("failing schedule: {}", schedule.join(", ")),
                format!("replay: {}", failing.reproduce),
            ];
            for property in &report.properties {
                for group in &property.groups {
                    if property.status == Status::Fail {
                        lines.push(format!(
                            "{}: {}: {}",
                            property.property, group.summary, group.seen
                        ));
                    }
                }
            }
            status.set_description(lines.join("\n"));
            status
        }
        None => TestCaseStatus::success(),
    };
    // A stable name, so that test-history tools see one test across runs;
    // what varies (the seed, the count) goes in properties.
    let mut case = TestCase::new("fuzz", status);
    case.set_classname(suite_name(report));
    case.add_property(("seed", fuzz.stats.seed.to_string().as_str()));
    case.add_property(("cases", fuzz.stats.cases.to_string().as_str()));
    case.set_time(std::time::Duration::from_secs_f64(fuzz.stats.seconds));
    suite.add_test_case(case);
    suite
}
