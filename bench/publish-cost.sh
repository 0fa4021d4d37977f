#!/usr/bin/env bash
# Publish cost: object writes when 1 package is added to a published repository
# of N (default 10,000), counted by a wrapper around both object stores (the
# public repository and the private state), as `Counting` does in
# shared/src/steps/tests.rs. The run is the real pipeline (check-sources over
# staging, download-package, record-metadata, build-index, publish).
#
#   bench/publish-cost.sh [N]
# Target: at most 12 object writes.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${1:-10000}
build_release
echo "== bench/publish-cost.sh N=$N $(date -u +%Y-%m-%dT%H:%M:%SZ)"
conditions
measure publish-cost "$DRIVER" publish-cost "$N"
sed 's/^/   /' "$WORK/publish-cost.log"
writes=$(awk -F= '$1 == "writes" { print $2 }' "$WORK/publish-cost.log")
echo
echo "-- targets"
verdict "$(awk -v w="$writes" 'BEGIN { print (w <= 12) ? 1 : 0 }')" \
    "adding 1 package to $N: $writes object writes (target <= 12)"
