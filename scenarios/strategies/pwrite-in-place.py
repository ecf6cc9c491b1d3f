#!/usr/bin/env python3
"""An updater that patches the file in place: os.pwrite of the new bytes
over the old, 64 KiB at a time, then a truncate to the new length, and no
fsync. Nothing says which of those pages reach the disk before a power cut:
the kernel writes dirty pages back when it likes, so a cut can leave any
mix of old and new."""
import os

target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]

with open(new, "rb") as src:
    data = src.read()
fd = os.open(target, os.O_WRONLY)
try:
    for offset in range(0, len(data), 64 * 1024):
        os.pwrite(fd, data[offset : offset + 64 * 1024], offset)
    os.ftruncate(fd, len(data))
finally:
    os.close(fd)
