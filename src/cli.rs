//! Command line: clap types, and `anyhow` at the edge. Exit codes are in
//! [`crate::exit`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fault_fs::{load_dir, FaultFs, FaultMount, FaultPlan, Trace, Tree};
use harness::job::{run_job, Job};
use harness::outcome::Event;
use harness::report;
use harness::sample::Coverage;

use crate::exit::{Exit, ExitOf};

/// Proves whether a way of replacing an executable or shared library
/// survives being interrupted.
#[derive(Debug, Parser)]
#[command(name = "swapfault", version, about, after_help = crate::exit::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Colour in the human report: auto (on a terminal, unless NO_COLOR is
    /// set), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

/// When the human report is coloured (`--color`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set and not empty (no-color.org).
    Auto,
    /// Always, piped or not, `NO_COLOR` or not.
    Always,
    /// Never.
    Never,
}

/// Whether this run colours its human report: decided once, in [`main`].
static COLOR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// See [`COLOR`].
fn color() -> bool {
    COLOR.get().copied().unwrap_or(false)
}

impl ColorChoice {
    fn colors(self) -> bool {
        use std::io::IsTerminal;
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
                    && std::io::stdout().is_terminal()
            }
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mount fault-fs in the foreground (Ctrl-C or SIGTERM unmounts).
    Mount(MountArgs),
    /// Run one scenario once, with its faults or those given here.
    Run(RunArgs),
    /// Run an ad-hoc strategy once against the built-in canary or your own files.
    Check(CheckArgs),
    /// The teaching demo: cp vs install vs temp+fsync+rename, under a live canary.
    Demo,
    /// Run every crash point of scenarios (files or directories of them), or of an ad-hoc strategy.
    Explore(ExploreArgs),
    /// Try random schedules of one to three faults across a run and its retries; shrink a failing one.
    Fuzz(FuzzArgs),
    /// Time the catalog's strategies natively on a real disk, step by step, next to what each guarantees.
    Bench(BenchArgs),
    /// Print the completion script for SHELL (e.g. `swapfault completions bash > ~/.local/share/bash-completion/completions/swapfault`).
    Completions {
        /// The shell: bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },
    /// Print the manual page, in roff (e.g. `swapfault man > swapfault.1; man ./swapfault.1`).
    Man,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// The directory (and so the file system) to bench in: the targets go
    /// in a temp dir made there and removed after [default: the current
    /// directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Target sizes, comma-separated (bytes, or with KiB/MiB).
    #[arg(long, value_name = "SIZES", default_value = "1MiB,16MiB,64MiB", value_delimiter = ',', value_parser = parse_bench_size)]
    size: Vec<u64>,
    /// Strategies, comma-separated, or `all`: cp, pwrite-in-place, install,
    /// temp-rename, atomic-fsync, link-aside-fsync.
    #[arg(
        long,
        value_name = "NAME|all",
        default_value = "all",
        value_delimiter = ','
    )]
    strategy: Vec<String>,
    /// Counted runs of each strategy and size (the table gives their median).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Uncounted runs before them.
    #[arg(long, value_name = "N", default_value_t = 1)]
    warmup: u32,
    /// Drop the page cache before each counted run (root only; without
    /// permission the bench says so and goes on with warm caches).
    #[arg(long)]
    drop_caches: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also draw median time per strategy and size to FILE (SVG).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// A bench size: anything from 1 byte to 4 GiB.
fn parse_bench_size(text: &str) -> Result<u64, String> {
    match harness::size::parse_size(text)? {
        0 => Err("a size must be at least 1 byte".into()),
        size if size > 4 << 30 => Err("sizes above 4 GiB are not benched".into()),
        size => Ok(size),
    }
}

#[derive(Debug, clap::Args)]
struct ExploreArgs {
    /// Scenario files, or directories of them (none: give --strategy).
    #[arg(conflicts_with = "self_update")]
    scenarios: Vec<PathBuf>,
    /// An ad-hoc strategy to explore against the built-in canary (or your files) instead.
    #[arg(long, value_name = "CMD", conflicts_with_all = ["scenarios", "self_update"])]
    strategy: Option<String>,
    #[command(flatten)]
    canary: CanaryArgs,
    /// Parallel runs [default: number of cores].
    #[arg(long, env = "SWAPFAULT_WORKERS")]
    workers: Option<usize>,
    /// Run only share K of N of the crash points (deterministic), e.g. 1/3.
    #[arg(long, value_name = "K/N")]
    partition: Option<harness::outcome::Partition>,
    /// Run at most this many crash points per scenario.
    #[arg(long, value_name = "N")]
    max_runs: Option<usize>,
    #[command(flatten)]
    time: TimeArgs,
    /// Also kill with SIGTERM at every mutating op.
    #[arg(long)]
    sigterm: bool,
    /// Check every op of a long run of alike ops (the 512 writes of a
    /// 64 MiB copy), not its first and last, powers of two and 8 drawn.
    #[arg(long)]
    exhaustive: bool,
    /// The seed that draws the sampled ops of a long run.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        conflicts_with = "exhaustive"
    )]
    seed: u64,
    /// Print JSON instead of the human report.
    #[arg(long)]
    json: bool,
    /// Also write JUnit XML (one test case per scenario and property) to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct FuzzArgs {
    /// Scenario file (TOML).
    #[arg(required_unless_present_any = ["strategy", "self_update"], conflicts_with = "self_update")]
    scenario: Option<PathBuf>,
    /// An ad-hoc strategy to fuzz against the built-in canary (or your files) instead.
    #[arg(long, value_name = "CMD", conflicts_with_all = ["scenario", "self_update"])]
    strategy: Option<String>,
    #[command(flatten)]
    canary: CanaryArgs,
    /// New fault schedules to try, after the regressions.
    #[arg(long, default_value_t = 256, value_name = "N")]
    cases: u32,
    /// The seed of the schedules [default: drawn, and printed].
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Stop trying new schedules after this long, e.g. 2m.
    #[arg(long, default_value = "45s", value_parser = some_time)]
    time: Duration,
    /// Cases run at once, each on its own mount; the same seed finds the
    /// same schedule with any number [default: number of cores].
    #[arg(long, env = "SWAPFAULT_WORKERS", value_name = "N")]
    workers: Option<usize>,
    /// At most this many runs shrinking a failing schedule.
    #[arg(long, default_value_t = 200, value_name = "N")]
    shrink_steps: u32,
    /// At most this long shrinking a failing schedule [default: no time
    /// limit: shrinking is bound by --shrink-steps, so the same seed shrinks
    /// the same way on any machine]
    #[arg(long, value_parser = humantime::parse_duration)]
    shrink_time: Option<Duration>,
    /// Keep failing seeds in FILE and replay them first [default: SCENARIO
    /// with the extension .fuzz-regressions, next to it; none for --strategy]
    #[arg(long, value_name = "FILE")]
    regressions: Option<PathBuf>,
    #[command(flatten)]
    times: TimeArgs,
    /// Print JSON instead of the human report.
    #[arg(long)]
    json: bool,
    /// Also write JUnit XML (one test case: the schedules tried) to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Scenario file (TOML).
    scenario: PathBuf,
    /// The canary's size, instead of the file's `target.size` (NEW's then
    /// 7/8 of it unless --new-size says)
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    size: Option<u64>,
    /// The new canary's size, instead of the file's `target.new_size` (as
    /// fuzz reproductions give it)
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    new_size: Option<u64>,
    /// The kernel to model, instead of the scenario's `platform`: linux or macos
    #[arg(long, value_name = "linux|macos")]
    platform: Option<harness::scenario::Platform>,
    #[command(flatten)]
    once: OnceArgs,
}

/// What `run` and `check` share: the faults of one run and its output.
#[derive(Debug, clap::Args)]
struct OnceArgs {
    /// Fault rule, OPS[#N[+K]][@GLOB]:FAULT (for `run`, replaces the scenario's faults); may be repeated.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<String>,
    /// Do not retry after an interruption.
    #[arg(long)]
    no_retry: bool,
    #[command(flatten)]
    time: TimeArgs,
    /// Print JSON instead of the human report.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The strategy: a shell command that replaces $SWAPFAULT_TARGET with $SWAPFAULT_NEW.
    #[arg(
        long,
        value_name = "CMD",
        required_unless_present = "self_update",
        conflicts_with = "self_update"
    )]
    strategy: Option<String>,
    #[command(flatten)]
    canary: CanaryArgs,
    #[command(flatten)]
    once: OnceArgs,
}

/// A duration that leaves time to test something: 0 would time out every
/// run, or try no schedule, and pass with nothing tested.
fn some_time(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(time) if time.is_zero() => Err("0 tests nothing (hint: e.g. 30s)".into()),
        Ok(time) => Ok(time),
        Err(err) => Err(err.to_string()),
    }
}

/// How long a strategy run may take: what `run`, `check`, `explore` and
/// `fuzz` share.
#[derive(Debug, clap::Args)]
struct TimeArgs {
    /// Timeout of the strategy's first process in each run (overrides the
    /// scenario's), e.g. 30s
    #[arg(long, value_parser = some_time)]
    timeout: Option<Duration>,
    /// How long what the strategy leaves running may go on after it
    /// (overrides the scenario's `strategy.linger`), e.g. 10s
    #[arg(long, value_parser = humantime::parse_duration)]
    linger: Option<Duration>,
}

impl TimeArgs {
    /// `scenario` with the times given, if any were.
    fn on(&self, scenario: harness::Scenario) -> harness::Scenario {
        let scenario = match self.timeout {
            Some(timeout) => scenario.with_timeout(timeout),
            None => scenario,
        };
        match self.linger {
            Some(linger) => scenario.with_linger(linger),
            None => scenario,
        }
    }
}

/// The built-in canary an ad-hoc strategy (`--strategy`) replaces.
#[derive(Debug, clap::Args)]
struct CanaryArgs {
    /// What the target is: an executable, a library, or a set of both that must change together.
    #[arg(long, default_value = "lib", value_name = "exe|lib|set")]
    target: harness::TargetKind,
    /// Canary size (bytes, or with KiB/MiB) [default: a scenario file's
    /// target.size, else 256KiB]
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    size: Option<u64>,
    /// Size of the new canary [default: 7/8 of --size, so that a stale tail
    /// of the old shows]
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    new_size: Option<u64>,
    /// The target is a symlink to a versioned file beside it
    /// (libcanary.so -> libcanary.so.1), as libraries are installed; NEW is
    /// staged as the next version (libcanary.so.2)
    #[arg(long)]
    symlinked: bool,
    /// Your own old version instead of the canary (with --new); no live
    /// canary runs, give live processes with --live
    #[arg(long, value_name = "FILE", requires = "new")]
    old: Option<PathBuf>,
    /// Your own new version (with --old)
    #[arg(long, value_name = "FILE", requires = "old")]
    new: Option<PathBuf>,
    /// A live process, `sh -c CMD` started in the target's directory before
    /// the strategy runs (it must keep running); may be repeated
    #[arg(long = "live", value_name = "CMD")]
    live_commands: Vec<String>,
    /// Instead of --strategy: the built-in program replaces its own file
    /// (--target exe or lib) and executes itself again, by METHOD[+OPTION...]:
    /// in-place, rename or rename-aside, with fsync, copy-meta,
    /// clear-staging, ignore-errors (e.g. rename+fsync+copy-meta+clear-staging)
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["old", "new"])]
    self_update: Option<harness::self_update::SelfUpdate>,
    /// The kernel to model: linux, or macos (code signing: a process whose
    /// executable or mapped library changes on disk is killed) [default: the
    /// scenario's, else linux]
    #[arg(long, value_name = "linux|macos")]
    platform: Option<harness::scenario::Platform>,
}

impl CanaryArgs {
    /// The ad-hoc scenario of `strategy` (or of the self-updating program)
    /// with this canary or these files, on the platform given.
    fn scenario(&self, strategy: Option<&str>) -> Result<harness::Scenario, Failure> {
        let scenario = self.ad_hoc(strategy.unwrap_or_default())?;
        let scenario = match &self.self_update {
            Some(spec) => scenario
                .self_updating(spec.clone())
                .map_err(|m| Failure::usage(anyhow::anyhow!("--self-update: {m}")))?,
            None => scenario,
        };
        Ok(self.on_platform(scenario))
    }

    /// The scenario of a file with the sizes and platform given, if any.
    fn on_file(&self, scenario: harness::Scenario) -> Result<harness::Scenario, Failure> {
        let scenario = sized(scenario, self.size, self.new_size)?;
        Ok(self.on_platform(scenario))
    }

    /// `scenario` on the platform given, if one was.
    fn on_platform(&self, scenario: harness::Scenario) -> harness::Scenario {
        match self.platform {
            Some(platform) => scenario.with_platform(platform),
            None => scenario,
        }
    }

    fn ad_hoc(&self, strategy: &str) -> Result<harness::Scenario, Failure> {
        use harness::scenario::{AdHoc, CanaryProblem};
        let given = AdHoc {
            kind: self.target,
            size: self.size,
            new_size: self.new_size,
            symlinked: self.symlinked,
            files: self.old.clone().zip(self.new.clone()),
            live_commands: self.live_commands.clone(),
        };
        harness::Scenario::from_ad_hoc(strategy, &given).map_err(|problem| {
            Failure::usage(match problem {
                CanaryProblem::Size(m) => anyhow::anyhow!("--size: {m}"),
                CanaryProblem::NewSize(m) => anyhow::anyhow!("--new-size: {m}"),
                CanaryProblem::SymlinkedSet => anyhow::anyhow!(
                    "--symlinked is for one file; a set's files are plain files (hint: drop one)"
                ),
                CanaryProblem::FilesSet => anyhow::anyhow!(
                    "--old/--new: a set is the canary's executable and library (hint: --target exe or lib)"
                ),
                CanaryProblem::FilesSized => anyhow::anyhow!(
                    "--size/--new-size are the canary's; with --old/--new the sizes are the files' (hint: drop them)"
                ),
                CanaryProblem::NotAFile { old, path } => anyhow::anyhow!(
                    "--{}: {} is not a file (hint: check the path)",
                    if old { "old" } else { "new" },
                    path.display()
                ),
            })
        })
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    harness::size::parse_size(text)
}

#[derive(Debug, clap::Args)]
struct MountArgs {
    /// Empty directory to mount on.
    dir: PathBuf,
    /// TOML fault plan file ([[rule]] tables); may be repeated.
    #[arg(long = "plan", value_name = "FILE")]
    plans: Vec<PathBuf>,
    /// One fault rule, OPS[#N[+K]][@GLOB]:FAULT (e.g. `write#3:kill-after`); may be repeated.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<String>,
    /// Write the trace as JSON Lines to FILE on unmount.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Copy this directory's contents into the mount first.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
}

/// An error at the binary's edge: the message and its exit code.
#[derive(Debug)]
struct Failure {
    exit: Exit,
    error: anyhow::Error,
}

impl Failure {
    fn usage(error: anyhow::Error) -> Self {
        Failure {
            exit: Exit::Usage,
            error,
        }
    }

    fn environment(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            exit: Exit::Environment,
            error: error.into(),
        }
    }
}

impl<E: ExitOf + std::error::Error + Send + Sync + 'static> From<E> for Failure {
    fn from(err: E) -> Self {
        Failure {
            exit: err.exit(),
            error: err.into(),
        }
    }
}

/// Sets up logging from `SWAPFAULT_LOG` (default: warnings; fuser's complaints
/// about replies to requests whose caller was killed are expected and hidden).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWAPFAULT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,fuser::reply=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `swapfault completions SHELL`: the completion script for SHELL.
fn completions(shell: clap_complete::Shell) -> Result<Exit, Failure> {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "swapfault", &mut script);
    print_bytes(&script)
}

/// `swapfault man`: the manual page, generated from the same definitions
/// as --help (its SUBCOMMANDS section names each command; `swapfault
/// COMMAND --help` has the rest).
fn man() -> Result<Exit, Failure> {
    let command = <Cli as clap::CommandFactory>::command();
    let mut page = Vec::new();
    // Rendering into memory: its only errors would be the Vec's, none.
    let _ = clap_mangen::Man::new(command).render(&mut page);
    print_bytes(&page)
}

/// Writes `bytes` to stdout: rendered in memory first, so that a reader
/// that leaves (`| head`) ends the command quietly, as any other.
fn print_bytes(bytes: &[u8]) -> Result<Exit, Failure> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|err| {
            Failure::environment(anyhow::Error::new(err).context("cannot write to stdout"))
        })?;
    Ok(Exit::Success)
}

/// Parses the command line, runs it, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = COLOR.set(cli.color.colors());
    // mount and bench run on the host as they are: bench times the user's
    // own disk, and may drop its caches.
    if !matches!(
        cli.command,
        Command::Mount(_) | Command::Bench(_) | Command::Completions { .. } | Command::Man
    ) {
        // Before any thread starts: what this run mounts and starts stays
        // private to it and dies with it, however it ends.
        if let Err(err) = harness::sandbox::enter_private_namespaces() {
            eprintln!("error: {err}");
            return Exit::Environment.into();
        }
        harness::stage::remove_stale_run_dirs();
    }
    let outcome = match cli.command {
        Command::Mount(args) => mount(args),
        Command::Run(args) => {
            clean_up_on_signal();
            run(args)
        }
        Command::Check(args) => {
            clean_up_on_signal();
            check(args)
        }
        Command::Demo => {
            clean_up_on_signal();
            demo()
        }
        Command::Explore(args) => explore(args),
        Command::Fuzz(args) => fuzz(args),
        Command::Bench(args) => bench(args),
        Command::Completions { shell } => completions(shell),
        Command::Man => man(),
    };
    halt_if_interrupted();
    // Plain `{err}`: every error message here already quotes its cause.
    match outcome {
        Ok(exit) => exit.into(),
        // Stdout's reader left (`| head`): nothing to say, and no one to
        // say it to. Whatever ran was cleaned up on the way out.
        Err(Failure { error, .. }) if is_broken_pipe(&error) => Exit::BrokenPipe.into(),
        Err(Failure { exit, error }) => {
            eprintln!("error: {error}");
            exit.into()
        }
    }
}

/// Whether `error` is a write to a pipe whose reader has gone.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Set by the signal thread of [`clean_up_on_signal`] before it kills anything.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// After a signal, leaves the exit to the signal thread: the children it
/// killed make the run look finished, and that is no result to report.
fn halt_if_interrupted() {
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

/// On SIGINT, SIGTERM or SIGHUP: kill the children, detach the mounts,
/// remove the runs' temp dirs, exit 130. Guards do not run when a signal
/// ends the process, and the children (in their own process groups) would
/// not get a terminal's Ctrl-C.
fn clean_up_on_signal() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
            harness::proc::kill_all_children();
            for mount_point in fault_fs::detach_all() {
                harness::stage::remove_run_dir(&mount_point);
            }
            eprintln!("swapfault: interrupted; children killed and mounts detached");
            std::process::exit(Exit::Interrupted.code().into());
        }
    });
}

fn load_plan(plans: &[PathBuf], faults: &[String]) -> Result<FaultPlan, Failure> {
    let mut plan = FaultPlan::default();
    for path in plans {
        plan.rules.extend(FaultPlan::from_file(path)?.rules);
    }
    plan.rules.extend(FaultPlan::from_specs(faults)?.rules);
    Ok(plan)
}

fn mount(args: MountArgs) -> Result<Exit, Failure> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

    let plan = load_plan(&args.plans, &args.faults)?;
    let mut tree = Tree::new();
    if let Some(from) = &args.from {
        if !from.is_dir() {
            return Err(Failure::usage(anyhow::anyhow!(
                "--from {} is not a directory (hint: name the directory whose contents to copy in)",
                from.display()
            )));
        }
        load_dir(&mut tree, from)?;
    }
    fault_fs::preflight(&args.dir)?;
    // Still one thread: the watcher that unmounts if we are SIGKILLed.
    let _watcher = fault_fs::UnmountWhenGone::watch(&args.dir).map_err(Failure::environment)?;
    // Register before mounting so a signal during the mount is not lost.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(Failure::environment)?;
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
        let cannot = |e| {
            Failure::usage(anyhow::anyhow!(
                "cannot write trace {}: {e}",
                path.display()
            ))
        };
        let file = std::fs::File::create(path).map_err(cannot)?;
        Trace::write_json_lines(&records, std::io::BufWriter::new(file)).map_err(cannot)?;
    }
    unmounted.map_err(|e| Failure::environment(anyhow::anyhow!("unmount failed: {e}")))?;
    // Ctrl-C and SIGTERM are how a mount is meant to end: a clean unmount.
    Ok(Exit::Success)
}

fn bench(args: BenchArgs) -> Result<Exit, Failure> {
    use harness::bench::{self, BenchOptions, Strategy};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let mut strategies = Vec::new();
    for name in &args.strategy {
        if name == "all" {
            strategies.extend(bench::STRATEGIES);
            continue;
        }
        let strategy = Strategy::named(name).ok_or_else(|| {
            let known: Vec<&str> = bench::STRATEGIES.iter().map(|s| s.name).collect();
            Failure::usage(anyhow::anyhow!(
                "--strategy {name}: no such strategy (hint: one of {}, or all)",
                known.join(", ")
            ))
        })?;
        strategies.push(strategy);
    }
    strategies.dedup_by_key(|s| s.name);
    // Registered before anything is written: a signal only asks the loop
    // to stop between runs, so the temp dir is removed on the way out.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, stop.clone()).map_err(Failure::environment)?;
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        return Err(Failure::usage(anyhow::anyhow!(
            "--dir {}: not a directory (hint: create it, or leave --dir out to bench in the current directory)",
            dir.display()
        )));
    }
    let options = BenchOptions {
        dir,
        sizes: args.size.clone(),
        strategies,
        runs: args.runs as usize,
        warmup: args.warmup as usize,
        drop_caches: args.drop_caches,
    };
    let total = options.sizes.len() * options.strategies.len() * (options.runs + options.warmup);
    let bar = indicatif::ProgressBar::new(total as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} runs  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = bench::bench(&options, &stop, |progress| {
        bar.set_position(progress.done as u64);
        bar.set_message(format!(
            "{} at {}",
            progress.strategy,
            harness::size::size_text(progress.size)
        ));
    });
    bar.finish_and_clear();
    let report = match report {
        Err(bench::BenchError::Interrupted) => {
            eprintln!("swapfault: interrupted; the bench files are removed");
            return Ok(Exit::Interrupted);
        }
        other => other?,
    };
    if args.drop_caches && !report.caches_dropped {
        eprintln!(
            "swapfault: could not drop the page cache (it needs root); the caches stayed warm"
        );
    }
    let mut stdout = std::io::stdout().lock();
    let written = if args.json {
        report.write_json(&mut stdout)
    } else {
        report.write_human(&mut stdout)
    };
    written.map_err(Failure::environment)?;
    if let Some(path) = &args.plot {
        bench::plot::plot(&report, path)
            .map_err(|e| Failure::usage(anyhow::anyhow!("cannot draw {}: {e}", path.display())))?;
        if !args.json {
            println!("plot: {}", path.display());
        }
    }
    Ok(Exit::Success)
}

fn parse_rules(specs: &[String]) -> Result<Vec<fault_fs::Rule>, Failure> {
    Ok(FaultPlan::from_specs(specs)?.rules)
}

/// Runs a prepared scenario once and prints the report; exit 1 on a finding
/// the scenario did not expect.
fn run_and_report(
    prepared: &harness::Prepared,
    faults: Vec<fault_fs::Rule>,
    once: &OnceArgs,
) -> Result<Exit, Failure> {
    use std::sync::atomic::AtomicBool;
    let options = harness::RunOptions {
        retry: !once.no_retry,
        ..harness::RunOptions::default()
    };
    let job = Job::Run { faults, options };
    let report = run_job(prepared, &job, &AtomicBool::new(false), &|_| {})?;
    halt_if_interrupted();
    let mut stdout = std::io::stdout().lock();
    let written = if once.json {
        report::json::write(&mut stdout, &report)
    } else {
        report::human::write(&mut stdout, &report, color())
    };
    written.map_err(Failure::environment)?;
    Ok(if report.as_expected {
        Exit::Success
    } else {
        Exit::Findings
    })
}

/// A scenario file's canary at the sizes given (`--size`, `--new-size`).
fn sized(
    mut scenario: harness::Scenario,
    size: Option<u64>,
    new_size: Option<u64>,
) -> Result<harness::Scenario, Failure> {
    if let Some(size) = size {
        scenario = scenario
            .with_size(size)
            .map_err(|m| Failure::usage(anyhow::anyhow!("--size: {m}")))?;
    }
    if let Some(new_size) = new_size {
        scenario = scenario
            .with_new_size(new_size)
            .map_err(|m| Failure::usage(anyhow::anyhow!("--new-size: {m}")))?;
    }
    Ok(scenario)
}

fn run(args: RunArgs) -> Result<Exit, Failure> {
    let mut scenario = sized(
        harness::Scenario::from_file(&args.scenario)?,
        args.size,
        args.new_size,
    )?;
    if let Some(platform) = args.platform {
        scenario = scenario.with_platform(platform);
    }
    let specs = if args.once.faults.is_empty() {
        scenario.faults.clone()
    } else {
        args.once.faults.clone()
    };
    let faults = parse_rules(&specs)?;
    let prepared = harness::Prepared::new(args.once.time.on(scenario))?;
    run_and_report(&prepared, faults, &args.once)
}

fn check(args: CheckArgs) -> Result<Exit, Failure> {
    let faults = parse_rules(&args.once.faults)?;
    let scenario = args.canary.scenario(args.strategy.as_deref())?;
    let prepared = harness::Prepared::new(args.once.time.on(scenario))?;
    run_and_report(&prepared, faults, &args.once)
}

fn demo() -> Result<Exit, Failure> {
    let mut stdout = std::io::stdout().lock();
    if harness::demo::demo(&mut stdout)? {
        Ok(Exit::Success)
    } else {
        eprintln!("swapfault: this machine did not behave as the demo teaches (see above)");
        Ok(Exit::Findings)
    }
}

/// Expands directories into the scenario files (`*.toml`) they hold, sorted.
fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| {
                Failure::usage(anyhow::anyhow!("cannot read {}: {e}", path.display()))
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn explore(args: ExploreArgs) -> Result<Exit, Failure> {
    use harness::explore::ExploreOptions;
    use std::sync::atomic::Ordering;

    let mut scenarios = Vec::new();
    if args.strategy.is_some() || args.canary.self_update.is_some() {
        scenarios.push(args.canary.scenario(args.strategy.as_deref())?);
    } else {
        for file in scenario_files(&args.scenarios)? {
            let scenario = harness::Scenario::from_file(&file)?;
            scenarios.push(args.canary.on_file(scenario)?);
        }
    }
    if scenarios.is_empty() {
        let what = if args.scenarios.is_empty() {
            "nothing to explore"
        } else {
            "no scenario files found"
        };
        return Err(Failure::usage(anyhow::anyhow!(
            "{what} (hint: name scenario files or a directory of them, e.g. `swapfault explore scenarios/`, or give a strategy, e.g. `swapfault explore --strategy 'install \"$SWAPFAULT_NEW\" \"$SWAPFAULT_TARGET\"'`)"
        )));
    }
    // Checked now, not after minutes of exploring.
    let mut junit = args.junit.as_deref().map(create_output).transpose()?;
    let mut options = ExploreOptions {
        partition: args.partition,
        max_runs: args.max_runs,
        sigterm: args.sigterm,
        coverage: if args.exhaustive {
            Coverage::Exhaustive
        } else {
            Coverage::Sampled { seed: args.seed }
        },
        ..ExploreOptions::default()
    };
    if let Some(workers) = args.workers {
        options.workers = workers.max(1);
    }
    let stop = stop_on_signals()?;
    let color = color();
    let mut reports = Vec::new();
    let job = Job::Explore(options);
    for scenario in scenarios {
        let prepared = harness::Prepared::new(args.time.on(scenario))?;
        let bar = progress_bar(&prepared.scenario.name);
        let on_event = |event: Event<'_>| bar.on(&event);
        let report = match run_job(&prepared, &job, &stop, &on_event) {
            Ok(report) => report,
            // After a stop no child may start: an error then is the stop's.
            Err(_) if stop.load(Ordering::Relaxed) => {
                bar.finish_and_clear();
                break;
            }
            Err(err) => return Err(err.into()),
        };
        bar.finish_and_clear();
        if !args.json {
            let mut stdout = std::io::stdout().lock();
            report::human::write(&mut stdout, &report, color)
                .and_then(|()| writeln_out(&mut stdout, ""))
                .map_err(Failure::environment)?;
        }
        reports.push(report);
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        report::json::write_all(&mut stdout, &reports).map_err(Failure::environment)?;
    } else if reports.len() > 1 {
        report::human::write_matrix(&mut stdout, &reports).map_err(Failure::environment)?;
    }
    if let Some((path, file)) = &mut junit {
        report::junit::write(file, &reports).map_err(|e| cannot_write(path, e))?;
    }
    if stop.load(Ordering::Relaxed) {
        eprintln!("swapfault: interrupted; the report above covers the crash points that ran");
        return Ok(Exit::Interrupted);
    }
    Ok(if reports.iter().all(|r| r.as_expected) {
        Exit::Success
    } else {
        Exit::Findings
    })
}

fn fuzz(args: FuzzArgs) -> Result<Exit, Failure> {
    use harness::fuzz::{self, FuzzOptions};
    use std::sync::atomic::Ordering;

    let ad_hoc = args.strategy.is_some() || args.canary.self_update.is_some();
    let (mut scenario, regressions) = match (ad_hoc, &args.scenario) {
        (true, _) => (
            args.canary.scenario(args.strategy.as_deref())?,
            args.regressions.clone(),
        ),
        (false, Some(file)) => (
            args.canary.on_file(harness::Scenario::from_file(file)?)?,
            Some(
                args.regressions
                    .clone()
                    .unwrap_or_else(|| fuzz::regressions_path(file)),
            ),
        ),
        (false, None) => {
            return Err(Failure::usage(anyhow::anyhow!(
                "name a scenario file, or give --strategy CMD or --self-update SPEC"
            )))
        }
    };
    scenario = args.times.on(scenario);
    let mut options = FuzzOptions {
        cases: args.cases,
        seed: args.seed,
        time: args.time,
        shrink_steps: args.shrink_steps,
        shrink_time: args.shrink_time,
        regressions,
        ..FuzzOptions::default()
    };
    if let Some(workers) = args.workers {
        options.workers = workers.max(1);
    }
    // Checked now, not after the whole session.
    let mut junit = args.junit.as_deref().map(create_output).transpose()?;
    let stop = stop_on_signals()?;
    let prepared = harness::Prepared::new(scenario)?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(prepared.scenario.name.clone());
    let on_event = |event: Event<'_>| {
        if let Event::Case { cases, shrinking } = event {
            let doing = if shrinking { "shrinking" } else { "searching" };
            bar.set_message(format!(
                "{}: {cases} cases, {doing}",
                prepared.scenario.name
            ));
            bar.tick();
        }
    };
    let outcome = run_job(&prepared, &Job::Fuzz(options), &stop, &on_event);
    bar.finish_and_clear();
    let report = match outcome {
        Ok(report) => report,
        Err(_) if stop.load(Ordering::Relaxed) => {
            eprintln!("swapfault: interrupted");
            return Ok(Exit::Interrupted);
        }
        Err(err) => return Err(err.into()),
    };
    let mut stdout = std::io::stdout().lock();
    let written = if args.json {
        report::json::write(&mut stdout, &report)
    } else {
        report::human::write(&mut stdout, &report, color())
    };
    written.map_err(Failure::environment)?;
    if let Some((path, file)) = &mut junit {
        report::junit::write(file, std::slice::from_ref(&report))
            .map_err(|e| cannot_write(path, e))?;
    }
    let interrupted = match &report.body {
        harness::report::Body::Fuzz(fuzz) => fuzz.stats.interrupted,
        _ => false,
    };
    Ok(if interrupted {
        Exit::Interrupted
    } else if !report.as_expected {
        Exit::Findings
    } else {
        Exit::Success
    })
}

/// A flag set on SIGINT, SIGTERM or SIGHUP, for `explore` and `fuzz`: on a
/// signal they stop taking work, and the runs under way are killed (their
/// processes are in groups of their own, out of the terminal's reach) so
/// the partial report comes at once; guards then unmount.
fn stop_on_signals() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>, Failure> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(Failure::environment)?;
    let stopper = stop.clone();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            stopper.store(true, Ordering::SeqCst);
            harness::proc::kill_all_children();
        }
    });
    Ok(stop)
}

/// The bar `explore` shows on stderr while crash points run.
fn progress_bar(name: &str) -> ExploreBar {
    let bar = indicatif::ProgressBar::new(0);
    // The bar and its ETA run on cost (bytes moved), the count on points:
    // a 64 MiB state's retry is not a stall at a lookup.
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>24} [{bar:30}] {msg}, eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(name.to_owned());
    ExploreBar {
        bar,
        started: std::time::Instant::now(),
        points: std::sync::atomic::AtomicU64::new(0),
        planned: std::sync::atomic::AtomicU64::new(0),
    }
}

/// An exploration's progress: the points done of those planned, in whole
/// points per second, with an ETA weighted by what the rest costs.
struct ExploreBar {
    bar: indicatif::ProgressBar,
    started: std::time::Instant,
    points: std::sync::atomic::AtomicU64,
    planned: std::sync::atomic::AtomicU64,
}

impl ExploreBar {
    fn on(&self, event: &Event<'_>) {
        use std::sync::atomic::Ordering::Relaxed;
        match event {
            Event::Planned { points, cost, .. } => {
                self.planned.store(*points as u64, Relaxed);
                self.bar.set_length(*cost);
            }
            Event::PointDone { cost, .. } => {
                let done = self.points.fetch_add(1, Relaxed) + 1;
                self.bar.inc(*cost);
                let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
                let planned = self.planned.load(Relaxed);
                self.bar
                    .set_message(format!("{done}/{planned} crash points, {rate:.0}/s"));
            }
            Event::Case { .. } => {}
        }
    }
}

impl std::ops::Deref for ExploreBar {
    type Target = indicatif::ProgressBar;

    fn deref(&self) -> &indicatif::ProgressBar {
        &self.bar
    }
}

/// Creates an output file (`--junit FILE`) before the work whose report
/// it will hold, so a path that cannot be written fails at once.
fn create_output(path: &Path) -> Result<(PathBuf, std::fs::File), Failure> {
    let file = std::fs::File::create(path).map_err(|e| cannot_write(path, e))?;
    Ok((path.to_owned(), file))
}

fn cannot_write(path: &Path, error: std::io::Error) -> Failure {
    Failure::usage(anyhow::anyhow!("cannot write {}: {error}", path.display()))
}

fn writeln_out(out: &mut dyn std::io::Write, text: &str) -> std::io::Result<()> {
    writeln!(out, "{text}")
}
