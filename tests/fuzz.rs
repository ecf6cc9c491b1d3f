//! `swapfault fuzz`: fault schedules across a run and its retries, found
//! where one fault per run finds nothing, shrunk, and replayed from the
//! printed command and from the regressions file.

use std::path::Path;

use harness::report::{Body, FailingSchedule, FuzzBody};

use crate::support::{
    reports, require, status, swapfault, swapfault_json, Report, Shown, CATALOG_TOOLS,
};

/// Runs `swapfault fuzz SCENARIO --json ARGS`; returns the exit code and
/// the report.
fn fuzz(scenario: &str, regressions: &Path, args: &[&str]) -> (Option<i32>, Shown<Report>) {
    let output = swapfault()
        .args(["fuzz", scenario, "--json", "--regressions"])
        .arg(regressions)
        .args(args)
        .output()
        .expect("fuzz");
    (output.status.code(), reports(&output).remove(0))
}

/// What a fuzz report says of its session.
fn fuzzed(report: &Report) -> &FuzzBody {
    match &report.body {
        Body::Fuzz(fuzz) => fuzz,
        _ => panic!("not a fuzz report"),
    }
}

/// The failing schedule of a fuzz report, with its replay.
fn failing(report: &Shown<Report>) -> &FailingSchedule {
    fuzzed(report)
        .failing
        .as_ref()
        .unwrap_or_else(|| panic!("no failing schedule: {report:#}"))
}

/// The failing schedule's faults.
fn schedule(report: &Shown<Report>) -> Vec<String> {
    failing(report)
        .schedule
        .iter()
        .map(|rule| rule.to_string())
        .collect()
}

/// Runs the printed replay command with `--json`; returns its report.
fn replay(report: &Shown<Report>) -> Shown<Report> {
    let command =
        failing(report)
            .reproduce
            .replacen("swapfault", env!("CARGO_BIN_EXE_swapfault"), 1);
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} --json"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("replay");
    reports(&output).remove(0)
}

#[test]
fn a_kill_inside_the_rollback_an_error_started_is_found_shrunk_and_kept() {
    require(CATALOG_TOOLS);
    let tmp = tempfile::tempdir().expect("tmp");
    let regressions = tmp.path().join("backup-rollback.fuzz-regressions");
    // The same seed makes the same cases, and shrinks them the same way
    // (bound by steps, not time): time enough to search that a loaded
    // machine runs as many cases as an idle one.
    let (code, report) = fuzz(
        "scenarios/backup-rollback.toml",
        &regressions,
        &["--seed", "2", "--time", "5m"],
    );
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(fuzzed(&report).stats.seed, 2);
    assert!(fuzzed(&report).stats.faults_fired > 0, "{report:#}");
    // Shrunk to the two faults: an error that starts the rollback, and a
    // kill after it removed the target, before it renamed the backup back.
    let faults = schedule(&report);
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(faults[0].contains(":errno="), "{faults:?}");
    assert_eq!(faults[1], "unlink#1:kill-after", "{faults:?}");
    // The report's verdicts are the failing schedule's replay.
    assert_eq!(status(&report, "kill"), "fail", "{report:#}");
    // The printed command replays it.
    let replayed = replay(&report);
    assert_eq!(status(&replayed, "kill"), "fail", "{replayed:#}");
    // Its seed is kept under a header, and replayed before any new case:
    // with no new case at all, it is found again.
    let kept = std::fs::read_to_string(&regressions).expect("regressions file");
    assert!(
        kept.starts_with("# swapfault fuzz regressions for backup-rollback"),
        "{kept}"
    );
    assert!(kept.contains("version control"), "{kept}");
    assert_eq!(
        kept.lines().filter(|l| l.starts_with("cc ")).count(),
        1,
        "{kept}"
    );
    let (code, again) = fuzz(
        "scenarios/backup-rollback.toml",
        &regressions,
        &["--seed", "5", "--cases", "0"],
    );
    assert_eq!(code, Some(1), "{again:#}");
    assert_eq!(schedule(&again), faults);
    let kept_again = std::fs::read_to_string(&regressions).expect("regressions file");
    assert_eq!(kept_again, kept, "a seed already kept is not kept twice");
}

#[test]
fn a_fault_inside_the_retry_of_a_resuming_updater_is_found() {
    require(CATALOG_TOOLS);
    let tmp = tempfile::tempdir().expect("tmp");
    let regressions = tmp.path().join("resume-staged.fuzz-regressions");
    let (code, report) = fuzz(
        "scenarios/resume-staged.toml",
        &regressions,
        &["--seed", "2", "--time", "5m"],
    );
    assert_eq!(code, Some(1), "{report:#}");
    // Two faults: one that leaves the staged file, one in the retry's
    // window between its unlink and its rename (a kill, a power cut, or a
    // stall where a user finds no target).
    let faults = schedule(&report);
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(faults[1].starts_with("retry:unlink#1"), "{faults:?}");
    let replayed = replay(&report);
    let found = replayed.properties.iter().flat_map(|p| &p.groups).any(|g| {
        g.points.first().map(|p| p.to_string()).as_ref() == Some(&faults[1])
            && g.seen.contains("missing")
    });
    assert!(found, "{replayed:#}");
}

/// A bug only a new version longer than the old shows: explore, at the
/// scenario's sizes (NEW shorter), passes it; fuzz draws the sizes too,
/// and its replay command names the size it drew.
#[test]
fn a_bug_of_a_longer_new_version_is_found_by_drawing_sizes() {
    require(CATALOG_TOOLS);
    let tmp = tempfile::tempdir().expect("tmp");
    let regressions = tmp.path().join("old-size-copy.fuzz-regressions");
    let (code, report) = fuzz(
        "scenarios/old-size-copy.toml",
        &regressions,
        &["--seed", "1", "--time", "5m"],
    );
    assert_eq!(code, Some(1), "{report:#}");
    let drawn = failing(&report).new_size.as_ref().expect("a drawn size");
    assert!(drawn.new_bytes > drawn.old_bytes, "{report:#}");
    let command = &failing(&report).reproduce;
    assert!(
        command.contains(&format!("--new-size {}", drawn.built_at)),
        "{command}"
    );
    let replayed = replay(&report);
    assert!(!replayed.as_expected, "{replayed:#}");
}

#[test]
fn the_full_recipe_survives_every_schedule() {
    require(CATALOG_TOOLS);
    let tmp = tempfile::tempdir().expect("tmp");
    let regressions = tmp.path().join("atomic-fsync.fuzz-regressions");
    let (code, report) = fuzz(
        "scenarios/atomic-fsync.toml",
        &regressions,
        // Time enough for every case on a loaded machine.
        &["--seed", "1", "--cases", "60", "--time", "10m"],
    );
    assert_eq!(code, Some(0), "{report:#}");
    assert!(fuzzed(&report).failing.is_none(), "{report:#}");
    let stats = &fuzzed(&report).stats;
    assert_eq!(stats.cases, 60);
    // A clean search is a claim only if its faults fired: each case's
    // first fault is at an op of the recorded run, which every case makes.
    let (placed, fired) = (stats.faults_placed, stats.faults_fired);
    assert!(fired >= 60, "{placed} placed, {fired} fired");
    assert!(fired <= placed, "{placed} placed, {fired} fired");
    assert!(!regressions.exists(), "nothing failed, so nothing is kept");
}

/// The seed decides the cases and the order they are judged in, not the
/// workers that run them: one worker and two find the same schedule after
/// the same cases, with the same faults fired.
#[test]
fn the_same_seed_gives_the_same_schedule_with_any_number_of_workers() {
    require(CATALOG_TOOLS);
    let tmp = tempfile::tempdir().expect("tmp");
    let run = |workers: &str| {
        fuzz(
            "scenarios/backup-rollback.toml",
            &tmp.path().join(workers),
            &["--seed", "5", "--time", "5m", "--workers", workers],
        )
        .1
    };
    let (one, two) = (run("1"), run("2"));
    let (a, b) = (&fuzzed(&one).stats, &fuzzed(&two).stats);
    assert_eq!((a.workers, b.workers), (1, 2));
    let counts = |s: &harness::outcome::FuzzStats| {
        (s.cases, s.faults_placed, s.faults_fired, s.shrink_steps)
    };
    assert_eq!(counts(a), counts(b), "{one:#} {two:#}");
    assert_eq!(schedule(&one), schedule(&two));
}

/// A flaw the scenario expects (the fixed self-updater's temp file after an
/// interruption: `tidy = "fail"`) does not stop the search: fuzz looks for
/// failures of the other properties, and the fix, under the macOS model,
/// has none in its schedules.
#[test]
fn an_expected_flaw_does_not_stop_the_search_for_others() {
    require(CATALOG_TOOLS);
    let tmp = tempfile::tempdir().expect("tmp");
    let regressions = tmp.path().join("self-update-rename.fuzz-regressions");
    let (code, report) = fuzz(
        "scenarios/self-update-rename.toml",
        &regressions,
        &[
            "--platform",
            "macos",
            "--seed",
            "1",
            "--cases",
            "60",
            "--time",
            "10m",
        ],
    );
    assert_eq!(code, Some(0), "{report:#}");
    assert!(fuzzed(&report).failing.is_none(), "{report:#}");
    assert_eq!(fuzzed(&report).stats.cases, 60);
    // Its cases did hit the flaw they look past: tidy fails at a kill
    // during the temp file's write, as explore finds.
    let (_, replay) = swapfault_json(&[
        "run",
        "scenarios/self-update-rename.toml",
        "--platform",
        "macos",
        "--fault",
        "write#3:kill-after",
    ]);
    assert_eq!(status(&replay, "tidy"), "fail", "{replay:#}");
    assert!(fuzzed(&report).stats.faults_fired >= 60, "{report:#}");
}

/// A flaw that needs no fault (install drops the target's xattrs in every
/// run) is reported as a flaw of the undisturbed run: the shrinker tries
/// the empty schedule first, and no fault is blamed.
#[test]
fn a_flaw_of_the_undisturbed_run_blames_no_fault() {
    let (code, report) = swapfault_json(&[
        "fuzz",
        "--strategy",
        r#"install "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#,
        "--seed",
        "1",
        "--time",
        "60s",
    ]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(schedule(&report), Vec::<String>::new(), "{report:#}");
    assert_eq!(status(&report, "meta"), "fail", "{report:#}");
}
