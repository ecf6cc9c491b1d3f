//! The in-memory file tree behind the mount.
//!
//! Everything here is plain data with POSIX semantics and no FUSE in sight, so
//! the conformance tests and the snapshot/reset logic can reason about it
//! directly. File contents are copy-on-write chunks: cloning a [`Tree`] (a
//! snapshot) copies one `Arc` per inode, never file bytes.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::sync::Arc;
use std::time::SystemTime;

use fuser::Errno;

/// Inode number of the root directory (FUSE's fixed root).
pub const ROOT_INO: u64 = 1;

/// Size of one copy-on-write chunk of file content.
pub const CHUNK: usize = 64 * 1024;

/// File contents as shared, copy-on-write chunks.
///
/// The outer `Arc` makes a snapshot of an inode O(1); the inner ones make a
/// write after a snapshot copy only the chunks it touches. Chunks are kept
/// by index, and only those written hold memory: a hole (a write far past
/// the end, `truncate` to grow) costs nothing, however large.
#[derive(Clone, Debug, Default)]
pub struct Content {
    size: u64,
    chunks: Arc<BTreeMap<u64, Arc<Vec<u8>>>>,
}

impl Content {
    /// Content holding `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut content = Content::default();
        content.write(0, bytes);
        content
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// True for a zero-length file.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Bytes of memory the chunks hold (holes hold none).
    pub fn allocated(&self) -> u64 {
        self.chunks.values().map(|chunk| chunk.len() as u64).sum()
    }

    /// 512-byte blocks the file occupies, as `stat` reports them: whole
    /// chunks where anything was written, nothing for holes. O(1).
    pub fn blocks(&self) -> u64 {
        (self.chunks.len() as u64 * (CHUNK as u64 / 512)).min(self.size.div_ceil(512))
    }

    /// Reads up to `len` bytes at `offset` (short at end of file).
    pub fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        if offset >= self.size {
            return Vec::new();
        }
        let end = offset.saturating_add(len as u64).min(self.size);
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut pos = offset;
        while pos < end {
            let index = pos / CHUNK as u64;
            let within = (pos % CHUNK as u64) as usize;
            let take = ((end - pos) as usize).min(CHUNK - within);
            match self.chunks.get(&index) {
                // A chunk may be shorter than CHUNK: the rest reads as zeros (a hole).
                Some(chunk) => {
                    let have = chunk.len().saturating_sub(within).min(take);
                    out.extend_from_slice(&chunk[within..within + have]);
                    out.resize(out.len() + take - have, 0);
                }
                None => out.resize(out.len() + take, 0),
            }
            pos += take as u64;
        }
        out
    }

    /// The whole content.
    pub fn to_vec(&self) -> Vec<u8> {
        self.read(0, self.size as usize)
    }

    /// True when both hold the very same chunks (a snapshot and the tree it
    /// was taken from, where nothing wrote since): the same bytes, known
    /// without reading them. False says nothing.
    pub fn shares_chunks_with(&self, other: &Content) -> bool {
        self.size == other.size && Arc::ptr_eq(&self.chunks, &other.chunks)
    }

    /// True when this content is the first `len()` bytes of `bytes`;
    /// compared chunk by chunk, with no copy.
    pub fn is_prefix_of(&self, bytes: &[u8]) -> bool {
        let Some(want) = bytes.get(..self.size as usize) else {
            return false;
        };
        // Chunk i holds bytes from i * CHUNK; what it lacks reads as zeros.
        want.chunks(CHUNK).enumerate().all(|(index, want)| {
            let have = self
                .chunks
                .get(&(index as u64))
                .map_or(&[][..], |chunk| &chunk[..chunk.len().min(want.len())]);
            want[..have.len()] == *have && want[have.len()..].iter().all(|b| *b == 0)
        })
    }

    /// True when this content is the first `len()` bytes of `other`. Chunks
    /// the two share are not read; the others are compared a chunk at a time.
    pub fn is_prefix_of_content(&self, other: &Content) -> bool {
        if self.size > other.size {
            return false;
        }
        (0..self.size.div_ceil(CHUNK as u64)).all(|index| {
            let (mine, theirs) = (self.chunks.get(&index), other.chunks.get(&index));
            if let (Some(mine), Some(theirs)) = (mine, theirs) {
                if Arc::ptr_eq(mine, theirs) {
                    return true;
                }
            }
            let start = index * CHUNK as u64;
            let len = (self.size - start).min(CHUNK as u64) as usize;
            self.read(start, len) == other.read(start, len)
        })
    }

    /// Takes `other`'s chunk wherever it holds the same bytes at the same
    /// place, so two contents that are mostly alike keep those bytes once.
    pub fn share_equal_chunks(&mut self, other: &Content) {
        let chunks = Arc::make_mut(&mut self.chunks);
        for (index, chunk) in chunks.iter_mut() {
            if let Some(theirs) = other.chunks.get(index) {
                if !Arc::ptr_eq(chunk, theirs) && chunk == theirs {
                    *chunk = theirs.clone();
                }
            }
        }
    }

    /// Writes `data` at `offset`, extending the file (with a hole) as needed.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        let chunks = Arc::make_mut(&mut self.chunks);
        let mut pos = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let index = pos / CHUNK as u64;
            let within = (pos % CHUNK as u64) as usize;
            let take = rest.len().min(CHUNK - within);
            let chunk = Arc::make_mut(chunks.entry(index).or_default());
            if chunk.len() < within + take {
                chunk.resize(within + take, 0);
            }
            chunk[within..within + take].copy_from_slice(&rest[..take]);
            rest = &rest[take..];
            pos += take as u64;
        }
        self.size = self.size.max(end);
    }

    /// Sets the length: shrinking drops bytes, growing adds a hole.
    pub fn truncate(&mut self, size: u64) {
        if size < self.size {
            let chunks = Arc::make_mut(&mut self.chunks);
            let keep = size.div_ceil(CHUNK as u64);
            chunks.split_off(&keep);
            let tail = (size % CHUNK as u64) as usize;
            // Only the chunk that holds the new end is cut (it may be absent:
            // a hole, or a chunk that lies wholly before the end).
            if tail != 0 {
                if let Some(last) = chunks.get_mut(&(keep - 1)) {
                    if last.len() > tail {
                        Arc::make_mut(last).truncate(tail);
                    }
                }
            }
        }
        self.size = size;
    }
}

impl PartialEq for Content {
    /// Same bytes. Cheap where the two share chunks, as snapshots do, and
    /// where both have holes: only chunks that either holds are compared.
    fn eq(&self, other: &Self) -> bool {
        if self.shares_chunks_with(other) {
            return true;
        }
        if self.size != other.size {
            return false;
        }
        let indexes: std::collections::BTreeSet<u64> = self
            .chunks
            .keys()
            .chain(other.chunks.keys())
            .copied()
            .collect();
        indexes.into_iter().all(|index| {
            if let (Some(a), Some(b)) = (self.chunks.get(&index), other.chunks.get(&index)) {
                if Arc::ptr_eq(a, b) {
                    return true;
                }
            }
            let offset = index * CHUNK as u64;
            self.read(offset, CHUNK) == other.read(offset, CHUNK)
        })
    }
}

impl Eq for Content {}

/// What an inode is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file.
    File(Content),
    /// A directory: name to inode number, in name order (readdir is stable).
    Dir(BTreeMap<OsString, u64>),
    /// A symbolic link and its target.
    Symlink(OsString),
}

/// One inode that differs between two trees ([`Tree::changed_inodes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InodeChange {
    /// The inode number.
    pub ino: u64,
    /// Its bytes (or its kind) differ, or only one tree holds it; false when
    /// only attributes or names differ.
    pub data: bool,
}

/// One inode: kind plus the attributes POSIX tools read and copy.
#[derive(Clone, Debug)]
pub struct Inode {
    /// Inode number; never reused within a mount.
    pub ino: u64,
    /// File, directory or symlink, with its payload.
    pub kind: NodeKind,
    /// Permission bits (07777).
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Number of directory entries naming this inode.
    pub nlink: u32,
    /// Access time.
    pub atime: SystemTime,
    /// Modification time.
    pub mtime: SystemTime,
    /// Status change time.
    pub ctime: SystemTime,
    /// Extended attributes, kept as opaque bytes (ACLs included).
    pub xattrs: BTreeMap<OsString, Vec<u8>>,
    /// One directory entry naming this inode, for paths in the trace.
    pub parent: u64,
    /// The name of that entry.
    pub name: OsString,
}

impl Inode {
    /// Size as `stat` reports it.
    pub fn size(&self) -> u64 {
        match &self.kind {
            NodeKind::File(content) => content.len(),
            NodeKind::Dir(entries) => 4096.max(entries.len() as u64),
            NodeKind::Symlink(target) => target.len() as u64,
        }
    }

    /// True for directories.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir(_))
    }
}

/// The xattr that holds a POSIX access ACL.
const ACL_ACCESS: &str = "system.posix_acl_access";

/// Reads the mode bits an access ACL implies, and whether it is minimal
/// (owner, group and other only). `None` if it does not parse.
fn acl_mode(value: &[u8]) -> Option<(u16, bool)> {
    const USER_OBJ: u16 = 0x01;
    const GROUP_OBJ: u16 = 0x04;
    const MASK: u16 = 0x10;
    const OTHER: u16 = 0x20;
    let (header, entries) = value.split_at_checked(4)?;
    if u32::from_le_bytes(header.try_into().ok()?) != 2 || entries.len() % 8 != 0 {
        return None;
    }
    let (mut user, mut group, mut mask, mut other, mut count) = (None, None, None, None, 0);
    for entry in entries.chunks_exact(8) {
        let tag = u16::from_le_bytes([entry[0], entry[1]]);
        let perm = u16::from_le_bytes([entry[2], entry[3]]) & 0o7;
        count += 1;
        match tag {
            USER_OBJ => user = Some(perm),
            GROUP_OBJ => group = Some(perm),
            MASK => mask = Some(perm),
            OTHER => other = Some(perm),
            _ => {}
        }
    }
    let group_bits = mask.or(group)?;
    Some((user? << 6 | group_bits << 3 | other?, count == 3))
}

/// How a new inode should look.
#[derive(Clone, Copy, Debug)]
pub struct NewNode {
    /// Permission bits, already masked by the umask.
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// `rename(2)` flags that change its semantics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RenameMode {
    /// Plain rename: replace the destination if it exists.
    #[default]
    Replace,
    /// `RENAME_NOREPLACE`: fail with EEXIST if the destination exists.
    NoReplace,
    /// `RENAME_EXCHANGE`: swap the two entries atomically.
    Exchange,
}

/// How many symlinks a path walk follows before it fails with ELOOP, as Linux.
pub const MAX_LINK_HOPS: usize = 40;

/// The in-memory file system tree.
///
/// Inodes live in a map keyed by number. An inode with no links stays while
/// anything still refers to it ([`Tree::pin`]), so unlinked files remain
/// readable through open handles and live mappings.
#[derive(Clone, Debug)]
pub struct Tree {
    inodes: HashMap<u64, Arc<Inode>>,
    /// References the kernel or open handles hold, per inode.
    pins: HashMap<u64, u64>,
    next_ino: u64,
    /// Generations of inode numbers that a restore brought back as a
    /// directory the kernel may still hold dead (absent: 0).
    generations: HashMap<u64, u64>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// An empty tree: a root directory owned by root, mode 0755.
    pub fn new() -> Self {
        let now = SystemTime::now();
        let root = Inode {
            ino: ROOT_INO,
            kind: NodeKind::Dir(BTreeMap::new()),
            perm: 0o755,
            uid: 0,
            gid: 0,
            nlink: 2,
            atime: now,
            mtime: now,
            ctime: now,
            xattrs: BTreeMap::new(),
            parent: ROOT_INO,
            name: OsString::new(),
        };
        Tree {
            inodes: HashMap::from([(ROOT_INO, Arc::new(root))]),
            pins: HashMap::new(),
            next_ino: ROOT_INO + 1,
            generations: HashMap::new(),
        }
    }

    /// The next inode number that will be handed out.
    pub fn next_ino(&self) -> u64 {
        self.next_ino
    }

    /// Replaces the contents with `snapshot`'s but keeps counting inode
    /// numbers from where this tree is, so no number is ever handed out twice.
    /// References (pins) stay: they count what the kernel and open handles
    /// hold now, not what they held when the snapshot was taken.
    ///
    /// A directory removed since (rmdir, or replaced by a rename) that the
    /// snapshot brings back gets a new generation: the kernel marks a removed
    /// directory dead for good, and a process still inside it (a live
    /// canary mapping a file there) keeps that dead inode around; under the
    /// same number and generation the kernel would hand it out again, and
    /// every lookup in it would fail.
    pub fn restore(&mut self, snapshot: &Tree) {
        for (ino, node) in &snapshot.inodes {
            if !node.is_dir() || *ino == ROOT_INO {
                continue;
            }
            if self.inodes.get(ino).is_none_or(|now| now.nlink == 0) {
                *self.generations.entry(*ino).or_default() += 1;
            }
        }
        self.inodes = snapshot.inodes.clone();
        self.next_ino = self.next_ino.max(snapshot.next_ino);
    }

    /// The generation of inode number `ino`: with the number, what names
    /// the inode to the kernel (see [`Tree::restore`]).
    pub fn generation(&self, ino: u64) -> u64 {
        self.generations.get(&ino).copied().unwrap_or(0)
    }

    /// Looks an inode up.
    pub fn get(&self, ino: u64) -> Result<&Inode, Errno> {
        self.inodes
            .get(&ino)
            .map(|node| &**node)
            .ok_or(Errno::ENOENT)
    }

    fn get_mut(&mut self, ino: u64) -> Result<&mut Inode, Errno> {
        self.inodes
            .get_mut(&ino)
            .map(Arc::make_mut)
            .ok_or(Errno::ENOENT)
    }

    fn dir_entries(&self, ino: u64) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match &self.get(ino)?.kind {
            NodeKind::Dir(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn dir_entries_mut(&mut self, ino: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        let now = SystemTime::now();
        let node = self.get_mut(ino)?;
        node.mtime = now;
        node.ctime = now;
        match &mut node.kind {
            NodeKind::Dir(entries) => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// Records one more reference (kernel lookup or open handle) to `ino`.
    pub fn pin(&mut self, ino: u64) {
        *self.pins.entry(ino).or_default() += 1;
    }

    /// Drops `count` references; frees the inode once unlinked and unreferenced.
    pub fn unpin(&mut self, ino: u64, count: u64) {
        if let Some(pins) = self.pins.get_mut(&ino) {
            *pins = pins.saturating_sub(count);
            if *pins == 0 {
                self.pins.remove(&ino);
                self.collect(ino);
            }
        }
    }

    fn collect(&mut self, ino: u64) {
        let unreferenced = !self.pins.contains_key(&ino);
        if ino != ROOT_INO
            && unreferenced
            && self.inodes.get(&ino).is_some_and(|node| node.nlink == 0)
        {
            self.inodes.remove(&ino);
        }
    }

    /// Resolves `name` in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        self.dir_entries(parent)?
            .get(name)
            .copied()
            .ok_or(Errno::ENOENT)
    }

    /// Resolves a path relative to the root ("a/b/c"); symlinks are not followed.
    pub fn resolve(&self, path: &str) -> Result<u64, Errno> {
        path.split('/')
            .filter(|part| !part.is_empty() && *part != ".")
            .try_fold(ROOT_INO, |dir, part| self.lookup(dir, OsStr::new(part)))
    }

    /// Resolves a path relative to the root as a path walk in the mount
    /// would, following symlinks (at most [`MAX_LINK_HOPS`], then ELOOP).
    /// An absolute link is a path outside the tree unless it starts with
    /// `mount`, the tree's mount point: then the rest is resolved from the
    /// root; a link out of the tree fails with EXDEV. Returns the inode and
    /// its path with every link resolved.
    pub fn resolve_following(&self, path: &str, mount: &str) -> Result<(u64, String), Errno> {
        let parts = |path: &str| -> Vec<String> {
            path.split('/')
                .filter(|part| !part.is_empty() && *part != ".")
                .map(str::to_owned)
                .collect()
        };
        let mut pending: std::collections::VecDeque<String> = parts(path).into();
        // The directories walked so far, with their names: `..` goes back.
        let mut walked: Vec<(u64, String)> = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop_front() {
            let dir = walked.last().map_or(ROOT_INO, |(ino, _)| *ino);
            if part == ".." {
                walked.pop();
                continue;
            }
            let ino = self.lookup(dir, OsStr::new(&part))?;
            let NodeKind::Symlink(target) = &self.get(ino)?.kind else {
                walked.push((ino, part));
                continue;
            };
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return Err(Errno::ELOOP);
            }
            let target = target.to_string_lossy();
            let mut next: std::collections::VecDeque<String> = match target.strip_prefix('/') {
                Some(_) => {
                    let inside = target
                        .strip_prefix(mount.trim_end_matches('/'))
                        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                        .ok_or(Errno::EXDEV)?;
                    walked.clear();
                    parts(inside).into()
                }
                None => parts(&target).into(),
            };
            next.extend(pending.drain(..));
            pending = next;
        }
        let ino = walked.last().map_or(ROOT_INO, |(ino, _)| *ino);
        let path: String = walked.iter().map(|(_, name)| format!("/{name}")).collect();
        Ok((ino, if path.is_empty() { "/".into() } else { path }))
    }

    /// The path of an inode from the root, through the entry that last named it.
    pub fn path_of(&self, ino: u64) -> String {
        let mut parts = Vec::new();
        let mut current = ino;
        // Bounded: a tree deeper than this is not something a strategy makes.
        for _ in 0..256 {
            if current == ROOT_INO {
                break;
            }
            let Ok(node) = self.get(current) else {
                parts.push(OsString::from("?"));
                break;
            };
            parts.push(node.name.clone());
            current = node.parent;
        }
        let mut path = String::new();
        for part in parts.iter().rev() {
            path.push('/');
            path.push_str(&part.to_string_lossy());
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    }

    fn check_new_name(&self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        if self.dir_entries(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        Ok(())
    }

    fn insert_node(&mut self, parent: u64, name: &OsStr, kind: NodeKind, new: NewNode) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        let now = SystemTime::now();
        let nlink = if matches!(kind, NodeKind::Dir(_)) {
            2
        } else {
            1
        };
        let node = Inode {
            ino,
            kind,
            perm: new.perm & 0o7777,
            uid: new.uid,
            gid: new.gid,
            nlink,
            atime: now,
            mtime: now,
            ctime: now,
            xattrs: BTreeMap::new(),
            parent,
            name: name.to_owned(),
        };
        self.inodes.insert(ino, Arc::new(node));
        ino
    }

    fn link_into(&mut self, parent: u64, name: &OsStr, ino: u64) -> Result<(), Errno> {
        self.dir_entries_mut(parent)?.insert(name.to_owned(), ino);
        Ok(())
    }

    /// Creates an empty regular file; EEXIST if the name is taken.
    pub fn create_file(&mut self, parent: u64, name: &OsStr, new: NewNode) -> Result<u64, Errno> {
        self.check_new_name(parent, name)?;
        let ino = self.insert_node(parent, name, NodeKind::File(Content::default()), new);
        self.link_into(parent, name, ino)?;
        Ok(ino)
    }

    /// Creates a directory.
    pub fn mkdir(&mut self, parent: u64, name: &OsStr, new: NewNode) -> Result<u64, Errno> {
        self.check_new_name(parent, name)?;
        let ino = self.insert_node(parent, name, NodeKind::Dir(BTreeMap::new()), new);
        self.link_into(parent, name, ino)?;
        self.get_mut(parent)?.nlink += 1;
        Ok(ino)
    }

    /// Creates a symbolic link.
    pub fn symlink(
        &mut self,
        parent: u64,
        name: &OsStr,
        target: &OsStr,
        new: NewNode,
    ) -> Result<u64, Errno> {
        self.check_new_name(parent, name)?;
        let kind = NodeKind::Symlink(target.to_owned());
        let ino = self.insert_node(parent, name, kind, NewNode { perm: 0o777, ..new });
        self.link_into(parent, name, ino)?;
        Ok(ino)
    }

    /// Adds a hard link to a non-directory.
    pub fn link(&mut self, ino: u64, parent: u64, name: &OsStr) -> Result<(), Errno> {
        if self.get(ino)?.is_dir() {
            return Err(Errno::EPERM);
        }
        self.check_new_name(parent, name)?;
        self.link_into(parent, name, ino)?;
        let node = self.get_mut(ino)?;
        node.nlink += 1;
        node.ctime = SystemTime::now();
        Ok(())
    }

    fn drop_link(&mut self, ino: u64) -> Result<(), Errno> {
        let node = self.get_mut(ino)?;
        node.nlink = if node.is_dir() {
            0
        } else {
            node.nlink.saturating_sub(1)
        };
        node.ctime = SystemTime::now();
        self.collect(ino);
        Ok(())
    }

    /// Removes a non-directory entry.
    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        let ino = self.lookup(parent, name)?;
        if self.get(ino)?.is_dir() {
            return Err(Errno::EISDIR);
        }
        self.dir_entries_mut(parent)?.remove(name);
        self.drop_link(ino)?;
        Ok(ino)
    }

    /// Removes an empty directory.
    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        let ino = self.lookup(parent, name)?;
        if !self.dir_entries(ino)?.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.dir_entries_mut(parent)?.remove(name);
        self.get_mut(parent)?.nlink -= 1;
        self.drop_link(ino)?;
        Ok(ino)
    }

    fn is_ancestor(&self, ancestor: u64, mut ino: u64) -> bool {
        for _ in 0..256 {
            if ino == ancestor {
                return true;
            }
            if ino == ROOT_INO {
                return false;
            }
            match self.get(ino) {
                Ok(node) => ino = node.parent,
                Err(_) => return false,
            }
        }
        false
    }

    /// `rename(2)` with its flags, including directory rules.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        mode: RenameMode,
    ) -> Result<(), Errno> {
        let src = self.lookup(parent, name)?;
        self.dir_entries(new_parent)?;
        if new_name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let src_is_dir = self.get(src)?.is_dir();
        if src_is_dir && self.is_ancestor(src, new_parent) {
            return Err(Errno::EINVAL);
        }
        let dst = self.dir_entries(new_parent)?.get(new_name).copied();
        match (mode, dst) {
            (RenameMode::NoReplace, Some(_)) => return Err(Errno::EEXIST),
            (RenameMode::Exchange, None) => return Err(Errno::ENOENT),
            _ => {}
        }
        if mode == RenameMode::Exchange {
            let dst = dst.ok_or(Errno::ENOENT)?;
            if self.get(dst)?.is_dir() && self.is_ancestor(dst, parent) {
                return Err(Errno::EINVAL);
            }
            self.dir_entries_mut(parent)?.insert(name.to_owned(), dst);
            self.dir_entries_mut(new_parent)?
                .insert(new_name.to_owned(), src);
            self.set_primary_name(src, new_parent, new_name)?;
            self.set_primary_name(dst, parent, name)?;
            let dst_is_dir = self.get(dst)?.is_dir();
            if parent != new_parent && src_is_dir != dst_is_dir {
                let (gains, loses) = if src_is_dir {
                    (new_parent, parent)
                } else {
                    (parent, new_parent)
                };
                self.get_mut(gains)?.nlink += 1;
                self.get_mut(loses)?.nlink -= 1;
            }
            return Ok(());
        }
        if let Some(dst) = dst {
            if dst == src {
                // Two links to one inode: POSIX says do nothing.
                return Ok(());
            }
            let dst_is_dir = self.get(dst)?.is_dir();
            match (src_is_dir, dst_is_dir) {
                (false, true) => return Err(Errno::EISDIR),
                (true, false) => return Err(Errno::ENOTDIR),
                (true, true) if !self.dir_entries(dst)?.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
            self.dir_entries_mut(new_parent)?.remove(new_name);
            if dst_is_dir {
                self.get_mut(new_parent)?.nlink -= 1;
            }
            self.drop_link(dst)?;
        }
        self.dir_entries_mut(parent)?.remove(name);
        self.dir_entries_mut(new_parent)?
            .insert(new_name.to_owned(), src);
        if src_is_dir && parent != new_parent {
            self.get_mut(parent)?.nlink -= 1;
            self.get_mut(new_parent)?.nlink += 1;
        }
        self.set_primary_name(src, new_parent, new_name)
    }

    fn set_primary_name(&mut self, ino: u64, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let node = self.get_mut(ino)?;
        node.parent = parent;
        node.name = name.to_owned();
        node.ctime = SystemTime::now();
        Ok(())
    }

    /// The content of a regular file.
    pub fn content(&self, ino: u64) -> Result<&Content, Errno> {
        match &self.get(ino)?.kind {
            NodeKind::File(content) => Ok(content),
            NodeKind::Dir(_) => Err(Errno::EISDIR),
            NodeKind::Symlink(_) => Err(Errno::EINVAL),
        }
    }

    /// Mutable content of a regular file; updates mtime and ctime.
    pub fn content_mut(&mut self, ino: u64) -> Result<&mut Content, Errno> {
        let now = SystemTime::now();
        let node = self.get_mut(ino)?;
        node.mtime = now;
        node.ctime = now;
        match &mut node.kind {
            NodeKind::File(content) => Ok(content),
            NodeKind::Dir(_) => Err(Errno::EISDIR),
            NodeKind::Symlink(_) => Err(Errno::EINVAL),
        }
    }

    /// Reads from a regular file.
    pub fn read(&self, ino: u64, offset: u64, len: usize) -> Result<Vec<u8>, Errno> {
        Ok(self.content(ino)?.read(offset, len))
    }

    /// Writes to a regular file, returning the byte count written.
    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        self.content_mut(ino)?.write(offset, data);
        Ok(data.len())
    }

    /// Truncates or extends a regular file.
    pub fn truncate(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        self.content_mut(ino)?.truncate(size);
        Ok(())
    }

    /// Changes permission bits.
    pub fn chmod(&mut self, ino: u64, mode: u32) -> Result<(), Errno> {
        let node = self.get_mut(ino)?;
        node.perm = (mode & 0o7777) as u16;
        node.ctime = SystemTime::now();
        Ok(())
    }

    /// Changes owner and/or group.
    pub fn chown(&mut self, ino: u64, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
        let node = self.get_mut(ino)?;
        if let Some(uid) = uid {
            node.uid = uid;
        }
        if let Some(gid) = gid {
            node.gid = gid;
        }
        node.ctime = SystemTime::now();
        Ok(())
    }

    /// Sets access and/or modification time.
    pub fn set_times(
        &mut self,
        ino: u64,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Result<(), Errno> {
        let node = self.get_mut(ino)?;
        if let Some(atime) = atime {
            node.atime = atime;
        }
        if let Some(mtime) = mtime {
            node.mtime = mtime;
        }
        node.ctime = SystemTime::now();
        Ok(())
    }

    /// Reads a symlink's target.
    pub fn readlink(&self, ino: u64) -> Result<OsString, Errno> {
        match &self.get(ino)?.kind {
            NodeKind::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Entries of a directory, `.` and `..` first, as (ino, is_dir, name).
    pub fn readdir(&self, ino: u64) -> Result<Vec<(u64, &Inode, OsString)>, Errno> {
        let entries = self.dir_entries(ino)?;
        let this = self.get(ino)?;
        let parent = self.get(this.parent)?;
        let mut out = vec![
            (ino, this, OsString::from(".")),
            (this.parent, parent, OsString::from("..")),
        ];
        for (name, child) in entries {
            out.push((*child, self.get(*child)?, name.clone()));
        }
        Ok(out)
    }

    /// Sets an extended attribute (`XATTR_CREATE` / `XATTR_REPLACE` honoured).
    pub fn setxattr(
        &mut self,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<(), Errno> {
        let node = self.get_mut(ino)?;
        if name == ACL_ACCESS {
            if let Some((perm, minimal)) = acl_mode(value) {
                // As on a disk fs, an access ACL sets the mode's rwx bits; one
                // that says no more than the mode is not kept (coreutils
                // "chmods" this way: ls would otherwise show a `+`).
                node.perm = (node.perm & !0o777) | perm;
                node.ctime = SystemTime::now();
                if minimal {
                    node.xattrs.remove(name);
                    return Ok(());
                }
            }
        }
        let exists = node.xattrs.contains_key(name);
        if flags & libc::XATTR_CREATE != 0 && exists {
            return Err(Errno::EEXIST);
        }
        if flags & libc::XATTR_REPLACE != 0 && !exists {
            return Err(Errno::NO_XATTR);
        }
        node.xattrs.insert(name.to_owned(), value.to_vec());
        node.ctime = SystemTime::now();
        Ok(())
    }

    /// Reads an extended attribute.
    pub fn getxattr(&self, ino: u64, name: &OsStr) -> Result<Vec<u8>, Errno> {
        self.get(ino)?
            .xattrs
            .get(name)
            .cloned()
            .ok_or(Errno::NO_XATTR)
    }

    /// Names of all extended attributes, each NUL-terminated, as listxattr returns them.
    pub fn listxattr(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        for name in self.get(ino)?.xattrs.keys() {
            out.extend_from_slice(name.as_encoded_bytes());
            out.push(0);
        }
        Ok(out)
    }

    /// Removes an extended attribute.
    pub fn removexattr(&mut self, ino: u64, name: &OsStr) -> Result<(), Errno> {
        let node = self.get_mut(ino)?;
        node.xattrs.remove(name).ok_or(Errno::NO_XATTR)?;
        node.ctime = SystemTime::now();
        Ok(())
    }

    /// Inodes that differ between this tree and `other`, or that only one
    /// of them holds, in number order: what the kernel may cache wrongly once
    /// one tree replaces the other. Cheap between snapshots (shared inodes).
    pub fn changed_inodes(&self, other: &Tree) -> Vec<InodeChange> {
        let mut changed: Vec<InodeChange> = self
            .inodes
            .iter()
            .filter_map(|(ino, node)| match other.inodes.get(ino) {
                Some(o) if Arc::ptr_eq(node, o) => None,
                // Cached pages stay right only where the very chunks stay.
                Some(o) => Some(InodeChange {
                    ino: *ino,
                    data: !matches!((&node.kind, &o.kind),
                        (NodeKind::File(a), NodeKind::File(b)) if a.shares_chunks_with(b)),
                }),
                None => Some(InodeChange {
                    ino: *ino,
                    data: true,
                }),
            })
            .chain(
                other
                    .inodes
                    .keys()
                    .filter(|ino| !self.inodes.contains_key(ino))
                    .map(|ino| InodeChange {
                        ino: *ino,
                        data: true,
                    }),
            )
            .collect();
        changed.sort_unstable_by_key(|change| change.ino);
        changed
    }

    /// True when `other` holds the same inodes with the same names, bytes,
    /// modes, owners, link counts and xattrs: what any program would find in
    /// either. Timestamps are not compared.
    pub fn same_state(&self, other: &Tree) -> bool {
        self.inodes.len() == other.inodes.len()
            && self.inodes.iter().all(|(ino, node)| {
                other.inodes.get(ino).is_some_and(|o| {
                    Arc::ptr_eq(node, o)
                        || (node.kind == o.kind
                            && node.perm == o.perm
                            && node.uid == o.uid
                            && node.gid == o.gid
                            && node.nlink == o.nlink
                            && node.xattrs == o.xattrs)
                })
            })
    }

    /// Every inode held.
    pub fn inodes(&self) -> impl Iterator<Item = &Inode> {
        self.inodes.values().map(|node| &**node)
    }

    /// A shared reference to an inode, for durability bookkeeping.
    pub fn inode(&self, ino: u64) -> Option<Arc<Inode>> {
        self.inodes.get(&ino).cloned()
    }

    /// Puts an inode (as it was at some earlier moment) into the tree.
    pub fn put_inode(&mut self, node: Arc<Inode>) {
        self.next_ino = self.next_ino.max(node.ino + 1);
        self.inodes.insert(node.ino, node);
    }

    /// A directory's entries.
    pub fn entries(&self, dir: u64) -> Result<&BTreeMap<OsString, u64>, Errno> {
        self.dir_entries(dir)
    }

    /// Replaces a directory's entries (a durable state being rebuilt).
    pub fn set_entries(&mut self, dir: u64, entries: BTreeMap<OsString, u64>) {
        if let Ok(node) = self.get_mut(dir) {
            if let NodeKind::Dir(old) = &mut node.kind {
                *old = entries;
            }
        }
    }

    /// Sets every link count from the entries that name each inode (a
    /// directory: 2 plus its subdirectories), as a durable state rebuilt
    /// from entries and inodes of different moments must have them: a
    /// link's entry reaches the disk with the count it changed, as in a
    /// journal. Counts only change where they differ, so untouched inodes
    /// stay shared.
    pub fn recount_links(&mut self) {
        let mut counts: HashMap<u64, u32> = HashMap::new();
        for node in self.inodes.values() {
            if let NodeKind::Dir(entries) = &node.kind {
                for ino in entries.values() {
                    *counts.entry(*ino).or_default() += 1;
                }
            }
        }
        let inos: Vec<u64> = self.inodes.keys().copied().collect();
        for ino in inos {
            let node = &self.inodes[&ino];
            let named = counts.get(&ino).copied().unwrap_or(0);
            let nlink = match &node.kind {
                NodeKind::Dir(entries) => {
                    let subdirs = entries
                        .values()
                        .filter(|child| self.inodes.get(child).is_some_and(|c| c.is_dir()))
                        .count() as u32;
                    2 + subdirs
                }
                _ => named,
            };
            if node.nlink != nlink {
                if let Ok(node) = self.get_mut(ino) {
                    node.nlink = nlink;
                }
            }
        }
    }

    /// Drops every inode that no directory reaches from the root, as a
    /// reboot finds a durable state rebuilt from entries of different
    /// moments: a removed directory's last synced entries name nothing.
    pub fn drop_unreachable(&mut self) {
        let mut reachable = std::collections::HashSet::from([ROOT_INO]);
        let mut next = vec![ROOT_INO];
        while let Some(dir) = next.pop() {
            if let Some(NodeKind::Dir(entries)) = self.inodes.get(&dir).map(|node| &node.kind) {
                for child in entries.values() {
                    if self.inodes.contains_key(child) && reachable.insert(*child) {
                        next.push(*child);
                    }
                }
            }
        }
        self.inodes.retain(|ino, _| reachable.contains(ino));
    }

    /// Replaces a file's content (a durable state being rebuilt).
    pub fn set_content(&mut self, ino: u64, content: Content) {
        if let Ok(node) = self.get_mut(ino) {
            if let NodeKind::File(old) = &mut node.kind {
                *old = content;
            }
        }
    }

    /// Number of inodes held (linked or still referenced).
    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    /// Total bytes of file content, for statfs.
    pub fn bytes_used(&self) -> u64 {
        self.inodes
            .values()
            .map(|node| match &node.kind {
                NodeKind::File(content) => content.len(),
                _ => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests;
