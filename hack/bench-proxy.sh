#!/usr/bin/env bash
# Benchmark of the data plane against nginx, side by side in one run on this machine.
#
# - Upstream: an nginx instance (1 worker) answering a small static body on 127.0.0.1.
# - Peers: nginx (Debian package, worker_processes auto, keep-alive upstream pool, no access
#   log) and portcullis (release build, no access log), both proxying that same upstream.
# - Load: wrk, 50 keep-alive connections, GET /, for $DURATION each.
# - Memory: portcullis RSS idle, then with 1,000 routes loaded.
# - Reload: time to compile and swap in 5,000 routes while wrk keeps sending (non-2xx counted).
#
# Needs: wrk, nginx, curl, jq (apt-get install wrk nginx curl jq). Run from anywhere:
#   hack/bench-proxy.sh            # DURATION=10s CONNECTIONS=50 THREADS=2 by default
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-50}"
THREADS="${THREADS:-2}"
UPSTREAM_PORT="${UPSTREAM_PORT:-18081}"
NGINX_PORT="${NGINX_PORT:-18082}"
PORTCULLIS_PORT="${PORTCULLIS_PORT:-18083}"
ADMIN="127.0.0.1:${ADMIN_PORT:-18090}"

for tool in wrk nginx curl jq; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done

echo "== building portcullis (release)"
(cd "$ROOT" && cargo build --quiet --release -p portcullis-proxy --example serve_snapshot)
BIN="$ROOT/target/release/examples/serve_snapshot"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$WORK/upstream.pid" ] && kill "$(cat "$WORK/upstream.pid")" 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

nginx_conf() { # name workers body
  cat > "$WORK/$1.conf" <<CONF
worker_processes $2;
pid $WORK/$1.pid;
error_log $WORK/$1-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/$1-body;
  proxy_temp_path $WORK/$1-proxy;
  fastcgi_temp_path $WORK/$1-fastcgi;
  uwsgi_temp_path $WORK/$1-uwsgi;
  scgi_temp_path $WORK/$1-scgi;
  $3
}
CONF
  nginx -c "$WORK/$1.conf" -p "$WORK"
}

nginx_conf upstream 1 "server { listen 127.0.0.1:$UPSTREAM_PORT; keepalive_requests 1000000;
    location / { default_type text/plain; return 200 'hello from the upstream\n'; } }"
nginx_conf nginx auto "upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server { listen 127.0.0.1:$NGINX_PORT; keepalive_requests 1000000;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ''; } }"

"$BIN" generate 1 "$PORTCULLIS_PORT" "127.0.0.1:$UPSTREAM_PORT" > "$WORK/snapshot.yaml"
"$BIN" generate 1000 "$PORTCULLIS_PORT" "127.0.0.1:$UPSTREAM_PORT" > "$WORK/routes-1000.yaml"
"$BIN" generate 5000 "$PORTCULLIS_PORT" "127.0.0.1:$UPSTREAM_PORT" > "$WORK/routes-5000.yaml"
"$BIN" serve "$WORK/snapshot.yaml" "$ADMIN" > "$WORK/portcullis.log" 2>&1 &
PORTCULLIS_PID=$!
PIDS+=("$PORTCULLIS_PID")

for _ in $(seq 100); do
  curl -sf "http://$ADMIN/ready" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$PORTCULLIS_PORT/" >/dev/null
curl -sf "http://127.0.0.1:$NGINX_PORT/" >/dev/null

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$PORTCULLIS_PID/status"; }
revision() { curl -sf "http://$ADMIN/config" | jq -r .revision; }
wait_revision() { # expected
  for _ in $(seq 1000); do [ "$(revision)" = "$1" ] && return 0; sleep 0.01; done
  echo "bench: revision $1 never loaded" >&2; curl -s "http://$ADMIN/config" | jq .lastReloadError >&2; exit 1
}
yaml_revision() { awk '/^revision:/ {print $2}' "$1" | tr -d "'\""; }

IDLE_RSS=$(rss_kb)

measure() { # name port
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "http://127.0.0.1:$2/" >/dev/null # warm-up
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$2/" > "$WORK/$1.wrk"
  local rps p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$1.wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/$1.wrk")
  errors=$(awk '/Non-2xx|Socket errors/' "$WORK/$1.wrk" | tr '\n' ' ')
  echo "$1 $rps $p99 ${errors:-none}"
}

echo "== load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, GET / through each proxy"
read -r _ P_RPS P_P99 P_ERR <<<"$(measure portcullis "$PORTCULLIS_PORT")"
read -r _ N_RPS N_P99 N_ERR <<<"$(measure nginx "$NGINX_PORT")"

echo "== memory: 1,000 routes"
cp "$WORK/routes-1000.yaml" "$WORK/snapshot.yaml"
wait_revision "$(yaml_revision "$WORK/routes-1000.yaml")"
sleep 1
RSS_1000=$(rss_kb)

echo "== reload: 5,000 routes swapped in under load"
wrk -t"$THREADS" -c"$CONNECTIONS" -d5s "http://127.0.0.1:$PORTCULLIS_PORT/r4999x/" > "$WORK/swap.wrk" &
WRK_PID=$!
sleep 1
cp "$WORK/routes-5000.yaml" "$WORK/snapshot.yaml"
wait_revision "$(yaml_revision "$WORK/routes-5000.yaml")"
wait "$WRK_PID"
SWAP_MS=$(curl -sf "http://$ADMIN/config" | jq .lastSwapMillis)
RELOAD_MS=$(curl -sf "http://$ADMIN/config" | jq .lastReloadMillis)
SWAP_REQS=$(awk '/requests in/ {print $1}' "$WORK/swap.wrk")
SWAP_ERR=$(awk '/Non-2xx|Socket errors/' "$WORK/swap.wrk" | tr '\n' ' ')
RSS_5000=$(rss_kb)

CPU="$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) x $(nproc)"
RATIO=$(awk -v p="$P_RPS" -v n="$N_RPS" 'BEGIN { printf "%.2f", p / n }')
cat <<REPORT

Portcullis data-plane benchmark ($(date -u +%Y-%m-%dT%H:%MZ))
machine: $CPU, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM; $(nginx -v 2>&1); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)
load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, GET /, static upstream (nginx, 1 worker)

                 requests/s     p99        errors
  portcullis     $P_RPS      $P_P99    $P_ERR
  nginx          $N_RPS      $N_P99    $N_ERR
  ratio (portcullis / nginx requests/s): $RATIO

memory (RSS): idle $((IDLE_RSS / 1024)) MB; 1,000 routes $((RSS_1000 / 1024)) MB; 5,000 routes $((RSS_5000 / 1024)) MB
reload of 5,000 routes: compile + swap ${SWAP_MS} ms; read + parse + compile + swap ${RELOAD_MS} ms
  under load meanwhile: ${SWAP_REQS} requests, errors: ${SWAP_ERR:-none}
REPORT
