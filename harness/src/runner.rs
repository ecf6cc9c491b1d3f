//! One run: mount, stage, start live processes, run the strategy under a
//! fault plan, probe at stalled ops, observe, retry, and clean up. A
//! `Stage` (the mount and what runs on it) can serve run after run: the
//! explorer resets it between crash points instead of mounting anew.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fault_fs::tree::{NewNode, NodeKind, ROOT_INO};
use fault_fs::{
    CrashPoint, Fault, FaultFs, FaultFsHandle, FaultMount, FaultPlan, MountError, OpKind, OpName,
    OpRecord, Phase, PlanError, Rule, Scope, Tree,
};
use serde::Serialize;

use crate::canary::{self, CanaryError};
use crate::check::{
    self, classify, classify_by, Evaluation, Observations, OtherName, PlatformKill,
    ProbeObservation, SelfUpdateReport, StrategyRun, TargetClass, TargetState, Wanted,
};
use crate::live::{
    in_uninterruptible_sleep, run_with_timeout, ChildGuard, Exit, LiveCanary, LiveError, LiveReport,
};
use crate::sandbox::{Sandbox, SandboxError};
use crate::scenario::{Platform, ProbeKind, Scenario, TargetKind, Versions};

/// Directory in the mount that holds the target and its siblings.
pub const APP_DIR: &str = "app";
/// Directory in the mount where NEW is staged when `new_inside` is set.
pub const STAGING_DIR: &str = "staging";
/// Directory in the tree that the strategy's TMPDIR shows: its downloads and
/// staging are ops of the run like any other, reset with the tree.
pub const TMP_DIR: &str = "tmp";
/// Directory (at the mount's root) of the equal copy of the target that,
/// under the macOS model, the canary runs as its own executable: Linux
/// refuses writes to a running executable (ETXTBSY), macOS does not, so
/// the model lets them through to the target and kills the process that
/// runs it ([`fault_fs::CodeSigning::runs_as`]).
pub const IMAGE_DIR: &str = "image";
/// File (in a run's temp dir) where the self-updating program reports.
const SELF_REPORT: &str = "self-update-report";

/// How long probes may look while an op is held, before it is released.
/// Probes normally finish in milliseconds; one that touches a page the
/// stalled write holds locked waits for the write, as a user would.
const PROBE_HOLD: Duration = Duration::from_millis(500);
/// The hold at a namespace op or a lookup, where probes are expected to wait
/// on the kernel's directory lock (or in-lookup dentry) until it is released.
const PROBE_HOLD_LOCKED: Duration = Duration::from_millis(100);

/// How long a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long every unfinished probe must stay in uninterruptible sleep (on a
/// page or a lock the stalled op holds) before the op is released. Far
/// longer than a probe's own I/O keeps it there.
const PROBE_BLOCKED_FOR: Duration = Duration::from_millis(25);

/// How often the probes are looked at while an op is held, and how often a
/// run that may stall checks for a stalled op.
const POLL: Duration = Duration::from_millis(1);

/// Why a run could not be carried out (as opposed to a finding).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Mounting failed.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// The canary could not be built.
    #[error(transparent)]
    Canary(#[from] CanaryError),
    /// A fault spec does not parse.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Files could not be read or staged.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The live canary could not be started.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// The strategy's sandbox could not be started.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// One of the scenario's live commands could not be started.
    #[error("cannot start live command `{command}`: {source}")]
    LiveCommand {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// One of the scenario's live commands ended before the strategy ran.
    #[error("live command `{command}` ended before the strategy ran ({exit}) (hint: a live command must keep running, e.g. `./canary` or `sleep 60 < $SWAPFAULT_TARGET`)")]
    LiveCommandEnded {
        /// The command.
        command: String,
        /// How it ended.
        exit: Exit,
    },
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

/// A file of a set besides the target: replaced with it, judged with it.
#[derive(Clone, Debug)]
struct Member {
    name: String,
    old: Arc<Vec<u8>>,
    new: Arc<Vec<u8>>,
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
    /// NEW's mtime wherever it is staged: that of the file it came from, so
    /// every run (and every reproduction) offers tools that compare times,
    /// like rsync, the same NEW.
    new_mtime: std::time::SystemTime,
    /// File name of the target inside [`APP_DIR`].
    pub target_name: String,
    sibling: Option<Sibling>,
    /// The set's other files (empty unless the target is a set).
    members: Vec<Member>,
    /// A canary executable outside any mount, used by load probes.
    loader: Option<PathBuf>,
    /// The init each strategy runs under (see [`crate::sandbox`]).
    sandbox_init: PathBuf,
    /// A live canary runs (from [`Prepared::program_rel`]).
    live_canary: bool,
    /// The tree every run starts from, built once: each run clones it
    /// (one `Arc` per inode) instead of copying the bytes again.
    initial: Tree,
    /// Every path of the initial tree, for the tidy check.
    initial_paths: BTreeSet<String>,
}

impl Prepared {
    /// Reads or builds old and new. Checks first that FUSE can be mounted
    /// here, so a machine that cannot run anything says so before any build.
    pub fn new(scenario: Scenario) -> Result<Self, RunError> {
        fault_fs::check_environment()?;
        let mut prepared = Self::read_versions(scenario)?;
        prepared.initial = prepared.build_initial_tree();
        prepared.initial_paths = all_paths(&prepared.initial);
        Ok(prepared)
    }

    fn read_versions(scenario: Scenario) -> Result<Self, RunError> {
        // Where old, new and the sibling come from; then one way to read them.
        let mut members = Vec::new();
        let (target_name, old, new, sibling, loader) = match &scenario.versions {
            Versions::Canary { size, new_size } => {
                let build = match scenario.kind {
                    TargetKind::Set => canary::build_set,
                    TargetKind::Exe | TargetKind::Lib => canary::build,
                };
                let v1 = build(1, *size)?;
                let v2 = build(2, *new_size)?;
                match scenario.kind {
                    TargetKind::Exe => (
                        canary::EXE_NAME.to_owned(),
                        v1.exe.clone(),
                        v2.exe,
                        Some((canary::LIB_NAME, v1.lib)),
                        Some(v1.exe),
                    ),
                    TargetKind::Lib => (
                        canary::LIB_NAME.to_owned(),
                        v1.lib,
                        v2.lib,
                        Some((canary::EXE_NAME, v1.exe.clone())),
                        Some(v1.exe),
                    ),
                    TargetKind::Set => {
                        members.push((canary::LIB_NAME, v1.lib, v2.lib));
                        (
                            canary::EXE_NAME.to_owned(),
                            v1.exe.clone(),
                            v2.exe,
                            None,
                            Some(v1.exe),
                        )
                    }
                }
            }
            Versions::Files { old, new } => (
                old.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "target".into()),
                old.clone(),
                new.clone(),
                None,
                None,
            ),
        };
        let read = |path: &Path| {
            std::fs::read(path)
                .map(Arc::new)
                .map_err(io(format!("cannot read {}", path.display())))
        };
        let new_mtime = std::fs::metadata(&new)
            .and_then(|meta| meta.modified())
            .map_err(io(format!("cannot read {}", new.display())))?;
        Ok(Prepared {
            old: read(&old)?,
            new: read(&new)?,
            new_mtime,
            target_name,
            sibling: match sibling {
                Some((name, path)) => Some(Sibling {
                    name: name.to_owned(),
                    bytes: read(&path)?,
                }),
                None => None,
            },
            members: members
                .into_iter()
                .map(|(name, old, new)| {
                    Ok(Member {
                        name: name.to_owned(),
                        old: read(&old)?,
                        new: read(&new)?,
                    })
                })
                .collect::<Result<_, RunError>>()?,
            loader,
            sandbox_init: canary::build_sandbox_init()?,
            live_canary: scenario.live && matches!(scenario.versions, Versions::Canary { .. }),
            scenario,
            initial: Tree::new(),
            initial_paths: BTreeSet::new(),
        })
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

    /// What the new target must carry besides its bytes.
    pub fn wanted(&self) -> Wanted {
        Wanted {
            mode: self.scenario.mode,
            xattrs: self.scenario.xattrs.clone(),
        }
    }

    /// The target as every run finds it before the strategy starts.
    pub fn initial_target_state(&self) -> TargetState {
        self.target_state(&self.initial, Path::new("/"))
    }

    /// The target in `tree`, mounted at `mount` (see [`target_state`]);
    /// for a set, the whole set ([`check::combine_set`]).
    pub fn target_state(&self, tree: &Tree, mount: &Path) -> TargetState {
        let mount = mount.to_string_lossy();
        let state = target_state(tree, &self.target_rel(), &mount, &self.old, &self.new);
        if self.members.is_empty() {
            return state;
        }
        let classes: Vec<(String, TargetClass)> =
            std::iter::once((self.target_name.clone(), state.class))
                .chain(self.members.iter().map(|member| {
                    let rel = format!("{APP_DIR}/{}", member.name);
                    let class = class_at(tree, &rel, &mount, &member.old, &member.new);
                    (member.name.clone(), class)
                }))
                .collect();
        check::combine_set(state, &classes)
    }

    /// Whether the target is a set of files that must change together.
    pub fn is_set(&self) -> bool {
        !self.members.is_empty()
    }

    /// Whether the canary runs from an equal copy of the target in
    /// [`IMAGE_DIR`]: under the macOS model, where the target is the
    /// canary's executable.
    fn runs_from_image(&self) -> bool {
        self.scenario.platform == Platform::Macos
            && matches!(self.scenario.versions, Versions::Canary { .. })
            && matches!(self.scenario.kind, TargetKind::Exe | TargetKind::Set)
    }

    /// The canary executable a user starts (relative to the mount): the
    /// target, or its library's executable; under the macOS model the copy
    /// that stands for the target.
    fn program_rel(&self) -> String {
        if self.runs_from_image() {
            format!("{IMAGE_DIR}/{}", canary::EXE_NAME)
        } else {
            format!("{APP_DIR}/{}", canary::EXE_NAME)
        }
    }

    /// The macOS code-signing model over the initial tree: the canary's
    /// executable loads its library, and its copy runs as the target.
    fn code_signing(&self) -> Option<fault_fs::CodeSigning> {
        if self.scenario.platform != Platform::Macos {
            return None;
        }
        let tree = &self.initial;
        let ino = |rel: &str| tree.resolve_following(rel, "/").ok().map(|(ino, _)| ino);
        let mut model = fault_fs::CodeSigning::new();
        let exe = ino(&format!("{APP_DIR}/{}", canary::EXE_NAME));
        let lib = ino(&format!("{APP_DIR}/{}", canary::LIB_NAME));
        if let (Some(exe), Some(lib)) = (exe, lib) {
            model = model.loads(exe, vec![lib]);
            if let Some(image) = ino(&self.program_rel()).filter(|_| self.runs_from_image()) {
                model = model.loads(image, vec![lib]).runs_as(image, exe);
            }
        }
        Some(model)
    }

    /// The files NEW is made of, by the names they are staged under: NEW
    /// itself, then the set's other files.
    fn new_files(&self) -> Vec<(String, Arc<Vec<u8>>)> {
        std::iter::once((self.new_name(), self.new.clone()))
            .chain(
                self.members
                    .iter()
                    .map(|member| (member.name.clone(), member.new.clone())),
            )
            .collect()
    }

    /// What the target is, for a report's title: `library target
    /// app/libcanary.so`, with the file a symlinked one points to.
    pub fn describe_target(&self) -> String {
        match self.scenario.kind {
            TargetKind::Set => {
                let names: Vec<&str> = std::iter::once(self.target_name.as_str())
                    .chain(self.members.iter().map(|m| m.name.as_str()))
                    .collect();
                format!("set target {APP_DIR}/{{{}}}", names.join(","))
            }
            TargetKind::Exe | TargetKind::Lib => {
                let kind = match self.scenario.kind {
                    TargetKind::Exe => "executable",
                    _ => "library",
                };
                let link = if self.scenario.symlink {
                    format!(" -> {}", self.old_name())
                } else {
                    String::new()
                };
                format!("{kind} target {}{link}", self.target_rel())
            }
        }
    }

    /// File name of the old target's bytes in [`APP_DIR`]: the target's
    /// own, or the versioned file a symlinked target points to.
    pub fn old_name(&self) -> String {
        self.versioned(1)
    }

    /// File name NEW is staged under: the target's, or the next version's
    /// for a symlinked target.
    pub fn new_name(&self) -> String {
        self.versioned(2)
    }

    fn versioned(&self, version: u32) -> String {
        if self.scenario.symlink {
            format!("{}.{version}", self.target_name)
        } else {
            self.target_name.clone()
        }
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
            &self.old_name(),
            &self.old,
            self.scenario.mode,
        ) {
            for (name, value) in &self.scenario.xattrs {
                let _ = tree.setxattr(ino, name.as_ref(), value.as_bytes(), 0);
            }
            for link in &self.scenario.links {
                let mut parts: Vec<&str> = link.split('/').filter(|p| !p.is_empty()).collect();
                let Some(name) = parts.pop() else { continue };
                let dir = parts.iter().fold(ROOT_INO, |dir, part| {
                    tree.lookup(dir, part.as_ref())
                        .or_else(|_| tree.mkdir(dir, part.as_ref(), root))
                        .unwrap_or(dir)
                });
                let _ = tree.link(ino, dir, name.as_ref());
            }
        }
        if self.scenario.symlink {
            let versioned = self.old_name();
            let _ = tree.symlink(app, self.target_name.as_ref(), versioned.as_ref(), root);
        }
        if let Some(sibling) = &self.sibling {
            file(&mut tree, app, &sibling.name, &sibling.bytes, 0o755);
        }
        for member in &self.members {
            file(&mut tree, app, &member.name, &member.old, 0o755);
        }
        if self.runs_from_image() {
            let image = tree
                .mkdir(ROOT_INO, IMAGE_DIR.as_ref(), root)
                .unwrap_or(ROOT_INO);
            file(&mut tree, image, canary::EXE_NAME, &self.old, 0o755);
            // The copy finds its library where its rpath ($ORIGIN) looks:
            // the target's own, through a link.
            let lib = format!("../{APP_DIR}/{}", canary::LIB_NAME);
            let _ = tree.symlink(image, canary::LIB_NAME.as_ref(), lib.as_ref(), root);
        }
        // Sticky and open to all, as /tmp is.
        let _ = tree.mkdir(
            ROOT_INO,
            TMP_DIR.as_ref(),
            NewNode {
                perm: 0o1777,
                ..root
            },
        );
        if self.scenario.new_inside {
            let staging = tree
                .mkdir(ROOT_INO, STAGING_DIR.as_ref(), root)
                .unwrap_or(ROOT_INO);
            for (name, bytes) in self.new_files() {
                if let Some(ino) = file(&mut tree, staging, &name, &bytes, 0o755) {
                    let _ = tree.set_times(ino, Some(self.new_mtime), Some(self.new_mtime));
                }
            }
        }
        tree
    }
}

/// Reads the target's state straight from the tree (no FUSE request, so the
/// trace is not disturbed), following symlinks as a path walk in the mount
/// at `mount` would (see [`Tree::resolve_following`]): a dangling, looping
/// or outward link leaves no target, so it is `missing`.
pub fn target_state(tree: &Tree, rel: &str, mount: &str, old: &[u8], new: &[u8]) -> TargetState {
    let Ok((ino, resolved)) = tree.resolve_following(rel, mount) else {
        return TargetState::missing();
    };
    let node = tree.get(ino).ok();
    let content = match node.map(|n| &n.kind) {
        Some(NodeKind::File(content)) => Some(content),
        _ => None,
    };
    let class = class_of(content, old, new);
    let mix = content
        .filter(|_| class == TargetClass::Torn)
        .map(|content| check::describe_mix(&content.to_vec(), old, new));
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
        mix,
        resolved: (resolved.trim_start_matches('/') != rel.trim_start_matches('/'))
            .then_some(resolved),
    }
}

/// The class of what `content` holds; not a regular file is torn.
fn class_of(content: Option<&fault_fs::tree::Content>, old: &[u8], new: &[u8]) -> TargetClass {
    content.map_or(TargetClass::Torn, |content| {
        classify_by(content.len(), |v| content.is_prefix_of(v), old, new)
    })
}

/// Only the class of the file at `rel` (links followed, see
/// [`target_state`]): for the other files of a set and other names of the
/// target, whose metadata and mix no one reads.
fn class_at(tree: &Tree, rel: &str, mount: &str, old: &[u8], new: &[u8]) -> TargetClass {
    match tree.resolve_following(rel, mount) {
        Ok((ino, _)) => class_of(tree.content(ino).ok(), old, new),
        Err(_) => TargetClass::Missing,
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

/// Everything one run observed, and what the evaluation made of it.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutcome {
    /// The fault rules in force, empty if none.
    pub faults: Vec<Rule>,
    /// What the run observed: the evaluation's only input.
    pub observed: Observations,
    /// The strategy's ops (its process group only), in order.
    pub trace: Vec<OpRecord>,
    /// The ops of each retry, in the order the retries ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retry_traces: Vec<Vec<OpRecord>>,
    /// One verdict per property.
    pub evaluation: Evaluation,
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

/// The faults that fired in `trace`, each at its op's name.
fn fired(trace: &[OpRecord]) -> Vec<CrashPoint> {
    trace
        .iter()
        .zip(OpName::all(trace))
        .filter_map(|(op, name)| {
            let fault = op.fault.as_deref()?.clone();
            Some(CrashPoint::at(name, fault))
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

/// The file in a run's temp dir that its process holds locked while it
/// lives: a run dir whose lock can be taken belongs to a dead run.
const RUN_LOCK: &str = "lock";

/// Locks `dir`'s run lock for as long as the returned guard lives.
fn lock_run_dir(dir: &Path) -> std::io::Result<nix::fcntl::Flock<std::fs::File>> {
    let file = std::fs::File::create(dir.join(RUN_LOCK))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, errno)| std::io::Error::from(errno))
}

/// Removes the temp dirs of runs whose process died (SIGKILL, OOM, a CI
/// timeout): their lock is free. A mount left in one (where the mounts
/// were not private) is detached first.
pub fn remove_stale_run_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(RUN_DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let Ok(lock) = std::fs::File::open(dir.join(RUN_LOCK)) else {
            continue;
        };
        if nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok() {
            tracing::info!(dir = %dir.display(), "removing the temp dir of a dead run");
            let _ = nix::mount::umount2(&dir.join("mnt"), nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// NEW as staged outside the mount, to tell whether a run changed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NewStamp {
    ino: u64,
    len: u64,
    mode: u32,
    mtime: (i64, i64),
}

impl NewStamp {
    fn of(path: &Path) -> Option<NewStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).ok()?;
        Some(NewStamp {
            ino: meta.ino(),
            len: meta.len(),
            mode: meta.mode(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        })
    }
}

/// A mounted, staged place to run a scenario, reusable run after run.
///
/// [`Stage::prepare`] puts the tree back to the scenario's initial state (a
/// snapshot: no bytes copied, no remount; the kernel drops what it cached of
/// every inode that changed) and restarts only the live processes that the
/// last run harmed or ended. Dropping it kills what runs and unmounts.
pub(crate) struct Stage {
    // Field order is drop order: live processes die before the unmount, the
    // unmount happens before the temp dir goes.
    /// The strategy's sandbox, started at the first run.
    sandbox: Option<Sandbox>,
    live: Option<LiveCanary>,
    live_commands: Vec<(String, ChildGuard)>,
    /// The live processes the code-signing model killed since they started.
    signature_kills: Vec<fault_fs::SignatureKill>,
    /// The tree's TMP_DIR as a file system of its own: the strategy's TMPDIR.
    tmp: FaultMount,
    mount: FaultMount,
    new_path: PathBuf,
    /// NEW's files outside the mount as last staged (see
    /// [`Prepared::new_files`]); `None` when NEW is inside.
    new_stamps: Option<Vec<Option<NewStamp>>>,
    /// The temp dir's path (findings replace it with `$RUN`).
    root: PathBuf,
    /// Held while this stage lives: tells the next start the dir is in use.
    _lock: nix::fcntl::Flock<std::fs::File>,
    _dir: tempfile::TempDir,
}

impl Stage {
    /// Mounts fault-fs over the scenario's initial tree and stages NEW.
    /// Live processes start at [`Stage::prepare`].
    pub(crate) fn new(prepared: &Prepared) -> Result<Stage, RunError> {
        let dir = tempfile::Builder::new()
            .prefix(RUN_DIR_PREFIX)
            .tempdir()
            .map_err(io("cannot create a temp dir"))?;
        let lock = lock_run_dir(dir.path()).map_err(io("cannot lock the run's temp dir"))?;
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).map_err(io("cannot create the mount point"))?;
        let outside = if prepared.scenario.new_inside {
            None
        } else {
            let stage = dir.path().join("stage");
            std::fs::create_dir(&stage).map_err(io("cannot create the staging dir"))?;
            Some(stage.join(prepared.new_name()))
        };
        let tmp_dir = dir.path().join(TMP_DIR);
        std::fs::create_dir(&tmp_dir).map_err(io("cannot create the temp mount point"))?;
        let initial = prepared.initial_tree();
        let tmp_ino = initial
            .resolve(TMP_DIR)
            .map_err(|_| io("no temp dir in the tree")(std::io::ErrorKind::NotFound.into()))?;
        let fs = FaultFs::new(initial, FaultPlan::default());
        fs.handle().set_code_signing(prepared.code_signing());
        let tmp = FaultMount::mount(fs.view(tmp_ino), &tmp_dir)?;
        let mount = FaultMount::mount(fs, &mnt)?;
        let new_path = outside
            .clone()
            .unwrap_or_else(|| mount.join(format!("{STAGING_DIR}/{}", prepared.new_name())));
        let mut stage = Stage {
            sandbox: None,
            live: None,
            live_commands: Vec::new(),
            signature_kills: Vec::new(),
            tmp,
            mount,
            new_path,
            new_stamps: None,
            root: dir.path().to_owned(),
            _lock: lock,
            _dir: dir,
        };
        if outside.is_some() {
            stage.stage_new_outside(prepared)?;
        }
        Ok(stage)
    }

    pub(crate) fn handle(&self) -> &FaultFsHandle {
        self.mount.handle()
    }

    /// Readies the stage for a run: live processes that a run harmed or
    /// ended are stopped, the tree is reset to the initial one, NEW is
    /// staged again if a run consumed or changed it, and the scenario's live
    /// processes run (those still unharmed are kept).
    pub(crate) fn prepare(&mut self, prepared: &Prepared) -> Result<(), RunError> {
        if self
            .live
            .as_mut()
            .is_some_and(|live| !live.report().unharmed())
        {
            self.live = None;
        }
        self.live_commands
            .retain_mut(|(_, child)| child.try_exit().is_none());
        self.reset_to(prepared, &prepared.initial)?;
        if let (true, None) = (prepared.live_canary, &self.live) {
            let path = self.mount.join(prepared.program_rel());
            self.live = Some(LiveCanary::start(
                &path,
                None,
                Some(&prepared.sandbox_init),
            )?);
        }
        self.signature_kills.clear();
        if let Some(live) = self.live.as_mut() {
            live.begin_run();
        }
        for command in &prepared.scenario.live_commands {
            if !self.live_commands.iter().any(|(c, _)| c == command) {
                let child = start_live_command(prepared, self, command)?;
                self.live_commands.push((command.clone(), child));
            }
        }
        Ok(())
    }

    /// Readies the stage as a reboot after a power cut would find it: no
    /// live process, and `durable` as the tree.
    pub(crate) fn prepare_after_power_cut(
        &mut self,
        prepared: &Prepared,
        durable: &Tree,
    ) -> Result<(), RunError> {
        self.stop_live();
        self.reset_to(prepared, durable)
    }

    /// Kills the live processes (a power cut: nothing runs after it).
    fn stop_live(&mut self) {
        self.live = None;
        self.live_commands.clear();
    }

    fn reset_to(&mut self, prepared: &Prepared, tree: &Tree) -> Result<(), RunError> {
        self.handle().reset(tree);
        if self.new_stamps.is_some() {
            self.stage_new_outside(prepared)?;
        }
        Ok(())
    }

    /// The directory NEW is staged in: `SWAPFAULT_NEW_DIR`.
    fn new_dir(&self) -> &Path {
        self.new_path.parent().unwrap_or(Path::new("/"))
    }

    /// Writes NEW's files outside the mount unless they are there as last
    /// written.
    fn stage_new_outside(&mut self, prepared: &Prepared) -> Result<(), RunError> {
        let files = prepared.new_files();
        let stamps = |dir: &Path| -> Vec<Option<NewStamp>> {
            files
                .iter()
                .map(|(name, _)| NewStamp::of(&dir.join(name)))
                .collect()
        };
        if self.new_stamps.as_ref() == Some(&stamps(self.new_dir())) {
            return Ok(());
        }
        for (name, bytes) in &files {
            let path = self.new_dir().join(name);
            // A strategy may have left a directory or a link there.
            let _ = std::fs::remove_file(&path);
            write_new(&path, bytes, prepared.new_mtime)?;
        }
        self.new_stamps = Some(stamps(self.new_dir()));
        Ok(())
    }
}

/// One run of the strategy as the runner saw it, before the target is read.
struct Ran {
    exit: Exit,
    stderr: String,
    probes: Vec<ProbeObservation>,
    /// The fault-fs scope its ops were recorded under.
    scope: u32,
    /// Processes it started that outlived it.
    left_running: Vec<String>,
    /// What the self-updating program reported, if the strategy is one.
    self_update: Option<SelfUpdateReport>,
    /// The platform model killed the strategy.
    killed_by_platform: Option<PlatformKill>,
}

/// Runs the strategy once in its sandbox (a PID namespace of its own, so
/// its whole process tree is in scope), with probes at every stalled op.
fn run_strategy(
    prepared: &Prepared,
    stage: &mut Stage,
    probes: &[ProbeKind],
) -> Result<Ran, RunError> {
    let mut sandbox = match stage.sandbox.take() {
        Some(sandbox) if sandbox.is_ours() => sandbox,
        _ => Sandbox::start(&prepared.sandbox_init)?,
    };
    let ran = run_in(prepared, stage, &mut sandbox, probes)?;
    // A sandbox whose run failed is not trusted again: it is dropped (its
    // namespace killed) with the error.
    stage.sandbox = Some(sandbox);
    Ok(ran)
}

/// [`run_strategy`] in `sandbox`.
fn run_in(
    prepared: &Prepared,
    stage: &Stage,
    sandbox: &mut Sandbox,
    probes: &[ProbeKind],
) -> Result<Ran, RunError> {
    let scenario = &prepared.scenario;
    let handle = stage.handle();
    let target = stage.mount.join(prepared.target_rel());
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(&scenario.command)
        .current_dir(&scenario.workdir)
        .env("SWAPFAULT_TARGET", &target)
        .env("SWAPFAULT_NEW", &stage.new_path)
        .env("TMPDIR", stage.tmp.path());
    if prepared.is_set() {
        command
            .env("SWAPFAULT_TARGET_DIR", stage.mount.join(APP_DIR))
            .env("SWAPFAULT_NEW_DIR", stage.new_dir());
    }
    if let Versions::Canary { .. } = scenario.versions {
        // The program a user starts, and the executable it takes for its
        // own (what /proc/self/exe would name, were it not run from a copy).
        command
            .env("SWAPFAULT_SELF", stage.mount.join(prepared.program_rel()))
            .env(
                "CANARY_SELF",
                stage.mount.join(format!("{APP_DIR}/{}", canary::EXE_NAME)),
            )
            .env("CANARY_REPORT", stage.root.join(SELF_REPORT));
    }
    let (stderr_read, stderr_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|err| {
            io("cannot make a pipe for the strategy's stderr")(std::io::Error::from(err))
        })?;
    // The scope is the sandbox's namespace before the command starts in
    // it, so none of its ops escapes the plan.
    let scope = handle.set_scope(Scope::PidNamespace {
        ns: sandbox.ns,
        init: sandbox.init,
    });
    sandbox.run(&command, stderr_write)?;
    let stderr = read_tail(std::fs::File::from(stderr_read));
    let deadline = Instant::now() + scenario.timeout;
    let mut observations = Vec::new();
    let ending = loop {
        if let Some(ending) = sandbox.wait_for_ending(Duration::ZERO) {
            break Some(ending);
        }
        let now = Instant::now();
        if now >= deadline {
            break None;
        }
        if probes.is_empty() {
            // Nothing to probe, so no stall to watch for: wait for the end.
            if let Some(ending) = sandbox.wait_for_ending(deadline - now) {
                break Some(ending);
            }
            continue;
        }
        if let Some(stalled) = handle.wait_for_stall(Duration::ZERO) {
            let trace = scope_trace(&handle.trace(), scope);
            let name = trace
                .iter()
                .zip(OpName::all(&trace))
                .find(|(op, _)| op.seq == stalled.seq)
                .map(|(_, name)| name);
            let fault = stalled.fault.as_deref().cloned();
            if let (Some(name), Some(fault)) = (name, fault) {
                let at = CrashPoint::at(name, fault);
                observations.extend(probe_stalled(
                    prepared,
                    handle,
                    stage.mount.path(),
                    probes,
                    &stalled,
                    &at,
                ));
            } else {
                handle.release_stalls();
            }
            continue;
        }
        if let Some(ending) = sandbox.wait_for_ending(POLL.min(deadline - now)) {
            break Some(ending);
        }
    };
    let timed_out = ending.is_none();
    let ending = match ending {
        Some(ending) => ending,
        None => {
            // Stalls are released after the signal: a process killed in a
            // request the daemon holds cannot die until it is answered.
            sandbox.kill();
            handle.release_stalls();
            sandbox.wait_for_ending(SANDBOX_END).ok_or_else(|| {
                SandboxError::Namespace("the sandbox did not end a run it killed".into())
            })?
        }
    };
    if let Some(error) = ending.error {
        return Err(SandboxError::Namespace(error).into());
    }
    let exit = if timed_out {
        Exit::Timeout
    } else {
        // No word from the init: the namespace was killed.
        ending.exit.unwrap_or(Exit::Signal(libc::SIGKILL))
    };
    // The run's temp dir differs every time: name it so findings compare.
    let stderr = stderr
        .join()
        .unwrap_or_default()
        .replace(&*stage.root.to_string_lossy(), "$RUN");
    Ok(Ran {
        exit,
        stderr,
        probes: observations,
        scope,
        left_running: ending.left_running,
        self_update: None,
        killed_by_platform: None,
    })
}

/// How long a sandbox may take to end a run it was told to kill.
const SANDBOX_END: Duration = Duration::from_secs(10);

/// Where a probe runs, to tell a probe blocked on the stalled op from a
/// slow one: its thread, and the process it started, if any (0: none yet).
#[derive(Debug, Default)]
struct ProbeTask {
    thread: AtomicI32,
    child: AtomicI32,
}

impl ProbeTask {
    /// In uninterruptible sleep: its process if it started one, else its
    /// thread (which sleeps so while a spawn waits for the child's exec).
    fn blocked(&self) -> bool {
        match self.child.load(Ordering::Acquire) {
            0 => match self.thread.load(Ordering::Acquire) {
                0 => false,
                tid => in_uninterruptible_sleep(tid),
            },
            pid => in_uninterruptible_sleep(pid),
        }
    }
}

/// Runs the probes while an op is stalled, then releases it.
///
/// At a stalled namespace op (create, rename, unlink) the kernel holds the
/// directory's lock, and at a stalled write the pages it fills: a probe that
/// needs them waits until the op is done, as a user starting the program at
/// that moment would. The op is released once every probe has finished, or
/// every unfinished one has slept uninterruptibly for [`PROBE_BLOCKED_FOR`]
/// (blocked on the op), or at the latest after [`PROBE_HOLD`]
/// ([`PROBE_HOLD_LOCKED`] at a namespace op). Probes that finish only after
/// the release say so.
fn probe_stalled(
    prepared: &Prepared,
    handle: &FaultFsHandle,
    mount: &Path,
    probes: &[ProbeKind],
    stalled: &OpRecord,
    at: &CrashPoint,
) -> Vec<ProbeObservation> {
    // Read from the tree, not through the mount: no op of ours to trace.
    let state = handle.with_tree(|tree| prepared.target_state(tree, mount));
    let (tx, rx) = std::sync::mpsc::channel();
    let tasks: Vec<ProbeTask> = probes.iter().map(|_| ProbeTask::default()).collect();
    let mut seen = Vec::new();
    std::thread::scope(|scope| {
        for (index, (probe, task)) in probes.iter().zip(&tasks).enumerate() {
            let tx = tx.clone();
            scope.spawn(move || {
                task.thread
                    .store(nix::unistd::gettid().as_raw(), Ordering::Release);
                let observation = run_probe(prepared, handle, mount, *probe, stalled, at, task);
                let _ = tx.send((index, observation));
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
        let mut blocked_since: Option<Instant> = None;
        while seen.len() < probes.len() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(POLL.min(deadline - now)) {
                Ok(observation) => {
                    seen.push(observation);
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if blocked_for_long(&tasks, &seen, &mut blocked_since, now) {
                break;
            }
        }
        // Blocked probes see what the op left: the strategy's next op waits
        // until they have looked, unless they wait on it as well (then it
        // goes too, as it would for a user).
        handle.hold_next_op(Some(Instant::now() + PROBE_TIMEOUT));
        handle.release_stalls();
        let mut blocked_since: Option<Instant> = None;
        while seen.len() < probes.len() {
            match rx.recv_timeout(POLL) {
                Ok((index, mut observation)) => {
                    observation.blocked = true;
                    seen.push((index, observation));
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if blocked_for_long(&tasks, &seen, &mut blocked_since, Instant::now()) {
                handle.hold_next_op(None);
                handle.release_stalls();
            }
        }
        handle.hold_next_op(None);
        handle.release_stalls();
    });
    seen.sort_by_key(|(index, _)| *index);
    seen.into_iter()
        .map(|(_, observation)| ProbeObservation {
            target: state.clone(),
            ..observation
        })
        .collect()
}

/// Whether every probe not done yet has slept uninterruptibly (on the op,
/// or on what it holds) for [`PROBE_BLOCKED_FOR`]; `since` keeps when they
/// all started to.
fn blocked_for_long(
    tasks: &[ProbeTask],
    seen: &[(usize, ProbeObservation)],
    since: &mut Option<Instant>,
    now: Instant,
) -> bool {
    let all_blocked = tasks
        .iter()
        .enumerate()
        .filter(|(index, _)| !seen.iter().any(|(done, _)| done == index))
        .all(|(_, task)| task.blocked());
    if !all_blocked {
        *since = None;
        return false;
    }
    now - *since.get_or_insert(now) >= PROBE_BLOCKED_FOR
}

/// Reads a stream to its end on a thread of its own; keeps its last lines.
fn read_tail(mut stderr: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        // Keep the tail: the last lines say why it stopped.
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    })
}

/// The ops recorded under one scope (one run of the strategy).
pub fn scope_trace(trace: &[OpRecord], scope: u32) -> Vec<OpRecord> {
    trace
        .iter()
        .filter(|op| op.scope == scope)
        .cloned()
        .collect()
}

/// Runs one probe at the target of the mount at `mount`.
fn run_probe(
    prepared: &Prepared,
    handle: &FaultFsHandle,
    mount: &Path,
    probe: ProbeKind,
    stalled: &OpRecord,
    at: &CrashPoint,
    task: &ProbeTask,
) -> ProbeObservation {
    let target = mount.join(prepared.target_rel());
    let (seen, ok) = match probe {
        // The reader itself is the probe's process, so a read blocked on
        // the stalled op shows as blocked (a shell around it would not).
        ProbeKind::Read => {
            let mut command = Command::new(&prepared.sandbox_init);
            command.arg("--read").arg(&target);
            match run_with_timeout(command, PROBE_TIMEOUT, &task.child) {
                Ok((exit, bytes)) if exit.success() => {
                    let class = classify(Some(&bytes), &prepared.old, &prepared.new);
                    (format!("read: {class}"), class.is_complete())
                }
                // The op is held: the tree is as the reader found it.
                Ok(_)
                    if handle.with_tree(|tree| {
                        let mount = mount.to_string_lossy();
                        tree.resolve_following(&prepared.target_rel(), &mount)
                            .is_err()
                    }) =>
                {
                    ("read: missing".to_owned(), false)
                }
                Ok((exit, _)) => (format!("read: failed ({exit})"), false),
                Err(err) => (format!("read: could not start the reader: {err}"), false),
            }
        }
        ProbeKind::Exec => {
            let mut command =
                crate::live::exec_through(&prepared.sandbox_init, Path::new("/"), &target);
            command.arg("--once");
            match version_probe("exec", command, task, prepared.is_set()) {
                Ok(seen) => seen,
                // Linux refuses to execute a file open for writing; macOS
                // runs what the file holds, so under its model that is seen.
                Err(err)
                    if err.raw_os_error() == Some(libc::ETXTBSY)
                        && prepared.scenario.platform == Platform::Macos =>
                {
                    let class = handle.with_tree(|tree| prepared.target_state(tree, mount).class);
                    (
                        format!("exec: would run a file that is {class} (macOS runs a file open for writing, where Linux says ETXTBSY)"),
                        class.is_complete(),
                    )
                }
                Err(err) => (format!("exec: could not start: {err}"), false),
            }
        }
        ProbeKind::Load => match &prepared.loader {
            Some(loader) => {
                let mut command = Command::new(loader);
                command.arg("--load").arg(&target);
                version_probe("load", command, task, false)
                    .unwrap_or_else(|err| (format!("load: could not start: {err}"), false))
            }
            None => ("load: no canary loader for user files".to_owned(), true),
        },
    };
    ProbeObservation {
        at: at.clone(),
        op: stalled.to_string(),
        probe,
        seen,
        ok,
        blocked: false,
        // Set by the caller, once for all the probes of a stall.
        target: TargetState::missing(),
    }
}

/// Runs the canary with `--once` or `--load` and says what ran: the
/// library version, or for a set both versions, and whether the set's
/// executable refused a library of another version; an error when it
/// could not start.
fn version_probe(
    name: &str,
    command: Command,
    task: &ProbeTask,
    set: bool,
) -> std::io::Result<(String, bool)> {
    let (exit, out) = run_with_timeout(command, PROBE_TIMEOUT, &task.child)?;
    let out = String::from_utf8_lossy(&out);
    let words: Vec<&str> = out.split_whitespace().collect();
    let known = |version: &str| version == "1" || version == "2";
    Ok(match (exit.success(), words.as_slice()) {
        (true, ["version", exe, lib]) if set => (
            format!("{name}: ran canary v{exe} with libcanary v{lib}"),
            exe == lib && known(lib),
        ),
        (false, ["version", exe, lib]) if set && exit == Exit::Code(MIXED_VERSIONS) => (
            format!("{name}: canary v{exe} refused to run with libcanary v{lib} (mixed versions)"),
            false,
        ),
        (true, words) => {
            let version = words.last().unwrap_or(&"?");
            (
                format!("{name}: ran, library code v{version}"),
                known(version),
            )
        }
        (false, _) => (format!("{name}: failed ({exit})"), false),
    })
}

/// The exit code of a set's canary that found a library of another version.
const MIXED_VERSIONS: i32 = 4;

/// The target and the stray paths (outside the staging directory, not in
/// the initial tree), read straight from the tree.
fn observe(prepared: &Prepared, stage: &Stage) -> Observed {
    stage.handle().with_tree(|tree| {
        let state = prepared.target_state(tree, stage.mount.path());
        let mount = stage.mount.path().to_string_lossy();
        let other_names = prepared
            .scenario
            .links
            .iter()
            .map(|link| OtherName {
                path: format!("/{}", link.trim_start_matches('/')),
                class: class_at(tree, link, &mount, &prepared.old, &prepared.new),
            })
            .collect();
        // Strays are what is left next to the target: not NEW's staging,
        // nor the temp dir (a real /tmp is emptied at boot), nor the new
        // version a symlinked target now points to.
        let staging = format!("/{STAGING_DIR}/");
        let tmp = format!("/{TMP_DIR}/");
        let strays = all_paths(tree)
            .difference(&prepared.initial_paths)
            .filter(|p| !p.starts_with(&staging) && !p.starts_with(&tmp))
            .filter(|p| state.resolved.as_ref() != Some(*p))
            .cloned()
            .collect();
        Observed {
            target: state,
            strays,
            other_names,
        }
    })
}

/// What [`observe`] read from the tree after a strategy run.
struct Observed {
    target: TargetState,
    strays: Vec<String>,
    other_names: Vec<OtherName>,
}

/// Starts one of the scenario's live commands in the target's directory.
fn start_live_command(
    prepared: &Prepared,
    stage: &Stage,
    command: &str,
) -> Result<ChildGuard, RunError> {
    let mut child = crate::live::exec_through(
        &prepared.sandbox_init,
        &stage.mount.join(APP_DIR),
        Path::new("sh"),
    );
    child
        .arg("-c")
        .arg(command)
        .env("SWAPFAULT_TARGET", stage.mount.join(prepared.target_rel()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = ChildGuard::spawn(child).map_err(|source| RunError::LiveCommand {
        command: command.to_owned(),
        source,
    })?;
    // A live process must be running when the strategy starts.
    std::thread::sleep(Duration::from_millis(50));
    if let Some(exit) = child.try_exit() {
        return Err(RunError::LiveCommandEnded {
            command: command.to_owned(),
            exit,
        });
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

/// Puts NEW back if the interrupted run consumed or changed it (mv
/// consumes it), as an updater's retry would download it again.
fn restage_new(prepared: &Prepared, stage: &mut Stage) -> Result<(), RunError> {
    if !prepared.scenario.new_inside {
        return stage.stage_new_outside(prepared);
    }
    // Asked of the tree, not the mount: this process never waits on it.
    stage.handle().with_tree(|tree| {
        let node = NewNode {
            perm: 0o755,
            uid: 0,
            gid: 0,
        };
        for (name, bytes) in prepared.new_files() {
            if tree.resolve(&format!("{STAGING_DIR}/{name}")).is_ok() {
                continue;
            }
            let dir = match tree.resolve(STAGING_DIR) {
                Ok(dir) => dir,
                Err(_) => tree
                    .mkdir(ROOT_INO, STAGING_DIR.as_ref(), node)
                    .unwrap_or(ROOT_INO),
            };
            if let Ok(ino) = tree.create_file(dir, name.as_ref(), node) {
                let _ = tree.write(ino, 0, &bytes);
                let mtime = Some(prepared.new_mtime);
                let _ = tree.set_times(ino, mtime, mtime);
            }
        }
    });
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mtime: std::time::SystemTime) -> Result<(), RunError> {
    use std::os::unix::fs::PermissionsExt;
    let file = std::fs::File::create(path).map_err(io("cannot stage NEW"))?;
    (&file).write_all(bytes).map_err(io("cannot stage NEW"))?;
    let times = std::fs::FileTimes::new()
        .set_accessed(mtime)
        .set_modified(mtime);
    file.set_times(times).map_err(io("cannot stage NEW"))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(io("cannot stage NEW"))
}

/// Runs `prepared` once with `faults` in force, on a mount of its own.
pub fn run(
    prepared: &Prepared,
    faults: &[Rule],
    options: &RunOptions,
) -> Result<RunOutcome, RunError> {
    let mut stage = Stage::new(prepared)?;
    stage.prepare(prepared)?;
    run_staged(&mut stage, prepared, faults, options)
}

/// Runs `prepared` once with `faults` in force on a stage readied by
/// [`Stage::prepare`].
pub(crate) fn run_staged(
    stage: &mut Stage,
    prepared: &Prepared,
    faults: &[Rule],
    options: &RunOptions,
) -> Result<RunOutcome, RunError> {
    let _span = tracing::info_span!("run", scenario = %prepared.scenario.name).entered();
    let (ran, trace, fired) = run_phase(stage, prepared, faults, 0)?;
    let live_at_cut = power_off(stage, &fired);
    let Observed {
        target,
        strays,
        other_names,
    } = observe(prepared, stage);
    let observed = Observations {
        fired,
        before: prepared.initial_target_state(),
        first: StrategyRun {
            exit: ran.exit,
            stderr: ran.stderr,
            target,
            strays,
            left_running: ran.left_running,
            other_names,
            self_update: ran.self_update,
            killed_by_platform: ran.killed_by_platform,
        },
        retries: Vec::new(),
        live: Vec::new(),
        probes: ran.probes,
        single_uid: crate::sandbox::single_uid(),
    };
    complete(
        stage,
        prepared,
        faults,
        observed,
        trace,
        live_at_cut,
        options,
    )
}

/// A power cut at `point` (`write#3:power-cut=strict`), computed instead of
/// run: `durable` is what the persistence model left after that op in the
/// recorded run, `trace` the recorded ops up to it. The stage is readied as
/// after a reboot (no live process) and the state is checked and retried as
/// after a power cut that fired in a run. Live processes are not observed:
/// the kill after the same op watches them.
pub(crate) fn run_from_power_cut(
    stage: &mut Stage,
    prepared: &Prepared,
    point: &CrashPoint,
    durable: &Tree,
    trace: Vec<OpRecord>,
    options: &RunOptions,
) -> Result<RunOutcome, RunError> {
    let _span =
        tracing::info_span!("power_cut", scenario = %prepared.scenario.name, %point).entered();
    stage.prepare_after_power_cut(prepared, durable)?;
    let Observed {
        target,
        strays,
        other_names,
    } = observe(prepared, stage);
    let observed = Observations {
        fired: vec![point.clone()],
        before: prepared.initial_target_state(),
        first: StrategyRun {
            // The machine went off right after the op.
            exit: Exit::Signal(libc::SIGKILL),
            stderr: String::new(),
            target,
            strays,
            left_running: Vec::new(),
            other_names,
            self_update: None,
            killed_by_platform: None,
        },
        retries: Vec::new(),
        live: Vec::new(),
        probes: Vec::new(),
        single_uid: crate::sandbox::single_uid(),
    };
    let faults = [point.rule()];
    complete(
        stage,
        prepared,
        &faults,
        observed,
        trace,
        Some(Vec::new()),
        options,
    )
}

/// Runs the strategy once with the rules of `phase` in force (probing at
/// its stalls); returns the run, its ops and the faults that fired there.
fn run_phase(
    stage: &mut Stage,
    prepared: &Prepared,
    faults: &[Rule],
    phase: Phase,
) -> Result<(Ran, Vec<OpRecord>, Vec<CrashPoint>), RunError> {
    let handle = stage.handle().clone();
    let rules: Vec<Rule> = faults
        .iter()
        .filter(|r| r.phase == phase)
        .cloned()
        .collect();
    let has_stall = rules.iter().any(|r| matches!(r.fault, Fault::Stall(_)));
    handle.set_plan(FaultPlan { rules });
    let probes = if !has_stall {
        Vec::new()
    } else if prepared.scenario.probes.is_empty() {
        default_probes(prepared)
    } else {
        prepared.scenario.probes.clone()
    };
    let report = stage.root.join(SELF_REPORT);
    if prepared.scenario.self_update.is_some() {
        std::fs::write(&report, "").map_err(io("cannot write the self-update report"))?;
    }
    let mut ran = run_strategy(prepared, stage, &probes)?;
    handle.set_plan(FaultPlan::default());
    handle.set_scope(Scope::All);
    let trace = scope_trace(&handle.trace(), ran.scope);
    if prepared.scenario.self_update.is_some() {
        let text = std::fs::read_to_string(&report).unwrap_or_default();
        ran.self_update = Some(SelfUpdateReport::parse(&text));
    }
    // The model's kills: of a live process, kept for its report; else of
    // the strategy, named by the op that changed its code.
    let live_pids: Vec<u32> = stage
        .live
        .as_ref()
        .map(LiveCanary::pid)
        .into_iter()
        .chain(stage.live_commands.iter().map(|(_, child)| child.pid()))
        .collect();
    for kill in handle.take_signature_kills() {
        if live_pids.contains(&kill.pid) {
            stage.signature_kills.push(kill);
            continue;
        }
        let op = trace
            .iter()
            .zip(OpName::all(&trace))
            .find(|(op, _)| op.seq == kill.seq);
        if let (Some((op, name)), None) = (op, &ran.killed_by_platform) {
            let truncates = if op.truncates() { " O_TRUNC" } else { "" };
            ran.killed_by_platform = Some(PlatformKill {
                op: name.to_string(),
                what: format!("{} {}{truncates}", op.kind, op.path),
                reason: kill.reason(),
            });
        }
    }
    if let Some(live) = stage.live.as_mut() {
        live.settle(Duration::from_secs(2));
    }
    for probe in &mut ran.probes {
        probe.at.phase = phase;
    }
    let fired = fired(&trace)
        .into_iter()
        .map(|point| point.in_phase(phase))
        .collect();
    Ok((ran, trace, fired))
}

/// Cuts the power if a fault of the run just ended (`fired`) asked for it:
/// the disk keeps only what the persistence model made durable. Returns
/// what the live processes had reported until then.
fn power_off(stage: &mut Stage, fired: &[CrashPoint]) -> Option<Vec<LiveReport>> {
    let handle = stage.handle().clone();
    // A failed sync the run went on past: the power goes once it has ended.
    let cut_at_end = fired.iter().find_map(|point| match point.fault {
        Fault::ErrnoThenCut(_, cut) => Some(handle.durable_state(cut)),
        _ => None,
    });
    let durable = handle.take_power_cut().map(|cut| cut.tree).or(cut_at_end)?;
    // A reboot: running programs are gone and the disk holds only what
    // the model made durable. What live processes saw before still counts.
    let reports = live_reports(stage);
    stage.stop_live();
    handle.restore(&durable);
    Some(reports)
}

/// The reports of the live canary (first) and the scenario's live commands.
fn live_reports(stage: &mut Stage) -> Vec<LiveReport> {
    let canary = stage.live.as_mut().map(|live| live.report());
    let mut reports: Vec<LiveReport> = canary.into_iter().chain(command_reports(stage)).collect();
    for report in &mut reports {
        report.killed_why = stage
            .signature_kills
            .iter()
            .find(|kill| kill.pid == report.pid)
            .map(fault_fs::SignatureKill::reason);
    }
    reports
}

/// Finishes a run whose first strategy run is observed: the retries after
/// interruptions (each with the faults of its phase: a retry interrupted
/// in turn is retried again), the live processes' reports (`live_at_cut`
/// when a power cut ended them), and the verdicts.
fn complete(
    stage: &mut Stage,
    prepared: &Prepared,
    faults: &[Rule],
    mut observed: Observations,
    trace: Vec<OpRecord>,
    mut live_at_cut: Option<Vec<LiveReport>>,
    options: &RunOptions,
) -> Result<RunOutcome, RunError> {
    let mut retry_traces = Vec::new();
    let mut phase: Phase = 0;
    // A retry with no fault of its phase is not interrupted: the chain ends.
    // A run the platform's model killed is retried too, as a user would.
    while options.retry
        && (observed
            .fired
            .iter()
            .any(|point| point.phase == phase && check::interrupts(&point.fault).is_some())
            || observed
                .run_of(phase)
                .is_some_and(|run| run.killed_by_platform.is_some()))
    {
        phase += 1;
        restage_new(prepared, stage)?;
        let (ran, trace, fired) = run_phase(stage, prepared, faults, phase)?;
        if let Some(reports) = power_off(stage, &fired) {
            live_at_cut.get_or_insert(reports);
        }
        let Observed {
            target,
            strays,
            other_names,
        } = observe(prepared, stage);
        observed.fired.extend(fired);
        observed.probes.extend(ran.probes);
        observed.retries.push(StrategyRun {
            exit: ran.exit,
            stderr: ran.stderr,
            target,
            strays,
            left_running: ran.left_running,
            other_names,
            self_update: ran.self_update,
            killed_by_platform: ran.killed_by_platform,
        });
        retry_traces.push(trace);
    }
    observed.live = match live_at_cut {
        Some(reports) => reports,
        None => live_reports(stage),
    };
    let evaluation = check::evaluate(&observed, &prepared.wanted());
    Ok(RunOutcome {
        faults: faults.to_vec(),
        observed,
        trace,
        retry_traces,
        evaluation,
    })
}

fn default_probes(prepared: &Prepared) -> Vec<ProbeKind> {
    match (&prepared.scenario.versions, prepared.scenario.kind) {
        (Versions::Canary { .. }, TargetKind::Exe | TargetKind::Set) => {
            vec![ProbeKind::Read, ProbeKind::Exec]
        }
        (Versions::Canary { .. }, TargetKind::Lib) => vec![ProbeKind::Read, ProbeKind::Load],
        (Versions::Files { .. }, _) => vec![ProbeKind::Read],
    }
}
