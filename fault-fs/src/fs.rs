//! The FUSE side: a thin [`fuser::Filesystem`] over the [`Tree`], with every
//! request numbered, traced and run through the [`FaultPlan`].
//!
//! Each handler describes its op, asks [`FaultFs::gate`] what the plan says,
//! and hands [`FaultFs::run`] a closure that applies the op to the tree and one
//! that answers the kernel. Stalled ops park both closures on a thread of their
//! own, so the session keeps serving the probes that look at the target
//! meanwhile.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::fault::DEFAULT_STALL_DEADLINE;
use crate::op::{Namer, OpKind, OpRecord, Shared, Trace};
use crate::persistence::{Cut, Durability, PersistenceModel};
use crate::plan::{Decision, OpContext, PlanState};
use crate::proc::{proc_info, signal_namespace, Caller};
use crate::rule::FaultPlan;
use crate::signing::{CodeSigning, SignatureKill, FMODE_EXEC};
use crate::tree::{InodeChange, NewNode, NodeKind, RenameMode, Tree, ROOT_INO};

/// No kernel caching of entries or attributes: every lookup reaches the
/// daemon, so faults see every op and a reset tree is never masked by stale
/// kernel state.
const TTL: Duration = Duration::ZERO;

/// Largest write request the kernel may send (its own cap is 1 MiB).
const MAX_WRITE: u32 = 1024 * 1024;

use crate::op::{SETATTR_MODE, SETATTR_OWNER, SETATTR_SIZE, SETATTR_TIMES};

/// An open file.
#[derive(Debug, Clone)]
struct Handle {
    ino: u64,
    append: bool,
    /// Who opened it for writing (`None`: opened read-only). The kernel
    /// writes back pages dirtied through a shared mapping as pid 0, on a
    /// handle that is open for writing: those writes are this process's.
    writer: Option<Who>,
}

/// Who an op is traced, scoped and signalled as.
#[derive(Debug, Clone)]
struct Who {
    pid: u32,
    caller: Caller,
    /// A writeback write, on this handle (see [`Handle::writer`]).
    writeback: Option<u64>,
}

/// Everything behind the one lock: the tree, the trace and the plan's state.
#[derive(Debug)]
struct State {
    tree: Tree,
    trace: Trace,
    next_seq: u64,
    /// The plan in force and what it has counted: it decides every op.
    plan: PlanState,
    /// Whose ops are faulted and counted.
    scope: Scope,
    /// Numbers each scope set, so records say which run they belong to.
    scope_id: u32,
    /// Names the ops of the scope's run, as they come.
    names_in_scope: Namer,
    /// Names the other ops (out of scope), apart.
    names_outside: Namer,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    /// What a power cut would leave, per model.
    durable: Durability,
    /// The durable state of a power cut that fired, until taken.
    power_cut: Option<PowerCut>,
    /// Keep op records (on by default; off only to measure what they cost).
    keep_trace: bool,
    /// While recording: what a power cut right after each op in scope that
    /// changes the tree would leave, under each model, in op order.
    durable_log: Option<Vec<PowerCut>>,
    /// The macOS code-signing model, where in force.
    signing: Option<CodeSigning>,
}

impl State {
    /// Writes `data` into file `ino` at `offset`: every op that changes
    /// file data goes through here, so the durability bookkeeping sees it.
    /// The unsynced writes (a copy of the bytes, the file before the last
    /// one) are kept only while something may cut the power or lose them:
    /// a power-cut rule in the plan, one that may fail a sync, or the
    /// recording's durable log.
    fn write_data(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        if let Some(signing) = self.signing.as_mut().filter(|s| s.is_running(ino)) {
            let content = self.tree.content(ino)?;
            // A write of the bytes already there changes no page.
            let same = offset + data.len() as u64 <= content.len()
                && content.read(offset, data.len()) == data;
            if !same {
                signing.changed(ino);
            }
        }
        let keep = self.durable_log.is_some() || self.plan.keeps_unsynced_writes();
        if !keep {
            return self.tree.write(ino, offset, data);
        }
        let before = self.tree.content(ino)?.clone();
        let written = self.tree.write(ino, offset, data)?;
        self.durable.on_write(ino, offset, &data[..written], before);
        Ok(written)
    }

    /// Sets the length of file `ino`: every op that truncates or extends a
    /// file goes through here, as writes go through [`State::write_data`].
    fn truncate(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        let before = self.tree.content(ino)?.len();
        self.tree.truncate(ino, size)?;
        self.durable.on_truncate(ino, size);
        if let (Some(signing), true) = (self.signing.as_mut(), size != before) {
            signing.changed(ino);
        }
        Ok(())
    }
}

/// The state a power-cut fault left: what a reboot would find.
#[derive(Debug, Clone)]
pub struct PowerCut {
    /// The op after which the power went.
    pub seq: u64,
    /// The persistence model and the writeback applied.
    pub cut: Cut,
    /// The durable tree.
    pub tree: Tree,
}

/// A parked op waiting for release.
#[derive(Debug)]
struct StallGate {
    record: OpRecord,
    released: Mutex<bool>,
    wake: Condvar,
}

impl StallGate {
    fn release(&self) {
        *lock(&self.released) = true;
        self.wake.notify_all();
    }

    /// Waits until released or until `deadline`.
    fn wait(&self, deadline: Instant) {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let _ = self
            .wake
            .wait_timeout_while(lock(&self.released), timeout, |released| !*released);
    }
}

#[derive(Debug, Default)]
struct Stalls {
    parked: Mutex<Vec<Arc<StallGate>>>,
    changed: Condvar,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    stalls: Stalls,
    /// Tells the kernel to drop cached pages and attributes, one channel
    /// per mount (keyed by the mount's root); set while mounted.
    notifier: Mutex<Vec<(u64, fuser::Notifier)>>,
    /// pid -> what scoping needs of it, read once from /proc.
    procs: Mutex<HashMap<u32, Caller>>,
    own_pgid: u32,
    own_pid: u32,
}

/// Locks a mutex, recovering from poisoning: a FUSE handler must never panic,
/// and the state stays consistent because every change is applied whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The file system: hand it to [`crate::FaultMount`]; keep a [`FaultFsHandle`]
/// to watch and steer it.
#[derive(Debug, Clone)]
pub struct FaultFs {
    inner: Arc<Inner>,
    /// The tree's directory this mount shows as its root: the tree's root,
    /// or another directory for a [`FaultFs::view`].
    root: u64,
}

/// A handle to a mounted [`FaultFs`]: trace, plan, stalls and snapshots.
#[derive(Debug, Clone)]
pub struct FaultFsHandle {
    inner: Arc<Inner>,
}

/// Where an op acts: an inode, or a name in a directory.
#[derive(Clone, Copy)]
enum At<'a> {
    Ino(u64),
    Entry(u64, &'a OsStr),
}

/// One op on its way through [`FaultFs::run`].
struct Gate {
    seq: u64,
    pid: u32,
    pgid: u32,
    /// The scope the op was in when it came.
    scope: Scope,
    /// What the plan decided.
    decision: Decision,
    /// Where a stalled or held op waits (with its deadline).
    stall: Option<(Arc<StallGate>, Instant)>,
    /// Log the durable states after this op (see [`State::durable_log`]).
    log_durable: bool,
    /// A writeback write at which its writer dies: the pages the kernel
    /// holds of it must be dropped (see [`PlanState::decide`]).
    stops_writer: bool,
}

/// Inode numbers between the tree and a mount whose root is the tree's
/// `root`: the kernel calls a mount's root 1, so 1 and `root` trade places
/// (both ways: the map is its own inverse); on the tree's own root it is
/// the identity.
fn swap_root(root: u64, ino: u64) -> u64 {
    match ino {
        FUSE_ROOT => root,
        _ if ino == root => FUSE_ROOT,
        _ => ino,
    }
}

/// The inode number the kernel gives a mount's root.
const FUSE_ROOT: u64 = 1;

fn attr_of(node: &crate::tree::Inode) -> FileAttr {
    let size = node.size();
    let kind = match node.kind {
        NodeKind::File(_) => FileType::RegularFile,
        NodeKind::Dir(_) => FileType::Directory,
        NodeKind::Symlink(_) => FileType::Symlink,
    };
    let blocks = match &node.kind {
        NodeKind::File(content) => content.blocks(),
        _ => size.div_ceil(512),
    };
    FileAttr {
        ino: INodeNo(node.ino),
        size,
        blocks,
        atime: node.atime,
        mtime: node.mtime,
        ctime: node.ctime,
        crtime: node.ctime,
        kind,
        perm: node.perm,
        nlink: node.nlink,
        uid: node.uid,
        gid: node.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn time_of(time: TimeOrNow) -> SystemTime {
    match time {
        TimeOrNow::SpecificTime(time) => time,
        TimeOrNow::Now => SystemTime::now(),
    }
}

/// Which processes' ops are the program's under test: traced as such,
/// counted for the plan and faulted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every process.
    #[default]
    All,
    /// The processes of one process group.
    ProcessGroup(u32),
    /// Every process of one PID namespace (named by its inode), whatever
    /// group it is in; `init` is the namespace's first process as this
    /// process sees it, a supervisor that a kill fault spares: every other
    /// process descends from it.
    PidNamespace {
        /// The namespace's inode (`/proc/PID/ns/pid`).
        ns: u64,
        /// Its init's pid.
        init: u32,
    },
}

impl Default for FaultFs {
    fn default() -> Self {
        Self::new(Tree::new(), FaultPlan::default())
    }
}

impl FaultFs {
    /// A file system over `tree` with `plan` in force.
    pub fn new(tree: Tree, plan: FaultPlan) -> Self {
        let state = State {
            durable: Durability::new(tree.clone()),
            power_cut: None,
            keep_trace: true,
            durable_log: None,
            signing: None,
            tree,
            trace: Trace::default(),
            next_seq: 1,
            plan: PlanState::new(plan),
            scope: Scope::All,
            scope_id: 0,
            names_in_scope: Namer::default(),
            names_outside: Namer::default(),
            handles: HashMap::new(),
            next_fh: 1,
        };
        FaultFs {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                stalls: Stalls::default(),
                notifier: Mutex::new(Vec::new()),
                procs: Mutex::new(HashMap::new()),
                own_pgid: nix::unistd::getpgrp().as_raw() as u32,
                own_pid: std::process::id(),
            }),
            root: ROOT_INO,
        }
    }

    /// The same file system (one tree, trace, plan and scope) showing the
    /// directory `dir` as the root of another mount. To the kernel that
    /// mount is another file system: a rename or link between the two fails
    /// with EXDEV, as between the disk and a /tmp of its own.
    pub fn view(&self, dir: u64) -> FaultFs {
        FaultFs {
            inner: self.inner.clone(),
            root: dir,
        }
    }

    /// The directory of the tree this mount shows as its root.
    pub(crate) fn root(&self) -> u64 {
        self.root
    }

    /// The tree's inode for the kernel's `ino` on this mount.
    fn tree_ino(&self, ino: INodeNo) -> INodeNo {
        INodeNo(swap_root(self.root, ino.0))
    }

    /// A handle to watch and steer this file system once mounted.
    pub fn handle(&self) -> FaultFsHandle {
        FaultFsHandle {
            inner: self.inner.clone(),
        }
    }

    /// Whom a write that the kernel sent on its own (pid 0) on handle `fh`
    /// is for: the process that opened it for writing (`None`: the handle is
    /// gone or read-only, and the write is nobody's).
    fn writeback_writer(&self, fh: u64) -> Option<Who> {
        let state = lock(&self.inner.state);
        let writer = state.handles.get(&fh)?.writer.as_ref()?;
        Some(Who {
            writeback: Some(fh),
            ..writer.clone()
        })
    }

    fn caller(&self, pid: u32) -> Caller {
        if let Some(known) = lock(&self.inner.procs).get(&pid) {
            return known.clone();
        }
        match proc_info(pid) {
            Some(known) => {
                lock(&self.inner.procs).insert(pid, known.clone());
                known
            }
            None => Caller {
                pgid: 0,
                pid_ns: Vec::new().into(),
                comm: Shared::from("?"),
            },
        }
    }

    /// The process that sent `req`.
    fn who(&self, req: &Request) -> Who {
        self.who_pid(req.pid())
    }

    /// Process `pid`, as the sender of an op.
    fn who_pid(&self, pid: u32) -> Who {
        Who {
            pid,
            caller: self.caller(pid),
            writeback: None,
        }
    }

    /// Numbers and traces one op, and asks the plan what to do with it.
    fn gate(
        &self,
        req: &Request,
        kind: OpKind,
        at: At<'_>,
        at2: Option<At<'_>>,
        args: (u64, u64, u32),
    ) -> Gate {
        self.gate_as(self.who(req), kind, at, at2, args)
    }

    /// [`Self::gate`] for an op traced as `who`'s.
    fn gate_as(
        &self,
        who: Who,
        kind: OpKind,
        at: At<'_>,
        at2: Option<At<'_>>,
        (offset, len, flags): (u64, u64, u32),
    ) -> Gate {
        let Who {
            pid,
            caller,
            writeback,
        } = who;
        let (pgid, comm) = (caller.pgid, caller.comm.clone());
        let mut state = lock(&self.inner.state);
        let path_of = |state: &State, at: At<'_>| -> String {
            match at {
                At::Ino(ino) => state.tree.path_of(ino),
                At::Entry(parent, name) => {
                    let mut path = state.tree.path_of(parent);
                    if !path.ends_with('/') {
                        path.push('/');
                    }
                    path.push_str(&name.to_string_lossy());
                    path
                }
            }
        };
        let path = path_of(&state, at);
        let path = state.trace.intern(&path);
        let path2 = at2.map(|at2| {
            let p = path_of(&state, at2);
            state.trace.intern(&p)
        });
        let ino = match at {
            At::Ino(ino) | At::Entry(ino, _) => ino,
        };
        let seq = state.next_seq;
        state.next_seq += 1;
        let in_scope = pid != 0
            && match state.scope {
                Scope::All => true,
                Scope::ProcessGroup(group) => pgid == group,
                Scope::PidNamespace { ns, .. } => caller.within(ns),
            };
        let name = match in_scope {
            true => state.names_in_scope.name(kind),
            false => state.names_outside.name(kind),
        };
        let mut record = OpRecord {
            seq,
            pid,
            pgid,
            comm,
            kind,
            name,
            ino,
            path,
            path2,
            offset,
            len,
            flags,
            errno: 0,
            fault: None,
            scope: if in_scope { state.scope_id } else { 0 },
            writeback: writeback.is_some(),
        };
        let context = OpContext {
            in_scope,
            writeback,
        };
        let decided = state.plan.decide(&record, context);
        if let Some(fault) = &decided.fault {
            tracing::debug!(seq, %kind, %fault, "fault fires");
            record.fault = Some(Arc::new(fault.clone()));
        }
        if matches!(kind, OpKind::Fsync | OpKind::Fdatasync)
            && matches!(decided.decision, Decision::Fail(_))
        {
            // The writeback it asked for failed: that data is not on disk.
            state.durable.on_fsync_failed(ino);
        }
        let stall_until = match decided.decision {
            Decision::Stall(duration) => {
                Some(Instant::now() + duration.unwrap_or(DEFAULT_STALL_DEADLINE))
            }
            Decision::Hold(until) => Some(until),
            _ => None,
        };
        let stall = stall_until.map(|deadline| {
            // The gate's copy carries the fault too, for whoever waits on it.
            let gate = Arc::new(StallGate {
                record: record.clone(),
                released: Mutex::new(false),
                wake: Condvar::new(),
            });
            (gate, deadline)
        });
        let stops_writer = writeback.is_some() && decided.decision.stops_program();
        let log_durable = in_scope && state.durable_log.is_some() && record.is_mutating();
        if state.keep_trace {
            state.trace.push(record);
        }
        let scope = state.scope;
        Gate {
            seq,
            pid,
            pgid,
            scope,
            decision: decided.decision,
            stall,
            log_durable,
            stops_writer,
        }
    }

    /// Sends `signal` to the program under test: with a PID namespace as
    /// the scope, to every process in it (see [`signal_namespace`]); else to
    /// the caller's process group (never to our own).
    fn signal_caller(&self, gate: &Gate, signal: Signal) {
        if let Scope::PidNamespace { init, .. } = gate.scope {
            signal_namespace(init, gate.pid, signal);
            return;
        }
        let target = if gate.pgid > 1 && gate.pgid != self.inner.own_pgid {
            Pid::from_raw(-(gate.pgid as i32))
        } else if gate.pid > 1 && gate.pid != self.inner.own_pid {
            Pid::from_raw(gate.pid as i32)
        } else {
            return;
        };
        if let Err(err) = kill(target, signal) {
            tracing::warn!(%target, ?signal, %err, "kill fault could not signal the caller");
        }
    }

    /// Applies an op per its gate's verdict and answers the kernel.
    ///
    /// `apply` gets the state and, for a short write, the byte limit.
    fn run<T, A, R>(&self, gate: Gate, apply: A, respond: R)
    where
        T: Send + 'static,
        A: FnOnce(&mut State, Option<u64>) -> Result<T, Errno> + Send + 'static,
        R: FnOnce(Result<T, Errno>) + Send + 'static,
    {
        match gate.stall.clone() {
            Some((stall, deadline)) => {
                {
                    lock(&self.inner.stalls.parked).push(stall.clone());
                    self.inner.stalls.changed.notify_all();
                }
                let fs = self.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("stall-{}", gate.seq))
                    .spawn(move || {
                        stall.wait(deadline);
                        lock(&fs.inner.stalls.parked).retain(|s| !Arc::ptr_eq(s, &stall));
                        fs.inner.stalls.changed.notify_all();
                        let result = fs.apply(&gate, apply, None);
                        respond(result);
                    });
                if let Err(err) = spawned {
                    tracing::error!(%err, "cannot park a stalled op; it fails with EIO");
                }
            }
            None => self.finish(gate, apply, respond),
        }
    }

    /// Applies an op that is not stalled, per its verdict, and answers.
    /// Borrows are fine here: nothing outlives the request.
    fn finish<T>(
        &self,
        gate: Gate,
        apply: impl FnOnce(&mut State, Option<u64>) -> Result<T, Errno>,
        respond: impl FnOnce(Result<T, Errno>),
    ) {
        match gate.decision {
            Decision::Stall(_) | Decision::Hold(_) | Decision::Proceed => {
                respond(self.apply(&gate, apply, None))
            }
            Decision::ShortWrite(limit) => respond(self.apply(&gate, apply, Some(limit))),
            Decision::Fail(errno) => {
                lock(&self.inner.state).trace.set_result(gate.seq, errno);
                respond(Err(Errno::from_i32(errno)));
            }
            Decision::KillBefore(signal) => {
                self.signal_caller(&gate, signal);
                lock(&self.inner.state)
                    .trace
                    .set_result(gate.seq, libc::EINTR);
                respond(Err(Errno::EINTR));
            }
            Decision::KillAfter(signal) => {
                let result = self.apply(&gate, apply, None);
                self.signal_caller(&gate, signal);
                respond(result);
            }
            Decision::KillWithin(limit) => {
                let result = self.apply(&gate, apply, Some(limit));
                self.signal_caller(&gate, Signal::SIGKILL);
                respond(result);
            }
            Decision::PowerCut(cut) => {
                let result = self.apply(&gate, apply, None);
                {
                    let mut state = lock(&self.inner.state);
                    let State { durable, tree, .. } = &mut *state;
                    let tree = durable.durable_tree(cut, tree);
                    state.power_cut = Some(PowerCut {
                        seq: gate.seq,
                        cut,
                        tree,
                    });
                }
                // The machine is off: the writer stops here.
                self.signal_caller(&gate, Signal::SIGKILL);
                respond(result);
            }
        }
    }

    fn apply<T>(
        &self,
        gate: &Gate,
        apply: impl FnOnce(&mut State, Option<u64>) -> Result<T, Errno>,
        limit: Option<u64>,
    ) -> Result<T, Errno> {
        let mut state = lock(&self.inner.state);
        let result = apply(&mut state, limit);
        if let Err(errno) = &result {
            state.trace.set_result(gate.seq, errno.code());
        }
        if let State {
            signing: Some(signing),
            tree,
            ..
        } = &mut *state
        {
            // Before the answer: a writer that runs the file dies in this op.
            signing.enforce(gate.seq, |ino| tree.path_of(ino));
        }
        if gate.log_durable {
            let State {
                durable,
                tree,
                durable_log,
                ..
            } = &mut *state;
            if let Some(log) = durable_log {
                let family = durable.writeback_family();
                for model in PersistenceModel::ALL {
                    log.extend(family.iter().map(|&written| {
                        let cut = Cut { model, written };
                        PowerCut {
                            seq: gate.seq,
                            cut,
                            tree: durable.durable_tree(cut, tree),
                        }
                    }));
                }
            }
        }
        result
    }

    /// Entry reply data for an inode, counting the kernel's new reference.
    fn entry(state: &mut State, ino: u64) -> Result<Entry, Errno> {
        let attr = attr_of(state.tree.get(ino)?);
        state.tree.pin(ino);
        Ok(Entry {
            attr,
            generation: Generation(state.tree.generation(ino)),
        })
    }

    fn new_node(req: &Request, mode: u32, umask: u32) -> NewNode {
        NewNode {
            perm: (mode & !umask & 0o7777) as u16,
            uid: req.uid(),
            gid: req.gid(),
        }
    }

    /// Opens `ino` for `opener`.
    fn open_handle(state: &mut State, ino: u64, flags: i32, opener: Who) -> Result<u64, Errno> {
        let writes = flags & libc::O_ACCMODE != libc::O_RDONLY;
        if flags & libc::O_TRUNC != 0 && writes {
            state.truncate(ino, 0)?;
        }
        let fh = state.next_fh;
        state.next_fh += 1;
        state.handles.insert(
            fh,
            Handle {
                ino,
                append: flags & libc::O_APPEND != 0,
                writer: writes.then_some(opener),
            },
        );
        state.tree.pin(ino);
        Ok(fh)
    }
}

/// `attr` with the inode number the mount whose root is `root` uses.
fn for_mount(mut attr: FileAttr, root: u64) -> FileAttr {
    attr.ino = INodeNo(swap_root(root, attr.ino.0));
    attr
}

/// What a lookup or a create tells the kernel of an inode.
struct Entry {
    attr: FileAttr,
    generation: Generation,
}

fn reply_entry(reply: ReplyEntry, root: u64) -> impl FnOnce(Result<Entry, Errno>) + Send {
    move |result| match result {
        Ok(entry) => reply.entry(&TTL, &for_mount(entry.attr, root), entry.generation),
        Err(errno) => reply.error(errno),
    }
}

fn reply_attr(reply: ReplyAttr, root: u64) -> impl FnOnce(Result<FileAttr, Errno>) + Send {
    move |result| match result {
        Ok(attr) => reply.attr(&TTL, &for_mount(attr, root)),
        Err(errno) => reply.error(errno),
    }
}

fn reply_empty(reply: ReplyEmpty) -> impl FnOnce(Result<(), Errno>) + Send {
    move |result| match result {
        Ok(()) => reply.ok(),
        Err(errno) => reply.error(errno),
    }
}

fn reply_xattr(reply: ReplyXattr, size: u32) -> impl FnOnce(Result<Vec<u8>, Errno>) + Send {
    move |result| match result {
        Ok(value) if size == 0 => reply.size(value.len() as u32),
        Ok(value) if value.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(value) => reply.data(&value),
        Err(errno) => reply.error(errno),
    }
}

const NO_ARGS: (u64, u64, u32) = (0, 0, 0);

impl Filesystem for FaultFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // O_TRUNC arrives with the open (as the trace should show it), not as
        // a separate setattr.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_ATOMIC_O_TRUNC);
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let parent = self.tree_ino(parent);
        let gate = self.gate(
            req,
            OpKind::Lookup,
            At::Entry(parent.0, name),
            None,
            NO_ARGS,
        );
        let name = name.to_owned();
        self.run(
            gate,
            move |state, _| {
                let ino = state.tree.lookup(parent.0, &name)?;
                Self::entry(state, ino)
            },
            reply_entry(reply, self.root),
        );
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let ino = self.tree_ino(ino);
        lock(&self.inner.state).tree.unpin(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let ino = self.tree_ino(ino);
        let gate = self.gate(req, OpKind::Getattr, At::Ino(ino.0), None, NO_ARGS);
        self.run(
            gate,
            move |state, _| Ok(attr_of(state.tree.get(ino.0)?)),
            reply_attr(reply, self.root),
        );
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let ino = self.tree_ino(ino);
        let mut mask = 0;
        for (set, bit) in [
            (size.is_some(), SETATTR_SIZE),
            (mode.is_some(), SETATTR_MODE),
            (uid.is_some() || gid.is_some(), SETATTR_OWNER),
            (atime.is_some() || mtime.is_some(), SETATTR_TIMES),
        ] {
            if set {
                mask |= bit;
            }
        }
        let args = (size.unwrap_or(0), u64::from(mode.unwrap_or(0)), mask);
        let gate = self.gate(req, OpKind::Setattr, At::Ino(ino.0), None, args);
        self.run(
            gate,
            move |state, _| {
                if let Some(size) = size {
                    state.truncate(ino.0, size)?;
                }
                let tree = &mut state.tree;
                if let Some(mode) = mode {
                    tree.chmod(ino.0, mode)?;
                }
                if uid.is_some() || gid.is_some() {
                    tree.chown(ino.0, uid, gid)?;
                }
                if atime.is_some() || mtime.is_some() {
                    tree.set_times(ino.0, atime.map(time_of), mtime.map(time_of))?;
                }
                Ok(attr_of(tree.get(ino.0)?))
            },
            reply_attr(reply, self.root),
        );
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let ino = self.tree_ino(ino);
        let gate = self.gate(req, OpKind::Readlink, At::Ino(ino.0), None, NO_ARGS);
        self.run(
            gate,
            move |state, _| state.tree.readlink(ino.0),
            move |result| match result {
                Ok(target) => reply.data(target.as_encoded_bytes()),
                Err(errno) => reply.error(errno),
            },
        );
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let parent = self.tree_ino(parent);
        let args = (0, 0, mode);
        let gate = self.gate(req, OpKind::Mknod, At::Entry(parent.0, name), None, args);
        let name = name.to_owned();
        let new = Self::new_node(req, mode, umask);
        self.run(
            gate,
            move |state, _| {
                // Only regular files: devices, FIFOs and sockets are not what
                // replacing a binary involves.
                if mode & libc::S_IFMT != libc::S_IFREG {
                    return Err(Errno::EPERM);
                }
                let ino = state.tree.create_file(parent.0, &name, new)?;
                Self::entry(state, ino)
            },
            reply_entry(reply, self.root),
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let parent = self.tree_ino(parent);
        let gate = self.gate(req, OpKind::Mkdir, At::Entry(parent.0, name), None, NO_ARGS);
        let name = name.to_owned();
        let new = Self::new_node(req, mode, umask);
        self.run(
            gate,
            move |state, _| {
                let ino = state.tree.mkdir(parent.0, &name, new)?;
                Self::entry(state, ino)
            },
            reply_entry(reply, self.root),
        );
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let parent = self.tree_ino(parent);
        let gate = self.gate(
            req,
            OpKind::Unlink,
            At::Entry(parent.0, name),
            None,
            NO_ARGS,
        );
        let name = name.to_owned();
        self.run(
            gate,
            move |state, _| state.tree.unlink(parent.0, &name).map(drop),
            reply_empty(reply),
        );
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let parent = self.tree_ino(parent);
        let gate = self.gate(req, OpKind::Rmdir, At::Entry(parent.0, name), None, NO_ARGS);
        let name = name.to_owned();
        self.run(
            gate,
            move |state, _| state.tree.rmdir(parent.0, &name).map(drop),
            reply_empty(reply),
        );
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let parent = self.tree_ino(parent);
        let gate = self.gate(
            req,
            OpKind::Symlink,
            At::Entry(parent.0, link_name),
            None,
            NO_ARGS,
        );
        let name = link_name.to_owned();
        let target = target.as_os_str().to_owned();
        let new = Self::new_node(req, 0o777, 0);
        self.run(
            gate,
            move |state, _| {
                let ino = state.tree.symlink(parent.0, &name, &target, new)?;
                Self::entry(state, ino)
            },
            reply_entry(reply, self.root),
        );
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let parent = self.tree_ino(parent);
        let newparent = self.tree_ino(newparent);
        let args = (0, 0, flags.bits());
        let gate = self.gate(
            req,
            OpKind::Rename,
            At::Entry(parent.0, name),
            Some(At::Entry(newparent.0, newname)),
            args,
        );
        let (name, newname) = (name.to_owned(), newname.to_owned());
        self.run(
            gate,
            move |state, _| {
                let bits = flags.bits();
                let mode = match bits {
                    0 => RenameMode::Replace,
                    libc::RENAME_NOREPLACE => RenameMode::NoReplace,
                    libc::RENAME_EXCHANGE => RenameMode::Exchange,
                    _ => return Err(Errno::EINVAL),
                };
                state
                    .tree
                    .rename(parent.0, &name, newparent.0, &newname, mode)
            },
            reply_empty(reply),
        );
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let ino = self.tree_ino(ino);
        let newparent = self.tree_ino(newparent);
        let gate = self.gate(
            req,
            OpKind::Link,
            At::Ino(ino.0),
            Some(At::Entry(newparent.0, newname)),
            NO_ARGS,
        );
        let newname = newname.to_owned();
        self.run(
            gate,
            move |state, _| {
                state.tree.link(ino.0, newparent.0, &newname)?;
                Self::entry(state, ino.0)
            },
            reply_entry(reply, self.root),
        );
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let ino = self.tree_ino(ino);
        let args = (0, 0, flags.0 as u32);
        let opener = self.who(req);
        let gate = self.gate_as(opener.clone(), OpKind::Open, At::Ino(ino.0), None, args);
        self.run(
            gate,
            move |state, _| {
                if state.tree.get(ino.0)?.is_dir() && flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
                    return Err(Errno::EISDIR);
                }
                let pid = opener.pid;
                let fh = Self::open_handle(state, ino.0, flags.0, opener)?;
                if let (Some(signing), true) = (state.signing.as_mut(), flags.0 & FMODE_EXEC != 0) {
                    signing.exec(pid, ino.0);
                }
                Ok(fh)
            },
            move |result| match result {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(errno) => reply.error(errno),
            },
        );
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let ino = self.tree_ino(ino);
        let args = (offset, u64::from(size), 0);
        let gate = self.gate(req, OpKind::Read, At::Ino(ino.0), None, args);
        self.run(
            gate,
            move |state, _| state.tree.read(ino.0, offset, size as usize),
            move |result| match result {
                Ok(data) => reply.data(&data),
                Err(errno) => reply.error(errno),
            },
        );
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let ino = self.tree_ino(ino);
        let args = (offset, data.len() as u64, 0);
        let who = match req.pid() {
            0 => self.writeback_writer(fh.0),
            _ => None,
        };
        let who = who.unwrap_or_else(|| self.who(req));
        let gate = self.gate_as(who, OpKind::Write, At::Ino(ino.0), None, args);
        let write = move |state: &mut State, limit: Option<u64>, data: &[u8]| {
            let append = state.handles.get(&fh.0).is_some_and(|h| h.append);
            let offset = if append {
                state.tree.content(ino.0)?.len()
            } else {
                offset
            };
            let take = limit.map_or(data.len(), |limit| limit as usize);
            state.write_data(ino.0, offset, &data[..take])
        };
        let respond = move |result: Result<usize, Errno>| match result {
            Ok(written) => reply.written(written as u32),
            Err(errno) => reply.error(errno),
        };
        if gate.stops_writer {
            // The kernel holds every page the writer stored, though the
            // file now lacks those after the kill: it must read them again,
            // as from a disk that never got them. Not on this thread: the
            // kernel waits for the writes in flight, which it answers.
            let fs = self.clone();
            let dropped = InodeChange {
                ino: ino.0,
                data: true,
            };
            let spawned = std::thread::Builder::new()
                .name("writeback-lost".into())
                .spawn(move || fs.handle().invalidate(&[dropped]));
            if let Err(err) = spawned {
                tracing::warn!(%err, "cannot drop the pages of a killed writer");
            }
        }
        if gate.stall.is_some() {
            // A stalled write is applied later, on another thread: it needs
            // its own copy of the bytes. Every other write uses the request's.
            let data = data.to_vec();
            self.run(
                gate,
                move |state, limit| write(state, limit, &data),
                respond,
            );
        } else {
            self.finish(gate, |state, limit| write(state, limit, data), respond);
        }
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let ino = self.tree_ino(ino);
        let gate = self.gate(req, OpKind::Flush, At::Ino(ino.0), None, NO_ARGS);
        self.run(
            gate,
            move |state, _| state.tree.get(ino.0).map(drop),
            reply_empty(reply),
        );
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let ino = self.tree_ino(ino);
        // Traced, never faulted or held (see `gate`).
        let gate = self.gate(req, OpKind::Release, At::Ino(ino.0), None, NO_ARGS);
        self.run(
            gate,
            move |state, _| {
                if let Some(handle) = state.handles.remove(&fh.0) {
                    state.tree.unpin(handle.ino, 1);
                }
                state.plan.released(fh.0);
                Ok(())
            },
            reply_empty(reply),
        );
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let ino = self.tree_ino(ino);
        let kind = if datasync {
            OpKind::Fdatasync
        } else {
            OpKind::Fsync
        };
        let gate = self.gate(req, kind, At::Ino(ino.0), None, NO_ARGS);
        self.run(
            gate,
            move |state, _| {
                state.tree.get(ino.0)?;
                state.durable.on_fsync(&state.tree, ino.0);
                Ok(())
            },
            reply_empty(reply),
        );
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let ino = self.tree_ino(ino);
        let gate = self.gate(req, OpKind::Opendir, At::Ino(ino.0), None, NO_ARGS);
        self.run(
            gate,
            move |state, _| {
                if !state.tree.get(ino.0)?.is_dir() {
                    return Err(Errno::ENOTDIR);
                }
                Ok(())
            },
            move |result| match result {
                Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
                Err(errno) => reply.error(errno),
            },
        );
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let ino = self.tree_ino(ino);
        let root = self.root;
        let args = (offset, 0, 0);
        let gate = self.gate(req, OpKind::Readdir, At::Ino(ino.0), None, args);
        self.run(
            gate,
            move |state, _| {
                let entries = state.tree.readdir(ino.0)?;
                Ok(entries
                    .into_iter()
                    .skip(offset as usize)
                    .map(|(child, node, name)| (child, attr_of(node).kind, name))
                    .collect::<Vec<(u64, FileType, OsString)>>())
            },
            move |result| match result {
                Ok(entries) => {
                    for (index, (child, kind, name)) in entries.into_iter().enumerate() {
                        let next = offset + index as u64 + 1;
                        if reply.add(INodeNo(swap_root(root, child)), next, kind, &name) {
                            break;
                        }
                    }
                    reply.ok();
                }
                Err(errno) => reply.error(errno),
            },
        );
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let ino = self.tree_ino(ino);
        let gate = self.gate(req, OpKind::Fsyncdir, At::Ino(ino.0), None, NO_ARGS);
        self.run(
            gate,
            move |state, _| {
                state.tree.get(ino.0)?;
                state.durable.on_fsyncdir(&state.tree, ino.0);
                Ok(())
            },
            reply_empty(reply),
        );
    }

    fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let ino = self.tree_ino(ino);
        let gate = self.gate(req, OpKind::Statfs, At::Ino(ino.0), None, NO_ARGS);
        self.run(
            gate,
            move |state, _| Ok((state.tree.bytes_used(), state.tree.inode_count() as u64)),
            move |result| match result {
                Ok((used, files)) => {
                    const BLOCK: u64 = 4096;
                    const BLOCKS: u64 = 16 << 20; // 64 GiB of 4 KiB blocks
                    const FILES: u64 = 1 << 20;
                    let free = BLOCKS.saturating_sub(used.div_ceil(BLOCK));
                    reply.statfs(
                        BLOCKS,
                        free,
                        free,
                        FILES,
                        FILES.saturating_sub(files),
                        BLOCK as u32,
                        255,
                        BLOCK as u32,
                    );
                }
                Err(errno) => reply.error(errno),
            },
        );
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let ino = self.tree_ino(ino);
        let args = (0, value.len() as u64, flags as u32);
        let gate = self.gate(req, OpKind::Setxattr, At::Ino(ino.0), None, args);
        let (name, value) = (name.to_owned(), value.to_vec());
        self.run(
            gate,
            move |state, _| state.tree.setxattr(ino.0, &name, &value, flags),
            reply_empty(reply),
        );
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let ino = self.tree_ino(ino);
        let gate = self.gate(req, OpKind::Getxattr, At::Ino(ino.0), None, NO_ARGS);
        let name = name.to_owned();
        self.run(
            gate,
            move |state, _| state.tree.getxattr(ino.0, &name),
            reply_xattr(reply, size),
        );
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let ino = self.tree_ino(ino);
        let gate = self.gate(req, OpKind::Listxattr, At::Ino(ino.0), None, NO_ARGS);
        self.run(
            gate,
            move |state, _| state.tree.listxattr(ino.0),
            reply_xattr(reply, size),
        );
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let ino = self.tree_ino(ino);
        let gate = self.gate(req, OpKind::Removexattr, At::Ino(ino.0), None, NO_ARGS);
        let name = name.to_owned();
        self.run(
            gate,
            move |state, _| state.tree.removexattr(ino.0, &name),
            reply_empty(reply),
        );
    }

    fn access(&self, req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        let ino = self.tree_ino(ino);
        // With default_permissions the kernel checks modes itself; this only
        // confirms the inode exists.
        let gate = self.gate(req, OpKind::Access, At::Ino(ino.0), None, NO_ARGS);
        self.run(
            gate,
            move |state, _| state.tree.get(ino.0).map(drop),
            reply_empty(reply),
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let parent = self.tree_ino(parent);
        let root = self.root;
        let args = (0, 0, flags as u32);
        let opener = self.who(req);
        let at = At::Entry(parent.0, name);
        let gate = self.gate_as(opener.clone(), OpKind::Create, at, None, args);
        let name = name.to_owned();
        let new = Self::new_node(req, mode, umask);
        self.run(
            gate,
            move |state, _| {
                let ino = match state.tree.lookup(parent.0, &name) {
                    Ok(_) if flags & libc::O_EXCL != 0 => return Err(Errno::EEXIST),
                    Ok(ino) => ino,
                    Err(_) => state.tree.create_file(parent.0, &name, new)?,
                };
                let fh = Self::open_handle(state, ino, flags, opener)?;
                Ok((Self::entry(state, ino)?, fh))
            },
            move |result| match result {
                Ok((entry, fh)) => reply.created(
                    &TTL,
                    &for_mount(entry.attr, root),
                    entry.generation,
                    FileHandle(fh),
                    FopenFlags::empty(),
                ),
                Err(errno) => reply.error(errno),
            },
        );
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let ino = self.tree_ino(ino);
        let args = (offset, length, mode as u32);
        let gate = self.gate(req, OpKind::Fallocate, At::Ino(ino.0), None, args);
        self.run(
            gate,
            move |state, _| {
                let size = state.tree.content(ino.0)?.len();
                let end = offset + length;
                let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
                let zero = mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0;
                let known = libc::FALLOC_FL_KEEP_SIZE
                    | libc::FALLOC_FL_PUNCH_HOLE
                    | libc::FALLOC_FL_ZERO_RANGE;
                if mode & !known != 0 {
                    return Err(Errno::EOPNOTSUPP);
                }
                if zero && offset < size {
                    let zeros = vec![0; (end.min(size) - offset) as usize];
                    state.write_data(ino.0, offset, &zeros)?;
                }
                if !keep_size && end > size {
                    state.truncate(ino.0, end)?;
                }
                Ok(())
            },
            reply_empty(reply),
        );
    }

    fn lseek(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let ino = self.tree_ino(ino);
        let args = (offset.max(0) as u64, 0, whence as u32);
        let gate = self.gate(req, OpKind::Lseek, At::Ino(ino.0), None, args);
        self.run(
            gate,
            move |state, _| {
                let size = state.tree.content(ino.0)?.len() as i64;
                // The tree has no holes: data everywhere, one hole at the end.
                match whence {
                    libc::SEEK_DATA if offset < size => Ok(offset),
                    libc::SEEK_HOLE if offset < size => Ok(size),
                    libc::SEEK_DATA | libc::SEEK_HOLE => Err(Errno::ENXIO),
                    _ => Err(Errno::EINVAL),
                }
            },
            move |result| match result {
                Ok(offset) => reply.offset(offset),
                Err(errno) => reply.error(errno),
            },
        );
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // isatty() and friends ask; a regular file is no terminal.
        reply.error(Errno::ENOTTY);
    }

    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: INodeNo,
        _fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        _fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let ino_in = self.tree_ino(ino_in);
        let ino_out = self.tree_ino(ino_out);
        let args = (offset_out, len, 0);
        let gate = self.gate(
            req,
            OpKind::CopyFileRange,
            At::Ino(ino_in.0),
            Some(At::Ino(ino_out.0)),
            args,
        );
        self.run(
            gate,
            move |state, limit| {
                let len = limit.unwrap_or(len).min(u64::from(u32::MAX));
                let data = state.tree.read(ino_in.0, offset_in, len as usize)?;
                state.write_data(ino_out.0, offset_out, &data)
            },
            move |result| match result {
                Ok(written) => reply.written(written as u32),
                Err(errno) => reply.error(errno),
            },
        );
    }
}

impl FaultFsHandle {
    /// A `sync(2)` or `syncfs(2)` of this file system by process `pid`,
    /// which FUSE never sends: the strategy's sandbox hands it over. It is
    /// an op like any other, `sync` at the root: traced, counted, decided
    /// by the plan (a kill, a power cut, a stall, an errno), and applied:
    /// every file's data and every directory's entries become durable, as
    /// the real call makes them. `answer` gets the result once it is done
    /// (at once, or when a stall ends), from whatever thread that is.
    pub fn sync(&self, pid: u32, answer: impl FnOnce(Result<(), i32>) + Send + 'static) {
        let fs = FaultFs {
            inner: self.inner.clone(),
            root: ROOT_INO,
        };
        let gate = fs.gate_as(
            fs.who_pid(pid),
            OpKind::Sync,
            At::Ino(ROOT_INO),
            None,
            NO_ARGS,
        );
        fs.run(
            gate,
            |state, _| {
                let State { durable, tree, .. } = state;
                durable.on_sync(tree);
                Ok(())
            },
            move |result: Result<(), Errno>| answer(result.map_err(|errno| errno.code())),
        );
    }

    /// A copy of every op traced so far.
    pub fn trace(&self) -> Vec<OpRecord> {
        lock(&self.inner.state).trace.records().to_vec()
    }

    /// Removes and returns the ops traced so far.
    pub fn take_trace(&self) -> Vec<OpRecord> {
        lock(&self.inner.state).trace.take()
    }

    /// Keeps (default) or drops op records; plans still count ops either
    /// way. Exists to measure what the trace costs.
    pub fn set_keep_trace(&self, keep: bool) {
        lock(&self.inner.state).keep_trace = keep;
    }

    /// Puts a new plan in force, with its match counts at zero.
    pub fn set_plan(&self, plan: FaultPlan) {
        lock(&self.inner.state).plan.set_plan(plan);
    }

    /// Faults and counts only the ops of this scope, from now on, and
    /// tags their records with the number this returns
    /// ([`OpRecord::scope`]). Forgets cached process details, since pids are
    /// reused.
    pub fn set_scope(&self, scope: Scope) -> u32 {
        lock(&self.inner.procs).clear();
        let mut state = lock(&self.inner.state);
        state.scope = scope;
        state.scope_id += 1;
        state.plan.new_run();
        state.names_in_scope = Namer::default();
        state.names_outside = Namer::default();
        state.scope_id
    }

    /// Ops parked by a stall fault right now.
    pub fn stalled(&self) -> Vec<OpRecord> {
        lock(&self.inner.stalls.parked)
            .iter()
            .map(|gate| gate.record.clone())
            .collect()
    }

    /// Waits until an op is stalled and not yet released (returns it) or
    /// `timeout` passes.
    pub fn wait_for_stall(&self, timeout: Duration) -> Option<OpRecord> {
        let unreleased = |parked: &Vec<Arc<StallGate>>| {
            parked
                .iter()
                .find(|gate| !*lock(&gate.released))
                .map(|gate| gate.record.clone())
        };
        let parked = self
            .inner
            .stalls
            .changed
            .wait_timeout_while(lock(&self.inner.stalls.parked), timeout, |parked| {
                unreleased(parked).is_none()
            })
            .map(|(guard, _)| guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        unreleased(&parked)
    }

    /// Parks the scope's next op (unless a rule faults it) until
    /// [`FaultFsHandle::release_stalls`] or `until`; `None` takes a hold
    /// back that no op has met. So a probe that waited for a stalled op
    /// sees what that op left, not what the ops racing after it did.
    pub fn hold_next_op(&self, until: Option<Instant>) {
        lock(&self.inner.state).plan.hold_next(until);
    }

    /// Lets every stalled op go on.
    pub fn release_stalls(&self) {
        for gate in lock(&self.inner.stalls.parked).iter() {
            gate.release();
        }
    }

    /// A snapshot of the tree (cheap: contents are shared copy-on-write).
    pub fn snapshot(&self) -> Tree {
        lock(&self.inner.state).tree.clone()
    }

    /// Replaces the tree with a snapshot, keeping inode numbers unique, and
    /// makes the kernel drop what it cached of every inode that changed
    /// (pages, mapped ones included, and attributes). Entries need nothing:
    /// their TTL is zero, so the next path walk asks again.
    pub fn restore(&self, snapshot: &Tree) {
        let changed = {
            let mut state = lock(&self.inner.state);
            let changed = state.tree.changed_inodes(snapshot);
            state.tree.restore(snapshot);
            // What was restored is what is on disk now.
            state.durable = Durability::new(state.tree.clone());
            state.power_cut = None;
            changed
        };
        // Not under the state lock: dropping a page that a read in flight
        // holds waits for that read, which this file system must answer.
        self.invalidate(&changed);
    }

    /// Puts the mounted file system back to `snapshot` for another run: the
    /// tree (as [`FaultFsHandle::restore`]), and an empty trace, plan, scope
    /// and durable-state log. Stalled ops are released first. Cheaper than a
    /// new mount, and processes that survive the reset (a live canary) keep
    /// their mappings.
    pub fn reset(&self, snapshot: &Tree) {
        self.release_stalls();
        {
            let mut state = lock(&self.inner.state);
            // A new trace, not a drained one: its interned temp names would pile up.
            state.trace = Trace::default();
            state.plan.clear();
            state.scope = Scope::All;
            state.names_in_scope = Namer::default();
            state.names_outside = Namer::default();
            state.durable_log = None;
        }
        lock(&self.inner.procs).clear();
        self.restore(snapshot);
    }

    /// Puts the macOS code-signing model in force (`Some`), or none:
    /// a process whose code changes on disk is killed ([`CodeSigning`]).
    pub fn set_code_signing(&self, model: Option<CodeSigning>) {
        lock(&self.inner.state).signing = model;
    }

    /// The processes the code-signing model killed since the last call.
    pub fn take_signature_kills(&self) -> Vec<SignatureKill> {
        lock(&self.inner.state)
            .signing
            .as_mut()
            .map(CodeSigning::take_kills)
            .unwrap_or_default()
    }

    /// Starts (`true`) or stops logging, after every op in scope that
    /// changes the tree, the tree a power cut right then would leave under
    /// each [`PersistenceModel`]: one recorded run then yields every
    /// power-cut state without re-running the strategy up to each cut.
    pub fn log_durable_states(&self, on: bool) {
        lock(&self.inner.state).durable_log = on.then(Vec::new);
    }

    /// The durable states logged so far, in op order (one per model per op).
    pub fn take_durable_states(&self) -> Vec<PowerCut> {
        lock(&self.inner.state)
            .durable_log
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Asks the kernel to drop its cached attributes of `changes`, and its
    /// pages where their data changed (pages a live process maps are
    /// dropped too, and read again on its next access: costly, so only then).
    fn invalidate(&self, changes: &[InodeChange]) {
        let notifiers = lock(&self.inner.notifier).clone();
        for (root, notifier) in &notifiers {
            for change in changes {
                // A negative offset: attributes only.
                let offset = if change.data { 0 } else { -1 };
                let ino = INodeNo(swap_root(*root, change.ino));
                // ENOENT (an inode the kernel does not hold) is no error here.
                if let Err(err) = notifier.inval_inode(ino, offset, 0) {
                    tracing::debug!(ino = change.ino, %err, "cache invalidation refused");
                }
            }
        }
    }

    /// Set by the mount of `root`: its channel for cache invalidations
    /// (`None` when it unmounts).
    pub(crate) fn set_notifier(&self, root: u64, notifier: Option<fuser::Notifier>) {
        let mut notifiers = lock(&self.inner.notifier);
        notifiers.retain(|(r, _)| *r != root);
        notifiers.extend(notifier.map(|n| (root, n)));
    }

    /// What a power cut `cut` right now would leave: for a cut after the
    /// run has ended ([`Fault::ErrnoThenCut`]). Unsynced writes are kept
    /// only while the plan cuts the power or durable states are logged, so
    /// a writeback other than none needs one of those in force.
    pub fn durable_state(&self, cut: Cut) -> Tree {
        let mut state = lock(&self.inner.state);
        let State { durable, tree, .. } = &mut *state;
        durable.durable_tree(cut, tree)
    }

    /// The durable state left by a power-cut fault, if one fired.
    pub fn take_power_cut(&self) -> Option<PowerCut> {
        lock(&self.inner.state).power_cut.take()
    }

    /// Runs `f` on the tree, under the lock. Do not touch the mount from `f`.
    pub fn with_tree<T>(&self, f: impl FnOnce(&mut Tree) -> T) -> T {
        f(&mut lock(&self.inner.state).tree)
    }
}
