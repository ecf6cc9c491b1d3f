//! Persistence models: what survives a power cut at op N.
//!
//! The durability state is data, updated at the ops that change it:
//! - `metadata-ordered`: namespace changes (create, rename, unlink, truncate)
//!   are durable in order as they happen; file data only once the file is
//!   fsync'd. A renamed-in file never fsync'd comes back empty: the classic
//!   rename-without-fsync loss.
//! - `strict`: nothing is durable until an fsync of the file, and a
//!   directory entry only after an fsync of its directory.
//!
//! What was durable when the [`Durability`] was made (the staged files) is
//! durable in both.
//!
//! Data not yet fsync'd is not lost for sure either: the kernel writes
//! dirty pages back whenever it likes (the flusher, memory pressure, another
//! process's `sync`), in no promised order, a page at a time. So a cut is
//! a [`Cut`]: the model, plus how much of the unsynced data had been
//! [`Writeback`]: none of it (what the models guarantee), all of it, or the
//! first N bytes of it in the order it was written, across files (a torn
//! state, which may end inside a write, at a page boundary). The explorer
//! checks a small family of these per cut ([`Durability::writeback_family`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::tree::{Content, Inode, NodeKind, Tree};

/// Which state survives a power cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PersistenceModel {
    /// Namespace durable in order; data only after fsync.
    #[default]
    MetadataOrdered,
    /// Data after fsync of the file; entries after fsync of their directory.
    Strict,
}

impl PersistenceModel {
    /// Both models.
    pub const ALL: [PersistenceModel; 2] =
        [PersistenceModel::MetadataOrdered, PersistenceModel::Strict];

    /// The name used in fault specs.
    pub fn name(self) -> &'static str {
        match self {
            PersistenceModel::MetadataOrdered => "metadata-ordered",
            PersistenceModel::Strict => "strict",
        }
    }
}

impl fmt::Display for PersistenceModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PersistenceModel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PersistenceModel::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("unknown persistence model `{s}` (hint: metadata-ordered or strict)")
            })
    }
}

/// The page size a torn write is cut at: the unit of writeback.
pub const PAGE: u64 = 4096;

/// How much of the data written since its file's last fsync had reached
/// the disk when the power went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Writeback {
    /// None of it: only what an fsync made durable survives.
    #[default]
    None,
    /// The first this many bytes of it, in the order written (across
    /// files): writeback that had got that far. The rest is lost.
    Bytes(u64),
    /// All of it: everything written was on disk.
    All,
}

impl fmt::Display for Writeback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Writeback::None => f.write_str("none"),
            Writeback::Bytes(bytes) => write!(f, "{bytes}"),
            Writeback::All => f.write_str("all"),
        }
    }
}

impl FromStr for Writeback {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Writeback::None),
            "all" => Ok(Writeback::All),
            _ => s.parse().map(Writeback::Bytes).map_err(|_| {
                format!("bad writeback `{s}` (hint: none, all or a byte count, e.g. written=65536)")
            }),
        }
    }
}

/// What a power cut leaves: the namespace as `model` keeps it, and the
/// unsynced data `written` back. Printed `metadata-ordered`,
/// `strict/written=all`, `metadata-ordered/written=131072`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cut {
    /// Which namespace changes are durable.
    pub model: PersistenceModel,
    /// How much unsynced data reached the disk.
    pub written: Writeback,
}

impl Cut {
    /// A cut under `model` that keeps no unsynced data.
    pub fn new(model: PersistenceModel) -> Self {
        Cut {
            model,
            written: Writeback::None,
        }
    }
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.written {
            Writeback::None => write!(f, "{}", self.model),
            written => write!(f, "{}/written={written}", self.model),
        }
    }
}

impl FromStr for Cut {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (model, written) = match s.split_once('/') {
            None => (s, None),
            Some((model, written)) => {
                let written = written.strip_prefix("written=").ok_or_else(|| {
                    format!("unknown power-cut option `/{written}` (hint: /written=none|all|BYTES)")
                })?;
                (model, Some(written.parse()?))
            }
        };
        Ok(Cut {
            model: model.parse()?,
            written: written.unwrap_or_default(),
        })
    }
}

/// A change to a file's data not yet made durable by an fsync of it.
#[derive(Clone, Debug)]
enum Unsynced {
    /// Bytes written at an offset.
    Write {
        ino: u64,
        offset: u64,
        data: Arc<[u8]>,
        /// How much of it metadata-ordered may still write back: a later
        /// truncate (durable at once there) cut the rest away.
        ordered_len: usize,
    },
    /// A size set (a truncate, or an extension).
    Truncate { ino: u64, size: u64 },
}

/// What is durable so far, per model.
#[derive(Clone, Debug, Default)]
pub struct Durability {
    /// The tree as it was when everything was last known durable.
    base: Tree,
    /// metadata-ordered: durable content per file inode.
    ordered: HashMap<u64, Content>,
    /// strict: durable content per file inode.
    strict: HashMap<u64, Content>,
    /// strict: entries of each directory at its last fsync.
    dirs: HashMap<u64, BTreeMap<OsString, u64>>,
    /// strict: the inodes those entries name, as they were then.
    named: HashMap<u64, Arc<Inode>>,
    /// Data changes since each file's last fsync, in the order made.
    unsynced: Vec<Unsynced>,
    /// The file of the last write, and its content before it: a cut inside
    /// that write is the file as it was plus the write's first bytes.
    before_last: Option<(u64, Content)>,
    /// Partial writebacks computed so far, per model and byte count: the
    /// first N bytes of the stream do not change as writes are added, so
    /// each is replayed once (until an fsync or a truncate changes them).
    replayed: HashMap<(PersistenceModel, u64), Arc<HashMap<u64, Content>>>,
    /// Byte ranges per file whose writeback failed (a failed fsync): the
    /// cache still shows their data, but the disk keeps what it held
    /// there before, through any later fsync, until they are written again.
    lost: HashMap<u64, Vec<(u64, u64)>>,
}

impl Durability {
    /// Everything in `base` is durable.
    pub fn new(base: Tree) -> Self {
        let contents: HashMap<u64, Content> = base
            .inodes()
            .filter_map(|node| match &node.kind {
                NodeKind::File(content) => Some((node.ino, content.clone())),
                _ => None,
            })
            .collect();
        Durability {
            base,
            ordered: contents.clone(),
            strict: contents,
            dirs: HashMap::new(),
            named: HashMap::new(),
            unsynced: Vec::new(),
            before_last: None,
            replayed: HashMap::new(),
            lost: HashMap::new(),
        }
    }

    /// fsync or fdatasync of a file: its data is durable in both models,
    /// but for the ranges whose writeback failed before ([`Self::on_fsync_failed`]).
    pub fn on_fsync(&mut self, tree: &Tree, ino: u64) {
        if let Ok(content) = tree.content(ino) {
            let mut ordered = content.clone();
            let mut strict = content.clone();
            if let Some(lost) = self.lost.get(&ino) {
                let empty = Content::default();
                put_back(&mut ordered, lost, self.ordered.get(&ino).unwrap_or(&empty));
                put_back(&mut strict, lost, self.strict.get(&ino).unwrap_or(&empty));
            }
            self.ordered.insert(ino, ordered);
            self.strict.insert(ino, strict);
            self.unsynced.retain(|change| match change {
                Unsynced::Write { ino: i, .. } | Unsynced::Truncate { ino: i, .. } => *i != ino,
            });
            self.replayed.clear();
            self.forget_last_write(ino);
        }
    }

    /// An fsync or fdatasync of a file that failed: Linux marks the pages
    /// it could not write clean and reports the error once, so their data
    /// never reaches the disk, and a later fsync that succeeds does not
    /// write them either (fsyncgate: Rebello et al., ATC '20). What the
    /// file wrote since its last fsync is lost from the disk's view until
    /// written again; the cache (the tree) still shows it.
    pub fn on_fsync_failed(&mut self, ino: u64) {
        let mut lost = Vec::new();
        self.unsynced.retain(|change| match change {
            Unsynced::Write {
                ino: i,
                offset,
                data,
                ..
            } if *i == ino => {
                lost.push((*offset, *offset + data.len() as u64));
                false
            }
            _ => true,
        });
        if lost.is_empty() {
            return;
        }
        self.lost.entry(ino).or_default().extend(lost);
        self.replayed.clear();
        self.forget_last_write(ino);
    }

    /// The last write is no longer one a cut may land inside, if it was
    /// to `ino` (synced, or lost).
    fn forget_last_write(&mut self, ino: u64) {
        if self
            .before_last
            .as_ref()
            .is_some_and(|(last, _)| *last == ino)
        {
            self.before_last = None;
        }
    }

    /// Data written to a file whose content was `before`: durable only
    /// after an fsync, but it may reach the disk before (see [`Writeback`]).
    pub fn on_write(&mut self, ino: u64, offset: u64, data: &[u8], before: Content) {
        if let Some(lost) = self.lost.get_mut(&ino) {
            // Written again: those pages are dirty, and written back anew.
            let end = offset + data.len() as u64;
            *lost = lost
                .iter()
                .flat_map(|&(start, stop)| [(start, stop.min(offset)), (start.max(end), stop)])
                .filter(|(start, stop)| start < stop)
                .collect();
            if lost.is_empty() {
                self.lost.remove(&ino);
            }
        }
        if !data.is_empty() {
            self.unsynced.push(Unsynced::Write {
                ino,
                offset,
                data: data.into(),
                ordered_len: data.len(),
            });
            self.before_last = Some((ino, before));
        }
    }

    /// A truncate is metadata: durable at once under metadata-ordered, where
    /// it also cuts away what earlier unsynced writes put past `size`.
    pub fn on_truncate(&mut self, ino: u64, size: u64) {
        self.ordered.entry(ino).or_default().truncate(size);
        for change in &mut self.unsynced {
            if let Unsynced::Write {
                ino: i,
                offset,
                ordered_len,
                ..
            } = change
            {
                if *i == ino {
                    *ordered_len = (*ordered_len).min(size.saturating_sub(*offset) as usize);
                }
            }
        }
        self.unsynced.push(Unsynced::Truncate { ino, size });
        self.replayed.clear();
        self.before_last = None;
    }

    /// The writeback states the explorer checks for a cut now: none and
    /// all of the unsynced data, the first 1, 2, 4, 8, ... writes of it
    /// (bounded: log2 of the writes), and the last write cut at the page
    /// boundary nearest its middle, if it spans pages (a write of many
    /// pages is not atomic).
    /// Just `[None]` when nothing is unsynced.
    pub fn writeback_family(&self) -> Vec<Writeback> {
        let writes: Vec<(u64, u64)> = self
            .unsynced
            .iter()
            .filter_map(|change| match change {
                Unsynced::Write { offset, data, .. } => Some((*offset, data.len() as u64)),
                Unsynced::Truncate { .. } => None,
            })
            .collect();
        let Some(&(last_offset, last_len)) = writes.last() else {
            return vec![Writeback::None];
        };
        let mut family = BTreeSet::new();
        let mut before = 0;
        let mut next_prefix = 1;
        for (index, (_, len)) in writes.iter().enumerate() {
            if index == next_prefix {
                family.insert(Writeback::Bytes(before));
                next_prefix *= 2;
            }
            before += len;
        }
        // The page boundary nearest the middle of the last write, if one
        // falls inside it: the write spans pages, each written back alone.
        let before_last = before - last_len;
        let middle = (last_offset + last_len / 2) / PAGE * PAGE;
        let boundary = if middle > last_offset {
            middle
        } else {
            (last_offset / PAGE + 1) * PAGE
        };
        if boundary < last_offset + last_len {
            family.insert(Writeback::Bytes(before_last + boundary - last_offset));
        }
        [Writeback::None]
            .into_iter()
            .chain(family)
            .chain([Writeback::All])
            .collect()
    }

    /// fsync of a directory: its entries are durable under strict.
    pub fn on_fsyncdir(&mut self, tree: &Tree, dir: u64) {
        let Ok(entries) = tree.entries(dir) else {
            return;
        };
        for child in entries.values() {
            if let Some(node) = tree.inode(*child) {
                self.named.insert(*child, node);
            }
        }
        if let Some(node) = tree.inode(dir) {
            self.named.insert(dir, node);
        }
        self.dirs.insert(dir, entries.clone());
    }

    /// sync(2) or syncfs(2): every file's data and every directory's
    /// entries are durable in both models, as after an fsync of each (data
    /// whose writeback failed before stays lost: the pages were marked clean).
    pub fn on_sync(&mut self, tree: &Tree) {
        let (files, dirs): (Vec<_>, Vec<_>) = tree
            .inodes()
            .filter(|node| matches!(node.kind, NodeKind::File(_) | NodeKind::Dir(_)))
            .map(|node| (node.ino, node.is_dir()))
            .partition(|(_, dir)| !dir);
        for (ino, _) in files {
            self.on_fsync(tree, ino);
        }
        for (ino, _) in dirs {
            self.on_fsyncdir(tree, ino);
        }
    }

    /// The tree that a reboot after a power cut now would find.
    pub fn durable_tree(&mut self, cut: Cut, current: &Tree) -> Tree {
        let model = cut.model;
        if model == PersistenceModel::MetadataOrdered
            && cut.written == Writeback::All
            && self.lost.is_empty()
        {
            // Every change durable, data included: the tree as it is.
            return current.clone();
        }
        let (mut tree, contents) = match model {
            PersistenceModel::MetadataOrdered => (current.clone(), &self.ordered),
            PersistenceModel::Strict => {
                let mut tree = self.base.clone();
                for node in self.named.values() {
                    if tree.inode(node.ino).is_none() {
                        tree.put_inode(node.clone());
                        // A directory new since the base was named with the
                        // entries it had then; they are durable only once it
                        // is synced itself (below), so until then it is empty.
                        if node.is_dir() && !self.dirs.contains_key(&node.ino) {
                            tree.set_entries(node.ino, BTreeMap::new());
                        }
                    }
                }
                for (dir, entries) in &self.dirs {
                    tree.set_entries(*dir, entries.clone());
                }
                tree.drop_unreachable();
                tree.recount_links();
                (tree, &self.strict)
            }
        };
        let files: Vec<u64> = tree
            .inodes()
            .filter(|node| matches!(node.kind, NodeKind::File(_)))
            .map(|node| node.ino)
            .collect();
        for ino in &files {
            tree.set_content(*ino, contents.get(ino).cloned().unwrap_or_default());
        }
        self.write_back(&mut tree, cut, current);
        // What a failed writeback lost holds what the disk had there.
        let contents = match model {
            PersistenceModel::MetadataOrdered => &self.ordered,
            PersistenceModel::Strict => &self.strict,
        };
        let empty = Content::default();
        for (ino, lost) in &self.lost {
            if let Ok(content) = tree.content(*ino) {
                let mut content = content.clone();
                put_back(&mut content, lost, contents.get(ino).unwrap_or(&empty));
                tree.set_content(*ino, content);
            }
        }
        tree
    }

    /// Puts on `tree` (its files at their durable content) the unsynced
    /// changes `cut.written` says reached the disk, in the order made.
    /// All of them is each file as it is in `current`; a cut inside the
    /// last write is that too, but for the last write's file, which is as
    /// before that write plus its first bytes; other cuts are replayed.
    /// Each is linear in what it sets, so a family per op stays cheap.
    fn write_back(&mut self, tree: &mut Tree, cut: Cut, current: &Tree) {
        let bytes = match cut.written {
            Writeback::None => return,
            Writeback::Bytes(bytes) => bytes,
            Writeback::All => u64::MAX,
        };
        let total: u64 = self
            .unsynced
            .iter()
            .map(|change| match change {
                Unsynced::Write { data, .. } => data.len() as u64,
                Unsynced::Truncate { .. } => 0,
            })
            .sum();
        let mut inos: Vec<u64> = self
            .unsynced
            .iter()
            .map(|(Unsynced::Write { ino, .. } | Unsynced::Truncate { ino, .. })| *ino)
            .collect();
        inos.sort_unstable();
        inos.dedup();
        // A file gone from the tree since is found only by a replay.
        let as_now = inos.iter().all(|ino| current.content(*ino).is_ok());
        let torn_last = match (&self.before_last, self.unsynced.last()) {
            (
                Some((ino, before)),
                Some(Unsynced::Write {
                    ino: last,
                    offset,
                    data,
                    ..
                }),
            ) if ino == last && bytes < total && bytes > total - data.len() as u64 => {
                let mut content = before.clone();
                content.write(
                    *offset,
                    &data[..(bytes - (total - data.len() as u64)) as usize],
                );
                Some((*ino, content))
            }
            _ => None,
        };
        // All, truncates too, is the tree as it is; N >= total bytes is all
        // the data but not a size set after it (under strict), so replayed.
        if as_now && (cut.written == Writeback::All || torn_last.is_some()) {
            for ino in &inos {
                if let Ok(content) = current.content(*ino) {
                    tree.set_content(*ino, content.clone());
                }
            }
            if let Some((ino, content)) = torn_last {
                tree.set_content(ino, content);
            }
            return;
        }
        let replayed = match self.replayed.get(&(cut.model, bytes)) {
            Some(replayed) => replayed.clone(),
            None => {
                // Go on from the longest prefix replayed so far: the first
                // N bytes of the stream are the same in a longer one.
                let from = self
                    .replayed
                    .iter()
                    .filter(|((model, done), _)| *model == cut.model && *done < bytes)
                    .max_by_key(|((_, done), _)| *done)
                    .map(|((_, done), replayed)| (*done, replayed.clone()));
                let mut contents = self.replay(cut.model, from, bytes);
                // What the replay wrote that is still in the file now is
                // kept once, not once per cut.
                for (ino, content) in &mut contents {
                    if let Ok(now) = current.content(*ino) {
                        content.share_equal_chunks(now);
                    }
                }
                let replayed = Arc::new(contents);
                self.replayed.insert((cut.model, bytes), replayed.clone());
                replayed
            }
        };
        for (ino, content) in replayed.iter() {
            tree.set_content(*ino, content.clone());
        }
    }

    /// The content of each file the first `bytes` of the unsynced stream
    /// touch, replayed in order on its durable content under `model`, or
    /// on `from`: the replay of a shorter prefix (its byte count and
    /// contents), whose chunks the result shares.
    fn replay(
        &self,
        model: PersistenceModel,
        from: Option<(u64, Arc<HashMap<u64, Content>>)>,
        bytes: u64,
    ) -> HashMap<u64, Content> {
        let durable = match model {
            PersistenceModel::MetadataOrdered => &self.ordered,
            PersistenceModel::Strict => &self.strict,
        };
        let (done, mut contents) = match from {
            Some((done, replayed)) => (done, HashMap::clone(&replayed)),
            None => (0, HashMap::new()),
        };
        // Bytes are counted over the whole stream, whether or not their
        // file is still to be found. A change is replayed when the stream
        // before it is shorter than the prefix; `from` holds those the
        // shorter prefix reached, the first part of a write it cut in two.
        let mut before = 0;
        for change in &self.unsynced {
            if before >= bytes {
                break;
            }
            let reached = before < done;
            let (ino, len) = match change {
                Unsynced::Write { ino, data, .. } => (*ino, data.len() as u64),
                Unsynced::Truncate { ino, .. } => (*ino, 0),
            };
            let content = contents
                .entry(ino)
                .or_insert_with(|| durable.get(&ino).cloned().unwrap_or_default());
            match change {
                Unsynced::Write {
                    offset,
                    data,
                    ordered_len,
                    ..
                } => {
                    let clip = |n: u64| match model {
                        PersistenceModel::MetadataOrdered => (n as usize).min(*ordered_len),
                        PersistenceModel::Strict => n as usize,
                    };
                    let start = if reached {
                        clip(len.min(done - before))
                    } else {
                        0
                    };
                    let end = clip(len.min(bytes - before));
                    if end > start {
                        content.write(*offset + start as u64, &data[start..end]);
                    }
                }
                Unsynced::Truncate { size, .. } if !reached => content.truncate(*size),
                Unsynced::Truncate { .. } => {}
            }
            before += len;
        }
        contents
    }
}

/// Puts `disk`'s bytes (zeros past its end) on `content` at each of the
/// `ranges` within `content`'s size: what a failed writeback left there.
fn put_back(content: &mut Content, ranges: &[(u64, u64)], disk: &Content) {
    for &(start, stop) in ranges {
        let stop = stop.min(content.len());
        if start >= stop {
            continue;
        }
        let mut bytes = disk.read(start, (stop - start) as usize);
        bytes.resize((stop - start) as usize, 0);
        content.write(start, &bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{NewNode, RenameMode, ROOT_INO};

    /// A tree with one file holding `old`, and its durability.
    fn staged(old: &[u8]) -> (Tree, Durability, u64) {
        let mut tree = Tree::new();
        let node = NewNode {
            perm: 0o644,
            uid: 0,
            gid: 0,
        };
        let ino = tree.create_file(ROOT_INO, "f".as_ref(), node).unwrap();
        tree.write(ino, 0, old).unwrap();
        let durable = Durability::new(tree.clone());
        (tree, durable, ino)
    }

    fn write(tree: &mut Tree, durable: &mut Durability, ino: u64, offset: u64, data: &[u8]) {
        let before = tree.content(ino).unwrap().clone();
        tree.write(ino, offset, data).unwrap();
        durable.on_write(ino, offset, data, before);
    }

    fn bytes_after(durable: &mut Durability, tree: &Tree, ino: u64, cut: Cut) -> Vec<u8> {
        durable
            .durable_tree(cut, tree)
            .content(ino)
            .unwrap()
            .to_vec()
    }

    #[test]
    fn the_family_is_none_all_powers_of_two_and_a_page_cut_of_the_last_write() {
        let (mut tree, mut durable, ino) = staged(&[0; 5 * 8192]);
        assert_eq!(durable.writeback_family(), [Writeback::None]);
        for n in 0..5 {
            write(&mut tree, &mut durable, ino, n * 8192, &[1; 8192]);
        }
        // Prefixes of 1, 2 and 4 writes; the fifth cut at its middle page.
        assert_eq!(
            durable.writeback_family(),
            [
                Writeback::None,
                Writeback::Bytes(8192),
                Writeback::Bytes(2 * 8192),
                Writeback::Bytes(4 * 8192),
                Writeback::Bytes(4 * 8192 + 4096),
                Writeback::All,
            ]
        );
        // Synced, nothing is left to write back.
        durable.on_fsync(&tree, ino);
        assert_eq!(durable.writeback_family(), [Writeback::None]);
    }

    /// Two files, each written once since the base (`one` extended).
    fn two_files_written() -> (Tree, Durability, u64) {
        let (mut tree, mut durable, one) = staged(&[7; 3 * 4096]);
        let node = NewNode {
            perm: 0o644,
            uid: 0,
            gid: 0,
        };
        let two = tree.create_file(ROOT_INO, "g".as_ref(), node).unwrap();
        write(&mut tree, &mut durable, one, 0, &[1; 5000]);
        write(&mut tree, &mut durable, two, 0, &[2; 9000]);
        (tree, durable, one)
    }

    #[test]
    fn shortcuts_leave_what_a_replay_leaves() {
        // Two files, interleaved writes, one extending its file: every
        // state of the family, taken the short way (the tree as it is, the
        // file before its last write), equals the plain replay.
        let (mut tree, mut durable, one) = two_files_written();
        write(&mut tree, &mut durable, one, 10_000, &[3; 6000]);
        let family = durable.writeback_family();
        assert!(family.len() >= 4, "{family:?}");
        for model in PersistenceModel::ALL {
            for written in &family {
                let cut = Cut {
                    model,
                    written: *written,
                };
                let short = durable.durable_tree(cut, &tree);
                let bytes = match written {
                    Writeback::None => 0,
                    Writeback::Bytes(bytes) => *bytes,
                    Writeback::All => u64::MAX,
                };
                for (ino, content) in durable.replay(model, None, bytes) {
                    // Under strict the new file is not named: nothing to find.
                    if let Ok(found) = short.content(ino) {
                        assert_eq!(found, &content, "{cut} ino {ino}");
                    }
                }
                assert!(short.content(one).is_ok(), "{cut}");
            }
        }
    }

    #[test]
    fn a_replay_from_a_shorter_prefix_leaves_what_one_from_the_start_does() {
        // Writes cut at every length, a truncate between them, two files.
        let (mut tree, mut durable, one) = two_files_written();
        tree.truncate(one, 3000).unwrap();
        durable.on_truncate(one, 3000);
        write(&mut tree, &mut durable, one, 10_000, &[3; 6000]);
        let total = 20_000;
        for model in PersistenceModel::ALL {
            for shorter in (0..=total).step_by(1500) {
                let from = Arc::new(durable.replay(model, None, shorter));
                for bytes in (shorter..=total + 10).step_by(700) {
                    assert_eq!(
                        durable.replay(model, Some((shorter, from.clone())), bytes),
                        durable.replay(model, None, bytes),
                        "{model} from {shorter} to {bytes}"
                    );
                }
            }
        }
    }

    /// Found by a self-updating program whose retry removes the staging
    /// dir a cut left: it listed empty, yet rmdir said "not empty".
    #[test]
    fn a_new_directory_is_empty_after_a_strict_cut_until_it_is_synced() {
        let (mut tree, mut durable, _) = staged(b"x");
        let node = NewNode {
            perm: 0o755,
            uid: 0,
            gid: 0,
        };
        let dir = tree.mkdir(ROOT_INO, "d".as_ref(), node).unwrap();
        tree.create_file(dir, "f".as_ref(), node).unwrap();
        durable.on_fsyncdir(&tree, ROOT_INO);
        let cut = Cut {
            model: PersistenceModel::Strict,
            written: Writeback::None,
        };
        let mut after = durable.durable_tree(cut, &tree);
        let d = after
            .lookup(ROOT_INO, "d".as_ref())
            .expect("d's entry was synced");
        assert!(after.entries(d).unwrap().is_empty());
        after
            .rmdir(ROOT_INO, "d".as_ref())
            .expect("an empty dir is removed");
        // Synced itself, its entry for f is durable too.
        durable.on_fsyncdir(&tree, dir);
        let after = durable.durable_tree(cut, &tree);
        let d = after.lookup(ROOT_INO, "d".as_ref()).unwrap();
        assert!(after.lookup(d, "f".as_ref()).is_ok());
    }

    /// Found by the model test: a directory synced with an entry, then
    /// emptied by a rename and removed, lent its stale entry to the link
    /// count of the file after a strict cut.
    #[test]
    fn a_removed_directory_names_nothing_after_a_strict_cut() {
        let mut tree = Tree::new();
        let node = NewNode {
            perm: 0o755,
            uid: 0,
            gid: 0,
        };
        let dir = tree.mkdir(ROOT_INO, "d".as_ref(), node).unwrap();
        let mut durable = Durability::new(tree.clone());
        let file = tree.create_file(dir, "b".as_ref(), node).unwrap();
        durable.on_fsyncdir(&tree, dir);
        tree.rename(
            dir,
            "b".as_ref(),
            ROOT_INO,
            "a".as_ref(),
            RenameMode::Replace,
        )
        .unwrap();
        tree.rmdir(ROOT_INO, "d".as_ref()).unwrap();
        durable.on_fsyncdir(&tree, ROOT_INO);
        let cut = Cut {
            model: PersistenceModel::Strict,
            written: Writeback::None,
        };
        let after = durable.durable_tree(cut, &tree);
        assert_eq!(after.lookup(ROOT_INO, "a".as_ref()), Ok(file));
        assert_eq!(after.get(file).unwrap().nlink, 1);
        assert!(after.inode(dir).is_none(), "the removed directory is gone");
    }

    #[test]
    fn a_small_write_across_a_page_boundary_is_cut_there() {
        let (mut tree, mut durable, ino) = staged(&[0; 8192]);
        write(&mut tree, &mut durable, ino, 4000, &[1; 200]);
        assert!(durable.writeback_family().contains(&Writeback::Bytes(96)));
    }

    #[test]
    fn a_partial_writeback_replays_the_first_bytes_in_write_order() {
        let (mut tree, mut durable, ino) = staged(b"oooooooo");
        write(&mut tree, &mut durable, ino, 4, b"BBBB");
        write(&mut tree, &mut durable, ino, 0, b"AAAA");
        let strict = |written| Cut {
            model: PersistenceModel::Strict,
            written,
        };
        assert_eq!(
            bytes_after(&mut durable, &tree, ino, strict(Writeback::None)),
            b"oooooooo"
        );
        assert_eq!(
            bytes_after(&mut durable, &tree, ino, strict(Writeback::Bytes(2))),
            b"ooooBBoo"
        );
        assert_eq!(
            bytes_after(&mut durable, &tree, ino, strict(Writeback::Bytes(6))),
            b"AAooBBBB"
        );
        assert_eq!(
            bytes_after(&mut durable, &tree, ino, strict(Writeback::All)),
            b"AAAABBBB"
        );
    }

    #[test]
    fn under_metadata_ordered_a_truncate_cuts_what_earlier_writes_put_past_it() {
        let (mut tree, mut durable, ino) = staged(b"oooooooo");
        write(&mut tree, &mut durable, ino, 0, b"AAAAAAAA");
        tree.truncate(ino, 2).unwrap();
        durable.on_truncate(ino, 2);
        let cut = |model| Cut {
            model,
            written: Writeback::Bytes(8),
        };
        // The truncate is durable at once: the write survives only below it.
        assert_eq!(
            bytes_after(
                &mut durable,
                &tree,
                ino,
                cut(PersistenceModel::MetadataOrdered)
            ),
            b"AA"
        );
        // Under strict the truncate is not durable: the whole write is there.
        assert_eq!(
            bytes_after(&mut durable, &tree, ino, cut(PersistenceModel::Strict)),
            b"AAAAAAAA"
        );
    }

    #[test]
    fn data_whose_fsync_failed_is_not_made_durable_by_a_retried_fsync() {
        let (mut tree, mut durable, ino) = staged(b"oooooooo");
        write(&mut tree, &mut durable, ino, 0, b"AAAA");
        write(&mut tree, &mut durable, ino, 8, b"NNNN");
        durable.on_fsync_failed(ino);
        // The retry succeeds and writes nothing: the disk keeps the old
        // bytes where they were, and zeros past the old end.
        durable.on_fsync(&tree, ino);
        assert_eq!(tree.content(ino).unwrap().to_vec(), b"AAAAooooNNNN");
        for model in PersistenceModel::ALL {
            for written in [Writeback::None, Writeback::All] {
                let cut = Cut { model, written };
                assert_eq!(
                    bytes_after(&mut durable, &tree, ino, cut),
                    b"oooooooo\0\0\0\0",
                    "{cut}"
                );
            }
        }
        // Written again, the pages are dirty anew and the next fsync keeps them.
        write(&mut tree, &mut durable, ino, 0, b"AA");
        durable.on_fsync(&tree, ino);
        let cut = Cut::new(PersistenceModel::Strict);
        assert_eq!(
            bytes_after(&mut durable, &tree, ino, cut),
            b"AAoooooo\0\0\0\0"
        );
    }

    #[test]
    fn a_failed_fsync_loses_its_data_from_every_writeback_too() {
        let (mut tree, mut durable, ino) = staged(b"oooo");
        write(&mut tree, &mut durable, ino, 0, b"AAAA");
        durable.on_fsync_failed(ino);
        assert_eq!(durable.writeback_family(), [Writeback::None]);
        let all = Cut {
            model: PersistenceModel::MetadataOrdered,
            written: Writeback::All,
        };
        assert_eq!(bytes_after(&mut durable, &tree, ino, all), b"oooo");
    }
}
