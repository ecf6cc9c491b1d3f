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

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::tree::{Content, Inode, NodeKind, Tree};

/// Which state survives a power cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PersistenceModel {
    /// Namespace durable in order; data only after fsync.
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
        }
    }

    /// fsync or fdatasync of a file: its data is durable in both models.
    pub fn on_fsync(&mut self, tree: &Tree, ino: u64) {
        if let Ok(content) = tree.content(ino) {
            self.ordered.insert(ino, content.clone());
            self.strict.insert(ino, content.clone());
        }
    }

    /// A truncate is metadata: durable at once under metadata-ordered.
    pub fn on_truncate(&mut self, ino: u64, size: u64) {
        self.ordered.entry(ino).or_default().truncate(size);
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

    /// The tree that a reboot after a power cut now would find.
    pub fn durable_tree(&self, model: PersistenceModel, current: &Tree) -> Tree {
        let (mut tree, contents) = match model {
            PersistenceModel::MetadataOrdered => (current.clone(), &self.ordered),
            PersistenceModel::Strict => {
                let mut tree = self.base.clone();
                for node in self.named.values() {
                    if tree.inode(node.ino).is_none() {
                        tree.put_inode(node.clone());
                    }
                }
                for (dir, entries) in &self.dirs {
                    tree.set_entries(*dir, entries.clone());
                }
                (tree, &self.strict)
            }
        };
        let files: Vec<u64> = tree
            .inodes()
            .filter(|node| matches!(node.kind, NodeKind::File(_)))
            .map(|node| node.ino)
            .collect();
        for ino in files {
            tree.set_content(ino, contents.get(&ino).cloned().unwrap_or_default());
        }
        tree
    }
}
