//! fault-fs against a reference model: random sequences of create, write,
//! truncate, rename, link, unlink, mkdir, rmdir, fsync and fsyncdir through
//! a real mount, compared with a model of what POSIX promises after every
//! step, and the durable views held to what every model must keep: each a
//! file system whose entries name inodes it holds.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use fault_fs::{Cut, FaultPlan, PersistenceModel, Tree};
use proptest::prelude::*;

use crate::support::Scratch;

/// The names a case plays with: three in the root, two in a directory.
const PATHS: [&str; 5] = ["a", "b", "c", "d/a", "d/b"];

#[derive(Clone, Debug)]
enum Step {
    Create(usize),
    Write {
        path: usize,
        offset: u32,
        len: u32,
        seed: u8,
    },
    Truncate(usize, u32),
    Rename(usize, usize),
    Link(usize, usize),
    Unlink(usize),
    Fsync(usize),
    /// fsync of the root (`false`) or of `d` (`true`).
    FsyncDir(bool),
    /// mkdir of `d`: a directory made after the base a power cut starts from.
    Mkdir,
    /// rmdir of `d`.
    Rmdir,
    /// fsync of every file and both directories.
    SyncAll,
    /// [`Step::SyncAll`], then a power cut under the strict model (`true`)
    /// or metadata-ordered, and a reboot into what it left: all of it.
    SyncAndCut(bool),
}

fn step() -> impl Strategy<Value = Step> {
    let path = 0..PATHS.len();
    prop_oneof![
        3 => path.clone().prop_map(Step::Create),
        4 => (path.clone(), 0u32..300_000, 1u32..100_000, any::<u8>())
            .prop_map(|(path, offset, len, seed)| Step::Write { path, offset, len, seed }),
        2 => (path.clone(), 0u32..300_000).prop_map(|(p, size)| Step::Truncate(p, size)),
        2 => (path.clone(), path.clone()).prop_map(|(p, q)| Step::Rename(p, q)),
        2 => (path.clone(), path.clone()).prop_map(|(p, q)| Step::Link(p, q)),
        1 => path.clone().prop_map(Step::Unlink),
        1 => path.prop_map(Step::Fsync),
        1 => any::<bool>().prop_map(Step::FsyncDir),
        1 => Just(Step::Mkdir),
        1 => Just(Step::Rmdir),
        1 => Just(Step::SyncAll),
        1 => any::<bool>().prop_map(Step::SyncAndCut),
    ]
}

/// What POSIX promises: names to inodes, inodes to bytes, and whether `d`
/// exists.
#[derive(Debug)]
struct Model {
    names: BTreeMap<usize, u64>,
    data: HashMap<u64, Vec<u8>>,
    next: u64,
    dir: bool,
}

impl Default for Model {
    /// The initial tree: `d` and nothing else.
    fn default() -> Self {
        Model {
            names: BTreeMap::new(),
            data: HashMap::new(),
            next: 0,
            dir: true,
        }
    }
}

/// Whether name `p` lies in `d`.
fn in_dir(p: usize) -> bool {
    PATHS[p].starts_with("d/")
}

fn bytes(seed: u8, len: u32) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect()
}

impl Model {
    /// Applies `step`; whether it should succeed.
    fn apply(&mut self, step: &Step) -> bool {
        match *step {
            Step::Create(p) if in_dir(p) && !self.dir => false,
            Step::Rename(_, q) | Step::Link(_, q) if in_dir(q) && !self.dir => false,
            Step::Create(p) => {
                if !self.names.contains_key(&p) {
                    self.next += 1;
                    self.names.insert(p, self.next);
                    self.data.insert(self.next, Vec::new());
                }
                true
            }
            Step::Write {
                path,
                offset,
                len,
                seed,
            } => {
                let Some(ino) = self.names.get(&path) else {
                    return false;
                };
                let data = self.data.get_mut(ino).expect("inode");
                let end = (offset + len) as usize;
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[offset as usize..end].copy_from_slice(&bytes(seed, len));
                true
            }
            Step::Truncate(p, size) => match self.names.get(&p) {
                Some(ino) => {
                    self.data
                        .get_mut(ino)
                        .expect("inode")
                        .resize(size as usize, 0);
                    true
                }
                None => false,
            },
            Step::Rename(p, q) => {
                let Some(&ino) = self.names.get(&p) else {
                    return false;
                };
                // Two names of one file: rename does nothing, and succeeds.
                if self.names.get(&q) == Some(&ino) {
                    return true;
                }
                self.names.remove(&p);
                self.names.insert(q, ino);
                true
            }
            Step::Link(p, q) => match (self.names.get(&p).copied(), self.names.contains_key(&q)) {
                (Some(ino), false) => {
                    self.names.insert(q, ino);
                    true
                }
                _ => false,
            },
            Step::Unlink(p) => self.names.remove(&p).is_some(),
            Step::Fsync(p) => self.names.contains_key(&p),
            Step::FsyncDir(sub) => !sub || self.dir,
            Step::Mkdir => !std::mem::replace(&mut self.dir, true),
            Step::Rmdir => {
                let empty = !self.names.keys().any(|p| in_dir(*p));
                let done = self.dir && empty;
                self.dir &= !done;
                done
            }
            Step::SyncAll | Step::SyncAndCut(_) => true,
        }
    }

    fn view(&self) -> View {
        self.names
            .iter()
            .map(|(p, ino)| (*p, self.data[ino].clone()))
            .collect()
    }
}

/// Runs `step` on the mount; whether it succeeded.
fn run(mnt: &Path, step: &Step) -> bool {
    let at = |p: usize| mnt.join(PATHS[p]);
    let open_rw = |p: usize| std::fs::File::options().write(true).open(at(p));
    let done = match *step {
        Step::Create(p) => std::fs::File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(at(p))
            .map(drop),
        Step::Write {
            path,
            offset,
            len,
            seed,
        } => open_rw(path).and_then(|f| f.write_all_at(&bytes(seed, len), offset.into())),
        Step::Truncate(p, size) => open_rw(p).and_then(|f| f.set_len(size.into())),
        Step::Rename(p, q) => std::fs::rename(at(p), at(q)),
        Step::Link(p, q) => std::fs::hard_link(at(p), at(q)),
        Step::Unlink(p) => std::fs::remove_file(at(p)),
        Step::Fsync(p) => std::fs::File::open(at(p)).and_then(|f| f.sync_all()),
        Step::FsyncDir(sub) => {
            std::fs::File::open(if sub { mnt.join("d") } else { mnt.to_owned() })
                .and_then(|f| f.sync_all())
        }
        Step::Mkdir => std::fs::create_dir(mnt.join("d")),
        Step::Rmdir => std::fs::remove_dir(mnt.join("d")),
        Step::SyncAll | Step::SyncAndCut(_) => {
            for p in 0..PATHS.len() {
                if let Ok(file) = std::fs::File::open(at(p)) {
                    file.sync_all().expect("fsync");
                }
            }
            for dir in [mnt.join("d"), mnt.to_owned()] {
                // `d` may be gone (rmdir).
                if let Ok(dir) = std::fs::File::open(dir) {
                    dir.sync_all().expect("fsync dir");
                }
            }
            Ok(())
        }
    };
    done.is_ok()
}

/// Names (as indices into [`PATHS`]) to bytes.
type View = BTreeMap<usize, Vec<u8>>;

/// Names to bytes as the mount shows them, and each name's inode and link
/// count.
fn mount_view(mnt: &Path) -> (View, BTreeMap<usize, (u64, u64)>) {
    let mut view = BTreeMap::new();
    let mut inodes = BTreeMap::new();
    for (p, name) in PATHS.iter().enumerate() {
        let path = mnt.join(name);
        if let Ok(meta) = std::fs::metadata(&path) {
            view.insert(p, std::fs::read(&path).expect("read"));
            inodes.insert(p, (meta.ino(), meta.nlink()));
        }
    }
    (view, inodes)
}

/// The first directory entry of `tree` that names an inode it does not
/// hold, if any: a state no disk can be in (readdir would skip the entry
/// that rmdir counts).
fn dangling_entry(tree: &Tree) -> Option<(u64, String)> {
    tree.inodes().filter(|node| node.is_dir()).find_map(|dir| {
        let entries = tree.entries(dir.ino).ok()?;
        entries
            .iter()
            .find(|(_, ino)| tree.inode(**ino).is_none())
            .map(|(name, _)| (dir.ino, name.to_string_lossy().into_owned()))
    })
}

/// Names to bytes as a tree holds them.
fn tree_view(tree: &Tree) -> View {
    PATHS
        .iter()
        .enumerate()
        .filter_map(|(p, name)| {
            let ino = tree.resolve(&format!("/{name}")).ok()?;
            Some((p, tree.content(ino).ok()?.to_vec()))
        })
        .collect()
}

fn initial_tree() -> Tree {
    let mut tree = Tree::new();
    let node = fault_fs::tree::NewNode {
        perm: 0o755,
        uid: 0,
        gid: 0,
    };
    tree.mkdir(fault_fs::tree::ROOT_INO, "d".as_ref(), node)
        .expect("mkdir");
    tree
}

fn check_case(steps: &[Step]) -> Result<(), TestCaseError> {
    let scratch = Scratch::new();
    let mount = scratch.mount(initial_tree(), FaultPlan::default());
    let mnt = mount.path().to_owned();
    let handle = mount.handle();
    let mut model = Model::default();
    let mut synced = false;
    for (index, step) in steps.iter().enumerate() {
        let expected = model.apply(step);
        let done = run(&mnt, step);
        if let Step::SyncAndCut(strict) = step {
            let model = match strict {
                true => PersistenceModel::Strict,
                false => PersistenceModel::MetadataOrdered,
            };
            handle.restore(&handle.durable_state(Cut::new(model)));
        }
        prop_assert_eq!(done, expected, "step {} {:?}: success", index, step);
        let (view, inodes) = mount_view(&mnt);
        prop_assert_eq!(&view, &model.view(), "step {} {:?}: contents", index, step);
        // Names of one inode in the model share one on the mount, with a
        // link count of their number.
        for (p, (ino, nlink)) in &inodes {
            let same: Vec<usize> = model
                .names
                .iter()
                .filter(|(_, i)| **i == model.names[p])
                .map(|(q, _)| *q)
                .collect();
            prop_assert_eq!(
                *nlink,
                same.len() as u64,
                "step {} {:?}: nlink of {}",
                index,
                step,
                PATHS[*p]
            );
            for q in same {
                prop_assert_eq!(
                    inodes[&q].0,
                    *ino,
                    "step {} {:?}: {} and {}",
                    index,
                    step,
                    PATHS[*p],
                    PATHS[q]
                );
            }
        }
        synced |= matches!(
            step,
            Step::Fsync(_) | Step::FsyncDir(_) | Step::SyncAll | Step::SyncAndCut(_)
        );
        let live = tree_view(&handle.snapshot());
        for model in PersistenceModel::ALL {
            let state = handle.durable_state(Cut::new(model));
            prop_assert_eq!(
                dangling_entry(&state),
                None,
                "step {} {:?}: under {:?} an entry names no inode",
                index,
                step,
                model
            );
            let durable = tree_view(&state);
            if matches!(step, Step::SyncAll | Step::SyncAndCut(_)) {
                // Everything synced: a power cut loses nothing, under any model.
                prop_assert_eq!(
                    &durable,
                    &live,
                    "step {} SyncAll: durable under {:?}",
                    index,
                    model
                );
            }
            if !synced && model == PersistenceModel::Strict {
                // Nothing synced yet: under strict, nothing new is on disk.
                prop_assert!(
                    durable.is_empty(),
                    "step {} {:?}: strict kept {:?}",
                    index,
                    step,
                    durable.keys()
                );
            }
        }
    }
    drop(mount);
    Ok(())
}

proptest! {
    // Each case mounts fault-fs: a modest count for CI; raise it locally
    // with PROPTEST_CASES.
    #![proptest_config(ProptestConfig {
        cases: 48,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn fault_fs_keeps_to_the_model_and_its_durable_views_to_their_promises(
        steps in proptest::collection::vec(step(), 1..24)
    ) {
        check_case(&steps)?;
    }
}
