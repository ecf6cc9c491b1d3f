#!/usr/bin/env python3
"""The full recipe: a temp file in the target's directory with the target's
mode, owner and xattrs, fsync'd, renamed over the target, then the directory
fsync'd. Temp files of interrupted earlier runs are removed first.

`--sync-all` takes sync(2) for both barriers instead (everything durable,
as `sync` with no argument does); `--no-first-sync` then leaves out the one
before the rename, so the rename may reach the disk before the data it
names."""
import glob
import os
import sys
import tempfile

sync_all = "--sync-all" in sys.argv[1:]
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
        if not sync_all:
            os.fsync(dst.fileno())
    if sync_all and first_sync:
        os.sync()
    os.rename(tmp, target)
except BaseException:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    raise
if sync_all:
    os.sync()
else:
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
