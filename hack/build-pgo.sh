#!/usr/bin/env bash
# A profile-guided (PGO) release build: the data plane compiled with what a training run
# measured of its own hot paths (which branches are taken, which calls are hot), so that the
# compiler lays out and inlines the request path for the way it runs. On the bench's proxied GET
# it cuts the CPU Portcullis spends in user space per request by about a third.
#
# 1. An instrumented build of the bench's data-plane binary (serve_snapshot).
# 2. Training: it proxies to an nginx upstream on 127.0.0.1 while wrk sends GET, HEAD and POST
#    requests for about 15 s.
# 3. The profile is merged, and TARGET is built with it: `portcullis` (the default: the one
#    binary users run) or `serve_snapshot` (what hack/bench-proxy.sh measures; PGO=1 there).
#
# Everything is cached in ~/.cache/portcullis/pgo (target directories and profiles). Prints the
# built binary's path on its last line.
#
# Needs: llvm-profdata of rustc's LLVM version (apt-get install llvm-NN, NN as `rustc -vV`
# says; or rustup component add llvm-tools), nginx, wrk, curl.
#   hack/build-pgo.sh [portcullis|serve_snapshot]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${1:-portcullis}"
case "$TARGET" in
  portcullis) BUILD=(--bin portcullis) ;;
  serve_snapshot) BUILD=(-p portcullis-proxy --example serve_snapshot) ;;
  *) echo "build-pgo: TARGET is portcullis or serve_snapshot, not $TARGET" >&2; exit 2 ;;
esac
UPSTREAM_PORT="${UPSTREAM_PORT:-18281}"
PROXY_PORT="${PROXY_PORT:-18283}"
ADMIN="127.0.0.1:${ADMIN_PORT:-18290}"

for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "build-pgo: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
LLVM_MAJOR="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
HOST="$(rustc -vV | sed -n 's/^host: //p')"
PROFDATA=""
for candidate in "llvm-profdata-$LLVM_MAJOR" "$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata"; do
  if command -v "$candidate" >/dev/null 2>&1; then PROFDATA="$candidate"; break; fi
done
if [ -z "$PROFDATA" ]; then
  echo "build-pgo: llvm-profdata for LLVM $LLVM_MAJOR is missing (apt-get install llvm-$LLVM_MAJOR, or rustup component add llvm-tools)" >&2
  exit 1
fi

CACHE="${HOME}/.cache/portcullis/pgo"
mkdir -p "$CACHE"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$WORK/upstream.pid" ] && kill "$(cat "$WORK/upstream.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== instrumented build" >&2
(cd "$ROOT" && RUSTFLAGS="-Cprofile-generate=$CACHE/raw" cargo build --quiet --release \
  -p portcullis-proxy --example serve_snapshot --target-dir "$CACHE/generate")
TRAINEE="$CACHE/generate/release/examples/serve_snapshot"
# Earlier runs' profiles, and those of the build scripts the instrumented build ran, go: only
# this training run's count.
rm -rf "$CACHE/raw"

echo "== training" >&2
# shellcheck source=hack/bench-nginx.sh
. "$ROOT/hack/bench-nginx.sh"
nginx_conf upstream "worker_processes 1;" "$(upstream_http "$UPSTREAM_PORT")"
nginx -c "$WORK/upstream.conf" -p "$WORK"
"$TRAINEE" generate 1 "$PROXY_PORT" "127.0.0.1:$UPSTREAM_PORT" > "$WORK/config.yaml"
"$TRAINEE" serve "$WORK/config.yaml" "$ADMIN" > "$WORK/trainee.log" 2>&1 &
TRAINEE_PID=$!
PIDS+=("$TRAINEE_PID")
for _ in $(seq 100); do curl -sf "http://$ADMIN/ready" >/dev/null && break; sleep 0.1; done
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"name":"portcullis","items":[1,2,3]}'
wrk.headers["Content-Type"] = "application/json"
LUA
cat > "$WORK/head.lua" <<'LUA'
wrk.method = "HEAD"
LUA
URL="http://127.0.0.1:$PROXY_PORT/"
wrk -t1 -c50 -d10s "$URL" >/dev/null
wrk -t1 -c20 -d3s -s "$WORK/post.lua" "$URL" >/dev/null
wrk -t1 -c10 -d2s -s "$WORK/head.lua" "$URL" >/dev/null
# SIGINT: the data plane drains and exits, and the profile is written on the way out.
kill -INT "$TRAINEE_PID"
wait "$TRAINEE_PID" || true
ls "$CACHE"/raw/*.profraw >/dev/null 2>&1 || { echo "build-pgo: the training run wrote no profile" >&2; exit 1; }
"$PROFDATA" merge -o "$WORK/merged.profdata" "$CACHE"/raw/*.profraw
# Named by its content: a new profile is a new RUSTFLAGS, so cargo rebuilds with it.
SUM="$(sha256sum "$WORK/merged.profdata" | cut -c1-16)"
PROFILE="$CACHE/merged-$SUM.profdata"
mv "$WORK/merged.profdata" "$PROFILE"
find "$CACHE" -maxdepth 1 -name 'merged-*.profdata' ! -name "merged-$SUM.profdata" -delete

echo "== optimized build of $TARGET" >&2
(cd "$ROOT" && RUSTFLAGS="-Cprofile-use=$PROFILE" cargo build --quiet --release "${BUILD[@]}" \
  --target-dir "$CACHE/use")
if [ "$TARGET" = portcullis ]; then
  echo "$CACHE/use/release/portcullis"
else
  echo "$CACHE/use/release/examples/serve_snapshot"
fi
