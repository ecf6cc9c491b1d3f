//! The target: its two versions read or built ([`Prepared`]), the tree
//! every run starts from, and what a tree holds at the target's path: its
//! class ([`classify`]), its state, what else a run left next to it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fault_fs::tree::{NewNode, NodeKind, ROOT_INO};
use fault_fs::Tree;

use crate::canary;
use crate::error::{io, RunError};
use crate::observe::{OtherName, TargetClass, TargetState, Wanted};
use crate::scenario::{
    Platform, Scenario, TargetKind, Versions, APP_DIR, IMAGE_DIR, STAGING_DIR, TMP_DIR,
};
use crate::size::size_text;

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
    pub(crate) new_mtime: std::time::SystemTime,
    /// File name of the target inside [`APP_DIR`].
    pub target_name: String,
    sibling: Option<Sibling>,
    /// The set's other files (empty unless the target is a set).
    members: Vec<Member>,
    /// A canary executable outside any mount, used by load probes.
    pub(crate) loader: Option<PathBuf>,
    /// The init each strategy runs under (see [`crate::sandbox`]).
    pub(crate) sandbox_init: PathBuf,
    /// A live canary runs (from [`Prepared::program_rel`]).
    pub(crate) live_canary: bool,
    /// The tree every run starts from, built once: each run clones it
    /// (one `Arc` per inode) instead of copying the bytes again.
    pub(crate) initial: Tree,
    /// Every path of the initial tree, for the tidy check.
    pub(crate) initial_paths: BTreeSet<String>,
    /// The target in the initial tree, classified once: every run starts
    /// from it, and at 64 MiB a classification is a 64 MiB comparison.
    initial_state: TargetState,
}

impl Prepared {
    /// Reads or builds old and new. Checks first that FUSE can be mounted
    /// here, so a machine that cannot run anything says so before any build.
    pub fn new(scenario: Scenario) -> Result<Self, RunError> {
        fault_fs::check_environment()?;
        let (uid, gid) = scenario.target.owner;
        if (uid, gid) != (0, 0) && crate::sandbox::single_uid() {
            return Err(RunError::OwnerRootless { uid, gid });
        }
        let mut prepared = Self::read_versions(scenario)?;
        prepared.initial = prepared.build_initial_tree();
        prepared.initial_paths = all_paths(&prepared.initial);
        prepared.initial_state = prepared.target_state(&prepared.initial, Path::new("/"));
        Ok(prepared)
    }

    fn read_versions(scenario: Scenario) -> Result<Self, RunError> {
        // Where old, new and the sibling come from; then one way to read them.
        let mut members = Vec::new();
        let (target_name, old, new, sibling, loader) = match &scenario.target.versions {
            Versions::Canary { size, new_size } => {
                let build = match scenario.target.kind {
                    TargetKind::Set => canary::build_set,
                    TargetKind::Exe | TargetKind::Lib => canary::build,
                };
                let v1 = build(1, *size)?;
                let v2 = build(2, *new_size)?;
                match scenario.target.kind {
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
        let (old_bytes, new_bytes) = (read(&old)?, read(&new)?);
        if old_bytes == new_bytes {
            return Err(RunError::SameVersions {
                old: old.display().to_string(),
                new: new.display().to_string(),
            });
        }
        Ok(Prepared {
            old: old_bytes,
            new: new_bytes,
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
            live_canary: scenario.live
                && matches!(scenario.target.versions, Versions::Canary { .. }),
            scenario,
            initial: Tree::new(),
            initial_paths: BTreeSet::new(),
            initial_state: TargetState::missing(),
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
            mode: self.scenario.target.mode,
            xattrs: self.scenario.target.xattrs.clone(),
        }
    }

    /// The target as every run finds it before the strategy starts.
    pub fn initial_target_state(&self) -> TargetState {
        self.initial_state.clone()
    }

    /// The target in `tree`, mounted at `mount` (see [`target_state`]);
    /// for a set, the whole set ([`combine_set`]).
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
        combine_set(state, &classes)
    }

    /// Whether the target is a set of files that must change together.
    pub fn is_set(&self) -> bool {
        !self.members.is_empty()
    }

    /// Whether the canary runs from an equal copy of the target in
    /// [`IMAGE_DIR`]: under the macOS model, where the target is the
    /// canary's executable.
    pub(crate) fn runs_from_image(&self) -> bool {
        self.scenario.platform == Platform::Macos
            && matches!(self.scenario.target.versions, Versions::Canary { .. })
            && matches!(self.scenario.target.kind, TargetKind::Exe | TargetKind::Set)
    }

    /// The canary executable a user starts (relative to the mount): the
    /// target, or its library's executable; under the macOS model the copy
    /// that stands for the target.
    pub(crate) fn program_rel(&self) -> String {
        if self.runs_from_image() {
            format!("{IMAGE_DIR}/{}", canary::EXE_NAME)
        } else {
            format!("{APP_DIR}/{}", canary::EXE_NAME)
        }
    }

    /// The macOS code-signing model over the initial tree: the canary's
    /// executable loads its library, and its copy runs as the target.
    pub(crate) fn code_signing(&self) -> Option<fault_fs::CodeSigning> {
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
    pub(crate) fn new_files(&self) -> Vec<(String, Arc<Vec<u8>>)> {
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
        match self.scenario.target.kind {
            TargetKind::Set => {
                let names: Vec<&str> = std::iter::once(self.target_name.as_str())
                    .chain(self.members.iter().map(|m| m.name.as_str()))
                    .collect();
                format!("set target {APP_DIR}/{{{}}}", names.join(","))
            }
            TargetKind::Exe | TargetKind::Lib => {
                let kind = match self.scenario.target.kind {
                    TargetKind::Exe => "executable",
                    _ => "library",
                };
                let link = if self.scenario.target.symlink {
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
        if self.scenario.target.symlink {
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
            self.scenario.target.mode,
        ) {
            let (uid, gid) = self.scenario.target.owner;
            let _ = tree.chown(ino, Some(uid), Some(gid));
            for (name, value) in &self.scenario.target.xattrs {
                let _ = tree.setxattr(ino, name.as_ref(), value.as_bytes(), 0);
            }
            for link in &self.scenario.target.links {
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
        if self.scenario.target.symlink {
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
        if self.scenario.target.new_inside {
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
        .map(|content| describe_mix(&content.to_vec(), old, new));
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

impl Prepared {
    /// The target and the stray paths (outside the staging directory, not in
    /// the initial tree), read straight from the tree.
    pub(crate) fn observe(&self, tree: &Tree, mount: &Path) -> Observed {
        let state = self.target_state(tree, mount);
        let mount = mount.to_string_lossy();
        let other_names = self
            .scenario
            .target
            .links
            .iter()
            .map(|link| OtherName {
                path: format!("/{}", link.trim_start_matches('/')),
                class: class_at(tree, link, &mount, &self.old, &self.new),
            })
            .collect();
        // Strays are what is left next to the target: not NEW's staging,
        // nor the temp dir (a real /tmp is emptied at boot), nor the new
        // version a symlinked target now points to.
        let staging = format!("/{STAGING_DIR}/");
        let tmp = format!("/{TMP_DIR}/");
        let strays = all_paths(tree)
            .difference(&self.initial_paths)
            .filter(|p| !p.starts_with(&staging) && !p.starts_with(&tmp))
            .filter(|p| state.resolved.as_ref() != Some(*p))
            .cloned()
            .collect();
        Observed {
            target: state,
            strays,
            other_names,
            damaged: self.damage(tree, &mount),
        }
    }

    /// What the run did to the application's files other than the target:
    /// the program beside it (the sibling: the executable of a library
    /// target, the library of an executable one) must still be there, the
    /// same bytes and mode, and the target's directory still open to
    /// everyone it was open to (a directory made by `mkdtemp` is 0700:
    /// nobody but root could run the program from it).
    fn damage(&self, tree: &Tree, mount: &str) -> Vec<String> {
        let mut damaged = Vec::new();
        if let Some(sibling) = &self.sibling {
            let rel = format!("{APP_DIR}/{}", sibling.name);
            match tree.resolve_following(&rel, mount) {
                Err(_) => damaged.push(format!("{rel}: missing")),
                Ok((ino, _)) => {
                    let node = tree.get(ino).ok();
                    let same = tree.content(ino).is_ok_and(|content| {
                        content.len() == sibling.bytes.len() as u64
                            && content.is_prefix_of(&sibling.bytes)
                    });
                    if !same {
                        damaged.push(format!("{rel}: changed"));
                    } else if let Some(perm) = node.map(|n| n.perm).filter(|p| *p != 0o755) {
                        damaged.push(format!("{rel}: mode {perm:04o}, was 0755"));
                    }
                }
            }
        }
        let was = self
            .initial
            .resolve(APP_DIR)
            .ok()
            .and_then(|ino| self.initial.get(ino).ok())
            .map_or(0o755, |node| node.perm);
        if let Ok((ino, _)) = tree.resolve_following(APP_DIR, mount) {
            let perm = tree.get(ino).map_or(was, |node| node.perm);
            // Read and search for group and others, as they were.
            if perm & was & 0o055 != was & 0o055 {
                damaged.push(format!(
                    "{APP_DIR}/: mode {perm:04o}, was {was:04o} (a user who is not its owner cannot reach the program)"
                ));
            }
        }
        damaged
    }
}

/// What [`Prepared::observe`] read from the tree after a strategy run.
pub(crate) struct Observed {
    /// The target.
    pub(crate) target: TargetState,
    /// Paths that were not there before (outside NEW's staging and the
    /// temp dir).
    pub(crate) strays: Vec<String>,
    /// The old target's other names.
    pub(crate) other_names: Vec<OtherName>,
    /// See [`crate::observe::StrategyRun::damaged`].
    pub(crate) damaged: Vec<String>,
}

/// Classifies target bytes (`None`: no file) against old and new.
pub fn classify(bytes: Option<&[u8]>, old: &[u8], new: &[u8]) -> TargetClass {
    let Some(bytes) = bytes else {
        return TargetClass::Missing;
    };
    classify_by(bytes.len() as u64, |v| v.starts_with(bytes), old, new)
}

/// Classifies a file of `len` bytes against old and new, where
/// `is_prefix_of(v)` says whether the file is the first `len` bytes of `v`:
/// so a file in the tree is classified without being copied out.
pub fn classify_by(
    len: u64,
    is_prefix_of: impl Fn(&[u8]) -> bool,
    old: &[u8],
    new: &[u8],
) -> TargetClass {
    let (old_len, new_len) = (old.len() as u64, new.len() as u64);
    if len == new_len && is_prefix_of(new) {
        TargetClass::New
    } else if len == old_len && is_prefix_of(old) {
        TargetClass::Old
    } else if len == 0 {
        TargetClass::Empty
    } else if len < new_len && is_prefix_of(new) {
        TargetClass::PrefixOfNew
    } else if len < old_len && is_prefix_of(old) {
        TargetClass::PrefixOfOld
    } else {
        TargetClass::Torn
    }
}

/// The state of a set of files that must change together, from the state
/// of its first file (whose mode, owner and xattrs it keeps) and the class
/// of every file, that one first: complete only when every file is the same
/// complete version (a user who starts exe v2 with lib v1 meets a torn
/// set), the one class of all of them when they share it, else torn, with
/// each file's class as the mix (`canary new, libcanary.so old`).
pub fn combine_set(first: TargetState, classes: &[(String, TargetClass)]) -> TargetState {
    if classes.iter().all(|(_, class)| *class == first.class) {
        return first;
    }
    let mix = classes
        .iter()
        .map(|(name, class)| format!("{name} {class}"))
        .collect::<Vec<_>>()
        .join(", ");
    TargetState {
        class: TargetClass::Torn,
        mix: Some(mix),
        ..first
    }
}

/// How a torn file mixes the versions, in runs: `first 64 KiB new, rest
/// old`, `new to 896 KiB, then old to 1 MiB` (a stale tail), `zeros to 8
/// KiB, then new to 1 MiB`. A byte both versions share belongs to the run
/// it is in; bytes of neither are `zeros` or `other bytes`.
pub fn describe_mix(bytes: &[u8], old: &[u8], new: &[u8]) -> String {
    #[derive(Clone, Copy, PartialEq)]
    enum Run {
        New,
        Old,
        Zeros,
        Other,
    }
    let mut runs: Vec<(Run, usize)> = Vec::new();
    for (i, &byte) in bytes.iter().enumerate() {
        let is_new = new.get(i) == Some(&byte);
        let is_old = old.get(i) == Some(&byte);
        let run = match runs.last_mut() {
            // A byte of both versions, or a zero in a run of zeros, goes on.
            Some((run, end))
                if (*run == Run::New && is_new)
                    || (*run == Run::Old && is_old)
                    || (*run == Run::Zeros && byte == 0) =>
            {
                *end = i + 1;
                continue;
            }
            _ if is_new => Run::New,
            _ if is_old => Run::Old,
            _ if byte == 0 => Run::Zeros,
            _ => Run::Other,
        };
        match runs.last_mut() {
            Some((last, end)) if *last == run => *end = i + 1,
            _ => runs.push((run, i + 1)),
        }
    }
    let name = |run: Run| match run {
        Run::New => "new",
        Run::Old => "old",
        Run::Zeros => "zeros",
        Run::Other => "other bytes",
    };
    match runs.as_slice() {
        [(first, end), (rest, _)] => format!(
            "first {} {}, rest {}",
            size_text(*end as u64),
            name(*first),
            name(*rest)
        ),
        _ => {
            let mut text: Vec<String> = runs
                .iter()
                .take(4)
                .map(|(run, end)| format!("{} to {}", name(*run), size_text(*end as u64)))
                .collect();
            if runs.len() > 4 {
                text.push("…".into());
            }
            text.join(", then ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(class: TargetClass) -> TargetState {
        TargetState {
            class,
            mode: Some(0o755),
            ..TargetState::missing()
        }
    }

    #[test]
    fn a_set_is_complete_only_at_one_version() {
        let classes = |exe, lib| [("canary".to_owned(), exe), ("libcanary.so".to_owned(), lib)];
        let (old, new) = (TargetClass::Old, TargetClass::New);
        let same = combine_set(state(new), &classes(new, new));
        assert_eq!((same.class, same.mix), (new, None));
        let mixed = combine_set(state(new), &classes(new, old));
        assert_eq!(mixed.class, TargetClass::Torn);
        assert_eq!(mixed.mix.as_deref(), Some("canary new, libcanary.so old"));
        assert_eq!(mixed.mode, Some(0o755), "the first file's metadata");
        let gone = combine_set(
            TargetState::missing(),
            &classes(TargetClass::Missing, TargetClass::Missing),
        );
        assert_eq!(gone.class, TargetClass::Missing);
    }

    #[test]
    fn a_mix_names_its_runs() {
        let old = vec![1u8; 8192];
        let new = vec![2u8; 6144];
        // Written back in part: new, then old.
        let mut torn = new[..4096].to_vec();
        torn.extend_from_slice(&old[4096..]);
        assert_eq!(describe_mix(&torn, &old, &new), "first 4 KiB new, rest old");
        // A shorter new written over the old in place: a stale tail.
        let mut stale = new.clone();
        stale.extend_from_slice(&old[6144..]);
        assert_eq!(
            describe_mix(&stale, &old, &new),
            "first 6 KiB new, rest old"
        );
        // A hole in the middle.
        let mut holed = new[..2048].to_vec();
        holed.extend_from_slice(&[0; 2048]);
        holed.extend_from_slice(&old[4096..]);
        assert_eq!(
            describe_mix(&holed, &old, &new),
            "new to 2 KiB, then zeros to 4 KiB, then old to 8 KiB"
        );
    }

    #[test]
    fn classes() {
        let (old, new) = (b"old-bytes".as_slice(), b"new-bytes!".as_slice());
        assert_eq!(classify(None, old, new), TargetClass::Missing);
        assert_eq!(classify(Some(b""), old, new), TargetClass::Empty);
        assert_eq!(classify(Some(new), old, new), TargetClass::New);
        assert_eq!(classify(Some(old), old, new), TargetClass::Old);
        assert_eq!(classify(Some(b"new-b"), old, new), TargetClass::PrefixOfNew);
        assert_eq!(classify(Some(b"old-"), old, new), TargetClass::PrefixOfOld);
        assert_eq!(
            classify(Some(b"new-bytes"), old, b"new-bytes"),
            TargetClass::New
        );
        assert_eq!(classify(Some(b"nld-bytes"), old, new), TargetClass::Torn);
    }
}
