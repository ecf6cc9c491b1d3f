#!/bin/sh
# mv within one file system is a single rename(2). NEW is staged inside the
# mount by the scenario (new_inside = true).
exec mv -f "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET"
