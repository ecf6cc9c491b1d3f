//! One run: mount, stage, start live processes, run the strategy under a
//! fault plan, probe at stalled ops, observe, retry, and clean up.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fault_fs::tree::{NewNode, NodeKind, ROOT_INO};
use fault_fs::{
    Fault, FaultFs, FaultFsHandle, FaultMount, FaultPlan, MountError, OpKind, OpRecord, Rule, Tree,
};
use serde::Serialize;

use crate::canary::{self, CanaryError};
use crate::check::{classify, Finding, Property, TargetClass};
use crate::live::{run_with_timeout, ChildGuard, Exit, LiveCanary, LiveReport};
use crate::scenario::{ProbeKind, Scenario, TargetKind, Versions};

/// Directory in the mount that holds the target and its siblings.
pub const APP_DIR: &str = "app";
/// Directory in the mount where NEW is staged when `new_inside` is set.
pub const STAGING_DIR: &str = "staging";

/// How long probes may look while an op is held, before it is released.
/// Probes normally finish in milliseconds; one that touches a page the
/// stalled write holds locked waits for the write, as a user would.
const PROBE_HOLD: Duration = Duration::from_millis(500);
/// The hold at a namespace op or a lookup, where probes are expected to wait
/// on the kernel's directory lock (or in-lookup dentry) until it is released.
const PROBE_HOLD_LOCKED: Duration = Duration::from_millis(100);

/// How long a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a run could not be carried out (as opposed to a finding).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Mounting failed.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// The canary could not be built.
    #[error(transparent)]
    Canary(#[from] CanaryError),
    /// Files could not be read or staged.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The live canary or the strategy could not be started.
    #[error("{0}")]
    Start(String),
}

impl RunError {
    /// True for problems with the machine (no FUSE, no compiler), not the input.
    pub fn is_environment(&self) -> bool {
        match self {
            RunError::Mount(err) => err.is_environment(),
            RunError::Canary(CanaryError::Size(_)) => false,
            RunError::Canary(_) => true,
            RunError::Io { .. } | RunError::Start(_) => false,
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}

/// A file placed next to the target (the canary's other half).
#[derive(Clone, Debug)]
struct Sibling {
    name: String,
    bytes: Arc<Vec<u8>>,
}

/// A scenario with its versions read and built: reusable across runs.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The scenario.
    pub scenario: Scenario,
    /// Old bytes.
    pub old: Arc<Vec<u8>>,
    /// New bytes.
    pub new: Arc<Vec<u8>>,
    /// File name of the target inside [`APP_DIR`].
    pub target_name: String,
    sibling: Option<Sibling>,
    /// A canary executable outside any mount, used by load probes.
    loader: Option<PathBuf>,
    /// The live canary's executable name in [`APP_DIR`], if any.
    live_exe: Option<String>,
    /// The tree every run starts from, built once: each run clones it
    /// (one `Arc` per inode) instead of copying the bytes again.
    initial: Tree,
}

impl Prepared {
    /// Reads or builds old and new. Checks first that FUSE can be mounted
    /// here, so a machine that cannot run anything says so before any build.
    pub fn new(scenario: Scenario) -> Result<Self, RunError> {
        fault_fs::check_environment()?;
        let mut prepared = Self::read_versions(scenario)?;
        prepared.initial = prepared.build_initial_tree();
        Ok(prepared)
    }

    fn read_versions(scenario: Scenario) -> Result<Self, RunError> {
        match scenario.versions.clone() {
            Versions::Canary { size } => {
                let v1 = canary::build(1, size)?;
                let v2 = canary::build(2, size)?;
                let read = |path: &Path| {
                    std::fs::read(path)
                        .map(Arc::new)
                        .map_err(io(format!("cannot read {}", path.display())))
                };
                let (target_name, old, new, sibling) = match scenario.kind {
                    TargetKind::Exe => (
                        canary::EXE_NAME,
                        read(&v1.exe)?,
                        read(&v2.exe)?,
                        (canary::LIB_NAME, read(&v1.lib)?),
                    ),
                    TargetKind::Lib => (
                        canary::LIB_NAME,
                        read(&v1.lib)?,
                        read(&v2.lib)?,
                        (canary::EXE_NAME, read(&v1.exe)?),
                    ),
                };
                Ok(Prepared {
                    initial: Tree::new(),
                    live_exe: scenario.live.then(|| canary::EXE_NAME.to_owned()),
                    scenario,
                    old,
                    new,
                    target_name: target_name.to_owned(),
                    sibling: Some(Sibling {
                        name: sibling.0.to_owned(),
                        bytes: sibling.1,
                    }),
                    loader: Some(v1.exe),
                })
            }
            Versions::Files { old, new } => {
                let read = |path: &Path| {
                    std::fs::read(path)
                        .map(Arc::new)
                        .map_err(io(format!("cannot read {}", path.display())))
                };
                let target_name = old
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "target".into());
                Ok(Prepared {
                    old: read(&old)?,
                    new: read(&new)?,
                    scenario,
                    target_name,
                    sibling: None,
                    loader: None,
                    live_exe: None,
                    initial: Tree::new(),
                })
            }
        }
    }

    /// The target's path relative to the mount root.
    pub fn target_rel(&self) -> String {
        format!("{APP_DIR}/{}", self.target_name)
    }

    /// The tree every run starts from: `/app/TARGET` (old) and its sibling,
    /// and `/staging/TARGET` (new) when NEW is staged inside.
    pub fn initial_tree(&self) -> Tree {
        self.initial.clone()
    }

    fn build_initial_tree(&self) -> Tree {
        let mut tree = Tree::new();
        let root = NewNode {
            perm: 0o755,
            uid: 0,
            gid: 0,
        };
        // Fresh tree, fixed names: none of these can fail.
        let app = tree
            .mkdir(ROOT_INO, APP_DIR.as_ref(), root)
            .unwrap_or(ROOT_INO);
        let file = |tree: &mut Tree, dir: u64, name: &str, bytes: &[u8], perm: u32| {
            let node = NewNode {
                perm: perm as u16,
                ..root
            };
            if let Ok(ino) = tree.create_file(dir, name.as_ref(), node) {
                let _ = tree.write(ino, 0, bytes);
                Some(ino)
            } else {
                None
            }
        };
        if let Some(ino) = file(
            &mut tree,
            app,
            &self.target_name,
            &self.old,
            self.scenario.mode,
        ) {
            for (name, value) in &self.scenario.xattrs {
                let _ = tree.setxattr(ino, name.as_ref(), value.as_bytes(), 0);
            }
        }
        if let Some(sibling) = &self.sibling {
            file(&mut tree, app, &sibling.name, &sibling.bytes, 0o755);
        }
        if self.scenario.new_inside {
            let staging = tree
                .mkdir(ROOT_INO, STAGING_DIR.as_ref(), root)
                .unwrap_or(ROOT_INO);
            file(&mut tree, staging, &self.target_name, &self.new, 0o755);
        }
        tree
    }
}

/// The target as found in the tree.
#[derive(Clone, Debug, Serialize)]
pub struct TargetState {
    /// Its class.
    pub class: TargetClass,
    /// Its inode number, if present.
    pub ino: Option<u64>,
    /// Mode bits.
    pub mode: Option<u32>,
    /// Owner and group.
    pub owner: Option<(u32, u32)>,
    /// Extended attributes (lossy UTF-8 values).
    pub xattrs: BTreeMap<String, String>,
}

/// Reads the target's state straight from the tree (no FUSE request, so the
/// trace is not disturbed).
pub fn target_state(tree: &Tree, rel: &str, old: &[u8], new: &[u8]) -> TargetState {
    let Ok(ino) = tree.resolve(rel) else {
        return TargetState {
            class: TargetClass::Missing,
            ino: None,
            mode: None,
            owner: None,
            xattrs: BTreeMap::new(),
        };
    };
    let node = tree.get(ino).ok();
    let class = match node.map(|n| &n.kind) {
        Some(NodeKind::File(content)) => classify(Some(&content.to_vec()), old, new),
        _ => TargetClass::Torn,
    };
    TargetState {
        class,
        ino: Some(ino),
        mode: node.map(|n| u32::from(n.perm)),
        owner: node.map(|n| (n.uid, n.gid)),
        xattrs: node
            .map(|n| {
                n.xattrs
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string_lossy().into_owned(),
                            String::from_utf8_lossy(v).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Every path in the tree, for the tidy check.
pub fn all_paths(tree: &Tree) -> BTreeSet<String> {
    fn walk(tree: &Tree, ino: u64, prefix: &str, out: &mut BTreeSet<String>) {
        let Ok(entries) = tree.readdir(ino) else {
            return;
        };
        for (child, node, name) in entries.into_iter().skip(2) {
            let path = format!("{prefix}/{}", name.to_string_lossy());
            if node.is_dir() {
                walk(tree, child, &path, out);
            }
            out.insert(path);
        }
    }
    let mut out = BTreeSet::new();
    walk(tree, ROOT_INO, "", &mut out);
    out
}

/// What one probe saw at a stalled op.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeObservation {
    /// The stalled op.
    pub op: String,
    /// `kind#N` of the stalled op among the strategy's ops.
    pub point: String,
    /// The probe.
    pub probe: String,
    /// What it saw.
    pub seen: String,
    /// Complete old or complete new.
    pub ok: bool,
}

/// One run of the strategy and what it left.
#[derive(Clone, Debug, Serialize)]
pub struct StrategyRun {
    /// How it ended.
    pub exit: Exit,
    /// The last lines of its stderr.
    pub stderr: String,
    /// The target afterwards.
    pub target: TargetState,
    /// Paths that were not there before (outside the staging directory).
    pub strays: Vec<String>,
}

/// Everything one run observed.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutcome {
    /// The fault rules in force (`write#3:kill-after ...`), empty if none.
    pub faults: Vec<String>,
    /// The faults that fired, as `kind#N:fault`.
    pub fired: Vec<String>,
    /// The target before the run.
    pub before: TargetState,
    /// The first run.
    pub first: StrategyRun,
    /// The undisturbed retry after an interruption, if one was made.
    pub retry: Option<StrategyRun>,
    /// The live canary, if one ran.
    pub live: Option<LiveReport>,
    /// The scenario's other live processes.
    pub live_commands: Vec<LiveReport>,
    /// Probes at stalled ops.
    pub probes: Vec<ProbeObservation>,
    /// The strategy's ops (its process group only), in order.
    pub trace: Vec<OpRecord>,
    /// Properties this run exercised.
    pub checked: Vec<Property>,
    /// Properties that failed, with what was seen.
    pub findings: Vec<Finding>,
}

/// Knobs of one run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Retry undisturbed after an interruption.
    pub retry: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { retry: true }
    }
}

/// Names each op `kind#N`: its position among the same kind of op, as fault
/// specs count them.
pub fn op_points(trace: &[OpRecord]) -> Vec<String> {
    let mut counts: BTreeMap<fault_fs::OpKind, u64> = BTreeMap::new();
    trace
        .iter()
        .map(|op| {
            let n = counts.entry(op.kind).or_default();
            *n += 1;
            format!("{}#{}", op.kind, n)
        })
        .collect()
}

/// Removes the temp dir of a run, given its mount point, when a signal ends
/// the process before the run's guards can.
pub fn remove_run_dir(mount_point: &Path) {
    if let Some(dir) = mount_point.parent() {
        if dir
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with(RUN_DIR_PREFIX))
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Prefix of a run's temp dir.
const RUN_DIR_PREFIX: &str = "swapfault-run-";

/// A mounted, staged run environment. Dropping it kills what runs and unmounts.
struct Stage {
    // Field order is drop order: live processes die before the unmount, the
    // unmount happens before the temp dir goes.
    live: Option<LiveCanary>,
    live_commands: Vec<(String, ChildGuard)>,
    mount: FaultMount,
    new_path: PathBuf,
    /// The temp dir's path (findings replace it with `$RUN`).
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Stage {
    fn new(prepared: &Prepared) -> Result<Stage, RunError> {
        let dir = tempfile::Builder::new()
            .prefix(RUN_DIR_PREFIX)
            .tempdir()
            .map_err(io("cannot create a temp dir"))?;
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).map_err(io("cannot create the mount point"))?;
        let new_path = if prepared.scenario.new_inside {
            mnt.join(STAGING_DIR).join(&prepared.target_name)
        } else {
            let stage = dir.path().join("stage");
            std::fs::create_dir(&stage).map_err(io("cannot create the staging dir"))?;
            let path = stage.join(&prepared.target_name);
            write_new(&path, &prepared.new)?;
            path
        };
        let fs = FaultFs::new(prepared.initial_tree(), FaultPlan::default());
        let mount = FaultMount::mount(fs, &mnt)?;
        let new_path = if prepared.scenario.new_inside {
            mount.join(format!("{STAGING_DIR}/{}", prepared.target_name))
        } else {
            new_path
        };
        Ok(Stage {
            live: None,
            live_commands: Vec::new(),
            mount,
            new_path,
            root: dir.path().to_owned(),
            _dir: dir,
        })
    }

    fn handle(&self) -> &FaultFsHandle {
        self.mount.handle()
    }
}

/// Runs the strategy once: gated so no op escapes the fault scope, with
/// probes at every stalled op. Returns exit, stderr and the probes' findings.
fn run_strategy(
    prepared: &Prepared,
    stage: &Stage,
    probes: &[ProbeKind],
) -> Result<(Exit, String, Vec<ProbeObservation>, u32), RunError> {
    let scenario = &prepared.scenario;
    let handle = stage.handle();
    let target = stage.mount.join(prepared.target_rel());
    // The strategy waits at a gate (a line on stdin) until the fault scope
    // is on its process group, so none of its ops escapes the plan. (A gate in
    // pre_exec would deadlock: spawn waits for the exec.)
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"read -r _gate; exec </dev/null; eval "$1""#)
        .arg("swapfault-strategy")
        .arg(&scenario.command)
        .current_dir(&scenario.workdir)
        .env("SWAPFAULT_TARGET", &target)
        .env("SWAPFAULT_NEW", &stage.new_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(command).map_err(|e| {
        RunError::Start(format!(
            "cannot start the strategy `{}`: {e} (hint: is `sh` on PATH?)",
            scenario.command
        ))
    })?;
    let pgid = child.pid();
    handle.set_scope(Some(pgid));
    if let Some(mut gate) = child.take_stdin() {
        let _ = gate.write_all(b"go\n");
    }
    let stderr = child_stderr(&mut child);
    let deadline = Instant::now() + scenario.timeout;
    let mut observations = Vec::new();
    let exit = loop {
        if let Some(exit) = child.try_exit() {
            break exit;
        }
        if Instant::now() >= deadline {
            break child.wait_until(deadline);
        }
        if let Some(stalled) = handle.wait_for_stall(Duration::from_millis(2)) {
            let point = op_points(&scope_trace(&handle.trace(), pgid))
                .into_iter()
                .last()
                .unwrap_or_default();
            observations.extend(probe_stalled(
                prepared, handle, &target, probes, &stalled, &point,
            ));
        }
    };
    // Nothing the strategy started may outlive it.
    child.kill_group();
    handle.release_stalls();
    // The run's temp dir differs every time: name it so findings compare.
    let stderr = stderr
        .join()
        .unwrap_or_default()
        .replace(&*stage.root.to_string_lossy(), "$RUN");
    Ok((exit, stderr, observations, pgid))
}

/// Runs the probes while an op is stalled, then releases it.
///
/// At a stalled namespace op (create, rename, unlink) the kernel holds the
/// directory's lock, so a probe that looks the target up waits until the op
/// is done, as a user starting the program at that moment would. Probes that
/// have not finished after [`PROBE_HOLD`] ([`PROBE_HOLD_LOCKED`] at a
/// namespace op) are let through by releasing the stall, and report what
/// they saw then.
fn probe_stalled(
    prepared: &Prepared,
    handle: &FaultFsHandle,
    target: &Path,
    probes: &[ProbeKind],
    stalled: &OpRecord,
    point: &str,
) -> Vec<ProbeObservation> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut seen = Vec::new();
    std::thread::scope(|scope| {
        for (index, probe) in probes.iter().enumerate() {
            let tx = tx.clone();
            scope.spawn(move || {
                let _ = tx.send((index, run_probe(prepared, target, *probe, stalled, point)));
            });
        }
        drop(tx);
        // A lookup in flight makes a probe looking up the same name wait for
        // it too (the kernel's in-lookup dentry), like a namespace op does.
        let holds_dir_lock = stalled.kind.is_namespace() || stalled.kind == OpKind::Lookup;
        let hold = if holds_dir_lock {
            PROBE_HOLD_LOCKED
        } else {
            PROBE_HOLD
        };
        let deadline = Instant::now() + hold;
        while seen.len() < probes.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(observation) => seen.push(observation),
                Err(_) => break,
            }
        }
        handle.release_stalls();
        for (index, mut observation) in rx.iter() {
            observation
                .seen
                .push_str(" (blocked until the op finished)");
            seen.push((index, observation));
        }
    });
    seen.sort_by_key(|(index, _)| *index);
    seen.into_iter()
        .map(|(_, observation)| observation)
        .collect()
}

fn child_stderr(child: &mut ChildGuard) -> std::thread::JoinHandle<String> {
    let stderr = child.take_stderr();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_string(&mut text);
        }
        // Keep the tail: the last lines say why it stopped.
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    })
}

/// The ops of one process group.
pub fn scope_trace(trace: &[OpRecord], pgid: u32) -> Vec<OpRecord> {
    trace.iter().filter(|op| op.pgid == pgid).cloned().collect()
}

fn run_probe(
    prepared: &Prepared,
    target: &Path,
    probe: ProbeKind,
    stalled: &OpRecord,
    point: &str,
) -> ProbeObservation {
    let (seen, ok) = match probe {
        ProbeKind::Read => match std::fs::read(target) {
            Ok(bytes) => {
                let class = classify(Some(&bytes), &prepared.old, &prepared.new);
                (format!("read: {class}"), class.is_complete())
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                ("read: missing".to_owned(), false)
            }
            Err(err) => (format!("read failed: {err}"), false),
        },
        ProbeKind::Exec => {
            let mut command = Command::new(target);
            command.arg("--once");
            version_probe("exec", command)
        }
        ProbeKind::Load => match &prepared.loader {
            Some(loader) => {
                let mut command = Command::new(loader);
                command.arg("--load").arg(target);
                version_probe("load", command)
            }
            None => ("load: no canary loader for user files".to_owned(), true),
        },
    };
    ProbeObservation {
        op: stalled.to_string(),
        point: point.to_owned(),
        probe: format!("{probe:?}").to_lowercase(),
        seen,
        ok,
    }
}

fn version_probe(name: &str, command: Command) -> (String, bool) {
    match run_with_timeout(command, PROBE_TIMEOUT) {
        Ok((exit, out)) if exit.success() => {
            let version = out.split_whitespace().last().unwrap_or("?").to_owned();
            let ok = version == "1" || version == "2";
            (format!("{name}: ran, library code v{version}"), ok)
        }
        Ok((exit, _)) => (format!("{name}: failed ({exit})"), false),
        Err(err) => (format!("{name}: could not start: {err}"), false),
    }
}

fn observe(
    prepared: &Prepared,
    handle: &FaultFsHandle,
    before: &BTreeSet<String>,
) -> (TargetState, Vec<String>) {
    handle.with_tree(|tree| {
        let state = target_state(tree, &prepared.target_rel(), &prepared.old, &prepared.new);
        let strays = all_paths(tree)
            .difference(before)
            .filter(|p| !p.starts_with(&format!("/{STAGING_DIR}")))
            .cloned()
            .collect();
        (state, strays)
    })
}

/// Starts one of the scenario's live commands in the target's directory.
fn start_live_command(
    prepared: &Prepared,
    stage: &Stage,
    command: &str,
) -> Result<ChildGuard, RunError> {
    let mut child = Command::new("sh");
    child
        .arg("-c")
        .arg(command)
        .current_dir(stage.mount.join(APP_DIR))
        .env("SWAPFAULT_TARGET", stage.mount.join(prepared.target_rel()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = ChildGuard::spawn(child)
        .map_err(|e| RunError::Start(format!("cannot start live command `{command}`: {e}")))?;
    // A live process must be running when the strategy starts.
    std::thread::sleep(Duration::from_millis(50));
    if let Some(exit) = child.try_exit() {
        return Err(RunError::Start(format!(
            "live command `{command}` ended before the strategy ran ({exit}) (hint: a live command must keep running, e.g. `./canary` or `sleep 60 < $SWAPFAULT_TARGET`)"
        )));
    }
    Ok(child)
}

fn command_reports(stage: &mut Stage) -> Vec<LiveReport> {
    stage
        .live_commands
        .iter_mut()
        .map(|(command, child)| LiveReport::of_command(command, child))
        .collect()
}

/// Puts NEW back if the interrupted run consumed it (mv does), as an
/// updater's retry would download it again.
fn restage_new(prepared: &Prepared, stage: &Stage) -> Result<(), RunError> {
    if stage.new_path.exists() {
        return Ok(());
    }
    if prepared.scenario.new_inside {
        stage.handle().with_tree(|tree| {
            let node = NewNode {
                perm: 0o755,
                uid: 0,
                gid: 0,
            };
            let dir = match tree.resolve(STAGING_DIR) {
                Ok(dir) => dir,
                Err(_) => tree
                    .mkdir(ROOT_INO, STAGING_DIR.as_ref(), node)
                    .unwrap_or(ROOT_INO),
            };
            if let Ok(ino) = tree.create_file(dir, prepared.target_name.as_ref(), node) {
                let _ = tree.write(ino, 0, &prepared.new);
            }
        });
        Ok(())
    } else {
        write_new(&stage.new_path, &prepared.new)
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).map_err(io("cannot stage NEW"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(io("cannot stage NEW"))
}

/// What kind of interruption a fault is.
fn interruption(fault: &str) -> Option<Property> {
    match Fault::from_str(fault).ok()? {
        Fault::KillBefore(_) | Fault::KillAfter(_) => Some(Property::Kill),
        Fault::Errno(_) | Fault::ShortWrite(_) => Some(Property::Errors),
        Fault::PowerCut(_) => Some(Property::Power),
        Fault::Stall(_) => None,
    }
}

/// Runs `prepared` once with `faults` in force.
pub fn run(
    prepared: &Prepared,
    faults: &[Rule],
    options: &RunOptions,
) -> Result<RunOutcome, RunError> {
    let _span = tracing::info_span!("run", scenario = %prepared.scenario.name).entered();
    let mut stage = Stage::new(prepared)?;
    if let Some(exe) = &prepared.live_exe {
        let path = stage.mount.join(format!("{APP_DIR}/{exe}"));
        stage.live = Some(LiveCanary::start(&path, None).map_err(RunError::Start)?);
    }
    for command in &prepared.scenario.live_commands {
        stage.live_commands.push((
            command.clone(),
            start_live_command(prepared, &stage, command)?,
        ));
    }
    let handle = stage.handle().clone();
    let paths_before = handle.with_tree(|tree| all_paths(tree));
    let before = handle
        .with_tree(|tree| target_state(tree, &prepared.target_rel(), &prepared.old, &prepared.new));
    handle.set_plan(FaultPlan {
        rules: faults.to_vec(),
    });
    let has_stall = faults.iter().any(|r| matches!(r.fault, Fault::Stall(_)));
    let probes = if !has_stall {
        Vec::new()
    } else if prepared.scenario.probes.is_empty() {
        default_probes(prepared)
    } else {
        prepared.scenario.probes.clone()
    };
    let (exit, stderr, probe_obs, pgid) = run_strategy(prepared, &stage, &probes)?;
    handle.set_plan(FaultPlan::default());
    handle.set_scope(None);
    let trace = scope_trace(&handle.trace(), pgid);
    let points = op_points(&trace);
    let fired: Vec<String> = trace
        .iter()
        .zip(&points)
        .filter_map(|(op, point)| op.fault.as_ref().map(|f| format!("{point}:{f}")))
        .collect();
    if let Some(live) = stage.live.as_mut() {
        live.settle(2, Duration::from_secs(2));
    }
    let mut live_before_cut = None;
    let mut commands_before_cut = None;
    if let Some(cut) = handle.take_power_cut() {
        // A reboot: running programs are gone and the disk holds only what
        // the model made durable. What live processes saw before still counts.
        live_before_cut = stage.live.as_mut().map(|live| live.report());
        commands_before_cut = Some(command_reports(&mut stage));
        stage.live = None;
        stage.live_commands.clear();
        handle.restore(&cut.tree);
    }
    let (target, strays) = observe(prepared, &handle, &paths_before);
    let first = StrategyRun {
        exit,
        stderr,
        target,
        strays,
    };
    let interrupted: BTreeSet<Property> = fired
        .iter()
        .filter_map(|f| f.split_once(':').and_then(|(_, fault)| interruption(fault)))
        .collect();
    let retry = if options.retry && !interrupted.is_empty() {
        restage_new(prepared, &stage)?;
        let (exit, stderr, _, _) = run_strategy(prepared, &stage, &[])?;
        handle.set_scope(None);
        if let Some(live) = stage.live.as_mut() {
            live.settle(2, Duration::from_secs(2));
        }
        let (target, strays) = observe(prepared, &handle, &paths_before);
        Some(StrategyRun {
            exit,
            stderr,
            target,
            strays,
        })
    } else {
        None
    };
    let live = live_before_cut.or_else(|| stage.live.as_mut().map(|live| live.report()));
    let live_commands = commands_before_cut.unwrap_or_else(|| command_reports(&mut stage));
    drop(stage);
    let mut outcome = RunOutcome {
        faults: faults.iter().map(|r| r.to_string()).collect(),
        fired,
        before,
        first,
        retry,
        live,
        live_commands,
        probes: probe_obs,
        trace,
        checked: Vec::new(),
        findings: Vec::new(),
    };
    evaluate(prepared, &mut outcome, &interrupted);
    Ok(outcome)
}

fn default_probes(prepared: &Prepared) -> Vec<ProbeKind> {
    match (&prepared.scenario.versions, prepared.scenario.kind) {
        (Versions::Canary { .. }, TargetKind::Exe) => vec![ProbeKind::Read, ProbeKind::Exec],
        (Versions::Canary { .. }, TargetKind::Lib) => vec![ProbeKind::Read, ProbeKind::Load],
        (Versions::Files { .. }, _) => vec![ProbeKind::Read],
    }
}

/// Decides which properties the outcome exercised and which failed.
fn evaluate(prepared: &Prepared, outcome: &mut RunOutcome, interrupted: &BTreeSet<Property>) {
    let point = (!outcome.fired.is_empty()).then(|| outcome.fired.join(" "));
    let mut checked = BTreeSet::new();
    let mut findings = Vec::new();
    let mut finding = |property: Property, seen: String| {
        findings.push(Finding {
            property,
            crash_point: point.clone(),
            seen,
        });
    };
    let first = &outcome.first;
    let class = first.target.class;
    if interrupted.is_empty() {
        checked.insert(Property::Result);
        match (first.exit.success(), class) {
            (true, TargetClass::New) => {}
            (true, class) => finding(
                Property::Result,
                format!("the strategy exited 0 but the target is {class}"),
            ),
            (false, TargetClass::Old) => finding(
                Property::Result,
                format!(
                    "did not replace: the strategy failed ({}) and the target is still old",
                    first.exit
                ),
            ),
            (false, class) => finding(
                Property::Result,
                format!(
                    "the strategy failed ({}) and left the target {class}",
                    first.exit
                ),
            ),
        }
    }
    for live in outcome.live.iter().chain(&outcome.live_commands) {
        checked.insert(Property::Live);
        if !live.unharmed() {
            finding(Property::Live, live.describe());
        }
    }
    if !outcome.probes.is_empty() {
        checked.insert(Property::Visible);
        for probe in outcome.probes.iter().filter(|p| !p.ok) {
            finding(
                Property::Visible,
                format!("at {} a user saw {}", probe.point, probe.seen),
            );
        }
    }
    // After any interruption the target must be complete old or new.
    for (property, after) in [
        (Property::Kill, "after the kill the target"),
        (Property::Power, "after the power cut the durable target"),
        (Property::Errors, "after the error the target"),
    ] {
        if interrupted.contains(&property) {
            checked.insert(property);
            if !class.is_complete() {
                finding(property, format!("{after} is {class}"));
            }
        }
    }
    // And after an error, exit 0 is truthful only if the target is new.
    if interrupted.contains(&Property::Errors) && class == TargetClass::Old && first.exit.success()
    {
        finding(
            Property::Errors,
            format!("the strategy exited 0 after the error, but the target is {class}"),
        );
    }
    if let Some(retry) = &outcome.retry {
        checked.insert(Property::Retry);
        if !(retry.exit.success() && retry.target.class == TargetClass::New) {
            let why = if retry.stderr.is_empty() {
                String::new()
            } else {
                format!(": {}", retry.stderr.lines().last().unwrap_or_default())
            };
            finding(
                Property::Retry,
                format!(
                    "the retry {} and left the target {}{why}",
                    retry.exit, retry.target.class
                ),
            );
        }
    }
    // Meta and tidy judge the run that ended with success.
    let done = match &outcome.retry {
        Some(retry) => retry,
        None => first,
    };
    if done.exit.success() && done.target.class == TargetClass::New {
        checked.insert(Property::Meta);
        let want_mode = prepared.scenario.mode;
        let before_owner = outcome.before.owner;
        let target = &done.target;
        if target.mode != Some(want_mode) {
            finding(
                Property::Meta,
                format!(
                    "mode is {:04o}, was {want_mode:04o}",
                    target.mode.unwrap_or(0)
                ),
            );
        }
        if target.owner != before_owner {
            finding(
                Property::Meta,
                format!("owner is {:?}, was {:?}", target.owner, before_owner),
            );
        }
        let want: BTreeMap<String, String> = prepared.scenario.xattrs.clone();
        let lost: Vec<&String> = want
            .iter()
            .filter(|(k, v)| target.xattrs.get(*k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        if !lost.is_empty() {
            finding(Property::Meta, format!("xattrs lost or changed: {lost:?}"));
        }
        checked.insert(Property::Tidy);
        if !done.strays.is_empty() {
            finding(
                Property::Tidy,
                format!("stray files left: {}", done.strays.join(", ")),
            );
        }
    }
    outcome.checked = checked.into_iter().collect();
    outcome.findings = findings;
}
