#!/bin/sh
# The shape of the seeds' Go AtomicReplace: stage NEW beside the target,
# rename the target aside to TARGET.previous, then rename the staged file
# in. Between the two renames there is no target at all.
set -e
cp "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET.staged"
chmod 755 "$SWAPFAULT_TARGET.staged"
mv -f "$SWAPFAULT_TARGET" "$SWAPFAULT_TARGET.previous"
mv -f "$SWAPFAULT_TARGET.staged" "$SWAPFAULT_TARGET"
rm -f "$SWAPFAULT_TARGET.previous"
