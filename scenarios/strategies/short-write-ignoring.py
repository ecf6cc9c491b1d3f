#!/usr/bin/env python3
"""The full recipe, but the copy is one write(2) whose count is never
checked (as `fs.writeSync(fd, buf)` without looking at what it returns):
where the disk fills inside it, write returns a short count with no error,
and the rest of the file is never written."""
import os
import tempfile

target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]
directory, name = os.path.split(target)

old = os.stat(target)
with open(new, "rb") as src:
    data = src.read()
fd, tmp = tempfile.mkstemp(prefix=f".{name}.swap-", dir=directory)
try:
    os.write(fd, data)  # the bug: the count it returns is ignored
    os.fchmod(fd, old.st_mode & 0o7777)
    os.fchown(fd, old.st_uid, old.st_gid)
    for attr in os.listxattr(target):
        os.setxattr(fd, attr, os.getxattr(target, attr))
    os.fsync(fd)
    os.close(fd)
    os.rename(tmp, target)
except BaseException:
    os.unlink(tmp)
    raise
dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
try:
    os.fsync(dfd)
finally:
    os.close(dfd)
