//! The whole catalog explored once (`swapfault explore scenarios/`), and
//! the tests that read it: the expected matrix, known-bad strategies found
//! at the right crash points, and their reproductions replayed. A test
//! binary of its own: cargo runs it after the integration tests, so its
//! minutes of exploring never share the machine with them.

use std::sync::OnceLock;

#[allow(dead_code)]
#[path = "support.rs"]
mod support;

use harness::report::redact::redact_run_names;
use support::{
    explored, group_at, property, reports, swapfault, FindingGroup, PropertyReport, Report, Shown,
};

/// `swapfault explore scenarios/ --json --junit`, run once for the tests
/// that read it: its exit code, its reports and its JUnit.
fn catalog() -> &'static (Option<i32>, Vec<Shown<Report>>, String) {
    static CATALOG: OnceLock<(Option<i32>, Vec<Shown<Report>>, String)> = OnceLock::new();
    CATALOG.get_or_init(|| {
        support::require(support::CATALOG_TOOLS);
        let junit =
            std::env::temp_dir().join(format!("swapfault-junit-{}.xml", std::process::id()));
        let output = swapfault()
            .args(["explore", "scenarios/", "--json", "--junit"])
            .arg(&junit)
            .output()
            .expect("explore");
        let xml = std::fs::read_to_string(&junit).unwrap_or_default();
        let _ = std::fs::remove_file(&junit);
        (output.status.code(), reports(&output), xml)
    })
}

fn report<'a>(reports: &'a [Shown<Report>], scenario: &str) -> &'a Report {
    reports
        .iter()
        .find(|r| r.scenario == scenario)
        .unwrap_or_else(|| panic!("no exploration of {scenario}"))
}

#[test]
fn the_catalog_matrix_is_what_each_scenario_file_expects() {
    let (code, reports, junit) = catalog();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut checked = 0;
    for report in reports {
        let name = &report.scenario;
        let scenario =
            harness::Scenario::from_file(&dir.join(format!("{name}.toml"))).expect("scenario file");
        for (property_name, expectation) in scenario.expect() {
            let want = match expectation {
                harness::Expectation::Pass => "pass",
                harness::Expectation::Fail => "fail",
            };
            let got = property(report, property_name.name()).status.name();
            assert_eq!(got, want, "{name} {property_name}");
            checked += 1;
        }
    }
    assert!(checked >= 100, "only {checked} expectations checked");
    assert_eq!(*code, Some(0), "every scenario's [expect] holds");
    assert!(
        junit.contains("<testsuite name=\"cp\"") && junit.contains("<testcase name=\"live\""),
        "{junit}"
    );
}

/// The points of every group of `name`, as text.
fn points_of(report: &Report, name: &str) -> Vec<String> {
    property(report, name)
        .groups
        .iter()
        .flat_map(|g| g.points.iter().map(|p| p.to_string()))
        .collect()
}

#[test]
fn known_bad_strategies_fail_at_the_right_crash_point_with_what_was_seen() {
    let (_, reports, _) = catalog();
    // install unlinks first: between unlink and create there is no target.
    let install = report(reports, "install");
    let missing = group_at(install, "kill", "unlink#1:kill-after");
    assert_eq!(missing.seen, "after the kill the target is missing");
    let partial = group_at(install, "kill", "write#1:kill-after");
    assert_eq!(partial.seen, "after the kill the target is prefix-of-new");
    // temp + rename without fsync: the rename is durable before the data.
    let temp_rename = report(reports, "temp-rename");
    let empty = group_at(temp_rename, "power", "rename#1:power-cut=metadata-ordered");
    assert_eq!(
        empty.seen,
        "after the power cut the durable target is empty"
    );
    assert_eq!(
        empty.reproduce,
        "swapfault run 'scenarios/temp-rename.toml' --fault 'rename#1:power-cut=metadata-ordered'"
    );
    // The same cut under the strict model leaves old: no finding there.
    let points = points_of(temp_rename, "power");
    assert!(
        !points.iter().any(|p| p == "rename#1:power-cut=strict"),
        "{points:?}"
    );
    // In place, never synced: a cut finds the first write on disk and the
    // second not; with none written back it finds old, which is no finding.
    let pwrite = report(reports, "pwrite-in-place");
    let torn = group_at(
        pwrite,
        "power",
        "write#2:power-cut=metadata-ordered/written=65536",
    );
    assert!(
        torn.seen
            .starts_with("after the power cut the durable target is torn ("),
        "{torn:#?}"
    );
    let points = points_of(pwrite, "power");
    assert!(
        !points
            .iter()
            .any(|p| p == "write#2:power-cut=metadata-ordered"),
        "{points:?}"
    );
    // A failed fsync, ignored: the cut after the run finds the target empty.
    let ignoring = report(reports, "fsync-ignoring");
    let empty = group_at(
        ignoring,
        "power",
        "fsync#1:errno=EIO+power-cut=metadata-ordered",
    );
    assert_eq!(
        empty.seen,
        "after the power cut the durable target is empty"
    );
    // rename-aside: between its two renames there is no target at all.
    let rename_aside = report(reports, "rename-aside");
    let gap = group_at(rename_aside, "kill", "rename#1:kill-after");
    assert_eq!(gap.seen, "after the kill the target is missing");
    // A copy through a shared mapping: its writeback is the strategy's,
    // and a kill within it tears the target.
    let mmap = report(reports, "mmap-in-place");
    let torn = group_at(mmap, "kill", "write#1:kill-within=50%");
    assert!(
        torn.seen.starts_with("after the kill the target is torn ("),
        "{torn:#?}"
    );
    // cp writes the live inode in place, in every run.
    let cp = report(reports, "cp");
    let live = &property(cp, "live").groups[0];
    assert!(live.summary.starts_with("in "), "{live:#?}");
}

/// Runs the reproduction printed for `group` of `property` and asserts
/// that it finds what the exploration saw.
fn assert_reproduces(property: &PropertyReport, group: &FindingGroup) {
    let command = group
        .reproduce
        .replacen("swapfault", env!("CARGO_BIN_EXE_swapfault"), 1);
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} --json"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("replay");
    let replay = reports(&output).remove(0);
    let line = support::property(&replay, property.property.name());
    assert_eq!(
        line.status,
        harness::report::Status::Fail,
        "{command}: {replay:#}"
    );
    let got: Vec<String> = line
        .groups
        .iter()
        .map(|g| redact_run_names(&g.seen))
        .collect();
    assert!(
        got.contains(&redact_run_names(&group.seen)),
        "{command}: want {}, got {got:?}",
        group.seen
    );
}

/// Replays the reproductions of `scenario`'s findings, the first group of
/// each property or (`every`) all of them; returns how many.
fn replay_findings(scenario: &str, every: bool) -> usize {
    let (_, reports, _) = catalog();
    let exploration = report(reports, scenario);
    let mut replayed = 0;
    for property in &exploration.properties {
        let taken = if every { property.groups.len() } else { 1 };
        for group in property.groups.iter().take(taken) {
            if group.points.is_empty() {
                continue;
            }
            assert_reproduces(property, group);
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn every_sampled_reproduction_reproduces_its_finding() {
    let replayed: usize = [
        "cp",
        "install",
        "updater-prefix",
        "rename-aside",
        "temp-rename",
    ]
    .iter()
    .map(|scenario| replay_findings(scenario, false))
    .sum();
    assert!(replayed >= 10, "replayed {replayed}");
}

/// The directory swap renames the target's directory away and back, and
/// deletes directories the live canary still holds: between points the
/// reset must not hand back a dead directory, or the exploration and the
/// reproductions disagree.
#[test]
fn every_reproduction_of_the_directory_swap_reproduces_its_finding() {
    let replayed = replay_findings("dir-swap", true);
    assert!(replayed >= 7, "replayed {replayed}");
    let (_, reports, _) = catalog();
    let exploration = report(reports, "dir-swap");
    let kill = group_at(exploration, "kill", "rename#1:kill-after");
    assert_eq!(kill.seen, "after the kill the target is missing");
    // The stall right after the directory is renamed away shows it missing.
    let visible = &property(exploration, "visible").groups[0].seen;
    assert!(visible.contains("read: missing"), "{visible}");
}

/// A set of files that must change together: between rsync's delayed
/// renames a user starts the new executable with the old library, which
/// it refuses; a kill there leaves the set mixed. Every reproduction
/// printed for the set strategies finds the same.
#[test]
fn a_set_replaced_file_by_file_is_mixed_between_its_renames() {
    let (_, reports, _) = catalog();
    let rsync = report(reports, "rsync-delay-updates");
    let visible: Vec<&str> = property(rsync, "visible")
        .groups
        .iter()
        .map(|g| g.seen.as_str())
        .collect();
    assert!(
        visible.iter().any(|seen| seen
            .contains("exec: canary v2 refused to run with libcanary v1 (mixed versions)")),
        "{visible:?}"
    );
    let kill = &property(rsync, "kill").groups[0];
    assert_eq!(
        kill.seen,
        "after the kill the target is torn (canary new, libcanary.so old)"
    );
    // Swapped in as a whole, the set is never mixed.
    let exchange = report(reports, "dir-exchange");
    for name in ["visible", "kill", "power"] {
        assert_eq!(support::status(exchange, name), "pass", "{name}");
    }
    let replayed =
        replay_findings("rsync-delay-updates", true) + replay_findings("set-install-each", true);
    assert!(replayed >= 10, "replayed {replayed}");
}

/// The whole catalog explored at `size` with `extra` flags: its reports.
fn catalog_at(size: &str, extra: &[&str]) -> Vec<Shown<Report>> {
    let output = swapfault()
        .args(["explore", "scenarios/", "--json", "--size", size])
        .args(extra)
        .output()
        .expect("explore");
    reports(&output)
}

/// A group's key: its property and what was seen. What a probe sees while
/// an op is stalled depends on timing (it may wait on the directory lock),
/// so `visible` is keyed by its property alone; a torn target by its class,
/// not where its first point's bytes change (where rsync's SIGTERM handler
/// stops writing differs from run to run).
fn group_keys(report: &Report) -> std::collections::BTreeSet<(String, String)> {
    report
        .properties
        .iter()
        .flat_map(|p| {
            p.groups.iter().map(move |g| {
                let seen = match p.property.name() {
                    "visible" => String::new(),
                    _ => support::redact(g.seen.split(" (").next().unwrap_or_default()),
                };
                (p.property.name().to_owned(), seen)
            })
        })
        .collect()
}

#[test]
fn sampling_long_runs_keeps_every_verdict_group_and_reproduction_of_the_catalog() {
    support::require(support::CATALOG_TOOLS);
    // 3 MiB: NEW (7/8 of it) is 21 writes of 128 KiB, so every copying
    // strategy has a run long enough to be sampled (14 of 21 checked).
    let sampled = catalog_at("3MiB", &[]);
    let exhaustive = catalog_at("3MiB", &["--exhaustive"]);
    assert_eq!(sampled.len(), exhaustive.len(), "one report per scenario");
    let mut long_runs = 0;
    for every in &exhaustive {
        let name = &every.scenario;
        let some = report(&sampled, name);
        let (points, all) = (&explored(some).points, &explored(every).points);
        // Two kinds of strategy have recordings that differ from run to
        // run, on an idle machine too. rsync's receiver writes what its
        // pipe gave it, so at 3 MiB its recording may hold a write or two
        // more in one run than in the other. mmap-in-place's writes are the
        // kernel's writeback, split where the kernel starts it (FUSE's
        // strict dirty limit starts it early, by a share of recent
        // writeouts): 33 writes in one run, 35 in the next. Then the points
        // differ, and so may their names, but the verdicts and the groups
        // may not.
        let same_recording = explored(some).ops == explored(every).ops;
        if same_recording {
            assert_eq!(
                points.derived, all.derived,
                "{name}: the same points derived"
            );
        } else {
            assert!(
                name.starts_with("rsync") || name == "mmap-in-place",
                "{name}: the recordings differ"
            );
            eprintln!(
                "{name}: the two recordings differ ({} and {} ops): verdicts and groups compared",
                explored(some).ops,
                explored(every).ops
            );
        }
        long_runs += points.sampled.len();
        if !points.sampled.is_empty() {
            // Sampling left points out, and --exhaustive none.
            assert!(points.total < points.derived, "{name}: {points:?}");
            assert_eq!(all.total, all.derived, "{name}: {all:?}");
        }
        for (one, two) in some.properties.iter().zip(&every.properties) {
            assert_eq!(one.status, two.status, "{name} {}", one.property);
        }
        assert_eq!(
            group_keys(some),
            group_keys(every),
            "{name}: the same groups"
        );
        // Each group's first point was checked, in a group of the same
        // kind: its reproduce line is one the sampled run printed too.
        let checked: std::collections::BTreeSet<String> = explored(some)
            .point_results
            .iter()
            .map(|p| p.point.to_string())
            .collect();
        for property in every.properties.iter().filter(|_| same_recording) {
            for group in &property.groups {
                if let Some(first) = group.points.first() {
                    assert!(
                        checked.contains(&first.to_string()),
                        "{name} {}: {first} (first of `{}`) not checked",
                        property.property,
                        group.summary
                    );
                }
            }
        }
    }
    assert!(long_runs >= 10, "only {long_runs} long runs sampled");
}
