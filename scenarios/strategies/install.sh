#!/bin/sh
# install(1): unlink, create with O_EXCL, write, chmod.
exec install "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET"
