#!/bin/sh
# Unlink first, then copy into a new inode: running programs keep the old
# one, but the path is missing and then partial while the copy runs.
exec cp --remove-destination "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET"
