//! Why a run could not be carried out: the one error type of the engine
//! (as opposed to a finding, which is a run's result).

use fault_fs::{MountError, PlanError};

use crate::canary::CanaryError;
use crate::live::LiveError;
use crate::observe::Exit;
use crate::sandbox::SandboxError;

/// Why a run could not be carried out (as opposed to a finding).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Mounting failed.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// The canary could not be built.
    #[error(transparent)]
    Canary(#[from] CanaryError),
    /// A fault spec does not parse.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Files could not be read or staged.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The live canary could not be started.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// The strategy's sandbox could not be started.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// One of the scenario's live commands could not be started.
    #[error("cannot start live command `{command}`: {source}")]
    LiveCommand {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// OLD and NEW hold the same bytes: no run could tell them apart.
    #[error("{old} and {new} hold the same bytes: there is nothing to replace (hint: give --new the version you ship next)")]
    SameVersions {
        /// OLD's path.
        old: String,
        /// NEW's path.
        new: String,
    },
    /// An owner other than root's was asked for in rootless mode, where one
    /// uid is mapped and every file has that one owner.
    #[error("target.owner {uid}:{gid} needs a run as root: rootless runs map a single uid, so every file has one owner (hint: run as root to test ownership, or leave the owner out)")]
    OwnerRootless {
        /// The uid asked for.
        uid: u32,
        /// The gid asked for.
        gid: u32,
    },
    /// The undisturbed run failed: a missing tool or file, a strategy that
    /// cannot replace even when nothing goes wrong. Every crash point
    /// would only repeat it.
    #[error(
        "the strategy fails with no fault injected ({exit} in {workdir}{said}) (hint: {hint})"
    )]
    StrategyFails {
        /// How the undisturbed run ended.
        exit: Exit,
        /// The directory it ran in.
        workdir: String,
        /// `: ` and the last line of its stderr, if it printed one.
        said: String,
        /// What to do: fix it first, or, where it met a call fault-fs
        /// cannot serve, which one.
        hint: String,
    },
    /// One of the scenario's live commands ended before the strategy ran.
    #[error("live command `{command}` ended before the strategy ran ({exit}) (hint: a live command must keep running, e.g. `./canary` or `sleep 60 < $SWAPFAULT_TARGET`)")]
    LiveCommandEnded {
        /// The command.
        command: String,
        /// How it ended.
        exit: Exit,
    },
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}
