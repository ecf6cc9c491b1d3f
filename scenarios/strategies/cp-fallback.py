#!/usr/bin/env python3
"""A copier in the shape of BusyBox `cp -f`: it overwrites the target in
place, tries a fast whole-file copy (sendfile) first and, when that fails,
starts over with a read/write loop. One failed call is survived that way; a
disk that stays full is not: the loop fails too, and the target is left cut
short."""
import os

target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]

src = os.open(new, os.O_RDONLY)
dst = os.open(target, os.O_WRONLY | os.O_TRUNC)
size = os.fstat(src).st_size
try:
    sent = 0
    while sent < size:
        sent += os.sendfile(dst, src, sent, size - sent)
except OSError:
    # The fallback: from the start, with plain reads and writes.
    os.lseek(dst, 0, os.SEEK_SET)
    os.lseek(src, 0, os.SEEK_SET)
    while chunk := os.read(src, 64 * 1024):
        os.write(dst, chunk)
