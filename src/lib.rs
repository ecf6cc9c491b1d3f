//! swapfault as a library: prove a way of replacing a file in your own
//! `cargo test`.
//!
//! A [`Scenario`] names a strategy, a shell command or a Rust function, and
//! the canary it replaces; [`explore`] tries it at every crash point,
//! [`check`] runs it once under the faults given, [`fuzz`] tries random
//! fault schedules across it and its retries. Each returns a [`Report`]
//! whose [`Report::assert_safe`] and [`Report::assert_properties`] panic
//! with the human report: the findings, and a command that reproduces each.
//!
//! ```no_run
//! use std::io::Write as _;
//! use swapfault::{Property, Scenario, Strategy, Targets};
//!
//! /// Writes NEW over the target in place: a crash leaves it torn.
//! fn in_place(paths: &Targets) -> std::io::Result<()> {
//!     let new = std::fs::read(&paths.new)?;
//!     std::fs::OpenOptions::new().write(true).truncate(true).open(&paths.target)?.write_all(&new)
//! }
//!
//! #[test]
//! fn writing_in_place_is_not_safe() {
//!     let scenario = Scenario::new(Strategy::function("in_place", in_place));
//!     let report = swapfault::explore(&scenario).expect("explore");
//!     assert_eq!(report.status(Property::Kill), Some(swapfault::Status::Fail));
//! }
//! ```
//!
//! How it runs: [`explore`] and the others start the test binary again as
//! the engine (a fresh process, one thread, which a user namespace needs:
//! so it works without root, as the command does) and read its report
//! back. A Rust-function strategy runs as a child process too, the test
//! binary started once more for that one test (as rusty-fork does), so it
//! can be killed, faulted and retried like any other strategy. Both need
//! the call to be made from the test's own thread, the one libtest names
//! after the test. docs/API.md has the guide.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::report::Body;
pub use harness::report::Status;
pub use harness::scenario::Platform;
pub use harness::{Property, TargetKind};
use serde::{Deserialize, Serialize};

/// The environment variable that makes a re-executed test binary the
/// engine ([`engine`]), before its `main`.
const ENGINE_ENV: &str = "SWAPFAULT_API_ENGINE";
/// The environment variable that names the Rust-function strategy a
/// re-executed test binary is to run.
const FUNCTION_ENV: &str = "SWAPFAULT_RUST_STRATEGY";

/// The paths a strategy works on, from its environment.
#[derive(Clone, Debug)]
pub struct Targets {
    /// The file to replace (`$SWAPFAULT_TARGET`).
    pub target: PathBuf,
    /// The new version (`$SWAPFAULT_NEW`).
    pub new: PathBuf,
    /// For a set, the installed directory (`$SWAPFAULT_TARGET_DIR`).
    pub target_dir: Option<PathBuf>,
    /// For a set, the new files under the same names (`$SWAPFAULT_NEW_DIR`).
    pub new_dir: Option<PathBuf>,
}

impl Targets {
    fn from_env() -> Option<Targets> {
        let path = |key| std::env::var_os(key).map(PathBuf::from);
        Some(Targets {
            target: path("SWAPFAULT_TARGET")?,
            new: path("SWAPFAULT_NEW")?,
            target_dir: path("SWAPFAULT_TARGET_DIR"),
            new_dir: path("SWAPFAULT_NEW_DIR"),
        })
    }
}

/// A strategy as a Rust function: it gets the paths, and fails by
/// returning an error (its process then exits 1) or panicking.
pub type StrategyFn = fn(&Targets) -> std::io::Result<()>;

/// How the target is replaced.
#[derive(Clone, Debug)]
pub struct Strategy {
    command: String,
    /// For a Rust function, the `cargo test` that runs its test again.
    rerun: Option<String>,
}

impl Strategy {
    /// A shell command, run by `sh -c` with `$SWAPFAULT_TARGET` and
    /// `$SWAPFAULT_NEW` set, as in a scenario file.
    pub fn command(command: impl Into<String>) -> Strategy {
        Strategy {
            command: command.into(),
            rerun: None,
        }
    }

    /// A Rust function, run in a child process: this test binary, started
    /// again for the calling test with `name` in its environment (and
    /// `--include-ignored`, so an `#[ignore]`d test run with `--ignored`
    /// runs there too). In that child this call runs `function` and
    /// exits, so the test goes no further there. `name` tells the test's
    /// strategies apart.
    ///
    /// # Panics
    ///
    /// Outside a test's own thread (the child could not be started for it).
    pub fn function(name: &str, function: StrategyFn) -> Strategy {
        if std::env::var(FUNCTION_ENV).is_ok_and(|wanted| wanted == name) {
            let Some(paths) = Targets::from_env() else {
                eprintln!("swapfault: {FUNCTION_ENV} is set, but SWAPFAULT_TARGET or SWAPFAULT_NEW is not");
                std::process::exit(2);
            };
            let code = match function(&paths) {
                Ok(()) => 0,
                Err(err) => {
                    eprintln!("{name}: {err}");
                    1
                }
            };
            std::process::exit(code);
        }
        let test = std::thread::current()
            .name()
            .filter(|name| *name != "main")
            .map(str::to_owned)
            .unwrap_or_else(|| {
                panic!("swapfault: Strategy::function(\"{name}\", …) must be called on a #[test]'s own thread (hint: libtest names it after the test; call it from the test body)")
            });
        let exe = std::env::current_exe()
            .unwrap_or_else(|err| panic!("swapfault: cannot find this test binary: {err}"));
        // Bare where the shell needs no quotes, so reproductions read well.
        let quote = |text: &str| {
            let bare = !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-:=+,".contains(c));
            if bare {
                text.to_owned()
            } else {
                harness::report::reproduce::shell_quote(text)
            }
        };
        Strategy {
            command: format!(
                "{FUNCTION_ENV}={} exec {} --exact {} --include-ignored --test-threads=1 --quiet >/dev/null",
                quote(name),
                quote(&exe.display().to_string()),
                quote(&test)
            ),
            rerun: cargo_rerun(&exe, &quote(&test)),
        }
    }

    /// The shell command that runs the strategy (for a Rust function, the
    /// test binary started for it): what reproductions name.
    pub fn shell_command(&self) -> &str {
        &self.command
    }
}

/// The `cargo test` that runs test `test` (quoted) of the test binary
/// `exe` again, whatever its hash after a rebuild: the profile from the
/// binary's directory, the package from cargo's environment (cargo sets
/// `CARGO_PKG_NAME` when it runs a test), the target from the binary's
/// name (`crates-0123456789abcdef`: `--test crates`; the package's own
/// name: `--lib`). `None` when the binary is not where cargo puts tests.
fn cargo_rerun(exe: &Path, test: &str) -> Option<String> {
    let stem = exe.file_name()?.to_str()?;
    let (target, hash) = stem.rsplit_once('-')?;
    if hash.len() != 16 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    let profile = match deps.parent()?.file_name()?.to_str()? {
        "debug" => String::new(),
        "release" => " --release".to_owned(),
        other => format!(" --profile {other}"),
    };
    let package = std::env::var("CARGO_PKG_NAME").ok();
    let kind = match &package {
        Some(package) if package.replace('-', "_") == target => " --lib".to_owned(),
        _ => format!(" --test {target}"),
    };
    let package = package.map_or_else(String::new, |package| format!(" -p {package}"));
    Some(format!(
        "cargo test{profile}{package}{kind} -- --exact {test} --include-ignored"
    ))
}

/// What to replace, and how: the built-in canary (an executable, a library
/// or a set of both) of a given size, with a live canary running it; or
/// files of the user's ([`Scenario::files`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Scenario {
    command: String,
    target: String,
    size: Option<u64>,
    new_size: Option<u64>,
    files: Option<(PathBuf, PathBuf)>,
    live_commands: Vec<String>,
    symlinked: bool,
    timeout_ms: u64,
    sigterm: bool,
    platform: String,
    /// The old target's mode, if not the default 0755.
    #[serde(default)]
    mode: Option<u32>,
    /// The old target's xattrs, if not the default `user.origin`.
    #[serde(default)]
    xattrs: Option<Vec<(String, String)>>,
    /// See [`harness::Scenario::rerun`].
    #[serde(default)]
    rerun: Option<String>,
    /// The old target's owner, if not root's.
    #[serde(default)]
    owner: Option<(u32, u32)>,
}

impl Scenario {
    /// A library canary of 256 KiB replaced by `strategy`, with the
    /// defaults of `swapfault check`: mode 0755 and an xattr on the old
    /// target, a live canary mapping it, 30 s per run.
    pub fn new(strategy: Strategy) -> Scenario {
        Scenario {
            command: strategy.command,
            rerun: strategy.rerun,
            owner: None,
            target: TargetKind::Lib.name().to_owned(),
            size: None,
            new_size: None,
            files: None,
            live_commands: Vec::new(),
            symlinked: false,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            sigterm: false,
            platform: Platform::Linux.name().to_owned(),
            mode: None,
            xattrs: None,
        }
    }

    /// What the target is: an executable, a library, or a set of both.
    pub fn target(mut self, kind: TargetKind) -> Scenario {
        self.target = kind.name().to_owned();
        self
    }

    /// The canary's size in bytes (64 KiB to 64 MiB; default 256 KiB).
    pub fn size(mut self, bytes: u64) -> Scenario {
        self.size = Some(bytes);
        self
    }

    /// The new canary's size (default: 7/8 of the old, so that a stale
    /// tail of the old shows).
    pub fn new_size(mut self, bytes: u64) -> Scenario {
        self.new_size = Some(bytes);
        self
    }

    /// Replace the user's file `old` with `new` instead of the canary (as
    /// `old` and `new` in a scenario file, and `--old`/`--new`): the target
    /// takes `old`'s name, mode 0755 and the xattr; probes read it; no
    /// live canary runs (give live processes with
    /// [`Scenario::live_command`]).
    pub fn files(mut self, old: impl Into<PathBuf>, new: impl Into<PathBuf>) -> Scenario {
        self.files = Some((old.into(), new.into()));
        self
    }

    /// A live process besides the canary, started by `sh -c command` in
    /// the target's directory before the strategy runs, with
    /// `$SWAPFAULT_TARGET` set (as `live_commands` in a scenario file). It
    /// must keep running: the property "live" checks that it stays alive
    /// and that its mappings of the old target never change.
    pub fn live_command(mut self, command: impl Into<String>) -> Scenario {
        self.live_commands.push(command.into());
        self
    }

    /// The target is a symlink to a versioned file beside it, as libraries
    /// are installed (`libcanary.so -> libcanary.so.1`).
    pub fn symlinked(mut self, symlinked: bool) -> Scenario {
        self.symlinked = symlinked;
        self
    }

    /// The old target's permission mode (default 0755), which the new one
    /// must have too: give your files' mode, so that `meta` judges what
    /// your strategy does to files like yours.
    pub fn mode(mut self, mode: u32) -> Scenario {
        self.mode = Some(mode);
        self
    }

    /// The old target's owner, uid and gid (default root's), which the new
    /// one must have too (`meta`). Only a run as root can give a file
    /// another owner: rootless runs map a single uid, and refuse this with
    /// an error that says so.
    pub fn owner(mut self, uid: u32, gid: u32) -> Scenario {
        self.owner = Some((uid, gid));
        self
    }

    /// The old target's extended attributes (default: one,
    /// `user.origin`), which the new one must carry too. `.xattrs([])` for
    /// files that have none: a strategy that does not copy xattrs then
    /// passes `meta`, as it would on your files.
    pub fn xattrs<N: Into<String>, V: Into<String>>(
        mut self,
        xattrs: impl IntoIterator<Item = (N, V)>,
    ) -> Scenario {
        let xattrs = xattrs.into_iter().map(|(n, v)| (n.into(), v.into()));
        self.xattrs = Some(xattrs.collect());
        self
    }

    /// How long one run of the strategy may take.
    pub fn timeout(mut self, timeout: Duration) -> Scenario {
        self.timeout_ms = timeout.as_millis() as u64;
        self
    }

    /// [`explore`] also kills with SIGTERM at every mutating op.
    pub fn sigterm(mut self, sigterm: bool) -> Scenario {
        self.sigterm = sigterm;
        self
    }

    /// The kernel to model: Linux as it is (the default), or with the macOS
    /// code-signing model ([`Platform::Macos`]: a process whose executable
    /// or mapped library changes bytes on disk is killed), as
    /// `--platform` does.
    pub fn platform(mut self, platform: Platform) -> Scenario {
        self.platform = platform.name().to_owned();
        self
    }

    /// The harness's scenario, checked as `swapfault check` checks its flags.
    fn harness(&self) -> Result<harness::Scenario, String> {
        use harness::scenario::{AdHoc, CanaryProblem};
        let given = AdHoc {
            kind: self.target.parse()?,
            size: self.size,
            new_size: self.new_size,
            symlinked: self.symlinked,
            files: self.files.clone(),
            live_commands: self.live_commands.clone(),
        };
        let mut scenario =
            harness::Scenario::from_ad_hoc(&self.command, &given).map_err(|problem| match problem {
                CanaryProblem::Size(m) => format!("size: {m}"),
                CanaryProblem::NewSize(m) => format!("new size: {m}"),
                CanaryProblem::SymlinkedSet => {
                    "a set's files are plain files: it cannot be symlinked (hint: drop .symlinked)"
                        .into()
                }
                CanaryProblem::FilesSet => "files: a set is the canary's executable and library (hint: .target(TargetKind::Exe) or Lib)".into(),
                CanaryProblem::FilesSized => "files: sizes are the canary's; with .files they are the files' (hint: drop .size and .new_size)".into(),
                CanaryProblem::NotAFile { old, path } => format!(
                    "files: {} `{}` is not a file",
                    if old { "old" } else { "new" },
                    path.display()
                ),
            })?;
        scenario.sigterm = self.sigterm;
        scenario.rerun = self.rerun.clone();
        if let Some(owner) = self.owner {
            scenario.target.owner = owner;
        }
        if let Some(mode) = self.mode {
            if mode > 0o7777 {
                return Err(format!(
                    "mode: {mode:#o} is not a permission mode (hint: at most 0o7777, e.g. .mode(0o644))"
                ));
            }
            scenario.target.mode = mode;
        }
        if let Some(xattrs) = &self.xattrs {
            if let Some((name, _)) = xattrs.iter().find(|(name, _)| !name.contains('.')) {
                return Err(format!(
                    "xattrs: `{name}` has no namespace (hint: name it as `user.{name}`)"
                ));
            }
            scenario.target.xattrs = xattrs.iter().cloned().collect();
        }
        let scenario = match self.timeout_ms {
            DEFAULT_TIMEOUT_MS => scenario,
            ms => scenario.with_timeout(Duration::from_millis(ms)),
        };
        Ok(scenario.with_platform(self.platform.parse()?))
    }
}

/// Why no report came back. Its `Debug` is its one line too, so that
/// `.expect("explore")` in a test prints the fix, not `Engine("…")`.
#[derive(thiserror::Error)]
pub enum Error {
    /// The scenario cannot be run as given.
    #[error("swapfault: {0}")]
    Scenario(String),
    /// The engine could not run it: the message names the fix (no
    /// /dev/fuse, user namespaces refused, a missing compiler).
    #[error("swapfault: {0}")]
    Engine(String),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// What the engine is asked to do.
#[derive(Serialize, Deserialize)]
enum Request {
    Explore {
        scenario: Scenario,
        workers: usize,
    },
    Check {
        scenario: Scenario,
        faults: Vec<String>,
    },
    Fuzz {
        scenario: Scenario,
        seed: Option<u64>,
        time_ms: u64,
    },
}

/// What the engine answers.
#[derive(Serialize, Deserialize)]
enum Answer {
    Report {
        report: Box<harness::Report>,
        human: String,
    },
    Failed(String),
}

/// A strategy's timeout unless [`Scenario::timeout`] says otherwise.
const DEFAULT_TIMEOUT_MS: u64 = harness::scenario::DEFAULT_TIMEOUT.as_millis() as u64;

/// Every crash point of `scenario`'s recorded run (`swapfault explore`).
///
/// With `SWAPFAULT_FAULT` set (as a reproduction of a Rust function's
/// finding sets it: fault specs separated by spaces, or none), one run
/// under those faults instead ([`check`]): the finding, not the search.
pub fn explore(scenario: &Scenario) -> Result<Report, Error> {
    if let Some(faults) = reproduced_faults() {
        return check(
            scenario,
            &faults.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    ask(Request::Explore {
        scenario: scenario.clone(),
        workers,
    })
}

/// One run of `scenario` under `faults`, fault specs as `--fault` takes
/// them (`swapfault check`).
pub fn check(scenario: &Scenario, faults: &[&str]) -> Result<Report, Error> {
    ask(Request::Check {
        scenario: scenario.clone(),
        faults: faults.iter().map(|f| f.to_string()).collect(),
    })
}

/// Random fault schedules across `scenario`'s run and its retries for
/// `time`, the failing one shrunk (`swapfault fuzz`; `seed` as `--seed`).
/// No regressions file is kept. With `SWAPFAULT_FAULT` set, one run
/// under those faults instead, as for [`explore`].
pub fn fuzz(scenario: &Scenario, seed: Option<u64>, time: Duration) -> Result<Report, Error> {
    if let Some(faults) = reproduced_faults() {
        return check(
            scenario,
            &faults.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    ask(Request::Fuzz {
        scenario: scenario.clone(),
        seed,
        time_ms: time.as_millis() as u64,
    })
}

/// The faults of a reproduction, when `SWAPFAULT_FAULT` names them.
fn reproduced_faults() -> Option<Vec<String>> {
    let specs = std::env::var(harness::report::reproduce::FAULT_ENV).ok()?;
    Some(specs.split_whitespace().map(str::to_owned).collect())
}

/// Starts the engine (this binary again) with `request` and reads its answer.
fn ask(request: Request) -> Result<Report, Error> {
    let scenario = match &request {
        Request::Explore { scenario, .. }
        | Request::Check { scenario, .. }
        | Request::Fuzz { scenario, .. } => scenario,
    };
    scenario.harness().map_err(Error::Scenario)?;
    // Referenced here so that the linker keeps the engine's constructor.
    std::hint::black_box(&ENGINE);
    let exe = std::env::current_exe()
        .map_err(|err| Error::Engine(format!("cannot find this test binary: {err}")))?;
    let request = serde_json::to_vec(&request).map_err(|err| Error::Engine(err.to_string()))?;
    let mut child = Command::new(exe)
        .env(ENGINE_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|err| Error::Engine(format!("cannot start the engine: {err}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        let _ = stdin.write_all(&request);
    }
    let output = child
        .wait_with_output()
        .map_err(|err| Error::Engine(format!("the engine: {err}")))?;
    match serde_json::from_slice::<Answer>(&output.stdout) {
        Ok(Answer::Report { report, human }) => Ok(Report {
            report: *report,
            human,
        }),
        Ok(Answer::Failed(message)) => Err(Error::Engine(message)),
        Err(_) => Err(Error::Engine(format!(
            "the engine ended without a report ({}) (hint: its errors are above)",
            output.status
        ))),
    }
}

/// The engine's entry, before `main`: a process started by [`ask`] runs
/// its request and exits, never reaching the test harness; every other
/// process goes on untouched. Before `main` it has one thread, which the
/// user namespace of rootless mode needs.
#[used]
#[link_section = ".init_array"]
static ENGINE: extern "C" fn() = {
    extern "C" fn engine_entry() {
        if std::env::var_os(ENGINE_ENV).is_some() {
            engine();
        }
    }
    engine_entry
};

/// Runs the request on stdin and writes the [`Answer`] to stdout.
fn engine() -> ! {
    // Single-threaded still: nothing else reads the environment. The
    // strategies this starts must not become engines themselves.
    std::env::remove_var(ENGINE_ENV);
    let answer = match harness::sandbox::enter_private_namespaces() {
        Ok(_) => {
            harness::stage::remove_stale_run_dirs();
            serve()
        }
        Err(err) => Answer::Failed(err.to_string()),
    };
    let mut stdout = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut stdout, &answer);
    use std::io::Write as _;
    let _ = stdout.flush();
    std::process::exit(0)
}

fn serve() -> Answer {
    let request: Request = match serde_json::from_reader(std::io::stdin().lock()) {
        Ok(request) => request,
        Err(err) => return Answer::Failed(format!("a bad request: {err}")),
    };
    match run_request(request) {
        Ok(answer) => answer,
        Err(message) => Answer::Failed(message),
    }
}

fn run_request(request: Request) -> Result<Answer, String> {
    use harness::explore::ExploreOptions;
    use harness::fuzz::FuzzOptions;
    use harness::job::{run_job, Job};
    use std::sync::atomic::AtomicBool;
    let (scenario, job) = match request {
        Request::Explore { scenario, workers } => (
            scenario,
            Job::Explore(ExploreOptions {
                workers: workers.max(1),
                ..Default::default()
            }),
        ),
        Request::Check { scenario, faults } => {
            let faults = fault_fs::FaultPlan::from_specs(&faults)
                .map_err(|err| err.to_string())?
                .rules;
            let options = harness::RunOptions::default();
            (scenario, Job::Run { faults, options })
        }
        Request::Fuzz {
            scenario,
            seed,
            time_ms,
        } => (
            scenario,
            Job::Fuzz(FuzzOptions {
                seed,
                time: Duration::from_millis(time_ms),
                ..Default::default()
            }),
        ),
    };
    let prepared = harness::Prepared::new(scenario.harness()?).map_err(|err| err.to_string())?;
    let report = run_job(&prepared, &job, &AtomicBool::new(false), &|_| {})
        .map_err(|err| err.to_string())?;
    let mut human = Vec::new();
    harness::report::human::write(&mut human, &report, false).map_err(|e| e.to_string())?;
    Ok(Answer::Report {
        report: Box::new(report),
        human: String::from_utf8_lossy(&human).into_owned(),
    })
}

/// What [`explore`], [`check`] or [`fuzz`] found: the report the command
/// prints, as data ([`Report::report`]), and as people read it.
#[derive(Clone, Debug)]
pub struct Report {
    report: harness::Report,
    human: String,
}

/// One group of findings of a property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Where: `kill-after at any of write#1–#7 (7 points)`.
    pub summary: String,
    /// What was seen.
    pub seen: String,
    /// The command that reproduces it.
    pub reproduce: String,
}

impl Report {
    /// The report as data: what `--json` prints.
    pub fn report(&self) -> &harness::Report {
        &self.report
    }

    /// The report as `--json` prints it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(&self.report).unwrap_or_default()
    }

    /// The report as the command prints it for people.
    pub fn human(&self) -> &str {
        &self.human
    }

    /// The verdict on `property`; `None` in a fuzz report where no
    /// schedule failed (fuzzing judges schedules, not properties).
    pub fn status(&self, property: Property) -> Option<Status> {
        Some(self.report.property(property)?.status)
    }

    /// Why no run could exercise `property`, where none could.
    pub fn why_not_exercised(&self, property: Property) -> Option<&str> {
        self.report.property(property)?.why_not_exercised.as_deref()
    }

    /// The findings of `property`.
    pub fn findings(&self, property: Property) -> Vec<Finding> {
        let Some(report) = self.report.property(property) else {
            return Vec::new();
        };
        report
            .groups
            .iter()
            .map(|group| Finding {
                summary: group.summary.clone(),
                seen: group.seen.clone(),
                reproduce: group.reproduce.clone(),
            })
            .collect()
    }

    /// The fuzz report's failing schedule, where its search found one.
    pub fn failing_schedule(&self) -> Option<Vec<String>> {
        let Body::Fuzz(fuzz) = &self.report.body else {
            return None;
        };
        let failing = fuzz.failing.as_ref()?;
        Some(failing.schedule.iter().map(|r| r.to_string()).collect())
    }

    /// Panics unless every property passed: failed ones with their
    /// findings and reproductions, ones no run could exercise with why
    /// (a pass must be earned). A fuzz report passes when no schedule
    /// failed and faults fired.
    #[track_caller]
    pub fn assert_safe(&self) {
        if let Body::Fuzz(fuzz) = &self.report.body {
            let fired = fuzz.stats.faults_fired;
            if self.failing_schedule().is_some() || fired == 0 {
                panic!(
                    "swapfault: fuzzing {}\n{}",
                    if fired == 0 {
                        "fired no fault: nothing was tried"
                    } else {
                        "found a failing fault schedule"
                    },
                    self.human
                );
            }
            return;
        }
        self.assert_properties(&Property::ALL);
    }

    /// Panics unless each of `properties` passed, naming each that did
    /// not, with the human report (findings and reproductions).
    #[track_caller]
    pub fn assert_properties(&self, properties: &[Property]) {
        let wrong: Vec<String> = properties
            .iter()
            .filter_map(|&property| match self.status(property) {
                Some(Status::Pass) => None,
                Some(Status::Fail) => Some(format!("{} failed", property.name())),
                Some(Status::NotExercised) => Some(format!(
                    "{} not exercised: {}",
                    property.name(),
                    self.why_not_exercised(property)
                        .unwrap_or("no reason given")
                )),
                None => Some(format!("{} has no verdict in this report", property.name())),
            })
            .collect();
        if !wrong.is_empty() {
            panic!("swapfault: {}\n\n{}", wrong.join("; "), self.human);
        }
    }
}
