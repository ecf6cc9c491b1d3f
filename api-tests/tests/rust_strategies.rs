//! Strategies written as Rust functions, explored through swapfault's
//! public API as a crate's own `cargo test` would.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use swapfault::{Platform, Property, Scenario, Status, Strategy, Targets};

/// The full recipe: a temp file beside the target with its mode, owner and
/// xattrs, fsync'd, renamed over it, then the directory fsync'd. A temp
/// file an interrupted earlier run left is removed first.
fn full_recipe(paths: &Targets) -> io::Result<()> {
    let dir = paths.target.parent().unwrap_or(Path::new("."));
    let name = paths
        .target
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    let temp = dir.join(format!(".{name}.swap"));
    match std::fs::remove_file(&temp) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let old = std::fs::metadata(&paths.target)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    let written = (|| {
        file.write_all(&std::fs::read(&paths.new)?)?;
        file.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))?;
        std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()))?;
        for attr in xattr::list(&paths.target)? {
            if let Some(value) = xattr::get(&paths.target, &attr)? {
                xattr::FileExt::set_xattr(&file, &attr, &value)?;
            }
        }
        file.sync_all()?;
        std::fs::rename(&temp, &paths.target)
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(err);
    }
    File::open(dir)?.sync_all()
}

/// Writes NEW over the target in place.
fn in_place(paths: &Targets) -> io::Result<()> {
    let new = std::fs::read(&paths.new)?;
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&paths.target)?
        .write_all(&new)
}

#[test]
fn the_full_recipe_as_a_rust_function_is_safe() {
    let scenario = Scenario::new(Strategy::function("full_recipe", full_recipe));
    let report = swapfault::explore(&scenario).expect("explore");
    report.assert_safe();
}

/// The textbook recipe as written in most code: a temp file, fsync'd and
/// renamed, the directory fsync'd, but no mode or xattrs copied: its
/// files come out 0644 (the umask's) with no xattrs.
fn textbook_recipe(paths: &Targets) -> io::Result<()> {
    let temp = paths.target.with_extension("swap");
    let _ = std::fs::remove_file(&temp);
    let mut file = File::create(&temp)?;
    file.write_all(&std::fs::read(&paths.new)?)?;
    file.sync_all()?;
    std::fs::rename(&temp, &paths.target)?;
    File::open(paths.target.parent().unwrap_or(Path::new(".")))?.sync_all()
}

#[test]
fn the_library_says_what_the_users_files_are_like() {
    // On the built-in target (0755, an xattr) the textbook recipe loses
    // both; on files like the user's (0644, none) it is safe.
    let strategy = || Strategy::function("textbook_recipe", textbook_recipe);
    let report = swapfault::explore(&Scenario::new(strategy())).expect("explore");
    assert_eq!(report.status(Property::Meta), Some(Status::Fail));
    let yours = Scenario::new(strategy())
        .mode(0o644)
        .xattrs::<&str, &str>([]);
    swapfault::explore(&yours).expect("explore").assert_safe();
    // A mode that is none, and an xattr with no namespace: one line each.
    for (bad, said) in [
        (Scenario::new(strategy()).mode(0o100644), "mode: 0o100644"),
        (
            Scenario::new(strategy()).xattrs([("origin", "x")]),
            "user.origin",
        ),
    ] {
        let err = swapfault::check(&bad, &[])
            .expect_err("refused")
            .to_string();
        assert!(err.contains(said) && !err.contains('\n'), "{err}");
    }
}

/// Ignored, as tests that need /dev/fuse often are: run by the next test
/// with `--ignored`, as `cargo test -- --ignored` would.
#[test]
#[ignore = "run by an_ignored_test_explores_under_ignored"]
fn ignored_full_recipe() {
    let scenario = Scenario::new(Strategy::function("full_recipe", full_recipe));
    swapfault::explore(&scenario)
        .expect("explore")
        .assert_safe();
}

#[test]
fn an_ignored_test_explores_under_ignored() {
    let exe = std::env::current_exe().expect("this test binary");
    let output = std::process::Command::new(exe)
        .args(["--ignored", "--exact", "ignored_full_recipe"])
        .output()
        .expect("the ignored test");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("1 passed"), "{said}");
}

#[test]
fn writing_in_place_fails_and_the_panic_names_the_property_and_a_reproduction() {
    let scenario = Scenario::new(Strategy::function("in_place", in_place));
    let report = swapfault::explore(&scenario).expect("explore");
    assert_eq!(report.status(Property::Kill), Some(Status::Fail));
    let kill = report.findings(Property::Kill);
    assert!(
        kill.iter()
            .any(|f| f.seen == "after the kill the target is empty"),
        "{}",
        report.human()
    );
    let panic = std::panic::catch_unwind(|| report.assert_properties(&[Property::Kill]))
        .expect_err("writing in place is not safe against kills");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.starts_with("swapfault: kill failed"), "{message}");
    // The reproduction runs this very test again, under the fault alone,
    // by a command that survives a rebuild (no hashed binary path). A
    // binary copied out of cargo's tree (as the run as nobody copies it)
    // has no cargo command: its reproduction starts the binary itself.
    let test = "writing_in_place_fails_and_the_panic_names_the_property_and_a_reproduction";
    let exe = std::env::current_exe().expect("this test binary");
    if exe.parent().and_then(|dir| dir.file_name()) == Some("deps".as_ref()) {
        assert!(
            message.contains("reproduce: SWAPFAULT_FAULT='open#1:kill-after' cargo test"),
            "{message}"
        );
        assert!(
            message.contains(&format!(
                " -p swapfault-api-tests --test rust_strategies -- --exact {test} --include-ignored"
            )),
            "{message}"
        );
    } else {
        assert!(
            message.contains(
                "reproduce: swapfault check --strategy 'SWAPFAULT_RUST_STRATEGY=in_place exec /"
            ),
            "{message}"
        );
        assert!(message.contains("--fault 'open#1:kill-after'"), "{message}");
    }
}

/// Run only by the test below, with SWAPFAULT_FAULT set: what a
/// reproduction of a finding of `in_place` runs.
#[test]
#[ignore = "run by a_reproduction_runs_its_fault_not_the_search"]
fn reproduction_of_in_place() {
    let scenario = Scenario::new(Strategy::function("in_place", in_place));
    let report = swapfault::explore(&scenario).expect("explore");
    println!("{}", report.human());
}

#[test]
fn a_reproduction_runs_its_fault_not_the_search() {
    // What `SWAPFAULT_FAULT='open#1:kill-after' cargo test … -- --exact
    // reproduction_of_in_place` runs once cargo has built the binary.
    let exe = std::env::current_exe().expect("this test binary");
    let output = std::process::Command::new(exe)
        .args(["--exact", "reproduction_of_in_place", "--include-ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env("SWAPFAULT_FAULT", "open#1:kill-after")
        .output()
        .expect("the reproduction");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}");
    // One run, under that fault: a check's report, not an exploration's.
    assert!(
        said.contains("faults:   open#1:kill-after (fired: open#1:kill-after)"),
        "{said}"
    );
    assert!(!said.contains("crash points checked"), "{said}");
    assert!(
        said.contains("after the kill the target is empty"),
        "{said}"
    );
}

#[test]
fn a_single_run_proves_only_what_it_exercised() {
    // One run without faults: kills were never tried, so no pass for them.
    let scenario = Scenario::new(Strategy::function("full_recipe", full_recipe));
    let report = swapfault::check(&scenario, &[]).expect("check");
    assert_eq!(report.status(Property::Result), Some(Status::Pass));
    assert_eq!(report.status(Property::Kill), Some(Status::NotExercised));
    let panic = std::panic::catch_unwind(|| report.assert_safe()).expect_err("not all exercised");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("kill not exercised: "), "{message}");
    // Under a kill after its rename, the retry finds the new version.
    let report = swapfault::check(&scenario, &["rename#1:kill-after"]).expect("check");
    report.assert_properties(&[Property::Kill, Property::Retry, Property::Tidy]);
}

#[test]
fn a_shell_command_is_a_strategy_too() {
    // install unlinks the running executable before it creates the new one.
    let scenario = Scenario::new(Strategy::command(
        r#"install "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#,
    ))
    .target(swapfault::TargetKind::Exe);
    let report = swapfault::check(&scenario, &["unlink#1:kill-after"]).expect("check");
    assert_eq!(report.status(Property::Kill), Some(Status::Fail));
    let kill = report.findings(Property::Kill);
    assert_eq!(kill[0].seen, "after the kill the target is missing");
}

#[test]
fn under_the_macos_model_writing_in_place_kills_who_maps_the_file() {
    let in_place =
        Scenario::new(Strategy::function("in_place", in_place)).platform(Platform::Macos);
    let report = swapfault::check(&in_place, &[]).expect("check");
    let live = report.findings(Property::Live);
    assert!(
        live.iter().any(|f| f
            .seen
            .ends_with("(code signature invalid: page of app/libcanary.so changed on disk)")),
        "{}",
        report.human()
    );
    // A new inode changes no page that anybody maps.
    let recipe =
        Scenario::new(Strategy::function("full_recipe", full_recipe)).platform(Platform::Macos);
    let report = swapfault::check(&recipe, &[]).expect("check");
    assert_eq!(
        report.status(Property::Live),
        Some(Status::Pass),
        "{}",
        report.human()
    );
}

#[test]
fn a_bad_scenario_is_one_clear_error() {
    let scenario = Scenario::new(Strategy::command("true")).size(10);
    let err = swapfault::explore(&scenario).expect_err("too small");
    assert!(err.to_string().starts_with("swapfault: size: "), "{err}");
    // As `.expect()` prints it: the same line, not `Scenario("…")`.
    assert_eq!(format!("{err:?}"), err.to_string());
}

/// The tests above, run again as `nobody` (uid 65534) when this suite runs
/// as root: swapfault in a crate's `cargo test` needs no privilege.
#[test]
fn the_suite_passes_as_an_unprivileged_user() {
    if let Some(out) =
        swapfault_api_tests::rerun_as_nobody("the_suite_passes_as_an_unprivileged_user")
    {
        assert!(out.contains("test result: ok. 9 passed"), "{out}");
    }
}
