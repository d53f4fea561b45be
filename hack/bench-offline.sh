#!/usr/bin/env bash
# Benchmark of the offline path (issue 17 §1): how long `portcullis check`, `render` and `run -f`
# take on GitOps-sized bundles, and whether the cost per Route stays flat as bundles grow.
#
# - For each count in $COUNTS (1000 5000 20000 by default) one bundle is generated into a
#   temporary folder: a single file holding one Gateway (an HTTP listener), one ServiceBackend
#   with a static endpoint (a small HTTP server started here that answers 200), and N Routes,
#   each a PathPrefix `/r<i>` plus a header match `X-Tenant: t<i>` — one file, N + 2 documents.
# - check, render: wall time of the command on the bundle (the median of $ROUNDS runs).
# - run-to-first-200: from starting `portcullis run -f` to the first 200 for the last Route
#   (curl every 10 ms), the time a user waits before a GitOps bundle serves at all.
# - reload-to-served: the same process, after a one-line edit (the last Route's path changes):
#   from the file's write to the first 200 on the new path. It includes the watcher's poll.
# - per-route: check's time divided by the number of Routes, in microseconds.
# The targets of issue 17 (under 1 s each at 5,000 Routes, per-route cost roughly flat) are
# printed beside the table: figures to read, nothing fails on speed.
#
# Needs: curl, python3 (the upstream). Run from anywhere:
#   hack/bench-offline.sh                 # COUNTS="1000 5000 20000" ROUNDS=3
#   PORTCULLIS=target/release/portcullis hack/bench-offline.sh   # a given build
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COUNTS="${COUNTS:-1000 5000 20000}"
ROUNDS="${ROUNDS:-3}"
LISTENER_PORT="${LISTENER_PORT:-18180}"
UPSTREAM_PORT="${UPSTREAM_PORT:-18181}"
ADMIN="127.0.0.1:${ADMIN_PORT:-18182}"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
if [ -n "${PORTCULLIS:-}" ]; then
  BIN="$PORTCULLIS"
else
  echo "== building portcullis (release)"
  (cd "$ROOT" && cargo build --quiet --release -p portcullis)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/portcullis"
fi

# The bundle of N Routes, written to FILE.
bundle() { # n file
  awk -v n="$1" -v port="$UPSTREAM_PORT" -v listener="$LISTENER_PORT" 'BEGIN {
    print "apiVersion: portcullis.dev/v1alpha1\nkind: Gateway\nmetadata:\n  name: edge\n  namespace: bench"
    print "spec:\n  listeners:\n    - { name: http, port: " listener ", protocol: HTTP }"
    print "---\napiVersion: portcullis.dev/v1alpha1\nkind: ServiceBackend\nmetadata:\n  name: app\n  namespace: bench"
    print "spec:\n  endpoints:\n    - { address: 127.0.0.1, port: " port " }"
    for (i = 0; i < n; i++) {
      print "---\napiVersion: portcullis.dev/v1alpha1\nkind: Route\nmetadata:\n  name: r" i "\n  namespace: bench"
      print "spec:\n  parentRefs:\n    - name: edge\n  rules:\n    - matches:"
      print "        - path: { type: PathPrefix, value: /r" i " }"
      print "          headers:\n            - { name: X-Tenant, value: t" i " }"
      print "      backendRefs:\n        - name: app"
    }
  }' > "$2"
}

now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Wall time of one command, in seconds; its output goes to $WORK/last.out, and a failure stops
# the bench (a bundle that does not check is a broken bench, not a slow one).
timed() {
  local start end
  start=$(now)
  "$@" > "$WORK/last.out" 2> "$WORK/last.err" || { cat "$WORK/last.err" >&2; exit 1; }
  end=$(now)
  seconds "$start" "$end"
}

# Waits for a 200 on PATH with header TENANT; returns 1 after $TIMEOUT seconds.
TIMEOUT="${TIMEOUT:-120}"
await_200() { # path tenant
  local deadline=$(($(date +%s) + TIMEOUT))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Tenant: $2" "http://127.0.0.1:$LISTENER_PORT$1")" = 200 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "bench: no 200 on $1 within $TIMEOUT s" >&2; return 1; }
    sleep 0.01
  done
}
# Seconds from START to a 200 on PATH with header TENANT, or ">TIMEOUT".
served_after() { # start path tenant
  if await_200 "$2" "$3"; then seconds "$1" "$(now)"; else echo ">$TIMEOUT"; fi
}

# The upstream: 200 and "ok" for any path.
python3 - "$UPSTREAM_PORT" > /dev/null 2>&1 <<'PY' &
import http.server, sys
class Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Ok).serve_forever()
PY
PIDS+=($!)

echo "== offline path: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) x $(nproc); $ROUNDS rounds, medians"
printf '%8s %9s %9s %17s %17s %14s\n' routes "check s" "render s" "run-to-first-200" "reload-to-served" "per-route us"
for n in $COUNTS; do
  dir="$WORK/bundle-$n"
  mkdir -p "$dir"
  bundle "$n" "$dir/bundle.yaml"
  last=$((n - 1))
  checks=() renders=() runs=() reloads=()
  for _ in $(seq "$ROUNDS"); do
    checks+=("$(timed "$BIN" check -f "$dir")")
    renders+=("$(timed "$BIN" render -f "$dir")")
    start=$(now)
    "$BIN" run -f "$dir" --admin "$ADMIN" --listen 127.0.0.1 --no-access-log > "$WORK/run.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    runs+=("$(served_after "$start" "/r$last" "t$last")")
    # The one-line edit: the last Route's path.
    start=$(now)
    sed -i "s|value: /r$last }|value: /edited$last }|" "$dir/bundle.yaml"
    reloads+=("$(served_after "$start" "/edited$last" "t$last")")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    sed -i "s|value: /edited$last }|value: /r$last }|" "$dir/bundle.yaml"
  done
  check=$(printf '%s\n' "${checks[@]}" | median)
  printf '%8s %9s %9s %17s %17s %14s\n' "$n" "$check" \
    "$(printf '%s\n' "${renders[@]}" | median)" \
    "$(printf '%s\n' "${runs[@]}" | median)" \
    "$(printf '%s\n' "${reloads[@]}" | median)" \
    "$(awk -v s="$check" -v n="$n" 'BEGIN { printf "%.0f", s / n * 1e6 }')"
done
echo "targets (issue 17): under 1 s for check, render, run and reload at 5000 Routes; per-route cost roughly flat"
