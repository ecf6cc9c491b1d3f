#!/bin/sh
# Each file of the set replaced the way `install` replaces one (unlink,
# then a new file), one after the other. Running programs are safe, but
# between the two a user starts the new library with the old executable,
# which refuses it.
for name in libcanary.so canary; do
    install "$SWAPFAULT_NEW_DIR/$name" "$SWAPFAULT_TARGET_DIR/$name" || exit 1
done
