//! The same verdict on any machine: a sandbox inside the strategy, a
//! helper that outlives it, a fixed path under /tmp shared by the workers,
//! a loaded machine and a suspended swapfault all give the points and
//! findings an idle machine gives.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{
    assert_same_points, explore_json, explored, findings_by_point, group_at, require, swapfault,
    verdicts_by_point, Verdicts,
};

const INSTALL: &str = r#"install "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#;

/// What a probe sees while a namespace op is stalled depends on timing (it
/// may wait on the directory lock), so `visible` agrees on its status only.
fn comparable(verdicts: Verdicts) -> Verdicts {
    verdicts
        .into_iter()
        .map(|(property, status, seen)| {
            let seen = if property == "visible" {
                Vec::new()
            } else {
                seen
            };
            (property, status, seen)
        })
        .collect()
}

#[test]
fn a_sandbox_inside_the_strategy_is_still_the_strategy() {
    // Installers run their copy under unshare, bwrap or firejail: the ops
    // of a PID namespace nested in the strategy's are the strategy's, and
    // a kill or an error in them is found as it is without the sandbox.
    require(&[("unshare", "util-linux"), ("bwrap", "bubblewrap")]);
    let plain = comparable(verdicts_by_point(&explore_json(&["--strategy", INSTALL])));
    assert!(plain
        .iter()
        .any(|(p, status, _)| p == "kill" && status == "fail"));
    let bwrap = "bwrap --bind / / --dev-bind /dev /dev --unshare-pid --proc /proc";
    for nested in [
        format!("unshare --pid --fork {INSTALL}"),
        format!("unshare --pid --fork unshare --pid --fork {INSTALL}"),
        format!("{bwrap} {INSTALL}"),
        format!("{bwrap} {bwrap} {INSTALL}"),
    ] {
        let seen = comparable(verdicts_by_point(&explore_json(&["--strategy", &nested])));
        assert_eq!(seen, plain, "{nested}");
    }
}

/// A strategy that starts a detached helper and exits 0 at once; the
/// helper waits for its parent to be gone, then stages a copy next to the
/// target and renames it over, as Squirrel's or Sparkle's helpers do.
const HELPER: &str = r#"p=$$; (setsid sh -c "while kill -0 $p 2>/dev/null; do sleep 0.05; done; cp \"\$SWAPFAULT_NEW\" \"\$SWAPFAULT_TARGET.tmp\" && mv \"\$SWAPFAULT_TARGET.tmp\" \"\$SWAPFAULT_TARGET\"" &); exit 0"#;

#[test]
fn a_helper_that_swaps_after_the_strategy_exits_is_waited_for() {
    // Ending the run at the first exit raced the helper: three explorations
    // gave three reports. What the helper does is the strategy's.
    let first = explore_json(&["--strategy", HELPER]);
    let points = findings_by_point(&first);
    assert!(explored(&first).ops > 0, "{first:#}");
    for _ in 0..2 {
        let again = findings_by_point(&explore_json(&["--strategy", HELPER]));
        assert_same_points("the helper again", &points, &again);
    }
    assert_eq!(
        crate::support::status(&first, "result"),
        "pass",
        "{first:#}"
    );
    // Nobody sees the helper's exit status: an error in its rename leaves
    // the old target behind a strategy that said 0.
    let group = group_at(&first, "errors", "rename#1:errno=EIO");
    assert_eq!(
        group.seen,
        "the strategy exited 0 after the error, but the target is old"
    );
    // A helper that never ends is a tidy finding at the linger bound, in
    // every run, not a hang.
    let never = format!("{INSTALL} && (setsid sleep 600 &)");
    let report = explore_json(&["--strategy", &never, "--linger", "1s", "--max-runs", "3"]);
    let tidy = crate::support::property(&report, "tidy");
    assert_eq!(tidy.status.name(), "fail", "{report:#}");
    assert!(
        tidy.groups[0].seen.starts_with(
            "processes left running after the strategy exited, killed at the linger bound: "
        ),
        "{report:#}"
    );
}

#[test]
fn a_download_cached_at_a_fixed_path_in_tmp_is_each_runs_own() {
    // Not $TMPDIR: the host's /tmp itself. Two workers once shared it, and
    // the second run's `cp` found the first one's file.
    let cached = r#"set -e; mkdir /tmp/swapfault-updater-cache; cp "$SWAPFAULT_NEW" /tmp/swapfault-updater-cache/new; install /tmp/swapfault-updater-cache/new "$SWAPFAULT_TARGET""#;
    let one = explore_json(&["--strategy", cached, "--workers", "1"]);
    assert_eq!(crate::support::status(&one, "result"), "pass", "{one:#}");
    let four = explore_json(&["--strategy", cached, "--workers", "4"]);
    assert_same_points(
        "1 and 4 workers",
        &findings_by_point(&one),
        &findings_by_point(&four),
    );
    assert!(
        !std::path::Path::new("/tmp/swapfault-updater-cache").exists(),
        "the strategy wrote to the host's /tmp"
    );
}

/// CPU hogs and a disk writer in a process group of their own, killed when
/// dropped: the loaded CI machine the issue saw, made on purpose.
struct Load {
    hogs: Child,
    _dir: tempfile::TempDir,
}

impl Load {
    fn start() -> Load {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = format!(
            "for i in 1 2 3 4; do (while :; do :; done) & done; \
             while :; do dd if=/dev/zero of={}/f bs=1M count=64 conv=fsync status=none; done",
            dir.path().display()
        );
        let hogs = Command::new("sh")
            .args(["-c", &script])
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the load");
        Load { hogs, _dir: dir }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // SAFETY: killing the process group we made.
        unsafe { libc::kill(-(self.hogs.id() as i32), libc::SIGKILL) };
        let _ = self.hogs.wait();
    }
}

/// Scenarios whose findings do not hang on timing of their own (rsync's op
/// count does: it reads in chunks as data arrives).
const STEADY: &[&str] = &[
    "scenarios/install.toml",
    "scenarios/atomic-fsync.toml",
    "scenarios/updater-prefix.toml",
    "scenarios/backup-rollback.toml",
    "scenarios/cp.toml",
];

fn failed_properties(
    points: Vec<(String, Vec<(String, String)>)>,
) -> Vec<(String, Vec<(String, String)>)> {
    points
        .into_iter()
        .map(|(spec, mut seen)| {
            // cp harms canaries at nearly every point: whether one died of
            // SIGBUS or ran changed code depends on when it beat, on any
            // machine, so only the failing live property is compared.
            for (property, what) in &mut seen {
                if property == "live" {
                    what.clear();
                }
            }
            seen.dedup();
            (spec, seen)
        })
        .collect()
}

#[test]
fn a_loaded_machine_gives_the_verdicts_of_an_idle_one() {
    let idle: Vec<_> = STEADY
        .iter()
        .map(|s| failed_properties(findings_by_point(&explore_json(&[s]))))
        .collect();
    let load = Load::start();
    for (scenario, idle) in STEADY.iter().zip(&idle) {
        let loaded = failed_properties(findings_by_point(&explore_json(&[scenario])));
        assert_same_points(&format!("{scenario} under load"), idle, &loaded);
    }
    drop(load);
}

#[test]
fn a_suspended_swapfault_gives_the_verdicts_of_a_running_one() {
    // Stopped (Ctrl-Z, a frozen VM, a CI runner swapped out) for longer
    // than a run's timeout and continued: the time it stood still is not
    // the strategy's, and no run times out or is cut short.
    let args = [
        "scenarios/install.toml",
        "--timeout",
        "5s",
        "--workers",
        "1",
    ];
    let plain = findings_by_point(&explore_json(&args));
    let mut child = swapfault()
        .arg("explore")
        .args(args)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start explore");
    let pid = child.id() as i32;
    let (mut sent, mut landed) = (0, 0);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        sent += 1;
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_millis(200));
        // Some sandboxes (a CI runner's among them) never stop a process
        // on SIGSTOP: only a stop that landed is one.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains("stopped"))
        {
            landed += 1;
        }
        std::thread::sleep(Duration::from_secs(6));
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
    }
    // An exploration that ended before the first stop would prove nothing.
    assert!(sent > 0, "explore ended before it could be stopped");
    let output = child.wait_with_output().expect("explore ends");
    let stopped = crate::support::reports(&output).remove(0);
    assert_same_points(
        "stopped and continued",
        &plain,
        &findings_by_point(&stopped),
    );
    if landed == 0 {
        eprintln!("not exercised: SIGSTOP did not stop a process on this machine");
    }
}
