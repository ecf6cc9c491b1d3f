//! JUnit XML: one test suite per scenario, one test case per property. A
//! property not exercised is skipped (never a success); one whose verdict
//! the scenario does not expect fails, with its findings and reproductions.
//! A fuzzing session is one test case, failing with its smallest failing
//! schedule.

use std::io::{self, Write};

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};

use super::{Body, FuzzBody, Report, Status};

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

/// One test case per property.
fn property_suite(report: &Report) -> TestSuite {
    // Shards' files merge into one report: each names its share.
    let partition = match &report.body {
        Body::Explore(explored) => explored.points.partition,
        Body::Run(_) | Body::Fuzz(_) => None,
    };
    let mut suite = TestSuite::new(match partition {
        Some(partition) => format!("{} (partition {partition})", report.scenario),
        None => report.scenario.clone(),
    });
    for property in &report.properties {
        let status = if !property.as_expected {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let mut lines: Vec<String> = property
                .groups
                .iter()
                .map(|g| {
                    format!(
                        "{}: {} (reproduce: {}) (fix: {})",
                        g.summary, g.seen, g.reproduce, g.fix
                    )
                })
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
    let mut case = TestCase::new(
        format!(
            "{} fault schedules (seed {})",
            fuzz.stats.cases, fuzz.stats.seed
        ),
        status,
    );
    case.set_time(std::time::Duration::from_secs_f64(fuzz.stats.seconds));
    suite.add_test_case(case);
    suite
}
