//! The built-in canary: an executable and a shared library in two versions
//! whose code differs, padded to a chosen size, built with the system C
//! compiler on first use and cached.
//!
//! The cache lives in `$SWAPFAULT_CACHE` (default `$XDG_CACHE_HOME/swapfault`,
//! else `~/.cache/swapfault`), one directory per version and size, filled by
//! the temp-dir-then-rename way this tool preaches.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Source of the canary executable.
const CANARY_C: &str = include_str!("../canary/canary.c");
/// Source of the canary library.
const LIBCANARY_C: &str = include_str!("../canary/libcanary.c");
/// Source of the init that runs a strategy in a PID namespace of its own.
const SANDBOX_INIT_C: &str = include_str!("../canary/sandbox-init.c");

/// Default size of a canary file.
pub const DEFAULT_SIZE: u64 = 256 * 1024;
/// Smallest and largest sizes offered.
pub const SIZE_RANGE: (u64, u64) = (64 * 1024, 64 * 1024 * 1024);

/// Bytes the code and ELF headers add on top of the padding, roughly.
const OVERHEAD: u64 = 20 * 1024;

/// File name of the canary executable.
pub const EXE_NAME: &str = "canary";
/// File name of the canary library (what the executable's DT_NEEDED names).
pub const LIB_NAME: &str = "libcanary.so";

/// Why the canary could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    /// No C compiler.
    #[error("cannot run the C compiler `{compiler}` to build the canary: {source} (hint: `apt-get install gcc`, or set CC)")]
    NoCompiler {
        /// The compiler tried.
        compiler: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// The compiler failed.
    #[error("building the canary failed: {0}")]
    Build(String),
    /// The cache could not be written.
    #[error("cannot write the canary cache {path}: {source} (hint: set SWAPFAULT_CACHE to a writable directory)")]
    Cache {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A size outside the offered range.
    #[error("canary size {0} is outside 64 KiB to 64 MiB (hint: pick a size in that range)")]
    Size(u64),
}

/// One built canary version: the executable and the library, side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryBuild {
    /// 1 (old) or 2 (new).
    pub version: u32,
    /// The executable (`canary`), linked against `libcanary.so` beside it.
    pub exe: PathBuf,
    /// The library.
    pub lib: PathBuf,
}

fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("SWAPFAULT_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("swapfault");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".cache/swapfault");
    }
    std::env::temp_dir().join("swapfault-cache")
}

/// Deterministic padding: different per version, so prefixes and tears of
/// old and new can be told apart everywhere in the file.
fn padding(version: u32, len: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5357_4150 + u64::from(version));
    let mut out = vec![0; len as usize];
    rng.fill_bytes(&mut out);
    out
}

fn compile(args: &[&std::ffi::OsStr]) -> Result<(), CanaryError> {
    compile_with(&compiler(std::env::var("CC").ok()), args)
}

/// The C compiler: `$CC`, unless it is unset or empty (as `CC= make` has
/// it), then `cc`.
fn compiler(cc: Option<String>) -> String {
    cc.filter(|cc| !cc.trim().is_empty())
        .unwrap_or_else(|| "cc".into())
}

/// Runs `compiler` with `args`.
fn compile_with(compiler: &str, args: &[&std::ffi::OsStr]) -> Result<(), CanaryError> {
    let output = Command::new(compiler)
        .args(args)
        .output()
        .map_err(|source| CanaryError::NoCompiler {
            compiler: compiler.to_owned(),
            source,
        })?;
    if !output.status.success() {
        return Err(CanaryError::Build(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    Ok(())
}

/// FNV-1a of the sources: keys the cache, so an edited program is rebuilt.
fn hash_of<'a>(sources: impl IntoIterator<Item = &'a str>) -> u64 {
    sources
        .into_iter()
        .flat_map(|source| source.bytes().chain([0]))
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

fn source_hash() -> u64 {
    hash_of([CANARY_C, LIBCANARY_C])
}

/// A cache error about `path`.
fn cache_err(path: &Path) -> impl FnOnce(std::io::Error) -> CanaryError {
    let path = path.to_owned();
    move |source| CanaryError::Cache { path, source }
}

/// A fresh directory in the cache `root` to build `key` in; see [`publish`].
fn work_dir(root: &Path, key: &str) -> Result<tempfile::TempDir, CanaryError> {
    std::fs::create_dir_all(root).map_err(cache_err(root))?;
    tempfile::Builder::new()
        .prefix(&format!(".{key}-"))
        .tempdir_in(root)
        .map_err(cache_err(root))
}

/// Renames a finished build directory into the cache. Another process may
/// have won the race; its build is as good as ours.
fn publish(work: tempfile::TempDir, dir: &Path) {
    let work = work.keep();
    if std::fs::rename(&work, dir).is_err() {
        let _ = std::fs::remove_dir_all(&work);
    }
}

/// File name of the sandbox init.
const SANDBOX_INIT_NAME: &str = "sandbox-init";

/// Builds (once, then cached) the init that runs a strategy in a PID
/// namespace of its own (see [`crate::sandbox`]), and returns its path.
pub fn build_sandbox_init() -> Result<PathBuf, CanaryError> {
    let root = cache_root();
    // The recipe is part of the key: a change of flags rebuilds it too.
    let key = format!(
        "init-{:016x}",
        hash_of([SANDBOX_INIT_C, "musl -static, else -static, else dynamic"])
    );
    let dir = root.join(&key);
    let exe = dir.join(SANDBOX_INIT_NAME);
    if exe.is_file() {
        return Ok(exe);
    }
    let work = work_dir(&root, &key)?;
    let source = work.path().join("sandbox-init.c");
    std::fs::write(&source, SANDBOX_INIT_C).map_err(cache_err(&source))?;
    let built = work.path().join(SANDBOX_INIT_NAME);
    let args = |linking: &'static str| -> Vec<&std::ffi::OsStr> {
        let mut args: Vec<&std::ffi::OsStr> = vec!["-O1".as_ref()];
        if !linking.is_empty() {
            args.push(linking.as_ref());
        }
        args.extend([source.as_os_str(), "-o".as_ref(), built.as_os_str()]);
        args
    };
    // Every strategy run execs the init, so its start-up is on the path of
    // every crash point: a static musl binary starts in 0.08 ms here, a
    // static glibc one in 0.34 ms (glibc asks the CPU for its features and
    // caches, and each such question traps to the hypervisor in a VM), a
    // dynamic one in 0.5 ms.
    if compile_with("musl-gcc", &args("-static")).is_err() && compile(&args("-static")).is_err() {
        compile(&args(""))?;
    }
    let _ = std::fs::remove_file(&source);
    publish(work, &dir);
    Ok(exe)
}

/// Builds (or finds in the cache) canary `version` of about `size` bytes.
pub fn build(version: u32, size: u64) -> Result<CanaryBuild, CanaryError> {
    build_variant(version, size, false)
}

/// Like [`build`], but the executable and library are a set (built with
/// `CANARY_SET=1`): the executable refuses to run (exit 4, "mixed
/// versions") with a library of another version.
pub fn build_set(version: u32, size: u64) -> Result<CanaryBuild, CanaryError> {
    build_variant(version, size, true)
}

fn build_variant(version: u32, size: u64, set: bool) -> Result<CanaryBuild, CanaryError> {
    if !(SIZE_RANGE.0..=SIZE_RANGE.1).contains(&size) {
        return Err(CanaryError::Size(size));
    }
    let root = cache_root();
    // A hash of the sources keys the cache, so an edited canary is rebuilt.
    let variant = if set { "-set" } else { "" };
    let key = format!("v{version}{variant}-{size}-{:016x}", source_hash());
    let dir = root.join(&key);
    let done = CanaryBuild {
        version,
        exe: dir.join(EXE_NAME),
        lib: dir.join(LIB_NAME),
    };
    if done.exe.is_file() && done.lib.is_file() {
        return Ok(done);
    }
    let work = work_dir(&root, &key)?;
    let w = work.path();
    let pad = w.join("pad.bin");
    std::fs::write(&pad, padding(version, size.saturating_sub(OVERHEAD)))
        .map_err(cache_err(&pad))?;
    std::fs::write(w.join("canary.c"), CANARY_C).map_err(cache_err(w))?;
    std::fs::write(w.join("libcanary.c"), LIBCANARY_C).map_err(cache_err(w))?;
    let version_flag = format!("-DCANARY_VERSION={version}");
    let pad_flag = format!("-DCANARY_PAD=\"{}\"", pad.display());
    let os = |s: &str| std::ffi::OsString::from(s);
    let lib_c = w.join("libcanary.c");
    let lib = w.join(LIB_NAME);
    compile(&[
        &os("-O1"),
        &os("-shared"),
        &os("-fPIC"),
        &os(&version_flag),
        &os(&pad_flag),
        lib_c.as_os_str(),
        &os("-o"),
        lib.as_os_str(),
    ])?;
    let exe_c = w.join("canary.c");
    let exe = w.join(EXE_NAME);
    let libdir = format!("-L{}", w.display());
    let set_flag = format!("-DCANARY_SET={}", u8::from(set));
    compile(&[
        &os("-O1"),
        &os(&set_flag),
        &os(&version_flag),
        &os(&pad_flag),
        exe_c.as_os_str(),
        &os("-o"),
        exe.as_os_str(),
        &os(&libdir),
        &os("-lcanary"),
        &os("-ldl"),
        &os("-Wl,-rpath,$ORIGIN"),
    ])?;
    for scratch in ["pad.bin", "canary.c", "libcanary.c"] {
        let _ = std::fs::remove_file(w.join(scratch));
    }
    publish(work, &dir);
    if done.exe.is_file() && done.lib.is_file() {
        Ok(done)
    } else {
        Err(CanaryError::Build(format!(
            "the build did not land in {}",
            dir.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_cc_counts_as_unset() {
        assert_eq!(compiler(None), "cc");
        assert_eq!(compiler(Some(String::new())), "cc");
        assert_eq!(compiler(Some(" ".into())), "cc");
        assert_eq!(compiler(Some("clang".into())), "clang");
    }
}
