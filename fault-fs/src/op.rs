//! Ops and the trace: what the program under test asked of the file system.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fault::{errno_name, Fault};

/// Bits of [`OpRecord::flags`] for setattr: which attributes were set.
pub const SETATTR_SIZE: u32 = 1;
/// setattr changed the mode.
pub const SETATTR_MODE: u32 = 2;
/// setattr changed the owner or group.
pub const SETATTR_OWNER: u32 = 4;
/// setattr changed times.
pub const SETATTR_TIMES: u32 = 8;

/// The kind of one FUSE request, named as the trace and fault specs spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum OpKind {
    /// Name lookup in a directory.
    Lookup,
    /// Attribute read (`stat`).
    Getattr,
    /// Attribute change: chmod, chown, truncate, utimes.
    Setattr,
    /// Open of an existing file.
    Open,
    /// Create-and-open of a new file.
    Create,
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// `close` of one descriptor.
    Flush,
    /// Last close of an open file.
    Release,
    /// `fsync` of a file.
    Fsync,
    /// `fdatasync` of a file.
    Fdatasync,
    /// `fsync` of a directory.
    Fsyncdir,
    /// Directory creation.
    Mkdir,
    /// Directory removal.
    Rmdir,
    /// Removal of a name.
    Unlink,
    /// Rename (any flags).
    Rename,
    /// Hard link.
    Link,
    /// Symlink creation.
    Symlink,
    /// Symlink read.
    Readlink,
    /// Node creation without open (`mknod`).
    Mknod,
    /// Directory open.
    Opendir,
    /// Directory listing.
    Readdir,
    /// Last close of a directory.
    Releasedir,
    /// File system statistics.
    Statfs,
    /// Permission check.
    Access,
    /// Extended attribute write.
    Setxattr,
    /// Extended attribute read.
    Getxattr,
    /// Extended attribute listing.
    Listxattr,
    /// Extended attribute removal.
    Removexattr,
    /// Space allocation.
    Fallocate,
    /// In-kernel copy between two files of the mount.
    CopyFileRange,
    /// `lseek` with SEEK_DATA / SEEK_HOLE.
    Lseek,
    /// `sync(2)`, or `syncfs(2)` of this file system: FUSE never sees
    /// either; the strategy's sandbox hands them over (see
    /// [`crate::FaultFsHandle::sync`]).
    Sync,
}

impl OpKind {
    /// Every kind, in declaration order.
    pub const ALL: [OpKind; 33] = [
        OpKind::Lookup,
        OpKind::Getattr,
        OpKind::Setattr,
        OpKind::Open,
        OpKind::Create,
        OpKind::Read,
        OpKind::Write,
        OpKind::Flush,
        OpKind::Release,
        OpKind::Fsync,
        OpKind::Fdatasync,
        OpKind::Fsyncdir,
        OpKind::Mkdir,
        OpKind::Rmdir,
        OpKind::Unlink,
        OpKind::Rename,
        OpKind::Link,
        OpKind::Symlink,
        OpKind::Readlink,
        OpKind::Mknod,
        OpKind::Opendir,
        OpKind::Readdir,
        OpKind::Releasedir,
        OpKind::Statfs,
        OpKind::Access,
        OpKind::Setxattr,
        OpKind::Getxattr,
        OpKind::Listxattr,
        OpKind::Removexattr,
        OpKind::Fallocate,
        OpKind::CopyFileRange,
        OpKind::Lseek,
        OpKind::Sync,
    ];

    /// The name used in traces and fault specs.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Lookup => "lookup",
            OpKind::Getattr => "getattr",
            OpKind::Setattr => "setattr",
            OpKind::Open => "open",
            OpKind::Create => "create",
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Flush => "flush",
            OpKind::Release => "release",
            OpKind::Fsync => "fsync",
            OpKind::Fdatasync => "fdatasync",
            OpKind::Fsyncdir => "fsyncdir",
            OpKind::Mkdir => "mkdir",
            OpKind::Rmdir => "rmdir",
            OpKind::Unlink => "unlink",
            OpKind::Rename => "rename",
            OpKind::Link => "link",
            OpKind::Symlink => "symlink",
            OpKind::Readlink => "readlink",
            OpKind::Mknod => "mknod",
            OpKind::Opendir => "opendir",
            OpKind::Readdir => "readdir",
            OpKind::Releasedir => "releasedir",
            OpKind::Statfs => "statfs",
            OpKind::Access => "access",
            OpKind::Setxattr => "setxattr",
            OpKind::Getxattr => "getxattr",
            OpKind::Listxattr => "listxattr",
            OpKind::Removexattr => "removexattr",
            OpKind::Fallocate => "fallocate",
            OpKind::CopyFileRange => "copy_file_range",
            OpKind::Lseek => "lseek",
            OpKind::Sync => "sync",
        }
    }

    /// True for ops that change directory entries. The kernel holds the
    /// directory's lock while one is in flight.
    pub fn is_namespace(self) -> bool {
        matches!(
            self,
            OpKind::Create
                | OpKind::Mknod
                | OpKind::Mkdir
                | OpKind::Rmdir
                | OpKind::Unlink
                | OpKind::Rename
                | OpKind::Link
                | OpKind::Symlink
        )
    }

    /// True for ops that change the tree: the ones whose interruption matters.
    pub fn is_mutating(self) -> bool {
        self.is_namespace()
            || self.is_sync()
            || matches!(
                self,
                OpKind::Setattr
                    | OpKind::Write
                    | OpKind::Setxattr
                    | OpKind::Removexattr
                    | OpKind::Fallocate
                    | OpKind::CopyFileRange
            )
    }

    /// True for the durability barriers: fsync, fdatasync, fsyncdir, sync.
    pub fn is_sync(self) -> bool {
        matches!(
            self,
            OpKind::Fsync | OpKind::Fdatasync | OpKind::Fsyncdir | OpKind::Sync
        )
    }

    /// Whether the op may need new space (blocks, an inode, a directory
    /// entry, an xattr block): what a full disk or quota refuses.
    pub fn needs_space(self) -> bool {
        matches!(
            self,
            OpKind::Write
                | OpKind::CopyFileRange
                | OpKind::Create
                | OpKind::Mknod
                | OpKind::Mkdir
                | OpKind::Symlink
                | OpKind::Link
                | OpKind::Fallocate
                | OpKind::Setxattr
        )
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for OpKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for OpKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An op kind name that is not one of [`OpKind::ALL`]: the hint names the
/// nearest kind when one is a slip away (`wrte`: `write`), else them all.
#[derive(Debug, thiserror::Error)]
#[error("unknown op kind `{0}` (hint: {hint})", hint = kind_hint(&self.0))]
pub struct UnknownOpKind(pub String);

/// `did you mean `write`?` for a name at most two edits from one kind,
/// else the list of every kind.
fn kind_hint(name: &str) -> String {
    let nearest = OpKind::ALL
        .into_iter()
        .map(|kind| (edits(name, kind.name()), kind.name()))
        .min();
    match nearest {
        Some((distance, kind)) if distance <= 2 => format!("did you mean `{kind}`?"),
        _ => format!("one of {}", OpKind::ALL.map(OpKind::name).join(", ")),
    }
}

/// The Levenshtein distance between two names.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

impl FromStr for OpKind {
    type Err = UnknownOpKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OpKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| UnknownOpKind(s.to_owned()))
    }
}

/// An op named by kind and order among the strategy's ops, `write#3`, or
/// by its place after the last op that could change the tree, `rename#3+1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpName {
    /// The op kind (of the op it is counted from, for `rename#3+1`).
    pub kind: OpKind,
    /// Its order among the ops of that kind, from 1.
    pub nth: u64,
    /// This many ops after that one, of any kind (0: that op itself).
    pub after: u64,
}

impl OpName {
    /// The Nth op of `kind`.
    pub fn new(kind: OpKind, nth: u64) -> Self {
        OpName {
            kind,
            nth,
            after: 0,
        }
    }

    /// Names every op of `trace` (in order). An op of a kind that can
    /// change the tree is named by its kind and order (`rename#3`); any
    /// other op after one of those by how many ops after the last of them
    /// it came (`rename#3+1`, releases not counted: no fault lands on
    /// them). A multi-process tool's reads interleave differently from run
    /// to run (rsync's sender and generator read while its receiver
    /// writes), so `getattr#70` is another op in the next run; its writes
    /// keep their order, and the op after one of them sees the same tree.
    pub fn all<'a>(trace: impl IntoIterator<Item = &'a OpRecord>) -> Vec<OpName> {
        let mut namer = Namer::default();
        trace.into_iter().map(|op| namer.name(op.kind)).collect()
    }

    /// Whether the name finds the same op on every run: an op that can
    /// change the tree, or one counted from such an op.
    pub fn is_stable(&self) -> bool {
        self.kind.is_mutating()
    }
}

impl fmt::Display for OpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.kind, self.nth)?;
        if self.after > 0 {
            write!(f, "+{}", self.after)?;
        }
        Ok(())
    }
}

impl FromStr for OpName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, nth) = s
            .split_once('#')
            .ok_or_else(|| format!("`{s}` has no `#N`"))?;
        let kind: OpKind = kind.parse().map_err(|e: UnknownOpKind| e.to_string())?;
        let (nth, after) = match nth.split_once('+') {
            Some((nth, after)) => (nth, parse_after(after)?),
            None => (nth, 0),
        };
        Ok(OpName {
            kind,
            nth: parse_nth(nth)?,
            after,
        })
    }
}

/// Names ops as they come, as [`OpName::all`] names a trace: fault-fs
/// stamps each op's [`OpRecord::name`] with the namer of its run.
#[derive(Clone, Debug, Default)]
pub struct Namer {
    counts: HashMap<OpKind, u64>,
    last_change: Option<OpName>,
}

impl Namer {
    /// The name of the next op, of `kind`. An op of a kind that can change
    /// the tree is named by its kind and order (`rename#3`); any other op
    /// after one of those by how many ops after the last of them it came
    /// (`rename#3+1`), releases not counted: no fault lands on them.
    pub fn name(&mut self, kind: OpKind) -> OpName {
        let nth = self.counts.entry(kind).or_default();
        *nth += 1;
        let own = OpName::new(kind, *nth);
        if kind.is_mutating() {
            self.last_change = Some(own);
            return own;
        }
        match &mut self.last_change {
            Some(change) if kind != OpKind::Release => {
                change.after += 1;
                *change
            }
            _ => own,
        }
    }
}

/// The N of `#N`: which match of a rule, which op of a kind, from 1.
pub(crate) fn parse_nth(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(nth) if nth >= 1 => Ok(nth),
        _ => Err(format!("`#{text}`: N must be a number from 1")),
    }
}

/// The K of `+K`: how many ops after a match, from 1.
pub(crate) fn parse_after(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(after) if after >= 1 => Ok(after),
        _ => Err(format!("`+{text}`: K must be a number from 1")),
    }
}

/// A string shared between trace records (paths and command names repeat a
/// lot): one thin pointer per record, so a record stays under 100 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shared(Arc<Box<str>>);

impl Shared {
    fn new(s: &str) -> Self {
        Shared(Arc::new(Box::from(s)))
    }
}

impl std::ops::Deref for Shared {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Shared {
    fn from(s: &str) -> Self {
        Shared::new(s)
    }
}

impl PartialEq<str> for Shared {
    fn eq(&self, other: &str) -> bool {
        **self == *other
    }
}

impl PartialEq<&str> for Shared {
    fn eq(&self, other: &&str) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl Serialize for Shared {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self)
    }
}

impl<'de> Deserialize<'de> for Shared {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Shared::new(&String::deserialize(deserializer)?))
    }
}

impl Serialize for OpName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OpName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One traced op. Kept small: the trace of a large copy holds many of these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRecord {
    /// Sequence number within the mount, from 1.
    pub seq: u64,
    /// Calling process.
    pub pid: u32,
    /// Process group of the caller (0 when unknown).
    pub pgid: u32,
    /// Command name of the caller (`/proc/PID/comm`).
    pub comm: Shared,
    /// What was asked.
    pub kind: OpKind,
    /// Its name in its run (`write#3`, `rename#1+2`): stamped once, as it
    /// came, so a crash point names the op the same way everywhere.
    pub name: OpName,
    /// Inode the op acts on (the parent directory for name ops).
    pub ino: u64,
    /// Path of the file or entry acted on.
    pub path: Shared,
    /// Second path: the destination of rename and link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path2: Option<Shared>,
    /// Byte offset (read, write, fallocate, lseek) or new size (truncate).
    pub offset: u64,
    /// Byte count (read, write, copy) or 0.
    pub len: u64,
    /// Open flags, rename flags or setattr mask, by op.
    pub flags: u32,
    /// 0 for success, else the errno returned.
    pub errno: i32,
    /// Fault applied to this op, if any (an `Arc`: the copies of the record
    /// that a stall and the trace keep share it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Arc<Fault>>,
    /// The scope the op was in ([`crate::FaultFsHandle::set_scope`]'s
    /// number), 0 for an op of no scope.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scope: u32,
    /// A write the kernel sent on its own (`pid` 0) to write back pages
    /// dirtied through a shared mapping, attributed to the process that
    /// opened the file for writing (its `pid`, `pgid` and `comm` above).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub writeback: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl OpRecord {
    /// A record of one op of `kind`, named as the first of its kind, with
    /// every other field empty: what tests and hand-built observations
    /// start from.
    pub fn blank(kind: OpKind) -> Self {
        OpRecord {
            seq: 0,
            pid: 0,
            pgid: 0,
            comm: Shared::from(""),
            kind,
            name: OpName::new(kind, 1),
            ino: 0,
            path: Shared::from(""),
            path2: None,
            offset: 0,
            len: 0,
            flags: 0,
            errno: 0,
            fault: None,
            scope: 0,
            writeback: false,
        }
    }

    /// Whether the open or create carried `O_TRUNC`.
    pub fn truncates(&self) -> bool {
        matches!(self.kind, OpKind::Open | OpKind::Create) && self.flags as i32 & libc::O_TRUNC != 0
    }

    /// Whether the op can change what is stored: a mutating kind, or an open
    /// with `O_TRUNC`.
    pub fn is_mutating(&self) -> bool {
        self.kind.is_mutating() || self.truncates()
    }

    /// Whether the create carried `O_EXCL`.
    pub fn exclusive(&self) -> bool {
        self.kind == OpKind::Create && self.flags as i32 & libc::O_EXCL != 0
    }
}

impl fmt::Display for OpRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {} {}", self.seq, self.kind, self.path)?;
        if let Some(path2) = &self.path2 {
            write!(f, " -> {path2}")?;
        }
        match self.kind {
            OpKind::Read | OpKind::Write | OpKind::CopyFileRange => {
                write!(f, " @{} +{}", self.offset, self.len)?
            }
            OpKind::Open | OpKind::Create => {
                for (flag, name) in [
                    (libc::O_TRUNC, "O_TRUNC"),
                    (libc::O_EXCL, "O_EXCL"),
                    (libc::O_APPEND, "O_APPEND"),
                ] {
                    if self.flags as i32 & flag != 0 {
                        write!(f, " {name}")?;
                    }
                }
            }
            OpKind::Setattr if self.flags & SETATTR_SIZE != 0 => {
                write!(f, " size={}", self.offset)?
            }
            _ => {}
        }
        let by = if self.writeback { ", writeback" } else { "" };
        write!(f, " [{} pid {}{by}]", self.comm, self.pid)?;
        if self.errno != 0 {
            write!(f, " = {}", errno_name(self.errno))?;
        }
        if let Some(fault) = &self.fault {
            write!(f, " (fault {fault})")?;
        }
        Ok(())
    }
}

/// The ordered list of ops a mount has seen, with interned strings.
#[derive(Debug, Default)]
pub struct Trace {
    records: Vec<OpRecord>,
    strings: HashMap<Box<str>, Shared>,
}

impl Trace {
    /// Interns a string, so repeated paths cost one pointer per record.
    pub fn intern(&mut self, s: &str) -> Shared {
        if let Some(shared) = self.strings.get(s) {
            return shared.clone();
        }
        let shared = Shared::new(s);
        self.strings.insert(Box::from(s), shared.clone());
        shared
    }

    /// Appends a record.
    pub fn push(&mut self, record: OpRecord) {
        self.records.push(record);
    }

    /// Sets the result of the record with sequence number `seq`, if kept.
    pub fn set_result(&mut self, seq: u64, errno: i32) {
        // Records are appended in seq order (under the state lock), though
        // some may have been taken or not kept.
        if let Ok(index) = self.records.binary_search_by_key(&seq, |r| r.seq) {
            self.records[index].errno = errno;
        }
    }

    /// All records, in order.
    pub fn records(&self) -> &[OpRecord] {
        &self.records
    }

    /// Removes and returns all records (interned strings are kept).
    pub fn take(&mut self) -> Vec<OpRecord> {
        std::mem::take(&mut self.records)
    }

    /// Writes the records as JSON Lines.
    pub fn write_json_lines(
        records: &[OpRecord],
        mut out: impl std::io::Write,
    ) -> std::io::Result<()> {
        for record in records {
            serde_json::to_writer(&mut out, record)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_record_stays_within_112_bytes() {
        // Paths and names are interned: each record holds thin pointers only.
        assert!(
            std::mem::size_of::<OpRecord>() <= 112,
            "{}",
            std::mem::size_of::<OpRecord>()
        );
    }

    #[test]
    fn ops_are_named_by_kind_and_order() {
        let op = |kind| OpRecord {
            kind,
            ..OpRecord::blank(OpKind::Lookup)
        };
        let trace = [
            op(OpKind::Getattr),
            op(OpKind::Write),
            op(OpKind::Rename),
            op(OpKind::Getattr),
            op(OpKind::Release),
            op(OpKind::Lookup),
            op(OpKind::Write),
        ];
        let names: Vec<String> = OpName::all(&trace).iter().map(|n| n.to_string()).collect();
        assert_eq!(
            names,
            [
                "getattr#1",
                "write#1",
                "rename#1",
                "rename#1+1",
                "release#1",
                "rename#1+2",
                "write#2"
            ]
        );
        let stable: Vec<bool> = OpName::all(&trace).iter().map(|n| n.is_stable()).collect();
        assert_eq!(stable, [false, true, true, true, false, true, true]);
        for name in &names {
            assert_eq!(name.parse::<OpName>().unwrap().to_string(), *name);
        }
    }

    #[test]
    fn interned_strings_are_shared() {
        let mut trace = Trace::default();
        let a = trace.intern("/app/libcanary.so");
        let b = trace.intern("/app/libcanary.so");
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, "/app/libcanary.so");
    }
}
