#!/usr/bin/env bash
# The Homebrew mirror's benchmarks (issue 13, "Performance"), side by side in
# one run:
#
#   1. planning  pkgrelay's plan from the full-size formula.json (7,000
#                formulae, ~30 MB: tests/common/brew.rs `full_formula_json`)
#                for the six platform tags, in a fresh process
#                (`pkgrelay-bench brew-plan`), against what a user would
#                write instead: jq, and python3's json, selecting the same
#                bottles by brew's tag rules (the selections are compared by
#                digest). Target: < 1 s and < 150 MiB peak RSS.
#   2. download  a 1 GiB bottle from a registry on 127.0.0.1 through
#                `pkgrelay sync` of a one-formula mirror (formula.json,
#                image index, the bottle with SHA-256 checked in the stream,
#                the blob store, record, publish), against `curl -o
#                /dev/null` of the same blob URL; `pkgrelay-bench fetch`
#                (Fetcher::download alone) beside them. Target: >= 60 % of
#                curl's throughput, peak RSS <= 64 MiB.
#   3. weekly    a mirror of every formula × the six tags (~30,000 small
#                real bottles behind the full formula.json), seeded from an
#                earlier mirror (`pkgrelay brew import-hash`: timed too) and
#                synced once, then the weekly run with nothing new: requests to the
#                upstream (by kind) and files created or changed in the
#                published directory and the state directory are counted.
#                Target: no bottle downloaded, only what changed written.
#
#   bench/brew.sh                        all three
#   BENCH_BREW="plan weekly" bench/brew.sh
#   BENCH_BOTTLE_BYTES=1073741824 BENCH_REPS=3 bench/brew.sh
#
# The upstream is `pkgrelay-bench serve` over static files laid out as the
# formulae API and ghcr (bench/driver/src/brew.rs; no bearer check, no blob
# redirect). Page cache warm.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PARTS=${BENCH_BREW:-plan download weekly}
REPS=${BENCH_REPS:-3}
BOTTLE_BYTES=${BENCH_BOTTLE_BYTES:-1073741824}
TAGS=(arm64_tahoe arm64_sequoia arm64_sonoma sonoma x86_64_linux arm64_linux)
need_pkg /usr/bin/time time
need_pkg curl curl
need_pkg jq jq
build_release

echo "== bench/brew.sh $(date -u +%Y-%m-%dT%H:%M:%SZ)"
conditions

# The full-size formula.json, made once by the tests' generator.
FULL=$CACHE/formula-full-7000.json
if [[ ! -s $FULL ]]; then
    log "generating $FULL (tests/brew_fixtures.rs, ignored test write_full_formula_json_for_the_benchmark)"
    (cd "$REPO_ROOT" && PKGRELAY_BENCH_FORMULA_JSON=$FULL.tmp cargo test -q -p pkgrelay --test brew_fixtures \
        write_full_formula_json_for_the_benchmark -- --ignored >/dev/null 2>&1)
    mv "$FULL.tmp" "$FULL"
fi

# mirror_config DIR API_URL REGISTRY_URL FORMULAE TAG...: config/ with the
# APT repository (no package) and a Homebrew mirror `brew`.
mirror_config() {
    local dir=$1 api=$2 registry=$3 formulae=$4
    shift 4
    local tags
    tags=$(IFS=,; echo "$*")
    rm -rf "$dir"
    "$DRIVER" gen-config "$dir" amd64 staging 0 >/dev/null
    cat >"$dir/repositories.yaml" <<EOF
repositories:
  - {name: apt, format: apt}
  - {name: brew, format: homebrew, prefix: brew/, config: homebrew.yaml}
EOF
    cat >"$dir/homebrew.yaml" <<EOF
api_url: $api
registry_url: $registry
formulae: $formulae
tags: [$tags]
base_url: http://127.0.0.1/brew
limits: {download_deadline: 30m}
EOF
}

# tree_state DIR: one line per file (path, inode, size, mtime) to tell what a
# run created or changed.
tree_state() { find "$1" -type f -printf '%P %i %s %T@\n' 2>/dev/null | sort; }

if [[ " $PARTS " == *" plan "* ]]; then
    echo
    echo "-- 1. planning from formula.json: $(stat -c %s "$FULL") bytes; median of $REPS runs"
    cat "$FULL" >/dev/null
    # brew's tag rule (Utils::Bottles::Collector#find_matching_tag, as
    # pkgrelay_core::brew::naming::matching_tag): the tag, else `all`, else
    # the newest older macOS on the same architecture.
    cat >"$WORK/plan.jq" <<'EOF'
def macos: {"golden_gate": 27, "tahoe": 26, "sequoia": 15, "sonoma": 14, "ventura": 13, "monterey": 12,
  "big_sur": 11, "catalina": 10.15, "mojave": 10.14, "high_sierra": 10.13, "sierra": 10.12, "el_capitan": 10.11};
def split: if . == "all" then ["all", "all"] elif startswith("arm64_") then ["arm64", .[6:]]
  elif startswith("x86_64_") then ["x86_64", .[7:]] else ["x86_64", .] end;
def pick($want; $avail):
  if any($avail[]; . == $want) then $want
  elif any($avail[]; . == "all") then "all"
  else ($want | split) as [$arch, $sys] | (macos[$sys]) as $v
    | if $v == null then null
      else [$avail[] | . as $t | (split) as [$a, $s] | select($a == $arch and macos[$s] != null and macos[$s] <= $v)
            | {v: macos[$s], t: $t}] | (max_by(.v) // {}) | .t end
  end;
$ARGS.positional as $tags | .[] | . as $f | ($f.bottle.stable.files // {}) as $files | ($files | keys) as $avail
  | [$tags[] as $w | pick($w; $avail) | select(. != null)] | unique | .[] as $t
  | "\($f.name)-\($f.versions.stable)\(if ($f.revision // 0) > 0 then "_\($f.revision)" else "" end).\($t).bottle\(if ($f.bottle.stable.rebuild // 0) > 0 then ".\($f.bottle.stable.rebuild)" else "" end).tar.gz \($files[$t].sha256)"
EOF
    cat >"$WORK/plan.py" <<'EOF'
import hashlib, json, sys
MACOS = {"golden_gate": (27, 0), "tahoe": (26, 0), "sequoia": (15, 0), "sonoma": (14, 0), "ventura": (13, 0),
         "monterey": (12, 0), "big_sur": (11, 0), "catalina": (10, 15), "mojave": (10, 14),
         "high_sierra": (10, 13), "sierra": (10, 12), "el_capitan": (10, 11)}
def split(tag):
    if tag == "all": return ("all", "all")
    for arch in ("arm64", "x86_64"):
        if tag.startswith(arch + "_"): return (arch, tag[len(arch) + 1:])
    return ("x86_64", tag)
def pick(want, avail):
    if want in avail: return want
    if "all" in avail: return "all"
    arch, system = split(want)
    v = MACOS.get(system)
    if v is None: return None
    older = [(MACOS[s], t) for t in avail for a, s in [split(t)] if a == arch and s in MACOS and MACOS[s] <= v]
    return max(older)[1] if older else None
path, tags = sys.argv[1], sys.argv[2:]
lines = []
with open(path, "rb") as f:
    for formula in json.load(f):
        files = ((formula.get("bottle") or {}).get("stable") or {}).get("files") or {}
        chosen = {pick(t, files) for t in tags} - {None}
        rev, rebuild = formula.get("revision") or 0, formula["bottle"]["stable"].get("rebuild") or 0 if files else 0
        pv = formula["versions"]["stable"] + (f"_{rev}" if rev > 0 else "")
        for t in chosen:
            name = f"{formula['name']}-{pv}.{t}.bottle{'.' + str(rebuild) if rebuild > 0 else ''}.tar.gz"
            lines.append(f"{name} {files[t]['sha256']}\n")
lines.sort()
print(f"bottles={len(lines)}")
print("selection_sha256=" + hashlib.sha256("".join(lines).encode()).hexdigest())
EOF
    declare -A pw=() pr=()
    for rep in $(seq 1 "$REPS"); do
        measure "plan-pkgrelay-$rep" "$DRIVER" brew-plan "$FULL" "${TAGS[@]}"
        pw[pkgrelay]+="$(awk -F= '/^plan_s=/ { print $2 }' "$WORK/plan-pkgrelay-$rep.log") "
        pr[pkgrelay]+="$M_RSS "
        pw[process]+="$M_WALL "
        pr[process]+="$M_RSS "
        measure "plan-jq-$rep" bash -c "jq -r -f '$WORK/plan.jq' '$FULL' --args ${TAGS[*]} | sort >'$WORK/jq.out'"
        pw[jq]+="$M_WALL "
        pr[jq]+="$M_RSS "
        measure "plan-python-$rep" python3 "$WORK/plan.py" "$FULL" "${TAGS[@]}"
        pw[python]+="$M_WALL "
        pr[python]+="$M_RSS "
    done
    ours=$(awk -F= '/^selection_sha256=/ { print $2 }' "$WORK/plan-pkgrelay-1.log")
    nb=$(awk -F= '/^bottles=/ { print $2 }' "$WORK/plan-pkgrelay-1.log")
    py=$(awk -F= '/^selection_sha256=/ { print $2 }' "$WORK/plan-python-1.log")
    jqs=$(sha256sum "$WORK/jq.out" | awk '{ print $1 }')
    same_py=no; [[ $py == "$ours" ]] && same_py=yes
    same_jq=no; [[ $jqs == "$ours" ]] && same_jq=yes
    echo "pkgrelay plans $nb bottles; the same selection (file name and SHA-256) in python3: $same_py, in jq: $same_jq"
    printf '%-44s %9s %9s %9s\n' what "wall s" "RSS MiB" "vs pkgrelay"
    read -r -a w <<<"${pw[pkgrelay]}"
    ours_w=$(median "${w[@]}")
    for what in pkgrelay process jq python; do
        read -r -a w <<<"${pw[$what]}"
        read -r -a r <<<"${pr[$what]}"
        mw=$(median "${w[@]}")
        mr=$(maxof "${r[@]}")
        case $what in
            pkgrelay) label="pkgrelay plan (brew::api::plan, streaming)" ;;
            process) label="  the same, whole process" ;;
            jq) label="jq -r -f plan.jq | sort" ;;
            python) label="python3 json.load + the same rules" ;;
        esac
        printf '%-44s %9.3f %9.1f %8.1fx\n' "$label" "$mw" "$(awk -v k="$mr" 'BEGIN { print k / 1024 }')" \
            "$(awk -v a="$mw" -v b="$ours_w" 'BEGIN { print a / b }')"
        [[ $what == pkgrelay ]] && { PLAN_W=$mw; PLAN_R=$mr; }
    done
    echo "(the first line is the plan alone, timed in the process; the others are whole commands)"
    verdict "$(awk -v w="$PLAN_W" -v r="$PLAN_R" 'BEGIN { print (w < 1 && r < 150 * 1024) ? 1 : 0 }')" \
        "planning < 1 s and < 150 MiB: $PLAN_W s, $(awk -v k="$PLAN_R" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
fi

if [[ " $PARTS " == *" download "* ]]; then
    echo
    free_kib=$(df -Pk "$CACHE" | awk 'NR == 2 { print $4 }')
    if [[ $free_kib -lt $((BOTTLE_BYTES / 1024 * 25 / 10)) ]]; then
        echo "SKIPPED  download: $((free_kib / 1024)) MiB free"
    else
        UP=$WORK/up-big
        mkdir -p "$UP"
        "$DRIVER" brew-big-upstream "$BOTTLE_BYTES" "$UP" "$CACHE/bottle-$BOTTLE_BYTES.tar.gz" >"$WORK/big.txt"
        BLOB=$(awk -F= '/^blob_path=/ { print $2 }' "$WORK/big.txt")
        SHA=$(awk -F= '/^sha256=/ { print $2 }' "$WORK/big.txt")
        export BENCH_SERVE_LOG=$WORK/big-requests.log
        start_server "$UP"
        unset BENCH_SERVE_LOG
        mirror_config "$WORK/config-big" "$SERVER_URL/api" "$SERVER_URL/v2/homebrew/core" "[bigbottle]" x86_64_linux
        cat "$CACHE/bottle-$BOTTLE_BYTES.tar.gz" >/dev/null
        echo "-- 2. download: one bottle of $BOTTLE_BYTES bytes on 127.0.0.1; median of $REPS runs"
        declare -A dw=() dr=()
        for rep in $(seq 1 "$REPS"); do
            ST=$WORK/big-state
            rm -rf "$ST"
            mkdir -p "$ST/state"
            "$DRIVER" gen-key "$ST/state/signing-key.asc"
            sync
            measure "big-sync-$rep" env PKGRELAY_LOG=warn "$PKGRELAY" sync --strict --repository brew \
                --config "$WORK/config-big" --state "$ST/state" --out "$ST/public"
            grep -q '^new: 1$' "$WORK/big-sync-$rep.log" || { log "the sync did not mirror the bottle"; cat "$WORK/big-sync-$rep.log" >&2; exit 1; }
            [[ $rep == 1 ]] && { [[ $(sha256sum "$ST/public/brew/blobs/sha256/$SHA" | awk '{ print $1 }') == "$SHA" ]] || { log "stored blob differs"; exit 1; }; }
            dw[sync]+="$M_WALL "
            dr[sync]+="$M_RSS "
            rm -rf "$ST"
            mkdir -p "$ST"
            sync
            measure "big-fetch-$rep" "$DRIVER" fetch "$SERVER_URL/$BLOB" "$ST/fetched" sha256
            dw[fetch]+="$(awk -F= '/^fetch_s=/ { print $2 }' "$WORK/big-fetch-$rep.log") "
            dr[fetch]+="$M_RSS "
            rm -rf "$ST"
            measure "big-curl-$rep" curl -sS -o /dev/null "$SERVER_URL/$BLOB"
            dw[curl]+="$M_WALL "
            dr[curl]+="$M_RSS "
        done
        stop_server
        printf '%-48s %9s %9s %9s %9s\n' what "wall s" "MB/s" "RSS MiB" "of curl"
        read -r -a w <<<"${dw[curl]}"
        curl_w=$(median "${w[@]}")
        for what in sync fetch curl; do
            read -r -a w <<<"${dw[$what]}"
            read -r -a r <<<"${dr[$what]}"
            mw=$(median "${w[@]}")
            mr=$(maxof "${r[@]}")
            case $what in
                sync) label="pkgrelay sync --repository brew (end to end)" ;;
                fetch) label="Fetcher::download alone (SHA-256 only)" ;;
                curl) label="curl -o /dev/null" ;;
            esac
            printf '%-48s %9.3f %9.1f %9.1f %8.0f%%\n' "$label" "$mw" \
                "$(awk -v b="$BOTTLE_BYTES" -v s="$mw" 'BEGIN { print b / s / 1e6 }')" \
                "$(awk -v k="$mr" 'BEGIN { print k / 1024 }')" "$(awk -v a="$mw" -v c="$curl_w" 'BEGIN { print 100 * c / a }')"
            [[ $what == sync ]] && { SYNC_W=$mw; SYNC_R=$mr; }
        done
        verdict "$(awk -v a="$SYNC_W" -v c="$curl_w" 'BEGIN { print (c / a >= 0.6) ? 1 : 0 }')" \
            "bottle download >= 60 % of curl: $(awk -v a="$SYNC_W" -v c="$curl_w" 'BEGIN { printf "%.0f", 100 * c / a }') % (pkgrelay sync end to end)"
        verdict "$(awk -v k="$SYNC_R" 'BEGIN { print (k <= 64 * 1024) ? 1 : 0 }')" \
            "peak RSS <= 64 MiB: $(awk -v k="$SYNC_R" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
    fi
fi

if [[ " $PARTS " == *" weekly "* ]]; then
    echo
    UP=$WORK/up-full
    ST=$WORK/full-state
    mkdir -p "$UP" "$ST/state" "$ST/public/brew"
    # The upstream, and an earlier mirror of all its bottles with its hash file.
    "$DRIVER" brew-upstream "$FULL" "$UP" "$ST/public/brew" "$WORK/old-bottles_hash.json" >"$WORK/full.txt"
    cat "$WORK/full.txt"
    export BENCH_SERVE_LOG=$WORK/full-requests.log
    start_server "$UP"
    unset BENCH_SERVE_LOG
    mirror_config "$WORK/config-full" "$SERVER_URL/api" "$SERVER_URL/v2/homebrew/core" all "${TAGS[@]}"
    "$DRIVER" gen-key "$ST/state/signing-key.asc"
    kinds() {
        awk '{ t = $2; k = "other"
               if (t ~ /\/blobs\/sha256:/) k = "bottle"; else if (t ~ /\/manifests\//) k = "image index";
               else if (t ~ /formula\.json$/) k = "formula.json"; else if (t ~ /^\/api\//) k = "other API file"
               n[k]++ } END { for (k in n) printf "%s %d, ", k, n[k] }' "$1" | sed 's/, $//'
    }
    echo "-- 3. weekly run over the full formula set, six tags"
    # Seeded from the earlier mirror (what a first sync would download, at a
    # fraction of its requests), then the first sync publishes it.
    : >"$WORK/full-requests.log"
    measure full-import env PKGRELAY_LOG=warn "$PKGRELAY" brew import-hash "$WORK/old-bottles_hash.json" --strict \
        --repository brew --config "$WORK/config-full" --state "$ST/state" --out "$ST/public"
    echo "brew import-hash: $M_WALL s, $(awk -v k="$M_RSS" 'BEGIN { printf "%.1f", k / 1024 }') MiB; $(tail -n 2 "$WORK/full-import.log" | grep entries)"
    echo "  requests: $(kinds "$WORK/full-requests.log")"
    : >"$WORK/full-requests.log"
    measure full-first env PKGRELAY_LOG=warn "$PKGRELAY" sync --strict --repository brew \
        --config "$WORK/config-full" --state "$ST/state" --out "$ST/public"
    echo "first sync (all imported, none published): $M_WALL s, $(awk -v k="$M_RSS" 'BEGIN { printf "%.1f", k / 1024 }') MiB; $(grep -m1 '^new:' "$WORK/full-first.log"); failed: $(awk '/^failed:/ { print $2; exit }' "$WORK/full-first.log"); $(grep -m1 -E '^(published|repository unchanged)' "$WORK/full-first.log" | cut -c1-60)"
    echo "  requests: $(kinds "$WORK/full-requests.log")"
    tree_state "$ST" >"$WORK/tree-before"
    : >"$WORK/full-requests.log"
    sleep 1.1 # a file rewritten within the same second must still show a new mtime
    measure full-weekly env PKGRELAY_LOG=warn "$PKGRELAY" sync --strict --repository brew \
        --config "$WORK/config-full" --state "$ST/state" --out "$ST/public"
    tree_state "$ST" >"$WORK/tree-after"
    changed=$(comm -13 "$WORK/tree-before" "$WORK/tree-after" | awk '{ print $1 }')
    removed=$(comm -23 <(awk '{ print $1 }' "$WORK/tree-before") <(awk '{ print $1 }' "$WORK/tree-after"))
    nchanged=$(printf '%s' "$changed" | grep -c . || true)
    nremoved=$(printf '%s' "$removed" | grep -c . || true)
    bottles=$(grep -c '/blobs/sha256:' "$WORK/full-requests.log" || true)
    echo "weekly sync (nothing new): $M_WALL s, $(awk -v k="$M_RSS" 'BEGIN { printf "%.1f", k / 1024 }') MiB; $(grep -m1 '^new:' "$WORK/full-weekly.log"); $(grep -m1 -E '^(published|repository unchanged)' "$WORK/full-weekly.log")"
    echo "  requests: $(kinds "$WORK/full-requests.log")"
    echo "  files created or changed: $nchanged; removed: $nremoved"
    printf '%s\n' "$changed" | sed '/^$/d; s/^/    /' | head -n 20
    printf '%s\n' "$removed" | sed '/^$/d; s/^/    removed /' | head -n 10
    stop_server
    verdict "$([[ $bottles == 0 ]] && echo 1 || echo 0)" "weekly run with nothing new downloads no bottle: $bottles bottle requests"
fi
