#!/usr/bin/env python3
"""The full recipe with one bug: it copies as many bytes of NEW as the old
target has, as an updater that sizes its buffer from the installed file
does. Every fault of explore's default sizes (a new version shorter than
the old) passes; only a new version longer than the old one is cut short,
which fuzz finds by drawing the sizes too."""
import os

target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]
directory, name = os.path.split(target)
tmp = os.path.join(directory, f".{name}.swap")

if os.path.lexists(tmp):
    os.unlink(tmp)
old = os.stat(target)
try:
    with open(new, "rb") as src, open(tmp, "wb") as dst:
        dst.write(src.read(old.st_size))  # the bug: the old size
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
