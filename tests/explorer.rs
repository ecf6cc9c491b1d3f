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
    let mut child = swapfault()
        .args(["explore", "scenarios/cp.toml"])
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
