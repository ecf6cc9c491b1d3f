#!/bin/sh
# rsync --inplace writes the existing target's inode.
exec rsync --inplace "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET"
