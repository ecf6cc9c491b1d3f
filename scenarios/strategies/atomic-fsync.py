#!/usr/bin/env python3
"""The full recipe: a temp file in the target's directory with the target's
mode, owner and xattrs, fsync'd, renamed over the target, then the directory
fsync'd. Temp files of interrupted earlier runs are removed first."""
import glob
import os
import tempfile

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
        os.fsync(dst.fileno())
    os.rename(tmp, target)
except BaseException:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    raise
dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
try:
    os.fsync(dfd)
finally:
    os.close(dfd)
