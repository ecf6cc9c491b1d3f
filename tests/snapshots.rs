//! What users read, pinned: the human report of a run and of an
//! exploration, the JUnit CI reads, and a scenario error. Pids, inode
//! numbers, heartbeat counts and temp names differ from run to run and are
//! redacted; `cargo insta review` (or `INSTA_UPDATE=always`) takes a change.

use crate::support::swapfault;

/// The stdout of `swapfault ARGS`, its exit code checked.
fn stdout_of(args: &[&str], code: i32) -> String {
    let output = swapfault().args(args).output().expect("swapfault");
    assert_eq!(
        output.status.code(),
        Some(code),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts `text` against the snapshot `name`, redacted.
fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    for (pattern, replacement) in [
        (r"pid \d+", "pid [PID]"),
        (r"inode \d+ -> \d+", "inode [INO] -> [INO]"),
        (r"inode \d+\)", "inode [INO])"),
        // The sequence numbers of the mount count every process's ops.
        (r" #\d+ ", " #[SEQ] "),
        (r"\d+ heartbeats", "[N] heartbeats"),
        (r"\.swap\.[A-Za-z0-9]{6}", ".swap.[TMP]"),
        (r#"time="[0-9.]+""#, r#"time="[T]""#),
        (r#"timestamp="[^"]+""#, r#"timestamp="[TS]""#),
    ] {
        settings.add_filter(pattern, replacement);
    }
    settings.bind(|| insta::assert_snapshot!(name, text));
}

#[test]
fn the_human_report_of_a_killed_install() {
    let text = stdout_of(
        &[
            "run",
            "scenarios/install.toml",
            "--fault",
            "unlink#1:kill-after",
        ],
        0,
    );
    snapshot("run-install-killed", &text);
}

#[test]
fn the_human_report_of_an_exploration() {
    crate::support::require(crate::support::CATALOG_TOOLS);
    let text = stdout_of(&["explore", "scenarios/temp-rename.toml"], 0);
    snapshot("explore-temp-rename", &text);
}

#[test]
fn the_junit_of_an_exploration() {
    crate::support::require(crate::support::CATALOG_TOOLS);
    let dir = tempfile::tempdir().expect("dir");
    let junit = dir.path().join("junit.xml");
    let junit_arg = junit.to_string_lossy().into_owned();
    stdout_of(
        &[
            "explore",
            "scenarios/temp-rename.toml",
            "--junit",
            &junit_arg,
        ],
        0,
    );
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    snapshot("junit-temp-rename", &xml);
}

#[test]
fn a_scenario_error_is_one_line_with_the_fix() {
    let output = swapfault()
        .args(["run", "scenarios/invalid/bad-fault.toml"])
        .output()
        .expect("swapfault");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    snapshot("error-bad-fault", &stderr);
}
