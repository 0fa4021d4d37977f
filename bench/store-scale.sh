#!/usr/bin/env bash
# Store scale: N = 100,000 entries in SQLite (1,000 names × 100 versions; 45 %
# amd64, 45 % arm64, 10 % all), then in a fresh process each
# (pkgrelay-bench scale-run, the code build-index runs: SqliteStore::for_each_entry
# into the APT index builder, then finish):
#   noxz      the real build with `compression: [gz]`: stanzas, sort, Packages and
#             Packages.gz per architecture, digests, Release, Release.gpg, InRelease
#   full      the real build with the shipped `compression: [gz, xz]`
#   read      the store alone: SELECT vs JSON decoding
#   compress  gzip levels / xz presets / the shipped encoders on one architecture's Packages
#   sync      `pkgrelay sync --force-rebuild` on a state holding that store (end to end):
#             first (everything compressed) and again (unchanged: .gz/.xz reused)
# and, when this host has apt's list of Debian's own Packages, the compression
# levels on a 16 MB slice of that real text.
# with wall time and peak RSS (/usr/bin/time -v). The store is made once and
# cached in ${PKGRELAY_CACHE:-~/.cache/pkgrelay}/bench/store-N.db.
#
#   bench/store-scale.sh [N]      (default 100000)
# Target: N=100,000 read + render under 1 s excluding xz, peak RSS under 256 MiB.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${1:-100000}
need_pkg /usr/bin/time time
build_release

echo "== bench/store-scale.sh N=$N $(date -u +%Y-%m-%dT%H:%M:%SZ)"
conditions

DB=$CACHE/store-$N.db
if [[ ! -f $DB ]]; then
    log "preparing $DB ($N inserts through SqliteStore::insert)"
    measure prepare "$DRIVER" scale-prepare "$N" "$DB"
    log "  prepared in $M_WALL s"
fi
echo "store: $DB ($(du -h --apparent-size "$DB" | cut -f1))"
CFG=$WORK/config
"$DRIVER" gen-config "$CFG" "amd64, arm64" staging 0

field() { awk -F= -v k="$1" '$1 == k { print $2 }' "$2"; }

declare -A TOTAL RSS
for mode in noxz full read compress; do
    measure "scale-$mode" "$DRIVER" scale-run "$DB" "$CFG" "$mode"
    RSS[$mode]=$M_RSS
    TOTAL[$mode]=$(field total_ms "$WORK/scale-$mode.log")
    echo
    echo "-- $mode: in-process $(field total_ms "$WORK/scale-$mode.log") ms (process wall $M_WALL s incl. start-up and key generation), peak RSS $((M_RSS / 1024)) MiB"
    grep -v -e '^total_ms=' -e '^hwm' -e '^file ' "$WORK/scale-$mode.log" | sed 's/^/   /'
done

# Real Packages text (the largest of this host's apt lists: Debian's main), if there is one.
LISTS=$(ls -S /var/lib/apt/lists/*_main_binary-amd64_Packages* 2>/dev/null | head -n 1 || true)
if [[ -n $LISTS ]]; then
    case $LISTS in
        *.lz4) need_pkg lz4 lz4; lz4 -dc "$LISTS" >"$WORK/real-Packages" ;;
        *.gz) gzip -dc "$LISTS" >"$WORK/real-Packages" ;;
        *.xz) xz -dc "$LISTS" >"$WORK/real-Packages" ;;
        *) cp "$LISTS" "$WORK/real-Packages" ;;
    esac
    echo
    echo "-- compression of real Packages text: $(basename "$LISTS"), first 16 MB"
    "$DRIVER" compress-file "$WORK/real-Packages" 16000000 | sed 's/^/   /'
fi

# End to end: the CLI on a state directory holding the same store.
ST=$WORK/state
mkdir -p "$ST/state"
cp "$DB" "$ST/state/state.db"
"$DRIVER" gen-key "$ST/state/signing-key.asc"
measure sync-1 env PKGRELAY_LOG=warn "$PKGRELAY" sync --strict --force-rebuild --config "$CFG" --state "$ST/state" --out "$ST/public"
first_wall=$M_WALL
first_rss=$M_RSS
measure sync-2 env PKGRELAY_LOG=warn "$PKGRELAY" sync --strict --force-rebuild --config "$CFG" --state "$ST/state" --out "$ST/public"
echo
echo "-- pkgrelay sync --force-rebuild (xz included, files written): first $first_wall s ($((first_rss / 1024)) MiB), again $M_WALL s ($((M_RSS / 1024)) MiB)"
for arch in amd64 arm64; do
    echo "   Packages $arch: $(grep -c '^Package:' "$ST/public/dists/stable/main/binary-$arch/Packages") stanzas, $(du -h --apparent-size "$ST/public/dists/stable/main/binary-$arch/Packages" | cut -f1) (.gz $(du -h --apparent-size "$ST/public/dists/stable/main/binary-$arch/Packages.gz" | cut -f1), .xz $(du -h --apparent-size "$ST/public/dists/stable/main/binary-$arch/Packages.xz" | cut -f1))"
done

echo
echo "-- targets"
verdict "$(awk -v t="${TOTAL[noxz]}" 'BEGIN { print (t < 1000) ? 1 : 0 }')" \
    "N=$N read all + render excluding xz under 1 s: ${TOTAL[noxz]} ms (with xz, the real render: ${TOTAL[full]} ms)"
verdict "$(awk -v k="${RSS[noxz]}" 'BEGIN { print (k < 256 * 1024) ? 1 : 0 }')" \
    "N=$N peak RSS under 256 MiB: $((RSS[noxz] / 1024)) MiB excluding xz ($((RSS[full] / 1024)) MiB with the real render, $((first_rss / 1024)) MiB for pkgrelay sync --force-rebuild)"
