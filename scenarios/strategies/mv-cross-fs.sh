#!/bin/sh
# mv from another file system: rename fails with EXDEV, so mv removes the
# target and copies NEW in, then deletes the source.
exec mv -f "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET"
