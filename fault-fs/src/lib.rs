//! fault-fs: an in-memory FUSE file system that numbers, traces and faults
//! every operation of the program under test.
//!
//! The principal types:
//! - [`FaultFs`]: the file system, over an in-memory [`Tree`];
//! - [`FaultMount`]: a mounted `FaultFs`, unmounted when dropped;
//! - [`FaultFsHandle`]: reads the [`Trace`] of [`OpRecord`]s, puts a
//!   [`FaultPlan`] in force, releases stalled ops, snapshots the tree and
//!   resets the mount to a snapshot (the kernel's stale caches dropped), and
//!   logs the [`PowerCut`] state each [`PersistenceModel`] leaves after
//!   every op;
//! - [`Rule`] and [`Fault`]: one line of a plan, `write#3:kill-after`,
//!   and [`PlanState`], the plan deciding each op ([`PlanState::decide`]);
//! - [`CrashPoint`]: one fault at one op named by kind and order
//!   ([`OpName`], `write#3`), as the explorer places them.
//!
//! ```no_run
//! use swapfault_fs::{FaultFs, FaultMount, FaultPlan};
//!
//! let plan = FaultPlan::from_specs(&["write#2:kill-after"]).unwrap();
//! let mount = FaultMount::mount(FaultFs::new(Default::default(), plan), "/tmp/m".as_ref()).unwrap();
//! // ... run a program against /tmp/m ...
//! for op in mount.handle().trace() {
//!     println!("{op}");
//! }
//! // Dropping `mount` unmounts.
//! ```
//!
//! fault-fs knows nothing of scenarios: the harness crate builds on it.

pub mod fault;
mod fs;
mod mount;
pub mod op;
pub mod persistence;
pub mod plan;
pub mod proc;
pub mod rule;
pub mod signing;
pub mod tree;

pub use fault::{Fault, FaultError, ShortWrite};
pub use fs::{FaultFs, FaultFsHandle, PowerCut, Scope};
pub use mount::{
    check_environment, detach_all, is_mount_point, load_dir, preflight, FaultMount, MountError,
    UnmountWhenGone,
};
pub use op::{
    OpKind, OpName, OpRecord, Trace, SETATTR_MODE, SETATTR_OWNER, SETATTR_SIZE, SETATTR_TIMES,
};
pub use persistence::{Cut, Durability, PersistenceModel, Writeback};
pub use plan::{Decision, PlanState};
pub use proc::{pid_ns_of, pidfd_of};
pub use rule::{phase_prefix, CrashPoint, FaultPlan, Phase, PlanError, Rule};
pub use signing::{CodeSigning, SignatureKill};
pub use tree::Tree;
