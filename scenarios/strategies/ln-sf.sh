#!/bin/sh
# The soname way without fsyncs: copy NEW in as the next versioned file,
# then `ln -sf` it over the target. coreutils (9.x) makes the new link under
# a random name and renames it over the old one, so no moment lacks a
# target; but the copy is not fsync'd before the link names it, and a kill
# between the two leaves the random name behind.
set -e
dir=$(dirname "$SWAPFAULT_TARGET")
version=$(basename "$SWAPFAULT_NEW")
cp "$SWAPFAULT_NEW" "$dir/$version"
ln -sf "$version" "$SWAPFAULT_TARGET"
