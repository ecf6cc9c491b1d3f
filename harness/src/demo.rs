//! `swapfault demo`: the teaching demo, narrated, with no configuration.
//!
//! Every sentence about what happened is read off a real run: the verdicts
//! come from the outcome, never from the strategy's name.

use std::io::{self, Write};

use crate::error::RunError;
use crate::observe::{StrategyRun, TargetClass};
use crate::outcome::RunOutcome;
use crate::runner::{run, RunOptions};
use crate::scenario::{default_new_size, Platform, Scenario, TargetKind};
use crate::self_update::SelfUpdate;
use crate::target::Prepared;

/// `cp` over the target: writes the live inode in place.
pub const CP: &str = r#"cp "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#;
/// `install`: unlinks, then writes a new inode.
pub const INSTALL: &str = r#"install "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#;
/// Temp file in the target's directory, fsync, rename over, fsync the directory.
pub const TEMP_FSYNC_RENAME: &str = r#"dir=$(dirname "$SWAPFAULT_TARGET"); tmp="$dir/.swap.tmp"; cp "$SWAPFAULT_NEW" "$tmp" && sync "$tmp" && mv -f "$tmp" "$SWAPFAULT_TARGET" && sync "$dir""#;

/// The canary size the demo uses: several write requests, so a kill can
/// land in the middle of the copy.
const DEMO_SIZE: u64 = 512 * 1024;

fn once(command: &str, fault: Option<&str>) -> Result<(Prepared, RunOutcome), RunError> {
    let prepared = Prepared::new(Scenario::ad_hoc(
        command,
        TargetKind::Lib,
        DEMO_SIZE,
        default_new_size(DEMO_SIZE),
    ))?;
    let faults = fault
        .map(|spec| spec.parse().map(|rule| vec![rule]))
        .transpose()
        .map_err(RunError::Plan)?
        .unwrap_or_default();
    let outcome = run(&prepared, &faults, &RunOptions::default())?;
    Ok((prepared, outcome))
}

/// One undisturbed run (retried if interrupted) of the self-updating
/// program replacing its executable by `spec`, under `platform`.
fn self_update(spec: &str, platform: Platform) -> Result<RunOutcome, DemoError> {
    let spec: SelfUpdate = spec.parse().map_err(DemoError::Spec)?;
    let scenario = Scenario::ad_hoc("", TargetKind::Exe, DEMO_SIZE, default_new_size(DEMO_SIZE))
        .self_updating(spec)
        .map_err(DemoError::Spec)?
        .with_platform(platform);
    let prepared = Prepared::new(scenario)?;
    Ok(run(&prepared, &[], &RunOptions::default())?)
}

/// The last line a run wrote to stderr, after `: `, or nothing.
fn said(run: &StrategyRun) -> String {
    run.stderr
        .lines()
        .last()
        .map_or(String::new(), |line| format!(": {line}"))
}

fn ino(outcome: &RunOutcome) -> String {
    let show = |ino: Option<u64>| ino.map_or("(none)".to_owned(), |i| i.to_string());
    format!(
        "inode {} -> {}",
        show(outcome.observed.before.ino),
        show(outcome.observed.first.target.ino)
    )
}

/// What the inode numbers say about how the target was replaced.
fn inode_story(outcome: &RunOutcome) -> &'static str {
    match (
        outcome.observed.before.ino,
        outcome.observed.first.target.ino,
    ) {
        (Some(before), Some(after)) if before == after => "same inode: written in place",
        (Some(_), Some(_)) => "a new inode: the old one lives on for whoever maps it",
        _ => "no target at the end",
    }
}

fn live_line(outcome: &RunOutcome) -> String {
    outcome
        .observed
        .live
        .first()
        .map_or("no live process".to_owned(), |live| live.describe())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "SAFE"
    } else {
        "BROKEN"
    }
}

/// Runs the demo, narrating to `out`. Returns true when every step showed
/// what it teaches (a false return means the machine behaved unexpectedly).
pub fn demo(out: &mut dyn Write) -> Result<bool, DemoError> {
    fault_fs::check_environment().map_err(RunError::from)?;
    let mut as_taught = true;
    writeln!(
        out,
        "swapfault demo: replacing a shared library that a running program uses"
    )?;
    writeln!(
        out,
        "Each step mounts fault-fs, stages app/libcanary.so (v1), starts a live"
    )?;
    writeln!(
        out,
        "canary that maps it, then runs a strategy to install v2."
    )?;
    writeln!(out)?;

    writeln!(out, "1. cp new lib over the target  ($ {CP})")?;
    let (_, cp) = once(CP, None)?;
    writeln!(
        out,
        "   target: {}, {} ({})",
        cp.observed.first.target.class,
        ino(&cp),
        inode_story(&cp)
    )?;
    writeln!(out, "   {}", live_line(&cp))?;
    let cp_live_ok = cp.observed.live.first().is_some_and(|l| l.unharmed());
    writeln!(out, "   => {} for running programs", verdict(cp_live_ok))?;
    as_taught &= !cp_live_ok;
    writeln!(out)?;

    writeln!(out, "2. install new lib  ($ {INSTALL})")?;
    let (_, install) = once(INSTALL, None)?;
    writeln!(
        out,
        "   target: {}, {} ({})",
        install.observed.first.target.class,
        ino(&install),
        inode_story(&install)
    )?;
    writeln!(out, "   {}", live_line(&install))?;
    let install_live_ok = install.observed.live.first().is_some_and(|l| l.unharmed());
    writeln!(
        out,
        "   => {} for running programs: they keep the old inode",
        verdict(install_live_ok)
    )?;
    as_taught &= install_live_ok;
    writeln!(out)?;

    let kill = "write#1:kill-after";
    writeln!(
        out,
        "3. install again, SIGKILLed right after its first write  (--fault '{kill}')"
    )?;
    let (_, killed) = once(INSTALL, Some(kill))?;
    let class = killed.observed.first.target.class;
    writeln!(
        out,
        "   strategy: {}; target left {} ({})",
        killed.observed.first.exit,
        class,
        ino(&killed)
    )?;
    writeln!(
        out,
        "   => {}: a program started now finds a {} library",
        verdict(class.is_complete()),
        class
    )?;
    as_taught &= !class.is_complete();
    writeln!(out)?;

    writeln!(
        out,
        "4. temp file + fsync + rename + fsync dir, same kill  (--fault '{kill}')"
    )?;
    writeln!(out, "   $ {TEMP_FSYNC_RENAME}")?;
    let (_, atomic) = once(TEMP_FSYNC_RENAME, Some(kill))?;
    let class = atomic.observed.first.target.class;
    writeln!(
        out,
        "   strategy: {}; target left {} ({})",
        atomic.observed.first.exit,
        class,
        ino(&atomic)
    )?;
    if let Some(retry) = atomic.observed.retries.first() {
        writeln!(
            out,
            "   retry: {}; target {}",
            retry.exit, retry.target.class
        )?;
    }
    writeln!(out, "   {}", live_line(&atomic))?;
    let atomic_ok = class.is_complete()
        && atomic.observed.live.first().is_some_and(|l| l.unharmed())
        && atomic
            .observed
            .retries
            .first()
            .is_none_or(|r| r.target.class == TargetClass::New);
    writeln!(
        out,
        "   => {}: users see old until the rename, then new",
        verdict(atomic_ok)
    )?;
    as_taught &= atomic_ok;
    writeln!(out)?;

    as_taught &= self_update_step(out)?;
    writeln!(out)?;
    writeln!(
        out,
        "Every crash point of a strategy: swapfault explore --strategy 'CMD'"
    )?;
    writeln!(out, "One fault, reproduced:           swapfault check --strategy 'CMD' --fault 'write#1:kill-after'")?;
    Ok(as_taught)
}

/// Step 5: a program that replaces its own executable in place, under
/// Linux and under the macOS model, then the fix. True when each showed
/// what it teaches.
fn self_update_step(out: &mut dyn Write) -> Result<bool, DemoError> {
    const IN_PLACE: &str = "in-place";
    const FIX: &str = "rename+fsync+copy-meta+clear-staging";
    writeln!(
        out,
        "5. a program that replaces its own executable in place, as a real updater did"
    )?;
    writeln!(
        out,
        "   (--self-update {IN_PLACE}: mkdir a staging dir, open itself with O_TRUNC, copy)"
    )?;
    let linux = self_update(IN_PLACE, Platform::Linux)?;
    let first = &linux.observed.first;
    writeln!(
        out,
        "   Linux: {}; target {}{}",
        first.exit,
        first.target.class,
        said(first)
    )?;
    let linux_ok = first.target.class == TargetClass::Old && !first.exit.success();
    let macos = self_update(IN_PLACE, Platform::Macos)?;
    let first = &macos.observed.first;
    match &first.killed_by_platform {
        Some(kill) => writeln!(
            out,
            "   macOS model (--platform macos): {} {kill}",
            first.exit
        )?,
        None => writeln!(out, "   macOS model (--platform macos): {}", first.exit)?,
    }
    let retry = macos.observed.retries.first();
    match retry {
        Some(retry) => writeln!(
            out,
            "   target left {}; retry: {}{}",
            first.target.class,
            retry.exit,
            said(retry)
        )?,
        None => writeln!(out, "   target left {}", first.target.class)?,
    }
    let macos_broken = first.killed_by_platform.is_some()
        && !first.target.class.is_complete()
        && retry.is_some_and(|r| r.target.class != TargetClass::New);
    writeln!(
        out,
        "   => {} on macOS: the program lost its own executable, and its retry stops at the staging dir",
        verdict(!macos_broken)
    )?;
    let fixed = self_update(FIX, Platform::Macos)?;
    let first = &fixed.observed.first;
    let update = first
        .self_update
        .as_ref()
        .map_or(String::new(), |u| format!("; {u}"));
    writeln!(out, "   the fix (--self-update {FIX}):")?;
    writeln!(out, "   {}{update}", first.exit)?;
    let fixed_ok = first.exit.success()
        && first.target.class == TargetClass::New
        && first.killed_by_platform.is_none()
        && first
            .self_update
            .as_ref()
            .and_then(|u| u.running)
            .is_some_and(|(exe, _)| exe == 2);
    writeln!(
        out,
        "   => {}: its running file's bytes never change; it runs v2 after the rename",
        verdict(fixed_ok)
    )?;
    Ok(linux_ok && macos_broken && fixed_ok)
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A run failed to start.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Output failed.
    #[error("cannot write the demo output: {0}")]
    Io(#[from] io::Error),
    /// A self-update the demo runs could not be built (a bug of the demo).
    #[error("the demo's self-update: {0}")]
    Spec(String),
}
