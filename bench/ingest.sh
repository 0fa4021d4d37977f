#!/usr/bin/env bash
# Ingest throughput: a large .deb streamed from a file server on 127.0.0.1
# through download-package into the directory store.
#
#   bench/ingest.sh                 2 GiB artifact (+ a 256 MiB one: RSS must not grow with size)
#   BENCH_BIG_SIZES="2147483648" bench/ingest.sh
#
# The artifact is a valid .deb (control.tar.gz + an uncompressed data.tar of
# pseudo-random bytes), made once by `pkgrelay-bench gen-big-deb` and cached in
# ${PKGRELAY_CACHE:-~/.cache/pkgrelay}/bench/. The server is `pkgrelay-bench
# serve` (sendfile; started here and stopped by its PID). Page cache warm.
#
# Measured, median of 3 runs each, wall time and peak RSS (/usr/bin/time -v):
#   pkgrelay sync         Kiro-shaped metadata -> check-sources -> download-package
#                         (HTTP stream, size+MD5+SHA1+SHA256, file) -> pool -> record ->
#                         build-index -> publish: the whole run, end to end
#   pkgrelay-bench fetch  pkgrelay's download path alone (Fetcher::download)
#   curl -o /dev/null     the same URL
#   sha256sum             the cached file
# Target: the download path at >= 300 MB/s with all three digests, peak RSS < 64 MiB
# whatever the artifact size (judged on `pkgrelay sync`, the real process).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZES=(${BENCH_BIG_SIZES:-268435456 2147483648})
REPS=${BENCH_REPS:-3}
need_pkg /usr/bin/time time
need_pkg curl curl
build_release

echo "== bench/ingest.sh $(date -u +%Y-%m-%dT%H:%M:%SZ)"
conditions
"$DRIVER" gen-key "$WORK/pkgrelay-key.asc"

declare -A R_WALL R_RSS
for SIZE in "${SIZES[@]}"; do
    BIG=$CACHE/big-$SIZE.deb
    # Room for the artifact (if not cached) and one transient copy of it.
    factor=21
    [[ -f $BIG ]] && factor=11
    need_kib=$((SIZE / 1024 * factor / 10))
    free_kib=$(df -Pk "$CACHE" | awk 'NR == 2 { print $4 }')
    if [[ $free_kib -lt $need_kib ]]; then
        echo "SKIPPED  artifact of $SIZE bytes: $((free_kib / 1024)) MiB free, $((need_kib / 1024)) MiB needed"
        continue
    fi
    if [[ ! -f $BIG ]]; then
        log "generating $BIG"
        "$DRIVER" gen-big-deb "$SIZE" "$BIG"
        dpkg-deb --info "$BIG" >/dev/null
    fi
    BYTES=$(stat -c %s "$BIG")
    WWW=$WORK/www
    rm -rf "$WWW"
    mkdir -p "$WWW"
    ln -s "$BIG" "$WWW/bigpkg_1.0_amd64.deb"
    start_server "$WWW"
    URL=$SERVER_URL/bigpkg_1.0_amd64.deb
    "$DRIVER" kiro-metadata 1.0 "$URL" >"$WWW/metadata.json"
    CFG=$WORK/config
    rm -rf "$CFG"
    "$DRIVER" gen-config "$CFG" amd64 external bigpkg "$SERVER_URL/metadata.json"
    cat "$BIG" >/dev/null # warm the page cache

    ST=$WORK/state-$SIZE
    declare -A walls=() rsss=()
    for rep in $(seq 1 "$REPS"); do
        rm -rf "$ST"
        mkdir -p "$ST/state"
        install -m 600 "$WORK/pkgrelay-key.asc" "$ST/state/signing-key.asc"
        sync
        measure "sync-$SIZE-$rep" env PKGRELAY_LOG=warn "$PKGRELAY" sync --strict --config "$CFG" --state "$ST/state" --out "$ST/public"
        grep -q '^new: 1$' "$WORK/sync-$SIZE-$rep.log" || { log "sync did not ingest the artifact"; cat "$WORK/sync-$SIZE-$rep.log" >&2; exit 1; }
        walls[sync]+="$M_WALL "
        rsss[sync]+="$M_RSS "
        if [[ $rep == 1 ]]; then
            # The published pool file is the artifact, byte for byte, and Packages says so.
            want=$(sha256sum "$BIG" | awk '{ print $1 }')
            got=$(sha256sum "$ST/public/pool/main/b/bigpkg/bigpkg_1.0_amd64.deb" | awk '{ print $1 }')
            [[ $want == "$got" ]] || { log "pool file differs from the artifact"; exit 1; }
            grep -q "^SHA256: $want\$" "$ST/public/dists/stable/main/binary-amd64/Packages" || { log "Packages lacks the SHA256"; exit 1; }
        fi
        rm -rf "$ST" # disk: one transient copy of the artifact at a time

        mkdir -p "$ST"
        sync
        measure "fetch-$SIZE-$rep" "$DRIVER" fetch "$URL" "$ST/fetched"
        walls[fetch]+="$(awk -F= '/^fetch_s=/ { print $2 }' "$WORK/fetch-$SIZE-$rep.log") "
        rsss[fetch]+="$M_RSS "
        rm -rf "$ST"

        measure "curl-$SIZE-$rep" curl -sS -o /dev/null "$URL"
        walls[curl]+="$M_WALL "
        rsss[curl]+="$M_RSS "

        measure "sha256sum-$SIZE-$rep" sha256sum "$BIG"
        walls[sha256sum]+="$M_WALL "
        rsss[sha256sum]+="$M_RSS "
    done
    stop_server

    echo
    echo "-- artifact $BYTES bytes ($(awk -v b="$BYTES" 'BEGIN { printf "%.2f GiB", b / 1073741824 }')); median of $REPS runs"
    printf '%-36s %9s %10s %9s\n' what "wall s" "MB/s" "RSS MiB"
    for what in sync fetch curl sha256sum; do
        read -r -a ws <<<"${walls[$what]}"
        read -r -a rs <<<"${rsss[$what]}"
        w=$(median "${ws[@]}")
        r=$(maxof "${rs[@]}")
        R_WALL[$what,$SIZE]=$w
        R_RSS[$what,$SIZE]=$r
        case $what in
            sync) label="pkgrelay sync (end to end)" ;;
            fetch) label="download path (Fetcher::download)" ;;
            curl) label="curl -o /dev/null" ;;
            sha256sum) label="sha256sum (file, warm cache)" ;;
        esac
        printf '%-36s %9.3f %10.1f %9.1f\n' "$label" "$w" "$(awk -v b="$BYTES" -v s="$w" 'BEGIN { print b / s / 1e6 }')" "$(awk -v k="$r" 'BEGIN { print k / 1024 }')"
    done
done

echo
echo "-- targets"
MEASURED=()
for SIZE in "${SIZES[@]}"; do [[ -n ${R_WALL[sync,$SIZE]:-} ]] && MEASURED+=("$SIZE"); done
[[ ${#MEASURED[@]} -gt 0 ]] || { echo "FAIL  nothing measured (disk space)"; exit 1; }
SIZES=("${MEASURED[@]}")
BIGGEST=${SIZES[-1]}
BYTES=$(stat -c %s "$CACHE/big-$BIGGEST.deb")
mbs=$(awk -v b="$BYTES" -v s="${R_WALL[sync,$BIGGEST]}" 'BEGIN { printf "%.0f", b / s / 1e6 }')
mbs_fetch=$(awk -v b="$BYTES" -v s="${R_WALL[fetch,$BIGGEST]}" 'BEGIN { printf "%.0f", b / s / 1e6 }')
verdict "$(awk -v x="$mbs" 'BEGIN { print (x >= 300) ? 1 : 0 }')" \
    "download path >= 300 MB/s with all three digests: $mbs MB/s end to end (pkgrelay sync, $BYTES bytes); $mbs_fetch MB/s for Fetcher::download alone"
worst=0
for SIZE in "${SIZES[@]}"; do
    worst=$(maxof "$worst" "${R_RSS[sync,$SIZE]}")
done
rss_list=""
for SIZE in "${SIZES[@]}"; do rss_list+="$(awk -v k="${R_RSS[sync,$SIZE]}" -v s="$SIZE" 'BEGIN { printf "%.1f MiB at %.2f GiB; ", k / 1024, s / 1073741824 }')"; done
verdict "$(awk -v k="$worst" 'BEGIN { print (k < 64 * 1024) ? 1 : 0 }')" \
    "peak RSS < 64 MiB whatever the artifact size: ${rss_list% ; }"
