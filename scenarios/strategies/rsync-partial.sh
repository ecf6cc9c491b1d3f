#!/bin/sh
# rsync --partial keeps what it has when interrupted: it moves its partial
# temp file over the target instead of deleting it.
exec rsync --partial "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET"
