//! The explorer over the catalog: the expected matrix, reproductions, Ctrl-C.

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use harness::explore::redact_temp_names;

use crate::support::{mounted_under, swapfault, wait_for};

/// `swapfault explore scenarios/ --json`, run once for the tests that read it.
fn catalog() -> &'static (Option<i32>, Vec<Value>, String) {
    static CATALOG: OnceLock<(Option<i32>, Vec<Value>, String)> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let junit =
            std::env::temp_dir().join(format!("swapfault-junit-{}.xml", std::process::id()));
        let output = swapfault()
            .args(["explore", "scenarios/", "--json", "--junit"])
            .arg(&junit)
            .output()
            .expect("explore");
        let explorations: Vec<Value> = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
        let xml = std::fs::read_to_string(&junit).unwrap_or_default();
        let _ = std::fs::remove_file(&junit);
        (output.status.code(), explorations, xml)
    })
}

fn verdict(explorations: &[Value], scenario: &str, property: &str) -> String {
    let exploration = explorations
        .iter()
        .find(|e| e["scenario"] == scenario)
        .unwrap_or_else(|| panic!("no exploration of {scenario}"));
    let p = exploration["properties"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["property"] == property))
        .unwrap_or_else(|| panic!("{scenario}: no {property}"));
    match (
        p["exercised"].as_bool(),
        p["groups"].as_array().map(|g| g.is_empty()),
    ) {
        (Some(false), _) => "-".into(),
        (_, Some(true)) => "pass".into(),
        _ => "fail".into(),
    }
}

#[test]
fn the_catalog_matrix_is_as_expected() {
    let (code, explorations, junit) = catalog();
    let expect = [
        ("cp", "live", "fail"),
        ("cp", "visible", "fail"),
        ("cp", "kill", "fail"),
        ("cp", "power", "fail"),
        ("updater-prefix", "live", "fail"),
        ("updater-prefix", "visible", "fail"),
        ("updater-prefix", "kill", "fail"),
        ("updater-prefix", "power", "fail"),
        ("updater-prefix", "retry", "fail"),
        ("install", "live", "pass"),
        ("install", "visible", "fail"),
        ("install", "kill", "fail"),
        ("cp-remove-destination", "live", "pass"),
        ("cp-remove-destination", "visible", "fail"),
        ("cp-remove-destination", "kill", "fail"),
        ("mv-cross-fs", "live", "pass"),
        ("mv-cross-fs", "visible", "fail"),
        ("mv-cross-fs", "kill", "fail"),
        ("rename-aside", "kill", "fail"),
        ("temp-rename", "kill", "pass"),
        ("temp-rename", "visible", "pass"),
        ("temp-rename", "power", "fail"),
    ];
    for (scenario, property, want) in expect {
        assert_eq!(
            verdict(explorations, scenario, property),
            want,
            "{scenario} {property}"
        );
    }
    for property in [
        "result", "live", "visible", "kill", "errors", "power", "retry", "meta", "tidy",
    ] {
        assert_eq!(
            verdict(explorations, "atomic-fsync", property),
            "pass",
            "atomic-fsync {property}"
        );
    }
    assert_eq!(*code, Some(0), "every scenario's [expect] holds");
    assert!(
        junit.contains("<testsuite name=\"cp\"") && junit.contains("<testcase name=\"live\""),
        "{junit}"
    );
    // temp + rename fails power under metadata-ordered with a short target.
    let temp_rename = explorations
        .iter()
        .find(|e| e["scenario"] == "temp-rename")
        .expect("temp-rename");
    let power = temp_rename["properties"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["property"] == "power"))
        .expect("power");
    let text = power.to_string();
    assert!(
        text.contains("metadata-ordered") && (text.contains("empty") || text.contains("prefix")),
        "{text}"
    );
}

#[test]
fn every_sampled_reproduction_reproduces_its_finding() {
    let (_, explorations, _) = catalog();
    let mut replayed = 0;
    for scenario in [
        "cp",
        "install",
        "updater-prefix",
        "rename-aside",
        "temp-rename",
    ] {
        let exploration = explorations
            .iter()
            .find(|e| e["scenario"] == scenario)
            .expect("scenario");
        for property in exploration["properties"].as_array().expect("properties") {
            let Some(group) = property["groups"].as_array().and_then(|g| g.first()) else {
                continue;
            };
            if group["points"].as_array().is_none_or(|p| p.is_empty()) {
                continue;
            }
            let command = group["reproduce"].as_str().expect("reproduce");
            let command = command.replacen("swapfault", env!("CARGO_BIN_EXE_swapfault"), 1);
            let output = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{command} --json"))
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .expect("replay");
            let report: Value = serde_json::from_slice(&output.stdout).expect("json report");
            let name = property["property"].as_str().expect("name");
            let seen = group["seen"].as_str().expect("seen");
            let line = report["properties"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["property"] == name))
                .expect("line");
            assert_eq!(line["status"], "fail", "{command}: {report:#}");
            let got: Vec<String> = line["seen"]
                .as_array()
                .map(|seen| {
                    seen.iter()
                        .filter_map(|v| v.as_str())
                        .map(redact_temp_names)
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                got.contains(&redact_temp_names(seen)),
                "{command}: want {seen}, got {got:?}"
            );
            replayed += 1;
        }
    }
    assert!(replayed >= 10, "replayed {replayed}");
}

#[test]
fn ctrl_c_stops_explore_and_leaves_no_mount() {
    let tmp = tempfile::tempdir().expect("tmp");
    // The whole catalog on one worker: long enough to be interrupted.
    let mut child = swapfault()
        .args(["explore", "scenarios/", "--workers", "1"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("explore");
    assert!(wait_for(Duration::from_secs(20), || !mounted_under(
        tmp.path()
    )
    .is_empty()));
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    assert!(mounted_under(tmp.path()).is_empty());
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("read tmp").collect();
    assert!(left.is_empty(), "temp dirs left: {left:?}");
}

/// Asserts two explorations agree point by point, naming the points that do not.
fn assert_same_points<T: PartialEq + std::fmt::Debug>(one: &[(String, T)], two: &[(String, T)]) {
    let specs = |points: &[(String, T)]| points.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>();
    assert_eq!(specs(one), specs(two), "the crash points differ");
    let differ: Vec<_> = one.iter().zip(two).filter(|(a, b)| a != b).collect();
    assert!(differ.is_empty(), "findings differ at: {differ:#?}");
}

/// Temp names and numbers (pids, inodes) differ from run to run.
fn redact(text: &str) -> String {
    let text = redact_temp_names(text);
    let mut out = String::new();
    for c in text.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('N') {
            out.push('N');
        }
    }
    out
}

/// Per crash point: the properties it failed, each with what was seen.
fn findings_by_point(exploration: &Value) -> Vec<(String, Vec<(String, String)>)> {
    exploration["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|point| {
            let mut seen: Vec<(String, String)> = point["findings"]
                .as_array()
                .expect("findings")
                .iter()
                .map(|f| {
                    let property = f["property"].as_str().unwrap_or_default().to_owned();
                    (property, redact(f["seen"].as_str().unwrap_or_default()))
                })
                .collect();
            seen.sort();
            (point["spec"].as_str().expect("spec").to_owned(), seen)
        })
        .collect()
}

fn explore_json(args: &[&str]) -> Value {
    let output = swapfault()
        .arg("explore")
        .args(args)
        .arg("--json")
        .output()
        .expect("explore");
    let mut explorations: Vec<Value> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    explorations.remove(0)
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
    assert_same_points(&one, &two);
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
    assert_same_points(&one, &two);
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
        .args(["explore", "--strategy", "sleep 30", "--json"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("explore");
    assert!(wait_for(Duration::from_secs(20), || !mounted_under(
        tmp.path()
    )
    .is_empty()));
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(
        wait_for(Duration::from_secs(10), || child
            .try_wait()
            .is_ok_and(|s| s.is_some())),
        "explore still runs 10 s after Ctrl-C"
    );
    let output = child.wait_with_output().expect("output");
    assert_eq!(output.status.code(), Some(130));
    let explorations: Vec<Value> = serde_json::from_slice(&output.stdout).expect("json");
    let exploration = &explorations[0];
    assert_eq!(exploration["interrupted"], true);
    assert_eq!(exploration["points"].as_array().map(Vec::len), Some(0));
    assert_eq!(exploration["baseline"].as_array().map(Vec::len), Some(0));
    assert!(mounted_under(tmp.path()).is_empty());
    let sleeping = std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("cmdline")).ok())
        .any(|cmdline| cmdline == "sleep\x0030\x00");
    assert!(!sleeping, "the strategy outlived Ctrl-C");
}
