#!/usr/bin/env python3
"""Keep the old file as a hard-linked backup, then put the new one in place
the durable way: a staged file with the target's mode, owner and xattrs,
fsync'd, renamed over the target, the directory fsync'd, and only then the
backup removed (and the directory fsync'd again). The target path never
disappears, and no state a kill, an error or a power cut leaves is torn."""
import os

target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]
directory, name = os.path.split(target)
staged = os.path.join(directory, f".{name}.staged")
previous = os.path.join(directory, f".{name}.previous")

old = os.stat(target)
fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with open(new, "rb") as src, os.fdopen(fd, "wb") as dst:
    while chunk := src.read(1 << 20):
        dst.write(chunk)
    dst.flush()
    os.fchmod(dst.fileno(), old.st_mode & 0o7777)
    os.fchown(dst.fileno(), old.st_uid, old.st_gid)
    for attr in os.listxattr(target):
        os.setxattr(dst.fileno(), attr, os.getxattr(target, attr))
    os.fsync(dst.fileno())
# A backup left by an interrupted run names an older inode: replace it.
if os.path.lexists(previous):
    os.unlink(previous)
os.link(target, previous)
os.rename(staged, target)
dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
try:
    os.fsync(dfd)
    os.unlink(previous)
    os.fsync(dfd)
finally:
    os.close(dfd)
