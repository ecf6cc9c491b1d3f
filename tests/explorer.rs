//! The explorer: reproductions, workers, Ctrl-C, the strategy's whole
//! process tree in scope, rootless runs, partitions. (The whole catalog's
//! matrix is `tests/matrix.rs`, a binary of its own.)

use std::process::Stdio;
use std::time::Duration;

use crate::support::{
    assert_nothing_left, assert_same_points, explore_json, explored, findings_by_point,
    first_group, group_at, interrupt, property, reports, status, swapfault, swapfault_json,
    verdicts_by_point, wait_for, Report, Verdicts,
};

#[test]
fn ctrl_c_stops_explore_and_leaves_no_mount() {
    crate::support::require(crate::support::CATALOG_TOOLS);
    let tmp = tempfile::tempdir().expect("tmp");
    // The whole catalog on one worker: long enough to be interrupted.
    let mut child = swapfault()
        .args(["explore", "scenarios/", "--workers", "1"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("explore");
    // Its mounts are private: its run dir tells that it is under way.
    assert!(wait_for(Duration::from_secs(20), || {
        std::fs::read_dir(tmp.path()).is_ok_and(|mut dir| dir.next().is_some())
    }));
    assert_eq!(interrupt(&mut child), Some(130));
    assert_nothing_left(tmp.path(), None);
}

#[test]
fn the_same_points_and_findings_on_one_worker_or_two() {
    // Random temp names, and one mount per worker reset between points.
    let one = findings_by_point(&explore_json(&[
        "scenarios/temp-rename.toml",
        "--workers",
        "1",
    ]));
    let two = findings_by_point(&explore_json(&[
        "scenarios/temp-rename.toml",
        "--workers",
        "2",
    ]));
    assert!(one.len() > 20, "{one:?}");
    assert_same_points("one worker and two", &one, &two);
    // cp harms the canary at nearly every point, so canaries are restarted
    // all along. Whether one dies of SIGBUS or runs changed code depends on
    // when it beats, so here only the failing properties must agree.
    let properties = |points: Vec<(String, Vec<(String, String)>)>| -> Vec<(String, Vec<String>)> {
        points
            .into_iter()
            .map(|(spec, seen)| {
                let mut failed: Vec<String> = seen.into_iter().map(|(p, _)| p).collect();
                failed.dedup();
                (spec, failed)
            })
            .collect()
    };
    let one = properties(findings_by_point(&explore_json(&[
        "scenarios/cp.toml",
        "--workers",
        "1",
    ])));
    let two = properties(findings_by_point(&explore_json(&[
        "scenarios/cp.toml",
        "--workers",
        "2",
    ])));
    assert_same_points("one worker and two", &one, &two);
}

#[test]
fn a_canary_harmed_at_one_point_is_not_blamed_on_the_next() {
    // The first run installs (harmless); a retry, after an interruption,
    // copies in place (harmful). Stall points have no retry: their canary
    // must be unharmed even when the point before harmed the worker's canary.
    let dir = tempfile::tempdir().expect("dir");
    let scenario = dir.path().join("harm-on-retry.toml");
    std::fs::write(
        &scenario,
        r#"[strategy]
command = 'd=$(dirname "$SWAPFAULT_TARGET"); if [ -e "$d/.tried" ]; then cp "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET"; else touch "$d/.tried" && install "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET"; fi'
"#,
    )
    .expect("write scenario");
    let path = scenario.to_string_lossy().into_owned();
    let points = findings_by_point(&explore_json(&[&path, "--workers", "1"]));
    let harms = |seen: &[(String, String)]| seen.iter().any(|(p, _)| p == "live");
    // A kill after the marker's create: the retry copies over the old inode.
    let harmful = points
        .iter()
        .find(|(spec, _)| spec == "create#1:kill-after")
        .expect("a kill after the marker's create");
    assert!(harms(&harmful.1), "{harmful:?}");
    let mut harmed_before = false;
    let mut stalls_after_harm = 0;
    for (spec, seen) in &points {
        if spec.contains(":stall=") {
            assert!(!harms(seen), "{spec}: {seen:?}");
            stalls_after_harm += usize::from(harmed_before);
        } else if harms(seen) {
            harmed_before = true;
        }
    }
    assert!(stalls_after_harm > 0, "{points:?}");
}

#[test]
fn ctrl_c_kills_the_run_under_way_and_reports_nothing_it_cut_short() {
    // The recording itself would take 30 s; Ctrl-C must not wait for it, and
    // what a killed recording saw is no finding.
    let tmp = tempfile::tempdir().expect("tmp");
    let mut child = swapfault()
        .args(["explore", "--strategy", "sleep 32", "--json"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("explore");
    assert!(wait_for(Duration::from_secs(20), || {
        crate::support::process_running("sleep\x0032\x00")
    }));
    let mut stdout = child.stdout.take().expect("stdout");
    assert_eq!(interrupt(&mut child), Some(130));
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut stdout, &mut json).expect("read stdout");
    let output = std::process::Output {
        status: child.wait().expect("status"),
        stdout: json,
        stderr: Vec::new(),
    };
    let reports = reports(&output);
    let exploration = &reports[0];
    assert!(explored(exploration).interrupted);
    assert_eq!(explored(exploration).points.checked, 0);
    for property in &exploration.properties {
        assert_eq!(property.status.name(), "not-exercised", "{property:#?}");
        assert_eq!(
            property.why_not_exercised.as_deref(),
            Some("stopped during the recording")
        );
    }
    assert_nothing_left(tmp.path(), Some("sleep\x0032\x00"));
}

#[test]
fn the_install_exploration_reads_in_45_lines_and_the_json_keeps_every_finding() {
    let install = [
        "--strategy",
        r#"install "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#,
        "--size",
        "1MiB",
    ];
    let output = swapfault()
        .arg("explore")
        .args(install)
        .output()
        .expect("explore");
    let human = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{human}");
    // 40 lines of findings, and a fix line per property that failed.
    let lines = human.trim_end().lines().count();
    assert!(lines <= 45, "{lines} lines:\n{human}");
    let report = explore_json(&install);
    // Every finding at every point is in the JSON, and in one of the groups
    // the human report prints (two lines each, under a heading and a line
    // per property, and a fix line under the last group of a fix).
    let mut grouped = std::collections::BTreeSet::new();
    // A finding of the undisturbed run seen again at crash points is one
    // group that counts them (the old target's xattr, lost by install).
    let mut recurring = std::collections::BTreeSet::new();
    let mut groups = 0;
    for property in &report.properties {
        for group in &property.groups {
            groups += 1;
            if group.recurs_at.is_some() {
                recurring.insert((property.property, group.seen.clone()));
            }
            for point in &group.points {
                grouped.insert((property.property, point.to_string()));
            }
        }
    }
    assert!(1 + 9 + 2 * groups <= 40, "{groups} groups");
    let mut findings = 0;
    let explored = explored(&report);
    for result in &explored.point_results {
        for finding in &result.findings {
            let key = (finding.property, result.point.to_string());
            let recurs = (finding.property, finding.seen.clone());
            assert!(
                grouped.contains(&key) || recurring.contains(&recurs),
                "{key:?} is in no group"
            );
            findings += 1;
        }
    }
    assert!(findings > 40, "only {findings} findings");
    assert_eq!(explored.points.checked, explored.points.total);
}

#[test]
fn max_runs_says_how_many_of_all_the_points_were_checked() {
    let output = swapfault()
        .args(["explore", "scenarios/temp-rename.toml", "--max-runs", "5"])
        .output()
        .expect("explore");
    let human = String::from_utf8_lossy(&output.stdout);
    let heading = human.lines().next().unwrap_or_default();
    assert!(
        heading.contains("(73 ops recorded, 5 of 59 crash points checked"),
        "{heading}"
    );
}

#[test]
fn a_strategy_that_leaves_its_process_group_is_still_the_strategy() {
    // timeout, setsid and nohup change process groups, a double-forked
    // helper is nobody's child: the strategy's PID namespace holds them all.
    let install = r#"install "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#;
    let plain = verdicts_by_point(&explore_json(&["--strategy", install]));
    assert!(
        plain.iter().any(|(_, status, _)| status == "fail"),
        "{plain:?}"
    );
    // What a probe sees while a namespace op is stalled depends on timing
    // (it may wait on the directory lock), so visible agrees on its status.
    let comparable = |verdicts: Verdicts| {
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
            .collect::<Vec<_>>()
    };
    let plain = comparable(plain);
    for wrapped in [
        format!("timeout 60 {install}"),
        format!("setsid -w {install}"),
        // A double-forked helper in a session of its own; its parent waits
        // for the status it sends through a pipe.
        format!(r#"(setsid sh -c '{install}; echo $?' &) | {{ read -r s; exit "$s"; }}"#),
        format!("nohup {install} >/dev/null 2>&1 & wait $!"),
    ] {
        let seen = comparable(verdicts_by_point(&explore_json(&["--strategy", &wrapped])));
        assert_eq!(seen, plain, "{wrapped}");
    }
    // A bare `wait` returns 0 whatever the job did: install's failure after
    // an error is hidden, and that is a finding of its own.
    let lying = format!("nohup {install} >/dev/null 2>&1 & wait");
    let report = explore_json(&["--strategy", &lying]);
    let group = group_at(&report, "errors", "unlink#1:errno=EIO");
    assert_eq!(
        group.seen,
        "the strategy exited 0 after the error, but the target is old"
    );
}

#[test]
fn a_process_left_running_is_a_tidy_finding_not_a_hang() {
    let (code, report) = crate::support::swapfault_json(&[
        "check",
        "--strategy",
        r#"install "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET" && (setsid sleep 60 &)"#,
    ]);
    assert_eq!(code, Some(1), "{report:#}");
    let tidy = property(&report, "tidy");
    assert_eq!(tidy.status.name(), "fail");
    let seen = &tidy.groups[0].seen;
    // Named as it was seen then: `setsid`, or `sleep` once it had exec'd.
    assert!(
        seen.starts_with(
            "processes left running after the strategy exited, killed at the linger bound: "
        ),
        "{seen}"
    );
    // It was killed with its namespace: no `sleep 60` runs on (a machine
    // loaded by the other tests may take seconds to finish the kill).
    assert!(wait_for(Duration::from_secs(10), || {
        !crate::support::process_running("sleep\x0060\x00")
    }));
}

#[test]
fn the_ops_of_a_strategys_other_threads_are_its_own() {
    crate::support::require(&[("python3", "python3")]);
    // FUSE names the calling thread, not its process: a copy made on a
    // second thread was once out of scope, never traced nor faulted, and
    // every property "not exercised".
    let threaded = r#"python3 -c 'import os, shutil, threading
t = threading.Thread(target=shutil.copyfile, args=(os.environ["SWAPFAULT_NEW"], os.environ["SWAPFAULT_TARGET"]))
t.start(); t.join()'"#;
    let report = explore_json(&["--strategy", threaded]);
    assert!(explored(&report).ops > 0, "{report:#}");
    let group = group_at(&report, "kill", "write#1:kill-after");
    assert_eq!(group.seen, "after the kill the target is prefix-of-new");
}

#[test]
fn a_download_staged_in_tmpdir_is_crash_points_and_the_retry_sees_what_the_kill_left() {
    // Downloads to $TMPDIR, and trusts a download already there: killed
    // during the download, its retry installs the part it finds.
    let strategy = r#"dl="${TMPDIR:?}/download"; [ -e "$dl" ] || cp "$SWAPFAULT_NEW" "$dl"; install "$dl" "$SWAPFAULT_TARGET""#;
    let report = explore_json(&["--strategy", strategy]);
    let group = group_at(&report, "retry", "write#1:kill-after");
    assert!(
        group.seen.contains("prefix-of-new"),
        "the retry installed the partial download: {group:#?}"
    );
    // Staged through a temp file and a move across file systems (not a
    // rename): a kill between its unlink and its create leaves no target.
    // This guards the other way: a TMPDIR on the target's own file system
    // would make the move an atomic rename and hide the bug.
    let moved = r#"f=$(mktemp); cp "$SWAPFAULT_NEW" "$f" && mv "$f" "$SWAPFAULT_TARGET""#;
    let report = explore_json(&["--strategy", moved]);
    let group = group_at(&report, "kill", "unlink#1:kill-after");
    assert_eq!(group.seen, "after the kill the target is missing");
}

#[test]
fn a_resume_that_goes_wrong_past_some_length_is_caught_with_retries_shared() {
    // A resuming download with a bug: a part past half of NEW is taken for
    // a whole one. Killed while the part is short, its retry finishes the
    // part; killed past half, it installs the part. Kills at each of the
    // copy's writes leave parts that differ only in length; the retries
    // they share must not hide the difference: the default report must give
    // the verdicts and findings --exhaustive (which shares nothing) gives.
    // (Not every point: a part of 896 KiB, the first past half, shares the
    // class of the 512 KiB–1 MiB parts, and is caught only where an audit
    // lands on it; the parts past 1 MiB are a class that fails.)
    let strategy = r#"p="$SWAPFAULT_TARGET.part"
if [ -e "$p" ]; then
  n=$(stat -c %s "$p"); full=$(stat -c %s "$SWAPFAULT_NEW")
  [ $((n * 2)) -ge "$full" ] || tail -c +$((n + 1)) "$SWAPFAULT_NEW" >> "$p"
else
  cp "$SWAPFAULT_NEW" "$p"
fi
mv "$p" "$SWAPFAULT_TARGET""#;
    let args = ["--strategy", strategy, "--size", "2MiB"];
    let shared = explore_json(&args);
    let every = explore_json(&[&args[..], &["--exhaustive"]].concat());
    let points = &explored(&shared).points;
    assert!(
        points.retries_taken > 0,
        "no retry was shared, so this tests nothing: {shared:#}"
    );
    assert_eq!(explored(&every).points.retries_taken, 0, "{every:#}");
    // Past half of NEW (1.75 MiB in 128 KiB writes): the part is installed.
    let group = group_at(&shared, "retry", "write#8:kill-after");
    assert!(group.seen.contains("prefix-of-new"), "{group:#?}");
    assert_eq!(
        verdicts(&shared),
        verdicts(&every),
        "shared retries and --exhaustive disagree"
    );
}

#[test]
fn a_strategy_that_fails_with_no_fault_is_a_usage_error_with_its_own_words() {
    // A tool the machine lacks, and a scenario moved away from the script
    // its strategy runs: every crash point would only repeat the failure.
    let moved = tempfile::tempdir().expect("dir");
    let file = moved.path().join("temp-rename.toml");
    std::fs::copy("scenarios/temp-rename.toml", &file).expect("copy");
    let missing = r#"no-such-tool -d "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#;
    let cases: [(&[&str], &str); 3] = [
        (
            &["explore", "--strategy", missing],
            "no-such-tool: not found",
        ),
        (
            &["fuzz", "--strategy", missing, "--time", "10s"],
            "no-such-tool: not found",
        ),
        (
            &["explore", file.to_str().expect("utf-8")],
            "cannot open strategies/temp-rename.sh",
        ),
    ];
    for (args, said) in cases {
        let tmp = tempfile::tempdir().expect("tmp");
        let stderr = usage_error(args, tmp.path());
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains("the strategy fails with no fault injected (")
                && stderr.contains("(hint: fix it first")
                && stderr.contains(said),
            "{args:?}: {stderr}"
        );
        assert_nothing_left(tmp.path(), None);
    }
}

#[test]
fn a_closed_stdout_ends_explore_quietly_and_bad_input_says_so_before_any_run() {
    use std::io::Read;
    let tmp = tempfile::tempdir().expect("tmp");
    // Its reader leaves after 10 bytes (`| head -c 10`): 141, as a shell
    // reports SIGPIPE, with nothing on stderr and nothing left behind.
    let mut child = swapfault()
        .args([
            "explore",
            "--strategy",
            "install \"$SWAPFAULT_NEW\" \"$SWAPFAULT_TARGET\"",
        ])
        .args(["--size", "4MiB", "--json"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("explore");
    let mut head = [0u8; 10];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut head)
        .expect("the report's first bytes");
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(141));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert_nothing_left(tmp.path(), None);
    // No scenario and no strategy: both ways are named. An output file
    // that cannot be written: said at once, before anything runs.
    for (args, said) in [
        (&["explore"][..], "--strategy"),
        (
            &[
                "explore",
                "--strategy",
                "true",
                "--junit",
                "/nonexistent/x.xml",
            ][..],
            "cannot write /nonexistent/x.xml",
        ),
    ] {
        let stderr = usage_error(args, tmp.path());
        assert!(stderr.contains(said), "{args:?}: {stderr}");
        assert_nothing_left(tmp.path(), None);
    }
}

/// Runs swapfault with `args` and its temp dirs in `tmp`; asserts a usage
/// error (exit 2) and returns its stderr.
fn usage_error(args: &[&str], tmp: &std::path::Path) -> String {
    let output = swapfault()
        .args(args)
        .env("TMPDIR", tmp)
        .output()
        .expect("swapfault");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    stderr
}

#[test]
fn a_strategy_that_damages_the_programs_other_files_fails_result() {
    // Installs the new library, then "prunes" what the new version does not
    // ship: the program itself. Or swaps in a directory mkdtemp made (0700).
    let pruning = r#"install -m 0755 "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET" && rm "$(dirname "$SWAPFAULT_TARGET")/canary""#;
    let private_dir = r#"d=$(dirname "$SWAPFAULT_TARGET"); n=$(mktemp -d "$d.XXXXXX") && cp -a "$d"/* "$n" && cp -a "$SWAPFAULT_NEW" "$n/$(basename "$SWAPFAULT_TARGET")" && mv -T "$d" "$d.old" && mv -T "$n" "$d" && rm -rf "$d.old""#;
    for (strategy, seen) in [
        (pruning, "app/canary: missing"),
        (private_dir, "app/: mode 0700, was 0755"),
    ] {
        let (code, report) = crate::support::swapfault_json(&["check", "--strategy", strategy]);
        assert_eq!(code, Some(1), "{report:#}");
        let group = crate::support::first_group(&report, "result");
        assert!(
            group
                .seen
                .starts_with("the strategy damaged what it had no reason to touch: ")
                && group.seen.contains(seen),
            "{report:#}"
        );
    }
}

/// Runs swapfault as `nobody` (uid 65534) with its own cache dir, as a user
/// without root would; /dev/fuse gets the mode distributions ship it with.
fn swapfault_as_nobody(cache: &std::path::Path) -> std::process::Command {
    crate::support::require(&[("setpriv", "util-linux")]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata("/dev/fuse")
        .expect("/dev/fuse")
        .permissions()
        .mode();
    if mode & 0o666 != 0o666 {
        std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o20666))
            .expect("chmod 0666 /dev/fuse (as CI does; the rootless tests run as root)");
    }
    std::os::unix::fs::chown(cache, Some(65534), Some(65534)).expect("chown the cache");
    let mut command = std::process::Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_swapfault"))
        .env("SWAPFAULT_CACHE", cache)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// Per property: its status and what was seen (not where: the same tool
/// may make other ops as another user, e.g. install sets an ACL as root).
fn verdicts(report: &Report) -> Vec<(String, String, std::collections::BTreeSet<String>)> {
    verdicts_by_point(report)
        .into_iter()
        .map(|(property, status, seen)| {
            (
                property,
                status,
                seen.into_iter().map(|(_, what)| what).collect(),
            )
        })
        .collect()
}

#[test]
fn without_root_check_and_explore_give_the_verdicts_of_root() {
    let cache = tempfile::tempdir().expect("cache dir");
    let install = r#"install "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#;
    for args in [
        vec!["explore", "--strategy", install],
        vec!["explore", "scenarios/atomic-fsync.toml"],
        vec!["explore", "scenarios/mv-cross-fs.toml"],
        vec![
            "check",
            "--strategy",
            install,
            "--fault",
            "write#1:kill-after",
        ],
        vec![
            "check",
            "--strategy",
            install,
            "--fault",
            "create#1:stall=10s",
        ],
    ] {
        let as_root = swapfault()
            .args(&args)
            .arg("--json")
            .output()
            .expect("as root");
        let rootless = swapfault_as_nobody(cache.path())
            .args(&args)
            .arg("--json")
            .output()
            .expect("as nobody");
        assert_eq!(
            rootless.status.code(),
            as_root.status.code(),
            "{args:?}: {}",
            String::from_utf8_lossy(&rootless.stderr)
        );
        let (root, nobody) = (&reports(&as_root)[0], &reports(&rootless)[0]);
        // The same statuses, and the same findings but for meta's at
        // interruptions: as real root, mv and install set the mode with an
        // ACL (setxattr) where in the user namespace they chmod, so an
        // error there leaves a different mode behind.
        let comparable = |report: &Report| {
            verdicts(report)
                .into_iter()
                .map(|(property, status, seen)| {
                    let seen = if property == "meta" {
                        seen.into_iter()
                            .filter(|s| !s.starts_with(harness::judge::NEW_BYTES_BUT))
                            .collect()
                    } else {
                        seen
                    };
                    (property, status, seen)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(comparable(nobody), comparable(root), "{args:?}");
        // One uid is mapped: the owner part of meta says it was not exercised.
        let (root_meta, nobody_meta) = (property(root, "meta"), property(nobody, "meta"));
        assert!(
            !root_meta
                .part_not_exercised
                .as_deref()
                .is_some_and(|part| part.contains("owner")),
            "{args:?}: {root_meta:#?}"
        );
        assert!(
            nobody_meta
                .part_not_exercised
                .as_deref()
                .is_some_and(|part| part.starts_with("owner not exercised")),
            "{args:?}: {nobody_meta:#?}"
        );
    }
}

#[test]
fn the_full_recipe_and_a_synced_link_aside_pass_everything_ad_hoc() {
    // Ad hoc, the old target has an xattr and the new version is shorter:
    // every property can be exercised, and none may be a false "unsafe".
    crate::support::require(&[("python3", "python3")]);
    for strategy in [
        "python3 scenarios/strategies/atomic-fsync.py",
        "python3 scenarios/strategies/link-aside-fsync.py",
    ] {
        let report = explore_json(&["--strategy", strategy]);
        for (property, status, seen) in verdicts_by_point(&report) {
            assert_eq!(status, "pass", "{strategy}: {property}: {seen:?}");
        }
    }
}

#[test]
fn a_copy_through_a_shared_mapping_is_killed_within_the_pages_it_stored() {
    // Old and new of one size: the copy through a shared mapping changes
    // no attribute, and its stores reach the file only as the kernel's
    // writeback. A kill among those stores leaves the first part.
    crate::support::require(&[("python3", "python3")]);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("old.bin"),
        crate::support::pattern(1, 256 * 1024),
    )
    .expect("old");
    std::fs::write(
        dir.path().join("new.bin"),
        crate::support::pattern(2, 256 * 1024),
    )
    .expect("new");
    let strategy = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/strategies/mmap-in-place.py");
    let scenario = dir.path().join("mmap.toml");
    std::fs::write(
        &scenario,
        format!(
            "[target]\nold = \"old.bin\"\nnew = \"new.bin\"\n\
             [strategy]\ncommand = \"python3 '{}'\"\n",
            strategy.display()
        ),
    )
    .expect("scenario");
    let report = explore_json(&[&scenario.to_string_lossy()]);
    let kill = &property(&report, "kill").groups;
    assert_eq!(kill.len(), 1, "{kill:#?}");
    let points: Vec<String> = kill[0].points.iter().map(|p| p.to_string()).collect();
    assert_eq!(points, ["write#1:kill-within=50%"]);
    assert_eq!(
        kill[0].seen,
        "after the kill the target is torn (first 128 KiB new, rest old)"
    );
    // Python's mmap closes its descriptor without a look at the writeback
    // error, and the strategy's own close finds it taken: it exits 0.
    let error = group_at(&report, "errors", "write#1:errno=EIO");
    assert_eq!(
        error.seen,
        "the strategy exited 0 after the error, but the target is old"
    );
}

/// `--partition K/N` on N machines checks every crash point exactly once:
/// the shards' points are the whole exploration's, with no overlap; each
/// shard is judged on its share (an expected finding in another share is
/// no failure), so together they find what the whole finds; their JUnit
/// suites are named apart, to merge.
#[test]
fn partitions_cover_every_crash_point_once() {
    const SHARDS: usize = 3;
    let scenario = "scenarios/temp-rename.toml";
    let points_of = |report: &Report| -> Vec<String> {
        explored(report)
            .point_results
            .iter()
            .map(|r| r.point.to_string())
            .collect()
    };
    let failing_of = |report: &Report| -> Vec<String> {
        report
            .properties
            .iter()
            .filter(|p| p.status.name() == "fail")
            .map(|p| p.property.name().to_owned())
            .collect()
    };
    let whole = swapfault()
        .args(["explore", scenario, "--json"])
        .output()
        .expect("explore");
    assert_eq!(
        whole.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );
    let whole = reports(&whole).remove(0);
    let all = points_of(&whole);
    assert_eq!(all.len(), explored(&whole).points.total);
    assert!(
        all.len() >= SHARDS * 5,
        "too few points to share: {}",
        all.len()
    );

    let mut seen: Vec<String> = Vec::new();
    let mut failing: Vec<String> = Vec::new();
    for k in 1..=SHARDS {
        let junit =
            std::env::temp_dir().join(format!("swapfault-shard-{k}-{}.xml", std::process::id()));
        let output = swapfault()
            .args([
                "explore",
                scenario,
                "--json",
                "--partition",
                &format!("{k}/{SHARDS}"),
                "--junit",
            ])
            .arg(&junit)
            .output()
            .expect("explore a shard");
        let xml = std::fs::read_to_string(&junit).unwrap_or_default();
        let _ = std::fs::remove_file(&junit);
        // Each shard is as expected: the expected power and tidy findings
        // may all be in another shard.
        assert_eq!(
            output.status.code(),
            Some(0),
            "shard {k}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let shard = reports(&output).remove(0);
        let counts = &explored(&shard).points;
        assert_eq!(
            counts.partition.map(|p| p.to_string()),
            Some(format!("{k}/{SHARDS}"))
        );
        assert_eq!(counts.total, explored(&whole).points.total);
        let points = points_of(&shard);
        assert_eq!(points.len(), counts.checked);
        for point in points {
            assert!(!seen.contains(&point), "{point} is in two shards");
            seen.push(point);
        }
        failing.extend(failing_of(&shard));
        assert!(
            xml.contains(&format!("name=\"temp-rename (partition {k}/{SHARDS})\"")),
            "{xml}"
        );
    }
    seen.sort();
    let mut all = all;
    all.sort();
    assert_eq!(seen, all, "the shards' points are the whole exploration's");
    failing.sort();
    failing.dedup();
    let mut whole_failing = failing_of(&whole);
    whole_failing.sort();
    assert_eq!(failing, whole_failing);
}

#[test]
fn an_owner_is_judged_as_root_and_refused_rootless_with_the_reason() {
    // install without -o makes the new file root's; with -o/-g it keeps
    // the old owner. Rootless, one uid is mapped: no file can have another.
    let dir = tempfile::tempdir().expect("dir");
    let scenario = |name: &str, command: &str| {
        let path = dir.path().join(format!("{name}.toml"));
        let text = format!(
            "description = \"{name}\"\n[target]\nkind = \"lib\"\nowner = \"1000:1000\"\n\
             [strategy]\ncommand = '{command}'\n"
        );
        std::fs::write(&path, text).expect("scenario");
        path.to_string_lossy().into_owned()
    };
    let careless = scenario(
        "careless",
        r#"install -m 0755 "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#,
    );
    let careful = scenario(
        "careful",
        r#"install -o 1000 -g 1000 -m 0755 "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#,
    );
    let (_, report) = swapfault_json(&["run", &careless]);
    assert_eq!(status(&report, "meta"), "fail", "{report:#}");
    assert_eq!(
        first_group(&report, "meta").seen,
        "owner is 0:0, was 1000:1000",
        "{report:#}"
    );
    let (_, report) = swapfault_json(&["run", &careful]);
    assert_eq!(status(&report, "meta"), "pass", "{report:#}");
    let cache = tempfile::tempdir().expect("cache dir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let rootless = swapfault_as_nobody(cache.path())
        .args(["run", &careful])
        .output()
        .expect("as nobody");
    let said = String::from_utf8_lossy(&rootless.stderr);
    assert_eq!(rootless.status.code(), Some(2), "{said}");
    assert!(
        said.contains("target.owner 1000:1000 needs a run as root"),
        "{said}"
    );
}

#[test]
fn a_junit_failure_carries_its_first_finding_as_message_and_its_property_as_type() {
    // What GitHub's and GitLab's test views show of a failure: its
    // message and type, as cargo-nextest writes them.
    let dir = tempfile::tempdir().expect("dir");
    let junit = dir.path().join("junit.xml");
    let output = swapfault()
        .args([
            "explore",
            "--strategy",
            r#"cp "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#,
        ])
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("explore");
    assert_eq!(output.status.code(), Some(1));
    let xml = std::fs::read_to_string(&junit).expect("junit");
    // An ad-hoc suite is named by the command that reruns it, not `check`.
    assert!(
        xml.contains("<testsuite name=\"swapfault check --strategy "),
        "{xml}"
    );
    let live = xml
        .split("<testcase ")
        .find(|case| case.starts_with("name=\"live\""))
        .expect("a live test case");
    assert!(
        live.contains("classname=\"swapfault check --strategy "),
        "{live}"
    );
    assert!(
        live.contains(
            "<failure message=\"live: live canary (pid N) died: killed by SIGBUS\" type=\"live\">"
        ),
        "{live}"
    );
}
