//! Any command's work on a prepared scenario, run and reported: the one
//! path from a [`Job`] to its [`Report`] that the command line and the
//! library share.

use std::sync::atomic::AtomicBool;

use fault_fs::Rule;

use crate::error::RunError;
use crate::explore::{explore, ExploreOptions};
use crate::fuzz::{fuzz, FuzzOptions};
use crate::outcome::Event;
use crate::report::Report;
use crate::runner::{run, RunOptions};
use crate::target::Prepared;

/// What to do with a scenario.
#[derive(Clone, Debug)]
pub enum Job {
    /// One run under these faults, retried after an interruption unless
    /// told not to (`run`, `check`).
    Run {
        /// The faults in force.
        faults: Vec<Rule>,
        /// Its knobs.
        options: RunOptions,
    },
    /// Every crash point of a recorded run (`explore`).
    Explore(ExploreOptions),
    /// Random fault schedules (`fuzz`).
    Fuzz(FuzzOptions),
}

/// Runs `job` on `prepared` and gives its report. `stop` ends an
/// exploration or a fuzzing session early (a run goes to its end);
/// `on_event` sees progress.
pub fn run_job(
    prepared: &Prepared,
    job: &Job,
    stop: &AtomicBool,
    on_event: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Report, RunError> {
    let scenario = &prepared.scenario;
    let target = prepared.describe_target();
    Ok(match job {
        Job::Run { faults, options } => {
            Report::of_run(scenario, &target, run(prepared, faults, options)?)
        }
        Job::Explore(options) => Report::of_exploration(
            scenario,
            &target,
            explore(prepared, options, stop, on_event)?,
        ),
        Job::Fuzz(options) => {
            let progress = |cases, shrinking| on_event(Event::Case { cases, shrinking });
            Report::of_fuzz(scenario, &target, fuzz(prepared, options, stop, &progress)?)
        }
    })
}
