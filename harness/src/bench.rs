//! `swapfault bench`: what the catalog's strategies cost on a real disk,
//! step by step, next to what the catalog says each one guarantees.
//!
//! No FUSE here: each strategy is done natively, with the system calls its
//! catalog script makes (so every step can be timed on its own), in a
//! directory of the user's file system. NEW is in memory: reading a
//! download is not the strategy's cost. Every run starts from a durable old
//! target and a clean page cache of dirty data (`syncfs` before it,
//! untimed), so the writeback a strategy leaves behind is not charged to
//! the next.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::outcome::Property;
use crate::scenario::{Expectation, Scenario};

#[cfg(feature = "plots")]
pub mod plot;

/// The version of the bench's JSON shape: raised when a field changes
/// meaning or goes away.
pub const SCHEMA_VERSION: u32 = 2;

/// The parts of a replacement that are timed on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The `write(2)`/`pwrite(2)` calls of the new bytes.
    Write,
    /// `fsync` of the new file.
    Fsync,
    /// The `rename(2)` over the target.
    Rename,
    /// `fsync` of the target's directory.
    FsyncDir,
    /// Everything else the strategy does: open, create, unlink, link,
    /// truncate, chmod and xattr copies, close.
    Other,
}

impl Step {
    /// Every step, in table order.
    pub const ALL: [Step; 5] = [
        Step::Write,
        Step::Fsync,
        Step::Rename,
        Step::FsyncDir,
        Step::Other,
    ];

    /// The column heading.
    pub fn heading(self) -> &'static str {
        match self {
            Step::Write => "write",
            Step::Fsync => "fsync",
            Step::Rename => "rename",
            Step::FsyncDir => "dir fsync",
            Step::Other => "other",
        }
    }
}

/// One strategy of the catalog, done natively.
#[derive(Clone, Copy, Debug)]
pub struct Strategy {
    /// Its name: the catalog scenario whose steps it repeats.
    pub name: &'static str,
    /// The catalog scenario file, for its expectations.
    scenario: &'static str,
    replace: fn(&Path, &[u8], &mut Timer) -> io::Result<()>,
}

/// The strategies `bench` knows, cheapest guarantees first.
pub const STRATEGIES: [Strategy; 6] = [
    Strategy {
        name: "cp",
        scenario: include_str!("../catalog/cp.toml"),
        replace: cp,
    },
    Strategy {
        name: "pwrite-in-place",
        scenario: include_str!("../catalog/pwrite-in-place.toml"),
        replace: pwrite_in_place,
    },
    Strategy {
        name: "install",
        scenario: include_str!("../catalog/install.toml"),
        replace: install,
    },
    Strategy {
        name: "temp-rename",
        scenario: include_str!("../catalog/temp-rename.toml"),
        replace: temp_rename,
    },
    Strategy {
        name: "atomic-fsync",
        scenario: include_str!("../catalog/atomic-fsync.toml"),
        replace: atomic_fsync,
    },
    Strategy {
        name: "link-aside-fsync",
        scenario: include_str!("../catalog/link-aside-fsync.toml"),
        replace: link_aside_fsync,
    },
];

impl Strategy {
    /// The strategy called `name`.
    pub fn named(name: &str) -> Option<Strategy> {
        STRATEGIES.iter().copied().find(|s| s.name == name)
    }

    /// What the catalog expects of it, property by property.
    pub fn expectations(&self) -> BTreeMap<Property, Expectation> {
        let path = PathBuf::from(format!("scenarios/{}.toml", self.name));
        Scenario::from_toml(self.scenario, &path)
            .map(|s| s.expect().clone())
            .unwrap_or_default()
    }
}

/// Times the steps of one replacement.
#[derive(Debug, Default)]
pub struct Timer {
    steps: BTreeMap<Step, Duration>,
}

impl Timer {
    /// Runs `f` as (part of) `step`.
    fn time<T>(&mut self, step: Step, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let start = Instant::now();
        let result = f();
        *self.steps.entry(step).or_default() += start.elapsed();
        result
    }
}

/// The size of each `write(2)` (cp's and Python's buffers are of this order).
const CHUNK: usize = 128 * 1024;

fn write_all(file: &mut File, data: &[u8], timer: &mut Timer) -> io::Result<()> {
    timer.time(Step::Write, || {
        for chunk in data.chunks(CHUNK) {
            file.write_all(chunk)?;
        }
        Ok(())
    })
}

fn close(file: File, timer: &mut Timer) -> io::Result<()> {
    timer.time(Step::Other, || {
        // close(2) itself, with its error: `drop` would hide it.
        let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
        // SAFETY: `fd` was just taken from the file, which no longer owns it.
        match unsafe { libc::close(fd) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    })
}

fn sibling(target: &Path, name: &str) -> PathBuf {
    target.with_file_name(name)
}

fn fsync_dir(dir: &Path, timer: &mut Timer) -> io::Result<()> {
    let handle = timer.time(Step::Other, || File::open(dir))?;
    timer.time(Step::FsyncDir, || handle.sync_all())?;
    close(handle, timer)
}

/// The old target's mode and xattrs onto the new file (the full recipe's
/// metadata copy).
fn copy_meta(target: &Path, file: &File, timer: &mut Timer) -> io::Result<()> {
    timer.time(Step::Other, || {
        let old = std::fs::metadata(target)?;
        file.set_permissions(std::fs::Permissions::from_mode(
            old.permissions().mode() & 0o7777,
        ))?;
        for name in xattr_names(target)? {
            if let Some(value) = get_xattr(target, &name)? {
                set_xattr(file, &name, &value)?;
            }
        }
        Ok(())
    })
}

/// `cp NEW TARGET`: the target opened with O_TRUNC and written in place.
fn cp(target: &Path, data: &[u8], timer: &mut Timer) -> io::Result<()> {
    let mut file = timer.time(Step::Other, || {
        File::options().write(true).truncate(true).open(target)
    })?;
    write_all(&mut file, data, timer)?;
    close(file, timer)
}

/// `os.pwrite` over the old bytes, 64 KiB at a time, then a truncate.
fn pwrite_in_place(target: &Path, data: &[u8], timer: &mut Timer) -> io::Result<()> {
    let file = timer.time(Step::Other, || File::options().write(true).open(target))?;
    timer.time(Step::Write, || {
        for (index, chunk) in data.chunks(64 * 1024).enumerate() {
            std::os::unix::fs::FileExt::write_all_at(&file, chunk, (index * 64 * 1024) as u64)?;
        }
        Ok(())
    })?;
    timer.time(Step::Other, || file.set_len(data.len() as u64))?;
    close(file, timer)
}

/// `install NEW TARGET`: unlink, create with O_EXCL, write, chmod.
fn install(target: &Path, data: &[u8], timer: &mut Timer) -> io::Result<()> {
    let mut file = timer.time(Step::Other, || {
        std::fs::remove_file(target)?;
        File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)
    })?;
    write_all(&mut file, data, timer)?;
    timer.time(Step::Other, || {
        file.set_permissions(std::fs::Permissions::from_mode(0o755))
    })?;
    close(file, timer)
}

/// A temp file beside the target, chmod'ed and renamed over it; no fsync.
fn temp_rename(target: &Path, data: &[u8], timer: &mut Timer) -> io::Result<()> {
    let temp = sibling(target, ".swap.bench");
    let mut file = timer.time(Step::Other, || {
        File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
    })?;
    write_all(&mut file, data, timer)?;
    timer.time(Step::Other, || {
        file.set_permissions(std::fs::Permissions::from_mode(0o755))
    })?;
    close(file, timer)?;
    timer.time(Step::Rename, || std::fs::rename(&temp, target))
}

/// The full recipe: temp file with the target's metadata, fsync'd, renamed
/// over the target, the directory fsync'd.
fn atomic_fsync(target: &Path, data: &[u8], timer: &mut Timer) -> io::Result<()> {
    let temp = sibling(target, ".target.swap-bench");
    let mut file = timer.time(Step::Other, || {
        File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
    })?;
    write_all(&mut file, data, timer)?;
    copy_meta(target, &file, timer)?;
    timer.time(Step::Fsync, || file.sync_all())?;
    close(file, timer)?;
    timer.time(Step::Rename, || std::fs::rename(&temp, target))?;
    fsync_dir(parent(target), timer)
}

/// The old file kept as a hard link while the full recipe puts the new one
/// in place, then the link removed and the directory fsync'd again.
fn link_aside_fsync(target: &Path, data: &[u8], timer: &mut Timer) -> io::Result<()> {
    let staged = sibling(target, ".target.staged");
    let previous = sibling(target, ".target.previous");
    let mut file = timer.time(Step::Other, || {
        File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&staged)
    })?;
    write_all(&mut file, data, timer)?;
    copy_meta(target, &file, timer)?;
    timer.time(Step::Fsync, || file.sync_all())?;
    close(file, timer)?;
    timer.time(Step::Other, || std::fs::hard_link(target, &previous))?;
    timer.time(Step::Rename, || std::fs::rename(&staged, target))?;
    let dir = timer.time(Step::Other, || File::open(parent(target)))?;
    timer.time(Step::FsyncDir, || dir.sync_all())?;
    timer.time(Step::Other, || std::fs::remove_file(&previous))?;
    timer.time(Step::FsyncDir, || dir.sync_all())?;
    close(dir, timer)
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

fn xattr_names(path: &Path) -> io::Result<Vec<CString>> {
    let path = c_path(path)?;
    let mut buffer = vec![0u8; 4096];
    // SAFETY: the buffer is valid for its length; the path is NUL-terminated.
    let len = unsafe { libc::listxattr(path.as_ptr(), buffer.as_mut_ptr().cast(), buffer.len()) };
    if len < 0 {
        let err = io::Error::last_os_error();
        // A file system without xattrs has none to copy.
        return match err.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(Vec::new()),
            _ => Err(err),
        };
    }
    Ok(buffer[..len as usize]
        .split(|b| *b == 0)
        .filter(|name| !name.is_empty())
        .filter_map(|name| CString::new(name).ok())
        .collect())
}

fn get_xattr(path: &Path, name: &CString) -> io::Result<Option<Vec<u8>>> {
    let path = c_path(path)?;
    let mut buffer = vec![0u8; 64 * 1024];
    // SAFETY: as in `xattr_names`.
    let len = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
        )
    };
    if len < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENODATA) => Ok(None),
            _ => Err(err),
        };
    }
    buffer.truncate(len as usize);
    Ok(Some(buffer))
}

fn set_xattr(file: &File, name: &CString, value: &[u8]) -> io::Result<()> {
    // SAFETY: a valid descriptor, NUL-terminated name, value of its length.
    let done = unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    match done {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// The file system a directory is on, from `/proc/self/mountinfo`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FileSystem {
    /// Its type (`ext4`, `tmpfs`, …).
    pub kind: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// The device or source behind it (`/dev/vda`, `tmpfs`).
    pub device: String,
    /// Mount options, then the file system's own.
    pub options: String,
}

impl FileSystem {
    /// The file system of `dir` (the mount with the longest mount point
    /// that holds it; the last mounted where several share one).
    pub fn of(dir: &Path) -> io::Result<FileSystem> {
        let dir = dir.canonicalize()?;
        let info = std::fs::read_to_string("/proc/self/mountinfo")?;
        Ok(Self::from_mountinfo(&info, &dir).unwrap_or_default())
    }

    fn from_mountinfo(info: &str, dir: &Path) -> Option<FileSystem> {
        let mut best: Option<FileSystem> = None;
        for line in info.lines() {
            // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPER
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let (Some(point), Some(options)) = (left.get(4), left.get(5)) else {
                continue;
            };
            let point = unescape(point);
            if !dir.starts_with(&point) {
                continue;
            }
            let longer = best
                .as_ref()
                .is_none_or(|b| point.len() >= b.mount_point.len());
            if longer {
                best = Some(FileSystem {
                    kind: right.first().copied().unwrap_or_default().to_owned(),
                    mount_point: point,
                    device: right.get(1).copied().map(unescape).unwrap_or_default(),
                    options: format!("{options} ({})", right.get(2).copied().unwrap_or("")),
                });
            }
        }
        best
    }
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Where to bench: the targets are written in a temp dir made in it,
    /// and removed with it, whatever happens (it must exist).
    pub dir: PathBuf,
    /// Target sizes, in bytes.
    pub sizes: Vec<u64>,
    /// The strategies to time.
    pub strategies: Vec<Strategy>,
    /// Counted runs of each strategy and size.
    pub runs: usize,
    /// Runs before those, not counted.
    pub warmup: usize,
    /// Drop the page cache before each counted run (needs root).
    pub drop_caches: bool,
}

/// One counted replacement.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// The whole replacement, timed around it.
    pub total_ns: u64,
    /// Each step's share (steps the strategy does not take are 0).
    pub steps_ns: BTreeMap<Step, u64>,
}

impl Timing {
    /// What the step timers did not see: the loop around the calls.
    pub fn unaccounted_ns(&self) -> u64 {
        self.total_ns
            .saturating_sub(self.steps_ns.values().sum::<u64>())
    }
}

/// The runs of one strategy at one size, and what the catalog says it
/// guarantees.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// The strategy's name.
    pub strategy: &'static str,
    /// The target size, in bytes.
    pub size: u64,
    /// Every counted run.
    pub runs: Vec<Timing>,
    /// Medians: of the totals, and of each step.
    pub median: Timing,
    /// The fastest and slowest counted run.
    pub min_ns: u64,
    /// See `min_ns`.
    pub max_ns: u64,
    /// Properties its catalog scenario passes.
    pub passes: Vec<Property>,
    /// Properties its catalog scenario fails.
    pub fails: Vec<Property>,
}

/// What `swapfault bench` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Where it ran.
    pub dir: PathBuf,
    /// The file system there.
    pub filesystem: FileSystem,
    /// Counted runs per strategy and size.
    pub runs: usize,
    /// Uncounted runs before them.
    pub warmup: usize,
    /// Whether the page cache was dropped before each counted run.
    pub caches_dropped: bool,
    /// One per strategy and size, sizes in the order asked.
    pub results: Vec<Measurement>,
}

/// Why a bench stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file operation failed.
    #[error("{strategy} at {size} bytes in {dir}: {source}")]
    Io {
        /// The strategy that ran.
        strategy: &'static str,
        /// The target size.
        size: u64,
        /// The bench directory.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The setup failed before any strategy ran.
    #[error("cannot bench in {dir}: {source} (hint: --dir names an existing, writable directory)")]
    Setup {
        /// The bench directory.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A strategy left something other than the new bytes (a bug here).
    #[error("{strategy} at {size} bytes left a target that is not the new version")]
    Wrong {
        /// The strategy.
        strategy: &'static str,
        /// The target size.
        size: u64,
    },
    /// Interrupted by a signal.
    #[error("interrupted")]
    Interrupted,
}

/// Bytes of a version: a pattern that differs between versions and along
/// the file (so no file system can dedupe or compress it away).
fn version_bytes(version: u8, len: u64) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(version);
    (0..len)
        .map(|_| {
            // xorshift: cheap and not all zeros.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Puts a durable old target in place (with an xattr where the file system
/// takes one, for the recipes to copy), and nothing else: whatever a
/// strategy left in the bench's own directory goes.
fn reset(dir: &Path, target: &Path, old: &[u8]) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        std::fs::remove_file(entry?.path())?;
    }
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(target)?;
    file.write_all(old)?;
    let name = CString::new("user.origin").expect("no NUL");
    // tmpfs before 6.6 and some others take no user xattrs: nothing to copy then.
    let _ = set_xattr(&file, &name, b"vendor");
    file.sync_all()?;
    File::open(dir)?.sync_all()
}

/// Writes back everything dirty on the file system of `dir`, so a run does
/// not pay for the one before it.
fn sync_file_system(dir: &Path) -> io::Result<()> {
    let handle = File::open(dir)?;
    // SAFETY: a valid descriptor.
    match unsafe { libc::syncfs(handle.as_raw_fd()) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Drops the page cache, dentries and inodes (`false`: not permitted).
fn drop_caches() -> bool {
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Progress of a bench, after each run.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Runs done (warm-ups included).
    pub done: usize,
    /// Runs in all.
    pub total: usize,
    /// The strategy running.
    pub strategy: &'static str,
    /// Its target size.
    pub size: u64,
}

/// Times every strategy at every size. `stop` is checked between runs;
/// `progress` hears of each. With `drop_caches` asked but not permitted it
/// goes on without, and the report says so.
pub fn bench(
    options: &BenchOptions,
    stop: &AtomicBool,
    mut progress: impl FnMut(Progress),
) -> Result<BenchReport, BenchError> {
    let setup = |source| BenchError::Setup {
        dir: options.dir.clone(),
        source,
    };
    let filesystem = FileSystem::of(&options.dir).map_err(setup)?;
    // A dir of our own: no file of the user's is ever in the way.
    let own = tempfile::Builder::new()
        .prefix(".swapfault-bench-")
        .tempdir_in(&options.dir)
        .map_err(setup)?;
    let dir = own.path();
    let target = dir.join("target");
    let mut caches_dropped = options.drop_caches;
    let total = options.sizes.len() * options.strategies.len() * (options.warmup + options.runs);
    let mut done = 0;
    let mut results = Vec::new();
    for &size in &options.sizes {
        let old = version_bytes(1, size);
        let new = version_bytes(2, size);
        for strategy in &options.strategies {
            let io = |source| BenchError::Io {
                strategy: strategy.name,
                size,
                dir: dir.to_owned(),
                source,
            };
            let mut runs = Vec::with_capacity(options.runs);
            for index in 0..options.warmup + options.runs {
                if stop.load(Ordering::SeqCst) {
                    return Err(BenchError::Interrupted);
                }
                reset(dir, &target, &old).map_err(io)?;
                sync_file_system(dir).map_err(io)?;
                let counted = index >= options.warmup;
                if counted && caches_dropped && !drop_caches() {
                    caches_dropped = false;
                }
                let mut timer = Timer::default();
                let start = Instant::now();
                (strategy.replace)(&target, &new, &mut timer).map_err(io)?;
                let elapsed = start.elapsed();
                if std::fs::read(&target).map_err(io)? != new {
                    return Err(BenchError::Wrong {
                        strategy: strategy.name,
                        size,
                    });
                }
                if counted {
                    runs.push(Timing {
                        total_ns: nanos(elapsed),
                        steps_ns: Step::ALL
                            .iter()
                            .map(|step| (*step, timer.steps.get(step).copied().map_or(0, nanos)))
                            .collect(),
                    });
                }
                done += 1;
                progress(Progress {
                    done,
                    total,
                    strategy: strategy.name,
                    size,
                });
            }
            results.push(measurement(strategy, size, runs));
        }
    }
    own.close().map_err(setup)?;
    Ok(BenchReport {
        dir: options
            .dir
            .canonicalize()
            .unwrap_or_else(|_| options.dir.clone()),
        filesystem,
        runs: options.runs,
        warmup: options.warmup,
        caches_dropped,
        results,
    })
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The median of `values` (the lower middle of an even count), 0 for none.
fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    match values.len() {
        0 => 0,
        len => values[(len - 1) / 2],
    }
}

fn measurement(strategy: &Strategy, size: u64, runs: Vec<Timing>) -> Measurement {
    let totals: Vec<u64> = runs.iter().map(|r| r.total_ns).collect();
    let median_timing = Timing {
        total_ns: median(totals.clone()),
        steps_ns: Step::ALL
            .iter()
            .map(|step| {
                let values = runs.iter().map(|r| r.steps_ns[step]).collect();
                (*step, median(values))
            })
            .collect(),
    };
    let expectations = strategy.expectations();
    let with = |wanted: Expectation| {
        expectations
            .iter()
            .filter(|(_, e)| **e == wanted)
            .map(|(p, _)| *p)
            .collect()
    };
    Measurement {
        strategy: strategy.name,
        size,
        min_ns: totals.iter().copied().min().unwrap_or(0),
        max_ns: totals.iter().copied().max().unwrap_or(0),
        median: median_timing,
        runs,
        passes: with(Expectation::Pass),
        fails: with(Expectation::Fail),
    }
}

/// A duration for the table: milliseconds below ten seconds, else seconds.
fn human_ns(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    match ms {
        ms if ms >= 10_000.0 => format!("{:.1} s", ms / 1000.0),
        ms if ms >= 100.0 => format!("{ms:.0} ms"),
        ms if ms >= 1.0 => format!("{ms:.1} ms"),
        ms => format!("{ms:.2} ms"),
    }
}

impl BenchReport {
    /// The table: per strategy and size, the median whole replacement, its
    /// spread, each step's median, and what the catalog says it passes.
    pub fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        let fs = &self.filesystem;
        writeln!(
            out,
            "swapfault bench: {} on {} {} (mounted on {}, {})",
            self.dir.display(),
            fs.kind,
            fs.device,
            fs.mount_point,
            fs.options
        )?;
        let caches = if self.caches_dropped {
            "page cache dropped before each"
        } else {
            "caches warm"
        };
        writeln!(
            out,
            "medians of {} runs after {} warm-up ({caches}); dirty data written back before each run, untimed",
            self.runs, self.warmup
        )?;
        writeln!(out)?;
        let mut header = format!(
            "{:<17} {:>7} {:>9} {:>19}",
            "strategy", "size", "total", "spread (min-max)"
        );
        for step in Step::ALL {
            header.push_str(&format!(" {:>9}", step.heading()));
        }
        writeln!(out, "{header}  passes")?;
        for m in &self.results {
            let mut row = format!(
                "{:<17} {:>7} {:>9} {:>19}",
                m.strategy,
                crate::size::size_text(m.size),
                human_ns(m.median.total_ns),
                format!("{} - {}", human_ns(m.min_ns), human_ns(m.max_ns)),
            );
            for step in Step::ALL {
                let ns = m.median.steps_ns.get(&step).copied().unwrap_or(0);
                let cell = if ns == 0 {
                    "-".to_owned()
                } else {
                    human_ns(ns)
                };
                row.push_str(&format!(" {cell:>9}"));
            }
            let passes: Vec<&str> = m.passes.iter().map(|p| p.name()).collect();
            writeln!(out, "{row}  {}", passes.join(" "))?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "passes: the properties the strategy's catalog scenario (scenarios/NAME.toml) passes; \
             `swapfault explore scenarios/NAME.toml` proves them afresh"
        )
    }

    /// The report as JSON, with the schema version of every report.
    pub fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        #[derive(Serialize)]
        struct Versioned<'a> {
            schema_version: u32,
            mode: &'static str,
            #[serde(flatten)]
            report: &'a BenchReport,
        }
        serde_json::to_writer_pretty(
            &mut *out,
            &Versioned {
                schema_version: SCHEMA_VERSION,
                mode: "bench",
                report: self,
            },
        )?;
        writeln!(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_system_of_a_dir_is_the_longest_mount_point_that_holds_it() {
        let info = "\
22 1 8:1 / / rw,relatime - ext4 /dev/vda rw
30 22 0:40 / /home/a\\040b rw,nosuid - tmpfs tmpfs rw,size=10k
31 22 0:41 / /home/ab rw - xfs /dev/vdb rw
";
        let fs = FileSystem::from_mountinfo(info, Path::new("/home/a b/x")).expect("found");
        assert_eq!(fs.kind, "tmpfs");
        assert_eq!(fs.mount_point, "/home/a b");
        assert_eq!(fs.options, "rw,nosuid (rw,size=10k)");
        // /home/ab holds /home/ab/c, but no /home/abc: components, not text.
        let fs = FileSystem::from_mountinfo(info, Path::new("/home/abc")).expect("found");
        assert_eq!(fs.device, "/dev/vda");
    }

    #[test]
    fn every_strategy_has_its_catalog_expectations() {
        for strategy in STRATEGIES {
            let expectations = strategy.expectations();
            assert_eq!(
                expectations.len(),
                Property::ALL.len(),
                "{}: {expectations:?}",
                strategy.name
            );
        }
        // The full recipe is the one that passes power.
        let recipe = Strategy::named("atomic-fsync").expect("known");
        assert_eq!(recipe.expectations()[&Property::Power], Expectation::Pass);
    }

    #[test]
    fn medians_take_the_lower_middle() {
        assert_eq!(median(vec![5, 1, 3]), 3);
        assert_eq!(median(vec![4, 1, 3, 2]), 2);
        assert_eq!(median(Vec::new()), 0);
    }
}
