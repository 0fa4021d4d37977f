# Shared helpers for bench/*.sh (sourced, not run).
#
# - builds the release binaries (pkgrelay, pkgrelay-bench) unless BENCH_NO_BUILD=1
# - installs missing Debian packages (apt-get install -y)
# - measure: wall time (bash's EPOCHREALTIME) and peak RSS (/usr/bin/time -v)
# - a throwaway GnuPG home, a private apt client, a loopback file server,
#   every process started here stopped by its PID
# shellcheck shell=bash

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
CACHE=${PKGRELAY_CACHE:-$HOME/.cache/pkgrelay}/bench
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
PKGRELAY=$TARGET_DIR/release/pkgrelay
DRIVER=$TARGET_DIR/release/pkgrelay-bench
mkdir -p "$CACHE"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pkgrelay-bench.XXXXXX")
BENCH_PIDS=()
GNUPG_HOMES=()

bench_cleanup() {
    local pid home
    for pid in "${BENCH_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for home in "${GNUPG_HOMES[@]}"; do
        gpgconf --homedir "$home" --kill all 2>/dev/null || true
    done
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap bench_cleanup EXIT

log() { printf '%s\n' "$*" >&2; }

# need_pkg COMMAND PACKAGE...: install the Debian packages if COMMAND is missing.
APT_UPDATED=0
need_pkg() {
    local cmd=$1
    shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    log "installing $* (for $cmd)"
    if [[ $APT_UPDATED == 0 ]]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

build_release() {
    if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
        log "cargo build --release -p pkgrelay -p pkgrelay-bench"
        (cd "$REPO_ROOT" && cargo build --release -q -p pkgrelay -p pkgrelay-bench)
    fi
    [[ -x $PKGRELAY && -x $DRIVER ]] || { log "missing $PKGRELAY or $DRIVER"; exit 1; }
}

# describe the conditions: load, CPU, versions.
conditions() {
    echo "host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "pkgrelay: $(cd "$REPO_ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$REPO_ROOT" && git diff --quiet HEAD -- shared/src src 2>/dev/null || echo ' (+ uncommitted changes in shared/ or src/)')"
}

# measure LABEL CMD...: run CMD (stdout+stderr to $WORK/LABEL.log); sets
# M_WALL (seconds) and M_RSS (peak resident set, KiB: the largest single
# process of the command's tree, as wait4 reports it).
M_WALL=0
M_RSS=0
measure() {
    local label=$1
    shift
    local tf="$WORK/$label.time" out="$WORK/$label.log"
    local t0 t1
    t0=$EPOCHREALTIME
    if ! /usr/bin/time -v -o "$tf" "$@" >"$out" 2>&1; then
        log "FAILED: $label: $*"
        tail -n 30 "$out" >&2
        return 1
    fi
    t1=$EPOCHREALTIME
    M_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
    M_RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tf")
}

# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -n 1; }

# A throwaway GnuPG home with one Ed25519 signing key; sets GPG_HOME, GPG_KEY
# (fingerprint) and GPG_KEYRING (binary public keyring for signed-by).
make_gnupg() {
    GPG_HOME=$WORK/gnupg
    mkdir -m 700 -p "$GPG_HOME"
    GNUPG_HOMES+=("$GPG_HOME")
    gpg --homedir "$GPG_HOME" --batch --quiet --passphrase '' \
        --quick-gen-key 'pkgrelay bench peer <bench@example.com>' ed25519 sign never 2>/dev/null
    GPG_KEY=$(gpg --homedir "$GPG_HOME" --list-keys --with-colons 2>/dev/null | awk -F: '/^fpr/ { print $10; exit }')
    GPG_KEYRING=$WORK/peer-keyring.gpg
    gpg --homedir "$GPG_HOME" --export "$GPG_KEY" >"$GPG_KEYRING" 2>/dev/null
}

# apt_check LABEL URI KEYRING PACKAGE EXPECTED: a real apt client with its own
# configuration, state and cache (never the host's) runs `apt-get update
# --error-on=any` against `deb [signed-by=KEYRING] URI stable main`, counts
# the versions of PACKAGE that `apt-cache madison` lists, and downloads the
# newest one (apt checks its hash against Packages). Prints one line; returns
# non-zero on any failure.
apt_check() {
    local label=$1 uri=$2 keyring=$3 pkg=$4 expected=$5
    local r=$WORK/apt-$label
    rm -rf "$r"
    mkdir -p "$r"/etc/apt/{apt.conf.d,preferences.d,sources.list.d,trusted.gpg.d} \
        "$r"/state/lists/partial "$r"/cache/archives/partial "$r"/log "$r"/download
    echo "deb [signed-by=$keyring] $uri stable main" >"$r/etc/apt/sources.list"
    : >"$r/status"
    cat >"$r/apt.conf" <<EOF
Dir::Etc "$r/etc/apt";
Dir::Etc::Parts "$r/etc/apt/apt.conf.d";
Dir::Etc::SourceList "$r/etc/apt/sources.list";
Dir::Etc::SourceParts "$r/etc/apt/sources.list.d";
Dir::Etc::Trusted "$r/etc/apt/trusted.gpg";
Dir::Etc::TrustedParts "$r/etc/apt/trusted.gpg.d";
Dir::Etc::Preferences "$r/etc/apt/preferences";
Dir::Etc::PreferencesParts "$r/etc/apt/preferences.d";
Dir::State "$r/state";
Dir::State::status "$r/status";
Dir::Cache "$r/cache";
Dir::Log "$r/log";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
Debug::NoLocking "true";
APT::Sandbox::User "root";
Acquire::Retries "0";
EOF
    local apt_env=(env APT_CONFIG="$r/apt.conf" LC_ALL=C DEBIAN_FRONTEND=noninteractive)
    if ! "${apt_env[@]}" apt-get update --error-on=any -q >"$r/update.log" 2>&1 </dev/null; then
        echo "apt check $label: FAIL (apt-get update --error-on=any)"
        tail -n 5 "$r/update.log" | sed 's/^/    /'
        return 1
    fi
    if grep -q '^[WE]:' "$r/update.log"; then
        echo "apt check $label: FAIL (apt-get update printed warnings or errors)"
        grep '^[WE]:' "$r/update.log" | head -n 5 | sed 's/^/    /'
        return 1
    fi
    local count
    count=$("${apt_env[@]}" apt-cache madison "$pkg" 2>/dev/null | grep -c " | " || true)
    if [[ $count != "$expected" ]]; then
        echo "apt check $label: FAIL (apt-cache madison $pkg lists $count versions, expected $expected)"
        return 1
    fi
    if ! (cd "$r/download" && "${apt_env[@]}" apt-get download -q "$pkg" >"$r/download.log" 2>&1 </dev/null); then
        echo "apt check $label: FAIL (apt-get download $pkg)"
        tail -n 3 "$r/download.log" | sed 's/^/    /'
        return 1
    fi
    echo "apt check $label: ok (update clean, madison $pkg: $count versions, newest downloaded and hash-checked)"
}

# start_server ROOT: the driver's static file server on 127.0.0.1; sets
# SERVER_URL and remembers the PID (stopped on exit, or by stop_server).
start_server() {
    local root=$1 portfile=$WORK/server.port
    rm -f "$portfile"
    "$DRIVER" serve "$root" "$portfile" 1800 2>"$WORK/server.log" &
    SERVER_PID=$!
    BENCH_PIDS+=("$SERVER_PID")
    local i
    for i in $(seq 1 100); do
        [[ -s $portfile ]] && break
        sleep 0.05
    done
    [[ -s $portfile ]] || { log "the file server did not start"; exit 1; }
    SERVER_URL="http://127.0.0.1:$(cat "$portfile")"
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

# pass_fail CONDITION(0/1 from awk) TEXT
verdict() {
    if [[ $1 == 1 ]]; then echo "PASS  $2"; else echo "FAIL  $2"; fi
}
