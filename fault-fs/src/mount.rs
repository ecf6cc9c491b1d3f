//! Mounting: checks that name the fix, and a guard that always unmounts.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fuser::{BackgroundSession, Config, MountOption};
use nix::mount::{umount2, MntFlags};

use crate::fs::{FaultFs, FaultFsHandle};
use crate::tree::{NewNode, Tree, ROOT_INO};

/// Why a mount could not be made. Each message ends with the fix.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The kernel offers no FUSE device.
    #[error("/dev/fuse does not exist (hint: load the module with `modprobe fuse`, or give the container `--device /dev/fuse`)")]
    NoFuseDevice,
    /// Neither root nor a fusermount3 helper.
    #[error("mounting FUSE needs root or fusermount3, and this user is not root and has no fusermount3 on PATH (hint: run as root, or `apt-get install fuse3`)")]
    NoPermission,
    /// The mount point does not exist.
    #[error("mount point {0} does not exist (hint: create it with `mkdir -p {0}`)")]
    MissingDir(PathBuf),
    /// The mount point is not a directory.
    #[error("mount point {0} is not a directory (hint: name an empty directory)")]
    NotADir(PathBuf),
    /// The mount point has entries.
    #[error(
        "mount point {0} is not empty (hint: name an empty directory; use --from to copy files in)"
    )]
    NotEmpty(PathBuf),
    /// Something is mounted there already.
    #[error("{0} is already a mount point (hint: unmount it with `umount {0}` or pick another directory)")]
    AlreadyMounted(PathBuf),
    /// Loading `--from` failed.
    #[error("cannot copy {path} into the mount: {source}")]
    Populate {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The mount system call (or the handshake) failed.
    #[error("cannot mount {path}: {source}{hint}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
        /// A fix, where one is known.
        hint: &'static str,
    },
}

impl MountError {
    /// True for problems with the machine rather than with the arguments.
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            MountError::NoFuseDevice | MountError::NoPermission | MountError::Mount { .. }
        )
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Checks that this machine and user can mount FUSE at all.
pub fn check_environment() -> Result<(), MountError> {
    if !Path::new("/dev/fuse").exists() {
        return Err(MountError::NoFuseDevice);
    }
    if !nix::unistd::geteuid().is_root() && !on_path("fusermount3") && !on_path("fusermount") {
        return Err(MountError::NoPermission);
    }
    Ok(())
}

/// Checks the machine and the mount point before mounting.
pub fn preflight(dir: &Path) -> Result<(), MountError> {
    check_environment()?;
    let meta = std::fs::metadata(dir).map_err(|_| MountError::MissingDir(dir.to_owned()))?;
    if !meta.is_dir() {
        return Err(MountError::NotADir(dir.to_owned()));
    }
    let canonical = dir
        .canonicalize()
        .map_err(|_| MountError::MissingDir(dir.to_owned()))?;
    if is_mount_point(&canonical) {
        return Err(MountError::AlreadyMounted(dir.to_owned()));
    }
    let mut entries = std::fs::read_dir(dir).map_err(|_| MountError::MissingDir(dir.to_owned()))?;
    if entries.next().is_some() {
        return Err(MountError::NotEmpty(dir.to_owned()));
    }
    Ok(())
}

/// Whether `path` (canonical) is listed as a mount point in /proc/self/mountinfo.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    info.lines().any(|line| {
        line.split_whitespace()
            .nth(4)
            .is_some_and(|mount_point| unescape_mountinfo(mount_point) == wanted)
    })
}

fn unescape_mountinfo(field: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(byte) = u8::from_str_radix(&code, 8) {
                out.push(byte as char);
                continue;
            }
            out.push('\\');
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

/// Copies a host directory's files, directories and symlinks into the tree,
/// keeping modes, owners and times (as `cp -a` would).
pub fn load_dir(tree: &mut Tree, from: &Path) -> Result<(), MountError> {
    fn walk(tree: &mut Tree, dir: &Path, parent: u64) -> Result<(), MountError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| MountError::Populate { path, source }
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .collect::<Result<_, _>>()
            .map_err(io(dir))?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            let new = NewNode {
                perm: (meta.permissions().mode() & 0o7777) as u16,
                uid: meta.uid(),
                gid: meta.gid(),
            };
            let name = entry.file_name();
            let exists = |_| MountError::Populate {
                path: path.clone(),
                source: std::io::Error::other("name already in the mount"),
            };
            if meta.is_dir() {
                let ino = tree.mkdir(parent, &name, new).map_err(exists)?;
                walk(tree, &path, ino)?;
            } else if meta.is_symlink() {
                let target = std::fs::read_link(&path).map_err(io(&path))?;
                tree.symlink(parent, &name, target.as_os_str(), new)
                    .map_err(exists)?;
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).map_err(io(&path))?;
                let ino = tree.create_file(parent, &name, new).map_err(exists)?;
                let _ = tree.write(ino, 0, &bytes);
                let _ = tree.set_times(ino, meta.accessed().ok(), meta.modified().ok());
            }
        }
        Ok(())
    }
    walk(tree, from, ROOT_INO)
}

/// Unmounts a mount when the process that serves it dies, however it dies
/// (SIGKILL, the OOM killer), as fusermount's `auto_unmount` does: a dead
/// server leaves its mount in the table, failing every access with ENOTCONN.
///
/// Made before the mount, while this process has one thread: it forks a
/// watcher that waits for the end of a pipe only this process writes to.
/// When the pipe ends it looks for a swapfault mount at the directory, and
/// detaches it and aborts its connection. Dropping the guard after a clean
/// unmount lets the watcher end with nothing to do.
#[derive(Debug)]
pub struct UnmountWhenGone {
    pipe: Option<std::os::fd::OwnedFd>,
    watcher: nix::unistd::Pid,
}

impl UnmountWhenGone {
    /// Starts the watcher for the mount that is about to be made on `dir`.
    pub fn watch(dir: &Path) -> std::io::Result<UnmountWhenGone> {
        use nix::unistd::{fork, pipe2, ForkResult};
        let dir = dir.canonicalize()?;
        let (read, write) = pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // SAFETY: the caller's contract: one thread, so the child may do
        // anything a fresh process can.
        match unsafe { fork() }? {
            ForkResult::Child => {
                drop(write);
                watch_and_unmount(read, &dir);
                // SAFETY: ends the child without running the parent's
                // destructors or atexit handlers a second time.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => Ok(UnmountWhenGone {
                pipe: Some(write),
                watcher: child,
            }),
        }
    }
}

impl Drop for UnmountWhenGone {
    fn drop(&mut self) {
        self.pipe.take();
        let _ = nix::sys::wait::waitpid(self.watcher, None);
    }
}

/// The watcher's life: no terminal signals (a Ctrl-C is for the server,
/// which unmounts itself), no inherited stdio (a reader of swapfault's
/// output would otherwise wait for the watcher too), then wait for the
/// pipe to end.
fn watch_and_unmount(read: std::os::fd::OwnedFd, dir: &Path) {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: ignoring a signal installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto a standard descriptor number; no Rust
            // object owns those in this child.
            unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
        }
    }
    let mut file = std::fs::File::from(read);
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut file, &mut sink);
    let Some(minor) = swapfault_mount_at(dir) else {
        return;
    };
    let _ = umount2(dir, MntFlags::MNT_DETACH);
    if !is_mount_point(dir) {
        // Without privilege to unmount, the helper that mounted it can.
        let _ = std::process::Command::new("fusermount3")
            .args(["-u", "-z", "--"])
            .arg(dir)
            .status();
    }
    // Processes blocked on the dead connection get an error, not a hang.
    let _ = std::fs::write(format!("/sys/fs/fuse/connections/{minor}/abort"), b"1");
}

/// The device minor (the FUSE connection) of a swapfault mount at `dir`.
fn swapfault_mount_at(dir: &Path) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let wanted = dir.to_string_lossy();
    info.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let dash = fields.iter().position(|f| *f == "-")?;
        // fuse (or fuse.swapfault where the subtype is kept), from swapfault.
        let fstype = fields.get(dash + 1)?;
        let source = fields.get(dash + 2)?;
        (unescape_mountinfo(fields.get(4)?) == wanted
            && fstype.starts_with("fuse")
            && *source == "swapfault")
            .then(|| fields.get(2)?.split_once(':')?.1.parse().ok())
            .flatten()
    })
}

/// Mount points of this process that are up, for [`detach_all`].
static ACTIVE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn active() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    ACTIVE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Lazily unmounts every fault-fs mount of this process and returns their
/// mount points. For a signal handler that is about to exit: guards will not
/// run then, and a mount whose daemon is gone would be left as a dead mount.
pub fn detach_all() -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = active().drain(..).collect();
    for dir in &dirs {
        let _ = umount2(dir, MntFlags::MNT_DETACH);
    }
    dirs
}

/// A mounted [`FaultFs`]. Dropping it releases stalled ops and unmounts,
/// lazily as a last resort, so no test or run leaves a dead mount behind.
#[derive(Debug)]
pub struct FaultMount {
    dir: PathBuf,
    /// The tree's directory this mount shows as its root.
    root: u64,
    /// The FUSE connection's number (the mount's device minor), for abort.
    connection: Option<u64>,
    session: Option<BackgroundSession>,
    handle: FaultFsHandle,
}

impl FaultMount {
    /// Mounts `fs` on `dir` (which must exist, be empty and not be a mount).
    pub fn mount(fs: FaultFs, dir: &Path) -> Result<Self, MountError> {
        preflight(dir)?;
        let dir = dir
            .canonicalize()
            .map_err(|_| MountError::MissingDir(dir.to_owned()))?;
        let handle = fs.handle();
        let root = fs.root();
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("swapfault".into()),
            MountOption::Subtype("swapfault".into()),
            // The kernel checks modes (exec bits included) as on any disk fs.
            MountOption::DefaultPermissions,
        ];
        // Probes and live processes may run as other users.
        config.acl = if nix::unistd::geteuid().is_root() {
            fuser::SessionACL::All
        } else {
            fuser::SessionACL::Owner
        };
        let session = fuser::spawn_mount(fs, &dir, &config).map_err(|source| {
            let hint = match source.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    " (hint: run as root, or install fuse3 and allow user mounts)"
                }
                Some(libc::ENODEV) => " (hint: load the fuse module: `modprobe fuse`)",
                _ => "",
            };
            MountError::Mount {
                path: dir.clone(),
                source,
                hint,
            }
        })?;
        tracing::debug!(dir = %dir.display(), "mounted");
        handle.set_notifier(root, Some(session.notifier()));
        active().push(dir.clone());
        // From the mount table, not a stat of the mount: a request this
        // process sends its own server could never end were it killed then
        // (a request already read waits for its answer uninterruptibly, and
        // holds the descriptor that would abort it).
        let connection = swapfault_mount_at(&dir);
        Ok(FaultMount {
            root,
            connection,
            dir,
            session: Some(session),
            handle,
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A path inside the mount.
    pub fn join(&self, relative: impl AsRef<OsStr>) -> PathBuf {
        let relative = Path::new(relative.as_ref());
        self.dir
            .join(relative.strip_prefix("/").unwrap_or(relative))
    }

    /// The handle to the trace, plan, stalls and snapshots.
    pub fn handle(&self) -> &FaultFsHandle {
        &self.handle
    }

    /// Unmounts now. Dropping does the same; this reports failure.
    pub fn unmount(mut self) -> std::io::Result<()> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> std::io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        active().retain(|dir| dir != &self.dir);
        self.handle.set_notifier(self.root, None);
        self.handle.release_stalls();
        match session.umount_and_join() {
            Ok(()) => {
                tracing::debug!(dir = %self.dir.display(), "unmounted");
                Ok(())
            }
            // The unmount went through and the session ended with an error
            // of its own (the kernel may end the connection as ECONNABORTED
            // before the session thread sees ENODEV): nothing is left.
            Err(err) if !is_mount_point(&self.dir) => {
                tracing::debug!(dir = %self.dir.display(), %err, "unmounted; session ended with an error");
                Ok(())
            }
            Err(err) => {
                // Busy (a process still has files open there): detach it from
                // the namespace now; the kernel finishes when they close, and
                // the session thread ends then on its own.
                tracing::warn!(dir = %self.dir.display(), %err, "unmount failed; detaching lazily");
                let detached =
                    umount2(&self.dir, MntFlags::MNT_DETACH).map_err(std::io::Error::from);
                // A process stuck on a request would keep the detached
                // connection (and itself) alive forever: abort it where the
                // fusectl file system offers the switch.
                if let Some(connection) = self.connection {
                    let abort = format!("/sys/fs/fuse/connections/{connection}/abort");
                    if std::fs::write(&abort, b"1").is_ok() {
                        tracing::warn!(%abort, "aborted the FUSE connection");
                    }
                }
                detached
            }
        }
    }
}

impl Drop for FaultMount {
    fn drop(&mut self) {
        if let Err(err) = self.unmount_inner() {
            tracing::error!(dir = %self.dir.display(), %err, "could not unmount");
        }
    }
}
