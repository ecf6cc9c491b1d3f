//! The judge on observations built by hand: each rule of each property.

use super::*;
use fault_fs::{OpKind, OpRecord};

use crate::observe::{Beat, LiveReport, PlatformKill, ProbeKind, ProbeObservation};

fn state(class: TargetClass) -> TargetState {
    TargetState {
        class,
        ino: Some(3),
        mode: Some(0o755),
        owner: Some((0, 0)),
        xattrs: BTreeMap::from([("user.origin".into(), "vendor".into())]),
        mix: None,
        resolved: None,
    }
}

fn ran(exit: Exit, class: TargetClass) -> StrategyRun {
    StrategyRun {
        exit,
        stderr: String::new(),
        target: state(class),
        strays: Vec::new(),
        left_running: Vec::new(),
        other_names: Vec::new(),
        self_update: None,
        killed_by_platform: None,
        settled_after: None,
        durable_after_sync_error: None,
        damaged: Vec::new(),
    }
}

fn point(text: &str) -> CrashPoint {
    text.parse().unwrap()
}

/// An undisturbed run that replaced the target and exited 0.
fn clean() -> Observations {
    Observations {
        fired: Vec::new(),
        before: state(TargetClass::Old),
        first: ran(Exit::Code(0), TargetClass::New),
        retries: Vec::new(),
        live: Vec::new(),
        probes: Vec::new(),
        single_uid: false,
    }
}

/// The first run was interrupted at `at`, leaving `class`; the retry
/// replaced the target.
fn interrupted(at: &str, class: TargetClass) -> Observations {
    Observations {
        fired: vec![point(at)],
        first: ran(Exit::Signal(9), class),
        retries: vec![ran(Exit::Code(0), TargetClass::New)],
        ..clean()
    }
}

fn wanted() -> Wanted {
    Wanted {
        mode: 0o755,
        xattrs: BTreeMap::from([("user.origin".into(), "vendor".into())]),
    }
}

fn judge(seen: &Observations, property: Property) -> Verdict {
    evaluate(seen, &wanted()).verdict(property).clone()
}

fn seen_of(verdict: &Verdict) -> Vec<(Option<String>, String)> {
    verdict
        .findings()
        .iter()
        .map(|f| {
            (
                f.crash_point.as_ref().map(|p| p.to_string()),
                f.seen.clone(),
            )
        })
        .collect()
}

fn assert_not_exercised(verdict: Verdict, why: &str) {
    match verdict {
        Verdict::NotExercised { why: said } => assert!(said.contains(why), "{said}"),
        other => panic!("expected not exercised ({why}), got {other:?}"),
    }
}

fn canary(exit: Option<Exit>, changed: Option<Beat>) -> LiveReport {
    let beat = |lib| Beat {
        exe: 1,
        lib,
        checksum: format!("sum{lib}"),
    };
    LiveReport {
        command: "canary".into(),
        pid: 42,
        exit,
        first: Some(beat(1)),
        changed,
        beats: 5,
        killed_why: None,
    }
}

/// A self-updating program's run: it exited `exit` after reporting
/// `lines`, and left the target `class`.
fn self_run(exit: Exit, class: TargetClass, lines: &str) -> StrategyRun {
    StrategyRun {
        self_update: Some(SelfUpdateReport::parse(lines)),
        ..ran(exit, class)
    }
}

/// A kill by the macOS model at the in-place updater's truncate.
fn signing_kill() -> PlatformKill {
    PlatformKill {
        op: "write#2+7".parse().expect("an op"),
        what: "open /app/canary O_TRUNC".into(),
        reason: "code signature invalid: page of app/canary changed on disk".into(),
    }
}

#[test]
fn a_self_update_report_reads_its_lines() {
    let report = SelfUpdateReport::parse(
        "start 1 1\nfailed open 26\nreplaced\nreexec\nrunning 2 1\nnoise\n",
    );
    assert_eq!(report.started, Some((1, 1)));
    assert_eq!(report.failed, ["open: Text file busy"]);
    assert!(report.replaced && report.reexec);
    assert_eq!(report.running, Some((2, 1)));
    let failed = SelfUpdateReport::parse("start 1 1\nreplaced\nreexec\nreexec-failed 8\n");
    assert_eq!(failed.reexec_failed.as_deref(), Some("Exec format error"));
}

#[test]
fn live_passes_a_program_that_executed_itself_into_its_new_version() {
    let seen = Observations {
        first: self_run(
            Exit::Code(0),
            TargetClass::New,
            "start 1 1\nreplaced\nreexec\nrunning 2 1\n",
        ),
        ..clean()
    };
    assert_eq!(judge(&seen, Property::Live), Verdict::Pass);
}

#[test]
fn live_fails_a_program_that_executed_itself_and_still_runs_the_old_code() {
    // ignore-errors: the write was refused, yet it went on as replaced.
    let seen = Observations {
        first: self_run(
            Exit::Code(0),
            TargetClass::Old,
            "start 1 1\nfailed open 26\nreplaced\nreexec\nrunning 1 1\n",
        ),
        ..clean()
    };
    let live = seen_of(&judge(&seen, Property::Live));
    assert_eq!(live.len(), 1, "{live:?}");
    assert!(live[0].1.contains("runs exe v1 / lib v1 code"), "{live:?}");
    assert_eq!(
        seen_of(&judge(&seen, Property::Result)),
        [(
            None,
            "did not replace, yet the strategy exited 0: the target is still old".into()
        )]
    );
}

#[test]
fn live_fails_a_program_that_replaced_itself_and_cannot_start_again() {
    let seen = Observations {
        first: self_run(
            Exit::Code(126),
            TargetClass::Empty,
            "start 1 1\nreplaced\nreexec\nreexec-failed 8\n",
        ),
        ..clean()
    };
    let live = seen_of(&judge(&seen, Property::Live));
    assert!(
        live.iter()
            .any(|(_, seen)| seen.contains("could not start again: Exec format error")),
        "{live:?}"
    );
}

#[test]
fn live_is_not_exercised_by_a_program_that_gave_up_truthfully() {
    let seen = Observations {
        first: self_run(
            Exit::Code(1),
            TargetClass::Old,
            "start 1 1\nfailed open 26\n",
        ),
        ..clean()
    };
    assert_not_exercised(
        judge(&seen, Property::Live),
        "gave up at open: Text file busy",
    );
}

#[test]
fn a_kill_by_an_injected_fault_is_no_live_finding_but_a_crash_is() {
    let killed = Observations {
        fired: vec![point("write#1:kill-after")],
        first: self_run(Exit::Signal(9), TargetClass::Old, "start 1 1\n"),
        retries: vec![self_run(
            Exit::Code(0),
            TargetClass::New,
            "start 1 1\nreplaced\nreexec\nrunning 2 1\n",
        )],
        ..clean()
    };
    assert_eq!(judge(&killed, Property::Live), Verdict::Pass);
    let crashed = Observations {
        first: self_run(Exit::Signal(libc::SIGBUS), TargetClass::Torn, "start 1 1\n"),
        ..clean()
    };
    let live = seen_of(&judge(&crashed, Property::Live));
    assert!(live[0].1.contains("died: killed by SIGBUS"), "{live:?}");
}

/// The seed's chain under the macOS model, judged: the platform's kill
/// fails result where no fault fired, and the retry after it is judged.
#[test]
fn a_platform_kill_fails_result_and_its_retry_is_judged() {
    let seen = Observations {
        first: StrategyRun {
            killed_by_platform: Some(signing_kill()),
            ..self_run(Exit::Signal(9), TargetClass::Empty, "start 1 1\n")
        },
        retries: vec![StrategyRun {
            stderr: "mkdir /app/update-staging: File exists\n".into(),
            ..self_run(
                Exit::Code(1),
                TargetClass::Empty,
                "start 1 1\nfailed mkdir 17\n",
            )
        }],
        ..clean()
    };
    let result = seen_of(&judge(&seen, Property::Result));
    assert_eq!(result.len(), 1);
    assert_eq!(
        result[0].0, None,
        "no fault to reproduce: the platform did it"
    );
    assert!(
        result[0].1.contains("code signature invalid")
            && result[0].1.ends_with("the target is empty"),
        "{result:?}"
    );
    let retry = seen_of(&judge(&seen, Property::Retry));
    assert!(
        retry[0]
            .1
            .starts_with("after the platform killed the strategy at write#2+7")
            && retry[0]
                .1
                .ends_with("mkdir /app/update-staging: File exists"),
        "{retry:?}"
    );
    let live = seen_of(&judge(&seen, Property::Live));
    assert!(live[0].1.contains("was killed at write#2+7"), "{live:?}");
    // The kill property judges injected kills only.
    assert_not_exercised(judge(&seen, Property::Kill), "no kill fired");
}

#[test]
fn every_property_is_judged_once() {
    let evaluation = evaluate(&clean(), &wanted());
    assert_eq!(
        evaluation.0.keys().copied().collect::<Vec<_>>(),
        Property::ALL
    );
}

#[test]
fn result_passes_when_new_and_exit_0() {
    assert_eq!(judge(&clean(), Property::Result), Verdict::Pass);
}

#[test]
fn result_fails_when_exit_0_leaves_old() {
    let seen = Observations {
        first: ran(Exit::Code(0), TargetClass::Old),
        ..clean()
    };
    assert_eq!(
        seen_of(&judge(&seen, Property::Result)),
        [(
            None,
            "did not replace, yet the strategy exited 0: the target is still old".into()
        )]
    );
}

#[test]
fn result_says_did_not_replace_when_a_failure_leaves_old() {
    let seen = Observations {
        first: ran(Exit::Code(1), TargetClass::Old),
        ..clean()
    };
    let found = seen_of(&judge(&seen, Property::Result));
    assert!(found[0].1.starts_with("did not replace"), "{found:?}");
}

#[test]
fn result_is_not_exercised_by_an_interrupted_run() {
    let seen = interrupted("write#1:kill-after", TargetClass::New);
    assert_not_exercised(
        judge(&seen, Property::Result),
        "interrupted (write#1:kill-after)",
    );
}

#[test]
fn result_of_a_run_with_a_stall_is_still_judged_and_placed_at_the_stall() {
    let seen = Observations {
        fired: vec![point("rename#1:stall=10s")],
        first: ran(Exit::Code(0), TargetClass::Torn),
        ..clean()
    };
    assert_eq!(
        seen_of(&judge(&seen, Property::Result)),
        [(
            Some("rename#1:stall=10s".into()),
            "the strategy exited 0 but the target is torn".into()
        )]
    );
}

#[test]
fn live_needs_a_live_process() {
    assert_not_exercised(judge(&clean(), Property::Live), "no live process");
    let seen = Observations {
        live: vec![canary(None, None)],
        ..clean()
    };
    assert_eq!(judge(&seen, Property::Live), Verdict::Pass);
}

#[test]
fn live_fails_when_the_canary_dies_or_its_code_changes() {
    let died = Observations {
        live: vec![canary(Some(Exit::Signal(7)), None)],
        ..clean()
    };
    let found = seen_of(&judge(&died, Property::Live));
    assert!(found[0].1.contains("died: killed by SIGBUS"), "{found:?}");
    let changed = Observations {
        live: vec![
            canary(None, None),
            canary(
                None,
                Some(Beat {
                    exe: 1,
                    lib: 2,
                    checksum: "other".into(),
                }),
            ),
        ],
        ..clean()
    };
    let found = seen_of(&judge(&changed, Property::Live));
    assert_eq!(found.len(), 1, "only the harmed process: {found:?}");
    assert!(found[0].1.contains("exe v1 / lib v2"), "{found:?}");
}

fn probe(at: &str, seen: &str, ok: bool) -> ProbeObservation {
    ProbeObservation {
        at: point(at),
        op: OpRecord {
            path: "/app/libcanary.so".into(),
            ..OpRecord::blank(OpKind::Write)
        },
        probe: ProbeKind::Read,
        seen: seen.into(),
        ok,
        blocked: false,
        target: TargetState::missing(),
    }
}

#[test]
fn visible_needs_a_probe() {
    assert_not_exercised(judge(&clean(), Property::Visible), "no op was stalled");
    let seen = Observations {
        probes: vec![probe("rename#1:stall=10s", "read: old", true)],
        ..clean()
    };
    assert_eq!(judge(&seen, Property::Visible), Verdict::Pass);
}

#[test]
fn visible_names_everything_users_saw_at_each_stall_once() {
    let seen = Observations {
        probes: vec![
            probe("write#2:stall=10s", "read: prefix-of-new", false),
            probe(
                "write#2:stall=10s",
                "load: failed (killed by SIGBUS)",
                false,
            ),
            probe("write#3:stall=10s", "read: old", true),
            probe("write#3:stall=10s", "load: failed (exit 3)", false),
        ],
        ..clean()
    };
    assert_eq!(
        seen_of(&judge(&seen, Property::Visible)),
        [
            (
                Some("write#2:stall=10s".into()),
                "a user saw read: prefix-of-new, load: failed (killed by SIGBUS)".into()
            ),
            (
                Some("write#3:stall=10s".into()),
                "a user saw load: failed (exit 3)".into()
            ),
        ]
    );
}

#[test]
fn kill_needs_a_kill_and_a_complete_target_after_it() {
    assert_not_exercised(judge(&clean(), Property::Kill), "no kill fired");
    // An error is no kill: kill stays unexercised.
    let errored = interrupted("write#1:errno=EIO", TargetClass::Old);
    assert_not_exercised(judge(&errored, Property::Kill), "no kill fired");
    for class in [TargetClass::Old, TargetClass::New] {
        let seen = interrupted("write#1:kill-after", class);
        assert_eq!(judge(&seen, Property::Kill), Verdict::Pass, "{class}");
    }
    let seen = interrupted("write#3:kill-after", TargetClass::PrefixOfNew);
    assert_eq!(
        seen_of(&judge(&seen, Property::Kill)),
        [(
            Some("write#3:kill-after".into()),
            "after the kill the target is prefix-of-new".into()
        )]
    );
    let seen = interrupted("unlink#1:kill-before=TERM", TargetClass::Missing);
    assert_eq!(seen_of(&judge(&seen, Property::Kill)).len(), 1);
}

#[test]
fn errors_needs_a_complete_target_and_a_truthful_exit() {
    assert_not_exercised(judge(&clean(), Property::Errors), "no injected error");
    let failed_old = Observations {
        first: ran(Exit::Code(1), TargetClass::Old),
        ..interrupted("write#1:errno=ENOSPC", TargetClass::Old)
    };
    assert_eq!(judge(&failed_old, Property::Errors), Verdict::Pass);
    let lied = Observations {
        first: ran(Exit::Code(0), TargetClass::Old),
        ..interrupted("write#1:errno=EIO", TargetClass::Old)
    };
    let found = seen_of(&judge(&lied, Property::Errors));
    assert_eq!(found.len(), 1);
    assert!(found[0].1.contains("exited 0 after the error"), "{found:?}");
    let torn = interrupted("write#2:short-write=50%", TargetClass::Torn);
    assert_eq!(
        seen_of(&judge(&torn, Property::Errors)),
        [(
            Some("write#2:short-write=50%".into()),
            "after the error the target is torn".into()
        )]
    );
}

#[test]
fn power_judges_the_durable_target() {
    assert_not_exercised(judge(&clean(), Property::Power), "no power cut");
    let kept = interrupted("rename#1:power-cut=strict", TargetClass::Old);
    assert_eq!(judge(&kept, Property::Power), Verdict::Pass);
    let empty = interrupted("rename#1:power-cut=metadata-ordered", TargetClass::Empty);
    assert_eq!(
        seen_of(&judge(&empty, Property::Power)),
        [(
            Some("rename#1:power-cut=metadata-ordered".into()),
            "after the power cut the durable target is empty".into()
        )]
    );
    // A failed fsync, then the cut after the run: power judges the disk;
    // errors says why it did not.
    let ignored = interrupted("fsync#1:errno=EIO+power-cut=strict", TargetClass::Empty);
    assert_eq!(
        seen_of(&judge(&ignored, Property::Power)),
        [(
            Some("fsync#1:errno=EIO+power-cut=strict".into()),
            "after the power cut the durable target is empty".into()
        )]
    );
    assert_not_exercised(judge(&ignored, Property::Errors), "judged under power");
    assert_not_exercised(judge(&ignored, Property::Kill), "no kill");
}

#[test]
fn retry_needs_an_interruption_and_a_retry() {
    assert_not_exercised(judge(&clean(), Property::Retry), "nothing interrupted");
    // A stall interrupts nothing.
    let stalled = Observations {
        fired: vec![point("rename#1:stall=10s")],
        ..clean()
    };
    assert_not_exercised(judge(&stalled, Property::Retry), "nothing interrupted");
    let no_retry = Observations {
        retries: Vec::new(),
        ..interrupted("write#1:kill-after", TargetClass::Torn)
    };
    assert_not_exercised(judge(&no_retry, Property::Retry), "no retry was made");
    let seen = interrupted("write#1:kill-after", TargetClass::Torn);
    assert_eq!(judge(&seen, Property::Retry), Verdict::Pass);
}

#[test]
fn a_fault_in_a_retry_is_judged_by_what_that_retry_left() {
    // Killed with the target complete; the retry, killed in turn after
    // removing the target, leaves none; a second retry puts new there.
    let seen = Observations {
        fired: vec![
            point("fsync#1:kill-after"),
            point("retry:unlink#1:kill-after"),
        ],
        first: ran(Exit::Signal(9), TargetClass::Old),
        retries: vec![
            ran(Exit::Signal(9), TargetClass::Missing),
            ran(Exit::Code(0), TargetClass::New),
        ],
        ..clean()
    };
    assert_eq!(
        seen_of(&judge(&seen, Property::Kill)),
        [(
            Some("retry:unlink#1:kill-after".into()),
            "after the kill the target is missing".into()
        )]
    );
    assert_eq!(judge(&seen, Property::Retry), Verdict::Pass);
    // The last retry is the one judged: blamed on the fault before it.
    let mut stuck = seen.clone();
    stuck.retries[1] = ran(Exit::Code(1), TargetClass::Missing);
    assert_eq!(
        seen_of(&judge(&stuck, Property::Retry)),
        [(
            Some("retry:unlink#1:kill-after".into()),
            "the retry ended (exit 1) and left the target missing".into()
        )]
    );
    // An error, then a kill in the rollback it started: what the run
    // left is the kill's doing.
    let rollback = Observations {
        fired: vec![point("rename#1:errno=EIO"), point("unlink#1:kill-after")],
        first: ran(Exit::Signal(9), TargetClass::Missing),
        ..interrupted("rename#1:errno=EIO", TargetClass::Missing)
    };
    assert_eq!(
        seen_of(&judge(&rollback, Property::Kill)),
        [(
            Some("unlink#1:kill-after".into()),
            "after the kill the target is missing".into()
        )]
    );
    assert_not_exercised(
        judge(&rollback, Property::Errors),
        "the run went on past rename#1:errno=EIO and unlink#1:kill-after ended it: judged under kill",
    );
}

#[test]
fn retry_fails_with_the_last_line_it_printed() {
    let seen = Observations {
        retries: vec![StrategyRun {
            stderr: "staging\nmkdir: cannot create directory 'stage': File exists".into(),
            ..ran(Exit::Code(1), TargetClass::Empty)
        }],
        ..interrupted("write#1:kill-after", TargetClass::Empty)
    };
    assert_eq!(
        seen_of(&judge(&seen, Property::Retry)),
        [(
            Some("write#1:kill-after".into()),
            "the retry ended (exit 1) and left the target empty: mkdir: cannot create directory 'stage': File exists".into()
        )]
    );
}

#[test]
fn meta_needs_a_finished_replacement() {
    let unfinished = Observations {
        first: ran(Exit::Code(1), TargetClass::Old),
        ..clean()
    };
    assert_not_exercised(
        judge(&unfinished, Property::Meta),
        "no run ended with the new target",
    );
    // An interrupted run whose retry finished is judged on the retry.
    let mut retried = interrupted("write#1:kill-after", TargetClass::Torn);
    if let Some(retry) = retried.retries.first_mut() {
        retry.target.mode = Some(0o600);
    }
    assert_eq!(
        seen_of(&judge(&retried, Property::Meta)),
        [(
            Some("write#1:kill-after".into()),
            "mode is 0600, was 0755".into()
        )]
    );
}

#[test]
fn meta_judges_the_state_an_interruption_left() {
    // Killed between the rename and the chmod: new bytes, mode 0600, no
    // xattr; the retry put them right.
    let mut chmod_later = interrupted("rename#1:kill-after", TargetClass::New);
    chmod_later.first.target.mode = Some(0o600);
    chmod_later.first.target.xattrs.clear();
    assert_eq!(
        seen_of(&judge(&chmod_later, Property::Meta)),
        [(
            Some("rename#1:kill-after".into()),
            "the target has the new bytes but mode is 0600, was 0755, \
             xattrs lost or changed: user.origin"
                .into()
        )]
    );
    // Old bytes with a changed mode are no new target: not meta's to judge.
    let mut old = interrupted("setattr#1:kill-after", TargetClass::Old);
    old.first.target.mode = Some(0o600);
    assert_eq!(judge(&old, Property::Meta), Verdict::Pass);
    // What the end gets wrong too is said once, of the end.
    if let Some(retry) = chmod_later.retries.first_mut() {
        retry.target.xattrs.clear();
    }
    assert_eq!(
        seen_of(&judge(&chmod_later, Property::Meta)),
        [
            (
                Some("rename#1:kill-after".into()),
                "the target has the new bytes but mode is 0600, was 0755".into()
            ),
            (
                Some("rename#1:kill-after".into()),
                "xattrs lost or changed: user.origin".into()
            )
        ]
    );
    // A wrong state that nothing finished after is still a finding.
    chmod_later.retries = vec![ran(Exit::Code(1), TargetClass::New)];
    assert_eq!(seen_of(&judge(&chmod_later, Property::Meta)).len(), 1);
}

#[test]
fn meta_judges_the_target_users_met_at_a_stall() {
    // Stalled between the rename and the chmod: the probes read new
    // bytes, and a user listing the target met mode 0600.
    let mut at_stall = probe("setattr#1:stall=10s", "read: new", true);
    at_stall.target = state(TargetClass::New);
    at_stall.target.mode = Some(0o600);
    let seen = Observations {
        fired: vec![point("setattr#1:stall=10s")],
        probes: vec![at_stall.clone(), at_stall],
        ..clean()
    };
    assert_eq!(
        seen_of(&judge(&seen, Property::Meta)),
        [(
            Some("setattr#1:stall=10s".into()),
            "the target has the new bytes but mode is 0600, was 0755".into()
        )]
    );
    // Old bytes at the stall: nothing new was met yet.
    let mut before = probe("rename#1:stall=10s", "read: old", true);
    before.target = state(TargetClass::Old);
    before.target.mode = Some(0o600);
    let seen = Observations {
        fired: vec![point("rename#1:stall=10s")],
        probes: vec![before],
        ..clean()
    };
    assert_eq!(judge(&seen, Property::Meta), Verdict::Pass);
}

#[test]
fn meta_fails_on_mode_owner_or_xattrs() {
    assert_eq!(judge(&clean(), Property::Meta), Verdict::Pass);
    let mut lost = clean();
    lost.first.target.mode = Some(0o644);
    lost.first.target.owner = Some((1000, 1000));
    lost.first.target.xattrs.clear();
    assert_eq!(
        seen_of(&judge(&lost, Property::Meta)),
        [
            (None, "mode is 0644, was 0755".into()),
            (None, "owner is 1000:1000, was 0:0".into()),
            (None, "xattrs lost or changed: user.origin".into()),
        ]
    );
    // Where one uid is mapped, the owner is not judged (the report says
    // that part was not exercised); the rest still is.
    lost.single_uid = true;
    assert_eq!(
        seen_of(&judge(&lost, Property::Meta)),
        [
            (None, "mode is 0644, was 0755".into()),
            (None, "xattrs lost or changed: user.origin".into()),
        ]
    );
}

#[test]
fn tidy_fails_on_strays_of_the_finishing_run() {
    assert_eq!(judge(&clean(), Property::Tidy), Verdict::Pass);
    let mut seen = interrupted("create#1:kill-after", TargetClass::Old);
    // Strays of the interrupted run that the retry cleaned up are fine.
    seen.first.strays = vec!["/app/.tmp.Xy12Ab".into()];
    assert_eq!(judge(&seen, Property::Tidy), Verdict::Pass);
    if let Some(retry) = seen.retries.first_mut() {
        retry.strays = vec!["/app/.tmp.Xy12Ab".into()];
    }
    assert_eq!(
        seen_of(&judge(&seen, Property::Tidy)),
        [(
            Some("create#1:kill-after".into()),
            "stray files left: /app/.tmp.Xy12Ab".into()
        )]
    );
    let unfinished = Observations {
        first: ran(Exit::Signal(9), TargetClass::Torn),
        ..clean()
    };
    assert_not_exercised(judge(&unfinished, Property::Tidy), "no run ended");
    let mut daemon = clean();
    daemon.first.left_running = vec!["sleep (pid 7)".into()];
    assert_eq!(
        seen_of(&judge(&daemon, Property::Tidy)),
        [(
            None,
            "processes left running after the strategy exited, killed at the linger bound: sleep (pid 7)".into()
        )]
    );
}

#[test]
fn a_not_exercised_property_has_no_findings_and_is_not_a_pass() {
    let verdict = judge(&clean(), Property::Kill);
    assert!(!verdict.exercised());
    assert!(verdict.findings().is_empty());
    assert_ne!(verdict, Verdict::Pass);
    let evaluation = evaluate(&clean(), &wanted());
    let exercised: Vec<Property> = evaluation.exercised().collect();
    assert_eq!(
        exercised,
        [Property::Result, Property::Meta, Property::Tidy],
        "an undisturbed run with no live process or probe"
    );
}

/// fsyncgate: the strategy retried a failed fsync, which returned 0 and
/// wrote nothing; it renamed and exited 0 with the new target in the
/// cache, but the disk holds zeros.
#[test]
fn exit_0_after_a_failed_fsync_whose_data_never_reached_the_disk_fails_errors() {
    let retried = |durable: TargetClass| Observations {
        fired: vec![point("fsync#1:errno=EIO")],
        first: StrategyRun {
            durable_after_sync_error: Some(state(durable)),
            ..ran(Exit::Code(0), TargetClass::New)
        },
        ..clean()
    };
    assert_eq!(
        seen_of(&judge(&retried(TargetClass::Torn), Property::Errors)),
        [(
            Some("fsync#1:errno=EIO".into()),
            "the strategy exited 0 after the failed sync, but the data it was to make durable \
             never reached the disk: a power cut now leaves the durable target torn"
                .into()
        )]
    );
    // It wrote the file again and synced it: the data is on disk.
    assert_eq!(
        judge(&retried(TargetClass::New), Property::Errors),
        Verdict::Pass
    );
}

#[test]
fn damage_to_the_programs_other_files_fails_result_even_with_the_target_new() {
    let damaged = |what: &[&str], class| Observations {
        first: StrategyRun {
            damaged: what.iter().map(|w| (*w).to_owned()).collect(),
            ..ran(Exit::Code(0), class)
        },
        ..clean()
    };
    assert_eq!(
        judge(&damaged(&[], TargetClass::New), Property::Result),
        Verdict::Pass
    );
    let pruned = judge(
        &damaged(&["app/canary: missing"], TargetClass::New),
        Property::Result,
    );
    assert_eq!(
        seen_of(&pruned),
        vec![(
            None,
            "the strategy damaged what it had no reason to touch: app/canary: missing".to_owned()
        )]
    );
    // Beside a target that is not new, both are said.
    let both = judge(
        &damaged(&["app/: mode 0700, was 0755"], TargetClass::Old),
        Property::Result,
    );
    assert_eq!(seen_of(&both).len(), 2, "{both:?}");
}
