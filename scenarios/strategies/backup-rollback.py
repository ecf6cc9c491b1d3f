#!/usr/bin/env python3
"""An updater that keeps a backup and rolls back: the target is hard-linked
to a backup, a staged copy (with the target's mode, owner and xattrs,
fsync'd) is renamed over it, and on any error after the backup exists the
target is removed and the backup renamed back. A run interrupted earlier is
recovered first: a missing target is restored from the backup.

Every single fault leaves a complete target. The rollback itself is the
window: remove, then rename back. An error that starts it, then a kill
between its two steps, leaves no target at all."""
import os
import sys

target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]
directory, name = os.path.split(target)
backup = os.path.join(directory, f".{name}.backup")
staged = os.path.join(directory, f".{name}.staged")


def sync_dir():
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# What an interrupted run left.
if os.path.lexists(staged):
    os.unlink(staged)
if os.path.lexists(backup):
    if os.path.lexists(target):
        os.unlink(backup)
    else:
        os.rename(backup, target)
    sync_dir()

os.link(target, backup)
try:
    old = os.stat(target)
    with open(new, "rb") as src, open(staged, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fchmod(dst.fileno(), old.st_mode & 0o7777)
        os.fchown(dst.fileno(), old.st_uid, old.st_gid)
        for attr in os.listxattr(target):
            os.setxattr(dst.fileno(), attr, os.getxattr(target, attr))
        os.fsync(dst.fileno())
    os.rename(staged, target)
    sync_dir()
except OSError as err:
    print(f"update failed ({err}); rolling back", file=sys.stderr)
    os.unlink(target)
    os.rename(backup, target)
    if os.path.lexists(staged):
        os.unlink(staged)
    sync_dir()
    sys.exit(1)
os.unlink(backup)
sync_dir()
