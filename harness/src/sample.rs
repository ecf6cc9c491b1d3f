//! Long runs of alike ops, sampled. A 64 MiB copy is 512 writes of one
//! file, each with the same crash points, and the states they leave differ
//! only in how much was copied. Checking every one costs time quadratic in
//! the size and tells nothing the boundaries and a spread of members do
//! not: a run longer than [`LONG`] is checked at its first and last op,
//! every power of two and [`DRAWN`] more drawn with a seed. An op that is
//! not checked takes the ops after it up to the next mutating one with it
//! (a stall at `write#9+1` sees what a stall at `write#9` does).
//! `--exhaustive` checks every op.

use fault_fs::OpRecord;

pub use crate::outcome::{Coverage, SampledRun, DRAWN};

/// A run of alike ops is sampled only when it is longer than this.
pub const LONG: usize = 16;

/// What sampling keeps of a trace.
#[derive(Clone, Debug, Default)]
pub struct Sampling {
    /// Per op of the trace: whether its crash points are checked.
    keep: Vec<bool>,
    /// The runs that were sampled.
    pub runs: Vec<SampledRun>,
}

impl Sampling {
    /// Samples the long runs of alike mutating ops in `trace`: ops of one
    /// kind on one path (and one destination) one after another, with only
    /// ops that change nothing between them.
    pub fn of(trace: &[OpRecord], coverage: Coverage) -> Sampling {
        let mut keep = vec![true; trace.len()];
        let Coverage::Sampled { seed } = coverage else {
            return Sampling {
                keep,
                runs: Vec::new(),
            };
        };
        let mut runs = Vec::new();
        for (number, run) in alike_runs(trace).into_iter().enumerate() {
            if run.len() <= LONG {
                continue;
            }
            let chosen = members(run.len(), seed ^ number as u64);
            for (position, &start) in run.iter().enumerate() {
                if chosen.contains(&position) {
                    continue;
                }
                // The op and what follows it up to the next mutating op.
                let end = trace[start + 1..]
                    .iter()
                    .position(OpRecord::is_mutating)
                    .map_or(trace.len(), |n| start + 1 + n);
                keep[start..end].iter_mut().for_each(|k| *k = false);
            }
            let first = &trace[run[0]];
            runs.push(SampledRun {
                kind: first.kind,
                path: first.path.to_string(),
                first: first.name.to_string(),
                ops: run.len(),
                checked: chosen.len(),
            });
        }
        Sampling { keep, runs }
    }

    /// Whether the crash points at op `index` of the trace are checked.
    pub fn keeps(&self, index: usize) -> bool {
        self.keep.get(index).copied().unwrap_or(true)
    }
}

/// The runs of alike mutating ops of `trace`, as indexes into it.
fn alike_runs(trace: &[OpRecord]) -> Vec<Vec<usize>> {
    let key = |op: &OpRecord| (op.kind, op.path.clone(), op.path2.clone());
    let mut runs: Vec<Vec<usize>> = Vec::new();
    let mut last = None;
    for (index, op) in trace.iter().enumerate() {
        if !op.is_mutating() {
            continue;
        }
        let this = key(op);
        match runs.last_mut() {
            Some(run) if last.as_ref() == Some(&this) => run.push(index),
            _ => runs.push(vec![index]),
        }
        last = Some(this);
    }
    runs
}

/// The positions checked in a run of `len`: the first, the last, every
/// power of two (counted from 1) and [`DRAWN`] more drawn with `seed`, in
/// order.
pub fn members(len: usize, seed: u64) -> Vec<usize> {
    use rand::{RngExt, SeedableRng};
    let mut chosen: Vec<usize> = vec![0, len.saturating_sub(1)];
    chosen.extend(
        (0..usize::BITS)
            .map(|k| 1usize << k)
            .take_while(|&n| n <= len)
            .map(|n| n - 1),
    );
    chosen.sort_unstable();
    chosen.dedup();
    // Drawn among the members not chosen yet, as the canary's padding is
    // (a seeded StdRng): the same seed draws the same members.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let wanted = (chosen.len() + DRAWN).min(len);
    while chosen.len() < wanted {
        let position = rng.random_range(0..len);
        if let Err(at) = chosen.binary_search(&position) {
            chosen.insert(at, position);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_keeps_its_boundaries_its_powers_of_two_and_its_draws() {
        let kept = members(512, 7);
        for must in [0, 1, 3, 7, 15, 31, 63, 127, 255, 511] {
            assert!(kept.contains(&must), "{must} not in {kept:?}");
        }
        assert_eq!(kept.len(), 10 + DRAWN, "{kept:?}");
        assert_eq!(kept, members(512, 7), "a seed draws the same members");
        assert_ne!(kept, members(512, 8), "another seed draws others");
        // A run of 17: 0, 1, 3, 7, 15 and 16, then the draws.
        assert_eq!(members(LONG + 1, 0).len(), 6 + DRAWN);
    }
}
