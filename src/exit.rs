//! The exit codes, in one place, and the error types mapped to them.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | every expectation met (no finding, or only findings the scenario expects); `mount`: a clean unmount |
//! | 1 | a finding, or an expectation not met |
//! | 2 | usage or scenario error |
//! | 3 | environment: no `/dev/fuse`, no permission, no C compiler |
//! | 130 | interrupted (Ctrl-C, SIGTERM, SIGHUP): children killed, mounts gone |
//! | 141 | stdout closed by its reader (`swapfault explore … \| head`): quietly, as a shell reports SIGPIPE |
//!
//! Every error variant is matched by name (no `_` arm, a test checks it):
//! a new variant does not compile until it is given a code here.

use fault_fs::{MountError, PlanError};
use harness::bench::BenchError;
use harness::canary::CanaryError;
use harness::demo::DemoError;
use harness::live::LiveError;
use harness::sandbox::SandboxError;
use harness::{RunError, ScenarioError};

/// The exit codes as `--help` prints them.
pub const HELP: &str = "Exit codes:
  0   every expectation met (mount: a clean unmount)
  1   a finding, or an expectation not met
  2   usage or scenario error
  3   environment: no /dev/fuse, no permission, no C compiler
  130 interrupted (Ctrl-C, SIGTERM, SIGHUP): children killed, mounts gone
  141 stdout closed by its reader: quietly, as a shell reports SIGPIPE";

/// An exit code of `swapfault`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every expectation met.
    Success,
    /// A finding, or an expectation not met.
    Findings,
    /// Usage or scenario error.
    Usage,
    /// The machine cannot run it: no FUSE, no permission, no compiler.
    Environment,
    /// Stopped by Ctrl-C, SIGTERM or SIGHUP.
    Interrupted,
    /// Stdout was closed by its reader (a pipe into `head`).
    BrokenPipe,
}

impl Exit {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Findings => 1,
            Exit::Usage => 2,
            Exit::Environment => 3,
            Exit::Interrupted => 130,
            // 128 + SIGPIPE: what a shell reports for a writer the pipe killed.
            Exit::BrokenPipe => 141,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// The exit code an error means.
pub trait ExitOf {
    /// Which code.
    fn exit(&self) -> Exit;
}

impl ExitOf for MountError {
    fn exit(&self) -> Exit {
        match self {
            MountError::NoFuseDevice | MountError::NoPermission | MountError::Mount { .. } => {
                Exit::Environment
            }
            MountError::MissingDir(_)
            | MountError::NotADir(_)
            | MountError::NotEmpty(_)
            | MountError::AlreadyMounted(_)
            | MountError::Populate { .. } => Exit::Usage,
        }
    }
}

impl ExitOf for CanaryError {
    fn exit(&self) -> Exit {
        match self {
            CanaryError::NoCompiler { .. } | CanaryError::Build(_) | CanaryError::Cache { .. } => {
                Exit::Environment
            }
            CanaryError::Size(_) => Exit::Usage,
        }
    }
}

impl ExitOf for LiveError {
    fn exit(&self) -> Exit {
        match self {
            // The canary is ours: when it cannot run, the machine is at fault.
            LiveError::Spawn { .. } | LiveError::Ended { .. } | LiveError::Silent { .. } => {
                Exit::Environment
            }
        }
    }
}

impl ExitOf for PlanError {
    fn exit(&self) -> Exit {
        match self {
            PlanError::Spec { .. }
            | PlanError::CrashPoint { .. }
            | PlanError::Read { .. }
            | PlanError::File { .. } => Exit::Usage,
        }
    }
}

impl ExitOf for ScenarioError {
    fn exit(&self) -> Exit {
        match self {
            ScenarioError::Read { .. }
            | ScenarioError::Parse { .. }
            | ScenarioError::Invalid { .. } => Exit::Usage,
        }
    }
}

impl ExitOf for RunError {
    fn exit(&self) -> Exit {
        match self {
            RunError::Mount(err) => err.exit(),
            RunError::Canary(err) => err.exit(),
            RunError::Plan(err) => err.exit(),
            RunError::Live(err) => err.exit(),
            // Staging files in a temp dir: the machine.
            RunError::Io { .. } => Exit::Environment,
            RunError::Sandbox(err) => err.exit(),
            // The scenario's own commands.
            RunError::LiveCommand { .. }
            | RunError::LiveCommandEnded { .. }
            | RunError::SameVersions { .. }
            | RunError::OwnerRootless { .. }
            | RunError::StrategyFails { .. } => Exit::Usage,
        }
    }
}

impl ExitOf for SandboxError {
    fn exit(&self) -> Exit {
        match self {
            SandboxError::Spawn { .. }
            | SandboxError::Namespace(_)
            | SandboxError::UserNamespace(_)
            | SandboxError::FuseDevice(_) => Exit::Environment,
        }
    }
}

impl ExitOf for DemoError {
    fn exit(&self) -> Exit {
        match self {
            DemoError::Run(err) => err.exit(),
            DemoError::Io(_) => Exit::Environment,
            // A scenario of the demo's own that does not parse.
            DemoError::Spec(_) => Exit::Usage,
        }
    }
}

impl ExitOf for BenchError {
    fn exit(&self) -> Exit {
        match self {
            BenchError::Setup { .. } => Exit::Usage,
            BenchError::Io { .. } => Exit::Environment,
            // A strategy of ours that replaced wrongly: no expectation met.
            BenchError::Wrong { .. } => Exit::Findings,
            BenchError::Interrupted => Exit::Interrupted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_variant_is_mapped_by_name() {
        // An exhaustive match with no catch-all arm is what makes a new
        // variant fail to compile until it has a code: keep it that way.
        let source = include_str!("exit.rs");
        let mappings = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
        assert!(
            !mappings.contains("_ =>") && !mappings.contains("matches!"),
            "a catch-all arm in an exit mapping would let a new variant through unmapped"
        );
    }

    #[test]
    fn the_table_in_the_docs_is_the_codes() {
        let source = include_str!("exit.rs");
        for (exit, row) in [
            (Exit::Success, "//! | 0 |"),
            (Exit::Findings, "//! | 1 |"),
            (Exit::Usage, "//! | 2 |"),
            (Exit::Environment, "//! | 3 |"),
            (Exit::Interrupted, "//! | 130 |"),
        ] {
            assert!(row.contains(&format!("| {} |", exit.code())));
            assert!(source.contains(row), "{row}");
        }
    }

    #[test]
    fn machine_problems_are_3_and_input_problems_are_2() {
        assert_eq!(MountError::NoFuseDevice.exit(), Exit::Environment);
        assert_eq!(MountError::NotEmpty("/mnt".into()).exit(), Exit::Usage);
        assert_eq!(
            RunError::from(MountError::NoPermission).exit(),
            Exit::Environment
        );
        assert_eq!(CanaryError::Size(1).exit(), Exit::Usage);
        let bad: Result<fault_fs::Rule, _> = "wrote#1:kill-after".parse();
        assert_eq!(bad.map(|_| ()).unwrap_err().exit(), Exit::Usage);
    }
}
