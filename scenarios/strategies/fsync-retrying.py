#!/usr/bin/env python3
"""The full recipe, but a failed fsync is retried instead of ending the
update: on Linux the retry returns 0 and writes nothing (the failed pages
were marked clean), so the rename installs a file the disk never got."""
import os
import tempfile

target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]
directory, name = os.path.split(target)

old = os.stat(target)
fd, tmp = tempfile.mkstemp(prefix=f".{name}.swap-", dir=directory)
with open(new, "rb") as src, os.fdopen(fd, "wb") as dst:
    while chunk := src.read(1 << 20):
        dst.write(chunk)
    dst.flush()
    os.fchmod(dst.fileno(), old.st_mode & 0o7777)
    os.fchown(dst.fileno(), old.st_uid, old.st_gid)
    for attr in os.listxattr(target):
        os.setxattr(dst.fileno(), attr, os.getxattr(target, attr))
    for attempt in range(3):
        try:
            os.fsync(dst.fileno())
            break
        except OSError:
            if attempt == 2:
                raise
os.rename(tmp, target)
dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
try:
    os.fsync(dfd)
finally:
    os.close(dfd)
