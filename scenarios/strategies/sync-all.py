#!/usr/bin/env python3
"""The full recipe with sync(2) for its barriers: a temp file in the
target's directory with the target's mode, owner and xattrs, then sync(2)
(everything durable), the rename, and sync(2) again. `--no-first-sync`
leaves out the sync before the rename: the rename may then reach the disk
before the data it names."""
import glob
import os
import sys
import tempfile

first_sync = "--no-first-sync" not in sys.argv[1:]
target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]
directory, name = os.path.split(target)
prefix = f".{name}.swap-"

for stale in glob.glob(os.path.join(glob.escape(directory), glob.escape(prefix) + "*")):
    os.unlink(stale)

old = os.stat(target)
fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory)
try:
    with open(new, "rb") as src, os.fdopen(fd, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fchmod(dst.fileno(), old.st_mode & 0o7777)
        os.fchown(dst.fileno(), old.st_uid, old.st_gid)
        for attr in os.listxattr(target):
            os.setxattr(dst.fileno(), attr, os.getxattr(target, attr))
    if first_sync:
        os.sync()
    os.rename(tmp, target)
except BaseException:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    raise
os.sync()
