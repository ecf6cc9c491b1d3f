//! Shared helpers for the integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fault_fs::{FaultFs, FaultMount, FaultPlan, Tree};

/// A temp dir holding an empty mount point `mnt`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("swapfault-test-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(dir.path().join("mnt")).expect("mount point");
        Scratch { dir }
    }

    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Mounts fault-fs over `tree` with `plan` on `mnt`.
    pub fn mount(&self, tree: Tree, plan: FaultPlan) -> FaultMount {
        FaultMount::mount(FaultFs::new(tree, plan), &self.mnt()).expect("mount fault-fs")
    }

    /// A file outside the mount.
    pub fn outside(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("write outside file");
        path
    }
}

/// Whether anything is mounted at `path` (or below it).
pub fn mounted_under(path: &Path) -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = path.to_string_lossy().into_owned();
    mounts
        .lines()
        .filter(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|m| m.starts_with(&prefix))
        })
        .map(str::to_owned)
        .collect()
}

/// The swapfault binary under test.
pub fn swapfault() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_swapfault"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// Distinct, recognisable bytes.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Polls `done` until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

/// A tree with `/target` holding `bytes`, mode 0755.
pub fn tree_with_target(bytes: &[u8]) -> Tree {
    let mut tree = Tree::new();
    let node = fault_fs::tree::NewNode {
        perm: 0o755,
        uid: 0,
        gid: 0,
    };
    let ino = tree
        .create_file(fault_fs::tree::ROOT_INO, "target".as_ref(), node)
        .expect("create target");
    tree.write(ino, 0, bytes).expect("write target");
    tree
}

/// Fails the test in one line, naming the package, when a tool it runs is
/// missing (instead of an assertion dump about a strategy that exited 127).
pub fn require(tools: &[(&str, &str)]) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<String> = tools
        .iter()
        .filter(|(tool, _)| !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .map(|(tool, package)| format!("`{tool}` (apt-get install {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "this test runs {}, which this machine lacks",
        missing.join(", ")
    );
}

/// What the catalog's strategies run.
pub const CATALOG_TOOLS: &[(&str, &str)] =
    &[("rsync", "rsync"), ("python3", "python3"), ("cc", "gcc")];

/// Whether a process with exactly this command line (NUL-separated) runs.
pub fn process_running(cmdline: &str) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("cmdline")).ok())
        .any(|line| line == cmdline)
}

/// Sends SIGINT (a Ctrl-C) to `child` and waits for it to end, at most
/// 10 s; returns its exit code.
pub fn interrupt(child: &mut std::process::Child) -> Option<i32> {
    // SAFETY: signalling a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let ended = wait_for(Duration::from_secs(10), || {
        child.try_wait().is_ok_and(|status| status.is_some())
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        panic!("still running 10 s after Ctrl-C");
    }
    child.wait().ok().and_then(|status| status.code())
}

/// Asserts a Ctrl-C left nothing behind: no mount and no temp dir under
/// `tmp` (the run's TMPDIR), and no process with `cmdline`.
pub fn assert_nothing_left(tmp: &Path, cmdline: Option<&str>) {
    assert!(mounted_under(tmp).is_empty(), "{:?}", mounted_under(tmp));
    let left: Vec<_> = std::fs::read_dir(tmp).expect("read tmp").collect();
    assert!(left.is_empty(), "temp dirs left: {left:?}");
    if let Some(cmdline) = cmdline {
        assert!(!process_running(cmdline), "{cmdline:?} outlived Ctrl-C");
    }
}

pub use harness::report::{Body, ExploreBody, FindingGroup, PropertyReport, Report};
pub use harness::RunOutcome;

/// The report of `name` in a report.
pub fn property<'a>(report: &'a Report, name: &str) -> &'a PropertyReport {
    report
        .properties
        .iter()
        .find(|p| p.property.name() == name)
        .unwrap_or_else(|| panic!("no {name} in {}", pretty(report)))
}

/// The status of `name` (`pass`, `fail`, `not-exercised`) in a report,
/// `missing` where a report has none (a fuzz report that found nothing).
pub fn status(report: &Report, name: &str) -> &'static str {
    report
        .properties
        .iter()
        .find(|p| p.property.name() == name)
        .map_or("missing", |p| p.status.name())
}

/// What was seen of `name`, one entry per finding group.
pub fn seen(report: &Report, name: &str) -> Vec<String> {
    property(report, name)
        .groups
        .iter()
        .map(|g| g.seen.clone())
        .collect()
}

/// The first group of findings of `name`.
pub fn first_group<'a>(report: &'a Report, name: &str) -> &'a FindingGroup {
    property(report, name)
        .groups
        .first()
        .unwrap_or_else(|| panic!("no {name} finding in {}", pretty(report)))
}

/// The run of a report of one run (or of a fuzz report's replay).
pub fn run_of(report: &Report) -> &RunOutcome {
    &report
        .run()
        .unwrap_or_else(|| panic!("not a report of one run: {}", pretty(report)))
        .run
}

/// The exploration of an explore report.
pub fn explored(report: &Report) -> &ExploreBody {
    match &report.body {
        Body::Explore(explored) => explored,
        _ => panic!("not an exploration: {}", pretty(report)),
    }
}

/// The report as `--json` prints it, for failure messages.
pub fn pretty(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default()
}

/// A value read back from JSON that prints as that JSON in failure
/// messages (`{report:#}`), and reads as the value itself.
pub struct Shown<T>(pub T);

impl<T> std::ops::Deref for Shown<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::Serialize> std::fmt::Display for Shown<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string_pretty(&self.0).unwrap_or_default())
    }
}

/// Runs `swapfault ARGS --json`; returns the exit code and the report,
/// read back as the type it was written from (its schema version checked).
pub fn swapfault_json(args: &[&str]) -> (Option<i32>, Shown<Report>) {
    let output = swapfault()
        .args(args)
        .arg("--json")
        .output()
        .expect("run swapfault");
    let report: Report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: {e}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(
        report.schema_version,
        harness::report::SCHEMA_VERSION,
        "{args:?}"
    );
    (output.status.code(), Shown(report))
}

/// The reports of `explore --json` (or the one of `check --json`), read
/// back typed after checking the schema version.
pub fn reports(output: &std::process::Output) -> Vec<Shown<Report>> {
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(
        json["schema_version"],
        harness::report::SCHEMA_VERSION,
        "{json:#}"
    );
    let reports: Vec<Report> = match json.get("reports") {
        Some(_) => {
            serde_json::from_value::<harness::report::json::Reports>(json)
                .expect("typed reports")
                .reports
        }
        None => vec![serde_json::from_value(json).expect("a typed report")],
    };
    reports.into_iter().map(Shown).collect()
}

/// `swapfault explore ARGS --json`: its one report.
pub fn explore_json(args: &[&str]) -> Shown<Report> {
    let output = swapfault()
        .arg("explore")
        .args(args)
        .arg("--json")
        .output()
        .expect("explore");
    reports(&output).remove(0)
}

/// The group of findings of `name` whose points include `point`.
pub fn group_at<'a>(report: &'a Report, name: &str, point: &str) -> &'a FindingGroup {
    let groups = &property(report, name).groups;
    groups
        .iter()
        .find(|g| g.points.iter().any(|p| p.to_string() == point))
        .unwrap_or_else(|| {
            panic!(
                "{}: no {name} finding at {point}: {groups:#?}",
                report.scenario
            )
        })
}

/// Temp names and numbers (pids, inodes) differ from run to run.
pub fn redact(text: &str) -> String {
    let text = harness::report::redact::redact_run_names(text);
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

/// Per property: its status, and every (crash point, what was seen) of it.
pub type Verdicts = Vec<(String, String, Vec<(String, String)>)>;

/// Per property: its status, and every (crash point, what was seen) of it,
/// with the names that differ from run to run redacted.
pub fn verdicts_by_point(report: &Report) -> Verdicts {
    report
        .properties
        .iter()
        .map(|property| {
            let mut seen: Vec<(String, String)> = property
                .groups
                .iter()
                .flat_map(|group| {
                    let what = redact(&group.seen);
                    group
                        .points
                        .iter()
                        .map(move |p| (p.to_string(), what.clone()))
                })
                .collect();
            seen.sort();
            (
                property.property.name().to_owned(),
                property.status.name().to_owned(),
                seen,
            )
        })
        .collect()
}

/// Per crash point: the properties it failed, each with what was seen
/// (redacted), sorted.
pub fn findings_by_point(exploration: &Report) -> Vec<(String, Vec<(String, String)>)> {
    explored(exploration)
        .point_results
        .iter()
        .map(|point| {
            let mut seen: Vec<(String, String)> = point
                .findings
                .iter()
                .map(|f| (f.property.name().to_owned(), redact(&f.seen)))
                .collect();
            seen.sort();
            (point.point.to_string(), seen)
        })
        .collect()
}

/// Asserts two explorations (`what`) agree point by point, naming the
/// points that do not.
pub fn assert_same_points<T: PartialEq + std::fmt::Debug>(
    what: &str,
    one: &[(String, T)],
    two: &[(String, T)],
) {
    let specs = |points: &[(String, T)]| points.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>();
    assert_eq!(specs(one), specs(two), "{what}: the crash points differ");
    let differ: Vec<_> = one.iter().zip(two).filter(|(a, b)| a != b).collect();
    assert!(differ.is_empty(), "{what}: findings differ at {differ:#?}");
}
