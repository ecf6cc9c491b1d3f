#!/bin/sh
# A deploy tool's directory swap: copy the whole directory of the target,
# put NEW into the copy, then swap the two by two renames. Between the
# renames there is no directory, so no target; and the retry's clean-up
# of the leftovers of an interrupted run removes both versions.
set -e
dir=$(dirname "$SWAPFAULT_TARGET")
name=$(basename "$SWAPFAULT_TARGET")
rm -rf "$dir.new" "$dir.old"
cp -a "$dir" "$dir.new"
cp "$SWAPFAULT_NEW" "$dir.new/$name"
mv -T "$dir" "$dir.old"
mv -T "$dir.new" "$dir"
rm -rf "$dir.old"
