//! harness: scenarios, live canaries, probes, the runner, checks and reports.
//!
//! The principal types:
//! - [`Scenario`]: a parsed scenario file (or an ad-hoc `check`);
//! - [`Prepared`]: a scenario with its old and new versions built;
//! - [`run`]: one run under a list of fault [`fault_fs::Rule`]s, giving a
//!   [`RunOutcome`]: what it observed ([`check::Observations`]) and one
//!   [`check::Verdict`] per [`Property`];
//! - [`check::evaluate`]: the pure judgement of observations;
//! - [`explore::explore`]: every crash point of a recorded run;
//! - [`Report`]: what `run`, `check` and `explore` found, and its renderers
//!   in [`report`] (human, JSON, JUnit).
//!
//! ```no_run
//! use harness::{run, Prepared, RunOptions, Scenario, TargetKind};
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

pub mod bench;
pub mod canary;
pub mod check;
pub mod demo;
pub mod explore;
pub mod fuzz;
pub mod live;
pub mod report;
pub mod runner;
pub mod sandbox;
pub mod scenario;

pub use check::{classify, Finding, Property, TargetClass, Verdict};
pub use report::Report;
pub use runner::{run, Prepared, RunError, RunOptions, RunOutcome};
pub use scenario::{Expectation, Scenario, ScenarioError, TargetKind};
