#!/usr/bin/env bash
# multipart_4gib.py through localaws: moto and localaws started here on
# 127.0.0.1 (stopped by their PIDs), the hand-made media stack
# (fixtures/media-template.mjs) deployed, the upload made as download-media
# (its role's IAM and the media key's KMS checks in the path).
# usage: tests/localaws/bench/through_localaws.sh [SIZE_MIB] [PART_MIB]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${PKGRELAY_CACHE:-$HOME/.cache/pkgrelay}/venv-moto-5.2.5"
work="$(mktemp -d)"
moto_pid= localaws_pid=
cleanup() {
  for pid in $localaws_pid $moto_pid; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$venv/bin/python" "$here/../../moto_server.py" 127.0.0.1 "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null && break; sleep 0.2; done
node -e "import('$here/../fixtures/media-template.mjs').then((m) => process.stdout.write(JSON.stringify(m.mediaTemplate())))" >"$work/pkgrelay-dev-media.template.json"
node "$here/../server.mjs" --moto "http://127.0.0.1:$port" --template-dir "$work" --bin-dir "$work" --port-file "$work/url" --log "$work/localaws.log" &
localaws_pid=$!
for _ in $(seq 1 100); do [ -s "$work/url" ] && break; sleep 0.1; done
url="$(cat "$work/url")"
info="$(curl -sf -X POST -H 'content-type: application/json' -d '{"stack":"media"}' "$url/_localaws/deployments")"
field() { node -e "const i = JSON.parse(process.argv[1]); process.stdout.write(String($1))" "$info"; }
BENCH_ENDPOINT="$url" BENCH_ACCESS_KEY="$(field "i.functions['download-media'].access_key_id")" \
  BENCH_BUCKET="$(field i.outputs.MediaBucketName)" BENCH_PREFIX=media/gopro/bench/ \
  BENCH_MOTO_PID="$moto_pid" BENCH_GATEWAY_PID="$localaws_pid" \
  "$venv/bin/python" "$here/multipart_4gib.py" "$@"
curl -sf "$url/_localaws/deployments/$(field i.id)/denials"; echo
