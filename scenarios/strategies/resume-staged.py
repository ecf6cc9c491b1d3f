#!/usr/bin/env python3
"""An updater that resumes: it stages the new file completely (written,
given the target's mode, owner and xattrs, fsync'd, then renamed to its
staged name), then renames it over the target. A run that finds a staged
file from an interrupted one takes the short way: it removes the target,
then renames the staged file in.

No first run can be cut where it matters, so one fault per run never
finds it: the window is in the retry, between its remove and its rename."""
import os

target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]
directory, name = os.path.split(target)
part = os.path.join(directory, f".{name}.part")
staged = os.path.join(directory, f".{name}.staged")


def sync_dir():
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


if os.path.lexists(staged):
    # Resume: the staged file is complete, only the swap is left.
    os.unlink(target)
    os.rename(staged, target)
    sync_dir()
    raise SystemExit(0)

if os.path.lexists(part):
    os.unlink(part)
old = os.stat(target)
with open(new, "rb") as src, open(part, "wb") as dst:
    while chunk := src.read(1 << 20):
        dst.write(chunk)
    dst.flush()
    os.fchmod(dst.fileno(), old.st_mode & 0o7777)
    os.fchown(dst.fileno(), old.st_uid, old.st_gid)
    for attr in os.listxattr(target):
        os.setxattr(dst.fileno(), attr, os.getxattr(target, attr))
    os.fsync(dst.fileno())
os.rename(part, staged)
os.rename(staged, target)
sync_dir()
