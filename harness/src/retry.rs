//! One retry per state class. After an interruption the undisturbed retry
//! starts from the tree the interrupted run left, and at a large target most
//! of an exploration's time is those retries: a kill at each of 500 writes of
//! a 64 MiB copy leaves 500 trees that differ only in how much was copied.
//!
//! A state class is what every property could tell apart in a tree: which
//! names exist, what each file holds (one of the versions, a prefix of one
//! within a power of two of some length, or small bytes of its own), modes,
//! owners, link counts, xattrs, link targets; whether the power went; which
//! live processes were harmed. Points whose retries start in one class
//! share one retry: the first to get there runs it, the others take what it
//! observed. A tree holding anything else (a large file that is none of the
//! versions: a torn one) has no class, and its retry runs.
//!
//! The class cannot see everything a retry depends on (the length of a
//! prefix a resuming download reads, state the strategy keeps outside the
//! mount), so every [`AUDIT_EVERY`]th point retries for real anyway and
//! compares what it saw with its class's retry. If one differs, the class is
//! said to vary and every point that took its retry is run again, retry
//! included. `--exhaustive` shares nothing.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use fault_fs::tree::{Content, NodeKind, ROOT_INO};
use fault_fs::{OpRecord, Tree};

use crate::observe::{LiveReport, StrategyRun, TargetState};
use crate::target::Prepared;

/// Every this many points (by index), a point retries for real even where
/// its class has a retry, and checks the class's against its own.
pub const AUDIT_EVERY: usize = 8;

/// Files up to this size that are none of the versions are told apart by
/// their bytes (a manifest, a checksum, a lock); a larger one gives its tree
/// no class.
const SMALL: u64 = 64 * 1024;

/// A version a file may hold: a file of the initial tree, or NEW's bytes
/// (compared where they are, not copied into a tree).
#[derive(Debug)]
enum Version {
    Tree(Content),
    Bytes(Arc<Vec<u8>>),
}

impl Version {
    fn len(&self) -> u64 {
        match self {
            Version::Tree(content) => content.len(),
            Version::Bytes(bytes) => bytes.len() as u64,
        }
    }

    /// Whether `content` is the first `content.len()` bytes of it.
    fn starts_with(&self, content: &Content) -> bool {
        match self {
            Version::Tree(version) => content.is_prefix_of_content(version),
            Version::Bytes(bytes) => content.is_prefix_of(bytes),
        }
    }
}

/// What one path holds, as far as a property could tell.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Held {
    Dir,
    Link(OsString),
    /// Version `n` (see [`SharedRetries::versions`]), whole.
    Version(usize),
    /// A proper prefix of version `n`, empty included, and the bit length
    /// of its length: prefixes of one power-of-two scale are alike, so a
    /// retry that goes another way past some length (a resuming download
    /// that trusts a part past half) shows in another class, and audits
    /// check within a class.
    PrefixOf(usize, u32),
    /// A small file of other bytes.
    Bytes(Vec<u8>),
}

/// One path of a tree in a [`StateClass`].
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Entry {
    path: String,
    held: Held,
    perm: u16,
    uid: u32,
    gid: u32,
    nlink: u32,
    xattrs: BTreeMap<OsString, Vec<u8>>,
}

/// The class of the state a retry starts from.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct StateClass {
    entries: Vec<Entry>,
    /// The power went before the retry (a reboot: no live process, an
    /// empty temp dir).
    after_cut: bool,
    /// Per live process, whether it was harmed already.
    harmed: Vec<bool>,
}

/// What a retry observed, for the points of its class that take it.
#[derive(Clone, Debug)]
pub(crate) struct Retry {
    /// The retry's run and what it left.
    pub(crate) run: StrategyRun,
    /// Its ops.
    pub(crate) trace: Vec<OpRecord>,
    /// The live processes' reports once it had ended.
    pub(crate) live: Vec<LiveReport>,
}

impl Retry {
    /// Whether two retries of one class saw the same: everything a property
    /// judges (the exit, the target, the names left, what was left running,
    /// the live processes harmed). Stderr, timings and inode numbers (no
    /// property reads them) may differ.
    fn same_as(&self, other: &Retry) -> bool {
        let (a, b) = (&self.run, &other.run);
        let target = |run: &StrategyRun| TargetState {
            ino: None,
            ..run.target.clone()
        };
        a.exit == b.exit
            && target(a) == target(b)
            && a.strays == b.strays
            && a.other_names == b.other_names
            && a.left_running.len() == b.left_running.len()
            && a.self_update == b.self_update
            && a.killed_by_platform.is_some() == b.killed_by_platform.is_some()
            && a.durable_after_sync_error == b.durable_after_sync_error
            && a.damaged == b.damaged
            && harm(&self.live) == harm(&other.live)
    }

    /// `live` (a point's reports before the retry it takes) as this retry
    /// left them: a process this retry harmed is harmed there too.
    pub(crate) fn apply_to(&self, live: &mut [LiveReport]) {
        for (mine, after) in live.iter_mut().zip(&self.live) {
            if mine.unharmed() && !after.unharmed() {
                mine.exit = after.exit;
                mine.changed = after.changed.clone();
                mine.killed_why = after.killed_why.clone();
            }
        }
    }
}

/// Per live process, whether it is harmed.
pub(crate) fn harm(live: &[LiveReport]) -> Vec<bool> {
    live.iter().map(|report| !report.unharmed()).collect()
}

/// Where a class's retry stands.
#[derive(Debug)]
enum Standing {
    /// Its representative is running it: the class's other points wait.
    Running,
    /// Run, and it ended the chain of retries: the others take it.
    Ready(Arc<Retry>),
    /// Interrupted in turn, or not carried out: each point runs its own.
    Unshared,
}

/// A class's retry and who took it.
#[derive(Debug)]
struct Class {
    standing: Standing,
    /// The points (by index) that took it instead of retrying.
    takers: Vec<usize>,
    /// An audit saw another retry from this class.
    varies: bool,
}

/// What a point does about its first retry.
#[derive(Debug)]
pub(crate) enum Claim {
    /// Take this retry, its class's, instead of running one.
    Take(Arc<Retry>),
    /// Run it: it stands for its class.
    Represent,
    /// Run it and compare it with its class's. An audit never stands for a
    /// class, so how many retries run does not hang on which point of a
    /// class got there first.
    Audit,
    /// Run it: its class is not shared.
    Own,
}

/// The retries of one exploration, by class.
#[derive(Debug)]
pub struct SharedRetries {
    /// What a file may hold as a version: every file of the initial tree,
    /// and NEW's files.
    versions: Vec<Version>,
    /// Off (`--exhaustive`): every retry runs, and is only counted.
    share: bool,
    classes: Mutex<HashMap<StateClass, Class>>,
    /// Signalled whenever a representative is done.
    settled: Condvar,
    run: AtomicUsize,
    taken: AtomicUsize,
}

impl SharedRetries {
    /// The retries of an exploration of `prepared`; `share` off runs them all.
    pub fn new(prepared: &Prepared, share: bool) -> SharedRetries {
        let initial = prepared.initial_tree();
        let mut versions: Vec<Version> = files(&initial)
            .into_iter()
            .map(|(_, content)| Version::Tree(content.clone()))
            .collect();
        for (_, bytes) in prepared.new_files() {
            let known = versions.iter().any(|v| match v {
                Version::Tree(v) => v.len() == bytes.len() as u64 && v.is_prefix_of(&bytes),
                Version::Bytes(_) => false,
            });
            if !known {
                versions.push(Version::Bytes(bytes));
            }
        }
        SharedRetries::of(versions, share)
    }

    fn of(versions: Vec<Version>, share: bool) -> SharedRetries {
        SharedRetries {
            versions,
            share,
            classes: Mutex::new(HashMap::new()),
            settled: Condvar::new(),
            run: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
        }
    }

    /// The class of `tree`, or `None` if it holds a large file that is none
    /// of the versions nor a prefix of one, or sharing is off.
    pub fn class_of(&self, tree: &Tree, after_cut: bool, harmed: Vec<bool>) -> Option<StateClass> {
        if !self.share {
            return None;
        }
        let mut entries = Vec::new();
        for (path, ino) in paths(tree) {
            let node = tree.get(ino).ok()?;
            let held = match &node.kind {
                NodeKind::Dir(_) => Held::Dir,
                NodeKind::Symlink(target) => Held::Link(target.clone()),
                NodeKind::File(content) => self.held(content)?,
            };
            entries.push(Entry {
                path,
                held,
                perm: node.perm,
                uid: node.uid,
                gid: node.gid,
                nlink: node.nlink,
                xattrs: node.xattrs.clone(),
            });
        }
        Some(StateClass {
            entries,
            after_cut,
            harmed,
        })
    }

    fn held(&self, content: &Content) -> Option<Held> {
        let whole = |v: &Version| v.len() == content.len() && v.starts_with(content);
        if let Some(n) = self.versions.iter().position(whole) {
            return Some(Held::Version(n));
        }
        if let Some(n) = self.versions.iter().position(|v| v.starts_with(content)) {
            let scale = u64::BITS - content.len().leading_zeros();
            return Some(Held::PrefixOf(n, scale));
        }
        (content.len() <= SMALL).then(|| Held::Bytes(content.to_vec()))
    }

    /// What point `point`, whose first retry starts from `class`, does
    /// about it. A class whose representative is still running is waited
    /// for, so that no two points of a class race to run its retry.
    pub(crate) fn claim(&self, class: &StateClass, point: usize) -> Claim {
        let audit = point % AUDIT_EVERY == 0;
        let Ok(mut classes) = self.classes.lock() else {
            return Claim::Own;
        };
        loop {
            let Some(entry) = classes.get_mut(class) else {
                if audit {
                    return Claim::Audit;
                }
                let standing = Standing::Running;
                let (takers, varies) = (Vec::new(), false);
                let entry = Class {
                    standing,
                    takers,
                    varies,
                };
                classes.insert(class.clone(), entry);
                return Claim::Represent;
            };
            match &entry.standing {
                Standing::Running => match self.settled.wait(classes) {
                    Ok(guard) => classes = guard,
                    Err(_) => return Claim::Own,
                },
                _ if audit => return Claim::Audit,
                Standing::Ready(retry) if !entry.varies => {
                    let retry = retry.clone();
                    entry.takers.push(point);
                    self.taken.fetch_add(1, Ordering::Relaxed);
                    return Claim::Take(retry);
                }
                _ => return Claim::Own,
            }
        }
    }

    /// The retry that `claim` said to run, run (`None`: it could not be
    /// carried out). `ended` says it ended the chain of retries.
    pub(crate) fn ran(
        &self,
        class: &StateClass,
        claim: &Claim,
        retry: Option<&Retry>,
        ended: bool,
    ) {
        if retry.is_some() {
            self.run.fetch_add(1, Ordering::Relaxed);
        }
        let Ok(mut classes) = self.classes.lock() else {
            return;
        };
        let Some(entry) = classes.get_mut(class) else {
            return;
        };
        match claim {
            Claim::Represent => {
                entry.standing = match retry {
                    Some(retry) if ended => Standing::Ready(Arc::new(retry.clone())),
                    _ => Standing::Unshared,
                };
                self.settled.notify_all();
            }
            Claim::Audit => {
                if let (Standing::Ready(theirs), Some(mine)) = (&entry.standing, retry) {
                    if !(ended && theirs.same_as(mine)) {
                        entry.varies = true;
                    }
                }
            }
            // Counted above; the runner keeps no retry of these.
            Claim::Take(_) | Claim::Own => {}
        }
    }

    /// Counts a retry that ran for real and stands for no class: beyond the
    /// first of its chain, from a tree with no class, or of a class that is
    /// not shared.
    pub(crate) fn count_run(&self) {
        self.run.fetch_add(1, Ordering::Relaxed);
    }

    /// The points that took the retry of a class that turned out to vary:
    /// each must be run again, with a retry of its own. They are no longer
    /// counted as taken.
    pub fn takers_of_varied(&self) -> Vec<usize> {
        let Ok(mut classes) = self.classes.lock() else {
            return Vec::new();
        };
        let mut points: Vec<usize> = classes
            .values_mut()
            .filter(|class| class.varies)
            .flat_map(|class| std::mem::take(&mut class.takers))
            .collect();
        self.taken.fetch_sub(points.len(), Ordering::Relaxed);
        points.sort_unstable();
        points
    }

    /// Classes whose audits saw another retry.
    pub fn varied(&self) -> usize {
        self.classes
            .lock()
            .map_or(0, |classes| classes.values().filter(|c| c.varies).count())
    }

    /// Retries run for real.
    pub fn retries_run(&self) -> usize {
        self.run.load(Ordering::Relaxed)
    }

    /// Points that took their class's retry.
    pub fn retries_taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }
}

/// Every path of `tree` with its inode, in path order.
fn paths(tree: &Tree) -> Vec<(String, u64)> {
    fn walk(tree: &Tree, ino: u64, prefix: &str, out: &mut Vec<(String, u64)>) {
        let Ok(entries) = tree.readdir(ino) else {
            return;
        };
        for (child, node, name) in entries.into_iter().skip(2) {
            let path = format!("{prefix}/{}", name.to_string_lossy());
            out.push((path.clone(), child));
            if node.is_dir() {
                walk(tree, child, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(tree, ROOT_INO, "", &mut out);
    out
}

/// Every file of `tree` with its content, in path order.
fn files(tree: &Tree) -> Vec<(String, &Content)> {
    paths(tree)
        .into_iter()
        .filter_map(|(path, ino)| match &tree.get(ino).ok()?.kind {
            NodeKind::File(content) => Some((path, content)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Exit;
    use fault_fs::tree::NewNode;

    const NODE: NewNode = NewNode {
        perm: 0o755,
        uid: 0,
        gid: 0,
    };

    /// Retries of one exploration whose only version is `new`.
    fn retries(new: &[u8]) -> SharedRetries {
        SharedRetries::of(vec![Version::Bytes(Arc::new(new.to_vec()))], true)
    }

    /// A tree with `/app/lib` holding `bytes`, of mode `perm`.
    fn tree(bytes: &[u8], perm: u16) -> Tree {
        let mut tree = Tree::new();
        let app = tree.mkdir(ROOT_INO, "app".as_ref(), NODE).expect("mkdir");
        let lib = tree
            .create_file(app, "lib".as_ref(), NewNode { perm, ..NODE })
            .expect("create");
        tree.write(lib, 0, bytes).expect("write");
        tree
    }

    fn retry(exit: i32) -> Retry {
        Retry {
            run: StrategyRun {
                exit: Exit::Code(exit),
                stderr: String::new(),
                target: TargetState::missing(),
                strays: Vec::new(),
                left_running: Vec::new(),
                settled_after: None,
                other_names: Vec::new(),
                self_update: None,
                killed_by_platform: None,
                durable_after_sync_error: None,
                damaged: Vec::new(),
            },
            trace: Vec::new(),
            live: Vec::new(),
        }
    }

    #[test]
    fn prefixes_of_one_scale_are_one_class_and_other_scales_another() {
        let new: Vec<u8> = (0..8 * 65536).map(|i| (i % 253) as u8).collect();
        let shared = retries(&new);
        let class = |bytes: &[u8], perm| shared.class_of(&tree(bytes, perm), false, vec![false]);
        let five = class(&new[..5 * 65536], 0o755);
        assert!(five.is_some(), "a prefix of NEW has a class");
        assert_eq!(five, class(&new[..6 * 65536 + 9], 0o755), "5 and 6 chunks");
        assert_ne!(
            five,
            class(&new[..2 * 65536], 0o755),
            "a quarter, not a half"
        );
        assert_ne!(five, class(&new[..5 * 65536], 0o600), "another mode");
        assert_ne!(five, class(&new, 0o755), "the whole of NEW");
        assert_ne!(
            five,
            shared.class_of(&tree(&new[..5 * 65536], 0o755), true, Vec::new()),
            "after a power cut"
        );
        // Small bytes of their own are told apart by their bytes; a large
        // torn file gives no class at all.
        assert_ne!(class(b"v1", 0o755), class(b"v2", 0o755));
        let mut torn = new.clone();
        torn[70_000] ^= 1;
        assert_eq!(class(&torn, 0o755), None);
    }

    #[test]
    fn audits_run_their_own_retry_and_a_class_that_varies_gives_its_takers_back() {
        let shared = retries(b"new");
        let class = shared
            .class_of(&tree(b"ne", 0o755), false, Vec::new())
            .expect("a class");
        let audit = AUDIT_EVERY;
        // An audit that comes first does not stand for the class.
        assert!(matches!(shared.claim(&class, audit), Claim::Audit));
        shared.ran(&class, &Claim::Audit, Some(&retry(0)), true);
        let first = shared.claim(&class, 1);
        assert!(matches!(first, Claim::Represent), "{first:?}");
        shared.ran(&class, &first, Some(&retry(0)), true);
        assert!(matches!(shared.claim(&class, 2), Claim::Take(_)));
        assert!(matches!(shared.claim(&class, 3), Claim::Take(_)));
        // An audit that saw the same: nothing varies.
        shared.ran(
            &class,
            &shared.claim(&class, 2 * audit),
            Some(&retry(0)),
            true,
        );
        assert_eq!((shared.varied(), shared.takers_of_varied()), (0, vec![]));
        // One that saw another exit: both takers are run again.
        shared.ran(
            &class,
            &shared.claim(&class, 3 * audit),
            Some(&retry(1)),
            true,
        );
        assert_eq!(shared.varied(), 1);
        assert_eq!(shared.takers_of_varied(), vec![2, 3]);
        assert_eq!((shared.retries_taken(), shared.retries_run()), (0, 4));
        assert!(matches!(shared.claim(&class, 5), Claim::Own), "it varies");
        // A representative interrupted in turn, or not carried out, stands
        // for nothing.
        for (n, retry) in [(b"n" as &[u8], Some(retry(0))), (b"", None)] {
            let other = shared
                .class_of(&tree(n, 0o755), false, Vec::new())
                .expect("a class");
            let claim = shared.claim(&other, 1);
            assert!(matches!(claim, Claim::Represent));
            shared.ran(&other, &claim, retry.as_ref(), false);
            assert!(matches!(shared.claim(&other, 2), Claim::Own));
        }
    }

    #[test]
    fn the_points_of_a_class_wait_for_its_representative() {
        let shared = retries(b"new");
        let class = shared
            .class_of(&tree(b"ne", 0o755), false, Vec::new())
            .expect("a class");
        let first = shared.claim(&class, 1);
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| shared.claim(&class, 2));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!waiter.is_finished(), "it waits, and does not race");
            shared.ran(&class, &first, Some(&retry(0)), true);
            let claim = waiter.join().expect("no panic");
            assert!(matches!(claim, Claim::Take(_)), "{claim:?}");
        });
    }
}
