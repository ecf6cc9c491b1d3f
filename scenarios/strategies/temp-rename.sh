#!/bin/sh
# Temp file beside the target, renamed over it; no fsync anywhere. Atomic
# for observers and kills, not for power cuts.
set -e
dir=$(dirname "$SWAPFAULT_TARGET")
tmp=$(mktemp "$dir/.swap.XXXXXX")
cp "$SWAPFAULT_NEW" "$tmp"
chmod 755 "$tmp"
mv -f "$tmp" "$SWAPFAULT_TARGET"
