//! Barriers FUSE cannot see: `sync(2)` and `syncfs(2)`.
//!
//! Neither reaches a FUSE file system (the kernel has nothing to ask it),
//! yet on a real disk both write and wait for every dirty page and entry:
//! stage, `sync`, rename, `sync` is a safe replacement on ext4. So the
//! strategy's sandbox init installs a seccomp filter that hands these two
//! calls to swapfault (a user notification, Linux 5.0 and later), and a
//! [`SyncWatch`] answers each: a `sync(2)`, or a `syncfs(2)` of a file on
//! the mount, becomes op `sync` of fault-fs ([`FaultFsHandle::sync`]),
//! traced, faulted and made durable as the real call would; a `syncfs(2)`
//! of another file system goes on to the kernel untouched.
//! `sync_file_range(2)` is no barrier (it waits for no metadata and
//! flushes no device cache) and is not watched.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::thread::JoinHandle;

use fault_fs::FaultFsHandle;

/// Answers the sync calls of one sandbox's processes until dropped.
#[derive(Debug)]
pub struct SyncWatch {
    /// Written to (closed) to stop the thread.
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl SyncWatch {
    /// Serves the seccomp `listener` that the sandbox init passed on: the
    /// calls become ops of `handle`'s file system when they concern it
    /// (`devices`: the st_dev of its mounts).
    pub fn start(
        listener: OwnedFd,
        handle: FaultFsHandle,
        devices: Vec<u64>,
    ) -> std::io::Result<SyncWatch> {
        let (stop_read, stop_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let listener = Arc::new(listener);
        let thread = std::thread::Builder::new()
            .name("sync-watch".into())
            .spawn(move || serve(listener, stop_read, &handle, &devices))?;
        Ok(SyncWatch {
            stop: Some(stop_write),
            thread: Some(thread),
        })
    }
}

impl Drop for SyncWatch {
    fn drop(&mut self) {
        // Closing the pipe's write end wakes the thread's poll.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: each notification in turn, until told to stop or until no
/// process is left that the filter covers.
fn serve(listener: Arc<OwnedFd>, stop: OwnedFd, handle: &FaultFsHandle, devices: &[u64]) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(_) => return,
            Ok(_) => {}
        }
        let ready = |fd: &PollFd| fd.revents().unwrap_or(PollFlags::empty());
        if !ready(&fds[1]).is_empty() {
            return;
        }
        let listener_said = ready(&fds[0]);
        if listener_said.contains(PollFlags::POLLIN) {
            if let Some(call) = receive(&listener) {
                answer(&listener, call, handle, devices);
            }
        } else if !listener_said.is_empty() {
            // POLLHUP: every process the filter covered is gone.
            return;
        }
    }
}

/// Takes the next notification; `None` when its caller died meanwhile.
fn receive(listener: &OwnedFd) -> Option<libc::seccomp_notif> {
    // SAFETY: an all-zero seccomp_notif is valid (integers only), and the
    // kernel asks for it zeroed.
    let mut call: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one seccomp_notif into `call`.
    let got = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut call,
        )
    };
    (got == 0).then_some(call)
}

/// Answers one call: a barrier of this file system goes through fault-fs
/// (which answers when the op is done, after a stall perhaps); any other
/// goes on to the kernel.
fn answer(
    listener: &Arc<OwnedFd>,
    call: libc::seccomp_notif,
    handle: &FaultFsHandle,
    devices: &[u64],
) {
    let ours = match call.data.nr as libc::c_long {
        libc::SYS_sync => true,
        libc::SYS_syncfs => {
            fd_device(call.pid, call.data.args[0]).is_some_and(|dev| devices.contains(&dev))
        }
        _ => false,
    };
    if !ours {
        respond(listener, call.id, Answer::Continue);
        return;
    }
    let listener = listener.clone();
    let id = call.id;
    handle.sync(call.pid, move |result| {
        let answer = match result {
            Ok(()) => Answer::Done,
            Err(errno) => Answer::Failed(errno),
        };
        respond(&listener, id, answer);
    });
}

/// The device of descriptor `fd` of process `pid` (the file it names, in
/// whatever mount namespace the process is).
fn fd_device(pid: u32, fd: u64) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/fd/{fd}"))
        .ok()
        .map(|meta| meta.dev())
}

/// How a watched call returns.
enum Answer {
    /// As the kernel would run it: the call is not ours.
    Continue,
    /// Returns 0: fault-fs did what the call does.
    Done,
    /// Fails with this errno (an injected fault).
    Failed(i32),
}

fn respond(listener: &OwnedFd, id: u64, answer: Answer) {
    let (val, error, flags) = match answer {
        Answer::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
        Answer::Done => (0, 0, 0),
        Answer::Failed(errno) => (0, -errno, 0),
    };
    let mut response = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags,
    };
    // SAFETY: the ioctl reads one seccomp_notif_resp. It fails (ENOENT)
    // when the caller died meanwhile, and then there is no one to answer.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut response,
        )
    };
}
