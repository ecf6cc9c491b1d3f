//! A model of macOS code signing: a process whose executable, or a library
//! it maps, changes bytes on disk is killed with SIGKILL (on macOS the
//! kernel rejects a signed page that no longer matches its signature, and
//! kills the process: "code signature invalid").
//!
//! Who runs which file is learnt from the ops themselves: an exec opens its
//! file with `__FMODE_EXEC`, which FUSE passes on, and the caller is the
//! process that will run it. The libraries an executable loads are told
//! ([`CodeSigning::loads`]), as no op shows a mapping. Linux refuses writes
//! to a running executable (ETXTBSY) before fault-fs sees them, which macOS
//! does not: a process may run an equal copy that stands for the file it
//! treats as its own ([`CodeSigning::runs_as`]), so that writes to that file
//! go through and kill it as they would on macOS.
//!
//! Not modelled: pages are not checked one by one (any change of bytes of
//! the file kills, at the op that makes it), nor notarization, quarantine or
//! signatures themselves.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

/// The open flag an exec's open of its file carries (`__FMODE_EXEC`).
pub(crate) const FMODE_EXEC: i32 = 0x20;

/// The model's state: which processes run which files' code, and whom it
/// killed.
#[derive(Debug, Default, Clone)]
pub struct CodeSigning {
    runs_as: HashMap<u64, u64>,
    loads: HashMap<u64, Vec<u64>>,
    running: Vec<Running>,
    /// Files whose bytes the op being applied changed.
    changed: Vec<u64>,
    kills: Vec<SignatureKill>,
}

/// A process that runs a file's code.
#[derive(Debug, Clone)]
struct Running {
    pid: u32,
    /// Signals it without the risk of a reused pid; readable once it exited.
    pidfd: Arc<OwnedFd>,
    ino: u64,
}

/// A process the model killed: the file whose bytes changed under it, at
/// which op.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SignatureKill {
    /// The op that changed the bytes.
    pub seq: u64,
    /// The process killed.
    pub pid: u32,
    /// The file whose code it ran, as a path from the root of the tree.
    pub path: String,
}

impl SignatureKill {
    /// What macOS would say of it.
    pub fn reason(&self) -> String {
        format!(
            "code signature invalid: page of {} changed on disk",
            self.path.trim_start_matches('/')
        )
    }
}

impl CodeSigning {
    /// The model with nothing running yet.
    pub fn new() -> CodeSigning {
        CodeSigning::default()
    }

    /// A process that executes `copy` runs it as `file`: the code it runs
    /// is `file`'s, and so a change of `file`'s bytes kills it.
    pub fn runs_as(mut self, copy: u64, file: u64) -> CodeSigning {
        self.runs_as.insert(copy, file);
        self
    }

    /// An executable `exe` maps the libraries `libs` once it runs.
    pub fn loads(mut self, exe: u64, libs: Vec<u64>) -> CodeSigning {
        self.loads.insert(exe, libs);
        self
    }

    /// `pid` executes `ino`: from now on it runs that file's code (or the
    /// code of the file `ino` runs as) and that of the libraries it loads,
    /// and no longer its former image's.
    pub(crate) fn exec(&mut self, pid: u32, ino: u64) {
        self.running.retain(|r| r.pid != pid && !r.exited());
        let Some(pidfd) = crate::proc::pidfd_of(pid) else {
            return;
        };
        let pidfd = Arc::new(pidfd);
        let file = self.runs_as.get(&ino).copied().unwrap_or(ino);
        let libs = self
            .loads
            .get(&ino)
            .or_else(|| self.loads.get(&file))
            .cloned()
            .unwrap_or_default();
        for ino in std::iter::once(file).chain(libs) {
            self.running.push(Running {
                pid,
                pidfd: pidfd.clone(),
                ino,
            });
        }
    }

    /// Whether a process runs the code of `ino`: only then is a change of
    /// its bytes worth comparing for.
    pub(crate) fn is_running(&self, ino: u64) -> bool {
        self.running.iter().any(|r| r.ino == ino)
    }

    /// The op being applied changed bytes of `ino`.
    pub(crate) fn changed(&mut self, ino: u64) {
        if self.is_running(ino) && !self.changed.contains(&ino) {
            self.changed.push(ino);
        }
    }

    /// Kills, with SIGKILL, every process that runs the code of a file the
    /// op `seq` changed, and logs it with the path `path_of` gives.
    pub(crate) fn enforce(&mut self, seq: u64, path_of: impl Fn(u64) -> String) {
        if self.changed.is_empty() {
            return;
        }
        let changed = std::mem::take(&mut self.changed);
        let mut killed: Vec<u32> = Vec::new();
        for running in self.running.iter().filter(|r| changed.contains(&r.ino)) {
            if killed.contains(&running.pid) || running.exited() {
                continue;
            }
            // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
            let sent = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    running.pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            if sent == 0 {
                tracing::debug!(
                    seq,
                    pid = running.pid,
                    ino = running.ino,
                    "code signing kills"
                );
                killed.push(running.pid);
                self.kills.push(SignatureKill {
                    seq,
                    pid: running.pid,
                    path: path_of(running.ino),
                });
            }
        }
        self.running.retain(|r| !killed.contains(&r.pid));
    }

    /// The processes killed since the last call.
    pub(crate) fn take_kills(&mut self) -> Vec<SignatureKill> {
        std::mem::take(&mut self.kills)
    }
}

impl Running {
    /// It has exited (its pidfd is readable).
    fn exited(&self) -> bool {
        let mut poll = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        unsafe { libc::poll(&mut poll, 1, 0) > 0 }
    }
}
