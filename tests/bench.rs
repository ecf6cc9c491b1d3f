//! `swapfault bench` on the test machine's own disk: the JSON's shape, the
//! steps accounting for each run, the plot, and bad input.

use serde_json::Value;

use crate::support::swapfault;

const STEPS: [&str; 5] = ["write", "fsync", "rename", "fsync_dir", "other"];

#[test]
fn bench_json_accounts_for_every_step_of_every_run() {
    let dir = tempfile::tempdir().expect("dir");
    let plot = dir.path().join("plot.svg");
    let output = swapfault()
        .args([
            "bench",
            "--size",
            "64KiB,256KiB",
            "--runs",
            "2",
            "--warmup",
            "0",
        ])
        .arg("--dir")
        .arg(dir.path())
        .arg("--plot")
        .arg(&plot)
        .arg("--json")
        .output()
        .expect("bench");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(report["schema_version"], 2);
    assert_eq!(report["mode"], "bench");
    for field in ["kind", "device", "mount_point", "options"] {
        assert!(
            report["filesystem"][field]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "filesystem.{field}: {report:#}"
        );
    }
    let results = report["results"].as_array().expect("results");
    let strategies = [
        "cp",
        "pwrite-in-place",
        "install",
        "temp-rename",
        "atomic-fsync",
        "link-aside-fsync",
    ];
    assert_eq!(results.len(), strategies.len() * 2);
    for (result, (size, strategy)) in results.iter().zip(
        [65536, 262144]
            .iter()
            .flat_map(|size| strategies.iter().map(move |s| (*size, *s))),
    ) {
        assert_eq!(result["strategy"], strategy);
        assert_eq!(result["size"], size);
        let runs = result["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), 2, "{result:#}");
        for run in runs.iter().chain([&result["median"]]) {
            let steps = run["steps_ns"].as_object().expect("steps");
            let names: Vec<&str> = steps.keys().map(String::as_str).collect();
            let mut expected = STEPS.to_vec();
            expected.sort_unstable();
            assert_eq!(names, expected, "{run:#}");
            let total = run["total_ns"].as_u64().expect("total");
            let sum: u64 = steps.values().filter_map(Value::as_u64).sum();
            if run != &result["median"] {
                // The steps are timed inside the total: what they miss is
                // the loop around the calls, a sliver.
                assert!(sum <= total, "{strategy}: steps {sum} > total {total}");
                assert!(
                    total - sum <= total / 10 + 50_000,
                    "{strategy}: {} ns of {total} not in any step",
                    total - sum
                );
            }
        }
        // What each strategy does shows in its steps.
        let median = &result["median"]["steps_ns"];
        let took = |step: &str| median[step].as_u64().expect("step") > 0;
        assert!(took("write"), "{strategy}");
        let syncs = strategy.ends_with("-fsync");
        assert_eq!(took("fsync"), syncs, "{strategy}");
        assert_eq!(took("fsync_dir"), syncs, "{strategy}");
        let renames = ["temp-rename", "atomic-fsync", "link-aside-fsync"].contains(&strategy);
        assert_eq!(took("rename"), renames, "{strategy}");
        // Next to the cost, what the catalog says it gets for it.
        let count = |key: &str| result[key].as_array().map_or(0, Vec::len);
        assert_eq!(count("passes") + count("fails"), 9, "{result:#}");
        let passes_power = result["passes"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "power"));
        assert_eq!(passes_power, syncs, "{strategy}");
        assert!(result["min_ns"].as_u64() <= result["median"]["total_ns"].as_u64());
        assert!(result["median"]["total_ns"].as_u64() <= result["max_ns"].as_u64());
    }
    let svg = std::fs::read_to_string(&plot).expect("plot written");
    for label in [
        "<svg",
        "target size",
        "median replacement time (ms, log scale)",
        "atomic-fsync (passes live, kill, power, meta)",
        "64 KiB",
    ] {
        assert!(svg.contains(label), "the plot lacks {label:?}");
    }
    // The bench leaves its directory as it found it (but for the plot).
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("plot.svg")]);
}

#[test]
fn bench_input_errors_name_the_fix() {
    for (args, says) in [
        (
            &["bench", "--strategy", "cp,nope"][..],
            "--strategy nope: no such strategy (hint: one of cp, pwrite-in-place",
        ),
        (
            &["bench", "--dir", "/nonexistent/swapfault"][..],
            "--dir /nonexistent/swapfault: not a directory (hint:",
        ),
        (
            &["bench", "--size", "0"][..],
            "a size must be at least 1 byte",
        ),
        (&["bench", "--runs", "0"][..], "--runs"),
    ] {
        let output = swapfault().args(args).output().expect("bench");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
