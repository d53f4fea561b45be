#!/usr/bin/env bash
# Instructions per proxied request, Portcullis and nginx, counted by valgrind (callgrind).
#
# Wall-clock figures on a shared machine move by 10-20 % between runs; instruction counts do not
# (the same binary and load give the same count within a fraction of a percent), so this is the
# figure to compare two builds of the request path with. It counts user-space instructions only
# (the kernel's socket work is not in it) and says nothing about waiting, so it complements
# hack/bench-proxy.sh rather than replacing it.
#
# Each proxy runs alone under callgrind in front of the same nginx upstream; counting starts after
# a warm-up request and covers a wrk run of $DURATION (50 keep-alive connections), and the total is
# divided by the requests wrk saw answered.
#
# Needs: valgrind, wrk, nginx, curl (apt-get install valgrind wrk nginx curl). Run from anywhere:
#   hack/bench-instructions.sh          # DURATION=10s by default
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-10s}"
UPSTREAM_PORT="${UPSTREAM_PORT:-18181}"
NGINX_PORT="${NGINX_PORT:-18182}"
PORTCULLIS_PORT="${PORTCULLIS_PORT:-18183}"
ADMIN="127.0.0.1:${ADMIN_PORT:-18190}"

for tool in valgrind callgrind_control wrk nginx curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install valgrind wrk nginx curl)" >&2; exit 1; }
done

echo "== building portcullis (release)"
(cd "$ROOT" && cargo build --quiet --release -p portcullis-proxy --example serve_snapshot)
BIN="$ROOT/target/release/examples/serve_snapshot"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  [ -f "$WORK/upstream.pid" ] && kill "$(cat "$WORK/upstream.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=hack/bench-nginx.sh
. "$ROOT/hack/bench-nginx.sh"
nginx_conf upstream "worker_processes 1;" "$(upstream_http "$UPSTREAM_PORT")"
nginx -c "$WORK/upstream.conf" -p "$WORK"
# The nginx under test runs as a single process (no master), so that one callgrind run sees it all.
nginx_conf nginx "worker_processes 1; master_process off; daemon off;" \
  "$(proxy_http "$NGINX_PORT" "$UPSTREAM_PORT")"
"$BIN" generate 1 "$PORTCULLIS_PORT" "127.0.0.1:$UPSTREAM_PORT" > "$WORK/config.yaml"

# Runs "$@" under callgrind, loads it through $port, prints "requests instructions".
count() { # name port command...
  local name=$1 port=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.%p" "$@" > "$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  local ready=0
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && { ready=1; break; }; sleep 0.2; done
  [ "$ready" = 1 ] || { echo "bench: $name never answered on port $port" >&2; cat "$WORK/$name.log" >&2; exit 1; }
  callgrind_control -z "$pid" >/dev/null 2>&1
  local out requests
  out=$(wrk -t1 -c50 -d"$DURATION" "http://127.0.0.1:$port/")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local dump
  dump=$(ls -t "$WORK/$name".*.1 2>/dev/null | head -1)
  [ -n "$requests" ] && [ -n "$dump" ] || { echo "bench: no count for $name (wrk: $out)" >&2; exit 1; }
  echo "$requests $(awk '/^summary:/ {print $2}' "$dump")"
}

echo "== portcullis under callgrind"
read -r P_REQ P_INS <<<"$(count portcullis "$PORTCULLIS_PORT" "$BIN" serve "$WORK/config.yaml" "$ADMIN")"
[ -n "${P_INS:-}" ] || exit 1
echo "== nginx under callgrind"
read -r N_REQ N_INS <<<"$(count nginx "$NGINX_PORT" nginx -c "$WORK/nginx.conf" -p "$WORK")"
[ -n "${N_INS:-}" ] || exit 1

per() { awk -v i="$1" -v n="$2" 'BEGIN { printf "%.0f", i / n }'; }
P_PER=$(per "$P_INS" "$P_REQ")
N_PER=$(per "$N_INS" "$N_REQ")
cat <<REPORT

Portcullis instructions per proxied request ($(date -u +%Y-%m-%dT%H:%MZ), $(valgrind --version))
load: wrk -t1 -c50 -d$DURATION, GET /, static upstream (nginx); user-space instructions only

                 requests    instructions/request
  portcullis     $P_REQ      $P_PER
  nginx          $N_REQ      $N_PER
  ratio portcullis / nginx: $(awk -v p="$P_PER" -v n="$N_PER" 'BEGIN { printf "%.2f", p / n }')
REPORT
