#!/usr/bin/env bash
# Every benchmark, in the order bench/README.md reports them, on a quiet machine:
# waits (polling every minute, up to BENCH_QUIET_WAIT minutes, default 30) for
# the 1-minute load average to drop below BENCH_QUIET_LOAD (default 1.0), then
#   cargo bench -p pkgrelay-core       (criterion; skipped with BENCH_SKIP_CRITERION=1)
#   bench/compare.sh --full
#   bench/ingest.sh
#   bench/store-scale.sh
#   bench/publish-cost.sh
#   bench/brew.sh
#   bench/media.sh                    (needs tests/run's moto venv)
# Output goes to the terminal and to ${PKGRELAY_CACHE:-~/.cache/pkgrelay}/bench/results/<UTC time>/.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT=${PKGRELAY_CACHE:-$HOME/.cache/pkgrelay}/bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"

(cd "$REPO_ROOT" && cargo build --release -q -p pkgrelay -p pkgrelay-bench)
[[ ${BENCH_SKIP_CRITERION:-0} == 1 ]] || (cd "$REPO_ROOT" && cargo bench -p pkgrelay-core --no-run -q)
export BENCH_NO_BUILD=1

limit=${BENCH_QUIET_LOAD:-1.0}
for i in $(seq 0 "${BENCH_QUIET_WAIT:-30}"); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" -v m="$limit" 'BEGIN { exit !(l < m) }'; then
        break
    fi
    echo "load average $load >= $limit: waiting ($i min)" >&2
    sleep 60
done
{
    echo "started $(date -u +%Y-%m-%dT%H:%M:%SZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    top -bn1 | head -n 15
} | tee "$OUT/conditions.txt"

if [[ ${BENCH_SKIP_CRITERION:-0} != 1 ]]; then
    (cd "$REPO_ROOT" && cargo bench -p pkgrelay-core --bench index --bench compress --bench primitives) 2>&1 | tee "$OUT/criterion.txt"
fi
"$BENCH_DIR/compare.sh" --full 2>&1 | tee "$OUT/compare.txt"
"$BENCH_DIR/ingest.sh" 2>&1 | tee "$OUT/ingest.txt"
"$BENCH_DIR/store-scale.sh" 2>&1 | tee "$OUT/store-scale.txt"
"$BENCH_DIR/publish-cost.sh" 2>&1 | tee "$OUT/publish-cost.txt"
"$BENCH_DIR/brew.sh" 2>&1 | tee "$OUT/brew.txt"
"$BENCH_DIR/media.sh" 2>&1 | tee "$OUT/media.txt"
echo "finished $(date -u +%Y-%m-%dT%H:%M:%SZ), load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/conditions.txt"
echo
grep -h -E '^(PASS|FAIL) ' "$OUT"/*.txt | tee "$OUT/targets.txt"
echo "results in $OUT"
