#!/usr/bin/env python3
"""Replace a set of files that must change together (an executable and its
library) in one step: build the next version of the whole directory beside
it (every file written, given the old one's mode, owner and xattrs, and
fsync'd, the new directory fsync'd), then swap the two directories with
renameat2(RENAME_EXCHANGE), fsync their parent, and remove the old
version. No moment shows a directory of mixed versions, or none."""
import ctypes
import os
import shutil

target_dir = os.environ["SWAPFAULT_TARGET_DIR"].rstrip("/")
new_dir = os.environ["SWAPFAULT_NEW_DIR"]
parent = os.path.dirname(target_dir)
staged = f"{target_dir}.next"

AT_FDCWD = -100
RENAME_EXCHANGE = 2
libc = ctypes.CDLL(None, use_errno=True)


def exchange(a, b):
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), a)


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# A staged directory left by an interrupted run may be half built, or hold
# the old version after the exchange: start it anew.
if os.path.lexists(staged):
    shutil.rmtree(staged)
os.mkdir(staged, os.stat(target_dir).st_mode & 0o7777)
for name in os.listdir(target_dir):
    old = os.path.join(target_dir, name)
    source = os.path.join(new_dir, name)
    if not os.path.exists(source):
        source = old  # a file the new version does not change
    info = os.stat(old)
    fd = os.open(os.path.join(staged, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fchmod(dst.fileno(), info.st_mode & 0o7777)
        os.fchown(dst.fileno(), info.st_uid, info.st_gid)
        for attr in os.listxattr(old):
            os.setxattr(dst.fileno(), attr, os.getxattr(old, attr))
        os.fsync(dst.fileno())
fsync_path(staged)
exchange(staged, target_dir)
fsync_path(parent)
shutil.rmtree(staged)
fsync_path(parent)
