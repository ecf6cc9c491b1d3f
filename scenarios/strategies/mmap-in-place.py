#!/usr/bin/env python3
"""An updater that copies the new bytes into the live file through a shared
mapping: open it read-write, grow or shrink it to the new length, map it
MAP_SHARED and copy, then unmap. The stores land in the page cache that
every process mapping the file shares, so a running program sees them at
once; the kernel writes the dirty pages back when the mapping goes away (or
earlier, when it likes), never as a write(2) of this process."""
import mmap
import os

target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]

with open(new, "rb") as src:
    data = src.read()
fd = os.open(target, os.O_RDWR)
try:
    os.ftruncate(fd, len(data))
    if data:
        with mmap.mmap(fd, len(data), flags=mmap.MAP_SHARED) as mapped:
            # 64 KiB at a time, as a copy loop would: a kill between two
            # stores leaves the first part new and the rest old.
            for offset in range(0, len(data), 64 * 1024):
                mapped[offset : offset + 64 * 1024] = data[offset : offset + 64 * 1024]
finally:
    os.close(fd)
