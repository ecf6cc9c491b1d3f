#!/bin/sh
# rsync's default: write a hidden temp file beside the target, rename it over.
exec rsync "$SWAPFAULT_NEW" "$SWAPFAULT_TARGET"
