//! Command line: clap types, the exit-code table, and `anyhow` at the edge.
//!
//! Exit codes (documented in the README):
//! - 0: every expectation met (or, for `mount`, a clean unmount);
//! - 1: a finding, or an expectation not met;
//! - 2: usage or scenario error;
//! - 3: environment: no FUSE, no permission.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fault_fs::{load_dir, FaultFs, FaultMount, FaultPlan, MountError, Trace, Tree};

/// Proves whether a way of replacing an executable or shared library
/// survives being interrupted.
#[derive(Debug, Parser)]
#[command(name = "swapfault", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mount fault-fs in the foreground (Ctrl-C or SIGTERM unmounts).
    Mount(MountArgs),
}

#[derive(Debug, clap::Args)]
struct MountArgs {
    /// Empty directory to mount on.
    dir: PathBuf,
    /// TOML fault plan file ([[rule]] tables); may be repeated.
    #[arg(long = "plan", value_name = "FILE")]
    plans: Vec<PathBuf>,
    /// One fault rule, OPS[#N][@GLOB]:FAULT (e.g. `write#3:kill-after`); may be repeated.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<String>,
    /// Write the trace as JSON Lines to FILE on unmount.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Copy this directory's contents into the mount first.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
}

/// Errors at the binary's edge, each mapped to an exit code.
#[derive(Debug)]
enum Failure {
    Usage(anyhow::Error),
    Environment(anyhow::Error),
}

impl From<MountError> for Failure {
    fn from(err: MountError) -> Self {
        if err.is_environment() {
            Failure::Environment(err.into())
        } else {
            Failure::Usage(err.into())
        }
    }
}

/// Sets up logging from `SWAPFAULT_LOG` (default: warnings), to stderr.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWAPFAULT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Parses the command line, runs it, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Mount(args) => mount(args),
    };
    match outcome {
        Ok(code) => code,
        Err(Failure::Usage(err)) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
        Err(Failure::Environment(err)) => {
            eprintln!("error: {err:#}");
            ExitCode::from(3)
        }
    }
}

fn load_plan(plans: &[PathBuf], faults: &[String]) -> Result<FaultPlan, Failure> {
    let mut plan = FaultPlan::default();
    for path in plans {
        let file = FaultPlan::from_file(path).map_err(|e| Failure::Usage(e.into()))?;
        plan.rules.extend(file.rules);
    }
    let specs = FaultPlan::from_specs(faults).map_err(|e| Failure::Usage(e.into()))?;
    plan.rules.extend(specs.rules);
    Ok(plan)
}

fn mount(args: MountArgs) -> Result<ExitCode, Failure> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

    let plan = load_plan(&args.plans, &args.faults)?;
    let mut tree = Tree::new();
    if let Some(from) = &args.from {
        if !from.is_dir() {
            return Err(Failure::Usage(anyhow::anyhow!(
                "--from {} is not a directory (hint: name the directory whose contents to copy in)",
                from.display()
            )));
        }
        load_dir(&mut tree, from)?;
    }
    // Register before mounting so a signal during the mount is not lost.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Failure::Environment(e.into()))?;
    let mount = FaultMount::mount(FaultFs::new(tree, plan), &args.dir)?;
    eprintln!(
        "swapfault: fault-fs mounted on {} (Ctrl-C or SIGTERM unmounts)",
        mount.path().display()
    );
    let dir = mount.path().to_owned();
    loop {
        if let Some(signal) = signals.pending().next() {
            tracing::info!(signal, "unmounting on signal");
            break;
        }
        if !fault_fs::is_mount_point(&dir) {
            eprintln!("swapfault: {} was unmounted from outside", dir.display());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let records = mount.handle().take_trace();
    let unmounted = mount.unmount();
    if let Some(path) = &args.trace {
        let file = std::fs::File::create(path).map_err(|e| {
            Failure::Usage(anyhow::anyhow!("cannot write trace {}: {e}", path.display()))
        })?;
        Trace::write_json_lines(&records, std::io::BufWriter::new(file)).map_err(|e| {
            Failure::Usage(anyhow::anyhow!("cannot write trace {}: {e}", path.display()))
        })?;
    }
    unmounted.map_err(|e| Failure::Environment(anyhow::anyhow!("unmount failed: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
