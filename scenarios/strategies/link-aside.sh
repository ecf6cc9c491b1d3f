#!/bin/sh
# Keep a backup by hard link, then rename the staged file over the target:
# the target path never disappears.
set -e
cp "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET.staged"
chmod 755 "$SWAPFAULT_TARGET.staged"
ln -f "$SWAPFAULT_TARGET" "$SWAPFAULT_TARGET.previous"
mv -f "$SWAPFAULT_TARGET.staged" "$SWAPFAULT_TARGET"
rm -f "$SWAPFAULT_TARGET.previous"
