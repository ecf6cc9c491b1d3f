#!/usr/bin/env python3
"""The soname way, done durably: install NEW as the next versioned file
beside the one the target's symlink names (with that file's mode, owner and
xattrs, fsync'd, renamed into place, the directory fsync'd), then flip the
symlink: a new link under a temp name renamed over it, and the directory
fsync'd again. The old versioned file stays for the programs that map it;
the package manager's next clean-up removes it."""
import os

target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]
directory = os.path.dirname(target)
version = os.path.basename(new)  # the next version's name: libcanary.so.2
current = os.path.join(directory, os.readlink(target))
staged = os.path.join(directory, f".{version}.staged")
link = os.path.join(directory, f".{os.path.basename(target)}.link")


def sync_directory():
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


old = os.stat(current)
fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with open(new, "rb") as src, os.fdopen(fd, "wb") as dst:
    while chunk := src.read(1 << 20):
        dst.write(chunk)
    dst.flush()
    os.fchmod(dst.fileno(), old.st_mode & 0o7777)
    os.fchown(dst.fileno(), old.st_uid, old.st_gid)
    for attr in os.listxattr(current):
        os.setxattr(dst.fileno(), attr, os.getxattr(current, attr))
    os.fsync(dst.fileno())
os.rename(staged, os.path.join(directory, version))
sync_directory()
# A link left by an interrupted run is stale: make it anew.
if os.path.lexists(link):
    os.unlink(link)
os.symlink(version, link)
os.rename(link, target)
sync_directory()
