//! harness: scenarios, the world a run happens in, the runner, the
//! explorer and the fuzzer, the judge, and the reports. Laid out along the
//! data flow (ARCHITECTURE.md has the map):
//!
//! - [`scenario`]: a scenario file (or an ad-hoc strategy) as a
//!   [`Scenario`], with its [`scenario::Target`] and
//!   [`scenario::Strategy`];
//! - [`target`]: its versions read or built ([`Prepared`]) and the target's
//!   state in a tree;
//! - [`stage`]: the mount, NEW staged, the live processes ([`live`]) and the
//!   strategy's [`sandbox`]; child processes in [`proc`];
//! - [`runner`]: one run through its retries and power cut ([`run`]), with
//!   [`probe`]s at stalled ops, giving a [`RunOutcome`];
//! - [`observe`]: what a run saw, as data; [`judge`]: the pure verdicts;
//! - [`explore`] and [`fuzz`]: many runs on a [`pool`] of workers, giving
//!   an [`outcome::Exploration`] or an [`outcome::FuzzOutcome`];
//! - [`report`]: the one [`Report`] of every command and its renderers.
//!
//! [`job`] runs any command's work and gives its report: what the CLI and
//! the library share.
//!
//! ```no_run
//! use swapfault_harness::{run, Prepared, RunOptions, Scenario, TargetKind};
//!
//! let scenario = Scenario::ad_hoc(r#"cp "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET""#, TargetKind::Lib, 256 * 1024, 224 * 1024);
//! let prepared = Prepared::new(scenario).unwrap();
//! let outcome = run(&prepared, &["write#1:kill-after".parse().unwrap()], &RunOptions::default()).unwrap();
//! for finding in outcome.evaluation.findings() {
//!     println!("{finding}");
//! }
//! ```
//!
//! harness knows nothing of the command line; the binary crate does.

pub mod barrier;
pub mod bench;
pub mod canary;
pub mod clock;
pub mod demo;
pub mod error;
pub mod explore;
pub mod fuzz;
pub mod job;
pub mod judge;
pub mod live;
pub mod observe;
pub mod outcome;
mod pool;
pub mod probe;
pub mod proc;
pub mod report;
pub mod retry;
pub mod runner;
pub mod sample;
pub mod sandbox;
pub mod scenario;
pub mod self_update;
pub mod size;
pub mod stage;
pub mod target;

pub use error::RunError;
pub use observe::TargetClass;
pub use outcome::{Finding, Property, RunOutcome, Verdict};
pub use report::Report;
pub use runner::{run, RunOptions};
pub use scenario::{Expectation, Scenario, ScenarioError, TargetKind};
pub use target::Prepared;
