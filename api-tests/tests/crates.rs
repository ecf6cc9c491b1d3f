//! Real crates that replace files, from the package registry, explored
//! through swapfault's public API: each replaces a library that a live
//! canary maps (the defaults of `swapfault check`: mode 0755 and an xattr
//! on the old target), and `self-replace` replaces the running program
//! that calls it.
//!
//! What swapfault observes of these crates is a fact to report, not a
//! failure of this suite: each test compares its crate's verdicts and
//! findings with its row and list in docs/CRATES.md, and fails only when
//! they differ. After a deliberate change, the doc is rewritten by
//!
//! ```text
//! SWAPFAULT_BLESS=1 cargo test --release -p swapfault-api-tests --test crates -- --test-threads=1
//! ```

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use swapfault::{Property, Report, Scenario, Status, Strategy, TargetKind, Targets};

/// `std::fs::copy(new, target)`: the naive baseline, in place.
fn std_fs_copy(paths: &Targets) -> io::Result<()> {
    std::fs::copy(&paths.new, &paths.target).map(drop)
}

/// `std::fs::write` of a sibling, then `std::fs::rename` over the target:
/// the baseline most code writes, without fsync or metadata.
fn std_write_rename(paths: &Targets) -> io::Result<()> {
    let temp = sibling(&paths.target, ".new");
    std::fs::write(&temp, std::fs::read(&paths.new)?)?;
    std::fs::rename(&temp, &paths.target)
}

/// `tempfile`'s `NamedTempFile::new_in` beside the target, written, then
/// `persist`ed over it, as its docs show.
fn tempfile_persist(paths: &Targets) -> io::Result<()> {
    let mut temp = tempfile::NamedTempFile::new_in(dir_of(&paths.target))?;
    temp.write_all(&std::fs::read(&paths.new)?)?;
    temp.persist(&paths.target)
        .map(drop)
        .map_err(|err| err.error)
}

/// `atomicwrites`' `AtomicFile::write`, overwriting allowed.
fn atomicwrites(paths: &Targets) -> io::Result<()> {
    let new = std::fs::read(&paths.new)?;
    let file = atomicwrites::AtomicFile::new(
        &paths.target,
        atomicwrites::OverwriteBehavior::AllowOverwrite,
    );
    file.write(|f| f.write_all(&new)).map_err(|err| match err {
        atomicwrites::Error::Internal(err) | atomicwrites::Error::User(err) => err,
    })
}

/// `atomic-write-file`'s `AtomicWriteFile::open`, written, `commit`ted.
fn atomic_write_file(paths: &Targets) -> io::Result<()> {
    let mut file = atomic_write_file::AtomicWriteFile::open(&paths.target)?;
    file.write_all(&std::fs::read(&paths.new)?)?;
    file.commit()
}

#[test]
fn std_fs_copy_over_a_mapped_library() {
    let strategy = Strategy::function("std_fs_copy", std_fs_copy);
    explore_and_compare("std-fs-copy", Scenario::new(strategy));
}

#[test]
fn std_fs_write_then_rename() {
    let strategy = Strategy::function("std_write_rename", std_write_rename);
    explore_and_compare("std-write-rename", Scenario::new(strategy));
}

#[test]
fn tempfile_named_temp_file_persist() {
    let strategy = Strategy::function("tempfile_persist", tempfile_persist);
    explore_and_compare("tempfile", Scenario::new(strategy));
}

#[test]
fn atomicwrites_atomic_file_write() {
    let strategy = Strategy::function("atomicwrites", atomicwrites);
    explore_and_compare("atomicwrites", Scenario::new(strategy));
}

#[test]
fn atomic_write_file_commit() {
    let strategy = Strategy::function("atomic_write_file", atomic_write_file);
    explore_and_compare("atomic-write-file", Scenario::new(strategy));
}

/// `self_replace::self_replace(new)` called by the running program whose
/// file is the target: the old target is that program, the new one the
/// same program with bytes appended (another version to the checks).
#[test]
fn self_replace_of_the_running_program() {
    let program = Path::new(env!("CARGO_BIN_EXE_self-updating"));
    let dir = tempfile::tempdir().expect("temp dir");
    let old = dir.path().join("self-updating");
    let new = dir.path().join("self-updating.v2");
    std::fs::copy(program, &old).expect("old");
    let mut bytes = std::fs::read(program).expect("program");
    bytes.extend_from_slice(b"\nversion 2\n");
    std::fs::write(&new, bytes).expect("new");
    let scenario = Scenario::new(Strategy::command(
        r#"exec "$SWAPFAULT_TARGET" "$SWAPFAULT_NEW""#,
    ))
    .target(TargetKind::Exe)
    .files(&old, &new);
    explore_and_compare("self-replace", scenario);
}

/// The crates' tests, run again as `nobody` (uid 65534) when this suite
/// runs as root: they need no privilege either.
#[test]
fn the_crates_pass_as_an_unprivileged_user() {
    if let Some(out) =
        swapfault_api_tests::rerun_as_nobody("the_crates_pass_as_an_unprivileged_user")
    {
        assert!(out.contains("test result: ok. 6 passed"), "{out}");
    }
}

/// Explores `scenario` and compares what it found with `key`'s row and
/// findings in docs/CRATES.md (or rewrites them, with `SWAPFAULT_BLESS=1`).
#[track_caller]
fn explore_and_compare(key: &str, scenario: Scenario) {
    let report = swapfault::explore(&scenario).expect("explore");
    // Every property has a verdict, and the undisturbed run did its job:
    // otherwise the rest says nothing of the crate.
    for property in Property::ALL {
        assert!(report.status(property).is_some(), "{}", report.human());
    }
    assert_eq!(
        report.status(Property::Result),
        Some(Status::Pass),
        "{}",
        report.human()
    );
    let row = verdict_row(key, &report);
    let findings = finding_lines(&report);
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CRATES.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/CRATES.md");
    let (doc_row, doc_findings) = documented(&doc, key);
    if doc_row.as_deref() == Some(row.as_str()) && doc_findings.as_deref() == Some(&findings) {
        return;
    }
    if std::env::var_os("SWAPFAULT_BLESS").is_some() {
        std::fs::write(&doc_path, rewritten(&doc, key, &row, &findings)).expect("write doc");
        return;
    }
    panic!(
        "docs/CRATES.md differs from what swapfault observes of {key}:\n\
         documented row: {doc_row:?}\nobserved row:   {row}\n\
         documented findings:\n{}\nobserved findings:\n{}\n\
         (hint: if the change is meant, SWAPFAULT_BLESS=1 cargo test --release -p swapfault-api-tests --test crates -- --test-threads=1)\n\n{}",
        doc_findings.map(|f| f.join("\n")).unwrap_or_default(),
        findings.join("\n"),
        report.human()
    );
}

/// `| key | pass | FAIL | … |`, one cell per property in DESIGN's order.
fn verdict_row(key: &str, report: &Report) -> String {
    let cells: Vec<&str> = Property::ALL
        .iter()
        .map(|&p| match report.status(p) {
            Some(Status::Pass) => "pass",
            Some(Status::Fail) => "**FAIL**",
            Some(Status::NotExercised) => "not exercised",
            None => "?",
        })
        .collect();
    format!("| {key} | {} |", cells.join(" | "))
}

/// `- kill: kill-after at open#1: after the kill the target is empty`,
/// each group of findings, and why a property was not exercised.
fn finding_lines(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    for property in Property::ALL {
        for finding in report.findings(property) {
            lines.push(format!(
                "- {}: {}: {}",
                property.name(),
                finding.summary,
                finding.seen
            ));
        }
        if report.status(property) == Some(Status::NotExercised) {
            let why = report
                .why_not_exercised(property)
                .unwrap_or("no reason given");
            lines.push(format!("- {} not exercised: {why}", property.name()));
        }
    }
    lines
}

/// `key`'s row and findings list as the doc has them.
fn documented(doc: &str, key: &str) -> (Option<String>, Option<Vec<String>>) {
    let row = doc
        .lines()
        .find(|line| line.starts_with(&format!("| {key} |")))
        .map(str::to_owned);
    let (open, close) = markers(key);
    let findings = doc.split_once(&open).and_then(|(_, rest)| {
        let (block, _) = rest.split_once(&close)?;
        Some(
            block
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    });
    (row, findings)
}

fn markers(key: &str) -> (String, String) {
    (
        format!("<!-- findings {key} -->"),
        format!("<!-- end findings {key} -->"),
    )
}

/// The doc with `key`'s row and findings replaced; a new crate's row goes
/// after the table's last row, its findings at the end.
fn rewritten(doc: &str, key: &str, row: &str, findings: &[String]) -> String {
    let mut lines: Vec<String> = doc.lines().map(str::to_owned).collect();
    match lines
        .iter()
        .position(|l| l.starts_with(&format!("| {key} |")))
    {
        Some(at) => lines[at] = row.to_owned(),
        None => {
            let last = lines.iter().rposition(|l| l.starts_with('|')).unwrap_or(0);
            lines.insert(last + 1, row.to_owned());
        }
    }
    let mut text = lines.join("\n") + "\n";
    let (open, close) = markers(key);
    let block = format!("{open}\n{}\n{close}", findings.join("\n"));
    match text.split_once(&open) {
        Some((before, rest)) => {
            let after = rest.split_once(&close).map_or("", |(_, after)| after);
            text = format!("{before}{block}{after}");
        }
        None => text.push_str(&format!("\n### {key}\n\n{block}\n")),
    }
    text
}

fn dir_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// `target` with `suffix` appended to its name, beside it.
fn sibling(target: &Path, suffix: &str) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir_of(target).join(name)
}
