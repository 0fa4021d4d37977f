#!/usr/bin/env bash
# pkgrelay against the tools users would pick instead, on the same input.
#
#   bench/compare.sh            quick: N=100
#   bench/compare.sh --full     N=100, 2000, 20000 (targets are judged at N=2000)
#   bench/compare.sh --n 2000 [--reps 3]
#
# Input: N small .debs (20 package names × N/20 versions, amd64), made once by
# `pkgrelay-bench gen-debs` and cached in ${PKGRELAY_CACHE:-~/.cache/pkgrelay}/bench/debs-N.
# For each N, each tool builds a signed repository of all of them:
#   pkgrelay (b) ingest   the .debs dropped into <state>/staging/, one staging_upload
#                         config per name, `pkgrelay sync` (fresh state each run)
#   pkgrelay (a) rebuild  `pkgrelay sync --force-rebuild` on that prepared state
#   apt-ftparchive        packages + gzip -9 + xz -6 + release + gpg (InRelease, Release.gpg)
#   aptly                 repo create + repo add + publish repo (-architectures=amd64 -skip-contents)
#   reprepro              includedeb (all files, --export=never) + export (SignWith)
# Wall time (median of the runs) and peak RSS (/usr/bin/time -v) of each, the
# ratios, and a real apt client against each output (update --error-on=any,
# madison count, download of the newest version). Setup that a user does
# once (pool layout for apt-ftparchive, copying the .debs to staging) is not timed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NS=(100)
REPS=""
MODE=quick
while [[ $# -gt 0 ]]; do
    case $1 in
        --full) NS=(100 2000 20000); MODE=full ;;
        --n) IFS=', ' read -r -a NS <<<"$2"; MODE=custom; shift ;;
        --reps) REPS=$2; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) log "unknown option $1"; exit 2 ;;
    esac
    shift
done

need_pkg /usr/bin/time time
need_pkg apt-ftparchive apt-utils
need_pkg aptly aptly
need_pkg reprepro reprepro
need_pkg gpg gnupg
need_pkg xz xz-utils
need_pkg dpkg-deb dpkg
build_release

echo "== bench/compare.sh ($MODE: N = ${NS[*]}) $(date -u +%Y-%m-%dT%H:%M:%SZ)"
conditions
echo "peers: $(apt-ftparchive --version 2>/dev/null | head -n 1 | sed 's/ (.*//' | sed 's/^apt /apt-ftparchive (apt) /'); aptly $(aptly version | awk '{print $3}'); reprepro $(reprepro --version 2>&1 | awk '{print $NF}')"

make_gnupg
# Warm the throwaway agent once, so that no tool pays for its start.
echo warm | gpg --homedir "$GPG_HOME" --batch -u "$GPG_KEY" --clearsign >/dev/null
export GNUPGHOME=$GPG_HOME
"$DRIVER" gen-key "$WORK/pkgrelay-key.asc"

ensure_debs() {
    local n=$1 dir=$CACHE/debs-$1
    if [[ ! -f $dir/.complete ]]; then
        log "generating $n .debs in $dir"
        rm -rf "$dir" "$dir.partial"
        "$DRIVER" gen-debs "$n" "$dir.partial"
        touch "$dir.partial/.complete"
        mv "$dir.partial" "$dir"
    fi
    echo "$dir"
}

# Hard links where the filesystem allows, copies otherwise.
link_all() { cp -l "$1"/*.deb "$2"/ 2>/dev/null || cp "$1"/*.deb "$2"/; }

AFT_SCRIPT='set -e
cd "$1"
d=dists/stable/main/binary-amd64
mkdir -p "$d"
apt-ftparchive packages pool >"$d/Packages"
gzip -9 -n -c "$d/Packages" >"$d/Packages.gz"
xz -6 -c "$d/Packages" >"$d/Packages.xz"
R=APT::FTPArchive::Release
apt-ftparchive -o $R::Origin=Bench -o $R::Label=Bench -o $R::Suite=stable -o $R::Codename=stable \
    -o $R::Architectures=amd64 -o $R::Components=main -o "$R::Description=apt-ftparchive benchmark" \
    release dists/stable >"$2"
mv "$2" dists/stable/Release
gpg --batch --yes -u "$3" --digest-algo SHA512 --clearsign -o dists/stable/InRelease dists/stable/Release
gpg --batch --yes -u "$3" --digest-algo SHA512 --armor --detach-sign -o dists/stable/Release.gpg dists/stable/Release'

APTLY_SCRIPT='set -e
aptly -config="$1" repo create -distribution=stable -component=main bench >/dev/null
aptly -config="$1" repo add bench "$2" >/dev/null
aptly -config="$1" publish repo -architectures=amd64 -gpg-key="$3" -skip-contents bench >/dev/null'

REPREPRO_SCRIPT='set -e
cd "$2"
reprepro -b "$1" --silent --export=never includedeb stable *.deb
reprepro -b "$1" --silent export stable'

declare -A WALL RSS CHECK
SUMMARY=()

# run_reps TOOL N REPS SETUP_FN CMD...: SETUP_FN REP is called before each run (untimed).
run_reps() {
    local tool=$1 n=$2 reps=$3 setup=$4
    shift 4
    local walls=() rss=() rep
    for rep in $(seq 1 "$reps"); do
        "$setup" "$rep"
        measure "$tool-$n-$rep" "$@"
        walls+=("$M_WALL")
        rss+=("$M_RSS")
    done
    WALL[$tool,$n]=$(median "${walls[@]}")
    RSS[$tool,$n]=$(maxof "${rss[@]}")
    log "  $tool N=$n: $(printf '%ss ' "${walls[@]}")(median ${WALL[$tool,$n]} s, peak RSS $((${RSS[$tool,$n]} / 1024)) MiB)"
}

for N in "${NS[@]}"; do
    DEBS=$(ensure_debs "$N")
    PER_NAME=$((N / 20))
    R=${REPS:-$([[ $N -ge 20000 ]] && echo 1 || echo 3)}
    log "N=$N ($R runs each)"

    # pkgrelay (b): ingest from .debs, fresh state each run.
    CFG=$WORK/pkgrelay-config
    rm -rf "$CFG"
    "$DRIVER" gen-config "$CFG" amd64 staging 20
    PR=$WORK/pkgrelay-$N
    setup_pkgrelay() {
        rm -rf "$PR"
        mkdir -p "$PR/state/staging"
        install -m 600 "$WORK/pkgrelay-key.asc" "$PR/state/signing-key.asc"
        link_all "$DEBS" "$PR/state/staging"
    }
    run_reps pkgrelay-ingest "$N" "$R" setup_pkgrelay \
        env PKGRELAY_LOG=warn "$PKGRELAY" sync --strict --config "$CFG" --state "$PR/state" --out "$PR/public"
    grep -q "^new: $N\$" "$WORK/pkgrelay-ingest-$N-$R.log" || { log "pkgrelay did not ingest $N packages"; tail "$WORK/pkgrelay-ingest-$N-$R.log" >&2; exit 1; }
    # pkgrelay (a): rebuild from the store the last ingest left.
    no_setup() { :; }
    run_reps pkgrelay-rebuild "$N" "$R" no_setup \
        env PKGRELAY_LOG=warn "$PKGRELAY" sync --strict --force-rebuild --config "$CFG" --state "$PR/state" --out "$PR/public"
    CHECK[pkgrelay,$N]=$(apt_check "pkgrelay-$N" "file:$PR/public" "$PR/public/bench-archive-keyring.gpg" benchpkg0000 "$PER_NAME" || true)

    # apt-ftparchive: the pool is laid out once (untimed), then the full run.
    AFT=$WORK/aft-$N
    rm -rf "$AFT"
    mkdir -p "$AFT/pool/main"
    link_all "$DEBS" "$AFT/pool/main"
    setup_aft() { rm -rf "$AFT/dists"; }
    run_reps apt-ftparchive "$N" "$R" setup_aft \
        bash -c "$AFT_SCRIPT" aft "$AFT" "$WORK/aft-release.tmp" "$GPG_KEY"
    CHECK[apt-ftparchive,$N]=$(apt_check "aft-$N" "file:$AFT" "$GPG_KEYRING" benchpkg0000 "$PER_NAME" || true)

    # aptly: a private rootDir and config file.
    APTLY=$WORK/aptly-$N
    setup_aptly() {
        rm -rf "$APTLY"
        mkdir -p "$APTLY"
        printf '{"rootDir": "%s", "architectures": ["amd64"], "gpgProvider": "gpg", "skipContentsPublishing": true}\n' \
            "$APTLY/root" >"$APTLY/aptly.conf"
    }
    run_reps aptly "$N" "$R" setup_aptly \
        bash -c "$APTLY_SCRIPT" aptly "$APTLY/aptly.conf" "$DEBS" "$GPG_KEY"
    CHECK[aptly,$N]=$(apt_check "aptly-$N" "file:$APTLY/root/public" "$GPG_KEYRING" benchpkg0000 "$PER_NAME" || true)

    # reprepro: conf/distributions in a fresh base directory.
    RR=$WORK/reprepro-$N
    setup_reprepro() {
        rm -rf "$RR"
        mkdir -p "$RR/conf"
        cat >"$RR/conf/distributions" <<EOF
Origin: Bench
Label: Bench
Codename: stable
Suite: stable
Architectures: amd64
Components: main
Description: reprepro benchmark repository
SignWith: $GPG_KEY
DebIndices: Packages Release . .gz .xz
EOF
    }
    run_reps reprepro "$N" "$R" setup_reprepro \
        bash -c "$REPREPRO_SCRIPT" reprepro "$RR" "$DEBS"
    # reprepro 5.3 (Debian 12) keeps one version per package and architecture
    # (its Limit option came in 5.4): its repository holds the newest of each.
    CHECK[reprepro,$N]="$(apt_check "reprepro-$N" "file:$RR" "$GPG_KEYRING" benchpkg0000 1 || true) [holds 1 of $PER_NAME versions per package: no multi-version support in reprepro $(reprepro --version 2>&1 | awk '{print $NF}')]"

    echo
    echo "-- N=$N (.debs: $(du -sh --apparent-size "$DEBS" | cut -f1); wall = median of $R run(s))"
    printf '%-18s %9s %9s %22s %22s\n' tool "wall s" "RSS MiB" "ingest/peer (speed-up)" "rebuild/peer (speed-up)"
    for tool in pkgrelay-ingest pkgrelay-rebuild apt-ftparchive aptly reprepro; do
        w=${WALL[$tool,$N]}
        rss=$(awk -v k="${RSS[$tool,$N]}" 'BEGIN { printf "%.1f", k / 1024 }')
        if [[ $tool == pkgrelay-* ]]; then
            printf '%-18s %9.3f %9s\n' "$tool" "$w" "$rss"
        else
            ri=$(awk -v a="${WALL[pkgrelay-ingest,$N]}" -v b="$w" 'BEGIN { printf "%.3f (%.1fx)", a / b, b / a }')
            rr=$(awk -v a="${WALL[pkgrelay-rebuild,$N]}" -v b="$w" 'BEGIN { printf "%.3f (%.1fx)", a / b, b / a }')
            printf '%-18s %9.3f %9s %22s %22s\n' "$tool" "$w" "$rss" "$ri" "$rr"
        fi
    done
    for tool in pkgrelay apt-ftparchive aptly reprepro; do
        echo "  ${CHECK[$tool,$N]}"
    done
done

echo
echo "-- targets"
judge() {
    local n=$1 note=$2
    local ok_checks=1
    [[ ${CHECK[pkgrelay,$n]} == *": ok"* && ${CHECK[apt-ftparchive,$n]} == *": ok"* ]] || ok_checks=0
    local rebuild ingest
    rebuild=$(awk -v a="${WALL[apt-ftparchive,$n]}" -v b="${WALL[pkgrelay-rebuild,$n]}" 'BEGIN { printf "%.1f", a / b }')
    ingest=$(awk -v a="${WALL[apt-ftparchive,$n]}" -v b="${WALL[pkgrelay-ingest,$n]}" 'BEGIN { printf "%.2f", a / b }')
    verdict "$(awk -v x="$rebuild" -v c="$ok_checks" 'BEGIN { print (x >= 20 && c) ? 1 : 0 }')" \
        "rebuild from store at N=$n: ${rebuild}x faster than apt-ftparchive's full run (${WALL[pkgrelay-rebuild,$n]} s vs ${WALL[apt-ftparchive,$n]} s; target >= 20x)$note"
    verdict "$(awk -v x="$ingest" -v c="$ok_checks" 'BEGIN { print (x >= 2 && c) ? 1 : 0 }')" \
        "ingest from .debs at N=$n: ${ingest}x faster than apt-ftparchive (${WALL[pkgrelay-ingest,$n]} s vs ${WALL[apt-ftparchive,$n]} s; target >= 2x)$note"
    [[ $ok_checks == 1 ]] || echo "      (an apt check failed: a wrong answer does not count)"
}
if [[ -n ${WALL[pkgrelay-rebuild,2000]:-} ]]; then
    judge 2000 ""
else
    echo "(targets are defined at N=2000: run with --full or --n 2000; indicative figures at N=${NS[0]}:)"
    judge "${NS[0]}" " [indicative: N=${NS[0]}]"
fi
