//! The plan deciding: which fault fires at which op, as a pure function of
//! the plan's state and the op. fault-fs's FUSE handlers ask
//! [`PlanState::decide`] about every op and carry out what it says; nothing
//! here touches the kernel, a clock or a process, so every decision (rule
//! counting, `+K`, a full disk that stays full, holding the next op, the
//! pages a killed writer never stored) is tested on op records alone.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::fault::Fault;
use crate::op::{OpKind, OpRecord};
use crate::persistence::Cut;
use crate::rule::{FaultPlan, Rule};

/// What the plan decided for one op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Apply the op and answer.
    Proceed,
    /// Fail it with this errno, without applying it.
    Fail(i32),
    /// Signal the program, then answer without applying the op.
    KillBefore(Signal),
    /// Apply the op, signal the program, then answer.
    KillAfter(Signal),
    /// Apply this many bytes of the write and report the short count.
    ShortWrite(u64),
    /// Apply this many bytes of the write, then SIGKILL the program.
    KillWithin(u64),
    /// Park the op until released, or for this long (`None`: the default
    /// deadline), then apply it.
    Stall(Option<Duration>),
    /// Park the op (that no rule faulted) until released or until this
    /// instant: see [`PlanState::hold_next`].
    Hold(Instant),
    /// Apply the op, then cut the power.
    PowerCut(Cut),
}

impl Decision {
    /// Whether the program stops at this op (killed, or the power gone).
    pub fn stops_program(&self) -> bool {
        matches!(
            self,
            Decision::KillBefore(_)
                | Decision::KillAfter(_)
                | Decision::KillWithin(_)
                | Decision::PowerCut(_)
        )
    }
}

/// What fault-fs knows of an op besides its record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpContext {
    /// The op is the program's under test (its scope): only those are
    /// counted, faulted and held.
    pub in_scope: bool,
    /// For a write the kernel sent on its own to write back pages dirtied
    /// through a shared mapping, the handle it came on.
    pub writeback: Option<u64>,
}

/// What [`PlanState::decide`] answers: the decision, and the fault of the
/// rule that fired, for the op's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    /// What to do.
    pub decision: Decision,
    /// The fault of the rule that fired, if one did.
    pub fault: Option<Fault>,
}

/// How far one rule of the plan has got.
#[derive(Clone, Debug, Default)]
struct Matches {
    /// Ops that matched it so far.
    matched: u64,
    /// For a rule with `after`: ops still to come, after its match, before
    /// the one it fires on.
    ops_to_go: Option<u64>,
}

/// A plan in force, with everything it has counted and set so far.
#[derive(Clone, Debug, Default)]
pub struct PlanState {
    plan: FaultPlan,
    /// Matches counted so far, per rule of the plan.
    matches: Vec<Matches>,
    /// Set by a [`Fault::Full`] that fired: every later op in scope that
    /// needs space fails with this errno, until the plan or the scope
    /// changes (the run ends).
    full: Option<i32>,
    /// Set by a [`Fault::Full`] that fired at a read: the file whose data
    /// cannot be read, and the errno every later read of it fails with, as
    /// a bad block stays bad (the kernel retries a failed readahead with a
    /// read of its own, which must fail too), until the run ends.
    unreadable: Option<(u64, i32)>,
    /// Park the scope's next op that no rule faults until this instant.
    hold_next: Option<Instant>,
    /// Handles whose writer a kill or power cut stopped at a writeback
    /// write: the pages after it were never written, on a real disk, since
    /// the writer died before it stored them. The kernel still sends them
    /// (it copied them all before it wrote any back), and they are refused.
    lost_writeback: HashSet<u64>,
    /// See [`PlanState::keeps_unsynced_writes`]: derived from the plan.
    keeps_unsynced: bool,
}

/// Whether a rule of `plan` may cut the power or fail a sync.
fn keeps_unsynced(plan: &FaultPlan) -> bool {
    plan.rules.iter().any(|rule| {
        let fails_sync = matches!(rule.fault, Fault::Errno(_) | Fault::Full(_))
            && (rule.ops.is_empty()
                || rule.after.is_some()
                || rule
                    .ops
                    .iter()
                    .any(|kind| matches!(kind, OpKind::Fsync | OpKind::Fdatasync)));
        rule.fault.cuts_power() || fails_sync
    })
}

impl PlanState {
    /// `plan` in force, nothing counted yet.
    pub fn new(plan: FaultPlan) -> PlanState {
        PlanState {
            matches: vec![Matches::default(); plan.rules.len()],
            keeps_unsynced: keeps_unsynced(&plan),
            plan,
            ..PlanState::default()
        }
    }

    /// The plan in force.
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Puts `plan` in force, its counts at zero and the disk no longer full.
    pub fn set_plan(&mut self, plan: FaultPlan) {
        self.matches = vec![Matches::default(); plan.rules.len()];
        self.keeps_unsynced = keeps_unsynced(&plan);
        self.plan = plan;
        self.full = None;
        self.unreadable = None;
    }

    /// A new run begins (a new scope): a full disk from the last is freed.
    pub fn new_run(&mut self) {
        self.full = None;
        self.unreadable = None;
    }

    /// Back to no plan at all, as a fresh file system.
    pub fn clear(&mut self) {
        *self = PlanState::default();
    }

    /// Parks the scope's next op that no rule faults, until `until` (or a
    /// release); `None` takes back a hold no op has met yet.
    pub fn hold_next(&mut self, until: Option<Instant>) {
        self.hold_next = until;
    }

    /// The handle `fh` is closed: a later handle of that number is another.
    pub fn released(&mut self, fh: u64) {
        self.lost_writeback.remove(&fh);
    }

    /// Whether writes not yet fsync'd must be kept, as the durability model
    /// needs them: a rule of the plan may cut the power (what survives is
    /// computed from them) or fail an fsync or fdatasync (whose data is
    /// then lost: see [`crate::Durability::on_fsync_failed`]). Decided once
    /// per plan, not at every write.
    pub fn keeps_unsynced_writes(&self) -> bool {
        self.keeps_unsynced
    }

    /// What to do with `op`, counting it against the plan's rules.
    ///
    /// Only ops in scope are counted or faulted; a release is never faulted
    /// or held (close(2) has returned: nobody waits on it). A writeback
    /// write whose writer was stopped fails with EIO: its pages never
    /// reached the disk. After a lasting error ([`Fault::Full`]), every op
    /// that needs space fails with it; after one at a read, every read of
    /// that file. The first rule that fires wins.
    pub fn decide(&mut self, op: &OpRecord, context: OpContext) -> Decided {
        let lost = context
            .writeback
            .is_some_and(|fh| self.lost_writeback.contains(&fh));
        let faultable = context.in_scope && op.kind != OpKind::Release && !lost;
        let mut decided = Decided {
            decision: Decision::Proceed,
            fault: None,
        };
        let unreadable = match self.unreadable {
            Some((ino, errno)) if op.kind == OpKind::Read && op.ino == ino => Some(errno),
            _ => None,
        };
        if lost {
            decided.decision = Decision::Fail(libc::EIO);
        } else if let (true, Some(errno)) = (faultable, unreadable) {
            decided.decision = Decision::Fail(errno);
        } else if let (true, Some(errno)) = (faultable, self.full) {
            if op.kind.needs_space() {
                decided.decision = Decision::Fail(errno);
            } else {
                decided = self.fire(op);
            }
        } else if faultable {
            decided = self.fire(op);
        }
        if faultable && decided.decision == Decision::Proceed {
            if let Some(until) = self.hold_next.take() {
                decided.decision = Decision::Hold(until);
            }
        }
        if let (Some(fh), true) = (context.writeback, decided.decision.stops_program()) {
            self.lost_writeback.insert(fh);
        }
        decided
    }

    /// Counts `op` against every rule, and fires the first that fires.
    fn fire(&mut self, op: &OpRecord) -> Decided {
        let PlanState {
            plan,
            matches,
            full,
            unreadable,
            ..
        } = self;
        for (rule, counted) in plan.rules.iter().zip(matches.iter_mut()) {
            if !counts_here(rule, counted, op) {
                continue;
            }
            let decision = match &rule.fault {
                Fault::KillBefore(signal) => Decision::KillBefore(*signal),
                Fault::KillAfter(signal) => Decision::KillAfter(*signal),
                Fault::Errno(errno) | Fault::ErrnoThenCut(errno, _) => Decision::Fail(*errno),
                Fault::Full(errno) if op.kind == OpKind::Read => {
                    *unreadable = Some((op.ino, *errno));
                    Decision::Fail(*errno)
                }
                Fault::Full(errno) => {
                    *full = Some(*errno);
                    Decision::Fail(*errno)
                }
                // The disk fills inside this write: part of it is stored.
                Fault::Fills(short, errno) if op.kind == OpKind::Write => {
                    *full = Some(*errno);
                    Decision::ShortWrite(short.bytes_of(op.len))
                }
                Fault::Fills(_, errno) => {
                    *full = Some(*errno);
                    Decision::Fail(*errno)
                }
                Fault::ShortWrite(short) if op.kind == OpKind::Write => {
                    Decision::ShortWrite(short.bytes_of(op.len))
                }
                Fault::KillWithin(short) if op.kind == OpKind::Write => {
                    Decision::KillWithin(short.bytes_of(op.len))
                }
                // A partial write of an op that writes nothing: the rule
                // is spent here (counted), and nothing fires.
                Fault::ShortWrite(_) | Fault::KillWithin(_) => continue,
                Fault::PowerCut(cut) => Decision::PowerCut(*cut),
                Fault::Stall(duration) => Decision::Stall(*duration),
            };
            return Decided {
                decision,
                fault: Some(rule.fault.clone()),
            };
        }
        Decided {
            decision: Decision::Proceed,
            fault: None,
        }
    }
}

/// Counts `op` against `rule`; whether the rule fires on it: on its Nth
/// match (every match without N), or `+K` ops after that match, whatever
/// those ops are.
fn counts_here(rule: &Rule, counted: &mut Matches, op: &OpRecord) -> bool {
    if let Some(left) = &mut counted.ops_to_go {
        *left -= 1;
        if *left > 0 {
            return false;
        }
        counted.ops_to_go = None;
        return true;
    }
    if !rule.matches(op) {
        return false;
    }
    counted.matched += 1;
    if rule.nth.is_some_and(|nth| nth != counted.matched) {
        return false;
    }
    if let Some(after) = rule.after {
        counted.ops_to_go = Some(after);
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OpKind) -> OpRecord {
        OpRecord {
            len: 4096,
            ..OpRecord::blank(kind)
        }
    }

    fn plan(specs: &[&str]) -> PlanState {
        PlanState::new(FaultPlan::from_specs(specs).expect("specs"))
    }

    #[test]
    fn unsynced_writes_are_kept_only_for_a_plan_that_needs_them() {
        for (specs, keeps) in [
            (&["write#1:kill-after"][..], false),
            (&["rename#1:stall"], false),
            (&["fsync#1:errno=EIO"], true),
            (&["write:errno=ENOSPC"], false),
            (&["rename#1+1:errno=EIO"], true),
            (&["rename#1:power-cut"], true),
        ] {
            assert_eq!(plan(specs).keeps_unsynced_writes(), keeps, "{specs:?}");
        }
        let mut state = plan(&["fsync#1:errno=EIO"]);
        state.set_plan(FaultPlan::default());
        assert!(!state.keeps_unsynced_writes(), "a new plan decides anew");
    }

    const IN_SCOPE: OpContext = OpContext {
        in_scope: true,
        writeback: None,
    };

    /// The decisions for `kinds` in order, in scope.
    fn decisions(state: &mut PlanState, kinds: &[OpKind]) -> Vec<Decision> {
        kinds
            .iter()
            .map(|&kind| state.decide(&op(kind), IN_SCOPE).decision)
            .collect()
    }

    use Decision::{Fail, KillAfter, Proceed};
    use OpKind::{Getattr, Lookup, Release, Rename, Write};

    #[test]
    fn rename_3_plus_1_fires_on_the_op_after_the_third_rename() {
        let mut state = plan(&["rename#3+1:kill-after"]);
        let kill = KillAfter(Signal::SIGKILL);
        assert_eq!(
            decisions(
                &mut state,
                &[Rename, Getattr, Rename, Rename, Lookup, Getattr]
            ),
            [Proceed, Proceed, Proceed, Proceed, kill, Proceed]
        );
    }

    #[test]
    fn the_nth_match_fires_once_and_a_rule_without_n_on_every_match() {
        let mut state = plan(&["write#2:errno=EIO"]);
        let eio = Fail(libc::EIO);
        assert_eq!(
            decisions(&mut state, &[Write, Getattr, Write, Write]),
            [Proceed, Proceed, eio, Proceed]
        );
        let mut state = plan(&["write:errno=EIO"]);
        assert_eq!(
            decisions(&mut state, &[Write, Getattr, Write]),
            [eio, Proceed, eio]
        );
    }

    #[test]
    fn enospc_persists_for_ops_that_need_space() {
        let mut state = plan(&["write#1:errno=ENOSPC"]);
        let full = Fail(libc::ENOSPC);
        assert_eq!(
            decisions(
                &mut state,
                &[
                    Write,
                    Getattr,
                    OpKind::Create,
                    Rename,
                    Write,
                    OpKind::Unlink
                ]
            ),
            // A rename and an unlink need no new space: they go through.
            [full, Proceed, full, Proceed, full, Proceed]
        );
        // The next run has its space back.
        state.new_run();
        assert_eq!(decisions(&mut state, &[Write]), [Proceed]);
        // One failed call (`/once`) does not fill the disk.
        let mut state = plan(&["write#1:errno=ENOSPC/once"]);
        assert_eq!(
            decisions(&mut state, &[Write, Write]),
            [Fail(libc::ENOSPC), Proceed]
        );
    }

    #[test]
    fn a_disk_that_fills_inside_a_write_writes_short_then_is_full() {
        let mut state = plan(&["write#1:short-write=50%+errno=ENOSPC"]);
        let full = Fail(libc::ENOSPC);
        assert_eq!(
            decisions(&mut state, &[Write, Write, Rename, OpKind::Create]),
            [Decision::ShortWrite(2048), full, Proceed, full]
        );
        // At an op that writes no data the disk is full at once.
        let mut state = plan(&["create#1:short-write=50%+errno=ENOSPC"]);
        assert_eq!(
            decisions(&mut state, &[OpKind::Create, Write]),
            [full, full]
        );
    }

    #[test]
    fn a_lasting_error_at_a_read_fails_every_later_read_of_that_file() {
        let mut state = plan(&["read#1:errno=EIO/persist"]);
        let read = |ino| OpRecord {
            ino,
            ..op(OpKind::Read)
        };
        let decide = |state: &mut PlanState, op: OpRecord| state.decide(&op, IN_SCOPE).decision;
        let eio = Fail(libc::EIO);
        assert_eq!(decide(&mut state, read(7)), eio);
        // The kernel's own retry of the page, and the next read: the same.
        assert_eq!(decide(&mut state, read(7)), eio);
        assert_eq!(decide(&mut state, read(8)), Proceed);
        assert_eq!(decide(&mut state, op(Write)), Proceed);
        assert_eq!(decide(&mut state, read(7)), eio);
        state.new_run();
        assert_eq!(decide(&mut state, read(7)), Proceed);
    }

    #[test]
    fn a_release_is_never_faulted_nor_counted() {
        let mut state = plan(&["*#2:kill-before"]);
        assert_eq!(
            decisions(&mut state, &[Getattr, Release, Lookup]),
            [Proceed, Proceed, Decision::KillBefore(Signal::SIGKILL)]
        );
    }

    #[test]
    fn ops_out_of_scope_are_neither_counted_nor_faulted() {
        let mut state = plan(&["write#1:errno=EIO"]);
        let outside = OpContext::default();
        assert_eq!(state.decide(&op(Write), outside).decision, Proceed);
        assert_eq!(decisions(&mut state, &[Write]), [Fail(libc::EIO)]);
    }

    #[test]
    fn a_short_write_lands_on_writes_only_and_takes_part_of_one() {
        let mut state = plan(&["*#1:short-write=50%"]);
        // The first op is no write: the rule is spent on it.
        assert_eq!(decisions(&mut state, &[Getattr, Write]), [Proceed, Proceed]);
        let mut state = plan(&["write#1:short-write=100"]);
        assert_eq!(decisions(&mut state, &[Write]), [Decision::ShortWrite(100)]);
    }

    #[test]
    fn the_first_rule_that_fires_wins_and_records_its_fault() {
        let mut state = plan(&["write#1:errno=EIO", "write#1:kill-after"]);
        let decided = state.decide(&op(Write), IN_SCOPE);
        assert_eq!(decided.decision, Fail(libc::EIO));
        assert_eq!(decided.fault, Some(Fault::Errno(libc::EIO)));
    }

    #[test]
    fn a_hold_parks_the_next_op_no_rule_faults_and_is_spent_then() {
        let mut state = plan(&["write#2:errno=EIO"]);
        let until = Instant::now();
        state.hold_next(Some(until));
        // Not a release, nor an op out of scope: those go through.
        assert_eq!(state.decide(&op(Release), IN_SCOPE).decision, Proceed);
        assert_eq!(
            state.decide(&op(Write), OpContext::default()).decision,
            Proceed
        );
        assert_eq!(
            decisions(&mut state, &[Write, Write, Write]),
            [Decision::Hold(until), Fail(libc::EIO), Proceed]
        );
        // Taken back before any op met it: nothing is held.
        state.hold_next(Some(until));
        state.hold_next(None);
        assert_eq!(decisions(&mut state, &[Getattr]), [Proceed]);
    }

    #[test]
    fn a_writer_killed_at_a_writeback_write_loses_the_pages_after_it() {
        let mut state = plan(&["write#1:kill-within=50%"]);
        let writeback = OpContext {
            in_scope: true,
            writeback: Some(7),
        };
        assert_eq!(
            state.decide(&op(Write), writeback).decision,
            Decision::KillWithin(2048)
        );
        // The kernel sends the rest of its pages: they never reach the disk.
        assert_eq!(
            state.decide(&op(Write), writeback).decision,
            Fail(libc::EIO)
        );
        // Another handle's writes are not lost; nor are this one's once it
        // is closed and its number reused.
        let other = OpContext {
            writeback: Some(8),
            ..writeback
        };
        assert_eq!(state.decide(&op(Write), other).decision, Proceed);
        state.released(7);
        assert_eq!(state.decide(&op(Write), writeback).decision, Proceed);
    }

    #[test]
    fn a_new_plan_counts_from_zero() {
        let mut state = plan(&["write#1:errno=ENOSPC"]);
        assert_eq!(decisions(&mut state, &[Write]), [Fail(libc::ENOSPC)]);
        state.set_plan(FaultPlan::from_specs(&["write#2:kill-after"]).expect("spec"));
        assert_eq!(
            decisions(&mut state, &[Write, Write]),
            [Proceed, KillAfter(Signal::SIGKILL)]
        );
    }
}
