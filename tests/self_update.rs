//! Self-replacing programs and the macOS code-signing model: the built-in
//! program that replaces its own file and executes itself again, run for
//! real on the mount under Linux and under the model.

use harness::observe::{Exit, Observations, TargetClass};

use crate::support::{
    explored, first_group, property, reports, require, run_of, seen, status, swapfault, Report,
    Shown,
};

/// What the canary needs: a C compiler.
const CANARY_TOOLS: &[(&str, &str)] = &[("cc", "gcc")];

/// Runs `swapfault ARGS --json`; returns the exit code and the report
/// (of `explore` of one scenario, its one report).
fn json(args: &[&str]) -> (Option<i32>, Shown<Report>) {
    let output = swapfault()
        .args(args)
        .arg("--json")
        .output()
        .expect("swapfault");
    (output.status.code(), reports(&output).remove(0))
}

/// `swapfault COMMAND SCENARIO --platform macos`, which must meet the
/// scenario's `[expect_macos]`; returns its report.
fn under_macos(command: &str, scenario: &str) -> Shown<Report> {
    let (code, report) = json(&[command, scenario, "--platform", "macos"]);
    assert_eq!(
        code,
        Some(0),
        "{scenario}'s [expect_macos] holds: {report:#}"
    );
    report
}

/// The observations of a single run's report.
fn observed(report: &Report) -> &Observations {
    &run_of(report).observed
}

#[test]
fn the_self_updating_program_runs_its_new_version_after_a_rename() {
    require(CANARY_TOOLS);
    let (code, report) = json(&[
        "check",
        "--self-update",
        "rename+fsync+copy-meta",
        "--target",
        "exe",
    ]);
    assert_eq!(code, Some(0), "{report:#}");
    let update = observed(&report)
        .first
        .self_update
        .as_ref()
        .expect("a self-update report");
    assert!(update.replaced, "{update:#?}");
    // The image it executed again is the new executable's code.
    assert_eq!(update.running, Some((2, 1)), "{update:#?}");
    assert_eq!(status(&report, "live"), "pass");
    assert_eq!(
        status(&report, "meta"),
        "pass",
        "copy-meta keeps mode and xattrs"
    );
}

#[test]
fn in_place_on_linux_did_not_replace_truthfully_or_not() {
    require(CANARY_TOOLS);
    // Linux refuses to open a running executable for writing.
    let (code, report) = json(&["check", "--self-update", "in-place", "--target", "exe"]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(
        seen(&report, "result"),
        [
            "did not replace: the strategy failed (exit 1) and the target is still old: \
          open $RUN/mnt/app/canary: Text file busy"
        ]
    );
    assert!(
        observed(&report).first.stderr.contains("Text file busy"),
        "{report:#}"
    );
    // It never executed itself again: nothing earned a live verdict.
    assert_eq!(
        property(&report, "live").why_not_exercised.as_deref(),
        Some("the self-updating program never executed itself again: it gave up at open: Text file busy")
    );
    // The same, claiming success: the exit is a lie, and what it executed
    // is still the old code.
    let (_, report) = json(&[
        "check",
        "--self-update",
        "in-place+ignore-errors",
        "--target",
        "exe",
    ]);
    assert_eq!(
        seen(&report, "result"),
        ["did not replace, yet the strategy exited 0: the target is still old"]
    );
    assert!(
        seen(&report, "live")
            .iter()
            .any(|s| s.contains("runs exe v1 / lib v1 code: it did not replace itself")),
        "{report:#}"
    );
}

/// The seed's chain, end to end: in place with O_TRUNC, killed by code
/// signing, the target left empty, the retry stopped by the staging dir.
#[test]
fn under_the_macos_model_the_in_place_self_update_is_killed_and_its_retry_fails() {
    require(CANARY_TOOLS);
    let report = under_macos("run", "scenarios/self-update-inplace.toml");
    let first = &observed(&report).first;
    assert_eq!(first.exit, Exit::Signal(9));
    assert_eq!(first.target.class, TargetClass::Empty, "{first:#?}");
    let kill = first.killed_by_platform.as_ref().expect("a platform kill");
    assert_eq!(
        kill.reason, "code signature invalid: page of app/canary changed on disk",
        "{kill:#?}"
    );
    assert!(kill.what.contains("O_TRUNC"), "{kill:#?}");
    let retry = &observed(&report).retries[0];
    assert_eq!(retry.exit, Exit::Code(1));
    assert!(
        retry.stderr.contains("update-staging: File exists"),
        "{retry:#?}"
    );
    assert!(
        seen(&report, "retry")[0].starts_with("after the platform killed the strategy at "),
        "{report:#}"
    );
    assert!(
        seen(&report, "live")[0].contains("code signature invalid"),
        "{report:#}"
    );
    // The reproduction names the platform.
    let command = &first_group(&report, "result").reproduce;
    assert!(command.ends_with("--platform macos"), "{command}");
}

/// The fix, explored at every crash point under the model: kill, live,
/// retry and meta pass (and every other expectation of its file holds).
#[test]
fn under_the_macos_model_the_fixed_self_update_passes_every_crash_point() {
    require(CANARY_TOOLS);
    let report = under_macos("explore", "scenarios/self-update-rename.toml");
    for name in ["kill", "live", "retry", "meta", "power"] {
        assert_eq!(status(&report, name), "pass", "{name}: {report:#}");
    }
    let points = &explored(&report).points;
    assert!(points.run > 20, "{points:#?}");
}

/// The in-place updater explored under the model, as its file expects:
/// this is what the catalog test cannot check, as it explores each file
/// under the file's own platform.
#[test]
fn under_the_macos_model_the_in_place_self_update_meets_its_expectations() {
    require(CANARY_TOOLS);
    let report = under_macos("explore", "scenarios/self-update-inplace.toml");
    assert!(
        seen(&report, "kill")
            .iter()
            .any(|s| s == "after the kill the target is empty"),
        "{report:#}"
    );
}

/// The model kills the live canary whose library `cp` writes in place,
/// and names the file; `install` writes a new inode and harms nobody.
#[test]
fn under_the_macos_model_a_library_changed_in_place_kills_who_maps_it() {
    require(CANARY_TOOLS);
    let cp = r#"cp "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#;
    let (_, report) = json(&["check", "--strategy", cp, "--platform", "macos"]);
    let live = seen(&report, "live");
    assert_eq!(live.len(), 1, "{report:#}");
    assert!(
        live[0].ends_with(
            "died: killed by SIGKILL (code signature invalid: page of app/libcanary.so changed on disk)"
        ),
        "{live:?}"
    );
    // Under Linux the same cp harms it too, but as Linux does: its mapping
    // changes or is cut short (SIGBUS), and no signature is checked.
    let (_, linux) = json(&["check", "--strategy", cp]);
    let live = seen(&linux, "live");
    assert!(
        !live.is_empty() && !live[0].contains("code signature"),
        "{linux:#}"
    );
    let install = r#"install -m 0755 "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#;
    let (_, report) = json(&["check", "--strategy", install, "--platform", "macos"]);
    assert_eq!(status(&report, "live"), "pass", "{report:#}");
}
