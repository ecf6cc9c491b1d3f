#!/bin/sh
# An updater that syncs its temp file before the rename but never looks at
# whether the sync worked. After a failed fsync the kernel may have dropped
# the dirty pages (the lesson of PostgreSQL's fsync errors): the rename then
# makes a file whose data never reached the disk the target, and the updater
# reports success.
dir=$(dirname "$SWAPFAULT_TARGET")
name=$(basename "$SWAPFAULT_TARGET")
rm -f "$dir/.$name.swap-"*
tmp=$(mktemp "$dir/.$name.swap-XXXXXX") || exit 1
# The old file's mode, owner and xattrs onto the temp file, then the new bytes.
cp --preserve=mode,ownership,xattr "$SWAPFAULT_TARGET" "$tmp" || exit 1
cat "$SWAPFAULT_NEW" > "$tmp" || exit 1
sync "$tmp"
mv -f "$tmp" "$SWAPFAULT_TARGET" || exit 1
sync "$dir"
