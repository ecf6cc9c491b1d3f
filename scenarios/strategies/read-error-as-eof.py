#!/usr/bin/env python3
"""The full recipe, but its copy loop ends at a read error as at the end
of the file (C's `while ((n = read(in, buf, size)) > 0)`): a read error in
the new version installs its prefix, fsync'd and renamed, with exit 0."""
import os
import tempfile

target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]
directory, name = os.path.split(target)


def chunks(fd):
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except OSError:
            return  # the bug: an error ends the loop as the end of file does
        if not data:
            return
        yield data


old = os.stat(target)
src = os.open(new, os.O_RDONLY)
fd, tmp = tempfile.mkstemp(prefix=f".{name}.swap-", dir=directory)
try:
    for data in chunks(src):
        while data:
            data = data[os.write(fd, data):]
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
