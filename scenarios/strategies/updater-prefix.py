#!/usr/bin/env python3
"""An updater in the shape of the pre-fix one from the seeds' bug report:
stage into a directory made with a plain mkdir (fails if a stale one is
left), then truncate the running target and copy the new bytes into it."""
import os
import shutil

target = os.environ["SWAPFAULT_TARGET"]
new = os.environ["SWAPFAULT_NEW"]
stage = os.path.join(os.path.dirname(target), "meta-update")

os.mkdir(stage)  # "file exists" on retry after an interrupted run
staged = os.path.join(stage, "core")
shutil.copyfile(new, staged)
with open(staged, "rb") as src, open(target, "wb") as dst:  # O_TRUNC in place
    shutil.copyfileobj(src, dst)
shutil.rmtree(stage)
