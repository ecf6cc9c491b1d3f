#!/usr/bin/env python3
"""An updater that does everything right for the bytes (temp file, fsync,
rename, fsync of the directory) but sets the mode and xattrs its manifest
names only after the rename: mkstemp makes its file 0600 without xattrs, so
between the rename and the chmod the new target is one that a service user
cannot load and that lost its xattrs. A retry puts them right."""
import os
import tempfile

target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]
directory = os.path.dirname(target)

# What the package's manifest says the file must carry.
MODE = 0o755
XATTRS = {"user.origin": b"vendor"}

fd, tmp = tempfile.mkstemp(dir=directory, prefix=".update.")
with open(new, "rb") as src, os.fdopen(fd, "wb") as dst:
    while chunk := src.read(64 * 1024):
        dst.write(chunk)
    dst.flush()
    os.fsync(dst.fileno())
os.rename(tmp, target)
dfd = os.open(directory, os.O_RDONLY)
os.fsync(dfd)
os.close(dfd)
# Too late: the target has been new, at 0600 and without xattrs, since the
# rename.
os.chmod(target, MODE)
for name, value in XATTRS.items():
    os.setxattr(target, name, value)
