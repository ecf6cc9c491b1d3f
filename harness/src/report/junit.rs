//! JUnit XML: one test suite per scenario, one test case per property. A
//! property not exercised is skipped (never a success); one whose verdict
//! the scenario does not expect fails, with its findings and reproductions.

use std::io::{self, Write};

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};

use super::{Report, Status};

/// Writes `reports` as JUnit XML.
pub fn write(out: &mut dyn Write, reports: &[Report]) -> io::Result<()> {
    let mut junit = quick_junit::Report::new("swapfault");
    for report in reports {
        // Shards' files merge into one report: each names its share.
        let mut suite = TestSuite::new(match report.points.partition {
            Some(partition) => format!("{} (partition {partition})", report.scenario),
            None => report.scenario.clone(),
        });
        for property in &report.properties {
            let status = if !property.as_expected {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let mut lines: Vec<String> = property
                    .groups
                    .iter()
                    .map(|g| format!("{}: {} (reproduce: {})", g.summary, g.seen, g.reproduce))
                    .collect();
                if let Some(why) = &property.why_not_exercised {
                    lines.push(format!("not exercised: {why}"));
                }
                if lines.is_empty() {
                    lines.push("expected a finding, found none".into());
                }
                status.set_description(lines.join("\n"));
                status
            } else if property.status == Status::NotExercised {
                let mut status = TestCaseStatus::skipped();
                if let Some(why) = &property.why_not_exercised {
                    status.set_description(format!("not exercised: {why}"));
                }
                status
            } else {
                TestCaseStatus::success()
            };
            suite.add_test_case(TestCase::new(property.property.name(), status));
        }
        junit.add_test_suite(suite);
    }
    junit.serialize(out).map_err(io::Error::other)
}

/// Writes a fuzzing session as JUnit XML: one suite for the scenario, one
/// test case that fails with the smallest failing schedule, its findings
/// and the command that replays it.
pub fn write_fuzz(out: &mut dyn Write, fuzz: &crate::fuzz::FuzzReport) -> io::Result<()> {
    let mut junit = quick_junit::Report::new("swapfault fuzz");
    let mut suite = TestSuite::new(fuzz.scenario.as_str());
    let status = match &fuzz.failing {
        Some(failing) => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let mut lines = vec![
                format!("failing schedule: {}", failing.schedule.join(", ")),
                format!("replay: {}", failing.reproduce),
            ];
            for property in failing.report.properties.iter() {
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
    let mut case = TestCase::new(
        format!("{} fault schedules (seed {})", fuzz.cases, fuzz.seed),
        status,
    );
    case.set_time(std::time::Duration::from_secs_f64(fuzz.seconds));
    suite.add_test_case(case);
    junit.add_test_suite(suite);
    junit.serialize(out).map_err(io::Error::other)
}
